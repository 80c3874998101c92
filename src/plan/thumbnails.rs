//! Scrub-bar thumbnail tiles: which video track they are made from, which keyframe each
//! thumbnail of a tile shows, and the source reads of one tile.
//!
//! A track's thumbnails are one per `interval_secs`, from the sync sample nearest at or before
//! each interval start; `columns * rows` of them make one tile (a JPEG grid). Tiles are
//! anchored at the track's first presentation time, so a tile's `{time}` (the first interval
//! start, track timescale, the convention of segment URLs) does not depend on filters: every
//! filtered manifest lists the same tile URLs, and a window only leaves tiles out.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::plan::reads::{self, ReadPlan};
use crate::plan::url::{PlaylistKind, Resource};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::{CodecFamily, TrackIndex, TrackKind};

/// How tiles are made (`[thumbnails]` in the config, checked there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThumbnailSettings {
    /// Thumbnails per tile row and tile column.
    pub columns: u32,
    pub rows: u32,
    /// Width of one thumbnail, pixels (even); the height follows the track's aspect ratio.
    pub width: u32,
    /// One thumbnail per this many seconds.
    pub interval_secs: u32,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

impl ThumbnailSettings {
    /// Thumbnails per tile.
    pub fn cells(&self) -> u32 {
        self.columns.saturating_mul(self.rows)
    }

    /// The size of one thumbnail of `track`: the configured width, the height from the
    /// coded picture's aspect ratio, both even (JPEG 4:2:0 and players' scalers like it).
    pub fn thumbnail_size(&self, track: &AssetTrack) -> (u32, u32) {
        let codec = &track.index().info.codec;
        let width = (self.width & !1).max(2);
        let (w, h) = (u64::from(codec.width.max(1)), u64::from(codec.height.max(1)));
        let height = ((u64::from(width) * h + w / 2) / w).min(u64::from(u16::MAX)) as u32;
        (width, (height & !1).max(2))
    }

    /// Bits per second a player fetching every tile of `track` reads (HLS `BANDWIDTH`, DASH
    /// `@bandwidth`). Tiles are made on request, so it is estimated from their pixels: about
    /// 1 bit per pixel at the usual JPEG qualities, over a tile's duration.
    pub fn estimated_bandwidth(&self, track: &AssetTrack) -> u64 {
        let (w, h) = self.tile_size(track);
        let secs = u64::from(self.interval_secs).saturating_mul(u64::from(self.cells()));
        (u64::from(w) * u64::from(h)).div_ceil(secs.max(1)).max(1)
    }

    /// The size of one tile of `track`: the grid of thumbnails.
    pub fn tile_size(&self, track: &AssetTrack) -> (u32, u32) {
        let (w, h) = self.thumbnail_size(track);
        (w.saturating_mul(self.columns), h.saturating_mul(self.rows))
    }
}

/// Why `Thumbnails(…)` is not found when thumbnails are off.
pub fn off_reason() -> &'static str {
    if cfg!(feature = "thumbnails") {
        "thumbnail tiles are off ([thumbnails] enabled = false)"
    } else {
        "thumbnail tiles need a build with the 'thumbnails' cargo feature"
    }
}

/// Whether the bytes of `resource` depend on the thumbnail settings: clear manifests (which
/// list the thumbnail track), image playlists and tiles. Others are made, cached and tagged
/// without them.
pub fn uses_settings(resource: &Resource) -> bool {
    match resource {
        Resource::Manifest(options) => options.encryption.is_none(),
        Resource::MediaPlaylist { kind, .. } => *kind == PlaylistKind::Thumbnails,
        Resource::Thumbnail { .. } => true,
        _ => false,
    }
}

/// Whether `track` can be made into thumbnails: an H.264 video track of a stored file (the
/// decoder, openh264, is H.264 only; live tracks have no sample index to pick keyframes from)
/// in a build with the `thumbnails` feature.
pub fn can_thumbnail(asset: &Asset, track: &AssetTrack) -> bool {
    cfg!(feature = "thumbnails")
        && asset.live.is_none()
        && track.kind == TrackKind::Video
        && track.index().info.codec.family == CodecFamily::Avc
        && !track.index().samples.is_empty()
}

/// [`can_thumbnail`] as a request's answer: a track without thumbnails is not found.
pub fn check_track(asset: &Asset, track: &AssetTrack) -> Result<()> {
    if can_thumbnail(asset, track) {
        return Ok(());
    }
    Err(Error::NotFound(format!(
        "thumbnails of track '{}': only H.264 video tracks of stored files have thumbnails{}",
        track.name,
        if cfg!(feature = "thumbnails") { "" } else { " (and this build has no 'thumbnails' feature)" }
    )))
}

/// The track an asset's thumbnails are made from: of the H.264 video tracks, the one whose
/// height is closest to and at least the thumbnail height (least decoding work for a sharp
/// picture), else the tallest; on equal heights the lowest bitrate. `None` when the asset has
/// no H.264 video (HEVC and AV1 ladders get no thumbnail track).
pub fn source_track<'a>(asset: &'a Asset, settings: &ThumbnailSettings) -> Option<&'a AssetTrack> {
    let candidates = || asset.tracks_of(TrackKind::Video).filter(|t| can_thumbnail(asset, t));
    let height = |t: &AssetTrack| u32::from(t.index().info.codec.height);
    let tall_enough =
        candidates().filter(|t| height(t) >= settings.thumbnail_size(t).1).min_by_key(|t| (height(t), t.bitrate));
    tall_enough.or_else(|| candidates().max_by_key(|t| (height(t), std::cmp::Reverse(t.bitrate))))
}

/// One tile: its URL time, how long it covers, and its thumbnails' interval starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// The first interval start, track timescale (the `{time}` of `Thumbnails(…)`).
    pub time: u64,
    /// Until the next tile or the track's end, track timescale.
    pub duration: u64,
    /// The time its whole grid covers (`columns * rows` intervals; more than `duration` for
    /// a last tile cut short by the track's end), track timescale.
    pub span: u64,
    /// Thumbnails in it (the last tile of a track may have fewer than `columns * rows`).
    pub count: u32,
}

/// A track's tile grid in track ticks.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Presentation time of the track's first sample(s): where the first interval starts.
    start: u64,
    /// Presentation end of the track.
    end: u64,
    interval: u64,
    cells: u64,
}

impl Grid {
    fn of(track: &TrackIndex, settings: &ThumbnailSettings) -> Option<Grid> {
        let s = &track.samples;
        let first_dts = *s.dts.first()?;
        // The earliest presentation is among the first samples (B-frame reordering is a few
        // frames deep); the whole table is not walked for it.
        let start = track.earliest_presentation(0..s.len().min(64));
        let end = start.saturating_add(s.end_dts.saturating_sub(first_dts));
        let interval = u64::from(settings.interval_secs).saturating_mul(u64::from(track.info.timescale));
        let cells = u64::from(settings.cells());
        (interval > 0 && cells > 0 && end > start).then_some(Grid { start, end, interval, cells })
    }

    fn span(&self) -> u64 {
        self.interval.saturating_mul(self.cells)
    }

    fn tile(&self, k: u64) -> Option<Tile> {
        let time = self.start.checked_add(k.checked_mul(self.span())?)?;
        if time >= self.end {
            return None;
        }
        let duration = self.span().min(self.end - time);
        let count = duration.div_ceil(self.interval).min(self.cells) as u32;
        Some(Tile { time, duration, span: self.span(), count })
    }
}

/// The tiles of `track` that overlap what its timeline lists (all of them for a whole track;
/// a filter window leaves the others out).
pub fn tiles(track: &AssetTrack, settings: &ThumbnailSettings) -> Vec<Tile> {
    let Some(grid) = Grid::of(track.index(), settings) else { return Vec::new() };
    let segments = &track.timeline.segments;
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else { return Vec::new() };
    let window = first.time..last.time.saturating_add(last.duration);
    let first_tile = window.start.saturating_sub(grid.start) / grid.span().max(1);
    (first_tile..)
        .map_while(|k| grid.tile(k))
        .take_while(|t| t.time < window.end)
        .filter(|t| t.time.saturating_add(t.duration) > window.start)
        .collect()
}

/// A tile request, decided: the track, the tile, the sample shown in each thumbnail (in grid
/// order), and the source reads that hold those samples.
#[derive(Debug)]
pub struct TilePlan<'a> {
    pub track: &'a AssetTrack,
    pub tile: Tile,
    /// The sync sample each thumbnail shows, row by row.
    pub samples: Vec<u32>,
    pub settings: ThumbnailSettings,
    pub reads: ReadPlan,
}

/// Plans tile `time` of `track`. A time that starts no tile is not found.
pub fn plan_tile<'a>(
    asset: &Asset,
    track: &'a AssetTrack,
    time: u64,
    settings: ThumbnailSettings,
) -> Result<TilePlan<'a>> {
    check_track(asset, track)?;
    let index = track.index();
    let not_found = || Error::NotFound(format!("no thumbnail tile of track '{}' starts at {time}", track.name));
    let grid = Grid::of(index, &settings).ok_or_else(not_found)?;
    let offset = time.checked_sub(grid.start).ok_or_else(not_found)?;
    if offset % grid.span().max(1) != 0 {
        return Err(not_found());
    }
    let tile = grid.tile(offset / grid.span().max(1)).ok_or_else(not_found)?;
    let keyframes = sync_presentations(index);
    let samples: Vec<u32> = (0..u64::from(tile.count))
        .filter_map(|c| {
            let start = tile.time.saturating_add(c * grid.interval);
            // The last keyframe at or before the interval start; the first one for an
            // interval before any (a track starting on a non-sync sample).
            let at = keyframes.partition_point(|&(pts, _)| pts <= start);
            keyframes.get(at.saturating_sub(1)).map(|&(_, sample)| sample)
        })
        .collect();
    if samples.is_empty() {
        return Err(Error::media(&track.file, format!("track '{}' has no sync sample", track.name)));
    }
    let ranges = sample_ranges(index, &samples);
    let reads = reads::plan_ranges(ranges).map_err(|s| {
        Error::media(
            &track.file,
            format!(
                "keyframes of thumbnail tile {time} are spread over {} bytes for {} bytes of media",
                s.span, s.samples
            ),
        )
    })?;
    Ok(TilePlan { track, tile, samples, settings, reads })
}

/// (presentation time, sample) of every sync sample, ascending by time.
fn sync_presentations(index: &TrackIndex) -> Vec<(u64, u32)> {
    let s = &index.samples;
    let mut out: Vec<(u64, u32)> = s
        .sync_iter()
        .filter(|&i| (i as usize) < s.len())
        .map(|i| (index.earliest_presentation(i as usize..i as usize + 1), i))
        .collect();
    out.sort_unstable();
    out
}

/// The file ranges of `samples` (each once).
fn sample_ranges(index: &TrackIndex, samples: &[u32]) -> Vec<Range<u64>> {
    let s = &index.samples;
    let mut unique = samples.to_vec();
    unique.sort_unstable();
    unique.dedup();
    unique
        .iter()
        .filter_map(|&i| {
            let (offset, size) = (*s.offsets.get(i as usize)?, *s.sizes.get(i as usize)?);
            Some(offset..offset.saturating_add(u64::from(size)))
        })
        .collect()
}
