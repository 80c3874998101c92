#!/usr/bin/env bash
# Live load benchmark of `jit-origin serve`: N live events of 3 renditions each, pushed over RTMP
# at real time, while followers poll their live playlists and fetch each new segment. Finds how
# many events this machine sustains.
#
# Usage: benches/live.sh            (from anywhere; run as root or with wrk/ffmpeg installed)
#
# What it does, for each N in $EVENTS:
#   1. (once) installs wrk and ffmpeg when missing; cargo build --release; makes the source
#      target/live-source/source.mkv (benches/live/make-source.sh: 1280x720 1500k, 960x540 800k,
#      640x360 400k H.264 with closed 2 s GOPs, AAC; made once, kept);
#   2. writes a config with N [[live_event]]s (one locator each) and an RTMP ingest listener on a
#      fresh local storage folder, starts target/release/jit-origin, starts every event
#      (`jit-origin live-event start`), and starts N ffmpeg pushers (`-re -c copy`, one RTMP
#      stream per rendition with the audio, as a pass-through encoder; starts spread over 2 s);
#   3. once every event has its tracks stored (3 video, 1 audio), three phases of $PHASE_SECS each:
#        ingest    nothing but the pushes: server CPU per ingested second of media per event
#                  (Δ utime+stime of the server from /proc over N × the phase);
#        playlists wrk ($THREADS threads, $CONNECTIONS connections) cycles through every live
#                  media playlist of every event as fast as it can: live-playlist CPU µs/request =
#                  (server CPU − the ingest phase's CPU rate × the phase) / requests, and wrk's
#                  p50/p99;
#        follow    wrk with benches/live/follow.lua ($THREADS followers, each playlist polled every
#                  $PLAYLIST_EVERY_MS, each new segment fetched once), and benches/live/probe.py
#                  following the lowest video track of up to $LATENCY_EVENTS events: arrival →
#                  availability latency per fragment = first 200 for its segment, once a media
#                  playlist lists it, minus the fragment object's modification time in storage
#                  (written when the fragment was complete): p50/p99;
#   4. real time: how far each event's slowest track got (benches/live/probe.py progress) over
#      the three phases against the wall clock (ratio ≥ 0.9: fragments are 2 s, so a minute
#      reads ±3 %), and above all how far it lags the wall clock at the end (≤ 6 s: a fragment
#      is complete when the next GOP begins; an ingest that cannot keep up lags more and more),
#      every pusher alive, no ingest error, no segment a playlist listed answered other than 200.
#   Prints a Markdown table, one row per N, and the largest N sustained with p99 < 500 ms.
#
# Knobs (environment): EVENTS="10 25 50 75" PHASE_SECS=20 THREADS=4 CONNECTIONS=16
#   PLAYLIST_EVERY_MS=1000 LATENCY_EVENTS=20 OUT=target/live-bench BUILD=0 BIN=PATH
# Results: $OUT/results.md, $OUT/results.tsv, wrk, probe and server logs in $OUT/.
#
# Notes: the pushers (ffmpeg -c copy, about 1 % of a core each), wrk and the probe share the
# machine with the server; only the server's own CPU is counted. The probe polls storage and
# the playlist every 10 ms, so a latency is late by up to ~10 ms plus a request.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
EVENTS=${EVENTS:-10 25 50 75}
PHASE_SECS=${PHASE_SECS:-20}
THREADS=${THREADS:-4}
CONNECTIONS=${CONNECTIONS:-16}
PLAYLIST_EVERY_MS=${PLAYLIST_EVERY_MS:-1000}
LATENCY_EVENTS=${LATENCY_EVENTS:-20}
OUT=${OUT:-target/live-bench}
P99_TARGET_MS=500
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CLK_TCK=$(getconf CLK_TCK)
SOURCE=$ROOT/target/live-source/source.mkv
PROBE=$ROOT/benches/live/probe.py

LOG_TAG=live
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

need_tools wrk:wrk ffmpeg:ffmpeg curl:curl python3:python3
build_release
# Startup, three phases and slack.
SOURCE_SECS=$((3 * PHASE_SECS + 90))
log "source: $SOURCE (${SOURCE_SECS} s, made once)"
benches/live/make-source.sh "$SOURCE" "$SOURCE_SECS"

PUSH_PIDS=()
WRK_PID=
cleanup() {
  [ -n "$WRK_PID" ] && kill "$WRK_PID" 2>/dev/null || true
  [ ${#PUSH_PIDS[@]} -gt 0 ] && kill "${PUSH_PIDS[@]}" 2>/dev/null || true
  stop_server
}
trap cleanup EXIT

RESULTS=$OUT/results.tsv
printf 'events\trenditions\tcpu_pct_ingest\tms_cpu_per_media_s_event\tplaylist_us_req\tplaylist_p50_ms\tplaylist_p99_ms\tfollow_req_s\tavail_p50_ms\tavail_p99_ms\tsamples\trealtime_ratio\tmax_lag_s\tsustained\tnotes\n' >"$RESULTS"

token() { printf 'bench-access-token-%05d' "$1"; }
folders() { for i in $(seq 0 $(($1 - 1))); do echo "live/ev$i"; done; }
# The wall clock, in seconds with ms.
now() { date +%s.%3N; }

# Runs wrk; sets R[...] from its RESULT line. wrk_run NAME SCRIPT PATHS THREADS CONNECTIONS SECS
wrk_run() {
  local log=$OUT/wrk-$1.log
  WRK_PATHS=$3 WRK_MODE=cycle WRK_THREADS=$4 PLAYLIST_EVERY_MS=$PLAYLIST_EVERY_MS \
    wrk -t "$4" -c "$5" -d "${6}s" --timeout 10s --latency -s "$2" "$BASE" >"$log" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { cat "$log" >&2; die "wrk failed ($1)"; }
  WRK_PID=
  local line kv
  line=$(grep '^RESULT ' "$log") || { cat "$log" >&2; die "no RESULT from wrk ($1)"; }
  R=()
  for kv in ${line#RESULT }; do R[${kv%%=*}]=${kv#*=}; done
}

# Sum of a Prometheus series over its labels, from $OUT/metrics-N.txt.
metric_sum() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}' "$2"; }

run_events() {
  local n=$1 i notes=""
  MEDIA=$OUT/media-$n
  rm -rf "$MEDIA"
  mkdir -p "$MEDIA"
  CONFIG=$OUT/origin-$n.toml
  PORT=$(free_port)
  RTMP_PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  {
    echo "# Written by benches/live.sh."
    echo "listen = \"127.0.0.1:$PORT\""
    echo "[ingest]"
    echo "rtmp_listen = \"127.0.0.1:$RTMP_PORT\""
    echo "max_connections = $((3 * n + 16))"
    echo "[[storage]]"
    echo "name = \"live\""
    echo "url = \"file://$MEDIA\""
    for i in $(seq 0 $((n - 1))); do
      printf '[[live_event]]\nname = "ev%d"\naccess_token = "%s"\nstorage = "live"\nfolder = "live/ev%d"\n' "$i" "$(token "$i")" "$i"
      printf '[[locator]]\nid = "loc-ev%d"\nstorage = "live"\nasset = "live/ev%d"\npolicy = "clear"\n' "$i" "$i"
    done
  } >"$CONFIG"
  # Warnings and errors only: an access-log line per request would be most of the log.
  SERVER_LOG_KEEP='/WARN|ERROR/' start_server
  for i in $(seq 0 $((n - 1))); do "$BIN" live-event start --config "$CONFIG" "ev$i" >/dev/null; done

  log "N=$n: starting $n pushers (3 RTMP streams each)"
  PUSH_PIDS=()
  local push_start
  push_start=$(now)
  for i in $(seq 0 $((n - 1))); do
    local url=rtmp://127.0.0.1:$RTMP_PORT/live/$(token "$i")
    ffmpeg -nostdin -v error -re -i "$SOURCE" \
      -map 0:v:0 -map 0:a -c copy -f flv "$url/q0" \
      -map 0:v:1 -map 0:a -c copy -f flv "$url/q1" \
      -map 0:v:2 -map 0:a -c copy -f flv "$url/q2" 2>"$OUT/push-$n-$i.log" &
    PUSH_PIDS+=($!)
    sleep "$(awk -v n="$n" 'BEGIN {printf "%.3f", 2 / n}')"
  done

  # Every event with its 4 tracks stored (3 video; the audio of the stream first published).
  local deadline=$((SECONDS + 40)) ready
  while :; do
    ready=$(python3 "$PROBE" progress "$MEDIA" $(folders "$n") | awk '$2 > 0 && $3 >= 4' | wc -l)
    [ "$ready" -ge "$n" ] && break
    [ $SECONDS -lt $deadline ] || die "N=$n: only $ready of $n events have their 4 tracks after 40 s (see $OUT/push-$n-*.log, $SERVER_LOG)"
    sleep 1
  done
  log "N=$n: every event live"

  # Every live media playlist of every event.
  : >"$OUT/playlists-$n.txt"
  for i in $(seq 0 $((n - 1))); do
    local mv="/loc-ev$i/ev$i.ism/manifest(format=m3u8-cmaf)"
    get "$mv" | tr -d '\r' | awk '
      /^#EXT-X-STREAM-INF/ { getline; print; next }
      /^#EXT-X-MEDIA:/ && /TYPE=AUDIO/ && match($0, /URI="[^"]*"/) { print substr($0, RSTART + 5, RLENGTH - 6) }' |
      sort -u | while read -r uri; do resolve "$mv" "$uri"; done >>"$OUT/playlists-$n.txt"
  done
  log "N=$n: $(wc -l <"$OUT/playlists-$n.txt") live media playlists"

  # Phase 1: ingest only.
  local p0 t0 t1 wall0 wall1
  p0=$(python3 "$PROBE" progress "$MEDIA" $(folders "$n"))
  wall0=$(now)
  t0=$(cpu_ticks)
  sleep "$PHASE_SECS"
  t1=$(cpu_ticks)
  local ingest_ticks=$((t1 - t0))
  local cpu_pct ms_per
  cpu_pct=$(awk -v t="$ingest_ticks" -v hz="$CLK_TCK" -v s="$PHASE_SECS" 'BEGIN {printf "%.1f", t / hz / s * 100}')
  ms_per=$(awk -v t="$ingest_ticks" -v hz="$CLK_TCK" -v s="$PHASE_SECS" -v n="$n" 'BEGIN {printf "%.2f", t / hz * 1000 / (n * s)}')
  log "N=$n ingest: server CPU $cpu_pct % of a core, $ms_per ms per media second per event"

  # Phase 2: live playlists as fast as wrk asks.
  t0=$(cpu_ticks)
  wrk_run "playlists-$n" "$ROOT/benches/load/paths.lua" "$OUT/playlists-$n.txt" 2 "$CONNECTIONS" "$PHASE_SECS"
  t1=$(cpu_ticks)
  local playlist_us p50 p99
  playlist_us=$(awk -v t=$((t1 - t0)) -v ti="$ingest_ticks" -v hz="$CLK_TCK" -v req="${R[requests]}" -v d="${R[duration_us]}" -v s="$PHASE_SECS" \
    'BEGIN {extra = t - ti * (d / 1e6) / s; if (extra < 0) extra = 0; printf "%.0f", extra / hz * 1e6 / req}')
  p50=$(awk -v v="${R[p50_us]}" 'BEGIN {printf "%.2f", v / 1000}')
  p99=$(awk -v v="${R[p99_us]}" 'BEGIN {printf "%.2f", v / 1000}')
  local errs=$((R[non2xx3xx] + R[connect_err] + R[read_err] + R[write_err] + R[timeout_err]))
  [ "$errs" -eq 0 ] || notes="${notes:+$notes; }playlists: $errs errors"
  log "N=$n playlists: ${R[requests]} requests, $playlist_us µs CPU/req, p50 $p50 ms, p99 $p99 ms"

  # Phase 3: followers and the availability probe.
  local sampled=$((n < LATENCY_EVENTS ? n : LATENCY_EVENTS)) specs=()
  for i in $(seq 0 $((sampled - 1))); do specs+=("loc-ev$i:ev$i:live/ev$i"); done
  python3 "$PROBE" latency "$BASE" "$MEDIA" "$PHASE_SECS" "${specs[@]}" >"$OUT/latency-$n.txt" &
  local probe_pid=$!
  wrk_run "follow-$n" "$ROOT/benches/live/follow.lua" "$OUT/playlists-$n.txt" "$THREADS" "$THREADS" "$PHASE_SECS"
  wait "$probe_pid" || die "the latency probe failed"
  local follow_rps
  follow_rps=$(awk -v r="${R[requests]}" -v d="${R[duration_us]}" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
  errs=$((R[non2xx3xx] + R[connect_err] + R[read_err] + R[write_err] + R[timeout_err] + R[not200]))
  [ "$errs" -eq 0 ] || notes="${notes:+$notes; }follow: $errs errors"
  log "N=$n follow: ${R[playlists]} playlist and ${R[segments]} segment requests ($follow_rps req/s)"

  # Real time over the three phases, and the lag at the end.
  local p1
  wall1=$(now)
  p1=$(python3 "$PROBE" progress "$MEDIA" $(folders "$n"))
  local ratio lag
  ratio=$(join <(echo "$p0" | sort) <(echo "$p1" | sort) | awk -v w=$(awk -v a="$wall0" -v b="$wall1" 'BEGIN {print b - a}') \
    'BEGIN {m = 1e9} {r = ($4 - $2) / w; if (r < m) m = r} END {printf "%.3f", m}')
  lag=$(echo "$p1" | awk -v w=$(awk -v a="$push_start" -v b="$wall1" 'BEGIN {print b - a}') \
    'BEGIN {m = 0} {l = w - $2; if (l > m) m = l} END {printf "%.1f", m}')
  local alive=0 pid
  for pid in "${PUSH_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -eq "$n" ] || notes="${notes:+$notes; }$((n - alive)) pushers ended early"

  curl -fsS "$BASE/metrics" >"$OUT/metrics-$n.txt"
  local ingest_errors store_mean_ms
  ingest_errors=$(metric_sum jit_ingest_errors_total "$OUT/metrics-$n.txt")
  store_mean_ms=$(awk '/^jit_ingest_store_seconds_sum/ {s = $2} /^jit_ingest_store_seconds_count/ {c = $2} END {printf "%.1f", c ? s / c * 1000 : 0}' "$OUT/metrics-$n.txt")
  [ "$ingest_errors" = 0 ] || notes="${notes:+$notes; }$ingest_errors ingest errors"

  local a50 a99 samples missed
  missed=$(awk '/^missed/ {print $2}' "$OUT/latency-$n.txt")
  grep -v '^missed' "$OUT/latency-$n.txt" | sort -n >"$OUT/latency-$n.sorted"
  samples=$(wc -l <"$OUT/latency-$n.sorted")
  [ "$samples" -gt 0 ] || die "N=$n: no availability sample (see $OUT/latency-$n.txt)"
  a50=$(awk -v n="$samples" 'NR == int((n - 1) * 0.50) + 1 {print $1}' "$OUT/latency-$n.sorted")
  a99=$(awk -v n="$samples" 'NR == int((n - 1) * 0.99) + 1 {print $1}' "$OUT/latency-$n.sorted")
  [ "${missed:-0}" -eq 0 ] || notes="${notes:+$notes; }$missed fragments not available within 10 s"
  notes="${notes:+$notes; }store mean $store_mean_ms ms"

  local sustained=no
  if awk -v r="$ratio" -v l="$lag" -v p="$a99" -v t="$P99_TARGET_MS" 'BEGIN {exit !(r >= 0.9 && l <= 6 && p < t)}' &&
    [ "$alive" -eq "$n" ] && [ "$ingest_errors" = 0 ] && [ "${missed:-0}" -eq 0 ]; then
    sustained=yes
  fi
  printf '%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n' "$n" $((3 * n)) "$cpu_pct" "$ms_per" "$playlist_us" "$p50" "$p99" \
    "$follow_rps" "$a50" "$a99" "$samples" "$ratio" "$lag" "$sustained" "$notes" >>"$RESULTS"
  log "N=$n: $(tail -n1 "$RESULTS" | tr '\t' ' ')"

  kill "${PUSH_PIDS[@]}" 2>/dev/null || true
  wait "${PUSH_PIDS[@]}" 2>/dev/null || true
  PUSH_PIDS=()
  stop_server
  rm -rf "$MEDIA"
}

declare -A R
for n in $EVENTS; do run_events "$n"; done

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
best=$(awk -F'\t' 'NR > 1 && $14 == "yes" && $1 > b {b = $1} END {print b + 0}' "$RESULTS")
{
  echo "Machine: $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}; the pushers (ffmpeg -c copy), wrk and the probe on the same machine."
  echo "Each event: 3 H.264 renditions (1500/800/400 kbit/s, 2 s GOPs) + AAC over 3 RTMP streams; phases of $PHASE_SECS s; followers poll each playlist every $PLAYLIST_EVERY_MS ms; availability sampled on the lowest video track of up to $LATENCY_EVENTS events."
  echo
  echo "| events (renditions) | server CPU, ingest only | CPU per media s per event | live playlist CPU/req | playlist p50 / p99 | followers req/s | arrival → available p50 / p99 (samples) | real time (min ratio, max lag) | sustained | notes |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
  tail -n +2 "$RESULTS" | awk -F'\t' '{ printf "| %s (%s) | %s %% | %s ms | %s µs | %s / %s ms | %s | %s / %s ms (%s) | %s, %s s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 }'
  echo
  echo "Largest N sustained at real time with p99 arrival → availability < $P99_TARGET_MS ms: ${best} events ($((3 * best)) renditions)."
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
