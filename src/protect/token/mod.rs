//! Token-restricted key delivery.
//!
//! A locator's content keys (the AES-128 key behind `#EXT-X-KEY`, the ClearKey licence) may be
//! served to anyone who has the URL ([`KeyAccess::Open`]) or only to requests that carry a
//! JSON Web Token ([`KeyAccess::Token`]), in the spirit of Azure Media Services' content key
//! policy with a JWT restriction.
//!
//! The token comes from `Authorization: Bearer …` or, for players that cannot set headers
//! (HLS key fetches from Safari, for one), from a `token=` query parameter; see
//! [`token_from_request`]. A token is a bearer credential, so the access log never writes query
//! strings.
//!
//! A [`TokenVerifier`] is built once per policy when the configuration is loaded, so bad keys
//! are reported at start-up rather than on the first key request. It checks:
//!
//! * the signature, with HS256 and/or RS256 as configured. The algorithm is taken from the
//!   token header and must be one for which a key is configured. Several keys per algorithm
//!   may be configured (key rotation, AMS's primary and alternate verification keys): each is
//!   tried in turn, and the first whose signature verifies decides; everything else (`none`,
//!   `HS512`, `RS256` against an HS256-only policy, `HS256` against an RS256-only policy — the
//!   classic algorithm-confusion attack) is [`TokenError::WrongAlgorithm`];
//! * `iss` and `aud` (both required; `aud` may be a string or an array containing the audience);
//! * `exp` (required) and `nbf` (if present), each with `leeway_secs` of clock skew;
//! * the content key binding, as Azure Media Services has it: a token carrying the
//!   [`CONTENT_KEY_CLAIM`] claim (a key id GUID) unlocks that one key only, so a token issued
//!   for one locator's key cannot fetch another's even where locators share issuer, audience
//!   and secret. `require_content_key_claim = true` (AMS's `requiredClaims` with that claim
//!   type) refuses tokens without it; otherwise an unbound token unlocks every key of the
//!   locators whose policy it satisfies;
//! * `required_claims` (AMS's `requiredClaims`): every one must be present and, where a value
//!   is given, equal it: a string claim equal to the value, or an array of strings containing
//!   it ([`TokenError::RequiredClaimMissing`] otherwise).
//!
//! Status codes follow RFC 6750 §3.1: a failure is "no credentials" or `invalid_token`
//! ("expired, revoked, malformed, or invalid for other reasons"), both `401 Unauthorized`,
//! or — for a valid token that does not grant the requested key — `insufficient_scope`,
//! `403 Forbidden` ([`TokenError::is_insufficient_scope`]). The HTTP layer turns them into the
//! status and the matching `WWW-Authenticate` value.
//!
//! Nothing here puts a token, a secret or key material into an error string or `Debug` output.
//!
//! This file holds the policy and the verifier; `request` finds the token in a request,
//! `error` says why one was refused and with which status, `rsa_key` reads RS256 keys.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

mod error;
mod request;
mod rsa_key;

pub use error::TokenError;
pub use request::token_from_request;
pub use rsa_key::parse_rsa_public_pem;

/// How a locator's keys may be fetched (config: `[locator.key_access]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, tag = "mode", rename_all = "kebab-case")]
pub enum KeyAccess {
    /// Anyone who has the URL.
    Open,
    /// A JWT is required (Authorization: Bearer, or a `token=` query parameter).
    Token(TokenPolicy),
}

/// The restriction a [`KeyAccess::Token`] locator applies. `Debug` never shows the secret.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPolicy {
    /// Required value of the `iss` claim.
    pub issuer: String,
    /// Required `aud` claim (a string, or an array that contains it).
    pub audience: String,
    /// HS256 shared secret, base64 (standard or URL-safe, padding optional).
    /// Must decode to at least 32 bytes (RFC 7518 §3.2).
    pub hs256_secret_base64: Option<String>,
    /// More HS256 secrets accepted as well (key rotation), each as `hs256_secret_base64`.
    #[serde(default)]
    pub alternate_hs256_secrets_base64: Vec<String>,
    /// RS256 public key, PEM (SPKI "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY", or an X.509
    /// "CERTIFICATE" whose key is used), 2048 to 4096 bits.
    pub rs256_public_key_pem: Option<String>,
    /// More RS256 keys accepted as well (key rotation), each as `rs256_public_key_pem`.
    #[serde(default)]
    pub alternate_rs256_public_keys_pem: Vec<String>,
    /// Allowed clock skew in seconds for exp/nbf (default 60, at most [`MAX_LEEWAY_SECS`]).
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Tokens must carry [`CONTENT_KEY_CLAIM`]; a token without it is refused.
    #[serde(default)]
    pub require_content_key_claim: bool,
    /// Claims every token must carry (with the value, where one is given).
    #[serde(default)]
    pub required_claims: Vec<RequiredClaim>,
}

/// A claim a token must carry (config: `required_claims = [{ type = "…", value = "…" }]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaim {
    /// The claim name, e.g. `urn:example:entitlement`.
    #[serde(rename = "type")]
    pub claim_type: String,
    /// When set, a string claim must equal it, or an array-of-strings claim must contain it.
    #[serde(default)]
    pub value: Option<String>,
}

impl RequiredClaim {
    fn is_met_by(&self, claims: &serde_json::Value) -> bool {
        match (claims.get(&self.claim_type), &self.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(serde_json::Value::String(claim)), Some(value)) => claim == value,
            (Some(serde_json::Value::Array(items)), Some(value)) => {
                items.iter().any(|item| item.as_str() == Some(value.as_str()))
            }
            (Some(_), Some(_)) => false,
        }
    }
}

/// The claim binding a token to one content key (AMS's `ContentKeyIdentifierClaim`): the
/// key id as a GUID (`8-4-4-4-12` hex digits, as AMS writes it, or 32 hex digits).
pub const CONTENT_KEY_CLAIM: &str = "urn:microsoft:azure:mediaservices:contentkeyidentifier";

/// Which of a locator's keys a request may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyGrant {
    /// Every key: open access, or a valid token without a content key claim.
    AnyKey,
    /// Only the key with this KID: the token's [`CONTENT_KEY_CLAIM`].
    OnlyKey([u8; 16]),
}

impl KeyGrant {
    /// Whether the key `kid` may be delivered; [`TokenError::WrongContentKey`] when not.
    pub fn check(&self, kid: &[u8; 16]) -> Result<(), TokenError> {
        match self {
            KeyGrant::AnyKey => Ok(()),
            // KIDs are not secrets: a plain comparison leaks nothing.
            KeyGrant::OnlyKey(bound) if bound == kid => Ok(()),
            KeyGrant::OnlyKey(_) => Err(TokenError::WrongContentKey),
        }
    }
}

/// Default clock skew allowed for `exp`/`nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Largest `leeway_secs` accepted: a day of skew is already far more than any clock drifts.
pub const MAX_LEEWAY_SECS: u64 = 86_400;
/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Longest token `verify` will look at; anything longer is `Malformed` without being decoded.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

fn default_leeway_secs() -> u64 {
    DEFAULT_LEEWAY_SECS
}

impl fmt::Debug for TokenPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPolicy")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256_secret_base64", &self.hs256_secret_base64.as_ref().map(|_| Redacted))
            .field("alternate_hs256_secrets_base64", &vec![Redacted; self.alternate_hs256_secrets_base64.len()])
            .field("rs256_public_key_pem", &self.rs256_public_key_pem.as_ref().map(|_| Redacted))
            .field("alternate_rs256_public_keys_pem", &vec![Redacted; self.alternate_rs256_public_keys_pem.len()])
            .field("leeway_secs", &self.leeway_secs)
            .field("require_content_key_claim", &self.require_content_key_claim)
            .field("required_claims", &self.required_claims)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
#[derive(Clone)]
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A verifier built once from a [`TokenPolicy`] (keys decoded and checked at config load).
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    require_content_key_claim: bool,
    required_claims: Vec<RequiredClaim>,
    /// HS256 keys, in the order they are tried; empty when HS256 is not accepted.
    hs256: Vec<DecodingKey>,
    /// RS256 keys, likewise.
    rs256: Vec<DecodingKey>,
    hs256_validation: Validation,
    rs256_validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<String> = [("HS256", &self.hs256), ("RS256", &self.rs256)]
            .into_iter()
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(alg, keys)| format!("{alg} ({} keys)", keys.len()))
            .collect();
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("require_content_key_claim", &self.require_content_key_claim)
            .field("required_claims", &self.required_claims)
            .field("algorithms", &algorithms)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Decodes and checks the policy's keys. The error is one line for the config loader and
    /// never contains key material.
    pub fn new(policy: &TokenPolicy) -> Result<Self, String> {
        if policy.issuer.trim().is_empty() {
            return Err("issuer is empty".into());
        }
        if policy.audience.trim().is_empty() {
            return Err("audience is empty".into());
        }
        if policy.leeway_secs > MAX_LEEWAY_SECS {
            return Err(format!("leeway_secs {} is larger than {MAX_LEEWAY_SECS}", policy.leeway_secs));
        }
        if let Some(i) = policy.required_claims.iter().position(|c| c.claim_type.trim().is_empty()) {
            return Err(format!("required_claims[{i}]: type is empty"));
        }

        let hs256 = configured_keys(
            &policy.hs256_secret_base64,
            "hs256_secret_base64",
            &policy.alternate_hs256_secrets_base64,
            "alternate_hs256_secrets_base64",
            |b64| {
                let secret = decode_base64(b64).ok_or_else(|| "bad base64".to_string())?;
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    return Err(format!(
                        "secret is {} bytes, at least {MIN_HS256_SECRET_BYTES} required",
                        secret.len()
                    ));
                }
                Ok(DecodingKey::from_secret(&secret))
            },
        )?;
        let rs256 = configured_keys(
            &policy.rs256_public_key_pem,
            "rs256_public_key_pem",
            &policy.alternate_rs256_public_keys_pem,
            "alternate_rs256_public_keys_pem",
            |pem| {
                let (n, e) = parse_rsa_public_pem(pem)?;
                Ok(DecodingKey::from_rsa_raw_components(&n, &e))
            },
        )?;
        if hs256.is_empty() && rs256.is_empty() {
            return Err("neither hs256_secret_base64 nor rs256_public_key_pem set".into());
        }

        Ok(TokenVerifier {
            issuer: policy.issuer.clone(),
            audience: policy.audience.clone(),
            leeway_secs: policy.leeway_secs,
            require_content_key_claim: policy.require_content_key_claim,
            required_claims: policy.required_claims.clone(),
            hs256,
            rs256,
            hs256_validation: validation(policy, Algorithm::HS256),
            rs256_validation: validation(policy, Algorithm::RS256),
        })
    }

    /// Checks signature (HS256 or RS256 as configured; other algorithms, including "none", are
    /// rejected), iss, aud, exp (required), nbf (if present), with leeway, and reads the
    /// content key binding: which keys the token grants.
    ///
    /// The signature is checked before any claim, so claim errors (`Expired`, `WrongIssuer`, …)
    /// are only reported for tokens that were signed with a configured key: with several keys
    /// for the token's algorithm, a signature that does not verify moves on to the next key, and
    /// the first key that verifies it decides.
    pub fn verify(&self, token: &str) -> Result<KeyGrant, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (keys, validation) = match header_alg(token)?.as_str() {
            "HS256" => (&self.hs256, &self.hs256_validation),
            "RS256" => (&self.rs256, &self.rs256_validation),
            _ => return Err(TokenError::WrongAlgorithm),
        };
        if keys.is_empty() {
            return Err(TokenError::WrongAlgorithm);
        }

        let claims = keys
            .iter()
            .map(|key| {
                jsonwebtoken::decode::<serde_json::Value>(token, key, validation).map_err(|e| map_jwt_error(e.kind()))
            })
            .find(|attempt| !matches!(attempt, Err(TokenError::BadSignature)))
            .unwrap_or(Err(TokenError::BadSignature))?
            .claims;
        if !self.required_claims.iter().all(|required| required.is_met_by(&claims)) {
            return Err(TokenError::RequiredClaimMissing);
        }
        match claims.get(CONTENT_KEY_CLAIM) {
            None if self.require_content_key_claim => Err(TokenError::ContentKeyClaimMissing),
            None => Ok(KeyGrant::AnyKey),
            Some(serde_json::Value::String(guid)) => {
                let kid = guid.strip_prefix('{').and_then(|g| g.strip_suffix('}')).unwrap_or(guid);
                crate::protect::parse_hex16(kid).map(KeyGrant::OnlyKey).map_err(|_| TokenError::Malformed)
            }
            Some(_) => Err(TokenError::Malformed),
        }
    }
}

/// The primary key (if any) and then the alternates, each decoded by `decode`; an error names
/// the config key it came from.
fn configured_keys(
    primary: &Option<String>,
    primary_name: &str,
    alternates: &[String],
    alternates_name: &str,
    decode: impl Fn(&str) -> Result<DecodingKey, String>,
) -> Result<Vec<DecodingKey>, String> {
    let named = primary.iter().map(|key| (primary_name.to_string(), key));
    let named = named.chain(alternates.iter().enumerate().map(|(i, key)| (format!("{alternates_name}[{i}]"), key)));
    named.map(|(name, key)| decode(key).map_err(|e| format!("{name}: {e}"))).collect()
}

fn validation(policy: &TokenPolicy, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = policy.leeway_secs;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[policy.issuer.as_str()]);
    v.set_audience(&[policy.audience.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

/// Reads `alg` from the JOSE header of a compact JWS (three dot-separated base64url parts). A header
/// with `crit` is refused: no extension is understood here (RFC 7515 §4.1.11).
fn header_alg(token: &str) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    // Compact JWS parts are unpadded base64url (RFC 7515 §7.1); header and payload are not empty.
    let base64url = |part: &str| part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if header.is_empty() || payload.is_empty() || ![header, payload, signature].into_iter().all(base64url) {
        return Err(TokenError::Malformed);
    }
    let bytes = decode_base64(header).ok_or(TokenError::Malformed)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let obj = value.as_object().ok_or(TokenError::Malformed)?;
    if obj.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    match obj.get("alg") {
        Some(serde_json::Value::String(alg)) => Ok(alg.clone()),
        _ => Err(TokenError::Malformed),
    }
}

fn map_jwt_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::WrongAlgorithm
        }
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => TokenError::WrongIssuer,
            "aud" => TokenError::WrongAudience,
            _ => TokenError::Malformed,
        },
        // Key problems cannot happen (keys are checked in `new`); if one did, the token is
        // still not verified, and "bad signature" is the honest answer to the client.
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::Provider(_) => TokenError::BadSignature,
        _ => TokenError::Malformed,
    }
}

/// Base64, standard or URL-safe alphabet, padding optional, ASCII whitespace ignored (a
/// secret may be wrapped over lines).
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let compact: String = input.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    crate::protect::decode_base64(&compact)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const ISS: &str = "https://sts.example.com/";
    const AUD: &str = "urn:jit-origin:keys";
    /// 40 bytes: "jit-origin test secret, 40 bytes long!!!" base64.
    const SECRET: &[u8] = b"jit-origin test secret, 40 bytes long!!!";

    fn b64_std(bytes: &[u8]) -> String {
        BASE64_STANDARD.encode(bytes)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn policy(hs: bool, rs: bool) -> TokenPolicy {
        TokenPolicy {
            issuer: ISS.into(),
            audience: AUD.into(),
            hs256_secret_base64: hs.then(|| b64_std(SECRET)),
            alternate_hs256_secrets_base64: Vec::new(),
            rs256_public_key_pem: rs.then(|| RSA_A_PUBLIC_SPKI.to_string()),
            alternate_rs256_public_keys_pem: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_content_key_claim: false,
            required_claims: Vec::new(),
        }
    }

    /// A self-signed X.509 certificate (DER) made by `openssl req` with the given key options,
    /// e.g. `-key <file>` or `-newkey ec -pkeyopt ec_paramgen_curve:P-256`.
    pub(crate) fn openssl_certificate(key_args: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cert.der");
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=jit-origin token signer", "-outform", "DER"])
            .args(["-keyout", dir.path().join("new-key.pem").to_str().unwrap(), "-out", out.to_str().unwrap()])
            .args(key_args)
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl could not make a certificate");
        std::fs::read(out).unwrap()
    }

    /// A certificate for key pair A, so tokens made by [`rs256`] verify with it.
    pub(crate) fn rsa_a_certificate() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.pem");
        std::fs::write(&key, RSA_A_PRIVATE_PKCS1).unwrap();
        openssl_certificate(&["-key", key.to_str().unwrap()])
    }

    fn certificate_pem(der: Vec<u8>) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", der))
    }

    fn verifier(hs: bool, rs: bool) -> TokenVerifier {
        TokenVerifier::new(&policy(hs, rs)).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({ "iss": ISS, "aud": AUD, "exp": now() + 600, "sub": "viewer-1" })
    }

    fn hs256(claims: &serde_json::Value, secret: &[u8]) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn rs256(claims: &serde_json::Value) -> String {
        let pem = pem::parse(RSA_A_PRIVATE_PKCS1).unwrap();
        assert_eq!(pem.tag(), "RSA PRIVATE KEY");
        encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_der(pem.contents())).unwrap()
    }

    #[test]
    fn valid_hs256_from_header_and_query() {
        let v = verifier(true, false);
        let token = hs256(&claims(), SECRET);
        let from_header = token_from_request(Some(&format!("Bearer {token}")), None).unwrap();
        assert_eq!(v.verify(&from_header), Ok(KeyGrant::AnyKey));
        let from_query = token_from_request(None, Some(&format!("a=1&token={token}&b=2"))).unwrap();
        assert_eq!(v.verify(&from_query), Ok(KeyGrant::AnyKey));
    }

    #[test]
    fn valid_rs256_spki_and_pkcs1() {
        let token = rs256(&claims());
        assert_eq!(verifier(false, true).verify(&token), Ok(KeyGrant::AnyKey));
        let mut p = policy(false, false);
        p.rs256_public_key_pem = Some(RSA_A_PUBLIC_PKCS1.into());
        assert_eq!(TokenVerifier::new(&p).unwrap().verify(&token), Ok(KeyGrant::AnyKey));
    }

    #[test]
    fn both_keys_configured_accepts_either_algorithm() {
        let v = verifier(true, true);
        assert_eq!(v.verify(&hs256(&claims(), SECRET)), Ok(KeyGrant::AnyKey));
        assert_eq!(v.verify(&rs256(&claims())), Ok(KeyGrant::AnyKey));
    }

    #[test]
    fn rs256_signed_by_another_key_is_bad_signature() {
        let mut p = policy(false, false);
        p.rs256_public_key_pem = Some(RSA_B_PUBLIC_SPKI.into());
        let v = TokenVerifier::new(&p).unwrap();
        assert_eq!(v.verify(&rs256(&claims())), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_beyond_leeway() {
        let v = verifier(true, false);
        let mut c = claims();
        c["exp"] = json!(now() - 3600);
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::Expired));
        // Within the 60 s leeway it is still accepted.
        c["exp"] = json!(now() - 10);
        assert_eq!(v.verify(&hs256(&c, SECRET)), Ok(KeyGrant::AnyKey));
    }

    #[test]
    fn missing_exp_is_rejected() {
        let v = verifier(true, false);
        let c = json!({ "iss": ISS, "aud": AUD });
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::Malformed));
    }

    #[test]
    fn nbf_in_future() {
        let v = verifier(true, false);
        let mut c = claims();
        c["nbf"] = json!(now() + 3600);
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::NotYetValid));
        c["nbf"] = json!(now() + 10);
        assert_eq!(v.verify(&hs256(&c, SECRET)), Ok(KeyGrant::AnyKey));
    }

    #[test]
    fn wrong_audience() {
        let v = verifier(true, false);
        let mut c = claims();
        c["aud"] = json!("urn:someone-else");
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::WrongAudience));
        c["aud"] = json!(["urn:someone-else", AUD]);
        assert_eq!(v.verify(&hs256(&c, SECRET)), Ok(KeyGrant::AnyKey));
        c.as_object_mut().unwrap().remove("aud");
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::WrongAudience));
    }

    #[test]
    fn wrong_issuer() {
        let v = verifier(true, false);
        let mut c = claims();
        c["iss"] = json!("https://evil.example.com/");
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::WrongIssuer));
        c.as_object_mut().unwrap().remove("iss");
        assert_eq!(v.verify(&hs256(&c, SECRET)), Err(TokenError::WrongIssuer));
    }

    #[test]
    fn signed_with_another_secret_is_bad_signature() {
        let v = verifier(true, false);
        let token = hs256(&claims(), b"another secret that is also long enough!");
        assert_eq!(v.verify(&token), Err(TokenError::BadSignature));
        // Claims are not looked at before the signature: an expired forgery is still BadSignature.
        let mut c = claims();
        c["exp"] = json!(1);
        let token = hs256(&c, b"another secret that is also long enough!");
        assert_eq!(v.verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_is_rejected() {
        let payload = hs256(&claims(), SECRET).split('.').nth(1).unwrap().to_string();
        // {"alg":"none","typ":"JWT"}
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        for v in [verifier(true, false), verifier(false, true), verifier(true, true)] {
            assert_eq!(v.verify(&format!("{header}.{payload}.")), Err(TokenError::WrongAlgorithm));
            assert_eq!(v.verify(&format!("{header}.{payload}")), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn other_algorithms_are_rejected() {
        let token = encode(&Header::new(Algorithm::HS512), &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(verifier(true, true).verify(&token), Err(TokenError::WrongAlgorithm));
        // RS256 token against an HS256-only policy.
        assert_eq!(verifier(true, false).verify(&rs256(&claims())), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn content_key_claim_binds_a_token_to_one_key() {
        const KID: [u8; 16] =
            [0x1a, 0xd8, 0xc9, 0xc5, 0x6e, 0x36, 0x4c, 0x7e, 0x8c, 0x3b, 0x0d, 0x7e, 0x2c, 0x7f, 0x6e, 0x2d];
        let bound = |value: serde_json::Value| {
            let mut c = claims();
            c[CONTENT_KEY_CLAIM] = value;
            hs256(&c, SECRET)
        };
        let v = verifier(true, false);
        for spelling in [
            "1ad8c9c5-6e36-4c7e-8c3b-0d7e2c7f6e2d",
            "{1AD8C9C5-6E36-4C7E-8C3B-0D7E2C7F6E2D}",
            "1ad8c9c56e364c7e8c3b0d7e2c7f6e2d",
        ] {
            let grant = v.verify(&bound(json!(spelling))).unwrap();
            assert_eq!(grant, KeyGrant::OnlyKey(KID), "{spelling}");
            assert_eq!(grant.check(&KID), Ok(()));
            assert_eq!(grant.check(&[0; 16]), Err(TokenError::WrongContentKey));
        }
        for bad in [json!("not-a-guid"), json!(17), json!(["1ad8c9c5-6e36-4c7e-8c3b-0d7e2c7f6e2d"])] {
            assert_eq!(v.verify(&bound(bad.clone())), Err(TokenError::Malformed), "{bad}");
        }
        // Unbound tokens unlock every key unless the policy requires the claim.
        assert_eq!(v.verify(&hs256(&claims(), SECRET)), Ok(KeyGrant::AnyKey));
        let required =
            TokenVerifier::new(&TokenPolicy { require_content_key_claim: true, ..policy(true, false) }).unwrap();
        assert_eq!(required.verify(&hs256(&claims(), SECRET)), Err(TokenError::ContentKeyClaimMissing));
        assert_eq!(required.verify(&bound(json!("1ad8c9c5-6e36-4c7e-8c3b-0d7e2c7f6e2d"))), Ok(KeyGrant::OnlyKey(KID)));
        // A valid token for another key is insufficient scope (403), not an invalid token.
        assert!(TokenError::WrongContentKey.is_insufficient_scope());
        assert!(TokenError::ContentKeyClaimMissing.is_insufficient_scope());
        assert!(!TokenError::BadSignature.is_insufficient_scope());
    }

    #[test]
    fn every_configured_key_of_the_tokens_algorithm_is_tried() {
        const OTHER_SECRET: &[u8] = b"another jit-origin secret, 40 bytes long";
        let mut p = policy(false, false);
        p.hs256_secret_base64 = Some(b64_std(OTHER_SECRET));
        p.alternate_hs256_secrets_base64 = vec![b64_std(b"a third secret of at least 32 bytes!"), b64_std(SECRET)];
        p.rs256_public_key_pem = Some(RSA_B_PUBLIC_SPKI.into());
        p.alternate_rs256_public_keys_pem = vec![RSA_A_PUBLIC_PKCS1.into()];
        let v = TokenVerifier::new(&p).unwrap();
        assert_eq!(v.verify(&hs256(&claims(), OTHER_SECRET)), Ok(KeyGrant::AnyKey));
        assert_eq!(v.verify(&hs256(&claims(), SECRET)), Ok(KeyGrant::AnyKey));
        assert_eq!(v.verify(&rs256(&claims())), Ok(KeyGrant::AnyKey));
        assert_eq!(
            v.verify(&hs256(&claims(), b"an unknown secret, also 40 bytes long!!")),
            Err(TokenError::BadSignature)
        );
        // The key that verifies the signature decides the claim errors.
        let mut expired = claims();
        expired["exp"] = json!(now() - 3600);
        assert_eq!(v.verify(&hs256(&expired, SECRET)), Err(TokenError::Expired));
        assert_eq!(v.verify(&rs256(&expired)), Err(TokenError::Expired));

        p.alternate_rs256_public_keys_pem.push("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into());
        let err = TokenVerifier::new(&p).unwrap_err();
        assert!(err.starts_with("alternate_rs256_public_keys_pem[1]: "), "{err}");
    }

    #[test]
    fn required_claims_must_be_present_with_their_value() {
        let mut p = policy(true, false);
        p.required_claims = vec![
            RequiredClaim { claim_type: "urn:example:entitlement".into(), value: Some("premium".into()) },
            RequiredClaim { claim_type: "sub".into(), value: None },
        ];
        let v = TokenVerifier::new(&p).unwrap();
        let with = |entitlement: serde_json::Value| {
            let mut c = claims();
            c["urn:example:entitlement"] = entitlement;
            v.verify(&hs256(&c, SECRET))
        };
        assert_eq!(with(json!("premium")), Ok(KeyGrant::AnyKey));
        assert_eq!(with(json!(["basic", "premium"])), Ok(KeyGrant::AnyKey));
        assert_eq!(with(json!("basic")), Err(TokenError::RequiredClaimMissing));
        assert_eq!(with(json!(["basic"])), Err(TokenError::RequiredClaimMissing));
        assert_eq!(with(json!({ "premium": true })), Err(TokenError::RequiredClaimMissing));
        assert_eq!(v.verify(&hs256(&claims(), SECRET)), Err(TokenError::RequiredClaimMissing));
        let mut no_sub = claims();
        no_sub["urn:example:entitlement"] = json!("premium");
        no_sub.as_object_mut().unwrap().remove("sub");
        assert_eq!(v.verify(&hs256(&no_sub, SECRET)), Err(TokenError::RequiredClaimMissing));
        assert!(TokenError::RequiredClaimMissing.is_insufficient_scope());

        p.required_claims.push(RequiredClaim { claim_type: " ".into(), value: None });
        assert_eq!(TokenVerifier::new(&p).unwrap_err(), "required_claims[2]: type is empty");
    }

    #[test]
    fn rsa_key_of_an_x509_certificate_verifies_rs256() {
        let mut p = policy(false, false);
        p.rs256_public_key_pem = Some(certificate_pem(rsa_a_certificate()));
        let v = TokenVerifier::new(&p).unwrap();
        assert_eq!(v.verify(&rs256(&claims())), Ok(KeyGrant::AnyKey));

        let ec = openssl_certificate(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        p.rs256_public_key_pem = Some(certificate_pem(ec));
        let err = TokenVerifier::new(&p).unwrap_err();
        assert_eq!(err, "rs256_public_key_pem: the certificate's key is not an RSA key");
        p.rs256_public_key_pem = Some(certificate_pem(b"not DER".to_vec()));
        assert_eq!(TokenVerifier::new(&p).unwrap_err(), "rs256_public_key_pem: not an X.509 certificate");
    }

    #[test]
    fn hs256_against_rs256_only_is_rejected() {
        // Algorithm confusion: HMAC "signed" with the (public) RSA key as the secret.
        let v = verifier(false, true);
        let token = hs256(&claims(), RSA_A_PUBLIC_SPKI.as_bytes());
        assert_eq!(v.verify(&token), Err(TokenError::WrongAlgorithm));
        let der = pem::parse(RSA_A_PUBLIC_SPKI).unwrap().into_contents();
        assert_eq!(v.verify(&hs256(&claims(), &der)), Err(TokenError::WrongAlgorithm));
        // With both configured, the HMAC key is the configured secret, not the public key.
        assert_eq!(verifier(true, true).verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let v = verifier(true, true);
        for junk in ["garbage", "a.b.c", "a.b.c.d.e", "!!!.???.***", "eyJhbGciOiJIUzI1NiJ9.%%%.abc", "...."] {
            assert_eq!(v.verify(junk), Err(TokenError::Malformed), "{junk}");
        }
        let oversized = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(v.verify(&oversized), Err(TokenError::Malformed));
        // Valid header, payload that is not JSON.
        let token = hs256(&claims(), SECRET);
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = "bm90IGpzb24";
        assert!(v.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn crit_header_is_rejected() {
        let v = verifier(true, false);
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["exp".into()]);
        if let Ok(token) = encode(&header, &claims(), &EncodingKey::from_secret(SECRET)) {
            assert_eq!(v.verify(&token), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn missing() {
        assert_eq!(token_from_request(None, None), None);
        assert_eq!(token_from_request(None, Some("a=1&b=2")), None);
        assert_eq!(token_from_request(None, Some("token=")), None);
        assert_eq!(token_from_request(Some("Bearer "), None), None);
        assert_eq!(verifier(true, false).verify(""), Err(TokenError::Missing));
        assert!(!TokenError::Missing.is_insufficient_scope());
    }

    #[test]
    fn debug_does_not_leak_secrets() {
        let p = policy(true, true);
        let secret_b64 = p.hs256_secret_base64.clone().unwrap();
        let v = TokenVerifier::new(&p).unwrap();
        for dbg in [format!("{v:?}"), format!("{p:?}"), format!("{:?}", KeyAccess::Token(p.clone()))] {
            assert!(!dbg.contains(&secret_b64), "{dbg}");
            assert!(!dbg.contains("MII"), "{dbg}");
            assert!(dbg.contains(ISS));
        }
        assert!(format!("{v:?}").contains("HS256"));
    }

    #[test]
    fn new_rejects_bad_configuration() {
        let err = TokenVerifier::new(&policy(false, false)).unwrap_err();
        assert_eq!(err, "neither hs256_secret_base64 nor rs256_public_key_pem set");

        let mut p = policy(false, false);
        p.hs256_secret_base64 = Some("not*base64!".into());
        let err = TokenVerifier::new(&p).unwrap_err();
        assert!(err.contains("bad base64") && !err.contains("not*base64"), "{err}");

        p.hs256_secret_base64 = Some(b64_std(b"short"));
        assert!(TokenVerifier::new(&p).unwrap_err().contains("at least 32"));

        let mut p = policy(false, false);
        p.rs256_public_key_pem = Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into());
        assert!(TokenVerifier::new(&p).unwrap_err().contains("bad PEM"));
        p.rs256_public_key_pem = Some("hello".into());
        assert!(TokenVerifier::new(&p).unwrap_err().contains("bad PEM"));
        p.rs256_public_key_pem = Some(RSA_A_PRIVATE_PKCS1.into());
        let err = TokenVerifier::new(&p).unwrap_err();
        assert!(err.contains("private key") && !err.contains("MII"), "{err}");

        let mut p = policy(true, false);
        p.leeway_secs = u64::MAX;
        assert!(TokenVerifier::new(&p).is_err());
        p.leeway_secs = 60;
        p.issuer = " ".into();
        assert!(TokenVerifier::new(&p).is_err());
    }

    #[test]
    fn base64_variants() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let std = b64_std(&bytes);
        let url = std.replace('+', "-").replace('/', "_");
        assert_eq!(decode_base64(&std).unwrap(), bytes);
        assert_eq!(decode_base64(&url).unwrap(), bytes);
        assert_eq!(decode_base64(url.trim_end_matches('=')).unwrap(), bytes);
        assert_eq!(decode_base64("Zm9v\nYmE=").unwrap(), b"fooba");
        assert_eq!(decode_base64("Zm9vYg").unwrap(), b"foob");
        assert!(decode_base64("Zm9vY").is_none());
        assert!(decode_base64("Zm=9v").is_none());
        assert!(decode_base64("").is_none());
    }

    #[test]
    fn toml_config() {
        #[derive(serde::Deserialize)]
        struct Locator {
            key_access: KeyAccess,
        }
        let secret = b64_std(SECRET);
        let src = format!(
            "[key_access]\nmode = \"token\"\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\nhs256_secret_base64 = \"{secret}\"\n"
        );
        let loc: Locator = toml::from_str(&src).unwrap();
        let KeyAccess::Token(p) = loc.key_access else { panic!("expected token mode") };
        assert_eq!(p.issuer, ISS);
        assert_eq!(p.audience, AUD);
        assert_eq!(p.leeway_secs, 60);
        assert!(p.rs256_public_key_pem.is_none());
        let v = TokenVerifier::new(&p).unwrap();
        assert_eq!(v.verify(&hs256(&claims(), SECRET)), Ok(KeyGrant::AnyKey));

        // Multi-line PEM and explicit leeway.
        let src = format!(
            "[key_access]\nmode = \"token\"\nissuer = \"i\"\naudience = \"a\"\nleeway_secs = 5\nrs256_public_key_pem = \"\"\"\n{RSA_A_PUBLIC_SPKI}\"\"\"\n"
        );
        let loc: Locator = toml::from_str(&src).unwrap();
        let KeyAccess::Token(p) = loc.key_access else { panic!("expected token mode") };
        assert_eq!(p.leeway_secs, 5);
        assert!(TokenVerifier::new(&p).is_ok());

        // Alternate keys (a certificate among them) and required claims.
        let certificate = certificate_pem(rsa_a_certificate());
        let src = format!(
            "[key_access]\nmode = \"token\"\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n\
             rs256_public_key_pem = \"\"\"\n{RSA_B_PUBLIC_SPKI}\"\"\"\n\
             alternate_rs256_public_keys_pem = [\"\"\"\n{certificate}\"\"\"]\n\
             alternate_hs256_secrets_base64 = [\"{secret}\"]\n\
             required_claims = [{{ type = \"urn:example:entitlement\", value = \"premium\" }}, {{ type = \"sub\" }}]\n"
        );
        let loc: Locator = toml::from_str(&src).unwrap();
        let KeyAccess::Token(p) = loc.key_access else { panic!("expected token mode") };
        assert_eq!(p.required_claims[1], RequiredClaim { claim_type: "sub".into(), value: None });
        let v = TokenVerifier::new(&p).unwrap();
        let mut entitled = claims();
        entitled["urn:example:entitlement"] = json!("premium");
        assert_eq!(v.verify(&rs256(&entitled)), Ok(KeyGrant::AnyKey));
        assert_eq!(v.verify(&hs256(&entitled, SECRET)), Ok(KeyGrant::AnyKey));
        assert_eq!(v.verify(&rs256(&claims())), Err(TokenError::RequiredClaimMissing));

        let loc: Locator = toml::from_str("[key_access]\nmode = \"open\"\n").unwrap();
        assert!(matches!(loc.key_access, KeyAccess::Open));

        assert!(toml::from_str::<Locator>(
            "[key_access]\nmode = \"token\"\nissuer = \"i\"\naudience = \"a\"\nsecret = \"x\"\n"
        )
        .is_err());
        assert!(toml::from_str::<Locator>("[key_access]\nmode = \"signed\"\n").is_err());
        assert!(toml::from_str::<Locator>("[key_access]\nissuer = \"i\"\n").is_err());
    }

    // Fixed 2048-bit test-only RSA key pairs, generated with openssl. `rsa` is only a transitive
    // dependency (of jsonwebtoken's rust_crypto feature), so tests cannot generate keys with it
    // without adding a dev-dependency; and 2048-bit key generation is slow in debug builds.
    /// Key pair A, private half (PKCS#1), used to sign RS256 test tokens.
    pub(crate) const RSA_A_PRIVATE_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEpQIBAAKCAQEAwuZHAtiRQ3S4gHJGEVdrspemx+jUB71WBvRB/yokrQ9m1ZPq
J9gwkgkYnSAYUjQQO6AwxIENMhnX3UwmJ/Gj60Mtz7ZA15po/FAb2iTHwqNxn5cU
zLPIIqGxOl3bfxlGyOTK19AfQg1Dg/N9Ov/NE30TOLPQLenJuhjXv3a24wu60zoO
LbURIUca3gGG2rA+zCtzl/S9xVR4vMMtfkDjP+U3NTny34rgw1ROyYoM6LubbjxY
OjDEpfEBXe//jWwvAEBiTi+YRsVu2jLrKp3Xkig36Fq8hqpzxroBCurdRiwM05mB
/f/9c5ofedDe6WJXsKv28gLw1+BhIX9OdkuBSQIDAQABAoIBAFzcDK9dcfC61wFT
8PBoP4bq3GrZEtTRMADGNf+WG71c3jkabXEofxPFQ7XxScU4yxctnq6xchER4Riu
JGvZpKj97ADQLBrNlgHJRUvtREQHTaak/CL/8XYWpfNSLrdi2qfy4nZq0cnNugJP
a7ZFlHcZm6PjgGevwQ5qsbimnkKUShDlJ2HwWd8TFmFDaRXNblmB8tDwKK6+Xq5X
ogBV2yDBjtI3Bbx5Gwtl4HcCMisL6tUvjrxobHW1nsfIi5vFqnH09vRupS7tq3rZ
hbuNJbQeSnrq2miobd9/vuBnyUQzqxQgNB8XSFVb0lBFD9nna+BC29pFADehgA3r
lCypGKUCgYEA6ag6jyTxKORXpYITJWUnI5vUrOa1at6qaswsQbAye6VowA5+xY0x
AMqtq2tHlmYcuuK6FdbGn9d8xCkB/1XEwyOs4vne62OzMyZZYCv6EjkRgM9lDzqM
DqzrWGUbT4jhaWxQcVYdiZbTv5Ar06EkCn3P1G43Z+JjvrKmd/dpSOsCgYEA1YlJ
sN9dXo5fO94xDGwDR6ZttorJwnWpwX2YDtI7Al7vN0c3EvWRvFHgYbko6i6E44D4
cTPP/tzI0+rk32Vd7XvjH1yqH/DcxneS7qOtfgbMwmKc4CxkQjmH1iga4nzu85ZJ
EjxXPNH5445iKt0DHjLte2cNV0EMDfIJAO3uUZsCgYEAlxBnw9JLhHeU3vGo9T1f
v5rpNlv2oMCTB3c3icSj7uLzRXBZr9ln/C4NeE1kvC0KmB0r2CDCy+biyGQG4ZEP
JGa1SQ3pfOA5pHE/yXjFNfDlixULLnxYvsg3ZDACJzrFGYaov43AjQsRncFVRH7j
MVFEBAC6G5T3jfwsulUgIb8CgYEAz4WDu0PoTruYa+tMyaCzM0/X8f5BhB2ro2J2
g3jmZjBy1Mr+CAvl3RnJMc+rpqMc/KhbSlCrRCm3dtQiJ8Uwmlq66MC6iR4gwTR1
9DvXoNHk7si9YtNhgEa+7268af42jz4vt2wy7+W0r+SxHKz7mb6usy38dh6+I1Nk
UqXo5R8CgYEAhSNYA9J70O4LBhIAparm+EaJZL4gZ7UIZ2jnkDPN0nSm4nZ4GYa5
IiP5WSGdbRlP1Gq7XqvGaq0nvIIWn84gQVU0cee4qP284WGIfhFleFNQvbaklJpM
00e5JlNiGvZ6hIgRSTMnAdCZh4sr3sUpg6asQSnEbzN2p/QRfu5C0CQ=
-----END RSA PRIVATE KEY-----
";
    /// Key pair A, public half, SPKI.
    pub(super) const RSA_A_PUBLIC_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwuZHAtiRQ3S4gHJGEVdr
spemx+jUB71WBvRB/yokrQ9m1ZPqJ9gwkgkYnSAYUjQQO6AwxIENMhnX3UwmJ/Gj
60Mtz7ZA15po/FAb2iTHwqNxn5cUzLPIIqGxOl3bfxlGyOTK19AfQg1Dg/N9Ov/N
E30TOLPQLenJuhjXv3a24wu60zoOLbURIUca3gGG2rA+zCtzl/S9xVR4vMMtfkDj
P+U3NTny34rgw1ROyYoM6LubbjxYOjDEpfEBXe//jWwvAEBiTi+YRsVu2jLrKp3X
kig36Fq8hqpzxroBCurdRiwM05mB/f/9c5ofedDe6WJXsKv28gLw1+BhIX9OdkuB
SQIDAQAB
-----END PUBLIC KEY-----
";
    /// Key pair A, public half, PKCS#1.
    pub(crate) const RSA_A_PUBLIC_PKCS1: &str = "\
-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAwuZHAtiRQ3S4gHJGEVdrspemx+jUB71WBvRB/yokrQ9m1ZPqJ9gw
kgkYnSAYUjQQO6AwxIENMhnX3UwmJ/Gj60Mtz7ZA15po/FAb2iTHwqNxn5cUzLPI
IqGxOl3bfxlGyOTK19AfQg1Dg/N9Ov/NE30TOLPQLenJuhjXv3a24wu60zoOLbUR
IUca3gGG2rA+zCtzl/S9xVR4vMMtfkDjP+U3NTny34rgw1ROyYoM6LubbjxYOjDE
pfEBXe//jWwvAEBiTi+YRsVu2jLrKp3Xkig36Fq8hqpzxroBCurdRiwM05mB/f/9
c5ofedDe6WJXsKv28gLw1+BhIX9OdkuBSQIDAQAB
-----END RSA PUBLIC KEY-----
";
    /// Key pair B, public half, SPKI (its private half was discarded).
    const RSA_B_PUBLIC_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA6H8I5Eu/sIo7ux/Z4XgL
bIegHcMFNOn3ArfBfMUvq+tlLZjfmP0+rCfi32562iMezcjRPPPF5cHRg4fbjH2I
vWtP450wxFOcZAYi2g9DMs6fCYpcnjD+7V+F6Vv7aVbc858Sfiz8ctrGjRvSz52W
lm2cNbLvrlBuUGMiYic+HDwc2cFp35GqVk+cYA0hkLbppAQYypLSAcmhcFOciqNT
l+MqLaOzj/FAPlKXtX+ZP9GmO7jf/uDe4BZBW503+wKxtXSTL0v3NCr2MU99SyuW
3Bnvtdeb2NSqEwFoHiwN1MvMWs0rrNPmDJKmISM7hcIQHTLUfrhtSv70M2klumDc
jwIDAQAB
-----END PUBLIC KEY-----
";
}
