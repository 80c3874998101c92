#![no_main]
//! Fragment metadata (`index::fragmented`): the input is read as a `moof` payload appended to
//! the tracks of a real fragmented file, and as `sidx` and `mfra` payloads. Never panics.

use std::sync::OnceLock;

use bytes::Bytes;
use jit_origin::media::mp4::reader::find;
use jit_origin::source::index::fragmented::{append_moof, parse_mfra, parse_sidx};
use jit_origin::source::index::progressive::{parse_moov, MoovTrack};
use libfuzzer_sys::fuzz_target;

/// The tracks of the fragmented ladder's video and audio, as `moov` declares them.
fn tracks() -> &'static [MoovTrack] {
    static TRACKS: OnceLock<Vec<MoovTrack>> = OnceLock::new();
    TRACKS.get_or_init(|| {
        let files: [&[u8]; 2] = [
            include_bytes!("../../fixtures/ladder-frag/video_150k.mp4"),
            include_bytes!("../../fixtures/ladder-frag/audio_eng.mp4"),
        ];
        let mut tracks = Vec::new();
        for file in files {
            let moov = find(file, b"moov").expect("fixture boxes").expect("fixture moov");
            let mut parsed =
                parse_moov(&Bytes::copy_from_slice(moov), file.len() as u64).expect("fixture moov parses").tracks;
            // Distinct track ids, so a fuzzed moof can address either.
            for t in &mut parsed {
                t.info.track_id += tracks.len() as u32;
            }
            tracks.extend(parsed);
        }
        tracks
    })
}

fuzz_target!(|data: &[u8]| {
    // The bound of the whole file the moof stands for (below).
    jit_origin_fuzz::bound_allocations(4096 + data.len() + (1 << 20));
    let mut tracks = tracks().to_vec();
    // The file around the moof is not seen: it is taken to hold 1 MiB of media after it (the
    // index target checks whole files against their real size).
    if append_moof(data, 4096, 4096 + data.len() as u64 + (1 << 20), &mut tracks).is_ok() {
        for t in &tracks {
            let _ = t.samples.validate();
        }
    }
    let _ = parse_sidx(data, data.len() as u64);
    let _ = parse_mfra(data);
});
