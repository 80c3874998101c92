#![no_main]
//! Indexing a whole file through ranged reads (`index::locate::index_file`: progressive moov
//! first or last, fragmented with and without sidx/mfra) from an in-memory storage account.
//! Never panics; a file that does not index is a media error naming the file.

use jit_origin::error::Error;
use jit_origin::source::index::locate::index_file;
use jit_origin_fuzz::MemoryStorage;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "fuzz/input.mp4";

thread_local! {
    static STORAGE: MemoryStorage = MemoryStorage::default();
}

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    STORAGE.with(|s| {
        s.put(PATH, data);
        match s.rt.block_on(index_file(&s.storage, PATH)) {
            Ok(_) => {}
            Err(e @ Error::Media { .. }) => assert!(e.to_string().contains(PATH), "does not name the file: {e}"),
            Err(other) => panic!("not a media error: {other:?}"),
        }
    });
});
