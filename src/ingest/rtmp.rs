//! RTMP ingest: `rtmp://host:port/live/{access token}[/{stream}]`, what AMS/MK.IO pass-through
//! encoders, OBS and ffmpeg push.
//!
//! `scuffle-rtmp` runs the protocol (handshake, chunk stream, connect / createStream /
//! publish); each connection publishes one stream. The publish is checked before anything is
//! stored: the stream key's token names the live event, an unknown token ends the connection.
//! Media messages go through [`super::flv`] into fragments, and each track's fragments go to
//! its own task that stores them in order through the [`super::writer`], behind a short queue.
//! A full queue stops reading the connection (TCP pushes back on the encoder), so a burst — an
//! encoder flushing what it buffered during a network hiccup — is absorbed; a store that stays
//! behind for [`STORE_BEHIND_LIMIT`] closes the connection instead of buffering without bound.
//!
//! Multi-bitrate pass-through is several streams of one event (`live/{token}/720p`,
//! `live/{token}/1080p`, …; one connection each, `default` when the key names none), each
//! giving a video track `{stream}_video`. Players get one audio track per event: the audio of
//! the stream that published first (the one the event document already names after a restart
//! or on another replica), other streams' audio is ignored. Two streams publishing their first
//! audio at the same instant on two replicas can still both register one.
//!
//! Limits: the open connections of both ingest protocols together ([`super::IngestLimits`]),
//! `max_fragment_bytes` per message and per fragment, and a deadline from accept to publish.
//! A publisher silent for 2.5 s is dropped by scuffle-rtmp (a fixed read timeout), shorter
//! than `idle_timeout`; its tracks wait for a reconnect.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use scuffle_rtmp::error::RtmpError;
use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use scuffle_rtmp::ServerSession;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinSet;

use super::flv::{Output, StreamMuxer};
use super::writer::TrackWriter;
use super::{Ingest, IngestError, IngestFragment, Protocol};
use crate::media::TrackKind;
use crate::plan::live_event::LiveEvent;
use crate::source::live::{read_event_doc, valid_track_key};

/// From accept to a publish accepted.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(10);
/// Fragments of one track waiting for storage (a GOP each) before the connection is closed.
const TRACK_QUEUE: usize = 4;
/// How long a full queue may hold the connection's reading before the connection is closed.
const STORE_BEHIND_LIMIT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for connections to store their last fragments.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// The application name of the stream key.
const APP: &str = "live";
const DEFAULT_STREAM: &str = "default";

/// Accepts RTMP publishers until `shutdown`; then ends every connection (each stores what it
/// holds) and returns.
pub async fn serve(listener: TcpListener, ingest: Arc<Ingest>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let audio_owners = Arc::new(AudioOwners::default());
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "RTMP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = ConnectionSlot::take(&ingest) else {
            ingest.origin.metrics.ingest_errors.with_label_values(&[Protocol::Rtmp.as_str(), "connections"]).inc();
            tracing::warn!(%peer, max = ingest.limits.max_connections, "RTMP connection refused: ingest connection limit");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let connection = Connection::new(ingest.clone(), audio_owners.clone(), peer.to_string());
        connections.spawn(connection.run(socket, stopped.clone(), slot));
    }
    let _ = stop.send(true);
    if tokio::time::timeout(DRAIN_DEADLINE, async { while connections.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(open = connections.len(), "RTMP connections still storing at the drain deadline");
    }
}

/// One open ingest connection counted in `jit_ingest_connections{protocol="rtmp"}`, which with
/// the CMAF listener's count is held to `max_connections`.
struct ConnectionSlot(prometheus::IntGauge);

impl ConnectionSlot {
    fn take(ingest: &Ingest) -> Option<ConnectionSlot> {
        if ingest.open_connections() >= i64::try_from(ingest.limits.max_connections).unwrap_or(i64::MAX) {
            return None;
        }
        let gauge = ingest.origin.metrics.ingest_connections.with_label_values(&[Protocol::Rtmp.as_str()]);
        gauge.inc();
        Some(ConnectionSlot(gauge))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Which stream of each event carries the event's audio (see the module documentation).
#[derive(Default)]
struct AudioOwners(Mutex<HashMap<String, String>>);

impl AudioOwners {
    /// Whether `stream` of `event` is the one whose audio is taken.
    async fn takes_audio(&self, event: &LiveEvent, stream: &str) -> bool {
        // The event document names the audio track an earlier publish registered, on any
        // replica, before any restart; a failed read only loses that hint.
        let recorded = match read_event_doc(&event.storage, &event.folder).await {
            Ok(Some((doc, _))) => doc.tracks.iter().find_map(|key| key.strip_suffix("_audio")).map(str::to_string),
            _ => None,
        };
        let mut owners = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let owner = match recorded {
            Some(recorded) => {
                owners.insert(event.name.clone(), recorded.clone());
                recorded
            }
            None => owners.entry(event.name.clone()).or_insert_with(|| stream.to_string()).clone(),
        };
        owner == stream
    }
}

/// The token and stream name of a publish: the app and the publishing name joined (encoders
/// split `live/{token}/{stream}` differently), `?…` query parameters dropped.
fn stream_key(app: &str, name: &str) -> Option<(String, String)> {
    let path = format!("{app}/{name}");
    let path = path.split('?').next().unwrap_or_default();
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    if parts.next() != Some(APP) {
        return None;
    }
    let token = parts.next()?;
    let stream = parts.next().unwrap_or(DEFAULT_STREAM);
    if parts.next().is_some() {
        return None;
    }
    Some((token.to_string(), stream.to_string()))
}

/// The first error that ends a connection, from the session or from a track's task.
#[derive(Default)]
struct Failure {
    error: Mutex<Option<IngestError>>,
    notify: Notify,
}

impl Failure {
    fn set(&self, error: IngestError) {
        let mut slot = self.error.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        self.notify.notify_one();
    }

    fn take(&self) -> Option<IngestError> {
        self.error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    /// Resolves once an error was set.
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// What a track's task receives.
enum Feed {
    Fragment(IngestFragment),
    /// The encoder ended the stream (unpublish).
    End,
}

/// The publish a connection made.
struct Publication {
    event: Arc<LiveEvent>,
    stream: String,
    muxer: StreamMuxer,
    tracks: HashMap<TrackKind, mpsc::Sender<Feed>>,
}

/// How a session ended.
enum Ended {
    /// The encoder closed the connection.
    Closed,
    /// Nothing arrived for scuffle-rtmp's fixed read timeout (2.5 s).
    Silent,
    /// A protocol error.
    Protocol(String),
    /// No publish within [`PUBLISH_DEADLINE`].
    NoPublish,
    /// Our error (in [`Failure`]).
    Failed,
    /// The listener shuts down.
    Shutdown,
}

struct Connection {
    ingest: Arc<Ingest>,
    audio_owners: Arc<AudioOwners>,
    peer: String,
    /// The event and stream names once published, for the log.
    names: (String, String),
    /// Fired when a publish is accepted (ends the publish deadline).
    published: Option<oneshot::Sender<()>>,
    publication: Option<Publication>,
    failure: Arc<Failure>,
    tracks: JoinSet<()>,
}

impl Connection {
    fn new(ingest: Arc<Ingest>, audio_owners: Arc<AudioOwners>, peer: String) -> Self {
        Connection {
            ingest,
            audio_owners,
            peer,
            names: Default::default(),
            published: None,
            publication: None,
            failure: Arc::new(Failure::default()),
            tracks: JoinSet::new(),
        }
    }

    async fn run(mut self, mut socket: TcpStream, mut stopped: watch::Receiver<bool>, _slot: ConnectionSlot) {
        let (published, publish_seen) = oneshot::channel();
        self.published = Some(published);
        let failure = self.failure.clone();
        let ended = {
            // The socket outlives the session: it closes once the last fragments are stored,
            // so an encoder that waits for the close before reconnecting finds them there.
            let session = ServerSession::new(EofIsError(&mut socket), Session(&mut self)).run();
            tokio::select! {
                result = session => match result {
                    Ok(_) => Ended::Closed,
                    Err(RtmpError::Session(ServerSessionError::Timeout(_))) => Ended::Silent,
                    Err(e) if e.is_client_closed() => Ended::Closed,
                    Err(e) => Ended::Protocol(e.to_string()),
                },
                _ = publish_deadline(publish_seen) => Ended::NoPublish,
                _ = failure.wait() => Ended::Failed,
                _ = stopped.wait_for(|stop| *stop) => Ended::Shutdown,
            }
        };
        self.finish(ended).await;
        drop(socket);
    }

    /// After the session: an error is logged and counted and what was not stored is dropped;
    /// otherwise the samples since the last cut are stored as last fragments.
    async fn finish(mut self, ended: Ended) {
        if matches!(ended, Ended::Silent) {
            // Not the encoder's doing as far as it knows (a stalled network or encoder): what
            // arrived is stored as for a close, and the event waits for a reconnect.
            self.report(
                &IngestError::bad("idle", "nothing received for 2.5 s"),
                "RTMP publisher silent: connection closed",
            );
        }
        let error = self.failure.take().or(match ended {
            Ended::Protocol(message) => Some(IngestError::bad("rtmp", message)),
            Ended::NoPublish => Some(IngestError::bad("rtmp", format!("no publish within {PUBLISH_DEADLINE:?}"))),
            Ended::Closed | Ended::Failed | Ended::Shutdown | Ended::Silent => None,
        });
        match error {
            Some(error) => {
                self.report(&error, "RTMP ingest connection closed");
                // Dropping the queues ends each track's task once it has stored what it holds.
                self.publication = None;
            }
            None => {
                if let Some(mut publication) = self.publication.take() {
                    let mut out = Vec::new();
                    publication.muxer.finish(&mut out);
                    if let Err(error) = self.dispatch(&mut publication, out).await {
                        self.failure.set(error);
                    }
                }
            }
        }
        while self.tracks.join_next().await.is_some() {}
        if let Some(error) = self.failure.take() {
            self.report(&error, "RTMP ingest: last fragments not stored");
        }
    }

    /// Logs (the event and stream, never the token) and counts an error that ended the connection.
    fn report(&self, error: &IngestError, what: &str) {
        let metrics = &self.ingest.origin.metrics;
        metrics.ingest_errors.with_label_values(&[Protocol::Rtmp.as_str(), error.reason()]).inc();
        let (event, stream) = &self.names;
        tracing::warn!(peer = %self.peer, event, stream, reason = error.reason(), error = %error, "{what}");
    }

    fn publish(&mut self, app: &str, name: &str) -> Result<(Arc<LiveEvent>, String), IngestError> {
        if self.publication.is_some() {
            return Err(IngestError::Forbidden("one publish per connection".into()));
        }
        let (token, stream) = stream_key(app, name)
            .ok_or_else(|| IngestError::Forbidden(format!("the stream key must be {APP}/{{token}}[/{{stream}}]")))?;
        let event =
            self.ingest.event_by_token(&token).ok_or_else(|| IngestError::Forbidden("unknown stream key".into()))?;
        if !valid_track_key(&StreamMuxer::track_key(&stream, TrackKind::Video)) {
            return Err(IngestError::Forbidden(format!("stream name '{stream}': [A-Za-z0-9_.-], up to 58 bytes")));
        }
        Ok((event, stream))
    }

    /// Hands the muxer's output on: a new track is opened (here, in message order, so a
    /// connection's tracks are its own before a later connection of the same stream takes them
    /// over) and gets a task; fragments go to their track's task.
    async fn dispatch(&mut self, publication: &mut Publication, out: Vec<Output>) -> Result<(), IngestError> {
        for output in out {
            match output {
                Output::Track(track) => {
                    let kind = track.info.kind;
                    let writer = self.ingest.writer.open_track(&publication.event, Protocol::Rtmp, track).await?;
                    let (queue, feed) = mpsc::channel(TRACK_QUEUE);
                    publication.tracks.insert(kind, queue);
                    self.tracks.spawn(store_track(writer, feed, self.failure.clone()));
                }
                Output::Fragment(kind, fragment) => {
                    let Some(queue) = publication.tracks.get(&kind) else { continue };
                    match queue.send_timeout(Feed::Fragment(fragment), STORE_BEHIND_LIMIT).await {
                        Ok(()) => {}
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                            return Err(IngestError::Storage(format!(
                                "storage slower than real time: {TRACK_QUEUE} {} fragments waited {} s",
                                kind.as_str(),
                                STORE_BEHIND_LIMIT.as_secs()
                            )))
                        }
                        // The task ended with an error, which it set.
                        Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                            return Err(IngestError::Storage("track writer ended".into()))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_media(&mut self, data: SessionData) -> Result<(), IngestError> {
        let Some(mut publication) = self.publication.take() else { return Ok(()) };
        let mut out = Vec::new();
        let result = match data {
            SessionData::Video { timestamp, data } => check_size(data.len(), self.ingest.limits.max_fragment_bytes)
                .and_then(|()| publication.muxer.video(timestamp, data, &mut out)),
            SessionData::Audio { timestamp, data } => check_size(data.len(), self.ingest.limits.max_fragment_bytes)
                .and_then(|()| publication.muxer.audio(timestamp, data, &mut out)),
            SessionData::Amf0 { .. } => Ok(()),
        };
        let result = match result {
            Ok(()) => self.dispatch(&mut publication, out).await,
            Err(error) => Err(error),
        };
        self.publication = Some(publication);
        result
    }

    /// The encoder ended the stream: store the rest, then close its tracks cleanly.
    async fn on_unpublish(&mut self) -> Result<(), IngestError> {
        let Some(mut publication) = self.publication.take() else { return Ok(()) };
        let mut out = Vec::new();
        publication.muxer.finish(&mut out);
        self.dispatch(&mut publication, out).await?;
        for queue in publication.tracks.values() {
            // A closed queue: the task failed and set the error.
            let _ = queue.send(Feed::End).await;
        }
        tracing::info!(peer = %self.peer, event = %publication.event.name, stream = %publication.stream, "RTMP unpublish");
        Ok(())
    }
}

fn check_size(len: usize, max: u64) -> Result<(), IngestError> {
    if len as u64 > max {
        return Err(IngestError::bad("too_large", format!("RTMP message of {len} bytes (limit {max})")));
    }
    Ok(())
}

/// Resolves when no publish was accepted within [`PUBLISH_DEADLINE`].
async fn publish_deadline(publish_seen: oneshot::Receiver<()>) {
    if tokio::time::timeout(PUBLISH_DEADLINE, publish_seen).await.is_ok() {
        std::future::pending::<()>().await;
    }
}

/// Stores one track's fragments in order; the first error ends the connection.
async fn store_track(mut writer: TrackWriter, mut feed: mpsc::Receiver<Feed>, failure: Arc<Failure>) {
    let mut clean = false;
    while let Some(item) = feed.recv().await {
        match item {
            Feed::Fragment(fragment) => {
                if let Err(error) = writer.push(fragment).await {
                    failure.set(error);
                    break;
                }
            }
            Feed::End => {
                clean = true;
                break;
            }
        }
    }
    writer.close(clean).await;
}

/// The session's view of a [`Connection`]: scuffle-rtmp owns its handler for the session, this
/// lends it the connection so the connection can finish after the session ends.
struct Session<'a>(&'a mut Connection);

/// scuffle-rtmp's handler error has no variant for a refusal of our own: the reason is kept in
/// the connection's [`Failure`], and this only ends the session.
fn end_session(failure: &Failure, error: IngestError) -> ServerSessionError {
    failure.set(error);
    ServerSessionError::PublishBeforeConnect
}

impl SessionHandler for Session<'_> {
    async fn on_publish(&mut self, _stream_id: u32, app: &str, name: &str) -> Result<(), ServerSessionError> {
        let conn = &mut *self.0;
        let (event, stream) = conn.publish(app, name).map_err(|e| end_session(&conn.failure, e))?;
        let take_audio = conn.audio_owners.takes_audio(&event, &stream).await;
        tracing::info!(peer = %conn.peer, event = %event.name, stream = %stream, take_audio, "RTMP publish");
        conn.names = (event.name.clone(), stream.clone());
        let muxer = StreamMuxer::new(&stream, take_audio, conn.ingest.limits.max_fragment_bytes);
        conn.publication = Some(Publication { event, stream, muxer, tracks: HashMap::new() });
        if let Some(published) = conn.published.take() {
            let _ = published.send(());
        }
        Ok(())
    }

    async fn on_unpublish(&mut self, _stream_id: u32) -> Result<(), ServerSessionError> {
        let conn = &mut *self.0;
        conn.on_unpublish().await.map_err(|e| end_session(&conn.failure, e))
    }

    async fn on_data(&mut self, _stream_id: u32, data: SessionData) -> Result<(), ServerSessionError> {
        let conn = &mut *self.0;
        conn.on_media(data).await.map_err(|e| end_session(&conn.failure, e))
    }
}

/// scuffle-rtmp 0.2.3 reads the handshake in a loop that never checks for end of stream: a
/// client that sends part of C0/C1 and closes would spin a core forever. A read of 0 bytes into
/// a buffer with room becomes `UnexpectedEof`, which the session treats as the client closing.
struct EofIsError<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for EofIsError<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let had_room = buf.remaining() > 0;
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if had_room && buf.filled().len() == before => {
                Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EofIsError<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys() {
        let key = |app, name| stream_key(app, name);
        assert_eq!(key("live", "tok"), Some(("tok".into(), "default".into())));
        assert_eq!(key("live", "tok/720p"), Some(("tok".into(), "720p".into())));
        assert_eq!(key("live/tok", "720p"), Some(("tok".into(), "720p".into())));
        assert_eq!(key("live", "tok?x=1"), Some(("tok".into(), "default".into())));
        assert_eq!(key("other", "tok"), None);
        assert_eq!(key("live", ""), None);
        assert_eq!(key("live", "a/b/c"), None);
    }
}
