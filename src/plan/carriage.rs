//! Which tracks a container can carry. MPEG-TS has no AV1: HLS (Apple's authoring spec, RFC
//! 8216bis) defines AV1 in fragmented MP4 only, so `m3u8-aapl` / `m3u8-aapl-v3` requests for an
//! AV1 track are refused with the reason, and their multivariant playlists list only the
//! tracks TS can carry (an asset with AV1 and H.264 ladders: the H.264 one).

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::plan::url::Resource;
use crate::source::asset::Asset;
use crate::source::index::TrackKind;

/// A 400 with the reason when `resource` is a TS media playlist or segment of a track TS
/// cannot carry; decided before anything is read.
pub(crate) fn check(asset: &Asset, resource: &Resource) -> Result<()> {
    let (bitrate, track) = match resource {
        Resource::MediaPlaylist { bitrate, track, format, .. } | Resource::Segment { bitrate, track, format, .. }
            if format.is_ts() =>
        {
            (*bitrate, track)
        }
        _ => return Ok(()),
    };
    match asset.track(track, bitrate).and_then(|t| t.index().info.codec.ts_refusal()) {
        Some(reason) => Err(Error::BadRequest(format!("track '{track}' at bitrate {bitrate}: {reason}"))),
        None => Ok(()),
    }
}

/// The asset as a document (multivariant or media playlist) of `resource`'s format may list
/// it: for TS formats without the tracks TS cannot carry. A 400 when that leaves a
/// multivariant playlist no video of an asset that has some (an AV1-only asset has no TS
/// rendition).
pub(crate) fn for_document<'a>(asset: &'a Asset, resource: &Resource) -> Result<Cow<'a, Asset>> {
    let format = resource.format();
    let refused = |t: &&crate::source::asset::AssetTrack| t.index().info.codec.ts_refusal();
    if !format.is_ts() || !asset.tracks.iter().any(|t| refused(&t).is_some()) {
        return Ok(Cow::Borrowed(asset));
    }
    let mut kept = asset.clone();
    kept.tracks.retain(|t| refused(&t).is_none());
    let no_video =
        asset.tracks_of(TrackKind::Video).next().is_some() && kept.tracks_of(TrackKind::Video).next().is_none();
    if no_video && matches!(resource, Resource::Manifest(_)) {
        let reason = asset.tracks.iter().find_map(|t| refused(&t)).unwrap_or_default();
        return Err(Error::BadRequest(format!(
            "asset '{}' has no video that format={} can carry: {reason}",
            asset.name,
            format.as_str()
        )));
    }
    Ok(Cow::Owned(kept))
}
