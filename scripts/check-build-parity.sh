#!/usr/bin/env bash
# Fails when CMake and Bazel do not declare the same targets:
#   - the library's sources: the runtime/*.cc and ops/*.cc that
#     CMakeLists.txt names vs those in BUILD.bazel's SHARDIO_RUNTIME_SRCS
#     and SHARDIO_OPS_SRCS;
#   - the tests: tests/*_test.cc (tests/CMakeLists.txt builds one executable
#     per file) vs BUILD.bazel's SHARDIO_TESTS;
#   - the examples: the foreach() list in examples/CMakeLists.txt vs
#     SHARDIO_EXAMPLES;
#   - the benchmarks: bench/*_benchmark.cc (bench/CMakeLists.txt) vs
#     SHARDIO_BENCHMARKS.
# Needs neither CMake nor Bazel: it reads the files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=BUILD.bazel

# The quoted strings of a list `NAME = [...]` in BUILD.bazel, one a line.
bazel_list() {
  awk -v name="$1" '
    $0 ~ "^" name " = \\[" { grab = 1; next }
    grab && /^\]/ { exit }
    grab { print }' "$build" | grep -oE '"[^"]+"' | tr -d '"' | sort
}

# Basenames without suffix of the files matching a glob, one a line.
file_names() {
  local pattern=$1 suffix=$2 f
  for f in $pattern; do
    [ -e "$f" ] && basename "$f" "$suffix"
  done | sort
}

failed=0
# compare WHAT CMAKE_SIDE BAZEL_SIDE (each a sorted list, one a line)
compare() {
  local what=$1 cmake=$2 bazel=$3 only
  if [ -z "$cmake" ] || [ -z "$bazel" ]; then
    echo "FAIL $what: none found in CMake or in $build (the parsing here" \
         "needs updating?)" >&2
    failed=1
    return
  fi
  only=$(comm -23 <(echo "$cmake") <(echo "$bazel"))
  if [ -n "$only" ]; then
    echo "FAIL $what in CMake but not in $build:" $only >&2
    failed=1
  fi
  only=$(comm -13 <(echo "$cmake") <(echo "$bazel"))
  if [ -n "$only" ]; then
    echo "FAIL $what in $build but not in CMake:" $only >&2
    failed=1
  fi
  [ -z "$(comm -3 <(echo "$cmake") <(echo "$bazel"))" ] &&
    echo "ok   $what: $(echo "$cmake" | wc -l) in both"
  return 0
}

compare "library sources (runtime/*.cc, ops/*.cc)" \
  "$(grep -oE '(^|[^A-Za-z0-9_/])(runtime|ops)/[A-Za-z0-9_]+\.cc' CMakeLists.txt |
     grep -oE '(runtime|ops)/.*' | sort -u)" \
  "$( (bazel_list SHARDIO_RUNTIME_SRCS; bazel_list SHARDIO_OPS_SRCS) | sort)"

compare "tests (tests/*_test.cc)" \
  "$(file_names 'tests/*_test.cc' .cc)" \
  "$(bazel_list SHARDIO_TESTS)"

compare "examples" \
  "$(grep -oE 'foreach\(example [^)]*\)' examples/CMakeLists.txt |
     sed -E 's/foreach\(example //; s/\)//' | tr ' ' '\n' | grep -v '^$' | sort)" \
  "$(bazel_list SHARDIO_EXAMPLES)"

compare "benchmarks (bench/*_benchmark.cc)" \
  "$(file_names 'bench/*_benchmark.cc' .cc)" \
  "$(bazel_list SHARDIO_BENCHMARKS)"

if [ "$failed" -ne 0 ]; then
  echo "CMake and Bazel declare different targets: update $build (or the" \
       "CMake lists) so that both build the same library, tests, examples" \
       "and benchmarks." >&2
  exit 1
fi
echo "build parity: CMake and Bazel declare the same library sources, tests," \
     "examples and benchmarks"
