//! A fault-injecting HTTP proxy between the origin and a storage server, for fault tests.
//!
//! It serves one request per connection (it asks both sides for `Connection: close`), so a
//! fault applies to whole requests however the client pools connections, and it counts the
//! requests it sees: a test can tell retries from a retry storm.
//!
//! Written here rather than taken from a crate: the faults are a few lines each on top of a
//! byte relay, and the test controls them between requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the requests it gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Relays requests and responses.
    Pass,
    /// Closes its listening socket: connections are refused (the server is down).
    Refuse,
    /// Accepts, reads the request and never answers.
    Hang,
    /// Relays the response at this many bytes per second.
    Trickle(usize),
    /// Answers this status (e.g. 503) without asking the server.
    Status(u16),
    /// Relays this many bytes of the response, then closes the connection.
    DropAfter(usize),
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    fault: Fault,
    /// Requests the fault still applies to; `None`: until changed. Then requests pass.
    remaining: Option<usize>,
}

/// The proxy, listening on 127.0.0.1 until dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    plan: Arc<watch::Sender<Plan>>,
    requests: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Starts relaying to `upstream` (faults off).
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let plan = Arc::new(watch::Sender::new(Plan { fault: Fault::Pass, remaining: None }));
        let requests = Arc::new(AtomicUsize::new(0));
        runtime.spawn(accept_loop(listener, upstream, plan.clone(), requests.clone()));
        FaultProxy { addr, plan, requests, runtime: Some(runtime) }
    }

    /// Applies `fault` to every request from now on (`Fault::Pass` ends faults).
    pub fn set(&self, fault: Fault) {
        self.plan.send_replace(Plan { fault, remaining: None });
    }

    /// Applies `fault` to the next `n` requests, then passes them again.
    pub fn set_for(&self, fault: Fault, n: usize) {
        self.plan.send_replace(Plan { fault, remaining: Some(n) });
    }

    /// Requests received since start (refused connections are not requests).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The fault for the request just received, counting it down.
    fn take(plan: &watch::Sender<Plan>) -> Fault {
        let mut fault = Fault::Pass;
        plan.send_if_modified(|p| match &mut p.remaining {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                fault = p.fault;
                true
            }
            None => {
                fault = p.fault;
                false
            }
        });
        fault
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Accepts connections, closing the listening socket (and binding the same address again)
/// as `Fault::Refuse` comes and goes.
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: Arc<watch::Sender<Plan>>,
    requests: Arc<AtomicUsize>,
) {
    let addr = listener.local_addr().expect("proxy addr");
    let mut listener = Some(listener);
    let mut changes = plan.subscribe();
    loop {
        let refusing = changes.borrow_and_update().fault == Fault::Refuse;
        if refusing {
            listener = None;
        } else if listener.is_none() {
            listener = Some(TcpListener::bind(addr).await.expect("bind the proxy address again"));
        }
        let accepted = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            accepted = accepted => if let Some((client, _)) = accepted {
                tokio::spawn(serve(client, upstream, plan.clone(), requests.clone()));
            },
        }
    }
}

/// One request: read it, then relay it or play the fault.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    plan: Arc<watch::Sender<Plan>>,
    requests: Arc<AtomicUsize>,
) {
    let Some(request) = read_request(&mut client, upstream).await else { return };
    requests.fetch_add(1, Ordering::SeqCst);
    let fault = FaultProxy::take(&plan);
    match fault {
        // Accepted just as the listener closed: closed like the listener.
        Fault::Refuse => {}
        Fault::Pass | Fault::Trickle(_) | Fault::DropAfter(_) => {
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            if server.write_all(&request).await.is_err() {
                return;
            }
            let _ = relay_response(&mut server, &mut client, fault).await;
        }
        Fault::Hang => {
            // Hold the connection until the client gives up.
            let _ = client.read(&mut [0u8; 1]).await;
        }
        Fault::Status(status) => {
            let head = format!("HTTP/1.1 {status} Injected\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = client.write_all(head.as_bytes()).await;
        }
    }
}

/// The request head (with `Connection: close`, addressed to `upstream`) and its body, if it
/// has a Content-Length.
async fn read_request(client: &mut TcpStream, upstream: SocketAddr) -> Option<Vec<u8>> {
    let (head, mut rest) = read_head(client).await?;
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while rest.len() < length {
        let mut buf = vec![0u8; 64 * 1024];
        let n = client.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        rest.extend_from_slice(&buf[..n]);
    }
    // The server sees itself addressed as when asked directly (fake-gcs-server routes by
    // Host; no emulator's signature covers it).
    let mut request = closing(&head, Some(upstream)).into_bytes();
    request.extend_from_slice(&rest);
    Some(request)
}

/// Reads up to the end of an HTTP head: the head's text and the bytes after it.
async fn read_head(from: &mut (impl AsyncRead + Unpin)) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let mut chunk = [0u8; 8192];
        let n = from.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `head` with its Connection header replaced by `Connection: close`, and its Host header
/// by `host` when given.
fn closing(head: &str, host: Option<SocketAddr>) -> String {
    let mut out = String::new();
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        let name = line.split_once(':').map(|(name, _)| name.trim().to_ascii_lowercase());
        match (name.as_deref(), host) {
            (Some("connection"), _) => {}
            (Some("host"), Some(host)) => out.push_str(&format!("host: {host}\r\n")),
            _ => out.push_str(&format!("{line}\r\n")),
        }
    }
    out + "connection: close\r\n\r\n"
}

/// Relays the server's response to the client (head rewritten to close), applying `fault`.
async fn relay_response(server: &mut TcpStream, client: &mut TcpStream, fault: Fault) -> std::io::Result<()> {
    let Some((head, body_start)) = read_head(server).await else { return Ok(()) };
    let mut response = closing(&head, None).into_bytes();
    response.extend_from_slice(&body_start);
    let mut sent = 0;
    loop {
        if !response.is_empty() {
            sent += send(client, &response, sent, fault).await?;
            if matches!(fault, Fault::DropAfter(n) if sent >= n) {
                // Closed without ending the response: the client sees the body cut short.
                return Ok(());
            }
        }
        response.resize(64 * 1024, 0);
        let n = server.read(&mut response).await?;
        if n == 0 {
            return client.shutdown().await;
        }
        response.truncate(n);
    }
}

/// Writes `bytes` as `fault` says; `sent` bytes went before. Returns how many were written.
async fn send(client: &mut TcpStream, bytes: &[u8], sent: usize, fault: Fault) -> std::io::Result<usize> {
    match fault {
        Fault::Trickle(per_second) => {
            // A tenth of the rate every 100 ms.
            for piece in bytes.chunks((per_second / 10).max(1)) {
                client.write_all(piece).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(bytes.len())
        }
        Fault::DropAfter(limit) => {
            let n = bytes.len().min(limit.saturating_sub(sent));
            client.write_all(&bytes[..n]).await?;
            Ok(n)
        }
        _ => {
            client.write_all(bytes).await?;
            Ok(bytes.len())
        }
    }
}
