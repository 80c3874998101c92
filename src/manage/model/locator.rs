//! `streamingLocators/{name}`: a published URL id of an asset, with its content keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{base64, check_name, parse_guid, random_16, refuse, EncryptionScheme};
use crate::protect::ContentKey;

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
    pub fn complete_keys(&mut self, key_type: Option<EncryptionScheme>) -> Result<(), String> {
        if key_type.is_some() && self.content_keys.is_empty() {
            self.content_keys.push(StreamingLocatorContentKey::default());
        }
        for key in &mut self.content_keys {
            if key.id.is_empty() {
                key.id = uuid::Uuid::from_bytes(random_16()?).hyphenated().to_string();
            }
            if key.value.is_none() {
                key.value = Some(base64(&random_16()?));
            }
            key.key_type = key_type.map(|t| t.as_str().to_string());
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::model::predefined_policy;

    #[test]
    fn generated_keys_are_complete_and_hidden_from_get() {
        let mut locator = StreamingLocatorProperties {
            asset_name: "a".into(),
            streaming_policy_name: "Predefined_ClearKey".into(),
            ..Default::default()
        };
        let (_, policy) = predefined_policy("predefined_clearkey").unwrap();
        locator.complete_keys(policy.key_scheme()).unwrap();
        locator.check().unwrap();
        let keys = locator.content_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(locator.content_keys[0].key_type.as_deref(), Some("EnvelopeEncryption"));
        let shown = serde_json::to_string(&locator.clone().without_secrets()).unwrap();
        assert!(!shown.contains("\"value\""), "{shown}");
        locator.map_secrets(|v| Ok(format!("sealed:{v}"))).unwrap();
        assert!(locator.content_keys[0].value.as_deref().unwrap().starts_with("sealed:"));
    }
}
