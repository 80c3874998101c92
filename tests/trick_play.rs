//! Trick play over HTTP: HLS I-frame playlists (`type=keyframes`), their `KeyFrames(…)`
//! resources and DASH trick-mode AdaptationSets, checked against the source files.
//!
//! The oracle: ffprobe lists the source's sync samples (packets flagged `K`, their pts in the
//! track timescale with the edit list ignored: the media timeline of our URLs), and ffmpeg
//! decodes the source's keyframes alone (`-skip_frame nokey`) to framemd5. Every I-frame
//! playlist (m3u8-rs) must list exactly those keyframes, each resource must decode (fMP4: with
//! the playlist's `EXT-X-MAP`; TS: alone) to exactly one frame with the source keyframe's
//! hash — clear, AES-128 (decrypted here with the key from the key URI and the playlist's
//! IV), and cenc / cbcs (ffmpeg `-decryption_key`). DASH trick-mode sets (quick-xml) must
//! name their main set, list the same keyframes, and serve the HLS-CMAF resources' bytes.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use aes::cipher::{BlockCipherDecrypt, KeyInit};
use aes::Aes128;
use m3u8_rs::{MediaPlaylist, Playlist, VariantStream};
use quick_xml::events::Event;

use common::{Got, TestServer};
use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

const ASSETS: &[&str] = &["ladder", "ladder-frag", "ladder-cmaf", "hevc", "edit", "muxed"];
const KID: &str = "0123456789abcdef0123456789abcdef";
const KEY: &str = "00112233445566778899aabbccddeeff";
/// A 2 s – 6 s window of the ladder.
const WINDOW: &str = "middle";

fn config() -> Config {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for asset in ASSETS {
        text.push_str(&common::clear_locator_toml(&format!("clear-{asset}"), asset));
    }
    for (id, policy) in [("env-ladder", "envelope"), ("drm-ladder", "multi-drm")] {
        text.push_str(&format!(
            "[[locator]]\nid = \"{id}\"\nstorage = \"fixtures\"\nasset = \"ladder\"\npolicy = \"{policy}\"\n\
             keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n"
        ));
    }
    text.push_str(&format!("[[filter]]\nname = \"{WINDOW}\"\nstart_secs = 2.0\nend_secs = 6.0\n"));
    Config::parse(&text, common::fixtures_dir()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn start() -> TestServer {
    let config = config();
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

fn get(url: &str) -> Got {
    common::get_blocking(url).ok()
}

/// Resolves a playlist URI against the playlist's URL.
fn resolve(base: &str, uri: &str) -> String {
    if uri.starts_with('/') {
        let host_end = base.find("://").map(|i| i + 3 + base[i + 3..].find('/').unwrap_or(0)).expect("absolute URL");
        return format!("{}{uri}", &base[..host_end]);
    }
    let path = base.split('?').next().unwrap_or(base);
    format!("{}{uri}", &path[..path.rfind('/').expect("slash") + 1])
}

fn parse_playlist(got: &Got) -> Playlist {
    m3u8_rs::parse_playlist_res(&got.body).unwrap_or_else(|e| panic!("{}: unparsable: {e:?}", got.describe()))
}

fn hex16(s: &str) -> [u8; 16] {
    let s = s.trim_start_matches("0x").trim_start_matches("0X");
    let v: Vec<u8> = (0..32).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect();
    v.try_into().expect("16 bytes")
}

/// AES-128-CBC with PKCS#7 padding (RFC 8216 §5.2), written out so the origin's own
/// `protect::envelope` is not its own oracle.
fn aes128_cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    assert!(!data.is_empty() && data.len() % 16 == 0, "ciphertext of {} bytes", data.len());
    let cipher = Aes128::new(&(*key).into());
    let mut prev = *iv;
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(16) {
        let ct: [u8; 16] = chunk.try_into().unwrap();
        let mut block = ct.into();
        cipher.decrypt_block(&mut block);
        out.extend(block.iter().zip(prev).map(|(b, p)| b ^ p));
        prev = ct;
    }
    let pad = *out.last().unwrap() as usize;
    assert!((1..=16).contains(&pad) && out[out.len() - pad..].iter().all(|&b| b as usize == pad), "bad padding");
    out.truncate(out.len() - pad);
    out
}

/// The source's keyframes of one video track: presentation times (track ticks, decode order)
/// and decoded frame hashes.
struct SourceKeyFrames {
    name: String,
    bitrate: u64,
    times: Vec<u64>,
    hashes: Vec<String>,
}

fn source_keyframes(asset: &str) -> Vec<SourceKeyFrames> {
    let dir = common::fixtures_dir().join(asset);
    common::inspect(&dir)
        .into_iter()
        .filter(|t| t.kind == "video")
        .map(|t| {
            let src = common::resolve_source(&dir, &t.file);
            let mut probe = Command::new("ffprobe");
            probe.args(["-v", "error", "-ignore_editlist", "1", "-select_streams"]).arg(format!("i:{}", t.track_id));
            probe.args(["-show_entries", "packet=pts,flags", "-of", "csv=p=0"]).arg(&src);
            let out = common::run(&mut probe).unwrap_or_else(|e| panic!("{e}"));
            let times: Vec<u64> = String::from_utf8_lossy(&out)
                .lines()
                .filter_map(|l| l.split_once(','))
                .filter(|(_, flags)| flags.starts_with('K'))
                .map(|(pts, _)| pts.trim().parse().expect("pts"))
                .collect();
            let opts = ["-ignore_editlist", "1", "-skip_frame", "nokey"].map(OsStr::new);
            let frames =
                common::framemd5(&opts, &src, &format!("0:i:{}", t.track_id)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(frames.len(), times.len(), "{asset} {}: keyframes decoded vs flagged", t.name);
            let hashes = frames.iter().map(|l| common::hash_of(l).to_owned()).collect();
            SourceKeyFrames { name: t.name, bitrate: t.bitrate, times, hashes }
        })
        .collect()
}

/// `{time}` of a `KeyFrames({track}={time},…)` URI.
fn keyframe_time(uri: &str) -> u64 {
    let at = uri.find("KeyFrames(").unwrap_or_else(|| panic!("not a KeyFrames URI: {uri}")) + "KeyFrames(".len();
    let rest = &uri[at..];
    let eq = rest.find('=').expect("=");
    rest[eq + 1..rest.find(',').expect(",")].parse().expect("time")
}

/// Decodes one keyframe resource (after the init segment for fMP4) and returns its frames.
fn decode(dir: &Path, init: Option<&[u8]>, body: &[u8], key: Option<&str>, label: &str) -> Vec<String> {
    let file = dir.join(if init.is_some() { "keyframe.mp4" } else { "keyframe.ts" });
    std::fs::write(&file, [init.unwrap_or_default(), body].concat()).unwrap();
    let opts: Vec<&OsStr> = key.map(|k| vec![OsStr::new("-decryption_key"), OsStr::new(k)]).unwrap_or_default();
    common::framemd5(&opts, &file, "0:v:0").unwrap_or_else(|e| panic!("{label}: {e}"))
}

fn sum_extinf(p: &MediaPlaylist) -> f64 {
    p.segments.iter().map(|s| s.duration as f64).sum()
}

/// Checks every I-frame stream of one multivariant playlist against `sources`; returns the
/// number of keyframes decoded. `window`: only the keyframes within the media playlist's span.
fn check_multivariant(
    server: &TestServer,
    locator: &str,
    asset: &str,
    options: &str,
    sources: &[SourceKeyFrames],
) -> usize {
    let manifest_url = server.url(&format!("/{locator}/{asset}.ism/manifest({options}).m3u8"));
    let Playlist::MasterPlaylist(master) = parse_playlist(&get(&manifest_url)) else { panic!("{manifest_url}") };
    let streams: Vec<&VariantStream> = master.variants.iter().filter(|v| v.is_i_frame).collect();
    if options.contains("m3u8-aapl-v3") {
        assert!(streams.is_empty(), "{manifest_url}: version 3 lists no I-frame streams");
        return 0;
    }
    assert_eq!(streams.len(), sources.len(), "{manifest_url}: one I-frame stream per video track");
    let key = options.contains("encryption=cenc") || options.contains("encryption=cbcs");
    let envelope = options.split(',').any(|o| o == "encryption=cbc");
    let dir = tempfile::tempdir().unwrap();
    let mut decoded = 0;
    for stream in streams {
        let url = resolve(&manifest_url, &stream.uri);
        assert!(url.contains("type=keyframes"), "{url}");
        let source = sources
            .iter()
            .find(|s| url.contains(&format!("QualityLevels({})/Manifest({},", s.bitrate, s.name)))
            .unwrap_or_else(|| panic!("{url}: no such video track"));
        let variant = master
            .variants
            .iter()
            .find(|v| !v.is_i_frame && v.uri.contains(&format!("QualityLevels({})/", source.bitrate)))
            .unwrap();
        assert_eq!(stream.resolution, variant.resolution, "{url}");
        assert!(variant.codecs.as_deref().unwrap().starts_with(stream.codecs.as_deref().unwrap()), "{url}");
        assert!(stream.bandwidth > 0 && stream.average_bandwidth.is_some_and(|a| a <= stream.bandwidth));

        let Playlist::MediaPlaylist(frames) = parse_playlist(&get(&url)) else { panic!("{url}") };
        assert!(frames.i_frames_only && frames.end_list && frames.version.unwrap_or(1) >= 4, "{url}");
        let media_url = url.replace(",type=keyframes", "");
        let Playlist::MediaPlaylist(media) = parse_playlist(&get(&media_url)) else { panic!("{media_url}") };
        // Each EXTINF is written to 3 decimals: the sums agree within that rounding and 1 ms.
        let slack = 0.001 + 0.0005 * (frames.segments.len() + media.segments.len()) as f64;
        assert!((sum_extinf(&frames) - sum_extinf(&media)).abs() <= slack, "{url}: EXTINF sum vs media playlist");

        // Every segment of these fixtures starts at a keyframe, and a keyframe's time follows
        // the segment URLs' convention: the I-frame times are the media playlist's segment
        // times, filter window included.
        let times: Vec<u64> = frames.segments.iter().map(|s| keyframe_time(&s.uri)).collect();
        let segment_times: Vec<u64> = media.segments.iter().map(|s| media_time(&s.uri)).collect();
        assert_eq!(times, segment_times, "{url}: keyframe times");
        // ffmpeg may shift a fragmented source's timeline (negative composition offsets): the
        // source keyframes are matched at the offset of the whole track's first one.
        let whole_url = media_url.replace(&format!(",filter={WINDOW}"), "");
        let Playlist::MediaPlaylist(whole) = parse_playlist(&get(&whole_url)) else { panic!("{whole_url}") };
        let shift = source.times[0] as i64 - media_time(&whole.segments[0].uri) as i64;
        if !options.contains("filter=") {
            assert_eq!(times.len(), source.times.len(), "{url}: every keyframe");
        }
        let init = frames.segments[0].map.as_ref().map(|m| get(&resolve(&url, &m.uri)).body);
        assert_eq!(init.is_some(), !options.contains("m3u8-aapl"), "{url}: EXT-X-MAP for fMP4 only");
        let mut aes_key: Option<[u8; 16]> = None;
        for (s, time) in frames.segments.iter().zip(&times) {
            let res_url = resolve(&url, &s.uri);
            let got = get(&res_url);
            let body = match s.key.as_ref().filter(|_| envelope) {
                Some(k) => {
                    let key = *aes_key.get_or_insert_with(|| {
                        let key_url = resolve(&url, k.uri.as_deref().expect("key URI"));
                        get(&key_url).body.try_into().expect("16-byte key")
                    });
                    aes128_cbc_decrypt(&key, &hex16(k.iv.as_deref().expect("IV")), &got.body)
                }
                None => {
                    assert!(!envelope, "{res_url}: no EXT-X-KEY");
                    got.body
                }
            };
            let label = format!("{res_url} (source keyframe at {time})");
            let ours = decode(dir.path(), init.as_deref(), &body, key.then_some(KEY), &label);
            let k = source.times.iter().position(|&t| t as i64 == *time as i64 + shift);
            let k = k.unwrap_or_else(|| panic!("{label}: no source keyframe at {time} + {shift}"));
            assert_eq!(ours.len(), 1, "{label}: one frame, got {ours:?}");
            assert_eq!(common::hash_of(&ours[0]), source.hashes[k], "{label}: decodes to the source's keyframe");
            decoded += 1;
        }
    }
    decoded
}

/// `{time}` of a `Fragments({track}={time},…)` URI.
fn media_time(uri: &str) -> u64 {
    let rest = &uri[uri.find("Fragments(").expect("Fragments(") + "Fragments(".len()..];
    rest[rest.find('=').unwrap() + 1..rest.find(',').unwrap()].parse().unwrap()
}

#[test]
fn i_frame_playlists_decode_to_the_source_keyframes_clear() {
    let server = start();
    for asset in ASSETS {
        let sources = source_keyframes(asset);
        assert!(!sources.is_empty(), "{asset}: no video");
        for format in ["m3u8-cmaf", "m3u8-aapl", "m3u8-aapl-v3"] {
            let n =
                check_multivariant(&server, &format!("clear-{asset}"), asset, &format!("format={format}"), &sources);
            match n {
                0 => eprintln!("ok: {asset} {format}: no I-frame streams (version 3)"),
                n => eprintln!("ok: {asset} {format}: {n} keyframes decode to the source's"),
            }
        }
    }
}

#[test]
fn i_frame_playlists_decode_encrypted() {
    let server = start();
    let sources = source_keyframes("ladder");
    for (locator, options) in [
        ("env-ladder", "format=m3u8-aapl,encryption=cbc"),
        ("env-ladder", "format=m3u8-cmaf,encryption=cbc"),
        ("drm-ladder", "format=m3u8-cmaf,encryption=cenc"),
        ("drm-ladder", "format=m3u8-cmaf,encryption=cbcs-aapl"),
    ] {
        let n = check_multivariant(&server, locator, "ladder", options, &sources);
        assert!(n >= 12, "{options}: {n} keyframes");
        eprintln!("ok: ladder {options}: {n} keyframes decrypt and decode to the source's");
    }
}

#[test]
fn a_filter_window_trims_the_i_frame_playlist_like_the_media_playlist() {
    let server = start();
    let sources = source_keyframes("ladder");
    let n =
        check_multivariant(&server, "clear-ladder", "ladder", &format!("format=m3u8-cmaf,filter={WINDOW}"), &sources);
    // 2 s GOPs: the 2 s – 6 s window holds 2 of each rendition's 4 keyframes.
    assert_eq!(n, 2 * sources.len());
}

#[test]
fn keyframe_resources_differ_from_segments_and_bad_ones_are_refused() {
    let server = start();
    let base = |rest: &str| server.url(&format!("/env-ladder/ladder.ism/QualityLevels(150000)/{rest}"));
    let first = source_keyframes("ladder")[0].times[0];
    // A keyframe and the segment starting at the same time: other bytes, other IVs.
    let kf = get(&base(&format!("KeyFrames(video={first},format=m3u8-aapl,encryption=cbc).ts")));
    let seg = get(&base(&format!("Fragments(video={first},format=m3u8-aapl,encryption=cbc).ts")));
    assert_eq!(kf.header("content-type"), Some("video/mp2t"));
    assert!(kf.body.len() < seg.body.len() && kf.header("etag") != seg.header("etag"));
    let status = |url: String| common::get_blocking(&url).status.as_u16();
    assert_eq!(status(base(&format!("KeyFrames(video={},format=m3u8-aapl,encryption=cbc)", first + 1))), 404);
    let audio = server
        .url(&format!("/clear-ladder/ladder.ism/QualityLevels(128000)/KeyFrames(audio_eng={first},format=m3u8-cmaf)"));
    assert_eq!(status(audio), 400);
    let audio_list = server
        .url("/clear-ladder/ladder.ism/QualityLevels(128000)/Manifest(audio_eng,format=m3u8-cmaf,type=keyframes)");
    assert_eq!(status(audio_list), 400);
    assert_eq!(
        status(base(&format!("KeyFrames(video={first},format=m3u8-aapl)"))),
        403,
        "clear on a protected locator"
    );
}

// ---------------------------------------------------------------------------------------
// DASH.

/// One trick-mode Representation: (its main set's id, its id, init URL, media template,
/// expanded (t, d) timeline).
struct TrickRep {
    main_set: String,
    id: String,
    init: String,
    media: String,
    timeline: Vec<(u64, u64)>,
}

/// The video AdaptationSet ids and the trick-mode Representations of an MPD.
fn trick_reps(mpd: &str) -> (Vec<String>, Vec<TrickRep>) {
    let mut reader = quick_xml::Reader::from_str(mpd);
    let (mut video_sets, mut reps) = (Vec::new(), Vec::new());
    let (mut set_video, mut set_id, mut trick_of): (bool, String, Option<String>) = (false, String::new(), None);
    let (mut t, mut current): (u64, Option<TrickRep>) = (0, None);
    let attr = |e: &quick_xml::events::BytesStart<'_>, name: &str| -> Option<String> {
        e.attributes().flatten().find(|a| a.key.as_ref() == name).map(|a| a.value.into_owned())
    };
    loop {
        match reader.read_event().expect("MPD parses") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "AdaptationSet" => {
                    set_video = attr(&e, "contentType").as_deref() == Some("video");
                    set_id = attr(&e, "id").expect("AdaptationSet@id");
                    trick_of = None;
                }
                "EssentialProperty"
                    if attr(&e, "schemeIdUri").as_deref() == Some("http://dashif.org/guidelines/trickmode") =>
                {
                    trick_of = attr(&e, "value");
                }
                "Representation" if trick_of.is_some() => {
                    assert_eq!(attr(&e, "codingDependency").as_deref(), Some("false"));
                    assert!(attr(&e, "maxPlayoutRate").is_some());
                    current = Some(TrickRep {
                        main_set: trick_of.clone().unwrap(),
                        id: attr(&e, "id").unwrap(),
                        init: String::new(),
                        media: String::new(),
                        timeline: Vec::new(),
                    });
                }
                "SegmentTemplate" => {
                    if let Some(r) = current.as_mut() {
                        r.init = common::xml_unescape(&attr(&e, "initialization").unwrap());
                        r.media = common::xml_unescape(&attr(&e, "media").unwrap());
                    }
                }
                "S" => {
                    if let Some(r) = current.as_mut() {
                        t = attr(&e, "t").map_or(t, |v| v.parse().unwrap());
                        let d: u64 = attr(&e, "d").unwrap().parse().unwrap();
                        for _ in 0..=attr(&e, "r").map_or(0, |v| v.parse::<u64>().unwrap()) {
                            r.timeline.push((t, d));
                            t += d;
                        }
                    }
                }
                _ => {}
            },
            Event::End(e) => match e.name().as_ref() {
                "Representation" => reps.extend(current.take()),
                "AdaptationSet" if set_video && trick_of.is_none() => video_sets.push(set_id.clone()),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    (video_sets, reps)
}

#[test]
fn dash_trick_mode_sets_list_the_keyframes_and_serve_the_hls_bytes() {
    let server = start();
    for (locator, asset, encryption) in [
        ("clear-ladder", "ladder", ""),
        ("clear-hevc", "hevc", ""),
        ("clear-edit", "edit", ""),
        ("drm-ladder", "ladder", ",encryption=cenc"),
    ] {
        let sources = source_keyframes(asset);
        let mpd_url = server.url(&format!("/{locator}/{asset}.ism/manifest(format=mpd-time-cmaf{encryption}).mpd"));
        let mpd = get(&mpd_url).text();
        let (video_sets, reps) = trick_reps(&mpd);
        assert_eq!(reps.len(), sources.len(), "{mpd_url}: one trick Representation per video track");
        for rep in &reps {
            assert!(video_sets.contains(&rep.main_set), "{mpd_url}: {} names set {}", rep.id, rep.main_set);
            let source = sources.iter().find(|s| rep.id == format!("{}-{}-trick", s.name, s.bitrate)).unwrap();
            let times: Vec<u64> = rep.timeline.iter().map(|&(t, _)| t).collect();
            assert_eq!(times, source.times, "{mpd_url} {}: timeline = the source's keyframes", rep.id);
            assert!(rep.timeline.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0), "{}: contiguous", rep.id);
            assert!(rep.init.contains("Fragments(") && rep.init.contains("=i,"), "{}: the main init", rep.init);
            for &(t, _) in &rep.timeline {
                let url = resolve(&mpd_url, &rep.media.replace("$Time$", &t.to_string()));
                let hls = url.replace("format=mpd-time-cmaf", "format=m3u8-cmaf");
                assert!(get(&url).body == get(&hls).body, "{url}: the HLS-CMAF KeyFrames bytes");
            }
        }
        eprintln!("ok: {asset}{encryption}: {} trick-mode Representations", reps.len());
    }
}

#[test]
fn inspect_lists_keyframes_and_the_i_frame_bandwidth() {
    let server = start();
    let dir = common::fixtures_dir().join("hevc");
    let out = common::run(Command::new(common::bin()).arg("inspect").arg(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out);
    let line = text.lines().find(|l| l.contains("keyframes (trick play):")).unwrap_or_else(|| panic!("{text}"));
    let sources = source_keyframes("hevc");
    assert!(line.contains(&format!("trick play): {} ", sources[0].times.len())), "{line}");
    let url = server.url("/clear-hevc/hevc.ism/manifest(format=m3u8-cmaf)");
    let Playlist::MasterPlaylist(master) = parse_playlist(&get(&url)) else { panic!("{url}") };
    let stream = master.variants.iter().find(|v| v.is_i_frame).expect("an I-frame stream");
    assert!(line.contains(&format!("peak {} bit/s", stream.bandwidth)), "{line} vs {stream:?}");
    assert!(line.contains(&format!("average {} bit/s", stream.average_bandwidth.unwrap())), "{line} vs {stream:?}");
}
