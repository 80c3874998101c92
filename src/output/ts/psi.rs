//! Program-specific information: the PAT and PMT sections, one packet each.

use bytes::{BufMut, BytesMut};

use super::{fail, Codec, Stream, PAYLOAD_SIZE, PROGRAM_NUMBER};
use crate::media::MediaError;

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final xor).
pub(super) fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

/// One PSI section (table id, then the bytes after the last_section_number field) in one packet.
pub(super) fn write_psi(
    out: &mut BytesMut,
    pid: u16,
    cc: u8,
    table_id: u8,
    id: u16,
    body: &[u8],
) -> Result<(), MediaError> {
    let section_length = 5 + body.len() + 4;
    // pointer_field + 3 header bytes + section_length must fit one packet.
    if 1 + 3 + section_length > PAYLOAD_SIZE {
        return fail(format!("PSI section of {section_length} bytes does not fit one TS packet"));
    }
    let mut section = Vec::with_capacity(3 + section_length);
    section.push(table_id);
    section.push(0xB0 | ((section_length >> 8) as u8 & 0x0F)); // syntax 1, '0', reserved
    section.push(section_length as u8);
    section.extend_from_slice(&id.to_be_bytes());
    section.push(0xC1); // reserved, version 0, current_next 1
    section.push(0); // section_number
    section.push(0); // last_section_number
    section.extend_from_slice(body);
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());

    out.put_u8(0x47);
    out.put_u8(0x40 | ((pid >> 8) as u8 & 0x1F));
    out.put_u8(pid as u8);
    out.put_u8(0x10 | (cc & 0xF));
    out.put_u8(0); // pointer_field
    out.put_slice(&section);
    out.put_bytes(0xFF, PAYLOAD_SIZE - 1 - section.len());
    Ok(())
}

pub(super) fn pat_body(pmt_pid: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(4);
    body.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
    body.extend_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
    body
}

pub(super) fn pmt_body(streams: &[Stream], pcr_pid: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + streams.len() * 20);
    body.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
    for s in streams {
        let mut descriptors: Vec<u8> = Vec::new();
        match s.codec {
            Codec::Ac3 => descriptors.extend_from_slice(&[0x05, 4, b'A', b'C', b'-', b'3']),
            Codec::Eac3 => descriptors.extend_from_slice(&[0x05, 4, b'E', b'A', b'C', b'3']),
            _ => {}
        }
        if let (false, Some(lang)) = (s.codec.is_video(), s.language) {
            descriptors.extend_from_slice(&[0x0A, 4, lang[0], lang[1], lang[2], 0]);
        }
        body.push(s.codec.stream_type());
        body.extend_from_slice(&(0xE000 | s.pid).to_be_bytes());
        body.extend_from_slice(&(0xF000 | descriptors.len() as u16).to_be_bytes());
        body.extend_from_slice(&descriptors);
    }
    body
}
