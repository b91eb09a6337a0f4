#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark: the same sequential 25-record BatchMeterUsage loop from C and through the Rust core,
# against one emulator process, for SECONDS each (default 10), alternating ROUNDS times (default 2).
#   bench/c/run.sh [SECONDS] [ROUNDS]
# With "meter" first: UsageMeter record() calls/s through the C API per store and durability
# (bench.c's meter mode), SECONDS per case (default 2), THREADS for the shared cases (default 8);
# "no-fsync" runs the file-store cases with mm_meter_config_set_power_loss_safe(cfg, false).
#   bench/c/run.sh meter [SECONDS] [THREADS] [no-fsync]
set -euo pipefail
mode=loop
if [ "${1:-}" = meter ]; then mode=meter; shift; fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
if [ "$mode" = meter ]; then seconds="${1:-2}"; threads="${2:-8}"; fsync="${3:-fsync}"; else seconds="${1:-10}"; rounds="${2:-2}"; fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
triple="$(rustc -vV | sed -n 's/host: //p')"
rel="$CARGO_TARGET_DIR/$triple/release"
# Separate builds: a target filter (--example) would otherwise skip the emulator's binary.
cargo build --release -q -p metering-emulator --bin metering-emulator
cargo build --release -q -p marketplace-metering-c --lib --example core_loop
work="$(mktemp -d)"
emu_pid=""
trap '[ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; rm -rf "$work"' EXIT
gcc -O2 -std=c11 -Wall -Wextra -Wpedantic -Werror -pthread -I"$root/bindings-c/include" "$here/bench.c" \
  -o "$work/bench" -L"$rel" -lmarketplace_metering -Wl,-rpath,"$rel"
"$rel/metering-emulator" --port 0 >"$work/emu.out" 2>/dev/null &
emu_pid=$!
for _ in $(seq 1 100); do grep -q METERING_EMULATOR_PORT= "$work/emu.out" && break; sleep 0.1; done
port="$(sed -n 's/^METERING_EMULATOR_PORT=//p' "$work/emu.out")"
[ -n "$port" ] || { echo "the emulator did not start" >&2; exit 1; }
endpoint="http://127.0.0.1:$port"
if [ "$mode" = meter ]; then
  "$work/bench" "$endpoint" meter "$seconds" "$threads" "$work" "$fsync"
  exit 0
fi
echo "emulator at $endpoint; $seconds s per run, $rounds rounds"
c_total=0; r_total=0
for _ in $(seq 1 "$rounds"); do
  c_line="$("$work/bench" "$endpoint" "$seconds")"; echo "$c_line"
  r_line="$("$rel/examples/core_loop" "$endpoint" "$seconds")"; echo "$r_line"
  c_total="$(echo "$c_line" | awk -v t="$c_total" '{print t + $(NF-3)}')"
  r_total="$(echo "$r_line" | awk -v t="$r_total" '{print t + $(NF-3)}')"
done
awk -v c="$c_total" -v r="$r_total" -v n="$rounds" \
  'BEGIN { printf "mean: c %.1f calls/s, rust %.1f calls/s, c/rust = %.3f\n", c/n, r/n, c/r }'
