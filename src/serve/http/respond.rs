//! A built resource as an HTTP response: caching headers, conditional requests
//! (`If-None-Match`, `If-Modified-Since`) and single byte ranges (`Range`, `If-Range`).

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use super::body::PartsBody;
use super::{Resp, Service};
use crate::serve::origin::Built;

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

/// The one range of a `Range: bytes=…` header, before the body's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ByteRange {
    /// `first-` or `first-last` (inclusive).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Last(u64),
}

impl ByteRange {
    /// The range of a `Range` header, or `None` when the header is to be ignored (malformed,
    /// or several ranges: serve the whole body).
    pub(super) fn parse(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            return last.parse().ok().map(ByteRange::Last);
        }
        let first = first.parse().ok()?;
        let last = match last {
            "" => None,
            last => Some(last.parse::<u64>().ok().filter(|l| *l >= first)?),
        };
        Some(ByteRange::From { first, last })
    }

    /// The bytes of a body of `len` bytes this range names, or `Err(())` when it cannot be
    /// satisfied. A last-byte-pos or suffix beyond the body is clamped to it (RFC 9110
    /// §14.1.2), whatever its size.
    pub(super) fn resolve(self, len: u64) -> Result<std::ops::Range<u64>, ()> {
        let range = match self {
            ByteRange::Last(0) => return Err(()),
            ByteRange::Last(n) => len.saturating_sub(n)..len,
            ByteRange::From { first, last } => first..last.map_or(len, |l| l.min(len.saturating_sub(1)) + 1),
        };
        if range.start >= len {
            return Err(());
        }
        Ok(range)
    }
}

/// Parses a single `bytes=` range against a body of `len` bytes: `Ok(None)` when the header
/// should be ignored, `Err(())` when it cannot be satisfied.
fn parse_range(value: &str, len: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    ByteRange::parse(value).map(|r| r.resolve(len)).transpose()
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 prescribes for it).
fn etag_matches(header_value: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header_value.split(',').any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

pub(super) fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
}

/// The value of header `name`, when it is text.
pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a conditional request already has the version with `etag` and `last_modified`
/// (`If-None-Match`, else `If-Modified-Since`): a 304.
pub(super) fn not_modified(headers: &HeaderMap, etag: &str, last_modified: i64) -> bool {
    match header_str(headers, header::IF_NONE_MATCH) {
        Some(tags) => etag_matches(tags, etag),
        None => header_str(headers, header::IF_MODIFIED_SINCE)
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
            .is_some_and(|since| last_modified <= since.as_secs() as i64),
    }
}

/// Whether the `Range` header applies: no `If-Range`, or one naming the current version
/// (a different validator means "send it all").
pub(super) fn range_applies(headers: &HeaderMap, etag: &str, last_modified: &str) -> bool {
    header_str(headers, header::IF_RANGE).is_none_or(|v| v == etag || v == last_modified)
}

impl Service {
    /// `Cache-Control` of a response cached for `max_age` seconds; `immutable` for bytes that
    /// never change.
    pub(super) fn cache_control(&self, max_age: u64, immutable: bool) -> String {
        let mut cache_control = format!("public, max-age={max_age}");
        if immutable {
            cache_control.push_str(", immutable");
        }
        // RFC 5861: a CDN may keep serving its copy while we fail, as long as we would.
        let stale_if_error = self.origin.stale_if_error_secs();
        if stale_if_error > 0 {
            cache_control.push_str(&format!(", stale-if-error={stale_if_error}"));
        }
        cache_control
    }

    /// A built resource as a 200, 206, 304 or 416 response.
    pub(super) fn respond(&self, method: &Method, headers: &HeaderMap, built: &Built) -> Resp {
        let max_age = match built.max_age {
            Some(max_age) => max_age,
            None if built.immutable => self.http.segment_max_age,
            None => self.http.manifest_max_age,
        };
        let last_modified = http_date(built.last_modified);
        let b = self
            .base(StatusCode::OK)
            .header(header::CACHE_CONTROL, self.cache_control(max_age, built.immutable))
            .header(header::ETAG, built.etag.as_str())
            .header(header::LAST_MODIFIED, last_modified.as_str())
            .header(header::ACCEPT_RANGES, "bytes");

        if not_modified(headers, &built.etag, built.last_modified) {
            return Self::finish(b.status(StatusCode::NOT_MODIFIED), PartsBody::empty());
        }
        let b = b.header(header::CONTENT_TYPE, built.content_type);

        let range =
            match header_str(headers, header::RANGE).filter(|_| range_applies(headers, &built.etag, &last_modified)) {
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
    fn etags_compare_weakly() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
