//! Which tracks a container and an encryption can carry, decided before anything is read:
//! - MPEG-TS has no AV1: HLS (Apple's authoring spec, RFC 8216bis) defines AV1 in fragmented
//!   MP4 only;
//! - Common Encryption of AV1 needs subsamples aligned to its OBUs (ISO/IEC 23001-7 §10.2),
//!   which the encryptor does not write;
//! - Smooth Streaming names codecs by FourCC (MS-SSTR §2.2.2.5): H.264, HEVC, AAC, AC-3 and
//!   E-AC-3 have one ([`crate::media::codec::SmoothCodec`]); AV1, VP9, Opus, FLAC, Dolby
//!   Vision profile 5 are left out of Smooth manifests (text: [`crate::output::text`]). A live
//!   event, running or ended, has no Smooth form: a running one's fragments would need the
//!   `tfrf` lookahead boxes of MS-SSTR §2.2.4, and an event's timeline records each fragment's
//!   earliest presentation time, not the decode time of its first sample that a Smooth chunk's
//!   `t` and `tfxd` are (they differ by the B-frame delay). Smooth requests of one are a 400.
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
    // Which text tracks Smooth carries is `output::text`'s to say, as for the other formats.
    if format.is_smooth() && track.kind != TrackKind::Text && codec.smooth().is_none() {
        return Some(format!(
            "'{}' has no Smooth Streaming FourCC (Smooth carries H.264, HEVC, AAC, AC-3 and E-AC-3)",
            codec.sample_entry_type
        ));
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

/// A 400 for Smooth Streaming of a live event (see the module comment).
fn check_live_smooth(asset: &Asset, format: Format) -> Result<()> {
    if format.is_smooth() && asset.live.is_some() {
        return Err(Error::BadRequest(format!(
            "'{}' is a live event: Smooth Streaming is served for VOD assets only; use HLS or DASH",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::hls::fixtures;
    use crate::plan::url::ManifestOptions;
    use crate::source::asset::LiveInfo;

    #[test]
    fn smooth_of_a_live_event_is_refused() {
        let mut asset = fixtures::asset();
        asset.live = Some(LiveInfo { ended: false, epoch_ms: 0, dvr_window_secs: 60, updated_ms: 0 });
        let running = |r: Result<()>| matches!(&r, Err(Error::BadRequest(reason)) if reason.contains("live event"));
        let smooth = Resource::Manifest(ManifestOptions::new(Format::Smooth));
        assert!(running(for_document(&asset, &smooth).map(|_| ())));
        let fragment = Resource::Segment {
            bitrate: asset.tracks[0].bitrate,
            track: asset.tracks[0].name.clone(),
            time: 0,
            format: Format::Smooth,
            encryption: None,
            audio: Default::default(),
        };
        assert!(running(check(&asset, &fragment)));
        // HLS and DASH of the event are served; Smooth stays refused once it has ended, and is
        // served for VOD.
        assert!(check_live_smooth(&asset, Format::M3u8Cmaf).is_ok());
        assert!(check_live_smooth(&asset, Format::MpdTimeCmaf).is_ok());
        asset.live = asset.live.take().map(|live| LiveInfo { ended: true, ..live });
        assert!(running(check_live_smooth(&asset, Format::SmoothV20)));
        asset.live = None;
        assert!(check_live_smooth(&asset, Format::Smooth).is_ok());
    }
}
