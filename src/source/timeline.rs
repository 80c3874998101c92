//! Segment timelines: where each track's segments start and end.
//!
//! Rules (DESIGN §5): video segments start on sync samples; with no target duration they
//! follow the source GOPs, or the source fragments for fragmented sources; with a target they
//! group GOPs up to it. Audio (and text) is cut where the reference video's segments start,
//! compared in presentation time (edit lists applied), so players switch renditions cleanly.
//! Every audio and video sample belongs to exactly one segment: no gap, no overlap. Text is
//! cut by time at the video's boundaries instead (a text sample may span several segments).

use serde::Serialize;

use crate::source::index::{TrackIndex, TrackKind};

/// One segment of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// First sample index.
    pub first_sample: u32,
    /// Number of samples: for text, those overlapping the segment's span (0 for a sidecar).
    pub sample_count: u32,
    /// Earliest presentation time in the media timeline (track timescale), the `{time}` of
    /// the segment's URL and DASH `S@t`; for text, where the segment's span starts.
    pub time: u64,
    /// Until the next segment's `time` (or the track end), track timescale.
    pub duration: u64,
    /// Payload bytes (sum of sample sizes).
    pub bytes: u64,
    /// A live segment that follows a break in the encoder's timeline (a reconnect that jumped
    /// in time): HLS `EXT-X-DISCONTINUITY` before it. Always false for VOD.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub discontinuity: bool,
}

impl Segment {
    pub fn samples(&self) -> std::ops::Range<usize> {
        self.first_sample as usize..(self.first_sample + self.sample_count) as usize
    }
}

/// All segments of one track plus the statistics manifests advertise.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub timescale: u32,
    pub segments: Vec<Segment>,
    /// Segments of the track before `segments[0]` (a live window or a trim from the front
    /// left them out): `segments[k]` is segment number `first_number + k` (from 0), the
    /// number HLS `EXT-X-MEDIA-SEQUENCE` and `mfhd` count from. 0 for a whole VOD track.
    pub first_number: u64,
    /// Highest segment bitrate, bits/s (HLS BANDWIDTH, DASH @bandwidth).
    pub peak_bitrate: u64,
    /// Mean bitrate over the track, bits/s (HLS AVERAGE-BANDWIDTH).
    pub average_bitrate: u64,
}

impl Timeline {
    /// The segment whose URL time is `time`, if any.
    pub fn find(&self, time: u64) -> Option<(usize, &Segment)> {
        let i = self.segments.binary_search_by_key(&time, |s| s.time).ok()?;
        Some((i, &self.segments[i]))
    }
    pub fn max_duration_secs(&self) -> f64 {
        let max = self.segments.iter().map(|s| s.duration).max().unwrap_or(0);
        max as f64 / self.timescale.max(1) as f64
    }
    pub fn total_duration(&self) -> u64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// How segment boundaries are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SegmentPolicy {
    /// Target duration in seconds; `None` follows source GOPs / fragments.
    pub target_secs: Option<f64>,
}

/// Presentation time in seconds of sample `i` (edit list applied).
fn presentation_secs(track: &TrackIndex, i: usize) -> f64 {
    let s = &track.samples;
    let t = s.dts[i] as i64 + s.cts_offset(i) as i64 + track.info.edit.presentation_shift();
    t as f64 / track.info.timescale.max(1) as f64
}

/// Start samples of a video track's segments.
fn video_cuts(track: &TrackIndex, policy: SegmentPolicy) -> Vec<u32> {
    let s = &track.samples;
    if s.is_empty() {
        return Vec::new();
    }
    let mut cuts: Vec<u32> = match policy.target_secs {
        None if !s.fragment_starts.is_empty() => {
            // Keep source fragments, but only where they start on a sync sample.
            s.fragment_starts.iter().copied().filter(|&i| s.is_sync(i as usize)).collect()
        }
        None => s.sync_iter().collect(),
        Some(target) => {
            let ts = track.info.timescale.max(1) as f64;
            let target_ticks = (target * ts).max(1.0);
            let mut out = Vec::new();
            let mut next_boundary = f64::MIN;
            for i in s.sync_iter() {
                let t = s.dts[i as usize] as f64;
                // Small tolerance so 2.0 s GOPs at a 2 s target do not drift to 4 s.
                if t >= next_boundary - target_ticks * 0.05 {
                    out.push(i);
                    next_boundary = t + target_ticks;
                }
            }
            out
        }
    };
    // The first sample always opens a segment, even in sources that start on a non-sync
    // sample: it would otherwise be dropped.
    if cuts.first() != Some(&0) {
        cuts.insert(0, 0);
    }
    cuts
}

/// Start samples of a track cut at reference presentation times (seconds).
fn cuts_at_times(track: &TrackIndex, boundaries: &[f64]) -> Vec<u32> {
    let s = &track.samples;
    if s.is_empty() {
        return Vec::new();
    }
    let mut cuts = vec![0u32];
    let mut i = 0usize;
    for &b in boundaries.iter().skip(1) {
        while i < s.len() && cut_time(track, i) < b {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        if i as u32 > *cuts.last().unwrap_or(&0) {
            cuts.push(i as u32);
        }
    }
    cuts
}

/// Where sample `i` is compared with a segment boundary (seconds): its presentation time
/// plus half its duration, so a cut falls at the sample that straddles the boundary least.
fn cut_time(track: &TrackIndex, i: usize) -> f64 {
    let half = track.samples.duration(i) as f64 / track.info.timescale.max(1) as f64 / 2.0;
    presentation_secs(track, i) + half
}

/// Start samples of an audio/text track with no video to follow: cut at every multiple of
/// the target duration. Driven by the samples, not by the boundaries: a track whose duration
/// is huge (a corrupt sample duration, or a long sparse text track) costs its sample count in
/// time and memory, not its duration divided by the target.
fn standalone_cuts(track: &TrackIndex, policy: SegmentPolicy) -> Vec<u32> {
    let s = &track.samples;
    if policy.target_secs.is_none() && !s.fragment_starts.is_empty() {
        return s.fragment_starts.clone();
    }
    if s.is_empty() {
        return Vec::new();
    }
    let target = policy.target_secs.unwrap_or(DEFAULT_AUDIO_ONLY_SECS);
    let mut cuts = vec![0u32];
    // The first boundary after those sample 0 covers: multiples of the target at or before
    // a sample's cut time all fall to that sample.
    let next_after = |t: f64| ((t / target).floor().max(0.0) + 1.0) * target;
    let mut next = next_after(cut_time(track, 0));
    for i in 1..s.len() {
        let t = cut_time(track, i);
        if t >= next {
            cuts.push(i as u32);
            next = next_after(t);
        }
    }
    cuts
}

/// Segment length for tracks with neither video to follow nor source fragments.
pub const DEFAULT_AUDIO_ONLY_SECS: f64 = 2.0;

/// Builds the timeline of `track` from its segment start samples.
fn timeline_from_cuts(track: &TrackIndex, cuts: &[u32]) -> Timeline {
    let s = &track.samples;
    let n = s.len() as u32;
    let mut segments = Vec::with_capacity(cuts.len());
    for (k, &start) in cuts.iter().enumerate() {
        let end = cuts.get(k + 1).copied().unwrap_or(n);
        if end <= start {
            continue;
        }
        let range = start as usize..end as usize;
        segments.push(Segment {
            first_sample: start,
            sample_count: end - start,
            time: track.earliest_presentation(range.clone()),
            duration: 0,
            bytes: s.byte_count(range),
            discontinuity: false,
        });
    }
    // Durations run from one segment's time to the next, so the timeline has no gaps; the
    // last one ends at the track's last composition end.
    let end_time = (0..s.len())
        .rev()
        .take(64)
        .map(|i| (s.dts[i] as i64 + s.cts_offset(i) as i64 + s.duration(i) as i64).max(0) as u64)
        .max()
        .unwrap_or(s.end_dts);
    for k in 0..segments.len() {
        let next = segments.get(k + 1).map(|n| n.time).unwrap_or(end_time.max(segments[k].time));
        segments[k].duration = next.saturating_sub(segments[k].time);
    }
    let (peak, average) = bitrates(&segments, track.info.timescale);
    Timeline {
        timescale: track.info.timescale,
        segments,
        first_number: 0,
        peak_bitrate: peak,
        average_bitrate: average,
    }
}

/// Most segments a text track gets without video to follow: past this (a cue at 99:59:59 in
/// a text-only asset) its segments grow longer instead of more numerous.
const MAX_TEXT_SEGMENTS: f64 = 50_000.0;

/// Presentation end of a track, in seconds (edit list applied): for a sidecar, its last cue's.
fn presentation_end_secs(track: &TrackIndex) -> f64 {
    let end = track.samples.end_dts as i64 + track.info.edit.presentation_shift();
    end.max(0) as f64 / track.info.timescale.max(1) as f64
}

/// Presentation end of a planned timeline, in seconds: its last segment's end, which for video
/// is the last composition time (frames reordered past the last decode time included).
fn timeline_end_secs(track: &TrackIndex, timeline: &Timeline) -> f64 {
    let Some(last) = timeline.segments.last() else {
        return 0.0;
    };
    let end = (last.time + last.duration) as i64 + track.info.edit.presentation_shift();
    end.max(0) as f64 / timeline.timescale.max(1) as f64
}

/// The timeline of a text track cut by time: one segment from each of `boundaries`
/// (presentation seconds) to the next, the last to `end_secs`, so text segments line up with
/// the video's and cover the whole presentation, cues or not. A sidecar's segments hold no
/// samples (outputs cut its cues by time). An MP4 text track's hold every sample overlapping
/// them, so a sample crossing a boundary is in both segments and outputs clip it to each, as
/// WebVTT repeats a cue crossing a segment boundary; `time` is in the media timeline, as for
/// other tracks (presentation time less the edit shift).
fn text_timeline(track: &TrackIndex, boundaries: &[f64], end_secs: f64) -> Timeline {
    let ts = track.info.timescale.max(1) as f64;
    let ticks = |secs: f64| (secs.max(0.0) * ts).round() as u64;
    let end = ticks(end_secs);
    let mut times: Vec<u64> = boundaries.iter().map(|&b| ticks(b)).filter(|&t| t < end).collect();
    times.sort_unstable();
    times.dedup();
    let s = &track.samples;
    let shift = track.info.edit.presentation_shift();
    // Composition spans of the samples; text samples are in presentation order.
    let starts: Vec<i64> = (0..s.len()).map(|i| s.dts[i] as i64 + s.cts_offset(i) as i64).collect();
    let ends: Vec<i64> = (0..s.len()).map(|i| starts[i] + s.duration(i) as i64).collect();
    let segments: Vec<Segment> = times
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let stop = times.get(k + 1).copied().unwrap_or(end);
            let (media_start, media_stop) = (start as i64 - shift, stop as i64 - shift);
            let first = ends.partition_point(|&e| e <= media_start);
            let last = starts.partition_point(|&b| b < media_stop).max(first);
            Segment {
                first_sample: first as u32,
                sample_count: (last - first) as u32,
                time: media_start.max(0) as u64,
                duration: stop.saturating_sub(start),
                bytes: s.byte_count(first..last),
                discontinuity: false,
            }
        })
        .collect();
    let (peak_bitrate, average_bitrate) = bitrates(&segments, track.info.timescale);
    Timeline { timescale: track.info.timescale, segments, first_number: 0, peak_bitrate, average_bitrate }
}

/// Boundaries every `target` seconds from 0 to `end_secs`, for text with no video to follow;
/// at most [`MAX_TEXT_SEGMENTS`] of them.
fn even_boundaries(target: f64, end_secs: f64) -> Vec<f64> {
    let step = target.max(end_secs / MAX_TEXT_SEGMENTS).max(0.001);
    let count = (end_secs / step).ceil().min(MAX_TEXT_SEGMENTS) as usize;
    (0..count).map(|k| k as f64 * step).collect()
}

/// Peak and mean bitrates of `segments`, bits/s.
fn bitrates(segments: &[Segment], timescale: u32) -> (u64, u64) {
    // bits/s = bytes * 8 * timescale / ticks, in u128 so no timescale or size overflows it.
    let ts = timescale.max(1) as u128;
    let rate = |bytes: u64, ticks: u64| {
        (bytes as u128 * 8 * ts).checked_div(ticks as u128).map_or(0, |r| r.min(u64::MAX as u128) as u64)
    };
    let peak = segments.iter().map(|seg| rate(seg.bytes, seg.duration)).max().unwrap_or(0);
    let total_bytes: u64 = segments.iter().map(|seg| seg.bytes).sum();
    let total_duration: u64 = segments.iter().map(|seg| seg.duration).sum();
    (peak, rate(total_bytes, total_duration))
}

/// Plans the segments of every track of an asset. `tracks[i]` gets `result[i]`.
/// The reference video (whose boundaries audio follows) is the first video track. Text
/// tracks are cut at the same presentation times (see [`text_timeline`]) up to the end of the
/// longest audio or video track.
pub fn plan(tracks: &[&TrackIndex], policy: SegmentPolicy) -> Vec<Timeline> {
    let reference = tracks.iter().find(|t| t.info.kind == TrackKind::Video && !t.samples.is_empty());
    let reference_times: Option<Vec<f64>> =
        reference.map(|v| video_cuts(v, policy).iter().map(|&i| presentation_secs(v, i as usize)).collect());
    let media: Vec<Option<Timeline>> = tracks
        .iter()
        .map(|t| {
            let cuts = match (t.info.kind, &reference_times) {
                (TrackKind::Text, _) => return None,
                (TrackKind::Video, _) => video_cuts(t, policy),
                (_, Some(times)) => cuts_at_times(t, times),
                (_, None) => standalone_cuts(t, policy),
            };
            Some(timeline_from_cuts(t, &cuts))
        })
        .collect();
    let media_end = tracks
        .iter()
        .zip(&media)
        .filter_map(|(t, timeline)| timeline.as_ref().map(|tl| timeline_end_secs(t, tl)))
        .fold(0.0, f64::max);
    // Only when the asset has nothing but text do the cues set its length.
    let end_secs = if media_end > 0.0 {
        media_end
    } else {
        tracks.iter().filter(|t| t.info.kind == TrackKind::Text).map(|t| presentation_end_secs(t)).fold(0.0, f64::max)
    };
    let even;
    let text_boundaries = match &reference_times {
        Some(times) => times,
        None => {
            even = even_boundaries(policy.target_secs.unwrap_or(DEFAULT_AUDIO_ONLY_SECS), end_secs);
            &even
        }
    };
    tracks
        .iter()
        .zip(media)
        .map(|(t, timeline)| timeline.unwrap_or_else(|| text_timeline(t, text_boundaries, end_secs)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::index::{CodecInfo, EditOffset, SampleTable, TrackInfo};

    /// An audio track (timescale 48 kHz) whose samples last `durations` ticks each.
    fn audio(durations: &[u64]) -> TrackIndex {
        let mut dts = Vec::new();
        let mut t = 0;
        for d in durations {
            dts.push(t);
            t += d;
        }
        let n = durations.len();
        TrackIndex {
            sidecar: None,
            info: TrackInfo {
                track_id: 1,
                kind: TrackKind::Audio,
                timescale: 48_000,
                language: "eng".into(),
                sample_entry: Default::default(),
                codec: CodecInfo::default(),
                edit: EditOffset::default(),
            },
            samples: SampleTable {
                dts,
                end_dts: t,
                sizes: vec![1; n],
                offsets: (0..n as u64).collect(),
                ..Default::default()
            },
        }
    }

    /// A 24 fps video track (timescale 12288) of `frames` frames, a sync sample every 48.
    fn video(frames: usize) -> TrackIndex {
        let mut t = audio(&vec![512; frames]);
        t.info.kind = TrackKind::Video;
        t.info.timescale = 12_288;
        t.samples.sync_samples = Some((0..frames as u32).step_by(48).collect());
        t
    }

    /// A sidecar with a cue at 0.5–1 s and one from 1 s to `last_cue_end_ms`.
    fn sidecar(last_cue_end_ms: u64) -> TrackIndex {
        let text = format!("WEBVTT\n\n00:00.500 --> 00:01.000\na\n\n00:01.000 --> {}\nb\n", ms_stamp(last_cue_end_ms));
        crate::source::index::sidecar::sidecar_index("t.vtt", text.as_bytes()).unwrap()
    }

    fn ms_stamp(ms: u64) -> String {
        format!("{}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    }

    #[test]
    fn sidecar_segments_follow_the_video_to_the_end_of_the_presentation() {
        // 6 s of video in 2 s GOPs; the cues end at 1.2 s; audio runs to 6.1 s.
        let v = video(144);
        let a = audio(&vec![1024; 286]);
        let text = sidecar(1200);
        let timelines = plan(&[&v, &a, &text], SegmentPolicy::default());
        let t = &timelines[2];
        assert_eq!(t.timescale, 1000);
        let spans: Vec<(u64, u64)> = t.segments.iter().map(|s| (s.time, s.duration)).collect();
        assert_eq!(spans, [(0, 2000), (2000, 2000), (4000, 2101)], "to the audio's end, 286 × 1024 / 48 kHz");
        assert!(t.segments.iter().all(|s| s.sample_count == 0 && s.bytes == 0));
        assert_eq!((t.peak_bitrate, t.average_bitrate), (0, 0));
        // Same times as the video's segments, in seconds.
        let video_times: Vec<f64> = timelines[0].segments.iter().map(|s| s.time as f64 / 12_288.0).collect();
        let text_times: Vec<f64> = t.segments.iter().map(|s| s.time as f64 / 1000.0).collect();
        assert_eq!(video_times, text_times);
    }

    #[test]
    fn a_late_cue_does_not_lengthen_a_presentation_with_media() {
        let v = video(96);
        let text = sidecar(359_999_000); // a cue at 99:59:59
        let timelines = plan(&[&v, &text], SegmentPolicy::default());
        assert_eq!(timelines[1].segments.len(), 2);
        assert_eq!(timelines[1].total_duration(), 4000);
    }

    #[test]
    fn sidecars_alone_get_target_segments_to_their_last_cue_and_stay_bounded() {
        let text = sidecar(5_000);
        let t = &plan(&[&text], SegmentPolicy::default())[0];
        let spans: Vec<(u64, u64)> = t.segments.iter().map(|s| (s.time, s.duration)).collect();
        assert_eq!(spans, [(0, 2000), (2000, 2000), (4000, 1000)]);
        let t = &plan(&[&text], SegmentPolicy { target_secs: Some(4.0) })[0];
        assert_eq!(t.segments.len(), 2);
        // 100 hours of cues alone: capped at 50,000 segments of 7.2 s, still covering all of it.
        let late = sidecar(360_000_000);
        let t = &plan(&[&late], SegmentPolicy::default())[0];
        assert_eq!(t.segments.len(), 50_000);
        assert_eq!(t.total_duration(), 360_000_000);
        assert_eq!(t.segments[1].time, 7_200);
    }

    /// A text track (timescale 1000) with samples `[start, end)` ms, gaps filled as wvtt does.
    fn mp4_text(spans: &[(u64, u64)]) -> TrackIndex {
        let mut t = audio(&[]);
        t.info.kind = TrackKind::Text;
        t.info.timescale = 1000;
        t.samples = SampleTable {
            dts: spans.iter().map(|s| s.0).collect(),
            end_dts: spans.last().map_or(0, |s| s.1),
            sizes: vec![10; spans.len()],
            offsets: (0..spans.len() as u64).map(|i| i * 10).collect(),
            ..Default::default()
        };
        t
    }

    #[test]
    fn mp4_text_segments_follow_the_video_and_repeat_samples_crossing_a_boundary() {
        // The wvtt fixture's samples: a cue 1.5–2.5 s crosses the 2 s boundary.
        let text = mp4_text(&[(0, 500), (500, 1500), (1500, 2500), (2500, 3000), (3000, 4000), (4000, 4500)]);
        let v = video(144);
        let timelines = plan(&[&v, &text], SegmentPolicy::default());
        let t = &timelines[1];
        let got: Vec<(u64, u64, u32, u32, u64)> =
            t.segments.iter().map(|s| (s.time, s.duration, s.first_sample, s.sample_count, s.bytes)).collect();
        // Sample 2 is in the first two segments; the third has none (no cue after 4.5 s) but exists.
        assert_eq!(got, [(0, 2000, 0, 3, 30), (2000, 2000, 2, 3, 30), (4000, 2000, 5, 1, 10)]);
        assert_eq!(t.peak_bitrate, 120);
    }

    #[test]
    fn audio_alone_is_cut_every_target_duration() {
        // 1024-tick AAC frames: 2 s is 93.75 of them; each cut falls at the frame that
        // straddles the boundary least.
        let track = audio(&[1024; 300]);
        let cuts = standalone_cuts(&track, SegmentPolicy { target_secs: None });
        assert_eq!(cuts, vec![0, 94, 187, 281]);
        let cuts = standalone_cuts(&track, SegmentPolicy { target_secs: Some(4.0) });
        assert_eq!(cuts, vec![0, 187]);
    }

    #[test]
    fn cuts_from_the_samples_equal_cuts_at_every_boundary() {
        // One sample of a minute among AAC frames: the same cuts as listing every 2 s boundary.
        let mut durations = vec![1024; 400];
        durations[100] = 60 * 48_000;
        let track = audio(&durations);
        let end = track.samples.end_dts as f64 / 48_000.0;
        let boundaries: Vec<f64> = (0..(end / 2.0).ceil() as usize).map(|k| k as f64 * 2.0).collect();
        let cuts = standalone_cuts(&track, SegmentPolicy { target_secs: None });
        assert_eq!(cuts, cuts_at_times(&track, &boundaries));
        assert_eq!(cuts, vec![0, 94, 100, 101, 188, 282, 376]);
    }

    #[test]
    fn a_huge_sample_duration_costs_no_more_than_the_samples() {
        // One sample lasting ~2.8 years: one boundary list would hold 45 M entries; the cuts
        // come from the 200 samples.
        let mut durations = vec![1024; 200];
        durations[100] = u32::MAX as u64 * 1000;
        let track = audio(&durations);
        let cuts = standalone_cuts(&track, SegmentPolicy { target_secs: None });
        assert_eq!(cuts, vec![0, 94, 100, 101, 127]);
    }
}
