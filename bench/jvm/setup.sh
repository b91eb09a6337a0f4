#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the two JVM bench clients (bench/jvm/clients/mm-jvm and aws-sdk-java-v2): installs the
# JVM face with a `dist` build of the native library (the shipping profile: fat LTO, size-tuned;
# MM_CARGO_PROFILE=release to compare) into the local Maven repository, then compiles each
# client and writes its runtime classpath (target/cp.txt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
(cd "$root/bindings-jvm" && mvn -B -q install -DskipTests -Dcargo.profile="${MM_CARGO_PROFILE:-dist}")
for c in mm sdk; do
  (cd "$here/$c" && mvn -B -q package dependency:build-classpath -Dmdep.outputFile=target/cp.txt)
done
