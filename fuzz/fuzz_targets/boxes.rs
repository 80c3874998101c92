#![no_main]
//! The box reader (`mp4::reader`): walks every box as a container down to a fixed depth, and
//! reads the payloads with a cursor, the way the index parsers do. Never panics.

use jit_origin::media::mp4::reader::{boxes, find_path, BoxHeader, Cursor};
use libfuzzer_sys::fuzz_target;

fn walk(buf: &[u8], depth: u32) {
    for b in boxes(buf) {
        let Ok(b) = b else { return };
        if depth < 6 {
            walk(b.payload, depth + 1);
        }
        read_fields(b.payload);
    }
}

/// The cursor reads a full box does: version and flags, 32/64-bit fields, a counted table.
fn read_fields(payload: &[u8]) {
    let mut c = Cursor::new(payload);
    let Ok((version, _flags)) = c.full_box() else { return };
    let _ = c.u32_or_u64(version == 1);
    let _ = c.fourcc();
    let _ = c.i32();
    if let Ok(count) = c.u32() {
        if let Ok(n) = c.check_table(count, 8, "table") {
            for _ in 0..n {
                if c.u64().is_err() {
                    panic!("check_table accepted {count} entries of 8 bytes with {} left", c.remaining());
                }
            }
        }
    }
    let _ = (c.u8(), c.u16(), c.u24(), c.skip(3), c.bytes(5), c.rest(), c.position());
}

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    let _ = BoxHeader::parse(data);
    walk(data, 0);
    let _ = find_path(data, &[b"moov", b"trak", b"mdia", b"minf", b"stbl"]);
});
