//! `liveEvents/{name}` and `liveEvents/{event}/liveOutputs/{name}`: where encoders push, and
//! the asset a live event records into.
//!
//! The origin packages what the encoder sends (pass-through): `encoding.encodingType` is
//! `None`, `PassthroughBasic` or `PassthroughStandard`; live encoding, transcription and preview
//! are not offered. AMS fields the origin has no use for (access control, cross-site policies,
//! static host names, stream options) are accepted and kept as given.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::refuse;
use crate::plan::live_event::{check_access_token, check_dvr_window, check_name};

/// The `streamingProtocol`s of a live event's input.
pub const RTMP: &str = "RTMP";
pub const FRAGMENTED_MP4: &str = "FragmentedMP4";

/// `resourceState` of a live event: what the API was last asked (`start`, `stop`).
pub const RUNNING: &str = "Running";
pub const STOPPED: &str = "Stopped";

/// `liveEvents/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LiveEventProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub input: LiveEventInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<LiveEventEncoding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcriptions: Vec<Value>,
    /// Read-only: `Succeeded` (every operation completes before its answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Read-only: `Stopped` or `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_site_access_policies: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_static_hostname: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
}

/// `properties.input`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LiveEventInput {
    /// `RTMP` or `FragmentedMP4` (CMAF ingest).
    pub streaming_protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame_interval_duration: Option<String>,
    /// What encoders present; generated (32 hex digits, a GUID's) when a new event has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Read-only: the ingest URLs (never stored; built from the ingest listeners when shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<LiveEventEndpoint>,
}

/// One ingest URL of a live event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LiveEventEndpoint {
    pub protocol: String,
    pub url: String,
}

/// `properties.encoding`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LiveEventEncoding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stretch_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_frame_interval: Option<String>,
}

impl LiveEventProperties {
    pub fn check(&self) -> Result<(), String> {
        let protocol = self.input.streaming_protocol.as_str();
        if ![RTMP, FRAGMENTED_MP4].contains(&protocol) {
            return refuse(
                "properties.input.streamingProtocol",
                format!("'{protocol}': \"{RTMP}\" or \"{FRAGMENTED_MP4}\""),
            );
        }
        if let Some(token) = &self.input.access_token {
            check_access_token(token).or_else(|e| refuse("properties.input.accessToken", e))?;
        }
        let encoding = self.encoding.as_ref().and_then(|e| e.encoding_type.as_deref()).unwrap_or("None");
        if !["None", "PassthroughBasic", "PassthroughStandard"].contains(&encoding) {
            return refuse(
                "properties.encoding.encodingType",
                format!("'{encoding}': live encoding is not offered; the encoder's renditions pass through (\"PassthroughStandard\" or \"None\")"),
            );
        }
        if !self.transcriptions.is_empty() {
            return refuse("properties.transcriptions", "live transcription is not offered");
        }
        Ok(())
    }

    pub fn running(&self) -> bool {
        self.resource_state.as_deref() == Some(RUNNING)
    }
}

/// Checks a live event's name (the AMS rule: it is also a path segment of ingest URLs).
pub fn check_event_name(name: &str) -> Result<(), String> {
    check_name(name).or_else(|e| refuse("liveEventName", e))
}

/// `liveEvents/{event}/liveOutputs/{name}`: the asset the event records into and its DVR window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LiveOutputProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub asset_name: String,
    /// ISO 8601 duration, `PT1M` to `PT25H`: how far back live manifests reach.
    #[serde(default)]
    pub archive_window_length: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind_window_length: Option<String>,
    /// The asset's name in URLs (`{manifestName}.ism`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_snap_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_state: Option<String>,
}

impl LiveOutputProperties {
    pub fn check(&self) -> Result<(), String> {
        if self.asset_name.is_empty() {
            return refuse("properties.assetName", "required");
        }
        let window = self.dvr_window_secs()?;
        if let Some(rewind) = &self.rewind_window_length {
            let secs = duration_secs(rewind).ok_or_else(|| {
                format!("properties.rewindWindowLength: '{rewind}' is not an ISO 8601 duration such as PT30M")
            })?;
            if secs > window as f64 {
                return refuse("properties.rewindWindowLength", "must not exceed archiveWindowLength");
            }
        }
        if let Some(name) = &self.manifest_name {
            if name.is_empty() || name.contains(['/', '\\', '?', '#', '%', '(', ')', ',', '=']) {
                return refuse("properties.manifestName", format!("'{name}' must be one URL path segment"));
            }
        }
        Ok(())
    }

    /// `archiveWindowLength` in whole seconds, within the DVR window bounds.
    pub fn dvr_window_secs(&self) -> Result<u64, String> {
        let field = "properties.archiveWindowLength";
        let text = &self.archive_window_length;
        if text.is_empty() {
            return refuse(field, "required (an ISO 8601 duration, PT1M to PT25H)");
        }
        let secs = duration_secs(text)
            .ok_or_else(|| format!("{field}: '{text}' is not an ISO 8601 duration such as PT1H"))?
            .round() as u64;
        check_dvr_window(secs).or_else(|e| refuse(field, format!("'{text}': {e}")))?;
        Ok(secs)
    }
}

/// Seconds of an ISO 8601 duration of days, hours, minutes and seconds (`P1DT2H`, `PT30M`,
/// `PT1.5S`), as the Azure SDKs write a `timedelta`; `None` when it is not one.
pub fn duration_secs(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    for (part, units) in
        [(Some(date), &[('W', 604_800.0), ('D', 86_400.0)][..]), (time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)][..])]
    {
        let Some(mut part) = part else { continue };
        for &(unit, secs) in units {
            if let Some((number, tail)) = part.split_once(unit) {
                let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
                if number.starts_with(['+', '-']) {
                    return None;
                }
                total += value * secs;
                part = tail;
                any = true;
            }
        }
        if !part.is_empty() {
            return None;
        }
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_the_sdks_write_them() {
        for (text, secs) in [
            ("PT1M", 60.0),
            ("PT25H", 90_000.0),
            ("P1DT1H", 90_000.0),
            ("PT1H30M", 5400.0),
            ("PT1.5S", 1.5),
            ("P1W", 604_800.0),
        ] {
            assert_eq!(duration_secs(text), Some(secs), "{text}");
        }
        for bad in ["", "P", "PT", "1H", "PT1X", "PT-1M", "PTM", "PT1M1H", "P1H"] {
            assert_eq!(duration_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn outputs_refuse_windows_outside_one_minute_to_25_hours() {
        let output = |window: &str| LiveOutputProperties {
            asset_name: "a".into(),
            archive_window_length: window.into(),
            ..LiveOutputProperties::default()
        };
        assert_eq!(output("PT1M").dvr_window_secs(), Ok(60));
        assert_eq!(output("P1DT1H").dvr_window_secs(), Ok(90_000));
        for (bad, said) in [
            ("PT59S", "'PT59S': 59 s is outside"),
            ("PT25H1S", "outside"),
            ("1 hour", "not an ISO 8601"),
            ("", "required"),
        ] {
            let e = output(bad).check().unwrap_err();
            assert!(e.starts_with("properties.archiveWindowLength: ") && e.contains(said), "{bad}: {e}");
        }
        let e = LiveOutputProperties { asset_name: String::new(), ..output("PT1H") }.check().unwrap_err();
        assert_eq!(e, "properties.assetName: required");
    }
}
