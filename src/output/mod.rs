//! Packaging: the one entry point from a [`Plan`] and the source bytes it names to response
//! bytes, with no I/O. Manifests come from [`hls`] and [`dash`], segments from [`cmaf`] and
//! [`ts`]; segment payloads are passed through without copying.

pub(crate) mod cmaf;
pub mod dash;
pub mod hls;
pub mod smooth;
pub mod text;
pub mod thumbnail;
pub(crate) mod trick;
pub(crate) mod ts;

use std::borrow::Cow;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::plan::filter;
use crate::plan::links::{Links, ManifestText};
use crate::plan::reads::SourceSpan;
use crate::plan::smooth::{SmoothClock, TrackClock};
use crate::plan::thumbnails;
use crate::plan::url::{AudioChoice, Encryption, Format, PlaylistKind, Resource};
use crate::plan::{Build, Plan, Protection, SegmentPlan};
use crate::protect::drm;
use crate::protect::{common_encryption, envelope, segment_iv, ContentKey, Scheme};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;

/// Response bytes as a list of parts (a segment's header, then slices of the source read).
#[derive(Debug, Clone)]
pub struct Output {
    pub content_type: &'static str,
    pub parts: Vec<Bytes>,
    /// A manifest's links, to which a request's carried query is added.
    pub links: Option<Links>,
}

impl Output {
    fn manifest(content_type: &'static str, manifest: ManifestText) -> Self {
        Output { content_type, parts: vec![Bytes::from(manifest.text)], links: Some(manifest.links) }
    }
    fn media(content_type: &'static str, parts: Vec<Bytes>) -> Self {
        Output { content_type, parts, links: None }
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
pub const TS_CONTENT_TYPE: &str = "video/mp2t";

fn media_content_type(track: &AssetTrack) -> &'static str {
    match track.kind {
        TrackKind::Audio => "audio/mp4",
        TrackKind::Video => "video/mp4",
        TrackKind::Text => "application/mp4",
    }
}

fn find_track<'a>(asset: &'a Asset, name: &str, bitrate: u64) -> Result<&'a AssetTrack> {
    asset.track(name, bitrate).ok_or_else(|| {
        let what = format!("track '{name}' at bitrate {bitrate} in asset '{}'", asset.name);
        crate::plan::not_yet_or_not_found(asset, what, true)
    })
}

/// The Common Encryption scheme of `encryption`, if it is one.
fn cenc_scheme(encryption: Option<Encryption>) -> Option<Scheme> {
    match encryption? {
        Encryption::Common(scheme) => Some(scheme),
        Encryption::Envelope => None,
    }
}

/// The `pssh` boxes of an encrypted init segment: the W3C common one (browsers' ClearKey
/// waits for it) and one per configured DRM system.
fn pssh_boxes(scheme: Scheme, p: Protection<'_>) -> Vec<Bytes> {
    let kids = [p.key.kid];
    let mut boxes = vec![drm::common_pssh(&kids)];
    if let Some(wv) = &p.drm.widevine {
        let content_id =
            wv.content_id.as_deref().map(|c| drm::expand_template(c, &p.key.kid, p.locator)).unwrap_or_default();
        boxes.push(drm::widevine_pssh(&kids, content_id.as_bytes(), scheme));
    }
    if let Some(pr) = &p.drm.playready {
        let la_url = pr.license_url.as_deref().map(|u| drm::expand_template(u, &p.key.kid, p.locator));
        boxes.push(drm::playready_pssh(&drm::playready_header_object(
            &p.key.kid,
            &p.key.key,
            la_url.as_deref(),
            scheme,
        )));
    }
    boxes
}

/// Per-track Common Encryption settings. The IV seed names the source samples (file, rendition),
/// so the same samples get the same IVs on every replica and through every locator. A live
/// track's file is its init object, and its samples are numbered by decode time.
fn track_encryption<'a>(
    scheme: Scheme,
    p: Protection<'a>,
    asset: &Asset,
    track: &AssetTrack,
    pssh: &'a [Bytes],
) -> common_encryption::TrackEncryption<'a> {
    common_encryption::TrackEncryption {
        scheme,
        key: p.key,
        pssh,
        iv_seed: common_encryption::iv_seed(&track.file, track.bitrate, &track.name),
        number_by_decode_time: asset.live.is_some(),
    }
}

/// Builds the bytes `plan` decides from `sources`: for a segment, the bytes of each member's
/// planned reads ([`crate::plan::SegmentPlan::reads`], in member order); nothing otherwise.
pub fn package(plan: &Plan<'_>, sources: &[SourceSpan]) -> Result<Output> {
    let (resource, protection) = (plan.resource, plan.protection);
    let document = match &plan.build {
        Build::Segment(segment_plan) => return segment(plan, segment_plan, sources),
        Build::Thumbnail(tile) => {
            let span = sources.first().ok_or_else(|| Error::media(&tile.track.file, "thumbnail keyframes not read"))?;
            return thumbnail::tile_job(tile, span)?.build();
        }
        Build::Document(document) => document,
    };
    let filtered = filter::apply(plan.asset, &document.filters)?;
    let asset = &*crate::plan::carriage::for_document(&filtered, resource)?;
    let extension = plan.extension;
    match resource {
        Resource::Manifest(options) if options.format.is_smooth() => {
            let protection_header = match (options.encryption, protection) {
                (Some(Encryption::Common(Scheme::Cenc)), Some(p)) => Some(smooth::protection_header(p)),
                _ => None,
            };
            let clock = SmoothClock::of(plan.asset);
            Ok(Output::manifest(
                smooth::CONTENT_TYPE,
                smooth::manifest(asset, clock, options, protection_header.as_deref()),
            ))
        }
        Resource::Manifest(options) => Ok(if options.format.is_hls() {
            let first_quality = filter::first_quality(&document.filters);
            let thumbnails = document.thumbnails.as_ref();
            Output::manifest(
                HLS_CONTENT_TYPE,
                hls::multivariant_with_thumbnails(asset, options, first_quality, thumbnails, extension),
            )
        } else {
            let signalling = match (cenc_scheme(options.encryption), protection) {
                (Some(scheme), Some(p)) => drm::dash_content_protection(scheme, p.key, p.locator, p.drm),
                _ => Vec::new(),
            };
            let thumbnails = document.thumbnails.as_ref();
            Output::manifest(
                DASH_CONTENT_TYPE,
                dash::mpd_with_thumbnails(asset, options, &signalling, thumbnails, extension),
            )
        }),
        Resource::MediaPlaylist {
            bitrate, track, format, encryption, audio, kind: PlaylistKind::KeyFrames, ..
        } => {
            let track = find_track(asset, track, *bitrate)?;
            let (envelope, drm_keys) = hls_key_signals(asset, *encryption, protection, audio);
            let text = trick::i_frame_playlist(asset, track, *format, *encryption, envelope, &drm_keys, extension)?;
            Ok(Output::manifest(HLS_CONTENT_TYPE, text))
        }
        Resource::MediaPlaylist { bitrate, track, kind: PlaylistKind::Thumbnails, .. } => {
            let settings =
                document.thumbnails.as_ref().ok_or_else(|| Error::NotFound(thumbnails::off_reason().into()))?;
            let track = find_track(asset, track, *bitrate)?;
            thumbnails::check_track(asset, track)?;
            Ok(Output::manifest(HLS_CONTENT_TYPE, hls::image_playlist(track, settings, extension)))
        }
        // Plan::new plans every tile as a Build::Thumbnail.
        Resource::Thumbnail { .. } => Err(Error::asset(&asset.name, "a thumbnail tile was planned as a document")),
        Resource::MediaPlaylist { bitrate, track, format, encryption, audio, .. } => {
            let track = find_track(asset, track, *bitrate)?;
            // Text is served clear whatever the URL's encryption= (see `text`).
            let protection = protection.filter(|_| track.kind != TrackKind::Text);
            let (envelope, drm_keys) = hls_key_signals(asset, *encryption, protection, audio);
            let live = live_playlist(plan.asset, track);
            Ok(Output::manifest(
                HLS_CONTENT_TYPE,
                hls::media_playlist(track, *format, *encryption, audio, envelope, &drm_keys, extension, live),
            ))
        }
        Resource::Init { bitrate, track, format, encryption, .. } => {
            let track = find_track(asset, track, *bitrate)?;
            // The URL grammar refuses Smooth init segments: Smooth clients build their own.
            let (flavor, edit_list) =
                (cmaf::Flavor::of(*format, || smooth_clock(plan.asset, track)), !format.is_dash());
            let protection = protection.filter(|_| track.kind != TrackKind::Text);
            let init = match (cenc_scheme(*encryption), protection) {
                (Some(scheme), Some(p)) => {
                    let pssh = pssh_boxes(scheme, p);
                    let enc = track_encryption(scheme, p, asset, track, &pssh);
                    cmaf::init_segment(track.index(), flavor, edit_list, Some(&enc))
                }
                _ => cmaf::init_segment(track.index(), flavor, edit_list, None),
            };
            Ok(Output::media(media_content_type(track), vec![init]))
        }
        // Plan::new plans every segment and keyframe as a Build::Segment.
        Resource::Segment { .. } | Resource::KeyFrame { .. } => {
            Err(Error::asset(&asset.name, "a media segment was planned as a document"))
        }
    }
}

/// What an HLS media or I-frame playlist signals of its encryption: the AES-128 key and IVs,
/// or the Common Encryption `EXT-X-KEY` lines (one per DRM system).
fn hls_key_signals<'a>(
    asset: &Asset,
    encryption: Option<Encryption>,
    protection: Option<Protection<'a>>,
    audio: &'a AudioChoice,
) -> (Option<hls::EnvelopeSignal<'a>>, Vec<drm::HlsKeyLine>) {
    match (cenc_scheme(encryption), protection) {
        (Some(scheme), Some(p)) => (None, drm::hls_key_lines(scheme, p.key, p.locator, p.drm)),
        (None, Some(p)) => {
            let other_audio = other_audio(asset, audio);
            (Some(hls::EnvelopeSignal { key_uri: p.key_uri, key: p.key, other_audio }), Vec::new())
        }
        (_, None) => (None, Vec::new()),
    }
}

/// What the media playlist of `track` (as filters and the live window left it) of a live
/// `asset` adds; `None` for VOD.
fn live_playlist(asset: &Asset, track: &AssetTrack) -> Option<hls::LivePlaylist> {
    let live = asset.live.as_ref()?;
    let whole = asset.track(&track.name, track.bitrate).unwrap_or(track);
    let first = track.timeline.segments.first().map_or(u64::MAX, |s| s.time);
    let segments = &whole.timeline.segments;
    Some(hls::LivePlaylist {
        running: !live.ended,
        epoch_ms: live.epoch_ms,
        discontinuity_sequence: segments.iter().take_while(|s| s.time < first).filter(|s| s.discontinuity).count()
            as u64,
        longest_segment: segments.iter().map(|s| s.duration).max().unwrap_or(0),
    })
}

/// A media segment from its members' source bytes.
fn segment(plan: &Plan<'_>, segment_plan: &SegmentPlan<'_>, sources: &[SourceSpan]) -> Result<Output> {
    let (track, protection) = (segment_plan.track, plan.protection);
    let (format, encryption, time) = (&segment_plan.format, &segment_plan.encryption, &segment_plan.segment.time);
    // A keyframe's one sample lasts until the next keyframe (trick-mode playback buffers no gaps).
    let last_duration = segment_plan.keyframe.then_some(segment_plan.segment.duration);
    let sequence_number = segment_plan.sequence_number();
    let flavor = cmaf::Flavor::of(*format, || smooth_clock(plan.asset, track));
    if track.kind == TrackKind::Text {
        return text_segment(segment_plan, flavor, sources);
    }
    let (content_type, parts) = if format.is_ts() {
        // v3 muxes the default audio's segment of the same index into video segments.
        let inputs: Vec<ts::TsInput> = segment_plan
            .members()
            .zip(sources)
            .map(|((t, seg), span)| ts::TsInput { track: t.index(), segment: seg, span })
            .collect();
        let bytes = ts::ts_segment(&inputs, sequence_number).map_err(|e| Error::media(&track.file, e))?;
        (TS_CONTENT_TYPE, vec![bytes])
    } else {
        let span = sources.first().ok_or_else(|| Error::media(&track.file, "segment source not read"))?;
        let sample_encryption = match (cenc_scheme(*encryption), protection) {
            (Some(scheme), Some(p)) => Some(track_encryption(scheme, p, plan.asset, track, &[])),
            _ => None,
        };
        let options = cmaf::SegmentOptions { flavor, encryption: sample_encryption.as_ref(), last_duration };
        let built = cmaf::media_segment(track.index(), &segment_plan.segment, sequence_number, span, options)
            .map_err(|e| Error::media(&track.file, e))?;
        (media_content_type(track), built.parts)
    };
    // AES-128 envelope wraps whole segments; Common Encryption was applied per sample.
    let parts = match protection.filter(|_| *encryption == Some(Encryption::Envelope)) {
        Some(p) => {
            let other_audio = match plan.resource {
                Resource::Segment { audio, .. } => other_audio(plan.asset, audio),
                _ => None,
            };
            let iv = if segment_plan.keyframe {
                trick::keyframe_iv(p.key, track, *format, *time)
            } else {
                envelope_iv(p.key, track, *format, other_audio, *time)
            };
            vec![envelope::encrypt_segment(p.key, &iv, parts)]
        }
        None => parts,
    };
    Ok(Output::media(content_type, parts))
}

/// A text track's segment, always clear: WebVTT text, a sidecar's `wvtt` fMP4 or Smooth TTML from
/// [`text`], else (an MP4 source's `wvtt` / `stpp` in fMP4) a plain media segment.
fn text_segment(segment_plan: &SegmentPlan<'_>, flavor: cmaf::Flavor, sources: &[SourceSpan]) -> Result<Output> {
    let (track, format) = (segment_plan.track, segment_plan.format);
    if let Some(reason) = text::refusal(track, format) {
        return Err(Error::BadRequest(reason));
    }
    let sequence_number = segment_plan.sequence_number();
    if text::built_from_cues(track.index(), format) {
        let (content_type, parts) =
            text::segment(track, &segment_plan.segment, sequence_number, format, flavor, sources)?;
        return Ok(Output::media(content_type, parts));
    }
    let span = sources.first().ok_or_else(|| Error::media(&track.file, "segment source not read"))?;
    let options = cmaf::SegmentOptions::clear(flavor);
    let built = cmaf::media_segment(track.index(), &segment_plan.segment, sequence_number, span, options)
        .map_err(|e| Error::media(&track.file, e))?;
    Ok(Output::media(media_content_type(track), built.parts))
}

/// The Smooth time axis of `track` of `asset` (as loaded: fragment URLs carry no filter).
fn smooth_clock(asset: &Asset, track: &AssetTrack) -> TrackClock {
    SmoothClock::of(asset).track(track)
}

/// The `audiotrack=` choice when it is not the asset's default audio (naming the default is
/// the same segment, bytes and IV, as naming none).
fn other_audio<'a>(asset: &Asset, audio: &'a AudioChoice) -> Option<&'a str> {
    audio.name().filter(|&name| asset.default_audio().is_none_or(|default| default.name != name))
}

/// The AES-128 IV of a segment of `track` at `time`: the media playlist lists it and the
/// segment is encrypted with it. An HLS v3 segment muxing another audio than the default
/// holds other bytes than the default one at the same time, so that audio goes into its IV
/// (CBC under one key and IV would show where the two first differ).
pub(crate) fn envelope_iv(
    key: &ContentKey,
    track: &AssetTrack,
    format: Format,
    other_audio: Option<&str>,
    time: u64,
) -> [u8; 16] {
    let identity = match other_audio {
        Some(name) => Cow::Owned(format!("{}\0audiotrack={name}", track.name)),
        None => Cow::Borrowed(track.name.as_str()),
    };
    segment_iv(key, track.bitrate, &identity, format.container_tag(), time)
}

/// The file name of `resource` in a static package: its URL with extension, as the package's
/// manifests name it (an HLS WebVTT text segment ends in `.vtt`).
pub fn package_file_name(asset: &Asset, resource: &Resource) -> String {
    let name = crate::plan::url::format(resource, true);
    let webvtt = match resource {
        Resource::Segment { bitrate, track, format, .. } => {
            asset.track(track, *bitrate).is_some_and(|t| text::webvtt_segments(t.index(), *format))
        }
        _ => false,
    };
    match name.rsplit_once('.') {
        Some((stem, _)) if webvtt => format!("{stem}.{}", crate::plan::url::TEXT_SEGMENT_EXTENSION),
        _ => name,
    }
}

/// Every resource a complete static package of `format` consists of, manifest first.
pub fn package_resources(asset: &Asset, format: Format) -> Vec<Resource> {
    let mut out = vec![Resource::Manifest(crate::plan::url::ManifestOptions {
        format,
        filters: Vec::new(),
        audio_only: None,
        encryption: None,
    })];
    // Smooth fragment URLs carry times on the asset's 10 MHz axis.
    let smooth = format.is_smooth().then(|| SmoothClock::of(asset));
    for t in asset.tracks.iter().filter(|t| t.kind != TrackKind::Text || text::carries(t, format)) {
        if format.is_hls() {
            out.push(Resource::MediaPlaylist {
                bitrate: t.bitrate,
                track: t.name.clone(),
                format,
                encryption: None,
                filters: Vec::new(),
                audio: AudioChoice::default(),
                kind: PlaylistKind::Media,
            });
        }
        // WebVTT text segments have no init segment; Smooth clients build theirs.
        if !text::webvtt_segments(t.index(), format) && smooth.is_none() {
            out.push(Resource::Init { bitrate: t.bitrate, track: t.name.clone(), format, encryption: None });
        }
        let clock = smooth.map(|c| c.track(t));
        for s in &t.timeline.segments {
            out.push(Resource::Segment {
                bitrate: t.bitrate,
                track: t.name.clone(),
                time: clock.map_or(s.time, |c| c.segment_span(t.index(), s).0),
                format,
                encryption: None,
                audio: AudioChoice::default(),
            });
        }
        out.extend(trick::package_resources(asset, t, format));
    }
    out
}
