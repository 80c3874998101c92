//! The HTTP server (issue 3, DESIGN.md §2 and §6), tested through real sockets: the origin
//! runs in this process on an ephemeral port, clients are reqwest (HTTP/1.1 and h2c), raw
//! TCP (for paths a URL library would normalise) and ffmpeg (decoding oracle).
//!
//! * `lossless_*`: every fixture asset decodes from our HLS and DASH URLs to the same frames
//!   as its source (needs ffmpeg; the slow part of this file).
//! * `bad_urls_*`, `methods_*`: error statuses with a one-line reason.
//! * `http_*`: what a CDN relies on — Content-Length, Content-Type, Cache-Control, strong and
//!   restart-stable ETags, 304, HEAD, Range, CORS, h2c, keep-alive.
//! * `coalescing_*`: 100 concurrent misses cost one storage read, counted by a wrapping
//!   `ObjectStore`.
//! * `metrics_*`: /metrics counters move; /healthz and /readyz answer.

mod common;

use common::store::CountingStore;
use common::{client, counter_delta, get, get_blocking, metric, request, scrape, Got, TestServer};

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path as FsPath;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use object_store::ObjectStore;
use reqwest::header;
use reqwest::Method;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;
use jit_origin::source::storage::Storage;

// ---------------------------------------------------------------------------------------
// Fixture configuration: one locator per fixture asset folder.

/// (locator id, asset folder = asset URL name).
const LOCATORS: &[(&str, &str)] = &[
    ("loc-ladder", "ladder"),
    ("loc-ladder-frag", "ladder-frag"),
    ("loc-ladder-cmaf", "ladder-cmaf"),
    ("loc-muxed", "muxed"),
    ("loc-hevc", "hevc"),
    ("loc-dolby", "dolby"),
    ("loc-edit", "edit"),
];

const STORAGE: &str = common::FIXTURES_STORAGE;

fn config() -> Config {
    config_with("")
}

/// The fixture configuration with `extra` TOML appended.
fn config_with(extra: &str) -> Config {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for (id, asset) in LOCATORS {
        text.push_str(&common::clear_locator_toml(id, asset));
    }
    text.push_str(extra);
    Config::parse(&text, common::fixtures_dir()).expect("test config parses")
}

fn locator_of(asset: &str) -> &'static str {
    LOCATORS.iter().find(|(_, a)| *a == asset).map(|(id, _)| *id).expect("known asset")
}

/// `/{locator}/{asset}.ism/{rest}` for a fixture asset.
fn media_path(asset: &str, rest: &str) -> String {
    format!("/{}/{asset}.ism/{rest}", locator_of(asset))
}

/// An origin over the fixtures whose storage account is a [`CountingStore`].
fn counting_origin() -> (Origin, Arc<CountingStore>) {
    counting_origin_with(config())
}

fn counting_origin_with(config: Config) -> (Origin, Arc<CountingStore>) {
    let store = CountingStore::over_fixtures();
    let storage = Arc::new(Storage::new(STORAGE, store.clone() as Arc<dyn ObjectStore>));
    let origin = Origin::with_storages(&config, vec![storage]).expect("origin");
    (origin, store)
}

// ---------------------------------------------------------------------------------------
// The server under test: its own runtime thread, stopped on drop.

impl TestServer {
    fn start(origin: Origin) -> TestServer {
        TestServer::serve(origin, config().http)
    }

    fn fixtures() -> TestServer {
        TestServer::start(Origin::from_config(&config()).expect("origin"))
    }
}

/// One HTTP/1.1 request with the path sent verbatim (reqwest would resolve `..`).
fn raw_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Non-comment lines of an HLS playlist (segment URIs), resolved against the playlist URL.
fn playlist_uris(playlist_url: &str, text: &str) -> Vec<String> {
    let base = &playlist_url[..playlist_url.rfind('/').expect("slash") + 1];
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| if l.starts_with("http") { l.to_string() } else { format!("{base}{l}") })
        .collect()
}

/// The `URI="…"` of the playlist's `#EXT-X-MAP`, resolved.
fn playlist_map_uri(playlist_url: &str, text: &str) -> String {
    let base = &playlist_url[..playlist_url.rfind('/').expect("slash") + 1];
    let line = text.lines().find(|l| l.starts_with("#EXT-X-MAP:")).expect("EXT-X-MAP");
    let start = line.find("URI=\"").expect("URI=") + 5;
    let uri = &line[start..start + line[start..].find('"').expect("closing quote")];
    format!("{base}{uri}")
}

// ---------------------------------------------------------------------------------------
// 1. Lossless over HTTP.

/// Every audio and video track of a fixture asset decodes from our HLS and DASH URLs to the
/// source's frames.
fn check_lossless_over_http(asset: &str) {
    let server = TestServer::fixtures();
    common::check_lossless_over_http(&server, &common::fixtures_dir().join(asset), &|rest| media_path(asset, rest));
}

macro_rules! lossless_over_http {
    ($($asset:literal => $name:ident;)*) => {$(
        #[test]
        fn $name() {
            check_lossless_over_http($asset);
        }
    )*};
}

lossless_over_http! {
    "ladder" => lossless_http_ladder;
    "ladder-frag" => lossless_http_ladder_frag;
    "ladder-cmaf" => lossless_http_ladder_cmaf;
    "muxed" => lossless_http_muxed;
    "hevc" => lossless_http_hevc;
    "dolby" => lossless_http_dolby;
    "edit" => lossless_http_edit;
}

/// Track names may hold any character, the grammar's own `( ) , = /` included: every URL the
/// HLS and DASH manifests of such an asset list is served, and DASH decodes losslessly.
#[test]
fn track_names_with_reserved_characters_play() {
    const VIDEO: &str = "vid (main), v=1/2 50% ?#é";
    const ENG: &str = "aud,eng=1/2 (ü) \"x\" & <y>";
    const FRA: &str = "ä fra; a=b/c %2F #";
    let dir = tempfile::tempdir().unwrap();
    let asset_dir = dir.path().join("names");
    std::fs::create_dir(&asset_dir).unwrap();
    let ladder = common::fixtures_dir().join("ladder");
    let xml = |name: &str| name.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
    let mut ism = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<smil><body><switch>\n");
    for (file, kind, bitrate, name) in [
        ("video_150k.mp4", "video", 150_000, VIDEO),
        ("video_300k.mp4", "video", 300_000, VIDEO),
        ("audio_eng.mp4", "audio", 128_000, ENG),
        ("audio_fra.mp4", "audio", 128_000, FRA),
    ] {
        std::fs::copy(ladder.join(file), asset_dir.join(file)).unwrap();
        ism.push_str(&format!(
            "<{kind} src=\"{file}\" systemBitrate=\"{bitrate}\"><param name=\"trackID\" value=\"1\"/>\
             <param name=\"trackName\" value=\"{}\"/></{kind}>\n",
            xml(name)
        ));
    }
    ism.push_str("</switch></body></smil>\n");
    std::fs::write(asset_dir.join("names.ism"), ism).unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"tmp\"\nurl = \"file://{}\"\n\
         [[locator]]\nid = \"loc-names\"\nstorage = \"tmp\"\nasset = \"names\"\npolicy = \"clear\"\n",
        dir.path().display()
    );
    let config = Config::parse(&text, dir.path().to_path_buf()).expect("config");
    let server = TestServer::serve(Origin::from_config(&config).expect("origin"), config.http.clone());
    let manifest = |rest: &str| server.url(&format!("/loc-names/names.ism/{rest}"));

    let mut failures = Vec::new();
    let mut served = 0;
    let mut expect_ok = |url: &str, failures: &mut Vec<String>| {
        let got = get_blocking(url);
        served += 1;
        if got.status != 200 {
            failures.push(format!("{url}: {}", got.describe()));
        }
        got.text()
    };
    for format in ["m3u8-cmaf", "m3u8-aapl"] {
        let multivariant = manifest(&format!("manifest(format={format}).m3u8"));
        let text = expect_ok(&multivariant, &mut failures);
        // The names are shown in NAME quoted strings, which cannot hold '"'.
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes())
            .unwrap_or_else(|e| panic!("{multivariant}: {e:?}\n{text}"));
        let mut names: Vec<&str> = parsed.alternatives.iter().map(|a| a.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["aud,eng=1/2 (ü) 'x' & <y>", FRA], "{text}");
        let base = &multivariant[..multivariant.rfind('/').unwrap() + 1];
        let mut playlists = playlist_uris(&multivariant, &text);
        playlists.extend(
            text.lines()
                .filter(|l| l.starts_with("#EXT-X-MEDIA:"))
                .filter_map(|l| l.split_once("URI=\"")?.1.split('"').next())
                .map(|u| format!("{base}{u}")),
        );
        assert!(playlists.len() >= 4, "{multivariant}: too few playlists listed:\n{text}");
        for playlist in playlists {
            let text = expect_ok(&playlist, &mut failures);
            if format == "m3u8-cmaf" {
                expect_ok(&playlist_map_uri(&playlist, &text), &mut failures);
            }
            for segment in playlist_uris(&playlist, &text) {
                expect_ok(&segment, &mut failures);
            }
        }
    }
    for format in ["mpd-time-cmaf", "mpd-time-csf"] {
        let mpd_url = manifest(&format!("manifest(format={format}).mpd"));
        let mpd = expect_ok(&mpd_url, &mut failures);
        let ids = common::representation_ids(&mpd);
        // 4, and the trick-mode twins of the 2 video Representations.
        assert_eq!(ids.len(), 6, "{mpd_url}: {mpd}");
        for id in ids {
            let (init, segments) = common::dash_segment_urls(&mpd_url, &mpd, &id);
            expect_ok(&init, &mut failures);
            for segment in segments {
                expect_ok(&segment, &mut failures);
            }
        }
    }
    assert!(failures.is_empty(), "{} of {served} listed URLs not served:\n{}", failures.len(), failures.join("\n"));

    // A player resolves the escaped template like any other URL: ffmpeg decodes the frames
    // (the first video Representation is the 150k one).
    let src_opts = [OsStr::new("-ignore_editlist"), OsStr::new("1")];
    let source = common::framemd5(&src_opts, &asset_dir.join("video_150k.mp4"), "0:v:0").expect("source frames");
    let mpd_url = manifest("manifest(format=mpd-time-cmaf).mpd");
    let ours = common::framemd5(&[], FsPath::new(&mpd_url), "0:v:0").expect("DASH frames");
    common::compare(&source, &ours).unwrap_or_else(|e| panic!("{mpd_url}: {e}"));
}

/// Extensionless URLs (HLS needs `-extension_picky 0` in ffmpeg ≥ 5.1.9), the extensionless
/// multivariant playlist, and DASH CSF: the ladder's 150k video and English audio.
#[test]
fn lossless_http_extensionless_and_csf() {
    let server = TestServer::fixtures();
    let asset_dir = common::fixtures_dir().join("ladder");
    let tracks = common::inspect(&asset_dir);
    let src_opts = [OsStr::new("-ignore_editlist"), OsStr::new("1")];
    let picky = [OsStr::new("-extension_picky"), OsStr::new("0")];
    let mut failures = Vec::new();
    let mut checked = 0;
    for t in tracks.iter().filter(|t| (t.kind == "video" && t.bitrate == 150_000) || t.name == "audio_eng") {
        let kind_sel = if t.kind == "video" { "v" } else { "a" };
        let src =
            common::framemd5(&src_opts, &common::resolve_source(&asset_dir, &t.file), &format!("0:i:{}", t.track_id))
                .unwrap_or_else(|e| panic!("source: {e}"));
        let id = format!("{}-{}", t.name, t.bitrate);
        let playlist = server
            .url(&media_path("ladder", &format!("QualityLevels({})/Manifest({},format=m3u8-cmaf)", t.bitrate, t.name)));
        // The extensionless playlist's children must be extensionless too.
        let text = get_blocking(&playlist).text();
        let uris = playlist_uris(&playlist, &text);
        assert!(
            !uris.is_empty() && uris.iter().all(|u| u.ends_with(')')),
            "extensionless playlist has extensions:\n{text}"
        );
        assert!(
            playlist_map_uri(&playlist, &text).ends_with(')'),
            "extensionless playlist's EXT-X-MAP has an extension:\n{text}"
        );
        let cases: Vec<(&str, &[&OsStr], String, String)> = vec![
            ("HLS extensionless", &picky, playlist, format!("0:{kind_sel}:0")),
            (
                "DASH extensionless",
                &[],
                server.url(&media_path("ladder", "manifest(format=mpd-time-cmaf)")),
                format!("0:m:id:{id}"),
            ),
            (
                "DASH CSF",
                &[],
                server.url(&media_path("ladder", "manifest(format=mpd-time-csf).mpd")),
                format!("0:m:id:{id}"),
            ),
        ];
        for (label, opts, url, map) in cases {
            checked += 1;
            match common::framemd5(opts, FsPath::new(&url), &map).and_then(|ours| common::compare(&src, &ours)) {
                Ok(()) => eprintln!("ok: ladder {label} {id}: {} frames equal", src.len()),
                Err(e) => failures.push(format!("ladder {label} {id} from {url}:\n{e}")),
            }
        }
    }
    // The extensionless multivariant playlist: ffmpeg follows it to every variant.
    let multivariant = server.url(&media_path("ladder", "manifest(format=m3u8-cmaf)"));
    let video = tracks.iter().find(|t| t.kind == "video" && t.bitrate == 150_000).expect("150k video");
    let src = common::framemd5(
        &src_opts,
        &common::resolve_source(&asset_dir, &video.file),
        &format!("0:i:{}", video.track_id),
    )
    .unwrap_or_else(|e| panic!("source: {e}"));
    // Variant streams carry their BANDWIDTH as `variant_bitrate` metadata: select the
    // variant whose URI is the 150k video playlist.
    let mv = get_blocking(&multivariant).text();
    let lines: Vec<&str> = mv.lines().collect();
    let lowest = lines
        .windows(2)
        .find(|w| w[0].starts_with("#EXT-X-STREAM-INF:") && w[1].starts_with("QualityLevels(150000)/Manifest(video,"))
        .and_then(|w| {
            w[0]["#EXT-X-STREAM-INF:".len()..]
                .split(',')
                .find_map(|a| a.strip_prefix("BANDWIDTH="))?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no variant for the 150k video in\n{mv}"));
    checked += 1;
    match common::framemd5(&picky, FsPath::new(&multivariant), &format!("0:v:m:variant_bitrate:{lowest}"))
        .and_then(|ours| common::compare(&src, &ours))
    {
        Ok(()) => eprintln!("ok: ladder multivariant extensionless: {} frames equal", src.len()),
        Err(e) => {
            failures.push(format!("ladder multivariant extensionless {multivariant} (variant_bitrate {lowest}):\n{e}"))
        }
    }
    assert!(failures.is_empty(), "{} of {checked} decodes not lossless:\n\n{}", failures.len(), failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------
// 2. Bad URLs and methods.

fn assert_one_line_reason(what: &str, got: &Got) {
    let body = got.text();
    let line = body.strip_suffix('\n').unwrap_or(&body);
    assert!(
        !line.trim().is_empty() && !line.contains('\n') && !line.contains('\r'),
        "{what}: body is not one line of reason: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_get_their_status_and_a_one_line_reason() {
    let server = TestServer::fixtures();
    let c = client();
    let l = locator_of("ladder");
    let cases: &[(String, u16)] = &[
        ("/unknown-locator/ladder.ism/manifest(format=m3u8-cmaf)".into(), 404),
        (format!("/{l}/nope.ism/manifest(format=m3u8-cmaf)"), 404),
        (format!("/{l}/ladder.ism/manifest(format=bogus)"), 400),
        (format!("/{l}/ladder.ism/manifest(format=m3u8-cmaf,format=mpd-time-cmaf)"), 400),
        (format!("/{l}/ladder.ism/manifest()"), 400),
        (format!("/{l}/ladder.ism/manifest(format=m3u8-cmaf,colour=red)"), 400),
        (format!("/{l}/ladder.ism/manifest(format=m3u8-cmaf).mpd"), 400),
        (format!("/{l}/ladder.ism/manifest(format=m3u8-cmaf)x"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(1)/Manifest(video,format=m3u8-cmaf)"), 404),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Manifest(nosuch,format=m3u8-cmaf)"), 404),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video=12345,format=m3u8-cmaf)"), 404),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(nosuch=i,format=m3u8-cmaf)"), 404),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(nosuch=0,format=m3u8-cmaf)"), 404),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video=0,format=m3u8-cmaf).m3u8"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video=007,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video,format=m3u8-cmaf)"), 400),
        // Track names arrive percent-encoded exactly as manifests list them.
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(vid%65o=0,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video%zz=0,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video%C3=0,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(abc)/Manifest(video,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(-1)/Manifest(video,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/QualityLevels(99999999999999999999999)/Manifest(video,format=m3u8-cmaf)"), 400),
        (format!("/{l}/ladder.ism/"), 400),
        (format!("/{l}/ladder.ism"), 400),
        (format!("/{l}/ladder/manifest(format=m3u8-cmaf)"), 400),
        // A DASH-format media playlist does not exist in the grammar.
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Manifest(video,format=mpd-time-cmaf)"), 400),
        // Unknown filter: the issue says 404.
        (format!("/{l}/ladder.ism/manifest(format=m3u8-cmaf,filter=nosuch)"), 404),
        // A clear locator refuses encrypted output, manifests and segments alike.
        (format!("/{l}/ladder.ism/manifest(format=m3u8-cmaf,encryption=cbc)"), 403),
        (format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf,encryption=cenc)"), 403),
    ];
    let mut failures = Vec::new();
    for (path, want) in cases {
        let got = get(&c, &server.url(path)).await;
        if got.status.as_u16() != *want {
            failures.push(format!("{path}: want {want}, got {}", got.describe()));
            continue;
        }
        let body = got.text();
        let line = body.strip_suffix('\n').unwrap_or(&body);
        if line.trim().is_empty() || line.contains(['\n', '\r']) {
            failures.push(format!("{path}: {want} body is not one line of reason: {body:?}"));
        }
        if got.header(header::CONTENT_TYPE).is_none_or(|t| !t.starts_with("text/plain")) {
            failures.push(format!("{path}: error Content-Type {:?}", got.header(header::CONTENT_TYPE)));
        }
        eprintln!("{want} {path} -> {line:?}");
    }
    assert!(failures.is_empty(), "{} of {} bad URLs wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Corrupt media is the asset's fault, not the storage's: a fragment whose `trun` data offset
/// points 2 GiB before the start of the file is a 500 naming the file (it was a 502 "storage
/// error … out of memory" when the offset wrapped into a read of the whole address space).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_media_is_a_500_naming_the_file_not_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = std::fs::read(common::fixtures_dir().join("ladder-frag/video_150k.mp4")).unwrap();
    let trun = data.windows(4).position(|w| w == b"trun").expect("a trun");
    data[trun + 12..trun + 16].copy_from_slice(&i32::MIN.to_be_bytes()); // data_offset
    std::fs::create_dir(dir.path().join("hostile")).unwrap();
    std::fs::write(dir.path().join("hostile/video.mp4"), data).unwrap();
    let config = config_with(&format!(
        "[[storage]]\nname = \"hostile\"\nurl = \"file://{}\"\n\
         [[locator]]\nid = \"loc-hostile\"\nstorage = \"hostile\"\nasset = \"hostile\"\npolicy = \"clear\"\n",
        dir.path().display()
    ));
    let server = TestServer::start(Origin::from_config(&config).expect("origin"));
    let c = client();
    for format in ["m3u8-cmaf", "mpd-time-cmaf"] {
        let got = get(&c, &server.url(&format!("/loc-hostile/hostile.ism/manifest(format={format})"))).await;
        assert_eq!(got.status, 500, "{}", got.describe());
        assert_one_line_reason(format, &got);
        let body = got.text();
        assert!(body.contains("invalid media in hostile/video.mp4") && body.contains("trun"), "{body}");
    }
}

/// Paths a URL library would normalise, sent verbatim: never a 200.
#[test]
fn bad_urls_with_dot_segments_never_escape() {
    let server = TestServer::fixtures();
    let l = locator_of("ladder");
    for path in [
        format!("/{l}/ladder.ism/../../etc/passwd"),
        format!("/{l}/ladder.ism/../ladder.ism/manifest(format=m3u8-cmaf)"),
        format!("/{l}/..%2F..%2Fetc.ism/manifest(format=m3u8-cmaf)"),
        format!("/{l}/..%2Fladder.ism/manifest(format=m3u8-cmaf)"),
        format!("/{l}/ladder.ism/QualityLevels(150000)/Fragments(..%2F..%2Fetc%2Fpasswd=0,format=m3u8-cmaf)"),
        format!("/{l}/ladder.ism/QualityLevels(150000)/Manifest(%00,format=m3u8-cmaf)"),
        format!("/{l}/ladder.ism/QualityLevels(150000)/Manifest(%ZZ,format=m3u8-cmaf)"),
        format!("/{l}/ladder.ism/QualityLevels(150000)/Manifest(a%0D%0Ab,format=m3u8-cmaf)"),
        "/../../etc/passwd".to_string(),
    ] {
        let (status, head, body) = raw_request(server.addr, "GET", &path);
        assert!(status == 400 || status == 404, "{path}: want 400 or 404, got {status}\n{head}\n{body}");
        let line = body.strip_suffix('\n').unwrap_or(&body);
        assert!(!line.trim().is_empty() && !line.contains('\n'), "{path}: body not one line: {body:?}");
        eprintln!("{status} {path} -> {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_other_than_get_head_options_are_405_with_allow() {
    let server = TestServer::fixtures();
    let c = client();
    let url = server.url(&media_path("ladder", "manifest(format=m3u8-cmaf)"));
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::from_bytes(b"PROPFIND").unwrap()] {
        let got = request(&c, method.clone(), &url, &[]).await;
        assert_eq!(got.status, 405, "{method}: {}", got.describe());
        let allow = got.header(header::ALLOW).unwrap_or_else(|| panic!("{method}: no Allow: {}", got.describe()));
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(allow.contains(m), "{method}: Allow {allow:?} lacks {m}");
        }
        assert_one_line_reason(method.as_str(), &got);
        assert_eq!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{method}: no CORS");
    }
    // Also on an unknown path and on /metrics.
    for path in ["/nothing", "/metrics"] {
        let got = request(&c, Method::POST, &server.url(path), &[]).await;
        assert_eq!(got.status, 405, "POST {path}: {}", got.describe());
    }
}

// ---------------------------------------------------------------------------------------
// 3. HTTP for CDNs.

/// One URL of each kind for the ladder: (label, url, content type).
async fn sample_resources(server: &TestServer, c: &reqwest::Client) -> Vec<(&'static str, String, &'static str)> {
    let playlist = server.url(&media_path("ladder", "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8"));
    let text = get(c, &playlist).await.text();
    let segments = playlist_uris(&playlist, &text);
    let audio_playlist =
        server.url(&media_path("ladder", "QualityLevels(128000)/Manifest(audio_eng,format=m3u8-cmaf).m3u8"));
    let audio_text = get(c, &audio_playlist).await.text();
    let audio_segments = playlist_uris(&audio_playlist, &audio_text);
    assert!(segments.len() >= 2 && !audio_segments.is_empty(), "playlists:\n{text}\n{audio_text}");
    vec![
        (
            "multivariant",
            server.url(&media_path("ladder", "manifest(format=m3u8-cmaf).m3u8")),
            "application/vnd.apple.mpegurl",
        ),
        ("media playlist", playlist.clone(), "application/vnd.apple.mpegurl"),
        ("mpd", server.url(&media_path("ladder", "manifest(format=mpd-time-cmaf).mpd")), "application/dash+xml"),
        ("csf mpd", server.url(&media_path("ladder", "manifest(format=mpd-time-csf)")), "application/dash+xml"),
        ("video init", playlist_map_uri(&playlist, &text), "video/mp4"),
        ("video segment", segments[1].clone(), "video/mp4"),
        ("audio init", playlist_map_uri(&audio_playlist, &audio_text), "audio/mp4"),
        ("audio segment", audio_segments[0].clone(), "audio/mp4"),
    ]
}

fn max_age(cache_control: &str) -> u64 {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cache_control:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_for_cdns() {
    let server = TestServer::fixtures();
    let c = client();
    for (label, url, content_type) in sample_resources(&server, &c).await {
        let got = get(&c, &url).await;
        assert_eq!(got.status, 200, "{label} {url}: {}", got.describe());
        assert_eq!(got.version, reqwest::Version::HTTP_11);
        let len: usize = got
            .header(header::CONTENT_LENGTH)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{label}: no Content-Length: {}", got.describe()));
        assert_eq!(len, got.body.len(), "{label}: Content-Length");
        assert!(got.header(header::TRANSFER_ENCODING).is_none(), "{label}: chunked: {}", got.describe());
        assert_eq!(got.header(header::CONTENT_TYPE), Some(content_type), "{label}: Content-Type");
        let cc = got.header(header::CACHE_CONTROL).unwrap_or_else(|| panic!("{label}: no Cache-Control"));
        if label.contains("segment") || label.contains("init") {
            assert!(cc.contains("immutable") && max_age(cc) >= 30 * 24 * 3600, "{label}: Cache-Control {cc:?}");
        } else {
            assert!(max_age(cc) >= 3600 && !cc.contains("no-"), "{label}: Cache-Control {cc:?}");
        }
        let etag = got.header(header::ETAG).unwrap_or_else(|| panic!("{label}: no ETag"));
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "{label}: ETag not strong: {etag}");
        let last_modified = got.header(header::LAST_MODIFIED).unwrap_or_else(|| panic!("{label}: no Last-Modified"));
        assert!(last_modified.ends_with(" GMT"), "{label}: Last-Modified {last_modified:?}");
        assert_eq!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{label}: CORS");
        assert_eq!(got.header(header::ACCEPT_RANGES), Some("bytes"), "{label}: Accept-Ranges");
    }
    // Errors: short Cache-Control, Content-Length, CORS.
    for path in [
        media_path("ladder", "manifest(format=bogus)"),
        media_path("ladder", "QualityLevels(1)/Manifest(video,format=m3u8-cmaf)"),
        "/x/y.ism/manifest(format=m3u8-cmaf)".into(),
    ] {
        let got = get(&c, &server.url(&path)).await;
        assert!(got.status.is_client_error(), "{path}: {}", got.describe());
        let cc = got.header(header::CACHE_CONTROL).unwrap_or_else(|| panic!("{path}: no Cache-Control"));
        assert!(max_age(cc) <= 60 && !cc.contains("immutable"), "{path}: error Cache-Control {cc:?}");
        assert_eq!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{path}: CORS on error");
        assert_eq!(
            got.header(header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok()),
            Some(got.body.len()),
            "{path}: error Content-Length"
        );
        assert!(got.header(header::ETAG).is_none(), "{path}: an error has an ETag");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_etags_are_strong_and_survive_a_restart() {
    let c = client();
    let first = TestServer::fixtures();
    let resources = sample_resources(&first, &c).await;
    let mut etags = BTreeMap::new();
    for (label, url, _) in &resources {
        let got = get(&c, url).await;
        let etag = got.header(header::ETAG).unwrap_or_else(|| panic!("{label}: no ETag")).to_string();
        assert!(!etag.starts_with("W/"), "{label}: weak ETag {etag}");
        // The same server twice: same validator and bytes.
        let again = get(&c, url).await;
        assert_eq!(again.header(header::ETAG), Some(etag.as_str()), "{label}: ETag changed on a second GET");
        assert_eq!(again.body, got.body, "{label}: bytes changed on a second GET");
        etags.insert(*label, (etag, got.header(header::LAST_MODIFIED).map(str::to_owned), got.body));
    }
    let first_addr = first.addr.to_string();
    drop(first);
    // A second, independently started origin over the same files (a restart or a replica).
    let second = TestServer::fixtures();
    let second_addr = second.addr.to_string();
    let mut distinct = std::collections::HashSet::new();
    for (label, url, _) in &resources {
        let url = url.replace(&first_addr, &second_addr);
        let got = get(&c, &url).await;
        let (etag, last_modified, body) = &etags[label];
        assert_eq!(got.header(header::ETAG), Some(etag.as_str()), "{label}: ETag differs after a restart");
        assert_eq!(
            got.header(header::LAST_MODIFIED).map(str::to_owned),
            *last_modified,
            "{label}: Last-Modified differs after a restart"
        );
        assert!(&got.body == body, "{label}: bytes differ after a restart");
        distinct.insert(etag.clone());
    }
    assert_eq!(
        distinct.len(),
        resources.len(),
        "different resources share an ETag: {etags:?}",
        etags = etags.iter().map(|(k, v)| (k, &v.0)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_conditional_head_and_range() {
    let server = TestServer::fixtures();
    let c = client();
    for (label, url, _) in sample_resources(&server, &c).await {
        let full = get(&c, &url).await;
        assert_eq!(full.status, 200, "{label}: {}", full.describe());
        let etag = full.header(header::ETAG).expect("etag").to_string();
        let last_modified = full.header(header::LAST_MODIFIED).expect("last-modified").to_string();
        let len = full.body.len();

        // Conditional GETs.
        let conditions = [
            ("If-None-Match", etag.clone()),
            ("If-None-Match", format!("\"nope\", {etag}")),
            ("If-None-Match", format!("W/{etag}")),
            ("If-None-Match", "*".to_string()),
            ("If-Modified-Since", last_modified.clone()),
        ];
        for (name, value) in conditions {
            let got = request(&c, Method::GET, &url, &[(name, &value)]).await;
            assert_eq!(got.status, 304, "{label}: {name}: {value}: {}", got.describe());
            assert!(got.body.is_empty(), "{label}: 304 with a body");
            assert_eq!(got.header(header::ETAG), Some(etag.as_str()), "{label}: 304 without the ETag");
            assert_eq!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{label}: 304 without CORS");
        }
        let got = request(&c, Method::GET, &url, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(got.status, 200, "{label}: non-matching If-None-Match");
        let got = request(&c, Method::GET, &url, &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:01 GMT")]).await;
        assert_eq!(got.status, 200, "{label}: If-Modified-Since long ago");
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
        let got =
            request(&c, Method::GET, &url, &[("If-None-Match", "\"other\""), ("If-Modified-Since", &last_modified)])
                .await;
        assert_eq!(got.status, 200, "{label}: If-None-Match must take precedence");

        // HEAD: the GET's headers, no body.
        let head = request(&c, Method::HEAD, &url, &[]).await;
        assert_eq!(head.status, 200, "{label}: HEAD");
        assert!(head.body.is_empty(), "{label}: HEAD with a body");
        for h in [
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CACHE_CONTROL,
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCEPT_RANGES,
        ] {
            assert_eq!(head.header(h.clone()), full.header(h.clone()), "{label}: HEAD {h} differs from GET");
        }

        // Ranges.
        if len > 100 {
            let got = request(&c, Method::GET, &url, &[("Range", "bytes=0-99")]).await;
            assert_eq!(got.status, 206, "{label}: bytes=0-99: {}", got.describe());
            assert_eq!(got.header(header::CONTENT_RANGE), Some(format!("bytes 0-99/{len}").as_str()), "{label}");
            assert_eq!(got.header(header::CONTENT_LENGTH), Some("100"), "{label}");
            assert_eq!(got.body, full.body[..100], "{label}: range bytes");
            assert_eq!(got.header(header::ETAG), Some(etag.as_str()), "{label}: 206 ETag");
        }
        let got = request(&c, Method::GET, &url, &[("Range", "bytes=-10")]).await;
        assert_eq!(got.status, 206, "{label}: bytes=-10");
        assert_eq!(
            got.header(header::CONTENT_RANGE),
            Some(format!("bytes {}-{}/{len}", len - 10, len - 1).as_str()),
            "{label}"
        );
        assert_eq!(got.body, full.body[len - 10..], "{label}: suffix bytes");
        let mid = len / 2;
        let got = request(&c, Method::GET, &url, &[("Range", &format!("bytes={mid}-"))]).await;
        assert_eq!(got.status, 206, "{label}: bytes={mid}-");
        assert_eq!(got.body, full.body[mid..], "{label}: open range bytes");
        let got = request(&c, Method::GET, &url, &[("Range", &format!("bytes={mid}-{}", len + 1000))]).await;
        assert_eq!(got.status, 206, "{label}: range past the end is clipped");
        assert_eq!(got.body, full.body[mid..], "{label}: clipped range bytes");
        let got = request(&c, Method::GET, &url, &[("Range", &format!("bytes={len}-"))]).await;
        assert_eq!(got.status, 416, "{label}: bytes={len}-: {}", got.describe());
        assert_eq!(
            got.header(header::CONTENT_RANGE),
            Some(format!("bytes */{len}").as_str()),
            "{label}: 416 Content-Range"
        );
        assert!(
            got.body.is_empty() || got.header(header::CONTENT_LENGTH) == Some(&got.body.len().to_string()),
            "{label}: 416 body"
        );
        // If-Range with another validator: the whole body.
        let got = request(&c, Method::GET, &url, &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")]).await;
        assert_eq!(got.status, 200, "{label}: If-Range mismatch");
        assert_eq!(got.body.len(), len);
        let got = request(&c, Method::GET, &url, &[("Range", "bytes=0-9"), ("If-Range", &etag)]).await;
        assert_eq!(got.status, 206, "{label}: If-Range match");
        // HEAD with a range: 206 headers, no body.
        let got = request(&c, Method::HEAD, &url, &[("Range", "bytes=0-9")]).await;
        assert_eq!(got.status, 206, "{label}: HEAD with Range");
        assert!(got.body.is_empty());
        assert_eq!(got.header(header::CONTENT_LENGTH), Some("10"), "{label}: HEAD 206 Content-Length");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_cors_preflight() {
    let server = TestServer::fixtures();
    let c = client();
    for path in [
        media_path("ladder", "manifest(format=mpd-time-cmaf).mpd"),
        media_path("ladder", "manifest(format=bogus)"),
        "/anything".into(),
    ] {
        let got = request(
            &c,
            Method::OPTIONS,
            &server.url(&path),
            &[
                ("Origin", "https://player.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range"),
            ],
        )
        .await;
        assert_eq!(got.status, 204, "OPTIONS {path}: {}", got.describe());
        assert!(got.body.is_empty());
        assert_eq!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{path}");
        let methods =
            got.header(header::ACCESS_CONTROL_ALLOW_METHODS).unwrap_or_else(|| panic!("{path}: no Allow-Methods"));
        assert!(methods.contains("GET") && methods.contains("HEAD"), "{path}: Allow-Methods {methods:?}");
        let allow_headers = got.header(header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap_or_default().to_ascii_lowercase();
        assert!(allow_headers.contains("range"), "{path}: Allow-Headers {allow_headers:?}");
    }
    // Exposed headers let a player read Content-Range / ETag.
    let got = request(
        &c,
        Method::GET,
        &server.url(&media_path("ladder", "manifest(format=m3u8-cmaf)")),
        &[("Origin", "https://player.example")],
    )
    .await;
    let expose = got.header(header::ACCESS_CONTROL_EXPOSE_HEADERS).unwrap_or_default().to_ascii_lowercase();
    assert!(expose.contains("content-range") && expose.contains("etag"), "Expose-Headers {expose:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_and_keep_alive() {
    let server = TestServer::fixtures();
    let h1 = client();
    let resources = sample_resources(&server, &h1).await;
    let h2 =
        reqwest::Client::builder().http2_prior_knowledge().timeout(Duration::from_secs(30)).build().expect("h2 client");
    for (label, url, content_type) in &resources {
        let over_h1 = get(&h1, url).await;
        let got = get(&h2, url).await;
        assert_eq!(got.status, 200, "h2c {label}: {}", got.describe());
        assert_eq!(got.version, reqwest::Version::HTTP_2, "{label}");
        assert_eq!(got.header(header::CONTENT_TYPE), Some(*content_type), "h2c {label}");
        assert_eq!(
            got.header(header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok()),
            Some(got.body.len()),
            "h2c {label}: Content-Length"
        );
        assert_eq!(got.body, over_h1.body, "h2c {label}: bytes differ from HTTP/1.1");
        assert_eq!(got.header(header::ETAG), over_h1.header(header::ETAG), "h2c {label}: ETag");
    }
    // h2c: concurrent streams on one connection, a range and an error.
    let url = &resources.iter().find(|r| r.0 == "video segment").expect("segment").1;
    let burst = join_all((0..20).map(|_| get(&h2, url))).await;
    assert!(burst.iter().all(|g| g.status == 200 && g.body == burst[0].body), "h2c concurrent streams");
    let got = request(&h2, Method::GET, url, &[("Range", "bytes=0-99")]).await;
    assert_eq!(got.status, 206, "h2c range");
    assert_eq!(got.body.len(), 100);
    let got = get(&h2, &server.url(&media_path("ladder", "manifest(format=bogus)"))).await;
    assert_eq!(got.status, 400, "h2c error: {}", got.describe());

    // Keep-alive: many sequential requests on one HTTP/1.1 client, including errors, 304s
    // and HEADs, which must not desynchronise the connection.
    let c = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    for round in 0..5 {
        for (label, url, _) in &resources {
            let got = get(&c, url).await;
            assert_eq!(got.status, 200, "keep-alive round {round} {label}");
            let etag = got.header(header::ETAG).unwrap().to_string();
            assert_eq!(request(&c, Method::HEAD, url, &[]).await.status, 200);
            assert_eq!(request(&c, Method::GET, url, &[("If-None-Match", &etag)]).await.status, 304);
            assert_eq!(get(&c, &server.url("/x/y.ism/manifest(format=m3u8-cmaf)")).await.status, 404);
        }
    }
    // The same over one raw socket, to prove the connection really is reused.
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let path = media_path("ladder", "manifest(format=m3u8-cmaf).m3u8");
    for i in 0..3 {
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, len) = read_http1_response(&mut s);
        assert_eq!(status, 200, "request {i} on one connection");
        assert!(len > 0);
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns (status, body length).
fn read_http1_response(s: &mut TcpStream) -> (u16, usize) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no Content-Length in\n{head}"));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("response body");
    (status, len)
}

// ---------------------------------------------------------------------------------------
// 4. Coalescing of concurrent misses.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalescing_100_concurrent_segment_misses_do_one_storage_read() {
    let (origin, store) = counting_origin();
    let server = TestServer::start(origin);
    let c = reqwest::Client::builder().pool_max_idle_per_host(200).timeout(Duration::from_secs(60)).build().unwrap();
    // Load the asset (indexing is not what this test counts).
    let playlist = server.url(&media_path("ladder", "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8"));
    let text = get(&c, &playlist).await.text();
    let segments = playlist_uris(&playlist, &text);
    assert!(segments.len() >= 3, "{text}");
    let loaded_gets = store.gets();
    eprintln!("loading the ladder asset + one media playlist: {loaded_gets} GETs, {} LISTs", store.lists());

    // Open 100 connections first so the burst is not serialised behind TCP handshakes.
    let warm = {
        let health = server.url("/healthz");
        join_all((0..100).map(|_| request(&c, Method::HEAD, &health, &[]))).await
    };
    assert!(warm.iter().all(|g| g.status == 200));

    let metrics_before = scrape(&c, &server).await;
    let url = segments[2].clone();
    let before = store.gets();
    // Slow storage down so every request arrives while the first build is still reading.
    store.delay_ms.store(300, Ordering::SeqCst);
    let started = Instant::now();
    let burst = join_all((0..100).map(|_| get(&c, &url))).await;
    let elapsed = started.elapsed();
    store.delay_ms.store(0, Ordering::SeqCst);
    let during = store.gets() - before;
    for (i, g) in burst.iter().enumerate() {
        assert_eq!(g.status, 200, "request {i}: {}", g.describe());
        assert!(g.body == burst[0].body, "request {i}: different bytes");
    }
    let metrics_after = scrape(&c, &server).await;
    let misses = counter_delta(
        &metrics_before,
        &metrics_after,
        "jit_cache_lookups_total",
        &[("cache", "segment"), ("result", "miss")],
    );
    let hits = counter_delta(
        &metrics_before,
        &metrics_after,
        "jit_cache_lookups_total",
        &[("cache", "segment"), ("result", "hit")],
    );
    eprintln!(
        "100 concurrent GETs of {url}: {during} storage GETs, segment cache {misses} miss / {hits} hit, {elapsed:?}"
    );
    assert_eq!(during, 1, "100 concurrent misses of one segment did {during} storage GETs");
    assert_eq!(misses, 1.0, "segment builds during the burst");
    assert_eq!(hits, 99.0, "coalesced or cached lookups during the burst");
    // Every request waited for the one slow read: the burst took about one read's delay,
    // not 100 of them.
    assert!(elapsed < Duration::from_secs(10), "burst took {elapsed:?}");

    // Again, cached: no storage at all.
    let before = store.gets();
    let burst = join_all((0..100).map(|_| get(&c, &url))).await;
    assert!(burst.iter().all(|g| g.status == 200));
    assert_eq!(store.gets() - before, 0, "cached segment read storage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalescing_100_concurrent_first_manifest_requests_load_the_asset_once() {
    for (asset, rest) in [
        ("ladder", "manifest(format=m3u8-cmaf).m3u8"),
        ("muxed", "manifest(format=mpd-time-cmaf).mpd"),
        ("ladder-frag", "manifest(format=mpd-time-cmaf)"),
    ] {
        // What one request costs on a cold origin.
        let (origin, store) = counting_origin();
        let server = TestServer::start(origin);
        let c = client();
        let got = get(&c, &server.url(&media_path(asset, rest))).await;
        assert_eq!(got.status, 200, "{asset}: {}", got.describe());
        let (single_gets, single_lists) = (store.gets(), store.lists());
        assert!(single_gets > 0, "{asset}: no storage read at all?");
        drop(server);

        // 100 concurrent first requests on another cold origin.
        let (origin, store) = counting_origin();
        let server = TestServer::start(origin);
        let c =
            reqwest::Client::builder().pool_max_idle_per_host(200).timeout(Duration::from_secs(60)).build().unwrap();
        let warm = {
            let health = server.url("/healthz");
            join_all((0..100).map(|_| request(&c, Method::HEAD, &health, &[]))).await
        };
        assert!(warm.iter().all(|g| g.status == 200));
        store.delay_ms.store(100, Ordering::SeqCst);
        let url = server.url(&media_path(asset, rest));
        let burst = join_all((0..100).map(|_| get(&c, &url))).await;
        store.delay_ms.store(0, Ordering::SeqCst);
        for (i, g) in burst.iter().enumerate() {
            assert_eq!(g.status, 200, "{asset} request {i}: {}", g.describe());
            assert!(g.body == got.body, "{asset} request {i}: different bytes from the single request");
        }
        let (gets, lists) = (store.gets(), store.lists());
        let m = scrape(&c, &server).await;
        let asset_misses = metric(&m, "jit_cache_lookups_total", &[("cache", "asset"), ("result", "miss")]);
        let manifest_misses = metric(&m, "jit_cache_lookups_total", &[("cache", "manifest"), ("result", "miss")]);
        eprintln!(
            "{asset} {rest}: one cold request = {single_gets} GETs + {single_lists} LISTs; 100 concurrent cold requests = {gets} GETs + {lists} LISTs; asset misses {asset_misses}, manifest misses {manifest_misses}"
        );
        assert_eq!(
            (gets, lists),
            (single_gets, single_lists),
            "{asset}: 100 concurrent first requests cost more storage than one"
        );
        assert_eq!(asset_misses, 1.0, "{asset}: asset loads");
        assert_eq!(manifest_misses, 1.0, "{asset}: manifest builds");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Metrics and health.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counters_move_and_health_endpoints_answer() {
    let server = TestServer::fixtures();
    let c = client();
    for path in ["/healthz", "/readyz"] {
        let got = get(&c, &server.url(path)).await;
        assert_eq!(got.status, 200, "{path}: {}", got.describe());
        assert!(!got.body.is_empty());
        let got = request(&c, Method::HEAD, &server.url(path), &[]).await;
        assert_eq!(got.status, 200, "HEAD {path}");
    }
    let before = scrape(&c, &server).await;
    let resources = sample_resources(&server, &c).await;
    let segment = &resources.iter().find(|r| r.0 == "video segment").expect("segment").1;
    for _ in 0..3 {
        assert_eq!(get(&c, segment).await.status, 200);
    }
    assert_eq!(get(&c, &server.url(&media_path("ladder", "manifest(format=bogus)"))).await.status, 400);
    assert_eq!(
        get(&c, &server.url(&media_path("ladder", "QualityLevels(1)/Manifest(video,format=m3u8-cmaf)"))).await.status,
        404
    );
    let after = scrape(&c, &server).await;

    let d = |name: &str, labels: &[(&str, &str)]| counter_delta(&before, &after, name, labels);
    // (metric, labels it must carry, least increase)
    type Check<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
    let checks: &[Check] = &[
        ("jit_http_requests_total", &[("kind", "segment"), ("status", "200")], 3.0),
        ("jit_http_requests_total", &[("kind", "playlist"), ("status", "200")], 2.0),
        // A URL that does not parse has no resource kind: it is counted as "other".
        ("jit_http_requests_total", &[("status", "400")], 1.0),
        ("jit_http_requests_total", &[("kind", "playlist"), ("status", "404")], 1.0),
        ("jit_http_requests_total", &[("kind", "metrics"), ("status", "200")], 1.0),
        ("jit_cache_lookups_total", &[("cache", "segment"), ("result", "miss")], 1.0),
        ("jit_cache_lookups_total", &[("cache", "segment"), ("result", "hit")], 2.0),
        ("jit_cache_lookups_total", &[("cache", "asset"), ("result", "miss")], 1.0),
        ("jit_cache_lookups_total", &[("cache", "asset"), ("result", "hit")], 1.0),
        ("jit_storage_requests_total", &[("storage", STORAGE), ("kind", "get")], 1.0),
        ("jit_storage_bytes_total", &[("storage", STORAGE)], 1.0),
        ("jit_http_request_duration_seconds_count", &[("kind", "segment")], 3.0),
    ];
    let mut failures = Vec::new();
    for (name, labels, at_least) in checks {
        let delta = d(name, labels);
        eprintln!("{name}{labels:?} moved by {delta}");
        if delta < *at_least {
            failures.push(format!("{name}{labels:?} moved by {delta}, expected at least {at_least}"));
        }
    }
    assert!(metric(&after, "jit_segment_build_seconds_count", &[]) >= 1.0, "segment build histogram");
    assert!(metric(&after, "jit_cache_entries", &[("cache", "segment")]) >= 1.0, "segment cache entries gauge");
    assert!(metric(&after, "jit_cache_bytes", &[("cache", "segment")]) > 0.0, "segment cache bytes gauge");
    assert!(failures.is_empty(), "metrics did not move:\n{}", failures.join("\n"));
}

/// `segment_mib` covers segments being built as well as cached ones: the cache itself keeps
/// `build_memory_mib` free for builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_cache_leaves_the_build_memory_free() {
    let config = config_with("[cache]\nsegment_mib = 2\n[limits]\nbuild_memory_mib = 1\n");
    let server = TestServer::start(Origin::from_config(&config).expect("origin"));
    let c = client();
    let mut served = 0;
    for bitrate in [150_000, 300_000, 600_000] {
        let playlist = server
            .url(&media_path("ladder", &format!("QualityLevels({bitrate})/Manifest(video,format=m3u8-cmaf).m3u8")));
        let text = get(&c, &playlist).await.text();
        for segment in playlist_uris(&playlist, &text) {
            let got = get(&c, &segment).await;
            assert_eq!(got.status, 200, "{}", got.describe());
            served += got.body.len();
        }
    }
    let samples = scrape(&c, &server).await;
    let cached = metric(&samples, "jit_cache_bytes", &[("cache", "segment")]);
    let evicted = metric(&samples, "jit_cache_evictions_total", &[("cache", "segment")]);
    eprintln!("served {served} segment bytes; {cached} cached, {evicted} segments evicted");
    assert!(served > 1 << 20, "the walk must outgrow the cache: {served} bytes");
    assert!(cached > 0.0 && cached <= (1 << 20) as f64, "segment cache holds {cached} bytes, beyond 2 - 1 MiB");
    assert!(evicted > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_reload_after_its_ttl_reads_no_unchanged_file_again() {
    let mut config = config();
    config.cache.asset_ttl_secs = 1;
    let (origin, store) = counting_origin_with(config);
    let server = TestServer::start(origin);
    let c = client();
    for asset in ["ladder", "muxed"] {
        let url = server.url(&media_path(asset, "manifest(format=mpd-time-cmaf).mpd"));
        let first = get(&c, &url).await;
        assert_eq!(first.status, 200, "{}", first.describe());
        let (gets, lists) = (store.gets(), store.lists());
        // Asset (and manifest) entries expire; the reload lists the folder again, reads the
        // .ism if there is one, and takes every unchanged file's index from the index cache.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let again = get(&c, &url).await;
        assert_eq!(again.status, 200, "{}", again.describe());
        assert_eq!(again.body, first.body, "{asset}: reload changed the manifest");
        let ism_reads = u64::from(asset == "ladder");
        assert_eq!(store.lists() - lists, 1, "{asset}: reload lists the folder once");
        assert_eq!(store.gets() - gets, ism_reads, "{asset}: reload read media files again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
    let (origin, store) = counting_origin();
    let server = TestServer::start(origin);
    let c = reqwest::Client::new();
    let playlist = server.url(&media_path("ladder", "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8"));
    let segments = playlist_uris(&playlist, &get(&c, &playlist).await.text());
    let health = server.url("/healthz");
    // The segment's storage read takes a second: the request is in flight when shutdown starts.
    store.delay_ms.store(1000, Ordering::SeqCst);
    let in_flight = tokio::spawn({
        let (c, url) = (c.clone(), segments[1].clone());
        async move { get(&c, &url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Dropping the server starts the shutdown and waits for the drain (2 s deadline).
    let stopping = std::thread::spawn(move || drop(server));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = reqwest::Client::new().get(&health).send().await;
    assert!(refused.is_err(), "a new connection was accepted while draining");
    let got = in_flight.await.unwrap();
    assert_eq!(got.status, 200, "{}", got.describe());
    assert!(!got.body.is_empty());
    stopping.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Edit lists: HLS init segments carry the source's, DASH leaves the shift to the MPD.

/// Browsers apply an init segment's edit list in MSE and DASH players apply the MPD's
/// presentationTimeOffset: with both, media lands one shift early and players skip the first
/// segment. So DASH init segments (CMAF and CSF) have no `edts`; the PTO carries the shift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_init_segments_leave_the_edit_list_to_the_mpd() {
    use jit_origin::media::mp4::reader::{boxes, find_path};
    let server = TestServer::fixtures();
    let c = client();
    let edit_list = |init: &[u8]| -> Option<Vec<u8>> {
        let moov = boxes(init).filter_map(Result::ok).find(|b| &b.kind == b"moov").expect("moov").payload;
        find_path(moov, &[b"trak", b"edts", b"elst"]).expect("box structure").map(<[u8]>::to_vec)
    };
    // ladder video: B-frame delay of 1024 ticks (elst media_time 1024).
    let hls =
        get(&c, &server.url(&media_path("ladder", "QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf)"))).await;
    let elst = edit_list(&hls.body).expect("HLS init keeps the edit list");
    assert_eq!(&elst[elst.len() - 8..elst.len() - 4], &1024u32.to_be_bytes(), "HLS elst media_time");
    for format in ["mpd-time-cmaf", "mpd-time-csf"] {
        let init = get(
            &c,
            &server.url(&media_path("ladder", &format!("QualityLevels(150000)/Fragments(video=i,format={format})"))),
        )
        .await;
        assert_eq!(init.status, 200, "{}", init.describe());
        assert_eq!(edit_list(&init.body), None, "{format}: DASH init segment has an edit list");
        let mpd = get(&c, &server.url(&media_path("ladder", &format!("manifest(format={format})")))).await.text();
        let video = &mpd[mpd.find("id=\"video-150000\"").expect("video representation")..];
        assert!(video.contains("presentationTimeOffset=\"1024\""), "{format}: PTO carries the shift:\n{mpd}");
    }
}

// ---------------------------------------------------------------------------------------
// The operators' test page, /player.

fn player_server(player: &jit_origin::config::PlayerConfig) -> TestServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = Arc::new(Origin::from_config(&config()).expect("origin"));
    let service = jit_origin::serve::http::Service::new(origin, config().http).with_player(player);
    TestServer::serve_service(listener, service, &jit_origin::config::LimitsConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_page_off_by_default_then_served_escaped_with_a_csp() {
    use jit_origin::config::PlayerConfig;
    let c = client();
    let manifest = media_path("ladder", "manifest(format=mpd-time-cmaf).mpd");

    let off = player_server(&PlayerConfig::default());
    let got = get(&c, &off.url(&format!("/player?url={manifest}"))).await;
    assert_eq!(got.status, 404, "disabled /player: {}", got.describe());

    let on = player_server(&PlayerConfig { enabled: true, script_url: "/static/shaka-player.compiled.js".into() });
    let got = get(&c, &on.url(&format!("/player?url={manifest}"))).await;
    assert_eq!(got.status, 200, "{}", got.describe());
    assert_eq!(got.header(header::CONTENT_TYPE), Some("text/html; charset=utf-8"));
    assert_eq!(got.header(header::CACHE_CONTROL), Some("no-store"), "the url may carry a token");
    assert_eq!(got.header(header::REFERRER_POLICY), Some("no-referrer"));
    assert_eq!(got.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
    let csp = got.header(header::CONTENT_SECURITY_POLICY).unwrap_or_else(|| panic!("no CSP: {}", got.describe()));
    assert!(csp.contains("script-src 'sha256-") && csp.contains(" 'self';"), "{csp}");
    let html = got.text();
    assert!(html.contains(&format!("data-src=\"{manifest}\"")), "{html}");
    assert!(html.contains("<script src=\"/static/shaka-player.compiled.js\"></script>"), "{html}");
    let head = request(&c, Method::HEAD, &on.url(&format!("/player?url={manifest}")), &[]).await;
    assert_eq!((head.status.as_u16(), head.body.len()), (200, 0), "{}", head.describe());
    assert_eq!(head.header(header::CONTENT_LENGTH), Some(html.len().to_string().as_str()));

    // Markup in the url comes back as text; the only scripts are the page's two.
    let hostile = "/x\"><script>alert(1)</script><img/src=x/onerror=alert(2)>";
    let got = get(&c, &on.url(&format!("/player?url={}", jit_origin::plan::url::percent_encode(hostile)))).await;
    assert_eq!(got.status, 200, "{}", got.describe());
    let html = got.text();
    assert!(!html.contains("<script>alert") && !html.contains("<img"), "{html}");
    assert!(html.contains("/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img/src=x/onerror=alert(2)&gt;"));
    assert_eq!(html.matches("<script").count(), 2, "{html}");

    // Refused: no url, other schemes, protocol-relative URLs, whitespace.
    for query in
        ["", "?url=", "?url=javascript:alert(1)", "?url=data:text/html,x", "?url=//evil.example/a.mpd", "?url=/a%20b"]
    {
        let got = get(&c, &on.url(&format!("/player{query}"))).await;
        assert_eq!(got.status, 400, "/player{query}: {}", got.describe());
        assert_one_line_reason(&format!("/player{query}"), &got);
    }
    let got = request(&c, Method::POST, &on.url(&format!("/player?url={manifest}")), &[]).await;
    assert_eq!(got.status, 405, "{}", got.describe());
}
