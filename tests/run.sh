#!/usr/bin/env bash
# The project's test command (README): installs what the tests need when missing (ffmpeg;
# Chromium, Node.js and the e2e npm packages; the storage emulators: moto's S3 server, Azurite,
# fake-gcs-server; the Azure Media Services SDK), runs every cargo test, the end-to-end player
# matrix (tests/e2e) and the deployment checks (tests/deploy) and a short run of every fuzz
# target (fuzz/run.sh).
# Used by CI (.ci/run) on a fresh machine with CI=true and no stdin.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# System packages: ffmpeg (decoding oracle), Chromium (player tests), Python with venv (moto,
# fake-gcs-server) and Node.js with npm (players, Azurite).
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
# ss reads the listen backlog in tests/limits.rs.
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing with apt-get: ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q </dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# playwright-core and dash.js need Node.js 20 or later; Debian 12's own nodejs is 18, so a
# machine whose Node.js came from that package stops here with the reason.
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "Node.js $(node --version) is too old for the player tests: need 20 or later" >&2; exit 1; }

# The e2e npm packages, pinned by tests/e2e/package-lock.json: `npm ci` when node_modules is
# missing or was installed from another lock file. Never a browser download (Debian's
# Chromium is used).
E2E=tests/e2e
if ! cmp -s "$E2E/package-lock.json" "$E2E/node_modules/.installed-package-lock.json"; then
  log "npm ci in $E2E"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
  cp "$E2E/package-lock.json" "$E2E/node_modules/.installed-package-lock.json"
fi

# A Python venv with the packages pinned in REQUIREMENTS, (re)made only when the pins change.
pinned_venv() { # VENV REQUIREMENTS WHAT
  if ! cmp -s "$2" "$1/requirements.installed" 2>/dev/null; then
    log "installing $3 into $1"
    rm -rf "$1"
    python3 -m venv "$1"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$1/bin/pip" install -q -r "$2" </dev/null
    cp "$2" "$1/requirements.installed"
  fi
}

# Storage emulators, pinned in tests/storage/.
pinned_venv target/storage-tools/venv tests/storage/requirements.txt "moto and fake-gcs-server"
if ! cmp -s tests/storage/package-lock.json tests/storage/node_modules/.lock.installed 2>/dev/null; then
  log "installing Azurite (npm ci in tests/storage)"
  (cd tests/storage && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null)
  cp tests/storage/package-lock.json tests/storage/node_modules/.lock.installed
fi

# The official Azure Media Services SDK for tests/sdk.rs, pinned in tests/sdk/.
pinned_venv target/azure-sdk/venv tests/sdk/requirements.txt azure-mgmt-media

# An ffmpeg that publishes HEVC over enhanced RTMP (tests/rtmp_ingest.rs), pinned in tests/rtmp/.
pinned_venv target/ffmpeg-9/venv tests/rtmp/requirements.txt "ffmpeg 9 (imageio-ffmpeg)"

log "$(ffmpeg -version | head -n1)"
log "$(chromium --version 2>/dev/null | head -n1); node $(node --version); $(target/storage-tools/venv/bin/python --version)"
log "$(cargo --version)"

log "cargo test --locked"
mkdir -p target
LOG=target/test-output.log
start=$(date +%s)
status=0
cargo test --locked </dev/null 2>&1 | tee "$LOG" || status=$?
# With pipefail, status is cargo's (tee does not fail).
elapsed=$(( $(date +%s) - start ))

log "end-to-end player tests (node $E2E/run.mjs)"
E2E_LOG=target/e2e-output.log
e2e_start=$(date +%s)
e2e_status=0
{ cargo build --locked --bin jit-origin && node "$E2E/run.mjs"; } </dev/null 2>&1 | tee "$E2E_LOG" || e2e_status=$?
e2e_elapsed=$(( $(date +%s) - e2e_start ))

# ---- deployment checks: Dockerfile and deploy/ (tests/deploy/check.sh installs its validators)
log "deployment checks (tests/deploy/check.sh)"
DEPLOY_LOG=target/deploy-output.log
deploy_start=$(date +%s)
deploy_status=0
tests/deploy/check.sh </dev/null 2>&1 | tee "$DEPLOY_LOG" || deploy_status=$?
deploy_elapsed=$(( $(date +%s) - deploy_start ))
# ---- end of deployment checks

# ---- fuzzing: a short run of every fuzz target (fuzz/run.sh; the README's "Fuzzing")
log "fuzzing, 15 s per target (fuzz/run.sh 15s)"
FUZZ_LOG=target/fuzz-output.log
fuzz_start=$(date +%s)
fuzz_status=0
fuzz/run.sh 15s </dev/null 2>&1 | tee "$FUZZ_LOG" || fuzz_status=$?
fuzz_elapsed=$(( $(date +%s) - fuzz_start ))
# ---- end of fuzzing

log "summary (cargo test ${elapsed}s, e2e ${e2e_elapsed}s, deployment checks ${deploy_elapsed}s, fuzzing ${fuzz_elapsed}s)"
grep -E '^(test result:|     Running|failures:$|    [a-z_:0-9]+$)' "$LOG" >&2 || true
grep -E '^(e2e: |FAILED )' "$E2E_LOG" >&2 || true
grep -E '^(FAIL |deploy: )' "$DEPLOY_LOG" >&2 || true
grep -E '^(\| |fuzz: |FINDING )' "$FUZZ_LOG" >&2 || true
if [ "$status" -eq 0 ] && [ "$e2e_status" -eq 0 ] && [ "$deploy_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]; then
  echo "ALL TESTS PASSED" >&2
  exit 0
fi
[ "$status" -eq 0 ] || echo "TESTS FAILED (cargo exit status $status); see $LOG" >&2
[ "$e2e_status" -eq 0 ] || echo "E2E TESTS FAILED (exit status $e2e_status); see $E2E_LOG" >&2
[ "$deploy_status" -eq 0 ] || echo "DEPLOYMENT CHECKS FAILED (exit status $deploy_status); see $DEPLOY_LOG" >&2
[ "$fuzz_status" -eq 0 ] || echo "FUZZING FAILED (exit status $fuzz_status); see $FUZZ_LOG" >&2
exit 1
