#!/usr/bin/env bash
# Makes the 720p rendition used by the "uncached segment" load scenario: 1280x720 24 fps
# H.264 at a constant 3 Mbit/s (x264 CBR with filler, so every segment has the same size)
# with a 4 s GOP (-g 96), plus 128 kbit/s AAC, muxed, moov first. One segment = one GOP =
# 4 s x 3 Mbit/s ~= 1.5 MB of video, the size the issue's target is stated for.
# A 60 s clip is encoded once and looped with -c copy up to MINUTES (default 60 → 900 video
# segments, ~1.4 GB): enough distinct segments that 64–256 connections each get many.
# Usage: benches/load/make-720p-asset.sh OUT.mp4 [MINUTES]   (no-op when OUT exists)
set -euo pipefail
out=$1
minutes=${2:-60}
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ffmpeg -v error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=24" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
  -c:v libx264 -preset veryfast -b:v 3M -minrate 3M -maxrate 3M -bufsize 3M \
  -x264-params "nal-hrd=cbr:open-gop=0" -g 96 -keyint_min 96 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 128k -ac 2 -map_metadata -1 "$tmp/clip.mp4"
ffmpeg -v error -nostdin -y -stream_loop $((minutes - 1)) -i "$tmp/clip.mp4" -c copy -movflags +faststart \
  -map_metadata -1 "$tmp/long720.mp4"
mv "$tmp/long720.mp4" "$out"
