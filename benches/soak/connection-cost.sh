#!/usr/bin/env bash
# What an idle connection costs the origin in memory: the server's RSS with 0, 1,000 and
# 10,000 idle connections of each kind (bare TCP, HTTP/1.1 kept alive after one request, the
# same over TLS, h2c after one request), each count on a freshly started release server. Figures for the README's
# "Memory budget"; results in target/soak/connection-cost.md.
#
# Usage: benches/soak/connection-cost.sh   (BUILD=0 or BIN=PATH to skip the build;
#   COUNTS="1000 10000", MODES="bare h1 tls h2")
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
COUNTS=${COUNTS:-1000 10000}
OUT=${OUT:-target/soak}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG_TAG=connection-cost
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"
need_tools curl:curl openssl:openssl
build_release

max=$(echo "$COUNTS" | tr ' ' '\n' | sort -n | tail -1)
ulimit -n "$((max + 1000))" 2>/dev/null || die "needs ulimit -n ≥ $((max + 1000)) (hard limit $(ulimit -Hn))"
PORT=$(free_port)
TLS_PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
CONFIG=$OUT/connection-cost.toml
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 -days 1 \
  -keyout "$OUT/connection-cost-key.pem" -out "$OUT/connection-cost-cert.pem" 2>/dev/null
# Timeouts long enough that no idle connection is closed while it is measured.
cat >"$CONFIG" <<TOML
# Written by benches/soak/connection-cost.sh.
listen = "127.0.0.1:$PORT"
[limits]
max_connections = $((max + 100))
header_read_timeout_secs = 300
idle_timeout_secs = 300
[tls]
listen = "127.0.0.1:$TLS_PORT"
cert_pem = "connection-cost-cert.pem"
key_pem = "connection-cost-key.pem"
[[storage]]
name = "fixtures"
url = "file://$ROOT/fixtures"
TOML
trap stop_server EXIT

rss_mib() { awk '{printf "%.1f", $1 / 1024}' <<<"$(status_kib VmRSS)"; }

# measure MODE N → sets RSS_BEFORE and RSS_WITH (MiB)
measure() {
  start_server
  curl -fsS -o /dev/null "$BASE/metrics"
  sleep 1
  local fifo=$OUT/idle.fifo ready=$OUT/idle.out
  RSS_BEFORE=$(rss_mib)
  rm -f "$fifo"; mkfifo "$fifo"
  local port=$PORT
  [ "$1" = tls ] && port=$TLS_PORT
  python3 "$ROOT/benches/soak/idle_connections.py" "$port" "$1" "$2" /healthz <"$fifo" >"$ready" &
  local pid=$!
  exec {hold}>"$fifo"
  for _ in $(seq 600); do grep -q READY "$ready" 2>/dev/null && break; kill -0 $pid 2>/dev/null || die "idle_connections.py failed"; sleep 0.2; done
  grep -q READY "$ready" || die "$2 $1 connections not up in 120 s"
  sleep 2
  RSS_WITH=$(rss_mib)
  exec {hold}>&-
  wait $pid || true
  rm -f "$fifo" "$ready"
}

{
  echo "| connections | kind | RSS before | RSS with them | per connection |"
  echo "|---:|---|---:|---:|---:|"
  for mode in ${MODES:-bare h1 tls h2}; do
    for n in $COUNTS; do
      measure "$mode" "$n"
      log "$mode × $n: $RSS_BEFORE → $RSS_WITH MiB"
      awk -v n="$n" -v m="$mode" -v b="$RSS_BEFORE" -v w="$RSS_WITH" \
        'BEGIN { printf "| %d | %s | %.1f MiB | %.1f MiB | %.1f KiB |\n", n, m, b, w, (w - b) * 1024 / n }'
    done
  done
} >"$OUT/connection-cost.md"
stop_server
cat "$OUT/connection-cost.md"
