//! Smooth Streaming time (MS-SSTR §2.2.2.1): a Smooth client manifest and its fragments count
//! in one 10 MHz timescale, so every track's ticks are rescaled, each instant on its own
//! (`round(ticks × 10⁷ / timescale)` of the absolute time), never by summing rounded
//! durations: a chunk's `d` is the difference of two such instants and a 2-hour asset does not
//! drift by a tick. The manifest's `t`s, the fragment URL times, the `tfxd` times and the
//! fragments' sample durations all come from here, so they agree.
//!
//! A Smooth client builds its init segment from the manifest, which has no edit list. So the
//! edit list is applied here instead: a track's decode times are shifted by its
//! presentation shift (B-frame delay, AAC priming), which lines the tracks' presentations up,
//! and every track by one lead so no time is negative (the decode time of a first B-frame
//! GOP's first frame comes before its presentation). The lead is the same for every track of
//! the asset. Live events have no Smooth form ([`crate::plan::carriage`]), so every asset here
//! is VOD and its first samples, hence its lead, never move.

use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::{TrackIndex, TrackKind};
use crate::source::timeline::Segment;

/// The Smooth manifest timescale (`SmoothStreamingMedia@TimeScale`): 100 ns units.
pub const TIMESCALE: u64 = 10_000_000;

/// The Smooth time axis of one asset (as loaded, before filters: fragment URLs carry no filter,
/// so a filtered manifest lists the same times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmoothClock {
    /// 10 MHz ticks added to every track's shifted times.
    lead: u64,
}

impl SmoothClock {
    pub fn of(asset: &Asset) -> SmoothClock {
        let earliest = asset
            .tracks
            .iter()
            .filter_map(|t| {
                let first = *t.index().samples.dts.first()?;
                Some(TrackClock::unled(t.index()).signed_time(first))
            })
            .min()
            .unwrap_or(0);
        SmoothClock { lead: u64::try_from(-earliest.min(0)).unwrap_or(0) }
    }

    /// The clock of one of the asset's tracks.
    pub fn track(&self, track: &AssetTrack) -> TrackClock {
        let mut clock = TrackClock::unled(track.index());
        clock.offset = clock.offset.saturating_add(i64::try_from(self.lead).unwrap_or(i64::MAX));
        clock
    }
}

/// One track's ticks on the Smooth time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackClock {
    timescale: u32,
    /// 10 MHz ticks added after rescaling: the lead plus the rescaled presentation shift.
    offset: i64,
}

impl TrackClock {
    fn unled(track: &TrackIndex) -> TrackClock {
        let timescale = track.info.timescale.max(1);
        let shift = track.info.edit.presentation_shift();
        let magnitude = rescale(shift.unsigned_abs(), timescale);
        let offset = if shift < 0 { -(magnitude as i64) } else { magnitude as i64 };
        TrackClock { timescale, offset }
    }

    fn signed_time(&self, ticks: u64) -> i64 {
        (rescale(ticks, self.timescale) as i64).saturating_add(self.offset)
    }

    /// `ticks` (a decode time in the track's timescale) in 10 MHz ticks on the asset's axis.
    pub fn time(&self, ticks: u64) -> u64 {
        u64::try_from(self.signed_time(ticks)).unwrap_or(0)
    }

    /// Where `segment` starts and ends on the axis: the decode time of its first sample and
    /// of the sample after its last (the track's end after the last segment). A text
    /// segment spans its own times: text is cut by time, and a sample crossing a boundary is
    /// in both segments (a sidecar's segments have no samples at all).
    pub fn segment_span(&self, track: &TrackIndex, segment: &Segment) -> (u64, u64) {
        let samples = &track.samples;
        let range = segment.samples();
        match (samples.dts.get(range.start), range.is_empty() || track.info.kind == TrackKind::Text) {
            (Some(&first), false) => {
                let end = samples.dts.get(range.end).copied().unwrap_or(samples.end_dts);
                (self.time(first), self.time(end))
            }
            _ => (self.time(segment.time), self.time(segment.time.saturating_add(segment.duration))),
        }
    }

    /// The segment of `track` whose Smooth time (its fragment URL's) is `time`.
    pub fn find<'t>(&self, track: &'t AssetTrack, time: u64) -> Option<(usize, &'t Segment)> {
        let segments = &track.timeline.segments;
        let index = track.index();
        let i = segments.partition_point(|s| self.segment_span(index, s).0 < time);
        let segment = segments.get(i).filter(|s| self.segment_span(index, s).0 == time)?;
        Some((i, segment))
    }
}

/// `ticks` of `timescale` in 10 MHz ticks, rounded to the nearest (halves up).
fn rescale(ticks: u64, timescale: u32) -> u64 {
    let timescale = u128::from(timescale.max(1));
    let scaled = (u128::from(ticks) * u128::from(TIMESCALE) + timescale / 2) / timescale;
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescaling_rounds_each_instant_so_durations_do_not_drift() {
        assert_eq!(rescale(90_000, 90_000), TIMESCALE);
        assert_eq!(rescale(1, 90_000), 111);
        assert_eq!(rescale(1024, 48_000), 213_333);
        // Two hours of 1024-sample AAC frames at 48 kHz: the sum of the per-frame differences
        // is the end instant exactly.
        let frames = 2 * 3600 * 48_000 / 1024;
        let sum: u64 = (0..frames).map(|k| rescale((k + 1) * 1024, 48_000) - rescale(k * 1024, 48_000)).sum();
        assert_eq!(sum, rescale(frames * 1024, 48_000));
        assert_eq!(sum, 72_000_000_000);
        assert_eq!(rescale(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn edit_shifts_line_tracks_up_and_the_lead_keeps_times_positive() {
        // A video track whose edit list skips 2 frames of B-frame delay (1024 ticks at 12800).
        let video = TrackClock { timescale: 12_800, offset: -(rescale(1024, 12_800) as i64) };
        assert_eq!(video.signed_time(0), -800_000);
        let led = TrackClock { offset: video.offset + 800_000, ..video };
        assert_eq!(led.time(0), 0);
        assert_eq!(led.time(1024), 800_000);
        assert_eq!(TrackClock { timescale: 1, offset: -5 }.time(0), 0);
    }
}
