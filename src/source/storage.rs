//! Storage accounts: every byte of media comes through `object_store`, as ranged reads.
//!
//! A [`Storage`] wraps one store (local files, memory, S3, Azure Blob or GCS) and counts the
//! requests and bytes it serves, because request economy — one GET per segment per source
//! file — is a product feature we measure.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, GetRange, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMode, PutResult, RetryConfig,
};

use crate::error::{may_be_an_empty_object, Error, Result};

mod account;
mod local;
mod local_writes;

use crate::secret::Secret;
pub use account::{StorageConfig, StorageKind};

/// Part of an object as [`Storage::read_stream`] reads it.
pub struct ObjectStream {
    /// The version the bytes are of.
    pub version: ObjectVersion,
    /// Which bytes of the object the chunks hold.
    pub range: Range<u64>,
    pub chunks: BoxStream<'static, Result<Bytes>>,
}

/// Identity of a stored object version: cache keys include it so a replaced file is re-indexed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectVersion {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified_unix: i64,
}

/// One storage account.
pub struct Storage {
    name: String,
    /// Where the account is, for Debug and logs: the URL without credentials.
    location: String,
    store: Arc<dyn ObjectStore>,
    /// When the account is local disk, ranged reads go straight to the files below this root
    /// ([`local`] says why), into recycled buffers.
    local: Option<(PathBuf, Arc<local::ReadBuffers>)>,
    /// Whether object ETags are the same for every reader of the object (cloud stores).
    /// Local ETags derive from inode numbers, which differ between replicas.
    shared_etags: bool,
    stats: StorageStats,
}

/// Only what identifies the account: a store's own Debug output may include credentials.
impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("name", &self.name).field("location", &self.location).finish_non_exhaustive()
    }
}

/// Requests and bytes served by a storage account since start. Requests are counted when
/// issued, failed ones included; bytes when received.
#[derive(Debug, Default)]
pub struct StorageStats {
    pub get_requests: AtomicU64,
    pub head_requests: AtomicU64,
    pub list_requests: AtomicU64,
    pub bytes_read: AtomicU64,
}

impl Storage {
    pub fn new(name: impl Into<String>, store: Arc<dyn ObjectStore>) -> Self {
        let location = store.to_string();
        Storage { name: name.into(), location, store, local: None, shared_etags: false, stats: StorageStats::default() }
    }

    /// A local directory as a storage account.
    pub fn local(name: impl Into<String>, dir: impl AsRef<FsPath>) -> Result<Self> {
        let dir = dir.as_ref();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::Storage { path: dir.display().to_string(), message: e.to_string() })?;
        let mut storage = Self::new(name, Arc::new(store));
        storage.location = format!("file://{}", dir.display());
        storage.local = dir.canonicalize().ok().map(|root| (root, Arc::default()));
        Ok(storage)
    }

    /// Opens the storage account a (checked) config describes: `file:///abs`, `file://relative`
    /// (relative to `base_dir`), a plain path, `memory://`, or a cloud bucket whose URL prefix
    /// becomes the account's root.
    pub fn open(config: &StorageConfig, base_dir: &FsPath) -> Result<Self> {
        let url = config.url.as_str();
        let unsupported = || Error::Storage {
            path: url.to_string(),
            message: "unsupported storage URL scheme (use file://, memory://, s3://, az:// or gs://)".into(),
        };
        let kind = StorageKind::of_url(url).ok_or_else(unsupported)?;
        let name = config.name.clone();
        match kind {
            StorageKind::Memory => Ok(Self::new(name, Arc::new(object_store::memory::InMemory::new()))),
            StorageKind::File => {
                let local = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
                Self::local(name, if local.is_absolute() { local } else { base_dir.join(local) })
            }
            StorageKind::S3 => Self::cloud(config, s3_store),
            StorageKind::Azure => Self::cloud(config, azure_store),
            StorageKind::Gcs => Self::cloud(config, gcs_store),
        }
    }

    /// A cloud bucket account: `build` makes the store for the URL's bucket; the URL's
    /// prefix becomes the account's root, so every path is below it.
    fn cloud(
        config: &StorageConfig,
        build: fn(&StorageConfig, &str) -> object_store::Result<Arc<dyn ObjectStore>>,
    ) -> Result<Self> {
        let url = config.url.as_str();
        let (bucket, prefix) = config.bucket_and_prefix();
        let store =
            build(config, bucket).map_err(|e| Error::Storage { path: url.to_string(), message: e.to_string() })?;
        let prefix = object_path(prefix)?;
        let store: Arc<dyn ObjectStore> =
            if prefix.as_ref().is_empty() { store } else { Arc::new(PrefixStore::new(store, prefix)) };
        let mut storage = Self::new(config.name.clone(), store);
        storage.location = url.to_string();
        storage.shared_etags = true;
        Ok(storage)
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

    /// Whether object ETags are the same for every reader of the object, so they may go
    /// into response validators (not for local files, whose ETags derive from inodes).
    pub fn shared_etags(&self) -> bool {
        self.shared_etags
    }

    fn count_get(&self) {
        self.stats.get_requests.fetch_add(1, Ordering::Relaxed);
    }
    fn count_bytes(&self, bytes: &Bytes) {
        self.stats.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }

    /// Reads `range` of an object (one GET). The result may be shorter than asked when the
    /// object ends first.
    pub async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.read_range_if(path, range, None).await
    }

    /// Reads `range` of the object version `indexed` (one GET): the bytes a segment is built
    /// from, at offsets its index gave. A cloud object replaced since then is an error, never
    /// new bytes at old offsets served under the old ETag: the GET asks `If-Match` on the
    /// indexed ETag, and the answer's version is checked as well, since not every
    /// S3-compatible server honours `If-Match`. (Local ETags derive from inode numbers, so
    /// local reads are not checked.)
    pub async fn read_indexed_range(&self, path: &str, indexed: &ObjectVersion, range: Range<u64>) -> Result<Bytes> {
        self.read_range_if(path, range, Some(indexed)).await
    }

    async fn read_range_if(&self, path: &str, range: Range<u64>, indexed: Option<&ObjectVersion>) -> Result<Bytes> {
        let location = object_path(path)?;
        self.count_get();
        let bytes = if let Some((root, buffers)) = &self.local {
            let file = root.join(location.as_ref());
            read_local_range(file, range, buffers).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound(path.to_string()),
                _ => Error::Storage { path: path.to_string(), message: e.to_string() },
            })?
        } else {
            let indexed = indexed.filter(|_| self.shared_etags);
            let if_match = indexed.and_then(|v| v.etag.as_ref()).map(|etag| format!("\"{etag}\""));
            let options = GetOptions { range: Some(GetRange::Bounded(range)), if_match, ..Default::default() };
            let result = self.store.get_opts(&location, options).await.map_err(|e| Error::storage(path, e))?;
            if let Some(indexed) = indexed {
                let got = version_of(&result.meta);
                if got.size != indexed.size || (indexed.etag.is_some() && got.etag != indexed.etag) {
                    return Err(Error::source_changed(path));
                }
            }
            result.bytes().await.map_err(|e| Error::storage(path, e))?
        };
        self.count_bytes(&bytes);
        Ok(bytes)
    }

    /// Reads the first `len` bytes of an object together with its version (one GET: the
    /// response carries the object's size, ETag and modification time).
    pub async fn read_head(&self, path: &str, len: u64) -> Result<(Bytes, ObjectVersion)> {
        let location = object_path(path)?;
        let options = GetOptions { range: Some(GetRange::Bounded(0..len.max(1))), ..Default::default() };
        self.count_get();
        let result = match self.store.get_opts(&location, options).await {
            Ok(r) => r,
            // Zero-length objects reject every range: one HEAD tells an empty file. A backend
            // that is down, slow or failing (5xx after the retries) is not asked again.
            Err(e) if may_be_an_empty_object(&e) => {
                self.stats.head_requests.fetch_add(1, Ordering::Relaxed);
                let meta = self.store.head(&location).await.map_err(|e| Error::storage(path, e))?;
                if meta.size == 0 {
                    return Err(Error::media(path, "file is empty"));
                }
                return Err(Error::storage(path, e));
            }
            Err(e) => return Err(Error::storage(path, e)),
        };
        let version = version_of(&result.meta);
        let bytes = result.bytes().await.map_err(|e| Error::storage(path, e))?;
        self.count_bytes(&bytes);
        Ok((bytes, version))
    }

    /// Reads a whole (small) object such as an `.ism` manifest.
    pub async fn read_all(&self, path: &str) -> Result<Bytes> {
        Ok(self.read_all_with_meta(path).await?.0)
    }

    /// Reads a whole (small) object with its metadata (ETag and version of what was read).
    pub async fn read_all_with_meta(&self, path: &str) -> Result<(Bytes, ObjectMeta)> {
        let location = object_path(path)?;
        self.count_get();
        let result = self.store.get(&location).await.map_err(|e| Error::storage(path, e))?;
        let meta = result.meta.clone();
        let bytes = result.bytes().await.map_err(|e| Error::storage(path, e))?;
        self.count_bytes(&bytes);
        Ok((bytes, meta))
    }

    /// One GET of `range` of an object (all of it when `None`), as chunks to send on as they
    /// arrive, never held whole: for files served as stored (downloads), which may be larger
    /// than memory. A range starting at or past the end of the object is an error.
    pub async fn read_stream(self: &Arc<Self>, path: &str, range: Option<GetRange>) -> Result<ObjectStream> {
        let location = object_path(path)?;
        self.count_get();
        let options = GetOptions { range, ..Default::default() };
        let result = self.store.get_opts(&location, options).await.map_err(|e| Error::storage(path, e))?;
        let (version, range) = (version_of(&result.meta), result.range.clone());
        let chunks = match result.payload {
            // object_store reads local files 8 KiB at a time, each read a blocking task.
            GetResultPayload::File(file, _) => local::file_chunks(file, path.to_string(), range.clone()),
            GetResultPayload::Stream(stream) => {
                let path = path.to_string();
                stream.map_err(move |e| Error::storage(&path, e)).boxed()
            }
        };
        let storage = Arc::clone(self);
        let chunks = chunks.inspect_ok(move |bytes| storage.count_bytes(bytes)).boxed();
        Ok(ObjectStream { version, range, chunks })
    }

    /// The current version of an object (one HEAD).
    pub async fn version(&self, path: &str) -> Result<ObjectVersion> {
        let location = object_path(path)?;
        self.stats.head_requests.fetch_add(1, Ordering::Relaxed);
        let meta = self.store.head(&location).await.map_err(|e| Error::storage(path, e))?;
        Ok(version_of(&meta))
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
    /// Writes a small object whole, as `mode` says: overwrite, create only if absent
    /// (`AlreadyExists` otherwise), or replace only the version given (`Precondition`
    /// otherwise). Cloud stores check the condition themselves (S3 `If-None-Match: *` /
    /// `If-Match`, Azure and GCS their own preconditions); local files are checked under a
    /// folder lock (`storage/local_writes.rs` says why).
    pub async fn put(&self, location: &Path, bytes: Bytes, mode: PutMode) -> object_store::Result<PutResult> {
        let Some(_lock) = self.lock_local_folder(location).await? else {
            return self.store.put_opts(location, bytes.into(), mode.into()).await;
        };
        let mode = match mode {
            PutMode::Update(expected) => {
                let current = self.store.head(location).await.map_err(|e| match e {
                    object_store::Error::NotFound { path, source } => {
                        object_store::Error::Precondition { path, source }
                    }
                    e => e,
                })?;
                if current.e_tag != expected.e_tag {
                    return Err(object_store::Error::Precondition {
                        path: location.to_string(),
                        source: "the object changed since it was read".into(),
                    });
                }
                PutMode::Overwrite
            }
            mode => mode,
        };
        self.store.put_opts(location, bytes.into(), mode.into()).await
    }

    /// Deletes an object, unconditionally; whether there was one. (Cloud stores answer a
    /// delete of nothing as a success, so a HEAD asks first; a concurrent delete may make
    /// both answers true.)
    pub async fn delete(&self, location: &Path) -> object_store::Result<bool> {
        let _lock = self.lock_local_folder(location).await?;
        self.stats.head_requests.fetch_add(1, Ordering::Relaxed);
        match self.store.head(location).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// For a local account, the lock on the folder of `location` that conditional writes and
    /// deletes hold; `None` for other accounts.
    async fn lock_local_folder(&self, location: &Path) -> object_store::Result<Option<local_writes::FolderLock>> {
        let Some((root, _)) = &self.local else { return Ok(None) };
        let file = root.join(location.as_ref());
        let folder = file.parent().unwrap_or(root).to_path_buf();
        let lock = local_writes::FolderLock::acquire(folder)
            .await
            .map_err(|e| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })?;
        Ok(Some(lock))
    }
}

/// A duration as object_store's config strings take it.
fn duration_value(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Client settings every cloud account takes: timeouts, and plain HTTP for an `http://`
/// endpoint (emulators, in-cluster stores).
fn client_settings(config: &StorageConfig) -> Vec<(ClientConfigKey, String)> {
    let mut settings = vec![
        (ClientConfigKey::ConnectTimeout, duration_value(config.connect_timeout())),
        (ClientConfigKey::Timeout, duration_value(config.request_timeout())),
    ];
    if config.endpoint.as_ref().is_some_and(|e| e.starts_with("http://")) {
        settings.push((ClientConfigKey::AllowHttp, "true".into()));
    }
    settings
}

fn retry_config(config: &StorageConfig) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: config.retry_backoff(),
            max_backoff: config.retry_backoff() * 8,
            base: 2.0,
        },
        max_retries: config.retries(),
        // No retry starts after the request timeout: a hung backend fails about one request
        // timeout after the first attempt, not retries × timeout.
        retry_timeout: config.request_timeout(),
    }
}

/// The settings given in the config, as (key, value) pairs; secrets exposed only here.
fn given<K, const N: usize>(settings: [(K, Option<&str>); N]) -> Vec<(K, String)> {
    settings.into_iter().filter_map(|(key, value)| Some((key, value?.to_string()))).collect()
}

// Builders start from the environment (each cloud's usual variables); the config goes on top.

fn s3_store(config: &StorageConfig, bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry_config(config));
    for (key, value) in client_settings(config) {
        b = b.with_config(AmazonS3ConfigKey::Client(key), value);
    }
    for (key, value) in given([
        (AmazonS3ConfigKey::Endpoint, config.endpoint.as_deref()),
        (AmazonS3ConfigKey::Region, config.region.as_deref()),
        (AmazonS3ConfigKey::AccessKeyId, config.access_key_id.as_deref()),
        (AmazonS3ConfigKey::SecretAccessKey, config.secret_access_key.as_ref().map(Secret::expose)),
        (AmazonS3ConfigKey::Token, config.security_token.as_ref().map(Secret::expose)),
    ]) {
        b = b.with_config(key, value);
    }
    Ok(Arc::new(b.build()?))
}

fn azure_store(config: &StorageConfig, container: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut b = MicrosoftAzureBuilder::from_env().with_container_name(container).with_retry(retry_config(config));
    for (key, value) in client_settings(config) {
        b = b.with_config(AzureConfigKey::Client(key), value);
    }
    for (key, value) in given([
        (AzureConfigKey::Endpoint, config.endpoint.as_deref()),
        (AzureConfigKey::AccountName, config.account.as_deref()),
        (AzureConfigKey::AccessKey, config.access_key.as_ref().map(Secret::expose)),
        (AzureConfigKey::SasKey, config.sas_token.as_ref().map(Secret::expose)),
        (AzureConfigKey::Token, config.bearer_token.as_ref().map(Secret::expose)),
    ]) {
        b = b.with_config(key, value);
    }
    Ok(Arc::new(b.build()?))
}

fn gcs_store(config: &StorageConfig, bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket).with_retry(retry_config(config));
    for (key, value) in client_settings(config) {
        b = b.with_config(GoogleConfigKey::Client(key), value);
    }
    for (key, value) in given([
        (GoogleConfigKey::BaseUrl, config.endpoint.as_deref()),
        (GoogleConfigKey::ServiceAccount, config.service_account_path.as_deref()),
        (GoogleConfigKey::ServiceAccountKey, config.service_account_key.as_ref().map(Secret::expose)),
    ]) {
        b = b.with_config(key, value);
    }
    // A static token (emulators, or one minted elsewhere); otherwise the builder finds
    // application default credentials.
    if let Some(token) = &config.bearer_token {
        b = b.with_bearer_token(token.expose());
    }
    Ok(Arc::new(b.build()?))
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

/// Reads `range` of a local file (see [`local`]); the read itself runs on the blocking pool.
async fn read_local_range(
    file: PathBuf,
    range: Range<u64>,
    buffers: &Arc<local::ReadBuffers>,
) -> std::io::Result<Bytes> {
    let read = local::RangeRead::new(range, buffers)?;
    tokio::task::spawn_blocking(move || read.run(&file)).await.map_err(std::io::Error::other)?
}

/// The version identity of a listed or fetched object. ETags lose their quotes: listings
/// give them bare (Azure, some GCS servers) where response headers quote them, and a reload
/// compares the two.
pub fn version_of(meta: &ObjectMeta) -> ObjectVersion {
    ObjectVersion {
        size: meta.size,
        etag: meta.e_tag.as_ref().map(|e| e.replace('"', "")),
        last_modified_unix: meta.last_modified.timestamp(),
    }
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

    fn account(toml_text: &str) -> StorageConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn debug_output_shows_no_secrets() {
        let config = account(
            "name = 's3'\nurl = 's3://media/vod'\nendpoint = 'http://127.0.0.1:9'\nregion = 'us-east-1'\n\
             access_key_id = 'AKIDEXAMPLE'\nsecret_access_key = 'wJalrXUtnFEMI-SECRET'\nsecurity_token = 'TOKEN-SECRET'",
        );
        let storage = Storage::open(&config, FsPath::new(".")).unwrap();
        for shown in [format!("{config:?}"), format!("{storage:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        assert!(format!("{storage:?}").contains("s3://media/vod"));
    }

    #[tokio::test]
    async fn unreachable_backend_is_a_storage_error_without_urls() {
        // A port nothing listens on any more: connection refused, retried, then an error.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = account(&format!(
            "name = 's3'\nurl = 's3://media/vod'\nendpoint = 'http://127.0.0.1:{port}'\nregion = 'us-east-1'\n\
             access_key_id = 'AKIDEXAMPLE'\nsecret_access_key = 'SECRET'\nretries = 1\nretry_backoff_secs = 0.01"
        ));
        let storage = Storage::open(&config, FsPath::new(".")).unwrap();
        let err = storage.read_range("ladder/a.mp4", 0..10).await.unwrap_err();
        eprintln!("{err}");
        let Error::Storage { path, message } = &err else { panic!("{err:?}") };
        assert_eq!(path, "ladder/a.mp4");
        assert!(message.starts_with("cannot reach the storage service"), "{message}");
        assert!(!message.contains("127.0.0.1") && !message.contains("SECRET"), "{message}");
        assert_eq!(storage.stats().get_requests.load(Ordering::Relaxed), 1);
        assert_eq!(storage.stats().head_requests.load(Ordering::Relaxed), 0, "no second request to a dead backend");
    }

    #[tokio::test]
    async fn a_replaced_object_is_not_read_at_indexed_offsets() {
        let mut storage = Storage::open(&account("name = 'm'\nurl = 'memory://'"), FsPath::new(".")).unwrap();
        // The in-memory store keeps ETags as a cloud store does.
        storage.shared_etags = true;
        let store = storage.object_store().clone();
        store.put(&Path::from("a/b.mp4"), Bytes::from_static(b"0123456789").into()).await.unwrap();
        let (_, indexed) = storage.read_head("a/b.mp4", 4).await.unwrap();
        assert_eq!(&storage.read_indexed_range("a/b.mp4", &indexed, 2..6).await.unwrap()[..], b"2345");
        store.put(&Path::from("a/b.mp4"), Bytes::from_static(b"abcdefghij").into()).await.unwrap();
        let err = storage.read_indexed_range("a/b.mp4", &indexed, 2..6).await.unwrap_err();
        assert_eq!(err.to_string(), "storage error on a/b.mp4: the object changed since it was indexed");
    }

    #[tokio::test]
    async fn a_failing_backend_is_not_asked_again_to_tell_an_empty_file() {
        // A server answering 500 to every request, counting them.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicU64::new(0));
        let counting = served.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                use std::io::{Read, Write};
                let _ = stream.read(&mut [0u8; 4096]);
                counting.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        let config = account(&format!(
            "name = 's3'\nurl = 's3://media/vod'\nendpoint = 'http://127.0.0.1:{port}'\nregion = 'us-east-1'\n\
             access_key_id = 'AKIDEXAMPLE'\nsecret_access_key = 'SECRET'\nretries = 2\nretry_backoff_secs = 0.01"
        ));
        let storage = Storage::open(&config, FsPath::new(".")).unwrap();
        let err = storage.read_head("ladder/a.mp4", 10).await.unwrap_err();
        assert_eq!(err.to_string(), "storage error on ladder/a.mp4: the storage service answered 500");
        assert_eq!(served.load(Ordering::SeqCst), 3, "one GET and its 2 retries, no HEAD after them");
        assert_eq!(storage.stats().head_requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn listed_and_fetched_etags_compare_equal() {
        let meta = |etag: &str| ObjectMeta {
            location: Path::from("a.mp4"),
            last_modified: Default::default(),
            size: 1,
            e_tag: Some(etag.to_string()),
            version: None,
        };
        assert_eq!(version_of(&meta("0x8DC1")), version_of(&meta("\"0x8DC1\"")));
        assert_ne!(version_of(&meta("0x8DC1")), version_of(&meta("0x8DC2")));
    }

    #[tokio::test]
    async fn reads_ranges_and_counts_requests() {
        let storage = Storage::open(&account("name = 'm'\nurl = 'memory://'"), FsPath::new(".")).unwrap();
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
