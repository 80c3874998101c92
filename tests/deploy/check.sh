#!/usr/bin/env bash
# Deployment checks without a Docker engine or a cluster: the Dockerfile and deploy/
# (tests/deploy/validate.py, run with the debug build of the server). Installs the validators
# pinned by tests/deploy/requirements.txt into target/deploy-venv when they are missing or the
# pins changed.
set -euo pipefail

cd "$(dirname "$0")/../.."

VENV=target/deploy-venv
REQUIREMENTS=tests/deploy/requirements.txt
if ! cmp -s "$REQUIREMENTS" "$VENV/.installed-requirements.txt"; then
  if ! python3 -c 'import ensurepip, tomllib, venv' 2>/dev/null; then
    # Debian's python3 ships venv and ensurepip separately; tomllib needs Python 3.11.
    [ "$(id -u)" -eq 0 ] || { echo "need root to install python3-venv" >&2; exit 1; }
    apt-get update -q </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv </dev/null
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" </dev/null
  cp "$REQUIREMENTS" "$VENV/.installed-requirements.txt"
fi

cargo build --locked --quiet --bin jit-origin </dev/null
PATH="$PWD/$VENV/bin:$PATH" exec "$VENV/bin/python" tests/deploy/validate.py "${CARGO_TARGET_DIR:-target}/debug/jit-origin"
