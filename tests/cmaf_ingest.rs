//! CMAF ingest (DASH-IF Live Media Ingest, interface 1) against the in-process listener over
//! local storage: ffmpeg's own push, the URL and token forms, per-segment posting, and each bad
//! input refused with its status, the connection closed, nothing stored for it, while another
//! event on the same listener keeps ingesting.
//!
//! Requests other than ffmpeg's are written by hand over TCP (chunked bodies, paced), so a
//! refusal mid-body and the close that follows are seen as an encoder sees them.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jit_origin::config::Config;
use jit_origin::ingest::writer::LiveWriter;
use jit_origin::ingest::{cmaf, Ingest, IngestLimits};
use jit_origin::plan::live_event::LiveEvent;
use jit_origin::serve::origin::Origin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The access token of live event `event`.
fn token(event: &str) -> String {
    format!("s3cret-token-of-{event}")
}

/// ffmpeg's mp4 options for a CMAF push (the command, as an encoder would run it).
const CMAF_PUSH: &[&str] = &[
    "-f",
    "mp4",
    "-movflags",
    "+cmaf+dash+delay_moov+skip_sidx+skip_trailer+frag_custom",
    "-frag_duration",
    "2000000",
];

/// A CMAF ingest listener over a fresh storage folder, with live events `a`, `b` and `bad`
/// (tokens from [`token`]).
struct Harness {
    dir: tempfile::TempDir,
    origin: Arc<Origin>,
    addr: SocketAddr,
    /// Dropping it stops the listener.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(limits: IngestLimits) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"live\"\nurl = \"file://{}\"\n",
            dir.path().display()
        );
        let config = Config::parse(&text, dir.path().to_path_buf()).expect("config");
        let origin = Arc::new(Origin::from_config(&config).expect("origin"));
        let storage = origin.storage("live").cloned().unwrap();
        let mut catalog = (*origin.catalog()).clone();
        for name in ["a", "b", "bad"] {
            catalog.insert_live_event(LiveEvent {
                name: name.into(),
                // The secret type is the config's: made as the config makes it.
                access_token: serde_json::from_value(serde_json::json!(token(name))).unwrap(),
                storage: storage.clone(),
                folder: name.into(),
                manifest_name: None,
                dvr_window_secs: 600,
            });
        }
        origin.publish(catalog);
        let ingest =
            Arc::new(Ingest { origin: origin.clone(), writer: LiveWriter::new(origin.metrics.clone()), limits });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(cmaf::serve(listener, ingest, async move {
            let _ = stopped.await;
        }));
        Harness { dir, origin, addr, stop: Some(stop), served }
    }

    async fn new() -> Harness {
        Harness::start(IngestLimits { max_fragment_bytes: 8 << 20, ..IngestLimits::default() }).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every object stored under `folder`, relative paths, sorted.
    fn stored(&self, folder: &str) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let root = self.dir.path().join(folder);
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// The fragment objects of track `key` of event `folder`, in time order.
    fn fragments(&self, folder: &str, key: &str) -> Vec<PathBuf> {
        let dir = self.dir.path().join(folder).join(key);
        let mut times: Vec<u64> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".m4s")?.parse().ok())
            .collect();
        times.sort_unstable();
        times.into_iter().map(|t| dir.join(format!("{t}.m4s"))).collect()
    }

    /// Init object + fragments of a track, concatenated into one playable file.
    fn track_file(&self, folder: &str, key: &str, out: &Path) -> usize {
        let dir = self.dir.path().join(folder).join(key);
        let inits: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("init-"))
            .collect();
        assert_eq!(inits.len(), 1, "one init object in {}", dir.display());
        let mut bytes = std::fs::read(&inits[0]).unwrap();
        let fragments = self.fragments(folder, key);
        for f in &fragments {
            bytes.extend(std::fs::read(f).unwrap());
        }
        std::fs::write(out, bytes).unwrap();
        fragments.len()
    }

    async fn wait_for_connections_closed(&self) {
        let open = self.origin.metrics.ingest_connections.with_label_values(&["cmaf"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while open.get() > 0 {
            assert!(Instant::now() < deadline, "{} ingest connections still open", open.get());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Each track `key` of event `a` (init object + fragments) decodes frame for frame as the
    /// reference's stream `map`, and holds at least the 4 fragments of its 8 s.
    fn assert_decodes_as_reference(&self, tracks: &[(&str, &str)]) {
        let out = tempfile::tempdir().unwrap();
        for (key, map) in tracks {
            let stored = out.path().join(format!("{key}.mp4"));
            let count = self.track_file("a", key, &stored);
            assert!(count >= 4, "{key}: {count} fragments for 8 s in 2 s fragments");
            let reference = framemd5(&media().reference, map, true);
            let ours = framemd5(&stored, "0:0", true);
            if let Err(e) = common::compare(&reference, &ours) {
                panic!("{key} stored by ingest decodes differently from the reference:\n{e}");
            }
        }
    }

    fn errors(&self, reason: &str) -> u64 {
        self.origin.metrics.ingest_errors.with_label_values(&["cmaf", reason]).get()
    }
}

/// Media made once per run with ffmpeg: CMAF bodies as ffmpeg's push sends them.
struct Media {
    _dir: tempfile::TempDir,
    /// 6 s of 160x90 H.264 at 25 fps, closed 2 s GOPs: ftyp moov and 3 fragments.
    video: Vec<u8>,
    /// The same at 320x180: another sample entry.
    video_wide: Vec<u8>,
    /// Video and audio in one header.
    both: Vec<u8>,
    /// 8 s of video and a tone, a plain mp4: what the push test sends and decodes against.
    reference: PathBuf,
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let encode = |name: &str, size: &str, secs: &str, audio: bool, format: &[&str]| {
            let out = dir.path().join(name);
            let mut cmd = Command::new(common::ffmpeg_bin());
            cmd.args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate=25")]);
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", secs, "-map", "0:v"]);
            if audio {
                cmd.args(["-map", "1:a", "-c:a", "aac", "-b:a", "64k"]);
            }
            cmd.args(["-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p"]);
            cmd.args(format).arg(&out);
            common::run(&mut cmd).unwrap();
            out
        };
        let read = |p: PathBuf| std::fs::read(p).unwrap();
        Media {
            video: read(encode("video.mp4", "160x90", "6", false, CMAF_PUSH)),
            video_wide: read(encode("wide.mp4", "320x180", "6", false, CMAF_PUSH)),
            both: read(encode("both.mp4", "160x90", "2", true, CMAF_PUSH)),
            reference: encode("reference.mp4", "320x180", "8", true, &["-f", "mp4"]),
            _dir: dir,
        }
    })
}

/// The top-level boxes of an mp4 body, whole.
fn boxes(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(&rest[..size]);
        rest = &rest[size..];
    }
    out
}

/// `ftyp moov` of a body, and its `moof mdat` pairs.
fn split(body: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let all = boxes(body);
    let header = all[..2].concat();
    let fragments = all[2..].chunks(2).map(|pair| pair.concat()).collect();
    (header, fragments)
}

/// What came back for a request written by hand.
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    /// The server closed the connection after answering.
    closed: bool,
    /// Body bytes written before the server stopped taking them.
    sent: u64,
}

/// POSTs `chunks` as a chunked body to `path` with `headers`, pausing `pause` after each
/// chunk; stops writing when the server stops reading. Reads the answer concurrently (the
/// server may answer and close mid-body, as it does on an error).
async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], chunks: &[&[u8]], pause: Duration) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let received = Arc::new(Mutex::new((Vec::new(), false)));
    let reader = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.lock().unwrap().0.extend_from_slice(&buf[..n]),
                }
            }
            received.lock().unwrap().1 = true;
        })
    };
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: ingest\r\nTransfer-Encoding: chunked\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut sent = 0u64;
    let mut complete = write.write_all(head.as_bytes()).await.is_ok();
    for chunk in chunks {
        if !complete {
            break;
        }
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        complete = write.write_all(&framed).await.is_ok();
        if complete {
            sent += chunk.len() as u64;
        }
        tokio::time::sleep(pause).await;
    }
    if complete {
        let _ = write.write_all(b"0\r\n\r\n").await;
    }
    // The answer: a status line and headers, then (for an error) the close.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let (bytes, closed) = received.lock().unwrap().clone();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            break text[..head_end].split(' ').nth(1).and_then(|s| s.parse().ok());
        }
        if closed || Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let closed = tokio::time::timeout(Duration::from_secs(3), reader).await.is_ok();
    Answer { status, closed, sent }
}

fn bearer(event: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {}", token(event)))
}

/// POSTs `body` in one chunk with the token of the event `/ingest/{event}/…` names.
async fn post_body(h: &Harness, path: &str, body: &[u8]) -> Answer {
    let event = path.split('/').nth(2).unwrap();
    let (name, value) = bearer(event);
    post(h.addr, path, &[(name, &value)], &[body], Duration::ZERO).await
}

/// Pushes `media().video` to event `a` as an encoder would, one fragment every 400 ms, while
/// `during` runs; then checks event `a` stored every fragment and answered 200.
async fn while_another_event_ingests<F: std::future::Future<Output = ()>>(h: &Harness, during: F) {
    let (header, fragments) = split(&media().video);
    let mut chunks: Vec<&[u8]> = vec![&header];
    chunks.extend(fragments.iter().map(Vec::as_slice));
    let (name, value) = bearer("a");
    let headers = [(name, value.as_str())];
    let good = post(h.addr, "/ingest/a/Streams(video)", &headers, &chunks, Duration::from_millis(400));
    let (good, ()) = tokio::join!(good, during);
    assert_eq!(good.status, Some(200), "the other event's push: {good:?}");
    assert_eq!(h.fragments("a", "video").len(), fragments.len(), "the other event stored every fragment");
}

fn framemd5(input: &Path, map: &str, ignore_editlist: bool) -> Vec<String> {
    let opts: &[&std::ffi::OsStr] = if ignore_editlist { &["-ignore_editlist".as_ref(), "1".as_ref()] } else { &[] };
    common::framemd5(opts, input, map).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_push_stores_fragments_that_decode_to_the_reference() {
    let h = Harness::new().await;
    let m = media();
    let auth = format!("Authorization: Bearer {}\r\n", token("a"));
    let mut cmd = Command::new(common::ffmpeg_bin());
    cmd.args(["-nostdin", "-v", "error", "-re", "-i"]).arg(&m.reference);
    for (map, stream) in [("0:v", "video"), ("0:a", "audio")] {
        cmd.args(["-map", map, "-c", "copy"]).args(CMAF_PUSH);
        cmd.args(["-method", "POST", "-multiple_requests", "1", "-chunked_post", "1", "-headers", &auth]);
        cmd.arg(h.url(&format!("/ingest/a/Streams({stream})")));
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    // Fragments arrive while the push goes on, not only at its end.
    let mut live = 0;
    while live == 0 && started.elapsed() < Duration::from_secs(7) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        live = h.fragments("a", "video").len();
    }
    assert!(live > 0, "no fragment stored within 7 s of an 8 s push");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "ffmpeg push still running after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "ffmpeg push failed: {status}");
    // ffmpeg does not wait for the answers: the server may still be storing the last fragments.
    h.wait_for_connections_closed().await;

    h.assert_decodes_as_reference(&[("video", "0:v:0"), ("audio", "0:a:0")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_forms_tokens_and_per_segment_posting() {
    let h = Harness::new().await;
    let (header, fragments) = split(&media().video);
    // An empty probe, then the AMS spelling carrying the token in the path.
    let (name, value) = bearer("a");
    let probe = post(h.addr, "/ingest/a/Streams(video)", &[(name, &value)], &[], Duration::ZERO).await;
    assert_eq!(probe.status, Some(200), "{probe:?}");
    let ams =
        post(h.addr, &format!("/{}/ingest.isml/Streams(video)", token("a")), &[], &[&media().video], Duration::ZERO)
            .await;
    assert_eq!(ams.status, Some(200), "{ams:?}");
    assert_eq!(h.fragments("a", "video").len(), fragments.len());

    // DASH-IF "MPD first" with one request per segment, basic auth: the manifest is taken, the
    // track is named by the directory before each file.
    let basic = format!("Basic {}", base64_of(&format!("encoder:{}", token("b"))));
    let auth = [("Authorization", basic.as_str())];
    let mpd = post(h.addr, "/ingest/b/ingest.mpd", &auth, &[b"<MPD/>"], Duration::ZERO).await;
    assert_eq!(mpd.status, Some(200), "{mpd:?}");
    let init = post(h.addr, "/ingest/b/v1/init.cmfv", &auth, &[&header], Duration::ZERO).await;
    assert_eq!(init.status, Some(200), "{init:?}");
    for (i, fragment) in fragments.iter().enumerate() {
        let seg = post(h.addr, &format!("/ingest/b/v1/{}.cmfv", i + 1), &auth, &[fragment], Duration::ZERO).await;
        assert_eq!(seg.status, Some(200), "segment {i}: {seg:?}");
    }
    assert_eq!(h.fragments("b", "v1").len(), fragments.len());
    // The query form, and a path we do not take.
    let query =
        post(h.addr, &format!("/ingest/b/Streams(v2)?token={}", token("b")), &[], &[&header], Duration::ZERO).await;
    assert_eq!(query.status, Some(200), "{query:?}");
    let wrong = post_body(&h, "/ingest/b/something/else", &header).await;
    assert_eq!(wrong.status, Some(403), "{wrong:?}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_refused_before_anything_is_stored() {
    let h = Harness::new().await;
    while_another_event_ingests(&h, async {
        // A made-up token, another event's token, none.
        let other = bearer("a");
        for auth in [vec![("Authorization", "Bearer not-the-token")], vec![(other.0, other.1.as_str())], vec![]] {
            let answer = post(h.addr, "/ingest/bad/Streams(video)", &auth, &[&media().video], Duration::ZERO).await;
            assert_eq!(answer.status, Some(403), "{answer:?}");
            assert!(answer.closed, "connection left open after a 403");
        }
        let by_path =
            post(h.addr, "/wrong-token/ingest.isml/Streams(video)", &[], &[&media().video], Duration::ZERO).await;
        assert_eq!(by_path.status, Some(403), "{by_path:?}");
    })
    .await;
    assert_eq!(h.stored("bad"), Vec::<String>::new());
    assert_eq!(h.errors("forbidden"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_is_404() {
    let h = Harness::new().await;
    while_another_event_ingests(&h, async {
        let answer = post_body(&h, "/ingest/nosuch/Streams(video)", &media().video).await;
        assert_eq!(answer.status, Some(404), "{answer:?}");
        assert!(answer.closed);
    })
    .await;
    assert_eq!(h.stored("nosuch"), Vec::<String>::new());
    assert_eq!(h.errors("not_found"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_400_and_closes_the_connection() {
    let h = Harness::new().await;
    while_another_event_ingests(&h, async {
        let garbage = b"this is not an mp4 box stream at all, just words".repeat(100);
        let answer = post_body(&h, "/ingest/bad/Streams(video)", &garbage).await;
        assert_eq!(answer.status, Some(400), "{answer:?}");
        assert!(answer.closed, "connection left open after garbage");
    })
    .await;
    assert_eq!(h.stored("bad"), Vec::<String>::new());
    assert_eq!(h.errors("box"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moof_before_moov_is_412() {
    let h = Harness::new().await;
    let (header, fragments) = split(&media().video);
    let ftyp = boxes(&header)[0];
    while_another_event_ingests(&h, async {
        let answer = post_body(&h, "/ingest/bad/Streams(video)", &[ftyp, &fragments[0]].concat()).await;
        assert_eq!(answer.status, Some(412), "{answer:?}");
        assert!(answer.closed);
    })
    .await;
    assert_eq!(h.stored("bad"), Vec::<String>::new());
    assert_eq!(h.errors("no_init"), 1);
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    kib.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_claiming_4_gib_is_refused_at_once() {
    let h = Harness::new().await;
    let (header, _) = split(&media().video);
    while_another_event_ingests(&h, async {
        // A 64-bit mdat size of 4 GiB after a valid header, then 256 MiB of zeros offered in
        // 1 MiB chunks: the server must refuse from the box header and stop reading.
        let mut claim = header.clone();
        claim.extend_from_slice(&1u32.to_be_bytes());
        claim.extend_from_slice(b"mdat");
        claim.extend_from_slice(&(4u64 << 30).to_be_bytes());
        let zeros = vec![0u8; 1 << 20];
        let mut chunks: Vec<&[u8]> = vec![&claim];
        chunks.extend(std::iter::repeat_n(zeros.as_slice(), 256));
        let before = resident_bytes();
        let started = Instant::now();
        let (name, value) = bearer("bad");
        let answer = post(h.addr, "/ingest/bad/Streams(video)", &[(name, &value)], &chunks, Duration::ZERO).await;
        assert_eq!(answer.status, Some(400), "{answer:?}");
        assert!(answer.closed);
        assert!(answer.sent < 64 << 20, "the server read {} bytes of a refused box", answer.sent);
        assert!(started.elapsed() < Duration::from_secs(5), "refused only after {:?}", started.elapsed());
        let grown = resident_bytes().saturating_sub(before);
        assert!(grown < 48 << 20, "memory grew by {grown} bytes");
    })
    .await;
    assert_eq!(h.errors("too_large"), 1);
    // The header opened the track; no fragment was stored.
    assert_eq!(h.fragments("bad", "video").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tracks_in_one_header_is_415() {
    let h = Harness::new().await;
    while_another_event_ingests(&h, async {
        let answer = post_body(&h, "/ingest/bad/Streams(av)", &media().both).await;
        assert_eq!(answer.status, Some(415), "{answer:?}");
        assert!(answer.closed);
    })
    .await;
    assert_eq!(h.stored("bad"), Vec::<String>::new());
    assert_eq!(h.errors("unsupported"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codec_change_on_reconnect_is_400() {
    let h = Harness::new().await;
    let first = post_body(&h, "/ingest/bad/Streams(video)", &media().video).await;
    assert_eq!(first.status, Some(200), "{first:?}");
    let stored = h.stored("bad");
    while_another_event_ingests(&h, async {
        let answer = post_body(&h, "/ingest/bad/Streams(video)", &media().video_wide).await;
        assert_eq!(answer.status, Some(400), "{answer:?}");
        assert!(answer.closed);
    })
    .await;
    assert_eq!(h.stored("bad"), stored, "objects written for a refused codec change");
    assert_eq!(h.errors("codec_change"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_going_backwards_within_a_body_is_400() {
    let h = Harness::new().await;
    let (header, fragments) = split(&media().video);
    while_another_event_ingests(&h, async {
        // The second fragment, then the first: its times go back.
        let body = [header.as_slice(), &fragments[1], &fragments[0], &fragments[2]].concat();
        let answer = post_body(&h, "/ingest/bad/Streams(video)", &body).await;
        assert_eq!(answer.status, Some(400), "{answer:?}");
        assert!(answer.closed);
    })
    .await;
    assert_eq!(h.fragments("bad", "video").len(), 1, "only the fragment before time went back is stored");
    assert_eq!(h.errors("time"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let h = Harness::start(IngestLimits { idle_timeout: Duration::from_secs(1), ..IngestLimits::default() }).await;
    let (header, _) = split(&media().video);
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let (name, value) = bearer("bad");
    let head = format!(
        "POST /ingest/bad/Streams(video) HTTP/1.1\r\nHost: x\r\n{name}: {value}\r\nContent-Length: 100000\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(&header).await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "connection still open 5 s after it went silent");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_encoder_continues_its_track() {
    let h = Harness::new().await;
    let (header, fragments) = split(&media().video);
    // A connection lost in its second fragment, then the encoder back on a new connection with
    // its header and everything from time 0: the fragment already stored is a resend.
    let (name, value) = bearer("a");
    let auth = [(name, value.as_str())];
    let first = [header.as_slice(), &fragments[0], &fragments[1][..100]].concat();
    let lost = tokio::time::timeout(
        Duration::from_secs(2),
        post(h.addr, "/ingest/a/Streams(video)", &auth, &[&first], Duration::from_secs(10)),
    )
    .await;
    assert!(lost.is_err(), "the first connection should still be sending when dropped");
    // Dropping the request dropped its socket: the server sees the body cut short.
    h.wait_for_connections_closed().await;
    assert_eq!(h.fragments("a", "video").len(), 1);
    let again = post_body(&h, "/ingest/a/Streams(video)", &media().video).await;
    assert_eq!(again.status, Some(200), "{again:?}");
    let stored = h.fragments("a", "video");
    let names: Vec<_> = stored.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    // The event starts 10 s in (ffmpeg's video timescale is 12800).
    assert_eq!(names, ["128000.m4s", "153600.m4s", "179200.m4s"], "the track goes on where it was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once() {
    let h = Harness::start(IngestLimits { max_connections: 1, ..IngestLimits::default() }).await;
    let (header, _) = split(&media().video);
    let (name, value) = bearer("a");
    let auth = [(name, value.as_str())];
    // One encoder holds the only connection, sending its header and then nothing for a while.
    let chunks: [&[u8]; 1] = [&header];
    let holder = post(h.addr, "/ingest/a/Streams(video)", &auth, &chunks, Duration::from_secs(2));
    let second = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        post(h.addr, "/ingest/b/Streams(video)", &auth, &[&header], Duration::ZERO).await
    };
    let (holder, second) = tokio::join!(holder, second);
    assert_eq!(second.status, None, "{second:?}");
    assert!(second.closed);
    assert_eq!(holder.status, Some(200), "{holder:?}");
    assert_eq!(h.errors("connections"), 1);
    assert_eq!(h.stored("b"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_pushes_and_keeps_what_was_stored() {
    let mut h = Harness::new().await;
    let (header, fragments) = split(&media().video);
    let (name, value) = bearer("a");
    let auth = [(name, value.as_str())];
    // A push that stores one fragment and then waits for the next; the listener stops meanwhile.
    let first: [&[u8]; 2] = [&[header.as_slice(), &fragments[0]].concat(), &fragments[1]];
    let push = post(h.addr, "/ingest/a/Streams(video)", &auth, &first, Duration::from_secs(3));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        h.stop.take();
        tokio::time::timeout(Duration::from_secs(3), &mut h.served).await
    };
    let (push, served) = tokio::join!(push, stop);
    assert!(served.is_ok(), "the listener did not stop within 3 s of its shutdown");
    assert!(push.closed, "{push:?}");
    assert_ne!(push.status, Some(200), "{push:?}");
    assert_eq!(h.fragments("a", "video").len(), 1);
    assert!(tokio::net::TcpStream::connect(h.addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_dash_push_posts_one_request_per_segment() {
    // ffmpeg's DASH muxer: an MPD, then per representation an init segment and one request per
    // segment (`styp sidx moof mdat`) on a persistent connection. It does not send `-headers`
    // with every request, so the token goes in the path.
    let h = Harness::new().await;
    let m = media();
    let mut cmd = Command::new(common::ffmpeg_bin());
    cmd.args(["-nostdin", "-v", "error", "-re", "-i"]).arg(&m.reference);
    cmd.args(["-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "dash", "-seg_duration", "2"]);
    cmd.args(["-use_template", "1", "-use_timeline", "0", "-method", "POST", "-http_persistent", "1"]);
    cmd.args(["-init_seg_name", "rep$RepresentationID$/init.m4s"]);
    cmd.args(["-media_seg_name", "rep$RepresentationID$/$Number%05d$.m4s"]);
    cmd.arg(h.url(&format!("/{}/ingest.isml/manifest.mpd", token("a"))));
    let status = tokio::task::spawn_blocking(move || cmd.status()).await.unwrap().unwrap();
    assert!(status.success(), "ffmpeg DASH push failed: {status}");
    h.wait_for_connections_closed().await;
    h.assert_decodes_as_reference(&[("rep0", "0:v:0"), ("rep1", "0:a:0")]);
    assert_eq!(h.errors("forbidden") + h.errors("box") + h.errors("malformed"), 0);
}
