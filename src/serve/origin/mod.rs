//! The origin's request path without HTTP, one step per function: plan the request
//! ([`crate::plan`]), look it up in the caches, fetch the source bytes the plan names
//! ([`fetch`]), package them ([`crate::output`], which encrypts as the plan says).
//!
//! Cache keys name content, not URLs ([`keys`]). Concurrent misses of one key are coalesced
//! by moka: N simultaneous requests cause one build and one storage read.
//!
//! Failures are remembered briefly ([`failures`]), and an asset whose storage fails after its
//! TTL is served from its last good load for `stale_if_error_secs` ([`assets`]).

mod assets;
mod budget;
mod built;
mod download;
mod failures;
mod fetch;
mod keys;
mod live;
mod thumbnail;

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::config::{Config, ConfigError};
use crate::error::{Error, Result};
use crate::output::{self, Output};
use crate::plan::catalog::Catalog;
use crate::plan::live_event::LiveEvent;
use crate::plan::locator::Locator;
use crate::plan::thumbnails::ThumbnailSettings;
use crate::plan::url::{ParsedUrl, Resource};
use crate::plan::{Build, DocumentPlan, Plan, Protection, SegmentPlan};
use crate::serve::metrics::Metrics;
use crate::source::asset::Asset;
use crate::source::index::FileIndex;
use crate::source::storage::{ObjectVersion, Storage};
use crate::source::timeline::SegmentPolicy;
use crate::store::StoreHealth;
use assets::LoadedAsset;
use budget::BuildBudget;
pub use built::{http_date, Built, HeaderValues};
pub use download::Download;
use failures::{Failed, FailureMemory};
use keys::{identity_of, AssetKey, ManifestKey, SegmentKey};

/// The origin: storage accounts, locators, caches and metrics.
pub struct Origin {
    storages: Vec<Arc<Storage>>,
    /// What the config file publishes; the store's catalog is built on a copy of it.
    config_catalog: Catalog,
    /// What is published now: swapped whole when the store changes.
    catalog: RwLock<Arc<Catalog>>,
    /// How reading the store goes, when one is configured (`/readyz` says it).
    store_health: RwLock<Option<StoreHealth>>,
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
    /// When this process last stored a fragment of a live event, by storage account and folder:
    /// a cached load older than that is reloaded by the next request, not at its TTL.
    live_stored: std::sync::Mutex<HashMap<String, HashMap<String, Instant>>>,
    /// Least time between reload attempts of an asset whose storage fails.
    failure_ttl: Duration,
    /// Source bytes that uncached segment builds may hold at once (`limits.build_memory_mib`).
    build_memory: Arc<BuildBudget>,
    /// How thumbnail tiles are made (`None`: off), and the tile builds that may run at once.
    thumbnails: Option<ThumbnailSettings>,
    thumbnail_builds: Arc<tokio::sync::Semaphore>,
    pub metrics: Arc<Metrics>,
}

const MIB: u64 = 1024 * 1024;

/// Weigher for byte-weighted caches (moka weighs in u32).
fn weigh_built<K>(_: &K, v: &Arc<Built>) -> u32 {
    v.weight.min(u32::MAX as u64) as u32
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
        let mut catalog = Catalog::default();
        for f in &config.filter {
            let filter = f.filter().map_err(|e| ConfigError(format!("filter '{}': {e}", f.name)))?;
            catalog.insert_account_filter(filter);
        }
        for l in &config.locator {
            let storage = storages
                .iter()
                .find(|s| s.name() == l.storage)
                .cloned()
                .ok_or_else(|| ConfigError(format!("locator '{}': unknown storage '{}'", l.id, l.storage)))?;
            // Built when the config was checked.
            let access = l.access.clone().ok_or_else(|| ConfigError(format!("locator '{}': not checked", l.id)))?;
            catalog.insert_locator(Locator {
                id: l.id.clone(),
                storage,
                asset_folder: l.asset.trim_matches('/').to_string(),
                asset_name: None,
                start_time: l.start_time,
                end_time: l.end_time,
                streaming: true,
                downloads: l.downloads,
                policy: access.policy,
                default_filters: l.filters.clone(),
                key_access: access.key_access,
                url_signing_key: access.url_signing_key,
            });
        }
        for e in &config.live_event {
            let refuse = |problem: String| ConfigError(format!("live_event '{}': {problem}", e.name));
            let storage = storages.iter().find(|s| s.name() == e.storage).cloned();
            catalog.insert_live_event(LiveEvent {
                name: e.name.clone(),
                access_token: e.access_token().map_err(refuse)?,
                storage: storage.ok_or_else(|| refuse(format!("unknown storage '{}'", e.storage)))?,
                folder: e.folder.trim_matches('/').to_string(),
                manifest_name: e.manifest_name.clone(),
                dvr_window_secs: e.dvr_window_secs,
            });
        }
        let metrics = Arc::new(Metrics::new());
        let c = &config.cache;
        let asset_ttl = Duration::from_secs(c.asset_ttl_secs.max(1));
        let stale_if_error = Duration::from_secs(c.stale_if_error_secs);
        let assets = Cache::builder()
            // An asset's weight: its sample tables, roughly 25 bytes per sample, and its
            // timelines (a live event's are all it has: a day of 2 s fragments is 43k segments).
            .weigher(|_: &AssetKey, a: &Arc<LoadedAsset>| {
                let samples: usize = a.asset.tracks.iter().map(|t| t.index().samples.len()).sum();
                let segments: usize = a.asset.tracks.iter().map(|t| t.timeline.segments.len()).sum();
                let cues: usize =
                    a.asset.tracks.iter().filter_map(|t| t.index().sidecar.as_ref()).map(|v| v.heap_bytes()).sum();
                let weight = samples.saturating_mul(25).saturating_add(segments.saturating_mul(40)) + cues + 4096;
                weight.min(u32::MAX as usize) as u32
            })
            .max_capacity(c.index_mib * MIB)
            .time_to_live(asset_ttl + stale_if_error)
            .eviction_listener(eviction_counter(&metrics, "asset"))
            .build();
        let indexes = Cache::builder()
            .weigher(|_: &(String, String), f: &Arc<FileIndex>| {
                let samples: usize = f.tracks.iter().map(|t| t.samples.len()).sum();
                // A sidecar has no samples: its cues are its weight.
                let cues: usize = f.tracks.iter().filter_map(|t| t.sidecar.as_ref()).map(|v| v.heap_bytes()).sum();
                (samples.saturating_mul(25) + cues + 1024).min(u32::MAX as usize) as u32
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
            catalog: RwLock::new(Arc::new(catalog.clone())),
            config_catalog: catalog,
            store_health: RwLock::default(),
            segment_policy: SegmentPolicy { target_secs: config.segment_duration },
            assets,
            asset_ttl,
            stale_if_error,
            indexes,
            manifests,
            segments,
            live_stored: Default::default(),
            failures: FailureMemory::new(
                Duration::from_secs(c.not_found_ttl_secs),
                Duration::from_secs(c.failure_ttl_secs),
            ),
            failure_ttl: Duration::from_secs(c.failure_ttl_secs),
            build_memory: Arc::new(BuildBudget::new(config.limits.build_memory_mib * MIB)),
            thumbnails: config.thumbnails.settings(),
            thumbnail_builds: Arc::new(tokio::sync::Semaphore::new(config.thumbnails.max_concurrent_builds.max(1))),
            metrics,
        })
    }

    /// What is published now. A request holds on to the catalog it started with, so a
    /// swap never changes a locator halfway through a request.
    pub fn catalog(&self) -> Arc<Catalog> {
        // A poisoned lock still holds a whole catalog: swaps only ever store complete ones.
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publishes `catalog` in place of the current one.
    pub fn publish(&self, catalog: Catalog) {
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }

    /// What the config file publishes, which every published catalog starts from.
    pub fn config_catalog(&self) -> &Catalog {
        &self.config_catalog
    }

    /// How reading the store goes; `None` without a store.
    pub fn store_health(&self) -> Option<StoreHealth> {
        self.store_health.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the outcome of a read of the store.
    pub fn update_store_health(&self, update: impl FnOnce(&mut StoreHealth)) {
        update(self.store_health.write().unwrap_or_else(|e| e.into_inner()).get_or_insert_default());
    }

    /// The storage account named `name` in the config.
    pub fn storage(&self, name: &str) -> Option<&Arc<Storage>> {
        self.storages.iter().find(|s| s.name() == name)
    }

    /// Counts a cache lookup as hit or miss.
    fn count_lookup(&self, cache: &str, fresh: bool) {
        self.metrics.count_lookup(cache, !fresh);
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
        key: &K,
        build: impl Future<Output = Result<V, Error>>,
    ) -> Result<(V, bool), Arc<Error>>
    where
        K: Hash + Eq + Clone + Into<Failed> + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if let Some(value) = cache.get(key).await {
            self.count_lookup(name, false);
            return Ok((value, false));
        }
        // The key is copied on a miss only.
        let failed: Failed = key.clone().into();
        let remembered = self.failures.recall(&failed).await;
        self.count_lookup("failure", remembered.is_none());
        if let Some(error) = remembered {
            return Err(error);
        }
        let entry = cache.entry(key.clone()).or_try_insert_with(self.failures.remembering(failed, build)).await?;
        self.count_lookup(name, entry.is_fresh());
        let fresh = entry.is_fresh();
        Ok((entry.into_value(), fresh))
    }

    /// The response body of one parsed request for `locator`/`asset_name`, cached or built:
    /// plan → cached lookup → fetch → package. Filters resolve in `catalog`.
    pub async fn resource(
        &self,
        catalog: &Catalog,
        locator: &Locator,
        asset_name: &str,
        request: &ParsedUrl,
    ) -> Result<Arc<Built>, Arc<Error>> {
        let protection = protection_of(locator, request.resource.encryption()).map_err(Arc::new)?;
        let loaded = self.asset(locator, asset_name).await?;
        let plan = plan(catalog, locator, &loaded.asset, request, protection, self.thumbnails).map_err(Arc::new)?;
        let built = match &plan.build {
            Build::Segment(segment) => self.segment(locator, &plan, segment).await,
            Build::Thumbnail(tile) => self.thumbnail(locator, tile).await,
            Build::Document(document) => self.document(locator, &plan, document).await,
        };
        if let Err(e) = &built {
            if matches!(**e, Error::SourceChanged { .. }) {
                self.forget_asset(locator, asset_name, &loaded).await;
            }
        }
        if loaded.stale.load(Ordering::Relaxed) {
            let segment = matches!(request.resource, Resource::Segment { .. } | Resource::KeyFrame { .. });
            let cache = if segment { "segment" } else { "manifest" };
            self.metrics.stale_served.with_label_values(&[cache]).inc();
        }
        built
    }

    /// A file was replaced since `loaded` indexed it: the next request loads the asset again
    /// (and rebuilds its manifests) instead of failing until the TTL runs out.
    async fn forget_asset(&self, locator: &Locator, asset_name: &str, loaded: &Arc<LoadedAsset>) {
        let key = AssetKey::of(locator, asset_name);
        if self.assets.get(&key).await.is_some_and(|current| Arc::ptr_eq(&current, loaded)) {
            self.assets.invalidate(&key).await;
            let (storage, folder) = (key.storage, key.folder);
            // Only fails when closures are not enabled on the cache, and they are.
            let _ = self
                .manifests
                .invalidate_entries_if(move |k, _| k.asset.storage == storage && k.asset.folder == folder);
        }
    }

    /// A media segment: from the cache, or read and built within the build budget.
    async fn segment(
        &self,
        locator: &Locator,
        plan: &Plan<'_>,
        segment: &SegmentPlan<'_>,
    ) -> Result<Arc<Built>, Arc<Error>> {
        let storage = &locator.storage;
        let key = SegmentKey::of(locator, plan, segment);
        let build = async {
            // What the build reads (the planned runs, not the whole span); a layout no bounded
            // plan reads fails here (and is remembered), before anything is reserved or read.
            // A live segment is its members' fragment objects, read whole: their size as the
            // tracks' peak bitrates estimate it.
            let live = plan.asset.live.is_some();
            let reads = if live { Vec::new() } else { segment.reads()? };
            let source_bytes: u64 = if live {
                segment.members().map(|(t, s)| live::estimated_bytes(t, s)).sum()
            } else {
                reads.iter().map(|r| r.bytes()).sum()
            };
            // The budget's semaphore is never closed, so this cannot fail.
            let _reserved = self
                .build_memory
                .reserve(source_bytes)
                .await
                .map_err(|e| Error::Storage { path: key.file.clone(), message: e.to_string() })?;
            let started = Instant::now();
            let output = if live {
                let read = live::LiveSegment::read(storage, segment).await?;
                let live_plan =
                    read.plan(plan, segment).ok_or_else(|| Error::media(&key.file, "live segment not read"))?;
                output::package(&live_plan, &read.sources())?
            } else {
                let sources = fetch::fetch(storage, segment, reads).await?;
                output::package(plan, &sources)?
            };
            self.metrics.segment_build_seconds.observe(started.elapsed().as_secs_f64());
            let identity = key.identity(storage.shared_etags());
            let mut built = Built::new(output, identity, &[key.version()], true);
            built.weight = built.weight.max(source_bytes);
            Ok(Arc::new(built))
        };
        let (built, fresh) = self.get_or_build(&self.segments, "segment", &key, build).await?;
        if fresh {
            // moka evicts in batches (after 64 writes or on a timer), so a walk over uncached
            // 1.5 MB segments would hold ~100 MB beyond the capacity until the next batch.
            // Evicting now keeps memory at the configured capacity.
            self.segments.run_pending_tasks().await;
        }
        Ok(built)
    }

    /// A manifest, media playlist or init segment: from the cache, or built.
    async fn document(
        &self,
        locator: &Locator,
        plan: &Plan<'_>,
        document: &DocumentPlan<'_>,
    ) -> Result<Arc<Built>, Arc<Error>> {
        let key = ManifestKey::of(locator, plan, document);
        let build = async {
            let output = output::package(plan, &[])?;
            let mut versions: Vec<&ObjectVersion> = plan.asset.tracks.iter().map(|t| &t.file_index.version).collect();
            // A live manifest was last modified when the event's documents last changed.
            let live_version = keys::live_version(plan).0.map(|updated_ms| ObjectVersion {
                size: 0,
                etag: None,
                last_modified_unix: (updated_ms / 1000) as i64,
            });
            versions.extend(live_version.as_ref());
            let identity = identity_of(&key, &versions, locator.storage.shared_etags());
            let immutable = matches!(plan.resource, Resource::Init { .. });
            let mut built = Built::new(output, identity, &versions, immutable);
            built.max_age = live_manifest_max_age(plan.asset).filter(|_| !immutable);
            Ok(Arc::new(built))
        };
        let (built, _) = self.get_or_build(&self.manifests, "manifest", &key, build).await?;
        Ok(built)
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

/// How long CDNs may keep a running live event's manifests, seconds: half a segment (at least
/// 1 s), the time until the next fragment may change them. `None` otherwise (VOD lifetime).
fn live_manifest_max_age(asset: &Asset) -> Option<u64> {
    let running = asset.live.as_ref().is_some_and(|live| !live.ended);
    running.then(|| ((asset.longest_segment_secs() / 2.0).floor() as u64).max(1))
}

/// The plan of `request` for `locator`'s `asset`, its filters resolved in `catalog`.
fn plan<'a>(
    catalog: &'a Catalog,
    locator: &'a Locator,
    asset: &'a Asset,
    request: &'a ParsedUrl,
    protection: Option<Protection<'a>>,
    thumbnails: Option<ThumbnailSettings>,
) -> Result<Plan<'a>> {
    let mut document = match &request.resource {
        Resource::Segment { .. } | Resource::KeyFrame { .. } | Resource::Thumbnail { .. } => DocumentPlan::default(),
        Resource::Manifest(options) => filters_of(catalog, locator, &options.filters)?,
        Resource::MediaPlaylist { filters, .. } => filters_of(catalog, locator, filters)?,
        Resource::Init { .. } => filters_of(catalog, locator, &[])?,
    };
    document.thumbnails = thumbnails.filter(|_| crate::plan::thumbnails::uses_settings(&request.resource));
    Plan::new(asset, &request.resource, request.extension, protection, document)
}

/// The filters of a manifest, media playlist or init segment: the locator's defaults, then
/// the request's, each once; an asset filter shadows the account filter of its name.
fn filters_of<'a>(catalog: &'a Catalog, locator: &Locator, request_filters: &[String]) -> Result<DocumentPlan<'a>> {
    let mut filter_names = locator.default_filters.clone();
    for name in request_filters {
        if !filter_names.contains(name) {
            filter_names.push(name.clone());
        }
    }
    let filters = filter_names
        .iter()
        .map(|name| {
            catalog
                .filter(locator.asset_name.as_deref(), name)
                .map(|f| &**f)
                .ok_or_else(|| Error::NotFound(format!("filter '{name}'")))
        })
        .collect::<Result<_>>()?;
    Ok(DocumentPlan { filters, thumbnails: None })
}

/// What encrypting a request for `encryption` under `locator`'s policy needs: `None` for a
/// clear request; refused when the policy does not allow the request.
fn protection_of(
    locator: &Locator,
    encryption: Option<crate::plan::url::Encryption>,
) -> Result<Option<Protection<'_>>> {
    let policy = locator.policy.kind();
    if !policy.allows(encryption) {
        let asked = encryption.map_or("clear output", |e| e.as_str());
        return Err(Error::Forbidden(format!(
            "locator '{}' has streaming policy '{}', which does not allow {asked}",
            locator.id,
            policy.as_str()
        )));
    }
    // An allowed encrypted request has an encrypting policy, which has keys.
    Ok(encryption.and(locator.policy.keys()).map(|keys| Protection {
        key: keys.first(),
        key_uri: &keys.key_uri,
        locator: &locator.id,
        drm: &keys.drm,
    }))
}

/// Plans, reads and packages `resource` of `asset` without caches or budget (the static
/// packager, tools and tests). `protection` holds the key when the resource asks for
/// encryption.
pub async fn render(
    storage: &Storage,
    asset: &Asset,
    resource: &Resource,
    extension: bool,
    protection: Option<Protection<'_>>,
) -> Result<Output> {
    let plan = Plan::new(asset, resource, extension, protection, DocumentPlan::default())?;
    let sources = match &plan.build {
        Build::Segment(segment) => fetch::fetch(storage, segment, segment.reads()?).await?,
        Build::Thumbnail(tile) => vec![fetch::read_runs(storage, tile.track, tile.reads.clone()).await?],
        Build::Document(_) => Vec::new(),
    };
    output::package(&plan, &sources)
}
