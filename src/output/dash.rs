//! DASH: a static MPD (ISO/IEC 23009-1, DASH-IF IOP) with one SegmentTemplate +
//! SegmentTimeline per Representation, `$Time$` addressing; a running live event's is
//! `dynamic` (DASH-IF IOP 4.3: availabilityStartTime = wall clock of event time 0, the
//! timeline of its window in event time, a UTCTiming source on this origin).
//!
//! The MPD is a serde model written by quick-xml: attributes are `@name` renames, elements
//! are fields in schema order, namespaced names (for ContentProtection later) are plain
//! renames like `@cenc:default_KID`. `$Time$` values are exactly `Segment::time`, the numbers
//! the HLS URLs carry, so both protocols share segment URLs and cache entries.

use serde::Serialize;

use crate::media::codec::{ChannelLayout, VideoRange};
use crate::plan::keyframes;
use crate::plan::links::{self, Link, ManifestText};
use crate::plan::thumbnails::{self, ThumbnailSettings};
use crate::plan::url::{self, AudioChoice, Encryption, Format, ManifestOptions, Resource, SegmentUrls};
use crate::protect::drm::{ContentProtection, MPD_NAMESPACES};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::{CodecFamily, CodecInfo, TrackKind};
use crate::source::timeline::Segment;

const MPD_NS: &str = "urn:mpeg:dash:schema:mpd:2011";
const PROFILES_CMAF: &str = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019";
const PROFILES_CSF: &str = "urn:mpeg:dash:profile:isoff-live:2011";
const ROLE_SCHEME: &str = "urn:mpeg:dash:role:2011";
const CHANNELS_SCHEME: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
/// AC-3 / E-AC-3 channel layouts: the 16-bit channel map as 4 hex digits (ETSI TS 102 366
/// Annex I; DASH-IF IOP v4.3 §9.2.1.2 asks for it with Dolby audio).
const DOLBY_CHANNELS_SCHEME: &str = "tag:dolby.com,2014:dash:audio_channel_configuration:2011";
/// E-AC-3 with Joint Object Coding (Atmos): ETSI TS 103 420 Annex D.2, on the Representation
/// (as GPAC's dasher writes them); @codecs stays `ec-3`.
const EC3_EXTENSION_TYPE_SCHEME: &str = "tag:dolby.com,2018:dash:EC3_ExtensionType:2018";
const EC3_COMPLEXITY_SCHEME: &str = "tag:dolby.com,2018:dash:EC3_ExtensionComplexityIndex:2018";
/// H.273 code points (ISO/IEC 23001-8 CICP) as DASH descriptors (DASH-IF IOP v4.3 §6.2.5).
const COLOUR_PRIMARIES_SCHEME: &str = "urn:mpeg:mpegB:cicp:ColourPrimaries";
const TRANSFER_SCHEME: &str = "urn:mpeg:mpegB:cicp:TransferCharacteristics";
const MATRIX_SCHEME: &str = "urn:mpeg:mpegB:cicp:MatrixCoefficients";
/// SCTE 214-1 extensions: `@scte214:supplementalCodecs` / `@scte214:supplementalProfiles` on a
/// Representation name a backward-compatible Dolby Vision layer over its base layer's
/// `@codecs` (what shaka-packager's MPD builder writes; read by Shaka Player, dash.js and
/// ExoPlayer), the DASH counterpart of HLS `SUPPLEMENTAL-CODECS`.
const SCTE214_NS: &str = "urn:scte:dash:scte214-extensions";

#[derive(Serialize)]
#[serde(rename = "MPD")]
struct Mpd {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@availabilityStartTime", skip_serializing_if = "Option::is_none")]
    availability_start_time: Option<String>,
    #[serde(rename = "@publishTime", skip_serializing_if = "Option::is_none")]
    publish_time: Option<String>,
    #[serde(rename = "@minimumUpdatePeriod", skip_serializing_if = "Option::is_none")]
    minimum_update_period: Option<String>,
    #[serde(rename = "@timeShiftBufferDepth", skip_serializing_if = "Option::is_none")]
    time_shift_buffer_depth: Option<String>,
    #[serde(rename = "@suggestedPresentationDelay", skip_serializing_if = "Option::is_none")]
    suggested_presentation_delay: Option<String>,
    #[serde(rename = "@mediaPresentationDuration", skip_serializing_if = "Option::is_none")]
    media_presentation_duration: Option<String>,
    #[serde(rename = "@minBufferTime")]
    min_buffer_time: &'static str,
    #[serde(rename = "@profiles")]
    profiles: &'static str,
    // Namespaces of ContentProtection children, declared only on protected MPDs.
    #[serde(rename = "@xmlns:cenc", skip_serializing_if = "Option::is_none")]
    xmlns_cenc: Option<&'static str>,
    #[serde(rename = "@xmlns:mspr", skip_serializing_if = "Option::is_none")]
    xmlns_mspr: Option<&'static str>,
    #[serde(rename = "@xmlns:dashif", skip_serializing_if = "Option::is_none")]
    xmlns_dashif: Option<&'static str>,
    #[serde(rename = "@xmlns:scte214", skip_serializing_if = "Option::is_none")]
    xmlns_scte214: Option<&'static str>,
    #[serde(rename = "Period")]
    period: Period,
    #[serde(rename = "UTCTiming", skip_serializing_if = "Option::is_none")]
    utc_timing: Option<Descriptor>,
}

/// The clock players of a dynamic MPD synchronise with: `GET /time` on this origin, ISO 8601.
/// Root-relative, so it resolves against the MPD's host (dash.js and Shaka Player both resolve
/// a relative value against the MPD URL), which is the CDN's behind one.
const UTC_TIMING_SCHEME: &str = "urn:mpeg:dash:utc:http-iso:2014";
pub const TIME_PATH: &str = "/time";

/// `2026-12-07T12:00:00.000Z`: a wall clock in Unix ms as an xs:dateTime in UTC.
pub fn iso_date_time(unix_ms: u64) -> String {
    let utc = i64::try_from(unix_ms).ok().and_then(chrono::DateTime::from_timestamp_millis).unwrap_or_default();
    utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Serialize)]
struct Period {
    #[serde(rename = "@id")]
    id: &'static str,
    #[serde(rename = "@start")]
    start: &'static str,
    #[serde(rename = "AdaptationSet")]
    adaptation_sets: Vec<AdaptationSet>,
    /// The thumbnail tile set, after the media sets.
    #[serde(rename = "AdaptationSet", skip_serializing_if = "Option::is_none")]
    image_set: Option<ImageAdaptationSet>,
}

#[derive(Serialize)]
struct AdaptationSet {
    #[serde(rename = "@id")]
    id: usize,
    #[serde(rename = "@contentType")]
    content_type: &'static str,
    #[serde(rename = "@mimeType")]
    mime_type: &'static str,
    #[serde(rename = "@lang", skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(rename = "@segmentAlignment", skip_serializing_if = "Option::is_none")]
    segment_alignment: Option<&'static str>,
    #[serde(rename = "@startWithSAP")]
    start_with_sap: u8,
    #[serde(rename = "@maxWidth", skip_serializing_if = "Option::is_none")]
    max_width: Option<u16>,
    #[serde(rename = "@maxHeight", skip_serializing_if = "Option::is_none")]
    max_height: Option<u16>,
    #[serde(rename = "@par", skip_serializing_if = "Option::is_none")]
    par: Option<String>,
    // Schema order: RepresentationBase elements (ContentProtection, Label), then
    // Accessibility, Role, …, Representation.
    #[serde(rename = "ContentProtection", skip_serializing_if = "Vec::is_empty")]
    content_protection: Vec<ContentProtection>,
    /// Colour descriptors ([`colour_properties`]), and a trick-mode set's
    /// [`TRICK_MODE_SCHEME`] descriptor first.
    #[serde(rename = "EssentialProperty", skip_serializing_if = "Vec::is_empty")]
    essential_properties: Vec<Descriptor>,
    #[serde(rename = "SupplementalProperty", skip_serializing_if = "Vec::is_empty")]
    supplemental_properties: Vec<Descriptor>,
    #[serde(rename = "Label")]
    label: String,
    #[serde(rename = "Accessibility", skip_serializing_if = "Option::is_none")]
    accessibility: Option<Descriptor>,
    #[serde(rename = "Role")]
    role: Descriptor,
    #[serde(rename = "Representation")]
    representations: Vec<Representation>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Descriptor {
    #[serde(rename = "@schemeIdUri")]
    scheme_id_uri: &'static str,
    #[serde(rename = "@value")]
    value: String,
}

#[derive(Serialize)]
struct Representation {
    #[serde(rename = "@id")]
    id: String,
    #[serde(rename = "@bandwidth")]
    bandwidth: u64,
    #[serde(rename = "@codecs", skip_serializing_if = "Option::is_none")]
    codecs: Option<String>,
    #[serde(rename = "@scte214:supplementalCodecs", skip_serializing_if = "Option::is_none")]
    supplemental_codecs: Option<String>,
    #[serde(rename = "@scte214:supplementalProfiles", skip_serializing_if = "Option::is_none")]
    supplemental_profiles: Option<&'static str>,
    #[serde(rename = "@width", skip_serializing_if = "Option::is_none")]
    width: Option<u16>,
    #[serde(rename = "@height", skip_serializing_if = "Option::is_none")]
    height: Option<u16>,
    #[serde(rename = "@frameRate", skip_serializing_if = "Option::is_none")]
    frame_rate: Option<String>,
    /// Trick mode: how much faster than normal the keyframes alone may be played.
    #[serde(rename = "@maxPlayoutRate", skip_serializing_if = "Option::is_none")]
    max_playout_rate: Option<u64>,
    /// Trick mode: `false`, every sample is a keyframe.
    #[serde(rename = "@codingDependency", skip_serializing_if = "Option::is_none")]
    coding_dependency: Option<bool>,
    #[serde(rename = "@audioSamplingRate", skip_serializing_if = "Option::is_none")]
    audio_sampling_rate: Option<u32>,
    #[serde(rename = "AudioChannelConfiguration", skip_serializing_if = "Option::is_none")]
    audio_channel_configuration: Option<Descriptor>,
    #[serde(rename = "SupplementalProperty", skip_serializing_if = "Vec::is_empty")]
    supplemental_properties: Vec<Descriptor>,
    #[serde(rename = "SegmentTemplate")]
    segment_template: SegmentTemplate,
}

#[derive(Serialize)]
struct SegmentTemplate {
    #[serde(rename = "@timescale")]
    timescale: u32,
    #[serde(rename = "@presentationTimeOffset", skip_serializing_if = "Option::is_none")]
    presentation_time_offset: Option<u64>,
    #[serde(rename = "@initialization")]
    initialization: String,
    #[serde(rename = "@media")]
    media: String,
    #[serde(rename = "SegmentTimeline")]
    segment_timeline: SegmentTimeline,
}

#[derive(Serialize)]
struct SegmentTimeline {
    #[serde(rename = "S")]
    s: Vec<S>,
}

#[derive(Serialize, Debug, PartialEq)]
struct S {
    #[serde(rename = "@t", skip_serializing_if = "Option::is_none")]
    t: Option<u64>,
    #[serde(rename = "@d")]
    d: u64,
    #[serde(rename = "@r", skip_serializing_if = "Option::is_none")]
    r: Option<u64>,
}

/// `presentationTimeOffset`: the media time shown at presentation time 0 (edit list: B-frame
/// delay, audio priming). DASH init segments leave the edit list out, so this is the only
/// place the shift is applied. A net delay (empty edit longer than media_time) cannot be
/// expressed with a PTO and is ignored.
fn presentation_time_offset(track: &AssetTrack) -> u64 {
    let edit = track.index().info.edit;
    edit.media_time.saturating_sub(edit.empty_duration) + track.window_offset
}

/// `<S>` runs: equal consecutive durations collapse into `r`; `t` on the first and after any
/// discontinuity.
fn segment_timeline(track: &AssetTrack) -> Vec<S> {
    timeline_of(&track.timeline.segments)
}

/// `<S>` runs of `segments`, as [`segment_timeline`].
fn timeline_of<'a>(segments: impl IntoIterator<Item = &'a Segment>) -> Vec<S> {
    let mut out: Vec<S> = Vec::new();
    let mut next_time: Option<u64> = None;
    for seg in segments {
        let contiguous = next_time == Some(seg.time);
        match out.last_mut() {
            Some(last) if contiguous && last.d == seg.duration => {
                last.r = Some(last.r.unwrap_or(0) + 1);
            }
            _ => out.push(S { t: (!contiguous).then_some(seg.time), d: seg.duration, r: None }),
        }
        next_time = Some(seg.time.saturating_add(seg.duration));
    }
    out
}

/// Representation@id: `{name}-{bitrate}` (whitespace is not allowed in the id).
fn representation_id(track: &AssetTrack) -> String {
    let name: String = track.name.chars().map(|c| if c.is_whitespace() { '_' } else { c }).collect();
    format!("{name}-{}", track.bitrate)
}

fn representation(
    track: &AssetTrack,
    format: Format,
    encryption: Option<Encryption>,
    extension: bool,
) -> Representation {
    let info = &track.index().info;
    let codec = &info.codec;
    let video = track.kind == TrackKind::Video;
    let audio = track.kind == TrackKind::Audio;
    let frame_rate = if video {
        track.frame_rate.map(|(n, d)| if d == 1 { n.to_string() } else { format!("{n}/{d}") })
    } else {
        None
    };
    let pto = presentation_time_offset(track);
    let supplemental_codecs = if video { codec.supplemental_codecs() } else { None };
    let codecs = if track.kind == TrackKind::Text { super::text::codecs(track) } else { codec.codec_string.clone() };
    Representation {
        id: representation_id(track),
        bandwidth: track.peak_bitrate(),
        codecs: (!codecs.is_empty()).then_some(codecs),
        supplemental_profiles: supplemental_codecs
            .as_ref()
            .and_then(|_| codec.dolby_vision.and_then(|dv| dv.compatibility_brand())),
        // `dvh1.08.06` without the `/db1p` brand HLS appends: the brand is the profile attribute.
        supplemental_codecs: supplemental_codecs.map(|s| s.split('/').next().unwrap_or_default().to_owned()),
        width: (video && codec.width > 0).then_some(codec.width),
        height: (video && codec.height > 0).then_some(codec.height),
        frame_rate,
        max_playout_rate: None,
        coding_dependency: None,
        audio_sampling_rate: (audio && codec.sample_rate > 0).then_some(codec.sample_rate),
        audio_channel_configuration: if audio { audio_channel_configuration(codec) } else { None },
        supplemental_properties: if audio { joc_properties(codec) } else { Vec::new() },
        segment_template: SegmentTemplate {
            timescale: track.timeline.timescale,
            presentation_time_offset: (pto > 0).then_some(pto),
            initialization: links::marked(
                &url::format(
                    &Resource::Init { bitrate: track.bitrate, track: track.name.clone(), format, encryption },
                    extension,
                ),
                Link::Media,
            ),
            media: links::marked(
                &SegmentUrls::new(
                    track.bitrate,
                    &track.name,
                    format,
                    encryption,
                    &AudioChoice::default(),
                    extension,
                    false,
                )
                .template(),
                Link::Media,
            ),
            segment_timeline: SegmentTimeline { s: segment_timeline(track) },
        },
    }
}

/// `AudioChannelConfiguration`: the Dolby channel map for AC-3 / E-AC-3 (from `dac3` /
/// `dec3`), else the channel count (23003-3, valid for every codec; for AAC it is the
/// channelConfiguration's count).
fn audio_channel_configuration(codec: &CodecInfo) -> Option<Descriptor> {
    match codec.config.channel_layout() {
        Some(ChannelLayout::Dolby(map)) => {
            Some(Descriptor { scheme_id_uri: DOLBY_CHANNELS_SCHEME, value: format!("{map:04X}") })
        }
        _ => (codec.channels > 0)
            .then(|| Descriptor { scheme_id_uri: CHANNELS_SCHEME, value: codec.channels.to_string() }),
    }
}

/// E-AC-3 JOC (Atmos): `EC3_ExtensionType` = `JOC` and the complexity index (the number of
/// decodable objects), as ETSI TS 103 420 D.2 defines them.
fn joc_properties(codec: &CodecInfo) -> Vec<Descriptor> {
    match codec.config.joc_complexity() {
        Some(complexity) => vec![
            Descriptor { scheme_id_uri: EC3_EXTENSION_TYPE_SCHEME, value: "JOC".to_owned() },
            Descriptor { scheme_id_uri: EC3_COMPLEXITY_SCHEME, value: complexity.to_string() },
        ],
        None => Vec::new(),
    }
}

/// The colour descriptors of a video AdaptationSet, (EssentialProperty, SupplementalProperty),
/// following DASH-IF IOP v4.3 §6.2.5 and DVB-DASH (ETSI TS 103 285) §5.2.5:
/// - PQ (HDR10, Dolby Vision 5 / 8.1): primaries, transfer 16 and matrix as
///   EssentialProperty — a client that does not know them must skip the set rather than show
///   PQ as SDR (dash.js' default `supportedEssentialProperties` accepts only SDR values, so an
///   SDR-only browser skips it; Shaka Player knows the three schemes);
/// - HLG (backward compatible with SDR displays): EssentialProperty transfer 14 (BT.2020, the
///   SDR-compatible reading) with primaries and matrix, and SupplementalProperty transfer 18
///   for clients that know HLG;
/// - SDR with a colour description: the three as SupplementalProperty (informative).
///
/// Nothing for a track without a colour description.
fn colour_properties(codec: &CodecInfo) -> (Vec<Descriptor>, Vec<Descriptor>) {
    let Some(c) = codec.colour else { return (Vec::new(), Vec::new()) };
    let d = |scheme_id_uri: &'static str, v: u8| Descriptor { scheme_id_uri, value: v.to_string() };
    match codec.video_range() {
        VideoRange::Pq => (
            vec![d(COLOUR_PRIMARIES_SCHEME, c.primaries), d(TRANSFER_SCHEME, c.transfer), d(MATRIX_SCHEME, c.matrix)],
            vec![],
        ),
        VideoRange::Hlg => (
            vec![d(COLOUR_PRIMARIES_SCHEME, c.primaries), d(TRANSFER_SCHEME, 14), d(MATRIX_SCHEME, c.matrix)],
            vec![d(TRANSFER_SCHEME, c.transfer)],
        ),
        VideoRange::Sdr => (
            vec![],
            vec![d(COLOUR_PRIMARIES_SCHEME, c.primaries), d(TRANSFER_SCHEME, c.transfer), d(MATRIX_SCHEME, c.matrix)],
        ),
    }
}

/// Whether two video tracks signal alike at AdaptationSet level: the same colour
/// descriptors and Dolby Vision profile (an HDR10 and a Dolby Vision rendition, or PQ and
/// HLG ones, go to sets of their own so a player picks among like renditions).
fn same_video_signalling(a: &CodecInfo, b: &CodecInfo) -> bool {
    let dv = |c: &CodecInfo| c.dolby_vision.map(|d| (d.profile, d.bl_compatibility));
    colour_properties(a) == colour_properties(b) && dv(a) == dv(b)
}

/// Tracks that share one AdaptationSet: same kind, codec, language, role and accessibility
/// (Role and Accessibility are AdaptationSet-level, so they split sets too), and for video the
/// same colour and Dolby Vision signalling.
fn same_set(a: &AssetTrack, b: &AssetTrack) -> bool {
    let (ca, cb) = (&a.index().info.codec, &b.index().info.codec);
    a.kind == b.kind
        && ca.family == cb.family
        && (a.kind != TrackKind::Video || same_video_signalling(ca, cb))
        && (ca.family != CodecFamily::Other || ca.sample_entry_type == cb.sample_entry_type)
        && a.language == b.language
        && a.role == b.role
        && a.accessibility == b.accessibility
}

/// True when every track of the set starts its segments at the same instants.
fn aligned(tracks: &[&AssetTrack]) -> bool {
    let Some(first) = tracks.first() else { return true };
    let (fa, ta) = (&first.timeline.segments, first.timeline.timescale as u128);
    tracks[1..].iter().all(|t| {
        let (fb, tb) = (&t.timeline.segments, t.timeline.timescale as u128);
        fa.len() == fb.len() && fa.iter().zip(fb).all(|(a, b)| a.time as u128 * tb == b.time as u128 * ta)
    })
}

fn adaptation_set(
    id: usize,
    tracks: &[&AssetTrack],
    options: &ManifestOptions,
    protection: &[ContentProtection],
    extension: bool,
) -> Option<AdaptationSet> {
    let format = options.format;
    let first = *tracks.first()?;
    let video = first.kind == TrackKind::Video;
    let mut sorted: Vec<&AssetTrack> = tracks.to_vec();
    sorted.sort_by_key(|t| t.peak_bitrate());
    let representations: Vec<Representation> =
        sorted.iter().map(|t| representation(t, format, options.encryption, extension)).collect();

    let (mut max_width, mut max_height, mut par) = (None, None, None);
    if video {
        let sizes: Vec<(u16, u16)> = sorted
            .iter()
            .map(|t| (t.index().info.codec.width, t.index().info.codec.height))
            .filter(|&(w, h)| w > 0 && h > 0)
            .collect();
        max_width = sizes.iter().map(|s| s.0).max();
        max_height = sizes.iter().map(|s| s.1).max();
        // @par only when every rendition has the same picture shape (square pixels assumed).
        let ratios: Vec<(u64, u64)> = sizes
            .iter()
            .map(|&(w, h)| {
                let g = crate::source::index::gcd(w as u64, h as u64);
                (w as u64 / g, h as u64 / g)
            })
            .collect();
        if let Some(&r) = ratios.first() {
            if ratios.iter().all(|&x| x == r) {
                par = Some(format!("{}:{}", r.0, r.1));
            }
        }
    }
    let (essential_properties, supplemental_properties) =
        if video { colour_properties(&first.index().info.codec) } else { (Vec::new(), Vec::new()) };
    let text = first.kind == TrackKind::Text;
    let (content_type, mime_type) = match first.kind {
        TrackKind::Video => ("video", "video/mp4"),
        TrackKind::Audio => ("audio", "audio/mp4"),
        TrackKind::Text => ("text", "application/mp4"),
    };
    Some(AdaptationSet {
        id,
        content_type,
        mime_type,
        lang: (!first.language.is_empty() && first.language != "und").then(|| first.language.clone()),
        segment_alignment: aligned(tracks).then_some("true"),
        start_with_sap: 1,
        max_width,
        max_height,
        par,
        content_protection: if text { Vec::new() } else { protection.to_vec() },
        essential_properties,
        supplemental_properties,
        label: if text { super::text::display_name(first).to_owned() } else { first.name.clone() },
        accessibility: first
            .accessibility
            .as_ref()
            .map(|a| Descriptor { scheme_id_uri: ROLE_SCHEME, value: a.clone() }),
        role: Descriptor {
            scheme_id_uri: ROLE_SCHEME,
            value: if text {
                super::text::dash_role(first).to_owned()
            } else {
                first.role.clone().unwrap_or_else(|| "main".to_owned())
            },
        },
        representations,
    })
}

// ---------------------------------------------------------------------------------------------
// Thumbnail tiles (DASH-IF IOP 4.3 §6.2.6): an image AdaptationSet whose Representation's
// segments are JPEG tiles of `columns x rows` thumbnails, addressed by `$Time$` like media.

const THUMBNAIL_TILE_SCHEME: &str = "http://dashif.org/thumbnail_tile";

#[derive(Serialize)]
struct ImageAdaptationSet {
    #[serde(rename = "@id")]
    id: usize,
    #[serde(rename = "@contentType")]
    content_type: &'static str,
    #[serde(rename = "@mimeType")]
    mime_type: &'static str,
    #[serde(rename = "Representation")]
    representation: ImageRepresentation,
}

#[derive(Serialize)]
struct ImageRepresentation {
    #[serde(rename = "@id")]
    id: String,
    #[serde(rename = "@bandwidth")]
    bandwidth: u64,
    #[serde(rename = "@width")]
    width: u32,
    #[serde(rename = "@height")]
    height: u32,
    #[serde(rename = "EssentialProperty")]
    essential_property: Descriptor,
    #[serde(rename = "SegmentTemplate")]
    segment_template: ImageSegmentTemplate,
}

#[derive(Serialize)]
struct ImageSegmentTemplate {
    #[serde(rename = "@timescale")]
    timescale: u32,
    #[serde(rename = "@presentationTimeOffset", skip_serializing_if = "Option::is_none")]
    presentation_time_offset: Option<u64>,
    #[serde(rename = "@media")]
    media: String,
    #[serde(rename = "SegmentTimeline")]
    segment_timeline: SegmentTimeline,
}

/// The thumbnail set of `asset` (id `id`), when it has a thumbnail track with tiles in its
/// window. `@width`/`@height` are the whole tile's, as the IOP asks; the timeline is the
/// source track's, with its presentationTimeOffset, so tile times line up with the video's.
fn image_adaptation_set(
    asset: &Asset,
    settings: &ThumbnailSettings,
    id: usize,
    extension: bool,
) -> Option<ImageAdaptationSet> {
    let track = thumbnails::source_track(asset, settings)?;
    let tiles = thumbnails::tiles(track, settings);
    // Each S covers a tile's whole grid, also the last one's: players spread a tile's
    // thumbnails evenly over its S@d (IOP: "evenly distributed across the duration").
    let mut s: Vec<S> = Vec::new();
    let mut next_time = None;
    for tile in &tiles {
        match s.last_mut() {
            Some(last) if next_time == Some(tile.time) && last.d == tile.span => last.r = Some(last.r.unwrap_or(0) + 1),
            _ => s.push(S { t: (next_time != Some(tile.time)).then_some(tile.time), d: tile.span, r: None }),
        }
        next_time = Some(tile.time.saturating_add(tile.span));
    }
    if s.is_empty() {
        return None;
    }
    // The URL of tile 0 with its time swapped for `$Time$` (names and times are percent-
    // encoded, so `=0)` occurs once, at the time).
    let sample = Resource::Thumbnail { bitrate: track.bitrate, track: track.name.clone(), time: 0 };
    let mut media = url::format(&sample, extension);
    let at = media.rfind("=0)")?;
    media.replace_range(at..at + 3, "=$Time$)");
    let (width, height) = settings.tile_size(track);
    let pto = presentation_time_offset(track);
    Some(ImageAdaptationSet {
        id,
        content_type: "image",
        mime_type: super::thumbnail::JPEG_CONTENT_TYPE,
        representation: ImageRepresentation {
            id: format!("thumbnails-{}", representation_id(track)),
            bandwidth: settings.estimated_bandwidth(track),
            width,
            height,
            essential_property: Descriptor {
                scheme_id_uri: THUMBNAIL_TILE_SCHEME,
                value: format!("{}x{}", settings.columns, settings.rows),
            },
            segment_template: ImageSegmentTemplate {
                timescale: track.timeline.timescale,
                presentation_time_offset: (pto > 0).then_some(pto),
                media: links::marked(&media, Link::Media),
                segment_timeline: SegmentTimeline { s },
            },
        },
    })
}

/// DASH-IF IOP trick mode: an AdaptationSet of keyframes for the set whose id is its value.
const TRICK_MODE_SCHEME: &str = "http://dashif.org/guidelines/trickmode";

/// One trick-mode AdaptationSet per video set of `main` (built from `sets`, ids being indexes
/// in `sets`), ids after every other set's: the same Representations with keyframes only, each
/// a `KeyFrames(…)` resource lasting until the next one, the main set's init segments,
/// `presentationTimeOffset` and ContentProtection. Not for live events (see
/// [`crate::output::trick`]).
fn trick_mode_sets(
    main: &[AdaptationSet],
    sets: &[Vec<&AssetTrack>],
    options: &ManifestOptions,
    extension: bool,
) -> Vec<AdaptationSet> {
    let mut next_id = sets.len();
    let mut out = Vec::new();
    for set in main.iter().filter(|s| s.content_type == "video") {
        let Some(tracks) = sets.get(set.id) else { continue };
        let representations: Vec<Representation> = set
            .representations
            .iter()
            .filter_map(|rep| {
                let track = tracks.iter().find(|t| representation_id(t) == rep.id)?;
                trick_mode_representation(track, rep, options, extension)
            })
            .collect();
        if representations.is_empty() {
            continue;
        }
        out.push(AdaptationSet {
            id: next_id,
            segment_alignment: None,
            // The main set's colour signalling holds for its keyframes too.
            essential_properties: std::iter::once(Descriptor {
                scheme_id_uri: TRICK_MODE_SCHEME,
                value: set.id.to_string(),
            })
            .chain(set.essential_properties.iter().cloned())
            .collect(),
            supplemental_properties: set.supplemental_properties.clone(),
            label: format!("{} (trick play)", set.label),
            representations,
            content_type: set.content_type,
            mime_type: set.mime_type,
            lang: set.lang.clone(),
            start_with_sap: set.start_with_sap,
            max_width: set.max_width,
            max_height: set.max_height,
            par: set.par.clone(),
            content_protection: set.content_protection.clone(),
            accessibility: None,
            role: Descriptor { scheme_id_uri: ROLE_SCHEME, value: set.role.value.clone() },
        });
        next_id += 1;
    }
    out
}

/// The trick-mode twin of `main`, the Representation of `track`; `None` without keyframes.
fn trick_mode_representation(
    track: &AssetTrack,
    main: &Representation,
    options: &ManifestOptions,
    extension: bool,
) -> Option<Representation> {
    let frames = keyframes::key_frames(track);
    if frames.is_empty() {
        return None;
    }
    let (peak, _) = keyframes::bitrates(track, &frames);
    let window: usize = track.timeline.segments.iter().map(|s| s.sample_count as usize).sum();
    let urls = SegmentUrls::new(
        track.bitrate,
        &track.name,
        options.format,
        options.encryption,
        &AudioChoice::default(),
        extension,
        false,
    )
    .key_frames();
    let template = &main.segment_template;
    Some(Representation {
        id: format!("{}-trick", main.id),
        bandwidth: peak,
        codecs: main.codecs.clone(),
        supplemental_codecs: main.supplemental_codecs.clone(),
        supplemental_profiles: main.supplemental_profiles,
        width: main.width,
        height: main.height,
        frame_rate: None,
        max_playout_rate: Some((window / frames.len()).max(1) as u64),
        coding_dependency: Some(false),
        audio_sampling_rate: None,
        audio_channel_configuration: None,
        supplemental_properties: Vec::new(),
        segment_template: SegmentTemplate {
            timescale: template.timescale,
            presentation_time_offset: template.presentation_time_offset,
            initialization: template.initialization.clone(),
            media: links::marked(&urls.template(), Link::Media),
            segment_timeline: SegmentTimeline { s: timeline_of(frames.iter().map(|k| &k.segment)) },
        },
    })
}

/// `PT…S` with millisecond precision: `PT8.000S`, `PT1M5.500S`, `PT2H0M0.000S`.
fn iso_duration(ms: u64) -> String {
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("PT{h}H{m}M{s}.{frac:03}S")
    } else if m > 0 {
        format!("PT{m}M{s}.{frac:03}S")
    } else {
        format!("PT{s}.{frac:03}S")
    }
}

/// Presentation duration of a track in ms: its timeline end minus its PTO.
fn presentation_ms(track: &AssetTrack) -> u64 {
    let tl = &track.timeline;
    let end = tl.segments.last().map(|s| s.time.saturating_add(s.duration)).unwrap_or(0);
    let ticks = end.saturating_sub(presentation_time_offset(track)) as u128;
    let ts = tl.timescale.max(1) as u128;
    ((ticks * 1000 + ts / 2) / ts) as u64
}

/// The static MPD at `manifest(format=mpd-time-…)`.
/// `protection`: the ContentProtection descriptors of an encrypted MPD (empty when clear).
pub fn mpd(
    asset: &Asset,
    options: &ManifestOptions,
    protection: &[ContentProtection],
    extension: bool,
) -> ManifestText {
    mpd_with_thumbnails(asset, options, protection, None, extension)
}

/// [`mpd`], with the asset's thumbnail tile set when `thumbnails` are on.
pub fn mpd_with_thumbnails(
    asset: &Asset,
    options: &ManifestOptions,
    protection: &[ContentProtection],
    thumbnails: Option<&ThumbnailSettings>,
    extension: bool,
) -> ManifestText {
    let format = options.format;
    // Video sets first, then audio, then text (one set per language and role), each in asset
    // order.
    let mut sets: Vec<Vec<&AssetTrack>> = Vec::new();
    for kind in [TrackKind::Video, TrackKind::Audio, TrackKind::Text] {
        for t in asset.tracks_of(kind).filter(|t| kind != TrackKind::Text || super::text::carries(t, format)) {
            match sets.iter_mut().find(|s| s.first().is_some_and(|f| same_set(f, t))) {
                Some(s) => s.push(t),
                None => sets.push(vec![t]),
            }
        }
    }
    let mut adaptation_sets: Vec<AdaptationSet> =
        sets.iter().enumerate().filter_map(|(i, s)| adaptation_set(i, s, options, protection, extension)).collect();
    if asset.live.is_none() {
        adaptation_sets.extend(trick_mode_sets(&adaptation_sets, &sets, options, extension));
    }
    let duration_ms = sets.iter().flatten().map(|t| presentation_ms(t)).max().unwrap_or(0);
    let segments: usize = sets.iter().flatten().map(|t| t.timeline.segments.len()).sum();
    let running = asset.live.as_ref().filter(|live| !live.ended);
    // Players refresh a dynamic MPD every half segment and start three segments behind the edge.
    let segment_ms = (asset.longest_segment_secs() * 1000.0).round() as u64;

    let doc = Mpd {
        xmlns: MPD_NS,
        kind: if running.is_some() { "dynamic" } else { "static" },
        availability_start_time: running.map(|l| iso_date_time(l.epoch_ms)),
        publish_time: running.map(|l| iso_date_time(l.updated_ms)),
        minimum_update_period: running.map(|_| iso_duration((segment_ms / 2).max(1000))),
        time_shift_buffer_depth: running.map(|l| iso_duration(l.dvr_window_secs.saturating_mul(1000))),
        suggested_presentation_delay: running.map(|_| iso_duration(segment_ms * 3)),
        media_presentation_duration: running.is_none().then(|| iso_duration(duration_ms)),
        min_buffer_time: "PT2S",
        profiles: if format == Format::MpdTimeCsf { PROFILES_CSF } else { PROFILES_CMAF },
        xmlns_cenc: (!protection.is_empty()).then_some(MPD_NAMESPACES[0].1),
        xmlns_mspr: (!protection.is_empty()).then_some(MPD_NAMESPACES[1].1),
        xmlns_dashif: (!protection.is_empty()).then_some(MPD_NAMESPACES[2].1),
        xmlns_scte214: adaptation_sets
            .iter()
            .flat_map(|s| &s.representations)
            .any(|r| r.supplemental_codecs.is_some())
            .then_some(SCTE214_NS),
        period: Period {
            id: "0",
            start: "PT0S",
            image_set: thumbnails.filter(|_| protection.is_empty() && options.encryption.is_none()).and_then(|s| {
                // After every other set's id (media sets are numbered with gaps, trick-mode
                // sets after them).
                let id = adaptation_sets.iter().map(|a| a.id + 1).max().unwrap_or(0).max(sets.len());
                image_adaptation_set(asset, s, id, extension)
            }),
            adaptation_sets,
        },
        utc_timing: running.map(|_| Descriptor { scheme_id_uri: UTC_TIMING_SCHEME, value: TIME_PATH.to_string() }),
    };
    ManifestText::from_marked(&crate::markup::xml_document(&doc, 2048 + segments * 24))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::hls::fixtures::{self, resolve};
    use crate::plan::url::ParsedUrl;
    use quick_xml::events::Event;
    use quick_xml::{Reader, XmlVersion};
    use std::collections::HashMap;

    /// A minimal generic view of the parsed MPD: elements with attributes, in document order.
    #[derive(Debug, Default)]
    struct Node {
        name: String,
        attrs: HashMap<String, String>,
        text: String,
        children: Vec<Node>,
    }

    impl Node {
        fn attr(&self, k: &str) -> Option<&str> {
            self.attrs.get(k).map(String::as_str)
        }
        fn child(&self, name: &str) -> Option<&Node> {
            self.children.iter().find(|c| c.name == name)
        }
        fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }
    }

    fn parse_xml(text: &str) -> Node {
        let mut reader = Reader::from_str(text);
        let mut stack = vec![Node::default()];
        let open = |e: &quick_xml::events::BytesStart<'_>| {
            let mut n = Node { name: e.name().as_ref().to_owned(), ..Default::default() };
            for a in e.attributes() {
                let a = a.unwrap();
                n.attrs.insert(
                    a.key.as_ref().to_owned(),
                    a.normalized_value(XmlVersion::Explicit1_0).unwrap().into_owned(),
                );
            }
            n
        };
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) => stack.push(open(&e)),
                Event::Empty(e) => {
                    let n = open(&e);
                    stack.last_mut().unwrap().children.push(n);
                }
                Event::End(_) => {
                    let n = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(n);
                }
                Event::Text(t) => {
                    stack.last_mut().unwrap().text.push_str(t.xml10_content().trim());
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(stack.len(), 1, "unbalanced XML");
        stack.pop().unwrap().children.into_iter().next().unwrap()
    }

    /// Expands `<S>` runs back into (time, duration) pairs.
    fn expand(timeline: &Node) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut t = 0u64;
        for s in timeline.all("S") {
            if let Some(v) = s.attr("t") {
                t = v.parse().unwrap();
            }
            let d: u64 = s.attr("d").unwrap().parse().unwrap();
            let r: u64 = s.attr("r").map(|r| r.parse().unwrap()).unwrap_or(0);
            for _ in 0..=r {
                out.push((t, d));
                t += d;
            }
        }
        out
    }

    #[test]
    fn mpd_structure_and_timelines() {
        let asset = fixtures::asset();
        for (format, extension) in
            [(Format::MpdTimeCmaf, false), (Format::MpdTimeCmaf, true), (Format::MpdTimeCsf, false)]
        {
            let options = ManifestOptions::new(format);
            let base = url::format(&Resource::Manifest(options.clone()), extension);
            let text = mpd(&asset, &options, &[], extension).text;
            assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MPD "), "{text}");
            let root = parse_xml(&text);
            assert_eq!(root.name, "MPD");
            assert_eq!(root.attr("xmlns"), Some(MPD_NS));
            assert_eq!(root.attr("type"), Some("static"));
            assert_eq!(root.attr("minBufferTime"), Some("PT2S"));
            let profiles = root.attr("profiles").unwrap();
            assert_eq!(profiles.contains("cmaf:2019"), format == Format::MpdTimeCmaf);
            let period = root.child("Period").unwrap();
            assert_eq!((period.attr("id"), period.attr("start")), (Some("0"), Some("PT0S")));

            // video; aac eng; aac fra; aac eng description; ec3 eng.
            // (Trick-mode sets, after these, are checked in trick_mode_set_*.)
            let sets: Vec<&Node> =
                period.all("AdaptationSet").filter(|s| s.child("EssentialProperty").is_none()).collect();
            assert_eq!(sets.len(), 5);
            assert_eq!(sets[0].attr("contentType"), Some("video"));
            assert_eq!(sets[0].attr("mimeType"), Some("video/mp4"));
            assert_eq!(sets[0].attr("lang"), None);
            assert_eq!(
                (sets[0].attr("maxWidth"), sets[0].attr("maxHeight"), sets[0].attr("par")),
                (Some("1280"), Some("720"), Some("16:9"))
            );
            assert_eq!(sets[0].attr("segmentAlignment"), Some("true"));
            assert_eq!(sets[0].attr("startWithSAP"), Some("1"));
            assert_eq!(sets[1].attr("lang"), Some("eng"));
            assert_eq!(sets[2].attr("lang"), Some("fra"));
            assert_eq!(sets[3].child("Role").unwrap().attr("value"), Some("description"));
            assert_eq!(sets[3].child("Accessibility").unwrap().attr("value"), Some("description"));
            assert_eq!(sets[1].child("Role").unwrap().attr("value"), Some("main"));
            assert_eq!(sets[1].child("Role").unwrap().attr("schemeIdUri"), Some(ROLE_SCHEME));
            assert!(sets[1].child("Accessibility").is_none());
            assert_eq!(sets[4].child("Label").unwrap().text, "ec3_eng");
            let ids: Vec<_> = sets.iter().map(|s| s.attr("id").unwrap()).collect();
            assert_eq!(ids, ["0", "1", "2", "3", "4"]);

            let mut seen = 0;
            let mut longest_ms = 0u64;
            for set in &sets {
                for rep in set.all("Representation") {
                    seen += 1;
                    let id = rep.attr("id").unwrap();
                    let track = asset.tracks.iter().find(|t| format!("{}-{}", t.name, t.bitrate) == id).unwrap();
                    assert_eq!(rep.attr("bandwidth").unwrap().parse::<u64>().unwrap(), track.timeline.peak_bitrate);
                    assert_eq!(rep.attr("codecs"), Some(track.index().info.codec.codec_string.as_str()));
                    match track.kind {
                        TrackKind::Video => {
                            assert_eq!(rep.attr("frameRate"), Some("30000/1001"));
                            assert!(rep.attr("width").is_some() && rep.attr("height").is_some());
                        }
                        _ => {
                            assert_eq!(rep.attr("audioSamplingRate"), Some("48000"));
                            let acc = rep.child("AudioChannelConfiguration").unwrap();
                            assert_eq!(acc.attr("schemeIdUri"), Some(CHANNELS_SCHEME));
                            assert_eq!(acc.attr("value"), Some(track.index().info.codec.channels.to_string().as_str()));
                        }
                    }
                    let tmpl = rep.child("SegmentTemplate").unwrap();
                    assert_eq!(tmpl.attr("timescale").unwrap().parse::<u32>().unwrap(), track.timeline.timescale);
                    let edit = track.index().info.edit;
                    let pto = edit.media_time - edit.empty_duration;
                    assert_eq!(
                        tmpl.attr("presentationTimeOffset").map(|p| p.parse::<u64>().unwrap()),
                        (pto > 0).then_some(pto)
                    );

                    let init = resolve(&base, tmpl.attr("initialization").unwrap());
                    assert_eq!(
                        init,
                        ParsedUrl {
                            resource: Resource::Init {
                                bitrate: track.bitrate,
                                track: track.name.clone(),
                                format,
                                encryption: None
                            },
                            extension
                        }
                    );
                    let expanded = expand(tmpl.child("SegmentTimeline").unwrap());
                    let expected: Vec<(u64, u64)> =
                        track.timeline.segments.iter().map(|s| (s.time, s.duration)).collect();
                    assert_eq!(expanded, expected, "{id}");
                    let media = tmpl.attr("media").unwrap();
                    assert!(media.contains("$Time$"));
                    for &(t, _) in &expanded {
                        let parsed = resolve(&base, &media.replace("$Time$", &t.to_string()));
                        assert_eq!(
                            parsed,
                            ParsedUrl {
                                resource: Resource::Segment {
                                    bitrate: track.bitrate,
                                    track: track.name.clone(),
                                    time: t,
                                    format,
                                    encryption: None,
                                    audio: AudioChoice::default(),
                                },
                                extension
                            }
                        );
                    }
                    longest_ms = longest_ms.max(presentation_ms(track));
                }
            }
            assert_eq!(seen, asset.tracks.len());
            assert_eq!(root.attr("mediaPresentationDuration").unwrap(), iso_duration(longest_ms));
            // The fixture is ~10 s long.
            assert!((9_500..=10_600).contains(&longest_ms), "{longest_ms}");
        }
    }

    #[test]
    fn repeats_collapse_and_gaps_restate_t() {
        let mut asset = fixtures::asset_of(&[fixtures::aac("a", 128_000, "und", 4.0)], Some(2.0));
        let track = &mut asset.tracks[0];
        let segs = &mut track.timeline.segments;
        segs.truncate(1);
        let base = segs[0];
        let mk = |time, duration| crate::source::timeline::Segment { time, duration, ..base };
        *segs = vec![mk(0, 100), mk(100, 100), mk(200, 100), mk(300, 50), mk(400, 50), mk(450, 50)];
        let s = segment_timeline(track);
        assert_eq!(
            s,
            vec![
                S { t: Some(0), d: 100, r: Some(2) },
                S { t: None, d: 50, r: None },
                S { t: Some(400), d: 50, r: Some(1) },
            ]
        );
    }

    #[test]
    fn durations_format_like_iso8601() {
        assert_eq!(iso_duration(8_000), "PT8.000S");
        assert_eq!(iso_duration(65_500), "PT1M5.500S");
        assert_eq!(iso_duration(7_200_000), "PT2H0M0.000S");
        assert_eq!(iso_duration(0), "PT0.000S");
    }

    #[test]
    fn mpd_is_byte_stable() {
        let asset = fixtures::asset();
        let o = ManifestOptions::new(Format::MpdTimeCmaf);
        assert_eq!(mpd(&asset, &o, &[], true), mpd(&asset.clone(), &o, &[], true));
    }

    #[test]
    fn trick_mode_set_per_video_set_lists_the_keyframes() {
        let asset = fixtures::asset();
        let mut options = ManifestOptions::new(Format::MpdTimeCmaf);
        options.encryption = Some(Encryption::Common(crate::protect::Scheme::Cenc));
        let base = url::format(&Resource::Manifest(options.clone()), true);
        let text = mpd(&asset, &options, &[], true).text;
        let root = parse_xml(&text);
        let sets: Vec<&Node> = root.child("Period").unwrap().all("AdaptationSet").collect();
        let trick: Vec<&Node> = sets.iter().copied().filter(|s| s.child("EssentialProperty").is_some()).collect();
        assert_eq!(trick.len(), 1, "{text}");
        let (set, main) = (trick[0], sets[0]);
        let property = set.child("EssentialProperty").unwrap();
        assert_eq!(property.attr("schemeIdUri"), Some(TRICK_MODE_SCHEME));
        assert_eq!(property.attr("value"), main.attr("id"));
        assert!(sets.iter().filter(|s| s.attr("id") == set.attr("id")).count() == 1);
        assert_eq!(set.all("Representation").count(), main.all("Representation").count());
        for (rep, main_rep) in set.all("Representation").zip(main.all("Representation")) {
            assert_eq!(rep.attr("codingDependency"), Some("false"));
            assert!(rep.attr("maxPlayoutRate").is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
            let (tmpl, main_tmpl) = (rep.child("SegmentTemplate").unwrap(), main_rep.child("SegmentTemplate").unwrap());
            assert_eq!(tmpl.attr("initialization"), main_tmpl.attr("initialization"));
            assert_eq!(tmpl.attr("presentationTimeOffset"), main_tmpl.attr("presentationTimeOffset"));
            let track = asset
                .tracks
                .iter()
                .find(|t| rep.attr("id") == Some(&format!("{}-trick", representation_id(t))))
                .unwrap();
            let frames = keyframes::key_frames(track);
            let expected: Vec<(u64, u64)> = frames.iter().map(|k| (k.segment.time, k.segment.duration)).collect();
            let expanded = expand(tmpl.child("SegmentTimeline").unwrap());
            assert_eq!(expanded, expected);
            let media = tmpl.attr("media").unwrap();
            let parsed = resolve(&base, &media.replace("$Time$", &expanded[1].0.to_string()));
            assert_eq!(
                parsed.resource,
                Resource::KeyFrame {
                    bitrate: track.bitrate,
                    track: track.name.clone(),
                    time: expanded[1].0,
                    format: Format::MpdTimeCmaf,
                    encryption: options.encryption
                }
            );
        }
    }
}
