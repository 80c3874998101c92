#!/bin/sh
# RUSTC_WRAPPER for fuzz builds: compiles the origin and the fuzz targets with libFuzzer's
# coverage instrumentation (the stable -C flags cargo-fuzz passes, minus the sanitizer) plus
# debug assertions and overflow checks, and every dependency as usual, so coverage feedback
# comes from our parsers and not from tokio's scheduler.
case "$CARGO_PKG_NAME" in
  jit-origin | jit-origin-fuzz)
    exec "$@" -Cpasses=sancov-module \
      -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares \
      -Cllvm-args=-sanitizer-coverage-stack-depth \
      -Cdebug-assertions -Coverflow-checks
    ;;
esac
exec "$@"
