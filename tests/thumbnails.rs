//! Scrub-bar thumbnail tiles through the HTTP server: the HLS image playlist and the DASH
//! thumbnail set parse (m3u8-rs, quick-xml) and say what the tiles hold; every tile is a JPEG
//! of the stated size (decoded by ffmpeg) whose every thumbnail resembles the source keyframe
//! at its time (ffmpeg decodes and area-scales the source frame; PSNR against our cell); an
//! HEVC-only asset lists none; bad times are 404; `[thumbnails]` is validated.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ffmpeg_bin, get_blocking, run, TestServer};
use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

/// 3 thumbnails a tile, one a second: the 8 s fixtures (keyframes every 2 s) make tiles at
/// 0, 3 and 6 s, the last with 2 thumbnails, and cells that fall between keyframes.
const THUMBS: &str = "[thumbnails]\ncolumns = 3\nrows = 1\nwidth = 240\ninterval_secs = 1\nquality = 90\n";

/// Each cell against ffmpeg's picture of its keyframe (converted to RGB, then area-scaled):
/// measured 37.3–38.8 dB at quality 90, while the fixture's other keyframes score 12–14 dB
/// against the same cell, so a wrong keyframe or a misplaced cell fails.
const MIN_PSNR_DB: f64 = 30.0;

fn server(extra: &str) -> TestServer {
    let mut text = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for (id, asset) in [("loc-ladder", "ladder"), ("loc-hevc", "hevc")] {
        text.push_str(&common::clear_locator_toml(id, asset));
    }
    text.push_str(extra);
    let config = Config::parse(&text, common::fixtures_dir()).expect("test config parses");
    TestServer::serve(Origin::from_config(&config).expect("origin"), config.http.clone())
}

fn ladder(server: &TestServer, rest: &str) -> String {
    server.url(&format!("/loc-ladder/ladder.ism/{rest}"))
}

/// The one `#EXT-X-IMAGE-STREAM-INF` of a multivariant playlist, as m3u8-rs keeps it.
fn image_stream(text: &str) -> Option<String> {
    let m3u8_rs::Playlist::MasterPlaylist(pl) = m3u8_rs::parse_playlist_res(text.as_bytes()).expect("parses") else {
        panic!("not a multivariant playlist:\n{text}");
    };
    let tags: Vec<String> = pl
        .unknown_tags
        .iter()
        .filter(|t| t.tag == "X-IMAGE-STREAM-INF")
        .map(|t| t.rest.clone().unwrap_or_default())
        .collect();
    assert!(tags.len() <= 1, "{tags:?}");
    tags.into_iter().next()
}

fn attribute<'a>(attrs: &'a str, name: &str) -> &'a str {
    let at = attrs.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {attrs}")) + name.len() + 1;
    let rest = &attrs[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"').unwrap()]
    } else {
        &rest[..rest.find(',').unwrap_or(rest.len())]
    }
}

/// (tile URI, EXTINF seconds, EXT-X-TILES attributes) of an image playlist, via m3u8-rs.
fn image_playlist(text: &str) -> Vec<(String, f32, String)> {
    let m3u8_rs::Playlist::MediaPlaylist(pl) = m3u8_rs::parse_playlist_res(text.as_bytes()).expect("parses") else {
        panic!("not a media playlist:\n{text}");
    };
    assert!(pl.end_list && pl.version == Some(7), "{text}");
    assert!(text.contains("\n#EXT-X-IMAGES-ONLY\n"), "{text}");
    pl.segments
        .iter()
        .map(|s| {
            let tiles: Vec<&m3u8_rs::ExtTag> = s.unknown_tags.iter().filter(|t| t.tag == "X-TILES").collect();
            assert_eq!(tiles.len(), 1, "one EXT-X-TILES per tile: {text}");
            (s.uri.clone(), s.duration, tiles[0].rest.clone().unwrap_or_default())
        })
        .collect()
}

/// The DASH image AdaptationSet, read with quick-xml: (tile width, height, layout value,
/// timescale, media template, tile times and durations).
#[derive(Debug)]
struct ImageSet {
    width: u32,
    height: u32,
    layout: String,
    timescale: u64,
    media: String,
    tiles: Vec<(u64, u64)>,
}

fn image_sets(mpd: &str) -> Vec<ImageSet> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(mpd);
    let mut sets = Vec::new();
    let mut in_image = false;
    let mut next_t = 0u64;
    loop {
        let event = reader.read_event().expect("MPD is XML");
        let (Event::Start(e) | Event::Empty(e)) = &event else {
            if let Event::End(e) = &event {
                if e.name().as_ref() == "AdaptationSet" {
                    in_image = false;
                }
            }
            if matches!(event, Event::Eof) {
                break;
            }
            continue;
        };
        let attr = |name: &str| {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == name)
                .map(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).expect("attribute").into_owned())
        };
        match e.name().as_ref() {
            "AdaptationSet" if attr("contentType").as_deref() == Some("image") => {
                assert_eq!(attr("mimeType").as_deref(), Some("image/jpeg"));
                in_image = true;
                sets.push(ImageSet {
                    width: 0,
                    height: 0,
                    layout: String::new(),
                    timescale: 0,
                    media: String::new(),
                    tiles: Vec::new(),
                });
            }
            _ if !in_image => {}
            "Representation" => {
                let set = sets.last_mut().unwrap();
                set.width = attr("width").expect("width").parse().unwrap();
                set.height = attr("height").expect("height").parse().unwrap();
                assert!(attr("bandwidth").expect("bandwidth").parse::<u64>().unwrap() > 0);
            }
            "EssentialProperty" => {
                assert_eq!(attr("schemeIdUri").as_deref(), Some("http://dashif.org/thumbnail_tile"));
                sets.last_mut().unwrap().layout = attr("value").expect("value");
            }
            "SegmentTemplate" => {
                let set = sets.last_mut().unwrap();
                set.timescale = attr("timescale").expect("timescale").parse().unwrap();
                set.media = attr("media").expect("media");
            }
            "S" => {
                if let Some(t) = attr("t") {
                    next_t = t.parse().unwrap();
                }
                let d: u64 = attr("d").expect("d").parse().unwrap();
                for _ in 0..=attr("r").map_or(0, |r| r.parse::<u64>().unwrap()) {
                    sets.last_mut().unwrap().tiles.push((next_t, d));
                    next_t += d;
                }
            }
            _ => {}
        }
    }
    sets
}

/// A JPEG decoded by ffmpeg: (width, height, RGB).
fn decode_jpeg(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tile.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height"])
        .args(["-of", "csv=p=0"])
        .arg(&path))
    .expect("ffprobe reads the tile");
    let probe = String::from_utf8(probe).unwrap();
    let fields: Vec<&str> = probe.trim().split(',').collect();
    assert_eq!(fields[0], "mjpeg", "{probe}");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let rgb = run(Command::new(ffmpeg_bin())
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-pix_fmt", "rgb24", "-f", "rawvideo", "-"]))
    .expect("ffmpeg decodes the tile");
    assert_eq!(rgb.len(), (w * h * 3) as usize);
    (w, h, rgb)
}

/// Every keyframe of `file`: (presentation seconds from the first frame, RGB scaled to `w`x`h`
/// with ffmpeg's area filter).
fn source_keyframes(file: &Path, w: u32, h: u32) -> Vec<(f64, Vec<u8>)> {
    let times = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(file))
    .expect("ffprobe lists keyframes");
    let times: Vec<f64> = String::from_utf8(times)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect();
    let raw = run(Command::new(ffmpeg_bin())
        .args(["-v", "error", "-skip_frame", "nokey", "-i"])
        .arg(file)
        .args(["-vf", &format!("format=rgb24,scale={w}:{h}:flags=area"), "-vsync", "passthrough"])
        .args(["-pix_fmt", "rgb24", "-f", "rawvideo", "-"]))
    .expect("ffmpeg decodes keyframes");
    let size = (w * h * 3) as usize;
    assert_eq!(raw.len(), size * times.len(), "one picture per keyframe");
    let first = times[0];
    times.iter().zip(raw.chunks_exact(size)).map(|(t, rgb)| (t - first, rgb.to_vec())).collect()
}

/// PSNR of cell (`col`, `row`) (`w`x`h`) of a `tile_w`-wide tile against `expected`.
fn cell_psnr(tile: &[u8], tile_w: u32, col: u32, row: u32, w: u32, h: u32, expected: &[u8]) -> f64 {
    let mut sum = 0f64;
    for y in 0..h {
        let at = (((row * h + y) * tile_w + col * w) * 3) as usize;
        let ours = &tile[at..at + (w * 3) as usize];
        let theirs = &expected[(y * w * 3) as usize..((y + 1) * w * 3) as usize];
        sum += ours.iter().zip(theirs).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum::<f64>();
    }
    let mse = sum / f64::from(w * h * 3);
    10.0 * (255f64.powi(2) / mse.max(1e-9)).log10()
}

#[test]
fn hls_and_dash_list_the_tiles_and_each_thumbnail_is_its_keyframe() {
    let server = server(THUMBS);
    // HLS: the image stream, on the 256x144 rendition (the lowest at least 134 high).
    let multivariant = get_blocking(&ladder(&server, "manifest(format=m3u8-cmaf).m3u8")).ok().text();
    let stream = image_stream(&multivariant).expect("an EXT-X-IMAGE-STREAM-INF");
    // One thumbnail's size (the grid is in the image playlist's EXT-X-TILES).
    assert_eq!(attribute(&stream, "RESOLUTION"), "240x134", "{stream}");
    assert_eq!(attribute(&stream, "CODECS"), "jpeg", "{stream}");
    assert!(attribute(&stream, "BANDWIDTH").parse::<u64>().unwrap() > 0);
    let uri = attribute(&stream, "URI");
    assert_eq!(uri, "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,type=thumbnails).m3u8");
    let playlist_url = ladder(&server, uri);
    let hls = image_playlist(&get_blocking(&playlist_url).ok().text());
    let hls_uris: Vec<&str> = hls.iter().map(|(u, _, _)| u.as_str()).collect();
    // Tile times are in the track's timescale (12288), from its first presentation time
    // (1024: the B-frame delay), as segment URLs are.
    assert_eq!(
        hls_uris,
        ["Thumbnails(video=1024).jpg", "Thumbnails(video=37888).jpg", "Thumbnails(video=74752).jpg"],
        "{hls:?}"
    );
    let first_segment = get_blocking(&ladder(&server, "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf)")).ok();
    assert!(first_segment.text().contains("Fragments(video=1024,"), "{}", first_segment.text());
    for (_, duration, tiles) in &hls {
        assert_eq!(tiles, "RESOLUTION=240x134,LAYOUT=3x1,DURATION=1.000");
        assert!(*duration > 0.0);
    }
    assert_eq!([hls[0].1, hls[1].1, hls[2].1], [3.0, 3.0, 2.0]);

    // DASH: the same tiles, addressed by $Time$ like media segments.
    let mpd = get_blocking(&ladder(&server, "manifest(format=mpd-time-cmaf).mpd")).ok().text();
    let sets = image_sets(&mpd);
    assert_eq!(sets.len(), 1, "{mpd}");
    let set = &sets[0];
    assert_eq!((set.width, set.height, set.layout.as_str()), (720, 134, "3x1"), "{set:?}");
    assert_eq!(set.media, "QualityLevels(150000)/Thumbnails(video=$Time$).jpg");
    let ticks = |s: f64| (s * set.timescale as f64).round() as u64;
    let t0 = 1024;
    // The last tile's S@d covers its whole grid too (players spread thumbnails over it).
    assert_eq!(set.tiles, [(t0, ticks(3.0)), (t0 + ticks(3.0), ticks(3.0)), (t0 + ticks(6.0), ticks(3.0))], "{set:?}");

    // Every tile: a JPEG of the stated size; every thumbnail: its keyframe.
    let source = common::fixtures_dir().join("ladder/video_150k.mp4");
    let keyframes = source_keyframes(&source, 240, 134);
    assert_eq!(keyframes.len(), 4);
    let mut scores = Vec::new();
    for (uri, duration, _) in &hls {
        let got = get_blocking(&server.url(&format!("/loc-ladder/ladder.ism/QualityLevels(150000)/{uri}"))).ok();
        assert_eq!(got.header("content-type"), Some("image/jpeg"));
        let (w, h, rgb) = decode_jpeg(&got.body);
        assert_eq!((w, h), (720, 134), "{uri}");
        let dash = set.media.replace("$Time$", &uri["Thumbnails(video=".len()..uri.find(')').unwrap()]);
        let same = get_blocking(&ladder(&server, &dash)).ok();
        assert_eq!(same.body, got.body, "HLS and DASH share tiles");
        let time: u64 = uri["Thumbnails(video=".len()..uri.find(')').unwrap()].parse().unwrap();
        let tile_start = (time - t0) as f64 / set.timescale as f64;
        let cells = duration.ceil() as u32;
        for c in 0..cells {
            let at = tile_start + f64::from(c);
            let (kt, expected) = keyframes.iter().rev().find(|(t, _)| *t <= at + 1e-6).expect("a keyframe before");
            let psnr = cell_psnr(&rgb, w, c, 0, 240, 134, expected);
            // The other keyframes must score worse: the cell shows this one.
            let best_other = keyframes
                .iter()
                .filter(|(t, _)| t != kt)
                .map(|(_, other)| cell_psnr(&rgb, w, c, 0, 240, 134, other))
                .fold(f64::MIN, f64::max);
            scores.push(format!("{uri} cell {c} (keyframe {kt} s): {psnr:.1} dB, best other {best_other:.1} dB"));
            assert!(psnr >= MIN_PSNR_DB && psnr > best_other + 10.0, "{}", scores.join("\n"));
        }
        // Cells past the track's end stay black.
        for c in cells..3 {
            let black = vec![0u8; 240 * 134 * 3];
            assert!(cell_psnr(&rgb, w, c, 0, 240, 134, &black) > 40.0, "{uri} cell {c} is not black");
        }
    }
    eprintln!("{}", scores.join("\n"));
}

#[test]
fn bad_tiles_and_non_h264_assets_have_no_thumbnails() {
    let server = server(THUMBS);
    for time in ["0", "1025", "37887", "111616", "99999999999999"] {
        let got = get_blocking(&ladder(&server, &format!("QualityLevels(150000)/Thumbnails(video={time}).jpg")));
        assert_eq!(got.status, 404, "{}", got.describe());
    }
    // An audio track and an unknown bitrate have none either.
    for rest in ["QualityLevels(128000)/Thumbnails(audio_eng=0)", "QualityLevels(7)/Thumbnails(video=0)"] {
        let got = get_blocking(&ladder(&server, rest));
        assert_eq!(got.status, 404, "{}", got.describe());
    }
    // Any H.264 rendition has tiles at the same times, not only the listed one.
    let got = get_blocking(&ladder(&server, "QualityLevels(600000)/Thumbnails(video=37888).jpg")).ok();
    assert_eq!(decode_jpeg(&got.body).0, 720);

    // HEVC: openh264 decodes H.264 only, so the asset lists no thumbnail track.
    let hevc = |rest: &str| server.url(&format!("/loc-hevc/hevc.ism/{rest}"));
    let multivariant = get_blocking(&hevc("manifest(format=m3u8-cmaf)")).ok().text();
    assert_eq!(image_stream(&multivariant), None, "{multivariant}");
    let mpd = get_blocking(&hevc("manifest(format=mpd-time-cmaf)")).ok().text();
    assert!(image_sets(&mpd).is_empty(), "{mpd}");
    // The video variant's `QualityLevels(b)/Manifest(name,…)`.
    let q = multivariant.find("\nQualityLevels(").expect("a variant") + "\nQualityLevels(".len();
    let (bitrate, rest) = multivariant[q..].split_once(")/Manifest(").unwrap();
    let name = &rest[..rest.find(',').unwrap()];
    let got = get_blocking(&hevc(&format!("QualityLevels({bitrate})/Thumbnails({name}=0)")));
    assert_eq!(got.status, 404, "{}", got.describe());
    assert!(got.text().contains("H.264"), "{}", got.describe());
}

#[test]
fn thumbnails_can_be_turned_off_and_follow_filter_windows() {
    let off = server(&format!("{THUMBS}enabled = false\n"));
    let multivariant = get_blocking(&ladder(&off, "manifest(format=m3u8-cmaf)")).ok().text();
    assert_eq!(image_stream(&multivariant), None);
    assert!(image_sets(&get_blocking(&ladder(&off, "manifest(format=mpd-time-cmaf)")).ok().text()).is_empty());
    let got = get_blocking(&ladder(&off, "QualityLevels(150000)/Thumbnails(video=0)"));
    assert_eq!(got.status, 404, "{}", got.describe());
    assert!(got.text().contains("enabled = false"), "{}", got.describe());

    // A window from 4 s lists the tiles that overlap it, at their unfiltered times.
    let late = server(&format!("{THUMBS}[[filter]]\nname = \"late\"\nstart_secs = 4\n"));
    let multivariant = get_blocking(&ladder(&late, "manifest(format=m3u8-cmaf,filter=late)")).ok().text();
    let stream = image_stream(&multivariant).expect("an image stream");
    let uri = attribute(&stream, "URI");
    assert!(uri.contains("filter=late"), "{uri}");
    let tiles = image_playlist(&get_blocking(&ladder(&late, uri)).ok().text());
    let uris: Vec<&str> = tiles.iter().map(|(u, _, _)| u.as_str()).collect();
    assert_eq!(uris, ["Thumbnails(video=37888)", "Thumbnails(video=74752)"]);
    let sets = image_sets(&get_blocking(&ladder(&late, "manifest(format=mpd-time-cmaf,filter=late)")).ok().text());
    let times: Vec<u64> = sets[0].tiles.iter().map(|t| t.0).collect();
    assert_eq!(times, [37888, 74752]);
}

#[test]
fn thumbnail_config_is_validated() {
    let base = format!("listen = \"127.0.0.1:0\"\n{}", common::fixtures_storage_toml());
    for (table, expected) in [
        ("columns = 0", "columns = 0: must be between 1 and 16"),
        ("rows = 17", "rows = 17: must be between 1 and 16"),
        ("width = 241", "width = 241: must be even"),
        ("width = 8", "width = 8: must be between 16 and 1920"),
        ("quality = 0", "quality = 0: must be between 1 and 100"),
        ("interval_secs = 0", "interval_secs = 0"),
        ("max_concurrent_builds = 0", "max_concurrent_builds = 0"),
        ("columns = 10\nrows = 10", "at most 64 thumbnails per tile"),
        ("colums = 3", "unknown field"),
    ] {
        let text = format!("{base}[thumbnails]\n{table}\n");
        let err = Config::parse(&text, common::fixtures_dir()).err().unwrap_or_else(|| panic!("{table} accepted"));
        let err = err.to_string();
        assert!(err.contains(expected) && err.contains("line "), "{table}: {err}");
    }
    let ok =
        Config::parse(&format!("{base}[thumbnails]\ncolumns = 8\nrows = 8\nwidth = 320\n"), common::fixtures_dir());
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
}
