//! Thumbnail tiles: the keyframes a [`TilePlan`] names, decoded, scaled down and laid out in a
//! grid, as one JPEG.
//!
//! Decoding is openh264 (Cisco's H.264 decoder, built from its bundled C source by `cc`: BSD-2,
//! nothing to install) rather than ffmpeg's libraries, which every build machine would need as
//! `libav*-dev`; JPEG is jpeg-encoder (pure Rust). Both are behind the `thumbnails` feature.
//! The work is CPU-bound: [`TileJob`] owns its input so the origin runs it on a blocking
//! thread.
//!
//! Scaling is an area average of the decoded YUV 4:2:0 planes down to the thumbnail size, then
//! YUV → RGB per output pixel: the conversion is affine, so averaging before it equals
//! averaging the RGB picture (up to clamping), at a fraction of the cost.

// Without the decoder (no `thumbnails` feature) the scaler has no caller but its tests.
#![cfg_attr(not(feature = "thumbnails"), allow(dead_code))]

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::output::{ts, Output};
use crate::plan::reads::SourceSpan;
use crate::plan::thumbnails::TilePlan;

pub const JPEG_CONTENT_TYPE: &str = "image/jpeg";

/// Everything one tile build needs, owned (it runs away from the request's borrows).
#[derive(Debug)]
pub struct TileJob {
    /// The source file, for errors.
    file: String,
    /// Each thumbnail's keyframe as an Annex B access unit, row by row.
    cells: Vec<Vec<u8>>,
    thumb: (u32, u32),
    columns: u32,
    rows: u32,
    quality: u8,
}

/// The job of tile `plan` from the bytes its reads fetched.
pub fn tile_job(plan: &TilePlan<'_>, span: &SourceSpan) -> Result<TileJob> {
    let track = plan.track;
    let index = track.index();
    let cells = plan
        .samples
        .iter()
        .map(|&i| ts::annex_b_sample(index, span, i as usize).map_err(|e| Error::media(&track.file, e)))
        .collect::<Result<Vec<_>>>()?;
    let s = &plan.settings;
    Ok(TileJob {
        file: track.file.clone(),
        cells,
        thumb: s.thumbnail_size(track),
        columns: s.columns,
        rows: s.rows,
        quality: s.quality,
    })
}

impl TileJob {
    /// Decodes, scales and lays out every thumbnail, and encodes the tile. Cells past the
    /// track's end stay black.
    pub fn build(self) -> Result<Output> {
        let (w, h) = (self.thumb.0 as usize, self.thumb.1 as usize);
        let (tile_w, tile_h) = (w * self.columns as usize, h * self.rows as usize);
        let mut canvas = vec![0u8; tile_w * tile_h * 3];
        let mut decoder = decode::Decoder::new().map_err(|e| Error::media(&self.file, e))?;
        let mut times = Times::default();
        for (cell, unit) in self.cells.iter().enumerate() {
            let rgb = decoder
                .decode_scaled(unit, w, h, &mut times)
                .map_err(|e| Error::media(&self.file, format!("thumbnail {cell}: {e}")))?;
            let (col, row) = (cell % self.columns as usize, cell / self.columns as usize);
            paste(&mut canvas, tile_w, &rgb, w, h, col * w, row * h);
        }
        let started = std::time::Instant::now();
        let jpeg =
            decode::encode_jpeg(&canvas, tile_w, tile_h, self.quality).map_err(|e| Error::media(&self.file, e))?;
        tracing::debug!(
            file = %self.file,
            thumbnails = self.cells.len(),
            decode_ms = times.decode.as_millis() as u64,
            scale_ms = times.scale.as_millis() as u64,
            encode_ms = started.elapsed().as_millis() as u64,
            "thumbnail tile built"
        );
        Ok(Output::media(JPEG_CONTENT_TYPE, vec![Bytes::from(jpeg)]))
    }
}

/// Where a tile's time goes (logged at debug level).
#[derive(Default)]
struct Times {
    decode: std::time::Duration,
    scale: std::time::Duration,
}

/// Copies an RGB picture `w`x`h` into `canvas` (`canvas_w` wide) at (`x`, `y`); what falls
/// outside is left out.
fn paste(canvas: &mut [u8], canvas_w: usize, rgb: &[u8], w: usize, h: usize, x: usize, y: usize) {
    for (r, line) in rgb.chunks_exact(w * 3).take(h).enumerate() {
        let at = ((y + r) * canvas_w + x) * 3;
        if let Some(dst) = canvas.get_mut(at..at + line.len()) {
            dst.copy_from_slice(line);
        }
    }
}

/// One decoded picture plane: `width` x `height` samples, rows `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

/// For each of `dst` output positions along an axis of `src` input samples: the first input
/// sample it covers and the weight of each covered sample (summing to 1). Area averaging:
/// output pixel `i` covers input `[i·src/dst, (i+1)·src/dst)`; when enlarging that is part of
/// one sample (nearest).
fn area_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (from, to) = (i as f64 * scale, ((i + 1) as f64 * scale).min(src as f64));
            let first = (from.floor() as usize).min(src.saturating_sub(1));
            let last = ((to.ceil() as usize).max(first + 1)).min(src);
            let total = (to - from).max(f64::MIN_POSITIVE);
            let weights = (first..last)
                .map(|k| {
                    let covered = (to.min((k + 1) as f64) - from.max(k as f64)).max(0.0);
                    (covered / total) as f32
                })
                .collect();
            (first, weights)
        })
        .collect()
}

/// `plane` area-averaged to `dw` x `dh`; `None` when its buffer is shorter than its size says.
fn scale_plane(plane: Plane<'_>, dw: usize, dh: usize) -> Option<Vec<f32>> {
    let (sw, sh) = (plane.width, plane.height);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 || plane.stride < sw {
        return None;
    }
    if plane.data.len() < (sh - 1) * plane.stride + sw {
        return None;
    }
    let (xs, ys) = (area_weights(sw, dw), area_weights(sh, dh));
    // Horizontal pass over every source row, then vertical.
    let mut rows = vec![0f32; sh * dw];
    for y in 0..sh {
        let line = &plane.data[y * plane.stride..y * plane.stride + sw];
        for (x, (first, weights)) in xs.iter().enumerate() {
            rows[y * dw + x] = weights.iter().zip(&line[*first..]).map(|(w, &v)| w * f32::from(v)).sum();
        }
    }
    let mut out = vec![0f32; dw * dh];
    for (y, (first, weights)) in ys.iter().enumerate() {
        for (k, w) in weights.iter().enumerate() {
            let row = &rows[(first + k) * dw..(first + k + 1) * dw];
            for (o, v) in out[y * dw..(y + 1) * dw].iter_mut().zip(row) {
                *o += w * v;
            }
        }
    }
    Some(out)
}

/// Scaled Y, U and V planes (same size) → interleaved RGB. BT.601 limited range: what
/// decoders and ffmpeg assume for untagged video, which the index does not tell apart.
fn yuv_to_rgb(y: &[f32], u: &[f32], v: &[f32]) -> Vec<u8> {
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    let mut out = Vec::with_capacity(y.len() * 3);
    for ((&y, &u), &v) in y.iter().zip(u).zip(v) {
        let (c, d, e) = (1.164_383 * (y - 16.0), u - 128.0, v - 128.0);
        out.extend_from_slice(&[
            clamp(c + 1.596_027 * e),
            clamp(c - 0.391_762 * d - 0.812_968 * e),
            clamp(c + 2.017_232 * d),
        ]);
    }
    out
}

/// A decoded I420 picture scaled to `w` x `h` RGB.
fn scale_i420(y: Plane<'_>, u: Plane<'_>, v: Plane<'_>, w: usize, h: usize) -> Option<Vec<u8>> {
    Some(yuv_to_rgb(&scale_plane(y, w, h)?, &scale_plane(u, w, h)?, &scale_plane(v, w, h)?))
}

#[cfg(feature = "thumbnails")]
mod decode {
    use openh264::formats::YUVSource;

    use std::time::Instant;

    use super::{scale_i420, Plane, Times};

    pub(super) struct Decoder(openh264::decoder::Decoder);

    impl Decoder {
        pub(super) fn new() -> Result<Self, String> {
            openh264::decoder::Decoder::new().map(Decoder).map_err(|e| format!("H.264 decoder: {e}"))
        }

        /// Decodes one access unit (parameter sets and a keyframe) and scales it to `w` x `h`.
        pub(super) fn decode_scaled(
            &mut self,
            unit: &[u8],
            w: usize,
            h: usize,
            times: &mut Times,
        ) -> Result<Vec<u8>, String> {
            let started = Instant::now();
            let decoder = &mut self.0;
            let picture = match decoder.decode(unit).map_err(|e| format!("H.264 decoding failed: {e}"))? {
                Some(picture) => picture,
                None => decoder
                    .flush_remaining()
                    .map_err(|e| format!("H.264 decoding failed: {e}"))?
                    .pop()
                    .ok_or("the keyframe decoded to no picture")?,
            };
            let decoded = Instant::now();
            times.decode += decoded - started;
            let (width, height) = picture.dimensions();
            let (ys, us, vs) = picture.strides();
            let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
            let y = Plane { data: picture.y(), stride: ys, width, height };
            let u = Plane { data: picture.u(), stride: us, width: cw, height: ch };
            let v = Plane { data: picture.v(), stride: vs, width: cw, height: ch };
            let rgb =
                scale_i420(y, u, v, w, h).ok_or_else(|| format!("decoded picture {width}x{height} has short planes"));
            times.scale += decoded.elapsed();
            rgb
        }
    }

    pub(super) fn encode_jpeg(rgb: &[u8], w: usize, h: usize, quality: u8) -> Result<Vec<u8>, String> {
        let (w16, h16) = (u16::try_from(w), u16::try_from(h));
        let (Ok(w16), Ok(h16)) = (w16, h16) else { return Err(format!("tile {w}x{h} is too large for JPEG")) };
        let mut out = Vec::with_capacity(w * h / 4);
        jpeg_encoder::Encoder::new(&mut out, quality)
            .encode(rgb, w16, h16, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| format!("JPEG encoding failed: {e}"))?;
        Ok(out)
    }
}

/// Without the `thumbnails` feature no track has thumbnails (the plan refuses tiles first);
/// these keep the job's type whole.
#[cfg(not(feature = "thumbnails"))]
mod decode {
    const OFF: &str = "thumbnail tiles need a build with the 'thumbnails' cargo feature";

    use super::Times;

    pub(super) struct Decoder;

    impl Decoder {
        pub(super) fn new() -> Result<Self, String> {
            Err(OFF.into())
        }
        pub(super) fn decode_scaled(&mut self, _: &[u8], _: usize, _: usize, _: &mut Times) -> Result<Vec<u8>, String> {
            Err(OFF.into())
        }
    }

    pub(super) fn encode_jpeg(_: &[u8], _: usize, _: usize, _: u8) -> Result<Vec<u8>, String> {
        Err(OFF.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: &[u8], width: usize, height: usize) -> Plane<'_> {
        Plane { data, stride: width, width, height }
    }

    #[test]
    fn area_weights_cover_each_output_once() {
        for (src, dst) in [(1920, 240), (1280, 240), (7, 3), (3, 7), (100, 100), (1, 5)] {
            let weights = area_weights(src, dst);
            assert_eq!(weights.len(), dst);
            for (first, w) in &weights {
                let sum: f32 = w.iter().sum();
                assert!((sum - 1.0).abs() < 1e-4, "{src}->{dst}: weights sum to {sum}");
                assert!(first + w.len() <= src);
            }
        }
    }

    #[test]
    fn scaling_averages_areas() {
        // 4x2 → 2x1: each output is the mean of a 2x2 block.
        let data = [0, 100, 200, 40, 20, 80, 0, 0];
        let out = scale_plane(plane(&data, 4, 2), 2, 1).unwrap();
        assert_eq!(out.len(), 2);
        assert!((out[0] - 50.0).abs() < 1e-3, "{out:?}");
        assert!((out[1] - 60.0).abs() < 1e-3, "{out:?}");
        // 3 → 2: output 0 covers input 0 and half of input 1.
        let out = scale_plane(plane(&[30, 90, 150], 3, 1), 2, 1).unwrap();
        assert!((out[0] - 50.0).abs() < 1e-3 && (out[1] - 130.0).abs() < 1e-3, "{out:?}");
        // A flat picture stays flat at any size; strides past the width are skipped.
        let padded: Vec<u8> = (0..10).flat_map(|_| [77u8; 6].into_iter().chain([255, 255])).collect();
        let flat = scale_plane(Plane { data: &padded, stride: 8, width: 6, height: 10 }, 4, 3).unwrap();
        assert!(flat.iter().all(|v| (v - 77.0).abs() < 1e-3), "{flat:?}");
        // A buffer shorter than its size says is refused, not read past.
        assert!(scale_plane(plane(&data[..7], 4, 2), 2, 1).is_none());
        assert!(scale_plane(plane(&data, 4, 2), 0, 1).is_none());
    }

    #[test]
    fn bt601_colours() {
        let rgb = yuv_to_rgb(&[16.0, 235.0, 81.0], &[128.0, 128.0, 90.0], &[128.0, 128.0, 240.0]);
        assert_eq!(&rgb[..6], &[0, 0, 0, 255, 255, 255]);
        // BT.601 red (Y 81, Cb 90, Cr 240) → ~(255, 0, 0).
        assert!(rgb[6] >= 250 && rgb[7] <= 5 && rgb[8] <= 5, "{:?}", &rgb[6..]);
    }

    /// A keyframe that is no H.264 (a corrupt or hostile file) fails the tile with the file
    /// named, and never panics.
    #[cfg(feature = "thumbnails")]
    #[test]
    fn garbage_keyframes_fail_naming_the_file() {
        for unit in
            [vec![], vec![0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13], (0..4000).map(|i| (i * 37 % 256) as u8).collect()]
        {
            let job = TileJob {
                file: "x/bad.mp4".into(),
                cells: vec![unit],
                thumb: (16, 8),
                columns: 2,
                rows: 1,
                quality: 75,
            };
            match job.build() {
                Err(Error::Media { file, reason }) => {
                    assert!(file == "x/bad.mp4" && reason.contains("thumbnail 0"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn paste_places_cells_and_clips() {
        let mut canvas = vec![0u8; 4 * 2 * 3];
        paste(&mut canvas, 4, &[9; 2 * 2 * 3], 2, 2, 2, 0);
        assert_eq!(&canvas[..6], &[0; 6]);
        assert_eq!(&canvas[6..12], &[9; 6]);
        assert_eq!(&canvas[18..24], &[9; 6]);
        // Outside the canvas: nothing written, no panic.
        paste(&mut canvas, 4, &[5; 2 * 2 * 3], 2, 2, 4, 4);
    }
}
