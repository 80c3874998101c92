#!/usr/bin/env bash
# The project's test command (README): installs what the tests need when it is missing
# (ffmpeg; the storage emulators: moto's S3 server, Azurite, fake-gcs-server), then runs
# every test. Used by CI (.ci/run) on a fresh machine with CI=true and no stdin.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# System packages: ffmpeg (decoding oracle), Python with venv (moto, fake-gcs-server) and
# Node.js with npm (Azurite).
apt_packages=()
command -v ffmpeg >/dev/null 2>&1 || apt_packages+=(ffmpeg)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_packages+=(python3 python3-venv)
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  log "installing ${apt_packages[*]} with apt-get"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${apt_packages[*]}" >&2; exit 1; }
    SUDO=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q </dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${apt_packages[@]}" </dev/null
fi

# Storage emulators, pinned in tests/storage/; reinstalled only when their pins change.
venv=target/storage-tools/venv
if ! cmp -s tests/storage/requirements.txt "$venv/requirements.installed" 2>/dev/null; then
  log "installing moto and fake-gcs-server into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q -r tests/storage/requirements.txt </dev/null
  cp tests/storage/requirements.txt "$venv/requirements.installed"
fi
if ! cmp -s tests/storage/package-lock.json tests/storage/node_modules/.lock.installed 2>/dev/null; then
  log "installing Azurite (npm ci in tests/storage)"
  (cd tests/storage && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null)
  cp tests/storage/package-lock.json tests/storage/node_modules/.lock.installed
fi

log "$(ffmpeg -version | head -n1)"
log "$(cargo --version); $("$venv/bin/python" --version); node $(node --version)"

log "cargo test --locked"
mkdir -p target
LOG=target/test-output.log
start=$(date +%s)
status=0
cargo test --locked </dev/null 2>&1 | tee "$LOG" || status=$?
# With pipefail, status is cargo's (tee does not fail).
elapsed=$(( $(date +%s) - start ))

log "summary (${elapsed}s)"
grep -E '^(test result:|     Running|failures:$|    [a-z_:0-9]+$)' "$LOG" >&2 || true
if [ "$status" -eq 0 ]; then
  echo "ALL TESTS PASSED" >&2
else
  echo "TESTS FAILED (cargo exit status $status); see $LOG" >&2
fi
exit "$status"
