//! `contentKeyPolicies/{name}`: who may have a locator's keys from the origin's key endpoint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::refuse;
use crate::protect::token::{
    parse_rsa_public_pem, KeyAccess, RequiredClaim, TokenPolicy, TokenVerifier, CONTENT_KEY_CLAIM, DEFAULT_LEEWAY_SECS,
};

/// `contentKeyPolicies/{name}`: who may have a locator's keys from the origin's key endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentKeyPolicyProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<ContentKeyPolicyOption>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContentKeyPolicyOption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_option_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub configuration: KeyDeliveryConfiguration,
    pub restriction: KeyRestriction,
}

/// How a key is delivered. The origin delivers keys itself (AES-128 key endpoint, ClearKey
/// licences); Widevine and PlayReady licences come from the servers the streaming policy
/// names, so their configurations are kept but not acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@odata.type", deny_unknown_fields)]
pub enum KeyDeliveryConfiguration {
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration")]
    ClearKey {},
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyWidevineConfiguration")]
    Widevine {
        #[serde(rename = "widevineTemplate")]
        widevine_template: String,
    },
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyPlayReadyConfiguration")]
    PlayReady(Map<String, Value>),
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyUnknownConfiguration")]
    Unknown {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@odata.type", deny_unknown_fields)]
pub enum KeyRestriction {
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyOpenRestriction")]
    Open {},
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyTokenRestriction")]
    Token(TokenRestriction),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenRestriction {
    pub issuer: String,
    pub audience: String,
    pub primary_verification_key: TokenKey,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternate_verification_keys: Vec<TokenKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<TokenClaim>,
    /// Only `Jwt`.
    pub restriction_token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_connect_discovery_document: Option<String>,
}

/// A token verification key; the symmetric key is a secret (sealed in the store, shown by
/// `getPolicyPropertiesWithSecrets` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "@odata.type", deny_unknown_fields)]
pub enum TokenKey {
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicySymmetricTokenKey")]
    Symmetric {
        #[serde(rename = "keyValue", default)]
        key_value: Option<String>,
    },
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyRsaTokenKey")]
    Rsa { exponent: String, modulus: String },
    #[serde(rename = "#Microsoft.Media.ContentKeyPolicyX509CertificateTokenKey")]
    X509 {
        #[serde(rename = "rawBody")]
        raw_body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenClaim {
    pub claim_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_value: Option<String>,
}

impl ContentKeyPolicyProperties {
    pub fn check(&self) -> Result<(), String> {
        let access = self.key_access()?;
        if let KeyAccess::Token(policy) = &access {
            TokenVerifier::new(policy)
                .or_else(|e| refuse(&format!("{}.restriction", self.delivering_option_field()), e))?;
        }
        Ok(())
    }

    /// The option that governs the origin's key delivery: the first ClearKey one, else the
    /// first.
    fn delivering_option(&self) -> Option<(usize, &ContentKeyPolicyOption)> {
        let clear_key = |o: &&ContentKeyPolicyOption| matches!(o.configuration, KeyDeliveryConfiguration::ClearKey {});
        self.options.iter().enumerate().find(|(_, o)| clear_key(o)).or_else(|| self.options.iter().enumerate().next())
    }

    fn delivering_option_field(&self) -> String {
        format!("properties.options[{}]", self.delivering_option().map_or(0, |(i, _)| i))
    }

    /// Who may fetch keys under this policy, as the key endpoint checks it (symmetric keys
    /// opened, when read from the store).
    pub fn key_access(&self) -> Result<KeyAccess, String> {
        let Some((i, option)) = self.delivering_option() else {
            return refuse("properties.options", "at least one option is required");
        };
        let field = format!("properties.options[{i}].restriction");
        let token = match &option.restriction {
            KeyRestriction::Open {} => return Ok(KeyAccess::Open),
            KeyRestriction::Token(token) => token,
        };
        if token.restriction_token_type != "Jwt" {
            return refuse(&format!("{field}.restrictionTokenType"), "only Jwt is supported");
        }
        if token.open_id_connect_discovery_document.is_some() {
            return refuse(
                &format!("{field}.openIdConnectDiscoveryDocument"),
                "not supported: give the verification keys",
            );
        }
        // The content key identifier claim without a value binds the token to one key (see
        // `protect::token`); every other required claim is checked as given.
        let mut require_content_key_claim = false;
        let mut required_claims = Vec::new();
        for (c, claim) in token.required_claims.iter().enumerate() {
            if claim.claim_type.trim().is_empty() {
                return refuse(&format!("{field}.requiredClaims[{c}].claimType"), "required");
            }
            match &claim.claim_value {
                None if claim.claim_type == CONTENT_KEY_CLAIM => require_content_key_claim = true,
                value => {
                    required_claims.push(RequiredClaim { claim_type: claim.claim_type.clone(), value: value.clone() })
                }
            }
        }
        let (mut hs256_secrets, mut rs256_keys) = (Vec::new(), Vec::new());
        let keys = std::iter::once(("primaryVerificationKey".to_string(), &token.primary_verification_key)).chain(
            token
                .alternate_verification_keys
                .iter()
                .enumerate()
                .map(|(k, key)| (format!("alternateVerificationKeys[{k}]"), key)),
        );
        for (name, key) in keys {
            let key_field = format!("{field}.{name}");
            match key {
                TokenKey::Symmetric { key_value: Some(value) } => hs256_secrets.push(value.clone()),
                TokenKey::Symmetric { key_value: None } => return refuse(&format!("{key_field}.keyValue"), "required"),
                TokenKey::Rsa { exponent, modulus } => rs256_keys.push(rsa_public_pem(&key_field, modulus, exponent)?),
                TokenKey::X509 { raw_body } => {
                    rs256_keys.push(certificate_pem(&format!("{key_field}.rawBody"), raw_body)?)
                }
            }
        }
        let (hs256_secret_base64, alternate_hs256_secrets_base64) = first_and_rest(hs256_secrets);
        let (rs256_public_key_pem, alternate_rs256_public_keys_pem) = first_and_rest(rs256_keys);
        Ok(KeyAccess::Token(TokenPolicy {
            issuer: token.issuer.clone(),
            audience: token.audience.clone(),
            hs256_secret_base64,
            alternate_hs256_secrets_base64,
            rs256_public_key_pem,
            alternate_rs256_public_keys_pem,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_content_key_claim,
            required_claims,
        }))
    }

    /// Applies `f` to every symmetric key (sealing before a store write, opening after a read).
    pub fn map_secrets(&mut self, mut f: impl FnMut(&str) -> Result<String, String>) -> Result<(), String> {
        for key in self.token_keys_mut() {
            if let TokenKey::Symmetric { key_value: Some(value) } = key {
                *value = f(value)?;
            }
        }
        Ok(())
    }

    /// The policy as GET shows it: symmetric keys removed.
    pub fn without_secrets(mut self) -> Self {
        for key in self.token_keys_mut() {
            if let TokenKey::Symmetric { key_value } = key {
                *key_value = None;
            }
        }
        self
    }

    fn token_keys_mut(&mut self) -> impl Iterator<Item = &mut TokenKey> {
        self.options
            .iter_mut()
            .filter_map(|o| match &mut o.restriction {
                KeyRestriction::Token(t) => Some(
                    std::iter::once(&mut t.primary_verification_key).chain(t.alternate_verification_keys.iter_mut()),
                ),
                KeyRestriction::Open {} => None,
            })
            .flatten()
    }
}

fn first_and_rest(keys: Vec<String>) -> (Option<String>, Vec<String>) {
    let mut keys = keys.into_iter();
    (keys.next(), keys.collect())
}

/// A certificate PEM from AMS's `rawBody` (base64 DER), refused here unless it carries an RSA
/// key the verifier takes, so the error names the field.
fn certificate_pem(field: &str, raw_body: &str) -> Result<String, String> {
    let der = crate::protect::decode_base64(raw_body).ok_or_else(|| format!("{field}: not base64"))?;
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", der));
    parse_rsa_public_pem(&pem).map_err(|e| format!("{field}: {e}"))?;
    Ok(pem)
}

/// An RSA public key PEM (PKCS#1) from AMS's base64 big-endian modulus and exponent.
fn rsa_public_pem(field: &str, modulus: &str, exponent: &str) -> Result<String, String> {
    use pkcs1::der::Encode;
    let decode = |name: &str, text: &str| {
        crate::protect::decode_base64(text).ok_or_else(|| format!("{field}.{name}: not base64"))
    };
    let (n, e) = (decode("modulus", modulus)?, decode("exponent", exponent)?);
    let number = |name: &str| format!("{field}.{name}: not a number");
    let key = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(&n).map_err(|_| number("modulus"))?,
        public_exponent: pkcs1::UintRef::new(&e).map_err(|_| number("exponent"))?,
    };
    let der = key.to_der().map_err(|_| format!("{field}: not an RSA key"))?;
    Ok(pem::encode(&pem::Pem::new("RSA PUBLIC KEY", der)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::model::{base64, parse, Resource};

    #[test]
    fn rsa_keys_given_as_modulus_and_exponent_verify_rs256_tokens() {
        use crate::protect::token::tests::{RSA_A_PRIVATE_PKCS1, RSA_A_PUBLIC_PKCS1};
        use pkcs1::der::Decode;
        let public = pem::parse(RSA_A_PUBLIC_PKCS1).unwrap();
        let key = pkcs1::RsaPublicKey::from_der(public.contents()).unwrap();
        let (modulus, exponent) = (base64(key.modulus.as_bytes()), base64(key.public_exponent.as_bytes()));
        let json = format!(
            r##"{{"properties":{{"options":[{{"configuration":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}},
            "restriction":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyTokenRestriction","issuer":"iss","audience":"aud",
            "primaryVerificationKey":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyRsaTokenKey","exponent":"{exponent}","modulus":"{modulus}"}},
            "restrictionTokenType":"Jwt"}}}}]}}}}"##
        );
        let policy: Resource<ContentKeyPolicyProperties> = parse(json.as_bytes()).unwrap();
        let KeyAccess::Token(token_policy) = policy.properties.key_access().unwrap() else { panic!("open") };
        let verifier = TokenVerifier::new(&token_policy).unwrap();
        let private = pem::parse(RSA_A_PRIVATE_PKCS1).unwrap();
        let claims = serde_json::json!({"iss": "iss", "aud": "aud", "exp": jsonwebtoken::get_current_timestamp() + 60});
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let token =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_der(private.contents()))
                .unwrap();
        assert!(verifier.verify(&token).is_ok());
    }

    #[test]
    fn alternate_keys_x509_certificates_and_required_claims_are_mapped() {
        use crate::protect::token::tests::{openssl_certificate, rsa_a_certificate, RSA_A_PRIVATE_PKCS1};
        use crate::protect::token::{KeyGrant, TokenError};
        let (primary, alternate) = (base64(&[1u8; 32]), base64(&[2u8; 40]));
        let certificate = base64(&rsa_a_certificate());
        let json = format!(
            r##"{{"properties":{{"options":[{{"configuration":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}},
            "restriction":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyTokenRestriction","issuer":"iss","audience":"aud",
            "primaryVerificationKey":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicySymmetricTokenKey","keyValue":"{primary}"}},
            "alternateVerificationKeys":[{{"@odata.type":"#Microsoft.Media.ContentKeyPolicySymmetricTokenKey","keyValue":"{alternate}"}},
            {{"@odata.type":"#Microsoft.Media.ContentKeyPolicyX509CertificateTokenKey","rawBody":"{certificate}"}}],
            "requiredClaims":[{{"claimType":"{CONTENT_KEY_CLAIM}"}},{{"claimType":"urn:example:entitlement","claimValue":"premium"}}],
            "restrictionTokenType":"Jwt"}}}}]}}}}"##
        );
        let policy: Resource<ContentKeyPolicyProperties> = parse(json.as_bytes()).unwrap();
        policy.properties.check().unwrap();
        let KeyAccess::Token(token_policy) = policy.properties.key_access().unwrap() else { panic!("open") };
        assert_eq!(token_policy.hs256_secret_base64, Some(primary));
        assert_eq!(token_policy.alternate_hs256_secrets_base64, [alternate]);
        assert!(token_policy.rs256_public_key_pem.as_ref().is_some_and(|pem| pem.contains("CERTIFICATE")));
        assert!(token_policy.require_content_key_claim);
        assert_eq!(
            token_policy.required_claims,
            [RequiredClaim { claim_type: "urn:example:entitlement".into(), value: Some("premium".into()) }]
        );

        let verifier = TokenVerifier::new(&token_policy).unwrap();
        let kid = "8a2c1f3e-0b4d-4e5f-9a6b-7c8d9e0f1a2b";
        let claims = |entitlement: &str| {
            serde_json::json!({"iss": "iss", "aud": "aud", "exp": jsonwebtoken::get_current_timestamp() + 60,
                CONTENT_KEY_CLAIM: kid, "urn:example:entitlement": entitlement})
        };
        let private = pem::parse(RSA_A_PRIVATE_PKCS1).unwrap();
        let rs256 = jsonwebtoken::EncodingKey::from_rsa_der(private.contents());
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let token = jsonwebtoken::encode(&header, &claims("premium"), &rs256).unwrap();
        let bound = KeyGrant::OnlyKey(crate::protect::parse_hex16(&kid.replace('-', "")).unwrap());
        assert_eq!(verifier.verify(&token), Ok(bound));
        let hs256 = jsonwebtoken::EncodingKey::from_secret(&[2u8; 40]);
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims("basic"), &hs256).unwrap();
        assert_eq!(verifier.verify(&token), Err(TokenError::RequiredClaimMissing));

        let ec = base64(&openssl_certificate(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]));
        let e = parse::<Resource<ContentKeyPolicyProperties>>(json.replace(&certificate, &ec).as_bytes())
            .unwrap()
            .properties
            .check()
            .unwrap_err();
        assert_eq!(
            e,
            "properties.options[0].restriction.alternateVerificationKeys[1].rawBody: the certificate's key is not an RSA key"
        );
    }

    #[test]
    fn token_restrictions_become_key_access() {
        let secret = base64(&[7u8; 32]);
        let json = format!(
            r##"{{"properties":{{"options":[{{"name":"ck","configuration":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}},
            "restriction":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicyTokenRestriction","issuer":"iss","audience":"aud",
            "primaryVerificationKey":{{"@odata.type":"#Microsoft.Media.ContentKeyPolicySymmetricTokenKey","keyValue":"{secret}"}},
            "requiredClaims":[{{"claimType":"{CONTENT_KEY_CLAIM}"}}],"restrictionTokenType":"Jwt"}}}}]}}}}"##
        );
        let policy: Resource<ContentKeyPolicyProperties> = parse(json.as_bytes()).unwrap();
        policy.properties.check().unwrap();
        let KeyAccess::Token(token) = policy.properties.key_access().unwrap() else { panic!("open") };
        assert!(token.require_content_key_claim && token.hs256_secret_base64 == Some(secret.clone()));
        let shown = serde_json::to_string(&policy.properties.clone().without_secrets()).unwrap();
        assert!(!shown.contains(&secret), "{shown}");

        let short = json.replace(&secret, &base64(&[7u8; 8]));
        let e =
            parse::<Resource<ContentKeyPolicyProperties>>(short.as_bytes()).unwrap().properties.check().unwrap_err();
        assert!(e.starts_with("properties.options[0].restriction") && e.contains("32"), "{e}");
        let unknown = json.replace("\"issuer\"", "\"colour\":1,\"issuer\"");
        assert!(parse::<Resource<ContentKeyPolicyProperties>>(unknown.as_bytes()).unwrap_err().contains("colour"));
    }
}
