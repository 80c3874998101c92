//! The document store over the storage emulators (`tests/common/emulator.rs`):
//!
//! * `{s3,azure}_writes_are_conditional`: concurrent creates of one document → exactly one
//!   wins and the others get `AlreadyExists`; a replace from a stale read → `Conflict`; nothing
//!   is overwritten silently (S3 `If-None-Match: *` and `If-Match` on PutObject, the same
//!   preconditions on Azure Blob). fake-gcs-server takes no uploads through object_store's XML
//!   API, so GCS (generation preconditions) is not tried here.
//! * `two_replicas_share_the_store`: two origin processes over one bucket with
//!   `refresh_secs = 1`; a locator created through replica A's API plays from replica B within
//!   refresh_secs + 1 s, a deleted one is a 404 on both within the same bound, so is a new
//!   asset filter its manifests may name; two concurrent PUTs of one new locator through the
//!   two replicas → one 201, one 409; and a store
//!   outage leaves both serving what they had, with `/readyz` saying so.
//! * `serve_refuses_a_store_without_its_sealing_key`: keys would be stored or read in clear.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::json;

use common::emulator::{block_on, free_port, Backend, Emulator};
use common::{client, get, Got};
use jit_origin::store::{DocPath, Store, StoreError, STREAMING_LOCATORS};

/// Concurrent creates, stale replaces and deletes of one document in `backend`'s bucket.
fn writes_are_conditional(backend: Backend) {
    let emulator = Emulator::start(backend);
    let store = Arc::new(Store::new(Arc::new(emulator.storage("docs")), "ams").expect("store"));
    block_on(async {
        let path = DocPath::new(STREAMING_LOCATORS, "raced").unwrap();
        let creates: Vec<_> = (0..8)
            .map(|i| {
                let (store, path) = (store.clone(), path.clone());
                tokio::spawn(async move { store.create(&path, Bytes::from(format!("{{\"writer\":{i}}}"))).await })
            })
            .collect();
        let mut created = Vec::new();
        for create in creates {
            match create.await.expect("task") {
                Ok(document) => created.push(document),
                Err(StoreError::AlreadyExists(p)) => assert_eq!(p, path),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(created.len(), 1, "exactly one create wins");
        let stored = store.get(&path).await.unwrap().expect("created");
        assert_eq!(stored.body, created[0].body);

        let replaced = store.replace(&stored, Bytes::from_static(b"{\"v\":2}")).await.expect("replace");
        for stale in [&created[0], &stored] {
            let lost = store.replace(stale, Bytes::from_static(b"{\"v\":3}")).await;
            assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
        }
        assert_eq!(&store.get(&path).await.unwrap().unwrap().body[..], b"{\"v\":2}");
        store.replace(&replaced, Bytes::from_static(b"{\"v\":4}")).await.expect("replace from the latest read");

        // A listing reports the versions reads did: a snapshot of unchanged documents is
        // unchanged.
        assert!(store.snapshot().await.unwrap().changed);
        assert!(!store.snapshot().await.unwrap().changed, "{backend:?} listings and reads disagree on versions");

        assert!(store.delete(&path).await.unwrap());
        assert!(!store.delete(&path).await.unwrap());
        let lost = store.replace(&replaced, Bytes::from_static(b"{}")).await;
        assert!(matches!(lost, Err(StoreError::Conflict(_))), "a deleted document is not brought back: {lost:?}");
        assert!(store.snapshot().await.unwrap().documents.is_empty());
    });
}

#[test]
fn s3_writes_are_conditional() {
    writes_are_conditional(Backend::S3);
}

#[test]
fn azure_writes_are_conditional() {
    writes_are_conditional(Backend::Azure);
}

/// The sealing key the replicas read from the environment.
const SEALING_KEY_BASE64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The management API's bearer token, and the variable the replicas read it from.
const API_TOKEN: &str = "replica-test-api-token-0001";
const API_TOKENS_ENV: &str = "JIT_ORIGIN_TEST_API_TOKENS";

/// An origin process over the emulator's bucket with `[store]` and the management API;
/// killed on drop.
struct Replica {
    child: Child,
    base: String,
    api: String,
    stderr: std::path::PathBuf,
}

impl Replica {
    fn start(dir: &Path, s3: &Emulator, name: &str) -> Replica {
        let (port, api_port) = (free_port(), free_port());
        let config = dir.join(format!("{name}.toml"));
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\n{}\n[store]\nstorage = \"media\"\nprefix = \"ams\"\nrefresh_secs = 1\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\ntokens_env = \"{API_TOKENS_ENV}\"\n",
            s3.account("media", "retries = 0\nrequest_timeout_secs = 1\n")
        );
        std::fs::write(&config, text).expect("config");
        let stderr = dir.join(format!("{name}.log"));
        let child = Command::new(common::bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("JIT_ORIGIN_STORE_KEY", SEALING_KEY_BASE64)
            .env(API_TOKENS_ENV, API_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("log"))
            .spawn()
            .expect("start jit-origin");
        let base = format!("http://127.0.0.1:{port}");
        let api = format!("http://127.0.0.1:{api_port}/api/ams/project");
        let mut replica = Replica { child, base, api, stderr };
        replica.wait_ready();
        replica
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !block_on(async { client().get(self.url("/readyz")).send().await.is_ok_and(|r| r.status().is_success()) })
        {
            let exited = self.child.try_wait().expect("child status");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the origin did not start ({exited:?}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Got {
        block_on(get(&client(), &self.url(path)))
    }

    /// A management API call on `resource` (e.g. `streamingLocators/x`), with the token.
    async fn call(&self, method: reqwest::Method, resource: &str, body: Option<serde_json::Value>) -> StatusCode {
        let url = format!("{}/{resource}?api-version=2022-08-01", self.api);
        let mut request = client().request(method, &url).bearer_auth(API_TOKEN);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status();
        assert!(status.as_u16() < 500, "{url}: {status} {}", response.text().await.unwrap_or_default());
        status
    }

    fn put(&self, resource: &str, properties: serde_json::Value) -> StatusCode {
        block_on(self.call(reqwest::Method::PUT, resource, Some(json!({ "properties": properties }))))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The properties of a clear streaming locator of the asset `ladder`.
fn clear_locator(locator_id: &str) -> serde_json::Value {
    json!({
        "assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly", "streamingLocatorId": locator_id,
    })
}

/// Publishes a clear locator of the asset `ladder` through `replica`'s API.
fn publish_clear_locator(replica: &Replica, name: &str, locator_id: &str) {
    let asset = replica.put("assets/ladder", json!({ "container": "ladder", "storageAccountName": "media" }));
    assert!(asset == StatusCode::CREATED || asset == StatusCode::OK, "asset: {asset}");
    assert_eq!(replica.put(&format!("streamingLocators/{name}"), clear_locator(locator_id)), StatusCode::CREATED);
}

/// Polls `path` on `replica` until it answers `status`, within `bound`; the answer.
fn answers_within(replica: &Replica, path: &str, status: StatusCode, bound: Duration) -> Got {
    let started = Instant::now();
    loop {
        let got = replica.get(path);
        if got.status == status {
            // The propagation time, for the README's figure (`--nocapture` shows it).
            eprintln!("{}{path}: {status} after {:?}", replica.base, started.elapsed());
            return got;
        }
        assert!(
            started.elapsed() < bound,
            "{} not {status} within {bound:?}: {}\n{}",
            replica.base,
            got.describe(),
            replica.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first video segment's path of an HLS multivariant playlist at `manifest`.
fn first_video_segment(replica: &Replica, manifest: &str, multivariant: &str) -> String {
    let folder = |path: &str| path[..path.rfind('/').expect("slash") + 1].to_string();
    let uri = |text: &str, want: &str| {
        text.lines()
            .find(|l| !l.starts_with('#') && l.contains(want))
            .unwrap_or_else(|| panic!("no {want} in\n{text}"))
            .to_string()
    };
    let playlist = format!("{}{}", folder(manifest), uri(multivariant, "Manifest(video"));
    let media = replica.get(&playlist).ok().text();
    format!("{}{}", folder(&playlist), uri(&media, "Fragments(video"))
}

#[test]
fn two_replicas_share_the_store() {
    let s3 = Emulator::start(Backend::S3);
    s3.seed(&["ladder"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (Replica::start(dir.path(), &s3, "a"), Replica::start(dir.path(), &s3, "b"));
    let bound = Duration::from_secs(1 + 1);

    // Created through A's API, played from B (and A) within the bound.
    let first = "0c4d5e6f-1111-4a2b-8c3d-4e5f6a7b8c9d";
    let manifest = format!("/{first}/ladder.ism/manifest(format=m3u8-cmaf)");
    assert_eq!(b.get(&manifest).status, StatusCode::NOT_FOUND);
    publish_clear_locator(&a, "first", first);
    let multivariant = answers_within(&b, &manifest, StatusCode::OK, bound).text();
    b.get(&first_video_segment(&b, &manifest, &multivariant)).ok();
    answers_within(&a, &manifest, StatusCode::OK, bound);

    // Deleted: a 404 on both within the bound.
    assert_eq!(block_on(a.call(reqwest::Method::DELETE, "streamingLocators/first", None)), StatusCode::OK);
    let started = Instant::now();
    for replica in [&a, &b] {
        answers_within(replica, &manifest, StatusCode::NOT_FOUND, bound.saturating_sub(started.elapsed()));
    }

    // A store outage: both keep serving what they published, and say so.
    let second = "0c4d5e6f-2222-4a2b-8c3d-4e5f6a7b8c9d";
    let manifest = format!("/{second}/ladder.ism/manifest(format=m3u8-cmaf)");
    publish_clear_locator(&a, "second", second);
    for replica in [&a, &b] {
        let multivariant = answers_within(replica, &manifest, StatusCode::OK, bound).text();
        replica.get(&first_video_segment(replica, &manifest, &multivariant)).ok();
        assert!(replica.get("/readyz").ok().text().contains("store: ok"));
    }
    // A new asset filter: manifests of either replica may name it within the bound.
    let filtered = format!("/{second}/ladder.ism/manifest(format=mpd-time-cmaf,filter=first-seconds)");
    assert_eq!(b.get(&filtered).status, StatusCode::NOT_FOUND);
    let two_seconds = json!({ "presentationTimeRange": { "endTimestamp": 20_000_000 } });
    assert_eq!(a.put("assets/ladder/assetFilters/first-seconds", two_seconds), StatusCode::CREATED);
    let whole = b.get(&manifest.replace("m3u8-cmaf", "mpd-time-cmaf")).ok().text();
    let trimmed = answers_within(&b, &filtered, StatusCode::OK, bound).text();
    assert!(trimmed.matches("<S ").count() < whole.matches("<S ").count(), "{trimmed}");
    answers_within(&a, &filtered, StatusCode::OK, bound);

    // One new locator put through both replicas at once: one is created, the other refused,
    // and the one created is what both serve.
    let (one, other) = ("0c4d5e6f-3333-4a2b-8c3d-4e5f6a7b8c9d", "0c4d5e6f-4444-4a2b-8c3d-4e5f6a7b8c9d");
    let put = |id: &str| Some(json!({ "properties": clear_locator(id) }));
    let (through_a, through_b) = block_on(async {
        tokio::join!(
            a.call(reqwest::Method::PUT, "streamingLocators/raced", put(one)),
            b.call(reqwest::Method::PUT, "streamingLocators/raced", put(other)),
        )
    });
    let mut statuses = [through_a, through_b];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    let (won, lost) = if through_a == StatusCode::CREATED { (one, other) } else { (other, one) };
    let manifest_of = |id: &str| format!("/{id}/ladder.ism/manifest(format=m3u8-cmaf)");
    for replica in [&a, &b] {
        answers_within(replica, &manifest_of(won), StatusCode::OK, bound);
        assert_eq!(replica.get(&manifest_of(lost)).status, StatusCode::NOT_FOUND);
    }

    let mut s3 = s3;
    s3.stop();
    for replica in [&a, &b] {
        let started = Instant::now();
        let ready = loop {
            let ready = replica.get("/readyz").ok().text();
            if ready.contains("store: failing") || started.elapsed() > Duration::from_secs(10) {
                break ready;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            ready.starts_with("ready\nstore: failing since") && ready.contains("serving the last good state"),
            "{ready}"
        );
        replica.get(&manifest).ok();
        let metrics = replica.get("/metrics").ok().text();
        assert!(metrics.contains("jit_store_refresh_total{result=\"error\"}"), "{metrics}");
    }
}

#[test]
fn serve_refuses_a_store_without_its_sealing_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("origin.toml");
    let text =
        "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"docs\"\nurl = \"memory://\"\n[store]\nstorage = \"docs\"\n";
    std::fs::write(&config, text).expect("config");
    for (key, said) in [(None, "JIT_ORIGIN_STORE_KEY is not set"), (Some("c2hvcnQ="), "32 bytes, not 5")] {
        let mut serve = Command::new(common::bin());
        serve.args(["serve", "--config"]).arg(&config).env_remove("JIT_ORIGIN_STORE_KEY");
        if let Some(key) = key {
            serve.env("JIT_ORIGIN_STORE_KEY", key);
        }
        let out = serve.output().expect("run jit-origin");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(said), "{:?}: {stderr}", out.status);
        assert!(!stderr.contains("c2hvcnQ="), "the key's value is never shown: {stderr}");
    }
}
