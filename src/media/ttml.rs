//! TTML documents (W3C TTML1, IMSC1 Text Profile) from the WebVTT cue model: the one sample of
//! a Smooth Streaming text fragment (MS-SSTR §2.2.2.5 `FourCC="TTML"`).
//!
//! Times are relative to the fragment's start. Neither MS-SSTR nor PIFF 1.1 says what TTML
//! times in a fragment count from, and Smooth clients took them as offsets from the fragment's
//! time (dash.js's MSS support adds the sample's start to every TTML time; ISO/IEC 14496-30
//! §5.3 DASH `stpp` counts from the track's start instead). A relative time cannot point
//! before the fragment, so each cue is clipped to the fragment's window, as ISO/IEC 14496-30
//! samples are: a cue over several fragments is in each, and shows without a gap.

use crate::markup;
use crate::media::webvtt::{timestamp, Cue};

/// The TTML document of the cues showing during `[start_ms, end_ms)` (presentation ms), each
/// clipped to that window and timed from `start_ms`. `language`: the `xml:lang` of the
/// document (a BCP 47 or ISO 639-2 code; `und` or empty when not known).
pub fn document(cues: &[Cue], start_ms: u64, end_ms: u64, language: &str) -> String {
    let language = if language == "und" { "" } else { language };
    let mut out = String::with_capacity(1024);
    out.push_str(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter""#,
        r#" xmlns:tts="http://www.w3.org/ns/ttml#styling""#,
        r#" ttp:profile="http://www.w3.org/ns/ttml/profile/imsc1/text" ttp:timeBase="media""#,
        r#" xml:lang=""#,
    ));
    out.push_str(&markup::escape(language));
    // Subtitles sit in the bottom 80 % of the picture, centred, white on translucent black
    // (the rendering WebVTT gives cues without settings).
    out.push_str(concat!(
        r##""><head><styling><style xml:id="cue" tts:color="white" tts:backgroundColor="#000000c0"/>"##,
        r#"</styling><layout><region xml:id="bottom" tts:origin="10% 10%" tts:extent="80% 80%""#,
        r#" tts:displayAlign="after" tts:textAlign="center"/></layout></head>"#,
        r#"<body region="bottom"><div>"#,
    ));
    for cue in cues {
        let (begin, end) = (cue.start_ms.max(start_ms), cue.end_ms.min(end_ms));
        // A cue outside the window or of no length never shows in it.
        if begin >= end {
            continue;
        }
        out.push_str(r#"<p begin=""#);
        out.push_str(&timestamp(begin - start_ms));
        out.push_str(r#"" end=""#);
        out.push_str(&timestamp(end - start_ms));
        out.push_str(r#""><span style="cue">"#);
        push_cue_text(&mut out, &cue.text);
        out.push_str("</span></p>");
    }
    out.push_str("</div></body></tt>");
    out
}

/// The WebVTT cue text markup TTML has: bold, italic and underline as styled spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Bold,
    Italic,
    Underline,
}

impl Style {
    fn of(tag: &str) -> Option<Style> {
        match tag {
            "b" => Some(Style::Bold),
            "i" => Some(Style::Italic),
            "u" => Some(Style::Underline),
            _ => None,
        }
    }

    fn span(self) -> &'static str {
        match self {
            Style::Bold => r#"<span tts:fontWeight="bold">"#,
            Style::Italic => r#"<span tts:fontStyle="italic">"#,
            Style::Underline => r#"<span tts:textDecoration="underline">"#,
        }
    }
}

/// Cue text (W3C WebVTT §4.2.2 cue text) as TTML content: `<b>`, `<i>`, `<u>` become styled
/// spans, the other tags (`<v Name>`, `<c.class>`, `<lang>`, `<ruby>`, timestamps) leave
/// their text only, line breaks become `<br/>`, character references are resolved and the
/// text escaped. Spans always nest: an end tag closes the spans opened inside its own, a
/// stray end tag is dropped, and spans still open at the end are closed.
fn push_cue_text(out: &mut String, text: &str) {
    let mut open: Vec<Style> = Vec::new();
    let mut rest = text;
    loop {
        let (plain, tail) = rest.split_at(rest.find(['<', '\n']).unwrap_or(rest.len()));
        push_text(out, plain);
        if let Some(after) = tail.strip_prefix('\n') {
            out.push_str("<br/>");
            rest = after;
            continue;
        }
        // An unterminated tag ends the text (the WebVTT tokenizer reads it to the end).
        let Some(close) = tail.find('>') else { break };
        let tag = tail.get(1..close).unwrap_or_default();
        rest = tail.get(close + 1..).unwrap_or_default();
        let (is_end, tag) = match tag.strip_prefix('/') {
            Some(name) => (true, name),
            None => (false, tag),
        };
        // The tag name ends at a class (`.`) or an annotation (whitespace).
        let name = tag.split(|c: char| c == '.' || c.is_whitespace()).next().unwrap_or_default();
        let Some(style) = Style::of(name) else { continue };
        if !is_end {
            out.push_str(style.span());
            open.push(style);
        } else if let Some(at) = open.iter().rposition(|&s| s == style) {
            for _ in at..open.len() {
                out.push_str("</span>");
            }
            open.truncate(at);
        }
    }
    for _ in &open {
        out.push_str("</span>");
    }
}

/// Plain cue text: character references resolved (WebVTT §4.2.2 allows the HTML ones; the
/// ones subtitles use and numeric ones are known here, any other stays as written), then
/// escaped for XML, dropping what XML 1.0 cannot hold.
fn push_text(out: &mut String, text: &str) {
    let mut resolved = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        resolved.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let reference = after.find(';').filter(|&end| end <= 32).and_then(|end| {
            let c = character_reference(after.get(..end)?)?;
            Some((c, after.get(end + 1..)?))
        });
        match reference {
            Some((c, tail)) => {
                resolved.push(c);
                rest = tail;
            }
            None => {
                resolved.push('&');
                rest = after;
            }
        }
    }
    resolved.push_str(rest);
    // Noncharacters are no XML 1.0 `Char`; control characters `escape` drops itself.
    resolved.retain(|c| !matches!(c, '\u{FFFE}' | '\u{FFFF}'));
    out.push_str(&markup::escape(&resolved));
}

/// The character `name` (between `&` and `;`) refers to, if known.
fn character_reference(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "lrm" => '\u{200E}',
        "rlm" => '\u{200F}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use quick_xml::events::Event;

    fn cue(start_ms: u64, end_ms: u64, text: &str) -> Cue {
        Cue { start_ms, end_ms, id: String::new(), settings: String::new(), text: text.into() }
    }

    /// The document's paragraphs as (begin, end, text with `|` for line breaks), read back with
    /// an XML reader that checks well-formedness (end tags match their start tags).
    fn paragraphs(xml: &str) -> Result<Vec<(String, String, String)>, String> {
        let mut reader = quick_xml::Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let (mut out, mut current, mut depth) = (Vec::new(), None::<(String, String, String)>, 0usize);
        loop {
            match reader.read_event().map_err(|e| format!("{e} in {xml}"))? {
                Event::Start(e) => {
                    depth += 1;
                    if e.name().as_ref() == "p" {
                        let attr = |name: &str| -> Result<String, String> {
                            let a = e.try_get_attribute(name).map_err(|e| e.to_string())?.ok_or("no attribute")?;
                            let value = a.normalized_value(quick_xml::XmlVersion::Explicit1_0);
                            Ok(value.map_err(|e| e.to_string())?.into_owned())
                        };
                        current = Some((attr("begin")?, attr("end")?, String::new()));
                    }
                }
                Event::Empty(e) if e.name().as_ref() == "br" => {
                    if let Some(p) = &mut current {
                        p.2.push('|');
                    }
                }
                Event::Text(t) => {
                    if let Some(p) = &mut current {
                        p.2.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    let name = r.xml10_content();
                    let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c.to_string(),
                        None => quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity {name}"))?
                            .to_string(),
                    };
                    if let Some(p) = &mut current {
                        p.2.push_str(&c);
                    }
                }
                Event::End(e) => {
                    depth = depth.checked_sub(1).ok_or("an end tag too many")?;
                    if e.name().as_ref() == "p" {
                        out.extend(current.take());
                    }
                }
                Event::Eof if depth == 0 => return Ok(out),
                Event::Eof => return Err(format!("{depth} elements left open")),
                _ => {}
            }
        }
    }

    #[test]
    fn cues_in_the_window_are_clipped_to_it_and_timed_from_its_start() {
        let cues =
            [cue(500, 1500, "before"), cue(1800, 2600, "inside"), cue(3500, 6000, "across"), cue(7000, 8000, "x")];
        let xml = document(&cues, 2000, 6000, "eng");
        assert!(xml.contains(r#"xml:lang="eng""#) && xml.contains(r#"ttp:timeBase="media""#), "{xml}");
        assert_eq!(
            paragraphs(&xml).unwrap(),
            [
                ("00:00:00.000".into(), "00:00:00.600".into(), "inside".into()),
                ("00:00:01.500".into(), "00:00:04.000".into(), "across".into()),
            ]
        );
        // Nothing in the window: a document with an empty div, still a valid one.
        assert_eq!(paragraphs(&document(&cues, 9000, 9500, "und")).unwrap(), []);
        assert!(document(&cues, 9000, 9500, "und").contains(r#"xml:lang="""#));
        // A cue of no length never shows.
        assert_eq!(paragraphs(&document(&[cue(100, 100, "zero")], 0, 1000, "")).unwrap(), []);
    }

    #[test]
    fn webvtt_markup_becomes_ttml_spans_text_and_line_breaks() {
        let mut out = String::new();
        push_cue_text(
            &mut out,
            "<v Roger Bingham>We are <b>in <i>New</b> York</i>\n<c.yellow>City</c> &amp; &lt;3 &#x263A; &bogus; a&b",
        );
        assert_eq!(
            out,
            concat!(
                r#"We are <span tts:fontWeight="bold">in <span tts:fontStyle="italic">New</span></span> York"#,
                r#"<br/>City &amp; &lt;3 ☺ &amp;bogus; a&amp;b"#
            )
        );
        let mut out = String::new();
        push_cue_text(&mut out, "<u>open <00:00:01.000>never closed");
        assert_eq!(out, r#"<span tts:textDecoration="underline">open never closed</span>"#);
        let mut out = String::new();
        push_cue_text(&mut out, "a <b unterminated");
        assert_eq!(out, "a ");
        let mut out = String::new();
        push_cue_text(&mut out, "nul&#0;\u{1}\u{FFFF}&#xFFFE;ok");
        assert_eq!(out, "nulok");
    }

    proptest! {
        #[test]
        fn every_document_is_well_formed_xml(
            texts in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        Just("<b>".to_string()), Just("</b>".to_string()), Just("<i>".to_string()),
                        Just("</i>".to_string()), Just("<u>".to_string()), Just("</u>".to_string()),
                        Just("<v A B>".to_string()), Just("</v>".to_string()), Just("<".to_string()),
                        Just(">".to_string()), Just("&".to_string()), Just(";".to_string()),
                        Just("&amp;".to_string()), Just("&#".to_string()), Just("\n".to_string()),
                        Just("\"".to_string()), any::<String>(),
                    ],
                    0..12,
                ),
                0..4,
            ),
            language in any::<String>(),
        ) {
            let cues: Vec<Cue> = texts.iter().enumerate().map(|(k, t)| cue(k as u64 * 1000, k as u64 * 1000 + 1500, &t.concat())).collect();
            let xml = document(&cues, 500, 3000, &language);
            let read = paragraphs(&xml).map_err(TestCaseError::fail)?;
            prop_assert_eq!(read.len(), cues.iter().filter(|c| c.start_ms < 3000 && c.end_ms > 500).count());
        }

        #[test]
        fn plain_text_reads_back_as_written(text in "[^<&\n\u{0}-\u{1f}\u{7f}-\u{9f}\u{FFFE}\u{FFFF}]{0,40}") {
            let xml = document(&[cue(0, 1000, &text)], 0, 1000, "en");
            let read = paragraphs(&xml).map_err(TestCaseError::fail)?;
            prop_assert_eq!(read, vec![("00:00:00.000".to_string(), "00:00:01.000".to_string(), text)]);
        }
    }
}
