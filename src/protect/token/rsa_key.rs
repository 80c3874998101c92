//! RS256 verification keys from PEM (a public key or an X.509 certificate), checked when the
//! configuration is loaded.

use pkcs1::der::asn1::AnyRef;
use pkcs1::der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use spki::SubjectPublicKeyInfoRef;

const MIN_RSA_BITS: usize = 2048;
/// The RSA implementation refuses larger moduli at verification time.
const MAX_RSA_BITS: usize = 4096;

/// Parses an RSA public key PEM (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`, or the subject key
/// of an X.509 `CERTIFICATE`; the certificate's validity and issuer are not checked, as AMS
/// does not either: it only carries the key) into big-endian
/// modulus and exponent (no leading zeros) and checks their sizes. `DecodingKey::from_rsa_pem`
/// would take the same PEM, but it checks neither size, and a bad key would only show when
/// the first token is verified, not when the configuration is loaded.
pub fn parse_rsa_public_pem(pem: &str) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    let pem = pem::parse(pem).map_err(|_| "bad PEM")?;
    if pem.headers().iter().next().is_some() {
        // RFC 1421 headers (Proc-Type, DEK-Info) mean an encrypted legacy key: not for us.
        return Err("bad PEM");
    }
    let pkcs1 = match pem.tag() {
        "RSA PUBLIC KEY" => pem.contents(),
        "PUBLIC KEY" => spki_rsa_key(pem.contents()).ok_or("bad PEM: not an RSA SubjectPublicKeyInfo")?,
        "CERTIFICATE" => {
            let spki = certificate_spki(pem.contents()).ok_or("not an X.509 certificate")?;
            spki_rsa_key(spki).ok_or("the certificate's key is not an RSA key")?
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            return Err("bad PEM: a private key was given, the public key is needed")
        }
        _ => return Err("bad PEM: expected PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE"),
    };
    let key = pkcs1::RsaPublicKey::from_der(pkcs1).map_err(|_| "bad PEM: not an RSA public key")?;
    let (n, e) = (key.modulus.as_bytes(), key.public_exponent.as_bytes());
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err("RSA modulus must be 2048 to 4096 bits");
    }
    // Public exponent: odd, at least 3, at most 2^33 - 1 (the RSA implementation's limit).
    let e_val = if e.len() <= 8 { e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) } else { u64::MAX };
    if e_val < 3 || e_val % 2 == 0 || e_val > (1 << 33) - 1 {
        return Err("RSA public exponent is not acceptable");
    }
    Ok((n.to_vec(), e.to_vec()))
}

/// The DER subjectPublicKeyInfo of a DER X.509 certificate (RFC 5280 §4.1.2.7), found by
/// walking the certificate with borrowed DER values. `x509-cert`'s decoder was used first, but
/// it allocates what an inner length declares before checking that the bytes are there, so a
/// certificate of a few hundred bytes could make it allocate megabytes; a borrowed value is a
/// slice of the input, refused when the input is shorter than it declares.
fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    let certificate = AnyRef::from_der(der).ok()?;
    if certificate.tag() != Tag::Sequence {
        return None;
    }
    let tbs: AnyRef = SliceReader::new(certificate.value()).ok()?.decode().ok()?;
    let fields = tbs.value();
    let mut reader = SliceReader::new(fields).ok()?;
    let mut field: AnyRef = reader.decode().ok()?;
    // version [0] EXPLICIT is optional (v1 certificates have none); then serialNumber,
    // signature, issuer, validity and subject come before the key.
    let version = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };
    if field.tag() == version {
        field = reader.decode().ok()?;
    }
    if field.tag() != Tag::Integer {
        return None;
    }
    for _ in 0..4 {
        let _: AnyRef = reader.decode().ok()?;
    }
    let start = usize::try_from(reader.position()).ok()?;
    let spki: AnyRef = reader.decode().ok()?;
    let end = usize::try_from(reader.position()).ok()?;
    (spki.tag() == Tag::Sequence).then(|| fields.get(start..end)).flatten()
}

/// The PKCS#1 RSAPublicKey inside a SubjectPublicKeyInfo whose algorithm is rsaEncryption
/// (parameters NULL or absent).
fn spki_rsa_key(der: &[u8]) -> Option<&[u8]> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).ok()?;
    let algorithm = spki.algorithm;
    if algorithm.oid != pkcs1::ALGORITHM_OID || !algorithm.parameters.is_none_or(|p| p.is_null()) {
        return None;
    }
    spki.subject_public_key.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_declaring_more_than_they_hold_are_refused() {
        // A certificate SEQUENCE declaring 16 MiB, and one whose first field does: the walk
        // borrows slices of the input, so neither is read (nor allocated) past its end.
        let outer = [&[0x30, 0x84, 0x01, 0x00, 0x00, 0x00][..], &[0u8; 64]].concat();
        assert_eq!(certificate_spki(&outer), None);
        let inner = [&[0x30, 0x08, 0x30, 0x84, 0x01, 0x00, 0x00, 0x00][..], &[0u8; 2]].concat();
        assert_eq!(certificate_spki(&inner), None);
        assert_eq!(certificate_spki(&[]), None);
    }
    use crate::protect::token::tests::{RSA_A_PUBLIC_PKCS1, RSA_A_PUBLIC_SPKI};

    #[test]
    fn pem_may_be_wrapped_at_any_width_and_follow_other_text() {
        let body: String = RSA_A_PUBLIC_SPKI.lines().filter(|l| !l.starts_with("-----")).collect();
        let wrapped: Vec<&str> = body.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let pem = format!(
            "subject=CN=issuer\r\n-----BEGIN PUBLIC KEY-----\r\n{}\r\n-----END PUBLIC KEY-----",
            wrapped.join("\r\n")
        );
        assert_eq!(parse_rsa_public_pem(&pem), parse_rsa_public_pem(RSA_A_PUBLIC_SPKI));
        assert_eq!(parse_rsa_public_pem(RSA_A_PUBLIC_PKCS1), parse_rsa_public_pem(RSA_A_PUBLIC_SPKI));
        let (n, e) = parse_rsa_public_pem(RSA_A_PUBLIC_SPKI).unwrap();
        assert_eq!((n.len(), e), (256, vec![1, 0, 1]));
        let encrypted = "-----BEGIN RSA PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PUBLIC KEY-----\n";
        assert_eq!(parse_rsa_public_pem(encrypted), Err("bad PEM"));
    }
}
