//! H.264 / H.265 NAL unit classification and slice-header lengths: where a VCL NAL unit's
//! slice data starts (what subsample encryption keeps clear before it).
//!
//! # Where the protected range of a slice starts
//!
//! ISO/IEC 23001-7 §9.5 wants the NAL length, the NAL unit header and (for new content) the
//! slice header of every VCL NAL unit unencrypted, so that secure decoders can parse them;
//! CMAF (ISO/IEC 23000-19) further asks that `cbcs` protected data start on the first byte
//! of slice data, i.e. the first whole byte after the slice header. [`SliceHeaderParser`]
//! finds that byte by parsing the slice header with the parameter sets of the sample entry
//! (avcC / hvcC) and of the stream (in-band SPS/PPS replace them by id, like a decoder):
//!
//! - **AVC** (ITU-T H.264 7.3.3 `slice_header()`, coded slices of types 1 and 5): frame_num,
//!   field flags, idr_pic_id, POC (types 0/1, bottom field fields), redundant_pic_cnt,
//!   direct_spatial_mv_pred, num_ref_idx override, `ref_pic_list_modification()`,
//!   `pred_weight_table()`, `dec_ref_pic_marking()`, cabac_init_idc, slice_qp_delta,
//!   SP/SI fields and the deblocking fields. The clear part is NAL header + slice header
//!   rounded up to a byte (for CABAC, the `cabac_alignment_one_bit`s — which must be ones:
//!   a check that the parameter sets fit the slice — are part of slice data and stay clear).
//! - **HEVC** (ITU-T H.265 7.3.6.1 `slice_segment_header()`, base layer, non-reserved VCL
//!   types): dependent slice segments and addresses, extra header bits, POC LSB, short-term
//!   RPS (coded in the header, incl. inter-RPS prediction, or picked from the SPS), long-term
//!   pictures, temporal MVP, SAO, num_ref_idx override, list modification
//!   (`NumPicTotalCurr`), collocated ref, `pred_weight_table()`, merge candidates, QP and
//!   deblocking fields, entry points (`offset_len_minus1`), `slice_segment_header_extension`
//!   and `byte_alignment()` (checked: a one then zeros), which already ends on a byte.
//!
//! Bits are read from the RBSP (emulation prevention bytes `0x000003` removed) and the end is
//! mapped back to the escaped NAL unit: the clear part is every escaped byte before the first
//! byte of slice data.
//!
//! ## Fallback
//!
//! When a header cannot be measured — unknown or unparsable parameter sets, AVC slice groups
//! (FMO), data partitions (types 2–4), HEVC profiles other than Main / Main 10 / Main Still /
//! RExt (SCC and multi-layer slice headers differ), PPS extensions, nuh_layer_id > 0,
//! reserved NAL types, a header that does not leave at least one byte of slice data, or a
//! failed alignment check — `cbcs` keeps the first `protect::common_encryption::CBCS_VCL_CLEAR_PREFIX` bytes of the VCL
//! NAL unit (NAL header included) clear and protects the rest (1:9 pattern, trailing partial
//! block clear), and `cenc` keeps just the NAL unit header clear. 128 bytes covers the slice
//! headers of ordinary encodes (x264/x265: AVC ≈ 5–30 bytes even with weighted prediction;
//! HEVC ≈ 10–80 bytes with wavefront entry points up to 2160p), the same bound a
//! slice-parsing JIT packager (nginx-vod-module) caps headers at, and a superset of Apple's
//! SAMPLE-AES rule (32 bytes clear). Leaving more than the slice header clear is legal: the
//! subsample map, not the codec, says what is encrypted, and decryptors (ffmpeg, Chrome's
//! ClearKey CDM, hardware CDMs) follow the map.
//!
//! When `slice_header_end` is known both schemes use it (`cenc` then protects the largest
//! multiple of 16 bytes after the slice header, like shaka-packager does).

use std::collections::HashMap;

use super::colour::{vui_colour, Colour};
use super::CodecConfig;
use crate::media::bits::{BitReader, Rbsp};

/// At most this many bytes of a NAL unit are unescaped to find its slice header (headers are
/// tens of bytes; an HEVC header with hundreds of entry points and a full extension stays well
/// under it). A header that does not end within it falls back to the conservative rule.
const HEADER_SCAN_LIMIT: usize = 4096;

/// The first, usually sufficient, scan of a slice header ([`scan_header`]).
const HEADER_FIRST_SCAN: usize = 128;

/// What a NAL unit is, for subsample encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NalClass {
    /// Parameter sets, SEI, AUD, end of sequence, filler, …: left entirely clear.
    NonVcl,
    /// A coded slice: `header_len` NAL unit header bytes (AVC 1, HEVC 2), and the length of
    /// NAL unit header + slice header when it is known.
    Vcl { header_len: usize, slice_header_end: Option<usize> },
}

/// Classifies NAL units and measures slice headers; see the module documentation. Keeps the
/// parameter sets of the sample entry (avcC / hvcC) and those seen in band, by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct SliceHeaderParser {
    avc_sps: HashMap<u32, AvcSps>,
    avc_pps: HashMap<u32, AvcPps>,
    hevc_sps: HashMap<u32, HevcSps>,
    hevc_pps: HashMap<u32, HevcPps>,
}

impl SliceHeaderParser {
    /// Loads the parameter sets of the track's avcC / hvcC (parameter sets it cannot use only
    /// mean that slice headers fall back to the conservative rule).
    pub(crate) fn from_config(config: &CodecConfig) -> SliceHeaderParser {
        let mut p = SliceHeaderParser::default();
        let hevc = matches!(config, CodecConfig::Hevc(_));
        for nal in config.parameter_sets() {
            p.classify(nal, hevc);
        }
        p
    }

    /// AVC VCL NAL units are types 1–5 (ISO/IEC 14496-10 Table 7-1: coded slices, data
    /// partitions, IDR); HEVC VCL NAL units are types 0–31 (ISO/IEC 23008-2 Table 7-1).
    /// Everything else (including AVC SVC/MVC extensions 14/20, kept whole) is clear.
    /// Parameter sets (AVC SPS/PPS, HEVC SPS/PPS of the base layer) are remembered.
    pub(crate) fn classify(&mut self, nal: &[u8], hevc: bool) -> NalClass {
        let Some(&first) = nal.first() else { return NalClass::NonVcl };
        if hevc {
            let Some(&second) = nal.get(1) else { return NalClass::NonVcl };
            let nal_type = (first >> 1) & 0x3f;
            let layer_id = ((first & 1) << 5) | (second >> 3);
            if nal_type < 32 {
                let end = if layer_id == 0 { self.hevc_header_end(nal, nal_type) } else { None };
                return NalClass::Vcl { header_len: 2, slice_header_end: checked_end(end, 2, nal.len()) };
            }
            if layer_id == 0 {
                match nal_type {
                    33 => self.store_hevc_sps(nal),
                    34 => self.store_hevc_pps(nal),
                    _ => {}
                }
            }
        } else {
            let nal_type = first & 0x1f;
            match nal_type {
                1..=5 => {
                    let end = if nal_type == 1 || nal_type == 5 { self.avc_header_end(nal) } else { None };
                    return NalClass::Vcl { header_len: 1, slice_header_end: checked_end(end, 1, nal.len()) };
                }
                7 => self.store_avc_sps(nal),
                8 => self.store_avc_pps(nal),
                _ => {}
            }
        }
        NalClass::NonVcl
    }

    fn store_avc_sps(&mut self, nal: &[u8]) {
        match AvcSps::read(nal) {
            Some((id, Some(sps))) => {
                self.avc_sps.insert(id, sps);
            }
            Some((id, None)) => {
                self.avc_sps.remove(&id);
            }
            None => self.avc_sps.clear(),
        }
    }

    fn store_avc_pps(&mut self, nal: &[u8]) {
        let rbsp = Rbsp::new(nal, HEADER_SCAN_LIMIT);
        let mut r = rbsp.reader(8);
        match r.ue() {
            Some(id) => match AvcPps::parse(&mut r) {
                Some(pps) => {
                    self.avc_pps.insert(id, pps);
                }
                None => {
                    self.avc_pps.remove(&id);
                }
            },
            None => self.avc_pps.clear(),
        }
    }

    fn store_hevc_sps(&mut self, nal: &[u8]) {
        match HevcSps::read(nal) {
            Some((id, Some(sps))) => {
                self.hevc_sps.insert(id, sps);
            }
            Some((id, None)) => {
                self.hevc_sps.remove(&id);
            }
            None => self.hevc_sps.clear(),
        }
    }

    fn store_hevc_pps(&mut self, nal: &[u8]) {
        let rbsp = Rbsp::new(nal, HEADER_SCAN_LIMIT);
        let mut r = rbsp.reader(16);
        match r.ue() {
            Some(id) => match HevcPps::parse(&mut r) {
                Some(pps) => {
                    self.hevc_pps.insert(id, pps);
                }
                None => {
                    self.hevc_pps.remove(&id);
                }
            },
            None => self.hevc_pps.clear(),
        }
    }

    /// NAL unit header + slice_header() of an AVC coded slice (types 1 and 5), rounded up to a
    /// byte, as a length in the escaped NAL unit (ITU-T H.264 7.3.3).
    fn avc_header_end(&self, nal: &[u8]) -> Option<usize> {
        scan_header(nal, |rbsp| self.avc_header_end_in(nal, rbsp))
    }

    fn avc_header_end_in(&self, nal: &[u8], rbsp: &Rbsp) -> Option<usize> {
        let first = *nal.first()?;
        let nal_ref_idc = (first >> 5) & 3;
        let idr = first & 0x1f == 5;
        let mut r = rbsp.reader(8);
        let _first_mb_in_slice = r.ue()?;
        let slice_type = r.ue()?;
        if slice_type > 9 {
            return None;
        }
        let slice_type = slice_type % 5;
        let (p, b, i, sp, si) = (slice_type == 0, slice_type == 1, slice_type == 2, slice_type == 3, slice_type == 4);
        let pps = self.avc_pps.get(&r.ue()?)?;
        let sps = self.avc_sps.get(&pps.sps_id)?;
        if pps.slice_groups {
            return None;
        }
        if sps.separate_colour_plane {
            r.skip(2)?; // colour_plane_id
        }
        r.skip(sps.log2_max_frame_num)?; // frame_num
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.flag()?;
            if field_pic {
                r.skip(1)?; // bottom_field_flag
            }
        }
        if idr {
            r.ue()?; // idr_pic_id
        }
        match sps.poc {
            AvcPoc::Lsb { log2_max_lsb } => {
                r.skip(log2_max_lsb)?;
                if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                    r.se()?; // delta_pic_order_cnt_bottom
                }
            }
            AvcPoc::Deltas { always_zero: false } => {
                r.se()?;
                if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                    r.se()?;
                }
            }
            AvcPoc::Deltas { always_zero: true } | AvcPoc::None => {}
        }
        if pps.redundant_pic_cnt_present {
            r.ue()?;
        }
        if b {
            r.skip(1)?; // direct_spatial_mv_pred_flag
        }
        let (mut l0, mut l1) = (pps.num_ref_idx_l0_default_minus1, pps.num_ref_idx_l1_default_minus1);
        if (p || sp || b) && r.flag()? {
            // num_ref_idx_active_override_flag
            l0 = r.ue()?;
            if b {
                l1 = r.ue()?;
            }
        }
        if l0 > 31 || l1 > 31 {
            return None;
        }
        // ref_pic_list_modification() (types 1 and 5 only: no MVC variant here).
        if !i && !si {
            avc_ref_pic_list_modification(&mut r)?;
        }
        if b {
            avc_ref_pic_list_modification(&mut r)?;
        }
        if (pps.weighted_pred && (p || sp)) || (pps.weighted_bipred_idc == 1 && b) {
            // pred_weight_table()
            r.ue()?; // luma_log2_weight_denom
            if sps.chroma_array_type != 0 {
                r.ue()?; // chroma_log2_weight_denom
            }
            let lists = if b { 2 } else { 1 };
            for list in 0..lists {
                let n = if list == 0 { l0 } else { l1 };
                for _ in 0..=n {
                    if r.flag()? {
                        r.se()?;
                        r.se()?;
                    }
                    if sps.chroma_array_type != 0 && r.flag()? {
                        for _ in 0..4 {
                            r.se()?;
                        }
                    }
                }
            }
        }
        if nal_ref_idc != 0 {
            // dec_ref_pic_marking()
            if idr {
                r.skip(2)?; // no_output_of_prior_pics_flag, long_term_reference_flag
            } else if r.flag()? {
                // adaptive_ref_pic_marking_mode_flag: memory_management_control_operation list.
                let mut done = false;
                for _ in 0..=66 {
                    let mmco = r.ue()?;
                    match mmco {
                        0 => {
                            done = true;
                            break;
                        }
                        1 | 2 | 4 | 6 => {
                            r.ue()?;
                        }
                        3 => {
                            r.ue()?;
                            r.ue()?;
                        }
                        5 => {}
                        _ => return None,
                    }
                }
                if !done {
                    return None;
                }
            }
        }
        if pps.entropy_coding_mode && !i && !si && r.ue()? > 2 {
            return None; // cabac_init_idc out of range
        }
        r.se()?; // slice_qp_delta
        if sp || si {
            if sp {
                r.skip(1)?; // sp_for_switch_flag
            }
            r.se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present {
            let idc = r.ue()?;
            if idc > 6 {
                return None;
            }
            if idc != 1 {
                r.se()?;
                r.se()?;
            }
        }
        // (slice_group_change_cycle: slice groups fall back above.)
        let header_bits = r.position();
        // CABAC slice data starts with cabac_alignment_one_bit up to the byte boundary: a free
        // check that the parameter sets matched this slice.
        if pps.entropy_coding_mode {
            while r.position() % 8 != 0 {
                if !r.flag()? {
                    return None;
                }
            }
        }
        rbsp.escaped_len(header_bits)
    }

    /// NAL unit header + slice_segment_header() (byte_alignment() included) of an HEVC coded
    /// slice segment, as a length in the escaped NAL unit (ITU-T H.265 7.3.6.1).
    fn hevc_header_end(&self, nal: &[u8], nal_type: u8) -> Option<usize> {
        // Reserved VCL types (10–15, 22–31) have no syntax to follow.
        if !(nal_type <= 9 || (16..=21).contains(&nal_type)) {
            return None;
        }
        scan_header(nal, |rbsp| self.hevc_header_end_in(nal_type, rbsp))
    }

    fn hevc_header_end_in(&self, nal_type: u8, rbsp: &Rbsp) -> Option<usize> {
        let mut r = rbsp.reader(16);
        let first_slice_segment_in_pic = r.flag()?;
        if (16..=23).contains(&nal_type) {
            r.skip(1)?; // no_output_of_prior_pics_flag
        }
        let pps = self.hevc_pps.get(&r.ue()?)?;
        let sps = self.hevc_sps.get(&pps.sps_id)?;
        let mut dependent = false;
        if !first_slice_segment_in_pic {
            if pps.dependent_slice_segments_enabled {
                dependent = r.flag()?;
            }
            r.skip(sps.slice_segment_address_bits)?;
        }
        if !dependent {
            r.skip(pps.num_extra_slice_header_bits)?; // slice_reserved_flag[]
            let slice_type = r.ue()?; // 0 B, 1 P, 2 I
            if slice_type > 2 {
                return None;
            }
            let (b, p) = (slice_type == 0, slice_type == 1);
            if pps.output_flag_present {
                r.skip(1)?;
            }
            if sps.separate_colour_plane {
                r.skip(2)?;
            }
            let mut num_pic_total_curr = 0u32;
            let mut slice_temporal_mvp = false;
            if nal_type != 19 && nal_type != 20 {
                r.skip(sps.log2_max_poc_lsb)?; // slice_pic_order_cnt_lsb
                let num_sets = sps.st_rps.len();
                if !r.flag()? {
                    // short_term_ref_pic_set_sps_flag == 0: the set is coded here.
                    let rps = parse_st_rps(&mut r, num_sets, num_sets, &sps.st_rps)?;
                    num_pic_total_curr += rps.used_count();
                } else {
                    let idx = if num_sets > 1 { r.read(ceil_log2(num_sets as u32))? as usize } else { 0 };
                    num_pic_total_curr += sps.st_rps.get(idx)?.used_count();
                }
                if sps.long_term_ref_pics_present {
                    let num_lt_sps_avail = sps.lt_used_by_curr_sps.len() as u32;
                    let num_long_term_sps = if num_lt_sps_avail > 0 { r.ue()? } else { 0 };
                    if num_long_term_sps > num_lt_sps_avail {
                        return None;
                    }
                    let num_long_term_pics = r.ue()?;
                    if num_long_term_pics > 32 {
                        return None;
                    }
                    for k in 0..num_long_term_sps + num_long_term_pics {
                        let used = if k < num_long_term_sps {
                            let idx = if num_lt_sps_avail > 1 { r.read(ceil_log2(num_lt_sps_avail))? } else { 0 };
                            *sps.lt_used_by_curr_sps.get(idx as usize)?
                        } else {
                            r.skip(sps.log2_max_poc_lsb)?; // poc_lsb_lt
                            r.flag()?
                        };
                        num_pic_total_curr += used as u32;
                        if r.flag()? {
                            r.ue()?; // delta_poc_msb_cycle_lt
                        }
                    }
                }
                if sps.temporal_mvp_enabled {
                    slice_temporal_mvp = r.flag()?;
                }
            }
            let (mut sao_luma, mut sao_chroma) = (false, false);
            if sps.sao_enabled {
                sao_luma = r.flag()?;
                if sps.chroma_array_type != 0 {
                    sao_chroma = r.flag()?;
                }
            }
            if p || b {
                let (mut l0, mut l1) = (pps.num_ref_idx_l0_default_minus1, pps.num_ref_idx_l1_default_minus1);
                if r.flag()? {
                    l0 = r.ue()?;
                    if b {
                        l1 = r.ue()?;
                    }
                }
                if l0 > 14 || l1 > 14 {
                    return None;
                }
                if pps.lists_modification_present && num_pic_total_curr > 1 {
                    let bits = ceil_log2(num_pic_total_curr);
                    if r.flag()? {
                        r.skip(bits * (l0 + 1))?; // list_entry_l0[]
                    }
                    if b && r.flag()? {
                        r.skip(bits * (l1 + 1))?; // list_entry_l1[]
                    }
                }
                if b {
                    r.skip(1)?; // mvd_l1_zero_flag
                }
                if pps.cabac_init_present {
                    r.skip(1)?; // cabac_init_flag
                }
                if slice_temporal_mvp {
                    let collocated_from_l0 = if b { r.flag()? } else { true };
                    if (collocated_from_l0 && l0 > 0) || (!collocated_from_l0 && l1 > 0) {
                        r.ue()?; // collocated_ref_idx
                    }
                }
                if (pps.weighted_pred && p) || (pps.weighted_bipred && b) {
                    // pred_weight_table(): every reference is another picture here (no
                    // pps_curr_pic_ref: PPS extensions fall back).
                    r.ue()?; // luma_log2_weight_denom
                    if sps.chroma_array_type != 0 {
                        r.se()?; // delta_chroma_log2_weight_denom
                    }
                    let lists = if b { 2 } else { 1 };
                    for list in 0..lists {
                        let n = (if list == 0 { l0 } else { l1 }) as usize + 1;
                        let mut luma = [false; 16];
                        let mut chroma = [false; 16];
                        for flag in luma.iter_mut().take(n) {
                            *flag = r.flag()?;
                        }
                        if sps.chroma_array_type != 0 {
                            for flag in chroma.iter_mut().take(n) {
                                *flag = r.flag()?;
                            }
                        }
                        for k in 0..n {
                            if luma[k] {
                                r.se()?;
                                r.se()?;
                            }
                            if chroma[k] {
                                for _ in 0..4 {
                                    r.se()?;
                                }
                            }
                        }
                    }
                }
                if r.ue()? > 4 {
                    return None; // five_minus_max_num_merge_cand
                }
            }
            r.se()?; // slice_qp_delta
            if pps.slice_chroma_qp_offsets_present {
                r.se()?;
                r.se()?;
            }
            let mut deblocking_disabled = pps.deblocking_filter_disabled;
            let override_flag = if pps.deblocking_filter_override_enabled { r.flag()? } else { false };
            if override_flag {
                deblocking_disabled = r.flag()?;
                if !deblocking_disabled {
                    r.se()?;
                    r.se()?;
                }
            }
            if pps.loop_filter_across_slices_enabled && (sao_luma || sao_chroma || !deblocking_disabled) {
                r.skip(1)?; // slice_loop_filter_across_slices_enabled_flag
            }
        }
        if pps.tiles_enabled || pps.entropy_coding_sync_enabled {
            let n = r.ue()?;
            if n > 0 {
                let len = r.ue()?.saturating_add(1);
                if len > 32 {
                    return None;
                }
                r.skip(len.checked_mul(n)?)?; // entry_point_offset_minus1[]
            }
        }
        if pps.slice_segment_header_extension_present {
            let n = r.ue()?;
            if n > 256 {
                return None;
            }
            r.skip(8 * n)?;
        }
        // byte_alignment(): a one bit, then zero bits up to the byte boundary.
        if !r.flag()? {
            return None;
        }
        while r.position() % 8 != 0 {
            if r.flag()? {
                return None;
            }
        }
        rbsp.escaped_len(r.position())
    }
}

/// Measures a slice header with `parse` over the unescaped start of `nal`: first over
/// [`HEADER_FIRST_SCAN`] bytes, and over [`HEADER_SCAN_LIMIT`] only when that was not enough.
/// Slice header parsing only fails, never branches, on running out of bits, so a header that
/// ends within the shorter prefix is measured exactly as over the longer one; unescaping
/// 4 KiB of every slice cost more than the rest of its encryption.
fn scan_header(nal: &[u8], parse: impl Fn(&Rbsp) -> Option<usize>) -> Option<usize> {
    parse(&Rbsp::new(nal, HEADER_FIRST_SCAN))
        .or_else(|| (nal.len() > HEADER_FIRST_SCAN).then(|| parse(&Rbsp::new(nal, HEADER_SCAN_LIMIT))).flatten())
}

/// A parsed end is used only when it leaves the NAL unit header clear and some slice data
/// after it.
fn checked_end(end: Option<usize>, header_len: usize, nal_len: usize) -> Option<usize> {
    end.filter(|&e| e >= header_len && e < nal_len)
}

/// ref_pic_list_modification() for one list (H.264 7.3.3.1).
fn avc_ref_pic_list_modification(r: &mut BitReader<'_>) -> Option<()> {
    if !r.flag()? {
        return Some(());
    }
    for _ in 0..=33 {
        match r.ue()? {
            3 => return Some(()),
            0..=2 => {
                r.ue()?;
            }
            _ => return None,
        }
    }
    None
}

/// Ceil(Log2(n)) for n ≥ 1.
fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

// ------------------------------------------------------------------ AVC parameter sets

#[derive(Debug, Clone, Copy)]
enum AvcPoc {
    /// pic_order_cnt_type 0.
    Lsb { log2_max_lsb: u32 },
    /// pic_order_cnt_type 1.
    Deltas { always_zero: bool },
    /// pic_order_cnt_type 2.
    None,
}

/// The seq_parameter_set_data() fields a slice header depends on (H.264 7.3.2.1.1).
#[derive(Debug, Clone)]
struct AvcSps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    poc: AvcPoc,
    frame_mbs_only: bool,
    /// The cropped picture size, when the SPS reads that far.
    size: Option<(u32, u32)>,
    /// The VUI colour description, when there is one.
    colour: Option<Colour>,
}

/// The cropped picture size (width, height) an SPS NAL unit declares: H.264 frame cropping
/// (7.4.2.1.1), H.265 conformance window (7.4.3.2.1). `None` when the SPS cannot be read (or,
/// for H.265, is of a profile the slice parser does not follow).
pub(crate) fn sps_picture_size(nal: &[u8], hevc: bool) -> Option<(u32, u32)> {
    if hevc {
        HevcSps::read(nal)?.1?.size
    } else {
        AvcSps::read(nal)?.1?.size
    }
}

/// The colour description in the VUI of an SPS NAL unit (H.264 E.1.1, H.265 E.2.1), when it
/// has one and the SPS reads that far.
pub(crate) fn sps_colour(nal: &[u8], hevc: bool) -> Option<Colour> {
    if hevc {
        HevcSps::read(nal)?.1?.colour
    } else {
        AvcSps::read(nal)?.1?.colour
    }
}

/// The luma size of a coded picture less its cropping window, in chroma units of `chroma_array_type`
/// (`unit_y` scales the vertical unit: 2 for H.264 field coding).
fn cropped(width: u32, height: u32, chroma_array_type: u32, unit_y: u32, crop: [u32; 4]) -> Option<(u32, u32)> {
    let (sub_w, sub_h): (u32, u32) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let [left, right, top, bottom] = crop;
    let w = width.checked_sub(sub_w.checked_mul(left.checked_add(right)?)?)?;
    let h = height.checked_sub((sub_h * unit_y).checked_mul(top.checked_add(bottom)?)?)?;
    Some((w, h))
}

impl AvcSps {
    /// An SPS NAL unit: `None` when even its id is unreadable, `(id, None)` when the rest is not.
    fn read(nal: &[u8]) -> Option<(u32, Option<AvcSps>)> {
        let rbsp = Rbsp::new(nal, HEADER_SCAN_LIMIT);
        let mut r = rbsp.reader(8);
        let profile_idc = r.read(8)?;
        r.skip(16)?; // constraint flags, level_idc
        let id = r.ue()?;
        Some((id, AvcSps::parse(&mut r, profile_idc)))
    }

    /// From just after seq_parameter_set_id.
    fn parse(r: &mut BitReader<'_>, profile_idc: u32) -> Option<AvcSps> {
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return None;
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.flag()? {
                // seq_scaling_matrix_present_flag
                let lists = if chroma_format_idc != 3 { 8 } else { 12 };
                for k in 0..lists {
                    if r.flag()? {
                        avc_scaling_list(r, if k < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = r.ue()?.saturating_add(4);
        if log2_max_frame_num > 16 {
            return None;
        }
        let poc = match r.ue()? {
            0 => {
                let log2_max_lsb = r.ue()?.saturating_add(4);
                if log2_max_lsb > 16 {
                    return None;
                }
                AvcPoc::Lsb { log2_max_lsb }
            }
            1 => {
                let always_zero = r.flag()?;
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let n = r.ue()?;
                if n > 255 {
                    return None;
                }
                for _ in 0..n {
                    r.se()?;
                }
                AvcPoc::Deltas { always_zero }
            }
            2 => AvcPoc::None,
            _ => return None,
        };
        r.ue()?; // max_num_ref_frames
        r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
        let width_in_mbs = r.ue()?.saturating_add(1);
        let height_in_map_units = r.ue()?.saturating_add(1);
        let frame_mbs_only = r.flag()?;
        let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
        let size = (|| {
            if !frame_mbs_only {
                r.skip(1)?; // mb_adaptive_frame_field_flag
            }
            r.skip(1)?; // direct_8x8_inference_flag
            let crop = if r.flag()? { [r.ue()?, r.ue()?, r.ue()?, r.ue()?] } else { [0; 4] };
            let field_factor = if frame_mbs_only { 1 } else { 2 };
            let width = width_in_mbs.checked_mul(16)?;
            let height = height_in_map_units.checked_mul(16 * field_factor)?;
            cropped(width, height, chroma_array_type, field_factor, crop)
        })();
        // vui_parameters_present_flag follows the cropping window.
        let colour = size.and_then(|_| if r.flag()? { vui_colour(r) } else { None });
        Some(AvcSps { separate_colour_plane, chroma_array_type, log2_max_frame_num, poc, frame_mbs_only, size, colour })
    }
}

/// scaling_list() (H.264 7.3.2.1.1.1): only its length matters here.
fn avc_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// The pic_parameter_set_rbsp() fields a slice header depends on (H.264 7.3.2.2).
#[derive(Debug, Clone)]
struct AvcPps {
    sps_id: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    /// num_slice_groups_minus1 > 0 (FMO, Baseline/Extended): not parsed, falls back.
    slice_groups: bool,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

impl AvcPps {
    /// From just after pic_parameter_set_id.
    fn parse(r: &mut BitReader<'_>) -> Option<AvcPps> {
        let sps_id = r.ue()?;
        let entropy_coding_mode = r.flag()?;
        let bottom_field_pic_order_in_frame_present = r.flag()?;
        let slice_groups = r.ue()? > 0;
        if slice_groups {
            // The slice group map would have to be skipped to reach the fields below.
            return Some(AvcPps {
                sps_id,
                entropy_coding_mode,
                bottom_field_pic_order_in_frame_present,
                slice_groups,
                num_ref_idx_l0_default_minus1: 0,
                num_ref_idx_l1_default_minus1: 0,
                weighted_pred: false,
                weighted_bipred_idc: 0,
                deblocking_filter_control_present: false,
                redundant_pic_cnt_present: false,
            });
        }
        let num_ref_idx_l0_default_minus1 = r.ue()?;
        let num_ref_idx_l1_default_minus1 = r.ue()?;
        let weighted_pred = r.flag()?;
        let weighted_bipred_idc = r.read(2)?;
        r.se()?; // pic_init_qp_minus26
        r.se()?; // pic_init_qs_minus26
        r.se()?; // chroma_qp_index_offset
        let deblocking_filter_control_present = r.flag()?;
        r.skip(1)?; // constrained_intra_pred_flag
        let redundant_pic_cnt_present = r.flag()?;
        Some(AvcPps {
            sps_id,
            entropy_coding_mode,
            bottom_field_pic_order_in_frame_present,
            slice_groups,
            num_ref_idx_l0_default_minus1,
            num_ref_idx_l1_default_minus1,
            weighted_pred,
            weighted_bipred_idc,
            deblocking_filter_control_present,
            redundant_pic_cnt_present,
        })
    }
}

// ------------------------------------------------------------------ HEVC parameter sets

/// A short-term reference picture set (H.265 7.4.8): delta POCs and used_by_curr flags.
#[derive(Debug, Clone, Default)]
struct StRps {
    s0: Vec<(i32, bool)>,
    s1: Vec<(i32, bool)>,
}

impl StRps {
    fn num_delta_pocs(&self) -> usize {
        self.s0.len() + self.s1.len()
    }
    fn used_count(&self) -> u32 {
        self.s0.iter().chain(&self.s1).filter(|(_, used)| *used).count() as u32
    }
}

/// st_ref_pic_set(idx) (H.265 7.3.7), with the derivation of 7.4.8 when it is predicted from
/// an earlier set; `sets` are the sets parsed so far, `num_sets` is the SPS's
/// num_short_term_ref_pic_sets (`idx == num_sets`: the set is coded in a slice header).
fn parse_st_rps(r: &mut BitReader<'_>, idx: usize, num_sets: usize, sets: &[StRps]) -> Option<StRps> {
    let inter = idx != 0 && r.flag()?;
    if inter {
        let delta_idx = if idx == num_sets { r.ue()? as usize + 1 } else { 1 };
        let reference = sets.get(idx.checked_sub(delta_idx)?)?;
        let sign = r.flag()?;
        let abs = r.ue()? as i64 + 1;
        if abs > 1 << 15 {
            return None;
        }
        let delta_rps = (if sign { -abs } else { abs }) as i32;
        let n = reference.num_delta_pocs();
        let mut used = Vec::with_capacity(n + 1);
        let mut use_delta = Vec::with_capacity(n + 1);
        for _ in 0..=n {
            let u = r.flag()?;
            let d = if u { true } else { r.flag()? };
            used.push(u);
            use_delta.push(d);
        }
        // 7-61 / 7-62: reference pictures in increasing / decreasing POC distance.
        let (rs0, rs1) = (&reference.s0, &reference.s1);
        let (n0, n1) = (rs0.len(), rs1.len());
        let mut out = StRps::default();
        for j in (0..n1).rev() {
            let d = rs1[j].0 + delta_rps;
            if d < 0 && use_delta[n0 + j] {
                out.s0.push((d, used[n0 + j]));
            }
        }
        if delta_rps < 0 && use_delta[n] {
            out.s0.push((delta_rps, used[n]));
        }
        for j in 0..n0 {
            let d = rs0[j].0 + delta_rps;
            if d < 0 && use_delta[j] {
                out.s0.push((d, used[j]));
            }
        }
        for j in (0..n0).rev() {
            let d = rs0[j].0 + delta_rps;
            if d > 0 && use_delta[j] {
                out.s1.push((d, used[j]));
            }
        }
        if delta_rps > 0 && use_delta[n] {
            out.s1.push((delta_rps, used[n]));
        }
        for j in 0..n1 {
            let d = rs1[j].0 + delta_rps;
            if d > 0 && use_delta[n0 + j] {
                out.s1.push((d, used[n0 + j]));
            }
        }
        if out.s0.len() > 16 || out.s1.len() > 16 {
            return None;
        }
        Some(out)
    } else {
        let num_negative = r.ue()?;
        let num_positive = r.ue()?;
        if num_negative > 16 || num_positive > 16 {
            return None;
        }
        let mut out = StRps::default();
        let mut poc = 0i32;
        for _ in 0..num_negative {
            poc -= r.ue()?.min(1 << 15) as i32 + 1;
            out.s0.push((poc, r.flag()?));
        }
        poc = 0;
        for _ in 0..num_positive {
            poc += r.ue()?.min(1 << 15) as i32 + 1;
            out.s1.push((poc, r.flag()?));
        }
        Some(out)
    }
}

/// The seq_parameter_set_rbsp() fields a slice segment header depends on (H.265 7.3.2.2).
#[derive(Debug, Clone)]
struct HevcSps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_poc_lsb: u32,
    slice_segment_address_bits: u32,
    sao_enabled: bool,
    st_rps: Vec<StRps>,
    long_term_ref_pics_present: bool,
    lt_used_by_curr_sps: Vec<bool>,
    temporal_mvp_enabled: bool,
    /// The picture size less the conformance window.
    size: Option<(u32, u32)>,
    /// The VUI colour description, when there is one.
    colour: Option<Colour>,
}

impl HevcSps {
    fn read(nal: &[u8]) -> Option<(u32, Option<HevcSps>)> {
        let rbsp = Rbsp::new(nal, HEADER_SCAN_LIMIT);
        HevcSps::parse(&mut rbsp.reader(16))
    }

    /// From just after the NAL unit header: `None` when even the id is unreadable, `(id,
    /// None)` when the set cannot be used (a profile with slice header extensions — SCC,
    /// multi-layer, 3D: only Main, Main 10, Main Still Picture and RExt are followed).
    fn parse(r: &mut BitReader<'_>) -> Option<(u32, Option<HevcSps>)> {
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.read(3)?;
        r.skip(1)?; // sps_temporal_id_nesting_flag
                    // profile_tier_level(1, max_sub_layers_minus1)
        r.skip(3)?; // general_profile_space, general_tier_flag
        let general_profile_idc = r.read(5)?;
        r.skip(32 + 48 + 8)?; // compatibility flags, constraint flags, general_level_idc
        let mut sub_layers = Vec::new();
        for _ in 0..max_sub_layers_minus1 {
            sub_layers.push((r.flag()?, r.flag()?));
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - max_sub_layers_minus1))?;
        }
        for (profile_present, level_present) in sub_layers {
            if profile_present {
                r.skip(88)?;
            }
            if level_present {
                r.skip(8)?;
            }
        }
        let id = r.ue()?;
        Some((id, Self::parse_rest(r, general_profile_idc, max_sub_layers_minus1)))
    }

    fn parse_rest(r: &mut BitReader<'_>, general_profile_idc: u32, max_sub_layers_minus1: u32) -> Option<HevcSps> {
        if !(1..=4).contains(&general_profile_idc) {
            return None;
        }
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
        let width = r.ue()?;
        let height = r.ue()?;
        let conformance_window = if r.flag()? { [r.ue()?, r.ue()?, r.ue()?, r.ue()?] } else { [0; 4] };
        let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
        let size = cropped(width, height, chroma_array_type, 1, conformance_window);
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        let log2_max_poc_lsb = r.ue()?.saturating_add(4);
        if log2_max_poc_lsb > 16 {
            return None;
        }
        let sub_layer_ordering_info_present = r.flag()?;
        let entries = if sub_layer_ordering_info_present { max_sub_layers_minus1 + 1 } else { 1 };
        for _ in 0..entries {
            r.ue()?; // sps_max_dec_pic_buffering_minus1
            r.ue()?; // sps_max_num_reorder_pics
            r.ue()?; // sps_max_latency_increase_plus1
        }
        let log2_min_cb = r.ue()?.saturating_add(3);
        let log2_ctb = log2_min_cb.saturating_add(r.ue()?);
        if !(3..=7).contains(&log2_min_cb) || !(4..=7).contains(&log2_ctb) {
            return None;
        }
        r.ue()?; // log2_min_luma_transform_block_size_minus2
        r.ue()?; // log2_diff_max_min_luma_transform_block_size
        r.ue()?; // max_transform_hierarchy_depth_inter
        r.ue()?; // max_transform_hierarchy_depth_intra
        if r.flag()? && r.flag()? {
            // scaling_list_enabled_flag, sps_scaling_list_data_present_flag
            hevc_scaling_list_data(r)?;
        }
        r.skip(1)?; // amp_enabled_flag
        let sao_enabled = r.flag()?;
        if r.flag()? {
            // pcm_enabled_flag
            r.skip(8)?; // pcm_sample_bit_depth_luma_minus1, pcm_sample_bit_depth_chroma_minus1
            r.ue()?;
            r.ue()?;
            r.skip(1)?; // pcm_loop_filter_disabled_flag
        }
        let num_sets = r.ue()? as usize;
        if num_sets > 64 {
            return None;
        }
        let mut st_rps = Vec::with_capacity(num_sets);
        for k in 0..num_sets {
            let set = parse_st_rps(r, k, num_sets, &st_rps)?;
            st_rps.push(set);
        }
        let long_term_ref_pics_present = r.flag()?;
        let mut lt_used_by_curr_sps = Vec::new();
        if long_term_ref_pics_present {
            let n = r.ue()?;
            if n > 32 {
                return None;
            }
            for _ in 0..n {
                r.skip(log2_max_poc_lsb)?; // lt_ref_pic_poc_lsb_sps
                lt_used_by_curr_sps.push(r.flag()?);
            }
        }
        let temporal_mvp_enabled = r.flag()?;
        // strong_intra_smoothing_enabled_flag, vui_parameters_present_flag.
        let colour = (|| if r.skip(1).is_some() && r.flag()? { vui_colour(r) } else { None })();
        let ctb = 1u32 << log2_ctb;
        let pic_size_in_ctbs = (width.div_ceil(ctb) as u64) * (height.div_ceil(ctb) as u64);
        if pic_size_in_ctbs == 0 || pic_size_in_ctbs > 1 << 24 {
            return None;
        }
        Some(HevcSps {
            separate_colour_plane,
            chroma_array_type,
            log2_max_poc_lsb,
            slice_segment_address_bits: ceil_log2(pic_size_in_ctbs as u32),
            sao_enabled,
            st_rps,
            long_term_ref_pics_present,
            lt_used_by_curr_sps,
            temporal_mvp_enabled,
            size,
            colour,
        })
    }
}

/// scaling_list_data() (H.265 7.3.4): only its length matters here.
fn hevc_scaling_list_data(r: &mut BitReader<'_>) -> Option<()> {
    for size_id in 0..4 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _matrix_id in (0..6).step_by(step) {
            if !r.flag()? {
                r.ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                let coefs = 64.min(1 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefs {
                    r.se()?; // scaling_list_delta_coef
                }
            }
        }
    }
    Some(())
}

/// The pic_parameter_set_rbsp() fields a slice segment header depends on (H.265 7.3.2.3.1).
#[derive(Debug, Clone)]
struct HevcPps {
    sps_id: u32,
    dependent_slice_segments_enabled: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
    cabac_init_present: bool,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    slice_chroma_qp_offsets_present: bool,
    weighted_pred: bool,
    weighted_bipred: bool,
    tiles_enabled: bool,
    entropy_coding_sync_enabled: bool,
    loop_filter_across_slices_enabled: bool,
    deblocking_filter_override_enabled: bool,
    deblocking_filter_disabled: bool,
    lists_modification_present: bool,
    slice_segment_header_extension_present: bool,
}

impl HevcPps {
    /// From just after pps_pic_parameter_set_id. A PPS with extensions (range extension
    /// chroma QP offset lists, SCC, multi-layer: slice header syntax of their own) is `None`.
    fn parse(r: &mut BitReader<'_>) -> Option<HevcPps> {
        let sps_id = r.ue()?;
        let dependent_slice_segments_enabled = r.flag()?;
        let output_flag_present = r.flag()?;
        let num_extra_slice_header_bits = r.read(3)?;
        r.skip(1)?; // sign_data_hiding_enabled_flag
        let cabac_init_present = r.flag()?;
        let num_ref_idx_l0_default_minus1 = r.ue()?;
        let num_ref_idx_l1_default_minus1 = r.ue()?;
        r.se()?; // init_qp_minus26
        r.skip(2)?; // constrained_intra_pred_flag, transform_skip_enabled_flag
        if r.flag()? {
            r.ue()?; // diff_cu_qp_delta_depth
        }
        r.se()?; // pps_cb_qp_offset
        r.se()?; // pps_cr_qp_offset
        let slice_chroma_qp_offsets_present = r.flag()?;
        let weighted_pred = r.flag()?;
        let weighted_bipred = r.flag()?;
        r.skip(1)?; // transquant_bypass_enabled_flag
        let tiles_enabled = r.flag()?;
        let entropy_coding_sync_enabled = r.flag()?;
        if tiles_enabled {
            let cols = r.ue()?;
            let rows = r.ue()?;
            if cols > 64 || rows > 64 {
                return None;
            }
            if !r.flag()? {
                // uniform_spacing_flag == 0
                for _ in 0..cols + rows {
                    r.ue()?;
                }
            }
            r.skip(1)?; // loop_filter_across_tiles_enabled_flag
        }
        let loop_filter_across_slices_enabled = r.flag()?;
        let (mut deblocking_filter_override_enabled, mut deblocking_filter_disabled) = (false, false);
        if r.flag()? {
            // deblocking_filter_control_present_flag
            deblocking_filter_override_enabled = r.flag()?;
            deblocking_filter_disabled = r.flag()?;
            if !deblocking_filter_disabled {
                r.se()?;
                r.se()?;
            }
        }
        if r.flag()? {
            hevc_scaling_list_data(r)?;
        }
        let lists_modification_present = r.flag()?;
        r.ue()?; // log2_parallel_merge_level_minus2
        let slice_segment_header_extension_present = r.flag()?;
        if r.flag()? {
            return None; // pps_extension_present_flag
        }
        Some(HevcPps {
            sps_id,
            dependent_slice_segments_enabled,
            output_flag_present,
            num_extra_slice_header_bits,
            cabac_init_present,
            num_ref_idx_l0_default_minus1,
            num_ref_idx_l1_default_minus1,
            slice_chroma_qp_offsets_present,
            weighted_pred,
            weighted_bipred,
            tiles_enabled,
            entropy_coding_sync_enabled,
            loop_filter_across_slices_enabled,
            deblocking_filter_override_enabled,
            deblocking_filter_disabled,
            lists_modification_present,
            slice_segment_header_extension_present,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mp4::reader::boxes;
    use std::path::Path;
    use std::process::Command;

    #[test]
    fn vcl_types() {
        let mut p = SliceHeaderParser::default();
        for (t, vcl) in [(1u8, true), (5, true), (6, false), (7, false), (8, false), (9, false), (20, false)] {
            assert_eq!(
                matches!(p.classify(&[0x60 | t, 0], false), NalClass::Vcl { header_len: 1, .. }),
                vcl,
                "AVC {t}"
            );
        }
        for (t, vcl) in [
            (0u8, true),
            (1, true),
            (19, true),
            (21, true),
            (32, false),
            (33, false),
            (34, false),
            (35, false),
            (39, false),
        ] {
            assert_eq!(matches!(p.classify(&[t << 1, 1], true), NalClass::Vcl { header_len: 2, .. }), vcl, "HEVC {t}");
        }
        assert_eq!(p.classify(&[], false), NalClass::NonVcl);
        // Without parameter sets, no header length (the conservative rule applies).
        assert_eq!(
            p.classify(&[0x65, 0x88, 0x84, 0, 0x20], false),
            NalClass::Vcl { header_len: 1, slice_header_end: None }
        );
    }

    #[test]
    fn ceil_log2_values() {
        assert_eq!(
            (ceil_log2(1), ceil_log2(2), ceil_log2(3), ceil_log2(4), ceil_log2(5), ceil_log2(60)),
            (0, 1, 2, 2, 3, 6)
        );
    }

    fn bits(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| *b == b'0' || *b == b'1').collect();
        s.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |a, (k, &b)| a | ((b - b'0') << (7 - k)))).collect()
    }

    #[test]
    fn short_term_rps_prediction() {
        // SPS with 2 sets. Set 0: S0 = {-1, -2}, S1 = {+1}, all used.
        // Set 1, predicted from set 0 (no delta_idx in an SPS), deltaRps = -1:
        // used -1→-2, -2→-3, +1→0 dropped (use_delta 0), deltaRps itself used.
        let data = bits("011 010 1 1 1 1 1 1   1 1 1   1 1 00 1");
        let mut r = BitReader::new(&data);
        let mut sets = Vec::new();
        for k in 0..2 {
            let set = parse_st_rps(&mut r, k, 2, &sets).unwrap();
            sets.push(set);
        }
        assert_eq!(r.position(), 20);
        assert_eq!(sets[0].s0, [(-1, true), (-2, true)]);
        assert_eq!(sets[0].s1, [(1, true)]);
        assert_eq!(sets[1].s0, [(-1, true), (-2, true), (-3, true)]);
        assert!(sets[1].s1.is_empty());
        // In a slice header (idx == num_sets): delta_idx_minus1 = 1 → set 0, deltaRps = +2:
        // -1→+1 used, -2→0 dropped, +1→+3 kept unused, deltaRps (+2) used.
        let data = bits("1 010 0 010  1  00  01  1");
        let mut r = BitReader::new(&data);
        let set = parse_st_rps(&mut r, 2, 2, &sets).unwrap();
        assert_eq!(r.position(), 14);
        assert!(set.s0.is_empty());
        assert_eq!(set.s1, [(1, true), (2, true), (3, false)]);
        assert_eq!(set.used_count(), 2);
        // A reference to a set that does not exist is a failure, not a panic.
        let data = bits("1 011 0 1 1111");
        assert!(parse_st_rps(&mut BitReader::new(&data), 2, 2, &sets).is_none());
    }

    fn fixture(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
    }

    /// The codec configuration and every sample (decode order) of the first track of an MP4 file.
    fn samples(path: &Path) -> (CodecConfig, Vec<Vec<u8>>) {
        let file = std::fs::read(path).unwrap();
        let moov = boxes(&file).map(|b| b.unwrap()).find(|b| &b.kind == b"moov").unwrap();
        let moov = crate::source::index::progressive::parse_moov(
            &bytes::Bytes::copy_from_slice(moov.payload),
            file.len() as u64,
        )
        .unwrap();
        let t = &moov.tracks[0];
        let samples = t
            .samples
            .offsets
            .iter()
            .zip(&t.samples.sizes)
            .map(|(&o, &s)| file[o as usize..o as usize + s as usize].to_vec())
            .collect();
        (t.info.codec.config.clone(), samples)
    }

    /// The end (in RBSP bits, NAL header included) of each slice header ffmpeg's
    /// `trace_headers` prints, in decode order. AVC: the last field before slice_data()
    /// (whose `cabac_alignment_one_bit`s ffmpeg lists with the header); HEVC: the last field,
    /// i.e. the end of byte_alignment().
    fn trace_header_ends(path: &Path, hevc: bool) -> Vec<usize> {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success());
        let title = if hevc { "Slice Segment Header" } else { "Slice Header" };
        let mut ends = Vec::new();
        let mut current: Option<usize> = None;
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            let Some((_, body)) = line.split_once("] ") else { continue };
            let body = body.trim();
            if body == title {
                ends.extend(current.take());
                current = Some(0);
                continue;
            }
            let tokens: Vec<&str> = body.split_whitespace().collect();
            let field = match tokens.as_slice() {
                [pos, name, bits, "=", _] => pos.parse::<usize>().ok().map(|p| (p, *name, bits.len())),
                _ => None,
            };
            match (field, current.as_mut()) {
                (Some((pos, name, len)), Some(end)) if name != "cabac_alignment_one_bit" => *end = pos + len,
                (None, Some(_)) => ends.extend(current.take()),
                _ => {}
            }
        }
        ends.extend(current);
        ends
    }

    /// Escaped NAL length of the first `rbsp_bytes` RBSP bytes (+ the escapes right after).
    fn escaped_offset(nal: &[u8], rbsp_bytes: usize) -> usize {
        let (mut count, mut zeros) = (0, 0);
        for (k, &b) in nal.iter().enumerate() {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            if count == rbsp_bytes {
                return k;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            count += 1;
        }
        nal.len()
    }

    fn check_fixture(file: &str, hevc: bool) {
        check_file(&fixture(file), hevc);
    }

    /// Every slice of the first track of `path` gets a header length, and it is ffmpeg's.
    fn check_file(path: &Path, hevc: bool) {
        let file = path.display();
        let path = path.to_path_buf();
        let (config, samples) = samples(&path);
        let length_size = usize::from(config.nal_length_size().unwrap());
        let mut parser = SliceHeaderParser::from_config(&config);
        let mut ours = Vec::new();
        for sample in &samples {
            let mut pos = 0;
            while pos + length_size <= sample.len() {
                let len = sample[pos..pos + length_size].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
                let nal = &sample[pos + length_size..pos + length_size + len];
                pos += length_size + len;
                if let NalClass::Vcl { header_len, slice_header_end } = parser.classify(nal, hevc) {
                    let end = slice_header_end.unwrap_or_else(|| panic!("{file}: slice {} not parsed", ours.len()));
                    assert!(
                        end >= header_len && end < nal.len(),
                        "{file}: slice {}: {end} of {}",
                        ours.len(),
                        nal.len()
                    );
                    ours.push((end, nal.to_vec()));
                }
            }
            assert_eq!(pos, sample.len());
        }
        let theirs = trace_header_ends(&path, hevc);
        assert_eq!(ours.len(), theirs.len(), "{file}: slice count");
        assert!(ours.len() >= samples.len());
        for (k, ((end, nal), bits)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(*end, escaped_offset(nal, bits.div_ceil(8)), "{file}: slice {k} ends at bit {bits}");
        }
    }

    /// A repeatable pseudo-random sequence (xorshift64) for mutating NAL units.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Truncated, bit-flipped and random NAL units (slices and parameter sets) never panic,
    /// and a parsed end always stays inside the NAL unit.
    #[test]
    fn garbage_does_not_panic() {
        let mut rand = xorshift(0x2545_f491_4f6c_dd1d);
        for (file, hevc) in [("ladder/video_150k.mp4", false), ("hevc/video_hevc.mp4", true)] {
            let (config, samples) = samples(&fixture(file));
            let base = SliceHeaderParser::from_config(&config);
            let nal = &samples[1][4..];
            for trial in 0..3000 {
                let mut p = base.clone();
                let mut n: Vec<u8> = nal[..nal.len().min(64)].to_vec();
                let len = 2 + (rand() as usize % (n.len() - 1));
                n.truncate(len);
                for _ in 0..(trial % 4) {
                    let bit = rand() as usize % (n.len() * 8);
                    n[bit / 8] ^= 1 << (bit % 8);
                }
                if trial % 5 == 0 {
                    n[2..].iter_mut().for_each(|b| *b = rand() as u8);
                }
                if trial % 7 == 0 {
                    // As a parameter set, then a real slice against whatever it left.
                    n[0] = if hevc { 33 << 1 | (n[0] & 0x81) } else { 0x67 };
                    if trial % 14 == 0 {
                        n[0] = if hevc { 34 << 1 } else { 0x68 };
                    }
                    p.classify(&n, hevc);
                    n = nal.to_vec();
                }
                if let NalClass::Vcl { header_len, slice_header_end: Some(end) } = p.classify(&n, hevc) {
                    assert!(end >= header_len && end < n.len());
                }
            }
        }
    }

    /// Measuring over a short prefix first gives the same end as over the whole scan limit,
    /// for real slices and bit-flipped ones (which often need more than the prefix or fail).
    #[test]
    fn short_first_scan_measures_like_the_full_scan() {
        let mut rand = xorshift(0x9e37_79b9_7f4a_7c15);
        for (file, hevc) in [("ladder/video_150k.mp4", false), ("hevc/video_hevc.mp4", true)] {
            let (config, samples) = samples(&fixture(file));
            let p = SliceHeaderParser::from_config(&config);
            for sample in samples.iter().take(20) {
                let nal = &sample[4..];
                for trial in 0..200 {
                    let mut n = nal.to_vec();
                    for _ in 0..(trial % 6) {
                        let bit = rand() as usize % (n.len().min(400) * 8);
                        n[bit / 8] ^= 1 << (bit % 8);
                    }
                    let t = (n[0] >> 1) & 0x3f;
                    if hevc && !(t <= 9 || (16..=21).contains(&t)) {
                        continue;
                    }
                    let (short, full) = if hevc {
                        (p.hevc_header_end(&n, t), p.hevc_header_end_in(t, &Rbsp::new(&n, HEADER_SCAN_LIMIT)))
                    } else {
                        (p.avc_header_end(&n), p.avc_header_end_in(&n, &Rbsp::new(&n, HEADER_SCAN_LIMIT)))
                    };
                    assert_eq!(short, full, "{file}");
                }
            }
        }
    }

    #[test]
    fn avc_slice_headers_match_ffmpeg() {
        check_fixture("ladder/video_150k.mp4", false);
    }

    #[test]
    fn hevc_slice_headers_match_ffmpeg() {
        check_fixture("hevc/video_hevc.mp4", true);
    }

    /// Encoder settings the fixtures do not cover: CAVLC, several slices per picture, MBAFF
    /// (frame_mbs_only_flag 0), POC type 2, 4:4:4, explicit weighted prediction, more
    /// references; HEVC slice segments with addresses, CRA/RASL, RPS sets in the SPS,
    /// 4:4:4 (RExt), 10-bit, no SAO, deblocking overrides.
    #[test]
    fn generated_slice_headers_match_ffmpeg() {
        let dir = tempfile::tempdir().unwrap();
        let x265 = "log-level=error:pools=1:frame-threads=1";
        let cases: &[(&str, bool, &[&str])] = &[
            (
                "cavlc",
                false,
                &["-c:v", "libx264", "-profile:v", "main", "-coder", "0", "-x264-params", "slices=3:bframes=2:ref=3"],
            ),
            (
                "mbaff",
                false,
                &["-c:v", "libx264", "-x264-params", "interlaced=1:tff=1:bframes=3:b-pyramid=strict:ref=4:weightp=2"],
            ),
            (
                "poc2_444",
                false,
                &[
                    "-c:v",
                    "libx264",
                    "-bf",
                    "0",
                    "-pix_fmt",
                    "yuv444p",
                    "-profile:v",
                    "high444",
                    "-x264-params",
                    "slices=2:ref=5:weightp=2",
                ],
            ),
            (
                "hevc_slices",
                true,
                &[
                    "-c:v",
                    "libx265",
                    "-x265-params",
                    &format!("slices=3:weightb=1:ref=4:bframes=4:b-pyramid=1:keyint=24:open-gop=1:{x265}"),
                ],
            ),
            (
                "hevc_rps_444",
                true,
                &[
                    "-c:v",
                    "libx265",
                    "-pix_fmt",
                    "yuv444p",
                    "-x265-params",
                    &format!("multi-pass-opt-rps=1:constrained-intra=1:deblock=1,-1:no-sao=1:tskip=1:keyint=12:{x265}"),
                ],
            ),
            (
                "hevc_10bit",
                true,
                &[
                    "-c:v",
                    "libx265",
                    "-pix_fmt",
                    "yuv420p10le",
                    "-x265-params",
                    &format!("slices=2:amp=1:signhide=0:bframes=3:weightp=1:keyint=30:min-keyint=5:{x265}"),
                ],
            ),
        ];
        for (name, hevc, args) in cases {
            let path = dir.path().join(format!("{name}.mp4"));
            let out = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=192x108:r=24:d=2", "-threads", "1"])
                .args(*args)
                .arg(&path)
                .output()
                .expect("ffmpeg runs");
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
            check_file(&path, *hevc);
        }
    }
}
