//! Failed asset loads and manifest or segment builds, remembered briefly: a hot URL naming an
//! unknown asset or corrupt media then costs one storage attempt per remembered time, not one
//! per request (moka caches only successes).
//!
//! Storage failures (502/504) are not remembered here: they are transient, a cached asset
//! whose storage fails is served stale instead (see `Origin::reload`), and concurrent misses
//! already share one attempt.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

use super::{AssetKey, ManifestKey, SegmentKey};
use crate::error::Error;

/// What failed: the cache key of the asset, manifest or segment that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Failed {
    Asset(AssetKey),
    Manifest(ManifestKey),
    Segment(SegmentKey),
}

impl From<AssetKey> for Failed {
    fn from(key: AssetKey) -> Self {
        Failed::Asset(key)
    }
}

impl From<ManifestKey> for Failed {
    fn from(key: ManifestKey) -> Self {
        Failed::Manifest(key)
    }
}

impl From<SegmentKey> for Failed {
    fn from(key: SegmentKey) -> Self {
        Failed::Segment(key)
    }
}

#[derive(Debug, Clone)]
struct Remembered {
    error: Arc<Error>,
    ttl: Duration,
}

/// Each entry lives for the time its kind of error is remembered.
struct RememberedFor;

impl moka::Expiry<Failed, Remembered> for RememberedFor {
    fn expire_after_create(&self, _: &Failed, value: &Remembered, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(&self, _: &Failed, value: &Remembered, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Memory the remembered failures may take: anyone can send unique unknown names, so the
/// entries are bounded by their size (keys and messages, a few hundred bytes each).
const CAPACITY_BYTES: u64 = 4 * 1024 * 1024;

pub(super) struct FailureMemory {
    cache: Cache<Failed, Remembered>,
    not_found_ttl: Duration,
    failure_ttl: Duration,
}

/// How long something a running live event does not have yet is remembered.
const NOT_YET_TTL: Duration = Duration::from_secs(1);

impl FailureMemory {
    pub(super) fn new(not_found_ttl: Duration, failure_ttl: Duration) -> Self {
        let cache = Cache::builder()
            .weigher(|key: &Failed, value: &Remembered| {
                let bytes = format!("{key:?}").len() + value.error.to_string().len() + 64;
                bytes.min(u32::MAX as usize) as u32
            })
            .max_capacity(CAPACITY_BYTES)
            .expire_after(RememberedFor)
            .build();
        FailureMemory { cache, not_found_ttl, failure_ttl }
    }

    /// How long `error` is remembered: something missing for `not_found_ttl`, corrupt media or
    /// an unusable asset for `failure_ttl`. Not at all: storage failures (see the module
    /// comment) and request errors, which cost no storage request.
    fn ttl_of(&self, error: &Error) -> Option<Duration> {
        let ttl = match error {
            Error::NotFound(_) => self.not_found_ttl,
            // A live event's: as long as a CDN may keep the answer, so requests for something
            // about to appear cost storage once a second, not once each.
            Error::NotYetAvailable(_) => NOT_YET_TTL.min(self.not_found_ttl),
            Error::Media { .. } | Error::Asset { .. } => self.failure_ttl,
            Error::BadRequest(_)
            | Error::Forbidden(_)
            | Error::Storage { .. }
            | Error::StorageTimeout { .. }
            | Error::SourceChanged { .. } => return None,
        };
        (!ttl.is_zero()).then_some(ttl)
    }

    /// The error `what` failed with, if that is still remembered.
    pub(super) async fn recall(&self, what: &Failed) -> Option<Arc<Error>> {
        self.cache.get(what).await.map(|r| r.error)
    }

    /// Runs `attempt` and remembers its failure under `what`. Remembered before the result is
    /// returned, so requests that were waiting on this attempt and those arriving next find it.
    pub(super) async fn remembering<T>(
        &self,
        what: Failed,
        attempt: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let result = attempt.await;
        if let Err(error) = &result {
            if let Some(ttl) = self.ttl_of(error) {
                self.cache.insert(what, Remembered { error: Arc::new(error.clone()), ttl }).await;
            }
        }
        result
    }

    /// Entries and weighted bytes, for the cache gauges.
    pub(super) async fn size(&self) -> (u64, u64) {
        self.cache.run_pending_tasks().await;
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}
