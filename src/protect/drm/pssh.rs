//! `pssh` boxes (ISO/IEC 23001-7 §8.1): the W3C common one and the Widevine and PlayReady
//! ones a protected init segment carries and manifests repeat.
//!
//! * the W3C "common" PSSH (system `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`, v1, KIDs, no data) —
//!   W3C EME "cenc" initialization data format §4. It only says "this is Common Encryption";
//!   DASH-IF forbids reading it as "use Clear Key".
//! * Widevine PSSH data — the public `WidevinePsshData` protobuf: `key_id` = 2 (repeated bytes),
//!   `content_id` = 4 (bytes), `protection_scheme` = 9 (uint32 holding the fourcc, e.g. `cbcs`).
//! * PlayReady: the PlayReady Object (see `playready`) as the box data.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protect::Scheme;

/// Widevine system id `edef8ba9-79d6-4ace-a3c8-27dcd51d21ed`.
pub(super) const WIDEVINE_SYSTEM_ID: [u8; 16] =
    [0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed];
/// PlayReady system id `9a04f079-9840-4286-ab92-e65be0885f95`.
pub(super) const PLAYREADY_SYSTEM_ID: [u8; 16] =
    [0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95];
/// W3C "Common PSSH" system id `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b` (EME cenc init data).
const COMMON_SYSTEM_ID: [u8; 16] =
    [0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b];

/// A whole `pssh` box, header included (ISO/IEC 23001-7 §8.1.1). `version1` writes a version-1
/// box with the KID list (a legal, possibly empty, list); otherwise a version-0 box in which
/// `kids` are not written (version 0 has no KID list — put them in the system's data).
fn pssh_box(system_id: &[u8; 16], kids: &[[u8; 16]], data: &[u8], version1: bool) -> Bytes {
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
pub(super) fn widevine_pssh_data(kids: &[[u8; 16]], content_id: &[u8], scheme: Scheme) -> Vec<u8> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::media::mp4::reader::{boxes, Cursor};
    use crate::protect::drm::guid_string;
    use crate::protect::drm::tests::kid;

    /// Parses one pssh box back: (version, system id, kids, data).
    pub(in crate::protect::drm) fn parse_pssh(b: &[u8]) -> (u8, [u8; 16], Vec<[u8; 16]>, Vec<u8>) {
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
}
