//! One error type for the whole request path. Each variant maps to one HTTP status class
//! (400, 404, 5xx) so the server layer never has to guess.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
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
    /// The storage backend failed (down, timeout, permission).
    #[error("storage error on {path}: {message}")]
    Storage { path: String, message: String },
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
    pub fn storage(path: impl fmt::Display, err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => Error::NotFound(path.to_string()),
            other => Error::Storage { path: path.to_string(), message: other.to_string() },
        }
    }
}
