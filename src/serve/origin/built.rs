//! A built response body with what HTTP caching needs to know about it.

use bytes::Bytes;

use crate::output::Output;
use crate::plan::links::Links;
use crate::source::storage::ObjectVersion;

#[derive(Debug)]
pub struct Built {
    pub content_type: &'static str,
    pub parts: Vec<Bytes>,
    pub len: u64,
    /// Strong validator, derived from what the bytes are made of (stable across restarts
    /// and replicas serving the same objects).
    pub etag: String,
    /// Newest modification time of the sources, Unix seconds.
    pub last_modified: i64,
    /// The bytes never change (segments and init segments); manifests are VOD-long.
    pub immutable: bool,
    /// A lifetime shorter than the configured one: a running live event's manifests.
    pub max_age: Option<u64>,
    /// A manifest's links, to which a request's carried query is added.
    pub links: Option<Links>,
    /// Memory the entry keeps alive, for the cache weigher: at least `len`, and the whole
    /// source read when the body is zero-copy slices of it (a clear segment of an interleaved
    /// file holds the other tracks' bytes between its samples too).
    pub weight: u64,
}

impl Built {
    pub(super) fn new(output: Output, identity: u64, sources: &[&ObjectVersion], immutable: bool) -> Self {
        let len = output.len();
        Built {
            content_type: output.content_type,
            parts: output.parts,
            len,
            etag: format!("\"{identity:016x}-{len:x}\""),
            last_modified: sources.iter().map(|v| v.last_modified_unix).max().unwrap_or(0),
            immutable,
            max_age: None,
            links: output.links,
            weight: len,
        }
    }
}
