//! H.265 / HEVC: the HEVCDecoderConfigurationRecord (`hvcC`, ISO/IEC 14496-15 §8.3.3.1) and
//! the codec string of ISO/IEC 14496-15 Annex E.

use super::avc::parameter_set;
use crate::media::mp4::reader::Cursor;
use crate::media::{err, MediaResult};

/// What an `hvcC` tells: profile, tier, level and constraints for the codec string, the NAL
/// length size of the samples, and the NAL units of every array (VPS, SPS, PPS, SEI, … in
/// record order, without length prefixes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HevcConfig {
    pub profile_space: u8,
    pub high_tier: bool,
    pub profile_idc: u8,
    pub compatibility_flags: u32,
    pub constraint_flags: [u8; 6],
    pub level_idc: u8,
    /// Bytes of the length prefix of each NAL unit in a sample (see [`super::AvcConfig`]).
    pub nal_length_size: u8,
    pub nal_units: Vec<Vec<u8>>,
}

impl HevcConfig {
    pub fn parse(hvcc: &[u8]) -> MediaResult<HevcConfig> {
        let mut c = Cursor::new(hvcc);
        let version = c.u8()?;
        if version != 1 {
            return err(format!("unsupported configurationVersion {version}"));
        }
        let b = c.u8()?;
        let compatibility_flags = c.u32()?;
        let mut constraint_flags = [0u8; 6];
        constraint_flags.copy_from_slice(c.bytes(6)?);
        let level_idc = c.u8()?;
        // min_spatial_segmentation, parallelismType, chromaFormat, bit depths, avgFrameRate.
        c.skip(8)?;
        let nal_length_size = (c.u8()? & 3) + 1;
        let arrays = c.u8()?;
        let mut nal_units = Vec::new();
        for _ in 0..arrays {
            c.u8()?; // array_completeness, reserved, NAL_unit_type
            let count = c.u16()?;
            for _ in 0..count {
                nal_units.push(parameter_set(&mut c)?);
            }
        }
        Ok(HevcConfig {
            profile_space: b >> 6,
            high_tier: (b >> 5) & 1 == 1,
            profile_idc: b & 0x1f,
            compatibility_flags,
            constraint_flags,
            level_idc,
            nal_length_size,
            nal_units,
        })
    }

    /// e.g. `hvc1.1.6.L93.B0`, `entry` being the sample entry type (hvc1, hev1).
    pub fn codec_string(&self, entry: &str) -> String {
        let mut s = String::from(entry);
        s.push('.');
        match self.profile_space {
            1 => s.push('A'),
            2 => s.push('B'),
            3 => s.push('C'),
            _ => {}
        }
        s.push_str(&self.profile_idc.to_string());
        // general_profile_compatibility_flags in reverse bit order, hex, no leading zeros.
        s.push_str(&format!(".{:X}", self.compatibility_flags.reverse_bits()));
        s.push_str(&format!(".{}{}", if self.high_tier { 'H' } else { 'L' }, self.level_idc));
        let constraints = &self.constraint_flags;
        let used = constraints.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for byte in &constraints[..used] {
            s.push_str(&format!(".{byte:X}"));
        }
        s
    }
}
