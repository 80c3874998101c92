//! The AMS filter model through the whole request path: account filters written in the AMS
//! shape in the config (`[filter.properties]`), asset filters published in a catalog, and the
//! manifests the HTTP server answers for `filter=…`, checked by parsing them (m3u8-rs for HLS,
//! quick-xml for the MPD), never by looking for substrings.
//!
//! * `track_conditions_*`: every property (Type, Name, Language, FourCC, Bitrate value and
//!   range) with Equal and NotEqual, AND within a selection, OR across selections; the tracks
//!   kept must be the same in the HLS multivariant playlist and in the MPD.
//! * `time_ranges_*`: timestamps in the default, a millisecond and a 90 kHz timescale, a
//!   straddling segment kept whole, audio kept aligned, DASH timelines and HLS media playlists
//!   listing the same segments.
//! * `combining_*`: a locator's filters and the URL's intersect (each once), the last
//!   `firstQuality` decides, an asset filter shadows the account filter of its name, and an
//!   unknown filter is a 404 naming it.
//! * `first_quality_*`: the variant listed first, audio-only variants last.
//! * `bad_definitions_*`: the config refuses unknown properties, operations and types and
//!   impossible values, naming the field.

mod common;

use std::collections::BTreeSet;

use m3u8_rs::Playlist;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use common::{get_blocking, Got, TestServer};
use jit_origin::config::{Config, FilterConfig};
use jit_origin::serve::origin::Origin;

/// Locators of the test config: (id, asset folder, default filters).
const LOCATORS: &[(&str, &str, &[&str])] = &[
    ("ladder", "ladder", &[]),
    ("dolby", "dolby", &[]),
    ("hevc", "hevc", &[]),
    ("ladder-sd", "ladder", &["sd"]),
    ("ladder-hd-first", "ladder", &["first-150k"]),
];

/// The ladder's video segments start every 2 s of presentation time, at media time 1024 + 2 s
/// × k (12288 ticks a second; the edit list shifts them by 1024).
fn ladder_video_times(segments: &[u64]) -> Vec<u64> {
    segments.iter().map(|k| 1024 + k * 24_576).collect()
}

/// `{"trackSelections": [...]}` from (property, operation, value) triples.
fn selection(conditions: &[(&str, &str, &str)]) -> Value {
    let conditions: Vec<Value> =
        conditions.iter().map(|(p, o, v)| json!({"property": p, "operation": o, "value": v})).collect();
    json!({ "trackSelections": conditions })
}

fn tracks(selections: &[&[(&str, &str, &str)]]) -> Value {
    json!({ "tracks": selections.iter().map(|s| selection(s)).collect::<Vec<_>>() })
}

/// A `[[filter]]` in the AMS shape: `properties` is the AMS JSON, written as TOML.
fn filter_toml(name: &str, properties: &Value) -> String {
    toml_table("filter", &json!([{ "name": name, "properties": properties }]))
}

/// TOML of `key = value` (tables and arrays of tables for JSON objects).
fn toml_table(key: &str, value: &Value) -> String {
    toml::to_string(&json!({ key: value })).expect("JSON as TOML")
}

/// The locators' default filters, in every test config.
fn default_filters() -> [(&'static str, Value); 2] {
    [
        (
            "sd",
            tracks(&[
                &[("Type", "Equal", "Video"), ("Bitrate", "Equal", "0-300000")],
                &[("Type", "NotEqual", "Video")],
            ]),
        ),
        ("first-150k", json!({ "firstQuality": { "bitrate": 150_000 } })),
    ]
}

/// The test config: [`LOCATORS`], their default filters and `filters`.
fn config_text(filters: &[(&str, Value)]) -> String {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for (id, asset, defaults) in LOCATORS {
        text.push_str(&common::clear_locator_toml(id, asset));
        let defaults: Vec<String> = defaults.iter().map(|d| format!("\"{d}\"")).collect();
        text.push_str(&format!("filters = [{}]\n", defaults.join(", ")));
    }
    for (name, properties) in default_filters().iter().chain(filters) {
        text.push_str(&filter_toml(name, properties));
    }
    text
}

fn origin(filters: &[(&str, Value)]) -> Origin {
    let config = Config::parse(&config_text(filters), common::fixtures_dir()).expect("test config parses");
    Origin::from_config(&config).expect("origin")
}

fn serve(origin: Origin) -> TestServer {
    TestServer::serve(origin, Default::default())
}

/// A track as URLs name it: (name, bitrate).
type Track = (String, u64);

fn track(name: &str, bitrate: u64) -> Track {
    (name.to_string(), bitrate)
}

/// `QualityLevels(b)/Manifest(name,…)` → (name, b).
fn track_of_child(uri: &str) -> Track {
    let rest = uri.strip_prefix("QualityLevels(").unwrap_or_else(|| panic!("child URI {uri}"));
    let (bitrate, rest) = rest.split_once(")/Manifest(").unwrap_or_else(|| panic!("child URI {uri}"));
    let name = rest.split([',', ')']).next().unwrap();
    (name.to_string(), bitrate.parse().unwrap())
}

/// `Fragments(name=time,…)` → time.
fn time_of_segment(uri: &str) -> u64 {
    let rest = &uri[uri.find('=').unwrap_or_else(|| panic!("segment URI {uri}")) + 1..];
    rest.split([',', ')']).next().unwrap().parse().unwrap()
}

#[derive(Debug, Deserialize)]
struct Mpd {
    #[serde(rename = "Period")]
    periods: Vec<Period>,
}

#[derive(Debug, Deserialize)]
struct Period {
    #[serde(rename = "AdaptationSet", default)]
    adaptation_sets: Vec<AdaptationSet>,
}

#[derive(Debug, Deserialize)]
struct AdaptationSet {
    #[serde(rename = "@contentType")]
    content_type: String,
    #[serde(rename = "Representation", default)]
    representations: Vec<Representation>,
}

#[derive(Debug, Deserialize)]
struct Representation {
    #[serde(rename = "@id")]
    id: String,
    #[serde(rename = "SegmentTemplate")]
    template: SegmentTemplate,
}

#[derive(Debug, Deserialize)]
struct SegmentTemplate {
    #[serde(rename = "@presentationTimeOffset", default)]
    presentation_time_offset: u64,
    #[serde(rename = "SegmentTimeline")]
    timeline: SegmentTimeline,
}

#[derive(Debug, Deserialize)]
struct SegmentTimeline {
    #[serde(rename = "S")]
    entries: Vec<TimelineEntry>,
}

#[derive(Debug, Deserialize)]
struct TimelineEntry {
    #[serde(rename = "@t")]
    t: Option<u64>,
    #[serde(rename = "@d")]
    d: u64,
    #[serde(rename = "@r", default)]
    r: u64,
}

impl SegmentTimeline {
    fn times(&self) -> Vec<u64> {
        let mut times = Vec::new();
        let mut t = 0;
        for s in &self.entries {
            t = s.t.unwrap_or(t);
            for _ in 0..=s.r {
                times.push(t);
                t += s.d;
            }
        }
        times
    }
}

/// What the manifests of one request list.
#[derive(Debug)]
struct Listed {
    /// Tracks of the HLS multivariant playlist (variants and renditions).
    hls: BTreeSet<Track>,
    /// Tracks of the MPD (`{name}-{bitrate}` representation ids).
    dash: BTreeSet<Track>,
    /// The tracks of the `EXT-X-STREAM-INF` lines, in order, and whether each is audio-only.
    variants: Vec<(Track, bool)>,
    /// Segment times of the first variant's media playlist (HLS) and of that track (DASH),
    /// and DASH's presentationTimeOffset of it.
    hls_times: Vec<u64>,
    dash_times: Vec<u64>,
    dash_offset: u64,
}

fn fetch(server: &TestServer, path: &str) -> Got {
    get_blocking(&server.url(path))
}

/// Requests the HLS multivariant playlist, its first variant's media playlist and the MPD of
/// `locator` with `filter` (`""` for none), and parses what they list.
fn listed(server: &TestServer, locator: &str, filter: &str) -> Listed {
    let asset = LOCATORS.iter().find(|l| l.0 == locator).unwrap().1;
    let option = if filter.is_empty() { String::new() } else { format!(",filter={filter}") };
    let base = format!("/{locator}/{asset}.ism/");
    let multivariant = fetch(server, &format!("{base}manifest(format=m3u8-cmaf{option})")).ok();
    let Ok(Playlist::MasterPlaylist(pl)) = m3u8_rs::parse_playlist_res(&multivariant.body) else {
        panic!("not a multivariant playlist: {}", multivariant.describe());
    };
    // I-frame streams (trick play) are checked in tests/trick_play.rs.
    let variants: Vec<(Track, bool)> = pl
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .map(|v| (track_of_child(&v.uri), v.resolution.is_none()))
        .collect();
    let mut hls: BTreeSet<Track> = variants.iter().map(|(t, _)| t.clone()).collect();
    hls.extend(pl.alternatives.iter().filter_map(|a| a.uri.as_deref()).map(track_of_child));

    let first = &pl.variants[0].uri;
    let media = fetch(server, &format!("{base}{first}")).ok();
    let Ok(Playlist::MediaPlaylist(media)) = m3u8_rs::parse_playlist_res(&media.body) else {
        panic!("not a media playlist: {}", media.describe());
    };
    let hls_times = media.segments.iter().map(|s| time_of_segment(&s.uri)).collect();

    let mpd = fetch(server, &format!("{base}manifest(format=mpd-time-cmaf{option})")).ok();
    let mpd: Mpd = quick_xml::de::from_str(&mpd.text()).unwrap_or_else(|e| panic!("MPD: {e}: {}", mpd.describe()));
    let representations: Vec<(Track, &Representation)> = mpd
        .periods
        .iter()
        .flat_map(|p| &p.adaptation_sets)
        // The thumbnail tile set is no track of the asset (tests/thumbnails.rs checks it).
        .filter(|set| set.content_type != "image")
        .inspect(|set| assert!(["video", "audio", "text"].contains(&set.content_type.as_str())))
        .flat_map(|set| &set.representations)
        // Trick-mode twins of video Representations are checked in tests/trick_play.rs.
        .filter(|r| !r.id.ends_with("-trick"))
        .map(|r| {
            let (name, bitrate) = r.id.rsplit_once('-').unwrap();
            (track(name, bitrate.parse().unwrap()), r)
        })
        .collect();
    let first_track = &variants[0].0;
    let (_, first_representation) =
        representations.iter().find(|(t, _)| t == first_track).expect("the first variant's track is in the MPD");
    Listed {
        hls,
        dash: representations.iter().map(|(t, _)| t.clone()).collect(),
        hls_times,
        dash_times: first_representation.template.timeline.times(),
        dash_offset: first_representation.template.presentation_time_offset,
        variants,
    }
}

fn ladder(names: &[&str]) -> BTreeSet<Track> {
    names
        .iter()
        .map(|n| match *n {
            "v150" => track("video", 150_000),
            "v300" => track("video", 300_000),
            "v600" => track("video", 600_000),
            "eng" => track("audio_eng", 128_000),
            "fra" => track("audio_fra", 128_000),
            other => panic!("no ladder track {other}"),
        })
        .collect()
}

const ALL: &[&str] = &["v150", "v300", "v600", "eng", "fra"];
const VIDEO: &[&str] = &["v150", "v300", "v600"];

#[test]
fn track_conditions_select_the_same_tracks_in_every_manifest_format() {
    // (filter name, definition, locator, tracks kept).
    let dolby_video = track("video", 266_000);
    let (ac3, ec3) = (track("audio_eng", 320_000), track("audio_fra", 128_000));
    let (hevc_video, hevc_audio) = (track("video", 204_000), track("audio_eng", 127_000));
    let v = VIDEO;
    let cases: Vec<(&str, Value, &str, BTreeSet<Track>)> = vec![
        ("type-video", tracks(&[&[("Type", "Equal", "Video")]]), "ladder", ladder(v)),
        ("type-not-audio", tracks(&[&[("Type", "NotEqual", "audio")]]), "ladder", ladder(v)),
        ("type-audio", tracks(&[&[("Type", "Equal", "AUDIO")]]), "ladder", ladder(&["eng", "fra"])),
        ("type-not-text", tracks(&[&[("Type", "NotEqual", "Text")]]), "ladder", ladder(ALL)),
        (
            "name-or-video",
            tracks(&[&[("Name", "Equal", "audio_fra")], &[("Type", "Equal", "Video")]]),
            "ladder",
            ladder(&["v150", "v300", "v600", "fra"]),
        ),
        (
            "name-not",
            tracks(&[&[("Name", "NotEqual", "audio_fra")]]),
            "ladder",
            ladder(&["v150", "v300", "v600", "eng"]),
        ),
        (
            // ISO 639-1 "en" matches the track's 639-2 "eng".
            "language-en",
            tracks(&[&[("Language", "Equal", "en")], &[("Type", "Equal", "Video")]]),
            "ladder",
            ladder(&["v150", "v300", "v600", "eng"]),
        ),
        (
            "language-not-fra",
            tracks(&[&[("Language", "NotEqual", "FRA")]]),
            "ladder",
            ladder(&["v150", "v300", "v600", "eng"]),
        ),
        (
            "fourcc-ec3",
            tracks(&[&[("FourCC", "Equal", "ec-3")], &[("Type", "Equal", "Video")]]),
            "dolby",
            [dolby_video.clone(), ec3.clone()].into(),
        ),
        ("fourcc-not-ac3", tracks(&[&[("FourCC", "NotEqual", "ac-3")]]), "dolby", [dolby_video, ec3].into()),
        (
            "fourcc-hvc1",
            tracks(&[&[("FourCC", "Equal", "HVC1")], &[("FourCC", "Equal", "mp4a")]]),
            "hevc",
            [hevc_video, hevc_audio.clone()].into(),
        ),
        (
            "fourcc-avc1-audio",
            tracks(&[&[("FourCC", "Equal", "avc1")], &[("Type", "Equal", "Audio")]]),
            "hevc",
            [hevc_audio].into(),
        ),
        (
            "fourcc-not-ac3-dolby-audio",
            tracks(&[&[("Type", "Equal", "Audio"), ("FourCC", "NotEqual", "ec-3")]]),
            "dolby",
            [ac3].into(),
        ),
        (
            "bitrate-value",
            tracks(&[&[("Type", "Equal", "Video"), ("Bitrate", "Equal", "300000")], &[("Type", "Equal", "Audio")]]),
            "ladder",
            ladder(&["v300", "eng", "fra"]),
        ),
        (
            "bitrate-range",
            tracks(&[&[("Bitrate", "Equal", "0-300000")]]),
            "ladder",
            ladder(&["v150", "v300", "eng", "fra"]),
        ),
        ("bitrate-not-range", tracks(&[&[("Bitrate", "NotEqual", "0-200000")]]), "ladder", ladder(&["v300", "v600"])),
        (
            // AND within a selection, OR across.
            "and-or",
            tracks(&[
                &[("Type", "Equal", "Video"), ("Bitrate", "NotEqual", "150000"), ("Bitrate", "Equal", "0-450000")],
                &[("Language", "Equal", "fra")],
            ]),
            "ladder",
            ladder(&["v300", "fra"]),
        ),
        ("empty-keeps-all", json!({}), "ladder", ladder(ALL)),
    ];
    let filters: Vec<(&str, Value)> = cases.iter().map(|(name, def, _, _)| (*name, def.clone())).collect();
    let server = serve(origin(&filters));
    for (name, _, locator, expected) in &cases {
        let seen = listed(&server, locator, name);
        assert_eq!(&seen.hls, expected, "{name}: HLS");
        assert_eq!(&seen.dash, expected, "{name}: DASH");
    }
    // A filter that leaves nothing is a 404, not an empty manifest.
    let nothing = [("nothing", tracks(&[&[("Type", "Equal", "Text")]]))];
    let server = serve(origin(&nothing));
    let got = fetch(&server, "/ladder/ladder.ism/manifest(format=m3u8-cmaf,filter=nothing)");
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{}", got.describe());
}

#[test]
fn time_ranges_in_any_timescale_keep_straddling_segments_whole() {
    let range = |start: Option<u64>, end: Option<u64>, timescale: Option<u64>| {
        let mut r = serde_json::Map::new();
        if let Some(s) = start {
            r.insert("startTimestamp".into(), s.into());
        }
        if let Some(e) = end {
            r.insert("endTimestamp".into(), e.into());
        }
        if let Some(t) = timescale {
            r.insert("timescale".into(), t.into());
        }
        json!({ "presentationTimeRange": r })
    };
    // (filter, definition, ladder video segments listed: presentation [2k, 2k + 2) s).
    let cases: Vec<(&str, Value, Vec<u64>)> = vec![
        ("from-4s", range(Some(40_000_000), None, None), vec![2, 3]),
        ("to-4s", range(None, Some(40_000_000), None), vec![0, 1]),
        ("ms-2500-5000", range(Some(2_500), Some(5_000), Some(1_000)), vec![1, 2]),
        ("90k-2s-4s", range(Some(180_000), Some(360_000), Some(90_000)), vec![1]),
        ("90k-straddling", range(Some(270_000), Some(450_000), Some(90_000)), vec![1, 2]),
        ("one-tick", range(Some(3), Some(4), Some(1)), vec![1]),
        ("beyond-the-end", range(Some(6), Some(60), Some(1)), vec![3]),
        // AMS's "unset" end (Int64.MaxValue) keeps the whole presentation.
        ("ams-defaults", range(Some(0), Some(i64::MAX as u64), Some(10_000_000)), vec![0, 1, 2, 3]),
    ];
    let filters: Vec<(&str, Value)> = cases.iter().map(|(name, def, _)| (*name, def.clone())).collect();
    let server = serve(origin(&filters));
    for (name, _, segments) in &cases {
        let seen = listed(&server, "ladder", name);
        assert_eq!(seen.hls, ladder(ALL), "{name}: a time range keeps every track");
        let times = ladder_video_times(segments);
        assert_eq!(seen.hls_times, times, "{name}: HLS media playlist");
        assert_eq!(seen.dash_times, times, "{name}: DASH timeline");
        // DASH starts the window at time 0.
        assert_eq!(seen.dash_offset, times[0], "{name}: presentationTimeOffset");
        // Audio follows the video's segments.
        let audio = fetch(
            &server,
            &format!("/ladder/ladder.ism/QualityLevels(128000)/Manifest(audio_eng,format=m3u8-cmaf,filter={name})"),
        );
        let Ok(Playlist::MediaPlaylist(audio)) = m3u8_rs::parse_playlist_res(&audio.ok().body) else { panic!() };
        assert_eq!(audio.segments.len(), segments.len(), "{name}: audio segments");
    }
    let late = [("late", range(Some(9), None, Some(1)))];
    let server = serve(origin(&late));
    let got = fetch(&server, "/ladder/ladder.ism/manifest(format=mpd-time-cmaf,filter=late)");
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{}", got.describe());
}

#[test]
fn first_quality_leads_and_audio_only_variants_come_last() {
    let first = |bitrate: u64| json!({ "firstQuality": { "bitrate": bitrate } });
    let filters = [("first-600k", first(600_000)), ("first-400k", first(400_000))];
    let server = serve(origin(&filters));
    let first_variant = |locator: &str, filter: &str| listed(&server, locator, filter).variants[0].0.clone();
    // Unfiltered: video by bandwidth, then the audio-only variant.
    let plain = listed(&server, "ladder", "");
    let order: Vec<u64> = plain.variants.iter().map(|((_, b), _)| *b).collect();
    assert_eq!(order, [150_000, 300_000, 600_000, 128_000]);
    assert_eq!(
        plain.variants.iter().map(|(_, audio_only)| *audio_only).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    assert_eq!(first_variant("ladder", "first-600k"), track("video", 600_000));
    let order: Vec<u64> = listed(&server, "ladder", "first-600k").variants.iter().map(|((_, b), _)| *b).collect();
    assert_eq!(order, [600_000, 150_000, 300_000, 128_000]);
    // No track at 400k: the nearest, 300k.
    assert_eq!(first_variant("ladder", "first-400k"), track("video", 300_000));
    // The URL's firstQuality comes after the locator's, and wins.
    assert_eq!(first_variant("ladder-hd-first", ""), track("video", 150_000));
    assert_eq!(first_variant("ladder-hd-first", "first-600k"), track("video", 600_000));
    // firstQuality picks among the tracks the other filters keep.
    assert_eq!(first_variant("ladder", "sd;first-600k"), track("video", 300_000));
}

#[test]
fn combining_locator_and_url_filters_intersects_them_once_each() {
    let filters = [
        ("english", tracks(&[&[("Type", "Equal", "Video")], &[("Language", "Equal", "eng")]])),
        ("no-150k", tracks(&[&[("Bitrate", "NotEqual", "150000")]])),
        ("from-2s", json!({ "presentationTimeRange": { "startTimestamp": 2, "timescale": 1 } })),
        ("to-6s", json!({ "presentationTimeRange": { "endTimestamp": 6, "timescale": 1 } })),
    ];
    let server = serve(origin(&filters));
    assert_eq!(listed(&server, "ladder-sd", "").hls, ladder(&["v150", "v300", "eng", "fra"]));
    // Naming the locator's own filter again changes nothing.
    assert_eq!(listed(&server, "ladder-sd", "sd").hls, ladder(&["v150", "v300", "eng", "fra"]));
    assert_eq!(listed(&server, "ladder-sd", "english").hls, ladder(&["v150", "v300", "eng"]));
    let three = listed(&server, "ladder-sd", "english;no-150k;from-2s");
    assert_eq!(three.hls, ladder(&["v300", "eng"]));
    assert_eq!(three.dash, ladder(&["v300", "eng"]));
    assert_eq!(three.hls_times, ladder_video_times(&[1, 2, 3]));
    // Time ranges intersect.
    assert_eq!(listed(&server, "ladder", "from-2s;to-6s").dash_times, ladder_video_times(&[1, 2]));

    let unknown = fetch(&server, "/ladder/ladder.ism/manifest(format=m3u8-cmaf,filter=english;nope)");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.describe());
    assert!(unknown.text().contains("'nope'"), "{}", unknown.describe());
}

#[test]
fn combining_an_asset_filter_shadows_the_account_filter_of_its_name() {
    let account_trim = json!({ "presentationTimeRange": { "endTimestamp": 2, "timescale": 1 } });
    let origin = origin(&[("trim", account_trim)]);
    // The asset's own "trim" keeps the last 4 s instead of the first 2.
    let asset_trim = json!({ "presentationTimeRange": { "startTimestamp": 4, "timescale": 1 } });
    let asset_trim: FilterConfig =
        toml::from_str(&format!("name = \"trim\"\n{}", toml_table("properties", &asset_trim)))
            .expect("a [[filter]] table");
    let asset_trim = asset_trim.filter().unwrap();
    let mut catalog = origin.config_catalog().clone();
    // A locator publishing the ladder as the managed asset "ladder-asset".
    let mut managed = (**catalog.locator("ladder").unwrap()).clone();
    managed.id = "managed".into();
    managed.asset_name = Some("ladder-asset".into());
    catalog.insert_locator(managed);
    catalog.insert_asset_filter("ladder-asset", asset_trim);
    origin.publish(catalog);
    let server = serve(origin);

    let times = |locator: &str| {
        let mpd = fetch(&server, &format!("/{locator}/ladder.ism/manifest(format=mpd-time-cmaf,filter=trim)")).ok();
        let mpd: Mpd = quick_xml::de::from_str(&mpd.text()).unwrap();
        mpd.periods[0].adaptation_sets[0].representations[0].template.timeline.times()
    };
    assert_eq!(times("managed"), ladder_video_times(&[2, 3]), "the asset's filter");
    assert_eq!(times("ladder"), ladder_video_times(&[0]), "the account filter");
}

#[test]
fn bad_definitions_are_refused_naming_the_field() {
    let refused = |properties: Value| {
        let text = config_text(&[("bad", properties)]);
        Config::parse(&text, common::fixtures_dir()).map(|_| ()).unwrap_err().0
    };
    let condition = |p: &str, o: &str, v: &str| tracks(&[&[("Type", "Equal", "Video"), (p, o, v)]]);
    for (properties, expected) in [
        (condition("Colour", "Equal", "red"), "Colour"),
        (condition("Bitrate", "Above", "1"), "Above"),
        (condition("Type", "Equal", "Subtitles"), "properties.tracks[0].trackSelections[1].value"),
        (condition("Bitrate", "Equal", "5-1"), "properties.tracks[0].trackSelections[1].value"),
        (condition("Bitrate", "Equal", "lots"), "properties.tracks[0].trackSelections[1].value"),
        (condition("Language", "Equal", ""), "properties.tracks[0].trackSelections[1].value"),
        (json!({ "presentationTimeRange": { "startTimestamp": 5, "endTimestamp": 5 } }), "endTimestamp"),
        (json!({ "presentationTimeRange": { "timescale": 0 } }), "timescale"),
        (
            json!({ "presentationTimeRange": { "presentationWindowDuration": 60, "timescale": 1 } }),
            "presentationWindowDuration",
        ),
        (json!({ "presentationTimeRange": { "liveBackoffDuration": 600, "timescale": 1 } }), "liveBackoffDuration"),
        (json!({ "presentationTimeRange": { "start": 1 } }), "start"),
        (json!({ "firstQuality": { "bitrate": 1, "codec": "avc1" } }), "codec"),
        (json!({ "colour": "red" }), "colour"),
    ] {
        let e = refused(properties.clone());
        assert!(e.contains(expected), "{properties}: {e}");
    }
}
