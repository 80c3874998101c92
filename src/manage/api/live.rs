//! Live events and their outputs: PUT and PATCH, the ingest URLs GET shows, DELETE, and the
//! actions `start`, `stop` and `reset`.
//!
//! A state change is written to the event's asset folder first (the event document every
//! replica serves the live asset from, through the ingest writer), then to the API's document,
//! which records what was asked: a failure of the first leaves both as they were. Every
//! operation completes before its answer (`provisioningState: Succeeded`), which the Azure SDKs'
//! long-running-operation pollers take as done.

use std::net::SocketAddr;

use chrono::Utc;
use http::StatusCode;
use serde::Deserialize;

use super::{Answer, Api, Call};
use crate::manage::catalog;
use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::live_event::{check_event_name, LiveEventEndpoint, FRAGMENTED_MP4, RTMP, RUNNING, STOPPED};
use crate::manage::model::{self, parse, AssetProperties, LiveEventProperties, LiveOutputProperties, Resource};
use crate::manage::route::{Action, Collection};
use crate::source::live::EventState;
use crate::store::{Document, LIVE_EVENTS};

const SUCCEEDED: &str = "Succeeded";

/// Where encoders reach this origin's ingest listeners, for the URLs live events list.
#[derive(Debug, Clone, Default)]
pub struct IngestEndpoints {
    /// RTMP ingest listener.
    pub rtmp: Option<SocketAddr>,
    /// CMAF ingest (HTTP) listener.
    pub cmaf: Option<SocketAddr>,
    /// The host name encoders use (`[api] ingest_host`); absent = the listeners' addresses.
    pub host: Option<String>,
}

impl IngestEndpoints {
    fn authority(&self, addr: SocketAddr) -> String {
        match &self.host {
            Some(host) => format!("{host}:{}", addr.port()),
            None => addr.to_string(),
        }
    }

    /// The ingest URLs of event `name` pushing `protocol` with `token`: RTMP
    /// `rtmp://host:port/live/{token}`; CMAF `http://host:port/{token}/ingest.isml` (AMS's
    /// spelling: encoders add `/Streams({name})`).
    fn urls(&self, protocol: &str, token: &str) -> Vec<LiveEventEndpoint> {
        let endpoint = |url: String| LiveEventEndpoint { protocol: protocol.to_string(), url };
        match protocol {
            RTMP => self.rtmp.map(|a| endpoint(format!("rtmp://{}/live/{token}", self.authority(a)))),
            FRAGMENTED_MP4 => self.cmaf.map(|a| endpoint(format!("http://{}/{token}/ingest.isml", self.authority(a)))),
            _ => None,
        }
        .into_iter()
        .collect()
    }
}

/// The body of `stop`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StopInput {
    #[serde(default)]
    remove_outputs_on_stop: bool,
}

impl Api {
    /// A live event as GET shows it: with its ingest URLs.
    pub(super) fn shown_event(&self, mut event: LiveEventProperties) -> LiveEventProperties {
        let token = event.input.access_token.clone().unwrap_or_default();
        event.input.endpoints = self.ingest.urls(&event.input.streaming_protocol, &token);
        event
    }

    /// PUT or PATCH of a live event. A new one is `Stopped` (`Running` with `autoStart=true`)
    /// and gets a generated token when it names none; a running one keeps its input.
    pub(super) async fn put_live_event(
        &self,
        call: &Call,
        name: &str,
        patch: bool,
    ) -> ApiResult<(StatusCode, LiveEventProperties)> {
        check_event_name(name).map_err(ApiError::bad_request)?;
        let collection = Collection::LiveEvents;
        let others = self.live_event_tokens(name).await?;
        let fresh_token = || {
            model::random_16()
                .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
                .map_err(ApiError::internal)
        };
        let generated = fresh_token()?;
        let (status, event) = self
            .upsert::<LiveEventProperties>(call, &collection, name, patch, |event, existing| {
                if let Some(old) = existing.filter(|old| old.running()) {
                    let mut asked = event.input.clone();
                    asked.access_token = asked.access_token.or_else(|| old.input.access_token.clone());
                    if asked != old.input {
                        return Err(ApiError::conflict(format!(
                            "properties.input: live event '{name}' is running; stop it before changing its input"
                        )));
                    }
                }
                let token = event
                    .input
                    .access_token
                    .take()
                    .or_else(|| existing.and_then(|old| old.input.access_token.clone()))
                    .unwrap_or(generated);
                if others.contains(&token) {
                    return Err(ApiError::conflict("properties.input.accessToken: another live event has this token"));
                }
                let now = Utc::now();
                event.input.access_token = Some(token);
                event.input.endpoints.clear();
                event.resource_state =
                    Some(existing.and_then(|old| old.resource_state.clone()).unwrap_or(STOPPED.into()));
                event.provisioning_state = Some(SUCCEEDED.into());
                event.created = existing.and_then(|old| old.created).or(Some(now));
                event.last_modified = Some(now);
                Ok(())
            })
            .await?;
        if status == StatusCode::CREATED && call.auto_start {
            self.live_action(name, Action::Start, &[]).await?;
            return Ok((status, LiveEventProperties { resource_state: Some(RUNNING.into()), ..event }));
        }
        Ok((status, event))
    }

    /// The tokens of every live event but `name` (stored ones and the config file's).
    async fn live_event_tokens(&self, name: &str) -> ApiResult<Vec<String>> {
        let stored = self.stored_all::<LiveEventProperties>(&Collection::LiveEvents).await?;
        let config =
            self.origin.config_catalog().live_events().map(|e| e.access_token.expose().to_string()).collect::<Vec<_>>();
        Ok(stored
            .into_iter()
            .filter(|(other, _)| other != name)
            .filter_map(|(_, e)| e.input.access_token)
            .chain(config)
            .collect())
    }

    /// PUT of a live output (immutable: the same body again is 200, another is 409). The
    /// event records into one output at a time, and an asset records one output.
    pub(super) async fn put_live_output(
        &self,
        call: &Call,
        event_name: &str,
        name: &str,
    ) -> ApiResult<(StatusCode, LiveOutputProperties)> {
        let mut output = parse::<Resource<LiveOutputProperties>>(&call.body).map_err(ApiError::bad_request)?.properties;
        output.check().map_err(ApiError::bad_request)?;
        let (_, event) = self.live_event_document(event_name).await?;
        let collection = Collection::LiveOutputs(event_name.to_string());
        let path = Self::doc_path(&collection, name)?;
        if let Some((_, stored)) = self.stored::<LiveOutputProperties>(&path, false).await? {
            let same = stored.asset_name == output.asset_name
                && stored.dvr_window_secs() == output.dvr_window_secs()
                && stored.manifest_name == output.manifest_name;
            return match same {
                true => Ok((StatusCode::OK, stored)),
                false => Err(ApiError::conflict(format!(
                    "live output '{name}' exists with other properties: live outputs are immutable (delete it and create a new one)"
                ))),
            };
        }
        let asset_name = &output.asset_name;
        let asset = self
            .asset_of(&output)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("properties.assetName: no asset '{asset_name}'")))?;
        if let Some((other, _)) = self.stored_all::<LiveOutputProperties>(&collection).await?.first() {
            return Err(ApiError::conflict(format!(
                "live event '{event_name}' records into live output '{other}': one live output at a time"
            )));
        }
        for (other_event, _) in self.stored_all::<LiveEventProperties>(&Collection::LiveEvents).await? {
            let outputs =
                self.stored_all::<LiveOutputProperties>(&Collection::LiveOutputs(other_event.clone())).await?;
            if let Some((other, _)) = outputs.iter().find(|(_, o)| o.asset_name == *asset_name) {
                return Err(ApiError::conflict(format!(
                    "properties.assetName: asset '{asset_name}' records live output '{other}' of live event '{other_event}'"
                )));
            }
        }
        let now = Utc::now();
        output.created = Some(now);
        output.last_modified = Some(now);
        output.provisioning_state = Some(SUCCEEDED.into());
        output.resource_state = Some(RUNNING.into());
        if event.running() {
            self.record(event_name, &event, &output, &asset, EventState::Running).await?;
        }
        self.store.create(&path, self.document(&collection, name, output.clone())?).await?;
        Ok((StatusCode::CREATED, output))
    }

    /// DELETE of a live event: only a stopped one, as AMS; its outputs go with it (their
    /// assets stay, and play as VOD).
    pub(super) async fn delete_live_event(&self, name: &str) -> ApiResult<()> {
        let Some((_, event)) =
            self.stored::<LiveEventProperties>(&Self::doc_path(&Collection::LiveEvents, name)?, false).await?
        else {
            return Ok(());
        };
        if event.running() {
            return Err(ApiError::bad_request(format!(
                "properties.resourceState: live event '{name}' is Running; stop it before deleting it"
            )));
        }
        self.delete_outputs(name).await
    }

    /// DELETE of a live output: the recording stops (the live playlists end) and the asset
    /// stays, playing as VOD.
    pub(super) async fn delete_live_output(&self, event_name: &str, name: &str) -> ApiResult<()> {
        let path = Self::doc_path(&Collection::LiveOutputs(event_name.to_string()), name)?;
        let (Some((_, output)), Ok((_, event))) =
            (self.stored::<LiveOutputProperties>(&path, false).await?, self.live_event_document(event_name).await)
        else {
            return Ok(());
        };
        if event.running() {
            if let Some(asset) = self.asset_of(&output).await? {
                self.record(event_name, &event, &output, &asset, EventState::Stopped).await?;
            }
        }
        Ok(())
    }

    /// `start`, `stop` (body `removeOutputsOnStop`) and `reset` (the outputs' recordings end
    /// and the outputs are deleted; the event keeps running, ready for new outputs).
    pub(super) async fn live_action(&self, name: &str, action: Action, body: &[u8]) -> ApiResult<Answer> {
        let (document, mut event) = self.live_event_document(name).await?;
        let outputs = self.stored_all::<LiveOutputProperties>(&Collection::LiveOutputs(name.to_string())).await?;
        let (state, remove_outputs) = match action {
            Action::Start => (EventState::Running, false),
            Action::Stop => {
                let input = match body.iter().all(u8::is_ascii_whitespace) {
                    true => StopInput::default(),
                    false => parse::<StopInput>(body).map_err(ApiError::bad_request)?,
                };
                (EventState::Stopped, input.remove_outputs_on_stop)
            }
            Action::Reset if !event.running() => {
                return Err(ApiError::bad_request(format!(
                    "properties.resourceState: live event '{name}' is Stopped; only a running event is reset"
                )));
            }
            Action::Reset => (EventState::Stopped, true),
            other => return Err(ApiError::not_found(format!("{other:?} is not an action of live events"))),
        };
        for (_, output) in &outputs {
            if let Some(asset) = self.asset_of(output).await? {
                self.record(name, &event, output, &asset, state).await?;
            }
        }
        if remove_outputs {
            self.delete_outputs(name).await?;
        }
        let running = action != Action::Stop;
        if event.running() != running {
            event.resource_state = Some(if running { RUNNING } else { STOPPED }.into());
            event.last_modified = Some(Utc::now());
            self.store.replace(&document, self.document(&Collection::LiveEvents, name, event)?).await?;
        }
        Ok(Answer { status: StatusCode::OK, body: None })
    }

    async fn live_event_document(&self, name: &str) -> ApiResult<(Document, LiveEventProperties)> {
        self.stored::<LiveEventProperties>(&Self::doc_path(&Collection::LiveEvents, name)?, false)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{LIVE_EVENTS} '{name}' not found")))
    }

    async fn asset_of(&self, output: &LiveOutputProperties) -> ApiResult<Option<AssetProperties>> {
        let path = Self::doc_path(&Collection::Assets, &output.asset_name)
            .map_err(|_| ApiError::bad_request(format!("properties.assetName: no asset '{}'", output.asset_name)))?;
        Ok(self.stored::<AssetProperties>(&path, false).await?.map(|(_, asset)| asset))
    }

    async fn delete_outputs(&self, event_name: &str) -> ApiResult<()> {
        for document in self.store.list(&Collection::LiveOutputs(event_name.to_string()).path()).await? {
            self.store.delete(&document.path).await?;
        }
        Ok(())
    }

    /// Writes `state` into the event document of the output's asset folder.
    async fn record(
        &self,
        name: &str,
        event: &LiveEventProperties,
        output: &LiveOutputProperties,
        asset: &AssetProperties,
        state: EventState,
    ) -> ApiResult<()> {
        let live = catalog::live_event(&self.origin, self.default_storage.as_deref(), name, event, output, asset)
            .map_err(|e| ApiError::bad_request(format!("live event '{name}': {e}")))?;
        crate::ingest::writer::set_state(&live, state).await.map_err(|e| {
            ApiError::unavailable(format!("live event '{name}': the asset's storage did not take the new state: {e}"))
        })
    }
}
