//! Thumbnail tiles on the request path: cached in the segment cache under their own key,
//! their keyframes read within the build budget, and the decoding run on a blocking thread,
//! a bounded number at once.

use std::sync::Arc;
use std::time::Instant;

use super::{fetch, Built, Origin, SegmentKey};
use crate::error::Error;
use crate::output::thumbnail;
use crate::plan::locator::Locator;
use crate::plan::thumbnails::TilePlan;

impl Origin {
    /// Thumbnail tile `tile`: from the cache, or read, decoded and encoded.
    pub(super) async fn thumbnail(&self, locator: &Locator, tile: &TilePlan<'_>) -> Result<Arc<Built>, Arc<Error>> {
        let storage = &locator.storage;
        let key = SegmentKey::of_tile(locator, tile);
        let build = async {
            let file = &tile.track.file;
            // Decoding takes a core for a while: a bounded number of tiles at once. A waiting
            // request holds nothing yet (no source bytes, no budget). The semaphore is never
            // closed.
            let _permit = self.thumbnail_builds.acquire().await.map_err(|e| Error::media(file, e))?;
            let started = Instant::now();
            let source_bytes = tile.reads.bytes();
            // The budget's semaphore is never closed, so this cannot fail.
            let reserved = self
                .build_memory
                .reserve(source_bytes)
                .await
                .map_err(|e| Error::Storage { path: key.file.clone(), message: e.to_string() })?;
            let span = fetch::read_runs(storage, tile.track, tile.reads.clone()).await?;
            let job = thumbnail::tile_job(tile, &span)?;
            drop((span, reserved));
            // Off the runtime's threads; a panic while decoding ends that thread only, and the
            // tile fails naming the file.
            let output = tokio::task::spawn_blocking(move || job.build())
                .await
                .map_err(|e| Error::media(file, format!("thumbnail tile {}: {e}", tile.tile.time)))??;
            self.metrics.segment_build_seconds.observe(started.elapsed().as_secs_f64());
            let identity = key.identity(storage.shared_etags());
            Ok(Arc::new(Built::new(output, identity, &[key.version()], true)))
        };
        let (built, fresh) = self.get_or_build(&self.segments, "segment", &key, build).await?;
        if fresh {
            self.segments.run_pending_tasks().await;
        }
        Ok(built)
    }
}
