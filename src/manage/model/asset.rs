//! `assets/{name}`: a folder in a storage account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::refuse;

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
    /// The asset's folder inside the storage account (AMS: the blob container); a new asset
    /// without one gets `asset-{assetId}`, as AMS names it.
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
        if let Some(container) = self.container.as_deref() {
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
        }
        if let Some(format) = self.storage_encryption_format.as_deref() {
            if format != "None" {
                return refuse("properties.storageEncryptionFormat", "only \"None\" is supported");
            }
        }
        Ok(())
    }
}
