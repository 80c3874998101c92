//! WebVTT (W3C WebVTT, RFC-less text format) as sidecar subtitle files carry it, and the cue
//! model every text output is built from: HLS WebVTT segments, ISO/IEC 14496-30 `wvtt`
//! samples in fMP4, and conversions from `wvtt` samples of MP4 sources.

/// One cue, times in milliseconds of the presentation timeline (0 = the asset's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    /// The cue identifier line, empty when the cue has none.
    pub id: String,
    /// The cue settings after the timing (e.g. `line:0 align:start`), empty when none.
    pub settings: String,
    /// The cue payload, lines joined by `\n`, without a trailing newline.
    pub text: String,
}

/// A parsed WebVTT file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebVtt {
    /// Cues ordered by start time (then end time), as the WebVTT spec requires them.
    pub cues: Vec<Cue>,
    /// The `Language:` header line's value (a BCP 47 tag), when the header has one.
    pub language: Option<String>,
    /// `STYLE` and `REGION` blocks, verbatim and in file order, each without its trailing
    /// blank line: they are repeated in every WebVTT segment.
    pub header_blocks: Vec<String>,
}
