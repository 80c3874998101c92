//! FLV tag bodies, as RTMP carries them, on the media model: sequence headers become sample
//! entries (`avc1` + `avcC`, `hvc1` + `hvcC` from enhanced RTMP, `mp4a` + `esds`), coded
//! frames become samples, and [`StreamMuxer`] cuts one RTMP stream into fragments whose video
//! and audio stay aligned.
//!
//! `scuffle-flv` reads the tag headers (legacy and enhanced); the decoder configuration
//! records and frames after them are taken as the bytes that arrived, so the `avcC`/`hvcC` in
//! our init segment is exactly the encoder's.
//!
//! Timing: video uses 90 kHz (RTMP ms × 90, composition offsets from the FLV composition time);
//! audio uses its output sample rate with decode times snapped to the AAC frame grid, so frame
//! durations stay exact although RTMP only says milliseconds. RTMP's 32-bit ms timestamps are
//! extended to 64 bits across their wrap (49.7 days).

use std::collections::VecDeque;
use std::io;

use bytes::{Bytes, BytesMut};
use scuffle_flv::audio::header::enhanced::{AudioFourCc, AudioPacketType, ExAudioTagHeaderContent};
use scuffle_flv::audio::header::legacy::SoundFormat;
use scuffle_flv::audio::header::AudioTagHeader;
use scuffle_flv::video::header::enhanced::{ExVideoTagHeaderContent, VideoFourCc, VideoPacketType};
use scuffle_flv::video::header::legacy::{LegacyVideoTagHeader, LegacyVideoTagHeaderAvcPacket};
use scuffle_flv::video::header::{VideoFrameType, VideoTagHeader, VideoTagHeaderData};

use super::{IngestError, IngestFragment, IngestTrack};
use crate::media::codec::aac::AudioSpecificConfig;
use crate::media::codec::slice::sps_picture_size;
use crate::media::codec::{describe, AvcConfig, HevcConfig};
use crate::media::mp4::{entry, FourCC};
use crate::media::TrackKind;
use crate::source::index::{EditOffset, SampleTable, TrackInfo};

/// Video timescale: RTMP milliseconds × 90.
pub const VIDEO_TIMESCALE: u32 = 90_000;
const VIDEO_TICKS_PER_MS: u64 = (VIDEO_TIMESCALE / 1000) as u64;
/// Fragment length of a stream without video.
const AUDIO_ONLY_FRAGMENT_MS: u64 = 2_000;
/// Video cuts remembered for an audio track that lags behind (more means audio stalled).
const MAX_PENDING_CUTS: usize = 16;

/// A video tag body.
#[derive(Debug)]
pub enum VideoTag {
    /// A sequence header: the track's sample entry.
    Config(TrackInfo),
    /// One access unit: length-prefixed NAL units as received.
    Frame { keyframe: bool, composition_ms: i32, data: Bytes },
    /// Metadata, commands, end of sequence: nothing for the track.
    Other,
}

/// An audio tag body.
#[derive(Debug)]
pub enum AudioTag {
    /// An AAC sequence header: the track's sample entry.
    Config(TrackInfo),
    /// One raw AAC frame.
    Frame(Bytes),
    Other,
}

fn malformed(what: &str, e: impl std::fmt::Display) -> IngestError {
    IngestError::bad("media", format!("{what}: {e}"))
}

/// Parses an RTMP video message (an FLV video tag body).
pub fn video_tag(body: Bytes) -> Result<VideoTag, IngestError> {
    let mut cursor = io::Cursor::new(body.clone());
    let header = VideoTagHeader::demux(&mut cursor).map_err(|e| malformed("FLV video tag", e))?;
    let rest = body.slice((cursor.position() as usize).min(body.len())..);
    let keyframe = header.frame_type == VideoFrameType::KeyFrame;
    match header.data {
        VideoTagHeaderData::Legacy(LegacyVideoTagHeader::AvcPacket(packet)) => match packet {
            LegacyVideoTagHeaderAvcPacket::SequenceHeader => avc_config(&rest).map(VideoTag::Config),
            LegacyVideoTagHeaderAvcPacket::Nalu { composition_time_offset } => {
                Ok(VideoTag::Frame { keyframe, composition_ms: si24(composition_time_offset), data: rest })
            }
            _ => Ok(VideoTag::Other),
        },
        VideoTagHeaderData::Legacy(LegacyVideoTagHeader::VideoCommand(_)) => Ok(VideoTag::Other),
        VideoTagHeaderData::Legacy(LegacyVideoTagHeader::Other { video_codec_id }) => {
            Err(IngestError::Unsupported(format!("FLV video codec id {}", video_codec_id.0)))
        }
        VideoTagHeaderData::Enhanced(ex) => {
            let fourcc = match ex.content {
                ExVideoTagHeaderContent::NoMultiTrack(fourcc) => fourcc,
                ExVideoTagHeaderContent::VideoCommand(_) => return Ok(VideoTag::Other),
                other => return Err(IngestError::Unsupported(format!("enhanced RTMP video {other:?}"))),
            };
            let hevc = match fourcc {
                VideoFourCc::Avc => false,
                VideoFourCc::Hevc => true,
                other => return Err(IngestError::Unsupported(format!("enhanced RTMP video codec {:?}", other.0))),
            };
            match ex.video_packet_type {
                VideoPacketType::SequenceStart if hevc => hevc_config(&rest).map(VideoTag::Config),
                VideoPacketType::SequenceStart => avc_config(&rest).map(VideoTag::Config),
                VideoPacketType::CodedFrames => {
                    let Some(cts) = rest.get(..3) else { return Err(malformed("CodedFrames", "no composition time")) };
                    let composition_ms = si24(u32::from_be_bytes([0, cts[0], cts[1], cts[2]]));
                    Ok(VideoTag::Frame { keyframe, composition_ms, data: rest.slice(3..) })
                }
                VideoPacketType::CodedFramesX => Ok(VideoTag::Frame { keyframe, composition_ms: 0, data: rest }),
                _ => Ok(VideoTag::Other),
            }
        }
    }
}

/// Parses an RTMP audio message (an FLV audio tag body).
pub fn audio_tag(body: Bytes) -> Result<AudioTag, IngestError> {
    let mut cursor = io::Cursor::new(body.clone());
    let header = AudioTagHeader::demux(&mut cursor).map_err(|e| malformed("FLV audio tag", e))?;
    let rest = body.slice((cursor.position() as usize).min(body.len())..);
    match header {
        AudioTagHeader::Legacy(legacy) if legacy.sound_format == SoundFormat::Aac => match rest.first() {
            Some(0) => aac_config(&rest[1..]).map(AudioTag::Config),
            Some(1) => Ok(AudioTag::Frame(rest.slice(1..))),
            _ => Ok(AudioTag::Other),
        },
        AudioTagHeader::Legacy(legacy) => {
            Err(IngestError::Unsupported(format!("FLV sound format {}", legacy.sound_format.0)))
        }
        AudioTagHeader::Enhanced(ex) => match ex.content {
            ExAudioTagHeaderContent::NoMultiTrack(AudioFourCc::Aac) => match ex.audio_packet_type {
                AudioPacketType::SequenceStart => aac_config(&rest).map(AudioTag::Config),
                AudioPacketType::CodedFrames => Ok(AudioTag::Frame(rest)),
                _ => Ok(AudioTag::Other),
            },
            other => Err(IngestError::Unsupported(format!("enhanced RTMP audio {other:?}"))),
        },
    }
}

/// A signed 24-bit value (FLV CompositionTime is SI24, read by scuffle-flv as unsigned).
fn si24(v: u32) -> i32 {
    ((v << 8) as i32) >> 8
}

fn avc_config(record: &[u8]) -> Result<TrackInfo, IngestError> {
    let avc = AvcConfig::parse(record).map_err(|e| malformed("avcC", e))?;
    let sps = avc.sps.first().ok_or_else(|| malformed("avcC", "no SPS"))?;
    video_info(b"avc1", b"avcC", record, sps, false)
}

fn hevc_config(record: &[u8]) -> Result<TrackInfo, IngestError> {
    let hevc = HevcConfig::parse(record).map_err(|e| malformed("hvcC", e))?;
    let sps = hevc.nal_units.iter().find(|nal| nal.first().map(|b| (b >> 1) & 0x3f) == Some(33));
    let sps = sps.ok_or_else(|| malformed("hvcC", "no SPS"))?;
    video_info(b"hvc1", b"hvcC", record, sps, true)
}

fn video_info(kind: &FourCC, config: &FourCC, record: &[u8], sps: &[u8], hevc: bool) -> Result<TrackInfo, IngestError> {
    let (width, height) = sps_picture_size(sps, hevc).ok_or_else(|| malformed("SPS", "picture size unreadable"))?;
    let (Ok(width), Ok(height)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(malformed("SPS", format!("picture of {width}x{height}")));
    };
    let sample_entry = entry::visual(kind, width, height, config, record).map_err(|e| malformed("sample entry", e))?;
    track_info(TrackKind::Video, VIDEO_TIMESCALE, sample_entry)
}

fn aac_config(asc_bytes: &[u8]) -> Result<TrackInfo, IngestError> {
    let asc = AudioSpecificConfig::parse(asc_bytes).map_err(|e| malformed("AudioSpecificConfig", e))?;
    let rate = asc.output_rate().ok_or_else(|| malformed("AudioSpecificConfig", "no sampling frequency"))?;
    // Channel configuration 0 (a program config element) is not resolved here: say stereo.
    let channels = asc.output_channels().unwrap_or(2);
    let sample_entry = entry::aac(asc_bytes, channels, rate).map_err(|e| malformed("sample entry", e))?;
    track_info(TrackKind::Audio, rate, sample_entry)
}

fn track_info(kind: TrackKind, timescale: u32, sample_entry: Bytes) -> Result<TrackInfo, IngestError> {
    let codec = describe(&sample_entry).map_err(|e| malformed("sample entry", e))?;
    Ok(TrackInfo {
        track_id: 1,
        kind,
        timescale,
        language: "und".to_string(),
        sample_entry,
        codec,
        edit: EditOffset::default(),
    })
}

/// Output ticks of one AAC frame: 1024 core samples, twice that at the output rate with SBR.
fn aac_frame_ticks(info: &TrackInfo) -> u64 {
    let core = match &info.codec.config {
        crate::media::codec::CodecConfig::Aac(es) => es.audio_specific_config.as_ref().and_then(|a| a.frequency.hz()),
        _ => None,
    };
    match core {
        Some(core) if core > 0 && info.timescale > core => 1024 * u64::from(info.timescale) / u64::from(core),
        _ => 1024,
    }
}

/// RTMP's 32-bit millisecond timestamps extended to 64 bits: each value is placed in the
/// 2^32 ms era that puts it nearest to the previous one.
#[derive(Debug, Default)]
struct Clock {
    last: Option<u64>,
}

impl Clock {
    fn extend(&mut self, ts: u32) -> u64 {
        let ts = u64::from(ts);
        let extended = match self.last {
            None => ts,
            Some(last) => {
                let era = last >> 32;
                [era.checked_sub(1), Some(era), era.checked_add(1)]
                    .into_iter()
                    .flatten()
                    .map(|e| (e << 32) | ts)
                    .min_by_key(|candidate| candidate.abs_diff(last))
                    .unwrap_or(ts)
            }
        };
        self.last = Some(extended);
        extended
    }
}

/// Undoes a timestamp error of scuffle-rtmp 0.2.3: a message whose chunk has a type 3 header
/// (the same type, length and timestamp delta as the message before it on its chunk stream,
/// which ffmpeg sends for equal-sized AAC frames) is given the previous message's timestamp
/// instead of one delta later, and later deltas of that chunk stream build on the value it
/// kept. Such a message is known by repeating the previous message's timestamp and length: it is
/// put one delta after its predecessor, and what the chunk stream lost so far is added to the
/// timestamps that follow. ffmpeg and OBS send audio and video on chunk streams of their own,
/// so one repair per kind follows one chunk stream.
#[derive(Debug, Default)]
struct ChunkTimestamps {
    /// The previous message: timestamp as reported, length, timestamp repaired.
    previous: Option<(u32, usize, u32)>,
    /// The last delta between repaired timestamps.
    delta: u32,
    /// What the chunk stream's timestamps lag behind by.
    lag: u32,
}

impl ChunkTimestamps {
    fn repair(&mut self, reported: u32, len: usize) -> u32 {
        let repaired = match self.previous {
            Some((previous, previous_len, previous_repaired)) if previous == reported && previous_len == len => {
                self.lag = self.lag.wrapping_add(self.delta);
                previous_repaired.wrapping_add(self.delta)
            }
            _ => reported.wrapping_add(self.lag),
        };
        if let Some((_, _, previous_repaired)) = self.previous {
            self.delta = repaired.wrapping_sub(previous_repaired);
        }
        self.previous = Some((reported, len, repaired));
        repaired
    }
}

/// The samples of one track since its last cut.
#[derive(Debug)]
struct Pending {
    info: TrackInfo,
    dts: Vec<u64>,
    cts_offsets: Vec<i32>,
    sizes: Vec<u32>,
    sync: Vec<u32>,
    payload: BytesMut,
    /// Duration of the last sample cut (for the length of a last sample with no successor).
    last_duration: u64,
}

impl Pending {
    fn new(info: TrackInfo, default_duration: u64) -> Self {
        Pending {
            info,
            dts: Vec::new(),
            cts_offsets: Vec::new(),
            sizes: Vec::new(),
            sync: Vec::new(),
            payload: BytesMut::new(),
            last_duration: default_duration,
        }
    }

    fn push(&mut self, dts: u64, cts_offset: i32, sync: bool, data: &[u8], max_bytes: u64) -> Result<(), IngestError> {
        if self.dts.last().is_some_and(|&last| dts <= last) {
            return Err(IngestError::bad(
                "time",
                format!("{} decode time went back to {dts}", self.info.kind.as_str()),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| IngestError::bad("too_large", "sample over 4 GiB"))?;
        if (self.payload.len() + data.len()) as u64 > max_bytes {
            return Err(IngestError::bad(
                "too_large",
                format!("{} fragment over {max_bytes} bytes", self.info.kind.as_str()),
            ));
        }
        if sync {
            self.sync.push(self.dts.len() as u32);
        }
        self.dts.push(dts);
        self.cts_offsets.push(cts_offset);
        self.sizes.push(size);
        self.payload.extend_from_slice(data);
        Ok(())
    }

    fn first_dts(&self) -> Option<u64> {
        self.dts.first().copied()
    }

    /// Where the samples end when nothing follows: the last one lasts as long as the one before.
    fn natural_end(&self) -> Option<u64> {
        let last = *self.dts.last()?;
        let duration = match self.dts.len() {
            n if n >= 2 => last - self.dts[n - 2],
            _ => self.last_duration,
        };
        Some(last + duration)
    }

    /// Cuts the samples so far into a fragment ending at `end_dts`.
    fn take(&mut self, end_dts: u64) -> Option<IngestFragment> {
        let last = *self.dts.last()?;
        self.last_duration = end_dts.saturating_sub(last).max(1);
        let count = self.dts.len();
        let mut offsets = Vec::with_capacity(count);
        let mut at = 0u64;
        for &size in &self.sizes {
            offsets.push(at);
            at += u64::from(size);
        }
        let cts_offsets = std::mem::take(&mut self.cts_offsets);
        let sync = std::mem::take(&mut self.sync);
        let samples = SampleTable {
            dts: std::mem::take(&mut self.dts),
            end_dts,
            cts_offsets: if cts_offsets.iter().all(|&c| c == 0) { Vec::new() } else { cts_offsets },
            sizes: std::mem::take(&mut self.sizes),
            offsets,
            sync_samples: if sync.len() == count { None } else { Some(sync) },
            fragment_starts: Vec::new(),
        };
        Some(IngestFragment { samples, payload: self.payload.split().freeze() })
    }
}

/// Decode times of AAC frames on the frame grid of the first one.
#[derive(Debug)]
struct AudioGrid {
    rate: u64,
    frame: u64,
    origin: Option<u64>,
    last: Option<u64>,
}

impl AudioGrid {
    fn ticks(&self, ms: u64) -> u64 {
        ms.saturating_mul(self.rate) / 1000
    }

    /// The frame's decode time: its RTMP time rounded to the grid (RTMP ms jitter and frame
    /// durations that are not whole ms disappear); a frame that lands on its predecessor's
    /// slot takes the next one.
    fn dts(&mut self, ms: u64) -> u64 {
        let t = self.ticks(ms);
        let origin = *self.origin.get_or_insert(t);
        let snapped = match t.checked_sub(origin) {
            Some(d) => origin + (d + self.frame / 2) / self.frame * self.frame,
            None => t,
        };
        let dts = match self.last {
            Some(last) if snapped == last => last + self.frame,
            _ => snapped,
        };
        self.last = Some(dts);
        dts
    }
}

/// What the muxer hands on, in order.
#[derive(Debug)]
pub enum Output {
    /// A track appeared (its first sequence header).
    Track(IngestTrack),
    /// A fragment of the video or audio track.
    Fragment(TrackKind, IngestFragment),
}

/// One RTMP stream (one publish) cut into fragments: video at each keyframe (a fragment is a
/// GOP), audio at the first AAC frame at or after the presentation time where video was cut,
/// so the two stay aligned; a stream without video is cut every 2 s.
#[derive(Debug)]
pub struct StreamMuxer {
    stream: String,
    take_audio: bool,
    max_fragment_bytes: u64,
    clock: Clock,
    video_timestamps: ChunkTimestamps,
    audio_timestamps: ChunkTimestamps,
    video: Option<Pending>,
    audio: Option<(Pending, AudioGrid)>,
    /// Presentation times (ms) of video cuts the audio has not reached yet.
    cuts: VecDeque<u64>,
}

impl StreamMuxer {
    /// `stream` names the tracks (`{stream}_video`, `{stream}_audio`); `take_audio` false
    /// ignores the stream's audio (another stream of the event carries it).
    pub fn new(stream: &str, take_audio: bool, max_fragment_bytes: u64) -> Self {
        StreamMuxer {
            stream: stream.to_string(),
            take_audio,
            max_fragment_bytes,
            clock: Clock::default(),
            video_timestamps: ChunkTimestamps::default(),
            audio_timestamps: ChunkTimestamps::default(),
            video: None,
            audio: None,
            cuts: VecDeque::new(),
        }
    }

    /// The track key of `kind` in this stream.
    pub fn track_key(stream: &str, kind: TrackKind) -> String {
        format!("{stream}_{}", kind.as_str())
    }

    fn new_track(&self, info: &TrackInfo) -> IngestTrack {
        IngestTrack {
            key: Self::track_key(&self.stream, info.kind),
            name: info.kind.as_str().to_string(),
            language: "und".to_string(),
            declared_bitrate: None,
            info: info.clone(),
        }
    }

    /// A video message with RTMP timestamp `ts`.
    pub fn video(&mut self, ts: u32, body: Bytes, out: &mut Vec<Output>) -> Result<(), IngestError> {
        let ts = self.video_timestamps.repair(ts, body.len());
        match video_tag(body)? {
            VideoTag::Config(info) => {
                if let Some(pending) = &self.video {
                    return same_entry(&pending.info, &info);
                }
                out.push(Output::Track(self.new_track(&info)));
                // 25 fps until a frame says otherwise.
                self.video = Some(Pending::new(info, u64::from(VIDEO_TIMESCALE) / 25));
                Ok(())
            }
            VideoTag::Frame { keyframe, composition_ms, data } => {
                let ms = self.clock.extend(ts);
                // Frames before the sequence header, or before the first keyframe, cannot be
                // decoded: dropped.
                let Some(pending) = &mut self.video else { return Ok(()) };
                if pending.dts.is_empty() && !keyframe {
                    return Ok(());
                }
                let dts = ms.saturating_mul(VIDEO_TICKS_PER_MS);
                if keyframe && pending.first_dts().is_some() {
                    if let Some(fragment) = pending.take(dts) {
                        out.push(Output::Fragment(TrackKind::Video, fragment));
                    }
                    if self.audio.is_some() {
                        if self.cuts.len() == MAX_PENDING_CUTS {
                            self.cuts.pop_front();
                        }
                        self.cuts.push_back(ms.saturating_add_signed(i64::from(composition_ms)));
                    }
                }
                let cts = i32::try_from(i64::from(composition_ms) * VIDEO_TICKS_PER_MS as i64)
                    .map_err(|_| malformed("composition time", composition_ms))?;
                pending.push(dts, cts, keyframe, &data, self.max_fragment_bytes)
            }
            VideoTag::Other => Ok(()),
        }
    }

    /// An audio message with RTMP timestamp `ts`.
    pub fn audio(&mut self, ts: u32, body: Bytes, out: &mut Vec<Output>) -> Result<(), IngestError> {
        if !self.take_audio {
            return Ok(());
        }
        let ts = self.audio_timestamps.repair(ts, body.len());
        match audio_tag(body)? {
            AudioTag::Config(info) => {
                if let Some((pending, _)) = &self.audio {
                    return same_entry(&pending.info, &info);
                }
                out.push(Output::Track(self.new_track(&info)));
                let frame = aac_frame_ticks(&info);
                let grid = AudioGrid { rate: u64::from(info.timescale), frame, origin: None, last: None };
                self.audio = Some((Pending::new(info, frame), grid));
                Ok(())
            }
            AudioTag::Frame(data) => {
                let ms = self.clock.extend(ts);
                let Some((pending, grid)) = &mut self.audio else { return Ok(()) };
                let dts = grid.dts(ms);
                let mut cut = false;
                while let Some(&at) = self.cuts.front() {
                    if dts < grid.ticks(at) {
                        break;
                    }
                    self.cuts.pop_front();
                    cut = true;
                }
                if self.video.is_none() {
                    cut |= pending.first_dts().is_some_and(|first| dts >= first + grid.ticks(AUDIO_ONLY_FRAGMENT_MS));
                }
                if cut {
                    if let Some(fragment) = pending.take(dts) {
                        out.push(Output::Fragment(TrackKind::Audio, fragment));
                    }
                }
                pending.push(dts, 0, true, &data, self.max_fragment_bytes)
            }
            AudioTag::Other => Ok(()),
        }
    }

    /// The stream ended: the samples since the last cut as last fragments.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        if let Some(pending) = &mut self.video {
            if let Some(fragment) = pending.natural_end().and_then(|end| pending.take(end)) {
                out.push(Output::Fragment(TrackKind::Video, fragment));
            }
        }
        if let Some((pending, _)) = &mut self.audio {
            if let Some(fragment) = pending.natural_end().and_then(|end| pending.take(end)) {
                out.push(Output::Fragment(TrackKind::Audio, fragment));
            }
        }
        self.cuts.clear();
    }
}

/// A repeated sequence header must repeat the track's sample entry.
fn same_entry(current: &TrackInfo, new: &TrackInfo) -> Result<(), IngestError> {
    if current.sample_entry == new.sample_entry {
        Ok(())
    } else {
        Err(IngestError::bad(
            "codec_change",
            format!(
                "{} sequence header changed mid-stream ({} → {})",
                current.kind.as_str(),
                current.codec.codec_string,
                new.codec.codec_string
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<_>>().into()
    }

    /// ffmpeg's FLV tags for x264 640x360 High@3.0 and AAC LC 48 kHz mono.
    const AVC_SEQUENCE_HEADER: &str = "17000000000164001effe1001a6764001eacd940a02ff97011000003000100000300320f162d96\
                                       01000668ebe3cb22c0fdf8f800";
    const AAC_SEQUENCE_HEADER: &str = "af00118856e500";
    /// x264 at 1918x1078: coded 1920x1088 with frame cropping.
    const AVC_SEQUENCE_HEADER_CROPPED: &str =
        "170000000001640028ffe1001f67640028acd940780227a9bff04d004d110000030001000003\
                                               00320f18319601000668ebe3cb22c0fdf8f800";

    fn frame(keyframe: bool, cts_ms: i32, payload: &[u8]) -> Bytes {
        let mut tag = vec![if keyframe { 0x17 } else { 0x27 }, 1];
        tag.extend_from_slice(&cts_ms.to_be_bytes()[1..]);
        tag.extend_from_slice(payload);
        tag.into()
    }

    fn aac_frame(payload: &[u8]) -> Bytes {
        let mut tag = vec![0xaf, 1];
        tag.extend_from_slice(payload);
        tag.into()
    }

    #[test]
    fn sequence_headers_become_sample_entries() {
        let VideoTag::Config(video) = video_tag(hex(AVC_SEQUENCE_HEADER)).unwrap() else { panic!() };
        assert_eq!(video.codec.codec_string, "avc1.64001e");
        assert_eq!((video.codec.width, video.codec.height), (640, 360));
        assert_eq!((video.kind, video.timescale), (TrackKind::Video, 90_000));
        // The avcC is the encoder's, byte for byte.
        assert!(video.sample_entry.ends_with(&hex(AVC_SEQUENCE_HEADER)[5..]));

        let VideoTag::Config(cropped) = video_tag(hex(AVC_SEQUENCE_HEADER_CROPPED)).unwrap() else { panic!() };
        assert_eq!((cropped.codec.width, cropped.codec.height), (1918, 1078));

        let AudioTag::Config(audio) = audio_tag(hex(AAC_SEQUENCE_HEADER)).unwrap() else { panic!() };
        assert_eq!(audio.codec.codec_string, "mp4a.40.2");
        assert_eq!((audio.codec.sample_rate, audio.codec.channels, audio.timescale), (48_000, 1, 48_000));
        assert_eq!(aac_frame_ticks(&audio), 1024);
    }

    #[test]
    fn frames_and_composition_times() {
        let VideoTag::Frame { keyframe, composition_ms, data } =
            video_tag(frame(true, 80, &[0, 0, 0, 1, 0x65])).unwrap()
        else {
            panic!()
        };
        assert!(keyframe);
        assert_eq!(composition_ms, 80);
        assert_eq!(&data[..], &[0, 0, 0, 1, 0x65]);
        let VideoTag::Frame { keyframe, composition_ms, .. } = video_tag(frame(false, -40, &[1])).unwrap() else {
            panic!()
        };
        assert!(!keyframe);
        assert_eq!(composition_ms, -40);
        let AudioTag::Frame(data) = audio_tag(aac_frame(&[0xde, 0x02])).unwrap() else { panic!() };
        assert_eq!(&data[..], &[0xde, 0x02]);
    }

    #[test]
    fn enhanced_rtmp_hevc() {
        // hvcC of x265 Main 640x360 (VPS, SPS, PPS; its SEI array left out).
        let hvcc = hex("0101600000009000000000003ff000fcfdf8f800000f 03 \
             a000010018 40010c01ffff01600000030090000003000003003f959809 \
             a10001002a 42010101600000030090000003000003003fa00502016965959a4932bc05a02000000300200000030321 \
             a200010007 4401c172b46240");
        let mut start = vec![0x90];
        start.extend_from_slice(b"hvc1");
        start.extend_from_slice(&hvcc);
        let VideoTag::Config(info) = video_tag(start.into()).unwrap() else { panic!() };
        assert_eq!(info.codec.sample_entry_type, "hvc1");
        assert_eq!(info.codec.codec_string, "hvc1.1.6.L63.90");
        assert_eq!((info.codec.width, info.codec.height), (640, 360));
        // CodedFrames carries an SI24 composition time, CodedFramesX none.
        let mut coded = vec![0x91];
        coded.extend_from_slice(b"hvc1");
        coded.extend_from_slice(&[0xff, 0xff, 0xd8, 9, 9]);
        let VideoTag::Frame { keyframe, composition_ms, data } = video_tag(coded.into()).unwrap() else { panic!() };
        assert!(keyframe);
        assert_eq!((composition_ms, &data[..]), (-40, &[9u8, 9][..]));
        let mut coded_x = vec![0xa3];
        coded_x.extend_from_slice(b"hvc1");
        coded_x.push(7);
        let VideoTag::Frame { keyframe, composition_ms, data } = video_tag(coded_x.into()).unwrap() else { panic!() };
        assert!(!keyframe);
        assert_eq!((composition_ms, &data[..]), (0, &[7u8][..]));
    }

    #[test]
    fn unsupported_and_garbage() {
        assert!(matches!(video_tag(hex("22 0102")), Err(IngestError::Unsupported(_)))); // Sorenson H.263
        assert!(matches!(audio_tag(hex("2f 00")), Err(IngestError::Unsupported(_)))); // MP3
        let mut vp9 = vec![0x90];
        vp9.extend_from_slice(b"vp09");
        assert!(matches!(video_tag(vp9.into()), Err(IngestError::Unsupported(_))));
        assert!(video_tag(Bytes::new()).is_err());
        assert!(audio_tag(Bytes::new()).is_err());
        // Every truncation of a sequence header is an error or a frame, never a panic.
        for body in [hex(AVC_SEQUENCE_HEADER), hex(AAC_SEQUENCE_HEADER)] {
            for n in 0..body.len() {
                let _ = video_tag(body.slice(..n));
                let _ = audio_tag(body.slice(..n));
            }
        }
        assert!(matches!(video_tag(hex("1700000000 01640000")), Err(IngestError::BadMedia { reason: "media", .. })));
    }

    #[test]
    fn rtmp_timestamps_extend_across_the_wrap() {
        let mut clock = Clock::default();
        assert_eq!(clock.extend(u32::MAX - 40), u64::from(u32::MAX - 40));
        assert_eq!(clock.extend(u32::MAX - 50), u64::from(u32::MAX - 50)); // slightly back: audio vs video
        assert_eq!(clock.extend(20), (1 << 32) + 20);
        assert_eq!(clock.extend(u32::MAX), u64::from(u32::MAX)); // an earlier value of the previous era
        assert_eq!(clock.extend(5), (1 << 32) + 5);
    }

    #[test]
    fn type_3_chunk_timestamps_are_repaired() {
        let mut t = ChunkTimestamps::default();
        // Sent: 59, 80, 101, 123 (type 3: same size, same delta as 101), 144, 165.
        // Reported: 123 arrives as 101, and the stream's later deltas build on that.
        let reported = [(59, 7), (80, 9), (101, 9), (101, 9), (122, 8), (143, 8)];
        let repaired: Vec<u32> = reported.iter().map(|&(ts, len)| t.repair(ts, len)).collect();
        assert_eq!(repaired, vec![59, 80, 101, 122, 143, 164]);
        // The same timestamp with another length is a real repeat (sequence header, frame).
        let mut t = ChunkTimestamps::default();
        assert_eq!([(0, 52), (0, 9000), (40, 300)].map(|(ts, len)| t.repair(ts, len)), [0, 0, 40]);
    }

    /// A 25 fps stream with 2 s GOPs (cts 80 ms on keyframes) and 48 kHz AAC, interleaved as
    /// ffmpeg sends it, for `seconds`.
    fn push_stream(muxer: &mut StreamMuxer, start_ms: u32, seconds: u32, out: &mut Vec<Output>) {
        muxer.video(start_ms, hex(AVC_SEQUENCE_HEADER), out).unwrap();
        muxer.audio(start_ms, hex(AAC_SEQUENCE_HEADER), out).unwrap();
        let (mut v, mut a) = (0u32, 0u32);
        while v < 25 * seconds {
            let video_ms = v * 40;
            let audio_ms = (u64::from(a) * 1024 * 1000 / 48_000) as u32;
            if audio_ms < video_ms {
                muxer.audio(start_ms + audio_ms, aac_frame(&[a as u8; 3]), out).unwrap();
                a += 1;
            } else {
                let key = v % 50 == 0;
                muxer.video(start_ms + video_ms, frame(key, if key { 80 } else { 40 }, &[v as u8; 5]), out).unwrap();
                v += 1;
            }
        }
    }

    fn fragments(out: &[Output], kind: TrackKind) -> Vec<&IngestFragment> {
        out.iter()
            .filter_map(|o| match o {
                Output::Fragment(k, f) if *k == kind => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn gops_become_fragments_and_audio_follows_the_cuts() {
        let mut muxer = StreamMuxer::new("720p", true, 1 << 20);
        let mut out = Vec::new();
        push_stream(&mut muxer, 1_000, 6, &mut out);
        let tracks: Vec<_> = out.iter().filter_map(|o| if let Output::Track(t) = o { Some(t) } else { None }).collect();
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[0].key.as_str(), tracks[0].name.as_str()), ("720p_video", "video"));
        assert_eq!((tracks[1].key.as_str(), tracks[1].name.as_str()), ("720p_audio", "audio"));

        let video = fragments(&out, TrackKind::Video);
        assert_eq!(video.len(), 2);
        for (k, f) in video.iter().enumerate() {
            let s = &f.samples;
            assert_eq!(s.len(), 50);
            assert_eq!(s.dts[0], (1_000 + 2_000 * k as u64) * 90);
            assert_eq!(s.end_dts, s.dts[0] + 180_000);
            assert_eq!(s.sync_samples.as_deref(), Some(&[0u32][..]));
            assert_eq!((s.cts_offsets[0], s.cts_offsets[1]), (7_200, 3_600));
            assert_eq!(s.offsets[1], 5);
            assert_eq!(f.payload.len(), 250);
        }
        // Audio cut at the first frame at or after each keyframe's presentation time (+80 ms).
        let audio = fragments(&out, TrackKind::Audio);
        assert_eq!(audio.len(), 2);
        let origin = 48_000;
        for (k, f) in audio.iter().enumerate() {
            let cut = (1_000 + 2_000 * (k as u64 + 1) + 80) * 48;
            assert!(f.samples.end_dts >= cut && f.samples.end_dts < cut + 1024, "{k}: {}", f.samples.end_dts);
            assert_eq!((f.samples.end_dts - origin) % 1024, 0);
            assert!(f.samples.dts.windows(2).all(|w| w[1] - w[0] == 1024));
            assert!(f.samples.sync_samples.is_none() && f.samples.cts_offsets.is_empty());
        }
        assert_eq!(audio[1].samples.dts[0], audio[0].samples.end_dts);

        // The end: the last GOP and the audio since the last cut.
        let mut last = Vec::new();
        muxer.finish(&mut last);
        let video = fragments(&last, TrackKind::Video);
        assert_eq!(video[0].samples.len(), 50);
        assert_eq!(video[0].samples.end_dts, 7_000 * 90);
        let audio = fragments(&last, TrackKind::Audio);
        assert_eq!(audio[0].samples.dts[0], fragments(&out, TrackKind::Audio)[1].samples.end_dts);
    }

    #[test]
    fn ignored_audio_and_audio_only_streams() {
        let mut muxer = StreamMuxer::new("1080p", false, 1 << 20);
        let mut out = Vec::new();
        push_stream(&mut muxer, 0, 3, &mut out);
        assert!(out.iter().all(|o| match o {
            Output::Track(t) => t.info.kind == TrackKind::Video,
            Output::Fragment(kind, _) => *kind == TrackKind::Video,
        }));

        let mut muxer = StreamMuxer::new("radio", true, 1 << 20);
        let mut out = Vec::new();
        muxer.audio(0, hex(AAC_SEQUENCE_HEADER), &mut out).unwrap();
        for a in 0..300u64 {
            muxer.audio((a * 1024 * 1000 / 48_000) as u32, aac_frame(&[1]), &mut out).unwrap();
        }
        let audio = fragments(&out, TrackKind::Audio);
        assert_eq!(audio.len(), 3);
        assert!(audio.iter().all(|f| f.samples.len() == 94)); // ⌈2 s / 21.33 ms⌉
    }

    #[test]
    fn codec_change_time_going_back_and_size_limits() {
        let mut muxer = StreamMuxer::new("s", true, 1 << 20);
        let mut out = Vec::new();
        push_stream(&mut muxer, 0, 1, &mut out);
        // The same sequence header again is fine; another one is a codec change.
        muxer.video(1_000, hex(AVC_SEQUENCE_HEADER), &mut out).unwrap();
        let err = muxer.video(1_000, hex(AVC_SEQUENCE_HEADER_CROPPED), &mut out).unwrap_err();
        assert_eq!(err.reason(), "codec_change");
        let err = muxer.audio(1_000, hex("af00 1190"), &mut out).unwrap_err();
        assert_eq!(err.reason(), "codec_change");
        let err = muxer.video(500, frame(false, 0, &[1]), &mut out).unwrap_err();
        assert_eq!(err.reason(), "time");
        let err = muxer.audio(100, aac_frame(&[1]), &mut out).unwrap_err();
        assert_eq!(err.reason(), "time");

        let mut muxer = StreamMuxer::new("s", true, 100);
        muxer.video(0, hex(AVC_SEQUENCE_HEADER), &mut out).unwrap();
        muxer.video(0, frame(true, 0, &[0; 60]), &mut out).unwrap();
        let err = muxer.video(40, frame(false, 0, &[0; 60]), &mut out).unwrap_err();
        assert_eq!(err.reason(), "too_large");
    }

    #[test]
    fn frames_before_the_first_keyframe_are_dropped() {
        let mut muxer = StreamMuxer::new("s", true, 1 << 20);
        let mut out = Vec::new();
        muxer.video(0, frame(true, 0, &[1]), &mut out).unwrap(); // before the sequence header
        muxer.video(0, hex(AVC_SEQUENCE_HEADER), &mut out).unwrap();
        muxer.video(40, frame(false, 0, &[2]), &mut out).unwrap();
        muxer.video(80, frame(true, 0, &[3]), &mut out).unwrap();
        muxer.video(120, frame(false, 0, &[4]), &mut out).unwrap();
        out.clear();
        muxer.finish(&mut out);
        let video = fragments(&out, TrackKind::Video);
        assert_eq!(&video[0].payload[..], &[3, 4]);
        assert_eq!(video[0].samples.dts, vec![80 * 90, 120 * 90]);
        assert_eq!(video[0].samples.end_dts, 160 * 90);
    }

    proptest::proptest! {
        /// Whatever an encoder sends, parsing and muxing end in frames, fragments or an error.
        #[test]
        fn arbitrary_messages_never_panic(
            messages in proptest::collection::vec((proptest::bool::ANY, 0u32..5_000, proptest::collection::vec(proptest::num::u8::ANY, 0..64)), 0..40)
        ) {
            let mut muxer = StreamMuxer::new("s", true, 1 << 16);
            let mut out = Vec::new();
            let _ = muxer.video(0, hex(AVC_SEQUENCE_HEADER), &mut out);
            let _ = muxer.audio(0, hex(AAC_SEQUENCE_HEADER), &mut out);
            for (video, ts, mut body) in messages {
                // Half the time a plausible header, so the bytes after it are reached.
                if ts % 2 == 0 {
                    let header: &[u8] = if video { &[0x17, 1, 0, 0, 0] } else { &[0xaf, 1] };
                    body.splice(0..0, header.iter().copied());
                }
                let body = Bytes::from(body);
                let _ = if video { muxer.video(ts, body, &mut out) } else { muxer.audio(ts, body, &mut out) };
            }
            muxer.finish(&mut out);
        }
    }
}
