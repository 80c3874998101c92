#![no_main]
//! A progressive `moov` payload (`index::progressive::parse_moov`, with the codec descriptions
//! it reads): never panics; whatever parses has sample tables that validate or are refused.

use bytes::Bytes;
use jit_origin::index::progressive::parse_moov;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_table_allocations(data.len());
    if let Ok(moov) = parse_moov(&Bytes::copy_from_slice(data)) {
        for track in &moov.tracks {
            let _ = track.samples.validate();
        }
    }
});
