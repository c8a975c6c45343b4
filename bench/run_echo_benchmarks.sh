#!/usr/bin/env bash
# bench/run_echo_benchmarks.sh — builds the echo benchmark (Release): the
# load generator bench/echo_load, the peer servers in bench/peers/ and
# shardio's examples/echo_server; runs every server against the same load
# and rewrites the generated section of docs/benchmarks.md, between
# <!-- echo:begin --> and <!-- echo:end --> (appended at the end of the file
# when the markers are missing), from that run. The rest of the file is left
# alone.
#
#   bench/run_echo_benchmarks.sh
#
# Servers (SERVERS picks and orders them):
#   shardio     examples/echo_server --shards 1
#   epoll       bench/peers/epoll_echo.cc: plain epoll
#   uring       bench/peers/uring_echo.cc: raw liburing, the floor
#   asio-epoll  bench/peers/asio_echo.cc, Boost.Asio's epoll reactor
#   asio-uring  the same with Boost.Asio's io_uring backend
# Each run starts a fresh server pinned to SERVER_CPU (taskset) with
# --port 0, reads the port from its "listening on HOST:PORT" line, runs
# echo_load pinned to LOAD_CPU with --server-pid (so the server's CPU time
# per round trip is measured over the window), then stops the server with
# SIGTERM. The servers run interleaved: for each configuration every server
# runs once before the next configuration, and each round repeats the whole
# matrix with the server order rotated by one, so drift on a shared machine
# spreads over all of them. Figures are medians over the rounds; ratios are
# paired (shardio / peer within a round, then the median of those ratios).
#
# Environment: BUILD_DIR (default build-bench), JOBS (default 2),
# SERVERS (default "shardio epoll uring asio-epoll asio-uring"),
# CONNS (default "1 16 128 512"), SIZES (bytes, default "64 4096"),
# DEPTHS (messages in flight per connection, default "1 16"),
# ROUNDS (default 3), SECONDS (measured seconds per run, default 2; also
# RUN_SECONDS), WARMUP (seconds, default 0.5), SERVER_CPU (default 0),
# LOAD_CPU (default 1), DOC (default docs/benchmarks.md).
# A quick smoke test that leaves the docs alone:
#   SERVERS="epoll uring" CONNS=16 SIZES=64 DEPTHS=1 ROUNDS=1 SECONDS=1 \
#     DOC=/tmp/echo.md bench/run_echo_benchmarks.sh
# Boost.Asio's io_uring backend needs Boost >= 1.78 (Debian 12:
# libboost1.81-dev); run as root, the script installs it when missing,
# otherwise the Asio servers are left out with a note.
set -euo pipefail

# bash keeps its own SECONDS (time since the shell started), so the value
# the caller gave is read from this process's initial environment.
env_seconds=$(tr '\0' '\n' </proc/$$/environ | sed -n 's/^SECONDS=//p')

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=${BUILD_DIR:-build-bench}
jobs=${JOBS:-2}
servers=${SERVERS:-shardio epoll uring asio-epoll asio-uring}
conns_list=${CONNS:-1 16 128 512}
sizes=${SIZES:-64 4096}
depths=${DEPTHS:-1 16}
rounds=${ROUNDS:-3}
seconds=${RUN_SECONDS:-${env_seconds:-2}}
warmup=${WARMUP:-0.5}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
doc=${DOC:-docs/benchmarks.md}
results="$build_dir/echo_results.tsv"

# The command as the caller would retype it: the settings that differ from
# the defaults, then the script.
command=""
for v in BUILD_DIR SERVERS CONNS SIZES DEPTHS ROUNDS SECONDS RUN_SECONDS \
  WARMUP SERVER_CPU LOAD_CPU; do
  if [[ $v == SECONDS ]]; then value=$env_seconds; else value=${!v:-}; fi
  [[ -z $value ]] && continue
  if [[ $value == *[!A-Za-z0-9._/-]* ]]; then value="\"$value\""; fi
  command+="$v=$value "
done
command+="bench/run_echo_benchmarks.sh"

notes=()

# --- Boost for the Asio peers ------------------------------------------------
want_asio=0
for s in $servers; do [[ $s == asio-* ]] && want_asio=1; done
if ((want_asio)) && ! dpkg -s libboost1.81-dev >/dev/null 2>&1 &&
  [[ ! -e /usr/include/boost/asio/as_tuple.hpp ]]; then
  if [[ $(id -u) == 0 ]]; then
    echo "installing libboost1.81-dev for the Asio servers"
    DEBIAN_FRONTEND=noninteractive apt-get install -y libboost1.81-dev ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y libboost1.81-dev; } ||
      echo "warning: could not install libboost1.81-dev" >&2
  else
    echo "note: Boost >= 1.78 (libboost1.81-dev) is missing and this is" \
      "not root; the Asio servers are left out" >&2
  fi
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DSHARDIO_BUILD_BENCHMARKS=ON -DSHARDIO_BUILD_TESTS=OFF \
  -DSHARDIO_BUILD_EXAMPLES=ON
targets=(echo_load)
# CMake defines the Asio targets only when it found Boost >= 1.78.
have_boost=0
target_list=$(cmake --build "$build_dir" --target help 2>/dev/null || true)
if [[ $target_list == *asio_uring_echo* ]]; then have_boost=1; fi
server_cmd() {
  case $1 in
  shardio) echo "$build_dir/examples/echo_server --shards 1 --port 0" ;;
  epoll) echo "$build_dir/bench/epoll_echo --port 0" ;;
  uring) echo "$build_dir/bench/uring_echo --port 0" ;;
  asio-epoll) echo "$build_dir/bench/asio_epoll_echo --port 0" ;;
  asio-uring) echo "$build_dir/bench/asio_uring_echo --port 0" ;;
  *) return 1 ;;
  esac
}
server_target() {
  case $1 in
  shardio) echo echo_server ;;
  epoll) echo epoll_echo ;;
  uring) echo uring_echo ;;
  asio-epoll) echo asio_epoll_echo ;;
  asio-uring) echo asio_uring_echo ;;
  esac
}
kept=()
for s in $servers; do
  if ! server_cmd "$s" >/dev/null; then
    echo "unknown server '$s' in SERVERS (known: shardio epoll uring" \
      "asio-epoll asio-uring)" >&2
    exit 2
  fi
  if [[ $s == asio-* ]] && ((!have_boost)); then
    notes+=("$s left out: Boost >= 1.78 was not found (Debian 12: apt-get install libboost1.81-dev)")
    echo "note: ${notes[-1]}" >&2
    continue
  fi
  kept+=("$s")
  targets+=("$(server_target "$s")")
done
if ((${#kept[@]} == 0)); then
  echo "no server to run" >&2
  exit 2
fi
cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs"
for s in "${kept[@]}"; do
  read -r bin _ <<<"$(server_cmd "$s")"
  if [[ ! -x $bin ]]; then
    echo "$s: $bin was not built; leave it out with SERVERS=..." >&2
    exit 1
  fi
done

ncpu=$(nproc)
if ((server_cpu >= ncpu || load_cpu >= ncpu)); then
  echo "warning: $ncpu CPUs; SERVER_CPU=$server_cpu / LOAD_CPU=$load_cpu" \
    "do not exist, running unpinned" >&2
  pin_server=()
  pin_load=()
  notes+=("not pinned: the machine has $ncpu CPU(s)")
else
  pin_server=(taskset -c "$server_cpu")
  pin_load=(--cpu "$load_cpu")
fi

# --- The runs ----------------------------------------------------------------
nconfig=0
for _ in $conns_list; do for _ in $sizes; do for _ in $depths; do
  nconfig=$((nconfig + 1))
done; done; done
nruns=$((nconfig * ${#kept[@]} * rounds))
estimate=$(awk -v n="$nruns" -v s="$seconds" -v w="$warmup" \
  'BEGIN { printf "%.0f", n * (s + w + 0.4) / 60 }')
echo "servers: ${kept[*]}; $nconfig configurations x ${#kept[@]} servers" \
  "x $rounds rounds = $nruns runs of ${seconds} s (+${warmup} s warm-up):" \
  "about $estimate min"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load before the run: $load_before"
load1=${load_before%% *}
if awk -v l="$load1" 'BEGIN { exit !(l >= 1.5) }'; then
  echo "warning: 1-minute load is $load1 (>= 1.5); figures will be noisy" >&2
fi
# Busy and stolen CPU time of the whole machine (jiffies), to tell how much
# other processes ran beside the benchmark.
cpu_jiffies() {
  local _ user nice system _idle _iowait irq softirq steal _rest
  read -r _ user nice system _idle _iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq)) $steal"
}
tmp=$(mktemp -d)
server_pid=
# CPU seconds used by this script's children so far (servers, echo_load),
# into $children_cpu. `times` runs in this shell, not in a subshell, whose
# children would be its own.
children_cpu=0
read_children_cpu() {
  times >"$tmp/times"
  children_cpu=$(awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$tmp/times")
}
cleanup() {
  if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

bad_exits=0
# run_one SERVER CONNS SIZE DEPTH ROUND: one server, one echo_load run; the
# result line goes to $results.
run_one() {
  local name=$1 c=$2 size=$3 depth=$4 round=$5
  local -a cmd
  read -r -a cmd <<<"$(server_cmd "$name")"
  : >"$tmp/server.out"
  "${pin_server[@]}" "${cmd[@]}" >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  local line="" i
  for ((i = 0; i < 500; i++)); do
    line=$(grep -m1 '^listening on ' "$tmp/server.out" || true)
    [[ -n $line ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.02
  done
  if [[ -z $line ]]; then
    echo "$name: no 'listening on HOST:PORT' line from ${cmd[*]}" >&2
    cat "$tmp/server.err" >&2
    exit 1
  fi
  local addr=${line#listening on }
  local host=${addr%:*} port=${addr##*:}
  case $host in
  0.0.0.0 | '') host=127.0.0.1 ;;
  '[::]') host='[::1]' ;;
  esac
  local kv
  if ! kv=$("$build_dir/bench/echo_load" --addr "$host:$port" \
    --connections "$c" --size "$size" --depth "$depth" \
    --seconds "$seconds" --warmup "$warmup" --server-pid "$server_pid" \
    --format kv "${pin_load[@]}" 2>"$tmp/load.err"); then
    echo "$name, $c connections, $size B, depth $depth: echo_load failed:" >&2
    cat "$tmp/load.err" >&2
    exit 1
  fi
  kill -TERM "$server_pid" 2>/dev/null || true
  local status=0
  for ((i = 0; i < 250; i++)); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.02
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "warning: $name did not exit within 5 s of SIGTERM; killing it" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" || status=$?
  server_pid=
  if ((status != 0)); then
    echo "warning: $name exited with status $status after SIGTERM" >&2
    bad_exits=$((bad_exits + 1))
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$c" "$size" "$depth" \
    "$kv" >>"$results"
  printf '  %-10s %4s conns %5s B depth %-2s  %s\n' "$name" "$c" "$size" \
    "$depth" "$(cut -d' ' -f1-4 <<<"$kv")"
}

: >"$results"
read -r busy0 steal0 < <(cpu_jiffies)
read_children_cpu
cpu0=$children_cpu
start=$(date +%s.%N)
n=${#kept[@]}
for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds"
  for c in $conns_list; do
    for size in $sizes; do
      for depth in $depths; do
        for ((k = 0; k < n; k++)); do
          run_one "${kept[$(((k + r - 1) % n))]}" "$c" "$size" "$depth" "$r"
        done
      done
    done
  done
done
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
read -r busy1 steal1 < <(cpu_jiffies)
read_children_cpu
cpu1=$children_cpu
hz=$(getconf CLK_TCK)
others=$(awk -v b="$((busy1 - busy0))" -v hz="$hz" -v c0="$cpu0" -v c1="$cpu1" \
  'BEGIN { o = b / hz - (c1 - c0); printf "%.1f", o < 0 ? 0 : o }')
stolen=$(awk -v st="$((steal1 - steal0))" -v hz="$hz" \
  'BEGIN { printf "%.1f", st / hz }')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "CPU time of other processes during the run: ${others} s; stolen by" \
  "the host: ${stolen} s; load after the run: ${load_after}"
if ((bad_exits > 0)); then
  notes+=("$bad_exits server run(s) did not exit with status 0 after SIGTERM")
fi

cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
compiler=$("${cxx:-c++}" --version | head -n1)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_total=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
liburing=$(pkg-config --modversion liburing 2>/dev/null || echo unknown)
boost=$(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' \
  /usr/include/boost/version.hpp 2>/dev/null | tr _ .)
if ((${#pin_server[@]})); then
  pinning="server pinned to CPU $server_cpu (\`taskset -c $server_cpu\`), echo_load to CPU $load_cpu (\`--cpu $load_cpu\`)"
else
  pinning="no pinning"
fi
notes_text=$(printf '%s\n' "${notes[@]+"${notes[@]}"}")

SHARDIO_ROOT="$root" python3 - "$results" "$doc" "$command" "$ncpu" "$(uname -r)" \
  "${cpu_model:-unknown}" "$compiler" "$elapsed" "$others" "$stolen" \
  "$load_before" "$load_after" "$mem_total" "$liburing" "${boost:-none}" \
  "$rounds" "$seconds" "$warmup" "$pinning" "$notes_text" \
  "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" "${kept[*]}" "$build_dir" <<'PY'
import os
import statistics
import sys

(results_path, doc_path, command, nproc, kernel, cpu_model, compiler,
 elapsed, others, stolen, load_before, load_after, mem_total, liburing,
 boost, rounds, seconds, warmup, pinning, notes_text, date, servers,
 build_dir) = sys.argv[1:]
servers = servers.split()
BEGIN, END = "<!-- echo:begin -->", "<!-- echo:end -->"
LABEL = {
    "shardio": "shardio `echo_server`",
    "epoll": "epoll",
    "uring": "raw liburing (floor)",
    "asio-epoll": "Asio, epoll",
    "asio-uring": "Asio, io_uring",
}
PEERS = ("epoll", "uring", "asio-uring")

# runs[(server, conns, size, depth)][round] = {metric: value}
runs = {}
configs = []
with open(results_path) as f:
    for line in f:
        rnd, server, c, size, depth, kv = line.rstrip("\n").split("\t")
        vals = dict(item.split("=", 1) for item in kv.split())
        cfg = (int(c), int(size), int(depth))
        if cfg not in configs:
            configs.append(cfg)
        runs.setdefault((server,) + cfg, {})[int(rnd)] = vals

NAN = float("nan")


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return NAN


def metric(server, cfg, name):
    """Per-round values of one metric."""
    return {r: num(v.get(name)) for r, v in runs.get((server,) + cfg,
                                                      {}).items()}


def med(values):
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else NAN


def paired(a, b, cfg, name):
    """Median over the rounds of a/b, and the smallest and largest."""
    x, y = metric(a, cfg, name), metric(b, cfg, name)
    rs = [x[r] / y[r] for r in x if r in y and x[r] == x[r] and y[r] == y[r]
          and y[r] > 0]
    if not rs:
        return NAN, NAN, NAN
    return statistics.median(rs), min(rs), max(rs)


def fmt_rate(v):
    if v != v:
        return "n/a"
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:,.1f} k"


def fmt_us(v):
    if v != v:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ns(v):
    return "n/a" if v != v else f"{v:,.0f}"


def fmt_pct(v):
    return "n/a" if v != v else f"{100 * v:.0f}%"


def fmt_ratio(t):
    m, lo, hi = t
    if m != m:
        return "n/a"
    if lo == hi:
        return f"{m:.2f}x"
    return f"{m:.2f}x ({lo:.2f}–{hi:.2f})"


def fmt_size(s):
    return f"{s // 1024} KiB" if s >= 1024 and s % 1024 == 0 else f"{s} B"


subject = "shardio" if "shardio" in servers else servers[0]
peers = [p for p in PEERS if p in servers and p != subject]

lines = []
out = lines.append
out(BEGIN)
out("<!-- Generated by bench/run_echo_benchmarks.sh from a real run; "
    "do not edit by hand. -->")
out("")
out("### TCP echo over loopback: shardio against epoll, raw liburing and "
    "Boost.Asio")
out("")
out("One single-threaded echo server at a time, each echoing what it "
    "receives on every connection: shardio's `examples/echo_server` on one "
    "shard; `bench/peers/epoll_echo.cc` (level-triggered epoll, nonblocking "
    "sockets, a pending buffer per connection for partial writes); "
    "`bench/peers/uring_echo.cc` on raw liburing, the floor for an io_uring "
    "server (multishot accept, multishot recv into a registered provided-"
    "buffer ring, a send straight from the received buffer, one "
    "`io_uring_submit_and_wait` per loop turn, "
    "`SINGLE_ISSUER|DEFER_TASKRUN`); and `bench/peers/asio_echo.cc`, Boost."
    "Asio with C++20 coroutines on one `io_context`, built once with Asio's "
    "epoll reactor and once with its io_uring backend "
    "(`BOOST_ASIO_HAS_IO_URING`, `BOOST_ASIO_DISABLE_EPOLL`).")
out("")
out("The load is `bench/echo_load.cc`: one thread, epoll, N TCP connections "
    "(`TCP_NODELAY`), each keeping D messages of M bytes in flight; a "
    "message is one round trip (rt) when all of its bytes are back, its "
    "latency runs from being queued for sending to its last byte read, and "
    "every echoed byte is checked against what was sent. **Server CPU per "
    "round trip** is the server process's utime + stime (`/proc/PID/stat`, "
    "all threads) over the measured window divided by the round trips in "
    "it: with the server pinned to one core it says how much of that core "
    "each round trip took, whatever the load generator's own speed; on "
    "loopback it includes the kernel's TCP work done in the server's system "
    "calls, which every server pays alike. *server busy* and *echo_load "
    "busy* are the share of its core each side used over the window: a "
    "run where echo_load is near 100% and the server is not measures the "
    "load generator's limit, not the server's.")
out("")
out(f"- Date: {date}")
out(f"- Machine: {nproc} CPUs ({cpu_model}), {mem_total} RAM, Linux "
    f"{kernel}, liburing {liburing}, Boost {boost}: a small VM shared with "
    "other work, so expect noise")
out(f"- Load average (1 / 5 / 15 min) before the run: "
    f"{load_before.replace(' ', ' / ')}; after it: "
    f"{load_after.replace(' ', ' / ')}")
out(f"- Interference: other processes used {others} CPU-seconds during the "
    f"{elapsed}-second run (the machine's busy time less the servers' and "
    f"echo_load's); the host stole {stolen} CPU-seconds")
out(f"- Compiler: {compiler}; Release build")
out(f"- Command: `{command}`. Each run: a fresh server started with "
    f"`--port 0`, {pinning}; `{build_dir}/bench/echo_load --addr "
    f"127.0.0.1:PORT --connections N --size M --depth D --seconds {seconds} "
    f"--warmup {warmup} --server-pid PID --format kv`; then SIGTERM")
out(f"- Figures: median of {rounds} rounds. The servers run interleaved "
    "(every server once per configuration, then the next configuration; "
    "each round repeats the matrix with the server order rotated), so "
    "drift on the VM spreads over all of them. Ratios are paired: "
    f"{subject} / peer within each round, then the median over the rounds, "
    "with the smallest and largest round in parentheses")
for note in filter(None, notes_text.split("\n")):
    out(f"- Note: {note}")
out("")


def mode_tables(depth, title, primary, explain):
    cfgs = [c for c in configs if c[2] == depth]
    if not cfgs:
        return
    out(f"#### {title}")
    out("")
    out(explain)
    out("")
    out("| Connections | Size | Server | rt/s | p50 µs | p99 µs | "
        "server CPU ns/rt | server busy | echo_load busy |")
    out("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for cfg in cfgs:
        c, size, _ = cfg
        for s in servers:
            rt = med(metric(s, cfg, "rtps").values())
            p50 = med(metric(s, cfg, "p50_us").values())
            p99 = med(metric(s, cfg, "p99_us").values())
            ns = med(metric(s, cfg, "server_cpu_ns_per_rt").values())
            busy = med(metric(s, cfg, "server_cpus").values())
            # The generator's share of its own core, from its CPU per rt.
            load = {r: v * metric(s, cfg, "rtps").get(r, NAN) / 1e9
                    for r, v in metric(s, cfg,
                                       "client_cpu_ns_per_rt").items()}
            load_busy = med(load.values())
            name = LABEL.get(s, s)
            if s == subject:
                name = f"**{name}**"
            out(f"| {c} | {fmt_size(size)} | {name} | {fmt_rate(rt)} | "
                f"{fmt_us(p50)} | {fmt_us(p99)} | {fmt_ns(ns)} | "
                f"{fmt_pct(busy)} | {fmt_pct(load_busy)} |")
    out("")
    if not peers:
        return
    names = {"server_cpu_ns_per_rt": "server CPU per rt", "rtps": "rt/s"}
    order = [primary] + [m for m in names if m != primary]
    head = []
    for m in order:
        for p in peers:
            head.append(f"{names[m]}: {subject} / {LABEL.get(p, p)}")
    out("| Connections | Size | " + " | ".join(head) + " |")
    out("|---:|---:|" + "---:|" * len(head))
    for cfg in cfgs:
        c, size, _ = cfg
        cells = [fmt_ratio(paired(subject, p, cfg, m))
                 for m in order for p in peers]
        out(f"| {c} | {fmt_size(size)} | " + " | ".join(cells) + " |")
    out("")
    out(f"Server CPU per rt: below 1.00x means {subject} spends less CPU per "
        f"round trip than the peer. rt/s: above 1.00x means {subject} echoes "
        "more round trips per second.")
    out("")
    # One line over all configurations of this mode: the median of the
    # per-configuration paired ratios of the mode's main figure.
    parts = []
    for p in peers:
        rs = [paired(subject, p, cfg, primary)[0] for cfg in cfgs]
        rs = [r for r in rs if r == r]
        if rs:
            parts.append(f"{statistics.median(rs):.2f}x {LABEL.get(p, p)}'s "
                         f"(from {min(rs):.2f}x to {max(rs):.2f}x)")
    if parts:
        what = ("server CPU per round trip" if primary ==
                "server_cpu_ns_per_rt" else "round trips per second")
        out(f"**Summary.** Over the {len(cfgs)} configurations of this "
            f"mode, {subject}'s {what} is, as the median of the "
            "per-configuration ratios, " + "; ".join(parts) + ".")
        out("")


mode_tables(
    1, "Ping-pong (depth 1)", "server_cpu_ns_per_rt",
    "One message in flight per connection. Round trips per second are "
    "bounded by latency and, with many connections, by whichever side is "
    "slower; the server's CPU per round trip is the figure to compare.")
for d in sorted({c[2] for c in configs if c[2] != 1}):
    mode_tables(
        d, f"Pipelined (depth {d})", "rtps",
        f"{d} messages in flight per connection, so the server always has "
        "work: round trips per second is the figure to compare (the server "
        "runs near 100% of its core).")

out(END)
section = "\n".join(lines)

sys.path.insert(0, os.path.join(os.environ["SHARDIO_ROOT"], "bench"))
from doc_section import write_section  # noqa: E402

write_section(doc_path, BEGIN, END, section)
PY
