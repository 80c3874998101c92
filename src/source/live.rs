//! Live events as storage holds them: the shared state every replica serves a live event from.
//!
//! An event's asset folder holds (paths relative to the folder):
//! - `live.json`: the [`EventDoc`] (state, wall clock of time 0, DVR window, track keys);
//! - `{track key}/track.json`: one [`TrackDoc`] per track, rewritten by the one ingest
//!   connection that feeds the track after each fragment it stores;
//! - `{track key}/init-{hash}.mp4`: the track's CMAF header, named by its content so it never
//!   changes under a name;
//! - `{track key}/{time}.m4s`: one object per fragment (`styp moof mdat`, written by our own
//!   CMAF writer whatever the encoder sent), named by its earliest presentation time in the
//!   event timeline, which is also the `{time}` of its segment URL.
//!
//! The folder listing (one level) shows `live.json`, which is how an asset is known to be live;
//! fragments sit one level down so the listing stays small however long the archive grows.
//! Fragment objects are written before the track document that names them, so a document never
//! names a fragment that is not there.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectMeta, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::source::asset::{Asset, AssetTrack, LiveInfo};
use crate::source::index::fragmented::append_moof;
use crate::source::index::progressive::{parse_moov, MoovTrack};
use crate::source::index::{FileIndex, TrackIndex, TrackKind};
use crate::source::storage::{ObjectVersion, Storage};
use crate::source::timeline::{Segment, Timeline};

/// Name of the event document in the asset folder.
pub const EVENT_DOC: &str = crate::source::asset::LIVE_EVENT_DOC;
/// Name of a track's document in its track folder.
pub const TRACK_DOC: &str = "track.json";

/// `{folder}/live.json`.
pub fn event_doc_path(folder: &str) -> String {
    join(folder, EVENT_DOC)
}

/// `{folder}/{key}/track.json`.
pub fn track_doc_path(folder: &str, key: &str) -> String {
    join(folder, &format!("{key}/{TRACK_DOC}"))
}

/// `{folder}/{key}/init-{hash}.mp4`: the init object of `init` bytes (content-addressed).
pub fn init_path(folder: &str, key: &str, init: &[u8]) -> String {
    join(folder, &format!("{key}/init-{:016x}.mp4", xxhash_rust::xxh3::xxh3_64(init)))
}

/// `{folder}/{key}/{time}.m4s`: the fragment whose earliest presentation time is `time`.
pub fn fragment_path(folder: &str, key: &str, time: u64) -> String {
    join(folder, &format!("{key}/{}", fragment_name(time)))
}

/// The fragment object at `time` of the track whose init object is `init` (a track's
/// fragments sit next to its init object; `init` is the track's `file` in a loaded asset).
pub fn fragment_path_of_init(init: &str, time: u64) -> String {
    let track_folder = init.rsplit_once('/').map_or("", |(folder, _)| folder);
    join(track_folder, &fragment_name(time))
}

fn fragment_name(time: u64) -> String {
    format!("{time}.m4s")
}

/// `{folder}/{rest}` (just `rest` for the root folder).
pub fn join(folder: &str, rest: &str) -> String {
    let folder = folder.trim_matches('/');
    if folder.is_empty() {
        rest.to_string()
    } else {
        format!("{folder}/{rest}")
    }
}

/// Whether a track key is safe as one path segment: `[A-Za-z0-9_.-]`, 1–64 bytes, not `.`/`..`.
pub fn valid_track_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key != "."
        && key != ".."
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether the event takes ingest and its manifests grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    Running,
    Stopped,
}

/// How encoder time maps to event time: event ms = encoder ms + `ms`. Ingest connections of an
/// event share it so their tracks stay aligned; a reconnect whose time went backwards (or
/// jumped) sets a new one, a `generation` later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineOffset {
    pub ms: i64,
    /// Wall clock (Unix ms) when it was set.
    pub set_ms: u64,
    pub generation: u32,
}

/// `{folder}/live.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDoc {
    /// The live event's name.
    pub event: String,
    pub state: EventState,
    /// Name of the asset in URLs (`{name}.ism`, AMS `manifestName`); the folder's last path
    /// segment when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_name: Option<String>,
    /// Wall clock (Unix ms) of event time 0: DASH `availabilityStartTime`, HLS
    /// `EXT-X-PROGRAM-DATE-TIME` of time 0. Set by the first fragment ever stored.
    #[serde(default)]
    pub epoch_ms: Option<u64>,
    /// The DVR window (AMS `archiveWindowLength`), seconds: how far back live manifests reach.
    pub dvr_window_secs: u64,
    /// Keys of the tracks, in the order they first arrived.
    #[serde(default)]
    pub tracks: Vec<String>,
    #[serde(default)]
    pub offset: TimelineOffset,
    /// Wall clock (Unix ms) of the last change (state, tracks, offset).
    pub updated_ms: u64,
    /// Wall clock (Unix ms) the event was stopped at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_ms: Option<u64>,
}

/// A run of fragments of equal duration: times `t`, `t + d`, … (`count` of them), as DASH
/// `<S t d r>` puts it. A steady stream is a handful of runs whatever its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub t: u64,
    pub d: u64,
    pub count: u32,
}

impl Run {
    pub fn end(&self) -> u64 {
        self.t.saturating_add(self.d.saturating_mul(self.count as u64))
    }
}

/// `{folder}/{key}/track.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackDoc {
    pub key: String,
    /// `{trackName}` in URLs.
    pub name: String,
    /// `{bitrate}` in `QualityLevels({bitrate})`: fixed when the track first arrives (the
    /// encoder's declared bitrate, else the first fragment's, rounded to kbit/s).
    pub bitrate: u64,
    pub kind: TrackKind,
    /// ISO 639 code ("und" when unknown).
    pub language: String,
    pub timescale: u32,
    /// The init object, relative to the asset folder.
    pub init: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<(u32, u32)>,
    /// Every stored fragment, ascending and disjoint; fragment times are earliest presentation
    /// times in the event timeline, in `timescale` ticks.
    pub runs: Vec<Run>,
    /// Fragment times that follow a break in the encoder's timeline.
    #[serde(default)]
    pub discontinuities: Vec<u64>,
    /// Media bytes stored, and the highest fragment bitrate (bits/s).
    pub bytes: u64,
    pub peak_bitrate: u64,
    /// Wall clock (Unix ms) of the last fragment stored.
    pub updated_ms: u64,
    /// The event offset ([`TimelineOffset::ms`]) the last fragment was stored with: a
    /// reconnect that continues the track seamlessly keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
}

impl TrackDoc {
    /// The end of the last fragment (0 before any).
    pub fn end(&self) -> u64 {
        self.runs.last().map_or(0, Run::end)
    }

    /// Appends a fragment at `t` lasting `d` (extends the last run when it continues it).
    pub fn push(&mut self, t: u64, d: u64) {
        match self.runs.last_mut() {
            Some(last) if last.d == d && last.end() == t && last.count < u32::MAX => last.count += 1,
            _ => self.runs.push(Run { t, d, count: 1 }),
        }
    }

    /// The time of the last fragment stored.
    pub fn last_time(&self) -> Option<u64> {
        let last = self.runs.last()?;
        Some(last.t + last.d * (last.count.saturating_sub(1) as u64))
    }

    /// How many fragments are stored.
    pub fn fragment_count(&self) -> u64 {
        self.runs.iter().map(|r| r.count as u64).sum()
    }

    /// Whether a fragment at `t` is stored.
    pub fn contains(&self, t: u64) -> bool {
        let i = self.runs.partition_point(|r| r.t <= t);
        i.checked_sub(1).and_then(|i| self.runs.get(i)).is_some_and(|r| t < r.end() && (t - r.t) % r.d.max(1) == 0)
    }

    /// Makes the last fragment last until `end` (the next fragment's time), so the timeline has
    /// no gap and no overlap where a fragment's decode span and the next one's time disagree.
    pub fn end_last_at(&mut self, end: u64) {
        let Some(t) = self.last_time().filter(|&t| t < end) else { return };
        if let Some(last) = self.runs.last_mut() {
            if last.end() == end {
                return;
            }
            last.count -= 1;
            if last.count == 0 {
                self.runs.pop();
            }
        }
        self.push(t, end - t);
    }

    /// The timeline of every stored fragment, numbered from 0.
    pub fn timeline(&self) -> Timeline {
        let count: usize = self.runs.iter().map(|r| r.count as usize).sum();
        let mut segments = Vec::with_capacity(count);
        let mut discontinuities = self.discontinuities.iter().copied().peekable();
        for run in &self.runs {
            for k in 0..run.count as u64 {
                let time = run.t + k * run.d;
                while discontinuities.next_if(|&t| t < time).is_some() {}
                let discontinuity = discontinuities.next_if_eq(&time).is_some();
                segments.push(Segment {
                    first_sample: 0,
                    sample_count: 0,
                    time,
                    duration: run.d,
                    bytes: 0,
                    discontinuity,
                });
            }
        }
        let total: u64 = segments.iter().map(|s| s.duration).sum();
        let average = (self.bytes as u128 * 8 * self.timescale as u128).checked_div(total as u128).unwrap_or(0);
        Timeline {
            timescale: self.timescale,
            segments,
            first_number: 0,
            peak_bitrate: self.peak_bitrate,
            average_bitrate: average.min(u64::MAX as u128) as u64,
        }
    }
}

/// Parses a track's init object (`ftyp moov`, one track) into a track index without samples,
/// with the `trex` defaults its fragments use.
pub fn parse_init(path: &str, bytes: &Bytes) -> Result<MoovTrack> {
    let moov = crate::media::mp4::reader::boxes(bytes)
        .filter_map(|b| b.ok())
        .find(|b| &b.kind == b"moov")
        .map(|b| bytes.slice_ref(b.payload))
        .ok_or_else(|| Error::media(path, "live init object has no 'moov'"))?;
    let parsed = parse_moov(&moov, bytes.len() as u64).map_err(|e| Error::media(path, e))?;
    match <[MoovTrack; 1]>::try_from(parsed.tracks) {
        Ok([track]) => Ok(track),
        Err(tracks) => Err(Error::media(path, format!("live init object has {} tracks, not 1", tracks.len()))),
    }
}

/// Indexes one fragment object (`styp moof mdat`, as our CMAF writer stores it) of the live
/// track `track` (its init's index, without samples): its samples, with offsets into the
/// object and decode times in event time. Every sample lasts at least a tick, so decode
/// times are unique along the track (Common Encryption numbers live samples by them).
pub fn parse_fragment(path: &str, bytes: &[u8], track: &TrackIndex) -> Result<TrackIndex> {
    let mut tracks =
        [MoovTrack { info: track.info.clone(), samples: Default::default(), defaults: Default::default() }];
    let mut offset = 0u64;
    for b in crate::media::mp4::reader::boxes(bytes) {
        let b = b.map_err(|e| Error::media(path, e))?;
        if &b.kind == b"moof" {
            append_moof(b.payload, offset, bytes.len() as u64, &mut tracks).map_err(|e| Error::media(path, e))?;
        }
        offset += b.bytes.len() as u64;
    }
    let [MoovTrack { info, samples, .. }] = tracks;
    samples.validate().map_err(|e| Error::media(path, e))?;
    if samples.is_empty() {
        return Err(Error::media(path, "live fragment has no samples"));
    }
    if (0..samples.len()).any(|i| samples.duration(i) == 0) {
        return Err(Error::media(path, "live fragment has a sample of no duration"));
    }
    samples.check_byte_ranges(bytes.len() as u64).map_err(|e| Error::media(path, format!("live fragment: {e}")))?;
    Ok(TrackIndex { info, samples, sidecar: None })
}

/// Reads and parses an event document; `None` when the folder has none.
pub async fn read_event_doc(storage: &Storage, folder: &str) -> Result<Option<(EventDoc, ObjectVersion)>> {
    read_doc(storage, &event_doc_path(folder)).await
}

/// Reads and parses a track document; `None` when there is none.
pub async fn read_track_doc(storage: &Storage, folder: &str, key: &str) -> Result<Option<(TrackDoc, ObjectVersion)>> {
    read_doc(storage, &track_doc_path(folder, key)).await
}

async fn read_doc<T: for<'de> Deserialize<'de>>(storage: &Storage, path: &str) -> Result<Option<(T, ObjectVersion)>> {
    let read = read_doc_with_meta(storage, path).await?;
    Ok(read.map(|(doc, meta)| (doc, crate::source::storage::version_of(&meta))))
}

/// Reads and parses the document at `path` with the version a conditional write of it
/// replaces (`PutMode::Update`); `None` when there is none.
pub async fn read_doc_for_update<T: for<'de> Deserialize<'de>>(
    storage: &Storage,
    path: &str,
) -> Result<Option<(T, UpdateVersion)>> {
    let read = read_doc_with_meta(storage, path).await?;
    Ok(read.map(|(doc, meta)| (doc, UpdateVersion { e_tag: meta.e_tag, version: meta.version })))
}

async fn read_doc_with_meta<T: for<'de> Deserialize<'de>>(
    storage: &Storage,
    path: &str,
) -> Result<Option<(T, ObjectMeta)>> {
    let (bytes, meta) = match storage.read_all_with_meta(path).await {
        Ok(read) => read,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let doc = serde_json::from_slice(&bytes).map_err(|e| Error::media(path, format!("live document: {e}")))?;
    Ok(Some((doc, meta)))
}

/// Loads the live asset in `folder`: its event document, every track document, and each
/// track's init object (taken from `known_inits` by path when there: init objects never change
/// under a name). `name` must be the event's manifest name (or the folder's name).
pub async fn load(
    storage: &Storage,
    folder: &str,
    name: &str,
    known_inits: &HashMap<String, Arc<FileIndex>>,
) -> Result<Asset> {
    let Some((event, _)) = read_event_doc(storage, folder).await? else {
        return Err(Error::NotFound(format!("live asset '{name}'")));
    };
    let folder_name = folder.trim_matches('/').rsplit('/').next().unwrap_or_default();
    if event.manifest_name.as_deref().unwrap_or(folder_name) != name {
        return Err(Error::NotFound(format!("asset '{name}'")));
    }
    let docs =
        futures::future::try_join_all(event.tracks.iter().map(|key| read_track_doc(storage, folder, key))).await?;
    let mut updated_ms = event.updated_ms;
    let mut tracks = Vec::new();
    for (doc, _) in docs.into_iter().flatten() {
        if doc.runs.is_empty() {
            continue;
        }
        updated_ms = updated_ms.max(doc.updated_ms);
        let init = join(folder, &doc.init);
        let file_index = match known_inits.get(&init) {
            Some(index) => index.clone(),
            None => {
                let (bytes, meta) = storage.read_all_with_meta(&init).await?;
                let track = parse_init(&init, &bytes)?;
                Arc::new(FileIndex {
                    path: init.clone(),
                    version: crate::source::storage::version_of(&meta),
                    tracks: vec![TrackIndex { info: track.info, samples: track.samples, sidecar: None }],
                    reads: 1,
                })
            }
        };
        tracks.push(AssetTrack {
            name: doc.name.clone(),
            bitrate: doc.bitrate,
            kind: doc.kind,
            language: doc.language.clone(),
            role: None,
            accessibility: None,
            display_name: None,
            file: init,
            file_index,
            track_position: 0,
            timeline: doc.timeline(),
            frame_rate: doc.frame_rate,
            window_offset: 0,
        });
    }
    tracks.sort_by_key(|t| (t.kind as u8, t.bitrate));
    if tracks.is_empty() {
        return Err(Error::NotYetAvailable(format!("live asset '{name}' has no media yet")));
    }
    let live = LiveInfo {
        ended: event.state == EventState::Stopped,
        epoch_ms: event.epoch_ms.unwrap_or(0),
        dvr_window_secs: event.dvr_window_secs,
        updated_ms,
    };
    Ok(Asset { name: name.to_string(), tracks, live: Some(live) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_extend_and_expand_with_discontinuities() {
        let mut doc = TrackDoc {
            key: "video".into(),
            name: "video".into(),
            bitrate: 1_000_000,
            kind: TrackKind::Video,
            language: "und".into(),
            timescale: 1000,
            init: "video/init-0.mp4".into(),
            frame_rate: None,
            runs: Vec::new(),
            discontinuities: vec![10_000],
            bytes: 1_000_000,
            peak_bitrate: 1_200_000,
            updated_ms: 0,
            offset_ms: None,
        };
        for t in [0, 2000, 4000] {
            doc.push(t, 2000);
        }
        doc.push(6000, 1500);
        doc.push(10_000, 2000);
        assert_eq!(doc.runs.len(), 3);
        assert_eq!(doc.end(), 12_000);
        let timeline = doc.timeline();
        let times: Vec<_> = timeline.segments.iter().map(|s| (s.time, s.duration, s.discontinuity)).collect();
        assert_eq!(
            times,
            [(0, 2000, false), (2000, 2000, false), (4000, 2000, false), (6000, 1500, false), (10_000, 2000, true)]
        );
        assert_eq!(timeline.average_bitrate, 8_000_000 * 1000 / 9500);
    }

    #[test]
    fn track_keys_are_one_safe_path_segment() {
        assert!(valid_track_key("video_720p-1.5"));
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_track_key(bad), "{bad}");
        }
    }
}
