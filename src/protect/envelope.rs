//! HLS AES-128 "envelope" encryption (RFC 8216 §4.3.2.4, `METHOD=AES-128`): the whole
//! segment encrypted with AES-128-CBC and PKCS#7 padding.

use aes::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit};
use bytes::Bytes;

use super::ContentKey;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

/// Encrypts the concatenation of `parts` (a built segment) into one buffer. CBC chains
/// every block, so this is the one place a segment's payload is copied.
pub(crate) fn encrypt_segment(key: &ContentKey, iv: &[u8; 16], parts: &[Bytes]) -> Bytes {
    let len: usize = parts.iter().map(Bytes::len).sum();
    let padded = (len / 16 + 1) * 16;
    let mut buf = Vec::with_capacity(padded);
    for p in parts {
        buf.extend_from_slice(p);
    }
    buf.resize(padded, 0);
    let encryptor = Aes128CbcEnc::new(&key.key.into(), &(*iv).into());
    // The buffer holds len + a full padding block, which PKCS#7 always fits.
    let out_len = match encryptor.encrypt_padded::<Pkcs7>(&mut buf, len) {
        Ok(ct) => ct.len(),
        Err(_) => padded,
    };
    buf.truncate(out_len);
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockModeDecrypt, KeyIvInit};

    #[test]
    fn round_trips_and_pads() {
        let key = ContentKey { kid: [0; 16], key: [0x42; 16] };
        let iv = [0x24; 16];
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let parts = [Bytes::copy_from_slice(&plain[..len / 2]), Bytes::copy_from_slice(&plain[len / 2..])];
            let ct = encrypt_segment(&key, &iv, &parts);
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            let mut buf = ct.to_vec();
            let pt = cbc::Decryptor::<aes::Aes128>::new(&key.key.into(), &iv.into())
                .decrypt_padded::<Pkcs7>(&mut buf)
                .unwrap();
            assert_eq!(pt, &plain[..]);
        }
    }

    #[test]
    fn matches_openssl_known_answer() {
        // echo -n "hello world! this is my plaintext." | openssl enc -aes-128-cbc -K 42…42 -iv 24…24 | xxd -p
        let key = ContentKey { kid: [0; 16], key: [0x42; 16] };
        let ct = encrypt_segment(&key, &[0x24; 16], &[Bytes::from_static(b"hello world! this is my plaintext.")]);
        let expected =
            "c7fe247ef97b21f07cbdd26cb5d346bfd27867cb00d9486723e159978fb9a5f914cfb228a710de4171e396e7b6cf859e";
        assert_eq!(base16ct::lower::encode_string(&ct), expected);
    }
}
