#!/usr/bin/env bash
# Load benchmark of `jit-origin serve`: requests/s, latency and — the figure that matters on a
# shared machine — server CPU time per request, for the request kinds that dominate an origin's
# traffic, each beside its static-file floor (nginx serving `jit-origin package` output of the
# same asset, the same walk, the same CPU accounting) and the C peer's reference figure.
#
# Usage: benches/load.sh            (from anywhere; run as root or with wrk/ffmpeg/nginx installed)
#
# What it does:
#   1. installs wrk, ffmpeg and nginx (Debian packages; nginx-light) when missing;
#   2. cargo build --release;
#   3. makes the assets (no-op when present):
#        target/long-asset/long.mp4           2-hour 360p H.264+AAC, 2 s GOPs (benches/make-long-asset.sh)
#        target/long-asset-720p/long720.mp4   720p24 H.264 CBR 3 Mbit/s + AAC, 4 s GOPs, so one video
#                                             segment ~= 1.5 MB; $LONG720_MINUTES long (default 60
#                                             → 900 video segments) (benches/load/make-720p-asset.sh)
#      and, for the floor, `$BIN package --format hls-cmaf` of both into $OUT/static/ (kept while
#      newer than the assets); nginx (one worker process, sendfile, tcp_nopush, keep-alive, access
#      log on like the origin's) serves that folder on another free port for the whole run;
#   4. writes a config (one file:// storage on target/, one locator per asset and protection
#      policy, segment cache of $SEGMENT_MIB MiB), starts the server on a free port, waits for
#      /healthz;
#   5. runs the scenarios with wrk ($THREADS threads, $CONNECTIONS connections, $DURATION s each)
#      through benches/load/paths.lua, which cycles through a list of paths, then the same walk
#      against nginx over the packaged files of the same resources (the floor):
#        multivariant      /{loc}/long-asset.ism/manifest(format=m3u8-cmaf) (cached)
#        media-playlist    the 2-hour asset's video media playlist, 3,600 segments (index and
#                          playlist cached: warmed with one request first)
#        cached-segment    $CACHED_SET video segments spread over the 2-hour asset, warmed first
#        cached-segment-720p  $CACHED_SET_720 720p video segments (~1.5 MB), warmed first
#        cold-playlist     $COLD_ASSETS asset folders holding hard links of the 2-hour MP4 (same
#                          bytes in the page cache, different asset names: different cache keys),
#                          one locator each; each one's video media playlist requested once
#                          (WRK_MODE=once) on a fresh server, so each builds the asset's index from
#                          storage; /metrics must show one asset-cache miss per request
#        uncached-segment  on a freshly started server (the 720p asset's index and media
#                          playlist are loaded first): the first $UNCACHED_WARMUP video segments are
#                          requested once, unmeasured, with the walk's connection count, which
#                          fills the $SEGMENT_MIB MiB segment cache;
#                          then every other video segment URL of the 720p rendition in playlist
#                          order, EACH REQUESTED EXACTLY ONCE (the scenario ends when the walk is
#                          done, not after $DURATION), so every measured request builds its
#                          segment (read from storage + package) and evicts one, as an origin with
#                          a full cache does in production. The walk runs $UNCACHED_WALKS times,
#                          one table row each.
#        uncached-ts, uncached-cenc, uncached-cbcs, uncached-aes128-ts, uncached-aes128-fmp4
#                          the same walk over the 720p asset as HLS TS (format=m3u8-aapl), CMAF
#                          with encryption=cenc and =cbcs-aapl (cenc / cbcs locators), TS and CMAF
#                          with encryption=cbc (AES-128 envelope locator). Their floor is the
#                          clear CMAF files of the same segments: `package` writes neither TS nor
#                          encrypted files.
#        uncached-segment@256 (hammer)  the uncached walk on another fresh server with
#                          $HAMMER_CONNECTIONS connections, sampling the server's RSS every 50 ms:
#                          the memory check.
#        scale (not in the default set)  how the cost grows with the work, on servers of their
#                          own: the 24-hour asset's video playlist cold ($SCALE_COLD hard-linked
#                          copies) and cached; $SCALE_ASSETS 10-second assets loaded (one
#                          hard-linked folder and locator each, one playlist request each, RSS
#                          sampled every $SCALE_STEP assets, the caches' hits/misses/evictions
#                          from /metrics with index_mib = $SCALE_INDEX_MIB); multivariant and
#                          cached-segment-720p at each of $SCALE_CONNECTIONS connections (ulimit -n
#                          raised to its hard limit). Rows cold-playlist-24h, media-playlist-24h,
#                          assets-loaded@N, multivariant@N, cached-segment-720p@N. Writes
#                          $OUT/scale-*.tsv and plots them into docs/bench-scale.svg (benches/plot,
#                          plotters' SVG backend; the duration curve takes its 2-hour points from
#                          media-playlist and cold-playlist when they run too).
#   6. reports, per scenario: req/s, p50/p99 latency (wrk's histogram, via the Lua done() hook),
#      requests, server CPU µs per request = Δ(utime+stime) of the server from /proc/PID/stat over
#      the scenario / requests, and the server's peak RSS (VmHWM); beside it the floor's CPU µs
#      per request (nginx master + worker) and jit / floor, the peer's figure from
#      benches/load/peer-reference.tsv (joined on the scenario name), jit / peer and the issue's
#      target; prints a Markdown table and the machine (nproc, CPU model) for the README. Exits 1
#      if any response was not a 200 (wrk's "Non-2xx or 3xx responses", socket errors or
#      timeouts; in the walks of WRK_MODE=once every status is checked for exactly 200 and every
#      planned URL must have been answered), the floor's included.
#
# Knobs (environment): DURATION=15 CONNECTIONS=64 THREADS=2 HAMMER_CONNECTIONS=256
#   SEGMENT_MIB=256 CACHED_SET=16 CACHED_SET_720=8 LONG720_MINUTES=60 UNCACHED_MAX_SECS=300
#   UNCACHED_WARMUP=250 UNCACHED_WALKS=3 COLD_ASSETS=200
#   FLOOR=1 (0: no nginx, no packaging, no floor columns filled)
#   SCALE_ASSETS=10000 SCALE_STEP=1000 SCALE_COLD=10 SCALE_INDEX_MIB=256
#   SCALE_CONNECTIONS="64 256 2048"
#   OUT=target/load
#   SCENARIOS="multivariant media-playlist cached-segment cached-segment-720p cold-playlist
#     uncached-segment uncached-ts uncached-cenc uncached-cbcs uncached-aes128-ts
#     uncached-aes128-fmp4 hammer" (any subset, plus "scale")
#   BUILD=0 (skip cargo build and use the existing target/release/jit-origin)
#   BIN=PATH (serve with this binary instead, no build; benches/load/compare.sh uses it)
#   RUST_LOG (server log filter; default info = one access-log line per request, as deployed).
# Results: $OUT/results.md (the table), $OUT/results.tsv (the origin's rows; compare.sh reads
# it), $OUT/floor.tsv (the floor's rows), $OUT/summary.tsv (joined with floor and peer), wrk,
# server and nginx logs in $OUT/.
#
# Notes: wrk and the server share the machine, so req/s and latency depend on the core count and
# on whatever else runs; CPU µs/req is the figure to compare. Clock-tick resolution (1/CLK_TCK s)
# makes CPU µs/req of a short walk uncertain by about ±CLK_TCK⁻¹ x 2 / requests.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
HAMMER_CONNECTIONS=${HAMMER_CONNECTIONS:-256}
SEGMENT_MIB=${SEGMENT_MIB:-256}
CACHED_SET=${CACHED_SET:-16}
CACHED_SET_720=${CACHED_SET_720:-8}
LONG720_MINUTES=${LONG720_MINUTES:-60}
UNCACHED_MAX_SECS=${UNCACHED_MAX_SECS:-300}
UNCACHED_WARMUP=${UNCACHED_WARMUP:-250}
UNCACHED_WALKS=${UNCACHED_WALKS:-3}
COLD_ASSETS=${COLD_ASSETS:-200}
FLOOR=${FLOOR:-1}
SCALE_ASSETS=${SCALE_ASSETS:-10000}
SCALE_STEP=${SCALE_STEP:-1000}
SCALE_COLD=${SCALE_COLD:-10}
SCALE_INDEX_MIB=${SCALE_INDEX_MIB:-256}
SCALE_CONNECTIONS=${SCALE_CONNECTIONS:-64 256 2048}
OUT=${OUT:-target/load}
SCENARIOS=${SCENARIOS:-multivariant media-playlist cached-segment cached-segment-720p cold-playlist uncached-segment uncached-ts uncached-cenc uncached-cbcs uncached-aes128-ts uncached-aes128-fmp4 hammer}
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
want_any() { local s; for s in "$@"; do want "$s" && return 0; done; return 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT"/server-*.log "$OUT"/wrk-*.log "$OUT"/done-* "$OUT"/metrics-*.txt "$OUT"/scale-*.tsv
LUA=$ROOT/benches/load/paths.lua
PEER=$ROOT/benches/load/peer-reference.tsv
CLK_TCK=$(getconf CLK_TCK)

LOG_TAG=load
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

# --- 1. tools ---------------------------------------------------------------------------------
need_tools wrk:wrk ffmpeg:ffmpeg curl:curl
[ "$FLOOR" != 1 ] || need_tools nginx:nginx-light

# --- 2. build ---------------------------------------------------------------------------------
build_release

# --- 3. assets --------------------------------------------------------------------------------
log "assets (made once; kept in target/)"
benches/make-long-asset.sh target/long-asset/long.mp4
benches/load/make-720p-asset.sh target/long-asset-720p/long720.mp4 "$LONG720_MINUTES"
want scale && benches/load/make-scale-assets.sh target/long-asset/long.mp4 target

# link_assets SOURCE_MP4 PREFIX COUNT: asset folders $OUT/assets/PREFIX-00000 … PREFIX-COUNT,
# each holding a hard link of SOURCE_MP4 (a symbolic link across file systems); prints one clear
# locator per folder (id = folder name) for the "linked" storage. Folder 00000 is the one whose
# multivariant names the playlist path of all (it is requested first, outside the measurement).
link_assets() {
  python3 - "$1" "$OUT/assets" "$2" "$3" <<'PY'
import os, sys
src, root, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(count + 1):
    name = f"{prefix}-{i:05d}"
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    dst = os.path.join(folder, os.path.basename(src))
    if not (os.path.exists(dst) and os.path.samefile(src, dst)):
        if os.path.lexists(dst):
            os.remove(dst)
        try:
            os.link(src, dst)
        except OSError:
            os.symlink(os.path.abspath(src), dst)
    print(f'\n[[locator]]\nid = "{name}"\nstorage = "linked"\nasset = "{name}"\npolicy = "clear"')
PY
}

# --- 4. config and server ---------------------------------------------------------------------
LOC_LONG=11111111-1111-4111-8111-000000000360
LOC_720=11111111-1111-4111-8111-000000000720
LOC_CENC=11111111-1111-4111-8111-00000000cec0
LOC_CBCS=11111111-1111-4111-8111-00000000cb50
LOC_AES=11111111-1111-4111-8111-00000000ae50
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
write_config() { # FILE INDEX_MIB: the config's common part (the locators of the two assets)
  cat >"$1" <<EOF
# Written by benches/load.sh.
listen = "127.0.0.1:$PORT"

[cache]
index_mib = $2
manifest_mib = 64
segment_mib = $SEGMENT_MIB
asset_ttl_secs = 3600

[[storage]]
name = "bench"
url = "file://$ROOT/target"

[[storage]]
name = "linked"
url = "file://$OUT/assets"

[[locator]]
id = "$LOC_LONG"
storage = "bench"
asset = "long-asset"
policy = "clear"

[[locator]]
id = "$LOC_720"
storage = "bench"
asset = "long-asset-720p"
policy = "clear"

[[locator]]
id = "$LOC_CENC"
storage = "bench"
asset = "long-asset-720p"
policy = "cenc"
keys = [{ kid = "9eb4050de44b4802932e27d75083e266", key = "166634c675823c235a4a9446fad52e4d" }]

[[locator]]
id = "$LOC_CBCS"
storage = "bench"
asset = "long-asset-720p"
policy = "cbcs"
keys = [{ kid = "9eb4050de44b4802932e27d75083e266", key = "166634c675823c235a4a9446fad52e4d" }]

[[locator]]
id = "$LOC_AES"
storage = "bench"
asset = "long-asset-720p"
policy = "envelope"
keys = [{ kid = "0b6f3a5e9c2d4e8f8a1b3c5d7e9f1a2b", key = "3c9e1f7a5b2d4c6e8f0a1b3d5e7f9a1c" }]
EOF
}
mkdir -p "$OUT/assets"
CONFIG=$OUT/origin.toml
write_config "$CONFIG" 256
want cold-playlist && link_assets target/long-asset/long.mp4 cold "$COLD_ASSETS" >>"$CONFIG"

WRK_PID=
cleanup() {
  if [ -n "$WRK_PID" ]; then kill "$WRK_PID" 2>/dev/null || true; fi
  stop_server
  stop_nginx
}
trap cleanup EXIT

# The floor: the packaged files of the assets the chosen scenarios use, served by nginx.
if [ "$FLOOR" = 1 ]; then
  want_any multivariant media-playlist cached-segment cold-playlist && package_static target/long-asset long-asset
  want_any cached-segment-720p uncached-segment uncached-ts uncached-cenc uncached-cbcs \
    uncached-aes128-ts uncached-aes128-fmp4 hammer scale && package_static target/long-asset-720p long-asset-720p
  [ -d "$OUT/static" ] && start_nginx "$OUT/static"
fi

# --- 5. scenarios -----------------------------------------------------------------------------
RESULTS=$OUT/results.tsv
FLOORS=$OUT/floor.tsv
printf 'scenario\treq_s\tp50_ms\tp99_ms\tcpu_us_req\trequests\tpeak_rss_mib\tmb_per_resp\tnotes\n' >"$RESULTS"
printf 'scenario\treq_s\tp50_ms\tp99_ms\tcpu_us_req\trequests\tpeak_rss_mib\tmb_per_resp\tnotes\tfloor_is\n' >"$FLOORS"
FAILED=0
PROBLEMS=()

run_wrk() { # NAME PATHS MODE CONNECTIONS SECS [unrecorded|floor]
  local name=$1 paths=$2 mode=$3 conns=$4 secs=$5 kind=${6:-}
  local base=$BASE pids=$SERVER_PID rows=$RESULTS
  [ "$kind" != floor ] || { base=$NGINX_BASE pids=$NGINX_PIDS rows=$FLOORS; }
  local rss_pid=${pids##* }
  # A walk gives each connection at least one path: a connection left without one would send
  # no request head, and the server would answer it 408 after header_read_timeout_secs.
  if [ "$mode" = once ]; then
    local n
    n=$(grep -c . "$paths")
    [ "$conns" -le "$n" ] || conns=$((n > THREADS ? n : THREADS))
  fi
  local file=${name//[^A-Za-z0-9@._-]/_}
  local wrklog=$OUT/wrk-${kind:+$kind-}$file.log done_dir=$OUT/done-$file rss_peak=0 rss
  rm -rf "$done_dir"; mkdir -p "$done_dir"
  local t0 t1
  # shellcheck disable=SC2086 # one PID per word
  t0=$(cpu_ticks $pids)
  WRK_PATHS=$paths WRK_MODE=$mode WRK_THREADS=$THREADS WRK_DONE_DIR=$done_dir \
    wrk -t "$THREADS" -c "$conns" -d "${secs}s" --timeout 30s --latency -s "$LUA" "$base" >"$wrklog" 2>&1 &
  WRK_PID=$!
  # Sample RSS while wrk runs; in "once" mode, stop wrk as soon as every thread has finished.
  while kill -0 "$WRK_PID" 2>/dev/null; do
    rss=$(status_kib VmRSS "$rss_pid"); [ "${rss:-0}" -gt "$rss_peak" ] && rss_peak=$rss
    if [ "$mode" = once ] && [ "$(find "$done_dir" -type f | wc -l)" -ge "$THREADS" ]; then
      kill -INT "$WRK_PID" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$WRK_PID" || { cat "$wrklog" >&2; die "wrk failed in $name"; }
  WRK_PID=
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pids)
  rm -rf "$done_dir"
  local line
  line=$(grep '^RESULT ' "$wrklog") || { cat "$wrklog" >&2; die "no RESULT from wrk in $name"; }
  local -A r=()
  local kv
  for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  local hwm notes=""
  hwm=$(status_kib VmHWM "$rss_pid")
  local errs=$((r[non2xx3xx] + r[connect_err] + r[read_err] + r[write_err] + r[timeout_err] + r[not200]))
  if [ "$mode" = once ] && [ "${r[requests]}" -ne "${r[planned]}" ]; then
    notes="walk incomplete: ${r[requests]} of ${r[planned]} answered"
    FAILED=1
  fi
  if [ "$errs" -ne 0 ]; then
    notes="${notes:+$notes; }errors: non-2xx/3xx ${r[non2xx3xx]}, not-200 ${r[not200]}, connect ${r[connect_err]}, read ${r[read_err]}, write ${r[write_err]}, timeout ${r[timeout_err]}"
    FAILED=1
  fi
  [ "${r[requests]}" -gt 0 ] || die "$name: no request completed"
  LAST_RSS_PEAK_KIB=$rss_peak
  if [ "$kind" = unrecorded ]; then
    [ -z "$notes" ] || die "$name: $notes"
    log "$name: ${r[requests]} requests"
    return
  fi
  awk -v n="$name" -v req="${r[requests]}" -v dur="${r[duration_us]}" -v p50="${r[p50_us]}" -v p99="${r[p99_us]}" \
      -v ticks=$((t1 - t0)) -v hz="$CLK_TCK" -v hwm="$hwm" -v bytes="${r[bytes]}" -v notes="$notes" \
      -v what="${FLOOR_IS:-}" -v floor="$([ "$kind" = floor ] && echo 1)" 'BEGIN {
    printf "%s\t%.0f\t%.2f\t%.2f\t%.0f\t%d\t%.0f\t%.3f\t%s%s\n", n, req / (dur / 1e6), p50 / 1000, p99 / 1000,
      ticks / hz * 1e6 / req, req, hwm / 1024, bytes / req / 1e6, notes, floor ? "\t" what : "" }' >>"$rows"
  log "${kind:+$kind }$(tail -n1 "$rows" | tr '\t' ' ')"
}

# floor NAME ORIGIN_PATHS MODE CONNECTIONS SECS WHAT [ASSET]: the same walk against nginx over the
# packaged files of the same resources (static_paths), recorded under NAME in floor.tsv; WHAT
# says which files those are.
floor() {
  [ "$FLOOR" = 1 ] || return 0
  local paths=$OUT/paths-floor-${1//[^A-Za-z0-9@._-]/_}.txt
  static_paths "${7:-}" <"$2" >"$paths"
  # The files are read once first: the floor serves from the page cache, not from the disk.
  sed "s|^|$OUT/static|" "$paths" | xargs -d '\n' cat >/dev/null
  FLOOR_IS=$6 run_wrk "$1" "$paths" "$3" "$4" "$5" floor
}
SAME_FILES="the packaged files of the same resources"
CLEAR_CMAF="the clear CMAF files of the same segments (package writes neither TS nor encrypted files)"

# Sum of a /metrics series (the exact text before the value, labels included).
metric() { curl -fsS "$BASE/metrics" | awk -v k="$1" 'index($0, k " ") == 1 {s += $NF} END {print s + 0}'; }
ASSET_MISSES='jit_cache_lookups_total{cache="asset",result="miss"}'

# cached NAME PATHS_FILE CONNECTIONS: warms each path, then cycles through them for $DURATION s,
# the origin then the floor.
cached() {
  while read -r p; do get "$p" >/dev/null; done <"$2"
  run_wrk "$1" "$2" cycle "$3" "$DURATION"
  floor "$1" "$2" cycle "$3" "$DURATION" "$SAME_FILES"
}

# linked_paths PREFIX COUNT: writes $OUT/paths-PREFIX.txt, the video media playlist path of each
# linked asset PREFIX-00001 … PREFIX-COUNT, read from PREFIX-00000's multivariant (which loads
# that one asset only).
linked_paths() {
  local first=$1-00000 pl
  pl=$(video_playlist "/$first/$first.ism/manifest(format=m3u8-cmaf)")
  seq "$2" | awk -v pl="$pl" -v first="$first" -v prefix="$1" \
    '{ s = pl; gsub(first, sprintf("%s-%05d", prefix, $1), s); print s }' >"$OUT/paths-$1.txt"
}

# linked_walk NAME PATHS CONNECTIONS [FLOOR_ASSET]: on the running server, requests each playlist
# of PATHS once; each must load its asset (one asset-cache miss each, checked on /metrics). With
# FLOOR_ASSET, the floor is that asset's packaged playlist file, requested as often.
linked_walk() {
  local count m0 m1
  count=$(wc -l <"$2")
  m0=$(metric "$ASSET_MISSES")
  run_wrk "$1" "$2" once "$3" "$UNCACHED_MAX_SECS"
  m1=$(metric "$ASSET_MISSES")
  if [ $((m1 - m0)) -ne "$count" ]; then
    PROBLEMS+=("$1: $((m1 - m0)) asset-cache misses for $count requests (expected one each)")
    log "warning: ${PROBLEMS[-1]}"
  fi
  [ -z "${4:-}" ] || floor "$1" "$2" once "$3" "$UNCACHED_MAX_SECS" \
    "the packaged media playlist of the 2-hour asset" "$4"
}

# The 2-hour and 720p assets' cached scenarios.
MV_LONG=/$LOC_LONG/long-asset.ism/'manifest(format=m3u8-cmaf)'
MV_720=/$LOC_720/long-asset-720p.ism/'manifest(format=m3u8-cmaf)'
if want_any multivariant media-playlist cached-segment cached-segment-720p; then
  start_server
  PL_LONG=$(video_playlist "$MV_LONG")
  log "2-hour video playlist: $PL_LONG"
  segments_of "$PL_LONG" >"$OUT/long-segments.txt"
  n_long=$(grep -c 'Fragments(video=[0-9]' "$OUT/long-segments.txt" || true)
  log "2-hour asset: $n_long video segments"
  [ "$n_long" -ge 3000 ] || die "expected ~3,600 segments in $PL_LONG, got $n_long"

  if want multivariant; then
    echo "$MV_LONG" >"$OUT/paths-multivariant.txt"
    cached multivariant "$OUT/paths-multivariant.txt" "$CONNECTIONS"
  fi

  if want media-playlist; then
    echo "$PL_LONG" >"$OUT/paths-media-playlist.txt"
    cached media-playlist "$OUT/paths-media-playlist.txt" "$CONNECTIONS"
  fi

  spread() { # N K: K lines spread evenly over N
    awk -v n="$1" -v k="$2" 'c < k && (NR - 1) % int(n / k) == 0 { print; c++ }'
  }
  if want cached-segment; then
    grep 'Fragments(video=[0-9]' "$OUT/long-segments.txt" | spread "$n_long" "$CACHED_SET" >"$OUT/paths-cached-segment.txt"
    cached cached-segment "$OUT/paths-cached-segment.txt" "$CONNECTIONS"
  fi

  if want cached-segment-720p; then
    segments_of "$(video_playlist "$MV_720")" | grep 'Fragments(video=[0-9]' >"$OUT/720p-segments.txt"
    spread "$(wc -l <"$OUT/720p-segments.txt")" "$CACHED_SET_720" <"$OUT/720p-segments.txt" >"$OUT/paths-cached-segment-720p.txt"
    cached cached-segment-720p "$OUT/paths-cached-segment-720p.txt" "$CONNECTIONS"
  fi
fi

if want cold-playlist; then
  start_server
  linked_paths cold "$COLD_ASSETS"
  linked_walk cold-playlist "$OUT/paths-cold.txt" "$CONNECTIONS" long-asset
fi

uncached_walk() { # NAME CONNECTIONS MULTIVARIANT FLOOR_IS
  start_server
  local pl
  pl=$(video_playlist "$3")   # loads the index and caches the playlist; builds no segment
  segments_of "$pl" | grep 'Fragments(video=[0-9]' >"$OUT/paths-all-uncached.txt"
  log "720p video playlist: $pl ($(wc -l <"$OUT/paths-all-uncached.txt") segments)"
  # Steady state: the first $UNCACHED_WARMUP segments, fetched with the walk's connection
  # count, fill the segment cache and grow the process's memory to what that concurrency
  # needs (buffers in flight), before the measured walks over the others. The figure is what
  # an origin with a full cache pays per uncached segment, not a fresh process's first touch.
  head -n "$UNCACHED_WARMUP" "$OUT/paths-all-uncached.txt" >"$OUT/paths-warm-up.txt"
  run_wrk "$1 warm-up" "$OUT/paths-warm-up.txt" once "$2" "$UNCACHED_MAX_SECS" unrecorded
  tail -n +"$((UNCACHED_WARMUP + 1))" "$OUT/paths-all-uncached.txt" >"$OUT/paths-uncached.txt"
  log "warm-up: $UNCACHED_WARMUP segments built; measuring the other $(wc -l <"$OUT/paths-uncached.txt"), $UNCACHED_WALKS times"
  # Walks repeat on the same server: each walk's first segments were evicted by the previous
  # walk's last ones (the cache holds ~170), so every request still misses. The spread between
  # walks shows how much the machine's state moves the figure.
  local walk peak=0
  for walk in $(seq "$UNCACHED_WALKS"); do
    run_wrk "$1 #$walk" "$OUT/paths-uncached.txt" once "$2" "$UNCACHED_MAX_SECS"
    [ "$LAST_RSS_PEAK_KIB" -gt "$peak" ] && peak=$LAST_RSS_PEAK_KIB
  done
  # Every request must have been a miss of the segment cache.
  curl -fsS "$BASE/metrics" >"$OUT/metrics-$1.txt"
  local hits
  hits=$(awk '/^jit_cache_lookups_total/ && /cache="segment"/ && /result="hit"/ {s += $2} END {print s + 0}' "$OUT/metrics-$1.txt")
  [ "$hits" -eq 0 ] || log "warning: $hits segment cache hits in $1 (expected none)"
  floor "$1" "$OUT/paths-uncached.txt" once "$2" "$UNCACHED_MAX_SECS" "$4"
  LAST_RSS_PEAK_KIB=$peak   # the server's, not the floor's
}
ism720() { echo "/$1/long-asset-720p.ism/manifest($2)"; }
want uncached-segment && uncached_walk uncached-segment "$CONNECTIONS" "$MV_720" "$SAME_FILES"
want uncached-ts && uncached_walk uncached-ts "$CONNECTIONS" "$(ism720 "$LOC_720" format=m3u8-aapl)" "$CLEAR_CMAF"
want uncached-cenc && uncached_walk uncached-cenc "$CONNECTIONS" "$(ism720 "$LOC_CENC" format=m3u8-cmaf,encryption=cenc)" "$CLEAR_CMAF"
want uncached-cbcs && uncached_walk uncached-cbcs "$CONNECTIONS" "$(ism720 "$LOC_CBCS" format=m3u8-cmaf,encryption=cbcs-aapl)" "$CLEAR_CMAF"
want uncached-aes128-ts && uncached_walk uncached-aes128-ts "$CONNECTIONS" "$(ism720 "$LOC_AES" format=m3u8-aapl,encryption=cbc)" "$CLEAR_CMAF"
want uncached-aes128-fmp4 && uncached_walk uncached-aes128-fmp4 "$CONNECTIONS" "$(ism720 "$LOC_AES" format=m3u8-cmaf,encryption=cbc)" "$CLEAR_CMAF"
RSS_LINE=
if want hammer; then
  uncached_walk "uncached-segment@$HAMMER_CONNECTIONS" "$HAMMER_CONNECTIONS" "$MV_720" "$SAME_FILES"
  RSS_HAMMER_MIB=$((LAST_RSS_PEAK_KIB / 1024))
  HWM_HAMMER_MIB=$(($(status_kib VmHWM) / 1024))
  RSS_LINE="Server RSS while $HAMMER_CONNECTIONS connections hammer uncached segments: peak sampled VmRSS $RSS_HAMMER_MIB MiB, VmHWM $HWM_HAMMER_MIB MiB; segment cache capacity $SEGMENT_MIB MiB (target ≤ $((SEGMENT_MIB + 100)) MiB)."
fi

# --- scale: how the cost grows with the work --------------------------------------------------
SCALE_LINES=()
if want scale; then
  ulimit -n "$(ulimit -Hn)"
  CONFIG_DAY=$OUT/origin-day.toml CONFIG_MANY=$OUT/origin-many.toml
  write_config "$CONFIG_DAY" "$SCALE_INDEX_MIB"
  link_assets target/long-asset-24h/long24.mp4 day "$SCALE_COLD" >>"$CONFIG_DAY"
  write_config "$CONFIG_MANY" "$SCALE_INDEX_MIB"
  link_assets target/scale-clip/clip.mp4 many "$SCALE_ASSETS" >>"$CONFIG_MANY"

  # The 24-hour asset's video playlist: cold on SCALE_COLD copies, then cached.
  CONFIG=$CONFIG_DAY
  start_server
  linked_paths day "$SCALE_COLD"
  linked_walk cold-playlist-24h "$OUT/paths-day.txt" "$CONNECTIONS"
  tail -n1 "$OUT/paths-day.txt" >"$OUT/paths-media-playlist-24h.txt"
  n_day=$(segments_of "$(cat "$OUT/paths-media-playlist-24h.txt")" | grep -c 'Fragments(video=[0-9]' || true)
  log "24-hour asset: $n_day video segments"
  [ "$n_day" -ge 40000 ] || die "expected ~43,200 segments in the 24-hour playlist, got $n_day"
  run_wrk media-playlist-24h "$OUT/paths-media-playlist-24h.txt" cycle "$CONNECTIONS" "$DURATION"

  # SCALE_ASSETS short assets loaded, SCALE_STEP at a time, RSS after each step. The server
  # reads a config of SCALE_ASSETS locators: its start takes longer.
  CONFIG=$CONFIG_MANY
  START_TIMEOUT_SECS=600 start_server
  SCALE_LINES+=("Server start with $(grep -c '^\[\[locator\]\]' "$CONFIG") locators: $SERVER_UP_MS ms to the first /healthz answer.")
  linked_paths many "$SCALE_ASSETS"
  rss0=$(status_kib VmRSS)
  m0=$(metric "$ASSET_MISSES")
  printf 'assets\trss_mib\tcpu_us_req\n0\t%s\t\n' "$(awk -v k="$rss0" 'BEGIN {printf "%.1f", k / 1024}')" >"$OUT/scale-assets.tsv"
  for loaded in $(seq "$SCALE_STEP" "$SCALE_STEP" "$SCALE_ASSETS"); do
    sed -n "$((loaded - SCALE_STEP + 1)),${loaded}p" "$OUT/paths-many.txt" >"$OUT/paths-many-step.txt"
    run_wrk "assets-loaded@$loaded" "$OUT/paths-many-step.txt" once "$CONNECTIONS" "$UNCACHED_MAX_SECS"
    awk -F'\t' -v n="$loaded" -v k="$(status_kib VmRSS)" 'END {printf "%d\t%.1f\t%s\n", n, k / 1024, $5}' "$RESULTS" >>"$OUT/scale-assets.tsv"
  done
  m1=$(metric "$ASSET_MISSES")
  [ $((m1 - m0)) -eq "$SCALE_ASSETS" ] || PROBLEMS+=("assets-loaded: $((m1 - m0)) asset-cache misses for $SCALE_ASSETS assets (expected one each)")
  curl -fsS "$BASE/metrics" | grep -E '^jit_cache_(lookups_total|evictions_total|entries|bytes)\{cache="(asset|index)"' >"$OUT/scale-caches.txt" || true
  rss1=$(status_kib VmRSS)
  SCALE_LINES+=("$SCALE_ASSETS 10-second assets loaded (one media playlist request each, index_mib = $SCALE_INDEX_MIB): RSS $((rss0 / 1024)) → $((rss1 / 1024)) MiB, $(awk -v a="$rss0" -v b="$rss1" -v n="$SCALE_ASSETS" 'BEGIN {printf "%.1f", (b - a) / n}') KiB per loaded asset; caches: $(awk '{sub(/^jit_cache_/, ""); printf "%s%s", sep, $0; sep = ", "}' "$OUT/scale-caches.txt").")

  # Connections: the cached small response and the cached 720p segment, origin and floor.
  CONFIG=$CONFIG_DAY
  start_server
  segments_of "$(video_playlist "$MV_720")" | awk -v k="$CACHED_SET_720" '/Fragments\(video=[0-9]/ && c++ < k' >"$OUT/paths-scale-segment.txt"
  echo "$MV_720" >"$OUT/paths-scale-multivariant.txt"
  for c in $SCALE_CONNECTIONS; do
    cached "multivariant@$c" "$OUT/paths-scale-multivariant.txt" "$c"
    cached "cached-segment-720p@$c" "$OUT/paths-scale-segment.txt" "$c"
  done
fi
stop_server

# --- 6. report --------------------------------------------------------------------------------
# One row per origin row: its floor (the floor rows of the same scenario, averaged), the peer's
# figure (midpoint of its range) and the targets of peer-reference.tsv.
awk -F'\t' -v OFS='\t' -v peerfile="$PEER" -v floorfile="$FLOORS" '
  function fmt(x) { return x == "" ? "" : sprintf("%.2f", x) }
  FILENAME == peerfile {
    if ($0 ~ /^#/ || NF < 4) next
    peer[$1] = $2; pt[$1] = $3; ft[$1] = $4; next
  }
  FILENAME == floorfile {
    if (FNR == 1) next
    fn[$1]++; fs[$1] += $5; fis[$1] = $10
    if ($9 != "") fbad[$1] = $9
    next
  }
  FNR == 1 { print "scenario", "cpu_us_req", "floor_us_req", "jit_floor", "peer_us_req", "jit_peer", "target", "req_s", "p50_ms", "p99_ms", "requests", "mb_per_resp", "peak_rss_mib", "notes", "floor_is"; next }
  {
    base = $1; sub(/ #[0-9]+$/, "", base)
    fl = base in fn ? fs[base] / fn[base] : ""
    jf = fl != "" && fl > 0 ? $5 / fl : ""
    pr = ""; jp = ""; target = ""
    if (base in peer) {
      n = split(peer[base], range, "-"); pr = (range[1] + range[n]) / 2; jp = $5 / pr
      target = sprintf("≤ %s× peer: %s", pt[base], jp <= pt[base] ? "met" : "not met")
      if (ft[base] != "-" && jf != "")
        target = target sprintf("; ≤ %s× floor: %s", ft[base], jf <= ft[base] ? "met" : "not met")
    }
    notes = $9
    if (base in fbad) notes = notes (notes == "" ? "" : "; ") "floor: " fbad[base]
    print $1, $5, (fl == "" ? "" : sprintf("%.0f", fl)), fmt(jf), (base in peer ? peer[base] : ""), fmt(jp), target, $2, $3, $4, $6, $8, $7, notes, (base in fis ? fis[base] : "")
  }' "$PEER" "$FLOORS" "$RESULTS" >"$OUT/summary.tsv"

if want scale; then
  # Curve data for the plot: cost against the asset's duration, against connections.
  awk -F'\t' -v OFS='\t' 'BEGIN { print "hours", "kind", "cpu_us_req" }
    NR > 1 && $1 == "media-playlist" { print 2, "cached", $2 }
    NR > 1 && $1 == "cold-playlist" { print 2, "cold", $2 }
    NR > 1 && $1 == "media-playlist-24h" { print 24, "cached", $2 }
    NR > 1 && $1 == "cold-playlist-24h" { print 24, "cold", $2 }
    NR > 1 && $1 == "assets-loaded@'"$SCALE_STEP"'" { print 10 / 3600, "cold", $2 }' "$OUT/summary.tsv" >"$OUT/scale-duration.tsv"
  awk -F'\t' -v OFS='\t' 'BEGIN { print "scenario", "connections", "cpu_us_req", "floor_us_req", "req_s", "p99_ms" }
    NR > 1 && $1 ~ /^(multivariant|cached-segment-720p)@[0-9]+$/ {
      split($1, s, "@"); print s[1], s[2], $2, $3, $8, $10 }' "$OUT/summary.tsv" >"$OUT/scale-connections.tsv"
  log "plotting docs/bench-scale.svg"
  cargo run --quiet --release --manifest-path benches/plot/Cargo.toml --target-dir target/plot -- "$OUT" "$ROOT/docs/bench-scale.svg"
fi

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "Machine: $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM; wrk and the server on the same machine."
  echo "wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION} s per cached scenario; uncached: $UNCACHED_WALKS walks over the other $(wc -l 2>/dev/null <"$OUT/paths-uncached.txt" || echo 0) video segments of the 720p rendition (4 s, ~1.5 MB each), each requested once per walk, on a fresh server after $UNCACHED_WARMUP warm-up segments; segment cache $SEGMENT_MIB MiB; cold playlists: $COLD_ASSETS hard-linked copies of the 2-hour asset."
  [ "$FLOOR" != 1 ] || echo "Floor: $(nginx -v 2>&1 | sed 's/.*: //') serving \`jit-origin package\` output (files read once first: from the page cache; one worker process, sendfile, tcp_nopush, keep-alive, access log on), the same walk; CPU = master + worker. Peer: benches/load/peer-reference.tsv (issue #20, nginx-vod-module, against commit 9971016); jit / peer uses the midpoint of the peer's range."
  echo
  echo "| scenario | CPU µs/req | floor µs/req | jit / floor | peer µs/req | jit / peer | target | req/s | p50 | p99 | requests | MB/resp | server peak RSS |"
  echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$OUT/summary.tsv" | awk -F'\t' '{
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s ms | %s ms | %s | %s | %s MiB |\n",
      $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }'
  echo
  tail -n +2 "$OUT/summary.tsv" | awk -F'\t' '$15 != "" && $15 != "'"$SAME_FILES"'" { b = $1; sub(/ #[0-9]+$/, "", b); if (!(b in seen)) { seen[b] = 1; print "- floor of " b ": " $15 } }'
  [ -z "$RSS_LINE" ] || echo "$RSS_LINE"
  for l in "${SCALE_LINES[@]}"; do echo "$l"; done
  notes=$(tail -n +2 "$OUT/summary.tsv" | awk -F'\t' '$14 != "" {print "- " $1 ": " $14}')
  for p in "${PROBLEMS[@]}"; do notes="${notes:+$notes
}- $p"; done
  [ -z "$notes" ] || { echo; echo "Problems:"; echo "$notes"; }
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
rm -f "$OUT/get.body"
if [ "$FAILED" -ne 0 ]; then
  log "FAILED: some responses were not 200 (see $OUT/wrk-*.log, $OUT/server-*.log, $OUT/nginx/)"
  exit 1
fi
