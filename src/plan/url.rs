//! The URL grammar (Azure Media Services compatible, DESIGN §2), formatted and parsed by the
//! same code so a manifest can never point at a URL the router cannot serve.
//!
//! Paths here are what follows `/{locator}/{asset}.ism/`:
//!
//! ```text
//! manifest(format=m3u8-cmaf[,encryption=cbcs-aapl][,filter=a;b;c][,audio-only=false])[.m3u8|.mpd]
//! QualityLevels({bitrate})/Manifest({track},format=…)[.m3u8]
//! QualityLevels({bitrate})/Fragments({track}=i,format=…)[.mp4]
//! QualityLevels({bitrate})/Fragments({track}={time},format=…)[.m4s|.ts|.vtt]
//! QualityLevels({bitrate})/Manifest({track},format=…,type=keyframes|thumbnails)[.m3u8]
//! QualityLevels({bitrate})/KeyFrames({track}={time},format=…[,encryption=…])[.m4s|.ts]
//! QualityLevels({bitrate})/Thumbnails({track}={time})[.jpg]
//! ```
//!
//! `type=keyframes` is AMS's HLS I-frame playlist of a video track, whose entries are
//! `KeyFrames(…)` resources (one sync sample each); `type=thumbnails` is the HLS image
//! playlist of a track's thumbnail tiles, `Thumbnails(…)` (JPEG, no format: HLS and DASH share
//! them). Text segments in HLS are WebVTT and may carry `.vtt` instead of the format's segment
//! extension.
//!
//! AMS spellings that players and apps still send are read as the resource they name:
//! `format=m3u8-aapl-v4` is `m3u8-aapl`, `filtername=` is `filter=`, and HLS v3 child URLs may
//! carry `audiotrack={track}` (the audio muxed into the segments). Manifests list children in
//! the canonical spelling only, so the children of `m3u8-aapl` and `m3u8-aapl-v4` manifests are
//! the same URLs and share CDN cache entries.
//!
//! Smooth Streaming (MS-SSTR) has AMS's URLs without `format=`: `manifest` (or
//! `manifest(filter=…,encryption=cenc)`) is the version 2.2 client manifest,
//! `manifest(format=fmp4-v20)` its version 2.0 form (no `r` repeats), and its fragments are
//! `QualityLevels({bitrate})/Fragments({track}={time}[,encryption=cenc])`, `{time}` in the
//! manifest's 10 MHz timescale ([`crate::plan::smooth`]). Smooth URLs carry no file extension
//! and Smooth has no init segment (players build it from the manifest).
//!
//! Track and filter names come from the `.ism` and the config and may hold any character,
//! including the grammar's own `( ) , = / ;`. [`format`] percent-encodes every byte of them
//! outside the RFC 3986 unreserved set `[A-Za-z0-9._~-]` (uppercase hex), so a name can never
//! be mistaken for structure and the output is a valid relative URI, safe unquoted in HLS and
//! XML. [`parse`] takes the path as it arrives (not percent-decoded), splits it on the literal
//! structure characters, then decodes each name: `parse(format(r, e)) == (r, e)` for every
//! name. A name must arrive in exactly that canonical spelling (no raw reserved byte, no
//! needless or lowercase escape): one resource, one URL, one CDN cache entry. Azure Media
//! Services avoided the question by refusing names with URL-reserved characters; an `.ism`
//! from elsewhere may hold any, so we escape instead. Its usual names (`aac_eng_2_128`,
//! `video`) need no escaping, so their URLs are AMS's.
//!
//! Keywords (`manifest`, `QualityLevels`, `Manifest`, `Fragments`), option names and option
//! values are case-insensitive; track and filter names are case-sensitive. Numbers (bitrate,
//! time) are plain decimal `u64` without sign or leading zeros, so one segment has exactly
//! one URL (CDN caches are keyed by URL).

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::protect::Scheme;

/// Output format, the `format=` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// HLS with fMP4/CMAF segments.
    M3u8Cmaf,
    /// DASH with CMAF segments (styp, cmfc brands).
    MpdTimeCmaf,
    /// DASH "common streaming format": ISO BMFF fragments without styp.
    MpdTimeCsf,
    /// HLS v4 with MPEG-TS segments; audio renditions are separate audio-only TS playlists.
    M3u8Aapl,
    /// HLS v3 with MPEG-TS segments: the default audio muxed into every video segment.
    M3u8AaplV3,
    /// Smooth Streaming (MS-SSTR): the version 2.2 client manifest (`manifest` without a
    /// format) and the fragments of every Smooth manifest (no format).
    Smooth,
    /// `format=fmp4-v20`: the version 2.0 Smooth client manifest (chunks without `r`); its
    /// fragments are [`Format::Smooth`]'s.
    SmoothV20,
}

impl Format {
    /// Every format named by a `format=` value but Smooth's (tests and generators iterate
    /// over it).
    pub const ALL: [Format; 5] =
        [Format::M3u8Cmaf, Format::MpdTimeCmaf, Format::MpdTimeCsf, Format::M3u8Aapl, Format::M3u8AaplV3];

    /// The `format=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::M3u8Cmaf => "m3u8-cmaf",
            Format::MpdTimeCmaf => "mpd-time-cmaf",
            Format::MpdTimeCsf => "mpd-time-csf",
            Format::M3u8Aapl => "m3u8-aapl",
            Format::M3u8AaplV3 => "m3u8-aapl-v3",
            // Named in messages and metrics only: Smooth URLs carry no format=.
            Format::Smooth => "smooth",
            Format::SmoothV20 => "fmp4-v20",
        }
    }

    /// Parses a `format=` value (case-insensitive), AMS aliases included.
    pub fn parse(value: &str) -> Result<Format> {
        if value.eq_ignore_ascii_case(Format::SmoothV20.as_str()) {
            return Ok(Format::SmoothV20);
        }
        let alias = FORMAT_ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(value)).map(|&(_, f)| f);
        alias
            .or_else(|| Format::ALL.iter().copied().find(|f| f.as_str().eq_ignore_ascii_case(value)))
            .ok_or_else(|| bad(format!("unknown format '{}'", clip(value))))
    }

    /// Smooth Streaming: either manifest version, and the fragments.
    pub fn is_smooth(self) -> bool {
        matches!(self, Format::Smooth | Format::SmoothV20)
    }

    pub fn is_hls(self) -> bool {
        matches!(self, Format::M3u8Cmaf | Format::M3u8Aapl | Format::M3u8AaplV3)
    }

    /// Tells segment containers apart where their bytes differ (IV derivation): fMP4 CMAF,
    /// fMP4 CSF, TS, TS with muxed audio.
    pub fn container_tag(self) -> u8 {
        match self {
            Format::M3u8Cmaf | Format::MpdTimeCmaf => 0,
            Format::MpdTimeCsf => 1,
            Format::M3u8Aapl => 2,
            Format::M3u8AaplV3 => 3,
            Format::Smooth | Format::SmoothV20 => 4,
        }
    }

    /// HLS v3 (TS without renditions) muxes the audio into the video segments.
    pub fn muxes_audio(self) -> bool {
        self == Format::M3u8AaplV3
    }

    /// MPEG-TS segments (no init segment).
    pub fn is_ts(self) -> bool {
        matches!(self, Format::M3u8Aapl | Format::M3u8AaplV3)
    }

    pub fn is_dash(self) -> bool {
        matches!(self, Format::MpdTimeCmaf | Format::MpdTimeCsf)
    }

    /// Extension of this format's manifests (multivariant / media playlist / MPD). Smooth
    /// URLs have none ([`parse`] refuses one).
    pub fn manifest_extension(self) -> &'static str {
        if self.is_hls() {
            "m3u8"
        } else if self.is_smooth() {
            ""
        } else {
            "mpd"
        }
    }

    /// Extension of init segments.
    pub fn init_extension(self) -> &'static str {
        "mp4"
    }

    /// Extension of media segments (none for Smooth fragments).
    pub fn segment_extension(self) -> &'static str {
        if self.is_ts() {
            "ts"
        } else if self.is_smooth() {
            ""
        } else {
            "m4s"
        }
    }
}

/// AMS names of our formats: `m3u8-aapl-v4` is HLS v4 with TS segments, which AMS also calls
/// `m3u8-aapl`.
const FORMAT_ALIASES: [(&str, Format); 1] = [("m3u8-aapl-v4", Format::M3u8Aapl)];

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of `manifest(…)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestOptions {
    pub format: Format,
    /// `filter=a;b;c` (at most 3).
    pub filters: Vec<String>,
    /// `audio-only=false`: HLS multivariant without audio-only variants.
    pub audio_only: Option<bool>,
    /// `encryption=cbc|cenc|cbcs-aapl`. Parsed here; whether the locator allows it is decided
    /// by its policy.
    pub encryption: Option<Encryption>,
}

impl ManifestOptions {
    /// Just a format, no other option.
    pub fn new(format: Format) -> Self {
        ManifestOptions { format, filters: Vec::new(), audio_only: None, encryption: None }
    }
}

/// The `encryption=` option: which protection a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// `cbc`: AES-128 "envelope", whole segments, AES-128-CBC with PKCS#7 padding (HLS
    /// `METHOD=AES-128`).
    Envelope,
    /// `cenc` / `cbcs-aapl`: Common Encryption of the samples with this scheme (`cbcs` is the
    /// FairPlay-compatible one, hence Apple's name for it).
    Common(Scheme),
}

impl Encryption {
    pub const ALL: [Encryption; 3] =
        [Encryption::Envelope, Encryption::Common(Scheme::Cenc), Encryption::Common(Scheme::Cbcs)];

    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Envelope => "cbc",
            Encryption::Common(Scheme::Cenc) => "cenc",
            Encryption::Common(Scheme::Cbcs) => "cbcs-aapl",
        }
    }

    /// Parses an `encryption=` value (case-insensitive).
    pub fn parse(value: &str) -> Result<Encryption> {
        Encryption::ALL
            .iter()
            .copied()
            .find(|e| e.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| bad(format!("unknown encryption '{}'", clip(value))))
    }
}

/// Response identities (cache keys, ETags) hash the option as the index of its URL value in
/// [`Encryption::ALL`], the form it had as a flat enum, so validators stay the same.
impl std::hash::Hash for Encryption {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let index: isize = match self {
            Encryption::Envelope => 0,
            Encryption::Common(Scheme::Cenc) => 1,
            Encryption::Common(Scheme::Cbcs) => 2,
        };
        index.hash(state);
    }
}

/// At most this many `filter=` names.
pub const MAX_FILTERS: usize = 3;

/// `audiotrack={track}` of an HLS v3 child URL (AMS): the audio track muxed into the video
/// segments instead of the asset's default audio. `None` (the default audio) hashes as
/// nothing, so response identities (cache keys, ETags) of URLs without it are what they were
/// before the option existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioChoice(pub Option<String>);

impl AudioChoice {
    /// The chosen audio track's name, or `None` for the default audio.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::hash::Hash for AudioChoice {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if let Some(name) = &self.0 {
            1u8.hash(state);
            name.hash(state);
        }
    }
}

/// The `type=` option of `QualityLevels(b)/Manifest(…)`: which playlist of the track.
/// [`PlaylistKind::Media`] (no `type=`) hashes as nothing, so response identities (cache keys,
/// ETags) of media playlists are what they were before the option existed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlaylistKind {
    /// The track's media playlist.
    #[default]
    Media,
    /// `type=keyframes`: the HLS I-frame playlist of a video track.
    KeyFrames,
    /// `type=thumbnails`: the HLS image playlist of a video track's thumbnail tiles.
    Thumbnails,
}

impl PlaylistKind {
    /// The `type=` value (`None` for the media playlist, which has none).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            PlaylistKind::Media => None,
            PlaylistKind::KeyFrames => Some("keyframes"),
            PlaylistKind::Thumbnails => Some("thumbnails"),
        }
    }

    fn parse(value: &str) -> Result<PlaylistKind> {
        [PlaylistKind::KeyFrames, PlaylistKind::Thumbnails]
            .into_iter()
            .find(|k| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value)))
            .ok_or_else(|| bad(format!("unknown playlist type '{}' (keyframes or thumbnails)", clip(value))))
    }
}

impl std::hash::Hash for PlaylistKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if let Some(name) = self.as_str() {
            1u8.hash(state);
            name.hash(state);
        }
    }
}

/// What a request addresses, below `/{locator}/{asset}.ism/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `manifest(format=…)`
    Manifest(ManifestOptions),
    /// `QualityLevels({bitrate})/Manifest({track},format=…[,audiotrack=…][,encryption=…][,filter=a;b][,type=…])`:
    /// a filtered multivariant playlist's children carry its filters, which trim their segment
    /// lists; every child carries the encryption, which changes its bytes; an HLS v3 playlist's
    /// `audiotrack=` goes on to its segments; `type=` asks for the track's I-frame or image
    /// playlist instead of its media playlist.
    MediaPlaylist {
        bitrate: u64,
        track: String,
        format: Format,
        encryption: Option<Encryption>,
        filters: Vec<String>,
        audio: AudioChoice,
        kind: PlaylistKind,
    },
    /// `QualityLevels({bitrate})/Fragments({track}=i,format=…[,encryption=…])`
    Init { bitrate: u64, track: String, format: Format, encryption: Option<Encryption> },
    /// `QualityLevels({bitrate})/Fragments({track}={time},format=…[,audiotrack=…][,encryption=…])`
    Segment {
        bitrate: u64,
        track: String,
        time: u64,
        format: Format,
        encryption: Option<Encryption>,
        audio: AudioChoice,
    },
    /// `QualityLevels({bitrate})/KeyFrames({track}={time},format=…[,encryption=…])`: the one
    /// sync sample of the track presented at `time`, as a whole segment (trick play).
    KeyFrame { bitrate: u64, track: String, time: u64, format: Format, encryption: Option<Encryption> },
    /// `QualityLevels({bitrate})/Thumbnails({track}={time})`: the thumbnail tile image of the
    /// track that starts at `time` (track timescale).
    Thumbnail { bitrate: u64, track: String, time: u64 },
}

impl Resource {
    /// The `encryption=` option of the resource, if any.
    pub fn encryption(&self) -> Option<Encryption> {
        match self {
            Resource::Manifest(o) => o.encryption,
            Resource::MediaPlaylist { encryption, .. }
            | Resource::Init { encryption, .. }
            | Resource::Segment { encryption, .. }
            | Resource::KeyFrame { encryption, .. } => *encryption,
            Resource::Thumbnail { .. } => None,
        }
    }

    /// The `format=` of the resource; `None` for thumbnail tiles, which every format shares.
    pub fn format(&self) -> Option<Format> {
        match self {
            Resource::Manifest(o) => Some(o.format),
            Resource::MediaPlaylist { format, .. }
            | Resource::Init { format, .. }
            | Resource::Segment { format, .. }
            | Resource::KeyFrame { format, .. } => Some(*format),
            Resource::Thumbnail { .. } => None,
        }
    }

    /// The file extension this resource carries when extensions are on.
    pub fn extension(&self) -> &'static str {
        match self {
            Resource::Manifest(o) => o.format.manifest_extension(),
            Resource::MediaPlaylist { .. } => "m3u8",
            Resource::Init { format, .. } => format.init_extension(),
            Resource::Segment { format, .. } | Resource::KeyFrame { format, .. } => format.segment_extension(),
            Resource::Thumbnail { .. } => THUMBNAIL_EXTENSION,
        }
    }
}

/// Extension of thumbnail tiles (JPEG images).
pub const THUMBNAIL_EXTENSION: &str = "jpg";

/// Extension HLS text segments (WebVTT) may carry instead of their format's segment extension.
pub const TEXT_SEGMENT_EXTENSION: &str = "vtt";

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedUrl {
    pub resource: Resource,
    /// The URL carried its file extension (`.m3u8`, `.mpd`, `.mp4`, `.m4s`); the manifests
    /// built for it then give their child URLs extensions too.
    pub extension: bool,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadRequest(reason.into())
}

/// A user-supplied token, shortened and made printable for an error message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(32).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().nth(32).is_some() {
        out.push('…');
    }
    out
}

/// Strips a case-insensitive ASCII prefix.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// A decimal `u64`: digits only, no leading zeros (one number, one spelling).
fn parse_number(s: &str, what: &str) -> Result<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(bad(format!("bad {what} '{}'", clip(s))));
    }
    s.parse::<u64>().map_err(|_| bad(format!("bad {what} '{}' (too large)", clip(s))))
}

/// Decodes a track or filter name from its URL form, which must be exactly what
/// [`push_encoded`] writes for it.
fn decode_name(raw: &str, what: &str) -> Result<String> {
    if raw.is_empty() {
        return Err(bad(format!("empty {what} name")));
    }
    let name = percent_decode(raw)?;
    if percent_encode(&name) != raw {
        return Err(bad(format!(
            "{what} name '{}' is not percent-encoded canonically (every byte outside [A-Za-z0-9._~-] as %XX, uppercase)",
            clip(raw)
        )));
    }
    Ok(name)
}

/// Which child resource a path names, for the options it takes.
#[derive(Clone, Copy)]
enum Kind {
    MediaPlaylist,
    Fragment,
    KeyFrame,
}

/// Parses the path after `{asset}.ism/`, as it arrives (not percent-decoded).
pub fn parse(path: &str) -> Result<ParsedUrl> {
    if path.eq_ignore_ascii_case("manifest") {
        let resource = Resource::Manifest(ManifestOptions::new(Format::Smooth));
        return Ok(ParsedUrl { resource, extension: false });
    }
    // Everything ends with `)` or `).ext`.
    let close = path.rfind(')').ok_or_else(|| bad("expected manifest(…) or QualityLevels(…)/…(…)"))?;
    let body = &path[..close];
    let suffix = &path[close + 1..];
    let ext = if suffix.is_empty() {
        None
    } else if let Some(e) = suffix.strip_prefix('.') {
        Some(e)
    } else {
        return Err(bad(format!("trailing garbage '{}'", clip(suffix))));
    };

    let resource = if let Some(args) = strip_prefix_ci(body, "manifest(") {
        Resource::Manifest(parse_manifest_options(args)?)
    } else if let Some(rest) = strip_prefix_ci(body, "QualityLevels(") {
        let end = rest.find(')').ok_or_else(|| bad("unterminated QualityLevels("))?;
        let bitrate = parse_number(&rest[..end], "bitrate")?;
        let rest = rest[end + 1..].strip_prefix('/').ok_or_else(|| bad("expected '/' after QualityLevels(…)"))?;
        if let Some(args) = strip_prefix_ci(rest, "Manifest(") {
            let (track, o) = parse_media_playlist_args(args)?;
            Resource::MediaPlaylist {
                bitrate,
                track,
                format: o.format,
                encryption: o.encryption,
                filters: o.filters,
                audio: o.audio,
                kind: o.kind,
            }
        } else if let Some(args) = strip_prefix_ci(rest, "Fragments(") {
            let (track, time, o) = parse_fragment_args(args, Kind::Fragment)?;
            let (format, encryption, audio) = (o.format, o.encryption, o.audio);
            if time.is_none() && (format.is_ts() || format.is_smooth()) {
                return Err(bad(format!("{format} has no init segment")));
            }
            match time {
                None => Resource::Init { bitrate, track, format, encryption },
                Some(time) => Resource::Segment { bitrate, track, time, format, encryption, audio },
            }
        } else if let Some(args) = strip_prefix_ci(rest, "KeyFrames(") {
            let (track, time, o) = parse_fragment_args(args, Kind::KeyFrame)?;
            let time = time.ok_or_else(|| bad("KeyFrames(…) names a time, not i"))?;
            Resource::KeyFrame { bitrate, track, time, format: o.format, encryption: o.encryption }
        } else if let Some(args) = strip_prefix_ci(rest, "Thumbnails(") {
            let (track, time) = parse_thumbnail_args(args)?;
            Resource::Thumbnail { bitrate, track, time }
        } else {
            return Err(bad(
                "expected Manifest(…), Fragments(…), KeyFrames(…) or Thumbnails(…) after QualityLevels(…)/",
            ));
        }
    } else {
        return Err(bad("expected manifest(…) or QualityLevels(…)/…(…)"));
    };
    if let Resource::MediaPlaylist { format, kind, audio, .. } = &resource {
        if !format.is_hls() {
            return Err(bad(format!("media playlists need an HLS format, not {format}")));
        }
        if *kind != PlaylistKind::Media && audio.name().is_some() {
            return Err(bad("audiotrack= applies to media playlists, not to type=keyframes or thumbnails"));
        }
    }
    if let Some(format) = resource.format().filter(|f| f.is_smooth()) {
        if ext.is_some() {
            return Err(bad("Smooth Streaming URLs carry no file extension"));
        }
        if format == Format::SmoothV20 && !matches!(resource, Resource::Manifest(_)) {
            return Err(bad("format=fmp4-v20 names a Smooth manifest; Smooth fragments carry no format="));
        }
    }
    // An HLS text segment is WebVTT whatever the format's segment container.
    let text_segment = |r: &Resource| matches!(r, Resource::Segment { format, .. } if format.is_hls());
    let extension = match ext {
        None => false,
        Some(e) if e == resource.extension() => true,
        Some(e) if e == TEXT_SEGMENT_EXTENSION && text_segment(&resource) => true,
        Some(e) => {
            return Err(bad(format!(
                "extension '.{}' does not match the resource (expected .{})",
                clip(e),
                resource.extension()
            )))
        }
    };
    if let Some(format) = resource.format() {
        supports(format, resource.encryption())?;
    }
    Ok(ParsedUrl { resource, extension })
}

/// Refuses an encryption `format` cannot carry: MPEG-TS segments have no Common Encryption
/// (only the AES-128 envelope), DASH has no AES-128 envelope, Smooth Streaming (PlayReady)
/// defines `cenc` only.
fn supports(format: Format, encryption: Option<Encryption>) -> Result<()> {
    match encryption {
        Some(e @ (Encryption::Envelope | Encryption::Common(Scheme::Cbcs))) if format.is_smooth() => Err(bad(format!(
            "Smooth Streaming defines Common Encryption 'cenc' (PlayReady) only, not encryption={}; \
             use encryption=cenc, or format=m3u8-cmaf / mpd-time-cmaf",
            e.as_str()
        ))),
        Some(Encryption::Common(_)) if format.is_ts() => {
            Err(bad(format!("{format} segments support encryption=cbc only; use m3u8-cmaf for Common Encryption")))
        }
        Some(Encryption::Envelope) if format.is_dash() => {
            Err(bad(format!("{format} has no AES-128 envelope; use encryption=cenc or cbcs-aapl")))
        }
        _ => Ok(()),
    }
}

/// Splits `a,b,c` (the inside of the parentheses). Nested parentheses are not allowed.
fn split_args(args: &str) -> Result<std::str::Split<'_, char>> {
    if args.contains(['(', ')']) {
        return Err(bad("unexpected parenthesis"));
    }
    if args.contains('/') {
        return Err(bad("unexpected '/' inside parentheses"));
    }
    Ok(args.split(','))
}

fn split_option(item: &str) -> Result<(&str, &str)> {
    if item.is_empty() {
        return Err(bad("empty option"));
    }
    item.split_once('=').ok_or_else(|| bad(format!("option '{}' has no value", clip(item))))
}

fn parse_manifest_options(args: &str) -> Result<ManifestOptions> {
    let mut format = None;
    let mut filters: Option<Vec<String>> = None;
    let mut audio_only = None;
    let mut encryption = None;
    for item in split_args(args)? {
        let (key, value) = split_option(item)?;
        let dup = || bad(format!("duplicate option '{}'", clip(key)));
        if key.eq_ignore_ascii_case("format") {
            if format.replace(Format::parse(value)?).is_some() {
                return Err(dup());
            }
        } else if is_filter_option(key) {
            if filters.replace(parse_filter_names(value)?).is_some() {
                return Err(bad("duplicate option 'filter'"));
            }
        } else if key.eq_ignore_ascii_case("audio-only") {
            let v = if value.eq_ignore_ascii_case("true") {
                true
            } else if value.eq_ignore_ascii_case("false") {
                false
            } else {
                return Err(bad(format!("audio-only must be true or false, not '{}'", clip(value))));
            };
            if audio_only.replace(v).is_some() {
                return Err(dup());
            }
        } else if key.eq_ignore_ascii_case("encryption") {
            if encryption.replace(Encryption::parse(value)?).is_some() {
                return Err(dup());
            }
        } else {
            return Err(bad(format!("unknown option '{}'", clip(key))));
        }
    }
    // AMS serves Smooth Streaming for a manifest without a format.
    let format = format.unwrap_or(Format::Smooth);
    Ok(ManifestOptions { format, filters: filters.unwrap_or_default(), audio_only, encryption })
}

/// `filter=`, or AMS's other spelling of it, `filtername=`.
fn is_filter_option(key: &str) -> bool {
    key.eq_ignore_ascii_case("filter") || key.eq_ignore_ascii_case("filtername")
}

/// `a;b;c` of a `filter=` option.
fn parse_filter_names(value: &str) -> Result<Vec<String>> {
    if value.split(';').count() > MAX_FILTERS {
        return Err(bad(format!("more than {MAX_FILTERS} filters")));
    }
    value.split(';').map(|raw| decode_name(raw, "filter")).collect()
}

/// Options after the track item of `Manifest(…)` / `Fragments(…)`.
struct ChildOptions {
    format: Format,
    encryption: Option<Encryption>,
    filters: Vec<String>,
    audio: AudioChoice,
    kind: PlaylistKind,
}

/// Parses `format=`, `encryption=` and `audiotrack=`, and `filter=` in media playlists.
fn parse_child_options<'a>(items: impl Iterator<Item = &'a str>, kind: Kind) -> Result<ChildOptions> {
    let mut format = None;
    let mut encryption = None;
    let mut filters = None;
    let mut audio = None;
    let mut playlist = None;
    for item in items {
        let (key, value) = split_option(item)?;
        if key.eq_ignore_ascii_case("format") {
            if format.replace(Format::parse(value)?).is_some() {
                return Err(bad("duplicate option 'format'"));
            }
        } else if key.eq_ignore_ascii_case("encryption") {
            if encryption.replace(Encryption::parse(value)?).is_some() {
                return Err(bad("duplicate option 'encryption'"));
            }
        } else if matches!(kind, Kind::MediaPlaylist) && is_filter_option(key) {
            if filters.replace(parse_filter_names(value)?).is_some() {
                return Err(bad("duplicate option 'filter'"));
            }
        } else if matches!(kind, Kind::MediaPlaylist) && key.eq_ignore_ascii_case("type") {
            if playlist.replace(PlaylistKind::parse(value)?).is_some() {
                return Err(bad("duplicate option 'type'"));
            }
        } else if !matches!(kind, Kind::KeyFrame) && key.eq_ignore_ascii_case("audiotrack") {
            if audio.replace(decode_name(value, "audio track")?).is_some() {
                return Err(bad("duplicate option 'audiotrack'"));
            }
        } else {
            return Err(bad(format!("unknown option '{}'", clip(key))));
        }
    }
    let format = match (format, kind) {
        (Some(format), _) => format,
        // AMS serves Smooth Streaming fragments for a fragment URL without a format.
        (None, Kind::Fragment) => Format::Smooth,
        (None, Kind::KeyFrame) => return Err(bad("missing format= (KeyFrames(…) are HLS or DASH segments)")),
        (None, _) => return Err(bad("missing format=")),
    };
    if audio.is_some() && !format.muxes_audio() {
        return Err(bad(format!(
            "audiotrack= chooses the audio muxed into {} segments; {format} does not mux audio",
            Format::M3u8AaplV3
        )));
    }
    Ok(ChildOptions {
        format,
        encryption,
        filters: filters.unwrap_or_default(),
        audio: AudioChoice(audio),
        kind: playlist.unwrap_or_default(),
    })
}

fn parse_media_playlist_args(args: &str) -> Result<(String, ChildOptions)> {
    let mut items = split_args(args)?;
    let track = decode_name(items.next().unwrap_or_default(), "track")?;
    Ok((track, parse_child_options(items, Kind::MediaPlaylist)?))
}

/// `{track}=i` or `{track}={time}`, the first item of `Fragments(…)` and its kin.
fn parse_track_time(first: &str) -> Result<(String, Option<u64>)> {
    let (track, time) = first.split_once('=').ok_or_else(|| bad("expected {track}=i or {track}={time}"))?;
    let track = decode_name(track, "track")?;
    let time = if time == "i" { None } else { Some(parse_number(time, "time")?) };
    Ok((track, time))
}

fn parse_fragment_args(args: &str, kind: Kind) -> Result<(String, Option<u64>, ChildOptions)> {
    let mut items = split_args(args)?;
    let (track, time) = parse_track_time(items.next().unwrap_or_default())?;
    Ok((track, time, parse_child_options(items, kind)?))
}

/// `{track}={time}` of `Thumbnails(…)`: no options (the tile is the same image in every format).
fn parse_thumbnail_args(args: &str) -> Result<(String, u64)> {
    let mut items = split_args(args)?;
    let (track, time) = parse_track_time(items.next().unwrap_or_default())?;
    if let Some(extra) = items.next() {
        return Err(bad(format!("Thumbnails(…) takes no option, not '{}'", clip(extra))));
    }
    Ok((track, time.ok_or_else(|| bad("Thumbnails(…) names a time, not i"))?))
}

/// `text` with every byte outside the RFC 3986 unreserved set `[A-Za-z0-9._~-]`
/// percent-encoded (uppercase hex): safe in a URL path segment, a query value and an HLS
/// quoted string.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_encoded(&mut out, text);
    out
}

/// Appends `name`, percent-encoding every byte outside `[A-Za-z0-9._~-]`.
fn push_encoded(out: &mut String, name: &str) {
    if name.bytes().all(is_safe) {
        out.push_str(name);
        return;
    }
    for b in name.bytes() {
        if is_safe(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Formats `resource` as a path relative to `{asset}.ism/`: the exact inverse of [`parse`].
pub fn format(resource: &Resource, extension: bool) -> String {
    let mut out = String::with_capacity(96);
    match resource {
        Resource::Manifest(o) => {
            out.push_str("manifest(");
            push_format(&mut out, o.format);
            push_encryption(&mut out, o.encryption);
            push_filters(&mut out, &o.filters);
            if let Some(a) = o.audio_only {
                out.push_str(if a { ",audio-only=true" } else { ",audio-only=false" });
            }
            // Options after a format start with ','; without one (Smooth) the first loses it.
            if out.as_bytes().get("manifest(".len()) == Some(&b',') {
                out.remove("manifest(".len());
            }
            if out.len() == "manifest(".len() {
                out.truncate("manifest".len());
            } else {
                out.push(')');
            }
        }
        Resource::MediaPlaylist { bitrate, .. }
        | Resource::Init { bitrate, .. }
        | Resource::Segment { bitrate, .. }
        | Resource::KeyFrame { bitrate, .. }
        | Resource::Thumbnail { bitrate, .. } => {
            let _ = write!(out, "QualityLevels({bitrate})/");
            push_child(&mut out, resource);
        }
    }
    if extension && !resource.extension().is_empty() {
        out.push('.');
        out.push_str(resource.extension());
    }
    out
}

/// `format=…` (first option: no comma), nothing for [`Format::Smooth`], whose URLs name none.
fn push_format(out: &mut String, format: Format) {
    if format != Format::Smooth {
        out.push_str("format=");
        out.push_str(format.as_str());
    }
}

/// `,format=…` after a track item, nothing for [`Format::Smooth`].
fn push_child_format(out: &mut String, format: Format) {
    if format != Format::Smooth {
        out.push_str(",format=");
        out.push_str(format.as_str());
    }
}

/// `,encryption=…` when there is one.
fn push_encryption(out: &mut String, encryption: Option<Encryption>) {
    if let Some(e) = encryption {
        out.push_str(",encryption=");
        out.push_str(e.as_str());
    }
}

/// `,audiotrack=…` when an audio track is chosen.
fn push_audio(out: &mut String, audio: &AudioChoice) {
    if let Some(name) = audio.name() {
        out.push_str(",audiotrack=");
        push_encoded(out, name);
    }
}

/// `,filter=a;b` when there are filters.
fn push_filters(out: &mut String, filters: &[String]) {
    for (i, f) in filters.iter().enumerate() {
        out.push_str(if i == 0 { ",filter=" } else { ";" });
        push_encoded(out, f);
    }
}

/// `Manifest(…)` / `Fragments(…)` without the `QualityLevels(…)/` prefix or extension.
fn push_child(out: &mut String, resource: &Resource) {
    match resource {
        Resource::Manifest(_) => {}
        Resource::MediaPlaylist { track, format, encryption, filters, audio, kind, .. } => {
            out.push_str("Manifest(");
            push_encoded(out, track);
            out.push_str(",format=");
            out.push_str(format.as_str());
            push_audio(out, audio);
            push_encryption(out, *encryption);
            push_filters(out, filters);
            if let Some(kind) = kind.as_str() {
                out.push_str(",type=");
                out.push_str(kind);
            }
            out.push(')');
        }
        Resource::Init { track, format, encryption, .. } => {
            out.push_str("Fragments(");
            push_encoded(out, track);
            out.push_str("=i");
            push_child_format(out, *format);
            push_encryption(out, *encryption);
            out.push(')');
        }
        Resource::Segment { track, time, format, encryption, audio, .. } => {
            out.push_str("Fragments(");
            push_encoded(out, track);
            let _ = write!(out, "={time}");
            push_child_format(out, *format);
            push_audio(out, audio);
            push_encryption(out, *encryption);
            out.push(')');
        }
        Resource::KeyFrame { track, time, format, encryption, .. } => {
            out.push_str("KeyFrames(");
            push_encoded(out, track);
            let _ = write!(out, "={time},format=");
            out.push_str(format.as_str());
            push_encryption(out, *encryption);
            out.push(')');
        }
        Resource::Thumbnail { track, time, .. } => {
            out.push_str("Thumbnails(");
            push_encoded(out, track);
            let _ = write!(out, "={time})");
        }
    }
}

/// A child resource as a URL relative to its `QualityLevels({bitrate})/` folder, which is
/// how a media playlist (itself at `QualityLevels(b)/Manifest(…)`) references its init and
/// media segments. For a [`Resource::Manifest`] this is the same as [`format`].
pub fn relative_to_quality_level(resource: &Resource, extension: bool) -> String {
    if let Resource::Manifest(_) = resource {
        return format(resource, extension);
    }
    let mut out = String::with_capacity(64);
    push_child(&mut out, resource);
    if extension && !resource.extension().is_empty() {
        out.push('.');
        out.push_str(resource.extension());
    }
    out
}

/// Media segment URLs of one track, built without re-formatting the constant parts: for
/// manifests that list thousands of segments. `url(t)` equals
/// `format(&Resource::Segment { time: t, .. }, extension)` (or its
/// [`relative_to_quality_level`] form).
#[derive(Debug, Clone)]
pub struct SegmentUrls {
    prefix: String,
    suffix: String,
}

impl SegmentUrls {
    /// `relative`: leave out `QualityLevels({bitrate})/` (for media playlists).
    pub fn new(
        bitrate: u64,
        track: &str,
        format: Format,
        encryption: Option<Encryption>,
        audio: &AudioChoice,
        extension: bool,
        relative: bool,
    ) -> Self {
        let mut prefix = String::with_capacity(48);
        if !relative {
            let _ = write!(prefix, "QualityLevels({bitrate})/");
        }
        prefix.push_str("Fragments(");
        push_encoded(&mut prefix, track);
        prefix.push('=');
        let mut suffix = String::with_capacity(32);
        push_child_format(&mut suffix, format);
        push_audio(&mut suffix, audio);
        push_encryption(&mut suffix, encryption);
        suffix.push(')');
        if extension && !format.is_smooth() {
            suffix.push('.');
            suffix.push_str(format.segment_extension());
        }
        SegmentUrls { prefix, suffix }
    }

    /// The same URLs with `ext` in place of the format's segment extension, when they carry
    /// one (HLS text segments: [`TEXT_SEGMENT_EXTENSION`]).
    pub fn with_extension(mut self, ext: &str) -> Self {
        if let Some(dot) = self.suffix.rfind(").") {
            self.suffix.truncate(dot + 2);
            self.suffix.push_str(ext);
        }
        self
    }

    /// The `KeyFrames(…)` URLs of the same track (trick play): the keyframe presented at
    /// `time` ([`Resource::KeyFrame`]). Built with [`AudioChoice::default`]: keyframes mux no
    /// audio.
    pub fn key_frames(mut self) -> Self {
        if let Some(at) = self.prefix.rfind("Fragments(") {
            self.prefix.replace_range(at..at + "Fragments(".len(), "KeyFrames(");
        }
        self
    }

    /// The URL of the segment starting at `time`.
    pub fn url(&self, time: u64) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 20 + self.suffix.len());
        self.push_url(&mut out, time);
        out
    }

    /// Appends the URL of the segment starting at `time` to `out`.
    pub fn push_url(&self, out: &mut String, time: u64) {
        out.push_str(&self.prefix);
        let _ = write!(out, "{time}");
        out.push_str(&self.suffix);
    }

    /// The DASH `SegmentTemplate@media` form, with `$Time$` in place of the time. Track names
    /// are percent-encoded, so they never contain a `$` that would need escaping.
    pub fn template(&self) -> String {
        self.with_placeholder("$Time$")
    }

    /// The Smooth `StreamIndex@Url` form (MS-SSTR §2.2.2.2): these URLs with `{bitrate}`
    /// for the bitrate and `{start time}` for the time. Made from a [`SegmentUrls`] built
    /// with [`Format::Smooth`], not relative, and any bitrate (it is replaced).
    pub fn smooth_template(&self) -> String {
        let folder = self.prefix.find('/').map_or(0, |slash| slash + 1);
        let mut out = String::with_capacity(self.prefix.len() + 24 + self.suffix.len());
        if folder > 0 {
            out.push_str("QualityLevels({bitrate})/");
        }
        out.push_str(&self.prefix[folder..]);
        out.push_str("{start time}");
        out.push_str(&self.suffix);
        out
    }

    fn with_placeholder(&self, placeholder: &str) -> String {
        let mut out = String::with_capacity(self.prefix.len() + placeholder.len() + self.suffix.len());
        out.push_str(&self.prefix);
        out.push_str(placeholder);
        out.push_str(&self.suffix);
        out
    }
}

/// Decodes `%XX` escapes. Invalid escapes and non-UTF-8 results are a [`Error::BadRequest`].
pub fn percent_decode(s: &str) -> Result<String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly (`from_str_radix` alone would take a sign).
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let hex = hex.and_then(|h| std::str::from_utf8(h).ok());
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| bad("bad percent escape"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("percent escapes are not UTF-8"))
}

/// A file of a locator's asset folder served as stored at `/{locator}/{file}` (AMS
/// `downloadPaths`): a progressive MP4 or a text sidecar, directly in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadFile {
    /// The file's name in the folder, decoded.
    pub name: String,
    pub content_type: &'static str,
}

/// File extensions a download path may name, with their content types: what AMS lists in
/// `downloadPaths` (MP4 files and WebVTT sidecars), never the `.ism` or anything else.
const DOWNLOADS: [(&str, &str); 4] =
    [(".mp4", "video/mp4"), (".m4v", "video/mp4"), (".m4a", "audio/mp4"), (".vtt", "text/vtt; charset=utf-8")];

impl DownloadFile {
    /// Whether `raw` (the path segment after the locator, as it arrives) names a downloadable
    /// kind of file, so that the path is a download path and not a malformed streaming one.
    pub fn is_download_path(raw: &str) -> bool {
        Self::content_type(raw).is_some()
    }

    fn content_type(name: &str) -> Option<&'static str> {
        let lower = name.to_ascii_lowercase();
        DOWNLOADS.iter().find(|(ext, _)| lower.ends_with(ext)).map(|&(_, content_type)| content_type)
    }

    /// Parses the file segment of a download path. Its name must be percent-encoded as
    /// [`percent_encode`] writes it (as download paths are listed), and be a plain file name
    /// of the folder: no `/` (`%2F`), no `\`, no `..`, no leading dot, no control character.
    pub fn parse(raw: &str) -> Result<DownloadFile> {
        let name = decode_name(raw, "file")?;
        if name.contains(['/', '\\']) || name.contains("..") || name.starts_with('.') || name.contains(char::is_control)
        {
            return Err(bad(format!("'{}' is not a file name of the asset folder", clip(&name))));
        }
        let content_type = Self::content_type(&name)
            .ok_or_else(|| bad(format!("'{}' is not a downloadable file (.mp4, .m4v, .m4a, .vtt)", clip(&name))))?;
        Ok(DownloadFile { name, content_type })
    }
}

/// The raw value of query parameter `name` (the first one), not percent-decoded.
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn download_paths_name_plain_media_files_of_the_folder() {
        let ok = |raw: &str, name: &str, content_type: &'static str| {
            assert_eq!(DownloadFile::parse(raw).unwrap(), DownloadFile { name: name.into(), content_type }, "{raw}")
        };
        ok("video_150k.mp4", "video_150k.mp4", "video/mp4");
        ok("Ignite%20%281%29.MP4", "Ignite (1).MP4", "video/mp4");
        ok("audio.m4a", "audio.m4a", "audio/mp4");
        ok("en.vtt", "en.vtt", "text/vtt; charset=utf-8");
        for raw in [
            "..%2Fsecret.mp4",
            "a%2Fb.mp4",
            "a%5Cb.mp4",
            "..mp4",
            "a..b.mp4",
            ".hidden.mp4",
            "%2E%2E.mp4",
            "a%0Ab.mp4",
            "ladder.ism",
            "a.mp4.txt",
            "a%2emp4",
            "a b.mp4",
            "",
        ] {
            assert!(matches!(DownloadFile::parse(raw), Err(Error::BadRequest(_))), "{raw}");
        }
        assert!(DownloadFile::is_download_path("x.Mp4") && !DownloadFile::is_download_path("ladder.ism"));
    }

    #[test]
    fn query_params_are_found_by_name() {
        assert_eq!(query_param(Some("a=1&sig=5.ab&token=t"), "sig"), Some("5.ab"));
        assert_eq!(query_param(Some("xsig=1"), "sig"), None);
        assert_eq!(query_param(None, "sig"), None);
    }

    fn seg(bitrate: u64, track: &str, time: u64, format: Format) -> Resource {
        Resource::Segment {
            bitrate,
            track: track.into(),
            time,
            format,
            encryption: None,
            audio: AudioChoice::default(),
        }
    }

    fn audio(name: &str) -> AudioChoice {
        AudioChoice(Some(name.into()))
    }

    #[test]
    fn good_urls() {
        let m = |format, filters: &[&str], audio_only, encryption: Option<&str>| {
            Resource::Manifest(ManifestOptions {
                format,
                filters: filters.iter().map(|s| s.to_string()).collect(),
                audio_only,
                encryption: encryption.map(|e| Encryption::parse(e).unwrap()),
            })
        };
        let cases: Vec<(&str, Resource, bool)> = vec![
            ("manifest(format=m3u8-cmaf)", m(Format::M3u8Cmaf, &[], None, None), false),
            ("Manifest(format=m3u8-cmaf).m3u8", m(Format::M3u8Cmaf, &[], None, None), true),
            ("MANIFEST(FORMAT=MPD-TIME-CMAF).mpd", m(Format::MpdTimeCmaf, &[], None, None), true),
            ("manifest(format=mpd-time-csf)", m(Format::MpdTimeCsf, &[], None, None), false),
            (
                "manifest(filter=a;b;c,audio-only=false,format=m3u8-cmaf)",
                m(Format::M3u8Cmaf, &["a", "b", "c"], Some(false), None),
                false,
            ),
            (
                "manifest(encryption=CBCS-AAPL,format=m3u8-cmaf,audio-only=true).m3u8",
                m(Format::M3u8Cmaf, &[], Some(true), Some("cbcs-aapl")),
                true,
            ),
            (
                "QualityLevels(128000)/Manifest(aac_eng_2_128,format=m3u8-cmaf)",
                Resource::MediaPlaylist {
                    bitrate: 128000,
                    track: "aac_eng_2_128".into(),
                    format: Format::M3u8Cmaf,
                    encryption: None,
                    filters: vec![],
                    audio: AudioChoice::default(),
                    kind: PlaylistKind::Media,
                },
                false,
            ),
            (
                "qualitylevels(0)/manifest(v,format=m3u8-cmaf,filter=first2s).m3u8",
                Resource::MediaPlaylist {
                    bitrate: 0,
                    track: "v".into(),
                    format: Format::M3u8Cmaf,
                    encryption: None,
                    filters: vec!["first2s".into()],
                    audio: AudioChoice::default(),
                    kind: PlaylistKind::Media,
                },
                true,
            ),
            // AMS spellings: read as the canonical resource, formatted canonically.
            ("manifest(format=m3u8-aapl-v4)", m(Format::M3u8Aapl, &[], None, None), false),
            ("manifest(format=M3U8-AAPL-V4,filtername=a;b).m3u8", m(Format::M3u8Aapl, &["a", "b"], None, None), true),
            (
                "QualityLevels(1)/Manifest(v,format=m3u8-aapl-v4,filtername=f)",
                Resource::MediaPlaylist {
                    bitrate: 1,
                    track: "v".into(),
                    format: Format::M3u8Aapl,
                    encryption: None,
                    filters: vec!["f".into()],
                    audio: AudioChoice::default(),
                    kind: PlaylistKind::Media,
                },
                false,
            ),
            (
                "QualityLevels(1)/Manifest(video,format=m3u8-aapl-v3,audiotrack=aac_UND_2_56)",
                Resource::MediaPlaylist {
                    bitrate: 1,
                    track: "video".into(),
                    format: Format::M3u8AaplV3,
                    encryption: None,
                    filters: vec![],
                    audio: audio("aac_UND_2_56"),
                    kind: PlaylistKind::Media,
                },
                false,
            ),
            (
                "QualityLevels(1)/Fragments(video=90,encryption=cbc,AudioTrack=a%20b,format=m3u8-aapl-v3).ts",
                Resource::Segment {
                    bitrate: 1,
                    track: "video".into(),
                    time: 90,
                    format: Format::M3u8AaplV3,
                    encryption: Some(Encryption::Envelope),
                    audio: audio("a b"),
                },
                true,
            ),
            (
                "QualityLevels(3000000)/Fragments(video=i,format=mpd-time-cmaf)",
                Resource::Init {
                    bitrate: 3000000,
                    track: "video".into(),
                    format: Format::MpdTimeCmaf,
                    encryption: None,
                },
                false,
            ),
            (
                "QualityLevels(3000000)/Fragments(video=i,format=m3u8-cmaf).mp4",
                Resource::Init { bitrate: 3000000, track: "video".into(), format: Format::M3u8Cmaf, encryption: None },
                true,
            ),
            ("QualityLevels(1)/Fragments(video=0,format=m3u8-cmaf)", seg(1, "video", 0, Format::M3u8Cmaf), false),
            (
                "QualityLevels(1)/Fragments(video%201=18446744073709551615,format=mpd-time-csf).m4s",
                seg(1, "video 1", u64::MAX, Format::MpdTimeCsf),
                true,
            ),
            (
                "QualityLevels(1)/Fragments(vid%C3%A9o=900900,format=m3u8-cmaf)",
                seg(1, "vidéo", 900900, Format::M3u8Cmaf),
                false,
            ),
            (
                "QualityLevels(1)/Manifest(video,format=m3u8-aapl,TYPE=KeyFrames).m3u8",
                Resource::MediaPlaylist {
                    bitrate: 1,
                    track: "video".into(),
                    format: Format::M3u8Aapl,
                    encryption: None,
                    filters: vec![],
                    audio: AudioChoice::default(),
                    kind: PlaylistKind::KeyFrames,
                },
                true,
            ),
            (
                "QualityLevels(1)/Manifest(video,format=m3u8-cmaf,filter=f,type=thumbnails)",
                Resource::MediaPlaylist {
                    bitrate: 1,
                    track: "video".into(),
                    format: Format::M3u8Cmaf,
                    encryption: None,
                    filters: vec!["f".into()],
                    audio: AudioChoice::default(),
                    kind: PlaylistKind::Thumbnails,
                },
                false,
            ),
            (
                "QualityLevels(1)/KeyFrames(video=1024,format=m3u8-cmaf,encryption=cenc).m4s",
                Resource::KeyFrame {
                    bitrate: 1,
                    track: "video".into(),
                    time: 1024,
                    format: Format::M3u8Cmaf,
                    encryption: Some(Encryption::Common(Scheme::Cenc)),
                },
                true,
            ),
            (
                "qualitylevels(1)/keyframes(video=0,format=m3u8-aapl,encryption=cbc)",
                Resource::KeyFrame {
                    bitrate: 1,
                    track: "video".into(),
                    time: 0,
                    format: Format::M3u8Aapl,
                    encryption: Some(Encryption::Envelope),
                },
                false,
            ),
            (
                "QualityLevels(1)/Thumbnails(video=20480).jpg",
                Resource::Thumbnail { bitrate: 1, track: "video".into(), time: 20480 },
                true,
            ),
        ];
        for (path, resource, extension) in cases {
            let parsed = parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(parsed, ParsedUrl { resource: resource.clone(), extension }, "{path}");
            // And back through the formatter.
            let formatted = format(&resource, extension);
            assert_eq!(parse(&formatted).unwrap(), ParsedUrl { resource, extension }, "{formatted}");
        }
    }

    #[test]
    fn bad_urls() {
        let cases = [
            "",
            "manifest()",
            "manifest(format=hds)",
            "manifest(format=m3u8-cmaf,format=m3u8-cmaf)",
            "manifest(format=m3u8-cmaf,foo=bar)",
            "manifest(format=m3u8-cmaf,filter=a;b;c;d)",
            "manifest(format=m3u8-cmaf,filter=a,filter=b)",
            "manifest(format=m3u8-cmaf,filter=)",
            "manifest(format=m3u8-cmaf,filter=a;;b)",
            "manifest(format=m3u8-cmaf,audio-only=maybe)",
            "manifest(format=m3u8-cmaf,encryption=rot13)",
            "manifest(format=m3u8-cmaf,)",
            "manifest(format=m3u8-cmaf,audio-only)",
            "manifest(format=m3u8-cmaf)x",
            "manifest(format=m3u8-cmaf).mpd",
            "manifest(format=mpd-time-cmaf).m3u8",
            "manifest(format=m3u8-cmaf).m3u8.m3u8",
            "manifest(format=m3u8-cmaf)/x",
            "manifest(format=m3u8-cmaf))",
            "manifest((format=m3u8-cmaf)",
            "xmanifest(format=m3u8-cmaf)",
            "QualityLevels(abc)/Manifest(v,format=m3u8-cmaf)",
            "QualityLevels(-1)/Manifest(v,format=m3u8-cmaf)",
            "QualityLevels(+1)/Manifest(v,format=m3u8-cmaf)",
            "QualityLevels(01)/Manifest(v,format=m3u8-cmaf)",
            "QualityLevels()/Manifest(v,format=m3u8-cmaf)",
            "QualityLevels(18446744073709551616)/Manifest(v,format=m3u8-cmaf)",
            "QualityLevels(1)Manifest(v,format=m3u8-cmaf)",
            "QualityLevels(1)/Manifest(v)",
            "QualityLevels(1)/Manifest(,format=m3u8-cmaf)",
            "QualityLevels(1)/Manifest(v,format=mpd-time-cmaf)",
            "QualityLevels(1)/Manifest(v,format=m3u8-cmaf).mp4",
            "QualityLevels(1)/Manifest(a/b,format=m3u8-cmaf)",
            "QualityLevels(1)/Manifest(a=b,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=I,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=1.5,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=007,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=1=2,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-cmaf).mp4",
            "QualityLevels(1)/Fragments(v=i,format=m3u8-cmaf).m4s",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-cmaf,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(a(b=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(a,b=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-cmaf) ",
            // Names must arrive percent-encoded, canonically.
            "QualityLevels(1)/Fragments(video 1=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(vidéo=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(vid%c3%a9o=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(%76ideo=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(a%2=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(a%+f=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(a%zz=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(%FF=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Fragments(a%=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Manifest(a%2Cb%,format=m3u8-cmaf)",
            "manifest(format=m3u8-cmaf,filter=a%3)",
            "manifest(format=m3u8-cmaf,filter=a b)",
            "QualityLevels(1)/Other(v=0,format=m3u8-cmaf)",
            // AMS spellings, with the same rules as the canonical ones.
            "manifest(format=m3u8-aapl-v5)",
            "manifest(format=m3u8-cmaf,filter=a,filtername=b)",
            "manifest(format=m3u8-cmaf,filtername=a;b;c;d)",
            "manifest(format=m3u8-aapl-v3,audiotrack=a)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-aapl,audiotrack=a)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-cmaf,audiotrack=a)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-aapl-v3,audiotrack=)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-aapl-v3,audiotrack=a b)",
            "QualityLevels(1)/Manifest(v,format=m3u8-aapl-v3,audiotrack=a,audiotrack=b)",
            "QualityLevels(1)/Fragments(v=i,format=mpd-time-cmaf,audiotrack=a)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-aapl-v3,filtername=a)",
            "QualityLevels(1)/x/Fragments(v=0,format=m3u8-cmaf)",
            // Trick play, thumbnails and text segment extensions.
            "QualityLevels(1)/Manifest(v,format=m3u8-cmaf,type=iframes)",
            "QualityLevels(1)/Manifest(v,format=m3u8-cmaf,type=keyframes,type=keyframes)",
            "QualityLevels(1)/Manifest(v,format=m3u8-aapl-v3,audiotrack=a,type=keyframes)",
            "QualityLevels(1)/Manifest(v,format=mpd-time-cmaf,type=keyframes)",
            "QualityLevels(1)/Fragments(v=0,format=m3u8-cmaf,type=keyframes)",
            "QualityLevels(1)/KeyFrames(v=i,format=m3u8-cmaf)",
            "QualityLevels(1)/KeyFrames(v=0)",
            "QualityLevels(1)/KeyFrames(v=0,format=m3u8-aapl-v3,audiotrack=a)",
            "QualityLevels(1)/KeyFrames(v=0,format=m3u8-aapl,encryption=cenc)",
            "QualityLevels(1)/KeyFrames(v=0,format=mpd-time-cmaf).ts",
            "QualityLevels(1)/KeyFrames(v=0,format=m3u8-cmaf).vtt",
            "QualityLevels(1)/Thumbnails(v=0,format=m3u8-cmaf)",
            "QualityLevels(1)/Thumbnails(v=i)",
            "QualityLevels(1)/Thumbnails(v=0).png",
            "QualityLevels(1)/Fragments(v=0,format=mpd-time-cmaf).vtt",
            "QualityLevels(1)/Fragments(v=i,format=m3u8-cmaf).vtt",
        ];
        for path in cases {
            match parse(path) {
                Err(Error::BadRequest(reason)) => {
                    assert!(!reason.is_empty() && !reason.contains('\n'), "{path}: {reason:?}")
                }
                other => panic!("{path:?} should be a bad request, got {other:?}"),
            }
        }
    }

    #[test]
    fn smooth_streaming_urls_parse_and_format_back() {
        let manifest = |format, filters: &[&str], encryption| {
            Resource::Manifest(ManifestOptions {
                format,
                filters: filters.iter().map(|s| s.to_string()).collect(),
                audio_only: None,
                encryption,
            })
        };
        let cenc = Some(Encryption::Common(Scheme::Cenc));
        let fragment = |track: &str, time, encryption| Resource::Segment {
            bitrate: 128000,
            track: track.into(),
            time,
            format: Format::Smooth,
            encryption,
            audio: AudioChoice::default(),
        };
        // (as requested, as formatted back)
        let cases = [
            ("manifest", "manifest", manifest(Format::Smooth, &[], None)),
            ("Manifest", "manifest", manifest(Format::Smooth, &[], None)),
            ("manifest(filter=a)", "manifest(filter=a)", manifest(Format::Smooth, &["a"], None)),
            ("manifest(filtername=a;b)", "manifest(filter=a;b)", manifest(Format::Smooth, &["a", "b"], None)),
            ("manifest(encryption=cenc)", "manifest(encryption=cenc)", manifest(Format::Smooth, &[], cenc)),
            ("manifest(format=fmp4-v20)", "manifest(format=fmp4-v20)", manifest(Format::SmoothV20, &[], None)),
            (
                "manifest(filter=a,FORMAT=FMP4-V20,encryption=cenc)",
                "manifest(format=fmp4-v20,encryption=cenc,filter=a)",
                manifest(Format::SmoothV20, &["a"], cenc),
            ),
            (
                "QualityLevels(128000)/Fragments(audio=0)",
                "QualityLevels(128000)/Fragments(audio=0)",
                fragment("audio", 0, None),
            ),
            (
                "QualityLevels(128000)/Fragments(a%20b=20000000,encryption=cenc)",
                "QualityLevels(128000)/Fragments(a%20b=20000000,encryption=cenc)",
                fragment("a b", 20_000_000, cenc),
            ),
        ];
        for (path, canonical, resource) in cases {
            let parsed = parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(parsed, ParsedUrl { resource: resource.clone(), extension: false }, "{path}");
            assert_eq!(format(&resource, false), canonical, "{path}");
            assert_eq!(format(&resource, true), canonical, "{path}: Smooth URLs have no extension");
        }
        for path in [
            "QualityLevels(1)/Fragments(video=i)",
            "QualityLevels(1)/Fragments(video=0,format=fmp4-v20)",
            "QualityLevels(1)/Manifest(v,format=fmp4-v20)",
            "QualityLevels(1)/Fragments(video=0).m4s",
            "manifest.ismc",
            "manifest(filter=a).mpd",
            "manifest(encryption=cbc)",
            "manifest(format=fmp4-v20,encryption=cbcs-aapl)",
            "QualityLevels(1)/Fragments(video=0,encryption=cbcs-aapl)",
            "manifest(foo=bar)",
            "QualityLevels(1)/Manifest(v)",
        ] {
            assert!(matches!(parse(path), Err(Error::BadRequest(_))), "{path:?} should be a bad request");
        }
        let urls = SegmentUrls::new(1, "audio_eng", Format::Smooth, cenc, &AudioChoice::default(), true, false);
        assert_eq!(urls.url(5), "QualityLevels(1)/Fragments(audio_eng=5,encryption=cenc)");
        assert_eq!(
            urls.smooth_template(),
            "QualityLevels({bitrate})/Fragments(audio_eng={start time},encryption=cenc)"
        );
    }

    #[test]
    fn encryptions_the_format_cannot_carry_are_refused_when_parsed() {
        let refused = |path: &str| match parse(path) {
            Err(Error::BadRequest(reason)) => reason,
            other => panic!("{path:?} should be a bad request, got {other:?}"),
        };
        assert_eq!(
            refused("QualityLevels(1)/Fragments(v=0,format=m3u8-aapl,encryption=cenc)"),
            "m3u8-aapl segments support encryption=cbc only; use m3u8-cmaf for Common Encryption"
        );
        assert_eq!(
            refused("manifest(format=mpd-time-csf,encryption=cbc)"),
            "mpd-time-csf has no AES-128 envelope; use encryption=cenc or cbcs-aapl"
        );
        assert!(parse("manifest(format=m3u8-aapl-v3,encryption=cbc)").is_ok());
        assert!(parse("manifest(format=mpd-time-cmaf,encryption=cbcs-aapl)").is_ok());
    }

    #[test]
    fn relative_and_segment_urls() {
        let r = seg(128000, "aac eng", 1024, Format::M3u8Cmaf);
        assert_eq!(format(&r, false), "QualityLevels(128000)/Fragments(aac%20eng=1024,format=m3u8-cmaf)");
        assert_eq!(relative_to_quality_level(&r, true), "Fragments(aac%20eng=1024,format=m3u8-cmaf).m4s");
        let urls = SegmentUrls::new(128000, "aac eng", Format::M3u8Cmaf, None, &AudioChoice::default(), true, false);
        assert_eq!(urls.url(1024), format(&r, true));
        assert_eq!(urls.template(), "QualityLevels(128000)/Fragments(aac%20eng=$Time$,format=m3u8-cmaf).m4s");
        let rel = SegmentUrls::new(128000, "aac eng", Format::M3u8Cmaf, None, &AudioChoice::default(), false, true);
        assert_eq!(rel.url(1024), relative_to_quality_level(&r, false));
        let v3 = SegmentUrls::new(1, "video", Format::M3u8AaplV3, None, &audio("aac_UND_2_56"), true, true);
        assert_eq!(v3.url(0), "Fragments(video=0,format=m3u8-aapl-v3,audiotrack=aac_UND_2_56).ts");
        // HLS text segments are WebVTT: `.vtt`, and the same resource as without it.
        let text = SegmentUrls::new(0, "text_eng", Format::M3u8Aapl, None, &AudioChoice::default(), true, true)
            .with_extension(TEXT_SEGMENT_EXTENSION);
        assert_eq!(text.url(2000), "Fragments(text_eng=2000,format=m3u8-aapl).vtt");
        let parsed = parse(&format!("QualityLevels(0)/{}", text.url(2000))).unwrap();
        assert_eq!(parsed, ParsedUrl { resource: seg(0, "text_eng", 2000, Format::M3u8Aapl), extension: true });
        // KeyFrames(…) URLs are the resources they name.
        let enc = Some(Encryption::Common(Scheme::Cbcs));
        for (relative, extension) in [(false, false), (true, true)] {
            let urls =
                SegmentUrls::new(9, "vid eo", Format::M3u8Cmaf, enc, &AudioChoice::default(), extension, relative)
                    .key_frames();
            let r = Resource::KeyFrame {
                bitrate: 9,
                track: "vid eo".into(),
                time: 77,
                format: Format::M3u8Cmaf,
                encryption: enc,
            };
            let want = if relative { relative_to_quality_level(&r, extension) } else { format(&r, extension) };
            assert_eq!(urls.url(77), want);
            assert_eq!(urls.template().replace("$Time$", "77"), want);
        }
        let bare = SegmentUrls::new(0, "t", Format::M3u8Cmaf, None, &AudioChoice::default(), false, true);
        assert_eq!(bare.with_extension(TEXT_SEGMENT_EXTENSION).url(0), "Fragments(t=0,format=m3u8-cmaf)");
    }

    fn arb_format() -> impl Strategy<Value = Format> {
        prop::sample::select(Format::ALL.to_vec())
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~-]{1,24}"
    }

    /// Any non-empty name, often made of the grammar's own characters.
    fn arb_any_name() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{1,12}",
            "[(),=/;%?#&\"' aé\u{0}-\u{1f}]{1,12}",
            any::<String>().prop_filter("non-empty", |s| !s.is_empty())
        ]
    }

    fn arb_encryption() -> impl Strategy<Value = Option<Encryption>> {
        prop::option::of(prop::sample::select(Encryption::ALL.to_vec()))
    }

    /// An `audiotrack=` where `format` takes one.
    fn arb_audio(format: Format) -> impl Strategy<Value = AudioChoice> {
        prop::option::of(arb_name()).prop_map(move |name| AudioChoice(name.filter(|_| format.muxes_audio())))
    }

    fn arb_resource() -> impl Strategy<Value = Resource> {
        let manifest = (
            arb_format(),
            prop::collection::vec(arb_name(), 0..=MAX_FILTERS),
            prop::option::of(any::<bool>()),
            arb_encryption(),
        )
            .prop_map(|(format, filters, audio_only, encryption)| {
                Resource::Manifest(ManifestOptions { format, filters, audio_only, encryption })
            });
        let bitrate = prop_oneof![0u64..10_000_000, any::<u64>()];
        let hls = prop::sample::select(Format::ALL.iter().copied().filter(|f| f.is_hls()).collect::<Vec<_>>());
        let playlist = (
            bitrate.clone(),
            arb_name(),
            hls.prop_flat_map(|f| (Just(f), arb_audio(f))),
            arb_encryption(),
            prop::collection::vec(arb_name(), 0..=MAX_FILTERS),
            prop::sample::select(vec![PlaylistKind::Media, PlaylistKind::KeyFrames, PlaylistKind::Thumbnails]),
        )
            .prop_map(|(bitrate, track, (format, audio), encryption, filters, kind)| {
                // Only media playlists take an audiotrack=.
                let audio = if kind == PlaylistKind::Media { audio } else { AudioChoice::default() };
                Resource::MediaPlaylist { bitrate, track, format, encryption, filters, audio, kind }
            });
        let init = (
            bitrate.clone(),
            arb_name(),
            arb_format().prop_filter("TS has no init segment", |f| !f.is_ts()),
            arb_encryption(),
        )
            .prop_map(|(bitrate, track, format, encryption)| Resource::Init {
                bitrate,
                track,
                format,
                encryption,
            });
        let segment = (
            bitrate,
            arb_name(),
            0..=u64::MAX / 2,
            arb_format().prop_flat_map(|f| (Just(f), arb_audio(f))),
            arb_encryption(),
        )
            .prop_map(|(bitrate, track, time, (format, audio), encryption)| Resource::Segment {
                bitrate,
                track,
                time,
                format,
                encryption,
                audio,
            });
        let keyframe = (0u64..10_000_000, arb_name(), 0..=u64::MAX / 2, arb_format(), arb_encryption()).prop_map(
            |(bitrate, track, time, format, encryption)| Resource::KeyFrame {
                bitrate,
                track,
                time,
                format,
                encryption,
            },
        );
        let thumbnail = (any::<u64>(), arb_name(), any::<u64>())
            .prop_map(|(bitrate, track, time)| Resource::Thumbnail { bitrate, track, time });
        prop_oneof![manifest, playlist, init, segment, keyframe, thumbnail]
            .prop_filter("an encryption the format carries", |r| {
                r.format().is_none_or(|f| supports(f, r.encryption()).is_ok())
            })
    }

    proptest! {
        #[test]
        fn round_trip(resource in arb_resource(), extension in any::<bool>()) {
            let url = format(&resource, extension);
            let parsed = parse(&url).map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
            prop_assert_eq!(parsed, ParsedUrl { resource: resource.clone(), extension });
            if let Resource::Segment { bitrate, track, time, format: f, encryption, audio } = &resource {
                let urls = SegmentUrls::new(*bitrate, track, *f, *encryption, audio, extension, false);
                prop_assert_eq!(urls.url(*time), url);
            }
        }

        #[test]
        fn any_track_filter_and_audio_track_name_round_trips(
            track in arb_any_name(),
            filter in arb_any_name(),
            time in any::<u64>(),
            extension in any::<bool>(),
        ) {
            let resources = [
                Resource::Segment {
                    bitrate: 1, track: track.clone(), time, format: Format::M3u8AaplV3, encryption: None,
                    audio: AudioChoice(Some(filter.clone())),
                },
                Resource::Init { bitrate: 1, track: track.clone(), format: Format::M3u8Cmaf, encryption: Some(Encryption::Common(Scheme::Cenc)) },
                Resource::MediaPlaylist {
                    bitrate: 1, track, format: Format::M3u8Cmaf, encryption: None, filters: vec![filter.clone()],
                    audio: AudioChoice::default(),
                    kind: PlaylistKind::Media,
                },
                Resource::Manifest(ManifestOptions { filters: vec![filter], ..ManifestOptions::new(Format::MpdTimeCsf) }),
            ];
            for resource in resources {
                let url = format(&resource, extension);
                prop_assert!(url.bytes().all(|b| b.is_ascii_graphic() && !b"\"'<>&$#?".contains(&b)), "{}", url);
                let parsed = parse(&url).map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
                prop_assert_eq!(parsed, ParsedUrl { resource, extension });
            }
        }

        #[test]
        fn parse_never_panics(path in "\\PC{0,80}") {
            let _ = parse(&path);
        }
    }
}
