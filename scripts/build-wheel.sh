#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Python package once, as it ships: the abi3 wheel (manylinux on Linux; the
# pyproject's `dist` profile) and the sdist, with maturin, into
# <cargo target dir>/wheels; then installs that wheel into .venv (created if missing).
# test-all.sh and main-job.sh both call it; the second call finds cargo's work done.
#
#   scripts/build-wheel.sh [PIP INSTALL ARGS...]   (extra packages for .venv, same pip call)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
wheels="${CARGO_TARGET_DIR:-$root/target}/wheels"
# Debian's python3 makes no venv without python3-venv (ensurepip).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq python3-venv >/dev/null
fi
# Made again when an earlier attempt left it without pip (python3-venv was missing).
.venv/bin/python -m pip --version >/dev/null 2>&1 || python3 -m venv --clear .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade "pip>=25.1"
"${pip[@]}" --group bindings-python/pyproject.toml:build "$@"
rm -rf "$wheels"
(cd bindings-python && "$root/.venv/bin/maturin" build --locked --out "$wheels" \
  && "$root/.venv/bin/maturin" sdist --out "$wheels")
"${pip[@]}" --force-reinstall --no-deps "$wheels"/*.whl
