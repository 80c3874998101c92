//! What a public origin does with slow, oversized or abusive requests, and with requests that
//! lack the CDN's secret or a URL signature: each limit answered with its status, over raw
//! TCP so nothing in a client library smooths it over.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{clear_locator_toml, fixtures_dir, fixtures_storage_toml, TestServer};
use jit_origin::config::{Config, LimitsConfig};
use jit_origin::serve::http::Service;
use jit_origin::serve::origin::Origin;

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
    service = service.with_limits(&limits);
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
    String::from_utf8_lossy(&read_response_bytes(stream)).into_owned()
}

fn read_response_bytes(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if let Some((head, body)) = split_response(&out) {
            let len = String::from_utf8_lossy(head)
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    out
}

/// A response's head and body.
fn split_response(response: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&response[..end], &response[end + 4..]))
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
    let sig = jit_origin::protect::url_signing::sign(key, SIGNED, now + 600).unwrap();
    let manifest = format!("/{SIGNED}/ladder.ism/manifest(format=m3u8-cmaf)");

    let unsigned = exchange(&server, &get(&manifest, ""));
    assert_eq!(status(&unsigned), 403, "{unsigned}");
    let expired = jit_origin::protect::url_signing::sign(key, SIGNED, now - 1).unwrap();
    let response = exchange(&server, &get(&format!("{manifest}?sig={expired}"), ""));
    assert_eq!(status(&response), 403);
    assert!(response.contains("expired"), "{response}");
    let other_locator = jit_origin::protect::url_signing::sign(key, LOCATOR, now + 600).unwrap();
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

/// The value of an unlabelled metric, read from `/metrics` on a new connection (which is open
/// while it is read, so `jit_http_connections_open` counts it).
fn metric(server: &TestServer, name: &str) -> u64 {
    let response = exchange(server, &get("/metrics", ""));
    let prefix = format!("{name} ");
    let line = response.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name}: {response}"));
    line[prefix.len()..].trim().parse().unwrap_or_else(|_| panic!("bad value: {line}"))
}

/// Polls until the server counts `open` connections (the one asking included), or panics
/// naming the count after `within`.
fn wait_for_open_connections(server: &TestServer, open: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now_open = metric(server, "jit_http_connections_open");
        if now_open == open {
            return;
        }
        assert!(Instant::now() < deadline, "{now_open} connections still open after {within:?}, expected {open}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every segment URL of the first variant of the clear ladder.
fn segment_paths(server: &TestServer) -> Vec<String> {
    let multivariant = exchange(server, &get(MANIFEST, ""));
    let body = multivariant.split_once("\r\n\r\n").unwrap().1;
    let variant = body.lines().find(|l| !l.starts_with('#') && !l.is_empty()).expect("a variant");
    let variant_path = format!("/{LOCATOR}/ladder.ism/{variant}");
    let playlist = exchange(server, &get(&variant_path, ""));
    let base = variant_path.rsplit_once('/').unwrap().0;
    let segments: Vec<String> = playlist
        .split_once("\r\n\r\n")
        .unwrap()
        .1
        .lines()
        .filter(|l| l.contains("Fragments(") && !l.starts_with('#'))
        .map(|l| format!("{base}/{l}"))
        .collect();
    assert!(!segments.is_empty(), "{playlist}");
    segments
}

/// A stalled HTTP/2 client keeps nothing: one that never opens its flow-control window
/// (SETTINGS_INITIAL_WINDOW_SIZE = 0, no WINDOW_UPDATE) has its connection, and the response
/// bodies waiting on it, dropped once no byte moved for the idle timeout plus the close grace.
/// Until then it holds at most `max_streams_per_connection` of them.
#[test]
fn http2_clients_that_never_open_their_window_are_dropped() {
    let limits = LimitsConfig { idle_timeout_secs: 1, max_streams_per_connection: 8, ..LimitsConfig::default() };
    let server = server(limits, None);
    let segments = segment_paths(&server);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let closed_after = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (mut client, connection) =
            h2::client::Builder::new().initial_window_size(0).handshake::<_, bytes::Bytes>(tcp).await.unwrap();
        let connection = tokio::spawn(connection);
        let mut bodies = Vec::new();
        for path in segments.iter().cycle().take(8) {
            let request = http::Request::get(format!("http://origin{path}")).body(()).unwrap();
            client = client.ready().await.unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200);
            // Held, never read: the server cannot send a byte of it.
            bodies.push(response.into_body());
        }
        // The server's SETTINGS (in before any response) bound the streams it holds.
        assert_eq!(client.current_max_send_streams(), 8);
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(20), connection).await;
        assert!(closed.is_ok(), "the server kept the stalled HTTP/2 connection open for 20 s");
        drop(bodies);
        started.elapsed()
    });
    // Idle for 1 s, then the grace: not before the idle timeout, and well within 20 s.
    assert!(closed_after >= Duration::from_millis(900), "closed too early: {closed_after:?}");
    wait_for_open_connections(&server, 1, Duration::from_secs(5));
    assert_eq!(metric(&server, "jit_http_connections_idle_dropped_total"), 1);
}

/// The same for HTTP/1.1: a client that pipelines requests and never reads the responses
/// fills the socket buffers; when no byte has moved for the idle timeout plus the close grace
/// the server drops the connection although the client still holds it. Also when every
/// response fit into the kernel's buffers, so the server had finished writing: either way the
/// close is a reset, which the client sees at once, rather than a FIN queued behind bytes it
/// will never read (which would leave the connection open on its side, and the bytes in the
/// kernel, for as long as the kernel retries).
#[test]
fn http1_clients_that_stop_reading_mid_response_are_dropped() {
    let limits = LimitsConfig { idle_timeout_secs: 1, ..LimitsConfig::default() };
    let server = server(limits, None);
    let segments = segment_paths(&server);
    // Far more response bytes than loopback socket buffers hold; then fewer, which they do.
    for requests in [400, 40] {
        let stalled = connect(&server);
        let pipelined: Vec<u8> = segments.iter().cycle().take(requests).flat_map(|path| get(path, "")).collect();
        (&stalled).write_all(&pipelined).unwrap();
        wait_for_open_connections(&server, 1, Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !closed_by_peer(&stalled) {
            assert!(Instant::now() < deadline, "{requests} unread responses: the client's side is still open");
            std::thread::sleep(Duration::from_millis(100));
        }
        if requests == 400 {
            // Still writing when it stalled: dropped after the grace.
            assert_eq!(metric(&server, "jit_http_connections_idle_dropped_total"), 1);
        }
    }
}

/// Whether the peer has closed `stream` (a FIN or a reset received), whatever unread bytes
/// are still in its receive queue: the TCP state from `TCP_INFO`.
fn closed_by_peer(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    const TCP_CLOSE: u8 = 7;
    const TCP_CLOSE_WAIT: u8 = 8;
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is open (borrowed from `stream`); the kernel writes at most `len`
    // bytes into `info`.
    let ok = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    } == 0;
    !ok || matches!(info.tcpi_state, TCP_CLOSE | TCP_CLOSE_WAIT)
}

/// Request bodies are bounded in time and size: a licence request trickled at 1 byte/s gets
/// 408 and the connection is closed once `body_read_timeout_secs` has passed; a declared or
/// sent body over `max_body_bytes` gets 413.
#[test]
fn slow_or_large_request_bodies_are_refused() {
    let limits = LimitsConfig { body_read_timeout_secs: 2, max_body_bytes: 1024, ..LimitsConfig::default() };
    let server = server(limits, None);
    let clearkey = format!("/{LOCATOR}/clearkey");

    let mut trickle = connect(&server);
    trickle
        .write_all(format!("POST {clearkey} HTTP/1.1\r\nHost: origin\r\nContent-Length: 100\r\n\r\n{{").as_bytes())
        .unwrap();
    let started = Instant::now();
    let writer = {
        let mut stream = trickle.try_clone().unwrap();
        std::thread::spawn(move || {
            // 1 byte/s until the server closes the connection (bounded: 30 bytes at most).
            for _ in 0..30 {
                std::thread::sleep(Duration::from_secs(1));
                if stream.write_all(b" ").is_err() {
                    return;
                }
            }
        })
    };
    let response = read_response(&mut trickle);
    assert_eq!(status(&response), 408, "{response}");
    let mut rest = [0u8; 16];
    assert_eq!(trickle.read(&mut rest).unwrap_or(0), 0, "the connection should be closed after the 408");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2 + 5), "answered after {elapsed:?}, the timeout is 2 s");
    drop(trickle);
    writer.join().unwrap();

    let declared = format!("POST {clearkey} HTTP/1.1\r\nHost: origin\r\nContent-Length: 1000000\r\n\r\n{{");
    assert_eq!(status(&exchange(&server, declared.as_bytes())), 413);
    let body = format!("{{\"kids\":[\"{}\"]}}", "A".repeat(2000));
    let chunked = format!(
        "POST {clearkey} HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    assert_eq!(status(&exchange(&server, chunked.as_bytes())), 413);
}

/// `Range` positions are clamped to the body, however large (RFC 9110 §14.1.2): an end at
/// u64::MAX gives the whole body as a 206 with a correct Content-Range.
#[test]
fn range_ends_beyond_the_body_are_clamped() {
    let server = server(LimitsConfig::default(), None);
    let segment = &segment_paths(&server)[0];
    let fetch = |range: &str| {
        let mut stream = connect(&server);
        stream.write_all(&get(segment, range)).unwrap();
        let response = read_response_bytes(&mut stream);
        let (head, body) = split_response(&response).expect("a response");
        (String::from_utf8_lossy(head).into_owned(), body.to_vec())
    };
    let (head, whole) = fetch("");
    assert_eq!(status(&head), 200, "{head}");
    for range in ["bytes=0-18446744073709551615", "bytes=-18446744073709551615"] {
        let (head, body) = fetch(&format!("Range: {range}\r\n"));
        assert_eq!(status(&head), 206, "{range}: {head}");
        let content_range = format!("content-range: bytes 0-{}/{}", whole.len() - 1, whole.len());
        assert!(head.lines().any(|l| l == content_range), "{range}: {head}");
        assert!(body == whole, "{range}: {} bytes of {}", body.len(), whole.len());
    }
    assert_eq!(status(&exchange(&server, &get(segment, "Range: bytes=-0\r\n"))), 416);
}

/// A request head with bare LF line ends (which hyper accepts) is answered at once, not left
/// waiting for a CRLF CRLF until the header timeout's 408.
#[test]
fn request_heads_with_bare_lf_line_ends_are_answered() {
    let server = server(LimitsConfig::default(), None);
    let response = exchange(&server, b"GET /healthz HTTP/1.1\nHost: origin\n\n");
    assert_eq!(status(&response), 200, "{response}");
}

/// The `jit-origin serve` process, killed on drop.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the kernel reports for a listening socket on `port`: `ss` shows its accept-queue
/// limit (the backlog passed to listen(2)) as Send-Q.
fn listen_backlog_of(port: u16) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_else(|| panic!("no listener on {port}: {text}"));
    line.split_whitespace().nth(2).and_then(|q| q.parse().ok()).unwrap_or_else(|| panic!("no Send-Q in {line:?}"))
}

/// With `max_connections` held by idle clients, the public listener turns new clients away
/// but the health listener still answers the probes and the scraper (and nothing else); both
/// listen with the configured backlog.
#[test]
fn health_stays_answerable_on_its_own_listener_when_connections_are_exhausted() {
    let (public, health) = (free_port(), free_port());
    let text = format!(
        "listen = \"127.0.0.1:{public}\"\n{}{}[limits]\nmax_connections = 3\nlisten_backlog = 77\n\
         health_listen = \"127.0.0.1:{health}\"\n",
        fixtures_storage_toml(),
        clear_locator_toml(LOCATOR, "ladder"),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("origin.toml");
    std::fs::write(&config, text).unwrap();
    let _served = Served(
        std::process::Command::new(common::bin())
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start jit-origin"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", health)).is_err() {
        assert!(Instant::now() < deadline, "the health listener did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ask = |port: u16, request: &[u8]| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(request).unwrap();
        read_response(&mut stream)
    };
    assert_eq!(listen_backlog_of(public), 77);
    assert_eq!(listen_backlog_of(health), 77);

    // Idle clients take every public connection.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(("127.0.0.1", public)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(&get("/healthz", "")).unwrap();
        assert_eq!(status(&read_response(&mut stream)), 200);
        held.push(stream);
    }
    assert_eq!(status(&ask(public, &get("/healthz", ""))), 503);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = ask(health, &get(path, ""));
        assert_eq!(status(&response), 200, "{path}: {response}");
    }
    let media = ask(health, &get(MANIFEST, ""));
    assert_eq!(status(&media), 404, "the health listener serves media: {media}");
    drop(held);
}
