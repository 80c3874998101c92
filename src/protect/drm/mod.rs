//! DRM signalling for Common Encryption (DESIGN §4): the bytes and strings that tell a player
//! which DRM systems can decrypt a `cenc` / `cbcs` stream and where their licences come from.
//! Everything here is a pure function of (scheme, KID, key, templates): no I/O, no randomness,
//! so manifests and init segments stay byte-identical across replicas.
//!
//! This module holds the model, the DRM systems a locator signals with their URL templates;
//! each file below builds one thing, from one public specification:
//!
//! * `pssh` — `pssh` boxes (ISO/IEC 23001-7 §8.1): W3C common, Widevine, PlayReady.
//! * `playready` — the PlayReady Object and key seed derivation (Microsoft specifications).
//! * `clearkey` — the W3C Clear Key licence exchange (EME §9.1).
//! * `hls` — `EXT-X-KEY` lines (RFC 8216bis and the players' KEYFORMATs).
//! * `dash` — MPD `ContentProtection` descriptors (DASH-IF IOP).

mod clearkey;
mod dash;
mod hls;
mod playready;
mod pssh;

pub use clearkey::clearkey_license_response;
pub use dash::{dash_content_protection, ContentProtection, MPD_NAMESPACES};
pub use hls::{hls_key_lines, HlsKeyLine};
pub use playready::{playready_header_object, playready_key_from_seed};
pub use pssh::{common_pssh, playready_pssh, widevine_pssh};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest licence URL (after template expansion) put into a PlayReady header; the header spec
/// recommends keeping the whole header small, and the PRO record length is a u16.
const MAX_LICENSE_URL_LEN: usize = 2048;

/// `8-4-4-4-12` lower-case form of a KID (big-endian, as stored in `tenc`): `cenc:default_KID`.
fn guid_string(kid: &[u8; 16]) -> String {
    let h = base16ct::lower::encode_string(kid);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Which DRM systems a streaming policy signals, with their URL templates. Templates may use
/// `{kid}` (32 lower-case hex digits), `{kid_uuid}` (8-4-4-4-12) and `{locator}` (the
/// streaming locator id, percent-encoded outside RFC 3986 unreserved characters). Filled from
/// the config by the caller; [`DrmSystems::validate`] belongs in config loading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrmSystems {
    pub widevine: Option<WidevineSystem>,
    pub playready: Option<PlayReadySystem>,
    pub fairplay: Option<FairPlaySystem>,
    pub clearkey: Option<ClearKeySystem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidevineSystem {
    /// Licence server URL template, signalled as `dashif:Laurl` in DASH (Shaka reads it); HLS
    /// has no place for it (players take the Widevine licence URL from their configuration).
    pub license_url: Option<String>,
    /// `content_id` template for the PSSH data (some licence proxies need it); omitted if None.
    pub content_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayReadySystem {
    /// LA_URL template, written into the WRMHEADER (and `dashif:Laurl`).
    pub license_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairPlaySystem {
    /// The `skd://` key URI template handed to the app's FairPlay key server, e.g. `skd://{kid}`.
    pub key_uri: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClearKeySystem {
    /// The W3C Clear Key licence endpoint template (JSON request/response, see
    /// [`clearkey_license_response`]): DASH `dashif:Laurl`, HLS `org.w3.clearkey` URI.
    pub license_url: String,
    /// A raw-key endpoint template (the 16 key bytes, as AES-128 key delivery serves them): the
    /// HLS `identity` line for Shaka Player and native Apple players (cbcs). None = no such line.
    pub key_url: Option<String>,
}

impl DrmSystems {
    /// Config-time checks: templates must be absolute-looking URLs of sane length without
    /// characters that would break an HLS quoted-string or need XML escaping surprises.
    pub fn validate(&self) -> Result<(), String> {
        let check = |what: &str, t: &str| -> Result<(), String> {
            if t.is_empty() {
                return Err(format!("{what}: empty"));
            }
            if t.len() > MAX_LICENSE_URL_LEN - 64 {
                return Err(format!("{what}: longer than {} characters", MAX_LICENSE_URL_LEN - 64));
            }
            if t.chars().any(|c| c == '"' || c.is_control() || c.is_whitespace()) {
                return Err(format!("{what}: contains a quote, whitespace or control character"));
            }
            if !t.contains("://") {
                return Err(format!("{what}: not an absolute URL"));
            }
            Ok(())
        };
        if let Some(w) = &self.widevine {
            if let Some(u) = &w.license_url {
                check("widevine.license_url", u)?;
            }
            if let Some(c) = &w.content_id {
                if c.len() > 256 {
                    return Err("widevine.content_id: longer than 256 bytes".into());
                }
            }
        }
        if let Some(p) = &self.playready {
            if let Some(u) = &p.license_url {
                check("playready.license_url", u)?;
            }
        }
        if let Some(f) = &self.fairplay {
            check("fairplay.key_uri", &f.key_uri)?;
        }
        if let Some(c) = &self.clearkey {
            check("clearkey.license_url", &c.license_url)?;
            if let Some(u) = &c.key_url {
                check("clearkey.key_url", u)?;
            }
        }
        Ok(())
    }
}

/// What a value put into a template URL is escaped for: all but RFC 3986 unreserved characters.
const TEMPLATE_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Expands `{kid}`, `{kid_uuid}` and `{locator}` in a template. Quotes and line breaks that
/// slipped past [`DrmSystems::validate`] are percent-encoded so an HLS attribute stays intact.
pub fn expand_template(template: &str, kid: &[u8; 16], locator: &str) -> String {
    let expanded = template
        .replace("{kid}", &base16ct::lower::encode_string(kid))
        .replace("{kid_uuid}", &guid_string(kid))
        .replace("{locator}", &utf8_percent_encode(locator, TEMPLATE_VALUE).to_string());
    expanded.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::playready::guid_le_bytes;
    use super::*;
    use crate::protect::ContentKey;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    pub(super) fn kid(s: &str) -> [u8; 16] {
        crate::protect::parse_hex16(s).unwrap()
    }

    pub(super) const KEY1: [u8; 16] =
        [0x16, 0x66, 0x34, 0xc6, 0x75, 0x82, 0x3c, 0x23, 0x5a, 0x4a, 0x94, 0x46, 0xfa, 0xd5, 0x2e, 0x4d];

    pub(super) fn systems() -> DrmSystems {
        DrmSystems {
            widevine: Some(WidevineSystem {
                license_url: Some("https://wv.example/lic".into()),
                content_id: Some("{locator}".into()),
            }),
            playready: Some(PlayReadySystem {
                license_url: Some("https://pr.example/rightsmanager.asmx?kid={kid_uuid}&x=1".into()),
            }),
            fairplay: Some(FairPlaySystem { key_uri: "skd://{kid}".into() }),
            clearkey: Some(ClearKeySystem {
                license_url: "https://origin.example/clearkey/{locator}/license".into(),
                key_url: Some("https://origin.example/keys/{locator}/{kid}".into()),
            }),
        }
    }

    pub(super) const LOCATOR: &str = "11111111-2222-3333-4444-555555555555";

    pub(super) fn test_key() -> ContentKey {
        ContentKey { kid: kid("9eb4050de44b4802932e27d75083e266"), key: KEY1 }
    }

    #[test]
    fn guids() {
        let k = kid("9eb4050de44b4802932e27d75083e266");
        assert_eq!(guid_string(&k), "9eb4050d-e44b-4802-932e-27d75083e266");
        // The same KID as a Clear Key base64url KID (DASH-IF / dash.js example).
        assert_eq!(URL_SAFE_NO_PAD.encode(k), "nrQFDeRLSAKTLifXUIPiZg");
        assert_eq!(
            base16ct::lower::encode_string(&guid_le_bytes(&kid("00112233445566778899aabbccddeeff"))),
            "33221100554477668899aabbccddeeff"
        );
    }

    #[test]
    fn templates_expand_and_stay_quotable() {
        let k = kid("9eb4050de44b4802932e27d75083e266");
        assert_eq!(
            expand_template("skd://{kid_uuid}?l={locator}", &k, "a b\"c"),
            "skd://9eb4050d-e44b-4802-932e-27d75083e266?l=a%20b%22c"
        );
        assert_eq!(expand_template("x\"y\nz", &k, ""), "x%22y%0Az");
        assert!(systems().validate().is_ok());
        let mut bad = systems();
        bad.fairplay = Some(FairPlaySystem { key_uri: "skd://\"".into() });
        assert!(bad.validate().is_err());
        let mut bad = systems();
        bad.clearkey = Some(ClearKeySystem { license_url: "/relative".into(), key_url: None });
        assert!(bad.validate().is_err());
    }
}
