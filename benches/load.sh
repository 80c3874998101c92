#!/usr/bin/env bash
# Load benchmark of `jit-origin serve`: requests/s, latency and — the figure that matters on a
# shared machine — server CPU time per request, for the four request kinds that dominate an
# origin's traffic, plus the server's memory while 256 connections hammer uncached segments.
#
# Usage: benches/load.sh            (from anywhere; run as root or with wrk/ffmpeg installed)
#
# What it does:
#   1. installs wrk (Debian package) and ffmpeg when missing (apt-get update + install -y);
#   2. cargo build --release;
#   3. makes the assets (no-op when present):
#        target/long-asset/long.mp4           2-hour 360p H.264+AAC, 2 s GOPs (benches/make-long-asset.sh)
#        target/long-asset-720p/long720.mp4   720p24 H.264 CBR 3 Mbit/s + AAC, 4 s GOPs, so one video
#                                             segment ~= 1.5 MB; $LONG720_MINUTES long (default 60
#                                             → 900 video segments) (benches/load/make-720p-asset.sh)
#   4. writes a config (one file:// storage on target/, one locator per asset, segment cache of
#      $SEGMENT_MIB MiB), starts target/release/jit-origin on a free port, waits for /healthz;
#   5. runs the scenarios with wrk ($THREADS threads, $CONNECTIONS connections, $DURATION s each)
#      through benches/load/paths.lua, which cycles through a list of paths:
#        multivariant      /{loc}/long-asset.ism/manifest(format=m3u8-cmaf) (cached)
#        media-playlist    the 2-hour asset's video media playlist, 3,600 segments (index and
#                          playlist cached: warmed with one request first)
#        cached-segment    $CACHED_SET video segments spread over the 2-hour asset, warmed first
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
#        uncached-segment@256  the same walk on another fresh server with $HAMMER_CONNECTIONS
#                          connections, sampling the server's RSS every 50 ms: the memory check.
#   6. reports, per scenario: req/s, p50/p99 latency (wrk's histogram, via the Lua done() hook),
#      requests, server CPU µs per request = Δ(utime+stime) of the server from /proc/PID/stat over
#      the scenario / requests, and the server's peak RSS (VmHWM); prints a Markdown table and the
#      machine (nproc, CPU model) for the README. Exits 1 if any response was not a 200 (wrk's
#      "Non-2xx or 3xx responses", socket errors or timeouts; in the uncached walks every status
#      is checked for exactly 200 and every planned URL must have been answered).
#
# Knobs (environment): DURATION=15 CONNECTIONS=64 THREADS=2 HAMMER_CONNECTIONS=256
#   SEGMENT_MIB=256 CACHED_SET=16 LONG720_MINUTES=60 UNCACHED_MAX_SECS=300 UNCACHED_WARMUP=250
#   UNCACHED_WALKS=3
#   OUT=target/load
#   SCENARIOS="multivariant media-playlist cached-segment uncached-segment hammer" (any subset)
#   BUILD=0 (skip cargo build and use the existing target/release/jit-origin)
#   BIN=PATH (serve with this binary instead, no build; benches/load/compare.sh uses it)
#   RUST_LOG (server log filter; default info = one access-log line per request, as deployed).
# Results: $OUT/results.md (the table), $OUT/results.tsv, wrk and server logs in $OUT/.
#
# Notes: wrk and the server share the machine, so req/s and latency depend on the core count and
# on whatever else runs; CPU µs/req is the figure to compare against the targets (uncached 1.5 MB
# segment ≤ 600 µs, cached segment ≤ 200 µs, 2-hour media playlist ≤ 300 µs, RSS under 256
# connections ≤ segment cache + 100 MiB). Clock-tick resolution (1/CLK_TCK s) makes CPU µs/req
# of a short walk uncertain by about ±CLK_TCK⁻¹ x 2 / requests.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
HAMMER_CONNECTIONS=${HAMMER_CONNECTIONS:-256}
SEGMENT_MIB=${SEGMENT_MIB:-256}
CACHED_SET=${CACHED_SET:-16}
LONG720_MINUTES=${LONG720_MINUTES:-60}
UNCACHED_MAX_SECS=${UNCACHED_MAX_SECS:-300}
UNCACHED_WARMUP=${UNCACHED_WARMUP:-250}
UNCACHED_WALKS=${UNCACHED_WALKS:-3}
OUT=${OUT:-target/load}
SCENARIOS=${SCENARIOS:-multivariant media-playlist cached-segment uncached-segment hammer}
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT"/server-*.log "$OUT"/wrk-*.log "$OUT"/done-* "$OUT"/metrics-*.txt
LUA=$ROOT/benches/load/paths.lua
CLK_TCK=$(getconf CLK_TCK)

LOG_TAG=load
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

# --- 1. tools ---------------------------------------------------------------------------------
need_tools wrk:wrk ffmpeg:ffmpeg curl:curl

# --- 2. build ---------------------------------------------------------------------------------
build_release

# --- 3. assets --------------------------------------------------------------------------------
log "assets (made once; kept in target/)"
benches/make-long-asset.sh target/long-asset/long.mp4
benches/load/make-720p-asset.sh target/long-asset-720p/long720.mp4 "$LONG720_MINUTES"

# --- 4. config and server ---------------------------------------------------------------------
LOC_LONG=11111111-1111-4111-8111-000000000360
LOC_720=11111111-1111-4111-8111-000000000720
CONFIG=$OUT/origin.toml
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
cat >"$CONFIG" <<EOF
# Written by benches/load.sh.
listen = "127.0.0.1:$PORT"

[cache]
index_mib = 256
manifest_mib = 64
segment_mib = $SEGMENT_MIB
asset_ttl_secs = 3600

[[storage]]
name = "bench"
url = "file://$ROOT/target"

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
EOF

WRK_PID=
cleanup() {
  [ -n "$WRK_PID" ] && kill "$WRK_PID" 2>/dev/null || true
  stop_server
}
trap cleanup EXIT

# --- 5. scenarios -----------------------------------------------------------------------------
RESULTS=$OUT/results.tsv
printf 'scenario\treq_s\tp50_ms\tp99_ms\tcpu_us_req\trequests\tpeak_rss_mib\tmb_per_resp\tnotes\n' >"$RESULTS"
FAILED=0

run_wrk() { # NAME PATHS MODE CONNECTIONS SECS [unrecorded]
  local name=$1 paths=$2 mode=$3 conns=$4 secs=$5 unrecorded=${6:-}
  local file=${name//[^A-Za-z0-9@._-]/_}
  local wrklog=$OUT/wrk-$file.log done_dir=$OUT/done-$file rss_peak=0 rss
  rm -rf "$done_dir"; mkdir -p "$done_dir"
  local t0 t1
  t0=$(cpu_ticks)
  WRK_PATHS=$paths WRK_MODE=$mode WRK_THREADS=$THREADS WRK_DONE_DIR=$done_dir \
    wrk -t "$THREADS" -c "$conns" -d "${secs}s" --timeout 30s --latency -s "$LUA" "$BASE" >"$wrklog" 2>&1 &
  WRK_PID=$!
  # Sample RSS while wrk runs; in "once" mode, stop wrk as soon as every thread has finished.
  while kill -0 "$WRK_PID" 2>/dev/null; do
    rss=$(status_kib VmRSS); [ "${rss:-0}" -gt "$rss_peak" ] && rss_peak=$rss
    if [ "$mode" = once ] && [ "$(find "$done_dir" -type f | wc -l)" -ge "$THREADS" ]; then
      kill -INT "$WRK_PID" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$WRK_PID" || { cat "$wrklog" >&2; die "wrk failed in $name"; }
  WRK_PID=
  t1=$(cpu_ticks)
  rm -rf "$done_dir"
  local line
  line=$(grep '^RESULT ' "$wrklog") || { cat "$wrklog" >&2; die "no RESULT from wrk in $name"; }
  local -A r=()
  local kv
  for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  local hwm notes=""
  hwm=$(status_kib VmHWM)
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
  if [ -n "$unrecorded" ]; then
    [ -z "$notes" ] || die "$name: $notes"
    log "$name: ${r[requests]} requests"
    return
  fi
  awk -v n="$name" -v req="${r[requests]}" -v dur="${r[duration_us]}" -v p50="${r[p50_us]}" -v p99="${r[p99_us]}" \
      -v ticks=$((t1 - t0)) -v hz="$CLK_TCK" -v hwm="$hwm" -v bytes="${r[bytes]}" -v notes="$notes" 'BEGIN {
    printf "%s\t%.0f\t%.2f\t%.2f\t%.0f\t%d\t%.0f\t%.3f\t%s\n", n, req / (dur / 1e6), p50 / 1000, p99 / 1000,
      ticks / hz * 1e6 / req, req, hwm / 1024, bytes / req / 1e6, notes }' >>"$RESULTS"
  log "$(tail -n1 "$RESULTS" | tr '\t' ' ')"
}

# The 2-hour asset's scenarios (skipped when only uncached walks are asked for).
if want multivariant || want media-playlist || want cached-segment; then
  start_server
  MV_LONG=/$LOC_LONG/long-asset.ism/'manifest(format=m3u8-cmaf)'
  PL_LONG=$(video_playlist "$MV_LONG")
  log "2-hour video playlist: $PL_LONG"
  segments_of "$PL_LONG" >"$OUT/long-segments.txt"
  n_long=$(grep -c 'Fragments(video=[0-9]' "$OUT/long-segments.txt" || true)
  log "2-hour asset: $n_long video segments"
  [ "$n_long" -ge 3000 ] || die "expected ~3,600 segments in $PL_LONG, got $n_long"

  if want multivariant; then
    echo "$MV_LONG" >"$OUT/paths-multivariant.txt"
    run_wrk multivariant "$OUT/paths-multivariant.txt" cycle "$CONNECTIONS" "$DURATION"
  fi

  if want media-playlist; then
    echo "$PL_LONG" >"$OUT/paths-media-playlist.txt"
    get "$PL_LONG" >/dev/null
    run_wrk media-playlist "$OUT/paths-media-playlist.txt" cycle "$CONNECTIONS" "$DURATION"
  fi

  if want cached-segment; then
    grep 'Fragments(video=[0-9]' "$OUT/long-segments.txt" |
      awk -v n="$n_long" -v k="$CACHED_SET" '(NR - 1) % int(n / k) == 0' | head -n "$CACHED_SET" >"$OUT/paths-cached-segment.txt"
    while read -r p; do get "$p" >/dev/null; done <"$OUT/paths-cached-segment.txt"
    run_wrk cached-segment "$OUT/paths-cached-segment.txt" cycle "$CONNECTIONS" "$DURATION"
  fi
fi

MV_720=/$LOC_720/long-asset-720p.ism/'manifest(format=m3u8-cmaf)'
uncached_walk() { # NAME CONNECTIONS
  start_server
  local pl
  pl=$(video_playlist "$MV_720")   # loads the index and caches the playlist; builds no segment
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
  LAST_RSS_PEAK_KIB=$peak
  # Every request must have been a miss of the segment cache.
  curl -fsS "$BASE/metrics" >"$OUT/metrics-$1.txt"
  local hits
  hits=$(awk '/^jit_cache_lookups_total/ && /cache="segment"/ && /result="hit"/ {s += $2} END {print s + 0}' "$OUT/metrics-$1.txt")
  [ "$hits" -eq 0 ] || log "warning: $hits segment cache hits in $1 (expected none)"
}
want uncached-segment && uncached_walk uncached-segment "$CONNECTIONS"
RSS_LINE=
if want hammer; then
  uncached_walk "uncached-segment@$HAMMER_CONNECTIONS" "$HAMMER_CONNECTIONS"
  RSS_HAMMER_MIB=$((LAST_RSS_PEAK_KIB / 1024))
  HWM_HAMMER_MIB=$(($(status_kib VmHWM) / 1024))
  RSS_LINE="Server RSS while $HAMMER_CONNECTIONS connections hammer uncached segments: peak sampled VmRSS $RSS_HAMMER_MIB MiB, VmHWM $HWM_HAMMER_MIB MiB; segment cache capacity $SEGMENT_MIB MiB (target ≤ $((SEGMENT_MIB + 100)) MiB)."
fi
stop_server

# --- 6. report --------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "Machine: $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM; wrk and the server on the same machine."
  echo "wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION} s per cached scenario; uncached: $UNCACHED_WALKS walks over the other $(cat "$OUT/paths-uncached.txt" 2>/dev/null | wc -l) video segments of the 720p rendition (4 s, ~1.5 MB each), each requested once per walk, on a fresh server after $UNCACHED_WARMUP warm-up segments; segment cache $SEGMENT_MIB MiB."
  echo
  echo "| scenario | req/s | p50 | p99 | CPU µs/req | requests | MB/resp | server peak RSS |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$RESULTS" | awk -F'\t' '{ printf "| %s | %s | %s ms | %s ms | %s | %s | %s | %s MiB |\n", $1, $2, $3, $4, $5, $6, $8, $7 }'
  echo
  [ -z "$RSS_LINE" ] || echo "$RSS_LINE"
  notes=$(tail -n +2 "$RESULTS" | awk -F'\t' '$9 != "" {print "- " $1 ": " $9}')
  [ -z "$notes" ] || { echo; echo "Problems:"; echo "$notes"; }
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
rm -f "$OUT/get.body"
if [ "$FAILED" -ne 0 ]; then
  log "FAILED: some responses were not 200 (see $OUT/wrk-*.log, $OUT/server-*.log)"
  exit 1
fi
