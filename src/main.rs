//! The `jit-origin` command: `serve` (the HTTP origin), `inspect` and `package`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};

use std::sync::Arc;
use std::time::Duration;

use jit_origin::config::{Config, Policy};
use jit_origin::manage::api::IngestEndpoints;
use jit_origin::manage::catalog;
use jit_origin::output::package_resources;
use jit_origin::plan::url::{self, Format};
use jit_origin::protect::url_signing;
use jit_origin::serve::conn::{self, ConnLimits, Listener};
use jit_origin::serve::http::{access_log, Service};
use jit_origin::serve::origin::render;
use jit_origin::serve::origin::Origin;
use jit_origin::source::asset::{self, Asset, AssetSource, TrackSummary};
use jit_origin::source::index::TrackKind;
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;
use jit_origin::store::{Sealer, Store};

#[derive(Parser)]
#[command(name = "jit-origin", version, about = "Just-in-time HLS/DASH packaging origin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print an asset's tracks, codecs, durations, GOP structure and segment plan.
    Inspect {
        /// An asset folder, an .ism file or one MP4 file.
        path: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Target segment duration in seconds (default: follow the source GOPs / fragments).
        #[arg(long)]
        segment_duration: Option<f64>,
    },
    /// Run the origin: HLS and DASH per request over HTTP.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, default_value = "config/origin.toml")]
        config: PathBuf,
        /// Log format: human-readable text or one JSON object per line.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Print a signed, expiring URL for a locator whose config has `url_signing_key_base64`.
    SignUrl {
        /// Configuration file holding the locator.
        #[arg(long, default_value = "config/origin.toml")]
        config: PathBuf,
        /// A URL or path of the locator, e.g. https://origin.example/{locator}/{asset}.ism/manifest(format=m3u8-cmaf)
        url: String,
        /// How long the URL stays valid, in seconds.
        #[arg(long, default_value_t = url_signing::DEFAULT_VALID_SECS)]
        valid_secs: u64,
    },
    /// Start or stop a live event of the configuration file: its asset folder's event document
    /// says so to every replica (stopped: the live playlists end, the recording plays as VOD).
    LiveEvent {
        action: LiveEventAction,
        /// Configuration file holding the `[[live_event]]`.
        #[arg(long, default_value = "config/origin.toml")]
        config: PathBuf,
        /// The live event's name.
        name: String,
    },
    /// Write a complete static package whose file names follow the origin's URL grammar.
    Package {
        #[arg(long, value_enum)]
        format: PackageFormat,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// An asset folder, an .ism file or one MP4 file.
        path: PathBuf,
        #[arg(long)]
        segment_duration: Option<f64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LiveEventAction {
    Start,
    Stop,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum PackageFormat {
    /// HLS with CMAF segments (`manifest(format=m3u8-cmaf)`).
    HlsCmaf,
    /// DASH with CMAF segments (`manifest(format=mpd-time-cmaf)`).
    DashCmaf,
    /// DASH with plain ISO BMFF fragments (`manifest(format=mpd-time-csf)`).
    DashCsf,
}

impl From<PackageFormat> for Format {
    fn from(f: PackageFormat) -> Format {
        match f {
            PackageFormat::HlsCmaf => Format::M3u8Cmaf,
            PackageFormat::DashCmaf => Format::MpdTimeCmaf,
            PackageFormat::DashCsf => Format::MpdTimeCsf,
        }
    }
}

/// mimalloc keeps freed segment buffers for reuse; with the system allocator every uncached
/// 1.5 MB segment read faulted in fresh pages from the kernel (half the CPU of an uncached
/// segment in the load benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tells mimalloc to keep freed memory mapped for a second before handing it back to the
/// kernel, instead of its default 10 ms. An origin frees a segment-sized buffer for about every
/// one it allocates; returned pages were faulted in and zero-filled again by the next uncached
/// segment (160 page faults per 1.5 MB segment, 40–60 % of that request's CPU in the load
/// benchmark). Local source reads now recycle their own buffers (`storage::local`), but
/// packaged outputs (encrypted payloads, MPEG-TS) and cloud reads still come and go through
/// the allocator. A second is long enough for steady traffic to reuse the memory and short
/// enough that an idle origin shrinks back. `MIMALLOC_PURGE_DELAY` (milliseconds) overrides it.
fn keep_freed_memory_mapped() {
    // `mi_option_purge_delay` in mimalloc.h (v2); the bindings name no constant for it.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores the value; it is read on each purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
}

type CliResult<T> = Result<T, String>;

/// Local storage rooted at the asset folder's parent, and the asset within it, so file
/// paths read like `ladder/video_150k.mp4` whatever PATH named.
async fn open_local(path: &Path) -> CliResult<(Storage, AssetSource)> {
    let path = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if path.is_dir() {
        let storage = Storage::local("local", path.parent().unwrap_or(&path)).map_err(|e| e.to_string())?;
        let source = asset::resolve_source(&storage, &name(&path), None).await.map_err(|e| e.to_string())?;
        return Ok((storage, source));
    }
    let (root, source) = {
        let folder = path.parent().unwrap_or(Path::new("/"));
        let root = folder.parent().unwrap_or(folder).to_path_buf();
        let rel = if root == folder { name(&path) } else { format!("{}/{}", name(folder), name(&path)) };
        let source =
            if rel.to_ascii_lowercase().ends_with(".ism") { AssetSource::Ism(rel) } else { AssetSource::File(rel) };
        (root, source)
    };
    let storage = Storage::local("local", &root).map_err(|e| e.to_string())?;
    Ok((storage, source))
}

async fn load(path: &Path, segment_duration: Option<f64>) -> CliResult<(Storage, Asset)> {
    let (storage, source) = open_local(path).await?;
    let policy = SegmentPolicy { target_secs: segment_duration };
    let asset = asset::load(&storage, &source, policy).await.map_err(|e| e.to_string())?;
    Ok((storage, asset))
}

async fn inspect(path: &Path, json: bool, segment_duration: Option<f64>) -> CliResult<()> {
    let (_, asset) = load(path, segment_duration).await?;
    if json {
        let tracks: Vec<TrackSummary> = asset.tracks.iter().map(TrackSummary::of).collect();
        let doc = serde_json::json!({ "asset": asset.name, "tracks": tracks });
        println!("{}", serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("asset {} ({} tracks)", asset.name, asset.tracks.len());
    for t in &asset.tracks {
        let index = t.index();
        let info = &index.info;
        let c = &info.codec;
        let what = match t.kind {
            TrackKind::Video => {
                let fps = index.frame_rate().map(|(n, d)| n as f64 / d as f64).unwrap_or(0.0);
                // Dynamic range, colour code points (H.273) and where they were read.
                let mut what = format!("{}x{} {:.3} fps  {}", c.width, c.height, fps, c.video_range().hdr_name());
                if let Some(col) = &c.colour {
                    what.push_str(&format!(
                        " (primaries {} transfer {} matrix {}, {} range, from {})",
                        col.primaries,
                        col.transfer,
                        col.matrix,
                        if col.full_range { "full" } else { "limited" },
                        col.source.as_str()
                    ));
                }
                if let Some(dv) = &c.dolby_vision {
                    what.push_str(&format!(
                        "  Dolby Vision profile {} level {} (rpu {} el {} bl {})",
                        dv.profile_name(),
                        dv.level,
                        u8::from(dv.rpu_present),
                        u8::from(dv.el_present),
                        u8::from(dv.bl_present)
                    ));
                }
                if let Some(supplemental) = c.supplemental_codecs() {
                    what.push_str(&format!(", supplemental {supplemental}"));
                }
                what
            }
            TrackKind::Audio => {
                // The layout the configuration box declares, and Atmos (JOC) objects.
                let mut what = format!("{} Hz, {} ch", c.sample_rate, c.channels);
                if let Some(layout) = c.config.channel_layout() {
                    what.push_str(&format!(" {}", layout.describe()));
                }
                if let Some(objects) = c.config.joc_complexity() {
                    what.push_str(&format!(", Dolby Atmos (JOC, {objects} objects)"));
                }
                what
            }
            TrackKind::Text => {
                let source = match &index.sidecar {
                    Some(vtt) => format!("WebVTT sidecar, {} cues", vtt.cues.len()),
                    None => "text track in MP4".to_string(),
                };
                let name = t.display_name.as_deref().map(|n| format!(", shown as \"{n}\"")).unwrap_or_default();
                let caption = t.accessibility.as_deref().map(|a| format!(", accessibility {a}")).unwrap_or_default();
                format!("{source}{name}{caption}")
            }
        };
        println!(
            "\n{} QualityLevels({}) {} [{}] {} {}  lang={}",
            t.kind.as_str(),
            t.bitrate,
            t.name,
            t.file,
            c.codec_string,
            what,
            t.language
        );
        println!(
            "  track {} timescale {}  {} samples  {:.3} s  edit: empty {} media_time {}  index reads: {}",
            info.track_id,
            info.timescale,
            index.samples.len(),
            index.duration_secs(),
            info.edit.empty_duration,
            info.edit.media_time,
            t.file_index.reads
        );
        let gops = jit_origin::source::asset::gop_durations(index);
        if t.kind == TrackKind::Video && !gops.is_empty() {
            let (min, max) = gops.iter().fold((f64::MAX, 0f64), |(lo, hi), &g| (lo.min(g), hi.max(g)));
            let avg = gops.iter().sum::<f64>() / gops.len() as f64;
            println!(
                "  GOPs: {}  duration min {:.3} avg {:.3} max {:.3} s  B-frames: {}",
                gops.len(),
                min,
                avg,
                max,
                if index.samples.cts_offsets.is_empty() { "no" } else { "yes" }
            );
            // What the I-frame playlist and the DASH trick-mode Representation advertise.
            let frames = jit_origin::plan::keyframes::key_frames(t);
            let (peak, average) = jit_origin::plan::keyframes::bitrates(t, &frames);
            println!("  keyframes (trick play): {}  peak {peak} bit/s  average {average} bit/s", frames.len());
        }
        let tl = &t.timeline;
        println!(
            "  segments: {}  max {:.3} s  peak {} bit/s  average {} bit/s",
            tl.segments.len(),
            tl.max_duration_secs(),
            tl.peak_bitrate,
            tl.average_bitrate
        );
        for s in tl.segments.iter().take(8) {
            println!("    t={} d={} samples={} bytes={}", s.time, s.duration, s.sample_count, s.bytes);
        }
        if tl.segments.len() > 8 {
            println!("    … {} more", tl.segments.len() - 8);
        }
    }
    Ok(())
}

async fn package(path: &Path, format: Format, out: &Path, segment_duration: Option<f64>) -> CliResult<()> {
    let (storage, asset) = load(path, segment_duration).await?;
    let resources = package_resources(&asset, format);
    let progress = ProgressBar::new(resources.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (storage, asset) = (&storage, &asset);
    futures::stream::iter(resources)
        .map(|resource| async move {
            let output = render(storage, asset, &resource, true, None).await.map_err(|e| e.to_string())?;
            let file = out.join(jit_origin::output::package_file_name(asset, &resource));
            if let Some(dir) = file.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            tokio::fs::write(&file, output.to_bytes()).await.map_err(|e| format!("{}: {e}", file.display()))?;
            Ok::<_, String>(())
        })
        .buffer_unordered(8)
        .inspect_ok(|_| progress.inc(1))
        .try_collect::<()>()
        .await?;
    progress.finish_and_clear();
    let manifest = url::format(&package_resources(asset, format)[0], true);
    println!("{}", out.join(manifest).display());
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A terminal shows every line at once; a file or pipe gets the access lines in batches.
    let writer = access_log::LogWriter::new(!ansi);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.event_format(access_log::TextFormat::default()).init();
    }
}

/// Resolves when the process is asked to stop (SIGTERM, or Ctrl-C / SIGINT).
/// `jit-origin sign-url`: the URL with `sig=` added (see `url_signing`).
fn sign_url(config_path: &Path, url: &str, valid_secs: u64) -> CliResult<()> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    // The locator is the first path segment, after any scheme and host.
    let path = url.split_once("://").map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let locator_id = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    let locator = config
        .locator
        .iter()
        .find(|l| l.id == locator_id)
        .ok_or_else(|| format!("no locator '{locator_id}' in {}", config_path.display()))?;
    let key =
        locator.url_signing_key()?.ok_or_else(|| format!("locator '{locator_id}' has no url_signing_key_base64"))?;
    let signed = url_signing::sign_url(url, &key.0, locator_id, valid_secs).ok_or("the signing key was refused")?;
    println!("{signed}");
    Ok(())
}

/// `jit-origin live-event start|stop`: writes the state into the event's asset folder.
async fn live_event(config_path: &Path, name: &str, action: LiveEventAction) -> CliResult<()> {
    use jit_origin::source::live::EventState;
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let origin = Origin::from_config(&config).map_err(|e| e.to_string())?;
    let event = origin
        .config_catalog()
        .live_event(name)
        .cloned()
        .ok_or_else(|| format!("no [[live_event]] '{name}' in {}", config_path.display()))?;
    let state = match action {
        LiveEventAction::Start => EventState::Running,
        LiveEventAction::Stop => EventState::Stopped,
    };
    jit_origin::ingest::writer::set_state(&event, state).await.map_err(|e| format!("live event '{name}': {e}"))?;
    println!("live event '{name}' {}", if state == EventState::Running { "running" } else { "stopped" });
    Ok(())
}

/// Re-reads the TLS certificate on every SIGHUP; a bad new certificate is logged and the
/// current one kept.
fn reload_certificate_on_sighup(cert: Arc<jit_origin::serve::tls::ReloadableCert>) -> CliResult<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match cert.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the current one"),
                }
            }
        });
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled: a signal arriving before that would kill the process with the
/// default action instead of draining it.
fn shutdown_signal() -> CliResult<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let handler = |kind| signal(kind).map_err(|e| format!("signal handler: {e}"));
    let (mut term, mut int) = (handler(SignalKind::terminate())?, handler(SignalKind::interrupt())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// A line for the operator while serving. `println!` panics when stdout is closed (its reader
/// gone); the server must not care.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints where each locator's asset plays, for a newcomer's first look; folders are listed
/// concurrently, lines come out in locator order.
async fn print_urls(origin: Arc<Origin>, addr: std::net::SocketAddr, player_enabled: bool) {
    let mut locators: Vec<_> = origin.config_catalog().locators().cloned().collect();
    locators
        .sort_by(|a, b| (a.policy.kind().as_str(), &a.asset_folder).cmp(&(b.policy.kind().as_str(), &b.asset_folder)));
    let mut first_manifest = None;
    let resolved: Vec<_> = futures::stream::iter(locators)
        .map(|locator| async move {
            let source = asset::resolve_source(&locator.storage, &locator.asset_folder, None).await;
            (locator, source)
        })
        .buffered(16)
        .collect()
        .await;
    for (locator, source) in resolved {
        match source {
            Ok(source) => {
                let base = format!("http://{addr}/{}/{}.ism", locator.id, source.name());
                let label = format!("{} ({})", locator.asset_folder, locator.policy.kind().as_str());
                // What follows `manifest` in each URL; Smooth Streaming's has no format=.
                let manifests: &[&str] = match locator.policy.kind() {
                    Policy::Clear => {
                        &["(format=m3u8-cmaf).m3u8", "(format=mpd-time-cmaf).mpd", "(format=m3u8-aapl).m3u8", ""]
                    }
                    Policy::Envelope => {
                        &["(format=m3u8-aapl,encryption=cbc).m3u8", "(format=m3u8-cmaf,encryption=cbc).m3u8"]
                    }
                    Policy::Cenc => &[
                        "(format=mpd-time-cmaf,encryption=cenc).mpd",
                        "(format=m3u8-cmaf,encryption=cenc).m3u8",
                        "(encryption=cenc)",
                    ],
                    Policy::Cbcs => &[
                        "(format=m3u8-cmaf,encryption=cbcs-aapl).m3u8",
                        "(format=mpd-time-cmaf,encryption=cbcs-aapl).mpd",
                    ],
                    Policy::MultiDrm => &[
                        "(format=mpd-time-cmaf,encryption=cenc).mpd",
                        "(format=mpd-time-cmaf,encryption=cbcs-aapl).mpd",
                        "(format=m3u8-cmaf,encryption=cbcs-aapl).m3u8",
                        "(encryption=cenc)",
                    ],
                };
                // A signed locator refuses unsigned URLs: print them signed, as `sign-url` would.
                let playable = |url: String| match &locator.url_signing_key {
                    Some(key) => {
                        url_signing::sign_url(&url, &key.0, &locator.id, url_signing::DEFAULT_VALID_SECS).unwrap_or(url)
                    }
                    None => url,
                };
                for m in manifests {
                    say(format_args!("{label}: {}", playable(format!("{base}/manifest{m}"))));
                }
                first_manifest.get_or_insert_with(|| {
                    playable(format!("/{}/{}.ism/manifest{}", locator.id, source.name(), manifests[0]))
                });
            }
            Err(e) => tracing::warn!(locator = %locator.id, error = %e, "locator's asset is not loadable"),
        }
    }
    if let (true, Some(manifest)) = (player_enabled, first_manifest) {
        // Manifest paths have no '&' or '#' (a signature adds only `?sig=`), so they read
        // well unencoded in the query.
        say(format_args!("test player: http://{addr}/player?url={manifest}"));
    }
}

/// The store of `[store]` with the sealer of its key material, when one is configured.
fn open_store(origin: &Origin, config: &Config) -> CliResult<Option<(Store, Sealer)>> {
    let Some(store_config) = &config.store else { return Ok(None) };
    let sealer = Sealer::from_env(&store_config.key_env)?;
    let storage = origin.storage(&store_config.storage).cloned().ok_or("[store] storage is not configured")?;
    let store = Store::new(storage, &store_config.prefix).map_err(|e| format!("[store] prefix: {e}"))?;
    Ok(Some((store, sealer)))
}

/// With `[store]`: reads the store once (a store that does not answer is logged, and the
/// config file's locators serve meanwhile), then keeps every replica's published state
/// current in the background.
async fn publish_store(origin: &Arc<Origin>, config: &Config) -> CliResult<()> {
    let (Some(store_config), Some((store, sealer))) = (&config.store, open_store(origin, config)?) else {
        return Ok(());
    };
    let default_storage = config.storage.first().map(|s| s.name.clone());
    catalog::refresh(origin, &store, &sealer, default_storage.as_deref()).await;
    let refresh_secs = store_config.refresh_secs;
    tracing::info!(store = %store.location(), refresh_secs, "publishing the store's documents");
    let every = Duration::from_secs(refresh_secs);
    tokio::spawn(catalog::refresh_forever(origin.clone(), store, sealer, default_storage, every));
    Ok(())
}

/// Resolves once the stop of every listener has been sent.
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|&s| s).await;
}

/// Starts the ingest listeners `[ingest]` configures (CMAF over HTTP, RTMP; they share the
/// connection limit and the writer), each ending once
/// `stopped` says so; returns where encoders reach them and the listeners' tasks.
fn start_ingest(
    config: &Config,
    origin: &Arc<Origin>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> CliResult<(IngestEndpoints, Vec<tokio::task::JoinHandle<()>>)> {
    use jit_origin::ingest::{cmaf, rtmp, writer::LiveWriter, Ingest, IngestLimits};
    let host = config.api.as_ref().and_then(|api| api.ingest_host.clone());
    let mut endpoints = IngestEndpoints { host, ..IngestEndpoints::default() };
    let Some(ingest) = &config.ingest else { return Ok((endpoints, Vec::new())) };
    let limits = IngestLimits {
        max_connections: ingest.max_connections,
        max_fragment_bytes: ingest.max_fragment_mib << 20,
        idle_timeout: Duration::from_secs(ingest.idle_timeout_secs),
    };
    // Fragments this process stores are listed by its own serving side at once.
    let serving = origin.clone();
    let writer = LiveWriter::new(origin.metrics.clone())
        .notifying(Arc::new(move |storage: &str, folder: &str| serving.live_fragment_stored(storage, folder)));
    let shared = Arc::new(Ingest { origin: origin.clone(), writer, limits });
    let bind = |addr| conn::bind(addr, config.limits.listen_backlog).map_err(|e| format!("listen on {addr}: {e}"));
    let mut tasks = Vec::new();
    if let Some(addr) = ingest.listen {
        let tcp = bind(addr)?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, "serving CMAF ingest");
        say(format_args!("CMAF ingest on http://{addr}/ingest/{{event}}/Streams({{name}})"));
        endpoints.cmaf = Some(addr);
        tasks.push(tokio::spawn(cmaf::serve(tcp, shared.clone(), until_stopped(stopped.clone()))));
    }
    if let Some(addr) = ingest.rtmp_listen {
        let tcp = bind(addr)?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, "serving RTMP ingest");
        say(format_args!("RTMP ingest on rtmp://{addr}/live/{{access token}}"));
        endpoints.rtmp = Some(addr);
        tasks.push(tokio::spawn(rtmp::serve(tcp, shared, until_stopped(stopped.clone()))));
    }
    Ok((endpoints, tasks))
}

/// Starts the management API when `[api]` is configured, on its own listener; the task ends
/// once `stopping` resolves and the API's in-flight requests have finished.
fn start_api(
    config: &Config,
    origin: &Arc<Origin>,
    ingest: IngestEndpoints,
    stopping: impl std::future::Future<Output = ()> + Send + 'static,
) -> CliResult<Option<tokio::task::JoinHandle<()>>> {
    use jit_origin::manage::{api::Api, auth::Auth, server};
    let Some(api) = &config.api else { return Ok(None) };
    // The config check makes sure [store] is there with [api].
    let (store, sealer) = open_store(origin, config)?.ok_or("[api] needs [store]")?;
    let tcp =
        conn::bind(api.listen, config.limits.listen_backlog).map_err(|e| format!("listen on {}: {e}", api.listen))?;
    let addr = tcp.local_addr().map_err(|e| e.to_string())?;
    let tls = match api.tls() {
        Some(tls) => {
            let (acceptor, cert) = jit_origin::serve::tls::acceptor(&tls)?;
            reload_certificate_on_sighup(cert)?;
            Some(acceptor)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "serving the management API");
    say(format_args!("management API on {scheme}://{addr}"));
    let default_storage = config.storage.first().map(|s| s.name.clone());
    let api =
        Api::new(Arc::new(store), Arc::new(sealer), origin.clone(), Auth::new(api)?, default_storage, &config.limits)
            .with_ingest(ingest);
    let (limits, drain) = (config.limits.clone(), Duration::from_secs(config.lifecycle.drain_secs));
    Ok(Some(tokio::spawn(async move { server::serve(tcp, tls, Arc::new(api), &limits, stopping, drain).await })))
}

async fn serve(config_path: &Path, log_format: LogFormat) -> CliResult<()> {
    init_logging(log_format);
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let signal = shutdown_signal()?;
    let origin = Arc::new(Origin::from_config(&config).map_err(|e| e.to_string())?);
    publish_store(&origin, &config).await?;
    // One stop for every listener: the media ones, the management API and ingest.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        signal.await;
        let _ = stop.send(true);
    };
    let (ingest_endpoints, ingest) = start_ingest(&config, &origin, &stopped)?;
    let api = start_api(&config, &origin, ingest_endpoints, until_stopped(stopped))?;
    let bind = |addr| conn::bind(addr, config.limits.listen_backlog).map_err(|e| format!("listen on {addr}: {e}"));
    let listener = bind(config.listen)?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut listeners = vec![Listener::plain(listener)];
    tracing::info!(%addr, "serving HTTP");
    if let Some(tls) = &config.tls {
        let (acceptor, cert) = jit_origin::serve::tls::acceptor(tls)?;
        reload_certificate_on_sighup(cert)?;
        let tcp = bind(tls.listen)?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, "serving HTTPS");
        say(format_args!("HTTPS on {addr}"));
        listeners.push(Listener::tls(tcp, acceptor));
    }
    if let Some(health) = config.limits.health_listen {
        let tcp = bind(health)?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
        say(format_args!("health and metrics on {addr}"));
        listeners.push(Listener::health(tcp));
    }
    // Serve at once; the playable URLs follow when each locator's folder has been listed
    // (a slow or unreachable storage account must not hold up the start).
    tokio::spawn(print_urls(origin.clone(), addr, config.player.enabled));
    let mut service = Service::new(origin, config.http.clone()).with_limits(&config.limits).with_player(&config.player);
    if let Some(p) = &config.origin_protection {
        let header =
            http::HeaderName::from_bytes(p.header.as_bytes()).map_err(|e| format!("origin_protection: {e}"))?;
        service = service.with_origin_protection(header, p.secret_bytes()?);
    }
    let drain = Duration::from_secs(config.lifecycle.drain_secs);
    conn::serve_connections(listeners, Arc::new(service), ConnLimits::from(&config.limits), shutdown, drain)
        .await
        .map_err(|e| e.to_string())?;
    for task in api.into_iter().chain(ingest) {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    keep_freed_memory_mapped();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, log_format } => serve(&config, log_format).await,
        Command::SignUrl { config, url, valid_secs } => sign_url(&config, &url, valid_secs),
        Command::LiveEvent { action, config, name } => live_event(&config, &name, action).await,
        Command::Inspect { path, json, segment_duration } => inspect(&path, json, segment_duration).await,
        Command::Package { format, out, path, segment_duration } => {
            package(&path, format.into(), &out, segment_duration).await
        }
    };
    access_log::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
