//! Shared by the decoding-oracle tests (DESIGN.md §8 "Lossless").
//!
//! For every asset under `fixtures/` and for HLS-CMAF and DASH-CMAF, package the asset with
//! `jit-origin package` into a temporary directory, then decode every track twice with ffmpeg
//! (`-f framemd5`): once from the source MP4, once from our HLS media playlist / DASH MPD.
//! The sequences of per-frame MD5s must be equal, frame count included, video and audio.
//!
//! ffmpeg facts this relies on (ffmpeg 5.1.9, see fixtures/README.md):
//! * `-map 0:i:N` selects an MP4 stream by its track_ID (ffmpeg's stream id for mov).
//! * ffmpeg's dash demuxer exposes Representation@id as stream metadata `id`, so a DASH
//!   representation is selected with `-map 0:m:id:{name}-{bitrate}`.
//! * The dash demuxer resolves segment URLs wrongly when the MPD is given as a *relative*
//!   path (it prefixes the directory twice), so every path handed to ffmpeg is absolute.
//! * The hls demuxer accepts `.mp4` init / `.m4s` segments by default (extension list);
//!   `-extension_picky` exists in 5.1.9 and is only needed for extensionless URLs.
//! * The source is decoded with `-ignore_editlist 1`: every coded sample, no trimming. Our
//!   init segments carry the source's edit list (AAC priming, AC-3 delay, B-frame delay,
//!   empty edits) as CMAF prescribes, but ffmpeg 5.1 applies an `elst` in fragmented MP4
//!   only as a timestamp shift and never trims decoded audio, so the comparison that holds
//!   for every codec is "every coded sample decodes to the same frame". Set
//!   `LOSSLESS_HONOR_EDITLIST=1` to decode the source with its edit list applied instead.
//!
//! Environment: `JIT_ORIGIN_BIN` overrides the binary under test; `FFMPEG` the ffmpeg path.

#![allow(dead_code)] // each test binary uses a different subset

pub mod emulator;
pub mod fault_proxy;
pub mod smooth;
pub mod store;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub enum Format {
    Hls,
    Dash,
}

impl Format {
    fn cli(self) -> &'static str {
        match self {
            Format::Hls => "hls-cmaf",
            Format::Dash => "dash-cmaf",
        }
    }
    fn manifest_file(self) -> &'static str {
        match self {
            Format::Hls => "manifest(format=m3u8-cmaf).m3u8",
            Format::Dash => "manifest(format=mpd-time-cmaf).mpd",
        }
    }
}

#[derive(Debug)]
pub struct Track {
    pub name: String,
    pub bitrate: u64,
    pub file: String,
    pub track_id: u64,
    pub kind: String,
    /// The codec family `inspect` names ("Avc", "Hevc", "Aac", "Ac3", "Eac3", "Av1", …).
    pub family: String,
    /// The source's sample entry type ("avc1", "hvc1", "dvh1", "mp4a", …).
    pub sample_entry: String,
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The name of the storage account [`fixtures_storage_toml`] declares.
pub const FIXTURES_STORAGE: &str = "fixtures";

/// Config TOML for a storage account over the fixtures folder.
pub fn fixtures_storage_toml() -> String {
    format!("[[storage]]\nname = \"{FIXTURES_STORAGE}\"\nurl = \"file://{}\"\n", fixtures_dir().display())
}

/// Config TOML for a clear locator `id` serving the fixtures' `asset` folder.
pub fn clear_locator_toml(id: &str, asset: &str) -> String {
    format!("[[locator]]\nid = \"{id}\"\nstorage = \"{FIXTURES_STORAGE}\"\nasset = \"{asset}\"\npolicy = \"clear\"\n")
}

pub fn bin() -> PathBuf {
    std::env::var_os("JIT_ORIGIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_jit-origin")))
}

pub fn ffmpeg_bin() -> OsString {
    std::env::var_os("FFMPEG").unwrap_or_else(|| "ffmpeg".into())
}

pub fn show_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(|c: char| c.is_whitespace() || "()=,;$".contains(c)) {
            write!(s, " '{a}'").unwrap();
        } else {
            write!(s, " {a}").unwrap();
        }
    }
    s
}

/// Runs a command, returns stdout; Err carries the command line, status and stderr.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let shown = show_cmd(cmd);
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{shown}` failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

pub fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

pub fn inspect(asset_dir: &Path) -> Vec<Track> {
    let stdout = run(Command::new(bin()).arg("inspect").arg(asset_dir).arg("--json")).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&stdout);
    // Tolerate log lines before the JSON document.
    let json = &text[text.find('{').unwrap_or(0)..];
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}):\n{text}"));
    let tracks = v["tracks"].as_array().unwrap_or_else(|| panic!("inspect output has no `tracks` array:\n{text}"));
    let tracks: Vec<Track> = tracks
        .iter()
        .map(|t| Track {
            name: t["name"].as_str().unwrap_or_else(|| panic!("track without name: {t}")).to_owned(),
            bitrate: as_u64(&t["bitrate"]).unwrap_or_else(|| panic!("track without bitrate: {t}")),
            file: t["file"].as_str().unwrap_or_else(|| panic!("track without file: {t}")).to_owned(),
            track_id: as_u64(&t["info"]["track_id"]).unwrap_or_else(|| panic!("track without info.track_id: {t}")),
            kind: t["info"]["kind"].as_str().unwrap_or("").to_owned(),
            family: t["info"]["codec"]["family"].as_str().unwrap_or("").to_owned(),
            sample_entry: t["info"]["codec"]["sample_entry_type"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    assert!(!tracks.is_empty(), "inspect found no tracks in {}:\n{text}", asset_dir.display());
    tracks
}

/// `file` is relative to the storage root (the parent of the asset folder) or to the asset
/// folder itself; accept both, and an absolute path.
pub fn resolve_source(asset_dir: &Path, file: &str) -> PathBuf {
    let f = Path::new(file);
    let mut candidates = Vec::new();
    if f.is_absolute() {
        candidates.push(f.to_path_buf());
    }
    candidates.push(asset_dir.join(f));
    if let Some(root) = asset_dir.parent() {
        candidates.push(root.join(f));
        if let Some(repo) = root.parent() {
            candidates.push(repo.join(f));
        }
    }
    if let Some(base) = f.file_name() {
        candidates.push(asset_dir.join(base));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("track file {file:?} not found; tried {candidates:?}"))
}

/// Decodes with ffmpeg to framemd5; returns the non-comment lines.
pub fn framemd5(input_opts: &[&OsStr], input: &Path, map: &str) -> Result<Vec<String>, String> {
    let mut cmd = Command::new(ffmpeg_bin());
    cmd.args(["-nostdin", "-hide_banner", "-v", "error"]).args(input_opts).arg("-i").arg(input).args([
        "-map",
        map,
        "-fps_mode",
        "passthrough",
        "-f",
        "framemd5",
        "-",
    ]);
    let out = run(&mut cmd)?;
    let lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(format!("`{}` decoded no frames", show_cmd(&cmd)));
    }
    Ok(lines)
}

/// framemd5 columns: stream, dts, pts, duration, size, hash. Reports up to 8 places where
/// a frame's pts is later than the previous frame's pts + duration.
pub fn pts_gaps(lines: &[String]) -> Vec<String> {
    let cols = |l: &str| -> Option<(i64, i64)> {
        let c: Vec<&str> = l.split(',').map(str::trim).collect();
        Some((c.get(2)?.parse().ok()?, c.get(3)?.parse().ok()?))
    };
    let mut gaps = Vec::new();
    for (i, w) in lines.windows(2).enumerate() {
        if let (Some((p0, d0)), Some((p1, _))) = (cols(&w[0]), cols(&w[1])) {
            if d0 > 0 && p1 > p0 + d0 {
                gaps.push(format!("after frame #{i} pts {p0}+{d0} next pts {p1}"));
            }
        }
    }
    gaps.truncate(8);
    gaps
}

pub fn hash_of(line: &str) -> &str {
    line.rsplit(',').next().unwrap_or("").trim()
}

/// Compares two framemd5 outputs by hash; Err describes the first difference.
pub fn compare(src: &[String], ours: &[String]) -> Result<(), String> {
    let first_diff = src.iter().zip(ours).position(|(a, b)| hash_of(a) != hash_of(b));
    if first_diff.is_none() && src.len() == ours.len() {
        return Ok(());
    }
    let mut m = format!("frame count: source {} vs ours {}\n", src.len(), ours.len());
    match first_diff {
        Some(i) => {
            writeln!(m, "first differing frame #{i}:").unwrap();
            writeln!(m, "  source: {}", src[i]).unwrap();
            writeln!(m, "  ours:   {}", ours[i]).unwrap();
            // Is ours just shifted (missing/extra leading frames, e.g. AAC priming)?
            if let Some(j) = ours.iter().position(|l| hash_of(l) == hash_of(&src[i])) {
                writeln!(m, "  (source frame #{i} appears in ours at #{j})").unwrap();
            }
        }
        None => writeln!(m, "all {} common frames equal", src.len().min(ours.len())).unwrap(),
    }
    let gaps = pts_gaps(ours);
    if !gaps.is_empty() {
        writeln!(m, "pts gaps in ours (frame missing?): {}", gaps.join("; ")).unwrap();
    }
    let gaps = pts_gaps(src);
    if !gaps.is_empty() {
        writeln!(m, "pts gaps in source: {}", gaps.join("; ")).unwrap();
    }
    writeln!(m, "first 5 source frames:").unwrap();
    for l in src.iter().take(5) {
        writeln!(m, "  {l}").unwrap();
    }
    writeln!(m, "first 5 output frames:").unwrap();
    for l in ours.iter().take(5) {
        writeln!(m, "  {l}").unwrap();
    }
    Err(m)
}

pub fn list_tree(dir: &Path) -> String {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    let n = files.len();
    files.truncate(40);
    let mut s = files.join("\n  ");
    if n > 40 {
        write!(s, "\n  … ({n} files)").unwrap();
    }
    format!("  {s}")
}

/// An attribute of the first `<tag …>` in `xml` (attribute values as written, entities kept).
pub fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Text between `open` and `close` after the start of `xml`.
pub fn element_text<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let at = xml.find(open)? + open.len();
    Some(&xml[at..at + xml[at..].find(close)?])
}

pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// Init and media segment URLs of Representation `id`, from its SegmentTemplate and
/// SegmentTimeline ($Time$), resolved against the MPD URL.
pub fn dash_segment_urls(mpd_url: &str, mpd: &str, id: &str) -> (String, Vec<String>) {
    let base = &mpd_url[..mpd_url.rfind('/').unwrap() + 1];
    let rep =
        &mpd[mpd.find(&format!("<Representation id=\"{id}\"")).unwrap_or_else(|| panic!("no Representation {id}"))..];
    let rep = &rep[..rep.find("</Representation>").unwrap()];
    let template = &rep[rep.find("<SegmentTemplate").expect("SegmentTemplate")..];
    let head = &template[..template.find('>').unwrap()];
    let init = xml_unescape(attr(head, "initialization").expect("initialization"));
    let media = xml_unescape(attr(head, "media").expect("media"));
    let timeline = element_text(template, "<SegmentTimeline>", "</SegmentTimeline>").expect("SegmentTimeline");
    let mut t = 0u64;
    let mut urls = Vec::new();
    for s in timeline.split("<S ").skip(1) {
        let s = format!(" {}", &s[..s.find("/>").unwrap()]);
        if let Some(start) = attr(&s, "t") {
            t = start.parse().unwrap();
        }
        let d: u64 = attr(&s, "d").expect("d").parse().unwrap();
        let r: u64 = attr(&s, "r").map_or(0, |r| r.parse().unwrap());
        for _ in 0..=r {
            urls.push(format!("{base}{}", media.replace("$Time$", &t.to_string())));
            t += d;
        }
    }
    (format!("{base}{init}"), urls)
}

/// The ids of an MPD's media Representations (the thumbnail tile set's, which has no init
/// segment and no frames, left out: tests/thumbnails.rs checks it).
pub fn representation_ids(mpd: &str) -> Vec<String> {
    mpd.split("<Representation")
        .skip(1)
        .filter_map(|r| {
            let tag = &r[..r.find('>').unwrap_or(r.len())];
            let i = tag.find(" id=\"")? + 5;
            Some(tag[i..i + tag[i..].find('"')?].to_owned())
        })
        .filter(|id| !id.starts_with("thumbnails-"))
        .collect()
}

/// A source track with the frames it decodes to, and ffmpeg's stream kind for it ("v", "a").
pub struct SourceFrames {
    pub track: Track,
    pub kind_sel: &'static str,
    pub frames: Vec<String>,
}

/// Decodes every audio and video track of the asset in `asset_dir` from its source file,
/// once each (text and unknown kinds have no frames to compare). Sources that fail to decode
/// are reported in `failures`. Edit lists are ignored (every coded sample is compared) unless
/// `LOSSLESS_HONOR_EDITLIST=1`.
pub fn source_frames(asset_dir: &Path, failures: &mut Vec<String>) -> Vec<SourceFrames> {
    let asset = asset_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ignore_editlist = std::env::var_os("LOSSLESS_HONOR_EDITLIST").is_none_or(|v| v != "1");
    let src_opts: Vec<&OsStr> =
        if ignore_editlist { vec![OsStr::new("-ignore_editlist"), OsStr::new("1")] } else { vec![] };
    let mut out = Vec::new();
    for track in inspect(asset_dir) {
        let kind_sel = match track.kind.as_str() {
            "video" => "v",
            "audio" => "a",
            _ => continue,
        };
        let source = resolve_source(asset_dir, &track.file);
        match framemd5(&src_opts, &source, &format!("0:i:{}", track.track_id)) {
            Ok(frames) => out.push(SourceFrames { track, kind_sel, frames }),
            Err(e) => failures.push(format!("{asset} track {:?}: decoding the source failed: {e}", track.name)),
        }
    }
    out
}

/// Packages the asset in `asset_dir` in each of `formats`, then checks that every audio and
/// video track decodes to the same frames as its source. The source is decoded once per track.
pub fn check_asset(asset_dir: &Path, formats: &[Format]) {
    assert!(asset_dir.is_dir(), "missing asset {}; run fixtures/make-fixtures.sh", asset_dir.display());
    let asset = asset_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();

    let packages: Vec<(Format, tempfile::TempDir, PathBuf)> = formats
        .iter()
        .map(|&format| {
            let tmp = tempfile::tempdir().expect("tempdir");
            // Absolute path: ffmpeg's dash demuxer mis-resolves segment URLs of a relative MPD path.
            let out = tmp.path().canonicalize().expect("canonical tempdir");
            run(Command::new(bin())
                .arg("package")
                .args(["--format", format.cli()])
                .arg("--out")
                .arg(&out)
                .arg(asset_dir))
            .unwrap_or_else(|e| panic!("{e}"));
            let manifest = out.join(format.manifest_file());
            assert!(manifest.is_file(), "no manifest {}; package wrote:\n{}", manifest.display(), list_tree(&out));
            (format, tmp, out)
        })
        .collect();

    let mut failures = Vec::new();
    let sources = source_frames(asset_dir, &mut failures);
    let mut checked = 0;
    for SourceFrames { track: t, kind_sel, frames: src } in &sources {
        for (format, _, out) in &packages {
            let label = format!(
                "{asset}/{format:?} track {:?} ({}, bitrate {}, {} track_ID {})",
                t.name, t.kind, t.bitrate, t.file, t.track_id
            );
            let ours = match format {
                Format::Hls => {
                    let playlist = out
                        .join(format!("QualityLevels({})", t.bitrate))
                        .join(format!("Manifest({},format=m3u8-cmaf).m3u8", t.name));
                    if !playlist.is_file() {
                        failures.push(format!(
                            "{label}: no media playlist {}; package wrote:\n{}",
                            playlist.display(),
                            list_tree(out)
                        ));
                        continue;
                    }
                    framemd5(&[], &playlist, &format!("0:{kind_sel}:0"))
                }
                Format::Dash => {
                    let mpd_path = out.join(format.manifest_file());
                    let id = format!("{}-{}", t.name, t.bitrate);
                    let ids = representation_ids(&std::fs::read_to_string(&mpd_path).unwrap_or_default());
                    if !ids.contains(&id) {
                        failures.push(format!("{label}: no Representation id=\"{id}\" in the MPD; ids: {ids:?}"));
                        continue;
                    }
                    framemd5(&[], &mpd_path, &format!("0:m:id:{id}"))
                }
            };
            checked += 1;
            match ours.and_then(|ours| compare(src, &ours)) {
                Ok(()) => eprintln!("ok: {label}: {} frames equal", src.len()),
                Err(e) => failures.push(format!("{label}:\n{e}")),
            }
        }
    }
    if !failures.is_empty() {
        let kept: Vec<String> = packages.into_iter().map(|(_, tmp, _)| tmp.keep().display().to_string()).collect();
        panic!(
            "{} of {} checks not lossless (packages left in {kept:?} for debugging):\n\n{}",
            failures.len(),
            sources.len() * formats.len(),
            failures.join("\n\n")
        );
    }
    assert!(checked > 0, "{asset}: no audio or video tracks checked");
}

/// ffmpeg: per-segment decryption (ffmpeg 5.1 finds a sample's senc entry in the last parsed
/// fragment only, so every segment goes to ffmpeg with the init segment alone), the
/// elementary streams concatenated and decoded once.
pub fn ffmpeg_decrypt_decode(
    init: &[u8],
    segments: &[Vec<u8>],
    key_hex: &str,
    map: &str,
    raw: &str,
    dir: &Path,
) -> Result<Vec<String>, String> {
    let mut elementary = Vec::new();
    for (k, seg) in segments.iter().enumerate() {
        let file = dir.join(format!("{raw}-seg{k}.mp4"));
        std::fs::write(&file, [init, &seg[..]].concat()).unwrap();
        let mut cmd = Command::new(ffmpeg_bin());
        cmd.args(["-nostdin", "-hide_banner", "-v", "error", "-decryption_key", key_hex, "-i"]).arg(&file);
        cmd.args(["-map", map, "-c", "copy", "-f", raw, "-"]);
        elementary.extend(run(&mut cmd)?);
    }
    let out = dir.join(format!("decrypted.{raw}"));
    std::fs::write(&out, elementary).unwrap();
    framemd5(&[], &out, "0:0")
}

/// An origin served in-process on its own runtime thread; stopped (and joined) on drop.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `origin` on an ephemeral port.
    pub fn serve(origin: jit_origin::serve::origin::Origin, http: jit_origin::config::HttpConfig) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        TestServer::serve_on(listener, origin, http)
    }

    /// Serves `origin` on a listener the caller bound (so a config can name its port).
    pub fn serve_on(
        listener: std::net::TcpListener,
        origin: jit_origin::serve::origin::Origin,
        http: jit_origin::config::HttpConfig,
    ) -> TestServer {
        let service = jit_origin::serve::http::Service::new(std::sync::Arc::new(origin), http);
        TestServer::serve_service(listener, service, &jit_origin::config::LimitsConfig::default())
    }

    /// Serves a configured `service` with connection `limits`, on its own runtime.
    pub fn serve_service(
        listener: std::net::TcpListener,
        service: jit_origin::serve::http::Service,
        limits: &jit_origin::config::LimitsConfig,
    ) -> TestServer {
        use std::sync::Arc;
        use std::time::Duration;
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let limits = jit_origin::serve::conn::ConnLimits::from(limits);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("origin-under-test".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let listeners = vec![jit_origin::serve::conn::Listener::plain(listener)];
                    let stopped = async move {
                        let _ = stopped.await;
                    };
                    jit_origin::serve::conn::serve_connections(
                        listeners,
                        Arc::new(service),
                        limits,
                        stopped,
                        Duration::from_secs(2),
                    )
                    .await
                    .expect("serve");
                });
            })
            .expect("server thread");
        TestServer { addr, stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP response as the tests look at it.
pub struct Got {
    /// The request, e.g. "GET http://…/manifest(…)", for failure messages.
    pub what: String,
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub version: reqwest::Version,
}

impl Got {
    pub fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn describe(&self) -> String {
        let body: String = self.text().chars().take(300).collect();
        format!("{} → {} {:?} headers {:?} body {body:?}", self.what, self.status, self.version, self.headers)
    }
    /// Asserts a 200 and returns self.
    pub fn ok(self) -> Got {
        assert_eq!(self.status, reqwest::StatusCode::OK, "{}", self.describe());
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.describe()))
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().expect("client")
}

pub async fn request(client: &reqwest::Client, method: reqwest::Method, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut rb = client.request(method.clone(), url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status();
    let headers = resp.headers().clone();
    let version = resp.version();
    let body = resp.bytes().await.unwrap_or_else(|e| panic!("{method} {url}: body: {e}")).to_vec();
    Got { what: format!("{method} {url}"), status, headers, body, version }
}

pub async fn get(client: &reqwest::Client, url: &str) -> Got {
    request(client, reqwest::Method::GET, url, &[]).await
}

/// A GET from synchronous code (a throwaway runtime).
pub fn get_blocking(url: &str) -> Got {
    let url = url.to_string();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move { get(&client(), &url).await })
}

/// Decodes every audio and video track of the asset in `asset_dir` from `server`'s HLS media
/// playlists and DASH MPD and compares with the source's frames; `media_path(rest)` is the
/// asset's `/{locator}/{asset}.ism/{rest}` on that server.
pub fn check_lossless_over_http(server: &TestServer, asset_dir: &Path, media_path: &dyn Fn(&str) -> String) {
    let asset = asset_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mpd_url = server.url(&media_path("manifest(format=mpd-time-cmaf).mpd"));
    let mpd = get_blocking(&mpd_url);
    assert_eq!(mpd.status, 200, "{mpd_url}: {}", mpd.describe());
    let ids = representation_ids(&mpd.text());

    let mut failures = Vec::new();
    let sources = source_frames(asset_dir, &mut failures);
    let mut checked = 0;
    for SourceFrames { track: t, kind_sel, frames: src } in &sources {
        let playlist = server
            .url(&media_path(&format!("QualityLevels({})/Manifest({},format=m3u8-cmaf).m3u8", t.bitrate, t.name)));
        let id = format!("{}-{}", t.name, t.bitrate);
        let cases: [(&str, &str, String); 2] =
            [("HLS", &playlist, format!("0:{kind_sel}:0")), ("DASH", &mpd_url, format!("0:m:id:{id}"))];
        for (label, url, map) in cases {
            if label == "DASH" && !ids.contains(&id) {
                failures.push(format!(
                    "{asset} DASH {:?}: no Representation id=\"{id}\" in {mpd_url}; ids {ids:?}",
                    t.name
                ));
                continue;
            }
            checked += 1;
            match framemd5(&[], Path::new(url), &map).and_then(|ours| compare(src, &ours)) {
                Ok(()) => eprintln!("ok: {asset} {label} {} ({}): {} frames equal", t.name, t.bitrate, src.len()),
                Err(e) => {
                    failures.push(format!("{asset} {label} track {:?} bitrate {} from {url}:\n{e}", t.name, t.bitrate))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} decodes over HTTP not lossless:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(checked > 0, "{asset}: nothing checked");
}

// Prometheus metrics as the tests read them.

pub type Samples = Vec<(String, std::collections::BTreeMap<String, String>, f64)>;

pub async fn scrape(c: &reqwest::Client, server: &TestServer) -> Samples {
    let got = get(c, &server.url("/metrics")).await;
    assert_eq!(got.status, 200, "/metrics: {}", got.describe());
    parse_metrics(&got.text())
}

/// Parses the Prometheus text format (enough of it for our own exposition).
pub fn parse_metrics(text: &str) -> Samples {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let labels = rest
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), std::collections::BTreeMap::new()),
        };
        out.push((name, labels, value));
    }
    out
}

/// Sum of the series of `name` whose labels include `labels`.
pub fn metric(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

pub fn counter_delta(before: &Samples, after: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(after, name, labels) - metric(before, name, labels)
}

/// A self-signed certificate for localhost / 127.0.0.1, made by openssl.
pub fn make_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA (rustls refuses a CA as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}
