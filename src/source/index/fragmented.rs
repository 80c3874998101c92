//! Parsing movie fragments: `moof` (tfhd, tfdt, trun with every flag combination), and the
//! boxes that say where the fragments are without reading them all in turn: `sidx` and `mfra`.

use super::progressive::MoovTrack;
use crate::media::mp4::reader::{boxes, find, Cursor};
use crate::media::mp4::{tfhd, trun};
use crate::media::{err, MediaResult};

/// sample_is_non_sync_sample in sample flags.
const SAMPLE_IS_NON_SYNC: u32 = 0x1_0000;

/// Appends the samples of one `moof` (payload, starting at file offset `moof_offset`) to the
/// tracks it describes. Tracks not in `tracks` are skipped. `file_size` bounds the sample
/// counts that are not bounded by a `trun`'s own bytes.
pub fn append_moof(moof: &[u8], moof_offset: u64, file_size: u64, tracks: &mut [MoovTrack]) -> MediaResult<()> {
    // Where the previous traf's data ended: the implicit base of the next traf when neither
    // base-data-offset nor default-base-is-moof is set (ISO/IEC 14496-12 8.8.7.1).
    let mut previous_data_end: Option<u64> = None;
    for traf in boxes(moof) {
        let traf = traf?;
        if &traf.kind != b"traf" {
            continue;
        }
        let tfhd = match find(traf.payload, b"tfhd")? {
            Some(t) => t,
            None => return err("traf without tfhd"),
        };
        let mut c = Cursor::new(tfhd);
        let (_, flags) = c.full_box()?;
        let track_id = c.u32()?;
        let Some(track) = tracks.iter_mut().find(|t| t.info.track_id == track_id) else {
            continue;
        };
        let base_data_offset = if flags & tfhd::BASE_DATA_OFFSET != 0 { Some(c.u64()?) } else { None };
        if flags & tfhd::SAMPLE_DESCRIPTION_INDEX != 0 {
            c.u32()?;
        }
        let d = track.defaults;
        let default_duration = if flags & tfhd::DEFAULT_DURATION != 0 { c.u32()? } else { d.sample_duration };
        let default_size = if flags & tfhd::DEFAULT_SIZE != 0 { c.u32()? } else { d.sample_size };
        let default_flags = if flags & tfhd::DEFAULT_FLAGS != 0 { c.u32()? } else { d.sample_flags };
        let base = match base_data_offset {
            Some(b) => b,
            None if flags & tfhd::DEFAULT_BASE_IS_MOOF != 0 => moof_offset,
            None => previous_data_end.unwrap_or(moof_offset),
        };

        let table = &mut track.samples;
        if let Some(tfdt) = find(traf.payload, b"tfdt")? {
            let mut c = Cursor::new(tfdt);
            let (version, _) = c.full_box()?;
            let decode_time = c.u32_or_u64(version == 1)?;
            // Trust tfdt unless it would make time run backwards.
            if decode_time >= table.end_dts || table.is_empty() {
                table.end_dts = decode_time;
            }
        }
        let first_new_sample = table.len() as u32;
        let mut data_cursor = base;
        for trun in boxes(traf.payload) {
            let trun = trun?;
            if &trun.kind != b"trun" {
                continue;
            }
            let mut c = Cursor::new(trun.payload);
            let (_, tr_flags) = c.full_box()?;
            let count = c.u32()?;
            if tr_flags & trun::DATA_OFFSET != 0 {
                let data_offset = c.i32()?;
                let Some(start) = base.checked_add_signed(data_offset as i64) else {
                    return err(format!("trun data_offset {data_offset} from base {base} points outside the file"));
                };
                data_cursor = start;
            }
            let first_flags = if tr_flags & trun::FIRST_SAMPLE_FLAGS != 0 { Some(c.u32()?) } else { None };
            let per_sample =
                [trun::DURATION, trun::SIZE, trun::FLAGS, trun::CTS].iter().filter(|&&f| tr_flags & f != 0).count() * 4;
            let count = if per_sample > 0 { c.check_table(count, per_sample, "trun")? } else { count as usize };
            if table.len() + count > super::MAX_SAMPLES {
                return err(format!("trun declares {count} samples, past the {} a track may have", super::MAX_SAMPLES));
            }
            // Without per-sample sizes the count is not bounded by the trun's bytes: the
            // samples (at least a byte each) must fit in what the file holds after their start.
            if tr_flags & trun::SIZE == 0
                && count as u64 * default_size.max(1) as u64 > file_size.saturating_sub(data_cursor)
            {
                return err(format!(
                    "trun declares {count} samples of {default_size} bytes at offset {data_cursor}, \
                     more than the file's {file_size} bytes hold"
                ));
            }
            for i in 0..count {
                let duration = if tr_flags & trun::DURATION != 0 { c.u32()? } else { default_duration };
                let size = if tr_flags & trun::SIZE != 0 { c.u32()? } else { default_size };
                let sample_flags = if tr_flags & trun::FLAGS != 0 {
                    c.u32()?
                } else if i == 0 {
                    first_flags.unwrap_or(default_flags)
                } else {
                    default_flags
                };
                // Version 0 offsets are unsigned by the letter of the spec, but writers put
                // negative ones there too; players read both as signed.
                let cts = if tr_flags & trun::CTS != 0 { c.u32()? as i32 } else { 0 };
                let index = table.sizes.len();
                table.dts.push(table.end_dts);
                let Some(end) = table.end_dts.checked_add(duration as u64) else {
                    return err("decode times overflow");
                };
                table.end_dts = end;
                table.sizes.push(size);
                table.offsets.push(data_cursor);
                data_cursor = data_cursor.saturating_add(size as u64);
                if cts != 0 && table.cts_offsets.len() < index {
                    table.cts_offsets.resize(index, 0);
                }
                if cts != 0 || !table.cts_offsets.is_empty() {
                    table.cts_offsets.push(cts);
                }
                let sync = sample_flags & SAMPLE_IS_NON_SYNC == 0;
                match (&mut table.sync_samples, sync) {
                    (Some(list), true) => list.push(index as u32),
                    (Some(_), false) => {}
                    (None, true) => {}
                    (None, false) => table.sync_samples = Some((0..index as u32).collect()),
                }
            }
        }
        previous_data_end = Some(data_cursor);
        if table.len() as u32 > first_new_sample {
            table.fragment_starts.push(first_new_sample);
        }
    }
    Ok(())
}

/// One reference of a `sidx`: where a subsegment (or a nested sidx) lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidxReference {
    pub offset: u64,
    pub size: u64,
    /// The reference points at another `sidx` (hierarchical index), not at media.
    pub is_index: bool,
}

/// Parses a `sidx` payload; `sidx_end` is the file offset just after the sidx box, from
/// which `first_offset` counts.
pub fn parse_sidx(sidx: &[u8], sidx_end: u64) -> MediaResult<Vec<SidxReference>> {
    let mut c = Cursor::new(sidx);
    let (version, _) = c.full_box()?;
    c.skip(8)?; // reference_ID, timescale
    c.skip(if version == 0 { 4 } else { 8 })?; // earliest_presentation_time
    let first_offset = c.u32_or_u64(version != 0)?;
    c.skip(2)?;
    let count = c.u16()? as u32;
    let count = c.check_table(count, 12, "sidx")?;
    let mut offset = sidx_end.saturating_add(first_offset);
    let mut refs = Vec::with_capacity(count);
    for _ in 0..count {
        let word = c.u32()?;
        c.skip(8)?; // subsegment_duration, SAP fields
        let size = (word & 0x7fff_ffff) as u64;
        refs.push(SidxReference { offset, size, is_index: word & 0x8000_0000 != 0 });
        offset = offset.saturating_add(size);
    }
    Ok(refs)
}

/// File offsets of every `moof` named by an `mfra` payload (all tracks' `tfra`), ascending.
pub fn parse_mfra(mfra: &[u8]) -> MediaResult<Vec<u64>> {
    let mut offsets = Vec::new();
    for b in boxes(mfra) {
        let b = b?;
        if &b.kind != b"tfra" {
            continue;
        }
        let mut c = Cursor::new(b.payload);
        let (version, _) = c.full_box()?;
        c.u32()?; // track_ID
        let lengths = c.u32()?;
        let field_len = |shift: u32| ((lengths >> shift) & 3) as usize + 1;
        let entry_len = if version == 1 { 16 } else { 8 } + field_len(4) + field_len(2) + field_len(0);
        let count = c.u32()?;
        let count = c.check_table(count, entry_len, "tfra")?;
        for _ in 0..count {
            c.skip(if version == 1 { 8 } else { 4 })?; // time
            offsets.push(c.u32_or_u64(version == 1)?);
            c.skip(field_len(4) + field_len(2) + field_len(0))?;
        }
    }
    offsets.sort_unstable();
    offsets.dedup();
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidx_references_follow_first_offset() {
        let mut p = vec![0, 0, 0, 0];
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes()); // ept
        p.extend_from_slice(&10u32.to_be_bytes()); // first_offset
        p.extend_from_slice(&[0, 0, 0, 2]);
        for size in [100u32, 200] {
            p.extend_from_slice(&size.to_be_bytes());
            p.extend_from_slice(&[0; 8]);
        }
        let refs = parse_sidx(&p, 500).unwrap();
        assert_eq!(refs[0], SidxReference { offset: 510, size: 100, is_index: false });
        assert_eq!(refs[1].offset, 610);
    }
}
