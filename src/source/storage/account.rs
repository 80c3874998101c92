//! A storage account's settings as the configuration file gives them, and their checks.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// One storage account: local files, memory, or an S3 / Azure Blob / GCS bucket whose URL
/// prefix is the account's root. Credentials left out come from the environment the way
/// each cloud's SDKs read them (`AWS_*`, `AZURE_STORAGE_*`, `GOOGLE_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub name: String,
    /// `file://…` (relative to the config file's folder when relative), `memory://`,
    /// `s3://bucket/prefix`, `az://container/prefix` or `gs://bucket/prefix`.
    pub url: String,
    /// Service endpoint instead of the cloud's own: an S3-compatible store, Azurite
    /// (`http://host:port/account`), a GCS emulator. `http://` endpoints are allowed.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region.
    #[serde(default)]
    pub region: Option<String>,
    /// S3 credentials; `security_token` is the token of temporary credentials.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// Azure storage account name and its shared key or a SAS token.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub access_key: Option<Secret>,
    #[serde(default)]
    pub sas_token: Option<Secret>,
    /// GCS service account: a key file, or the key's JSON itself.
    #[serde(default)]
    pub service_account_path: Option<String>,
    #[serde(default)]
    pub service_account_key: Option<Secret>,
    /// A static OAuth bearer token (GCS, Azure), e.g. for an emulator.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Seconds to establish a connection to the service (default 2).
    #[serde(default)]
    pub connect_timeout_secs: Option<f64>,
    /// Seconds for one whole request, headers and body (default 10). Retries stop once this
    /// much time has passed since the first attempt, so a read fails after about this long.
    #[serde(default)]
    pub request_timeout_secs: Option<f64>,
    /// Retries of a failed request: connection errors, 5xx answers, timed-out reads (default 2).
    #[serde(default)]
    pub retries: Option<usize>,
    /// First retry delay in seconds, doubling per retry, with jitter (default 0.1).
    #[serde(default)]
    pub retry_backoff_secs: Option<f64>,
}

/// The kinds of storage account, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    File,
    Memory,
    S3,
    Azure,
    Gcs,
}

impl StorageKind {
    /// The kind a storage URL names; a URL without a scheme is a local path.
    pub fn of_url(url: &str) -> Option<StorageKind> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            None | Some("file") => Some(StorageKind::File),
            Some("memory") => Some(StorageKind::Memory),
            Some("s3") => Some(StorageKind::S3),
            Some("az") => Some(StorageKind::Azure),
            Some("gs") => Some(StorageKind::Gcs),
            Some(_) => None,
        }
    }
    pub fn is_cloud(self) -> bool {
        matches!(self, StorageKind::S3 | StorageKind::Azure | StorageKind::Gcs)
    }
}

impl StorageConfig {
    /// An origin must fail fast: object_store's own defaults (10 retries within 3 minutes)
    /// would hold a player's request for minutes while a backend is down.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_secs.unwrap_or(2.0))
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs.unwrap_or(10.0))
    }
    pub fn retries(&self) -> usize {
        self.retries.unwrap_or(2)
    }
    pub fn retry_backoff(&self) -> Duration {
        Duration::from_secs_f64(self.retry_backoff_secs.unwrap_or(0.1))
    }

    /// A cloud URL's bucket (or container) and the prefix below it: `s3://bucket/a/b` gives
    /// `("bucket", "a/b")`.
    pub fn bucket_and_prefix(&self) -> (&str, &str) {
        let rest = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        rest.split_once('/').unwrap_or((rest, ""))
    }

    /// A problem with the account's settings (named by key), if any.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        use StorageKind::*;
        let Some(kind) = StorageKind::of_url(&self.url) else {
            return Some(("url", format!("'{}': use file://, memory://, s3://, az:// or gs://", self.url)));
        };
        if kind.is_cloud() {
            let (bucket, _) = self.bucket_and_prefix();
            if bucket.is_empty() || bucket.contains(['@', '?', '#', ':']) {
                return Some(("url", format!("'{}' needs a bucket or container: scheme://bucket/prefix", self.url)));
            }
            if self.url.contains(['?', '#']) {
                return Some(("url", format!("'{}': no query or fragment; use the account's keys", self.url)));
            }
        }
        // Which settings each kind of account takes.
        let settings: [(&'static str, bool, &[StorageKind]); 15] = [
            ("endpoint", self.endpoint.is_some(), &[S3, Azure, Gcs]),
            ("region", self.region.is_some(), &[S3]),
            ("access_key_id", self.access_key_id.is_some(), &[S3]),
            ("secret_access_key", self.secret_access_key.is_some(), &[S3]),
            ("security_token", self.security_token.is_some(), &[S3]),
            ("account", self.account.is_some(), &[Azure]),
            ("access_key", self.access_key.is_some(), &[Azure]),
            ("sas_token", self.sas_token.is_some(), &[Azure]),
            ("service_account_path", self.service_account_path.is_some(), &[Gcs]),
            ("service_account_key", self.service_account_key.is_some(), &[Gcs]),
            ("bearer_token", self.bearer_token.is_some(), &[Azure, Gcs]),
            ("connect_timeout_secs", self.connect_timeout_secs.is_some(), &[S3, Azure, Gcs]),
            ("request_timeout_secs", self.request_timeout_secs.is_some(), &[S3, Azure, Gcs]),
            ("retries", self.retries.is_some(), &[S3, Azure, Gcs]),
            ("retry_backoff_secs", self.retry_backoff_secs.is_some(), &[S3, Azure, Gcs]),
        ];
        if let Some((key, _, _)) = settings.iter().find(|(_, is_set, kinds)| *is_set && !kinds.contains(&kind)) {
            return Some((key, format!("storage '{}' ({}) does not take {key}", self.name, self.url)));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Some(("endpoint", format!("endpoint = '{endpoint}': must be an http:// or https:// URL")));
            }
        }
        for (key, secs) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("retry_backoff_secs", self.retry_backoff_secs),
        ] {
            if let Some(secs) = secs.filter(|s| !(s.is_finite() && *s > 0.0 && *s <= 600.0)) {
                return Some((key, format!("{key} = {secs}: must be more than 0 and at most 600 seconds")));
            }
        }
        if let Some(retries) = self.retries.filter(|r| *r > 10) {
            return Some(("retries", format!("retries = {retries}: at most 10")));
        }
        None
    }
}
