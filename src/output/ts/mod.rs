//! MPEG-2 transport stream segments for HLS (`format=m3u8-aapl`), built from the same inputs
//! as [`cmaf`](super::cmaf): a [`TrackIndex`], one [`Segment`] of it and the fetched
//! [`SourceSpan`] covering the segment's samples.
//!
//! Layout of every segment (ISO/IEC 13818-1, RFC 8216 §3.2, Apple HLS authoring rules):
//!
//! - one PAT (PID 0) and one PMT (PID [`PMT_PID`]) packet first, nothing else of PSI;
//! - elementary streams on fixed PIDs: the video input on [`VIDEO_PID`], audio inputs on
//!   [`AUDIO_PID`], `AUDIO_PID + 1`, … in the order they are given;
//! - stream types and descriptors as ffmpeg 5.1's mpegts muxer writes them (checked with
//!   `ffmpeg -c copy -f mpegts`): H.264 `0x1B`, HEVC `0x24`, AAC/ADTS `0x0F`, AC-3 `0x81`
//!   with a registration descriptor `AC-3`, E-AC-3 `0x87` with a registration descriptor
//!   `EAC3`; audio also gets an ISO 639 language descriptor when the track has a language.
//!   (The ATSC A/52 `AC-3_audio_descriptor` 0x81 / `E-AC-3_audio_descriptor` 0xCC are not
//!   written: ffmpeg does not write them either, and no player we test needs them.)
//! - video: one PES per access unit (stream_id 0xE0, `PES_packet_length` 0), the sample's
//!   length-prefixed NAL units rewritten with 4-byte start codes, an access unit delimiter
//!   first (H.264 type 9 / HEVC type 35; delimiters already in the sample are dropped), and
//!   the avcC / hvcC parameter sets before every sync sample;
//! - audio: AAC frames get a 7-byte ADTS header (the core AAC object type and sampling
//!   frequency of the AudioSpecificConfig, so HE-AAC is signalled as AAC-LC at the core rate
//!   and decoders find SBR/PS implicitly, as in ffmpeg's ADTS muxer); AC-3 / E-AC-3 frames
//!   are copied as they are (checked for the 0x0B77 syncword). Frames are grouped into PES
//!   packets of at most [`AUDIO_PES_MAX_TICKS`] (90 ms), PTS of the first frame. stream_id
//!   0xC0 for AAC, 0xBD (private_stream_1) for AC-3 / E-AC-3, like ffmpeg;
//! - PES packets of all inputs interleaved in decode-time order.
//!
//! Timestamps (90 kHz, 33 bits): `dts = (sample dts + edit shift + cts bias) * 90000 /
//! timescale + TIMESTAMP_OFFSET`, `pts = dts + composition offset`. The edit shift is the
//! track's [`EditOffset::presentation_shift`](crate::source::index::EditOffset::presentation_shift)
//! (B-frame delay, AAC priming; may be negative). The cts bias is the track's most negative
//! composition offset (0 for ctts v0), so that PTS ≥ DTS with ctts v1 too. Every timestamp
//! is a function of the sample alone, so segments built independently are continuous.
//! [`TIMESTAMP_OFFSET`] is a fixed 10 s (900000 ticks): room for negative edit shifts and for
//! the PCR to run ahead of the first DTS, the same for every track and rendition so muxed,
//! video-only and audio-only variants stay in sync; values wrap at 2^33.
//!
//! PCR (on the video PID, or on the first audio PID when there is no video) is in the
//! adaptation field of the first packet of every PES of that PID: `DTS - PCR_LEAD` (0.1 s),
//! extension 0 — continuous across segments too. The first packet of a PES on a sync sample
//! has `random_access_indicator` set (video IDR and every audio PES).
//!
//! Continuity counters: each segment is built on its own, so a counter cannot continue from
//! the previous segment's last packet (that would need the packet count of every earlier
//! segment). PAT and PMT take exactly one packet per segment, so their counter is
//! `sequence_number mod 16` and is continuous across consecutive segments. Elementary PIDs
//! start at the same value, and the first packet of each elementary PID in a segment sets
//! `discontinuity_indicator`, which tells demuxers that read segments as one stream (ffmpeg's
//! HLS demuxer) that the counter jump is intended rather than a lost packet; its PCR
//! continues the same time base, so nothing resets. HLS players demux segments separately
//! and ignore both.
//!
//! Empty inputs: an input whose segment has no samples contributes no PES, but its stream is
//! still declared in the PMT; with no samples at all the segment is PAT + PMT only (a valid,
//! empty transport stream). Giving no input at all is an error.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::media::codec::{AdtsConfig, CodecConfig, CodecInfo};
use crate::media::MediaError;
use crate::plan::reads::SourceSpan;
use crate::source::index::{TrackIndex, TrackKind};
use crate::source::timeline::Segment;

mod pes;
mod psi;

pub(crate) use pes::wrap33;
use pes::{pes_header, write_pes, FirstPacket, PidState, Pieces};
use psi::{pat_body, pmt_body, write_psi};

/// One elementary stream to mux into a TS segment: its index, the segment's samples, and the
/// fetched source bytes covering them (same SourceSpan as cmaf.rs).
pub(crate) struct TsInput<'a> {
    pub track: &'a TrackIndex,
    pub segment: &'a Segment,
    pub span: &'a SourceSpan,
}

pub(crate) const PACKET_SIZE: usize = 188;
pub(crate) const PAT_PID: u16 = 0;
pub(crate) const PMT_PID: u16 = 0x1000;
pub(crate) const VIDEO_PID: u16 = 0x100;
/// The first audio input's PID; the k-th audio input gets `AUDIO_PID + k`.
pub(crate) const AUDIO_PID: u16 = 0x101;
/// Added to every PTS/DTS (90 kHz): 10 s.
pub(crate) const TIMESTAMP_OFFSET: i64 = 900_000;
/// How far the PCR runs ahead of the DTS of the PES it is sent with (90 kHz): 0.1 s.
pub(crate) const PCR_LEAD: i64 = 9_000;
/// Longest audio PES (90 kHz): frames are added while the PES ends no later than 90 ms after
/// its first frame starts (always at least one frame).
pub(crate) const AUDIO_PES_MAX_TICKS: i64 = 8_100;

const PROGRAM_NUMBER: u16 = 1;
const TS_CLOCK: i128 = 90_000;
const WRAP_33: i128 = 1 << 33;
const PAYLOAD_SIZE: usize = PACKET_SIZE - 4;
const START_CODE: &[u8] = &[0, 0, 0, 1];
/// H.264 access unit delimiter, primary_pic_type 7 (any slice type).
const AVC_AUD: &[u8] = &[0, 0, 0, 1, 0x09, 0xF0];
/// HEVC access unit delimiter (type 35, layer 0, temporal id 0), pic_type 2 (I, P, B).
const HEVC_AUD: &[u8] = &[0, 0, 0, 1, 0x46, 0x01, 0x50];
/// Most payload bytes in an audio PES with a length (65535 minus the 8 header bytes counted).
const MAX_AUDIO_PES_PAYLOAD: usize = 65_535 - 8;

fn fail<T>(msg: impl Into<String>) -> Result<T, MediaError> {
    Err(MediaError(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Codec configuration

#[derive(Debug, Clone, PartialEq, Eq)]
enum Codec {
    Avc { length_size: usize, parameter_sets: Vec<u8> },
    Hevc { length_size: usize, parameter_sets: Vec<u8> },
    Aac(AdtsConfig),
    Ac3,
    Eac3,
}

impl Codec {
    fn stream_type(&self) -> u8 {
        match self {
            Codec::Avc { .. } => 0x1B,
            Codec::Hevc { .. } => 0x24,
            Codec::Aac(_) => 0x0F,
            Codec::Ac3 => 0x81,
            Codec::Eac3 => 0x87,
        }
    }
    fn stream_id(&self) -> u8 {
        match self {
            Codec::Avc { .. } | Codec::Hevc { .. } => 0xE0,
            Codec::Aac(_) => 0xC0,
            Codec::Ac3 | Codec::Eac3 => 0xBD,
        }
    }
    fn is_video(&self) -> bool {
        matches!(self, Codec::Avc { .. } | Codec::Hevc { .. })
    }
}

/// The muxer's view of a track's codec configuration (parsed once when the track was indexed).
fn codec_of(codec: &CodecInfo) -> Result<Codec, MediaError> {
    match &codec.config {
        CodecConfig::Avc(avc) => {
            if avc.sps.is_empty() || avc.pps.is_empty() {
                return fail("avcC has no SPS or no PPS");
            }
            let length_size = usize::from(avc.nal_length_size);
            Ok(Codec::Avc { length_size, parameter_sets: annex_b_parameter_sets(&codec.config) })
        }
        CodecConfig::Hevc(hevc) => {
            if hevc.nal_units.is_empty() {
                return fail("hvcC has no parameter sets");
            }
            let length_size = usize::from(hevc.nal_length_size);
            Ok(Codec::Hevc { length_size, parameter_sets: annex_b_parameter_sets(&codec.config) })
        }
        CodecConfig::Aac(es) => {
            let asc = es
                .audio_specific_config
                .as_ref()
                .ok_or_else(|| MediaError("AAC without AudioSpecificConfig".into()))?;
            Ok(Codec::Aac(asc.adts()?))
        }
        CodecConfig::Ac3(_) => Ok(Codec::Ac3),
        CodecConfig::Eac3(_) => Ok(Codec::Eac3),
        CodecConfig::Av1(_) | CodecConfig::None => fail(
            codec
                .ts_refusal()
                .unwrap_or_else(|| format!("codec '{}' cannot be carried in MPEG-TS", codec.sample_entry_type)),
        ),
    }
}

/// The configuration record's parameter sets with Annex B start codes, sent before every
/// sync sample.
fn annex_b_parameter_sets(config: &CodecConfig) -> Vec<u8> {
    let mut sets = Vec::new();
    for nal in config.parameter_sets() {
        sets.extend_from_slice(START_CODE);
        sets.extend_from_slice(nal);
    }
    sets
}

// ---------------------------------------------------------------------------------------------
// Muxing

/// Track time (timescale ticks, shifts applied) → 90 kHz, offset, not yet wrapped.
fn to_90k(t: i128, timescale: u32) -> i128 {
    (t * TS_CLOCK).div_euclid(i128::from(timescale.max(1))) + i128::from(TIMESTAMP_OFFSET)
}

struct Stream<'a> {
    input: &'a TsInput<'a>,
    codec: Codec,
    pid: u16,
    range: Range<usize>,
    /// Added to every decode time (track timescale): edit shift + most negative cts offset.
    dts_shift: i128,
    /// The most negative composition offset of the track (0 when none is negative).
    min_cts: i128,
    language: Option<[u8; 3]>,
}

/// One PES to write: which stream, which samples, its 90 kHz times (unwrapped).
struct Unit {
    stream: usize,
    samples: Range<usize>,
    dts: i128,
    pts: i128,
}

/// The bytes of sample `i` among the fetched bytes.
fn sample_bytes<'a>(track: &TrackIndex, span: &'a SourceSpan, i: usize) -> Result<&'a [u8], MediaError> {
    let s = &track.samples;
    let (Some(&offset), Some(&size)) = (s.offsets.get(i), s.sizes.get(i)) else {
        return fail(format!("sample {i} is outside the track"));
    };
    span.sample(offset, u64::from(size)).ok_or_else(|| {
        MediaError(format!("sample {i} ({offset}+{size}) lies outside the fetched bytes {}", span.describe()))
    })
}

fn language_code(lang: &str) -> Option<[u8; 3]> {
    let b = lang.as_bytes();
    (b.len() == 3 && b.iter().all(u8::is_ascii_lowercase) && lang != "und").then(|| [b[0], b[1], b[2]])
}

/// Builds one TS segment holding every input (one video + audio for muxed "v3" segments, or a
/// single track). `sequence_number` (segment index) sets the PAT/PMT continuity counters.
pub(crate) fn ts_segment(inputs: &[TsInput], sequence_number: u32) -> Result<Bytes, MediaError> {
    if inputs.is_empty() {
        return fail("a TS segment needs at least one track");
    }
    let start_cc = (sequence_number & 0xF) as u8;
    let streams = streams_of(inputs)?;
    let pcr_pid = streams[0].pid;
    let (units, payload_estimate) = pes_units(&streams);

    let packets_estimate = 2 + payload_estimate / PAYLOAD_SIZE + units.len() * 2 + 2;
    let mut out = BytesMut::with_capacity(packets_estimate * PACKET_SIZE);
    write_psi(&mut out, PAT_PID, start_cc, 0x00, 1, &pat_body(PMT_PID))?;
    write_psi(&mut out, PMT_PID, start_cc, 0x02, PROGRAM_NUMBER, &pmt_body(&streams, pcr_pid))?;

    let mut states: Vec<PidState> =
        streams.iter().map(|s| PidState { pid: s.pid, cc: start_cc, started: false }).collect();
    for unit in &units {
        let st = &streams[unit.stream];
        let samples = &st.input.track.samples;
        // ADTS headers of this PES, made before the payload borrows them.
        let adts: Vec<[u8; 7]> = match &st.codec {
            Codec::Aac(cfg) => {
                unit.samples.clone().map(|i| cfg.header(samples.sizes[i] as usize)).collect::<Result<_, _>>()?
            }
            _ => Vec::new(),
        };
        let sync = samples.is_sync(unit.samples.start);
        let pieces = pes_payload(st, unit, sync, &adts)?;
        let pts = wrap33(unit.pts);
        let dts = (unit.dts != unit.pts).then(|| wrap33(unit.dts));
        let (header, header_len) = pes_header(st.codec.stream_id(), pieces.len, pts, dts, !st.codec.is_video())?;
        let state = &mut states[unit.stream];
        let first = FirstPacket {
            discontinuity: !state.started,
            random_access: sync,
            pcr: (st.pid == pcr_pid).then(|| wrap33(unit.dts - i128::from(PCR_LEAD))),
        };
        state.started = true;
        write_pes(&mut out, state, &header[..header_len], &pieces, first);
    }
    Ok(out.freeze())
}

/// The streams of a segment: codec, PID and sample range of each input, checked; video first,
/// then audio in input order (the PMT order).
fn streams_of<'a>(inputs: &'a [TsInput<'a>]) -> Result<Vec<Stream<'a>>, MediaError> {
    let mut streams: Vec<Stream> = Vec::with_capacity(inputs.len());
    let mut audio_count = 0u16;
    let mut has_video = false;
    for input in inputs {
        let track = input.track;
        let s = &track.samples;
        if track.info.kind == TrackKind::Text {
            return fail("text tracks cannot be carried in an MPEG-TS segment");
        }
        let codec = codec_of(&track.info.codec)?;
        let pid = if codec.is_video() {
            if has_video {
                return fail("a TS segment holds at most one video track");
            }
            has_video = true;
            VIDEO_PID
        } else {
            audio_count += 1;
            if audio_count > 16 {
                return fail("too many audio tracks for one TS segment");
            }
            AUDIO_PID + audio_count - 1
        };
        let start = input.segment.first_sample as usize;
        let range = start..start.saturating_add(input.segment.sample_count as usize);
        if range.end > s.len() || s.dts.len() < s.len() || s.offsets.len() < s.len() {
            return fail(format!(
                "segment samples {}..{} outside the track's {} samples",
                range.start,
                range.end,
                s.len()
            ));
        }
        let min_cts = s.cts_offsets.iter().copied().min().unwrap_or(0).min(0);
        let dts_shift = i128::from(track.info.edit.presentation_shift()) + i128::from(min_cts);
        streams.push(Stream {
            input,
            codec,
            pid,
            range,
            dts_shift,
            min_cts: i128::from(min_cts),
            language: language_code(&track.info.language),
        });
    }
    streams.sort_by_key(|s| s.pid);
    Ok(streams)
}

/// The PES packets of all streams in decode order (ties keep video before audio): one per
/// video access unit, audio frames grouped up to [`AUDIO_PES_MAX_TICKS`]; and an estimate of
/// the payload bytes, to size the output once.
fn pes_units(streams: &[Stream]) -> (Vec<Unit>, usize) {
    let mut units: Vec<Unit> = Vec::new();
    let mut payload_estimate = 0usize;
    for (k, st) in streams.iter().enumerate() {
        let track = st.input.track;
        let s = &track.samples;
        let ts = track.info.timescale;
        let time = |i: usize| -> (i128, i128) {
            let dts = i128::from(s.dts[i]) + st.dts_shift;
            let pts = dts + i128::from(s.cts_offset(i)) - st.min_cts;
            (to_90k(dts, ts), to_90k(pts, ts))
        };
        if st.codec.is_video() {
            units.reserve(st.range.len());
            for i in st.range.clone() {
                let (dts, pts) = time(i);
                units.push(Unit { stream: k, samples: i..i + 1, dts, pts });
            }
        } else {
            let mut i = st.range.start;
            while i < st.range.end {
                let (dts, pts) = time(i);
                let mut j = i + 1;
                let mut bytes = s.sizes[i] as usize + 7;
                while j < st.range.end {
                    let end = to_90k(i128::from(s.dts[j]) + i128::from(s.duration(j)) + st.dts_shift, ts);
                    let size = s.sizes[j] as usize + 7;
                    if end - pts > i128::from(AUDIO_PES_MAX_TICKS) || bytes + size > MAX_AUDIO_PES_PAYLOAD {
                        break;
                    }
                    bytes += size;
                    j += 1;
                }
                units.push(Unit { stream: k, samples: i..j, dts, pts });
                i = j;
            }
        }
        payload_estimate += st.range.clone().map(|i| s.sizes[i] as usize).sum::<usize>();
        if let Codec::Avc { parameter_sets, .. } | Codec::Hevc { parameter_sets, .. } = &st.codec {
            let syncs = st.range.clone().filter(|&i| s.is_sync(i)).count();
            payload_estimate += syncs * parameter_sets.len();
        }
        payload_estimate += st.range.len() * 16;
    }
    units.sort_by_key(|u| (u.dts, u.stream));
    (units, payload_estimate)
}

/// The payload of one PES: a video access unit in Annex B form (delimiter, parameter sets on
/// sync samples, start codes), AAC frames behind their ADTS headers, or AC-3 frames as they are.
fn pes_payload<'p>(st: &'p Stream, unit: &Unit, sync: bool, adts: &'p [[u8; 7]]) -> Result<Pieces<'p>, MediaError> {
    let track = st.input.track;
    let mut pieces = Pieces::new();
    match &st.codec {
        Codec::Avc { length_size, parameter_sets } | Codec::Hevc { length_size, parameter_sets } => {
            let hevc = matches!(st.codec, Codec::Hevc { .. });
            let i = unit.samples.start;
            let data = sample_bytes(track, st.input.span, i)?;
            pieces.push(if hevc { HEVC_AUD } else { AVC_AUD });
            if sync {
                pieces.push(parameter_sets);
            }
            push_nal_units(&mut pieces, data, i, *length_size, hevc)?;
        }
        Codec::Aac(_) => {
            for (k, i) in unit.samples.clone().enumerate() {
                pieces.push(&adts[k]);
                pieces.push(sample_bytes(track, st.input.span, i)?);
            }
        }
        Codec::Ac3 | Codec::Eac3 => {
            for i in unit.samples.clone() {
                let data = sample_bytes(track, st.input.span, i)?;
                if !data.starts_with(&[0x0B, 0x77]) {
                    return fail(format!("sample {i} does not start with the AC-3 syncword 0x0B77"));
                }
                pieces.push(data);
            }
        }
    }
    Ok(pieces)
}

/// The length-prefixed NAL units of video sample `i` with start codes instead, access unit
/// delimiters dropped (one is written first).
fn push_nal_units<'p>(
    pieces: &mut Pieces<'p>,
    data: &'p [u8],
    i: usize,
    length_size: usize,
    hevc: bool,
) -> Result<(), MediaError> {
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + length_size) else {
            return fail(format!("sample {i}: {} trailing bytes are too short for a NAL length", data.len() - pos));
        };
        let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        pos += length_size;
        let Some(nal) = data.get(pos..pos.saturating_add(len)) else {
            return fail(format!("sample {i}: NAL unit of {len} bytes runs past the sample's {} bytes", data.len()));
        };
        pos += len;
        let Some(&head) = nal.first() else { continue };
        let is_aud = if hevc { (head >> 1) & 0x3F == 35 } else { head & 0x1F == 9 };
        if is_aud {
            continue;
        }
        pieces.push(START_CODE);
        pieces.push(nal);
    }
    Ok(())
}

/// Video sample `i` of `track` as one Annex B access unit: the configuration's parameter
/// sets, then the sample's NAL units with start codes; a sync sample decodes alone from it
/// (what a thumbnail decoder is fed).
pub(crate) fn annex_b_sample(track: &TrackIndex, span: &SourceSpan, i: usize) -> Result<Vec<u8>, MediaError> {
    let config = &track.info.codec.config;
    let Some(length_size) = config.nal_length_size() else {
        return fail(format!("codec '{}' has no NAL units", track.info.codec.sample_entry_type));
    };
    let data = sample_bytes(track, span, i)?;
    let mut pieces = Pieces::new();
    push_nal_units(&mut pieces, data, i, usize::from(length_size), matches!(config, CodecConfig::Hevc(_)))?;
    let mut out = annex_b_parameter_sets(config);
    out.reserve(pieces.len);
    for p in pieces.parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::pes::{decode_timestamp, encode_timestamp};
    use super::psi::crc32_mpeg2;
    use super::*;
    use crate::media::codec::{describe, Ac3Config, AvcConfig};
    use crate::source::index::{EditOffset, SampleTable, TrackInfo};
    use std::collections::HashMap;

    /// A real `avc1` sample entry (x264, 320x180, High@1.2) from an ffmpeg-made file.
    const AVC1: &str = "000000b161766331000000000000000100000000000000000000000000000000014000b40048000000480000000000000001154c61766335392e33372e313030206c696278323634000000000000000000000018ffff00000037617663430164000cffe1001a6764000cacd941419f9f011000000300100000030300f142996001000668ebe3cb22c0fdf8f800000000107061737000000001000000010000001462747274000000000003a2980003a298";
    /// A real `mp4a` sample entry (AAC-LC, 48 kHz mono) from an ffmpeg-made file.
    const MP4A: &str = "0000006e6d703461000000000000000100000000000000000002001000000000bb80000000000036657364730000000003808080250001000480808017401500000000011014000110140580808005118856e5000680808001020000001462747274000000000001101400011014";

    /// An `ac-3` sample entry (48 kHz, 5.1).
    const AC3: &str = "0000002f61632d33000000000000000100000000000000000006001000000000bb8000000000000b646163330c11e0";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // ---- a minimal demuxer, independent of the muxer's code paths ----

    #[derive(Debug, Clone)]
    struct Pes {
        pid: u16,
        stream_id: u8,
        packet_length: u16,
        pts: Option<u64>,
        dts: Option<u64>,
        payload: Vec<u8>,
        pcr: Option<u64>,
        random_access: bool,
        discontinuity: bool,
    }

    #[derive(Debug, Default)]
    struct Demuxed {
        pat: Vec<u8>,
        pmt: Vec<u8>,
        pes: Vec<Pes>,
        /// First CC seen per PID.
        first_cc: HashMap<u16, u8>,
        packets: usize,
    }

    /// pid, bytes, PCR, random access, discontinuity of a PES being reassembled.
    type OpenPes = (u16, Vec<u8>, Option<u64>, bool, bool);

    fn crc_ok(section: &[u8]) -> bool {
        crc32_mpeg2(section) == 0
    }

    /// Splits a TS into packets, checks sync bytes, sizes, continuity counters (per PID,
    /// within the buffer), PSI CRCs, and reassembles PES packets.
    fn demux(ts: &[u8]) -> Demuxed {
        assert_eq!(ts.len() % PACKET_SIZE, 0, "TS length {} is not a multiple of 188", ts.len());
        let mut d = Demuxed::default();
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        let mut open: HashMap<u16, (Vec<u8>, Option<u64>, bool, bool)> = HashMap::new();
        let mut finished: Vec<OpenPes> = Vec::new();
        for (n, p) in ts.chunks(PACKET_SIZE).enumerate() {
            d.packets += 1;
            assert_eq!(p[0], 0x47, "packet {n} sync byte");
            assert_eq!(p[1] & 0x80, 0, "transport_error_indicator");
            let pusi = p[1] & 0x40 != 0;
            let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
            assert_eq!(p[3] & 0xC0, 0, "not scrambled");
            let afc = (p[3] >> 4) & 3;
            let cc = p[3] & 0xF;
            assert!(afc == 1 || afc == 3, "packet {n}: every packet carries payload (afc {afc})");
            let mut pos = 4;
            let (mut pcr, mut rai, mut disc) = (None, false, false);
            if afc == 3 {
                let len = p[4] as usize;
                assert!(len <= 183, "adaptation field length {len}");
                if len > 0 {
                    let flags = p[5];
                    disc = flags & 0x80 != 0;
                    rai = flags & 0x40 != 0;
                    let mut q = 6;
                    if flags & 0x10 != 0 {
                        let b = &p[q..q + 6];
                        let base = (u64::from(b[0]) << 25)
                            | (u64::from(b[1]) << 17)
                            | (u64::from(b[2]) << 9)
                            | (u64::from(b[3]) << 1)
                            | u64::from(b[4] >> 7);
                        assert_eq!(b[4] & 0x7E, 0x7E, "PCR reserved bits");
                        assert_eq!(((u16::from(b[4]) & 1) << 8) | u16::from(b[5]), 0, "PCR extension");
                        pcr = Some(base);
                        q += 6;
                    }
                    assert!(p[q..5 + len].iter().all(|&b| b == 0xFF), "stuffing bytes are 0xFF");
                }
                pos = 5 + len;
            }
            match last_cc.get(&pid) {
                Some(&prev) => assert!(cc == (prev + 1) & 0xF, "packet {n} pid {pid:#x}: cc {cc} after {prev}"),
                None => {
                    d.first_cc.insert(pid, cc);
                }
            }
            last_cc.insert(pid, cc);
            let payload = &p[pos..];
            if pid == PAT_PID || pid == PMT_PID {
                assert!(pusi);
                let pointer = payload[0] as usize;
                let sec = &payload[1 + pointer..];
                let len = (usize::from(sec[1] & 0x0F) << 8) | usize::from(sec[2]);
                let section = sec[..3 + len].to_vec();
                assert!(crc_ok(&section), "PSI CRC on pid {pid:#x}");
                assert!(sec[3 + len..].iter().all(|&b| b == 0xFF));
                if pid == PAT_PID {
                    d.pat = section
                } else {
                    d.pmt = section
                }
                continue;
            }
            if pusi {
                if let Some((buf, pcr, rai, disc)) = open.remove(&pid) {
                    finished.push((pid, buf, pcr, rai, disc));
                }
                open.insert(pid, (payload.to_vec(), pcr, rai, disc));
            } else {
                assert!(pcr.is_none() && !rai && !disc, "flags only on a PES's first packet");
                open.get_mut(&pid).expect("payload before the first PUSI").0.extend_from_slice(payload);
            }
        }
        let mut rest: Vec<_> = open.into_iter().map(|(pid, (b, pcr, rai, disc))| (pid, b, pcr, rai, disc)).collect();
        rest.sort_by_key(|r| r.0);
        finished.extend(rest);
        for (pid, buf, pcr, random_access, discontinuity) in finished {
            assert_eq!(&buf[..3], &[0, 0, 1], "PES start code");
            let stream_id = buf[3];
            let packet_length = u16::from_be_bytes([buf[4], buf[5]]);
            assert_eq!(buf[6] & 0xC0, 0x80, "PES '10' marker");
            let flags = buf[7];
            let hlen = buf[8] as usize;
            let mut q = 9;
            let (mut pts, mut dts) = (None, None);
            if flags & 0x80 != 0 {
                let (prefix, t) = decode_timestamp(buf[q..q + 5].try_into().unwrap()).expect("PTS markers");
                assert_eq!(prefix, if flags & 0x40 != 0 { 3 } else { 2 });
                pts = Some(t);
                q += 5;
            }
            if flags & 0x40 != 0 {
                let (prefix, t) = decode_timestamp(buf[q..q + 5].try_into().unwrap()).expect("DTS markers");
                assert_eq!(prefix, 1);
                dts = Some(t);
            }
            let payload = buf[9 + hlen..].to_vec();
            if packet_length != 0 {
                assert_eq!(packet_length as usize, buf.len() - 6, "PES_packet_length");
            }
            d.pes.push(Pes { pid, stream_id, packet_length, pts, dts, payload, pcr, random_access, discontinuity });
        }
        d
    }

    /// (stream_type, pid, descriptors) of a PMT section.
    fn pmt_streams(pmt: &[u8]) -> (u16, Vec<(u8, u16, Vec<u8>)>) {
        assert_eq!(pmt[0], 2);
        let end = pmt.len() - 4;
        let pcr_pid = u16::from_be_bytes([pmt[8], pmt[9]]) & 0x1FFF;
        let info_len = (u16::from_be_bytes([pmt[10], pmt[11]]) & 0xFFF) as usize;
        let mut q = 12 + info_len;
        let mut out = Vec::new();
        while q < end {
            let st = pmt[q];
            let pid = u16::from_be_bytes([pmt[q + 1], pmt[q + 2]]) & 0x1FFF;
            let len = (u16::from_be_bytes([pmt[q + 3], pmt[q + 4]]) & 0xFFF) as usize;
            out.push((st, pid, pmt[q + 5..q + 5 + len].to_vec()));
            q += 5 + len;
        }
        (pcr_pid, out)
    }

    // ---- synthetic tracks ----

    /// A track of `samples` with the codec facts of `entry` (none when they do not parse).
    fn track(
        kind: TrackKind,
        entry: Vec<u8>,
        timescale: u32,
        samples: Vec<Vec<u8>>,
        edit: EditOffset,
    ) -> (TrackIndex, SourceSpan) {
        let codec = describe(&entry).unwrap_or_default();
        let n = samples.len();
        let base = 1000u64;
        let mut offsets = Vec::new();
        let mut data = Vec::new();
        for s in &samples {
            offsets.push(base + data.len() as u64);
            data.extend_from_slice(s);
        }
        let dur = if kind == TrackKind::Video { 512 } else { 1024 };
        let t = TrackIndex {
            sidecar: None,
            info: TrackInfo {
                track_id: 1,
                kind,
                timescale,
                language: "eng".into(),
                sample_entry: Bytes::from(entry),
                codec,
                edit,
            },
            samples: SampleTable {
                dts: (0..n as u64).map(|i| i * dur).collect(),
                end_dts: n as u64 * dur,
                cts_offsets: vec![],
                sizes: samples.iter().map(|s| s.len() as u32).collect(),
                offsets,
                sync_samples: if kind == TrackKind::Video { Some(vec![0]) } else { None },
                fragment_starts: vec![],
            },
        };
        (t, SourceSpan::new(base, Bytes::from(data)))
    }

    fn seg(first: u32, count: u32) -> Segment {
        Segment { first_sample: first, sample_count: count, time: 0, duration: 0, bytes: 0, discontinuity: false }
    }

    /// A length-prefixed (4-byte) sample of the given NAL units.
    fn avc_sample(nals: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    fn video_track(samples: Vec<Vec<u8>>) -> (TrackIndex, SourceSpan) {
        track(TrackKind::Video, hex(AVC1), 12_288, samples, EditOffset { empty_duration: 0, media_time: 1024 })
    }

    #[test]
    fn timestamps_round_trip_and_wrap() {
        for t in [0u64, 1, 90_000, 0x7FFF, 0x8000, (1 << 32) + 12345, (1 << 33) - 1] {
            for prefix in [1u8, 2, 3] {
                let e = encode_timestamp(prefix, t);
                assert_eq!(decode_timestamp(&e), Some((prefix, t)));
            }
        }
        // Values are reduced to 33 bits.
        assert_eq!(decode_timestamp(&encode_timestamp(2, (1 << 33) + 7)), Some((2, 7)));
        assert_eq!(wrap33((1i128 << 33) + 5), 5);
        assert_eq!(wrap33(-1), (1 << 33) - 1);
        assert_eq!(wrap33(3 * (1i128 << 33) + 9), 9);
        // Conversion: track ticks → 90 kHz plus the fixed offset, floor for negatives.
        assert_eq!(to_90k(0, 48_000), TIMESTAMP_OFFSET as i128);
        assert_eq!(to_90k(48_000, 48_000), TIMESTAMP_OFFSET as i128 + 90_000);
        assert_eq!(to_90k(-1024, 12_288), TIMESTAMP_OFFSET as i128 - 7_500);
        assert_eq!(to_90k(-1, 48_000), TIMESTAMP_OFFSET as i128 - 2);
        // A marker bit missing is detected.
        let mut e = encode_timestamp(2, 1234);
        e[2] &= 0xFE;
        assert_eq!(decode_timestamp(&e), None);
    }

    #[test]
    fn timestamps_wrap_at_33_bits_in_segments() {
        // A track whose decode times pass 2^33 ticks of 90 kHz: PTS wraps, no panic.
        let nal = vec![0x65, 0x88, 0x84];
        let (mut t, span) = video_track(vec![avc_sample(std::slice::from_ref(&nal)), avc_sample(&[vec![0x41, 1]])]);
        t.info.timescale = 90_000;
        t.info.edit = EditOffset::default();
        let near = (1u64 << 33) - TIMESTAMP_OFFSET as u64 - 1500;
        t.samples.dts = vec![near, near + 3000];
        t.samples.end_dts = near + 6000;
        let ts = ts_segment(&[TsInput { track: &t, segment: &seg(0, 2), span: &span }], 0).unwrap();
        let d = demux(&ts);
        let pts: Vec<u64> = d.pes.iter().map(|p| p.pts.unwrap()).collect();
        assert_eq!(pts, vec![(1 << 33) - 1500, 1500]);
        assert_eq!(d.pes[0].pcr, Some((1 << 33) - 1500 - PCR_LEAD as u64));
    }

    #[test]
    fn crc_matches_a_known_pat() {
        // The PAT ffmpeg writes for one program with PMT PID 0x1000.
        let pat = hex("00b00d0001c100000001f000");
        assert_eq!(crc32_mpeg2(&pat), 0x2AB104B2);
        // ffmpeg's PAT is the one we write.
        let mut out = BytesMut::new();
        write_psi(&mut out, PAT_PID, 0, 0x00, 1, &pat_body(PMT_PID)).unwrap();
        assert_eq!(&out[5..5 + 16], &hex("00b00d0001c100000001f0002ab104b2")[..]);
    }

    /// SPS + PPS of [`AVC1`] with start codes.
    fn avc1_parameter_sets() -> Vec<u8> {
        let codec = describe(&hex(AVC1)).unwrap();
        assert_eq!(codec.config.nal_length_size(), Some(4));
        let sets = annex_b_parameter_sets(&codec.config);
        assert_eq!(sets.windows(4).filter(|w| w == &START_CODE).count(), 2, "one SPS, one PPS");
        sets
    }

    #[test]
    fn video_segment_structure() {
        let sps_pps = avc1_parameter_sets();
        let idr = avc_sample(&[vec![0x06, 5, 1, 0x80], vec![0x65; 1000]]);
        let p = avc_sample(&[vec![0x09, 0xF0], vec![0x41; 50]]); // carries its own AUD
        let (mut t, span) = video_track(vec![idr, p.clone(), p.clone(), p]);
        t.samples.cts_offsets = vec![1024, 1536, 0, 512];
        let ts = ts_segment(&[TsInput { track: &t, segment: &seg(0, 4), span: &span }], 37).unwrap();
        let d = demux(&ts);
        assert_eq!(d.packets * PACKET_SIZE, ts.len());
        assert_eq!(&ts[..4], &[0x47, 0x40, 0x00, 0x10 | 5], "PAT first, cc = 37 mod 16");
        assert_eq!(&ts[188..192], &[0x47, 0x50, 0x00, 0x10 | 5], "PMT second");
        assert_eq!(&d.pat[8..12], &[0, 1, 0xF0, 0x00]);
        let (pcr_pid, streams) = pmt_streams(&d.pmt);
        assert_eq!(pcr_pid, VIDEO_PID);
        assert_eq!(streams, vec![(0x1B, VIDEO_PID, vec![])]);
        assert_eq!(d.first_cc[&VIDEO_PID], 5);

        assert_eq!(d.pes.len(), 4);
        let mut expect = Vec::new();
        expect.extend_from_slice(AVC_AUD);
        expect.extend_from_slice(&sps_pps);
        expect.extend_from_slice(&[0, 0, 0, 1, 0x06, 5, 1, 0x80, 0, 0, 0, 1]);
        expect.extend_from_slice(&[0x65; 1000]);
        assert_eq!(d.pes[0].payload, expect);
        let mut expect_p = AVC_AUD.to_vec();
        expect_p.extend_from_slice(&[0, 0, 0, 1]);
        expect_p.extend_from_slice(&[0x41; 50]);
        assert_eq!(d.pes[1].payload, expect_p, "no parameter sets, the sample's AUD replaced");
        for (k, pes) in d.pes.iter().enumerate() {
            assert_eq!(pes.stream_id, 0xE0);
            assert_eq!(pes.packet_length, 0);
            assert_eq!(pes.pid, VIDEO_PID);
            let dts = TIMESTAMP_OFFSET as u64 + (k as u64 * 512) * 90_000 / 12_288 - 7_500;
            let cts = [1024u64, 1536, 0, 512][k] * 90_000 / 12_288;
            assert_eq!(pes.pts, Some(dts + cts), "pes {k}");
            assert_eq!(pes.dts, if cts == 0 { None } else { Some(dts) }, "DTS only when it differs");
            assert_eq!(pes.pcr, Some(dts - PCR_LEAD as u64));
            assert_eq!(pes.random_access, k == 0);
            assert_eq!(pes.discontinuity, k == 0);
        }
        // Audio-less first PES: its first packet carries PCR + random access.
        assert_eq!(ts[2 * 188 + 3] & 0x30, 0x30);
    }

    #[test]
    fn final_packets_are_stuffed_for_every_length() {
        // PES sizes around packet boundaries, including 1- and 2-byte stuffing.
        for len in 150..420 {
            let (t, span) = video_track(vec![avc_sample(&[vec![0x41; len]])]);
            let mut t = t;
            t.samples.sync_samples = Some(vec![]);
            let ts = ts_segment(&[TsInput { track: &t, segment: &seg(0, 1), span: &span }], 0).unwrap();
            let d = demux(&ts);
            assert_eq!(d.pes.len(), 1);
            assert_eq!(d.pes[0].payload.len(), AVC_AUD.len() + 4 + len, "len {len}");
        }
    }

    fn aac_track(n: usize, channels_asc: Option<[u8; 2]>) -> (TrackIndex, SourceSpan) {
        let mut entry = hex(MP4A);
        if let Some(asc) = channels_asc {
            let at = entry.windows(2).position(|w| w == [0x11, 0x88]).unwrap();
            entry[at..at + 2].copy_from_slice(&asc);
        }
        let samples: Vec<Vec<u8>> = (0..n).map(|i| vec![0x21 + i as u8; 100 + i * 3]).collect();
        track(TrackKind::Audio, entry, 48_000, samples, EditOffset { empty_duration: 0, media_time: 1024 })
    }

    #[test]
    fn aac_frames_get_adts_and_are_grouped() {
        let (t, span) = aac_track(10, None);
        let ts = ts_segment(&[TsInput { track: &t, segment: &seg(0, 10), span: &span }], 2).unwrap();
        let d = demux(&ts);
        let (pcr_pid, streams) = pmt_streams(&d.pmt);
        assert_eq!(pcr_pid, AUDIO_PID);
        assert_eq!(streams, vec![(0x0F, AUDIO_PID, vec![0x0A, 4, b'e', b'n', b'g', 0])]);
        // 1024-sample frames at 48 kHz = 1920 ticks: four frames (7680 ≤ 8100) per PES.
        let counts: Vec<usize> = d
            .pes
            .iter()
            .map(|p| p.payload.windows(2).filter(|w| w[0] == 0xFF && w[1] & 0xF6 == 0xF0).count())
            .collect();
        assert_eq!(counts, vec![4, 4, 2]);
        let mut frames = Vec::new();
        for (k, pes) in d.pes.iter().enumerate() {
            assert_eq!(pes.stream_id, 0xC0);
            assert_ne!(pes.packet_length, 0);
            assert!(pes.dts.is_none());
            let pts = TIMESTAMP_OFFSET as u64 - 1920 + 4 * 1920 * k as u64;
            assert_eq!(pes.pts, Some(pts));
            assert_eq!(pes.pcr, Some(pts - PCR_LEAD as u64), "PCR on the audio PID when there is no video");
            assert!(pes.random_access);
            let mut q = 0;
            while q < pes.payload.len() {
                let h = &pes.payload[q..q + 7];
                assert_eq!((h[0], h[1] & 0xF6), (0xFF, 0xF0));
                let mono = AdtsConfig { profile: 1, sampling_index: 3, channel_config: 1 };
                let len = ((usize::from(h[3]) & 3) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5);
                assert_eq!(h, &mono.header(len - 7).unwrap()[..]);
                frames.push(pes.payload[q + 7..q + len].to_vec());
                q += len;
            }
        }
        let expect: Vec<Vec<u8>> = (0..10).map(|i| vec![0x21 + i as u8; 100 + i * 3]).collect();
        assert_eq!(frames, expect);

        // 5.1 AAC (channel configuration 6).
        let (t, span) = aac_track(3, Some([0x11, 0xB0]));
        let d = demux(&ts_segment(&[TsInput { track: &t, segment: &seg(0, 3), span: &span }], 0).unwrap());
        let h = &d.pes[0].payload[..7];
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 6);
    }

    #[test]
    fn ac3_is_copied_with_registration_descriptor() {
        let entry = hex(AC3);
        let frames: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                let mut f = vec![0x0B, 0x77];
                f.extend(vec![i as u8; 1278]);
                f
            })
            .collect();
        let (mut t, span) = track(TrackKind::Audio, entry.clone(), 48_000, frames.clone(), EditOffset::default());
        t.samples.dts = (0..5).map(|i| i * 1536).collect();
        t.samples.end_dts = 5 * 1536;
        let d = demux(&ts_segment(&[TsInput { track: &t, segment: &seg(0, 5), span: &span }], 0).unwrap());
        let (_, streams) = pmt_streams(&d.pmt);
        assert_eq!(
            streams,
            vec![(0x81, AUDIO_PID, vec![0x05, 4, b'A', b'C', b'-', b'3', 0x0A, 4, b'e', b'n', b'g', 0])]
        );
        assert!(d.pes.iter().all(|p| p.stream_id == 0xBD));
        let all: Vec<u8> = d.pes.iter().flat_map(|p| p.payload.clone()).collect();
        assert_eq!(all, frames.concat());
        // 1536 samples = 2880 ticks: two frames per PES.
        assert_eq!(d.pes.len(), 3);

        let mut t2 = t.clone();
        t2.info.codec.config = CodecConfig::Eac3(Ac3Config::default());
        let d = demux(&ts_segment(&[TsInput { track: &t2, segment: &seg(0, 5), span: &span }], 0).unwrap());
        assert_eq!(pmt_streams(&d.pmt).1[0].0, 0x87);
        assert_eq!(&pmt_streams(&d.pmt).1[0].2[..6], &[0x05, 4, b'E', b'A', b'C', b'3']);

        // A frame without the syncword is an error.
        let bad = vec![vec![0u8; 100]];
        let (t3, span3) = track(TrackKind::Audio, entry, 48_000, bad, EditOffset::default());
        assert!(ts_segment(&[TsInput { track: &t3, segment: &seg(0, 1), span: &span3 }], 0).is_err());
    }

    #[test]
    fn muxed_segment_interleaves_by_decode_time() {
        let frames: Vec<Vec<u8>> =
            (0..24).map(|i| avc_sample(&[vec![if i == 0 { 0x65 } else { 0x41 }; 200 + i]])).collect();
        let (v, vspan) = video_track(frames);
        let (a, aspan) = aac_track(22, None);
        let ts = ts_segment(
            &[
                TsInput { track: &a, segment: &seg(0, 22), span: &aspan },
                TsInput { track: &v, segment: &seg(0, 24), span: &vspan },
            ],
            1,
        )
        .unwrap();
        let d = demux(&ts);
        let (pcr_pid, streams) = pmt_streams(&d.pmt);
        assert_eq!(pcr_pid, VIDEO_PID);
        assert_eq!(streams.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), vec![(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]);
        // PES order in the file follows decode time: read the DTS (or PTS) of every PES
        // header in file order.
        let mut order = Vec::new();
        for p in ts.chunks(188).skip(2) {
            if p[1] & 0x40 != 0 {
                let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
                let start = if p[3] & 0x20 != 0 { 5 + p[4] as usize } else { 4 };
                let h = &p[start..];
                let at = if h[7] & 0x40 != 0 { 14 } else { 9 };
                let (_, t) = decode_timestamp(h[at..at + 5].try_into().unwrap()).unwrap();
                order.push((pid, t));
            }
        }
        assert_eq!(order.len(), d.pes.len());
        assert!(order.iter().any(|o| o.0 == AUDIO_PID) && order.iter().any(|o| o.0 == VIDEO_PID));
        assert!(order.windows(2).all(|w| w[0].1 <= w[1].1), "{order:?}");
        assert_eq!(order[0], (VIDEO_PID, TIMESTAMP_OFFSET as u64 - 7_500), "video DTS -2 frames first");
        assert!(d.pes.iter().filter(|p| p.pid == AUDIO_PID).all(|p| p.pcr.is_none()));
        assert!(d.pes.iter().filter(|p| p.pid == VIDEO_PID).all(|p| p.pcr.is_some()));
    }

    #[test]
    fn odd_inputs_give_errors_not_panics() {
        let good = avc_sample(&[vec![0x65; 10]]);
        let (t, span) = video_track(vec![good.clone(), good.clone()]);

        // Empty segment: PAT + PMT only.
        let ts = ts_segment(&[TsInput { track: &t, segment: &seg(1, 0), span: &span }], 0).unwrap();
        assert_eq!(ts.len(), 2 * PACKET_SIZE);
        let d = demux(&ts);
        assert!(d.pes.is_empty());
        assert_eq!(pmt_streams(&d.pmt).1.len(), 1);
        // No inputs at all.
        assert!(ts_segment(&[], 0).is_err());
        // Samples past the track or the span.
        assert!(ts_segment(&[TsInput { track: &t, segment: &seg(1, 2), span: &span }], 0).is_err());
        assert!(ts_segment(&[TsInput { track: &t, segment: &seg(u32::MAX, 2), span: &span }], 0).is_err());
        let short = SourceSpan::new(span.file_offset(), span.data().slice(..span.data().len() - 1));
        assert!(ts_segment(&[TsInput { track: &t, segment: &seg(0, 2), span: &short }], 0).is_err());

        // A NAL length running past the sample.
        let mut bad = good.clone();
        bad[3] = 11;
        let (t2, span2) = video_track(vec![bad]);
        let e = ts_segment(&[TsInput { track: &t2, segment: &seg(0, 1), span: &span2 }], 0).unwrap_err();
        assert!(e.0.contains("runs past"), "{e}");
        // Trailing bytes shorter than a length field.
        let mut bad = good.clone();
        bad.extend_from_slice(&[0, 0]);
        let (t2, span2) = video_track(vec![bad]);
        assert!(ts_segment(&[TsInput { track: &t2, segment: &seg(0, 1), span: &span2 }], 0).is_err());

        // A huge NAL unit (2 MB) is carried whole.
        let big = avc_sample(&[vec![0x65; 2 << 20]]);
        let (t3, span3) = video_track(vec![big]);
        let ts = ts_segment(&[TsInput { track: &t3, segment: &seg(0, 1), span: &span3 }], 0).unwrap();
        let d = demux(&ts);
        assert_eq!(d.pes[0].payload.len(), AVC_AUD.len() + avc1_parameter_sets().len() + 4 + (2 << 20));
        assert!(d.pes[0].payload.ends_with(&[0x65; 1000]));
        assert!(ts.len() < (2 << 20) * 188 / 184 + 4 * 188 + 1000);

        // An avcC without parameter sets (allowed for avc3: they are in band).
        let mut t4 = t.clone();
        t4.info.codec.config = CodecConfig::Avc(AvcConfig { nal_length_size: 4, ..AvcConfig::default() });
        let e = ts_segment(&[TsInput { track: &t4, segment: &seg(0, 1), span: &span }], 0).unwrap_err();
        assert!(e.0.contains("avcC"), "{e}");
        // A truncated sample entry, an empty one, a non-TS codec, a text track.
        let (t5, span5) =
            track(TrackKind::Video, hex(AVC1)[..60].to_vec(), 12_288, vec![good.clone()], EditOffset::default());
        assert!(ts_segment(&[TsInput { track: &t5, segment: &seg(0, 1), span: &span5 }], 0).is_err());
        let (t6, span6) = track(TrackKind::Video, vec![], 12_288, vec![good.clone()], EditOffset::default());
        assert!(ts_segment(&[TsInput { track: &t6, segment: &seg(0, 1), span: &span6 }], 0).is_err());
        let mut vp09 = hex(AVC1);
        vp09[4..8].copy_from_slice(b"vp09");
        let (t7, span7) = track(TrackKind::Video, vp09, 12_288, vec![good.clone()], EditOffset::default());
        assert!(ts_segment(&[TsInput { track: &t7, segment: &seg(0, 1), span: &span7 }], 0).is_err());
        let (t8, span8) = track(TrackKind::Text, hex(AVC1), 12_288, vec![good.clone()], EditOffset::default());
        assert!(ts_segment(&[TsInput { track: &t8, segment: &seg(0, 1), span: &span8 }], 0).is_err());
        // Two video inputs.
        assert!(ts_segment(
            &[
                TsInput { track: &t, segment: &seg(0, 1), span: &span },
                TsInput { track: &t, segment: &seg(0, 1), span: &span }
            ],
            0
        )
        .is_err());
        // mp4a with a truncated esds.
        let mut entry = hex(MP4A);
        let at = entry.windows(4).position(|w| w == b"esds").unwrap();
        entry.truncate(at + 20);
        let n = entry.len() as u32;
        entry[..4].copy_from_slice(&n.to_be_bytes());
        let (t9, span9) = track(TrackKind::Audio, entry, 48_000, vec![vec![1; 10]], EditOffset::default());
        assert!(ts_segment(&[TsInput { track: &t9, segment: &seg(0, 1), span: &span9 }], 0).is_err());
        // An AAC frame longer than ADTS allows.
        let (mut t10, _) = aac_track(1, None);
        let data = vec![0u8; 9000];
        t10.samples.sizes = vec![9000];
        let span10 = SourceSpan::new(1000, Bytes::from(data));
        assert!(ts_segment(&[TsInput { track: &t10, segment: &seg(0, 1), span: &span10 }], 0).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // Cheap fuzz: random samples and sample entries through every codec path.
        let mut x = 0x2545F4914F6CDD1Du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let n = 1 + (rnd() % 4) as usize;
            let samples: Vec<Vec<u8>> = (0..n).map(|_| (0..(rnd() % 64)).map(|_| rnd() as u8).collect()).collect();
            let (kind, mut entry) = match round % 3 {
                0 => (TrackKind::Video, hex(AVC1)),
                1 => (TrackKind::Audio, hex(MP4A)),
                _ => (TrackKind::Audio, hex(AC3)),
            };
            if round % 4 == 0 {
                let k = (rnd() as usize) % entry.len();
                entry[k] = rnd() as u8;
            }
            let (t, span) = track(
                kind,
                entry,
                1 + (rnd() % 100_000) as u32,
                samples,
                EditOffset { empty_duration: rnd() % 1000, media_time: rnd() % 5000 },
            );
            if let Ok(ts) = ts_segment(&[TsInput { track: &t, segment: &seg(0, n as u32), span: &span }], rnd() as u32)
            {
                assert_eq!(ts.len() % PACKET_SIZE, 0);
            }
        }
    }

    // ---- ffmpeg round trips over the fixtures ----

    use crate::plan::reads::source_range;
    use crate::source::asset::{self, AssetSource};
    use crate::source::storage::Storage;
    use crate::source::timeline::SegmentPolicy;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Per-frame MD5s (framemd5's last column) of `map` in `input`.
    fn frame_hashes(input: &Path, map: &str, source: bool) -> Vec<String> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-hide_banner", "-v", "error"]);
        if source {
            cmd.args(["-ignore_editlist", "1"]);
        }
        cmd.arg("-i").arg(input).args(["-map", map, "-fps_mode", "passthrough", "-f", "framemd5", "-"]);
        let text = run(&mut cmd);
        let hashes: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
            .collect();
        assert!(!hashes.is_empty(), "no frames decoded from {}", input.display());
        hashes
    }

    /// The first stream line of `ffprobe -show_entries stream=…` (it also lists programs).
    fn probe_stream(input: &Path, entries: &str) -> String {
        let text = run(Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "0", "-show_entries", entries, "-of", "csv=p=0"])
            .arg(input));
        text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    }

    /// (dts, duration) of every packet of `select` (ffprobe, time base 1/90000).
    fn packet_times(input: &Path, select: &str) -> Vec<(i64, i64)> {
        let text = run(Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", select, "-show_entries", "packet=dts,duration", "-of", "csv=p=0"])
            .arg(input));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let c: Vec<&str> = l.split(',').collect();
                (
                    c[0].trim().parse().unwrap_or_else(|_| panic!("packet without dts: {l}")),
                    c.get(1).and_then(|d| d.trim().parse().ok()).unwrap_or(0),
                )
            })
            .collect()
    }

    /// Indexes `files` (one asset: timelines planned together), builds every segment of the
    /// tracks together (muxed) or of `only` alone, concatenates them into `dir/out.ts`.
    async fn build_ts(files: &[&str], only: Option<TrackKind>, dir: &Path) -> (PathBuf, usize) {
        let storage = Storage::local("fixtures", fixtures()).unwrap();
        let source = if files.len() == 1 {
            AssetSource::File(files[0].to_string())
        } else {
            AssetSource::Folder { path: String::new(), media_files: files.iter().map(|f| f.to_string()).collect() }
        };
        let asset = asset::load(&storage, &source, SegmentPolicy::default()).await.unwrap();
        let tracks: Vec<_> = asset.tracks.iter().filter(|t| only.is_none_or(|k| t.kind == k)).collect();
        assert!(!tracks.is_empty());
        let count = tracks[0].timeline.segments.len();
        for t in &tracks {
            assert_eq!(t.timeline.segments.len(), count, "tracks cut at the same boundaries");
        }
        let mut out = Vec::new();
        for k in 0..count {
            let mut spans = Vec::new();
            for t in &tracks {
                let range = source_range(t.index(), &t.timeline.segments[k]);
                let data = storage.read_range(&t.file, range.clone()).await.unwrap();
                spans.push(SourceSpan::new(range.start, data));
            }
            let inputs: Vec<TsInput> = tracks
                .iter()
                .zip(&spans)
                .map(|(t, span)| TsInput { track: t.index(), segment: &t.timeline.segments[k], span })
                .collect();
            let seg = ts_segment(&inputs, k as u32).unwrap();
            // Each segment on its own is a well-formed TS starting with PAT + PMT.
            let d = demux(&seg);
            assert!(!d.pat.is_empty() && !d.pmt.is_empty());
            assert_eq!(&seg[1..3], &[0x40, 0x00]);
            out.extend_from_slice(&seg);
        }
        let path = dir.join("out.ts");
        if let Some(keep) = std::env::var_os("TS_KEEP") {
            std::fs::write(Path::new(&keep).join(files[0].replace('/', "_") + ".ts"), &out).unwrap();
        }
        std::fs::write(&path, &out).unwrap();
        (path, count)
    }

    /// Decoded frames of the TS equal the source's, frame for frame; packet DTS increase
    /// across segment boundaries with no gap above one frame; no continuity errors.
    fn check_round_trip(ts: &Path, source: &Path, ts_map: &str, source_map: &str, segments: usize) {
        let ours = frame_hashes(ts, ts_map, false);
        let theirs = frame_hashes(source, source_map, true);
        assert_eq!(ours.len(), theirs.len(), "frame count of {ts_map} vs source {}", source.display());
        let first_diff = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "first differing frame of {ts_map}");

        let select = ts_map.trim_start_matches("0:");
        let times = packet_times(ts, select);
        assert_eq!(times.len(), ours.len(), "one packet per frame");
        assert!(times.len() > segments);
        let typical = times.iter().map(|t| t.1).filter(|&d| d > 0).max().unwrap_or(0);
        for w in times.windows(2) {
            assert!(w[1].0 > w[0].0, "DTS not increasing: {:?} then {:?}", w[0], w[1]);
            assert!(w[1].0 - w[0].0 <= typical + 1, "gap between {:?} and {:?} (frame {typical})", w[0], w[1]);
        }
        // Timestamps start at the documented offset (minus at most the edit shift).
        assert!((times[0].0 - TIMESTAMP_OFFSET).abs() < 90_000, "first dts {}", times[0].0);

        // ffmpeg reads the concatenation as one stream: the counter restarts are announced.
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "debug", "-i"])
            .arg(ts)
            .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success());
        assert!(
            !log.contains("Continuity check failed"),
            "continuity errors:\n{}",
            log.lines().filter(|l| l.contains("Continuity")).take(5).collect::<Vec<_>>().join("\n")
        );
    }

    #[tokio::test]
    async fn ffmpeg_h264_with_b_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (ts, n) = build_ts(&["ladder/video_150k.mp4"], None, dir.path()).await;
        assert!(n > 1);
        check_round_trip(&ts, &fixtures().join("ladder/video_150k.mp4"), "0:v:0", "0:v:0", n);
        assert_eq!(probe_stream(&ts, "stream=codec_name,has_b_frames"), "h264,2");
    }

    #[tokio::test]
    async fn ffmpeg_aac() {
        let dir = tempfile::tempdir().unwrap();
        let (ts, n) = build_ts(&["ladder/audio_eng.mp4"], None, dir.path()).await;
        check_round_trip(&ts, &fixtures().join("ladder/audio_eng.mp4"), "0:a:0", "0:a:0", n);
    }

    #[tokio::test]
    async fn ffmpeg_hevc() {
        let dir = tempfile::tempdir().unwrap();
        let (ts, n) = build_ts(&["hevc/video_hevc.mp4"], None, dir.path()).await;
        check_round_trip(&ts, &fixtures().join("hevc/video_hevc.mp4"), "0:v:0", "0:v:0", n);
        assert_eq!(probe_stream(&ts, "stream=codec_name"), "hevc");
    }

    #[tokio::test]
    async fn ffmpeg_ac3_5_1_and_eac3() {
        for (file, codec, channels) in [("dolby/audio_ac3.mp4", "ac3", "6"), ("dolby/audio_eac3.mp4", "eac3", "2")] {
            let dir = tempfile::tempdir().unwrap();
            let (ts, n) = build_ts(&[file], None, dir.path()).await;
            check_round_trip(&ts, &fixtures().join(file), "0:a:0", "0:a:0", n);
            assert_eq!(probe_stream(&ts, "stream=codec_name,channels"), format!("{codec},{channels}"), "{file}");
        }
    }

    #[tokio::test]
    async fn ffmpeg_muxed_video_and_audio() {
        let dir = tempfile::tempdir().unwrap();
        let (ts, n) = build_ts(&["muxed/muxed.mp4"], None, dir.path()).await;
        let source = fixtures().join("muxed/muxed.mp4");
        check_round_trip(&ts, &source, "0:v:0", "0:v:0", n);
        check_round_trip(&ts, &source, "0:a:0", "0:a:0", n);
    }

    #[tokio::test]
    async fn ffmpeg_video_with_separate_audio_file() {
        // One "v3"-style segment from two files: HEVC video + AAC audio planned together.
        let dir = tempfile::tempdir().unwrap();
        let (ts, n) = build_ts(&["hevc/video_hevc.mp4", "hevc/audio_eng.mp4"], None, dir.path()).await;
        check_round_trip(&ts, &fixtures().join("hevc/video_hevc.mp4"), "0:v:0", "0:v:0", n);
        check_round_trip(&ts, &fixtures().join("hevc/audio_eng.mp4"), "0:a:0", "0:a:0", n);
    }

    #[tokio::test]
    async fn ffmpeg_edit_list_fixture() {
        // Empty edit on video, negative composition offsets (ctts v1).
        let dir = tempfile::tempdir().unwrap();
        let (ts, n) = build_ts(&["edit/edit.mp4"], None, dir.path()).await;
        let source = fixtures().join("edit/edit.mp4");
        check_round_trip(&ts, &source, "0:v:0", "0:v:0", n);
        check_round_trip(&ts, &source, "0:a:0", "0:a:0", n);
    }
}
