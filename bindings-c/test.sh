#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Everything for the C and C++ faces, from a fresh machine: Rust checks and unit tests, header
# check, ctest (plain, ASan/UBSan, valgrind), a relocatable install (moved after --prefix),
# and the find_package and pkg-config consumers against the static and the shared library, built
# from where the install moved to. Exits non-zero on failure.
#
#   bindings-c/test.sh            (honours CARGO_TARGET_DIR; default: the workspace's target/)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
triple="$(rustc -vV | sed -n 's/host: //p')"
jobs="$(nproc 2>/dev/null || echo 2)"
work="$(mktemp -d "${TMPDIR:-/tmp}/mm-c-test.XXXXXX")"
summary="$work/summary.txt"
emu_pid=""
cleanup() {
  if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null || true; wait "$emu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
ctest_run() { # name, build dir, ctest args...
  local name="$1" dir="$2"; shift 2
  local log="$work/ctest-$name.log" rc=0
  (cd "$dir" && ctest --output-on-failure "$@") >"$log" 2>&1 || rc=$?
  cat "$log"
  { printf '[%s] ' "$name"; grep -E 'tests passed|tests failed out of' "$log" || echo "no summary"; } >>"$summary"
  return "$rc"
}

step "tools"
need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v cmake >/dev/null || need+=(cmake)
command -v valgrind >/dev/null || need+=(valgrind)
command -v g++ >/dev/null || need+=(g++)
if [ "${#need[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q && $sudo_cmd apt-get install -y -q "${need[@]}"
fi

step "rust: format, lints, unit tests (panic boundary, NULL, UTF-8, ErrorCode sync)"
cargo fmt -p marketplace-metering-c --check
cargo clippy -p marketplace-metering-c --all-targets -- -D warnings
cargo test -p marketplace-metering-c --lib 2>&1 | tee "$work/rust.log"
{ printf '[rust] '; grep -E '^test result' "$work/rust.log"; } >>"$summary"

step "header is current (cbindgen via build.rs, then git diff)"
cargo build -p marketplace-metering-c -p metering-emulator
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if git -C "$root" ls-files --error-unmatch bindings-c/include/marketplace_metering.h >/dev/null 2>&1; then
    git -C "$root" diff --exit-code -- bindings-c/include bindings-c/src/status.rs
  else
    echo "note: bindings-c/include/marketplace_metering.h is not committed yet; nothing to diff"
  fi
else
  echo "note: not a git checkout; header check skipped"
fi

step "ctest: plain build (dev profile) + valgrind"
cmake -S "$here" -B "$work/build" -DMM_BUILD_TESTS=ON -DMM_VALGRIND=ON -DMM_CARGO_PROFILE=dev -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$work/build" -j "$jobs"
ctest_run plain "$work/build" -LE valgrind
ctest_run valgrind "$work/build" -L valgrind

step "ctest: ASan + UBSan"
cmake -S "$here" -B "$work/build-asan" -DMM_BUILD_TESTS=ON -DMM_SANITIZE=ON -DMM_CARGO_PROFILE=dev -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$work/build-asan" -j "$jobs"
ctest_run asan "$work/build-asan"

step "install (release): configured without a prefix, installed with --prefix, then moved"
cmake -S "$here" -B "$work/build-release" -DMM_CARGO_PROFILE=release >/dev/null
cmake --build "$work/build-release" -j "$jobs"
staged="$work/staged"
cmake --install "$work/build-release" --prefix "$staged"
find "$staged" -type f | sort
# Relocatable: no installed text file names the prefix it went to, or CMake's default one;
# the consumers below are built from the tree after it has moved.
if grep -rIl -e "$staged" -e /usr/local "$staged"; then
  echo "the files above name an absolute install prefix"; exit 1
fi
prefix="$work/prefix"
mv "$staged" "$prefix"
echo "[install relocatable] ok" >>"$summary"

step "consumers against the installed library"
emu_out="$work/emulator.out"
"$CARGO_TARGET_DIR/$triple/debug/metering-emulator" --port 0 >"$emu_out" 2>"$work/emulator.err" &
emu_pid=$!
for _ in $(seq 1 100); do grep -q METERING_EMULATOR_PORT= "$emu_out" && break; sleep 0.1; done
port="$(sed -n 's/^METERING_EMULATOR_PORT=//p' "$emu_out")"
[ -n "$port" ] || { echo "emulator did not start"; cat "$work/emulator.err"; exit 1; }
endpoint="http://127.0.0.1:$port"
for link in shared static; do
  cmake -S "$here/tests/consumers/cmake" -B "$work/consumer-cmake-$link" -DMM_LINK=$link \
    -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$work/consumer-cmake-$link" -j "$jobs"
  for exe in consumer_c consumer_cpp; do
    "$work/consumer-cmake-$link/$exe" "$endpoint"
    # Not `ldd | grep -q`: with pipefail, grep exiting at the first match can fail ldd with
    # SIGPIPE, and the pipeline with it.
    deps="$(ldd "$work/consumer-cmake-$link/$exe")"
    if [ "$link" = static ]; then
      ! grep -q libmarketplace_metering <<<"$deps"
    else
      grep -q "libmarketplace_metering.so => $prefix" <<<"$deps"
    fi
  done
  echo "[consumer find_package $link] ok" >>"$summary"
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
for pkg in marketplace_metering marketplace_metering-static; do
  mkdir -p "$work/consumer-pc-$pkg"
  make -s -f "$here/tests/consumers/pkgconfig/Makefile" -C "$work/consumer-pc-$pkg" \
    SRC="$here/tests/consumers" PKG="$pkg"
  "$work/consumer-pc-$pkg/consumer_c" "$endpoint"
  "$work/consumer-pc-$pkg/consumer_cpp" "$endpoint"
  echo "[consumer pkg-config $pkg] ok" >>"$summary"
done

step "summary"
cat "$summary"
echo "all C/C++ suites passed"
