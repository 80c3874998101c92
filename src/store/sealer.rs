//! Key material at rest: content key values and token-restriction keys are stored in the
//! documents sealed with AES-256-GCM, under a 32-byte key that only the origin's environment
//! holds, so read access to the bucket does not give away content keys.
//!
//! A sealed value is `sealed:v1:` followed by base64 (standard, padded) of a random 96-bit
//! nonce and the ciphertext with its 16-byte tag. A fresh nonce per seal keeps one key safe
//! for far more values than a store ever holds (NIST SP 800-38D allows 2^32 random nonces).

use aes_gcm::aead::{Aead, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Key};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use zeroize::Zeroizing;

use super::StoreError;

/// What every sealed value starts with; the version names the cipher and layout.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// The environment variable holding the sealing key unless `[store] key_env` names another.
pub const DEFAULT_KEY_ENV: &str = "JIT_ORIGIN_STORE_KEY";

const NONCE_BYTES: usize = 12;

type Nonce = aes_gcm::Nonce<aes_gcm::aead::consts::U12>;

/// Seals and opens key material with the store's key. `Debug` never shows the key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { key: <redacted> }")
    }
}

impl Sealer {
    /// A sealer with a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Sealer, String> {
        let key = Key::<Aes256Gcm>::try_from(key)
            .map_err(|_| format!("the sealing key must be 32 bytes, not {}", key.len()))?;
        Ok(Sealer { cipher: Aes256Gcm::new(&key) })
    }

    /// The sealer whose key (base64 of 32 bytes) is in the environment variable `var`. The
    /// error names the variable and what is wrong, never its value.
    pub fn from_env(var: &str) -> Result<Sealer, String> {
        let encoded = Zeroizing::new(std::env::var(var).map_err(|_| {
            format!(
                "[store]: environment variable {var} is not set: it must hold the key (32 random bytes, base64) \
                 that encrypts content keys in the store's documents, e.g. from `openssl rand -base64 32`"
            )
        })?);
        let key = Zeroizing::new(
            crate::protect::decode_base64(encoded.trim())
                .ok_or_else(|| format!("[store]: environment variable {var} is not base64"))?,
        );
        Sealer::new(&key).map_err(|e| format!("[store]: environment variable {var}: {e}"))
    }

    /// `plaintext` sealed under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = Nonce::generate();
        // Encryption fails only for plaintexts beyond GCM's 64 GiB limit; keys are bytes.
        let ciphertext = self.cipher.encrypt(&nonce, plaintext).unwrap_or_default();
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", BASE64_STANDARD.encode(sealed))
    }

    /// The plaintext of a sealed value; an error when it is not one, or was sealed under
    /// another key, or was altered.
    pub fn open(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let bad = |why: &str| StoreError::Unsealable(why.to_string());
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(|| bad("not a sealed value"))?;
        let bytes = BASE64_STANDARD.decode(encoded).map_err(|_| bad("not base64"))?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(bad("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).map_err(|_| bad("bad nonce"))?;
        let plaintext =
            self.cipher.decrypt(&nonce, ciphertext).map_err(|_| bad("sealed with another key, or altered"))?;
        Ok(Zeroizing::new(plaintext))
    }

    /// Key material as the documents spell it (base64 text, as AMS JSON has keys), sealed.
    /// Fits the models' `map_secrets`.
    pub fn seal_text(&self, text: &str) -> String {
        self.seal(text.as_bytes())
    }

    /// A value sealed by [`Sealer::seal_text`], as the text it was.
    pub fn open_text(&self, sealed: &str) -> Result<String, String> {
        let bytes = self.open(sealed).map_err(|e| e.to_string())?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a sealed value is not text".to_string())
    }

    /// Whether `value` is a sealed value (as opposed to key material in clear).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_fresh_nonces_and_refuses_other_keys_and_tampering() {
        let sealer = Sealer::new(&[7; 32]).unwrap();
        let key = b"0123456789abcdef";
        let (a, b) = (sealer.seal(key), sealer.seal(key));
        assert!(Sealer::is_sealed(&a) && a != b, "{a} {b}");
        assert_eq!(&sealer.open(&a).unwrap()[..], key);
        assert_eq!(&sealer.open(&b).unwrap()[..], key);
        assert!(!a.contains("0123456789abcdef"));

        let other = Sealer::new(&[8; 32]).unwrap();
        assert!(matches!(other.open(&a), Err(StoreError::Unsealable(_))));
        let mut bytes = BASE64_STANDARD.decode(&a[SEALED_PREFIX.len()..]).unwrap();
        bytes[20] ^= 1;
        let tampered = format!("{SEALED_PREFIX}{}", BASE64_STANDARD.encode(bytes));
        assert!(sealer.open(&tampered).is_err());
        for bad in ["", "sealed:v1:", "sealed:v1:!!", "sealed:v2:AAAA", "00112233445566778899aabbccddeeff"] {
            assert!(sealer.open(bad).is_err(), "{bad}");
        }
        assert!(Sealer::new(&[0; 16]).is_err());

        let spelled = BASE64_STANDARD.encode(key);
        let sealed = sealer.seal_text(&spelled);
        assert!(!sealed.contains(&spelled));
        assert_eq!(sealer.open_text(&sealed).unwrap(), spelled);
        assert!(sealer.open_text(&sealer.seal(&[0xff, 0xfe])).is_err() && sealer.open_text(&spelled).is_err());
    }

    #[test]
    fn key_comes_from_the_environment_and_errors_never_show_it() {
        let var = "JIT_ORIGIN_TEST_SEALING_KEY";
        // SAFETY: this test alone uses this variable.
        unsafe { std::env::remove_var(var) };
        assert!(Sealer::from_env(var).unwrap_err().contains("is not set"));
        unsafe { std::env::set_var(var, BASE64_STANDARD.encode([1u8; 31])) };
        let e = Sealer::from_env(var).unwrap_err();
        assert!(e.contains("32 bytes") && !e.contains("AQEB"), "{e}");
        unsafe { std::env::set_var(var, BASE64_STANDARD.encode([1u8; 32])) };
        let sealer = Sealer::from_env(var).unwrap();
        assert_eq!(&sealer.open(&Sealer::new(&[1; 32]).unwrap().seal(b"k")).unwrap()[..], b"k");
    }
}
