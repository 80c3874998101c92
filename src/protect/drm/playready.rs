//! PlayReady: the PlayReady Object (PRO) with its WRMHEADER, and content keys derived from a
//! key seed.
//!
//! * PlayReady Object with a WRMHEADER — Microsoft "PlayReady Header Specification":
//!   little-endian lengths, UTF-16LE XML, KID as a base64 *little-endian GUID*, checksum = first 8
//!   bytes of AES-128-ECB(content key, little-endian KID) (AESCTR only), header v4.0.0.0 for
//!   `cenc`, v4.3.0.0 with `ALGID="AESCBC"` (no checksum allowed) for `cbcs`.
//! * PlayReady key seed — Microsoft "PlayReady Key Seed": three SHA-256 digests folded by XOR.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::MAX_LICENSE_URL_LEN;
use crate::protect::Scheme;

const WRMHEADER_NS: &str = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader";

/// The KID in Microsoft GUID byte order: the first three fields (u32, u16, u16) little-endian,
/// the last 8 bytes unchanged. This is what PlayReady headers and the key seed use.
pub(super) fn guid_le_bytes(kid: &[u8; 16]) -> [u8; 16] {
    let mut out = *kid;
    out[0..4].reverse();
    out[4..6].reverse();
    out[6..8].reverse();
    out
}

/// The WRMHEADER KID value: base64 of the little-endian GUID bytes.
fn playready_kid_value(kid: &[u8; 16]) -> String {
    STANDARD.encode(guid_le_bytes(kid))
}

/// The AESCTR key checksum: AES-128-ECB of the little-endian KID under the content key, first
/// 8 bytes (PlayReady Header Specification §5).
fn playready_checksum(kid: &[u8; 16], key: &[u8; 16]) -> [u8; 8] {
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
fn playready_wrmheader(kid: &[u8; 16], key: &[u8; 16], license_url: Option<&str>, scheme: Scheme) -> String {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::protect::decode_base64;
    use crate::protect::drm::pssh::playready_pssh;
    use crate::protect::drm::pssh::tests::parse_pssh;
    use crate::protect::drm::pssh::PLAYREADY_SYSTEM_ID;
    use crate::protect::drm::tests::kid;

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
    pub(in crate::protect::drm) fn parse_pro(pro: &[u8]) -> (u32, u16, u16, String) {
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
}
