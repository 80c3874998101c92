//! Cached segments sent from their memfd: the same bytes as ever over HTTP/1.1 (first and
//! later responses, ranges) and HTTP/2, under many concurrent downloads with slow readers and
//! clients that close early, and no descriptor left behind once the cache is gone.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{clear_locator_toml, fixtures_dir, fixtures_storage_toml, TestServer};
use jit_origin::config::{Config, LimitsConfig};
use jit_origin::serve::http::Service;
use jit_origin::serve::origin::Origin;

const MANIFEST: &str = "/loc/ladder.ism/manifest(format=m3u8-cmaf)";

fn server() -> TestServer {
    let text = format!("listen = \"127.0.0.1:0\"\n{}{}", fixtures_storage_toml(), clear_locator_toml("loc", "ladder"));
    let config = Config::parse(&text, fixtures_dir()).expect("config");
    let origin = Origin::from_config(&config).expect("origin");
    let service = Service::new(std::sync::Arc::new(origin), config.http.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    TestServer::serve_service(listener, service, &LimitsConfig::default())
}

fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Reads one response (head and `Content-Length` body) from a kept-alive connection, `chunk`
/// bytes a read with `pause` between reads.
fn read_response(stream: &mut TcpStream, chunk: usize, pause: Duration) -> (String, Vec<u8>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .expect("content-length");
            if out.len() >= end + 4 + len {
                assert_eq!(out.len(), end + 4 + len, "nothing beyond the body");
                return (head, out[end + 4..].to_vec());
            }
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed mid-response");
        out.extend_from_slice(&buf[..n]);
        std::thread::sleep(pause);
    }
}

fn get(stream: &mut TcpStream, path: &str, extra: &str) -> (String, Vec<u8>) {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: origin\r\n{extra}\r\n").as_bytes()).unwrap();
    read_response(stream, 65536, Duration::ZERO)
}

/// Every segment path of every variant of the clear ladder.
fn segment_paths(server: &TestServer) -> Vec<String> {
    let mut stream = connect(server);
    let (_, multivariant) = get(&mut stream, MANIFEST, "");
    let mut segments = Vec::new();
    for variant in String::from_utf8(multivariant).unwrap().lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let variant_path = format!("/loc/ladder.ism/{variant}");
        let base = variant_path.rsplit_once('/').unwrap().0.to_string();
        let (_, playlist) = get(&mut stream, &variant_path, "");
        let playlist = String::from_utf8(playlist).unwrap();
        segments.extend(
            playlist.lines().filter(|l| l.contains("Fragments(") && !l.starts_with('#')).map(|l| format!("{base}/{l}")),
        );
    }
    segments
}

/// Open descriptors of this process, and how many of them are cached segments' memfds.
fn descriptors() -> (usize, usize) {
    let mut all = 0;
    let mut memfds = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        all += 1;
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().contains("memfd:jit-origin-segment")) {
            memfds += 1;
        }
    }
    (all, memfds)
}

async fn http2_bodies(server: &TestServer, paths: &[String]) -> Vec<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut bodies = Vec::new();
    for path in paths {
        let request = http::Request::get(format!("http://origin{path}")).body(()).unwrap();
        client = client.ready().await.unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let mut body = response.await.unwrap().into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            bytes.extend_from_slice(&chunk);
        }
        bodies.push(bytes);
    }
    bodies
}

// One test: it counts the process's descriptors, which a test running beside it would move.
#[test]
fn cached_segments_are_sent_exactly_and_leave_no_descriptor_behind() {
    // A first server opens what the process keeps once opened (not per request or entry).
    let warm = server();
    let warm_paths: Vec<String> = segment_paths(&warm).into_iter().take(2).collect();
    for path in &warm_paths {
        get(&mut connect(&warm), path, "");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(http2_bodies(&warm, &warm_paths));
    drop(rt);
    drop(warm);
    let (before, _) = descriptors();
    let server = server();
    let paths = segment_paths(&server);
    // First requests build and cache each segment (and are sent from the copy already); then
    // the cached ones, twice on one kept-alive connection.
    let mut first = BTreeMap::new();
    for path in &paths {
        let (head, body) = get(&mut connect(&server), path, "");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        first.insert(path.clone(), body);
    }
    let large = first.values().filter(|b| b.len() as u64 >= 64 * 1024).count();
    assert!(large > 0, "the fixtures have segments large enough for a memfd");
    assert_eq!(descriptors().1, large, "one memfd per large cached segment");
    let mut stream = connect(&server);
    for _ in 0..2 {
        for path in &paths {
            assert!(get(&mut stream, path, "").1 == first[path], "{path}: cached bytes differ from the first response");
        }
    }
    // Ranges of a large one: slices of the same bytes.
    let (path, body) = first.iter().max_by_key(|(_, b)| b.len()).unwrap();
    for (from, to) in [(0, 99), (1000, body.len() - 1), (body.len() - 10, body.len() - 1)] {
        let (head, part) = get(&mut stream, path, &format!("Range: bytes={from}-{to}\r\n"));
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert!(part == body[from..=to], "range {from}-{to}");
    }
    // HTTP/2 writes them the ordinary way, from the same mapping.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bodies = rt.block_on(http2_bodies(&server, &paths));
    for (path, body) in paths.iter().zip(&bodies) {
        assert!(*body == first[path], "{path} over HTTP/2");
    }
    drop(rt);

    // Many concurrent downloads: fast readers, slow ones, and clients closing mid-body.
    let threads: Vec<_> = (0..48)
        .map(|i| {
            let paths = paths.clone();
            let first = first.clone();
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                for (n, path) in paths.iter().enumerate().skip(i % paths.len()).take(6) {
                    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: origin\r\n\r\n").as_bytes()).unwrap();
                    match i % 3 {
                        0 => assert!(read_response(&mut stream, 65536, Duration::ZERO).1 == first[path]),
                        1 => assert!(read_response(&mut stream, 16384, Duration::from_millis(2)).1 == first[path]),
                        // Reads a little of the body, then hangs up.
                        _ if n % 2 == 1 => {
                            let mut some = [0u8; 4096];
                            let _ = stream.read(&mut some).expect("read");
                            return;
                        }
                        _ => assert!(read_response(&mut stream, 65536, Duration::ZERO).1 == first[path]),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a download failed");
    }
    drop(server);
    // The cache went with the server: its memfds are closed, and nothing else stayed open.
    // Connections close asynchronously on the server's side: wait a little for them.
    let mut after = descriptors();
    for _ in 0..50 {
        if after.0 <= before {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = descriptors();
    }
    assert_eq!(after.1, 0, "memfds left open");
    let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    assert!(after.0 <= before, "{} descriptors open after, {before} before: {open:?}", after.0);
}
