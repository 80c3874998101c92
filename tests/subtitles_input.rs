//! Subtitle sources through the HTTP server: WebVTT sidecars that are damaged or odd (a BOM,
//! CRLF line ends, malformed timestamps, a cue at 99:59:59, garbage bytes, an empty file, a file
//! over the size limit) next to a good video. Each asset's manifests are served with the cues
//! that could be read (counted by `inspect --json`, an independent path through the binary),
//! or refused with a 5xx naming the file; never a panic, and the same process keeps serving the
//! other assets. Also: the `/{locator}/{file}.vtt` download path serves a sidecar as stored.

mod common;

use std::path::Path;

use common::{client, get, Got, TestServer};
use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;
use jit_origin::source::index::sidecar::MAX_SIDECAR_BYTES;
use serde_json::Value;

/// Folder asset name → its sidecar's bytes. Each folder also gets the subtitles fixture's video.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut huge = b"WEBVTT\n\n00:00.500 --> 00:01.500\nbig\n\nNOTE ".to_vec();
    huge.resize(MAX_SIDECAR_BYTES as usize + 1, b'x');
    vec![
        (
            "bom-crlf",
            b"\xEF\xBB\xBFWEBVTT\r\nLanguage: en\r\n\r\n1\r\n00:00:00.500 --> 00:00:01.500\r\nOne\r\n\r\n\
              00:00:02.000 --> 00:00:03.000 align:start\r\nTwo\r\nlines\r\n\r\n00:04.000 --> 00:05.000\r\nThree\r\n"
                .to_vec(),
        ),
        (
            "bad-timestamps",
            b"WEBVTT\n\n00:00:01,000 --> 00:00:02,000\ncomma\n\n0:01.000 --> 0:02.000\nshort\n\n\
              00:00:61.000 --> 00:01:02.000\nsixty-one\n\n00:00:03.000 --> 00:00:02.000\nbackwards\n\n\
              00:00:01.000 --> 00:00:02.000\ngood\n\n00:00:01.000 --> \nno end\n"
                .to_vec(),
        ),
        (
            "late-cue",
            b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nearly\n\n99:59:59.000 --> 99:59:59.999\nlate\n".to_vec(),
        ),
        ("garbage", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("empty", Vec::new()),
        ("huge", huge),
    ]
}

/// Cues each readable case keeps; `None` for the ones refused.
fn expected_cues(asset: &str) -> Option<usize> {
    match asset {
        "bom-crlf" => Some(3),
        "bad-timestamps" => Some(1),
        "late-cue" => Some(2),
        _ => None,
    }
}

/// A storage folder holding one asset folder per case, plus the subtitles fixture.
fn make_assets(root: &Path) {
    let fixtures = common::fixtures_dir();
    let video = std::fs::read(fixtures.join("subtitles/video_150k.mp4")).expect("fixture video");
    for (asset, vtt) in cases() {
        let dir = root.join(asset);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("video_150k.mp4"), &video).unwrap();
        std::fs::write(dir.join(format!("{asset}.vtt")), vtt).unwrap();
    }
    let good = root.join("subtitles");
    std::fs::create_dir_all(&good).unwrap();
    for entry in std::fs::read_dir(fixtures.join("subtitles")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, good.join(path.file_name().unwrap())).unwrap();
    }
}

fn config(root: &Path) -> Config {
    let mut text =
        format!("listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"tmp\"\nurl = \"file://{}\"\n", root.display());
    for asset in cases().iter().map(|(a, _)| *a).chain(["subtitles"]) {
        text.push_str(&format!(
            "[[locator]]\nid = \"loc-{asset}\"\nstorage = \"tmp\"\nasset = \"{asset}\"\npolicy = \"clear\"\n"
        ));
    }
    Config::parse(&text, root.to_path_buf()).expect("test config parses")
}

fn manifest_urls(server: &TestServer, asset: &str) -> Vec<String> {
    ["m3u8-cmaf", "m3u8-aapl", "mpd-time-cmaf"]
        .iter()
        .map(|f| server.url(&format!("/loc-{asset}/{asset}.ism/manifest(format={f})")))
        .collect()
}

/// The `inspect --json` tracks of the asset folder `dir`, or the error it printed.
fn inspect(dir: &Path) -> Result<Vec<Value>, String> {
    let out = std::process::Command::new(common::bin()).arg("inspect").arg(dir).arg("--json").output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let doc: Value = serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    Ok(doc["tracks"].as_array().cloned().unwrap_or_default())
}

fn assert_served_or_named(got: &Got, asset: &str) {
    let file = format!("{asset}.vtt");
    match expected_cues(asset) {
        Some(_) => assert_eq!(got.status, 200, "{}", got.describe()),
        None => {
            assert!(got.status.is_server_error(), "{}", got.describe());
            assert!(got.text().contains(&file), "the error names {file}: {}", got.describe());
        }
    }
}

#[test]
fn damaged_sidecars_serve_their_readable_cues_or_a_5xx_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    make_assets(tmp.path());
    let server = TestServer::serve(Origin::from_config(&config(tmp.path())).expect("origin"), Default::default());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = client();
    rt.block_on(async {
        for (asset, _) in cases() {
            for url in manifest_urls(&server, asset) {
                let got = get(&c, &url).await;
                assert_served_or_named(&got, asset);
                if got.status == 200 && url.contains("m3u8-cmaf") {
                    // The text track is in the asset, with the sidecar's language where it has one.
                    assert!(got.text().contains("#EXT-X-STREAM-INF"), "{}", got.describe());
                }
            }
            // The same answer again (the error is not cached into something else, nothing hangs).
            let again = get(&c, &manifest_urls(&server, asset)[0]).await;
            assert_served_or_named(&again, asset);

            // What was read, from an independent path: the CLI over the same folder.
            let tracks = inspect(&tmp.path().join(asset));
            match expected_cues(asset) {
                Some(cues) => {
                    let tracks = tracks.unwrap_or_else(|e| panic!("{asset}: inspect failed: {e}"));
                    let text: Vec<&Value> = tracks.iter().filter(|t| t["info"]["kind"] == "text").collect();
                    assert_eq!(text.len(), 1, "{asset}: {tracks:?}");
                    assert_eq!(text[0]["cues"].as_u64(), Some(cues as u64), "{asset}");
                    // Text segments line up with the video's three 2 s segments whatever the cues:
                    // the late cue does not stretch the presentation to 100 hours.
                    let segments = |t: &Value| t["timeline"]["segments"].as_array().map_or(0, Vec::len);
                    let video = tracks.iter().find(|t| t["info"]["kind"] == "video").expect("video track");
                    assert_eq!(segments(text[0]), segments(video), "{asset}");
                    assert_eq!(segments(video), 3, "{asset}");
                }
                None => {
                    let err = tracks.expect_err(asset);
                    assert!(err.contains(&format!("{asset}.vtt")), "{asset}: inspect error names the file: {err}");
                }
            }
        }
        let err = get(&c, &manifest_urls(&server, "huge")[0]).await.text();
        assert!(err.contains("limit"), "the oversized file is refused for its size: {err}");

        // The process still serves a good asset after all of that.
        for url in manifest_urls(&server, "subtitles") {
            let got = get(&c, &url).await.ok();
            assert!(!got.body.is_empty());
        }
    });
}

#[test]
fn the_download_path_serves_a_sidecar_as_stored() {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    text.push_str(&common::clear_locator_toml("loc-subtitles", "subtitles"));
    text.push_str("downloads = true\n");
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    let server = TestServer::serve(Origin::from_config(&config).expect("origin"), config.http.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = client();
    rt.block_on(async {
        for file in ["subtitles_eng.vtt", "subtitles_fra.vtt", "captions_eng.vtt"] {
            let got = get(&c, &server.url(&format!("/loc-subtitles/{file}"))).await.ok();
            let stored = std::fs::read(common::fixtures_dir().join("subtitles").join(file)).unwrap();
            assert_eq!(got.body, stored, "{file} byte for byte");
            assert_eq!(got.header("content-type"), Some("text/vtt; charset=utf-8"), "{file}");
        }
    });
}

#[test]
fn mp4_text_tracks_line_up_with_the_video_segments() {
    // text-mp4/: H.264 + wvtt (cues at 0.5–1.5, 1.5–2.5 across the 2 s boundary, 3–4, 4.5–5.5 s)
    // and a CMAF stpp file with one TTML document per 2 s.
    let tracks = inspect(&common::fixtures_dir().join("text-mp4")).expect("inspect text-mp4");
    let spans = |t: &Value| -> Vec<(u64, u64, u64, u64)> {
        t["timeline"]["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .map(|s| {
                let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
                (n("time"), n("duration"), n("first_sample"), n("sample_count"))
            })
            .collect()
    };
    let video = tracks.iter().find(|t| t["info"]["kind"] == "video").expect("video");
    // Video presentation times in ms (media time less the 1024-tick B-frame edit at 12288 Hz).
    let video_ms: Vec<u64> = spans(video).iter().map(|s| (s.0 - 1024) * 1000 / 12_288).collect();
    assert_eq!(video_ms, [0, 2000, 4000]);
    let by_codec = |codec: &str| tracks.iter().find(|t| t["info"]["codec"]["sample_entry_type"] == codec).expect(codec);
    let wvtt = spans(by_codec("wvtt"));
    let stpp = spans(by_codec("stpp"));
    assert_eq!(wvtt.iter().map(|s| s.0).collect::<Vec<_>>(), video_ms);
    assert_eq!(stpp.iter().map(|s| s.0).collect::<Vec<_>>(), video_ms);
    // wvtt samples: [0, 0.5) gap, 0.5–1.5, 1.5–2.5, 2.5–3 gap, 3–4, 4–4.5 gap, 4.5–5.5, 5.5–6 gap.
    // Sample 2 crosses 2 s and is in the first two segments.
    assert_eq!(wvtt, [(0, 2000, 0, 3), (2000, 2000, 2, 3), (4000, 2000, 5, 3)]);
    assert_eq!(stpp, [(0, 2000, 0, 1), (2000, 2000, 1, 1), (4000, 2000, 2, 1)]);
    assert_eq!(by_codec("stpp")["language"], "fra");
}
