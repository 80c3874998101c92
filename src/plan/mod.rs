//! What a request means: the URL grammar, locators, filters, and the [`Plan`] one request is
//! decided into (which tracks and segments, which source byte ranges, which protection)
//! before anything is read or built.

pub(crate) mod carriage;
pub mod catalog;
pub mod filter;
pub mod keyframes;
pub(crate) mod links;
pub mod live_event;
pub(crate) mod locator;
pub(crate) mod reads;
pub mod smooth;
pub mod thumbnails;
pub mod url;

use crate::error::{Error, Result};
use crate::plan::filter::Filter;
use crate::plan::reads::{ReadPlan, Spread};
use crate::plan::url::{AudioChoice, Encryption, Format, Resource};
use crate::protect::drm::DrmSystems;
use crate::protect::ContentKey;
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;
use crate::source::timeline::Segment;

/// What encryption needs at build time: the locator's content key, the URI players fetch it
/// from (HLS AES-128 `EXT-X-KEY`), and for Common Encryption the locator id and the DRM
/// systems to signal.
#[derive(Debug, Clone, Copy)]
pub struct Protection<'a> {
    pub key: &'a ContentKey,
    pub key_uri: &'a str,
    pub locator: &'a str,
    pub drm: &'a DrmSystems,
}

/// One request, decided: the packager's only input besides the source bytes the plan names.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The asset as loaded (manifests and init segments apply their filters to it).
    pub asset: &'a Asset,
    pub resource: &'a Resource,
    /// Whether child URLs in manifests carry file extensions (they do when the manifest itself
    /// was requested with one).
    pub extension: bool,
    /// The key and signalling, exactly when the resource asks for encryption.
    pub protection: Option<Protection<'a>>,
    pub build: Build<'a>,
}

/// What the plan builds.
#[derive(Debug)]
pub enum Build<'a> {
    /// A manifest, media playlist or init segment: made from the asset with filters applied.
    Document(DocumentPlan<'a>),
    /// A media segment: made from the source bytes of its members.
    Segment(SegmentPlan<'a>),
    /// A thumbnail tile: made from the keyframes it shows.
    Thumbnail(thumbnails::TilePlan<'a>),
}

/// The filters a manifest, media playlist or init segment is made with: the locator's
/// defaults, then the request's (each once).
#[derive(Debug, Default)]
pub struct DocumentPlan<'a> {
    pub filters: Vec<&'a Filter>,
    /// How thumbnail tiles are made; `None` when they are off (no thumbnail track is listed).
    pub thumbnails: Option<thumbnails::ThumbnailSettings>,
}

/// A media segment: the track's segment, and for HLS v3 the default audio's segment of the
/// same number muxed into it.
#[derive(Debug)]
pub struct SegmentPlan<'a> {
    pub track: &'a AssetTrack,
    /// Number of the segment in its track (`timeline.first_number` + its position); the
    /// sequence number is one more.
    pub number: usize,
    /// Owned (it is small): a keyframe's one-sample segment is made by its plan.
    pub segment: Segment,
    pub muxed_audio: Option<(&'a AssetTrack, &'a Segment)>,
    /// The container and the encryption the segment URL asks for.
    pub format: Format,
    pub encryption: Option<Encryption>,
    /// A `KeyFrames(…)` resource (trick play, [`keyframes`]): its one sample lasts until the
    /// next keyframe, and its AES-128 IV is its own.
    pub keyframe: bool,
}

impl<'a> Plan<'a> {
    /// Decides `resource` of `asset`. `filters` (resolved by the caller) apply to manifests,
    /// media playlists and init segments; `protection` must be given when the resource asks
    /// for encryption, and is dropped when it does not.
    pub fn new(
        asset: &'a Asset,
        resource: &'a Resource,
        extension: bool,
        protection: Option<Protection<'a>>,
        filters: DocumentPlan<'a>,
    ) -> Result<Plan<'a>> {
        let protection = match (resource.encryption(), protection) {
            (None, _) => None,
            (Some(_), Some(p)) => Some(p),
            (Some(e), None) => {
                return Err(Error::Forbidden(format!("no content key for encryption={}", e.as_str())));
            }
        };
        carriage::check(asset, resource)?;
        let build = match resource {
            Resource::Segment { bitrate, track, time, format, encryption, audio } => {
                let track = asset.track(track, *bitrate).ok_or_else(|| {
                    not_yet_or_not_found(asset, format!("track '{track}' at bitrate {bitrate}"), true)
                })?;
                // Smooth fragment URLs name the time on the asset's 10 MHz axis.
                let clock = format.is_smooth().then(|| smooth::SmoothClock::of(asset).track(track));
                let found = match &clock {
                    Some(clock) => clock.find(track, *time),
                    None => track.timeline.find(*time),
                };
                let (number, segment) = found.ok_or_else(|| {
                    // Past the live edge: the segment may be there in a moment.
                    let end = track.timeline.segments.last().map(|last| match &clock {
                        Some(clock) => clock.segment_span(track.index(), last).1,
                        None => last.time.saturating_add(last.duration),
                    });
                    let ahead = end.is_none_or(|end| *time >= end);
                    not_yet_or_not_found(asset, format!("no segment of track '{}' starts at {time}", track.name), ahead)
                })?;
                let number = track.timeline.first_number as usize + number;
                let muxed_audio = chosen_audio(asset, track, *format, audio)?.and_then(|a| {
                    if asset.live.is_some() {
                        // Live tracks are fragmented apart: the audio fragment nearest in time.
                        nearest_segment(a, track, segment).map(|s| (a, s))
                    } else {
                        a.timeline.segments.get(number).map(|s| (a, s))
                    }
                });
                Build::Segment(SegmentPlan {
                    track,
                    number,
                    segment: *segment,
                    muxed_audio,
                    format: *format,
                    encryption: *encryption,
                    keyframe: false,
                })
            }
            Resource::KeyFrame { bitrate, track, time, format, encryption } => {
                let track = asset.track(track, *bitrate).ok_or_else(|| {
                    not_yet_or_not_found(asset, format!("track '{track}' at bitrate {bitrate}"), true)
                })?;
                Build::Segment(keyframes::plan(asset, track, *time, *format, *encryption)?)
            }
            Resource::MediaPlaylist { bitrate, track, format, audio: audio @ AudioChoice(Some(_)), .. } => {
                // The playlist lists segments that mux the chosen audio: it must exist.
                if let Some(track) = asset.track(track, *bitrate) {
                    chosen_audio(asset, track, *format, audio)?;
                }
                Build::Document(filters)
            }
            Resource::Thumbnail { bitrate, track, time } => {
                let settings = filters.thumbnails.ok_or_else(|| Error::NotFound(thumbnails::off_reason().into()))?;
                let track = asset.track(track, *bitrate).ok_or_else(|| {
                    Error::NotFound(format!("track '{track}' at bitrate {bitrate} in asset '{}'", asset.name))
                })?;
                Build::Thumbnail(thumbnails::plan_tile(asset, track, *time, settings)?)
            }
            _ => Build::Document(filters),
        };
        Ok(Plan { asset, resource, extension, protection, build })
    }
}

/// The error for something `asset` lacks: for a running live event, when it may come
/// (`ahead`: past the live edge, or a track that may start), [`Error::NotYetAvailable`].
pub(crate) fn not_yet_or_not_found(asset: &Asset, what: String, ahead: bool) -> Error {
    match &asset.live {
        Some(live) if !live.ended && ahead => Error::NotYetAvailable(what),
        _ => Error::NotFound(what),
    }
}

/// The segment of `audio` whose start is nearest the start of `video`'s `segment`.
fn nearest_segment<'a>(audio: &'a AssetTrack, video: &AssetTrack, segment: &Segment) -> Option<&'a Segment> {
    let (ta, tv) = (audio.timeline.timescale as u128, video.timeline.timescale.max(1) as u128);
    let at = (segment.time as u128 * ta / tv).min(u64::MAX as u128) as u64;
    let segments = &audio.timeline.segments;
    let after = segments.partition_point(|s| s.time < at);
    let candidates = [after.checked_sub(1), Some(after)];
    candidates.into_iter().flatten().filter_map(|i| segments.get(i)).min_by_key(|s| s.time.abs_diff(at))
}

impl<'a> SegmentPlan<'a> {
    /// The segment's sequence number (`mfhd`, TS continuity): its number in the track, from 1
    /// (live tracks count from the event's first fragment).
    pub fn sequence_number(&self) -> u32 {
        self.number as u32 + 1
    }

    /// The segments the output is made of: the track's, then the muxed audio's.
    pub fn members(&self) -> impl Iterator<Item = (&'a AssetTrack, &Segment)> {
        std::iter::once((self.track, &self.segment)).chain(self.muxed_audio)
    }

    /// The source ranges each member reads, in [`SegmentPlan::members`] order. A layout no
    /// bounded plan reads is corrupt media.
    pub fn reads(&self) -> Result<Vec<ReadPlan>> {
        self.members()
            .map(|(t, s)| reads::plan_reads(t.index(), s).map_err(|spread| spread_error(t, s, &spread)))
            .collect()
    }
}

/// The audio HLS v3 (TS without renditions) muxes into every video segment: the asset's
/// default audio. `None` for other formats.
pub fn muxed_audio(asset: &Asset, format: Format) -> Option<&AssetTrack> {
    format.muxes_audio().then(|| asset.default_audio()).flatten()
}

/// The audio muxed into `track`'s segments of `format`: the `audiotrack=` one when the URL
/// chooses one (the URL grammar allows it with HLS v3 only), else the default. Choosing the
/// audio of a track that is not video is a bad request; an audio track the asset does not have
/// is not found.
fn chosen_audio<'a>(
    asset: &'a Asset,
    track: &AssetTrack,
    format: Format,
    audio: &AudioChoice,
) -> Result<Option<&'a AssetTrack>> {
    let Some(name) = audio.name() else {
        return Ok((track.kind == TrackKind::Video).then(|| muxed_audio(asset, format)).flatten());
    };
    if track.kind != TrackKind::Video {
        return Err(Error::BadRequest(format!("audiotrack= applies to video tracks; '{}' is not one", track.name)));
    }
    let chosen = asset.tracks_of(TrackKind::Audio).find(|a| a.name == name);
    chosen.map(Some).ok_or_else(|| Error::NotFound(format!("audio track '{name}' in asset '{}'", asset.name)))
}

/// The error of a segment whose samples are spread too thinly over its file.
fn spread_error(track: &AssetTrack, segment: &Segment, s: &Spread) -> Error {
    Error::media(
        &track.file,
        format!(
            "samples of segment {} of track '{}' are spread over {} bytes for {} bytes of media (reading them would take {} bytes)",
            segment.time, track.name, s.span, s.samples, s.read
        ),
    )
}
