#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the two JVM bench clients (bench/jvm/clients/mm-jvm and aws-sdk-java-v2). mm-jvm: packages
# the JVM face of THIS checkout (bindings-jvm, native library built with the `dist` cargo profile,
# the shipping one: fat LTO, size-tuned; MM_CARGO_PROFILE=release to compare) into
# bindings-jvm/target, in $CARGO_TARGET_DIR when set, and runs the bench against that jar: nothing is
# installed into the shared local Maven repository, whose copy may come from another checkout.
# Each client's runtime classpath goes to target/cp.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
face="$root/bindings-jvm"
(cd "$face" && mvn -B -q package -DskipTests -Dcargo.profile="${MM_CARGO_PROFILE:-dist}" \
  dependency:build-classpath -DincludeScope=runtime -Dmdep.outputFile=target/runtime-cp.txt)
jar="$(ls "$face"/target/marketplace-metering-*.jar | grep -v -e sources -e javadoc | head -n1)"
mkdir -p "$here/mm/target/classes"
printf '%s:%s' "$jar" "$(cat "$face/target/runtime-cp.txt")" >"$here/mm/target/cp.txt"
javac --release 17 -d "$here/mm/target/classes" -cp "$(cat "$here/mm/target/cp.txt")" \
  "$here"/mm/src/main/java/bench/*.java
(cd "$here/sdk" && mvn -B -q package dependency:build-classpath -Dmdep.outputFile=target/cp.txt)
