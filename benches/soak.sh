#!/usr/bin/env bash
# Soak run of `jit-origin serve`: DURATION seconds (default 30 minutes) of mixed traffic at a
# steady rate, with hostile clients and storage outages, checking that the server's memory
# stays flat and within its budget and that nothing fails but what the outage explains.
#
# Usage: benches/soak.sh            (run as root or with wrk, h2load, gnuplot, ffmpeg installed)
#
# What it does:
#   1. installs wrk, h2load (nghttp2-client), gnuplot (gnuplot-nox), ffmpeg and curl (Debian
#      packages) when missing, and moto into target/storage-tools/venv as tests/run.sh does;
#   2. cargo build --release; makes the 2-hour 360p asset (benches/make-long-asset.sh);
#   3. storage: the 2-hour asset from a file:// account; the fixture ladder and the 2-hour
#      asset's first 3 minutes ("walk", 10 MB) from an S3 account on moto (127.0.0.1), reached
#      through benches/soak/blip_proxy.py, a TCP proxy the script cuts for BLIP_SECS every
#      BLIP_EVERY seconds from BLIP_AT on (connections reset, new ones refused: storage down);
#      moto's ranged GETs copy the whole object, so only small files live there;
#   4. the server with the deploy/ cache sizes (index 64, manifest 32, segment 256 MiB of which
#      build_memory_mib 16) and IDLE_TIMEOUT s idle timeout; locators: the 2-hour asset clear,
#      the ladder clear, under AES-128 (envelope) and under cenc + cbcs (multi-drm), "walk" clear;
#   5. all at once, until DURATION (each client in chunks of at most a minute):
#        manifests   wrk, HTTP/1.1: HLS multivariant and media playlists, DASH MPDs, HLS-TS
#        cached      wrk, HTTP/1.1: 16 video segments of the 2-hour asset, warmed first
#        uncached    wrk, HTTP/1.1, one thread: the 2-hour asset's 3,600 video segments in a
#                    loop (360 MB through a 240 MiB LRU cache: every request builds)
#        encrypted   wrk, HTTP/1.1: AES-128 TS segments and their key, cenc and cbcs segments
#        s3-uncached wrk, HTTP/1.1, one connection, 2 requests/s: the "walk" asset's 90 video
#                    segments in a loop, each evicted by the uncached walk before it comes
#                    round again, so these are the requests that need storage during an outage
#        h2          h2load, h2c: a mix of manifests, cached and encrypted segments
#        slow        benches/soak/slow_clients.py: HTTP/1.1 clients that never read, HTTP/2
#                    clients with a zero flow-control window, slowloris heads (see there)
#      wrk connections wait DELAY_MS before each request (s3-uncached 500 ms) and h2load
#      clients send H2_RPS requests/s, so this is a steady load, not a throughput test;
#   6. every 5 s: the server's VmRSS, and from /metrics its 5xx count (a 5xx outside a storage
#      outage, give or take BLIP_GRACE s, fails the run); every SAMPLE_SECS (60): a row of
#      $OUT/samples.csv (RSS, peak VmHWM, CPU % = Δ(utime+stime), requests/s per kind, 4xx,
#      5xx, segment cache hit ratio and MiB, open connections, storage state);
#   7. writes $OUT/soak-rss-cpu.png (gnuplot; copied to PLOT_TO when set, e.g.
#      PLOT_TO=docs/soak-rss-cpu.png) and $OUT/results.md, and exits 1 when:
#        - the server died;
#        - its peak RSS (VmHWM) exceeded the budget (README "Memory budget"): the caches
#          + RUNTIME_MIB + open connections × CONN_KIB + responses the slow clients can make it
#          hold (one per HTTP/1.1 connection, STREAMS per HTTP/2 one) × HELD_SEGMENT_MIB;
#        - RSS grew: the largest sample of the last third (at most 10 minutes) of the run is
#          more than RSS_GROWTH_MIB above the largest of the same span after WARMUP_SECS;
#        - a 5xx came outside an outage, or a wrk/h2load chunk not overlapping one had an error
#          (non-2xx, socket error, timeout);
#        - a slow client's connection outlived IDLE_TIMEOUT + 15 s (the server must close them).
#
# Knobs (environment): DURATION=1800 SAMPLE_SECS=60 BLIP_AT=120 BLIP_EVERY=600 BLIP_SECS=30
#   BLIP_GRACE=15 IDLE_TIMEOUT=30 DELAY_MS=10 H2_RPS=50 RSS_GROWTH_MIB=32 WARMUP_SECS=60
#   RUNTIME_MIB=60 CONN_KIB=48 HELD_SEGMENT_MIB=0.25 OUT=target/soak PLOT_TO=
#   BUILD=0 / BIN=PATH (as benches/load.sh); the slow clients' counts as slow_clients.py says.
# The server's access log keeps only non-2xx/3xx lines ($OUT/server-1.log), so a 30-minute run
# does not write gigabytes. CPU figures are the server's own; on a shared machine they move with
# whatever else runs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-1800}
SAMPLE_SECS=${SAMPLE_SECS:-60}
TICK=5
BLIP_AT=${BLIP_AT:-120}
BLIP_EVERY=${BLIP_EVERY:-600}
BLIP_SECS=${BLIP_SECS:-30}
BLIP_GRACE=${BLIP_GRACE:-15}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-30}
DELAY_MS=${DELAY_MS:-10}
H2_RPS=${H2_RPS:-50}
RSS_GROWTH_MIB=${RSS_GROWTH_MIB:-32}
WARMUP_SECS=${WARMUP_SECS:-60}
RUNTIME_MIB=${RUNTIME_MIB:-60}
CONN_KIB=${CONN_KIB:-48}
HELD_SEGMENT_MIB=${HELD_SEGMENT_MIB:-0.25}
INDEX_MIB=64 MANIFEST_MIB=32 SEGMENT_MIB=256 BUILD_MIB=16
export NEVER_READ=${NEVER_READ:-8} H2_ZERO=${H2_ZERO:-4} SLOWLORIS=${SLOWLORIS:-16} STREAMS=${STREAMS:-16}
OUT=${OUT:-target/soak}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT"/server-*.log "$OUT"/clients "$OUT"/*.tsv "$OUT"/samples.csv
mkdir -p "$OUT/clients"
CLK_TCK=$(getconf CLK_TCK)
LOG_TAG=soak
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

# --- 1, 2. tools, build, asset ----------------------------------------------------------------
need_tools wrk:wrk h2load:nghttp2-client gnuplot:gnuplot-nox ffmpeg:ffmpeg curl:curl
VENV=$ROOT/target/storage-tools/venv
if [ ! -x "$VENV/bin/moto_server" ]; then
  log "installing moto into $VENV (tests/storage/requirements.txt)"
  python3 -m venv "$VENV"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q -r tests/storage/requirements.txt </dev/null
fi
build_release
log "assets (made once; kept in target/)"
benches/make-long-asset.sh target/long-asset/long.mp4
WALK=target/long-asset/walk-3min.mp4
if [ ! -s "$WALK" ]; then
  ffmpeg -v error -nostdin -y -i target/long-asset/long.mp4 -t 180 -c copy -movflags +faststart -map_metadata -1 "$WALK.tmp.mp4"
  mv "$WALK.tmp.mp4" "$WALK"
fi

# --- 3. storage: moto behind the blip proxy ---------------------------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_server
}
trap cleanup EXIT
MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
PIDS+=($!)
PROXY_PORT=$(free_port)
python3 benches/soak/blip_proxy.py "$PROXY_PORT" "$MOTO_PORT" >"$OUT/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break; sleep 0.1; done
# moto takes unsigned requests; curl's default form content type and "Expect: 100-continue"
# make it wait for a body it never reads.
curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$MOTO_PORT/soak" || die "moto: creating the bucket"
for f in fixtures/ladder/* "$WALK"; do
  case $f in "$WALK") key=walk/walk.mp4 ;; *) key=ladder/${f##*/} ;; esac
  curl -fsS -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' -X PUT --data-binary "@$f" \
    "http://127.0.0.1:$MOTO_PORT/soak/media/$key" || die "moto: uploading $f"
done

# --- 4. config and server ---------------------------------------------------------------------
LOC_LONG=22222222-2222-4222-8222-000000000360
LOC_CLEAR=22222222-2222-4222-8222-000000000001
LOC_AES=22222222-2222-4222-8222-000000000002
LOC_DRM=22222222-2222-4222-8222-000000000003
LOC_WALK=22222222-2222-4222-8222-000000000004
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
CONFIG=$OUT/origin.toml
cat >"$CONFIG" <<EOF
# Written by benches/soak.sh: the cache sizes of deploy/origin.toml.
listen = "127.0.0.1:$PORT"

[cache]
index_mib = $INDEX_MIB
manifest_mib = $MANIFEST_MIB
segment_mib = $SEGMENT_MIB
asset_ttl_secs = 30

[limits]
build_memory_mib = $BUILD_MIB
idle_timeout_secs = $IDLE_TIMEOUT

[[storage]]
name = "local"
url = "file://$ROOT/target"

[[storage]]
name = "s3"
url = "s3://soak/media"
endpoint = "http://127.0.0.1:$PROXY_PORT"
region = "us-east-1"
access_key_id = "soak"
secret_access_key = "soak"
connect_timeout_secs = 2
request_timeout_secs = 5
retries = 1
EOF
# ID STORAGE ASSET POLICY [KEY_ENTRY]: a [[locator]] block of the config.
locator() {
  printf '\n[[locator]]\nid = "%s"\nstorage = "%s"\nasset = "%s"\npolicy = "%s"\n' "$1" "$2" "$3" "$4"
  [ -z "${5:-}" ] || echo "keys = [$5]"
}
{
  locator "$LOC_LONG" local long-asset clear
  locator "$LOC_CLEAR" s3 ladder clear
  locator "$LOC_AES" s3 ladder envelope '{ kid = "0b6f3a5e9c2d4e8f8a1b3c5d7e9f1a2b", key = "3c9e1f7a5b2d4c6e8f0a1b3d5e7f9a1c" }'
  locator "$LOC_DRM" s3 ladder multi-drm '{ kid = "9eb4050de44b4802932e27d75083e266", key = "166634c675823c235a4a9446fad52e4d" }'
  locator "$LOC_WALK" s3 walk clear
} >>"$CONFIG"
# Keep errors, warnings and non-2xx/3xx access lines only.
SERVER_LOG_KEEP='!/ status=[23][0-9][0-9] /'
ulimit -n 20000 2>/dev/null || true
start_server

# --- path lists -------------------------------------------------------------------------------
hls() { echo "/$1/$2/manifest(format=$3)"; }
MV_LONG=$(hls "$LOC_LONG" long-asset.ism m3u8-cmaf)
PL_LONG=$(video_playlist "$MV_LONG")
segments_of "$PL_LONG" | grep 'Fragments(video=[0-9]' >"$OUT/uncached.txt"
n_long=$(wc -l <"$OUT/uncached.txt")
[ "$n_long" -ge 3000 ] || die "expected ~3,600 segments in $PL_LONG, got $n_long"
awk -v n="$n_long" 'NR % int(n / 16) == 1' "$OUT/uncached.txt" | head -n 16 >"$OUT/cached.txt"

MV_LADDER=$(hls "$LOC_CLEAR" ladder.ism m3u8-cmaf)
{
  echo "$MV_LONG"
  echo "$PL_LONG"
  echo "/$LOC_LONG/long-asset.ism/manifest(format=mpd-time-cmaf)"
  echo "$MV_LADDER"
  video_playlist "$MV_LADDER"
  echo "/$LOC_CLEAR/ladder.ism/manifest(format=mpd-time-cmaf)"
  hls "$LOC_CLEAR" ladder.ism m3u8-aapl
  video_playlist "$(hls "$LOC_CLEAR" ladder.ism m3u8-aapl)"
} >"$OUT/manifests.txt"

# Encrypted: AES-128 MPEG-TS segments and the key URI; cbcs HLS-CMAF segments, and the same
# segments under cenc (a segment URL's encryption= selects the scheme).
PL_AES=$(video_playlist "$(hls "$LOC_AES" ladder.ism 'm3u8-aapl,encryption=cbc')")
PL_CBCS=$(video_playlist "$(hls "$LOC_DRM" ladder.ism 'm3u8-cmaf,encryption=cbcs-aapl')")
{
  echo "$PL_AES"
  segments_of "$PL_AES"
  get "$PL_AES" | tr -d '\r' | sed -n 's/^#EXT-X-KEY:.*URI="\([^"]*\)".*/\1/p' | head -n1 | while read -r uri; do resolve "$PL_AES" "$uri"; done
  echo "/$LOC_DRM/ladder.ism/manifest(format=mpd-time-cmaf,encryption=cenc)"
  echo "$PL_CBCS"
  segments_of "$PL_CBCS" | tee "$OUT/cbcs.txt"
  sed 's/encryption=cbcs-aapl/encryption=cenc/' "$OUT/cbcs.txt"
} >"$OUT/encrypted.txt"
rm -f "$OUT/cbcs.txt"
grep -q '/key/' "$OUT/encrypted.txt" || die "no AES-128 key URI in $PL_AES"

segments_of "$(video_playlist "$(hls "$LOC_WALK" walk.ism m3u8-cmaf)")" | grep 'Fragments(video=[0-9]' >"$OUT/s3-uncached.txt"
get "$(head -n1 "$OUT/s3-uncached.txt")" >/dev/null

# Every listed path answers 200 before the clock starts (this also warms the cached sets).
for list in manifests cached encrypted; do
  while read -r p; do
    get "$p" >/dev/null
  done <"$OUT/$list.txt"
done
cat "$OUT/manifests.txt" "$OUT/cached.txt" "$OUT/encrypted.txt" | sed "s|^|$BASE|" >"$OUT/h2.txt"
log "paths: $(wc -l <"$OUT/manifests.txt") manifests, $(wc -l <"$OUT/cached.txt") cached, $n_long uncached, $(wc -l <"$OUT/encrypted.txt") encrypted, $(wc -l <"$OUT/s3-uncached.txt") on S3 uncached"

# --- 5. traffic -------------------------------------------------------------------------------
T0=$(date +%s)
END=$((T0 + DURATION))
remaining() { echo $((END - $(date +%s))); }

# CLASS PATHS CONNECTIONS DELAY_MS: wrk (one thread) in chunks of ≤ 60 s; one RESULT line per
# chunk, with its start and end times, in $OUT/clients/CLASS.tsv.
wrk_class() {
  local class=$1 paths=$2 conns=$3 delay=$4 secs t line
  while secs=$(remaining) && [ "$secs" -ge 5 ]; do
    [ "$secs" -gt 60 ] && secs=60
    t=$(date +%s)
    WRK_PATHS=$paths WRK_MODE=cycle WRK_THREADS=1 WRK_DELAY_MS=$delay \
      wrk -t 1 -c "$conns" -d "${secs}s" --timeout 30s -s "$ROOT/benches/load/paths.lua" "$BASE" \
      >"$OUT/clients/$class.log" 2>&1 || true
    line=$(grep '^RESULT ' "$OUT/clients/$class.log" || echo "RESULT requests=0 wrk_failed=1")
    echo "$t $(date +%s) ${line#RESULT }" >>"$OUT/clients/$class.tsv"
  done
}

# h2load in chunks: requests done, non-2xx/3xx answers and failed requests per chunk.
h2_class() {
  local secs t
  while secs=$(remaining) && [ "$secs" -ge 5 ]; do
    [ "$secs" -gt 60 ] && secs=60
    t=$(date +%s)
    h2load -c 4 -m 4 --rps "$H2_RPS" -D "$secs" -i "$OUT/h2.txt" >"$OUT/clients/h2.log" 2>&1 || true
    awk -v t="$t" -v e="$(date +%s)" '
      /^requests:/ { done = $6; failed = $10 + $12 + $14 }
      /^status codes:/ { non = $7 + $9 }
      END { printf "%s %s requests=%d non2xx3xx=%d errors=%d\n", t, e, done, non, failed }' \
      "$OUT/clients/h2.log" >>"$OUT/clients/h2.tsv"
  done
}

# Storage outages at T0 + BLIP_AT + k × BLIP_EVERY, BLIP_SECS long.
sleep_until() { local d=$(($1 - $(date +%s))); [ "$d" -le 0 ] || sleep "$d"; }
blips() {
  local at=$((T0 + BLIP_AT))
  while [ $((at + BLIP_SECS)) -le "$END" ]; do
    sleep_until "$at"
    kill -USR1 "$PROXY_PID"
    echo "$at $((at + BLIP_SECS))" >>"$OUT/blips.tsv"
    log "storage down for ${BLIP_SECS} s"
    sleep_until $((at + BLIP_SECS))
    kill -USR2 "$PROXY_PID"
    log "storage up"
    at=$((at + BLIP_EVERY))
  done
}
# Whether [A, B] (epoch seconds) overlaps an outage, widened by BLIP_GRACE (the requests in
# flight when it starts, asset reloads that fail until the next try after it ends).
in_blip() {
  local a=$1 b=$2 s
  for ((s = T0 + BLIP_AT; s <= END; s += BLIP_EVERY)); do
    [ "$b" -ge $((s - 1)) ] && [ "$a" -le $((s + BLIP_SECS + BLIP_GRACE)) ] && return 0
  done
  return 1
}

# One wrk thread per class: a single thread walks its list in order, so the uncached walk
# never meets its own recent segments in the cache.
wrk_class manifests "$OUT/manifests.txt" 4 "$DELAY_MS" &
PIDS+=($!)
wrk_class cached "$OUT/cached.txt" 4 "$DELAY_MS" &
PIDS+=($!)
wrk_class uncached "$OUT/uncached.txt" 4 "$DELAY_MS" &
PIDS+=($!)
wrk_class encrypted "$OUT/encrypted.txt" 2 "$DELAY_MS" &
PIDS+=($!)
wrk_class s3-uncached "$OUT/s3-uncached.txt" 1 500 &
PIDS+=($!)
h2_class &
PIDS+=($!)
python3 benches/soak/slow_clients.py "$PORT" "$OUT/uncached.txt" "$DURATION" $((IDLE_TIMEOUT + 15)) >"$OUT/clients/slow.log" 2>&1 &
SLOW_PID=$!
PIDS+=("$SLOW_PID")
blips &
PIDS+=($!)
TRAFFIC=("${PIDS[@]:2}")
log "soak running for $DURATION s ($(date -u -d @"$END" +%H:%M:%S) UTC)"

# --- 6. sampling ------------------------------------------------------------------------------
metric_sum() { # FILE AWK-CONDITION → the sum of the matching series
  awk "/^jit_/ && $2 { s += \$NF } END { printf \"%d\", s }" "$1"
}
# The change of a metric_sum between the previous CSV row's metrics and now.
delta() { echo $(($(metric_sum "$OUT/metrics-now.txt" "$1") - $(metric_sum "$OUT/metrics-row.txt" "$1"))); }
CSV=$OUT/samples.csv
echo "minute,elapsed_s,rss_mib,rss_max_mib,hwm_mib,cpu_pct,manifest_rps,segment_rps,key_rps,other_rps,status_4xx,status_5xx,segment_hit_pct,segment_cache_mib,asset_index_cache_mib,manifest_cache_mib,connections_open,storage_down" >"$CSV"
: >"$OUT/rss.tsv"
: >"$OUT/5xx-outside-blips.tsv"
DIED=
prev_t=$T0 prev_5xx=0 minute=0 rss_max=0
curl -fsS "$BASE/metrics" >"$OUT/metrics-row.txt"
row_t=$T0 row_ticks=$(cpu_ticks)
down_in_row=0
while [ "$(date +%s)" -lt "$END" ]; do
  sleep "$TICK"
  now=$(date +%s)
  kill -0 "$SERVER_PID" 2>/dev/null || { DIED="server died at +$((now - T0)) s"; log "$DIED"; break; }
  rss=$(status_kib VmRSS)
  echo "$((now - T0)) $((rss / 1024))" >>"$OUT/rss.tsv"
  [ "$rss" -gt "$rss_max" ] && rss_max=$rss
  curl -fsS --max-time 5 "$BASE/metrics" >"$OUT/metrics-now.txt" || { log "warning: /metrics did not answer at +$((now - T0)) s"; continue; }
  n5xx=$(metric_sum "$OUT/metrics-now.txt" '/^jit_http_requests_total/ && /status="5/')
  if [ "$n5xx" -gt "$prev_5xx" ] && ! in_blip "$prev_t" "$now"; then
    echo "$((prev_t - T0)) $((now - T0)) $((n5xx - prev_5xx))" >>"$OUT/5xx-outside-blips.tsv"
    log "$((n5xx - prev_5xx)) 5xx outside an outage (+$((prev_t - T0))..+$((now - T0)) s)"
  fi
  in_blip "$prev_t" "$now" && down_in_row=1
  prev_5xx=$n5xx prev_t=$now
  if [ $((now - row_t)) -ge "$SAMPLE_SECS" ] || [ "$now" -ge "$END" ]; then
    minute=$((minute + 1))
    ticks=$(cpu_ticks)
    secs=$((now - row_t))
    hits=$(delta '/^jit_cache_lookups_total/ && /cache="segment"/ && /result="hit"/')
    lookups=$(delta '/^jit_cache_lookups_total/ && /cache="segment"/')
    awk -v m="$minute" -v e="$((now - T0))" -v rss="$rss" -v max="$rss_max" -v hwm="$(status_kib VmHWM)" \
      -v ticks="$((ticks - row_ticks))" -v hz="$CLK_TCK" -v s="$secs" \
      -v man="$(delta '/^jit_http_requests_total/ && /kind="(manifest|playlist)"/')" \
      -v seg="$(delta '/^jit_http_requests_total/ && /kind="(init|segment)"/')" \
      -v key="$(delta '/^jit_http_requests_total/ && /kind="key"/')" \
      -v oth="$(delta '/^jit_http_requests_total/ && /kind="(other|metrics|health)"/')" \
      -v c4="$(delta '/^jit_http_requests_total/ && /status="4/')" -v c5="$(delta '/^jit_http_requests_total/ && /status="5/')" \
      -v hits="$hits" -v lookups="$lookups" \
      -v cache="$(metric_sum "$OUT/metrics-now.txt" '/^jit_cache_bytes/ && /cache="segment"/')" \
      -v icache="$(metric_sum "$OUT/metrics-now.txt" '/^jit_cache_bytes/ && /cache="(asset|index)"/')" \
      -v mcache="$(metric_sum "$OUT/metrics-now.txt" '/^jit_cache_bytes/ && /cache="manifest"/')" \
      -v conns="$(metric_sum "$OUT/metrics-now.txt" '/^jit_http_connections_open/')" -v down="$down_in_row" 'BEGIN {
        printf "%d,%d,%.0f,%.0f,%.0f,%.1f,%.0f,%.0f,%.1f,%.1f,%d,%d,%.1f,%.0f,%.1f,%.1f,%d,%d\n", m, e, rss / 1024,
          max / 1024, hwm / 1024, ticks / hz / s * 100, man / s, seg / s, key / s, oth / s, c4, c5,
          lookups ? hits * 100 / lookups : 0, cache / 1048576, icache / 1048576, mcache / 1048576, conns, down }' >>"$CSV"
    log "$(tail -n1 "$CSV")"
    row_t=$now row_ticks=$ticks rss_max=0 down_in_row=0
    cp "$OUT/metrics-now.txt" "$OUT/metrics-row.txt"
  fi
done
HWM_MIB=$(($(status_kib VmHWM 2>/dev/null || echo 0) / 1024))
[ -n "$DIED" ] || kill -0 "$SERVER_PID" 2>/dev/null || DIED="server died"
for pid in "${TRAFFIC[@]}"; do
  [ "$pid" = "$SLOW_PID" ] && continue
  wait "$pid" 2>/dev/null || true
done
# The slow clients stop at DURATION and print their counts.
for _ in $(seq 60); do kill -0 "$SLOW_PID" 2>/dev/null || break; sleep 1; done
stop_server
rm -f "$OUT"/metrics-row.txt "$OUT"/get.body

# --- 7. checks, plot, report ------------------------------------------------------------------
CACHES_MIB=$((2 * INDEX_MIB + MANIFEST_MIB + SEGMENT_MIB))
BUDGET_MIB=$(awk -v c="$CACHES_MIB" -v r="$RUNTIME_MIB" -v ck="$CONN_KIB" \
  -v conns="$((4 + 4 + 4 + 2 + 1 + 4 + NEVER_READ + H2_ZERO + SLOWLORIS + 1))" -v held="$((NEVER_READ + H2_ZERO * STREAMS))" \
  -v seg="$HELD_SEGMENT_MIB" 'BEGIN { printf "%.0f", c + r + conns * ck / 1024 + held * seg }')
FAILS=()
[ -z "$DIED" ] || FAILS+=("$DIED")
[ "$HWM_MIB" -le "$BUDGET_MIB" ] || FAILS+=("peak RSS $HWM_MIB MiB above the budget of $BUDGET_MIB MiB")
span=$(((DURATION - WARMUP_SECS) / 3))
[ "$span" -gt 600 ] && span=600
read -r early late < <(awk -v w="$WARMUP_SECS" -v s="$span" -v d="$DURATION" '
  $1 > w && $1 <= w + s && $2 > e { e = $2 }
  $1 > d - s && $2 > l { l = $2 }
  END { print e + 0, l + 0 }' "$OUT/rss.tsv")
[ "$late" -le $((early + RSS_GROWTH_MIB)) ] ||
  FAILS+=("RSS grew: $late MiB in the last $span s against $early MiB after the warm-up (tolerance $RSS_GROWTH_MIB MiB)")
n5xx=$(awk '{ s += $3 } END { print s + 0 }' "$OUT/5xx-outside-blips.tsv")
[ "$n5xx" -eq 0 ] || FAILS+=("$n5xx 5xx outside the storage outages (times in 5xx-outside-blips.tsv, requests in server-1.log)")

# Per client class: totals, and errors in chunks that did not overlap an outage.
CLASS_ROWS=
for f in "$OUT"/clients/*.tsv; do
  class=$(basename "$f" .tsv)
  read -r reqs secs errs errs_blip < <(
    while read -r a b rest; do
      read -r n e < <(tr ' ' '\n' <<<"$rest" | awk -F= '$1 == "requests" { r = $2 }
        $1 ~ /^(non2xx3xx|connect_err|read_err|write_err|timeout_err|errors|wrk_failed)$/ { e += $2 }
        END { print r + 0, e + 0 }')
      if in_blip "$a" "$b"; then echo "$n $((b - a)) 0 $e"; else echo "$n $((b - a)) $e 0"; fi
    done <"$f" | awk '{ r += $1; s += $2; e += $3; eb += $4 } END { print r + 0, s + 0, e + 0, eb + 0 }')
  CLASS_ROWS+="| $class | $reqs | $(awk -v r="$reqs" -v s="$secs" 'BEGIN { printf "%.0f", s ? r / s : 0 }') | $errs | $errs_blip |"$'\n'
  [ "$errs" -eq 0 ] || FAILS+=("$class: $errs failed requests outside the storage outages ($OUT/clients/$class.tsv)")
done
SLOW_ROWS=$(awk '/^SLOW / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "| %s | %s | %s | %s | %s s |\n", v["kind"], v["opened"], v["closed_by_server"], v["outlived"], v["max_life_s"] }' "$OUT/clients/slow.log")
[ -n "$SLOW_ROWS" ] || FAILS+=("slow_clients.py printed no counts ($OUT/clients/slow.log)")
outlived=$(awk '/^SLOW / { for (i = 2; i <= NF; i++) if ($i ~ /^outlived=/) s += substr($i, 10) } END { print s + 0 }' "$OUT/clients/slow.log")
[ "$outlived" -eq 0 ] || FAILS+=("$outlived slow-client connections outlived the ${IDLE_TIMEOUT} s idle timeout + 15 s")

# The plot: RSS every 5 s and the budget (left axis), CPU per sample (right), outages shaded.
PNG=$OUT/soak-rss-cpu.png
{
  echo "set terminal pngcairo size 1000,500 font ',10'"
  echo "set output '$PNG'"
  echo "set title 'jit-origin soak: $((DURATION / 60)) min, budget $BUDGET_MIB MiB, outages shaded'"
  echo "set xlabel 'minutes'; set ylabel 'RSS (MiB)'; set y2label 'CPU (% of one core)'"
  echo "set ytics nomirror; set y2tics; set yrange [0:*]; set y2range [0:*]; set key bottom right; set grid"
  echo "set datafile separator whitespace"
  while read -r a b; do
    echo "set object rect from $(awk -v x="$((a - T0))" 'BEGIN { print x / 60 }'),graph 0 to $(awk -v x="$((b - T0))" 'BEGIN { print x / 60 }'),graph 1 fc rgb '#f4cccc' fs solid 0.5 noborder behind"
  done < <(cat "$OUT/blips.tsv" 2>/dev/null)
  echo "plot '$OUT/rss.tsv' using (\$1/60):2 with lines lw 2 title 'RSS', $BUDGET_MIB with lines dt 2 lc rgb 'red' title 'budget', \\"
  echo "  '< tail -n +2 $CSV | tr , \" \"' using (\$2/60):6 axes x1y2 with linespoints title 'CPU %'"
} >"$OUT/plot.gp"
gnuplot "$OUT/plot.gp" || FAILS+=("gnuplot failed")
if [ -n "${PLOT_TO:-}" ]; then
  mkdir -p "$(dirname "$ROOT/$PLOT_TO")"
  cp "$PNG" "$ROOT/$PLOT_TO"
fi

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "Soak: $((DURATION / 60)) min ($DURATION s) on $(nproc) CPUs (${CPU_MODEL:-unknown CPU}), clients on the same machine."
  echo "Caches asset + index 2 × $INDEX_MIB + manifest $MANIFEST_MIB + segment $SEGMENT_MIB MiB (build_memory_mib $BUILD_MIB);" \
    "storage outage ${BLIP_SECS} s every ${BLIP_EVERY} s from +${BLIP_AT} s (S3 account cut at its TCP proxy)."
  echo "Budget $BUDGET_MIB MiB = caches $CACHES_MIB + runtime $RUNTIME_MIB + connections × $CONN_KIB KiB" \
    "+ $((NEVER_READ + H2_ZERO * STREAMS)) held responses × $HELD_SEGMENT_MIB MiB; peak RSS (VmHWM) **$HWM_MIB MiB**;" \
    "largest RSS sample after the warm-up $early MiB, in the last $span s $late MiB."
  echo
  echo "| min | RSS | max RSS | CPU % | manifests/s | segments/s | keys/s | 4xx | 5xx | segment hits | caches: segment, asset + index, manifest | connections | storage down |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  tail -n +2 "$CSV" | awk -F, '{ printf "| %d | %d MiB | %d MiB | %.0f | %.0f | %.0f | %.1f | %d | %d | %.0f %% | %d, %.1f, %.1f MiB | %d | %s |\n",
    $1, $3, $4, $6, $7, $8, $9, $11, $12, $13, $14, $15, $16, $17, $18 == 1 ? "yes" : "" }'
  echo
  echo "| client class | requests | req/s | errors outside outages | errors during outages |"
  echo "|---|---:|---:|---:|---:|"
  printf '%s' "$CLASS_ROWS"
  echo
  echo "| slow client | connections | closed by the server | outlived idle timeout + 15 s | longest life |"
  echo "|---|---:|---:|---:|---:|"
  echo "$SLOW_ROWS"
  echo
  if [ ${#FAILS[@]} -eq 0 ]; then
    echo "Result: **pass** (RSS within the budget and flat, no 5xx outside the outages, every slow client closed)."
  else
    echo "Result: **FAIL**"
    printf -- '- %s\n' "${FAILS[@]}"
  fi
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
log "plot: $PNG; samples: $CSV"
[ ${#FAILS[@]} -eq 0 ] || exit 1
