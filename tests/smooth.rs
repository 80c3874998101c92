//! Smooth Streaming output (MS-SSTR) as players consume it. One origin per test binary, in
//! this process, with a clear locator per fixture asset (named after the asset) and a
//! multi-DRM one of `ladder`. Manifests are read with quick-xml's reader and init segments
//! are built from `CodecPrivateData` the way dash.js does (tests/common/smooth.rs).
//!
//! * `lossless_*`: every video and audio QualityLevel of the asset's manifest, player-built
//!   init + every fragment of its chunk list, decodes with ffmpeg to the source's frames
//!   (the comparison tests/lossless.rs makes); every fragment's `tfxd` is its chunk's `t`
//!   and `d`, and its trun durations add up to `d`. Every H.264, HEVC, AAC, AC-3 and E-AC-3
//!   source track is listed; AV1 is not (Smooth has no FourCC for it).
//! * `cenc_*`: the same through ffmpeg's decryption of the player-built `encv`/`enca` init,
//!   with the KID taken from the ProtectionHeader's WRMHEADER; every fragment carries the
//!   PIFF SampleEncryptionBox and `senc` with the same entries, and `saio` points at them.
//! * `http_*`: content types, the refusals (400 / 403 / 404), ETags from two origins,
//!   filtered manifests pointing at the unfiltered fragments.

mod common;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use base64::Engine as _;
use reqwest::header;
use reqwest::StatusCode;

use common::smooth::{player_init, Fetched, Manifest, Stream};
use common::{Got, SourceFrames, TestServer};
use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

/// The fixture assets, each served by a clear locator of the same name.
const ASSETS: &[&str] = &[
    "ladder",
    "ladder-frag",
    "ladder-cmaf",
    "muxed",
    "hevc",
    "dolby",
    "edit",
    "hdr10",
    "hlg",
    "dolby-vision",
    "av1",
    "dolby-vision-av1",
];
/// multi-DRM locator of `ladder`.
const DRM: &str = "drm-ladder";
const KID: &str = "9eb4050de44b4802932e27d75083e266";
const KEY: &str = "166634c675823c235a4a9446fad52e4d";
const PR_LICENSE: &str = "https://pr.example/rightsmanager.asmx?kid={kid_uuid}";
const SMOOTH_TYPE: &str = "application/vnd.ms-sstr+xml";

fn config() -> Config {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for asset in ASSETS {
        text += &common::clear_locator_toml(asset, asset);
    }
    text += &format!(
        r#"
[[locator]]
id = "{DRM}"
storage = "{storage}"
asset = "ladder"
policy = "multi-drm"
keys = [{{ kid = "{KID}", key = "{KEY}" }}]
[locator.drm]
playready_license_url = "{PR_LICENSE}"

[[filter]]
name = "first4s"
end_secs = 4.0
"#,
        storage = common::FIXTURES_STORAGE
    );
    Config::parse(&text, common::fixtures_dir()).expect("test config parses")
}

fn start() -> TestServer {
    let config = config();
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

/// The origin the tests of this binary share.
fn server() -> &'static TestServer {
    static SERVER: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(start)
}

fn url(server: &TestServer, locator: &str, rest: &str) -> String {
    let asset = if locator == DRM { "ladder" } else { locator };
    server.url(&format!("/{locator}/{asset}.ism/{rest}"))
}

/// GETs `urls` on one runtime and client, in order.
fn fetch_all(urls: &[String]) -> Vec<Got> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = common::client();
        let mut out = Vec::with_capacity(urls.len());
        for u in urls {
            out.push(common::get(&client, u).await);
        }
        out
    })
}

fn get(url: &str) -> Got {
    fetch_all(std::slice::from_ref(&url.to_owned())).remove(0)
}

/// The manifest at `rest` (`manifest`, `manifest(…)`) of `locator`, checked and parsed.
fn manifest(server: &TestServer, locator: &str, rest: &str) -> (Manifest, String) {
    let got = get(&url(server, locator, rest)).ok();
    assert_eq!(got.header(header::CONTENT_TYPE), Some(SMOOTH_TYPE), "{}", got.describe());
    let text = got.text();
    let m = Manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", got.what));
    (m, text)
}

/// A clear fragment URL's cenc twin: `…/Fragments(video=t)` → `…/Fragments(video=t,encryption=cenc)`.
fn cenc_fragment(clear: &str) -> String {
    format!("{},encryption=cenc)", clear.strip_suffix(')').expect("a Fragments(…) URL"))
}

fn hex16(s: &str) -> [u8; 16] {
    let v: Vec<u8> = (0..32).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// Every fragment of `bitrate` in `stream`, checked and rewritten (see
/// [`common::smooth::fetch_fragments`]).
fn fetch_fragments(manifest_url: &str, stream: Stream<'_>, bitrate: u64) -> Result<Fetched, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(common::smooth::fetch_fragments(&common::client(), manifest_url, stream, bitrate))
}

/// Whether Smooth can carry a source track: the FourCCs MS-SSTR §2.2.2.5 and the players
/// know (H264, HEVC, AACL, AC-3, EC-3). Dolby Vision profile 5 (`dvh1`) has no HEVC-
/// compatible base layer, so listing it is the manifest's choice.
fn carried(t: &common::Track) -> Option<bool> {
    match (t.family.as_str(), t.sample_entry.as_str()) {
        (_, "dvh1" | "dvhe") => None,
        ("Avc" | "Hevc" | "Aac" | "Ac3" | "Eac3", _) => Some(true),
        _ => Some(false),
    }
}

/// The clear decoding oracle for `asset` (see the module comment).
fn check_lossless(asset: &str) {
    let server = server();
    let asset_dir = common::fixtures_dir().join(asset);
    let manifest_url = url(server, asset, "manifest");
    let (m, text) = manifest(server, asset, "manifest");
    let duration = m.root.num("Duration").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();

    let mut failures = Vec::new();
    let sources = common::source_frames(&asset_dir, &mut failures);
    let mut checked = 0;
    for SourceFrames { track, frames, .. } in &sources {
        let listed = m.stream(&track.kind, &track.name).and_then(|s| s.level(track.bitrate).map(|l| (s, l)));
        let label = format!("{asset} {} {} ({}, {})", track.kind, track.name, track.bitrate, track.sample_entry);
        let (stream, level) = match (listed, carried(track)) {
            (Some(found), Some(true) | None) => found,
            (None, Some(false) | None) => continue,
            (Some(_), Some(false)) => {
                failures.push(format!("{label}: listed, but Smooth has no FourCC for it"));
                continue;
            }
            (None, Some(true)) => {
                failures.push(format!("{label}: not in the manifest"));
                continue;
            }
        };
        let init = match player_init(stream, level, None, duration) {
            Ok(init) => init,
            Err(e) => {
                failures.push(format!("{label}: building the init segment: {e}"));
                continue;
            }
        };
        let fetched = match fetch_fragments(&manifest_url, stream, track.bitrate) {
            Ok(fetched) => fetched,
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        let file = dir.path().join(format!("{}-{}.mp4", track.name, track.bitrate));
        std::fs::write(&file, [vec![init], fetched.fragments].concat().concat()).unwrap();
        checked += 1;
        match common::framemd5(&[], &file, "0:0").and_then(|ours| common::compare(frames, &ours)) {
            Ok(()) => eprintln!("ok: Smooth {label}: {} frames equal", frames.len()),
            Err(e) => failures.push(format!("{label} (player-built init + fragments, {}):\n{e}", file.display())),
        }
    }
    if !failures.is_empty() {
        let kept = dir.keep();
        panic!(
            "{asset}: {} failures (files in {}):\n\n{}\n\nmanifest:\n{text}",
            failures.len(),
            kept.display(),
            failures.join("\n\n")
        );
    }
    assert!(checked > 0, "{asset}: nothing checked");
}

macro_rules! lossless {
    ($($asset:literal => $name:ident;)*) => {$(
        #[test]
        fn $name() {
            check_lossless($asset);
        }
    )*};
}

lossless! {
    "ladder" => lossless_ladder;
    "ladder-frag" => lossless_ladder_frag;
    "ladder-cmaf" => lossless_ladder_cmaf;
    "muxed" => lossless_muxed;
    "hevc" => lossless_hevc;
    "dolby" => lossless_dolby;
    "edit" => lossless_edit;
    "hdr10" => lossless_hdr10;
    "hlg" => lossless_hlg;
    "dolby-vision" => lossless_dolby_vision;
    "av1" => lossless_av1_lists_the_avc_rendition_only;
}

/// An asset whose every video track is AV1: Smooth cannot carry it, so the video is left out
/// (or the manifest refused with a reason), never listed under a FourCC players misread.
#[test]
fn av1_only_video_is_not_listed() {
    let got = get(&url(server(), "dolby-vision-av1", "manifest"));
    if got.status == StatusCode::BAD_REQUEST {
        assert!(!got.text().trim().is_empty(), "400 without a reason: {}", got.describe());
        return;
    }
    let got = got.ok();
    let m = Manifest::parse(&got.text()).unwrap_or_else(|e| panic!("{e}"));
    assert!(m.streams().all(|s| s.kind() != "video"), "{}", got.text());
}

// ---------------------------------------------------------------------------------------
// Common Encryption.

/// The cenc manifest's ProtectionHeader is PlayReady's, its WRMHEADER names the locator's KID
/// with the checksum of its key; every QualityLevel, through the encrypted init a player
/// builds with that KID, decrypts (ffmpeg) to the source's frames; every fragment carries its
/// sample encryption twice (PIFF 1.1 `uuid` for legacy clients, `senc` + `saiz`/`saio`).
#[test]
fn cenc_ladder_decrypts_to_the_source_through_the_player_built_init() {
    let server = server();
    let (m, text) = manifest(server, DRM, "manifest(encryption=cenc)");
    let duration = m.root.num("Duration").unwrap();
    let (system, pro) = m.protection_header().unwrap_or_else(|e| panic!("{e}")).expect("a <Protection> element");
    assert_eq!(system.to_ascii_uppercase(), common::smooth::PLAYREADY_SYSTEM_ID);
    let wrm = common::smooth::wrm_header(&pro).unwrap_or_else(|e| panic!("{e}"));
    let kid = common::smooth::kid_of_wrm_header(&wrm).unwrap_or_else(|e| panic!("{e}\n{wrm}"));
    assert_eq!(kid, hex16(KID), "the WRMHEADER's KID, as a player reads it: {wrm}");
    // PlayReady Header Object §3.3.2.2: CHECKSUM is the first 8 bytes of AES-ECB(key, the
    // KID as the header's little-endian GUID).
    let mut guid = kid;
    guid[0..4].reverse();
    guid[4..6].reverse();
    guid[6..8].reverse();
    let mut block = guid.into();
    aes::Aes128::new(&hex16(KEY).into()).encrypt_block(&mut block);
    let checksum = base64::engine::general_purpose::STANDARD.encode(&block[..8]);
    assert!(wrm.contains(&format!("<CHECKSUM>{checksum}</CHECKSUM>")), "checksum {checksum}: {wrm}");
    let la_url = PR_LICENSE.replace("{kid_uuid}", "9eb4050d-e44b-4802-932e-27d75083e266");
    assert!(wrm.contains(&format!("<LA_URL>{la_url}</LA_URL>")), "{wrm}");

    let manifest_url = url(server, DRM, "manifest(encryption=cenc)");
    let asset_dir = common::fixtures_dir().join("ladder");
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let sources = common::source_frames(&asset_dir, &mut failures);
    for SourceFrames { track, frames, .. } in &sources {
        let label = format!("cenc {} {} ({})", track.kind, track.name, track.bitrate);
        let stream = m.stream(&track.kind, &track.name).unwrap_or_else(|| panic!("{label}: no StreamIndex\n{text}"));
        let level = stream.level(track.bitrate).unwrap_or_else(|| panic!("{label}: no QualityLevel\n{text}"));
        let init = player_init(stream, level, Some(kid), duration).unwrap_or_else(|e| panic!("{label}: {e}"));
        let fetched = fetch_fragments(&manifest_url, stream, track.bitrate).unwrap_or_else(|e| panic!("{label}: {e}"));
        for (k, f) in fetched.parsed.iter().enumerate() {
            let at = format!("{label} fragment #{k}");
            match (&f.piff, &f.senc) {
                (Some(piff), Some(senc)) => {
                    assert_eq!(piff, senc, "{at}: the PIFF box and senc differ");
                    assert_eq!(senc.sample_count, f.sample_count, "{at}: senc and trun sample counts");
                    assert!(!senc.entries.is_empty(), "{at}: no IVs");
                }
                other => panic!("{at}: PIFF / senc present: {:?}", (other.0.is_some(), other.1.is_some())),
            }
            assert_eq!(f.saio, f.senc_entries_offset, "{at}: saio points at the senc entries");
        }
        // Really encrypted: the clear locator's fragment ends differently (the end of the last
        // sample is in a protected range, video subsamples included).
        let chunk = stream.chunks().unwrap()[0];
        let cenc_url = stream.fragment_url(track.bitrate, chunk.t);
        let clear_url = cenc_url.replace(",encryption=cenc", "");
        assert_ne!(cenc_url, clear_url, "{label}: the cenc manifest's fragments must ask for encryption=cenc");
        let clear = get(&url(server, "ladder", &clear_url)).ok();
        let ours = fetched.fragments.first().expect("fragments");
        assert_ne!(
            clear.body[clear.body.len() - 64..],
            ours[ours.len() - 64..],
            "{label}: the first fragment is clear"
        );
        let raw = if track.kind == "video" { "h264" } else { "adts" };
        let decoded = common::ffmpeg_decrypt_decode(&init, &fetched.fragments, KEY, "0:0", raw, dir.path());
        match decoded.and_then(|ours| common::compare(frames, &ours)) {
            Ok(()) => eprintln!("ok: {label}: {} frames equal after decryption", frames.len()),
            Err(e) => failures.push(format!("{label}:\n{e}")),
        }
    }
    assert!(failures.is_empty(), "{}\n\nmanifest:\n{text}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------
// Behaviour over HTTP.

/// Both manifest versions and a filtered manifest: content type, MS-SSTR versions, the 2.0
/// form without `r` listing the same chunks; fragments' content types; a filtered manifest's
/// fragments are the unfiltered ones (same Url template, same `t`s and `d`s).
#[test]
fn http_manifest_versions_filters_and_content_types() {
    let server = server();
    let (v22, text22) = manifest(server, "ladder", "manifest");
    let (v20, text20) = manifest(server, "ladder", "manifest(format=fmp4-v20)");
    let (filtered, text_f) = manifest(server, "ladder", "manifest(filter=first4s)");
    assert_eq!((v22.root.attr("MajorVersion"), v22.root.attr("MinorVersion")), (Some("2"), Some("2")), "{text22}");
    assert_eq!((v20.root.attr("MajorVersion"), v20.root.attr("MinorVersion")), (Some("2"), Some("0")), "{text20}");
    assert!(!text20.contains(" r=\""), "version 2.0 has no r: {text20}");
    assert!(text22.contains(" r=\""), "version 2.2 repeats equal chunks with r: {text22}");
    for m in [&v22, &v20, &filtered] {
        assert_eq!(m.root.attr("TimeScale").unwrap_or("10000000"), "10000000");
    }
    for s in v22.streams() {
        let name = (s.kind(), s.name());
        let s20 = v20.stream(s.kind(), s.name()).unwrap_or_else(|| panic!("{name:?} missing in 2.0"));
        assert_eq!(s.chunks().unwrap(), s20.chunks().unwrap(), "{name:?}: 2.0 and 2.2 list the same chunks");
        let f = filtered.stream(s.kind(), s.name()).unwrap_or_else(|| panic!("{name:?} missing when filtered"));
        assert_eq!(s.0.attr("Url"), f.0.attr("Url"), "{name:?}: filtered manifests name the same fragments");
        let (all, first) = (s.chunks().unwrap(), f.chunks().unwrap());
        assert!(!first.is_empty() && first.len() < all.len(), "{name:?}: first4s keeps a part: {first:?}");
        let n = first.len();
        assert_eq!(first[..n - 1], all[..n - 1], "{name:?}: the filtered chunks are the unfiltered ones");
        assert_eq!(first[n - 1].t, all[n - 1].t, "{name:?}: last filtered chunk starts where the unfiltered does");
        assert!(first.iter().all(|c| c.t < 4 * common::smooth::TIMESCALE + all[0].t), "{name:?}: {first:?}");
    }
    assert!(v22.streams().count() >= 2 && text_f.contains("QualityLevel"), "{text22}");
}

/// What Smooth refuses, and how: the statuses and a one-line reason.
#[test]
fn http_refusals() {
    let server = server();
    let (m, text) = manifest(server, "ladder", "manifest");
    let video = m.stream("video", "video").unwrap_or_else(|| panic!("no video StreamIndex: {text}"));
    let level = video.levels().next().unwrap().num("Bitrate").unwrap();
    let chunks = video.chunks().unwrap();
    let t = chunks[1].t;
    let fragment = |bitrate: u64, track: &str, time: String| {
        url(server, "ladder", &format!("QualityLevels({bitrate})/Fragments({track}={time})"))
    };
    let cases = [
        // Smooth defines no AES-128 envelope and no cbcs (MS-SSTR §2.2.2.2: PlayReady cenc).
        (url(server, DRM, "manifest(encryption=cbc)"), StatusCode::BAD_REQUEST),
        (url(server, DRM, "manifest(encryption=cbcs-aapl)"), StatusCode::BAD_REQUEST),
        (url(server, "ladder", "manifest(encryption=cbc)"), StatusCode::BAD_REQUEST),
        // Players build the init segment; there is none to fetch.
        (fragment(level, "video", "i".into()), StatusCode::BAD_REQUEST),
        // The client manifest is always generated, never a file's.
        (url(server, "ladder", "manifest.ismc"), StatusCode::BAD_REQUEST),
        // A time that is no chunk's t, an unknown track, an unknown bitrate.
        (fragment(level, "video", (t + 1).to_string()), StatusCode::NOT_FOUND),
        (fragment(level, "nosuchtrack", t.to_string()), StatusCode::NOT_FOUND),
        (fragment(level + 1, "video", t.to_string()), StatusCode::NOT_FOUND),
        // A clear locator serves no cenc, as for DASH and HLS (403: no content key).
        (url(server, "ladder", "manifest(encryption=cenc)"), StatusCode::FORBIDDEN),
        (
            url(server, "ladder", &format!("QualityLevels({level})/Fragments(video={t},encryption=cenc)")),
            StatusCode::FORBIDDEN,
        ),
        // The same on DASH, for comparison.
        (url(server, "ladder", "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"), StatusCode::FORBIDDEN),
    ];
    let urls: Vec<String> = cases.iter().map(|(u, _)| u.clone()).collect();
    for (got, (_, want)) in fetch_all(&urls).iter().zip(&cases) {
        assert_eq!(got.status, *want, "{}", got.describe());
        let reason = got.text();
        assert!(!reason.trim().is_empty() && !reason.trim().contains('\n'), "one-line reason: {}", got.describe());
    }
    // The chunk's own time answers (the 404s above are about the time, track and bitrate).
    get(&fragment(level, "video", t.to_string())).ok();
}

/// Manifests and fragments, clear and cenc, are the same bytes with the same ETag from a
/// second origin (caches behind several origins agree).
#[test]
fn http_etags_are_stable_across_origins() {
    let (a, b) = (server(), start());
    let (m, _) = manifest(a, "ladder", "manifest");
    let mut paths: Vec<(&str, String)> = vec![
        ("ladder", "manifest".into()),
        ("ladder", "manifest(format=fmp4-v20)".into()),
        (DRM, "manifest(encryption=cenc)".into()),
    ];
    for s in m.streams() {
        let bitrate = s.levels().next().unwrap().num("Bitrate").unwrap();
        let t = s.chunks().unwrap()[1].t;
        paths.push(("ladder", s.fragment_url(bitrate, t)));
        paths.push((DRM, cenc_fragment(&s.fragment_url(bitrate, t))));
    }
    let on = |server: &TestServer| fetch_all(&paths.iter().map(|(l, p)| url(server, l, p)).collect::<Vec<_>>());
    for (x, y) in on(a).into_iter().zip(on(&b)) {
        let x = x.ok();
        let y = y.ok();
        assert!(x.header(header::ETAG).is_some(), "no ETag: {}", x.describe());
        assert_eq!(x.header(header::ETAG), y.header(header::ETAG), "{} vs {}", x.what, y.what);
        assert_eq!(x.body, y.body, "{} vs {}", x.what, y.what);
    }
}
