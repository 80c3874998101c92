//! The management API over HTTP, in-process, with its store in a temporary folder:
//!
//! * `resources_round_trip_on_both_path_shapes`: every resource and action, ARM and MK.IO
//!   paths, immutability (same PUT → 200, another → 409), config locators read-only, and an
//!   asset's delete taking its filters and locators with it;
//! * `lists_page_with_next_links`: `$top` / `$skiptoken` and `@odata.nextLink`;
//! * `callers_need_a_token`: 401 without or with a wrong token, 403 for a read-only token
//!   that writes, JWTs of the configured issuer;
//! * `bad_input_is_refused_naming_the_field_and_writes_nothing`: 400s that name the field,
//!   and the store's files unchanged afterwards;
//! * `concurrent_creates_of_one_locator_give_one_201`: the others get 409;
//! * `key_endpoint_honours_alternate_keys_and_required_claims`: a locator published with a
//!   token-restricted key policy (two verification keys, a required claim with a value)
//!   delivers its key for a token signed with the alternate key and refuses one without the
//!   claim's value;
//! * `a_body_that_stops_coming_is_a_408`: `[limits] body_read_timeout_secs` holds for the API.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};

use common::{fixtures_storage_toml, Got, TestServer, FIXTURES_STORAGE};
use jit_origin::config::{Config, HttpConfig, LimitsConfig};
use jit_origin::manage::{api::Api, auth::Auth, catalog, server};
use jit_origin::serve::http::Service;
use jit_origin::serve::origin::Origin;
use jit_origin::store::{Sealer, Store};

const WRITER: &str = "writer-token-for-tests-0001";
const READER: &str = "reader-token-for-tests-0001";
const JWT_SECRET: [u8; 32] = [42; 32];
const ARM: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/media/providers/Microsoft.Media/mediaServices/acct";
const MKIO: &str = "/api/ams/project";

/// The API served in-process over a store in a temporary folder.
struct ApiServer {
    addr: std::net::SocketAddr,
    store_dir: tempfile::TempDir,
    origin: Arc<Origin>,
    store: Arc<Store>,
    sealer: Arc<Sealer>,
    http: HttpConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    fn start() -> ApiServer {
        let store_dir = tempfile::tempdir().unwrap();
        // Each test's variables: tests of this file run in parallel in one process.
        let (tokens_env, reads_env) = ("API_TEST_TOKENS", "API_TEST_READ_TOKENS");
        std::env::set_var(tokens_env, format!("another-token-000000001, {WRITER}"));
        std::env::set_var(reads_env, READER);
        let jwt_secret = base64_of(&JWT_SECRET);
        let text = format!(
            "listen = \"127.0.0.1:0\"\n{}\
             [[storage]]\nname = \"docs\"\nurl = \"file://{}\"\n\
             [[locator]]\nid = \"config-locator\"\nstorage = \"{FIXTURES_STORAGE}\"\nasset = \"ladder\"\npolicy = \"clear\"\n\
             [[locator]]\nid = \"config-envelope\"\nstorage = \"{FIXTURES_STORAGE}\"\nasset = \"ladder\"\npolicy = \"envelope\"\n\
             keys = [{{ kid = \"00112233445566778899aabbccddeeff\", key = \"000102030405060708090a0b0c0d0e0f\" }}]\n\
             [[filter]]\nname = \"config-filter\"\nend_secs = 4.0\n\
             [limits]\nbody_read_timeout_secs = 1\n\
             [store]\nstorage = \"docs\"\nprefix = \"ams\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntokens_env = \"{tokens_env}\"\nread_tokens_env = \"{reads_env}\"\n\
             [api.jwt]\nissuer = \"https://idp.example\"\naudience = \"jit-origin-api\"\nhs256_secret_base64 = \"{jwt_secret}\"\n",
            fixtures_storage_toml(),
            store_dir.path().display()
        );
        let config = Config::parse(&text, PathBuf::new()).expect("config");
        let origin = Arc::new(Origin::from_config(&config).expect("origin"));
        let store = Arc::new(Store::new(origin.storage("docs").unwrap().clone(), "ams").unwrap());
        let sealer = Arc::new(Sealer::new(&[7; 32]).unwrap());
        let api = Api::new(
            store.clone(),
            sealer.clone(),
            origin.clone(),
            Auth::new(config.api.as_ref().unwrap()).unwrap(),
            Some(FIXTURES_STORAGE.into()),
            &config.limits,
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = config.limits.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let stopped = async move {
                    let _ = stopped.await;
                };
                server::serve(listener, None, Arc::new(api), &limits, stopped, std::time::Duration::from_secs(2)).await;
            });
        });
        ApiServer { addr, store_dir, origin, store, sealer, http: config.http, stop: Some(stop), thread: Some(thread) }
    }

    /// The media listener of the same origin, its catalog refreshed from the store first (as a
    /// serving process does in the background).
    async fn media(&self) -> TestServer {
        catalog::refresh(&self.origin, &self.store, &self.sealer, Some(FIXTURES_STORAGE)).await;
        let service = Service::new(self.origin.clone(), self.http.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        TestServer::serve_service(listener, service, &LimitsConfig::default())
    }

    fn url(&self, prefix: &str, path: &str) -> String {
        format!("http://{}{prefix}/{path}?api-version=2022-08-01", self.addr)
    }

    /// Every file of the store, with its contents.
    fn store_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut files = Vec::new();
        walk(self.store_dir.path(), &mut files);
        files.sort();
        files
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A request with `token` (None: no Authorization header) and a JSON body.
async fn call(method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> Got {
    let client = common::client();
    let mut request = client.request(method.clone(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let (status, headers, version) = (response.status(), response.headers().clone(), response.version());
    let body = response.bytes().await.unwrap().to_vec();
    Got { what: format!("{method} {url}"), status, headers, body, version }
}

async fn put(url: &str, body: Value) -> Got {
    call(Method::PUT, url, Some(WRITER), Some(body)).await
}

async fn get(url: &str) -> Got {
    call(Method::GET, url, Some(WRITER), None).await
}

async fn post(url: &str) -> Got {
    call(Method::POST, url, Some(WRITER), None).await
}

fn expect(got: &Got, status: u16) {
    assert_eq!(got.status.as_u16(), status, "{}", got.describe());
}

/// A 400 whose AMS error message names `field`.
fn expect_bad(got: &Got, field: &str) {
    expect(got, 400);
    let error = &got.json()["error"];
    assert_eq!(error["code"], "BadRequest", "{}", got.describe());
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(field), "{field} not named in: {message}");
}

fn token_policy_body(secret: &str) -> Value {
    json!({"properties": {"description": "token", "options": [{
        "name": "clearKey",
        "configuration": {"@odata.type": "#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"},
        "restriction": {
            "@odata.type": "#Microsoft.Media.ContentKeyPolicyTokenRestriction",
            "issuer": "https://issuer.example", "audience": "players",
            "primaryVerificationKey": {"@odata.type": "#Microsoft.Media.ContentKeyPolicySymmetricTokenKey", "keyValue": secret},
            "restrictionTokenType": "Jwt"
        }
    }]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_round_trip_on_both_path_shapes() {
    let api = ApiServer::start();
    let (arm, mkio) = (|p: &str| api.url(ARM, p), |p: &str| api.url(MKIO, p));

    // Assets: created on one path shape, read on the other.
    let asset = json!({"properties": {"container": "ladder", "description": "the ladder"}});
    let created = put(&arm("assets/ladder"), asset.clone()).await;
    expect(&created, 201);
    let body = created.json();
    assert_eq!(body["type"], "Microsoft.Media/mediaservices/assets");
    assert_eq!(body["id"], format!("{ARM}/assets/ladder"));
    expect(&put(&arm("assets/ladder"), asset).await, 200);
    let read = get(&mkio("Assets/ladder")).await.ok().json();
    assert_eq!(read["id"], format!("{MKIO}/assets/ladder"));
    assert_eq!(read["properties"]["storageAccountName"], FIXTURES_STORAGE);
    assert_eq!(read["properties"]["assetId"], body["properties"]["assetId"]);
    let patched =
        call(Method::PATCH, &mkio("assets/ladder"), Some(WRITER), Some(json!({"properties": {"description": "new"}})))
            .await;
    expect(&patched, 200);
    assert_eq!(patched.json()["properties"]["description"], "new");
    assert_eq!(patched.json()["properties"]["container"], "ladder");
    // Without a container, the asset's folder is named as AMS names it, and a replacing PUT
    // without one keeps it.
    let created = put(&arm("assets/unnamed"), json!({"properties": {}})).await;
    expect(&created, 201);
    let asset_id = created.json()["properties"]["assetId"].as_str().unwrap().to_string();
    assert_eq!(created.json()["properties"]["container"], format!("asset-{asset_id}"));
    let replaced = put(&arm("assets/unnamed"), json!({"properties": {"description": "d"}})).await.ok().json();
    assert_eq!(replaced["properties"]["container"], format!("asset-{asset_id}"));
    expect(&call(Method::DELETE, &arm("assets/unnamed"), Some(WRITER), None).await, 200);

    // Content key policies: the symmetric key is shown only with secrets.
    let secret = base64_of(&[5; 32]);
    expect(&put(&arm("contentKeyPolicies/tokens"), token_policy_body(&secret)).await, 201);
    let shown = get(&arm("contentKeyPolicies/tokens")).await.ok().text();
    assert!(!shown.contains(&secret), "{shown}");
    let with_secrets = post(&arm("contentKeyPolicies/tokens/getPolicyPropertiesWithSecrets")).await.ok().json();
    assert_eq!(with_secrets["options"][0]["restriction"]["primaryVerificationKey"]["keyValue"], secret);
    let patch = json!({"properties": {"description": "patched"}});
    expect(&call(Method::PATCH, &arm("contentKeyPolicies/tokens"), Some(WRITER), Some(patch)).await, 200);
    let with_secrets = post(&arm("contentKeyPolicies/tokens/getPolicyPropertiesWithSecrets")).await.ok().json();
    assert_eq!(with_secrets["description"], "patched");
    assert_eq!(
        with_secrets["options"][0]["restriction"]["primaryVerificationKey"]["keyValue"], secret,
        "kept by a PATCH"
    );

    // Streaming policies: predefined ones built in, custom ones immutable.
    let envelope = json!({"properties": {"defaultContentKeyPolicyName": "tokens", "envelopeEncryption": {
        "enabledProtocols": {"download": false, "dash": false, "hls": true, "smoothStreaming": false}}}});
    expect(&put(&mkio("streamingPolicies/envelope"), envelope.clone()).await, 201);
    expect(&put(&mkio("streamingPolicies/envelope"), envelope).await, 200);
    let other = json!({"properties": {"noEncryption": {}}});
    expect(&put(&mkio("streamingPolicies/envelope"), other).await, 409);
    expect(&get(&arm("streamingPolicies/Predefined_ClearStreamingOnly")).await, 200);
    let policies = get(&arm("streamingPolicies")).await.ok().json();
    assert_eq!(policies["value"].as_array().unwrap().len(), 7, "{policies}");

    // Filters: account and asset.
    let first_two_seconds =
        json!({"properties": {"presentationTimeRange": {"startTimestamp": 0, "endTimestamp": 20_000_000}}});
    expect(&put(&arm("accountFilters/short"), first_two_seconds).await, 201);
    let video_only = json!({"properties": {"tracks": [{"trackSelections": [
        {"property": "Type", "operation": "Equal", "value": "Video"}]}]}});
    expect(&put(&arm("assets/ladder/assetFilters/video"), video_only).await, 201);
    let filters = get(&mkio("assets/ladder/assetFilters")).await.ok().json();
    assert_eq!(filters["value"][0]["type"], "Microsoft.Media/mediaservices/assets/assetFilters");

    // Locators: immutable; keys generated, hidden, and listed by listContentKeys only.
    let clear = json!({"properties": {"assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly",
        "filters": ["short", "video"]}});
    let created = put(&arm("streamingLocators/clear"), clear.clone()).await;
    expect(&created, 201);
    let clear_id = created.json()["properties"]["streamingLocatorId"].as_str().unwrap().to_string();
    expect(&put(&arm("streamingLocators/clear"), clear).await, 200);
    let changed = json!({"properties": {"assetName": "ladder", "streamingPolicyName": "Predefined_DownloadOnly"}});
    expect(&put(&arm("streamingLocators/clear"), changed).await, 409);
    let keyed = json!({"properties": {"assetName": "ladder", "streamingPolicyName": "envelope"}});
    let created = put(&mkio("streamingLocators/keyed"), keyed).await;
    expect(&created, 201);
    let key = &created.json()["properties"]["contentKeys"][0];
    assert_eq!(key["type"], "EnvelopeEncryption");
    assert!(key.get("value").is_none(), "{key}");
    let keys = post(&mkio("streamingLocators/keyed/listContentKeys")).await.ok().json();
    let value = keys["contentKeys"][0]["value"].as_str().unwrap();
    assert_eq!(jit_origin::protect::decode_base64(value).unwrap().len(), 16);
    assert!(
        !api.store_files().iter().any(|(_, body)| String::from_utf8_lossy(body).contains(value)),
        "keys are sealed"
    );

    // listPaths: the origin's URLs of the enabled protocols and schemes.
    let paths = post(&arm("streamingLocators/clear/listPaths")).await.ok().json();
    let hls = &paths["streamingPaths"][0];
    assert_eq!(
        (hls["streamingProtocol"].as_str(), hls["encryptionScheme"].as_str()),
        (Some("Hls"), Some("NoEncryption"))
    );
    assert_eq!(hls["paths"][1], format!("/{clear_id}/ladder.ism/manifest(format=m3u8-cmaf)"));
    assert_eq!(paths["streamingPaths"][1]["streamingProtocol"], "Dash");
    assert_eq!(paths["downloadPaths"], json!([]));
    let paths = post(&arm("streamingLocators/keyed/listPaths")).await.ok().json();
    assert_eq!(paths["streamingPaths"].as_array().unwrap().len(), 1, "{paths}");
    assert!(paths["streamingPaths"][0]["paths"][0].as_str().unwrap().ends_with("encryption=cbc)"), "{paths}");

    let on_asset = post(&arm("assets/ladder/listStreamingLocators")).await.ok().json();
    assert_eq!(on_asset["streamingLocators"].as_array().unwrap().len(), 2, "{on_asset}");

    // Config locators: listed, read-only.
    let locators = get(&arm("streamingLocators")).await.ok().json();
    let names: Vec<&str> = locators["value"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["clear", "config-envelope", "config-locator", "keyed"]);
    // Their keys are read as a stored locator's are: by listContentKeys only.
    let keys = post(&arm("streamingLocators/config-envelope/listContentKeys")).await.ok().json();
    assert_eq!(
        keys["contentKeys"],
        json!([{"id": "00112233-4455-6677-8899-aabbccddeeff", "type": "EnvelopeEncryption", "value": "AAECAwQFBgcICQoLDA0ODw=="}])
    );
    let keys = post(&arm("streamingLocators/config-locator/listContentKeys")).await.ok().json();
    assert_eq!(keys["contentKeys"], json!([]));
    let config_paths = post(&arm("streamingLocators/config-locator/listPaths")).await.ok().json();
    assert_eq!(config_paths["streamingPaths"][0]["paths"][0], "/config-locator/ladder.ism/manifest(format=m3u8-aapl)");
    let replace =
        json!({"properties": {"assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly"}});
    expect(&put(&arm("streamingLocators/config-locator"), replace).await, 409);
    expect(&call(Method::DELETE, &arm("streamingLocators/config-locator"), Some(WRITER), None).await, 409);

    // Config filters: account filters, listed and read-only.
    let config_filter = get(&arm("accountFilters/config-filter")).await.ok().json();
    assert_eq!(config_filter["properties"]["presentationTimeRange"]["endTimestamp"], 40_000_000);
    let filters = get(&arm("accountFilters")).await.ok().json();
    let names: Vec<&str> = filters["value"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["config-filter", "short"]);
    expect(&put(&arm("accountFilters/config-filter"), json!({"properties": {}})).await, 409);
    expect(&call(Method::DELETE, &arm("accountFilters/config-filter"), Some(WRITER), None).await, 409);

    // Deleting the asset deletes its filters and locators; deleting again is 204.
    expect(&call(Method::DELETE, &mkio("assets/ladder"), Some(WRITER), None).await, 200);
    for gone in
        ["assets/ladder", "streamingLocators/clear", "streamingLocators/keyed", "assets/ladder/assetFilters/video"]
    {
        let got = get(&arm(gone)).await;
        expect(&got, 404);
        assert_eq!(got.json()["error"]["code"], "ResourceNotFound");
    }
    expect(&call(Method::DELETE, &mkio("assets/ladder"), Some(WRITER), None).await, 204);
    expect(&get(&arm("accountFilters/short")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_next_links() {
    let api = ApiServer::start();
    for i in 0..5 {
        let filter = json!({"properties": {"firstQuality": {"bitrate": 100_000 + i}}});
        expect(&put(&api.url(MKIO, &format!("accountFilters/f{i}")), filter).await, 201);
    }
    let mut url = format!("{}&$top=2", api.url(MKIO, "accountFilters"));
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = get(&url).await.ok().json();
        pages += 1;
        names.extend(page["value"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()));
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    let expected = ["config-filter", "f0", "f1", "f2", "f3", "f4"].map(String::from).to_vec();
    assert_eq!((pages, names), (3, expected));
    expect_bad(&get(&format!("{}&$top=0", api.url(MKIO, "accountFilters"))).await, "$top");
    expect_bad(&get(&format!("{}&$orderby=name", api.url(MKIO, "accountFilters"))).await, "$orderby");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_need_a_token() {
    let api = ApiServer::start();
    let url = api.url(ARM, "accountFilters/f");
    let body = json!({"properties": {"firstQuality": {"bitrate": 1}}});
    let none = call(Method::GET, &url, None, None).await;
    expect(&none, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert_eq!(none.json()["error"]["code"], "AuthenticationFailed");
    expect(&call(Method::GET, &url, Some("not-a-token-of-ours-000"), None).await, 401);
    expect(&call(Method::PUT, &url, Some(READER), Some(body.clone())).await, 403);
    expect(&call(Method::GET, &url, Some(READER), None).await, 404);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": "https://idp.example", "aud": "jit-origin-api", "sub": "ops@example", "exp": now + 600});
    let key = jsonwebtoken::EncodingKey::from_secret(&JWT_SECRET);
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    expect(&call(Method::PUT, &url, Some(&jwt), Some(body.clone())).await, 201);
    let expired = json!({"iss": "https://idp.example", "aud": "jit-origin-api", "exp": now - 3600});
    let old = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &expired, &key).unwrap();
    let refused = call(Method::GET, &url, Some(&old), None).await;
    expect(&refused, 401);
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("expired"));
    // A read-only token may not see keys either.
    expect(&call(Method::POST, &api.url(ARM, "streamingLocators/x/listContentKeys"), Some(READER), None).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let api = ApiServer::start();
    let url = |p: &str| api.url(MKIO, p);
    expect(&put(&url("assets/ladder"), json!({"properties": {"container": "ladder"}})).await, 201);
    let before = api.store_files();
    assert!(!before.is_empty());

    let raw = |body: &'static str| {
        let url = url("assets/other");
        async move {
            let client = common::client();
            let response = client.put(&url).bearer_auth(WRITER).body(body).send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap().to_vec();
            Got { what: format!("PUT {url}"), status, headers, body, version: reqwest::Version::HTTP_11 }
        }
    };
    expect_bad(&raw("{\"properties\": ").await, "the body is not JSON: EOF while parsing a value at line 1 column 15");
    expect_bad(&raw("{not json").await, "the body is not JSON: key must be a string at line 1 column 2");
    expect_bad(&put(&url("assets/other"), json!({"properties": {"container": "x", "colour": 1}})).await, "colour");
    expect_bad(&put(&url("assets/other"), json!({"properties": {"container": "../x"}})).await, "properties.container");
    let locator = |properties: Value| json!({"properties": properties});
    let cases = [
        (
            json!({"assetName": "missing", "streamingPolicyName": "Predefined_ClearStreamingOnly"}),
            "properties.assetName",
        ),
        (
            json!({"assetName": "ladder", "streamingPolicyName": "Predefined_ClearKey",
            "contentKeys": [{"id": "6d1a1a55-1c9d-4b70-8b47-1c6fc6e2a9a1", "value": base64_of(&[1; 15])}]}),
            "properties.contentKeys[0].value",
        ),
        (
            json!({"assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly",
            "startTime": "2026-06-01T00:00:00Z", "endTime": "2026-05-01T00:00:00Z"}),
            "properties.endTime",
        ),
        (json!({"assetName": "ladder", "streamingPolicyName": "nope"}), "properties.streamingPolicyName"),
        (
            json!({"assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly", "filters": ["nope"]}),
            "properties.filters[0]",
        ),
        (
            json!({"assetName": "ladder", "streamingPolicyName": "Predefined_ClearKey", "defaultContentKeyPolicyName": "nope"}),
            "properties.defaultContentKeyPolicyName",
        ),
        (json!({"assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly", "colour": 1}), "colour"),
    ];
    for (properties, field) in cases {
        expect_bad(&put(&url("streamingLocators/bad"), locator(properties)).await, field);
    }
    let unknown_property = json!({"properties": {"tracks": [{"trackSelections": [
        {"property": "Colour", "operation": "Equal", "value": "x"}]}]}});
    expect_bad(
        &put(&url("accountFilters/bad"), unknown_property).await,
        "properties.tracks[0].trackSelections[0].property",
    );
    let unknown_field = json!({"properties": {"presentationTimeRange": {"startTimestamp": 0, "colour": 1}}});
    expect_bad(&put(&url("assets/ladder/assetFilters/bad"), unknown_field).await, "colour");
    expect_bad(
        &put(&url("contentKeyPolicies/bad"), token_policy_body(&base64_of(&[5; 8]))).await,
        "properties.options[0]",
    );

    let huge = json!({"properties": {"container": "ladder", "description": "x".repeat(64 * 1024)}});
    let too_large = put(&url("assets/other"), huge).await;
    expect(&too_large, 413);
    assert_eq!(too_large.json()["error"]["code"], "RequestEntityTooLarge");

    assert_eq!(api.store_files(), before, "refused requests wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_locator_give_one_201() {
    let api = ApiServer::start();
    expect(&put(&api.url(MKIO, "assets/ladder"), json!({"properties": {"container": "ladder"}})).await, 201);
    let url = api.url(MKIO, "streamingLocators/raced");
    // Different bodies, so that a late PUT cannot pass for a repeat of the winner's (200).
    let puts = (0..6).map(|i| {
        let url = url.clone();
        let body = json!({"properties": {"assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly",
            "alternativeMediaId": format!("writer-{i}")}});
        tokio::spawn(async move { put(&url, body).await.status.as_u16() })
    });
    let mut statuses = Vec::new();
    for put in puts.collect::<Vec<_>>() {
        statuses.push(put.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_is_a_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = ApiServer::start();
    let mut stream = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "PUT {MKIO}/assets/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITER}\r\nContent-Length: 100\r\n\r\n{{\"prop"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("RequestTimeout") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    });
    read.await.expect("answered within the body timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_endpoint_honours_alternate_keys_and_required_claims() {
    let api = ApiServer::start();
    let url = |p: &str| api.url(MKIO, p);
    let (primary, alternate) = ([11u8; 32], [12u8; 32]);
    let mut policy = token_policy_body(&base64_of(&primary));
    let restriction = &mut policy["properties"]["options"][0]["restriction"];
    restriction["alternateVerificationKeys"] = json!([
        {"@odata.type": "#Microsoft.Media.ContentKeyPolicySymmetricTokenKey", "keyValue": base64_of(&alternate)}]);
    restriction["requiredClaims"] = json!([{"claimType": "urn:example:entitlement", "claimValue": "premium"}]);
    expect(&put(&url("contentKeyPolicies/entitled"), policy).await, 201);
    let envelope = json!({"properties": {"defaultContentKeyPolicyName": "entitled", "envelopeEncryption": {
        "enabledProtocols": {"download": false, "dash": false, "hls": true, "smoothStreaming": false}}}});
    expect(&put(&url("streamingPolicies/envelope"), envelope).await, 201);
    expect(&put(&url("assets/ladder"), json!({"properties": {"container": "ladder"}})).await, 201);
    let locator = json!({"properties": {"assetName": "ladder", "streamingPolicyName": "envelope"}});
    let created = put(&url("streamingLocators/keyed"), locator).await;
    expect(&created, 201);
    let locator_id = created.json()["properties"]["streamingLocatorId"].as_str().unwrap().to_string();
    let keys = post(&url("streamingLocators/keyed/listContentKeys")).await.ok().json();
    let kid = keys["contentKeys"][0]["id"].as_str().unwrap().replace('-', "");
    let key = jit_origin::protect::decode_base64(keys["contentKeys"][0]["value"].as_str().unwrap()).unwrap();

    let media = api.media().await;
    let key_url = media.url(&format!("/{locator_id}/key/{kid}"));
    let fetch_key = |secret: [u8; 32], entitlement: Value| {
        let claims = json!({"iss": "https://issuer.example", "aud": "players",
            "exp": jsonwebtoken::get_current_timestamp() + 600, "urn:example:entitlement": entitlement});
        let secret = jsonwebtoken::EncodingKey::from_secret(&secret);
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &secret).unwrap();
        let key_url = key_url.clone();
        async move {
            common::request(&common::client(), Method::GET, &key_url, &[("authorization", &format!("Bearer {token}"))])
                .await
        }
    };
    let got = fetch_key(alternate, json!(["basic", "premium"])).await;
    expect(&got, 200);
    assert_eq!(got.body, key);
    expect(&fetch_key(primary, json!("premium")).await, 200);
    let refused = fetch_key(alternate, json!("basic")).await;
    expect(&refused, 403);
    assert!(refused.text().contains("claim"), "{}", refused.describe());
    expect(&fetch_key([13; 32], json!("premium")).await, 401);
}
