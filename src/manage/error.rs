//! API errors in the AMS shape, `{"error": {"code", "message"}}`, with the status AMS uses.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::store::StoreError;

/// A refused or failed API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    /// A bad body or parameter; the message names the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthenticationFailed", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AuthorizationFailed", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", message)
    }
    /// The store failed: the client may retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = json_response(self.status, Some(&body));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An API response: `status`, never cached, with `body` as JSON when there is one. Built from
/// parts (no builder whose headers could fail to parse).
pub(crate) fn json_response(status: StatusCode, body: Option<&serde_json::Value>) -> Response<Full<Bytes>> {
    let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if body.is_some() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    }
    response
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(path) => ApiError::conflict(format!("{path} already exists")),
            StoreError::Conflict(path) => {
                ApiError::conflict(format!("{path} was changed by another request meanwhile; read it and try again"))
            }
            StoreError::BadName(reason) => ApiError::bad_request(reason),
            StoreError::Unsealable(_) => ApiError::internal("a stored key does not open with the configured store key"),
            StoreError::Storage(e) => ApiError::unavailable(format!("the store is unavailable: {e}")),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
