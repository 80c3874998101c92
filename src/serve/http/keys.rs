//! Key delivery: the AES-128 key endpoint and the W3C Clear Key licence endpoint, under the
//! locator's key access (open, or a valid JWT).

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::StatusCode;
use hyper::body::Incoming;

use super::body::PartsBody;
use super::failure::Failure;
use super::{Resp, Service};
use crate::error::Error;
use crate::plan::locator::Locator;
use crate::protect::token::{KeyGrant, TokenError};

impl Service {
    /// `GET /{locator}/key/{kid}`: the 16-byte AES-128 key, if the locator's key access
    /// allows. Never cached by CDNs or browsers; the key never appears in logs.
    pub(super) fn key(
        &self,
        locator_id: &str,
        kid: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        max_age_cap: &mut Option<u64>,
    ) -> Result<Resp, Failure> {
        let catalog = self.origin.catalog();
        let locator = super::locator(&catalog, locator_id, max_age_cap)?;
        // The token is checked first, so callers without one learn nothing about which key
        // ids exist.
        let grant = self.key_access(locator, query, headers)?;
        let kid_bytes = crate::protect::parse_hex16(kid)
            .map_err(|_| Error::BadRequest("key id must be 32 hex digits".to_string()))?;
        grant.check(&kid_bytes)?;
        let key =
            locator.key(&kid_bytes).ok_or_else(|| Error::NotFound(format!("key '{kid}' of locator '{locator_id}'")))?;
        let b = self
            .base(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CACHE_CONTROL, "private, no-store")
            .header(header::CONTENT_LENGTH, 16);
        Ok(Self::finish(b, PartsBody::new([Bytes::copy_from_slice(&key.key)])))
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

    /// `POST /{locator}/clearkey`: a W3C Clear Key licence (JSON request with base64url KIDs →
    /// JSON web key set) for the locator's keys, under the same access rule as the key endpoint.
    pub(super) async fn clearkey(
        &self,
        locator_id: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Incoming,
        max_age_cap: &mut Option<u64>,
    ) -> Result<Resp, Failure> {
        let catalog = self.origin.catalog();
        let locator = super::locator(&catalog, locator_id, max_age_cap)?;
        let grant = self.key_access(locator, query, headers)?;
        let request = self.read_body(body).await?;
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
            return Err(e.into());
        }
        let json = response.map_err(Error::BadRequest)?;
        let b = self
            .base(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "private, no-store")
            .header(header::CONTENT_LENGTH, json.len());
        Ok(Self::finish(b, PartsBody::text(json)))
    }

    /// Reads a request body within `max_body_bytes` (413 beyond, at once when the declared
    /// length says so) and `body_read_timeout` (408; hyper then closes an HTTP/1.1 connection,
    /// whose unread body cannot be skipped), so a client trickling a body holds a connection
    /// for a bounded time.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, Failure> {
        use http_body_util::BodyExt;
        if hyper::body::Body::size_hint(&body).lower() > self.max_body_bytes as u64 {
            return Err(Failure::BodyTooLarge(self.max_body_bytes));
        }
        let limited = http_body_util::Limited::new(body, self.max_body_bytes);
        match tokio::time::timeout(self.body_read_timeout, limited.collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Failure::BodyTooLarge(self.max_body_bytes)),
            Ok(Err(_)) => Err(Failure::BodyUnreadable),
            Err(_) => Err(Failure::BodyTimeout(self.body_read_timeout)),
        }
    }
}
