//! Indexing a file through ranged reads: find `moov` (at either end), then the fragments.
//!
//! Read budget, the point of this module:
//! - progressive, moov first: 1 read (small moov) or 2 (64 KiB probe, then the whole moov);
//! - progressive, moov last: 2 reads (probe, then everything after `mdat`);
//! - fragmented with `sidx` or `mfra`: the probe, then one small read per fragment, issued
//!   concurrently; without either: one read per fragment, in file order.
//!
//! Only metadata is read, never a media payload.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::fragmented::{append_moof, parse_mfra, parse_sidx};
use super::progressive::{parse_moov, MoovTrack};
use super::{FileIndex, TrackIndex};
use crate::error::{Error, Result};
use crate::media::mp4::fourcc_str;
use crate::media::mp4::reader::BoxHeader;
use crate::media::MediaError;
use crate::source::storage::Storage;

/// The first read of every file: ftyp + a small moov (+ sidx) fit in it.
const PROBE_LEN: u64 = 64 * 1024;
/// After `mdat`, read the rest of the file in one go when it is smaller than this (moov at end).
const TAIL_READ_LIMIT: u64 = 64 << 20;
/// First guess at a fragment's metadata (styp + moof + mdat header); larger moofs take a second read.
const MOOF_WINDOW: u64 = 16 * 1024;
/// Concurrent fragment reads when sidx/mfra tell where the fragments are.
const FRAGMENT_READ_CONCURRENCY: usize = 16;

/// Bytes of the file starting at `start`.
struct Window {
    start: u64,
    data: Bytes,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
    /// `len` bytes at absolute offset `at`, if the window holds them.
    fn get(&self, at: u64, len: u64) -> Option<Bytes> {
        if at >= self.start && at + len <= self.end() {
            let from = (at - self.start) as usize;
            Some(self.data.slice(from..from + len as usize))
        } else {
            None
        }
    }
    fn header_at(&self, at: u64) -> std::result::Result<Option<BoxHeader>, MediaError> {
        if at < self.start || at >= self.end() {
            return Ok(None);
        }
        BoxHeader::parse(&self.data[(at - self.start) as usize..])
    }
}

struct Reader<'a> {
    storage: &'a Storage,
    path: &'a str,
    size: u64,
    reads: u32,
}

impl Reader<'_> {
    async fn read(&mut self, range: std::ops::Range<u64>) -> Result<Window> {
        let end = range.end.min(self.size);
        self.reads += 1;
        let data = self.storage.read_range(self.path, range.start..end).await?;
        Ok(Window { start: range.start, data })
    }
    fn media(&self, reason: impl std::fmt::Display) -> Error {
        Error::media(self.path, reason)
    }
    /// The whole box at `at` with header `h`, from `window` or by one more read.
    async fn whole_box(&mut self, window: &Window, at: u64, h: &BoxHeader) -> Result<Bytes> {
        let size = h.size.unwrap_or(self.size - at);
        if at.checked_add(size).is_none_or(|end| end > self.size) {
            return Err(self.media(format!("'{}' box at {at} runs past the end of the file", fourcc_str(&h.kind))));
        }
        match window.get(at, size) {
            Some(b) => Ok(b),
            None => Ok(self.read(at..at + size).await?.data),
        }
    }
}

/// What the top-level scan found.
#[derive(Default)]
struct TopLevel {
    moov: Option<Bytes>,
    sidx: Option<(Bytes, u64)>,
    first_moof: Option<u64>,
    /// Offset just after moov: where fragments start when no moof was seen yet.
    after_moov: u64,
}

/// Indexes every track of the file at `path` (a `.vtt` sidecar: see [`super::sidecar`]).
pub async fn index_file(storage: &Storage, path: &str) -> Result<FileIndex> {
    if super::sidecar::is_sidecar(path) {
        return super::sidecar::index_sidecar(storage, path).await;
    }
    let (head, version) = storage.read_head(path, PROBE_LEN).await?;
    let mut r = Reader { storage, path, size: version.size, reads: 1 };
    let mut window = Window { start: 0, data: head };
    let top = scan_top_level(&mut r, &mut window).await?;
    let moov = top.moov.ok_or_else(|| r.media("no 'moov' box: not an MP4 file, or truncated"))?;
    let parsed = parse_moov(&moov, r.size).map_err(|e| r.media(e))?;
    let mut tracks = parsed.tracks;
    if parsed.fragmented {
        read_fragments(&mut r, &top.sidx, top.first_moof.unwrap_or(top.after_moov), window, &mut tracks).await?;
    }
    let mut out = Vec::with_capacity(tracks.len());
    for t in tracks {
        if t.samples.is_empty() {
            continue;
        }
        t.samples
            .validate()
            .and_then(|()| t.samples.check_byte_ranges(r.size))
            .map_err(|e| r.media(format!("track {}: {e}", t.info.track_id)))?;
        out.push(TrackIndex { info: t.info, samples: t.samples, sidecar: None });
    }
    if out.is_empty() {
        return Err(r.media("no audio, video or text track with samples"));
    }
    Ok(FileIndex { path: path.to_string(), version, tracks: out, reads: r.reads })
}

/// Walks top-level boxes from offset 0 until `moov` is found and the next box is not already
/// in hand, or the first `moof`.
async fn scan_top_level(r: &mut Reader<'_>, window: &mut Window) -> Result<TopLevel> {
    let mut top = TopLevel::default();
    let mut at = 0u64;
    while at < r.size {
        let mut header = window.header_at(at).map_err(|e| r.media(e))?;
        if header.is_none() {
            if top.moov.is_some() {
                break; // everything needed is in hand; do not read further
            }
            let remaining = r.size - at;
            let len = if remaining <= TAIL_READ_LIMIT { remaining } else { PROBE_LEN };
            *window = r.read(at..at + len).await?;
            header = window.header_at(at).map_err(|e| r.media(e))?;
        }
        let Some(h) = header else {
            if r.size - at < 16 {
                break; // a few stray bytes at the end of the file
            }
            return Err(r.media(format!("unreadable box header at offset {at}")));
        };
        let size = h.size.unwrap_or(r.size - at);
        match &h.kind {
            b"moov" => {
                let bytes = r.whole_box(window, at, &h).await?;
                top.moov = Some(bytes.slice(h.header_len as usize..));
                top.after_moov = at + size;
            }
            b"sidx" if top.sidx.is_none() => {
                let bytes = r.whole_box(window, at, &h).await?;
                top.sidx = Some((bytes.slice(h.header_len as usize..), at + size));
            }
            b"moof" => {
                top.first_moof = Some(at);
                break;
            }
            _ => {}
        }
        at = at.saturating_add(size);
    }
    Ok(top)
}

async fn read_fragments(
    r: &mut Reader<'_>,
    sidx: &Option<(Bytes, u64)>,
    walk_from: u64,
    window: Window,
    tracks: &mut [MoovTrack],
) -> Result<()> {
    let mut offsets: Option<Vec<u64>> = None;
    if let Some((payload, end)) = sidx {
        let refs = parse_sidx(payload, *end).map_err(|e| r.media(e))?;
        // A hierarchical sidx (references to further sidx boxes) is walked instead.
        if !refs.is_empty() && refs.iter().all(|x| !x.is_index) {
            offsets = Some(refs.iter().map(|x| x.offset).collect());
        }
    }
    if offsets.is_none() {
        offsets = read_mfra(r).await?;
    }
    if let Some(offsets) = offsets {
        let storage = r.storage;
        let path = r.path;
        let size = r.size;
        let windows: Vec<(u64, Bytes)> = futures::stream::iter(offsets.into_iter().filter(|&o| o < size))
            .map(|at| async move {
                let data = storage.read_range(path, at..(at + MOOF_WINDOW).min(size)).await?;
                Ok::<_, Error>((at, data))
            })
            .buffered(FRAGMENT_READ_CONCURRENCY)
            .try_collect()
            .await?;
        r.reads += windows.len() as u32;
        // tfra may list only fragments with random access points; use the listed offsets only
        // when they account for every fragment, else walk the file below.
        if windows.windows(2).all(|p| fragment_end(&p[0]) == Some(p[1].0)) {
            for (at, data) in windows {
                walk_fragments(r, Window { start: at, data }, at, Some(1), tracks).await?;
            }
            return Ok(());
        }
    }
    walk_fragments(r, window, walk_from, None, tracks).await
}

/// Where the fragment starting at `at` ends (after its moof's mdat), if `data` shows it.
fn fragment_end((at, data): &(u64, Bytes)) -> Option<u64> {
    let window = Window { start: *at, data: data.clone() };
    let mut pos = *at;
    let mut seen_moof = false;
    loop {
        let h = window.header_at(pos).ok()??;
        let size = h.size?;
        pos = pos.checked_add(size)?;
        match &h.kind {
            b"moof" => seen_moof = true,
            b"mdat" if seen_moof => return Some(pos),
            _ => {}
        }
    }
}

/// Walks boxes from `at`, appending every `moof`; stops after `max_moofs` moofs or at the end
/// of the file. Reads more when the next box header is not in `window`.
async fn walk_fragments(
    r: &mut Reader<'_>,
    mut window: Window,
    mut at: u64,
    max_moofs: Option<usize>,
    tracks: &mut [MoovTrack],
) -> Result<()> {
    let mut moofs = 0usize;
    while at < r.size && max_moofs.is_none_or(|m| moofs < m) {
        let mut header = window.header_at(at).map_err(|e| r.media(e))?;
        if header.is_none() {
            window = r.read(at..at + MOOF_WINDOW).await?;
            header = window.header_at(at).map_err(|e| r.media(e))?;
        }
        let Some(h) = header else {
            if r.size - at < 16 {
                break;
            }
            return Err(r.media(format!("unreadable box header at offset {at}")));
        };
        let size = h.size.unwrap_or(r.size - at);
        if &h.kind == b"moof" {
            let bytes = r.whole_box(&window, at, &h).await?;
            append_moof(&bytes[h.header_len as usize..], at, r.size, tracks)
                .map_err(|e| r.media(format!("moof at offset {at}: {e}")))?;
            moofs += 1;
        } else if &h.kind == b"mfra" {
            break;
        }
        at = at.saturating_add(size);
    }
    Ok(())
}

/// Fragment offsets from an `mfra` at the end of the file, if there is one (one read).
async fn read_mfra(r: &mut Reader<'_>) -> Result<Option<Vec<u64>>> {
    if r.size < 16 {
        return Ok(None);
    }
    let tail_len = PROBE_LEN.min(r.size);
    let tail = r.read(r.size - tail_len..r.size).await?;
    let d = &tail.data;
    if d.len() < 16 || &d[d.len() - 12..d.len() - 8] != b"mfro" {
        return Ok(None);
    }
    let mfra_size = u32::from_be_bytes([d[d.len() - 4], d[d.len() - 3], d[d.len() - 2], d[d.len() - 1]]) as u64;
    if mfra_size < 16 || mfra_size > r.size {
        return Ok(None);
    }
    let at = r.size - mfra_size;
    let bytes = match tail.get(at, mfra_size) {
        Some(b) => b,
        None => r.read(at..r.size).await?.data,
    };
    match BoxHeader::parse(&bytes).map_err(|e| r.media(e))? {
        Some(h) if &h.kind == b"mfra" => {
            let offsets = parse_mfra(&bytes[h.header_len as usize..]).map_err(|e| r.media(e))?;
            Ok(if offsets.is_empty() { None } else { Some(offsets) })
        }
        _ => Ok(None),
    }
}
