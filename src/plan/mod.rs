//! What a request means: the URL grammar, segment timelines, filters and the source byte
//! ranges a segment reads.

pub mod filter;
pub mod reads;
pub mod timeline;
pub mod url;
