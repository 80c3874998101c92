//! Track indexes: everything the packager needs to know about a source file's tracks, read
//! once from the file's metadata (moov, moof, sidx) and cached. Media bytes are never read here.
//!
//! A [`TrackIndex`] is struct-of-arrays: a 2-hour 30 fps video track (216k samples) costs
//! about 5 MB, and segment planning scans contiguous vectors.

pub mod fragmented;
pub mod locate;
pub mod progressive;
pub mod sidecar;

use bytes::Bytes;

use crate::source::storage::ObjectVersion;

pub use crate::media::codec::{CodecFamily, CodecInfo};
pub use crate::media::TrackKind;

/// The part of an edit list that survives repackaging: an optional initial empty edit
/// (delays the track) and the media time at which presentation starts (B-frame delay,
/// AAC priming). Both in the track's media timescale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EditOffset {
    pub empty_duration: u64,
    pub media_time: u64,
}

impl EditOffset {
    /// presentation time = decode time + composition offset + this.
    pub fn presentation_shift(&self) -> i64 {
        self.empty_duration as i64 - self.media_time as i64
    }
}

/// Track-level facts from moov.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrackInfo {
    pub track_id: u32,
    pub kind: TrackKind,
    pub timescale: u32,
    /// ISO 639-2/T code from mdhd ("und" when absent).
    pub language: String,
    /// The source's first sample entry (e.g. a whole `avc1` box with `avcC`), copied verbatim
    /// into init segments so every codec detail survives.
    #[serde(skip)]
    pub sample_entry: Bytes,
    pub codec: CodecInfo,
    pub edit: EditOffset,
}

/// Per-sample tables of one track (struct-of-arrays).
#[derive(Debug, Clone, Default)]
pub struct SampleTable {
    /// Decode time of each sample, media timescale, from the track's first sample.
    pub dts: Vec<u64>,
    /// Decode time just after the last sample.
    pub end_dts: u64,
    /// Composition offsets; empty when every offset is zero.
    pub cts_offsets: Vec<i32>,
    pub sizes: Vec<u32>,
    /// Absolute byte offset of each sample in its file.
    pub offsets: Vec<u64>,
    /// Indexes of sync samples, ascending; `None` when every sample is a sync sample.
    pub sync_samples: Option<Vec<u32>>,
    /// First sample of each source fragment (fragmented sources only), ascending.
    pub fragment_starts: Vec<u32>,
}

impl SampleTable {
    pub fn len(&self) -> usize {
        self.sizes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
    pub fn cts_offset(&self, i: usize) -> i32 {
        self.cts_offsets.get(i).copied().unwrap_or(0)
    }
    pub fn duration(&self, i: usize) -> u64 {
        let next = self.dts.get(i + 1).copied().unwrap_or(self.end_dts);
        next.saturating_sub(self.dts[i])
    }
    pub fn is_sync(&self, i: usize) -> bool {
        match &self.sync_samples {
            None => true,
            Some(list) => list.binary_search(&(i as u32)).is_ok(),
        }
    }
    /// Sample indexes that may start a segment.
    pub fn sync_iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match &self.sync_samples {
            None => Box::new(0..self.len() as u32),
            Some(list) => Box::new(list.iter().copied()),
        }
    }
    /// Bytes of samples `range`, summed.
    pub fn byte_count(&self, range: std::ops::Range<usize>) -> u64 {
        self.sizes[range].iter().map(|&s| s as u64).sum()
    }
    /// Checks the invariants the packager relies on; called once after indexing.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.sizes.len();
        if self.dts.len() != n || self.offsets.len() != n {
            return Err(format!(
                "sample tables disagree: {} sizes, {} times, {} offsets",
                n,
                self.dts.len(),
                self.offsets.len()
            ));
        }
        if !self.cts_offsets.is_empty() && self.cts_offsets.len() != n {
            return Err(format!("{} composition offsets for {} samples", self.cts_offsets.len(), n));
        }
        if self.dts.windows(2).any(|w| w[1] < w[0]) || self.dts.last().is_some_and(|&d| d > self.end_dts) {
            return Err("decode times go backwards".into());
        }
        // Timelines add composition offsets and edit shifts to decode times in i64.
        if self.end_dts > MAX_DECODE_TIME {
            return Err(format!("decode time {} is out of range", self.end_dts));
        }
        if let Some(sync) = &self.sync_samples {
            if sync.windows(2).any(|w| w[1] <= w[0]) || sync.last().is_some_and(|&s| s as usize >= n) {
                return Err("sync sample table is not ascending or points past the last sample".into());
            }
        }
        Ok(())
    }
    /// Checks that every sample's bytes lie inside the file (`file_size` from the listing or
    /// the first read) and that no two samples share bytes, so segment builds never ask
    /// storage for a range outside the object and a size that swallows the samples after it
    /// cannot make one segment read most of the file. Called once after indexing.
    pub fn check_byte_ranges(&self, file_size: u64) -> Result<(), String> {
        // One pass for the usual layout (samples in file order, inside the file, disjoint);
        // any other layout takes the checks below, which also name the offending samples.
        let mut previous_end = 0u64;
        let in_file_order = self.offsets.iter().zip(&self.sizes).all(|(&offset, &size)| {
            let end = offset.checked_add(size as u64);
            let fits = offset >= previous_end && end.is_some_and(|end| end <= file_size);
            previous_end = end.unwrap_or(u64::MAX);
            fits
        });
        if in_file_order {
            return Ok(());
        }
        for (i, (&offset, &size)) in self.offsets.iter().zip(&self.sizes).enumerate() {
            if offset.checked_add(size as u64).is_none_or(|end| end > file_size) {
                return Err(format!(
                    "sample {i} claims bytes {offset}+{size}, outside the file's {file_size} bytes (truncated or corrupt)"
                ));
            }
        }
        // Cannot overflow: checked above.
        let overlap = |a: usize, b: usize| self.offsets[a] + self.sizes[a] as u64 > self.offsets[b];
        let overlapping = if self.offsets.is_sorted() {
            (1..self.len()).find(|&i| overlap(i - 1, i)).map(|i| (i - 1, i))
        } else {
            let mut by_offset: Vec<usize> = (0..self.len()).collect();
            by_offset.sort_unstable_by_key(|&i| self.offsets[i]);
            by_offset.windows(2).find(|w| overlap(w[0], w[1])).map(|w| (w[0], w[1]))
        };
        match overlapping {
            Some((a, b)) => Err(format!(
                "sample {a} ({}+{}) overlaps sample {b} at {} (corrupt size or offset)",
                self.offsets[a], self.sizes[a], self.offsets[b]
            )),
            None => Ok(()),
        }
    }
}

/// Largest decode time accepted (2^62 ticks: 1.6 million years at 90 kHz), so that
/// presentation-time arithmetic in i64 cannot overflow on corrupt input.
pub const MAX_DECODE_TIME: u64 = 1 << 62;

/// Most samples one track may declare (about 92 days of 2.5 ms samples): bounds what a
/// few hostile bytes of moov can make the indexer allocate.
pub const MAX_SAMPLES: usize = 20_000_000;

/// One indexed track of one file.
#[derive(Debug, Clone)]
pub struct TrackIndex {
    pub info: TrackInfo,
    pub samples: SampleTable,
    /// A WebVTT sidecar file's cues, parsed whole when it is indexed (its sample table is
    /// empty: text segments are cut from the cues, not read from the file); `None` for tracks
    /// of media files.
    pub sidecar: Option<std::sync::Arc<crate::media::webvtt::WebVtt>>,
}

impl TrackIndex {
    /// Earliest presentation time of samples `range` in the media timeline (composition
    /// time, edit list not applied), as DASH `S@t` and our segment URLs use it.
    pub fn earliest_presentation(&self, range: std::ops::Range<usize>) -> u64 {
        let s = &self.samples;
        let presentation = |dts: u64, cts: i32| (dts as i64 + cts as i64).max(0) as u64;
        // Over slices rather than per-index lookups: this runs over every sample at planning.
        let earliest = match (s.dts.get(range.clone()), s.cts_offsets.get(range.clone())) {
            (Some(dts), _) if s.cts_offsets.is_empty() => dts.iter().map(|&d| presentation(d, 0)).min(),
            (Some(dts), Some(cts)) => dts.iter().zip(cts).map(|(&d, &c)| presentation(d, c)).min(),
            // Tables shorter than the range (never after indexing): sample by sample.
            _ => range.map(|i| presentation(s.dts[i], s.cts_offset(i))).min(),
        };
        earliest.unwrap_or(s.end_dts)
    }
    /// Track duration in seconds (decode timeline).
    pub fn duration_secs(&self) -> f64 {
        self.samples.end_dts as f64 / self.info.timescale.max(1) as f64
    }
}

/// All tracks of one source file.
#[derive(Debug, Clone)]
pub struct FileIndex {
    pub path: String,
    pub version: ObjectVersion,
    pub tracks: Vec<TrackIndex>,
    /// Storage reads it took to build this index (request economy is a product feature).
    pub reads: u32,
}

impl TrackIndex {
    /// Nominal frame rate of a video track as a fraction (e.g. 30000/1001), from the most
    /// common sample duration; `None` for tracks without samples.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        let s = &self.samples;
        if s.len() < 2 {
            return None;
        }
        let mut counts: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for i in 0..s.len().min(2048) {
            *counts.entry(s.duration(i)).or_default() += 1;
        }
        let (&dur, _) = counts.iter().filter(|(&d, _)| d > 0).max_by_key(|(&d, &c)| (c, d))?;
        let ts = self.info.timescale as u64;
        let g = gcd(ts, dur);
        Some(((ts / g) as u32, (dur / g) as u32))
    }
}

/// Greatest common divisor, at least 1 (safe to divide by).
pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(offsets: Vec<u64>, sizes: Vec<u32>) -> SampleTable {
        SampleTable { offsets, sizes, ..Default::default() }
    }

    #[test]
    fn byte_ranges_inside_the_file_and_disjoint_in_any_order() {
        assert_eq!(table(vec![0, 50, 100], vec![50, 0, 10]).check_byte_ranges(110), Ok(()));
        assert_eq!(table(vec![100, 0, 50], vec![10, 50, 10]).check_byte_ranges(110), Ok(()));
        let e = table(vec![0, 50], vec![10, 61]).check_byte_ranges(110).unwrap_err();
        assert!(e.contains("sample 1") && e.contains("outside"), "{e}");
        let e = table(vec![u64::MAX], vec![1]).check_byte_ranges(u64::MAX).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        let e = table(vec![0, 50], vec![51, 10]).check_byte_ranges(110).unwrap_err();
        assert!(e.contains("sample 0") && e.contains("overlaps sample 1"), "{e}");
        let e = table(vec![100, 0, 50], vec![10, 51, 10]).check_byte_ranges(110).unwrap_err();
        assert!(e.contains("sample 1") && e.contains("overlaps sample 2"), "{e}");
    }
}
