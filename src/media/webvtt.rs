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

// ---- writing

use crate::media::mp4::reader::boxes;
use crate::media::mp4::writer::BoxWriter;
use crate::media::{MediaError, MediaResult};

/// `HH:MM:SS.mmm` (hours grow past two digits rather than wrap: a cue at 100 h stays there).
pub fn timestamp(ms: u64) -> String {
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{f:03}")
}

/// Whether `cue` shows during `[start_ms, end_ms)`. A zero-length cue counts where it starts.
fn overlaps(cue: &Cue, start_ms: u64, end_ms: u64) -> bool {
    if cue.start_ms == cue.end_ms {
        return (start_ms..end_ms).contains(&cue.start_ms);
    }
    cue.start_ms < end_ms && cue.end_ms > start_ms
}

/// One WebVTT text segment (HLS): the header with `X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000`
/// (cue time 0 is the 90 kHz media time `mpegts` of the variant's other segments), the header
/// blocks, and every cue that shows during `[start_ms, end_ms)` with its full times: a cue
/// crossing a segment boundary is written in both segments (RFC 8216 §3.5 allows it; players
/// drop the duplicate).
pub fn segment_text(vtt: &WebVtt, start_ms: u64, end_ms: u64, mpegts: u64) -> String {
    let mut out = format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n\n");
    for block in &vtt.header_blocks {
        out.push_str(block.trim_end());
        out.push_str("\n\n");
    }
    for cue in vtt.cues.iter().filter(|c| overlaps(c, start_ms, end_ms)) {
        push_cue(&mut out, cue);
    }
    out
}

fn push_cue(out: &mut String, cue: &Cue) {
    if !cue.id.is_empty() {
        out.push_str(&cue.id);
        out.push('\n');
    }
    out.push_str(&timestamp(cue.start_ms));
    out.push_str(" --> ");
    out.push_str(&timestamp(cue.end_ms));
    if !cue.settings.is_empty() {
        out.push(' ');
        out.push_str(&cue.settings);
    }
    out.push('\n');
    // A blank line would end the cue early: the payload's empty lines are dropped.
    for line in cue.text.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// One ISO/IEC 14496-30 `wvtt` sample: its time and duration (ms) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WvttSample {
    pub start_ms: u64,
    pub duration_ms: u64,
    pub data: Vec<u8>,
}

/// The `wvtt` samples covering `[start_ms, end_ms)` exactly (ISO/IEC 14496-30 §7.4): the range
/// is split at every cue start and end inside it, and each interval is one sample holding a
/// `vttc` box (`iden`, `sttg`, `payl`) per cue showing during it, or an empty cue box `vtte`
/// when none does. Cues are thus clipped to the segment; a cue over several intervals is
/// repeated in each, as the format requires.
pub fn wvtt_samples(cues: &[Cue], start_ms: u64, end_ms: u64) -> Vec<WvttSample> {
    if end_ms <= start_ms {
        return Vec::new();
    }
    let mut cuts: Vec<u64> = vec![start_ms, end_ms];
    for c in cues.iter().filter(|c| overlaps(c, start_ms, end_ms)) {
        cuts.extend([c.start_ms, c.end_ms].into_iter().filter(|t| (start_ms..end_ms).contains(t)));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .filter_map(|w| match *w {
            [a, b] => Some((a, b)),
            _ => None,
        })
        .map(|(a, b)| {
            let mut w = BoxWriter::with_capacity(64);
            let mut any = false;
            // Zero-length cues cannot be shown in a sample of positive duration: left out.
            for c in cues.iter().filter(|c| c.start_ms <= a && c.end_ms >= b) {
                any = true;
                let vttc = w.begin(b"vttc");
                if !c.id.is_empty() {
                    w.leaf(b"iden", c.id.as_bytes());
                }
                if !c.settings.is_empty() {
                    w.leaf(b"sttg", c.settings.as_bytes());
                }
                w.leaf(b"payl", c.text.as_bytes());
                w.end(vttc);
            }
            if !any {
                w.leaf(b"vtte", &[]);
            }
            WvttSample { start_ms: a, duration_ms: b - a, data: w.into_bytes().to_vec() }
        })
        .collect()
}

/// The cues of consecutive `wvtt` samples, each given as (start ms, end ms, bytes) in
/// presentation order: a cue repeated in adjacent samples (same id, settings and text) becomes
/// one cue again. The TS formats need them as WebVTT text.
pub fn cues_from_wvtt<'a>(samples: impl IntoIterator<Item = (u64, u64, &'a [u8])>) -> MediaResult<Vec<Cue>> {
    let mut cues: Vec<Cue> = Vec::new();
    // Cues of the previous sample still open for extension (indexes into `cues`).
    let mut open: Vec<usize> = Vec::new();
    for (start_ms, end_ms, data) in samples {
        let mut now_open = Vec::new();
        for b in boxes(data) {
            let b = b.map_err(|e| MediaError(format!("wvtt sample at {start_ms} ms: {e}")))?;
            if &b.kind != b"vttc" {
                continue; // vtte (no cue), vtta (comment)
            }
            let mut cue = Cue { start_ms, end_ms, id: String::new(), settings: String::new(), text: String::new() };
            for child in boxes(b.payload) {
                let child = child.map_err(|e| MediaError(format!("wvtt cue at {start_ms} ms: {e}")))?;
                let text = String::from_utf8_lossy(child.payload).into_owned();
                match &child.kind {
                    b"iden" => cue.id = text,
                    b"sttg" => cue.settings = text,
                    b"payl" => cue.text = text.trim_end_matches('\n').to_string(),
                    _ => {} // vsid, ctim: not needed to show the cue
                }
            }
            let same = |c: &Cue| c.id == cue.id && c.settings == cue.settings && c.text == cue.text;
            let continued =
                open.iter().copied().find(|&i| cues.get(i).is_some_and(|c| c.end_ms == start_ms && same(c)));
            match continued.and_then(|i| cues.get_mut(i).map(|c| (i, c))) {
                Some((i, c)) => {
                    c.end_ms = end_ms;
                    open.retain(|&k| k != i);
                    now_open.push(i);
                }
                None => {
                    now_open.push(cues.len());
                    cues.push(cue);
                }
            }
        }
        open = now_open;
    }
    cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    Ok(cues)
}

/// A `wvtt` sample entry (ISO/IEC 14496-30 §7.5): `vttC` holds the file header (`WEBVTT` and
/// the header blocks), `vlab` a label for the track.
pub fn wvtt_sample_entry(vtt: &WebVtt, label: &str) -> Vec<u8> {
    let mut config = String::from("WEBVTT");
    for block in &vtt.header_blocks {
        config.push_str("\n\n");
        config.push_str(block.trim_end());
    }
    let mut w = BoxWriter::with_capacity(64 + config.len());
    let entry = w.begin(b"wvtt");
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
    w.leaf(b"vttC", config.as_bytes());
    w.leaf(b"vlab", label.as_bytes());
    w.end(entry);
    w.into_bytes().to_vec()
}

#[cfg(test)]
mod writing_tests {
    use super::*;

    fn cue(start_ms: u64, end_ms: u64, id: &str, text: &str) -> Cue {
        Cue { start_ms, end_ms, id: id.into(), settings: String::new(), text: text.into() }
    }

    fn sample_vtt() -> WebVtt {
        WebVtt {
            cues: vec![
                cue(500, 1500, "1", "first"),
                Cue { settings: "line:0 align:start".into(), ..cue(3500, 4500, "", "crosses\nthe boundary") },
                cue(4200, 4800, "3", "overlapping"),
                cue(7000, 7000, "", "zero length"),
            ],
            language: Some("en".into()),
            header_blocks: vec!["STYLE\n::cue { color: yellow }".into()],
        }
    }

    #[test]
    fn timestamps_keep_hours_past_99() {
        assert_eq!(timestamp(0), "00:00:00.000");
        assert_eq!(timestamp(3_723_004), "01:02:03.004");
        assert_eq!(timestamp(359_999_000), "99:59:59.000");
        assert_eq!(timestamp(360_000_001), "100:00:00.001");
    }

    #[test]
    fn segment_repeats_a_boundary_crossing_cue() {
        let vtt = sample_vtt();
        let first = segment_text(&vtt, 0, 4000, 900_000);
        let second = segment_text(&vtt, 4000, 8000, 900_000);
        assert!(first.starts_with(
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\nSTYLE\n::cue { color: yellow }\n\n"
        ));
        assert!(first.contains("1\n00:00:00.500 --> 00:00:01.500\nfirst\n\n"));
        let crossing = "00:00:03.500 --> 00:00:04.500 line:0 align:start\ncrosses\nthe boundary\n\n";
        assert!(first.contains(crossing) && second.contains(crossing), "{first}\n{second}");
        assert!(!first.contains("overlapping") && second.contains("3\n00:00:04.200 --> 00:00:04.800\noverlapping"));
        assert!(!second.contains("first") && second.contains("00:00:07.000 --> 00:00:07.000\nzero length"));
    }

    #[test]
    fn wvtt_samples_split_at_every_cue_edge() {
        let vtt = sample_vtt();
        let samples = wvtt_samples(&vtt.cues, 4000, 8000);
        let spans: Vec<(u64, u64)> = samples.iter().map(|s| (s.start_ms, s.duration_ms)).collect();
        assert_eq!(spans, [(4000, 200), (4200, 300), (4500, 300), (4800, 2200), (7000, 1000)]);
        assert_eq!(samples.iter().map(|s| s.duration_ms).sum::<u64>(), 4000);
        // 4200..4500: two cues, each a vttc with its boxes; 4800..: a gap, one empty vtte.
        let kinds = |d: &[u8]| boxes(d).map(|b| b.map(|b| b.kind)).collect::<MediaResult<Vec<_>>>();
        assert_eq!(kinds(&samples[1].data).unwrap(), [*b"vttc", *b"vttc"]);
        assert_eq!(samples[3].data, [0, 0, 0, 8, b'v', b't', b't', b'e']);
        let first = boxes(&samples[0].data).next().unwrap().unwrap();
        assert_eq!(kinds(first.payload).unwrap(), [*b"sttg", *b"payl"]);
        assert!(wvtt_samples(&vtt.cues, 10, 10).is_empty());
    }

    #[test]
    fn cues_round_trip_through_wvtt_samples() {
        let vtt = sample_vtt();
        let samples: Vec<WvttSample> =
            [(0, 4000), (4000, 8000)].iter().flat_map(|&(a, b)| wvtt_samples(&vtt.cues, a, b)).collect();
        let back =
            cues_from_wvtt(samples.iter().map(|s| (s.start_ms, s.start_ms + s.duration_ms, &s.data[..]))).unwrap();
        // The zero-length cue has no sample to live in; the others come back whole, the
        // boundary-crossing one joined across the segment boundary.
        let expected: Vec<Cue> = vtt.cues.iter().filter(|c| c.start_ms < c.end_ms).cloned().collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn identical_cues_apart_in_time_stay_apart() {
        let cues = vec![cue(0, 1000, "", "same"), cue(2000, 3000, "", "same")];
        let samples = wvtt_samples(&cues, 0, 3000);
        let back =
            cues_from_wvtt(samples.iter().map(|s| (s.start_ms, s.start_ms + s.duration_ms, &s.data[..]))).unwrap();
        assert_eq!(back, cues);
    }

    #[test]
    fn malformed_wvtt_is_an_error_not_a_panic() {
        let bad: &[u8] = &[0, 0, 0, 40, b'v', b't', b't', b'c', 0, 0];
        assert!(cues_from_wvtt([(0, 1000, bad)]).is_err());
        let inner: &[u8] = &[0, 0, 0, 12, b'v', b't', b't', b'c', 0, 0, 0, 99];
        assert!(cues_from_wvtt([(0, 1000, inner)]).is_err());
    }

    #[test]
    fn sample_entry_carries_the_header() {
        let entry = wvtt_sample_entry(&sample_vtt(), "English");
        let b = boxes(&entry).next().unwrap().unwrap();
        assert_eq!(&b.kind, b"wvtt");
        let config = crate::media::mp4::reader::find(&b.payload[8..], b"vttC").unwrap().unwrap();
        assert_eq!(config, b"WEBVTT\n\nSTYLE\n::cue { color: yellow }");
    }
}
