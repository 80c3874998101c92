//! Byte-identical responses: every manifest, init segment, media segment, key, licence and
//! error the origin serves for the fixtures, compared with a recording.
//!
//! The test runs the `jit-origin serve` binary (no internal API, so it holds across
//! refactors) over a copy of `fixtures/` whose files all have one fixed modification time
//! (ETags hash source sizes and mtimes), with a clear, an AES-128 envelope and a multi-DRM
//! locator per asset, and on the ladder cenc and envelope locators behind tokens, a cbcs one,
//! a key-seed one, a signed one and a filtered one (and, from a second server with
//! `segment_duration`, the clear, envelope and multi-DRM locators of four assets cut to a
//! target duration). It requests every manifest format with every encryption (allowed or
//! not), Smooth Streaming's included, crawls every URL the manifests list (HLS playlists,
//! `EXT-X-MAP`, segments, key URIs on this origin; DASH `SegmentTemplate` +
//! `SegmentTimeline` expanded; Smooth `Url` templates over QualityLevels and chunks), adds keys, ClearKey licences, conditional and range requests
//! and error cases, and records one line per request: status, `Content-Type`, `ETag`,
//! `Cache-Control`, `Content-Length` and the SHA-256 of the body.
//!
//! A refactor must leave `tests/golden/responses.tsv` as it is. Re-record only when an output
//! change is intended, and say why in the commit:
//!
//! ```sh
//! GOLDEN_RECORD=1 cargo test --locked --test golden
//! ```
//!
//! Time-dependent headers (`Date`) are not recorded; `Last-Modified` follows the fixed mtimes
//! but is left out as the ETag already covers it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use sha2::{Digest, Sha256};

const ASSETS: [&str; 7] = ["ladder", "ladder-frag", "ladder-cmaf", "muxed", "hevc", "dolby", "edit"];
const FORMATS: [&str; 5] = ["m3u8-cmaf", "m3u8-aapl", "m3u8-aapl-v3", "mpd-time-cmaf", "mpd-time-csf"];

/// Every source file's modification time (2023-11-14), so ETags are the same on any checkout.
const FIXED_MTIME_SECS: u64 = 1_700_000_000;
/// Expiry of the test's tokens and signatures: 2100-01-01.
const FAR_FUTURE: u64 = 4_102_444_800;

const ENV_KID: &str = "0b6f3a5e9c2d4e8f8a1b3c5d7e9f1a2b";
const ENV_KEY: &str = "3c9e1f7a5b2d4c6e8f0a1b3d5e7f9a1c";
const DRM_KID: &str = "9eb4050de44b4802932e27d75083e266";
const DRM_KEY: &str = "166634c675823c235a4a9446fad52e4d";
const TOKEN_KID: &str = "00112233445566778899aabbccddeeff";
const TOKEN_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const CBCS_KID: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const CBCS_KEY: &str = "5566778899aabbccddeeff0011223344";
/// Microsoft's published PlayReady test seed and a KID whose key it derives.
const SEED_B64: &str = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I";
const SEED_KID: &str = "339C45B5-FB6D-4BD9-994C-EABD9D41C95B";

/// The KIDs as a ClearKey licence request spells them (base64url without padding).
const ENV_KID_B64URL: &str = "C286XpwtTo-KGzxdfp8aKw";
const DRM_KID_B64URL: &str = "nrQFDeRLSAKTLifXUIPiZg";
const TOKEN_KID_B64URL: &str = "ABEiM0RVZneImaq7zN3u_w";
const CBCS_KID_B64URL: &str = "oKGio6SlpqeoqaqrrK2urw";
const SEED_KID_B64URL: &str = "M5xFtfttS9mZTOq9nUHJWw";

const SECRET: &[u8] = b"jit-origin-test-secret-0123456789abcdef";
const SECRET_B64: &str = "aml0LW9yaWdpbi10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "jit-origin-test";
const SIGNING_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const SIGNING_KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Licence servers on a fixed host, never the test's port, so manifests are the same bytes.
const DRM_TOML: &str = r#"[locator.drm]
widevine_license_url = "https://licence.example/{locator}/widevine?kid={kid}"
widevine_content_id = "{locator}"
playready_license_url = "https://licence.example/{locator}/playready?kid={kid_uuid}"
fairplay_key_uri = "skd://{kid}"
clearkey_license_url = "https://licence.example/{locator}/clearkey"
clearkey_key_url = "https://licence.example/{locator}/key/{kid}"
"#;

fn token_access_toml() -> String {
    format!(
        "[locator.key_access]\nmode = \"token\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
         hs256_secret_base64 = \"{SECRET_B64}\"\n"
    )
}

fn golden_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/responses.tsv")
}

/// A locator of the test config and what to request from it.
struct Locator {
    id: String,
    asset: &'static str,
    /// The `encryption=` values its policy allows.
    encryptions: &'static [&'static str],
    /// Extra query of every manifest request (a token or a signature).
    query: String,
    /// KID for the key endpoint and the ClearKey licence, as hex and as base64url.
    kid: Option<(&'static str, &'static str)>,
    /// The key endpoint and licences need a token.
    token_access: bool,
    toml: String,
}

fn locator_toml(id: &str, asset: &str, policy: &str, rest: &str) -> String {
    format!("[[locator]]\nid = \"{id}\"\nstorage = \"fixtures\"\nasset = \"{asset}\"\npolicy = \"{policy}\"\n{rest}\n")
}

fn keys_toml(kid: &str, key: &str) -> String {
    format!("keys = [{{ kid = \"{kid}\", key = \"{key}\" }}]\n")
}

fn token() -> String {
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": FAR_FUTURE, "iat": FIXED_MTIME_SECS, "sub": "golden"
    });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).expect("jwt")
}

/// `sig=` for `locator` as the README's "Signed URLs" defines it.
fn signature(locator: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_KEY).expect("hmac key");
    mac.update(format!("{FAR_FUTURE}:/{locator}/").as_bytes());
    let tag: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{FAR_FUTURE}.{tag}")
}

/// A clear, an envelope and a multi-DRM locator of `asset`, their ids starting `prefix`.
fn asset_locators(prefix: &str, asset: &'static str) -> [Locator; 3] {
    [
        Locator {
            id: format!("{prefix}clear-{asset}"),
            asset,
            encryptions: &[],
            query: String::new(),
            kid: None,
            token_access: false,
            toml: locator_toml(&format!("{prefix}clear-{asset}"), asset, "clear", ""),
        },
        Locator {
            id: format!("{prefix}env-{asset}"),
            asset,
            encryptions: &["cbc"],
            query: String::new(),
            kid: Some((ENV_KID, ENV_KID_B64URL)),
            token_access: false,
            toml: locator_toml(&format!("{prefix}env-{asset}"), asset, "envelope", &keys_toml(ENV_KID, ENV_KEY)),
        },
        Locator {
            id: format!("{prefix}drm-{asset}"),
            asset,
            encryptions: &["cenc", "cbcs-aapl"],
            query: String::new(),
            kid: Some((DRM_KID, DRM_KID_B64URL)),
            token_access: false,
            toml: locator_toml(
                &format!("{prefix}drm-{asset}"),
                asset,
                "multi-drm",
                &format!("{}{DRM_TOML}", keys_toml(DRM_KID, DRM_KEY)),
            ),
        },
    ]
}

/// Every asset's locators and, on the ladder, the token, cbcs, key-seed, signed and filtered
/// ones.
fn locators() -> Vec<Locator> {
    let mut all: Vec<Locator> = ASSETS.into_iter().flat_map(|asset| asset_locators("", asset)).collect();
    let token_query = format!("?token={}", token());
    all.push(Locator {
        id: "cenc-token".into(),
        asset: "ladder",
        encryptions: &["cenc"],
        query: token_query.clone(),
        kid: Some((TOKEN_KID, TOKEN_KID_B64URL)),
        token_access: true,
        toml: locator_toml(
            "cenc-token",
            "ladder",
            "cenc",
            &format!(
                "{}{}[locator.drm]\nclearkey_license_url = \"https://licence.example/{{locator}}/clearkey\"\n",
                keys_toml(TOKEN_KID, TOKEN_KEY),
                token_access_toml()
            ),
        ),
    });
    all.push(Locator {
        id: "env-token".into(),
        asset: "ladder",
        encryptions: &["cbc"],
        query: token_query,
        kid: Some((TOKEN_KID, TOKEN_KID_B64URL)),
        token_access: true,
        toml: locator_toml(
            "env-token",
            "ladder",
            "envelope",
            &format!("{}{}", keys_toml(TOKEN_KID, TOKEN_KEY), token_access_toml()),
        ),
    });
    // cbcs without a raw key URL: its playlists carry the org.w3.clearkey line.
    all.push(Locator {
        id: "cbcs-ladder".into(),
        asset: "ladder",
        encryptions: &["cbcs-aapl"],
        query: String::new(),
        kid: Some((CBCS_KID, CBCS_KID_B64URL)),
        token_access: false,
        toml: locator_toml(
            "cbcs-ladder",
            "ladder",
            "cbcs",
            &format!(
                "{}[locator.drm]\nfairplay_key_uri = \"skd://{{kid}}\"\nclearkey_license_url = \"https://licence.example/{{locator}}/clearkey\"\n",
                keys_toml(CBCS_KID, CBCS_KEY)
            ),
        ),
    });
    all.push(Locator {
        id: "seed-ladder".into(),
        asset: "ladder",
        encryptions: &["cenc"],
        query: String::new(),
        kid: Some((SEED_KID, SEED_KID_B64URL)),
        token_access: false,
        toml: locator_toml(
            "seed-ladder",
            "ladder",
            "cenc",
            &format!("key_seed_base64 = \"{SEED_B64}\"\nkeys = [{{ kid = \"{SEED_KID}\" }}]\n"),
        ),
    });
    all.push(Locator {
        id: "signed-ladder".into(),
        asset: "ladder",
        encryptions: &[],
        query: format!("?sig={}", signature("signed-ladder")),
        kid: None,
        token_access: false,
        toml: locator_toml(
            "signed-ladder",
            "ladder",
            "clear",
            &format!("url_signing_key_base64 = \"{SIGNING_KEY_B64}\"\n"),
        ),
    });
    all.push(Locator {
        id: "filtered-ladder".into(),
        asset: "ladder",
        encryptions: &[],
        query: String::new(),
        kid: None,
        token_access: false,
        toml: locator_toml("filtered-ladder", "ladder", "clear", "filters = [\"first4s\", \"english\"]\n"),
    });
    all
}

fn config(port: u16, fixtures: &Path, segment_duration: Option<f64>, locators: &[Locator]) -> String {
    let segment_duration = segment_duration.map(|d| format!("segment_duration = {d:?}\n")).unwrap_or_default();
    let mut toml = format!(
        "listen = \"127.0.0.1:{port}\"\n{segment_duration}\
         [player]\nenabled = true\nscript_url = \"https://cdn.example/shaka-player.js\"\n\
         [[storage]]\nname = \"fixtures\"\nurl = \"file://{}\"\n\
         [[filter]]\nname = \"first4s\"\nend_secs = 4.0\n\
         [[filter]]\nname = \"sd\"\nmax_video_bitrate = 300000\n\
         [[filter]]\nname = \"english\"\nlanguages = [\"eng\"]\n",
        fixtures.display()
    );
    for l in locators {
        toml.push_str(&l.toml);
    }
    toml
}

/// Copies the fixture assets to `dir` with one fixed modification time on every file.
fn copy_fixtures(dir: &Path) {
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(FIXED_MTIME_SECS);
    std::fs::create_dir(dir).expect("media folder");
    for asset in ASSETS {
        let to = dir.join(asset);
        std::fs::create_dir(&to).expect("asset folder");
        for entry in std::fs::read_dir(common::fixtures_dir().join(asset)).expect("fixture folder") {
            let from = entry.expect("fixture file").path();
            let file = to.join(from.file_name().expect("file name"));
            std::fs::copy(&from, &file).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
            let f = std::fs::File::options().write(true).open(&file).expect("open copy");
            f.set_modified(mtime).expect("set mtime");
        }
    }
}

/// The origin binary as a child process, killed on drop.
struct Server {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl Server {
    fn start(dir: &Path, segment_duration: Option<f64>, locators: &[Locator]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let config_path = dir.join(format!("origin-{port}.toml"));
        std::fs::write(&config_path, config(port, &dir.join("media"), segment_duration, locators))
            .expect("write config");
        let stderr = dir.join(format!("stderr-{port}.log"));
        let child = Command::new(common::bin())
            .args(["serve", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start jit-origin");
        Server { child, base: format!("http://127.0.0.1:{port}"), stderr }
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            let exited = self.child.try_wait().expect("child status");
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the origin did not answer ({exited:?}):\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request; its label (method, path and query, extra headers) names it in the recording.
#[derive(Clone)]
struct Request {
    method: Method,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

impl Request {
    fn get(target: impl Into<String>) -> Request {
        Request { method: Method::GET, target: target.into(), headers: Vec::new(), body: None }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    fn label(&self) -> String {
        let mut label = format!("{} {}", self.method, self.target);
        for (name, value) in &self.headers {
            write!(label, " [{name}: {value}]").unwrap();
        }
        if let Some(body) = &self.body {
            write!(label, " [body: {body}]").unwrap();
        }
        label
    }
}

struct Response {
    fields: String,
    content_type: String,
    etag: String,
    body: bytes::Bytes,
    ok: bool,
}

async fn send(client: &reqwest::Client, base: &str, request: &Request) -> Response {
    let mut builder = client.request(request.method.clone(), format!("{base}{}", request.target));
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.header("content-type", "application/json").body(body.clone());
    }
    let response = builder.send().await.unwrap_or_else(|e| panic!("{}: {e}", request.label()));
    let header = |name: &str| {
        response.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or("-".into())
    };
    let status = response.status().as_u16();
    let (content_type, etag, cache_control, length) =
        (header("content-type"), header("etag"), header("cache-control"), header("content-length"));
    let body = response.bytes().await.unwrap_or_else(|e| panic!("{}: body: {e}", request.label()));
    let digest: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    Response {
        fields: format!("{status}\t{content_type}\t{etag}\t{cache_control}\t{length}\t{digest}"),
        content_type,
        etag,
        body,
        ok: status == 200,
    }
}

/// `reference` resolved against `target` (a path and query on the origin); None for another
/// host or scheme (`skd://`, `data:`, licence servers).
fn resolve(target: &str, reference: &str) -> Option<String> {
    let base = url::Url::parse(&format!("http://origin.invalid{target}")).expect("target URL");
    let url = base.join(reference).ok()?;
    if url.scheme() != "http" || url.host_str() != Some("origin.invalid") {
        return None;
    }
    Some(url[url::Position::BeforePath..].to_string())
}

/// Every URI an HLS playlist lists: plain lines and `URI="…"` attributes.
fn hls_references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.starts_with('#') {
            out.push(line.to_string());
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("URI=\"") {
            rest = &rest[at + 5..];
            let end = rest.find('"').expect("closing quote of URI");
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// Every init and media segment of an MPD: each Representation's `SegmentTemplate` expanded
/// over its `SegmentTimeline` (our MPDs have no BaseURL and one template per Representation).
fn dash_references(mpd: &str) -> Vec<String> {
    let attr = |tag: &str, name: &str| common::attr(tag, name).map(|v| v.replace("&amp;", "&"));
    let mut out = Vec::new();
    for representation in mpd.split("<Representation ").skip(1) {
        let representation = format!(" {}", representation.split("</Representation>").next().unwrap());
        let head = &representation[..representation.find('>').unwrap()];
        let id = attr(head, "id").expect("Representation@id");
        let bandwidth = attr(head, "bandwidth").expect("Representation@bandwidth");
        let fill = |template: &str| template.replace("$RepresentationID$", &id).replace("$Bandwidth$", &bandwidth);
        let at = representation.find("<SegmentTemplate").expect("SegmentTemplate");
        let template = &representation[at..at + representation[at..].find('>').unwrap()];
        if let Some(init) = attr(template, "initialization") {
            out.push(fill(&init));
        }
        let media = fill(&attr(template, "media").expect("SegmentTemplate@media"));
        let mut time = 0u64;
        for s in representation.split("<S ").skip(1) {
            let s = format!(" {}", &s[..s.find('>').unwrap()]);
            let number = |name: &str| attr(&s, name).map(|v| v.parse::<i64>().expect("S attribute"));
            if let Some(t) = number("t") {
                time = t as u64;
            }
            let d = number("d").expect("S@d") as u64;
            for _ in 0..=number("r").unwrap_or(0) {
                out.push(media.replace("$Time$", &time.to_string()));
                time += d;
            }
        }
    }
    assert!(out.iter().all(|u| !u.contains('$')), "an MPD template identifier this test does not expand: {out:?}");
    out
}

/// Every fragment a Smooth Streaming manifest lists: each StreamIndex's `Url` with each
/// QualityLevel's `Bitrate` and each chunk's time (`r` counts the chunk itself, MS-SSTR
/// §2.2.2.6).
fn smooth_references(manifest: &str) -> Vec<String> {
    let attr = |tag: &str, name: &str| common::attr(tag, name).map(|v| v.replace("&amp;", "&"));
    let mut out = Vec::new();
    for index in manifest.split("<StreamIndex ").skip(1) {
        let index = format!(" {}", index.split("</StreamIndex>").next().unwrap());
        let url = attr(&index[..index.find('>').unwrap()], "Url").expect("StreamIndex@Url");
        let bitrates: Vec<String> = index
            .split("<QualityLevel ")
            .skip(1)
            .map(|l| attr(&format!(" {}", &l[..l.find('>').unwrap()]), "Bitrate").expect("QualityLevel@Bitrate"))
            .collect();
        let mut time = 0u64;
        for c in index.split("<c ").skip(1) {
            let c = format!(" {}", &c[..c.find('>').unwrap()]);
            let number = |name: &str| attr(&c, name).map(|v| v.parse::<u64>().expect("c attribute"));
            if let Some(t) = number("t") {
                time = t;
            }
            let d = number("d").expect("c@d");
            for _ in 0..number("r").unwrap_or(1) {
                for bitrate in &bitrates {
                    out.push(url.replace("{bitrate}", bitrate).replace("{start time}", &time.to_string()));
                }
                time += d;
            }
        }
    }
    out
}

/// The origin URLs a 200 response lists.
fn links(target: &str, response: &Response) -> Vec<String> {
    if !response.ok {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&response.body);
    let references = match response.content_type.as_str() {
        "application/vnd.apple.mpegurl" => hls_references(&text),
        "application/dash+xml" => dash_references(&text),
        "application/vnd.ms-sstr+xml" => smooth_references(&text),
        _ => return Vec::new(),
    };
    references.iter().filter_map(|r| resolve(target, r)).collect()
}

/// The manifest requests: every format with every encryption the policy allows and none,
/// alternately with and without the extension.
fn seeds(locators: &[Locator]) -> Vec<Request> {
    let mut out = Vec::new();
    for (li, l) in locators.iter().enumerate() {
        let manifest = format!("/{}/{}.ism/manifest", l.id, l.asset);
        for (fi, format) in FORMATS.iter().enumerate() {
            let suffix = match ((li + fi) % 2, format.starts_with("mpd")) {
                (0, _) => "",
                (_, true) => ".mpd",
                (_, false) => ".m3u8",
            };
            for encryption in std::iter::once(None).chain(l.encryptions.iter().map(Some)) {
                let options = match encryption {
                    Some(e) => format!("format={format},encryption={e}"),
                    None => format!("format={format}"),
                };
                out.push(Request::get(format!("{manifest}({options}){suffix}{}", l.query)));
            }
        }
        // Smooth Streaming, 2.2 and 2.0 (its formats carry no extension).
        for version in ["", "format=fmp4-v20"] {
            for encryption in std::iter::once(None).chain(l.encryptions.iter().map(Some)) {
                let options: Vec<String> =
                    [version.to_owned(), encryption.map(|e| format!("encryption={e}")).unwrap_or_default()]
                        .into_iter()
                        .filter(|o| !o.is_empty())
                        .collect();
                let options = if options.is_empty() { String::new() } else { format!("({})", options.join(",")) };
                out.push(Request::get(format!("{manifest}{options}{}", l.query)));
            }
        }
        // Without its token or signature.
        if !l.query.is_empty() {
            let encryption = l.encryptions.first().map(|e| format!(",encryption={e}")).unwrap_or_default();
            out.push(Request::get(format!("{manifest}(format=m3u8-cmaf{encryption})")));
        }
    }
    out
}

/// Manifest options and filters, keys, licences, the routes besides media and errors.
fn other_requests(locators: &[Locator]) -> Vec<Request> {
    let bearer = format!("Bearer {}", token());
    let mut out = Vec::new();
    for l in locators {
        let Some((kid, kid_b64url)) = l.kid else { continue };
        let key = format!("/{}/key/{kid}", l.id);
        let licence = |body: String| Request {
            method: Method::POST,
            target: format!("/{}/clearkey", l.id),
            headers: Vec::new(),
            body: Some(body),
        };
        let request = format!(r#"{{"kids":["{kid_b64url}"],"type":"temporary"}}"#);
        out.push(Request::get(&key));
        out.push(licence(request.clone()));
        if l.token_access {
            out.push(Request::get(format!("{key}?token={}", token())));
            out.push(Request::get(&key).with("authorization", bearer.clone()));
            out.push(licence(request).with("authorization", bearer.clone()));
            out.push(Request::get(&key).with("authorization", "Bearer not-a-token"));
        }
    }
    for asset in ["ladder", "muxed"] {
        for format in ["m3u8-cmaf", "m3u8-aapl", "m3u8-aapl-v3"] {
            out.push(Request::get(format!("/clear-{asset}/{asset}.ism/manifest(format={format},audio-only=false)")));
        }
    }
    let ladder = "/clear-ladder/ladder.ism";
    for options in [
        "format=m3u8-cmaf,filter=sd",
        "format=m3u8-aapl,filter=first4s",
        "format=m3u8-aapl-v3,filter=sd;english",
        "format=mpd-time-cmaf,filter=english;first4s",
        "filter=sd,format=mpd-time-csf",
        "format=m3u8-cmaf,filter=nope",
    ] {
        out.push(Request::get(format!("{ladder}/manifest({options})")));
    }
    out.push(Request::get("/env-ladder/key/00000000000000000000000000000000"));
    out.push(Request::get("/env-ladder/key/not-hex"));
    let licence = |body: &str| Request {
        method: Method::POST,
        target: "/drm-ladder/clearkey".into(),
        headers: Vec::new(),
        body: Some(body.into()),
    };
    out.push(licence(r#"{"kids":["AAAAAAAAAAAAAAAAAAAAAA"],"type":"temporary"}"#));
    out.push(licence("not json"));
    let ladder = "/clear-ladder/ladder.ism";
    for target in [
        "/",
        "/healthz",
        "/readyz",
        "/player?url=%2Fclear-ladder%2Fladder.ism%2Fmanifest(format%3Dmpd-time-cmaf)",
        "/nope/ladder.ism/manifest(format=m3u8-cmaf)",
        "/clear-ladder/other.ism/manifest(format=m3u8-cmaf)",
        "/clear-ladder/ladder.ism/manifest(format=bogus)",
        "/clear-ladder/ladder.ism/manifest(format=m3u8-cmaf",
        "/clear-ladder/ladder.ism/manifest(format=m3u8-cmaf,encryption=cenc)",
        "/clear-ladder/ladder.ism/QualityLevels(150000)/Manifest(nope,format=m3u8-cmaf)",
        "/clear-ladder/ladder.ism/QualityLevels(999)/Manifest(video,format=m3u8-cmaf)",
        "/clear-ladder/ladder.ism/QualityLevels(150000)/Fragments(video=12345,format=m3u8-cmaf)",
        "/clear-ladder/ladder.ism/QualityLevels(150000)/Fragments(video=abc,format=m3u8-cmaf)",
        "/clear-ladder/ladder.ism/QualityLevels(150000)/Fragments(video=i,format=m3u8-aapl)",
        "/clear-ladder/ladder.ism/QualityLevels(150000)/Fragments(vid%2ceo=i,format=m3u8-cmaf)",
        "/signed-ladder/ladder.ism/QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf)?sig=4102444800.00",
    ] {
        out.push(Request::get(target));
    }
    let segment = format!("{ladder}/QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf)");
    out.push(Request::get(&segment).with("range", "bytes=0-99"));
    out.push(Request::get(&segment).with("range", "bytes=100000000-"));
    out.push(Request { method: Method::HEAD, ..Request::get(format!("{ladder}/manifest(format=m3u8-cmaf)")) });
    out.push(Request { method: Method::OPTIONS, ..Request::get(format!("{ladder}/manifest(format=m3u8-cmaf)")) });
    out.push(Request { method: Method::DELETE, ..Request::get(format!("{ladder}/manifest(format=m3u8-cmaf)")) });
    out
}

/// Requests `seeds` and every origin URL their answers list, each once: the recorded lines
/// by label, and the ETags of the 200s.
async fn crawl(
    client: &reqwest::Client,
    base: &str,
    seeds: Vec<Request>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut seen = HashSet::new();
    let mut frontier: Vec<Request> = seeds.into_iter().filter(|r| seen.insert(r.label())).collect();
    let (mut lines, mut etags) = (BTreeMap::new(), BTreeMap::new());
    while !frontier.is_empty() {
        let answers: Vec<(Request, Response)> = futures::stream::iter(frontier)
            .map(|r| async move {
                let response = send(client, base, &r).await;
                (r, response)
            })
            .buffer_unordered(6)
            .collect()
            .await;
        frontier = Vec::new();
        for (request, response) in answers {
            for link in links(&request.target, &response) {
                let next = Request::get(link);
                if seen.insert(next.label()) {
                    frontier.push(next);
                }
            }
            if response.ok && request.method == Method::GET && request.headers.is_empty() {
                etags.insert(request.target.clone(), response.etag.clone());
            }
            lines.insert(request.label(), response.fields);
        }
    }
    (lines, etags)
}

async fn record_all(client: &reqwest::Client, base: &str, locators: &[Locator]) -> BTreeMap<String, String> {
    let mut requests = seeds(locators);
    requests.extend(other_requests(locators));
    let (mut lines, etags) = crawl(client, base, requests).await;
    // Conditional requests with the ETags just served: a manifest, an init and a media segment.
    let ladder = "/clear-ladder/ladder.ism";
    let mut conditional = Vec::new();
    for target in [
        format!("{ladder}/manifest(format=m3u8-cmaf)"),
        format!("{ladder}/QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf)"),
        format!("{ladder}/QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf)"),
    ] {
        let etag = etags.get(&target).unwrap_or_else(|| panic!("no 200 for {target}"));
        conditional.push(Request::get(&target).with("if-none-match", etag.clone()));
        conditional.push(Request::get(&target).with("range", "bytes=10-19").with("if-range", etag.clone()));
    }
    let (more, _) = crawl(client, base, conditional).await;
    lines.extend(more);
    lines
}

const HEADER: &str = "# request\tstatus\tcontent-type\tetag\tcache-control\tcontent-length\tsha256(body)";

fn parse(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut fields = l.split('\t').map(str::to_string);
            (fields.next().unwrap(), fields.collect())
        })
        .collect()
}

/// The differences between the recording and this run, one line each.
fn differences(old: &BTreeMap<String, Vec<String>>, new: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let names: Vec<&str> = HEADER.split('\t').skip(1).collect();
    let mut out = Vec::new();
    for (request, old_fields) in old {
        match new.get(request) {
            None => out.push(format!("{request}: not requested any more")),
            Some(new_fields) => {
                for (i, (a, b)) in old_fields.iter().zip(new_fields).enumerate() {
                    if a != b {
                        out.push(format!("{request}: {} was {a}, now {b}", names[i]));
                    }
                }
            }
        }
    }
    for (request, fields) in new {
        if !old.contains_key(request) {
            out.push(format!("{request}: new request, {}", fields.join(" ")));
        }
    }
    out
}

#[test]
fn every_response_is_byte_identical_to_the_recording() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    copy_fixtures(&dir.path().join("media"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client =
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("HTTP client");
    let locators = locators();
    let mut server = Server::start(dir.path(), None, &locators);
    let mut lines = runtime.block_on(async {
        server.wait_ready(&client).await;
        record_all(&client, &server.base, &locators).await
    });
    drop(server);
    // Segments cut to a target duration rather than the source's GOPs and fragments.
    let locators: Vec<Locator> =
        ["ladder", "ladder-frag", "muxed", "edit"].into_iter().flat_map(|a| asset_locators("seg3-", a)).collect();
    let mut server = Server::start(dir.path(), Some(3.0), &locators);
    lines.extend(runtime.block_on(async {
        server.wait_ready(&client).await;
        crawl(&client, &server.base, seeds(&locators)).await.0
    }));
    drop(server);
    let mut text = format!("{HEADER}\n");
    for (request, fields) in &lines {
        assert!(!request.contains('\t'), "{request}");
        writeln!(text, "{request}\t{fields}").unwrap();
    }
    eprintln!("{} requests in {:.1} s", lines.len(), started.elapsed().as_secs_f64());

    if std::env::var_os("GOLDEN_RECORD").is_some() {
        std::fs::create_dir_all(golden_file().parent().unwrap()).unwrap();
        std::fs::write(golden_file(), &text).expect("write the recording");
        return;
    }
    let recorded = std::fs::read_to_string(golden_file())
        .unwrap_or_else(|e| panic!("{}: {e} (record with GOLDEN_RECORD=1)", golden_file().display()));
    let diff = differences(&parse(&recorded), &parse(&text));
    assert!(
        diff.is_empty(),
        "{} differences from {} (first 20):\n{}",
        diff.len(),
        golden_file().display(),
        diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
