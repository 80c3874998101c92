//! The Azure Media Services v3 resource model (REST API version 2022-08-01; MK.IO keeps it):
//! the JSON of assets, streaming locators, streaming policies and content key policies, as
//! the official SDKs send and read it. Request bodies refuse unknown fields, and every
//! `check` names the JSON field it refuses (`properties.contentKeys[0].value: …`), so a bad
//! request is a 400 that says what to fix.
//!
//! The store keeps these same documents (key material sealed), and the catalog turns them
//! into what the origin serves with [`StreamingPolicyProperties::terms`],
//! [`StreamingLocatorProperties::content_keys`] and [`ContentKeyPolicyProperties::key_access`].

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::DrmConfig;
use crate::plan::locator::Policy;
use crate::plan::url::Encryption;
use crate::protect::token::{KeyAccess, TokenPolicy, TokenVerifier, CONTENT_KEY_CLAIM, DEFAULT_LEEWAY_SECS};
use crate::protect::{ContentKey, Scheme};

/// A resource body: `{"name", "id", "type", "properties": {…}}`. `name`, `id` and `type` are
/// the server's (a request may echo them; they are ignored), `systemData` is accepted and
/// never written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource<P> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing)]
    pub system_data: Option<Value>,
    #[serde(default)]
    pub properties: P,
}

/// Parses a JSON body; the error names the field (`properties.contentKeys[0].id: …`).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut json = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut json).map_err(|e| field_error("", &e))
}

/// Reads merged `properties` (a PATCH applied to the stored ones); the error names the field.
pub fn parse_properties<T: DeserializeOwned>(properties: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(properties).map_err(|e| field_error("properties", &e))
}

fn field_error<E: std::fmt::Display>(parent: &str, e: &serde_path_to_error::Error<E>) -> String {
    let inner = e.inner().to_string();
    // serde_json appends " at line L column C": the field path says where.
    let message = inner.split(" at line ").next().unwrap_or(&inner);
    let path = e.path().to_string();
    match (parent, path.as_str()) {
        ("", ".") => message.to_string(),
        ("", path) => format!("{path}: {message}"),
        (parent, ".") => format!("{parent}: {message}"),
        (parent, path) => format!("{parent}.{path}: {message}"),
    }
}

/// `Err("field: problem")`.
fn refuse<T>(field: &str, problem: impl std::fmt::Display) -> Result<T, String> {
    Err(format!("{field}: {problem}"))
}

/// A resource name as AMS allows it: 1–260 characters, no path or query characters.
pub fn check_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 260 {
        return refuse(field, "must be 1 to 260 characters");
    }
    if name.contains(['/', '\\', '?', '#', '%', ';', '(', ')', ',', '=']) || name.chars().any(char::is_control) {
        return refuse(field, format!("'{name}' has a character not allowed in a resource name"));
    }
    Ok(())
}

/// A GUID (`8-4-4-4-12` hex digits, braces optional).
pub fn parse_guid(field: &str, text: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(text.trim_start_matches('{').trim_end_matches('}'))
        .or_else(|_| refuse(field, format!("'{text}' is not a GUID")))
}

/// 16 random bytes from the operating system (keys, key ids).
pub fn random_16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    bytes
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------
// Assets

/// `assets/{name}`: a folder in a storage account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssetProperties {
    /// Read-only: a GUID given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The asset's folder inside the storage account (AMS: the blob container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// A `[[storage]]` account name; absent = the first one configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account_name: Option<String>,
    /// Read-only: always `None` (the origin reads clear sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_encryption_format: Option<String>,
}

impl AssetProperties {
    pub fn check(&self) -> Result<(), String> {
        let Some(container) = self.container.as_deref() else {
            return refuse("properties.container", "required: the asset's folder in its storage account");
        };
        if container.is_empty()
            || container.len() > 1024
            || container.starts_with('/')
            || container.split('/').any(|seg| seg == ".." || seg == ".")
            || container.chars().any(char::is_control)
        {
            return refuse(
                "properties.container",
                format!("'{container}' must be a relative folder inside the storage account"),
            );
        }
        if let Some(format) = self.storage_encryption_format.as_deref() {
            if format != "None" {
                return refuse("properties.storageEncryptionFormat", "only \"None\" is supported");
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Streaming locators

/// `streamingLocators/{name}`: a published URL id of an asset. Immutable once created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamingLocatorProperties {
    #[serde(default)]
    pub asset_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// The GUID in the locator's URLs; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming_locator_id: Option<String>,
    #[serde(default)]
    pub streaming_policy_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_content_key_policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_keys: Vec<StreamingLocatorContentKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative_media_id: Option<String>,
    /// Account or asset filter names applied to every manifest of the locator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
}

/// A content key of a locator. `value` is the base64 key: given by the client or generated,
/// stored sealed, and returned by `listContentKeys` only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamingLocatorContentKey {
    /// The key id (KID), a GUID.
    #[serde(default)]
    pub id: String,
    /// Read-only: the encryption scheme the key serves.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(alias = "label", default, skip_serializing_if = "Option::is_none")]
    pub label_reference_in_streaming_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// Read-only in AMS; the origin encrypts every track with the locator's key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<Value>,
}

impl StreamingLocatorProperties {
    /// What the body alone can tell; the API checks the names it refers to (asset, policy,
    /// key policy, filters) against what exists.
    pub fn check(&self) -> Result<(), String> {
        if self.asset_name.is_empty() {
            return refuse("properties.assetName", "required");
        }
        check_name("properties.assetName", &self.asset_name)?;
        if self.streaming_policy_name.is_empty() {
            return refuse("properties.streamingPolicyName", "required");
        }
        if let Some(id) = &self.streaming_locator_id {
            parse_guid("properties.streamingLocatorId", id)?;
        }
        if let (Some(start), Some(end)) = (self.start_time, self.end_time) {
            if end <= start {
                return refuse("properties.endTime", format!("{end} is not after startTime {start}"));
            }
        }
        if self.filters.len() > 3 {
            return refuse("properties.filters", "at most 3 filters");
        }
        for (i, f) in self.filters.iter().enumerate() {
            check_name(&format!("properties.filters[{i}]"), f)?;
        }
        let mut kids = std::collections::HashSet::new();
        for (i, key) in self.content_keys.iter().enumerate() {
            let field = |name: &str| format!("properties.contentKeys[{i}].{name}");
            let kid = parse_guid(&field("id"), &key.id)?;
            if !kids.insert(kid) {
                return refuse(&field("id"), format!("key id {kid} is given twice"));
            }
            if let Some(value) = &key.value {
                key_bytes(value).ok_or_else(|| format!("{}: must be base64 of 16 bytes", field("value")))?;
            }
        }
        Ok(())
    }

    /// The keys with their values (opened, when read from the store), in order: the first
    /// encrypts. A key without a value is an error naming it.
    pub fn content_keys(&self) -> Result<Vec<ContentKey>, String> {
        self.content_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let kid = *parse_guid(&format!("properties.contentKeys[{i}].id"), &k.id)?.as_bytes();
                let key = k
                    .value
                    .as_deref()
                    .and_then(key_bytes)
                    .ok_or_else(|| format!("properties.contentKeys[{i}].value: must be base64 of 16 bytes"))?;
                Ok(ContentKey { kid, key })
            })
            .collect()
    }

    /// Gives every key a value and every key an id where the client left them out, and an
    /// encrypting policy one key when the client gave none (as AMS does). `key_type` is the
    /// policy's scheme, written into each key.
    pub fn complete_keys(&mut self, key_type: Option<EncryptionScheme>) {
        if key_type.is_some() && self.content_keys.is_empty() {
            self.content_keys.push(StreamingLocatorContentKey::default());
        }
        for key in &mut self.content_keys {
            if key.id.is_empty() {
                key.id = uuid::Uuid::from_bytes(random_16()).hyphenated().to_string();
            }
            key.value.get_or_insert_with(|| base64(&random_16()));
            key.key_type = key_type.map(|t| t.as_str().to_string());
        }
    }

    /// Applies `f` to every key value (sealing before a store write, opening after a read).
    pub fn map_secrets(&mut self, mut f: impl FnMut(&str) -> Result<String, String>) -> Result<(), String> {
        for key in &mut self.content_keys {
            if let Some(value) = &key.value {
                key.value = Some(f(value)?);
            }
        }
        Ok(())
    }

    /// The locator as GET shows it: key values removed.
    pub fn without_secrets(mut self) -> Self {
        for key in &mut self.content_keys {
            key.value = None;
        }
        self
    }
}

/// A 16-byte key from base64.
fn key_bytes(value: &str) -> Option<[u8; 16]> {
    crate::protect::decode_base64(value)?.try_into().ok()
}

// ---------------------------------------------------------------------------------------
// Streaming policies

/// `streamingPolicies/{name}`: which protocols are served, clear or with which encryption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamingPolicyProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_content_key_policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_encryption: Option<EnvelopeEncryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_encryption_cenc: Option<CommonEncryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_encryption_cbcs: Option<CommonEncryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_encryption: Option<NoEncryption>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnabledProtocols {
    pub download: bool,
    pub dash: bool,
    pub hls: bool,
    pub smooth_streaming: bool,
}

impl EnabledProtocols {
    pub const STREAMING: EnabledProtocols =
        EnabledProtocols { download: false, dash: true, hls: true, smooth_streaming: true };
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NoEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_protocols: Option<EnabledProtocols>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvelopeEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_protocols: Option<EnabledProtocols>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear_tracks: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_keys: Option<PolicyContentKeys>,
    /// Accepted and kept; keys are served by the origin's own key endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_acquisition_url_template: Option<String>,
}

/// `commonEncryptionCenc` and `commonEncryptionCbcs` (FairPlay only in cbcs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommonEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_protocols: Option<EnabledProtocols>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear_tracks: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_keys: Option<PolicyContentKeys>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drm: Option<DrmTemplates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_key_encryption_configuration: Option<ClearKeyEncryptionConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyContentKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_key: Option<DefaultKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_to_track_mappings: Vec<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
}

/// Licence server templates. AMS's `{ContentKeyId}` and `{AlternativeMediaId}` stand for the
/// key id and the locator; the origin's own `{kid}`, `{kid_uuid}` and `{locator}` work too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DrmTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_ready: Option<LicenseTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widevine: Option<LicenseTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fair_play: Option<LicenseTemplate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LicenseTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_license_acquisition_url_template: Option<String>,
    /// PlayReady only; accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_ready_custom_attributes: Option<String>,
    /// FairPlay only; accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_persistent_license: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClearKeyEncryptionConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_keys_acquisition_url_template: Option<String>,
}

/// The encryption schemes of `listPaths` and of content keys, by their AMS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionScheme {
    NoEncryption,
    EnvelopeEncryption,
    CommonEncryptionCenc,
    CommonEncryptionCbcs,
}

impl EncryptionScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionScheme::NoEncryption => "NoEncryption",
            EncryptionScheme::EnvelopeEncryption => "EnvelopeEncryption",
            EncryptionScheme::CommonEncryptionCenc => "CommonEncryptionCenc",
            EncryptionScheme::CommonEncryptionCbcs => "CommonEncryptionCbcs",
        }
    }

    /// The `encryption=` of the origin's URLs.
    pub fn encryption(self) -> Option<Encryption> {
        match self {
            EncryptionScheme::NoEncryption => None,
            EncryptionScheme::EnvelopeEncryption => Some(Encryption::Envelope),
            EncryptionScheme::CommonEncryptionCenc => Some(Encryption::Common(Scheme::Cenc)),
            EncryptionScheme::CommonEncryptionCbcs => Some(Encryption::Common(Scheme::Cbcs)),
        }
    }
}

impl EncryptionScheme {
    /// The schemes a config locator's policy serves.
    pub fn of_policy(policy: Policy) -> Vec<EncryptionScheme> {
        match policy {
            Policy::Clear => vec![EncryptionScheme::NoEncryption],
            Policy::Envelope => vec![EncryptionScheme::EnvelopeEncryption],
            Policy::Cenc => vec![EncryptionScheme::CommonEncryptionCenc],
            Policy::Cbcs => vec![EncryptionScheme::CommonEncryptionCbcs],
            Policy::MultiDrm => vec![EncryptionScheme::CommonEncryptionCenc, EncryptionScheme::CommonEncryptionCbcs],
        }
    }
}

/// What a streaming policy means to the origin.
#[derive(Debug, Clone)]
pub struct PolicyTerms {
    pub policy: Policy,
    /// DRM signalling from the policy's licence templates.
    pub drm: DrmConfig,
    /// Download paths (`/{locator}/{file}`) are served.
    pub downloads: bool,
    /// Manifests and segments are served.
    pub streaming: bool,
}

/// The predefined policies: built in, listed by GET, never stored.
pub const PREDEFINED_POLICIES: [&str; 6] = [
    "Predefined_DownloadOnly",
    "Predefined_ClearStreamingOnly",
    "Predefined_DownloadAndClearStreaming",
    "Predefined_ClearKey",
    "Predefined_MultiDrmCencStreaming",
    "Predefined_MultiDrmStreaming",
];

/// A predefined policy by name (case-insensitive, as AMS resource names are).
pub fn predefined_policy(name: &str) -> Option<(&'static str, StreamingPolicyProperties)> {
    let name = PREDEFINED_POLICIES.into_iter().find(|p| p.eq_ignore_ascii_case(name))?;
    let protocols = |download, dash, hls| Some(EnabledProtocols { download, dash, hls, smooth_streaming: dash });
    let clear = |p| StreamingPolicyProperties {
        no_encryption: Some(NoEncryption { enabled_protocols: p }),
        ..Default::default()
    };
    let cenc = || CommonEncryption {
        enabled_protocols: protocols(false, true, false),
        drm: Some(DrmTemplates {
            play_ready: Some(LicenseTemplate::default()),
            widevine: Some(LicenseTemplate::default()),
            fair_play: None,
        }),
        ..Default::default()
    };
    let properties = match name {
        "Predefined_DownloadOnly" => {
            clear(Some(EnabledProtocols { download: true, dash: false, hls: false, smooth_streaming: false }))
        }
        "Predefined_ClearStreamingOnly" => clear(Some(EnabledProtocols::STREAMING)),
        "Predefined_DownloadAndClearStreaming" => clear(protocols(true, true, true)),
        "Predefined_ClearKey" => StreamingPolicyProperties {
            envelope_encryption: Some(EnvelopeEncryption {
                enabled_protocols: Some(EnabledProtocols::STREAMING),
                ..Default::default()
            }),
            ..Default::default()
        },
        "Predefined_MultiDrmCencStreaming" => {
            StreamingPolicyProperties { common_encryption_cenc: Some(cenc()), ..Default::default() }
        }
        _ => StreamingPolicyProperties {
            common_encryption_cenc: Some(cenc()),
            common_encryption_cbcs: Some(CommonEncryption {
                enabled_protocols: protocols(false, false, true),
                drm: Some(DrmTemplates {
                    fair_play: Some(LicenseTemplate { allow_persistent_license: Some(false), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    Some((name, properties))
}

impl StreamingPolicyProperties {
    /// The schemes the policy enables, each with its protocols (absent = every streaming
    /// protocol), in AMS's order.
    pub fn schemes(&self) -> Vec<(EncryptionScheme, EnabledProtocols)> {
        let or_streaming = |p: Option<EnabledProtocols>| p.unwrap_or(EnabledProtocols::STREAMING);
        let mut schemes = Vec::new();
        if let Some(n) = &self.no_encryption {
            schemes.push((EncryptionScheme::NoEncryption, or_streaming(n.enabled_protocols)));
        }
        if let Some(e) = &self.envelope_encryption {
            schemes.push((EncryptionScheme::EnvelopeEncryption, or_streaming(e.enabled_protocols)));
        }
        if let Some(c) = &self.common_encryption_cenc {
            schemes.push((EncryptionScheme::CommonEncryptionCenc, or_streaming(c.enabled_protocols)));
        }
        if let Some(c) = &self.common_encryption_cbcs {
            schemes.push((EncryptionScheme::CommonEncryptionCbcs, or_streaming(c.enabled_protocols)));
        }
        schemes
    }

    /// The scheme a locator's content keys are for: the first encrypting one.
    pub fn key_scheme(&self) -> Option<EncryptionScheme> {
        self.schemes().into_iter().map(|(s, _)| s).find(|s| *s != EncryptionScheme::NoEncryption)
    }

    /// The content key policy the policy names, if any.
    pub fn content_key_policy_name(&self) -> Option<&str> {
        fn default_key(keys: &Option<PolicyContentKeys>) -> Option<&str> {
            keys.as_ref()?.default_key.as_ref()?.policy_name.as_deref()
        }
        self.default_content_key_policy_name
            .as_deref()
            .or_else(|| self.envelope_encryption.as_ref().and_then(|e| default_key(&e.content_keys)))
            .or_else(|| self.common_encryption_cenc.as_ref().and_then(|c| default_key(&c.content_keys)))
            .or_else(|| self.common_encryption_cbcs.as_ref().and_then(|c| default_key(&c.content_keys)))
    }

    pub fn check(&self) -> Result<(), String> {
        self.terms().map(|_| ())
    }

    /// What the origin makes of the policy; an error names the field it cannot serve.
    pub fn terms(&self) -> Result<PolicyTerms, String> {
        let schemes = self.schemes();
        if schemes.is_empty() {
            return refuse(
                "properties",
                "give one of noEncryption, envelopeEncryption, commonEncryptionCenc, commonEncryptionCbcs",
            );
        }
        let encrypting: Vec<EncryptionScheme> =
            schemes.iter().map(|(s, _)| *s).filter(|s| *s != EncryptionScheme::NoEncryption).collect();
        let policy = match encrypting[..] {
            [] => Policy::Clear,
            [EncryptionScheme::EnvelopeEncryption] => Policy::Envelope,
            [EncryptionScheme::CommonEncryptionCenc] => Policy::Cenc,
            [EncryptionScheme::CommonEncryptionCbcs] => Policy::Cbcs,
            [EncryptionScheme::CommonEncryptionCenc, EncryptionScheme::CommonEncryptionCbcs] => Policy::MultiDrm,
            _ => return refuse("properties", "this origin serves a policy with one scheme, or with commonEncryptionCenc and commonEncryptionCbcs together"),
        };
        if policy != Policy::Clear && self.no_encryption.is_some() {
            return refuse("properties.noEncryption", "cannot be combined with an encrypting scheme");
        }
        let mut drm = DrmConfig::default();
        for (field, common) in [
            ("commonEncryptionCenc", &self.common_encryption_cenc),
            ("commonEncryptionCbcs", &self.common_encryption_cbcs),
        ] {
            let Some(common) = common else { continue };
            if !common.clear_tracks.is_empty() {
                return refuse(
                    &format!("properties.{field}.clearTracks"),
                    "clear tracks are not supported: every track is encrypted",
                );
            }
            if common.content_keys.as_ref().is_some_and(|k| !k.key_to_track_mappings.is_empty()) {
                return refuse(
                    &format!("properties.{field}.contentKeys.keyToTrackMappings"),
                    "not supported: one key encrypts every track",
                );
            }
            let template = |t: &Option<LicenseTemplate>| {
                t.as_ref().and_then(|t| t.custom_license_acquisition_url_template.as_deref()).map(origin_template)
            };
            if let Some(d) = &common.drm {
                drm.playready_license_url = drm.playready_license_url.or(template(&d.play_ready));
                drm.widevine_license_url = drm.widevine_license_url.or(template(&d.widevine));
                if d.fair_play.is_some() && field == "commonEncryptionCenc" {
                    return refuse(
                        "properties.commonEncryptionCenc.drm.fairPlay",
                        "FairPlay needs commonEncryptionCbcs",
                    );
                }
                drm.fairplay_key_uri = drm.fairplay_key_uri.or(template(&d.fair_play));
            }
            if let Some(ck) = &common.clear_key_encryption_configuration {
                drm.clearkey_license_url = drm
                    .clearkey_license_url
                    .or(ck.custom_keys_acquisition_url_template.as_deref().map(origin_template));
            }
        }
        if let Some(e) = &self.envelope_encryption {
            if !e.clear_tracks.is_empty() {
                return refuse(
                    "properties.envelopeEncryption.clearTracks",
                    "clear tracks are not supported: every track is encrypted",
                );
            }
        }
        drm.systems().validate().or_else(|e| refuse("properties.commonEncryption*.drm", e))?;
        let enabled = |f: fn(&EnabledProtocols) -> bool| schemes.iter().any(|(_, p)| f(p));
        let streaming = enabled(|p| p.dash || p.hls || p.smooth_streaming);
        let downloads = enabled(|p| p.download);
        if !streaming && !downloads {
            return refuse("properties.*.enabledProtocols", "enables no protocol");
        }
        if downloads && policy != Policy::Clear {
            return refuse("properties.*.enabledProtocols.download", "downloads are served clear only");
        }
        Ok(PolicyTerms { policy, drm, downloads, streaming })
    }
}

/// An AMS licence URL template in the origin's spelling.
fn origin_template(template: &str) -> String {
    template.replace("{ContentKeyId}", "{kid_uuid}").replace("{AlternativeMediaId}", "{locator}")
}

// ---------------------------------------------------------------------------------------
// Content key policies

/// `contentKeyPolicies/{name}`: who may have a locator's keys from the origin's key endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentKeyPolicyProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<ContentKeyPolicyOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentKeyPolicyOption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_option_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub configuration: KeyDeliveryConfiguration,
    pub restriction: KeyRestriction,
}

/// How a key is delivered. The origin delivers keys itself (AES-128 key endpoint, ClearKey
/// licences); Widevine and PlayReady licences come from the servers the streaming policy
/// names, so their configurations are kept but not acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@odata.type", deny_unknown_fields)]
pub enum KeyDeliveryConfiguration {
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration")]
    ClearKey {},
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyWidevineConfiguration")]
    Widevine {
        #[serde(rename = "widevineTemplate")]
        widevine_template: String,
    },
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyPlayReadyConfiguration")]
    PlayReady(Map<String, Value>),
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyUnknownConfiguration")]
    Unknown {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@odata.type", deny_unknown_fields)]
pub enum KeyRestriction {
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyOpenRestriction")]
    Open {},
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyTokenRestriction")]
    Token(TokenRestriction),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenRestriction {
    pub issuer: String,
    pub audience: String,
    pub primary_verification_key: TokenKey,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternate_verification_keys: Vec<TokenKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<TokenClaim>,
    /// Only `Jwt`.
    pub restriction_token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_connect_discovery_document: Option<String>,
}

/// A token verification key; the symmetric key is a secret (sealed in the store, shown by
/// `getPolicyPropertiesWithSecrets` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@odata.type", deny_unknown_fields)]
pub enum TokenKey {
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicySymmetricTokenKey")]
    Symmetric {
        #[serde(rename = "keyValue", default)]
        key_value: Option<String>,
    },
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyRsaTokenKey")]
    Rsa { exponent: String, modulus: String },
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyX509CertificateTokenKey")]
    X509 {
        #[serde(rename = "rawBody")]
        raw_body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenClaim {
    pub claim_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_value: Option<String>,
}

impl ContentKeyPolicyProperties {
    pub fn check(&self) -> Result<(), String> {
        let access = self.key_access()?;
        if let KeyAccess::Token(policy) = &access {
            TokenVerifier::new(policy)
                .or_else(|e| refuse(&format!("{}.restriction", self.delivering_option_field()), e))?;
        }
        Ok(())
    }

    /// The option that governs the origin's key delivery: the first ClearKey one, else the
    /// first.
    fn delivering_option(&self) -> Option<(usize, &ContentKeyPolicyOption)> {
        let clear_key = |o: &&ContentKeyPolicyOption| matches!(o.configuration, KeyDeliveryConfiguration::ClearKey {});
        self.options.iter().enumerate().find(|(_, o)| clear_key(o)).or_else(|| self.options.iter().enumerate().next())
    }

    fn delivering_option_field(&self) -> String {
        format!("properties.options[{}]", self.delivering_option().map_or(0, |(i, _)| i))
    }

    /// Who may fetch keys under this policy, as the key endpoint checks it (symmetric keys
    /// opened, when read from the store).
    pub fn key_access(&self) -> Result<KeyAccess, String> {
        let Some((i, option)) = self.delivering_option() else {
            return refuse("properties.options", "at least one option is required");
        };
        let field = format!("properties.options[{i}].restriction");
        let token = match &option.restriction {
            KeyRestriction::Open {} => return Ok(KeyAccess::Open),
            KeyRestriction::Token(token) => token,
        };
        if token.restriction_token_type != "Jwt" {
            return refuse(&format!("{field}.restrictionTokenType"), "only Jwt is supported");
        }
        if token.open_id_connect_discovery_document.is_some() {
            return refuse(
                &format!("{field}.openIdConnectDiscoveryDocument"),
                "not supported: give the verification keys",
            );
        }
        let mut require_content_key_claim = false;
        for (c, claim) in token.required_claims.iter().enumerate() {
            if claim.claim_type != CONTENT_KEY_CLAIM || claim.claim_value.is_some() {
                return refuse(
                    &format!("{field}.requiredClaims[{c}]"),
                    format!("only the claim type {CONTENT_KEY_CLAIM} without a value is supported"),
                );
            }
            require_content_key_claim = true;
        }
        let (mut hs256_secret_base64, mut rs256_public_key_pem) = (None, None);
        let keys = std::iter::once(("primaryVerificationKey".to_string(), &token.primary_verification_key)).chain(
            token
                .alternate_verification_keys
                .iter()
                .enumerate()
                .map(|(k, key)| (format!("alternateVerificationKeys[{k}]"), key)),
        );
        for (name, key) in keys {
            let key_field = format!("{field}.{name}");
            match key {
                TokenKey::Symmetric { key_value: Some(value) } if hs256_secret_base64.is_none() => {
                    hs256_secret_base64 = Some(value.clone())
                }
                TokenKey::Symmetric { key_value: None } => return refuse(&format!("{key_field}.keyValue"), "required"),
                TokenKey::Rsa { exponent, modulus } if rs256_public_key_pem.is_none() => {
                    rs256_public_key_pem = Some(rsa_public_pem(&key_field, modulus, exponent)?)
                }
                TokenKey::X509 { .. } => {
                    return refuse(
                        &key_field,
                        "X.509 certificate keys are not supported: give the RSA key as exponent and modulus",
                    )
                }
                _ => return refuse(&key_field, "one symmetric and one RSA key at most"),
            }
        }
        Ok(KeyAccess::Token(TokenPolicy {
            issuer: token.issuer.clone(),
            audience: token.audience.clone(),
            hs256_secret_base64,
            rs256_public_key_pem,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_content_key_claim,
        }))
    }

    /// Applies `f` to every symmetric key (sealing before a store write, opening after a read).
    pub fn map_secrets(&mut self, mut f: impl FnMut(&str) -> Result<String, String>) -> Result<(), String> {
        for key in self.token_keys_mut() {
            if let TokenKey::Symmetric { key_value: Some(value) } = key {
                *value = f(value)?;
            }
        }
        Ok(())
    }

    /// The policy as GET shows it: symmetric keys removed.
    pub fn without_secrets(mut self) -> Self {
        for key in self.token_keys_mut() {
            if let TokenKey::Symmetric { key_value } = key {
                *key_value = None;
            }
        }
        self
    }

    fn token_keys_mut(&mut self) -> impl Iterator<Item = &mut TokenKey> {
        self.options
            .iter_mut()
            .filter_map(|o| match &mut o.restriction {
                KeyRestriction::Token(t) => Some(
                    std::iter::once(&mut t.primary_verification_key).chain(t.alternate_verification_keys.iter_mut()),
                ),
                KeyRestriction::Open {} => None,
            })
            .flatten()
    }
}

/// An RSA public key PEM (PKCS#1) from AMS's base64 big-endian modulus and exponent.
fn rsa_public_pem(field: &str, modulus: &str, exponent: &str) -> Result<String, String> {
    use pkcs1::der::Encode;
    let decode = |name: &str, text: &str| {
        crate::protect::decode_base64(text).ok_or_else(|| format!("{field}.{name}: not base64"))
    };
    let (n, e) = (decode("modulus", modulus)?, decode("exponent", exponent)?);
    let number = |name: &str| format!("{field}.{name}: not a number");
    let key = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(&n).map_err(|_| number("modulus"))?,
        public_exponent: pkcs1::UintRef::new(&e).map_err(|_| number("exponent"))?,
    };
    let der = key.to_der().map_err(|_| format!("{field}: not an RSA key"))?;
    Ok(pem::encode(&pem::Pem::new("RSA PUBLIC KEY", der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_name_the_field() {
        let e = parse::<Resource<StreamingLocatorProperties>>(br#"{"properties":{"assetName":"a","colour":1}}"#)
            .unwrap_err();
        assert!(e.starts_with("properties") && e.contains("colour"), "{e}");
        let e =
            parse::<Resource<StreamingLocatorProperties>>(br#"{"properties":{"contentKeys":[{"id":"x","bogus":1}]}}"#)
                .unwrap_err();
        assert!(e.starts_with("properties.contentKeys[0]") && e.contains("bogus"), "{e}");
        let e = parse::<Resource<AssetProperties>>(b"{").unwrap_err();
        assert!(e.contains("EOF"), "{e}");

        let locator = |json: &str| {
            parse::<Resource<StreamingLocatorProperties>>(json.as_bytes()).unwrap().properties.check().unwrap_err()
        };
        let e = locator(
            r#"{"properties":{"assetName":"a","streamingPolicyName":"p","contentKeys":[{"id":"6d1a1a55-1c9d-4b70-8b47-1c6fc6e2a9a1","value":"AAAA"}]}}"#,
        );
        assert_eq!(e, "properties.contentKeys[0].value: must be base64 of 16 bytes");
        let e = locator(
            r#"{"properties":{"assetName":"a","streamingPolicyName":"p","startTime":"2026-01-02T00:00:00Z","endTime":"2026-01-01T00:00:00Z"}}"#,
        );
        assert!(e.starts_with("properties.endTime:"), "{e}");
        assert_eq!(locator(r#"{"properties":{"streamingPolicyName":"p"}}"#), "properties.assetName: required");
    }

    #[test]
    fn generated_keys_are_complete_and_hidden_from_get() {
        let mut locator = StreamingLocatorProperties {
            asset_name: "a".into(),
            streaming_policy_name: "Predefined_ClearKey".into(),
            ..Default::default()
        };
        let (_, policy) = predefined_policy("predefined_clearkey").unwrap();
        locator.complete_keys(policy.key_scheme());
        locator.check().unwrap();
        let keys = locator.content_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(locator.content_keys[0].key_type.as_deref(), Some("EnvelopeEncryption"));
        let shown = serde_json::to_string(&locator.clone().without_secrets()).unwrap();
        assert!(!shown.contains("\"value\""), "{shown}");
        locator.map_secrets(|v| Ok(format!("sealed:{v}"))).unwrap();
        assert!(locator.content_keys[0].value.as_deref().unwrap().starts_with("sealed:"));
    }

    #[test]
    fn predefined_policies_map_onto_the_origins_policies() {
        let expect = [
            ("Predefined_DownloadOnly", Policy::Clear, true, false),
            ("Predefined_ClearStreamingOnly", Policy::Clear, false, true),
            ("Predefined_DownloadAndClearStreaming", Policy::Clear, true, true),
            ("Predefined_ClearKey", Policy::Envelope, false, true),
            ("Predefined_MultiDrmCencStreaming", Policy::Cenc, false, true),
            ("Predefined_MultiDrmStreaming", Policy::MultiDrm, false, true),
        ];
        for (name, policy, downloads, streaming) in expect {
            let terms = predefined_policy(name).unwrap().1.terms().unwrap();
            assert_eq!((terms.policy, terms.downloads, terms.streaming), (policy, downloads, streaming), "{name}");
        }
        let custom: Resource<StreamingPolicyProperties> = parse(
            br#"{"properties":{"commonEncryptionCbcs":{"enabledProtocols":{"download":false,"dash":false,"hls":true,"smoothStreaming":false},
                "drm":{"fairPlay":{"customLicenseAcquisitionUrlTemplate":"skd://keys/{ContentKeyId}","allowPersistentLicense":false}}}}}"#,
        )
        .unwrap();
        let terms = custom.properties.terms().unwrap();
        assert_eq!(terms.policy, Policy::Cbcs);
        assert_eq!(terms.drm.fairplay_key_uri.as_deref(), Some("skd://keys/{kid_uuid}"));
    }

    #[test]
    fn rsa_keys_given_as_modulus_and_exponent_verify_rs256_tokens() {
        use crate::protect::token::tests::{RSA_A_PRIVATE_PKCS1, RSA_A_PUBLIC_PKCS1};
        use pkcs1::der::Decode;
        let public = pem::parse(RSA_A_PUBLIC_PKCS1).unwrap();
        let key = pkcs1::RsaPublicKey::from_der(public.contents()).unwrap();
        let (modulus, exponent) = (base64(key.modulus.as_bytes()), base64(key.public_exponent.as_bytes()));
        let json = format!(
            r##"{{"properties":{{"options":[{{"configuration":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}},
            "restriction":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyTokenRestriction","issuer":"iss","audience":"aud",
            "primaryVerificationKey":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyRsaTokenKey","exponent":"{exponent}","modulus":"{modulus}"}},
            "restrictionTokenType":"Jwt"}}}}]}}}}"##
        );
        let policy: Resource<ContentKeyPolicyProperties> = parse(json.as_bytes()).unwrap();
        let KeyAccess::Token(token_policy) = policy.properties.key_access().unwrap() else { panic!("open") };
        let verifier = TokenVerifier::new(&token_policy).unwrap();
        let private = pem::parse(RSA_A_PRIVATE_PKCS1).unwrap();
        let claims = serde_json::json!({"iss": "iss", "aud": "aud", "exp": jsonwebtoken::get_current_timestamp() + 60});
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let token =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_der(private.contents()))
                .unwrap();
        assert!(verifier.verify(&token).is_ok());
    }

    #[test]
    fn token_restrictions_become_key_access() {
        let secret = base64(&[7u8; 32]);
        let json = format!(
            r##"{{"properties":{{"options":[{{"name":"ck","configuration":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}},
            "restriction":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyTokenRestriction","issuer":"iss","audience":"aud",
            "primaryVerificationKey":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicySymmetricTokenKey","keyValue":"{secret}"}},
            "requiredClaims":[{{"claimType":"{CONTENT_KEY_CLAIM}"}}],"restrictionTokenType":"Jwt"}}}}]}}}}"##
        );
        let policy: Resource<ContentKeyPolicyProperties> = parse(json.as_bytes()).unwrap();
        policy.properties.check().unwrap();
        let KeyAccess::Token(token) = policy.properties.key_access().unwrap() else { panic!("open") };
        assert!(token.require_content_key_claim && token.hs256_secret_base64 == Some(secret.clone()));
        let shown = serde_json::to_string(&policy.properties.clone().without_secrets()).unwrap();
        assert!(!shown.contains(&secret), "{shown}");

        let short = json.replace(&secret, &base64(&[7u8; 8]));
        let e =
            parse::<Resource<ContentKeyPolicyProperties>>(short.as_bytes()).unwrap().properties.check().unwrap_err();
        assert!(e.starts_with("properties.options[0].restriction") && e.contains("32"), "{e}");
        let unknown = json.replace("\"issuer\"", "\"colour\":1,\"issuer\"");
        assert!(parse::<Resource<ContentKeyPolicyProperties>>(unknown.as_bytes()).unwrap_err().contains("colour"));
    }
}
