#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes bindings-python/link-order.txt: the Python module's functions that a cold process
# runs (`scripts/cold_call.py`: import, Client(), a BatchMeterUsage and a
# MeterUsage call against the emulator), as callgrind records them in the module built as
# it ships (the `dist` profile, unstripped). bindings-python/build.rs hands the file to the
# linker, so that code sits together and a cold process maps a fraction of the module.
#
# Run it after a change to Cargo.lock or to the call path; `scripts/cold-rss.py` (run by the
# test command) fails when the file has gone stale. Needs valgrind and .venv (the test
# command's).
#
#   scripts/link-order.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
host=$(rustc -vV | sed -n 's/host: //p')
target_dir="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-$root/.venv/bin/python}"
command -v valgrind >/dev/null || { echo "link-order.sh: valgrind is needed" >&2; exit 1; }

cargo build --locked --profile dist -p marketplace-metering-python
cargo build --locked --release -p metering-emulator

scratch=$(mktemp -d)
emulator_pid=
cleanup() {
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT

cp -r bindings-python/python/marketplace_metering "$scratch/"
cp "$target_dir/$host/dist/lib_native.so" "$scratch/marketplace_metering/_native.abi3.so"

"$target_dir/$host/release/metering-emulator" --port 0 > "$scratch/emulator.out" &
emulator_pid=$!
for _ in $(seq 100); do
  grep -q '^METERING_EMULATOR_PORT=' "$scratch/emulator.out" 2>/dev/null && break
  sleep 0.1
done
port=$(sed -n 's/^METERING_EMULATOR_PORT=//p' "$scratch/emulator.out")
[ -n "$port" ] || { echo "link-order.sh: the emulator did not start" >&2; exit 1; }

(cd "$scratch" && MM_ENDPOINT="http://127.0.0.1:$port" PYTHONPATH="$scratch" \
  valgrind --quiet --tool=callgrind --demangle=no --callgrind-out-file="$scratch/cg.out" \
  "$python" "$root/scripts/cold_call.py" >/dev/null)

# Callgrind names each object and function once, as `ob=(n) name` / `fn=(n) name` (also in
# `cob=`/`cfn=` lines), then by number; a function's costs follow `ob=` and `fn=` lines.
# Keep the module's named functions, without the `'2` of recursion cycles, sorted: the output
# follows no execution order, and the set is what keeps the code together (a sorted file
# regenerates with a readable diff).
"$python" - "$scratch/cg.out" bindings-python/link-order.txt <<'EOF'
import re
import sys

objects, functions, seen, order, current = {}, {}, set(), [], None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not m:
        continue
    kind, number, name = m.groups()
    table = objects if kind in ("ob", "cob") else functions
    if name:
        table[number] = name
    if kind == "ob":
        current = objects.get(number, "")
    elif kind == "fn" and current.endswith("/_native.abi3.so"):
        symbol = re.sub(r"'\d+$", "", functions[number])
        if not symbol.startswith("0x") and symbol not in seen:  # 0x...: no symbol to order
            seen.add(symbol)
            order.append(symbol)
if len(order) < 100:
    sys.exit(f"link-order.sh: only {len(order)} functions of the module ran; is it unstripped?")
with open(sys.argv[2], "w") as f:
    f.write("".join(s + "\n" for s in sorted(order)))
print(f"link-order.sh: {len(order)} functions written to {sys.argv[2]}")
EOF
# The symbols' hashes depend on the compiler: scripts/cold-rss.py compares this with the
# compiler of the build it measures.
rustc -V > bindings-python/link-order.rustc
