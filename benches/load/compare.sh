#!/usr/bin/env bash
# Compares the uncached-segment CPU cost of two server binaries. Single walks move with the
# machine's state by ±20 % on a shared VM, so the two builds take turns on fresh servers,
# ROUNDS times, and the medians are compared.
#
# Usage: benches/load/compare.sh OLD_BINARY NEW_BINARY [ROUNDS]   (default 5 rounds)
#   e.g. git stash; cargo build --release; cp target/release/jit-origin /tmp/old
#        git stash pop; cargo build --release
#        benches/load/compare.sh /tmp/old target/release/jit-origin
# Each turn is one `benches/load.sh` run of the uncached-segment scenario (one walk, after the
# usual warm-up); CONNECTIONS and the other load.sh knobs pass through.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
old=$(realpath "$1") new=$(realpath "$2") rounds=${3:-5}
out=target/load-compare
cpu_of() { # BINARY -> CPU µs per request of one walk
  BIN=$1 SCENARIOS=uncached-segment UNCACHED_WALKS=1 OUT=$out benches/load.sh >"$out.log" 2>&1 ||
    { tail -20 "$out.log" >&2; exit 1; }
  awk -F'\t' 'NR > 1 {print $5}' "$out/results.tsv"
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
olds=() news=()
for r in $(seq "$rounds"); do
  olds+=("$(cpu_of "$old")")
  news+=("$(cpu_of "$new")")
  echo "round $r: old ${olds[-1]} µs/req, new ${news[-1]} µs/req"
done
echo "median: old $(median "${olds[@]}") µs/req, new $(median "${news[@]}") µs/req ($rounds rounds)"
