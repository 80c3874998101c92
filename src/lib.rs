//! jit-origin: a just-in-time packaging origin. Object storage in, HLS and DASH out.
//!
//! The modules follow the data: [`url`] parses requests, [`storage`] reads objects,
//! [`index`] turns MP4 metadata into track indexes, [`asset`] groups tracks, [`timeline`]
//! plans segments, [`package`] builds manifests and segments.

pub mod asset;
pub mod config;
pub mod conn;
pub mod crypto;
pub mod drm;
pub mod error;
pub mod filter;
pub mod index;
pub mod ism;
pub mod markup;
pub mod metrics;
pub mod mp4;
pub mod origin;
pub mod package;
pub mod player;
pub mod server;
pub mod storage;
pub mod timeline;
pub mod tls;
pub mod token;
pub mod url;
pub mod url_signing;

pub use error::{Error, Result};
