//! Which tracks a container and an encryption can carry, decided before anything is read:
//! - MPEG-TS has no AV1: HLS (Apple's authoring spec, RFC 8216bis) defines AV1 in fragmented
//!   MP4 only;
//! - Common Encryption of AV1 needs subsamples aligned to its OBUs (ISO/IEC 23001-7 §10.2),
//!   which the encryptor does not write;
//! - Smooth Streaming names codecs by FourCC (MS-SSTR §2.2.2.5): H.264, HEVC, AAC, AC-3 and
//!   E-AC-3 have one ([`crate::media::codec::SmoothCodec`]); AV1, VP9, Opus, FLAC, Dolby
//!   Vision profile 5 and text tracks are left out of Smooth manifests. A running live event
//!   has no Smooth form (its fragments would need the `tfrf` lookahead boxes of MS-SSTR
//!   §2.2.4.6): Smooth requests of one are a 400.
//!
//! A media playlist, init or media segment of such a track is a 400 with the reason; a
//! multivariant playlist or MPD lists only the tracks it can carry (an asset with AV1 and
//! H.264 ladders: the H.264 one), and is a 400 when that leaves no video of an asset that has
//! some.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::plan::url::{Encryption, Format, Resource};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::{CodecFamily, TrackKind};

/// Why `track` cannot be served in `format` with `encryption`, if it cannot.
fn refusal(track: &AssetTrack, format: Format, encryption: Option<Encryption>) -> Option<String> {
    let codec = &track.index().info.codec;
    if format.is_smooth() {
        if track.kind == TrackKind::Text {
            return Some("text tracks have no Smooth Streaming form here".to_owned());
        }
        if codec.smooth().is_none() {
            return Some(format!(
                "'{}' has no Smooth Streaming FourCC (Smooth carries H.264, HEVC, AAC, AC-3 and E-AC-3)",
                codec.sample_entry_type
            ));
        }
    }
    if format.is_ts() {
        if let Some(reason) = codec.ts_refusal() {
            return Some(reason);
        }
    }
    let common = matches!(encryption, Some(Encryption::Common(_)));
    (common && codec.family == CodecFamily::Av1).then(|| {
        format!(
            "Common Encryption of AV1 ('{}') is not supported (it needs OBU-aligned subsamples)",
            codec.sample_entry_type
        )
    })
}

/// A 400 for Smooth Streaming of a running live event (see the module comment).
fn check_live_smooth(asset: &Asset, format: Format) -> Result<()> {
    if format.is_smooth() && asset.live.as_ref().is_some_and(|live| !live.ended) {
        return Err(Error::BadRequest(format!(
            "live event '{}' is running: Smooth Streaming is served once it has ended; use HLS or DASH while it runs",
            asset.name
        )));
    }
    Ok(())
}

/// A 400 with the reason when `resource` is a media or I-frame playlist, init, media or key
/// frame segment of a track its format or encryption cannot carry.
pub(crate) fn check(asset: &Asset, resource: &Resource) -> Result<()> {
    let (bitrate, track) = match resource {
        Resource::MediaPlaylist { bitrate, track, .. }
        | Resource::Init { bitrate, track, .. }
        | Resource::Segment { bitrate, track, .. }
        | Resource::KeyFrame { bitrate, track, .. } => (*bitrate, track),
        _ => return Ok(()),
    };
    let Some(format) = resource.format() else { return Ok(()) };
    check_live_smooth(asset, format)?;
    let reason = asset.track(track, bitrate).and_then(|t| refusal(t, format, resource.encryption()));
    match reason {
        Some(reason) => Err(Error::BadRequest(format!("track '{track}' at bitrate {bitrate}: {reason}"))),
        None => Ok(()),
    }
}

/// The asset as a document of `resource` may list it: without the tracks its format and
/// encryption cannot carry. A 400 when that leaves a multivariant playlist or MPD no video
/// of an asset that has some (an AV1-only asset has no TS rendition).
pub(crate) fn for_document<'a>(asset: &'a Asset, resource: &Resource) -> Result<Cow<'a, Asset>> {
    let Some(format) = resource.format() else { return Ok(Cow::Borrowed(asset)) };
    check_live_smooth(asset, format)?;
    let encryption = resource.encryption();
    let refused = |t: &AssetTrack| refusal(t, format, encryption);
    if !asset.tracks.iter().any(|t| refused(t).is_some()) {
        return Ok(Cow::Borrowed(asset));
    }
    let mut kept = asset.clone();
    kept.tracks.retain(|t| refused(t).is_none());
    let no_video =
        asset.tracks_of(TrackKind::Video).next().is_some() && kept.tracks_of(TrackKind::Video).next().is_none();
    if no_video && matches!(resource, Resource::Manifest(_)) {
        let reason = asset.tracks.iter().find_map(refused).unwrap_or_default();
        return Err(Error::BadRequest(format!(
            "asset '{}' has no video that format={}{} can carry: {reason}",
            asset.name,
            format.as_str(),
            encryption.map(|e| format!(",encryption={}", e.as_str())).unwrap_or_default()
        )));
    }
    Ok(Cow::Owned(kept))
}
