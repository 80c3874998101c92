//! Cloud storage accounts against real servers: an S3-compatible server (moto), Azurite
//! (Azure Blob) and fake-gcs-server (GCS), each started as a child process on an ephemeral
//! port (`tests/common/emulator.rs`), seeded with the fixtures, and stopped when the test ends
//! (on failure too).
//!
//! * `*_serves_every_fixture_losslessly`: the HTTP decoding oracle (HLS and DASH) over every
//!   fixture asset from each backend, then an asset reload that reads no unchanged file again.
//! * `request_economy_over_s3`: storage requests to index an asset and build an uncached
//!   segment, from the origin's metrics and, independently, from the S3 server's request log.
//! * `faults_over_*`: a fault-injecting proxy between the origin and each emulator
//!   (`tests/common/fault_proxy.rs`): down, hanging, trickling, 5xx bursts, responses dropped
//!   mid-body, a missing object, a source replaced after indexing; statuses and times, cached
//!   segments and other accounts serving meanwhile, and recovery without a restart.
//! * `replaced_object_is_served_after_the_asset_ttl`: freshness of a changed source.

mod common;

use common::emulator::{block_on, repo, Backend, Emulator, AZURITE_KEY, BUCKET, GCS_TOKEN, S3_SECRET};
use common::fault_proxy::{Fault, FaultProxy};
use common::{client, counter_delta, get, scrape, Got, TestServer};

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

/// Every fixture asset folder; each backend serves all of them.
const ASSETS: &[&str] = &["ladder", "ladder-frag", "ladder-cmaf", "muxed", "hevc", "dolby", "edit"];

// ---------------------------------------------------------------------------------------
// The origin over emulator accounts.

/// An origin config: `accounts` (`[[storage]]` blocks), and one clear locator per
/// (locator id, storage, asset folder).
fn config(accounts: &[String], locators: &[(&str, &str, &str)], asset_ttl_secs: u64) -> Config {
    let mut text = format!("listen = \"127.0.0.1:0\"\n[cache]\nasset_ttl_secs = {asset_ttl_secs}\n");
    for account in accounts {
        text.push_str(account);
        text.push('\n');
    }
    for (id, storage, asset) in locators {
        text.push_str(&format!(
            "[[locator]]\nid = \"{id}\"\nstorage = \"{storage}\"\nasset = \"{asset}\"\npolicy = \"clear\"\n"
        ));
    }
    Config::parse(&text, repo().to_path_buf()).unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

fn serve(config: &Config) -> TestServer {
    TestServer::serve(Origin::from_config(config).expect("origin"), config.http.clone())
}

/// The local fixtures as an account, to show other accounts keep serving.
fn local_account(name: &str) -> String {
    format!("[[storage]]\nname = \"{name}\"\nurl = \"file://{}\"\n", common::fixtures_dir().display())
}

fn path(locator: &str, asset: &str, rest: &str) -> String {
    format!("/{locator}/{asset}.ism/{rest}")
}

/// URIs of an HLS playlist, resolved against its URL.
fn playlist_uris(playlist_url: &str, text: &str) -> Vec<String> {
    let base = &playlist_url[..playlist_url.rfind('/').expect("slash") + 1];
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| format!("{base}{l}")).collect()
}

/// Media segment URLs of the first video variant of an asset's HLS `format`.
async fn video_segments(
    c: &reqwest::Client,
    server: &TestServer,
    locator: &str,
    asset: &str,
    format: &str,
) -> Vec<String> {
    let multivariant = server.url(&path(locator, asset, &format!("manifest(format={format})")));
    let text = get(c, &multivariant).await.ok().text();
    let variant = playlist_uris(&multivariant, &text)
        .into_iter()
        .find(|u| u.contains("Manifest(video"))
        .unwrap_or_else(|| panic!("no video variant in\n{text}"));
    let got = get(c, &variant).await.ok();
    let uris = playlist_uris(&variant, &got.text());
    assert!(uris.len() >= 3, "{}", got.describe());
    uris
}

// ---------------------------------------------------------------------------------------
// 1. Every fixture, losslessly, from each backend.

fn check_backend_lossless(backend: Backend) {
    let started = Instant::now();
    let emulator = Emulator::start(backend);
    emulator.seed(ASSETS);
    eprintln!("{backend:?}: started and seeded in {:?}", started.elapsed());
    let locators: Vec<(String, &str)> = ASSETS.iter().map(|a| (format!("loc-{a}"), *a)).collect();
    let locator_rows: Vec<(&str, &str, &str)> = locators.iter().map(|(id, a)| (id.as_str(), "cloud", *a)).collect();
    let ttl = 2;
    let config = config(&[emulator.account("cloud", "")], &locator_rows, ttl);
    let server = serve(&config);
    for (id, asset) in &locators {
        common::check_lossless_over_http(&server, &common::fixtures_dir().join(asset), &|rest| path(id, asset, rest));
    }
    eprintln!("{backend:?}: lossless over HTTP in {:?}", started.elapsed());

    // A reload after the asset TTL lists the folder and reuses every index: the versions
    // the listing reports (size, ETag, mtime) match those the indexing reads saw.
    block_on(async {
        let c = client();
        for (id, asset) in [("loc-hevc", "hevc"), ("loc-ladder-cmaf", "ladder-cmaf")] {
            let url = server.url(&path(id, asset, "manifest(format=mpd-time-cmaf)"));
            let first = get(&c, &url).await.ok();
            let before = scrape(&c, &server).await;
            tokio::time::sleep(Duration::from_millis(ttl * 1000 + 500)).await;
            let again = get(&c, &url).await.ok();
            let after = scrape(&c, &server).await;
            let d = |kind| {
                counter_delta(&before, &after, "jit_storage_requests_total", &[("storage", "cloud"), ("kind", kind)])
            };
            // ladder-cmaf's .ism is read again; hevc has none.
            let ism_reads = if asset == "hevc" { 0.0 } else { 1.0 };
            assert_eq!(again.body, first.body, "{backend:?} {asset}: reload changed the manifest");
            assert_eq!(again.header("etag"), first.header("etag"), "{backend:?} {asset}: reload changed the ETag");
            assert_eq!(d("list"), 1.0, "{backend:?} {asset}: reload lists the folder once");
            assert_eq!(d("get"), ism_reads, "{backend:?} {asset}: reload read unchanged media files again");
        }
    });
}

#[test]
fn s3_serves_every_fixture_losslessly() {
    check_backend_lossless(Backend::S3);
}

#[test]
fn azure_serves_every_fixture_losslessly() {
    check_backend_lossless(Backend::Azure);
}

#[test]
fn gcs_serves_every_fixture_losslessly() {
    check_backend_lossless(Backend::Gcs);
}

// ---------------------------------------------------------------------------------------
// 2. Request economy, through the real HTTP backend.

#[test]
fn request_economy_over_s3() {
    let s3 = Emulator::start(Backend::S3);
    s3.seed(&["hevc", "muxed", "ladder"]);
    let config = config(
        &[s3.account("s3", "")],
        &[("loc-hevc", "s3", "hevc"), ("loc-muxed", "s3", "muxed"), ("loc-ladder", "s3", "ladder")],
        60,
    );
    let server = serve(&config);
    // Storage GETs of the origin (its metrics) and of the S3 server (its request log) while
    // `f` runs, per object.
    let measure = |files: &[&str], f: &dyn Fn()| -> (f64, f64, Vec<usize>) {
        let c = client();
        let before = block_on(scrape(&c, &server));
        let logged: Vec<usize> = files.iter().map(|file| s3.s3_requests("GET", file)).collect();
        f();
        let after = block_on(scrape(&c, &server));
        let d =
            |kind| counter_delta(&before, &after, "jit_storage_requests_total", &[("storage", "s3"), ("kind", kind)]);
        // The server writes its log line as it answers; give the file a moment to catch up.
        let expected = d("get") as usize;
        let deadline = Instant::now() + Duration::from_secs(5);
        let per_file = loop {
            let now: Vec<usize> = files.iter().zip(&logged).map(|(file, n)| s3.s3_requests("GET", file) - n).collect();
            if now.iter().sum::<usize>() >= expected || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (d("get") + d("head"), d("list"), per_file)
    };
    let fetch = |p: String| {
        let url = server.url(&p);
        block_on(async { get(&client(), &url).await.ok() })
    };

    // Indexing: one listing, then at most 2 GETs per progressive file, moov first or last.
    for (locator, asset, files) in [
        ("loc-hevc", "hevc", &["hevc/video_hevc.mp4", "hevc/audio_eng.mp4"][..]),
        ("loc-muxed", "muxed", &["muxed/muxed.mp4"][..]),
    ] {
        let (gets, lists, per_file) = measure(files, &|| {
            fetch(path(locator, asset, "manifest(format=m3u8-cmaf)"));
        });
        eprintln!("{asset}: index = {lists} LIST + {gets} GET/HEAD; S3 log per file {files:?}: {per_file:?}");
        assert_eq!(lists, 1.0, "{asset}: folder listings");
        assert_eq!(
            gets,
            per_file.iter().sum::<usize>() as f64,
            "{asset}: the S3 log disagrees with the metrics; log:\n{}",
            s3.log_text()
        );
        for (file, n) in files.iter().zip(&per_file) {
            assert!((1..=2).contains(n), "{file}: {n} GETs to index (at most 2)");
        }
    }

    // An uncached segment, index cached: exactly one GET of its source file.
    let hevc_files = ["hevc/video_hevc.mp4", "hevc/audio_eng.mp4"];
    let c = client();
    let segments = block_on(video_segments(&c, &server, "loc-hevc", "hevc", "m3u8-cmaf"));
    let (gets, lists, per_file) = measure(&hevc_files, &|| {
        block_on(async { get(&client(), &segments[1]).await.ok() });
    });
    eprintln!("uncached hevc video segment: {gets} GET/HEAD, {lists} LIST; S3 log {per_file:?}");
    assert_eq!((gets, lists), (1.0, 0.0), "uncached segment");
    assert_eq!(per_file, vec![1, 0], "uncached segment: GETs per file {hevc_files:?}");

    // An HLS v3 TS segment holds video and the default audio: one GET per source file.
    let ts = block_on(video_segments(&c, &server, "loc-ladder", "ladder", "m3u8-aapl-v3"));
    let ladder_files = ["ladder/video_150k.mp4", "ladder/audio_eng.mp4", "ladder/audio_fra.mp4"];
    let (gets, _, per_file) = measure(&ladder_files, &|| {
        block_on(async { get(&client(), &ts[1]).await.ok() });
    });
    eprintln!("uncached muxed TS segment: {gets} GET/HEAD; S3 log {per_file:?}");
    assert_eq!(gets, 2.0, "TS segment of video + muxed audio");
    assert_eq!(per_file, vec![1, 1, 0], "TS segment: GETs per file {ladder_files:?}");

    // A cached segment costs nothing.
    let (gets, lists, _) = measure(&hevc_files, &|| {
        block_on(async { get(&client(), &segments[1]).await.ok() });
    });
    assert_eq!((gets, lists), (0.0, 0.0), "cached segment");
}

// ---------------------------------------------------------------------------------------
// 3. Faults.

/// An error response: its status, and a one-line body that names `names` and holds no
/// endpoint address or credential.
fn assert_error(got: &Got, status: StatusCode, names: &str, endpoints: &[String]) {
    assert_eq!(got.status, status, "{}", got.describe());
    let body = got.text();
    assert_eq!(body.trim_end().lines().count(), 1, "error body is not one line: {body:?}");
    assert!(body.contains(names), "error body does not name {names:?}: {body:?}");
    for secret in
        [S3_SECRET, GCS_TOKEN, AZURITE_KEY, "testing"].iter().map(|s| s.to_string()).chain(endpoints.iter().cloned())
    {
        assert!(!body.contains(&secret), "error body shows {secret:?}: {body:?}");
    }
}

/// The account's fault settings: short timeouts, two retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const RETRIES: usize = 2;
/// Allowance on top of a configured time, for a loaded test machine.
const SLACK: Duration = Duration::from_secs(3);

/// Each fault of the proxy between the origin and `backend`'s emulator, on uncached
/// segments of an indexed asset (cached ones keep serving; the lead-in of each case says
/// what is expected), then a source replaced after indexing. Statuses and times are
/// printed for the README's fault table.
fn check_faults(backend: Backend) {
    let emulator = Emulator::start(backend);
    emulator.seed(&["hevc"]);
    let fixture = |f: &str| std::fs::read(common::fixtures_dir().join(f)).expect("fixture");
    block_on(async {
        emulator.put("broken/broken.ism", fixture("ladder/ladder.ism")).await;
        emulator.put("fresh/video.mp4", fixture("hevc/video_hevc.mp4")).await;
        emulator.put("cold/video.mp4", fixture("hevc/video_hevc.mp4")).await;
        emulator.put("empty/empty.mp4", Vec::new()).await;
    });
    let proxy = FaultProxy::start(([127, 0, 0, 1], emulator.port).into());
    let settings = format!(
        "connect_timeout_secs = {}\nrequest_timeout_secs = {}\nretries = {RETRIES}\nretry_backoff_secs = 0.05\n",
        CONNECT_TIMEOUT.as_secs(),
        REQUEST_TIMEOUT.as_secs()
    );
    let config = config(
        &[emulator.account_on(proxy.addr.port(), "cloud", &settings), local_account("local")],
        &[
            ("loc-cloud", "cloud", "hevc"),
            ("loc-broken", "cloud", "broken"),
            ("loc-fresh", "cloud", "fresh"),
            ("loc-cold", "cloud", "cold"),
            ("loc-empty", "cloud", "empty"),
            ("loc-local", "local", "hevc"),
        ],
        // No asset reload during the test: faults meet segment reads.
        300,
    );
    let server = serve(&config);
    let endpoints = vec![proxy.addr.to_string(), format!("127.0.0.1:{}", emulator.port), BUCKET.to_string()];
    let file = "hevc/video_hevc.mp4";
    let c = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let timed = |url: String| {
        let c = c.clone();
        async move {
            let started = Instant::now();
            let got = get(&c, &url).await;
            (got, started.elapsed())
        }
    };
    let report = |case: &str, got: &Got, took: Duration| {
        eprintln!(
            "FAULT {backend:?} | {case} | {} | {:.2} s | {}",
            got.status.as_u16(),
            took.as_secs_f64(),
            if got.status.is_success() { format!("{} bytes", got.body.len()) } else { got.text().trim().to_string() }
        );
    };

    block_on(async {
        let cloud = video_segments(&c, &server, "loc-cloud", "hevc", "m3u8-cmaf").await;
        let local = video_segments(&c, &server, "loc-local", "hevc", "m3u8-cmaf").await;
        let cached = get(&c, &cloud[0]).await.ok();
        assert_eq!(cached.body, get(&c, &local[0]).await.ok().body, "same source, same segment bytes");
        let reference = get(&c, &local[1]).await.ok().body;

        // A missing object is a 404 naming it.
        let (got, took) = timed(server.url(&path("loc-broken", "broken", "manifest(format=m3u8-cmaf)"))).await;
        report("missing object", &got, took);
        assert_error(&got, StatusCode::NOT_FOUND, "broken/", &endpoints);
        // An empty object (every store refuses a range of it): corrupt media, found by one HEAD.
        let empty_manifest = server.url(&path("loc-empty", "empty", "manifest(format=m3u8-cmaf)"));
        let (got, took) = timed(empty_manifest).await;
        report("empty object", &got, took);
        // (Its body says "invalid media", which holds the bucket's name.)
        assert_error(&got, StatusCode::INTERNAL_SERVER_ERROR, "empty/empty.mp4: file is empty", &endpoints[..2]);

        // Down: 502 within the connect timeouts of every attempt; an asset not yet loaded
        // too. Cached segments serve meanwhile; back up, the same URLs serve, no restart.
        proxy.set(Fault::Refuse);
        let (got, took) = timed(cloud[1].clone()).await;
        report("down (connection refused)", &got, took);
        assert_error(&got, StatusCode::BAD_GATEWAY, file, &endpoints);
        assert!(took < CONNECT_TIMEOUT * (RETRIES as u32 + 1) + SLACK, "502 after {took:?}");
        let fresh_manifest = server.url(&path("loc-fresh", "fresh", "manifest(format=m3u8-cmaf)"));
        assert_error(&get(&c, &fresh_manifest).await, StatusCode::BAD_GATEWAY, "fresh", &endpoints);
        assert_eq!(get(&c, &cloud[0]).await.ok().body, cached.body, "cached segment while storage is down");
        proxy.set(Fault::Pass);
        get(&c, &fresh_manifest).await.ok();

        // Hanging: 504 after the request timeout (no retry starts after it), while requests
        // for a cached segment and for another account answer promptly.
        proxy.set(Fault::Hang);
        // (The missing-object asset above is remembered as missing: it answers 404 at once.)
        let cold_manifest = server.url(&path("loc-cold", "cold", "manifest(format=m3u8-cmaf)"));
        let (hung, cold, others) = tokio::join!(timed(cloud[1].clone()), timed(cold_manifest), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut answers = Vec::new();
            for url in [
                cloud[0].clone(),
                server.url(&path("loc-local", "hevc", "manifest(format=m3u8-cmaf)")),
                local[2].clone(),
            ] {
                answers.push((url.clone(), timed(url).await));
            }
            answers
        });
        let (got, took) = hung;
        report("hanging (accepts, never answers)", &got, took);
        assert_error(&got, StatusCode::GATEWAY_TIMEOUT, file, &endpoints);
        assert!(took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + SLACK, "504 after {took:?}");
        let (got, took) = cold;
        report("hanging, an asset not loaded yet", &got, took);
        assert_error(&got, StatusCode::GATEWAY_TIMEOUT, "cold", &endpoints);
        assert!(took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + SLACK, "504 after {took:?}");
        for (url, (got, took)) in others {
            eprintln!("FAULT {backend:?} | meanwhile {url}: {} in {:.3} s", got.status, took.as_secs_f64());
            assert_eq!(got.status, StatusCode::OK, "{url} while storage hangs");
            assert!(took < Duration::from_secs(2), "{url} took {took:?} while storage hangs");
        }

        // Trickling 1 KiB/s: 504 at the request timeout, not a request held for minutes.
        proxy.set(Fault::Trickle(1024));
        let (got, took) = timed(cloud[1].clone()).await;
        report("slow (1 KiB/s)", &got, took);
        assert_error(&got, StatusCode::GATEWAY_TIMEOUT, file, &endpoints);
        assert!(took >= REQUEST_TIMEOUT && took < REQUEST_TIMEOUT + SLACK, "504 after {took:?}");

        // A 5xx burst longer than the retries: 502 after exactly 1 + retries requests.
        proxy.set_for(Fault::Status(500), RETRIES + 1);
        let before = proxy.requests();
        let (got, took) = timed(cloud[1].clone()).await;
        report(&format!("{} × 500", RETRIES + 1), &got, took);
        assert_error(&got, StatusCode::BAD_GATEWAY, file, &endpoints);
        assert_eq!(proxy.requests() - before, RETRIES + 1, "storage requests for one segment");

        // Every response dropped mid-body: resumed reads fail too, an error (never a 200).
        proxy.set(Fault::DropAfter(2000));
        let (got, took) = timed(cloud[1].clone()).await;
        report("every response dropped after 2000 bytes", &got, took);
        assert_error(&got, StatusCode::BAD_GATEWAY, file, &endpoints);

        // A burst within the retries: retried, 200 with the right bytes.
        proxy.set_for(Fault::Status(503), RETRIES);
        let before = proxy.requests();
        let (got, took) = timed(cloud[1].clone()).await;
        report(&format!("{RETRIES} × 503"), &got, took);
        assert_eq!(got.ok().body, reference, "segment after a 503 burst");
        assert_eq!(proxy.requests() - before, RETRIES + 1, "storage requests for one segment");

        // One response dropped mid-body: the read resumes where it broke, on the same ETag.
        proxy.set_for(Fault::DropAfter(2000), 1);
        let (got, took) = timed(cloud[2].clone()).await;
        report("one response dropped after 2000 bytes", &got, took);
        assert_eq!(got.ok().body, get(&c, &local[2]).await.ok().body, "segment after a dropped response");

        // The source replaced after indexing: never its new bytes at the old offsets under the
        // old ETag, but a clear error, and the next request indexes the new version (long
        // before the asset TTL runs out).
        let fresh = video_segments(&c, &server, "loc-fresh", "fresh", "m3u8-cmaf").await;
        emulator.put("fresh/video.mp4", fixture("dolby/video.mp4")).await;
        let (got, took) = timed(fresh[1].clone()).await;
        report("object replaced after indexing", &got, took);
        assert_error(
            &got,
            StatusCode::BAD_GATEWAY,
            "fresh/video.mp4: the object changed since it was indexed",
            &endpoints,
        );
        let manifest = get(&c, &fresh_manifest).await.ok();
        assert!(manifest.text().contains("avc1"), "the replaced source is not indexed again:\n{}", manifest.text());
    });
}

#[test]
fn faults_over_s3() {
    check_faults(Backend::S3);
}

#[test]
fn faults_over_azure() {
    check_faults(Backend::Azure);
}

#[test]
fn faults_over_gcs() {
    check_faults(Backend::Gcs);
}

// ---------------------------------------------------------------------------------------
// 4. Freshness.

#[test]
fn replaced_object_is_served_after_the_asset_ttl_and_an_outage_serves_stale() {
    let gcs = Emulator::start(Backend::Gcs);
    let fixture = |f: &str| std::fs::read(common::fixtures_dir().join(f)).expect("fixture");
    block_on(gcs.put("fresh/video.mp4", fixture("hevc/video_hevc.mp4")));
    let proxy = FaultProxy::start(([127, 0, 0, 1], gcs.port).into());
    let ttl = 1;
    let config = config(
        &[gcs.account_on(proxy.addr.port(), "gcs", ""), local_account("local")],
        &[("loc-fresh", "gcs", "fresh"), ("loc-dolby", "local", "dolby")],
        ttl,
    );
    let server = serve(&config);
    let c = client();
    let mpd = server.url(&path("loc-fresh", "fresh", "manifest(format=mpd-time-cmaf)"));
    block_on(async {
        let before = get(&c, &mpd).await.ok();
        assert!(before.text().contains("codecs=\"hvc1"), "{}", before.text());
        let old_segments = video_segments(&c, &server, "loc-fresh", "fresh", "m3u8-cmaf").await;
        let old_segment = get(&c, &old_segments[0]).await.ok();

        // Another encoding under the same name; after the asset TTL it is what serves.
        gcs.put("fresh/video.mp4", fixture("dolby/video.mp4")).await;
        tokio::time::sleep(Duration::from_millis(ttl * 1000 + 500)).await;
        let after = get(&c, &mpd).await.ok();
        eprintln!("manifest ETag before {:?}, after {:?}", before.header("etag"), after.header("etag"));
        assert!(after.text().contains("codecs=\"avc1"), "the replaced source is not served:\n{}", after.text());
        assert_ne!(before.header("etag"), after.header("etag"), "manifest ETag did not change");
        let new_segments = video_segments(&c, &server, "loc-fresh", "fresh", "m3u8-cmaf").await;
        let new_segment = get(&c, &new_segments[0]).await.ok();
        let reference = video_segments(&c, &server, "loc-dolby", "dolby", "m3u8-cmaf").await;
        assert_eq!(new_segment.body, get(&c, &reference[0]).await.ok().body, "segment of the new source");
        assert_ne!(new_segment.body, old_segment.body);
        assert_ne!(new_segment.header("etag"), old_segment.header("etag"), "segment ETag did not change");

        // Storage down past the asset TTL: the last good load serves its manifests and cached
        // segments, marked stale-if-error; an uncached segment cannot be read (502). Storage
        // back: fresh again without a restart.
        proxy.set(Fault::Refuse);
        tokio::time::sleep(Duration::from_millis(ttl * 1000 + 500)).await;
        let stale = get(&c, &mpd).await.ok();
        assert_eq!(stale.body, after.body, "stale manifest");
        let cache_control = stale.header("cache-control").unwrap_or_default();
        assert!(cache_control.contains("stale-if-error="), "Cache-Control {cache_control:?}");
        assert_eq!(get(&c, &new_segments[0]).await.ok().body, new_segment.body, "cached segment while storage is down");
        let uncached = get(&c, &new_segments[1]).await;
        assert_eq!(uncached.status, StatusCode::BAD_GATEWAY, "{}", uncached.describe());
        let stale_served = common::metric(&scrape(&c, &server).await, "jit_stale_served_total", &[]);
        assert!(stale_served >= 2.0, "stale answers counted: {stale_served}");
        proxy.set(Fault::Pass);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = get(&c, &new_segments[1]).await;
            if got.status == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "not recovered: {}", got.describe());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}
