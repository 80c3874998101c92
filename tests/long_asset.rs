//! The 2-hour asset of issue "packager core": a 360p H.264 + AAC progressive MP4 (made by
//! `benches/make-long-asset.sh`, never committed) indexes with at most 3 storage reads and
//! packages to HLS-CMAF and DASH that decode frame-identical to the source.

mod common;

use std::path::Path;
use std::process::Command;

use jit_origin::source::index::locate::index_file;
use jit_origin::source::storage::Storage;

#[test]
fn two_hour_asset_indexes_in_few_reads_and_packages_losslessly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let file = root.join("long-asset/long.mp4");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/make-long-asset.sh");
    common::run(Command::new(script).arg(&file)).unwrap_or_else(|e| panic!("{e}"));

    let storage = Storage::local("test", &root).expect("storage");
    let index = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(index_file(&storage, "long-asset/long.mp4"))
        .expect("index the 2-hour file");
    assert!(index.reads <= 3, "indexing took {} storage reads", index.reads);
    let video = &index.tracks[0].samples;
    assert_eq!(video.len(), 2 * 60 * 60 * 24, "2 hours of 24 fps video");

    common::check_asset(&root.join("long-asset"), &[common::Format::Hls, common::Format::Dash]);
}
