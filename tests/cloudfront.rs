//! The origin as CloudFront sees it: the real binary with an HTTPS listener, replayed
//! CloudFront-style origin fetches over TLS with HTTP/2 (conditional revalidation, Range,
//! HEAD, the origin custom header), a certificate replaced on SIGHUP without dropping open
//! connections, and a graceful exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{clear_locator_toml, fixtures_storage_toml, make_certificate};
use reqwest::header::{ETAG, IF_NONE_MATCH, RANGE};
use reqwest::{StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOCATOR: &str = "8d3c4f0e-2b1a-4c55-9a77-0c1e5a6b7d01";
const SECRET: &str = "cloudfront-origin-custom-header-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Origin {
    child: Child,
    https: u16,
    http: u16,
}

impl Origin {
    /// Starts the binary with a plain and a TLS listener and the origin custom header
    /// required; returns once both answer.
    fn start(dir: &Path, cert: &Path, key: &Path) -> Origin {
        let (http, https) = (free_port(), free_port());
        let config = format!(
            r#"
listen = "127.0.0.1:{http}"
[tls]
listen = "127.0.0.1:{https}"
cert_pem = "{cert}"
key_pem = "{key}"
[origin_protection]
header = "X-Origin-Verify"
secret = "{SECRET}"
[lifecycle]
drain_secs = 5
{storage}{locator}"#,
            cert = cert.display(),
            key = key.display(),
            storage = fixtures_storage_toml(),
            locator = clear_locator_toml(LOCATOR, "ladder"),
        );
        let path = dir.join("origin.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jit-origin"))
            .args(["serve", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jit-origin");
        // It prints "HTTPS on ADDR" once both listeners are bound.
        let stdout = child.stdout.take().unwrap();
        let printed_https = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.starts_with("HTTPS on"));
        assert!(printed_https, "the origin did not start its HTTPS listener");
        Origin { child, https, http }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn trusting(cert: &Path) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// An HTTP client like CloudFront's origin fetcher: HTTPS, HTTP/2, the custom header.
fn cloudfront_client(cert: &Path) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-origin-verify", SECRET.parse().unwrap());
    reqwest::Client::builder().use_preconfigured_tls(trusting(cert)).default_headers(headers).build().unwrap()
}

#[tokio::test]
async fn cloudfront_style_origin_fetches_over_https_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(dir.path(), "origin-a");
    let origin = Origin::start(dir.path(), &cert, &key);
    let cdn = cloudfront_client(&cert);

    let manifest = origin.url(&format!("/{LOCATOR}/ladder.ism/manifest(format=m3u8-cmaf)"));
    let response = cdn.get(&manifest).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2, "ALPN should select h2");
    let body = response.text().await.unwrap();
    let playlist = body.lines().find(|l| l.starts_with("QualityLevels(")).expect("a variant");
    let playlist_url = origin.url(&format!("/{LOCATOR}/ladder.ism/{playlist}"));
    let playlist_body = cdn.get(&playlist_url).send().await.unwrap().text().await.unwrap();
    let segment = playlist_body.lines().find(|l| l.contains("Fragments(") && !l.starts_with('#')).unwrap();
    let segment_url = format!("{}/{segment}", playlist_url.rsplit_once('/').unwrap().0);

    // Full fetch, then revalidation with the ETag (CloudFront after the TTL runs out).
    let full = cdn.get(&segment_url).send().await.unwrap();
    assert_eq!(full.status(), StatusCode::OK);
    let etag = full.headers()[ETAG].clone();
    let length: usize = full.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(full.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let bytes = full.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    let revalidated = cdn.get(&segment_url).header(IF_NONE_MATCH, etag.clone()).send().await.unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.headers()[ETAG], etag);

    // Range and HEAD.
    let ranged = cdn.get(&segment_url).header(RANGE, "bytes=100-199").send().await.unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.headers()["content-range"], format!("bytes 100-199/{length}").as_str());
    assert_eq!(ranged.bytes().await.unwrap(), bytes.slice(100..200));
    let head = cdn.head(&segment_url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], length.to_string().as_str());

    // Without the custom header (someone who found the origin's address): refused.
    let stranger = reqwest::Client::builder().use_preconfigured_tls(trusting(&cert)).build().unwrap();
    let refused = stranger.get(&segment_url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!refused.text().await.unwrap().contains(SECRET));
    // Health stays open to the load balancer, on the plain listener too.
    let health = stranger.get(format!("http://127.0.0.1:{}/readyz", origin.http)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// The leaf certificate a fresh TLS connection is given, and the open connection.
async fn handshake(port: u16, trust: &Path) -> (Vec<u8>, tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusting(trust)));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (leaf, tls)
}

async fn http1_get(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Origin-Verify: {SECRET}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn der_of(cert: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(cert).unwrap().to_vec()
}

#[tokio::test]
async fn sighup_swaps_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = make_certificate(dir.path(), "origin-a");
    let served_cert = dir.path().join("served.crt");
    let served_key = dir.path().join("served.key");
    std::fs::copy(&cert_a, &served_cert).unwrap();
    std::fs::copy(&key_a, &served_key).unwrap();
    let origin = Origin::start(dir.path(), &served_cert, &served_key);

    // Trust both certificates, so the client accepts whichever the server presents.
    let (cert_b, key_b) = make_certificate(dir.path(), "origin-b");
    let both = dir.path().join("both.crt");
    std::fs::write(&both, [std::fs::read(&cert_a).unwrap(), std::fs::read(&cert_b).unwrap()].concat()).unwrap();

    let (leaf, mut open_connection) = handshake(origin.https, &both).await;
    assert_eq!(leaf, der_of(&cert_a));
    assert!(http1_get(&mut open_connection, "/healthz").await.starts_with("HTTP/1.1 200"));

    // A broken certificate file: the reload is refused and A stays.
    std::fs::write(&served_cert, "not a certificate").unwrap();
    origin.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handshake(origin.https, &both).await.0, der_of(&cert_a));

    std::fs::copy(&cert_b, &served_cert).unwrap();
    std::fs::copy(&key_b, &served_key).unwrap();
    origin.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if handshake(origin.https, &both).await.0 == der_of(&cert_b) {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not load the new certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened under A still serves.
    assert!(http1_get(&mut open_connection, "/healthz").await.starts_with("HTTP/1.1 200"));
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(dir.path(), "origin-a");
    let mut origin = Origin::start(dir.path(), &cert, &key);
    origin.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = origin.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", origin.http)).is_err(), "still accepting after exit");
}
