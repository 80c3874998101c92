//! RTMP ingest end to end: ffmpeg publishes a live event in real time while other connections
//! misbehave (a wrong token, garbage, a handshake cut short, a codec change mid-stream); the
//! event's fragments in storage, joined behind their init object, decode to exactly the frames
//! ffmpeg sent (kept with `-f tee`), video and audio, and none of the bad connections cost a
//! byte of it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ffmpeg_bin, run};
use jit_origin::config::Config;
use jit_origin::ingest::writer::LiveWriter;
use jit_origin::ingest::{rtmp, Ingest, IngestLimits};
use jit_origin::serve::origin::Origin;
use jit_origin::source::live::{fragment_path, read_event_doc, read_track_doc};
use jit_origin::source::storage::Storage;

const STORAGE: &str = "live";
const MAIN_TOKEN: &str = "main-0123456789abcdef";
const SIDE_TOKEN: &str = "side-0123456789abcdef";

struct Server {
    origin: Arc<Origin>,
    storage: Arc<Storage>,
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

async fn start(dir: &Path, events: &[(&str, &str)]) -> Server {
    let _ = tracing_subscriber::fmt().with_env_filter("jit_origin=info").with_test_writer().try_init();
    let mut text =
        format!("listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"{STORAGE}\"\nurl = \"file://{}\"\n", dir.display());
    for (name, token) in events {
        text += &format!(
            "[[live_event]]\nname = \"{name}\"\naccess_token = \"{token}\"\nstorage = \"{STORAGE}\"\n\
             folder = \"events/{name}\"\ndvr_window_secs = 600\n"
        );
    }
    std::fs::create_dir_all(dir).expect("storage dir");
    let config = Config::parse(&text, dir.to_path_buf()).expect("config");
    let origin = Arc::new(Origin::from_config(&config).expect("origin"));
    let storage = origin.storage(STORAGE).expect("storage").clone();
    let ingest = Arc::new(Ingest {
        origin: origin.clone(),
        writer: LiveWriter::new(origin.metrics.clone()),
        limits: IngestLimits { max_fragment_bytes: 4 << 20, ..IngestLimits::default() },
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(rtmp::serve(listener, ingest, async move {
        let _ = stopped.await;
    }));
    Server { origin, storage, port, stop, served }
}

impl Server {
    fn errors(&self, reason: &str) -> u64 {
        self.origin.metrics.ingest_errors.with_label_values(&["rtmp", reason]).get()
    }

    fn open_connections(&self) -> i64 {
        self.origin.metrics.ingest_connections.with_label_values(&["rtmp"]).get()
    }

    /// Stops accepting and waits for every connection to store what it holds.
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.served.await.expect("serve");
    }
}

/// Init object + every fragment of `key`, in order, as one fragmented MP4 file.
async fn track_file(storage: &Storage, folder: &str, key: &str, out: &Path) -> usize {
    let (doc, _) = read_track_doc(storage, folder, key).await.expect("track doc").expect("track doc exists");
    let mut file = storage.read_all(&format!("{folder}/{}", doc.init)).await.expect("init").to_vec();
    let mut count = 0;
    for run in &doc.runs {
        for k in 0..run.count as u64 {
            let fragment = storage.read_all(&fragment_path(folder, key, run.t + k * run.d)).await.expect("fragment");
            file.extend_from_slice(&fragment);
            count += 1;
        }
    }
    std::fs::write(out, file).expect("write track file");
    count
}

/// The MD5 of each decoded frame of stream `map` of `input`.
fn frame_hashes(input: &Path, map: &str) -> Vec<String> {
    let out = run(Command::new(ffmpeg_bin())
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(input)
        .args(["-map", map, "-f", "framemd5", "-"]))
    .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

/// CPU seconds this process (the server's threads included) has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// A minimal RTMP publisher: simple handshake, connect / createStream / publish, then FLV tag
// bodies as audio and video messages. Enough to send what ffmpeg cannot (a codec change).

fn amf_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn amf_number(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

struct Publisher {
    socket: TcpStream,
}

impl Publisher {
    const CHUNK: usize = 4096;

    fn connect(port: u16, app: &str, name: &str) -> std::io::Result<Publisher> {
        let mut socket = TcpStream::connect(("127.0.0.1", port))?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0; 8]);
        c0c1.extend((0..1528).map(|i| (i * 7) as u8));
        socket.write_all(&c0c1)?;
        let mut s0s1s2 = vec![0; 1 + 1536 * 2];
        socket.read_exact(&mut s0s1s2)?;
        socket.write_all(&s0s1s2[1..1537])?; // C2 echoes S1
        let mut p = Publisher { socket };
        p.message(2, 1, 0, 0, &(Self::CHUNK as u32).to_be_bytes())?; // SetChunkSize
        let mut connect = Vec::new();
        amf_string(&mut connect, "connect");
        amf_number(&mut connect, 1.0);
        connect.push(0x03);
        for (key, value) in [("app", app), ("type", "nonprivate"), ("tcUrl", &format!("rtmp://127.0.0.1/{app}"))] {
            connect.extend_from_slice(&(key.len() as u16).to_be_bytes());
            connect.extend_from_slice(key.as_bytes());
            amf_string(&mut connect, value);
        }
        connect.extend_from_slice(&[0, 0, 9]);
        p.message(3, 20, 0, 0, &connect)?;
        let mut create = Vec::new();
        amf_string(&mut create, "createStream");
        amf_number(&mut create, 2.0);
        create.push(0x05);
        p.message(3, 20, 0, 0, &create)?;
        let mut publish = Vec::new();
        amf_string(&mut publish, "publish");
        amf_number(&mut publish, 3.0);
        publish.push(0x05);
        amf_string(&mut publish, name);
        amf_string(&mut publish, "live");
        p.message(4, 20, 1, 0, &publish)?;
        Ok(p)
    }

    /// One message on chunk stream `csid`: a type 0 chunk, then type 3 continuation chunks.
    fn message(&mut self, csid: u8, kind: u8, stream: u32, ts: u32, body: &[u8]) -> std::io::Result<()> {
        let mut out = vec![csid];
        out.extend_from_slice(&ts.min(0xff_ffff).to_be_bytes()[1..]);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.push(kind);
        out.extend_from_slice(&stream.to_le_bytes());
        if ts >= 0xff_ffff {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        for (k, chunk) in body.chunks(Self::CHUNK).enumerate() {
            if k > 0 {
                out.push(0xc0 | csid);
            }
            out.extend_from_slice(chunk);
        }
        self.socket.write_all(&out)
    }

    fn video(&mut self, ts: u32, body: &[u8]) -> std::io::Result<()> {
        self.message(6, 9, 1, ts, body)
    }

    fn audio(&mut self, ts: u32, body: &[u8]) -> std::io::Result<()> {
        self.message(5, 8, 1, ts, body)
    }

    /// Waits until the server closes the connection (or `limit` passes): true if it did.
    fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.socket.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// The FLV tags (type, timestamp, body) of a file ffmpeg wrote.
fn flv_tags(path: &Path) -> Vec<(u8, u32, Vec<u8>)> {
    let data = std::fs::read(path).expect("flv");
    let mut tags = Vec::new();
    let mut at = 13;
    while at + 11 <= data.len() {
        let kind = data[at];
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        tags.push((kind, ts, data[at + 11..at + 11 + size].to_vec()));
        at += 11 + size + 4;
    }
    tags
}

fn encode_flv(out: &Path, size: &str, seconds: u32) {
    run(Command::new(ffmpeg_bin())
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-f", "flv"])
        .arg(out))
    .unwrap_or_else(|e| panic!("{e}"));
}

/// An ffmpeg that publishes HEVC over enhanced RTMP: `FFMPEG_ENHANCED_RTMP`, else the one
/// tests/run.sh installs (imageio-ffmpeg's ffmpeg 9, pinned in tests/rtmp/requirements.txt).
fn enhanced_rtmp_ffmpeg() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("FFMPEG_ENHANCED_RTMP") {
        return path.into();
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ffmpeg-9/venv/lib");
    let found = std::fs::read_dir(&lib).ok().into_iter().flatten().flatten().find_map(|python| {
        let binaries = python.path().join("site-packages/imageio_ffmpeg/binaries");
        std::fs::read_dir(binaries)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ffmpeg-linux")))
    });
    found.unwrap_or_else(|| {
        panic!("no ffmpeg with enhanced RTMP under {}: run tests/run.sh or set FFMPEG_ENHANCED_RTMP", lib.display())
    })
}

/// Sends every tag of `tags` (audio, video) as fast as the socket takes them.
fn send_tags(p: &mut Publisher, tags: &[(u8, u32, Vec<u8>)], shift_ms: u32) -> std::io::Result<()> {
    for (kind, ts, body) in tags {
        match kind {
            8 => p.audio(ts + shift_ms, body)?,
            9 => p.video(ts + shift_ms, body)?,
            _ => {}
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_is_stored_frame_identical_while_bad_connections_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path().join("storage").as_path(), &[("main", MAIN_TOKEN), ("side", SIDE_TOKEN)]).await;
    let port = server.port;

    // The real-time publish, its encode kept as the reference.
    let reference = dir.path().join("reference.mkv");
    let mut ffmpeg = Command::new(ffmpeg_bin());
    ffmpeg
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-t", "8", "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "2"])
        .args(["-c:a", "aac", "-flags", "+global_header", "-f", "tee"])
        .arg(format!("[f=flv]rtmp://127.0.0.1:{port}/live/{MAIN_TOKEN}|[f=matroska]{}", reference.display()));
    let publish = tokio::task::spawn_blocking(move || run(&mut ffmpeg));

    // Meanwhile, on the same listener:
    let side_flv = dir.path().join("side.flv");
    let other_flv = dir.path().join("other.flv");
    encode_flv(&side_flv, "320x180", 5);
    encode_flv(&other_flv, "480x270", 1);
    let bad = tokio::task::spawn_blocking(move || {
        // A wrong token: refused at publish.
        let mut wrong = Publisher::connect(port, "live", "not-0123456789abcdef").expect("connect");
        assert!(wrong.closed_within(Duration::from_secs(3)), "wrong token not refused");

        // Garbage instead of a handshake, and a handshake cut short: both end quickly and
        // leave no core spinning.
        let cpu = cpu_seconds();
        let mut garbage = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        garbage.write_all(&[0x47; 4000]).expect("garbage");
        let mut partial = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        partial.write_all(&[3; 700]).expect("partial");
        partial.shutdown(std::net::Shutdown::Write).expect("shutdown");
        for socket in [&mut garbage, &mut partial] {
            socket.set_read_timeout(Some(Duration::from_secs(4))).expect("timeout");
            let mut buf = [0u8; 8192];
            let started = Instant::now();
            while let Ok(n) = socket.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(4), "connection not closed");
        }
        std::thread::sleep(Duration::from_secs(2));
        let spent = cpu_seconds() - cpu;
        assert!(spent < 1.5, "{spent} CPU seconds after two bad connections: a spinning task?");

        // Event "side": two renditions; the second one's audio is not taken. Then the first
        // changes its codec configuration mid-stream.
        let side = flv_tags(&side_flv);
        let mut p = Publisher::connect(port, "live", &format!("{SIDE_TOKEN}/cam")).expect("connect");
        send_tags(&mut p, &side, 0).expect("side stream");
        let mut second = Publisher::connect(port, "live", &format!("{SIDE_TOKEN}/cam2")).expect("connect");
        send_tags(&mut second, &side, 0).expect("second rendition");
        second.socket.shutdown(std::net::Shutdown::Write).expect("end the second rendition");
        assert!(second.closed_within(Duration::from_secs(5)), "second rendition not closed");
        let other = flv_tags(&other_flv);
        let _ = send_tags(&mut p, &other, 5_000);
        assert!(p.closed_within(Duration::from_secs(5)), "codec change not refused");
    });
    bad.await.expect("bad connections");
    publish.await.expect("ffmpeg").unwrap_or_else(|e| panic!("{e}"));

    // Every connection ends; the gauge returns to zero.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.errors("forbidden"), 1);
    assert_eq!(server.errors("codec_change"), 1);
    assert!(server.errors("rtmp") >= 1, "garbage handshake not counted");
    let storage = server.storage.clone();
    server.shutdown().await;

    // Nothing stored for the wrong token: only the two events' folders exist.
    let mut folders: Vec<String> = storage
        .list_recursive("")
        .await
        .expect("list")
        .iter()
        .filter_map(|m| m.location.as_ref().split('/').nth(1).map(str::to_string))
        .collect();
    folders.sort();
    folders.dedup();
    assert_eq!(folders, vec!["main".to_string(), "side".to_string()]);

    // "main": 4 GOPs of 2 s, decoding to the reference's frames.
    let video = dir.path().join("main-video.mp4");
    let audio = dir.path().join("main-audio.mp4");
    assert_eq!(track_file(&storage, "events/main", "default_video", &video).await, 4);
    assert!(track_file(&storage, "events/main", "default_audio", &audio).await >= 4);
    let reference_video = frame_hashes(&reference, "0:v");
    assert_eq!(reference_video.len(), 200);
    assert_eq!(frame_hashes(&video, "0:v"), reference_video);
    assert_eq!(frame_hashes(&audio, "0:a"), frame_hashes(&reference, "0:a"));

    // "side": the fragments stored before the codec change are whole and decode.
    let side = dir.path().join("side-video.mp4");
    let stored = track_file(&storage, "events/side", "cam_video", &side).await;
    assert!(stored >= 2, "{stored} side fragments");
    assert_eq!(frame_hashes(&side, "0:v").len(), stored * 50);
    let (doc, _) = read_track_doc(&storage, "events/side", "cam_video").await.unwrap().unwrap();
    assert!(doc.runs.iter().all(|r| r.d == 180_000), "{:?}", doc.runs);
    // The second rendition: GOP-aligned with the first, its last partial GOP stored at its
    // end, its audio left out.
    let (second, _) = read_track_doc(&storage, "events/side", "cam2_video").await.unwrap().unwrap();
    assert_eq!(second.runs[0].t, doc.runs[0].t);
    assert_eq!(second.runs.iter().map(|r| r.count).sum::<u32>(), 3, "{:?}", second.runs);
    let (event, _) = read_event_doc(&storage, "events/side").await.unwrap().unwrap();
    let mut tracks = event.tracks.clone();
    tracks.sort();
    assert_eq!(tracks, ["cam2_video", "cam_audio", "cam_video"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_over_enhanced_rtmp_is_stored_frame_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path().join("storage").as_path(), &[("hevc", MAIN_TOKEN)]).await;
    let port = server.port;
    let reference = dir.path().join("reference.mkv");
    let mut ffmpeg = Command::new(enhanced_rtmp_ffmpeg());
    ffmpeg
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-t", "5", "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx265", "-x265-params", "keyint=50:min-keyint=50:scenecut=0:open-gop=0:log-level=error"])
        .args(["-c:a", "aac", "-flags", "+global_header", "-f", "tee"])
        .arg(format!("[f=flv]rtmp://127.0.0.1:{port}/live/{MAIN_TOKEN}/uhd|[f=matroska]{}", reference.display()));
    tokio::task::spawn_blocking(move || run(&mut ffmpeg)).await.expect("ffmpeg").unwrap_or_else(|e| panic!("{e}"));
    let storage = server.storage.clone();
    server.shutdown().await;

    let video = dir.path().join("video.mp4");
    assert_eq!(track_file(&storage, "events/hevc", "uhd_video", &video).await, 3);
    let (doc, _) = read_track_doc(&storage, "events/hevc", "uhd_video").await.unwrap().unwrap();
    let init = storage.read_all(&format!("events/hevc/{}", doc.init)).await.unwrap();
    assert!(init.windows(4).any(|w| w == b"hvcC"), "an hvc1 sample entry");
    let reference_video = frame_hashes(&reference, "0:v");
    assert_eq!(reference_video.len(), 125);
    assert_eq!(frame_hashes(&video, "0:v"), reference_video);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_encoder_continues_the_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path().join("storage").as_path(), &[("again", MAIN_TOKEN)]).await;
    let port = server.port;
    let flv = dir.path().join("source.flv");
    encode_flv(&flv, "320x180", 9);
    // The same 9 s twice, each from time 0 as a restarted encoder sends it, the first
    // connection lost without an unpublish. (The writer takes a fragment at one of a track's
    // last 3 times for a resend, so the first run is longer than that.)
    tokio::task::spawn_blocking(move || {
        let tags = flv_tags(&flv);
        for _ in 0..2 {
            let mut p = Publisher::connect(port, "live", MAIN_TOKEN).expect("connect");
            send_tags(&mut p, &tags, 0).expect("publish");
            p.socket.shutdown(std::net::Shutdown::Write).expect("disconnect");
            assert!(p.closed_within(Duration::from_secs(5)), "connection not closed");
        }
    })
    .await
    .expect("publishes");
    let storage = server.storage.clone();
    server.shutdown().await;

    // 4 GOPs and the last second of each connection, one after the other in event time, the
    // second connection's first fragment marked as a discontinuity.
    let (doc, _) = read_track_doc(&storage, "events/again", "default_video").await.unwrap().unwrap();
    let times: Vec<u64> = doc.runs.iter().flat_map(|r| (0..r.count as u64).map(move |k| r.t + k * r.d)).collect();
    assert_eq!(times.len(), 10, "{:?}", doc.runs);
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert_eq!(doc.discontinuities, vec![times[5]]);
    let video = dir.path().join("video.mp4");
    track_file(&storage, "events/again", "default_video", &video).await;
    let once = frame_hashes(&dir.path().join("source.flv"), "0:v");
    assert_eq!(once.len(), 225);
    assert_eq!(frame_hashes(&video, "0:v"), [once.clone(), once].concat());
}
