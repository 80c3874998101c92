//! PES packets: their header and timestamps, and their split into transport packets with the
//! adaptation field (PCR, random access, discontinuity) and stuffing.

use bytes::{BufMut, BytesMut};

use super::{fail, PACKET_SIZE, PAYLOAD_SIZE, WRAP_33};
use crate::media::MediaError;

/// A 90 kHz value reduced to 33 bits.
pub(crate) fn wrap33(t: i128) -> u64 {
    t.rem_euclid(WRAP_33) as u64
}

/// The 5-byte PES encoding of a 33-bit timestamp with its 4-bit prefix.
pub(crate) fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & 0x1_FFFF_FFFF;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x7) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7F) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7F) << 1) | 1,
    ]
}

/// Inverse of [`encode_timestamp`]: (prefix, timestamp), `None` when a marker bit is missing.
#[cfg(test)]
pub(crate) fn decode_timestamp(b: &[u8; 5]) -> Option<(u8, u64)> {
    if b[0] & 1 == 0 || b[2] & 1 == 0 || b[4] & 1 == 0 {
        return None;
    }
    let ts = (u64::from(b[0] >> 1) & 7) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1);
    Some((b[0] >> 4, ts))
}

/// Gathers the payload of one PES from slices without copying them first.
pub(super) struct Pieces<'a> {
    pub(super) parts: Vec<&'a [u8]>,
    pub(super) len: usize,
}

impl<'a> Pieces<'a> {
    pub(super) fn new() -> Self {
        Pieces { parts: Vec::new(), len: 0 }
    }
    pub(super) fn push(&mut self, p: &'a [u8]) {
        if !p.is_empty() {
            self.len += p.len();
            self.parts.push(p);
        }
    }
}

/// Adaptation-field content of a PES's first packet.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FirstPacket {
    pub(super) discontinuity: bool,
    pub(super) random_access: bool,
    pub(super) pcr: Option<u64>,
}

pub(super) struct PidState {
    pub(super) pid: u16,
    pub(super) cc: u8,
    pub(super) started: bool,
}

/// Writes one PES (`header` then `payload`) as TS packets; the last packet is padded with
/// adaptation-field stuffing.
pub(super) fn write_pes(out: &mut BytesMut, state: &mut PidState, header: &[u8], payload: &Pieces, first: FirstPacket) {
    let total = header.len() + payload.len;
    let mut remaining = total;
    // Cursor over header + payload pieces.
    let mut part = 0usize; // 0 = header, k = payload.parts[k - 1]
    let mut offset = 0usize;
    let mut is_first = true;
    while remaining > 0 {
        let flags = if is_first { first } else { FirstPacket::default() };
        let pcr_len = if flags.pcr.is_some() { 6 } else { 0 };
        let has_flags = flags.discontinuity || flags.random_access || flags.pcr.is_some();
        // af_len: bytes after the adaptation_field_length byte.
        let mut af_len = if has_flags { 1 + pcr_len } else { 0 };
        let mut af_total = if has_flags { 1 + af_len } else { 0 };
        let room = PAYLOAD_SIZE - af_total;
        let take = room.min(remaining);
        let stuffing = room - take;
        if stuffing > 0 {
            if af_total == 0 {
                af_total = stuffing;
                af_len = stuffing - 1;
            } else {
                af_total += stuffing;
                af_len += stuffing;
            }
        }
        let pusi = if is_first { 0x40 } else { 0 };
        let mut head = Head::default();
        head.put(&[
            0x47,
            pusi | ((state.pid >> 8) as u8 & 0x1F),
            state.pid as u8,
            if af_total > 0 { 0x30 } else { 0x10 } | state.cc,
        ]);
        state.cc = (state.cc + 1) & 0xF;
        if af_total > 0 {
            head.put(&[af_len as u8]);
            if af_len > 0 {
                let mut f = 0u8;
                if flags.discontinuity {
                    f |= 0x80;
                }
                if flags.random_access {
                    f |= 0x40;
                }
                if flags.pcr.is_some() {
                    f |= 0x10;
                }
                head.put(&[f]);
                if let Some(pcr) = flags.pcr {
                    head.put(&encode_pcr(pcr));
                }
                head.fill(0xFF, af_len - 1 - pcr_len);
            }
        }
        out.put_slice(head.bytes());
        // Payload bytes.
        let mut need = take;
        while need > 0 {
            let src: &[u8] = if part == 0 { header } else { payload.parts[part - 1] };
            let n = (src.len() - offset).min(need);
            out.put_slice(&src[offset..offset + n]);
            offset += n;
            need -= n;
            if offset == src.len() {
                part += 1;
                offset = 0;
            }
        }
        remaining -= take;
        is_first = false;
    }
}

/// The header and adaptation field of one packet, gathered on the stack and written with one
/// copy (byte-at-a-time writes into the output cost more than the payload's copy).
struct Head {
    bytes: [u8; PACKET_SIZE],
    len: usize,
}

impl Default for Head {
    fn default() -> Self {
        Head { bytes: [0; PACKET_SIZE], len: 0 }
    }
}

impl Head {
    /// Appends `b`; a packet's header and adaptation field always fit in it.
    fn put(&mut self, b: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + b.len()) {
            dst.copy_from_slice(b);
            self.len += b.len();
        }
    }
    fn fill(&mut self, value: u8, n: usize) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + n) {
            dst.fill(value);
            self.len += n;
        }
    }
    fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// PCR field (base 33 bits, 6 reserved bits, extension 9 bits = 0).
fn encode_pcr(base: u64) -> [u8; 6] {
    let base = base & 0x1_FFFF_FFFF;
    [(base >> 25) as u8, (base >> 17) as u8, (base >> 9) as u8, (base >> 1) as u8, ((base as u8 & 1) << 7) | 0x7E, 0]
}

/// PES header: start code, stream_id, length, flags, PTS and (when it differs) DTS.
pub(super) fn pes_header(
    stream_id: u8,
    payload_len: usize,
    pts: u64,
    dts: Option<u64>,
    bounded: bool,
) -> Result<([u8; 19], usize), MediaError> {
    let mut h = [0u8; 19];
    h[2] = 1;
    h[3] = stream_id;
    let ext = if dts.is_some() { 10 } else { 5 };
    let len = if bounded {
        let n = 3 + ext + payload_len;
        if n > 0xFFFF {
            return fail(format!("PES payload of {payload_len} bytes is too long for stream 0x{stream_id:02x}"));
        }
        n as u16
    } else {
        0
    };
    h[4..6].copy_from_slice(&len.to_be_bytes());
    h[6] = 0x84; // '10', not scrambled, data_alignment_indicator
    h[7] = if dts.is_some() { 0xC0 } else { 0x80 };
    h[8] = ext as u8;
    match dts {
        Some(d) => {
            h[9..14].copy_from_slice(&encode_timestamp(0x3, pts));
            h[14..19].copy_from_slice(&encode_timestamp(0x1, d));
        }
        None => h[9..14].copy_from_slice(&encode_timestamp(0x2, pts)),
    }
    Ok((h, 9 + ext))
}
