#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every test suite, with all set-up, on a fresh machine. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=never
# .cargo/config.toml builds for the host ("host-tuple"): artifacts are in target/<host triple>/.
triple=$(rustc -vV | sed -n 's/host: //p')
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/$triple"

step() { printf '\n== %s\n' "$*"; }
scratch="$(mktemp -d "${TMPDIR:-/tmp}/mm-test-all.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# PATH without the directories that hold cargo or rustc: what a seller's machine has.
no_rust_path() {
  local d kept=""
  IFS=: read -ra dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || kept="${kept:+$kept:}$d"
  done
  echo "$kept"
}

step "rust: format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The workspace build turns the fleet store on (the tests need it); a seller's build of the
# crate with default features does not: lint that build too (its stand-in for the fleet store).
cargo clippy -p marketplace-metering --lib --locked -- -D warnings
# And the smallest build a seller can make (static credentials, no meter), as the peer
# benchmark in bench/rust makes it.
cargo clippy -p marketplace-metering --lib --no-default-features --locked -- -D warnings

step "postgresql and pgbouncer: installed for the fleet store's tests (apt-get when missing)"
# The fleet tests start their own private clusters with this script; one that cannot start
# PostgreSQL fails, it never skips.
bash scripts/private-postgres.sh install

step "rust: tests (core, emulator, bindings' unit tests, examples)"
# The meter's kill -9 crash test runs the real emulator binary (built by this same command).
METERING_EMULATOR_BIN="$out/debug/metering-emulator" \
  cargo test --workspace --locked

step "python: abi3 wheel and sdist built once with maturin, installed into .venv with test tools"
bash scripts/build-wheel.sh \
  --group bindings-python/pyproject.toml:test --group bindings-python/pyproject.toml:lint \
  -r emulator/tests/python/requirements.txt
py=.venv/bin/python
wheel="$(ls "$target"/wheels/*.whl)"
$py scripts/smoke/check_dists.py "$wheel" "$target"/wheels/*.tar.gz
# The code a cold start runs is linked together (bindings-python/build.rs); a stale order
# (after a Cargo.lock change) maps 4 MB of the module instead of 1 MB.
METERING_EMULATOR_BIN="$out/debug/metering-emulator" $py scripts/cold-rss.py

step "python: the wheel in a fresh venv, no cargo or rustc on PATH, smoke test"
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index "$wheel"
(cd "$scratch" && PATH="$(no_rust_path)" "$scratch/venv/bin/python" "$root/scripts/smoke/python_smoke.py")

step "emulator: independent-signer check with boto3"
cargo build --quiet -p metering-emulator --locked
METERING_EMULATOR_BIN="$out/debug/metering-emulator" \
  $py -m pytest -q emulator/tests/python

step "python: sync, async, exceptions, validation, GIL, fork, logging, migration, stubs"
$py -m pytest -q bindings-python/tests

step "fleet chaos with two Python replicas (the wheel in .venv) among the 8, SIGKILLed like the rest"
MM_FLEET_PYTHON="$root/.venv/bin/python" \
  cargo test -p marketplace-metering --test fleet_chaos --locked

step "node: addon built from source, node --test, tsc"
(cd bindings-node && npm install --no-audit --no-fund --loglevel=error && npm test)

step "node: npm pack (main and platform package), offline install, no cargo or rustc on PATH, smoke test"
# The platform package as a release would publish it, with the addon just built; both
# tarballs go into an empty folder, from the tarballs alone (--offline: no registry).
tag="$(node -p "require('./bindings-node/addon.js').addonTag()")"
npm_dir="$scratch/npm"
mkdir -p "$npm_dir/consumer"
cp -r "bindings-node/npm/$tag" "$npm_dir/platform"
cp "bindings-node/marketplace-metering.$tag.node" "$npm_dir/platform/"
(cd bindings-node && npm pack --ignore-scripts --silent --pack-destination "$npm_dir" >/dev/null)
npm pack --silent --pack-destination "$npm_dir" "$npm_dir/platform" >/dev/null
cp scripts/smoke/node/smoke.* "$npm_dir/consumer/"
tsc="$root/bindings-node/node_modules/.bin/tsc"
(
  cd "$npm_dir/consumer"
  export PATH="$(no_rust_path)"
  echo '{ "name": "mm-smoke", "private": true }' >package.json
  npm install --offline --no-audit --no-fund --loglevel=error "$npm_dir"/marketplace-metering-*.tgz
  node smoke.cjs
  node smoke.mjs
  "$tsc" --strict --target es2022 --module node16 --types node \
    --typeRoots "$root/bindings-node/node_modules/@types" --outDir out smoke.ts
  node out/smoke.js
)

step "c and c++: header, ctest (plain, ASan/UBSan, valgrind), relocatable install, consumers"
bash bindings-c/test.sh

step "jvm: generated Kotlin current, native library in the jar, Kotlin and Java JUnit (mvn verify)"
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  apt-get update -qq && apt-get install -y -qq maven default-jdk-headless >/dev/null
fi
bash bindings-jvm/generate.sh --check
(cd bindings-jvm && mvn -B -q verify)

step "all suites passed"
