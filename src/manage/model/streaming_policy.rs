//! `streamingPolicies/{name}`: which protocols are served, clear or with which encryption; the
//! predefined policies; what a policy means to the origin.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::refuse;
use crate::config::DrmConfig;
use crate::plan::locator::Policy;
use crate::plan::url::Encryption;
use crate::protect::Scheme;

/// `streamingPolicies/{name}`: which protocols are served, clear or with which encryption.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamingPolicyProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_content_key_policy_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_encryption: Option<EnvelopeEncryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_encryption_cenc: Option<CommonEncryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_encryption_cbcs: Option<CommonEncryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_encryption: Option<NoEncryption>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnabledProtocols {
    pub download: bool,
    pub dash: bool,
    pub hls: bool,
    pub smooth_streaming: bool,
}

impl EnabledProtocols {
    pub const STREAMING: EnabledProtocols =
        EnabledProtocols { download: false, dash: true, hls: true, smooth_streaming: true };
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NoEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_protocols: Option<EnabledProtocols>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvelopeEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_protocols: Option<EnabledProtocols>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear_tracks: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_keys: Option<PolicyContentKeys>,
    /// Accepted and kept; keys are served by the origin's own key endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_acquisition_url_template: Option<String>,
}

/// `commonEncryptionCenc` and `commonEncryptionCbcs` (FairPlay only in cbcs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommonEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_protocols: Option<EnabledProtocols>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clear_tracks: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_keys: Option<PolicyContentKeys>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drm: Option<DrmTemplates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_key_encryption_configuration: Option<ClearKeyEncryptionConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyContentKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_key: Option<DefaultKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_to_track_mappings: Vec<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
}

/// Licence server templates. AMS's `{ContentKeyId}` and `{AlternativeMediaId}` stand for the
/// key id and the locator; the origin's own `{kid}`, `{kid_uuid}` and `{locator}` work too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DrmTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_ready: Option<LicenseTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widevine: Option<LicenseTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fair_play: Option<LicenseTemplate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LicenseTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_license_acquisition_url_template: Option<String>,
    /// PlayReady only; accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_ready_custom_attributes: Option<String>,
    /// FairPlay only; accepted and kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_persistent_license: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClearKeyEncryptionConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_keys_acquisition_url_template: Option<String>,
}

/// The encryption schemes of `listPaths` and of content keys, by their AMS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionScheme {
    NoEncryption,
    EnvelopeEncryption,
    CommonEncryptionCenc,
    CommonEncryptionCbcs,
}

impl EncryptionScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionScheme::NoEncryption => "NoEncryption",
            EncryptionScheme::EnvelopeEncryption => "EnvelopeEncryption",
            EncryptionScheme::CommonEncryptionCenc => "CommonEncryptionCenc",
            EncryptionScheme::CommonEncryptionCbcs => "CommonEncryptionCbcs",
        }
    }

    /// The `encryption=` of the origin's URLs.
    pub fn encryption(self) -> Option<Encryption> {
        match self {
            EncryptionScheme::NoEncryption => None,
            EncryptionScheme::EnvelopeEncryption => Some(Encryption::Envelope),
            EncryptionScheme::CommonEncryptionCenc => Some(Encryption::Common(Scheme::Cenc)),
            EncryptionScheme::CommonEncryptionCbcs => Some(Encryption::Common(Scheme::Cbcs)),
        }
    }
}

impl EncryptionScheme {
    /// The schemes a config locator's policy serves.
    pub fn of_policy(policy: Policy) -> Vec<EncryptionScheme> {
        match policy {
            Policy::Clear => vec![EncryptionScheme::NoEncryption],
            Policy::Envelope => vec![EncryptionScheme::EnvelopeEncryption],
            Policy::Cenc => vec![EncryptionScheme::CommonEncryptionCenc],
            Policy::Cbcs => vec![EncryptionScheme::CommonEncryptionCbcs],
            Policy::MultiDrm => vec![EncryptionScheme::CommonEncryptionCenc, EncryptionScheme::CommonEncryptionCbcs],
        }
    }
}

/// What a streaming policy means to the origin.
#[derive(Debug, Clone)]
pub struct PolicyTerms {
    pub policy: Policy,
    /// DRM signalling from the policy's licence templates.
    pub drm: DrmConfig,
    /// Download paths (`/{locator}/{file}`) are served.
    pub downloads: bool,
    /// Manifests and segments are served.
    pub streaming: bool,
}

/// The predefined policies: built in, listed by GET, never stored.
pub const PREDEFINED_POLICIES: [&str; 6] = [
    "Predefined_DownloadOnly",
    "Predefined_ClearStreamingOnly",
    "Predefined_DownloadAndClearStreaming",
    "Predefined_ClearKey",
    "Predefined_MultiDrmCencStreaming",
    "Predefined_MultiDrmStreaming",
];

/// A predefined policy by name (case-insensitive, as AMS resource names are).
pub fn predefined_policy(name: &str) -> Option<(&'static str, StreamingPolicyProperties)> {
    let name = PREDEFINED_POLICIES.into_iter().find(|p| p.eq_ignore_ascii_case(name))?;
    let protocols = |download, dash, hls| Some(EnabledProtocols { download, dash, hls, smooth_streaming: dash });
    let clear = |p| StreamingPolicyProperties {
        no_encryption: Some(NoEncryption { enabled_protocols: p }),
        ..Default::default()
    };
    let cenc = || CommonEncryption {
        enabled_protocols: protocols(false, true, false),
        drm: Some(DrmTemplates {
            play_ready: Some(LicenseTemplate::default()),
            widevine: Some(LicenseTemplate::default()),
            fair_play: None,
        }),
        ..Default::default()
    };
    let properties = match name {
        "Predefined_DownloadOnly" => {
            clear(Some(EnabledProtocols { download: true, dash: false, hls: false, smooth_streaming: false }))
        }
        "Predefined_ClearStreamingOnly" => clear(Some(EnabledProtocols::STREAMING)),
        "Predefined_DownloadAndClearStreaming" => clear(protocols(true, true, true)),
        "Predefined_ClearKey" => StreamingPolicyProperties {
            envelope_encryption: Some(EnvelopeEncryption {
                enabled_protocols: Some(EnabledProtocols::STREAMING),
                ..Default::default()
            }),
            ..Default::default()
        },
        "Predefined_MultiDrmCencStreaming" => {
            StreamingPolicyProperties { common_encryption_cenc: Some(cenc()), ..Default::default() }
        }
        _ => StreamingPolicyProperties {
            common_encryption_cenc: Some(cenc()),
            common_encryption_cbcs: Some(CommonEncryption {
                enabled_protocols: protocols(false, false, true),
                drm: Some(DrmTemplates {
                    fair_play: Some(LicenseTemplate { allow_persistent_license: Some(false), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    Some((name, properties))
}

impl StreamingPolicyProperties {
    /// The schemes the policy enables, each with its protocols (absent = every streaming
    /// protocol), in AMS's order.
    pub fn schemes(&self) -> Vec<(EncryptionScheme, EnabledProtocols)> {
        let or_streaming = |p: Option<EnabledProtocols>| p.unwrap_or(EnabledProtocols::STREAMING);
        let mut schemes = Vec::new();
        if let Some(n) = &self.no_encryption {
            schemes.push((EncryptionScheme::NoEncryption, or_streaming(n.enabled_protocols)));
        }
        if let Some(e) = &self.envelope_encryption {
            schemes.push((EncryptionScheme::EnvelopeEncryption, or_streaming(e.enabled_protocols)));
        }
        if let Some(c) = &self.common_encryption_cenc {
            schemes.push((EncryptionScheme::CommonEncryptionCenc, or_streaming(c.enabled_protocols)));
        }
        if let Some(c) = &self.common_encryption_cbcs {
            schemes.push((EncryptionScheme::CommonEncryptionCbcs, or_streaming(c.enabled_protocols)));
        }
        schemes
    }

    /// The scheme a locator's content keys are for: the first encrypting one.
    pub fn key_scheme(&self) -> Option<EncryptionScheme> {
        self.schemes().into_iter().map(|(s, _)| s).find(|s| *s != EncryptionScheme::NoEncryption)
    }

    /// The content key policy the policy names, if any.
    pub fn content_key_policy_name(&self) -> Option<&str> {
        fn default_key(keys: &Option<PolicyContentKeys>) -> Option<&str> {
            keys.as_ref()?.default_key.as_ref()?.policy_name.as_deref()
        }
        self.default_content_key_policy_name
            .as_deref()
            .or_else(|| self.envelope_encryption.as_ref().and_then(|e| default_key(&e.content_keys)))
            .or_else(|| self.common_encryption_cenc.as_ref().and_then(|c| default_key(&c.content_keys)))
            .or_else(|| self.common_encryption_cbcs.as_ref().and_then(|c| default_key(&c.content_keys)))
    }

    pub fn check(&self) -> Result<(), String> {
        self.terms().map(|_| ())
    }

    /// What the origin makes of the policy; an error names the field it cannot serve.
    pub fn terms(&self) -> Result<PolicyTerms, String> {
        let schemes = self.schemes();
        if schemes.is_empty() {
            return refuse(
                "properties",
                "give one of noEncryption, envelopeEncryption, commonEncryptionCenc, commonEncryptionCbcs",
            );
        }
        let encrypting: Vec<EncryptionScheme> =
            schemes.iter().map(|(s, _)| *s).filter(|s| *s != EncryptionScheme::NoEncryption).collect();
        let policy = match encrypting[..] {
            [] => Policy::Clear,
            [EncryptionScheme::EnvelopeEncryption] => Policy::Envelope,
            [EncryptionScheme::CommonEncryptionCenc] => Policy::Cenc,
            [EncryptionScheme::CommonEncryptionCbcs] => Policy::Cbcs,
            [EncryptionScheme::CommonEncryptionCenc, EncryptionScheme::CommonEncryptionCbcs] => Policy::MultiDrm,
            _ => return refuse("properties", "this origin serves a policy with one scheme, or with commonEncryptionCenc and commonEncryptionCbcs together"),
        };
        if policy != Policy::Clear && self.no_encryption.is_some() {
            return refuse("properties.noEncryption", "cannot be combined with an encrypting scheme");
        }
        let mut drm = DrmConfig::default();
        for (field, common) in [
            ("commonEncryptionCenc", &self.common_encryption_cenc),
            ("commonEncryptionCbcs", &self.common_encryption_cbcs),
        ] {
            let Some(common) = common else { continue };
            if !common.clear_tracks.is_empty() {
                return refuse(
                    &format!("properties.{field}.clearTracks"),
                    "clear tracks are not supported: every track is encrypted",
                );
            }
            if common.content_keys.as_ref().is_some_and(|k| !k.key_to_track_mappings.is_empty()) {
                return refuse(
                    &format!("properties.{field}.contentKeys.keyToTrackMappings"),
                    "not supported: one key encrypts every track",
                );
            }
            let template = |t: &Option<LicenseTemplate>| {
                t.as_ref().and_then(|t| t.custom_license_acquisition_url_template.as_deref()).map(origin_template)
            };
            if let Some(d) = &common.drm {
                drm.playready_license_url = drm.playready_license_url.or(template(&d.play_ready));
                drm.widevine_license_url = drm.widevine_license_url.or(template(&d.widevine));
                if d.fair_play.is_some() && field == "commonEncryptionCenc" {
                    return refuse(
                        "properties.commonEncryptionCenc.drm.fairPlay",
                        "FairPlay needs commonEncryptionCbcs",
                    );
                }
                drm.fairplay_key_uri = drm.fairplay_key_uri.or(template(&d.fair_play));
            }
            if let Some(ck) = &common.clear_key_encryption_configuration {
                drm.clearkey_license_url = drm
                    .clearkey_license_url
                    .or(ck.custom_keys_acquisition_url_template.as_deref().map(origin_template));
            }
        }
        if let Some(e) = &self.envelope_encryption {
            if !e.clear_tracks.is_empty() {
                return refuse(
                    "properties.envelopeEncryption.clearTracks",
                    "clear tracks are not supported: every track is encrypted",
                );
            }
        }
        drm.systems().validate().or_else(|e| refuse("properties.commonEncryption*.drm", e))?;
        let enabled = |f: fn(&EnabledProtocols) -> bool| schemes.iter().any(|(_, p)| f(p));
        let streaming = enabled(|p| p.dash || p.hls || p.smooth_streaming);
        let downloads = enabled(|p| p.download);
        if !streaming && !downloads {
            return refuse("properties.*.enabledProtocols", "enables no protocol");
        }
        if downloads && policy != Policy::Clear {
            return refuse("properties.*.enabledProtocols.download", "downloads are served clear only");
        }
        Ok(PolicyTerms { policy, drm, downloads, streaming })
    }
}

/// An AMS licence URL template in the origin's spelling.
fn origin_template(template: &str) -> String {
    template.replace("{ContentKeyId}", "{kid_uuid}").replace("{AlternativeMediaId}", "{locator}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::model::{parse, Resource};

    #[test]
    fn predefined_policies_map_onto_the_origins_policies() {
        let expect = [
            ("Predefined_DownloadOnly", Policy::Clear, true, false),
            ("Predefined_ClearStreamingOnly", Policy::Clear, false, true),
            ("Predefined_DownloadAndClearStreaming", Policy::Clear, true, true),
            ("Predefined_ClearKey", Policy::Envelope, false, true),
            ("Predefined_MultiDrmCencStreaming", Policy::Cenc, false, true),
            ("Predefined_MultiDrmStreaming", Policy::MultiDrm, false, true),
        ];
        for (name, policy, downloads, streaming) in expect {
            let terms = predefined_policy(name).unwrap().1.terms().unwrap();
            assert_eq!((terms.policy, terms.downloads, terms.streaming), (policy, downloads, streaming), "{name}");
        }
        let custom: Resource<StreamingPolicyProperties> = parse(
            br#"{"properties":{"commonEncryptionCbcs":{"enabledProtocols":{"download":false,"dash":false,"hls":true,"smoothStreaming":false},
                "drm":{"fairPlay":{"customLicenseAcquisitionUrlTemplate":"skd://keys/{ContentKeyId}","allowPersistentLicense":false}}}}}"#,
        )
        .unwrap();
        let terms = custom.properties.terms().unwrap();
        assert_eq!(terms.policy, Policy::Cbcs);
        assert_eq!(terms.drm.fairplay_key_uri.as_deref(), Some("skd://keys/{kid_uuid}"));
    }
}
