//! HTTP in front of the origin: routing, conditional requests, ranges, CORS, caching
//! headers, metrics and health endpoints, access logs. hyper 1 serves HTTP/1.1 and h2c on
//! one port; every response carries a Content-Length (bodies are never chunked).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};

use crate::config::{HttpConfig, PlayerConfig};
use crate::error::Error;
use crate::output::HLS_CONTENT_TYPE;
use crate::plan::links::{CarriedQuery, Links};
use crate::plan::url;
use crate::protect::token::{KeyGrant, TokenError};
use crate::protect::url_signing;
use crate::serve::origin::{Built, Origin};
use crate::serve::player::PlayerPage;

/// A response body made of byte chunks sent in order without copying.
///
/// It hands all its parts to hyper as one data frame ([`Parts`]) rather than a frame per part.
/// hyper flushes its write queue whenever it holds more than its buffer limit, which is also
/// its request-head limit (`max_header_bytes`, 16 KiB): a segment cut from a source that
/// interleaves audio and video sample by sample is ~100 parts of ~15 KB, which went out as
/// ~50 writes of one or two parts. As one frame, a 1.5 MB segment goes out in a few `writev`
/// calls of up to 64 parts each: ~13 % less server CPU per uncached segment (569 → 492 µs,
/// median of 9 alternating load-benchmark runs).
#[derive(Debug, Default)]
pub struct PartsBody {
    parts: Option<Parts>,
}

impl PartsBody {
    pub fn new(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let parts = Parts::new(parts);
        PartsBody { parts: (parts.remaining() > 0).then_some(parts) }
    }
    fn empty() -> Self {
        PartsBody::default()
    }
    fn text(s: impl Into<String>) -> Self {
        PartsBody::new([Bytes::from(s.into())])
    }
}

impl hyper::body::Body for PartsBody {
    type Data = Parts;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Parts>, Infallible>>> {
        Poll::Ready(self.parts.take().map(|parts| Ok(Frame::data(parts))))
    }
    fn is_end_stream(&self) -> bool {
        self.parts.is_none()
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.parts.as_ref().map_or(0, |p| p.remaining() as u64))
    }
}

/// Byte chunks read in order as one [`Buf`], each chunk its own `writev` entry.
#[derive(Debug, Default)]
pub struct Parts {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl Parts {
    fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(Bytes::len).sum();
        Parts { chunks, remaining }
    }
}

impl Buf for Parts {
    fn remaining(&self) -> usize {
        self.remaining
    }
    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c.as_ref())
    }
    fn chunks_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(&self.chunks) {
            *slot = std::io::IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }
    fn advance(&mut self, cnt: usize) {
        // Advancing past the end empties the body rather than panicking on a request path.
        let mut cnt = cnt.min(self.remaining);
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else { break };
            if cnt < front.len() {
                front.advance(cnt);
                break;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        // A request within the first chunk shares it; only one across chunks copies.
        match self.chunks.front() {
            Some(front) if front.len() >= len => {
                let bytes = front.slice(..len);
                self.advance(len);
                bytes
            }
            _ => {
                let mut out = bytes::BytesMut::with_capacity(len);
                out.put((&mut *self).take(len));
                out.freeze()
            }
        }
    }
}

/// The slice `range` of a body made of `parts`, zero-copy.
fn slice_parts(parts: &[Bytes], range: std::ops::Range<u64>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for part in parts {
        let (start, end) = (offset, offset + part.len() as u64);
        offset = end;
        if end <= range.start || start >= range.end {
            continue;
        }
        let from = range.start.saturating_sub(start) as usize;
        let to = (range.end.min(end) - start) as usize;
        out.push(part.slice(from..to));
    }
    out
}

/// Parses a single `bytes=` range against a body of `len` bytes: `Ok(None)` when the header
/// should be ignored (malformed or several ranges: serve the whole body), `Err(())` when it
/// cannot be satisfied. A last-byte-pos or suffix beyond the body is clamped to it (RFC 9110
/// §14.1.2), whatever its size.
#[allow(clippy::result_unit_err)]
pub fn parse_range(value: &str, len: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else { return Ok(None) };
        if suffix == 0 {
            return Err(());
        }
        len.saturating_sub(suffix)..len
    } else {
        let Ok(start) = first.parse::<u64>() else { return Ok(None) };
        let end = if last.is_empty() {
            len
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= start => l.min(len.saturating_sub(1)) + 1,
                _ => return Ok(None),
            }
        };
        start..end
    };
    if range.start >= len {
        return Err(());
    }
    Ok(Some(range))
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 prescribes for it).
fn etag_matches(header_value: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header_value.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
}

/// Shared state of the HTTP service.
pub struct Service {
    pub origin: Arc<Origin>,
    pub http: HttpConfig,
    /// False while draining: /readyz then fails so load balancers stop sending traffic.
    pub ready: AtomicBool,
    cors_origin: HeaderValue,
    /// Longest request target accepted (`[limits] max_url_bytes`).
    max_url_bytes: usize,
    /// Largest request body accepted (`[limits] max_body_bytes`).
    max_body_bytes: usize,
    /// Time a request body has to arrive (`[limits] body_read_timeout_secs`).
    body_read_timeout: Duration,
    /// Header and secret every media request must carry (`[origin_protection]`).
    origin_protection: Option<(http::HeaderName, Vec<u8>)>,
    /// The operators' test page at `/player`, when enabled.
    player: Option<PlayerPage>,
}

type Resp = Response<PartsBody>;

impl Service {
    pub fn new(origin: Arc<Origin>, http: HttpConfig) -> Self {
        let cors_origin = HeaderValue::from_str(&http.cors_allow_origin).unwrap_or(HeaderValue::from_static("*"));
        Service {
            origin,
            http,
            ready: AtomicBool::new(true),
            cors_origin,
            max_url_bytes: 0,
            max_body_bytes: 0,
            body_read_timeout: Duration::ZERO,
            origin_protection: None,
            player: None,
        }
        .with_limits(&crate::config::LimitsConfig::default())
    }

    /// Request limits: targets longer than `max_url_bytes` → 414, bodies larger than
    /// `max_body_bytes` → 413, bodies slower than `body_read_timeout_secs` → 408.
    pub fn with_limits(mut self, limits: &crate::config::LimitsConfig) -> Self {
        self.max_url_bytes = limits.max_url_bytes;
        self.max_body_bytes = limits.max_body_bytes;
        self.body_read_timeout = Duration::from_secs(limits.body_read_timeout_secs);
        self
    }

    /// Requires `header: secret` on every route but health and metrics (403 otherwise).
    pub fn with_origin_protection(mut self, header: http::HeaderName, secret: Vec<u8>) -> Self {
        self.origin_protection = Some((header, secret));
        self
    }

    pub fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    /// Whether the request carries the CDN's shared secret (when one is configured). The
    /// comparison takes the same time whatever the bytes, so the secret cannot be guessed
    /// byte by byte from response times.
    fn is_from_our_cdn(&self, headers: &HeaderMap) -> bool {
        use subtle::ConstantTimeEq;
        let Some((name, secret)) = &self.origin_protection else {
            return true;
        };
        headers.get(name).is_some_and(|v| bool::from(v.as_bytes().ct_eq(secret)))
    }

    /// Serves the test page at `/player` when `config` enables it.
    pub fn with_player(mut self, config: &PlayerConfig) -> Self {
        self.player = PlayerPage::new(config);
        self
    }

    fn base(&self, status: StatusCode) -> http::response::Builder {
        Response::builder()
            .status(status)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.cors_origin.clone())
            .header(header::ACCESS_CONTROL_EXPOSE_HEADERS, "Content-Length, Content-Range, ETag, Last-Modified")
    }

    fn finish(builder: http::response::Builder, body: PartsBody) -> Resp {
        builder.body(body).unwrap_or_else(|_| Response::new(PartsBody::empty()))
    }

    /// An error with a one-line reason. Refusals (401, 403) depend on the request's own
    /// credentials, so no cache may keep them for other viewers.
    fn error(&self, status: StatusCode, message: &str) -> Resp {
        let cache_control = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            "no-store".to_string()
        } else {
            format!("public, max-age={}", self.http.error_max_age)
        };
        let b = self
            .base(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, cache_control);
        // One line whatever a message quotes (a track name from a URL may hold a line break).
        let line = message.replace(char::is_control, "?");
        Self::finish(b, PartsBody::text(format!("{line}\n")))
    }

    fn error_response(&self, e: &Error) -> Resp {
        let status = match e {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Storage { .. } | Error::SourceChanged { .. } => StatusCode::BAD_GATEWAY,
            Error::StorageTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::Media { .. } | Error::Asset { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, "request failed");
        }
        self.error(status, &e.to_string())
    }

    fn plain(&self, content_type: &'static str, body: Vec<u8>) -> Resp {
        let b = self
            .base(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "no-store");
        Self::finish(b, PartsBody::new([Bytes::from(body)]))
    }

    /// Answers one request; `kind` is set for metrics and logs.
    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        kind: &mut &'static str,
    ) -> Resp {
        if method == Method::OPTIONS {
            return self.preflight(headers);
        }
        if method != Method::GET && method != Method::HEAD {
            let mut response = self.error(StatusCode::METHOD_NOT_ALLOWED, &format!("method {method} not allowed"));
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
            return response;
        }
        match path {
            "/healthz" => {
                *kind = "health";
                return self.plain("text/plain; charset=utf-8", b"ok\n".to_vec());
            }
            "/readyz" => {
                *kind = "health";
                return if self.ready.load(Ordering::Relaxed) {
                    self.plain("text/plain; charset=utf-8", b"ready\n".to_vec())
                } else {
                    self.error(StatusCode::SERVICE_UNAVAILABLE, "draining")
                };
            }
            "/metrics" => {
                *kind = "metrics";
                self.origin.sync_metrics().await;
                return self.plain("text/plain; version=0.0.4", self.origin.metrics.render());
            }
            "/player" => {
                if let Some(page) = &self.player {
                    *kind = "player";
                    return self.player_page(page, method, query);
                }
            }
            _ => {}
        }
        if let Some((locator_id, kid)) = split_key_path(path) {
            *kind = "key";
            return self.key(locator_id, kid, query, headers);
        }
        let (locator_id, asset_name, rest) = match split_media_path(path) {
            Ok(parts) => parts,
            Err(e) => return self.error_response(&e),
        };
        let parsed = match url::parse(rest) {
            Ok(p) => p,
            Err(e) => return self.error_response(&e),
        };
        *kind = match parsed.resource {
            url::Resource::Manifest(_) => "manifest",
            url::Resource::MediaPlaylist { .. } => "playlist",
            url::Resource::Init { .. } => "init",
            url::Resource::Segment { .. } => "segment",
        };
        let Some(locator) = self.origin.locator(locator_id) else {
            return self.error(StatusCode::NOT_FOUND, &format!("not found: locator '{locator_id}'"));
        };
        if let Some(refusal) = self.url_signature_refusal(locator, query) {
            return refusal;
        }
        match self.origin.serve(locator, asset_name, &parsed).await {
            Ok(built) => {
                // Players that cannot add headers (Safari) pass the key token on the manifest
                // URL; HLS playlists carry it on to the key URI. Segments never get it, so CDN
                // caches of segments stay shared by all viewers. A URL signature goes on every
                // URL a manifest lists, since the locator refuses unsigned ones.
                let token = query
                    .and_then(|q| crate::protect::token::token_from_request(None, Some(q)))
                    .filter(|_| parsed.resource.encryption().is_some() && built.content_type == HLS_CONTENT_TYPE);
                let carried = CarriedQuery {
                    token: token.as_deref(),
                    signature: locator.url_signing_key.as_ref().and(url::query_param(query, url_signing::PARAM)),
                };
                match &built.links {
                    Some(links) if !carried.is_empty() => {
                        self.respond(method, headers, &with_carried_query(&built, links, &carried))
                    }
                    _ => self.respond(method, headers, &built),
                }
            }
            Err(e) => self.error_response(&e),
        }
    }

    /// 403 when `locator` needs a signed URL and `query` has no valid one. Manifests and
    /// segments are checked; key delivery is governed by the locator's `key_access`, as DRM
    /// licence URLs are configured absolute and never carry a streaming URL's signature.
    fn url_signature_refusal(&self, locator: &crate::plan::locator::Locator, query: Option<&str>) -> Option<Resp> {
        let key = locator.url_signing_key.as_ref()?;
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let sig = url::query_param(query, url_signing::PARAM);
        let refusal = url_signing::verify(&key.0, &locator.id, sig, now).err()?;
        Some(self.error(StatusCode::FORBIDDEN, &format!("forbidden: {}", refusal.reason())))
    }

    /// `GET /player?url=…`: the test page, or a 400 naming what is wrong with `url`. The page
    /// URL may carry a token in its `url`: it is never cached, and never sent as a referrer.
    fn player_page(&self, page: &PlayerPage, method: &Method, query: Option<&str>) -> Resp {
        let url = match crate::serve::player::manifest_url(query) {
            Ok(url) => url,
            Err(reason) => return self.error(StatusCode::BAD_REQUEST, &format!("bad request: {reason}")),
        };
        let html = page.render(&url);
        let b = self
            .base(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::CONTENT_SECURITY_POLICY, page.content_security_policy())
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "no-referrer")
            .header(header::CONTENT_LENGTH, html.len());
        let body = if method == Method::HEAD { PartsBody::empty() } else { PartsBody::text(html) };
        Self::finish(b, body)
    }

    /// `GET /{locator}/key/{kid}`: the 16-byte AES-128 key, if the locator's key access
    /// allows. Never cached by CDNs or browsers; the key never appears in logs.
    fn key(&self, locator_id: &str, kid: &str, query: Option<&str>, headers: &HeaderMap) -> Resp {
        let Some(locator) = self.origin.locator(locator_id) else {
            return self.error(StatusCode::NOT_FOUND, &format!("not found: locator '{locator_id}'"));
        };
        // The token is checked first, so callers without one learn nothing about which key
        // ids exist.
        let grant = match self.key_access(locator, query, headers) {
            Ok(grant) => grant,
            Err(e) => return self.token_refusal(&e),
        };
        let Ok(kid_bytes) = crate::protect::parse_hex16(kid) else {
            return self.error(StatusCode::BAD_REQUEST, "bad request: key id must be 32 hex digits");
        };
        if let Err(e) = grant.check(&kid_bytes) {
            return self.token_refusal(&e);
        }
        let Some(key) = locator.key(&kid_bytes) else {
            return self.error(StatusCode::NOT_FOUND, &format!("not found: key '{kid}' of locator '{locator_id}'"));
        };
        let b = self
            .base(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CACHE_CONTROL, "private, no-store")
            .header(header::CONTENT_LENGTH, 16);
        Self::finish(b, PartsBody::new([Bytes::copy_from_slice(&key.key)]))
    }

    /// Applies the locator's key access (open, or a valid JWT) to a key or licence request:
    /// which keys it may have, or why it may have none.
    fn key_access(
        &self,
        locator: &crate::plan::locator::Locator,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<KeyGrant, TokenError> {
        let Some(verifier) = locator.key_access.as_ref() else {
            return Ok(KeyGrant::AnyKey);
        };
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match crate::protect::token::token_from_request(authorization, query) {
            Some(token) => verifier.verify(&token),
            None => Err(TokenError::Missing),
        }
    }

    /// 401 (no or invalid token) or 403 (a token for another key), with `WWW-Authenticate`.
    fn token_refusal(&self, e: &TokenError) -> Resp {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let prefix = if status == StatusCode::FORBIDDEN { "forbidden" } else { "unauthorized" };
        let mut response = self.error(status, &format!("{prefix}: {}", e.reason()));
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(e.www_authenticate()));
        response
    }

    /// `POST /{locator}/clearkey`: a W3C Clear Key licence (JSON request with base64url KIDs →
    /// JSON web key set) for the locator's keys, under the same access rule as the key endpoint.
    async fn clearkey(&self, locator_id: &str, query: Option<&str>, headers: &HeaderMap, body: Incoming) -> Resp {
        let Some(locator) = self.origin.locator(locator_id) else {
            return self.error(StatusCode::NOT_FOUND, &format!("not found: locator '{locator_id}'"));
        };
        let grant = match self.key_access(locator, query, headers) {
            Ok(grant) => grant,
            Err(e) => return self.token_refusal(&e),
        };
        let request = match self.read_body(body).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        // A token bound to one key must not license any other requested KID.
        let refused = std::cell::Cell::new(None);
        let lookup = |kid: &[u8; 16]| match grant.check(kid) {
            Ok(()) => locator.key(kid).map(|k| k.key),
            Err(e) => {
                refused.set(Some(e));
                None
            }
        };
        let response = crate::protect::drm::clearkey_license_response(&request, lookup);
        if let Some(e) = refused.take() {
            return self.token_refusal(&e);
        }
        match response {
            Ok(json) => {
                let b = self
                    .base(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "private, no-store")
                    .header(header::CONTENT_LENGTH, json.len());
                Self::finish(b, PartsBody::text(json))
            }
            Err(reason) => self.error(StatusCode::BAD_REQUEST, &format!("bad request: {reason}")),
        }
    }

    /// Reads a request body within `max_body_bytes` (413 beyond, at once when the declared
    /// length says so) and `body_read_timeout` (408; hyper then closes an HTTP/1.1 connection,
    /// whose unread body cannot be skipped), so a client trickling a body holds a connection
    /// for a bounded time.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, Resp> {
        use http_body_util::BodyExt;
        let too_large = || {
            self.error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {} bytes", self.max_body_bytes),
            )
        };
        if hyper::body::Body::size_hint(&body).lower() > self.max_body_bytes as u64 {
            return Err(too_large());
        }
        let limited = http_body_util::Limited::new(body, self.max_body_bytes);
        match tokio::time::timeout(self.body_read_timeout, limited.collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Ok(Err(_)) => Err(self.error(StatusCode::BAD_REQUEST, "request body unreadable")),
            Err(_) => Err(self.error(
                StatusCode::REQUEST_TIMEOUT,
                &format!("request body not received within {} s", self.body_read_timeout.as_secs()),
            )),
        }
    }

    fn preflight(&self, headers: &HeaderMap) -> Resp {
        let allow_headers = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("Range, If-None-Match, If-Modified-Since"));
        let b = self
            .base(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, POST, OPTIONS")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers)
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .header(header::ALLOW, "GET, HEAD, POST, OPTIONS");
        Self::finish(b, PartsBody::empty())
    }

    /// A built resource as a 200, 206, 304 or 416 response.
    fn respond(&self, method: &Method, headers: &HeaderMap, built: &Built) -> Resp {
        let max_age = if built.immutable { self.http.segment_max_age } else { self.http.manifest_max_age };
        let mut cache_control = if built.immutable {
            format!("public, max-age={max_age}, immutable")
        } else {
            format!("public, max-age={max_age}")
        };
        // RFC 5861: a CDN may keep serving its copy while we fail, as long as we would.
        let stale_if_error = self.origin.stale_if_error_secs();
        if stale_if_error > 0 {
            cache_control.push_str(&format!(", stale-if-error={stale_if_error}"));
        }
        let last_modified = http_date(built.last_modified);
        let b = self
            .base(StatusCode::OK)
            .header(header::CACHE_CONTROL, cache_control)
            .header(header::ETAG, built.etag.as_str())
            .header(header::LAST_MODIFIED, last_modified.as_str())
            .header(header::ACCEPT_RANGES, "bytes");

        let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let not_modified = match header_str(header::IF_NONE_MATCH) {
            Some(tags) => etag_matches(tags, &built.etag),
            None => header_str(header::IF_MODIFIED_SINCE)
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
                .is_some_and(|since| built.last_modified <= since.as_secs() as i64),
        };
        if not_modified {
            return Self::finish(b.status(StatusCode::NOT_MODIFIED), PartsBody::empty());
        }
        let b = b.header(header::CONTENT_TYPE, built.content_type);

        // If-Range with a different validator means "send it all".
        let range_applies = header_str(header::IF_RANGE).is_none_or(|v| v == built.etag || v == last_modified);
        let range = match header_str(header::RANGE).filter(|_| range_applies) {
            Some(value) => parse_range(value, built.len),
            None => Ok(None),
        };
        let (b, parts, len) = match range {
            Ok(None) => (b, built.parts.clone(), built.len),
            Ok(Some(r)) => {
                let b = b
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start, r.end - 1, built.len));
                (b, slice_parts(&built.parts, r.clone()), r.end - r.start)
            }
            Err(()) => {
                let b = b
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", built.len));
                return Self::finish(b.header(header::CONTENT_LENGTH, 0), PartsBody::empty());
            }
        };
        let b = b.header(header::CONTENT_LENGTH, len);
        if method == Method::HEAD {
            return Self::finish(b, PartsBody::empty());
        }
        Self::finish(b, PartsBody::new(parts))
    }

    /// What every request must pass before routing: the URL and body limits, and the CDN's
    /// shared secret on every route but health and metrics.
    fn request_refusal(&self, req: &Request<Incoming>) -> Option<Resp> {
        let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > self.max_url_bytes {
            return Some(
                self.error(StatusCode::URI_TOO_LONG, &format!("URL longer than {} bytes", self.max_url_bytes)),
            );
        }
        if matches!(*req.method(), Method::GET | Method::HEAD) && !hyper::body::Body::is_end_stream(req.body()) {
            return Some(self.error(StatusCode::BAD_REQUEST, "GET and HEAD requests carry no body"));
        }
        if !is_health_route(req.uri().path()) && !self.is_from_our_cdn(req.headers()) {
            return Some(self.error(StatusCode::FORBIDDEN, "forbidden: this origin answers its CDN only"));
        }
        None
    }

    /// The health listener's entry point (`[limits] health_listen`): its routes only.
    pub async fn call_health(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Infallible> {
        if is_health_route(req.uri().path()) {
            return self.call(req, peer).await;
        }
        Ok(self.error(StatusCode::NOT_FOUND, "not found: this listener serves /healthz, /readyz and /metrics only"))
    }

    /// The hyper entry point: metrics, access log, then [`Service::handle`].
    pub async fn call(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Infallible> {
        let started = Instant::now();
        self.origin.metrics.in_flight.inc();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut kind = "other";
        let query = req.uri().query().map(str::to_string);
        let response = if let Some(refusal) = self.request_refusal(&req) {
            refusal
        } else {
            match clearkey_locator(&path).filter(|_| method == Method::POST) {
                Some(locator) => {
                    kind = "key";
                    let locator = locator.to_string();
                    let (parts, body) = req.into_parts();
                    self.clearkey(&locator, query.as_deref(), &parts.headers, body).await
                }
                None => self.handle(&method, &path, query.as_deref(), req.headers(), &mut kind).await,
            }
        };
        let status = response.status();
        let elapsed = started.elapsed();
        let m = &self.origin.metrics;
        m.in_flight.dec();
        m.requests.with_label_values(&[kind, status.as_str()]).inc();
        m.request_seconds.with_label_values(&[kind]).observe(elapsed.as_secs_f64());
        let bytes = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0);
        // The query string is never logged: it may carry tokens.
        tracing::info!(
            target: "access",
            peer = %peer,
            method = %method,
            path = %path,
            status = status.as_u16(),
            bytes = bytes,
            kind = kind,
            micros = elapsed.as_micros() as u64,

        );
        Ok(response)
    }
}

/// Health, readiness and metrics: open to the orchestrator and the scraper without the CDN's
/// secret, and the only routes of the health listener.
fn is_health_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// `/{locator}/clearkey` → locator.
fn clearkey_locator(path: &str) -> Option<&str> {
    let (locator, rest) = path.strip_prefix('/')?.split_once('/')?;
    (rest == "clearkey" && !locator.is_empty()).then_some(locator)
}

/// `/{locator}/key/{kid}` → (locator, kid).
fn split_key_path(path: &str) -> Option<(&str, &str)> {
    let (locator, rest) = path.strip_prefix('/')?.split_once('/')?;
    let kid = rest.strip_prefix("key/")?;
    (!locator.is_empty() && !kid.is_empty() && !kid.contains('/')).then_some((locator, kid))
}

/// `built` (a manifest) with `carried` added to the URLs it lists. Its ETag says which query
/// it carries, so caches never mix them.
fn with_carried_query(built: &Built, links: &Links, carried: &CarriedQuery<'_>) -> Built {
    let text = match built.parts.as_slice() {
        [one] => one.clone(),
        parts => Bytes::from(parts.concat()),
    };
    let out = links.carry(&text, carried);
    let tag = xxhash_rust::xxh3::xxh3_64(format!("{:?}|{:?}", carried.token, carried.signature).as_bytes());
    Built {
        content_type: built.content_type,
        len: out.len() as u64,
        weight: out.len() as u64,
        parts: vec![Bytes::from(out)],
        etag: format!("{}-{tag:016x}\"", built.etag.trim_end_matches('"')),
        last_modified: built.last_modified,
        immutable: built.immutable,
        links: None,
    }
}

/// Splits `/{locator}/{asset}.ism/{rest}`.
fn split_media_path(path: &str) -> Result<(&str, &str, &str), Error> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let (locator, rest) = trimmed.split_once('/').ok_or_else(|| Error::NotFound(format!("path '{path}'")))?;
    let (asset, resource) = rest
        .split_once(".ism/")
        .ok_or_else(|| Error::BadRequest("expected /{locator}/{asset}.ism/{resource}".into()))?;
    if locator.is_empty() || asset.is_empty() || asset.contains('/') {
        return Err(Error::BadRequest("expected /{locator}/{asset}.ism/{resource}".into()));
    }
    Ok((locator, asset, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=50-1000", 100), Ok(Some(50..100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=5-1", 100), Ok(None));
        // Positions up to u64::MAX are clamped to the body, never wrapped (RFC 9110 §14.1.2).
        for (spec, len, expected) in [
            ("bytes=0-18446744073709551615", 100, Ok(Some(0..100))),
            ("bytes=99-18446744073709551615", 100, Ok(Some(99..100))),
            ("bytes=18446744073709551615-", 100, Err(())),
            ("bytes=-18446744073709551615", 100, Ok(Some(0..100))),
            ("bytes=-1000", 100, Ok(Some(0..100))),
            ("bytes=-1", 100, Ok(Some(99..100))),
            ("bytes=0-0", 100, Ok(Some(0..1))),
            ("bytes=0-", 0, Err(())),
            ("bytes=-5", 0, Err(())),
            ("bytes=0-18446744073709551616", 100, Ok(None)),
        ] {
            assert_eq!(parse_range(spec, len), expected, "{spec} of {len}");
        }
    }

    #[test]
    fn slices_across_parts() {
        let parts = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg"), Bytes::from_static(b"h")];
        let got: Vec<u8> = slice_parts(&parts, 2..6).concat();
        assert_eq!(got, b"cdef");
    }

    #[test]
    fn parts_read_as_one_buffer() {
        let chunks = [&b"abc"[..], b"", b"defg", b"h"].map(Bytes::from_static);
        let mut parts = Parts::new(chunks.clone());
        assert_eq!(parts.remaining(), 8);
        let mut slots = [std::io::IoSlice::new(&[]); 8];
        assert_eq!(parts.chunks_vectored(&mut slots), 3, "empty chunks are dropped");
        assert_eq!(&*slots[1], b"defg");
        assert_eq!(parts.chunks_vectored(&mut slots[..2]), 2, "no more entries than slots");

        parts.advance(4); // "abc" and the "d" of "defg"
        assert_eq!((parts.remaining(), parts.chunk()), (4, &b"efg"[..]));
        let within = parts.copy_to_bytes(2);
        assert_eq!(&within[..], b"ef");
        assert_eq!(within.as_ptr(), chunks[2][1..].as_ptr(), "a request inside one chunk shares it");
        assert_eq!(&parts.copy_to_bytes(2)[..], b"gh", "a request across chunks is joined");
        assert_eq!((parts.remaining(), parts.chunk()), (0, &b""[..]));
    }

    /// The body is one data frame holding every part, then the end.
    #[tokio::test]
    async fn parts_body_is_one_frame() {
        use http_body_util::BodyExt;
        use hyper::body::Body;
        let mut body = PartsBody::new([&b"abc"[..], b"defg"].map(Bytes::from_static));
        assert_eq!(body.size_hint().exact(), Some(7));
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame.chunks.len(), 2);
        assert!(body.is_end_stream() && body.frame().await.is_none());
        assert!(PartsBody::new([Bytes::new()]).is_end_stream());
    }

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }

    #[test]
    fn media_paths_split() {
        assert_eq!(
            split_media_path("/loc/ladder.ism/manifest(format=m3u8-cmaf)").unwrap(),
            ("loc", "ladder", "manifest(format=m3u8-cmaf)")
        );
        assert!(matches!(split_media_path("/loc/ladder/manifest"), Err(Error::BadRequest(_))));
        assert!(matches!(split_media_path("/nothing"), Err(Error::NotFound(_))));
    }
}
