#![no_main]
//! A progressive `moov` payload (`index::progressive::parse_moov`, with the codec descriptions
//! it reads): never panics; whatever parses has sample tables that validate or are refused.

use bytes::Bytes;
use jit_origin::source::index::progressive::parse_moov;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The bound of the whole file the moov stands for (below).
    jit_origin_fuzz::bound_allocations(data.len() + (1 << 20));
    // The file around the moov is not seen: it is taken to hold 1 MiB of media besides (the
    // index target checks whole files against their real size).
    if let Ok(moov) = parse_moov(&Bytes::copy_from_slice(data), data.len() as u64 + (1 << 20)) {
        for track in &moov.tracks {
            let _ = track.samples.validate();
        }
    }
});
