//! The URL grammar (Azure Media Services compatible, DESIGN §2), formatted and parsed by the
//! same code so a manifest can never point at a URL the router cannot serve.
//! TODO(helper): parse/format implementation.

/// Output format, the `format=` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// HLS with fMP4/CMAF segments.
    M3u8Cmaf,
    /// DASH with CMAF segments (styp, cmfc brands).
    MpdTimeCmaf,
    /// DASH "common streaming format": ISO BMFF fragments without styp.
    MpdTimeCsf,
}

/// Options of `manifest(…)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestOptions {
    pub format: Format,
    /// `filter=a;b;c` (at most 3).
    pub filters: Vec<String>,
    /// `audio-only=false`: HLS multivariant without audio-only variants.
    pub audio_only: Option<bool>,
}

/// What a request addresses, below `/{locator}/{asset}.ism/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `manifest(format=…)`
    Manifest(ManifestOptions),
    /// `QualityLevels({bitrate})/Manifest({track},format=…)`
    MediaPlaylist { bitrate: u64, track: String, format: Format },
    /// `QualityLevels({bitrate})/Fragments({track}=i,format=…)`
    Init { bitrate: u64, track: String, format: Format },
    /// `QualityLevels({bitrate})/Fragments({track}={time},format=…)`
    Segment { bitrate: u64, track: String, time: u64, format: Format },
}
