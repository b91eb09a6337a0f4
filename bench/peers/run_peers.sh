#!/usr/bin/env bash
# Sets up the peers (outside the repo), then runs the driver:
#   bench/peers/run_peers.sh                     # everything, results/peers-<date>.md
#   bench/peers/run_peers.sh --clients boto3     # one client; see driver.py --help
# SKIP_SETUP=1 skips setup_peers.sh; PEERS_DIR moves the peers.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export PEERS_DIR="${PEERS_DIR:-${TMPDIR:-/tmp}/peers}"
if [ "${SKIP_SETUP:-0}" != 1 ]; then "$HERE/setup_peers.sh"; fi
exec "${DRIVER_PYTHON:-python3}" "$HERE/driver.py" "$@"
