#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates the committed Kotlin bindings (src/main/kotlin/dev/marketplacemetering/internal/)
# from the built library with uniffi's bindgen at the library's own uniffi version, and the
# exception classes (ErrorClasses.kt) from the core's error-code table.
# `--check`: fail if the committed file differs from what the library generates.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
triple="$(rustc -vV | sed -n 's/host: //p')"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --quiet --locked -p marketplace-metering-jvm --lib --bins)
out="$target/$triple/debug"
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
"$out/uniffi-bindgen" generate --no-format --library "$out/libmarketplace_metering_jvm.so" \
  --language kotlin --out-dir "$gen" >/dev/null
file=dev/marketplacemetering/internal/marketplace_metering_jvm.kt
committed="$here/src/main/kotlin/$file"
classes=dev/marketplacemetering/ErrorClasses.kt
mkdir -p "$gen/$(dirname "$classes")"
"$out/uniffi-bindgen" exceptions >"$gen/$classes"
if [ "${1:-}" = --check ]; then
  for f in "$file" "$classes"; do
    if ! diff -u "$here/src/main/kotlin/$f" "$gen/$f"; then
      echo "bindings-jvm: $f is out of date; run bindings-jvm/generate.sh and commit it" >&2
      exit 1
    fi
  done
else
  mkdir -p "$(dirname "$committed")"
  cp "$gen/$file" "$committed"
  cp "$gen/$classes" "$here/src/main/kotlin/$classes"
fi
