//! The official Azure Media Services SDK (Python `azure-mgmt-media`, installed by
//! tests/run.sh into target/azure-sdk/venv) against the real binary, unchanged but for its
//! endpoint and the test certificate it trusts (Azure SDKs send bearer tokens over HTTPS
//! only, so the API serves TLS here): tests/sdk/publish.py creates an asset over the
//! `ladder` fixture, an account filter (the first 4 s), an asset filter (the 150 kb/s video
//! and the English audio), a clear locator with both filters and an AES-128 envelope
//! locator and a download-only one, and reads their `listPaths`. The returned HLS and DASH
//! paths, on the streaming port once the store has been refreshed, decode to the source's
//! frames: the filtered tracks and time range for the clear locator, the whole video for the
//! envelope one; the download paths serve the asset's MP4 files as stored.
//! tests/sdk/live.py runs a live event's lifecycle through the SDK's long-running-operation
//! pollers (`begin_create`, `begin_start`, `begin_stop`, `begin_delete`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::emulator::{free_port, repo};
use common::{
    compare, fixtures_dir, fixtures_storage_toml, framemd5, get_blocking, make_certificate, representation_ids,
};

const TOKEN: &str = "sdk-test-token-0123456789";

fn python() -> PathBuf {
    let python = repo().join("target/azure-sdk/venv/bin/python");
    assert!(python.is_file(), "the Azure SDK is not installed at {}: tests/run.sh installs it", python.display());
    python
}

/// The origin binary with its management API; killed on drop.
struct Origin(Child);

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The path of `protocol` / `scheme` in a listPaths answer whose path contains `format`.
fn path_of(answer: &Value, protocol: &str, scheme: &str, format: &str) -> String {
    let paths = answer["streamingPaths"].as_array().unwrap();
    let entry = paths
        .iter()
        .find(|p| p["protocol"] == protocol && p["scheme"] == scheme)
        .unwrap_or_else(|| panic!("no {protocol} {scheme} paths in {answer}"));
    let found = entry["paths"].as_array().unwrap().iter().filter_map(Value::as_str).find(|p| p.contains(format));
    found.unwrap_or_else(|| panic!("no {format} path in {entry}")).to_string()
}

/// The origin binary with its management API over HTTPS, its store in `dir`, `extra` added to
/// its config: the process, the media port, the API's URL and certificate.
fn start_origin(dir: &Path, extra: &str) -> (Origin, u16, String, PathBuf) {
    let (cert, key) = make_certificate(dir, "api");
    let (http, api) = (free_port(), free_port());
    let config = format!(
        "listen = \"127.0.0.1:{http}\"\n{storage}\
         [[storage]]\nname = \"docs\"\nurl = \"file://{docs}\"\n\
         [store]\nstorage = \"docs\"\nprefix = \"ams\"\nrefresh_secs = 1\n\
         [api]\nlisten = \"127.0.0.1:{api}\"\ntokens_env = \"SDK_TEST_TOKENS\"\ncert_pem = \"{cert}\"\nkey_pem = \"{key}\"\n{extra}",
        storage = fixtures_storage_toml(),
        docs = dir.display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::create_dir_all(dir.join("ams")).unwrap();
    let config_path = dir.join("origin.toml");
    std::fs::write(&config_path, config).unwrap();
    let origin = Origin(
        Command::new(common::bin())
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("SDK_TEST_TOKENS", TOKEN)
            .env("JIT_ORIGIN_STORE_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("origin"),
    );
    wait_for_port(api);
    wait_for_port(http);
    (origin, http, format!("https://127.0.0.1:{api}"), cert)
}

/// Runs the SDK script `tests/sdk/{script}` against the API at `base_url`; what it prints.
fn run_script(script: &str, base_url: &str, cert: &Path) -> Value {
    let output = Command::new(python())
        .arg(repo().join("tests/sdk").join(script))
        .arg(base_url)
        .arg(cert)
        .env("API_TOKEN", TOKEN)
        .output()
        .expect("python");
    assert!(output.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{script} prints JSON: {e}"))
}

#[test]
fn the_official_sdk_publishes_what_plays() {
    let dir = tempfile::tempdir().unwrap();
    let (_origin, http, api, cert) = start_origin(dir.path(), "");
    let answer = run_script("publish.py", &api, &cert);
    let published = Instant::now();

    let clear = &answer["sdk-clear"];
    let hls = format!("http://127.0.0.1:{http}{}.m3u8", path_of(clear, "Hls", "NoEncryption", "m3u8-cmaf"));
    let dash = format!("http://127.0.0.1:{http}{}.mpd", path_of(clear, "Dash", "NoEncryption", "mpd-time-cmaf"));
    // Served once the store has been read again: within refresh_secs + 1 s.
    let multivariant = loop {
        let got = get_blocking(&hls);
        if got.status == 200 {
            break got.text();
        }
        assert!(
            published.elapsed() < Duration::from_secs(2),
            "{hls} not served 2 s after publishing: {}",
            got.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // The asset filter's tracks: the 150 kb/s video and the English audio only.
    for (track, kept) in
        [("QualityLevels(150000)", true), ("QualityLevels(300000)", false), ("audio_eng", true), ("audio_fra", false)]
    {
        assert_eq!(multivariant.contains(track), kept, "{track} in the filtered multivariant:\n{multivariant}");
    }
    let mpd = get_blocking(&dash).ok().text();
    let mut ids = representation_ids(&mpd);
    // The video's trick-mode twin (keyframes of the same track) is not a track of its own.
    ids.retain(|id| !id.ends_with("-trick"));
    ids.sort();
    assert_eq!(ids, ["audio_eng-128000", "video-150000"], "{mpd}");

    // The account filter's time range (0–4 s, on segment boundaries): the source's frames
    // before 4 s, from HLS and DASH alike.
    let source = fixtures_dir().join("ladder/video_150k.mp4");
    let first_4s = framemd5(&["-t".as_ref(), "4".as_ref()], &source, "0:v:0").unwrap();
    for url in [&hls, &dash] {
        let ours = framemd5(&[], Path::new(url), "0:v:0").unwrap();
        compare(&first_4s, &ours).unwrap_or_else(|e| panic!("{url}:\n{e}"));
    }

    // The envelope locator: HLS only (DASH has no AES-128 envelope), decrypted with the key
    // ffmpeg fetches from the origin's key endpoint, the whole video.
    let envelope = &answer["sdk-clearkey"];
    let schemes: Vec<&Value> = envelope["streamingPaths"].as_array().unwrap().iter().map(|p| &p["scheme"]).collect();
    assert!(schemes.iter().all(|s| *s == "EnvelopeEncryption"), "{envelope}");
    let manifest = path_of(envelope, "Hls", "EnvelopeEncryption", "m3u8-aapl,");
    let base = manifest.rsplit_once('/').unwrap().0;
    let playlist = format!(
        "http://127.0.0.1:{http}{base}/QualityLevels(150000)/Manifest(video,format=m3u8-aapl,encryption=cbc).m3u8"
    );
    let ours = framemd5(&[], Path::new(&playlist), "0:v:0").unwrap();
    let whole = framemd5(&[], &source, "0:v:0").unwrap();
    compare(&whole, &ours).unwrap_or_else(|e| panic!("{playlist}:\n{e}"));

    // The download-only locator: no streaming paths, and every MP4 of the folder as stored.
    let download = &answer["sdk-download"];
    assert_eq!(download["streamingPaths"], serde_json::json!([]), "{download}");
    let files: Vec<&str> = download["downloadPaths"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(files.len(), 5, "{download}");
    let video = files.iter().find(|f| f.ends_with("/video_150k.mp4")).expect("video_150k.mp4 listed");
    let got = get_blocking(&format!("http://127.0.0.1:{http}{video}")).ok();
    assert!(got.body == std::fs::read(&source).unwrap(), "{video} is not the file as stored");
}

/// tests/sdk/live.py: a live event and its output through the SDK's pollers (create, start,
/// stop, delete); the event's asset folder says running, then stopped, and the event lists its
/// RTMP ingest URL with the ingest listener's port.
#[test]
fn the_official_sdk_runs_a_live_event() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let rtmp = free_port();
    let extra = format!(
        "[[storage]]\nname = \"media\"\nurl = \"file://{}\"\n[ingest]\nrtmp_listen = \"127.0.0.1:{rtmp}\"\n",
        media.display()
    );
    let (_origin, _, api, cert) = start_origin(dir.path(), &extra);
    let answer = run_script("live.py", &api, &cert);
    let token = answer["token"].as_str().unwrap();
    let expected = serde_json::json!({
        "created": "Stopped",
        "token": token,
        "output": { "asset": "live-sdk", "window": 1800.0 },
        "started": "Running",
        "endpoints": [{ "protocol": "RTMP", "url": format!("rtmp://127.0.0.1:{rtmp}/live/{token}") }],
        "listed": ["sdk-event"],
        "stopped": "Stopped",
        "events_left": [],
    });
    assert_eq!(answer, expected);
    let live: Value = serde_json::from_slice(&std::fs::read(media.join("live/sdk/live.json")).unwrap()).unwrap();
    assert_eq!((live["event"].as_str(), live["state"].as_str()), (Some("sdk-event"), Some("stopped")), "{live}");
}
