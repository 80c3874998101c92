//! Subtitles through the HTTP server: WebVTT sidecars named in an `.ism`
//! (`fixtures/subtitles`) and text tracks of MP4 sources (`fixtures/text-mp4`: `wvtt` in a
//! progressive file, `stpp` in a CMAF file), in every HLS and DASH format.
//!
//! * `hls_*`: the multivariant playlist parsed with m3u8-rs (the SUBTITLES group and its
//!   attributes, every variant naming it), each text media playlist, and every text segment
//!   parsed back with our WebVTT parser: cue text and times at known positions, the cue that
//!   crosses the 2 s boundary in both segments, `X-TIMESTAMP-MAP` per format.
//! * `timestamp_map_*`: ffprobe reads the PTS of the first video segment's frames; minus the
//!   map they must be the source's presentation times (ffprobe on the source), so a cue's
//!   time plus the map lands on the frame the source shows at that time.
//! * `dash_*`: the MPD parsed with quick-xml (text sets, Role, Label, lang, codecs), the
//!   `wvtt` segments parsed with mp4-atom and turned back into cues by the converter.
//! * `filter_*`: a time filter shifts cues and video alike.
//! * `mp4_text_*`: the `wvtt` and `stpp` tracks of MP4 sources in each format.

mod common;

use std::path::Path;
use std::process::Command;

use common::{get_blocking, Got, TestServer};
use jit_origin::config::Config;
use jit_origin::media::webvtt::{self, Cue};
use jit_origin::serve::origin::Origin;
use m3u8_rs::{AlternativeMediaType, MasterPlaylist, MediaPlaylist};
use mp4_atom::{Decode, Mdat, Moof, Styp};

const SIDECARS: &str = "loc-subtitles";
const MP4_TEXT: &str = "loc-text-mp4";

const CROSSING: &str = "This cue crosses the 2 s segment boundary";

fn server() -> TestServer {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    text.push_str(&common::clear_locator_toml(SIDECARS, "subtitles"));
    text.push_str(&common::clear_locator_toml(MP4_TEXT, "text-mp4"));
    text.push_str("[[filter]]\nname = \"from2\"\nstart_secs = 2.0\n");
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http.clone())
}

fn manifest_url(server: &TestServer, locator: &str, asset: &str, query: &str) -> String {
    // With the extension, so child URLs carry theirs (`.vtt` for WebVTT segments).
    let ext = if query.contains("format=m3u8") { "m3u8" } else { "mpd" };
    server.url(&format!("/{locator}/{asset}.ism/manifest({query}).{ext}"))
}

/// `uri` resolved against the document at `base`.
fn resolve(base: &str, uri: &str) -> String {
    reqwest::Url::parse(base).and_then(|b| b.join(uri)).map(|u| u.to_string()).unwrap_or_else(|e| panic!("{uri}: {e}"))
}

fn fetch(url: &str) -> Got {
    get_blocking(url).ok()
}

fn master(url: &str) -> MasterPlaylist {
    let got = fetch(url);
    m3u8_rs::parse_master_playlist_res(&got.body).unwrap_or_else(|e| panic!("{url}: {e:?}\n{}", got.text()))
}

fn media(url: &str) -> MediaPlaylist {
    let got = fetch(url);
    m3u8_rs::parse_media_playlist_res(&got.body).unwrap_or_else(|e| panic!("{url}: {e:?}\n{}", got.text()))
}

/// The sidecar's cues as our parser reads the file.
fn sidecar(file: &str) -> webvtt::WebVtt {
    let path = common::fixtures_dir().join("subtitles").join(file);
    webvtt::parse(&std::fs::read(&path).unwrap()).unwrap()
}

/// `MPEGTS` of a WebVTT segment's `X-TIMESTAMP-MAP` (LOCAL must be 0).
fn timestamp_map(text: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with("X-TIMESTAMP-MAP=")).unwrap_or_else(|| panic!("no map:\n{text}"));
    let mut mpegts = None;
    for part in line["X-TIMESTAMP-MAP=".len()..].split(',') {
        match part.split_once(':') {
            Some(("MPEGTS", v)) => mpegts = Some(v.parse::<u64>().unwrap()),
            Some(("LOCAL", v)) => assert_eq!(webvtt::parse_timestamp(v), Some(0), "{line}"),
            _ => panic!("bad map {line}"),
        }
    }
    mpegts.unwrap_or_else(|| panic!("no MPEGTS in {line}"))
}

/// (segment URL, start s, duration s) of a media playlist at `url`.
fn segments(url: &str) -> Vec<(String, f64, f64)> {
    let playlist = media(url);
    let mut t = 0.0;
    playlist
        .segments
        .iter()
        .map(|s| {
            let out = (resolve(url, &s.uri), t, f64::from(s.duration));
            t += f64::from(s.duration);
            out
        })
        .collect()
}

/// The first EXT-X-STREAM-INF (not an I-frame playlist): video first.
fn first_variant(m: &MasterPlaylist) -> &m3u8_rs::VariantStream {
    m.variants.iter().find(|v| !v.is_i_frame).expect("a variant")
}

fn subtitle_renditions(m: &MasterPlaylist) -> Vec<&m3u8_rs::AlternativeMedia> {
    m.alternatives.iter().filter(|a| a.media_type == AlternativeMediaType::Subtitles).collect()
}

const HLS_FORMATS: [&str; 3] = ["m3u8-aapl", "m3u8-aapl-v3", "m3u8-cmaf"];

#[test]
fn hls_multivariant_lists_a_subtitles_group() {
    let server = server();
    for format in HLS_FORMATS {
        let url = manifest_url(&server, SIDECARS, "subtitles", &format!("format={format}"));
        let m = master(&url);
        let subs = subtitle_renditions(&m);
        let summary: Vec<(Option<&str>, &str, bool, bool, bool)> = subs
            .iter()
            .map(|a| (a.language.as_deref(), a.name.as_str(), a.default, a.autoselect, a.characteristics.is_some()))
            .collect();
        // The German sidecar has outputFlag=false: not listed.
        assert_eq!(
            summary,
            [
                (Some("eng"), "English", true, true, false),
                (Some("fra"), "Français", false, true, false),
                (Some("eng"), "English (SDH)", false, true, true),
            ],
            "{format}"
        );
        assert!(subs.iter().all(|a| a.group_id == "subs" && !a.forced && a.uri.is_some()));
        assert_eq!(
            subs[2].characteristics.as_deref(),
            Some("public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound")
        );
        assert!(!m.variants.is_empty());
        // I-frame playlists (EXT-X-I-FRAME-STREAM-INF) have no renditions.
        for v in m.variants.iter().filter(|v| !v.is_i_frame) {
            assert_eq!(v.subtitles.as_deref(), Some("subs"), "{format}: {}", v.uri);
            // WebVTT text segments add nothing to CODECS.
            let codecs = v.codecs.as_deref().unwrap_or("");
            assert!(!codecs.contains("wvtt") && !codecs.contains("stpp"), "{format}: {codecs}");
        }
    }
}

#[test]
fn hls_text_segments_carry_the_cues_aligned_to_video() {
    let server = server();
    let eng = sidecar("subtitles_eng.vtt");
    for format in HLS_FORMATS {
        let url = manifest_url(&server, SIDECARS, "subtitles", &format!("format={format}"));
        let m = master(&url);
        let video = segments(&resolve(&url, &first_variant(&m).uri));
        let subs = subtitle_renditions(&m);
        let text_url = resolve(&url, subs[0].uri.as_deref().unwrap());
        let text = segments(&text_url);
        // The same segments as the video; the last one may end earlier (at the cues' or the
        // presentation's end).
        let spans = |s: &[(String, f64, f64)]| {
            s.iter().enumerate().map(|(k, x)| (x.1, if k + 1 < s.len() { x.2 } else { 0.0 })).collect::<Vec<_>>()
        };
        assert_eq!(spans(&text), spans(&video), "{format}: text segments follow the video's");
        let playlist = fetch(&text_url).text();
        assert!(!playlist.contains("#EXT-X-MAP") && !playlist.contains("#EXT-X-KEY"), "{playlist}");

        let expected_map = if format == "m3u8-cmaf" { 0 } else { 900_000 };
        let mut seen: Vec<Cue> = Vec::new();
        let mut crossing_in = Vec::new();
        for (k, (seg_url, start, duration)) in text.iter().enumerate() {
            assert!(seg_url.contains(".vtt"), "{seg_url}");
            let got = fetch(seg_url);
            assert_eq!(got.header("content-type"), Some("text/vtt; charset=utf-8"), "{seg_url}");
            let body = got.text();
            assert_eq!(timestamp_map(&body), expected_map, "{format} {seg_url}");
            let vtt = webvtt::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{seg_url}: {e}\n{body}"));
            assert_eq!(vtt.header_blocks, eng.header_blocks, "STYLE repeated in every segment");
            let (a, b) = ((start * 1000.0).round() as u64, ((start + duration) * 1000.0).round() as u64);
            for cue in &vtt.cues {
                assert!(cue.start_ms < b && cue.end_ms > a, "{seg_url} [{a}, {b}): cue {cue:?} outside");
                if cue.text == CROSSING {
                    crossing_in.push(k);
                }
                if !seen.contains(cue) {
                    seen.push(cue.clone());
                }
            }
        }
        // Every cue with its full times, the boundary-crossing one in both segments.
        assert_eq!(seen, eng.cues, "{format}");
        assert_eq!(crossing_in, [0, 1], "{format}");
        let crossing = eng.cues.iter().find(|c| c.text == CROSSING).unwrap();
        assert_eq!((crossing.start_ms, crossing.end_ms), (1500, 2500));
    }
}

/// Packet presentation times (s) of the first video stream of `file`, ascending.
fn video_pts(file: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

#[test]
fn timestamp_map_lands_cues_on_the_source_frames() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let source = video_pts(&common::fixtures_dir().join("subtitles/video_150k.mp4"));
    for format in HLS_FORMATS {
        let url = manifest_url(&server, SIDECARS, "subtitles", &format!("format={format}"));
        let m = master(&url);
        let video_url = resolve(&url, &first_variant(&m).uri);
        let first = &segments(&video_url)[0].0;
        let mut bytes = Vec::new();
        if format == "m3u8-cmaf" {
            let playlist = media(&video_url);
            let map = playlist.segments[0].map.as_ref().expect("EXT-X-MAP");
            bytes.extend(fetch(&resolve(&video_url, &map.uri)).body);
        }
        bytes.extend(fetch(first).body);
        let file = dir.path().join(format!("{format}.seg"));
        std::fs::write(&file, &bytes).unwrap();
        let ours = video_pts(&file);

        let subs = subtitle_renditions(&m);
        let text_first = &segments(&resolve(&url, subs[0].uri.as_deref().unwrap()))[0].0;
        let mpegts = timestamp_map(&fetch(text_first).text()) as f64 / 90_000.0;
        assert!(!ours.is_empty());
        for (k, (t, s)) in ours.iter().zip(&source).enumerate() {
            assert!((t - mpegts - s).abs() < 0.0005, "{format}: frame {k} at {t} − map {mpegts} ≠ source {s}");
        }
        // The first cue (0.5 s) lands on the source's 0.5 s frame.
        let cue = 0.5;
        let at = ours.iter().position(|t| (t - mpegts - cue).abs() < 0.0005).expect("a frame at the cue");
        assert!((source[at] - cue).abs() < 0.0005);
    }
}

// ---------------------------------------------------------------------------------------
// DASH

/// (AdaptationSet attributes, its Role value, Label text, Representation attributes,
/// SegmentTemplate attributes, S elements) of each text AdaptationSet.
#[derive(Debug, Default, Clone)]
struct TextSet {
    lang: String,
    mime: String,
    role: String,
    label: String,
    codecs: String,
    has_protection: bool,
    timescale: u64,
    pto: u64,
    init: String,
    media: String,
    /// (t, d, r) of each `S`.
    s: Vec<(Option<u64>, u64, u64)>,
}

fn attrs(e: &quick_xml::events::BytesStart) -> std::collections::HashMap<String, String> {
    e.attributes()
        .map(|a| {
            let a = a.unwrap();
            (a.key.as_ref().to_owned(), a.normalized_value(quick_xml::XmlVersion::Explicit1_0).unwrap().into_owned())
        })
        .collect()
}

/// The MPD's AdaptationSets: (contentType, parsed text set).
fn dash_sets(mpd: &str) -> Vec<(String, TextSet)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(mpd);
    let mut sets: Vec<(String, TextSet)> = Vec::new();
    let mut in_label = false;
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let a = attrs(&e);
                let get = |k: &str| a.get(k).cloned().unwrap_or_default();
                let num = |k: &str| a.get(k).map(|v| v.parse::<u64>().unwrap());
                match e.name().as_ref() {
                    "AdaptationSet" => sets.push((
                        get("contentType"),
                        TextSet { lang: get("lang"), mime: get("mimeType"), ..Default::default() },
                    )),
                    "Role" => sets.last_mut().unwrap().1.role = get("value"),
                    "ContentProtection" => sets.last_mut().unwrap().1.has_protection = true,
                    "Label" => in_label = true,
                    "Representation" => sets.last_mut().unwrap().1.codecs = get("codecs"),
                    "SegmentTemplate" => {
                        let set = &mut sets.last_mut().unwrap().1;
                        set.timescale = num("timescale").unwrap();
                        set.pto = num("presentationTimeOffset").unwrap_or(0);
                        set.init = get("initialization");
                        set.media = get("media");
                    }
                    "S" => sets.last_mut().unwrap().1.s.push((num("t"), num("d").unwrap(), num("r").unwrap_or(0))),
                    _ => {}
                }
            }
            Event::Text(t) if in_label => {
                sets.last_mut().unwrap().1.label = t.xml10_content().trim().to_owned();
            }
            Event::End(e) if e.name().as_ref() == "Label" => in_label = false,
            _ => {}
        }
    }
    sets
}

/// Segment start times of a set's SegmentTimeline.
fn s_times(set: &TextSet) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut t = 0;
    for &(start, d, r) in &set.s {
        t = start.unwrap_or(t);
        for _ in 0..=r {
            out.push((t, d));
            t += d;
        }
    }
    out
}

/// A text fMP4 segment (after an optional `styp`): its samples as (start, end, bytes) in
/// track ticks, from tfdt and trun with mp4-atom.
fn fmp4_samples(segment: &[u8], timescale: u64) -> Vec<(u64, u64, Vec<u8>)> {
    let mut buf = segment;
    if buf.get(4..8) == Some(b"styp") {
        Styp::decode(&mut buf).unwrap();
    }
    let moof = Moof::decode(&mut buf).unwrap();
    let mdat = Mdat::decode(&mut buf).unwrap();
    let traf = &moof.traf[0];
    let mut t = traf.tfdt.as_ref().unwrap().base_media_decode_time;
    let mut at = 0usize;
    let mut out = Vec::new();
    for e in traf.trun[0].samples.iter() {
        let d = u64::from(e.duration.or(traf.tfhd.default_sample_duration).unwrap());
        let size = e.size.or(traf.tfhd.default_sample_size).unwrap() as usize;
        out.push((t * 1000 / timescale, (t + d) * 1000 / timescale, mdat.data[at..at + size].to_vec()));
        at += size;
        t += d;
    }
    assert_eq!(at, mdat.data.len(), "mdat holds exactly the samples");
    out
}

/// The cues of a DASH text set, every segment fetched and converted back, shifted by the PTO.
fn dash_cues(mpd_url: &str, set: &TextSet) -> (Vec<u8>, Vec<Cue>) {
    let init = fetch(&resolve(mpd_url, &set.init)).body;
    let mut samples = Vec::new();
    for (t, _) in s_times(set) {
        let url = resolve(mpd_url, &set.media.replace("$Time$", &t.to_string()));
        let got = fetch(&url);
        assert_eq!(got.header("content-type"), Some("application/mp4"), "{url}");
        samples.extend(fmp4_samples(&got.body, set.timescale));
    }
    let pto_ms = set.pto * 1000 / set.timescale;
    let cues = webvtt::cues_from_wvtt(samples.iter().map(|(a, b, d)| (*a, *b, &d[..]))).unwrap();
    let shifted = cues
        .into_iter()
        .map(|c| Cue { start_ms: c.start_ms.saturating_sub(pto_ms), end_ms: c.end_ms.saturating_sub(pto_ms), ..c })
        .collect();
    (init, shifted)
}

#[test]
fn dash_lists_text_sets_and_wvtt_segments_carry_the_cues() {
    let server = server();
    for format in ["mpd-time-cmaf", "mpd-time-csf"] {
        let url = manifest_url(&server, SIDECARS, "subtitles", &format!("format={format}"));
        let mpd = fetch(&url).text();
        let sets = dash_sets(&mpd);
        let text: Vec<&TextSet> = sets.iter().filter(|(c, _)| c == "text").map(|(_, s)| s).collect();
        let summary: Vec<(&str, &str, &str, &str, &str)> = text
            .iter()
            .map(|s| (s.lang.as_str(), s.mime.as_str(), s.role.as_str(), s.label.as_str(), s.codecs.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("eng", "application/mp4", "subtitle", "English", "wvtt"),
                ("fra", "application/mp4", "subtitle", "Français", "wvtt"),
                ("eng", "application/mp4", "caption", "English (SDH)", "wvtt"),
            ],
            "{format}\n{mpd}"
        );
        let video = sets.iter().find(|(c, _)| c == "video").map(|(_, s)| s).unwrap();
        let video_ms: Vec<u64> = s_times(video).iter().map(|(t, _)| (t - video.pto) * 1000 / video.timescale).collect();
        for (set, file) in text.iter().zip(["subtitles_eng.vtt", "subtitles_fra.vtt", "captions_eng.vtt"]) {
            let starts: Vec<u64> = s_times(set).iter().map(|(t, _)| (t - set.pto) * 1000 / set.timescale).collect();
            assert_eq!(starts, video_ms, "{format} {file}: text segments start with the video's");
            let (init, cues) = dash_cues(&url, set);
            let mut buf = &init[..];
            mp4_atom::Ftyp::decode(&mut buf).unwrap();
            let moov = mp4_atom::Moov::decode(&mut buf).unwrap();
            assert_eq!(moov.trak[0].mdia.hdlr.handler, mp4_atom::FourCC::new(b"text"), "{format} {file}");
            assert!(init.windows(4).any(|w| w == b"wvtt") && init.windows(4).any(|w| w == b"vttC"));
            assert_eq!(cues, sidecar(file).cues, "{format} {file}");
        }
    }
}

#[test]
fn text_is_served_clear_from_a_protected_locator() {
    // With encryption= on every URL: the text playlist has no EXT-X-KEY and its segments are
    // WebVTT, the DASH text set has no ContentProtection and clear wvtt segments, while the
    // video is encrypted.
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for (id, policy) in [("loc-env", "envelope"), ("loc-drm", "multi-drm")] {
        text.push_str(&format!(
            "[[locator]]\nid = \"{id}\"\nstorage = \"{}\"\nasset = \"subtitles\"\npolicy = \"{policy}\"\nkeys = [{{ kid = \"00112233445566778899aabbccddeeff\", key = \"0102030405060708090a0b0c0d0e0f10\" }}]\n",
            common::FIXTURES_STORAGE
        ));
    }
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    let server = TestServer::serve(Origin::from_config(&config).expect("origin"), config.http.clone());
    for (locator, format, encryption) in [
        ("loc-env", "m3u8-aapl", "cbc"),
        ("loc-env", "m3u8-cmaf", "cbc"),
        ("loc-drm", "mpd-time-cmaf", "cenc"),
        ("loc-drm", "mpd-time-csf", "cenc"),
    ] {
        let url = manifest_url(&server, locator, "subtitles", &format!("format={format},encryption={encryption}"));
        if format.starts_with("m3u8") {
            let m = master(&url);
            let subs = subtitle_renditions(&m);
            let text_url = resolve(&url, subs[0].uri.as_deref().unwrap());
            assert!(text_url.contains("encryption="), "{text_url}");
            assert!(!fetch(&text_url).text().contains("#EXT-X-KEY"));
            let seg = &segments(&text_url)[0].0;
            assert!(fetch(seg).text().starts_with("WEBVTT"), "{seg}");
            let video = fetch(&resolve(&url, &first_variant(&m).uri)).text();
            assert!(video.contains("#EXT-X-KEY"), "{video}");
        } else {
            let mpd = fetch(&url).text();
            let sets = dash_sets(&mpd);
            let (_, set) = sets.iter().find(|(c, _)| c == "text").unwrap();
            assert!(!set.has_protection && sets.iter().any(|(c, s)| c == "video" && s.has_protection));
            let (init, cues) = dash_cues(&url, set);
            assert!(!init.windows(4).any(|w| w == b"encv" || w == b"enct" || w == b"sinf"));
            assert_eq!(cues, sidecar("subtitles_eng.vtt").cues);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Filters

#[test]
fn filter_shifts_cues_and_video_alike() {
    let server = server();
    // HLS: the window lists the segments from 2 s on; the map does not change, so each cue
    // keeps its PTS and stays on its frame.
    for format in HLS_FORMATS {
        let url = manifest_url(&server, SIDECARS, "subtitles", &format!("format={format},filter=from2"));
        let m = master(&url);
        let video = media(&resolve(&url, &first_variant(&m).uri));
        let text_url = resolve(&url, subtitle_renditions(&m)[0].uri.as_deref().unwrap());
        let text = segments(&text_url);
        assert_eq!(text.len(), video.segments.len(), "{format}");
        let body = fetch(&text[0].0).text();
        assert_eq!(timestamp_map(&body), if format == "m3u8-cmaf" { 0 } else { 900_000 });
        let vtt = webvtt::parse(body.as_bytes()).unwrap();
        assert_eq!(vtt.cues.first().map(|c| c.text.as_str()), Some(CROSSING), "{format}: {body}");
    }
    // DASH: the text set's presentationTimeOffset carries the window like the video's, so
    // every cue is 2 s earlier in the period and the video's segments start at 0 too.
    for format in ["mpd-time-cmaf", "mpd-time-csf"] {
        let url = manifest_url(&server, SIDECARS, "subtitles", &format!("format={format},filter=from2"));
        let sets = dash_sets(&fetch(&url).text());
        let (_, text) = sets.iter().find(|(c, _)| c == "text").unwrap();
        let (_, video) = sets.iter().find(|(c, _)| c == "video").unwrap();
        assert_eq!(text.pto, 2000, "{format}");
        let first = |s: &TextSet| (s_times(s)[0].0 - s.pto) * 1000 / s.timescale;
        assert_eq!((first(text), first(video)), (0, 0), "{format}");
        let (_, cues) = dash_cues(&url, text);
        let expected: Vec<Cue> = sidecar("subtitles_eng.vtt")
            .cues
            .into_iter()
            .filter(|c| c.end_ms > 2000)
            .map(|c| Cue { start_ms: c.start_ms.max(2000) - 2000, end_ms: c.end_ms - 2000, ..c })
            .collect();
        assert_eq!(cues, expected, "{format}");
    }
}

// ---------------------------------------------------------------------------------------
// Text tracks of MP4 sources

#[test]
fn mp4_text_tracks_in_each_format() {
    let server = server();
    // The wvtt track was written from the English sidecar (fixtures/text-mp4.py).
    let eng = sidecar("subtitles_eng.vtt");
    for format in HLS_FORMATS {
        let url = manifest_url(&server, MP4_TEXT, "text-mp4", &format!("format={format}"));
        let m = master(&url);
        let subs = subtitle_renditions(&m);
        let langs: Vec<Option<&str>> = subs.iter().map(|a| a.language.as_deref()).collect();
        let codecs = first_variant(&m).codecs.clone().unwrap_or_default();
        if format == "m3u8-cmaf" {
            // fMP4 text: both tracks, their codecs named in every variant.
            assert_eq!(langs, [Some("fra"), Some("eng")], "{format}");
            assert!(codecs.contains("stpp.ttml.im1t") && codecs.contains("wvtt"), "{codecs}");
        } else {
            // MPEG-TS formats: WebVTT text only, so the TTML track is left out.
            assert_eq!(langs, [Some("eng")], "{format}");
            assert!(!codecs.contains("wvtt") && !codecs.contains("stpp"), "{codecs}");
        }
        let wvtt = subs.iter().find(|a| a.language.as_deref() == Some("eng")).unwrap();
        let text_url = resolve(&url, wvtt.uri.as_deref().unwrap());
        let playlist = media(&text_url);
        let mut cues: Vec<Cue> = Vec::new();
        if format == "m3u8-cmaf" {
            let map = playlist.segments[0].map.as_ref().expect("fMP4 text has an EXT-X-MAP");
            let init = fetch(&resolve(&text_url, &map.uri)).body;
            assert!(init.windows(4).any(|w| w == b"wvtt"));
            let mut samples = Vec::new();
            for s in &playlist.segments {
                samples.extend(fmp4_samples(&fetch(&resolve(&text_url, &s.uri)).body, 1000));
            }
            cues = webvtt::cues_from_wvtt(samples.iter().map(|(a, b, d)| (*a, *b, &d[..]))).unwrap();
            // A sample crossing a segment boundary is in both segments: one cue, as players
            // show it once.
            cues.dedup();
        } else {
            for s in &playlist.segments {
                let got = fetch(&resolve(&text_url, &s.uri));
                assert_eq!(got.header("content-type"), Some("text/vtt; charset=utf-8"));
                let body = got.text();
                assert_eq!(timestamp_map(&body), 900_000);
                for c in webvtt::parse(body.as_bytes()).unwrap().cues {
                    if !cues.contains(&c) {
                        cues.push(c);
                    }
                }
            }
        }
        let texts = |cs: &[Cue]| cs.iter().map(|c| (c.start_ms, c.end_ms, c.text.clone())).collect::<Vec<_>>();
        assert_eq!(texts(&cues), texts(&eng.cues), "{format}");
    }
    // A TTML track has no TS form: its segment URL in a TS format is refused, not a panic.
    let url = manifest_url(&server, MP4_TEXT, "text-mp4", "format=mpd-time-cmaf");
    let sets = dash_sets(&fetch(&url).text());
    let codecs: Vec<&str> = sets.iter().filter(|(c, _)| c == "text").map(|(_, s)| s.codecs.as_str()).collect();
    assert_eq!(codecs, ["stpp.ttml.im1t", "wvtt"]);
    let (_, stpp) = sets.iter().find(|(_, s)| s.codecs.starts_with("stpp")).unwrap();
    let t = s_times(stpp)[0].0;
    let seg = resolve(&url, &stpp.media.replace("$Time$", &t.to_string()));
    let got = fetch(&seg);
    let mut buf = &got.body[..];
    if buf.get(4..8) == Some(b"styp") {
        Styp::decode(&mut buf).unwrap();
    }
    Moof::decode(&mut buf).unwrap();
    let mdat = Mdat::decode(&mut buf).unwrap();
    let ttml = String::from_utf8_lossy(&mdat.data);
    assert!(ttml.contains("<tt") && ttml.contains("Bonjour de jit-origin"), "{ttml}");
    let ts_seg = seg.replace("format=mpd-time-cmaf", "format=m3u8-aapl").replace(".m4s", ".vtt");
    let got = get_blocking(&ts_seg);
    assert!(got.status.is_client_error(), "{}", got.describe());
}
