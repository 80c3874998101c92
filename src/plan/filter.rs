//! Manifest filters (AMS "dynamic filters"): a presentation window and a track selection
//! applied to an asset before its manifests are written. Segments keep their URLs (time
//! addressing), so every filter of an asset shares the same cached and CDN-cached segments.

use std::borrow::Cow;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;
use crate::source::timeline::Segment;

/// A named manifest filter (AMS "dynamic filter"): a presentation window and a track
/// selection. It changes which segments and tracks manifests list; segment URLs stay the
/// same, so CDN caches are shared by every filter of an asset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub name: String,
    /// Presentation window start, seconds from the asset's start (rounded down to a segment).
    #[serde(default)]
    pub start_secs: Option<f64>,
    /// Presentation window end, seconds (rounded up to a segment).
    #[serde(default)]
    pub end_secs: Option<f64>,
    /// Keep video tracks whose URL bitrate is at least this.
    #[serde(default)]
    pub min_video_bitrate: Option<u64>,
    /// Keep video tracks whose URL bitrate is at most this.
    #[serde(default)]
    pub max_video_bitrate: Option<u64>,
    /// Keep only audio and text tracks in these languages (empty = all).
    #[serde(default)]
    pub languages: Vec<String>,
}

fn keeps_track(filter: &FilterConfig, track: &AssetTrack) -> bool {
    match track.kind {
        TrackKind::Video => {
            filter.min_video_bitrate.is_none_or(|min| track.bitrate >= min)
                && filter.max_video_bitrate.is_none_or(|max| track.bitrate <= max)
        }
        TrackKind::Audio | TrackKind::Text => {
            filter.languages.is_empty() || filter.languages.iter().any(|l| l.eq_ignore_ascii_case(&track.language))
        }
    }
}

/// Presentation interval of a segment in seconds (edit list applied).
fn presentation_secs(track: &AssetTrack, segment: &Segment) -> (f64, f64) {
    let shift = track.index().info.edit.presentation_shift();
    let ts = track.timeline.timescale.max(1) as f64;
    let start = (segment.time as i64 + shift) as f64 / ts;
    (start, start + segment.duration as f64 / ts)
}

/// The asset as `filters` (all of them: their conditions combine) let manifests see it.
pub(crate) fn apply<'a>(asset: &'a Asset, filters: &[&FilterConfig]) -> Result<Cow<'a, Asset>> {
    if filters.is_empty() {
        return Ok(Cow::Borrowed(asset));
    }
    let names = || filters.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(";");
    let mut tracks: Vec<AssetTrack> =
        asset.tracks.iter().filter(|t| filters.iter().all(|f| keeps_track(f, t))).cloned().collect();

    let start = filters.iter().filter_map(|f| f.start_secs).fold(0.0f64, f64::max);
    let end = filters.iter().filter_map(|f| f.end_secs).fold(f64::INFINITY, f64::min);
    if start > 0.0 || end.is_finite() {
        // Snap the window to whole segments of the reference track (first video, else first
        // track), then keep every track's segments whose middle lies inside it: audio
        // boundaries sit within half a frame of the video ones.
        let reference = tracks.iter().find(|t| t.kind == TrackKind::Video).or(tracks.first());
        let Some(reference) = reference else {
            return Err(Error::NotFound(format!("filters '{}' leave no tracks", names())));
        };
        let spans: Vec<(f64, f64)> = reference
            .timeline
            .segments
            .iter()
            .map(|s| presentation_secs(reference, s))
            .filter(|&(s, e)| s < end && e > start)
            .collect();
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return Err(Error::NotFound(format!("filters '{}' select no time of asset '{}'", names(), asset.name)));
        };
        let (window_start, window_end) = (first.0.max(0.0), last.1);
        for track in &mut tracks {
            let kept: Vec<Segment> = track
                .timeline
                .segments
                .iter()
                .filter(|s| {
                    let (s0, s1) = presentation_secs(track, s);
                    let middle = (s0 + s1) / 2.0;
                    middle >= window_start && middle < window_end
                })
                .copied()
                .collect();
            track.timeline.segments = kept;
            let ts = track.timeline.timescale as f64;
            track.window_offset = (window_start * ts).round() as u64;
        }
        tracks.retain(|t| !t.timeline.segments.is_empty());
    }
    if tracks.is_empty() {
        return Err(Error::NotFound(format!("filters '{}' leave no tracks of asset '{}'", names(), asset.name)));
    }
    Ok(Cow::Owned(Asset { name: asset.name.clone(), tracks }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::asset::{load, AssetSource};
    use crate::source::storage::Storage;
    use crate::source::timeline::SegmentPolicy;

    async fn ladder() -> Asset {
        let storage = Storage::local("t", concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).unwrap();
        load(&storage, &AssetSource::Ism("ladder/ladder.ism".into()), SegmentPolicy::default()).await.unwrap()
    }

    fn filter(name: &str) -> FilterConfig {
        FilterConfig {
            name: name.into(),
            start_secs: None,
            end_secs: None,
            min_video_bitrate: None,
            max_video_bitrate: None,
            languages: vec![],
        }
    }

    #[tokio::test]
    async fn window_keeps_whole_aligned_segments_and_offsets_dash_time() {
        let asset = ladder().await;
        let f = FilterConfig { start_secs: Some(2.5), end_secs: Some(5.0), ..filter("mid") };
        let out = apply(&asset, &[&f]).unwrap();
        for t in &out.tracks {
            let original = &asset.tracks.iter().find(|o| o.name == t.name && o.bitrate == t.bitrate).unwrap().timeline;
            // Window snaps to the video segments covering 2.5–5.0 s: those starting at 2 s and 4 s.
            assert_eq!(t.timeline.segments.len(), 2, "{}", t.name);
            assert_eq!(t.timeline.segments[..], original.segments[1..3], "{}", t.name);
            assert_eq!(t.window_offset, 2 * t.timeline.timescale as u64, "{}", t.name);
        }
    }

    #[tokio::test]
    async fn track_selection_and_empty_results() {
        let asset = ladder().await;
        let sd = FilterConfig { max_video_bitrate: Some(300_000), languages: vec!["fra".into()], ..filter("sd") };
        let out = apply(&asset, &[&sd]).unwrap();
        let names: Vec<_> = out.tracks.iter().map(|t| (t.name.as_str(), t.bitrate)).collect();
        assert_eq!(names, [("video", 150_000), ("video", 300_000), ("audio_fra", 128_000)]);

        let none =
            FilterConfig { min_video_bitrate: Some(10_000_000), languages: vec!["deu".into()], ..filter("none") };
        assert!(matches!(apply(&asset, &[&none]), Err(Error::NotFound(_))));
        let late = FilterConfig { start_secs: Some(100.0), ..filter("late") };
        assert!(matches!(apply(&asset, &[&late]), Err(Error::NotFound(_))));
        assert!(matches!(apply(&asset, &[]).unwrap(), Cow::Borrowed(_)));
    }
}
