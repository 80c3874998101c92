//! Parsing `moov`: track facts and, for progressive files, the full sample tables
//! (stts, ctts, stss, stsc, stsz/stz2, stco/co64, elst). Fragmented files carry empty
//! tables here plus `mvex/trex` defaults; their samples come from the `moof`s.

use bytes::Bytes;

use super::{EditOffset, SampleTable, TrackInfo, TrackKind};
use crate::media::codec;
use crate::media::mp4::reader::{boxes, find, find_path, require, Cursor};
use crate::media::{err, MediaResult};

/// Defaults for fragments of one track (`trex`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackDefaults {
    pub sample_description_index: u32,
    pub sample_duration: u32,
    pub sample_size: u32,
    pub sample_flags: u32,
}

/// One track as described by `moov`.
#[derive(Debug, Clone)]
pub struct MoovTrack {
    pub info: TrackInfo,
    pub samples: SampleTable,
    pub defaults: TrackDefaults,
}

/// The parsed `moov`.
#[derive(Debug, Clone)]
pub struct Moov {
    pub tracks: Vec<MoovTrack>,
    /// `mvex` present: samples follow in movie fragments.
    pub fragmented: bool,
}

/// Parses a `moov` payload. Tracks of kinds we do not package (hint, timecode, metadata) are skipped.
/// `file_size` bounds the sample counts that are not bounded by a table's own bytes.
pub fn parse_moov(moov: &[u8], file_size: u64) -> MediaResult<Moov> {
    let movie_timescale = match find(moov, b"mvhd")? {
        Some(mvhd) => {
            let mut c = Cursor::new(mvhd);
            let (version, _) = c.full_box()?;
            c.skip(if version == 1 { 16 } else { 8 })?;
            c.u32()?
        }
        None => return err("moov has no mvhd"),
    };
    let mvex = find(moov, b"mvex")?;
    let mut tracks = Vec::new();
    for child in boxes(moov) {
        let child = child?;
        if &child.kind != b"trak" {
            continue;
        }
        if let Some(mut track) = parse_trak(child.payload, movie_timescale, file_size)? {
            if let Some(mvex) = mvex {
                track.defaults = trex_for(mvex, track.info.track_id)?;
            }
            tracks.push(track);
        }
    }
    Ok(Moov { tracks, fragmented: mvex.is_some() })
}

fn trex_for(mvex: &[u8], track_id: u32) -> MediaResult<TrackDefaults> {
    for b in boxes(mvex) {
        let b = b?;
        if &b.kind != b"trex" {
            continue;
        }
        let mut c = Cursor::new(b.payload);
        c.full_box()?;
        if c.u32()? == track_id {
            return Ok(TrackDefaults {
                sample_description_index: c.u32()?,
                sample_duration: c.u32()?,
                sample_size: c.u32()?,
                sample_flags: c.u32()?,
            });
        }
    }
    Ok(TrackDefaults { sample_description_index: 1, ..Default::default() })
}

fn parse_trak(trak: &[u8], movie_timescale: u32, file_size: u64) -> MediaResult<Option<MoovTrack>> {
    let tkhd = require(trak, b"tkhd", "trak")?;
    let mut c = Cursor::new(tkhd);
    let (version, _) = c.full_box()?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    let track_id = c.u32()?;

    let mdia = require(trak, b"mdia", "trak")?;
    let mdhd = require(mdia, b"mdhd", "mdia")?;
    let mut c = Cursor::new(mdhd);
    let (version, _) = c.full_box()?;
    c.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = c.u32()?;
    if timescale == 0 {
        return err(format!("track {track_id} has timescale 0"));
    }
    c.skip(if version == 1 { 8 } else { 4 })?;
    let language = unpack_language(c.u16()?);

    let hdlr = require(mdia, b"hdlr", "mdia")?;
    let mut c = Cursor::new(hdlr);
    c.full_box()?;
    c.skip(4)?;
    let kind = match &c.fourcc()? {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        b"text" | b"subt" | b"sbtl" => TrackKind::Text,
        _ => return Ok(None),
    };

    let stbl = find_path(mdia, &[b"minf", b"stbl"])?
        .ok_or_else(|| crate::media::MediaError(format!("track {track_id} has no stbl")))?;
    let stsd = require(stbl, b"stsd", "stbl")?;
    let mut c = Cursor::new(stsd);
    c.full_box()?;
    if c.u32()? == 0 {
        return err(format!("track {track_id} has no sample description"));
    }
    let entry = match boxes(c.rest()).next() {
        Some(entry) => entry?,
        None => return err(format!("track {track_id} has an empty stsd")),
    };
    // A copy, not a slice of `moov`: a slice would keep the whole moov (megabytes of sample
    // tables in a long file) alive as long as the index.
    let sample_entry = Bytes::copy_from_slice(entry.bytes);
    let codec = codec::describe(entry.bytes)?;

    let edit = match find_path(trak, &[b"edts", b"elst"])? {
        Some(elst) => parse_elst(elst, movie_timescale, timescale)?,
        None => EditOffset::default(),
    };
    let samples = parse_stbl(stbl, track_id, file_size)?;
    let info = TrackInfo { track_id, kind, timescale, language, sample_entry, codec, edit };
    Ok(Some(MoovTrack { info, samples, defaults: TrackDefaults::default() }))
}

/// ISO 639-2/T from mdhd's packed 3×5-bit form.
fn unpack_language(packed: u16) -> String {
    let chars: Vec<u8> =
        [(packed >> 10) & 0x1f, (packed >> 5) & 0x1f, packed & 0x1f].iter().map(|&c| c as u8 + 0x60).collect();
    if chars.iter().all(|c| c.is_ascii_lowercase()) {
        String::from_utf8_lossy(&chars).into_owned()
    } else {
        "und".to_string()
    }
}

/// Reduces an edit list to what repackaging keeps: leading empty edits (a delay) and the
/// media time of the first real edit. Later edits (rare: cuts inside the media) are not
/// applied — the whole media plays from that point on.
fn parse_elst(elst: &[u8], movie_timescale: u32, media_timescale: u32) -> MediaResult<EditOffset> {
    let mut c = Cursor::new(elst);
    let (version, _) = c.full_box()?;
    let count = c.u32()?;
    let entry_len = if version == 1 { 20 } else { 12 };
    let count = c.check_table(count, entry_len, "elst")?;
    let mut edit = EditOffset::default();
    for _ in 0..count {
        let duration = c.u32_or_u64(version == 1)?;
        let media_time = if version == 1 { c.u64()? as i64 } else { c.i32()? as i64 };
        c.skip(4)?; // media_rate
        if media_time == -1 {
            let scaled = duration as u128 * media_timescale as u128 / movie_timescale.max(1) as u128;
            edit.empty_duration = edit.empty_duration.saturating_add(scaled.min(u64::MAX as u128) as u64);
        } else {
            edit.media_time = media_time.max(0) as u64;
            break;
        }
    }
    if edit.empty_duration > super::MAX_DECODE_TIME || edit.media_time > super::MAX_DECODE_TIME {
        return err("edit list offset out of range");
    }
    Ok(edit)
}

fn parse_stbl(stbl: &[u8], track_id: u32, file_size: u64) -> MediaResult<SampleTable> {
    let sizes = match (find(stbl, b"stsz")?, find(stbl, b"stz2")?) {
        (Some(stsz), _) => parse_stsz(stsz, file_size)?,
        (None, Some(stz2)) => parse_stz2(stz2)?,
        (None, None) => return err(format!("track {track_id} has neither stsz nor stz2")),
    };
    let n = sizes.len();
    let mut table = SampleTable { sizes, ..Default::default() };
    if n == 0 {
        return Ok(table);
    }

    // Decode times from stts runs, a run at a time.
    let stts = require(stbl, b"stts", "stbl")?;
    let mut dts = Vec::with_capacity(n);
    let mut t: u64 = 0;
    for run in table_entries(stts, 8, "stts")?.chunks_exact(8) {
        let take = (be_u32(&run[..4]) as usize).min(n - dts.len());
        let delta = be_u32(&run[4..]) as u64;
        dts.extend((0..take as u64).map(|k| t + k * delta));
        t += take as u64 * delta;
        if dts.len() == n {
            break;
        }
    }
    if dts.len() < n {
        return err(format!("track {track_id}: stts times {} of {} samples", dts.len(), n));
    }
    table.dts = dts;
    table.end_dts = t;

    if let Some(ctts) = find(stbl, b"ctts")? {
        let mut offsets = Vec::with_capacity(n);
        let mut any_nonzero = false;
        for run in table_entries(ctts, 8, "ctts")?.chunks_exact(8) {
            let take = (be_u32(&run[..4]) as usize).min(n - offsets.len());
            // Version 0 is unsigned by the letter of the spec, but writers put negative
            // offsets there too; reading both as signed is what every player does.
            let offset = be_u32(&run[4..]) as i32;
            any_nonzero |= take > 0 && offset != 0;
            offsets.extend(std::iter::repeat_n(offset, take));
        }
        if any_nonzero {
            offsets.resize(n, 0);
            table.cts_offsets = offsets;
        }
    }

    if let Some(stss) = find(stbl, b"stss")? {
        let mut sync: Vec<u32> = table_entries(stss, 4, "stss")?
            .chunks_exact(4)
            .map(be_u32)
            .filter(|&number| number != 0 && number as usize <= n)
            .map(|number| number - 1)
            .collect();
        if !sync.is_sorted_by(|a, b| a < b) {
            sync.sort_unstable();
            sync.dedup();
        }
        table.sync_samples = Some(sync);
    }

    table.offsets = sample_offsets(stbl, &table.sizes, track_id)?;
    Ok(table)
}

/// The entries of a full-box table (version/flags, a u32 entry count, then `count` entries
/// of `entry_len` bytes), checked to fit in the box.
fn table_entries<'a>(payload: &'a [u8], entry_len: usize, what: &str) -> MediaResult<&'a [u8]> {
    let mut c = Cursor::new(payload);
    c.full_box()?;
    let count = c.u32()?;
    let count = c.check_table(count, entry_len, what)?;
    c.bytes(count * entry_len)
}

/// A big-endian u32 from the first 4 bytes of `b` (callers pass `chunks_exact(4)` or longer
/// slices, so the fallback never applies); tables are read whole-slice rather than through
/// a bounds-checked cursor per field so the loops vectorize.
fn be_u32(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |b| u32::from_be_bytes(*b))
}

/// Sample sizes from `stsz`. A table's count is bounded by the table's bytes; a constant
/// size has no table, so its count is bounded by the bytes those samples need in the file.
fn parse_stsz(stsz: &[u8], file_size: u64) -> MediaResult<Vec<u32>> {
    let mut c = Cursor::new(stsz);
    c.full_box()?;
    let constant = c.u32()?;
    let count = c.u32()?;
    if constant != 0 {
        if count as usize > super::MAX_SAMPLES || count as u64 * constant as u64 > file_size {
            return err(format!("stsz declares {count} samples of {constant} bytes, more than the file's {file_size}"));
        }
        return Ok(vec![constant; count as usize]);
    }
    let count = c.check_table(count, 4, "stsz")?;
    Ok(c.bytes(count * 4)?.chunks_exact(4).map(be_u32).collect())
}

fn parse_stz2(stz2: &[u8]) -> MediaResult<Vec<u32>> {
    let mut c = Cursor::new(stz2);
    c.full_box()?;
    c.skip(3)?;
    let field_size = c.u8()?;
    let count = c.u32()?;
    match field_size {
        4 => {
            let bytes = c.check_table(count.div_ceil(2), 1, "stz2")?;
            let packed = c.bytes(bytes)?;
            Ok((0..count as usize)
                .map(|i| {
                    let b = packed[i / 2];
                    (if i % 2 == 0 { b >> 4 } else { b & 0x0f }) as u32
                })
                .collect())
        }
        8 => {
            let count = c.check_table(count, 1, "stz2")?;
            Ok(c.bytes(count)?.iter().map(|&b| b as u32).collect())
        }
        16 => {
            let count = c.check_table(count, 2, "stz2")?;
            Ok(c.bytes(count * 2)?.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]]) as u32).collect())
        }
        other => err(format!("stz2 field size {other} is not 4, 8 or 16")),
    }
}

/// Absolute file offsets of every sample from stsc runs and stco/co64 chunk offsets.
fn sample_offsets(stbl: &[u8], sizes: &[u32], track_id: u32) -> MediaResult<Vec<u64>> {
    // Chunk offsets stay in the table (4-byte stco or 8-byte co64 entries) and are decoded
    // as the runs reach them: no copy of the table.
    let (chunk_table, width) = match (find(stbl, b"stco")?, find(stbl, b"co64")?) {
        (Some(stco), _) => (table_entries(stco, 4, "stco")?, 4),
        (None, Some(co64)) => (table_entries(co64, 8, "co64")?, 8),
        (None, None) => return err(format!("track {track_id} has neither stco nor co64")),
    };
    let chunk_count = chunk_table.len() / width;
    let chunk_offset = |entry: &[u8]| match entry.split_first_chunk::<4>() {
        Some((high, low)) if width == 8 => (u32::from_be_bytes(*high) as u64) << 32 | be_u32(low) as u64,
        _ => be_u32(entry) as u64,
    };
    let stsc = require(stbl, b"stsc", "stbl")?;
    let mut runs = Vec::with_capacity(stsc.len() / 12);
    for entry in table_entries(stsc, 12, "stsc")?.chunks_exact(12) {
        let first_chunk = be_u32(&entry[..4]);
        if first_chunk == 0 {
            return err(format!("track {track_id}: stsc first_chunk is 0"));
        }
        runs.push((first_chunk as usize - 1, be_u32(&entry[4..8]) as usize));
    }
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut next_sizes = sizes.iter();
    for (r, &(first, per_chunk)) in runs.iter().enumerate() {
        let last = runs.get(r + 1).map(|&(next, _)| next).unwrap_or(chunk_count).min(chunk_count);
        for entry in chunk_table.get(first.saturating_mul(width)..last * width).unwrap_or(&[]).chunks_exact(width) {
            let mut offset = chunk_offset(entry);
            for &size in next_sizes.by_ref().take(per_chunk) {
                offsets.push(offset);
                offset = offset.saturating_add(size as u64);
            }
            if offsets.len() == sizes.len() {
                return Ok(offsets);
            }
        }
    }
    if offsets.len() < sizes.len() {
        return err(format!("track {track_id}: chunks hold {} of {} samples", offsets.len(), sizes.len()));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_unpacks() {
        // "eng" = e(5) n(14) g(7)
        let packed = (5 << 10) | (14 << 5) | 7;
        assert_eq!(unpack_language(packed), "eng");
        assert_eq!(unpack_language(0), "und");
    }

    #[test]
    fn stz2_four_bit_fields() {
        let payload = [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 0x12, 0x30];
        assert_eq!(parse_stz2(&payload).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn elst_with_empty_edit_and_media_time() {
        let mut p = vec![0, 0, 0, 0, 0, 0, 0, 2];
        p.extend_from_slice(&500u32.to_be_bytes());
        p.extend_from_slice(&(-1i32).to_be_bytes());
        p.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        p.extend_from_slice(&8000u32.to_be_bytes());
        p.extend_from_slice(&1024i32.to_be_bytes());
        p.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        let edit = parse_elst(&p, 1000, 48000).unwrap();
        assert_eq!(edit, EditOffset { empty_duration: 24000, media_time: 1024 });
    }
}
