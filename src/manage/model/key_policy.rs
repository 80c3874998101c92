//! `contentKeyPolicies/{name}`: who may have a locator's keys from the origin's key endpoint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::refuse;
use crate::protect::token::{KeyAccess, TokenPolicy, TokenVerifier, CONTENT_KEY_CLAIM, DEFAULT_LEEWAY_SECS};

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
        let mut require_content_key_claim = false;
        for (c, claim) in token.required_claims.iter().enumerate() {
            if claim.claim_type != CONTENT_KEY_CLAIM || claim.claim_value.is_some() {
                return refuse(
                    &format!("{field}.requiredClaims[{c}]"),
                    format!("only the claim type {CONTENT_KEY_CLAIM} without a value is supported"),
                );
            }
            require_content_key_claim = true;
        }
        let (mut hs256_secret_base64, mut rs256_public_key_pem) = (None, None);
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
                TokenKey::Symmetric { key_value: Some(value) } if hs256_secret_base64.is_none() => {
                    hs256_secret_base64 = Some(value.clone())
                }
                TokenKey::Symmetric { key_value: None } => return refuse(&format!("{key_field}.keyValue"), "required"),
                TokenKey::Rsa { exponent, modulus } if rs256_public_key_pem.is_none() => {
                    rs256_public_key_pem = Some(rsa_public_pem(&key_field, modulus, exponent)?)
                }
                TokenKey::X509 { .. } => {
                    return refuse(
                        &key_field,
                        "X.509 certificate keys are not supported: give the RSA key as exponent and modulus",
                    )
                }
                _ => return refuse(&key_field, "one symmetric and one RSA key at most"),
            }
        }
        Ok(KeyAccess::Token(TokenPolicy {
            issuer: token.issuer.clone(),
            audience: token.audience.clone(),
            hs256_secret_base64,
            rs256_public_key_pem,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            require_content_key_claim,
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
