//! Manifest filters, the AMS filter model (`assetFilters` / `accountFilters`): a presentation
//! time range, a track selection and the HLS variant listed first, applied to an asset before
//! its manifests are written. Segments keep their URLs (time addressing), so every filter of
//! an asset shares the same cached and CDN-cached segments.
//!
//! [`FilterDefinition`] is exactly the AMS `properties` object, so the API, the store and the
//! config file all read and write filters with this one type.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::asset::{Asset, AssetTrack, LiveInfo};
use crate::source::index::TrackKind;
use crate::source::timeline::Segment;

/// AMS's default timescale of filter timestamps: 100 ns units.
pub(crate) const DEFAULT_TIMESCALE: u64 = 10_000_000;

/// A named filter: usable as `manifest(…,filter=name)` and as a locator's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub definition: FilterDefinition,
}

/// The `properties` of an AMS asset or account filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation_time_range: Option<PresentationTimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_quality: Option<FirstQuality>,
    /// Selections OR-ed: a track matching none is dropped; empty keeps every track.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackSelection>,
}

/// Which part of the presentation manifests list. Timestamps are absolute presentation times
/// (edit lists applied; 0 is the start of a VOD asset) in `timescale` units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresentationTimeRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<u64>,
    /// Live only: the sliding window behind the live edge. AMS ignores it for VOD, and so do
    /// we; it is validated and kept for live presentations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation_window_duration: Option<u64>,
    /// Live only: how far behind the live edge the last listed segment is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_backoff_duration: Option<u64>,
    #[serde(default = "default_timescale")]
    pub timescale: u64,
    /// Live only: whether `endTimestamp` applies while the presentation is still live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_end_timestamp: Option<bool>,
}

fn default_timescale() -> u64 {
    DEFAULT_TIMESCALE
}

/// The HLS variant listed first in the multivariant playlist (the one players start with).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirstQuality {
    pub bitrate: u64,
}

/// Conditions AND-ed: a track is selected when it meets every one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackSelection {
    pub track_selections: Vec<TrackCondition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackCondition {
    pub property: TrackProperty,
    pub operation: TrackOperation,
    pub value: String,
}

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackProperty {
    /// `Video`, `Audio` or `Text` (any case).
    Type,
    /// The track name in URLs.
    Name,
    /// ISO 639 code; the 639-1 and 639-2 forms of a language match each other.
    Language,
    /// The sample entry type, e.g. `avc1`, `hvc1`, `mp4a`, `ec-3` (any case).
    FourCC,
    /// The bitrate in URLs: a value, or an inclusive range `lo-hi`.
    Bitrate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackOperation {
    Equal,
    NotEqual,
}

/// AMS limits of the live window properties, in seconds.
const MIN_PRESENTATION_WINDOW_SECS: u64 = 120;
const MAX_LIVE_BACKOFF_SECS: u64 = 300;

impl FilterDefinition {
    /// Whether the definition makes sense; the error names the JSON field, e.g.
    /// `properties.tracks[0].trackSelections[1].value: …`.
    pub fn check(&self) -> Result<(), String> {
        if let Some(range) = &self.presentation_time_range {
            range.check()?;
        }
        for (i, selection) in self.tracks.iter().enumerate() {
            let here = format!("properties.tracks[{i}].trackSelections");
            if selection.track_selections.is_empty() {
                return Err(format!("{here}: needs at least one condition"));
            }
            for (j, condition) in selection.track_selections.iter().enumerate() {
                condition.check().map_err(|e| format!("{here}[{j}].value: {e}"))?;
            }
        }
        Ok(())
    }
}

impl PresentationTimeRange {
    fn check(&self) -> Result<(), String> {
        let here = "properties.presentationTimeRange";
        if self.timescale == 0 {
            return Err(format!("{here}.timescale: must be greater than 0"));
        }
        if let (Some(start), Some(end)) = (self.start_timestamp, self.end_timestamp) {
            if end <= start {
                return Err(format!("{here}.endTimestamp: {end} is not after startTimestamp {start}"));
            }
        }
        let secs = |ticks: u64| ticks as f64 / self.timescale as f64;
        if let Some(window) = self.presentation_window_duration {
            if secs(window) < MIN_PRESENTATION_WINDOW_SECS as f64 {
                return Err(format!(
                    "{here}.presentationWindowDuration: {window} is shorter than {MIN_PRESENTATION_WINDOW_SECS} s"
                ));
            }
        }
        if let Some(backoff) = self.live_backoff_duration {
            if secs(backoff) > MAX_LIVE_BACKOFF_SECS as f64 {
                return Err(format!("{here}.liveBackoffDuration: {backoff} is longer than {MAX_LIVE_BACKOFF_SECS} s"));
            }
        }
        Ok(())
    }

    /// The range in seconds: (start, end), `None` where it is open.
    fn secs(&self) -> (Option<f64>, Option<f64>) {
        let secs = |ticks: u64| ticks as f64 / self.timescale.max(1) as f64;
        (self.start_timestamp.map(secs), self.end_timestamp.map(secs))
    }
}

impl TrackCondition {
    fn check(&self) -> Result<(), String> {
        let value = self.value.trim();
        match self.property {
            TrackProperty::Type if kind_of(value).is_none() => {
                Err(format!("type \"{value}\" is not Video, Audio or Text"))
            }
            TrackProperty::Bitrate => parse_bitrates(value).map(|_| ()),
            _ if value.is_empty() => Err("must not be empty".to_string()),
            _ => Ok(()),
        }
    }

    fn matches(&self, track: &AssetTrack) -> bool {
        let value = self.value.trim();
        let equal = match self.property {
            TrackProperty::Type => kind_of(value) == Some(track.kind),
            TrackProperty::Name => track.name == value,
            TrackProperty::Language => same_language(&track.language, value),
            TrackProperty::FourCC => track.index().info.codec.sample_entry_type.eq_ignore_ascii_case(value),
            TrackProperty::Bitrate => parse_bitrates(value).is_ok_and(|(lo, hi)| (lo..=hi).contains(&track.bitrate)),
        };
        equal == (self.operation == TrackOperation::Equal)
    }
}

fn kind_of(value: &str) -> Option<TrackKind> {
    [TrackKind::Video, TrackKind::Audio, TrackKind::Text].into_iter().find(|k| k.as_str().eq_ignore_ascii_case(value))
}

/// A bitrate condition's inclusive range: `"128000"` or `"0-2427000"`.
fn parse_bitrates(value: &str) -> Result<(u64, u64), String> {
    let number = |s: &str| {
        s.trim().parse::<u64>().map_err(|_| format!("bitrate \"{value}\" is not a number or a range \"lo-hi\""))
    };
    let (lo, hi) = match value.split_once('-') {
        Some((lo, hi)) => (number(lo)?, number(hi)?),
        None => (number(value)?, number(value)?),
    };
    if lo > hi {
        return Err(format!("bitrate range \"{value}\" has its start after its end"));
    }
    Ok((lo, hi))
}

/// Whether two ISO 639 codes name one language: equal ignoring case, or the 639-1 and
/// 639-2/T (= 639-3) forms of it ("en" and "eng").
fn same_language(a: &str, b: &str) -> bool {
    let canonical = |code: &str| {
        let code = code.trim().to_ascii_lowercase();
        isolang::Language::from_639_1(&code).or_else(|| isolang::Language::from_639_3(&code))
    };
    a.trim().eq_ignore_ascii_case(b.trim()) || canonical(a).is_some_and(|l| Some(l) == canonical(b))
}

impl Filter {
    /// xxh3 of the name and the definition: manifest cache keys and ETags carry it, so an
    /// edited filter makes new manifests (CDNs still keep the old ones until they expire).
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.name.as_bytes());
        h.update(&[0]);
        // Serializing plain data into a Vec cannot fail.
        h.update(&serde_json::to_vec(&self.definition).unwrap_or_default());
        h.digest()
    }

    fn keeps_track(&self, track: &AssetTrack) -> bool {
        let selections = &self.definition.tracks;
        selections.is_empty() || selections.iter().any(|s| s.track_selections.iter().all(|c| c.matches(track)))
    }
}

/// The bitrate whose HLS variant is listed first: the last of `filters` that sets one decides
/// (a request's filters come after the locator's, so the URL can override it).
pub(crate) fn first_quality(filters: &[&Filter]) -> Option<u64> {
    filters.iter().rev().find_map(|f| f.definition.first_quality.as_ref()).map(|q| q.bitrate)
}

/// Presentation interval of a segment in seconds (edit list applied).
fn presentation_secs(track: &AssetTrack, segment: &Segment) -> (f64, f64) {
    let shift = track.index().info.edit.presentation_shift();
    let ts = track.timeline.timescale.max(1) as f64;
    let start = (segment.time as i64 + shift) as f64 / ts;
    (start, start + segment.duration as f64 / ts)
}

/// The window of a running live event, presentation seconds (start, end): the newest
/// `dvr_window_secs` (narrowed by `presentationWindowDuration`) up to the live edge (the end of
/// the reference track) less `liveBackoffDuration`.
fn live_window(live: &LiveInfo, reference: &AssetTrack, filters: &[&Filter]) -> (f64, f64) {
    let ranges = || filters.iter().filter_map(|f| f.definition.presentation_time_range.as_ref());
    let secs = |ticks: u64, range: &PresentationTimeRange| ticks as f64 / range.timescale.max(1) as f64;
    let window = ranges()
        .filter_map(|r| r.presentation_window_duration.map(|w| secs(w, r)))
        .fold(live.dvr_window_secs as f64, f64::min);
    let backoff = ranges().filter_map(|r| r.live_backoff_duration.map(|b| secs(b, r))).fold(0.0, f64::max);
    let edge = reference.timeline.segments.last().map_or(0.0, |s| presentation_secs(reference, s).1) - backoff;
    (edge - window, edge)
}

/// The asset as `filters` (all of them: a track must be kept by every filter, and their time
/// ranges intersect) let manifests see it; a running live event's as its live window does.
pub(crate) fn apply<'a>(asset: &'a Asset, filters: &[&Filter]) -> Result<Cow<'a, Asset>> {
    let running = asset.live.as_ref().filter(|live| !live.ended);
    if filters.is_empty() && running.is_none() {
        return Ok(Cow::Borrowed(asset));
    }
    let names = || filters.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(";");
    let mut tracks: Vec<AssetTrack> =
        asset.tracks.iter().filter(|t| filters.iter().all(|f| f.keeps_track(t))).cloned().collect();
    // Snap the window to whole segments of the reference track (first video, else first
    // track), then keep every track's segments whose middle lies inside it: audio boundaries
    // sit within half a frame of the video ones.
    let reference = tracks.iter().find(|t| t.kind == TrackKind::Video).or(tracks.first());
    let Some(reference) = reference else {
        return Err(Error::NotFound(format!("filters '{}' leave no tracks of asset '{}'", names(), asset.name)));
    };

    let ranges = filters.iter().filter_map(|f| f.definition.presentation_time_range.as_ref()).map(|r| r.secs());
    let (mut start, mut end) = (0.0f64, f64::INFINITY);
    for (range_start, range_end) in ranges {
        start = start.max(range_start.unwrap_or(0.0));
        end = end.min(range_end.unwrap_or(f64::INFINITY));
    }
    if let Some(live) = running {
        let (window_start, edge) = live_window(live, reference, filters);
        start = start.max(window_start);
        end = end.min(edge);
    }
    if start > 0.0 || end.is_finite() {
        // A segment straddling a filter's boundary is kept whole; one past the live edge less
        // the backoff is not (it is among the newest seconds the backoff hides).
        let spans: Vec<(f64, f64)> = reference
            .timeline
            .segments
            .iter()
            .map(|s| presentation_secs(reference, s))
            .filter(|&(s, e)| s < end && e > start && (running.is_none() || e <= end + EDGE_SLACK_SECS))
            .collect();
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
            return Err(match running {
                Some(_) => Error::NotYetAvailable(format!("live window of asset '{}'", asset.name)),
                None => Error::NotFound(format!("filters '{}' select no time of asset '{}'", names(), asset.name)),
            });
        };
        let (window_start, window_end) = (first.0.max(0.0), last.1);
        for track in &mut tracks {
            let in_window = |s: &Segment| {
                let (s0, s1) = presentation_secs(track, s);
                let middle = (s0 + s1) / 2.0;
                middle >= window_start && middle < window_end
            };
            let segments = &track.timeline.segments;
            let first_kept = segments.iter().position(in_window).unwrap_or(segments.len());
            let kept: Vec<Segment> = segments[first_kept..].iter().take_while(|s| in_window(s)).copied().collect();
            track.timeline.segments = kept;
            if asset.live.is_some() {
                // Live segments keep their numbers (HLS media sequence, mfhd) and event times
                // (DASH addresses them from availabilityStartTime): no presentation offset.
                track.timeline.first_number += first_kept as u64;
            } else {
                let ts = track.timeline.timescale as f64;
                track.window_offset = (window_start * ts).round() as u64;
            }
        }
        tracks.retain(|t| !t.timeline.segments.is_empty());
    }
    if tracks.is_empty() {
        return Err(Error::NotFound(format!("filters '{}' leave no tracks of asset '{}'", names(), asset.name)));
    }
    Ok(Cow::Owned(Asset { name: asset.name.clone(), tracks, live: asset.live.clone() }))
}

/// Rounding room at the live edge, seconds: segment ends are ticks converted to seconds.
const EDGE_SLACK_SECS: f64 = 1e-6;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::asset::{load, AssetSource};
    use crate::source::storage::Storage;
    use crate::source::timeline::SegmentPolicy;

    async fn ladder() -> Asset {
        let storage = Storage::local("t", concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).unwrap();
        load(&storage, &AssetSource::Ism("ladder/ladder.ism".into()), SegmentPolicy::default()).await.unwrap()
    }

    fn filter(name: &str, json: serde_json::Value) -> Filter {
        let definition: FilterDefinition = serde_json::from_value(json).unwrap();
        definition.check().unwrap();
        Filter { name: name.into(), definition }
    }

    fn kept(asset: &Asset, filters: &[&Filter]) -> Vec<(String, u64)> {
        apply(asset, filters).unwrap().tracks.iter().map(|t| (t.name.clone(), t.bitrate)).collect()
    }

    #[tokio::test]
    async fn window_keeps_whole_aligned_segments_and_offsets_dash_time() {
        let asset = ladder().await;
        let f = filter(
            "mid",
            serde_json::json!({"presentationTimeRange": {"startTimestamp": 2500, "endTimestamp": 5000, "timescale": 1000}}),
        );
        let out = apply(&asset, &[&f]).unwrap();
        for t in &out.tracks {
            let original = &asset.tracks.iter().find(|o| o.name == t.name && o.bitrate == t.bitrate).unwrap().timeline;
            // Window snaps to the video segments covering 2.5–5.0 s: those starting at 2 s and 4 s.
            assert_eq!(t.timeline.segments.len(), 2, "{}", t.name);
            assert_eq!(t.timeline.segments[..], original.segments[1..3], "{}", t.name);
            assert_eq!(t.window_offset, 2 * t.timeline.timescale as u64, "{}", t.name);
        }
    }

    async fn subtitles() -> Asset {
        let storage = Storage::local("t", concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).unwrap();
        load(&storage, &AssetSource::Ism("subtitles/subtitles.ism".into()), SegmentPolicy::default()).await.unwrap()
    }

    #[tokio::test]
    async fn text_tracks_are_windowed_like_audio() {
        let asset = subtitles().await;
        let f = filter(
            "mid",
            serde_json::json!({"presentationTimeRange": {"startTimestamp": 25_000_000, "endTimestamp": 35_000_000}}),
        );
        let out = apply(&asset, &[&f]).unwrap();
        let text: Vec<_> = out.tracks.iter().filter(|t| t.kind == TrackKind::Text).collect();
        assert_eq!(text.len(), 3);
        for t in text {
            // The video segment 2–4 s covers 2.5–3.5 s; the text keeps its own 2–4 s segment.
            let spans: Vec<(u64, u64)> = t.timeline.segments.iter().map(|s| (s.time, s.duration)).collect();
            assert_eq!(spans, [(2000, 2000)], "{}", t.name);
            assert_eq!(t.window_offset, 2000, "{}", t.name);
            assert!(t.index().sidecar.is_some());
        }
    }

    #[tokio::test]
    async fn text_tracks_are_selected_by_type_name_and_language() {
        let asset = subtitles().await;
        let names = |json: serde_json::Value| -> Vec<String> {
            kept(&asset, &[&filter("f", json)]).into_iter().map(|(n, _)| n).collect()
        };
        let select = |property: &str, operation: &str, value: &str| {
            serde_json::json!({"tracks": [{"trackSelections": [
                {"property": property, "operation": operation, "value": value}]}]})
        };
        assert_eq!(names(select("Type", "Equal", "Text")), ["subtitles_eng", "subtitles_fra", "captions_eng"]);
        assert_eq!(names(select("Type", "NotEqual", "text")), ["video", "audio_eng"]);
        assert_eq!(names(select("Language", "Equal", "fr")), ["subtitles_fra"]);
        assert_eq!(names(select("Name", "Equal", "captions_eng")), ["captions_eng"]);
        assert_eq!(names(select("FourCC", "Equal", "wvtt")).len(), 3);
        assert_eq!(names(select("Bitrate", "Equal", "0")).len(), 3, "sidecars keep the .ism's systemBitrate 0");
    }

    #[tokio::test]
    async fn selections_or_conditions_and() {
        let asset = ladder().await;
        let sd_french = filter(
            "sd-french",
            serde_json::json!({"tracks": [
                {"trackSelections": [
                    {"property": "Type", "operation": "Equal", "value": "video"},
                    {"property": "Bitrate", "operation": "Equal", "value": "0-300000"}]},
                {"trackSelections": [{"property": "Language", "operation": "Equal", "value": "fr"}]}]}),
        );
        let expected = [("video", 150_000), ("video", 300_000), ("audio_fra", 128_000)];
        assert_eq!(kept(&asset, &[&sd_french]), expected.map(|(n, b)| (n.to_string(), b)));

        let no_top = filter(
            "no-top",
            serde_json::json!({"tracks": [{"trackSelections": [
                {"property": "Bitrate", "operation": "NotEqual", "value": "600000"}]}]}),
        );
        // Both filters apply: the first's tracks, less the 600k one (already gone).
        assert_eq!(kept(&asset, &[&sd_french, &no_top]).len(), 3);
        assert_eq!(kept(&asset, &[&no_top]).len(), 4);
    }

    #[tokio::test]
    async fn empty_results_are_not_found() {
        let asset = ladder().await;
        let none = filter(
            "none",
            serde_json::json!({"tracks": [{"trackSelections": [{"property": "FourCC", "operation": "Equal", "value": "hvc1"}]}]}),
        );
        assert!(matches!(apply(&asset, &[&none]), Err(Error::NotFound(_))));
        let late = filter("late", serde_json::json!({"presentationTimeRange": {"startTimestamp": 1_000_000_000u64}}));
        assert!(matches!(apply(&asset, &[&late]), Err(Error::NotFound(_))));
        // Two ranges that do not meet.
        let (early, later) = (
            filter("early", serde_json::json!({"presentationTimeRange": {"endTimestamp": 1}})),
            filter("later", serde_json::json!({"presentationTimeRange": {"startTimestamp": 7, "timescale": 1}})),
        );
        assert!(matches!(apply(&asset, &[&early, &later]), Err(Error::NotFound(_))));
        assert!(matches!(apply(&asset, &[]).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn languages_match_in_either_iso_form() {
        assert!(same_language("eng", "en"));
        assert!(same_language("EN", "eng"));
        assert!(same_language("fra", "FRA"));
        assert!(!same_language("fra", "en"));
        assert!(same_language("und", "und"));
        assert!(!same_language("xx", "eng"));
    }

    #[test]
    fn check_names_the_field() {
        let problem =
            |json: serde_json::Value| serde_json::from_value::<FilterDefinition>(json).unwrap().check().unwrap_err();
        let range = |lo: &str| {
            serde_json::json!({"tracks": [{"trackSelections": [
                {"property": "Type", "operation": "Equal", "value": "Audio"},
                {"property": "Bitrate", "operation": "Equal", "value": lo}]}]})
        };
        assert_eq!(
            problem(range("5-1")),
            "properties.tracks[0].trackSelections[1].value: bitrate range \"5-1\" has its start after its end"
        );
        assert!(problem(range("fast")).starts_with("properties.tracks[0].trackSelections[1].value: "));
        let kind = serde_json::json!({"tracks": [{"trackSelections": [{"property": "Type", "operation": "Equal", "value": "Subtitles"}]}]});
        assert!(problem(kind).starts_with("properties.tracks[0].trackSelections[0].value: "));
        let backwards = serde_json::json!({"presentationTimeRange": {"startTimestamp": 5, "endTimestamp": 5}});
        assert!(problem(backwards).starts_with("properties.presentationTimeRange.endTimestamp: "));
        let scale = serde_json::json!({"presentationTimeRange": {"timescale": 0}});
        assert!(problem(scale).starts_with("properties.presentationTimeRange.timescale: "));
        let window = serde_json::json!({"presentationTimeRange": {"presentationWindowDuration": 119, "timescale": 1}});
        assert!(problem(window).starts_with("properties.presentationTimeRange.presentationWindowDuration: "));
        let backoff = serde_json::json!({"presentationTimeRange": {"liveBackoffDuration": 301, "timescale": 1}});
        assert!(problem(backoff).starts_with("properties.presentationTimeRange.liveBackoffDuration: "));
        assert!(problem(serde_json::json!({"tracks": [{"trackSelections": []}]})).ends_with("at least one condition"));
    }

    #[test]
    fn json_round_trips_and_fingerprints_follow_the_definition() {
        let json = serde_json::json!({
            "presentationTimeRange": {"startTimestamp": 0, "endTimestamp": 9223372036854775807u64,
                "presentationWindowDuration": 9223372036854775807u64, "liveBackoffDuration": 0,
                "timescale": 10000000, "forceEndTimestamp": false},
            "firstQuality": {"bitrate": 300000},
            "tracks": [{"trackSelections": [{"property": "FourCC", "operation": "NotEqual", "value": "ec-3"}]}]});
        let f = filter("a", json.clone());
        assert_eq!(serde_json::to_value(&f.definition).unwrap(), json);
        let mut edited = f.clone();
        edited.definition.first_quality = Some(FirstQuality { bitrate: 150_000 });
        assert_ne!(f.fingerprint(), edited.fingerprint());
        assert_ne!(f.fingerprint(), Filter { name: "b".into(), ..f.clone() }.fingerprint());
        assert_eq!(f.fingerprint(), f.clone().fingerprint());
    }
}
