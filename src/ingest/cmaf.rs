//! CMAF ingest over HTTP (DASH-IF Live Media Ingest, interface 1): an encoder `POST`s (or
//! `PUT`s) one CMAF track per stream, as one long chunked body (`ftyp moov moof mdat …`, what
//! ffmpeg's mp4 muxer sends) or one request per segment on the same URL.
//!
//! URLs taken (`{name}` is the stream, which becomes the track key in the event):
//! - `/ingest/{event}/Streams({name})` and `/ingest/{event}/{anything}.isml/Streams({name})`,
//!   with the token in `Authorization: Bearer {token}`, as the password of HTTP basic auth, or
//!   in `?token={token}`;
//! - `/{token}/{anything}.isml/Streams({name})` (the AMS spelling: the path carries the token);
//! - DASH-IF "MPD first": after either prefix, a `….mpd` is taken and ignored (200), and a
//!   segment `…/{name}/{file}.m4s|.mp4|.cmfv|.cmfa|.cmft` feeds the track `{name}`: the path
//!   segment before the file (so a `SegmentTemplate` must put `$RepresentationID$` in a
//!   directory, e.g. `$RepresentationID$/$Number$.m4s`).
//!
//! The body is read as a stream of boxes over whatever chunks arrive, holding one box at a time
//! (at most `max_fragment_bytes`). `moov` (one fragmented track of a codec we package) opens
//! the track; each `moof`+`mdat` pair is pushed to the writer as soon as its last byte arrives;
//! `sidx`, `prft`, `emsg`, `free` and `skip` are skipped; `mfra` or a `styp`/`ftyp` with the
//! `lmsg` brand ends the track. Statuses as DASH-IF says: 200, 403 (token, path), 404 (event),
//! 412 (fragment before a header), 415 (media type), 400 (anything malformed), 503 (storage).
//! An encoder reads the answer only once its body is done, so an error also closes the
//! connection at once.
//!
//! A track stays open between requests that end cleanly without ending it (per-segment posts);
//! a long body that carried a header and fragments ends the track at its clean end. A body cut
//! short (reset, idle for `idle_timeout`) is a lost connection: the track waits for the encoder
//! to come back with its header.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::writer::TrackWriter;
use super::{Ingest, IngestError, IngestFragment, IngestTrack, Protocol};
use crate::media::mp4::reader::{boxes, find, BoxHeader, Cursor};
use crate::media::mp4::{fourcc_str, FourCC};
use crate::plan::live_event::LiveEvent;
use crate::serve::conn::until_stopped;
use crate::source::index::fragmented::append_moof;
use crate::source::index::progressive::{parse_moov, MoovTrack};
use crate::source::index::{CodecFamily, SampleTable, TrackKind};
use crate::source::live::valid_track_key;

const PROTOCOL: Protocol = Protocol::Cmaf;

/// Serves CMAF ingest on `listener` until `shutdown` resolves; then every open request ends
/// as a lost connection (its tracks wait for a reconnect, possibly to another process) and the
/// connections close.
pub async fn serve(listener: TcpListener, ingest: Arc<Ingest>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let (stop, stopped) = watch::channel(false);
    let shared = Arc::new(Shared { ingest, tracks: Mutex::default(), generations: AtomicU64::new(0), stopped });
    let idle = shared.ingest.limits.idle_timeout;
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header timeout also bounds the wait for the next request on a kept-alive connection.
    // An encoder may close its side right after its body's last byte without waiting for the
    // answer (ffmpeg does): half-close keeps hyper from dropping the request still storing it.
    builder.timer(TokioTimer::new()).header_read_timeout(idle).half_close(true);
    let mut connections = JoinSet::new();
    let mut sweep = tokio::time::interval(idle);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.open_connections() >= shared.ingest.limits.max_connections as i64 {
                        shared.count_error("connections");
                        tracing::warn!(peer = %peer, "CMAF ingest connection refused: too many open ingest connections");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    // Counted before the task starts, so a burst of connections sees the count.
                    shared.connections_gauge().inc();
                    let conn = builder.serve_connection(TokioIo::new(stream), service(&shared, peer));
                    connections.spawn(connection(conn, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "CMAF ingest accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = sweep.tick() => shared.close_idle_tracks(idle),
            _ = &mut shutdown => break,
        }
    }
    let _ = stop.send(true);
    // Requests end at their next chunk (or after the fragment they are storing); a connection
    // stuck in a write gets the idle timeout, no more.
    if tokio::time::timeout(idle, async { while connections.join_next().await.is_some() {} }).await.is_err() {
        connections.abort_all();
    }
    shared.close_idle_tracks(Duration::ZERO);
}

fn service(
    shared: &Arc<Shared>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Send {
    let shared = shared.clone();
    hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move {
            // In a task of its own, so that a connection going away cannot cancel a fragment
            // halfway through being stored: the request sees the body end and finishes.
            let request = tokio::spawn(async move { shared.request(req, peer).await });
            let response = request.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "CMAF ingest request failed");
                closing(answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
            });
            Ok::<_, Infallible>(response)
        }
    })
}

/// One connection until it closes or the listener stops; it leaves
/// `jit_ingest_connections{protocol="cmaf"}` then.
async fn connection<S>(
    conn: hyper::server::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, S>,
    shared: Arc<Shared>,
) where
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "CMAF ingest connection ended with an error");
            }
        }
        _ = until_stopped(shared.stopped.clone()) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    shared.connections_gauge().dec();
}

/// What the listener's connections share.
struct Shared {
    ingest: Arc<Ingest>,
    /// Tracks kept open between the requests of per-segment posting, by (event, stream).
    tracks: Mutex<HashMap<TrackId, Slot>>,
    generations: AtomicU64,
    stopped: watch::Receiver<bool>,
}

/// A track between requests. The generation changes whenever a header (re)opens the track, so
/// a request that was overtaken by a newer connection does not put back its stale state.
struct Slot {
    generation: u64,
    /// None while a request feeds the track.
    kept: Option<TrackState>,
    last_used: Instant,
}

/// A track being fed: its header and the writer storing its fragments.
struct TrackState {
    generation: u64,
    fragments: FragmentReader,
    writer: TrackWriter,
}

/// Reads the fragments of one track as its header describes them.
struct FragmentReader {
    track: MoovTrack,
    /// Decode time after the last fragment: where a fragment without `tfdt` starts.
    next_dts: u64,
}

/// (event name, stream name).
type TrackId = (String, String);

impl Shared {
    fn connections_gauge(&self) -> prometheus::IntGauge {
        self.ingest.origin.metrics.ingest_connections.with_label_values(&[PROTOCOL.as_str()])
    }

    fn open_connections(&self) -> i64 {
        // RTMP and HTTP ingest connections share `max_connections`.
        let gauge = &self.ingest.origin.metrics.ingest_connections;
        [Protocol::Rtmp, Protocol::Cmaf].iter().map(|p| gauge.with_label_values(&[p.as_str()]).get()).sum()
    }

    fn count_error(&self, reason: &str) {
        self.ingest.origin.metrics.ingest_errors.with_label_values(&[PROTOCOL.as_str(), reason]).inc();
    }

    /// Answers one request; an error closes the connection (the encoder may not read the
    /// answer before its body is done, so the close is what stops it).
    async fn request(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        match self.ingest_request(req).await {
            Ok(status) => answer(status, ""),
            Err(Refusal { event, stream, error }) => {
                self.count_error(error.reason());
                tracing::warn!(peer = %peer, event, stream, reason = error.reason(), error = %error, "CMAF ingest request failed");
                let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
                closing(answer(status, &error.to_string()))
            }
        }
    }

    async fn ingest_request(&self, req: Request<Incoming>) -> Result<StatusCode, Refusal> {
        let refuse = |error| Refusal { event: String::new(), stream: String::new(), error };
        if req.method() != Method::POST && req.method() != Method::PUT {
            return Err(refuse(IngestError::Forbidden(format!("{} is not an ingest method", req.method()))));
        }
        let (event, target) = self.route(req.uri().path(), req.headers(), req.uri().query()).map_err(refuse)?;
        let refuse = |stream: &str, error| Refusal { event: event.name.clone(), stream: stream.to_string(), error };
        let body = req.into_body();
        match target {
            Target::Manifest => {
                self.skip_body(body).await.map_err(|e| refuse("", e))?;
                Ok(StatusCode::OK)
            }
            Target::Track(key) => {
                self.feed(&event, &key, body).await.map_err(|e| refuse(&key, e))?;
                Ok(StatusCode::OK)
            }
        }
    }

    /// The event and what the URL names in it, the token checked.
    fn route(
        &self,
        path: &str,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(Arc<LiveEvent>, Target), IngestError> {
        let wrong_path = || IngestError::Forbidden("not an ingest path".into());
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| crate::plan::url::percent_decode(s).map_err(|_| wrong_path()))
            .collect::<Result<Vec<_>, _>>()?;
        let (event, rest) = match segments.as_slice() {
            [first, name, rest @ ..] if first == "ingest" => {
                let event =
                    self.ingest.event(name).ok_or_else(|| IngestError::NotFound(format!("live event '{name}'")))?;
                let token = presented_token(headers, query);
                if !token.is_some_and(|t| event.accepts_token(&t)) {
                    return Err(IngestError::Forbidden(format!("wrong or missing token for live event '{name}'")));
                }
                (event, rest)
            }
            [token, isml, ..] if isml.ends_with(".isml") => {
                let event = self
                    .ingest
                    .event_by_token(token)
                    .ok_or_else(|| IngestError::Forbidden("no live event has this token".into()))?;
                (event, &segments[1..])
            }
            _ => return Err(wrong_path()),
        };
        let rest = match rest {
            [isml, rest @ ..] if isml.ends_with(".isml") => rest,
            rest => rest,
        };
        let target = match rest {
            [.., file] if file.ends_with(".mpd") => Target::Manifest,
            [stream] => Target::Track(
                stream.strip_prefix("Streams(").and_then(|s| s.strip_suffix(')')).ok_or_else(wrong_path)?.to_string(),
            ),
            [.., stream, file] if is_segment_file(file) && !stream.ends_with(".isml") => {
                Target::Track(stream.to_string())
            }
            _ => return Err(wrong_path()),
        };
        if let Target::Track(key) = &target {
            if !valid_track_key(key) {
                return Err(IngestError::Forbidden(format!(
                    "stream name '{}' is not 1 to 64 of [A-Za-z0-9_.-]",
                    key.escape_default()
                )));
            }
        }
        Ok((event, target))
    }

    /// Reads and drops a body we take but do not use (a DASH-IF manifest), bounded like a box.
    async fn skip_body(&self, mut body: Incoming) -> Result<(), IngestError> {
        let limit = self.ingest.limits.max_fragment_bytes;
        let mut read = 0u64;
        loop {
            match self.next_chunk(&mut body).await {
                Ok(Some(chunk)) => {
                    read += chunk.len() as u64;
                    if read > limit {
                        return Err(IngestError::bad("too_large", format!("manifest over {limit} bytes")));
                    }
                }
                Ok(None) => return Ok(()),
                Err(why) => return Err(IngestError::bad(why, "manifest body cut short")),
            }
        }
    }

    /// The next data chunk of `body`; `Ok(None)` at its clean end; `Err(why)` when the
    /// connection is lost (reset or truncated body, idle for `idle_timeout`, shutdown).
    async fn next_chunk(&self, body: &mut Incoming) -> Result<Option<Bytes>, &'static str> {
        loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout(self.ingest.limits.idle_timeout, body.frame()) => frame,
                _ = until_stopped(self.stopped.clone()) => return Err("shutdown"),
            };
            match frame {
                Err(_) => return Err("idle"),
                Ok(None) => return Ok(None),
                Ok(Some(Err(_))) => return Err("lost"),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Feeds track `key` of `event` from one request body.
    async fn feed(&self, event: &Arc<LiveEvent>, key: &str, mut body: Incoming) -> Result<(), IngestError> {
        let id: TrackId = (event.name.clone(), key.to_string());
        let mut feed = Feed {
            shared: self,
            event,
            id: &id,
            current: self.take_kept(&id),
            moof: None,
            header_seen: false,
            fragments: 0,
            ended: false,
        };
        let mut stream = BoxStream::new(self.ingest.limits.max_fragment_bytes);
        loop {
            match self.next_chunk(&mut body).await {
                Ok(Some(chunk)) => {
                    stream.extend(&chunk);
                    let fed = async {
                        while let Some(b) = stream.next_box()? {
                            feed.on_box(b).await?;
                        }
                        Ok(())
                    };
                    if let Err(e) = fed.await {
                        feed.finish(After::Lose).await;
                        return Err(e);
                    }
                }
                Ok(None) => break,
                Err(why) => {
                    feed.finish(After::Lose).await;
                    return Err(IngestError::bad(why, "connection lost mid-body"));
                }
            }
        }
        if !stream.is_empty() || feed.moof.is_some() {
            feed.finish(After::Lose).await;
            return Err(IngestError::bad("truncated", "the body ended inside a fragment"));
        }
        // A whole track in one body, or an end marker, ends the track; a lone header or lone
        // segments are one of many requests (per-segment posting).
        let after = if feed.ended || (feed.header_seen && feed.fragments > 0) { After::End } else { After::Keep };
        feed.finish(after).await;
        Ok(())
    }

    /// The track state a previous request of `id` left open, if any.
    fn take_kept(&self, id: &TrackId) -> Option<TrackState> {
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        tracks.get_mut(id).and_then(|slot| slot.kept.take())
    }

    /// A new generation of track `id`, opened by a header: returns it, and the state it
    /// displaced (a kept track the caller closes).
    fn claim(&self, id: &TrackId) -> (u64, Option<TrackState>) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        let slot =
            tracks.entry(id.clone()).or_insert_with(|| Slot { generation, kept: None, last_used: Instant::now() });
        slot.generation = generation;
        (generation, slot.kept.take())
    }

    /// Keeps `state` for the next request of `id`; returns it when a newer connection owns the
    /// track (the caller closes it).
    fn keep(&self, id: &TrackId, state: TrackState) -> Option<TrackState> {
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        match tracks.get_mut(id) {
            Some(slot) if slot.generation == state.generation => {
                slot.kept = Some(state);
                slot.last_used = Instant::now();
                None
            }
            _ => Some(state),
        }
    }

    /// Forgets track `id` unless a newer connection owns it.
    fn forget(&self, id: &TrackId, generation: u64) {
        let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        if tracks.get(id).is_some_and(|slot| slot.generation == generation) {
            tracks.remove(id);
        }
    }

    /// Closes (as lost) the kept tracks that no request used for `idle`.
    fn close_idle_tracks(&self, idle: Duration) {
        let expired: Vec<TrackState> = {
            let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let ids: Vec<TrackId> = tracks
                .iter()
                .filter(|(_, slot)| slot.kept.is_some() && slot.last_used + idle <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| tracks.remove(id)).filter_map(|slot| slot.kept).collect()
        };
        if !expired.is_empty() {
            tokio::spawn(async move {
                for state in expired {
                    state.writer.close(false).await;
                }
            });
        }
    }
}

/// An error with what it concerned, for the log.
struct Refusal {
    event: String,
    stream: String,
    error: IngestError,
}

/// What an ingest URL names in its event.
enum Target {
    /// A track (its key).
    Track(String),
    /// A DASH-IF ingest manifest: taken, not used (the track headers say it all).
    Manifest,
}

fn is_segment_file(name: &str) -> bool {
    [".m4s", ".mp4", ".cmfv", ".cmfa", ".cmft"].iter().any(|ext| name.ends_with(ext))
}

/// The token a request presents: HTTP basic auth's password, a bearer token, or `?token=`.
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(password) = authorization.and_then(basic_password) {
        return Some(password);
    }
    crate::protect::token::token_from_request(authorization, query)
}

fn basic_password(header: &str) -> Option<String> {
    let (scheme, credentials) = header.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(credentials.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(_user, password)| password.to_string())
}

fn answer(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(text.as_bytes())));
    *response.status_mut() = status;
    if !text.is_empty() {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// `response` with the connection closed after it.
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// One request body feeding one track.
struct Feed<'a> {
    shared: &'a Shared,
    event: &'a Arc<LiveEvent>,
    id: &'a TrackId,
    /// The track fed: left open by an earlier request, or opened by a header in this body.
    current: Option<TrackState>,
    /// A `moof` waiting for its `mdat`.
    moof: Option<TopBox>,
    /// A header opened the track in this body.
    header_seen: bool,
    fragments: u64,
    /// The encoder said the track ends (`mfra`, `lmsg`).
    ended: bool,
}

impl Feed<'_> {
    async fn on_box(&mut self, b: TopBox) -> Result<(), IngestError> {
        if self.moof.is_some() && &b.kind != b"mdat" {
            return Err(IngestError::bad("box_order", format!("'{}' between a 'moof' and its 'mdat'", b.name())));
        }
        match &b.kind {
            b"ftyp" | b"styp" => self.ended |= has_brand(&b.payload(), b"lmsg"),
            b"moov" => self.on_header(b.payload()).await?,
            b"moof" if self.current.is_none() => return Err(IngestError::NoInit("'moof' before any 'moov'".into())),
            b"moof" => self.moof = Some(b),
            b"mdat" => match (self.moof.take(), self.current.as_mut()) {
                (_, None) => return Err(IngestError::NoInit("'mdat' before any 'moov'".into())),
                (None, Some(_)) => return Err(IngestError::bad("box_order", "'mdat' without a 'moof'")),
                (Some(moof), Some(state)) => {
                    let fragment = state.fragments.read(&moof, &b)?;
                    state.writer.push(fragment).await?;
                    self.fragments += 1;
                }
            },
            b"mfra" => self.ended = true,
            // sidx, prft, emsg, free, skip: nothing we store (BoxStream lets no other through).
            _ => {}
        }
        Ok(())
    }

    /// A CMAF header: the same again in this body changes nothing; otherwise it (re)opens the
    /// track, and the writer checks it continues what the track had.
    async fn on_header(&mut self, moov: Bytes) -> Result<(), IngestError> {
        let track = parse_header(&moov)?;
        if self.header_seen {
            return match &self.current {
                Some(state) if state.fragments.track.info.sample_entry == track.info.sample_entry => Ok(()),
                _ => Err(IngestError::bad("codec_change", "a different header in the same body")),
            };
        }
        self.header_seen = true;
        if let Some(previous) = self.current.take() {
            previous.writer.close(false).await;
        }
        let (generation, displaced) = self.shared.claim(self.id);
        if let Some(displaced) = displaced {
            displaced.writer.close(false).await;
        }
        let key = &self.id.1;
        let ingest_track = IngestTrack {
            key: key.clone(),
            name: key.clone(),
            language: track.info.language.clone(),
            declared_bitrate: declared_bitrate(&track.info.sample_entry, track.info.kind),
            info: track.info.clone(),
        };
        let writer = self.shared.ingest.writer.open_track(self.event, PROTOCOL, ingest_track).await;
        let writer = match writer {
            Ok(writer) => writer,
            Err(e) => {
                self.shared.forget(self.id, generation);
                return Err(e);
            }
        };
        self.current = Some(TrackState { generation, fragments: FragmentReader { track, next_dts: 0 }, writer });
        Ok(())
    }

    /// The body is over: `End` closes the track cleanly (the encoder ended it), `Keep` leaves
    /// it open for the next request of a per-segment encoder, `Lose` closes it as lost (the
    /// encoder must come back with its header).
    async fn finish(mut self, after: After) {
        let Some(state) = self.current.take() else { return };
        match after {
            After::Keep => {
                if let Some(stale) = self.shared.keep(self.id, state) {
                    stale.writer.close(false).await;
                }
            }
            After::End | After::Lose => {
                self.shared.forget(self.id, state.generation);
                state.writer.close(matches!(after, After::End)).await;
            }
        }
    }
}

/// What becomes of a track when a request body is over.
enum After {
    End,
    Keep,
    Lose,
}

impl FragmentReader {
    /// The samples of `moof` (one `traf` of our track) with their bytes in `mdat`.
    fn read(&mut self, moof: &TopBox, mdat: &TopBox) -> Result<IngestFragment, IngestError> {
        let malformed = |e: String| IngestError::bad("malformed", format!("fragment: {e}"));
        let moof_len = moof.bytes.len() as u64;
        let data_start = moof_len + mdat.header_len as u64;
        // Offsets come out relative to the moof's first byte (the mdat follows it).
        self.track.samples = SampleTable { end_dts: self.next_dts, ..SampleTable::default() };
        append_moof(&moof.payload(), 0, moof_len + mdat.bytes.len() as u64, std::slice::from_mut(&mut self.track))
            .map_err(|e| malformed(e.to_string()))?;
        let mut samples = std::mem::take(&mut self.track.samples);
        if samples.is_empty() {
            return Err(malformed(format!("no samples of track {}", self.track.info.track_id)));
        }
        for offset in &mut samples.offsets {
            *offset = offset.checked_sub(data_start).ok_or_else(|| malformed("a sample before the 'mdat'".into()))?;
        }
        let payload = mdat.payload();
        samples.validate().map_err(malformed)?;
        samples.check_byte_ranges(payload.len() as u64).map_err(malformed)?;
        self.next_dts = samples.end_dts;
        Ok(IngestFragment { samples, payload })
    }
}

/// Parses a CMAF header's `moov`: one fragmented track of a codec we package.
fn parse_header(moov: &Bytes) -> Result<MoovTrack, IngestError> {
    let traks = boxes(moov).filter(|b| b.as_ref().is_ok_and(|b| &b.kind == b"trak")).count();
    if traks != 1 {
        return Err(IngestError::Unsupported(format!("a header with {traks} tracks: a CMAF track has one")));
    }
    let parsed =
        parse_moov(moov, moov.len() as u64).map_err(|e| IngestError::bad("malformed", format!("moov: {e}")))?;
    if !parsed.fragmented {
        return Err(IngestError::Unsupported("a header without 'mvex': not fragmented".into()));
    }
    let Ok([track]) = <[MoovTrack; 1]>::try_from(parsed.tracks) else {
        return Err(IngestError::Unsupported("a track that is not video, audio or text".into()));
    };
    let entry_kind = boxes(&track.info.sample_entry).next().and_then(|b| b.ok()).map(|b| b.kind);
    let protected = matches!(entry_kind.as_ref(), Some(b"encv" | b"enca"));
    if track.info.codec.family == CodecFamily::Other || protected {
        return Err(IngestError::Unsupported(format!(
            "codec '{}'{}: not one we package",
            track.info.codec.sample_entry_type,
            if protected { " (encrypted)" } else { "" }
        )));
    }
    Ok(track)
}

/// The average (else maximum) bitrate of a sample entry's `btrt`.
fn declared_bitrate(sample_entry: &[u8], kind: TrackKind) -> Option<u64> {
    let entry = boxes(sample_entry).next()?.ok()?;
    // The fixed fields before the child boxes: visual 78 bytes; audio 28, plus 16 (v1) or 36
    // (v2) in QuickTime sound descriptions.
    let fixed = match kind {
        TrackKind::Video => 78,
        TrackKind::Audio => match entry.payload.get(8..10) {
            Some([0, 1]) => 44,
            Some([0, 2]) => 64,
            _ => 28,
        },
        _ => return None,
    };
    let btrt = find(entry.payload.get(fixed..)?, b"btrt").ok()??;
    let mut c = Cursor::new(btrt);
    c.skip(4).ok()?;
    let (max, avg) = (c.u32().ok()?, c.u32().ok()?);
    [avg, max].into_iter().find(|&b| b > 0).map(u64::from)
}

/// Whether an `ftyp`/`styp` payload names `brand` (major or compatible).
fn has_brand(payload: &[u8], brand: &FourCC) -> bool {
    payload.get(..4) == Some(brand) || payload.get(8..).is_some_and(|c| c.chunks_exact(4).any(|b| b == brand))
}

/// Boxes a CMAF ingest body may hold at its top level.
const TOP_LEVEL: [&FourCC; 11] =
    [b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"mfra", b"sidx", b"prft", b"emsg", b"free", b"skip"];

/// One whole top-level box of the body.
struct TopBox {
    kind: FourCC,
    header_len: usize,
    bytes: Bytes,
}

impl TopBox {
    fn payload(&self) -> Bytes {
        self.bytes.slice(self.header_len..)
    }
    fn name(&self) -> String {
        fourcc_str(&self.kind)
    }
}

/// Cuts a body arriving in arbitrary chunks into whole top-level boxes, holding at most one
/// box (and the chunk that completes it). A box is judged by its header, before its bytes are
/// waited for: a type that has no place here, a size over the limit or one running to the end
/// of the body is refused at once.
struct BoxStream {
    buf: BytesMut,
    max_box: u64,
}

impl BoxStream {
    fn new(max_box: u64) -> Self {
        BoxStream { buf: BytesMut::new(), max_box }
    }

    fn extend(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// No partial box held.
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole box, `Ok(None)` until its last byte has arrived.
    fn next_box(&mut self) -> Result<Option<TopBox>, IngestError> {
        let header = BoxHeader::parse(&self.buf).map_err(|e| IngestError::bad("malformed", e.to_string()))?;
        let Some(header) = header else { return Ok(None) };
        let name = fourcc_str(&header.kind);
        if !TOP_LEVEL.contains(&&header.kind) {
            return Err(IngestError::bad("box", format!("'{}' is not a CMAF ingest box", name.escape_default())));
        }
        let Some(size) = header.size else {
            return Err(IngestError::bad("box_size", format!("'{name}' runs to the end of the body")));
        };
        if size > self.max_box {
            return Err(IngestError::bad("too_large", format!("'{name}' of {size} bytes, over {}", self.max_box)));
        }
        if (self.buf.len() as u64) < size {
            return Ok(None);
        }
        // `size` ≤ max_box ≤ what was buffered, so it fits in usize.
        let bytes = self.buf.split_to(size as usize).freeze();
        Ok(Some(TopBox { kind: header.kind, header_len: header.header_len as usize, bytes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkbox(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// Feeds `body` in chunks of `chunk` bytes and collects the boxes (type, length).
    fn cut(body: &[u8], chunk: usize, max: u64) -> Result<Vec<(String, usize)>, IngestError> {
        let mut stream = BoxStream::new(max);
        let mut out = Vec::new();
        for part in body.chunks(chunk) {
            stream.extend(part);
            while let Some(b) = stream.next_box()? {
                out.push((b.name(), b.bytes.len()));
            }
        }
        assert!(stream.is_empty(), "bytes left over");
        Ok(out)
    }

    #[test]
    fn boxes_come_out_whole_whatever_the_chunks() {
        let mut body = mkbox(b"ftyp", b"iso6\0\0\0\0cmfc");
        body.extend(mkbox(b"moov", &[7; 300]));
        body.extend(mkbox(b"moof", &[1; 90]));
        // A 64-bit size.
        let mut large = 1u32.to_be_bytes().to_vec();
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(16u64 + 1000).to_be_bytes());
        large.extend_from_slice(&[9; 1000]);
        body.extend(&large);
        body.extend(mkbox(b"mfra", &[]));
        let expected = vec![
            ("ftyp".to_string(), 20),
            ("moov".to_string(), 308),
            ("moof".to_string(), 98),
            ("mdat".to_string(), 1016),
            ("mfra".to_string(), 8),
        ];
        for chunk in [1, 3, 7, 8, 16, 100, 4096] {
            assert_eq!(cut(&body, chunk, 1 << 20).unwrap(), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_box_over_the_limit_is_refused_from_its_header_alone() {
        // A 64-bit mdat claiming 4 GiB: refused once its 16 header bytes are in.
        let mut header = 1u32.to_be_bytes().to_vec();
        header.extend_from_slice(b"mdat");
        header.extend_from_slice(&(4u64 << 30).to_be_bytes());
        let mut stream = BoxStream::new(64 << 20);
        stream.extend(&header[..12]);
        assert!(stream.next_box().unwrap().is_none());
        stream.extend(&header[12..]);
        let e = stream.next_box().err().unwrap();
        assert_eq!((e.status(), e.reason()), (400, "too_large"));
        // A 32-bit size just over the limit.
        let e = cut(&mkbox(b"moov", &[0; 100]), 4096, 100).err().unwrap();
        assert_eq!(e.reason(), "too_large");
    }

    #[test]
    fn garbage_unknown_boxes_and_open_ended_boxes_are_refused() {
        let e = cut(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 4096, 1 << 20).err().unwrap();
        assert_eq!((e.status(), e.reason()), (400, "box"));
        let e = cut(&mkbox(b"abcd", &[0; 4]), 4096, 1 << 20).err().unwrap();
        assert_eq!(e.reason(), "box");
        let mut open_ended = 0u32.to_be_bytes().to_vec();
        open_ended.extend_from_slice(b"mdat");
        let e = cut(&open_ended, 4096, 1 << 20).err().unwrap();
        assert_eq!(e.reason(), "box_size");
        // A size smaller than the header.
        let e = cut(&[0, 0, 0, 4, b'm', b'o', b'o', b'f'], 4096, 1 << 20).err().unwrap();
        assert_eq!(e.reason(), "malformed");
    }

    #[test]
    fn brands_and_tokens() {
        assert!(has_brand(b"lmsg\0\0\0\0", b"lmsg"));
        assert!(has_brand(b"msdh\0\0\0\0msdhmsixlmsg", b"lmsg"));
        assert!(!has_brand(b"iso6\0\0\0\0cmfcmp41", b"lmsg"));
        assert!(!has_brand(b"is", b"lmsg"));

        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers, Some("a=1&token=q")).as_deref(), Some("q"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(presented_token(&headers, Some("token=q")).as_deref(), Some("b"));
        // user:pass
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert_eq!(presented_token(&headers, None).as_deref(), Some("pass"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(presented_token(&headers, None), None);
    }

    /// ffmpeg's mp4 options for a CMAF push.
    const CMAF_PUSH: &[&str] =
        &["-movflags", "+cmaf+dash+delay_moov+skip_sidx+skip_trailer+frag_custom", "-frag_duration", "2000000"];

    /// Encodes 5 s of testsrc2 (and a tone when `with_audio`) with ffmpeg as an mp4 with
    /// `mp4_options` (those of its CMAF push: [`CMAF_PUSH`]); returns the file's boxes.
    fn ffmpeg_mp4(with_audio: bool, mp4_options: &[&str]) -> Vec<TopBox> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.mp4");
        let mut cmd = std::process::Command::new(std::env::var_os("FFMPEG").unwrap_or_else(|| "ffmpeg".into()));
        cmd.args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25"]);
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "5"]);
        cmd.args(["-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac"]);
        cmd.args(["-map", "0:v"]).args(if with_audio { &["-map", "1:a"][..] } else { &[] });
        cmd.args(["-f", "mp4"]).args(mp4_options).arg(&out);
        let status = cmd.status().unwrap();
        assert!(status.success(), "ffmpeg failed");
        let body = std::fs::read(&out).unwrap();
        let mut stream = BoxStream::new(1 << 20);
        stream.extend(&body);
        std::iter::from_fn(|| stream.next_box().unwrap()).collect()
    }

    #[test]
    fn fragments_of_an_ffmpeg_push_read_back_whole() {
        let boxes = ffmpeg_mp4(false, CMAF_PUSH);
        let moov = boxes.iter().find(|b| &b.kind == b"moov").unwrap();
        let track = parse_header(&moov.payload()).unwrap();
        assert_eq!(track.info.codec.family, CodecFamily::Avc);
        let mut reader = FragmentReader { track, next_dts: 0 };
        let pairs: Vec<_> = boxes.iter().skip_while(|b| &b.kind != b"moof").collect();
        let mut counts = Vec::new();
        let mut next = 0;
        for pair in pairs.chunks(2) {
            let [moof, mdat] = pair else { panic!("moof without mdat") };
            let f = reader.read(moof, mdat).unwrap();
            // Whole samples, back to back, covering the mdat's payload; times continue.
            assert_eq!(f.samples.dts[0], next);
            assert_eq!(f.samples.offsets[0], 0);
            assert_eq!(f.samples.byte_count(0..f.samples.len()), f.payload.len() as u64);
            assert!(f.samples.is_sync(0));
            next = f.samples.end_dts;
            counts.push(f.samples.len());
        }
        assert_eq!(counts, [50, 50, 25]);
        assert_eq!(reader.next_dts, next);
        // A moof whose trun points past its mdat is refused, not read out of bounds.
        let [moof, mdat] = [pairs[0], pairs[1]];
        let short = TopBox { kind: *b"mdat", header_len: 8, bytes: mdat.bytes.slice(..mdat.bytes.len() / 2) };
        let e = reader.read(moof, &short).err().unwrap();
        assert_eq!((e.status(), e.reason()), (400, "malformed"));
    }

    #[test]
    fn headers_we_do_not_package_are_refused() {
        // Video and audio in one header: not a CMAF track.
        let boxes = ffmpeg_mp4(true, CMAF_PUSH);
        let moov = boxes.iter().find(|b| &b.kind == b"moov").unwrap();
        let e = parse_header(&moov.payload()).err().unwrap();
        assert_eq!(e.status(), 415, "{e}");
        // Not fragmented: a progressive file's moov.
        let boxes = ffmpeg_mp4(false, &["-movflags", "+faststart"]);
        let moov = boxes.iter().find(|b| &b.kind == b"moov").unwrap();
        let e = parse_header(&moov.payload()).err().unwrap();
        assert_eq!(e.status(), 415, "{e}");
    }

    #[test]
    fn segment_files() {
        for name in ["1.m4s", "init.mp4", "0.cmfv", "0.cmfa", "x.cmft"] {
            assert!(is_segment_file(name), "{name}");
        }
        for name in ["Streams(video)", "a.mpd", "a.ts", "m4s"] {
            assert!(!is_segment_file(name), "{name}");
        }
    }
}
