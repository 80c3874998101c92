//! What media is made of: ISO BMFF boxes, codec configurations and the bit reader under them.

pub(crate) mod bits;
pub mod codec;
mod error;
pub mod mp4;
pub mod ttml;
pub mod webvtt;

pub use error::{err, MediaError, MediaResult};

/// What a track carries (from its `hdlr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Video,
    Audio,
    Text,
}

impl TrackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
            TrackKind::Text => "text",
        }
    }
}
