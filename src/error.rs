//! One error type for the whole request path. Each variant maps to one HTTP status class
//! (400, 403, 404, 501, 5xx) so the server layer never has to guess.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed (URL grammar, options).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The locator's streaming policy does not allow what was asked (e.g. clear output of a
    /// protected asset, or an encryption the policy does not list).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A locator, asset, track, segment time or file does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Something a running live event does not have yet but may have in a moment: a segment
    /// past its live edge, a track or an event with no media so far. A 404 that caches for
    /// at most a second, so CDNs ask again.
    #[error("not found (not yet available): {0}")]
    NotYetAvailable(String),
    /// The storage backend failed: unreachable, refused the request or answered with an
    /// error. `message` never holds credentials or endpoint URLs.
    #[error("storage error on {path}: {message}")]
    Storage { path: String, message: String },
    /// The object at `path` is no longer the version its index was built from (replaced in
    /// storage since): its bytes do not fit the indexed offsets.
    #[error("storage error on {path}: the object changed since it was indexed")]
    SourceChanged { path: String },
    /// The storage backend did not answer within the account's request timeout.
    #[error("storage timed out on {path}")]
    StorageTimeout { path: String },
    /// A media file is corrupt, truncated or uses a layout we cannot package.
    #[error("invalid media in {file}: {reason}")]
    Media { file: String, reason: String },
    /// An asset description (.ism, folder) is unusable.
    #[error("invalid asset {asset}: {reason}")]
    Asset { asset: String, reason: String },
}

impl Error {
    pub fn media(file: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Media { file: file.to_string(), reason: reason.to_string() }
    }
    pub fn asset(asset: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Asset { asset: asset.to_string(), reason: reason.to_string() }
    }
    pub fn source_changed(path: impl fmt::Display) -> Self {
        Error::SourceChanged { path: path.to_string() }
    }
    /// Whether the storage backend failed (502/504 class), as opposed to the thing asked for
    /// being missing, broken or refused.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, Error::Storage { .. } | Error::StorageTimeout { .. })
    }
    /// Classifies an object_store failure on `path`. The message is built from the kind of
    /// failure, never from object_store's own text, which carries request URLs and may carry
    /// response bodies.
    pub fn storage(path: impl fmt::Display, err: object_store::Error) -> Self {
        use object_store::client::{HttpError, HttpErrorKind};
        use object_store::Error as E;
        let path = path.to_string();
        let message = match &err {
            E::NotFound { .. } => return Error::NotFound(path),
            E::Precondition { .. } => return Error::source_changed(path),
            E::PermissionDenied { .. } => "the storage service denied access".to_string(),
            E::Unauthenticated { .. } => "the storage service refused the credentials".to_string(),
            _ => match find_in_chain::<HttpError>(&err).map(HttpError::kind) {
                Some(HttpErrorKind::Timeout) => return Error::StorageTimeout { path },
                Some(_) => match find_in_chain::<std::io::Error>(&err) {
                    Some(io) => format!("cannot reach the storage service: {io}"),
                    None => "cannot reach the storage service".to_string(),
                },
                None => match status_of(&err) {
                    Some(status) => format!("the storage service answered {status}"),
                    None => match find_in_chain::<std::io::Error>(&err) {
                        Some(io) => io.to_string(),
                        None => "the storage service failed".to_string(),
                    },
                },
            },
        };
        Error::Storage { path, message }
    }
}

/// Whether a ranged read may have failed only because the object is empty: a cloud store
/// answers 416 Range Not Satisfiable; the local and in-memory stores refuse the range
/// themselves (no HTTP status, no transport failure). A backend that is down, slow or
/// answering 5xx is none of these.
pub fn may_be_an_empty_object(err: &object_store::Error) -> bool {
    match status_of(err) {
        Some(status) => status == 416,
        None => find_in_chain::<object_store::client::HttpError>(err).is_none(),
    }
}

/// The first error of type `T` in `err`'s source chain.
fn find_in_chain<'a, T: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The HTTP status of a failed storage request. object_store keeps its request error type
/// private, so the status is read from its message ("… status code: 503 Service …").
fn status_of(err: &object_store::Error) -> Option<u16> {
    let text = err.to_string();
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok().filter(|s| (100..600).contains(s))
}
