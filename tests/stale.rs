//! Failures and staleness in the origin's caches, in-process over a storage account that can
//! be switched off ([`CountingStore`]):
//!
//! * `stale_*`: an asset whose storage fails after its TTL is served from its last good load
//!   (cached segments, manifests) for `stale_if_error_secs`, with `stale-if-error` in
//!   Cache-Control and a metric; one reload attempt per `failure_ttl_secs`; fresh again
//!   without restart when storage is back.
//! * `unknown_asset_*`: an unknown asset name costs one storage LIST per `not_found_ttl_secs`,
//!   unique names stay within the remembered failures' memory, an upload shows after the TTL.
//! * `corrupt_segment_*`: a segment whose build fails on corrupt media costs one storage read
//!   per `failure_ttl_secs`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use reqwest::header;

use common::store::{CountingStore, Fault};
use common::{client, counter_delta, get, metric, scrape, Got, TestServer};
use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;
use jit_origin::source::storage::Storage;

const LADDER: &str = "/loc-ladder/ladder.ism";
const MUXED: &str = "/loc-muxed/muxed.ism";

/// An origin over an in-memory copy of the ladder fixture (and an empty `muxed` folder), with
/// `[cache]` settings `cache_toml`, served on an ephemeral port.
async fn origin(cache_toml: &str) -> (TestServer, Arc<CountingStore>, Arc<InMemory>) {
    let memory = Arc::new(InMemory::new());
    let ladder = common::fixtures_dir().join("ladder");
    for entry in std::fs::read_dir(&ladder).expect("ladder fixture") {
        let path = entry.expect("fixture entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("file name").to_string();
        put(&memory, &format!("ladder/{name}"), std::fs::read(&path).expect("fixture file")).await;
    }
    let store = CountingStore::over(memory.clone());
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[cache]\n{cache_toml}\n{}{}{}",
        common::fixtures_storage_toml(),
        common::clear_locator_toml("loc-ladder", "ladder"),
        common::clear_locator_toml("loc-muxed", "muxed"),
    );
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    let storage = Arc::new(Storage::new(common::FIXTURES_STORAGE, store.clone() as Arc<dyn ObjectStore>));
    let origin = Origin::with_storages(&config, vec![storage]).expect("origin");
    (TestServer::serve(origin, config.http), store, memory)
}

async fn put(memory: &InMemory, path: &str, bytes: Vec<u8>) {
    memory.put(&Path::from(path), bytes.into()).await.expect("put");
}

/// Segment URIs of an HLS media playlist, resolved.
fn segment_urls(playlist_url: &str, text: &str) -> Vec<String> {
    let base = &playlist_url[..playlist_url.rfind('/').expect("slash") + 1];
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| format!("{base}{l}")).collect()
}

fn stale_if_error(got: &Got) -> Option<u64> {
    got.header(header::CACHE_CONTROL)?.split(',').find_map(|d| d.trim().strip_prefix("stale-if-error=")?.parse().ok())
}

/// The most attempts a failure remembered for `ttl_secs` allows over `elapsed`: one, and one
/// more per TTL that ran out meanwhile (a loaded machine may take seconds for a batch).
fn attempts_allowed(elapsed: Duration, ttl_secs: u64) -> u64 {
    1 + elapsed.as_secs() / ttl_secs
}

fn stale_served(samples: &common::Samples, cache: &str) -> f64 {
    metric(samples, "jit_stale_served_total", &[("cache", cache)])
}

/// Storage fails (5xx-like, then timing out) after the asset's TTL: what was served keeps
/// being served, stale, within the window; storage coming back makes it fresh again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_on_error_serves_the_last_good_asset_within_the_window_then_recovers() {
    let (server, store, _) = origin("asset_ttl_secs = 1\nstale_if_error_secs = 4\nfailure_ttl_secs = 1").await;
    let c = client();
    let manifest = server.url(&format!("{LADDER}/manifest(format=m3u8-cmaf).m3u8"));
    let playlist = server.url(&format!("{LADDER}/QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8"));
    let warm_manifest = get(&c, &manifest).await.ok();
    let segments = segment_urls(&playlist, &get(&c, &playlist).await.ok().text());
    assert!(segments.len() >= 4, "{segments:?}");
    let warm_segment = get(&c, &segments[0]).await.ok();
    assert_eq!(stale_if_error(&warm_segment), Some(4), "{}", warm_segment.describe());
    assert_eq!(stale_if_error(&warm_manifest), Some(4), "{}", warm_manifest.describe());
    let loaded = Instant::now();

    // Storage fails; the asset's TTL runs out.
    store.set_fault(Fault::Fails);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = scrape(&c, &server).await;
    let lists = store.lists();
    let started = Instant::now();
    for round in 0..20 {
        let m = get(&c, &manifest).await;
        assert_eq!(m.status, 200, "stale manifest, round {round}: {}", m.describe());
        assert_eq!(m.body, warm_manifest.body, "stale manifest, round {round}");
        assert_eq!(stale_if_error(&m), Some(4), "{}", m.describe());
        let s = get(&c, &segments[0]).await;
        assert_eq!(s.status, 200, "cached segment, round {round}: {}", s.describe());
        assert_eq!(s.body, warm_segment.body, "cached segment, round {round}");
    }
    let after = scrape(&c, &server).await;
    // One reload attempt per failure_ttl_secs, not one per request.
    let attempts = store.lists() - lists;
    let allowed = attempts_allowed(started.elapsed(), 1);
    assert!((1..=allowed).contains(&attempts), "{attempts} reload attempts for 40 requests ({allowed} allowed)");
    assert_eq!(stale_served(&after, "segment") - stale_served(&before, "segment"), 20.0);
    assert_eq!(stale_served(&after, "manifest") - stale_served(&before, "manifest"), 20.0);
    // A segment never cached needs storage: it fails.
    let uncached = get(&c, &segments[3]).await;
    assert_eq!(uncached.status, 502, "{}", uncached.describe());

    // A hanging backend: still stale, and an uncached segment times out (504).
    store.set_fault(Fault::TimesOut);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for url in [&manifest, &playlist, &segments[0]] {
        let got = get(&c, url).await;
        assert_eq!(got.status, 200, "stale while storage hangs: {}", got.describe());
    }
    let uncached = get(&c, &segments[3]).await;
    assert_eq!(uncached.status, 504, "{}", uncached.describe());

    // Storage is back: the next reload (within failure_ttl) makes the asset fresh again; the
    // uncached segment is served at once (storage failures are not remembered).
    store.set_fault(Fault::None);
    assert_eq!(get(&c, &segments[3]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get(&c, &manifest).await.ok();
    let before = scrape(&c, &server).await;
    get(&c, &manifest).await.ok();
    get(&c, &segments[0]).await.ok();
    let after = scrape(&c, &server).await;
    assert_eq!(counter_delta(&before, &after, "jit_stale_served_total", &[]), 0.0, "fresh after recovery");

    // Storage fails again for longer than TTL + stale_if_error_secs: then 502.
    let reloaded = Instant::now();
    store.set_fault(Fault::Fails);
    assert_eq!(get(&c, &manifest).await.status, 200, "within the window");
    tokio::time::sleep(Duration::from_secs(5) + Duration::from_millis(300)).await;
    let m = get(&c, &manifest).await;
    assert_eq!(m.status, 502, "{:?} after the reload, beyond the window: {}", reloaded.elapsed(), m.describe());
    let s = get(&c, &segments[0]).await;
    assert_eq!(s.status, 502, "beyond the window: {}", s.describe());

    // And back again, without a restart.
    store.set_fault(Fault::None);
    get(&c, &manifest).await.ok();
    assert_eq!(get(&c, &segments[0]).await.ok().body, warm_segment.body);
    eprintln!("stale-on-error cycle took {:?}", loaded.elapsed());
}

/// While one request reloads a hot asset from a hanging backend, the others answer from the
/// previous load instead of waiting for the storage timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_requests_do_not_wait_for_a_hanging_reload() {
    let (server, store, _) = origin("asset_ttl_secs = 1\nfailure_ttl_secs = 2").await;
    let c = client();
    let playlist = server.url(&format!("{LADDER}/QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8"));
    let segments = segment_urls(&playlist, &get(&c, &playlist).await.ok().text());
    get(&c, &segments[0]).await.ok();
    store.set_timeout(Duration::from_secs(4));
    store.set_fault(Fault::TimesOut);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first request after the TTL reloads, and hangs until the storage timeout.
    let reloading = tokio::spawn({
        let (c, url) = (c.clone(), segments[0].clone());
        async move { get(&c, &url).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for url in [&segments[0], &playlist] {
        let got = get(&c, url).await;
        assert_eq!(got.status, 200, "{}", got.describe());
        assert!(!reloading.is_finished(), "{url} waited for the hanging reload");
    }
    assert_eq!(reloading.await.expect("request task").status, 200, "stale after the timeout");
}

/// 1,000 requests for one unknown asset name cost one LIST; unique names are answered 404
/// with the remembered failures held within their memory bound; an asset uploaded under a
/// remembered name is served once the remembered 404 expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_asset_names_cost_one_list_per_not_found_ttl() {
    let (server, store, memory) = origin("not_found_ttl_secs = 2").await;
    let c = client();
    let unknown = server.url("/loc-ladder/nope.ism/manifest(format=m3u8-cmaf).m3u8");
    let lists = store.lists();
    let started = Instant::now();
    for batch in 0..20 {
        let got = join_all((0..50).map(|_| get(&c, &unknown))).await;
        for g in got {
            assert_eq!(g.status, 404, "batch {batch}: {}", g.describe());
            assert!(g.text().contains("nope"), "{}", g.describe());
        }
    }
    let (listed, allowed) = (store.lists() - lists, attempts_allowed(started.elapsed(), 2));
    assert!((1..=allowed).contains(&listed), "1,000 requests for one unknown name: {listed} LISTs ({allowed} allowed)");

    // Unique long names: each costs its own LIST, and the remembered failures stay bounded.
    let long = "x".repeat(2000);
    let lists = store.lists();
    for batch in 0..60 {
        let urls: Vec<String> = (0..50)
            .map(|i| server.url(&format!("/loc-ladder/{long}{batch}-{i}.ism/manifest(format=m3u8-cmaf).m3u8")))
            .collect();
        for g in join_all(urls.iter().map(|u| get(&c, u))).await {
            assert_eq!(g.status, 404, "{}", g.describe());
        }
    }
    assert_eq!(store.lists() - lists, 3000);
    let samples = scrape(&c, &server).await;
    let bytes = metric(&samples, "jit_cache_bytes", &[("cache", "failure")]);
    let entries = metric(&samples, "jit_cache_entries", &[("cache", "failure")]);
    eprintln!("3,000 unique unknown names: {entries} remembered, {bytes} bytes");
    assert!(bytes > 0.0 && bytes <= (4 << 20) as f64, "remembered failures hold {bytes} bytes");
    assert!(entries < 3000.0, "{entries} entries: the bound did not apply");

    // The `muxed` folder is empty: 404, remembered; an upload shows after not_found_ttl.
    let muxed = server.url(&format!("{MUXED}/manifest(format=m3u8-cmaf).m3u8"));
    assert_eq!(get(&c, &muxed).await.status, 404);
    let file = common::fixtures_dir().join("muxed/muxed.mp4");
    put(&memory, "muxed/muxed.mp4", std::fs::read(file).expect("muxed fixture")).await;
    assert_eq!(get(&c, &muxed).await.status, 404, "remembered for not_found_ttl_secs");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    get(&c, &muxed).await.ok();
}

/// A segment whose build fails on corrupt media (here samples whose NAL unit lengths overrun
/// them, which MPEG-TS muxing reads) is answered 500 naming the file, from one storage read per
/// `failure_ttl_secs` however many requests ask, concurrently or one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_segment_build_costs_one_read_per_failure_ttl() {
    let (server, store, memory) = origin("failure_ttl_secs = 2").await;
    let mut video = std::fs::read(common::fixtures_dir().join("ladder/video_150k.mp4")).expect("fixture");
    // Every NAL unit length in the samples claims more bytes than there are.
    let mdat = video.windows(4).position(|w| w == b"mdat").expect("mdat box") - 4;
    let size = u32::from_be_bytes(video[mdat..mdat + 4].try_into().unwrap()) as usize;
    video[mdat + 8..mdat + size].fill(0xFF);
    put(&memory, "ladder/video_150k.mp4", video).await;
    let c = client();
    let playlist = server.url(&format!("{LADDER}/QualityLevels(150000)/Manifest(video,format=m3u8-aapl).m3u8"));
    let segments = segment_urls(&playlist, &get(&c, &playlist).await.ok().text());
    let broken = &segments[1];

    let gets = store.gets();
    let started = Instant::now();
    let mut answers = join_all((0..20).map(|_| get(&c, broken))).await;
    for _ in 0..20 {
        answers.push(get(&c, broken).await);
    }
    for g in &answers {
        assert_eq!(g.status, 500, "{}", g.describe());
        assert!(g.text().contains("video_150k.mp4"), "names the file: {}", g.describe());
    }
    let (read, allowed) = (store.gets() - gets, attempts_allowed(started.elapsed(), 2));
    assert!((1..=allowed).contains(&read), "40 requests for a corrupt segment: {read} reads ({allowed} allowed)");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let gets = store.gets();
    assert_eq!(get(&c, broken).await.status, 500);
    assert_eq!(store.gets() - gets, 1, "tried again after failure_ttl_secs");
}
