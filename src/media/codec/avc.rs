//! H.264 / AVC: the AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15 §5.3.3.1) and
//! the `avc1.PPCCLL` codec string.

use crate::media::mp4::reader::Cursor;
use crate::media::{err, MediaResult};

/// What an `avcC` tells: profile, constraint flags and level for the codec string, the NAL
/// length size of the samples, and the parameter sets (without length prefixes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvcConfig {
    pub profile: u8,
    pub constraints: u8,
    pub level: u8,
    /// Bytes of the length prefix of each NAL unit in a sample (1, 2 or 4; 3 is invalid but
    /// kept so that whoever cannot use it says so).
    pub nal_length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    /// Parses an `avcC` payload; the High-profile trailer (chroma format, bit depths, SPS
    /// extensions) is not needed and not read.
    pub fn parse(avcc: &[u8]) -> MediaResult<AvcConfig> {
        let mut c = Cursor::new(avcc);
        let version = c.u8()?;
        if version != 1 {
            return err(format!("unsupported configurationVersion {version}"));
        }
        let profile = c.u8()?;
        let constraints = c.u8()?;
        let level = c.u8()?;
        let nal_length_size = (c.u8()? & 3) + 1;
        let sps_count = c.u8()? & 0x1f;
        let sps = (0..sps_count).map(|_| parameter_set(&mut c)).collect::<MediaResult<_>>()?;
        let pps_count = c.u8()?;
        let pps = (0..pps_count).map(|_| parameter_set(&mut c)).collect::<MediaResult<_>>()?;
        Ok(AvcConfig { profile, constraints, level, nal_length_size, sps, pps })
    }

    /// `avc1.PPCCLL` (RFC 6381 §3.3), `entry` being the sample entry type (avc1, avc3).
    pub fn codec_string(&self, entry: &str) -> String {
        format!("{entry}.{:02x}{:02x}{:02x}", self.profile, self.constraints, self.level)
    }
}

/// One `u16` length-prefixed NAL unit of a configuration record (`avcC` and `hvcC` alike).
pub(super) fn parameter_set(c: &mut Cursor) -> MediaResult<Vec<u8>> {
    let len = usize::from(c.u16()?);
    Ok(c.bytes(len)?.to_vec())
}
