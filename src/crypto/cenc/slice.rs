//! NAL unit classification for subsample encryption, and where a VCL NAL unit's clear part
//! ends.
//!
//! # The `cbcs` clear-prefix rule
//!
//! ISO/IEC 23001-7 §9.5 wants the NAL length, the NAL unit header and (for new content) the
//! slice header of every VCL NAL unit unencrypted, so that secure decoders can parse them;
//! CMAF (ISO/IEC 23000-19) further asks that `cbcs` protected data start on the first byte
//! after the slice header. Finding that byte exactly means parsing the slice header, which
//! needs the SPS/PPS state (AVC: frame_num / POC widths, ref list modification, weighted
//! prediction tables, dec_ref_pic_marking; HEVC: short-term RPS, long-term refs, entry point
//! offsets, …) — what shaka-packager (`VideoSliceHeaderParser`), Bento4 and GPAC do. Until
//! such a parser exists here, `cbcs` uses a fixed, conservative rule: the first
//! [`CBCS_VCL_CLEAR_PREFIX`] bytes of every VCL NAL unit (NAL header included) stay clear, the
//! rest is the protected range (1:9 pattern, trailing partial block clear). 128 bytes covers
//! the slice headers of ordinary encodes (x264/x265: AVC ≈ 5–30 bytes even with weighted
//! prediction; HEVC ≈ 10–80 bytes with wavefront entry points up to 2160p), the same bound a
//! slice-parsing JIT packager (nginx-vod-module) caps headers at, and is a superset of Apple's
//! SAMPLE-AES rule (32 bytes clear). Leaving more than the slice header clear is legal: the
//! subsample map, not the codec, says what is encrypted, and decryptors (ffmpeg, Chrome's
//! ClearKey CDM, hardware CDMs) follow the map. The cost is that VCL NAL units up to 128 bytes
//! (tiny B-slices) stay entirely clear.
//!
//! [`SliceHeaderParser`] is the hook where exact slice-header lengths plug in: when it returns
//! `slice_header_end`, both schemes use it (`cenc` then protects the largest multiple of 16
//! bytes after the slice header, like shaka-packager does).

/// Bytes from the start of a VCL NAL unit (NAL unit header included) that `cbcs` leaves clear
/// when the slice header length is unknown. See the module documentation.
pub const CBCS_VCL_CLEAR_PREFIX: usize = 128;

/// What a NAL unit is, for subsample encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalClass {
    /// Parameter sets, SEI, AUD, end of sequence, filler, …: left entirely clear.
    NonVcl,
    /// A coded slice: `header_len` NAL unit header bytes (AVC 1, HEVC 2), and the length of
    /// NAL unit header + slice header when it is known.
    Vcl { header_len: usize, slice_header_end: Option<usize> },
}

/// Classifies NAL units; see the module documentation. Keeps no state yet (an exact
/// slice-header parser would keep the SPS/PPS it sees here).
#[derive(Debug, Clone, Default)]
pub struct SliceHeaderParser {}

impl SliceHeaderParser {
    pub fn from_sample_entry(_sample_entry: &[u8], _hevc: bool) -> SliceHeaderParser {
        SliceHeaderParser {}
    }

    /// AVC VCL NAL units are types 1–5 (ISO/IEC 14496-10 Table 7-1: coded slices, data
    /// partitions, IDR); HEVC VCL NAL units are types 0–31 (ISO/IEC 23008-2 Table 7-1).
    /// Everything else (including AVC SVC/MVC extensions 14/20, kept whole) is clear.
    pub fn classify(&mut self, nal: &[u8], hevc: bool) -> NalClass {
        let Some(&first) = nal.first() else { return NalClass::NonVcl };
        if hevc {
            if (first >> 1) & 0x3f < 32 && nal.len() >= 2 {
                return NalClass::Vcl { header_len: 2, slice_header_end: None };
            }
        } else if (1..=5).contains(&(first & 0x1f)) {
            return NalClass::Vcl { header_len: 1, slice_header_end: None };
        }
        NalClass::NonVcl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcl_types() {
        let mut p = SliceHeaderParser::default();
        for (t, vcl) in [(1u8, true), (5, true), (6, false), (7, false), (8, false), (9, false), (20, false)] {
            assert_eq!(matches!(p.classify(&[0x60 | t, 0], false), NalClass::Vcl { header_len: 1, .. }), vcl, "AVC {t}");
        }
        for (t, vcl) in [(0u8, true), (1, true), (19, true), (21, true), (32, false), (33, false), (34, false), (35, false), (39, false)] {
            assert_eq!(matches!(p.classify(&[t << 1, 1], true), NalClass::Vcl { header_len: 2, .. }), vcl, "HEVC {t}");
        }
        assert_eq!(p.classify(&[], false), NalClass::NonVcl);
    }
}
