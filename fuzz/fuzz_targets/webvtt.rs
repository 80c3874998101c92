#![no_main]
//! The WebVTT sidecar parser. Never panics; what it returns is ordered and has positive cue
//! durations. The cues' TTML document (Smooth text fragments) nests its elements: every
//! span and paragraph opened is closed.

use jit_origin::media::ttml;
use jit_origin::media::webvtt::parse_with_report;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    if let Ok((vtt, report)) = parse_with_report(data) {
        assert!(vtt.cues.windows(2).all(|w| (w[0].start_ms, w[0].end_ms) <= (w[1].start_ms, w[1].end_ms)));
        assert!(vtt.cues.iter().all(|c| c.end_ms > c.start_ms));
        assert!(report.skipped_cues == 0 || report.first_skipped_line.is_some());
        let end = vtt.cues.last().map_or(0, |c| c.end_ms);
        let document = ttml::document(&vtt.cues, end / 2, end, vtt.language.as_deref().unwrap_or(""));
        assert_eq!(document.matches("<span").count(), document.matches("</span>").count(), "{document}");
        assert_eq!(document.matches("<p ").count(), document.matches("</p>").count(), "{document}");
    }
});
