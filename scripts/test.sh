#!/usr/bin/env bash
# Builds shardio and runs the whole test suite with CTest.
# Usage: scripts/test.sh [--sanitize address,undefined|thread] [ctest args...]
# Sanitizer builds use Clang (and install it when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitize=""
if [ "${1:-}" = "--sanitize" ]; then
  sanitize="$2"
  shift 2
fi

if [ -n "$sanitize" ]; then
  "$root/scripts/install-deps.sh" clang libclang-rt-14-dev
  build="$root/build-${sanitize//,/-}"
  export CXX=clang++
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSHARDIO_SANITIZE="$sanitize" -DSHARDIO_BUILD_BENCHMARKS=OFF >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
else
  "$root/scripts/install-deps.sh"
  build="$root/build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -j2 "$@"
