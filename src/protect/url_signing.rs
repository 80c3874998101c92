//! Signed, expiring URLs per locator.
//!
//! A locator with `url_signing_key_base64` serves only requests whose query carries
//! `sig={expires}.{mac}`:
//!
//! * `expires`: Unix time in seconds after which the URL stops working;
//! * `mac`: lowercase hex of HMAC-SHA256(key, "{expires}:/{locator}/").
//!
//! The signature covers the locator's whole URL space, so one signed manifest URL is enough:
//! the manifests carry `sig` on to every URL they list (playlists, init segments, segments,
//! keys), and players need no extra logic. `jit-origin sign-url` makes such URLs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A locator's URL signing key (Debug never shows it).
#[derive(Clone)]
pub struct SigningKey(pub Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The query parameter that carries the signature.
pub const PARAM: &str = "sig";

/// The MAC over a locator's URL space (HMAC takes keys of any length: never None in practice).
fn mac(key: &[u8], locator: &str, expires: u64) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(format!("{expires}:/{locator}/").as_bytes());
    Some(mac)
}

/// The `sig` value for `locator`, valid until `expires` (Unix seconds).
pub fn sign(key: &[u8], locator: &str, expires: u64) -> Option<String> {
    let tag = mac(key, locator, expires)?.finalize().into_bytes();
    Some(format!("{expires}.{}", base16ct::lower::encode_string(&tag)))
}

/// How long a URL signed by `jit-origin sign-url` (unless told otherwise) or printed by
/// `serve` stays valid: a day.
pub const DEFAULT_VALID_SECS: u64 = 86_400;

/// `url` with `sig=` for `locator` appended, valid for `valid_secs` from now.
pub fn sign_url(url: &str, key: &[u8], locator: &str, valid_secs: u64) -> Option<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let sig = sign(key, locator, now.saturating_add(valid_secs))?;
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{separator}{PARAM}={sig}"))
}

/// Why a signed URL was refused (said to the client; names no secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Expired,
    BadSignature,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "this locator needs a signed URL (sig=)",
            Refusal::Malformed => "malformed sig=",
            Refusal::Expired => "the signed URL has expired",
            Refusal::BadSignature => "the URL signature does not match",
        }
    }
}

/// Checks `sig` (the parameter's value, if any) for `locator` at time `now`; the comparison
/// of the MAC takes the same time whatever the bytes.
pub fn verify(key: &[u8], locator: &str, sig: Option<&str>, now: u64) -> Result<(), Refusal> {
    let sig = sig.ok_or(Refusal::Missing)?;
    let (expires, hex) = sig.split_once('.').ok_or(Refusal::Malformed)?;
    let expires: u64 = expires.parse().map_err(|_| Refusal::Malformed)?;
    let tag = decode_hex(hex).ok_or(Refusal::Malformed)?;
    if now > expires {
        return Err(Refusal::Expired);
    }
    let mac = mac(key, locator, expires).ok_or(Refusal::BadSignature)?;
    mac.verify_slice(&tag).map_err(|_| Refusal::BadSignature)
}

/// The 32 bytes of an HMAC-SHA256 tag from 64 hex digits.
fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let mut tag = [0u8; 32];
    let decoded = base16ct::mixed::decode(hex, &mut tag).ok()?;
    (decoded.len() == tag.len()).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let sig = sign(KEY, "loc", 2_000).unwrap();
        assert_eq!(verify(KEY, "loc", Some(&sig), 1_000), Ok(()));
        assert_eq!(verify(KEY, "loc", Some(&sig), 2_000), Ok(()));
        assert_eq!(verify(KEY, "loc", Some(&sig), 2_001), Err(Refusal::Expired));
    }

    #[test]
    fn tampering_is_refused() {
        let sig = sign(KEY, "loc", 2_000).unwrap();
        assert_eq!(verify(KEY, "other", Some(&sig), 1_000), Err(Refusal::BadSignature));
        assert_eq!(verify(b"another key of 32 bytes........", "loc", Some(&sig), 1_000), Err(Refusal::BadSignature));
        let later = sig.replacen("2000", "3000", 1);
        assert_eq!(verify(KEY, "loc", Some(&later), 1_000), Err(Refusal::BadSignature));
        assert_eq!(verify(KEY, "loc", None, 1_000), Err(Refusal::Missing));
        assert_eq!(verify(KEY, "loc", Some("2000.zz"), 1_000), Err(Refusal::Malformed));
        assert_eq!(verify(KEY, "loc", Some("x.00"), 1_000), Err(Refusal::Malformed));
    }
}
