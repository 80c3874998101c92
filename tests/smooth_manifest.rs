//! The Smooth Streaming client manifest over HTTP, read by an independent XML parser (Python's
//! `xml.etree`, in a subprocess) and checked against MS-SSTR §2.2.2 and the sources:
//!
//! * `every_locator_manifest_follows_ms_sstr`: for every locator of `config/origin.toml`
//!   (clear, and the multi-DRM one with `encryption=cenc`), 2.2 and 2.0 forms: every required
//!   attribute of every element with its type, `Chunks` / `QualityLevels` equal to the
//!   elements listed, `Index` unique and dense, chunk times contiguous (`t + d` = next `t`),
//!   `r` only in 2.2 and the 2.0 list the 2.2 one expanded; the first and last fragment of
//!   every QualityLevel answers 200 at the URL the `Url` template makes.
//! * `durations_and_codec_private_data_match_ffprobe`: `Duration` against ffprobe's duration
//!   of the source within a frame; `CodecPrivateData` against ffprobe's extradata (H.264
//!   `avcC` and HEVC `hvcC` parameter sets, the AAC AudioSpecificConfig).
//! * `filters_trim_chunks_as_the_mpd_does`: `manifest(filter=first4s)` lists the MPD's
//!   segments of the same filter at the same times (converted), a prefix of the unfiltered
//!   list.
//! * `cenc_manifest_carries_the_playready_header`: the ProtectionHeader's PlayReady Object:
//!   WRMHEADER KID = the locator's key id as a little-endian GUID, CHECKSUM = the first 8
//!   bytes of AES-ECB(key, KID).
//! * `tracks_smooth_cannot_carry_are_left_out`: AV1 is not listed and its fragments are a 400
//!   with the reason, WebVTT text is listed as TTML (`tests/smooth_text.rs` checks its cues);
//!   AES-128 and cbcs are a 400.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use common::{get_blocking, TestServer};
use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

const CLEAR_LADDER: &str = "8d3c4f0e-2b1a-4c55-9a77-0c1e5a6b7d01";
const DRM_LADDER: &str = "c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e09";
const ENVELOPE_LADDER: &str = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a08";
const DRM_KID: &str = "9eb4050de44b4802932e27d75083e266";
const DRM_KEY: &str = "166634c675823c235a4a9446fad52e4d";
const SMOOTH_CONTENT_TYPE: &str = "application/vnd.ms-sstr+xml";
const FOUR_CCS: [&str; 7] = ["H264", "HVC1", "HEV1", "AACL", "AACH", "AC-3", "EC-3"];

/// The default configuration, storage made absolute, plus clear locators of the AV1 and
/// subtitle fixtures.
fn config_text() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/config/origin.toml")).unwrap();
    let extra = ["av1", "subtitles"].map(|asset| {
        format!(
            "\n[[locator]]\nid = \"smooth-{asset}\"\nstorage = \"local\"\nasset = \"{asset}\"\npolicy = \"clear\"\n"
        )
    });
    text.replace("file://../fixtures", &format!("file://{root}/fixtures")) + &extra.concat()
}

fn start() -> TestServer {
    let config = Config::parse(&config_text(), common::fixtures_dir()).expect("config");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

/// (locator id, asset folder, policy) of every locator in `config/origin.toml`.
fn configured_locators() -> Vec<(String, String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/config/origin.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let field = |l: &toml::Value, k: &str| l.get(k).and_then(toml::Value::as_str).unwrap().to_owned();
    doc["locator"].as_array().unwrap().iter().map(|l| (field(l, "id"), field(l, "asset"), field(l, "policy"))).collect()
}

// ---------------------------------------------------------------------------------------
// The independent reader.

/// An element as Python's `xml.etree` reads it.
#[derive(Debug, Clone)]
struct Element {
    tag: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn from_json(v: &Value) -> Element {
        Element {
            tag: v["tag"].as_str().unwrap().to_owned(),
            attrs: v["attrs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
            text: v["text"].as_str().unwrap_or_default().to_owned(),
            children: v["children"].as_array().unwrap().iter().map(Element::from_json).collect(),
        }
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
    /// A required unsigned integer attribute.
    fn uint(&self, name: &str) -> u64 {
        let v = self.attr(name).unwrap_or_else(|| panic!("<{}> has no {name}: {:?}", self.tag, self.attrs));
        v.parse().unwrap_or_else(|_| panic!("<{}> {name}={v:?} is not an unsigned integer", self.tag))
    }
    fn all(&self, tag: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.tag == tag).collect()
    }
}

fn parse_xml(xml: &str) -> Element {
    const SCRIPT: &str = r#"
import json, sys, xml.etree.ElementTree as ET
def walk(e):
    return {"tag": e.tag, "attrs": dict(e.attrib), "text": (e.text or "").strip(), "children": [walk(c) for c in e]}
print(json.dumps(walk(ET.fromstring(sys.stdin.buffer.read()))))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(xml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "xml.etree refused the manifest: {}\n{xml}", String::from_utf8_lossy(&out.stderr));
    Element::from_json(&serde_json::from_slice(&out.stdout).unwrap())
}

/// GETs a Smooth manifest: 200, its content type, and the parsed document.
fn manifest(server: &TestServer, path: &str) -> Element {
    let got = get_blocking(&server.url(path));
    assert_eq!(got.status, 200, "{}", got.describe());
    assert_eq!(got.header("content-type"), Some(SMOOTH_CONTENT_TYPE), "{path}");
    parse_xml(&got.text())
}

/// The chunk list of a StreamIndex expanded: (t, d) of every fragment, checking that a `t`,
/// where given, continues the previous chunk (the manifests have no gaps).
fn expand(index: &Element, repeats_allowed: bool) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for c in index.all("c") {
        let d = c.uint("d");
        assert!(d > 0, "zero-length chunk in {:?}", index.attrs);
        let t = match (c.attr("t"), out.last()) {
            (Some(_), Some(&(pt, pd))) => {
                assert_eq!(c.uint("t"), pt + pd, "gap or overlap in {:?}", index.attrs);
                pt + pd
            }
            (Some(_), None) => c.uint("t"),
            (None, Some(&(pt, pd))) => pt + pd,
            (None, None) => panic!("the first chunk of {:?} has no t", index.attrs),
        };
        let r = match c.attr("r") {
            Some(_) => {
                assert!(repeats_allowed, "r in a 2.0 manifest: {:?}", c.attrs);
                c.uint("r")
            }
            None => 1,
        };
        assert!(r >= 1);
        for k in 0..r {
            out.push((t + k * d, d));
        }
    }
    out
}

fn is_upper_hex(s: &str) -> bool {
    !s.is_empty() && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// Every MS-SSTR §2.2.2 structure rule on `root`, a manifest of `minor` version; returns each
/// StreamIndex's expanded chunks by name.
fn check_structure(root: &Element, minor: u64) -> BTreeMap<String, Vec<(u64, u64)>> {
    assert_eq!(root.tag, "SmoothStreamingMedia");
    assert_eq!(root.uint("MajorVersion"), 2);
    assert_eq!(root.uint("MinorVersion"), minor);
    assert_eq!(root.uint("TimeScale"), 10_000_000);
    let duration = root.uint("Duration");
    assert!(duration > 0);
    let indexes = root.all("StreamIndex");
    assert!(!indexes.is_empty());
    let mut chunks_by_name = BTreeMap::new();
    let (mut start, mut end) = (u64::MAX, 0);
    for index in &indexes {
        let kind = index.attr("Type").expect("StreamIndex Type");
        assert!(["video", "audio", "text"].contains(&kind), "Type={kind}");
        let name = index.attr("Name").expect("StreamIndex Name").to_owned();
        assert!(!name.is_empty());
        let url = index.attr("Url").expect("StreamIndex Url");
        assert!(url.contains("{bitrate}") && url.contains("{start time}"), "Url={url}");
        assert!(url.contains(&format!("({name}={{start time}}")), "Url={url} names another track than {name}");
        if kind == "video" {
            for a in ["MaxWidth", "MaxHeight", "DisplayWidth", "DisplayHeight"] {
                assert!(index.uint(a) > 0, "{a}");
            }
        } else {
            assert!(index.attr("Language").is_some_and(|l| !l.is_empty()), "{:?}", index.attrs);
        }
        if kind == "text" {
            let subtype = index.attr("Subtype");
            assert!(matches!(subtype, Some("SUBT" | "CAPT")), "text Subtype={subtype:?}");
        }
        let levels = index.all("QualityLevel");
        assert_eq!(index.uint("QualityLevels") as usize, levels.len(), "{name}");
        let mut seen: Vec<u64> = levels.iter().map(|l| l.uint("Index")).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..levels.len() as u64).collect::<Vec<_>>(), "Index unique and dense in {name}");
        for level in &levels {
            let four_cc = level.attr("FourCC").expect("FourCC");
            if kind == "text" {
                // TTML documents: no decoder configuration; the bitrate is the track's URL one.
                assert_eq!(four_cc, "TTML");
                assert_eq!(level.attr("CodecPrivateData"), Some(""));
                level.uint("Bitrate");
                continue;
            }
            assert!(level.uint("Bitrate") > 0);
            assert!(FOUR_CCS.contains(&four_cc), "FourCC={four_cc}");
            let private = level.attr("CodecPrivateData").expect("CodecPrivateData");
            assert!(is_upper_hex(private), "CodecPrivateData={private}");
            if kind == "video" {
                assert!(level.uint("MaxWidth") > 0 && level.uint("MaxHeight") > 0);
                assert!(level.uint("MaxWidth") <= index.uint("MaxWidth"));
            } else {
                assert!(level.uint("SamplingRate") > 0 && level.uint("Channels") > 0);
                assert_eq!(level.uint("BitsPerSample"), 16);
                assert_eq!(level.uint("PacketSize"), 4);
                let tag = level.uint("AudioTag");
                assert_eq!(tag, if four_cc.starts_with("AAC") { 255 } else { 65534 }, "AudioTag of {four_cc}");
            }
        }
        let chunks = expand(index, minor == 2);
        assert_eq!(index.uint("Chunks") as usize, chunks.len(), "Chunks of {name}");
        start = start.min(chunks[0].0);
        end = end.max(chunks.last().map(|(t, d)| t + d).unwrap());
        assert!(chunks_by_name.insert(name.clone(), chunks).is_none(), "two StreamIndex named {name}");
    }
    assert_eq!(duration, end - start, "Duration = the latest chunk end − the earliest chunk start");
    chunks_by_name
}

/// The URL of `level`'s fragment at `t`, from `index`'s Url template.
fn fragment_url(manifest_url: &str, index: &Element, level: &Element, t: u64) -> String {
    let url = index.attr("Url").unwrap().replace("{bitrate}", level.attr("Bitrate").unwrap());
    let url = url.replace("{start time}", &t.to_string());
    format!("{}/{url}", manifest_url.rsplit_once('/').unwrap().0)
}

#[test]
fn every_locator_manifest_follows_ms_sstr() {
    let server = start();
    let locators = configured_locators();
    assert!(locators.len() >= 8, "{locators:?}");
    let mut checked = 0;
    for (id, asset, policy) in &locators {
        let options = match policy.as_str() {
            "clear" => "",
            "multi-drm" => "encryption=cenc",
            // Envelope (AES-128) has no Smooth form: see tracks_smooth_cannot_carry_are_left_out.
            _ => continue,
        };
        let base = format!("/{id}/{asset}.ism");
        let v22_path =
            if options.is_empty() { format!("{base}/manifest") } else { format!("{base}/manifest({options})") };
        let v20_path =
            format!("{base}/manifest(format=fmp4-v20{}{options})", if options.is_empty() { "" } else { "," });
        let v22 = manifest(&server, &v22_path);
        let v20 = manifest(&server, &v20_path);
        let chunks22 = check_structure(&v22, 2);
        let chunks20 = check_structure(&v20, 0);
        assert_eq!(chunks22, chunks20, "{asset}: the 2.0 chunk list is the 2.2 one expanded");
        assert_eq!(
            v20.all("StreamIndex").iter().map(|i| i.all("c").len()).sum::<usize>(),
            chunks20.values().map(Vec::len).sum::<usize>(),
            "one c per fragment in 2.0"
        );
        assert_eq!(v22.all("Protection").len(), usize::from(!options.is_empty()), "{asset}");
        // Every QualityLevel's first and last fragment is where the template says.
        let manifest_url = server.url(&v22_path);
        for index in v22.all("StreamIndex") {
            let chunks = &chunks22[index.attr("Name").unwrap()];
            for level in index.all("QualityLevel") {
                for &(t, _) in [chunks.first().unwrap(), chunks.last().unwrap()] {
                    let url = fragment_url(&manifest_url, index, level, t);
                    let got = get_blocking(&url);
                    assert_eq!(got.status, 200, "{}", got.describe());
                    assert!(got.body.len() > 8 && &got.body[4..8] == b"moof", "{url}: not a moof");
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 8, "{checked} locators checked");
}

// ---------------------------------------------------------------------------------------
// Against ffprobe.

/// ffprobe's first stream of `kind` (`v` / `a`) in `file`: its JSON, with extradata.
fn ffprobe_stream(file: &str, kind: &str) -> (Value, Vec<u8>) {
    let path = format!("{}/{file}", common::fixtures_dir().display());
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("{kind}:0"), "-show_streams", "-show_data"])
        .args(["-show_entries", "format=duration", "-of", "json", &path])
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = v["streams"][0].clone();
    // extradata as ffprobe dumps it: "00000000: 0164 000c ffe1 …  .d......" lines.
    let dump = stream["extradata"].as_str().unwrap_or_default();
    let mut bytes = Vec::new();
    for line in dump.lines().filter(|l| l.contains(": ")) {
        let hex = &line[line.find(": ").unwrap() + 2..];
        let hex: String = hex.chars().take(40).filter(|c| !c.is_whitespace()).collect();
        bytes.extend((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()));
    }
    (v, bytes)
}

/// ffprobe's start time of the first video stream of `file` read without its edit list.
fn first_pts_without_edit_list(file: &str) -> f64 {
    let path = format!("{}/{file}", common::fixtures_dir().display());
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-ignore_editlist", "1", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0", &path])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{path}: no start_time"))
}

/// The parameter sets of an `avcC` (SPS then PPS) or `hvcC` (VPS, SPS, PPS) extradata, in
/// Annex B form, upper-case hex (read here from ISO/IEC 14496-15, not with the origin's
/// parsers).
fn annex_b_of_extradata(extradata: &[u8], hevc: bool) -> String {
    let mut nals: Vec<&[u8]> = Vec::new();
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([extradata[at], extradata[at + 1]]));
    if hevc {
        let arrays = extradata[22];
        let mut at = 23;
        for _ in 0..arrays {
            let kind = extradata[at] & 0x3f;
            let count = u16_at(at + 1);
            at += 3;
            for _ in 0..count {
                let len = u16_at(at);
                if (32..=34).contains(&kind) {
                    nals.push(&extradata[at + 2..at + 2 + len]);
                }
                at += 2 + len;
            }
        }
    } else {
        let mut at = 5;
        for mask in [0x1f, 0xff] {
            let count = extradata[at] & mask;
            at += 1;
            for _ in 0..count {
                let len = u16_at(at);
                nals.push(&extradata[at + 2..at + 2 + len]);
                at += 2 + len;
            }
        }
    }
    nals.iter().map(|n| format!("00000001{}", hex_upper(n))).collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn durations_and_codec_private_data_match_ffprobe() {
    let server = start();
    // (locator, asset, video file, audio file, StreamIndex name of that audio).
    let cases = [
        (CLEAR_LADDER, "ladder", "ladder/video_600k.mp4", "ladder/audio_eng.mp4", "audio_eng"),
        ("3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a605", "hevc", "hevc/video_hevc.mp4", "hevc/audio_eng.mp4", "audio_eng"),
    ];
    for (locator, asset, video_file, audio_file, audio_name) in cases {
        let root = manifest(&server, &format!("/{locator}/{asset}.ism/manifest"));
        let indexes = root.all("StreamIndex");
        let video = indexes.iter().find(|i| i.attr("Type") == Some("video")).unwrap();
        let audio = indexes.iter().find(|i| i.attr("Name") == Some(audio_name)).unwrap();

        let (probe, extradata) = ffprobe_stream(video_file, "v");
        let stream = &probe["streams"][0];
        let hevc = stream["codec_name"] == "hevc";
        let width = stream["width"].as_u64().unwrap();
        let level = video
            .all("QualityLevel")
            .into_iter()
            .find(|l| l.uint("MaxWidth") == width)
            .unwrap_or_else(|| panic!("{asset}: no {width}-wide QualityLevel"));
        assert_eq!(level.attr("CodecPrivateData").unwrap(), annex_b_of_extradata(&extradata, hevc), "{video_file}");
        assert_eq!(level.uint("MaxHeight"), stream["height"].as_u64().unwrap());

        // Duration within a frame of the longest source.
        let frame = {
            let rate = stream["avg_frame_rate"].as_str().unwrap();
            let (n, d) = rate.split_once('/').unwrap();
            d.parse::<f64>().unwrap() / n.parse::<f64>().unwrap()
        };
        let seconds = |v: &Value| v["format"]["duration"].as_str().unwrap().parse::<f64>().unwrap();
        let (audio_probe, asc) = ffprobe_stream(audio_file, "a");
        let source = seconds(&probe).max(seconds(&audio_probe));
        // Chunk times are decode times: the first chunk starts the composition delay of the
        // first video frame (its PTS without the edit list) before the presentation does.
        let delay = first_pts_without_edit_list(video_file);
        let ours = root.uint("Duration") as f64 / 1e7;
        assert!(
            (ours - delay - source).abs() <= frame,
            "{asset}: Duration {ours} s, sources {source} s + first-frame delay {delay} s (frame {frame} s)"
        );

        let audio_level = &audio.all("QualityLevel")[0];
        assert_eq!(audio_level.attr("CodecPrivateData").unwrap(), hex_upper(&asc), "{audio_file}");
        let audio_stream = &audio_probe["streams"][0];
        assert_eq!(audio_level.attr("SamplingRate").unwrap(), audio_stream["sample_rate"].as_str().unwrap());
        assert_eq!(audio_level.uint("Channels"), audio_stream["channels"].as_u64().unwrap());
        assert_eq!(audio_level.attr("FourCC"), Some("AACL"));
    }
}

// ---------------------------------------------------------------------------------------
// Filters, protection, carriage.

/// Per Representation id prefix (the track name), the `$Time$` of every segment in an MPD,
/// and its timescale.
fn mpd_times(mpd: &Element) -> BTreeMap<String, (u64, Vec<u64>)> {
    let mut out = BTreeMap::new();
    let period = &mpd.children.iter().find(|c| c.tag.ends_with("Period")).unwrap();
    for set in period.children.iter().filter(|c| c.tag.ends_with("AdaptationSet")) {
        for rep in set.children.iter().filter(|c| c.tag.ends_with("Representation")) {
            let Some(template) = rep.children.iter().find(|c| c.tag.ends_with("SegmentTemplate")) else { continue };
            let Some(timeline) = template.children.iter().find(|c| c.tag.ends_with("SegmentTimeline")) else {
                continue;
            };
            let mut times = Vec::new();
            let mut next = 0;
            for s in &timeline.children {
                let t = s.attr("t").map_or(next, |t| t.parse().unwrap());
                let d: u64 = s.uint("d");
                for k in 0..=s.attr("r").map_or(0, |r| r.parse::<u64>().unwrap()) {
                    times.push(t + k * d);
                }
                next = t + (s.attr("r").map_or(0, |r| r.parse::<u64>().unwrap()) + 1) * d;
            }
            let id = rep.attr("id").unwrap();
            let name = id.rsplit_once('-').unwrap().0.to_owned();
            out.entry(name).or_insert((template.uint("timescale"), times));
        }
    }
    out
}

#[test]
fn filters_trim_chunks_as_the_mpd_does() {
    let server = start();
    let base = format!("/{CLEAR_LADDER}/ladder.ism");
    let whole = check_structure(&manifest(&server, &format!("{base}/manifest")), 2);
    let filtered = check_structure(&manifest(&server, &format!("{base}/manifest(filter=first4s)")), 2);
    let mpd = get_blocking(&server.url(&format!("{base}/manifest(format=mpd-time-cmaf,filter=first4s)")));
    assert_eq!(mpd.status, 200, "{}", mpd.describe());
    let mpd = mpd_times(&parse_xml(&mpd.text()));
    assert_eq!(filtered.keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
    for (name, chunks) in &filtered {
        assert!(chunks.len() < whole[name].len(), "{name}: first4s trims");
        assert_eq!(chunks[..], whole[name][..chunks.len()], "{name}: fragment times do not depend on the filter");
        let (timescale, times) = &mpd[name];
        assert_eq!(chunks.len(), times.len(), "{name}: as many chunks as MPD segments");
        // The same segments: Smooth times are the MPD's converted to 10 MHz, plus one constant
        // (the edit-list shift and lead) per track, to within a tick of rounding.
        let converted: Vec<i128> = times
            .iter()
            .map(|&t| (i128::from(t) * 10_000_000 + i128::from(*timescale) / 2) / i128::from(*timescale))
            .collect();
        let shift = i128::from(chunks[0].0) - converted[0];
        for ((t, _), c) in chunks.iter().zip(&converted) {
            assert!((i128::from(*t) - c - shift).abs() <= 1, "{name}: chunk {t} vs MPD {c} + {shift}");
        }
    }
}

fn guid_le(kid: &[u8; 16]) -> [u8; 16] {
    let mut out = *kid;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

fn hex16(s: &str) -> [u8; 16] {
    let v: Vec<u8> = (0..32).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// The text of `<name>…</name>` in `xml`.
fn element_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

#[test]
fn cenc_manifest_carries_the_playready_header() {
    let server = start();
    let root = manifest(&server, &format!("/{DRM_LADDER}/ladder.ism/manifest(encryption=cenc)"));
    check_structure(&root, 2);
    // After the StreamIndexes (MS-SSTR §2.2.2.1).
    assert_eq!(root.children.last().unwrap().tag, "Protection");
    for index in root.all("StreamIndex") {
        assert!(index.attr("Url").unwrap().ends_with(",encryption=cenc)"), "{:?}", index.attrs);
    }
    let header = &root.all("Protection")[0].all("ProtectionHeader")[0];
    assert_eq!(header.attr("SystemID"), Some("9A04F079-9840-4286-AB92-E65BE0885F95"));
    let pro = STANDARD.decode(&header.text).expect("base64 ProtectionHeader");
    // PlayReady Object: length, one record of type 1 (WRMHEADER, UTF-16LE).
    assert_eq!(u32::from_le_bytes(pro[0..4].try_into().unwrap()) as usize, pro.len());
    assert_eq!(u16::from_le_bytes([pro[4], pro[5]]), 1);
    assert_eq!(u16::from_le_bytes([pro[6], pro[7]]), 1);
    assert_eq!(10 + usize::from(u16::from_le_bytes([pro[8], pro[9]])), pro.len());
    let units: Vec<u16> = pro[10..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let xml = String::from_utf16(&units).unwrap();
    let kid_le = guid_le(&hex16(DRM_KID));
    assert_eq!(element_text(&xml, "KID"), Some(STANDARD.encode(kid_le).as_str()), "{xml}");
    let mut block = kid_le.into();
    Aes128::new(&hex16(DRM_KEY).into()).encrypt_block(&mut block);
    assert_eq!(element_text(&xml, "CHECKSUM"), Some(STANDARD.encode(&block[..8]).as_str()), "{xml}");
    assert_eq!(element_text(&xml, "ALGID"), Some("AESCTR"));

    // The clear locator's manifest has no Protection.
    assert!(manifest(&server, &format!("/{CLEAR_LADDER}/ladder.ism/manifest")).all("Protection").is_empty());
}

#[test]
fn tracks_smooth_cannot_carry_are_left_out() {
    let server = start();
    let bad_request = |path: &str, reason: &str| {
        let got = get_blocking(&server.url(path));
        assert_eq!(got.status, 400, "{}", got.describe());
        assert!(got.text().contains(reason), "{path}: {}", got.text());
    };

    // AV1 next to H.264 under one name: only the H.264 rendition is listed; an AV1 fragment
    // is refused.
    let av1 = manifest(&server, "/smooth-av1/av1.ism/manifest");
    check_structure(&av1, 2);
    let levels: Vec<(String, String)> = av1
        .all("StreamIndex")
        .iter()
        .flat_map(|i| i.all("QualityLevel"))
        .map(|l| (l.attr("FourCC").unwrap().to_owned(), l.attr("Bitrate").unwrap().to_owned()))
        .collect();
    let dash = parse_xml(&get_blocking(&server.url("/smooth-av1/av1.ism/manifest(format=mpd-time-cmaf)")).text());
    let (av1_track, av1_bitrate) = representation_with_codec(&dash, "av01").expect("the MPD lists the AV1 track");
    let (_, avc_bitrate) = representation_with_codec(&dash, "avc1").expect("the MPD lists the H.264 track");
    assert!(levels.contains(&("H264".to_owned(), avc_bitrate)), "{levels:?}");
    assert!(levels.iter().all(|(_, b)| *b != av1_bitrate), "{levels:?}");
    assert!(levels.iter().any(|(f, _)| f == "AACL"), "{levels:?}");
    bad_request(
        &format!("/smooth-av1/av1.ism/QualityLevels({av1_bitrate})/Fragments({av1_track}=0)"),
        "has no Smooth Streaming FourCC",
    );

    // WebVTT text: listed as a TTML text stream, under the name the MPD gives it.
    let subtitles = manifest(&server, "/smooth-subtitles/subtitles.ism/manifest");
    check_structure(&subtitles, 2);
    let dash =
        parse_xml(&get_blocking(&server.url("/smooth-subtitles/subtitles.ism/manifest(format=mpd-time-cmaf)")).text());
    let text_track = text_track_name(&dash);
    let text_index = subtitles.all("StreamIndex").into_iter().find(|i| i.attr("Type") == Some("text"));
    assert_eq!(text_index.and_then(|i| i.attr("Name")), Some(text_track.as_str()));

    // Smooth defines Common Encryption 'cenc' only.
    bad_request(&format!("/{ENVELOPE_LADDER}/ladder.ism/manifest(encryption=cbc)"), "Smooth");
    bad_request(&format!("/{DRM_LADDER}/ladder.ism/manifest(encryption=cbcs-aapl)"), "Smooth");
}

/// (track name, bitrate) of the first MPD Representation whose codecs start with `codec`
/// (`{name}-{bitrate}` ids).
fn representation_with_codec(mpd: &Element, codec: &str) -> Option<(String, String)> {
    if mpd.tag.ends_with("Representation") && mpd.attr("codecs").is_some_and(|c| c.starts_with(codec)) {
        let (name, bitrate) = mpd.attr("id")?.rsplit_once('-')?;
        return Some((name.to_owned(), bitrate.to_owned()));
    }
    mpd.children.iter().find_map(|c| representation_with_codec(c, codec))
}

/// The track name of the first text Representation of an MPD.
fn text_track_name(mpd: &Element) -> String {
    fn find(e: &Element) -> Option<String> {
        if e.tag.ends_with("AdaptationSet") && e.attr("contentType") == Some("text") {
            let rep = e.children.iter().find(|c| c.tag.ends_with("Representation"))?;
            return Some(rep.attr("id")?.rsplit_once('-')?.0.to_owned());
        }
        e.children.iter().find_map(find)
    }
    find(mpd).expect("a text track in the MPD")
}
