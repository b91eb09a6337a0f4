#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs the C and C++ examples (the client, then the usage meter) against the emulator.
#   examples/c/run.sh     (honours CARGO_TARGET_DIR, METERING_ENDPOINT_URL, METERING_EMULATOR_BIN)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
triple="$(rustc -vV | sed -n 's/host: //p')"
rel="$CARGO_TARGET_DIR/$triple/release"
cargo build --release -q -p marketplace-metering-c
if [ -z "${METERING_ENDPOINT_URL:-}" ] && [ -z "${METERING_EMULATOR_BIN:-}" ]; then
  cargo build --release -q -p metering-emulator
  export METERING_EMULATOR_BIN="$rel/metering-emulator"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
inc="-I$root/bindings-c/include -I$root/examples/c"
# The C example links the static library, the C++ one the shared library.
gcc -std=c11 -Wall -Wextra -Wpedantic -Werror $inc examples/c/meter.c -o "$out/meter_c" \
  "$rel/libmarketplace_metering.a" -lpthread -ldl -lm -lrt -lutil
g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror $inc examples/cpp/meter.cpp -o "$out/meter_cpp" \
  -L"$rel" -lmarketplace_metering -Wl,-rpath,"$rel"
gcc -std=c11 -Wall -Wextra -Wpedantic -Werror $inc examples/c/usage_meter.c -o "$out/usage_meter_c" \
  "$rel/libmarketplace_metering.a" -lpthread -ldl -lm -lrt -lutil
g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror $inc examples/cpp/usage_meter.cpp -o "$out/usage_meter_cpp" \
  -L"$rel" -lmarketplace_metering -Wl,-rpath,"$rel"
echo "== C";   "$out/meter_c"
echo "== C++"; "$out/meter_cpp"
echo "== C usage meter";   "$out/usage_meter_c"
echo "== C++ usage meter"; "$out/usage_meter_cpp"
