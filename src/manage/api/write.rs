//! PUT, PATCH and DELETE: every check before the first store write.

use chrono::Utc;
use http::StatusCode;
use serde_json::Value;

use super::{to_value, Answer, Api, Call, Properties};
use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::{
    self, parse, predefined_policy, AssetProperties, ContentKeyPolicyProperties, Resource, StreamingLocatorProperties,
    StreamingPolicyProperties,
};
use crate::manage::route::Collection;
use crate::plan::filter::FilterDefinition;

impl Api {
    pub(super) async fn put(&self, call: &Call, collection: &Collection, name: &str, patch: bool) -> ApiResult<Answer> {
        call.caller.may_change()?;
        self.writable(collection, name)?;
        let immutable =
            || ApiError::method_not_allowed(format!("{} cannot be patched: they are immutable", collection.kind()));
        let (status, properties) = match collection {
            Collection::Assets => {
                let (status, p) =
                    self.upsert(call, collection, name, patch, |p, old| self.prepare_asset(p, old)).await?;
                (status, to_value(p)?)
            }
            Collection::ContentKeyPolicies => {
                let (status, p) = self.upsert(call, collection, name, patch, prepare_key_policy).await?;
                (status, to_value(p)?)
            }
            Collection::AccountFilters => {
                let (status, p) = self.upsert::<FilterDefinition>(call, collection, name, patch, |_, _| Ok(())).await?;
                (status, to_value(p)?)
            }
            Collection::AssetFilters(asset) => {
                if !self.exists(&Collection::Assets, asset).await? {
                    return Err(ApiError::not_found(format!("asset '{asset}' not found")));
                }
                let (status, p) = self.upsert::<FilterDefinition>(call, collection, name, patch, |_, _| Ok(())).await?;
                (status, to_value(p)?)
            }
            Collection::StreamingPolicies if patch => return Err(immutable()),
            Collection::StreamingPolicies => self.put_policy(call, name).await?,
            Collection::StreamingLocators if patch => return Err(immutable()),
            Collection::StreamingLocators => self.put_locator(call, name).await?,
            Collection::LiveEvents => {
                let (status, event) = self.put_live_event(call, name, patch).await?;
                (status, to_value(self.shown_event(event))?)
            }
            Collection::LiveOutputs(_) if patch => return Err(immutable()),
            Collection::LiveOutputs(event) => {
                let (status, output) = self.put_live_output(call, event, name).await?;
                (status, to_value(output)?)
            }
        };
        Ok(Answer { status, body: Some(call.resource(collection, name, properties)) })
    }

    /// Creates or replaces a mutable resource (PUT), or patches it (PATCH: a JSON merge
    /// patch of its properties, RFC 7386). `prepare` fills the server's fields, given the
    /// stored version if there is one.
    pub(super) async fn upsert<P: Properties>(
        &self,
        call: &Call,
        collection: &Collection,
        name: &str,
        patch: bool,
        prepare: impl FnOnce(&mut P, Option<&P>) -> ApiResult<()>,
    ) -> ApiResult<(StatusCode, P)> {
        let path = Self::doc_path(collection, name)?;
        let existing = self.stored::<P>(&path, true).await?;
        let mut properties: P = if patch {
            let Some((_, current)) = &existing else {
                return Err(ApiError::not_found(format!("{} '{name}' not found", collection.kind())));
            };
            let patch = parse::<Resource<Value>>(&call.body).map_err(ApiError::bad_request)?.properties;
            let mut merged = to_value(current.clone())?;
            merge_patch(&mut merged, &patch);
            model::parse_properties(merged).map_err(ApiError::bad_request)?
        } else {
            parse::<Resource<P>>(&call.body).map_err(ApiError::bad_request)?.properties
        };
        properties.check().map_err(ApiError::bad_request)?;
        prepare(&mut properties, existing.as_ref().map(|(_, p)| p))?;
        let body = self.document(collection, name, properties.clone())?;
        let status = match &existing {
            None => {
                self.store.create(&path, body).await?;
                StatusCode::CREATED
            }
            Some((document, _)) => {
                self.store.replace(document, body).await?;
                StatusCode::OK
            }
        };
        Ok((status, properties.shown()))
    }

    fn prepare_asset(&self, asset: &mut AssetProperties, existing: Option<&AssetProperties>) -> ApiResult<()> {
        let storage = asset.storage_account_name.clone().or_else(|| self.default_storage.clone());
        let Some(storage) = storage.filter(|s| self.origin.storage(s).is_some()) else {
            return Err(ApiError::bad_request(format!(
                "properties.storageAccountName: no [[storage]] account named '{}'",
                asset.storage_account_name.as_deref().unwrap_or_default()
            )));
        };
        let now = Utc::now();
        asset.storage_account_name = Some(storage);
        let asset_id = existing.and_then(|e| e.asset_id.clone()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // AMS scripts often create an asset without a container and upload into the one the
        // answer names: AMS calls it `asset-{assetId}`, and so do we. A replacing PUT without
        // one keeps the asset's folder.
        let container = asset.container.take().or_else(|| existing.and_then(|e| e.container.clone()));
        asset.container = Some(container.unwrap_or_else(|| format!("asset-{asset_id}")));
        asset.asset_id = Some(asset_id);
        asset.created = existing.and_then(|e| e.created).or(Some(now));
        asset.last_modified = Some(now);
        asset.storage_encryption_format = Some("None".into());
        Ok(())
    }

    /// A streaming policy (immutable: the same body again is 200, another is 409).
    async fn put_policy(&self, call: &Call, name: &str) -> ApiResult<(StatusCode, Value)> {
        if predefined_policy(name).is_some() {
            return Err(ApiError::bad_request(format!(
                "'{name}' is a predefined streaming policy and cannot be changed"
            )));
        }
        let collection = Collection::StreamingPolicies;
        let mut policy =
            parse::<Resource<StreamingPolicyProperties>>(&call.body).map_err(ApiError::bad_request)?.properties;
        policy.check().map_err(ApiError::bad_request)?;
        if let Some(key_policy) = policy.content_key_policy_name() {
            if !self.exists(&Collection::ContentKeyPolicies, key_policy).await? {
                return Err(ApiError::bad_request(format!(
                    "properties.defaultContentKeyPolicyName: no content key policy '{key_policy}'"
                )));
            }
        }
        let path = Self::doc_path(&collection, name)?;
        if let Some((_, stored)) = self.stored::<StreamingPolicyProperties>(&path, false).await? {
            policy.created = stored.created;
            return if policy == stored {
                Ok((StatusCode::OK, to_value(stored)?))
            } else {
                Err(ApiError::conflict(format!(
                    "streaming policy '{name}' exists with other properties: policies are immutable"
                )))
            };
        }
        policy.created = Some(Utc::now());
        self.store.create(&path, self.document(&collection, name, policy.clone())?).await?;
        Ok((StatusCode::CREATED, to_value(policy)?))
    }

    /// A streaming locator (immutable: the same request again is 200, another is 409).
    async fn put_locator(&self, call: &Call, name: &str) -> ApiResult<(StatusCode, Value)> {
        let collection = Collection::StreamingLocators;
        let mut locator =
            parse::<Resource<StreamingLocatorProperties>>(&call.body).map_err(ApiError::bad_request)?.properties;
        locator.check().map_err(ApiError::bad_request)?;
        let path = Self::doc_path(&collection, name)?;
        if let Some((_, stored)) = self.stored::<StreamingLocatorProperties>(&path, true).await? {
            return if same_locator_request(&stored, &locator) {
                Ok((StatusCode::OK, to_value(stored.without_secrets())?))
            } else {
                Err(ApiError::conflict(format!(
                    "streaming locator '{name}' exists with other properties: locators are immutable (delete it and create a new one)"
                )))
            };
        }
        let policy = self.checked_references(&locator).await?;
        let id = match &locator.streaming_locator_id {
            Some(id) => model::parse_guid("properties.streamingLocatorId", id).map_err(ApiError::bad_request)?,
            None => uuid::Uuid::new_v4(),
        };
        let id = id.hyphenated().to_string();
        let taken =
            self.origin.config_catalog().locator(&id).is_some()
                || self.stored_all::<StreamingLocatorProperties>(&collection).await?.iter().any(|(_, other)| {
                    other.streaming_locator_id.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(&id))
                });
        if taken {
            return Err(ApiError::conflict(format!("properties.streamingLocatorId: {id} is used by another locator")));
        }
        locator.streaming_locator_id = Some(id);
        locator.complete_keys(policy.key_scheme()).map_err(ApiError::internal)?;
        locator.created = Some(Utc::now());
        self.store.create(&path, self.document(&collection, name, locator.clone())?).await?;
        Ok((StatusCode::CREATED, to_value(locator.without_secrets())?))
    }

    /// Checks that everything a new locator names exists: its asset, streaming policy, key
    /// policies and filters. Returns the streaming policy.
    async fn checked_references(&self, locator: &StreamingLocatorProperties) -> ApiResult<StreamingPolicyProperties> {
        let asset = &locator.asset_name;
        if !self.exists(&Collection::Assets, asset).await? {
            return Err(ApiError::bad_request(format!("properties.assetName: no asset '{asset}'")));
        }
        let policy_name = &locator.streaming_policy_name;
        let policy = match predefined_policy(policy_name) {
            Some((_, policy)) => policy,
            None => {
                let path = Self::doc_path(&Collection::StreamingPolicies, policy_name).map_err(|_| {
                    ApiError::bad_request(format!(
                        "properties.streamingPolicyName: no streaming policy '{policy_name}'"
                    ))
                })?;
                match self.stored::<StreamingPolicyProperties>(&path, false).await? {
                    Some((_, policy)) => policy,
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "properties.streamingPolicyName: no streaming policy '{policy_name}'"
                        )))
                    }
                }
            }
        };
        if policy.key_scheme().is_none() && !locator.content_keys.is_empty() {
            return Err(ApiError::bad_request(format!(
                "properties.contentKeys: streaming policy '{policy_name}' does not encrypt"
            )));
        }
        let key_policies = std::iter::once((
            "properties.defaultContentKeyPolicyName".to_string(),
            &locator.default_content_key_policy_name,
        ))
        .chain(
            locator
                .content_keys
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("properties.contentKeys[{i}].policyName"), &k.policy_name)),
        );
        for (field, key_policy) in key_policies {
            if let Some(key_policy) = key_policy {
                if !self.exists(&Collection::ContentKeyPolicies, key_policy).await? {
                    return Err(ApiError::bad_request(format!("{field}: no content key policy '{key_policy}'")));
                }
            }
        }
        for (i, filter) in locator.filters.iter().enumerate() {
            let known = self.exists(&Collection::AssetFilters(asset.clone()), filter).await?
                || self.exists(&Collection::AccountFilters, filter).await?
                || self.config_filter(filter).is_some();
            if !known {
                return Err(ApiError::bad_request(format!(
                    "properties.filters[{i}]: no asset or account filter '{filter}'"
                )));
            }
        }
        Ok(policy)
    }

    // -----------------------------------------------------------------------------------
    // DELETE: 200 when deleted, 204 when there was nothing (as AMS)

    pub(super) async fn delete(&self, call: &Call, collection: &Collection, name: &str) -> ApiResult<Answer> {
        call.caller.may_change()?;
        self.writable(collection, name)?;
        match collection {
            Collection::StreamingPolicies if predefined_policy(name).is_some() => {
                return Err(ApiError::bad_request(format!("'{name}' is a predefined streaming policy")));
            }
            // Deleting an asset deletes its filters and locators first, as AMS does (its
            // media stay in storage).
            Collection::Assets if self.exists(collection, name).await? => {
                let filters = Collection::AssetFilters(name.to_string());
                for document in self.store.list(&filters.path()).await? {
                    self.store.delete(&document.path).await?;
                }
                let locators = self.stored_all::<StreamingLocatorProperties>(&Collection::StreamingLocators).await?;
                for (locator, _) in locators.iter().filter(|(_, l)| l.asset_name == name) {
                    self.store.delete(&Self::doc_path(&Collection::StreamingLocators, locator)?).await?;
                }
            }
            Collection::LiveEvents => self.delete_live_event(name).await?,
            Collection::LiveOutputs(event) => self.delete_live_output(event, name).await?,
            _ => {}
        }
        let deleted = self.store.delete(&Self::doc_path(collection, name)?).await?;
        Ok(Answer { status: if deleted { StatusCode::OK } else { StatusCode::NO_CONTENT }, body: None })
    }
}

fn prepare_key_policy(
    policy: &mut ContentKeyPolicyProperties,
    existing: Option<&ContentKeyPolicyProperties>,
) -> ApiResult<()> {
    let now = Utc::now();
    policy.policy_id = existing.and_then(|e| e.policy_id.clone()).or_else(|| Some(uuid::Uuid::new_v4().to_string()));
    policy.created = existing.and_then(|e| e.created).or(Some(now));
    policy.last_modified = Some(now);
    Ok(())
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Some(target) = target.as_object_mut() else { return };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Whether a PUT of an existing locator asks for what it already is (then 200, else 409):
/// every property the request gives matches; generated ones (id, keys) may be left out.
fn same_locator_request(stored: &StreamingLocatorProperties, request: &StreamingLocatorProperties) -> bool {
    let same_guid = |a: &str, b: &str| {
        let parse = |s: &str| model::parse_guid("", s).ok();
        parse(a).is_some() && parse(a) == parse(b)
    };
    stored.asset_name == request.asset_name
        && stored.streaming_policy_name.eq_ignore_ascii_case(&request.streaming_policy_name)
        && stored.start_time == request.start_time
        && stored.end_time == request.end_time
        && stored.default_content_key_policy_name == request.default_content_key_policy_name
        && stored.alternative_media_id == request.alternative_media_id
        && stored.filters == request.filters
        && request
            .streaming_locator_id
            .as_deref()
            .is_none_or(|id| stored.streaming_locator_id.as_deref().is_some_and(|s| same_guid(s, id)))
        && (request.content_keys.is_empty()
            || request.content_keys.len() == stored.content_keys.len()
                && request.content_keys.iter().zip(&stored.content_keys).all(|(r, s)| {
                    same_guid(&r.id, &s.id) && r.value.as_ref().is_none_or(|v| Some(v) == s.value.as_ref())
                }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 3});
        merge_patch(&mut target, &json!({"a": {"b": null, "x": 5}, "d": [9], "e": null}));
        assert_eq!(target, json!({"a": {"c": 2, "x": 5}, "d": [9]}));
    }
}
