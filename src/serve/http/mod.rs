//! HTTP in front of the origin: routing, CORS, the CDN's secret, signed URLs, metrics and
//! health endpoints, access logs. hyper 1 serves HTTP/1.1 and h2c on one port; every response
//! carries a Content-Length (bodies are never chunked).
//!
//! [`body`] is the response body, [`respond`] turns a built resource into a 200, 206, 304 or
//! 416 response, [`keys`] delivers keys and Clear Key licences, and every error response is
//! made in [`failure`].

pub mod access_log;
mod body;
mod download;
mod failure;
mod keys;
mod respond;
mod window;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use body::{Parts, PartsBody};
use failure::Failure;

use crate::config::{HttpConfig, PlayerConfig};
use crate::error::Error;
use crate::output::HLS_CONTENT_TYPE;
use crate::plan::catalog::Catalog;
use crate::plan::links::{CarriedQuery, Links};
use crate::plan::locator::Locator;
use crate::plan::url;
use crate::protect::url_signing;
use crate::serve::origin::{Built, HeaderValues, Origin};
use crate::serve::player::PlayerPage;

/// Shared state of the HTTP service.
pub struct Service {
    pub(crate) origin: Arc<Origin>,
    pub(crate) http: HttpConfig,
    /// False while draining: /readyz then fails so load balancers stop sending traffic.
    pub(crate) ready: AtomicBool,
    cors_origin: HeaderValue,
    /// Header values of built responses, made once.
    built_headers: respond::BuiltHeaders,
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

/// What browsers' scripts may read of a response (CORS).
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("Content-Length, Content-Range, ETag, Last-Modified");

impl Service {
    pub fn new(origin: Arc<Origin>, http: HttpConfig) -> Self {
        let cors_origin = HeaderValue::from_str(&http.cors_allow_origin).unwrap_or(HeaderValue::from_static("*"));
        let built_headers =
            respond::BuiltHeaders::new(http.manifest_max_age, http.segment_max_age, origin.stale_if_error_secs());
        Service {
            origin,
            http,
            ready: AtomicBool::new(true),
            cors_origin,
            built_headers,
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

    pub(crate) fn origin(&self) -> &Arc<Origin> {
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
            .header(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS)
    }

    /// The headers of [`Service::base`], with room for `more`.
    fn base_headers(&self, more: usize) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(2 + more);
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.cors_origin.clone());
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        headers
    }

    fn finish(builder: http::response::Builder, body: PartsBody) -> Resp {
        builder.body(body).unwrap_or_else(|_| Response::new(PartsBody::empty()))
    }

    fn plain(&self, content_type: &'static str, body: Vec<u8>) -> Resp {
        let b = self
            .base(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "no-store");
        Self::finish(b, PartsBody::new([Bytes::from(body)]))
    }

    /// Answers one GET, HEAD or OPTIONS request; `kind` is set for metrics and logs.
    async fn handle(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        kind: &mut &'static str,
        max_age_cap: &mut Option<u64>,
    ) -> Result<Resp, Failure> {
        if method == Method::OPTIONS {
            return Ok(self.preflight(headers));
        }
        if method != Method::GET && method != Method::HEAD {
            return Err(Failure::MethodNotAllowed(method.clone()));
        }
        match path {
            "/healthz" => {
                *kind = "health";
                return Ok(self.plain("text/plain; charset=utf-8", b"ok\n".to_vec()));
            }
            "/readyz" => {
                *kind = "health";
                if !self.ready.load(Ordering::Relaxed) {
                    return Err(Failure::Draining);
                }
                // A store outage leaves the replica ready (it serves the last state it read);
                // the detail line tells operators.
                let mut body = b"ready\n".to_vec();
                if let Some(store) = self.origin.store_health() {
                    body.extend_from_slice(format!("{}\n", store.describe(std::time::SystemTime::now())).as_bytes());
                }
                return Ok(self.plain("text/plain; charset=utf-8", body));
            }
            "/metrics" => {
                *kind = "metrics";
                self.origin.sync_metrics().await;
                return Ok(self.plain("text/plain; version=0.0.4", self.origin.metrics.render()));
            }
            crate::output::dash::TIME_PATH => {
                // The clock of live DASH players (the MPD's UTCTiming), never cached.
                *kind = "time";
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                return Ok(
                    self.plain("text/plain; charset=utf-8", crate::output::dash::iso_date_time(now).into_bytes())
                );
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
            return self.key(locator_id, kid, query, headers, max_age_cap);
        }
        if let Some((locator_id, file)) = split_download_path(path) {
            *kind = "download";
            let file = url::DownloadFile::parse(file)?;
            let catalog = self.origin.catalog();
            let locator = locator(&catalog, locator_id, max_age_cap)?;
            self.check_signature(locator, query)?;
            return self.download(method, headers, locator, &file).await;
        }
        let (locator_id, asset_name, rest) = split_media_path(path)?;
        let parsed = url::parse(rest)?;
        *kind = match parsed.resource {
            url::Resource::Manifest(_) => "manifest",
            url::Resource::MediaPlaylist { .. } => "playlist",
            url::Resource::Init { .. } => "init",
            url::Resource::Segment { .. } => "segment",
            url::Resource::KeyFrame { .. } => "keyframe",
            url::Resource::Thumbnail { .. } => "thumbnail",
        };
        let catalog = self.origin.catalog();
        let locator = locator(&catalog, locator_id, max_age_cap)?;
        if !locator.streaming {
            return Err(Error::Forbidden(format!(
                "locator '{}' has a download-only streaming policy: it serves download paths, not manifests or segments",
                locator.id
            ))
            .into());
        }
        self.check_signature(locator, query)?;
        let built = self.origin.resource(&catalog, locator, asset_name, &parsed).await?;
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
        Ok(match &built.links {
            Some(links) if !carried.is_empty() => {
                self.respond(method, headers, &with_carried_query(&built, links, &carried))
            }
            _ => self.respond(method, headers, &built),
        })
    }

    /// A refusal when `locator` needs a signed URL and `query` has no valid one. Manifests and
    /// segments are checked; key delivery is governed by the locator's `key_access`, as DRM
    /// licence URLs are configured absolute and never carry a streaming URL's signature.
    fn check_signature(&self, locator: &Locator, query: Option<&str>) -> Result<(), Failure> {
        let Some(key) = locator.url_signing_key.as_ref() else { return Ok(()) };
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let sig = url::query_param(query, url_signing::PARAM);
        Ok(url_signing::verify(&key.0, &locator.id, sig, now)?)
    }

    /// `GET /player?url=…`: the test page, or a 400 naming what is wrong with `url`. The page
    /// URL may carry a token in its `url`: it is never cached, and never sent as a referrer.
    fn player_page(&self, page: &PlayerPage, method: &Method, query: Option<&str>) -> Result<Resp, Failure> {
        let url = crate::serve::player::manifest_url(query).map_err(Error::BadRequest)?;
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
        Ok(Self::finish(b, body))
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

    /// What every request must pass before routing: the URL and body limits, and the CDN's
    /// shared secret on every route but health and metrics.
    fn admit(&self, req: &Request<Incoming>) -> Result<(), Failure> {
        let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > self.max_url_bytes {
            return Err(Failure::UrlTooLong(self.max_url_bytes));
        }
        if matches!(*req.method(), Method::GET | Method::HEAD) && !hyper::body::Body::is_end_stream(req.body()) {
            return Err(Failure::BodyOnGet);
        }
        if !is_health_route(req.uri().path()) && !self.is_from_our_cdn(req.headers()) {
            return Err(Failure::NotFromCdn);
        }
        Ok(())
    }

    /// The health listener's entry point (`[limits] health_listen`): its routes only.
    pub(crate) async fn call_health(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Resp, Infallible> {
        if is_health_route(req.uri().path()) {
            return self.call(req, peer).await;
        }
        Ok(self.failure_response(&Failure::NotAHealthRoute))
    }

    /// The hyper entry point: metrics, access log, then [`Service::handle`].
    pub(crate) async fn call(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Result<Resp, Infallible> {
        let started = Instant::now();
        self.origin.metrics.in_flight.inc();
        let method = req.method().clone();
        // Shares the request's bytes: no copy of the path or query.
        let uri = req.uri().clone();
        let (path, query) = (uri.path(), uri.query());
        let mut kind = "other";
        let mut max_age_cap = None;
        let answer = match self.admit(&req) {
            Err(failure) => Err(failure),
            Ok(()) => match clearkey_locator(path).filter(|_| method == Method::POST) {
                Some(locator) => {
                    kind = "key";
                    let (parts, body) = req.into_parts();
                    self.clearkey(locator, query, &parts.headers, body, &mut max_age_cap).await
                }
                None => {
                    let headers = req.headers();
                    self.handle(&method, path, query, headers, &mut kind, &mut max_age_cap).await
                }
            },
        };
        let mut response = answer.unwrap_or_else(|failure| self.failure_response(&failure));
        if let Some(cap) = max_age_cap {
            window::cap_max_age(response.headers_mut(), cap);
        }
        let status = response.status();
        let elapsed = started.elapsed();
        let m = &self.origin.metrics;
        m.in_flight.dec();
        m.count_request(kind, status, elapsed.as_secs_f64());
        let bytes = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0);
        // The query string is never logged: it may carry tokens.
        tracing::info!(
            target: access_log::TARGET,
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

/// The locator `id` of `catalog` as published now: a 404 when it is unknown or outside its
/// window. Inside a window with an end, `max_age_cap` becomes the seconds left, which the
/// response's cache lifetimes must not exceed.
fn locator<'c>(catalog: &'c Catalog, id: &str, max_age_cap: &mut Option<u64>) -> Result<&'c Locator, Failure> {
    let locator = catalog.locator(id).ok_or_else(|| Error::NotFound(format!("locator '{id}'")))?;
    *max_age_cap = window::check(locator, SystemTime::now())?;
    Ok(locator)
}

/// `/{locator}/clearkey` → locator.
fn clearkey_locator(path: &str) -> Option<&str> {
    let (locator, rest) = path.strip_prefix('/')?.split_once('/')?;
    (rest == "clearkey" && !locator.is_empty()).then_some(locator)
}

/// `/{locator}/{file}` → (locator, file), for a file name of a downloadable kind (`.mp4`, …).
fn split_download_path(path: &str) -> Option<(&str, &str)> {
    let (locator, file) = path.strip_prefix('/')?.split_once('/')?;
    let download = !locator.is_empty() && !file.contains('/') && url::DownloadFile::is_download_path(file);
    download.then_some((locator, file))
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
    let len = out.len() as u64;
    let etag = format!("{}-{tag:016x}\"", built.etag.trim_end_matches('"'));
    Built {
        content_type: built.content_type,
        len,
        weight: len,
        parts: vec![Bytes::from(out)],
        header_values: HeaderValues::new(&etag, built.last_modified, len),
        etag,
        last_modified: built.last_modified,
        immutable: built.immutable,
        max_age: built.max_age,
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
    fn media_paths_split() {
        assert_eq!(
            split_media_path("/loc/ladder.ism/manifest(format=m3u8-cmaf)").unwrap(),
            ("loc", "ladder", "manifest(format=m3u8-cmaf)")
        );
        assert!(matches!(split_media_path("/loc/ladder/manifest"), Err(Error::BadRequest(_))));
        assert!(matches!(split_media_path("/nothing"), Err(Error::NotFound(_))));
    }
}
