//! `[thumbnails]`: how scrub-bar thumbnail tiles are made (see `plan::thumbnails`).

use serde::Deserialize;

use crate::plan::thumbnails::ThumbnailSettings;

/// Thumbnail tiles of H.264 video: on by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThumbnailsConfig {
    /// Off: no thumbnail track is listed and `Thumbnails(…)` answers 404.
    pub enabled: bool,
    /// Thumbnails per tile row, and rows per tile.
    pub columns: u32,
    pub rows: u32,
    /// Width of one thumbnail, pixels (even); the height follows the video's aspect ratio.
    pub width: u32,
    /// One thumbnail per this many seconds.
    pub interval_secs: u32,
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Tiles being built at once (each decodes up to `columns * rows` keyframes on a core);
    /// further requests wait.
    pub max_concurrent_builds: usize,
}

impl Default for ThumbnailsConfig {
    fn default() -> Self {
        ThumbnailsConfig {
            enabled: true,
            columns: 5,
            rows: 5,
            width: 240,
            interval_secs: 10,
            quality: 75,
            max_concurrent_builds: 2,
        }
    }
}

/// At most this many thumbnails per tile: one storage read each, and the read plan of a tile
/// keeps at most 64 separate reads (`plan::reads::MAX_RUNS`).
const MAX_CELLS: u32 = 64;

impl ThumbnailsConfig {
    /// What is wrong with the table, naming the key.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ranges: [(&str, u64, u64, u64); 6] = [
            ("columns", self.columns.into(), 1, 16),
            ("rows", self.rows.into(), 1, 16),
            ("width", self.width.into(), 16, 1920),
            ("interval_secs", self.interval_secs.into(), 1, 3600),
            ("quality", self.quality.into(), 1, 100),
            ("max_concurrent_builds", self.max_concurrent_builds as u64, 1, 1024),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(format!("{key} = {value}: must be between {min} and {max}"));
            }
        }
        if self.width % 2 != 0 {
            return Err(format!("width = {}: must be even (JPEG 4:2:0)", self.width));
        }
        if self.columns * self.rows > MAX_CELLS {
            return Err(format!(
                "columns x rows = {}: at most {MAX_CELLS} thumbnails per tile (one storage read each)",
                self.columns * self.rows
            ));
        }
        if self.columns * self.width > 8192 {
            return Err(format!(
                "columns x width = {} pixels: a tile is at most 8192 pixels wide",
                self.columns * self.width
            ));
        }
        Ok(())
    }

    /// The settings tiles are made with; `None` when off or built without the `thumbnails`
    /// feature.
    pub fn settings(&self) -> Option<ThumbnailSettings> {
        (self.enabled && cfg!(feature = "thumbnails")).then_some(ThumbnailSettings {
            columns: self.columns,
            rows: self.rows,
            width: self.width,
            interval_secs: self.interval_secs,
            quality: self.quality,
        })
    }
}
