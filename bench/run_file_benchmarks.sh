#!/usr/bin/env bash
# bench/run_file_benchmarks.sh — builds shardio's benchmarks (Release), runs
# the file benchmark (bench/file_benchmark.cc) and rewrites the generated
# section of docs/benchmarks.md, between <!-- file:begin --> and
# <!-- file:end --> (appended at the end of the file when the markers are
# missing), from that run. The rest of the file is left alone.
#
#   bench/run_file_benchmarks.sh [extra Google Benchmark flags]
#
# Environment: BUILD_DIR (default build-bench), JOBS (default 2),
# REPETITIONS (default 5), MIN_TIME (seconds per repetition, default 0.2),
# DOC (default docs/benchmarks.md), SHARDIO_BENCH_DIR (where the 256 MiB test
# file goes; default /var/tmp, else /tmp).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=${BUILD_DIR:-build-bench}
jobs=${JOBS:-2}
repetitions=${REPETITIONS:-5}
min_time=${MIN_TIME:-0.2}
doc=${DOC:-docs/benchmarks.md}
json="$build_dir/file_benchmark.json"

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DSHARDIO_BUILD_BENCHMARKS=ON -DSHARDIO_BUILD_TESTS=OFF \
  -DSHARDIO_BUILD_EXAMPLES=OFF
cmake --build "$build_dir" --target file_benchmark -j "$jobs"

cmd=("$build_dir/bench/file_benchmark"
  "--benchmark_min_time=$min_time"
  "--benchmark_repetitions=$repetitions"
  --benchmark_enable_random_interleaving=true
  --benchmark_report_aggregates_only=true
  "--benchmark_out=$json" --benchmark_out_format=json
  "$@")
load=$(cut -d' ' -f1 /proc/loadavg)
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v l="$load" 'BEGIN { exit !(l >= 1.5) }'; then
  echo "warning: 1-minute load is $load (>= 1.5); figures will be noisy" >&2
fi
# Busy and stolen CPU time of the whole machine (jiffies), to tell how much
# other processes ran beside the benchmark.
cpu_jiffies() {
  local _ user nice system _idle _iowait irq softirq steal _rest
  read -r _ user nice system _idle _iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq)) $steal"
}
read -r busy0 steal0 < <(cpu_jiffies)
start=$(date +%s.%N)
timefile=$(mktemp)
trap 'rm -f "$timefile"' EXIT
TIMEFORMAT='%U %S'
{ time "${cmd[@]}" 2>&3; } 3>&2 2>"$timefile"
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
read -r busy1 steal1 < <(cpu_jiffies)
read -r own_user own_sys <"$timefile"
others=$(awk -v b="$((busy1 - busy0))" -v hz="$(getconf CLK_TCK)" \
  -v u="$own_user" -v s="$own_sys" \
  'BEGIN { o = b / hz - u - s; printf "%.1f", o < 0 ? 0 : o }')
stolen=$(awk -v st="$((steal1 - steal0))" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "%.1f", st / hz }')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "CPU time of other processes during the run: ${others} s; stolen by" \
  "the host: ${stolen} s; load after the run: ${load_after}"

cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
compiler=$("${cxx:-c++}" --version | head -n1)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_total=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
liburing=$(pkg-config --modversion liburing 2>/dev/null || echo unknown)

SHARDIO_ROOT="$root" python3 - "$json" "$doc" "${cmd[*]}" "$(nproc)" "$(uname -r)" \
  "${cpu_model:-unknown}" "$compiler" "$elapsed" "$others" "$stolen" \
  "$load_after" "$mem_total" "$liburing" <<'PY'
import json
import os
import sys

(json_path, doc_path, command, nproc, kernel, cpu_model, compiler, elapsed,
 others, stolen, load_after, mem_total, liburing) = sys.argv[1:]
BEGIN, END = "<!-- file:begin -->", "<!-- file:end -->"
QDS = (1, 32, 128)
CHUNKS = (64, 1024)
SIZES = ((0, "4 KiB"), (1, "1 MiB"), (2, "64 MiB"))

with open(json_path) as f:
    data = json.load(f)
ctx = data["context"]


def key(run_name):
    return run_name.replace("/real_time", "")


median, best, cv, errors = {}, {}, {}, {}
for b in data["benchmarks"]:
    name = key(b.get("run_name", b["name"]))
    if b.get("error_occurred"):
        errors[name] = b.get("error_message", "failed")
        continue
    if b.get("run_type") != "aggregate":
        continue
    if b["aggregate_name"] == "median":
        median[name] = b
    elif b["aggregate_name"] == "min":
        best[name] = b
    elif b["aggregate_name"] == "cv":
        cv[name] = b
# O_DIRECT may be refused by the file system; anything else failing is a bug.
for name, msg in errors.items():
    if not name.startswith("BM_Direct"):
        sys.exit(f"benchmark {name} failed: {msg}")

NAN = float("nan")


def get(name, field, table=None):
    t = median if table is None else table
    return t[name].get(field, NAN) if name in t else NAN


def ns(name, table=None):
    return get(name, "real_time", table)  # wall ns per iteration


def ratio(a, b, table=None):
    x, y = ns(a, table), ns(b, table)
    return x / y if x == x and y == y and y > 0 else NAN


def fmt_ratio(r):
    return "n/a" if r != r else f"{r:.2f}x"


def fmt_ns(v):
    if v != v:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:,.1f} ms"
    if v >= 1e4:
        return f"{v / 1e3:,.0f} µs"
    return f"{v:,.0f} ns"


def fmt_rate(v):
    if v != v:
        return "n/a"
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:,.0f} k/s"


def mbs(name, table=None):
    return get(name, "bytes_per_second", table) / 1e6


def fmt_mbs(v):
    return "n/a" if v != v else f"{v:,.0f}"


def fmt_cv(name):
    return f"{100 * cv[name]['real_time']:.1f}%" if name in cv else "n/a"


def compare(r, rb, what, other):
    """Words for a time ratio r (median) and rb (fastest repetitions)."""
    if r > 1.05 and rb > 1.05:
        return (f"{what} is **behind** {other}: {r:.2f}x the time "
                f"({rb:.2f}x on the fastest repetitions)")
    if r < 0.95 and rb < 0.95:
        return (f"{what} is ahead of {other}: {r:.2f}x the time "
                f"({rb:.2f}x fastest)")
    if 0.95 <= r <= 1.05 and 0.95 <= rb <= 1.05:
        return f"{what} is level with {other} ({r:.2f}x; {rb:.2f}x fastest)"
    return (f"{what} and {other} are level within this run's noise "
            f"({r:.2f}x on the medians, {rb:.2f}x on the fastest "
            "repetitions)")


def both(a, b):
    """Median ratio, with the ratio of the fastest repetitions after it."""
    return f"{fmt_ratio(ratio(a, b))} ({fmt_ratio(ratio(a, b, best))})"


lines = []
out = lines.append
out(BEGIN)
out("<!-- Generated by bench/run_file_benchmarks.sh from a real run; "
    "do not edit by hand. -->")
out("")
out("### File reads (`bench/file_benchmark.cc`)")
out("")
out("shardio's file API (`fs::File::read_at`, registered buffers and files, "
    "`fs::read`) beside raw liburing doing the same reads on a ring set up "
    "like the shard's, a thread pool doing `pread(2)` (a `std::mutex` + "
    "`std::condition_variable` job queue and a completion queue the "
    "submitting thread waits on: the design a thread-per-core runtime "
    "replaces), plain `read(2)` and `std::ifstream`.")
out("")
out(f"- Date: {ctx.get('date', 'unknown')}")
out(f"- Machine: {nproc} CPUs ({cpu_model}), {mem_total} RAM, Linux "
    f"{kernel}, liburing {liburing}: a small Firecracker VM shared with "
    "other work, so expect noise. **The 16-thread pool cases are "
    f"oversubscribed** ({nproc} cores); no bigger machine was available")
load = " / ".join(f"{x:.2f}" for x in ctx.get("load_avg", []))
out(f"- Load average (1 / 5 / 15 min) when the run started: {load or 'n/a'}; "
    f"after it: {load_after.replace(' ', ' / ')}")
out(f"- Interference: other processes used {others} CPU-seconds during the "
    f"{elapsed}-second run (the machine's busy time less the benchmark's "
    f"own); the host stole {stolen} CPU-seconds")
out(f"- Compiler: {compiler}; Release build; Google Benchmark (library "
    f"reports itself as `{ctx.get('library_build_type', '?')}`)")
out(f"- shardio: one shard; ring `{ctx.get('shardio_setup_flags', '?')}`, "
    f"{ctx.get('shardio_ring_entries', '?')} SQ entries; the raw liburing "
    "ring uses the same flags and size")
out(f"- Files: in `{os.path.dirname(ctx.get('file_dir', '?'))}` "
    f"({ctx.get('file_fs', '?')}), created, `fdatasync`ed and read once "
    "before the first case (so in the page cache), removed at exit")
out(f"- Command: `bench/run_file_benchmarks.sh`, which ran `{command}` "
    f"({elapsed} s)")
reps = sorted({b.get("repetitions") for b in median.values()})
out(f"- Figures: median of {', '.join(str(r) for r in reps)} repetitions, "
    "run in random interleaved order (so that drift on the shared VM "
    "spreads over every case rather than hitting one); in ratio columns the "
    "figure in parentheses is the ratio of the fastest repetitions (noise "
    "only adds time). A time ratio A / B below 1.00x means A is faster. "
    "Page faults and context switches are counted for the whole process, "
    "io_uring's io-wq worker threads included")
cvs = sorted(v["real_time"] for v in cv.values())
if cvs:
    med_cv = cvs[len(cvs) // 2]
    out(f"- Noise: the median CV over all cases is {100 * med_cv:.1f}%"
        + (" — **a disturbed run**: read the ratios of the fastest "
           "repetitions rather than the medians" if med_cv > 0.10 else ""))
out("")

# --- 1. Random reads --------------------------------------------------------
out("#### 1. Random 4 KiB reads from a page-cached 256 MiB file, one shard")
out("")
out("QD reads in flight. **shardio: QD spawned tasks**, each looping on "
    "`co_await file.read_at(std::move(buf), offset)` (a 4 KiB "
    "`std::vector<std::byte>` that goes in and comes back), and starting its "
    "next read as soon as the last one completed; the tasks take turns on "
    "the benchmark's iterations. *registered*: the same with "
    "`File::register_fixed()` and `read_fixed_at` on a `FixedBuffer` from a "
    "`BufferPool` (`IORING_OP_READ_FIXED` + `IOSQE_FIXED_FILE`). *raw "
    "liburing*: QD SQEs in flight; every CQE is refilled with the next read, "
    "and the refills go in with one `io_uring_submit_and_wait(1)` once the "
    "CQ is empty, which is what a shard's loop turn does. *pool*: the "
    "benchmark thread keeps QD `pread` jobs queued and refills each as its "
    "completion comes back. The same random offsets for every case. Buffers: "
    "`read_at` reads into a plain `std::vector<std::byte>(4096)` (what a "
    "user passes); raw liburing and the pool into 4 KiB-aligned buffers; "
    "the registered case into the `BufferPool`'s page-aligned buffers.")
out("")
random_rows = [
    ("shardio `File::read_at`", "BM_RandomReadFile/qd:{}"),
    ("shardio registered buffer + file", "BM_RandomReadFixed/qd:{}"),
    ("raw liburing", "BM_RandomReadRawLiburing/qd:{}"),
    ("pool, 2 threads", "BM_RandomReadPool/threads:2/qd:{}"),
    ("pool, 16 threads", "BM_RandomReadPool/threads:16/qd:{}"),
]
out("| ns per read (reads/s) | " + " | ".join(f"QD {q}" for q in QDS) + " |")
out("|---|" + "---:|" * len(QDS))
for label, pat in random_rows:
    cells = []
    for q in QDS:
        n = pat.format(q)
        cells.append(f"{fmt_ns(ns(n))} ({fmt_rate(get(n, 'items_per_second'))})")
    out(f"| {label} | " + " | ".join(cells) + " |")
out("")
ratio_rows = [
    ("`read_at` / raw liburing", "BM_RandomReadFile/qd:{}",
     "BM_RandomReadRawLiburing/qd:{}"),
    ("registered / raw liburing", "BM_RandomReadFixed/qd:{}",
     "BM_RandomReadRawLiburing/qd:{}"),
    ("registered / `read_at`", "BM_RandomReadFixed/qd:{}",
     "BM_RandomReadFile/qd:{}"),
    ("`read_at` / pool, 2 threads", "BM_RandomReadFile/qd:{}",
     "BM_RandomReadPool/threads:2/qd:{}"),
    ("`read_at` / pool, 16 threads", "BM_RandomReadFile/qd:{}",
     "BM_RandomReadPool/threads:16/qd:{}"),
    ("raw liburing / pool, 2 threads", "BM_RandomReadRawLiburing/qd:{}",
     "BM_RandomReadPool/threads:2/qd:{}"),
]
out("| Time ratio (fastest reps) | " + " | ".join(f"QD {q}" for q in QDS)
    + " |")
out("|---|" + "---:|" * len(QDS))
for label, a, b in ratio_rows:
    out(f"| {label} | "
        + " | ".join(both(a.format(q), b.format(q)) for q in QDS) + " |")
out("| `io_uring_enter` per read: `read_at` / registered / raw | "
    + " | ".join(
        " / ".join(f"{get(p.format(q), 'enters_per_read'):.3f}"
                   for p in ("BM_RandomReadFile/qd:{}",
                             "BM_RandomReadFixed/qd:{}",
                             "BM_RandomReadRawLiburing/qd:{}"))
        for q in QDS) + " |")
out("| context switches per read: `read_at` / raw / pool 2 / pool 16 | "
    + " | ".join(
        " / ".join(f"{get(p.format(q), 'switches_per_read'):.3f}"
                   for p in ("BM_RandomReadFile/qd:{}",
                             "BM_RandomReadRawLiburing/qd:{}",
                             "BM_RandomReadPool/threads:2/qd:{}",
                             "BM_RandomReadPool/threads:16/qd:{}"))
        for q in QDS) + " |")
out("| CV of the repetitions: `read_at` / raw | "
    + " | ".join(f"{fmt_cv(f'BM_RandomReadFile/qd:{q}')} / "
                 f"{fmt_cv(f'BM_RandomReadRawLiburing/qd:{q}')}" for q in QDS)
    + " |")
out("")


def verdict_random():
    parts = []
    for q in QDS:
        a, b = f"BM_RandomReadFile/qd:{q}", f"BM_RandomReadRawLiburing/qd:{q}"
        r, rb = ratio(a, b), ratio(a, b, best)
        if r == r:
            parts.append(f"QD {q}: " + compare(r, rb, "`read_at`",
                                                 "raw liburing"))
    pools = []
    for q in QDS:
        s = ns(f"BM_RandomReadFile/qd:{q}")
        p = min(ns(f"BM_RandomReadPool/threads:{t}/qd:{q}") for t in (2, 16))
        if s == s and p == p:
            pools.append(f"{p / s:.1f}x the reads per second at QD {q}")
    text = "**Verdict.** " + "; ".join(parts) + "."
    if pools:
        text += (" Against the better of the two pools, `read_at` does "
                 + ", ".join(pools) + ".")
    return text


out(verdict_random())
out("")
diff128 = ns("BM_RandomReadFile/qd:128") - ns("BM_RandomReadRawLiburing/qd:128")
diff128b = (ns("BM_RandomReadFile/qd:128", best)
            - ns("BM_RandomReadRawLiburing/qd:128", best))
out("**Where the time goes.** A page-cache hit completes inside the "
    "`io_uring_enter` that submits it, so shardio and raw liburing both make "
    "one enter per QD reads (row above) and spend most of each read in the "
    "kernel copying 4 KiB out of the page cache (`_copy_to_iter` was about "
    "46% of the samples in a `perf record` of `read_at` at QD 128 taken by "
    "hand, not part of this run; shardio's own functions were a few "
    "percent). What shardio adds per read, resuming a task, taking a "
    "completion record from the shard's pool and building the result, is "
    "the difference to raw liburing; at QD 128 it is "
    f"{diff128:,.0f} ns per read between the medians of this run and "
    f"{diff128b:,.0f} ns between the fastest repetitions. Registered buffers and a registered file save the page "
    "pinning and the fd lookup of each read, which is small next to the "
    "copy (registered / `read_at` above). The pool loses because every read "
    "crosses threads twice, the job queue's condition variable waking a "
    "worker and the completion queue's waking the submitter: "
    f"{get('BM_RandomReadPool/threads:2/qd:1', 'switches_per_read'):.2f} "
    "context switches per read with 2 threads at QD 1, and at QD 1 each "
    "read waits for a whole wake-up round trip.")
out("")

# --- 2. Sequential ----------------------------------------------------------
inflight = ctx.get("seq_in_flight", "4")
out("#### 2. Sequential reads of the whole 256 MiB file (page cache)")
out("")
out(f"One iteration is one pass over the file in 64 KiB or 1 MiB chunks, "
    f"{inflight} chunks in flight: {inflight} shardio tasks taking the next "
    f"chunk from a shared cursor (`File::read_at`), {inflight} SQEs on a raw "
    f"ring, {inflight} `pread` jobs on the pool; the `read(2)` loop has one "
    "in flight. MB/s is 10^6 bytes per second.")
out("")
seq_rows = [
    ("shardio `File::read_at`", "BM_SeqReadFile/chunk_kib:{}"),
    ("raw liburing", "BM_SeqReadRawLiburing/chunk_kib:{}"),
    ("pool, 2 threads", "BM_SeqReadPool/threads:2/chunk_kib:{}"),
    ("pool, 16 threads", "BM_SeqReadPool/threads:16/chunk_kib:{}"),
    ("`read(2)` loop", "BM_SeqReadSyscall/chunk_kib:{}"),
]
out("| MB/s (ms per pass) | 64 KiB chunks | 1 MiB chunks |")
out("|---|---:|---:|")
for label, pat in seq_rows:
    cells = [f"{fmt_mbs(mbs(pat.format(c)))} ({fmt_ns(ns(pat.format(c)))})"
             for c in CHUNKS]
    out(f"| {label} | " + " | ".join(cells) + " |")
for label, other in (("raw liburing", "BM_SeqReadRawLiburing/chunk_kib:{}"),
                     ("pool, 2 threads",
                      "BM_SeqReadPool/threads:2/chunk_kib:{}"),
                     ("pool, 16 threads",
                      "BM_SeqReadPool/threads:16/chunk_kib:{}"),
                     ("`read(2)` loop", "BM_SeqReadSyscall/chunk_kib:{}")):
    out(f"| time ratio `read_at` / {label} (fastest reps) | "
        + " | ".join(both(f"BM_SeqReadFile/chunk_kib:{c}", other.format(c))
                     for c in CHUNKS) + " |")
out("| CV: `read_at` / raw | "
    + " | ".join(f"{fmt_cv(f'BM_SeqReadFile/chunk_kib:{c}')} / "
                 f"{fmt_cv(f'BM_SeqReadRawLiburing/chunk_kib:{c}')}"
                 for c in CHUNKS) + " |")
out("")
seq_parts = []
for c in CHUNKS:
    a, b = f"BM_SeqReadFile/chunk_kib:{c}", f"BM_SeqReadRawLiburing/chunk_kib:{c}"
    r, rb = ratio(a, b), ratio(a, b, best)
    if r == r:
        seq_parts.append(("64 KiB: " if c == 64 else "1 MiB: ")
                         + compare(r, rb, "`read_at`", "raw liburing"))
out("**Verdict.** " + "; ".join(seq_parts) + ". With chunks this large the "
    "copy out of the page cache is nearly all of the cost, so every "
    "io_uring variant lands close to the others; the pool pays a thread "
    "hand-off per chunk, which hurts most with 64 KiB chunks.")
out("")

# --- 3. Whole files ---------------------------------------------------------
out("#### 3. Whole files: `fs::read` and the usual ways")
out("")
out("Every iteration opens the file, sizes it, reads it into a fresh "
    "`std::vector<std::byte>` and closes it. `fs::read`: `co_await "
    "shardio::fs::read(path)` on the shard; `std::ifstream`: "
    "`seekg`/`tellg`, then one `read`; `read(2)`: `open`, `fstat`, `read` "
    "until 0, `close`; pool: that same function as one job on a 2-thread "
    "pool while the caller waits for it. The diagnostic row does what "
    "`fs::read` does with shardio's ops (`OpenAt`; one `Read` of the whole "
    "file plus a 64-byte probe `Read` at its end in one `batch`; `Close`, "
    "awaited) but sizes the file with `fstat(2)` on the open fd instead of "
    "`IORING_OP_STATX`. *allocation only* is the fresh "
    "zeroed vector alone, which every other row also pays. The benchmark "
    "fixes glibc's allocation policy for all rows (`M_MMAP_THRESHOLD` 32 MiB, "
    "`M_TRIM_THRESHOLD` 1 GiB): 4 KiB and 1 MiB vectors come from a warm "
    "heap, 64 MiB ones are fresh `mmap` memory every time, and first touches "
    "of fresh memory are slow in this VM (see the page faults column).")
out("")
whole_rows = [
    ("shardio `fs::read`", "BM_ReadWholeFsRead/size:{}"),
    ("diagnostic: shardio ops, sized by `fstat(2)`",
     "BM_ReadWholeShardioFstat/size:{}"),
    ("`std::ifstream`", "BM_ReadWholeIfstream/size:{}"),
    ("`read(2)` loop", "BM_ReadWholeSyscall/size:{}"),
    ("pool, 2 threads (one job)", "BM_ReadWholePool/size:{}"),
    ("allocation only", "BM_ReadWholeAllocOnly/size:{}"),
]
out("| Per file: time, files/s or MB/s, page faults, context switches | "
    "4 KiB | 1 MiB | 64 MiB |")
out("|---|---:|---:|---:|")
for label, pat in whole_rows:
    cells = []
    for i, _ in SIZES:
        n = pat.format(i)
        rate = (fmt_rate(get(n, "items_per_second")).replace("/s", " files/s")
                if i == 0 else f"{fmt_mbs(mbs(n))} MB/s")
        cells.append(f"{fmt_ns(ns(n))}, {rate}, "
                     f"{get(n, 'faults_per_file'):,.0f} faults, "
                     f"{get(n, 'switches_per_file'):.2f} switches")
    out(f"| {label} | " + " | ".join(cells) + " |")
for label, other in (("`std::ifstream`", "BM_ReadWholeIfstream/size:{}"),
                     ("`read(2)` loop", "BM_ReadWholeSyscall/size:{}"),
                     ("pool", "BM_ReadWholePool/size:{}"),
                     ("the `fstat` diagnostic",
                      "BM_ReadWholeShardioFstat/size:{}")):
    out(f"| time ratio `fs::read` / {label} (fastest reps) | "
        + " | ".join(both(f"BM_ReadWholeFsRead/size:{i}", other.format(i))
                     for i, _ in SIZES) + " |")
out("| time ratio `fstat` diagnostic / `read(2)` loop (fastest reps) | "
    + " | ".join(both(f"BM_ReadWholeShardioFstat/size:{i}",
                      f"BM_ReadWholeSyscall/size:{i}") for i, _ in SIZES)
    + " |")
out("")
whole_parts = []
for i, label in SIZES:
    f = f"BM_ReadWholeFsRead/size:{i}"
    fastest = min((f"BM_ReadWholeIfstream/size:{i}",
                   f"BM_ReadWholeSyscall/size:{i}"), key=ns)
    r, rb = ratio(f, fastest), ratio(f, fastest, best)
    other = ("`std::ifstream`" if "Ifstream" in fastest else
             "the `read(2)` loop")
    if r == r:
        whole_parts.append(f"{label}: " + compare(r, rb, "`fs::read`",
                                                  other))
out("**Verdict** (against the faster of `std::ifstream` and the `read(2)` "
    "loop for each size). " + "; ".join(whole_parts) + ". Against the pool, "
    "`fs::read` takes "
    + ", ".join(f"{fmt_ratio(ratio(f'BM_ReadWholeFsRead/size:{i}', f'BM_ReadWholePool/size:{i}'))}"
                f" of its time ({label})" for i, label in SIZES) + ".")
out("")
out("**How `fs::read` sizes the file.** It opens on the ring and sizes "
    "the open fd with `fstat(2)`, which only reads the in-memory inode. An "
    "earlier version sized it with `IORING_OP_STATX` in the same turn as "
    "the open; the kernel always hands STATX to an io-wq worker thread "
    "(`REQ_F_FORCE_ASYNC` in `io_uring/statx.c`), so every `fs::read` woke "
    "a worker and slept in `io_uring_enter` until it was woken back: 2.00 "
    "context switches per file and 3.5x the time of the `read(2)` loop at "
    "4 KiB in a run of this benchmark before the change. Now: "
    f"{get('BM_ReadWholeFsRead/size:0', 'switches_per_file'):.2f} context "
    "switches per 4 KiB file, against "
    f"{get('BM_ReadWholeSyscall/size:0', 'switches_per_file'):.2f} for the "
    "`read(2)` loop. The diagnostic row (shardio's ops in one batch, sized "
    "by `fstat(2)`) costs "
    + ", ".join(f"{fmt_ns(ns(f'BM_ReadWholeShardioFstat/size:{i}'))} against "
                f"`fs::read`'s {fmt_ns(ns(f'BM_ReadWholeFsRead/size:{i}'))} "
                f"({label})"
                for i, label in SIZES[:2])
    + ". For 64 MiB, every row is dominated "
    "by first touches of the fresh 64 MiB vector (*allocation only*: "
    f"{fmt_ns(ns('BM_ReadWholeAllocOnly/size:2'))}, "
    f"{get('BM_ReadWholeAllocOnly/size:2', 'faults_per_file'):,.0f} page "
    "faults; the kernel runs with free page reporting, so memory freed by "
    "`munmap` goes back to the host and faults there again), not by the "
    "reads.")
out("")

# --- 4. O_DIRECT ------------------------------------------------------------
out("#### 4. O_DIRECT random 4 KiB reads, QD 32 (the device, not the page "
    "cache)")
out("")
direct = ctx.get("o_direct", "?")
fsname = ctx.get("file_fs", "?")
if direct != "ok":
    out(f"**Skipped:** {direct} (the files are on {fsname}); both cases "
        "reported that error instead of a figure.")
else:
    out("shardio: 32 tasks on a `File` opened with "
        "`File::options().read().direct()`, each reading into a 4 KiB "
        "`AlignedBuffer`; raw liburing: 32 SQEs in flight on an `O_DIRECT` "
        f"fd, as in section 1. The file is on {fsname} on this VM's virtual "
        "disk, so the device and the host decide most of the figure.")
    out("")
    out("| | ns per read | reads/s | MB/s | CV |")
    out("|---|---:|---:|---:|---:|")
    for label, n in (("shardio `File::read_at`",
                      "BM_DirectRandomReadFile/qd:32"),
                     ("raw liburing", "BM_DirectRandomReadRawLiburing/qd:32")):
        if n in errors:
            out(f"| {label} | failed: {errors[n]} | | | |")
            continue
        out(f"| {label} | {fmt_ns(ns(n))} | "
            f"{fmt_rate(get(n, 'items_per_second'))} | {fmt_mbs(mbs(n))} | "
            f"{fmt_cv(n)} |")
    out(f"| time ratio shardio / raw (fastest reps) | "
        f"{both('BM_DirectRandomReadFile/qd:32', 'BM_DirectRandomReadRawLiburing/qd:32')}"
        " | | | |")
    out("")
    a, b = "BM_DirectRandomReadFile/qd:32", "BM_DirectRandomReadRawLiburing/qd:32"
    if a in median and b in median:
        worst_cv = max(cv[n]["real_time"] for n in (a, b) if n in cv)
        out("**Verdict.** " + compare(ratio(a, b), ratio(a, b, best),
                                      "shardio", "raw liburing")
            + f". Both wait on the same device, whose speed on this VM "
            "drifts from second to second (CVs up to "
            f"{100 * worst_cv:.0f}% here; runs by hand put either side "
            "ahead), so a difference smaller than the CVs says nothing "
            "about shardio.")
out(END)
section = "\n".join(lines)

sys.path.insert(0, os.path.join(os.environ["SHARDIO_ROOT"], "bench"))
from doc_section import write_section  # noqa: E402

write_section(doc_path, BEGIN, END, section)
PY
