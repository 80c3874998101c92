//! The document store: what the management API publishes (assets, streaming locators and
//! policies, content key policies, filters), as JSON documents in a storage account, so that
//! every replica of the origin sees the same state through object storage alone.
//!
//! Layout, below the configured prefix of the account (`[store] storage`, `prefix`):
//!
//! ```text
//! {prefix}/assets/{name}.json
//! {prefix}/assets/{asset}/assetFilters/{name}.json
//! {prefix}/streamingLocators/{name}.json
//! {prefix}/streamingPolicies/{name}.json
//! {prefix}/contentKeyPolicies/{name}.json
//! {prefix}/accountFilters/{name}.json
//! {prefix}/liveEvents/{name}.json
//! {prefix}/liveEvents/{event}/liveOutputs/{name}.json
//! ```
//!
//! A document is the resource's body as the API returns it (`{"name", "id", "type",
//! "properties"}`), except that key material is stored sealed ([`sealer`]).
//!
//! Writes are conditional, so two API calls or two replicas never overwrite each other
//! silently: [`Store::create`] puts only if no document is there (`PutMode::Create`:
//! S3 `If-None-Match: *`), [`Store::replace`] only if the document is still the version that
//! was read (`PutMode::Update` with its ETag: S3 `If-Match`); the loser gets
//! [`StoreError::AlreadyExists`] or [`StoreError::Conflict`]. Deletes are unconditional, as
//! AMS DELETE is idempotent: deleting what another writer just replaced deletes it.
//!
//! A name is up to 260 letters (any script), digits, spaces, `-`, `_` and `.`, never `.` or
//! `..`: one path segment, spelled alike in every object store and on disk, so a document
//! path never leaves its collection nor the prefix.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, PutMode, UpdateVersion};
use serde::Deserialize;

use crate::error::Error;
use crate::source::storage::{object_path, Storage};

mod health;
pub mod sealer;

pub use health::StoreHealth;
pub use sealer::Sealer;

/// `[store]` in the configuration: where the documents are and how often replicas look.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Name of the `[[storage]]` account holding the documents.
    pub storage: String,
    /// Folder of the documents inside the account.
    #[serde(default)]
    pub prefix: String,
    /// Seconds between two reads of the store by every replica.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// Environment variable holding the sealing key (base64 of 32 bytes).
    #[serde(default = "default_key_env")]
    pub key_env: String,
}

fn default_refresh_secs() -> u64 {
    2
}

fn default_key_env() -> String {
    sealer::DEFAULT_KEY_ENV.to_string()
}

/// The collections of documents.
pub const ASSETS: &str = "assets";
pub const STREAMING_LOCATORS: &str = "streamingLocators";
pub const STREAMING_POLICIES: &str = "streamingPolicies";
pub const CONTENT_KEY_POLICIES: &str = "contentKeyPolicies";
pub const ACCOUNT_FILTERS: &str = "accountFilters";
pub const LIVE_EVENTS: &str = "liveEvents";
const ASSET_FILTERS: &str = "assetFilters";
const LIVE_OUTPUTS: &str = "liveOutputs";

/// The collection of the filters of asset `asset`: `assets/{asset}/assetFilters`.
pub fn asset_filters(asset: &str) -> String {
    format!("{ASSETS}/{asset}/{ASSET_FILTERS}")
}

/// The collection of the live outputs of live event `event`: `liveEvents/{event}/liveOutputs`.
pub fn live_outputs(event: &str) -> String {
    format!("{LIVE_EVENTS}/{event}/{LIVE_OUTPUTS}")
}

/// The live event whose outputs a collection holds, for `liveEvents/{event}/liveOutputs`.
pub fn output_event(collection: &str) -> Option<&str> {
    collection.strip_prefix(LIVE_EVENTS)?.strip_prefix('/')?.strip_suffix(LIVE_OUTPUTS)?.strip_suffix('/')
}

const MAX_NAME_LEN: usize = 260;

/// Documents a snapshot reads at once: a replica starting over thousands of documents reads
/// them in seconds, without a burst the store would throttle.
const CONCURRENT_READS: usize = 16;

/// Whether `name` may name a document: it becomes one path segment, spelled the same in
/// every object store and on local disk.
fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.chars().count())
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_alphanumeric() || " -_.".contains(c))
}

/// Where a document is: its collection and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocPath {
    pub collection: String,
    pub name: String,
}

impl DocPath {
    /// A document path, checked: a known collection and a valid name.
    pub fn new(collection: &str, name: &str) -> Result<DocPath, StoreError> {
        let path = DocPath { collection: collection.to_string(), name: name.to_string() };
        path.check()?;
        Ok(path)
    }

    /// The asset whose filters the collection holds, for `assets/{asset}/assetFilters`.
    pub fn filtered_asset(&self) -> Option<&str> {
        filtered_asset(&self.collection)
    }

    fn check(&self) -> Result<(), StoreError> {
        check_collection(&self.collection)?;
        if !is_valid_name(&self.name) {
            return Err(StoreError::BadName(format!(
                "'{}': a name is 1 to {MAX_NAME_LEN} letters, digits, spaces, '-', '_' or '.' (not '.' or '..')",
                self.name
            )));
        }
        Ok(())
    }
}

/// The asset of an `assets/{asset}/assetFilters` collection.
fn filtered_asset(collection: &str) -> Option<&str> {
    collection.strip_prefix(ASSETS)?.strip_prefix('/')?.strip_suffix(ASSET_FILTERS)?.strip_suffix('/')
}

/// A refusal unless `collection` is one of the store's.
fn check_collection(collection: &str) -> Result<(), StoreError> {
    let known = [ASSETS, STREAMING_LOCATORS, STREAMING_POLICIES, CONTENT_KEY_POLICIES, ACCOUNT_FILTERS, LIVE_EVENTS]
        .contains(&collection)
        || filtered_asset(collection).is_some_and(is_valid_name)
        || output_event(collection).is_some_and(is_valid_name);
    match known {
        true => Ok(()),
        false => Err(StoreError::BadName(format!("'{collection}' is not a collection"))),
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.collection, self.name)
    }
}

/// The version of a stored document, as the store reported it: what a conditional replace
/// must still find.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

impl Version {
    fn of(meta: &ObjectMeta) -> Version {
        Version { e_tag: meta.e_tag.clone(), version: meta.version.clone() }
    }

    /// Whether two reports name the same content: the same ETag. Listings give some ETags
    /// bare where response headers quote them, and leave out object versions (GCS
    /// generations, S3 version ids) that reads report, so versions are not compared.
    fn same_as(&self, other: &Version) -> bool {
        let bare = |v: &Version| v.e_tag.as_ref().map(|e| e.trim_matches('"').to_string());
        self.e_tag.is_some() && bare(self) == bare(other)
    }
}

/// A stored document: its path, JSON body and version.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: DocPath,
    pub body: Bytes,
    pub version: Version,
}

/// Every document of the store at one time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sorted by path.
    pub documents: Vec<Document>,
    /// Whether any document was added, changed or removed since the previous snapshot.
    pub changed: bool,
}

impl Snapshot {
    /// The documents of `collection`, by name.
    pub fn collection<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a Document> + 'a {
        self.documents.iter().filter(move |d| d.path.collection == collection)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A create found a document already there.
    #[error("{0} already exists")]
    AlreadyExists(DocPath),
    /// A replace found the document changed (or deleted) since it was read.
    #[error("{0} was changed by another writer since it was read")]
    Conflict(DocPath),
    /// A collection or name that cannot be a document path.
    #[error("bad document name: {0}")]
    BadName(String),
    /// A sealed value that does not open.
    #[error("a sealed value does not open: {0}")]
    Unsealable(String),
    /// The storage account failed (unreachable, refusing, timing out).
    #[error(transparent)]
    Storage(Error),
}

/// Documents in a storage account, below a prefix.
pub struct Store {
    storage: Arc<Storage>,
    prefix: String,
    /// The documents of the last snapshot by object path, so that the next one reads only
    /// those whose version changed.
    last_snapshot: Mutex<HashMap<String, Document>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("storage", &self.storage.name()).field("prefix", &self.prefix).finish()
    }
}

impl Store {
    /// The store at `prefix` of `storage`; a prefix that leaves the account is refused.
    pub fn new(storage: Arc<Storage>, prefix: &str) -> Result<Store, StoreError> {
        let prefix = object_path(prefix).map_err(|e| StoreError::BadName(format!("prefix '{prefix}': {e}")))?;
        Ok(Store { storage, prefix: prefix.to_string(), last_snapshot: Mutex::default() })
    }

    /// Where the documents are, for logs: the account and the prefix.
    pub fn location(&self) -> String {
        format!("{}/{}", self.storage.name(), self.prefix)
    }

    /// The object path of `collection`'s folder (checked).
    fn folder(&self, collection: &str) -> Result<String, StoreError> {
        check_collection(collection)?;
        Ok(if self.prefix.is_empty() { collection.to_string() } else { format!("{}/{collection}", self.prefix) })
    }

    /// The object path of a document (checked).
    fn object(&self, path: &DocPath) -> Result<String, StoreError> {
        path.check()?;
        Ok(format!("{}/{}.json", self.folder(&path.collection)?, path.name))
    }

    fn location_of(&self, path: &DocPath) -> Result<Path, StoreError> {
        object_path(&self.object(path)?).map_err(|e| StoreError::BadName(e.to_string()))
    }

    /// The document at `path`, if there is one.
    pub async fn get(&self, path: &DocPath) -> Result<Option<Document>, StoreError> {
        match self.storage.read_all_with_meta(&self.object(path)?).await {
            Ok((body, meta)) => Ok(Some(Document { path: path.clone(), body, version: Version::of(&meta) })),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(StoreError::Storage(e)),
        }
    }

    /// Every document of `collection`, sorted by name.
    pub async fn list(&self, collection: &str) -> Result<Vec<Document>, StoreError> {
        let listed = self.storage.list(&self.folder(collection)?).await.map_err(StoreError::Storage)?;
        let mut documents = Vec::with_capacity(listed.len());
        for meta in listed {
            let Some(path) = self.doc_path_of(&meta.location) else { continue };
            // Deleted since the listing: not there any more.
            if let Some(document) = self.get(&path).await? {
                documents.push(document);
            }
        }
        Ok(documents)
    }

    /// Stores a new document; [`StoreError::AlreadyExists`] when one is at `path` already.
    pub async fn create(&self, path: &DocPath, body: Bytes) -> Result<Document, StoreError> {
        let location = self.location_of(path)?;
        match self.storage.put(&location, body.clone(), PutMode::Create).await {
            Ok(put) => {
                Ok(Document { path: path.clone(), body, version: Version { e_tag: put.e_tag, version: put.version } })
            }
            Err(object_store::Error::AlreadyExists { .. }) => Err(StoreError::AlreadyExists(path.clone())),
            Err(e) => Err(StoreError::Storage(Error::storage(path, e))),
        }
    }

    /// Replaces `current` with `body`; [`StoreError::Conflict`] when the stored document is
    /// no longer the version `current` was read at (changed or deleted since).
    pub async fn replace(&self, current: &Document, body: Bytes) -> Result<Document, StoreError> {
        let path = &current.path;
        let location = self.location_of(path)?;
        let expected = UpdateVersion { e_tag: current.version.e_tag.clone(), version: current.version.version.clone() };
        match self.storage.put(&location, body.clone(), PutMode::Update(expected)).await {
            Ok(put) => {
                Ok(Document { path: path.clone(), body, version: Version { e_tag: put.e_tag, version: put.version } })
            }
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                Err(StoreError::Conflict(path.clone()))
            }
            Err(e) => Err(StoreError::Storage(Error::storage(path, e))),
        }
    }

    /// Deletes the document at `path`; whether there was one.
    pub async fn delete(&self, path: &DocPath) -> Result<bool, StoreError> {
        self.storage.delete(&self.location_of(path)?).await.map_err(|e| StoreError::Storage(Error::storage(path, e)))
    }

    /// Every document: one listing of the prefix, and a read of each document that is new
    /// or whose version changed since the previous snapshot (the others are reused). Objects
    /// that are not documents of a known collection are ignored.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let listed = self.storage.list_recursive(&self.prefix).await.map_err(StoreError::Storage)?;
        let previous = self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let reads = listed.into_iter().filter_map(|meta| {
            let path = self.doc_path_of(&meta.location)?;
            let key = meta.location.to_string();
            let known = previous.get(&key).filter(|known| known.version.same_as(&Version::of(&meta))).cloned();
            Some(async move {
                match known {
                    Some(document) => Ok((key, Some(document), false)),
                    // `None`: deleted since the listing.
                    None => Ok((key, self.get(&path).await?, true)),
                }
            })
        });
        let read: Vec<(String, Option<Document>, bool)> =
            futures::stream::iter(reads).buffer_unordered(CONCURRENT_READS).try_collect().await?;
        let mut changed = read.iter().any(|(_, _, fresh)| *fresh);
        let current: HashMap<String, Document> =
            read.into_iter().filter_map(|(key, document, _)| Some((key, document?))).collect();
        changed |= previous.keys().any(|k| !current.contains_key(k));
        let mut documents: Vec<Document> = current.values().cloned().collect();
        documents.sort_by(|a, b| a.path.cmp(&b.path));
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = current;
        Ok(Snapshot { documents, changed })
    }

    /// The document path of an object of the store, if it is one.
    fn doc_path_of(&self, location: &Path) -> Option<DocPath> {
        let object = location.as_ref();
        let relative =
            if self.prefix.is_empty() { object } else { object.strip_prefix(&self.prefix)?.strip_prefix('/')? };
        let (collection, file) = relative.rsplit_once('/')?;
        let path = DocPath { collection: collection.to_string(), name: file.strip_suffix(".json")?.to_string() };
        path.check().ok()?;
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_store() -> Store {
        Store::new(Arc::new(Storage::new("docs", Arc::new(object_store::memory::InMemory::new()))), "ams").unwrap()
    }

    fn local_store(dir: &tempfile::TempDir) -> Store {
        Store::new(Arc::new(Storage::local("docs", dir.path()).unwrap()), "ams").unwrap()
    }

    fn locator(name: &str) -> DocPath {
        DocPath::new(STREAMING_LOCATORS, name).unwrap()
    }

    /// Create, read, replace, conflict and delete, as every backend must do them.
    async fn documents_are_written_only_over_what_was_read(store: Store) {
        let path = locator("loc-1");
        assert!(store.get(&path).await.unwrap().is_none());
        let created = store.create(&path, Bytes::from_static(b"{\"v\":1}")).await.unwrap();
        let again = store.create(&path, Bytes::from_static(b"{\"v\":2}")).await;
        assert!(matches!(again, Err(StoreError::AlreadyExists(_))), "{again:?}");

        let read = store.get(&path).await.unwrap().unwrap();
        assert_eq!(&read.body[..], b"{\"v\":1}");
        let replaced = store.replace(&read, Bytes::from_static(b"{\"v\":3}")).await.unwrap();
        // Both the creation's and the first read's versions are stale now.
        for stale in [&created, &read] {
            let lost = store.replace(stale, Bytes::from_static(b"{\"v\":4}")).await;
            assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
        }
        assert_eq!(&store.get(&path).await.unwrap().unwrap().body[..], b"{\"v\":3}");

        store.create(&DocPath::new(ACCOUNT_FILTERS, "sd").unwrap(), Bytes::from_static(b"{}")).await.unwrap();
        let asset_filter = DocPath::new(&asset_filters("movie"), "first-minute").unwrap();
        store.create(&DocPath::new(ASSETS, "movie").unwrap(), Bytes::from_static(b"{}")).await.unwrap();
        store.create(&asset_filter, Bytes::from_static(b"{}")).await.unwrap();
        let names: Vec<String> = store.list(ASSETS).await.unwrap().into_iter().map(|d| d.path.name).collect();
        assert_eq!(names, ["movie"], "an asset's filters are not assets");
        assert_eq!(store.list(&asset_filters("movie")).await.unwrap()[0].path, asset_filter);

        let snapshot = store.snapshot().await.unwrap();
        let paths: Vec<String> = snapshot.documents.iter().map(|d| d.path.to_string()).collect();
        assert_eq!(
            paths,
            ["accountFilters/sd", "assets/movie", "assets/movie/assetFilters/first-minute", "streamingLocators/loc-1"]
        );
        assert!(snapshot.changed);
        let gets = || store.storage.stats().get_requests.load(std::sync::atomic::Ordering::Relaxed);
        let before = gets();
        assert!(!store.snapshot().await.unwrap().changed, "nothing changed");
        assert_eq!(gets(), before, "unchanged documents are not read again");

        assert!(store.delete(&path).await.unwrap());
        assert!(!store.delete(&path).await.unwrap(), "deleting twice is no error");
        let lost = store.replace(&replaced, Bytes::from_static(b"{}")).await;
        assert!(matches!(lost, Err(StoreError::Conflict(_))), "a deleted document is not replaced: {lost:?}");
        assert!(store.get(&path).await.unwrap().is_none());
        let snapshot = store.snapshot().await.unwrap();
        assert!(snapshot.changed && snapshot.documents.len() == 3);
    }

    /// Many writers at once: exactly one create and one replace of the same version win.
    async fn one_of_concurrent_writers_wins(store: Store) {
        let store = Arc::new(store);
        let path = locator("raced");
        let creates: Vec<_> = (0..8)
            .map(|i| {
                let (store, path) = (store.clone(), path.clone());
                tokio::spawn(async move { store.create(&path, Bytes::from(format!("{{\"writer\":{i}}}"))).await })
            })
            .collect();
        let mut won = 0;
        for create in creates {
            match create.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won, 1);

        let read = store.get(&path).await.unwrap().unwrap();
        let replaces: Vec<_> = (0..8)
            .map(|i| {
                let (store, read) = (store.clone(), read.clone());
                tokio::spawn(async move { store.replace(&read, Bytes::from(format!("{{\"replacer\":{i}}}"))).await })
            })
            .collect();
        let mut winners = Vec::new();
        for replace in replaces {
            match replace.await.unwrap() {
                Ok(document) => winners.push(document.body),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(store.get(&path).await.unwrap().unwrap().body, winners[0]);
    }

    #[tokio::test]
    async fn in_memory_documents() {
        documents_are_written_only_over_what_was_read(memory_store()).await;
        one_of_concurrent_writers_wins(memory_store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn local_documents() {
        let dir = tempfile::tempdir().unwrap();
        documents_are_written_only_over_what_was_read(local_store(&dir)).await;
        assert!(dir.path().join("ams/assets/movie/assetFilters/first-minute.json").is_file());
        let dir = tempfile::tempdir().unwrap();
        one_of_concurrent_writers_wins(local_store(&dir)).await;
    }

    #[tokio::test]
    async fn names_never_leave_their_collection() {
        for (collection, name) in [
            (STREAMING_LOCATORS, ".."),
            (STREAMING_LOCATORS, "."),
            (STREAMING_LOCATORS, "a/b"),
            (STREAMING_LOCATORS, "../../x"),
            (STREAMING_LOCATORS, ""),
            (STREAMING_LOCATORS, "a%2Fb"),
            (STREAMING_LOCATORS, "a~b"),
            (STREAMING_LOCATORS, "a\\b"),
            (STREAMING_LOCATORS, "a\nb"),
            ("secrets", "x"),
            ("assets/../streamingLocators", "x"),
            ("assets/a/b/assetFilters", "x"),
        ] {
            assert!(matches!(DocPath::new(collection, name), Err(StoreError::BadName(_))), "{collection} {name}");
        }
        assert!(DocPath::new(STREAMING_LOCATORS, &"a".repeat(261)).is_err());
        // AMS names may hold spaces, dots and letters beyond ASCII.
        for name in ["My Movie 2026", "ladder.v2", "filme-ação", &"a".repeat(260)] {
            assert!(DocPath::new(ASSETS, name).is_ok(), "{name}");
        }
        assert!(DocPath::new(&asset_filters(".."), "x").is_err());
        // Fields are public: the store checks them again.
        let store = memory_store();
        let sneaky = DocPath { collection: STREAMING_LOCATORS.into(), name: "../../outside".into() };
        assert!(matches!(store.create(&sneaky, Bytes::new()).await, Err(StoreError::BadName(_))));
        assert!(matches!(store.get(&sneaky).await, Err(StoreError::BadName(_))));
        assert!(Store::new(store.storage.clone(), "../up").is_err());
    }
}
