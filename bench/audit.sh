#!/usr/bin/env bash
# Audit log append throughput with durability on: every acknowledged append has been
# fdatasync'ed; concurrent appenders share one write + fdatasync (group commit).
# Usage: bench/audit.sh [BUILD_DIR] [DIR_ON_THE_DISK_TO_MEASURE] [SECONDS_PER_ROUND]
# Prints appends/s for 1, 8, 64 and 256 appending threads, then the verify rate.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DIR=${2:-$BUILD}
SECS=${3:-3}
[ -x "$BUILD/kura" ] || { echo "audit.sh: $BUILD/kura not built"; exit 1; }
mkdir -p "$DIR"
echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, filesystem: $(df -T "$DIR" | awk 'NR==2{print $2" on "$1}')"
exec "$BUILD/kura" audit bench --dir "$DIR" --threads 256 --seconds "$SECS"
