//! Live events as players and CDNs see them, in-process over an in-memory storage account that
//! the live writer fills with the ladder fixture's video and English audio, fragment by
//! fragment (their GOPs and the audio aligned with them, pushed as an encoder would, again
//! and again at later times for longer events):
//!
//! * HLS media playlists slide (media sequence, program date time, discontinuity, no ENDLIST)
//!   and hold the DVR window; after the stop they list the whole archive as VOD;
//! * DASH is dynamic while running (availabilityStartTime, publishTime, timeShiftBufferDepth,
//!   UTCTiming, `$Time$` = the fragment times), static after;
//! * `presentationWindowDuration` and `liveBackoffDuration` narrow the window;
//! * a segment past the live edge is a 404 that caches for at most a second; `/time`;
//! * live manifests cache for half a segment and their ETag changes with every fragment; a
//!   reload reads only the event's documents, and the last good load answers while storage
//!   fails; a second origin over the same storage serves the same playlist;
//! * segments decode (ffmpeg) to the source's frames, clear and cenc (cbcs segments build);
//!   the archive decodes as TS and CMAF under AES-128, v3 segments muxing the audio;
//! * an encoder restart is a discontinuity, counted once it slid out of the window.

mod common;

use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use m3u8_rs::{MediaPlaylist, Playlist};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use reqwest::header;

use common::store::{CountingStore, Fault};
use common::{client, get, Got, TestServer, FIXTURES_STORAGE};
use jit_origin::config::Config;
use jit_origin::ingest::writer::{self, LiveWriter, TrackWriter};
use jit_origin::ingest::{IngestFragment, IngestTrack, Protocol};
use jit_origin::plan::live_event::LiveEvent;
use jit_origin::serve::origin::Origin;
use jit_origin::source::asset::{self, AssetSource, AssetTrack};
use jit_origin::source::index::SampleTable;
use jit_origin::source::live::EventState;
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;

const KID: &str = "0123456789abcdef0123456789abcdef";
const KEY: &str = "fedcba9876543210fedcba9876543210";
const CLEAR: &str = "/live-clear/ev.ism";
const CENC: &str = "/live-cenc/ev.ism";
const VIDEO_PLAYLIST: &str = "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8";

/// The ladder's 150k video and English audio, as one fragment per video GOP (audio cut with it).
struct Source {
    video: (IngestTrack, Vec<IngestFragment>),
    audio: (IngestTrack, Vec<IngestFragment>),
}

/// The samples of `track`'s segment `k`, their bytes copied out of `file`: an encoder's fragment.
fn fragment(track: &AssetTrack, file: &[u8], k: usize) -> IngestFragment {
    let seg = &track.timeline.segments[k];
    let s = &track.index().samples;
    let range = seg.samples();
    let mut payload = Vec::new();
    let mut offsets = Vec::new();
    for i in range.clone() {
        offsets.push(payload.len() as u64);
        let at = s.offsets[i] as usize;
        payload.extend_from_slice(&file[at..at + s.sizes[i] as usize]);
    }
    let end_dts = s.dts.get(range.end).copied().unwrap_or(s.end_dts);
    let samples = SampleTable {
        dts: s.dts[range.clone()].to_vec(),
        end_dts,
        cts_offsets: if s.cts_offsets.is_empty() { Vec::new() } else { s.cts_offsets[range.clone()].to_vec() },
        sizes: s.sizes[range.clone()].to_vec(),
        offsets,
        sync_samples: s
            .sync_samples
            .as_ref()
            .map(|_| range.clone().filter(|&i| s.is_sync(i)).map(|i| (i - range.start) as u32).collect()),
        fragment_starts: Vec::new(),
    };
    IngestFragment { samples, payload: Bytes::from(payload) }
}

async fn source() -> Source {
    let storage = Storage::local("fixtures", common::fixtures_dir()).expect("fixtures storage");
    let ladder = asset::load(&storage, &AssetSource::Ism("ladder/ladder.ism".into()), SegmentPolicy::default())
        .await
        .expect("ladder loads");
    let track = |name: &str, bitrate: u64| ladder.track(name, bitrate).expect("ladder track").clone();
    let (video, audio) = (track("video", 150_000), track("audio_eng", 128_000));
    let take = |t: &AssetTrack, name: &str, language: &str| {
        let file = std::fs::read(common::fixtures_dir().join(&t.file)).expect("fixture file");
        let mut info = t.index().info.clone();
        // Encoders push no edit lists.
        info.edit = Default::default();
        let ingest = IngestTrack {
            key: name.into(),
            name: name.into(),
            language: language.into(),
            declared_bitrate: Some(t.bitrate),
            info,
        };
        (ingest, (0..t.timeline.segments.len()).map(|k| fragment(t, &file, k)).collect())
    };
    Source { video: take(&video, "video", "und"), audio: take(&audio, "audio", "eng") }
}

/// `fragment` moved `by` ticks later (a later pass of the same media).
fn later(fragment: &IngestFragment, by: u64) -> IngestFragment {
    let mut f = fragment.clone();
    f.samples.dts.iter_mut().for_each(|d| *d += by);
    f.samples.end_dts += by;
    f
}

/// A live event "ev" in `live/ev` of an in-memory account, and the writers feeding its video
/// and audio.
struct Event {
    memory: Arc<InMemory>,
    event: Arc<LiveEvent>,
    writer: LiveWriter,
    video: TrackWriter,
    audio: TrackWriter,
    source: Source,
    /// Fragments pushed so far (per track), over every pass.
    pushed: usize,
    /// Where the encoder's clock started, seconds (a restarted encoder's is another).
    clock_start_secs: f64,
}

impl Event {
    async fn start(dvr_window_secs: u64) -> Event {
        let memory = Arc::new(InMemory::new());
        let storage = Arc::new(Storage::new(FIXTURES_STORAGE, memory.clone() as Arc<dyn ObjectStore>));
        let event = Arc::new(LiveEvent {
            name: "ev".into(),
            // The token's type is private to the crate; it deserializes from a string.
            access_token: serde_json::from_value(serde_json::json!("token")).expect("token"),
            storage,
            folder: "live/ev".into(),
            manifest_name: None,
            dvr_window_secs,
        });
        let metrics =
            Origin::with_storages(&Config::parse("listen = \"127.0.0.1:0\"", ".".into()).expect("config"), Vec::new())
                .expect("origin")
                .metrics;
        let writer = LiveWriter::new(metrics);
        let source = source().await;
        let video = writer.open_track(&event, Protocol::Cmaf, source.video.0.clone()).await.expect("video track");
        let audio = writer.open_track(&event, Protocol::Cmaf, source.audio.0.clone()).await.expect("audio track");
        Event { memory, event, writer, video, audio, source, pushed: 0, clock_start_secs: 0.0 }
    }

    /// Fragments per pass of the source.
    fn per_pass(&self) -> usize {
        self.source.video.1.len().min(self.source.audio.1.len())
    }

    /// Pushes the next `n` fragments of each track (passes after the first are later copies).
    async fn push(&mut self, n: usize) {
        let per_pass = self.per_pass();
        for _ in 0..n {
            let (pass, k) = (self.pushed / per_pass, self.pushed % per_pass);
            for (writer, (track, fragments)) in
                [(&mut self.video, &self.source.video), (&mut self.audio, &self.source.audio)]
            {
                // A pass lasts as long as the video's first `per_pass` fragments.
                let first = &fragments[0].samples;
                let pass_ticks = fragments[..per_pass].iter().map(|f| f.samples.end_dts).max().unwrap_or(0)
                    - first.dts.first().copied().unwrap_or(0);
                let start = (self.clock_start_secs * track.info.timescale as f64) as u64;
                writer.push(later(&fragments[k], start + pass as u64 * pass_ticks)).await.expect("fragment stored");
            }
            self.pushed += 1;
        }
    }

    /// The encoder's connections go on through `writer` (its clock running on).
    async fn continue_through(&mut self, writer: LiveWriter) {
        let (video, audio) = (&self.source.video.0, &self.source.audio.0);
        let new_video = writer.open_track(&self.event, Protocol::Cmaf, video.clone()).await.expect("video");
        let new_audio = writer.open_track(&self.event, Protocol::Cmaf, audio.clone()).await.expect("audio");
        std::mem::replace(&mut self.video, new_video).close(false).await;
        std::mem::replace(&mut self.audio, new_audio).close(false).await;
        self.writer = writer;
    }

    /// The encoder reconnects after a restart: new connections whose times begin again.
    async fn restart_encoder(&mut self) {
        let (video, audio) = (&self.source.video.0, &self.source.audio.0);
        let new_video = self.writer.open_track(&self.event, Protocol::Cmaf, video.clone()).await.expect("video");
        let new_audio = self.writer.open_track(&self.event, Protocol::Cmaf, audio.clone()).await.expect("audio");
        std::mem::replace(&mut self.video, new_video).close(false).await;
        std::mem::replace(&mut self.audio, new_audio).close(false).await;
        self.pushed = 0;
        // Not at a time already stored (that would be a resend).
        self.clock_start_secs = 0.5;
    }

    async fn stop(&self) {
        writer::set_state(&self.event, EventState::Stopped).await.expect("event stopped");
    }

    fn config(&self, filters: &str) -> Config {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n{}\
             [[locator]]\nid = \"live-clear\"\nstorage = \"{FIXTURES_STORAGE}\"\nasset = \"live/ev\"\npolicy = \"clear\"\n\
             [[locator]]\nid = \"live-cenc\"\nstorage = \"{FIXTURES_STORAGE}\"\nasset = \"live/ev\"\npolicy = \"multi-drm\"\n\
             keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n\
             [[locator]]\nid = \"live-aes\"\nstorage = \"{FIXTURES_STORAGE}\"\nasset = \"live/ev\"\npolicy = \"envelope\"\n\
             keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n{filters}",
            common::fixtures_storage_toml(),
        );
        Config::parse(&text, common::fixtures_dir()).expect("test config parses")
    }

    /// An origin process over the event's storage.
    fn origin(&self, filters: &str) -> TestServer {
        self.counted_origin(filters).0
    }

    /// An origin process over the event's storage, and the count of its storage requests.
    fn counted_origin(&self, filters: &str) -> (TestServer, Arc<CountingStore>) {
        let config = self.config(filters);
        let store = CountingStore::over(self.memory.clone());
        let storage = Arc::new(Storage::new(FIXTURES_STORAGE, store.clone() as Arc<dyn ObjectStore>));
        let origin = Origin::with_storages(&config, vec![storage]).expect("origin");
        (TestServer::serve(origin, config.http), store)
    }
}

fn media_playlist(got: &Got) -> MediaPlaylist {
    assert_eq!(got.status, 200, "{}: {}", got.what, String::from_utf8_lossy(&got.body));
    match m3u8_rs::parse_playlist_res(&got.body) {
        Ok(Playlist::MediaPlaylist(p)) => p,
        other => panic!("{}: not a media playlist: {other:?}", got.what),
    }
}

fn max_age(got: &Got) -> Option<u64> {
    got.header(header::CACHE_CONTROL)?.split(',').find_map(|d| d.trim().strip_prefix("max-age=")?.parse().ok())
}

/// Segment URIs of a media playlist at `playlist_url`, resolved.
fn segment_urls(playlist_url: &str, playlist: &MediaPlaylist) -> Vec<String> {
    let base = &playlist_url[..playlist_url.rfind('/').expect("slash") + 1];
    playlist.segments.iter().map(|s| format!("{base}{}", s.uri)).collect()
}

/// Seconds the playlist lists.
fn listed_secs(playlist: &MediaPlaylist) -> f64 {
    playlist.segments.iter().map(|s| s.duration as f64).sum()
}

#[tokio::test]
async fn hls_slides_with_the_dvr_window_and_ends_as_vod() {
    let mut ev = Event::start(60).await;
    ev.push(3).await;
    let origin = ev.origin("");
    let c = client();
    let url = origin.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}"));

    let first = get(&c, &url).await;
    let p = media_playlist(&first);
    assert!(!p.end_list, "a running event's playlist has no ENDLIST");
    assert_eq!(p.playlist_type, None);
    assert_eq!(p.media_sequence, 0);
    assert_eq!(p.segments.len(), 3);
    let pdt = p.segments[0].program_date_time.expect("EXT-X-PROGRAM-DATE-TIME on the first segment");
    let now = chrono::Utc::now();
    assert!((now - pdt.to_utc()).num_seconds().abs() < 60, "PDT {pdt} is not about now ({now})");
    let text = String::from_utf8_lossy(&first.body).into_owned();
    assert!(!text.contains("#EXT-X-PLAYLIST-TYPE"), "{text}");
    let max = max_age(&first).expect("max-age");
    assert!((1..=2).contains(&max), "live playlists cache for half a segment: {max}");
    assert!(first.header(header::LAST_MODIFIED).is_some());
    let etag = first.header(header::ETAG).expect("etag").to_string();

    // A segment past the live edge is not there yet: a 404 no CDN keeps.
    let next_time = {
        let last = p.segments.last().expect("segments").uri.clone();
        let doc = jit_origin::source::live::read_track_doc(&ev.event.storage, "live/ev", "video")
            .await
            .expect("track doc")
            .expect("track doc exists")
            .0;
        assert!(last.contains(&format!("video={}", doc.timeline().segments[2].time)), "{last}");
        doc.end()
    };
    let ahead = get(
        &c,
        &origin.url(&format!("{CLEAR}/QualityLevels(150000)/Fragments(video={next_time},format=m3u8-cmaf).m4s")),
    )
    .await;
    assert_eq!(ahead.status, 404);
    assert!(max_age(&ahead).is_some_and(|m| m <= 1), "{:?}", ahead.header(header::CACHE_CONTROL));
    let unknown = get(&c, &origin.url(&format!("{CLEAR}/QualityLevels(1)/Manifest(later,format=m3u8-cmaf)"))).await;
    assert_eq!(unknown.status, 404);
    assert!(max_age(&unknown).is_some_and(|m| m <= 1));

    // More fragments: the playlist grows within a second (half a segment), its ETag changes.
    ev.push(ev.per_pass() * 8).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let grown = get(&c, &url).await;
    assert_ne!(grown.header(header::ETAG), Some(etag.as_str()), "the ETag follows the fragments");
    let p = media_playlist(&grown);
    let total = ev.pushed as u64;
    let target = p.target_duration as f64;
    let secs = listed_secs(&p);
    assert!(secs <= 60.0 + target && secs >= 60.0 - target, "the window holds the DVR length: {secs} s");
    assert_eq!(p.media_sequence + p.segments.len() as u64, total, "the window ends at the newest fragment");
    assert!(p.media_sequence > 0, "the window slid");
    // A segment's mfhd sequence number is its number in the event, from 1.
    let first = get(&c, &segment_urls(&url, &p)[0]).await;
    let at = first.body.windows(4).position(|w| w == b"mfhd").expect("mfhd") + 8;
    let sequence = u32::from_be_bytes(first.body[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!(sequence as u64, p.media_sequence + 1);
    // The source repeated: a pass is not a discontinuity (its times continue).
    assert!(p.segments.iter().all(|s| !s.discontinuity));

    // Reloading a live asset reads its documents (the event's and one per track), no listing;
    // within half a segment the loaded asset answers.
    let (counted, store) = ev.counted_origin("");
    let counted_url = counted.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}"));
    assert_eq!(get(&c, &counted_url).await.status, 200);
    let (gets, lists) = (store.gets(), store.lists());
    assert_eq!(get(&c, &counted_url.replace("150000", "300000")).await.status, 404);
    assert_eq!((store.gets(), store.lists()), (gets, lists), "answered from the loaded asset");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(&c, &counted_url).await.status, 200);
    assert_eq!((store.gets() - gets, store.lists() - lists), (3, 0), "live.json and two track documents");
    // Storage failing: the last good load answers (stale), as for VOD.
    let served = get(&c, &counted_url).await;
    store.set_fault(Fault::Fails);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let stale = get(&c, &counted_url).await;
    assert_eq!((stale.status, &stale.body), (served.status, &served.body));
    store.set_fault(Fault::None);

    // The segment at the window's start is the one of that number on any replica.
    let second = ev.origin("");
    let other = get(&c, &second.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}"))).await;
    assert_eq!(other.body, grown.body, "a second origin over the same storage serves the same playlist");
    assert_eq!(other.header(header::ETAG), grown.header(header::ETAG));

    // Stopped: the whole archive, as VOD, with the VOD lifetime.
    ev.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ended = get(&c, &url).await;
    let p = media_playlist(&ended);
    assert!(p.end_list);
    assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert_eq!((p.media_sequence, p.segments.len() as u64), (0, total));
    assert!(max_age(&ended).is_some_and(|m| m > 60), "{:?}", ended.header(header::CACHE_CONTROL));
    // Start-over URLs stay the same: the archive's first segment is the event's first.
    let first_segment = &segment_urls(&url, &p)[0];
    let got = get(&c, first_segment).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
}

/// Start and empty elements of an XML document, in order: (name, attributes).
fn elements(xml: &str) -> Vec<(String, std::collections::HashMap<String, String>)> {
    use quick_xml::events::Event as XmlEvent;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed MPD") {
            XmlEvent::Start(e) | XmlEvent::Empty(e) => {
                let name = e.name().as_ref().to_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("attribute");
                        let value = a.normalized_value(quick_xml::XmlVersion::Explicit1_0).expect("value").into_owned();
                        (a.key.as_ref().to_owned(), value)
                    })
                    .collect();
                out.push((name, attrs));
            }
            XmlEvent::Eof => return out,
            _ => {}
        }
    }
}

/// The `$Time$` values of Representation `id`'s SegmentTimeline.
fn timeline_times(elements: &[(String, std::collections::HashMap<String, String>)], id: &str) -> Vec<u64> {
    let start = elements
        .iter()
        .position(|(n, a)| n == "Representation" && a.get("id").map(String::as_str) == Some(id))
        .unwrap_or_else(|| panic!("no Representation {id}"));
    let mut times = Vec::new();
    let mut next = 0u64;
    for (name, a) in &elements[start + 1..] {
        match name.as_str() {
            "Representation" => break,
            "S" => {
                let num = |k: &str| a.get(k).map(|v| v.parse::<u64>().expect("number"));
                let d = num("d").expect("S@d");
                next = num("t").unwrap_or(next);
                for _ in 0..=num("r").unwrap_or(0) {
                    times.push(next);
                    next += d;
                }
            }
            _ => {}
        }
    }
    times
}

/// Times in the URLs of a media playlist's segments (`Fragments(video={time},…)`).
fn playlist_times(playlist: &MediaPlaylist) -> Vec<u64> {
    playlist
        .segments
        .iter()
        .map(|s| {
            let after = s.uri.split_once("video=").expect("video segment URL").1;
            after.split(',').next().and_then(|t| t.parse().ok()).expect("segment time")
        })
        .collect()
}

#[tokio::test]
async fn dash_is_dynamic_while_running_and_static_after() {
    let mut ev = Event::start(60).await;
    ev.push(ev.per_pass() * 8).await;
    let origin = ev.origin("");
    let c = client();
    let mpd_url = origin.url(&format!("{CLEAR}/manifest(format=mpd-time-cmaf).mpd"));
    let got = get(&c, &mpd_url).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let text = String::from_utf8_lossy(&got.body).into_owned();
    let el = elements(&text);
    let mpd = &el.iter().find(|(n, _)| n == "MPD").expect("MPD").1;
    assert_eq!(mpd.get("type").map(String::as_str), Some("dynamic"), "{text}");
    assert!(!mpd.contains_key("mediaPresentationDuration"), "{text}");
    assert_eq!(mpd.get("timeShiftBufferDepth").map(String::as_str), Some("PT1M0.000S"));
    for attr in ["minimumUpdatePeriod", "suggestedPresentationDelay", "minBufferTime", "publishTime"] {
        assert!(mpd.contains_key(attr), "no {attr}: {text}");
    }
    let event = jit_origin::source::live::read_event_doc(&ev.event.storage, "live/ev")
        .await
        .expect("event doc")
        .expect("event doc exists")
        .0;
    let ast = chrono::DateTime::parse_from_rfc3339(mpd.get("availabilityStartTime").expect("AST")).expect("ISO 8601");
    assert_eq!(ast.timestamp_millis() as u64, event.epoch_ms.expect("epoch"), "AST = wall clock of event time 0");
    let period = &el.iter().find(|(n, _)| n == "Period").expect("Period").1;
    assert_eq!(period.get("start").map(String::as_str), Some("PT0S"));
    let utc = &el.iter().find(|(n, _)| n == "UTCTiming").expect("UTCTiming").1;
    assert_eq!(utc.get("schemeIdUri").map(String::as_str), Some("urn:mpeg:dash:utc:http-iso:2014"));
    assert_eq!(utc.get("value").map(String::as_str), Some("/time"));

    // $Time$ = the fragment times, the window the HLS playlist lists.
    let times = timeline_times(&el, "video-150000");
    let hls = media_playlist(&get(&c, &origin.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}"))).await);
    assert_eq!(times, playlist_times(&hls));
    let doc = jit_origin::source::live::read_track_doc(&ev.event.storage, "live/ev", "video")
        .await
        .expect("track doc")
        .expect("track doc exists")
        .0;
    let stored: Vec<u64> = doc.timeline().segments.iter().map(|s| s.time).collect();
    assert!(stored.ends_with(&times) && times.len() < stored.len(), "{times:?} is the newest of {stored:?}");
    let media = el
        .iter()
        .find(|(n, a)| n == "SegmentTemplate" && a.get("media").is_some_and(|m| m.contains("video=")))
        .expect("video SegmentTemplate");
    assert!(media.1["media"].contains("$Time$"));
    assert!(!media.1.contains_key("presentationTimeOffset") || media.1["presentationTimeOffset"] == "0");

    // The clock players synchronise with.
    let before = chrono::Utc::now();
    let time = get(&c, &origin.url("/time")).await;
    assert_eq!(time.status, 200);
    assert_eq!(time.header(header::CACHE_CONTROL), Some("no-store"));
    assert!(time.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_some());
    let text = String::from_utf8_lossy(&time.body).into_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(text.ends_with('Z') && text.contains('.'), "UTC with milliseconds: {text}");
    assert!((at.to_utc() - before).num_milliseconds().abs() < 5000, "{text} is not now ({before})");

    ev.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let text = String::from_utf8_lossy(&get(&c, &mpd_url).await.body).into_owned();
    let el = elements(&text);
    let mpd = &el.iter().find(|(n, _)| n == "MPD").expect("MPD").1;
    assert_eq!(mpd.get("type").map(String::as_str), Some("static"), "{text}");
    assert!(mpd.contains_key("mediaPresentationDuration"));
    assert!(!el.iter().any(|(n, _)| n == "UTCTiming"));
    assert_eq!(timeline_times(&el, "video-150000"), stored, "the whole archive");
}

#[tokio::test]
async fn presentation_window_and_live_backoff_narrow_the_window() {
    let mut ev = Event::start(600).await;
    ev.push(ev.per_pass() * 18).await;
    let filters = "[[filter]]\nname = \"last2min\"\n[filter.properties]\n\
                   presentationTimeRange = { presentationWindowDuration = 1200000000 }\n\
                   [[filter]]\nname = \"behind10s\"\n[filter.properties]\n\
                   presentationTimeRange = { liveBackoffDuration = 10, timescale = 1 }\n";
    let origin = ev.origin(filters);
    let c = client();
    let playlist = |filter: &str| {
        let filter = if filter.is_empty() { String::new() } else { format!(",filter={filter}") };
        origin.url(&format!("{CLEAR}/QualityLevels(150000)/Manifest(video,format=m3u8-cmaf{filter}).m3u8"))
    };
    let whole = media_playlist(&get(&c, &playlist("")).await);
    let secs = listed_secs(&whole);
    assert!(secs > 130.0, "the DVR window (600 s) holds all {secs} s");
    let end = |p: &MediaPlaylist| p.media_sequence + p.segments.len() as u64;

    let window = media_playlist(&get(&c, &playlist("last2min")).await);
    let secs = listed_secs(&window);
    let target = window.target_duration as f64;
    assert!((120.0 - target..=120.0 + target).contains(&secs), "presentationWindowDuration 120 s lists {secs} s");
    assert_eq!(end(&window), end(&whole), "up to the live edge");
    assert_eq!(playlist_times(&window)[..], playlist_times(&whole)[whole.segments.len() - window.segments.len()..]);

    let behind = media_playlist(&get(&c, &playlist("behind10s")).await);
    let hidden: f64 = whole.segments[behind.segments.len()..].iter().map(|s| s.duration as f64).sum();
    assert_eq!(behind.media_sequence, whole.media_sequence);
    assert!((10.0..10.0 + target).contains(&hidden), "liveBackoffDuration 10 s hides {hidden} s");

    let both = media_playlist(&get(&c, &playlist("last2min;behind10s")).await);
    assert_eq!(end(&both), end(&behind));
    assert!(listed_secs(&both) <= 120.0 + target);
}

/// The init segment and every segment `playlist_url` lists, each checked immutable.
async fn init_and_segments(c: &reqwest::Client, playlist_url: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let playlist = media_playlist(&get(c, playlist_url).await);
    let base = &playlist_url[..playlist_url.rfind('/').expect("slash") + 1];
    let map = playlist.segments[0].map.as_ref().expect("EXT-X-MAP");
    let mut bodies = Vec::new();
    for url in std::iter::once(format!("{base}{}", map.uri)).chain(segment_urls(playlist_url, &playlist)) {
        let got = get(c, &url).await;
        assert_eq!(got.status, 200, "{url}: {}", String::from_utf8_lossy(&got.body));
        assert!(got.header(header::CACHE_CONTROL).is_some_and(|v| v.contains("immutable")), "{url}");
        bodies.push(got.body);
    }
    let init = bodies.remove(0);
    (init, bodies)
}

/// `ffmpeg -f framemd5` of a clear track: its init segment followed by its segments.
async fn decoded(c: &reqwest::Client, playlist_url: &str) -> Vec<String> {
    let (init, segments) = init_and_segments(c, playlist_url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("track.mp4");
    std::fs::write(&file, [init, segments.concat()].concat()).expect("write segments");
    common::framemd5(&[], &file, "0:v:0").unwrap_or_else(|e| panic!("{e}"))
}

/// `ffmpeg -f framemd5` of a cenc video track decrypted with `key`: each segment (after the
/// init) decrypted to H.264 on its own (ffmpeg 5.1 decrypts a fragment's `senc` in a file of
/// one fragment reliably), the elementary streams joined, then decoded.
async fn decrypted(c: &reqwest::Client, playlist_url: &str, key: &str) -> Vec<String> {
    let (init, segments) = init_and_segments(c, playlist_url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut elementary = Vec::new();
    for (k, segment) in segments.iter().enumerate() {
        let file = dir.path().join(format!("seg{k}.mp4"));
        std::fs::write(&file, [&init[..], segment].concat()).expect("write segment");
        let mut cmd = Command::new(common::ffmpeg_bin());
        cmd.args(["-nostdin", "-hide_banner", "-v", "error", "-decryption_key", key, "-i"]).arg(&file);
        cmd.args(["-map", "0:v:0", "-c", "copy", "-f", "h264", "-"]);
        elementary.extend(common::run(&mut cmd).unwrap_or_else(|e| panic!("{e}")));
    }
    let file = dir.path().join("decrypted.h264");
    std::fs::write(&file, elementary).expect("write elementary stream");
    common::framemd5(&[], &file, "0:v:0").unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn segments_decode_to_the_source_frames_clear_and_cenc() {
    let mut ev = Event::start(600).await;
    ev.push(ev.per_pass()).await;
    let origin = ev.origin("");
    let c = client();
    let source = common::framemd5(&[], &common::fixtures_dir().join("ladder/video_150k.mp4"), "0:v:0")
        .unwrap_or_else(|e| panic!("{e}"));

    let clear = decoded(&c, &origin.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}"))).await;
    common::compare(&source, &clear).unwrap_or_else(|e| panic!("clear live segments:\n{e}"));

    let cenc_url =
        origin.url(&format!("{CENC}/QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,encryption=cenc).m3u8"));
    let blind = {
        let playlist = media_playlist(&get(&c, &cenc_url).await);
        let first = &segment_urls(&cenc_url, &playlist)[0];
        let clear_first = first.replace(CENC, CLEAR).replace(",encryption=cenc", "");
        let (a, b) = (get(&c, first).await, get(&c, &clear_first).await);
        assert_eq!((a.status, b.status), (reqwest::StatusCode::OK, reqwest::StatusCode::OK), "{first}");
        a.body != b.body
    };
    assert!(blind, "cenc segments are encrypted");
    let cenc = decrypted(&c, &cenc_url, KEY).await;
    common::compare(&source, &cenc).unwrap_or_else(|e| panic!("cenc live segments:\n{e}"));

    // cbcs too (ffmpeg 5.1 does not decrypt it; the cenc tests check our cbcs independently).
    let cbcs_url =
        origin.url(&format!("{CENC}/QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,encryption=cbcs-aapl).m3u8"));
    let (init, segments) = init_and_segments(&c, &cbcs_url).await;
    assert!(init.windows(4).any(|w| w == b"cbcs"), "a cbcs init segment");
    assert_eq!(segments.len(), ev.per_pass());

    // Deterministic: a second origin builds the same bytes (IVs included).
    let second = ev.origin("");
    let playlist = media_playlist(&get(&c, &cenc_url).await);
    let url = &segment_urls(&cenc_url, &playlist)[1];
    let other = url.replace(&origin.url(""), &second.url(""));
    let (a, b) = (get(&c, url).await, get(&c, &other).await);
    assert_eq!(a.body, b.body);
    assert_eq!(a.header(header::ETAG), b.header(header::ETAG));
}

#[tokio::test]
async fn an_encoder_restart_is_a_discontinuity_that_slides_out_of_the_window() {
    let mut ev = Event::start(60).await;
    ev.push(3).await;
    ev.restart_encoder().await;
    ev.push(2).await;
    let origin = ev.origin("");
    let c = client();
    let url = origin.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}"));
    let p = media_playlist(&get(&c, &url).await);
    let breaks: Vec<bool> = p.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(breaks, [false, false, false, true, false]);
    assert_eq!(p.discontinuity_sequence, 0);
    let (before, after) = (&p.segments[2], &p.segments[3]);
    assert!(before.program_date_time.is_none());
    let (first, restart) = (p.segments[0].program_date_time.expect("PDT"), after.program_date_time.expect("PDT"));
    assert!(restart > first, "the clock runs on after the restart: {first} then {restart}");
    let times = playlist_times(&p);
    assert!(times.windows(2).all(|w| w[0] < w[1]), "event time keeps going forward: {times:?}");
    let (dash_times, dash) = {
        let text = String::from_utf8_lossy(
            &get(&c, &origin.url(&format!("{CLEAR}/manifest(format=mpd-time-cmaf)"))).await.body,
        )
        .into_owned();
        (timeline_times(&elements(&text), "video-150000"), text)
    };
    assert_eq!(dash_times, times, "{dash}");

    // Once the window has slid past it, the discontinuity is counted, not listed.
    ev.push(ev.per_pass() * 8).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let p = media_playlist(&get(&c, &url).await);
    assert!(p.media_sequence > 3);
    assert_eq!(p.discontinuity_sequence, 1);
    assert!(p.segments.iter().all(|s| !s.discontinuity));
    assert!(p.segments[0].program_date_time.is_some());
}

#[tokio::test]
async fn the_archive_decodes_as_ts_with_aes_128_and_muxed_audio() {
    let mut ev = Event::start(600).await;
    ev.push(ev.per_pass()).await;
    ev.stop().await;
    let origin = ev.origin("");
    let source = common::framemd5(&[], &common::fixtures_dir().join("ladder/video_150k.mp4"), "0:v:0")
        .unwrap_or_else(|e| panic!("{e}"));
    let url = |format: &str| {
        origin
            .url(&format!("/live-aes/ev.ism/QualityLevels(150000)/Manifest(video,format={format},encryption=cbc).m3u8"))
    };
    let decode = |url: String, map: &'static str| {
        tokio::task::spawn_blocking(move || {
            common::framemd5(&[], std::path::Path::new(&url), map).unwrap_or_else(|e| panic!("{e}"))
        })
    };
    for format in ["m3u8-aapl", "m3u8-cmaf", "m3u8-aapl-v3"] {
        let ours = decode(url(format), "0:v:0").await.expect("decoder");
        common::compare(&source, &ours).unwrap_or_else(|e| panic!("{format} with AES-128:\n{e}"));
    }
    // HLS v3 segments carry the default audio: the audio fragment of the same time.
    let audio = decode(url("m3u8-aapl-v3"), "0:a:0").await.expect("decoder");
    let aac = 48_000.0 / 1024.0;
    let expected = (listed_secs(&media_playlist(&get(&client(), &url("m3u8-aapl-v3")).await)) * aac) as usize;
    assert!(audio.len().abs_diff(expected) < 10, "{} AAC frames muxed, about {expected} expected", audio.len());
}

#[tokio::test]
async fn the_ingesting_process_lists_a_fragment_as_soon_as_it_is_stored() {
    let mut ev = Event::start(60).await;
    ev.push(3).await;
    let config = ev.config("");
    let storage = Arc::new(Storage::new(FIXTURES_STORAGE, ev.memory.clone() as Arc<dyn ObjectStore>));
    let origin = Arc::new(Origin::with_storages(&config, vec![storage]).expect("origin"));
    // The encoder goes on through a writer that tells this origin, as `serve` wires them.
    let serving = origin.clone();
    let writer = LiveWriter::new(origin.metrics.clone())
        .notifying(Arc::new(move |storage: &str, folder: &str| serving.live_fragment_stored(storage, folder)));
    ev.continue_through(writer).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let service = jit_origin::serve::http::Service::new(origin, config.http.clone());
    let server = TestServer::serve_service(listener, service, &config.limits);
    let (c, url) = (client(), server.url(&format!("{CLEAR}/{VIDEO_PLAYLIST}")));
    assert_eq!(media_playlist(&get(&c, &url).await).segments.len(), 3);
    for listed in 4..=6 {
        ev.push(1).await;
        // At once: the cached load would otherwise be trusted for half a segment.
        assert_eq!(media_playlist(&get(&c, &url).await).segments.len(), listed);
    }
}

/// Smooth Streaming of a live event is a 400 with the reason, while it runs (its fragments
/// would need MS-SSTR's `tfrf` lookahead boxes, §2.2.4) and once it has ended (its timeline
/// records fragments by earliest presentation time, not by the decode time a chunk's `t` is).
#[tokio::test]
async fn smooth_is_refused_for_a_live_event_running_or_ended() {
    let mut ev = Event::start(600).await;
    ev.push(ev.per_pass()).await;
    let c = client();
    for running in [true, false] {
        if !running {
            ev.stop().await;
        }
        let origin = ev.origin("");
        for rest in ["manifest", "manifest(format=fmp4-v20)", "QualityLevels(150000)/Fragments(video=0)"] {
            let url = origin.url(&format!("{CLEAR}/{rest}"));
            let got = get(&c, &url).await;
            assert_eq!(got.status, 400, "{}", got.describe());
            assert!(got.text().contains("live event"), "the reason names the live event: {}", got.describe());
        }
    }
}
