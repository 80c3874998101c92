//! The Azure Media Services v3 resource model (REST API version 2022-08-01; MK.IO keeps it):
//! the JSON of assets, streaming locators, streaming policies and content key policies, as
//! the official SDKs send and read it. Request bodies refuse unknown fields, and every
//! `check` names the JSON field it refuses (`properties.contentKeys[0].value: …`), so a bad
//! request is a 400 that says what to fix.
//!
//! The store keeps these same documents (key material sealed), and the catalog turns them
//! into what the origin serves with [`StreamingPolicyProperties::terms`],
//! [`StreamingLocatorProperties::content_keys`] and [`ContentKeyPolicyProperties::key_access`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod asset;
mod key_policy;
pub mod live_event;
mod locator;
mod streaming_policy;

pub use asset::AssetProperties;
pub use key_policy::{
    ContentKeyPolicyOption, ContentKeyPolicyProperties, KeyDeliveryConfiguration, KeyRestriction, TokenClaim, TokenKey,
    TokenRestriction,
};
pub use live_event::{LiveEventProperties, LiveOutputProperties};
pub use locator::{StreamingLocatorContentKey, StreamingLocatorProperties};
pub use streaming_policy::{
    predefined_policy, ClearKeyEncryptionConfiguration, CommonEncryption, DefaultKey, DrmTemplates, EnabledProtocols,
    EncryptionScheme, EnvelopeEncryption, LicenseTemplate, NoEncryption, PolicyContentKeys, PolicyTerms,
    StreamingPolicyProperties, PREDEFINED_POLICIES,
};

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
    /// ARM tracked resources' (live events') region and tags: one origin is one region, so
    /// they are accepted and not kept.
    #[serde(default, skip_serializing)]
    pub location: Option<Value>,
    #[serde(default, skip_serializing)]
    pub tags: Option<Value>,
    #[serde(default)]
    pub properties: P,
}

/// Parses a JSON body; the error names the field (`properties.contentKeys[0].id: …`).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    // A body that is not JSON at all has no field to name: say where the syntax breaks.
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| format!("the body is not JSON: {e}"))?;
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
pub fn random_16() -> Result<[u8; 16], String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("the operating system's random source failed: {e}"))?;
    Ok(bytes)
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
}
