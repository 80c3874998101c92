//! Live events through the management API and the command line, against the real binary
//! with a store, ingest listeners and a live event of its config file:
//!
//! * `an_event_records_into_its_output_asset_as_it_is_started_and_stopped`: an asset, a live
//!   event (its ingest URLs listed with the bound ingest ports), a live output and a locator
//!   created through the API; `start` writes `running` into the asset folder's `live.json`
//!   (with the output's DVR window), `stop` writes `stopped`; a running event is not deleted;
//!   `reset` ends the recording and deletes the output, the event keeps running; a stopped
//!   event is deleted with its outputs, the asset stays;
//! * `bad_input_is_refused_naming_the_field`: a window outside PT1M–PT25H, an unknown asset,
//!   an output on a missing event, an unknown protocol, live encoding, a short or taken token,
//!   a second output, each in the AMS error shape, and nothing written;
//! * `the_command_line_starts_and_stops_a_config_event`: `jit-origin live-event start|stop`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use common::emulator::free_port;

const TOKEN: &str = "live-api-test-token-0123";
const CONFIG_EVENT_TOKEN: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const ARM: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/media/providers/Microsoft.Media/mediaServices/acct";

/// The origin binary over a temporary folder (media and store); killed on drop.
struct Origin {
    child: Child,
    dir: tempfile::TempDir,
    config: PathBuf,
    api: u16,
    cmaf: u16,
    rtmp: u16,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Origin {
    fn start() -> Origin {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["media", "docs/ams"] {
            std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        }
        let (http, api, cmaf, rtmp) = (free_port(), free_port(), free_port(), free_port());
        let text = format!(
            "listen = \"127.0.0.1:{http}\"\n\
             [[storage]]\nname = \"media\"\nurl = \"file://{root}/media\"\n\
             [[storage]]\nname = \"docs\"\nurl = \"file://{root}/docs\"\n\
             [store]\nstorage = \"docs\"\nprefix = \"ams\"\nrefresh_secs = 1\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\ntokens_env = \"LIVE_API_TEST_TOKENS\"\n\
             [ingest]\nlisten = \"127.0.0.1:{cmaf}\"\nrtmp_listen = \"127.0.0.1:{rtmp}\"\n\
             [[live_event]]\nname = \"config-event\"\naccess_token = \"{CONFIG_EVENT_TOKEN}\"\nstorage = \"media\"\n\
             folder = \"live/config-event\"\ndvr_window_secs = 600\n",
            root = dir.path().display(),
        );
        let config = dir.path().join("origin.toml");
        std::fs::write(&config, text).unwrap();
        let child = Command::new(common::bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("LIVE_API_TEST_TOKENS", TOKEN)
            .env("JIT_ORIGIN_STORE_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("origin");
        let origin = Origin { child, dir, config, api, cmaf, rtmp };
        for port in [api, cmaf, rtmp, http] {
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "nothing listens on port {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        origin
    }

    /// An API call: the status and the JSON body (`null` when there is none).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("http://127.0.0.1:{}{ARM}/{path}{separator}api-version=2022-08-01", self.api);
        let mut request = reqwest::Client::new().request(method.clone(), &url).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, json)
    }

    /// The event document of the asset folder `folder` of the media account.
    fn live_json(&self, folder: &str) -> Option<Value> {
        let path = self.dir.path().join("media").join(folder).join("live.json");
        std::fs::read(path).ok().map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }

    fn store_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.dir.path().join("docs"), &mut files);
        files.sort();
        files
    }
}

fn event(protocol: &str) -> Value {
    json!({
        "location": "West Europe",
        "properties": {
            "input": { "streamingProtocol": protocol },
            "encoding": { "encodingType": "PassthroughStandard" },
        }
    })
}

fn output(asset: &str, window: &str) -> Value {
    json!({ "properties": { "assetName": asset, "archiveWindowLength": window, "manifestName": "final" } })
}

#[tokio::test]
async fn an_event_records_into_its_output_asset_as_it_is_started_and_stopped() {
    let origin = Origin::start();
    let (status, _) = origin
        .call(
            Method::PUT,
            "assets/match",
            Some(json!({ "properties": { "container": "live/match", "storageAccountName": "media" } })),
        )
        .await;
    assert_eq!(status, 201);

    let (status, created) = origin.call(Method::PUT, "liveEvents/ev1", Some(event("FragmentedMP4"))).await;
    assert_eq!(status, 201, "{created}");
    let properties = &created["properties"];
    assert_eq!(
        (properties["resourceState"].as_str(), properties["provisioningState"].as_str()),
        (Some("Stopped"), Some("Succeeded"))
    );
    let token = properties["input"]["accessToken"].as_str().unwrap().to_string();
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "a generated GUID's hex digits: {token}"
    );
    let cmaf_url = format!("http://127.0.0.1:{}/{token}/ingest.isml", origin.cmaf);
    assert_eq!(properties["input"]["endpoints"], json!([{ "protocol": "FragmentedMP4", "url": cmaf_url }]));
    let (_, got) = origin.call(Method::GET, "liveEvents/ev1", None).await;
    assert_eq!(got["properties"]["input"]["endpoints"][0]["url"], cmaf_url.as_str(), "{got}");
    assert!(got["properties"]["created"].is_string() && got["properties"]["lastModified"].is_string(), "{got}");

    let (status, out) =
        origin.call(Method::PUT, "liveEvents/ev1/liveOutputs/out1", Some(output("match", "PT30M"))).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(origin.live_json("live/match"), None, "a stopped event records nothing yet");
    let locator =
        json!({ "properties": { "assetName": "match", "streamingPolicyName": "Predefined_ClearStreamingOnly" } });
    assert_eq!(origin.call(Method::PUT, "streamingLocators/match-clear", Some(locator)).await.0, 201);

    assert_eq!(origin.call(Method::POST, "liveEvents/ev1/start", None).await.0, 200);
    let live = origin.live_json("live/match").expect("start writes live.json");
    assert_eq!(
        (live["event"].as_str(), live["state"].as_str(), live["dvr_window_secs"].as_u64()),
        (Some("ev1"), Some("running"), Some(1800))
    );
    assert_eq!(origin.call(Method::GET, "liveEvents/ev1", None).await.1["properties"]["resourceState"], "Running");

    let (status, refused) = origin.call(Method::DELETE, "liveEvents/ev1", None).await;
    assert_eq!(status, 400, "a running event is not deleted: {refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("properties.resourceState:"), "{refused}");

    assert_eq!(
        origin.call(Method::POST, "liveEvents/ev1/stop", Some(json!({ "removeOutputsOnStop": false }))).await.0,
        200
    );
    assert_eq!(origin.live_json("live/match").unwrap()["state"], "stopped");
    assert_eq!(origin.call(Method::GET, "liveEvents/ev1/liveOutputs/out1", None).await.0, 200, "the output stays");

    // Reset: the recording ends, the output goes, the event runs on for a new output.
    assert_eq!(origin.call(Method::POST, "liveEvents/ev1/start", None).await.0, 200);
    assert_eq!(origin.live_json("live/match").unwrap()["state"], "running");
    assert_eq!(origin.call(Method::POST, "liveEvents/ev1/reset", None).await.0, 200);
    assert_eq!(origin.live_json("live/match").unwrap()["state"], "stopped");
    assert_eq!(origin.call(Method::GET, "liveEvents/ev1/liveOutputs/out1", None).await.0, 404);
    assert_eq!(origin.call(Method::GET, "liveEvents/ev1", None).await.1["properties"]["resourceState"], "Running");

    // An output created on a running event records at once; deleting it ends the recording.
    let (status, _) = origin.call(Method::PUT, "liveEvents/ev1/liveOutputs/out2", Some(output("match", "PT1H"))).await;
    assert_eq!(status, 201);
    let live = origin.live_json("live/match").unwrap();
    assert_eq!((live["state"].as_str(), live["dvr_window_secs"].as_u64()), (Some("running"), Some(3600)));
    assert_eq!(origin.call(Method::DELETE, "liveEvents/ev1/liveOutputs/out2", None).await.0, 200);
    assert_eq!(origin.live_json("live/match").unwrap()["state"], "stopped");

    assert_eq!(origin.call(Method::PUT, "liveEvents/ev1/liveOutputs/out3", Some(output("match", "PT1H"))).await.0, 201);
    assert_eq!(
        origin.call(Method::POST, "liveEvents/ev1/stop", Some(json!({ "removeOutputsOnStop": true }))).await.0,
        200
    );
    assert_eq!(origin.call(Method::GET, "liveEvents/ev1/liveOutputs", None).await.1["value"], json!([]));
    assert_eq!(origin.call(Method::DELETE, "liveEvents/ev1", None).await.0, 200);
    assert_eq!(origin.call(Method::GET, "liveEvents/ev1", None).await.0, 404);
    assert_eq!(origin.call(Method::GET, "assets/match", None).await.0, 200, "the recorded asset stays");

    // autoStart: created running.
    let (status, auto) = origin.call(Method::PUT, "liveEvents/ev2?autoStart=true", Some(event("RTMP"))).await;
    assert_eq!((status, auto["properties"]["resourceState"].as_str()), (201, Some("Running")), "{auto}");
    let token = auto["properties"]["input"]["accessToken"].as_str().unwrap();
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/{token}", origin.rtmp);
    assert_eq!(auto["properties"]["input"]["endpoints"], json!([{ "protocol": "RTMP", "url": rtmp_url }]));
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let origin = Origin::start();
    let asset = json!({ "properties": { "container": "live/a", "storageAccountName": "media" } });
    assert_eq!(origin.call(Method::PUT, "assets/a", Some(asset)).await.0, 201);
    let mut with_token = event("RTMP");
    with_token["properties"]["input"]["accessToken"] = json!("0123456789abcdef0123456789abcdef");
    assert_eq!(origin.call(Method::PUT, "liveEvents/ev", Some(with_token.clone())).await.0, 201);
    assert_eq!(origin.call(Method::PUT, "liveEvents/ev/liveOutputs/out", Some(output("a", "PT1M"))).await.0, 201);
    let before = origin.store_files();

    let mut other_token = with_token.clone();
    other_token["properties"]["input"]["accessToken"] = json!(CONFIG_EVENT_TOKEN);
    let mut short_token = with_token.clone();
    short_token["properties"]["input"]["accessToken"] = json!("short");
    let mut encoding = event("RTMP");
    encoding["properties"]["encoding"]["encodingType"] = json!("Standard");
    for (path, body, status, said) in [
        ("liveEvents/ev/liveOutputs/o2", output("a", "PT59S"), 400, "properties.archiveWindowLength: 'PT59S'"),
        ("liveEvents/ev/liveOutputs/o2", output("a", "PT25H1S"), 400, "properties.archiveWindowLength:"),
        ("liveEvents/ev/liveOutputs/o2", output("a", "an hour"), 400, "properties.archiveWindowLength:"),
        ("liveEvents/ev/liveOutputs/o2", output("absent", "PT1H"), 400, "properties.assetName: no asset 'absent'"),
        ("liveEvents/ev/liveOutputs/o2", output("a", "PT1H"), 409, "records into live output 'out'"),
        ("liveEvents/missing/liveOutputs/o", output("a", "PT1H"), 404, "liveEvents 'missing' not found"),
        ("liveEvents/ev2", event("SRT"), 400, "properties.input.streamingProtocol: 'SRT'"),
        ("liveEvents/ev2", encoding, 400, "properties.encoding.encodingType: 'Standard'"),
        ("liveEvents/ev2", short_token, 400, "properties.input.accessToken: must be 16 to 128"),
        ("liveEvents/ev2", with_token, 409, "properties.input.accessToken: another live event has this token"),
        ("liveEvents/ev2", other_token, 409, "properties.input.accessToken: another live event has this token"),
        ("liveEvents/config-event", event("RTMP"), 409, "defined in the configuration file"),
        ("liveEvents/bad_name", event("RTMP"), 400, "liveEventName: 'bad_name'"),
    ] {
        let (got, answer) = origin.call(Method::PUT, path, Some(body)).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            got == status && answer["error"]["code"].is_string() && message.contains(said),
            "{path}: {got} {answer}"
        );
    }
    let (got, answer) = origin.call(Method::POST, "liveEvents/ev/reset", None).await;
    assert!(got == 400 && answer["error"]["message"].as_str().unwrap().contains("Stopped"), "{answer}");
    let (got, answer) = origin.call(Method::POST, "liveEvents/ev/stop", Some(json!({ "colour": 1 }))).await;
    assert!(got == 400 && answer["error"]["message"].as_str().unwrap().contains("colour"), "{answer}");
    assert_eq!(origin.store_files(), before, "nothing refused was written");
    assert_eq!(origin.live_json("live/a"), None);
}

#[test]
fn the_command_line_starts_and_stops_a_config_event() {
    let origin = Origin::start();
    let cli = |args: &[&str]| {
        let mut command = Command::new(common::bin());
        command.arg("live-event").args(args).arg("--config").arg(&origin.config).env("LIVE_API_TEST_TOKENS", TOKEN);
        command.output().expect("jit-origin live-event")
    };
    let started = cli(&["start", "config-event"]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let live = origin.live_json("live/config-event").expect("live.json");
    assert_eq!((live["state"].as_str(), live["dvr_window_secs"].as_u64()), (Some("running"), Some(600)));
    let stopped = cli(&["stop", "config-event"]);
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    assert_eq!(origin.live_json("live/config-event").unwrap()["state"], "stopped");

    let unknown = cli(&["start", "absent"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no [[live_event]] 'absent'"));
}
