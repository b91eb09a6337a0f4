#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every test suite, with all set-up, on a fresh machine. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=never
# .cargo/config.toml builds for the host ("host-tuple"): artifacts are in target/<host triple>/.
triple=$(rustc -vV | sed -n 's/host: //p')
out="${CARGO_TARGET_DIR:-$root/target}/$triple"

step() { printf '\n== %s\n' "$*"; }

step "rust: format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust: tests (core, emulator, bindings' unit tests, examples)"
# The meter's kill -9 crash test runs the real emulator binary (built by this same command).
METERING_EMULATOR_BIN="$out/debug/metering-emulator" \
  cargo test --workspace --locked

step "python: virtual environment, package built from source, test tools"
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
$py -m pip install --quiet --disable-pip-version-check ./bindings-python \
  --group bindings-python/pyproject.toml:test --group bindings-python/pyproject.toml:lint \
  -r emulator/tests/python/requirements.txt

step "emulator: independent-signer check with boto3"
cargo build --quiet -p metering-emulator --locked
METERING_EMULATOR_BIN="$out/debug/metering-emulator" \
  $py -m pytest -q emulator/tests/python

step "python: sync, async, exceptions, validation, GIL, fork, logging, migration, stubs"
$py -m pytest -q bindings-python/tests

step "node: addon built from source, node --test, tsc"
(cd bindings-node && npm install --no-audit --no-fund --loglevel=error && npm test)

if [ -f bindings-c/test.sh ]; then
  step "c and c++: header, ctest (plain, ASan/UBSan, valgrind), install, consumers"
  bash bindings-c/test.sh
fi

step "all suites passed"
