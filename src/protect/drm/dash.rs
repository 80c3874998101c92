//! DASH `ContentProtection` — DASH-IF IOP: `urn:mpeg:dash:mp4protection:2011` with
//! `cenc:default_KID`, one DRM-specific descriptor per system with `cenc:pssh`, `mspr:pro`,
//! `dashif:Laurl`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

use super::playready::playready_header_object;
use super::pssh::{playready_pssh, widevine_pssh};
use super::{expand_template, guid_string, DrmSystems};
use crate::protect::{ContentKey, Scheme};

/// DASH-IF scheme of the Clear Key `ContentProtection` descriptor.
const CLEARKEY_DASH_SCHEME: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";
/// DASH scheme of the generic Common Encryption descriptor (carries `cenc:default_KID`).
const MP4_PROTECTION_SCHEME: &str = "urn:mpeg:dash:mp4protection:2011";
const WIDEVINE_DASH_SCHEME: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
const PLAYREADY_DASH_SCHEME: &str = "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95";

/// Namespaces the MPD root must declare when [`dash_content_protection`] output is embedded.
pub const MPD_NAMESPACES: [(&str, &str); 3] = [
    ("xmlns:cenc", "urn:mpeg:cenc:2013"),
    ("xmlns:mspr", "urn:microsoft:playready"),
    ("xmlns:dashif", "https://dashif.org/CPS"),
];

/// One MPD `ContentProtection` element, in the serde style of `output::dash` (quick-xml:
/// `@` attributes, namespaced names as plain renames). Put a `Vec<ContentProtection>` field
/// renamed `ContentProtection` on the AdaptationSet right after its attributes: in the MPD
/// schema ContentProtection is a RepresentationBase element that comes after
/// AudioChannelConfiguration and before Label, Accessibility, Role and Representation. The MPD
/// root must declare [`MPD_NAMESPACES`].
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ContentProtection {
    #[serde(rename = "@schemeIdUri")]
    pub scheme_id_uri: &'static str,
    #[serde(rename = "@value", skip_serializing_if = "Option::is_none")]
    pub value: Option<&'static str>,
    #[serde(rename = "@cenc:default_KID", skip_serializing_if = "Option::is_none")]
    pub default_kid: Option<String>,
    #[serde(rename = "cenc:pssh", skip_serializing_if = "Option::is_none")]
    pub pssh: Option<String>,
    #[serde(rename = "mspr:pro", skip_serializing_if = "Option::is_none")]
    pub pro: Option<String>,
    #[serde(rename = "dashif:Laurl", skip_serializing_if = "Option::is_none")]
    pub laurl: Option<String>,
}

/// The `ContentProtection` descriptors of one protected AdaptationSet:
///
/// 1. `urn:mpeg:dash:mp4protection:2011`, `@value` = `cenc`/`cbcs`, `cenc:default_KID`.
/// 2. Widevine: `cenc:pssh` (v0 Widevine box), `dashif:Laurl` if configured.
/// 3. PlayReady: `@value="MSPR 2.0"`, `cenc:pssh` (PlayReady box holding the PRO), `mspr:pro`,
///    `dashif:Laurl` if configured.
/// 4. Clear Key: `urn:uuid:e2719d58-…`, `@value="ClearKey1.0"`, `dashif:Laurl` = licence URL, and
///    no `cenc:pssh`, as in the DASH-IF IOP example: dash.js (5.x) hands a Clear Key `cenc:pssh`
///    to the CDM as `keyids` JSON and fails; without it, it builds that JSON from
///    `cenc:default_KID`. Shaka uses the init segment's W3C common PSSH (`encrypted` event).
///
/// FairPlay has no DASH signalling and is skipped.
pub fn dash_content_protection(
    scheme: Scheme,
    key: &ContentKey,
    locator: &str,
    systems: &DrmSystems,
) -> Vec<ContentProtection> {
    let kid = &key.kid;
    let mut out = vec![ContentProtection {
        scheme_id_uri: MP4_PROTECTION_SCHEME,
        value: Some(scheme.as_str()),
        default_kid: Some(guid_string(kid)),
        pssh: None,
        pro: None,
        laurl: None,
    }];
    if let Some(wv) = &systems.widevine {
        let content_id = wv.content_id.as_deref().map(|c| expand_template(c, kid, locator)).unwrap_or_default();
        out.push(ContentProtection {
            scheme_id_uri: WIDEVINE_DASH_SCHEME,
            value: Some("Widevine"),
            default_kid: None,
            pssh: Some(STANDARD.encode(widevine_pssh(&[*kid], content_id.as_bytes(), scheme))),
            pro: None,
            laurl: wv.license_url.as_deref().map(|u| expand_template(u, kid, locator)),
        });
    }
    if let Some(pr) = &systems.playready {
        let la_url = pr.license_url.as_deref().map(|u| expand_template(u, kid, locator));
        let pro = playready_header_object(kid, &key.key, la_url.as_deref(), scheme);
        out.push(ContentProtection {
            scheme_id_uri: PLAYREADY_DASH_SCHEME,
            value: Some("MSPR 2.0"),
            default_kid: None,
            pssh: Some(STANDARD.encode(playready_pssh(&pro))),
            pro: Some(STANDARD.encode(&pro)),
            laurl: la_url,
        });
    }
    if let Some(ck) = &systems.clearkey {
        out.push(ContentProtection {
            scheme_id_uri: CLEARKEY_DASH_SCHEME,
            value: Some("ClearKey1.0"),
            default_kid: None,
            pssh: None,
            pro: None,
            laurl: Some(expand_template(&ck.license_url, kid, locator)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protect::decode_base64;
    use crate::protect::drm::playready::tests::parse_pro;
    use crate::protect::drm::pssh::tests::parse_pssh;
    use crate::protect::drm::pssh::{widevine_pssh_data, PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID};
    use crate::protect::drm::tests::{systems, test_key, LOCATOR};

    #[test]
    fn dash_content_protection_serializes() {
        let key = test_key();
        let cps = dash_content_protection(Scheme::Cenc, &key, LOCATOR, &systems());
        assert_eq!(cps.len(), 4);
        assert_eq!(cps[0].scheme_id_uri, MP4_PROTECTION_SCHEME);
        assert_eq!(cps[0].value, Some("cenc"));
        assert_eq!(cps[0].default_kid.as_deref(), Some("9eb4050d-e44b-4802-932e-27d75083e266"));
        // Widevine pssh round-trips.
        let (v, sys, _, data) = parse_pssh(&decode_base64(cps[1].pssh.as_deref().unwrap()).unwrap());
        assert_eq!((v, sys), (0, WIDEVINE_SYSTEM_ID));
        assert_eq!(data, widevine_pssh_data(&[key.kid], LOCATOR.as_bytes(), Scheme::Cenc));
        // PlayReady: mspr:pro == pssh data; checksum present for cenc.
        let pro = decode_base64(cps[2].pro.as_deref().unwrap()).unwrap();
        let (_, sys, _, data) = parse_pssh(&decode_base64(cps[2].pssh.as_deref().unwrap()).unwrap());
        assert_eq!((sys, &data), (PLAYREADY_SYSTEM_ID, &pro));
        assert!(parse_pro(&pro).3.contains("<CHECKSUM>"));
        // Clear Key: the licence URL, no pssh.
        assert_eq!(cps[3].pssh, None);
        assert_eq!(
            cps[3].laurl.as_deref(),
            Some("https://origin.example/clearkey/11111111-2222-3333-4444-555555555555/license")
        );

        // Serialized with quick-xml the way output::dash does it.
        #[derive(Serialize)]
        #[serde(rename = "AdaptationSet")]
        struct Set {
            #[serde(rename = "@xmlns:cenc")]
            cenc: &'static str,
            #[serde(rename = "@xmlns:mspr")]
            mspr: &'static str,
            #[serde(rename = "@xmlns:dashif")]
            dashif: &'static str,
            #[serde(rename = "ContentProtection")]
            cp: Vec<ContentProtection>,
        }
        let set = Set { cenc: MPD_NAMESPACES[0].1, mspr: MPD_NAMESPACES[1].1, dashif: MPD_NAMESPACES[2].1, cp: cps };
        let xml = quick_xml::se::to_string(&set).unwrap();
        assert!(xml.contains(
            "<ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=\"cenc\" cenc:default_KID=\"9eb4050d-e44b-4802-932e-27d75083e266\"/>"
        ));
        assert!(xml.contains("<ContentProtection schemeIdUri=\"urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95\" value=\"MSPR 2.0\"><cenc:pssh>"));
        assert!(xml.contains("</cenc:pssh><mspr:pro>"));
        // Clear Key: the licence URL only (no cenc:pssh, which dash.js would misread).
        assert!(xml.contains(
            "<ContentProtection schemeIdUri=\"urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e\" value=\"ClearKey1.0\"><dashif:Laurl>https://origin.example/clearkey/11111111-2222-3333-4444-555555555555/license</dashif:Laurl></ContentProtection>"
        ));
        // The PlayReady LA_URL with '&' is escaped once by quick-xml in dashif:Laurl.
        assert!(xml.contains("<dashif:Laurl>https://pr.example/rightsmanager.asmx?kid=9eb4050d-e44b-4802-932e-27d75083e266&amp;x=1</dashif:Laurl>"));

        let cps = dash_content_protection(Scheme::Cbcs, &key, LOCATOR, &DrmSystems::default());
        assert_eq!(cps.len(), 1);
        assert_eq!(cps[0].value, Some("cbcs"));
    }
}
