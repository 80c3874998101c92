//! The Azure Media Services URL spellings players and apps still send, over HTTP: the
//! `m3u8-aapl-v4` and `filtername=` aliases, HLS v3's `audiotrack=` (decoded with ffmpeg), and
//! Smooth Streaming's URLs (no `format=`, `fmp4-v20`) served.

mod common;

use std::path::Path;

use common::{client, get, Got, TestServer};
use reqwest::header;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

const LOCATOR: &str = "loc-ladder";

fn server() -> TestServer {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{}{}",
        common::fixtures_storage_toml(),
        common::clear_locator_toml(LOCATOR, "ladder")
    );
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

fn url(server: &TestServer, rest: &str) -> String {
    server.url(&format!("/{LOCATOR}/ladder.ism/{rest}"))
}

/// The non-comment lines of a playlist: its URIs.
fn uris(playlist: &Got) -> Vec<String> {
    playlist.text().lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_serve_what_the_canonical_spelling_serves() {
    let server = server();
    let c = client();
    let canonical = get(&c, &url(&server, "manifest(format=m3u8-aapl).m3u8")).await.ok();
    let v4 = get(&c, &url(&server, "manifest(format=m3u8-aapl-v4).m3u8")).await.ok();
    assert_eq!(v4.body, canonical.body, "children are listed in the canonical spelling");
    assert_eq!(v4.header(header::ETAG), canonical.header(header::ETAG));
    assert!(uris(&v4).iter().all(|u| u.contains("format=m3u8-aapl)")), "{}", v4.text());

    let child = "QualityLevels(150000)/Manifest(video,format=m3u8-aapl-v4).m3u8";
    let child = get(&c, &url(&server, child)).await.ok();
    assert!(uris(&child).iter().all(|u| u.contains("format=m3u8-aapl)")), "{}", child.text());

    // `filtername=` is `filter=`: an unknown filter is a 404 either way, both at once a 400.
    for (rest, status) in [
        ("manifest(format=m3u8-cmaf,filtername=nosuch)", 404),
        ("QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,filtername=nosuch)", 404),
        ("manifest(format=m3u8-cmaf,filter=a,filtername=b)", 400),
    ] {
        let got = get(&c, &url(&server, rest)).await;
        assert_eq!(got.status, status, "{}", got.describe());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smooth_streaming_urls_are_served() {
    let server = server();
    let c = client();
    let manifest = get(&c, &url(&server, "manifest")).await.ok();
    assert_eq!(manifest.header(header::CONTENT_TYPE), Some("application/vnd.ms-sstr+xml"));
    for (rest, status) in [
        ("Manifest", 200),
        ("manifest(format=fmp4-v20)", 200),
        ("manifest(filtername=nosuch)", 404),
        ("QualityLevels(150000)/Fragments(video=0)", 200),
        ("QualityLevels(150000)/Fragments(video=1)", 404),
        ("QualityLevels(150000)/Fragments(video=i)", 400),
    ] {
        let got = get(&c, &url(&server, rest)).await;
        assert_eq!(got.status, status, "{}", got.describe());
    }
    let same = get(&c, &url(&server, "Manifest")).await.ok();
    assert_eq!(same.body, manifest.body, "keywords are case-insensitive");
}

/// HLS v3 muxes one audio into the video segments: the default one, or the one `audiotrack=`
/// names on the media playlist, whose segments carry the choice on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiotrack_chooses_the_audio_muxed_into_v3_segments() {
    let server = server();
    let c = client();
    let playlist = |audio: &str| format!("QualityLevels(150000)/Manifest(video,format=m3u8-aapl-v3{audio}).m3u8");
    let default = get(&c, &url(&server, &playlist(""))).await.ok();
    let french = get(&c, &url(&server, &playlist(",audiotrack=audio_fra"))).await.ok();
    let english = get(&c, &url(&server, &playlist(",audiotrack=audio_eng"))).await.ok();
    assert_ne!(french.header(header::ETAG), default.header(header::ETAG));
    let french_uris = uris(&french);
    assert_eq!(french_uris.len(), uris(&default).len());
    for (fr, plain) in french_uris.iter().zip(uris(&default)) {
        assert_eq!(fr, &plain.replace(",format=m3u8-aapl-v3)", ",format=m3u8-aapl-v3,audiotrack=audio_fra)"));
    }

    // Segments: the default audio named explicitly is the default's bytes and ETag (one cache
    // entry); another audio gives other bytes and another ETag.
    let segment = |uris: Vec<String>| format!("QualityLevels(150000)/{}", uris[1]);
    let plain = get(&c, &url(&server, &segment(uris(&default)))).await.ok();
    let fr = get(&c, &url(&server, &segment(french_uris))).await.ok();
    let en = get(&c, &url(&server, &segment(uris(&english)))).await.ok();
    assert_eq!((en.body.as_slice(), en.header(header::ETAG)), (plain.body.as_slice(), plain.header(header::ETAG)));
    assert_ne!(fr.body, plain.body);
    assert_ne!(fr.header(header::ETAG), plain.header(header::ETAG));

    // The French-muxed playlist decodes to the French audio, as the v4 rendition serves it.
    let decode = |rest: &str, map: &str| {
        let input = url(&server, rest);
        common::framemd5(&[], Path::new(&input), map).unwrap_or_else(|e| panic!("{input}: {e}"))
    };
    let muxed = decode(&playlist(",audiotrack=audio_fra"), "0:a:0");
    let rendition = decode("QualityLevels(128000)/Manifest(audio_fra,format=m3u8-aapl).m3u8", "0:a:0");
    common::compare(&rendition, &muxed).expect("audiotrack=audio_fra decodes to the French audio");
    assert_ne!(decode(&playlist(""), "0:a:0"), muxed, "the default audio is English");

    for (rest, status) in [
        (playlist(",audiotrack=nosuch"), 404),
        ("QualityLevels(150000)/Fragments(video=0,format=m3u8-aapl-v3,audiotrack=nosuch)".into(), 404),
        ("QualityLevels(128000)/Manifest(audio_eng,format=m3u8-aapl-v3,audiotrack=audio_fra)".into(), 400),
        ("QualityLevels(150000)/Manifest(video,format=m3u8-aapl,audiotrack=audio_fra)".into(), 400),
        ("manifest(format=m3u8-aapl-v3,audiotrack=audio_fra)".into(), 400),
    ] {
        let got = get(&c, &url(&server, &rest)).await;
        assert_eq!(got.status, status, "{}", got.describe());
    }
}
