//! Where media comes from: storage accounts, the indexes of their MP4 files, `.ism` manifests
//! and the assets they form.

pub mod asset;
pub mod index;
pub mod ism;
pub mod live;
pub mod storage;
pub mod timeline;
