//! Every error response: why a request failed, and the one place that becomes a status, a
//! one-line body and the headers the status needs.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::body::PartsBody;
use super::{Resp, Service};
use crate::error::Error;
use crate::protect::token::TokenError;
use crate::protect::url_signing;

/// Why a request is answered with an error: the request path below HTTP failed, a credential
/// was refused, or the request broke a rule of the HTTP layer itself.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// URL grammar, policy, storage or media: the request path's own error.
    #[error(transparent)]
    Request(#[from] Arc<Error>),
    /// A key or licence request without a token that grants the key.
    #[error("{}: {}", if .0.is_insufficient_scope() { "forbidden" } else { "unauthorized" }, .0.reason())]
    Token(#[from] TokenError),
    /// A locator outside its publishing window.
    #[error(transparent)]
    Unpublished(#[from] super::window::Outside),
    /// A signed locator's URL without a valid signature.
    #[error("forbidden: {}", .0.reason())]
    Signature(url_signing::Refusal),
    #[error("method {0} not allowed")]
    MethodNotAllowed(Method),
    #[error("URL longer than {0} bytes")]
    UrlTooLong(usize),
    #[error("GET and HEAD requests carry no body")]
    BodyOnGet,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("request body not received within {} s", .0.as_secs())]
    BodyTimeout(Duration),
    #[error("request body unreadable")]
    BodyUnreadable,
    #[error("forbidden: this origin answers its CDN only")]
    NotFromCdn,
    #[error("not found: this listener serves /healthz, /readyz and /metrics only")]
    NotAHealthRoute,
    /// Shutting down: /readyz fails so load balancers stop sending traffic.
    #[error("draining")]
    Draining,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Request(Arc::new(e))
    }
}

impl From<url_signing::Refusal> for Failure {
    fn from(refusal: url_signing::Refusal) -> Self {
        Failure::Signature(refusal)
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::Request(e) => match **e {
                Error::BadRequest(_) => StatusCode::BAD_REQUEST,
                Error::Forbidden(_) => StatusCode::FORBIDDEN,
                Error::NotFound(_) | Error::NotYetAvailable(_) => StatusCode::NOT_FOUND,
                Error::Storage { .. } | Error::SourceChanged { .. } => StatusCode::BAD_GATEWAY,
                Error::StorageTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                Error::Media { .. } | Error::Asset { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            // RFC 6750 §3.1: a missing or invalid token is 401, a valid token that does not
            // grant the key (`insufficient_scope`) 403.
            Failure::Token(e) if e.is_insufficient_scope() => StatusCode::FORBIDDEN,
            Failure::Token(_) => StatusCode::UNAUTHORIZED,
            Failure::Signature(_) | Failure::NotFromCdn => StatusCode::FORBIDDEN,
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::UrlTooLong(_) => StatusCode::URI_TOO_LONG,
            Failure::BodyOnGet | Failure::BodyUnreadable => StatusCode::BAD_REQUEST,
            Failure::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Failure::NotAHealthRoute | Failure::Unpublished(_) => StatusCode::NOT_FOUND,
            Failure::Draining => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The `WWW-Authenticate` value sent with a refused token (RFC 6750 §3.1): no error code when
/// no token was sent, `insufficient_scope` for a token that does not grant the key,
/// `invalid_token` otherwise.
fn www_authenticate(e: &TokenError) -> &'static str {
    match e {
        TokenError::Missing => "Bearer",
        e if e.is_insufficient_scope() => "Bearer error=\"insufficient_scope\"",
        _ => "Bearer error=\"invalid_token\"",
    }
}

/// `max-age` of a 404 for what a live event does not have yet: a CDN must ask again soon.
const NOT_YET_MAX_AGE: u64 = 1;

impl Service {
    /// The response to `failure`: its status, the reason as one line of text, and the header
    /// the status needs (`Allow` with 405, `WWW-Authenticate` with a refused token). Refusals
    /// (401, 403) depend on the request's own credentials, so no cache may keep them for other
    /// viewers; other errors are cached for `error_max_age`, a locator that has not started
    /// no longer than until its start.
    pub(super) fn failure_response(&self, failure: &Failure) -> Resp {
        let status = failure.status();
        if status.is_server_error() && matches!(failure, Failure::Request(_)) {
            tracing::warn!(error = %failure, "request failed");
        }
        let cache_control = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            "no-store".to_string()
        } else {
            let starts_in = match failure {
                Failure::Unpublished(outside) => outside.starts_in.map_or(u64::MAX, |d| d.as_secs()),
                Failure::Request(e) if matches!(**e, Error::NotYetAvailable(_)) => NOT_YET_MAX_AGE,
                _ => u64::MAX,
            };
            format!("public, max-age={}", self.http.error_max_age.min(starts_in))
        };
        let mut b = self
            .base(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, cache_control);
        match failure {
            Failure::MethodNotAllowed(_) => b = b.header(header::ALLOW, "GET, HEAD, OPTIONS"),
            Failure::Token(e) => b = b.header(header::WWW_AUTHENTICATE, HeaderValue::from_static(www_authenticate(e))),
            _ => {}
        }
        // One line whatever a message quotes (a track name from a URL may hold a line break).
        let line = failure.to_string().replace(char::is_control, "?");
        Self::finish(b, PartsBody::text(format!("{line}\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_tokens_answer_per_rfc_6750() {
        use TokenError::*;
        for e in [Malformed, BadSignature, Expired, NotYetValid, WrongIssuer, WrongAudience, WrongAlgorithm] {
            assert_eq!(Failure::Token(e.clone()).status(), StatusCode::UNAUTHORIZED);
            assert_eq!(www_authenticate(&e), "Bearer error=\"invalid_token\"");
        }
        assert_eq!(Failure::Token(Missing).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(www_authenticate(&Missing), "Bearer");
        for e in [ContentKeyClaimMissing, WrongContentKey, RequiredClaimMissing] {
            assert_eq!(Failure::Token(e.clone()).status(), StatusCode::FORBIDDEN);
            assert_eq!(www_authenticate(&e), "Bearer error=\"insufficient_scope\"");
        }
    }
}
