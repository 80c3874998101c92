#!/usr/bin/env bash
# The project's test command (README): installs ffmpeg if missing, then runs every test, then
# the deployment checks.
# Used by CI (.ci/run) on a fresh machine with CI=true and no stdin.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v ffmpeg >/dev/null 2>&1; then
  log "ffmpeg not found; installing it with apt-get"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ffmpeg" >&2; exit 1; }
    SUDO=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q </dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends ffmpeg </dev/null
fi
log "$(ffmpeg -version | head -n1)"
log "$(cargo --version)"

log "cargo test --locked"
mkdir -p target
LOG=target/test-output.log
start=$(date +%s)
status=0
cargo test --locked </dev/null 2>&1 | tee "$LOG" || status=$?
# With pipefail, status is cargo's (tee does not fail).
elapsed=$(( $(date +%s) - start ))

# ---- deployment checks: Dockerfile and deploy/ (tests/deploy/check.sh installs its validators)
log "deployment checks (tests/deploy/check.sh)"
DEPLOY_LOG=target/deploy-output.log
deploy_start=$(date +%s)
deploy_status=0
tests/deploy/check.sh </dev/null 2>&1 | tee "$DEPLOY_LOG" || deploy_status=$?
deploy_elapsed=$(( $(date +%s) - deploy_start ))
# ---- end of deployment checks

log "summary (cargo test ${elapsed}s, deployment checks ${deploy_elapsed}s)"
grep -E '^(test result:|     Running|failures:$|    [a-z_:0-9]+$)' "$LOG" >&2 || true
grep -E '^(FAIL |deploy: )' "$DEPLOY_LOG" >&2 || true
if [ "$status" -eq 0 ] && [ "$deploy_status" -eq 0 ]; then
  echo "ALL TESTS PASSED" >&2
  exit 0
fi
echo "TESTS FAILED (cargo exit status $status, deployment checks $deploy_status); see $LOG, $DEPLOY_LOG" >&2
exit 1
