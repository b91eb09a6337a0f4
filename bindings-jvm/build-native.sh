#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds libmarketplace_metering_jvm with cargo and copies it, without debug info, to
# <classes>/<JNA resource prefix>/ so that it ships inside the jar where JNA looks for it.
# Usage: build-native.sh <cargo profile: dev|release|dist> <classes dir>
set -euo pipefail
profile="${1:-dev}"
classes="$2"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
triple="$(rustc -vV | sed -n 's/host: //p')"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --quiet --locked -p marketplace-metering-jvm --lib --profile "$profile")
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) prefix=linux-x86-64 lib=libmarketplace_metering_jvm.so ;;
  Linux-aarch64) prefix=linux-aarch64 lib=libmarketplace_metering_jvm.so ;;
  Darwin-x86_64) prefix=darwin-x86-64 lib=libmarketplace_metering_jvm.dylib ;;
  Darwin-arm64) prefix=darwin-aarch64 lib=libmarketplace_metering_jvm.dylib ;;
  *) echo "build-native.sh: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
mkdir -p "$classes/$prefix"
src="$target/$triple/$dir/$lib"
dst="$classes/$prefix/$lib"
# Debug info makes a dev build ~150 MB; the jar needs only the code.
if command -v objcopy >/dev/null && [ "$(uname -s)" = Linux ]; then
  objcopy --strip-debug "$src" "$dst.tmp"
else
  cp "$src" "$dst.tmp"
fi
mv -f "$dst.tmp" "$dst"
