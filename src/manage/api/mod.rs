//! The management API's requests: authentication, routing, and each resource's GET, list,
//! PUT, PATCH, DELETE and actions over the document store.
//!
//! Every write is checked in full before the first store write (the body, and every name it
//! refers to), so a refused request leaves the store as it was. Writes are conditional
//! (create only if absent, replace only the version read), so concurrent writers get 409
//! rather than overwriting each other. Key material is sealed before it is stored and never
//! returned, except by `listContentKeys` and `getPolicyPropertiesWithSecrets`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::LimitsConfig;
use crate::manage::auth::{Auth, Caller};
use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::{
    parse, AssetProperties, ContentKeyPolicyProperties, LiveEventProperties, LiveOutputProperties, Resource,
    StreamingLocatorProperties, StreamingPolicyProperties,
};
use crate::manage::route::{self, Collection, Route, Target};
use crate::plan::filter::{Filter, FilterDefinition};
use crate::plan::locator::Locator;
use crate::serve::origin::Origin;
use crate::store::{DocPath, Document, Sealer, Store};

mod actions;
mod live;
mod read;
mod write;

pub use live::IngestEndpoints;

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

properties!(AssetProperties, StreamingPolicyProperties, FilterDefinition, LiveEventProperties, LiveOutputProperties);
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
    /// `autoStart=true` on a live event's creation: start it too.
    auto_start: bool,
    body: Bytes,
}

impl Call {
    /// The ARM id of `name` in `collection`, under the account prefix the client used.
    fn id(&self, collection: &Collection, name: &str) -> String {
        format!("{}/{}/{name}", self.route.account, collection.path())
    }

    /// A resource body: `{"name", "id", "type", "properties"}`.
    fn resource(&self, collection: &Collection, name: &str, properties: Value) -> Value {
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
    /// `[limits] max_body_bytes` and `body_read_timeout_secs`, as the media listener has them.
    max_body_bytes: usize,
    body_timeout: Duration,
    /// Where encoders push, for the ingest URLs of live events.
    ingest: IngestEndpoints,
}

impl Api {
    pub fn new(
        store: Arc<Store>,
        sealer: Arc<Sealer>,
        origin: Arc<Origin>,
        auth: Auth,
        default_storage: Option<String>,
        limits: &LimitsConfig,
    ) -> Api {
        let (max_body_bytes, body_timeout) =
            (limits.max_body_bytes, Duration::from_secs(limits.body_read_timeout_secs));
        Api {
            store,
            sealer,
            origin,
            auth,
            default_storage,
            max_body_bytes,
            body_timeout,
            ingest: IngestEndpoints::default(),
        }
    }

    /// The API with the ingest listeners live events list as their endpoints.
    pub fn with_ingest(self, ingest: IngestEndpoints) -> Api {
        Api { ingest, ..self }
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
                crate::manage::error::json_response(answer.status, answer.body.as_ref())
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
        let body =
            tokio::time::timeout(self.body_timeout, Limited::new(request.into_body(), self.max_body_bytes).collect())
                .await
                .map_err(|_| {
                    ApiError::request_timeout(format!("the body did not arrive within {:?}", self.body_timeout))
                })?
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
            auto_start: param("autoStart").is_some_and(|v| v.eq_ignore_ascii_case("true")),
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
                self.action(call, collection, name, *action).await
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
            Collection::LiveEvents => self.origin.config_catalog().live_event(name).is_some(),
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
}

fn to_value(value: impl Serialize) -> ApiResult<Value> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(format!("a resource did not serialize: {e}")))
}
