//! The source bytes a segment is built from: which ranges of its file to read (a plan made from
//! the segment's samples, before any allocation) and the bytes read, found by file offset.
//!
//! Most segments are one ranged read of the span from their first to their last sample byte.
//! A segment whose samples are spread out (the audio of a progressive MP4 interleaved with
//! video in chunks, or a crafted file whose samples lie far apart inside it) is read as a few
//! runs instead, and one spread so thinly that even those would read far more than its media
//! is refused as corrupt, so no file can make a segment read most of a large object.

use std::ops::Range;

use bytes::Bytes;

use crate::source::index::TrackIndex;
use crate::source::timeline::Segment;

/// Samples this close are read together: a gap below it costs less as wasted bytes than as
/// another GET (request price and latency on object stores). It also keeps the common muxer
/// output (audio and video alternating frame by frame) one read, as before.
const COALESCE_GAP: u64 = 1 << 20;
/// At most this many reads per segment; beyond it the smallest gaps are read through.
pub(crate) const MAX_RUNS: usize = 64;
/// A span within twice its samples plus this is read in one piece, like a contiguous segment.
const SLACK: u64 = 1 << 20;
/// Reads above twice the samples plus [`SLACK`] are still allowed up to this many bytes: a
/// legitimate audio segment interleaved frame by frame with high-bitrate video (6 s of 85
/// Mbit/s) reads its whole span. Above both bounds the layout is refused.
const SPREAD_ALLOWANCE: u64 = 64 << 20;
/// Reads of one segment's runs in flight at once.
pub(crate) const CONCURRENT_READS: usize = 4;

/// The ranges of the source file a segment needs, ascending and disjoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    pub runs: Vec<Range<u64>>,
}

impl ReadPlan {
    /// Bytes the plan reads (what a build holds while it runs).
    pub fn bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }
}

/// A segment whose samples no bounded plan reads: spread over `span` bytes of the file for
/// `samples` bytes of media; the best plan of [`MAX_RUNS`] reads would read `read` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spread {
    pub span: u64,
    pub samples: u64,
    pub read: u64,
}

/// The byte span of the source file a segment covers: from the lowest sample offset to the end
/// of the furthest sample. Empty when the segment has no samples (or lies outside the index).
#[cfg(test)]
pub(crate) fn source_range(track: &TrackIndex, segment: &Segment) -> Range<u64> {
    let samples = sample_ranges(track, segment);
    let start = samples.iter().map(|r| r.start).min();
    let end = samples.iter().map(|r| r.end).max();
    match (start, end) {
        (Some(start), Some(end)) => start..end,
        _ => 0..0,
    }
}

/// The file ranges of the segment's samples, in sample order; none when the segment lies
/// outside the index (the segment builder reports that).
fn sample_ranges(track: &TrackIndex, segment: &Segment) -> Vec<Range<u64>> {
    let s = &track.samples;
    let first = segment.first_sample as usize;
    let range = first..first.saturating_add(segment.sample_count as usize);
    let (Some(offsets), Some(sizes)) = (s.offsets.get(range.clone()), s.sizes.get(range)) else {
        return Vec::new();
    };
    offsets.iter().zip(sizes).map(|(&o, &n)| o..o.saturating_add(u64::from(n))).collect()
}

/// Plans the reads of `segment`: one read of its span when that is not much larger than its
/// samples (the common case: one GET, payload slices without copies), else runs of samples
/// whose gaps are small, at most [`MAX_RUNS`] of them (the smallest gaps are read through).
pub(crate) fn plan_reads(track: &TrackIndex, segment: &Segment) -> Result<ReadPlan, Spread> {
    plan(sample_ranges(track, segment))
}

/// Plans the reads of file ranges gathered elsewhere (a thumbnail tile's keyframes), by the
/// same rules as a segment's samples.
pub(crate) fn plan_ranges(ranges: Vec<Range<u64>>) -> Result<ReadPlan, Spread> {
    plan(ranges)
}

fn plan(mut samples: Vec<Range<u64>>) -> Result<ReadPlan, Spread> {
    samples.retain(|r| r.start < r.end);
    samples.sort_unstable_by_key(|r| r.start);
    let (Some(first), Some(end)) = (samples.first(), samples.iter().map(|r| r.end).max()) else {
        return Ok(ReadPlan::default());
    };
    let span = end - first.start;
    let sample_bytes: u64 = samples.iter().map(|r| r.end - r.start).sum();
    let bound = sample_bytes.saturating_mul(2).saturating_add(SLACK);
    if span <= bound {
        let whole = first.start..end;
        return Ok(ReadPlan { runs: vec![whole] });
    }
    let mut runs: Vec<Range<u64>> = Vec::new();
    for r in samples {
        match runs.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(COALESCE_GAP) => last.end = last.end.max(r.end),
            _ => runs.push(r),
        }
    }
    if runs.len() > MAX_RUNS {
        // Keep the MAX_RUNS - 1 widest gaps as splits; read through the others.
        let mut gaps: Vec<(u64, usize)> =
            runs.windows(2).enumerate().map(|(i, w)| (w[1].start - w[0].end, i)).collect();
        gaps.sort_unstable_by(|a, b| b.cmp(a));
        let mut splits: Vec<usize> = gaps[..MAX_RUNS - 1].iter().map(|&(_, i)| i).collect();
        splits.sort_unstable();
        let mut merged = Vec::with_capacity(MAX_RUNS);
        let mut start = runs[0].start;
        for &i in &splits {
            merged.push(start..runs[i].end);
            start = runs[i + 1].start;
        }
        merged.push(start..runs[runs.len() - 1].end);
        runs = merged;
    }
    let plan = ReadPlan { runs };
    let read = plan.bytes();
    if read > bound && read > SPREAD_ALLOWANCE {
        return Err(Spread { span, samples: sample_bytes, read });
    }
    Ok(plan)
}

/// The bytes read for a segment: one buffer per planned run, each at its file offset.
#[derive(Debug, Clone, Default)]
pub struct SourceSpan {
    /// (file offset, bytes), ascending and disjoint.
    runs: Vec<(u64, Bytes)>,
}

impl SourceSpan {
    /// One buffer holding the file's bytes from `file_offset` on.
    pub fn new(file_offset: u64, data: Bytes) -> Self {
        SourceSpan { runs: vec![(file_offset, data)] }
    }

    /// Buffers read at their file offsets (sorted here).
    pub fn from_runs(mut runs: Vec<(u64, Bytes)>) -> Self {
        runs.sort_unstable_by_key(|r| r.0);
        SourceSpan { runs }
    }

    /// Where the file bytes `offset..offset + size` lie: the buffer and the range inside it;
    /// `None` when no buffer holds all of them.
    pub fn locate(&self, offset: u64, size: u64) -> Option<(usize, Range<usize>)> {
        let run = self.runs.partition_point(|(start, _)| *start <= offset).checked_sub(1)?;
        let (start, data) = &self.runs[run];
        let from = offset - start;
        let to = from.checked_add(size)?;
        (to <= data.len() as u64).then_some((run, from as usize..to as usize))
    }

    /// The file bytes `offset..offset + size`, borrowed.
    pub fn sample(&self, offset: u64, size: u64) -> Option<&[u8]> {
        let (run, range) = self.locate(offset, size)?;
        Some(&self.runs[run].1[range])
    }

    /// Bytes `range` of buffer `run` (from [`SourceSpan::locate`]), without copying.
    pub fn slice(&self, run: usize, range: Range<usize>) -> Bytes {
        self.runs[run].1.slice(range)
    }

    /// The first buffer (tests build single-buffer spans).
    #[cfg(test)]
    pub fn data(&self) -> &Bytes {
        &self.runs[0].1
    }

    /// The file offset of the first buffer.
    #[cfg(test)]
    pub fn file_offset(&self) -> u64 {
        self.runs[0].0
    }

    /// The file ranges held, for error messages.
    pub fn describe(&self) -> String {
        let ranges: Vec<String> =
            self.runs.iter().map(|(o, d)| format!("{o}..{}", o.saturating_add(d.len() as u64))).collect();
        ranges.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn samples(list: &[(u64, u64)]) -> Vec<Range<u64>> {
        list.iter().map(|&(o, n)| o..o + n).collect()
    }

    #[test]
    fn a_sidecar_segment_reads_nothing() {
        // Its cues are in the index; no byte of storage is read for any of its segments.
        let text = b"WEBVTT\n\n00:00.500 --> 00:03.000\nacross\n";
        let track = crate::source::index::sidecar::sidecar_index("a/en.vtt", text).unwrap();
        let timeline = &crate::source::timeline::plan(&[&track], Default::default())[0];
        assert_eq!(timeline.segments.len(), 2);
        for segment in &timeline.segments {
            assert_eq!(plan_reads(&track, segment), Ok(ReadPlan::default()));
        }
    }

    #[test]
    fn contiguous_samples_are_one_read() {
        let s = samples(&[(1000, 500), (1500, 300), (1800, 200)]);
        assert_eq!(plan(s).unwrap().runs, vec![1000..2000]);
        // Out of order in the file (B-frames stored elsewhere) but close: still one read.
        let s = samples(&[(5000, 100), (1000, 100), (3000, 100)]);
        assert_eq!(plan(s).unwrap().runs, vec![1000..5100]);
        assert_eq!(plan(Vec::new()).unwrap(), ReadPlan::default());
    }

    #[test]
    fn interleaved_audio_is_a_few_runs_of_about_its_bytes() {
        // 6 s of AAC (~47 frames/s, 400 bytes each) stored in 1 s chunks between 1 s chunks of
        // 40 Mbit/s video (5 MB each).
        let mut list = Vec::new();
        let mut offset = 10_000;
        for _chunk in 0..6 {
            for _frame in 0..47 {
                list.push((offset, 400));
                offset += 400;
            }
            offset += 5_000_000;
        }
        let p = plan(samples(&list)).unwrap();
        assert_eq!(p.runs.len(), 6);
        assert_eq!(p.bytes(), 6 * 47 * 400, "only the audio is read");
        // Frame-by-frame interleaving (gaps of one video frame) stays one read of the span.
        let list: Vec<(u64, u64)> = (0..280).map(|i| (i * 200_400, 400)).collect();
        assert_eq!(plan(samples(&list)).unwrap().runs.len(), 1);
    }

    #[test]
    fn too_many_runs_read_through_the_smallest_gaps() {
        // 100 chunks: every tenth gap is wide, the others 2 MiB.
        let mut list = Vec::new();
        let mut offset = 0;
        for i in 0..100u64 {
            list.push((offset, MIB));
            offset += MIB + if i % 10 == 9 { 100 * MIB } else { 2 * MIB };
        }
        let p = plan(samples(&list)).unwrap();
        assert_eq!(p.runs.len(), MAX_RUNS);
        assert!(p.runs.windows(2).all(|w| w[0].end < w[1].start), "ascending and disjoint");
        // The 9 wide gaps stay splits; 36 of the 2 MiB gaps are read through.
        assert_eq!(p.bytes(), 100 * MIB + 36 * 2 * MIB);
    }

    #[test]
    fn samples_spread_thinly_over_the_file_are_refused() {
        // 200 samples of 1 KiB evenly over 2 GB.
        let list: Vec<(u64, u64)> = (0..200).map(|i| (i * 10_000_000, 1024)).collect();
        let e = plan(samples(&list)).unwrap_err();
        assert_eq!(e.samples, 200 * 1024);
        assert_eq!(e.span, 199 * 10_000_000 + 1024);
        assert!(e.read > SPREAD_ALLOWANCE && e.read < e.span);
        // Few enough far-apart samples are read one by one.
        let list: Vec<(u64, u64)> = (0..50).map(|i| (i * 40_000_000, 1024)).collect();
        let p = plan(samples(&list)).unwrap();
        assert_eq!((p.runs.len(), p.bytes()), (50, 50 * 1024));
    }

    #[test]
    fn span_finds_samples_in_any_run() {
        let span =
            SourceSpan::from_runs(vec![(5000, Bytes::from_static(b"world")), (100, Bytes::from_static(b"hello"))]);
        assert_eq!(span.sample(101, 3), Some(&b"ell"[..]));
        assert_eq!(span.sample(5000, 5), Some(&b"world"[..]));
        assert_eq!(span.locate(5002, 3), Some((1, 2..5)));
        assert_eq!(span.sample(103, 3), None, "past the end of a run");
        assert_eq!(span.sample(99, 1), None, "before the first run");
        assert_eq!(span.sample(200, 1), None, "between runs");
        assert_eq!(span.sample(u64::MAX, 2), None);
        assert_eq!(span.slice(0, 1..3), Bytes::from_static(b"el"));
        assert_eq!(span.describe(), "100..105, 5000..5005");
    }
}
