//! The management API's requests: authentication, routing, and each resource's GET, list,
//! PUT, PATCH, DELETE and actions over the document store.
//!
//! Every write is checked in full before the first store write (the body, and every name it
//! refers to), so a refused request leaves the store as it was. Writes are conditional
//! (create only if absent, replace only the version read), so concurrent writers get 409
//! rather than overwriting each other. Key material is sealed before it is stored and never
//! returned, except by `listContentKeys` and `getPolicyPropertiesWithSecrets`.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::manage::auth::{Auth, Caller};
use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::{
    self, parse, predefined_policy, AssetProperties, ContentKeyPolicyProperties, EnabledProtocols, EncryptionScheme,
    Resource, StreamingLocatorProperties, StreamingPolicyProperties, PREDEFINED_POLICIES,
};
use crate::manage::paths::list_paths;
use crate::manage::route::{self, Action, Collection, Route, Target};
use crate::plan::filter::{Filter, FilterDefinition};
use crate::plan::locator::Locator;
use crate::serve::origin::Origin;
use crate::store::{DocPath, Document, Sealer, Store};

/// The API version answered when a client names none (`api-version` is accepted, whatever
/// its value: the resource model is that of 2022-08-01).
const API_VERSION: &str = "2022-08-01";
/// Largest `$top`, and the page size without one.
const MAX_PAGE: usize = 1000;

/// What the API does with the properties of one kind of resource.
trait Properties: Serialize + DeserializeOwned + Default + Clone + Send + Sync {
    fn check(&self) -> Result<(), String>;
    /// Applies `f` to the key material (sealing, opening).
    fn map_secrets(&mut self, _f: &mut dyn FnMut(&str) -> Result<String, String>) -> Result<(), String> {
        Ok(())
    }
    /// The properties as GET shows them.
    fn shown(self) -> Self {
        self
    }
}

/// Implements [`Properties`] with each kind's own `check` and, for kinds holding key
/// material, its `map_secrets` and `without_secrets`.
macro_rules! properties {
    ($($kind:ty),*) => {$(
        impl Properties for $kind {
            fn check(&self) -> Result<(), String> {
                <$kind>::check(self)
            }
        }
    )*};
    (with secrets: $($kind:ty),*) => {$(
        impl Properties for $kind {
            fn check(&self) -> Result<(), String> {
                <$kind>::check(self)
            }
            fn map_secrets(&mut self, f: &mut dyn FnMut(&str) -> Result<String, String>) -> Result<(), String> {
                <$kind>::map_secrets(self, f)
            }
            fn shown(self) -> Self {
                self.without_secrets()
            }
        }
    )*};
}

properties!(AssetProperties, StreamingPolicyProperties, FilterDefinition);
properties!(with secrets: StreamingLocatorProperties, ContentKeyPolicyProperties);

/// A successful answer: its status and JSON body (none for 204).
struct Answer {
    status: StatusCode,
    body: Option<Value>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer { status: StatusCode::OK, body: Some(body) }
    }
}

/// One request as the handlers see it.
struct Call {
    route: Route,
    caller: Caller,
    /// `scheme://host/path` of the request, for `@odata.nextLink`.
    base_url: String,
    api_version: String,
    top: usize,
    skip_token: Option<String>,
    body: Bytes,
}

impl Call {
    /// The ARM id of `name` in `collection`, under the account prefix the client used.
    fn id(&self, collection: &Collection, name: &str) -> String {
        format!("{}/{}/{name}", self.route.account, collection.path())
    }

    /// A resource body: `{"name", "id", "type", "properties"}`.
    fn resource(&self, collection: &Collection, name: &str, properties: impl Serialize) -> Value {
        json!({
            "name": name,
            "id": self.id(collection, name),
            "type": collection.resource_type(),
            "properties": properties,
        })
    }
}

/// The management API over the store and the origin's configuration.
pub struct Api {
    store: Arc<Store>,
    sealer: Arc<Sealer>,
    origin: Arc<Origin>,
    auth: Auth,
    /// The storage account of assets that name none: the first `[[storage]]`.
    default_storage: Option<String>,
    max_body_bytes: usize,
}

impl Api {
    pub fn new(
        store: Arc<Store>,
        sealer: Arc<Sealer>,
        origin: Arc<Origin>,
        auth: Auth,
        default_storage: Option<String>,
        max_body_bytes: usize,
    ) -> Api {
        Api { store, sealer, origin, auth, default_storage, max_body_bytes }
    }

    /// Answers one request, which came over TLS when `https` (the scheme of the next links
    /// it gives); every change is logged with who made it.
    pub async fn handle<B>(&self, request: Request<B>, https: bool) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        match self.respond(request, https).await {
            Ok((answer, who)) => {
                // PUT, PATCH and DELETE change; GET and the POST actions only read.
                if [Method::PUT, Method::PATCH, Method::DELETE].contains(&method) {
                    tracing::info!(target: "jit_origin::audit", %who, %method, resource = %path, status = answer.status.as_u16(), "changed");
                }
                let mut response = Response::builder().status(answer.status).header(header::CACHE_CONTROL, "no-store");
                let body = match answer.body {
                    Some(body) => {
                        response = response.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
                        Bytes::from(body.to_string())
                    }
                    None => Bytes::new(),
                };
                response.body(Full::new(body)).expect("static headers are valid")
            }
            Err(e) => {
                if e.status.is_server_error() {
                    tracing::warn!(%method, resource = %path, error = %e.message, "API request failed");
                }
                e.into_response()
            }
        }
    }

    async fn respond<B>(&self, request: Request<B>, https: bool) -> ApiResult<(Answer, String)>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let caller = self.auth.caller(authorization)?;
        let route = route::parse(request.uri().path())?;
        let query = request.uri().query().unwrap_or("").to_string();
        let param = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        };
        // Lists come sorted by name: a filtered or reordered list asked for is refused rather
        // than answered unfiltered.
        if let Some(unsupported) = ["$filter", "$orderby"].into_iter().find(|p| param(p).is_some()) {
            return Err(ApiError::bad_request(format!("{unsupported}: not supported; lists are sorted by name")));
        }
        let top = match param("$top") {
            None => MAX_PAGE,
            Some(top) => match top.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => return Err(ApiError::bad_request(format!("$top: must be 1 to {MAX_PAGE}"))),
            },
        };
        let host = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
            .unwrap_or_else(|| "localhost".into());
        let method = request.method().clone();
        let scheme = if https { "https" } else { "http" };
        let base_url = format!("{scheme}://{host}{}", request.uri().path());
        let body = Limited::new(request.into_body(), self.max_body_bytes)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => ApiError::too_large(format!("the body is larger than {} bytes", self.max_body_bytes)),
                None => ApiError::bad_request(format!("the body could not be read: {e}")),
            })?
            .to_bytes();
        let call = Call {
            route,
            caller,
            base_url,
            api_version: param("api-version").unwrap_or_else(|| API_VERSION.into()),
            top,
            skip_token: param("$skiptoken"),
            body,
        };
        let answer = self.dispatch(&method, &call).await?;
        Ok((answer, call.caller.who))
    }

    async fn dispatch(&self, method: &Method, call: &Call) -> ApiResult<Answer> {
        match (&call.route.target, method) {
            (Target::List(collection), &Method::GET) => self.list(call, collection).await,
            (Target::One(collection, name), &Method::GET) => self.get(call, collection, name).await.map(Answer::ok),
            (Target::One(collection, name), &Method::PUT) => self.put(call, collection, name, false).await,
            (Target::One(collection, name), &Method::PATCH) => self.put(call, collection, name, true).await,
            (Target::One(collection, name), &Method::DELETE) => self.delete(call, collection, name).await,
            (Target::Action(collection, name, action), &Method::POST) => {
                self.action(call, collection, name, *action).await.map(Answer::ok)
            }
            _ => Err(ApiError::method_not_allowed(format!("{method} is not allowed here"))),
        }
    }

    // -----------------------------------------------------------------------------------
    // The store

    fn doc_path(collection: &Collection, name: &str) -> ApiResult<DocPath> {
        Ok(DocPath::new(&collection.path(), name)?)
    }

    /// A stored document with its properties, key material opened when `open`.
    async fn stored<P: Properties>(&self, path: &DocPath, open: bool) -> ApiResult<Option<(Document, P)>> {
        let Some(document) = self.store.get(path).await? else { return Ok(None) };
        let properties = self.properties_of(&document, open)?;
        Ok(Some((document, properties)))
    }

    fn properties_of<P: Properties>(&self, document: &Document, open: bool) -> ApiResult<P> {
        let mut properties = parse::<Resource<P>>(&document.body)
            .map_err(|e| ApiError::internal(format!("stored document {} does not read: {e}", document.path)))?
            .properties;
        if open {
            properties.map_secrets(&mut |sealed| self.sealer.open_text(sealed)).map_err(|_| {
                ApiError::internal(format!("a key of {} does not open with the store key", document.path))
            })?;
        }
        Ok(properties)
    }

    /// Every stored document of `collection` with its properties (key material sealed).
    async fn stored_all<P: Properties>(&self, collection: &Collection) -> ApiResult<Vec<(String, P)>> {
        let documents = self.store.list(&collection.path()).await?;
        documents.iter().map(|d| Ok((d.path.name.clone(), self.properties_of(d, false)?))).collect()
    }

    /// The document body stored for `properties`: key material sealed.
    fn document<P: Properties>(&self, collection: &Collection, name: &str, mut properties: P) -> ApiResult<Bytes> {
        properties.map_secrets(&mut |plain| Ok(self.sealer.seal_text(plain))).map_err(ApiError::internal)?;
        let resource = Resource {
            name: Some(name.to_string()),
            resource_type: Some(collection.resource_type()),
            properties,
            ..Resource::default()
        };
        Ok(Bytes::from(serde_json::to_vec(&resource).map_err(|e| ApiError::internal(e.to_string()))?))
    }

    async fn exists(&self, collection: &Collection, name: &str) -> ApiResult<bool> {
        Ok(self.store.get(&Self::doc_path(collection, name)?).await?.is_some())
    }

    fn config_locator(&self, name: &str) -> Option<Arc<Locator>> {
        self.origin.config_catalog().locator(name).cloned()
    }

    fn config_filter(&self, name: &str) -> Option<Arc<Filter>> {
        self.origin.config_catalog().filter(None, name).cloned()
    }

    /// Refuses a change of what the configuration file defines.
    fn writable(&self, collection: &Collection, name: &str) -> ApiResult<()> {
        let defined = match collection {
            Collection::StreamingLocators => self.config_locator(name).is_some(),
            Collection::AccountFilters => self.config_filter(name).is_some(),
            _ => false,
        };
        if defined {
            return Err(ApiError::conflict(format!(
                "{} '{name}' is defined in the configuration file: read-only",
                collection.kind()
            )));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // GET

    async fn get(&self, call: &Call, collection: &Collection, name: &str) -> ApiResult<Value> {
        let not_found = || ApiError::not_found(format!("{} '{name}' not found", collection.kind()));
        let properties = match collection {
            Collection::StreamingPolicies => {
                if let Some((name, properties)) = predefined_policy(name) {
                    return Ok(call.resource(collection, name, properties));
                }
                self.get_shown::<StreamingPolicyProperties>(collection, name).await?
            }
            Collection::StreamingLocators => {
                match self.get_shown::<StreamingLocatorProperties>(collection, name).await? {
                    None => self.config_locator(name).map(|l| to_value(config_locator_properties(&l))),
                    found => found,
                }
            }
            Collection::Assets => self.get_shown::<AssetProperties>(collection, name).await?,
            Collection::ContentKeyPolicies => self.get_shown::<ContentKeyPolicyProperties>(collection, name).await?,
            Collection::AccountFilters => match self.config_filter(name) {
                Some(filter) => Some(to_value(&filter.definition)),
                None => self.get_shown::<FilterDefinition>(collection, name).await?,
            },
            Collection::AssetFilters(_) => self.get_shown::<FilterDefinition>(collection, name).await?,
        };
        properties.map(|p| call.resource(collection, name, p)).ok_or_else(not_found)
    }

    async fn get_shown<P: Properties>(&self, collection: &Collection, name: &str) -> ApiResult<Option<Value>> {
        let found = self.stored::<P>(&Self::doc_path(collection, name)?, false).await?;
        Ok(found.map(|(_, p)| to_value(p.shown())))
    }

    // -----------------------------------------------------------------------------------
    // List, with `$top` / `$skiptoken` paging

    async fn list(&self, call: &Call, collection: &Collection) -> ApiResult<Answer> {
        let mut items: Vec<(String, Value)> = match collection {
            Collection::Assets => self.list_shown::<AssetProperties>(collection).await?,
            Collection::StreamingLocators => {
                let mut items = self.list_shown::<StreamingLocatorProperties>(collection).await?;
                let config = self.origin.config_catalog().locators();
                items.extend(config.map(|l| (l.id.clone(), to_value(config_locator_properties(l)))));
                items
            }
            Collection::StreamingPolicies => {
                let mut items = self.list_shown::<StreamingPolicyProperties>(collection).await?;
                let predefined = PREDEFINED_POLICIES.iter().filter_map(|name| predefined_policy(name));
                items.extend(predefined.map(|(name, p)| (name.to_string(), to_value(p))));
                items
            }
            Collection::ContentKeyPolicies => self.list_shown::<ContentKeyPolicyProperties>(collection).await?,
            Collection::AccountFilters => {
                // The config file's filters come first: a stored one of the same name is not
                // published.
                let config = self.origin.config_catalog().account_filters();
                let mut items: Vec<(String, Value)> =
                    config.map(|f| (f.name.clone(), to_value(&f.definition))).collect();
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
        };
        items.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(token) = &call.skip_token {
            items.retain(|(name, _)| name > token);
        }
        let more = items.len() > call.top;
        items.truncate(call.top);
        let mut page = json!({
            "value": items.iter().map(|(name, p)| call.resource(collection, name, p)).collect::<Vec<_>>(),
        });
        if let (true, Some((last, _))) = (more, items.last()) {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("api-version", &call.api_version)
                .append_pair("$top", &call.top.to_string())
                .append_pair("$skiptoken", last)
                .finish();
            page["@odata.nextLink"] = Value::String(format!("{}?{query}", call.base_url));
        }
        Ok(Answer::ok(page))
    }

    async fn list_shown<P: Properties>(&self, collection: &Collection) -> ApiResult<Vec<(String, Value)>> {
        let stored = self.stored_all::<P>(collection).await?;
        Ok(stored.into_iter().map(|(name, p)| (name, to_value(p.shown()))).collect())
    }

    // -----------------------------------------------------------------------------------
    // PUT and PATCH

    async fn put(&self, call: &Call, collection: &Collection, name: &str, patch: bool) -> ApiResult<Answer> {
        call.caller.may_change()?;
        self.writable(collection, name)?;
        let immutable =
            || ApiError::method_not_allowed(format!("{} cannot be patched: they are immutable", collection.kind()));
        let (status, properties) = match collection {
            Collection::Assets => {
                let (status, p) =
                    self.upsert(call, collection, name, patch, |p, old| self.prepare_asset(p, old)).await?;
                (status, to_value(p))
            }
            Collection::ContentKeyPolicies => {
                let (status, p) = self.upsert(call, collection, name, patch, prepare_key_policy).await?;
                (status, to_value(p))
            }
            Collection::AccountFilters => {
                let (status, p) = self.upsert::<FilterDefinition>(call, collection, name, patch, |_, _| Ok(())).await?;
                (status, to_value(p))
            }
            Collection::AssetFilters(asset) => {
                if !self.exists(&Collection::Assets, asset).await? {
                    return Err(ApiError::not_found(format!("asset '{asset}' not found")));
                }
                let (status, p) = self.upsert::<FilterDefinition>(call, collection, name, patch, |_, _| Ok(())).await?;
                (status, to_value(p))
            }
            Collection::StreamingPolicies if patch => return Err(immutable()),
            Collection::StreamingPolicies => self.put_policy(call, name).await?,
            Collection::StreamingLocators if patch => return Err(immutable()),
            Collection::StreamingLocators => self.put_locator(call, name).await?,
        };
        Ok(Answer { status, body: Some(call.resource(collection, name, properties)) })
    }

    /// Creates or replaces a mutable resource (PUT), or patches it (PATCH: a JSON merge
    /// patch of its properties, RFC 7386). `prepare` fills the server's fields, given the
    /// stored version if there is one.
    async fn upsert<P: Properties>(
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
            let mut merged = to_value(current.clone());
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
        asset.asset_id = existing.and_then(|e| e.asset_id.clone()).or_else(|| Some(uuid::Uuid::new_v4().to_string()));
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
                Ok((StatusCode::OK, to_value(stored)))
            } else {
                Err(ApiError::conflict(format!(
                    "streaming policy '{name}' exists with other properties: policies are immutable"
                )))
            };
        }
        policy.created = Some(Utc::now());
        self.store.create(&path, self.document(&collection, name, policy.clone())?).await?;
        Ok((StatusCode::CREATED, to_value(policy)))
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
                Ok((StatusCode::OK, to_value(stored.without_secrets())))
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
        locator.complete_keys(policy.key_scheme());
        locator.created = Some(Utc::now());
        self.store.create(&path, self.document(&collection, name, locator.clone())?).await?;
        Ok((StatusCode::CREATED, to_value(locator.without_secrets())))
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

    async fn delete(&self, call: &Call, collection: &Collection, name: &str) -> ApiResult<Answer> {
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
            _ => {}
        }
        let deleted = self.store.delete(&Self::doc_path(collection, name)?).await?;
        Ok(Answer { status: if deleted { StatusCode::OK } else { StatusCode::NO_CONTENT }, body: None })
    }

    // -----------------------------------------------------------------------------------
    // Actions

    async fn action(&self, call: &Call, collection: &Collection, name: &str, action: Action) -> ApiResult<Value> {
        let not_found = || ApiError::not_found(format!("{} '{name}' not found", collection.kind()));
        match action {
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
                if self.config_locator(name).is_some() {
                    return Err(ApiError::conflict(format!(
                        "the keys of configuration locator '{name}' are in the configuration file"
                    )));
                }
                let (_, locator) = self
                    .stored::<StreamingLocatorProperties>(&Self::doc_path(collection, name)?, true)
                    .await?
                    .ok_or_else(not_found)?;
                Ok(json!({ "contentKeys": locator.content_keys }))
            }
            Action::GetPolicyPropertiesWithSecrets => {
                call.caller.may_change()?;
                let (_, policy) = self
                    .stored::<ContentKeyPolicyProperties>(&Self::doc_path(collection, name)?, true)
                    .await?
                    .ok_or_else(not_found)?;
                Ok(to_value(policy))
            }
        }
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
            return Ok(to_value(paths));
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
        Ok(to_value(paths))
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

fn to_value(value: impl Serialize) -> Value {
    serde_json::to_value(value).expect("resource models serialize")
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
    let Value::Object(target) = target else { unreachable!("made an object above") };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 3});
        merge_patch(&mut target, &json!({"a": {"b": null, "x": 5}, "d": [9], "e": null}));
        assert_eq!(target, json!({"a": {"c": 2, "x": 5}, "d": [9]}));
    }
}
