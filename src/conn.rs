//! Connections: the plain and TLS listeners, the limits a public origin needs against slow or
//! abusive clients, and the graceful drain on shutdown. Requests themselves are
//! [`crate::server::Service`]'s business.
//!
//! * A new connection must send its first request head within `header_read_timeout` (slowloris)
//!   or it gets `408` and is closed. Later requests on a keep-alive HTTP/1.1 connection must
//!   arrive within `idle_timeout` of the previous response (hyper's header timer, which closes
//!   silently, as for any idle persistent connection).
//! * A connection with no bytes moving for `idle_timeout` is shut down gracefully (HTTP/2 too).
//! * Beyond `max_connections`, a new connection is answered `503` with `Retry-After` and closed.
//! * On shutdown: readiness fails, the listeners close, every connection finishes its in-flight
//!   requests (HTTP/2 gets GOAWAY), and the process waits for them up to the drain deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::LimitsConfig;
use crate::server::Service;

/// A listening socket, plain or TLS.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// Connection limits (from `[limits]`).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
}

impl From<&LimitsConfig> for ConnLimits {
    fn from(l: &LimitsConfig) -> Self {
        ConnLimits {
            header_read_timeout: Duration::from_secs(l.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(l.idle_timeout_secs),
            max_connections: l.max_connections,
            max_header_bytes: l.max_header_bytes,
        }
    }
}

/// Connections over the limit that are still answered with a 503 (beyond, they are closed at
/// once): enough to tell a burst of clients to come back, bounded so a flood costs nothing.
const OVERLOAD_ANSWERS: usize = 64;

const TIMEOUT_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nrequest head too slow";
const BUSY_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n\r\ntoo many open connections";

/// What every connection task shares.
struct Shared {
    service: Arc<Service>,
    builder: ConnBuilder<TokioExecutor>,
    limits: ConnLimits,
    open: AtomicUsize,
    overloaded: AtomicUsize,
    all_closed: Notify,
    shutdown: watch::Receiver<bool>,
}

/// Serves `listeners` until `shutdown` resolves, then drains open connections for up to
/// `drain`.
pub async fn serve(
    listeners: Vec<Listener>,
    service: Arc<Service>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> io::Result<()> {
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32);
    let (stop, stopped) = watch::channel(false);
    let shared = Arc::new(Shared {
        service,
        builder,
        limits,
        open: AtomicUsize::new(0),
        overloaded: AtomicUsize::new(0),
        all_closed: Notify::new(),
        shutdown: stopped,
    });
    let accept_loops: Vec<_> = listeners.into_iter().map(|l| tokio::spawn(accept_loop(l, shared.clone()))).collect();
    shutdown.await;
    // Readiness fails first, so a load balancer polling /readyz on a kept-alive connection
    // stops sending new clients while the in-flight ones finish.
    shared.service.ready.store(false, Ordering::Relaxed);
    let _ = stop.send(true);
    for accept in accept_loops {
        let _ = accept.await;
    }
    let drained = async {
        loop {
            let notified = shared.all_closed.notified();
            if shared.open.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(drain, drained).await.is_err() {
        tracing::warn!(open = shared.open.load(Ordering::Relaxed), "drain deadline passed with connections still open");
    }
    Ok(())
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let stopped = until_stopped(shared.shutdown.clone());
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let _ = stream.set_nodelay(true);
        let metrics = &shared.service.origin().metrics;
        if shared.open.load(Ordering::Acquire) >= shared.limits.max_connections {
            metrics.connections_refused.inc();
            if shared.overloaded.fetch_add(1, Ordering::AcqRel) < OVERLOAD_ANSWERS {
                let shared = shared.clone();
                let tls = listener.tls.clone();
                tokio::spawn(async move {
                    answer_overloaded(stream, tls, &shared.limits).await;
                    shared.overloaded.fetch_sub(1, Ordering::AcqRel);
                });
            } else {
                shared.overloaded.fetch_sub(1, Ordering::AcqRel);
            }
            continue;
        }
        shared.open.fetch_add(1, Ordering::AcqRel);
        metrics.connections_open.inc();
        let shared = shared.clone();
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, peer, &shared).await,
                Some(acceptor) => {
                    match tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => connection(tls_stream, peer, &shared).await,
                        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake too slow"),
                    }
                }
            }
            shared.service.origin().metrics.connections_open.dec();
            if shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.all_closed.notify_waiters();
            }
        });
    }
}

/// Tells a client over the connection limit to retry, on the protocol it speaks (a TLS
/// client gets the 503 inside TLS).
async fn answer_overloaded(stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>, limits: &ConnLimits) {
    let answer = async {
        match tls {
            None => write_and_close(stream, BUSY_503).await,
            Some(acceptor) => {
                if let Ok(s) = acceptor.accept(stream).await {
                    write_and_close(s, BUSY_503).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(limits.header_read_timeout, answer).await;
}

async fn write_and_close(mut io: impl AsyncWrite + Unpin, bytes: &[u8]) {
    let _ = io.write_all(bytes).await;
    let _ = io.shutdown().await;
}

/// One connection: the first request head under the header timeout, then hyper, watched for
/// idleness and for the server's shutdown.
async fn connection<IO>(mut io: IO, peer: SocketAddr, shared: &Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head = match tokio::time::timeout(
        shared.limits.header_read_timeout,
        read_first_head(&mut io, shared.limits.max_header_bytes),
    )
    .await
    {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) | Ok(Err(_)) => return,
        Err(_) => {
            shared.service.origin().metrics.connections_timed_out.inc();
            tracing::debug!(peer = %peer, "first request head too slow: 408");
            write_and_close(io, TIMEOUT_408).await;
            return;
        }
    };
    let activity = Arc::new(Activity::new());
    let io = WatchedIo { head, io, activity: activity.clone() };
    let service = shared.service.clone();
    let svc = hyper::service::service_fn(move |req| service.clone().call(req, peer));
    let conn = shared.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let stopped = until_stopped(shared.shutdown.clone());
    tokio::pin!(stopped);
    let idle = shared.limits.idle_timeout;
    let mut closing = false;
    loop {
        let idle_deadline = activity.last() + idle;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut stopped, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_deadline), if !closing => {
                if activity.last() + idle <= Instant::now() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Resolves once the server is shutting down.
async fn until_stopped(mut shutdown: watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once: it must not live across an await.
    let _ = shutdown.wait_for(|&s| s).await.map(|_| ());
}

/// Reads until the first request head is complete (`\r\n\r\n`; the HTTP/2 preface contains
/// one too), the buffer passes `max` bytes (hyper then answers 431), or the peer closes (None).
async fn read_first_head(io: &mut (impl AsyncRead + Unpin), max: usize) -> io::Result<Option<BytesMut>> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let searched_from = buf.len().saturating_sub(3);
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
        if buf[searched_from..].windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > max {
            return Ok(Some(buf));
        }
        buf.reserve(4096);
    }
}

/// When bytes last moved on a connection.
struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { epoch: Instant::now(), last_ms: AtomicU64::new(0) }
    }
    fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The connection's stream as hyper sees it: the bytes already read for the first head come
/// first, and every read or write that moves bytes counts as activity.
struct WatchedIo<IO> {
    head: BytesMut,
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head[..n]);
            self.head.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
