//! The 2-hour asset of issue "packager core": a 360p H.264 + AAC progressive MP4 (made by
//! `benches/make-long-asset.sh`, never committed) indexes with at most 3 storage reads and
//! packages to HLS-CMAF and DASH that decode frame-identical to the source; its Smooth
//! manifest's chunks run, over 2 hours, to exactly the 10 MHz end of each track.

mod common;

use std::path::Path;
use std::process::Command;

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;
use jit_origin::source::index::locate::index_file;
use jit_origin::source::index::TrackIndex;
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
    check_smooth_timeline(&root, &index.tracks);
}

/// `ticks` of `timescale` in 10 MHz units, rounded to the nearest: each instant on its own.
fn rescale(ticks: i128, timescale: u32) -> i128 {
    let ts = i128::from(timescale);
    (ticks * 10_000_000 + ts / 2).div_euclid(ts)
}

/// The Smooth manifest of the 2-hour asset: every stream's chunks follow each other without
/// a gap from the track's first decode time to exactly its end on the 10 MHz axis (each
/// instant rescaled, the edit list's shift applied, one lead keeping the earliest time at 0;
/// worked out here from the index, not by the origin's clock), so the `d`s add up without
/// drift, and `Duration` is where the last stream ends (the axis starts at 0).
fn check_smooth_timeline(root: &Path, tracks: &[TrackIndex]) {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[storage]]\nname = \"target\"\nurl = \"file://{}\"\n\
         [[locator]]\nid = \"long\"\nstorage = \"target\"\nasset = \"long-asset\"\npolicy = \"clear\"\n",
        root.display()
    );
    let config = Config::parse(&text, root.to_path_buf()).expect("config");
    let server = common::TestServer::serve(Origin::from_config(&config).expect("origin"), config.http);
    let got = common::get_blocking(&server.url("/long/long-asset.ism/manifest")).ok();
    let manifest = common::smooth::Manifest::parse(&got.text()).unwrap_or_else(|e| panic!("{e}"));

    // Each track's (first decode time, end) on the axis before the lead.
    let shifted: Vec<(String, i128, i128)> = tracks
        .iter()
        .map(|t| {
            let ts = t.info.timescale;
            let shift = i128::from(t.info.edit.presentation_shift());
            let shift = shift.signum() * rescale(shift.abs(), ts);
            let first = t.samples.dts.first().copied().unwrap_or(0);
            let kind = t.info.kind.as_str().to_owned();
            (kind, rescale(i128::from(first), ts) + shift, rescale(i128::from(t.samples.end_dts), ts) + shift)
        })
        .collect();
    let lead = -shifted.iter().map(|(_, first, _)| *first).min().unwrap_or(0).min(0);
    let mut latest_end = 0;
    for (kind, first, end) in &shifted {
        let stream = manifest.streams().find(|s| s.kind() == kind).unwrap_or_else(|| panic!("no {kind} StreamIndex"));
        let chunks = stream.chunks().unwrap_or_else(|e| panic!("{e}"));
        for w in chunks.windows(2) {
            assert_eq!(w[0].t + w[0].d, w[1].t, "{kind}: a gap or overlap between chunks {w:?}");
        }
        assert_eq!(i128::from(chunks[0].t), first + lead, "{kind}: the first chunk starts at the track's start");
        let last = chunks.last().expect("chunks");
        assert_eq!(i128::from(last.t + last.d), end + lead, "{kind}: the last chunk ends at the track's end");
        let sum: u64 = chunks.iter().map(|c| c.d).sum();
        eprintln!(
            "smooth {kind}: {} chunks from {} to {}, d adds up to {sum}",
            chunks.len(),
            chunks[0].t,
            last.t + last.d
        );
        latest_end = latest_end.max(last.t + last.d);
    }
    assert_eq!(manifest.root.num("Duration"), Ok(latest_end), "Duration is where the last stream ends");
}
