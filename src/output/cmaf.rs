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
//!
//! DASH init segments carry no edit list: the MPD's `presentationTimeOffset` carries the same
//! shift, and browsers apply an init segment's edit list in MSE while DASH players also apply
//! the PTO, so with both the media lands one shift early and the first GOP falls before the
//! period start (Shaka and dash.js then start playing at the second segment).

use std::ops::Range;

use bytes::Bytes;

use crate::media::mp4::writer::{BoxMark, BoxWriter};
use crate::media::mp4::{tfhd, trun, FourCC};
use crate::media::MediaError;
use crate::plan::reads::SourceSpan;
use crate::plan::smooth::TrackClock;
use crate::plan::url::Format;
use crate::protect::common_encryption::{self, TrackEncryption};
use crate::protect::Scheme;
use crate::source::index::{TrackIndex, TrackKind};
use crate::source::timeline::Segment;

/// Which flavour of fragmented MP4 to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Flavor {
    /// CMAF: `cmfc` header brand, `styp` (`cmfs`) before every segment. HLS `m3u8-cmaf`,
    /// DASH `mpd-time-cmaf`.
    Cmaf,
    /// DASH common streaming format: plain ISO BMFF fragments (`iso6`/`dash`), no `styp`.
    Csf,
    /// Smooth Streaming (MS-SSTR §2.2.4): fragments only (players build the init segment from
    /// the manifest), no `styp`, `tfxd` in place of `tfdt`, times on the asset's 10 MHz axis.
    Smooth(TrackClock),
}

impl Flavor {
    /// The flavour of `format`'s fMP4; `clock` gives a Smooth fragment's time axis.
    pub(crate) fn of(format: Format, clock: impl FnOnce() -> TrackClock) -> Flavor {
        match format {
            Format::MpdTimeCsf => Flavor::Csf,
            Format::Smooth | Format::SmoothV20 => Flavor::Smooth(clock()),
            // MPEG-TS formats have no fMP4 segments; the URL grammar never routes them here.
            Format::M3u8Cmaf | Format::MpdTimeCmaf | Format::M3u8Aapl | Format::M3u8AaplV3 => Flavor::Cmaf,
        }
    }
}

/// A built media segment: header bytes followed by zero-copy slices of the source bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct MediaSegment {
    pub parts: Vec<Bytes>,
}

impl MediaSegment {
    /// Total length in bytes (the response's Content-Length).
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
    /// The whole segment in one buffer (copies; for tests, the CLI and encryption).
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> Bytes {
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

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The init segment (`ftyp` + `moov`) of one track. With `encryption`, the sample entry is
/// protected (`encv`/`enca` + `sinf`, ISO/IEC 23001-7 §8 and ISO/IEC 14496-12 §8.12) and the
/// given `pssh` boxes follow `mvex` in the `moov`. `edit_list`: whether the source's edit list
/// goes into it (HLS), or is left to the manifest (DASH `presentationTimeOffset`).
pub(crate) fn init_segment(
    track: &TrackIndex,
    flavor: Flavor,
    edit_list: bool,
    encryption: Option<&TrackEncryption>,
) -> Bytes {
    let info = &track.info;
    let pssh_len: usize = encryption.map_or(0, |e| e.pssh.iter().map(Bytes::len).sum::<usize>() + 128);
    let mut w = BoxWriter::with_capacity(768 + info.sample_entry.len() + pssh_len);

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
        Flavor::Csf | Flavor::Smooth(_) => {
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

    if edit_list && info.edit != Default::default() {
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
    match encryption {
        Some(enc) => write_protected_entry(&mut w, track, enc),
        None => w.bytes(&info.sample_entry),
    }
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
    if let Some(enc) = encryption {
        for pssh in enc.pssh {
            w.bytes(pssh);
        }
    }
    w.end(moov);
    w.into_bytes()
}

/// The source sample entry renamed `encv`/`enca` with a `sinf` appended as its last child:
/// `frma` (original format), `schm` (scheme, version 1.0), `schi/tenc`.
fn write_protected_entry(w: &mut BoxWriter, track: &TrackIndex, enc: &TrackEncryption) {
    let info = &track.info;
    let entry = &info.sample_entry[..];
    // Box header length of the source entry (8, or 16 with a 64-bit size).
    let header_len = match crate::media::mp4::reader::BoxHeader::parse(entry) {
        Ok(Some(h)) => (h.header_len as usize).min(entry.len()),
        _ => entry.len().min(8),
    };
    let original = sample_entry_type(track);
    let protected_type: &FourCC = if info.kind == TrackKind::Audio { b"enca" } else { b"encv" };
    let e = w.begin(protected_type);
    w.bytes(&entry[header_len..]);
    let sinf = w.begin(b"sinf");
    w.leaf(b"frma", &original);
    let schm = w.begin_full(b"schm", 0, 0);
    w.fourcc(&enc.scheme.fourcc());
    w.u32(0x0001_0000); // scheme_version 1.0
    w.end(schm);
    let schi = w.begin(b"schi");
    // tenc (ISO/IEC 23001-7 §8.2): version 1 carries the cbcs pattern.
    match enc.scheme {
        Scheme::Cenc => {
            let tenc = w.begin_full(b"tenc", 0, 0);
            w.u8(0); // reserved
            w.u8(0); // reserved
            w.u8(1); // default_isProtected
            w.u8(8); // default_Per_Sample_IV_Size
            w.bytes(&enc.key.kid);
            w.end(tenc);
        }
        Scheme::Cbcs => {
            let pattern = common_encryption::pattern_for(info.kind);
            let tenc = w.begin_full(b"tenc", 1, 0);
            w.u8(0); // reserved
            w.u8((pattern.crypt << 4) | (pattern.skip & 0x0f));
            w.u8(1); // default_isProtected
            w.u8(0); // default_Per_Sample_IV_Size: constant IV
            w.bytes(&enc.key.kid);
            w.u8(16); // default_constant_IV_size
            w.bytes(&common_encryption::constant_iv(enc, info.track_id));
            w.end(tenc);
        }
    }
    w.end(schi);
    w.end(sinf);
    w.end(e);
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

/// The segment's sample indexes, computed without the u32 overflow `Segment::samples` could hit.
fn sample_range(segment: &Segment) -> Range<usize> {
    let start = segment.first_sample as usize;
    start..start.saturating_add(segment.sample_count as usize)
}

fn seg_err<T>(msg: String) -> Result<T, MediaError> {
    Err(MediaError(msg))
}

/// How [`media_segment`] writes one segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentOptions<'a> {
    pub flavor: Flavor,
    /// Common Encryption of the samples (clear when `None`).
    pub encryption: Option<&'a TrackEncryption<'a>>,
    /// The last sample's duration in track ticks, in place of the gap to the next sample: a
    /// keyframe resource's one sample lasts until the next keyframe, so a trick-mode track
    /// buffers no gaps.
    pub last_duration: Option<u64>,
}

impl SegmentOptions<'_> {
    /// Clear samples, each lasting until the next.
    pub(crate) fn clear(flavor: Flavor) -> Self {
        SegmentOptions { flavor, encryption: None, last_duration: None }
    }
}

/// Builds one media segment: [`Flavor::Cmaf`] `styp`, then `moof` (`mfhd`, `traf`: `tfhd`,
/// `tfdt`, `trun`) and `mdat` whose payload is slices of the fetched `span`.
///
/// With `encryption`, the samples are encrypted into one new buffer (the only copy of the
/// payload) and the `traf` also gets `senc`, `saiz` and `saio` (ISO/IEC 23001-7 §7,
/// ISO/IEC 14496-12 §8.7.8–9): `saio` points at the first sample's entry in `senc`, relative
/// to the moof. A track whose samples have no auxiliary data at all (`cbcs` audio: constant
/// IV, whole-sample encryption) gets none of the three: `tenc` says it all.
///
/// [`Flavor::Smooth`] fragments (MS-SSTR §2.2.4) differ in four ways:
/// - every time is on the asset's 10 MHz axis ([`TrackClock`]): the sample durations and
///   composition offsets are differences of instants rescaled each on its own, so they add up
///   to the manifest's `d` exactly;
/// - no `tfdt` but the `tfxd` box (§2.2.4.4) with the fragment's time (the manifest's `t`, the
///   URL's time) and duration. MS-SSTR clients take the time from the manifest and `tfxd`; the
///   MSE players (dash.js `MssFragmentMoofProcessor`, Shaka's MSS transmuxer) insert a `tfdt`
///   from the manifest time when the fragment has none but keep one that is there, and
///   ExoPlayer until its late-2015 fix added a present `tfdt` to the manifest time. Leaving it
///   out, as AMS did, is what every one of them reads right;
/// - `tfhd` without default-base-is-moof: MS-SSTR's TfhdBox (§2.2.4.6) predates that flag, and
///   with one `traf` and no base offset the data and `saio` offsets count from the moof's first
///   byte anyway (ISO/IEC 14496-12 §8.8.7.1);
/// - encrypted fragments carry the sample auxiliary data twice: in `senc`/`saiz`/`saio` and
///   in PIFF 1.1's SampleEncryptionBox (§5.3.2) for clients older than ISO/IEC 23001-7.
pub(crate) fn media_segment(
    track: &TrackIndex,
    segment: &Segment,
    sequence_number: u32,
    span: &SourceSpan,
    options: SegmentOptions,
) -> Result<MediaSegment, MediaError> {
    let SegmentOptions { flavor, encryption, last_duration } = options;
    let clock = match flavor {
        Flavor::Smooth(clock) => Some(clock),
        Flavor::Cmaf | Flavor::Csf => None,
    };
    let s = &track.samples;
    let range = sample_range(segment);
    let n = range.len();
    if range.end > s.len() || s.dts.len() < s.len() || s.offsets.len() < s.len() {
        return seg_err(format!(
            "segment samples {}..{} outside the track's {} samples",
            range.start,
            range.end,
            s.len()
        ));
    }
    if n == 0 {
        return seg_err("segment has no samples".into());
    }

    // Per-sample fields.
    let mut durations = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut cts = Vec::with_capacity(n);
    for i in range.clone() {
        let d = last_duration.filter(|_| i + 1 == range.end).unwrap_or_else(|| s.duration(i));
        let (d, c) = match &clock {
            Some(clock) => smooth_timing(clock, s.dts[i], d, s.cts_offset(i)),
            None => (d, i128::from(s.cts_offset(i))),
        };
        let Ok(d) = u32::try_from(d) else {
            return seg_err(format!("sample {i} lasts {d} ticks, more than a trun can hold"));
        };
        let Ok(c) = i32::try_from(c) else {
            return seg_err(format!("sample {i} has a composition offset of {c} ticks, more than a trun can hold"));
        };
        durations.push(d);
        flags.push(if s.is_sync(i) { FLAGS_SYNC } else { FLAGS_NON_SYNC });
        cts.push(c);
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

    // Where each sample lies in the fetched bytes: (buffer, range in it).
    let mut positions: Vec<(usize, Range<usize>)> = Vec::with_capacity(n);
    for (k, i) in range.clone().enumerate() {
        let (offset, size) = (s.offsets[i], sizes[k] as u64);
        let Some(position) = span.locate(offset, size) else {
            return seg_err(format!("sample {i} ({offset}+{size}) lies outside the fetched bytes {}", span.describe()));
        };
        positions.push(position);
    }

    // Encryption: every sample into one new buffer, with its senc entry.
    let encrypted = match encryption {
        Some(enc) => Some(encrypt_samples(track, enc, range.clone(), &positions, span)?),
        None => None,
    };

    let payload: u64 = sizes.iter().map(|&x| x as u64).sum();
    let mdat_header_len: u64 = if payload + 8 > u32::MAX as u64 { 16 } else { 8 };

    // Header buffer: styp + moof + mdat header.
    let entry_len = 4
        * (usize::from(default_duration.is_none())
            + usize::from(default_size.is_none())
            + usize::from(per_sample_flags)
            + usize::from(has_cts));
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
    let mut tfhd_flags = if clock.is_some() { 0 } else { tfhd::DEFAULT_BASE_IS_MOOF };
    if default_duration.is_some() {
        tfhd_flags |= tfhd::DEFAULT_DURATION;
    }
    if default_size.is_some() {
        tfhd_flags |= tfhd::DEFAULT_SIZE;
    }
    if default_flags.is_some() {
        tfhd_flags |= tfhd::DEFAULT_FLAGS;
    }
    let tfhd = w.begin_full(b"tfhd", 0, tfhd_flags);
    w.u32(track.info.track_id);
    for v in [default_duration, default_size, default_flags].into_iter().flatten() {
        w.u32(v);
    }
    w.end(tfhd);

    if clock.is_none() {
        let tfdt = w.begin_full(b"tfdt", 1, 0);
        w.u64(s.dts[range.start]);
        w.end(tfdt);
    }

    let mut trun_flags = trun::DATA_OFFSET;
    if first_flags.is_some() {
        trun_flags |= trun::FIRST_SAMPLE_FLAGS;
    }
    if default_duration.is_none() {
        trun_flags |= trun::DURATION;
    }
    if default_size.is_none() {
        trun_flags |= trun::SIZE;
    }
    if per_sample_flags {
        trun_flags |= trun::FLAGS;
    }
    if has_cts {
        trun_flags |= trun::CTS;
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
    if let Some(clock) = &clock {
        // MS-SSTR §2.2.4.4, version 1: 64-bit absolute time and duration.
        let tfxd = begin_uuid_full(&mut w, &TFXD_USER_TYPE, 1, 0);
        w.u64(clock.time(s.dts[range.start]));
        w.u64(durations.iter().map(|&d| u64::from(d)).sum());
        w.end(tfxd);
    }
    let saio_slot = match &encrypted {
        Some(e) => write_sample_encryption(&mut w, e, clock.is_some()),
        None => None,
    };
    w.end(traf);
    w.end(moof);
    let moof_len = (w.position() - moof_start) as u64;
    let Ok(offset) = i32::try_from(moof_len + mdat_header_len) else {
        return seg_err(format!("moof of {moof_len} bytes is too large"));
    };
    w.patch_i32(data_offset, offset);
    if let Some((slot, senc_entries)) = saio_slot {
        // saio offsets are relative to the moof start (default-base-is-moof, or for Smooth
        // the first traf's default base).
        let Ok(rel) = u32::try_from(senc_entries - moof_start) else {
            return seg_err(format!("moof of {moof_len} bytes is too large"));
        };
        w.patch_u32(slot, rel);
    }

    if mdat_header_len == 16 {
        w.u32(1);
        w.fourcc(b"mdat");
        w.u64(payload + 16);
    } else {
        w.u32((payload + 8) as u32);
        w.fourcc(b"mdat");
    }
    let header = w.finish()?;

    let mut parts = Vec::with_capacity(2);
    parts.push(header);
    if let Some(e) = encrypted {
        parts.push(Bytes::from(e.payload));
        parts.retain(|p| !p.is_empty());
        return Ok(MediaSegment { parts });
    }
    // Clear payload: slices of the fetched bytes, adjacent samples merged into one slice
    // (zero-copy).
    let mut run: Option<(usize, Range<usize>)> = None;
    for (buffer, pos) in positions {
        run = match run {
            Some((b, r)) if b == buffer && r.end == pos.start => Some((b, r.start..pos.end)),
            Some((b, r)) => {
                parts.push(span.slice(b, r));
                Some((buffer, pos))
            }
            None => Some((buffer, pos)),
        };
    }
    if let Some((b, r)) = run {
        parts.push(span.slice(b, r));
    }
    parts.retain(|p| !p.is_empty());
    Ok(MediaSegment { parts })
}

/// The encrypted payload of one segment and the `senc` entry of each sample.
struct EncryptedSamples {
    payload: Vec<u8>,
    aux: Vec<common_encryption::SampleAux>,
    iv_size: u8,
    uses_subsamples: bool,
}

fn encrypt_samples(
    track: &TrackIndex,
    enc: &TrackEncryption,
    range: Range<usize>,
    positions: &[(usize, Range<usize>)],
    span: &SourceSpan,
) -> Result<EncryptedSamples, MediaError> {
    let mut encryptor = common_encryption::SampleEncryptor::new(enc, track.info.track_id, &track.info.codec)?;
    let total: usize = positions.iter().map(|(_, p)| p.len()).sum();
    let mut payload = Vec::with_capacity(total);
    let mut aux = Vec::with_capacity(positions.len());
    for (i, (buffer, pos)) in range.zip(positions) {
        let sample = &span.slice(*buffer, pos.clone())[..];
        let number = if enc.number_by_decode_time { track.samples.dts[i] } else { i as u64 };
        let entry = encryptor
            .encrypt_sample(number, sample, &mut payload)
            .map_err(|e| MediaError(format!("sample {i}: {}", e.0)))?;
        aux.push(entry);
    }
    Ok(EncryptedSamples { payload, aux, iv_size: encryptor.iv_size(), uses_subsamples: encryptor.uses_subsamples() })
}

/// `senc` (version 0; flag 0x2 when samples carry subsample maps), `saiz` and `saio` in the
/// traf, and with `piff` the same entries in PIFF 1.1's SampleEncryptionBox after them.
/// Returns the `saio` offset slot and the buffer position of the first `senc` entry, or
/// nothing when no sample has auxiliary data (constant IV, no subsamples).
///
/// The PIFF box leaves flag 0x1 (AlgorithmID, IV size and KID in the box) unset: Smooth clients
/// build their `tenc` from the manifest (dash.js `MssFragmentMoovProcessor`: 8-byte IVs, the
/// ProtectionHeader's KID), the algorithm is the manifest's `cenc`, and dash.js's reader of
/// the box takes a flag 0x1 to mean one IV-size byte and would read every entry 19 bytes off.
/// It is written after `senc`: dash.js renames it `senc` and recomputes `saio` to the first box
/// of that name, which is then ours with the same entries.
fn write_sample_encryption(
    w: &mut BoxWriter,
    e: &EncryptedSamples,
    piff: bool,
) -> Option<(crate::media::mp4::writer::Slot, usize)> {
    let sizes: Vec<usize> = e.aux.iter().map(|a| a.info_size(e.uses_subsamples)).collect();
    if sizes.iter().all(|&s| s == 0) {
        return None;
    }
    let flags = if e.uses_subsamples { 0x2 } else { 0 };
    let senc = w.begin_full(b"senc", 0, flags);
    let first_entry = write_sample_encryption_entries(w, e);
    w.end(senc);

    // saiz: one default size when all are equal (and fit a byte), else one byte per sample.
    let saiz = w.begin_full(b"saiz", 0, 0);
    let uniform = sizes.iter().all(|&s| s == sizes[0]) && sizes[0] <= u8::MAX as usize;
    if uniform {
        w.u8(sizes[0] as u8);
        w.u32(sizes.len() as u32);
    } else {
        w.u8(0);
        w.u32(sizes.len() as u32);
        for &s in &sizes {
            // A sample whose map exceeds 255 bytes (over 42 subsamples) cannot be described
            // by saiz; senc still is exact, which is what players read.
            w.u8(s.min(u8::MAX as usize) as u8);
        }
    }
    w.end(saiz);

    let saio = w.begin_full(b"saio", 0, 0);
    w.u32(1); // entry_count
    let slot = w.reserve_u32();
    w.end(saio);

    if piff {
        let box_mark = begin_uuid_full(w, &PIFF_SAMPLE_ENCRYPTION_USER_TYPE, 0, flags);
        write_sample_encryption_entries(w, e);
        w.end(box_mark);
    }
    Some((slot, first_entry))
}

/// `sample_count` and the per-sample entries (IV, subsample map) shared by `senc` and PIFF's
/// SampleEncryptionBox; returns the position of the first entry.
fn write_sample_encryption_entries(w: &mut BoxWriter, e: &EncryptedSamples) -> usize {
    w.u32(e.aux.len() as u32);
    let first_entry = w.position();
    for a in &e.aux {
        if e.iv_size > 0 {
            if let Some(iv) = a.iv {
                w.bytes(&iv);
            }
        }
        if e.uses_subsamples {
            w.u16(a.subsamples.len().min(u16::MAX as usize) as u16);
            for sub in a.subsamples.iter().take(u16::MAX as usize) {
                w.u16(sub.clear);
                w.u32(sub.protected);
            }
        }
    }
    first_entry
}

/// MS-SSTR §2.2.4.4 TfxdBox user type, 6D1D9B05-42D5-44E6-80E2-141DAFF757B2.
const TFXD_USER_TYPE: [u8; 16] =
    [0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2];
/// PIFF 1.1 §5.3.2 SampleEncryptionBox user type, A2394F52-5A9B-4F14-A244-6C427C648DF4.
const PIFF_SAMPLE_ENCRYPTION_USER_TYPE: [u8; 16] =
    [0xa2, 0x39, 0x4f, 0x52, 0x5a, 0x9b, 0x4f, 0x14, 0xa2, 0x44, 0x6c, 0x42, 0x7c, 0x64, 0x8d, 0xf4];

/// Opens a `uuid` box of `user_type` whose body starts with a FullBox's version and flags
/// (ISO/IEC 14496-12 §4.2 extended types; MS-SSTR and PIFF define theirs so).
fn begin_uuid_full(w: &mut BoxWriter, user_type: &[u8; 16], version: u8, flags: u32) -> BoxMark {
    let mark = w.begin(b"uuid");
    w.bytes(user_type);
    w.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    mark
}

/// A sample's duration and composition offset on the Smooth axis, from its decode time,
/// duration and composition offset in track ticks: differences of instants each rescaled on
/// its own, so a fragment's durations add up to its end time minus its start time.
fn smooth_timing(clock: &TrackClock, dts: u64, duration: u64, cts: i32) -> (u64, i128) {
    let start = clock.time(dts);
    let end = clock.time(dts.saturating_add(duration));
    let composition = clock.time(dts.saturating_add_signed(i64::from(cts)));
    (end.saturating_sub(start), i128::from(composition) - i128::from(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mp4::reader::{boxes, find, find_path};
    use crate::plan::reads::source_range;
    use crate::source::index::{CodecFamily, CodecInfo, EditOffset, SampleTable, TrackInfo};
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
        codec_info.config = crate::media::codec::describe(&hex(entry)).unwrap().config;
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
            sidecar: None,
            info: info(TrackKind::Video, EditOffset { empty_duration: 0, media_time: 1024 }),
            samples: SampleTable {
                dts: (0..n as u64).map(|i| i * 512).collect(),
                end_dts: n as u64 * 512,
                // I P B B P B B …: the usual 2-frame reorder delay.
                cts_offsets: (0..n)
                    .map(|i| {
                        if i == 0 {
                            1024
                        } else if i % 3 == 1 {
                            1536
                        } else {
                            0
                        }
                    })
                    .collect(),
                sizes,
                offsets,
                sync_samples: Some(vec![0, 12]),
                fragment_starts: vec![],
            },
        }
    }

    /// File bytes where byte at absolute offset `o` is `o % 251`.
    fn file_span(start: u64, end: u64) -> SourceSpan {
        SourceSpan::new(start, (start..end).map(|o| (o % 251) as u8).collect::<Vec<u8>>().into())
    }

    fn seg(first: u32, count: u32) -> Segment {
        Segment { first_sample: first, sample_count: count, time: 0, duration: 0, bytes: 0, discontinuity: false }
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
        let no_clock = || -> TrackClock { unreachable!("only Smooth fragments need the clock") };
        assert_eq!(Flavor::of(Format::M3u8Cmaf, no_clock), Flavor::Cmaf);
        assert_eq!(Flavor::of(Format::MpdTimeCmaf, no_clock), Flavor::Cmaf);
        assert_eq!(Flavor::of(Format::MpdTimeCsf, no_clock), Flavor::Csf);
    }

    #[test]
    fn video_init_parses_with_one_trak_and_trex() {
        let track = video_track(24, 48);
        let init = init_segment(&track, Flavor::Cmaf, true, None);
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
        let mut track = TrackIndex {
            info: info(TrackKind::Audio, EditOffset::default()),
            samples: SampleTable::default(),
            sidecar: None,
        };
        let init = init_segment(&track, Flavor::Csf, true, None);
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
        let init = init_segment(&track, Flavor::Cmaf, true, None);
        let mut buf = &init[..];
        Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.language, "und");
        let elst = trak.edts.as_ref().unwrap().elst.as_ref().unwrap();
        assert_eq!(elst.entries.len(), 2);
        assert_eq!((elst.entries[0].segment_duration, elst.entries[0].media_time), (480, None));
        assert_eq!((elst.entries[1].segment_duration, elst.entries[1].media_time), (0, Some(1024)));

        // DASH: the shift is the MPD's presentationTimeOffset, not an edit list.
        let init = init_segment(&track, Flavor::Cmaf, false, None);
        let mut buf = &init[..];
        Ftyp::decode(&mut buf).unwrap();
        assert!(Moov::decode(&mut buf).unwrap().trak[0].edts.is_none());
    }

    #[test]
    fn video_segment_matches_the_index() {
        let track = video_track(24, 48);
        let segment = seg(0, 12);
        let range = source_range(&track, &segment);
        assert_eq!(range.start, 48);
        assert_eq!(range.end, 48 + track.samples.byte_count(0..12));
        let span = file_span(range.start, range.end);
        let built = media_segment(&track, &segment, 7, &span, SegmentOptions::clear(Flavor::Cmaf)).unwrap();
        assert_eq!(built.parts.len(), 2, "header + one slice for contiguous samples");
        assert_eq!(built.parts[1].as_ptr(), span.data().as_ptr(), "payload is a slice, not a copy");
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
        assert_eq!(&out[styp_len + data_offset..], &span.data()[..]);
        assert_eq!(mdat.data, span.data().to_vec());

        // The second GOP: tfdt is its first dts, read from a span that starts elsewhere.
        let segment = seg(12, 12);
        let range = source_range(&track, &segment);
        let span = file_span(range.start - 10, range.end + 10);
        let out = media_segment(&track, &segment, 8, &span, SegmentOptions::clear(Flavor::Csf)).unwrap().to_bytes();
        let (styp, moof, _, mdat) = parse_segment(&out, Flavor::Csf);
        assert!(styp.is_none());
        assert_eq!(moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time, 12 * 512);
        assert_eq!(mdat.data, span.data()[10..span.data().len() - 10].to_vec());
    }

    #[test]
    fn negative_composition_offsets_use_trun_v1() {
        let mut track = video_track(6, 0);
        track.samples.cts_offsets = vec![0, 1024, -512, -512, 1024, -512];
        let span = file_span(0, 1000);
        let out = media_segment(&track, &seg(0, 6), 1, &span, SegmentOptions::clear(Flavor::Csf)).unwrap().to_bytes();
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
        let out = media_segment(&track, &seg(0, 6), 1, &span, SegmentOptions::clear(Flavor::Csf)).unwrap().to_bytes();
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
            sidecar: None,
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
        let out = media_segment(&track, &seg(0, 10), 3, &span, SegmentOptions::clear(Flavor::Cmaf)).unwrap().to_bytes();
        let (_, moof, moof_len, mdat) = parse_segment(&out, Flavor::Cmaf);
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_duration, Some(1024));
        assert_eq!(traf.tfhd.default_sample_size, Some(6));
        assert_eq!(traf.tfhd.default_sample_flags, Some(FLAGS_SYNC));
        let trun = &traf.trun[0];
        assert!(matches!(trun.samples, mp4_atom::TrunSamples::Inherited { count: 10, first_flags: None }));
        assert_eq!(trun.data_offset, Some(moof_len as i32 + 8));
        assert_eq!(mdat.data, span.data().to_vec());
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
        let out = media_segment(&track, &seg(0, 6), 1, &span, SegmentOptions::clear(Flavor::Csf)).unwrap().to_bytes();
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
        let built = media_segment(&track, &segment, 1, &span, SegmentOptions::clear(Flavor::Cmaf)).unwrap();
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
        assert!(media_segment(&track, &segment, 1, &short, SegmentOptions::clear(Flavor::Cmaf)).is_err());
        let late = file_span(range.start + 1, range.end);
        assert!(media_segment(&track, &segment, 1, &late, SegmentOptions::clear(Flavor::Cmaf)).is_err());
        let ok = file_span(range.start, range.end);
        assert!(
            media_segment(&track, &seg(0, 7), 1, &ok, SegmentOptions::clear(Flavor::Cmaf)).is_err(),
            "past the last sample"
        );
        assert!(media_segment(&track, &seg(3, 0), 1, &ok, SegmentOptions::clear(Flavor::Cmaf)).is_err(), "no samples");
        assert_eq!(source_range(&track, &seg(5, 9)), 0..0);
        assert!(
            media_segment(&track, &seg(u32::MAX, 2), 1, &ok, SegmentOptions::clear(Flavor::Cmaf)).is_err(),
            "no overflow panic"
        );
        assert_eq!(source_range(&track, &seg(u32::MAX, 2)), 0..0);
    }

    // ---- Common Encryption ----

    use crate::protect::common_encryption::TrackEncryption;
    use crate::protect::ContentKey;
    use crate::protect::Scheme;

    const KEY: ContentKey = ContentKey { kid: [0xa1; 16], key: [0x3c; 16] };

    /// (kind, payload) of the children of a box payload.
    fn children(payload: &[u8]) -> Vec<(FourCC, &[u8])> {
        boxes(payload).map(|b| b.unwrap()).map(|b| (b.kind, b.payload)).collect()
    }

    #[test]
    fn protected_init_has_sinf_tenc_and_pssh() {
        let track = video_track(24, 48);
        let pssh = [Bytes::from_static(b"\x00\x00\x00\x0cpsshabcd"), Bytes::from_static(b"\x00\x00\x00\x0cpsshwxyz")];
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let enc = TrackEncryption { scheme, key: &KEY, pssh: &pssh, iv_seed: 99, number_by_decode_time: false };
            let init = init_segment(&track, Flavor::Cmaf, true, Some(&enc));
            let top = children(&init);
            assert_eq!(top.len(), 2, "ftyp + moov");
            let moov = children(top[1].1);
            let kinds: Vec<_> = moov.iter().map(|(k, _)| *k).collect();
            assert_eq!(kinds, vec![*b"mvhd", *b"trak", *b"mvex", *b"pssh", *b"pssh"], "pssh after mvex");
            assert_eq!(moov[3].1, b"abcd");
            let stsd = find_path(top[1].1, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]).unwrap().unwrap();
            assert_eq!(&stsd[4..8], &1u32.to_be_bytes());
            let entries = children(&stsd[8..]);
            assert_eq!(entries.len(), 1, "the entry's size covers the sinf exactly");
            let (kind, payload) = entries[0];
            assert_eq!(&kind, b"encv");
            // The original payload, byte for byte, then the sinf as the last child.
            let original = &track.info.sample_entry[8..];
            assert_eq!(&payload[..original.len()], original);
            let sinf = children(&payload[original.len()..]);
            assert_eq!(sinf.len(), 1);
            assert_eq!(&sinf[0].0, b"sinf");
            let parts = children(sinf[0].1);
            assert_eq!(parts.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![*b"frma", *b"schm", *b"schi"]);
            assert_eq!(parts[0].1, b"avc1");
            let schm = parts[1].1;
            assert_eq!(&schm[0..4], &[0, 0, 0, 0]);
            assert_eq!(&schm[4..8], &scheme.fourcc());
            assert_eq!(&schm[8..12], &0x0001_0000u32.to_be_bytes());
            let tenc = find(parts[2].1, b"tenc").unwrap().unwrap();
            match scheme {
                Scheme::Cenc => {
                    assert_eq!(tenc.len(), 4 + 4 + 16);
                    assert_eq!(&tenc[..8], &[0, 0, 0, 0, 0, 0, 1, 8], "v0, isProtected, IV size 8");
                    assert_eq!(&tenc[8..24], &KEY.kid);
                }
                Scheme::Cbcs => {
                    assert_eq!(tenc.len(), 4 + 4 + 16 + 1 + 16);
                    assert_eq!(&tenc[..8], &[1, 0, 0, 0, 0, 0x19, 1, 0], "v1, 1:9 pattern, constant IV");
                    assert_eq!(&tenc[8..24], &KEY.kid);
                    assert_eq!(tenc[24], 16);
                    assert_eq!(&tenc[25..41], &crate::protect::common_encryption::constant_iv(&enc, 2));
                }
            }
            // mp4-atom still reads the whole init (encv as an unknown codec).
            let mut buf = &init[..];
            Ftyp::decode(&mut buf).unwrap();
            Moov::decode(&mut buf).unwrap();
        }
        // Audio: enca, cbcs pattern 0:0.
        let audio = TrackIndex {
            info: info(TrackKind::Audio, EditOffset::default()),
            samples: SampleTable::default(),
            sidecar: None,
        };
        let enc =
            TrackEncryption { scheme: Scheme::Cbcs, key: &KEY, pssh: &[], iv_seed: 1, number_by_decode_time: false };
        let init = init_segment(&audio, Flavor::Csf, true, Some(&enc));
        let moov = boxes(&init).nth(1).unwrap().unwrap().payload;
        let stsd = find_path(moov, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"]).unwrap().unwrap();
        let (kind, payload) = children(&stsd[8..])[0];
        assert_eq!(&kind, b"enca");
        let sinf = find(&payload[audio.info.sample_entry.len() - 8..], b"sinf").unwrap().unwrap();
        assert_eq!(find(sinf, b"frma").unwrap().unwrap(), b"mp4a");
        let tenc = find_path(sinf, &[b"schi", b"tenc"]).unwrap().unwrap();
        assert_eq!(&tenc[..8], &[1, 0, 0, 0, 0, 0, 1, 0], "audio: no pattern");
        // The clear init is unchanged by all this.
        assert_eq!(init_segment(&audio, Flavor::Csf, true, None), init_segment(&audio, Flavor::Csf, true, None));
    }

    /// A video track whose samples are length-prefixed NAL units: an SPS-like non-VCL NAL and
    /// one slice of `20 + 37*i` bytes.
    fn nal_track(n: usize) -> (TrackIndex, SourceSpan) {
        let mut data = Vec::new();
        let mut track = video_track(n, 0);
        for i in 0..n {
            let mut sample = vec![0, 0, 0, 4, 0x67, 1, 2, 3];
            let len = 20 + 37 * i;
            sample.extend_from_slice(&(len as u32).to_be_bytes());
            sample.push(if i == 0 { 0x65 } else { 0x41 });
            sample.extend((1..len).map(|k| (k * 31 + i) as u8));
            track.samples.offsets[i] = data.len() as u64;
            track.samples.sizes[i] = sample.len() as u32;
            data.extend(sample);
        }
        (track, SourceSpan::new(0, data.into()))
    }

    #[test]
    fn samples_read_as_runs_build_the_same_segment() {
        let (track, span) = nal_track(6);
        let data = span.data().clone();
        let at = |i: usize| (track.samples.offsets[i] - span.file_offset()) as usize;
        // Samples 0–1 and 3–5 read as two runs; sample 2's bytes were not read.
        let runs = |with_2: bool| {
            let first = if with_2 { data.slice(..at(3)) } else { data.slice(..at(2)) };
            SourceSpan::from_runs(vec![(at(3) as u64, data.slice(at(3)..)), (0, first)])
        };
        let enc =
            TrackEncryption { scheme: Scheme::Cenc, key: &KEY, pssh: &[], iv_seed: 5, number_by_decode_time: false };
        for encryption in [None, Some(&enc)] {
            let want = media_segment(
                &track,
                &seg(0, 6),
                1,
                &span,
                SegmentOptions { encryption, ..SegmentOptions::clear(Flavor::Cmaf) },
            )
            .unwrap();
            let got = media_segment(
                &track,
                &seg(0, 6),
                1,
                &runs(true),
                SegmentOptions { encryption, ..SegmentOptions::clear(Flavor::Cmaf) },
            )
            .unwrap();
            assert_eq!(got.to_bytes(), want.to_bytes());
            if encryption.is_none() {
                assert_eq!(got.parts.len(), 3, "header + one slice per run");
                assert_eq!(got.parts[2].as_ptr(), data[at(3)..].as_ptr(), "slices, not copies");
            }
            let e = media_segment(
                &track,
                &seg(0, 6),
                1,
                &runs(false),
                SegmentOptions { encryption, ..SegmentOptions::clear(Flavor::Cmaf) },
            )
            .unwrap_err();
            assert!(e.0.starts_with("sample 2 ("), "{e:?}");
        }
        assert_eq!(
            media_segment(&track, &seg(3, 3), 1, &runs(false), SegmentOptions::clear(Flavor::Cmaf))
                .unwrap()
                .parts
                .len(),
            2
        );
    }

    /// (moof start, moof payload, mdat payload) of a built segment (CMAF: after the styp).
    fn split(out: &[u8]) -> (usize, &[u8], &[u8]) {
        let top: Vec<_> = boxes(out).map(|b| b.unwrap()).collect();
        assert_eq!(top.iter().map(|b| b.kind).collect::<Vec<_>>(), vec![*b"styp", *b"moof", *b"mdat"]);
        (top[0].bytes.len(), top[1].payload, top[2].payload)
    }

    #[test]
    fn encrypted_segment_has_senc_saiz_saio() {
        let (track, span) = nal_track(6);
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let enc = TrackEncryption { scheme, key: &KEY, pssh: &[], iv_seed: 5, number_by_decode_time: false };
            let clear =
                media_segment(&track, &seg(0, 6), 1, &span, SegmentOptions::clear(Flavor::Cmaf)).unwrap().to_bytes();
            let built = media_segment(
                &track,
                &seg(0, 6),
                1,
                &span,
                SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Cmaf) },
            )
            .unwrap();
            assert_eq!(built.parts.len(), 2, "header + one encrypted payload");
            let out = built.to_bytes();
            let (moof_start, moof, mdat) = split(&out);
            assert_eq!(mdat.len(), span.data().len(), "encryption keeps sizes");
            assert_ne!(mdat, &span.data()[..]);
            let traf = find(moof, b"traf").unwrap().unwrap();
            let kinds: Vec<_> = children(traf).iter().map(|(k, _)| *k).collect();
            assert_eq!(kinds, vec![*b"tfhd", *b"tfdt", *b"trun", *b"senc", *b"saiz", *b"saio"]);
            let senc = find(traf, b"senc").unwrap().unwrap();
            assert_eq!(&senc[..4], &[0, 0, 0, 2], "v0, subsamples");
            assert_eq!(&senc[4..8], &6u32.to_be_bytes());
            // saio points at the first entry of senc, counted from the moof's first byte.
            let saio = find(traf, b"saio").unwrap().unwrap();
            assert_eq!(&saio[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
            let offset = u32::from_be_bytes(saio[8..12].try_into().unwrap()) as usize;
            let senc_entries = senc.as_ptr() as usize + 8 - out.as_ptr() as usize;
            assert_eq!(moof_start + offset, senc_entries);
            // saiz: every sample has one subsample (+ an 8-byte IV for cenc).
            let saiz = find(traf, b"saiz").unwrap().unwrap();
            let size = if scheme == Scheme::Cenc { 8 + 2 + 6 } else { 2 + 6 };
            assert_eq!(&saiz[4..9], &[size, 0, 0, 0, 6], "default size, 6 samples");
            // Walk senc: decrypt every sample with the reference decryptors.
            let mut at = 8;
            let mut pos = 0;
            for i in 0..6 {
                let size = track.samples.sizes[i] as usize;
                let mut sample = mdat[pos..pos + size].to_vec();
                let iv: Option<[u8; 8]> = (scheme == Scheme::Cenc).then(|| {
                    at += 8;
                    senc[at - 8..at].try_into().unwrap()
                });
                assert_eq!(u16::from_be_bytes([senc[at], senc[at + 1]]), 1);
                let clear = u16::from_be_bytes([senc[at + 2], senc[at + 3]]) as usize;
                let protected = u32::from_be_bytes(senc[at + 4..at + 8].try_into().unwrap()) as usize;
                at += 8;
                assert_eq!(clear + protected, size);
                assert!(clear > 8 + 4, "SPS, length and NAL header clear");
                match scheme {
                    Scheme::Cenc => {
                        assert_eq!(protected % 16, 0);
                        assert_eq!(iv, Some(crate::protect::common_encryption::cenc_iv(&enc, 2, i as u64)));
                        crate::protect::common_encryption::tests::reference_cenc(
                            &KEY.key,
                            &iv.unwrap(),
                            &mut sample,
                            &[(clear, protected)],
                        );
                    }
                    Scheme::Cbcs => {
                        let civ = crate::protect::common_encryption::constant_iv(&enc, 2);
                        crate::protect::common_encryption::tests::reference_cbcs(
                            &KEY.key,
                            &civ,
                            &mut sample,
                            &[(clear, protected)],
                            false,
                        );
                    }
                }
                assert_eq!(&sample[..], &span.data()[pos..pos + size], "sample {i}");
                pos += size;
            }
            assert_eq!(at, senc.len());
            // trun.data_offset still points at the mdat payload.
            let mut buf = &out[..];
            Styp::decode(&mut buf).unwrap();
            let before = buf.len();
            let parsed = Moof::decode(&mut buf).unwrap();
            let moof_len = before - buf.len();
            assert_eq!(parsed.traf[0].trun[0].data_offset, Some(moof_len as i32 + 8));
            assert_eq!(parsed.traf[0].saio[0].offsets, vec![offset as u64]);
            assert_eq!(parsed.traf[0].saiz[0].sample_count, 6);
            // Same inputs, same bytes; the clear path is untouched.
            assert_eq!(
                media_segment(
                    &track,
                    &seg(0, 6),
                    1,
                    &span,
                    SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Cmaf) }
                )
                .unwrap()
                .to_bytes(),
                out
            );
            assert_eq!(
                media_segment(&track, &seg(0, 6), 1, &span, SegmentOptions::clear(Flavor::Cmaf)).unwrap().to_bytes(),
                clear
            );
        }
    }

    #[test]
    fn cbcs_audio_needs_no_sample_auxiliary_data() {
        let n = 4;
        let track = TrackIndex {
            sidecar: None,
            info: info(TrackKind::Audio, EditOffset::default()),
            samples: SampleTable {
                dts: (0..n as u64).map(|i| 1024 * i).collect(),
                end_dts: 1024 * n as u64,
                cts_offsets: vec![],
                sizes: vec![40; n],
                offsets: (0..n as u64).map(|i| 40 * i).collect(),
                sync_samples: None,
                fragment_starts: vec![],
            },
        };
        let span = file_span(0, 160);
        let enc =
            TrackEncryption { scheme: Scheme::Cbcs, key: &KEY, pssh: &[], iv_seed: 5, number_by_decode_time: false };
        let out = media_segment(
            &track,
            &seg(0, 4),
            1,
            &span,
            SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Cmaf) },
        )
        .unwrap()
        .to_bytes();
        let (_, moof, mdat) = split(&out);
        let traf = find(moof, b"traf").unwrap().unwrap();
        assert!(find(traf, b"senc").unwrap().is_none());
        assert!(find(traf, b"saio").unwrap().is_none());
        assert_eq!(&mdat[32..40], &span.data()[32..40], "trailing partial block clear");
        // cenc audio: 8-byte IVs, no subsamples, saiz default 8.
        let enc = TrackEncryption { scheme: Scheme::Cenc, ..enc };
        let out = media_segment(
            &track,
            &seg(0, 4),
            1,
            &span,
            SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Cmaf) },
        )
        .unwrap()
        .to_bytes();
        let (_, moof, _) = split(&out);
        let traf = find(moof, b"traf").unwrap().unwrap();
        let senc = find(traf, b"senc").unwrap().unwrap();
        assert_eq!(&senc[..8], &[0, 0, 0, 0, 0, 0, 0, 4]);
        assert_eq!(senc.len(), 8 + 4 * 8);
        assert_eq!(&find(traf, b"saiz").unwrap().unwrap()[4..9], &[8, 0, 0, 0, 4]);
    }

    // ---- Smooth Streaming fragments ----

    use crate::media::mp4::reader::RawBox;
    use crate::plan::smooth::SmoothClock;
    use crate::source::asset::{Asset, AssetTrack};
    use crate::source::index::FileIndex;
    use crate::source::storage::ObjectVersion;
    use crate::source::timeline::Timeline;
    use std::sync::Arc;

    /// The Smooth clock of `track` as the only track of an asset.
    fn smooth_clock(track: &TrackIndex) -> TrackClock {
        let version = ObjectVersion { size: 0, etag: None, last_modified_unix: 0 };
        let file_index = Arc::new(FileIndex { path: "t.mp4".into(), version, tracks: vec![track.clone()], reads: 0 });
        let asset_track = AssetTrack {
            name: "t".into(),
            bitrate: 1,
            kind: track.info.kind,
            language: "und".into(),
            role: None,
            accessibility: None,
            display_name: None,
            file: "t.mp4".into(),
            file_index,
            track_position: 0,
            timeline: Timeline::default(),
            frame_rate: None,
            window_offset: 0,
        };
        let asset = Asset { name: "a".into(), tracks: vec![asset_track], live: None };
        SmoothClock::of(&asset).track(&asset.tracks[0])
    }

    /// 29.97 fps video at 90 kHz (3003 ticks a frame, 333 666.67 at 10 MHz) with the usual
    /// 2-frame B-frame delay, undone by its edit list.
    fn video_90k(n: usize) -> TrackIndex {
        let mut track = video_track(n, 0);
        track.info.timescale = 90_000;
        track.info.edit.media_time = 2 * 3003;
        track.samples.dts = (0..n as u64).map(|i| i * 3003).collect();
        track.samples.end_dts = n as u64 * 3003;
        for c in &mut track.samples.cts_offsets {
            *c = *c / 512 * 3003;
        }
        track
    }

    /// AAC at 48 kHz (1024 samples a frame, 213 333.33 ticks at 10 MHz) with 1024 of priming.
    fn audio_48k(n: usize) -> TrackIndex {
        TrackIndex {
            sidecar: None,
            info: info(TrackKind::Audio, EditOffset { empty_duration: 0, media_time: 1024 }),
            samples: SampleTable {
                dts: (0..n as u64).map(|i| 1024 * i).collect(),
                end_dts: 1024 * n as u64,
                cts_offsets: vec![],
                sizes: vec![40; n],
                offsets: (0..n as u64).map(|i| 40 * i).collect(),
                sync_samples: None,
                fragment_starts: vec![],
            },
        }
    }

    /// The top-level boxes of a Smooth fragment (moof and mdat, nothing else) and the
    /// children of its one traf.
    fn smooth_boxes(out: &[u8]) -> (RawBox<'_>, RawBox<'_>, Vec<RawBox<'_>>) {
        let top: Vec<_> = boxes(out).map(|b| b.unwrap()).collect();
        assert_eq!(top.iter().map(|b| b.kind).collect::<Vec<_>>(), vec![*b"moof", *b"mdat"], "no styp");
        let traf = find(top[0].payload, b"traf").unwrap().unwrap();
        (top[0], top[1], boxes(traf).map(|b| b.unwrap()).collect())
    }

    /// The user type of a `uuid` box.
    fn user_type<'a>(b: &RawBox<'a>) -> &'a [u8] {
        assert_eq!(&b.kind, b"uuid");
        &b.bytes[8..24]
    }

    /// (time, duration) of a `tfxd` box, checking its version 1 layout.
    fn tfxd_fields(b: &RawBox<'_>) -> (u64, u64) {
        assert_eq!(user_type(b), TFXD_USER_TYPE);
        assert_eq!(b.payload.len(), 4 + 16);
        assert_eq!(&b.payload[..4], &[1, 0, 0, 0], "version 1, no flags");
        let field = |at: usize| u64::from_be_bytes(b.payload[at..at + 8].try_into().unwrap());
        (field(4), field(12))
    }

    /// Per-sample (duration, composition offset) of a parsed traf, tfhd defaults applied.
    fn sample_times(traf: &mp4_atom::Traf) -> Vec<(u64, i64)> {
        traf.trun[0]
            .samples
            .iter()
            .map(|e| {
                let d = e.duration.or(traf.tfhd.default_sample_duration).unwrap();
                (u64::from(d), e.cts.unwrap_or(0))
            })
            .collect()
    }

    /// Checks a clear Smooth fragment of `segment` against the clock: `tfxd` = the segment's
    /// span on the axis, each duration and composition offset the difference of rescaled
    /// instants, the payload the source's bytes as a slice. Returns the sample durations.
    fn check_smooth_fragment(track: &TrackIndex, segment: &Segment, number: u32) -> Vec<u64> {
        let clock = smooth_clock(track);
        let range = source_range(track, segment);
        let span = file_span(range.start, range.end);
        let built = media_segment(track, segment, number, &span, SegmentOptions::clear(Flavor::Smooth(clock))).unwrap();
        assert_eq!(built.parts.len(), 2, "header + one slice for contiguous samples");
        assert_eq!(built.parts[1].as_ptr(), span.data().as_ptr(), "payload is a slice, not a copy");
        let out = built.to_bytes();
        let (moof, mdat, traf) = smooth_boxes(&out);
        assert_eq!(traf.iter().map(|b| b.kind).collect::<Vec<_>>(), vec![*b"tfhd", *b"trun", *b"uuid"]);
        let tfhd_flags = u32::from_be_bytes(traf[0].payload[..4].try_into().unwrap());
        assert_eq!(tfhd_flags & tfhd::DEFAULT_BASE_IS_MOOF, 0, "MS-SSTR tfhd");
        let (time, duration) = tfxd_fields(&traf[2]);
        let (start, end) = clock.segment_span(track, segment);
        assert_eq!((time, duration), (start, end - start));
        assert_eq!(mdat.payload, &span.data()[..]);

        let parsed = Moof::decode(&mut &out[..]).unwrap();
        assert_eq!(parsed.mfhd.sequence_number, number);
        let parsed_traf = &parsed.traf[0];
        assert!(parsed_traf.tfdt.is_none());
        assert_eq!(parsed_traf.trun[0].data_offset, Some(moof.bytes.len() as i32 + 8));
        let s = &track.samples;
        let times = sample_times(parsed_traf);
        assert_eq!(times.len(), segment.sample_count as usize);
        for (k, i) in sample_range(segment).enumerate() {
            let next = s.dts.get(i + 1).copied().unwrap_or(s.end_dts);
            let composition = (s.dts[i] as i64 + s.cts_offset(i) as i64) as u64;
            let want =
                (clock.time(next) - clock.time(s.dts[i]), clock.time(composition) as i64 - clock.time(s.dts[i]) as i64);
            assert_eq!(times[k], want, "sample {i}");
        }
        assert_eq!(times.iter().map(|t| t.0).sum::<u64>(), duration, "durations add up to tfxd's");
        times.iter().map(|t| t.0).collect()
    }

    #[test]
    fn smooth_video_fragments_count_on_the_10_mhz_axis() {
        let track = video_90k(24);
        assert_eq!(smooth_clock(&track).time(0), 0, "the lead undoes the B-frame delay");
        for (segment, number) in [(seg(0, 12), 1), (seg(12, 12), 2)] {
            let durations = check_smooth_fragment(&track, &segment, number);
            // 3003 ticks at 90 kHz are 333 666.67 at 10 MHz: the rounding moves between samples.
            assert!(durations.contains(&333_667) && durations.contains(&333_666), "{durations:?}");
        }
        // The first frame presents 2 frames after it decodes: 667 333 ticks, not 2 × 333 667.
        let clock = smooth_clock(&track);
        assert_eq!(clock.time(2 * 3003) - clock.time(0), 667_333);
    }

    #[test]
    fn smooth_audio_fragments_count_on_the_10_mhz_axis() {
        let track = audio_48k(10);
        for (segment, number) in [(seg(0, 5), 1), (seg(5, 5), 2)] {
            let durations = check_smooth_fragment(&track, &segment, number);
            assert!(durations.iter().all(|&d| d == 213_333 || d == 213_334), "{durations:?}");
        }
        // Two fragments meet exactly: the second starts where the first ends.
        let clock = smooth_clock(&track);
        assert_eq!(clock.segment_span(&track, &seg(0, 5)).1, clock.segment_span(&track, &seg(5, 5)).0);
        assert_eq!(clock.segment_span(&track, &seg(5, 5)).1, clock.time(10 * 1024));
    }

    #[test]
    fn smooth_fragment_of_negative_composition_offsets_uses_trun_v1() {
        let mut track = video_90k(6);
        track.info.edit = EditOffset::default();
        track.samples.cts_offsets = vec![3003, 6006, -3003, -3003, 6006, -3003];
        let clock = smooth_clock(&track);
        let span = file_span(0, 1000);
        let out = media_segment(&track, &seg(0, 6), 1, &span, SegmentOptions::clear(Flavor::Smooth(clock))).unwrap();
        let out = out.to_bytes();
        let (_, _, traf) = smooth_boxes(&out);
        assert_eq!(traf[1].payload[0], 1, "trun version 1");
        let parsed = Moof::decode(&mut &out[..]).unwrap();
        let cts: Vec<_> = sample_times(&parsed.traf[0]).iter().map(|t| t.1).collect();
        assert_eq!(cts, vec![333_667, 667_333, -333_666, -333_667, 667_333, -333_666]);
    }

    #[test]
    fn smooth_cenc_fragment_has_piff_and_common_encryption_boxes() {
        let (video, video_span) = nal_track(6);
        let audio = audio_48k(4);
        let audio_span = file_span(0, 160);
        for (track, span, subsamples) in [(&video, &video_span, true), (&audio, &audio_span, false)] {
            let enc = TrackEncryption {
                scheme: Scheme::Cenc,
                key: &KEY,
                pssh: &[],
                iv_seed: 5,
                number_by_decode_time: false,
            };
            let segment = seg(0, track.samples.len() as u32);
            let options =
                SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Smooth(smooth_clock(track))) };
            let built = media_segment(track, &segment, 1, span, options).unwrap();
            let out = built.to_bytes();
            let (moof, mdat, traf) = smooth_boxes(&out);
            let kinds: Vec<_> = traf.iter().map(|b| b.kind).collect();
            assert_eq!(kinds, vec![*b"tfhd", *b"trun", *b"uuid", *b"senc", *b"saiz", *b"saio", *b"uuid"]);
            tfxd_fields(&traf[2]);
            let (senc, saio, piff) = (&traf[3], &traf[5], &traf[6]);
            assert_eq!(user_type(piff), PIFF_SAMPLE_ENCRYPTION_USER_TYPE);
            // The same version, flags, count and entries; flag 0x1 (per-box defaults) unset.
            assert_eq!(piff.payload, senc.payload);
            assert_eq!(&senc.payload[..4], &[0, 0, 0, if subsamples { 2 } else { 0 }]);
            // saio counts from the moof's first byte to the first senc entry.
            let offset = u32::from_be_bytes(saio.payload[8..12].try_into().unwrap()) as usize;
            let first_entry = senc.payload.as_ptr() as usize + 8 - moof.bytes.as_ptr() as usize;
            assert_eq!(offset, first_entry);

            // The samples are encrypted exactly as CMAF cenc encrypts them: same encryptor, same IVs.
            let cmaf = media_segment(
                track,
                &segment,
                1,
                span,
                SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Cmaf) },
            )
            .unwrap()
            .to_bytes();
            let (_, cmaf_moof, cmaf_mdat) = split(&cmaf);
            assert_eq!(mdat.payload, cmaf_mdat);
            assert_ne!(mdat.payload, &span.data()[..]);
            let cmaf_senc = find(find(cmaf_moof, b"traf").unwrap().unwrap(), b"senc").unwrap().unwrap();
            assert_eq!(senc.payload, cmaf_senc);
            // Each entry's IV is the CMAF one; decrypting with it gives the source sample.
            let mut at = 8;
            let mut pos = 0;
            for i in 0..track.samples.len() {
                let iv: [u8; 8] = senc.payload[at..at + 8].try_into().unwrap();
                assert_eq!(iv, crate::protect::common_encryption::cenc_iv(&enc, 2, i as u64));
                at += 8;
                let size = track.samples.sizes[i] as usize;
                let mut runs = vec![(0, size)];
                if subsamples {
                    assert_eq!(u16::from_be_bytes([senc.payload[at], senc.payload[at + 1]]), 1);
                    let clear = u16::from_be_bytes([senc.payload[at + 2], senc.payload[at + 3]]) as usize;
                    runs = vec![(clear, size - clear)];
                    at += 8;
                }
                let mut sample = mdat.payload[pos..pos + size].to_vec();
                crate::protect::common_encryption::tests::reference_cenc(&KEY.key, &iv, &mut sample, &runs);
                assert_eq!(&sample[..], &span.data()[pos..pos + size], "sample {i}");
                pos += size;
            }
            assert_eq!(at, senc.payload.len());
            let parsed = Moof::decode(&mut &out[..]).unwrap();
            assert_eq!(parsed.traf[0].trun[0].data_offset, Some(moof.bytes.len() as i32 + 8));
            assert_eq!(parsed.traf[0].saio[0].offsets, vec![offset as u64]);
        }
    }

    // ---- ffmpeg: decrypting our segments gives the source's frames ----

    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
    }

    /// Per-frame MD5s of the first stream of `map`'s type, decrypting with `key` when given.
    fn frame_hashes(input: &Path, map: &str, key: Option<&str>, source: bool) -> Vec<String> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-v", "error"]);
        if source {
            cmd.args(["-ignore_editlist", "1"]);
        }
        if let Some(key) = key {
            cmd.args(["-decryption_key", key]);
        }
        cmd.arg("-i").arg(input).args(["-map", map, "-fps_mode", "passthrough", "-f", "framemd5", "-"]);
        let out = cmd.output().expect("ffmpeg runs");
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
            .collect()
    }

    /// Init + each media segment of the fixture's single track, encrypted.
    async fn build_encrypted(file: &str, scheme: Scheme) -> (Bytes, Vec<Bytes>) {
        use crate::source::asset::{self, AssetSource};
        use crate::source::storage::Storage;
        use crate::source::timeline::SegmentPolicy;
        let storage = Storage::local("fixtures", fixtures()).unwrap();
        let asset =
            asset::load(&storage, &AssetSource::File(file.to_string()), SegmentPolicy::default()).await.unwrap();
        assert_eq!(asset.tracks.len(), 1);
        let t = &asset.tracks[0];
        let seed = crate::protect::common_encryption::iv_seed(file, t.bitrate, &t.name);
        let enc = TrackEncryption { scheme, key: &KEY, pssh: &[], iv_seed: seed, number_by_decode_time: false };
        let init = init_segment(t.index(), Flavor::Cmaf, true, Some(&enc));
        assert!(t.timeline.segments.len() > 1);
        let mut segments = Vec::new();
        for (k, segment) in t.timeline.segments.iter().enumerate() {
            let range = source_range(t.index(), segment);
            let data = storage.read_range(&t.file, range.clone()).await.unwrap();
            let span = SourceSpan::new(range.start, data);
            let built = media_segment(
                t.index(),
                segment,
                k as u32 + 1,
                &span,
                SegmentOptions { encryption: Some(&enc), ..SegmentOptions::clear(Flavor::Cmaf) },
            )
            .unwrap();
            let bytes = built.to_bytes();
            assert!(!bytes.windows(span.data().len()).any(|w| w == &span.data()[..]), "payload is encrypted");
            segments.push(bytes);
        }
        if let Some(keep) = std::env::var_os("CENC_KEEP") {
            let mut all = init.to_vec();
            segments.iter().for_each(|s| all.extend_from_slice(s));
            std::fs::write(Path::new(&keep).join(format!("{}.{scheme:?}.mp4", file.replace('/', "_"))), all).unwrap();
        }
        (init, segments)
    }

    /// ffmpeg decrypts every segment (init + that segment; ffmpeg 5.1's mov demuxer looks up
    /// a sample's `senc` entry in the *last parsed* fragment, so a file of several encrypted
    /// fragments trips it — fixed upstream, in libavformat's get_frag_stream_info_from_pkt)
    /// and copies the decrypted samples out as an elementary stream (`raw`: h264, hevc,
    /// adts); the concatenation of those decodes to the source's frames.
    async fn check_decrypts(file: &str, map: &str, raw: &str, scheme: Scheme) {
        let dir = tempfile::tempdir().unwrap();
        let (init, segments) = build_encrypted(file, scheme).await;
        let key = base16ct::lower::encode_string(&KEY.key);
        let mut elementary = Vec::new();
        for (k, segment) in segments.iter().enumerate() {
            let path = dir.path().join(format!("seg{k}.mp4"));
            std::fs::write(&path, [&init[..], &segment[..]].concat()).unwrap();
            let mut cmd = Command::new("ffmpeg");
            cmd.args(["-nostdin", "-hide_banner", "-v", "error", "-decryption_key", &key, "-i"]).arg(&path);
            cmd.args(["-map", map, "-c", "copy", "-f", raw, "-"]);
            let out = cmd.output().expect("ffmpeg runs");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{file} {scheme:?} segment {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            elementary.extend_from_slice(&out.stdout);
        }
        let decrypted = dir.path().join(format!("decrypted.{raw}"));
        std::fs::write(&decrypted, elementary).unwrap();
        let theirs = frame_hashes(&fixtures().join(file), map, None, true);
        let ours = frame_hashes(&decrypted, "0:0", None, false);
        assert!(!theirs.is_empty());
        assert_eq!(ours.len(), theirs.len(), "{file} {scheme:?}: frame count");
        assert_eq!(
            ours.iter().zip(&theirs).position(|(a, b)| a != b),
            None,
            "{file} {scheme:?}: first differing frame"
        );
        // Without the key, the first segment does not give the source's frames.
        let path = dir.path().join("seg0.mp4");
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "quiet", "-i"]).arg(&path).args([
            "-map",
            map,
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ]);
        let blind = String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned();
        let blind: Vec<_> = blind
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
            .collect();
        assert!(
            blind.is_empty() || blind[..] != theirs[..blind.len().min(theirs.len())],
            "{file} {scheme:?} decodes without the key"
        );
    }

    #[tokio::test]
    async fn ffmpeg_decrypts_cenc_h264() {
        check_decrypts("ladder/video_150k.mp4", "0:v:0", "h264", Scheme::Cenc).await;
    }

    #[tokio::test]
    async fn ffmpeg_decrypts_cenc_hevc() {
        check_decrypts("hevc/video_hevc.mp4", "0:v:0", "hevc", Scheme::Cenc).await;
    }

    #[tokio::test]
    async fn ffmpeg_decrypts_cenc_aac() {
        check_decrypts("ladder/audio_eng.mp4", "0:a:0", "adts", Scheme::Cenc).await;
    }

    #[tokio::test]
    async fn ffmpeg_decrypts_cbcs_h264() {
        check_decrypts("ladder/video_150k.mp4", "0:v:0", "h264", Scheme::Cbcs).await;
    }

    #[tokio::test]
    async fn ffmpeg_decrypts_cbcs_hevc() {
        check_decrypts("hevc/video_hevc.mp4", "0:v:0", "hevc", Scheme::Cbcs).await;
    }

    #[tokio::test]
    async fn ffmpeg_decrypts_cbcs_aac() {
        check_decrypts("ladder/audio_eng.mp4", "0:a:0", "adts", Scheme::Cbcs).await;
    }
}
