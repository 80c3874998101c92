//! Locator publishing windows (`start_time` / `end_time`) over HTTP: outside the window every
//! URL of the locator is a 404 naming the window, cached briefly and never past the start;
//! inside it no response may be cached past the end.

mod common;

use std::time::{Duration, SystemTime};

use common::{client, get, Got, TestServer};
use reqwest::header;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

const KID: &str = "0b6f3a5e9c2d4e8f8a1b3c5d7e9f1a2b";
const KEY: &str = "3c9e1f7a5b2d4c6e8f0a1b3d5e7f9a1c";

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A locator of the ladder asset with `policy` and the window `window` (TOML lines).
fn locator_toml(id: &str, policy: &str, window: &str) -> String {
    let keys =
        if policy == "clear" { String::new() } else { format!("keys = [{{ kid = \"{KID}\", key = \"{KEY}\" }}]\n") };
    format!(
        "[[locator]]\nid = \"{id}\"\nstorage = \"{}\"\nasset = \"ladder\"\npolicy = \"{policy}\"\n{keys}{window}\n",
        common::FIXTURES_STORAGE
    )
}

fn server(locators: &str) -> TestServer {
    let text = format!("listen = \"127.0.0.1:0\"\n{}{locators}", common::fixtures_storage_toml());
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http)
}

/// Every kind of URL of a locator, each with `options` (e.g. `,encryption=cbc`): manifests,
/// a media playlist, an init and a media segment, the key.
fn urls(server: &TestServer, locator: &str, options: &str) -> Vec<String> {
    let asset = format!("/{locator}/ladder.ism/");
    [
        format!("{asset}manifest(format=m3u8-cmaf{options})"),
        format!("{asset}manifest(format=m3u8-aapl{options})"),
        format!("{asset}QualityLevels(150000)/Manifest(video,format=m3u8-cmaf{options})"),
        format!("{asset}QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf{options})"),
        format!("{asset}QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf{options})"),
        format!("/{locator}/key/{KID}"),
    ]
    .iter()
    .map(|path| server.url(path))
    .collect()
}

fn max_age(got: &Got) -> u64 {
    let cache_control = got.header(header::CACHE_CONTROL).unwrap_or_default();
    let value = cache_control.split(',').find_map(|d| d.trim().strip_prefix("max-age="));
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no max-age: {}", got.describe()))
}

/// The refusal of a locator outside its window: a 404 whose reason names the window.
fn assert_outside(got: &Got, says: &str) {
    assert_eq!(got.status, 404, "{}", got.describe());
    assert!(got.text().contains(says), "{}", got.describe());
    assert_eq!(got.text().lines().count(), 1, "{}", got.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locator_serves_nothing_outside_its_window() {
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let (past_start, past_end) = (rfc3339(now - 2 * day), rfc3339(now - day));
    let future = rfc3339(now + day);
    let server = server(&format!(
        "{}{}",
        locator_toml("ended", "envelope", &format!("start_time = \"{past_start}\"\nend_time = \"{past_end}\"")),
        locator_toml("not-yet", "envelope", &format!("start_time = \"{future}\"")),
    ));
    let c = client();
    for (locator, says) in
        [("ended", format!("was published until {past_end}")), ("not-yet", format!("is published from {future}"))]
    {
        for url in urls(&server, locator, ",encryption=cbc") {
            let got = get(&c, &url).await;
            assert_outside(&got, &says);
            assert_eq!(max_age(&got), 10, "error_max_age: {}", got.describe());
        }
    }
}

/// A refusal before the start is cached no longer than until the start, and at the start the
/// locator serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locator_serves_from_its_start_and_refusals_expire_by_then() {
    let start = SystemTime::now() + Duration::from_secs(4);
    let server = server(&locator_toml("soon", "clear", &format!("start_time = \"{}\"", rfc3339(start))));
    let c = client();
    let manifest = server.url("/soon/ladder.ism/manifest(format=m3u8-cmaf)");
    let refused = get(&c, &manifest).await;
    assert_outside(&refused, "is published from");
    assert!(max_age(&refused) <= 4, "cached past the start: {}", refused.describe());
    tokio::time::sleep(start.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(1100)).await;
    get(&c, &manifest).await.ok();
}

/// Inside a window with an end, every lifetime is cut to the time left (and nothing may be
/// served stale past it); after the end, the locator is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_never_cached_past_the_end() {
    let end = SystemTime::now() + Duration::from_secs(4);
    let window = format!("end_time = \"{}\"", rfc3339(end));
    let server =
        server(&format!("{}{}", locator_toml("ending", "envelope", &window), locator_toml("open", "clear", "")));
    let c = client();
    let segment = "QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf)";
    let open = get(&c, &server.url(&format!("/open/ladder.ism/{segment}"))).await.ok();
    assert!(max_age(&open) > 86_400, "{}", open.describe());
    assert!(open.header(header::CACHE_CONTROL).unwrap().contains("stale-if-error="));

    let ending = urls(&server, "ending", ",encryption=cbc");
    for url in &ending {
        let got = get(&c, url).await.ok();
        let cache_control = got.header(header::CACHE_CONTROL).unwrap_or_default();
        if !cache_control.contains("no-store") {
            assert!(max_age(&got) <= 4, "cached past the end: {}", got.describe());
            assert!(!cache_control.contains("stale-if-error"), "{}", got.describe());
        }
    }
    // Errors of the locator too (an unknown track).
    let missing =
        get(&c, &server.url("/ending/ladder.ism/QualityLevels(1)/Manifest(video,format=m3u8-cmaf,encryption=cbc)"))
            .await;
    assert_eq!(missing.status, 404, "{}", missing.describe());
    assert!(max_age(&missing) <= 4, "{}", missing.describe());

    tokio::time::sleep(end.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(100)).await;
    for url in &ending {
        assert_outside(&get(&c, url).await, "was published until");
    }
}
