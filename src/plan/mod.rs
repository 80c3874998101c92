//! What a request means: the URL grammar, filters and the source byte
//! ranges a segment reads.

pub mod filter;
pub mod reads;
pub mod url;
