//! Assets as loaded from storage: cached for `asset_ttl_secs` (a running live event's for half
//! a segment), then reloaded by one request while the others answer from the previous load;
//! served stale for `stale_if_error_secs` when storage fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::keys::AssetKey;
use super::Origin;
use crate::error::Error;
use crate::plan::locator::Locator;
use crate::source::asset::{self, Asset, AssetSource};
use crate::source::live;
use crate::source::storage::Storage;

/// An asset as last loaded from storage.
pub(super) struct LoadedAsset {
    pub(super) asset: Arc<Asset>,
    pub(super) loaded_at: Instant,
    /// How long this load is trusted: `asset_ttl_secs`, or for a running live event half its
    /// longest segment (within 0.5 s and `asset_ttl_secs`), so new fragments show within
    /// half a segment on every replica.
    ttl: Duration,
    /// Held by the one request reloading the asset once its TTL ran out.
    reloading: tokio::sync::Mutex<()>,
    /// When the latest reload attempt began, milliseconds after `loaded_at` (`u64::MAX`: none).
    reload_began_ms: AtomicU64,
    /// A reload failed on storage: answers from this load are stale until one succeeds.
    pub(super) stale: AtomicBool,
}

impl LoadedAsset {
    fn new(asset: Asset, asset_ttl: Duration) -> Self {
        LoadedAsset {
            ttl: ttl_of(&asset, asset_ttl),
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

impl Origin {
    /// The loaded asset `name` of `locator`: cached for `asset_ttl_secs`, then reloaded
    /// ([`Origin::reload`]); concurrent first loads coalesced, failures remembered.
    pub(super) async fn asset(&self, locator: &Locator, name: &str) -> Result<Arc<LoadedAsset>, Arc<Error>> {
        let key = AssetKey::of(locator, name);
        while let Some(loaded) = self.assets.get(&key).await {
            if loaded.loaded_at.elapsed() < loaded.ttl && !self.stored_since(&key, &loaded) {
                self.count_lookup("asset", false);
                return Ok(loaded);
            }
            if let Some(answer) = self.reload(&key, &locator.storage, loaded).await {
                return answer;
            }
        }
        let load = self.load_asset(&locator.storage, &key, None);
        let (loaded, _) = self.get_or_build(&self.assets, "asset", &key, load).await?;
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
            let hot = previous.reload_began().is_some_and(|b| b < previous.ttl + self.failure_ttl);
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
        let load = self.load_asset(storage, key, Some(&previous.asset));
        let result = self.failures.remembering(key.clone().into(), load).await;
        let within_window = previous.loaded_at.elapsed() < previous.ttl + self.stale_if_error;
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

    /// A fragment of the live event `folder` of `storage` was just stored by this process (its
    /// ingest): the event's cached load is out of date. Ingest and serving in one process then
    /// list a fragment as soon as it is stored; other replicas within their reload interval.
    pub fn live_fragment_stored(&self, storage: &str, folder: &str) {
        let mut stored = self.live_stored.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match stored.get_mut(storage) {
            Some(folders) => {
                folders.insert(folder.to_string(), now);
            }
            None => {
                stored.insert(storage.to_string(), HashMap::from([(folder.to_string(), now)]));
            }
        }
    }

    /// Whether this process stored a fragment of the running live event `loaded` since it was
    /// loaded.
    fn stored_since(&self, key: &AssetKey, loaded: &LoadedAsset) -> bool {
        if loaded.asset.live.as_ref().is_none_or(|live| live.ended) {
            return false;
        }
        let stored = self.live_stored.lock().unwrap_or_else(|e| e.into_inner());
        stored.get(&key.storage).and_then(|folders| folders.get(&key.folder)).is_some_and(|&at| at > loaded.loaded_at)
    }

    /// `loaded` as the answer to a request, counted as a hit (or a stale answer by `resource`).
    fn answer_from(&self, loaded: &Arc<LoadedAsset>) -> Arc<LoadedAsset> {
        self.count_lookup("asset", false);
        loaded.clone()
    }

    /// Lists the asset's folder and indexes its files, reusing every file index whose
    /// version is unchanged. A live event's folder is loaded from its documents (a reload
    /// reads just those, without listing), reusing the init indexes of `previous` (init
    /// objects never change under a name).
    async fn load_asset(
        &self,
        storage: &Storage,
        key: &AssetKey,
        previous: Option<&Asset>,
    ) -> Result<Arc<LoadedAsset>, Error> {
        let live_before = previous.filter(|a| a.live.is_some());
        let listed = match live_before {
            Some(_) => None,
            None => match asset::resolve_source_with_versions(storage, &key.folder, Some(&key.name)).await? {
                (AssetSource::Live { .. }, _) => None,
                files => Some(files),
            },
        };
        let Some((source, versions)) = listed else {
            let known_inits = live_before
                .into_iter()
                .flat_map(|a| &a.tracks)
                .map(|t| (t.file.clone(), t.file_index.clone()))
                .collect();
            let asset = live::load(storage, &key.folder, &key.name, &known_inits).await?;
            return Ok(Arc::new(LoadedAsset::new(asset, self.asset_ttl)));
        };
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
        Ok(Arc::new(LoadedAsset::new(asset, self.asset_ttl)))
    }
}

/// How long a load of `asset` is trusted (see [`LoadedAsset::ttl`]).
fn ttl_of(asset: &Asset, asset_ttl: Duration) -> Duration {
    match &asset.live {
        Some(live) if !live.ended => {
            let half_segment = asset.longest_segment_secs() / 2.0;
            Duration::from_secs_f64(half_segment.clamp(0.5, asset_ttl.as_secs_f64().max(0.5)))
        }
        _ => asset_ttl,
    }
}
