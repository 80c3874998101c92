//! Packaging: the one entry point from "asset + resource" to response bytes. Manifests come
//! from [`hls`] and [`dash`], segments from [`cmaf`]; segment payloads are fetched with the
//! ranged reads [`source`] plans (one per segment unless its samples are spread out) and passed
//! through without copying.

pub mod cmaf;
pub mod dash;
pub mod hls;
pub mod ts;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::plan::url::{Encryption, Format, Resource};
use crate::protect::drm::{self, DrmSystems, ProtectionScheme};
use crate::protect::{cenc, envelope, segment_iv, ContentKey};
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::TrackKind;
use crate::source::storage::Storage;

/// Response bytes as a list of parts (a segment's header, then slices of the source read).
#[derive(Debug, Clone)]
pub struct Output {
    pub content_type: &'static str,
    pub parts: Vec<Bytes>,
}

impl Output {
    fn text(content_type: &'static str, text: String) -> Self {
        Output { content_type, parts: vec![Bytes::from(text)] }
    }
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The parts joined (copies; for tools and tests, not the serving path).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => Bytes::from(parts.concat()),
        }
    }
}

pub const HLS_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
pub const DASH_CONTENT_TYPE: &str = "application/dash+xml";
pub const TS_CONTENT_TYPE: &str = "video/mp2t";

fn media_content_type(track: &AssetTrack) -> &'static str {
    match track.kind {
        crate::source::index::TrackKind::Audio => "audio/mp4",
        crate::source::index::TrackKind::Video => "video/mp4",
        crate::source::index::TrackKind::Text => "application/mp4",
    }
}

fn find_track<'a>(asset: &'a Asset, name: &str, bitrate: u64) -> Result<&'a AssetTrack> {
    asset
        .track(name, bitrate)
        .ok_or_else(|| Error::NotFound(format!("track '{name}' at bitrate {bitrate} in asset '{}'", asset.name)))
}

/// What encryption needs at render time: the locator's content key, the URI players fetch it
/// from (HLS AES-128 `EXT-X-KEY`), and for Common Encryption the locator id and the DRM
/// systems to signal.
#[derive(Debug, Clone, Copy)]
pub struct Protection<'a> {
    pub key: &'a ContentKey,
    pub key_uri: &'a str,
    pub locator: &'a str,
    pub drm: &'a DrmSystems,
}

fn protection_for<'a>(
    encryption: Option<Encryption>,
    protection: Option<Protection<'a>>,
) -> Result<Option<Protection<'a>>> {
    match (encryption, protection) {
        (None, _) => Ok(None),
        (Some(_), Some(p)) => Ok(Some(p)),
        (Some(e), None) => Err(Error::Forbidden(format!("no content key for encryption={}", e.as_str()))),
    }
}

/// The Common Encryption scheme of `encryption`, if it is one.
fn cenc_scheme(encryption: Option<Encryption>) -> Option<ProtectionScheme> {
    match encryption? {
        Encryption::Cenc => Some(ProtectionScheme::Cenc),
        Encryption::CbcsAapl => Some(ProtectionScheme::Cbcs),
        Encryption::Cbc => None,
    }
}

/// The `pssh` boxes of an encrypted init segment: the W3C common one (browsers' ClearKey
/// waits for it) and one per configured DRM system.
fn pssh_boxes(scheme: ProtectionScheme, p: Protection<'_>) -> Vec<Bytes> {
    let kids = [p.key.kid];
    let mut boxes = vec![drm::common_pssh(&kids)];
    if let Some(wv) = &p.drm.widevine {
        let content_id =
            wv.content_id.as_deref().map(|c| drm::expand_template(c, &p.key.kid, p.locator)).unwrap_or_default();
        boxes.push(drm::widevine_pssh(&kids, content_id.as_bytes(), scheme));
    }
    if let Some(pr) = &p.drm.playready {
        let la_url = pr.license_url.as_deref().map(|u| drm::expand_template(u, &p.key.kid, p.locator));
        boxes.push(drm::playready_pssh(&drm::playready_header_object(
            &p.key.kid,
            &p.key.key,
            la_url.as_deref(),
            scheme,
        )));
    }
    boxes
}

/// Per-track Common Encryption settings. The IV seed names the source samples (file, rendition),
/// so the same samples get the same IVs on every replica and through every locator.
fn track_encryption<'a>(
    scheme: ProtectionScheme,
    p: Protection<'a>,
    track: &AssetTrack,
    pssh: &'a [Bytes],
) -> cenc::TrackEncryption<'a> {
    cenc::TrackEncryption { scheme, key: p.key, pssh, iv_seed: cenc::iv_seed(&track.file, track.bitrate, &track.name) }
}

/// The bytes of the source file that `segment` of `track` needs: the reads its plan lists (one
/// for most segments), a few at a time. A layout no bounded plan reads is corrupt media.
async fn read_span(
    storage: &Storage,
    track: &AssetTrack,
    segment: &crate::source::timeline::Segment,
) -> Result<crate::plan::reads::SourceSpan> {
    use futures::{StreamExt, TryStreamExt};
    let plan = crate::plan::reads::plan_reads(track.index(), segment).map_err(|s| spread_error(track, segment, &s))?;
    let runs: Vec<(u64, Bytes)> = futures::stream::iter(plan.runs)
        .map(|range| async move {
            let data = storage.read_indexed_range(&track.file, &track.file_index.version, range.clone()).await?;
            if (data.len() as u64) < range.end - range.start {
                return Err(Error::media(&track.file, format!("file ends before byte {} (truncated?)", range.end)));
            }
            Ok((range.start, data))
        })
        .buffered(crate::plan::reads::CONCURRENT_READS)
        .try_collect()
        .await?;
    Ok(crate::plan::reads::SourceSpan::from_runs(runs))
}

/// The error of a segment whose samples are spread too thinly over its file.
pub fn spread_error(
    track: &AssetTrack,
    segment: &crate::source::timeline::Segment,
    s: &crate::plan::reads::Spread,
) -> Error {
    Error::media(
        &track.file,
        format!(
            "samples of segment {} of track '{}' are spread over {} bytes for {} bytes of media (reading them would take {} bytes)",
            segment.time, track.name, s.span, s.samples, s.read
        ),
    )
}

/// Builds the bytes of `resource`. `extension` says whether child URLs in manifests carry
/// file extensions (they do when the manifest itself was requested with one). `protection`
/// holds the key when the resource asks for encryption.
pub async fn render(
    storage: &Storage,
    asset: &Asset,
    resource: &Resource,
    extension: bool,
    protection: Option<Protection<'_>>,
) -> Result<Output> {
    let protection = protection_for(resource.encryption(), protection)?;
    match (resource.format(), resource.encryption()) {
        (f, Some(Encryption::Cenc | Encryption::CbcsAapl)) if f.is_ts() => {
            return Err(Error::BadRequest(format!(
                "{f} segments support encryption=cbc only; use m3u8-cmaf for Common Encryption"
            )));
        }
        (f, Some(Encryption::Cbc)) if f.is_dash() => {
            return Err(Error::BadRequest(format!("{f} has no AES-128 envelope; use encryption=cenc or cbcs-aapl")));
        }
        _ => {}
    }
    match resource {
        Resource::Manifest(options) => Ok(if options.format.is_hls() {
            Output::text(HLS_CONTENT_TYPE, hls::multivariant(asset, options, extension))
        } else {
            let signalling = match (cenc_scheme(options.encryption), protection) {
                (Some(scheme), Some(p)) => drm::dash_content_protection(scheme, p.key, p.locator, p.drm),
                _ => Vec::new(),
            };
            Output::text(DASH_CONTENT_TYPE, dash::mpd(asset, options, &signalling, extension))
        }),
        Resource::MediaPlaylist { bitrate, track, format, encryption, .. } => {
            if !format.is_hls() {
                return Err(Error::BadRequest(format!(
                    "media playlists exist only for HLS formats, not {}",
                    format.as_str()
                )));
            }
            let track = find_track(asset, track, *bitrate)?;
            let (envelope, drm_keys) = match (cenc_scheme(*encryption), protection) {
                (Some(scheme), Some(p)) => (None, drm::hls_key_lines(scheme, p.key, p.locator, p.drm)),
                (None, Some(p)) => (Some(hls::EnvelopeSignal { key_uri: p.key_uri, key: p.key }), Vec::new()),
                (_, None) => (None, Vec::new()),
            };
            Ok(Output::text(
                HLS_CONTENT_TYPE,
                hls::media_playlist(track, *format, *encryption, envelope, &drm_keys, extension),
            ))
        }
        Resource::Init { bitrate, track, format, encryption, .. } => {
            let track = find_track(asset, track, *bitrate)?;
            let (flavor, edit_list) = (cmaf::Flavor::from(*format), !format.is_dash());
            let init = match (cenc_scheme(*encryption), protection) {
                (Some(scheme), Some(p)) => {
                    let pssh = pssh_boxes(scheme, p);
                    let enc = track_encryption(scheme, p, track, &pssh);
                    cmaf::init_segment(track.index(), flavor, edit_list, Some(&enc))
                }
                _ => cmaf::init_segment(track.index(), flavor, edit_list, None),
            };
            Ok(Output { content_type: media_content_type(track), parts: vec![init] })
        }
        Resource::Segment { bitrate, track, time, format, encryption, .. } => {
            let track = find_track(asset, track, *bitrate)?;
            let (number, segment) = track
                .timeline
                .find(*time)
                .ok_or_else(|| Error::NotFound(format!("no segment of track '{}' starts at {time}", track.name)))?;
            let sequence_number = number as u32 + 1;
            let (content_type, parts) = if format.is_ts() {
                // v3 muxes the default audio's segment of the same index into video segments.
                let mut members = vec![(track, segment)];
                if *format == Format::M3u8AaplV3 && track.kind == TrackKind::Video {
                    if let Some(audio) = asset.default_audio() {
                        if let Some(audio_segment) = audio.timeline.segments.get(number) {
                            members.push((audio, audio_segment));
                        }
                    }
                }
                let mut spans = Vec::with_capacity(members.len());
                for (t, seg) in &members {
                    spans.push(read_span(storage, t, seg).await?);
                }
                let inputs: Vec<ts::TsInput> = members
                    .iter()
                    .zip(&spans)
                    .map(|((t, seg), span)| ts::TsInput { track: t.index(), segment: seg, span })
                    .collect();
                let bytes = ts::ts_segment(&inputs, sequence_number).map_err(|e| Error::media(&track.file, e))?;
                (TS_CONTENT_TYPE, vec![bytes])
            } else {
                let span = read_span(storage, track, segment).await?;
                let sample_encryption = match (cenc_scheme(*encryption), protection) {
                    (Some(scheme), Some(p)) => Some(track_encryption(scheme, p, track, &[])),
                    _ => None,
                };
                let flavor = cmaf::Flavor::from(*format);
                let built = cmaf::media_segment(
                    track.index(),
                    segment,
                    sequence_number,
                    &span,
                    flavor,
                    sample_encryption.as_ref(),
                )
                .map_err(|e| Error::media(&track.file, e))?;
                (media_content_type(track), built.parts)
            };
            // AES-128 envelope wraps whole segments; Common Encryption was applied per sample.
            let parts = match protection.filter(|_| *encryption == Some(Encryption::Cbc)) {
                Some(p) => {
                    let iv = segment_iv(p.key, track.bitrate, &track.name, format.container_tag(), *time);
                    vec![envelope::encrypt_segment(p.key, &iv, &parts)]
                }
                None => parts,
            };
            Ok(Output { content_type, parts })
        }
    }
}

/// Every resource a complete static package of `format` consists of, manifest first.
pub fn package_resources(asset: &Asset, format: Format) -> Vec<Resource> {
    let mut out = vec![Resource::Manifest(crate::plan::url::ManifestOptions {
        format,
        filters: Vec::new(),
        audio_only: None,
        encryption: None,
    })];
    for t in &asset.tracks {
        if format.is_hls() {
            out.push(Resource::MediaPlaylist {
                bitrate: t.bitrate,
                track: t.name.clone(),
                format,
                encryption: None,
                filters: Vec::new(),
            });
        }
        out.push(Resource::Init { bitrate: t.bitrate, track: t.name.clone(), format, encryption: None });
        for s in &t.timeline.segments {
            out.push(Resource::Segment {
                bitrate: t.bitrate,
                track: t.name.clone(),
                time: s.time,
                format,
                encryption: None,
            });
        }
    }
    out
}
