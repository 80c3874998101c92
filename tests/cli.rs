//! The `jit-origin` command line: a bad configuration is refused at start with the key and
//! line named and a non-zero exit; the default configuration serves and prints playable URLs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-origin"))
}

#[test]
fn bad_config_is_refused_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("listen = \"127.0.0.1:0\"\n[cache]\nsegment_mb = 5\n", "line 3", "segment_mb"),
        ("listen = \"127.0.0.1:0\"\n[[locator]]\nid = \"a\"\nstorage = \"nowhere\"\nasset = \"x\"\npolicy = \"clear\"\n", "line 4", "nowhere"),
        ("listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"s\"\nurl = \"file://.\"\n[[locator]]\nid = \"a\"\nstorage = \"s\"\nasset = \"x\"\npolicy = \"drm\"\n", "line 9", "drm"),
        ("listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"s\"\nurl = \"az://media/vod\"\nregion = \"eu-west-1\"\n", "line 5", "region"),
    ];
    for (text, line, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = bin().args(["serve", "--config"]).arg(&path).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{text}");
        assert!(stderr.contains(line) && stderr.contains(key), "{text}\n→ {stderr}");
    }
}

#[test]
fn default_config_serves_and_prints_urls() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = std::fs::read_to_string(format!("{root}/config/origin.toml")).unwrap();
    // Same config on an ephemeral port, storage path made absolute.
    let config = config
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("file://../fixtures", &format!("file://{root}/fixtures"));
    let (mut child, first, url) = serve_first_url(&config);
    let response = get(&url);
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.ends_with(".ism/manifest(format=m3u8-cmaf).m3u8"), "{first}");
    assert!(response.starts_with("HTTP/1.1 200"), "{url}: {response}");
    assert!(response.contains("#EXT-X-STREAM-INF"), "{response}");
}

/// A locator with `url_signing_key_base64` refuses unsigned URLs, so `serve` prints them
/// signed: the printed URL plays.
#[test]
fn serve_prints_signed_urls_for_signed_locators() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"fixtures\"\nurl = \"file://{root}/fixtures\"\n\
         [[locator]]\nid = \"signed-ladder\"\nstorage = \"fixtures\"\nasset = \"ladder\"\npolicy = \"clear\"\n\
         url_signing_key_base64 = \"c2lnbmluZy1rZXktZm9yLXRoZS1jbGktdGVzdA==\"\n"
    );
    let (mut child, first, url) = serve_first_url(&config);
    let signed = get(&url);
    let unsigned = get(url.split('?').next().unwrap());
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.contains("/signed-ladder/ladder.ism/manifest(") && url.contains("?sig="), "{first}");
    assert!(signed.starts_with("HTTP/1.1 200"), "{url}: {signed}");
    assert!(unsigned.starts_with("HTTP/1.1 403"), "the locator should refuse unsigned URLs: {unsigned}");
}

/// Starts `serve` with `config` and reads the first URL it prints: the running child (to be
/// killed), that line and the URL in it.
fn serve_first_url(config: &str) -> (std::process::Child, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    // e.g. "dolby (clear): http://127.0.0.1:PORT/{locator}/dolby.ism/manifest(format=m3u8-cmaf).m3u8"
    let url = first.split_once(": ").map(|(_, u)| u.to_string()).unwrap_or_default();
    (child, first, url)
}

/// A minimal HTTP/1.1 GET (the test needs no client library).
fn get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}
