//! Live events end to end, with the real binary, ffmpeg as the encoder and ffmpeg as the
//! decoding oracle:
//!
//! * `rtmp_three_renditions_live_then_vod` and `cmaf_ingest_three_renditions_live_then_vod`:
//!   one ffmpeg encodes `testsrc2` + a tone into 3 H.264 renditions (closed 2 s GOPs, B-frames)
//!   and AAC, at real time (`-re`), for 30 s, and its `tee` muxer pushes them (3 RTMP streams of
//!   one event, or 4 CMAF ingest POSTs: one per track) and keeps the very same packets in an FLV
//!   reference per rendition. While it runs: the media playlists advance within the DVR window,
//!   a `liveBackoffDuration` filter keeps its playlists 6 s behind the edge, a second origin
//!   process over the same storage lists the same segments, DASH is dynamic. After the event is
//!   stopped (`jit-origin live-event stop`): ENDLIST on both origins, static DASH, and every
//!   rendition and the audio decode to the reference's frames from HLS (CMAF and TS) and from
//!   DASH (read from the second origin).
//! * `dvr_window_slides_alike_on_every_replica`: past the 60 s DVR window the playlists slide,
//!   segments keep their media sequence numbers, and a second origin, killed and started again
//!   meanwhile, lists the same window; the MPD's `timeShiftBufferDepth` is the window.
//! * `rtmp_encoder_reconnect_continues_the_event`: the encoder is killed (SIGKILL) mid-event and
//!   started again (its time starts at 0 again); the event continues after an
//!   `EXT-X-DISCONTINUITY`, nothing listed before is lost or duplicated, and the whole event is
//!   the first encode up to where it was cut, then all of the second (video decoded, audio
//!   compared packet by packet).
//! * `ingesting_origin_killed_loses_no_acknowledged_fragment`: the origin the encoder pushes to
//!   is killed with SIGKILL and started again, the encoder reconnects: every fragment the track
//!   documents named before the kill is still there, listed, and decodes.
//!
//! Environment: `JIT_ORIGIN_BIN`, `FFMPEG` as for the other tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::emulator::free_port;
use common::{bin, compare, ffmpeg_bin, framemd5, get_blocking, run, show_cmd, Got};

/// Frames per second of every encode, and its GOP (closed, 2 s).
const FPS: u32 = 25;
const GOP_FRAMES: u32 = 2 * FPS;
/// The DVR window of the events (the smallest AMS allows).
const DVR_WINDOW_SECS: f64 = 60.0;
/// The live edge backoff of the `backoff` filter (AMS `liveBackoffDuration`).
const BACKOFF_SECS: f64 = 6.0;

/// One video rendition of the encodes.
#[derive(Clone, Copy)]
struct Rendition {
    width: u32,
    height: u32,
    kbps: u32,
}

const LADDER: [Rendition; 3] = [
    Rendition { width: 320, height: 180, kbps: 300 },
    Rendition { width: 480, height: 270, kbps: 500 },
    Rendition { width: 640, height: 360, kbps: 800 },
];

/// A live event of the config: its name is also its folder's name (under `live/`) and so the
/// asset's name in URLs, its locator is `loc-{name}`.
struct Event {
    name: String,
}

impl Event {
    fn new(name: &str) -> Event {
        Event { name: name.to_string() }
    }
    fn token(&self) -> String {
        format!("{}-access-token-0123456789", self.name)
    }
    fn locator(&self) -> String {
        format!("loc-{}", self.name)
    }
    fn folder(&self) -> String {
        format!("live/{}", self.name)
    }
    /// `/{locator}/{name}.ism/{rest}`.
    fn path(&self, rest: &str) -> String {
        format!("/{}/{}.ism/{rest}", self.locator(), self.name)
    }
    fn toml(&self) -> String {
        format!(
            "[[live_event]]\nname = \"{name}\"\naccess_token = \"{token}\"\nstorage = \"live\"\nfolder = \"{folder}\"\n\
             dvr_window_secs = {DVR_WINDOW_SECS}\n\
             [[locator]]\nid = \"{locator}\"\nstorage = \"live\"\nasset = \"{folder}\"\npolicy = \"clear\"\n",
            name = self.name,
            token = self.token(),
            folder = self.folder(),
            locator = self.locator(),
        )
    }
}

/// The storage folder the origins share, and the folder for configs, logs and references;
/// kept when the test fails.
struct Bench {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("media")).expect("media folder");
        let root = dir.path().to_path_buf();
        Bench { dir: Some(dir), root }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    fn media(&self) -> PathBuf {
        self.path("media")
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take().filter(|_| std::thread::panicking()) {
            eprintln!("storage, configs, logs and references kept in {}", dir.keep().display());
        }
    }
}

/// Where encoders reach an origin that takes ingest.
#[derive(Clone, Copy)]
struct IngestPorts {
    rtmp: u16,
    cmaf: u16,
}

/// One `jit-origin serve` process; killed on drop.
struct Origin {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    base: String,
    ingest: Option<IngestPorts>,
}

impl Origin {
    /// Starts an origin named `name` over the bench's storage, serving `events`; with ingest
    /// listeners when `ingest`.
    fn start(bench: &Bench, name: &str, events: &[&Event], ingest: bool) -> Origin {
        let port = free_port();
        let ingest = ingest.then(|| IngestPorts { rtmp: free_port(), cmaf: free_port() });
        let mut text = format!("listen = \"127.0.0.1:{port}\"\n");
        if let Some(p) = ingest {
            text += &format!("[ingest]\nlisten = \"127.0.0.1:{}\"\nrtmp_listen = \"127.0.0.1:{}\"\n", p.cmaf, p.rtmp);
        }
        text += &format!("[[storage]]\nname = \"live\"\nurl = \"file://{}\"\n", bench.media().display());
        // Players kept 6 s behind the live edge (100 ns units).
        text += &format!(
            "[[filter]]\nname = \"backoff\"\n[filter.properties.presentationTimeRange]\n\
             liveBackoffDuration = {}\n",
            (BACKOFF_SECS * 1e7) as u64
        );
        for event in events {
            text += &event.toml();
        }
        let config = bench.path(&format!("{name}.toml"));
        std::fs::write(&config, text).expect("config");
        let log = bench.path(&format!("{name}.log"));
        let mut origin = Origin { child: None, config, log, base: format!("http://127.0.0.1:{port}"), ingest };
        origin.spawn();
        origin
    }

    /// Starts the process (again) with its config, and waits until it answers.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start jit-origin");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if get_status(&self.url("/healthz")) == Some(200) {
                return;
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().expect("child status"));
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the origin did not start ({exited:?}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: nothing is flushed, no connection is closed cleanly.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Got {
        get_blocking(&self.url(path))
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// `jit-origin live-event start|stop --config … NAME`.
    fn event_state(&self, event: &Event, action: &str) {
        run(Command::new(bin()).args(["live-event", action, "--config"]).arg(&self.config).arg(&event.name))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of a GET, None when nothing answered.
fn get_status(url: &str) -> Option<u16> {
    let url = url.to_string();
    common::emulator::block_on(async move {
        common::client().get(&url).timeout(Duration::from_secs(5)).send().await.ok().map(|r| r.status().as_u16())
    })
}

/// Where an encode goes.
enum Push<'a> {
    /// One RTMP stream per rendition (video + the audio): `rtmp://…/live/{token}/q{i}`.
    Rtmp { port: u16, event: &'a Event },
    /// One CMAF ingest POST per track: `Streams(video{i})` and `Streams(audio)`.
    Cmaf { port: u16, event: &'a Event },
}

/// The reference of rendition `i` (with the audio) of an encode whose references are `stem`.
fn reference_file(stem: &Path, i: usize) -> PathBuf {
    PathBuf::from(format!("{}-{i}.flv", stem.display()))
}

/// An ffmpeg encoding `renditions` + AAC at real time for `secs`, pushing them as `push` says
/// and writing the same packets to a reference per rendition ([`reference_file`]: FLV, each
/// packet written as it comes, so a killed encoder's references hold all it sent).
fn encoder(renditions: &[Rendition], secs: u32, push: &Push, references: &Path) -> Command {
    let n = renditions.len();
    let mut graph = format!("[0:v]split={n}");
    for i in 0..n {
        graph += &format!("[s{i}]");
    }
    for (i, r) in renditions.iter().enumerate() {
        graph += &format!(";[s{i}]scale={}:{}[v{i}]", r.width, r.height);
    }
    let mut cmd = Command::new(ffmpeg_bin());
    cmd.args(["-nostdin", "-hide_banner", "-v", "warning"])
        .args(["-re", "-f", "lavfi", "-i", &format!("testsrc2=size=640x360:rate={FPS}")])
        .args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-filter_complex", &graph]);
    for i in 0..n {
        cmd.args(["-map", &format!("[v{i}]")]);
    }
    cmd.args(["-map", "1:a"]);
    // superfast keeps B-frames (composition offsets); closed 2 s GOPs.
    cmd.args(["-c:v", "libx264", "-preset", "superfast", "-pix_fmt", "yuv420p"]).args([
        "-g",
        &GOP_FRAMES.to_string(),
        "-keyint_min",
        &GOP_FRAMES.to_string(),
        "-sc_threshold",
        "0",
    ]);
    for (i, r) in renditions.iter().enumerate() {
        cmd.args([format!("-b:v:{i}"), format!("{}k", r.kbps)]);
    }
    cmd.args(["-c:a", "aac", "-b:a", "96k", "-ar", "48000"]);
    // The tee muxer cannot ask the encoders for global headers itself.
    cmd.args(["-flags", "+global_header", "-f", "tee"]);
    let mut slaves: Vec<String> = (0..n)
        .map(|i| format!("[f=flv:flush_packets=1:select=\\'v:{i},a\\']{}", reference_file(references, i).display()))
        .collect();
    match push {
        Push::Rtmp { port, event } => {
            for i in 0..n {
                slaves.push(format!("[f=flv:select=\\'v:{i},a\\']rtmp://127.0.0.1:{port}/live/{}/q{i}", event.token()));
            }
        }
        Push::Cmaf { port, event } => {
            let options = format!(
                "f=mp4:movflags=+cmaf+dash+delay_moov+skip_sidx+skip_trailer+frag_custom:frag_duration=2000000:\
                 method=POST:chunked_post=1:headers=Authorization\\\\: Bearer {}",
                event.token()
            );
            let url = |stream: &str| format!("http://127.0.0.1:{port}/ingest/{}/Streams({stream})", event.name);
            for i in 0..n {
                slaves.push(format!("[{options}:select=\\'v:{i}\\']{}", url(&format!("video{i}"))));
            }
            slaves.push(format!("[{options}:select=\\'a\\']{}", url("audio")));
        }
    }
    cmd.arg(slaves.join("|"));
    cmd
}

/// A running encoder; killed on drop.
struct Encoder {
    child: Child,
    shown: String,
    log: PathBuf,
}

impl Encoder {
    fn spawn(mut cmd: Command, log: PathBuf) -> Encoder {
        let shown = show_cmd(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("encoder log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{shown}`: {e}"));
        Encoder { child, shown, log }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("encoder status").is_none()
    }

    /// Waits for the encode to finish; it must succeed.
    fn finish(&mut self, origin: &Origin) {
        let status = self.child.wait().expect("encoder");
        assert!(
            status.success(),
            "`{}` failed ({status}):\n{}\norigin log:\n{}",
            self.shown,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            origin.log()
        );
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A URL relative to the document it is in.
fn resolve(base: &str, uri: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(uri))
        .unwrap_or_else(|e| panic!("cannot resolve {uri:?} against {base}: {e}"))
        .to_string()
}

/// An attribute of an HLS tag line (`NAME=value` or `NAME="value"`).
fn hls_attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => &rest[..rest.find(',').unwrap_or(rest.len())],
    })
}

/// The renditions of a multivariant playlist: video media playlists by picture height, audio
/// media playlists.
#[derive(Debug)]
struct Multivariant {
    video: BTreeMap<u32, String>,
    audio: Vec<String>,
}

fn multivariant(url: &str, text: &str) -> Multivariant {
    let mut video = BTreeMap::new();
    let mut audio = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("#EXT-X-STREAM-INF:") {
            let uri = lines.next().unwrap_or_else(|| panic!("a variant without URI in\n{text}"));
            // Audio-only variants have no RESOLUTION.
            if let Some(height) = hls_attr(line, "RESOLUTION").and_then(|r| r.split('x').nth(1)?.parse().ok()) {
                video.entry(height).or_insert_with(|| resolve(url, uri.trim()));
            }
        } else if line.starts_with("#EXT-X-MEDIA:") && line.contains("TYPE=AUDIO") {
            if let Some(uri) = hls_attr(line, "URI") {
                let uri = resolve(url, uri);
                if !audio.contains(&uri) {
                    audio.push(uri);
                }
            }
        }
    }
    Multivariant { video, audio }
}

/// A media playlist as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
struct MediaPlaylist {
    sequence: u64,
    /// Segment URLs (absolute) with their durations.
    segments: Vec<(String, f64)>,
    /// Indexes of the segments an `EXT-X-DISCONTINUITY` comes before.
    discontinuities: Vec<usize>,
    ended: bool,
    program_date_time: bool,
}

impl MediaPlaylist {
    fn parse(url: &str, text: &str) -> MediaPlaylist {
        assert!(text.starts_with("#EXTM3U"), "{url} is not a playlist:\n{text}");
        let mut p = MediaPlaylist {
            sequence: 0,
            segments: Vec::new(),
            discontinuities: Vec::new(),
            ended: false,
            program_date_time: false,
        };
        let mut duration = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.sequence = n.parse().unwrap_or_else(|_| panic!("bad media sequence in {url}:\n{text}"));
            } else if let Some(d) = line.strip_prefix("#EXTINF:") {
                duration = d.split(',').next().and_then(|d| d.parse::<f64>().ok());
            } else if line == "#EXT-X-DISCONTINUITY" {
                p.discontinuities.push(p.segments.len());
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
                p.program_date_time = true;
            } else if !line.starts_with('#') {
                let d = duration.take().unwrap_or_else(|| panic!("a segment without EXTINF in {url}:\n{text}"));
                p.segments.push((resolve(url, line), d));
            }
        }
        p
    }

    fn get(url: &str) -> MediaPlaylist {
        MediaPlaylist::parse(url, &get_blocking(url).ok().text())
    }

    /// The playlist once it has `EXT-X-ENDLIST` (within 5 s).
    fn ended(url: &str) -> MediaPlaylist {
        eventually(&format!("ENDLIST in {url}"), Duration::from_secs(5), || {
            let p = MediaPlaylist::get(url);
            if p.ended {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        })
    }

    /// The media sequence and the segment paths on the server at `base`: what two origins
    /// serving the same window have in common.
    fn window(&self, base: &str) -> (u64, Vec<String>) {
        (self.sequence, self.urls().iter().map(|u| u.trim_start_matches(base).to_string()).collect())
    }

    fn urls(&self) -> Vec<&str> {
        self.segments.iter().map(|(u, _)| u.as_str()).collect()
    }

    fn seconds(&self) -> f64 {
        self.segments.iter().map(|(_, d)| d).sum()
    }

    /// The number of the segment after the last.
    fn next_number(&self) -> u64 {
        self.sequence + self.segments.len() as u64
    }
}

/// The time a segment URL addresses (`Fragments(name=TIME,…)`).
fn segment_time(url: &str) -> u64 {
    let at = url.find("Fragments(").unwrap_or_else(|| panic!("not a segment URL: {url}"));
    let rest = &url[at..];
    let value = &rest[rest.find('=').expect("=") + 1..];
    let end = value.find([',', ')']).unwrap_or(value.len());
    value[..end].parse().unwrap_or_else(|_| panic!("no time in {url}"))
}

/// Polls `f` every 200 ms until it gives a value, for at most `timeout`.
fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what} not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The event's multivariant HLS playlist (CMAF, or `format` with `extra` keys) from `origin`,
/// once it lists its renditions.
fn live_multivariant(origin: &Origin, event: &Event, keys: &str, renditions: usize) -> Multivariant {
    // With the extension, as players ask: segment URLs get theirs (ffmpeg's HLS demuxer wants them).
    let url = origin.url(&event.path(&format!("manifest(format=m3u8-cmaf{keys}).m3u8")));
    eventually(&format!("{url} listing {renditions} renditions"), Duration::from_secs(30), || {
        let got = get_blocking(&url);
        if got.status != 200 {
            return Err(got.describe());
        }
        let m = multivariant(&url, &got.text());
        if m.video.len() == renditions && !m.audio.is_empty() {
            Ok(m)
        } else {
            Err(format!("{m:?}\n{}", origin.log()))
        }
    })
}

/// Waits (3 s at most) until origin `b` lists the same window of the playlist at `url` on `a`:
/// the same media sequence and segment paths (`b` may be a refresh behind).
fn same_window(a: &Origin, b: &Origin, url: &str) {
    let on_b = b.url(url.trim_start_matches(&a.base));
    eventually("the second origin listing the same window", Duration::from_secs(3), || {
        let (pa, pb) = (MediaPlaylist::get(url), MediaPlaylist::get(&on_b));
        if pa.window(&a.base) == pb.window(&b.base) {
            Ok(())
        } else {
            Err(format!("A {pa:?}\nB {pb:?}"))
        }
    });
}

/// What the tests check while an event is live, every second until the encoder ends:
/// the playlists advance within the DVR window, a `liveBackoffDuration` filter keeps them that
/// far behind the edge, a second origin lists the same segments, DASH is dynamic.
fn watch_live(a: &Origin, b: &Origin, event: &Event, encoder: &mut Encoder, renditions: usize) {
    let m = live_multivariant(a, event, "", renditions);
    let video = m.video.values().next().expect("a video rendition").clone();
    let filtered = live_multivariant(a, event, ",filter=backoff", renditions);
    let filtered_video = filtered.video.values().next().expect("a filtered video rendition").clone();

    let mut last_numbers = BTreeSet::new();
    let mut same_on_b = 0;
    let mut backed_off = BTreeSet::new();
    while encoder.running() {
        // The filtered playlist first: the other, read after it, is never older.
        let f = MediaPlaylist::get(&filtered_video);
        let p = MediaPlaylist::get(&video);
        assert!(!p.ended && !f.ended, "ENDLIST while the event is live:\n{p:?}\n{f:?}");
        assert!(p.program_date_time, "no EXT-X-PROGRAM-DATE-TIME in a live playlist: {p:?}");
        assert!(p.seconds() <= DVR_WINDOW_SECS + 2.5, "{} s listed, over the DVR window: {p:?}", p.seconds());
        for (url, d) in &p.segments {
            assert!(*d > 0.0 && *d <= 2.5, "{url} lasts {d} s (2 s GOPs)");
        }
        last_numbers.insert(p.next_number());

        // The backoff filter lists the same segments up to 6 s (and at most a segment more)
        // before the live edge; measured when no segment came in between the two reads.
        assert!(p.urls().starts_with(&f.urls()), "the filtered playlist is not a prefix:\n{f:?}\n{p:?}");
        let behind = p.seconds() - f.seconds();
        let unchanged = MediaPlaylist::get(&filtered_video) == f;
        if unchanged && p.seconds() > BACKOFF_SECS + 2.5 {
            assert!(
                (BACKOFF_SECS - 0.1..=BACKOFF_SECS + 2.5).contains(&behind),
                "the backoff filter lists {behind:.2} s less than the live playlist:\n{f:?}\n{p:?}"
            );
            backed_off.insert(f.next_number());
        }

        // The second origin lists the same segments (it may be a refresh behind).
        same_window(a, b, &video);
        same_on_b += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        last_numbers.len() >= 8,
        "the playlist advanced {} times in the event: {last_numbers:?}",
        last_numbers.len()
    );
    assert!(same_on_b >= 5, "the second origin was compared {same_on_b} times");
    assert!(backed_off.len() >= 5, "the backoff playlist advanced {} times: {backed_off:?}", backed_off.len());

    let mpd = a.get(&event.path("manifest(format=mpd-time-cmaf).mpd")).ok().text();
    // The MPD was read after the encoder ended but before the event was stopped.
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
}

/// After the stop: ENDLIST on both origins (the same segments), static DASH.
fn check_stopped(a: &Origin, b: &Origin, event: &Event, renditions: usize) {
    let m = live_multivariant(a, event, "", renditions);
    for url in m.video.values().chain(&m.audio) {
        let p = MediaPlaylist::ended(url);
        let pb = MediaPlaylist::ended(&b.url(url.trim_start_matches(&a.base)));
        assert_eq!(p.window(&a.base), pb.window(&b.base), "{url}");
    }
    for origin in [a, b] {
        let mpd = origin.get(&event.path("manifest(format=mpd-time-cmaf).mpd")).ok().text();
        assert!(mpd.contains("type=\"static\"") && !mpd.contains("type=\"dynamic\""), "{mpd}");
    }
}

/// The frames of stream `map` of `reference`.
fn reference_frames(reference: &Path, map: &str) -> Vec<String> {
    framemd5(&[], reference, map).unwrap_or_else(|e| panic!("decoding the reference: {e}"))
}

/// DASH representations of an MPD: (id, height) of video ones, ids of audio ones.
fn dash_representations(mpd: &str) -> (BTreeMap<u32, String>, Vec<String>) {
    let mut video = BTreeMap::new();
    let mut audio = Vec::new();
    for set in mpd.split("<AdaptationSet").skip(1) {
        let head = &set[..set.find('>').unwrap_or(set.len())];
        let is_audio = head.contains("contentType=\"audio\"") || head.contains("mimeType=\"audio/");
        for rep in set.split("<Representation").skip(1) {
            let tag = &rep[..rep.find('>').unwrap_or(rep.len())];
            let id = common::attr(tag, "id").expect("Representation id").to_string();
            if is_audio {
                audio.push(id);
            } else {
                let height = common::attr(tag, "height").or_else(|| common::attr(head, "height"));
                video.insert(height.and_then(|h| h.parse().ok()).expect("video height"), id);
            }
        }
    }
    (video, audio)
}

/// The stopped event decodes to the reference's frames: every rendition from HLS-CMAF, HLS-TS
/// and DASH (from `dash_from`), every audio track from HLS-CMAF and DASH.
fn check_decodes(hls_from: &Origin, dash_from: &Origin, event: &Event, renditions: &[Rendition], references: &Path) {
    // label, input, map, the reference's file and map
    let mut jobs: Vec<(String, String, String, (PathBuf, &str))> = Vec::new();
    let cmaf = live_multivariant(hls_from, event, "", renditions.len());
    let ts_url = hls_from.url(&event.path("manifest(format=m3u8-aapl).m3u8"));
    let ts = multivariant(&ts_url, &get_blocking(&ts_url).ok().text());
    let mpd_url = dash_from.url(&event.path("manifest(format=mpd-time-cmaf).mpd"));
    let (dash_video, dash_audio) = dash_representations(&get_blocking(&mpd_url).ok().text());
    for (i, r) in renditions.iter().enumerate() {
        let reference = (reference_file(references, i), "0:v:0");
        let h = r.height;
        let missing = |what: &str| panic!("no {h}p rendition in the {what}");
        let hls = cmaf.video.get(&h).unwrap_or_else(|| missing("HLS-CMAF playlist"));
        jobs.push((format!("HLS-CMAF {h}p"), hls.clone(), "0:v:0".into(), reference.clone()));
        let hls_ts = ts.video.get(&h).unwrap_or_else(|| missing("HLS-TS playlist"));
        jobs.push((format!("HLS-TS {h}p"), hls_ts.clone(), "0:v:0".into(), reference.clone()));
        let id = dash_video.get(&h).unwrap_or_else(|| missing("MPD"));
        jobs.push((format!("DASH {h}p"), mpd_url.clone(), format!("0:m:id:{id}"), reference));
    }
    assert!(!dash_audio.is_empty(), "no audio in the MPD");
    let audio = (reference_file(references, 0), "0:a:0");
    for url in &cmaf.audio {
        jobs.push((format!("HLS-CMAF audio {url}"), url.clone(), "0:a:0".into(), audio.clone()));
    }
    for id in &dash_audio {
        jobs.push((format!("DASH audio {id}"), mpd_url.clone(), format!("0:m:id:{id}"), audio.clone()));
    }
    let mut expected = BTreeMap::new();
    for (_, _, _, (file, map)) in &jobs {
        expected.entry((file.clone(), *map)).or_insert_with(|| reference_frames(file, map));
    }
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(label, input, map, (file, reference_map))| {
                let expected = &expected[&(file.clone(), *reference_map)];
                s.spawn(move || {
                    let result = framemd5(&[], Path::new(input), map).and_then(|ours| compare(expected, &ours));
                    match result {
                        Ok(()) => {
                            eprintln!("ok: {label}: {} frames equal", expected.len());
                            None
                        }
                        Err(e) => Some(format!("{label} ({input} {map}):\n{e}")),
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().expect("decode thread")).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} decodes differ from the reference:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
}

/// The whole story of one event pushed over RTMP or CMAF ingest: live, stopped, decoded.
fn three_renditions_live_then_vod(cmaf: bool) {
    let bench = Bench::new();
    let event = Event::new(if cmaf { "cmaf-event" } else { "rtmp-event" });
    let a = Origin::start(&bench, "a", &[&event], true);
    let b = Origin::start(&bench, "b", &[&event], false);
    a.event_state(&event, "start");
    let ports = a.ingest.expect("ingest ports");
    let push = if cmaf {
        Push::Cmaf { port: ports.cmaf, event: &event }
    } else {
        Push::Rtmp { port: ports.rtmp, event: &event }
    };
    let references = bench.path("reference");
    let mut encoder = Encoder::spawn(encoder(&LADDER, 30, &push, &references), bench.path("encoder.log"));
    watch_live(&a, &b, &event, &mut encoder, LADDER.len());
    encoder.finish(&a);
    a.event_state(&event, "stop");
    check_stopped(&a, &b, &event, LADDER.len());
    check_decodes(&a, &b, &event, &LADDER, &references);
}

#[test]
fn rtmp_three_renditions_live_then_vod() {
    three_renditions_live_then_vod(false);
}

#[test]
fn cmaf_ingest_three_renditions_live_then_vod() {
    three_renditions_live_then_vod(true);
}

/// An ISO 8601 duration as MPDs write them (`PT1M`, `PT60S`, `PT1H2M3.5S`), seconds.
fn iso_seconds(duration: &str) -> Option<f64> {
    let mut rest = duration.strip_prefix("PT")?;
    let mut total = 0.0;
    for (unit, scale) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
        if let Some(at) = rest.find(unit) {
            total += rest[..at].parse::<f64>().ok()? * scale;
            rest = &rest[at + 1..];
        }
    }
    rest.is_empty().then_some(total)
}

/// Past the DVR window, live playlists slide: they list the last 60 s, each segment keeps its
/// media sequence number as the window moves, and a second origin, also after it is killed
/// and started again, lists the same window with the same numbers. DASH says the window too.
#[test]
fn dvr_window_slides_alike_on_every_replica() {
    let bench = Bench::new();
    let event = Event::new("dvr");
    let a = Origin::start(&bench, "a", &[&event], true);
    let mut b = Origin::start(&bench, "b", &[&event], false);
    a.event_state(&event, "start");
    let push = Push::Rtmp { port: a.ingest.expect("ingest").rtmp, event: &event };
    let mut encoder =
        Encoder::spawn(encoder(&LADDER[..1], 95, &push, &bench.path("reference")), bench.path("encoder.log"));
    let m = live_multivariant(&a, &event, "", 1);
    let video = m.video.values().next().expect("video").clone();
    eventually("the window sliding", Duration::from_secs(90), || {
        let p = MediaPlaylist::get(&video);
        if p.sequence > 0 {
            Ok(())
        } else {
            Err(format!("{p:?}\n{}", a.log()))
        }
    });
    let mut numbers: BTreeMap<String, u64> = BTreeMap::new();
    let mut sequences = BTreeSet::new();
    let started = Instant::now();
    let mut restarted = false;
    while started.elapsed() < Duration::from_secs(12) {
        assert!(
            encoder.running(),
            "the encoder ended early: {}",
            std::fs::read_to_string(&encoder.log).unwrap_or_default()
        );
        let p = MediaPlaylist::get(&video);
        let seconds = p.seconds();
        assert!(
            (DVR_WINDOW_SECS - 2.5..=DVR_WINDOW_SECS + 2.5).contains(&seconds),
            "the window lists {seconds} s: {p:?}"
        );
        for (i, url) in p.urls().into_iter().enumerate() {
            let number = p.sequence + i as u64;
            let first = *numbers.entry(url.to_string()).or_insert(number);
            assert_eq!(first, number, "{url} was number {first}, now {number}");
        }
        sequences.insert(p.sequence);
        if !restarted && started.elapsed() > Duration::from_secs(5) {
            b.kill();
            b.spawn();
            restarted = true;
        }
        same_window(&a, &b, &video);
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(restarted);
    assert!(sequences.len() >= 4, "the window slid {} times: {sequences:?}", sequences.len());
    let mpd = a.get(&event.path("manifest(format=mpd-time-cmaf).mpd")).ok().text();
    let depth = common::attr(&mpd, "timeShiftBufferDepth").and_then(iso_seconds);
    assert_eq!(depth, Some(DVR_WINDOW_SECS), "{mpd}");
    encoder.kill();
}

/// Fragment times of every track of the event, from the track documents in storage (what the
/// writer acknowledged), by track key.
fn stored_fragments(bench: &Bench, event: &Event) -> BTreeMap<String, BTreeSet<u64>> {
    let folder = bench.media().join(event.folder());
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("live.json")).expect("live.json")).expect("live.json");
    let mut out = BTreeMap::new();
    for key in doc["tracks"].as_array().expect("tracks").iter().filter_map(|k| k.as_str()) {
        let track: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join(key).join("track.json")).expect("track.json"))
                .expect("track.json");
        let mut times = BTreeSet::new();
        for run in track["runs"].as_array().expect("runs") {
            let (t, d, count) =
                (run["t"].as_u64().expect("t"), run["d"].as_u64().expect("d"), run["count"].as_u64().expect("count"));
            times.extend((0..count).map(|k| t + k * d));
        }
        out.insert(key.to_string(), times);
    }
    out
}

/// The MD5 of every packet of stream `map` of `input`, as stored (no decoding).
fn packet_md5(input: &str, map: &str) -> Vec<String> {
    let out = run(Command::new(ffmpeg_bin())
        .args(["-nostdin", "-hide_banner", "-v", "error", "-i", input, "-map", map])
        .args(["-c", "copy", "-f", "framemd5", "-"]))
    .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out).lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(str::to_owned).collect()
}

/// `ours` must be the first `k` frames of `first` (k ≥ `at_least`) followed by every frame of
/// `second`.
fn check_spliced(label: &str, ours: &[String], first: &[String], second: &[String], at_least: usize) {
    assert!(
        ours.len() >= second.len(),
        "{label}: {} frames decoded, the second encode alone has {}",
        ours.len(),
        second.len()
    );
    let k = ours.len() - second.len();
    assert!(
        k >= at_least && k <= first.len(),
        "{label}: {k} frames of the first encode ({} encoded, {at_least} acknowledged)",
        first.len()
    );
    compare(&first[..k], &ours[..k]).unwrap_or_else(|e| panic!("{label}: the first encode's part differs:\n{e}"));
    compare(second, &ours[k..]).unwrap_or_else(|e| panic!("{label}: the second encode's part differs:\n{e}"));
}

/// An event pushed by one encode, interrupted (the encoder killed, or the origin it pushes to
/// killed and started again), continued by a second encode whose time starts at 0 again.
fn interrupted_event(kill_origin: bool) {
    let bench = Bench::new();
    let event = Event::new(if kill_origin { "killed-origin" } else { "reconnect" });
    let mut a = Origin::start(&bench, "a", &[&event], true);
    a.event_state(&event, "start");
    let ladder = &LADDER[..1];
    let push = Push::Rtmp { port: a.ingest.expect("ingest").rtmp, event: &event };
    let (first_ref, second_ref) = (bench.path("first"), bench.path("second"));
    let mut first = Encoder::spawn(encoder(ladder, 60, &push, &first_ref), bench.path("first.log"));

    // Some fragments in: what the playlists list and what the track documents name.
    let m = live_multivariant(&a, &event, "", 1);
    let (video, audio) = (m.video.values().next().expect("video").clone(), m.audio[0].clone());
    let before = eventually("4 segments", Duration::from_secs(40), || {
        let p = MediaPlaylist::get(&video);
        if p.segments.len() >= 4 {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    });
    let audio_before = MediaPlaylist::get(&audio);
    let acknowledged = stored_fragments(&bench, &event);
    if kill_origin {
        a.kill();
        // The encoder loses its connection and gives up (ffmpeg does not retry).
        let deadline = Instant::now() + Duration::from_secs(10);
        while first.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        a.spawn();
    }
    first.kill();

    let mut second = Encoder::spawn(encoder(ladder, 10, &push, &second_ref), bench.path("second.log"));
    second.finish(&a);
    a.event_state(&event, "stop");

    // Everything acknowledged is still named by the track documents.
    let after = stored_fragments(&bench, &event);
    for (key, times) in &acknowledged {
        let now = after.get(key).unwrap_or_else(|| panic!("track {key} is gone: {after:?}"));
        let lost: Vec<_> = times.difference(now).collect();
        assert!(lost.is_empty(), "track {key}: acknowledged fragments lost: {lost:?}");
    }

    // And listed once each, in order, the second encode after a discontinuity.
    for (url, earlier) in [(&video, &before), (&audio, &audio_before)] {
        let p = MediaPlaylist::ended(url);
        let times: Vec<u64> = p.urls().iter().map(|u| segment_time(u)).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{url}: segment times not increasing: {times:?}");
        let urls: BTreeSet<&str> = p.urls().into_iter().collect();
        let missing: Vec<&str> = earlier.urls().into_iter().filter(|u| !urls.contains(u)).collect();
        assert!(missing.is_empty(), "{url}: segments listed before are gone: {missing:?}");
        assert!(
            p.next_number() > earlier.next_number() + 3,
            "{url}: the media sequence did not go on: {earlier:?} → {p:?}"
        );
        assert_eq!(p.discontinuities.len(), 1, "{url}: one EXT-X-DISCONTINUITY: {p:?}");
        let at = p.discontinuities[0];
        assert!(
            at >= earlier.segments.len() && at < p.segments.len() - 3,
            "{url}: discontinuity before segment {at}: {p:?}"
        );
    }

    // The whole event decodes: the first encode up to where it was cut, then all the second.
    let video_acknowledged = acknowledged.iter().find(|(k, _)| k.contains("video")).map_or(0, |(_, t)| t.len());
    let ours = framemd5(&[], Path::new(&video), "0:v:0").unwrap_or_else(|e| panic!("{e}"));
    let (first_ref, second_ref) = (reference_file(&first_ref, 0), reference_file(&second_ref, 0));
    let (one, two) = (reference_frames(&first_ref, "0:v:0"), reference_frames(&second_ref, "0:v:0"));
    check_spliced("video", &ours, &one, &two, video_acknowledged * GOP_FRAMES as usize);
    // Audio as stored, packet by packet: ffmpeg's HLS demuxer keeps the AAC decoder's state
    // across the discontinuity, so decoded frames after it differ from a fresh decode.
    let ours = packet_md5(&audio, "0:a:0");
    let (one, two) =
        (packet_md5(&first_ref.to_string_lossy(), "0:a:0"), packet_md5(&second_ref.to_string_lossy(), "0:a:0"));
    check_spliced("audio packets", &ours, &one, &two, 1);
}

#[test]
fn rtmp_encoder_reconnect_continues_the_event() {
    interrupted_event(false);
}

#[test]
fn ingesting_origin_killed_loses_no_acknowledged_fragment() {
    interrupted_event(true);
}
