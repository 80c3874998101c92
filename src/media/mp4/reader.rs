//! Zero-copy box parsing over byte slices: headers, child iteration, and a bounds-checked
//! cursor for box payloads. Every read is checked; malformed input gives an error, never a panic.

use super::{fourcc_str, FourCC};
use crate::media::{err, MediaError, MediaResult};

/// The header of one box: its type, header length and total size (None = extends to the end
/// of the enclosing container or file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    pub kind: FourCC,
    pub header_len: u64,
    pub size: Option<u64>,
}

impl BoxHeader {
    /// Parses a header from the start of `buf`; `Ok(None)` when `buf` is too short to tell.
    pub fn parse(buf: &[u8]) -> MediaResult<Option<BoxHeader>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let size32 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64;
        let kind: FourCC = [buf[4], buf[5], buf[6], buf[7]];
        let (header_len, size) = match size32 {
            0 => (8, None),
            1 => {
                if buf.len() < 16 {
                    return Ok(None);
                }
                let large = u64::from_be_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                (16, Some(large))
            }
            n => (8, Some(n)),
        };
        let mut header_len = header_len;
        if &kind == b"uuid" {
            header_len += 16;
        }
        if let Some(size) = size {
            if size < header_len {
                return err(format!("box '{}' declares size {size}, smaller than its header", fourcc_str(&kind)));
            }
        }
        Ok(Some(BoxHeader { kind, header_len, size }))
    }
}

/// One child box found in a container payload.
#[derive(Debug, Clone, Copy)]
pub struct RawBox<'a> {
    pub kind: FourCC,
    /// The whole box, header included.
    pub bytes: &'a [u8],
    /// The payload after the header.
    pub payload: &'a [u8],
}

/// Iterates the boxes laid end to end in `buf` (a container's payload).
pub fn boxes(buf: &[u8]) -> BoxIter<'_> {
    BoxIter { buf, pos: 0 }
}

pub struct BoxIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for BoxIter<'a> {
    type Item = MediaResult<RawBox<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let header = match BoxHeader::parse(rest) {
            Ok(Some(h)) => h,
            Ok(None) => {
                // Some muxers pad containers with a few zero bytes; anything else is truncation.
                self.pos = self.buf.len();
                if rest.iter().all(|&b| b == 0) {
                    return None;
                }
                return Some(err("truncated box header"));
            }
            Err(e) => {
                self.pos = self.buf.len();
                return Some(Err(e));
            }
        };
        let size = header.size.unwrap_or(rest.len() as u64);
        // A box running to the end (size 0) may still be shorter than its own header (`uuid`).
        if size > rest.len() as u64 || size < header.header_len {
            self.pos = self.buf.len();
            return Some(err(format!(
                "box '{}' of {size} bytes is truncated to {}",
                fourcc_str(&header.kind),
                rest.len()
            )));
        }
        let size = size as usize;
        self.pos += size;
        Some(Ok(RawBox { kind: header.kind, bytes: &rest[..size], payload: &rest[header.header_len as usize..size] }))
    }
}

/// The payload of the first child of type `kind`, if any.
pub fn find<'a>(buf: &'a [u8], kind: &FourCC) -> MediaResult<Option<&'a [u8]>> {
    for b in boxes(buf) {
        let b = b?;
        if &b.kind == kind {
            return Ok(Some(b.payload));
        }
    }
    Ok(None)
}

/// Like [`find`], but the box is mandatory.
pub fn require<'a>(buf: &'a [u8], kind: &FourCC, parent: &str) -> MediaResult<&'a [u8]> {
    find(buf, kind)?.ok_or_else(|| MediaError(format!("'{parent}' has no '{}' box", fourcc_str(kind))))
}

/// Follows a path of nested containers, e.g. `[b"mdia", b"minf", b"stbl"]`.
pub fn find_path<'a>(buf: &'a [u8], path: &[&FourCC]) -> MediaResult<Option<&'a [u8]>> {
    let mut cur = buf;
    for kind in path {
        match find(cur, kind)? {
            Some(p) => cur = p,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// A bounds-checked big-endian reader over a box payload.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub fn bytes(&mut self, n: usize) -> MediaResult<&'a [u8]> {
        if n > self.remaining() {
            return err(format!("needs {n} more bytes, has {}", self.remaining()));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    pub fn skip(&mut self, n: usize) -> MediaResult<()> {
        self.bytes(n).map(|_| ())
    }
    pub fn u8(&mut self) -> MediaResult<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> MediaResult<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u24(&mut self) -> MediaResult<u32> {
        let b = self.bytes(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
    pub fn u32(&mut self) -> MediaResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i32(&mut self) -> MediaResult<i32> {
        Ok(self.u32()? as i32)
    }
    pub fn u64(&mut self) -> MediaResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    pub fn fourcc(&mut self) -> MediaResult<FourCC> {
        let b = self.bytes(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }
    /// A FullBox header: (version, flags).
    pub fn full_box(&mut self) -> MediaResult<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
    /// A u32 or u64 depending on a FullBox version.
    pub fn u32_or_u64(&mut self, wide: bool) -> MediaResult<u64> {
        if wide {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }
    /// Checks that a table of `count` entries of `entry_len` bytes fits before allocating for it.
    pub fn check_table(&self, count: u32, entry_len: usize, what: &str) -> MediaResult<usize> {
        let need = (count as usize).saturating_mul(entry_len);
        if need > self.remaining() {
            return err(format!("'{what}' declares {count} entries but holds only {} bytes", self.remaining()));
        }
        Ok(count as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_children_and_rejects_truncation() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&12u32.to_be_bytes());
        buf.extend_from_slice(b"free");
        buf.extend_from_slice(&[1, 2, 3, 4]);
        buf.extend_from_slice(&16u32.to_be_bytes());
        buf.extend_from_slice(b"skip");
        buf.extend_from_slice(&[0; 4]);
        let all: Vec<_> = boxes(&buf).collect();
        assert_eq!(all.len(), 2);
        assert!(all[1].is_err(), "second box claims 16 bytes but has 8");
        let first = all[0].as_ref().unwrap();
        assert_eq!(&first.kind, b"free");
        assert_eq!(first.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn size_smaller_than_header_is_an_error() {
        let mut buf = 4u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"moov");
        assert!(BoxHeader::parse(&buf).is_err());
    }

    #[test]
    fn box_to_the_end_shorter_than_its_header_is_an_error() {
        // size 0 ("to the end") `uuid`: a 24-byte header, but only 20 bytes left.
        let mut buf = 0u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"uuid");
        buf.extend_from_slice(&[7; 12]);
        let all: Vec<_> = boxes(&buf).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }

    #[test]
    fn cursor_never_reads_past_the_end() {
        let mut c = Cursor::new(&[1, 2, 3]);
        assert_eq!(c.u16().unwrap(), 0x0102);
        assert!(c.u32().is_err());
        assert!(c.check_table(u32::MAX, 8, "stsz").is_err());
    }
}
