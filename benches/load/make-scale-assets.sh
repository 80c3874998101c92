#!/usr/bin/env bash
# Makes the assets of the scale scenarios (benches/load.sh SCENARIOS=scale) from the 2-hour
# asset, with -c copy only (seconds, no encoding):
#   DIR/long-asset-24h/long24.mp4   the 2-hour MP4 looped 12 times: 24 hours, 43,200 segments
#   DIR/scale-clip/clip.mp4         its first 10 s, the one asset of the many-assets scenario
# Usage: benches/load/make-scale-assets.sh LONG.mp4 DIR   (no-op for the files that exist)
set -euo pipefail
long=$1 dir=$2
if [ ! -s "$dir/long-asset-24h/long24.mp4" ]; then
  mkdir -p "$dir/long-asset-24h"
  ffmpeg -v error -nostdin -y -stream_loop 11 -i "$long" -c copy -movflags +faststart \
    -map_metadata -1 "$dir/long-asset-24h/long24.tmp.mp4"
  mv "$dir/long-asset-24h/long24.tmp.mp4" "$dir/long-asset-24h/long24.mp4"
fi
if [ ! -s "$dir/scale-clip/clip.mp4" ]; then
  mkdir -p "$dir/scale-clip"
  ffmpeg -v error -nostdin -y -i "$long" -t 10 -c copy -movflags +faststart -map_metadata -1 \
    "$dir/scale-clip/clip.tmp.mp4"
  mv "$dir/scale-clip/clip.tmp.mp4" "$dir/scale-clip/clip.mp4"
fi
