//! Codec facts from sample entries, parsed once when a track is indexed: RFC 6381 codec
//! strings, picture size, audio layout, and the [`CodecConfig`] every muxer, packager and
//! encryptor asks instead of reading the configuration boxes again.
//!
//! [`describe`] takes one whole sample-entry box from `stsd` (header included), reads the
//! fixed sample-entry fields (the audio layout decided by the entry's version field) and hands
//! the codec configuration child box to the one parser of its codec:
//!
//! - `avcC` → [`avc`] (`avc1.PPCCLL`), `hvcC` → [`hevc`] (`hvc1.1.6.L93.B0`), `av1C` →
//!   [`av1`] (`av01.0.04M.10`);
//! - video colour: `colr` → [`colour`], else the SPS VUI ([`slice`]) or the AV1 sequence
//!   header; Dolby Vision `dvcC` / `dvvC` / `dvwC` → [`dolby_vision`] (`dvh1`/`dvhe`/`dav1`
//!   sample entries are described by their Dolby Vision codec string, a backward-compatible
//!   `hvc1` + `dvvC` by its HEVC one with Dolby Vision as supplemental codec);
//! - `esds` → [`aac`] (`mp4a.40.2`, `mp4a.40.5`, `mp4a.40.29`, `mp4a.6B`…);
//! - `dac3` / `dec3` → [`ac3`] (`ac-3` / `ec-3`);
//! - `wvtt`, `stpp` → themselves; `encv`/`enca` are described as their `sinf/frma` format.
//!
//! Unknown sample entries are not an error: they come back as [`CodecFamily::Other`] with the
//! four-character code as codec string.
//!
//! [`slice`] measures H.264 / H.265 slice headers from the parameter sets kept here.

pub(crate) mod aac;
pub(crate) mod ac3;
pub(crate) mod av1;
pub(crate) mod avc;
pub(crate) mod colour;
pub(crate) mod dolby_vision;
pub(crate) mod hevc;
pub(crate) mod slice;
pub(crate) mod smooth;

use serde::Serialize;

pub use aac::{AdtsConfig, EsDescriptor};
pub use ac3::Ac3Config;
pub use av1::Av1Config;
pub use avc::AvcConfig;
pub use colour::{Colour, ColourSource, VideoRange};
pub use dolby_vision::DolbyVision;
pub use hevc::HevcConfig;
pub use smooth::SmoothCodec;

use crate::media::mp4::reader::{boxes, find, Cursor};
use crate::media::mp4::{fourcc_str, FourCC};
use crate::media::{err, MediaError, MediaResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum CodecFamily {
    Avc,
    Hevc,
    Av1,
    Aac,
    Ac3,
    Eac3,
    #[default]
    Other,
}

/// An audio channel layout in the two forms DASH `AudioChannelConfiguration` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ChannelLayout {
    /// ISO/IEC 23001-8 ChannelConfiguration (the AAC channelConfiguration value), scheme
    /// `urn:mpeg:mpegB:cicp:ChannelConfiguration` (or the channel count with
    /// `urn:mpeg:dash:23003:3:audio_channel_configuration:2011`).
    Mpeg(u8),
    /// The 16-bit Dolby channel map of ETSI TS 102 366 Table E.1.4 (L = 0x8000 … LFE = 0x0001),
    /// scheme `tag:dolby.com,2014:dash:audio_channel_configuration:2011`, written as 4 hex
    /// digits (5.1 = `F801`, stereo = `A000`).
    Dolby(u16),
}

impl ChannelLayout {
    /// The speaker positions, for people: `L R C LFE Ls Rs`-style names with the code they
    /// come from, e.g. `L C R Ls Rs LFE (Dolby map F801)`, `L R (channelConfiguration 2)`.
    pub fn describe(&self) -> String {
        match *self {
            ChannelLayout::Mpeg(config) => {
                // ISO/IEC 23001-8 ChannelConfiguration 1–7 (the AAC channel configurations).
                let names = match config {
                    1 => "C",
                    2 => "L R",
                    3 => "C L R",
                    4 => "C L R Cs",
                    5 => "C L R Ls Rs",
                    6 => "C L R Ls Rs LFE",
                    7 => "C Lc Rc L R Ls Rs LFE",
                    _ => "",
                };
                let sep = if names.is_empty() { "" } else { " " };
                format!("{names}{sep}(channelConfiguration {config})")
            }
            ChannelLayout::Dolby(map) => {
                // ETSI TS 102 366 Table E.1.4, most significant bit first.
                const NAMES: [&str; 16] = [
                    "L", "C", "R", "Ls", "Rs", "Lc/Rc", "Lrs/Rrs", "Cs", "Ts", "Lsd/Rsd", "Lw/Rw", "Vhl/Vhr", "Vhc",
                    "Lts/Rts", "LFE2", "LFE",
                ];
                let names: Vec<&str> =
                    NAMES.iter().enumerate().filter(|(i, _)| map & (0x8000 >> i) != 0).map(|(_, n)| *n).collect();
                format!("{} (Dolby map {map:04X})", names.join(" "))
            }
        }
    }
}

/// The parsed codec configuration box of a sample entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CodecConfig {
    Avc(AvcConfig),
    Hevc(HevcConfig),
    Av1(Av1Config),
    /// MPEG-4 audio or MPEG-2 AAC (the `esds` of other `mp4a` audio, e.g. MP3, is not kept).
    Aac(EsDescriptor),
    Ac3(Ac3Config),
    Eac3(Ac3Config),
    /// Text, unknown codecs, and codecs whose configuration nothing here needs.
    #[default]
    None,
}

impl CodecConfig {
    /// The NAL length size of AVC / HEVC samples.
    pub fn nal_length_size(&self) -> Option<u8> {
        match self {
            CodecConfig::Avc(c) => Some(c.nal_length_size),
            CodecConfig::Hevc(c) => Some(c.nal_length_size),
            _ => None,
        }
    }

    /// The parameter-set NAL units of the configuration record, in record order (AVC: SPS,
    /// then PPS; HEVC: every array).
    pub fn parameter_sets(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match self {
            CodecConfig::Avc(c) => Box::new(c.sps.iter().chain(&c.pps).map(Vec::as_slice)),
            CodecConfig::Hevc(c) => Box::new(c.nal_units.iter().map(Vec::as_slice)),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// When the configuration box tells it: AAC with a non-zero channelConfiguration, AC-3,
    /// E-AC-3.
    pub fn channel_layout(&self) -> Option<ChannelLayout> {
        match self {
            CodecConfig::Aac(es) if es.object_type_indication == 0x40 => es
                .audio_specific_config
                .as_ref()
                .filter(|asc| asc.channel_config != 0)
                .map(|asc| ChannelLayout::Mpeg(asc.channel_config)),
            CodecConfig::Ac3(c) | CodecConfig::Eac3(c) => Some(ChannelLayout::Dolby(c.channels_and_map().1)),
            _ => None,
        }
    }

    /// E-AC-3 with Joint Object Coding (Dolby Atmos): its complexity index.
    pub fn joc_complexity(&self) -> Option<u8> {
        match self {
            CodecConfig::Eac3(c) => c.joc_complexity,
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CodecInfo {
    pub family: CodecFamily,
    /// Sample entry type, e.g. "avc1", "hev1", "mp4a", "ac-3".
    pub sample_entry_type: String,
    /// RFC 6381 string for CODECS / @codecs, e.g. "avc1.64001f", "mp4a.40.2", "ec-3".
    pub codec_string: String,
    pub width: u16,
    pub height: u16,
    pub sample_rate: u32,
    pub channels: u16,
    /// Video: the colour description (`colr`, else the SPS VUI / AV1 sequence header), when
    /// one is given and not all "unspecified".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<Colour>,
    /// Video: the Dolby Vision configuration record (`dvcC` / `dvvC` / `dvwC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dolby_vision: Option<DolbyVision>,
    #[serde(skip)]
    pub config: CodecConfig,
}

impl CodecInfo {
    pub fn is_video(&self) -> bool {
        matches!(self.family, CodecFamily::Avc | CodecFamily::Hevc | CodecFamily::Av1) || self.width > 0
    }

    pub fn is_audio(&self) -> bool {
        matches!(self.family, CodecFamily::Aac | CodecFamily::Ac3 | CodecFamily::Eac3) || self.sample_rate > 0
    }

    /// The value for HLS `CHANNELS`: the channel count of the layout the configuration box
    /// declares (AAC channelConfiguration, the `dac3` / `dec3` channel map; the sample
    /// entry's channelcount only when neither says), or for E-AC-3 JOC (Atmos) the number of
    /// decodable objects, `complexity_index_type_a`, followed by `/JOC` (Dolby's HLS
    /// signalling of Atmos: `16/JOC`). `None` when the channel count is unknown.
    pub fn hls_channels(&self) -> Option<String> {
        match self.config.joc_complexity() {
            Some(objects) => Some(format!("{objects}/JOC")),
            None => (self.channels > 0).then(|| self.channels.to_string()),
        }
    }

    /// The HLS `VIDEO-RANGE`: PQ or HLG from the transfer characteristics; a Dolby Vision
    /// track without a colour description by its profile (5: PQ) or base layer (HDR10: PQ,
    /// HLG: HLG); SDR otherwise.
    pub fn video_range(&self) -> VideoRange {
        let from_colour = self.colour.map(|c| c.range()).unwrap_or_default();
        if from_colour != VideoRange::Sdr {
            return from_colour;
        }
        match self.dolby_vision {
            Some(dv) if dv.profile == 5 || dv.bl_compatibility == 1 => VideoRange::Pq,
            Some(dv) if dv.bl_compatibility == 4 => VideoRange::Hlg,
            _ => VideoRange::Sdr,
        }
    }

    /// HLS `SUPPLEMENTAL-CODECS` (and DASH `scte214:supplementalCodecs`): the Dolby Vision
    /// codec and brand of a backward-compatible Dolby Vision track whose `CODECS` is its base
    /// layer's (`hvc1` + `dvvC` profile 8.1 → `dvh1.08.06/db1p`). `None` for other tracks,
    /// including `dvh1`/`dvhe`/`dav1` entries, whose `CODECS` is already Dolby Vision.
    pub fn supplemental_codecs(&self) -> Option<String> {
        let dv = self.dolby_vision?;
        let dv_entry = DOLBY_VISION_TYPES.iter().any(|t| t.as_slice() == self.sample_entry_type.as_bytes());
        (dv.backward_compatible() && !dv_entry).then(|| dv.supplemental_codecs(&self.sample_entry_type))
    }

    /// Why MPEG-TS cannot carry this track, if it cannot: AV1 has no HLS MPEG-TS carriage
    /// (Apple's HLS authoring spec allows AV1 in fMP4 only).
    pub fn ts_refusal(&self) -> Option<String> {
        (self.family == CodecFamily::Av1).then(|| {
            format!(
                "AV1 ('{}') cannot be carried in MPEG-TS (HLS defines AV1 in fragmented MP4 only): use format=m3u8-cmaf",
                self.sample_entry_type
            )
        })
    }
}

const VISUAL_TYPES: &[&FourCC] =
    &[b"avc1", b"avc3", b"hvc1", b"hev1", b"encv", b"dvh1", b"dvhe", b"vp09", b"av01", b"dav1", b"mp4v"];
/// Dolby Vision sample entries: their `CODECS` is the Dolby Vision codec string.
const DOLBY_VISION_TYPES: &[&FourCC] = &[b"dvh1", b"dvhe", b"dav1"];
const AUDIO_TYPES: &[&FourCC] = &[b"mp4a", b"ac-3", b"ec-3", b"enca", b"Opus", b"fLaC", b"ac-4", b".mp3"];

/// Describes one sample-entry box from `stsd` (8-byte header + payload).
pub fn describe(sample_entry: &[u8]) -> MediaResult<CodecInfo> {
    let entry = match boxes(sample_entry).next() {
        Some(b) => b?,
        None => return err("empty sample entry"),
    };
    let kind = entry.kind;
    let payload = entry.payload;
    if VISUAL_TYPES.contains(&&kind) {
        describe_visual(kind, payload)
    } else if AUDIO_TYPES.contains(&&kind) {
        describe_audio(kind, payload)
    } else {
        let name = fourcc_str(&kind);
        Ok(CodecInfo {
            family: CodecFamily::Other,
            sample_entry_type: name.clone(),
            codec_string: name,
            ..CodecInfo::default()
        })
    }
}

fn with_context<T>(r: MediaResult<T>, what: &str) -> MediaResult<T> {
    r.map_err(|e| MediaError(format!("{what}: {e}")))
}

/// The original format of a protected sample entry, from `sinf/frma`.
fn original_format(children: &[u8], kind: FourCC) -> MediaResult<FourCC> {
    let sinf =
        find(children, b"sinf")?.ok_or_else(|| MediaError(format!("'{}' has no 'sinf' box", fourcc_str(&kind))))?;
    let frma = find(sinf, b"frma")?.ok_or_else(|| MediaError("'sinf' has no 'frma' box".into()))?;
    with_context(Cursor::new(frma).fourcc(), "frma")
}

/// The payload of the mandatory child `kind` of the sample entry `entry`.
fn config_box<'a>(children: &'a [u8], kind: &FourCC, entry: &str) -> MediaResult<&'a [u8]> {
    find(children, kind)?.ok_or_else(|| MediaError(format!("'{entry}' has no '{}' box", fourcc_str(kind))))
}

// ---------------------------------------------------------------------------------------------
// Video

fn describe_visual(kind: FourCC, payload: &[u8]) -> MediaResult<CodecInfo> {
    let name = fourcc_str(&kind);
    let mut c = Cursor::new(payload);
    let fixed = (|| {
        c.skip(6 + 2)?; // reserved, data_reference_index
        c.skip(16)?; // pre_defined, reserved, pre_defined[3]
        let width = c.u16()?;
        let height = c.u16()?;
        // horizresolution, vertresolution, reserved, frame_count, compressorname[32], depth,
        // pre_defined
        c.skip(4 + 4 + 4 + 2 + 32 + 2 + 2)?;
        Ok((width, height))
    })();
    let (width, height) = with_context(fixed, &format!("visual sample entry '{name}'"))?;
    let children = c.rest();

    let format = if &kind == b"encv" { original_format(children, kind)? } else { kind };
    let format_name = fourcc_str(&format);
    let mut info = CodecInfo {
        family: CodecFamily::Other,
        sample_entry_type: format_name.clone(),
        codec_string: format_name.clone(),
        width,
        height,
        ..CodecInfo::default()
    };
    match &format {
        b"avc1" | b"avc3" => {
            let avc = with_context(AvcConfig::parse(config_box(children, b"avcC", &format_name)?), "avcC")?;
            info.family = CodecFamily::Avc;
            info.codec_string = avc.codec_string(&format_name);
            info.config = CodecConfig::Avc(avc);
        }
        // Dolby Vision profile 5 `dvh1`/`dvhe` entries are HEVC bitstreams configured by their
        // hvcC.
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" => {
            let hevc = with_context(HevcConfig::parse(config_box(children, b"hvcC", &format_name)?), "hvcC")?;
            info.family = CodecFamily::Hevc;
            info.codec_string = hevc.codec_string(&format_name);
            info.config = CodecConfig::Hevc(hevc);
        }
        b"av01" | b"dav1" => {
            let av1 = with_context(Av1Config::parse(config_box(children, b"av1C", &format_name)?), "av1C")?;
            info.family = CodecFamily::Av1;
            info.codec_string = av1.codec_string();
            info.config = CodecConfig::Av1(av1);
        }
        _ => {}
    }
    describe_colour(&mut info, children)?;
    Ok(info)
}

/// The payload of child box `kind` among the boxes before the first malformed one: colour and
/// Dolby Vision boxes are optional facts, so junk after the codec configuration (which the
/// track plays without) must not make the track unreadable.
fn find_optional<'a>(children: &'a [u8], kind: &FourCC) -> Option<&'a [u8]> {
    boxes(children).map_while(Result::ok).find(|b| &b.kind == kind).map(|b| b.payload)
}

/// Fills in the colour description and the Dolby Vision record of a video sample entry. A
/// Dolby Vision entry (`dvh1`, `dvhe`, `dav1`) needs its record for a codec string; on other
/// entries an unreadable record is ignored (the base layer plays without it).
fn describe_colour(info: &mut CodecInfo, children: &[u8]) -> MediaResult<()> {
    let sps_colour = || match &info.config {
        CodecConfig::Avc(avc) => avc.sps.first().and_then(|sps| slice::sps_colour(sps, false)),
        CodecConfig::Hevc(hevc) => hevc
            .nal_units
            .iter()
            .find(|nal| nal.first().is_some_and(|b| (b >> 1) & 0x3f == 33))
            .and_then(|sps| slice::sps_colour(sps, true)),
        CodecConfig::Av1(av1) => av1.colour,
        _ => None,
    };
    let colr = find_optional(children, b"colr").and_then(Colour::from_colr);
    info.colour = colr.filter(Colour::is_specified).or_else(sps_colour).filter(Colour::is_specified);

    let record = dolby_vision::CONFIG_BOXES.iter().find_map(|kind| find_optional(children, kind).map(|p| (kind, p)));
    let entry = info.sample_entry_type.clone();
    let dv_entry = DOLBY_VISION_TYPES.iter().any(|t| t.as_slice() == entry.as_bytes());
    match record {
        Some((kind, payload)) => match with_context(DolbyVision::parse(payload), &fourcc_str(kind)) {
            Ok(dv) => {
                if dv_entry {
                    info.codec_string = dv.codec_string(&entry);
                }
                info.dolby_vision = Some(dv);
            }
            Err(e) if dv_entry => return Err(e),
            Err(_) => {}
        },
        None if dv_entry => return err(format!("'{entry}' has no Dolby Vision configuration box (dvcC/dvvC)")),
        None => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Audio

/// Looks like a run of boxes: a plausible first header that fits.
fn plausible_children(buf: &[u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    if buf.len() < 8 {
        return buf.iter().all(|&b| b == 0);
    }
    let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let kind_ok = buf[4..8].iter().all(|&b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-' || b == b'.');
    kind_ok && size >= 8 && size <= buf.len()
}

fn describe_audio(kind: FourCC, payload: &[u8]) -> MediaResult<CodecInfo> {
    let name = fourcc_str(&kind);
    let mut c = Cursor::new(payload);
    let fixed = (|| {
        c.skip(6 + 2)?; // reserved, data_reference_index
        let version = c.u16()?; // ISO: reserved; QuickTime: sound sample description version
        c.skip(2 + 4)?; // revision level, vendor
        let channels = c.u16()?;
        c.skip(2 + 2 + 2)?; // samplesize, pre_defined / compression id, packet size
        let rate = c.u32()? >> 16;
        Ok((version, channels, rate))
    })();
    let (version, mut channels, mut sample_rate) = with_context(fixed, &format!("audio sample entry '{name}'"))?;
    let base = c.position();
    let children = match version {
        // QuickTime v1: samplesPerPacket, bytesPerPacket, bytesPerFrame, bytesPerSample.
        // ISO AudioSampleEntryV1 also has version 1 but no extra fields: decide by the bytes.
        1 => {
            let iso = &payload[base..];
            match payload.get(base + 16..) {
                Some(qt) if (iso.is_empty() || !plausible_children(iso)) && plausible_children(qt) => qt,
                _ => iso,
            }
        }
        // QuickTime v2: sizeOfStructOnly u32, audioSampleRate f64, numAudioChannels u32,
        // always7F000000, constBitsPerChannel, formatSpecificFlags, constBytesPerAudioPacket,
        // constLPCMFramesPerAudioPacket.
        2 => {
            let v2 = (|| {
                c.skip(4)?;
                let rate = f64::from_bits(c.u64()?);
                let ch = c.u32()?;
                c.skip(20)?;
                Ok((rate, ch))
            })();
            let (rate, ch) = with_context(v2, &format!("QuickTime v2 sound description '{name}'"))?;
            if rate.is_finite() && rate >= 1.0 && rate <= u32::MAX as f64 {
                sample_rate = rate.round() as u32;
            }
            channels = u16::try_from(ch).unwrap_or(channels);
            c.rest()
        }
        _ => &payload[base..],
    };

    let format = if &kind == b"enca" { original_format(children, kind)? } else { kind };
    let format_name = fourcc_str(&format);
    let mut info = CodecInfo {
        family: CodecFamily::Other,
        sample_entry_type: format_name.clone(),
        codec_string: format_name.clone(),
        sample_rate,
        channels,
        ..CodecInfo::default()
    };
    match &format {
        b"mp4a" => {
            // QuickTime puts esds inside a 'wave' box.
            let esds = match find(children, b"esds")? {
                Some(e) => Some(e),
                None => match find(children, b"wave")? {
                    Some(wave) => find(wave, b"esds")?,
                    None => None,
                },
            };
            let esds = esds.ok_or_else(|| MediaError("'mp4a' has no 'esds' box".into()))?;
            let es = with_context(EsDescriptor::parse(esds), "esds")?;
            info.codec_string = es.codec_string();
            if es.is_aac() {
                info.family = CodecFamily::Aac;
                if let Some(asc) = &es.audio_specific_config {
                    if let Some(rate) = asc.output_rate() {
                        info.sample_rate = rate;
                    }
                    if let Some(n) = asc.output_channels() {
                        info.channels = n;
                    }
                }
                info.config = CodecConfig::Aac(es);
            }
        }
        b"ac-3" => {
            let payload = config_box(children, b"dac3", "ac-3")?;
            let dac3 = with_context(Ac3Config::parse_dac3(payload), "dac3")?;
            info.family = CodecFamily::Ac3;
            info.codec_string = "ac-3".to_string();
            apply_ac3(&mut info, &dac3);
            info.config = CodecConfig::Ac3(dac3);
        }
        b"ec-3" => {
            let payload = config_box(children, b"dec3", "ec-3")?;
            let dec3 = with_context(Ac3Config::parse_dec3(payload), "dec3")?;
            info.family = CodecFamily::Eac3;
            info.codec_string = "ec-3".to_string();
            apply_ac3(&mut info, &dec3);
            info.config = CodecConfig::Eac3(dec3);
        }
        _ => {}
    }
    Ok(info)
}

fn apply_ac3(info: &mut CodecInfo, config: &Ac3Config) {
    if let Some(rate) = config.sample_rate() {
        info.sample_rate = rate;
    }
    info.channels = config.channels_and_map().0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn mkbox(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// The 78 fixed bytes of a visual sample entry.
    fn visual_fixed(width: u16, height: u16) -> Vec<u8> {
        let mut p = vec![0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&width.to_be_bytes());
        p.extend_from_slice(&height.to_be_bytes());
        p.extend_from_slice(&hex("00480000 00480000 00000000 0001"));
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&hex("0018 ffff"));
        p
    }

    /// The 28 fixed bytes of an ISO audio sample entry.
    fn audio_fixed(channels: u16, rate: u16) -> Vec<u8> {
        let mut p = vec![0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&channels.to_be_bytes());
        p.extend_from_slice(&16u16.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&rate.to_be_bytes());
        p.extend_from_slice(&[0; 2]);
        p
    }

    /// An esds box around an AudioSpecificConfig, with 4-byte (0x80-continued) sizes like ffmpeg.
    fn esds(oti: u8, asc: &[u8]) -> Vec<u8> {
        let mut dsi = vec![0x05, 0x80, 0x80, 0x80, asc.len() as u8];
        dsi.extend_from_slice(asc);
        let mut dcd = vec![0x04, 0x80, 0x80, 0x80, (13 + dsi.len()) as u8, oti, 0x15, 0, 0, 0];
        dcd.extend_from_slice(&[0, 1, 0xf4, 0, 0, 1, 0xf4, 0]);
        dcd.extend_from_slice(&dsi);
        let sl = [0x06, 0x80, 0x80, 0x80, 0x01, 0x02];
        let mut es = vec![0x03, 0x80, 0x80, 0x80, (3 + dcd.len() + sl.len()) as u8, 0, 1, 0];
        es.extend_from_slice(&dcd);
        es.extend_from_slice(&sl);
        let mut payload = vec![0, 0, 0, 0];
        payload.extend_from_slice(&es);
        mkbox(b"esds", &payload)
    }

    fn mp4a(channels: u16, rate: u16, asc: &[u8]) -> Vec<u8> {
        let mut p = audio_fixed(channels, rate);
        p.extend_from_slice(&esds(0x40, asc));
        mkbox(b"mp4a", &p)
    }

    // stsd entries extracted from files made by ffmpeg 5.1 (libx264 / libx265 / aac / ac3 / eac3).
    const AVC1_HIGH_31: &str = "000000b161766331000000000000000100000000000000000000000000000000014000b400480000\
        00480000000000000001154c61766335392e33372e313030206c696278323634000000000000000000000018\
        ffff00000037617663430164001fffe1001a6764001facd941419f9f011000000300100000030300f1831960\
        01000668ebe3cb22c0fdf8f800000000107061737000000001000000010000001462747274000000000003971800039718";
    /// The first 23 bytes of a libx265 hvcC (Main, level 2, progressive source), arrays dropped.
    const HVCC_MAIN_HEAD: &str = "0101600000009000000000003cf000fcfdf8f800000f00";
    const MP4A_LC_48K_STEREO: &str = "0000006e6d703461000000000000000100000000000000000002001000000000bb80000000000036\
        65736473000000000380808025000100048080801740150000000001f4000001f2850580808005119056e500\
        0680808001020000001462747274000000000001f4000001f285";
    const AC3_51: &str = "0000004361632d33000000000000000100000000000000000002001000000000bb8000000000000b\
        64616333103de00000001462747274000000000006d6000006d600";
    const EC3_STEREO: &str = "0000004565632d33000000000000000100000000000000000002001000000000bb8000000000000d\
        6465633306002004000000001462747274000000000002ee000002ee00";

    #[test]
    fn avc1_high_31() {
        let info = describe(&hex(AVC1_HIGH_31)).unwrap();
        assert_eq!(info.family, CodecFamily::Avc);
        assert_eq!(info.sample_entry_type, "avc1");
        assert_eq!(info.codec_string, "avc1.64001f");
        assert_eq!((info.width, info.height), (320, 180));
        assert!(info.is_video() && !info.is_audio());
        let CodecConfig::Avc(avc) = &info.config else { panic!("{:?}", info.config) };
        assert_eq!(avc.nal_length_size, 4);
        assert_eq!((avc.sps.len(), avc.sps[0].len(), avc.sps[0][0]), (1, 26, 0x67));
        assert_eq!((avc.pps.len(), avc.pps[0].len(), avc.pps[0][0]), (1, 6, 0x68));
        let sets: Vec<&[u8]> = info.config.parameter_sets().collect();
        assert_eq!(sets, [&avc.sps[0][..], &avc.pps[0][..]]);
    }

    #[test]
    fn avc3_keeps_its_entry_type() {
        let mut entry = hex(AVC1_HIGH_31);
        entry[4..8].copy_from_slice(b"avc3");
        let info = describe(&entry).unwrap();
        assert_eq!(info.sample_entry_type, "avc3");
        assert_eq!(info.codec_string, "avc3.64001f");
    }

    #[test]
    fn truncated_avcc_is_an_error() {
        // avcC with only 2 payload bytes.
        let mut p = visual_fixed(320, 180);
        p.extend_from_slice(&mkbox(b"avcC", &[1, 0x64]));
        assert!(describe(&mkbox(b"avc1", &p)).is_err());
        // avcC whose header claims more bytes than the entry holds.
        let full = hex(AVC1_HIGH_31);
        let mut cut = full[..8 + 78 + 20].to_vec();
        let n = cut.len() as u32;
        cut[0..4].copy_from_slice(&n.to_be_bytes());
        assert!(describe(&cut).is_err());
        // Every prefix of a valid entry: error or value, never a panic.
        for n in 0..full.len() {
            let _ = describe(&full[..n]);
            let mut fixed = full[..n].to_vec();
            if n >= 8 {
                fixed[0..4].copy_from_slice(&(n as u32).to_be_bytes());
                let _ = describe(&fixed);
            }
        }
        // A visual entry cut inside its fixed fields.
        assert!(describe(&mkbox(b"avc1", &[0; 40])).is_err());
    }

    #[test]
    fn avc1_without_avcc_is_an_error() {
        assert!(describe(&mkbox(b"avc1", &visual_fixed(320, 180))).is_err());
    }

    #[test]
    fn hvc1_main() {
        let mut p = visual_fixed(320, 180);
        p.extend_from_slice(&mkbox(b"hvcC", &hex(HVCC_MAIN_HEAD)));
        let info = describe(&mkbox(b"hvc1", &p)).unwrap();
        assert_eq!(info.family, CodecFamily::Hevc);
        assert_eq!(info.codec_string, "hvc1.1.6.L60.90");
        assert_eq!((info.width, info.height), (320, 180));
    }

    #[test]
    fn hev1_main10_high_tier_and_profile_space() {
        // Main 10 (idc 2, compat flag 2), high tier, level 5.1 (153), constraints B0 00 … 00.
        let mut hvcc = hex("01 22 20000000 b00000000000 99");
        hvcc.extend_from_slice(&hex("f000fcfdfafa00000f00"));
        let mut p = visual_fixed(3840, 2160);
        p.extend_from_slice(&mkbox(b"hvcC", &hvcc));
        let info = describe(&mkbox(b"hev1", &p)).unwrap();
        assert_eq!(info.codec_string, "hev1.2.4.H153.B0");
        // profile_space 1 → 'A', and a middle zero constraint byte is kept.
        hvcc[1] = 0x41;
        hvcc[6..12].copy_from_slice(&hex("900080000000"));
        let mut p = visual_fixed(1920, 1080);
        p.extend_from_slice(&mkbox(b"hvcC", &hvcc));
        let info = describe(&mkbox(b"hvc1", &p)).unwrap();
        assert_eq!(info.codec_string, "hvc1.A1.4.L153.90.0.80");
    }

    #[test]
    fn aac_lc_48k_stereo() {
        let info = describe(&hex(MP4A_LC_48K_STEREO)).unwrap();
        assert_eq!(info.family, CodecFamily::Aac);
        assert_eq!(info.codec_string, "mp4a.40.2");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 2);
        assert_eq!(info.config.channel_layout(), Some(ChannelLayout::Mpeg(2)));
        assert!(info.is_audio() && !info.is_video());
        assert_eq!(info.hls_channels().as_deref(), Some("2"));
    }

    #[test]
    fn he_aac_explicit() {
        // AOT 5, core 24 kHz (index 6), stereo, extension 48 kHz (index 3), core AOT 2.
        // 00101 0110 0010 0011 00010 → 2B 11 88 (padded).
        let info = describe(&mp4a(2, 24000, &[0x2b, 0x11, 0x88, 0x00])).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.5");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 2);
    }

    #[test]
    fn he_aac_v2_explicit() {
        // AOT 29, core 24 kHz, mono core (PS → stereo), extension 48 kHz, core AOT 2.
        // 11101 0110 0001 0011 00010 → EB 09 88.
        let info = describe(&mp4a(2, 24000, &[0xeb, 0x09, 0x88])).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.29");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 2);
    }

    #[test]
    fn he_aac_implicit_sync_extension() {
        // AOT 2, 24 kHz, stereo, GASpecificConfig 000, then 0x2b7, AOT 5, sbrPresentFlag 1,
        // extension index 3 (48 kHz).
        // 00010 0110 0010 000 | 01010110111 00101 1 0011 → 13 10 56 E5 98
        let info = describe(&mp4a(2, 24000, &[0x13, 0x10, 0x56, 0xe5, 0x98])).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.5");
        assert_eq!(info.sample_rate, 48000);
        // ffmpeg's real file has the same extension with sbrPresentFlag 0: stays LC.
        let lc = describe(&hex(MP4A_LC_48K_STEREO)).unwrap();
        assert_eq!(lc.codec_string, "mp4a.40.2");
    }

    #[test]
    fn aac_escape_and_explicit_rate_and_entry_channels() {
        // AOT 31 escape: 11111 000010 → AOT 34? Use AOT 42 (xHE-AAC USAC): 31 + 6 bits (10).
        // 11111 001010 1111 <24-bit 48000> 0000 → config 0: channels from the entry.
        let mut bits: u64 = 0b111_1100_1010_1111; // 11111 001010 1111
        bits = (bits << 24) | 48000;
        bits <<= 4;
        // 5 + 6 + 4 + 24 + 4 = 43 bits → pad to 48.
        bits <<= 5;
        let asc = &bits.to_be_bytes()[2..];
        let info = describe(&mp4a(6, 48000, asc)).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.42");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 6);
        assert_eq!(info.config.channel_layout(), None);
    }

    #[test]
    fn mp3_in_mp4() {
        let mut p = audio_fixed(2, 44100);
        p.extend_from_slice(&esds(0x6b, &[]));
        let info = describe(&mkbox(b"mp4a", &p)).unwrap();
        assert_eq!(info.codec_string, "mp4a.6B");
        assert_eq!(info.sample_rate, 44100);
        assert_eq!(info.channels, 2);
    }

    #[test]
    fn truncated_esds_is_an_error() {
        let full = hex(MP4A_LC_48K_STEREO);
        let mut p = full[8..8 + 28].to_vec();
        // esds whose ES_Descriptor claims 0x25 bytes but holds 6.
        p.extend_from_slice(&mkbox(b"esds", &hex("00000000 0380808025 000100 0480")));
        assert!(describe(&mkbox(b"mp4a", &p)).is_err());
        for n in 0..full.len() {
            let mut cut = full[..n].to_vec();
            if n >= 8 {
                cut[0..4].copy_from_slice(&(n as u32).to_be_bytes());
            }
            let _ = describe(&cut);
        }
    }

    #[test]
    fn quicktime_v1_sound_description_with_wave() {
        let full = hex(MP4A_LC_48K_STEREO);
        let esds_box = &full[8 + 28..8 + 28 + 0x36];
        let mut p = full[8..8 + 28].to_vec();
        p[8..10].copy_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&hex("00000400 00001800 00000006 00000002"));
        let mut wave = mkbox(b"frma", b"mp4a");
        wave.extend_from_slice(esds_box);
        p.extend_from_slice(&mkbox(b"wave", &wave));
        let info = describe(&mkbox(b"mp4a", &p)).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.2");
        assert_eq!((info.sample_rate, info.channels), (48000, 2));
    }

    #[test]
    fn quicktime_v2_sound_description() {
        let full = hex(MP4A_LC_48K_STEREO);
        let esds_box = &full[8 + 28..8 + 28 + 0x36];
        let mut p = vec![0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&hex("0002 0000 00000000 0003 0010 fffe 0000 00010000"));
        p.extend_from_slice(&72u32.to_be_bytes());
        p.extend_from_slice(&96000f64.to_bits().to_be_bytes());
        p.extend_from_slice(&2u32.to_be_bytes());
        p.extend_from_slice(&hex("7f000000 00000000 00000000 00000000 00000400"));
        p.extend_from_slice(esds_box);
        let info = describe(&mkbox(b"mp4a", &p)).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.2");
        assert_eq!(info.channels, 2);
        // The ASC says 48 kHz; it wins over the description.
        assert_eq!(info.sample_rate, 48000);
    }

    #[test]
    fn ac3_51() {
        let info = describe(&hex(AC3_51)).unwrap();
        assert_eq!(info.family, CodecFamily::Ac3);
        assert_eq!(info.codec_string, "ac-3");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 6);
        assert_eq!(info.config.channel_layout(), Some(ChannelLayout::Dolby(0xF801)));
        assert_eq!(ChannelLayout::Dolby(0xF801).describe(), "L C R Ls Rs LFE (Dolby map F801)");
        assert_eq!(ChannelLayout::Mpeg(2).describe(), "L R (channelConfiguration 2)");
        assert_eq!(ChannelLayout::Mpeg(13).describe(), "(channelConfiguration 13)");
    }

    #[test]
    fn eac3_stereo() {
        let info = describe(&hex(EC3_STEREO)).unwrap();
        assert_eq!(info.family, CodecFamily::Eac3);
        assert_eq!(info.codec_string, "ec-3");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 2);
        assert_eq!(info.config.channel_layout(), Some(ChannelLayout::Dolby(0xA000)));
        assert_eq!(info.config.joc_complexity(), None);
        assert_eq!(info.hls_channels().as_deref(), Some("2"));
    }

    #[test]
    fn eac3_71_with_dependent_substream_and_joc() {
        // data_rate 768, 1 ind. substream: fscod 0, bsid 16, acmod 7, lfeon 1, 1 dependent
        // substream with chan_loc Lrs/Rrs (bit 1); then JOC flag + complexity 16.
        // 0110000000000 000 | 00 10000 0 0 000 111 1 000 0001 000000010 | 0000000 1 00010000
        // → 60 00 | 20 0F 02 02 | 01 10
        let dec3 = hex("6000 200f 0202 01 10");
        let mut p = audio_fixed(8, 48000);
        p.extend_from_slice(&mkbox(b"dec3", &dec3));
        let info = describe(&mkbox(b"ec-3", &p)).unwrap();
        assert_eq!(info.channels, 8);
        assert_eq!(info.config.channel_layout(), Some(ChannelLayout::Dolby(0xFA01)));
        assert_eq!(info.config.joc_complexity(), Some(16));
        assert_eq!(info.hls_channels().as_deref(), Some("16/JOC"));
        // Truncated dec3.
        let mut p = audio_fixed(2, 48000);
        p.extend_from_slice(&mkbox(b"dec3", &dec3[..3]));
        assert!(describe(&mkbox(b"ec-3", &p)).is_err());
    }

    #[test]
    fn encrypted_entries_describe_the_original_format() {
        let full = hex(AVC1_HIGH_31);
        let mut p = full[8..].to_vec();
        let mut sinf = mkbox(b"frma", b"avc1");
        sinf.extend_from_slice(&mkbox(b"schm", &hex("00000000 63656e63 00010000")));
        p.extend_from_slice(&mkbox(b"sinf", &sinf));
        let info = describe(&mkbox(b"encv", &p)).unwrap();
        assert_eq!(info.sample_entry_type, "avc1");
        assert_eq!(info.codec_string, "avc1.64001f");
        assert_eq!(info.family, CodecFamily::Avc);

        let full = hex(AC3_51);
        let mut p = full[8..].to_vec();
        p.extend_from_slice(&mkbox(b"sinf", &mkbox(b"frma", b"ac-3")));
        let info = describe(&mkbox(b"enca", &p)).unwrap();
        assert_eq!(info.sample_entry_type, "ac-3");
        assert_eq!(info.channels, 6);

        // encv without sinf is an error.
        assert!(describe(&mkbox(b"encv", &full[8..])).is_err());
    }

    /// The first sample entry (header included) of the first track of a fixture file.
    fn fixture_entry(path: &str) -> Vec<u8> {
        use crate::media::mp4::reader::find_path;
        let file = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)).unwrap();
        let stsd = find_path(&file, &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]).unwrap().unwrap();
        let size = u32::from_be_bytes(stsd[8..12].try_into().unwrap()) as usize;
        stsd[8..8 + size].to_vec()
    }

    #[test]
    fn premium_fixtures() {
        // HDR10: colr nclx 9/16/9 (and the same in the SPS VUI), HEVC Main 10.
        let hdr10 = describe(&fixture_entry("hdr10/video_hdr10.mp4")).unwrap();
        assert_eq!(hdr10.codec_string, "hvc1.2.4.L60.90");
        let c = hdr10.colour.unwrap();
        assert_eq!((c.primaries, c.transfer, c.matrix, c.full_range, c.source), (9, 16, 9, false, ColourSource::Colr));
        assert_eq!((hdr10.video_range(), hdr10.supplemental_codecs()), (VideoRange::Pq, None));
        let CodecConfig::Hevc(hevc) = &hdr10.config else { panic!() };
        let sps = hevc.nal_units.iter().find(|n| (n[0] >> 1) & 0x3f == 33).unwrap();
        let vui = slice::sps_colour(sps, true).unwrap();
        assert_eq!((vui.primaries, vui.transfer, vui.matrix, vui.source), (9, 16, 9, ColourSource::Vui));

        // Without the colr box the VUI answers.
        let mut entry = fixture_entry("hlg/video_hlg.mp4");
        let at = entry.windows(4).position(|w| w == b"colr").unwrap() - 4;
        entry[at + 4..at + 8].copy_from_slice(b"free");
        let hlg = describe(&entry).unwrap();
        let c = hlg.colour.unwrap();
        assert_eq!((c.transfer, c.source, hlg.video_range()), (18, ColourSource::Vui, VideoRange::Hlg));

        let av1 = describe(&fixture_entry("av1/video_av1.mp4")).unwrap();
        assert_eq!((av1.family, av1.codec_string.as_str(), av1.colour), (CodecFamily::Av1, "av01.0.00M.08", None));
        assert!(av1.is_video() && av1.ts_refusal().is_some());
        assert_eq!(av1.video_range(), VideoRange::Sdr);
        let avc = describe(&fixture_entry("av1/video_avc.mp4")).unwrap();
        assert_eq!((avc.colour, avc.video_range(), avc.ts_refusal()), (None, VideoRange::Sdr, None));

        // Dolby Vision 8.1 / 8.4: HEVC CODECS, Dolby Vision supplemental; 5: dvh1 CODECS.
        let dv81 = describe(&fixture_entry("dolby-vision/video_dv81.mp4")).unwrap();
        assert_eq!(dv81.codec_string, "hvc1.2.4.L60.90");
        assert_eq!(dv81.supplemental_codecs().as_deref(), Some("dvh1.08.01/db1p"));
        assert_eq!(dv81.video_range(), VideoRange::Pq);
        let dv84 = describe(&fixture_entry("dolby-vision/video_dv84.mp4")).unwrap();
        assert_eq!(dv84.supplemental_codecs().as_deref(), Some("dvh1.08.01/db4h"));
        assert_eq!(dv84.video_range(), VideoRange::Hlg);
        let dv5 = describe(&fixture_entry("dolby-vision/video_dv5.mp4")).unwrap();
        assert_eq!((dv5.family, dv5.sample_entry_type.as_str()), (CodecFamily::Hevc, "dvh1"));
        assert_eq!((dv5.codec_string.as_str(), dv5.supplemental_codecs()), ("dvh1.05.01", None));
        assert_eq!(dv5.dolby_vision.unwrap().profile_name(), "5");
        assert!(dv5.config.parameter_sets().count() >= 3, "VPS, SPS, PPS (and SEI) from the hvcC");
        // A profile 5 stream without a colour description is still PQ.
        let mut bare = dv5.clone();
        bare.colour = None;
        assert_eq!(bare.video_range(), VideoRange::Pq);

        // Dolby Vision profile 10 on AV1: a `dav1` entry is its Dolby Vision string; `av01` +
        // dvvC (10.2) keeps the AV1 one.
        let dv10 = describe(&fixture_entry("dolby-vision-av1/video_dv10.mp4")).unwrap();
        assert_eq!(
            (dv10.family, dv10.codec_string.as_str(), dv10.supplemental_codecs()),
            (CodecFamily::Av1, "dav1.10.01", None)
        );
        let dv102 = describe(&fixture_entry("dolby-vision-av1/video_dv102.mp4")).unwrap();
        assert_eq!(dv102.codec_string, "av01.0.00M.08");
        assert_eq!(dv102.supplemental_codecs().as_deref(), Some("dav1.10.01/db2g"));
        assert_eq!(dv102.video_range(), VideoRange::Sdr);

        // E-AC-3 JOC: 16 objects.
        let atmos = describe(&fixture_entry("dolby-vision/audio_atmos.mp4")).unwrap();
        assert_eq!((atmos.codec_string.as_str(), atmos.hls_channels().as_deref()), ("ec-3", Some("16/JOC")));
    }

    #[test]
    fn optional_boxes_never_make_a_track_unreadable() {
        // Junk after the hvcC, and a truncated dvvC on an hvc1 entry: still HEVC, no record.
        let mut entry = fixture_entry("dolby-vision/video_dv81.mp4");
        let at = entry.windows(4).position(|w| w == b"dvvC").unwrap() - 4;
        entry.truncate(at + 8 + 2);
        entry[at..at + 4].copy_from_slice(&10u32.to_be_bytes());
        entry.extend_from_slice(&[0xff, 0xff, 0xff]);
        let n = entry.len() as u32;
        entry[0..4].copy_from_slice(&n.to_be_bytes());
        let info = describe(&entry).unwrap();
        assert_eq!((info.codec_string.as_str(), info.dolby_vision), ("hvc1.2.4.L60.90", None));
        assert_eq!(info.video_range(), VideoRange::Pq, "the colr box before the junk is read");
    }

    #[test]
    fn dolby_vision_entries_need_their_record() {
        let entry = fixture_entry("dolby-vision/video_dv5.mp4");
        let mut no_record = entry.clone();
        let at = no_record.windows(4).position(|w| w == b"dvcC").unwrap();
        no_record[at..at + 4].copy_from_slice(b"free");
        let e = describe(&no_record).unwrap_err();
        assert!(e.0.contains("Dolby Vision configuration"), "{e:?}");
        // A truncated record is an error naming the box; every cut of the entry is handled.
        let mut short = entry.clone();
        let size_at = at - 4;
        short.truncate(size_at + 8 + 2);
        short[size_at..size_at + 4].copy_from_slice(&10u32.to_be_bytes());
        let n = short.len() as u32;
        short[0..4].copy_from_slice(&n.to_be_bytes());
        assert!(describe(&short).unwrap_err().0.contains("dvcC"));
        for n in 0..entry.len() {
            let mut cut = entry[..n].to_vec();
            if n >= 8 {
                cut[0..4].copy_from_slice(&(n as u32).to_be_bytes());
            }
            let _ = describe(&cut);
        }
    }

    #[test]
    fn text_and_unknown_entries() {
        for t in [b"wvtt", b"stpp", b"tx3g", b"zzzz"] {
            let info = describe(&mkbox(t, &[0, 0, 0, 0, 0, 0, 0, 1])).unwrap();
            assert_eq!(info.family, CodecFamily::Other);
            assert_eq!(info.codec_string.as_bytes(), t);
            assert_eq!(info.sample_entry_type.as_bytes(), t);
        }
        assert!(describe(&[]).is_err());
        assert!(describe(&[0, 0, 0]).is_err());
    }
}
