//! Assets: a folder in a storage account holding MP4 files and usually an `.ism` SMIL server
//! manifest. Loading an asset indexes each referenced file once and plans every track's
//! segment timeline.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::source::index::{FileIndex, TrackIndex, TrackKind};
use crate::source::storage::ObjectVersion;
use crate::source::timeline::Timeline;

/// One track of an asset as the manifests and URLs see it.
#[derive(Debug, Clone)]
pub struct AssetTrack {
    /// `{trackName}` in URLs (from the `.ism`, or derived from the file).
    pub name: String,
    /// `{bitrate}` in `QualityLevels({bitrate})` (the `.ism` `systemBitrate`, or measured).
    pub bitrate: u64,
    pub kind: TrackKind,
    /// ISO 639 language code ("und" when unknown).
    pub language: String,
    /// DASH Role / HLS characteristics hints from the `.ism` (`role` param), e.g. "main".
    pub role: Option<String>,
    /// `accessibility` param, e.g. "description" or "caption".
    pub accessibility: Option<String>,
    /// The name players show for the track (the `.ism` `textDisplayName` param).
    pub display_name: Option<String>,
    /// Path of the source file inside the storage account.
    pub file: String,
    /// The file this track comes from (shared by the tracks of a muxed file).
    pub file_index: Arc<FileIndex>,
    /// Position of this track in `file_index.tracks`.
    pub track_position: usize,
    pub timeline: Timeline,
    /// Nominal frame rate of a video track (e.g. 30000/1001): measured from the samples for a
    /// file, recorded by the ingest for a live track.
    pub frame_rate: Option<(u32, u32)>,
    /// Presentation time a filter window cut from the start, in track ticks (0 unfiltered):
    /// DASH adds it to presentationTimeOffset so the window starts at time 0.
    pub window_offset: u64,
}

impl AssetTrack {
    pub fn index(&self) -> &TrackIndex {
        &self.file_index.tracks[self.track_position]
    }
    /// Bitrate manifests advertise as the peak (HLS BANDWIDTH, DASH @bandwidth): the measured
    /// peak segment bitrate, or the URL bitrate for a track without segments.
    pub fn peak_bitrate(&self) -> u64 {
        if self.timeline.peak_bitrate > 0 {
            self.timeline.peak_bitrate
        } else {
            self.bitrate
        }
    }
    /// Mean bitrate manifests advertise (HLS AVERAGE-BANDWIDTH), with the same fallback.
    pub fn average_bitrate(&self) -> u64 {
        if self.timeline.average_bitrate > 0 {
            self.timeline.average_bitrate
        } else {
            self.bitrate
        }
    }
}

/// A loaded asset.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Name in URLs: the `.ism` file name without extension, or the folder name.
    pub name: String,
    pub tracks: Vec<AssetTrack>,
    /// What a live event's asset adds (its wall clock, DVR window, whether it still runs);
    /// `None` for files.
    pub live: Option<LiveInfo>,
}

impl Asset {
    /// The track addressed by `QualityLevels(bitrate)/…(name…)`.
    pub fn track(&self, name: &str, bitrate: u64) -> Option<&AssetTrack> {
        self.tracks.iter().find(|t| t.name == name && t.bitrate == bitrate)
    }
    pub fn tracks_of(&self, kind: TrackKind) -> impl Iterator<Item = &AssetTrack> {
        self.tracks.iter().filter(move |t| t.kind == kind)
    }
    /// The longest segment of any track, seconds (0 without segments).
    pub fn longest_segment_secs(&self) -> f64 {
        self.tracks.iter().map(|t| t.timeline.max_duration_secs()).fold(0.0, f64::max)
    }
    /// The audio a player gets without choosing: of the first audio track's codec family,
    /// the first track that is not an accessibility track (audio description).
    pub fn default_audio(&self) -> Option<&AssetTrack> {
        let family = self.tracks_of(TrackKind::Audio).next()?.index().info.codec.family;
        let same_family = || self.tracks_of(TrackKind::Audio).filter(move |t| t.index().info.codec.family == family);
        same_family().find(|t| t.accessibility.is_none()).or_else(|| same_family().next())
    }
}

/// What a live event's asset adds to an [`Asset`] (`source::live` builds it).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveInfo {
    /// The event was stopped: manifests are static (HLS `EXT-X-ENDLIST`, DASH `static`).
    pub ended: bool,
    /// Wall clock (Unix ms) of event time 0.
    pub epoch_ms: u64,
    pub dvr_window_secs: u64,
    /// Wall clock (Unix ms) of the newest change any document of the event records: DASH
    /// `publishTime`, `Last-Modified` of live manifests.
    pub updated_ms: u64,
}

/// A summary for `inspect --json`.
#[derive(Debug, Serialize)]
pub struct TrackSummary<'a> {
    pub name: &'a str,
    pub bitrate: u64,
    pub file: &'a str,
    pub info: &'a crate::source::index::TrackInfo,
    pub samples: usize,
    pub duration_secs: f64,
    pub timeline: &'a Timeline,
    /// The language manifests show (the `.ism`'s, the file's, or a sidecar's file name's).
    pub language: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accessibility: Option<&'a str>,
    /// Cues of a WebVTT sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cues: Option<usize>,
}

use crate::error::{Error, Result};
use crate::source::index::locate::index_file;
use crate::source::ism::{parse_ism, IsmManifest, IsmTrackKind};
use crate::source::storage::Storage;
use crate::source::timeline::{plan, SegmentPolicy};

/// The document whose presence in a folder's listing makes it a live event's asset
/// (`source::live::EVENT_DOC`; defined here, below the live loader's layer).
pub const LIVE_EVENT_DOC: &str = "live.json";

/// File name endings that hold ISO BMFF media, for folders without an `.ism`.
const MEDIA_EXTENSIONS: &[&str] = &["mp4", "m4v", "m4a", "mov", "ismv", "isma", "cmfv", "cmfa", "cmft", "vtt"];

/// Where an asset's description comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetSource {
    /// A SMIL server manifest at this path.
    Ism(String),
    /// The media files directly inside a folder without an `.ism` (from the listing that
    /// found there is none, so loading does not list again).
    Folder { path: String, media_files: Vec<String> },
    /// A single media file.
    File(String),
    /// A live event's folder (its listing shows the event document): `source::live` loads it.
    Live { folder: String },
}

impl AssetSource {
    /// The asset's URL name: the `.ism`'s file stem, the folder's or the file's name.
    pub fn name(&self) -> String {
        let path = match self {
            AssetSource::Ism(p) | AssetSource::Folder { path: p, .. } | AssetSource::File(p) => p,
            AssetSource::Live { folder } => folder,
        };
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
        match self {
            AssetSource::Folder { .. } | AssetSource::Live { .. } => last.to_string(),
            _ => last.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(last).to_string(),
        }
    }
}

fn parent_folder(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_string()
    } else {
        format!("{}/{}", folder.trim_end_matches('/'), name)
    }
}

/// Finds how the asset in `folder` is described: its `.ism` named `{name}.ism` when `name`
/// is given, its only `.ism` otherwise, or its media files when it has no `.ism`.
pub async fn resolve_source(storage: &Storage, folder: &str, name: Option<&str>) -> Result<AssetSource> {
    resolve_source_with_versions(storage, folder, name).await.map(|(source, _)| source)
}

/// [`resolve_source`], plus the version of every object in the folder from the same listing,
/// so a reload can tell which already-indexed files are unchanged without reading them.
pub async fn resolve_source_with_versions(
    storage: &Storage,
    folder: &str,
    name: Option<&str>,
) -> Result<(AssetSource, HashMap<String, ObjectVersion>)> {
    let objects = storage.list(folder).await?;
    let versions = objects.iter().map(|o| (o.location.to_string(), crate::source::storage::version_of(o))).collect();
    let source = source_from_listing(&objects, folder, name)?;
    Ok((source, versions))
}

fn source_from_listing(objects: &[object_store::ObjectMeta], folder: &str, name: Option<&str>) -> Result<AssetSource> {
    // A live event's folder: its asset name is the event's manifest name, which only the
    // event document knows, so the loader checks it.
    let event_doc = join(folder, LIVE_EVENT_DOC);
    if objects.iter().any(|o| o.location.as_ref() == event_doc) {
        return Ok(AssetSource::Live { folder: folder.to_string() });
    }
    let isms: Vec<String> =
        objects.iter().map(|o| o.location.to_string()).filter(|p| p.to_ascii_lowercase().ends_with(".ism")).collect();
    let media_files: Vec<String> = objects
        .iter()
        .map(|o| o.location.to_string())
        .filter(|p| {
            let lower = p.to_ascii_lowercase();
            MEDIA_EXTENSIONS.iter().any(|ext| lower.ends_with(&format!(".{ext}")))
        })
        .collect();
    let folder_source = AssetSource::Folder { path: folder.to_string(), media_files };
    if let Some(name) = name {
        if let Some(ism) = isms.iter().find(|p| AssetSource::Ism((*p).clone()).name() == name) {
            return Ok(AssetSource::Ism(ism.clone()));
        }
        if isms.is_empty() && folder_source.name() == name && !objects.is_empty() {
            return Ok(folder_source);
        }
        return Err(Error::NotFound(format!("asset '{name}'")));
    }
    match isms.len() {
        0 if objects.is_empty() => Err(Error::NotFound(format!("asset folder '{folder}' is empty or missing"))),
        0 => Ok(folder_source),
        _ => Ok(AssetSource::Ism(isms[0].clone())),
    }
}

/// What one asset track is made of before indexing.
struct TrackChoice {
    file: String,
    track_id: Option<u32>,
    kind: Option<TrackKind>,
    name: Option<String>,
    bitrate: Option<u64>,
    language: Option<String>,
    role: Option<String>,
    accessibility: Option<String>,
    display_name: Option<String>,
}

impl TrackChoice {
    fn whole_file(file: String) -> Self {
        TrackChoice {
            file,
            track_id: None,
            kind: None,
            name: None,
            bitrate: None,
            language: None,
            role: None,
            accessibility: None,
            display_name: None,
        }
    }
}

fn choices_from_ism(ism_path: &str, ism: IsmManifest) -> Vec<TrackChoice> {
    let folder = parent_folder(ism_path);
    ism.tracks
        .into_iter()
        // AMS's outputFlag=false: the track is in no output (its file is not even read).
        .filter(|t| t.output)
        .map(|t| TrackChoice {
            file: join(folder, &t.src),
            track_id: t.track_id,
            kind: Some(match t.kind {
                IsmTrackKind::Video => TrackKind::Video,
                IsmTrackKind::Audio => TrackKind::Audio,
                IsmTrackKind::Text => TrackKind::Text,
            }),
            name: t.track_name,
            bitrate: t.system_bitrate,
            language: t.system_language,
            role: t.role,
            accessibility: t.accessibility,
            display_name: t.display_name,
        })
        .collect()
}

/// Loads an asset: reads its description, indexes each file once, plans the timelines.
pub async fn load(storage: &Storage, source: &AssetSource, policy: SegmentPolicy) -> Result<Asset> {
    load_reusing(storage, source, policy, &HashMap::new()).await
}

/// [`load`], taking the index of a file from `known` (path → index of its current version)
/// instead of reading the file again.
pub async fn load_reusing(
    storage: &Storage,
    source: &AssetSource,
    policy: SegmentPolicy,
    known: &HashMap<String, Arc<FileIndex>>,
) -> Result<Asset> {
    let asset_name = source.name();
    let choices = match source {
        AssetSource::Ism(path) => {
            let xml = storage.read_all(path).await?;
            let ism = parse_ism(&xml).map_err(|e| Error::asset(path, e))?;
            choices_from_ism(path, ism)
        }
        AssetSource::Folder { media_files, .. } => media_files.iter().cloned().map(TrackChoice::whole_file).collect(),
        AssetSource::File(path) => vec![TrackChoice::whole_file(path.clone())],
        AssetSource::Live { folder } => {
            return Err(Error::asset(folder, "a live event's folder is loaded by source::live"));
        }
    };
    if choices.is_empty() {
        return Err(Error::asset(&asset_name, "no media files"));
    }

    // Index each distinct file once, concurrently.
    let mut files: Vec<String> = choices.iter().map(|c| c.file.clone()).collect();
    files.sort();
    files.dedup();
    let indexes: Vec<Arc<FileIndex>> = futures::future::try_join_all(files.iter().map(|f| async move {
        match known.get(f) {
            Some(index) => Ok(index.clone()),
            None => index_file(storage, f).await.map(Arc::new),
        }
    }))
    .await?;

    let mut tracks: Vec<AssetTrack> = Vec::new();
    for choice in choices {
        let Some(file_index) = files.iter().position(|f| *f == choice.file).map(|i| indexes[i].clone()) else {
            continue;
        };
        let positions: Vec<usize> = file_index
            .tracks
            .iter()
            .enumerate()
            // A sidecar has one track whatever trackID an .ism gives it.
            .filter(|(_, t)| choice.track_id.is_none_or(|id| t.info.track_id == id || t.sidecar.is_some()))
            .filter(|(_, t)| choice.kind.is_none_or(|k| t.info.kind == k))
            .map(|(i, _)| i)
            .collect();
        if positions.is_empty() {
            return Err(Error::asset(
                &asset_name,
                format!(
                    "'{}' has no {} track{}",
                    choice.file,
                    choice.kind.map(|k| k.as_str()).unwrap_or("media"),
                    choice.track_id.map(|id| format!(" with trackID {id}")).unwrap_or_default()
                ),
            ));
        }
        // An .ism entry names one track; a bare file contributes all of its tracks.
        let take = if choice.kind.is_some() { &positions[..1] } else { &positions[..] };
        for &position in take {
            let info = &file_index.tracks[position].info;
            tracks.push(AssetTrack {
                name: choice.name.clone().unwrap_or_default(),
                bitrate: choice.bitrate.unwrap_or(0),
                kind: info.kind,
                language: choice.language.clone().unwrap_or_else(|| track_language(&choice.file, &info.language)),
                role: choice.role.clone(),
                accessibility: choice.accessibility.clone(),
                display_name: choice.display_name.clone(),
                file: choice.file.clone(),
                file_index: file_index.clone(),
                track_position: position,
                timeline: Timeline::default(),
                frame_rate: file_index.tracks[position].frame_rate(),
                window_offset: 0,
            });
        }
    }

    let refs: Vec<&TrackIndex> = tracks.iter().map(|t| t.index()).collect();
    let timelines = plan(&refs, policy);
    for (track, timeline) in tracks.iter_mut().zip(timelines) {
        track.timeline = timeline;
    }
    name_tracks(&mut tracks);
    // Video first, then audio, then text: manifests list tracks in this order.
    tracks.sort_by_key(|t| (t.kind as u8, t.bitrate));
    Ok(Asset { name: asset_name, tracks, live: None })
}

/// The language of a track the `.ism` gave none for: the file's own (mdhd, or a sidecar's
/// `Language:` header), else for a sidecar the ISO 639 code ending its file name
/// (`movie.de.vtt`, `movie_fra.vtt`, `en.vtt`), else "und".
fn track_language(file: &str, indexed: &str) -> String {
    if indexed != "und" || !crate::source::index::sidecar::is_sidecar(file) {
        return indexed.to_string();
    }
    let name = file.rsplit('/').next().unwrap_or(file);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.rsplit(['.', '_', '-'])
        .next()
        // A bare 3-letter stem ("sub.vtt") is more likely a word than a language; "en.vtt" is not.
        .filter(|code| matches!(code.len(), 2 | 3) && (code.len() < stem.len() || code.len() == 2))
        .and_then(crate::media::webvtt::iso639_2)
        // Among thousands of 639-3 codes many are words ("cue", "sub"): a file name counts
        // only for the languages with a 639-1 code.
        .filter(|code| isolang::Language::from_639_3(code).is_some_and(|l| l.to_639_1().is_some()))
        .unwrap_or_else(|| "und".to_string())
}

/// Fills in names and bitrates the `.ism` did not give, and makes every (name, bitrate)
/// pair unique so each track has its own URLs.
fn name_tracks(tracks: &mut [AssetTrack]) {
    for t in tracks.iter_mut() {
        if t.name.is_empty() {
            t.name = match (t.kind, t.language.as_str()) {
                (TrackKind::Video, _) => "video".to_string(),
                (kind, "und") => kind.as_str().to_string(),
                (kind, lang) => format!("{}_{lang}", kind.as_str()),
            };
        }
        // A text track's bitrate is what the .ism says, else 0 as AMS writes systemBitrate
        // for sidecars: text is not part of any bandwidth choice. Names keep it unique.
        if t.bitrate == 0 && t.kind != TrackKind::Text {
            // Rounded to kbit/s: stable across re-encodes of the same rendition.
            t.bitrate = (t.timeline.average_bitrate / 1000).max(1) * 1000;
        }
    }
    for i in 1..tracks.len() {
        let mut suffix = 2;
        let base = tracks[i].name.clone();
        while tracks[..i].iter().any(|o| o.name == tracks[i].name && o.bitrate == tracks[i].bitrate) {
            tracks[i].name = format!("{base}_{suffix}");
            suffix += 1;
        }
    }
}

impl<'a> TrackSummary<'a> {
    pub fn of(t: &'a AssetTrack) -> Self {
        let index = t.index();
        TrackSummary {
            name: &t.name,
            bitrate: t.bitrate,
            file: &t.file,
            info: &index.info,
            samples: index.samples.len(),
            duration_secs: index.duration_secs(),
            timeline: &t.timeline,
            language: &t.language,
            display_name: t.display_name.as_deref(),
            accessibility: t.accessibility.as_deref(),
            cues: index.sidecar.as_ref().map(|vtt| vtt.cues.len()),
        }
    }
}

/// Durations in seconds of the GOPs of a track (from one sync sample to the next).
pub fn gop_durations(index: &TrackIndex) -> Vec<f64> {
    let s = &index.samples;
    let ts = index.info.timescale.max(1) as f64;
    let starts: Vec<u64> = s.sync_iter().map(|i| s.dts[i as usize]).collect();
    starts.iter().enumerate().map(|(k, &t)| (starts.get(k + 1).copied().unwrap_or(s.end_dts) - t) as f64 / ts).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_smooth_client_manifest_is_ignored() {
        // An asset AMS packaged for Smooth holds a `.ismc` beside its `.ism`: the client
        // manifest is always generated, so the `.ismc` neither names the asset nor is media.
        let listing = |names: &[&str]| -> Vec<object_store::ObjectMeta> {
            names
                .iter()
                .map(|n| object_store::ObjectMeta {
                    location: object_store::path::Path::from(format!("a/{n}")),
                    last_modified: Default::default(),
                    size: 1,
                    e_tag: None,
                    version: None,
                })
                .collect()
        };
        let with_ism = listing(&["movie.ismc", "movie.ism", "movie_1.mp4"]);
        assert_eq!(source_from_listing(&with_ism, "a", None).unwrap(), AssetSource::Ism("a/movie.ism".into()));
        match source_from_listing(&listing(&["movie.ismc", "movie_1.mp4"]), "a", None).unwrap() {
            AssetSource::Folder { media_files, .. } => assert_eq!(media_files, ["a/movie_1.mp4"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sidecar_languages_come_from_the_header_then_the_file_name() {
        assert_eq!(track_language("a/movie.vtt", "spa"), "spa");
        assert_eq!(track_language("a/movie.de.vtt", "und"), "deu");
        assert_eq!(track_language("a/movie_fra.vtt", "und"), "fra");
        assert_eq!(track_language("a/movie-en.VTT", "und"), "eng");
        assert_eq!(track_language("en.vtt", "und"), "eng");
        assert_eq!(track_language("film.ger.vtt", "und"), "deu");
        assert_eq!(track_language("late-cue.vtt", "und"), "und");
        for unknown in ["a/movie.vtt", "a/sub.vtt", "a/movie.xx.vtt", "a/movie_english.vtt", "a/.vtt"] {
            assert_eq!(track_language(unknown, "und"), "und", "{unknown}");
        }
        // Only sidecars: an MP4's language is its mdhd's.
        assert_eq!(track_language("a/movie_fra.mp4", "und"), "und");
    }
}
