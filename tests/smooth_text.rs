//! Text in Smooth Streaming through the HTTP server: WebVTT sidecars (`fixtures/subtitles`,
//! `fixtures/subtitles-folder`) and the `wvtt` track of an MP4 source (`fixtures/text-mp4`)
//! as TTML fragments.
//!
//! * The client manifest is read with quick-xml: one `StreamIndex Type="text"` per text track
//!   (`Subtype` CAPT for the SDH track, SUBT otherwise; `Name`, `Language`, `Chunks`, `Url`)
//!   with one `QualityLevel FourCC="TTML"`; the `stpp` MP4 track is not listed and its
//!   fragments are a 400.
//! * Every text fragment is parsed box by box here (not by the crate's reader): `moof`
//!   (`mfhd`, `traf` with `tfhd`, `trun` of one sample whose data offset points into the
//!   `mdat`, the `tfxd` box whose time and duration are the chunk's `t` and `d`) and `mdat`.
//! * The sample is a TTML document, read with quick-xml; its `p` times are relative to the
//!   fragment. Fragment time plus `p` time minus the axis' lead (presentation time 0 on the
//!   10 MHz axis) gives each piece's presentation time; pieces of one cue in adjacent fragments
//!   joined, they are exactly the sidecar's cues (our WebVTT parser's, as the HLS and DASH
//!   text tests expect them).
//! * A 2 s filter window lists the fragments from 2 s on, at the same times, and they hold
//!   the cues from 2 s on.
//! * Under `encryption=cenc` the text fragments are clear.

mod common;

use std::collections::HashMap;

use common::{get_blocking, TestServer};
use jit_origin::config::Config;
use jit_origin::media::webvtt::{self, Cue};
use jit_origin::plan::smooth::SmoothClock;
use jit_origin::serve::origin::Origin;
use jit_origin::source::asset::{load, resolve_source};
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;
use quick_xml::events::{BytesStart, Event};

/// The PIFF/Smooth `tfxd` box's extended type (MS-SSTR §2.2.4.4).
const TFXD: [u8; 16] = [0x6D, 0x1D, 0x9B, 0x05, 0x42, 0xD5, 0x44, 0xE6, 0x80, 0xE2, 0x14, 0x1D, 0xAF, 0xF7, 0x57, 0xB2];
/// The PIFF sample encryption box's extended type (PIFF 1.1 §5.3.2.1).
const PIFF_SENC: [u8; 16] =
    [0xA2, 0x39, 0x4F, 0x52, 0x5A, 0x9B, 0x4F, 0x14, 0xA2, 0x44, 0x6C, 0x42, 0x7C, 0x64, 0x8D, 0xF4];
const KID: &str = "00112233445566778899aabbccddeeff";

fn server() -> TestServer {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for (id, asset) in [("loc-subtitles", "subtitles"), ("loc-folder", "subtitles-folder"), ("loc-mp4", "text-mp4")] {
        text.push_str(&common::clear_locator_toml(id, asset));
    }
    text.push_str(&format!(
        "[[locator]]\nid = \"loc-drm\"\nstorage = \"{}\"\nasset = \"subtitles\"\npolicy = \"multi-drm\"\nkeys = [{{ kid = \"{KID}\", key = \"0102030405060708090a0b0c0d0e0f10\" }}]\n",
        common::FIXTURES_STORAGE
    ));
    text.push_str("[[filter]]\nname = \"from2\"\nstart_secs = 2.0\n");
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http.clone())
}

/// Presentation time 0 of the fixture `folder` on its Smooth axis, in 10 MHz ticks.
fn lead(folder: &str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let asset = runtime.block_on(async {
        let storage = Storage::local("fixtures", common::fixtures_dir()).unwrap();
        let source = resolve_source(&storage, folder, None).await.unwrap();
        load(&storage, &source, SegmentPolicy::default()).await.unwrap()
    });
    let clock = SmoothClock::of(&asset);
    // A sidecar's clock has no edit list and a 1 kHz timescale: its time 0 is the lead.
    let text = asset.tracks.iter().find(|t| t.index().sidecar.is_some()).expect("a sidecar");
    clock.track(text).time(0)
}

/// One text `StreamIndex` of a client manifest.
#[derive(Debug)]
struct TextStream {
    attrs: HashMap<String, String>,
    levels: Vec<HashMap<String, String>>,
    /// (t, d) of every chunk, `r` expanded.
    chunks: Vec<(u64, u64)>,
}

fn attrs(e: &BytesStart) -> HashMap<String, String> {
    e.attributes()
        .map(|a| {
            let a = a.unwrap();
            let value = a.normalized_value(quick_xml::XmlVersion::Explicit1_0).unwrap().into_owned();
            (a.key.as_ref().to_string(), value)
        })
        .collect()
}

/// The manifest's text streams, and the `Type` of every stream in order.
fn text_streams(manifest: &str) -> (Vec<TextStream>, Vec<String>) {
    let mut reader = quick_xml::Reader::from_str(manifest);
    let (mut streams, mut types, mut current) = (Vec::new(), Vec::new(), None::<TextStream>);
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("{e}: {manifest}")) {
            Event::Start(e) | Event::Empty(e) => {
                let a = attrs(&e);
                match e.name().as_ref() {
                    "StreamIndex" => {
                        types.push(a["Type"].clone());
                        if a["Type"] == "text" {
                            current = Some(TextStream { attrs: a, levels: Vec::new(), chunks: Vec::new() });
                        }
                    }
                    "QualityLevel" => current.iter_mut().for_each(|s| s.levels.push(a.clone())),
                    "c" => {
                        if let Some(s) = &mut current {
                            let d: u64 = a["d"].parse().unwrap();
                            let t = a
                                .get("t")
                                .map(|t| t.parse().unwrap())
                                .or(s.chunks.last().map(|&(t, d)| t + d))
                                .unwrap();
                            let repeat: u64 = a.get("r").map_or(1, |r| r.parse().unwrap());
                            s.chunks.extend((0..repeat).map(|k| (t + k * d, d)));
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) if e.name().as_ref() == "StreamIndex" => streams.extend(current.take()),
            Event::Eof => return (streams, types),
            _ => {}
        }
    }
}

/// One box: its type, its extended type (`uuid` boxes), its payload.
type Mp4Box<'a> = ([u8; 4], Option<[u8; 16]>, &'a [u8]);

/// The boxes of `bytes`.
fn boxes(mut bytes: &[u8]) -> Vec<Mp4Box<'_>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= bytes.len(), "box size {size} of {} bytes", bytes.len());
        let kind: [u8; 4] = bytes[4..8].try_into().unwrap();
        let (user, payload) = if &kind == b"uuid" {
            (Some(bytes[8..24].try_into().unwrap()), &bytes[24..size])
        } else {
            (None, &bytes[8..size])
        };
        out.push((kind, user, payload));
        bytes = &bytes[size..];
    }
    out
}

/// A Smooth text fragment checked box by box: its `tfxd` (time, duration) and its one
/// sample's bytes. `encrypted`: whether any sample encryption box was found.
struct Fragment {
    time: u64,
    duration: u64,
    sample: Vec<u8>,
    encrypted: bool,
}

fn fragment(bytes: &[u8], what: &str) -> Fragment {
    let top = boxes(bytes);
    let kinds: Vec<[u8; 4]> = top.iter().map(|b| b.0).collect();
    assert_eq!(kinds, [*b"moof", *b"mdat"], "{what}: top-level boxes");
    let (moof, mdat) = (top[0].2, top[1].2);
    let moof_boxes = boxes(moof);
    assert_eq!(moof_boxes.iter().map(|b| b.0).collect::<Vec<_>>(), [*b"mfhd", *b"traf"], "{what}: moof");
    let traf = boxes(moof_boxes[1].2);
    let find = |kind: &[u8; 4], user: Option<[u8; 16]>| traf.iter().find(|b| &b.0 == kind && b.1 == user).map(|b| b.2);
    assert!(find(b"tfhd", None).is_some(), "{what}: no tfhd");
    assert!(find(b"tfdt", None).is_none(), "{what}: a tfdt where Smooth has tfxd");
    let tfxd = find(b"uuid", Some(TFXD)).unwrap_or_else(|| panic!("{what}: no tfxd"));
    let (time, duration) = match tfxd[0] {
        1 => {
            (u64::from_be_bytes(tfxd[4..12].try_into().unwrap()), u64::from_be_bytes(tfxd[12..20].try_into().unwrap()))
        }
        _ => (
            u64::from(u32::from_be_bytes(tfxd[4..8].try_into().unwrap())),
            u64::from(u32::from_be_bytes(tfxd[8..12].try_into().unwrap())),
        ),
    };
    let trun = find(b"trun", None).unwrap_or_else(|| panic!("{what}: no trun"));
    let flags = u32::from_be_bytes(trun[..4].try_into().unwrap()) & 0xFF_FFFF;
    assert_eq!(u32::from_be_bytes(trun[4..8].try_into().unwrap()), 1, "{what}: one sample");
    assert!(flags & 1 != 0, "{what}: trun without a data offset");
    let data_offset = i32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
    // The data offset counts from the moof (default-base-is-moof): the mdat payload follows
    // the moof and the mdat header.
    let moof_size = moof.len() + 8;
    assert_eq!(data_offset, moof_size + 8, "{what}: data offset");
    let encrypted = find(b"senc", None).is_some() || find(b"uuid", Some(PIFF_SENC)).is_some();
    Fragment { time, duration, sample: mdat.to_vec(), encrypted }
}

/// `HH:MM:SS.mmm` in ms.
fn clock_time_ms(text: &str) -> u64 {
    let (hms, millis) = text.split_once('.').unwrap_or_else(|| panic!("time {text}"));
    let parts: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "time {text}");
    ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + millis.parse::<u64>().unwrap()
}

/// The TTML document's paragraphs: (begin ms, end ms, text with `\n` for `br`), and the
/// `tt` element's `xml:lang`.
fn ttml(document: &str) -> (Vec<(u64, u64, String)>, String) {
    let mut reader = quick_xml::Reader::from_str(document);
    reader.config_mut().check_end_names = true;
    let (mut out, mut current, mut lang) = (Vec::new(), None::<(u64, u64, String)>, String::new());
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("{e}: {document}")) {
            Event::Start(e) if e.name().as_ref() == "tt" => lang = attrs(&e)["xml:lang"].clone(),
            Event::Start(e) if e.name().as_ref() == "p" => {
                let a = attrs(&e);
                current = Some((clock_time_ms(&a["begin"]), clock_time_ms(&a["end"]), String::new()));
            }
            Event::Empty(e) if e.name().as_ref() == "br" => current.iter_mut().for_each(|p| p.2.push('\n')),
            Event::Text(t) => current.iter_mut().for_each(|p| p.2.push_str(&t.xml10_content())),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.xml10_content()).unwrap().to_string(),
                };
                current.iter_mut().for_each(|p| p.2.push_str(&c));
            }
            Event::End(e) if e.name().as_ref() == "p" => out.extend(current.take()),
            Event::Eof => return (out, lang),
            _ => {}
        }
    }
}

/// The manifest at `url`, its text streams checked, and the cues of every text stream read
/// back from its fragments: name → (cues in presentation ms, first fragment time).
fn smooth_cues(manifest_url: &str, lead: u64) -> HashMap<String, (Vec<Cue>, u64)> {
    let got = get_blocking(manifest_url).ok();
    assert_eq!(got.header("content-type"), Some("application/vnd.ms-sstr+xml"), "{manifest_url}");
    let manifest = got.text();
    let (streams, _) = text_streams(&manifest);
    let base = manifest_url.rsplit_once('/').unwrap().0;
    let mut out = HashMap::new();
    for stream in &streams {
        let name = &stream.attrs["Name"];
        assert_eq!(stream.levels.len(), 1, "{name}: one QualityLevel");
        let level = &stream.levels[0];
        assert_eq!(level["FourCC"], "TTML", "{name}");
        assert_eq!(level.get("CodecPrivateData").map(String::as_str), Some(""), "{name}");
        assert_eq!(stream.attrs["Chunks"].parse::<usize>().unwrap(), stream.chunks.len(), "{name}: Chunks");
        let url = &stream.attrs["Url"];
        let mut pieces: Vec<Cue> = Vec::new();
        for &(t, d) in &stream.chunks {
            let path = url.replace("{bitrate}", &level["Bitrate"]).replace("{start time}", &t.to_string());
            let url = format!("{base}/{path}");
            let got = get_blocking(&url).ok();
            let f = fragment(&got.body, &url);
            assert_eq!((f.time, f.duration), (t, d), "{url}: tfxd against the manifest's chunk");
            assert!(!f.encrypted, "{url}: text is served clear");
            let (paragraphs, lang) = ttml(std::str::from_utf8(&f.sample).unwrap());
            let language = &stream.attrs["Language"];
            assert_eq!(&lang, language, "{url}: xml:lang");
            for (begin, end, text) in paragraphs {
                // Presentation ms of the fragment's start: its axis time minus the lead.
                let start_ms = (t - lead) / 10_000;
                assert_eq!((t - lead) % 10_000, 0, "{url}: a sidecar's fragment starts on a ms");
                assert!(begin < end && end <= d / 10_000, "{url}: {begin}..{end} within the fragment");
                let (start_ms, end_ms) = (start_ms + begin, start_ms + end);
                // A cue over several fragments is clipped to each: join its pieces.
                match pieces.last_mut() {
                    Some(last) if last.end_ms == start_ms && last.text == text => last.end_ms = end_ms,
                    _ => pieces.push(Cue { start_ms, end_ms, id: String::new(), settings: String::new(), text }),
                }
            }
        }
        let first = stream.chunks.first().map_or(0, |c| c.0);
        out.insert(name.clone(), (pieces, first));
    }
    out
}

/// The cues of a sidecar, as the cue model holds them (identifiers and settings are not
/// carried by TTML).
fn sidecar(folder: &str, file: &str) -> Vec<Cue> {
    let path = common::fixtures_dir().join(folder).join(file);
    let mut cues = webvtt::parse(&std::fs::read(&path).unwrap()).unwrap().cues;
    for c in &mut cues {
        c.id.clear();
        c.settings.clear();
    }
    cues
}

#[test]
fn sidecar_text_streams_and_fragments_carry_the_cues() {
    let server = server();
    for (locator, folder, tracks) in [
        (
            "loc-subtitles",
            "subtitles",
            vec![
                ("subtitles_eng", "subtitles_eng.vtt", "eng", "SUBT"),
                ("subtitles_fra", "subtitles_fra.vtt", "fra", "SUBT"),
                ("captions_eng", "captions_eng.vtt", "eng", "CAPT"),
            ],
        ),
        (
            "loc-folder",
            "subtitles-folder",
            vec![("text_deu", "movie.de.vtt", "deu", "SUBT"), ("text_spa", "movie.vtt", "spa", "SUBT")],
        ),
    ] {
        let url = server.url(&format!("/{locator}/{folder}.ism/manifest"));
        let lead = lead(folder);
        let (streams, types) = text_streams(&get_blocking(&url).ok().text());
        // Text streams follow video and audio; `outputFlag=false` tracks are not listed.
        let first_text = types.iter().position(|t| t == "text").unwrap();
        assert!(types[first_text..].iter().all(|t| t == "text"), "{types:?}");
        let listed: Vec<(&str, &str, &str)> = streams
            .iter()
            .map(|s| (s.attrs["Name"].as_str(), s.attrs["Language"].as_str(), s.attrs["Subtype"].as_str()))
            .collect();
        let expected: Vec<(&str, &str, &str)> = tracks.iter().map(|&(n, _, l, s)| (n, l, s)).collect();
        assert_eq!(listed, expected, "{url}");
        let cues = smooth_cues(&url, lead);
        for (name, file, _, _) in tracks {
            let (got, first) = &cues[name];
            assert_eq!(*first, lead, "{name}: the first fragment starts at presentation time 0");
            assert_eq!(got, &sidecar(folder, file), "{url}: {name}");
        }
    }
}

#[test]
fn mp4_wvtt_track_becomes_ttml_and_stpp_is_left_out() {
    let server = server();
    let url = server.url("/loc-mp4/text-mp4.ism/manifest");
    let (streams, _) = text_streams(&get_blocking(&url).ok().text());
    let names: Vec<&str> = streams.iter().map(|s| s.attrs["Name"].as_str()).collect();
    assert_eq!(names, ["text_eng"], "{url}");
    // The wvtt track was written from the English sidecar (fixtures/text-mp4.py); its
    // fragments follow its samples, whose times are whole ms on a 1 kHz track.
    let lead = 833_333; // the video's edit list: media_time 1024 at 12288 Hz, rescaled
    let cues = smooth_cues(&url, lead);
    assert_eq!(cues["text_eng"].0, sidecar("subtitles", "subtitles_eng.vtt"));
    // The stpp track's fragment is a 400 naming the reason.
    let got = get_blocking(&server.url(&format!("/loc-mp4/text-mp4.ism/QualityLevels(0)/Fragments(text_fra={lead})")));
    assert_eq!(got.status, reqwest::StatusCode::BAD_REQUEST, "{}", got.describe());
    assert!(got.text().contains("stpp"), "{}", got.text());
}

#[test]
fn a_filter_window_keeps_the_cues_from_its_start_at_the_same_times() {
    let server = server();
    let lead = lead("subtitles");
    let all = smooth_cues(&server.url("/loc-subtitles/subtitles.ism/manifest"), lead);
    let url = server.url("/loc-subtitles/subtitles.ism/manifest(filter=from2)");
    let from2 = smooth_cues(&url, lead);
    assert_eq!(from2.len(), 3, "{url}");
    for (name, (cues, first)) in &from2 {
        // Fragment URLs carry no filter: the window's first fragment is the one at 2 s.
        assert_eq!(*first, lead + 20_000_000, "{name}");
        let expected: Vec<Cue> = all[name]
            .0
            .iter()
            .filter(|c| c.end_ms > 2000)
            .map(|c| Cue { start_ms: c.start_ms.max(2000), ..c.clone() })
            .collect();
        assert_eq!(cues, &expected, "{url}: {name}");
        assert!(!cues.is_empty(), "{name}");
    }
}

#[test]
fn text_is_clear_in_a_cenc_manifest() {
    let server = server();
    let url = server.url("/loc-drm/subtitles.ism/manifest(encryption=cenc)");
    let manifest = get_blocking(&url).ok().text();
    assert!(manifest.contains("<Protection>"), "{manifest}");
    let (streams, _) = text_streams(&manifest);
    assert!(streams.iter().all(|s| s.attrs["Url"].contains("encryption=cenc")), "{streams:?}");
    // smooth_cues asserts every fragment has no sample encryption box.
    let cues = smooth_cues(&url, lead("subtitles"));
    assert_eq!(cues["subtitles_eng"].0, sidecar("subtitles", "subtitles_eng.vtt"));
}
