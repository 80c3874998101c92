//! Trick play in HLS, AMS style: one `#EXT-X-I-FRAME-STREAM-INF` per video track in the
//! multivariant playlist, pointing at `QualityLevels(b)/Manifest({track},format=…,type=keyframes)`,
//! an `#EXT-X-I-FRAMES-ONLY` playlist with one entry per keyframe, each a whole resource
//! `KeyFrames({track}={time},format=…)` (no byte ranges). The keyframes come from
//! [`crate::plan::keyframes`]; the resources are built by the segment path.
//!
//! `EXT-X-I-FRAME-STREAM-INF` and `EXT-X-I-FRAMES-ONLY` need `EXT-X-VERSION` 4 (RFC 8216
//! §7): the `m3u8-aapl-v3` multivariant, written for version 3 clients, lists none; its
//! I-frame playlist is still served (version 4, TS without muxed audio) to clients that ask.
//! Live events list none either: a live track's samples are in its fragment objects, not in
//! its index, so keyframes are served for on-demand assets only (404 for a live one).

use m3u8_rs::{ExtTag, Map, MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream};

use crate::error::Result;
use crate::plan::keyframes::{self, KeyFrame};
use crate::plan::links::{self, Link, ManifestText};
use crate::plan::url::{self, AudioChoice, Encryption, Format, ManifestOptions, PlaylistKind, Resource, SegmentUrls};
use crate::protect::drm::HlsKeyLine;
use crate::protect::{segment_iv, ContentKey};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;

use super::hls::{self, EnvelopeSignal};

/// Lowest `EXT-X-VERSION` of a playlist with I-frame tags.
const I_FRAME_VERSION: usize = 4;

/// The `EXT-X-I-FRAME-STREAM-INF` entries of a multivariant playlist: one per video track
/// with keyframes, carrying the multivariant's filters and encryption. None for HLS v3 and for
/// a live event (see the module comment).
pub(super) fn i_frame_streams(asset: &Asset, options: &ManifestOptions, extension: bool) -> Vec<VariantStream> {
    if hls::version(options.format) < I_FRAME_VERSION || asset.live.is_some() {
        return Vec::new();
    }
    let mut streams: Vec<VariantStream> = asset
        .tracks_of(TrackKind::Video)
        .filter_map(|track| {
            let frames = keyframes::key_frames(track);
            if frames.is_empty() {
                return None;
            }
            let (peak, average) = keyframes::bitrates(track, &frames);
            let codec = &track.index().info.codec;
            let resource = Resource::MediaPlaylist {
                bitrate: track.bitrate,
                track: track.name.clone(),
                format: options.format,
                encryption: options.encryption,
                filters: options.filters.clone(),
                audio: AudioChoice::default(),
                kind: PlaylistKind::KeyFrames,
            };
            let mut uri = url::format(&resource, extension);
            links::push_mark(&mut uri, Link::MediaPlaylist);
            Some(VariantStream {
                is_i_frame: true,
                uri,
                bandwidth: peak,
                average_bandwidth: Some(average),
                codecs: (!codec.codec_string.is_empty()).then(|| codec.codec_string.clone()),
                resolution: (codec.width > 0 && codec.height > 0)
                    .then_some(Resolution { width: codec.width as u64, height: codec.height as u64 }),
                ..Default::default()
            })
        })
        .collect();
    streams.sort_by_key(|v| v.bandwidth);
    streams
}

/// The AES-128 IV of the keyframe resource of `track` at `time`. Its own identity, not the
/// segment's: the segment that starts at the same time holds other bytes (the whole GOP, and
/// in HLS v3 the audio), and CBC under one key and IV would show where the two first differ.
pub(crate) fn keyframe_iv(key: &ContentKey, track: &AssetTrack, format: Format, time: u64) -> [u8; 16] {
    let identity = format!("{}\0keyframe", track.name);
    segment_iv(key, track.bitrate, &identity, format.container_tag(), time)
}

/// The I-frame playlist of `track` (as filters left it) of `asset`, at
/// `QualityLevels(b)/Manifest({track},format=…,type=keyframes)`: `EXT-X-MAP` for fMP4 (the
/// rendition's init segment, encrypted for cenc/cbcs, with the `drm_keys` lines after it as in
/// the media playlist), one `EXT-X-KEY` with the keyframe's own IV per entry for AES-128.
pub(super) fn i_frame_playlist(
    asset: &Asset,
    track: &AssetTrack,
    format: Format,
    encryption: Option<Encryption>,
    envelope: Option<EnvelopeSignal>,
    drm_keys: &[HlsKeyLine],
    extension: bool,
) -> Result<ManifestText> {
    if let Some(e) = keyframes::unavailable(asset, track) {
        return Err(e);
    }
    hls::set_precision();
    let frames: Vec<KeyFrame> = keyframes::key_frames(track);
    let timescale = track.timeline.timescale;
    let max_duration = frames.iter().map(|k| k.segment.duration).max().unwrap_or(0);

    let urls =
        SegmentUrls::new(track.bitrate, &track.name, format, encryption, &AudioChoice::default(), extension, true)
            .key_frames();
    let mut map = (!format.is_ts()).then(|| {
        let init = Resource::Init { bitrate: track.bitrate, track: track.name.clone(), format, encryption };
        Map { uri: links::marked(&url::relative_to_quality_level(&init, extension), Link::Media), ..Default::default() }
    });
    let mut drm_tags: Option<Vec<ExtTag>> = Some(hls::drm_key_tags(drm_keys));
    let segments: Vec<MediaSegment> = frames
        .iter()
        .map(|k| {
            let time = k.segment.time;
            MediaSegment {
                uri: links::marked(&urls.url(time), Link::Media),
                duration: (k.segment.duration as f64 / timescale.max(1) as f64) as f32,
                map: map.take(),
                unknown_tags: drm_tags.take().unwrap_or_default(),
                key: envelope.map(|e| hls::envelope_key(&e, &keyframe_iv(e.key, track, format, time))),
                ..Default::default()
            }
        })
        .collect();
    let version = hls::version(format).max(I_FRAME_VERSION);
    let playlist = MediaPlaylist {
        // KEYFORMAT needs version 5.
        version: Some(if drm_keys.is_empty() { version } else { version.max(5) }),
        target_duration: hls::target_duration(max_duration, timescale),
        media_sequence: 0,
        segments,
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        i_frames_only: true,
        independent_segments: true,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(256 + playlist.segments.len() * (40 + urls.url(0).len()));
    let _ = playlist.write_to(&mut buf);
    hls::insert_media_sequence(&mut buf);
    Ok(hls::manifest_text(&buf))
}

/// The trick-play resources of `track` in a static package of `format`: what its manifests
/// list (the I-frame playlist where the multivariant lists it, every keyframe).
pub(super) fn package_resources(asset: &Asset, track: &AssetTrack, format: Format) -> Vec<Resource> {
    if keyframes::unavailable(asset, track).is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if format.is_hls() && hls::version(format) >= I_FRAME_VERSION {
        out.push(Resource::MediaPlaylist {
            bitrate: track.bitrate,
            track: track.name.clone(),
            format,
            encryption: None,
            filters: Vec::new(),
            audio: AudioChoice::default(),
            kind: PlaylistKind::KeyFrames,
        });
    }
    out.extend(keyframes::key_frames(track).into_iter().map(|k| Resource::KeyFrame {
        bitrate: track.bitrate,
        track: track.name.clone(),
        time: k.segment.time,
        format,
        encryption: None,
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::hls::fixtures::{self, resolve};
    use crate::plan::url::ParsedUrl;
    use m3u8_rs::Playlist;

    fn parse(text: &str) -> Playlist {
        m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
    }

    #[test]
    fn multivariant_lists_one_i_frame_stream_per_video_track_but_not_in_v3() {
        let asset = fixtures::asset();
        for format in [Format::M3u8Cmaf, Format::M3u8Aapl] {
            let mut options = ManifestOptions::new(format);
            options.filters = vec!["f".into()];
            options.encryption = Some(Encryption::Envelope);
            let base = url::format(&Resource::Manifest(options.clone()), true);
            let text = hls::multivariant(&asset, &options, None, true).text;
            let Playlist::MasterPlaylist(pl) = parse(&text) else { panic!("{text}") };
            let frames: Vec<&VariantStream> = pl.variants.iter().filter(|v| v.is_i_frame).collect();
            assert_eq!(frames.len(), 2, "{text}");
            assert!(frames.windows(2).all(|w| w[0].bandwidth <= w[1].bandwidth));
            for v in frames {
                assert_eq!(v.codecs.as_deref(), Some("avc1.64001f"));
                assert!(v.resolution.is_some() && v.average_bandwidth.is_some_and(|a| a <= v.bandwidth));
                let ParsedUrl { resource, extension } = resolve(&base, &v.uri);
                assert!(extension);
                let Resource::MediaPlaylist { kind, filters, encryption, format: f, .. } = resource else { panic!() };
                assert_eq!(
                    (kind, filters, encryption, f),
                    (PlaylistKind::KeyFrames, vec!["f".to_owned()], options.encryption, format)
                );
            }
        }
        let text = hls::multivariant(&asset, &ManifestOptions::new(Format::M3u8AaplV3), None, false).text;
        assert!(!text.contains("I-FRAME"), "{text}");
    }

    #[test]
    fn i_frame_playlist_lists_every_keyframe_with_its_iv() {
        let asset = fixtures::asset();
        let track = &asset.tracks[0];
        let key = ContentKey { kid: [1; 16], key: [2; 16] };
        let envelope = EnvelopeSignal { key_uri: "https://k/key", key: &key, other_audio: None };
        let frames = keyframes::key_frames(track);
        for format in [Format::M3u8Aapl, Format::M3u8Cmaf, Format::M3u8AaplV3] {
            let text = i_frame_playlist(&asset, track, format, Some(Encryption::Envelope), Some(envelope), &[], false)
                .unwrap()
                .text;
            let Playlist::MediaPlaylist(pl) = parse(&text) else { panic!("{text}") };
            assert!(pl.i_frames_only && pl.end_list, "{text}");
            assert!(text.contains("#EXT-X-VERSION:") && pl.version.unwrap() >= 4);
            assert_eq!(pl.segments.len(), frames.len());
            assert_eq!(pl.segments[0].map.is_some(), !format.is_ts());
            let base = format!("QualityLevels({})/Manifest(x,format={})", track.bitrate, format.as_str());
            for (s, k) in pl.segments.iter().zip(&frames) {
                let parsed = resolve(&base, &s.uri);
                assert_eq!(
                    parsed.resource,
                    Resource::KeyFrame {
                        bitrate: track.bitrate,
                        track: track.name.clone(),
                        time: k.segment.time,
                        format,
                        encryption: Some(Encryption::Envelope)
                    }
                );
                let iv = keyframe_iv(&key, track, format, k.segment.time);
                assert_eq!(
                    s.key.as_ref().unwrap().iv.as_deref(),
                    Some(&*format!("0x{}", base16ct::lower::encode_string(&iv)))
                );
                // Not the IV of the segment that starts at the same time.
                assert_ne!(iv, super::super::envelope_iv(&key, track, format, None, k.segment.time));
                assert!((s.duration as f64 - k.segment.duration as f64 / 30000.0).abs() < 0.001);
            }
        }
        let audio = &asset.tracks[2];
        assert!(i_frame_playlist(&asset, audio, Format::M3u8Cmaf, None, None, &[], false).is_err());
    }
}
