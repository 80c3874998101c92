//! The origin's TOML configuration. Refused at start, with the key and line named, when it
//! does not parse or does not make sense (unknown storage, duplicate locator, bad address).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

pub mod player;
pub mod thumbnails;

use crate::plan::filter::{Filter, FilterDefinition, PresentationTimeRange, TrackCondition, TrackSelection};
use crate::plan::filter::{TrackOperation, TrackProperty, DEFAULT_TIMESCALE};
pub use crate::plan::locator::Policy;
use crate::plan::locator::{LocatorAccess, StreamingPolicy};
use crate::secret::Secret;
use crate::source::storage::StorageConfig;
use crate::store::StoreConfig;
pub use player::PlayerConfig;
pub use thumbnails::ThumbnailsConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. "127.0.0.1:8080" or "0.0.0.0:80".
    pub listen: SocketAddr,
    /// Target segment duration in seconds; absent = follow the source GOPs / fragments.
    #[serde(default)]
    pub segment_duration: Option<f64>,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// An HTTPS listener besides the plain one (`[tls]`).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Requests on media routes must carry a shared secret header (`[origin_protection]`).
    #[serde(default)]
    pub origin_protection: Option<OriginProtectionConfig>,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// The operators' test page, `GET /player?url=…` (off by default).
    #[serde(default)]
    pub player: PlayerConfig,
    /// Scrub-bar thumbnail tiles (`[thumbnails]`, on by default).
    #[serde(default)]
    pub thumbnails: ThumbnailsConfig,
    /// The management API (Azure Media Services v3 REST) on its own listener (`[api]`; off
    /// when absent).
    #[serde(default)]
    pub api: Option<ApiConfig>,
    #[serde(default)]
    pub storage: Vec<StorageConfig>,
    #[serde(default)]
    pub locator: Vec<LocatorConfig>,
    /// Named (account) filters, usable in `manifest(…,filter=a;b)` and as locator defaults.
    #[serde(default)]
    pub filter: Vec<FilterConfig>,
    /// Published state (locators, filters, policies) in object storage, shared by replicas
    /// (`[store]`).
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// The live ingest listeners (`[ingest]`; off when absent).
    #[serde(default)]
    pub ingest: Option<IngestConfig>,
    /// Live events the config file defines (`[[live_event]]`).
    #[serde(default)]
    pub live_event: Vec<LiveEventConfig>,
    /// The folder the config file is in: relative storage paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Cache capacities and lifetimes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// The capacity of each of two caches, MiB of estimated sample-table size (~25 bytes a
    /// sample): loaded assets (tracks, timelines), and the file indexes kept across asset
    /// reloads so that unchanged files are not read again. An asset shares its files' indexes,
    /// so the two together hold at most twice this.
    pub index_mib: u64,
    /// Built manifests, MiB.
    pub manifest_mib: u64,
    /// Media segments, MiB: the cached ones and those being built (`limits.build_memory_mib`
    /// of it is for builds).
    pub segment_mib: u64,
    /// How long a loaded asset is trusted before its storage is looked at again, seconds:
    /// the longest a replaced source file can go unnoticed.
    pub asset_ttl_secs: u64,
    /// How long past `asset_ttl_secs` an asset is still served from its last good load while
    /// its storage fails (5xx, unreachable, timing out), seconds; also the `stale-if-error`
    /// granted to CDNs in `Cache-Control`. 0 turns serving stale off.
    pub stale_if_error_secs: u64,
    /// How long an unknown asset name is answered 404 without asking storage again, seconds.
    pub not_found_ttl_secs: u64,
    /// How long a load or build that failed on corrupt media is answered 500 without trying
    /// again, and the least time between reloads of an asset whose storage is failing, seconds.
    pub failure_ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            index_mib: 256,
            manifest_mib: 64,
            segment_mib: 1024,
            asset_ttl_secs: 60,
            stale_if_error_secs: 86_400,
            not_found_ttl_secs: 10,
            failure_ttl_secs: 5,
        }
    }
}

/// HTTP behaviour toward players and CDNs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Cache-Control max-age of media segments and init segments, seconds.
    pub segment_max_age: u64,
    /// Cache-Control max-age of VOD manifests, seconds.
    pub manifest_max_age: u64,
    /// Cache-Control max-age of error responses (404 etc.), seconds.
    pub error_max_age: u64,
    /// Access-Control-Allow-Origin value.
    pub cors_allow_origin: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            segment_max_age: 365 * 24 * 3600,
            manifest_max_age: 24 * 3600,
            error_max_age: 10,
            cors_allow_origin: "*".to_string(),
        }
    }
}

/// Bounds on work in progress.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// MiB of source bytes that uncached segment builds may hold at once; further misses wait.
    /// It is taken from `cache.segment_mib`, so that one figure bounds the memory of media
    /// segments however many clients ask for different uncached ones.
    pub build_memory_mib: u64,
    /// Longest request target (path and query) accepted; longer → 414.
    pub max_url_bytes: usize,
    /// Largest request header section accepted (HTTP/1.1; at least 8192); larger → 431.
    pub max_header_bytes: usize,
    /// Time a new connection has to send its first request head; slower → 408 and close.
    pub header_read_timeout_secs: u64,
    /// A connection with no bytes moving either way for this long is closed (between
    /// requests on HTTP/1.1 this is also the time allowed for the next request head).
    pub idle_timeout_secs: u64,
    /// Open connections at most; beyond, new connections get 503 with Retry-After.
    pub max_connections: usize,
    /// HTTP/2 requests in progress on one connection at most: with the largest response, it
    /// bounds what one connection can hold in response bodies waiting on a slow reader.
    pub max_streams_per_connection: u32,
    /// Largest request body accepted (a Clear Key licence request is a few hundred bytes);
    /// larger → 413.
    pub max_body_bytes: usize,
    /// Time a request body has to arrive in full once its head is in; slower → 408 and close.
    pub body_read_timeout_secs: u64,
    /// Pending connections the kernel queues before they are accepted (`listen(2)` backlog;
    /// the kernel caps it at `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// Address of a second listener that answers `/healthz`, `/readyz` and `/metrics` only,
    /// outside `max_connections`, for the orchestrator's probes and the metrics scraper: a
    /// connection flood on `listen` then cannot fail the liveness probe.
    pub health_listen: Option<SocketAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            build_memory_mib: 16,
            max_url_bytes: 8192,
            max_header_bytes: 16384,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 10_000,
            max_streams_per_connection: 100,
            max_body_bytes: 16 * 1024,
            body_read_timeout_secs: 10,
            listen_backlog: 4096,
            health_listen: None,
        }
    }
}

/// HTTPS (rustls): ALPN `h2` and `http/1.1`; the certificate is re-read on SIGHUP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the HTTPS listener, e.g. "0.0.0.0:8443".
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first (relative to the config file's folder when relative).
    pub cert_pem: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
}

/// A shared secret that the CDN adds to every origin request (CloudFront "origin custom
/// header"), so the origin answers the CDN and nobody else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginProtectionConfig {
    /// Header name, e.g. "X-Origin-Verify".
    pub header: String,
    /// The secret value; or leave it out and name an environment variable in `secret_env`.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl OriginProtectionConfig {
    /// The secret's bytes, from the config or the environment.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, String> {
        let secret = match (&self.secret, &self.secret_env) {
            (Some(s), None) => s.expose().to_string(),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| format!("origin_protection: environment variable {var} is not set"))?
            }
            _ => return Err("origin_protection: give exactly one of secret and secret_env".into()),
        };
        if secret.len() < 16 {
            return Err("origin_protection: the secret must be at least 16 characters".into());
        }
        Ok(secret.into_bytes())
    }
}

/// The management API's listener and who may use it: bearer tokens from the environment
/// and/or JWTs. At least one of `tokens_env`, `read_tokens_env` and `jwt` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the API listener; never the media listener's (`listen`, `[tls] listen`).
    pub listen: SocketAddr,
    /// With `key_pem`: the API speaks HTTPS with this PEM certificate chain (relative to the
    /// config file's folder when relative), as Azure SDKs require for bearer tokens.
    #[serde(default)]
    pub cert_pem: Option<PathBuf>,
    #[serde(default)]
    pub key_pem: Option<PathBuf>,
    /// Environment variable holding the tokens that may read and change (comma separated).
    #[serde(default)]
    pub tokens_env: Option<String>,
    /// Environment variable holding tokens that may only read (GET, and the list actions
    /// that return no keys).
    #[serde(default)]
    pub read_tokens_env: Option<String>,
    /// JWTs signed by an identity provider (issuer, audience, HS256 and/or RS256 key) may
    /// read and change.
    #[serde(default)]
    pub jwt: Option<crate::protect::token::TokenPolicy>,
    /// The host name encoders reach the ingest listeners at, in the ingest URLs live events
    /// list (`input.endpoints`); absent = the listeners' own addresses.
    #[serde(default)]
    pub ingest_host: Option<String>,
}

impl ApiConfig {
    /// The API's TLS settings, when it has a certificate.
    pub fn tls(&self) -> Option<TlsConfig> {
        match (&self.cert_pem, &self.key_pem) {
            (Some(cert_pem), Some(key_pem)) => {
                Some(TlsConfig { listen: self.listen, cert_pem: cert_pem.clone(), key_pem: key_pem.clone() })
            }
            _ => None,
        }
    }

    /// The tokens in the environment variable `var` (comma separated, blanks ignored).
    pub fn tokens_from(var: &Option<String>) -> Result<Vec<Secret>, String> {
        let Some(var) = var else { return Ok(Vec::new()) };
        let value = std::env::var(var).map_err(|_| format!("[api]: environment variable {var} is not set"))?;
        let tokens: Vec<Secret> =
            value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(|t| Secret::new(t.to_string())).collect();
        if tokens.iter().any(|t| t.expose().len() < 16) {
            return Err(format!("[api]: a token in {var} is shorter than 16 characters"));
        }
        Ok(tokens)
    }

    fn check(&self, media_listeners: &[SocketAddr]) -> Result<(), String> {
        if media_listeners.iter().any(|a| same_address(a, &self.listen)) {
            return Err(format!("[api] listen = {}: the API never shares the media listener's address", self.listen));
        }
        if self.cert_pem.is_some() != self.key_pem.is_some() {
            return Err("[api]: give both cert_pem and key_pem, or neither".into());
        }
        if self.tokens_env.is_none() && self.read_tokens_env.is_none() && self.jwt.is_none() {
            return Err("[api]: give tokens_env, read_tokens_env or [api.jwt]: the API is never open".into());
        }
        Self::tokens_from(&self.tokens_env)?;
        Self::tokens_from(&self.read_tokens_env)?;
        if let Some(jwt) = &self.jwt {
            crate::protect::token::TokenVerifier::new(jwt).map_err(|e| format!("[api.jwt]: {e}"))?;
        }
        Ok(())
    }
}

/// `[ingest]`: where encoders push live events, and what one ingest connection may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// CMAF ingest over HTTP (DASH-IF Live Media Ingest, interface 1); absent = off.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// RTMP ingest; absent = off.
    #[serde(default)]
    pub rtmp_listen: Option<SocketAddr>,
    /// Open ingest connections (RTMP and HTTP together) at most.
    #[serde(default = "default_ingest_connections")]
    pub max_connections: usize,
    /// Largest fragment (box, RTMP message) accepted, MiB.
    #[serde(default = "default_max_fragment_mib")]
    pub max_fragment_mib: u64,
    /// An ingest connection sending nothing for this long is closed, seconds.
    #[serde(default = "default_ingest_idle_secs")]
    pub idle_timeout_secs: u64,
}

fn default_ingest_connections() -> usize {
    1024
}

fn default_max_fragment_mib() -> u64 {
    64
}

fn default_ingest_idle_secs() -> u64 {
    10
}

/// A `[[live_event]]`: a live event whose media go to `folder` of the `storage` account. A
/// `[[locator]]` with `asset = "{folder}"` publishes it, as for VOD.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveEventConfig {
    /// The event's name: `/ingest/{name}/…` on the CMAF ingest listener.
    pub name: String,
    /// What encoders present (`rtmp://host/live/{access_token}`); or leave it out and name an
    /// environment variable in `access_token_env`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    #[serde(default)]
    pub access_token_env: Option<String>,
    /// Name of a `[[storage]]` account.
    pub storage: String,
    /// The event's asset folder inside the account.
    pub folder: String,
    /// The asset's name in URLs (`{manifest_name}.ism`); absent = the folder's name.
    #[serde(default)]
    pub manifest_name: Option<String>,
    /// How far back live manifests reach (AMS `archiveWindowLength`), 60 to 90000 seconds.
    #[serde(default = "default_dvr_window_secs")]
    pub dvr_window_secs: u64,
}

fn default_dvr_window_secs() -> u64 {
    3600
}

impl LiveEventConfig {
    /// The access token, from the config or the environment, checked.
    pub fn access_token(&self) -> Result<Secret, String> {
        let token = match (&self.access_token, &self.access_token_env) {
            (Some(token), None) => token.clone(),
            (None, Some(var)) => Secret::new(
                std::env::var(var).map_err(|_| format!("access_token_env: environment variable {var} is not set"))?,
            ),
            _ => return Err("give exactly one of access_token and access_token_env".into()),
        };
        crate::plan::live_event::check_access_token(token.expose()).map_err(|e| format!("access_token: {e}"))?;
        Ok(token)
    }
}

/// Whether two listen addresses would take the same port (port 0 is any free port: two of
/// them never collide).
fn same_address(a: &SocketAddr, b: &SocketAddr) -> bool {
    let overlapping = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
    a.port() == b.port() && a.port() != 0 && overlapping
}

/// Start and stop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// On SIGTERM/SIGINT: how long in-flight requests may finish before the process exits.
    pub drain_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig { drain_secs: 30 }
    }
}

/// A content key in the config: 32 hex digits each (a GUID form is accepted for the KID).
/// Without `key`, the key is derived from the locator's `key_seed_base64` (PlayReady key seed).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub kid: String,
    #[serde(default)]
    pub key: Option<String>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyConfig {{ kid: {}, key: <redacted> }}", self.kid)
    }
}

/// DRM systems a Common Encryption locator signals (licence servers are external, except
/// ClearKey, which the origin serves itself). Templates may use `{kid}`, `{kid_uuid}`,
/// `{locator}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrmConfig {
    pub widevine_license_url: Option<String>,
    /// Sent to Widevine licence proxies in the PSSH `content_id`.
    pub widevine_content_id: Option<String>,
    pub playready_license_url: Option<String>,
    /// FairPlay `skd://` key URI template (cbcs only).
    pub fairplay_key_uri: Option<String>,
    /// The origin's ClearKey licence endpoint as players reach it, e.g.
    /// `https://origin.example/{locator}/clearkey`; absent = no ClearKey signalling.
    pub clearkey_license_url: Option<String>,
    /// The origin's raw key endpoint as players reach it (HLS `identity` key line for Shaka
    /// and cbcs), e.g. `https://origin.example/{locator}/key/{kid}`.
    pub clearkey_key_url: Option<String>,
}

impl DrmConfig {
    pub fn systems(&self) -> crate::protect::drm::DrmSystems {
        use crate::protect::drm::{ClearKeySystem, FairPlaySystem, PlayReadySystem, WidevineSystem};
        crate::protect::drm::DrmSystems {
            widevine: (self.widevine_license_url.is_some() || self.widevine_content_id.is_some()).then(|| {
                WidevineSystem {
                    license_url: self.widevine_license_url.clone(),
                    content_id: self.widevine_content_id.clone(),
                }
            }),
            playready: self.playready_license_url.as_ref().map(|u| PlayReadySystem { license_url: Some(u.clone()) }),
            fairplay: self.fairplay_key_uri.as_ref().map(|u| FairPlaySystem { key_uri: u.clone() }),
            clearkey: self
                .clearkey_license_url
                .as_ref()
                .map(|u| ClearKeySystem { license_url: u.clone(), key_url: self.clearkey_key_url.clone() }),
        }
    }
}

/// A `[[filter]]`: an account filter. Either in the AMS shape, `[filter.properties]` holding
/// the `properties` object of an AMS filter (camelCase keys, as the API takes them), or with
/// the shorthand keys below, which stand for an AMS definition ([`FilterConfig::filter`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub name: String,
    #[serde(default)]
    pub properties: Option<FilterDefinition>,
    /// Presentation window start, seconds from the asset's start (snapped to a segment).
    #[serde(default)]
    pub start_secs: Option<f64>,
    /// Presentation window end, seconds (snapped to a segment).
    #[serde(default)]
    pub end_secs: Option<f64>,
    /// Keep video tracks whose URL bitrate is at least this.
    #[serde(default)]
    pub min_video_bitrate: Option<u64>,
    /// Keep video tracks whose URL bitrate is at most this.
    #[serde(default)]
    pub max_video_bitrate: Option<u64>,
    /// Keep only audio and text tracks in these languages (empty = all).
    #[serde(default)]
    pub languages: Vec<String>,
}

impl FilterConfig {
    /// The filter, checked; the error names the key.
    pub fn filter(&self) -> Result<Filter, String> {
        let shorthand = self.start_secs.is_some()
            || self.end_secs.is_some()
            || self.min_video_bitrate.is_some()
            || self.max_video_bitrate.is_some()
            || !self.languages.is_empty();
        let definition = match &self.properties {
            Some(_) if shorthand => {
                return Err("give either [filter.properties] or the shorthand keys, not both".to_string());
            }
            Some(properties) => properties.clone(),
            None => self.shorthand_definition()?,
        };
        definition.check()?;
        Ok(Filter { name: self.name.clone(), definition })
    }

    /// The AMS definition the shorthand keys stand for.
    fn shorthand_definition(&self) -> Result<FilterDefinition, String> {
        let (start, end) = (self.start_secs.unwrap_or(0.0), self.end_secs.unwrap_or(f64::MAX));
        if !(start.is_finite() && start >= 0.0 && end > start) {
            return Err("need 0 <= start_secs < end_secs".to_string());
        }
        let ticks = |secs: f64| (secs * DEFAULT_TIMESCALE as f64).round() as u64;
        let presentation_time_range =
            (self.start_secs.is_some() || self.end_secs.is_some()).then(|| PresentationTimeRange {
                start_timestamp: self.start_secs.map(ticks),
                end_timestamp: self.end_secs.map(ticks),
                presentation_window_duration: None,
                live_backoff_duration: None,
                timescale: DEFAULT_TIMESCALE,
                force_end_timestamp: None,
            });
        let condition = |property, operation, value: String| TrackCondition { property, operation, value };
        let is_video = |operation| condition(TrackProperty::Type, operation, "Video".to_string());
        // Video tracks in the bitrate range, and the other tracks in the languages: one
        // selection for video, one per language for the rest.
        let mut video = vec![is_video(TrackOperation::Equal)];
        if let Some(min) = self.min_video_bitrate.filter(|&m| m > 0) {
            video.push(condition(TrackProperty::Bitrate, TrackOperation::NotEqual, format!("0-{}", min - 1)));
        }
        if let Some(max) = self.max_video_bitrate {
            video.push(condition(TrackProperty::Bitrate, TrackOperation::Equal, format!("0-{max}")));
        }
        let mut selections = vec![TrackSelection { track_selections: video }];
        let other = || vec![is_video(TrackOperation::NotEqual)];
        if self.languages.is_empty() {
            selections.push(TrackSelection { track_selections: other() });
        }
        for language in &self.languages {
            let mut conditions = other();
            conditions.push(condition(TrackProperty::Language, TrackOperation::Equal, language.clone()));
            selections.push(TrackSelection { track_selections: conditions });
        }
        let selects_tracks =
            self.min_video_bitrate.is_some() || self.max_video_bitrate.is_some() || !self.languages.is_empty();
        Ok(FilterDefinition {
            presentation_time_range,
            first_quality: None,
            tracks: if selects_tracks { selections } else { Vec::new() },
        })
    }
}

/// A streaming locator: a published URL id for an asset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocatorConfig {
    /// First path segment of every URL of this locator (usually a GUID).
    pub id: String,
    /// Name of a `[[storage]]` account.
    pub storage: String,
    /// Folder inside the storage account holding the `.ism` / MP4 files.
    pub asset: String,
    pub policy: Policy,
    /// The locator serves nothing before this time (RFC 3339, e.g. `2026-01-01T00:00:00Z`).
    #[serde(default, deserialize_with = "rfc3339_time")]
    pub start_time: Option<SystemTime>,
    /// The locator serves nothing from this time on (RFC 3339).
    #[serde(default, deserialize_with = "rfc3339_time")]
    pub end_time: Option<SystemTime>,
    /// Whether the asset's MP4 and text files may be downloaded whole from `/{locator}/{file}`.
    #[serde(default)]
    pub downloads: bool,
    /// Filters applied to every manifest of this locator, before those of the request.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Content keys (protected policies); the first one encrypts.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Who may fetch the keys from the key endpoint (`mode = "open"` when absent).
    #[serde(default)]
    pub key_access: Option<crate::protect::token::KeyAccess>,
    /// PlayReady key seed (base64, ≥ 30 bytes): keys without `key` are derived from it and
    /// their KID, so one secret serves many assets.
    #[serde(default)]
    pub key_seed_base64: Option<Secret>,
    /// DRM signalling for `cenc` / `cbcs` / `multi-drm`.
    #[serde(default)]
    pub drm: DrmConfig,
    /// HMAC key (base64, ≥ 16 bytes) for signed, expiring URLs: when set, every URL of this
    /// locator needs a valid `sig=` (see `jit-origin sign-url`).
    #[serde(default)]
    pub url_signing_key_base64: Option<Secret>,
    /// The policy with its keys, the key access verifier and the URL signing key, built once
    /// when the config is checked.
    #[serde(skip)]
    pub access: Option<LocatorAccess>,
}

impl LocatorConfig {
    /// The key for signed URLs, if the locator requires them (at least 16 bytes).
    pub fn url_signing_key(&self) -> Result<Option<crate::protect::url_signing::SigningKey>, String> {
        let Some(encoded) = &self.url_signing_key_base64 else {
            return Ok(None);
        };
        match crate::protect::decode_base64(encoded.expose()) {
            Some(key) if key.len() >= 16 => Ok(Some(crate::protect::url_signing::SigningKey(key))),
            _ => Err("url_signing_key_base64 must be base64 of at least 16 bytes".into()),
        }
    }

    /// The locator's content keys, explicit or derived from its key seed. Errors name the KID,
    /// never key material.
    pub fn content_keys(&self) -> Result<Vec<crate::protect::ContentKey>, String> {
        use crate::protect::{parse_hex16, ContentKey};
        let seed = match &self.key_seed_base64 {
            Some(s) => Some(crate::protect::decode_base64(s.expose()).ok_or("key_seed_base64: not base64")?),
            None => None,
        };
        self.keys
            .iter()
            .map(|k| match (&k.key, &seed) {
                (Some(key), _) => ContentKey::from_hex(&k.kid, key),
                (None, Some(seed)) => {
                    let kid = parse_hex16(&k.kid).map_err(|e| format!("kid: {e}"))?;
                    let key = crate::protect::drm::playready_key_from_seed(seed, &kid)
                        .map_err(|e| format!("key_seed_base64: {e}"))?;
                    Ok(ContentKey { kid, key })
                }
                (None, None) => Err(format!("key {} has no key and the locator no key_seed_base64", k.kid)),
            })
            .collect()
    }
}

/// An optional time written as an RFC 3339 string or a TOML offset date-time.
fn rfc3339_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    use serde::de::Error as _;
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Datetime(t) => t.to_string(),
        _ => return Err(D::Error::custom("expected an RFC 3339 time, e.g. \"2026-01-01T00:00:00Z\"")),
    };
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.into()))
        .map_err(|e| D::Error::custom(format!("'{text}' is not an RFC 3339 time with an offset: {e}")))
}

/// A configuration error, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, base_dir).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and checks configuration text; relative storage paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).map(|l| format!("line {l}: ")).unwrap_or_default();
            ConfigError(format!("{line}{}", e.message()))
        })?;
        if let Some(tls) = &mut config.tls {
            tls.cert_pem = base_dir.join(&tls.cert_pem);
            tls.key_pem = base_dir.join(&tls.key_pem);
        }
        if let Some(api) = &mut config.api {
            for pem in [&mut api.cert_pem, &mut api.key_pem].into_iter().flatten() {
                *pem = base_dir.join(&*pem);
            }
        }
        config.base_dir = base_dir;
        config.check(text)?;
        Ok(config)
    }

    fn check(&mut self, text: &str) -> Result<(), ConfigError> {
        let at = |needle: &str| LineOf { text, needle: needle.to_owned() };
        let limits = &self.limits;
        for (key, value, min) in [
            ("build_memory_mib", limits.build_memory_mib, 1),
            ("max_url_bytes", limits.max_url_bytes as u64, 256),
            ("max_header_bytes", limits.max_header_bytes as u64, 8192),
            ("header_read_timeout_secs", limits.header_read_timeout_secs, 1),
            ("idle_timeout_secs", limits.idle_timeout_secs, 1),
            ("max_connections", limits.max_connections as u64, 1),
            ("max_streams_per_connection", limits.max_streams_per_connection as u64, 1),
            ("max_body_bytes", limits.max_body_bytes as u64, 1024),
            ("body_read_timeout_secs", limits.body_read_timeout_secs, 1),
            ("listen_backlog", limits.listen_backlog as u64, 1),
        ] {
            if value < min {
                return Err(ConfigError(format!("{}{key} must be at least {min}", at(key))));
            }
        }
        if limits.build_memory_mib >= self.cache.segment_mib {
            return Err(ConfigError(format!(
                "{}build_memory_mib ({}) must be less than [cache] segment_mib ({}): builds in progress take their memory from it",
                at("build_memory_mib"),
                limits.build_memory_mib,
                self.cache.segment_mib
            )));
        }
        if let Some(p) = &self.origin_protection {
            if http::HeaderName::from_bytes(p.header.as_bytes()).is_err() {
                return Err(ConfigError(format!(
                    "{}origin_protection: '{}' is not a header name",
                    at("header"),
                    p.header
                )));
            }
            p.secret_bytes().map_err(|e| ConfigError(format!("{}{e}", at("[origin_protection]"))))?;
        }
        if let Some(d) = self.segment_duration {
            if !(d.is_finite() && (0.5..=60.0).contains(&d)) {
                return Err(ConfigError(format!(
                    "{}segment_duration = {d}: must be between 0.5 and 60 seconds",
                    at("segment_duration")
                )));
            }
        }
        if let Some(api) = &self.api {
            if self.store.is_none() {
                return Err(ConfigError(format!(
                    "{}[api] needs [store]: the documents it publishes live there",
                    at("[api]")
                )));
            }
            let media: Vec<SocketAddr> =
                std::iter::once(self.listen).chain(self.tls.as_ref().map(|t| t.listen)).collect();
            api.check(&media).map_err(|e| ConfigError(format!("{}{e}", at("[api]"))))?;
        }
        player::check_script_url(&self.player.script_url)
            .map_err(|e| ConfigError(format!("{}[player] script_url: {e}", at("script_url"))))?;
        self.thumbnails.check().map_err(|e| ConfigError(format!("{}[thumbnails] {e}", at("[thumbnails]"))))?;
        let mut names = std::collections::HashSet::new();
        for s in &self.storage {
            if !names.insert(s.name.as_str()) {
                return Err(ConfigError(format!(
                    "{}storage name '{}' is used twice",
                    at(&format!("\"{}\"", s.name)),
                    s.name
                )));
            }
            if let Some((key, problem)) = s.problem() {
                let name_at = text.find(&format!("\"{}\"", s.name)).unwrap_or(0);
                let line = line_of_key(text, name_at, key).unwrap_or_else(|| line_of(text, name_at));
                return Err(ConfigError(format!("line {line}: storage '{}': {problem}", s.name)));
            }
        }
        if let Some(store) = &self.store {
            if !names.contains(store.storage.as_str()) {
                return Err(ConfigError(format!(
                    "{}[store] storage = \"{}\" names no [[storage]] account",
                    at("[store]"),
                    store.storage
                )));
            }
            if store.refresh_secs == 0 {
                return Err(ConfigError(format!("{}[store] refresh_secs must be at least 1", at("refresh_secs"))));
            }
            crate::source::storage::object_path(&store.prefix)
                .map_err(|e| ConfigError(format!("{}[store] prefix: {e}", at("prefix"))))?;
        }
        let mut filters = std::collections::HashSet::new();
        for f in &self.filter {
            let here = at(&format!("\"{}\"", f.name));
            if f.name.is_empty() || !f.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
                return Err(ConfigError(format!(
                    "{here}filter name '{}' must be letters, digits, '-', '_', '.' or '~'",
                    f.name
                )));
            }
            if !filters.insert(f.name.as_str()) {
                return Err(ConfigError(format!("{here}filter name '{}' is used twice", f.name)));
            }
            f.filter().map_err(|e| ConfigError(format!("{here}filter '{}': {e}", f.name)))?;
        }
        let mut ids = std::collections::HashSet::new();
        let mut accesses = Vec::with_capacity(self.locator.len());
        for l in &self.locator {
            let here = at(&format!("\"{}\"", l.id));
            if l.id.is_empty() || l.id.contains(['/', '?', '#', '%']) || l.id.starts_with('.') {
                return Err(ConfigError(format!("{here}locator id '{}' must be a non-empty URL path segment", l.id)));
            }
            if !ids.insert(l.id.as_str()) {
                return Err(ConfigError(format!("{here}locator id '{}' is used twice", l.id)));
            }
            if !names.contains(l.storage.as_str()) {
                return Err(ConfigError(format!(
                    "{}locator '{}': storage = \"{}\" names no [[storage]] account",
                    at(&format!("storage = \"{}\"", l.storage)),
                    l.id,
                    l.storage
                )));
            }
            if let Some(unknown) = l.filters.iter().find(|f| !filters.contains(f.as_str())) {
                return Err(ConfigError(format!(
                    "{here}locator '{}': filter '{unknown}' is not defined in a [[filter]]",
                    l.id
                )));
            }
            let url_signing_key =
                l.url_signing_key().map_err(|e| ConfigError(format!("{here}locator '{}': {e}", l.id)))?;
            // Messages name the KID only: key material never appears in errors.
            let keys = l.content_keys().map_err(|e| ConfigError(format!("{here}locator '{}': {e}", l.id)))?;
            let drm = l.drm.systems();
            drm.validate().map_err(|e| ConfigError(format!("{}locator '{}' drm: {e}", at("[locator.drm]"), l.id)))?;
            let policy = StreamingPolicy::new(l.policy, &l.id, keys, drm)
                .map_err(|e| ConfigError(format!("{here}locator '{}': {e}", l.id)))?;
            let key_access = match &l.key_access {
                Some(crate::protect::token::KeyAccess::Token(policy)) => Some(Arc::new(
                    crate::protect::token::TokenVerifier::new(policy)
                        .map_err(|e| ConfigError(format!("{}locator '{}' key_access: {e}", at("key_access"), l.id)))?,
                )),
                Some(crate::protect::token::KeyAccess::Open) | None => None,
            };
            if let (Some(start), Some(end)) = (l.start_time, l.end_time) {
                if end <= start {
                    return Err(ConfigError(format!("{here}locator '{}': end_time must be after start_time", l.id)));
                }
            }
            if l.asset.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(ConfigError(format!(
                    "{here}locator '{}': asset = \"{}\" must stay inside its storage",
                    l.id, l.asset
                )));
            }
            accesses.push(LocatorAccess { policy, key_access, url_signing_key });
        }
        for (l, access) in self.locator.iter_mut().zip(accesses) {
            l.access = Some(access);
        }
        self.check_live(text, &names)
    }

    /// `[ingest]` and `[[live_event]]`: limits, listeners apart from the others, each event's
    /// name, token, storage, folder and window; names and tokens unique.
    fn check_live(&self, text: &str, storages: &std::collections::HashSet<&str>) -> Result<(), ConfigError> {
        let at = |needle: &str| LineOf { text, needle: needle.to_owned() };
        if let Some(ingest) = &self.ingest {
            for (key, value) in [
                ("max_connections", ingest.max_connections as u64),
                ("max_fragment_mib", ingest.max_fragment_mib),
                ("idle_timeout_secs", ingest.idle_timeout_secs),
            ] {
                if value == 0 {
                    return Err(ConfigError(format!("{}[ingest] {key} must be at least 1", at("[ingest]"))));
                }
            }
            let others: Vec<SocketAddr> = std::iter::once(self.listen)
                .chain(self.tls.as_ref().map(|t| t.listen))
                .chain(self.api.as_ref().map(|a| a.listen))
                .chain(self.limits.health_listen)
                .collect();
            let listeners = [("listen", ingest.listen), ("rtmp_listen", ingest.rtmp_listen)];
            for (key, addr) in listeners.iter().filter_map(|(key, addr)| Some((key, (*addr)?))) {
                let taken = others.iter().chain(ingest.listen.iter().filter(|_| *key == "rtmp_listen"));
                if taken.into_iter().any(|other| same_address(other, &addr)) {
                    return Err(ConfigError(format!(
                        "{}[ingest] {key} = {addr}: an ingest listener has a port of its own",
                        at(&format!("{key} ="))
                    )));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut tokens: Vec<Secret> = Vec::new();
        for e in &self.live_event {
            let here = at(&format!("\"{}\"", e.name));
            let refuse = |problem: String| Err(ConfigError(format!("{here}live_event '{}': {problem}", e.name)));
            if let Err(problem) = crate::plan::live_event::check_name(&e.name) {
                return refuse(format!("name {problem}"));
            }
            if !names.insert(e.name.as_str()) {
                return refuse("the name is used twice".into());
            }
            let token = match e.access_token() {
                Ok(token) => token,
                Err(problem) => return refuse(problem),
            };
            if tokens.iter().any(|t| t.expose() == token.expose()) {
                return refuse("access_token: another live event has the same token".into());
            }
            tokens.push(token);
            if !storages.contains(e.storage.as_str()) {
                return refuse(format!("storage = \"{}\" names no [[storage]] account", e.storage));
            }
            let folder = e.folder.trim_matches('/');
            if folder.is_empty() || folder.split('/').any(|seg| seg == ".." || seg == "." || seg.is_empty()) {
                return refuse(format!("folder = \"{}\" must be a folder inside its storage", e.folder));
            }
            if let Some(name) = &e.manifest_name {
                if name.is_empty() || name.contains(['/', '?', '#', '%', '(', ')', ',', '=']) {
                    return refuse(format!("manifest_name = \"{name}\" must be one URL path segment"));
                }
            }
            if let Err(problem) = crate::plan::live_event::check_dvr_window(e.dvr_window_secs) {
                return refuse(format!("dvr_window_secs: {problem}"));
            }
        }
        Ok(())
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// Line of the first `key = …` at or after byte `from`.
fn line_of_key(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut at = from.min(text.len());
    for line in text[at..].split_inclusive('\n') {
        let rest = line.trim_start().strip_prefix(key).map(str::trim_start);
        if rest.is_some_and(|r| r.starts_with('=')) {
            return Some(line_of(text, at));
        }
        at += line.len();
    }
    None
}

/// "line N: " of the first occurrence of `needle`, for errors found after parsing. Found only
/// when an error is written: checking a config of 10,000 locators would otherwise search the
/// whole text once per locator (30 s to start).
struct LineOf<'a> {
    text: &'a str,
    needle: String,
}

impl std::fmt::Display for LineOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.text.find(&self.needle) {
            Some(at) => write!(f, "line {}: ", line_of(self.text, at)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"
[[storage]]
name = "local"
url = "file://../fixtures"
[[locator]]
id = "abc"
storage = "local"
asset = "ladder"
policy = "clear"
"#;

    #[test]
    fn parses_with_defaults() {
        let c = Config::parse(GOOD, PathBuf::from("/etc/origin")).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.locator[0].policy, Policy::Clear);
        assert_eq!(c.http.cors_allow_origin, "*");
        assert_eq!(c.cache.segment_mib, 1024);
        let cache = &c.cache;
        assert_eq!((cache.stale_if_error_secs, cache.not_found_ttl_secs, cache.failure_ttl_secs), (86_400, 10, 5));
    }

    #[test]
    fn cloud_storage_accounts_parse_and_refuse_keys_of_other_clouds() {
        let cloud = GOOD.replace(
            "url = \"file://../fixtures\"",
            "url = \"s3://media/vod\"\nendpoint = \"http://127.0.0.1:9000\"\nsecret_access_key = \"s3cr3t-value\"\n\
             request_timeout_secs = 1.5\nretries = 0",
        );
        let c = Config::parse(&cloud, PathBuf::new()).unwrap();
        let s = &c.storage[0];
        assert_eq!(
            (s.request_timeout(), s.connect_timeout(), s.retries()),
            (Duration::from_millis(1500), Duration::from_secs(2), 0)
        );
        assert!(!format!("{c:?}").contains("s3cr3t"), "secrets are redacted in Debug");

        for (url_and_keys, line, key) in [
            ("url = \"az://media\"\nregion = \"eu-west-1\"", "line 6", "region"),
            ("url = \"file://.\"\nretries = 3", "line 6", "retries"),
            ("url = \"gs://media\"\naccess_key_id = \"x\"", "line 6", "access_key_id"),
            ("url = \"s3://\"", "line 5", "bucket"),
            ("url = \"ftp://host/x\"", "line 5", "ftp"),
            ("url = \"s3://media\"\nendpoint = \"127.0.0.1:9000\"", "line 6", "endpoint"),
            ("url = \"s3://media\"\nrequest_timeout_secs = 0", "line 6", "request_timeout_secs"),
        ] {
            let bad = GOOD.replace("url = \"file://../fixtures\"", url_and_keys);
            let e = Config::parse(&bad, PathBuf::new()).unwrap_err().0;
            assert!(e.contains(line) && e.contains(key), "{url_and_keys}: {e}");
        }
    }

    #[test]
    fn shipped_configs_parse() {
        for file in ["config/origin.toml", "config/cloud-example.toml", "config/live-example.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }

    #[test]
    fn locator_window_in_rfc3339_quoted_or_native() {
        let window = "policy = \"clear\"\nstart_time = \"2026-01-01T01:00:00+01:00\"\nend_time = 2026-02-01T00:00:00Z";
        let c = Config::parse(&GOOD.replace("policy = \"clear\"", window), PathBuf::new()).unwrap();
        let secs = |t: Option<SystemTime>| t.unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(c.locator[0].start_time), 1_767_225_600);
        assert_eq!(secs(c.locator[0].end_time), 1_769_904_000);

        let reversed = "policy = \"clear\"\nstart_time = \"2026-02-01T00:00:00Z\"\nend_time = \"2026-01-01T00:00:00Z\"";
        let e = Config::parse(&GOOD.replace("policy = \"clear\"", reversed), PathBuf::new()).unwrap_err().0;
        assert!(e.contains("end_time must be after start_time"), "{e}");
        let local = "policy = \"clear\"\nstart_time = \"2026-01-01T00:00:00\"";
        let e = Config::parse(&GOOD.replace("policy = \"clear\"", local), PathBuf::new()).unwrap_err().0;
        assert!(e.contains("line 11") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn errors_name_key_and_line() {
        let bad = GOOD.replace("policy = \"clear\"", "policy = \"clear\"\ncolour = 1");
        let e = Config::parse(&bad, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("line 11") && e.contains("colour"), "{e}");

        let bad = GOOD.replace("storage = \"local\"", "storage = \"s3\"");
        let e = Config::parse(&bad, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("line 8") && e.contains("s3"), "{e}");

        let bad = GOOD.replace("127.0.0.1:8080", "nowhere");
        let e = Config::parse(&bad, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("line 2"), "{e}");

        let bad = GOOD.replace("\"ladder\"", "\"../etc\"");
        assert!(Config::parse(&bad, PathBuf::new()).is_err());

        let bad = format!("{GOOD}[player]\nenabled = true\nscript_url = \"javascript:alert(1)\"\n");
        let e = Config::parse(&bad, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("line 13") && e.contains("script_url"), "{e}");
        // Segment builds take their memory from the segment cache's share.
        let bad = format!("{GOOD}[cache]\nsegment_mib = 16\n[limits]\nbuild_memory_mib = 16\n");
        let e = Config::parse(&bad, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("line 14") && e.contains("less than [cache] segment_mib (16)"), "{e}");
        assert!(Config::parse(&bad.replace("segment_mib = 16", "segment_mib = 17"), PathBuf::new()).is_ok());
    }

    #[test]
    fn store_names_an_account_and_refreshes_every_two_seconds_by_default() {
        assert!(Config::parse(GOOD, PathBuf::new()).unwrap().store.is_none());
        let c =
            Config::parse(&format!("{GOOD}[store]\nstorage = \"local\"\nprefix = \"ams\"\n"), PathBuf::new()).unwrap();
        let store = c.store.unwrap();
        assert_eq!(
            (store.prefix.as_str(), store.refresh_secs, store.key_env.as_str()),
            ("ams", 2, "JIT_ORIGIN_STORE_KEY")
        );
        for (bad, said) in [
            ("storage = \"nope\"", "line 11: [store] storage = \"nope\" names no [[storage]] account"),
            ("storage = \"local\"\nrefresh_secs = 0", "refresh_secs must be at least 1"),
            ("storage = \"local\"\nprefix = \"a/../..\"", "[store] prefix"),
            ("storage = \"local\"\ncolour = 1", "colour"),
        ] {
            let e = Config::parse(&format!("{GOOD}[store]\n{bad}\n"), PathBuf::new()).unwrap_err().0;
            assert!(e.contains(said), "{bad}: {e}");
        }
    }

    #[test]
    fn filters_in_the_ams_shape_or_the_shorthand() {
        let ams = format!(
            "{GOOD}[[filter]]\nname = \"hd\"\n[filter.properties]\nfirstQuality = {{ bitrate = 600000 }}\n\
             [filter.properties.presentationTimeRange]\nstartTimestamp = 2000\ntimescale = 1000\n\
             [[filter.properties.tracks]]\n\
             trackSelections = [{{ property = \"Type\", operation = \"Equal\", value = \"Video\" }}]\n"
        );
        let c = Config::parse(&ams, PathBuf::new()).unwrap();
        let hd = c.filter[0].filter().unwrap();
        assert_eq!(hd.definition.first_quality.as_ref().map(|q| q.bitrate), Some(600_000));
        let range = hd.definition.presentation_time_range.as_ref().unwrap();
        assert_eq!((range.start_timestamp, range.timescale), (Some(2000), 1000));
        assert_eq!(hd.definition.tracks[0].track_selections[0].property, TrackProperty::Type);

        let shorthand = format!("{GOOD}[[filter]]\nname = \"sd\"\nend_secs = 4.5\nmax_video_bitrate = 300000\n");
        let sd = Config::parse(&shorthand, PathBuf::new()).unwrap().filter[0].filter().unwrap();
        let json = serde_json::to_value(&sd.definition).unwrap();
        let expected = serde_json::json!({
            "presentationTimeRange": {"endTimestamp": 45_000_000, "timescale": 10_000_000},
            "tracks": [
                {"trackSelections": [
                    {"property": "Type", "operation": "Equal", "value": "Video"},
                    {"property": "Bitrate", "operation": "Equal", "value": "0-300000"}]},
                {"trackSelections": [{"property": "Type", "operation": "NotEqual", "value": "Video"}]}]});
        assert_eq!(json, expected);

        let both = ams.replace("name = \"hd\"\n", "name = \"hd\"\nend_secs = 1.0\n");
        let e = Config::parse(&both, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("not both"), "{e}");
        let bad_range = ams.replace("startTimestamp = 2000", "startTimestamp = 2000\nendTimestamp = 1000");
        let e = Config::parse(&bad_range, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("filter 'hd': properties.presentationTimeRange.endTimestamp"), "{e}");
        let unknown = ams.replace("\"Type\"", "\"Colour\"");
        let e = Config::parse(&unknown, PathBuf::new()).unwrap_err().0;
        assert!(e.contains("Colour"), "{e}");
    }

    #[test]
    fn the_api_needs_the_store_a_port_of_its_own_and_callers() {
        std::env::set_var("CONFIG_TEST_API_TOKENS", "token-of-sixteen-characters");
        let store = "[store]\nstorage = \"local\"\n";
        let api = "[api]\nlisten = \"127.0.0.1:8090\"\ntokens_env = \"CONFIG_TEST_API_TOKENS\"\n";
        let c = Config::parse(&format!("{GOOD}{store}{api}"), PathBuf::from("/etc/origin")).unwrap();
        assert_eq!(c.api.unwrap().listen.port(), 8090);
        assert!(Config::parse(GOOD, PathBuf::new()).unwrap().api.is_none(), "off unless configured");
        for (bad, said) in [
            (api.to_string(), "[api] needs [store]"),
            (format!("{store}{}", api.replace("8090", "8080")), "never shares the media listener"),
            (format!("{store}{}", api.replace("tokens_env = \"CONFIG_TEST_API_TOKENS\"\n", "")), "never open"),
            (
                format!("{store}{}", api.replace("CONFIG_TEST_API_TOKENS", "CONFIG_TEST_UNSET")),
                "CONFIG_TEST_UNSET is not set",
            ),
            (format!("{store}{api}cert_pem = \"api.crt\"\n"), "both cert_pem and key_pem"),
        ] {
            let e = Config::parse(&format!("{GOOD}{bad}"), PathBuf::new()).unwrap_err().0;
            assert!(e.contains(said), "{bad}: {e}");
        }
        let tls = Config::parse(
            &format!("{GOOD}{store}{api}cert_pem = \"a.crt\"\nkey_pem = \"a.key\"\n"),
            PathBuf::from("/etc/o"),
        );
        assert_eq!(tls.unwrap().api.unwrap().tls().unwrap().cert_pem, PathBuf::from("/etc/o/a.crt"));
    }

    const EVENT: &str = "[[live_event]]\nname = \"match-1\"\naccess_token = \"0123456789abcdef0123\"\n\
                         storage = \"local\"\nfolder = \"live/match-1\"\n";

    #[test]
    fn ingest_and_live_events_parse_with_defaults() {
        let c = Config::parse(GOOD, PathBuf::new()).unwrap();
        assert!(c.ingest.is_none() && c.live_event.is_empty(), "off unless configured");
        let ingest = "[ingest]\nlisten = \"127.0.0.1:8088\"\nrtmp_listen = \"127.0.0.1:1935\"\n";
        let c = Config::parse(&format!("{GOOD}{ingest}{EVENT}"), PathBuf::new()).unwrap();
        let i = c.ingest.as_ref().unwrap();
        assert_eq!((i.max_connections, i.max_fragment_mib, i.idle_timeout_secs), (1024, 64, 10));
        assert_eq!(i.rtmp_listen.unwrap().port(), 1935);
        let e = &c.live_event[0];
        assert_eq!((e.dvr_window_secs, e.manifest_name.as_deref()), (3600, None));
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"), "tokens are redacted in Debug");

        std::env::set_var("CONFIG_TEST_EVENT_TOKEN", "fedcba9876543210fedc");
        let from_env =
            EVENT.replace("access_token = \"0123456789abcdef0123\"", "access_token_env = \"CONFIG_TEST_EVENT_TOKEN\"");
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let c = Config::parse(&format!("{GOOD}{from_env}"), config_dir).unwrap();
        assert_eq!(c.live_event[0].access_token().unwrap().expose(), "fedcba9876543210fedc");
        let origin = crate::serve::origin::Origin::from_config(&c).unwrap();
        let event = origin.catalog().live_event_by_token("fedcba9876543210fedc").cloned().unwrap();
        assert_eq!(
            (event.name.as_str(), event.folder.as_str(), event.storage.name()),
            ("match-1", "live/match-1", "local")
        );
    }

    #[test]
    fn live_event_errors_name_the_field() {
        let second = EVENT.replace("match-1", "match-2");
        for (bad, said) in [
            (EVENT.replace("match-1\"\naccess", "-x\"\naccess"), "line 12: live_event '-x': name '-x' must be"),
            (EVENT.replace("0123456789abcdef0123", "short"), "access_token: must be 16 to 128"),
            (EVENT.replace("access_token = \"0123456789abcdef0123\"\n", ""), "exactly one of access_token"),
            (
                EVENT.replace("access_token = \"0123456789abcdef0123\"", "access_token_env = \"CONFIG_TEST_UNSET\""),
                "CONFIG_TEST_UNSET is not set",
            ),
            (EVENT.replace("storage = \"local\"", "storage = \"s3\""), "storage = \"s3\" names no [[storage]]"),
            (EVENT.replace("live/match-1", "../up"), "folder = \"../up\" must be a folder"),
            (format!("{EVENT}dvr_window_secs = 59\n"), "dvr_window_secs: 59 s is outside 60 s"),
            (format!("{EVENT}dvr_window_secs = 90001\n"), "dvr_window_secs: 90001 s"),
            (format!("{EVENT}manifest_name = \"a/b\"\n"), "manifest_name = \"a/b\""),
            (format!("{EVENT}{EVENT}"), "the name is used twice"),
            (format!("{EVENT}{second}"), "live_event 'match-2': access_token: another live event has the same token"),
            (format!("{EVENT}colour = 1\n"), "colour"),
            (
                "[ingest]\nlisten = \"127.0.0.1:8080\"\n".into(),
                "[ingest] listen = 127.0.0.1:8080: an ingest listener has a port of its own",
            ),
            (
                "[ingest]\nlisten = \"127.0.0.1:1935\"\nrtmp_listen = \"0.0.0.0:1935\"\n".into(),
                "rtmp_listen = 0.0.0.0:1935",
            ),
            ("[ingest]\nmax_fragment_mib = 0\n".into(), "[ingest] max_fragment_mib must be at least 1"),
        ] {
            let e = Config::parse(&format!("{GOOD}{bad}"), PathBuf::new()).unwrap_err().0;
            assert!(e.contains(said), "{bad}: {e}");
            assert!(!e.contains("0123456789abcdef0123"), "the token is never shown: {e}");
        }
    }

    #[test]
    fn player_page_is_off_unless_enabled() {
        let c = Config::parse(GOOD, PathBuf::new()).unwrap();
        assert!(!c.player.enabled);
        assert_eq!(c.player.script_url, player::DEFAULT_SCRIPT_URL);
        let on = Config::parse(&format!("{GOOD}[player]\nenabled = true\n"), PathBuf::new()).unwrap();
        assert!(on.player.enabled);
    }
}
