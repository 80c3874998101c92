//! Encryption applied per request: content keys and their deterministic IVs, and the
//! schemes built on them. `envelope` is HLS AES-128 (whole segments, AES-128-CBC, PKCS#7).
//!
//! Determinism (DESIGN §4): the same URL gives the same bytes on every replica and rebuild,
//! so nothing here is random. IVs are derived from the content key and the segment's
//! identity (see [`segment_iv`]): unique per (rendition, segment) under one key, and
//! unpredictable without the key.

pub(crate) mod common_encryption;
pub mod drm;
pub(crate) mod envelope;
pub mod token;
pub mod url_signing;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use base64::alphabet::{Alphabet, STANDARD, URL_SAFE};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::media::mp4::FourCC;

/// A Common Encryption protection scheme (ISO/IEC 23001-7 §4.2): how samples are encrypted,
/// and what the init segment's `schm`, the DASH mp4protection descriptor and the DRM headers
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// AES-128-CTR, per-sample 8-byte IVs (Widevine, PlayReady, ClearKey).
    Cenc,
    /// AES-128-CBC with a 1:9 pattern for video and a constant IV (FairPlay, Widevine,
    /// PlayReady 4+, ClearKey).
    Cbcs,
}

impl Scheme {
    /// The four-CC: the `schm` scheme_type.
    pub fn fourcc(self) -> FourCC {
        match self {
            Scheme::Cenc => *b"cenc",
            Scheme::Cbcs => *b"cbcs",
        }
    }
    /// The four-CC as text (`cenc` / `cbcs`), the DASH mp4protection `@value`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Cenc => "cenc",
            Scheme::Cbcs => "cbcs",
        }
    }
}

/// A content key: key id (KID) and the 16-byte AES key. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey {
    pub kid: [u8; 16],
    pub key: [u8; 16],
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentKey {{ kid: {}, key: <redacted> }}", self.kid_hex())
    }
}

impl ContentKey {
    /// From 32-hex-digit strings (config form).
    pub fn from_hex(kid: &str, key: &str) -> Result<ContentKey, String> {
        Ok(ContentKey {
            kid: parse_hex16(kid).map_err(|e| format!("kid: {e}"))?,
            key: parse_hex16(key).map_err(|_| "key: not 32 hex digits".to_string())?,
        })
    }
    pub fn kid_hex(&self) -> String {
        base16ct::lower::encode_string(&self.kid)
    }
}

/// 16 bytes from 32 hex digits of either case (dashes of a GUID form allowed).
pub fn parse_hex16(text: &str) -> Result<[u8; 16], String> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if digits.len() != 32 {
        return Err(format!("'{text}' is not 32 hex digits"));
    }
    let mut out = [0u8; 16];
    base16ct::mixed::decode(&digits, &mut out).map_err(|_| format!("'{text}' is not hex"))?;
    Ok(out)
}

/// Decodes base64 in either alphabet (standard or URL-safe, not mixed) with padding optional
/// but, if present, correct, as keys and KIDs reach us both ways (config files, players).
/// Non-canonical encodings (stray bits in the last character) are rejected, so one byte
/// string has exactly one accepted spelling per alphabet.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const fn engine(alphabet: &Alphabet, padding: DecodePaddingMode) -> GeneralPurpose {
        GeneralPurpose::new(alphabet, GeneralPurposeConfig::new().with_decode_padding_mode(padding))
    }
    const PADDED: [GeneralPurpose; 2] = [
        engine(&STANDARD, DecodePaddingMode::RequireCanonical),
        engine(&URL_SAFE, DecodePaddingMode::RequireCanonical),
    ];
    const UNPADDED: [GeneralPurpose; 2] =
        [engine(&STANDARD, DecodePaddingMode::RequireNone), engine(&URL_SAFE, DecodePaddingMode::RequireNone)];
    let engines = if text.ends_with('=') { &PADDED } else { &UNPADDED };
    engines.iter().find_map(|e| e.decode(text).ok())
}

/// The IV of one segment: AES-128-ECB under the content key of the 16-byte block
/// `bitrate (u32 BE) ‖ xxh3(track name)[0..3] ‖ container ‖ time (u64 BE)`, where `container`
/// tells the segment formats apart (their bytes differ: a TS and an fMP4 segment of the same
/// time must not share an IV under CBC). Same inputs, same IV, on every replica; distinct
/// renditions, containers and segments get distinct IVs.
pub fn segment_iv(key: &ContentKey, bitrate: u64, track: &str, container: u8, time: u64) -> [u8; 16] {
    let name = xxhash_rust::xxh3::xxh3_64(track.as_bytes()).to_be_bytes();
    let mut block = [0u8; 16];
    block[0..4].copy_from_slice(&(bitrate as u32).to_be_bytes());
    block[4..7].copy_from_slice(&name[0..3]);
    block[7] = container;
    block[8..16].copy_from_slice(&time.to_be_bytes());
    let cipher = Aes128::new(&key.key.into());
    let mut out = block.into();
    cipher.encrypt_block(&mut out);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_never_print() {
        let k = ContentKey::from_hex("0123456789abcdef0123456789ABCDEF", "00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(k.kid_hex(), "0123456789abcdef0123456789abcdef");
        assert!(!format!("{k:?}").contains("00112233"));
        assert!(ContentKey::from_hex("01", "00").is_err());
        assert_eq!(parse_hex16("01234567-89ab-cdef-0123-456789abcdef").unwrap()[15], 0xef);
    }

    #[test]
    fn base64_in_either_alphabet_with_or_without_padding() {
        // RFC 4648 §10 vectors.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode_base64(enc).unwrap(), plain.as_bytes());
            assert_eq!(decode_base64(enc.trim_end_matches('=')).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode_base64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("-_8").unwrap(), vec![0xfb, 0xff]);
        for bad in ["Z", "Zg=", "Zg===", "Zh==", "Z!==", "+_8A", "Zm9v Zg==", "=Zm9"] {
            assert!(decode_base64(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ivs_are_deterministic_and_distinct() {
        let k = ContentKey { kid: [1; 16], key: [2; 16] };
        assert_eq!(segment_iv(&k, 1, "video", 0, 0), segment_iv(&k, 1, "video", 0, 0));
        assert_ne!(segment_iv(&k, 1, "video", 0, 0), segment_iv(&k, 2, "video", 0, 0));
        assert_ne!(segment_iv(&k, 1, "video", 0, 0), segment_iv(&k, 1, "audio", 0, 0));
        assert_ne!(segment_iv(&k, 1, "video", 0, 0), segment_iv(&k, 1, "video", 1, 0));
        assert_ne!(segment_iv(&k, 1, "video", 0, 0), segment_iv(&k, 1, "video", 0, 1));
    }
}
