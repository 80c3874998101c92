//! The Clear Key licence exchange — W3C EME §9.1.3/9.1.4: request `{"kids":[…],"type":…}`,
//! response `{"keys":[{"kty":"oct","k":…,"kid":…}],"type":…}`, base64url without padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::protect::decode_base64;

/// Most KIDs one Clear Key licence request may ask for.
const MAX_CLEARKEY_KIDS: usize = 64;
/// Largest Clear Key licence request body accepted.
const MAX_CLEARKEY_REQUEST_BYTES: usize = 16 * 1024;

/// A parsed Clear Key licence request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClearKeyRequest {
    /// The requested KIDs, duplicates removed, in request order.
    kids: Vec<[u8; 16]>,
    /// `temporary` (the default when absent) or `persistent-license`.
    session_type: &'static str,
}

/// Parses `{"kids":["<base64url>",…],"type":"temporary"}`. Errors name the problem, never echo
/// the request text. KIDs may be padded or not, in either base64 alphabet (players differ).
fn parse_clearkey_request(request_json: &[u8]) -> Result<ClearKeyRequest, String> {
    if request_json.len() > MAX_CLEARKEY_REQUEST_BYTES {
        return Err(format!("licence request larger than {MAX_CLEARKEY_REQUEST_BYTES} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(request_json).map_err(|_| "licence request is not valid JSON".to_string())?;
    let object = value.as_object().ok_or("licence request is not a JSON object")?;
    let kids = object.get("kids").ok_or("licence request has no \"kids\"")?;
    let kids = kids.as_array().ok_or("\"kids\" is not an array")?;
    if kids.is_empty() {
        return Err("\"kids\" is empty".into());
    }
    if kids.len() > MAX_CLEARKEY_KIDS {
        return Err(format!("more than {MAX_CLEARKEY_KIDS} kids requested"));
    }
    let session_type = match object.get("type") {
        None | Some(serde_json::Value::Null) => "temporary",
        Some(serde_json::Value::String(t)) if t == "temporary" => "temporary",
        Some(serde_json::Value::String(t)) if t == "persistent-license" => "persistent-license",
        Some(_) => return Err("\"type\" is not \"temporary\" or \"persistent-license\"".into()),
    };
    let mut out: Vec<[u8; 16]> = Vec::with_capacity(kids.len());
    for (i, kid) in kids.iter().enumerate() {
        let kid = kid
            .as_str()
            .and_then(|kid| decode_base64(kid)?.try_into().ok())
            .ok_or_else(|| format!("kids[{i}] is not a base64url-encoded 16-byte key id"))?;
        if !out.contains(&kid) {
            out.push(kid);
        }
    }
    Ok(ClearKeyRequest { kids: out, session_type })
}

#[derive(Serialize)]
struct Jwk {
    kty: &'static str,
    k: String,
    kid: String,
}

#[derive(Serialize)]
struct JwkSet {
    keys: Vec<Jwk>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Answers a Clear Key licence request: a JWK set with one `{"kty":"oct","k","kid"}` per
/// requested KID that `lookup` knows (unknown KIDs are left out; an answer may have no keys,
/// which the caller may prefer to turn into a 403/404 — see [`parse_clearkey_request`] to look
/// first). The session type is echoed. Errors never contain key material.
pub fn clearkey_license_response(
    request_json: &[u8],
    lookup: impl Fn(&[u8; 16]) -> Option<[u8; 16]>,
) -> Result<String, String> {
    let request = parse_clearkey_request(request_json)?;
    Ok(clearkey_license_json(&request, lookup))
}

/// The licence JSON for an already parsed request (see [`clearkey_license_response`]).
fn clearkey_license_json(request: &ClearKeyRequest, lookup: impl Fn(&[u8; 16]) -> Option<[u8; 16]>) -> String {
    let keys = request
        .kids
        .iter()
        .filter_map(|kid| {
            lookup(kid).map(|key| Jwk { kty: "oct", k: URL_SAFE_NO_PAD.encode(key), kid: URL_SAFE_NO_PAD.encode(kid) })
        })
        .collect();
    let set = JwkSet { keys, kind: request.session_type };
    // Serializing strings into a String cannot fail; fall back to an empty set regardless.
    serde_json::to_string(&set).unwrap_or_else(|_| format!("{{\"keys\":[],\"type\":\"{}\"}}", request.session_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protect::drm::tests::{kid, KEY1};

    #[test]
    fn clearkey_license_for_the_published_example() {
        // Request/response pair from the DASH-IF ClearKey example: KID 9eb4050d-… requested as
        // "nrQFDeRLSAKTLifXUIPiZg", answered with k "FmY0xnWCPCNaSpRG-tUuTQ".
        let k1 = kid("9eb4050d-e44b-4802-932e-27d75083e266");
        let lookup = |kid: &[u8; 16]| (kid == &k1).then_some(KEY1);
        let response =
            clearkey_license_response(br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":"temporary"}"#, lookup).unwrap();
        assert_eq!(
            response,
            r#"{"keys":[{"kty":"oct","k":"FmY0xnWCPCNaSpRG-tUuTQ","kid":"nrQFDeRLSAKTLifXUIPiZg"}],"type":"temporary"}"#
        );
        // Unknown KIDs are omitted; duplicates answered once; padded KIDs accepted; type echoed.
        let response = clearkey_license_response(
            br#"{"kids":["LwVHf8JLtPrv2GUXFW2v_A","nrQFDeRLSAKTLifXUIPiZg==","nrQFDeRLSAKTLifXUIPiZg"],"type":"persistent-license"}"#,
            lookup,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&response).unwrap();
        assert_eq!(v["keys"].as_array().unwrap().len(), 1);
        assert_eq!(v["keys"][0]["kid"], "nrQFDeRLSAKTLifXUIPiZg");
        assert_eq!(v["type"], "persistent-license");
        // No "type": temporary. Nothing known: an empty key list.
        let response = clearkey_license_response(br#"{"kids":["LwVHf8JLtPrv2GUXFW2v_A"]}"#, lookup).unwrap();
        assert_eq!(response, r#"{"keys":[],"type":"temporary"}"#);
    }

    #[test]
    fn clearkey_rejects_malformed_requests_without_leaking() {
        let lookup = |_: &[u8; 16]| Some(KEY1);
        let secret = URL_SAFE_NO_PAD.encode(KEY1);
        let many = format!("{{\"kids\":[{}]}}", vec!["\"nrQFDeRLSAKTLifXUIPiZg\""; MAX_CLEARKEY_KIDS + 1].join(","));
        let huge = vec![b' '; MAX_CLEARKEY_REQUEST_BYTES + 1];
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"kids":"nrQFDeRLSAKTLifXUIPiZg"}"#,
            br#"{"kids":[]}"#,
            br#"{"kids":[42]}"#,
            br#"{"kids":["short"]}"#,
            br#"{"kids":["nrQFDeRLSAKTLifXUIPiZgAA"]}"#,
            br#"{"kids":["nrQFDeRLSAKTLifXUIPi!g"]}"#,
            br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":"forever"}"#,
            br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":1}"#,
            many.as_bytes(),
            &huge,
        ] {
            let err = clearkey_license_response(bad, lookup).unwrap_err();
            assert!(!err.contains(&secret) && !err.contains("nrQF"), "{err}");
        }
    }
}
