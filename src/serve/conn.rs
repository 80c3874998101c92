//! Connections: the plain and TLS listeners, the limits a public origin needs against slow or
//! abusive clients, and the graceful drain on shutdown. Requests themselves are
//! [`crate::serve::http::Service`]'s business.
//!
//! * A new connection must send its first request head within `header_read_timeout` (slowloris)
//!   or it gets `408` and is closed. Later requests on a keep-alive HTTP/1.1 connection must
//!   arrive within `idle_timeout` of the previous response (hyper's header timer, which closes
//!   silently, as for any idle persistent connection).
//! * A connection with no bytes moving for `idle_timeout` is shut down gracefully (HTTP/2
//!   GOAWAY); if it has not closed [`IDLE_CLOSE_GRACE`] later (a client that stopped reading
//!   mid-response, an HTTP/2 client that never opens its flow-control window) it is dropped
//!   with the response bodies it holds.
//! * Beyond `max_connections`, a new connection is answered `503` with `Retry-After` and closed.
//! * An optional health listener answers probes and the metrics scraper outside
//!   `max_connections`, with a small limit of its own.
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
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::LimitsConfig;
use crate::serve::http::Service;

/// A listening socket, plain or TLS.
pub struct Listener {
    pub(crate) tcp: TcpListener,
    pub(crate) tls: Option<TlsAcceptor>,
    /// Serves `/healthz`, `/readyz` and `/metrics` only, under [`HEALTH_MAX_CONNECTIONS`]
    /// instead of `max_connections`.
    pub(crate) health_only: bool,
}

impl Listener {
    pub fn plain(tcp: TcpListener) -> Self {
        Listener { tcp, tls: None, health_only: false }
    }
    pub fn tls(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        Listener { tcp, tls: Some(acceptor), health_only: false }
    }
    pub fn health(tcp: TcpListener) -> Self {
        Listener { tcp, tls: None, health_only: true }
    }
}

/// Binds a listening socket with the kernel's accept queue sized to `backlog` (capped by the
/// kernel at `net.core.somaxconn`); tokio's `TcpListener::bind` fixes it at 1024, which a
/// burst of new connections overflows.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Connection limits (from `[limits]`).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_streams_per_connection: u32,
}

impl From<&LimitsConfig> for ConnLimits {
    fn from(l: &LimitsConfig) -> Self {
        ConnLimits {
            header_read_timeout: Duration::from_secs(l.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(l.idle_timeout_secs),
            max_connections: l.max_connections,
            max_header_bytes: l.max_header_bytes,
            max_streams_per_connection: l.max_streams_per_connection,
        }
    }
}

/// Connections over the limit that are still answered with a 503 (beyond, they are closed at
/// once): enough to tell a burst of clients to come back, bounded so a flood costs nothing.
const OVERLOAD_ANSWERS: usize = 64;

/// Open connections on the health listener at most: probes and a scraper need a handful.
pub(crate) const HEALTH_MAX_CONNECTIONS: usize = 32;

/// How long a connection shut down for idleness has to close cleanly (HTTP/2: GOAWAY and a
/// PING round trip) before it is dropped with whatever it still buffers. A fixed short time,
/// not a further idle period: a client that moved no byte for `idle_timeout` while a response
/// was pending will not finish it, and every second it is kept holds that response's memory.
pub(crate) const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);

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
pub async fn serve_connections(
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
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        .max_concurrent_streams(limits.max_streams_per_connection);
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
    // Each listener counts its own connections against its own limit; `shared.open` counts
    // them all for the drain.
    let max_here = if listener.health_only { HEALTH_MAX_CONNECTIONS } else { shared.limits.max_connections };
    let open_here = Arc::new(AtomicUsize::new(0));
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
        if open_here.load(Ordering::Acquire) >= max_here {
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
        open_here.fetch_add(1, Ordering::AcqRel);
        shared.open.fetch_add(1, Ordering::AcqRel);
        metrics.connections_open.inc();
        let shared = shared.clone();
        let open_here = open_here.clone();
        let tls = listener.tls.clone();
        let health_only = listener.health_only;
        let socket = SocketFd::of(&stream);
        tokio::spawn(async move {
            match tls {
                None => connection(stream, socket, peer, &shared, health_only).await,
                Some(acceptor) => {
                    match tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => connection(tls_stream, socket, peer, &shared, health_only).await,
                        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake too slow"),
                    }
                }
            }
            shared.service.origin().metrics.connections_open.dec();
            open_here.fetch_sub(1, Ordering::AcqRel);
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
async fn connection<IO>(mut io: IO, socket: SocketFd, peer: SocketAddr, shared: &Arc<Shared>, health_only: bool)
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
    let svc = hyper::service::service_fn(move |req| {
        let service = service.clone();
        async move {
            if health_only {
                service.call_health(req, peer).await
            } else {
                service.call(req, peer).await
            }
        }
    });
    let conn = shared.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let stopped = until_stopped(shared.shutdown.clone());
    tokio::pin!(stopped);
    let idle = shared.limits.idle_timeout;
    let mut closing = false;
    // Set once the connection idled out: past it, the connection is dropped.
    let mut drop_at: Option<Instant> = None;
    loop {
        let idle_deadline = activity.last() + idle;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                // hyper closes a kept-alive HTTP/1.1 connection itself when no request came for
                // the idle timeout; its responses may still sit unread in the send queue. A
                // connection that just finished normally moved bytes moments ago.
                if activity.last() + idle / 2 <= Instant::now() {
                    socket.reset_on_close_if_stalled();
                }
                return;
            }
            _ = &mut stopped, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            // Also while draining for shutdown: a stalled client must not hold the drain.
            _ = tokio::time::sleep_until(idle_deadline), if drop_at.is_none() => {
                if activity.last() + idle <= Instant::now() {
                    socket.reset_on_close_if_stalled();
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    drop_at = Some(Instant::now() + IDLE_CLOSE_GRACE);
                }
            }
            _ = tokio::time::sleep_until(drop_at.unwrap_or_else(Instant::now)), if drop_at.is_some() => {
                shared.service.origin().metrics.connections_idle_dropped.inc();
                tracing::debug!(peer = %peer, "idle connection did not close after its shutdown: dropped");
                return;
            }
        }
    }
}

/// Resolves once the server is shutting down.
pub(crate) async fn until_stopped(mut shutdown: watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once: it must not live across an await.
    let _ = shutdown.wait_for(|&s| s).await.map(|_| ());
}

/// Reads until the first request head is complete (an empty line: `\r\n\r\n`, or with the
/// bare `\n` line ends hyper accepts too; the HTTP/2 preface has one), the buffer passes `max`
/// bytes (hyper then answers 431), or the peer closes (None).
async fn read_first_head(io: &mut (impl AsyncRead + Unpin), max: usize) -> io::Result<Option<BytesMut>> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let searched_from = buf.len().saturating_sub(2);
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
        if ends_head(&buf[searched_from..]) || buf.len() > max {
            return Ok(Some(buf));
        }
        buf.reserve(4096);
    }
}

/// Whether `bytes` hold a line end followed by an empty line (`\n\n` or `\n\r\n`, which
/// covers `\r\n\r\n`).
fn ends_head(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// The connection's TCP socket, below any TLS layer, for what tokio does not reach through
/// the stream types. Valid while the connection's stream is alive.
#[derive(Clone, Copy)]
struct SocketFd(std::os::fd::RawFd);

impl SocketFd {
    fn of(stream: &tokio::net::TcpStream) -> Self {
        use std::os::fd::AsRawFd;
        SocketFd(stream.as_raw_fd())
    }

    /// Called when no byte moved for the idle timeout. If written bytes still wait in the
    /// kernel's send queue, the peer has stopped reading: a normal close would leave the
    /// socket (and those bytes) to the kernel, retrying into a window that never opens, with
    /// the peer's side open for as long. `SO_LINGER` 0 makes the close a reset instead, freeing
    /// both sides at once. An idle connection with nothing unsent still closes normally (FIN).
    #[cfg(target_os = "linux")]
    fn reset_on_close_if_stalled(self) {
        let mut unsent: libc::c_int = 0;
        // SAFETY: the descriptor is open for the connection's lifetime, which spans this call;
        // TIOCOUTQ writes one int.
        if unsafe { libc::ioctl(self.0, libc::TIOCOUTQ, &mut unsent) } != 0 || unsent <= 0 {
            return;
        }
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: as above; SO_LINGER reads one `linger` of the size passed.
        unsafe {
            libc::setsockopt(
                self.0,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }

    /// Elsewhere (macOS, for development) the send queue is not asked: closes stay normal.
    #[cfg(not(target_os = "linux"))]
    fn reset_on_close_if_stalled(self) {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_heads_end_at_an_empty_line_with_either_line_end() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\n\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            // Whole, and with the last empty line split across two reads (the preface has an
            // empty line before it, so the first read already ends its head).
            for split in [head.len(), head.len() - 1, head.len() - 2] {
                let (first, rest) = head.split_at(split);
                let expected = if split < head.len() && ends_head(first) { first } else { head };
                let read = read_first_head(&mut AsyncReadExt::chain(first, rest), 16384).await.unwrap();
                assert_eq!(read.as_deref(), Some(expected), "{}", String::from_utf8_lossy(head));
            }
        }
        // No empty line: the peer closing gives None, not a head.
        let unfinished = &b"GET / HTTP/1.1\r\nHost: a\r\n"[..];
        assert_eq!(read_first_head(&mut &unfinished[..], 16384).await.unwrap(), None);
    }
}
