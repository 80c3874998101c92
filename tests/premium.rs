//! Premium video and audio signalling over HTTP, parsed back by independent readers: HLS
//! multivariant playlists with m3u8-rs (`CODECS`, and the attributes it keeps in
//! `other_attributes`: `VIDEO-RANGE`, `SUPPLEMENTAL-CODECS`; `CHANNELS` of the renditions),
//! MPDs with quick-xml (colour descriptors, `@codecs`, `scte214:supplementalCodecs`, Dolby
//! audio descriptors), for every premium fixture (fixtures/README.md): HDR10, HLG, AV1 next to
//! H.264, Dolby Vision 5 / 8.1 / 8.4, E-AC-3 JOC, and the existing AC-3 5.1 / E-AC-3 stereo.
//!
//! Also: MPEG-TS refuses AV1 (400 with the reason) and lists only what it can carry; the
//! multivariant is byte-identical from two origins; HDR10, HLG, AV1 and Dolby Vision decode
//! frame-identical to their sources from `m3u8-cmaf` and `mpd-time-cmaf`; `cenc` on HEVC
//! Main 10 decrypts (ffmpeg) to the source's frames.

mod common;

use std::collections::HashMap;

use common::{get_blocking, Got, TestServer};
use m3u8_rs::{MasterPlaylist, QuotedOrUnquoted};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

const KID: &str = "5a3c9e2f0b1d4e6f8a7b6c5d4e3f2a1b";
const KEY: &str = "00112233445566778899aabbccddeeff";

fn config() -> Config {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for asset in ["hdr10", "hlg", "av1", "dolby-vision", "dolby-vision-av1", "dolby"] {
        text.push_str(&common::clear_locator_toml(asset, asset));
    }
    text.push_str(&format!(
        "[[locator]]\nid = \"hdr10-cenc\"\nstorage = \"{}\"\nasset = \"hdr10\"\npolicy = \"cenc\"\n\
         keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n",
        common::FIXTURES_STORAGE
    ));
    text.push_str(&format!(
        "[[locator]]\nid = \"av1-cenc\"\nstorage = \"{}\"\nasset = \"av1\"\npolicy = \"cenc\"\n\
         keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n",
        common::FIXTURES_STORAGE
    ));
    // Keeps the AV1 video (and the audio): no video that TS can carry.
    text.push_str(
        "[[filter]]\nname = \"no-avc\"\n[filter.properties]\n[[filter.properties.tracks]]\n\
         trackSelections = [{ property = \"FourCC\", operation = \"NotEqual\", value = \"avc1\" }]\n",
    );
    Config::parse(&text, common::fixtures_dir()).expect("test config parses")
}

fn server() -> TestServer {
    let config = config();
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

/// `/{locator}/{asset}.ism/{rest}` for the clear locator of `asset`.
fn path(asset: &str, rest: &str) -> String {
    format!("/{asset}/{asset}.ism/{rest}")
}

fn fetch(server: &TestServer, path: &str) -> Got {
    get_blocking(&server.url(path))
}

fn multivariant(server: &TestServer, asset: &str, format: &str) -> (String, MasterPlaylist) {
    let got = fetch(server, &path(asset, &format!("manifest(format={format}).m3u8"))).ok();
    let text = got.text();
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(p)) => (text, p),
        other => panic!("{asset} {format}: not a multivariant playlist ({other:?}):\n{text}"),
    }
}

fn other<'a>(attrs: &'a Option<HashMap<String, QuotedOrUnquoted>>, name: &str) -> Option<&'a QuotedOrUnquoted> {
    attrs.as_ref()?.get(name)
}

/// (CODECS, VIDEO-RANGE, SUPPLEMENTAL-CODECS) of every video variant, in playlist order.
fn video_variants(p: &MasterPlaylist) -> Vec<(String, String, Option<String>)> {
    variants_of(p, false)
}

/// The same of the I-frame variants (`EXT-X-I-FRAME-STREAM-INF`, trick play).
fn variants_of(p: &MasterPlaylist, i_frame: bool) -> Vec<(String, String, Option<String>)> {
    p.variants
        .iter()
        .filter(|v| v.resolution.is_some() && v.is_i_frame == i_frame)
        .map(|v| {
            let range = match other(&v.other_attributes, "VIDEO-RANGE") {
                Some(QuotedOrUnquoted::Unquoted(r)) => r.clone(),
                o => panic!("VIDEO-RANGE must be an enumerated string on {}: {o:?}", v.uri),
            };
            let supplemental = match other(&v.other_attributes, "SUPPLEMENTAL-CODECS") {
                Some(QuotedOrUnquoted::Quoted(s)) => Some(s.clone()),
                None => None,
                o => panic!("SUPPLEMENTAL-CODECS must be a quoted-string on {}: {o:?}", v.uri),
            };
            (v.codecs.clone().unwrap_or_default(), range, supplemental)
        })
        .collect()
}

fn audio_channels(p: &MasterPlaylist) -> Vec<(String, Option<String>)> {
    p.alternatives.iter().map(|a| (a.group_id.clone(), a.channels.clone())).collect()
}

fn owned(v: &[(&str, &str, Option<&str>)]) -> Vec<(String, String, Option<String>)> {
    v.iter().map(|(c, r, s)| (c.to_string(), r.to_string(), s.map(str::to_string))).collect()
}

#[test]
fn hls_signals_range_dolby_vision_av1_and_channels() {
    let server = server();
    let (_, hdr10) = multivariant(&server, "hdr10", "m3u8-cmaf");
    assert_eq!(video_variants(&hdr10), owned(&[("hvc1.2.4.L60.90,mp4a.40.2", "PQ", None)]));
    assert_eq!(audio_channels(&hdr10), [("audio-aac".to_string(), Some("2".to_string()))]);

    let (_, hlg) = multivariant(&server, "hlg", "m3u8-cmaf");
    assert_eq!(video_variants(&hlg), owned(&[("hvc1.2.4.L60.90", "HLG", None)]));

    let (_, av1) = multivariant(&server, "av1", "m3u8-cmaf");
    let mut v = video_variants(&av1);
    v.sort();
    assert_eq!(v, owned(&[("av01.0.00M.08,mp4a.40.2", "SDR", None), ("avc1.64000c,mp4a.40.2", "SDR", None)]));

    // Dolby Vision 8.4 (HLG base), 5 (dvh1, PQ), 8.1 (HDR10 base), in bandwidth order; Atmos.
    let (text, dv) = multivariant(&server, "dolby-vision", "m3u8-cmaf");
    assert_eq!(
        video_variants(&dv),
        owned(&[
            ("hvc1.2.4.L60.90,ec-3", "HLG", Some("dvh1.08.01/db4h")),
            ("dvh1.05.01,ec-3", "PQ", None),
            ("hvc1.2.4.L60.90,ec-3", "PQ", Some("dvh1.08.01/db1p")),
        ])
    );
    assert_eq!(audio_channels(&dv), [("audio-ec3".to_string(), Some("16/JOC".to_string()))]);
    // The I-frame streams of the same renditions signal alike.
    assert_eq!(
        variants_of(&dv, true),
        owned(&[
            ("hvc1.2.4.L60.90", "HLG", Some("dvh1.08.01/db4h")),
            ("dvh1.05.01", "PQ", None),
            ("hvc1.2.4.L60.90", "PQ", Some("dvh1.08.01/db1p")),
        ])
    );
    // The two attributes m3u8-rs has no field for sit together, in this order, on the line.
    assert!(text.contains(",VIDEO-RANGE=PQ,SUPPLEMENTAL-CODECS=\"dvh1.08.01/db1p\","), "{text}");

    // Dolby Vision profile 10 on AV1: a `dav1` entry is Dolby Vision only; `av01` + dvvC 10.2
    // has an SDR base layer.
    let (_, dv_av1) = multivariant(&server, "dolby-vision-av1", "m3u8-cmaf");
    let mut v = video_variants(&dv_av1);
    v.sort();
    assert_eq!(v, owned(&[("av01.0.00M.08", "SDR", Some("dav1.10.01/db2g")), ("dav1.10.01", "SDR", None)]));

    // The real layout: AC-3 5.1 from dac3, E-AC-3 stereo from dec3.
    let (_, dolby) = multivariant(&server, "dolby", "m3u8-cmaf");
    let mut channels = audio_channels(&dolby);
    channels.sort();
    assert_eq!(
        channels,
        [("audio-ac3".to_string(), Some("6".to_string())), ("audio-ec3".to_string(), Some("2".to_string()))]
    );
    assert_eq!(video_variants(&dolby).iter().map(|v| v.1.as_str()).collect::<Vec<_>>(), ["SDR", "SDR"]);
}

#[test]
fn hls_attributes_are_byte_stable_across_origins() {
    // Each origin has its own caches and HashMaps (random seeds per instance).
    let (a, b) = (server(), server());
    for asset in ["dolby-vision", "hdr10", "av1"] {
        let p = path(asset, "manifest(format=m3u8-cmaf).m3u8");
        let (x, y) = (fetch(&a, &p).ok(), fetch(&b, &p).ok());
        assert_eq!(x.text(), y.text(), "{asset}: the same bytes from two origins");
        assert_eq!(x.header("etag"), y.header("etag"), "{asset}: the same ETag");
    }
}

/// One element of a parsed MPD: its name, attributes, and the index of the AdaptationSet it
/// is in (or is).
#[derive(Debug)]
struct Element {
    name: String,
    attrs: HashMap<String, String>,
    set: Option<usize>,
}

fn mpd_elements(text: &str) -> Vec<Element> {
    let mut reader = Reader::from_str(text);
    let (mut out, mut sets) = (Vec::new(), 0usize);
    let mut current_set = None;
    loop {
        let (e, empty) = match reader.read_event() {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(e)) => {
                if e.name().as_ref() == "AdaptationSet" {
                    current_set = None;
                }
                continue;
            }
            Ok(Event::Eof) => break,
            Ok(_) => continue,
            Err(e) => panic!("MPD does not parse: {e}\n{text}"),
        };
        let name = e.name().as_ref().to_owned();
        if name == "AdaptationSet" {
            current_set = Some(sets);
            sets += 1;
        }
        let attrs = e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                (a.key.as_ref().to_owned(), a.normalized_value(XmlVersion::Explicit1_0).expect("value").into_owned())
            })
            .collect();
        out.push(Element { name: name.clone(), attrs, set: current_set });
        if empty && name == "AdaptationSet" {
            current_set = None;
        }
    }
    out
}

/// Per AdaptationSet: (contentType, ["Essential scheme-suffix=value", "Supplemental …"],
/// [(codecs, supplementalCodecs, supplementalProfiles)], [audio descriptors "scheme=value"]).
type SetView = (String, Vec<String>, Vec<(String, Option<String>, Option<String>)>, Vec<String>);

fn mpd_sets(server: &TestServer, asset: &str) -> (String, Vec<SetView>) {
    let text = fetch(server, &path(asset, "manifest(format=mpd-time-cmaf).mpd")).ok().text();
    let elements = mpd_elements(&text);
    let mut sets: Vec<SetView> = Vec::new();
    for e in &elements {
        let Some(i) = e.set else { continue };
        let a = |k: &str| e.attrs.get(k).cloned();
        match e.name.as_str() {
            "AdaptationSet" => sets.push((a("contentType").unwrap_or_default(), vec![], vec![], vec![])),
            "EssentialProperty" | "SupplementalProperty" | "AudioChannelConfiguration" => {
                let scheme = a("schemeIdUri").unwrap_or_default();
                let short = scheme.rsplit(':').next().unwrap_or_default().to_string();
                let entry = format!("{}:{}={}", &e.name[..1], short, a("value").unwrap_or_default());
                let set = &mut sets[i];
                if scheme == "http://dashif.org/guidelines/trickmode" {
                    // Trick-mode sets (after every other set) are told apart by their type.
                    set.0 = "trick".to_string();
                } else if e.name == "AudioChannelConfiguration" || scheme.starts_with("tag:dolby.com") {
                    set.3.push(format!("{scheme}={}", a("value").unwrap_or_default()));
                } else {
                    set.1.push(entry);
                }
            }
            "Representation" => sets[i].2.push((
                a("codecs").unwrap_or_default(),
                a("scte214:supplementalCodecs"),
                a("scte214:supplementalProfiles"),
            )),
            _ => {}
        }
    }
    (text, sets)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn dash_signals_colour_dolby_vision_av1_and_atmos() {
    let server = server();
    const PQ: [&str; 3] = ["E:ColourPrimaries=9", "E:TransferCharacteristics=16", "E:MatrixCoefficients=9"];
    const HLG: [&str; 4] = [
        "E:ColourPrimaries=9",
        "E:TransferCharacteristics=14",
        "E:MatrixCoefficients=9",
        "S:TransferCharacteristics=18",
    ];

    let (text, hdr10) = mpd_sets(&server, "hdr10");
    assert_eq!(hdr10[0].0, "video");
    assert_eq!(hdr10[0].1, strings(&PQ), "{text}");
    assert_eq!(hdr10[0].2, [("hvc1.2.4.L60.90".to_string(), None, None)]);
    let trick = hdr10.iter().find(|s| s.0 == "trick").expect("a trick-mode set");
    assert_eq!(trick.1, strings(&PQ), "the trick-mode set keeps the colour descriptors: {text}");
    assert_eq!(hdr10[1].3, strings(&["urn:mpeg:dash:23003:3:audio_channel_configuration:2011=2"]));
    assert!(!text.contains("xmlns:scte214"), "the SCTE 214 namespace only where it is used");

    let (_, hlg) = mpd_sets(&server, "hlg");
    assert_eq!(hlg[0].1, strings(&HLG));

    // AV1 and H.264 in sets of their own, no colour description in either source.
    let (_, av1) = mpd_sets(&server, "av1");
    let mut codecs: Vec<&str> =
        av1.iter().filter(|s| s.0 == "video").flat_map(|s| s.2.iter().map(|r| r.0.as_str())).collect();
    codecs.sort();
    assert_eq!(codecs, ["av01.0.00M.08", "avc1.64000c"]);
    assert!(av1.iter().filter(|s| s.0 != "image").all(|s| s.1.is_empty()), "{av1:?}");
    // The thumbnail tiles come from the H.264 track (openh264 decodes no AV1).
    let image: Vec<_> = av1.iter().filter(|s| s.0 == "image").collect();
    assert_eq!(image.len(), 1, "{av1:?}");
    assert_eq!(image[0].1, strings(&["E://dashif.org/thumbnail_tile=5x5"]), "{av1:?}");

    let (text, dv) = mpd_sets(&server, "dolby-vision");
    assert!(text.contains("xmlns:scte214=\"urn:scte:dash:scte214-extensions\""), "{text}");
    let video: Vec<&SetView> = dv.iter().filter(|s| s.0 == "video").collect();
    assert_eq!(video.len(), 3, "8.4, 5 and 8.1 each in a set of its own: {text}");
    let reps: Vec<(String, Option<String>, Option<String>)> = video.iter().flat_map(|s| s.2.clone()).collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        reps,
        [
            ("hvc1.2.4.L60.90".to_string(), s("dvh1.08.01"), s("db4h")),
            ("dvh1.05.01".to_string(), None, None),
            ("hvc1.2.4.L60.90".to_string(), s("dvh1.08.01"), s("db1p")),
        ]
    );
    assert_eq!(
        (video[0].1.clone(), video[1].1.clone(), video[2].1.clone()),
        (strings(&HLG), strings(&PQ), strings(&PQ))
    );
    let audio = dv.iter().find(|s| s.0 == "audio").expect("audio set");
    assert_eq!(audio.2, [("ec-3".to_string(), None, None)], "E-AC-3 JOC keeps codecs=ec-3");
    assert_eq!(
        audio.3,
        strings(&[
            "tag:dolby.com,2014:dash:audio_channel_configuration:2011=A000",
            "tag:dolby.com,2018:dash:EC3_ExtensionType:2018=JOC",
            "tag:dolby.com,2018:dash:EC3_ExtensionComplexityIndex:2018=16",
        ])
    );

    let (text, dv_av1) = mpd_sets(&server, "dolby-vision-av1");
    let trick: Vec<&SetView> = dv_av1.iter().filter(|s| s.0 == "trick").collect();
    assert_eq!(trick.len(), 2, "{text}");
    assert_eq!(trick[1].2, [("av01.0.00M.08".to_string(), s("dav1.10.01"), s("db2g"))], "trick mode keeps it: {text}");
    let dv_av1: Vec<&SetView> = dv_av1.iter().filter(|s| s.0 != "trick").collect();
    let mut reps: Vec<(String, Option<String>, Option<String>)> = dv_av1.iter().flat_map(|s| s.2.clone()).collect();
    reps.sort();
    assert_eq!(
        reps,
        [("av01.0.00M.08".to_string(), s("dav1.10.01"), s("db2g")), ("dav1.10.01".to_string(), None, None)],
        "{text}"
    );
    assert_eq!(dv_av1.len(), 2, "profile 10 and 10.2 in sets of their own: {text}");

    // AC-3 5.1: the dac3 channel map L C R Ls Rs LFE.
    let (_, dolby) = mpd_sets(&server, "dolby");
    let mut maps: Vec<String> = dolby.iter().filter(|s| s.0 == "audio").flat_map(|s| s.3.clone()).collect();
    maps.sort();
    assert_eq!(
        maps,
        strings(&[
            "tag:dolby.com,2014:dash:audio_channel_configuration:2011=A000",
            "tag:dolby.com,2014:dash:audio_channel_configuration:2011=F801",
        ])
    );
}

/// The media playlist URI of the variant whose CODECS start with `prefix`.
fn variant_uri(p: &MasterPlaylist, prefix: &str) -> String {
    p.variants
        .iter()
        .find(|v| v.codecs.as_deref().is_some_and(|c| c.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no {prefix} variant"))
        .uri
        .clone()
}

#[test]
fn mpeg_ts_refuses_av1_and_lists_what_it_can_carry() {
    let server = server();
    for format in ["m3u8-aapl", "m3u8-aapl-v3"] {
        let (text, ts) = multivariant(&server, "av1", format);
        let codecs: Vec<&str> = ts.variants.iter().filter_map(|v| v.codecs.as_deref()).collect();
        assert!(!codecs.is_empty() && codecs.iter().all(|c| !c.contains("av01")), "{format}: {text}");
        assert!(codecs.iter().any(|c| c.starts_with("avc1.")), "{format}: {text}");
    }

    // The AV1 rendition's TS media playlist and segment: 400 with the reason.
    let (_, cmaf) = multivariant(&server, "av1", "m3u8-cmaf");
    let playlist = variant_uri(&cmaf, "av01");
    let media = fetch(&server, &path("av1", &playlist)).ok().text();
    let segment = media.lines().find(|l| l.contains("Fragments(") && !l.starts_with('#')).expect("a segment");
    // Relative to the media playlist, in QualityLevels(…)/.
    let segment = format!("{}/{segment}", playlist.rsplit_once('/').map_or("", |(dir, _)| dir));
    for format in ["m3u8-aapl", "m3u8-aapl-v3"] {
        for url in [&playlist, &segment] {
            let ts_url = url.replace("format=m3u8-cmaf", &format!("format={format}")).replace(".m4s", ".ts");
            let got = fetch(&server, &path("av1", &ts_url));
            assert_eq!(got.status, 400, "{}", got.describe());
            assert!(got.text().contains("AV1") && got.text().contains("MPEG-TS"), "{}", got.describe());
        }
    }
    // The H.264 rendition's TS playlist is served.
    let avc = variant_uri(&cmaf, "avc1").replace("format=m3u8-cmaf", "format=m3u8-aapl");
    fetch(&server, &path("av1", &avc)).ok();

    // A filter that leaves only AV1 video: no TS multivariant, but CMAF and DASH have it.
    let got = fetch(&server, &path("av1", "manifest(format=m3u8-aapl,filter=no-avc).m3u8"));
    assert_eq!(got.status, 400, "{}", got.describe());
    assert!(got.text().contains("AV1"), "{}", got.describe());
    let cmaf = fetch(&server, &path("av1", "manifest(format=m3u8-cmaf,filter=no-avc).m3u8")).ok().text();
    assert!(cmaf.contains("av01.0.00M.08") && !cmaf.contains("avc1."), "{cmaf}");
    fetch(&server, &path("av1", "manifest(format=mpd-time-cmaf,filter=no-avc).mpd")).ok();
    // An AV1-only asset (Dolby Vision profile 10, `dav1` and `av01`) has no TS manifest.
    for format in ["m3u8-aapl", "m3u8-aapl-v3"] {
        let got = fetch(&server, &path("dolby-vision-av1", &format!("manifest(format={format}).m3u8")));
        assert_eq!(got.status, 400, "{}", got.describe());
        assert!(got.text().contains("MPEG-TS"), "{}", got.describe());
    }
}

#[test]
fn hdr_av1_and_dolby_vision_decode_frame_identical() {
    let server = server();
    for asset in ["hdr10", "av1", "hlg", "dolby-vision"] {
        common::check_lossless_over_http(&server, &common::fixtures_dir().join(asset), &|rest| path(asset, rest));
    }
}

#[test]
fn cenc_on_hevc_main_10_decrypts_to_the_source() {
    let server = server();
    let mpd_url = server.url("/hdr10-cenc/hdr10.ism/manifest(format=mpd-time-cmaf,encryption=cenc).mpd");
    let mpd = get_blocking(&mpd_url).ok().text();
    let id = common::representation_ids(&mpd).into_iter().find(|id| id.starts_with("video")).expect("video");
    let (init_url, segment_urls) = common::dash_segment_urls(&mpd_url, &mpd, &id);
    let init = get_blocking(&init_url).ok().body;
    assert!(init.windows(4).any(|w| w == b"encv") && init.windows(4).any(|w| w == b"hvcC"), "an encv HEVC entry");
    let segments: Vec<Vec<u8>> = segment_urls.iter().map(|u| get_blocking(u).ok().body).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = common::ffmpeg_decrypt_decode(&init, &segments, KEY, "0:v:0", "hevc", dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let source = common::fixtures_dir().join("hdr10/video_hdr10.mp4");
    let src =
        common::framemd5(&[std::ffi::OsStr::new("-ignore_editlist"), std::ffi::OsStr::new("1")], &source, "0:v:0")
            .unwrap_or_else(|e| panic!("{e}"));
    common::compare(&src, &ours).unwrap_or_else(|e| panic!("cenc HEVC Main 10 differs from the source:\n{e}"));
    assert!(src.len() >= 96, "4 s at 24 fps: {} frames", src.len());
}

#[test]
fn inspect_shows_hdr_dolby_vision_and_audio_layouts() {
    let run = |args: &[&str]| {
        let out = common::run(std::process::Command::new(common::bin()).arg("inspect").args(args))
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out).into_owned()
    };
    let dir = |asset: &str| common::fixtures_dir().join(asset).display().to_string();
    let text = run(&[&dir("dolby-vision")]);
    for expected in [
        "HLG (primaries 9 transfer 18 matrix 9, limited range, from colr)  Dolby Vision profile 8.4 level 1",
        "dvh1.05.01 320x180 24.000 fps  HDR10 (primaries 9 transfer 16 matrix 9",
        "Dolby Vision profile 8.1 level 1 (rpu 1 el 0 bl 1), supplemental dvh1.08.01/db1p",
        "ec-3 48000 Hz, 2 ch L R (Dolby map A000), Dolby Atmos (JOC, 16 objects)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let text = run(&[&dir("dolby")]);
    assert!(text.contains("ac-3 48000 Hz, 6 ch L C R Ls Rs LFE (Dolby map F801)"), "{text}");
    let text = run(&[&dir("av1")]);
    assert!(text.contains("av01.0.00M.08 320x180 24.000 fps  SDR"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&run(&[&dir("hdr10"), "--json"])).expect("JSON");
    let video = json["tracks"].as_array().unwrap().iter().find(|t| t["info"]["kind"] == "video").expect("video");
    let colour = &video["info"]["codec"]["colour"];
    assert_eq!(
        (colour["primaries"].as_u64(), colour["transfer"].as_u64(), colour["matrix"].as_u64()),
        (Some(9), Some(16), Some(9)),
        "{video}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&[&dir("dolby-vision"), "--json"])).expect("JSON");
    let profiles: Vec<u64> = json["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["info"]["codec"]["dolby_vision"]["profile"].as_u64())
        .collect();
    assert_eq!(profiles, [8, 5, 8], "{json}");
}

#[test]
fn common_encryption_leaves_av1_out_with_the_reason() {
    let server = server();
    let base = "/av1-cenc/av1.ism/";
    let hls = fetch(&server, &format!("{base}manifest(format=m3u8-cmaf,encryption=cenc).m3u8")).ok().text();
    assert!(hls.contains("avc1.64000c") && !hls.contains("av01"), "{hls}");
    let mpd = fetch(&server, &format!("{base}manifest(format=mpd-time-cmaf,encryption=cenc).mpd")).ok().text();
    assert!(mpd.contains("avc1.64000c") && !mpd.contains("av01"), "{mpd}");
    let (_, clear) = multivariant(&server, "av1", "m3u8-cmaf");
    let playlist = variant_uri(&clear, "av01").replace("format=m3u8-cmaf", "format=m3u8-cmaf,encryption=cenc");
    let got = fetch(&server, &format!("{base}{playlist}"));
    assert_eq!(got.status, 400, "{}", got.describe());
    assert!(got.text().contains("Common Encryption of AV1"), "{}", got.describe());
    let init = playlist.replace("Manifest(video,", "Fragments(video=i,").replace(".m3u8", ".mp4");
    let got = fetch(&server, &format!("{base}{init}"));
    assert_eq!(got.status, 400, "{}", got.describe());
    assert!(got.text().contains("Common Encryption of AV1"), "{}", got.describe());
}
