#!/usr/bin/env bash
# Compares the server CPU cost per request of two server binaries, scenario by scenario. Single
# runs move with the machine's state by ±20 % on a shared VM, so the two builds take turns on
# fresh servers, ROUNDS times, and the medians are compared.
#
# Usage: benches/load/compare.sh OLD_BINARY NEW_BINARY [ROUNDS]   (default 5 rounds)
#   e.g. git stash; cargo build --release; cp target/release/jit-origin /tmp/old
#        git stash pop; cargo build --release
#        benches/load/compare.sh /tmp/old target/release/jit-origin
# Each turn is one `benches/load.sh` run of $SCENARIOS (default: multivariant media-playlist
# cached-segment uncached-segment, one uncached walk, after the usual warm-ups; no static floor
# unless FLOOR=1: it does not depend on the build); DURATION,
# CONNECTIONS and the other load.sh knobs pass through. Prints one line per round and a table
# of medians (CPU µs/request and req/s) per scenario.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n '2,14p' "$0"; exit 2; }
old=$(realpath "$1") new=$(realpath "$2") rounds=${3:-5}
export SCENARIOS=${SCENARIOS:-multivariant media-playlist cached-segment uncached-segment}
out=target/load-compare
samples=$out-samples.tsv # build, round, scenario, cpu µs/req, req/s
: >"$samples"
run() { # NAME BINARY ROUND
  BIN=$2 UNCACHED_WALKS=1 FLOOR=${FLOOR:-0} OUT=$out benches/load.sh >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; exit 1; }
  awk -F'\t' -v b="$1" -v r="$3" 'NR > 1 {print b "\t" r "\t" $1 "\t" $5 "\t" $2}' "$out/results.tsv" >>"$samples"
}
for r in $(seq "$rounds"); do
  run old "$old" "$r"
  run new "$new" "$r"
  awk -F'\t' -v r="$r" '$2 == r {v[$3] = v[$3] " " $1 " " $4} END {for (s in v) printf "round %s %-18s%s µs/req\n", r, s, v[s]}' "$samples"
done
echo
echo "| scenario | old CPU µs/req | new CPU µs/req | change | old req/s | new req/s |  ($rounds rounds, medians)"
echo "|---|---:|---:|---:|---:|---:|"
sort -t$'\t' -k3,3 -k1,1 -k4,4n "$samples" | awk -F'\t' '
  function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { k = $3 SUBSEP $1; n[k]++; cpu[k, n[k]] = $4; rps[k, n[k]] = $5; seen[$3] = 1 }
  END {
    for (s in seen) {
      for (b = 0; b < 2; b++) {
        build = b ? "new" : "old"; k = s SUBSEP build; m = n[k]
        for (i = 1; i <= m; i++) { c[i] = cpu[k, i]; q[i] = rps[k, i] }
        # cpu values arrive sorted; sort req/s (insertion sort, a handful of rounds)
        for (i = 2; i <= m; i++) { x = q[i]; for (j = i - 1; j >= 1 && q[j] > x; j--) q[j + 1] = q[j]; q[j + 1] = x }
        mc[b] = med(c, m); mq[b] = med(q, m)
      }
      printf "| %s | %.0f | %.0f | %+.1f %% | %.0f | %.0f |\n", s, mc[0], mc[1], 100 * (mc[1] - mc[0]) / mc[0], mq[0], mq[1]
    }
  }'
