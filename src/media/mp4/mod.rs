//! ISO BMFF box reading and writing.
//!
//! Why our own code instead of the `mp4` or `mp4-atom` crates: the `mp4` crate's writer drops
//! tfdt/trun (corrupt fragments) and its reader issues thousands of tiny reads; `mp4-atom`
//! reads well but has no `stz2`, fails a whole `moov` on one box it does not know, and
//! materialises every table as a vector of structs. Indexing here walks the sample tables
//! straight from the bytes of one ranged read into a struct-of-arrays index, and writing needs
//! exact control over box versions and back-patched offsets (`trun.data_offset`, later `saio`).
//! `mp4-atom` stays in the tests as an independent oracle for what we write.

pub mod reader;
pub mod writer;

/// A four-character box or codec code.
pub type FourCC = [u8; 4];

pub fn fourcc_str(code: &FourCC) -> String {
    code.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect()
}
