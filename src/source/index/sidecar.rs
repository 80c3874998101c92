//! WebVTT sidecar files (`.vtt` next to the MP4s) indexed as one-track files: a `Text` track
//! with no samples, timescale 1000 (the cues' milliseconds), a built `wvtt` sample entry, and
//! the parsed cues in [`TrackIndex::sidecar`]. Outputs cut the cues per segment; nothing of
//! the file is read again after this one read.

use std::sync::Arc;

use super::{CodecFamily, CodecInfo, EditOffset, FileIndex, SampleTable, TrackIndex, TrackInfo, TrackKind};
use crate::error::{Error, Result};
use crate::media::webvtt;
use crate::source::storage::Storage;

/// Largest sidecar read: a 3-hour film has about 2,000 cues (≈ 150 KB); 16 MiB leaves room for
/// anything real while bounding the memory one request can make the origin hold.
pub const MAX_SIDECAR_BYTES: u64 = 16 << 20;

/// Whether `path` names a WebVTT sidecar (by its extension, as storage listings show it).
pub fn is_sidecar(path: &str) -> bool {
    path.rsplit_once('.').is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("vtt"))
}

/// Indexes the WebVTT file at `path` in one read. A file over [`MAX_SIDECAR_BYTES`], empty,
/// or without the `WEBVTT` signature is an error naming the file; cues the parser skipped
/// are logged, the rest served.
pub async fn index_sidecar(storage: &Storage, path: &str) -> Result<FileIndex> {
    // One byte more than the limit tells an oversized file without a separate HEAD.
    let (bytes, version) = storage.read_head(path, MAX_SIDECAR_BYTES + 1).await?;
    if version.size > MAX_SIDECAR_BYTES || bytes.len() as u64 > MAX_SIDECAR_BYTES {
        return Err(Error::media(
            path,
            format!(
                "WebVTT file of {} bytes is over the {} MiB sidecar limit",
                version.size.max(bytes.len() as u64),
                MAX_SIDECAR_BYTES >> 20
            ),
        ));
    }
    let index = sidecar_index(path, &bytes).map_err(|e| Error::media(path, e))?;
    Ok(FileIndex { path: path.to_string(), version, tracks: vec![index], reads: 1 })
}

/// The track of a sidecar whose bytes are `bytes`.
pub fn sidecar_index(path: &str, bytes: &[u8]) -> std::result::Result<TrackIndex, String> {
    let (vtt, report) = webvtt::parse_with_report(bytes)?;
    if report.skipped_cues > 0 {
        tracing::warn!(
            file = path,
            skipped = report.skipped_cues,
            first_line = report.first_skipped_line,
            "WebVTT cues skipped: malformed timing line or end not after start"
        );
    }
    let language = vtt.language.as_deref().and_then(webvtt::iso639_2).unwrap_or_else(|| "und".to_string());
    let sample_entry = webvtt::wvtt_sample_entry(&vtt).map_err(|e| e.to_string())?;
    let codec = CodecInfo {
        family: CodecFamily::Other,
        sample_entry_type: "wvtt".into(),
        codec_string: "wvtt".into(),
        ..CodecInfo::default()
    };
    let info = TrackInfo {
        track_id: 1,
        kind: TrackKind::Text,
        timescale: 1000,
        language,
        sample_entry,
        codec,
        edit: EditOffset::default(),
    };
    // No samples; the end time is the last cue's end, so the track's duration is its cues'.
    let samples =
        SampleTable { end_dts: vtt.cues.iter().map(|c| c.end_ms).max().unwrap_or(0), ..SampleTable::default() };
    Ok(TrackIndex { info, samples, sidecar: Some(Arc::new(vtt)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_is_one_text_track_with_its_cues() {
        let t = sidecar_index("a/en.vtt", b"WEBVTT\nLanguage: en-US\n\n00:01.000 --> 00:02.500\nHi\n").unwrap();
        assert_eq!((t.info.kind, t.info.timescale, t.info.language.as_str()), (TrackKind::Text, 1000, "eng"));
        assert_eq!(t.info.codec.codec_string, "wvtt");
        assert_eq!(crate::media::codec::describe(&t.info.sample_entry).unwrap().sample_entry_type, "wvtt");
        assert!(t.samples.is_empty());
        assert_eq!(t.samples.end_dts, 2500);
        assert!(t.samples.validate().is_ok());
        assert_eq!(t.sidecar.as_ref().map(|v| v.cues.len()), Some(1));
    }

    #[test]
    fn a_language_that_is_no_iso_code_is_und_and_not_webvtt_is_an_error() {
        let t = sidecar_index("x.vtt", b"WEBVTT\nLanguage: klingon\n").unwrap();
        assert_eq!(t.info.language, "und");
        assert!(sidecar_index("x.vtt", b"1\n00:00:01,000 --> 00:00:02,000\nSRT").unwrap_err().contains("WEBVTT"));
    }

    #[test]
    fn sidecars_are_told_by_extension() {
        assert!(is_sidecar("a/b/en.vtt") && is_sidecar("EN.VTT"));
        assert!(!is_sidecar("a.mp4") && !is_sidecar("vtt") && !is_sidecar("a.vtt.mp4"));
    }
}
