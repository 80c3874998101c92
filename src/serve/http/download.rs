//! `GET`/`HEAD /{locator}/{file}`: a progressive MP4 or text sidecar of the asset served as
//! stored (AMS `downloadPaths`), for locators whose policy allows downloads: conditional
//! requests and one byte range, as for built responses, with the body streamed from storage.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use object_store::GetRange;

use super::body::PartsBody;
use super::failure::Failure;
use super::respond::{header_str, http_date, not_modified, range_applies, ByteRange};
use super::{Resp, Service};
use crate::error::Error;
use crate::plan::locator::Locator;
use crate::plan::url::DownloadFile;

impl Service {
    /// `file` of `locator`'s asset folder as a 200, 206, 304 or 416 response, its body read
    /// from storage as it is sent; 403 unless the locator's policy allows downloads.
    pub(super) async fn download(
        &self,
        method: &Method,
        headers: &HeaderMap,
        locator: &Locator,
        file: &DownloadFile,
    ) -> Result<Resp, Failure> {
        if !locator.downloads {
            return Err(Error::Forbidden(format!(
                "locator '{}' has a streaming policy without downloads: its files are not served whole",
                locator.id
            ))
            .into());
        }
        if locator.policy.kind().needs_keys() {
            return Err(Error::Forbidden(format!(
                "locator '{}' has an encrypting streaming policy: its files are not served as stored (in the clear)",
                locator.id
            ))
            .into());
        }
        let range = header_str(headers, header::RANGE).and_then(ByteRange::parse);
        // A HEAD reads the file's version only (one HEAD request), a GET the bytes too.
        let mut download = if method == Method::HEAD {
            self.origin.download_version(locator, file).await?
        } else {
            self.origin.download(locator, file, range.map(get_range)).await?
        };
        let last_modified = http_date(download.last_modified);
        let b = self
            .base(StatusCode::OK)
            .header(header::CACHE_CONTROL, self.cache_control(self.http.segment_max_age, false))
            .header(header::ETAG, download.etag.as_str())
            .header(header::LAST_MODIFIED, last_modified.as_str())
            .header(header::ACCEPT_RANGES, "bytes");
        if not_modified(headers, &download.etag, download.last_modified) {
            return Ok(Self::finish(b.status(StatusCode::NOT_MODIFIED), PartsBody::empty()));
        }
        let b = b.header(header::CONTENT_TYPE, download.content_type);
        let range = range.filter(|_| range_applies(headers, &download.etag, &last_modified));
        let whole = |bytes: &std::ops::Range<u64>| bytes.end - bytes.start == download.size;
        if method != Method::HEAD && range.is_none() && !download.bytes.as_ref().is_some_and(|(r, _)| whole(r)) {
            // The range was read, but If-Range names another version: the whole file, in a
            // second read.
            download = self.origin.download(locator, file, None).await?;
        }
        let (bytes, chunks) = match download.bytes {
            Some((bytes, chunks)) => (Ok(bytes), Some(chunks)),
            None if method == Method::HEAD => (range.map_or(Ok(0..download.size), |r| r.resolve(download.size)), None),
            None => (Err(()), None),
        };
        let Ok(bytes) = bytes else {
            let b = b
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", download.size));
            return Ok(Self::finish(b.header(header::CONTENT_LENGTH, 0), PartsBody::empty()));
        };
        let b = match range {
            None => b,
            Some(_) => b
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", bytes.start, bytes.end - 1, download.size)),
        };
        let len = bytes.end - bytes.start;
        let b = b.header(header::CONTENT_LENGTH, len);
        let body = chunks.map_or_else(PartsBody::empty, |chunks| PartsBody::stream(len, chunks));
        Ok(Self::finish(b, body))
    }
}

/// The storage read of a `Range` header's range.
fn get_range(range: ByteRange) -> GetRange {
    match range {
        ByteRange::From { first, last: None } => GetRange::Offset(first),
        ByteRange::From { first, last: Some(last) } => GetRange::Bounded(first..last.saturating_add(1)),
        ByteRange::Last(n) => GetRange::Suffix(n),
    }
}
