#!/usr/bin/env bash
# The demo: shardio's echo server (examples/echo_server, one shard) beside a
# plain epoll echo server (bench/peers/epoll_echo), both driven by the same
# load generator (bench/echo_load, epoll, one thread) over loopback TCP.
#
# Builds shardio (Release) with its examples and the echo benchmark's tools,
# then for each workload starts one server pinned to one CPU, runs the load
# pinned to another for a few seconds, stops the server with SIGTERM, and
# prints a table: round trips per second, median and 99th-percentile
# latency, and the server's CPU time per round trip (utime + stime of the
# server process over the measured window, divided by the round trips),
# with the ratio shardio / epoll for each.
#
# Workloads (--size bytes, --connections connections):
#   ping-pong  one message in flight per connection (depth 1): latency-bound;
#   pipelined  16 messages in flight per connection: throughput-bound.
#
# Usage: scripts/demo.sh [--seconds S] [--warmup S] [--connections N]
#                        [--size BYTES] [--runs N]
#          --runs N  measure each server N times, alternating which goes
#                    first, and show each one's run with the most round
#                    trips/s (default 2: steadier figures on a noisy machine)
#        scripts/demo.sh --file-demo [demo flags, e.g. --reads 500000]
#          the earlier demo: random 4 KiB reads from a page-cached file,
#          shardio batches beside a pread(2) loop (examples/demo.cc).
#
# Numbers from a shared or virtual machine move from run to run (by a
# third or more for ping-pong): compare the two servers within one run, and
# raise --runs for steadier figures. bench/run_echo_benchmarks.sh runs the
# full comparison (raw liburing and Boost.Asio peers too, more connection
# counts and sizes, medians over rounds) into docs/benchmarks.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-release"

# Warnings are not errors here: the demo is a user's build, whatever the
# compiler; scripts/test.sh and CI build with -Werror.
configure() {
  "$root/scripts/install-deps.sh"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSHARDIO_BUILD_TESTS=OFF -DSHARDIO_WERROR=OFF "$@" >/dev/null
}

if [ "${1:-}" = "--file-demo" ]; then
  shift
  configure
  cmake --build "$build" --target demo custom_op
  exec "$build/examples/demo" "$@"
fi

seconds=3
warmup=1
connections=16
size=64
runs=2
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *)
      echo "usage: $0 [--seconds S] [--warmup S] [--connections N]" \
           "[--size BYTES] [--runs N] | --file-demo [demo flags]" >&2
      exit 2 ;;
  esac
done

configure -DSHARDIO_BUILD_BENCHMARKS=ON
cmake --build "$build" --target echo_server echo_load epoll_echo demo
echo_server="$build/examples/echo_server"
epoll_echo="$build/bench/epoll_echo"
echo_load="$build/bench/echo_load"

# The CPUs this process may use (e.g. "0-3,8" -> 0 1 2 3 8); the server
# gets the first, the load the second.
cpus=()
IFS=, read -ra ranges <<<"$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)"
for r in "${ranges[@]}"; do
  if [[ $r == *-* ]]; then
    for ((c = ${r%-*}; c <= ${r#*-}; c++)); do cpus+=("$c"); done
  else
    cpus+=("$r")
  fi
done
if [ ${#cpus[@]} -ge 2 ]; then
  server_pin=(taskset -c "${cpus[0]}")
  load_cpu=${cpus[1]}
  placement="server pinned to CPU ${cpus[0]}, load to CPU $load_cpu"
else
  server_pin=()
  load_cpu=-1
  placement="one CPU only: server and load share it (not pinned)"
fi

tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# measure DEPTH SERVER [ARGS...]: prints echo_load's kv line.
measure() {
  local depth=$1 addr= rc=0
  shift
  "${server_pin[@]}" "$@" --port 0 >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$tmp/server.out")
    [ -n "$addr" ] && break
    sleep 0.05
  done
  if [ -z "$addr" ]; then
    echo "demo: $1 did not start:" >&2
    cat "$tmp/server.err" >&2
    exit 1
  fi
  timeout $(awk -v s="$seconds" -v w="$warmup" 'BEGIN { print int(s + w + 30) }') \
    "$echo_load" --addr "$addr" --connections "$connections" \
    --depth "$depth" --size "$size" --seconds "$seconds" --warmup "$warmup" \
    --server-pid "$server_pid" --cpu "$load_cpu" --format kv \
    >"$tmp/load.out" 2>"$tmp/load.err" || rc=$?
  kill -TERM "$server_pid"
  local src=0 state
  for _ in $(seq 200); do  # up to 10 s; an exited child stays a zombie (Z)
    state=$(sed 's/.*) //' "/proc/$server_pid/stat" 2>/dev/null | cut -d' ' -f1) || true
    [ -z "$state" ] || [ "$state" = Z ] && break
    sleep 0.05
  done
  wait "$server_pid" || src=$?
  server_pid=
  if [ "$rc" -ne 0 ]; then
    echo "demo: echo_load against $1 failed (status $rc):" >&2
    cat "$tmp/load.err" "$tmp/load.out" >&2
    exit 1
  fi
  if [ "$src" -ne 0 ]; then
    echo "demo: $1 exited with status $src after SIGTERM:" >&2
    cat "$tmp/server.err" >&2
    exit 1
  fi
  cat "$tmp/load.out"
}

# field KEY LINE: the value of KEY=... in an echo_load kv line.
field() {
  sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"
}

# better A B: of two kv lines, the one with more round trips/s (A may be
# empty).
better() {
  if [ -z "$1" ] ||
     awk -v a="$(field rtps "$1")" -v b="$(field rtps "$2")" \
       'BEGIN { exit !(b + 0 > a + 0) }'; then
    echo "$2"
  else
    echo "$1"
  fi
}

# ratio KEY: shardio / epoll of one field of the current workload's lines,
# or "-" when either is not a number.
ratio() {
  awk -v a="$(field "$1" "$shardio")" -v b="$(field "$1" "$epoll")" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0)
      printf "%.2fx", a / b; else print "-" }'
}

echo
echo "echo over loopback TCP: $connections connections, $size-byte messages," \
     "${seconds}s per run after ${warmup}s of warm-up"
echo "$placement$( ((runs > 1)) && echo "; best of $runs runs each")"
printf '\n%-22s %14s %10s %10s %18s\n' "" "round trips/s" "p50 us" "p99 us" \
  "server CPU ns/rt"

for workload in "ping-pong:1" "pipelined:16"; do
  name=${workload%%:*}
  depth=${workload#*:}
  shardio=
  epoll=
  for ((run = 1; run <= runs; run++)); do
    # Alternate which server goes first, so that a drift of the machine's
    # speed during the runs favours neither.
    if ((run % 2)); then
      shardio=$(better "$shardio" "$(measure "$depth" "$echo_server" --shards 1)")
      epoll=$(better "$epoll" "$(measure "$depth" "$epoll_echo")")
    else
      epoll=$(better "$epoll" "$(measure "$depth" "$epoll_echo")")
      shardio=$(better "$shardio" "$(measure "$depth" "$echo_server" --shards 1)")
    fi
  done
  echo "$name (depth $depth)"
  for row in "shardio echo_server:$shardio" "epoll_echo:$epoll"; do
    line=${row#*:}
    printf '  %-20s %14s %10s %10s %18s\n' "${row%%:*}" \
      "$(field rtps "$line")" "$(field p50_us "$line")" \
      "$(field p99_us "$line")" "$(field server_cpu_ns_per_rt "$line")"
  done
  printf '  %-20s %14s %10s %10s %18s\n' "shardio / epoll" "$(ratio rtps)" \
    "$(ratio p50_us)" "$(ratio p99_us)" "$(ratio server_cpu_ns_per_rt)"
done
cat <<EOF

Higher round trips/s and lower latency and CPU per round trip are better.
More servers and loads: bench/run_echo_benchmarks.sh. The earlier demo
(batched random file reads beside pread(2)): scripts/demo.sh --file-demo.
EOF
