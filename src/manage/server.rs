//! The management API's listener: HTTP/1.1 and HTTP/2, in the clear or over TLS, on its own
//! address (never the media port), with the media listener's limits on request heads, bodies and time, and the same
//! graceful drain on shutdown. It does not go through the media listener's connection
//! handling (`serve::conn`), which is built around the media service, its overload answers
//! and its metrics; the API sees a handful of operators' clients.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::LimitsConfig;
use crate::manage::api::Api;

/// Open API connections at most; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;

/// Serves the API on `listener` (over TLS with `tls`) until `shutdown` resolves, then lets
/// in-flight requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    api: Arc<Api>,
    limits: &LimitsConfig,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs))
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            // The semaphore is never closed; if it were, no connection could be admitted.
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (api, https) = (api.clone(), tls.is_some());
        let service = hyper::service::service_fn(move |request| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.handle(request, https).await) }
        });
        let (builder, graceful) = (builder.clone(), graceful.watcher());
        let (tls, handshake_timeout) = (tls.clone(), Duration::from_secs(limits.header_read_timeout_secs));
        tokio::spawn(async move {
            let served = match tls {
                None => graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await
                    }
                    _ => {
                        tracing::debug!(%peer, "API TLS handshake failed or too slow");
                        Ok(())
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("API drain deadline passed with connections still open");
    }
}
