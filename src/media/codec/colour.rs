//! Colour description of a video track (ITU-T H.273 code points): the `colr` box of the
//! sample entry (ISO/IEC 14496-12 §12.1.5), else the VUI of the H.264 / H.265 SPS, else the
//! AV1 sequence header's color_config; and what it means for HLS `VIDEO-RANGE`.

use serde::Serialize;

use crate::media::bits::BitReader;
use crate::media::mp4::reader::Cursor;

/// H.273 TransferCharacteristics of SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG).
pub(crate) const TRANSFER_PQ: u8 = 16;
pub(crate) const TRANSFER_HLG: u8 = 18;
/// H.273 "unspecified" for primaries, transfer and matrix.
pub(crate) const UNSPECIFIED: u8 = 2;

/// Where a [`Colour`] was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColourSource {
    /// The sample entry's `colr` box (`nclx`, or QuickTime `nclc`).
    Colr,
    /// The SPS VUI (H.264 E.1.1, H.265 E.2.1).
    Vui,
    /// The AV1 sequence header OBU in `av1C`.
    SequenceHeader,
}

impl ColourSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ColourSource::Colr => "colr",
            ColourSource::Vui => "SPS VUI",
            ColourSource::SequenceHeader => "AV1 sequence header",
        }
    }
}

/// The colour code points of a video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Colour {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub full_range: bool,
    pub source: ColourSource,
}

/// The dynamic range HLS `VIDEO-RANGE` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum VideoRange {
    #[default]
    #[serde(rename = "SDR")]
    Sdr,
    #[serde(rename = "PQ")]
    Pq,
    #[serde(rename = "HLG")]
    Hlg,
}

impl VideoRange {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoRange::Sdr => "SDR",
            VideoRange::Pq => "PQ",
            VideoRange::Hlg => "HLG",
        }
    }

    /// What `inspect` calls it: PQ video with BT.2020 is HDR10.
    pub fn hdr_name(self) -> &'static str {
        match self {
            VideoRange::Sdr => "SDR",
            VideoRange::Pq => "HDR10",
            VideoRange::Hlg => "HLG",
        }
    }
}

impl Colour {
    /// The `colr` payload: `nclx` (primaries, transfer, matrix u16 each, full_range_flag) or
    /// QuickTime `nclc` (no range flag). ICC profiles (`rICC`, `prof`) carry no code points:
    /// `None`, as for a short box.
    pub fn from_colr(payload: &[u8]) -> Option<Colour> {
        let mut c = Cursor::new(payload);
        let kind = c.fourcc().ok()?;
        if &kind != b"nclx" && &kind != b"nclc" {
            return None;
        }
        let mut code = || c.u16().ok().map(|v| u8::try_from(v).unwrap_or(UNSPECIFIED));
        let (primaries, transfer, matrix) = (code()?, code()?, code()?);
        let full_range = &kind == b"nclx" && c.u8().is_ok_and(|b| b & 0x80 != 0);
        Some(Colour { primaries, transfer, matrix, full_range, source: ColourSource::Colr })
    }

    /// The dynamic range the transfer characteristics imply.
    pub fn range(&self) -> VideoRange {
        match self.transfer {
            TRANSFER_PQ => VideoRange::Pq,
            TRANSFER_HLG => VideoRange::Hlg,
            _ => VideoRange::Sdr,
        }
    }

    /// Whether it says anything: a description of three "unspecified" code points does not.
    pub fn is_specified(&self) -> bool {
        (self.primaries, self.transfer, self.matrix) != (UNSPECIFIED, UNSPECIFIED, UNSPECIFIED)
    }
}

/// The colour description of an H.264 / H.265 `vui_parameters()` read from its first bit
/// (aspect_ratio_info_present_flag): the two syntaxes agree up to colour_description.
/// `None` when the VUI has no video_signal_type or no colour_description.
pub(crate) fn vui_colour(r: &mut BitReader<'_>) -> Option<Colour> {
    if r.flag()? {
        // aspect_ratio_idc; 255 = Extended_SAR: sar_width, sar_height.
        if r.read(8)? == 255 {
            r.skip(32)?;
        }
    }
    if r.flag()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if !r.flag()? {
        return None; // no video_signal_type
    }
    r.skip(3)?; // video_format
    let full_range = r.flag()?;
    if !r.flag()? {
        return None; // no colour_description
    }
    let (primaries, transfer, matrix) = (r.read(8)? as u8, r.read(8)? as u8, r.read(8)? as u8);
    Some(Colour { primaries, transfer, matrix, full_range, source: ColourSource::Vui })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nclx_nclc_and_icc() {
        // What ffmpeg writes for HDR10: BT.2020, PQ, BT.2020 non-constant, limited range.
        let nclx = [b'n', b'c', b'l', b'x', 0, 9, 0, 16, 0, 9, 0];
        let c = Colour::from_colr(&nclx).unwrap();
        assert_eq!((c.primaries, c.transfer, c.matrix, c.full_range), (9, 16, 9, false));
        assert_eq!((c.range(), c.range().hdr_name()), (VideoRange::Pq, "HDR10"));
        let mut full = nclx;
        full[10] = 0x80;
        assert!(Colour::from_colr(&full).unwrap().full_range);
        let nclc = [b'n', b'c', b'l', b'c', 0, 1, 0, 18, 0, 1];
        let c = Colour::from_colr(&nclc).unwrap();
        assert_eq!((c.transfer, c.range(), c.full_range), (18, VideoRange::Hlg, false));
        assert_eq!(Colour::from_colr(b"rICC\0\0\0\0"), None);
        assert_eq!(Colour::from_colr(&nclx[..7]), None);
        // An out-of-range u16 code point is "unspecified", not a truncation.
        let odd = [b'n', b'c', b'l', b'x', 1, 9, 0, 1, 0, 1, 0];
        assert_eq!(Colour::from_colr(&odd).unwrap().primaries, UNSPECIFIED);
        assert!(!Colour { primaries: 2, transfer: 2, matrix: 2, full_range: false, source: ColourSource::Vui }
            .is_specified());
    }

    #[test]
    fn vui_with_extended_sar() {
        // aspect 1 + 255 + 32 bits SAR, overscan 0, signal type 1: format 5, full 1, desc 1,
        // 9, 18, 9.
        let bits = "1 11111111 00000000000000010000000000000001 0 1 101 1 1 00001001 00010010 00001001";
        let bits: String = bits.chars().filter(|c| !c.is_whitespace()).collect();
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.bytes().enumerate() {
            if b == b'1' {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let c = vui_colour(&mut BitReader::new(&bytes)).unwrap();
        assert_eq!((c.primaries, c.transfer, c.matrix, c.full_range), (9, 18, 9, true));
        // No video_signal_type: nothing; truncated: nothing.
        assert_eq!(vui_colour(&mut BitReader::new(&[0b0000_0000])), None);
        assert_eq!(vui_colour(&mut BitReader::new(&bytes[..3])), None);
    }
}
