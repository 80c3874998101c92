//! Storage accounts: every byte of media comes through `object_store`, as ranged reads.
//!
//! A [`Storage`] wraps one store (local files now; S3, Azure Blob and GCS through the same
//! trait) and counts the requests and bytes it serves, because request economy — one GET per
//! segment per source file — is a product feature we measure.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};
use crate::index::ObjectVersion;

/// One storage account.
#[derive(Debug)]
pub struct Storage {
    name: String,
    store: Arc<dyn ObjectStore>,
    /// Root folder when the account is local disk: ranged reads then go straight to the file.
    /// object_store's local backend zero-fills each read buffer before reading into it,
    /// which doubled the memory traffic of an uncached segment.
    local_root: Option<PathBuf>,
    stats: StorageStats,
}

/// Requests and bytes served by a storage account since start.
#[derive(Debug, Default)]
pub struct StorageStats {
    pub get_requests: AtomicU64,
    pub list_requests: AtomicU64,
    pub bytes_read: AtomicU64,
}

impl Storage {
    pub fn new(name: impl Into<String>, store: Arc<dyn ObjectStore>) -> Self {
        Storage { name: name.into(), store, local_root: None, stats: StorageStats::default() }
    }

    /// A local directory as a storage account.
    pub fn local(name: impl Into<String>, dir: impl AsRef<FsPath>) -> Result<Self> {
        let dir = dir.as_ref();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::Storage { path: dir.display().to_string(), message: e.to_string() })?;
        let mut storage = Self::new(name, Arc::new(store));
        storage.local_root = dir.canonicalize().ok();
        Ok(storage)
    }

    /// Opens a storage account from a URL: `file:///abs`, `file://relative` (relative to
    /// `base_dir`), a plain path, or `memory://`.
    pub fn from_url(name: impl Into<String>, url: &str, base_dir: &FsPath) -> Result<Self> {
        let name = name.into();
        if url == "memory://" || url.starts_with("memory://") {
            return Ok(Self::new(name, Arc::new(object_store::memory::InMemory::new())));
        }
        let local: PathBuf = match url.strip_prefix("file://") {
            Some(rest) => PathBuf::from(rest),
            None if !url.contains("://") => PathBuf::from(url),
            None => {
                return Err(Error::Storage {
                    path: url.to_string(),
                    message: "unsupported storage URL scheme (use file:// or memory://)".into(),
                })
            }
        };
        let dir = if local.is_absolute() { local } else { base_dir.join(local) };
        Self::local(name, dir)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn count(&self, bytes: usize) {
        self.stats.get_requests.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Reads `range` of an object (one GET). The result may be shorter than asked when the
    /// object ends first.
    pub async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let location = object_path(path)?;
        if let Some(root) = &self.local_root {
            let file = root.join(location.as_ref());
            let bytes = read_local_range(file, range).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound(path.to_string()),
                _ => Error::Storage { path: path.to_string(), message: e.to_string() },
            })?;
            self.count(bytes.len());
            return Ok(bytes);
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..Default::default() };
        let result = self.store.get_opts(&location, options).await.map_err(|e| Error::storage(path, e))?;
        let bytes = result.bytes().await.map_err(|e| Error::storage(path, e))?;
        self.count(bytes.len());
        Ok(bytes)
    }

    /// Reads the first `len` bytes of an object together with its version (one GET: the
    /// response carries the object's size, ETag and modification time).
    pub async fn read_head(&self, path: &str, len: u64) -> Result<(Bytes, ObjectVersion)> {
        let location = object_path(path)?;
        let options = GetOptions { range: Some(GetRange::Bounded(0..len.max(1))), ..Default::default() };
        let result = match self.store.get_opts(&location, options).await {
            Ok(r) => r,
            // Zero-length objects reject every range.
            Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound(path.to_string())),
            Err(e) => {
                let meta = self.store.head(&location).await.map_err(|e| Error::storage(path, e))?;
                if meta.size == 0 {
                    return Err(Error::media(path, "file is empty"));
                }
                return Err(Error::storage(path, e));
            }
        };
        let version = version_of(&result.meta);
        let bytes = result.bytes().await.map_err(|e| Error::storage(path, e))?;
        self.count(bytes.len());
        Ok((bytes, version))
    }

    /// Reads a whole (small) object such as an `.ism` manifest.
    pub async fn read_all(&self, path: &str) -> Result<Bytes> {
        let location = object_path(path)?;
        let result = self.store.get(&location).await.map_err(|e| Error::storage(path, e))?;
        let bytes = result.bytes().await.map_err(|e| Error::storage(path, e))?;
        self.count(bytes.len());
        Ok(bytes)
    }

    /// Lists the objects directly inside `prefix` (one folder level), sorted by path.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let location = object_path(prefix)?;
        self.stats.list_requests.fetch_add(1, Ordering::Relaxed);
        let listing = self.store.list_with_delimiter(Some(&location)).await.map_err(|e| Error::storage(prefix, e))?;
        let mut objects = listing.objects;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Lists every object below `prefix`, recursively (used by tools, not on request paths).
    pub async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let location = object_path(prefix)?;
        self.stats.list_requests.fetch_add(1, Ordering::Relaxed);
        let mut objects: Vec<ObjectMeta> =
            self.store.list(Some(&location)).try_collect().await.map_err(|e| Error::storage(prefix, e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }
}

/// A store path from a `/`-separated string. Rejects `..` and empty segments, so no request
/// can leave the asset's prefix.
pub fn object_path(path: &str) -> Result<Path> {
    let trimmed = path.trim_matches('/');
    if trimmed.split('/').any(|seg| seg == ".." || seg == ".") || trimmed.contains('\\') {
        return Err(Error::BadRequest(format!("path '{path}' leaves its asset folder")));
    }
    Path::parse(trimmed).map_err(|e| Error::BadRequest(format!("invalid object path '{path}': {e}")))
}

/// Reads `range` of a local file into uninitialised capacity (no zero-fill), on the blocking
/// pool. Shorter than asked when the file ends first, like object_store's ranged GET.
///
/// The buffer is allocated here, on the runtime's worker thread, not on the blocking thread:
/// the allocator keeps per-thread heaps, and a buffer freed later by a worker (cache eviction,
/// a finished response) goes back to the heap it came from. Dozens of blocking threads each
/// holding freed segment buffers cost ~10 MB of resident memory in the load benchmark.
async fn read_local_range(file: PathBuf, range: Range<u64>) -> std::io::Result<Bytes> {
    let len = range.end.saturating_sub(range.start);
    let mut buf = Vec::with_capacity(len as usize);
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&file)?;
        f.seek(SeekFrom::Start(range.start))?;
        f.take(len).read_to_end(&mut buf)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The version identity of a listed or fetched object.
pub fn version_of(meta: &ObjectMeta) -> ObjectVersion {
    ObjectVersion { size: meta.size, etag: meta.e_tag.clone(), last_modified_unix: meta.last_modified.timestamp() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_cannot_escape() {
        assert!(object_path("ladder/../secret.mp4").is_err());
        assert!(object_path("ladder/./a.mp4").is_err());
        assert!(object_path("a\\b").is_err());
        assert_eq!(object_path("/ladder/a.mp4").unwrap().as_ref(), "ladder/a.mp4");
    }

    #[tokio::test]
    async fn reads_ranges_and_counts_requests() {
        let storage = Storage::from_url("m", "memory://", FsPath::new(".")).unwrap();
        let store = storage.object_store().clone();
        store.put(&Path::from("a/b.mp4"), Bytes::from_static(b"0123456789").into()).await.unwrap();
        let (head, version) = storage.read_head("a/b.mp4", 4).await.unwrap();
        assert_eq!(&head[..], b"0123");
        assert_eq!(version.size, 10);
        assert_eq!(&storage.read_range("a/b.mp4", 8..20).await.unwrap()[..], b"89");
        assert_eq!(storage.stats().get_requests.load(Ordering::Relaxed), 2);
        assert!(matches!(storage.read_range("a/missing.mp4", 0..1).await, Err(Error::NotFound(_))));
    }
}
