//! A built response body with what HTTP caching needs to know about it.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use crate::output::Output;
use crate::plan::links::Links;
use crate::source::storage::ObjectVersion;

#[derive(Debug)]
pub struct Built {
    pub content_type: &'static str,
    pub parts: Vec<Bytes>,
    pub len: u64,
    /// Strong validator, derived from what the bytes are made of (stable across restarts
    /// and replicas serving the same objects).
    pub etag: String,
    /// Newest modification time of the sources, Unix seconds.
    pub last_modified: i64,
    /// The bytes never change (segments and init segments); manifests are VOD-long.
    pub immutable: bool,
    /// A lifetime shorter than the configured one: a running live event's manifests.
    pub max_age: Option<u64>,
    /// A manifest's links, to which a request's carried query is added.
    pub links: Option<Links>,
    /// `ETag`, `Last-Modified` and `Content-Length` of the whole body as header values, made
    /// once with it rather than formatted for every response.
    pub header_values: HeaderValues,
    /// Memory the entry keeps alive, for the cache weigher: at least `len`, and the whole
    /// source read when the body is zero-copy slices of it (a clear segment of an interleaved
    /// file holds the other tracks' bytes between its samples too).
    pub weight: u64,
}

impl Built {
    pub(super) fn new(output: Output, identity: u64, sources: &[&ObjectVersion], immutable: bool) -> Self {
        let len = output.len();
        let etag = format!("\"{identity:016x}-{len:x}\"");
        let last_modified = sources.iter().map(|v| v.last_modified_unix).max().unwrap_or(0);
        Built {
            content_type: output.content_type,
            parts: output.parts,
            len,
            header_values: HeaderValues::new(&etag, last_modified, len),
            etag,
            last_modified,
            immutable,
            max_age: None,
            links: output.links,
            weight: len,
        }
    }
}

/// Header values of a body that every response of it repeats.
#[derive(Debug, Clone)]
pub struct HeaderValues {
    pub etag: HeaderValue,
    /// `last_modified` as an HTTP date.
    pub last_modified: HeaderValue,
    pub content_length: HeaderValue,
}

impl HeaderValues {
    pub fn new(etag: &str, last_modified: i64, len: u64) -> Self {
        HeaderValues {
            // An ETag is made of quotes, hex digits and dashes: always a valid value.
            etag: HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("")),
            last_modified: HeaderValue::from_str(&http_date(last_modified)).unwrap_or(HeaderValue::from_static("")),
            content_length: HeaderValue::from(len),
        }
    }
}

/// Unix seconds as an HTTP date (`Last-Modified`).
pub fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
}
