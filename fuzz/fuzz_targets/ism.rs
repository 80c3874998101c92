#![no_main]
//! The `.ism` (SMIL) parser and its `src` check. Never panics.

use jit_origin::source::ism::{normalise_src, parse_ism};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    if let Ok(manifest) = parse_ism(data) {
        for track in &manifest.tracks {
            let _ = normalise_src(&track.src);
        }
    }
});
