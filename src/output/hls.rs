//! HLS manifests (RFC 8216, Apple authoring rules): the multivariant playlist and one media
//! playlist per track, fMP4/CMAF segments.
//!
//! Written with m3u8-rs, using its typed struct fields, and for the attributes it has no field
//! for (`VIDEO-RANGE`, `SUPPLEMENTAL-CODECS`) at most one `other_attributes` entry per tag
//! (see [`video_attributes`]): that map is a HashMap whose iteration order differs between
//! processes, so one entry is the only way its output is byte-stable and ETags agree across
//! replicas. Two m3u8-rs quirks handled here:
//! - EXTINF precision is a process-global (`WRITE_OPT_FLOAT_PRECISION`); every write sets it
//!   to 3 first, so concurrent writers agree on the value.
//! - m3u8-rs omits `#EXT-X-MEDIA-SEQUENCE` when it is 0; we splice `#EXT-X-MEDIA-SEQUENCE:0`
//!   in after the header so the playlist states it explicitly.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ExtTag, Key, KeyMethod, Map, MasterPlaylist, MediaPlaylist,
    MediaPlaylistType, MediaSegment, QuotedOrUnquoted, Resolution, VariantStream,
};

use crate::plan::links::{self, Link, ManifestText};
use crate::plan::thumbnails::{self, ThumbnailSettings};
use crate::plan::url::{self, AudioChoice, Encryption, Format, ManifestOptions, PlaylistKind, Resource, SegmentUrls};
use crate::protect::drm::HlsKeyLine;
use crate::protect::ContentKey;
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::{CodecFamily, CodecInfo, TrackKind};

/// `#EXT-X-VERSION`, minimal for the features each format uses: fMP4 (EXT-X-MAP) needs 6 and
/// Apple's tools write 7; TS with EXT-X-MEDIA renditions needs 4; muxed TS with IV 3.
pub(super) fn version(format: Format) -> usize {
    match format {
        Format::M3u8AaplV3 => 3,
        Format::M3u8Aapl => 4,
        _ => 7,
    }
}

/// What a media playlist needs to signal AES-128 envelope encryption: the key URI (the
/// origin's key endpoint) and the key, from which each segment's IV is derived.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeSignal<'a> {
    pub key_uri: &'a str,
    pub key: &'a ContentKey,
    /// The audio muxed into HLS v3 segments when it is not the default audio (it changes
    /// their IVs, see [`super::envelope_iv`]).
    pub other_audio: Option<&'a str>,
}

pub(super) fn set_precision() {
    m3u8_rs::WRITE_OPT_FLOAT_PRECISION.store(3, Ordering::Relaxed);
}

pub(super) fn manifest_text(buf: &[u8]) -> ManifestText {
    // m3u8-rs writes only what we give it, all of it UTF-8 `str`s.
    ManifestText::from_marked(&String::from_utf8_lossy(buf))
}

/// The media playlist URL of `track`, relative to the multivariant playlist; it carries the
/// multivariant's filters so the media playlist lists the same segments.
fn media_playlist_url(track: &AssetTrack, options: &ManifestOptions, extension: bool) -> String {
    let (format, filters) = (options.format, &options.filters);
    let resource = Resource::MediaPlaylist {
        bitrate: track.bitrate,
        track: track.name.clone(),
        format,
        encryption: options.encryption,
        filters: filters.to_vec(),
        audio: AudioChoice::default(),
        kind: PlaylistKind::Media,
    };
    let mut url = url::format(&resource, extension);
    links::push_mark(&mut url, Link::MediaPlaylist);
    url
}

/// GROUP-ID of an audio codec family.
fn audio_group_id(track: &AssetTrack) -> String {
    let codec = &track.index().info.codec;
    let family = match codec.family {
        CodecFamily::Aac => "aac",
        CodecFamily::Ac3 => "ac3",
        CodecFamily::Eac3 => "ec3",
        _ => "",
    };
    if !family.is_empty() {
        return format!("audio-{family}");
    }
    // Other codecs (Opus, FLAC, …): one group per sample entry type, so a group never mixes
    // codecs that a CODECS attribute could not describe.
    let entry: String = codec
        .sample_entry_type
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    if entry.is_empty() {
        "audio-other".to_owned()
    } else {
        format!("audio-{entry}")
    }
}

/// A rendition NAME unique within its group (`names`, which it joins) and a valid
/// quoted-string (no '"', CR or LF): `base`, else `base-{bitrate}`, else `base-{bitrate}-k`.
fn unique_name(names: &mut Vec<String>, base: &str, bitrate: u64) -> String {
    let base: String = base.chars().filter(|c| !c.is_control()).map(|c| if c == '"' { '\'' } else { c }).collect();
    let mut name = base.clone();
    let mut k = 1;
    while names.contains(&name) {
        name = if k == 1 { format!("{base}-{bitrate}") } else { format!("{base}-{bitrate}-{k}") };
        k += 1;
    }
    names.push(name.clone());
    name
}

/// GROUP-ID of the subtitles renditions.
const SUBTITLES_GROUP: &str = "subs";

/// CHARACTERISTICS of a caption (SDH) track: it transcribes dialogue and describes music and
/// sounds (Apple HLS authoring spec).
const SDH_CHARACTERISTICS: &str =
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

/// The `SUBTITLES` renditions of the text tracks `format` carries, and the CODECS entries
/// variants add for them: only fMP4 text (`wvtt`, `stpp` in `m3u8-cmaf`) has one; WebVTT text
/// segments need none (Apple HLS authoring spec).
///
/// DEFAULT=YES goes to the first track that is neither SDH nor forced (RFC 8216 §4.3.4.1.1:
/// at most one per group; Apple's spec asks AUTOSELECT=YES with it, and every subtitle track
/// is auto-selectable by the viewer's language). FORCED=YES only for forced-subtitle tracks.
fn subtitle_renditions(asset: &Asset, options: &ManifestOptions, extension: bool) -> (Vec<AlternativeMedia>, String) {
    let tracks: Vec<&AssetTrack> = super::text::text_tracks(asset, options.format).collect();
    let default = tracks.iter().position(|t| !super::text::is_sdh(t) && !super::text::is_forced(t));
    let mut names: Vec<String> = Vec::with_capacity(tracks.len());
    let mut codecs: Vec<String> = Vec::new();
    let mut renditions = Vec::with_capacity(tracks.len());
    for (i, t) in tracks.iter().enumerate() {
        if !super::text::webvtt_segments(t.index(), options.format) {
            let codec = super::text::codecs(t);
            if !codec.is_empty() && !codecs.contains(&codec) {
                codecs.push(codec);
            }
        }
        renditions.push(AlternativeMedia {
            media_type: AlternativeMediaType::Subtitles,
            uri: Some(media_playlist_url(t, options, extension)),
            group_id: SUBTITLES_GROUP.to_owned(),
            language: (!t.language.is_empty() && t.language != "und").then(|| t.language.clone()),
            name: unique_name(&mut names, super::text::display_name(t), t.bitrate),
            default: default == Some(i),
            autoselect: true,
            forced: super::text::is_forced(t),
            characteristics: super::text::is_sdh(t).then(|| SDH_CHARACTERISTICS.to_owned()),
            ..Default::default()
        });
    }
    (renditions, codecs.join(","))
}

/// One audio group: its id and its tracks, in asset order (the first is the default).
struct AudioGroup<'a> {
    id: String,
    tracks: Vec<&'a AssetTrack>,
}

impl AudioGroup<'_> {
    fn peak(&self) -> u64 {
        self.tracks.iter().map(|t| t.peak_bitrate()).max().unwrap_or(0)
    }
    fn average(&self) -> u64 {
        self.tracks.iter().map(|t| t.average_bitrate()).max().unwrap_or(0)
    }
    /// Distinct codec strings of the group, comma separated (CODECS must name every codec a
    /// rendition of the group may use).
    fn codecs(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for t in &self.tracks {
            let c = t.index().info.codec.codec_string.as_str();
            if !c.is_empty() && !seen.contains(&c) {
                seen.push(c);
            }
        }
        seen.join(",")
    }
}

/// Audio groups in order of first appearance. Within a group, tracks keep asset order except
/// that accessibility tracks (audio description, …) go after the others, so the group's
/// default (its first track) is a main track whenever there is one.
fn audio_groups(asset: &Asset) -> Vec<AudioGroup<'_>> {
    let mut groups: Vec<AudioGroup<'_>> = Vec::new();
    for t in asset.tracks_of(TrackKind::Audio) {
        let id = audio_group_id(t);
        match groups.iter_mut().find(|g| g.id == id) {
            Some(g) => g.tracks.push(t),
            None => groups.push(AudioGroup { id, tracks: vec![t] }),
        }
    }
    for g in &mut groups {
        g.tracks.sort_by_key(|t| t.accessibility.is_some());
    }
    groups
}

/// HLS CHARACTERISTICS for an audio rendition's `accessibility` value.
fn audio_characteristics(track: &AssetTrack) -> Option<String> {
    match track.accessibility.as_deref()? {
        "description" => Some("public.accessibility.describes-video".to_owned()),
        "enhanced-audio-intelligibility" => Some("public.accessibility.enhances-speech-intelligibility".to_owned()),
        _ => None,
    }
}

/// FRAME-RATE with 3 decimals (m3u8-rs writes the f64 with `{}`, so round it here).
fn frame_rate(track: &AssetTrack) -> Option<f64> {
    let (num, den) = track.frame_rate?;
    if den == 0 {
        return None;
    }
    Some((num as f64 / den as f64 * 1000.0).round() / 1000.0)
}

/// `VIDEO-RANGE` (every video variant: SDR, PQ or HLG, [`CodecInfo::video_range`]) and, for a
/// backward-compatible Dolby Vision track, `SUPPLEMENTAL-CODECS` (HLS §4.4.6.2: its CODECS is
/// the base layer's, e.g. `hvc1.2.4.L120.90`, and this names the Dolby Vision layer with the
/// base layer's compatibility brand, `dvh1.08.06/db1p`).
///
/// m3u8-rs has no field for either and writes `other_attributes` in HashMap order, which
/// differs between processes. So both go into ONE entry, keyed `VIDEO-RANGE`, whose unquoted
/// value carries the rest of the attribute list verbatim (`PQ,SUPPLEMENTAL-CODECS="…"`): one
/// entry has one order, and the line parses back into the two attributes.
pub(super) fn video_attributes(codec: &CodecInfo) -> Option<HashMap<String, QuotedOrUnquoted>> {
    let mut value = codec.video_range().as_str().to_owned();
    if let Some(supplemental) = codec.supplemental_codecs() {
        // A quoted-string may not hold '"', CR or LF; codec strings are built from digits,
        // letters and dots.
        value.push_str(&format!(",SUPPLEMENTAL-CODECS=\"{supplemental}\""));
    }
    Some(HashMap::from([("VIDEO-RANGE".to_owned(), QuotedOrUnquoted::Unquoted(value))]))
}

fn join_codecs(a: &str, b: &str) -> Option<String> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => None,
        (false, true) => Some(a.to_owned()),
        (true, false) => Some(b.to_owned()),
        (false, false) => Some(format!("{a},{b}")),
    }
}

/// Where a variant goes in the multivariant playlist: players that start with the first
/// listed variant (AVPlayer; Apple's HLS authoring spec asks that the first variant be the
/// one to start with) must start with video, so video comes first, led by the filter's
/// `firstQuality` when one is set, then audio-only variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum VariantRank {
    FirstQuality,
    Video,
    AudioOnly,
}

/// The video track a `firstQuality` bitrate picks: the one with that URL bitrate, else the
/// nearest (the lower one on a tie).
fn first_quality_track(asset: &Asset, bitrate: u64) -> Option<&AssetTrack> {
    asset.tracks_of(TrackKind::Video).min_by_key(|t| (t.bitrate.abs_diff(bitrate), t.bitrate))
}

/// The multivariant playlist at `manifest(format=m3u8-…)`.
///
/// Audio tracks become `EXT-X-MEDIA` renditions, one group per codec family; each video track
/// gets one `EXT-X-STREAM-INF` per audio group; unless `audio-only=false`, each audio group
/// also gets an audio-only variant. Video variants come first, by BANDWIDTH ascending except
/// that those of the `first_quality` track (a filter's `firstQuality.bitrate`) lead; audio-only
/// variants last ([`VariantRank`]). Text tracks become `SUBTITLES` renditions
/// ([`subtitle_renditions`]) of one group that every variant names.
pub fn multivariant(
    asset: &Asset,
    options: &ManifestOptions,
    first_quality: Option<u64>,
    extension: bool,
) -> ManifestText {
    multivariant_with_thumbnails(asset, options, first_quality, None, extension)
}

/// [`multivariant`], with an `EXT-X-IMAGE-STREAM-INF` for the asset's thumbnail tiles when
/// `thumbnails` are on.
pub fn multivariant_with_thumbnails(
    asset: &Asset,
    options: &ManifestOptions,
    first_quality: Option<u64>,
    thumbnails: Option<&ThumbnailSettings>,
    extension: bool,
) -> ManifestText {
    set_precision();
    let mut groups = audio_groups(asset);
    // HLS v3 TS: the default audio is muxed into the video segments, so there are no
    // renditions, only variants whose CODECS name both.
    let muxed_audio = options.format.muxes_audio();
    if muxed_audio {
        let default = crate::plan::muxed_audio(asset, options.format).map(|t| (t.name.as_str(), t.bitrate));
        for g in &mut groups {
            g.tracks.retain(|t| Some((t.name.as_str(), t.bitrate)) == default);
        }
        groups.retain(|g| !g.tracks.is_empty());
    }

    let mut alternatives = Vec::new();
    for g in groups.iter().filter(|_| !muxed_audio) {
        let mut names: Vec<String> = Vec::with_capacity(g.tracks.len());
        for (i, t) in g.tracks.iter().enumerate() {
            let name = unique_name(&mut names, &t.name, t.bitrate);
            alternatives.push(AlternativeMedia {
                media_type: AlternativeMediaType::Audio,
                uri: Some(media_playlist_url(t, options, extension)),
                group_id: g.id.clone(),
                language: (!t.language.is_empty() && t.language != "und").then(|| t.language.clone()),
                name,
                default: i == 0,
                autoselect: true,
                channels: t.index().info.codec.hls_channels(),
                characteristics: audio_characteristics(t),
                ..Default::default()
            });
        }
    }

    let (subtitles, text_codecs) = subtitle_renditions(asset, options, extension);
    let subtitles_group = (!subtitles.is_empty()).then(|| SUBTITLES_GROUP.to_owned());
    alternatives.extend(subtitles);

    let first_quality = first_quality.and_then(|b| first_quality_track(asset, b));
    let mut variants = Vec::new();
    for v in asset.tracks_of(TrackKind::Video) {
        let rank = match first_quality {
            Some(first) if std::ptr::eq(first, v) => VariantRank::FirstQuality,
            _ => VariantRank::Video,
        };
        let codec = &v.index().info.codec;
        let resolution = (codec.width > 0 && codec.height > 0)
            .then_some(Resolution { width: codec.width as u64, height: codec.height as u64 });
        let frame_rate = frame_rate(v);
        let uri = media_playlist_url(v, options, extension);
        if groups.is_empty() {
            variants.push((
                rank,
                VariantStream {
                    uri,
                    bandwidth: v.peak_bitrate(),
                    average_bandwidth: Some(v.average_bitrate()),
                    codecs: join_codecs(&codec.codec_string, &text_codecs),
                    resolution,
                    frame_rate,
                    other_attributes: video_attributes(codec),
                    subtitles: subtitles_group.clone(),
                    ..Default::default()
                },
            ));
            continue;
        }
        for g in &groups {
            variants.push((
                rank,
                VariantStream {
                    uri: uri.clone(),
                    bandwidth: v.peak_bitrate() + g.peak(),
                    average_bandwidth: Some(v.average_bitrate() + g.average()),
                    codecs: join_codecs(
                        &codec.codec_string,
                        &join_codecs(&g.codecs(), &text_codecs).unwrap_or_default(),
                    ),
                    resolution,
                    frame_rate,
                    audio: (!muxed_audio).then(|| g.id.clone()),
                    other_attributes: video_attributes(codec),
                    subtitles: subtitles_group.clone(),
                    ..Default::default()
                },
            ));
        }
    }
    let has_video = !variants.is_empty();
    if (options.audio_only != Some(false) || !has_video) && !muxed_audio {
        for g in &groups {
            let Some(default) = g.tracks.first() else { continue };
            variants.push((
                VariantRank::AudioOnly,
                VariantStream {
                    uri: media_playlist_url(default, options, extension),
                    bandwidth: g.peak(),
                    average_bandwidth: Some(g.average()),
                    codecs: join_codecs(&g.codecs(), &text_codecs),
                    audio: Some(g.id.clone()),
                    subtitles: subtitles_group.clone(),
                    ..Default::default()
                },
            ));
        }
    }
    // Stable: equal ranks and bandwidths keep asset order.
    variants.sort_by_key(|(rank, v)| (*rank, v.bandwidth));
    let mut variants: Vec<VariantStream> = variants.into_iter().map(|(_, v)| v).collect();
    variants.extend(super::trick::i_frame_streams(asset, options, extension));

    let playlist = MasterPlaylist {
        version: Some(version(options.format)),
        independent_segments: true,
        alternatives,
        variants,
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(4096);
    // Writing into a Vec cannot fail.
    let _ = playlist.write_to(&mut buf);
    if let Some(settings) = thumbnails.filter(|_| has_video) {
        push_image_stream(&mut buf, asset, options, settings, extension);
    }
    manifest_text(&buf)
}

/// `#EXT-X-TARGETDURATION`: every EXTINF, rounded to the nearest integer, must be ≤ it
/// (RFC 8216 §4.3.3.1). EXTINF is written with 3 decimals from an f32; the +0.0005 margin
/// covers values that the 3-decimal rounding pushes up to x.500.
pub(super) fn target_duration(max_duration: u64, timescale: u32) -> u64 {
    let secs = max_duration as f64 / timescale.max(1) as f64;
    ((secs + 0.5005).floor() as u64).max(1)
}

/// What a live event's media playlist adds: wall-clock times, discontinuities, and whether it
/// still grows.
#[derive(Debug, Clone, Copy)]
pub struct LivePlaylist {
    /// The event runs: no `EXT-X-PLAYLIST-TYPE:VOD`, no `EXT-X-ENDLIST`.
    pub running: bool,
    /// Wall clock (Unix ms) of event time 0: `EXT-X-PROGRAM-DATE-TIME`.
    pub epoch_ms: u64,
    /// Discontinuities before the first listed segment: `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// The longest segment the track ever had, ticks: `EXT-X-TARGETDURATION` (rounded up) must
    /// not change while the playlist slides.
    pub longest_segment: u64,
}

/// `EXT-X-PROGRAM-DATE-TIME` of event time `time` (ticks of `timescale`), ms precision.
fn program_date_time(epoch_ms: u64, time: u64, timescale: u32) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let ms = epoch_ms as u128 + time as u128 * 1000 / timescale.max(1) as u128;
    let utc = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    Some(utc.fixed_offset())
}

/// The media playlist of `track` at `QualityLevels(b)/Manifest(name,format=…)`. Init and media
/// segment URIs are relative to that location (`Fragments(…)`), and carry the playlist's
/// `audiotrack=` (`audio`).
/// `drm_keys`: the `EXT-X-KEY` lines of Common Encryption (one per DRM system), written once
/// after the clear `EXT-X-MAP`. `live`: what a live event's playlist adds.
#[allow(clippy::too_many_arguments)]
pub fn media_playlist(
    track: &AssetTrack,
    format: Format,
    encryption: Option<Encryption>,
    audio: &AudioChoice,
    envelope: Option<EnvelopeSignal>,
    drm_keys: &[HlsKeyLine],
    extension: bool,
    live: Option<LivePlaylist>,
) -> ManifestText {
    set_precision();
    let timeline = &track.timeline;
    let timescale = timeline.timescale.max(1) as f64;
    let max_duration = timeline.segments.iter().map(|s| s.duration).max().unwrap_or(0);
    let target_duration = match live {
        // Rounded up: a live playlist's longest segment is not known in advance.
        Some(live) => live.longest_segment.max(max_duration).div_ceil(timeline.timescale.max(1) as u64).max(1),
        None => target_duration(max_duration, timeline.timescale),
    };
    let running = live.is_some_and(|l| l.running);

    let webvtt = super::text::webvtt_segments(track.index(), format);
    let mut urls = SegmentUrls::new(track.bitrate, &track.name, format, encryption, audio, extension, true);
    if webvtt {
        urls = urls.with_extension(url::TEXT_SEGMENT_EXTENSION);
    }
    let mut init = url::relative_to_quality_level(
        &Resource::Init { bitrate: track.bitrate, track: track.name.clone(), format, encryption },
        extension,
    );
    links::push_mark(&mut init, Link::Media);
    // MPEG-TS segments carry their own PAT/PMT: no EXT-X-MAP. The map precedes the first
    // EXT-X-KEY, so init segments stay clear.
    // WebVTT text segments have no init segment either.
    let fmp4 = !format.is_ts() && !webvtt;
    let mut map = fmp4.then(|| Map { uri: init, ..Default::default() });
    let mut drm_tags: Option<Vec<ExtTag>> = Some(drm_key_tags(drm_keys));
    let segments: Vec<MediaSegment> = timeline
        .segments
        .iter()
        .enumerate()
        .map(|(k, s)| MediaSegment {
            discontinuity: s.discontinuity,
            // On the first segment and after every break, so players map each run to the clock.
            program_date_time: live
                .filter(|_| k == 0 || s.discontinuity)
                .and_then(|l| program_date_time(l.epoch_ms, s.time, timeline.timescale)),
            uri: {
                let mut uri = urls.url(s.time);
                links::push_mark(&mut uri, Link::Media);
                uri
            },
            duration: (s.duration as f64 / timescale) as f32,
            map: map.take(),
            unknown_tags: drm_tags.take().unwrap_or_default(),
            key: envelope.map(|e| envelope_key(&e, &super::envelope_iv(e.key, track, format, e.other_audio, s.time))),
            ..Default::default()
        })
        .collect();

    let playlist = MediaPlaylist {
        // KEYFORMAT needs version 5.
        version: Some(if drm_keys.is_empty() { version(format) } else { version(format).max(5) }),
        target_duration,
        media_sequence: timeline.first_number,
        discontinuity_sequence: live.map_or(0, |l| l.discontinuity_sequence),
        segments,
        end_list: !running,
        playlist_type: (!running).then_some(MediaPlaylistType::Vod),
        independent_segments: true,
        ..Default::default()
    };
    let per_segment = 24 + urls.url(0).len() + 16;
    let mut buf = Vec::with_capacity(256 + playlist.segments.len() * per_segment);
    let _ = playlist.write_to(&mut buf);
    if playlist.media_sequence == 0 {
        insert_media_sequence(&mut buf);
    }
    manifest_text(&buf)
}

// ---------------------------------------------------------------------------------------------
// Thumbnail tiles: the HLS Image Media Playlist (Disney / WarnerMedia specification, read by
// Roku and Apple TV apps). m3u8-rs has no type for these tags: written here, in a fixed order.

/// The URL of `track`'s image playlist, as the multivariant playlist lists it.
fn image_playlist_url(track: &AssetTrack, options: &ManifestOptions, extension: bool) -> String {
    let resource = Resource::MediaPlaylist {
        bitrate: track.bitrate,
        track: track.name.clone(),
        format: options.format,
        encryption: None,
        filters: options.filters.to_vec(),
        audio: AudioChoice::default(),
        kind: PlaylistKind::Thumbnails,
    };
    links::marked(&url::format(&resource, extension), Link::MediaPlaylist)
}

/// `#EXT-X-IMAGE-STREAM-INF` of the asset's thumbnail track, if it has one. Clear manifests
/// only: tiles are unencrypted pictures of the content, which a protected locator does not
/// give out.
fn push_image_stream(
    buf: &mut Vec<u8>,
    asset: &Asset,
    options: &ManifestOptions,
    settings: &ThumbnailSettings,
    extension: bool,
) {
    if options.encryption.is_some() {
        return;
    }
    let Some(track) = thumbnails::source_track(asset, settings) else { return };
    if thumbnails::tiles(track, settings).is_empty() {
        return;
    }
    // RESOLUTION is one thumbnail's, as in the specification's examples (the grid is the image
    // playlist's EXT-X-TILES LAYOUT); Shaka Player multiplies it by the layout.
    let (w, h) = settings.thumbnail_size(track);
    let line = format!(
        "#EXT-X-IMAGE-STREAM-INF:BANDWIDTH={},RESOLUTION={w}x{h},CODECS=\"jpeg\",URI=\"{}\"\n",
        settings.estimated_bandwidth(track),
        image_playlist_url(track, options, extension)
    );
    buf.extend_from_slice(line.as_bytes());
}

/// The image media playlist of `track` (`type=thumbnails`): one entry per tile the track's
/// timeline overlaps, each with its grid (`EXT-X-TILES`) and duration.
pub fn image_playlist(track: &AssetTrack, settings: &ThumbnailSettings, extension: bool) -> ManifestText {
    use std::fmt::Write;
    let tiles = thumbnails::tiles(track, settings);
    let timescale = track.timeline.timescale;
    let max_duration = tiles.iter().map(|t| t.duration).max().unwrap_or(0);
    let (w, h) = settings.thumbnail_size(track);
    let mut out = String::with_capacity(256 + tiles.len() * 160);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", target_duration(max_duration, timescale));
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-IMAGES-ONLY\n");
    for tile in &tiles {
        let _ = writeln!(
            out,
            "#EXT-X-TILES:RESOLUTION={w}x{h},LAYOUT={}x{},DURATION={:.3}",
            settings.columns, settings.rows, settings.interval_secs as f64
        );
        let _ = writeln!(out, "#EXTINF:{:.3},", tile.duration as f64 / f64::from(timescale.max(1)));
        let resource = Resource::Thumbnail { bitrate: track.bitrate, track: track.name.clone(), time: tile.time };
        out.push_str(&links::marked(&url::relative_to_quality_level(&resource, extension), Link::Media));
        out.push('\n');
    }
    out.push_str("#EXT-X-ENDLIST\n");
    ManifestText::from_marked(&out)
}

/// The `EXT-X-KEY` tags of Common Encryption (one per DRM system), their key URIs marked.
pub(super) fn drm_key_tags(drm_keys: &[HlsKeyLine]) -> Vec<ExtTag> {
    drm_keys
        .iter()
        .map(|k| {
            let (a, uri) = (&k.attributes, k.uri.clone());
            let rest = format!("{}{}{}", &a[..uri.start], links::marked(&a[uri.clone()], Link::Key), &a[uri.end..]);
            ExtTag { tag: "X-KEY".into(), rest: Some(rest) }
        })
        .collect()
}

/// The AES-128 `EXT-X-KEY` of one segment encrypted with `iv`.
pub(super) fn envelope_key(e: &EnvelopeSignal, iv: &[u8; 16]) -> Key {
    Key {
        method: KeyMethod::AES128,
        uri: Some(links::marked(e.key_uri, Link::Key)),
        iv: Some(format!("0x{}", base16ct::lower::encode_string(iv))),
        keyformat: None,
        keyformatversions: None,
    }
}

/// Splices `#EXT-X-MEDIA-SEQUENCE:0` after `#EXT-X-TARGETDURATION` (m3u8-rs leaves 0 out).
pub(super) fn insert_media_sequence(buf: &mut Vec<u8>) {
    const TAG: &[u8] = b"#EXT-X-TARGETDURATION:";
    let Some(start) = buf.windows(TAG.len()).position(|w| w == TAG) else { return };
    let Some(eol) = buf[start..].iter().position(|&b| b == b'\n') else { return };
    let at = start + eol + 1;
    buf.splice(at..at, b"#EXT-X-MEDIA-SEQUENCE:0\n".iter().copied());
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A synthetic asset for manifest tests: no files, fake indexes, real timelines.

    use std::sync::Arc;

    use bytes::Bytes;

    use crate::plan::url::{self, ParsedUrl};
    use crate::source::asset::{Asset, AssetTrack};
    use crate::source::index::{
        CodecFamily, CodecInfo, EditOffset, FileIndex, SampleTable, TrackIndex, TrackInfo, TrackKind,
    };
    use crate::source::storage::ObjectVersion;
    use crate::source::timeline::{plan, SegmentPolicy};

    /// Resolves a URI found in a manifest at `base` (a path below `{asset}.ism/`) and parses it
    /// the way the router would.
    pub(crate) fn resolve(base: &str, uri: &str) -> ParsedUrl {
        let dir = base.rfind('/').map(|i| &base[..=i]).unwrap_or("");
        let full = format!("{dir}{uri}");
        url::parse(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    /// Description of one fake track.
    #[derive(Clone)]
    pub(crate) struct FakeTrack {
        pub name: &'static str,
        pub bitrate: u64,
        pub kind: TrackKind,
        pub language: &'static str,
        pub family: CodecFamily,
        pub entry: &'static str,
        pub codec: &'static str,
        pub width: u16,
        pub height: u16,
        pub sample_rate: u32,
        pub channels: u16,
        pub timescale: u32,
        pub sample_duration: u64,
        pub samples: usize,
        /// Every n-th sample is a sync sample (1 = all).
        pub gop: usize,
        pub sample_size: u32,
        pub edit: EditOffset,
        pub role: Option<&'static str>,
        pub accessibility: Option<&'static str>,
    }

    pub(crate) fn video(name: &'static str, bitrate: u64, width: u16, height: u16, secs: f64) -> FakeTrack {
        let frames = (secs * 30000.0 / 1001.0).round() as usize;
        FakeTrack {
            name,
            bitrate,
            kind: TrackKind::Video,
            language: "und",
            family: CodecFamily::Avc,
            entry: "avc1",
            codec: "avc1.64001f",
            width,
            height,
            sample_rate: 0,
            channels: 0,
            timescale: 30000,
            sample_duration: 1001,
            samples: frames,
            gop: 60,
            sample_size: (bitrate / 8 * 1001 / 30000) as u32,
            edit: EditOffset { empty_duration: 0, media_time: 2002 },
            role: None,
            accessibility: None,
        }
    }

    pub(crate) fn aac(name: &'static str, bitrate: u64, language: &'static str, secs: f64) -> FakeTrack {
        FakeTrack {
            name,
            bitrate,
            kind: TrackKind::Audio,
            language,
            family: CodecFamily::Aac,
            entry: "mp4a",
            codec: "mp4a.40.2",
            width: 0,
            height: 0,
            sample_rate: 48000,
            channels: 2,
            timescale: 48000,
            sample_duration: 1024,
            samples: (secs * 48000.0 / 1024.0).ceil() as usize,
            gop: 1,
            sample_size: (bitrate / 8 * 1024 / 48000) as u32,
            edit: EditOffset { empty_duration: 0, media_time: 1024 },
            role: None,
            accessibility: None,
        }
    }

    pub(crate) fn ec3(name: &'static str, bitrate: u64, language: &'static str, secs: f64) -> FakeTrack {
        FakeTrack {
            family: CodecFamily::Eac3,
            entry: "ec-3",
            codec: "ec-3",
            channels: 6,
            sample_duration: 1536,
            samples: (secs * 48000.0 / 1536.0).ceil() as usize,
            sample_size: (bitrate / 8 * 1536 / 48000) as u32,
            edit: EditOffset::default(),
            ..aac(name, bitrate, language, secs)
        }
    }

    fn index(t: &FakeTrack, track_id: u32) -> TrackIndex {
        let n = t.samples;
        let dts: Vec<u64> = (0..n as u64).map(|i| i * t.sample_duration).collect();
        // Vary sizes a little so peak and average bitrates differ.
        let sizes: Vec<u32> = (0..n)
            .map(|i| if t.gop > 1 && i % t.gop == 0 { t.sample_size * 3 } else { t.sample_size + (i % 7) as u32 })
            .collect();
        let mut offsets = Vec::with_capacity(n);
        let mut off = 0u64;
        for &s in &sizes {
            offsets.push(off);
            off += s as u64;
        }
        let sync_samples = (t.gop > 1).then(|| (0..n as u32).step_by(t.gop).collect());
        TrackIndex {
            sidecar: None,
            info: TrackInfo {
                track_id,
                kind: t.kind,
                timescale: t.timescale,
                language: t.language.to_owned(),
                sample_entry: Bytes::new(),
                codec: CodecInfo {
                    family: t.family,
                    sample_entry_type: t.entry.to_owned(),
                    codec_string: t.codec.to_owned(),
                    width: t.width,
                    height: t.height,
                    sample_rate: t.sample_rate,
                    channels: t.channels,
                    ..Default::default()
                },
                edit: t.edit,
            },
            samples: SampleTable {
                dts,
                end_dts: n as u64 * t.sample_duration,
                // Video: a constant B-frame delay of two frames, undone by the edit list.
                cts_offsets: if t.kind == TrackKind::Video {
                    vec![2 * t.sample_duration as i32; n]
                } else {
                    Vec::new()
                },
                sizes,
                offsets,
                sync_samples,
                fragment_starts: Vec::new(),
            },
        }
    }

    /// An asset of `tracks`, one file per track, timelines planned with `target_secs`.
    pub(crate) fn asset_of(tracks: &[FakeTrack], target_secs: Option<f64>) -> Asset {
        let files: Vec<Arc<FileIndex>> = tracks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Arc::new(FileIndex {
                    path: format!("{}.mp4", t.name),
                    version: ObjectVersion { size: 0, etag: None, last_modified_unix: 0 },
                    tracks: vec![index(t, i as u32 + 1)],
                    reads: 0,
                })
            })
            .collect();
        let indexes: Vec<&TrackIndex> = files.iter().map(|f| &f.tracks[0]).collect();
        let timelines = plan(&indexes, SegmentPolicy { target_secs });
        let tracks = tracks
            .iter()
            .zip(files.iter().cloned())
            .zip(timelines)
            .map(|((t, file_index), timeline)| AssetTrack {
                name: t.name.to_owned(),
                bitrate: t.bitrate,
                kind: t.kind,
                language: t.language.to_owned(),
                role: t.role.map(str::to_owned),
                accessibility: t.accessibility.map(str::to_owned),
                display_name: None,
                file: file_index.path.clone(),
                frame_rate: file_index.tracks[0].frame_rate(),
                file_index,
                track_position: 0,
                timeline,
                window_offset: 0,
            })
            .collect();
        Asset { name: "fixture".to_owned(), tracks, live: None }
    }

    /// Two video renditions, two AAC languages, one E-AC-3: about 10 s.
    pub(crate) fn asset() -> Asset {
        let secs = 10.0;
        let mut description = aac("aac_eng_desc", 64000, "eng", secs);
        description.role = Some("description");
        description.accessibility = Some("description");
        asset_of(
            &[
                video("video_720", 3_000_000, 1280, 720, secs),
                video("video_360", 800_000, 640, 360, secs),
                aac("aac_eng", 128_000, "eng", secs),
                aac("aac_fra", 96_000, "fra", secs),
                description,
                ec3("ec3_eng", 384_000, "eng", secs),
            ],
            Some(2.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{self, resolve};
    use super::*;
    use crate::plan::url::ParsedUrl;
    use m3u8_rs::Playlist;

    fn parse_playlist(text: &str) -> Playlist {
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("unparsable playlist: {e:?}\n{text}"),
        }
    }

    #[test]
    fn multivariant_lists_groups_and_variants() {
        let asset = fixtures::asset();
        for extension in [false, true] {
            let options = ManifestOptions::new(Format::M3u8Cmaf);
            let base = url::format(&Resource::Manifest(options.clone()), extension);
            let text = multivariant(&asset, &options, None, extension).text;
            assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"), "{text}");
            assert!(!text.contains("EXT-X-MEDIA-SEQUENCE"));
            let Playlist::MasterPlaylist(mut pl) = parse_playlist(&text) else { panic!("not a multivariant") };

            // Audio renditions: aac group (3 tracks), ec3 group (1 track).
            assert_eq!(pl.alternatives.len(), 4);
            let aac: Vec<_> = pl.alternatives.iter().filter(|a| a.group_id == "audio-aac").collect();
            let ec3: Vec<_> = pl.alternatives.iter().filter(|a| a.group_id == "audio-ec3").collect();
            assert_eq!(aac.len(), 3);
            assert_eq!(ec3.len(), 1);
            assert_eq!(aac.iter().filter(|a| a.default).count(), 1);
            assert!(aac[0].default && aac[0].name == "aac_eng" && aac[0].language.as_deref() == Some("eng"));
            assert_eq!(aac[1].language.as_deref(), Some("fra"));
            assert_eq!(aac[2].name, "aac_eng_desc");
            assert_eq!(aac[2].characteristics.as_deref(), Some("public.accessibility.describes-video"));
            assert!(aac[..2].iter().all(|a| a.characteristics.is_none()));
            assert!(ec3[0].default);
            assert_eq!(ec3[0].channels.as_deref(), Some("6"));
            assert!(pl.alternatives.iter().all(|a| a.autoselect && a.media_type == AlternativeMediaType::Audio));
            for a in &pl.alternatives {
                let uri = a.uri.as_deref().unwrap();
                let parsed = resolve(&base, uri);
                assert_eq!(parsed.extension, extension);
                assert!(
                    matches!(parsed.resource, Resource::MediaPlaylist { ref track, .. } if asset.tracks.iter().any(|t| &t.name == track))
                );
            }

            // 2 video × 2 groups by bandwidth, then 2 audio-only (I-frame streams: output::trick).
            pl.variants.retain(|v| !v.is_i_frame);
            assert_eq!(pl.variants.len(), 6);
            let bw: Vec<u64> = pl.variants[..4].iter().map(|v| v.bandwidth).collect();
            assert!(bw.windows(2).all(|w| w[0] <= w[1]), "{bw:?}");
            assert!(pl.variants[..4].iter().all(|v| v.resolution.is_some()));
            let v720 = asset.tracks.iter().find(|t| t.name == "video_720").unwrap();
            let aac_peak = asset
                .tracks_of(TrackKind::Audio)
                .filter(|t| t.index().info.codec.family == CodecFamily::Aac)
                .map(|t| t.timeline.peak_bitrate)
                .max()
                .unwrap();
            let hd_aac = pl
                .variants
                .iter()
                .find(|v| v.resolution.map(|r| r.height) == Some(720) && v.audio.as_deref() == Some("audio-aac"))
                .unwrap();
            assert_eq!(hd_aac.bandwidth, v720.timeline.peak_bitrate + aac_peak);
            assert_eq!(hd_aac.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
            assert_eq!(hd_aac.frame_rate, Some(29.97));
            assert!(text.contains("FRAME-RATE=29.97,"));
            let audio_only: Vec<_> = pl.variants.iter().filter(|v| v.resolution.is_none()).collect();
            assert_eq!(audio_only.len(), 2);
            assert!(audio_only
                .iter()
                .any(|v| v.codecs.as_deref() == Some("ec-3") && v.audio.as_deref() == Some("audio-ec3")));
            for v in &pl.variants {
                let parsed = resolve(&base, &v.uri);
                assert!(matches!(parsed.resource, Resource::MediaPlaylist { .. }));
                assert_eq!(parsed.extension, extension);
            }
        }
    }

    #[test]
    fn video_leads_with_first_quality_and_audio_only_comes_last() {
        let asset = fixtures::asset();
        let options = ManifestOptions::new(Format::M3u8Cmaf);
        let heights = |first_quality| {
            let Playlist::MasterPlaylist(pl) =
                parse_playlist(&multivariant(&asset, &options, first_quality, false).text)
            else {
                panic!()
            };
            pl.variants
                .iter()
                .filter(|v| !v.is_i_frame)
                .map(|v| v.resolution.map_or(0, |r| r.height))
                .collect::<Vec<_>>()
        };
        assert_eq!(heights(None), [360, 360, 720, 720, 0, 0]);
        assert_eq!(heights(Some(3_000_000)), [720, 720, 360, 360, 0, 0]);
        // No track at that bitrate: the nearest one leads.
        assert_eq!(heights(Some(2_000_000)), [720, 720, 360, 360, 0, 0]);
        assert_eq!(heights(Some(1_000)), [360, 360, 720, 720, 0, 0]);
    }

    #[test]
    fn audio_only_false_drops_audio_variants() {
        let asset = fixtures::asset();
        let mut options = ManifestOptions::new(Format::M3u8Cmaf);
        options.audio_only = Some(false);
        let Playlist::MasterPlaylist(pl) = parse_playlist(&multivariant(&asset, &options, None, false).text) else {
            panic!()
        };
        assert_eq!(pl.variants.iter().filter(|v| !v.is_i_frame).count(), 4);
        assert!(pl.variants.iter().all(|v| v.resolution.is_some()));
    }

    #[test]
    fn multivariant_is_byte_stable() {
        let asset = fixtures::asset();
        let options = ManifestOptions::new(Format::M3u8Cmaf);
        let a = multivariant(&asset, &options, None, true);
        assert_eq!(a, multivariant(&asset.clone(), &options, None, true));
    }

    #[test]
    fn description_track_is_never_the_default() {
        let mut desc = fixtures::aac("aac_desc", 64_000, "eng", 4.0);
        desc.accessibility = Some("description");
        let main = fixtures::aac("aac_main", 128_000, "eng", 4.0);
        let asset = fixtures::asset_of(&[fixtures::video("v", 1_000_000, 640, 360, 4.0), desc, main], Some(2.0));
        let text = multivariant(&asset, &ManifestOptions::new(Format::M3u8Cmaf), None, false).text;
        let Playlist::MasterPlaylist(pl) = parse_playlist(&text) else { panic!() };
        let default: Vec<_> = pl.alternatives.iter().filter(|a| a.default).map(|a| a.name.as_str()).collect();
        assert_eq!(default, ["aac_main"]);
        let audio_only = pl.variants.iter().find(|v| v.resolution.is_none()).unwrap();
        assert!(audio_only.uri.contains("aac_main"), "{text}");
    }

    #[test]
    fn duplicate_names_in_a_group_are_made_unique() {
        let mut t1 = fixtures::aac("aac", 128_000, "eng", 4.0);
        t1.name = "aac";
        let mut t2 = t1.clone();
        t2.bitrate = 64_000;
        let asset = fixtures::asset_of(&[fixtures::video("v", 1_000_000, 640, 360, 4.0), t1, t2], Some(2.0));
        let Playlist::MasterPlaylist(pl) =
            parse_playlist(&multivariant(&asset, &ManifestOptions::new(Format::M3u8Cmaf), None, false).text)
        else {
            panic!()
        };
        let names: Vec<_> = pl.alternatives.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["aac", "aac-64000"]);
    }

    #[test]
    fn media_playlist_matches_timeline() {
        let asset = fixtures::asset();
        for track in &asset.tracks {
            for extension in [false, true] {
                let base = url::format(
                    &Resource::MediaPlaylist {
                        bitrate: track.bitrate,
                        track: track.name.clone(),
                        format: Format::M3u8Cmaf,
                        encryption: None,
                        filters: vec![],
                        audio: AudioChoice::default(),
                        kind: PlaylistKind::Media,
                    },
                    extension,
                );
                let text =
                    media_playlist(track, Format::M3u8Cmaf, None, &AudioChoice::default(), None, &[], extension, None)
                        .text;
                assert!(text.contains("\n#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
                assert!(text.contains("\n#EXT-X-PLAYLIST-TYPE:VOD\n"));
                assert!(text.ends_with("#EXT-X-ENDLIST\n"));
                let Playlist::MediaPlaylist(pl) = parse_playlist(&text) else { panic!("not a media playlist") };
                assert_eq!(pl.version, Some(7));
                assert!(pl.independent_segments && pl.end_list);
                assert_eq!(pl.playlist_type, Some(MediaPlaylistType::Vod));
                let tl = &track.timeline;
                assert_eq!(pl.segments.len(), tl.segments.len());
                assert!(!tl.segments.is_empty());

                let sum: f64 = pl.segments.iter().map(|s| s.duration as f64).sum();
                let expected = tl.total_duration() as f64 / tl.timescale as f64;
                assert!((sum - expected).abs() <= 0.0005 * pl.segments.len() as f64 + 1e-6, "{sum} vs {expected}");
                for s in &pl.segments {
                    assert!((s.duration as f64).round() as u64 <= pl.target_duration);
                }

                let map = pl.segments[0].map.as_ref().unwrap();
                let init = resolve(&base, &map.uri);
                assert_eq!(
                    init,
                    ParsedUrl {
                        resource: Resource::Init {
                            bitrate: track.bitrate,
                            track: track.name.clone(),
                            format: Format::M3u8Cmaf,
                            encryption: None
                        },
                        extension
                    }
                );
                assert!(pl.segments[1..].iter().all(|s| s.map.is_none()));
                for (s, seg) in pl.segments.iter().zip(&tl.segments) {
                    let parsed = resolve(&base, &s.uri);
                    assert_eq!(
                        parsed,
                        ParsedUrl {
                            resource: Resource::Segment {
                                bitrate: track.bitrate,
                                track: track.name.clone(),
                                time: seg.time,
                                format: Format::M3u8Cmaf,
                                encryption: None,
                                audio: AudioChoice::default(),
                            },
                            extension
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn target_duration_rounds_per_rfc() {
        assert_eq!(target_duration(2002 * 3, 3000), 2);
        assert_eq!(target_duration(6006, 1000), 6);
        assert_eq!(target_duration(6500, 1000), 7);
        assert_eq!(target_duration(6499, 1000), 6);
        assert_eq!(target_duration(64995, 10000), 7);
        assert_eq!(target_duration(0, 1000), 1);
    }
}
