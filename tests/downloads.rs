//! Download paths (`/{locator}/{file}`, AMS `downloadPaths`) over HTTP: the asset's progressive
//! MP4 and WebVTT files served as stored, with Range, HEAD and conditional requests, only for
//! locators whose policy allows downloads, never outside the asset folder.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{client, get, request, Got, TestServer};
use reqwest::header;
use reqwest::Method;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

const FILE: &str = "video_150k.mp4";

fn locator_toml(id: &str, asset: &str, extra: &str) -> String {
    format!(
        "[[locator]]\nid = \"{id}\"\nstorage = \"{}\"\nasset = \"{asset}\"\npolicy = \"clear\"\n{extra}\n",
        common::FIXTURES_STORAGE
    )
}

fn config(extra: &str) -> Config {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{}{}{}{extra}",
        common::fixtures_storage_toml(),
        locator_toml("dl", "ladder", "downloads = true"),
        locator_toml("stream-only", "ladder", ""),
    );
    Config::parse(&text, common::fixtures_dir()).expect("test config parses")
}

fn server() -> TestServer {
    let config = config("");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

fn source() -> Vec<u8> {
    std::fs::read(common::fixtures_dir().join("ladder").join(FILE)).expect("fixture")
}

async fn get_with(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Got {
    request(&client(), Method::GET, &server.url(path), headers).await
}

/// One HTTP/1.1 request with the path sent verbatim (reqwest would resolve `..` and `%2E`).
fn raw_status(addr: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_downloads_as_stored_with_ranges_head_and_validators() {
    let server = server();
    let source = source();
    let size = source.len();
    let path = format!("/dl/{FILE}");

    let whole = get(&client(), &server.url(&path)).await.ok();
    assert!(whole.body == source, "the body is the file");
    assert_eq!(whole.header(header::CONTENT_TYPE), Some("video/mp4"));
    assert_eq!(whole.header(header::CONTENT_LENGTH), Some(size.to_string().as_str()));
    assert_eq!(whole.header(header::ACCEPT_RANGES), Some("bytes"));
    let cache_control = whole.header(header::CACHE_CONTROL).unwrap();
    assert!(cache_control.starts_with("public, max-age=31536000"), "{cache_control}");
    let etag = whole.header(header::ETAG).expect("ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong: {etag}");
    let last_modified = whole.header(header::LAST_MODIFIED).expect("Last-Modified").to_string();
    assert_eq!(get(&client(), &server.url(&path)).await.header(header::ETAG), Some(etag.as_str()), "stable");

    for (range, bytes) in [
        ("bytes=0-99", 0..100),
        ("bytes=100-", 100..size),
        ("bytes=-50", size - 50..size),
        ("bytes=1000-999999999", 1000..size),
        ("bytes=-999999999", 0..size),
    ] {
        let got = get_with(&server, &path, &[("range", range)]).await;
        assert_eq!(got.status, 206, "{range}: {}", got.describe());
        assert!(got.body == source[bytes.clone()], "{range}: the bytes of the range");
        let content_range = format!("bytes {}-{}/{size}", bytes.start, bytes.end - 1);
        assert_eq!(got.header(header::CONTENT_RANGE), Some(content_range.as_str()), "{range}");
        assert_eq!(got.header(header::ETAG), Some(etag.as_str()), "{range}");
    }
    for range in [format!("bytes={size}-"), format!("bytes={}-{}", size + 10, size + 20), "bytes=-0".into()] {
        let got = get_with(&server, &path, &[("range", &range)]).await;
        assert_eq!(got.status, 416, "{range}: {}", got.describe());
        assert_eq!(got.header(header::CONTENT_RANGE), Some(format!("bytes */{size}").as_str()), "{range}");
    }
    // Malformed or several ranges: the whole file.
    for range in ["bytes=5-1", "bytes=0-1,5-6", "items=0-1"] {
        let got = get_with(&server, &path, &[("range", range)]).await.ok();
        assert_eq!(got.body.len(), size, "{range}");
    }

    let head = request(&client(), Method::HEAD, &server.url(&path), &[]).await.ok();
    assert!(head.body.is_empty());
    assert_eq!(head.header(header::CONTENT_LENGTH), Some(size.to_string().as_str()));
    assert_eq!(head.header(header::ETAG), Some(etag.as_str()));
    let head = request(&client(), Method::HEAD, &server.url(&path), &[("range", "bytes=10-19")]).await;
    assert_eq!((head.status.as_u16(), head.header(header::CONTENT_LENGTH)), (206, Some("10")), "{}", head.describe());

    for validator in [("if-none-match", etag.as_str()), ("if-modified-since", last_modified.as_str())] {
        let got = get_with(&server, &path, &[validator]).await;
        assert_eq!(got.status, 304, "{validator:?}: {}", got.describe());
        assert!(got.body.is_empty());
    }
    // If-Range with another version: the whole file; with this one: the range.
    let other = get_with(&server, &path, &[("range", "bytes=0-9"), ("if-range", "\"other\"")]).await.ok();
    assert!(other.body == source);
    let same = get_with(&server, &path, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!((same.status.as_u16(), same.body.len()), (206, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_need_a_policy_that_allows_them_and_stay_in_the_folder() {
    let server = server();
    let c = client();
    let refused = get(&c, &server.url(&format!("/stream-only/{FILE}"))).await;
    assert_eq!(refused.status, 403, "{}", refused.describe());
    assert!(refused.text().contains("without downloads"), "{}", refused.describe());
    assert_eq!(refused.header(header::CACHE_CONTROL), Some("no-store"));

    let missing = get(&c, &server.url("/dl/nosuch.mp4")).await;
    assert_eq!(missing.status, 404, "{}", missing.describe());
    assert_eq!(get(&c, &server.url(&format!("/nosuch/{FILE}"))).await.status, 404);

    // Streaming URLs of the same locator still work, and a path that is neither is a 400.
    get(&c, &server.url("/dl/ladder.ism/manifest(format=m3u8-cmaf)")).await.ok();
    for (path, status) in [
        ("/dl/..%2Fmuxed%2Fmuxed.mp4", 400),
        ("/dl/%2E%2E%2Fmuxed%2Fmuxed.mp4", 400),
        ("/dl/..%5Cmuxed.mp4", 400),
        ("/dl/../muxed/muxed.mp4", 400),
        ("/dl/..mp4", 400),
        ("/dl/.hidden.mp4", 400),
        ("/dl/ladder.ism", 400),
        ("/dl/audio_eng%2emp4", 400),
        ("/dl/sub/video.mp4", 400),
    ] {
        assert_eq!(raw_status(server.addr, path), status, "{path}");
    }
}

/// WebVTT sidecars download as text; a download-only locator (AMS `Predefined_DownloadOnly`)
/// serves its files and refuses streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_files_download_and_download_only_locators_refuse_streaming() {
    let dir = tempfile::tempdir().expect("temp dir");
    let asset = dir.path().join("talk");
    std::fs::create_dir(&asset).unwrap();
    let vtt = "WEBVTT\n\n00:00.000 --> 00:01.000\nHello\n";
    std::fs::write(asset.join("en.vtt"), vtt).unwrap();
    std::fs::copy(common::fixtures_dir().join("muxed").join("muxed.mp4"), asset.join("talk.mp4")).unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"{}\"\nurl = \"file://{}\"\n{}",
        common::FIXTURES_STORAGE,
        dir.path().display(),
        locator_toml("talk", "talk", "downloads = true"),
    );
    let config = Config::parse(&text, dir.path().to_path_buf()).expect("config");
    let origin = Origin::from_config(&config).expect("origin");
    let mut catalog = origin.config_catalog().clone();
    let mut download_only = (**catalog.locator("talk").expect("locator")).clone();
    download_only.id = "talk-download-only".into();
    download_only.streaming = false;
    catalog.insert_locator(download_only);
    origin.publish(catalog);
    let server = TestServer::serve(origin, config.http);
    let c = client();

    let got = get(&c, &server.url("/talk/en.vtt")).await.ok();
    assert_eq!((got.text().as_str(), got.header(header::CONTENT_TYPE)), (vtt, Some("text/vtt; charset=utf-8")));
    get(&c, &server.url("/talk/talk.ism/manifest(format=m3u8-cmaf)")).await.ok();

    get(&c, &server.url("/talk-download-only/talk.mp4")).await.ok();
    let refused = get(&c, &server.url("/talk-download-only/talk.ism/manifest(format=m3u8-cmaf)")).await;
    assert_eq!(refused.status, 403, "{}", refused.describe());
    assert!(refused.text().contains("download-only"), "{}", refused.describe());
}
