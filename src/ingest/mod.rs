//! Live ingest: encoders push a live event's tracks (RTMP, or CMAF over HTTP per DASH-IF Live
//! Media Ingest interface 1); each completed fragment is stored in the event's asset folder as
//! its own object, then the track's document that names it ([`crate::source::live`]). From
//! there every replica serves the event through the same asset → plan → package path as VOD.
//!
//! Each protocol turns what arrives into [`IngestTrack`]s and [`IngestFragment`]s; the
//! [`writer`] owns the timeline (alignment across tracks, reconnects, duplicates) and storage.

pub mod cmaf;
pub mod flv;
pub mod rtmp;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::plan::live_event::LiveEvent;
use crate::serve::origin::Origin;
use crate::source::index::{SampleTable, TrackInfo};

/// What the ingest listeners share: the origin (its published catalog names the live events),
/// the writer, and the limits every connection is held to.
pub struct Ingest {
    pub origin: Arc<Origin>,
    pub writer: writer::LiveWriter,
    pub limits: IngestLimits,
}

/// Bounds on what one ingest connection may cost (config `[ingest]`).
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Open ingest connections (RTMP and HTTP together); more are refused at accept.
    pub max_connections: usize,
    /// Largest box (or RTMP message) accepted, and so the largest fragment held in memory.
    pub max_fragment_bytes: u64,
    /// A connection that sends nothing for this long is closed (its track stays live, waiting
    /// for a reconnect).
    pub idle_timeout: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits { max_connections: 1024, max_fragment_bytes: 64 << 20, idle_timeout: Duration::from_secs(10) }
    }
}

impl Ingest {
    /// The live event `name` as published now.
    pub fn event(&self, name: &str) -> Option<Arc<LiveEvent>> {
        self.origin.catalog().live_event(name).cloned()
    }

    /// The live event whose access token is `token`.
    pub fn event_by_token(&self, token: &str) -> Option<Arc<LiveEvent>> {
        self.origin.catalog().live_event_by_token(token).cloned()
    }

    /// Open ingest connections, RTMP and HTTP together (they share `max_connections`).
    pub fn open_connections(&self) -> i64 {
        let gauge = &self.origin.metrics.ingest_connections;
        [Protocol::Rtmp, Protocol::Cmaf].iter().map(|p| gauge.with_label_values(&[p.as_str()]).get()).sum()
    }
}

/// The ingest protocols, as metric labels say them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Cmaf,
}

impl Protocol {
    /// Whether a source of this protocol sends a fragment again after a broken connection:
    /// DASH-IF ingest sources resend the one they were sending; an RTMP encoder never resends,
    /// so a time already stored is an encoder that restarted.
    pub fn resends(self) -> bool {
        self == Protocol::Cmaf
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Cmaf => "cmaf",
        }
    }
}

/// One track as an ingest connection announces it.
#[derive(Debug, Clone)]
pub struct IngestTrack {
    /// The track's key inside the event, one path segment ([`crate::source::live::valid_track_key`]):
    /// the CMAF `Streams({name})` name, or the RTMP stream name and the kind (`{stream}_video`).
    /// The same key on a later connection continues the same track.
    pub key: String,
    /// `{trackName}` wanted in URLs (`video`, `audio`, the CMAF stream name…); the writer keeps
    /// (name, bitrate) unique within the event.
    pub name: String,
    /// ISO 639 code, "und" when unknown.
    pub language: String,
    /// The bitrate the encoder declares (CMAF `btrt`, RTMP `onMetaData` data rates), bits/s.
    pub declared_bitrate: Option<u64>,
    /// The track: the encoder's CMAF header parsed, or the sample entry built from RTMP sequence
    /// headers. Its `sample_entry` decides codec changes: another one on the same key is refused.
    pub info: TrackInfo,
}

/// One fragment of a track as received: whole samples, decode times in the encoder's timeline
/// (track timescale, `end_dts` just after the last sample), byte offsets into `payload`.
#[derive(Debug, Clone)]
pub struct IngestFragment {
    pub samples: SampleTable,
    pub payload: Bytes,
}

/// Why an ingest connection (or one request of it) is refused; each maps to the DASH-IF
/// ingest status for CMAF and closes the connection for RTMP.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// 403: wrong or missing token, a stopped event, a path we do not take.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such live event.
    #[error("not found: {0}")]
    NotFound(String),
    /// 415: a media type we do not take (several tracks in one stream, an unknown codec).
    #[error("unsupported media: {0}")]
    Unsupported(String),
    /// 412: a fragment before any (valid) CMAF header.
    #[error("no init segment: {0}")]
    NoInit(String),
    /// 400: malformed media, a box over the size limit, time going backwards within a
    /// connection, a codec change on a live track.
    #[error("bad media: {message}")]
    BadMedia { reason: &'static str, message: String },
    /// 503: storage failed; nothing was acknowledged.
    #[error("storage: {0}")]
    Storage(String),
}

impl IngestError {
    pub fn bad(reason: &'static str, message: impl Into<String>) -> Self {
        IngestError::BadMedia { reason, message: message.into() }
    }

    /// The HTTP status DASH-IF ingest gives this error.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::Forbidden(_) => 403,
            IngestError::NotFound(_) => 404,
            IngestError::Unsupported(_) => 415,
            IngestError::NoInit(_) => 412,
            IngestError::BadMedia { .. } => 400,
            IngestError::Storage(_) => 503,
        }
    }

    /// The `reason` label of `jit_ingest_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Forbidden(_) => "forbidden",
            IngestError::NotFound(_) => "not_found",
            IngestError::Unsupported(_) => "unsupported",
            IngestError::NoInit(_) => "no_init",
            IngestError::BadMedia { reason, .. } => reason,
            IngestError::Storage(_) => "storage",
        }
    }
}
