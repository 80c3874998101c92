//! Text in Smooth Streaming through the HTTP server: WebVTT sidecars (`fixtures/subtitles`,
//! `fixtures/subtitles-folder`) and the `wvtt` track of an MP4 source (`fixtures/text-mp4`)
//! as TTML fragments.
//!
//! * The client manifest is read with the Smooth test helpers (tests/common/smooth.rs,
//!   quick-xml): one `StreamIndex Type="text"` per text track (`Subtype` CAPT for the SDH
//!   track, SUBT otherwise; `Name`, `Language`, `Chunks`, `Url`) with one
//!   `QualityLevel FourCC="TTML"`; the `stpp` MP4 track is not listed and its fragments are a
//!   400.
//! * Every text fragment is parsed box by box by the same helpers (not by the crate's
//!   reader): `moof` (`mfhd`, `traf` with `tfhd`, `trun` of one sample whose data offset
//!   points at the `mdat` payload, the `tfxd` box whose time and duration are the chunk's `t`
//!   and `d`), no sample encryption box, and `mdat`.
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

use common::smooth::{self, Manifest, Stream};
use common::{get_blocking, TestServer};
use jit_origin::config::Config;
use jit_origin::media::webvtt::{self, Cue};
use jit_origin::plan::smooth::SmoothClock;
use jit_origin::serve::origin::Origin;
use jit_origin::source::asset::{load, resolve_source};
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;
use quick_xml::events::{BytesStart, Event};

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

/// The client manifest at `url`, its content type checked.
fn manifest(url: &str) -> Manifest {
    let got = get_blocking(url).ok();
    assert_eq!(got.header("content-type"), Some("application/vnd.ms-sstr+xml"), "{url}");
    Manifest::parse(&got.text()).unwrap_or_else(|e| panic!("{url}: {e}\n{}", got.text()))
}

fn text_streams(m: &Manifest) -> Vec<Stream<'_>> {
    m.streams().filter(|s| s.kind() == "text").collect()
}

/// The one sample of a fragment `fetch_fragments` checked: its `mdat` payload.
fn sample(fragment: &[u8]) -> &[u8] {
    let top = smooth::boxes(fragment, 0, fragment.len()).unwrap();
    top.iter().find(|b| &b.kind == b"mdat").expect("an mdat").body
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

/// The text streams of the manifest at `manifest_url`, checked, and the cues read back from
/// each one's fragments: name → (cues in presentation ms, first fragment time).
fn smooth_cues(manifest_url: &str, lead: u64) -> HashMap<String, (Vec<Cue>, u64)> {
    let m = manifest(manifest_url);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut out = HashMap::new();
    for stream in text_streams(&m) {
        let name = stream.name();
        let levels: Vec<_> = stream.levels().collect();
        assert_eq!(levels.len(), 1, "{name}: one QualityLevel");
        let level = levels[0];
        assert_eq!(level.attr("FourCC"), Some("TTML"), "{name}");
        assert_eq!(level.attr("CodecPrivateData"), Some(""), "{name}");
        let chunks = stream.chunks().unwrap();
        assert_eq!(stream.0.num("Chunks").unwrap(), chunks.len() as u64, "{name}: Chunks");
        let bitrate = level.num("Bitrate").unwrap();
        // Content type, tfxd = the chunk's t and d, trun durations adding up to d, the data
        // offset pointing at the mdat payload.
        let fetched = runtime
            .block_on(smooth::fetch_fragments(&common::client(), manifest_url, stream, bitrate))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut pieces: Vec<Cue> = Vec::new();
        for ((bytes, parsed), chunk) in fetched.fragments.iter().zip(&fetched.parsed).zip(&chunks) {
            let what = format!("{name} at {}", chunk.t);
            assert_eq!(parsed.sample_count, 1, "{what}: one sample");
            assert!(parsed.piff.is_none() && parsed.senc.is_none(), "{what}: text is served clear");
            let (paragraphs, lang) = ttml(std::str::from_utf8(sample(bytes)).unwrap());
            assert_eq!(Some(lang.as_str()), stream.0.attr("Language"), "{what}: xml:lang");
            // Presentation ms of the fragment's start: its axis time less the lead.
            assert_eq!((chunk.t - lead) % 10_000, 0, "{what}: the fragment starts on a ms");
            let start_ms = (chunk.t - lead) / 10_000;
            for (begin, end, text) in paragraphs {
                assert!(begin < end && end <= chunk.d / 10_000, "{what}: {begin}..{end} within the fragment");
                let (start_ms, end_ms) = (start_ms + begin, start_ms + end);
                // A cue over several fragments is clipped to each: join its pieces.
                match pieces.last_mut() {
                    Some(last) if last.end_ms == start_ms && last.text == text => last.end_ms = end_ms,
                    _ => pieces.push(Cue { start_ms, end_ms, id: String::new(), settings: String::new(), text }),
                }
            }
        }
        out.insert(name.to_owned(), (pieces, chunks.first().map_or(0, |c| c.t)));
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
        let m = manifest(&url);
        // Text streams follow video and audio; `outputFlag=false` tracks are not listed.
        let types: Vec<&str> = m.streams().map(|s| s.kind()).collect();
        let first_text = types.iter().position(|&t| t == "text").unwrap();
        assert!(types[first_text..].iter().all(|&t| t == "text"), "{types:?}");
        let listed: Vec<(&str, &str, &str)> = text_streams(&m)
            .iter()
            .map(|s| (s.name(), s.0.attr("Language").unwrap_or(""), s.0.attr("Subtype").unwrap_or("")))
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
    let m = manifest(&url);
    let names: Vec<&str> = text_streams(&m).iter().map(|s| s.name()).collect();
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
    let m = manifest(&url);
    assert!(m.protection_header().unwrap().is_some(), "{url}: no ProtectionHeader");
    let streams = text_streams(&m);
    assert_eq!(streams.len(), 3, "{url}");
    assert!(streams.iter().all(|s| s.0.attr("Url").is_some_and(|u| u.contains("encryption=cenc"))), "{streams:?}");
    // smooth_cues asserts every fragment has no sample encryption box.
    let cues = smooth_cues(&url, lead("subtitles"));
    assert_eq!(cues["subtitles_eng"].0, sidecar("subtitles", "subtitles_eng.vtt"));
}
