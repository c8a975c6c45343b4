#!/usr/bin/env bash
# Builds and tests shardio with Bazel, then builds and runs the Bazel
# consumer (tests/consumers/bazel/), a separate workspace that takes shardio
# as a dependency. Prints "Bazel: N passed, N failed" from Bazel's test
# summary and exits non-zero when a build, a test or the consumer fails.
#
# Bazel is Debian 12's bazel-bootstrap (4.2.3), installed when missing (as
# root); it runs offline: every dependency is a system library or a local
# stand-in (third_party/bazel/README.md), and downloads are disabled.
#
# Usage: scripts/bazel-test.sh [--clean] [bazel test args...]
#   --clean   start from empty output bases (bazel clean --expunge, here and
#             in the consumer), to measure a cold build as on a fresh machine
# Bazel keeps its output bases under ~/.cache/bazel (one per workspace);
# set BAZEL_OUTPUT_USER_ROOT to put them elsewhere.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clean=0
if [ "${1:-}" = "--clean" ]; then
  clean=1
  shift
fi

"$root/scripts/install-deps.sh" bazel-bootstrap bazel-rules-java

startup=()
[ -n "${BAZEL_OUTPUT_USER_ROOT:-}" ] && startup+=(--output_user_root="$BAZEL_OUTPUT_USER_ROOT")
# Fail at once, with the repository's name, if anything tries to download.
offline=(--experimental_repository_disable_download)

consumer="$root/tests/consumers/bazel"
log=$(mktemp "${TMPDIR:-/tmp}/shardio-bazel.XXXXXX")
# Both Bazel servers go away at the end: they hold ~300 MB each for hours.
cleanup() {
  (cd "$consumer" && bazel "${startup[@]}" shutdown) >/dev/null 2>&1 || true
  (cd "$root" && bazel "${startup[@]}" shutdown) >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT

cd "$root"
if [ "$clean" = 1 ]; then
  (cd "$consumer" && bazel "${startup[@]}" clean --expunge)
  bazel "${startup[@]}" clean --expunge
fi

start=$SECONDS
set +e
bazel "${startup[@]}" test "${offline[@]}" //... "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - start))

# Bazel's summary: one line per test target, "//:name   PASSED in 0.4s",
# "(cached) PASSED", "FAILED in ...", "TIMEOUT", "FAILED TO BUILD",
# "NO STATUS", "FLAKY, failed in ...".
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -E '^//[^ ]+ +' "$log" |
         grep -cvE '^//[^ ]+ +(\(cached\) )?PASSED' || true)
echo "Bazel: $passed passed, $failed failed (bazel test //... took ${elapsed}s)"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  echo "bazel test //... failed (exit status $status)" >&2
  exit 1
fi

# docs/getting-started.md shows the consumer's files verbatim (the fenced
# block after each `<!-- file: PATH -->` line), and its main.cc is the CMake
# consumers' program below the opening comment.
doc="$root/docs/getting-started.md"
for path in tests/consumers/bazel/WORKSPACE tests/consumers/bazel/BUILD.bazel \
            tests/consumers/bazel/.bazelrc; do
  if ! grep -qxF "<!-- file: $path -->" "$doc" ||
     ! diff -u "$root/$path" <(awk -v m="<!-- file: $path -->" '
         $0 == m { grab = 1; next }
         grab == 1 && /^```/ { grab = 2; next }
         grab == 2 && /^```$/ { exit }
         grab == 2 { print }' "$doc"); then
    echo "docs/getting-started.md does not show $path as it is" >&2
    exit 1
  fi
done
if ! diff -u <(sed -n '/^#include/,$p' "$root/tests/consumers/cmake_find_package/main.cc") \
             <(sed -n '/^#include/,$p' "$consumer/main.cc"); then
  echo "tests/consumers/bazel/main.cc differs from the CMake consumers' program" >&2
  exit 1
fi

echo "=== Bazel consumer: tests/consumers/bazel (local_repository @shardio)"
cd "$consumer"
start=$SECONDS
# No bazel-* symlinks in the source tree: bazel run needs none.
bazel "${startup[@]}" run "${offline[@]}" --symlink_prefix=/ //:consumer
echo "Bazel consumer: ok ($((SECONDS - start))s)"
