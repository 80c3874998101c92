//! Locators: the published URL ids of assets, each with the storage account and folder the
//! asset lives in, the manifest filters it applies, and its streaming policy with the keys an
//! encrypting policy encrypts with.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use xxhash_rust::xxh3::Xxh3;

use crate::plan::url::Encryption;
use crate::protect::drm::DrmSystems;
use crate::protect::token::TokenVerifier;
use crate::protect::url_signing::SigningKey;
use crate::protect::ContentKey;
use crate::protect::Scheme;
use crate::source::storage::Storage;

/// What a locator's streaming policy allows (config `policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// No encryption; requests with `encryption=` are refused.
    Clear,
    /// AES-128 envelope (`encryption=cbc`) only; clear requests are refused.
    Envelope,
    /// Common Encryption 'cenc' (`encryption=cenc`): Widevine, PlayReady, ClearKey.
    Cenc,
    /// Common Encryption 'cbcs' (`encryption=cbcs-aapl`): FairPlay, Widevine, ClearKey.
    Cbcs,
    /// Both 'cenc' and 'cbcs'.
    MultiDrm,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Clear => "clear",
            Policy::Envelope => "envelope",
            Policy::Cenc => "cenc",
            Policy::Cbcs => "cbcs",
            Policy::MultiDrm => "multi-drm",
        }
    }

    /// Whether a request for `encryption` (None = clear) may be served under this policy.
    pub fn allows(self, encryption: Option<Encryption>) -> bool {
        match self {
            Policy::Clear => encryption.is_none(),
            Policy::Envelope => encryption == Some(Encryption::Envelope),
            Policy::Cenc => encryption == Some(Encryption::Common(Scheme::Cenc)),
            Policy::Cbcs => encryption == Some(Encryption::Common(Scheme::Cbcs)),
            Policy::MultiDrm => matches!(encryption, Some(Encryption::Common(_))),
        }
    }

    /// Whether the policy encrypts, so it needs content keys.
    pub fn needs_keys(self) -> bool {
        self != Policy::Clear
    }
}

/// A locator's streaming policy with what it encrypts with: an encrypting policy without keys
/// cannot be made.
#[derive(Debug, Clone)]
pub enum StreamingPolicy {
    Clear,
    Encrypting(Policy, Box<LocatorKeys>),
}

impl StreamingPolicy {
    /// `policy` with `keys` (the first encrypts) and the DRM systems to signal; an encrypting
    /// policy needs at least one key. A clear policy keeps no keys: it serves none.
    pub fn new(policy: Policy, locator: &str, keys: Vec<ContentKey>, drm: DrmSystems) -> Result<Self, String> {
        if !policy.needs_keys() {
            return Ok(StreamingPolicy::Clear);
        }
        let keys = LocatorKeys::new(locator, keys, drm)
            .ok_or_else(|| format!("policy '{}' needs keys = [{{ kid = \"…\", key = \"…\" }}]", policy.as_str()))?;
        Ok(StreamingPolicy::Encrypting(policy, Box::new(keys)))
    }

    /// The policy without its keys.
    pub fn kind(&self) -> Policy {
        match self {
            StreamingPolicy::Clear => Policy::Clear,
            StreamingPolicy::Encrypting(policy, _) => *policy,
        }
    }

    /// The keys, when the policy encrypts.
    pub fn keys(&self) -> Option<&LocatorKeys> {
        match self {
            StreamingPolicy::Clear => None,
            StreamingPolicy::Encrypting(_, keys) => Some(keys),
        }
    }
}

/// An encrypting locator's keys and DRM signalling, with what requests derive from them
/// computed once at start, so the request path only borrows them.
#[derive(Debug, Clone)]
pub struct LocatorKeys {
    /// The key that encrypts: the first configured.
    first: ContentKey,
    /// The others, served by the key endpoint and licences (rotation).
    others: Vec<ContentKey>,
    /// DRM systems signalled for Common Encryption.
    pub drm: DrmSystems,
    /// The key endpoint path players fetch the first key from: `/{locator}/key/{kid}`.
    pub key_uri: String,
    /// xxh3 of the content key: encrypted segment bytes differ per key (never the key itself).
    pub key_fingerprint: u64,
    /// xxh3 of everything encrypted manifests and init segments embed besides the asset: the
    /// key (PlayReady checksum), the locator id (key URIs) and the DRM signalling.
    pub signalling_fingerprint: u64,
}

impl LocatorKeys {
    /// `None` without keys.
    fn new(locator: &str, mut keys: Vec<ContentKey>, drm: DrmSystems) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        let first = keys.remove(0);
        let mut h = Xxh3::new();
        h.update(&first.key);
        h.update(locator.as_bytes());
        h.update(format!("{drm:?}").as_bytes());
        Some(LocatorKeys {
            key_uri: format!("/{locator}/key/{}", first.kid_hex()),
            key_fingerprint: xxhash_rust::xxh3::xxh3_64(&first.key),
            signalling_fingerprint: h.digest(),
            first,
            others: keys,
            drm,
        })
    }

    /// The key that encrypts.
    pub fn first(&self) -> &ContentKey {
        &self.first
    }

    /// Every key: the one that encrypts, then the others.
    pub fn all(&self) -> impl Iterator<Item = &ContentKey> {
        std::iter::once(&self.first).chain(&self.others)
    }
}

/// A published locator, resolved against its storage account.
#[derive(Debug, Clone)]
pub struct Locator {
    pub id: String,
    pub storage: Arc<Storage>,
    /// Folder of the asset inside the storage account.
    pub asset_folder: String,
    /// The managed asset the locator publishes, whose asset filters its manifests may name;
    /// `None` for locators of the config file.
    pub asset_name: Option<String>,
    /// The locator serves nothing before this time.
    pub start_time: Option<SystemTime>,
    /// The locator serves nothing from this time on.
    pub end_time: Option<SystemTime>,
    /// Whether the policy allows streaming (manifests and segments): all but download-only.
    pub streaming: bool,
    /// Whether the policy allows download paths (`/{locator}/{file}`).
    pub downloads: bool,
    pub policy: StreamingPolicy,
    /// Filters applied to every manifest of this locator.
    pub default_filters: Vec<String>,
    /// `None`: keys are open to anyone with the URL; else a JWT is required.
    pub key_access: Option<Arc<TokenVerifier>>,
    /// When set, every URL of the locator must be signed ([`crate::protect::url_signing`]).
    pub url_signing_key: Option<SigningKey>,
}

impl Locator {
    /// The key with id `kid`, for the key endpoint.
    pub fn key(&self, kid: &[u8; 16]) -> Option<&ContentKey> {
        self.policy.keys()?.all().find(|k| &k.kid == kid)
    }
}

/// What a locator's config builds once, when it is checked: the streaming policy with its
/// keys, the key access verifier and the URL signing key.
#[derive(Debug, Clone)]
pub struct LocatorAccess {
    pub policy: StreamingPolicy,
    /// `None`: keys are open to anyone with the URL; else a JWT is required.
    pub key_access: Option<Arc<TokenVerifier>>,
    /// When set, every URL of the locator must be signed ([`crate::protect::url_signing`]).
    pub url_signing_key: Option<SigningKey>,
}
