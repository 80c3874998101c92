#!/usr/bin/env bash
# Makes the live benchmark's source: 3 H.264 renditions (1280x720 1500k, 960x540 800k,
# 640x360 400k; 25 fps, closed 2 s GOPs) and one AAC track in one Matroska file, which
# benches/live.sh pushes at real time with -c copy (one RTMP stream per rendition, each with
# the audio), as a pass-through encoder would.
# Usage: benches/live/make-source.sh OUT.mkv SECONDS   (no-op when OUT exists and is as long)
set -euo pipefail
out=$1
secs=$2
if [ -s "$out" ]; then
  have=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$out" | cut -d. -f1)
  [ "${have:-0}" -ge "$secs" ] && exit 0
fi
mkdir -p "$(dirname "$out")"
ffmpeg -v error -nostdin -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$secs" \
  -filter_complex '[0:v]split=3[a][b][c];[b]scale=960:540[m];[c]scale=640:360[s]' \
  -map '[a]' -map '[m]' -map '[s]' -map 1:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -x264-params open-gop=0 \
  -b:v:0 1500k -maxrate:v:0 1800k -bufsize:v:0 3000k \
  -b:v:1 800k -maxrate:v:1 1000k -bufsize:v:1 1600k \
  -b:v:2 400k -maxrate:v:2 500k -bufsize:v:2 800k \
  -c:a aac -b:a 96k -map_metadata -1 "$out.tmp.mkv"
mv "$out.tmp.mkv" "$out"
