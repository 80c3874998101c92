//! Packaging: the one entry point from "asset + resource" to response bytes. Manifests come
//! from [`hls`] and [`dash`], segments from [`cmaf`]; segment payloads are fetched with one
//! ranged read per segment and passed through without copying.

pub mod cmaf;
pub mod dash;
pub mod hls;
pub mod ts;

use bytes::Bytes;

use crate::asset::{Asset, AssetTrack};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::url::{Format, Resource};

/// Response bytes as a list of parts (a segment's header, then slices of the source read).
#[derive(Debug, Clone)]
pub struct Output {
    pub content_type: &'static str,
    pub parts: Vec<Bytes>,
}

impl Output {
    fn text(content_type: &'static str, text: String) -> Self {
        Output { content_type, parts: vec![Bytes::from(text)] }
    }
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The parts joined (copies; for tools and tests, not the serving path).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => Bytes::from(parts.concat()),
        }
    }
}

pub const HLS_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
pub const DASH_CONTENT_TYPE: &str = "application/dash+xml";

fn media_content_type(track: &AssetTrack) -> &'static str {
    match track.kind {
        crate::index::TrackKind::Audio => "audio/mp4",
        crate::index::TrackKind::Video => "video/mp4",
        crate::index::TrackKind::Text => "application/mp4",
    }
}

fn find_track<'a>(asset: &'a Asset, name: &str, bitrate: u64) -> Result<&'a AssetTrack> {
    asset
        .track(name, bitrate)
        .ok_or_else(|| Error::NotFound(format!("track '{name}' at bitrate {bitrate} in asset '{}'", asset.name)))
}

/// Builds the bytes of `resource`. `extension` says whether child URLs in manifests carry
/// file extensions (they do when the manifest itself was requested with one).
pub async fn render(storage: &Storage, asset: &Asset, resource: &Resource, extension: bool) -> Result<Output> {
    match resource {
        Resource::Manifest(options) => Ok(match options.format {
            Format::M3u8Cmaf => Output::text(HLS_CONTENT_TYPE, hls::multivariant(asset, options, extension)),
            Format::MpdTimeCmaf | Format::MpdTimeCsf => Output::text(DASH_CONTENT_TYPE, dash::mpd(asset, options, extension)),
        }),
        Resource::MediaPlaylist { bitrate, track, format, encryption, .. } => {
            if !format.is_hls() {
                return Err(Error::BadRequest(format!("media playlists exist only for HLS formats, not {}", format.as_str())));
            }
            let track = find_track(asset, track, *bitrate)?;
            Ok(Output::text(HLS_CONTENT_TYPE, hls::media_playlist(track, *format, *encryption, extension)))
        }
        Resource::Init { bitrate, track, format, .. } => {
            let track = find_track(asset, track, *bitrate)?;
            let init = cmaf::init_segment(track.index(), cmaf::Flavor::from(*format));
            Ok(Output { content_type: media_content_type(track), parts: vec![init] })
        }
        Resource::Segment { bitrate, track, time, format, .. } => {
            let track = find_track(asset, track, *bitrate)?;
            let (number, segment) = track
                .timeline
                .find(*time)
                .ok_or_else(|| Error::NotFound(format!("no segment of track '{}' starts at {time}", track.name)))?;
            let range = cmaf::source_range(track.index(), segment);
            let data = storage.read_range(&track.file, range.clone()).await?;
            if (data.len() as u64) < range.end - range.start {
                return Err(Error::media(&track.file, format!("file ends before byte {} (truncated?)", range.end)));
            }
            let span = cmaf::SourceSpan { data, file_offset: range.start };
            let built = cmaf::media_segment(track.index(), segment, number as u32 + 1, &span, cmaf::Flavor::from(*format))
                .map_err(|e| Error::media(&track.file, e))?;
            Ok(Output { content_type: media_content_type(track), parts: built.parts })
        }
    }
}

/// Every resource a complete static package of `format` consists of, manifest first.
pub fn package_resources(asset: &Asset, format: Format) -> Vec<Resource> {
    let mut out = vec![Resource::Manifest(crate::url::ManifestOptions { format, filters: Vec::new(), audio_only: None, encryption: None })];
    for t in &asset.tracks {
        if format.is_hls() {
            out.push(Resource::MediaPlaylist { bitrate: t.bitrate, track: t.name.clone(), format, encryption: None, filters: Vec::new() });
        }
        out.push(Resource::Init { bitrate: t.bitrate, track: t.name.clone(), format, encryption: None });
        for s in &t.timeline.segments {
            out.push(Resource::Segment { bitrate: t.bitrate, track: t.name.clone(), time: s.time, format, encryption: None });
        }
    }
    out
}
