//! The origin's request path without HTTP: locator → asset → packager, with moka caches in
//! front of each expensive step.
//!
//! Cache keys name content, not URLs: a segment is keyed by its source file, the file's
//! version and the samples it holds, so every locator (and every manifest filter or URL
//! spelling) of the same asset shares one cached copy. Concurrent misses of one key are
//! coalesced by moka: N simultaneous requests cause one build and one storage read.
//!
//! Failures are remembered briefly ([`failures`]), and an asset whose storage fails after its
//! TTL is served from its last good load for `stale_if_error_secs` ([`Origin::reload`]).

mod failures;

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use xxhash_rust::xxh3::Xxh3;

use crate::config::{Config, ConfigError, Policy};
use crate::error::Error;
use crate::output;
use crate::plan::filter;
use crate::plan::filter::FilterConfig;
use crate::plan::url::{Encryption, Format};
use crate::plan::url::{ParsedUrl, Resource};
use crate::protect::drm::DrmSystems;
use crate::protect::token::{KeyAccess, TokenVerifier};
use crate::protect::ContentKey;
use crate::serve::metrics::Metrics;
use crate::source::asset::{self, Asset};
use crate::source::index::FileIndex;
use crate::source::index::TrackKind;
use crate::source::storage::ObjectVersion;
use crate::source::storage::Storage;
use crate::source::timeline::SegmentPolicy;
use failures::{Failed, FailureMemory};

/// A published locator, resolved against its storage account.
#[derive(Debug, Clone)]
pub struct Locator {
    pub id: String,
    pub storage: Arc<Storage>,
    /// Folder of the asset inside the storage account.
    pub asset_folder: String,
    pub policy: Policy,
    /// Filters applied to every manifest of this locator.
    pub default_filters: Vec<String>,
    /// Content keys; the first encrypts.
    pub keys: Vec<ContentKey>,
    /// `None`: keys are open to anyone with the URL; else a JWT is required.
    pub key_access: Option<Arc<TokenVerifier>>,
    /// DRM systems signalled for Common Encryption.
    pub drm: DrmSystems,
    /// When set, every URL of the locator must be signed ([`crate::protect::url_signing`]).
    pub url_signing_key: Option<crate::protect::url_signing::SigningKey>,
    /// What encrypted requests need, resolved once at start (None for clear locators).
    encryption: Option<LocatorEncryption>,
}

/// A protected locator's encryption settings, derived once from its config so the request
/// path only borrows them.
#[derive(Debug, Clone)]
struct LocatorEncryption {
    /// The key endpoint path players fetch the first key from: `/{locator}/key/{kid}`.
    key_uri: String,
    /// xxh3 of the content key: encrypted segment bytes differ per key (never the key itself).
    key_fingerprint: u64,
    /// xxh3 of everything encrypted manifests and init segments embed besides the asset: the
    /// key (PlayReady checksum), the locator id (key URIs) and the DRM signalling.
    signalling_fingerprint: u64,
}

impl LocatorEncryption {
    fn new(id: &str, keys: &[ContentKey], drm: &DrmSystems) -> Option<Self> {
        let key = keys.first()?;
        let mut h = Xxh3::new();
        h.update(&key.key);
        h.update(id.as_bytes());
        h.update(format!("{drm:?}").as_bytes());
        Some(LocatorEncryption {
            key_uri: format!("/{id}/key/{}", key.kid_hex()),
            key_fingerprint: xxhash_rust::xxh3::xxh3_64(&key.key),
            signalling_fingerprint: h.digest(),
        })
    }
}

impl Locator {
    /// What the packager needs to encrypt this locator's output, when the policy encrypts.
    fn protection(&self) -> Option<output::Protection<'_>> {
        let key = self.keys.first()?;
        let encryption = self.encryption.as_ref()?;
        Some(output::Protection { key, key_uri: &encryption.key_uri, locator: &self.id, drm: &self.drm })
    }

    /// The key with id `kid`, for the key endpoint.
    pub fn key(&self, kid: &[u8; 16]) -> Option<&ContentKey> {
        self.keys.iter().find(|k| &k.kid == kid)
    }
}

/// A built response body with what HTTP caching needs to know about it.
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
    /// Segments and init segments are immutable; manifests are VOD-long.
    pub is_media: bool,
    /// Memory the entry keeps alive, for the cache weigher: at least `len`, and the whole
    /// source read when the body is zero-copy slices of it (a clear segment of an interleaved
    /// file holds the other tracks' bytes between its samples too).
    pub weight: u64,
}

impl Built {
    fn new(output: output::Output, identity: u64, sources: &[&ObjectVersion], is_media: bool) -> Self {
        let len = output.len();
        Built {
            content_type: output.content_type,
            parts: output.parts,
            len,
            etag: format!("\"{identity:016x}-{len:x}\""),
            last_modified: sources.iter().map(|v| v.last_modified_unix).max().unwrap_or(0),
            is_media,
            weight: len,
        }
    }
}

/// Where a request's resource lives: which asset of which storage account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AssetKey {
    storage: String,
    folder: String,
    name: String,
}

impl AssetKey {
    fn of(locator: &Locator, name: &str) -> Self {
        AssetKey {
            storage: locator.storage.name().to_string(),
            folder: locator.asset_folder.clone(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ManifestKey {
    asset: AssetKey,
    resource: Resource,
    extension: bool,
    /// Every filter applied: the locator's defaults, then the request's.
    filters: Vec<String>,
    /// Encrypted manifests and init segments embed the locator's key URI and DRM signalling
    /// (licence URLs, PSSH data, the PlayReady key checksum): their fingerprint (never the
    /// key), so cache entries and ETags are per signalling.
    protection_fingerprint: Option<u64>,
}

/// The bytes of a media segment are fully determined by these fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SegmentKey {
    storage: String,
    file: String,
    version: ObjectVersion,
    track_position: usize,
    first_sample: u32,
    sample_count: u32,
    sequence_number: u32,
    /// Segment bytes differ per container and encryption (not per URL spelling or locator).
    format: Format,
    encryption: Option<Encryption>,
    /// xxh3 of the content key: encrypted bytes differ per key. Never the key itself.
    key_fingerprint: Option<u64>,
    /// HLS v3 TS segments also hold the default audio's segment: its file, version, track
    /// and samples.
    muxed_audio: Option<(String, ObjectVersion, usize, u32, u32)>,
}

/// Hash of everything that determines a response's bytes, for its ETag. The crate version
/// is part of it so a new packager build never reuses an old build's validators. Source
/// versions contribute size and mtime, and their ETag when every replica sees the same one
/// (cloud stores: a replaced object gets a new ETag even with the same size and second).
fn identity_of(key: &impl Hash, sources: &[&ObjectVersion], shared_etags: bool) -> u64 {
    let mut h = Xxh3::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    // Hash through a stable byte form: `Hash` impls of std types are stable within a build
    // and our keys are plain data.
    key.hash(&mut HashWriter(&mut h));
    for v in sources {
        h.update(&v.size.to_le_bytes());
        h.update(&v.last_modified_unix.to_le_bytes());
        if let Some(etag) = v.etag.as_ref().filter(|_| shared_etags) {
            h.update(etag.as_bytes());
        }
    }
    h.digest()
}

struct HashWriter<'a>(&'a mut Xxh3);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        self.0.digest()
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// An asset as last loaded from storage.
struct LoadedAsset {
    asset: Arc<Asset>,
    loaded_at: Instant,
    /// Held by the one request reloading the asset once its TTL ran out.
    reloading: tokio::sync::Mutex<()>,
    /// When the latest reload attempt began, milliseconds after `loaded_at` (`u64::MAX`: none).
    reload_began_ms: AtomicU64,
    /// A reload failed on storage: answers from this load are stale until one succeeds.
    stale: AtomicBool,
}

impl LoadedAsset {
    fn new(asset: Asset) -> Self {
        LoadedAsset {
            asset: Arc::new(asset),
            loaded_at: Instant::now(),
            reloading: tokio::sync::Mutex::new(()),
            reload_began_ms: AtomicU64::new(u64::MAX),
            stale: AtomicBool::new(false),
        }
    }

    /// How long after `loaded_at` the latest reload attempt began.
    fn reload_began(&self) -> Option<Duration> {
        let ms = self.reload_began_ms.load(Ordering::Relaxed);
        (ms != u64::MAX).then(|| Duration::from_millis(ms))
    }
}

/// The origin: storage accounts, locators, caches and metrics.
pub struct Origin {
    storages: Vec<Arc<Storage>>,
    locators: HashMap<String, Locator>,
    filters: HashMap<String, FilterConfig>,
    segment_policy: SegmentPolicy,
    /// Loaded assets, kept `asset_ttl + stale_if_error` so a reload that fails on storage can
    /// fall back to the last good load.
    assets: Cache<AssetKey, Arc<LoadedAsset>>,
    asset_ttl: Duration,
    stale_if_error: Duration,
    /// File indexes by (storage, path), kept across asset reloads: a reload lists the folder
    /// and reuses every index whose file version is unchanged, so files are read once.
    indexes: Cache<(String, String), Arc<FileIndex>>,
    manifests: Cache<ManifestKey, Arc<Built>>,
    segments: Cache<SegmentKey, Arc<Built>>,
    /// Failed loads and builds, remembered for `not_found_ttl_secs` or `failure_ttl_secs`.
    failures: FailureMemory,
    /// Least time between reload attempts of an asset whose storage fails.
    failure_ttl: Duration,
    /// Source bytes that uncached segment builds may hold at once (`limits.build_memory_mib`).
    build_memory: Arc<BuildBudget>,
    pub metrics: Arc<Metrics>,
}

const MIB: u64 = 1024 * 1024;

/// Weigher for byte-weighted caches (moka weighs in u32).
fn weigh_built<K>(_: &K, v: &Arc<Built>) -> u32 {
    v.weight.min(u32::MAX as u64) as u32
}

/// A memory budget for segment builds in progress: a build holds its source bytes (the reads
/// its plan lists, see `output::source`) until its segment is cached, so many clients asking
/// for different uncached segments would otherwise hold an unbounded amount. Counting bytes rather than builds lets hundreds of
/// small audio segments build at once while 4K video segments take turns.
#[derive(Debug)]
struct BuildBudget {
    /// One permit per KiB.
    kib: tokio::sync::Semaphore,
    total_kib: u32,
}

impl BuildBudget {
    fn new(bytes: u64) -> Self {
        let total_kib = bytes.div_ceil(1024).clamp(1, u32::MAX as u64) as u32;
        BuildBudget { kib: tokio::sync::Semaphore::new(total_kib as usize), total_kib }
    }

    /// Waits until `bytes` fit the budget; a build larger than the whole budget waits for all
    /// of it, so it runs alone rather than never.
    async fn reserve(&self, bytes: u64) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib as u64) as u32;
        self.kib.acquire_many(kib).await
    }
}

fn eviction_counter<K: Send + Sync + 'static, V: Send + Sync + 'static>(
    metrics: &Arc<Metrics>,
    cache: &'static str,
) -> impl Fn(Arc<K>, V, moka::notification::RemovalCause) + Send + Sync + 'static {
    let counter = metrics.cache_evictions.with_label_values(&[cache]);
    move |_, _, cause| {
        if cause.was_evicted() {
            counter.inc();
        }
    }
}

impl Origin {
    /// Builds the origin from a checked configuration.
    pub fn from_config(config: &Config) -> Result<Origin, ConfigError> {
        let mut storages = Vec::new();
        for s in &config.storage {
            let storage =
                Storage::open(s, &config.base_dir).map_err(|e| ConfigError(format!("storage '{}': {e}", s.name)))?;
            storages.push(Arc::new(storage));
        }
        Self::with_storages(config, storages)
    }

    /// Builds the origin from a configuration with already opened storage accounts (any
    /// `ObjectStore`, e.g. an instrumented one in tests); `config.storage` is not read, and
    /// locators name accounts of `storages` by [`Storage::name`].
    pub fn with_storages(config: &Config, storages: Vec<Arc<Storage>>) -> Result<Origin, ConfigError> {
        let mut locators = HashMap::new();
        for l in &config.locator {
            let storage = storages
                .iter()
                .find(|s| s.name() == l.storage)
                .cloned()
                .ok_or_else(|| ConfigError(format!("locator '{}': unknown storage '{}'", l.id, l.storage)))?;
            let keys = l.content_keys().map_err(|e| ConfigError(format!("locator '{}': {e}", l.id)))?;
            let drm = l.drm.systems();
            locators.insert(
                l.id.clone(),
                Locator {
                    id: l.id.clone(),
                    storage,
                    asset_folder: l.asset.trim_matches('/').to_string(),
                    policy: l.policy,
                    default_filters: l.filters.clone(),
                    encryption: LocatorEncryption::new(&l.id, &keys, &drm),
                    keys,
                    drm,
                    url_signing_key: l
                        .url_signing_key()
                        .map_err(|e| ConfigError(format!("locator '{}': {e}", l.id)))?,
                    key_access: match &l.key_access {
                        Some(KeyAccess::Token(policy)) => Some(Arc::new(
                            TokenVerifier::new(policy).map_err(|e| ConfigError(format!("locator '{}': {e}", l.id)))?,
                        )),
                        Some(KeyAccess::Open) | None => None,
                    },
                },
            );
        }
        let metrics = Arc::new(Metrics::new());
        let c = &config.cache;
        let asset_ttl = Duration::from_secs(c.asset_ttl_secs.max(1));
        let stale_if_error = Duration::from_secs(c.stale_if_error_secs);
        let assets = Cache::builder()
            // An asset's weight: its sample tables, roughly 25 bytes per sample.
            .weigher(|_: &AssetKey, a: &Arc<LoadedAsset>| {
                let samples: usize = a.asset.tracks.iter().map(|t| t.index().samples.len()).sum();
                (samples.saturating_mul(25) + 4096).min(u32::MAX as usize) as u32
            })
            .max_capacity(c.index_mib * MIB)
            .time_to_live(asset_ttl + stale_if_error)
            .eviction_listener(eviction_counter(&metrics, "asset"))
            .build();
        let indexes = Cache::builder()
            .weigher(|_: &(String, String), f: &Arc<FileIndex>| {
                let samples: usize = f.tracks.iter().map(|t| t.samples.len()).sum();
                (samples.saturating_mul(25) + 1024).min(u32::MAX as usize) as u32
            })
            .max_capacity(c.index_mib * MIB)
            .eviction_listener(eviction_counter(&metrics, "index"))
            .build();
        let manifests = Cache::builder()
            .weigher(weigh_built)
            .max_capacity(c.manifest_mib * MIB)
            .time_to_live(asset_ttl)
            .eviction_listener(eviction_counter(&metrics, "manifest"))
            .support_invalidation_closures()
            .build();
        let segments = Cache::builder()
            // LRU rather than moka's default TinyLFU admission: behind a CDN most segment
            // requests are first requests (edges and shields ask once each), and TinyLFU turns
            // away a fresh segment in favour of older ones, so the next edge asking for it
            // rebuilds it, and the rejected copy lives on only in its response. With LRU the
            // segments being sent are the cached ones, and memory stays at the capacity.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(weigh_built)
            // `segment_mib` covers segments being built too: builds may hold
            // `build_memory_mib` of it (the config check keeps that below `segment_mib`).
            .max_capacity(c.segment_mib.saturating_sub(config.limits.build_memory_mib) * MIB)
            .eviction_listener(eviction_counter(&metrics, "segment"))
            .build();
        Ok(Origin {
            storages,
            locators,
            filters: config.filter.iter().map(|f| (f.name.clone(), f.clone())).collect(),
            segment_policy: SegmentPolicy { target_secs: config.segment_duration },
            assets,
            asset_ttl,
            stale_if_error,
            indexes,
            manifests,
            segments,
            failures: FailureMemory::new(
                Duration::from_secs(c.not_found_ttl_secs),
                Duration::from_secs(c.failure_ttl_secs),
            ),
            failure_ttl: Duration::from_secs(c.failure_ttl_secs),
            build_memory: Arc::new(BuildBudget::new(config.limits.build_memory_mib * MIB)),
            metrics,
        })
    }

    pub fn locator(&self, id: &str) -> Option<&Locator> {
        self.locators.get(id)
    }

    pub fn locators(&self) -> impl Iterator<Item = &Locator> {
        self.locators.values()
    }

    /// Counts a cache lookup as hit or miss.
    fn count_lookup(&self, cache: &str, fresh: bool) {
        let result = if fresh { "miss" } else { "hit" };
        self.metrics.cache_lookups.with_label_values(&[cache, result]).inc();
    }

    /// How long CDNs may serve a cached response while the origin fails (`stale-if-error`),
    /// seconds: as long as the origin itself serves stale.
    pub fn stale_if_error_secs(&self) -> u64 {
        self.stale_if_error.as_secs()
    }

    /// `key`'s value in `cache`, built by `build` on a miss unless the same build failed within
    /// its remembered time ([`FailureMemory`]); concurrent misses of one key share one build.
    /// With the value: whether this request built it.
    async fn get_or_build<K, V>(
        &self,
        cache: &Cache<K, V>,
        name: &'static str,
        key: K,
        build: impl Future<Output = Result<V, Error>>,
    ) -> Result<(V, bool), Arc<Error>>
    where
        K: Hash + Eq + Clone + Into<Failed> + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if let Some(value) = cache.get(&key).await {
            self.count_lookup(name, false);
            return Ok((value, false));
        }
        let failed: Failed = key.clone().into();
        let remembered = self.failures.recall(&failed).await;
        self.count_lookup("failure", remembered.is_none());
        if let Some(error) = remembered {
            return Err(error);
        }
        let entry = cache.entry(key).or_try_insert_with(self.failures.remembering(failed, build)).await?;
        self.count_lookup(name, entry.is_fresh());
        let fresh = entry.is_fresh();
        Ok((entry.into_value(), fresh))
    }

    /// The loaded asset `name` of `locator`: cached for `asset_ttl_secs`, then reloaded
    /// ([`Origin::reload`]); concurrent first loads coalesced, failures remembered.
    async fn asset(&self, locator: &Locator, name: &str) -> Result<Arc<LoadedAsset>, Arc<Error>> {
        let key = AssetKey::of(locator, name);
        while let Some(loaded) = self.assets.get(&key).await {
            if loaded.loaded_at.elapsed() < self.asset_ttl {
                self.count_lookup("asset", false);
                return Ok(loaded);
            }
            if let Some(answer) = self.reload(&key, &locator.storage, loaded).await {
                return answer;
            }
        }
        let load = self.load_asset(&locator.storage, &key);
        let (loaded, _) = self.get_or_build(&self.assets, "asset", key.clone(), load).await?;
        Ok(loaded)
    }

    /// An asset past its TTL. One request at a time reloads it. The others meanwhile answer
    /// from the previous load when that reload began within `failure_ttl_secs` of the TTL
    /// running out (a hot asset: a replaced file still shows within a few seconds of the TTL)
    /// or its storage is known to fail, rather than queue behind a storage request that may
    /// hang until its timeout; otherwise (an asset not asked for a while) they wait for that
    /// reload and return `None`: look again. A reload that fails on storage falls back to the
    /// previous load while it is younger than TTL + `stale_if_error_secs`; the next attempt is
    /// `failure_ttl_secs` after the last one began, so an outage costs one storage request per
    /// asset every few seconds, not one per player request, and storage coming back is noticed
    /// within those seconds. Missing or corrupt on reload is answered as such: the asset was
    /// deleted or replaced.
    async fn reload(
        &self,
        key: &AssetKey,
        storage: &Storage,
        previous: Arc<LoadedAsset>,
    ) -> Option<Result<Arc<LoadedAsset>, Arc<Error>>> {
        let Ok(_reloading) = previous.reloading.try_lock() else {
            let hot = previous.reload_began().is_some_and(|b| b < self.asset_ttl + self.failure_ttl);
            if hot || previous.stale.load(Ordering::Relaxed) {
                return Some(Ok(self.answer_from(&previous)));
            }
            drop(previous.reloading.lock().await);
            return None;
        };
        let age = previous.loaded_at.elapsed();
        if previous.reload_began().is_some_and(|b| age < b + self.failure_ttl) {
            return Some(Ok(self.answer_from(&previous)));
        }
        previous.reload_began_ms.store(age.as_millis().min(u64::MAX as u128 - 1) as u64, Ordering::Relaxed);
        let load = self.load_asset(storage, key);
        let result = self.failures.remembering(key.clone().into(), load).await;
        let within_window = previous.loaded_at.elapsed() < self.asset_ttl + self.stale_if_error;
        match result {
            Ok(loaded) => {
                self.assets.insert(key.clone(), loaded.clone()).await;
                self.count_lookup("asset", true);
                if previous.stale.load(Ordering::Relaxed) {
                    tracing::info!(
                        storage = %key.storage, folder = %key.folder, asset = %key.name,
                        "storage answers again: asset reloaded, no longer stale"
                    );
                }
                Some(Ok(loaded))
            }
            Err(e) if e.is_storage_failure() && within_window => {
                if !previous.stale.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        storage = %key.storage, folder = %key.folder, asset = %key.name, error = %e,
                        "asset reload failed: serving its last good load for up to {} s",
                        self.stale_if_error.as_secs()
                    );
                }
                Some(Ok(self.answer_from(&previous)))
            }
            Err(e) => {
                self.assets.invalidate(key).await;
                Some(Err(Arc::new(e)))
            }
        }
    }

    /// `loaded` as the answer to a request, counted as a hit (or a stale answer by `serve`).
    fn answer_from(&self, loaded: &Arc<LoadedAsset>) -> Arc<LoadedAsset> {
        self.count_lookup("asset", false);
        loaded.clone()
    }

    /// Lists the asset's folder and indexes its files, reusing every file index whose
    /// version is unchanged.
    async fn load_asset(&self, storage: &Storage, key: &AssetKey) -> Result<Arc<LoadedAsset>, Error> {
        let (source, versions) = asset::resolve_source_with_versions(storage, &key.folder, Some(&key.name)).await?;
        let mut known = HashMap::new();
        for (path, version) in &versions {
            if let Some(index) = self.indexes.get(&(key.storage.clone(), path.clone())).await {
                if &index.version == version {
                    known.insert(path.clone(), index);
                }
            }
        }
        let asset = asset::load_reusing(storage, &source, self.segment_policy, &known).await?;
        for t in &asset.tracks {
            self.indexes.insert((key.storage.clone(), t.file.clone()), t.file_index.clone()).await;
        }
        Ok(Arc::new(LoadedAsset::new(asset)))
    }

    /// Serves one parsed request for `locator`/`asset_name`.
    pub async fn serve(
        &self,
        locator: &Locator,
        asset_name: &str,
        request: &ParsedUrl,
    ) -> Result<Arc<Built>, Arc<Error>> {
        let encryption = request.resource.encryption();
        if !locator.policy.allows(encryption) {
            let asked = encryption.map_or("clear output", |e| e.as_str());
            return Err(Arc::new(Error::Forbidden(format!(
                "locator '{}' has streaming policy '{}', which does not allow {asked}",
                locator.id,
                locator.policy.as_str()
            ))));
        }
        let loaded = self.asset(locator, asset_name).await?;
        let built = match self.build(locator, &loaded.asset, request).await {
            Ok(built) => built,
            Err(e) => {
                if matches!(*e, Error::SourceChanged { .. }) {
                    // A file was replaced since this load indexed it: the next request loads
                    // the asset again (and rebuilds its manifests) instead of failing until the
                    // TTL runs out.
                    let key = AssetKey::of(locator, asset_name);
                    if self.assets.get(&key).await.is_some_and(|current| Arc::ptr_eq(&current, &loaded)) {
                        self.assets.invalidate(&key).await;
                        let (storage, folder) = (key.storage, key.folder);
                        // Only fails when closures are not enabled on the cache, and they are.
                        let _ = self
                            .manifests
                            .invalidate_entries_if(move |k, _| k.asset.storage == storage && k.asset.folder == folder);
                    }
                }
                return Err(e);
            }
        };
        if loaded.stale.load(Ordering::Relaxed) {
            let cache = if matches!(request.resource, Resource::Segment { .. }) { "segment" } else { "manifest" };
            self.metrics.stale_served.with_label_values(&[cache]).inc();
        }
        Ok(built)
    }

    /// The response body `request` asks of `asset`: from the cache, or built.
    async fn build(&self, locator: &Locator, asset: &Asset, request: &ParsedUrl) -> Result<Arc<Built>, Arc<Error>> {
        let encryption = request.resource.encryption();
        let storage = &locator.storage;
        // Only encrypted requests carry the key (the policy check in `serve` guarantees a clear
        // request is allowed clear, and an encrypted one has keys).
        let protection = encryption.and_then(|_| locator.protection());
        let fingerprints = encryption.and(locator.encryption.as_ref());
        match &request.resource {
            Resource::Segment { bitrate, track, time, format, .. } => {
                let track = asset
                    .track(track, *bitrate)
                    .ok_or_else(|| Arc::new(Error::NotFound(format!("track '{track}' at bitrate {bitrate}"))))?;
                let (number, segment) = track.timeline.find(*time).ok_or_else(|| {
                    Arc::new(Error::NotFound(format!("no segment of track '{}' starts at {time}", track.name)))
                })?;
                let muxed_audio_segment = (*format == Format::M3u8AaplV3 && track.kind == TrackKind::Video)
                    .then(|| asset.default_audio())
                    .flatten()
                    .and_then(|a| a.timeline.segments.get(number).map(|s| (a, s)));
                let muxed_audio = muxed_audio_segment.map(|(a, s)| {
                    (a.file.clone(), a.file_index.version.clone(), a.track_position, s.first_sample, s.sample_count)
                });
                let key = SegmentKey {
                    storage: storage.name().to_string(),
                    file: track.file.clone(),
                    version: track.file_index.version.clone(),
                    track_position: track.track_position,
                    first_sample: segment.first_sample,
                    sample_count: segment.sample_count,
                    sequence_number: number as u32 + 1,
                    format: match format {
                        // HLS-CMAF and DASH-CMAF segments are the same bytes: one cache entry.
                        Format::MpdTimeCmaf => Format::M3u8Cmaf,
                        other => *other,
                    },
                    encryption,
                    key_fingerprint: fingerprints.map(|f| f.key_fingerprint),
                    muxed_audio,
                };
                let build = async {
                    // What the build reads (the planned runs, not the whole span); a layout no
                    // bounded plan reads fails here (and is remembered), before anything is
                    // reserved or read.
                    let mut source_bytes = 0u64;
                    for (t, s) in std::iter::once((track, segment)).chain(muxed_audio_segment) {
                        let plan =
                            crate::plan::reads::plan_reads(t.index(), s).map_err(|e| output::spread_error(t, s, &e))?;
                        source_bytes += plan.bytes();
                    }
                    // The budget's semaphore is never closed, so this cannot fail.
                    let _reserved = self
                        .build_memory
                        .reserve(source_bytes)
                        .await
                        .map_err(|e| Error::Storage { path: key.file.clone(), message: e.to_string() })?;
                    let started = Instant::now();
                    let output =
                        output::render(storage, asset, &request.resource, request.extension, protection).await?;
                    self.metrics.segment_build_seconds.observe(started.elapsed().as_secs_f64());
                    // Local stores derive ETags from inode numbers, which differ between
                    // replicas holding the file: the response ETag leaves them out.
                    let version = key.version.clone();
                    let shared_etags = storage.shared_etags();
                    let mut recipe = key.clone();
                    if !shared_etags {
                        recipe.version.etag = None;
                        if let Some(audio) = &mut recipe.muxed_audio {
                            audio.1.etag = None;
                        }
                    }
                    let identity = identity_of(&recipe, &[&version], shared_etags);
                    let mut built = Built::new(output, identity, &[&version], true);
                    built.weight = built.weight.max(source_bytes);
                    Ok(Arc::new(built))
                };
                let (built, fresh) = self.get_or_build(&self.segments, "segment", key.clone(), build).await?;
                if fresh {
                    // moka evicts in batches (after 64 writes or on a timer), so a walk over
                    // uncached 1.5 MB segments would hold ~100 MB beyond the capacity until the
                    // next batch. Evicting now keeps memory at the configured capacity.
                    self.segments.run_pending_tasks().await;
                }
                Ok(built)
            }
            resource => {
                let is_media = matches!(resource, Resource::Init { .. });
                let request_filters: &[String] = match resource {
                    Resource::Manifest(options) => &options.filters,
                    Resource::MediaPlaylist { filters, .. } => filters,
                    _ => &[],
                };
                let mut filter_names = locator.default_filters.clone();
                for name in request_filters {
                    if !filter_names.contains(name) {
                        filter_names.push(name.clone());
                    }
                }
                let filters = filter_names
                    .iter()
                    .map(|name| {
                        self.filters.get(name).ok_or_else(|| Arc::new(Error::NotFound(format!("filter '{name}'"))))
                    })
                    .collect::<Result<Vec<&FilterConfig>, _>>()?;
                let key = ManifestKey {
                    asset: AssetKey::of(locator, &asset.name),
                    resource: resource.clone(),
                    extension: request.extension,
                    filters: filter_names,
                    protection_fingerprint: fingerprints.map(|f| f.signalling_fingerprint),
                };
                let build = async {
                    let filtered = filter::apply(asset, &filters)?;
                    let output = output::render(storage, &filtered, resource, request.extension, protection).await?;
                    let versions: Vec<&ObjectVersion> = asset.tracks.iter().map(|t| &t.file_index.version).collect();
                    let identity = identity_of(&key, &versions, storage.shared_etags());
                    Ok(Arc::new(Built::new(output, identity, &versions, is_media)))
                };
                let (built, _) = self.get_or_build(&self.manifests, "manifest", key.clone(), build).await?;
                Ok(built)
            }
        }
    }

    /// Refreshes cache and storage gauges before a metrics scrape.
    pub async fn sync_metrics(&self) {
        // moka counts entries and weights lazily: apply pending inserts before reading them.
        self.assets.run_pending_tasks().await;
        self.indexes.run_pending_tasks().await;
        self.manifests.run_pending_tasks().await;
        self.segments.run_pending_tasks().await;
        let (failure_entries, failure_bytes) = self.failures.size().await;
        for (name, entries, bytes) in [
            ("failure", failure_entries, failure_bytes),
            ("asset", self.assets.entry_count(), self.assets.weighted_size()),
            ("index", self.indexes.entry_count(), self.indexes.weighted_size()),
            ("manifest", self.manifests.entry_count(), self.manifests.weighted_size()),
            ("segment", self.segments.entry_count(), self.segments.weighted_size()),
        ] {
            self.metrics.cache_entries.with_label_values(&[name]).set(entries as i64);
            self.metrics.cache_bytes.with_label_values(&[name]).set(bytes as i64);
        }
        for s in &self.storages {
            self.metrics.sync_storage(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn build_budget_counts_bytes_and_lets_an_oversized_build_run_alone() {
        let budget = BuildBudget::new(4 * 1024 * 1024);
        let a = budget.reserve(3 * 1024 * 1024).await.unwrap();
        // 1.5 MiB more does not fit next to the first 3 MiB…
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1536 * 1024)).await;
        assert!(waiting.is_err(), "a build beyond the budget must wait");
        // …but many small ones do.
        let small: Vec<_> = futures::future::join_all((0..10).map(|_| budget.reserve(100 * 1024))).await;
        assert!(small.iter().all(|p| p.is_ok()));
        drop((a, small));
        // Larger than the whole budget: waits for all of it, then runs.
        let huge = tokio::time::timeout(Duration::from_secs(1), budget.reserve(64 * 1024 * 1024)).await;
        assert!(matches!(huge, Ok(Ok(_))));
    }
}
