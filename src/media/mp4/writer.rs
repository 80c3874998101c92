//! A small ISO BMFF box writer over [`BytesMut`].
//!
//! Boxes are opened with [`BoxWriter::begin`] / [`BoxWriter::begin_full`], filled with the
//! big-endian field writers and closed with [`BoxWriter::end`], which back-patches the 32-bit
//! size. Fields whose value is only known later (`trun.data_offset`, `saio` offsets) are
//! reserved with [`BoxWriter::reserve_u32`] and filled with [`BoxWriter::patch_u32`].
//!
//! Nothing here panics: a box that grows past 4 GiB (impossible for the moov/moof headers we
//! write, but sizes derive from media metadata) is recorded and reported by
//! [`BoxWriter::finish`].

use bytes::{BufMut, Bytes, BytesMut};

use super::{fourcc_str, FourCC};
use crate::media::MediaError;

/// An open box: where its header starts. Close it with [`BoxWriter::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an open box must be closed with BoxWriter::end"]
pub(crate) struct BoxMark {
    start: usize,
    kind: FourCC,
}

/// A reserved 32-bit field, filled later with [`BoxWriter::patch_u32`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(usize);

impl Slot {
    /// Byte position of the field in the writer's buffer.
    #[cfg(test)]
    pub(crate) fn position(&self) -> usize {
        self.0
    }
}

#[derive(Debug, Default)]
pub(crate) struct BoxWriter {
    buf: BytesMut,
    /// First error met (a box too large for a 32-bit size); reported by `finish`.
    error: Option<String>,
}

impl BoxWriter {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        BoxWriter { buf: BytesMut::with_capacity(capacity), error: None }
    }

    /// Bytes written so far.
    pub(crate) fn position(&self) -> usize {
        self.buf.len()
    }

    /// Opens a plain box.
    pub(crate) fn begin(&mut self, kind: &FourCC) -> BoxMark {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(kind);
        BoxMark { start, kind: *kind }
    }

    /// Opens a FullBox (version and 24-bit flags after the header).
    pub(crate) fn begin_full(&mut self, kind: &FourCC, version: u8, flags: u32) -> BoxMark {
        let mark = self.begin(kind);
        self.buf.put_u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
        mark
    }

    /// Closes a box, writing its size into its header.
    pub(crate) fn end(&mut self, mark: BoxMark) {
        let size = self.buf.len().saturating_sub(mark.start);
        let size32 = match u32::try_from(size) {
            Ok(s) => s,
            Err(_) => {
                if self.error.is_none() {
                    self.error =
                        Some(format!("box '{}' of {size} bytes does not fit a 32-bit size", fourcc_str(&mark.kind)));
                }
                u32::MAX
            }
        };
        self.patch_at(mark.start, size32);
    }

    /// Writes a whole box with `payload` as its body.
    pub(crate) fn leaf(&mut self, kind: &FourCC, payload: &[u8]) {
        let mark = self.begin(kind);
        self.bytes(payload);
        self.end(mark);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }
    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }
    /// The low 24 bits of `v`.
    #[cfg(test)]
    pub(crate) fn u24(&mut self, v: u32) {
        self.buf.put_slice(&v.to_be_bytes()[1..]);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }
    pub(crate) fn fourcc(&mut self, code: &FourCC) {
        self.buf.put_slice(code);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.put_bytes(0, n);
    }
    /// A null-terminated UTF-8 string (e.g. `hdlr` name).
    pub(crate) fn cstr(&mut self, s: &str) {
        self.buf.put_slice(s.as_bytes());
        self.buf.put_u8(0);
    }

    /// Writes a zero u32 to be filled in later.
    pub(crate) fn reserve_u32(&mut self) -> Slot {
        let slot = Slot(self.buf.len());
        self.buf.put_u32(0);
        slot
    }

    /// Fills a reserved field.
    pub(crate) fn patch_u32(&mut self, slot: Slot, v: u32) {
        self.patch_at(slot.0, v);
    }

    /// Fills a reserved field with a signed value (e.g. `trun.data_offset`).
    pub(crate) fn patch_i32(&mut self, slot: Slot, v: i32) {
        self.patch_at(slot.0, v as u32);
    }

    fn patch_at(&mut self, pos: usize, v: u32) {
        if let Some(dst) = pos.checked_add(4).and_then(|end| self.buf.get_mut(pos..end)) {
            dst.copy_from_slice(&v.to_be_bytes());
        } else if self.error.is_none() {
            self.error = Some(format!("patch at {pos} outside the {} bytes written", self.buf.len()));
        }
    }

    /// The bytes written, or the first error met.
    pub(crate) fn finish(self) -> Result<Bytes, MediaError> {
        match self.error {
            Some(e) => Err(MediaError(e)),
            None => Ok(self.buf.freeze()),
        }
    }

    /// The bytes written, for callers whose boxes cannot overflow (init segments).
    pub(crate) fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mp4::reader::{boxes, Cursor};

    #[test]
    fn nested_boxes_get_their_sizes() {
        let mut w = BoxWriter::new();
        let outer = w.begin(b"moov");
        let inner = w.begin_full(b"mvhd", 1, 0x00_0203);
        w.u32(7);
        w.end(inner);
        w.leaf(b"free", &[9, 9]);
        w.end(outer);
        let out = w.finish().unwrap();
        assert_eq!(out.len(), 8 + 16 + 10);
        let top: Vec<_> = boxes(&out).map(|b| b.unwrap()).collect();
        assert_eq!(top.len(), 1);
        assert_eq!(&top[0].kind, b"moov");
        let kids: Vec<_> = boxes(top[0].payload).map(|b| b.unwrap()).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(&kids[0].kind, b"mvhd");
        let mut c = Cursor::new(kids[0].payload);
        assert_eq!(c.full_box().unwrap(), (1, 0x0203));
        assert_eq!(c.u32().unwrap(), 7);
        assert_eq!(kids[1].payload, &[9, 9]);
    }

    #[test]
    fn field_writers_are_big_endian() {
        let mut w = BoxWriter::new();
        w.u8(1);
        w.u16(0x0203);
        w.u24(0xff04_0506);
        w.u32(0x0708_090a);
        w.i32(-1);
        w.u64(0x0b0c_0d0e_0f10_1112);
        w.i16(-2);
        w.i64(-3);
        w.fourcc(b"abcd");
        w.zeros(2);
        w.cstr("hi");
        let out = w.into_bytes();
        let mut expect = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff, 0xff, 0xff, 0xff];
        expect.extend_from_slice(&[0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12]);
        expect.extend_from_slice(&(-2i16).to_be_bytes());
        expect.extend_from_slice(&(-3i64).to_be_bytes());
        expect.extend_from_slice(b"abcd\0\0hi\0");
        assert_eq!(&out[..], &expect[..]);
    }

    #[test]
    fn reserved_fields_are_patched_later() {
        let mut w = BoxWriter::new();
        let b = w.begin_full(b"trun", 0, 1);
        w.u32(1);
        let slot = w.reserve_u32();
        assert_eq!(slot.position(), 16);
        w.end(b);
        w.patch_i32(slot, -5);
        let out = w.finish().unwrap();
        assert_eq!(&out[16..20], &(-5i32).to_be_bytes());
        assert_eq!(&out[0..4], &20u32.to_be_bytes());
    }

    #[test]
    fn patch_outside_the_buffer_is_an_error_not_a_panic() {
        let mut w = BoxWriter::new();
        w.u32(0);
        w.patch_u32(Slot(2), 1);
        w.patch_u32(Slot(usize::MAX - 1), 1);
        assert!(w.finish().is_err());
    }
}
