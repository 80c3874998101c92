//! HLS AES-128 "envelope" encryption (RFC 8216 §4.3.2.4, `METHOD=AES-128`): the whole
//! segment encrypted with AES-128-CBC and PKCS#7 padding.

use aes::cipher::{BlockModeEncrypt, KeyIvInit};
use aes::Block;
use bytes::{Bytes, BytesMut};

use super::ContentKey;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

/// Bytes copied into the output before they are encrypted there: small enough to stay in the
/// L1 cache between the copy and the cipher.
const CHUNK: usize = 4096;

/// Encrypts the concatenation of `parts` (a built segment). A segment built into one buffer
/// nothing else holds (TS) is encrypted in place; otherwise (the zero-copy slices of an fMP4
/// segment) this is the one place its payload is copied, a chunk at a time, each chunk
/// encrypted while it is still in cache.
pub(crate) fn encrypt_segment(key: &ContentKey, iv: &[u8; 16], mut parts: Vec<Bytes>) -> Bytes {
    let mut encryptor = Aes128CbcEnc::new(&key.key.into(), &(*iv).into());
    let single = if parts.len() == 1 { parts.pop().map(Bytes::try_into_mut) } else { None };
    let mut buf = match single {
        Some(Ok(owned)) => owned,
        Some(Err(shared)) => {
            parts.push(shared);
            BytesMut::new()
        }
        None => BytesMut::new(),
    };
    // Bytes at the start of `buf` already encrypted.
    let mut done = 0;
    if !parts.is_empty() {
        let len: usize = parts.iter().map(Bytes::len).sum();
        buf.reserve(len / 16 * 16 + 16);
        // Blocks straddle parts: copy a chunk, encrypt its whole blocks, carry the rest over.
        for part in &parts {
            for chunk in part.chunks(CHUNK) {
                buf.extend_from_slice(chunk);
                done += encrypt_blocks(&mut encryptor, buf.get_mut(done..).unwrap_or_default());
            }
        }
    }
    // PKCS#7: 1 to 16 bytes of the pad length, so the last block is always whole.
    let pad = 16 - buf.len() % 16;
    buf.extend_from_slice(&[pad as u8; 16][..pad]);
    encrypt_blocks(&mut encryptor, buf.get_mut(done..).unwrap_or_default());
    buf.freeze()
}

/// CBC-encrypts the whole blocks at the start of `buf` in place (continuing the chain);
/// returns their length.
fn encrypt_blocks(encryptor: &mut Aes128CbcEnc, buf: &mut [u8]) -> usize {
    let (blocks, _) = Block::slice_as_chunks_mut(buf);
    encryptor.encrypt_blocks(blocks);
    blocks.len() * 16
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, KeyIvInit};

    #[test]
    fn round_trips_and_pads() {
        let key = ContentKey { kid: [0; 16], key: [0x42; 16] };
        let iv = [0x24; 16];
        for len in [0usize, 1, 15, 16, 17, 1000, 3 * CHUNK + 5] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let parts = vec![Bytes::copy_from_slice(&plain[..len / 2]), Bytes::copy_from_slice(&plain[len / 2..])];
            let ct = encrypt_segment(&key, &iv, parts);
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            // One buffer of its own is encrypted in place, one shared is copied: same bytes.
            assert_eq!(encrypt_segment(&key, &iv, vec![Bytes::from(plain.clone())]), ct);
            let shared = Bytes::from(plain.clone());
            assert_eq!(encrypt_segment(&key, &iv, vec![shared.clone()]), ct);
            let odd: Vec<Bytes> = plain.chunks(7).map(Bytes::copy_from_slice).collect();
            assert_eq!(encrypt_segment(&key, &iv, odd), ct);
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
        let ct = encrypt_segment(&key, &[0x24; 16], vec![Bytes::from_static(b"hello world! this is my plaintext.")]);
        let expected =
            "c7fe247ef97b21f07cbdd26cb5d346bfd27867cb00d9486723e159978fb9a5f914cfb228a710de4171e396e7b6cf859e";
        assert_eq!(base16ct::lower::encode_string(&ct), expected);
    }
}
