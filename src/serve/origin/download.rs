//! Download paths (`/{locator}/{file}`, AMS `downloadPaths`): a file of the locator's asset
//! folder served as stored, straight from one storage read, never cached or held in memory.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::GetRange;

use super::keys::identity_of;
use super::Origin;
use crate::error::{Error, Result};
use crate::plan::locator::Locator;
use crate::plan::url::DownloadFile;
use crate::source::storage::ObjectVersion;

/// A file being downloaded: what HTTP caching needs to know of it, and the bytes asked for.
pub struct Download {
    pub content_type: &'static str,
    /// Strong validator of the file's version (its size and modification time, and its ETag
    /// where every replica sees the same one), the same on every replica.
    pub etag: String,
    /// Unix seconds.
    pub last_modified: i64,
    /// The whole file's length.
    pub size: u64,
    /// The bytes asked for and the chunks that hold them; `None` when the range asked for
    /// starts past the end of the file.
    pub bytes: Option<(Range<u64>, BoxStream<'static, Result<Bytes>>)>,
}

impl Origin {
    /// The current version of `file` in `locator`'s asset folder, without its bytes (one HEAD).
    pub async fn download_version(&self, locator: &Locator, file: &DownloadFile) -> Result<Download> {
        let path = format!("{}/{}", locator.asset_folder, file.name);
        Ok(describe(locator, file, &path, &locator.storage.version(&path).await?))
    }

    /// `range` of `file` in `locator`'s asset folder (all of it when `None`): one GET, or a
    /// HEAD first for the last bytes of a file (`bytes=-n`), which not every store reads.
    pub async fn download(&self, locator: &Locator, file: &DownloadFile, range: Option<GetRange>) -> Result<Download> {
        let path = format!("{}/{}", locator.asset_folder, file.name);
        let storage = &locator.storage;
        let range = match range {
            Some(GetRange::Suffix(n)) => {
                let version = storage.version(&path).await?;
                if n == 0 || version.size == 0 {
                    return Ok(describe(locator, file, &path, &version));
                }
                Some(GetRange::Bounded(version.size - n.min(version.size)..version.size))
            }
            other => other,
        };
        let start = match &range {
            Some(GetRange::Bounded(r)) => Some(r.start),
            Some(GetRange::Offset(first)) => Some(*first),
            _ => None,
        };
        match storage.read_stream(&path, range).await {
            Ok(read) => {
                Ok(Download { bytes: Some((read.range, read.chunks)), ..describe(locator, file, &path, &read.version) })
            }
            // A range past the end is refused by the store (416, or the local store's own
            // check) like a failure; a HEAD, on this rare path only, tells them apart.
            Err(e @ Error::Storage { .. }) => match start {
                Some(start) => match storage.version(&path).await {
                    Ok(version) if start >= version.size => Ok(describe(locator, file, &path, &version)),
                    _ => Err(e),
                },
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

/// A download of `version` of the file at `path`, without bytes yet.
fn describe(locator: &Locator, file: &DownloadFile, path: &str, version: &ObjectVersion) -> Download {
    let shared = locator.storage.shared_etags();
    let identity = identity_of(&("download", locator.storage.name(), path), &[version], shared);
    Download {
        content_type: file.content_type,
        etag: format!("\"{identity:016x}-{:x}\"", version.size),
        last_modified: version.last_modified_unix,
        size: version.size,
        bytes: None,
    }
}
