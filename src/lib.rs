//! jit-origin: a just-in-time packaging origin. Object storage in, HLS and DASH out.
//!
//! The modules follow the request path, and data flows down: [`serve`] answers HTTP,
//! [`plan`] decides what a request means, [`output`] builds manifests and segments,
//! [`protect`] encrypts them, [`source`] reads and indexes objects, [`media`] knows boxes
//! and codecs.

#![warn(unreachable_pub)]

pub mod config;
pub mod error;
pub mod ingest;
pub mod manage;
pub(crate) mod markup;
pub mod media;
pub mod output;
pub mod plan;
pub mod protect;
pub(crate) mod secret;
pub mod serve;
pub mod source;
pub mod store;

pub use error::{Error, Result};
