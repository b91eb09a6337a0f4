#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: meter usage from every language against the embedded emulator.
# Does all set-up on a fresh machine (Rust, Python 3, Node and gcc preinstalled; g++, cmake,
# PostgreSQL and a JDK with Maven come from apt when missing):
# builds the Python wheel into .venv and the Node addon from source.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
triple=$(rustc -vV | sed -n 's/host: //p')

echo "== rust"
cargo run --quiet -p example-rust --locked
cargo run --quiet -p example-rust --bin usage_meter --locked

echo "== python"
bash scripts/build-wheel.sh
.venv/bin/python examples/python/meter.py
.venv/bin/python examples/python/usage_meter.py

echo "== node"
(cd bindings-node && npm install --no-audit --no-fund --loglevel=error)
node examples/node/meter.js
node examples/node/usage_meter.js

echo "== fleet store: 3 replicas (2 Python, 1 Node), one private PostgreSQL"
bash scripts/private-postgres.sh install
.venv/bin/python examples/fleet/fleet.py

echo "== c and c++"
# Debian's gcc has no C++ compiler; the C++ example needs g++ and the C build cmake.
need=()
command -v g++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
if [ "${#need[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --quiet -p metering-emulator --locked
METERING_EMULATOR_BIN="${CARGO_TARGET_DIR:-$root/target}/$triple/debug/metering-emulator" bash examples/c/run.sh

echo "== jvm (java and kotlin)"
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  apt-get update -qq && apt-get install -y -qq maven default-jdk-headless >/dev/null
fi
# The library into the local Maven repository (tests run in the test command), then the
# examples as a seller's project depending on it.
(cd bindings-jvm && mvn -B -q install -DskipTests)
(cd examples/jvm && mvn -B -q compile exec:exec@java exec:exec@kotlin)
