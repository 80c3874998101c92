//! Stores a live event's fragments: one object per fragment, then the track document naming
//! it; keeps every track of the event on one timeline across reconnects and replicas.
//!
//! Event time: encoder time plus the event's [`TimelineOffset`] (ms, converted to each track's
//! ticks). The first fragment ever stored starts the event at [`EVENT_START_MS`] and sets its
//! wall clock epoch.
//! A connection fixes its offset at its first fragment: the track's own last offset when that
//! continues the track seamlessly (a source that kept its clock), else the event's current
//! offset when that keeps the track going forward (or names one of its last fragments: a
//! resend), else a new one that continues the event after the end of every track, or at the
//! live edge when later, written to the event document with a conditional put so sibling
//! tracks of the restarted encoder adopt it. Within a connection, time only goes forward.
//!
//! Every document write is conditional (create-if-absent, or replace-the-version-read), so
//! replicas and connections sharing an event never lose each other's changes; a track document
//! that changed under its writer means another connection took the track over.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use object_store::{PutMode, UpdateVersion};
use serde::Serialize;

use super::{IngestError, IngestFragment, IngestTrack, Protocol};
use crate::output::cmaf::{self, Flavor, SegmentOptions};
use crate::plan::live_event::LiveEvent;
use crate::plan::reads::SourceSpan;
use crate::serve::metrics::Metrics;
use crate::source::index::{SampleTable, TrackIndex, TrackInfo, TrackKind, MAX_DECODE_TIME};
use crate::source::live::{self, EventDoc, EventState, TimelineOffset, TrackDoc};
use crate::source::storage::{object_path, Storage};
use crate::source::timeline::Segment;

/// Attempts at a conditional update of the event document before giving up (each failure
/// means another writer changed it in between: retried on the fresh version).
const UPDATE_ATTEMPTS: usize = 32;

/// Longest fragment taken: a live fragment is a few seconds; a longer one (a corrupt duration)
/// would move the event's wall clock and the track's timeline far off.
const MAX_FRAGMENT_SECS: u64 = 60;

/// How often a connection checks that its event still runs (a stopped event takes no more
/// fragments), at most; the check runs alongside a fragment's write.
const STATE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How many of a track's last fragments a reconnecting source may resend.
const RESENT_FRAGMENTS: u64 = 3;

/// A track arriving for the first time starts at most this far behind the event's live edge;
/// further behind (an encoder restarted at time 0 while the event ran on), it is placed at the
/// edge like a reconnect that jumped in time.
const NEW_TRACK_BEHIND_EDGE_MS: i64 = 60_000;

/// Event time of the first fragment ever stored. Not 0: which track's first fragment is stored
/// first is a race, and its siblings often begin a little earlier (the first video keyframe
/// 21 ms before the first AAC frame, or audio ahead of the keyframe); starting later leaves
/// them room, so no sibling loses its first samples (a whole GOP for video) to time 0.
const EVENT_START_MS: i64 = 10_000;

/// A track arriving for the first time may start this much before the event's time 0 (the
/// track that started it began over [`EVENT_START_MS`] later): its samples before 0 are dropped.
const NEW_TRACK_BEFORE_START_MS: i64 = 10_000;

/// Told of each fragment acknowledged, with the event's storage account name and folder: the
/// serving side of this process lists it at once instead of at its next reload.
pub type StoredHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The ingest side of this process: which connection feeds each track.
pub struct LiveWriter {
    metrics: Arc<Metrics>,
    on_stored: Option<StoredHook>,
    /// Event time of an event's first fragment, ms ([`EVENT_START_MS`]).
    event_start_ms: i64,
    tracks: Arc<Mutex<HashMap<TrackId, Arc<TrackSlot>>>>,
    next_connection: AtomicU64,
}

/// A track of an event in storage: (account, event folder, track key).
type TrackId = (String, String, String);

/// The connection of this process that feeds one track, and its turn to write.
struct TrackSlot {
    owner: AtomicU64,
    /// Held during a push, so a newer connection's first push waits for an older one's write.
    turn: tokio::sync::Mutex<()>,
}

/// One track fed by one ingest connection.
pub struct TrackWriter {
    event: Arc<LiveEvent>,
    protocol: Protocol,
    track: IngestTrack,
    metrics: Arc<Metrics>,
    on_stored: Option<StoredHook>,
    event_start_ms: i64,
    registry: Arc<Mutex<HashMap<TrackId, Arc<TrackSlot>>>>,
    id: TrackId,
    slot: Arc<TrackSlot>,
    connection: u64,
    /// The track as fragments are written: its info and the fragment being written.
    index: TrackIndex,
    /// The track document as this connection last wrote (or read) it.
    doc: Option<(TrackDoc, UpdateVersion)>,
    /// This connection's encoder → event time offset; fixed by its first fragment.
    offset: Option<Offset>,
    /// The next fragment stored follows a break in the track's timeline.
    discontinuity: bool,
    /// When the event was last seen running.
    state_checked: Instant,
    /// Decode time (event ticks) after the last fragment this connection stored.
    end_dts: Option<u64>,
}

/// Where a connection's fragments go in event time.
#[derive(Debug, Clone, Copy)]
struct Placement {
    offset: Offset,
    /// The first fragment follows a break in the encoder's timeline.
    discontinuity: bool,
}

/// An event offset ([`TimelineOffset::ms`]) and the same in the track's ticks.
#[derive(Debug, Clone, Copy)]
struct Offset {
    ms: i64,
    ticks: i64,
}

impl Offset {
    fn new(ms: i64, timescale: u32) -> Offset {
        Offset { ms, ticks: ms_to_ticks(ms, timescale) }
    }
}

impl LiveWriter {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        LiveWriter {
            metrics,
            on_stored: None,
            event_start_ms: EVENT_START_MS,
            tracks: Arc::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    /// A writer that calls `hook` after each fragment it acknowledges.
    pub fn notifying(self, hook: StoredHook) -> Self {
        LiveWriter { on_stored: Some(hook), ..self }
    }

    /// A writer whose events start at `ms` (the timeline tests count from 0).
    #[cfg(test)]
    fn starting_events_at(self, ms: i64) -> Self {
        LiveWriter { event_start_ms: ms, ..self }
    }

    /// Opens `track` of `event` for one connection of `protocol`: creates the event document
    /// when there is none, registers the track (or continues it: the same sample entry is
    /// required), and takes the track over from an older connection of this process.
    pub async fn open_track(
        &self,
        event: &Arc<LiveEvent>,
        protocol: Protocol,
        track: IngestTrack,
    ) -> Result<TrackWriter, IngestError> {
        if !live::valid_track_key(&track.key) {
            return Err(IngestError::bad("track_key", format!("track key '{}' is not one path segment", track.key)));
        }
        if track.info.timescale == 0 {
            return Err(IngestError::bad("samples", format!("track '{}' has timescale 0", track.key)));
        }
        register_track(event, &track.key).await?;
        let storage = &event.storage;
        let doc = read_for_update::<TrackDoc>(storage, &live::track_doc_path(&event.folder, &track.key)).await?;
        let mut info = track.info.clone();
        // Our fragments and init objects name the track 1 whatever the encoder numbered it, so
        // a reconnect that numbers it otherwise writes the same bytes.
        info.track_id = 1;
        if let Some((doc, _)) = &doc {
            let path = live::join(&event.folder, &doc.init);
            let bytes = storage.read_all(&path).await.map_err(storage_error)?;
            let stored = live::parse_init(&path, &bytes).map_err(storage_error)?.info;
            if stored.sample_entry != info.sample_entry || stored.timescale != info.timescale {
                let described = |i: &TrackInfo| format!("{} at {} Hz", i.codec.codec_string, i.timescale);
                let message = format!(
                    "track '{}' of event '{}' was stored as {}; it cannot continue as {}",
                    track.key,
                    event.name,
                    described(&stored),
                    described(&info)
                );
                return Err(IngestError::bad("codec_change", message));
            }
        }

        let id: TrackId = (storage.name().to_string(), event.folder.clone(), track.key.clone());
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let slot = {
            let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
            let slot = tracks
                .entry(id.clone())
                .or_insert_with(|| Arc::new(TrackSlot { owner: AtomicU64::new(0), turn: Default::default() }))
                .clone();
            if slot.owner.swap(connection, Ordering::SeqCst) != 0 {
                tracing::warn!(event = %event.name, track = %track.key, protocol = protocol.as_str(), "a new connection takes the track over from an older one");
            }
            slot
        };
        tracing::info!(event = %event.name, track = %track.key, protocol = protocol.as_str(), codec = %info.codec.codec_string, continues = doc.is_some(), "ingest track opened");
        Ok(TrackWriter {
            event: event.clone(),
            protocol,
            metrics: self.metrics.clone(),
            on_stored: self.on_stored.clone(),
            event_start_ms: self.event_start_ms,
            registry: self.tracks.clone(),
            id,
            slot,
            connection,
            index: TrackIndex { info, samples: SampleTable::default(), sidecar: None },
            doc,
            offset: None,
            discontinuity: false,
            state_checked: Instant::now(),
            end_dts: None,
            track,
        })
    }
}

impl TrackWriter {
    /// Stores one fragment; returns once its object and the track document naming it are
    /// written (the fragment is acknowledged: servable by every replica, survives a restart).
    pub async fn push(&mut self, fragment: IngestFragment) -> Result<(), IngestError> {
        let slot = self.slot.clone();
        let _turn = slot.turn.lock().await;
        if slot.owner.load(Ordering::SeqCst) != self.connection {
            return Err(IngestError::Forbidden(format!(
                "track '{}' of event '{}' is fed by a newer connection",
                self.track.key, self.event.name
            )));
        }
        let started = Instant::now();
        let received = Received::check(&fragment, &self.index.info)?;
        let offset = match self.offset {
            Some(offset) => offset,
            None => {
                let placement = self.place(&received).await?;
                self.offset = Some(placement.offset);
                self.discontinuity = placement.discontinuity;
                placement.offset
            }
        };
        let IngestFragment { samples, payload } = fragment;
        let Some(received) = self.move_to_event_time(samples, offset.ticks, received)? else {
            tracing::debug!(event = %self.event.name, track = %self.track.key, "fragment before the event's start: skipped");
            return Ok(());
        };
        let n = self.index.samples.len();
        let time = self.index.earliest_presentation(0..n);
        let duration = received.duration;
        let continuity = match fit(self.doc.as_ref().map(|(doc, _)| doc), time, duration, self.protocol.resends()) {
            Fit::Resend => {
                tracing::debug!(event = %self.event.name, track = %self.track.key, time, "fragment stored already: skipped");
                return Ok(());
            }
            Fit::Backwards { last } => {
                return Err(IngestError::bad(
                    "time",
                    format!("track '{}' goes back in time: fragment at {time} after one at {last}", self.track.key),
                ))
            }
            Fit::Forward { gap, .. } => gap,
        };
        let discontinuity = self.discontinuity || continuity;
        let bytes = self.index.samples.byte_count(0..n);

        let (mut doc, version) = match self.doc.clone() {
            Some((doc, version)) => (doc, Some(version)),
            None => (self.new_doc(&received, bytes).await?, None),
        };
        let segment = Segment { first_sample: 0, sample_count: n as u32, time, duration, bytes, discontinuity };
        let sequence_number = u32::try_from(doc.fragment_count() + 1).unwrap_or(u32::MAX);
        let object = self.fragment_object(&segment, sequence_number, payload)?;
        let object_len = object.len() as u64;
        self.write_fragment(&live::fragment_path(&self.event.folder, &self.track.key, time), object).await?;

        if discontinuity {
            doc.discontinuities.push(time);
        } else {
            doc.end_last_at(time);
        }
        doc.push(time, duration);
        doc.bytes += bytes;
        doc.peak_bitrate = doc.peak_bitrate.max(bitrate(bytes, duration, self.index.info.timescale));
        doc.updated_ms = now_ms();
        doc.offset_ms = Some(offset.ms);
        self.write_doc(doc, version).await?;
        self.discontinuity = false;
        self.end_dts = Some(self.index.samples.end_dts);

        let protocol = self.protocol.as_str();
        self.metrics.fragments_ingested.with_label_values(&[protocol]).inc();
        self.metrics.bytes_ingested.with_label_values(&[protocol]).inc_by(object_len);
        self.metrics.ingest_store_seconds.observe(started.elapsed().as_secs_f64());
        if let Some(hook) = &self.on_stored {
            hook(self.event.storage.name(), &self.event.folder);
        }
        Ok(())
    }

    /// Moves `samples` (whose facts are `received`) by `offset` ticks to event time, into
    /// `self.index`; their facts after any trim, or `None` when none of them is in the event.
    fn move_to_event_time(
        &mut self,
        mut samples: SampleTable,
        offset: i64,
        mut received: Received,
    ) -> Result<Option<Received>, IngestError> {
        if self.doc.is_none() {
            // A new track placed a little before the event's start: what precedes it goes.
            let Some(first) = first_sample_in_event(&samples, offset) else { return Ok(None) };
            if let Some(&dts) = samples.dts.get(first).filter(|_| first > 0) {
                drop_leading(&mut samples, first);
                received = Received::of(&samples, dts);
            }
        }
        if !shift(&mut samples, offset) {
            let message = format!(
                "fragment at encoder time {} of track '{}' falls before the event's start",
                received.dts, self.track.key
            );
            return Err(IngestError::bad("time", message));
        }
        // Decode times name samples along the track: the next fragment's may not repeat them.
        if let Some((&dts, end)) = samples.dts.first().zip(self.end_dts).filter(|&(&dts, end)| dts < end) {
            let message =
                format!("track '{}': fragment decoding from {dts} overlaps the last one (to {end})", self.track.key);
            return Err(IngestError::bad("time", message));
        }
        self.index.samples = samples;
        Ok(Some(received))
    }

    /// The stored form of the fragment at hand: `styp moof mdat` by our CMAF writer, whatever
    /// the encoder sent, so live segments are built exactly as VOD ones.
    fn fragment_object(&self, segment: &Segment, sequence_number: u32, payload: Bytes) -> Result<Bytes, IngestError> {
        let span = SourceSpan::new(0, payload);
        let built =
            cmaf::media_segment(&self.index, segment, sequence_number, &span, SegmentOptions::clear(Flavor::Cmaf))
                .map_err(|e| IngestError::bad("samples", format!("track '{}': {e}", self.track.key)))?;
        let mut object = BytesMut::with_capacity(built.parts.iter().map(Bytes::len).sum());
        for part in &built.parts {
            object.extend_from_slice(part);
        }
        Ok(object.freeze())
    }

    /// Writes a fragment object; every [`STATE_CHECK_INTERVAL`] also reads the event's state
    /// alongside, and refuses the fragment (unnamed: not acknowledged) once it is stopped.
    async fn write_fragment(&mut self, path: &str, object: Bytes) -> Result<(), IngestError> {
        let storage = &self.event.storage;
        let check_state = self.state_checked.elapsed() >= STATE_CHECK_INTERVAL;
        let state = async {
            match check_state {
                true => {
                    live::read_event_doc(storage, &self.event.folder).await.map(|doc| doc.map(|(doc, _)| doc.state))
                }
                false => Ok(Some(EventState::Running)),
            }
        };
        let (written, state) = tokio::join!(put(storage, path, object, PutMode::Overwrite), state);
        written?;
        match state {
            Ok(Some(EventState::Running)) if check_state => self.state_checked = Instant::now(),
            Ok(Some(EventState::Running)) => {}
            Ok(Some(EventState::Stopped)) => return Err(stopped(&self.event)),
            Ok(None) => {
                let message = format!("live event '{}' has no event document any more", self.event.name);
                return Err(IngestError::Forbidden(message));
            }
            // Checked again at the next fragment: a failed read must not fail the ingest.
            Err(e) => tracing::debug!(event = %self.event.name, error = %e, "live event state not read"),
        }
        Ok(())
    }

    /// Writes the track document over the version this connection last wrote (or read): a
    /// changed one means another connection (here or on another replica) took the track.
    async fn write_doc(&mut self, doc: TrackDoc, version: Option<UpdateVersion>) -> Result<(), IngestError> {
        let path = live::track_doc_path(&self.event.folder, &self.track.key);
        let mode = match version {
            Some(version) => PutMode::Update(version),
            None => PutMode::Create,
        };
        let version = match put(&self.event.storage, &path, json(&doc)?, mode).await {
            Err(IngestError::Forbidden(_)) => {
                let message = format!(
                    "track '{}' of event '{}' taken over by another connection",
                    self.track.key, self.event.name
                );
                return Err(IngestError::Forbidden(message));
            }
            written => written?,
        };
        self.doc = Some((doc, version));
        Ok(())
    }

    /// The connection ended: `clean` when the encoder ended the track (CMAF body end, RTMP
    /// unpublish), else lost. The event keeps running either way.
    pub async fn close(self, clean: bool) {
        let fragments = self.doc.as_ref().map_or(0, |(doc, _)| doc.fragment_count());
        tracing::info!(event = %self.event.name, track = %self.track.key, protocol = self.protocol.as_str(), clean, fragments, "ingest track closed");
        // Drop stops it on the way out.
    }

    /// Fixes this connection's offset at its first fragment (see the module comment).
    async fn place(&mut self, received: &Received) -> Result<Placement, IngestError> {
        let storage = &self.event.storage;
        let folder = &self.event.folder;
        let event_path = live::event_doc_path(folder);
        let timescale = self.index.info.timescale;
        for _ in 0..UPDATE_ATTEMPTS {
            let Some((mut event, version)) = read_for_update::<EventDoc>(storage, &event_path).await? else {
                return Err(IngestError::Storage(format!("event '{}' lost its event document", self.event.name)));
            };
            if event.state == EventState::Stopped {
                return Err(stopped(&self.event));
            }
            // Fresh: an older connection of the track may have written since the open.
            self.doc = read_for_update(storage, &live::track_doc_path(folder, &self.track.key)).await?;
            let doc = self.doc.as_ref().map(|(doc, _)| doc);
            let now = now_ms();
            let duration_ms = ticks_to_ms_ceil(received.duration as i128, timescale);
            let Some(epoch) = event.epoch_ms else {
                // The first fragment of the event: it starts at event_start_ms and ends now.
                let ms = received.offset_to(self.event_start_ms, timescale);
                event.offset = TimelineOffset { ms, set_ms: now, generation: event.offset.generation + 1 };
                event.epoch_ms = Some(now.saturating_sub((duration_ms + self.event_start_ms).max(0) as u64));
                event.updated_ms = now;
                if try_update(storage, &event_path, &event, version).await? {
                    tracing::info!(event = %self.event.name, track = %self.track.key, "event timeline started");
                    return Ok(Placement { offset: Offset::new(ms, timescale), discontinuity: false });
                }
                continue;
            };
            let edge_ms = now as i64 - epoch as i64 - duration_ms;
            if let Some(placement) =
                existing_placement(received, doc, &event, edge_ms, timescale, self.protocol.resends())
            {
                return Ok(placement);
            }
            // A restarted (or jumped) encoder: continue after every track of the event, or at the
            // live edge when that is later.
            let end_ms = self.event_end_ms(&event.tracks).await?;
            let ms = received.offset_to(end_ms.max(edge_ms), timescale);
            event.offset = TimelineOffset { ms, set_ms: now, generation: event.offset.generation + 1 };
            event.updated_ms = now;
            if try_update(storage, &event_path, &event, version).await? {
                tracing::info!(event = %self.event.name, track = %self.track.key, offset_ms = ms, generation = event.offset.generation, "encoder timeline restarted: new event offset");
                return Ok(Placement { offset: Offset::new(ms, timescale), discontinuity: doc.is_some() });
            }
        }
        Err(contended(&self.event))
    }

    /// The end of the event's longest track, ms of event time.
    async fn event_end_ms(&self, keys: &[String]) -> Result<i64, IngestError> {
        let docs = self.track_docs(keys).await?;
        Ok(docs.iter().map(|d| ticks_to_ms_ceil(d.end() as i128, d.timescale)).max().unwrap_or(0))
    }

    async fn track_docs(&self, keys: &[String]) -> Result<Vec<TrackDoc>, IngestError> {
        let storage = &self.event.storage;
        let folder = &self.event.folder;
        let docs = futures::future::try_join_all(keys.iter().map(|key| live::read_track_doc(storage, folder, key)))
            .await
            .map_err(storage_error)?;
        Ok(docs.into_iter().flatten().map(|(doc, _)| doc).collect())
    }

    /// The document of a track arriving for the first time (its first fragment at hand), after
    /// storing its init object.
    async fn new_doc(&mut self, received: &Received, payload_bytes: u64) -> Result<TrackDoc, IngestError> {
        let info = &self.index.info;
        let init = cmaf::init_segment(
            &TrackIndex { info: info.clone(), samples: SampleTable::default(), sidecar: None },
            Flavor::Cmaf,
            true,
            None,
        );
        let init_name = live::init_path("", &self.track.key, &init);
        put(&self.event.storage, &live::join(&self.event.folder, &init_name), init, PutMode::Overwrite).await?;

        let event = live::read_event_doc(&self.event.storage, &self.event.folder).await.map_err(storage_error)?;
        let keys: Vec<String> = event
            .map(|(event, _)| event.tracks.into_iter().filter(|k| *k != self.track.key).collect())
            .unwrap_or_default();
        let taken: HashSet<(String, u64)> =
            self.track_docs(&keys).await?.into_iter().map(|d| (d.name, d.bitrate)).collect();
        let measured =
            (bitrate(payload_bytes, received.duration, info.timescale).saturating_add(500) / 1000).max(1) * 1000;
        let mut bitrate = self.track.declared_bitrate.filter(|&b| b > 0).unwrap_or(measured);
        // (name, bitrate) names the track in URLs: `QualityLevels({bitrate})/Fragments({name}=…)`.
        while taken.contains(&(self.track.name.clone(), bitrate)) {
            bitrate += 1;
        }
        let frame_rate = match info.kind {
            TrackKind::Video => self.index.frame_rate(),
            _ => None,
        };
        Ok(TrackDoc {
            key: self.track.key.clone(),
            name: self.track.name.clone(),
            bitrate,
            kind: info.kind,
            language: self.track.language.clone(),
            timescale: info.timescale,
            init: init_name,
            frame_rate,
            runs: Vec::new(),
            discontinuities: Vec::new(),
            bytes: 0,
            peak_bitrate: 0,
            updated_ms: 0,
            offset_ms: None,
        })
    }
}

impl Drop for TrackWriter {
    /// Ends this connection's claim on the track (a newer connection keeps its own).
    fn drop(&mut self) {
        // Under the registry's lock, as takeovers are: a newer connection is either not there
        // yet (the slot goes) or owns the slot already (it stays).
        let mut tracks = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if self.slot.owner.compare_exchange(self.connection, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            && tracks.get(&self.id).is_some_and(|slot| Arc::ptr_eq(slot, &self.slot))
        {
            tracks.remove(&self.id);
        }
    }
}

/// Sets the state of `event` in its event document (creating it), as `start`/`stop` do.
pub async fn set_state(event: &LiveEvent, state: EventState) -> Result<(), IngestError> {
    update_event(event, |doc| {
        doc.state = state;
        doc.stopped_ms = match state {
            EventState::Stopped => doc.stopped_ms.or(Some(now_ms())),
            EventState::Running => None,
        };
        Ok(())
    })
    .await?;
    tracing::info!(event = %event.name, state = ?state, "live event state set");
    Ok(())
}

/// Creates the event document when there is none (running), refuses a stopped event, and adds
/// `key` to its tracks.
async fn register_track(event: &LiveEvent, key: &str) -> Result<(), IngestError> {
    update_event(event, |doc| {
        if doc.state == EventState::Stopped {
            return Err(stopped(event));
        }
        if !doc.tracks.iter().any(|k| k == key) {
            doc.tracks.push(key.to_string());
        }
        Ok(())
    })
    .await
}

/// Applies `change` to the event document (a new running one when there is none, the live
/// event's settings always), writing it back conditionally until no other writer came between.
/// Nothing is written when nothing changed.
async fn update_event(
    event: &LiveEvent,
    change: impl Fn(&mut EventDoc) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let path = live::event_doc_path(&event.folder);
    for _ in 0..UPDATE_ATTEMPTS {
        let read = read_for_update::<EventDoc>(&event.storage, &path).await?;
        let (mut doc, version) = match read {
            Some((doc, version)) => (doc, Some(version)),
            None => (
                EventDoc {
                    event: event.name.clone(),
                    state: EventState::Running,
                    manifest_name: None,
                    epoch_ms: None,
                    dvr_window_secs: 0,
                    tracks: Vec::new(),
                    offset: TimelineOffset::default(),
                    updated_ms: 0,
                    stopped_ms: None,
                },
                None,
            ),
        };
        let before = doc.clone();
        doc.manifest_name.clone_from(&event.manifest_name);
        doc.dvr_window_secs = event.dvr_window_secs;
        change(&mut doc)?;
        let Some(version) = version else {
            doc.updated_ms = now_ms();
            match put(&event.storage, &path, json(&doc)?, PutMode::Create).await {
                Ok(_) => return Ok(()),
                Err(IngestError::Forbidden(_)) => continue,
                Err(e) => return Err(e),
            }
        };
        if doc == before {
            return Ok(());
        }
        doc.updated_ms = now_ms();
        if try_update(&event.storage, &path, &doc, version).await? {
            return Ok(());
        }
    }
    Err(contended(event))
}

/// Replaces the document at `path` if it is still `version`: false when another writer
/// changed it first.
async fn try_update<T: Serialize>(
    storage: &Storage,
    path: &str,
    doc: &T,
    version: UpdateVersion,
) -> Result<bool, IngestError> {
    match put(storage, path, json(doc)?, PutMode::Update(version)).await {
        Ok(_) => Ok(true),
        Err(IngestError::Forbidden(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes an object; a failed condition (`Create` of an existing object, `Update` of a changed
/// one) is [`IngestError::Forbidden`], the caller says whose; any other failure is storage's.
async fn put(storage: &Storage, path: &str, bytes: Bytes, mode: PutMode) -> Result<UpdateVersion, IngestError> {
    let location = object_path(path).map_err(storage_error)?;
    match storage.put(&location, bytes, mode).await {
        Ok(put) => Ok(UpdateVersion { e_tag: put.e_tag, version: put.version }),
        Err(
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::NotFound { .. },
        ) => Err(IngestError::Forbidden(format!("'{path}' changed under its writer"))),
        Err(e) => Err(IngestError::Storage(format!("writing '{path}': {e}"))),
    }
}

async fn read_for_update<T: for<'de> serde::Deserialize<'de>>(
    storage: &Storage,
    path: &str,
) -> Result<Option<(T, UpdateVersion)>, IngestError> {
    live::read_doc_for_update(storage, path).await.map_err(storage_error)
}

fn json<T: Serialize>(doc: &T) -> Result<Bytes, IngestError> {
    serde_json::to_vec(doc).map(Bytes::from).map_err(|e| IngestError::Storage(format!("live document: {e}")))
}

fn storage_error(e: crate::error::Error) -> IngestError {
    IngestError::Storage(e.to_string())
}

fn stopped(event: &LiveEvent) -> IngestError {
    IngestError::Forbidden(format!("live event '{}' is stopped", event.name))
}

fn contended(event: &LiveEvent) -> IngestError {
    IngestError::Storage(format!("event document of '{}' keeps changing under this writer", event.name))
}

/// Wall clock, Unix ms.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the writer needs to know of a received fragment, in encoder time (track ticks).
#[derive(Debug, Clone, Copy)]
struct Received {
    /// Decode time of the first sample.
    dts: u64,
    /// Earliest presentation time (decode + composition offset).
    ept: i64,
    /// Decode span: `end_dts - dts`.
    duration: u64,
}

impl Received {
    /// Checks what the fragment's writing relies on: consistent tables, samples inside the
    /// payload, a positive duration, and video starting on a sync sample.
    fn check(fragment: &IngestFragment, info: &TrackInfo) -> Result<Received, IngestError> {
        let s = &fragment.samples;
        s.validate().map_err(|e| IngestError::bad("samples", e))?;
        s.check_byte_ranges(fragment.payload.len() as u64).map_err(|e| IngestError::bad("samples", e))?;
        let Some(&dts) = s.dts.first() else {
            return Err(IngestError::bad("samples", "fragment has no samples"));
        };
        if info.kind == TrackKind::Video && !s.is_sync(0) {
            return Err(IngestError::bad("samples", "video fragment does not start with a sync sample"));
        }
        // Decode times name samples along the track (Common Encryption numbers them by it).
        if (0..s.len()).any(|i| s.duration(i) == 0) {
            return Err(IngestError::bad("samples", "fragment has a sample lasting no time"));
        }
        let duration = s.end_dts - dts;
        if duration > MAX_FRAGMENT_SECS * info.timescale as u64 {
            return Err(IngestError::bad(
                "samples",
                format!("fragment lasts {duration} ticks at {} Hz, over {MAX_FRAGMENT_SECS} s", info.timescale),
            ));
        }
        Ok(Received::of(s, dts))
    }

    /// The facts of validated, non-empty `samples` whose first decode time is `dts`.
    fn of(s: &SampleTable, dts: u64) -> Received {
        // validate() bounds decode times by MAX_DECODE_TIME (< i64::MAX / 2): no overflow.
        let ept = s.dts.iter().enumerate().map(|(i, &t)| t as i64 + s.cts_offset(i) as i64).min().unwrap_or(dts as i64);
        Received { dts, ept, duration: s.end_dts.saturating_sub(dts) }
    }

    /// The offset (ms) that starts it at event time `target_ms` or just after: its earliest
    /// decode or presentation time lands there, so siblings restarted at the same encoder time
    /// land there too, whatever their composition delays.
    fn offset_to(&self, target_ms: i64, timescale: u32) -> i64 {
        let start = self.ept.min(self.dts as i64);
        // Rounded up in ms, and ms to ticks rounds to nearest: never before `target_ms`.
        ticks_to_ms_ceil(ms_to_ticks_ceil(target_ms, timescale) as i128 - start as i128, timescale)
    }

    /// Its time in the event timeline with `offset` ticks (as [`TrackIndex::earliest_presentation`]
    /// will say it); `None` when it would start before the event or beyond the decode-time range.
    fn event_time(&self, offset: i64) -> Option<u64> {
        let dts = self.dts as i64 + offset;
        let end = dts.checked_add(self.duration as i64)?;
        (dts >= 0 && end as u64 <= MAX_DECODE_TIME).then(|| (self.ept + offset).max(0) as u64)
    }
}

/// The first sample at or after event time 0 with `offset` that can start a fragment (a sync
/// sample); `None` when there is none.
fn first_sample_in_event(samples: &SampleTable, offset: i64) -> Option<usize> {
    let at_start = samples.dts.partition_point(|&dts| (dts as i64).saturating_add(offset) < 0);
    (at_start..samples.len()).find(|&i| samples.is_sync(i))
}

/// Removes the first `n` samples (`n` at most the sample count).
fn drop_leading(samples: &mut SampleTable, n: usize) {
    samples.dts.drain(..n);
    samples.sizes.drain(..n);
    samples.offsets.drain(..n);
    if !samples.cts_offsets.is_empty() {
        samples.cts_offsets.drain(..n);
    }
    if let Some(sync) = &mut samples.sync_samples {
        sync.retain(|&i| i as usize >= n);
        sync.iter_mut().for_each(|i| *i -= n as u32);
    }
    samples.fragment_starts.clear();
}

/// Where a connection's first fragment (`received`) goes with an offset the track or the event
/// has already, if one fits (see the module comment); `edge_ms` is the event's live edge.
fn existing_placement(
    received: &Received,
    doc: Option<&TrackDoc>,
    event: &EventDoc,
    edge_ms: i64,
    timescale: u32,
    resends: bool,
) -> Option<Placement> {
    // A connection that continues the track seamlessly (a source that kept its clock across
    // the reconnect) keeps the offset the track had, whatever siblings did since.
    let own = doc.and_then(|d| d.offset_ms).filter(|&ms| ms != event.offset.ms).map(|ms| Offset::new(ms, timescale));
    if let Some(own) = own {
        let time = received.event_time(own.ticks);
        let fits = |t| {
            matches!(fit(doc, t, received.duration, resends), Fit::Resend | Fit::Forward { gap: false, overlap: false })
        };
        if time.is_some_and(fits) {
            return Some(Placement { offset: own, discontinuity: false });
        }
    }
    let current = Offset::new(event.offset.ms, timescale);
    let Some(time) = received.event_time(current.ticks) else {
        // A new track that began a little before the one that started the event (audio before
        // the first video keyframe): aligned with it, its samples before 0 dropped.
        let near_start = received.dts as i64 + current.ticks >= -ms_to_ticks(NEW_TRACK_BEFORE_START_MS, timescale);
        return (doc.is_none() && near_start).then_some(Placement { offset: current, discontinuity: false });
    };
    let fits = match fit(doc, time, received.duration, resends) {
        Fit::Resend => true,
        // A new track lands near the live edge, not minutes behind it.
        // A new connection does not cut into what the track has: its decode times could
        // repeat the stored ones.
        Fit::Forward { overlap: true, .. } => false,
        Fit::Forward { .. } => {
            doc.is_some() || ticks_to_ms_ceil(time as i128, timescale) >= edge_ms - NEW_TRACK_BEHIND_EDGE_MS
        }
        Fit::Backwards { .. } => false,
    };
    // Adopting an offset set since the track last stored a fragment: its encoder restarted
    // like the sibling that set it, so its timeline breaks here too.
    let discontinuity = doc.is_some_and(|d| event.offset.set_ms > d.updated_ms);
    fits.then_some(Placement { offset: current, discontinuity })
}

/// Moves decode times by `offset` ticks; false when one would fall outside 0..=MAX_DECODE_TIME.
fn shift(samples: &mut SampleTable, offset: i64) -> bool {
    let moved =
        |t: u64| (t as i64).checked_add(offset).and_then(|t| u64::try_from(t).ok()).filter(|&t| t <= MAX_DECODE_TIME);
    let Some(end) = moved(samples.end_dts) else { return false };
    for dts in &mut samples.dts {
        match moved(*dts) {
            Some(t) => *dts = t,
            None => return false,
        }
    }
    samples.end_dts = end;
    true
}

/// How a fragment at event `time` lasting `duration` fits the track stored so far.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    /// A fragment at this time is stored already.
    Resend,
    /// Before (or at) the last fragment stored.
    Backwards { last: u64 },
    /// After the last fragment; `gap`: so far after its end (over 1.5 fragment durations) that
    /// the timeline breaks; `overlap`: before its end (the last one is cut short).
    Forward { gap: bool, overlap: bool },
}

/// `resends`: whether the source's protocol resends fragments ([`Protocol::resends`]).
fn fit(doc: Option<&TrackDoc>, time: u64, duration: u64, resends: bool) -> Fit {
    let Some(doc) = doc else { return Fit::Forward { gap: false, overlap: false } };
    // A source resends what it was sending when its connection broke: one of the last
    // fragments. An old time is an encoder that restarted, not a resend.
    if resends && doc.contains(time) && time.saturating_add(RESENT_FRAGMENTS * duration) >= doc.end() {
        return Fit::Resend;
    }
    match doc.last_time() {
        Some(last) if time <= last => Fit::Backwards { last },
        _ => Fit::Forward {
            gap: time.saturating_sub(doc.end()).saturating_mul(2) > duration.saturating_mul(3),
            overlap: time < doc.end(),
        },
    }
}

/// Bits per second of `bytes` over `duration` ticks.
fn bitrate(bytes: u64, duration: u64, timescale: u32) -> u64 {
    let bps = (bytes as u128 * 8 * timescale as u128).checked_div(duration as u128).unwrap_or(0);
    bps.min(u64::MAX as u128) as u64
}

/// ms → ticks, rounded to the nearest tick.
fn ms_to_ticks(ms: i64, timescale: u32) -> i64 {
    let scaled = ms as i128 * timescale as i128;
    clamp_i64((scaled * 2 + 1000).div_euclid(2000))
}

/// ms → ticks, rounded up.
fn ms_to_ticks_ceil(ms: i64, timescale: u32) -> i64 {
    clamp_i64(div_ceil(ms as i128 * timescale as i128, 1000))
}

/// ticks → ms, rounded up.
fn ticks_to_ms_ceil(ticks: i128, timescale: u32) -> i64 {
    clamp_i64(div_ceil(ticks * 1000, timescale.max(1) as i128))
}

fn div_ceil(a: i128, b: i128) -> i128 {
    -(-a).div_euclid(b)
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mp4::reader::boxes;
    use crate::secret::Secret;
    use crate::source::index::fragmented::append_moof;
    use crate::source::index::progressive::MoovTrack;
    use crate::source::index::TrackInfo;

    const VIDEO_TIMESCALE: u32 = 90_000;
    /// 25 fps at 90 kHz, 2 s GOPs.
    const FRAME: u64 = 3600;
    const GOP: u64 = 50 * FRAME;
    /// AAC frames at 48 kHz: 94 of them ≈ 2.005 s.
    const AAC_FRAME: u64 = 1024;

    fn event(name: &str) -> Arc<LiveEvent> {
        let storage = Arc::new(Storage::new("m", Arc::new(object_store::memory::InMemory::new())));
        event_in(storage, name)
    }

    fn event_in(storage: Arc<Storage>, name: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            name: name.into(),
            access_token: Secret::new("token".into()),
            storage,
            folder: format!("live/{name}"),
            manifest_name: None,
            dvr_window_secs: 600,
        })
    }

    fn fixture_info(file: &str) -> TrackInfo {
        let path = format!("fixtures/ladder/{file}");
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        live::parse_init(&path, &bytes).unwrap().info
    }

    fn video(key: &str) -> IngestTrack {
        let mut info = fixture_info("video_150k.mp4");
        info.timescale = VIDEO_TIMESCALE;
        info.edit = Default::default();
        IngestTrack { key: key.into(), name: "video".into(), language: "und".into(), declared_bitrate: None, info }
    }

    fn audio(key: &str) -> IngestTrack {
        let info = fixture_info("audio_eng.mp4");
        assert_eq!(info.timescale, 48_000);
        IngestTrack {
            key: key.into(),
            name: "audio".into(),
            language: "eng".into(),
            declared_bitrate: Some(128_000),
            info,
        }
    }

    /// `n` samples of `duration` ticks from encoder time `start`, 100 + i bytes each (byte
    /// values from `seed`); video: sync first sample only, a 2-frame reorder delay.
    fn fragment(start: u64, n: usize, duration: u64, video: bool, seed: u8) -> IngestFragment {
        let sizes: Vec<u32> = (0..n as u32).map(|i| 100 + i).collect();
        let mut offsets = Vec::new();
        let mut payload = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            offsets.push(payload.len() as u64);
            payload.extend(std::iter::repeat_n(seed.wrapping_add(i as u8), size as usize));
        }
        let samples = SampleTable {
            dts: (0..n as u64).map(|i| start + i * duration).collect(),
            end_dts: start + n as u64 * duration,
            cts_offsets: if video { vec![2 * duration as i32; n] } else { Vec::new() },
            sizes,
            offsets,
            sync_samples: video.then(|| vec![0]),
            fragment_starts: Vec::new(),
        };
        IngestFragment { samples, payload: payload.into() }
    }

    fn gop(start: u64, seed: u8) -> IngestFragment {
        fragment(start, 50, FRAME, true, seed)
    }

    fn aac(start: u64, seed: u8) -> IngestFragment {
        fragment(start, 94, AAC_FRAME, false, seed)
    }

    async fn track_doc(event: &LiveEvent, key: &str) -> TrackDoc {
        live::read_track_doc(&event.storage, &event.folder, key).await.unwrap().unwrap().0
    }

    async fn event_doc(event: &LiveEvent) -> EventDoc {
        live::read_event_doc(&event.storage, &event.folder).await.unwrap().unwrap().0
    }

    fn times(doc: &TrackDoc) -> Vec<(u64, u64, bool)> {
        doc.timeline().segments.iter().map(|s| (s.time, s.duration, s.discontinuity)).collect()
    }

    /// A writer whose events start at time 0, so the expected times read plainly.
    fn writer() -> LiveWriter {
        LiveWriter::new(Arc::new(Metrics::new())).starting_events_at(0)
    }

    #[tokio::test]
    async fn a_sibling_that_began_before_the_first_stored_fragment_keeps_its_first_samples() {
        // RTMP: the AAC track's first frame is 21 ms after the first video keyframe, and its
        // fragment happens to be stored first. The video GOP starting 21 ms earlier is kept
        // whole, 21 ms before the event's first fragment.
        let event = event("ev");
        let writer = LiveWriter::new(Arc::new(Metrics::new()));
        let mut a = writer.open_track(&event, Protocol::Rtmp, audio("audio")).await.unwrap();
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("video")).await.unwrap();
        a.push(aac(1008, 0)).await.unwrap();
        v.push(gop(0, 0)).await.unwrap();
        let start = EVENT_START_MS as u64;
        assert_eq!(track_doc(&event, "audio").await.runs[0].t, start * 48);
        let video = track_doc(&event, "video").await;
        assert_eq!(video.runs, [live::Run { t: start * 90 - 1890 + 2 * FRAME, d: GOP, count: 1 }]);
        assert_eq!(video.bytes, (0..50u64).map(|i| 100 + i).sum::<u64>(), "every sample of the GOP");
    }

    #[tokio::test]
    async fn fragments_become_objects_and_a_live_asset() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        let mut a = writer.open_track(&event, Protocol::Cmaf, audio("audio")).await.unwrap();
        // The encoder's clock starts at 10 s: the event starts at 0.
        let (v0, a0) = (10 * VIDEO_TIMESCALE as u64, 10 * 48_000);
        for k in 0..3 {
            v.push(gop(v0 + k * GOP, k as u8)).await.unwrap();
            a.push(aac(a0 + k * 94 * AAC_FRAME, k as u8)).await.unwrap();
        }
        let doc = event_doc(&event).await;
        assert_eq!(doc.tracks, ["video", "audio"]);
        assert_eq!(doc.offset.ms, -10_000);
        assert_eq!(doc.state, EventState::Running);
        assert!(doc.epoch_ms.is_some_and(|e| e <= now_ms()));

        let vdoc = track_doc(&event, "video").await;
        // Times are earliest presentation times: the 2-frame reorder delay.
        assert_eq!(
            times(&vdoc),
            [(2 * FRAME, GOP, false), (2 * FRAME + GOP, GOP, false), (2 * FRAME + 2 * GOP, GOP, false)]
        );
        assert_eq!(vdoc.frame_rate, Some((25, 1)));
        let payload = (0..50u64).map(|i| 100 + i).sum::<u64>();
        assert_eq!(vdoc.bytes, 3 * payload);
        assert_eq!(vdoc.bitrate, ((payload * 8 / 2 + 500) / 1000) * 1000);
        let adoc = track_doc(&event, "audio").await;
        assert_eq!(adoc.bitrate, 128_000, "declared");
        assert_eq!(adoc.runs, [live::Run { t: 0, d: 94 * AAC_FRAME, count: 3 }]);
        for t in [2 * FRAME, 2 * FRAME + 2 * GOP] {
            event.storage.read_all(&live::fragment_path(&event.folder, "video", t)).await.unwrap();
        }

        let asset = live::load(&event.storage, &event.folder, "ev", &HashMap::new()).await.unwrap();
        let info = asset.live.unwrap();
        assert!(!info.ended);
        assert_eq!(info.dvr_window_secs, 600);
        let kind = |kind| asset.tracks.iter().find(|t| t.kind == kind).unwrap();
        let (audio, video) = (kind(TrackKind::Audio), kind(TrackKind::Video));
        assert_eq!(video.timeline.segments.iter().map(|s| s.time).collect::<Vec<_>>(), [7200, 187_200, 367_200]);
        assert_eq!(video.file_index.tracks[0].info.sample_entry, v.index.info.sample_entry);
        assert_eq!(audio.timeline.segments.len(), 3);
        v.close(true).await;
        a.close(true).await;
    }

    /// The stored fragment object read back as a player's demuxer would: its samples at event
    /// time, the payload bytes unchanged.
    #[tokio::test]
    async fn fragment_objects_parse_back_to_the_samples_at_event_time() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("v")).await.unwrap();
        v.push(gop(9000, 1)).await.unwrap();
        let sent = gop(9000 + GOP, 2);
        v.push(sent.clone()).await.unwrap();

        let doc = track_doc(&event, "v").await;
        let init_path = live::join(&event.folder, &doc.init);
        let init = event.storage.read_all(&init_path).await.unwrap();
        let mut track: MoovTrack = live::parse_init(&init_path, &init).unwrap();
        assert_eq!(track.info.track_id, 1);
        let time = 2 * FRAME + GOP;
        let object = event.storage.read_all(&live::fragment_path(&event.folder, "v", time)).await.unwrap();
        let kinds: Vec<_> = boxes(&object).map(|b| b.unwrap().kind).collect();
        assert_eq!(kinds, [*b"styp", *b"moof", *b"mdat"]);
        let moof_at = boxes(&object).take(1).map(|b| b.unwrap().bytes.len()).sum::<usize>();
        let moof = boxes(&object).nth(1).unwrap().unwrap();
        append_moof(moof.payload, moof_at as u64, object.len() as u64, std::slice::from_mut(&mut track)).unwrap();
        let got = &track.samples;
        let expected: Vec<u64> = (0..50).map(|i| GOP + i * FRAME).collect();
        assert_eq!(got.dts, expected, "event time: the first fragment started the event at 0");
        assert_eq!(got.sizes, sent.samples.sizes);
        assert_eq!(got.cts_offsets, sent.samples.cts_offsets);
        assert_eq!(got.sync_samples.as_deref(), Some(&[0][..]));
        let mdat = boxes(&object).nth(2).unwrap().unwrap();
        assert_eq!(mdat.payload, &sent.payload[..]);
        assert_eq!(&moof.payload[8..12], &[0, 0, 0, 0][..], "mfhd version/flags");
        assert_eq!(u32::from_be_bytes(moof.payload[12..16].try_into().unwrap()), 2, "second fragment of the track");
    }

    #[tokio::test]
    async fn a_restarted_encoder_continues_after_the_end_with_a_discontinuity() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("video")).await.unwrap();
        for k in 0..4 {
            v.push(gop(k * GOP, k as u8)).await.unwrap();
        }
        v.close(false).await;
        let before = event_doc(&event).await.offset;
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("video")).await.unwrap();
        v.push(gop(0, 9)).await.unwrap();
        v.push(gop(GOP, 10)).await.unwrap();
        let doc = track_doc(&event, "video").await;
        let t = times(&doc);
        assert_eq!(t.len(), 6);
        // After the end (8 s + the 80 ms reorder delay), the restart marked.
        let after = event_doc(&event).await.offset;
        assert_eq!(after.generation, before.generation + 1);
        assert_eq!(after.ms, 8080);
        assert_eq!(t[4], (2 * FRAME + 8080 * 90, GOP, true));
        assert_eq!(t[5], (2 * FRAME + 8080 * 90 + GOP, GOP, false));
        assert_eq!(t[3].1, GOP, "the fragment before keeps its duration");
    }

    #[tokio::test]
    async fn resent_fragments_are_skipped_and_time_going_back_is_refused() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        for k in 0..3 {
            v.push(gop(k * GOP, k as u8)).await.unwrap();
        }
        // A reconnect resends the interrupted fragment: skipped, then the stream continues.
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        v.push(gop(2 * GOP, 2)).await.unwrap();
        v.push(gop(3 * GOP, 3)).await.unwrap();
        let doc = track_doc(&event, "video").await;
        assert_eq!(doc.runs, [live::Run { t: 2 * FRAME, d: GOP, count: 4 }]);
        assert!(doc.discontinuities.is_empty());
        assert_eq!(event_doc(&event).await.offset.generation, 1, "no new offset");

        let e = v.push(gop(GOP + FRAME, 4)).await.unwrap_err();
        assert!(matches!(e, IngestError::BadMedia { reason: "time", .. }), "{e}");
        // Later than the last fragment, but decoding from before its end.
        let e = v.push(gop(4 * GOP - FRAME, 4)).await.unwrap_err();
        assert!(matches!(e, IngestError::BadMedia { reason: "time", .. }), "{e}");
        assert_eq!(track_doc(&event, "video").await, doc, "nothing stored");
    }

    #[tokio::test]
    async fn a_codec_change_on_a_track_is_refused() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        v.push(gop(0, 0)).await.unwrap();
        let mut other = video("video");
        other.info.sample_entry = fixture_info("video_600k.mp4").sample_entry;
        assert_ne!(other.info.sample_entry, v.index.info.sample_entry);
        let e = writer.open_track(&event, Protocol::Cmaf, other).await.err().unwrap();
        assert!(matches!(e, IngestError::BadMedia { reason: "codec_change", .. }), "{e}");
        let mut other = video("video");
        other.info.timescale = 12_800;
        let e = writer.open_track(&event, Protocol::Cmaf, other).await.err().unwrap();
        assert!(matches!(e, IngestError::BadMedia { reason: "codec_change", .. }), "{e}");
    }

    /// Video and audio tracks with 4 fragments each from encoder time 0; audio fragments end a
    /// little later than video ones (1024-sample frames).
    async fn eight_seconds_of_video_and_audio(
        event: &Arc<LiveEvent>,
        writer: &LiveWriter,
    ) -> (TrackWriter, TrackWriter) {
        let mut v = writer.open_track(event, Protocol::Rtmp, video("video")).await.unwrap();
        let mut a = writer.open_track(event, Protocol::Rtmp, audio("audio")).await.unwrap();
        for k in 0..4 {
            v.push(gop(k * GOP, 0)).await.unwrap();
            a.push(aac(k * 94 * AAC_FRAME, 0)).await.unwrap();
        }
        (v, a)
    }

    #[tokio::test]
    async fn tracks_stay_aligned_across_an_encoder_restart() {
        let (event, writer) = (event("ev"), writer());
        drop(eight_seconds_of_video_and_audio(&event, &writer).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // The encoder restarts at 0: the video track sets a new offset, audio adopts it.
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("video")).await.unwrap();
        let mut a = writer.open_track(&event, Protocol::Rtmp, audio("audio")).await.unwrap();
        v.push(gop(0, 1)).await.unwrap();
        a.push(aac(0, 1)).await.unwrap();
        let offset = event_doc(&event).await.offset;
        assert_eq!(offset.generation, 2, "one new offset for both");
        let (vdoc, adoc) = (track_doc(&event, "video").await, track_doc(&event, "audio").await);
        let (vt, at) = (times(&vdoc)[4], times(&adoc)[4]);
        assert!(vt.2 && at.2, "both marked");
        // Both continue from the same event ms, after the end of every track (video's, with its
        // 80 ms reorder delay).
        assert_eq!(offset.ms, 8080);
        assert_eq!(vt.0, 2 * FRAME + 8080 * 90);
        assert_eq!(at.0, 8080 * 48);
        assert!(at.0 >= adoc.runs[0].end());
    }

    /// Separate encoders: the audio one restarts (a new event offset), the video one only
    /// reconnects with its clock running on: video continues seamlessly on its own offset.
    #[tokio::test]
    async fn a_seamless_reconnect_keeps_the_tracks_offset() {
        let (event, writer) = (event("ev"), writer());
        let (v, a) = eight_seconds_of_video_and_audio(&event, &writer).await;
        drop(a);
        let mut a = writer.open_track(&event, Protocol::Cmaf, audio("audio")).await.unwrap();
        a.push(aac(0, 1)).await.unwrap();
        assert_eq!(event_doc(&event).await.offset.generation, 2);
        drop(v);
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        v.push(gop(4 * GOP, 1)).await.unwrap();
        let vdoc = track_doc(&event, "video").await;
        assert_eq!(vdoc.runs, [live::Run { t: 2 * FRAME, d: GOP, count: 5 }]);
        assert!(vdoc.discontinuities.is_empty());
        assert_eq!(vdoc.offset_ms, Some(0));
        assert_eq!(track_doc(&event, "audio").await.discontinuities.len(), 1);
    }

    /// Audio from encoder time 0, the first video keyframe 40 ms later, video's fragment first:
    /// audio stays aligned, its frames before the event's start dropped.
    #[tokio::test]
    async fn a_track_starting_before_the_event_is_trimmed_not_moved() {
        let (event, writer) = (event("ev"), writer());
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("video")).await.unwrap();
        let mut a = writer.open_track(&event, Protocol::Rtmp, audio("audio")).await.unwrap();
        v.push(gop(3600, 0)).await.unwrap();
        // Wholly before the start: skipped, nothing stored.
        a.push(fragment(0, 1, AAC_FRAME, false, 0)).await.unwrap();
        assert!(live::read_track_doc(&event.storage, &event.folder, "audio").await.unwrap().is_none());
        let sent = aac(AAC_FRAME, 0);
        a.push(sent.clone()).await.unwrap();
        a.push(aac(95 * AAC_FRAME, 1)).await.unwrap();
        assert_eq!(event_doc(&event).await.offset.generation, 1, "no new offset");
        let adoc = track_doc(&event, "audio").await;
        // 40 ms = 1920 ticks before: frames at -896 dropped, the first kept at 2048 - 1920.
        assert_eq!(
            adoc.runs,
            [
                live::Run { t: 128, d: 93 * AAC_FRAME, count: 1 },
                live::Run { t: 128 + 93 * AAC_FRAME, d: 94 * AAC_FRAME, count: 1 }
            ]
        );
        let kept: u64 = sent.samples.sizes[1..].iter().map(|&s| s as u64).sum::<u64>() + (100..194).sum::<u64>();
        assert_eq!(adoc.bytes, kept);
    }

    #[tokio::test]
    async fn a_stopped_event_refuses_ingest_and_start_reopens_it() {
        let event = event("ev");
        set_state(&event, EventState::Stopped).await.unwrap();
        let doc = event_doc(&event).await;
        assert_eq!(doc.state, EventState::Stopped);
        assert!(doc.stopped_ms.is_some());
        let writer = writer();
        let e = writer.open_track(&event, Protocol::Cmaf, video("video")).await.err().unwrap();
        assert!(matches!(e, IngestError::Forbidden(_)), "{e}");
        set_state(&event, EventState::Running).await.unwrap();
        let doc = event_doc(&event).await;
        assert_eq!((doc.state, doc.stopped_ms), (EventState::Running, None));
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        v.push(gop(0, 0)).await.unwrap();
        // Stopped while a connection is open: it learns at its next check, and its next
        // connection is refused.
        set_state(&event, EventState::Stopped).await.unwrap();
        v.push(gop(GOP, 1)).await.unwrap();
        v.state_checked = Instant::now().checked_sub(STATE_CHECK_INTERVAL).unwrap();
        let e = v.push(gop(2 * GOP, 2)).await.unwrap_err();
        assert!(matches!(e, IngestError::Forbidden(_)), "{e}");
        assert_eq!(track_doc(&event, "video").await.fragment_count(), 2, "not named after the stop");
        let e = writer.open_track(&event, Protocol::Cmaf, video("video")).await.err().unwrap();
        assert!(matches!(e, IngestError::Forbidden(_)), "{e}");
    }

    #[tokio::test]
    async fn a_newer_connection_supersedes_the_older_one() {
        let event = event("ev");
        let writer = writer();
        let mut old = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        old.push(gop(0, 0)).await.unwrap();
        let mut new = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        let e = old.push(gop(GOP, 1)).await.unwrap_err();
        assert!(matches!(e, IngestError::Forbidden(_)), "{e}");
        old.close(false).await;
        new.push(gop(GOP, 1)).await.unwrap();
        new.push(gop(2 * GOP, 2)).await.unwrap();
        assert_eq!(track_doc(&event, "video").await.fragment_count(), 3);

        // Another replica's connection took the track: this one learns it at its next write.
        let elsewhere = LiveWriter::new(Arc::new(Metrics::new()));
        let mut theirs = elsewhere.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        theirs.push(gop(3 * GOP, 3)).await.unwrap();
        let e = new.push(gop(3 * GOP + GOP, 4)).await.unwrap_err();
        assert!(matches!(e, IngestError::Forbidden(_)), "{e}");
    }

    #[tokio::test]
    async fn renditions_of_one_name_get_distinct_bitrates() {
        let event = event("ev");
        let writer = writer();
        let mut tracks = Vec::new();
        for key in ["video_a", "video_b"] {
            let mut track = video(key);
            track.declared_bitrate = Some(1_000_000);
            let mut t = writer.open_track(&event, Protocol::Rtmp, track).await.unwrap();
            t.push(gop(0, 0)).await.unwrap();
            tracks.push(t);
        }
        let (a, b) = (track_doc(&event, "video_a").await, track_doc(&event, "video_b").await);
        assert_eq!((a.bitrate, b.bitrate), (1_000_000, 1_000_001));
    }

    #[tokio::test]
    async fn malformed_fragments_are_refused() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        let mut outside = gop(0, 0);
        outside.payload = outside.payload.slice(..100);
        let mut unsorted = gop(0, 0);
        unsorted.samples.dts.swap(1, 2);
        let mut no_sync = gop(0, 0);
        no_sync.samples.sync_samples = Some(vec![1]);
        let mut empty = gop(0, 0);
        empty.samples = SampleTable::default();
        let mut short_tables = gop(0, 0);
        short_tables.samples.offsets.pop();
        let mut endless = gop(0, 0);
        endless.samples.end_dts += 61 * VIDEO_TIMESCALE as u64;
        let mut no_time = fragment(0, 1, 0, true, 0);
        no_time.samples.end_dts = 0;
        let mut same_time = gop(0, 0);
        same_time.samples.dts[2] = same_time.samples.dts[1];
        for bad in [outside, unsorted, no_sync, empty, short_tables, endless, no_time, same_time] {
            let e = v.push(bad).await.unwrap_err();
            assert!(matches!(e, IngestError::BadMedia { reason: "samples", .. }), "{e}");
        }
        assert!(live::read_track_doc(&event.storage, &event.folder, "video").await.unwrap().is_none());
        let e = writer.open_track(&event, Protocol::Cmaf, video("a/b")).await.err().unwrap();
        assert!(matches!(e, IngestError::BadMedia { .. }), "{e}");
    }

    /// Another process over the same disk (a restarted origin) continues the track: nothing
    /// acknowledged is lost, the resent fragment is skipped, conditional writes hold on disk.
    #[tokio::test]
    async fn a_restarted_process_continues_from_storage() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::local("disk", dir.path()).unwrap());
        let event = event_in(storage.clone(), "ev");
        let mut v = writer().open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        for k in 0..3 {
            v.push(gop(k * GOP, k as u8)).await.unwrap();
        }
        drop(v);
        let event = event_in(Arc::new(Storage::local("disk", dir.path()).unwrap()), "ev");
        let mut v = writer().open_track(&event, Protocol::Cmaf, video("video")).await.unwrap();
        v.push(gop(2 * GOP, 2)).await.unwrap();
        v.push(gop(3 * GOP, 3)).await.unwrap();
        // Dropped frames: a gap of more than 1.5 fragments breaks the timeline.
        v.push(gop(6 * GOP, 6)).await.unwrap();
        v.push(gop(7 * GOP, 7)).await.unwrap();
        let doc = track_doc(&event, "video").await;
        let t: Vec<_> = times(&doc).iter().map(|&(t, _, d)| ((t - 2 * FRAME) / GOP, d)).collect();
        assert_eq!(t, [(0, false), (1, false), (2, false), (3, false), (6, true), (7, false)]);
        assert_eq!(event_doc(&event).await.offset.generation, 1);
        let listed = storage.list_recursive("live/ev/video").await.unwrap();
        assert_eq!(listed.iter().filter(|m| m.location.as_ref().ends_with(".m4s")).count(), 6);
    }

    /// A track arriving while the event has run on for minutes, its encoder at time 0: placed
    /// at the live edge, not minutes in the past.
    #[tokio::test]
    async fn a_new_track_far_behind_the_live_edge_starts_at_the_edge() {
        let event = event("ev");
        let writer = writer();
        let mut v = writer.open_track(&event, Protocol::Rtmp, video("video")).await.unwrap();
        v.push(gop(0, 0)).await.unwrap();
        let path = live::event_doc_path(&event.folder);
        let (mut doc, version) = read_for_update::<EventDoc>(&event.storage, &path).await.unwrap().unwrap();
        doc.epoch_ms = Some(now_ms() - 120_000);
        assert!(try_update(&event.storage, &path, &doc, version).await.unwrap());
        let mut a = writer.open_track(&event, Protocol::Rtmp, audio("audio")).await.unwrap();
        a.push(aac(0, 0)).await.unwrap();
        let offset = event_doc(&event).await.offset;
        assert_eq!(offset.generation, 2);
        let edge_ms = 120_000 - 2006;
        assert!((edge_ms..edge_ms + 1000).contains(&offset.ms), "{}", offset.ms);
        let adoc = track_doc(&event, "audio").await;
        assert_eq!(adoc.runs[0].t, offset.ms as u64 * 48);
        assert!(adoc.discontinuities.is_empty(), "a first fragment breaks nothing");
    }

    #[test]
    fn fragments_fit_after_the_last_one() {
        let mut doc = track_doc_with(&[(0, 100), (100, 100)]);
        assert_eq!(fit(Some(&doc), 100, 100, true), Fit::Resend);
        assert_eq!(fit(Some(&doc), 100, 100, false), Fit::Backwards { last: 100 }, "RTMP never resends");
        assert_eq!(fit(Some(&doc), 50, 100, true), Fit::Backwards { last: 100 });
        assert_eq!(fit(Some(&doc), 100, 20, true), Fit::Backwards { last: 100 }, "too old for a resend");
        assert_eq!(fit(Some(&doc), 150, 100, true), Fit::Forward { gap: false, overlap: true });
        assert_eq!(fit(Some(&doc), 200, 100, true), Fit::Forward { gap: false, overlap: false });
        assert_eq!(fit(Some(&doc), 350, 100, true), Fit::Forward { gap: false, overlap: false });
        assert_eq!(fit(Some(&doc), 351, 100, true), Fit::Forward { gap: true, overlap: false });
        assert_eq!(fit(None, 5, 100, true), Fit::Forward { gap: false, overlap: false });
        // A fragment's decode span and the next one's time disagree: the timeline follows times.
        doc.end_last_at(196);
        doc.push(196, 100);
        assert_eq!(
            doc.runs,
            [
                live::Run { t: 0, d: 100, count: 1 },
                live::Run { t: 100, d: 96, count: 1 },
                live::Run { t: 196, d: 100, count: 1 }
            ]
        );
        doc.end_last_at(296);
        assert_eq!(doc.end(), 296);
    }

    fn track_doc_with(fragments: &[(u64, u64)]) -> TrackDoc {
        let mut doc = TrackDoc {
            key: "k".into(),
            name: "video".into(),
            bitrate: 1,
            kind: TrackKind::Video,
            language: "und".into(),
            timescale: 1000,
            init: String::new(),
            frame_rate: None,
            runs: Vec::new(),
            discontinuities: Vec::new(),
            bytes: 0,
            peak_bitrate: 0,
            updated_ms: 0,
            offset_ms: None,
        };
        for &(t, d) in fragments {
            doc.push(t, d);
        }
        doc
    }

    #[test]
    fn ms_and_ticks_round_as_the_timeline_needs() {
        assert_eq!(ms_to_ticks(-11, 600), -7);
        assert_eq!(ms_to_ticks(11, 44_100), 485);
        assert_eq!(ms_to_ticks_ceil(1, 44_100), 45);
        assert_eq!(ticks_to_ms_ceil(-485, 44_100), -10);
        assert_eq!(ticks_to_ms_ceil(1, 90_000), 1);
        assert_eq!(bitrate(1000, 0, 1000), 0);
    }
}
