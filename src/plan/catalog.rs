//! What the origin publishes right now: its locators and the filters their manifests may
//! name. One immutable value, built from the config file and, when a store is configured,
//! from the management documents; the origin swaps in a new one when the store changes, and a
//! request keeps the catalog it started with.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plan::filter::Filter;
use crate::plan::live_event::LiveEvent;
use crate::plan::locator::Locator;

/// Locators by id, account filters by name, asset filters by asset and name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Keyed by the lower-cased id: locator ids are GUIDs, which URLs spell in either case.
    locators: HashMap<String, Arc<Locator>>,
    account_filters: HashMap<String, Arc<Filter>>,
    asset_filters: HashMap<String, HashMap<String, Arc<Filter>>>,
    /// Live events by name.
    live_events: HashMap<String, Arc<LiveEvent>>,
}

impl Catalog {
    /// Adds `locator`, replacing one with the same id.
    pub fn insert_locator(&mut self, locator: Locator) {
        self.locators.insert(locator.id.to_ascii_lowercase(), Arc::new(locator));
    }

    /// Adds an account filter (one every locator's manifests may name), replacing one with the
    /// same name.
    pub fn insert_account_filter(&mut self, filter: Filter) {
        self.account_filters.insert(filter.name.clone(), Arc::new(filter));
    }

    /// Adds a filter of the asset `asset_name`, replacing one with the same name.
    pub fn insert_asset_filter(&mut self, asset_name: &str, filter: Filter) {
        self.asset_filters.entry(asset_name.to_string()).or_default().insert(filter.name.clone(), Arc::new(filter));
    }

    /// Adds a live event, replacing one with the same name.
    pub fn insert_live_event(&mut self, event: LiveEvent) {
        self.live_events.insert(event.name.clone(), Arc::new(event));
    }

    /// The live event `name`.
    pub fn live_event(&self, name: &str) -> Option<&Arc<LiveEvent>> {
        self.live_events.get(name)
    }

    pub fn live_events(&self) -> impl Iterator<Item = &Arc<LiveEvent>> {
        self.live_events.values()
    }

    /// The live event whose access token is `token` (RTMP names no event, only its token).
    pub fn live_event_by_token(&self, token: &str) -> Option<&Arc<LiveEvent>> {
        self.live_events.values().find(|e| e.accepts_token(token))
    }

    /// The locator `id` (any case).
    pub fn locator(&self, id: &str) -> Option<&Arc<Locator>> {
        match self.locators.get(id) {
            Some(locator) => Some(locator),
            None if id.bytes().any(|b| b.is_ascii_uppercase()) => self.locators.get(&id.to_ascii_lowercase()),
            None => None,
        }
    }

    pub fn locators(&self) -> impl Iterator<Item = &Arc<Locator>> {
        self.locators.values()
    }

    pub fn account_filters(&self) -> impl Iterator<Item = &Arc<Filter>> {
        self.account_filters.values()
    }

    /// The filter `name` as manifests of the asset `asset_name` see it: the asset's own filter
    /// of that name shadows the account filter, as in AMS.
    pub fn filter(&self, asset_name: Option<&str>, name: &str) -> Option<&Arc<Filter>> {
        asset_name
            .and_then(|asset| self.asset_filters.get(asset))
            .and_then(|filters| filters.get(name))
            .or_else(|| self.account_filters.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::locator::StreamingPolicy;
    use crate::source::storage::Storage;

    fn locator(id: &str) -> Locator {
        Locator {
            id: id.into(),
            storage: Arc::new(Storage::local("t", env!("CARGO_MANIFEST_DIR")).unwrap()),
            asset_folder: "fixtures/ladder".into(),
            asset_name: Some("ladder".into()),
            start_time: None,
            end_time: None,
            streaming: true,
            downloads: false,
            policy: StreamingPolicy::Clear,
            default_filters: vec![],
            key_access: None,
            url_signing_key: None,
        }
    }

    fn filter(name: &str, start_secs: u64) -> Filter {
        let definition = serde_json::from_value(serde_json::json!({
            "presentationTimeRange": {"startTimestamp": start_secs, "timescale": 1}
        }))
        .unwrap();
        Filter { name: name.into(), definition }
    }

    fn start_of(filter: &Filter) -> Option<u64> {
        filter.definition.presentation_time_range.as_ref().and_then(|r| r.start_timestamp)
    }

    #[test]
    fn locator_ids_match_in_any_case() {
        let mut catalog = Catalog::default();
        catalog.insert_locator(locator("8D3C4F0E-2B1A-4C55-9A77-0C1E5A6B7D01"));
        for id in ["8d3c4f0e-2b1a-4c55-9a77-0c1e5a6b7d01", "8D3C4F0E-2B1A-4C55-9A77-0C1E5A6B7D01"] {
            assert!(catalog.locator(id).is_some(), "{id}");
        }
        assert!(catalog.locator("8d3c4f0e").is_none());
    }

    #[test]
    fn asset_filter_shadows_account_filter_of_its_name() {
        let mut catalog = Catalog::default();
        catalog.insert_account_filter(filter("trim", 1));
        catalog.insert_asset_filter("ladder", filter("trim", 2));
        assert_eq!(start_of(catalog.filter(Some("ladder"), "trim").unwrap()), Some(2));
        assert_eq!(start_of(catalog.filter(Some("other"), "trim").unwrap()), Some(1));
        assert_eq!(start_of(catalog.filter(None, "trim").unwrap()), Some(1));
        assert!(catalog.filter(Some("ladder"), "none").is_none());
    }
}
