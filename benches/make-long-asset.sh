#!/usr/bin/env bash
# Makes the 2-hour 360p H.264 + AAC progressive MP4 (muxed, moov first) used by the
# benchmarks and the long-asset test: a 60 s clip encoded once, looped 120 times with -c copy.
# Usage: benches/make-long-asset.sh OUT.mp4   (no-op when OUT exists)
set -euo pipefail
out=$1
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ffmpeg -v error -nostdin -y \
  -f lavfi -i "testsrc2=size=640x360:rate=24" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
  -c:v libx264 -preset veryfast -b:v 400k -maxrate 600k -bufsize 800k \
  -g 48 -keyint_min 48 -sc_threshold 0 -x264-params open-gop=0 \
  -c:a aac -b:a 64k -ac 2 -map_metadata -1 "$tmp/clip.mp4"
ffmpeg -v error -nostdin -y -stream_loop 119 -i "$tmp/clip.mp4" -c copy -movflags +faststart \
  -map_metadata -1 "$tmp/long.mp4"
mv "$tmp/long.mp4" "$out"
