//! fMP4 / CMAF init and media segments, built from a [`TrackIndex`] and the source bytes of one
//! segment's samples.
//!
//! A media segment is a small header (`styp`, `moof`, the `mdat` header) followed by zero-copy
//! slices of the bytes read from storage: samples are never copied, only referenced.
//!
//! Edit lists (ISO/IEC 14496-12 §8.6.6): the init segment of a fragmented file has no samples,
//! so its movie duration is unknown. §8.6.6.1 allows exactly this case: "in an empty initial
//! movie of a fragmented movie file … the segment_duration of this edit may be zero, whereupon
//! the edit provides the offset from media composition time to movie presentation time, for the
//! movie and subsequent movie fragments". CMAF (ISO/IEC 23000-19 §7.5.13, edit lists in the
//! CMAF header) uses the same form. So the elst we write is an optional empty edit
//! (`media_time` −1, `segment_duration` = the source's empty duration, mvhd timescale = media
//! timescale here) followed by one edit with `segment_duration` 0 and the source's `media_time`
//! (B-frame delay, AAC priming). Players trim audio priming from it; ffmpeg (5.1) only shifts
//! fragment timestamps by it and decodes every coded sample, priming included, which is why
//! the lossless tests compare every coded sample (`-ignore_editlist 1` on the source side).

use std::ops::Range;

use bytes::Bytes;

use crate::index::{TrackIndex, TrackKind};
use crate::mp4::reader::ParseError;
use crate::mp4::writer::BoxWriter;
use crate::mp4::FourCC;
use crate::timeline::Segment;
use crate::url::Format;

/// Which flavour of fragmented MP4 to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// CMAF: `cmfc` header brand, `styp` (`cmfs`) before every segment. HLS `m3u8-cmaf`,
    /// DASH `mpd-time-cmaf`.
    Cmaf,
    /// DASH common streaming format: plain ISO BMFF fragments (`iso6`/`dash`), no `styp`.
    Csf,
}

impl From<Format> for Flavor {
    fn from(format: Format) -> Self {
        match format {
            Format::MpdTimeCsf => Flavor::Csf,
            // MPEG-TS formats have no fMP4 segments; the URL grammar never routes them here.
            Format::M3u8Cmaf | Format::MpdTimeCmaf | Format::M3u8Aapl | Format::M3u8AaplV3 => Flavor::Cmaf,
        }
    }
}

/// The samples of one segment as fetched from storage: `data` holds the file bytes starting at
/// absolute offset `file_offset` and covers every sample of the segment.
#[derive(Debug, Clone)]
pub struct SourceSpan {
    pub data: Bytes,
    pub file_offset: u64,
}

/// A built media segment: header bytes followed by zero-copy slices of the source bytes.
#[derive(Debug, Clone, Default)]
pub struct MediaSegment {
    pub parts: Vec<Bytes>,
}

impl MediaSegment {
    /// Total length in bytes (the response's Content-Length).
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.is_empty())
    }
    /// The whole segment in one buffer (copies; for tests, the CLI and encryption).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => {
                let mut out = Vec::with_capacity(self.len() as usize);
                for p in parts {
                    out.extend_from_slice(p);
                }
                Bytes::from(out)
            }
        }
    }
}

// Sample flags (ISO/IEC 14496-12 §8.8.3.1): sample_depends_on in bits 24-25,
// sample_is_non_sync_sample in bit 16.
const FLAGS_SYNC: u32 = 0x0200_0000;
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

// tfhd flags.
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

// trun flags.
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_CTS: u32 = 0x00_0800;

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The init segment (`ftyp` + `moov`) of one track.
pub fn init_segment(track: &TrackIndex, flavor: Flavor) -> Bytes {
    let info = &track.info;
    let mut w = BoxWriter::with_capacity(768 + info.sample_entry.len());

    // ftyp. CMAF (ISO/IEC 23000-19 §7.2): a CMAF header carries the 'cmfc' structural brand;
    // 'iso6' because we use tfdt v1 / trun v1 and default-base-is-moof.
    let ftyp = w.begin(b"ftyp");
    match flavor {
        Flavor::Cmaf => {
            w.fourcc(b"cmfc");
            w.u32(0);
            for b in [b"cmfc", b"iso6", b"mp41"] {
                w.fourcc(b);
            }
        }
        Flavor::Csf => {
            w.fourcc(b"iso6");
            w.u32(0);
            for b in [b"iso6", b"dash", b"mp41"] {
                w.fourcc(b);
            }
        }
    }
    w.end(ftyp);

    let moov = w.begin(b"moov");

    // mvhd v0: movie timescale = media timescale, so edit durations need no conversion.
    let mvhd = w.begin_full(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(info.timescale);
    w.u32(0); // duration: unknown in a fragmented movie
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(2 + 8); // reserved
    matrix(&mut w);
    w.zeros(6 * 4); // pre_defined
    w.u32(info.track_id.saturating_add(1)); // next_track_ID
    w.end(mvhd);

    let trak = w.begin(b"trak");
    let tkhd = w.begin_full(b"tkhd", 0, 0x3); // track_enabled | track_in_movie
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(info.track_id);
    w.u32(0); // reserved
    w.u32(0); // duration
    w.zeros(8); // reserved
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if info.kind == TrackKind::Audio { 0x0100 } else { 0 }); // volume
    w.u16(0); // reserved
    matrix(&mut w);
    let (width, height) = match info.kind {
        TrackKind::Video => (info.codec.width as u32, info.codec.height as u32),
        _ => (0, 0),
    };
    w.u32(width << 16);
    w.u32(height << 16);
    w.end(tkhd);

    if info.edit != Default::default() {
        write_edts(&mut w, track);
    }

    let mdia = w.begin(b"mdia");
    let mdhd = w.begin_full(b"mdhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(info.timescale);
    w.u32(0); // duration
    w.u16(pack_language(&info.language));
    w.u16(0); // pre_defined
    w.end(mdhd);

    let entry_type = sample_entry_type(track);
    let (handler, name): (&FourCC, &str) = match info.kind {
        TrackKind::Video => (b"vide", "VideoHandler"),
        TrackKind::Audio => (b"soun", "SoundHandler"),
        // TTML in MP4 (ISO/IEC 14496-30) is a subtitle track; WebVTT and 3GPP text are text.
        TrackKind::Text if &entry_type == b"stpp" => (b"subt", "SubtitleHandler"),
        TrackKind::Text => (b"text", "TextHandler"),
    };
    let hdlr = w.begin_full(b"hdlr", 0, 0);
    w.u32(0); // pre_defined
    w.fourcc(handler);
    w.zeros(12); // reserved
    w.cstr(name);
    w.end(hdlr);

    let minf = w.begin(b"minf");
    match info.kind {
        TrackKind::Video => {
            let vmhd = w.begin_full(b"vmhd", 0, 1);
            w.u16(0); // graphicsmode
            w.zeros(6); // opcolor
            w.end(vmhd);
        }
        TrackKind::Audio => {
            let smhd = w.begin_full(b"smhd", 0, 0);
            w.i16(0); // balance
            w.u16(0); // reserved
            w.end(smhd);
        }
        TrackKind::Text if handler == b"subt" => {
            let sthd = w.begin_full(b"sthd", 0, 0);
            w.end(sthd);
        }
        TrackKind::Text => {
            let nmhd = w.begin_full(b"nmhd", 0, 0);
            w.end(nmhd);
        }
    }
    let dinf = w.begin(b"dinf");
    let dref = w.begin_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.begin_full(b"url ", 0, 1); // self-contained: media is in this file
    w.end(url);
    w.end(dref);
    w.end(dinf);

    let stbl = w.begin(b"stbl");
    let stsd = w.begin_full(b"stsd", 0, 0);
    w.u32(1);
    w.bytes(&info.sample_entry);
    w.end(stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = w.begin_full(kind, 0, 0);
        w.u32(0); // entry_count
        w.end(b);
    }
    let stsz = w.begin_full(b"stsz", 0, 0);
    w.u32(0); // sample_size
    w.u32(0); // sample_count
    w.end(stsz);
    w.end(stbl);
    w.end(minf);
    w.end(mdia);
    w.end(trak);


    let mvex = w.begin(b"mvex");
    let trex = w.begin_full(b"trex", 0, 0);
    w.u32(info.track_id);
    w.u32(1); // default_sample_description_index
    w.u32(0); // default_sample_duration
    w.u32(0); // default_sample_size
    w.u32(0); // default_sample_flags
    w.end(trex);
    w.end(mvex);
    w.end(moov);
    w.into_bytes()
}

fn matrix(w: &mut BoxWriter) {
    for v in UNITY_MATRIX {
        w.u32(v);
    }
}

/// `edts/elst`: optional empty edit, then the media edit with `segment_duration` 0 (see the
/// module documentation for the rule).
fn write_edts(w: &mut BoxWriter, track: &TrackIndex) {
    let edit = track.info.edit;
    let media_time = i64::try_from(edit.media_time).unwrap_or(i64::MAX);
    let wide = edit.empty_duration > u32::MAX as u64 || media_time > i32::MAX as i64;
    let edts = w.begin(b"edts");
    let elst = w.begin_full(b"elst", wide as u8, 0);
    let mut entries: Vec<(u64, i64)> = Vec::with_capacity(2);
    if edit.empty_duration > 0 {
        entries.push((edit.empty_duration, -1));
    }
    entries.push((0, media_time));
    w.u32(entries.len() as u32);
    for (duration, time) in entries {
        if wide {
            w.u64(duration);
            w.i64(time);
        } else {
            w.u32(duration as u32);
            w.i32(time as i32);
        }
        w.u16(1); // media_rate_integer
        w.u16(0); // media_rate_fraction
    }
    w.end(elst);
    w.end(edts);
}

/// ISO 639-2/T code packed into 15 bits (mdhd); anything else becomes "und".
fn pack_language(lang: &str) -> u16 {
    let code = lang.as_bytes();
    let code = if code.len() == 3 && code.iter().all(u8::is_ascii_lowercase) { code } else { b"und" };
    code.iter().fold(0u16, |acc, &c| (acc << 5) | (c - 0x60) as u16)
}

fn sample_entry_type(track: &TrackIndex) -> FourCC {
    match track.info.sample_entry.get(4..8) {
        Some(t) => [t[0], t[1], t[2], t[3]],
        None => [0; 4],
    }
}

/// The byte span of the source file a segment needs (one ranged read): from the lowest sample
/// offset to the end of the furthest sample. Empty when the segment has no samples (or lies
/// outside the index).
pub fn source_range(track: &TrackIndex, segment: &Segment) -> Range<u64> {
    let s = &track.samples;
    let range = sample_range(segment);
    let (Some(offsets), Some(sizes)) = (s.offsets.get(range.clone()), s.sizes.get(range)) else {
        return 0..0;
    };
    let start = offsets.iter().copied().min();
    let end = offsets.iter().zip(sizes).map(|(&o, &n)| o.saturating_add(n as u64)).max();
    match (start, end) {
        (Some(start), Some(end)) => start..end,
        _ => 0..0,
    }
}

/// The segment's sample indexes, computed without the u32 overflow `Segment::samples` could hit.
fn sample_range(segment: &Segment) -> Range<usize> {
    let start = segment.first_sample as usize;
    start..start.saturating_add(segment.sample_count as usize)
}

fn seg_err<T>(msg: String) -> Result<T, ParseError> {
    Err(ParseError(msg))
}

/// Builds one media segment: [`Flavor::Cmaf`] `styp`, then `moof` (`mfhd`, `traf`: `tfhd`,
/// `tfdt`, `trun`) and `mdat` whose payload is slices of `span.data`.
pub fn media_segment(
    track: &TrackIndex,
    segment: &Segment,
    sequence_number: u32,
    span: &SourceSpan,
    flavor: Flavor,
) -> Result<MediaSegment, ParseError> {
    let s = &track.samples;
    let range = sample_range(segment);
    let n = range.len();
    if range.end > s.len() || s.dts.len() < s.len() || s.offsets.len() < s.len() {
        return seg_err(format!("segment samples {}..{} outside the track's {} samples", range.start, range.end, s.len()));
    }
    if n == 0 {
        return seg_err("segment has no samples".into());
    }

    // Per-sample fields.
    let mut durations = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut cts = Vec::with_capacity(n);
    for i in range.clone() {
        let d = s.duration(i);
        let Ok(d) = u32::try_from(d) else {
            return seg_err(format!("sample {i} lasts {d} ticks, more than a trun can hold"));
        };
        durations.push(d);
        flags.push(if s.is_sync(i) { FLAGS_SYNC } else { FLAGS_NON_SYNC });
        cts.push(s.cts_offsets.get(i).copied().unwrap_or(0));
    }
    let sizes = &s.sizes[range.clone()];

    let all_same = |v: &[u32]| v.iter().all(|&x| x == v[0]);
    let default_duration = all_same(&durations).then_some(durations[0]);
    let default_size = all_same(sizes).then_some(sizes[0]);
    // Flags: one default for all; or a default for the rest plus first_sample_flags; or per sample.
    let (default_flags, first_flags, per_sample_flags) = if all_same(&flags) {
        (Some(flags[0]), None, false)
    } else if n > 1 && all_same(&flags[1..]) {
        (Some(flags[1]), Some(flags[0]), false)
    } else {
        (None, None, true)
    };
    let has_cts = cts.iter().any(|&c| c != 0);
    let negative_cts = cts.iter().any(|&c| c < 0);

    let payload: u64 = sizes.iter().map(|&x| x as u64).sum();
    let mdat_header_len: u64 = if payload + 8 > u32::MAX as u64 { 16 } else { 8 };

    // Header buffer: styp + moof + mdat header.
    let entry_len = 4 * (usize::from(default_duration.is_none()) + usize::from(default_size.is_none()) + usize::from(per_sample_flags) + usize::from(has_cts));
    let mut w = BoxWriter::with_capacity(200 + n * entry_len);
    if flavor == Flavor::Cmaf {
        // ISO/IEC 23000-19 §7.3.2: a CMAF segment's styp carries 'cmfs'; 'msdh' = DASH media
        // segment. Not 'msix': that brand promises a sidx in every segment, which we don't write.
        let styp = w.begin(b"styp");
        w.fourcc(b"cmfs");
        w.u32(0);
        w.fourcc(b"cmfs");
        w.fourcc(b"msdh");
        w.end(styp);
    }

    let moof_start = w.position();
    let moof = w.begin(b"moof");
    let mfhd = w.begin_full(b"mfhd", 0, 0);
    w.u32(sequence_number);
    w.end(mfhd);

    let traf = w.begin(b"traf");
    let mut tfhd_flags = TFHD_DEFAULT_BASE_IS_MOOF;
    if default_duration.is_some() {
        tfhd_flags |= TFHD_DEFAULT_DURATION;
    }
    if default_size.is_some() {
        tfhd_flags |= TFHD_DEFAULT_SIZE;
    }
    if default_flags.is_some() {
        tfhd_flags |= TFHD_DEFAULT_FLAGS;
    }
    let tfhd = w.begin_full(b"tfhd", 0, tfhd_flags);
    w.u32(track.info.track_id);
    for v in [default_duration, default_size, default_flags].into_iter().flatten() {
        w.u32(v);
    }
    w.end(tfhd);

    let tfdt = w.begin_full(b"tfdt", 1, 0);
    w.u64(s.dts[range.start]);
    w.end(tfdt);

    let mut trun_flags = TRUN_DATA_OFFSET;
    if first_flags.is_some() {
        trun_flags |= TRUN_FIRST_SAMPLE_FLAGS;
    }
    if default_duration.is_none() {
        trun_flags |= TRUN_DURATION;
    }
    if default_size.is_none() {
        trun_flags |= TRUN_SIZE;
    }
    if per_sample_flags {
        trun_flags |= TRUN_FLAGS;
    }
    if has_cts {
        trun_flags |= TRUN_CTS;
    }
    let trun = w.begin_full(b"trun", u8::from(negative_cts), trun_flags);
    w.u32(n as u32);
    let data_offset = w.reserve_u32();
    if let Some(f) = first_flags {
        w.u32(f);
    }
    for k in 0..n {
        if default_duration.is_none() {
            w.u32(durations[k]);
        }
        if default_size.is_none() {
            w.u32(sizes[k]);
        }
        if per_sample_flags {
            w.u32(flags[k]);
        }
        if has_cts {
            // Version 0 stores it unsigned; all offsets are non-negative then.
            w.i32(cts[k]);
        }
    }
    w.end(trun);
    w.end(traf);
    w.end(moof);
    let moof_len = (w.position() - moof_start) as u64;
    let Ok(offset) = i32::try_from(moof_len + mdat_header_len) else {
        return seg_err(format!("moof of {moof_len} bytes is too large"));
    };
    w.patch_i32(data_offset, offset);

    if mdat_header_len == 16 {
        w.u32(1);
        w.fourcc(b"mdat");
        w.u64(payload + 16);
    } else {
        w.u32((payload + 8) as u32);
        w.fourcc(b"mdat");
    }
    let header = w.finish()?;

    // Payload: slices of the span, adjacent samples merged into one slice.
    let mut parts = Vec::with_capacity(2);
    parts.push(header);
    let span_len = span.data.len() as u64;
    let mut run: Option<Range<u64>> = None;
    for (k, i) in range.enumerate() {
        let offset = s.offsets[i];
        let size = sizes[k] as u64;
        let start = offset.checked_sub(span.file_offset);
        let end = start.and_then(|a| a.checked_add(size));
        let (Some(start), Some(end)) = (start, end) else {
            return seg_err(format!("sample {i} at {offset} lies before the fetched span at {}", span.file_offset));
        };
        if end > span_len {
            return seg_err(format!(
                "sample {i} ({offset}+{size}) lies beyond the fetched span {}..{}",
                span.file_offset,
                span.file_offset.saturating_add(span_len)
            ));
        }
        run = match run {
            Some(r) if r.end == start => Some(r.start..end),
            Some(r) => {
                parts.push(span.data.slice(r.start as usize..r.end as usize));
                Some(start..end)
            }
            None => Some(start..end),
        };
    }
    if let Some(r) = run {
        parts.push(span.data.slice(r.start as usize..r.end as usize));
    }
    parts.retain(|p| !p.is_empty());
    Ok(MediaSegment { parts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{CodecFamily, CodecInfo, EditOffset, SampleTable, TrackInfo};
    use crate::mp4::reader::{boxes, find_path};
    use mp4_atom::{Codec, Decode, Ftyp, Mdat, Moof, Moov, Styp};

    /// A real `avc1` sample entry (x264, 320x180, High@1.2) from an ffmpeg-made file.
    const AVC1: &str = "000000b161766331000000000000000100000000000000000000000000000000014000b40048000000480000000000000001154c61766335392e33372e313030206c696278323634000000000000000000000018ffff00000037617663430164000cffe1001a6764000cacd941419f9f011000000300100000030300f142996001000668ebe3cb22c0fdf8f800000000107061737000000001000000010000001462747274000000000003a2980003a298";
    /// A real `mp4a` sample entry (AAC-LC, 48 kHz mono) from an ffmpeg-made file.
    const MP4A: &str = "0000006e6d703461000000000000000100000000000000000002001000000000bb80000000000036657364730000000003808080250001000480808017401500000000011014000110140580808005118856e5000680808001020000001462747274000000000001101400011014";

    fn hex(s: &str) -> Bytes {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<u8>>().into()
    }

    // Assigned field by field so the test keeps compiling while CodecInfo gains fields.
    #[allow(clippy::field_reassign_with_default)]
    fn info(kind: TrackKind, edit: EditOffset) -> TrackInfo {
        let (entry, family, t, codec, timescale) = match kind {
            TrackKind::Video => (AVC1, CodecFamily::Avc, "avc1", "avc1.64000c", 12_800),
            _ => (MP4A, CodecFamily::Aac, "mp4a", "mp4a.40.2", 48_000),
        };
        let mut codec_info = CodecInfo::default();
        codec_info.family = family;
        codec_info.sample_entry_type = t.into();
        codec_info.codec_string = codec.into();
        codec_info.width = 320;
        codec_info.height = 180;
        codec_info.sample_rate = 48_000;
        codec_info.channels = 1;
        TrackInfo {
            track_id: 2,
            kind,
            timescale,
            language: "eng".into(),
            sample_entry: hex(entry),
            codec: codec_info,
            edit,
        }
    }

    /// Samples laid out back to back from `base`, sizes 100, 101, ….
    fn video_track(n: usize, base: u64) -> TrackIndex {
        let sizes: Vec<u32> = (0..n as u32).map(|i| 100 + i).collect();
        let mut offsets = Vec::new();
        let mut o = base;
        for &s in &sizes {
            offsets.push(o);
            o += s as u64;
        }
        TrackIndex {
            info: info(TrackKind::Video, EditOffset { empty_duration: 0, media_time: 1024 }),
            samples: SampleTable {
                dts: (0..n as u64).map(|i| i * 512).collect(),
                end_dts: n as u64 * 512,
                // I P B B P B B …: the usual 2-frame reorder delay.
                cts_offsets: (0..n).map(|i| if i == 0 { 1024 } else if i % 3 == 1 { 1536 } else { 0 }).collect(),
                sizes,
                offsets,
                sync_samples: Some(vec![0, 12]),
                fragment_starts: vec![],
            },
        }
    }

    /// File bytes where byte at absolute offset `o` is `o % 251`.
    fn file_span(start: u64, end: u64) -> SourceSpan {
        SourceSpan { data: (start..end).map(|o| (o % 251) as u8).collect::<Vec<u8>>().into(), file_offset: start }
    }

    fn seg(first: u32, count: u32) -> Segment {
        Segment { first_sample: first, sample_count: count, time: 0, duration: 0, bytes: 0 }
    }

    /// Splits a built segment into (styp, moof bytes, mdat) with mp4-atom.
    fn parse_segment(out: &[u8], flavor: Flavor) -> (Option<Styp>, Moof, usize, Mdat) {
        let mut buf = out;
        let styp = (flavor == Flavor::Cmaf).then(|| Styp::decode(&mut buf).unwrap());
        let before = buf.len();
        let moof = Moof::decode(&mut buf).unwrap();
        let moof_len = before - buf.len();
        let mdat = Mdat::decode(&mut buf).unwrap();
        assert!(buf.is_empty(), "trailing bytes after mdat");
        (styp, moof, moof_len, mdat)
    }

    #[test]
    fn flavor_follows_format() {
        assert_eq!(Flavor::from(Format::M3u8Cmaf), Flavor::Cmaf);
        assert_eq!(Flavor::from(Format::MpdTimeCmaf), Flavor::Cmaf);
        assert_eq!(Flavor::from(Format::MpdTimeCsf), Flavor::Csf);
    }

    #[test]
    fn video_init_parses_with_one_trak_and_trex() {
        let track = video_track(24, 48);
        let init = init_segment(&track, Flavor::Cmaf);
        let mut buf = &init[..];
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, b"cmfc".into());
        assert!(ftyp.compatible_brands.contains(&b"iso6".into()));
        let moov = Moov::decode(&mut buf).unwrap();
        assert!(buf.is_empty());
        assert_eq!(moov.mvhd.timescale, 12_800);
        assert_eq!(moov.mvhd.duration, 0);
        assert_eq!(moov.mvhd.next_track_id, 3);
        assert_eq!(moov.trak.len(), 1);
        let trak = &moov.trak[0];
        assert_eq!(trak.tkhd.track_id, 2);
        assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
        assert_eq!((trak.tkhd.width.integer(), trak.tkhd.height.integer()), (320, 180));
        assert_eq!(trak.mdia.mdhd.timescale, 12_800);
        assert_eq!(trak.mdia.mdhd.language, "eng");
        assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
        assert!(trak.mdia.minf.vmhd.is_some());
        let stsd = &trak.mdia.minf.stbl.stsd;
        assert_eq!(stsd.codecs.len(), 1);
        match &stsd.codecs[0] {
            Codec::Avc1(avc1) => assert_eq!((avc1.visual.width, avc1.visual.height), (320, 180)),
            other => panic!("expected avc1, got {other:?}"),
        }
        let elst = trak.edts.as_ref().and_then(|e| e.elst.as_ref()).expect("elst for the B-frame delay");
        assert_eq!(elst.entries.len(), 1);
        assert_eq!(elst.entries[0].segment_duration, 0);
        assert_eq!(elst.entries[0].media_time, Some(1024));
        let mvex = moov.mvex.as_ref().unwrap();
        assert_eq!(mvex.trex.len(), 1);
        assert_eq!(mvex.trex[0].track_id, 2);
        assert_eq!(mvex.trex[0].default_sample_description_index, 1);

        // The sample entry is copied byte for byte.
        let moov_payload = boxes(&init).nth(1).unwrap().unwrap().payload;
        let stsd = find_path(moov_payload, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]).unwrap().unwrap();
        assert_eq!(&stsd[8..], &track.info.sample_entry[..]);
    }

    #[test]
    fn audio_init_with_and_without_edits() {
        let mut track = TrackIndex { info: info(TrackKind::Audio, EditOffset::default()), samples: SampleTable::default() };
        let init = init_segment(&track, Flavor::Csf);
        let mut buf = &init[..];
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        assert_eq!(ftyp.major_brand, b"iso6".into());
        assert!(ftyp.compatible_brands.contains(&b"dash".into()));
        let moov = Moov::decode(&mut buf).unwrap();
        let trak = &moov.trak[0];
        assert!(trak.edts.is_none(), "no edit list when the source has none");
        assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
        assert!(trak.mdia.minf.smhd.is_some());
        assert_eq!(trak.tkhd.volume.integer(), 1);
        assert_eq!(moov.mvhd.timescale, 48_000);
        assert!(matches!(trak.mdia.minf.stbl.stsd.codecs[0], Codec::Mp4a(_)));

        track.info.edit = EditOffset { empty_duration: 480, media_time: 1024 };
        track.info.language = "not-a-code".into();
        let init = init_segment(&track, Flavor::Cmaf);
        let mut buf = &init[..];
        Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.language, "und");
        let elst = trak.edts.as_ref().unwrap().elst.as_ref().unwrap();
        assert_eq!(elst.entries.len(), 2);
        assert_eq!((elst.entries[0].segment_duration, elst.entries[0].media_time), (480, None));
        assert_eq!((elst.entries[1].segment_duration, elst.entries[1].media_time), (0, Some(1024)));
    }

    #[test]
    fn video_segment_matches_the_index() {
        let track = video_track(24, 48);
        let segment = seg(0, 12);
        let range = source_range(&track, &segment);
        assert_eq!(range.start, 48);
        assert_eq!(range.end, 48 + track.samples.byte_count(0..12));
        let span = file_span(range.start, range.end);
        let built = media_segment(&track, &segment, 7, &span, Flavor::Cmaf).unwrap();
        assert_eq!(built.parts.len(), 2, "header + one slice for contiguous samples");
        assert_eq!(built.parts[1].as_ptr(), span.data.as_ptr(), "payload is a slice, not a copy");
        let out = built.to_bytes();
        assert_eq!(out.len() as u64, built.len());

        let (styp, moof, moof_len, mdat) = parse_segment(&out, Flavor::Cmaf);
        let styp = styp.unwrap();
        assert_eq!(styp.major_brand, b"cmfs".into());
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(moof.traf.len(), 1);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.track_id, 2);
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.default_sample_duration, Some(512));
        assert_eq!(traf.tfhd.default_sample_flags, Some(FLAGS_NON_SYNC));
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 0);
        assert_eq!(traf.trun.len(), 1);
        let trun = &traf.trun[0];
        assert_eq!(trun.samples.len(), 12);
        let entries: Vec<_> = trun.samples.iter().collect();
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.size, Some(track.samples.sizes[k]));
            assert_eq!(e.cts, Some(track.samples.cts_offsets[k] as i64));
            assert_eq!(e.duration, None, "constant duration lives in tfhd");
        }
        assert_eq!(entries[0].flags, Some(FLAGS_SYNC), "first_sample_flags");
        assert!(entries[1..].iter().all(|e| e.flags.is_none()));
        let styp_len = 8 + 16;
        let data_offset = trun.data_offset.unwrap() as usize;
        assert_eq!(data_offset, moof_len + 8);
        assert_eq!(&out[styp_len + data_offset..], &span.data[..]);
        assert_eq!(mdat.data, span.data.to_vec());

        // The second GOP: tfdt is its first dts, read from a span that starts elsewhere.
        let segment = seg(12, 12);
        let range = source_range(&track, &segment);
        let span = file_span(range.start - 10, range.end + 10);
        let out = media_segment(&track, &segment, 8, &span, Flavor::Csf).unwrap().to_bytes();
        let (styp, moof, _, mdat) = parse_segment(&out, Flavor::Csf);
        assert!(styp.is_none());
        assert_eq!(moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time, 12 * 512);
        assert_eq!(mdat.data, span.data[10..span.data.len() - 10].to_vec());
    }

    #[test]
    fn negative_composition_offsets_use_trun_v1() {
        let mut track = video_track(6, 0);
        track.samples.cts_offsets = vec![0, 1024, -512, -512, 1024, -512];
        let span = file_span(0, 1000);
        let out = media_segment(&track, &seg(0, 6), 1, &span, Flavor::Csf).unwrap().to_bytes();
        let (_, moof, _, _) = parse_segment(&out, Flavor::Csf);
        let cts: Vec<_> = moof.traf[0].trun[0].samples.iter().map(|e| e.cts).collect();
        assert_eq!(cts, vec![Some(0), Some(1024), Some(-512), Some(-512), Some(1024), Some(-512)]);
        // Check the version byte directly: mp4-atom hides it.
        let moof_payload = boxes(&out).next().unwrap().unwrap().payload;
        let traf = find_path(moof_payload, &[b"traf"]).unwrap().unwrap();
        let trun = boxes(traf).map(|b| b.unwrap()).find(|b| &b.kind == b"trun").unwrap();
        assert_eq!(trun.payload[0], 1);

        // Non-negative offsets stay version 0; all-zero offsets are left out.
        track.samples.cts_offsets = vec![];
        let out = media_segment(&track, &seg(0, 6), 1, &span, Flavor::Csf).unwrap().to_bytes();
        let (_, moof, _, _) = parse_segment(&out, Flavor::Csf);
        assert!(moof.traf[0].trun[0].samples.iter().all(|e| e.cts.is_none()));
        let moof_payload = boxes(&out).next().unwrap().unwrap().payload;
        let traf = find_path(moof_payload, &[b"traf"]).unwrap().unwrap();
        let trun = boxes(traf).map(|b| b.unwrap()).find(|b| &b.kind == b"trun").unwrap();
        assert_eq!(trun.payload[0], 0);
    }

    #[test]
    fn constant_audio_samples_use_tfhd_defaults() {
        let n = 10;
        let track = TrackIndex {
            info: info(TrackKind::Audio, EditOffset { empty_duration: 0, media_time: 1024 }),
            samples: SampleTable {
                dts: (0..n as u64).map(|i| 1024 * i).collect(),
                end_dts: 1024 * n as u64,
                cts_offsets: vec![],
                sizes: vec![6; n],
                offsets: (0..n as u64).map(|i| 1000 + 6 * i).collect(),
                sync_samples: None,
                fragment_starts: vec![],
            },
        };
        let span = file_span(1000, 1060);
        let out = media_segment(&track, &seg(0, 10), 3, &span, Flavor::Cmaf).unwrap().to_bytes();
        let (_, moof, moof_len, mdat) = parse_segment(&out, Flavor::Cmaf);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_duration, Some(1024));
        assert_eq!(traf.tfhd.default_sample_size, Some(6));
        assert_eq!(traf.tfhd.default_sample_flags, Some(FLAGS_SYNC));
        let trun = &traf.trun[0];
        assert!(matches!(trun.samples, mp4_atom::TrunSamples::Inherited { count: 10, first_flags: None }));
        assert_eq!(trun.data_offset, Some(moof_len as i32 + 8));
        assert_eq!(mdat.data, span.data.to_vec());
        // The trun is as small as it gets: header, count, data_offset.
        let moof_payload = boxes(&out[24..]).next().unwrap().unwrap().payload;
        let traf = find_path(moof_payload, &[b"traf"]).unwrap().unwrap();
        let trun = boxes(traf).map(|b| b.unwrap()).find(|b| &b.kind == b"trun").unwrap();
        assert_eq!(trun.bytes.len(), 20);
    }

    #[test]
    fn varying_durations_and_flags_are_written_per_sample() {
        let mut track = video_track(6, 0);
        track.samples.dts = vec![0, 512, 1000, 1512, 2100, 2612];
        track.samples.end_dts = 3124;
        track.samples.sync_samples = Some(vec![0, 2, 3]);
        let span = file_span(0, 1000);
        let out = media_segment(&track, &seg(0, 6), 1, &span, Flavor::Csf).unwrap().to_bytes();
        let (_, moof, _, _) = parse_segment(&out, Flavor::Csf);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_duration, None);
        assert_eq!(traf.tfhd.default_sample_flags, None);
        let entries: Vec<_> = traf.trun[0].samples.iter().collect();
        let durations: Vec<_> = entries.iter().map(|e| e.duration.unwrap()).collect();
        assert_eq!(durations, vec![512, 488, 512, 588, 512, 512]);
        let flags: Vec<_> = entries.iter().map(|e| e.flags.unwrap() == FLAGS_SYNC).collect();
        assert_eq!(flags, vec![true, false, true, true, false, false]);
    }

    #[test]
    fn interleaved_samples_become_several_slices() {
        // Video samples of a muxed file with audio chunks between them.
        let mut track = video_track(6, 0);
        track.samples.offsets = vec![100, 200, 310, 500, 603, 1000];
        let segment = seg(0, 6);
        let range = source_range(&track, &segment);
        assert_eq!(range, 100..1105);
        let span = file_span(range.start, range.end);
        let built = media_segment(&track, &segment, 1, &span, Flavor::Cmaf).unwrap();
        // Samples 0+1 adjacent, 2 alone, 3+4 adjacent, 5 alone.
        assert_eq!(built.parts.len(), 1 + 4);
        let out = built.to_bytes();
        let (_, _, _, mdat) = parse_segment(&out, Flavor::Cmaf);
        let mut expect = Vec::new();
        for i in 0..6 {
            let o = track.samples.offsets[i];
            expect.extend((o..o + track.samples.sizes[i] as u64).map(|x| (x % 251) as u8));
        }
        assert_eq!(mdat.data, expect);
    }

    #[test]
    fn samples_outside_the_span_are_errors() {
        let track = video_track(6, 100);
        let segment = seg(0, 6);
        let range = source_range(&track, &segment);
        let short = file_span(range.start, range.end - 1);
        assert!(media_segment(&track, &segment, 1, &short, Flavor::Cmaf).is_err());
        let late = file_span(range.start + 1, range.end);
        assert!(media_segment(&track, &segment, 1, &late, Flavor::Cmaf).is_err());
        let ok = file_span(range.start, range.end);
        assert!(media_segment(&track, &seg(0, 7), 1, &ok, Flavor::Cmaf).is_err(), "past the last sample");
        assert!(media_segment(&track, &seg(3, 0), 1, &ok, Flavor::Cmaf).is_err(), "no samples");
        assert_eq!(source_range(&track, &seg(5, 9)), 0..0);
        assert!(media_segment(&track, &seg(u32::MAX, 2), 1, &ok, Flavor::Cmaf).is_err(), "no overflow panic");
        assert_eq!(source_range(&track, &seg(u32::MAX, 2)), 0..0);
    }
}
