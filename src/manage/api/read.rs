//! GET of one resource and lists, with `$top` / `$skiptoken` paging.

use serde_json::{json, Value};

use super::{to_value, Answer, Api, Call, Properties};
use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::{
    predefined_policy, AssetProperties, ContentKeyPolicyProperties, LiveEventProperties, LiveOutputProperties,
    StreamingLocatorProperties, StreamingPolicyProperties, PREDEFINED_POLICIES,
};
use crate::manage::route::Collection;
use crate::plan::filter::FilterDefinition;
use crate::plan::locator::Locator;

impl Api {
    pub(super) async fn get(&self, call: &Call, collection: &Collection, name: &str) -> ApiResult<Value> {
        let not_found = || ApiError::not_found(format!("{} '{name}' not found", collection.kind()));
        let properties = match collection {
            Collection::StreamingPolicies => {
                if let Some((name, properties)) = predefined_policy(name) {
                    return Ok(call.resource(collection, name, to_value(properties)?));
                }
                self.get_shown::<StreamingPolicyProperties>(collection, name).await?
            }
            Collection::StreamingLocators => {
                match self.get_shown::<StreamingLocatorProperties>(collection, name).await? {
                    None => self.config_locator(name).map(|l| to_value(config_locator_properties(&l))).transpose()?,
                    found => found,
                }
            }
            Collection::Assets => self.get_shown::<AssetProperties>(collection, name).await?,
            Collection::ContentKeyPolicies => self.get_shown::<ContentKeyPolicyProperties>(collection, name).await?,
            Collection::AccountFilters => match self.config_filter(name) {
                Some(filter) => Some(to_value(&filter.definition)?),
                None => self.get_shown::<FilterDefinition>(collection, name).await?,
            },
            Collection::AssetFilters(_) => self.get_shown::<FilterDefinition>(collection, name).await?,
            Collection::LiveEvents => {
                let found = self.stored::<LiveEventProperties>(&Self::doc_path(collection, name)?, false).await?;
                found.map(|(_, event)| to_value(self.shown_event(event))).transpose()?
            }
            Collection::LiveOutputs(_) => self.get_shown::<LiveOutputProperties>(collection, name).await?,
        };
        properties.map(|p| call.resource(collection, name, p)).ok_or_else(not_found)
    }

    async fn get_shown<P: Properties>(&self, collection: &Collection, name: &str) -> ApiResult<Option<Value>> {
        let found = self.stored::<P>(&Self::doc_path(collection, name)?, false).await?;
        found.map(|(_, p)| to_value(p.shown())).transpose()
    }

    // -----------------------------------------------------------------------------------
    // List, with `$top` / `$skiptoken` paging

    pub(super) async fn list(&self, call: &Call, collection: &Collection) -> ApiResult<Answer> {
        let mut items: Vec<(String, Value)> = match collection {
            Collection::Assets => self.list_shown::<AssetProperties>(collection).await?,
            Collection::StreamingLocators => {
                let mut items = self.list_shown::<StreamingLocatorProperties>(collection).await?;
                let config = self.origin.config_catalog().locators();
                for l in config {
                    items.push((l.id.clone(), to_value(config_locator_properties(l))?));
                }
                items
            }
            Collection::StreamingPolicies => {
                let mut items = self.list_shown::<StreamingPolicyProperties>(collection).await?;
                let predefined = PREDEFINED_POLICIES.iter().filter_map(|name| predefined_policy(name));
                for (name, p) in predefined {
                    items.push((name.to_string(), to_value(p)?));
                }
                items
            }
            Collection::ContentKeyPolicies => self.list_shown::<ContentKeyPolicyProperties>(collection).await?,
            Collection::AccountFilters => {
                // The config file's filters come first: a stored one of the same name is not
                // published.
                let config = self.origin.config_catalog().account_filters();
                let mut items: Vec<(String, Value)> =
                    config.map(|f| Ok((f.name.clone(), to_value(&f.definition)?))).collect::<ApiResult<_>>()?;
                let stored = self.list_shown::<FilterDefinition>(collection).await?;
                items.extend(stored.into_iter().filter(|(name, _)| self.config_filter(name).is_none()));
                items
            }
            Collection::AssetFilters(asset) => {
                if !self.exists(&Collection::Assets, asset).await? {
                    return Err(ApiError::not_found(format!("asset '{asset}' not found")));
                }
                self.list_shown::<FilterDefinition>(collection).await?
            }
            Collection::LiveEvents => {
                let events = self.stored_all::<LiveEventProperties>(collection).await?;
                events
                    .into_iter()
                    .map(|(name, e)| Ok((name, to_value(self.shown_event(e))?)))
                    .collect::<ApiResult<_>>()?
            }
            Collection::LiveOutputs(event) => {
                if !self.exists(&Collection::LiveEvents, event).await? {
                    return Err(ApiError::not_found(format!("liveEvents '{event}' not found")));
                }
                self.list_shown::<LiveOutputProperties>(collection).await?
            }
        };
        items.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(token) = &call.skip_token {
            items.retain(|(name, _)| name > token);
        }
        let more = items.len() > call.top;
        items.truncate(call.top);
        // The next page starts after the last name of this one.
        let next = items.last().map(|(last, _)| last.clone()).filter(|_| more);
        let value: Vec<Value> = items.into_iter().map(|(name, p)| call.resource(collection, &name, p)).collect();
        let mut page = json!({ "value": value });
        if let Some(last) = next {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("api-version", &call.api_version)
                .append_pair("$top", &call.top.to_string())
                .append_pair("$skiptoken", &last)
                .finish();
            page["@odata.nextLink"] = Value::String(format!("{}?{query}", call.base_url));
        }
        Ok(Answer::ok(page))
    }

    async fn list_shown<P: Properties>(&self, collection: &Collection) -> ApiResult<Vec<(String, Value)>> {
        let stored = self.stored_all::<P>(collection).await?;
        stored.into_iter().map(|(name, p)| Ok((name, to_value(p.shown())?))).collect()
    }
}

/// A configuration locator as the API lists it (read-only). Its policy is named
/// `config-{policy}`: configuration policies are not streaming policy resources.
fn config_locator_properties(locator: &Locator) -> StreamingLocatorProperties {
    StreamingLocatorProperties {
        asset_name: locator.asset_folder.clone(),
        streaming_locator_id: Some(locator.id.clone()),
        streaming_policy_name: format!("config-{}", locator.policy.kind().as_str()),
        start_time: locator.start_time.map(Into::into),
        end_time: locator.end_time.map(Into::into),
        filters: locator.default_filters.clone(),
        ..StreamingLocatorProperties::default()
    }
}
