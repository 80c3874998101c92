//! AV1: the AV1CodecConfigurationRecord (`av1C`, AV1 Codec ISO Media File Format Binding
//! §2.3) and the `av01.P.LLT.DD[.M.CCC.cp.tc.mc.F]` codec string of its §5 (Codecs Parameter
//! String). The colour fields come from the sequence header OBU in `configOBUs` when there is
//! one (AV1 §5.5); `av1C` itself carries no colour description.
//!
//! Own parser rather than a crate: only the sequence header up to color_config is needed, a
//! few dozen fixed and `uvlc` fields over the [`BitReader`] the H.264 / H.265 code shares.

use crate::media::bits::BitReader;
use crate::media::codec::colour::{Colour, ColourSource, UNSPECIFIED};
use crate::media::mp4::reader::Cursor;
use crate::media::{err, MediaError, MediaResult};

/// OBU type of a sequence header (AV1 §6.2.2).
const OBU_SEQUENCE_HEADER: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Av1Config {
    pub seq_profile: u8,
    pub seq_level_idx_0: u8,
    pub seq_tier_0: bool,
    pub bit_depth: u8,
    pub monochrome: bool,
    pub chroma_subsampling_x: bool,
    pub chroma_subsampling_y: bool,
    pub chroma_sample_position: u8,
    /// The sequence header's color_config, when `configOBUs` holds a readable one.
    pub colour: Option<Colour>,
    /// The `configOBUs` bytes (sequence header and metadata OBUs).
    pub config_obus: Vec<u8>,
}

impl Av1Config {
    pub fn parse(av1c: &[u8]) -> MediaResult<Av1Config> {
        let mut c = Cursor::new(av1c);
        let marker_version = c.u8()?;
        if marker_version != 0x81 {
            return err(format!("unsupported av1C marker/version 0x{marker_version:02x}"));
        }
        let b1 = c.u8()?;
        let b2 = c.u8()?;
        c.u8()?; // reserved, initial_presentation_delay
        let config_obus = c.rest().to_vec();
        let (high_bitdepth, twelve_bit) = (b2 & 0x40 != 0, b2 & 0x20 != 0);
        let seq_profile = b1 >> 5;
        let bit_depth = match (seq_profile, high_bitdepth, twelve_bit) {
            (2, true, true) => 12,
            (_, true, _) => 10,
            _ => 8,
        };
        let colour = sequence_header(&config_obus).and_then(|obu| color_config(obu, seq_profile));
        Ok(Av1Config {
            seq_profile,
            seq_level_idx_0: b1 & 0x1f,
            seq_tier_0: b2 & 0x80 != 0,
            bit_depth,
            monochrome: b2 & 0x10 != 0,
            chroma_subsampling_x: b2 & 0x08 != 0,
            chroma_subsampling_y: b2 & 0x04 != 0,
            chroma_sample_position: b2 & 0x03,
            colour,
            config_obus,
        })
    }

    /// `av01.0.04M.10.0.112.09.16.09.0`: profile, level with tier, bit depth; then monochrome,
    /// chroma subsampling and position, primaries, transfer, matrix and range, written only
    /// when they differ from the defaults the binding lets a reader assume (0, 110, 1, 1, 1, 0)
    /// — the optional fields come all together or not at all. Colour fields the sequence header
    /// leaves unspecified are written as those defaults.
    pub fn codec_string(&self) -> String {
        let tier = if self.seq_tier_0 { 'H' } else { 'M' };
        let mut s = format!("av01.{}.{:02}{tier}.{:02}", self.seq_profile, self.seq_level_idx_0, self.bit_depth);
        let chroma = format!(
            "{}{}{}",
            u8::from(self.chroma_subsampling_x),
            u8::from(self.chroma_subsampling_y),
            if self.chroma_subsampling_x && self.chroma_subsampling_y { self.chroma_sample_position } else { 0 }
        );
        let or_default = |v: u8| if v == UNSPECIFIED { 1 } else { v };
        let (cp, tc, mc, full) = match &self.colour {
            Some(c) => (or_default(c.primaries), or_default(c.transfer), or_default(c.matrix), c.full_range),
            None => (1, 1, 1, false),
        };
        if self.monochrome || chroma != "110" || (cp, tc, mc, full) != (1, 1, 1, false) {
            s.push_str(&format!(".{}.{chroma}.{cp:02}.{tc:02}.{mc:02}.{}", u8::from(self.monochrome), u8::from(full)));
        }
        s
    }
}

/// `leb128()` (AV1 §4.10.5).
fn leb128(c: &mut Cursor) -> MediaResult<u64> {
    let mut value = 0u64;
    for i in 0..8 {
        let byte = c.u8()?;
        value |= u64::from(byte & 0x7f) << (i * 7);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(MediaError("leb128 longer than 8 bytes".into()))
}

/// The payload of the first sequence header OBU among `obus` (low-overhead format: every OBU
/// has a size field in `av1C`; one without is taken to run to the end).
fn sequence_header(obus: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor::new(obus);
    while !c.rest().is_empty() {
        let header = c.u8().ok()?;
        let kind = u32::from(header >> 3) & 0x0f;
        if header & 0x04 != 0 {
            c.u8().ok()?; // obu_extension_header
        }
        let payload = if header & 0x02 != 0 {
            let size = usize::try_from(leb128(&mut c).ok()?).ok()?;
            c.bytes(size).ok()?
        } else {
            c.rest()
        };
        if kind == OBU_SEQUENCE_HEADER {
            return Some(payload);
        }
        if header & 0x02 == 0 {
            return None;
        }
    }
    None
}

/// `uvlc()` (AV1 §4.10.3).
fn uvlc(r: &mut BitReader<'_>) -> Option<u32> {
    let mut zeros = 0;
    while !r.flag()? {
        zeros += 1;
        if zeros >= 32 {
            return Some(u32::MAX);
        }
    }
    Some(r.read(zeros)?.saturating_add((1u32 << zeros) - 1))
}

/// sequence_header_obu() (AV1 §5.5.1) up to and including color_config().
fn color_config(obu: &[u8], seq_profile: u8) -> Option<Colour> {
    let mut r = BitReader::new(obu);
    r.skip(3)?; // seq_profile (the av1C's is used)
    r.skip(1)?; // still_picture
    let reduced = r.flag()?;
    if reduced {
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let timing_info_present = r.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.flag()? {
                uvlc(&mut r)?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = r.read(5)? + 1;
                r.skip(32 + 5 + 5)?; // num_units_in_decoding_tick, two lengths
            }
        }
        let initial_display_delay_present = r.flag()?;
        let operating_points = r.read(5)? + 1;
        for _ in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            if r.read(5)? > 7 {
                r.skip(1)?; // seq_tier
            }
            if decoder_model_info_present && r.flag()? {
                r.skip(2 * buffer_delay_length + 1)?; // operating_parameters_info()
            }
            if initial_display_delay_present && r.flag()? {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.read(4)? + 1;
    let height_bits = r.read(4)? + 1;
    r.skip(width_bits + height_bits)?; // max_frame_width_minus_1, max_frame_height_minus_1
    if !reduced && r.flag()? {
        r.skip(4 + 3)?; // frame id lengths
    }
    r.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.skip(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.flag()?;
        if order_hint {
            r.skip(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let force_screen_content_tools = if r.flag()? { 2 } else { r.read(1)? };
        if force_screen_content_tools > 0 && !r.flag()? {
            r.skip(1)?; // seq_force_integer_mv
        }
        if order_hint {
            r.skip(3)?; // order_hint_bits_minus_1
        }
    }
    r.skip(3)?; // enable_superres, enable_cdef, enable_restoration
                // color_config()
    let high_bitdepth = r.flag()?;
    if seq_profile == 2 && high_bitdepth {
        r.skip(1)?; // twelve_bit
    }
    let mono_chrome = seq_profile != 1 && r.flag()?;
    let (primaries, transfer, matrix) =
        if r.flag()? { (r.read(8)? as u8, r.read(8)? as u8, r.read(8)? as u8) } else { (2, 2, 2) };
    // sRGB (BT.709 primaries, sRGB transfer, identity matrix) is always full range.
    let full_range = if !mono_chrome && (primaries, transfer, matrix) == (1, 13, 0) { true } else { r.flag()? };
    Some(Colour { primaries, transfer, matrix, full_range, source: ColourSource::SequenceHeader })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The av1C libaom writes for the fixture (fixtures/av1/video_av1.mp4): profile 0, level
    /// 2.0, 8-bit 4:2:0, sequence header without colour description.
    const FIXTURE_AV1C: &str = "81000c000a0b000000043cfeccdaf90040";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn fixture_record() {
        let c = Av1Config::parse(&hex(FIXTURE_AV1C)).unwrap();
        assert_eq!((c.seq_profile, c.seq_level_idx_0, c.bit_depth, c.monochrome), (0, 0, 8, false));
        let colour = c.colour.unwrap();
        assert_eq!((colour.primaries, colour.transfer, colour.matrix, colour.full_range), (2, 2, 2, false));
        assert_eq!(c.codec_string(), "av01.0.00M.08");
    }

    /// Writes bits MSB first.
    fn pack(bits: &str) -> Vec<u8> {
        let bits: Vec<u8> = bits.bytes().filter(|b| *b == b'0' || *b == b'1').collect();
        let mut out = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b == b'1' {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out
    }

    #[test]
    fn hdr10_main_10_sequence_header() {
        // A reduced still-picture-less header: profile 0, reduced 1, level 8 (4.0); 11-bit
        // sizes; no superblock/filter flags set; high_bitdepth 1, mono 0, colour description
        // 9/16/9, full range 0, then subsampling bits (not read).
        let seq = pack(
            "000 0 1 01000 1010 1010 00000000000 00000000000 000 000 \
             1 0 1 00001001 00010000 00001001 0 0000000",
        );
        let mut obus = vec![0x0a, seq.len() as u8];
        obus.extend_from_slice(&seq);
        // av1C: profile 0, level 8, tier 0, high_bitdepth 1, 4:2:0 colocated (pos 0).
        let mut av1c = vec![0x81, 0x08, 0x4c, 0x00];
        av1c.extend_from_slice(&obus);
        let c = Av1Config::parse(&av1c).unwrap();
        assert_eq!(c.bit_depth, 10);
        assert_eq!(c.codec_string(), "av01.0.08M.10.0.110.09.16.09.0");
        // High tier, 4:4:4, monochrome flags in the record show in the string.
        let mut mono = av1c.clone();
        mono[2] = 0x90;
        let c = Av1Config::parse(&mono).unwrap();
        assert!(c.codec_string().starts_with("av01.0.08H.08.1.000."));
    }

    #[test]
    fn bad_records() {
        assert!(Av1Config::parse(&[0x81, 0, 0]).is_err());
        assert!(Av1Config::parse(&[0x01, 0, 0, 0]).is_err());
        // A record without configOBUs, or with garbage there: no colour, still a codec string.
        let c = Av1Config::parse(&[0x81, 0x00, 0x0c, 0x00]).unwrap();
        assert_eq!((c.colour, c.codec_string()), (None, "av01.0.00M.08".to_string()));
        let full = hex(FIXTURE_AV1C);
        for n in 0..full.len() {
            let _ = Av1Config::parse(&full[..n]);
        }
        let mut junk = full[..4].to_vec();
        junk.extend_from_slice(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(Av1Config::parse(&junk).unwrap().colour, None);
    }
}
