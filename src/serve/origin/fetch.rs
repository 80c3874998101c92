//! The storage reads of a segment plan: the ranges it names, read before packaging.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::plan::reads::{ReadPlan, SourceSpan, CONCURRENT_READS};
use crate::plan::SegmentPlan;
use crate::source::asset::AssetTrack;
use crate::source::storage::Storage;

/// The source bytes of each member of `plan` (in member order), by the reads `reads` lists
/// for it ([`SegmentPlan::reads`]).
pub(super) async fn fetch(storage: &Storage, plan: &SegmentPlan<'_>, reads: Vec<ReadPlan>) -> Result<Vec<SourceSpan>> {
    let mut spans = Vec::with_capacity(reads.len());
    for ((track, _), reads) in plan.members().zip(reads) {
        spans.push(read_runs(storage, track, reads).await?);
    }
    Ok(spans)
}

/// The runs `reads` lists of `track`'s file, a few at a time.
pub(super) async fn read_runs(storage: &Storage, track: &AssetTrack, reads: ReadPlan) -> Result<SourceSpan> {
    let runs: Vec<(u64, Bytes)> = futures::stream::iter(reads.runs)
        .map(|range| async move {
            let data = storage.read_indexed_range(&track.file, &track.file_index.version, range.clone()).await?;
            if (data.len() as u64) < range.end - range.start {
                return Err(Error::media(&track.file, format!("file ends before byte {} (truncated?)", range.end)));
            }
            Ok((range.start, data))
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    Ok(SourceSpan::from_runs(runs))
}
