//! Bit-level reading for codec syntax: one MSB-first reader (fixed-width fields and the
//! Exp-Golomb codes of H.264 / H.265), and the RBSP of a NAL unit (emulation prevention bytes
//! removed) with the way back to escaped byte positions.
//!
//! Every read is checked and returns `None` past the end; callers that report errors turn that
//! into their own "truncated" error once, where they know what was being read.

/// An MSB-first bit reader over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits read (or skipped) so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Zero past the end: a reader may start past it (an RBSP shorter than the header it skips).
    pub(crate) fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    #[cfg(test)]
    pub(crate) fn is_byte_aligned(&self) -> bool {
        self.pos % 8 == 0
    }

    /// One bit.
    pub(crate) fn flag(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// An `n`-bit unsigned field, n ≤ 32 (`u(n)`).
    pub(crate) fn read(&mut self, n: u32) -> Option<u32> {
        if n > 32 || n as usize > self.bits_left() {
            return None;
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.flag()? as u64;
        }
        Some(v as u32)
    }

    pub(crate) fn skip(&mut self, n: u32) -> Option<()> {
        let end = self.pos.checked_add(n as usize)?;
        if end > self.data.len() * 8 {
            return None;
        }
        self.pos = end;
        Some(())
    }

    /// Skips to the next byte boundary (nothing when already on one).
    pub(crate) fn byte_align(&mut self) -> Option<()> {
        self.skip(((8 - self.pos % 8) % 8) as u32)
    }

    /// `ue(v)`, values up to 2^32 − 2.
    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.read(zeros)? as u64;
        Some(((1u64 << zeros) - 1 + rest) as u32)
    }

    /// `se(v)`.
    pub(crate) fn se(&mut self) -> Option<i32> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { ((k + 1) / 2) as i32 } else { (-(k / 2)) as i32 })
    }
}

/// The unescaped start of a NAL unit (emulation_prevention_three_byte removed) and where each
/// of its bytes sits in the escaped NAL unit.
pub(crate) struct Rbsp {
    bytes: Vec<u8>,
    /// `escaped[i]`: index in the NAL unit of RBSP byte `i`.
    escaped: Vec<usize>,
}

impl Rbsp {
    /// Unescapes at most the first `limit` bytes of `nal`.
    pub(crate) fn new(nal: &[u8], limit: usize) -> Rbsp {
        let mut bytes = Vec::with_capacity(nal.len().min(limit));
        let mut escaped = Vec::with_capacity(nal.len().min(limit));
        let mut zeros = 0;
        for (k, &b) in nal.iter().enumerate().take(limit) {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            bytes.push(b);
            escaped.push(k);
        }
        Rbsp { bytes, escaped }
    }

    /// A reader positioned `skip_bits` into the RBSP (past the NAL unit header).
    pub(crate) fn reader(&self, skip_bits: usize) -> BitReader<'_> {
        BitReader { data: &self.bytes, pos: skip_bits }
    }

    /// The escaped length of the first `bits` bits rounded up to a byte: the index in the NAL
    /// unit of the first byte after them. `None` when nothing of the NAL unit follows within
    /// the unescaped part.
    pub(crate) fn escaped_len(&self, bits: usize) -> Option<usize> {
        self.escaped.get(bits.div_ceil(8)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sps_shorter_than_its_header_reads_nothing() {
        // The fuzzed SPS whose RBSP ended inside the NAL header the colour reader skips.
        assert!(crate::media::codec::slice::sps_colour(&[], false).is_none());
        assert!(crate::media::codec::slice::sps_colour(&[], true).is_none());
    }

    #[test]
    fn fields_flags_and_alignment() {
        let mut r = BitReader::new(&[0b1010_0000, 0xFF]);
        assert_eq!(r.flag(), Some(true));
        assert_eq!(r.read(3), Some(0b010));
        assert!(!r.is_byte_aligned());
        assert_eq!(r.byte_align(), Some(()));
        assert_eq!((r.position(), r.bits_left()), (8, 8));
        assert_eq!(r.read(8), Some(0xFF));
        assert_eq!(r.byte_align(), Some(()));
        assert_eq!(r.flag(), None);
        assert_eq!(BitReader::new(&[0; 8]).read(33), None);
        assert_eq!(BitReader::new(&[0xFF; 4]).read(32), Some(u32::MAX));
        assert_eq!(BitReader::new(&[0; 1]).read(9), None);
        assert_eq!(BitReader::new(&[0; 1]).skip(9), None);
    }

    #[test]
    fn exp_golomb_and_escapes() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0, 1, 2, 3, 4; then se of 00110 (5 → +3).
        let data = [0b1010_0110, 0b0100_0010, 0b1001_1000];
        let mut r = BitReader::new(&data);
        assert_eq!(
            (r.ue(), r.ue(), r.ue(), r.ue(), r.ue(), r.se()),
            (Some(0), Some(1), Some(2), Some(3), Some(4), Some(3))
        );
        assert_eq!(r.read(8), None, "reads past the end fail");
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0]).ue(), None, "over-long codes fail");
        // 00 00 03 01: the 03 is dropped, RBSP byte 2 (0x01) is NAL byte 3.
        let rbsp = Rbsp::new(&[0x41, 0, 0, 3, 1, 0, 0, 3, 0, 0, 3], 100);
        assert_eq!(rbsp.bytes, [0x41, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(rbsp.escaped_len(17), Some(4), "3 RBSP bytes → the next one is NAL byte 4");
        assert_eq!(rbsp.escaped_len(24), Some(4));
        assert_eq!(rbsp.escaped_len(25), Some(5));
        assert_eq!(rbsp.escaped_len(48), Some(8), "the escape byte before the first data byte stays clear");
        assert_eq!(rbsp.escaped_len(64), None, "no slice data left");
        assert_eq!(Rbsp::new(&[0x41, 0, 0, 3, 1], 3).bytes.len(), 3, "only the first `limit` bytes");
    }
}
