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

impl WebVtt {
    /// Heap bytes the parsed file holds (about its size): what a cache weighs it as.
    pub fn heap_bytes(&self) -> usize {
        let cues: usize =
            self.cues.iter().map(|c| std::mem::size_of::<Cue>() + c.id.len() + c.settings.len() + c.text.len()).sum();
        cues + self.header_blocks.iter().map(String::len).sum::<usize>()
    }
}

/// What `parse` dropped from a readable file, so a caller can report it (the spec drops these
/// silently; an origin should say that a sidecar was partly unreadable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Cues whose timing line did not parse, and cues ending at or before their start.
    pub skipped_cues: usize,
    /// The 1-based line number of the first skipped cue's timing line.
    pub first_skipped_line: Option<usize>,
}

/// Parses a WebVTT file. See `parse_with_report`.
pub fn parse(bytes: &[u8]) -> Result<WebVtt, String> {
    parse_with_report(bytes).map(|(vtt, _)| vtt)
}

/// Parses a WebVTT file by the W3C WebVTT parsing algorithm (section 6.1), written here rather
/// than taken from a crate because the output model is ours (times in ms, STYLE/REGION blocks
/// verbatim for repetition in segments) and the registry's parsers either reject what browsers
/// accept or drop the blocks we must keep.
///
/// Follows the spec where it is lenient: bytes that are not UTF-8 become U+FFFD, NUL becomes
/// U+FFFD, a leading BOM is dropped, CRLF / CR / LF all end lines, a block whose timing line does
/// not parse is skipped, a `-->` line inside a payload ends that cue and starts the next, STYLE
/// and REGION blocks after the first cue are ignored, hours have any number of digits (up to
/// a million hours, beyond which a time would overflow timescale arithmetic).
/// Deviates in two places, both documented by the report: a cue whose end is not after its
/// start is dropped (it could never be shown, and segmenters would give it no duration), and
/// cues out of order are sorted stably by (start, end), as segmenting needs them.
/// `Err` only when the file is not WebVTT at all: no `WEBVTT` signature at its start.
pub fn parse_with_report(bytes: &[u8]) -> Result<(WebVtt, ParseReport), String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let decoded = String::from_utf8_lossy(bytes);
    let text = decoded.replace('\0', "\u{FFFD}").replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();

    let signature = lines.first().copied().unwrap_or_default();
    let after = signature.strip_prefix("WEBVTT").ok_or_else(|| {
        let shown: String = signature.chars().take(16).collect();
        format!("not a WebVTT file: it does not start with the WEBVTT signature (first line {shown:?})")
    })?;
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return Err(format!(
            "not a WebVTT file: the signature line {signature:?} has text after WEBVTT without a space"
        ));
    }

    let mut vtt = WebVtt::default();
    let mut report = ParseReport::default();
    let mut at = 1;
    // The header: the lines right after the signature, up to a blank line or a timing line
    // (which then starts the first cue). Only `Language:` is kept; `Kind:` and others are
    // metadata outputs re-declare in their own terms.
    while let Some(line) = lines.get(at) {
        if line.is_empty() || line.contains("-->") {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim();
            if key.trim().eq_ignore_ascii_case("language") && !value.is_empty() {
                vtt.language = Some(value.to_string());
            }
        }
        at += 1;
    }

    let mut seen_cue = false;
    while at < lines.len() {
        if lines.get(at).is_some_and(|l| l.is_empty()) {
            at += 1;
            continue;
        }
        let start = at;
        let block = collect_block(&lines, &mut at, seen_cue);
        match block {
            Block::Cue(cue) if cue.end_ms > cue.start_ms => {
                seen_cue = true;
                vtt.cues.push(cue);
            }
            Block::Cue(_) | Block::BadTiming => {
                // A cue counts as seen even when dropped: STYLE after it is still ignored.
                seen_cue = true;
                report.skipped_cues += 1;
                let timing_line = lines[start..at].iter().position(|l| l.contains("-->")).map_or(start, |p| start + p);
                report.first_skipped_line.get_or_insert(timing_line + 1);
            }
            Block::Header(verbatim) => vtt.header_blocks.push(verbatim),
            Block::Other => {}
        }
    }
    // Stable: cues with equal times keep their file order, which is their rendering order.
    vtt.cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    Ok((vtt, report))
}

enum Block {
    Cue(Cue),
    /// A block whose timing line did not parse.
    BadTiming,
    /// A STYLE or REGION block, verbatim.
    Header(String),
    /// A NOTE or any block that is neither a cue nor a header block.
    Other,
}

/// The spec's "collect a WebVTT block" outside the header: consumes lines from `*at` up to and
/// including a blank line, or up to (not including) a `-->` line that cannot be this block's
/// timing line.
fn collect_block(lines: &[&str], at: &mut usize, seen_cue: bool) -> Block {
    let first = *at;
    let mut line_count = 0;
    let mut seen_arrow = false;
    let mut buffer: Vec<&str> = Vec::new();
    let mut cue: Option<Cue> = None;
    let mut header_block = false;
    while let Some(&line) = lines.get(*at) {
        line_count += 1;
        if line.contains("-->") {
            if line_count == 1 || (line_count == 2 && !seen_arrow) {
                seen_arrow = true;
                *at += 1;
                cue = parse_timing_line(line).map(|(start_ms, end_ms, settings)| Cue {
                    start_ms,
                    end_ms,
                    id: buffer.join("\n"),
                    settings,
                    text: String::new(),
                });
                if cue.is_some() {
                    buffer.clear();
                }
                continue;
            }
            break;
        }
        *at += 1;
        if line.is_empty() {
            break;
        }
        if line_count == 2 && !seen_cue && !seen_arrow {
            if let [name] = buffer[..] {
                header_block = ["STYLE", "REGION"]
                    .iter()
                    .any(|kw| name.strip_prefix(kw).is_some_and(|rest| rest.chars().all(is_vtt_space)));
            }
        }
        buffer.push(line);
    }
    if let Some(mut cue) = cue {
        cue.text = buffer.join("\n");
        return Block::Cue(cue);
    }
    if seen_arrow {
        return Block::BadTiming;
    }
    if header_block {
        let end = lines[first..*at].iter().rposition(|l| !l.is_empty()).map_or(first, |p| first + p + 1);
        return Block::Header(lines[first..end].join("\n"));
    }
    Block::Other
}

fn is_vtt_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0C')
}

/// The spec's "collect WebVTT cue timings and settings": `start --> end [settings]`.
fn parse_timing_line(line: &str) -> Option<(u64, u64, String)> {
    let rest = line.trim_start_matches(is_vtt_space);
    let (start, rest) = take_timestamp(rest)?;
    let rest = rest.trim_start_matches(is_vtt_space).strip_prefix("-->")?;
    let (end, rest) = take_timestamp(rest.trim_start_matches(is_vtt_space))?;
    // The spec needs whitespace between the end time and the settings ("00:01.000x" fails).
    if !rest.is_empty() && !rest.starts_with(is_vtt_space) {
        return None;
    }
    Some((start, end, rest.trim_matches(is_vtt_space).to_string()))
}

/// Parses a WebVTT timestamp (`mm:ss.ttt` or `h…h:mm:ss.ttt`) into milliseconds; `None` when
/// it is not one, or when its hours exceed a million.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    match take_timestamp(s) {
        Some((ms, "")) => Some(ms),
        _ => None,
    }
}

/// Hours above this read as a malformed timestamp (the spec has no bound): a century of
/// presentation, small enough that any time in ms times a 10 MHz timescale fits in a u64.
const MAX_HOURS: u64 = 1_000_000;

/// The spec's "collect a WebVTT timestamp" at the start of `s`: the value and what follows.
fn take_timestamp(s: &str) -> Option<(u64, &str)> {
    fn digits(s: &str) -> (&str, &str) {
        s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()))
    }
    let value = |d: &str| d.parse::<u64>().ok();
    let (first, rest) = digits(s);
    if first.is_empty() {
        return None;
    }
    // Two digits up to 59 read as minutes unless a third field follows; anything else is hours.
    let hours_first = first.len() != 2 || value(first)? > 59;
    let (second, rest) = digits(rest.strip_prefix(':')?);
    if second.len() != 2 {
        return None;
    }
    let (hours, minutes, seconds, rest) = if hours_first || rest.starts_with(':') {
        let (third, rest) = digits(rest.strip_prefix(':')?);
        if third.len() != 2 {
            return None;
        }
        (value(first)?, value(second)?, value(third)?, rest)
    } else {
        (0, value(first)?, value(second)?, rest)
    };
    let (fraction, rest) = digits(rest.strip_prefix('.')?);
    if fraction.len() != 3 || minutes > 59 || seconds > 59 {
        return None;
    }
    if hours > MAX_HOURS {
        return None;
    }
    Some((hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + value(fraction)?, rest))
}

/// The ISO 639-2/T code (as `mdhd` and the rest of the media model carry languages) of a
/// language tag: `en`, `en-GB`, `eng` → `eng`. `None` when the primary subtag is no ISO 639
/// code.
pub fn iso639_2(tag: &str) -> Option<String> {
    let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    let language = match primary.len() {
        2 => isolang::Language::from_639_1(&primary),
        3 => isolang::Language::from_639_3(bibliographic_to_terminology(&primary).unwrap_or(&primary)),
        _ => None,
    }?;
    Some(language.to_639_3().to_string())
}

/// The ISO 639-2/T code of one of the twenty ISO 639-2/B codes that differ from it (`fre`,
/// `ger`: common in file names and older manifests; isolang knows only 639-1 and 639-3).
fn bibliographic_to_terminology(code: &str) -> Option<&'static str> {
    const B_TO_T: [(&str, &str); 20] = [
        ("alb", "sqi"),
        ("arm", "hye"),
        ("baq", "eus"),
        ("bur", "mya"),
        ("chi", "zho"),
        ("cze", "ces"),
        ("dut", "nld"),
        ("fre", "fra"),
        ("geo", "kat"),
        ("ger", "deu"),
        ("gre", "ell"),
        ("ice", "isl"),
        ("mac", "mkd"),
        ("mao", "mri"),
        ("may", "msa"),
        ("per", "fas"),
        ("rum", "ron"),
        ("slo", "slk"),
        ("tib", "bod"),
        ("wel", "cym"),
    ];
    B_TO_T.iter().find(|(b, _)| *b == code).map(|(_, t)| *t)
}

/// A `wvtt` sample entry (ISO/IEC 14496-30) for `vtt`: its `vttC` holds the file header a
/// player needs before any sample, the signature line and the STYLE and REGION blocks.
pub fn wvtt_sample_entry(vtt: &WebVtt) -> crate::media::MediaResult<bytes::Bytes> {
    let mut config = String::from("WEBVTT");
    for block in &vtt.header_blocks {
        config.push_str("\n\n");
        config.push_str(block);
    }
    let mut w = crate::media::mp4::writer::BoxWriter::with_capacity(32 + config.len());
    let entry = w.begin(b"wvtt");
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.leaf(b"vttC", config.as_bytes());
    w.end(entry);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cue(start_ms: u64, end_ms: u64, id: &str, settings: &str, text: &str) -> Cue {
        Cue { start_ms, end_ms, id: id.into(), settings: settings.into(), text: text.into() }
    }

    #[test]
    fn reads_header_cues_ids_settings_and_multiline_text() {
        let file = "WEBVTT - English subtitles\nKind: captions\nLanguage: en-GB\n\n\
                    STYLE\n::cue {\n  color: yellow;\n}\n\n\
                    REGION\nid:top width:40%\n\n\
                    NOTE a comment\nspanning lines\n\n\
                    1\n00:00.500 --> 00:01.500\nHello\n\n\
                    00:01:02.000 --> 00:01:03.250 line:0 align:start\nTwo\nlines\n";
        let vtt = parse(file.as_bytes()).unwrap();
        assert_eq!(vtt.language.as_deref(), Some("en-GB"));
        assert_eq!(vtt.header_blocks, ["STYLE\n::cue {\n  color: yellow;\n}", "REGION\nid:top width:40%"]);
        assert_eq!(
            vtt.cues,
            [cue(500, 1500, "1", "", "Hello"), cue(62_000, 63_250, "", "line:0 align:start", "Two\nlines")]
        );
    }

    #[test]
    fn bom_crlf_and_cr_line_ends_read_like_lf() {
        let lf = "WEBVTT\nLanguage: fr\n\nid\n00:01.000 --> 00:02.000\nun\ndeux\n\n00:03.000 --> 00:04.000\ntrois";
        let want = parse(lf.as_bytes()).unwrap();
        assert_eq!(want.cues.len(), 2);
        for variant in [
            format!("\u{FEFF}{lf}"),
            lf.replace('\n', "\r\n"),
            lf.replace('\n', "\r"),
            format!("\u{FEFF}{}", lf.replace('\n', "\r\n")),
        ] {
            assert_eq!(parse(variant.as_bytes()).unwrap(), want, "{variant:?}");
        }
    }

    #[test]
    fn the_signature_may_be_followed_by_text_after_a_space_or_tab_only() {
        for ok in ["WEBVTT", "WEBVTT\n", "WEBVTT title", "WEBVTT\ttitle\n\n00:01.000 --> 00:02.000\nx"] {
            assert!(parse(ok.as_bytes()).is_ok(), "{ok:?}");
        }
        for bad in
            ["", "WEBVT", "WEBVTTX", "webvtt\n", " WEBVTT", "1\n00:00:01,000 --> 00:00:02,000\nSRT\n", "\u{FFFE}WEBVTT"]
        {
            let err = parse(bad.as_bytes()).unwrap_err();
            assert!(err.contains("WebVTT"), "{bad:?}: {err}");
        }
        // UTF-16 with its BOM is not UTF-8 WebVTT.
        assert!(parse(b"\xFF\xFEW\0E\0B\0V\0T\0T\0").is_err());
    }

    #[test]
    fn invalid_utf8_and_nul_become_replacement_characters() {
        let vtt = parse(b"WEBVTT\n\n00:01.000 --> 00:02.000\ncaf\xE9 \0end").unwrap();
        assert_eq!(vtt.cues[0].text, "caf\u{FFFD} \u{FFFD}end");
    }

    #[test]
    fn timestamps_take_any_hours_and_reject_malformed_fields() {
        for (s, ms) in [
            ("00:00.000", 0),
            ("59:59.999", 3_599_999),
            ("00:00:01.000", 1000),
            ("99:59:59.000", 359_999_000),
            ("1:00:00.000", 3_600_000),
            ("123456:00:00.001", 123_456 * 3_600_000 + 1),
        ] {
            assert_eq!(parse_timestamp(s), Some(ms), "{s}");
        }
        for bad in [
            "",
            "1:02.000",
            "60:00.000",
            "00:1.000",
            "00:01.00",
            "00:01.0000",
            "00:01,000",
            "00:60.000",
            "00:60:00.000",
            "00:00:60.000",
            "00.000",
            "a0:01.000",
            "00:01.000 ",
            "99999999999999999999:00:00.000",
            "1000001:00:00.000",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_cue_at_99_59_59_is_valid() {
        let vtt = parse(b"WEBVTT\n\n99:59:59.000 --> 99:59:59.999\nlate").unwrap();
        assert_eq!(vtt.cues, [cue(359_999_000, 359_999_999, "", "", "late")]);
    }

    #[test]
    fn malformed_timings_skip_their_cue_and_are_counted() {
        let file = "WEBVTT\n\n\
                    a\n00:01,000 --> 00:02.000\nbad comma\n\n\
                    00:02.000 --> 00:03.000\ngood\n\n\
                    00:04.000 -> 00:05.000\nbad arrow\n\n\
                    00:05.000 --> 00:04.000\nreversed\n\n\
                    00:06.000 --> 00:06.000\nempty\n\n\
                    00:07.000 --> 00:08.000x\nglued settings\n";
        let (vtt, report) = parse_with_report(file.as_bytes()).unwrap();
        assert_eq!(vtt.cues, [cue(2000, 3000, "", "", "good")]);
        // "-> " has no "-->": that block is a plain (ignored) block, not a cue.
        assert_eq!(report, ParseReport { skipped_cues: 4, first_skipped_line: Some(4) });
    }

    #[test]
    fn an_arrow_inside_a_payload_ends_the_cue_and_starts_the_next() {
        let file = "WEBVTT\n\n00:01.000 --> 00:02.000\none\n00:03.000 --> 00:04.000\ntwo\nid-like line\n";
        let vtt = parse(file.as_bytes()).unwrap();
        assert_eq!(vtt.cues, [cue(1000, 2000, "", "", "one"), cue(3000, 4000, "", "", "two\nid-like line")]);
        // An id followed by a timing line then a second timing line: empty first cue.
        let vtt = parse(b"WEBVTT\n\nid\n00:01.000 --> 00:02.000\n00:03.000 --> 00:04.000\nx").unwrap();
        assert_eq!(vtt.cues, [cue(1000, 2000, "id", "", ""), cue(3000, 4000, "", "", "x")]);
    }

    #[test]
    fn a_cue_right_after_the_header_lines_is_read() {
        let vtt = parse(b"WEBVTT\nLanguage: de\n00:01.000 --> 00:02.000\nohne Leerzeile").unwrap();
        assert_eq!(vtt.language.as_deref(), Some("de"));
        assert_eq!(vtt.cues, [cue(1000, 2000, "", "", "ohne Leerzeile")]);
    }

    #[test]
    fn style_after_a_cue_and_note_blocks_are_dropped() {
        let file = "WEBVTT\n\nSTYLE \n::cue { color: red }\n\nNOTE\nSTYLE\n\n\
                    00:01.000 --> 00:02.000\nx\n\nSTYLE\n::cue { color: blue }\n\nREGION\nid:r\n";
        let vtt = parse(file.as_bytes()).unwrap();
        assert_eq!(vtt.header_blocks, ["STYLE \n::cue { color: red }"]);
        assert_eq!(vtt.cues.len(), 1);
        // A lone "STYLE" line with nothing after it is not a style block.
        assert!(parse(b"WEBVTT\n\nSTYLE\n\n").unwrap().header_blocks.is_empty());
    }

    #[test]
    fn out_of_order_cues_sort_stably_by_start_then_end() {
        let file = "WEBVTT\n\n00:05.000 --> 00:06.000\nc\n\n00:01.000 --> 00:03.000\nb1\n\n\
                    00:01.000 --> 00:02.000\na\n\n00:01.000 --> 00:03.000\nb2\n";
        let texts: Vec<_> = parse(file.as_bytes()).unwrap().cues.into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["a", "b1", "b2", "c"]);
    }

    #[test]
    fn timing_lines_allow_tabs_and_no_space_around_the_arrow() {
        let vtt = parse(b"WEBVTT\n\n\t00:01.000-->00:02.000\t \tsize:50%  align:end \ntext").unwrap();
        assert_eq!(vtt.cues, [cue(1000, 2000, "", "size:50%  align:end", "text")]);
    }

    #[test]
    fn heap_bytes_grow_with_the_cues() {
        let one = parse(b"WEBVTT\n\n00:01.000 --> 00:02.000\nabc").unwrap();
        let two = parse(b"WEBVTT\n\n00:01.000 --> 00:02.000\nabc\n\n00:03.000 --> 00:04.000\nabcdef").unwrap();
        assert_eq!(one.heap_bytes(), std::mem::size_of::<Cue>() + 3);
        assert_eq!(two.heap_bytes(), 2 * std::mem::size_of::<Cue>() + 9);
    }

    #[test]
    fn a_file_with_no_cues_is_valid_and_empty() {
        for file in ["WEBVTT", "WEBVTT\n\n\n", "WEBVTT\n\nNOTE only a note\n"] {
            assert_eq!(parse(file.as_bytes()).unwrap(), WebVtt::default(), "{file:?}");
        }
    }

    #[test]
    fn language_tags_become_iso_639_2() {
        assert_eq!(iso639_2("en").as_deref(), Some("eng"));
        assert_eq!(iso639_2("en-GB").as_deref(), Some("eng"));
        assert_eq!(iso639_2("FRA").as_deref(), Some("fra"));
        assert_eq!(iso639_2("de").as_deref(), Some("deu"));
        assert_eq!(iso639_2("ger").as_deref(), Some("deu"));
        assert_eq!(iso639_2("fre").as_deref(), Some("fra"));
        assert_eq!(iso639_2("haw").as_deref(), Some("haw"), "a 639-3 code without a 639-1 form");
        for bad in ["", "x", "zz", "qqq", "english"] {
            assert_eq!(iso639_2(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_wvtt_sample_entry_carries_the_header_blocks() {
        let vtt = parse(b"WEBVTT\n\nSTYLE\n::cue { color: red }\n\n00:01.000 --> 00:02.000\nx").unwrap();
        let entry = wvtt_sample_entry(&vtt).unwrap();
        let info = crate::media::codec::describe(&entry).unwrap();
        assert_eq!((info.sample_entry_type.as_str(), info.codec_string.as_str()), ("wvtt", "wvtt"));
        assert_eq!(&entry[4..8], b"wvtt");
        assert_eq!(&entry[16..24], &[0, 0, 0, 42, b'v', b't', b't', b'C']);
        assert_eq!(&entry[24..], b"WEBVTT\n\nSTYLE\n::cue { color: red }");
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_with_report(&bytes);
        }

        #[test]
        fn parse_never_panics_on_webvtt_like_text(
            body in proptest::collection::vec(
                prop_oneof![
                    Just("\n".to_string()), Just("\r\n".to_string()), Just("\r".to_string()),
                    Just("-->".to_string()), Just(" ".to_string()), Just("STYLE".to_string()),
                    Just("REGION".to_string()), Just("NOTE".to_string()), Just(":".to_string()),
                    "[0-9]{1,12}".prop_map(|s| s), Just(".".to_string()), "[a-z ]{0,8}".prop_map(|s| s),
                ],
                0..64,
            )
        ) {
            let file = format!("WEBVTT\n{}", body.concat());
            let (vtt, _) = parse_with_report(file.as_bytes()).map_err(TestCaseError::fail)?;
            prop_assert!(vtt.cues.windows(2).all(|w| (w[0].start_ms, w[0].end_ms) <= (w[1].start_ms, w[1].end_ms)));
            prop_assert!(vtt.cues.iter().all(|c| c.end_ms > c.start_ms));
        }
    }
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
}
