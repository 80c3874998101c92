//! MPEG-4 audio in `mp4a`: the `esds` box (ISO/IEC 14496-1 ES_Descriptor →
//! DecoderConfigDescriptor → DecoderSpecificInfo), the AudioSpecificConfig of ISO/IEC 14496-3
//! §1.6.2.1 in it, and the ADTS header (ISO/IEC 13818-7 §6.2) a transport stream carries AAC
//! frames with.

use crate::media::bits::BitReader;
use crate::media::mp4::reader::Cursor;
use crate::media::{err, MediaError, MediaResult};

/// Sample rates of the AAC samplingFrequencyIndex (ISO/IEC 14496-3 Table 1.18).
const AAC_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Largest AAC frame an ADTS header can describe (13-bit frame_length includes the header).
const MAX_ADTS_FRAME: usize = 0x1FFF - 7;

/// What an `esds` tells about an `mp4a` track.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EsDescriptor {
    /// The DecoderConfigDescriptor's objectTypeIndication: 0x40 MPEG-4 audio, 0x66–0x68
    /// MPEG-2 AAC, 0x69 / 0x6B MP3, …
    pub object_type_indication: u8,
    /// The DecoderSpecificInfo of AAC, when present and readable (always for 0x40).
    pub audio_specific_config: Option<AudioSpecificConfig>,
    /// The bytes of that AudioSpecificConfig, as decoders outside MP4 take it (Smooth
    /// `CodecPrivateData`); empty when there is none.
    pub audio_specific_config_bytes: Vec<u8>,
}

impl EsDescriptor {
    /// Parses an `esds` payload. MPEG-4 audio (0x40) must carry a valid AudioSpecificConfig;
    /// for MPEG-2 AAC it is optional and an unreadable one is ignored.
    pub fn parse(esds: &[u8]) -> MediaResult<EsDescriptor> {
        let mut c = Cursor::new(esds);
        c.full_box()?;
        let (tag, es) = descriptor(&mut c)?;
        if tag != 0x03 {
            return err(format!("expected ES_Descriptor (tag 3), found tag {tag}"));
        }
        let mut c = Cursor::new(es);
        c.skip(2)?; // ES_ID
        let flags = c.u8()?;
        if flags & 0x80 != 0 {
            c.skip(2)?; // dependsOn_ES_ID
        }
        if flags & 0x40 != 0 {
            let url_len = c.u8()?;
            c.skip(usize::from(url_len))?;
        }
        if flags & 0x20 != 0 {
            c.skip(2)?; // OCR_ES_Id
        }
        let dcd = find_descriptor(c.rest(), 0x04)?
            .ok_or_else(|| MediaError("ES_Descriptor has no DecoderConfigDescriptor".into()))?;
        let mut c = Cursor::new(dcd);
        let object_type_indication = c.u8()?;
        c.skip(1 + 3 + 4 + 4)?; // streamType/upStream, bufferSizeDB, maxBitrate, avgBitrate
        let dsi = find_descriptor(c.rest(), 0x05)?;
        let audio_specific_config = match object_type_indication {
            0x40 => {
                let dsi = dsi.ok_or_else(|| MediaError("MPEG-4 audio without DecoderSpecificInfo".into()))?;
                let asc =
                    AudioSpecificConfig::parse(dsi).map_err(|e| MediaError(format!("AudioSpecificConfig: {e}")))?;
                Some(asc)
            }
            0x66..=0x68 => dsi.and_then(|dsi| AudioSpecificConfig::parse(dsi).ok()),
            _ => None,
        };
        let audio_specific_config_bytes = match (&audio_specific_config, dsi) {
            (Some(_), Some(dsi)) => dsi.to_vec(),
            _ => Vec::new(),
        };
        Ok(EsDescriptor { object_type_indication, audio_specific_config, audio_specific_config_bytes })
    }

    /// MPEG-4 audio or MPEG-2 AAC (as opposed to MP3 and the rest).
    pub fn is_aac(&self) -> bool {
        matches!(self.object_type_indication, 0x40 | 0x66..=0x68)
    }

    /// `mp4a.40.2`, `mp4a.40.5`, `mp4a.40.29`, `mp4a.67`, `mp4a.6B`…
    pub fn codec_string(&self) -> String {
        match (self.object_type_indication, &self.audio_specific_config) {
            (0x40, Some(asc)) => format!("mp4a.40.{}", asc.codec_object_type()),
            (oti, _) => format!("mp4a.{oti:02X}"),
        }
    }
}

/// Reads one ISO/IEC 14496-1 descriptor header: tag and the 1–4 byte size (7 bits per byte,
/// high bit = more bytes follow). Returns the tag and the descriptor body.
fn descriptor<'a>(c: &mut Cursor<'a>) -> MediaResult<(u8, &'a [u8])> {
    let tag = c.u8()?;
    let mut len: usize = 0;
    for i in 0..4 {
        let b = c.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return err("descriptor size longer than 4 bytes");
        }
    }
    let body = c
        .bytes(len)
        .map_err(|_| MediaError(format!("descriptor 0x{tag:02x} declares {len} bytes, has {}", c.remaining())))?;
    Ok((tag, body))
}

/// Finds the first descriptor with `tag` in a run of descriptors.
fn find_descriptor(buf: &[u8], tag: u8) -> MediaResult<Option<&[u8]>> {
    let mut c = Cursor::new(buf);
    while c.remaining() > 0 {
        // Some writers pad with zero bytes after the last descriptor.
        if c.rest().iter().all(|&b| b == 0) {
            break;
        }
        let (t, body) = descriptor(&mut c)?;
        if t == tag {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// A samplingFrequencyIndex, or the explicit 24-bit samplingFrequency after the escape index 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingFrequency {
    Index(u8),
    Explicit(u32),
}

impl SamplingFrequency {
    fn read(b: &mut BitReader) -> Option<SamplingFrequency> {
        let index = b.read(4)? as u8;
        Some(if index == 0xf { SamplingFrequency::Explicit(b.read(24)?) } else { SamplingFrequency::Index(index) })
    }

    /// In Hz; `None` for the reserved indexes 13 and 14.
    pub fn hz(self) -> Option<u32> {
        match self {
            SamplingFrequency::Index(i) => AAC_RATES.get(usize::from(i)).copied(),
            SamplingFrequency::Explicit(hz) => Some(hz),
        }
    }

    /// The index an ADTS header needs (an explicit frequency mapped back to its index).
    fn adts_index(self) -> MediaResult<u8> {
        match self {
            SamplingFrequency::Index(i) if i > 12 => err(format!("reserved AAC samplingFrequencyIndex {i}")),
            SamplingFrequency::Index(i) => Ok(i),
            SamplingFrequency::Explicit(hz) => match AAC_RATES.iter().position(|&r| r == hz) {
                Some(i) => Ok(i as u8),
                None => err(format!("AAC sampling frequency {hz} Hz has no ADTS index")),
            },
        }
    }
}

/// An AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1): the parts the manifests and ADTS need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The core audio object type (2 = AAC LC under HE-AAC).
    pub object_type: u8,
    /// The core sampling frequency.
    pub frequency: SamplingFrequency,
    pub channel_config: u8,
    pub sbr: bool,
    pub ps: bool,
    /// The SBR output sampling frequency, when signalled.
    pub extension_frequency: Option<SamplingFrequency>,
}

fn audio_object_type(b: &mut BitReader) -> Option<u8> {
    let aot = b.read(5)?;
    let aot = if aot == 31 { 32 + b.read(6)? } else { aot };
    Some(aot as u8)
}

impl AudioSpecificConfig {
    pub fn parse(buf: &[u8]) -> MediaResult<Self> {
        Self::read(&mut BitReader::new(buf)).ok_or_else(|| MediaError("truncated".into()))
    }

    fn read(b: &mut BitReader) -> Option<Self> {
        let object_type = audio_object_type(b)?;
        let frequency = SamplingFrequency::read(b)?;
        let channel_config = b.read(4)? as u8;
        let mut asc = AudioSpecificConfig {
            object_type,
            frequency,
            channel_config,
            sbr: false,
            ps: false,
            extension_frequency: None,
        };
        if object_type == 5 || object_type == 29 {
            // Explicit hierarchical signalling of SBR (and PS).
            asc.sbr = true;
            asc.ps = object_type == 29;
            asc.extension_frequency = Some(SamplingFrequency::read(b)?);
            asc.object_type = audio_object_type(b)?;
            return Some(asc);
        }
        // Backward-compatible implicit signalling: a sync extension after the
        // GASpecificConfig. Only read it in the simple case (AAC LC, no program config
        // element); anything unexpected just means "no extension".
        if object_type == 2 && channel_config != 0 {
            let _ = asc.read_sync_extension(b);
        }
        Some(asc)
    }

    fn read_sync_extension(&mut self, b: &mut BitReader) -> Option<()> {
        // GASpecificConfig for AOT 2: frameLengthFlag, dependsOnCoreCoder, extensionFlag.
        b.read(1)?;
        if b.flag()? {
            b.read(14)?; // coreCoderDelay
        }
        if b.flag()? {
            b.read(1)?; // extensionFlag3 (only AOTs 17/19/20/22/23 have more)
        }
        if b.bits_left() < 16 || b.read(11)? != 0x2b7 {
            return Some(());
        }
        if audio_object_type(b)? != 5 {
            return Some(());
        }
        if !b.flag()? {
            return Some(()); // sbrPresentFlag = 0: plain AAC LC
        }
        let frequency = SamplingFrequency::read(b)?;
        self.sbr = true;
        self.extension_frequency = Some(frequency);
        if b.bits_left() >= 12 && b.read(11)? == 0x548 && b.flag()? {
            self.ps = true;
        }
        Some(())
    }

    /// The object type for the RFC 6381 string: 29 with PS, 5 with SBR, else the core type.
    pub fn codec_object_type(&self) -> u8 {
        if self.ps {
            29
        } else if self.sbr {
            5
        } else {
            self.object_type
        }
    }

    pub fn output_rate(&self) -> Option<u32> {
        let core = self.frequency.hz();
        if self.sbr {
            self.extension_frequency.and_then(SamplingFrequency::hz).or(core.map(|r| r * 2))
        } else {
            core
        }
    }

    pub fn output_channels(&self) -> Option<u16> {
        let n = match self.channel_config {
            1..=6 => u16::from(self.channel_config),
            7 => 8,
            11 => 7,
            12 | 14 => 8,
            13 => 24,
            _ => return None,
        };
        // Parametric stereo turns a mono core into stereo output.
        Some(if self.ps && n == 1 { 2 } else { n })
    }

    /// The ADTS fields: for HE-AAC (v1/v2) the core object type and the core sampling
    /// frequency, so decoders find SBR/PS implicitly (as ffmpeg's ADTS muxer does).
    pub fn adts(&self) -> MediaResult<AdtsConfig> {
        let sampling_index = self.frequency.adts_index()?;
        let aot = self.object_type;
        if !(1..=4).contains(&aot) {
            return err(format!("AAC object type {aot} cannot be carried in ADTS"));
        }
        let channel_config = self.channel_config;
        if channel_config == 0 || channel_config > 7 {
            return err(format!(
                "AAC channelConfiguration {channel_config} (program config element) is not supported in ADTS"
            ));
        }
        Ok(AdtsConfig { profile: aot - 1, sampling_index, channel_config })
    }
}

/// What the ADTS header needs from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsConfig {
    /// ADTS profile: audio object type − 1 of the core codec (1 = AAC LC).
    pub profile: u8,
    pub sampling_index: u8,
    pub channel_config: u8,
}

impl AdtsConfig {
    /// The 7-byte ADTS header (ISO/IEC 13818-7 §6.2, no CRC) of a raw frame of `frame_len` bytes.
    pub fn header(&self, frame_len: usize) -> MediaResult<[u8; 7]> {
        if frame_len > MAX_ADTS_FRAME {
            return err(format!("AAC frame of {frame_len} bytes is too long for ADTS"));
        }
        let full = frame_len + 7;
        Ok([
            0xFF,
            0xF1, // syncword end, MPEG-4, layer 0, protection_absent
            (self.profile << 6) | ((self.sampling_index & 0xF) << 2) | ((self.channel_config >> 2) & 1),
            ((self.channel_config & 3) << 6) | ((full >> 11) as u8 & 0x3),
            (full >> 3) as u8,
            (((full & 7) as u8) << 5) | 0x1F, // buffer fullness 0x7FF (VBR), high bits
            0xFC,                             // buffer fullness low bits, one raw data block
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adts(asc: &[u8]) -> MediaResult<AdtsConfig> {
        AudioSpecificConfig::parse(asc)?.adts()
    }

    #[test]
    fn adts_header_fields() {
        // AAC-LC 48 kHz stereo.
        let cfg = adts(&[0x11, 0x90]).unwrap();
        assert_eq!(cfg, AdtsConfig { profile: 1, sampling_index: 3, channel_config: 2 });
        let h = cfg.header(300).unwrap();
        let bits = u64::from_be_bytes([0, h[0], h[1], h[2], h[3], h[4], h[5], h[6]]);
        let field = |from: u32, len: u32| (bits >> (56 - from - len)) & ((1 << len) - 1);
        assert_eq!(field(0, 12), 0xFFF, "syncword");
        assert_eq!(field(12, 1), 0, "MPEG-4");
        assert_eq!(field(13, 2), 0, "layer");
        assert_eq!(field(15, 1), 1, "protection_absent");
        assert_eq!(field(16, 2), 1, "profile = AOT 2 - 1");
        assert_eq!(field(18, 4), 3, "48 kHz");
        assert_eq!(field(23, 3), 2, "channels");
        assert_eq!(field(30, 13), 307, "frame_length includes the header");
        assert_eq!(field(43, 11), 0x7FF, "buffer fullness");
        assert_eq!(field(54, 2), 0, "one raw data block");
        // 5.1 (channel configuration 6, 44.1 kHz).
        let cfg = adts(&[0x12, 0x30]).unwrap();
        assert_eq!(cfg, AdtsConfig { profile: 1, sampling_index: 4, channel_config: 6 });
        let h = cfg.header(8000).unwrap();
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 6);
        assert!(cfg.header(8185).is_err(), "frame_length is 13 bits");
        // HE-AAC v1, explicit: AOT 5, 24 kHz core (index 6), stereo, 48 kHz SBR (index 3), core AOT 2.
        // 00101 0110 0010 0011 00010 → 0x2B 0x11 0x88 (padded).
        let cfg = adts(&[0x2B, 0x11, 0x88]).unwrap();
        assert_eq!(cfg, AdtsConfig { profile: 1, sampling_index: 6, channel_config: 2 });
        // HE-AAC v2 (AOT 29), mono core.
        // 11101 0110 0001 0011 00010 → 0xEB 0x09 0x88
        let cfg = adts(&[0xEB, 0x09, 0x88]).unwrap();
        assert_eq!(cfg, AdtsConfig { profile: 1, sampling_index: 6, channel_config: 1 });
        // Explicit 24-bit frequency maps back to its index; unknown frequencies are errors.
        // AOT 2, index 15, 48000 = 0x00BB80, channels 2.
        let asc = [0x17, 0x80, 0x5D, 0xC0, 0x10];
        assert_eq!(adts(&asc).unwrap().sampling_index, 3);
        assert!(adts(&[0x17, 0x80, 0x5D, 0xC8, 0x10]).is_err());
        // Program config element (channel configuration 0) and non-AAC object types.
        assert!(adts(&[0x11, 0x80]).is_err());
        assert!(adts(&[0x3A, 0x10]).is_err(), "AOT 7 (TwinVQ)");
        assert!(adts(&[0x11]).is_err(), "truncated");
    }
}
