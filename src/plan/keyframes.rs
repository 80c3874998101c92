//! Trick play: the keyframes (sync samples) of a video track, as HLS I-frame playlists and
//! DASH trick-mode sets list them and as `KeyFrames({track}={time},…)` addresses them.
//!
//! A keyframe is planned as a segment of exactly one sample, so it is fetched (one ranged
//! read), packaged, encrypted and cached by the media segment path. Its `{time}` is the
//! sample's presentation time in the media timeline, the convention of segment URLs
//! ([`crate::source::index::TrackIndex::earliest_presentation`]); its duration runs to the next
//! keyframe (the last one: to the end of the track's timeline).

use crate::error::{Error, Result};
use crate::plan::url::Format;
use crate::plan::SegmentPlan;
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;
use crate::source::timeline::Segment;

/// One keyframe of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFrame {
    /// Its position among all sync samples of the source track, from 0 (a filter window does
    /// not renumber it): the resource's sequence number is one more.
    pub number: usize,
    /// The one-sample segment holding it.
    pub segment: Segment,
}

/// Why a track has no keyframes to list or address, if it has none by nature: trick play is
/// for video, and a live track's samples are in its fragment objects, not in its index.
pub(crate) fn unavailable(asset: &Asset, track: &AssetTrack) -> Option<Error> {
    if track.kind != TrackKind::Video {
        return Some(Error::BadRequest(format!("track '{}' is not video: it has no keyframes", track.name)));
    }
    asset.live.is_some().then(|| {
        Error::NotFound(format!(
            "I-frame playlists and KeyFrames(…) are served for on-demand assets; '{}' is a live event",
            asset.name
        ))
    })
}

/// The keyframes of `track` within its timeline as filters and windows left it, in decode
/// order, each lasting until the next one.
pub fn key_frames(track: &AssetTrack) -> Vec<KeyFrame> {
    let s = &track.index().samples;
    let segments = &track.timeline.segments;
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else { return Vec::new() };
    let window = first.first_sample as usize..(last.first_sample as usize + last.sample_count as usize).min(s.len());
    let end = last.time.saturating_add(last.duration);
    let mut out: Vec<KeyFrame> = syncs(track)
        .skip_while(|&(_, i)| i < window.start)
        .take_while(|&(_, i)| i < window.end)
        .map(|(number, i)| key_frame(track, number, i))
        .collect();
    for k in 0..out.len() {
        let next = out.get(k + 1).map_or(end, |n| n.segment.time);
        out[k].segment.duration = next.saturating_sub(out[k].segment.time);
    }
    out
}

/// The keyframe of the whole `track` presented at `time`, found without listing them all (a
/// track of intra frames only has as many as samples).
fn find(track: &AssetTrack, time: u64) -> Option<KeyFrame> {
    let mut syncs = syncs(track);
    let (number, i) = syncs.find(|&(_, i)| pts(track, i) == time)?;
    let mut frame = key_frame(track, number, i);
    let end = track.timeline.segments.last().map_or(time, |l| l.time.saturating_add(l.duration));
    let next = syncs.next().map_or(end, |(_, j)| pts(track, j));
    frame.segment.duration = next.saturating_sub(time);
    Some(frame)
}

/// (number among the sync samples, sample index) of every sync sample of `track`.
fn syncs(track: &AssetTrack) -> impl Iterator<Item = (usize, usize)> + '_ {
    let s = &track.index().samples;
    s.sync_iter().map(|i| i as usize).take_while(move |&i| i < s.len()).enumerate()
}

/// Presentation time of sample `i` in the media timeline.
fn pts(track: &AssetTrack, i: usize) -> u64 {
    track.index().earliest_presentation(i..i + 1)
}

/// Sync sample `i`, number `number`, as a one-sample segment (its duration is set by the
/// caller, who knows the next keyframe).
fn key_frame(track: &AssetTrack, number: usize, i: usize) -> KeyFrame {
    let segment = Segment {
        first_sample: i as u32,
        sample_count: 1,
        time: pts(track, i),
        duration: 0,
        bytes: track.index().samples.byte_count(i..i + 1),
        discontinuity: false,
    };
    KeyFrame { number, segment }
}

/// Peak and mean bitrate of a track's keyframes, bits/s (bytes over the time to the next
/// keyframe): the I-frame stream's BANDWIDTH and AVERAGE-BANDWIDTH, the trick-mode
/// Representation's bandwidth.
pub fn bitrates(track: &AssetTrack, frames: &[KeyFrame]) -> (u64, u64) {
    let ts = track.timeline.timescale.max(1) as u128;
    let rate = |bytes: u64, ticks: u64| {
        (bytes as u128 * 8 * ts).checked_div(ticks as u128).map_or(0, |r| r.min(u64::MAX as u128) as u64)
    };
    let peak = frames.iter().map(|k| rate(k.segment.bytes, k.segment.duration)).max().unwrap_or(0);
    let bytes = frames.iter().map(|k| k.segment.bytes).sum();
    let ticks = frames.iter().map(|k| k.segment.duration).sum();
    (peak, rate(bytes, ticks))
}

/// The plan of `KeyFrames({track}={time},format=…)`: the keyframe of `track` presented at
/// `time`, alone (no muxed audio, whatever the format: an I-frame is video only).
pub(crate) fn plan<'a>(
    asset: &'a Asset,
    track: &'a AssetTrack,
    time: u64,
    format: Format,
    encryption: Option<crate::plan::url::Encryption>,
) -> Result<SegmentPlan<'a>> {
    if let Some(e) = unavailable(asset, track) {
        return Err(e);
    }
    let frame = find(track, time)
        .ok_or_else(|| Error::NotFound(format!("no keyframe of track '{}' is presented at {time}", track.name)))?;
    Ok(SegmentPlan {
        track,
        number: frame.number,
        segment: frame.segment,
        muxed_audio: None,
        format,
        encryption,
        keyframe: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::hls::fixtures;

    #[test]
    fn keyframes_cover_the_timeline_and_a_window_keeps_their_numbers() {
        let asset = fixtures::asset();
        let video = &asset.tracks[0];
        let frames = key_frames(video);
        // 10 s at 29.97 fps, a sync sample every 60 frames.
        assert_eq!(frames.len(), video.index().samples.len().div_ceil(60));
        let total: u64 = frames.iter().map(|k| k.segment.duration).sum();
        assert_eq!(total + frames[0].segment.time, video.timeline.segments[0].time + video.timeline.total_duration());
        assert!(frames.iter().all(|k| k.segment.sample_count == 1 && k.segment.bytes > 0));
        assert!(frames.windows(2).all(|w| w[0].segment.time + w[0].segment.duration == w[1].segment.time));

        // A window that drops the first segment (2 s = 1 GOP) drops the first keyframe only.
        let mut windowed = video.clone();
        windowed.timeline.segments.remove(0);
        let kept = key_frames(&windowed);
        assert_eq!(kept, frames[1..]);

        for k in &frames {
            assert_eq!(find(video, k.segment.time), Some(*k));
        }
        let (peak, average) = bitrates(video, &frames);
        assert!(peak >= average && average > 0, "{peak} {average}");
    }

    #[test]
    fn a_keyframe_is_found_by_its_time_alone() {
        let asset = fixtures::asset();
        let video = &asset.tracks[0];
        let frames = key_frames(video);
        let plan = plan(&asset, video, frames[2].segment.time, Format::M3u8Aapl, None).unwrap();
        assert_eq!((plan.number, plan.segment, plan.keyframe), (2, frames[2].segment, true));
        assert!(plan.muxed_audio.is_none());
        let between = frames[2].segment.time + 1;
        assert!(matches!(plan_err(&asset, video, between), Error::NotFound(_)));
        let audio = &asset.tracks[2];
        assert!(matches!(plan_err(&asset, audio, 0), Error::BadRequest(_)));
    }

    fn plan_err(asset: &Asset, track: &AssetTrack, time: u64) -> Error {
        plan(asset, track, time, Format::M3u8Cmaf, None).unwrap_err()
    }
}
