#!/usr/bin/env bash
# Runs a server example against one or more clients, as the network examples'
# tests do:
#   1. starts SERVER (with --port 0 among its arguments) in the background and
#      waits for its "listening on HOST:PORT" line;
#   2. runs each CLIENT in turn, with {addr} in its arguments replaced by
#      HOST:PORT; each must exit 0;
#   3. stops the server with SIGTERM; it must exit 0.
# Every wait is bounded (timeout(1), or a polling loop with a limit), and the
# server is killed whatever happens.
#
# Usage: run_server_test.sh SERVER [ARGS...] -- CLIENT [ARGS...]
#                           [-- CLIENT [ARGS...]]...
set -euo pipefail

start_timeout=10   # seconds for the server to print its address
client_timeout=120 # seconds per client
stop_timeout=10    # seconds for the server to exit after SIGTERM

server=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  server+=("$1")
  shift
done
if [ ${#server[@]} -eq 0 ] || [ $# -eq 0 ]; then
  echo "usage: $0 SERVER [ARGS...] -- CLIENT [ARGS...] [-- CLIENT ...]" >&2
  exit 2
fi

dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && running; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# Whether the server still runs (a child that exited stays a zombie until
# waited for, which kill -0 would count as running).
running() {
  local state
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || true
  [ -n "$state" ] && [ "$state" != Z ]
}

fail() {
  echo "FAIL: $*" >&2
  echo "--- server stdout" >&2
  cat "$dir/out" >&2 || true
  echo "--- server stderr" >&2
  cat "$dir/err" >&2 || true
  exit 1
}

echo "+ ${server[*]}"
"${server[@]}" >"$dir/out" 2>"$dir/err" &
pid=$!

addr=
for _ in $(seq $((start_timeout * 20))); do
  addr=$(sed -n 's/^listening on //p' "$dir/out")
  [ -n "$addr" ] && break
  running || fail "the server exited before listening"
  sleep 0.05
done
[ -n "$addr" ] || fail "no \"listening on\" line after ${start_timeout}s"
echo "server listening on $addr"

while [ $# -gt 0 ]; do
  shift  # the "--"
  client=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    client+=("${1//\{addr\}/$addr}")
    shift
  done
  echo "+ ${client[*]}"
  rc=0
  timeout "$client_timeout" "${client[@]}" || rc=$?
  [ "$rc" -eq 0 ] || fail "client exited with status $rc: ${client[*]}"
  running || fail "the server died during the client run"
done

kill -TERM "$pid"
for _ in $(seq $((stop_timeout * 20))); do
  running || break
  sleep 0.05
done
running && fail "the server still runs ${stop_timeout}s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "the server exited with status $rc after SIGTERM"
echo "server stopped cleanly"
