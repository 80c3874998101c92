//! Bad input never panics, and errors name the file (DESIGN §8 "Bad input").
//!
//! * Damaged MP4s in an in-memory object store (truncations, byte flips in moov/moof, crafted
//!   box sizes and table counts): `index_file` returns `Ok` or a `Media`/`NotFound` error whose
//!   message names the file; when it returns `Ok`, loading the asset and rendering its whole
//!   HLS package may fail but must not panic.
//! * Hostile sizes, offsets and counts (a 4 GB sample, offsets past the end or before the
//!   start, counts no box can hold) in local files: `Media` errors naming the file, never a
//!   `Storage` error, and no single allocation above 32 MiB (a counting global allocator).
//! * Samples spread far apart over a 2 GB sparse file: a segment is read as runs of its samples
//!   (identical output), or refused as corrupt when a bounded number of reads cannot hold it.
//! * The URL grammar under proptest: never panics, errors are `BadRequest`.
//! * An `.ism` whose `src` escapes its folder does not load.
//!
//! Every case runs in the test thread. A panic is caught per case only to name the input that
//! caused it; the test then fails listing every such input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use jit_origin::error::Error;
use jit_origin::output::package_resources;
use jit_origin::plan::url::{self, Format};
use jit_origin::serve::origin::render;
use jit_origin::source::asset::{load, AssetSource};
use jit_origin::source::index::locate::index_file;
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use proptest::prelude::*;

fn fixture(path: &str) -> Vec<u8> {
    let full: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// An in-memory storage account and a runtime to drive it from the test thread.
struct Harness {
    rt: tokio::runtime::Runtime,
    store: Arc<InMemory>,
    storage: Storage,
    cases: usize,
    indexed_ok: usize,
    failures: Vec<String>,
}

impl Harness {
    fn new() -> Self {
        let store = Arc::new(InMemory::new());
        let storage = Storage::new("mem", store.clone() as Arc<dyn ObjectStore>);
        Harness { rt: runtime(), store, storage, cases: 0, indexed_ok: 0, failures: Vec::new() }
    }

    fn put(&self, path: &str, data: Vec<u8>) {
        let store = self.store.clone();
        let path = StorePath::from(path);
        self.rt.block_on(async move { store.put(&path, Bytes::from(data).into()).await.unwrap() });
    }

    /// Stores `data` at `path`, indexes it, and if that works loads and renders it.
    /// `label` names the damage, for the failure list.
    fn check(&mut self, label: &str, path: &str, data: Vec<u8>) {
        self.cases += 1;
        self.put(path, data);
        let storage = &self.storage;
        let outcome = catch_unwind(AssertUnwindSafe(|| self.rt.block_on(exercise(storage, path))));
        match outcome {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.failures.push(format!("PANIC on {label} ({path}): {msg}"));
            }
            Ok(Err(problem)) => self.failures.push(format!("{label} ({path}): {problem}")),
            Ok(Ok(indexed)) => self.indexed_ok += usize::from(indexed),
        }
    }

    fn finish(self, what: &str) {
        eprintln!("{what}: {} cases, {} indexed OK, {} failures", self.cases, self.indexed_ok, self.failures.len());
        if !self.failures.is_empty() {
            let shown: Vec<&String> = self.failures.iter().take(40).collect();
            panic!(
                "{what}: {} of {} cases failed:\n{}",
                self.failures.len(),
                self.cases,
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Index `path`; on success load it as a single-file asset and render every resource of its
/// HLS-CMAF package. Returns whether indexing succeeded, or a description of a wrong error.
async fn exercise(storage: &Storage, path: &str) -> Result<bool, String> {
    match index_file(storage, path).await {
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            return match &e {
                Error::Media { file, .. } if file == path && message.contains(path) => Ok(false),
                Error::NotFound(_) if message.contains(path) => Ok(false),
                other => Err(format!("wrong error {other:?} (message: {message})")),
            };
        }
    }
    let source = AssetSource::File(path.to_string());
    let Ok(asset) = load(storage, &source, SegmentPolicy::default()).await else {
        return Ok(true);
    };
    // Even for damaged input, every track's segments cover its samples exactly once.
    for t in &asset.tracks {
        let mut next = 0u32;
        for seg in &t.timeline.segments {
            if seg.first_sample != next || seg.sample_count == 0 {
                return Err(format!("track {}: segment at sample {} after {next}", t.name, seg.first_sample));
            }
            next += seg.sample_count;
        }
        if next as usize != t.index().samples.len() {
            return Err(format!("track {}: segments cover {next} of {} samples", t.name, t.index().samples.len()));
        }
    }
    for resource in package_resources(&asset, Format::M3u8Cmaf) {
        let _ = render(storage, &asset, &resource, true, None).await;
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Box helpers for crafting damage
// ---------------------------------------------------------------------------------------------

/// (kind, offset, size) of each top-level box.
fn top_level(data: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        out.push((kind, at, size));
        if size < 8 {
            break;
        }
        at += size;
    }
    out
}

fn box_range(data: &[u8], kind: &[u8; 4]) -> std::ops::Range<usize> {
    let (_, at, size) = *top_level(data).iter().find(|b| &b.0 == kind).unwrap_or_else(|| panic!("no {kind:?} box"));
    at..at + size
}

/// Offset (of the size field) of the first box of type `kind` found anywhere at or after
/// `from`, by a byte search for the fourcc (fine for fixture metadata).
fn find_box(data: &[u8], from: usize, kind: &[u8; 4]) -> usize {
    data[from..].windows(4).position(|w| w == kind).map(|p| from + p - 4).unwrap_or_else(|| panic!("no {kind:?}"))
}

fn put_u32(data: &mut [u8], at: usize, v: u32) {
    data[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_u64(data: &mut [u8], at: usize, v: u64) {
    data[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// A fixed-seed xorshift64* PRNG (no dependency, same variants on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FLIP_FILES: [&str; 4] =
    ["ladder/video_150k.mp4", "muxed/muxed.mp4", "ladder-frag/video_150k.mp4", "ladder-cmaf/audio_eng.mp4"];

// ---------------------------------------------------------------------------------------------
// Damaged MP4s
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_files_never_panic() {
    let mut h = Harness::new();
    for file in FLIP_FILES.iter().chain(["edit/edit.mp4", "dolby/audio_ac3.mp4"].iter()) {
        let data = fixture(file);
        let path = format!("truncated/{file}");
        let mut lengths: Vec<usize> = (1..=64).map(|k| k * 1024).filter(|&l| l < data.len()).collect();
        lengths.extend([1, 7, 8, 15, 16, data.len() / 2, data.len() - 1]);
        for len in lengths {
            h.check(&format!("{file} truncated to {len} bytes"), &path, data[..len].to_vec());
        }
    }
    h.finish("truncations");
}

/// Variants per file: 300, or `ROBUSTNESS_FLIPS` for a longer run (`ROBUSTNESS_SEED` changes
/// the fixed seed).
fn flip_variants() -> usize {
    std::env::var("ROBUSTNESS_FLIPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

#[test]
fn byte_flips_in_metadata_never_panic() {
    let mut h = Harness::new();
    let seed = std::env::var("ROBUSTNESS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_1234_abcd_0042u64);
    let mut rng = Rng(seed | 1);
    for file in FLIP_FILES {
        let data = fixture(file);
        let path = format!("flipped/{file}");
        let moov = box_range(&data, b"moov");
        // Fragmented files carry their sample tables in the moofs: flip there too.
        let moofs: Vec<std::ops::Range<usize>> =
            top_level(&data).iter().filter(|b| &b.0 == b"moof" || &b.0 == b"sidx").map(|b| b.1..b.1 + b.2).collect();
        for variant in 0..flip_variants() {
            let mut damaged = data.clone();
            let region =
                if moofs.is_empty() || variant % 2 == 0 { moov.clone() } else { moofs[rng.below(moofs.len())].clone() };
            // One to three flipped bytes per variant.
            let flips = 1 + rng.below(3);
            let mut where_ = Vec::new();
            for _ in 0..flips {
                let at = region.start + rng.below(region.len());
                let mask = (1 + rng.below(255)) as u8;
                damaged[at] ^= mask;
                where_.push(format!("{at}^{mask:#04x}"));
            }
            h.check(&format!("{file} flipped at {}", where_.join(",")), &path, damaged);
        }
    }
    h.finish("byte flips");
}

#[test]
fn crafted_bad_boxes_never_panic() {
    let mut h = Harness::new();
    let progressive = fixture("ladder/video_150k.mp4");
    let muxed = fixture("muxed/muxed.mp4");
    let frag = fixture("ladder-frag/video_150k.mp4");
    let cmaf = fixture("ladder-cmaf/video_150k.mp4");
    let edit = fixture("edit/edit.mp4");

    h.check("zero-length file", "crafted/empty.mp4", Vec::new());
    h.check("text file", "crafted/text.mp4", b"This is not an MP4 file, just some text.\n".repeat(100));
    h.check("short text", "crafted/short.mp4", b"hello".to_vec());

    // Box sizes.
    let mut d = progressive.clone();
    put_u32(&mut d, 0, 0xFFFF_FFFF);
    h.check("ftyp size 0xFFFFFFFF", "crafted/ftyp_ffffffff.mp4", d);
    let moov = box_range(&progressive, b"moov");
    let mut d = progressive.clone();
    put_u32(&mut d, moov.start, 0xFFFF_FFFF);
    h.check("moov size 0xFFFFFFFF", "crafted/moov_ffffffff.mp4", d);
    let mut d = muxed.clone();
    let mdat = box_range(&muxed, b"mdat");
    put_u32(&mut d, mdat.start, 0xFFFF_FFFF);
    h.check("mdat size 0xFFFFFFFF (moov at end)", "crafted/mdat_ffffffff.mp4", d);
    for small in [0u32, 1, 4, 7] {
        let mut d = progressive.clone();
        put_u32(&mut d, 0, small);
        h.check(&format!("ftyp size {small}"), &format!("crafted/ftyp_size_{small}.mp4"), d);
        let mut d = progressive.clone();
        put_u32(&mut d, moov.start, small);
        h.check(&format!("moov size {small}"), &format!("crafted/moov_size_{small}.mp4"), d);
        // A box inside the moov (mvhd) with a small size.
        let mut d = progressive.clone();
        put_u32(&mut d, moov.start + 8, small);
        h.check(&format!("mvhd size {small}"), &format!("crafted/mvhd_size_{small}.mp4"), d);
    }
    // 64-bit sizes: a `free` box after ftyp, the first moof and the moov itself with
    // largesize values that overflow offset arithmetic.
    for large in [0u64, 8, 15, u64::MAX, u64::MAX - 7, 1 << 63, i64::MAX as u64] {
        // Insert a 16-byte `free` box with this largesize right after ftyp.
        let ftyp = box_range(&muxed, b"ftyp");
        let mut d = muxed[..ftyp.end].to_vec();
        d.extend_from_slice(&1u32.to_be_bytes());
        d.extend_from_slice(b"free");
        d.extend_from_slice(&large.to_be_bytes());
        d.extend_from_slice(&muxed[ftyp.end..]);
        h.check(&format!("free largesize {large:#x}"), &format!("crafted/free_large_{large:x}.mp4"), d);
        let mut d = progressive.clone();
        put_u32(&mut d, moov.start, 1);
        put_u64(&mut d, moov.start + 8, large);
        h.check(&format!("moov largesize {large:#x}"), &format!("crafted/moov_large_{large:x}.mp4"), d);
        let mut d = frag.clone();
        let moof = box_range(&frag, b"moof");
        put_u32(&mut d, moof.start, 1);
        put_u64(&mut d, moof.start + 8, large);
        h.check(&format!("moof largesize {large:#x}"), &format!("crafted/moof_large_{large:x}.mp4"), d);
    }

    // An mdat with largesize near u64::MAX between fragments (walked without sidx; inspected
    // through the sidx windows with it).
    for (name, file) in [("ladder-frag", &frag), ("ladder-cmaf", &cmaf)] {
        for large in [u64::MAX, u64::MAX - 7] {
            let mut d = file.clone();
            let mdat = box_range(file, b"mdat");
            put_u32(&mut d, mdat.start, 1);
            put_u64(&mut d, mdat.start + 8, large);
            h.check(
                &format!("{name} mdat largesize {large:#x}"),
                &format!("crafted/{name}_mdat_large_{large:x}.mp4"),
                d,
            );
        }
    }

    // Table counts in the moov (full box: size, type, version+flags, then fields).
    for (kind, field, label) in [
        (b"stsz", 16usize, "stsz sample_count"),
        (b"stts", 12, "stts entry_count"),
        (b"stts", 16, "stts first run sample_count"),
        (b"stsc", 12, "stsc entry_count"),
        (b"stsc", 20, "stsc first samples_per_chunk"),
        (b"stco", 12, "stco entry_count"),
        (b"ctts", 12, "ctts entry_count"),
        (b"stss", 12, "stss entry_count"),
        (b"elst", 12, "elst entry_count"),
    ] {
        for value in [0u32, 0x7FFF_FFFF, 0xFFFF_FFFF, 100_000_000] {
            let mut d = progressive.clone();
            let at = find_box(&d, moov.start, kind);
            put_u32(&mut d, at + field, value);
            h.check(&format!("{label} = {value:#x}"), &format!("crafted/{label}-{value:x}.mp4").replace(' ', "_"), d);
        }
    }
    // stsz with a constant sample size and a huge count.
    for count in [0xFFFF_FFFFu32, 100_000_001] {
        let mut d = progressive.clone();
        let at = find_box(&d, moov.start, b"stsz");
        put_u32(&mut d, at + 12, 1000);
        put_u32(&mut d, at + 16, count);
        h.check(&format!("stsz constant size, count {count}"), &format!("crafted/stsz_const_{count}.mp4"), d);
    }
    // mdhd / mvhd timescale 0 and huge.
    for ts in [0u32, 1, 0xFFFF_FFFF] {
        let mut d = edit.clone();
        let at = find_box(&d, 0, b"mdhd");
        put_u32(&mut d, at + 20, ts);
        h.check(&format!("edit mdhd timescale {ts}"), &format!("crafted/mdhd_ts_{ts}.mp4"), d);
        let mut d = edit.clone();
        let at = find_box(&d, 0, b"mvhd");
        put_u32(&mut d, at + 20, ts);
        h.check(&format!("edit mvhd timescale {ts}"), &format!("crafted/mvhd_ts_{ts}.mp4"), d);
    }
    // elst empty-edit duration huge (v0, u32).
    let mut d = edit.clone();
    let at = find_box(&d, 0, b"elst");
    put_u32(&mut d, at + 16, 0xFFFF_FFFF);
    h.check("edit elst empty duration 0xFFFFFFFF", "crafted/elst_dur.mp4", d);

    // elst version 1 with one huge empty edit (the 24 bytes of edit.mp4's two v0 entries hold
    // one 20-byte v1 entry): the presentation shift becomes about ±2^63.
    // Durations are in the movie timescale (1000); the shift is scaled to the video's 12288.
    for shift in [1u64 << 62, i64::MAX as u64 - 100_000, 1 << 63, u64::MAX] {
        let duration = (shift as u128 * 1000 / 12288).min(u64::MAX as u128) as u64;
        let mut d = edit.clone();
        let at = find_box(&d, 0, b"elst");
        d[at + 8] = 1;
        put_u32(&mut d, at + 12, 1);
        put_u64(&mut d, at + 16, duration);
        put_u64(&mut d, at + 24, u64::MAX); // media_time -1: an empty edit
        h.check(&format!("edit elst v1 empty edit {duration:#x}"), &format!("crafted/elst_v1_{duration:x}.mp4"), d);
    }
    // co64 chunk offsets near u64::MAX (the stco table reinterpreted as co64).
    // (muxed.mp4: interleaved, so its stco has many chunks.)
    let mut d = muxed.clone();
    let stco = find_box(&d, box_range(&muxed, b"moov").start, b"stco");
    let entries = u32::from_be_bytes(d[stco + 12..stco + 16].try_into().unwrap());
    d[stco + 4..stco + 8].copy_from_slice(b"co64");
    put_u32(&mut d, stco + 12, (entries / 2).max(1));
    assert!(entries >= 2, "muxed.mp4 has {entries} chunks");
    put_u64(&mut d, stco + 16, u64::MAX - 10);
    h.check("co64 chunk offset u64::MAX - 10", "crafted/co64_max.mp4", d);

    // Fragments: tfhd / tfdt / trun fields of the first moof.
    let moof = box_range(&frag, b"moof").start;
    let tfdt = find_box(&frag, moof, b"tfdt");
    let trun = find_box(&frag, moof, b"trun");
    let tfhd = find_box(&frag, moof, b"tfhd");
    for (label, patch) in [
        (
            "tfdt v1 decode time u64::MAX",
            Box::new(|d: &mut Vec<u8>| {
                d[tfdt + 8] = 1;
                put_u64(d, tfdt + 12, u64::MAX);
            }) as Box<dyn Fn(&mut Vec<u8>)>,
        ),
        (
            "tfdt v1 decode time i64::MAX",
            Box::new(|d: &mut Vec<u8>| {
                d[tfdt + 8] = 1;
                put_u64(d, tfdt + 12, i64::MAX as u64);
            }),
        ),
        ("trun sample_count 0xFFFFFFFF", Box::new(|d: &mut Vec<u8>| put_u32(d, trun + 12, 0xFFFF_FFFF))),
        ("trun data_offset -2^31", Box::new(|d: &mut Vec<u8>| put_u32(d, trun + 16, 0x8000_0000))),
        ("trun data_offset -1", Box::new(|d: &mut Vec<u8>| put_u32(d, trun + 16, 0xFFFF_FFFF))),
        ("tfhd flags all set", Box::new(|d: &mut Vec<u8>| put_u32(d, tfhd + 8, 0x00FF_FFFF))),
        (
            "tfhd base_data_offset u64::MAX - 10000",
            Box::new(|d: &mut Vec<u8>| {
                put_u32(d, tfhd + 8, 0x01);
                put_u64(d, tfhd + 16, u64::MAX - 10_000);
            }),
        ),
        ("tfhd track_id 0", Box::new(|d: &mut Vec<u8>| put_u32(d, tfhd + 12, 0))),
    ] {
        let mut d = frag.clone();
        patch(&mut d);
        h.check(&format!("ladder-frag {label}"), &format!("crafted/frag-{label}.mp4").replace(' ', "_"), d);
    }
    // sidx (version 1): first_offset and reference sizes.
    let sidx = box_range(&cmaf, b"sidx").start;
    assert_eq!(cmaf[sidx + 8], 1, "ladder-cmaf sidx is version 1");
    // v1 layout after the 12-byte full box header: reference_ID(4) timescale(4) ept(8) first_offset(8) reserved(2) count(2) refs.
    for (label, patch) in [
        (
            "sidx first_offset u64::MAX",
            Box::new(|d: &mut Vec<u8>| put_u64(d, sidx + 28, u64::MAX)) as Box<dyn Fn(&mut Vec<u8>)>,
        ),
        ("sidx first_offset 2^40", Box::new(|d: &mut Vec<u8>| put_u64(d, sidx + 28, 1 << 40))),
        (
            "sidx reference_count 0xFFFF",
            Box::new(|d: &mut Vec<u8>| d[sidx + 38..sidx + 40].copy_from_slice(&[0xFF, 0xFF])),
        ),
        ("sidx reference_count 0", Box::new(|d: &mut Vec<u8>| d[sidx + 38..sidx + 40].copy_from_slice(&[0, 0]))),
        ("sidx first reference size 0x7FFFFFFF", Box::new(|d: &mut Vec<u8>| put_u32(d, sidx + 40, 0x7FFF_FFFF))),
        ("sidx first reference is_index", Box::new(|d: &mut Vec<u8>| d[sidx + 40] |= 0x80)),
    ] {
        let mut d = cmaf.clone();
        patch(&mut d);
        h.check(&format!("ladder-cmaf {label}"), &format!("crafted/cmaf-{label}.mp4").replace(' ', "_"), d);
    }
    // A tail that looks like an mfro pointing at a bogus mfra.
    let mut d = frag.clone();
    d.extend_from_slice(&16u32.to_be_bytes());
    d.extend_from_slice(b"mfro");
    d.extend_from_slice(&[0, 0, 0, 0]);
    d.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    h.check("ladder-frag with a bogus mfro", "crafted/frag_mfro.mp4", d);

    h.finish("crafted boxes");
}

#[test]
fn missing_file_is_not_found_naming_it() {
    let h = Harness::new();
    let err = h.rt.block_on(index_file(&h.storage, "nowhere/missing.mp4")).unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("nowhere/missing.mp4"), "{err}");
}

#[test]
fn empty_file_is_a_media_error_naming_it() {
    let h = Harness::new();
    h.put("e/empty.mp4", Vec::new());
    let err = h.rt.block_on(index_file(&h.storage, "e/empty.mp4")).unwrap_err();
    assert!(matches!(&err, Error::Media { file, .. } if file == "e/empty.mp4"), "{err:?}");
}

#[test]
fn intact_fixtures_index_and_render_from_memory() {
    // The same harness on undamaged files: everything indexes and renders.
    let mut h = Harness::new();
    for file in FLIP_FILES {
        h.check(&format!("{file} intact"), &format!("intact/{file}"), fixture(file));
    }
    assert_eq!(h.indexed_ok, FLIP_FILES.len());
    h.finish("intact");
}

// ---------------------------------------------------------------------------------------------
// Hostile sizes and offsets: corrupt media costs a small allocation and a 500, never a huge
// read or a storage error
// ---------------------------------------------------------------------------------------------

/// The system allocator, remembering the largest single allocation asked of it since the last
/// [`LargestAllocation::reset`]: how a hostile file's claimed sizes are seen to drive (or not
/// drive) allocations, whether or not the memory is ever touched.
struct LargestAllocation;

static LARGEST_ALLOCATION: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl LargestAllocation {
    fn reset() {
        LARGEST_ALLOCATION.store(0, std::sync::atomic::Ordering::SeqCst);
    }
    fn get() -> usize {
        LARGEST_ALLOCATION.load(std::sync::atomic::Ordering::SeqCst)
    }
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl std::alloc::GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Largest single allocation a hostile file may cause. The fixtures are under 1 MB and a
/// segment of them far less; the damage below claims up to 4 GB.
const HOSTILE_ALLOCATION_BOUND: usize = 32 << 20;

/// Sizes, offsets and counts patched into real fixtures, stored as local files (the storage
/// path whose ranged reads allocate what they are asked for). For each: indexing, loading
/// and rendering every resource of the HLS-CMAF package either works or fails with a `Media`
/// error naming the file (never `Storage`), no single allocation exceeds
/// [`HOSTILE_ALLOCATION_BOUND`], and damage that puts samples outside the file or over each
/// other is refused.
#[test]
fn hostile_sizes_and_offsets_are_media_errors_without_large_allocations() {
    let progressive = fixture("ladder/video_150k.mp4");
    let muxed = fixture("muxed/muxed.mp4");
    let frag = fixture("ladder-frag/video_150k.mp4");
    let cmaf = fixture("ladder-cmaf/video_150k.mp4");
    let moov = box_range(&progressive, b"moov").start;
    let stsz = find_box(&progressive, moov, b"stsz");
    let stco = find_box(&progressive, moov, b"stco");
    let muxed_stco = find_box(&muxed, box_range(&muxed, b"moov").start, b"stco");
    let muxed_audio_stsz = find_box(&muxed, muxed_stco, b"stsz");
    let muxed_audio_stco = find_box(&muxed, muxed_audio_stsz, b"stco");
    let trun = find_box(&frag, box_range(&frag, b"moof").start, b"trun");
    let sidx = box_range(&cmaf, b"sidx").start;

    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    // (name, source, patch, whether the damage must be refused)
    let cases: Vec<(&str, &Vec<u8>, Patch, bool)> = vec![
        ("stsz first entry 0xFFFFFFFF", &progressive, Box::new(move |d| put_u32(d, stsz + 20, 0xFFFF_FFFF)), true),
        // The first audio sample of muxed.mp4 is alone in its chunk: no other offset moves.
        (
            "audio stsz first entry 0xFFFFFFFF",
            &muxed,
            Box::new(move |d| put_u32(d, muxed_audio_stsz + 20, 0xFFFF_FFFF)),
            true,
        ),
        (
            "audio stsz first entry running to the end of the file",
            &muxed,
            Box::new(move |d| {
                let first_offset =
                    u32::from_be_bytes(d[muxed_audio_stco + 16..muxed_audio_stco + 20].try_into().unwrap());
                let to_end = d.len() as u32 - first_offset;
                put_u32(d, muxed_audio_stsz + 20, to_end);
            }),
            true,
        ),
        ("stsz sample_count 0x7FFFFFFF", &progressive, Box::new(move |d| put_u32(d, stsz + 16, 0x7FFF_FFFF)), true),
        (
            "stsz constant size 1000, 10M samples",
            &progressive,
            Box::new(move |d| {
                put_u32(d, stsz + 12, 1000);
                put_u32(d, stsz + 16, 10_000_000);
            }),
            true,
        ),
        (
            "stco first offset past the end",
            &progressive,
            Box::new(move |d| {
                let past_end = d.len() as u32 + 1000;
                put_u32(d, stco + 16, past_end)
            }),
            true,
        ),
        (
            "co64 first offset past the end",
            &muxed,
            Box::new(move |d| {
                let end = d.len() as u64;
                stco_to_co64(d, muxed_stco);
                put_u64(d, muxed_stco + 16, end);
            }),
            true,
        ),
        ("trun data_offset -2^31", &frag, Box::new(move |d| put_u32(d, trun + 16, 0x8000_0000)), true),
        ("trun data_offset 2^31-1", &frag, Box::new(move |d| put_u32(d, trun + 16, 0x7FFF_FFFF)), true),
        ("trun sample_count 0xFFFFFFFF", &frag, Box::new(move |d| put_u32(d, trun + 12, 0xFFFF_FFFF)), true),
        (
            "trun of 10M samples without per-sample fields",
            &frag,
            Box::new(move |d| {
                put_u32(d, trun + 8, 0x05); // data_offset, first_sample_flags
                put_u32(d, trun + 12, 10_000_000);
            }),
            true,
        ),
        (
            "mdat size past the end (moov first)",
            &progressive,
            Box::new(|d| {
                let mdat = box_range(d, b"mdat").start;
                put_u32(d, mdat, 0xFFFF_FFF0);
            }),
            false,
        ),
        ("sidx first reference past the end", &cmaf, Box::new(move |d| put_u32(d, sidx + 40, 0x7FFF_FFFF)), false),
        ("sidx first_offset 2^40", &cmaf, Box::new(move |d| put_u64(d, sidx + 28, 1 << 40)), false),
    ];

    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local("hostile", dir.path()).unwrap();
    let rt = runtime();
    let mut failures = Vec::new();
    for (name, source, patch, must_fail) in cases {
        let path = format!("{}.mp4", name.replace([' ', ','], "_"));
        let mut data = source.clone();
        patch(&mut data);
        std::fs::write(dir.path().join(&path), &data).unwrap();
        LargestAllocation::reset();
        let errors = rt.block_on(hostile_errors(&storage, &path));
        let largest = LargestAllocation::get();
        if largest > HOSTILE_ALLOCATION_BOUND {
            failures.push(format!("{name}: allocated {largest} bytes at once"));
        }
        for e in &errors {
            if !matches!(e, Error::Media { file, .. } if *file == path) {
                failures.push(format!("{name}: {e:?} is not a media error naming {path}"));
            }
        }
        if must_fail && errors.is_empty() {
            failures.push(format!("{name}: the damage was not noticed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rewrites the `stco` at `at` as the equivalent `co64`, growing the boxes that hold it. Only
/// for files whose `moov` follows the media, so no sample moves.
fn stco_to_co64(data: &mut Vec<u8>, at: usize) {
    let entries = u32::from_be_bytes(data[at + 12..at + 16].try_into().unwrap()) as usize;
    let offsets: Vec<u64> = (0..entries)
        .map(|i| u32::from_be_bytes(data[at + 16 + 4 * i..at + 20 + 4 * i].try_into().unwrap()) as u64)
        .collect();
    let mut co64 = Vec::with_capacity(16 + 8 * entries);
    co64.extend_from_slice(&(16 + 8 * entries as u32).to_be_bytes());
    co64.extend_from_slice(b"co64");
    co64.extend_from_slice(&data[at + 8..at + 16]); // version, flags, entry count
    offsets.iter().for_each(|o| co64.extend_from_slice(&o.to_be_bytes()));
    data.splice(at..at + 16 + 4 * entries, co64);
    for parent in [b"moov", b"trak", b"mdia", b"minf", b"stbl"] {
        let p = data[..at].windows(4).rposition(|w| w == parent).expect("parent box") - 4;
        let size = u32::from_be_bytes(data[p..p + 4].try_into().unwrap());
        put_u32(data, p, size + 4 * entries as u32);
    }
}

/// Every error indexing, loading and rendering the whole HLS-CMAF package of `path` gives.
async fn hostile_errors(storage: &Storage, path: &str) -> Vec<Error> {
    if let Err(e) = index_file(storage, path).await {
        return vec![e];
    }
    let asset = match load(storage, &AssetSource::File(path.to_string()), SegmentPolicy::default()).await {
        Ok(asset) => asset,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    for resource in package_resources(&asset, Format::M3u8Cmaf) {
        if let Err(e) = render(storage, &asset, &resource, true, None).await {
            errors.push(e);
        }
    }
    errors
}

/// Writes `ladder/video_150k.mp4` as a sparse `len`-byte local file whose 192 samples are each
/// their own chunk, evenly spread over the file (in order, none overlapping), and returns the
/// original file's bytes.
fn write_spread_fixture(file: &Path, len: u64) -> Vec<u8> {
    use std::io::{Seek, SeekFrom, Write};
    let original = fixture("ladder/video_150k.mp4");
    let moov = box_range(&original, b"moov");
    let stsc = find_box(&original, moov.start, b"stsc");
    let stsz = find_box(&original, moov.start, b"stsz");
    let stco = find_box(&original, moov.start, b"stco");
    let read_u32 = |at: usize| u32::from_be_bytes(original[at..at + 4].try_into().unwrap());
    let count = read_u32(stsz + 16) as usize;
    assert_eq!((read_u32(stsc + 12), read_u32(stco + 12), read_u32(stsz + 12)), (1, 1, 0), "one chunk, sizes listed");
    let sizes: Vec<usize> = (0..count).map(|i| read_u32(stsz + 20 + 4 * i) as usize).collect();
    let mut original_offset = read_u32(stco + 16) as usize;

    // One sample per chunk, each chunk at base + i * stride.
    let mut moov_box = original[moov.clone()].to_vec();
    let (stsc, stco) = (stsc - moov.start, stco - moov.start);
    put_u32(&mut moov_box, stsc + 16, 1); // first_chunk
    put_u32(&mut moov_box, stsc + 20, 1); // samples_per_chunk
    let base = (original.len() as u64).next_multiple_of(4096);
    let stride = (len - base) / count as u64;
    let mut entries = Vec::with_capacity(4 * count);
    (0..count).for_each(|i| entries.extend_from_slice(&((base + i as u64 * stride) as u32).to_be_bytes()));
    moov_box.splice(stco + 12..stco + 20, [(count as u32).to_be_bytes().to_vec(), entries].concat());
    let grown = 4 * (count as u32 - 1);
    put_u32(&mut moov_box, stco, 20 + grown);
    for parent in [b"moov", b"trak", b"mdia", b"minf", b"stbl"] {
        let p = moov_box[..stco].windows(4).rposition(|w| w == parent).expect("parent box") - 4;
        let size = u32::from_be_bytes(moov_box[p..p + 4].try_into().unwrap());
        put_u32(&mut moov_box, p, size + grown);
    }

    let mut head = original[..moov.start].to_vec();
    head.extend_from_slice(&moov_box);
    let mdat_at = head.len() as u64;
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(b"mdat");
    head.extend_from_slice(&(len - mdat_at).to_be_bytes());
    assert!(head.len() as u64 <= base);
    let mut out = std::fs::File::create(file).unwrap();
    out.set_len(len).unwrap();
    out.write_all(&head).unwrap();
    for (i, size) in sizes.iter().enumerate() {
        out.seek(SeekFrom::Start(base + i as u64 * stride)).unwrap();
        out.write_all(&original[original_offset..original_offset + size]).unwrap();
        original_offset += size;
    }
    original
}

/// A file whose samples lie far apart (inside it, not overlapping): each segment is read as
/// runs of its samples, never as the gigabytes between them, and comes out identical to the
/// compact file's; segments with more far-apart samples than a bounded number of reads holds
/// are a 500 naming the file. No single allocation exceeds [`HOSTILE_ALLOCATION_BOUND`].
#[test]
fn samples_spread_over_a_large_file_are_read_as_runs_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let original = write_spread_fixture(&dir.path().join("spread.mp4"), 2 << 30);
    std::fs::write(dir.path().join("compact.mp4"), &original).unwrap();
    let storage = Storage::local("spread", dir.path()).unwrap();
    let rt = runtime();
    let load_with = |path: &str, target_secs: Option<f64>| {
        let source = AssetSource::File(path.to_string());
        rt.block_on(load(&storage, &source, SegmentPolicy { target_secs })).unwrap()
    };

    // 2 s segments (48 samples, each its own read): byte for byte the compact file's segments.
    let (spread, compact) = (load_with("spread.mp4", None), load_with("compact.mp4", None));
    let segments = |asset| {
        package_resources(asset, Format::M3u8Cmaf).into_iter().filter(|r| matches!(r, url::Resource::Segment { .. }))
    };
    let mut served = 0;
    for (a, b) in segments(&spread).zip(segments(&compact)) {
        LargestAllocation::reset();
        let got = rt.block_on(render(&storage, &spread, &a, true, None)).unwrap();
        let largest = LargestAllocation::get();
        assert!(largest <= HOSTILE_ALLOCATION_BOUND, "{a:?}: allocated {largest} bytes at once");
        let want = rt.block_on(render(&storage, &compact, &b, true, None)).unwrap();
        assert_eq!(got.to_bytes(), want.to_bytes(), "{a:?}");
        served += 1;
    }
    assert_eq!(served, 4);

    // 4 s segments: 96 samples ~11 MB apart. 64 reads would read gigabytes: refused.
    let spread = load_with("spread.mp4", Some(4.0));
    let mut refused = 0;
    for resource in segments(&spread) {
        LargestAllocation::reset();
        let e = rt.block_on(render(&storage, &spread, &resource, true, None)).unwrap_err();
        let largest = LargestAllocation::get();
        assert!(largest <= HOSTILE_ALLOCATION_BOUND, "{resource:?}: allocated {largest} bytes at once");
        assert!(
            matches!(&e, Error::Media { file, reason } if file == "spread.mp4" && reason.contains("spread over")),
            "{e:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, 2);
}

// ---------------------------------------------------------------------------------------------
// .ism src escaping the asset folder
// ---------------------------------------------------------------------------------------------

#[test]
fn ism_src_cannot_escape_the_asset_folder() {
    let h = Harness::new();
    // Files the escaping srcs would reach if they were followed.
    h.put("x.mp4", fixture("ladder/video_150k.mp4"));
    h.put("a/ok.mp4", fixture("ladder/video_150k.mp4"));
    let escapes = [
        "../x.mp4",
        "./../x.mp4",
        "sub/../../x.mp4",
        "%2e%2e/x.mp4",
        "..%2fx.mp4",
        "/etc/passwd",
        "/x.mp4",
        "http://example.com/x.mp4",
        "https://example.com/x.mp4",
        "file:///etc/passwd",
        "s3://bucket/x.mp4",
        "C:\\x.mp4",
        "..\\x.mp4",
    ];
    for src in escapes {
        let ism = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body><switch>
  <video src="{}" systemBitrate="150000"><param name="trackName" value="video" valuetype="data" /></video>
</switch></body></smil>"#,
            src.replace('&', "&amp;")
        );
        h.put("a/a.ism", ism.into_bytes());
        let result = h.rt.block_on(load(&h.storage, &AssetSource::Ism("a/a.ism".into()), SegmentPolicy::default()));
        match result {
            Err(Error::Asset { asset, reason }) => {
                assert!(asset.contains("a/a.ism") || asset == "a", "src {src}: asset {asset}: {reason}")
            }
            other => panic!("src {src:?} must fail with an Asset error, got {:?}", other.map(|a| a.tracks.len())),
        }
    }
    // The controls: srcs inside the folder load, dot segments resolved (they were refused
    // as a bad request once, blaming the viewer for the asset's spelling).
    for src in ["ok.mp4", "./ok.mp4", "sub/../ok.mp4", "./sub/./../ok.mp4"] {
        let ism = format!(
            r#"<smil><body><switch><video src="{src}" systemBitrate="150000"><param name="trackName" value="video" valuetype="data" /></video></switch></body></smil>"#
        );
        h.put("a/a.ism", ism.into_bytes());
        let asset = h.rt.block_on(load(&h.storage, &AssetSource::Ism("a/a.ism".into()), SegmentPolicy::default()));
        let asset = asset.unwrap_or_else(|e| panic!("src {src:?}: {e:?}"));
        assert_eq!(asset.tracks.iter().map(|t| t.file.as_str()).collect::<Vec<_>>(), ["a/ok.mp4"], "src {src:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// URL grammar fuzz
// ---------------------------------------------------------------------------------------------

/// Pieces of the grammar, recombined into near-miss paths.
const FRAGMENTS: &[&str] = &[
    "manifest(",
    "Manifest(",
    "MANIFEST(",
    "QualityLevels(",
    "qualitylevels(",
    "Fragments(",
    "fragments(",
    "format=",
    "FORMAT=",
    "m3u8-cmaf",
    "mpd-time-cmaf",
    "mpd-time-csf",
    "m3u8-aapl",
    "encryption=",
    "cbc",
    "cenc",
    "cbcs-aapl",
    "filter=",
    "audio-only=",
    "false",
    "true",
    "type=keyframes",
    "type=thumbnails",
    "type=",
    "KeyFrames(",
    "Thumbnails(",
    ".vtt",
    ".jpg",
    ",",
    ";",
    "=",
    "(",
    ")",
    "/",
    "//",
    ".",
    ".m3u8",
    ".mpd",
    ".mp4",
    ".m4s",
    ".ts",
    "video",
    "audio_eng",
    "i",
    "0",
    "00",
    "128000",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "-1",
    "+1",
    " ",
    "%",
    "%2F",
    "%00",
    "é",
    "\u{0}",
    "\u{7f}",
    "\u{202e}",
    "🎬",
    "\n",
    "a;b;c;d",
    "x",
];

fn near_miss() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..14).prop_map(|parts| parts.concat())
}

/// A valid URL with one random edit (insert / delete / replace a char).
fn mutated_valid() -> impl Strategy<Value = String> {
    let valid = prop::sample::select(
        &[
            "manifest(format=m3u8-cmaf)",
            "manifest(format=mpd-time-cmaf,encryption=cenc,filter=a;b,audio-only=false).mpd",
            "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf).m3u8",
            "QualityLevels(150000)/Fragments(video=i,format=m3u8-cmaf).mp4",
            "QualityLevels(128000)/Fragments(audio_eng=24576,format=mpd-time-csf)",
        ][..],
    );
    (valid, any::<usize>(), any::<char>(), 0u8..3).prop_map(|(v, pos, c, op)| {
        let mut chars: Vec<char> = v.chars().collect();
        let at = pos % (chars.len() + 1);
        match op {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
        chars.into_iter().collect()
    })
}

fn check_url(s: &str) -> Result<(), TestCaseError> {
    match url::parse(s) {
        Ok(parsed) => {
            // Whatever parses formats back to a URL that parses to the same thing.
            let formatted = url::format(&parsed.resource, parsed.extension);
            let decoded =
                url::percent_decode(&formatted).map_err(|e| TestCaseError::fail(format!("{formatted}: {e}")))?;
            let again =
                url::parse(&decoded).map_err(|e| TestCaseError::fail(format!("{s:?} -> {formatted:?}: {e}")))?;
            prop_assert_eq!(again, parsed, "round trip of {:?} via {:?}", s, formatted);
        }
        Err(Error::BadRequest(_)) => {}
        Err(other) => return Err(TestCaseError::fail(format!("{s:?}: not BadRequest: {other:?}"))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn url_parse_arbitrary_strings(s in any::<String>()) {
        check_url(&s)?;
    }

    #[test]
    fn url_parse_near_misses(s in near_miss()) {
        check_url(&s)?;
    }

    #[test]
    fn url_parse_mutated_valid(s in mutated_valid()) {
        check_url(&s)?;
    }
}
