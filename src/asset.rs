//! Assets: a folder in a storage account holding MP4 files and usually an `.ism` SMIL server
//! manifest. Loading an asset indexes each referenced file once and plans every track's
//! segment timeline.

use std::sync::Arc;

use serde::Serialize;

use crate::index::{FileIndex, TrackIndex, TrackKind};
use crate::timeline::Timeline;

/// One track of an asset as the manifests and URLs see it.
#[derive(Debug, Clone)]
pub struct AssetTrack {
    /// `{trackName}` in URLs (from the `.ism`, or derived from the file).
    pub name: String,
    /// `{bitrate}` in `QualityLevels({bitrate})` (the `.ism` `systemBitrate`, or measured).
    pub bitrate: u64,
    pub kind: TrackKind,
    /// ISO 639 language code ("und" when unknown).
    pub language: String,
    /// DASH Role / HLS characteristics hints from the `.ism` (`role` param), e.g. "main".
    pub role: Option<String>,
    /// `accessibility` param, e.g. "description" or "caption".
    pub accessibility: Option<String>,
    /// Path of the source file inside the storage account.
    pub file: String,
    /// The file this track comes from (shared by the tracks of a muxed file).
    pub file_index: Arc<FileIndex>,
    /// Position of this track in `file_index.tracks`.
    pub track_position: usize,
    pub timeline: Timeline,
}

impl AssetTrack {
    pub fn index(&self) -> &TrackIndex {
        &self.file_index.tracks[self.track_position]
    }
}

/// A loaded asset.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Name in URLs: the `.ism` file name without extension, or the folder name.
    pub name: String,
    pub tracks: Vec<AssetTrack>,
}

impl Asset {
    /// The track addressed by `QualityLevels(bitrate)/…(name…)`.
    pub fn track(&self, name: &str, bitrate: u64) -> Option<&AssetTrack> {
        self.tracks.iter().find(|t| t.name == name && t.bitrate == bitrate)
    }
    pub fn tracks_of(&self, kind: TrackKind) -> impl Iterator<Item = &AssetTrack> {
        self.tracks.iter().filter(move |t| t.kind == kind)
    }
}

/// A summary for `inspect --json`.
#[derive(Debug, Serialize)]
pub struct TrackSummary<'a> {
    pub name: &'a str,
    pub bitrate: u64,
    pub file: &'a str,
    pub info: &'a crate::index::TrackInfo,
    pub samples: usize,
    pub duration_secs: f64,
    pub timeline: &'a Timeline,
}
