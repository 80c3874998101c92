//! Packager benchmarks on a 2-hour 360p H.264 + AAC progressive MP4 (made on first run by
//! `benches/make-long-asset.sh` into `target/long-asset/`, never committed):
//! indexing (with its storage read count), the HLS media playlist and DASH MPD, one segment.
//!
//! Run: `cargo bench --bench packager`. Figures are in the README.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use criterion::{criterion_group, criterion_main, Criterion};
use jit_origin::output::{dash, hls};
use jit_origin::plan::url::{Format, ManifestOptions, Resource};
use jit_origin::serve::origin::render;
use jit_origin::source::asset::{self, Asset, AssetSource};
use jit_origin::source::index::locate::index_file;
use jit_origin::source::index::TrackKind;
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;

const LONG_FILE: &str = "long-asset/long.mp4";

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

fn ensure_long_asset() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/make-long-asset.sh");
    let status = Command::new(script).arg(target_dir().join(LONG_FILE)).status().expect("run make-long-asset.sh");
    assert!(status.success(), "make-long-asset.sh failed");
}

fn load(rt: &tokio::runtime::Runtime, storage: &Storage) -> Asset {
    rt.block_on(asset::load(storage, &AssetSource::File(LONG_FILE.into()), SegmentPolicy::default()))
        .expect("load asset")
}

fn benches(c: &mut Criterion) {
    ensure_long_asset();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let storage = Storage::local("bench", target_dir()).expect("storage");

    let reads_before = storage.stats().get_requests.load(Ordering::Relaxed);
    let index = rt.block_on(index_file(&storage, LONG_FILE)).expect("index");
    let reads = storage.stats().get_requests.load(Ordering::Relaxed) - reads_before;
    let samples: usize = index.tracks.iter().map(|t| t.samples.len()).sum();
    eprintln!("2-hour file: {} tracks, {samples} samples, indexed with {reads} storage reads", index.tracks.len());
    assert!(reads <= 3, "indexing took {reads} reads");

    c.bench_function("index 2h progressive mp4 (moov first)", |b| {
        b.to_async(&rt).iter(|| async { index_file(&storage, LONG_FILE).await.expect("index") })
    });

    let asset = load(&rt, &storage);
    let video = asset.tracks_of(TrackKind::Video).next().expect("video track").clone();
    let options = |format| ManifestOptions { format, filters: Vec::new(), audio_only: None, encryption: None };

    c.bench_function("plan timelines 2h (video + audio)", |b| {
        b.iter(|| {
            let refs: Vec<_> = asset.tracks.iter().map(|t| t.index()).collect();
            jit_origin::source::timeline::plan(&refs, SegmentPolicy::default())
        })
    });
    c.bench_function("hls media playlist 2h (3600 segments)", |b| {
        b.iter(|| hls::media_playlist(&video, Format::M3u8Cmaf, None, &Default::default(), None, &[], false, None))
    });
    c.bench_function("hls multivariant", |b| {
        b.iter(|| hls::multivariant(&asset, &options(Format::M3u8Cmaf), None, false))
    });
    c.bench_function("dash mpd 2h", |b| b.iter(|| dash::mpd(&asset, &options(Format::MpdTimeCmaf), &[], false)));

    let middle = video.timeline.segments[video.timeline.segments.len() / 2];
    let segment = Resource::Segment {
        bitrate: video.bitrate,
        track: video.name.clone(),
        time: middle.time,
        format: Format::M3u8Cmaf,
        encryption: None,
        audio: Default::default(),
    };
    c.bench_function("video segment 2s 360p (read + build)", |b| {
        b.to_async(&rt).iter(|| async { render(&storage, &asset, &segment, false, None).await.expect("segment") })
    });
}

criterion_group! {
    name = packager;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(packager);
