#!/usr/bin/env bash
# Builds the libFuzzer targets (Clang, ASan+UBSan) in build-fuzz and runs
# each on a copy of its committed seed corpus (fuzz/corpus/<name>/), so the
# corpus in the tree is never modified. The seeds include the reproducers of
# every past finding (fuzz/README.md), so a regression fails at once.
# Usage: scripts/fuzz.sh [SECONDS]   (total budget, default 60: three
#                                     quarters runtime_fuzzer, the rest
#                                     address_fuzzer)
# Exits non-zero when a fuzzer crashes, traps or hangs; the input that did it
# is kept (its path is printed) under $FUZZ_ARTIFACTS, by default a fresh
# temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
total=${1:-60}
if ! [[ "$total" =~ ^[0-9]+$ ]] || [ "$total" -lt 2 ]; then
  echo "usage: $0 [SECONDS] (at least 2)" >&2
  exit 2
fi
runtime_secs=$((total * 3 / 4))
address_secs=$((total - runtime_secs))

"$root/scripts/install-deps.sh" clang libclang-rt-14-dev
build="$root/build-fuzz"
export CXX=clang++
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHARDIO_SANITIZE=address,undefined -DSHARDIO_BUILD_FUZZERS=ON \
  -DSHARDIO_BUILD_TESTS=OFF -DSHARDIO_BUILD_BENCHMARKS=OFF \
  -DSHARDIO_BUILD_EXAMPLES=OFF -DSHARDIO_INSTALL=OFF >/dev/null
cmake --build "$build" --target runtime_fuzzer address_fuzzer

work=$(mktemp -d "${TMPDIR:-/tmp}/shardio-fuzz.XXXXXX")
artifacts=${FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
run() {
  local name=$1 seeds=$2 secs=$3 max_len=$4 corpus="$work/corpus-$1"
  local log="$work/$1.log" rc=0
  cp -r "$root/fuzz/corpus/$seeds" "$corpus"
  echo "=== $name: ${secs}s on a copy of fuzz/corpus/$seeds ($(ls "$corpus" | wc -l) seeds)"
  "$build/fuzz/$name" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
    "$corpus" >"$log" 2>&1 || rc=$?
  # The last status line (#N ... cov: ... exec/s: ...) and the final stats.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "FAIL $name exited with $rc; what it reported ($log):" >&2
    grep -E "^(runtime|address)_fuzzer: |ERROR:|SUMMARY:|^    #[0-9]+ .* in (shardio|\(anonymous)" "$log" |
      head -n 40 >&2 || true
    echo "--- the end of the log:" >&2
    tail -n 8 "$log" >&2
    local found
    found=$(ls "$artifacts" | grep "^$name-" || true)
    if [ -n "$found" ]; then
      for f in $found; do
        echo "FAIL $name: crashing input: $artifacts/$f" >&2
        echo "     reproduce: $build/fuzz/$name $artifacts/$f" >&2
      done
    fi
  fi
}

# runtime_fuzzer reads at most 1 + 64 * 4 bytes.
run runtime_fuzzer runtime "$runtime_secs" 257
run address_fuzzer address "$address_secs" 512

if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED (logs and inputs in $work)" >&2
  exit 1
fi
rm -rf "$work"
echo "fuzz: no crash in ${total}s"
