//! Stores a live event's fragments: one object per fragment, then the track document naming
//! it; keeps every track of the event on one timeline across reconnects and replicas.

use std::sync::Arc;

use super::{IngestError, IngestFragment, IngestTrack, Protocol};
use crate::plan::live_event::LiveEvent;
use crate::serve::metrics::Metrics;
use crate::source::live::EventState;

/// The ingest side of this process: which tracks its connections feed.
pub struct LiveWriter {
    metrics: Arc<Metrics>,
}

/// One track fed by one ingest connection.
pub struct TrackWriter {}

impl LiveWriter {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        LiveWriter { metrics }
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
        let _ = (event, protocol, track, &self.metrics);
        unimplemented!("writer")
    }
}

impl TrackWriter {
    /// Stores one fragment; returns once its object and the track document naming it are
    /// written (the fragment is acknowledged: servable by every replica, survives a restart).
    pub async fn push(&mut self, fragment: IngestFragment) -> Result<(), IngestError> {
        let _ = fragment;
        unimplemented!("writer")
    }

    /// The connection ended: `clean` when the encoder ended the track (CMAF body end, RTMP
    /// unpublish), else lost. The event keeps running either way.
    pub async fn close(self, clean: bool) {
        let _ = clean;
    }
}

/// Sets the state of `event` in its event document (creating it), as `start`/`stop` do.
pub async fn set_state(event: &LiveEvent, state: EventState) -> Result<(), IngestError> {
    let _ = (event, state);
    unimplemented!("writer")
}
