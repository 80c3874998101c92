//! Smooth Streaming client manifests (MS-SSTR §2.2.2): `SmoothStreamingMedia` with one
//! `StreamIndex` per track name, chunks on the asset's 10 MHz axis
//! ([`crate::plan::smooth`]), and the PlayReady `ProtectionHeader` of `cenc` manifests.
//! Fragments are [`super::cmaf`]'s `Flavor::Smooth`.
//!
//! Like the MPD, the manifest is a serde model written by quick-xml (attributes are `@name`
//! renames, elements fields in MS-SSTR order). Chunk times are the fragment URL times: the
//! decode time of each segment's first sample on the asset's clock, so a chunk's `t` is the
//! `{start time}` its fragment is requested with, and `t + d` is the next chunk's `t`.
//!
//! Text tracks (sidecars and `wvtt` MP4 tracks, [`super::text`]) are one `StreamIndex` each,
//! after video and audio: `Type="text"`, `Subtype` `CAPT` for captions (SDH) and `SUBT`
//! otherwise (MS-SSTR §2.2.2.3), one `QualityLevel` `FourCC="TTML"` without
//! `CodecPrivateData`; their fragments hold TTML documents.
//!
//! Only VOD is written: [`crate::plan::carriage`] refuses live events (see there why).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

use crate::media::codec::SmoothCodec;
use crate::output::text;
use crate::plan::links::{self, Link, ManifestText};
use crate::plan::smooth::{SmoothClock, TIMESCALE};
use crate::plan::url::{AudioChoice, Format, ManifestOptions, SegmentUrls};
use crate::plan::Protection;
use crate::protect::{drm, Scheme};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;

/// `Content-Type` of Smooth client manifests.
pub const CONTENT_TYPE: &str = "application/vnd.ms-sstr+xml";

/// `ProtectionHeader@SystemID`: PlayReady's (MS-SSTR §2.2.2.2).
const PLAYREADY_SYSTEM_ID: &str = "9A04F079-9840-4286-AB92-E65BE0885F95";

/// The PlayReady Object of a `cenc` Smooth manifest's `ProtectionHeader` (its WRMHEADER
/// names the key and its checksum, and the locator's PlayReady licence URL when configured).
pub fn protection_header(p: Protection<'_>) -> Vec<u8> {
    let la_url = p.drm.playready.as_ref().and_then(|pr| pr.license_url.as_deref());
    let la_url = la_url.map(|u| drm::expand_template(u, &p.key.kid, p.locator));
    drm::playready_header_object(&p.key.kid, &p.key.key, la_url.as_deref(), Scheme::Cenc)
}

/// MS-SSTR §2.2.2.1.
#[derive(Serialize)]
#[serde(rename = "SmoothStreamingMedia")]
struct SmoothStreamingMedia {
    #[serde(rename = "@MajorVersion")]
    major_version: u8,
    #[serde(rename = "@MinorVersion")]
    minor_version: u8,
    #[serde(rename = "@TimeScale")]
    time_scale: u64,
    #[serde(rename = "@Duration")]
    duration: u64,
    #[serde(rename = "StreamIndex")]
    stream_indexes: Vec<StreamIndex>,
    #[serde(rename = "Protection", skip_serializing_if = "Option::is_none")]
    protection: Option<ProtectionElement>,
}

/// MS-SSTR §2.2.2.2.
#[derive(Serialize)]
struct ProtectionElement {
    #[serde(rename = "ProtectionHeader")]
    header: ProtectionHeader,
}

#[derive(Serialize)]
struct ProtectionHeader {
    #[serde(rename = "@SystemID")]
    system_id: &'static str,
    /// The PlayReady Object, base64.
    #[serde(rename = "$text")]
    data: String,
}

/// MS-SSTR §2.2.2.3.
#[derive(Serialize)]
struct StreamIndex {
    #[serde(rename = "@Type")]
    kind: &'static str,
    #[serde(rename = "@Subtype", skip_serializing_if = "Option::is_none")]
    subtype: Option<&'static str>,
    #[serde(rename = "@Name")]
    name: String,
    #[serde(rename = "@Language", skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(rename = "@Chunks")]
    chunks: usize,
    #[serde(rename = "@QualityLevels")]
    quality_levels: usize,
    #[serde(rename = "@Url")]
    url: String,
    #[serde(rename = "@MaxWidth", skip_serializing_if = "Option::is_none")]
    max_width: Option<u16>,
    #[serde(rename = "@MaxHeight", skip_serializing_if = "Option::is_none")]
    max_height: Option<u16>,
    #[serde(rename = "@DisplayWidth", skip_serializing_if = "Option::is_none")]
    display_width: Option<u16>,
    #[serde(rename = "@DisplayHeight", skip_serializing_if = "Option::is_none")]
    display_height: Option<u16>,
    #[serde(rename = "QualityLevel")]
    levels: Vec<QualityLevel>,
    #[serde(rename = "c")]
    c: Vec<Chunk>,
}

/// MS-SSTR §2.2.2.5.
#[derive(Serialize)]
struct QualityLevel {
    #[serde(rename = "@Index")]
    index: usize,
    #[serde(rename = "@Bitrate")]
    bitrate: u64,
    #[serde(rename = "@FourCC")]
    four_cc: String,
    #[serde(rename = "@CodecPrivateData")]
    codec_private_data: String,
    #[serde(rename = "@MaxWidth", skip_serializing_if = "Option::is_none")]
    max_width: Option<u16>,
    #[serde(rename = "@MaxHeight", skip_serializing_if = "Option::is_none")]
    max_height: Option<u16>,
    #[serde(rename = "@SamplingRate", skip_serializing_if = "Option::is_none")]
    sampling_rate: Option<u32>,
    #[serde(rename = "@Channels", skip_serializing_if = "Option::is_none")]
    channels: Option<u16>,
    #[serde(rename = "@BitsPerSample", skip_serializing_if = "Option::is_none")]
    bits_per_sample: Option<u16>,
    #[serde(rename = "@PacketSize", skip_serializing_if = "Option::is_none")]
    packet_size: Option<u16>,
    #[serde(rename = "@AudioTag", skip_serializing_if = "Option::is_none")]
    audio_tag: Option<u16>,
}

/// A `c` element (MS-SSTR §2.2.2.6): `t` when it does not follow from the previous chunk,
/// `r` (version 2.2 only) the number of consecutive chunks of this duration, itself included.
#[derive(Serialize, Debug, PartialEq)]
struct Chunk {
    #[serde(rename = "@t", skip_serializing_if = "Option::is_none")]
    t: Option<u64>,
    #[serde(rename = "@d")]
    d: u64,
    #[serde(rename = "@r", skip_serializing_if = "Option::is_none")]
    r: Option<u64>,
}

/// Decoders have no use for the WAVEFORMATEX sample size of compressed audio; MS-SSTR
/// requires one and Smooth servers write 16.
const BITS_PER_SAMPLE: u16 = 16;
/// `PacketSize` (WAVEFORMATEX `nBlockAlign`) as Smooth servers write it for compressed audio.
const PACKET_SIZE: u16 = 4;

/// One track's chunks: each segment's (start, end) on the Smooth axis.
fn spans(track: &AssetTrack, clock: SmoothClock) -> Vec<(u64, u64)> {
    let track_clock = clock.track(track);
    let index = track.index();
    track.timeline.segments.iter().map(|s| track_clock.segment_span(index, s)).collect()
}

/// `c` elements of `spans`: `t` on the first and after any gap; with `repeats` (2.2),
/// equal consecutive durations collapse into `r`.
fn chunks(spans: &[(u64, u64)], repeats: bool) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut next: Option<u64> = None;
    for &(start, end) in spans {
        let d = end.saturating_sub(start);
        let contiguous = next == Some(start);
        match out.last_mut() {
            Some(last) if repeats && contiguous && last.d == d => last.r = Some(last.r.unwrap_or(1) + 1),
            _ => out.push(Chunk { t: (!contiguous).then_some(start), d, r: None }),
        }
        next = Some(end);
    }
    out
}

/// The tracks of one StreamIndex (one name) with their Smooth codec, the first track's spans
/// being the index's chunks. A rendition whose fragments start elsewhere cannot share the
/// index's chunk list, nor be listed under its name in another, so it is left out.
struct Group<'a> {
    tracks: Vec<(&'a AssetTrack, SmoothCodec)>,
    spans: Vec<(u64, u64)>,
}

fn groups(asset: &Asset, clock: SmoothClock) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    // Video first, then audio with the default audio first (what HLS and DASH players pick
    // without choosing), each in asset order.
    let default_audio = asset.default_audio().map(|t| t.name.as_str());
    let audio = asset.tracks_of(TrackKind::Audio);
    let (first, rest): (Vec<_>, Vec<_>) = audio.partition(|t| Some(t.name.as_str()) == default_audio);
    let ordered = asset.tracks_of(TrackKind::Video).chain(first).chain(rest);
    for track in ordered.chain(text::text_tracks(asset, Format::Smooth)) {
        let Some(codec) = smooth_codec(track) else { continue };
        let track_spans = spans(track, clock);
        if track_spans.is_empty() {
            continue;
        }
        match out.iter_mut().find(|g| g.tracks.first().is_some_and(|(t, _)| t.name == track.name)) {
            Some(group) if group.spans == track_spans => group.tracks.push((track, codec)),
            Some(_) => {}
            None => out.push(Group { tracks: vec![(track, codec)], spans: track_spans }),
        }
    }
    out
}

/// How the manifest names `track`'s codec: a text track's fragments are TTML (MS-SSTR
/// §2.2.2.5 `FourCC="TTML"`, no codec private data).
fn smooth_codec(track: &AssetTrack) -> Option<SmoothCodec> {
    match track.kind {
        TrackKind::Text => {
            Some(SmoothCodec { four_cc: "TTML".to_owned(), codec_private_data: String::new(), audio_tag: None })
        }
        TrackKind::Video | TrackKind::Audio => track.index().info.codec.smooth(),
    }
}

/// MS-SSTR §2.2.2.3 `Subtype` of a text track: captions for the deaf and hard of hearing, or
/// subtitles.
fn text_subtype(track: &AssetTrack) -> &'static str {
    if text::is_sdh(track) {
        "CAPT"
    } else {
        "SUBT"
    }
}

fn stream_index(group: &Group<'_>, options: &ManifestOptions) -> Option<StreamIndex> {
    let (first, _) = group.tracks.first()?;
    let video = first.kind == TrackKind::Video;
    let levels: Vec<QualityLevel> = group
        .tracks
        .iter()
        .enumerate()
        .map(|(index, (track, codec))| {
            let info = &track.index().info.codec;
            let audio = first.kind == TrackKind::Audio;
            QualityLevel {
                index,
                bitrate: track.bitrate,
                four_cc: codec.four_cc.clone(),
                codec_private_data: codec.codec_private_data.clone(),
                max_width: video.then_some(info.width),
                max_height: video.then_some(info.height),
                sampling_rate: audio.then_some(info.sample_rate),
                channels: audio.then_some(info.channels),
                bits_per_sample: audio.then_some(BITS_PER_SAMPLE),
                packet_size: audio.then_some(PACKET_SIZE),
                audio_tag: codec.audio_tag,
            }
        })
        .collect();
    let max = |f: fn(&QualityLevel) -> Option<u16>| levels.iter().filter_map(f).max();
    let (max_width, max_height) = (max(|l| l.max_width), max(|l| l.max_height));
    let urls = SegmentUrls::new(
        first.bitrate,
        &first.name,
        Format::Smooth,
        options.encryption,
        &AudioChoice::default(),
        false,
        false,
    );
    let c = chunks(&group.spans, options.format == Format::Smooth);
    Some(StreamIndex {
        kind: first.kind.as_str(),
        subtype: (first.kind == TrackKind::Text).then(|| text_subtype(first)),
        name: first.name.clone(),
        language: (!video).then(|| first.language.clone()),
        chunks: group.spans.len(),
        quality_levels: levels.len(),
        url: links::marked(&urls.smooth_template(), Link::Media),
        max_width,
        max_height,
        display_width: max_width,
        display_height: max_height,
        levels,
        c,
    })
}

/// The client manifest of `asset` (filters and carriage applied; `clock` is the loaded
/// asset's), version 2.2 for [`crate::plan::url::Format::Smooth`] and 2.0 for `SmoothV20`.
/// `protection_header`: the PlayReady Object of a `cenc` manifest.
pub fn manifest(
    asset: &Asset,
    clock: SmoothClock,
    options: &ManifestOptions,
    protection_header: Option<&[u8]>,
) -> ManifestText {
    let groups = groups(asset, clock);
    // MS-SSTR §2.2.2.1 Duration: the presentation's length; it starts at the earliest chunk.
    let start = groups.iter().filter_map(|g| g.spans.first()).map(|s| s.0).min().unwrap_or(0);
    let end = groups.iter().filter_map(|g| g.spans.last()).map(|s| s.1).max().unwrap_or(0);
    let stream_indexes: Vec<StreamIndex> = groups.iter().filter_map(|g| stream_index(g, options)).collect();
    let chunk_count: usize = stream_indexes.iter().map(|s| s.c.len()).sum();
    let doc = SmoothStreamingMedia {
        major_version: 2,
        minor_version: if options.format == Format::Smooth { 2 } else { 0 },
        time_scale: TIMESCALE,
        duration: end.saturating_sub(start),
        stream_indexes,
        protection: protection_header.map(|pro| ProtectionElement {
            header: ProtectionHeader { system_id: PLAYREADY_SYSTEM_ID, data: STANDARD.encode(pro) },
        }),
    };
    ManifestText::from_marked(&crate::markup::xml_document(&doc, 2048 + chunk_count * 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_repeat_equal_durations_in_2_2_and_list_each_in_2_0() {
        let spans = [(100, 200), (200, 300), (300, 400), (400, 450), (500, 600)];
        let c = chunks(&spans, true);
        assert_eq!(
            c,
            vec![
                Chunk { t: Some(100), d: 100, r: Some(3) },
                Chunk { t: None, d: 50, r: None },
                Chunk { t: Some(500), d: 100, r: None },
            ]
        );
        let c = chunks(&spans, false);
        assert_eq!(c.len(), 5);
        assert!(c.iter().all(|c| c.r.is_none()));
        assert_eq!(c[0].t, Some(100));
        assert_eq!(c[1].t, None);
        assert_eq!(c[4].t, Some(500));
    }
}
