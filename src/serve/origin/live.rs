//! Live segments: a live track's segment is one fragment object of the event's storage, read
//! whole (one GET) and indexed on its own, then packaged by the same packager as a VOD segment
//! through a plan whose members are those one-segment tracks.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::plan::reads::SourceSpan;
use crate::plan::{Build, Plan, SegmentPlan};
use crate::source::asset::AssetTrack;
use crate::source::index::FileIndex;
use crate::source::live;
use crate::source::storage::Storage;
use crate::source::timeline::{Segment, Timeline};

/// The fragment objects of a live segment's members, each as a track of one segment.
pub(super) struct LiveSegment {
    /// Per member ([`SegmentPlan::members`] order): the track, its one segment, its bytes.
    members: Vec<(AssetTrack, Segment, SourceSpan)>,
}

/// The fragment object a live track's segment is built from.
pub(super) fn fragment_of(track: &AssetTrack, segment: &Segment) -> String {
    live::fragment_path_of_init(&track.file, segment.time)
}

/// The size of `segment` of a live track as its peak bitrate estimates it (the track
/// documents record no per-fragment sizes).
pub(super) fn estimated_bytes(track: &AssetTrack, segment: &Segment) -> u64 {
    let bits = track.peak_bitrate() as u128 * segment.duration as u128 / track.timeline.timescale.max(1) as u128;
    (bits / 8).min(u64::MAX as u128) as u64
}

impl LiveSegment {
    /// Reads and indexes the fragment of every member of `plan`.
    pub(super) async fn read(storage: &Storage, plan: &SegmentPlan<'_>) -> Result<LiveSegment> {
        let reads = plan.members().map(|(track, segment)| async move {
            let path = fragment_of(track, segment);
            let bytes: Bytes = storage.read_all(&path).await?;
            let index = live::parse_fragment(&path, &bytes, track.index())?;
            let count = index.samples.len() as u32;
            let one = Segment { first_sample: 0, sample_count: count, bytes: bytes.len() as u64, ..*segment };
            // Field by field, not `..track.clone()`: that would copy the event's whole timeline
            // for every segment built.
            let member = AssetTrack {
                name: track.name.clone(),
                bitrate: track.bitrate,
                kind: track.kind,
                language: track.language.clone(),
                role: track.role.clone(),
                accessibility: track.accessibility.clone(),
                // The init object: the IV seed of Common Encryption names it.
                file: track.file.clone(),
                file_index: Arc::new(FileIndex {
                    path: track.file.clone(),
                    version: track.file_index.version.clone(),
                    tracks: vec![index],
                    reads: 1,
                }),
                track_position: 0,
                timeline: Timeline {
                    timescale: track.timeline.timescale,
                    segments: vec![one],
                    first_number: 0,
                    peak_bitrate: track.timeline.peak_bitrate,
                    average_bitrate: track.timeline.average_bitrate,
                },
                frame_rate: track.frame_rate,
                window_offset: 0,
            };
            Ok::<_, crate::error::Error>((member, one, SourceSpan::new(0, bytes)))
        });
        Ok(LiveSegment { members: futures::future::try_join_all(reads).await? })
    }

    /// The bytes read, in member order (the packager's sources).
    pub(super) fn sources(&self) -> Vec<SourceSpan> {
        self.members.iter().map(|(_, _, span)| span.clone()).collect()
    }

    /// `plan` (of `segment`) with the members read here in place of the live tracks.
    pub(super) fn plan<'b>(&'b self, plan: &Plan<'b>, segment: &SegmentPlan<'b>) -> Option<Plan<'b>> {
        let mut members = self.members.iter().map(|(track, one, _)| (track, one));
        let (track, one) = members.next()?;
        let segment = SegmentPlan { track, segment: *one, muxed_audio: members.next(), ..*segment };
        Some(Plan {
            asset: plan.asset,
            resource: plan.resource,
            extension: plan.extension,
            protection: plan.protection,
            build: Build::Segment(segment),
        })
    }
}
