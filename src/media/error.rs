//! The error of media that cannot be read or built.

/// A malformed or unsupported box, codec configuration or sample, found while indexing a file
/// or while building output from it (CMAF, MPEG-TS, encryption). The message says what and
/// where; the index layer adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaError(pub String);

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type MediaResult<T> = Result<T, MediaError>;

pub fn err<T>(msg: impl Into<String>) -> MediaResult<T> {
    Err(MediaError(msg.into()))
}
