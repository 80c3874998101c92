//! Text tracks' segments: WebVTT text segments for HLS, and fMP4 `wvtt` segments built from a
//! sidecar's cues for DASH. Text tracks of MP4 sources in fMP4 formats (`wvtt`, `stpp`) are
//! plain media segments ([`super::cmaf`]); only their conversion to WebVTT text for the TS
//! formats is here.
//!
//! Timing: cues are in presentation time (ms, 0 = the asset's start, edit lists applied).
//! - HLS: `X-TIMESTAMP-MAP=MPEGTS:m,LOCAL:00:00:00.000` says which 90 kHz timestamp of the
//!   variant's media cue time 0 is. The TS muxer writes `PTS = presentation time +`
//!   [`ts::TIMESTAMP_OFFSET`] (10 s), so the TS formats map 0 to 900000. fMP4 segments keep
//!   the source's decode times in `tfdt` and their init segment's edit list maps media time to
//!   presentation time (media_time at presentation 0), so presentation time is the fMP4
//!   timeline players and ffmpeg use: `m3u8-cmaf` maps 0 to 0. Filters only drop segments
//!   (segment bytes and times never change with them), so the map is the same for every
//!   filter and cues stay on their frames.
//! - DASH: a sidecar's `wvtt` segments have `tfdt` = presentation time in ms, the text
//!   track's `presentationTimeOffset` carries a filter's window like every other track's.
//!
//! Text is never encrypted: with `encryption=` on the URL a text resource is served clear, as
//! packagers do (players expect clear text; WebVTT text has no encrypted form).

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::media::webvtt::{cues_from_wvtt, segment_text, wvtt_samples, Cue, WebVtt};
use crate::output::cmaf::{self, Flavor};
use crate::output::ts;
use crate::plan::reads::SourceSpan;
use crate::plan::url::Format;
use crate::source::asset::{Asset, AssetTrack};
use crate::source::index::{SampleTable, TrackIndex, TrackKind};
use crate::source::timeline::Segment;

pub const WEBVTT_CONTENT_TYPE: &str = "text/vtt; charset=utf-8";

/// Whether `track`'s segments in `format` are WebVTT text (HLS from a sidecar, and the TS
/// formats from a `wvtt` MP4 track), not fMP4.
pub(crate) fn webvtt_segments(track: &TrackIndex, format: Format) -> bool {
    track.info.kind == TrackKind::Text && (format.is_ts() || (format.is_hls() && track.sidecar.is_some()))
}

/// Whether `format` can carry text track `track`: the TS formats take WebVTT text only, so
/// they leave out tracks that cannot become WebVTT (`stpp`/TTML).
pub(crate) fn carries(track: &AssetTrack, format: Format) -> bool {
    let index = track.index();
    track.kind == TrackKind::Text
        && (!format.is_ts() || index.sidecar.is_some() || index.info.codec.sample_entry_type == "wvtt")
}

/// The text tracks a manifest of `format` lists, in asset order.
pub fn text_tracks(asset: &Asset, format: Format) -> impl Iterator<Item = &AssetTrack> {
    asset.tracks_of(TrackKind::Text).filter(move |t| carries(t, format))
}

/// The name players show for the track (HLS NAME, DASH Label): the `.ism` display name, else
/// the track name.
pub fn display_name(track: &AssetTrack) -> &str {
    track.display_name.as_deref().unwrap_or(&track.name)
}

/// The codec string manifests name for a text track: `wvtt`, or for TTML the IMSC1 text
/// profile (`stpp.ttml.im1t`, ISO/IEC 14496-30 and W3C IMSC1 registration) when the source
/// says no more than `stpp`.
pub fn codecs(track: &AssetTrack) -> String {
    let codec = &track.index().info.codec;
    match codec.codec_string.as_str() {
        "stpp" | "" if codec.sample_entry_type == "stpp" => "stpp.ttml.im1t".to_owned(),
        other => other.to_owned(),
    }
}

/// DASH Role value (`urn:mpeg:dash:role:2011`) of a text track.
pub fn dash_role(track: &AssetTrack) -> &'static str {
    if is_forced(track) {
        "forced-subtitle"
    } else if is_sdh(track) {
        "caption"
    } else {
        "subtitle"
    }
}

/// Whether the track is for the deaf and hard of hearing (captions: dialogue plus music and
/// sounds), from the `.ism` `accessibility` / `role` params.
pub fn is_sdh(track: &AssetTrack) -> bool {
    let sdh = |v: &Option<String>| v.as_deref().is_some_and(|v| matches!(v, "caption" | "sdh" | "captions"));
    sdh(&track.accessibility) || sdh(&track.role)
}

/// Whether the track holds forced subtitles only (DASH role `forced-subtitle`).
pub fn is_forced(track: &AssetTrack) -> bool {
    track.role.as_deref() == Some("forced-subtitle")
}

/// The 90 kHz timestamp of cue time 0 in the variants of `format` (see the module comment).
pub(crate) fn mpegts_of_time_zero(format: Format) -> u64 {
    if format.is_ts() {
        ts::TIMESTAMP_OFFSET as u64
    } else {
        0
    }
}

fn ms(ticks: i128, timescale: u32) -> u64 {
    (ticks * 1000).div_euclid(i128::from(timescale.max(1))).clamp(0, i128::from(u64::MAX)) as u64
}

/// The segment of text track `track` that is not a plain fMP4 media segment: WebVTT text
/// ([`webvtt_segments`]) or a sidecar's `wvtt` fMP4 segment. `sources`: the bytes of the
/// segment's samples (nothing for a sidecar, whose segments have no samples); `flavor`: the
/// fMP4 flavour of `format`.
pub(crate) fn segment(
    track: &AssetTrack,
    segment: &Segment,
    sequence_number: u32,
    format: Format,
    flavor: Flavor,
    sources: &[SourceSpan],
) -> Result<(&'static str, Vec<Bytes>)> {
    let index = track.index();
    let timescale = track.timeline.timescale;
    let start_ms = ms(i128::from(segment.time), timescale);
    let end_ms = ms(i128::from(segment.time) + i128::from(segment.duration), timescale);
    if webvtt_segments(index, format) {
        let text = match &index.sidecar {
            Some(vtt) => segment_text(vtt, start_ms, end_ms, mpegts_of_time_zero(format)),
            None => {
                let span = sources.first().ok_or_else(|| Error::media(&track.file, "segment source not read"))?;
                let (cues, start, end) = source_cues(index, segment, span).map_err(|e| Error::media(&track.file, e))?;
                let vtt = WebVtt { cues, language: None, header_blocks: Vec::new() };
                segment_text(&vtt, start, end, mpegts_of_time_zero(format))
            }
        };
        return Ok((WEBVTT_CONTENT_TYPE, vec![Bytes::from(text)]));
    }
    let Some(vtt) = &index.sidecar else {
        return Err(Error::media(&track.file, "not a WebVTT sidecar: its segments are fMP4 media segments"));
    };
    let built = sidecar_fmp4(index, &vtt.cues, segment, start_ms, end_ms, sequence_number, flavor)
        .map_err(|e| Error::media(&track.file, e))?;
    Ok(("application/mp4", built))
}

/// The cues of a `wvtt` MP4 track's segment and its presentation range (ms): each sample's
/// presentation interval (edit list applied) is one `wvtt` sample's interval.
fn source_cues(index: &TrackIndex, segment: &Segment, span: &SourceSpan) -> Result<(Vec<Cue>, u64, u64), String> {
    let s = &index.samples;
    let start = segment.first_sample as usize;
    let range = start..start.saturating_add(segment.sample_count as usize);
    if range.end > s.len() || s.dts.len() < s.len() || s.offsets.len() < s.len() || s.sizes.len() < s.len() {
        return Err(format!("segment samples {}..{} outside the track's {} samples", range.start, range.end, s.len()));
    }
    let (timescale, shift) = (index.info.timescale, i128::from(index.info.edit.presentation_shift()));
    let mut samples = Vec::with_capacity(range.len());
    for i in range {
        let begin = i128::from(s.dts[i]) + i128::from(s.cts_offset(i)) + shift;
        let end = begin + i128::from(s.duration(i));
        let (offset, size) = (s.offsets[i], u64::from(s.sizes[i]));
        let data = span.sample(offset, size).ok_or_else(|| {
            format!("sample {i} ({offset}+{size}) lies outside the fetched bytes {}", span.describe())
        })?;
        samples.push((ms(begin, timescale), ms(end, timescale), data));
    }
    let (first, last) = (samples.first().map_or(0, |s| s.0), samples.iter().map(|s| s.1).max().unwrap_or(0));
    let cues = cues_from_wvtt(samples).map_err(|e| e.0)?;
    Ok((cues, first, last))
}

/// A sidecar's segment as fMP4: `wvtt` samples for `[start_ms, end_ms)` laid out as a sample
/// table over one buffer, then the ordinary media segment writer (so DASH text segments are
/// built like every other track's, `tfdt` included).
fn sidecar_fmp4(
    index: &TrackIndex,
    cues: &[Cue],
    segment: &Segment,
    start_ms: u64,
    end_ms: u64,
    sequence_number: u32,
    flavor: Flavor,
) -> Result<Vec<Bytes>, String> {
    let timescale = u64::from(index.info.timescale.max(1));
    let ticks = |ms: u64| (u128::from(ms) * u128::from(timescale) / 1000).min(u128::from(u64::MAX)) as u64;
    let samples = wvtt_samples(cues, start_ms, end_ms);
    let mut table = SampleTable::default();
    let mut data = Vec::new();
    for s in &samples {
        table.dts.push(ticks(s.start_ms));
        table.offsets.push(data.len() as u64);
        table.sizes.push(u32::try_from(s.data.len()).map_err(|_| "a wvtt sample over 4 GiB".to_string())?);
        data.extend_from_slice(&s.data);
    }
    table.end_dts = ticks(end_ms);
    let first_dts = table.dts.first().copied().unwrap_or(segment.time);
    let track = TrackIndex { info: index.info.clone(), samples: table, sidecar: None };
    let sample_count = u32::try_from(samples.len()).map_err(|_| "too many wvtt samples".to_string())?;
    let segment = Segment {
        first_sample: 0,
        sample_count,
        time: first_dts,
        duration: segment.duration,
        bytes: data.len() as u64,
        discontinuity: false,
    };
    let span = SourceSpan::new(0, Bytes::from(data));
    let built = cmaf::media_segment(&track, &segment, sequence_number, &span, cmaf::SegmentOptions::clear(flavor))
        .map_err(|e| e.0)?;
    Ok(built.parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::mp4::reader::{boxes, find_path};

    fn cue(start_ms: u64, end_ms: u64, text: &str) -> Cue {
        Cue { start_ms, end_ms, id: String::new(), settings: String::new(), text: text.into() }
    }

    #[test]
    fn sidecar_fmp4_segment_has_wvtt_samples_at_presentation_times() {
        let info = crate::source::index::TrackInfo {
            track_id: 1,
            kind: TrackKind::Text,
            timescale: 1000,
            language: "eng".into(),
            sample_entry: Bytes::new(),
            codec: crate::source::index::CodecInfo {
                sample_entry_type: "wvtt".into(),
                codec_string: "wvtt".into(),
                ..Default::default()
            },
            edit: Default::default(),
        };
        let index = TrackIndex { info, samples: SampleTable::default(), sidecar: None };
        let cues = [cue(1000, 2500, "a"), cue(3000, 5000, "b")];
        let seg =
            Segment { first_sample: 0, sample_count: 0, time: 2000, duration: 2000, bytes: 0, discontinuity: false };
        let parts = sidecar_fmp4(&index, &cues, &seg, 2000, 4000, 2, Flavor::Cmaf).unwrap();
        let bytes: Vec<u8> = parts.concat();
        let kinds: Vec<[u8; 4]> = boxes(&bytes).map(|b| b.unwrap().kind).collect();
        assert_eq!(kinds, [*b"styp", *b"moof", *b"mdat"]);
        let moof = boxes(&bytes).nth(1).unwrap().unwrap();
        let tfdt = find_path(moof.payload, &[b"traf", b"tfdt"]).unwrap().unwrap();
        let time = u64::from_be_bytes(tfdt[4..12].try_into().unwrap());
        assert_eq!(time, 2000);
        // Samples: 2000..2500 "a", 2500..3000 gap, 3000..4000 "b" (clipped), back to cues.
        let mdat = boxes(&bytes).nth(2).unwrap().unwrap();
        let samples = wvtt_samples(&cues, 2000, 4000);
        assert_eq!(mdat.payload, samples.iter().flat_map(|s| s.data.clone()).collect::<Vec<u8>>());
        let back = cues_from_wvtt(samples.iter().map(|s| (s.start_ms, s.start_ms + s.duration_ms, &s.data[..])));
        assert_eq!(back.unwrap(), [cue(2000, 2500, "a"), cue(3000, 4000, "b")]);
    }

    #[test]
    fn map_follows_the_container() {
        assert_eq!(mpegts_of_time_zero(Format::M3u8Aapl), 900_000);
        assert_eq!(mpegts_of_time_zero(Format::M3u8AaplV3), 900_000);
        assert_eq!(mpegts_of_time_zero(Format::M3u8Cmaf), 0);
    }
}
