#!/usr/bin/env bash
# Builds shardio (Release) and runs the demo: random 4 KiB reads from a
# page-cached file, shardio batches beside a pread(2) loop.
# Usage: scripts/demo.sh [demo flags, e.g. --reads 500000 --depth 128]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
build="$root/build-release"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSHARDIO_BUILD_TESTS=OFF -DSHARDIO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" --target demo custom_op
"$build/examples/demo" "$@"
