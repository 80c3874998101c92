//! Codec facts from sample entries: RFC 6381 codec strings, picture size, audio layout.
//!
//! [`describe`] takes one whole sample-entry box from `stsd` (header included) and reads the
//! fixed sample-entry fields plus the codec configuration child box:
//!
//! - `avcC` (ISO/IEC 14496-15 §5.3.3) → `avc1.PPCCLL`
//! - `hvcC` (ISO/IEC 14496-15 §8.3.3, codec string per Annex E) → `hvc1.1.6.L93.B0`
//! - `esds` (ISO/IEC 14496-1 ES_Descriptor → DecoderConfigDescriptor → AudioSpecificConfig of
//!   ISO/IEC 14496-3 §1.6.2.1) → `mp4a.40.2`, `mp4a.40.5`, `mp4a.40.29`, `mp4a.6B`…
//! - `dac3` / `dec3` (ETSI TS 102 366 Annex F) → `ac-3` / `ec-3`
//! - `wvtt`, `stpp` → themselves; `encv`/`enca` are described as their `sinf/frma` format.
//!
//! Unknown sample entries are not an error: they come back as [`CodecFamily::Other`] with the
//! four-character code as codec string.

use serde::Serialize;

use crate::media::mp4::reader::{boxes, err, find, Cursor, ParseError, ParseResult};
use crate::media::mp4::{fourcc_str, FourCC};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum CodecFamily {
    Avc,
    Hevc,
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
}

/// Audio layout details beyond [`CodecInfo`], for DASH `AudioChannelConfiguration` and HLS
/// `CHANNELS`. (Kept out of `CodecInfo` so existing struct literals stay valid.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub struct AudioLayout {
    /// When the configuration box tells it: AAC with a non-zero channelConfiguration, AC-3,
    /// E-AC-3.
    pub channel_layout: Option<ChannelLayout>,
    /// E-AC-3 with Joint Object Coding (Dolby Atmos): the `complexity_index_type_a` of `dec3`.
    pub joc_complexity: Option<u8>,
}

impl AudioLayout {
    /// The value for HLS `CHANNELS`: the channel count, or `16/JOC` for E-AC-3 JOC (Atmos).
    pub fn hls_channels(&self, info: &CodecInfo) -> String {
        match self.joc_complexity {
            Some(_) => "16/JOC".to_string(),
            None => info.channels.to_string(),
        }
    }
}

impl CodecInfo {
    pub fn is_video(&self) -> bool {
        matches!(self.family, CodecFamily::Avc | CodecFamily::Hevc) || self.width > 0
    }

    pub fn is_audio(&self) -> bool {
        matches!(self.family, CodecFamily::Aac | CodecFamily::Ac3 | CodecFamily::Eac3) || self.sample_rate > 0
    }
}

const VISUAL_TYPES: &[&FourCC] =
    &[b"avc1", b"avc3", b"hvc1", b"hev1", b"encv", b"dvh1", b"dvhe", b"vp09", b"av01", b"mp4v"];
const AUDIO_TYPES: &[&FourCC] = &[b"mp4a", b"ac-3", b"ec-3", b"enca", b"Opus", b"fLaC", b"ac-4", b".mp3"];

/// Describes one sample-entry box from `stsd` (8-byte header + payload).
pub fn describe(sample_entry: &[u8]) -> ParseResult<CodecInfo> {
    describe_with_layout(sample_entry).map(|(info, _)| info)
}

/// [`describe`] plus the audio channel layout (default for video, text and unknown entries).
pub fn describe_with_layout(sample_entry: &[u8]) -> ParseResult<(CodecInfo, AudioLayout)> {
    let entry = match boxes(sample_entry).next() {
        Some(b) => b?,
        None => return err("empty sample entry"),
    };
    let kind = entry.kind;
    let payload = entry.payload;
    if VISUAL_TYPES.contains(&&kind) {
        Ok((describe_visual(kind, payload)?, AudioLayout::default()))
    } else if AUDIO_TYPES.contains(&&kind) {
        let mut layout = AudioLayout::default();
        let info = describe_audio(kind, payload, &mut layout)?;
        Ok((info, layout))
    } else {
        let name = fourcc_str(&kind);
        let info = CodecInfo {
            family: CodecFamily::Other,
            sample_entry_type: name.clone(),
            codec_string: name,
            ..CodecInfo::default()
        };
        Ok((info, AudioLayout::default()))
    }
}

fn with_context<T>(r: ParseResult<T>, what: &str) -> ParseResult<T> {
    r.map_err(|e| ParseError(format!("{what}: {e}")))
}

/// The original format of a protected sample entry, from `sinf/frma`.
fn original_format(children: &[u8], kind: FourCC) -> ParseResult<FourCC> {
    let sinf =
        find(children, b"sinf")?.ok_or_else(|| ParseError(format!("'{}' has no 'sinf' box", fourcc_str(&kind))))?;
    let frma = find(sinf, b"frma")?.ok_or_else(|| ParseError("'sinf' has no 'frma' box".into()))?;
    with_context(Cursor::new(frma).fourcc(), "frma")
}

// ---------------------------------------------------------------------------------------------
// Video

fn describe_visual(kind: FourCC, payload: &[u8]) -> ParseResult<CodecInfo> {
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
            let avcc =
                find(children, b"avcC")?.ok_or_else(|| ParseError(format!("'{format_name}' has no 'avcC' box")))?;
            info.family = CodecFamily::Avc;
            info.codec_string = with_context(avc_codec_string(&format_name, avcc), "avcC")?;
        }
        b"hvc1" | b"hev1" => {
            let hvcc =
                find(children, b"hvcC")?.ok_or_else(|| ParseError(format!("'{format_name}' has no 'hvcC' box")))?;
            info.family = CodecFamily::Hevc;
            info.codec_string = with_context(hevc_codec_string(&format_name, hvcc), "hvcC")?;
        }
        _ => {}
    }
    Ok(info)
}

/// `avc1.PPCCLL` from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
fn avc_codec_string(entry: &str, avcc: &[u8]) -> ParseResult<String> {
    let mut c = Cursor::new(avcc);
    let version = c.u8()?;
    if version != 1 {
        return err(format!("unsupported configurationVersion {version}"));
    }
    let profile = c.u8()?;
    let constraints = c.u8()?;
    let level = c.u8()?;
    Ok(format!("{entry}.{profile:02x}{constraints:02x}{level:02x}"))
}

/// The HEVC codec string of ISO/IEC 14496-15 Annex E from an HEVCDecoderConfigurationRecord.
fn hevc_codec_string(entry: &str, hvcc: &[u8]) -> ParseResult<String> {
    let mut c = Cursor::new(hvcc);
    let version = c.u8()?;
    if version != 1 {
        return err(format!("unsupported configurationVersion {version}"));
    }
    let b = c.u8()?;
    let profile_space = b >> 6;
    let tier = (b >> 5) & 1;
    let profile_idc = b & 0x1f;
    let compat = c.u32()?;
    let constraints = c.bytes(6)?;
    let level_idc = c.u8()?;

    let mut s = String::from(entry);
    s.push('.');
    match profile_space {
        1 => s.push('A'),
        2 => s.push('B'),
        3 => s.push('C'),
        _ => {}
    }
    s.push_str(&profile_idc.to_string());
    // general_profile_compatibility_flags in reverse bit order, hex, no leading zeros.
    s.push_str(&format!(".{:X}", compat.reverse_bits()));
    s.push_str(&format!(".{}{}", if tier == 1 { 'H' } else { 'L' }, level_idc));
    let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    for byte in &constraints[..used] {
        s.push_str(&format!(".{byte:X}"));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Audio

/// Sample rates of the AAC samplingFrequencyIndex (ISO/IEC 14496-3 Table 1.18).
const AAC_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/// AC-3 fscod → sample rate (ETSI TS 102 366 §4.4.1.3).
const AC3_RATES: [u32; 3] = [48000, 44100, 32000];
/// AC-3 acmod → full-bandwidth channel count.
const ACMOD_CHANNELS: [u16; 8] = [2, 1, 2, 3, 3, 4, 4, 5];
/// AC-3 acmod → Dolby channel map (Table E.1.4 bits: L C R Ls Rs Lc/Rc Lrs/Rrs Cs …).
const ACMOD_CHANMAP: [u16; 8] = [0xA000, 0x4000, 0xA000, 0xE000, 0xA100, 0xE100, 0xB800, 0xF800];
const CHANMAP_LFE: u16 = 0x0001;

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

fn describe_audio(kind: FourCC, payload: &[u8], layout: &mut AudioLayout) -> ParseResult<CodecInfo> {
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
            let esds = esds.ok_or_else(|| ParseError("'mp4a' has no 'esds' box".into()))?;
            with_context(apply_esds(esds, &mut info, layout), "esds")?;
        }
        b"ac-3" => {
            let dac3 = find(children, b"dac3")?.ok_or_else(|| ParseError("'ac-3' has no 'dac3' box".into()))?;
            with_context(apply_dac3(dac3, &mut info, layout), "dac3")?;
        }
        b"ec-3" => {
            let dec3 = find(children, b"dec3")?.ok_or_else(|| ParseError("'ec-3' has no 'dec3' box".into()))?;
            with_context(apply_dec3(dec3, &mut info, layout), "dec3")?;
        }
        _ => {}
    }
    Ok(info)
}

/// Reads one ISO/IEC 14496-1 descriptor header: tag and the 1–4 byte size (7 bits per byte,
/// high bit = more bytes follow). Returns the tag and the descriptor body.
fn descriptor<'a>(c: &mut Cursor<'a>) -> ParseResult<(u8, &'a [u8])> {
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
        .map_err(|_| ParseError(format!("descriptor 0x{tag:02x} declares {len} bytes, has {}", c.remaining())))?;
    Ok((tag, body))
}

/// Finds the first descriptor with `tag` in a run of descriptors.
fn find_descriptor(buf: &[u8], tag: u8) -> ParseResult<Option<&[u8]>> {
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

fn apply_esds(esds: &[u8], info: &mut CodecInfo, layout: &mut AudioLayout) -> ParseResult<()> {
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
        .ok_or_else(|| ParseError("ES_Descriptor has no DecoderConfigDescriptor".into()))?;
    let mut c = Cursor::new(dcd);
    let oti = c.u8()?;
    c.skip(1 + 3 + 4 + 4)?; // streamType/upStream, bufferSizeDB, maxBitrate, avgBitrate
    let dsi = find_descriptor(c.rest(), 0x05)?;

    match oti {
        0x40 => {
            info.family = CodecFamily::Aac;
            let dsi = dsi.ok_or_else(|| ParseError("MPEG-4 audio without DecoderSpecificInfo".into()))?;
            let asc = with_context(AudioSpecificConfig::parse(dsi), "AudioSpecificConfig")?;
            info.codec_string = format!("mp4a.40.{}", asc.codec_object_type());
            if let Some(rate) = asc.output_rate() {
                info.sample_rate = rate;
            }
            if let Some(n) = asc.output_channels() {
                info.channels = n;
            }
            if asc.channel_config != 0 {
                layout.channel_layout = Some(ChannelLayout::Mpeg(asc.channel_config));
            }
        }
        // MPEG-2 AAC Main / LC / SSR profiles.
        0x66..=0x68 => {
            info.family = CodecFamily::Aac;
            info.codec_string = format!("mp4a.{oti:02X}");
            if let Some(Ok(asc)) = dsi.map(AudioSpecificConfig::parse) {
                if let Some(rate) = asc.output_rate() {
                    info.sample_rate = rate;
                }
                if let Some(n) = asc.output_channels() {
                    info.channels = n;
                }
            }
        }
        // 0x69 MPEG-2 audio (MP3 LSF), 0x6B MPEG-1 audio (MP3), and anything else.
        _ => {
            info.family = CodecFamily::Other;
            info.codec_string = format!("mp4a.{oti:02X}");
        }
    }
    Ok(())
}

/// An MSB-first bit reader over a byte slice.
struct Bits<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Bits { buf, pos: 0 }
    }
    fn left(&self) -> usize {
        self.buf.len() * 8 - self.pos
    }
    fn read(&mut self, n: usize) -> ParseResult<u32> {
        if n > 32 {
            return err("bit field wider than 32 bits");
        }
        if n > self.left() {
            return err(format!("needs {n} more bits, has {}", self.left()));
        }
        let mut v: u32 = 0;
        for _ in 0..n {
            let byte = self.buf[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }
    fn flag(&mut self) -> ParseResult<bool> {
        Ok(self.read(1)? == 1)
    }
}

/// The parts of an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) that the manifests need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AudioSpecificConfig {
    /// The core audio object type (2 = AAC LC under HE-AAC).
    object_type: u8,
    sample_rate: Option<u32>,
    channel_config: u8,
    sbr: bool,
    ps: bool,
    /// The SBR output sample rate, when signalled.
    extension_rate: Option<u32>,
}

fn audio_object_type(b: &mut Bits) -> ParseResult<u8> {
    let aot = b.read(5)?;
    let aot = if aot == 31 { 32 + b.read(6)? } else { aot };
    Ok(aot as u8)
}

fn sampling_frequency(b: &mut Bits) -> ParseResult<Option<u32>> {
    let index = b.read(4)?;
    if index == 0xf {
        return Ok(Some(b.read(24)?));
    }
    Ok(AAC_RATES.get(index as usize).copied())
}

impl AudioSpecificConfig {
    fn parse(buf: &[u8]) -> ParseResult<Self> {
        let mut b = Bits::new(buf);
        let mut object_type = audio_object_type(&mut b)?;
        let sample_rate = sampling_frequency(&mut b)?;
        let channel_config = b.read(4)? as u8;
        let mut asc = AudioSpecificConfig {
            object_type,
            sample_rate,
            channel_config,
            sbr: false,
            ps: false,
            extension_rate: None,
        };
        if object_type == 5 || object_type == 29 {
            // Explicit hierarchical signalling of SBR (and PS).
            asc.sbr = true;
            asc.ps = object_type == 29;
            asc.extension_rate = sampling_frequency(&mut b)?;
            object_type = audio_object_type(&mut b)?;
            asc.object_type = object_type;
            return Ok(asc);
        }
        // Backward-compatible implicit signalling: a sync extension after the
        // GASpecificConfig. Only read it in the simple case (AAC LC, no program config
        // element); anything unexpected just means "no extension".
        if object_type == 2 && channel_config != 0 {
            let _ = asc.read_sync_extension(&mut b);
        }
        Ok(asc)
    }

    fn read_sync_extension(&mut self, b: &mut Bits) -> ParseResult<()> {
        // GASpecificConfig for AOT 2: frameLengthFlag, dependsOnCoreCoder, extensionFlag.
        b.read(1)?;
        if b.flag()? {
            b.read(14)?; // coreCoderDelay
        }
        if b.flag()? {
            b.read(1)?; // extensionFlag3 (only AOTs 17/19/20/22/23 have more)
        }
        if b.left() < 16 || b.read(11)? != 0x2b7 {
            return Ok(());
        }
        if audio_object_type(b)? != 5 {
            return Ok(());
        }
        if !b.flag()? {
            return Ok(()); // sbrPresentFlag = 0: plain AAC LC
        }
        let rate = sampling_frequency(b)?;
        self.sbr = true;
        self.extension_rate = rate;
        if b.left() >= 12 && b.read(11)? == 0x548 && b.flag()? {
            self.ps = true;
        }
        Ok(())
    }

    /// The object type for the RFC 6381 string: 29 with PS, 5 with SBR, else the core type.
    fn codec_object_type(&self) -> u8 {
        if self.ps {
            29
        } else if self.sbr {
            5
        } else {
            self.object_type
        }
    }

    fn output_rate(&self) -> Option<u32> {
        if self.sbr {
            self.extension_rate.or(self.sample_rate.map(|r| r * 2))
        } else {
            self.sample_rate
        }
    }

    fn output_channels(&self) -> Option<u16> {
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
}

/// AC3SpecificBox (ETSI TS 102 366 §F.4): fscod 2, bsid 5, bsmod 3, acmod 3, lfeon 1,
/// bit_rate_code 5, reserved 5.
fn apply_dac3(dac3: &[u8], info: &mut CodecInfo, layout: &mut AudioLayout) -> ParseResult<()> {
    let mut b = Bits::new(dac3);
    let fscod = b.read(2)? as usize;
    let _bsid = b.read(5)?;
    let _bsmod = b.read(3)?;
    let acmod = b.read(3)? as usize;
    let lfeon = b.flag()?;
    info.family = CodecFamily::Ac3;
    info.codec_string = "ac-3".to_string();
    if let Some(&rate) = AC3_RATES.get(fscod) {
        info.sample_rate = rate;
    }
    let (channels, mask) = acmod_layout(acmod, lfeon);
    info.channels = channels;
    layout.channel_layout = Some(ChannelLayout::Dolby(mask));
    Ok(())
}

fn acmod_layout(acmod: usize, lfeon: bool) -> (u16, u16) {
    let channels = ACMOD_CHANNELS.get(acmod).copied().unwrap_or(2) + u16::from(lfeon);
    let mut mask = ACMOD_CHANMAP.get(acmod).copied().unwrap_or(0xA000);
    if lfeon {
        mask |= CHANMAP_LFE;
    }
    (channels, mask)
}

/// EC3SpecificBox (ETSI TS 102 366 §F.6): data_rate 13, num_ind_sub 3, then per independent
/// substream fscod 2, bsid 5, reserved 1, asvc 1, bsmod 3, acmod 3, lfeon 1, reserved 3,
/// num_dep_sub 4, chan_loc 9 | reserved 1; then optionally reserved 7,
/// flag_ec3_extension_type_a 1, complexity_index_type_a 8 (JOC).
fn apply_dec3(dec3: &[u8], info: &mut CodecInfo, layout: &mut AudioLayout) -> ParseResult<()> {
    let mut b = Bits::new(dec3);
    let _data_rate = b.read(13)?;
    let num_ind_sub = b.read(3)? + 1;
    let mut first = None;
    for _ in 0..num_ind_sub {
        let fscod = b.read(2)? as usize;
        let _bsid = b.read(5)?;
        b.read(1)?;
        let _asvc = b.read(1)?;
        let _bsmod = b.read(3)?;
        let acmod = b.read(3)? as usize;
        let lfeon = b.flag()?;
        b.read(3)?;
        let num_dep_sub = b.read(4)?;
        let chan_loc = if num_dep_sub > 0 { b.read(9)? as u16 } else { b.read(1).map(|_| 0)? };
        if first.is_none() {
            first = Some((fscod, acmod, lfeon, chan_loc));
        }
    }
    let (fscod, acmod, lfeon, chan_loc) = first.ok_or_else(|| ParseError("no substream".into()))?;
    info.family = CodecFamily::Eac3;
    info.codec_string = "ec-3".to_string();
    if let Some(&rate) = AC3_RATES.get(fscod) {
        info.sample_rate = rate;
    }
    let (mut channels, mut mask) = acmod_layout(acmod, lfeon);
    // chan_loc (Table F.6.1), LSB first: Lc/Rc, Lrs/Rrs, Cs, Ts, Lsd/Rsd, Lw/Rw, Vhl/Vhr,
    // Vhc, LFE2. Pairs count two channels.
    const LOCATIONS: [(u16, u16); 9] = [
        (2, 1 << 10),
        (2, 1 << 9),
        (1, 1 << 8),
        (1, 1 << 7),
        (2, 1 << 6),
        (2, 1 << 5),
        (2, 1 << 4),
        (1, 1 << 3),
        (1, 1 << 1),
    ];
    for (i, (n, bit)) in LOCATIONS.iter().enumerate() {
        if chan_loc & (1 << i) != 0 {
            channels += n;
            mask |= bit;
        }
    }
    info.channels = channels;
    layout.channel_layout = Some(ChannelLayout::Dolby(mask));
    // Byte-align, then the optional JOC extension.
    let rem = b.pos % 8;
    if rem != 0 {
        b.read(8 - rem)?;
    }
    if b.left() >= 16 {
        b.read(7)?;
        if b.flag()? {
            layout.joc_complexity = Some(b.read(8)? as u8);
        }
    }
    Ok(())
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
        let (info, layout) = describe_with_layout(&hex(MP4A_LC_48K_STEREO)).unwrap();
        assert_eq!(info.family, CodecFamily::Aac);
        assert_eq!(info.codec_string, "mp4a.40.2");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 2);
        assert_eq!(layout.channel_layout, Some(ChannelLayout::Mpeg(2)));
        assert!(info.is_audio() && !info.is_video());
        assert_eq!(layout.hls_channels(&info), "2");
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
        let (info, layout) = describe_with_layout(&mp4a(6, 48000, asc)).unwrap();
        assert_eq!(info.codec_string, "mp4a.40.42");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 6);
        assert_eq!(layout.channel_layout, None);
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
        let (info, layout) = describe_with_layout(&hex(AC3_51)).unwrap();
        assert_eq!(info.family, CodecFamily::Ac3);
        assert_eq!(info.codec_string, "ac-3");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 6);
        assert_eq!(layout.channel_layout, Some(ChannelLayout::Dolby(0xF801)));
    }

    #[test]
    fn eac3_stereo() {
        let (info, layout) = describe_with_layout(&hex(EC3_STEREO)).unwrap();
        assert_eq!(info.family, CodecFamily::Eac3);
        assert_eq!(info.codec_string, "ec-3");
        assert_eq!(info.sample_rate, 48000);
        assert_eq!(info.channels, 2);
        assert_eq!(layout.channel_layout, Some(ChannelLayout::Dolby(0xA000)));
        assert_eq!(layout.joc_complexity, None);
        assert_eq!(layout.hls_channels(&info), "2");
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
        let (info, layout) = describe_with_layout(&mkbox(b"ec-3", &p)).unwrap();
        assert_eq!(info.channels, 8);
        assert_eq!(layout.channel_layout, Some(ChannelLayout::Dolby(0xFA01)));
        assert_eq!(layout.joc_complexity, Some(16));
        assert_eq!(layout.hls_channels(&info), "16/JOC");
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
