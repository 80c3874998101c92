#!/usr/bin/env bash
# Runs the fuzz targets: fuzz/run.sh [DURATION] [TARGET...]
#   DURATION per target: 30s, 10m, 2h (default 1m); TARGETs default to all of them.
#   FUZZ_KEEP_GOING=1: keep fuzzing after a finding (libFuzzer's fork mode), to collect them all.
# Builds fuzz/ with libFuzzer's coverage instrumentation on stable Rust (sancov-rustc.sh), then
# runs each target, niced, over its working corpus (target/fuzz/corpus/TARGET, kept between
# runs) seeded from fuzz/seeds/TARGET. Prints executions, exec/s, coverage, corpus size and
# findings per target and writes the table to target/fuzz/summary.md. A finding (panic,
# allocation above the bound, an input running 60 s, 2 GiB RSS) leaves its input in
# target/fuzz/findings/TARGET/ and makes the run exit 1; replay it, with the stack, by
#   RUST_BACKTRACE=1 target/fuzz/release/TARGET target/fuzz/findings/TARGET/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(url boxes ism moov fragments index segments documents webvtt)
duration=${1:-1m}
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL[@]}")
case "$duration" in
  *s) seconds=${duration%s} ;;
  *m) seconds=$(( ${duration%m} * 60 )) ;;
  *h) seconds=$(( ${duration%h} * 3600 )) ;;
  *) echo "duration like 30s, 10m or 2h, not '$duration'" >&2; exit 2 ;;
esac

# libfuzzer-sys compiles libFuzzer itself, with the C++ compiler.
if ! command -v c++ >/dev/null 2>&1; then
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)
  "${SUDO[@]}" apt-get update -q </dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends g++ </dev/null
fi

OUT=target/fuzz
export CARGO_TARGET_DIR=$OUT
echo "==> building fuzz targets ($OUT/release)" >&2
RUSTC_WRAPPER="$PWD/fuzz/sancov-rustc.sh" nice -n 19 \
  cargo build --locked --release --manifest-path fuzz/Cargo.toml --bins </dev/null

summary=$OUT/summary.md
{
  echo "| target | time | executions | exec/s | coverage (edges) | corpus | peak RSS | findings |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$summary"
failed=0
for t in "${targets[@]}"; do
  [ -x "$OUT/release/$t" ] || { echo "no fuzz target '$t' (have: ${ALL[*]})" >&2; exit 2; }
  corpus=$OUT/corpus/$t findings=$OUT/findings/$t log=$OUT/logs/$t.log
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  # Findings of this run only: inputs saved by earlier runs stay for replaying, not counted.
  started=$OUT/logs/$t.started
  touch "$started"
  echo "==> fuzzing $t for ${seconds}s" >&2
  # No stack symbolization while fuzzing (see fuzz/src/lib.rs): a panic still names its line.
  export RUST_BACKTRACE=0
  keep_going=()
  [ -z "${FUZZ_KEEP_GOING:-}" ] || keep_going=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  status=0
  nice -n 19 "$OUT/release/$t" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 "${keep_going[@]}" \
    -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "fuzz/seeds/$t" </dev/null >"$log" 2>&1 || status=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n1; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  if [ -z "$execs" ]; then # fork mode reports "#EXECS: cov: … exec/s: …" lines instead
    execs=$(grep -oE '^#[0-9]+: cov' "$log" | tail -n1 | tr -dc 0-9 || true)
    rate=$(( ${execs:-0} / seconds ))
  fi
  # (none printed when the run ends before its first coverage report)
  cov=$(grep -oE ' cov: [0-9]+' "$log" | tail -n1 | tr -dc 0-9 || true)
  corp=$(find "$corpus" -type f | wc -l)
  new_findings() { find "$findings" -type f ! -name "slow-unit-*" -newer "$started"; } # slow units: reported, not failed
  found=$(new_findings | wc -l)
  if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
    failed=1
    echo "FINDING in $t (exit status $status): $(new_findings | head -n3 | tr '\n' ' ')" >&2
    grep -E '^(==[0-9]+== ERROR|==ALLOCATION BOUND==|thread .* panicked|SUMMARY)' -A2 "$log" | head -n 12 >&2 || true
  fi
  echo "| $t | ${seconds}s | ${execs:-0} | ${rate:-0} | ${cov:-?} | $corp | ${rss:-?} MB | $found |" >>"$summary"
done
cat "$summary"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FINDINGS (see $OUT/findings/ and $OUT/logs/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no findings" >&2
