//! Codec facts from sample entries: RFC 6381 codec strings, picture size, audio layout.
//! TODO(helper): parsing lives here.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CodecFamily {
    Avc,
    Hevc,
    Aac,
    Ac3,
    Eac3,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodecInfo {
    pub family: CodecFamily,
    /// Sample entry type, e.g. "avc1", "hev1", "mp4a", "ac-3".
    pub sample_entry_type: String,
    /// RFC 6381 string for CODECS / @codecs, e.g. "avc1.64001f", "mp4a.40.2", "ec-3".
    pub codec_string: String,
    pub width: u16,
    pub height: u16,
    pub sample_rate: u32,
    pub channels: u16,
}
