//! Track indexing (DESIGN §3) and segment planning (DESIGN §5), checked against the fixtures.
//!
//! * Read economy: the number of storage GETs each layout costs, counted twice (the storage
//!   account's counter and `FileIndex::reads`), which must agree.
//! * Index facts equal what ffprobe (ffmpeg 5.1.9) reports for every fixture file and track.
//! * The three layouts of the ladder (`ladder/`, `ladder-frag/`, `ladder-cmaf/`) index to the
//!   same bitstreams.
//! * Timeline invariants on every fixture asset under three segment policies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use jit_origin::source::asset::{load, resolve_source, Asset, AssetTrack};
use jit_origin::source::index::locate::index_file;
use jit_origin::source::index::{FileIndex, TrackIndex, TrackKind};
use jit_origin::source::storage::Storage;
use jit_origin::source::timeline::SegmentPolicy;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn storage() -> Storage {
    Storage::local("fixtures", fixtures_dir()).expect("local storage over fixtures/")
}

/// Every `.mp4` under `fixtures/`, as storage paths (`ladder/video_150k.mp4`), sorted.
fn fixture_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(fixtures_dir()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "mp4") {
                out.push(f.strip_prefix(fixtures_dir()).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 20, "expected the fixture set of fixtures/README.md, found {out:?}");
    out
}

/// Asset folders under `fixtures/`.
const ASSETS: [&str; 7] = ["ladder", "ladder-frag", "ladder-cmaf", "muxed", "hevc", "dolby", "edit"];

// ---------------------------------------------------------------------------------------------
// Read economy
// ---------------------------------------------------------------------------------------------

/// Indexes `path` with a fresh storage account and returns (index, GETs counted by storage).
async fn index_counting(path: &str) -> (FileIndex, u64) {
    let storage = storage();
    let index = index_file(&storage, path).await.unwrap_or_else(|e| panic!("indexing {path}: {e}"));
    let gets = storage.stats().get_requests.load(Ordering::Relaxed);
    assert_eq!(
        gets, index.reads as u64,
        "{path}: storage counted {gets} GETs but FileIndex::reads says {}",
        index.reads
    );
    (index, gets)
}

#[tokio::test]
async fn read_economy_progressive_moov_first_is_one_get() {
    // ftyp + moov (faststart) fit in the 64 KiB probe: one GET, nothing else.
    for file in [
        "ladder/video_150k.mp4",
        "ladder/video_300k.mp4",
        "ladder/video_600k.mp4",
        "ladder/audio_eng.mp4",
        "ladder/audio_fra.mp4",
    ] {
        let (_, gets) = index_counting(file).await;
        assert_eq!(gets, 1, "{file}: moov-first progressive file must cost exactly 1 GET");
    }
}

#[tokio::test]
async fn read_economy_progressive_moov_last_is_two_gets() {
    // `ftyp free mdat moov`: the probe shows the mdat header, then one read of everything after
    // mdat (the moov) — 2 GETs.
    let (_, gets) = index_counting("muxed/muxed.mp4").await;
    assert_eq!(gets, 2, "muxed/muxed.mp4: moov-at-end file must cost exactly 2 GETs");
}

#[tokio::test]
async fn read_economy_cmaf_with_sidx_is_probe_plus_one_per_fragment() {
    // ladder-cmaf files are `ftyp moov sidx (moof mdat)×4`, one sidx v1 with 4 references.
    // The 64 KiB probe holds ftyp, moov and sidx (GET 1); then one 16 KiB window read per
    // sidx reference, each holding that fragment's moof and mdat header (GETs 2..=5). The
    // first moof is also inside the probe, but the sidx path reads every fragment from its
    // own window regardless: 1 + 4 = 5.
    for file in [
        "ladder-cmaf/video_150k.mp4",
        "ladder-cmaf/video_300k.mp4",
        "ladder-cmaf/video_600k.mp4",
        "ladder-cmaf/audio_eng.mp4",
        "ladder-cmaf/audio_fra.mp4",
    ] {
        let (index, gets) = index_counting(file).await;
        let fragments = index.tracks[0].samples.fragment_starts.len() as u64;
        assert_eq!(fragments, 4, "{file}: 4 sidx references / fragments");
        assert_eq!(gets, 1 + fragments, "{file}: sidx layout must cost 1 probe + 1 GET per fragment");
        assert_eq!(gets, 5, "{file}");
    }
}

#[tokio::test]
async fn read_economy_fragmented_without_sidx_is_measured() {
    // ladder-frag: `ftyp moov (moof mdat)×4`, no sidx, no mfra. Measured:
    // GET 1, the 64 KiB probe: ftyp, moov and every moof whose header lies inside it;
    // GET 2, a 64 KiB tail read looking for `mfro` (there is none);
    // then the moofs are walked in file order, one 16 KiB window read per moof not in the probe.
    // video_150k: moofs at 760, 45645 (in the probe), 89936, 128120 -> 1 + 1 + 2 = 4
    // audio_eng:  moofs at 692, 33294 (in the probe), 65898, 98507  -> 1 + 1 + 2 = 4
    // video_600k: moof at 761 (in the probe), 170968, 336341, 487320 -> 1 + 1 + 3 = 5
    for (file, expected) in
        [("ladder-frag/video_150k.mp4", 4), ("ladder-frag/audio_eng.mp4", 4), ("ladder-frag/video_600k.mp4", 5)]
    {
        let (index, gets) = index_counting(file).await;
        assert_eq!(index.tracks[0].samples.fragment_starts.len(), 4, "{file}");
        assert_eq!(gets, expected, "{file}: GETs without sidx/mfra");
    }
}

// ---------------------------------------------------------------------------------------------
// Index facts against ffprobe
// ---------------------------------------------------------------------------------------------

fn ffprobe_json(args: &[&str], file: &Path) -> Value {
    let out = Command::new(std::env::var("FFPROBE").unwrap_or_else(|_| "ffprobe".into()))
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe (ffmpeg 5.1.9) must be installed");
    assert!(out.status.success(), "ffprobe {args:?} {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

fn json_i64(v: &Value, key: &str) -> i64 {
    match &v[key] {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("{key}={s}")),
        other => panic!("{key} missing in {v}: {other}"),
    }
}

#[derive(Debug)]
struct Packet {
    pts: i64,
    dts: i64,
    size: u32,
    pos: u64,
    key: bool,
}

/// ffprobe's packets of the stream whose id (for mov: the track_ID) is `track_id`, with
/// `-ignore_editlist 1` so timestamps are the raw media timeline. Returns (time_base den, packets).
fn ffprobe_packets(file: &Path, track_id: u32) -> (i64, Vec<Packet>) {
    let streams = ffprobe_json(&["-show_entries", "stream=index,id,time_base"], file);
    let stream = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["id"].as_str().and_then(|id| i64::from_str_radix(id.trim_start_matches("0x"), 16).ok())
                == Some(track_id as i64)
        })
        .unwrap_or_else(|| panic!("{}: ffprobe has no stream with id {track_id}: {streams}", file.display()));
    let index = stream["index"].as_i64().unwrap().to_string();
    let time_base = stream["time_base"].as_str().unwrap();
    let (num, den) = time_base.split_once('/').unwrap();
    assert_eq!(num, "1", "{}: time_base {time_base}", file.display());
    let packets = ffprobe_json(
        &[
            "-ignore_editlist",
            "1",
            "-show_packets",
            "-select_streams",
            &index,
            "-show_entries",
            "packet=pts,dts,size,pos,flags",
        ],
        file,
    );
    let packets = packets["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Packet {
            pts: json_i64(p, "pts"),
            dts: json_i64(p, "dts"),
            size: json_i64(p, "size") as u32,
            pos: json_i64(p, "pos") as u64,
            key: p["flags"].as_str().unwrap().starts_with('K'),
        })
        .collect();
    (den.parse().unwrap(), packets)
}

/// Files whose composition offsets go negative: `edit/edit.mp4` (ctts v1) and the CMAF ladder
/// (`-movflags cmaf` writes trun v1 with offsets 1024 lower than `ladder/`'s ctts v0, instead
/// of an edit list).
const NEGATIVE_CTS: [&str; 4] =
    ["edit/edit.mp4", "ladder-cmaf/video_150k.mp4", "ladder-cmaf/video_300k.mp4", "ladder-cmaf/video_600k.mp4"];

/// The relation between our index and ffprobe's packets, established on the fixtures.
/// `-ignore_editlist 1` keeps ffmpeg from shifting by the edit list (without it, ladder
/// video's first packet is pts 0 / dts -1024: the `elst` media_time 1024 subtracted). Then:
///
/// * With non-negative composition offsets (every file but those in [`NEGATIVE_CTS`]):
///   `pts(ffprobe) == dts + cts_offset` and `dts(ffprobe) == dts`, ours, for every sample.
/// * With negative offsets ffmpeg's mov demuxer keeps `pts >= dts` by a per-track
///   `dts_shift = max(0, -min(cts_offset))` (1024 in all four files):
///   - progressive (`ctts` in moov, `edit/edit.mp4`): decode times move *down*:
///     `dts(ffprobe) == dts - dts_shift`, `pts(ffprobe) == dts + cts_offset`
///     (first video packet: ours dts 0 / cts 0, ffprobe pts 0 / dts -1024);
///   - fragmented (`trun` v1, `ladder-cmaf`): `tfdt` pins decode times, so presentation
///     times move *up*: `dts(ffprobe) == dts`, `pts(ffprobe) == dts + cts_offset + dts_shift`
///     (first packet: ours dts 0 / cts 0, ffprobe pts 1024 / dts 0).
///   Our index keeps the offsets exactly as the boxes say; the shift is ffmpeg's.
#[tokio::test]
async fn index_facts_match_ffprobe() {
    let storage = storage();
    let mut checked_tracks = 0;
    for file in fixture_files() {
        let index = index_file(&storage, &file).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        let path = fixtures_dir().join(&file);
        for track in &index.tracks {
            let what = format!("{file} track {}", track.info.track_id);
            let s = &track.samples;
            let (timescale, packets) = ffprobe_packets(&path, track.info.track_id);
            assert_eq!(track.info.timescale as i64, timescale, "{what}: timescale");
            assert_eq!(s.len(), packets.len(), "{what}: sample count");
            let our_sync = (0..s.len()).filter(|&i| s.is_sync(i)).count();
            let their_sync = packets.iter().filter(|p| p.key).count();
            assert_eq!(our_sync, their_sync, "{what}: sync sample count");
            let dts_shift = (0..s.len()).map(|i| -(s.cts_offset(i) as i64)).max().unwrap_or(0).max(0);
            if !NEGATIVE_CTS.contains(&file.as_str()) {
                assert_eq!(dts_shift, 0, "{what}: unexpected negative composition offsets");
            }
            let fragmented = !s.fragment_starts.is_empty();
            for (i, p) in packets.iter().enumerate() {
                let dts = s.dts[i] as i64;
                let pts = dts + s.cts_offset(i) as i64;
                let (want_dts, want_pts) = if fragmented { (dts, pts + dts_shift) } else { (dts - dts_shift, pts) };
                assert_eq!(s.sizes[i], p.size, "{what} sample {i}: size");
                assert_eq!(s.offsets[i], p.pos, "{what} sample {i}: byte offset");
                assert_eq!(want_dts, p.dts, "{what} sample {i}: dts (ours {dts}, shift {dts_shift})");
                assert_eq!(want_pts, p.pts, "{what} sample {i}: pts (ours dts + cts = {pts}, shift {dts_shift})");
                assert_eq!(s.is_sync(i), p.key, "{what} sample {i}: sync flag");
            }
            // The last sample's duration: our end_dts is where the next sample would start.
            assert!(s.end_dts > *s.dts.last().unwrap(), "{what}: end_dts after the last sample");
            checked_tracks += 1;
        }
    }
    // 27 files; muxed, edit and text-mp4/video_wvtt (H.264 + wvtt) have two tracks each.
    assert_eq!(checked_tracks, 31);
}

#[tokio::test]
async fn edit_fixture_has_negative_cts_and_dts_shift() {
    // Pins the dts_shift explanation above on the one file where it applies.
    let storage = storage();
    let index = index_file(&storage, "edit/edit.mp4").await.unwrap();
    let video = index.tracks.iter().find(|t| t.info.kind == TrackKind::Video).unwrap();
    assert_eq!(video.samples.dts[0], 0);
    assert_eq!(video.samples.cts_offset(0), 0);
    assert_eq!(video.samples.cts_offsets.iter().copied().min(), Some(-1024));
    assert_eq!(video.info.edit.empty_duration, 6144, "500 ms empty edit at 12288 Hz");
    let (_, packets) = ffprobe_packets(&fixtures_dir().join("edit/edit.mp4"), video.info.track_id);
    assert_eq!((packets[0].pts, packets[0].dts), (0, -1024));
}

// ---------------------------------------------------------------------------------------------
// Same content, three layouts
// ---------------------------------------------------------------------------------------------

fn sync_list(t: &TrackIndex) -> Vec<u32> {
    t.samples.sync_iter().collect()
}

#[tokio::test]
async fn ladder_layouts_index_to_the_same_bitstreams() {
    let storage = storage();
    for file in ["video_150k.mp4", "video_300k.mp4", "video_600k.mp4", "audio_eng.mp4", "audio_fra.mp4"] {
        let mut tracks = Vec::new();
        for folder in ["ladder", "ladder-frag", "ladder-cmaf"] {
            let path = format!("{folder}/{file}");
            let index = index_file(&storage, &path).await.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(index.tracks.len(), 1, "{path}");
            tracks.push((path, index.tracks.into_iter().next().unwrap()));
        }
        let (p0, t0) = &tracks[0];
        for (p, t) in &tracks[1..] {
            assert_eq!(t.info.kind, t0.info.kind, "{p} vs {p0}: kind");
            assert_eq!(t.info.timescale, t0.info.timescale, "{p} vs {p0}: timescale");
            assert_eq!(t.samples.sizes, t0.samples.sizes, "{p} vs {p0}: sample sizes");
            // ladder-frag copies ladder's ctts v0 offsets into trun v0; ladder-cmaf writes
            // trun v1 with every offset 1024 (= ladder's elst media_time, 2 frames) lower, which
            // stands in for the edit list it omits. So: equal up to that constant, and equal
            // presentation times (edit list applied) between ladder and ladder-cmaf.
            let shift = if p.starts_with("ladder-cmaf/") && t0.info.kind == TrackKind::Video { 1024 } else { 0 };
            let shifted: Vec<i32> = t0.samples.cts_offsets.iter().map(|&c| c - shift).collect();
            assert_eq!(t.samples.cts_offsets, shifted, "{p} vs {p0}: cts offsets (expected shift {shift})");
            if shift != 0 {
                let presentation =
                    |t: &TrackIndex| (0..t.samples.len()).map(|i| presentation_secs(t, i)).collect::<Vec<_>>();
                assert_eq!(t0.info.edit.media_time, 1024, "{p0}: elst media_time");
                assert_eq!(t.info.edit, Default::default(), "{p}: no edit list");
                assert_eq!(presentation(t), presentation(t0), "{p} vs {p0}: presentation times");
            }
            assert_eq!(sync_list(t), sync_list(t0), "{p} vs {p0}: sync samples");
            assert_eq!(t.samples.dts, t0.samples.dts, "{p} vs {p0}: decode times");
            assert_eq!(t.samples.end_dts, t0.samples.end_dts, "{p} vs {p0}: end");
            assert_eq!(t.info.codec, t0.info.codec, "{p} vs {p0}: codec");
        }
        if t0.info.kind == TrackKind::Video {
            assert!(t0.samples.cts_offsets.iter().any(|&c| c != 0), "{p0}: B-frames give composition offsets");
            assert!(sync_list(t0).len() >= 4, "{p0}: 2 s GOPs over 8 s");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timeline invariants
// ---------------------------------------------------------------------------------------------

/// Presentation time in seconds (edit list applied) of sample `i`.
fn presentation_secs(t: &TrackIndex, i: usize) -> f64 {
    let s = &t.samples;
    (s.dts[i] as i64 + s.cts_offset(i) as i64 + t.info.edit.presentation_shift()) as f64 / t.info.timescale as f64
}

async fn load_asset(storage: &Storage, folder: &str, policy: SegmentPolicy) -> Asset {
    let source = resolve_source(storage, folder, None).await.unwrap_or_else(|e| panic!("{folder}: {e}"));
    load(storage, &source, policy).await.unwrap_or_else(|e| panic!("{folder} {policy:?}: {e}"))
}

fn check_track_timeline(folder: &str, policy: SegmentPolicy, t: &AssetTrack) {
    let what = format!("{folder} {policy:?} track {}@{}", t.name, t.bitrate);
    let index = t.index();
    let s = &index.samples;
    let segs = &t.timeline.segments;
    assert!(!segs.is_empty(), "{what}: no segments");
    assert_eq!(t.timeline.timescale, index.info.timescale, "{what}: timescale");
    // Samples 0..n, each exactly once, in order.
    let mut next = 0u32;
    for (k, seg) in segs.iter().enumerate() {
        assert_eq!(seg.first_sample, next, "{what} segment {k}: gap or overlap");
        assert!(seg.sample_count > 0, "{what} segment {k}: empty");
        next += seg.sample_count;
        assert_eq!(seg.bytes, s.byte_count(seg.samples()), "{what} segment {k}: bytes");
        assert_eq!(seg.time, index.earliest_presentation(seg.samples()), "{what} segment {k}: time");
        if t.kind == TrackKind::Video {
            assert!(
                s.is_sync(seg.first_sample as usize),
                "{what} segment {k} starts on non-sync sample {}",
                seg.first_sample
            );
        }
    }
    assert_eq!(next as usize, s.len(), "{what}: segments cover {next} of {} samples", s.len());
    for (k, w) in segs.windows(2).enumerate() {
        assert!(w[1].time > w[0].time, "{what} segment {k}: time {} then {}", w[0].time, w[1].time);
        assert_eq!(w[0].duration, w[1].time - w[0].time, "{what} segment {k}: duration");
    }
    let last = segs.last().unwrap();
    assert!(last.duration > 0, "{what}: last segment has no duration");
    // Total duration spans the track's composition range.
    let end = (0..s.len()).map(|i| s.dts[i] as i64 + s.cts_offset(i) as i64 + s.duration(i) as i64).max().unwrap();
    assert_eq!((last.time + last.duration) as i64, end, "{what}: timeline end");
}

/// Checks the target duration is honoured: GOPs are grouped up to the target, so no segment
/// but the last is shorter than the GOP and none is longer than target + one GOP.
fn check_target(folder: &str, policy: SegmentPolicy, t: &AssetTrack) {
    let Some(target) = policy.target_secs else { return };
    let ts = t.timeline.timescale as f64;
    for (k, seg) in t.timeline.segments.iter().enumerate() {
        let secs = seg.duration as f64 / ts;
        assert!(secs <= target + 2.1, "{folder} {policy:?} {} segment {k}: {secs} s for target {target}", t.name);
    }
}

#[tokio::test]
async fn timeline_invariants_on_every_asset() {
    let storage = storage();
    for policy in
        [SegmentPolicy::default(), SegmentPolicy { target_secs: Some(4.0) }, SegmentPolicy { target_secs: Some(6.0) }]
    {
        for folder in ASSETS {
            let asset = load_asset(&storage, folder, policy).await;
            assert!(!asset.tracks.is_empty(), "{folder}");
            for t in &asset.tracks {
                check_track_timeline(folder, policy, t);
                check_target(folder, policy, t);
            }

            // Audio follows the reference video (the first video track, in .ism / file order;
            // all fixtures with several videos have identical cuts, checked below).
            let videos: Vec<&AssetTrack> = asset.tracks_of(TrackKind::Video).collect();
            let Some(reference) = videos.first() else { continue };
            let ref_starts: Vec<f64> = reference
                .timeline
                .segments
                .iter()
                .map(|seg| presentation_secs(reference.index(), seg.first_sample as usize))
                .collect();
            for a in asset.tracks_of(TrackKind::Audio) {
                let what = format!("{folder} {policy:?} audio {}", a.name);
                let idx = a.index();
                assert_eq!(a.timeline.segments.len(), ref_starts.len(), "{what}: as many segments as the video");
                // Segment 0 starts at each track's first sample by definition (in ladder-frag
                // and ladder-cmaf, with no edit list, video's first pts is 1024/12288 s while
                // audio's is 0), so the alignment check starts at segment 1.
                for (k, seg) in a.timeline.segments.iter().enumerate().skip(1) {
                    let i = seg.first_sample as usize;
                    let start = presentation_secs(idx, i);
                    let frame = idx.samples.duration(i) as f64 / idx.info.timescale as f64;
                    let diff = (start - ref_starts[k]).abs();
                    assert!(
                        diff <= frame + 1e-9,
                        "{what} segment {k}: starts at {start:.5} s, video at {:.5} s ({diff:.5} s apart, frame {frame:.5} s)",
                        ref_starts[k]
                    );
                }
            }

            if folder == "ladder" {
                assert_eq!(videos.len(), 3, "ladder has three video renditions");
                let times =
                    |t: &AssetTrack| t.timeline.segments.iter().map(|s| (s.time, s.duration)).collect::<Vec<_>>();
                for v in &videos[1..] {
                    assert_eq!(
                        times(v),
                        times(videos[0]),
                        "{policy:?}: {}@{} vs {}@{}",
                        v.name,
                        v.bitrate,
                        videos[0].name,
                        videos[0].bitrate
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn target_duration_groups_gops() {
    // ladder: 8 s, closed 2 s GOPs. Default follows the GOPs; a target groups whole GOPs up to
    // it: 4 s -> 4 + 4, 6 s -> 6 + 2.
    let storage = storage();
    for (target, expected) in
        [(None, vec![2.0, 2.0, 2.0, 2.0]), (Some(4.0), vec![4.0, 4.0]), (Some(6.0), vec![6.0, 2.0])]
    {
        let asset = load_asset(&storage, "ladder", SegmentPolicy { target_secs: target }).await;
        let video = asset.tracks_of(TrackKind::Video).next().unwrap();
        let secs: Vec<f64> =
            video.timeline.segments.iter().map(|s| s.duration as f64 / video.timeline.timescale as f64).collect();
        assert_eq!(secs, expected, "ladder video segment durations for target {target:?}");
    }
}
