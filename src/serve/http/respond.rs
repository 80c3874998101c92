//! A built resource as an HTTP response: caching headers, conditional requests
//! (`If-None-Match`, `If-Modified-Since`) and single byte ranges (`Range`, `If-Range`).

use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::body::PartsBody;
use super::{Resp, Service};
pub(super) use crate::serve::origin::http_date;
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

/// `Cache-Control` of a response cached for `max_age` seconds; `immutable` for bytes that never
/// change; `stale_if_error` (RFC 5861, when not 0): a CDN may keep serving its copy while we
/// fail, as long as we would.
pub(super) fn cache_control(max_age: u64, immutable: bool, stale_if_error: u64) -> String {
    let mut cache_control = format!("public, max-age={max_age}");
    if immutable {
        cache_control.push_str(", immutable");
    }
    if stale_if_error > 0 {
        cache_control.push_str(&format!(", stale-if-error={stale_if_error}"));
    }
    cache_control
}

/// The header values every response of a built body carries but `ETag`, `Last-Modified` and
/// `Content-Length`, made once when the service starts.
pub(super) struct BuiltHeaders {
    /// `Cache-Control` of the configured lifetimes: manifests, and immutable bodies.
    manifest_cache_control: HeaderValue,
    immutable_cache_control: HeaderValue,
    stale_if_error: u64,
}

impl BuiltHeaders {
    pub(super) fn new(manifest_max_age: u64, segment_max_age: u64, stale_if_error: u64) -> Self {
        BuiltHeaders {
            manifest_cache_control: cache_control_value(manifest_max_age, false, stale_if_error),
            immutable_cache_control: cache_control_value(segment_max_age, true, stale_if_error),
            stale_if_error,
        }
    }

    /// `Cache-Control` of `built`.
    fn cache_control(&self, built: &Built) -> HeaderValue {
        match built.max_age {
            Some(max_age) => cache_control_value(max_age, built.immutable, self.stale_if_error),
            None if built.immutable => self.immutable_cache_control.clone(),
            None => self.manifest_cache_control.clone(),
        }
    }
}

fn cache_control_value(max_age: u64, immutable: bool, stale_if_error: u64) -> HeaderValue {
    // Digits, letters, commas, dashes, '=' and spaces: always a valid value.
    HeaderValue::from_str(&cache_control(max_age, immutable, stale_if_error)).unwrap_or(HeaderValue::from_static(""))
}

impl Service {
    /// `Cache-Control` of a response cached for `max_age` seconds; `immutable` for bytes that
    /// never change.
    pub(super) fn cache_control(&self, max_age: u64, immutable: bool) -> String {
        cache_control(max_age, immutable, self.origin.stale_if_error_secs())
    }

    /// A built resource as a 200, 206, 304 or 416 response. The headers are those of
    /// [`Service::base`] and then, in this order, `Cache-Control`, `ETag`, `Last-Modified`,
    /// `Accept-Ranges`, `Content-Type`, `Content-Range` and `Content-Length`, from values made
    /// with the body: no formatting or header-map growth per request.
    pub(super) fn respond(&self, method: &Method, headers: &HeaderMap, built: &Built) -> Resp {
        let values = &built.header_values;
        let mut h = self.base_headers(9);
        h.insert(header::CACHE_CONTROL, self.built_headers.cache_control(built));
        h.insert(header::ETAG, values.etag.clone());
        h.insert(header::LAST_MODIFIED, values.last_modified.clone());
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

        if not_modified(headers, &built.etag, built.last_modified) {
            return response(StatusCode::NOT_MODIFIED, h, PartsBody::empty());
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(built.content_type));

        let last_modified = values.last_modified.to_str().unwrap_or_default();
        let range =
            match header_str(headers, header::RANGE).filter(|_| range_applies(headers, &built.etag, last_modified)) {
                Some(value) => parse_range(value, built.len),
                None => Ok(None),
            };
        let (status, parts, content_length) = match range {
            Ok(None) => (StatusCode::OK, None, values.content_length.clone()),
            Ok(Some(r)) => {
                let content_range = format!("bytes {}-{}/{}", r.start, r.end - 1, built.len);
                h.insert(header::CONTENT_RANGE, text_value(content_range));
                let len = HeaderValue::from(r.end - r.start);
                (StatusCode::PARTIAL_CONTENT, Some(slice_parts(&built.parts, r)), len)
            }
            Err(()) => {
                h.insert(header::CONTENT_RANGE, text_value(format!("bytes */{}", built.len)));
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                return response(StatusCode::RANGE_NOT_SATISFIABLE, h, PartsBody::empty());
            }
        };
        h.insert(header::CONTENT_LENGTH, content_length);
        if method == Method::HEAD {
            return response(status, h, PartsBody::empty());
        }
        let body = match parts {
            Some(parts) => PartsBody::new(parts),
            None => PartsBody::new(built.parts.iter().cloned()),
        };
        response(status, h, body)
    }
}

/// A header value of text made of digits and ASCII.
fn text_value(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

fn response(status: StatusCode, headers: HeaderMap, body: PartsBody) -> Resp {
    let mut response = Resp::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
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
