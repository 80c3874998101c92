//! Key delivery: the AES-128 key endpoint and the W3C Clear Key licence endpoint, under the
//! locator's key access (open, or a valid JWT).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use hyper::body::Incoming;

use super::body::PartsBody;
use super::{Resp, Service};
use crate::protect::token::{KeyGrant, TokenError};
use crate::plan::locator::Locator;

impl Service {
    /// `GET /{locator}/key/{kid}`: the 16-byte AES-128 key, if the locator's key access
    /// allows. Never cached by CDNs or browsers; the key never appears in logs.
    pub(super) fn key(&self, locator_id: &str, kid: &str, query: Option<&str>, headers: &HeaderMap) -> Resp {
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
    fn key_access(&self, locator: &Locator, query: Option<&str>, headers: &HeaderMap) -> Result<KeyGrant, TokenError> {
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
    pub(super) async fn clearkey(
        &self,
        locator_id: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Resp {
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
}
