//! DRM signalling for Common Encryption (DESIGN §4): the bytes and strings that tell a player
//! which DRM systems can decrypt a `cenc` / `cbcs` stream and where their licences come from.
//! Everything here is a pure function of (scheme, KID, key, templates): no I/O, no randomness,
//! so manifests and init segments stay byte-identical across replicas.
//!
//! What is built, and from which public specification:
//!
//! * `pssh` boxes — ISO/IEC 23001-7 §8.1 (version 0, or version 1 with a KID list).
//! * the W3C "common" PSSH (system `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`, v1, KIDs, no data) —
//!   W3C EME "cenc" initialization data format §4. It only says "this is Common Encryption";
//!   DASH-IF forbids reading it as "use Clear Key".
//! * Widevine PSSH data — the public `WidevinePsshData` protobuf: `key_id` = 2 (repeated bytes),
//!   `content_id` = 4 (bytes), `protection_scheme` = 9 (uint32 holding the fourcc, e.g. `cbcs`).
//! * PlayReady Object (PRO) with a WRMHEADER — Microsoft "PlayReady Header Specification":
//!   little-endian lengths, UTF-16LE XML, KID as a base64 *little-endian GUID*, checksum = first 8
//!   bytes of AES-128-ECB(content key, little-endian KID) (AESCTR only), header v4.0.0.0 for
//!   `cenc`, v4.3.0.0 with `ALGID="AESCBC"` (no checksum allowed) for `cbcs`.
//! * PlayReady key seed — Microsoft "PlayReady Key Seed": three SHA-256 digests folded by XOR.
//! * Clear Key licence exchange — W3C EME §9.1.3/9.1.4: request `{"kids":[…],"type":…}`,
//!   response `{"keys":[{"kty":"oct","k":…,"kid":…}],"type":…}`, base64url without padding.
//! * DASH `ContentProtection` — DASH-IF IOP: `urn:mpeg:dash:mp4protection:2011` with
//!   `cenc:default_KID`, one DRM-specific descriptor per system with `cenc:pssh`, `mspr:pro`,
//!   `dashif:Laurl`.
//! * HLS `EXT-X-KEY` — RFC 8216bis: `SAMPLE-AES` (cbcs) / `SAMPLE-AES-CTR` (cenc) with the
//!   KEYFORMATs players recognise (see [`hls_key_lines`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use sha2::{Digest, Sha256};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::protect::{decode_base64, ContentKey, Scheme};

/// Widevine system id `edef8ba9-79d6-4ace-a3c8-27dcd51d21ed`.
pub const WIDEVINE_SYSTEM_ID: [u8; 16] =
    [0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed];
/// PlayReady system id `9a04f079-9840-4286-ab92-e65be0885f95`.
pub const PLAYREADY_SYSTEM_ID: [u8; 16] =
    [0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95];
/// W3C "Common PSSH" system id `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b` (EME cenc init data).
pub const COMMON_SYSTEM_ID: [u8; 16] =
    [0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b];
/// DASH-IF scheme of the Clear Key `ContentProtection` descriptor.
pub const CLEARKEY_DASH_SCHEME: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";
/// DASH scheme of the generic Common Encryption descriptor (carries `cenc:default_KID`).
pub const MP4_PROTECTION_SCHEME: &str = "urn:mpeg:dash:mp4protection:2011";
pub const WIDEVINE_DASH_SCHEME: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
pub const PLAYREADY_DASH_SCHEME: &str = "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95";

/// Namespaces the MPD root must declare when [`dash_content_protection`] output is embedded.
pub const MPD_NAMESPACES: [(&str, &str); 3] = [
    ("xmlns:cenc", "urn:mpeg:cenc:2013"),
    ("xmlns:mspr", "urn:microsoft:playready"),
    ("xmlns:dashif", "https://dashif.org/CPS"),
];

/// HLS KEYFORMAT values.
pub const KEYFORMAT_FAIRPLAY: &str = "com.apple.streamingkeydelivery";
pub const KEYFORMAT_WIDEVINE: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
pub const KEYFORMAT_PLAYREADY: &str = "com.microsoft.playready";
pub const KEYFORMAT_CLEARKEY: &str = "org.w3.clearkey";
pub const KEYFORMAT_IDENTITY: &str = "identity";

const WRMHEADER_NS: &str = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader";
/// Longest licence URL (after template expansion) put into a PlayReady header; the header spec
/// recommends keeping the whole header small, and the PRO record length is a u16.
pub const MAX_LICENSE_URL_LEN: usize = 2048;
/// Most KIDs one Clear Key licence request may ask for.
pub const MAX_CLEARKEY_KIDS: usize = 64;
/// Largest Clear Key licence request body accepted.
pub const MAX_CLEARKEY_REQUEST_BYTES: usize = 16 * 1024;

/// HLS `METHOD` for fMP4 segments: `SAMPLE-AES-CTR` for cenc, `SAMPLE-AES` for cbcs.
fn hls_method(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Cenc => "SAMPLE-AES-CTR",
        Scheme::Cbcs => "SAMPLE-AES",
    }
}

// ---------------------------------------------------------------------------------------------
// GUID helpers
// ---------------------------------------------------------------------------------------------

/// `8-4-4-4-12` lower-case form of a KID (big-endian, as stored in `tenc`): `cenc:default_KID`.
pub fn guid_string(kid: &[u8; 16]) -> String {
    let h = base16ct::lower::encode_string(kid);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The KID in Microsoft GUID byte order: the first three fields (u32, u16, u16) little-endian,
/// the last 8 bytes unchanged. This is what PlayReady headers and the key seed use.
pub fn guid_le_bytes(kid: &[u8; 16]) -> [u8; 16] {
    let mut out = *kid;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

// ---------------------------------------------------------------------------------------------
// pssh
// ---------------------------------------------------------------------------------------------

/// A whole `pssh` box, header included (ISO/IEC 23001-7 §8.1.1). `version1` writes a version-1
/// box with the KID list (a legal, possibly empty, list); otherwise a version-0 box in which
/// `kids` are not written (version 0 has no KID list — put them in the system's data).
pub fn pssh_box(system_id: &[u8; 16], kids: &[[u8; 16]], data: &[u8], version1: bool) -> Bytes {
    let kid_bytes = if version1 { 4 + 16 * kids.len() } else { 0 };
    let size = 8 + 4 + 16 + kid_bytes + 4 + data.len();
    let mut b = BytesMut::with_capacity(size);
    b.put_u32(size as u32);
    b.put_slice(b"pssh");
    b.put_u8(u8::from(version1));
    b.put_slice(&[0, 0, 0]);
    b.put_slice(system_id);
    if version1 {
        b.put_u32(kids.len() as u32);
        for kid in kids {
            b.put_slice(kid);
        }
    }
    b.put_u32(data.len() as u32);
    b.put_slice(data);
    b.freeze()
}

/// The W3C common-system PSSH: version 1, the KIDs, no data. Chrome's and Firefox's Clear Key
/// CDMs read their KIDs from it (EME "cenc" init data).
pub fn common_pssh(kids: &[[u8; 16]]) -> Bytes {
    pssh_box(&COMMON_SYSTEM_ID, kids, &[], true)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `WidevinePsshData` protobuf: `key_id` (field 2) per KID, `content_id` (field 4) when not
/// empty, `protection_scheme` (field 9, the scheme fourcc as a uint32).
pub fn widevine_pssh_data(kids: &[[u8; 16]], content_id: &[u8], scheme: Scheme) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 * kids.len() + content_id.len() + 12);
    for kid in kids {
        out.push((2 << 3) | 2); // field 2, length-delimited
        put_varint(&mut out, 16);
        out.extend_from_slice(kid);
    }
    if !content_id.is_empty() {
        out.push((4 << 3) | 2); // field 4, length-delimited
        put_varint(&mut out, content_id.len() as u64);
        out.extend_from_slice(content_id);
    }
    out.push(9 << 3); // field 9, varint
    put_varint(&mut out, u64::from(u32::from_be_bytes(scheme.fourcc())));
    out
}

/// A Widevine `pssh` box (version 0: the KIDs travel in the protobuf, the form Widevine
/// packagers emit for compatibility with older CDMs).
pub fn widevine_pssh(kids: &[[u8; 16]], content_id: &[u8], scheme: Scheme) -> Bytes {
    pssh_box(&WIDEVINE_SYSTEM_ID, kids, &widevine_pssh_data(kids, content_id, scheme), false)
}

/// A PlayReady `pssh` box (version 0) whose data is the PlayReady Object.
pub fn playready_pssh(pro: &[u8]) -> Bytes {
    pssh_box(&PLAYREADY_SYSTEM_ID, &[], pro, false)
}

// ---------------------------------------------------------------------------------------------
// PlayReady
// ---------------------------------------------------------------------------------------------

/// The WRMHEADER KID value: base64 of the little-endian GUID bytes.
pub fn playready_kid_value(kid: &[u8; 16]) -> String {
    STANDARD.encode(guid_le_bytes(kid))
}

/// The AESCTR key checksum: AES-128-ECB of the little-endian KID under the content key, first
/// 8 bytes (PlayReady Header Specification §5).
pub fn playready_checksum(kid: &[u8; 16], key: &[u8; 16]) -> [u8; 8] {
    let cipher = Aes128::new(&(*key).into());
    let mut block = guid_le_bytes(kid).into();
    cipher.encrypt_block(&mut block);
    let block: [u8; 16] = block.into();
    let mut out = [0u8; 8];
    out.copy_from_slice(&block[..8]);
    out
}

/// The WRMHEADER XML (before UTF-16 encoding). `cenc`: v4.0.0.0 with AESCTR, KID and CHECKSUM
/// (understood by every PlayReady client since 1.0). `cbcs`: v4.3.0.0 with
/// `<KID ALGID="AESCBC" VALUE=…>` and no checksum (PlayReady 4.0+ clients only; the
/// specification forbids a checksum for AESCBC). Attributes are in alphabetical order and all
/// elements explicitly closed, as the header specification requires. An empty licence URL, or
/// one longer than [`MAX_LICENSE_URL_LEN`], is left out.
pub fn playready_wrmheader(kid: &[u8; 16], key: &[u8; 16], license_url: Option<&str>, scheme: Scheme) -> String {
    let kid_b64 = playready_kid_value(kid);
    let la_url = license_url
        .filter(|u| !u.is_empty() && u.len() <= MAX_LICENSE_URL_LEN)
        .map(|u| format!("<LA_URL>{}</LA_URL>", crate::markup::escape(u)))
        .unwrap_or_default();
    match scheme {
        Scheme::Cenc => {
            let checksum = STANDARD.encode(playready_checksum(kid, key));
            format!(
                "<WRMHEADER xmlns=\"{WRMHEADER_NS}\" version=\"4.0.0.0\"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN>\
                 <ALGID>AESCTR</ALGID></PROTECTINFO><KID>{kid_b64}</KID><CHECKSUM>{checksum}</CHECKSUM>{la_url}\
                 </DATA></WRMHEADER>"
            )
        }
        Scheme::Cbcs => format!(
            "<WRMHEADER xmlns=\"{WRMHEADER_NS}\" version=\"4.3.0.0\"><DATA><PROTECTINFO><KIDS>\
             <KID ALGID=\"AESCBC\" VALUE=\"{kid_b64}\"></KID></KIDS></PROTECTINFO>{la_url}</DATA></WRMHEADER>"
        ),
    }
}

/// The PlayReady Object: `u32` total length, `u16` record count (1), then one record of type 1
/// (PlayReady Header): `u16` type, `u16` byte length, UTF-16LE WRMHEADER XML. All integers are
/// little-endian. This is the `mspr:pro` payload, the PlayReady `pssh` data and the HLS
/// `com.microsoft.playready` URI payload.
pub fn playready_header_object(kid: &[u8; 16], key: &[u8; 16], license_url: Option<&str>, scheme: Scheme) -> Vec<u8> {
    let xml = playready_wrmheader(kid, key, license_url, scheme);
    let utf16: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
    // The licence URL is capped, so the record always fits its u16 length; stay total anyway.
    let record_len = u16::try_from(utf16.len()).unwrap_or(u16::MAX);
    let utf16 = &utf16[..usize::from(record_len)];
    let total = 4 + 2 + 2 + 2 + utf16.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&record_len.to_le_bytes());
    out.extend_from_slice(utf16);
    out
}

/// PlayReady key seed content-key derivation (Microsoft "PlayReady Key Seed"): with `s` the
/// first 30 bytes of the seed and `k` the KID in GUID (little-endian) byte order,
/// `A = SHA256(s‖k)`, `B = SHA256(s‖k‖s)`, `C = SHA256(s‖k‖s‖k)`, and
/// `key[i] = A[i]^A[i+16]^B[i]^B[i+16]^C[i]^C[i+16]`. `kid` is given big-endian (`tenc` order).
pub fn playready_key_from_seed(seed: &[u8], kid: &[u8; 16]) -> Result<[u8; 16], String> {
    let s = seed.get(..30).ok_or_else(|| format!("key seed is {} bytes, at least 30 required", seed.len()))?;
    let k = guid_le_bytes(kid);
    let a = Sha256::new().chain_update(s).chain_update(k).finalize();
    let b = Sha256::new().chain_update(s).chain_update(k).chain_update(s).finalize();
    let c = Sha256::new().chain_update(s).chain_update(k).chain_update(s).chain_update(k).finalize();
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = a[i] ^ a[i + 16] ^ b[i] ^ b[i + 16] ^ c[i] ^ c[i + 16];
    }
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// Clear Key licences (W3C EME §9.1)
// ---------------------------------------------------------------------------------------------

/// A parsed Clear Key licence request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearKeyRequest {
    /// The requested KIDs, duplicates removed, in request order.
    pub kids: Vec<[u8; 16]>,
    /// `temporary` (the default when absent) or `persistent-license`.
    pub session_type: &'static str,
}

/// Parses `{"kids":["<base64url>",…],"type":"temporary"}`. Errors name the problem, never echo
/// the request text. KIDs may be padded or not, in either base64 alphabet (players differ).
pub fn parse_clearkey_request(request_json: &[u8]) -> Result<ClearKeyRequest, String> {
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
pub fn clearkey_license_json(request: &ClearKeyRequest, lookup: impl Fn(&[u8; 16]) -> Option<[u8; 16]>) -> String {
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

// ---------------------------------------------------------------------------------------------
// Templates and per-locator DRM configuration
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// HLS
// ---------------------------------------------------------------------------------------------

/// One `EXT-X-KEY` line: its KEYFORMAT and the attribute list that follows `#EXT-X-KEY:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsKeyLine {
    pub keyformat: &'static str,
    pub attributes: String,
    /// Where the URI sits in `attributes`, so a playlist can add query parameters to it.
    pub uri: std::ops::Range<usize>,
}

impl HlsKeyLine {
    /// The full tag line, `#EXT-X-KEY:<attributes>` (no newline).
    pub fn tag(&self) -> String {
        format!("#EXT-X-KEY:{}", self.attributes)
    }
}

/// The `EXT-X-KEY` attribute lists for a cenc/cbcs fMP4 rendition, one per signalled DRM, in
/// this order (each player picks the KEYFORMAT it knows and ignores the rest):
///
/// * **FairPlay** (cbcs only) — `METHOD=SAMPLE-AES,URI="skd://…",
///   KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"`. Safari/AVPlayer hand the
///   `skd://` URI to the app's key-request delegate / EME `initData`.
/// * **Widevine** — `URI="data:text/plain;base64,<Widevine pssh box>"`, `KEYID=0x<kid>`,
///   `KEYFORMAT="urn:uuid:edef8ba9-…"`. Shaka and hls.js use the PSSH as EME init data; both read
///   `KEYID`.
/// * **PlayReady** — `URI="data:text/plain;charset=UTF-16;base64,<PRO>"`, `KEYID=0x<kid>`,
///   `KEYFORMAT="com.microsoft.playready"`. Shaka wraps the PRO into a pssh and takes LA_URL from
///   it; hls.js reads the KID from the WRMHEADER.
/// * **Clear Key for hls.js** — `URI="<clearkey licence URL>"`, `KEYID=0x<kid>`,
///   `KEYFORMAT="org.w3.clearkey"`. hls.js takes the KID from `KEYID` (a non-`data:` URI carries
///   no KID); the licence URL it POSTs to comes from its `drmSystems['org.w3.clearkey'].licenseUrl`
///   config, so the URI here is informational for the app. Shaka ignores this KEYFORMAT.
/// * **`identity` for Shaka** (only when `clearkey.key_url` is set) — `URI="<raw key URL>"`,
///   `KEYFORMAT="identity"`. Shaka fetches the URI as the raw 16-byte key and takes the KID from
///   the init segment's `tenc`; Apple players also accept identity keys for cbcs.
///
/// For cbcs the two Clear Key lines exclude each other: hls.js (1.7) prefers an `identity` key
/// over every other KEYFORMAT and, with `METHOD=SAMPLE-AES`, treats it as MPEG-TS sample
/// encryption, which it cannot apply to fMP4, so playback stalls. A cbcs playlist therefore has
/// the `identity` line when `key_url` is set (Shaka, Apple) and the `org.w3.clearkey` line
/// otherwise (hls.js). hls.js ignores `identity` with `SAMPLE-AES-CTR`, so cenc has both.
///
/// All lines use `METHOD=SAMPLE-AES` for cbcs and `SAMPLE-AES-CTR` for cenc, no `IV` (fMP4
/// carries IVs in `tenc`/`senc`), and `KEYFORMATVERSIONS="1"`. KEYFORMAT needs
/// `EXT-X-VERSION` ≥ 5. The same attribute lists are valid for `#EXT-X-SESSION-KEY` in a
/// multivariant playlist.
pub fn hls_key_lines(scheme: Scheme, key: &ContentKey, locator: &str, systems: &DrmSystems) -> Vec<HlsKeyLine> {
    let method = hls_method(scheme);
    let kid = &key.kid;
    let keyid = format!("0x{}", base16ct::lower::encode_string(kid));
    let mut lines = Vec::new();
    let mut push = |keyformat: &'static str, uri: String, with_keyid: bool| {
        let keyid_attr = if with_keyid { format!(",KEYID={keyid}") } else { String::new() };
        let uri_start = format!("METHOD={method},URI=\"").len();
        lines.push(HlsKeyLine {
            keyformat,
            attributes: format!(
                "METHOD={method},URI=\"{uri}\"{keyid_attr},KEYFORMAT=\"{keyformat}\",KEYFORMATVERSIONS=\"1\""
            ),
            uri: uri_start..uri_start + uri.len(),
        });
    };
    if let (Some(fp), Scheme::Cbcs) = (&systems.fairplay, scheme) {
        push(KEYFORMAT_FAIRPLAY, expand_template(&fp.key_uri, kid, locator), false);
    }
    if let Some(wv) = &systems.widevine {
        let content_id = wv.content_id.as_deref().map(|c| expand_template(c, kid, locator)).unwrap_or_default();
        let pssh = widevine_pssh(&[*kid], content_id.as_bytes(), scheme);
        push(KEYFORMAT_WIDEVINE, format!("data:text/plain;base64,{}", STANDARD.encode(&pssh)), true);
    }
    if let Some(pr) = &systems.playready {
        let la_url = pr.license_url.as_deref().map(|u| expand_template(u, kid, locator));
        let pro = playready_header_object(kid, &key.key, la_url.as_deref(), scheme);
        push(KEYFORMAT_PLAYREADY, format!("data:text/plain;charset=UTF-16;base64,{}", STANDARD.encode(&pro)), true);
    }
    if let Some(ck) = &systems.clearkey {
        if ck.key_url.is_none() || scheme == Scheme::Cenc {
            push(KEYFORMAT_CLEARKEY, expand_template(&ck.license_url, kid, locator), true);
        }
        if let Some(key_url) = &ck.key_url {
            push(KEYFORMAT_IDENTITY, expand_template(key_url, kid, locator), false);
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// DASH
// ---------------------------------------------------------------------------------------------

/// One MPD `ContentProtection` element, in the serde style of `package::dash` (quick-xml:
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
    use crate::media::mp4::reader::{boxes, Cursor};

    fn kid(s: &str) -> [u8; 16] {
        crate::protect::parse_hex16(s).unwrap()
    }

    /// Parses one pssh box back: (version, system id, kids, data).
    fn parse_pssh(b: &[u8]) -> (u8, [u8; 16], Vec<[u8; 16]>, Vec<u8>) {
        let mut it = boxes(b);
        let raw = it.next().unwrap().unwrap();
        assert!(it.next().is_none(), "exactly one box");
        assert_eq!(&raw.kind, b"pssh");
        assert_eq!(raw.bytes.len(), b.len());
        assert_eq!(u32::from_be_bytes(b[0..4].try_into().unwrap()) as usize, b.len());
        let mut c = Cursor::new(raw.payload);
        let (version, flags) = c.full_box().unwrap();
        assert_eq!(flags, 0);
        let system: [u8; 16] = c.bytes(16).unwrap().try_into().unwrap();
        let mut kids = Vec::new();
        if version == 1 {
            let n = c.u32().unwrap();
            for _ in 0..n {
                kids.push(c.bytes(16).unwrap().try_into().unwrap());
            }
        }
        let len = c.u32().unwrap() as usize;
        let data = c.bytes(len).unwrap().to_vec();
        assert_eq!(c.remaining(), 0);
        (version, system, kids, data)
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
    fn pssh_boxes_parse_back() {
        let kids = [kid("00112233445566778899aabbccddeeff"), kid("ffeeddccbbaa99887766554433221100")];
        let b = pssh_box(&WIDEVINE_SYSTEM_ID, &kids, b"data", true);
        assert_eq!(b.len(), 8 + 4 + 16 + 4 + 32 + 4 + 4);
        assert_eq!(parse_pssh(&b), (1, WIDEVINE_SYSTEM_ID, kids.to_vec(), b"data".to_vec()));
        let b = pssh_box(&PLAYREADY_SYSTEM_ID, &kids, b"xyz", false);
        assert_eq!(b.len(), 8 + 4 + 16 + 4 + 3);
        assert_eq!(parse_pssh(&b), (0, PLAYREADY_SYSTEM_ID, vec![], b"xyz".to_vec()));
        let b = common_pssh(&kids[..1]);
        assert_eq!(b.len(), 52);
        assert_eq!(parse_pssh(&b), (1, COMMON_SYSTEM_ID, kids[..1].to_vec(), vec![]));
        assert_eq!(guid_string(&COMMON_SYSTEM_ID), "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b");
        assert_eq!(guid_string(&WIDEVINE_SYSTEM_ID), "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed");
        assert_eq!(guid_string(&PLAYREADY_SYSTEM_ID), "9a04f079-9840-4286-ab92-e65be0885f95");
    }

    /// Decodes a protobuf message by hand into (field, wire type, bytes-or-varint) triples.
    fn decode_protobuf(mut b: &[u8]) -> Vec<(u64, u8, Vec<u8>, u64)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let tag = varint(&mut b);
            let (field, wire) = (tag >> 3, (tag & 7) as u8);
            match wire {
                0 => out.push((field, 0, vec![], varint(&mut b))),
                2 => {
                    let len = varint(&mut b) as usize;
                    out.push((field, 2, b[..len].to_vec(), 0));
                    b = &b[len..];
                }
                w => panic!("unexpected wire type {w}"),
            }
        }
        out
    }

    #[test]
    fn widevine_protobuf_decodes() {
        let kids = [kid("00112233445566778899aabbccddeeff"), kid("0123456789abcdef0123456789abcdef")];
        let data = widevine_pssh_data(&kids, b"content-1", Scheme::Cbcs);
        let fields = decode_protobuf(&data);
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[0], (2, 2, kids[0].to_vec(), 0));
        assert_eq!(fields[1], (2, 2, kids[1].to_vec(), 0));
        assert_eq!(fields[2], (4, 2, b"content-1".to_vec(), 0));
        assert_eq!(fields[3], (9, 0, vec![], 0x6362_6373));
        let data = widevine_pssh_data(&kids[..1], b"", Scheme::Cenc);
        assert_eq!(decode_protobuf(&data), vec![(2, 2, kids[0].to_vec(), 0), (9, 0, vec![], 0x6365_6e63)]);
        // Exact bytes: 0x12 0x10 <kid> 0x48 varint(0x63656e63).
        assert_eq!(&data[..2], &[0x12, 0x10]);
        assert_eq!(&data[18..], &[0x48, 0xe3, 0xdc, 0x95, 0x9b, 0x06]);
        let (v, sys, k, d) = parse_pssh(&widevine_pssh(&kids[..1], b"", Scheme::Cenc));
        assert_eq!((v, sys, k, d), (0, WIDEVINE_SYSTEM_ID, vec![], data));
    }

    // Published vector: Microsoft PlayReady test server key seed (base64
    // "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I") and the Azure Media Services SDK known-good
    // test: KID 339C45B5-FB6D-4BD9-994C-EABD9D41C95B -> key "pTfNwMplhBQG1SXnvyLXVA==".
    const TEST_KEY_SEED: &str = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I";

    #[test]
    fn playready_key_seed_vectors() {
        let seed = decode_base64(TEST_KEY_SEED).unwrap();
        assert_eq!(seed.len(), 30);
        let key = playready_key_from_seed(&seed, &kid("339C45B5-FB6D-4BD9-994C-EABD9D41C95B")).unwrap();
        assert_eq!(STANDARD.encode(key), "pTfNwMplhBQG1SXnvyLXVA==");
        // Second vector (public PlayReady header test): KID 8ba94ade-…, CEK DBFD6922….
        let key = playready_key_from_seed(&seed, &kid("8ba94ade-6eb9-449d-b44f-a5beefaf43b0")).unwrap();
        assert_eq!(base16ct::lower::encode_string(&key), "dbfd6922c321c4bb486f4a1c44097ed6");
        // Bytes past 30 are ignored; shorter seeds are refused without panicking.
        let mut longer = seed.clone();
        longer.extend_from_slice(b"ignored");
        assert_eq!(playready_key_from_seed(&longer, &kid("8ba94ade-6eb9-449d-b44f-a5beefaf43b0")).unwrap(), key);
        assert!(playready_key_from_seed(&seed[..29], &[0; 16]).unwrap_err().contains("30"));
    }

    /// Decodes a PRO back: (total length, record count, record type, XML).
    fn parse_pro(pro: &[u8]) -> (u32, u16, u16, String) {
        let total = u32::from_le_bytes(pro[0..4].try_into().unwrap());
        let count = u16::from_le_bytes([pro[4], pro[5]]);
        let kind = u16::from_le_bytes([pro[6], pro[7]]);
        let len = u16::from_le_bytes([pro[8], pro[9]]) as usize;
        assert_eq!(pro.len(), 10 + len);
        let units: Vec<u16> = pro[10..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        (total, count, kind, String::from_utf16(&units).unwrap())
    }

    fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
        let start = s.find(open).unwrap() + open.len();
        &s[start..start + s[start..].find(close).unwrap()]
    }

    #[test]
    fn playready_header_object_cenc() {
        // Public vector: KID 8ba94ade-6eb9-449d-b44f-a5beefaf43b0, key DBFD6922C321C4BB486F4A1C44097ED6
        // -> VALUE "3kqpi7lunUS0T6W+769DsA==", CHECKSUM "Me48z71nuqY=". Independently checked with
        // `xxd -r -p <<< de4aa98bb96e9d44b44fa5beefaf43b0 | openssl enc -aes-128-ecb -K DBFD… -nopad
        //  | head -c 8 | base64` (the checksum is over the little-endian KID bytes).
        let k = kid("8ba94ade-6eb9-449d-b44f-a5beefaf43b0");
        let key = kid("DBFD6922C321C4BB486F4A1C44097ED6");
        assert_eq!(playready_kid_value(&k), "3kqpi7lunUS0T6W+769DsA==");
        assert_eq!(STANDARD.encode(playready_checksum(&k, &key)), "Me48z71nuqY=");
        let url = "https://test.playready.microsoft.com/service/rightsmanager.asmx?cfg=(a:1)&x=y";
        let pro = playready_header_object(&k, &key, Some(url), Scheme::Cenc);
        let (total, count, kind, xml) = parse_pro(&pro);
        assert_eq!((total as usize, count, kind), (pro.len(), 1, 1));
        assert!(xml.starts_with(
            "<WRMHEADER xmlns=\"http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader\" version=\"4.0.0.0\"><DATA>"
        ));
        assert_eq!(between(&xml, "<KID>", "</KID>"), "3kqpi7lunUS0T6W+769DsA==");
        assert_eq!(between(&xml, "<CHECKSUM>", "</CHECKSUM>"), "Me48z71nuqY=");
        assert_eq!(between(&xml, "<ALGID>", "</ALGID>"), "AESCTR");
        assert_eq!(between(&xml, "<KEYLEN>", "</KEYLEN>"), "16");
        assert_eq!(between(&xml, "<LA_URL>", "</LA_URL>"), url.replace('&', "&amp;"));
        assert!(xml.ends_with("</DATA></WRMHEADER>"));
        // No licence URL: no LA_URL element.
        let (_, _, _, xml) = parse_pro(&playready_header_object(&k, &key, None, Scheme::Cenc));
        assert!(!xml.contains("LA_URL"));
    }

    #[test]
    fn playready_header_object_layout_matches_the_specification_example() {
        // The header specification's base64 PRO example starts with length 0x035C, count 1,
        // type 1, record length 0x0352, then UTF-16LE '<'. Ours has the same framing.
        let example = decode_base64("XAMAAAEAAQBSAzwAVwBSAE0A").unwrap();
        assert_eq!(u32::from_le_bytes(example[0..4].try_into().unwrap()), 0x35c);
        assert_eq!(&example[4..8], &[1, 0, 1, 0]);
        assert_eq!(u16::from_le_bytes([example[8], example[9]]) + 10, 0x35c);
        let pro = playready_header_object(&[7; 16], &[9; 16], None, Scheme::Cenc);
        assert_eq!(&pro[4..8], &[1, 0, 1, 0]);
        assert_eq!(&pro[10..18], &example[10..18]); // "<WRM" in UTF-16LE
    }

    #[test]
    fn playready_header_object_cbcs_is_v4_3_without_checksum() {
        let k = kid("8ba94ade-6eb9-449d-b44f-a5beefaf43b0");
        let pro = playready_header_object(&k, &[1; 16], Some("https://lic.example/pr"), Scheme::Cbcs);
        let (_, _, _, xml) = parse_pro(&pro);
        assert!(xml.contains("version=\"4.3.0.0\""));
        assert!(xml.contains("<KIDS><KID ALGID=\"AESCBC\" VALUE=\"3kqpi7lunUS0T6W+769DsA==\"></KID></KIDS>"));
        assert!(!xml.contains("CHECKSUM"));
        assert!(xml.contains("<LA_URL>https://lic.example/pr</LA_URL>"));
        // The PlayReady pssh carries the PRO verbatim.
        assert_eq!(parse_pssh(&playready_pssh(&pro)), (0, PLAYREADY_SYSTEM_ID, vec![], pro));
    }

    #[test]
    fn playready_drops_oversized_license_urls() {
        let long = format!("https://x/{}", "a".repeat(MAX_LICENSE_URL_LEN));
        let (_, _, _, xml) = parse_pro(&playready_header_object(&[0; 16], &[0; 16], Some(&long), Scheme::Cenc));
        assert!(!xml.contains("LA_URL"));
    }

    const KEY1: [u8; 16] =
        [0x16, 0x66, 0x34, 0xc6, 0x75, 0x82, 0x3c, 0x23, 0x5a, 0x4a, 0x94, 0x46, 0xfa, 0xd5, 0x2e, 0x4d];

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

    fn systems() -> DrmSystems {
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

    const LOCATOR: &str = "11111111-2222-3333-4444-555555555555";

    fn test_key() -> ContentKey {
        ContentKey { kid: kid("9eb4050de44b4802932e27d75083e266"), key: KEY1 }
    }

    fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
        let m3u8 = format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:{attrs}\n#EXTINF:4,\na.m4s\n");
        // Must parse as a playlist (quoted strings intact).
        assert!(m3u8_rs::parse_media_playlist_res(m3u8.as_bytes()).is_ok());
        let pos = attrs.find(&format!("{name}="))?;
        let rest = &attrs[pos + name.len() + 1..];
        Some(match rest.strip_prefix('"') {
            Some(q) => &q[..q.find('"').unwrap()],
            None => rest.split(',').next().unwrap(),
        })
    }

    #[test]
    fn hls_lines_for_cbcs() {
        let key = test_key();
        let lines = hls_key_lines(Scheme::Cbcs, &key, LOCATOR, &systems());
        let formats: Vec<_> = lines.iter().map(|l| l.keyformat).collect();
        assert_eq!(formats, [KEYFORMAT_FAIRPLAY, KEYFORMAT_WIDEVINE, KEYFORMAT_PLAYREADY, KEYFORMAT_IDENTITY]);
        for l in &lines {
            assert_eq!(attr(&l.attributes, "METHOD"), Some("SAMPLE-AES"));
            assert_eq!(attr(&l.attributes, "KEYFORMAT"), Some(l.keyformat));
            assert_eq!(attr(&l.attributes, "KEYFORMATVERSIONS"), Some("1"));
            assert!(attr(&l.attributes, "IV").is_none());
            assert!(l.tag().starts_with("#EXT-X-KEY:METHOD="));
        }
        assert_eq!(attr(&lines[0].attributes, "URI"), Some("skd://9eb4050de44b4802932e27d75083e266"));
        assert!(attr(&lines[0].attributes, "KEYID").is_none());
        // Widevine: data URI with a v0 Widevine pssh, KEYID.
        let uri = attr(&lines[1].attributes, "URI").unwrap();
        let pssh = decode_base64(uri.strip_prefix("data:text/plain;base64,").unwrap()).unwrap();
        let (_, sys, _, data) = parse_pssh(&pssh);
        assert_eq!(sys, WIDEVINE_SYSTEM_ID);
        assert_eq!(data, widevine_pssh_data(&[key.kid], LOCATOR.as_bytes(), Scheme::Cbcs));
        assert_eq!(attr(&lines[1].attributes, "KEYID"), Some("0x9eb4050de44b4802932e27d75083e266"));
        // PlayReady: UTF-16 PRO, v4.3, LA_URL expanded and XML-escaped.
        let uri = attr(&lines[2].attributes, "URI").unwrap();
        let pro = decode_base64(uri.strip_prefix("data:text/plain;charset=UTF-16;base64,").unwrap()).unwrap();
        let (_, _, _, xml) = parse_pro(&pro);
        assert!(xml.contains("version=\"4.3.0.0\""));
        assert!(xml.contains(
            "<LA_URL>https://pr.example/rightsmanager.asmx?kid=9eb4050d-e44b-4802-932e-27d75083e266&amp;x=1</LA_URL>"
        ));
        // identity (Shaka): the raw key URL, and no org.w3.clearkey line, which hls.js could
        // not use next to an identity key anyway.
        assert_eq!(
            attr(&lines[3].attributes, "URI"),
            Some("https://origin.example/keys/11111111-2222-3333-4444-555555555555/9eb4050de44b4802932e27d75083e266")
        );
        // Without a key URL: the org.w3.clearkey line (hls.js) with the licence URL and KEYID.
        let mut no_key_url = systems();
        no_key_url.clearkey.as_mut().unwrap().key_url = None;
        let lines = hls_key_lines(Scheme::Cbcs, &key, LOCATOR, &no_key_url);
        let clearkey = lines.last().unwrap();
        assert_eq!(clearkey.keyformat, KEYFORMAT_CLEARKEY);
        assert!(lines.iter().all(|l| l.keyformat != KEYFORMAT_IDENTITY));
        assert_eq!(
            attr(&clearkey.attributes, "URI"),
            Some("https://origin.example/clearkey/11111111-2222-3333-4444-555555555555/license")
        );
        assert_eq!(attr(&clearkey.attributes, "KEYID"), Some("0x9eb4050de44b4802932e27d75083e266"));
        assert_eq!(attr(&clearkey.attributes, "METHOD"), Some("SAMPLE-AES"));
    }

    #[test]
    fn hls_lines_for_cenc_skip_fairplay() {
        let key = test_key();
        let lines = hls_key_lines(Scheme::Cenc, &key, LOCATOR, &systems());
        assert!(lines.iter().all(|l| l.keyformat != KEYFORMAT_FAIRPLAY));
        assert!(lines.iter().all(|l| attr(&l.attributes, "METHOD") == Some("SAMPLE-AES-CTR")));
        assert_eq!(lines.len(), 4);
        let exact = &lines[1].attributes;
        assert!(exact.starts_with("METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;charset=UTF-16;base64,"));
        assert!(exact.ends_with(
            "\",KEYID=0x9eb4050de44b4802932e27d75083e266,KEYFORMAT=\"com.microsoft.playready\",KEYFORMATVERSIONS=\"1\""
        ));
        assert!(hls_key_lines(Scheme::Cenc, &key, LOCATOR, &DrmSystems::default()).is_empty());
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

        // Serialized with quick-xml the way package::dash does it.
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
