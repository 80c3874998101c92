//! What a public origin does with slow, oversized or abusive requests, and with requests that
//! lack the CDN's secret or a URL signature: each limit answered with its status, over raw
//! TCP so nothing in a client library smooths it over.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{clear_locator_toml, fixtures_dir, fixtures_storage_toml, TestServer};
use jit_origin::config::{Config, LimitsConfig};
use jit_origin::origin::Origin;
use jit_origin::server::Service;

const LOCATOR: &str = "loc";
const SIGNED: &str = "signed";
/// base64 of "0123456789abcdef0123456789abcdef".
const SIGNING_KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const MANIFEST: &str = "/loc/ladder.ism/manifest(format=m3u8-cmaf)";

fn config() -> Config {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n{}{}{}url_signing_key_base64 = \"{SIGNING_KEY_B64}\"\n",
        fixtures_storage_toml(),
        clear_locator_toml(LOCATOR, "ladder"),
        clear_locator_toml(SIGNED, "ladder"),
    );
    Config::parse(&text, fixtures_dir()).expect("config")
}

fn server(limits: LimitsConfig, protect: Option<&str>) -> TestServer {
    let config = config();
    let origin = Origin::from_config(&config).expect("origin");
    let mut service = Service::new(std::sync::Arc::new(origin), config.http.clone());
    service = service.with_max_url_bytes(limits.max_url_bytes);
    if let Some(secret) = protect {
        service = service.with_origin_protection(http::HeaderName::from_static("x-origin-verify"), secret.into());
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    TestServer::serve_service(listener, service, &limits)
}

fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.url("").trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Sends `request` on a new connection and reads until the server closes it or the response's
/// body is complete.
fn exchange(server: &TestServer, request: &[u8]) -> String {
    let mut stream = connect(server);
    stream.write_all(request).expect("send");
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: origin\r\n{extra_headers}\r\n").into_bytes()
}

fn status(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn oversized_urls_and_headers_and_bodies_on_get_are_refused() {
    let server = server(LimitsConfig { max_url_bytes: 1024, ..LimitsConfig::default() }, None);
    assert_eq!(status(&exchange(&server, &get(MANIFEST, ""))), 200);
    let long = format!("{MANIFEST}?{}", "a".repeat(1100));
    assert_eq!(status(&exchange(&server, &get(&long, ""))), 414);
    let huge_header = format!("X-Filler: {}\r\n", "b".repeat(40_000));
    assert_eq!(status(&exchange(&server, &get(MANIFEST, &huge_header))), 431);
    let with_body = format!("GET {MANIFEST} HTTP/1.1\r\nHost: origin\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(status(&exchange(&server, with_body.as_bytes())), 400);
}

#[test]
fn a_slow_first_request_head_gets_408_and_idle_connections_close() {
    let limits = LimitsConfig { header_read_timeout_secs: 1, idle_timeout_secs: 2, ..LimitsConfig::default() };
    let server = server(limits, None);
    // Slowloris: a request head that never ends.
    let mut slow = connect(&server);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: origin\r\n").unwrap();
    let started = Instant::now();
    let response = read_response(&mut slow);
    assert_eq!(status(&response), 408, "{response}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A kept-alive connection left idle is closed by the server.
    let mut idle = connect(&server);
    idle.write_all(&get("/healthz", "")).unwrap();
    assert_eq!(status(&read_response(&mut idle)), 200);
    let started = Instant::now();
    let mut buf = [0u8; 16];
    // A read that times out (the connection left open) fails here, not as a close.
    let n = idle.read(&mut buf).expect("the server should close the idle connection, not leave it open");
    assert_eq!(n, 0, "the server should close the idle connection");
    assert!(started.elapsed() >= Duration::from_millis(1500), "closed too early: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10), "closed late: {:?}", started.elapsed());
}

#[test]
fn connections_beyond_the_limit_get_503_with_retry_after() {
    let server = server(LimitsConfig { max_connections: 2, ..LimitsConfig::default() }, None);
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(&server)).collect();
    // Make sure both are accepted and counted before the third arrives.
    for stream in &mut held {
        stream.write_all(&get("/healthz", "")).unwrap();
        assert_eq!(status(&read_response(stream)), 200);
    }
    let response = exchange(&server, &get("/healthz", ""));
    assert_eq!(status(&response), 503, "{response}");
    assert!(response.contains("Retry-After: 1"), "{response}");
    drop(held);
    // Once they close, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = exchange(&server, &get("/healthz", ""));
        if status(&response) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the others closed: {response}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn media_routes_need_the_cdn_secret_but_health_does_not() {
    let secret = "a-long-shared-secret-from-cloudfront";
    let server = server(LimitsConfig::default(), Some(secret));
    let denied = exchange(&server, &get(MANIFEST, ""));
    assert_eq!(status(&denied), 403, "{denied}");
    assert!(!denied.contains(secret));
    let wrong = exchange(&server, &get(MANIFEST, "X-Origin-Verify: a-long-shared-secret-from-cloudfronT\r\n"));
    assert_eq!(status(&wrong), 403);
    let right = exchange(&server, &get(MANIFEST, &format!("X-Origin-Verify: {secret}\r\n")));
    assert_eq!(status(&right), 200, "{right}");
    assert_eq!(status(&exchange(&server, &get("/healthz", ""))), 200);
    assert_eq!(status(&exchange(&server, &get("/readyz", ""))), 200);
}

#[test]
fn signed_locators_need_a_valid_signature_which_manifests_carry_on() {
    let server = server(LimitsConfig::default(), None);
    let key = b"0123456789abcdef0123456789abcdef";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sig = jit_origin::url_signing::sign(key, SIGNED, now + 600).unwrap();
    let manifest = format!("/{SIGNED}/ladder.ism/manifest(format=m3u8-cmaf)");

    let unsigned = exchange(&server, &get(&manifest, ""));
    assert_eq!(status(&unsigned), 403, "{unsigned}");
    let expired = jit_origin::url_signing::sign(key, SIGNED, now - 1).unwrap();
    let response = exchange(&server, &get(&format!("{manifest}?sig={expired}"), ""));
    assert_eq!(status(&response), 403);
    assert!(response.contains("expired"), "{response}");
    let other_locator = jit_origin::url_signing::sign(key, LOCATOR, now + 600).unwrap();
    assert_eq!(status(&exchange(&server, &get(&format!("{manifest}?sig={other_locator}"), ""))), 403);

    // Signed: every URL of the multivariant playlist carries the signature, and following
    // them down to a segment works.
    let multivariant = exchange(&server, &get(&format!("{manifest}?sig={sig}"), ""));
    assert_eq!(status(&multivariant), 200, "{multivariant}");
    let body = multivariant.split_once("\r\n\r\n").unwrap().1;
    let uris: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .chain(body.lines().filter_map(|l| l.split_once("URI=\"").map(|(_, rest)| rest.split('"').next().unwrap())))
        .collect();
    assert!(!uris.is_empty());
    assert!(uris.iter().all(|u| u.ends_with(&format!("?sig={sig}"))), "{body}");
    let playlist_path = format!("/{SIGNED}/ladder.ism/{}", uris[0]);
    let playlist = exchange(&server, &get(&playlist_path, ""));
    assert_eq!(status(&playlist), 200, "{playlist}");
    let playlist_body = playlist.split_once("\r\n\r\n").unwrap().1;
    let segment = playlist_body.lines().find(|l| l.contains("Fragments(") && !l.starts_with('#')).unwrap();
    assert!(segment.ends_with(&format!("?sig={sig}")), "{playlist_body}");
    let base = playlist_path.rsplit_once('/').unwrap().0;
    let segment_path = format!("{base}/{segment}");
    assert_eq!(status(&exchange(&server, &get(&segment_path, ""))), 200);
    let unsigned_segment = segment_path.split_once('?').unwrap().0;
    assert_eq!(status(&exchange(&server, &get(unsigned_segment, ""))), 403);

    // DASH: the segment templates carry it.
    let mpd = exchange(&server, &get(&format!("/{SIGNED}/ladder.ism/manifest(format=mpd-time-cmaf)?sig={sig}"), ""));
    assert_eq!(status(&mpd), 200);
    assert!(mpd.contains(&format!(",format=mpd-time-cmaf)?sig={sig}\"")), "{mpd}");
    assert!(!mpd.contains("format=mpd-time-cmaf)\""), "a template without the signature: {mpd}");
}
