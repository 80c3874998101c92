//! ISO BMFF box reading and writing.
//!
//! Why our own code instead of the `mp4` or `mp4-atom` crates: the `mp4` crate's writer drops
//! tfdt/trun (corrupt fragments) and its reader issues thousands of tiny reads; `mp4-atom`
//! reads well but has no `stz2`, fails a whole `moov` on one box it does not know, and
//! materialises every table as a vector of structs. Indexing here walks the sample tables
//! straight from the bytes of one ranged read into a struct-of-arrays index, and writing needs
//! exact control over box versions and back-patched offsets (`trun.data_offset`, later `saio`).
//! `mp4-atom` stays in the tests as an independent oracle for what we write.

pub mod entry;
pub mod reader;
pub(crate) mod writer;

/// A four-character box or codec code.
pub type FourCC = [u8; 4];

pub fn fourcc_str(code: &FourCC) -> String {
    code.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect()
}

/// `tfhd` flags (ISO/IEC 14496-12 §8.8.7.1), for the fragment reader and writer alike.
pub mod tfhd {
    pub const BASE_DATA_OFFSET: u32 = 0x00_0001;
    pub const SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
    pub const DEFAULT_DURATION: u32 = 0x00_0008;
    pub const DEFAULT_SIZE: u32 = 0x00_0010;
    pub const DEFAULT_FLAGS: u32 = 0x00_0020;
    pub const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
}

/// `trun` flags (ISO/IEC 14496-12 §8.8.8.1), for the fragment reader and writer alike.
pub mod trun {
    pub const DATA_OFFSET: u32 = 0x00_0001;
    pub const FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
    pub const DURATION: u32 = 0x00_0100;
    pub const SIZE: u32 = 0x00_0200;
    pub const FLAGS: u32 = 0x00_0400;
    pub const CTS: u32 = 0x00_0800;
}
