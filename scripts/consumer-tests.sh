#!/usr/bin/env bash
# Builds the consumer projects under tests/consumers/ the way users take
# shardio, runs each program and prints one PASS/FAIL line per consumer:
#
#   cmake_find_package (static)  shardio installed (cmake --install) into a
#   cmake_find_package (shared)  temporary prefix, static and with
#                                BUILD_SHARED_LIBS=ON; the prefix is moved
#                                after installing, so it must be relocatable
#   pkg-config (static, shared)  the same main.cc compiled with
#                                `pkg-config --cflags --libs shardio`
#   cmake_subdirectory           add_subdirectory(<shardio> shardio-build)
#   cmake_fetchcontent           FetchContent_Declare(shardio SOURCE_DIR ...)
#
# Exits non-zero when any consumer fails. Everything is built in a temporary
# directory, removed at the end unless --keep is given.
# Usage: scripts/consumer-tests.sh [--keep]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1

"$root/scripts/install-deps.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/shardio-consumers.XXXXXX")
cleanup() {
  if [ "$keep" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

consumers="$root/tests/consumers"
# Consumers build with warnings as errors (shardio's headers come in as
# system headers from an install, as project headers from source).
cxxflags="-Wall -Wextra -Werror"
passed=0
failed=0
failures=()
last=0

# check NAME LOG FUNCTION [ARGS...]: runs FUNCTION under `set -e` in a
# subshell with its output in LOG, prints PASS or FAIL (with the end of LOG)
# and leaves the status in $last. It is not to be called as a condition:
# bash would then ignore `set -e` inside.
check() {
  local name=$1 log=$2
  shift 2
  set +e
  (set -e; "$@") >"$log" 2>&1
  last=$?
  set -e
  if [ "$last" = 0 ]; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name (exit $last; log: $log)"
    sed 's/^/    | /' "$log" | tail -n 40
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

# Builds the library alone, installs it into a staging prefix and moves that
# to $work/prefix-KIND: the installed package must not depend on where it was
# installed.
install_shardio() {  # KIND [cmake args...]
  local kind=$1
  shift
  local prefix="$work/prefix-$kind" stage="$work/stage-$kind"
  cmake -S "$root" -B "$work/build-$kind" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDIO_BUILD_TESTS=OFF \
    -DSHARDIO_BUILD_BENCHMARKS=OFF -DSHARDIO_BUILD_EXAMPLES=OFF "$@"
  cmake --build "$work/build-$kind"
  cmake --install "$work/build-$kind" --prefix "$stage"
  mv "$stage" "$prefix"
  test -f "$prefix/lib/cmake/shardio/shardioConfig.cmake"
  test -f "$prefix/lib/cmake/shardio/shardioConfigVersion.cmake"
  test -f "$prefix/lib/cmake/shardio/shardioTargets.cmake"
  test -f "$prefix/lib/pkgconfig/shardio.pc"
  test -f "$prefix/include/shardio/shardio.h"
  test -f "$prefix/include/shardio/detail/reactor.h"
  if grep -rn -e "$stage" -e "$root/" "$prefix/lib/cmake" "$prefix/lib/pkgconfig"; then
    echo "the installed package names the staging prefix or the source tree"
    return 1
  fi
}

# find_package(shardio) against the install prefix only; the package found
# must be the one just installed, its headers not those of the source tree.
find_package_consumer() {  # KIND BUILD
  local prefix="$work/prefix-$1" build=$2
  cmake -S "$consumers/cmake_find_package" -B "$build" -G Ninja \
    -DCMAKE_CXX_FLAGS="$cxxflags" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  local found
  found=$(sed -n 's/^shardio_DIR:PATH=//p' "$build/CMakeCache.txt")
  echo "shardio_DIR=$found"
  [ "$found" = "$prefix/lib/cmake/shardio" ]
  cmake --build "$build" -- -v
  if grep -q -e "-I$root/include" -e "-isystem $root/include" \
       "$build/build.ninja"; then
    echo "the consumer was compiled with shardio's source include directory"
    return 1
  fi
  "$build/consumer"
}

# The same program, compiled with `pkg-config --cflags --libs shardio`.
pkg_config_consumer() {  # KIND OUTPUT
  local prefix="$work/prefix-$1" out=$2
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  pkg-config --print-errors --exists 'shardio >= 0.1'
  local flags
  flags=$(pkg-config --cflags --libs shardio)
  echo "pkg-config --cflags --libs shardio: $flags"
  # shellcheck disable=SC2086
  ${CXX:-c++} -std=c++20 $cxxflags "$consumers/cmake_find_package/main.cc" \
    -o "$out" $flags -Wl,-rpath,"$prefix/lib"
  "$out"
}

# A consumer that builds shardio from source (add_subdirectory/FetchContent).
source_consumer() {  # DIR BUILD
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_CXX_FLAGS="$cxxflags"
  cmake --build "$2"
  "$2/consumer"
}

# docs/getting-started.md shows the consumers' files verbatim, each in the
# fenced block after a `<!-- file: PATH -->` line; the three main.cc agree
# below their opening comment.
docs_match() {
  local doc="$root/docs/getting-started.md" path
  for path in tests/consumers/cmake_find_package/CMakeLists.txt \
              tests/consumers/cmake_fetchcontent/CMakeLists.txt \
              tests/consumers/cmake_subdirectory/CMakeLists.txt \
              tests/consumers/cmake_find_package/main.cc; do
    grep -qxF "<!-- file: $path -->" "$doc"
    diff -u "$root/$path" <(awk -v m="<!-- file: $path -->" '
      $0 == m { grab = 1; next }
      grab == 1 && /^```/ { grab = 2; next }
      grab == 2 && /^```$/ { exit }
      grab == 2 { print }' "$doc")
  done
  for path in cmake_subdirectory cmake_fetchcontent; do
    diff -u <(sed -n '/^#include/,$p' "$consumers/cmake_find_package/main.cc") \
            <(sed -n '/^#include/,$p' "$consumers/$path/main.cc")
  done
}

echo "consumer tests in $work"
check "docs/getting-started.md shows the consumers' files" "$work/docs.log" \
  docs_match
for kind in static shared; do
  shared=OFF
  [ "$kind" = shared ] && shared=ON
  check "install ($kind, BUILD_SHARED_LIBS=$shared)" "$work/install-$kind.log" \
    install_shardio "$kind" -DBUILD_SHARED_LIBS=$shared
  if [ "$last" != 0 ]; then
    echo "FAIL cmake_find_package ($kind): no install"
    echo "FAIL pkg-config ($kind): no install"
    failed=$((failed + 2))
    failures+=("cmake_find_package ($kind)" "pkg-config ($kind)")
    continue
  fi
  check "cmake_find_package ($kind)" "$work/find_package-$kind.log" \
    find_package_consumer "$kind" "$work/find_package-$kind"
  check "pkg-config ($kind)" "$work/pkg-config-$kind.log" \
    pkg_config_consumer "$kind" "$work/pkg-config-$kind"
done
check cmake_subdirectory "$work/subdirectory.log" \
  source_consumer "$consumers/cmake_subdirectory" "$work/subdirectory"
check cmake_fetchcontent "$work/fetchcontent.log" \
  source_consumer "$consumers/cmake_fetchcontent" "$work/fetchcontent"

echo "consumer tests: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  echo "failed: ${failures[*]}"
  keep=1  # leave the logs for a look
  exit 1
fi
