//! What the store's documents publish: the origin's [`Catalog`], rebuilt from a snapshot of
//! the store on top of what the config file publishes, and kept current by a background
//! refresh on every replica.
//!
//! A streaming locator document becomes a locator with its asset's storage account and
//! folder, its streaming policy (predefined or a stored one) with the locator's content keys
//! (opened with the [`Sealer`]), the key access of its content key policy, its window and its
//! default filters. A document that does not build (a missing asset or policy, a key that does
//! not open, an id the config file uses) is skipped with a warning naming it, counted in
//! `jit_store_documents_skipped`, and never stops the others from publishing.
//!
//! Account and asset filter documents become the filters manifests may name; an account
//! filter cannot take the name of a filter of the config file (those are account filters too).
//!
//! A live event document with a live output becomes a live event recording into the output's
//! asset (its storage account and folder), with the output's DVR window; it cannot take the
//! name or the token of a live event of the config file.
//!
//! The refresh reads the store every `refresh_secs`, and publishes a new catalog when a
//! document changed; a failed read keeps the last state published, and says so in `/readyz`
//! and the metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::manage::model::{
    self, predefined_policy, AssetProperties, ContentKeyPolicyProperties, LiveEventProperties, LiveOutputProperties,
    Resource, StreamingLocatorProperties, StreamingPolicyProperties,
};
use crate::plan::catalog::Catalog;
use crate::plan::filter::{Filter, FilterDefinition};
use crate::plan::live_event::LiveEvent;
use crate::plan::locator::{Locator, StreamingPolicy};
use crate::protect::token::{KeyAccess, TokenVerifier};
use crate::secret::Secret;
use crate::serve::origin::Origin;
use crate::source::storage::Storage;
use crate::store::{
    live_outputs, DocPath, Document, Sealer, Snapshot, Store, ACCOUNT_FILTERS, ASSETS, CONTENT_KEY_POLICIES,
    LIVE_EVENTS, STREAMING_LOCATORS, STREAMING_POLICIES,
};

/// A document that does not publish, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub path: DocPath,
    pub reason: String,
}

/// The catalog the documents of `snapshot` publish on top of `origin`'s config catalog.
/// Assets without `storageAccountName` live in `default_storage` (the first account
/// configured).
pub fn build(
    origin: &Origin,
    default_storage: Option<&str>,
    snapshot: &Snapshot,
    sealer: &Sealer,
) -> (Catalog, Vec<Skipped>) {
    let mut catalog = origin.config_catalog().clone();
    let mut skipped = Vec::new();
    let by_path = snapshot.documents.iter().map(|d| ((d.path.collection.as_str(), d.path.name.as_str()), d)).collect();
    let documents = Documents { by_path, sealer };
    for document in snapshot.collection(STREAMING_LOCATORS) {
        let built = documents.locator(origin, default_storage, document).and_then(|locator| {
            match origin.config_catalog().locator(&locator.id) {
                Some(_) => Err(format!("streamingLocatorId {} is a locator of the config file", locator.id)),
                None => Ok(locator),
            }
        });
        match built {
            Ok(locator) => catalog.insert_locator(locator),
            Err(reason) => skipped.push(Skipped { path: document.path.clone(), reason }),
        }
    }
    for document in &snapshot.documents {
        let asset = document.path.filtered_asset();
        if asset.is_none() && document.path.collection != ACCOUNT_FILTERS {
            continue;
        }
        let built = filter(document).and_then(|filter| match asset {
            None if origin.config_catalog().filter(None, &filter.name).is_some() => {
                Err(format!("'{}' is a filter of the config file", filter.name))
            }
            _ => Ok(filter),
        });
        match (built, asset) {
            (Ok(filter), Some(asset)) => catalog.insert_asset_filter(asset, filter),
            (Ok(filter), None) => catalog.insert_account_filter(filter),
            (Err(reason), _) => skipped.push(Skipped { path: document.path.clone(), reason }),
        }
    }
    for document in snapshot.collection(LIVE_EVENTS) {
        let name = &document.path.name;
        // An event records once it has a live output; until then there is nothing to ingest into.
        let outputs = live_outputs(name);
        let Some(output) = snapshot.collection(&outputs).next() else { continue };
        let built = documents.live_event(origin, default_storage, document, output).and_then(|event| {
            let config = origin.config_catalog();
            if config.live_event(name).is_some() {
                Err(format!("'{name}' is a live event of the config file"))
            } else if config.live_events().any(|e| e.accepts_token(event.access_token.expose())) {
                Err("properties.input.accessToken: a live event of the config file has the same token".into())
            } else {
                Ok(event)
            }
        });
        match built {
            Ok(event) => catalog.insert_live_event(event),
            Err(reason) => skipped.push(Skipped { path: document.path.clone(), reason }),
        }
    }
    (catalog, skipped)
}

/// The live event `name` as it records into the asset of its live output: the asset's storage
/// account and folder, the output's DVR window and manifest name, the event's token.
pub fn live_event(
    origin: &Origin,
    default_storage: Option<&str>,
    name: &str,
    event: &LiveEventProperties,
    output: &LiveOutputProperties,
    asset: &AssetProperties,
) -> Result<LiveEvent, String> {
    let token = event.input.access_token.clone().ok_or("properties.input.accessToken: missing")?;
    let (storage, folder) = asset_location(origin, default_storage, &output.asset_name, asset)?;
    Ok(LiveEvent {
        name: name.to_string(),
        access_token: Secret::new(token),
        storage,
        folder,
        manifest_name: output.manifest_name.clone(),
        dvr_window_secs: output.dvr_window_secs()?,
    })
}

/// The storage account and folder of the asset `asset_name`; assets without an account are in
/// `default_storage`.
fn asset_location(
    origin: &Origin,
    default_storage: Option<&str>,
    asset_name: &str,
    asset: &AssetProperties,
) -> Result<(Arc<Storage>, String), String> {
    let container = asset.container.as_deref().ok_or_else(|| format!("asset '{asset_name}' has no container"))?;
    let account = asset.storage_account_name.as_deref().or(default_storage).unwrap_or_default();
    let storage = origin
        .storage(account)
        .cloned()
        .ok_or_else(|| format!("asset '{asset_name}': storage account '{account}' is not configured"))?;
    Ok((storage, container.trim_matches('/').to_string()))
}

/// The filter an account or asset filter document defines, named as the document.
fn filter(document: &Document) -> Result<Filter, String> {
    let definition: FilterDefinition = properties(document)?;
    definition.check()?;
    Ok(Filter { name: document.path.name.clone(), definition })
}

/// The documents of one snapshot by (collection, name), read as resources.
struct Documents<'a> {
    by_path: HashMap<(&'a str, &'a str), &'a Document>,
    sealer: &'a Sealer,
}

impl Documents<'_> {
    /// The properties of the document `name` of `collection`, if there is one.
    fn properties<P: DeserializeOwned + Default>(&self, collection: &str, name: &str) -> Result<Option<P>, String> {
        self.by_path.get(&(collection, name)).map(|document| properties(document)).transpose()
    }

    fn locator(&self, origin: &Origin, default_storage: Option<&str>, document: &Document) -> Result<Locator, String> {
        let mut locator: StreamingLocatorProperties = properties(document)?;
        let id = locator.streaming_locator_id.clone().ok_or("properties.streamingLocatorId: missing")?;
        let id = model::parse_guid("properties.streamingLocatorId", &id)?.hyphenated().to_string();

        let asset_name = locator.asset_name.clone();
        let asset: AssetProperties = self
            .properties(ASSETS, &asset_name)?
            .ok_or_else(|| format!("properties.assetName: asset '{asset_name}' does not exist"))?;
        let (storage, asset_folder) = asset_location(origin, default_storage, &asset_name, &asset)?;

        let policy_name = locator.streaming_policy_name.clone();
        let policy: StreamingPolicyProperties = match predefined_policy(&policy_name) {
            Some((_, predefined)) => predefined,
            None => self
                .properties(STREAMING_POLICIES, &policy_name)?
                .ok_or_else(|| format!("properties.streamingPolicyName: policy '{policy_name}' does not exist"))?,
        };
        let terms = policy.terms().map_err(|e| format!("streaming policy '{policy_name}': {e}"))?;

        locator.map_secrets(|sealed| self.sealer.open_text(sealed))?;
        let keys = locator.content_keys()?;
        let drm = terms.drm.systems();
        let streaming_policy = StreamingPolicy::new(terms.policy, &id, keys, drm)?;

        let key_policy_name = locator.default_content_key_policy_name.as_deref().or(policy.content_key_policy_name());
        let key_access = match key_policy_name {
            None => None,
            Some(name) => self.key_access(name)?,
        };

        Ok(Locator {
            id,
            storage,
            asset_folder,
            asset_name: Some(asset_name),
            start_time: locator.start_time.map(SystemTime::from),
            end_time: locator.end_time.map(SystemTime::from),
            streaming: terms.streaming,
            downloads: terms.downloads,
            policy: streaming_policy,
            default_filters: locator.filters,
            key_access,
            url_signing_key: None,
        })
    }

    /// The live event of an event document recording into the live output `output`.
    fn live_event(
        &self,
        origin: &Origin,
        default_storage: Option<&str>,
        event: &Document,
        output: &Document,
    ) -> Result<LiveEvent, String> {
        let event_properties: LiveEventProperties = properties(event)?;
        let output: LiveOutputProperties = properties(output)?;
        let asset_name = &output.asset_name;
        let asset: AssetProperties = self
            .properties(ASSETS, asset_name)?
            .ok_or_else(|| format!("live output's asset '{asset_name}' does not exist"))?;
        live_event(origin, default_storage, &event.path.name, &event_properties, &output, &asset)
    }

    /// Who may fetch keys under the content key policy `name`: `None` when anyone may.
    fn key_access(&self, name: &str) -> Result<Option<Arc<TokenVerifier>>, String> {
        let mut policy: ContentKeyPolicyProperties = self
            .properties(CONTENT_KEY_POLICIES, name)?
            .ok_or_else(|| format!("properties.defaultContentKeyPolicyName: policy '{name}' does not exist"))?;
        policy.map_secrets(|sealed| self.sealer.open_text(sealed))?;
        match policy.key_access().map_err(|e| format!("content key policy '{name}': {e}"))? {
            KeyAccess::Open => Ok(None),
            KeyAccess::Token(token) => {
                Ok(Some(Arc::new(TokenVerifier::new(&token).map_err(|e| format!("content key policy '{name}': {e}"))?)))
            }
        }
    }
}

/// A document's `properties`.
fn properties<P: DeserializeOwned + Default>(document: &Document) -> Result<P, String> {
    let resource: Resource<P> = model::parse(&document.body)?;
    Ok(resource.properties)
}

/// Reads the store every `interval` and publishes what it holds, for as long as the process
/// runs. The first read has happened when this is called ([`refresh`]).
pub async fn refresh_forever(
    origin: Arc<Origin>,
    store: Store,
    sealer: Sealer,
    default_storage: Option<String>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        refresh(&origin, &store, &sealer, default_storage.as_deref()).await;
    }
}

/// One read of the store: publishes a new catalog when a document changed; a failure keeps
/// the published one. Recorded in the metrics and in the health `/readyz` reports.
pub async fn refresh(origin: &Origin, store: &Store, sealer: &Sealer, default_storage: Option<&str>) {
    let metrics = &origin.metrics;
    let now = SystemTime::now();
    match store.snapshot().await {
        Ok(snapshot) => {
            metrics.store_refreshes.with_label_values(&["ok"]).inc();
            metrics.store_last_success.set(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64));
            let was_failing = origin.store_health().is_some_and(|h| h.failing.is_some());
            if was_failing {
                tracing::info!(store = %store.location(), "the store answers again");
            }
            let skipped = match snapshot.changed {
                true => publish(origin, store, sealer, default_storage, &snapshot),
                false => origin.store_health().map_or(0, |h| h.skipped),
            };
            metrics.store_documents.set(snapshot.documents.len() as i64);
            metrics.store_documents_skipped.set(skipped as i64);
            origin.update_store_health(|h| h.succeeded(now, snapshot.documents.len(), skipped));
        }
        Err(e) => {
            metrics.store_refreshes.with_label_values(&["error"]).inc();
            let error = e.to_string();
            if origin.store_health().is_none_or(|h| h.failing.is_none()) {
                let store = store.location();
                tracing::error!(%store, %error, "cannot read the store; serving the last state read");
            }
            origin.update_store_health(|h| h.failed(now, error));
        }
    }
}

/// Builds and publishes the catalog of `snapshot`; the number of documents skipped.
fn publish(
    origin: &Origin,
    store: &Store,
    sealer: &Sealer,
    default_storage: Option<&str>,
    snapshot: &Snapshot,
) -> usize {
    let (catalog, skipped) = build(origin, default_storage, snapshot, sealer);
    for s in &skipped {
        tracing::warn!(store = %store.location(), document = %s.path, reason = %s.reason, "document not published");
    }
    origin.publish(catalog);
    let (store, documents) = (store.location(), snapshot.documents.len());
    tracing::info!(%store, documents, skipped = skipped.len(), "published the store's state");
    skipped.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plan::locator::Policy;
    use crate::source::storage::Storage;
    use crate::store::{DocPath, StoreHealth};
    use bytes::Bytes;
    use serde_json::json;

    const CONFIG_LOCATOR: &str = "0b6c8d2e-1f3a-4b5c-8d7e-9f0a1b2c3d4e";

    fn origin() -> Origin {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"media\"\nurl = \"file://{}/fixtures\"\n\
             [[storage]]\nname = \"other\"\nurl = \"memory://\"\n\
             [[locator]]\nid = \"{CONFIG_LOCATOR}\"\nstorage = \"media\"\nasset = \"ladder\"\npolicy = \"clear\"\n\
             [[filter]]\nname = \"cfg\"\nend_secs = 4.0\n",
            env!("CARGO_MANIFEST_DIR")
        );
        Origin::from_config(&Config::parse(&text, std::path::PathBuf::new()).unwrap()).unwrap()
    }

    fn sealer() -> Sealer {
        Sealer::new(&[3; 32]).unwrap()
    }

    async fn put(store: &Store, collection: &str, name: &str, properties: serde_json::Value) {
        let body = json!({ "name": name, "properties": properties });
        store.create(&DocPath::new(collection, name).unwrap(), Bytes::from(body.to_string())).await.unwrap();
    }

    /// A store holding one asset, a clear locator, an envelope locator with a sealed key and a
    /// token-restricted key policy, and locators that cannot publish.
    async fn store() -> Store {
        let store =
            Store::new(Arc::new(Storage::new("docs", Arc::new(object_store::memory::InMemory::new()))), "").unwrap();
        let sealed = |key: &[u8]| {
            use base64::prelude::{Engine as _, BASE64_STANDARD};
            sealer().seal_text(&BASE64_STANDARD.encode(key))
        };
        put(&store, ASSETS, "ladder", json!({ "container": "ladder/", "storageAccountName": "media" })).await;
        put(&store, ASSETS, "elsewhere", json!({ "container": "ladder" })).await;
        put(&store, ASSETS, "nowhere", json!({ "container": "ladder", "storageAccountName": "gone" })).await;
        put(
            &store,
            STREAMING_LOCATORS,
            "clear",
            json!({
                "assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly",
                "streamingLocatorId": "8D3C4F0E-2B1A-4C55-9A77-0C1E5A6B7D99", "filters": ["sd"],
                "startTime": "2026-01-01T00:00:00Z", "endTime": "2027-01-01T00:00:00Z",
            }),
        )
        .await;
        put(&store, CONTENT_KEY_POLICIES, "token", json!({ "options": [{
            "configuration": { "@odata.type": "#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration" },
            "restriction": {
                "@odata.type": "#Microsoft.Media.ContentKeyPolicyTokenRestriction",
                "issuer": "https://issuer.example", "audience": "urn:audience", "restrictionTokenType": "Jwt",
                "primaryVerificationKey": {
                    "@odata.type": "#Microsoft.Media.ContentKeyPolicySymmetricTokenKey", "keyValue": sealed(&[9; 32]),
                },
            },
        }]}))
        .await;
        put(
            &store,
            STREAMING_LOCATORS,
            "envelope",
            json!({
                "assetName": "ladder", "streamingPolicyName": "Predefined_ClearKey",
                "streamingLocatorId": "11111111-2222-3333-4444-555555555555", "defaultContentKeyPolicyName": "token",
                "contentKeys": [{ "id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "value": sealed(&[5; 16]) }],
            }),
        )
        .await;
        put(
            &store,
            STREAMING_LOCATORS,
            "download",
            json!({
                "assetName": "elsewhere", "streamingPolicyName": "Predefined_DownloadOnly",
                "streamingLocatorId": "22222222-2222-3333-4444-555555555555",
            }),
        )
        .await;
        let other_seal = Sealer::new(&[4; 32]).unwrap().seal_text("BQUFBQUFBQUFBQUFBQUFBQ==");
        for (name, asset, policy, extra) in [
            ("no-asset", "absent", "Predefined_ClearStreamingOnly", json!({})),
            ("no-account", "nowhere", "Predefined_ClearStreamingOnly", json!({})),
            ("no-policy", "ladder", "Custom_Absent", json!({})),
            ("clash", "ladder", "Predefined_ClearStreamingOnly", json!({ "streamingLocatorId": CONFIG_LOCATOR })),
            (
                "clear-key",
                "ladder",
                "Predefined_ClearKey",
                json!({ "contentKeys": [{ "id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                                          "value": "BQUFBQUFBQUFBQUFBQUFBQ==" }] }),
            ),
            (
                "other-seal",
                "ladder",
                "Predefined_ClearKey",
                json!({ "contentKeys": [{ "id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "value": other_seal }] }),
            ),
            (
                "no-key-policy",
                "ladder",
                "Predefined_ClearStreamingOnly",
                json!({ "defaultContentKeyPolicyName": "absent" }),
            ),
        ] {
            let mut properties = json!({
                "assetName": asset, "streamingPolicyName": policy,
                "streamingLocatorId": uuid::Uuid::from_bytes(model::random_16().unwrap()).to_string(),
            });
            for (key, value) in extra.as_object().unwrap() {
                properties[key] = value.clone();
            }
            put(&store, STREAMING_LOCATORS, name, properties).await;
        }
        let video = json!({ "tracks": [{
            "trackSelections": [{ "property": "Type", "operation": "Equal", "value": "Video" }],
        }] });
        put(&store, ACCOUNT_FILTERS, "sd", video.clone()).await;
        put(&store, ACCOUNT_FILTERS, "cfg", video.clone()).await;
        put(&store, ACCOUNT_FILTERS, "unknown-property", json!({ "colour": "red" })).await;
        let first_seconds = json!({ "presentationTimeRange": { "endTimestamp": 2000, "timescale": 1000 } });
        put(&store, &crate::store::asset_filters("ladder"), "sd", first_seconds).await;
        store
    }

    #[tokio::test]
    async fn locator_documents_publish_on_top_of_the_config_and_bad_ones_are_skipped() {
        let (origin, store) = (origin(), store().await);
        let snapshot = store.snapshot().await.unwrap();
        let (catalog, skipped) = build(&origin, Some("other"), &snapshot, &sealer());

        let clear = catalog.locator("8d3c4f0e-2b1a-4c55-9a77-0c1e5a6b7d99").expect("clear locator, any case");
        assert_eq!((clear.asset_folder.as_str(), clear.asset_name.as_deref()), ("ladder", Some("ladder")));
        assert_eq!((clear.policy.kind(), clear.streaming, clear.downloads), (Policy::Clear, true, false));
        assert_eq!(clear.default_filters, ["sd"]);
        assert_eq!(clear.storage.name(), "media");
        let year = |t: Option<SystemTime>| t.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!((year(clear.start_time), year(clear.end_time)), (1_767_225_600, 1_798_761_600));

        let envelope = catalog.locator("11111111-2222-3333-4444-555555555555").unwrap();
        assert_eq!(envelope.policy.kind(), Policy::Envelope);
        let key = envelope.policy.keys().unwrap().first();
        assert_eq!(
            (key.kid, key.key),
            ([0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xcc, 0xcc, 0xdd, 0xdd, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee], [5; 16])
        );
        assert!(envelope.key_access.is_some(), "the token restriction applies");

        let download = catalog.locator("22222222-2222-3333-4444-555555555555").unwrap();
        assert_eq!((download.streaming, download.downloads), (false, true));
        assert_eq!(download.storage.name(), "other", "an asset without an account is in the first one");

        assert!(catalog.locator(CONFIG_LOCATOR).is_some(), "config locators stay");
        let end = |f: &Filter| f.definition.presentation_time_range.as_ref().and_then(|r| r.end_timestamp);
        assert_eq!(end(catalog.filter(None, "cfg").unwrap()), Some(40_000_000), "config filters stay");
        assert_eq!(end(catalog.filter(Some("ladder"), "sd").unwrap()), Some(2000), "the asset's own filter");
        assert_eq!(catalog.filter(Some("elsewhere"), "sd").unwrap().definition.tracks.len(), 1, "the account's");
        assert_eq!(catalog.locators().count(), 4);
        let mut reasons: Vec<(String, String)> =
            skipped.iter().map(|s| (s.path.name.clone(), s.reason.clone())).collect();
        reasons.sort();
        let expected = [
            ("cfg", "is a filter of the config file"),
            ("clash", "is a locator of the config file"),
            ("clear-key", "not a sealed value"),
            ("no-account", "storage account 'gone' is not configured"),
            ("no-asset", "asset 'absent' does not exist"),
            ("no-key-policy", "policy 'absent' does not exist"),
            ("no-policy", "policy 'Custom_Absent' does not exist"),
            ("other-seal", "sealed with another key"),
            ("unknown-property", "colour"),
        ];
        assert_eq!(reasons.len(), expected.len(), "{reasons:#?}");
        for ((name, reason), (want_name, want)) in reasons.iter().zip(expected) {
            assert!(name == want_name && reason.contains(want), "{name}: {reason}");
        }
    }

    #[tokio::test]
    async fn live_events_with_an_output_publish_recording_into_its_asset() {
        let origin = origin();
        let store =
            Store::new(Arc::new(Storage::new("docs", Arc::new(object_store::memory::InMemory::new()))), "").unwrap();
        put(&store, ASSETS, "match", json!({ "container": "/live/match/", "storageAccountName": "media" })).await;
        let event = |token: &str| json!({ "input": { "streamingProtocol": "RTMP", "accessToken": token } });
        put(&store, LIVE_EVENTS, "ev", event("0123456789abcdef0123456789abcdef")).await;
        put(&store, LIVE_EVENTS, "idle", event("1123456789abcdef0123456789abcdef")).await;
        put(&store, LIVE_EVENTS, "short", event("2123456789abcdef0123456789abcdef")).await;
        let output =
            |window: &str| json!({ "assetName": "match", "archiveWindowLength": window, "manifestName": "final" });
        put(&store, &live_outputs("ev"), "out", output("PT30M")).await;
        put(&store, &live_outputs("short"), "out", output("PT10S")).await;
        let snapshot = store.snapshot().await.unwrap();
        let (catalog, skipped) = build(&origin, Some("media"), &snapshot, &sealer());

        let ev = catalog.live_event_by_token("0123456789abcdef0123456789abcdef").expect("ev publishes");
        assert_eq!((ev.name.as_str(), ev.folder.as_str(), ev.storage.name()), ("ev", "live/match", "media"));
        assert_eq!((ev.dvr_window_secs, ev.manifest_name.as_deref()), (1800, Some("final")));
        assert!(catalog.live_event("idle").is_none(), "an event without an output records nowhere");
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].path.name == "short" && skipped[0].reason.contains("properties.archiveWindowLength"));
    }

    #[tokio::test]
    async fn a_refresh_publishes_changes_and_an_outage_keeps_the_last_state() {
        let origin = origin();
        let store =
            Store::new(Arc::new(Storage::new("docs", Arc::new(object_store::memory::InMemory::new()))), "").unwrap();
        put(&store, ASSETS, "ladder", json!({ "container": "ladder" })).await;
        refresh(&origin, &store, &sealer(), Some("media")).await;
        assert_eq!(origin.catalog().locators().count(), 1);
        put(
            &store,
            STREAMING_LOCATORS,
            "new",
            json!({
                "assetName": "ladder", "streamingPolicyName": "Predefined_ClearStreamingOnly",
                "streamingLocatorId": "33333333-2222-3333-4444-555555555555",
            }),
        )
        .await;
        refresh(&origin, &store, &sealer(), Some("media")).await;
        assert!(origin.catalog().locator("33333333-2222-3333-4444-555555555555").is_some());
        let health: StoreHealth = origin.store_health().unwrap();
        assert_eq!((health.documents, health.skipped, health.failing.is_none()), (2, 0, true));

        // A store that does not answer: the published state stays.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let account = format!(
            "name = 'docs'\nurl = 's3://docs'\nendpoint = 'http://127.0.0.1:{port}'\nregion = 'us-east-1'\n\
             access_key_id = 'a'\nsecret_access_key = 'b'\nretries = 0"
        );
        let unreachable = Storage::open(&toml::from_str(&account).unwrap(), std::path::Path::new(".")).unwrap();
        let failing = Store::new(Arc::new(unreachable), "").unwrap();
        refresh(&origin, &failing, &sealer(), Some("media")).await;
        assert!(origin.catalog().locator("33333333-2222-3333-4444-555555555555").is_some());
        let described = origin.store_health().unwrap().describe(SystemTime::now());
        assert!(described.starts_with("store: failing since") && described.contains("2 documents"), "{described}");
        let metrics = String::from_utf8(origin.metrics.render()).unwrap();
        for line in [
            "jit_store_refresh_total{result=\"error\"} 1",
            "jit_store_refresh_total{result=\"ok\"} 2",
            "jit_store_documents 2",
        ] {
            assert!(metrics.contains(line), "{line} in\n{metrics}");
        }

        assert!(store.delete(&DocPath::new(STREAMING_LOCATORS, "new").unwrap()).await.unwrap());
        refresh(&origin, &store, &sealer(), Some("media")).await;
        assert!(origin.catalog().locator("33333333-2222-3333-4444-555555555555").is_none());
        assert!(origin.store_health().unwrap().describe(SystemTime::now()).starts_with("store: ok, 1 documents"));
    }
}
