#!/usr/bin/env bash
# bench/run_soak.sh — the soak (not part of CI): builds Release, runs
#   (a) examples/echo_server --shards 1 --stats with bench/soak_client
#       holding CONNECTIONS (10,000) loopback connections for SECONDS (60):
#       1% of them send a 64-byte message every 100 ms and check the echo,
#       the rest stay idle; the server's RSS and descriptors are read from
#       /proc before, with every connection idle, during and after all are
#       closed;
#   (b) bench/xshard_soak: two shards exchanging random-size messages through
#       submit_to, post_to and a Channel for SECONDS, every message counted
#       and checked, RSS sampled (bounded growth);
# and rewrites the generated section of docs/benchmarks.md between
# <!-- soak:begin --> and <!-- soak:end --> (appended at the end of the file
# when the markers are missing) from that run. The rest of the file is left
# alone. The section is written whatever the outcome; the script exits 1 if
# either part failed.
#
#   bench/run_soak.sh
#
# Environment: BUILD_DIR (default build-bench), JOBS (default 2), SECONDS
# (default 60; also RUN_SECONDS), CONNECTIONS (default 10000), SOURCES
# (loopback source addresses the client connects from; default: as many as
# the ephemeral port range needs, at least 1), DOC (default
# docs/benchmarks.md). A quick check that leaves the docs alone:
#   SECONDS=5 CONNECTIONS=1000 DOC=/tmp/soak.md bench/run_soak.sh
#
# Limits it needs: the server gets `ulimit -n 65536` (the soft limit is
# raised in this shell; raising the hard limit needs root), the client
# raises its own RLIMIT_NOFILE. The server listens with a backlog of 1024
# (net::ListenOptions' default, capped by net.core.somaxconn); the client
# keeps at most 512 connections waiting to be accepted, so that backlog is
# never overrun. If net.core.somaxconn is below 1024 the script raises it
# (as root) and says so.
set -euo pipefail

# bash keeps its own SECONDS (time since the shell started), so the value
# the caller gave is read from this process's initial environment.
env_seconds=$(tr '\0' '\n' </proc/$$/environ | sed -n 's/^SECONDS=//p')

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=${BUILD_DIR:-build-bench}
jobs=${JOBS:-2}
seconds=${RUN_SECONDS:-${env_seconds:-60}}
connections=${CONNECTIONS:-10000}
doc=${DOC:-docs/benchmarks.md}

command=""
for v in BUILD_DIR SECONDS RUN_SECONDS CONNECTIONS SOURCES; do
  if [[ $v == SECONDS ]]; then value=$env_seconds; else value=${!v:-}; fi
  [[ -z $value ]] && continue
  command+="$v=$value "
done
command+="bench/run_soak.sh"

notes=()

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DSHARDIO_BUILD_BENCHMARKS=ON -DSHARDIO_BUILD_TESTS=OFF \
  -DSHARDIO_BUILD_EXAMPLES=ON
cmake --build "$build_dir" --target echo_server echo_load soak_client \
  xshard_soak -j "$jobs"

# --- Limits ------------------------------------------------------------------
want_fds=65536
if ! ulimit -n "$want_fds" 2>/dev/null; then
  hard=$(ulimit -Hn)
  ulimit -n "$hard"
  notes+=("\`ulimit -n $want_fds\` was refused (the hard limit is $hard and this process may not raise it: no CAP_SYS_RESOURCE); the server ran with $hard descriptors")
fi
server_nofile=$(ulimit -n)
if ((server_nofile < connections + 64)); then
  echo "RLIMIT_NOFILE is $server_nofile, too low for $connections" \
    "connections; run as root or lower CONNECTIONS" >&2
  exit 1
fi
somaxconn=$(cat /proc/sys/net/core/somaxconn)
if ((somaxconn < 1024)); then
  if [[ $(id -u) == 0 ]]; then
    sysctl -q -w net.core.somaxconn=4096
    notes+=("net.core.somaxconn was $somaxconn; raised to 4096")
    somaxconn=4096
  else
    notes+=("net.core.somaxconn is $somaxconn (< the server's backlog of 1024)")
  fi
fi
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
ports=$((port_hi - port_lo + 1))
# Ephemeral ports per source address: keep a quarter free for other users
# of the machine and for TIME_WAIT from earlier runs.
per_source=$((ports * 3 / 4))
sources=${SOURCES:-$(((connections + per_source - 1) / per_source))}
((sources < 1)) && sources=1
echo "limits: RLIMIT_NOFILE $server_nofile, somaxconn $somaxconn," \
  "ephemeral ports $port_lo-$port_hi ($ports), $sources source address(es)"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before the run: $load_before"
cpu_jiffies() {
  local _ user nice system _idle _iowait irq softirq steal _rest
  read -r _ user nice system _idle _iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq)) $steal"
}
read -r busy0 steal0 < <(cpu_jiffies)
start=$(date +%s)

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- (a) Connections ------------------------------------------------------------
echo "(a) $connections connections to echo_server for $seconds s"
"$build_dir/examples/echo_server" --shards 1 --port 0 --stats \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
line=""
for ((i = 0; i < 500; i++)); do
  line=$(grep -m1 '^listening on ' "$tmp/server.out" || true)
  [[ -n $line ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.02
done
if [[ -z $line ]]; then
  echo "echo_server did not start:" >&2
  cat "$tmp/server.err" >&2
  exit 1
fi
addr=${line#listening on }
client_status=0
client_kv=$("$build_dir/bench/soak_client" --addr "$addr" \
  --server_pid "$server_pid" --connections "$connections" \
  --seconds "$seconds" --sources "$sources" --format kv \
  2>"$tmp/client.err") || client_status=$?
if [[ -s $tmp/client.err ]]; then cat "$tmp/client.err" >&2; fi
echo "soak_client: ${client_kv:-no result} (status $client_status)"
kill -TERM "$server_pid" 2>/dev/null || true
for ((i = 0; i < 500; i++)); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.02
done
server_status=0
if kill -0 "$server_pid" 2>/dev/null; then
  notes+=("echo_server did not exit within 10 s of SIGTERM; killed")
  kill -KILL "$server_pid" 2>/dev/null || true
fi
wait "$server_pid" || server_status=$?
server_pid=
# Everything the server printed after its "listening on" line: --stats.
server_stats=$(sed -n '/^listening on /,$p' "$tmp/server.out" | tail -n +2)
echo "echo_server exited with status $server_status; --stats:"
echo "$server_stats"
client_err=$(head -c 2000 "$tmp/client.err" | tr '\n' ' ')

# --- (b) Cross-shard messages ------------------------------------------------------
echo "(b) cross-shard messages for $seconds s"
xshard_status=0
xshard_kv=$("$build_dir/bench/xshard_soak" --seconds "$seconds" --format kv \
  2>"$tmp/xshard.err") || xshard_status=$?
if [[ -s $tmp/xshard.err ]]; then cat "$tmp/xshard.err" >&2; fi
echo "xshard_soak: ${xshard_kv:-no result} (status $xshard_status)"
xshard_err=$(head -c 2000 "$tmp/xshard.err" | tr '\n' ' ')

elapsed=$(($(date +%s) - start))
read -r busy1 steal1 < <(cpu_jiffies)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
busy=$(awk -v b="$((busy1 - busy0))" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "%.0f", b / hz }')
stolen=$(awk -v st="$((steal1 - steal0))" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "%.1f", st / hz }')
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
compiler=$("${cxx:-c++}" --version | head -n1)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_total=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
liburing=$(pkg-config --modversion liburing 2>/dev/null || echo unknown)
notes_text=$(printf '%s; ' "${notes[@]+"${notes[@]}"}")

SHARDIO_ROOT="$root" python3 - "$doc" "$command" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
  "$(uname -r)" "${cpu_model:-unknown}" "$mem_total" "$liburing" \
  "$compiler" "$load_before" "$load_after" "$elapsed" "$busy" "$stolen" \
  "$seconds" "$connections" "$sources" "$server_nofile" "$somaxconn" \
  "$port_lo-$port_hi" "$client_kv" "$client_status" "$client_err" \
  "$server_status" "$server_stats" "$xshard_kv" "$xshard_status" \
  "$xshard_err" "$notes_text" <<'PY'
import os
import sys

(doc_path, command, date, nproc, kernel, cpu_model, mem_total, liburing,
 compiler, load_before, load_after, elapsed, busy, stolen, seconds,
 connections, sources, nofile, somaxconn, port_range, client_kv,
 client_status, client_err, server_status, server_stats, xshard_kv,
 xshard_status, xshard_err, notes) = sys.argv[1:]
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def parse(kv):
    out = {}
    for part in kv.split():
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


c = parse(client_kv)
x = parse(xshard_kv)


def num(d, k, default=float("nan")):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return default


def mib(kib):
    return "n/a" if kib != kib else f"{kib / 1024:,.1f} MiB"


def count(v):
    return "n/a" if v != v else f"{v:,.0f}"


a_ok = client_status == "0" and c.get("ok") == "1"
b_ok = xshard_status == "0" and x.get("ok") == "1"
lines = []
out = lines.append
out(BEGIN)
out("<!-- Generated by bench/run_soak.sh from a real run; do not edit by "
    "hand. -->")
out("")
out("### Soak (`bench/run_soak.sh`)")
out("")
out("Long runs that look for leaks and lost work rather than speed; not part "
    "of CI. (a) `bench/soak_client` holds many loopback connections to "
    "`examples/echo_server --shards 1` (one task with an armed multishot "
    "receive per connection, one shared 1024 x 16 KiB buffer ring), a few of "
    "them busy, and reads the server's RSS (`VmRSS` in `/proc/PID/status`) "
    "and open descriptors (`/proc/PID/fd`) throughout. (b) `bench/xshard_soak` "
    "has two shards exchange random-size messages (three in four up to 256 "
    "bytes, the rest up to 64 KiB, each a function of its sequence number) "
    "through `submit_to` (eight callers on shard 0 to shard 1), `post_to` "
    "(1 to 0, with a `submit_to` round trip after every 64 posts so that "
    "they do not crowd the replies out of the one FIFO queue from 1 to 0) "
    "and a `Channel` (0 to 1, capacity 64), checking every byte (and the "
    "order of posts and channel values), while a thread "
    "samples the process's RSS every 250 ms.")
out("")
out(f"- Date: {date}")
out(f"- Machine: {nproc} CPUs ({cpu_model}), {mem_total} RAM, Linux "
    f"{kernel}, liburing {liburing}: a small VM shared with other work, so "
    "the client, the server and other people's builds share two cores")
out(f"- Load average (1 / 5 / 15 min) before: "
    f"{load_before.replace(' ', ' / ')}; after: "
    f"{load_after.replace(' ', ' / ')}; the machine was busy for {busy} "
    f"CPU-seconds of the {elapsed}-second run (this run included), the host "
    f"stole {stolen}")
out(f"- Compiler: {compiler}; Release build")
out(f"- Limits: the server's `RLIMIT_NOFILE` {nofile} (`ulimit -n` in the "
    f"script); `net.core.somaxconn` {somaxconn} (the server listens with "
    f"a backlog of 1024; the client keeps at most 512 connections "
    f"unaccepted); ephemeral ports {port_range}; the client connects from "
    f"{sources} loopback source address(es)")
out(f"- Command: `{command}` ({elapsed} s)")
if notes.strip("; "):
    out(f"- Notes: {notes.strip('; ')}")
out("")
out(f"#### (a) {count(num(c, 'connections', float(connections)))} "
    f"connections held for {seconds} s: "
    f"{'**passed**' if a_ok else '**FAILED**'}")
out("")
if not c:
    out(f"soak_client gave no result (status {client_status}): "
        f"`{client_err.strip()}`")
else:
    per_conn = num(c, "rss_per_conn_bytes")
    out("| server | RSS | open descriptors |")
    out("|---|---:|---:|")
    out(f"| before connecting | {mib(num(c, 'rss_before_kib'))} | "
        f"{count(num(c, 'server_fds_before'))} |")
    out(f"| all {count(num(c, 'connections'))} connected, idle | "
        f"{mib(num(c, 'rss_idle_kib'))} | "
        f"{count(num(c, 'server_fds_connected'))} |")
    out(f"| half way through the active phase | {mib(num(c, 'rss_mid_kib'))} "
        "| |")
    out(f"| highest sample (every second) | {mib(num(c, 'rss_max_kib'))} | |")
    out(f"| end of the active phase | {mib(num(c, 'rss_end_kib'))} | "
        f"{count(num(c, 'server_fds_end_active'))} |")
    out(f"| after the client closed everything "
        f"({num(c, 'close_seconds'):.1f} s for the descriptors to come back) "
        f"| {mib(num(c, 'rss_after_close_kib'))} | "
        f"{count(num(c, 'server_fds_after'))} |")
    out("")
    growth = num(c, "rss_end_kib") - num(c, "rss_mid_kib")
    out(f"- **RSS per idle connection: {per_conn:,.0f} bytes** (idle RSS "
        "less the RSS before connecting, over the connections); the kernel's "
        "socket buffers are not in the process's RSS")
    out(f"- Connecting took {num(c, 'connect_seconds'):.1f} s")
    out(f"- Active: {count(num(c, 'active'))} connections sent a "
        f"{c.get('size', '?')}-byte message every {c.get('interval_ms', '?')} "
        f"ms: {count(num(c, 'sent'))} sent, {count(num(c, 'echoed'))} echoed "
        f"({count(num(c, 'bytes_verified'))} bytes checked), "
        f"{count(num(c, 'corrupt'))} corrupt bytes, {c.get('lost', '?')} "
        f"lost, {count(num(c, 'late'))} ticks skipped because the previous "
        f"echo was still out; {count(num(c, 'unexpected'))} events on "
        "connections that should have been silent (a server closing an idle "
        "connection would show here)")
    out(f"- RSS over the second half of the active phase: "
        f"{growth:+,.0f} KiB. The ring's 1024 buffers are mapped with "
        "`MAP_NORESERVE`, so the first receive into each one commits a page: "
        "RSS rises by up to 4 MiB while the active connections cycle "
        "through the ring once, then stays flat if nothing leaks")
    same = c.get("server_fds_after") == c.get("server_fds_before")
    out(f"- After every connection was closed the server's descriptor count "
        f"was {'back at' if same else '**not** back at'} the baseline; its "
        f"RSS was {mib(num(c, 'rss_after_close_kib'))} (idle with every "
        f"connection open: {mib(num(c, 'rss_idle_kib'))})")
out(f"- echo_server exited with status {server_status} after SIGTERM; its "
    "`--stats` output at exit:")
out("")
out("```")
out(server_stats.strip() or "(none)")
out("```")
out("")
out(f"#### (b) Cross-shard messages for {seconds} s: "
    f"{'**passed**' if b_ok else '**FAILED**'}")
out("")
if not x:
    out(f"xshard_soak gave no result (status {xshard_status}): "
        f"`{xshard_err.strip()}`")
else:
    out("| mechanism | sent | received |")
    out("|---|---:|---:|")
    for label, key in (("`submit_to` shard 0 to 1 (round trips)", "submit_to"),
                       ("`post_to` shard 1 to 0", "post_to"),
                       ("`Channel` shard 0 to 1", "channel")):
        out(f"| {label} | {count(num(x, key + '_sent'))} | "
            f"{count(num(x, key + '_received'))} |")
    out("")
    out(f"- {count(num(x, 'bytes'))} payload bytes checked; "
        f"{x.get('corrupt', '?')} corrupt or wrongly answered, "
        f"{x.get('out_of_order', '?')} out of order; "
        f"{count(num(x, 'outbox_waits'))} sends found a queue full and waited")
    out(f"- RSS: {mib(num(x, 'rss_start_kib'))} at start, "
        f"{mib(num(x, 'rss_warm_kib'))} after the first tenth, "
        f"{mib(num(x, 'rss_max_kib'))} at most, {mib(num(x, 'rss_end_kib'))} "
        f"at the end: {num(x, 'rss_growth_kib'):+,.0f} KiB after the warm-up "
        "(the run fails above 64 MiB)")
out(END)
section = "\n".join(lines)

sys.path.insert(0, os.path.join(os.environ["SHARDIO_ROOT"], "bench"))
from doc_section import write_section  # noqa: E402

write_section(doc_path, BEGIN, END, section)
PY

if [[ $client_status != 0 || $xshard_status != 0 ]]; then
  echo "the soak FAILED (soak_client $client_status, xshard_soak" \
    "$xshard_status)" >&2
  exit 1
fi
echo "the soak passed"
