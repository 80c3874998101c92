//! HLS with MPEG-TS segments (`m3u8-aapl`, `m3u8-aapl-v3`) and the AES-128 envelope
//! (`encryption=cbc`) with its key endpoint (DESIGN.md §2, §4), over real sockets: the origin
//! runs in this process on an ephemeral port; clients are reqwest, ffmpeg / ffprobe (decoding
//! oracle) and `openssl enc` (an independent AES-128-CBC implementation).
//!
//! * `ts_lossless_*`: every video and audio track decoded from its `m3u8-aapl` media playlist
//!   gives the same framemd5 hashes as its source (`-ignore_editlist 1`); `ts_v3_lossless_*`:
//!   the v3 variant's TS segments carry video and the default audio, both lossless.
//! * `ts_ffprobe_*`: stream codecs of TS media playlists; DTS strictly increasing across
//!   segment boundaries with no step larger than one frame.
//! * `envelope_*`: ffmpeg decodes the AES-128 TS and fMP4 streams with a token on the
//!   manifest URL; `openssl enc -d` decrypts a segment to the clear locator's bytes; output
//!   (bytes, IVs, ETags) is the same on a second origin; `token=` goes to playlists and key
//!   URIs only.
//! * `key_endpoint_*`: JWT checks (header and query), 401 / 404 / 400, open key access.
//! * `policy_*`: 403 for encryptions a locator's policy does not allow.

mod common;

use common::{Got, TestServer};

use std::ffi::OsStr;
use std::path::Path as FsPath;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header;
use reqwest::StatusCode;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

// ---------------------------------------------------------------------------------------
// Configuration: a clear locator per fixture asset, and two envelope locators of `ladder`.

const CLEAR_LOCATORS: &[(&str, &str)] =
    &[("ts-ladder", "ladder"), ("ts-muxed", "muxed"), ("ts-hevc", "hevc"), ("ts-dolby", "dolby"), ("ts-edit", "edit")];

/// Envelope locator of `ladder`, keys behind an HS256 JWT.
const ENV: &str = "env-ladder";
const KID: &str = "00112233445566778899aabbccddeeff";
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Envelope locator of `ladder` with open key access.
const ENV_OPEN: &str = "env-open";
const OPEN_KID: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const OPEN_KEY: &str = "5566778899aabbccddeeff0011223344";

const SECRET: &[u8] = b"jit-origin-test-secret-0123456789abcdef";
/// base64(SECRET)
const SECRET_B64: &str = "aml0LW9yaWdpbi10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "jit-origin-test";

fn config() -> Config {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"fixtures\"\nurl = \"file://{}\"\n",
        common::fixtures_dir().display()
    );
    for (id, asset) in CLEAR_LOCATORS {
        text.push_str(&format!(
            "[[locator]]\nid = \"{id}\"\nstorage = \"fixtures\"\nasset = \"{asset}\"\npolicy = \"clear\"\n"
        ));
    }
    text.push_str(&format!(
        "[[locator]]\nid = \"{ENV}\"\nstorage = \"fixtures\"\nasset = \"ladder\"\npolicy = \"envelope\"\n\
         keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n\
         [locator.key_access]\nmode = \"token\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nhs256_secret_base64 = \"{SECRET_B64}\"\n"
    ));
    text.push_str(&format!(
        "[[locator]]\nid = \"{ENV_OPEN}\"\nstorage = \"fixtures\"\nasset = \"ladder\"\npolicy = \"envelope\"\n\
         keys = [{{ kid = \"{OPEN_KID}\", key = \"{OPEN_KEY}\" }}]\n\
         [locator.key_access]\nmode = \"open\"\n"
    ));
    Config::parse(&text, common::fixtures_dir()).unwrap_or_else(|e| panic!("test config does not parse: {e}\n{text}"))
}

fn clear_locator(asset: &str) -> &'static str {
    CLEAR_LOCATORS.iter().find(|(_, a)| *a == asset).map(|(id, _)| *id).expect("known asset")
}

/// `/{clear locator of asset}/{asset}.ism/{rest}`.
fn clear_path(asset: &str, rest: &str) -> String {
    format!("/{}/{asset}.ism/{rest}", clear_locator(asset))
}

fn env_path(rest: &str) -> String {
    format!("/{ENV}/ladder.ism/{rest}")
}

// ---------------------------------------------------------------------------------------
// JWTs.

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn jwt(secret: &[u8], iss: &str, aud: &str, exp: u64) -> String {
    let claims = serde_json::json!({ "iss": iss, "aud": aud, "exp": exp, "iat": now(), "sub": "viewer-1" });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .expect("encode jwt")
}

fn valid_token() -> String {
    jwt(SECRET, ISSUER, AUDIENCE, now() + 3600)
}

// ---------------------------------------------------------------------------------------
// The server under test (as in tests/server.rs): its own runtime thread, stopped on drop.

impl TestServer {
    fn start() -> TestServer {
        let config = config();
        TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
    }
}

/// A blocking GET (a throwaway current-thread runtime; the server has its own).
fn fetch(url: &str, headers: &[(&str, &str)]) -> Got {
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let mut rb = client.get(&url);
        for (k, v) in &headers {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let (status, version, headers) = (resp.status(), resp.version(), resp.headers().clone());
        let body = resp.bytes().await.unwrap_or_else(|e| panic!("GET {url}: body: {e}")).to_vec();
        Got { what: format!("GET {url}"), status, headers, body, version }
    })
}

fn get(url: &str) -> Got {
    fetch(url, &[])
}

// ---------------------------------------------------------------------------------------
// Playlists.

/// Resolves a playlist URI against the playlist's URL (absolute, host-absolute or relative).
fn resolve(playlist_url: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return uri.to_string();
    }
    if uri.starts_with('/') {
        let after_scheme = playlist_url.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = playlist_url[after_scheme..].find('/').map(|i| after_scheme + i).unwrap_or(playlist_url.len());
        return format!("{}{uri}", &playlist_url[..host_end]);
    }
    let path = playlist_url.split('?').next().unwrap_or(playlist_url);
    format!("{}{uri}", &path[..path.rfind('/').expect("slash") + 1])
}

/// The `URI="…"` attribute of a tag line.
fn uri_attr(line: &str) -> Option<&str> {
    let start = line.find("URI=\"")? + 5;
    Some(&line[start..start + line[start..].find('"')?])
}

/// The value of attribute `name` of a tag line (unquoted or quoted).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let body = &line[line.find(':')? + 1..];
    let mut rest = body;
    loop {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if key == name {
            return Some(value);
        }
        rest = next.strip_prefix(',')?;
    }
}

/// Non-comment lines (segment or media playlist URIs), as written.
fn uri_lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// A media playlist's segments with the EXT-X-KEY in force for each: (uri as written, key uri, iv hex).
fn segments_with_keys(text: &str) -> Vec<(String, Option<(String, String)>)> {
    let mut key: Option<(String, String)> = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("#EXT-X-KEY:") {
            key = match attr(line, "METHOD") {
                Some("NONE") => None,
                _ => Some((
                    uri_attr(line).unwrap_or_else(|| panic!("EXT-X-KEY without URI: {line}")).to_string(),
                    attr(line, "IV").unwrap_or_else(|| panic!("EXT-X-KEY without IV: {line}")).to_string(),
                )),
            };
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push((line.to_string(), key.clone()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// ffmpeg / ffprobe / openssl.

const SRC_OPTS: [&str; 2] = ["-ignore_editlist", "1"];

fn src_opts() -> Vec<&'static OsStr> {
    SRC_OPTS.iter().map(OsStr::new).collect()
}

fn source_frames(asset: &str, t: &common::Track) -> Vec<String> {
    let asset_dir = common::fixtures_dir().join(asset);
    let source = common::resolve_source(&asset_dir, &t.file);
    common::framemd5(&src_opts(), &source, &format!("0:i:{}", t.track_id))
        .unwrap_or_else(|e| panic!("{asset} {}: decoding the source failed: {e}", t.name))
}

/// Decodes `maps` of `input` to framemd5 in one run; returns the lines of each output stream
/// (in `maps` order).
fn framemd5_streams(input: &str, maps: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let mut cmd = Command::new(common::ffmpeg_bin());
    cmd.args(["-nostdin", "-hide_banner", "-v", "error", "-i", input]);
    for m in maps {
        cmd.args(["-map", m]);
    }
    cmd.args(["-fps_mode", "passthrough", "-f", "framemd5", "-"]);
    let out = common::run(&mut cmd)?;
    let mut streams = vec![Vec::new(); maps.len()];
    for line in String::from_utf8_lossy(&out).lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let idx: usize = line
            .split(',')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("odd framemd5 line {line:?}"))?;
        streams
            .get_mut(idx)
            .ok_or_else(|| format!("framemd5 stream {idx} not mapped: {line:?}"))?
            .push(line.to_string());
    }
    if let Some(i) = streams.iter().position(Vec::is_empty) {
        return Err(format!("`{}` decoded no frames for map {}", common::show_cmd(&cmd), maps[i]));
    }
    Ok(streams)
}

fn ffprobe(args: &[&str], url: &str) -> String {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-hide_banner", "-v", "error"]).args(args).arg(url);
    String::from_utf8_lossy(&common::run(&mut cmd).unwrap_or_else(|e| panic!("{e}"))).into_owned()
}

/// (codec_type, codec_name) of every stream (the `streams` section only, not the programs').
fn probe_codecs(url: &str) -> Vec<(String, String)> {
    let json = ffprobe(&["-show_entries", "stream=codec_type,codec_name", "-of", "json"], url);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("ffprobe json of {url}: {e}\n{json}"));
    v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["codec_type"].as_str().unwrap_or("").to_string(),
                        s["codec_name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One packet as ffprobe `-show_packets` reports it.
#[derive(Clone, Copy, Debug)]
struct Packet {
    dts: i64,
    /// None when ffprobe reports N/A.
    duration: Option<i64>,
    /// The packet starts a PES packet (ffprobe knows its byte position); packets parsed out
    /// of the rest of a PES (several ADTS / AC-3 frames) have no position.
    pes_start: bool,
}

fn probe_packets(url: &str, select: &str) -> Vec<Packet> {
    // Columns come in ffprobe's order (dts, duration, pos); empty lines and trailing commas
    // are side-data sections.
    let csv = ffprobe(
        &["-select_streams", select, "-show_packets", "-show_entries", "packet=dts,duration,pos", "-of", "csv=p=0"],
        url,
    );
    csv.lines()
        .filter(|l| !l.trim().trim_matches(',').is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split(',').map(str::trim).collect();
            Packet {
                dts: c
                    .first()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{url} {select}: packet without dts: {l:?}")),
                duration: c.get(1).and_then(|s| s.parse().ok()).filter(|&d: &i64| d > 0),
                pes_start: c.get(2).is_some_and(|s| s.parse::<i64>().is_ok()),
            }
        })
        .collect()
}

/// DTS strictly increasing and no step larger than one frame (the packet's duration, or the
/// smallest step when ffprobe reports none), with one tick of rounding.
fn dts_problems(label: &str, packets: &[Packet]) -> Vec<String> {
    let min_step = packets.windows(2).map(|w| w[1].dts - w[0].dts).filter(|&d| d > 0).min().unwrap_or(0);
    let mut problems = Vec::new();
    for (i, w) in packets.windows(2).enumerate() {
        let step = w[1].dts - w[0].dts;
        let frame = w[0].duration.unwrap_or(min_step);
        if step <= 0 {
            problems.push(format!(
                "{label}: packet #{i} dts {} → #{} dts {} (not increasing)",
                w[0].dts,
                i + 1,
                w[1].dts
            ));
        } else if step > frame + 1 {
            problems.push(format!(
                "{label}: packet #{i} dts {} → #{} dts {}: step {step} > one frame ({frame})",
                w[0].dts,
                i + 1,
                w[1].dts
            ));
        }
    }
    problems
}

/// Checks the DTS of stream `select` of the media playlist at `playlist` (ffprobe through
/// the hls demuxer), and of each segment probed on its own (the mpegts demuxer), including
/// that each segment starts exactly where the previous one ended. Returns the packet count.
///
/// ffmpeg 5.1's hls demuxer mis-times the frames of the *first* PES of an audio stream that
/// holds several frames (first packet duration N/A, the next ones repeat or shift a DTS by one
/// frame, back in step at the next PES); the same happens with a playlist that ffmpeg's own
/// hls muxer wrote (`ffmpeg -i audio_eng.mp4 -c copy -f hls`), so the playlist-level check
/// skips that first PES of audio. The per-segment probes see correct timestamps throughout.
fn check_dts(playlist: &str, select: &str, segments: &[String]) -> Result<usize, String> {
    let mut problems = Vec::new();
    let all = probe_packets(playlist, select);
    if all.len() < 2 {
        return Err(format!("{playlist} {select}: only {} packets", all.len()));
    }
    let skip = if select.starts_with('a') && all[0].duration.is_none() {
        all.iter().skip(1).position(|p| p.pes_start).map_or(0, |i| i + 1)
    } else {
        0
    };
    problems.extend(dts_problems(&format!("{playlist} {select} (first {skip} packets skipped)"), &all[skip..]));

    let mut joined: Vec<Packet> = Vec::new();
    let mut per_segment = Vec::new();
    for (k, seg) in segments.iter().enumerate() {
        let packets = probe_packets(seg, select);
        if packets.is_empty() {
            problems.push(format!("{seg}: no packets"));
            continue;
        }
        problems.extend(dts_problems(seg, &packets));
        if let (Some(last), Some(first)) = (joined.last(), packets.first()) {
            let expected = last.dts + last.duration.unwrap_or(0);
            if (first.dts - expected).abs() > 1 {
                problems.push(format!(
                    "boundary before segment {k} ({seg}): first dts {} but the previous segment's last packet ends at {} + {:?} = {expected}",
                    first.dts, last.dts, last.duration
                ));
            }
        }
        per_segment.push(packets.len());
        joined.extend(packets);
    }
    if joined.len() != all.len() {
        problems.push(format!(
            "{playlist} {select}: {} packets through the playlist but {} in its segments {per_segment:?}",
            all.len(),
            joined.len()
        ));
    }
    if problems.is_empty() {
        Ok(all.len())
    } else {
        problems.truncate(10);
        Err(format!("{playlist} {select}: {} packets, DTS problems:\n  {}", all.len(), problems.join("\n  ")))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `openssl enc -d -aes-128-cbc` (PKCS#7 padding removed by openssl).
fn openssl_decrypt(key_hex: &str, iv_hex: &str, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("segment.enc");
    std::fs::write(&input, ciphertext).expect("write ciphertext");
    let mut cmd = Command::new("openssl");
    cmd.args(["enc", "-d", "-aes-128-cbc", "-K", key_hex, "-iv", iv_hex, "-in"]).arg(&input);
    common::run(&mut cmd)
}

// ---------------------------------------------------------------------------------------
// 1. Lossless TS.

/// Every audio and video track of `asset` from its `m3u8-aapl` media playlist.
fn check_ts_lossless(asset: &str) {
    let server = TestServer::start();
    let tracks = common::inspect(&common::fixtures_dir().join(asset));
    let mut failures = Vec::new();
    let mut checked = 0;
    for t in &tracks {
        let sel = match t.kind.as_str() {
            "video" => "v",
            "audio" => "a",
            _ => continue,
        };
        let playlist = server.url(&clear_path(
            asset,
            &format!("QualityLevels({})/Manifest({},format=m3u8-aapl).m3u8", t.bitrate, t.name),
        ));
        let text = get(&playlist).ok().text();
        let uris = uri_lines(&text);
        if uris.is_empty() || !uris.iter().all(|u| u.ends_with(".ts")) {
            failures.push(format!("{playlist}: segment URIs do not all end in .ts:\n{text}"));
            continue;
        }
        let src = source_frames(asset, t);
        checked += 1;
        match common::framemd5(&[], FsPath::new(&playlist), &format!("0:{sel}:0"))
            .and_then(|ours| common::compare(&src, &ours))
        {
            Ok(()) => eprintln!("ok: {asset} TS {} ({}): {} frames equal", t.name, t.bitrate, src.len()),
            Err(e) => failures.push(format!(
                "{asset} TS track {:?} ({}, bitrate {}) from {playlist}:\n{e}",
                t.name, t.kind, t.bitrate
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} TS decodes not lossless:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(checked > 0, "{asset}: nothing checked");
}

macro_rules! ts_lossless {
    ($($asset:literal => $name:ident;)*) => {$(
        #[test]
        fn $name() {
            check_ts_lossless($asset);
        }
    )*};
}

ts_lossless! {
    "ladder" => ts_lossless_ladder;
    "muxed" => ts_lossless_muxed;
    "hevc" => ts_lossless_hevc;
    "dolby" => ts_lossless_dolby;
    "edit" => ts_lossless_edit;
}

/// HLS v3: no audio renditions; the first variant's TS segments carry its video and the
/// default audio (the v4 multivariant's `DEFAULT=YES` rendition), both lossless.
fn check_v3_lossless(asset: &str) {
    let server = TestServer::start();
    let tracks = common::inspect(&common::fixtures_dir().join(asset));
    let mv_url = server.url(&clear_path(asset, "manifest(format=m3u8-aapl-v3).m3u8"));
    let mv = get(&mv_url).ok().text();
    assert!(mv.contains("#EXT-X-VERSION:3"), "{mv_url}: not version 3:\n{mv}");
    assert!(!mv.contains("TYPE=AUDIO") && !mv.contains("AUDIO=\""), "{mv_url}: v3 has audio renditions:\n{mv}");
    // The default audio, by the v4 multivariant.
    let v4_url = server.url(&clear_path(asset, "manifest(format=m3u8-aapl).m3u8"));
    let v4 = get(&v4_url).ok().text();
    let default_audio = v4
        .lines()
        .find(|l| {
            l.starts_with("#EXT-X-MEDIA:") && attr(l, "TYPE") == Some("AUDIO") && attr(l, "DEFAULT") == Some("YES")
        })
        .and_then(|l| uri_attr(l))
        .unwrap_or_else(|| panic!("{v4_url}: no DEFAULT=YES audio rendition:\n{v4}"))
        .to_string();
    let audio = tracks
        .iter()
        .find(|t| {
            t.kind == "audio"
                && default_audio.starts_with(&format!("QualityLevels({})/Manifest({},", t.bitrate, t.name))
        })
        .unwrap_or_else(|| panic!("default audio {default_audio} is no track of {asset}"));

    let first = *uri_lines(&mv).first().unwrap_or_else(|| panic!("{mv_url}: no variants:\n{mv}"));
    let video = tracks
        .iter()
        .find(|t| {
            t.kind == "video"
                && first.starts_with(&format!("QualityLevels({})/Manifest({},format=m3u8-aapl-v3", t.bitrate, t.name))
        })
        .unwrap_or_else(|| panic!("{mv_url}: first variant {first} is no video track of {asset}"));
    let variant_url = resolve(&mv_url, first);
    let text = get(&variant_url).ok().text();
    assert!(uri_lines(&text).iter().all(|u| u.ends_with(".ts")), "{variant_url}: segments not .ts:\n{text}");

    let codecs = probe_codecs(&variant_url);
    assert!(
        codecs.iter().any(|(k, _)| k == "video") && codecs.iter().any(|(k, _)| k == "audio"),
        "{variant_url}: want video and audio streams, ffprobe: {codecs:?}"
    );

    let ours = framemd5_streams(&variant_url, &["0:v:0", "0:a:0"]).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for (t, ours) in [(video, &ours[0]), (audio, &ours[1])] {
        let src = source_frames(asset, t);
        match common::compare(&src, ours) {
            Ok(()) => eprintln!("ok: {asset} v3 {} ({}): {} frames equal", t.name, t.bitrate, src.len()),
            Err(e) => {
                failures.push(format!("{asset} v3 {} {:?} ({}) from {variant_url}:\n{e}", t.kind, t.name, t.bitrate))
            }
        }
    }
    assert!(failures.is_empty(), "v3 not lossless:\n\n{}", failures.join("\n\n"));
}

#[test]
fn ts_v3_lossless_ladder() {
    check_v3_lossless("ladder");
}

#[test]
fn ts_v3_lossless_muxed() {
    check_v3_lossless("muxed");
}

// ---------------------------------------------------------------------------------------
// 2. ffprobe: codecs and timestamps across segment boundaries.

#[test]
fn ts_ffprobe_codecs_and_continuous_dts() {
    let server = TestServer::start();
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // asset, bitrate, track, expected (codec_type, codec_name)
        ("ladder", "150000", "video", "video", "h264"),
        ("ladder", "128000", "audio_eng", "audio", "aac"),
        ("ladder", "128000", "audio_fra", "audio", "aac"),
        ("hevc", "204000", "video", "video", "hevc"),
        ("dolby", "266000", "video", "video", "h264"),
        ("dolby", "320000", "audio_eng", "audio", "ac3"),
        ("dolby", "128000", "audio_fra", "audio", "eac3"),
    ];
    let mut failures = Vec::new();
    for (asset, bitrate, track, kind, codec) in cases {
        let playlist = server
            .url(&clear_path(asset, &format!("QualityLevels({bitrate})/Manifest({track},format=m3u8-aapl).m3u8")));
        let text = get(&playlist).ok().text();
        let segments = uri_lines(&text);
        assert!(segments.len() >= 2, "{playlist}: want several segments to cross boundaries:\n{text}");
        // A segment's HTTP view.
        let seg = get(&resolve(&playlist, segments[1])).ok();
        if seg.header(header::CONTENT_TYPE) != Some("video/mp2t") {
            failures.push(format!(
                "{}: Content-Type {:?}, want video/mp2t",
                seg.what,
                seg.header(header::CONTENT_TYPE)
            ));
        }
        if seg.body.len() % 188 != 0 || seg.body.chunks(188).any(|p| p[0] != 0x47) {
            failures.push(format!(
                "{}: {} bytes, not whole 188-byte TS packets with sync bytes",
                seg.what,
                seg.body.len()
            ));
        }
        let codecs = probe_codecs(&playlist);
        if codecs != [(kind.to_string(), codec.to_string())] {
            failures.push(format!("{playlist}: streams {codecs:?}, want [({kind}, {codec})] only"));
        }
        let select = if *kind == "video" { "v:0" } else { "a:0" };
        let segment_urls: Vec<String> = segments.iter().map(|u| resolve(&playlist, u)).collect();
        match check_dts(&playlist, select, &segment_urls) {
            Ok(n) => {
                eprintln!("ok: {asset} {track} {bitrate}: {n} packets over {} segments, DTS continuous", segments.len())
            }
            Err(e) => failures.push(e),
        }
        // The oracle notices a missing segment (segment 1 left out).
        if segment_urls.len() >= 3 && *asset == "ladder" {
            let holed = [segment_urls[0].clone(), segment_urls[2].clone()];
            let e = check_dts(&playlist, select, &holed).expect_err("check_dts missed a hole between segments 0 and 2");
            assert!(e.contains("boundary before segment 1"), "check_dts did not name the hole: {e}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The first presentation time of stream `select` (smallest pts of its first packets), seconds.
fn first_pts(input: &str, select: &str) -> f64 {
    ffprobe(
        &["-select_streams", select, "-read_intervals", "%+#24", "-show_entries", "packet=pts_time", "-of", "csv=p=0"],
        input,
    )
    .lines()
    .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
    .fold(f64::INFINITY, f64::min)
}

/// A/V sync: in the TS playlists, audio starts relative to video where it does in the source
/// with its edit lists applied (AAC priming / AC-3 delay before zero, empty edits).
#[test]
fn ts_av_offset_matches_source() {
    let server = TestServer::start();
    let cases: &[(&str, &str, u64, &str, &str, u64, &str)] = &[
        // asset, video file, bitrate, track, audio file, bitrate, track
        ("ladder", "video_150k.mp4", 150_000, "video", "audio_eng.mp4", 128_000, "audio_eng"),
        ("muxed", "muxed.mp4", 266_000, "video", "muxed.mp4", 128_000, "audio_eng"),
        ("hevc", "video_hevc.mp4", 204_000, "video", "audio_eng.mp4", 127_000, "audio_eng"),
        ("dolby", "video.mp4", 266_000, "video", "audio_ac3.mp4", 320_000, "audio_eng"),
        ("dolby", "video.mp4", 266_000, "video", "audio_eac3.mp4", 128_000, "audio_fra"),
        ("edit", "edit.mp4", 266_000, "video", "edit.mp4", 128_000, "audio_eng"),
    ];
    let mut failures = Vec::new();
    for (asset, vfile, vb, vt, afile, ab, at) in cases {
        let dir = common::fixtures_dir().join(asset);
        let src_v = first_pts(&dir.join(vfile).display().to_string(), "v:0");
        let src_a = first_pts(&dir.join(afile).display().to_string(), "a:0");
        let ts_v = first_pts(
            &server.url(&clear_path(asset, &format!("QualityLevels({vb})/Manifest({vt},format=m3u8-aapl).m3u8"))),
            "v:0",
        );
        let ts_a = first_pts(
            &server.url(&clear_path(asset, &format!("QualityLevels({ab})/Manifest({at},format=m3u8-aapl).m3u8"))),
            "a:0",
        );
        let v3 =
            server.url(&clear_path(asset, &format!("QualityLevels({vb})/Manifest({vt},format=m3u8-aapl-v3).m3u8")));
        let (v3_v, v3_a) = (first_pts(&v3, "v:0"), first_pts(&v3, "a:0"));
        let want = src_a - src_v;
        let label = format!("{asset} {vt}/{at}: source (edit lists applied) video {src_v:.6} audio {src_a:.6}; TS video {ts_v:.6} audio {ts_a:.6}; v3 video {v3_v:.6} audio {v3_a:.6}");
        if ((ts_a - ts_v) - want).abs() > 1e-4 {
            failures.push(format!("{label}: TS audio−video offset {:.6} s, source {want:.6} s", ts_a - ts_v));
        } else if *at == "audio_eng" && ((v3_a - v3_v) - want).abs() > 1e-4 {
            // v3 muxes the default audio (audio_eng in every fixture with two audios).
            failures.push(format!("{label}: v3 audio−video offset {:.6} s, source {want:.6} s", v3_a - v3_v));
        } else {
            eprintln!("ok: {label}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 3. AES-128 envelope.

fn ladder_track<'a>(tracks: &'a [common::Track], name: &str, bitrate: u64) -> &'a common::Track {
    tracks
        .iter()
        .find(|t| t.name == name && t.bitrate == bitrate)
        .unwrap_or_else(|| panic!("ladder has no {name} at {bitrate}"))
}

/// ffmpeg follows `manifest(…,encryption=cbc).m3u8?token=…` to the 150k video and the first
/// audio, fetching the key with the token the playlists carry: frames equal the sources'.
/// Without the token, the key fetch is refused and nothing equal to the source decodes.
#[test]
fn envelope_decodes_with_token_ts_and_cmaf() {
    let server = TestServer::start();
    let tracks = common::inspect(&common::fixtures_dir().join("ladder"));
    let video = ladder_track(&tracks, "video", 150_000);
    let audio = ladder_track(&tracks, "audio_eng", 128_000);
    let (src_video, src_audio) = (source_frames("ladder", video), source_frames("ladder", audio));
    let token = valid_token();
    let mut failures = Vec::new();
    for format in ["m3u8-aapl", "m3u8-cmaf"] {
        let url = server.url(&env_path(&format!("manifest(format={format},encryption=cbc).m3u8?token={token}")));
        let mv = get(&url).ok().text();
        // The first video stream is the 150k variant (listed first), the first audio is audio_eng.
        assert!(
            mv.find("QualityLevels(150000)/Manifest(video,") < mv.find("QualityLevels(300000)/Manifest(video,"),
            "{url}: 150k not first:\n{mv}"
        );
        match framemd5_streams(&url, &["0:v:0", "0:a:0"]) {
            Ok(ours) => {
                for (label, src, ours) in [("video 150k", &src_video, &ours[0]), ("audio_eng", &src_audio, &ours[1])] {
                    match common::compare(src, ours) {
                        Ok(()) => eprintln!("ok: envelope {format} {label}: {} frames equal", src.len()),
                        Err(e) => failures.push(format!("envelope {format} {label} from {url}:\n{e}")),
                    }
                }
            }
            Err(e) => failures.push(format!("envelope {format}: {e}")),
        }
        // The media playlist URL with the token, directly.
        let playlist = server.url(&env_path(&format!(
            "QualityLevels(150000)/Manifest(video,format={format},encryption=cbc).m3u8?token={token}"
        )));
        match common::framemd5(&[], FsPath::new(&playlist), "0:v:0").and_then(|ours| common::compare(&src_video, &ours))
        {
            Ok(()) => eprintln!("ok: envelope {format} media playlist: {} frames equal", src_video.len()),
            Err(e) => failures.push(format!("envelope {format} from {playlist}:\n{e}")),
        }
        // No token: the key is refused, so the frames cannot come out right.
        let no_token = server
            .url(&env_path(&format!("QualityLevels(150000)/Manifest(video,format={format},encryption=cbc).m3u8")));
        if let Ok(ours) = common::framemd5(&[], FsPath::new(&no_token), "0:v:0") {
            if common::compare(&src_video, &ours).is_ok() {
                failures.push(format!("{no_token}: decoded losslessly without a token — the key was not protected"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One encrypted segment, decrypted by `openssl enc` with the playlist's IV and the key
/// endpoint's key, equals the clear locator's segment of the same time; the init segment of
/// fMP4 stays clear; IVs are distinct per segment and rendition.
#[test]
fn envelope_segments_decrypt_with_openssl_to_the_clear_bytes() {
    let server = TestServer::start();
    let token = valid_token();
    let mut all_ivs: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    for (format, bitrate, track) in [
        ("m3u8-aapl", 150_000, "video"),
        ("m3u8-aapl", 300_000, "video"),
        ("m3u8-aapl", 128_000, "audio_eng"),
        ("m3u8-aapl-v3", 150_000, "video"),
        // Another audio muxed in: other bytes, so other IVs than the default audio's segments.
        ("m3u8-aapl-v3,audiotrack=audio_fra", 150_000, "video"),
        ("m3u8-cmaf", 150_000, "video"),
        ("m3u8-cmaf", 128_000, "audio_fra"),
    ] {
        let enc_url = server.url(&env_path(&format!(
            "QualityLevels({bitrate})/Manifest({track},format={format},encryption=cbc).m3u8?token={token}"
        )));
        let clear_url = server
            .url(&clear_path("ladder", &format!("QualityLevels({bitrate})/Manifest({track},format={format}).m3u8")));
        let enc = get(&enc_url).ok().text();
        let clear = get(&clear_url).ok().text();
        let enc_segs = segments_with_keys(&enc);
        let clear_segs = segments_with_keys(&clear);
        assert_eq!(enc_segs.len(), clear_segs.len(), "{enc_url} vs {clear_url}: segment counts differ");
        assert!(clear_segs.iter().all(|(_, k)| k.is_none()), "{clear_url}: clear playlist has EXT-X-KEY:\n{clear}");
        assert!(
            !enc.contains("#EXT-X-KEY:METHOD=NONE") && enc.contains("METHOD=AES-128"),
            "{enc_url}: no AES-128 key:\n{enc}"
        );
        for (i, ((e_uri, key), (c_uri, _))) in enc_segs.iter().zip(&clear_segs).enumerate() {
            let (key_uri, iv) =
                key.as_ref().unwrap_or_else(|| panic!("{enc_url}: segment {e_uri} has no EXT-X-KEY:\n{enc}"));
            assert!(
                iv.len() == 34 && iv.starts_with("0x") && iv[2..].bytes().all(|b| b.is_ascii_hexdigit()),
                "{enc_url}: IV {iv:?} is not 0x + 32 hex digits"
            );
            all_ivs.push((format!("{format} {track} {bitrate} segment {i}"), iv[2..].to_ascii_lowercase()));
            assert_eq!(
                e_uri.replace(",encryption=cbc", ""),
                *c_uri,
                "{enc_url}: segment {i} is not the clear playlist's segment {i} with encryption=cbc"
            );
            assert!(key_uri.starts_with(&format!("/{ENV}/key/{KID}")), "{enc_url}: key URI {key_uri}");
        }
        // Check the second segment (the first one starts at a non-zero time in some tracks: either is fine).
        let i = 1.min(enc_segs.len() - 1);
        let (e_uri, key) = &enc_segs[i];
        let (key_uri, iv) = key.as_ref().expect("key");
        let key_got = get(&resolve(&enc_url, key_uri)).ok();
        assert_eq!(hex(&key_got.body), KEY, "{}: key endpoint bytes", key_got.what);
        let e = get(&resolve(&enc_url, e_uri)).ok();
        let c = get(&resolve(&clear_url, &clear_segs[i].0)).ok();
        if e.header(header::CONTENT_TYPE) != c.header(header::CONTENT_TYPE) {
            failures.push(format!(
                "{}: Content-Type {:?} differs from the clear segment's {:?}",
                e.what,
                e.header(header::CONTENT_TYPE),
                c.header(header::CONTENT_TYPE)
            ));
        }
        if e.body.len() != (c.body.len() / 16 + 1) * 16 {
            failures.push(format!(
                "{}: {} bytes; clear {} bytes → AES-128-CBC/PKCS#7 gives {}",
                e.what,
                e.body.len(),
                c.body.len(),
                (c.body.len() / 16 + 1) * 16
            ));
        }
        if e.body.starts_with(&c.body[..c.body.len().min(64)]) {
            failures.push(format!("{}: starts with the clear bytes — not encrypted", e.what));
        }
        match openssl_decrypt(KEY, &iv[2..], &e.body) {
            Ok(plain) if plain == c.body => {
                eprintln!("ok: openssl decrypts {} to the {} clear bytes of {}", e.what, c.body.len(), c.what)
            }
            Ok(plain) => failures.push(format!(
                "openssl -K {KEY} -iv {} of {} gives {} bytes, not the {} bytes of {} (first difference at {:?})",
                &iv[2..],
                e.what,
                plain.len(),
                c.body.len(),
                c.what,
                plain.iter().zip(&c.body).position(|(a, b)| a != b)
            )),
            Err(err) => failures.push(format!("{}: openssl failed: {err}", e.what)),
        }
        // fMP4: the init segment (EXT-X-MAP, before the first EXT-X-KEY) is clear and equals
        // the clear locator's.
        if let Some(map_line) = enc.lines().find(|l| l.starts_with("#EXT-X-MAP:")) {
            let first_key = enc.find("#EXT-X-KEY:").unwrap_or(usize::MAX);
            assert!(
                enc.find("#EXT-X-MAP:").unwrap() < first_key,
                "{enc_url}: EXT-X-MAP after EXT-X-KEY means an encrypted init:\n{enc}"
            );
            let map_uri = uri_attr(map_line).expect("map uri");
            assert!(!map_uri.contains("token"), "{enc_url}: EXT-X-MAP carries the token: {map_line}");
            let init = get(&resolve(&enc_url, map_uri)).ok();
            let clear_map = clear.lines().find(|l| l.starts_with("#EXT-X-MAP:")).and_then(uri_attr).expect("clear map");
            let clear_init = get(&resolve(&clear_url, clear_map)).ok();
            if init.body.get(4..8) != Some(b"ftyp".as_slice()) {
                failures.push(format!("{}: init segment does not start with ftyp (encrypted?)", init.what));
            }
            if init.body != clear_init.body {
                failures
                    .push(format!("{}: init segment differs from the clear locator's {}", init.what, clear_init.what));
            }
        }
    }
    // IVs: unique per (rendition, segment) under one key. The same segment of the same
    // rendition in another container (TS vs fMP4, v3 vs v4) may share one; report but only
    // fail on duplicates within one format.
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut cross_format = Vec::new();
    for (label, iv) in &all_ivs {
        if let Some(prev) = seen.insert(iv.as_str(), label.as_str()) {
            // The container is the format without its options (`audiotrack=` muxes other
            // bytes into the same container).
            let container = |l: &str| l.split([' ', ',']).next().map(str::to_owned);
            let same_format = container(prev) == container(label);
            if same_format {
                failures.push(format!("IV {iv} used twice: {prev} and {label}"));
            } else {
                cross_format.push(format!("{prev} = {label}"));
            }
        }
    }
    if !cross_format.is_empty() {
        eprintln!(
            "note: {} IVs shared across containers of the same rendition/time, e.g. {}",
            cross_format.len(),
            cross_format[0]
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same URL twice, and from a second origin started separately with the same config:
/// the same bytes and ETag (IVs derived, never random).
#[test]
fn envelope_output_is_deterministic_across_origins() {
    let a = TestServer::start();
    let b = TestServer::start();
    let token = valid_token();
    let mut failures = Vec::new();
    let paths = [
        env_path("manifest(format=m3u8-aapl,encryption=cbc).m3u8"),
        env_path("QualityLevels(150000)/Manifest(video,format=m3u8-aapl,encryption=cbc).m3u8"),
        env_path("QualityLevels(150000)/Fragments(video=25600,format=m3u8-aapl,encryption=cbc).ts"),
        env_path("QualityLevels(128000)/Fragments(audio_eng=0,format=m3u8-aapl,encryption=cbc).ts"),
        env_path("QualityLevels(150000)/Fragments(video=25600,format=m3u8-aapl-v3,encryption=cbc).ts"),
        env_path("QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf,encryption=cbc).mp4"),
        env_path("QualityLevels(150000)/Fragments(video=25600,format=m3u8-cmaf,encryption=cbc).m4s"),
        env_path(&format!("QualityLevels(150000)/Manifest(video,format=m3u8-aapl,encryption=cbc).m3u8?token={token}")),
    ];
    for path in &paths {
        let first = get(&a.url(path));
        if first.status != StatusCode::OK {
            failures.push(first.describe());
            continue;
        }
        for again in [get(&a.url(path)), get(&b.url(path))] {
            if again.status != StatusCode::OK || again.body != first.body {
                failures.push(format!(
                    "{path}: bytes differ between {} and {} ({} vs {} bytes)",
                    first.what,
                    again.what,
                    first.body.len(),
                    again.body.len()
                ));
            }
            let (e1, e2) = (first.header(header::ETAG), again.header(header::ETAG));
            if e1.is_none() || e1 != e2 {
                failures.push(format!("{path}: ETag {e1:?} from {} vs {e2:?} from {}", first.what, again.what));
            }
        }
    }
    // A playlist with a token is different bytes, so a different ETag.
    let plain = get(&a.url(&paths[1])).ok();
    let tokened = get(&a.url(&paths[7])).ok();
    assert_ne!(plain.body, tokened.body, "token not added to {}", tokened.what);
    if plain.header(header::ETAG) == tokened.header(header::ETAG) {
        failures.push(format!(
            "{} and {} have different bytes but the same ETag {:?}",
            plain.what,
            tokened.what,
            plain.header(header::ETAG)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `?token=X` on a manifest: media playlist URIs (multivariant) and EXT-X-KEY URIs (media
/// playlists) carry `token=X`; segment and init URIs never do; without a token, nothing does.
#[test]
fn envelope_token_goes_to_playlists_and_key_uris_only() {
    let server = TestServer::start();
    let token = valid_token();
    let tq = format!("token={token}");
    for format in ["m3u8-aapl", "m3u8-aapl-v3", "m3u8-cmaf"] {
        for with_token in [true, false] {
            let q = if with_token { format!("?{tq}") } else { String::new() };
            let mv_url = server.url(&env_path(&format!("manifest(format={format},encryption=cbc).m3u8{q}")));
            let mv = get(&mv_url).ok().text();
            let mut children: Vec<String> = uri_lines(&mv).iter().map(|s| s.to_string()).collect();
            children
                .extend(mv.lines().filter(|l| l.starts_with("#EXT-X-MEDIA:")).filter_map(uri_attr).map(str::to_string));
            assert!(!children.is_empty(), "{mv_url}: no media playlists:\n{mv}");
            if !with_token {
                assert!(!mv.contains("token="), "{mv_url}: token= without a token:\n{mv}");
            }
            for child in &children {
                assert_eq!(child.contains(&tq), with_token, "{mv_url}: media playlist URI {child}:\n{mv}");
                let pl_url = resolve(&mv_url, child);
                let pl = get(&pl_url).ok().text();
                if !with_token {
                    assert!(!pl.contains("token="), "{pl_url}: token= without a token:\n{pl}");
                }
                let keys: Vec<&str> = pl.lines().filter(|l| l.starts_with("#EXT-X-KEY:")).collect();
                assert!(!keys.is_empty(), "{pl_url}: no EXT-X-KEY:\n{pl}");
                for k in keys {
                    let uri = uri_attr(k).unwrap_or_else(|| panic!("{pl_url}: EXT-X-KEY without URI: {k}"));
                    assert_eq!(uri.contains(&tq), with_token, "{pl_url}: key URI {uri}");
                    if with_token {
                        // The key URI as a player resolves it works without any header.
                        let key = get(&resolve(&pl_url, uri));
                        assert_eq!(key.status, StatusCode::OK, "{}", key.describe());
                    }
                }
                for seg in uri_lines(&pl) {
                    assert!(!seg.contains("token"), "{pl_url}: segment URI carries the token: {seg}");
                }
                for map in pl.lines().filter(|l| l.starts_with("#EXT-X-MAP:")).filter_map(uri_attr) {
                    assert!(!map.contains("token"), "{pl_url}: EXT-X-MAP URI carries the token: {map}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. Key endpoint.

#[test]
fn key_endpoint_checks_tokens() {
    let server = TestServer::start();
    let key_url = server.url(&format!("/{ENV}/key/{KID}"));
    let bearer = |t: &str| format!("Bearer {t}");
    let raw_key: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&KEY[2 * i..2 * i + 2], 16).unwrap()).collect();

    // Valid token in the header.
    let ok = fetch(&key_url, &[("Authorization", &bearer(&valid_token()))]).ok();
    assert_eq!(ok.body, raw_key, "{}: wrong key bytes", ok.what);
    assert_eq!(ok.header(header::CONTENT_TYPE), Some("application/octet-stream"), "{}", ok.describe());
    assert!(ok.header(header::CACHE_CONTROL).is_some_and(|c| c.contains("no-store")), "{}", ok.describe());
    assert!(!ok.header(header::CACHE_CONTROL).unwrap_or("").contains("public"), "{}", ok.describe());
    // Valid token in the query; a GUID-form KID names the same key.
    let ok = get(&format!("{key_url}?token={}", valid_token())).ok();
    assert_eq!(ok.body, raw_key);
    let guid = format!("{}-{}-{}-{}-{}", &KID[0..8], &KID[8..12], &KID[12..16], &KID[16..20], &KID[20..32]);
    let g = get(&server.url(&format!("/{ENV}/key/{guid}?token={}", valid_token())));
    eprintln!("GUID-form kid: {}", g.status);

    let other_secret = b"another-secret-that-is-long-enough-0123456789";
    let cases: Vec<(&str, Got)> = vec![
        ("missing token", get(&key_url)),
        ("empty bearer", fetch(&key_url, &[("Authorization", "Bearer ")])),
        ("expired", fetch(&key_url, &[("Authorization", &bearer(&jwt(SECRET, ISSUER, AUDIENCE, now() - 3600)))])),
        (
            "wrong audience",
            fetch(&key_url, &[("Authorization", &bearer(&jwt(SECRET, ISSUER, "someone-else", now() + 3600)))]),
        ),
        (
            "wrong issuer",
            fetch(&key_url, &[("Authorization", &bearer(&jwt(SECRET, "https://evil.test", AUDIENCE, now() + 3600)))]),
        ),
        (
            "bad signature",
            fetch(&key_url, &[("Authorization", &bearer(&jwt(other_secret, ISSUER, AUDIENCE, now() + 3600)))]),
        ),
        (
            "bad signature in query",
            get(&format!("{key_url}?token={}", jwt(other_secret, ISSUER, AUDIENCE, now() + 3600))),
        ),
        ("garbage", fetch(&key_url, &[("Authorization", "Bearer not.a.jwt")])),
        ("basic auth", fetch(&key_url, &[("Authorization", "Basic dXNlcjpwYXNz")])),
    ];
    let mut failures = Vec::new();
    for (label, got) in &cases {
        let www = got.header(header::WWW_AUTHENTICATE).unwrap_or("");
        if got.status != StatusCode::UNAUTHORIZED || !www.starts_with("Bearer") {
            failures.push(format!("{label}: want 401 with WWW-Authenticate: Bearer…, got {}", got.describe()));
        }
        if *label == "missing token" && www != "Bearer" {
            failures.push(format!("missing token: WWW-Authenticate {www:?}, want plain \"Bearer\" (RFC 6750 §3.1)"));
        }
        let body = got.text();
        if body.to_ascii_lowercase().contains(KEY)
            || got.body.windows(16).any(|w| w == raw_key.as_slice())
            || body.contains(SECRET_B64)
        {
            failures.push(format!("{label}: the 401 body leaks key material: {body:?}"));
        }
        if body.trim().is_empty() || body.trim_end_matches('\n').contains('\n') {
            failures.push(format!("{label}: 401 body is not one line of reason: {body:?}"));
        }
        if got.header(header::CACHE_CONTROL).is_some_and(|c| c.contains("public")) {
            failures.push(format!(
                "{label}: a 401 of the key endpoint is cacheable by a CDN: {:?}",
                got.header(header::CACHE_CONTROL)
            ));
        }
    }
    // Unknown kid, kid not hex, unknown locator.
    let unknown = get(&server.url(&format!("/{ENV}/key/ffffffffffffffffffffffffffffffff?token={}", valid_token())));
    if unknown.status != StatusCode::NOT_FOUND {
        failures.push(format!("unknown kid: want 404, {}", unknown.describe()));
    }
    let not_hex = get(&server.url(&format!("/{ENV}/key/zz112233445566778899aabbccddeeff?token={}", valid_token())));
    if not_hex.status != StatusCode::BAD_REQUEST {
        failures.push(format!("kid not hex: want 400, {}", not_hex.describe()));
    }
    let short = get(&server.url(&format!("/{ENV}/key/0011?token={}", valid_token())));
    if short.status != StatusCode::BAD_REQUEST {
        failures.push(format!("kid too short: want 400, {}", short.describe()));
    }
    let no_locator = get(&server.url(&format!("/no-such-locator/key/{KID}")));
    if no_locator.status != StatusCode::NOT_FOUND {
        failures.push(format!("unknown locator: want 404, {}", no_locator.describe()));
    }
    // Another locator's kid is not served by this one.
    let foreign = get(&server.url(&format!("/{ENV}/key/{OPEN_KID}?token={}", valid_token())));
    if foreign.status != StatusCode::NOT_FOUND {
        failures.push(format!("another locator's kid: want 404, {}", foreign.describe()));
    }
    // A clear locator has no keys.
    let clear = get(&server.url(&format!("/{}/key/{KID}", clear_locator("ladder"))));
    if clear.status == StatusCode::OK {
        failures.push(format!("clear locator serves a key: {}", clear.describe()));
    }
    // Open key access: no token needed.
    let open = get(&server.url(&format!("/{ENV_OPEN}/key/{OPEN_KID}")));
    if open.status != StatusCode::OK || hex(&open.body) != OPEN_KEY {
        failures.push(format!("open key access: want 200 and the key, {}", open.describe()));
    }
    if !open.header(header::CACHE_CONTROL).is_some_and(|c| c.contains("no-store")) {
        failures.push(format!("open key: Cache-Control {:?}", open.header(header::CACHE_CONTROL)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 5. Policy.

#[test]
fn policy_refuses_what_the_locator_does_not_allow() {
    let server = TestServer::start();
    let clear = clear_locator("ladder");
    let token = valid_token();
    let cases: Vec<(String, u16)> = vec![
        // Clear output of an envelope locator: manifests, playlists, init and media segments.
        (env_path("manifest(format=m3u8-aapl).m3u8"), 403),
        (env_path("manifest(format=m3u8-cmaf).m3u8"), 403),
        (env_path("manifest(format=mpd-time-cmaf).mpd"), 403),
        (env_path(&format!("manifest(format=m3u8-aapl).m3u8?token={token}")), 403),
        (env_path("QualityLevels(150000)/Manifest(video,format=m3u8-aapl).m3u8"), 403),
        (env_path("QualityLevels(150000)/Fragments(video=1024,format=m3u8-aapl).ts"), 403),
        (env_path("QualityLevels(150000)/Fragments(video=1024,format=m3u8-aapl-v3).ts"), 403),
        (env_path("QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf).mp4"), 403),
        (env_path("QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf).m4s"), 403),
        // Other encryptions on the envelope locator.
        (env_path("manifest(format=m3u8-cmaf,encryption=cenc).m3u8"), 403),
        (env_path("manifest(format=mpd-time-cmaf,encryption=cenc).mpd"), 403),
        (env_path("QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf,encryption=cenc).m4s"), 403),
        (env_path("manifest(format=m3u8-cmaf,encryption=cbcs-aapl).m3u8"), 403),
        // Encryption on a clear locator.
        (format!("/{clear}/ladder.ism/manifest(format=m3u8-aapl,encryption=cbc).m3u8"), 403),
        (
            format!("/{clear}/ladder.ism/QualityLevels(150000)/Manifest(video,format=m3u8-aapl,encryption=cbc).m3u8"),
            403,
        ),
        (
            format!(
                "/{clear}/ladder.ism/QualityLevels(150000)/Fragments(video=1024,format=m3u8-aapl,encryption=cbc).ts"
            ),
            403,
        ),
        // And what is allowed.
        (env_path("manifest(format=m3u8-aapl,encryption=cbc).m3u8"), 200),
        (env_path("QualityLevels(150000)/Fragments(video=1024,format=m3u8-aapl,encryption=cbc).ts"), 200),
        (format!("/{clear}/ladder.ism/QualityLevels(150000)/Fragments(video=1024,format=m3u8-aapl).ts"), 200),
    ];
    let mut failures = Vec::new();
    for (path, want) in &cases {
        let got = get(&server.url(path));
        if got.status.as_u16() != *want {
            failures.push(format!("{path}: want {want}, got {}", got.describe()));
            continue;
        }
        if *want == 403 {
            let body = got.text();
            let line = body.strip_suffix('\n').unwrap_or(&body);
            if line.trim().is_empty() || line.contains(['\n', '\r']) {
                failures.push(format!("{path}: 403 body is not one line of reason: {body:?}"));
            }
            if body.to_ascii_lowercase().contains(KEY) {
                failures.push(format!("{path}: 403 body leaks the key: {body:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} policy cases wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
