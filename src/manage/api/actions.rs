//! The POST actions: `listStreamingLocators`, `listPaths`, `listContentKeys`,
//! `getPolicyPropertiesWithSecrets`, and live events' `start`, `stop` and `reset`.

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};

use super::{to_value, Answer, Api, Call};
use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::{
    predefined_policy, AssetProperties, ContentKeyPolicyProperties, EnabledProtocols, EncryptionScheme,
    StreamingLocatorContentKey, StreamingLocatorProperties, StreamingPolicyProperties,
};
use crate::manage::paths::list_paths;
use crate::manage::route::{Action, Collection};
use crate::plan::locator::Locator;

impl Api {
    pub(super) async fn action(
        &self,
        call: &Call,
        collection: &Collection,
        name: &str,
        action: Action,
    ) -> ApiResult<Answer> {
        let not_found = || ApiError::not_found(format!("{} '{name}' not found", collection.kind()));
        match action {
            Action::Start | Action::Stop | Action::Reset => {
                call.caller.may_change()?;
                return self.live_action(name, action, &call.body).await;
            }
            Action::ListStreamingLocators => {
                if !self.exists(collection, name).await? {
                    return Err(not_found());
                }
                let locators = self.stored_all::<StreamingLocatorProperties>(&Collection::StreamingLocators).await?;
                let listed: Vec<Value> = locators
                    .into_iter()
                    .filter(|(_, l)| l.asset_name == name)
                    .map(|(locator, l)| {
                        json!({
                            "name": locator,
                            "assetName": l.asset_name,
                            "created": l.created,
                            "startTime": l.start_time,
                            "endTime": l.end_time,
                            "streamingLocatorId": l.streaming_locator_id,
                            "streamingPolicyName": l.streaming_policy_name,
                            "defaultContentKeyPolicyName": l.default_content_key_policy_name,
                        })
                    })
                    .collect();
                Ok(json!({ "streamingLocators": listed }))
            }
            Action::ListPaths => self.paths(collection, name).await,
            Action::ListContentKeys => {
                call.caller.may_change()?;
                let stored =
                    self.stored::<StreamingLocatorProperties>(&Self::doc_path(collection, name)?, true).await?;
                match (stored, self.config_locator(name)) {
                    (Some((_, locator)), _) => Ok(json!({ "contentKeys": locator.content_keys })),
                    (None, Some(locator)) => Ok(json!({ "contentKeys": config_content_keys(&locator) })),
                    (None, None) => Err(not_found()),
                }
            }
            Action::GetPolicyPropertiesWithSecrets => {
                call.caller.may_change()?;
                let (_, policy) = self
                    .stored::<ContentKeyPolicyProperties>(&Self::doc_path(collection, name)?, true)
                    .await?
                    .ok_or_else(not_found)?;
                to_value(policy)
            }
        }
        .map(Answer::ok)
    }

    /// `listPaths` of a stored or configuration locator.
    async fn paths(&self, collection: &Collection, name: &str) -> ApiResult<Value> {
        let found = self.stored::<StreamingLocatorProperties>(&Self::doc_path(collection, name)?, false).await?;
        let Some((_, locator)) = found else {
            let locator = self
                .config_locator(name)
                .ok_or_else(|| ApiError::not_found(format!("streamingLocators '{name}' not found")))?;
            let schemes: Vec<(EncryptionScheme, EnabledProtocols)> = EncryptionScheme::of_policy(locator.policy.kind())
                .into_iter()
                .map(|s| (s, EnabledProtocols { download: locator.downloads, ..EnabledProtocols::STREAMING }))
                .collect();
            let paths =
                list_paths(&locator.id, &locator.storage, &locator.asset_folder, &schemes, locator.downloads).await?;
            return to_value(paths);
        };
        let asset_path = Self::doc_path(&Collection::Assets, &locator.asset_name)?;
        let (_, asset) = self
            .stored::<AssetProperties>(&asset_path, false)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("the locator's asset '{}' is gone", locator.asset_name)))?;
        let policy = match predefined_policy(&locator.streaming_policy_name) {
            Some((_, policy)) => policy,
            None => {
                let path = Self::doc_path(&Collection::StreamingPolicies, &locator.streaming_policy_name)?;
                self.stored::<StreamingPolicyProperties>(&path, false).await?.map(|(_, p)| p).ok_or_else(|| {
                    ApiError::not_found(format!(
                        "the locator's streaming policy '{}' is gone",
                        locator.streaming_policy_name
                    ))
                })?
            }
        };
        let terms = policy.terms().map_err(ApiError::internal)?;
        let storage_name = asset.storage_account_name.as_deref().unwrap_or_default();
        let storage = self.origin.storage(storage_name).ok_or_else(|| {
            ApiError::not_found(format!("the asset's storage account '{storage_name}' is not configured"))
        })?;
        let id = locator.streaming_locator_id.as_deref().unwrap_or_default();
        let folder = asset.container.as_deref().unwrap_or_default().trim_matches('/');
        let paths = list_paths(id, storage, folder, &policy.schemes(), terms.downloads).await?;
        to_value(paths)
    }
}

/// The content keys of a configuration locator as `listContentKeys` lists them: each key once
/// per encryption scheme its policy serves (AMS lists a key per scheme).
fn config_content_keys(locator: &Locator) -> Vec<StreamingLocatorContentKey> {
    let Some(keys) = locator.policy.keys() else { return Vec::new() };
    let schemes = EncryptionScheme::of_policy(locator.policy.kind());
    keys.all()
        .flat_map(|key| {
            schemes.iter().map(move |scheme| StreamingLocatorContentKey {
                id: uuid::Uuid::from_bytes(key.kid).hyphenated().to_string(),
                key_type: Some(scheme.as_str().to_string()),
                value: Some(BASE64_STANDARD.encode(key.key)),
                ..StreamingLocatorContentKey::default()
            })
        })
        .collect()
}
