// bench/file_benchmark.cc — file reads through shardio (fs::File, registered
// buffers and files, fs::read) side by side with raw liburing, a thread pool
// doing pread(2) (a mutex + condition-variable job queue: the design a
// thread-per-core runtime replaces), plain read(2) and std::ifstream.
//
// Random 4 KiB reads of a page-cached 256 MiB file, QD = reads in flight:
//   BM_RandomReadFile/qd:N             QD tasks, each looping on
//                                      co_await File::read_at(vector, off)
//   BM_RandomReadFixed/qd:N            the same with File::register_fixed()
//                                      and read_fixed_at(FixedBuffer) from a
//                                      BufferPool (READ_FIXED, fixed file)
//   BM_RandomReadRawLiburing/qd:N      QD SQEs in flight on a ring set up like
//                                      the shard's; every CQE is refilled, one
//                                      io_uring_submit_and_wait(1) per pass
//   BM_RandomReadPool/threads:T/qd:N   the benchmark thread keeps QD pread
//                                      jobs queued on a T-thread pool and
//                                      refills each as it completes
// Sequential reads of the whole 256 MiB file in 64 KiB / 1 MiB chunks, 4 in
// flight (one iteration = one pass over the file):
//   BM_SeqReadFile, BM_SeqReadRawLiburing, BM_SeqReadPool/threads:T, and
//   BM_SeqReadSyscall (one thread, a read(2) loop, 1 in flight)
// Whole files of 4 KiB, 1 MiB and 64 MiB into a fresh std::vector<std::byte>
// (open + size + read + close, every iteration):
//   BM_ReadWholeFsRead (co_await fs::read), BM_ReadWholeIfstream,
//   BM_ReadWholeSyscall (open/fstat/read loop/close), BM_ReadWholePool (that
//   same function as one job on a 2-thread pool; the caller waits for it),
//   BM_ReadWholeAllocOnly (the fresh zeroed vector alone), and a diagnostic,
//   BM_ReadWholeShardioFstat: fs::read's steps done with shardio's ops but
//   sized with fstat(2) instead of IORING_OP_STATX. main() fixes
//   glibc's allocation policy for every case (M_MMAP_THRESHOLD 32 MiB,
//   M_TRIM_THRESHOLD 1 GiB), so 4 KiB and 1 MiB vectors come from a warm
//   heap and 64 MiB ones are fresh mmap()ed memory in every case;
//   faults_per_file counts the page faults that costs.
// O_DIRECT random 4 KiB reads, QD 32 (real device I/O, not the page cache):
//   BM_DirectRandomReadFile/qd:32 (File opened with OpenOptions::direct(),
//   AlignedBuffer), BM_DirectRandomReadRawLiburing/qd:32. Skipped with
//   "O_DIRECT refused by <fs>" where the file system refuses O_DIRECT.
//
// The shardio cases run on the shard thread of a one-shard Runtime; the
// benchmark thread waits in Runtime::block_on(). In the QD cases the QD
// spawned tasks take turns on benchmark::State (all on one thread) and each
// starts its next read as soon as its last one completed, like the raw
// ring's refill. Every case uses wall time. Counters: ns_per_read (wall time
// per 4 KiB read or per chunk), ns_per_file, items_per_second (reads or
// files per second), bytes_per_second, enters_per_read (io_uring_enter
// calls per read, shardio and raw liburing).
//
// The files live in $SHARDIO_BENCH_DIR, else /var/tmp, else /tmp; they are
// created, synced and read once before the first case and removed at exit
// (also on SIGINT/SIGTERM).
//
// Run with bench/run_file_benchmarks.sh, which writes docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/magic.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "shardio/batch.h"
#include "shardio/buffer.h"
#include "shardio/buffer_pool.h"
#include "shardio/fs.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace {

// Shared scaffolding (bench/bench_util.h).
using shardio::bench::AddShardSetupContext;
using shardio::bench::OneShard;
using shardio::bench::RawRing;

namespace fs = shardio::fs;

constexpr std::size_t kBlock = 4096;
constexpr uint64_t kBigSize = uint64_t{256} << 20;
constexpr uint64_t kBlocks = kBigSize / kBlock;
constexpr unsigned kSeqInFlight = 4;
constexpr std::size_t kOffsetTableSize = std::size_t{1} << 16;
constexpr std::size_t kWholeSizes[] = {4096, std::size_t{1} << 20,
                                       std::size_t{64} << 20};

// ---------------------------------------------------------------------------
// The files.

struct BenchFiles {
  std::string dir;
  std::string fs_name;
  std::string big;
  std::string whole[3];  // kWholeSizes
  // Empty when O_DIRECT works on `dir`, else why not.
  std::string direct_refused;
};

BenchFiles* g_files = nullptr;
// Copies of the paths for the signal handler (unlink is async-signal-safe).
char g_cleanup_paths[5][512];
char g_cleanup_dir[512];

void RemoveFiles() noexcept {
  for (const char* p : g_cleanup_paths) {
    if (p[0] != '\0') unlink(p);
  }
  if (g_cleanup_dir[0] != '\0') rmdir(g_cleanup_dir);
}

extern "C" void OnFatalSignal(int sig) {
  RemoveFiles();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

const char* FsName(const char* dir) {
  struct statfs s {};
  if (statfs(dir, &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case EXT4_SUPER_MAGIC:
      return "ext4";  // also ext2/ext3: one magic
    case TMPFS_MAGIC:
      return "tmpfs";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlayfs";
    case 0x65735546:
      return "fuse";
    case NFS_SUPER_MAGIC:
      return "nfs";
    default:
      return "an unrecognised file system";
  }
}

// Writes `size` pseudo-random bytes to `path` and syncs them (so that O_DIRECT
// reads later do not first wait for write-back). Returns an error or "".
std::string WriteFile(const std::string& path, uint64_t size, uint64_t seed) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "create " + path + ": " + std::strerror(errno);
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> chunk((std::size_t{1} << 20) / sizeof(uint64_t));
  uint64_t left = size;
  std::string err;
  while (left > 0 && err.empty()) {
    for (uint64_t& w : chunk) w = rng();
    const std::size_t n =
        static_cast<std::size_t>(std::min<uint64_t>(left, 1 << 20));
    std::size_t done = 0;
    while (done < n) {
      const ssize_t w = write(
          fd, reinterpret_cast<const char*>(chunk.data()) + done, n - done);
      if (w <= 0) {
        err = "write " + path + ": " + std::strerror(errno);
        break;
      }
      done += static_cast<std::size_t>(w);
    }
    left -= n;
  }
  if (err.empty() && fdatasync(fd) != 0) {
    err = "fdatasync " + path + ": " + std::strerror(errno);
  }
  close(fd);
  return err;
}

// Reads the whole file once, so that it is in the page cache.
void Warm(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<char> buf(std::size_t{1} << 20);
  while (read(fd, buf.data(), buf.size()) > 0) {
  }
  close(fd);
}

// Whether O_DIRECT reads work on `path`: "" or why not.
std::string ProbeDirect(const std::string& path, const std::string& fs_name) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    return errno == EINVAL
               ? "O_DIRECT refused by " + fs_name
               : "open(O_DIRECT): " + std::string(std::strerror(errno));
  }
  shardio::AlignedBuffer buf(kBlock);
  const ssize_t n = pread(fd, buf.data(), kBlock, 0);
  const int err = errno;
  close(fd);
  if (n == static_cast<ssize_t>(kBlock)) return "";
  if (n < 0 && err == EINVAL) return "O_DIRECT refused by " + fs_name;
  return "pread(O_DIRECT): " +
         std::string(n < 0 ? std::strerror(err) : "short read");
}

// Creates the files in the first usable directory; throws on failure.
BenchFiles MakeFiles() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("SHARDIO_BENCH_DIR")) dirs.push_back(env);
  dirs.push_back("/var/tmp");
  dirs.push_back("/tmp");
  std::string why;
  for (const std::string& base : dirs) {
    struct statvfs vfs {};
    if (statvfs(base.c_str(), &vfs) != 0) continue;
    const uint64_t free_bytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
    if (free_bytes < kBigSize + (uint64_t{128} << 20) + (uint64_t{64} << 20)) {
      why += base + ": not enough free space; ";
      continue;
    }
    std::string tmpl = base + "/shardio-file-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      why += base + ": " + std::strerror(errno) + "; ";
      continue;
    }
    BenchFiles f;
    f.dir = tmpl;
    f.fs_name = FsName(f.dir.c_str());
    f.big = f.dir + "/big.bin";
    const char* whole_names[] = {"/small.bin", "/medium.bin", "/large.bin"};
    for (int i = 0; i < 3; ++i) f.whole[i] = f.dir + whole_names[i];
    std::snprintf(g_cleanup_dir, sizeof(g_cleanup_dir), "%s", f.dir.c_str());
    std::snprintf(g_cleanup_paths[0], sizeof(g_cleanup_paths[0]), "%s",
                  f.big.c_str());
    for (int i = 0; i < 3; ++i) {
      std::snprintf(g_cleanup_paths[i + 1], sizeof(g_cleanup_paths[i + 1]),
                    "%s", f.whole[i].c_str());
    }
    std::string err = WriteFile(f.big, kBigSize, 1);
    for (int i = 0; i < 3 && err.empty(); ++i) {
      err = WriteFile(f.whole[i], kWholeSizes[i], 2 + i);
    }
    if (!err.empty()) {
      RemoveFiles();
      why += err + "; ";
      continue;
    }
    Warm(f.big);
    for (const std::string& p : f.whole) Warm(p);
    f.direct_refused = ProbeDirect(f.big, f.fs_name);
    return f;
  }
  throw std::runtime_error("no directory for the benchmark files: " + why);
}

const BenchFiles& Files() { return *g_files; }

// Block-aligned random offsets in the big file, the same sequence for every
// case.
const std::vector<uint64_t>& OffsetTable() {
  static const std::vector<uint64_t> table = [] {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<uint64_t> block(0, kBlocks - 1);
    std::vector<uint64_t> t(kOffsetTableSize);
    for (uint64_t& o : t) o = block(rng) * kBlock;
    return t;
  }();
  return table;
}

inline uint64_t RandomOffset(uint64_t i) {
  return OffsetTable()[i & (kOffsetTableSize - 1)];
}

// ---------------------------------------------------------------------------
// Rings, counters, settings.

// An fd closed on scope exit.
class ScopedFd {
 public:
  explicit ScopedFd(const std::string& path, int flags = 0)
      : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC | flags)) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// Reads (or files) per second, wall ns per read and bytes per second.
void SetReadCounters(benchmark::State& state, uint64_t bytes_per_iter,
                     const char* per_name) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(bytes_per_iter));
  state.counters[per_name] =
      benchmark::Counter(1e-9, benchmark::Counter::kIsIterationInvariantRate |
                                   benchmark::Counter::kInvert);
}

void SetEnters(benchmark::State& state, double enters, double reads) {
  state.counters["enters_per_read"] =
      benchmark::Counter(reads > 0 ? enters / reads : 0.0);
}

// Page faults and context switches of the whole process (every thread, the
// io_uring io-wq workers included) from construction to Report().
class ProcessUsage {
 public:
  ProcessUsage() : start_(Now()) {}
  // Adds faults_per_<unit> (minor page faults) and switches_per_<unit>
  // (voluntary + involuntary context switches), per iteration.
  void Report(benchmark::State& state, const std::string& unit) const {
    const rusage end = Now();
    const double iters =
        static_cast<double>(state.iterations() > 0 ? state.iterations() : 1);
    state.counters["faults_per_" + unit] = benchmark::Counter(
        static_cast<double>(end.ru_minflt - start_.ru_minflt) / iters);
    state.counters["switches_per_" + unit] = benchmark::Counter(
        static_cast<double>(end.ru_nvcsw + end.ru_nivcsw - start_.ru_nvcsw -
                            start_.ru_nivcsw) /
        iters);
  }

 private:
  static rusage Now() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u;
  }
  rusage start_;
};

// Runs `task` on shard 0 and reports io_uring_enter calls per read.
void RunOnShard(benchmark::State& state, shardio::Runtime& rt,
                shardio::Task<void> task, double reads_per_iter = 1.0) {
  const uint64_t before = rt.counters(0).enters;
  try {
    rt.block_on(std::move(task));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  SetEnters(state, static_cast<double>(rt.counters(0).enters - before),
            static_cast<double>(state.iterations()) * reads_per_iter);
}

// ---------------------------------------------------------------------------
// The thread pool: a mutex + condition-variable job queue and a completion
// queue the submitter waits on, the way an async runtime hands blocking file
// I/O to a pool.

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Work(); });
    }
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void Push(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, queue drained
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Slots whose job finished, handed back to the submitting thread.
class DoneQueue {
 public:
  void Push(unsigned slot) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_.push_back(slot);
    }
    cv_.notify_one();
  }
  // Waits for at least one finished slot; replaces `out` with all of them.
  void Wait(std::vector<unsigned>& out) {
    out.clear();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !done_.empty(); });
    out.swap(done_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<unsigned> done_;
};

// One pread(2) job; the pool runs [job] { job->Run(); } (8 bytes of capture,
// so std::function stores it without allocating).
struct PreadJob {
  int fd = -1;
  std::byte* buf = nullptr;
  std::size_t len = 0;
  uint64_t offset = 0;
  ssize_t res = 0;
  unsigned slot = 0;
  DoneQueue* done = nullptr;
  void Run() {
    res = pread(fd, buf, len, static_cast<off_t>(offset));
    done->Push(slot);
  }
};

// ---------------------------------------------------------------------------
// 1. Random 4 KiB reads, QD in flight.

// The QD reader tasks of one shardio run take turns on the benchmark's
// iterations; all run on the shard thread, so nothing is synchronized.
class IterationSource {
 public:
  explicit IterationSource(benchmark::State& state) : state_(state) {}
  // Claims one iteration (one read); false once there are enough.
  bool Next() {
    if (done_) return false;
    if (!state_.KeepRunning()) {
      done_ = true;
      return false;
    }
    return true;
  }
  uint64_t NextOffset() noexcept { return RandomOffset(cursor_++); }
  void Fail(const std::string& why) {
    if (!failed_) state_.SkipWithError(why.c_str());
    failed_ = true;
    done_ = true;
  }

 private:
  benchmark::State& state_;
  uint64_t cursor_ = 0;
  bool done_ = false;
  bool failed_ = false;
};

template <class R>
std::string ReadError(const R& res, std::size_t want) {
  if (!res.has_value()) return res.error().message();
  return "short read: " + std::to_string(*res) + " of " + std::to_string(want);
}

template <class B>
shardio::Task<void> FileReader(IterationSource& src, fs::File& file, B buf) {
  while (src.Next()) {
    auto read = file.read_at(std::move(buf), src.NextOffset());
    fs::IoResult<B> r = co_await read;
    buf = std::move(r.buf);
    if (!r.res.has_value() || *r.res != kBlock) [[unlikely]] {
      src.Fail(ReadError(r.res, kBlock));
      break;
    }
  }
}

shardio::Task<void> FixedReader(IterationSource& src, fs::File& file,
                                shardio::FixedBuffer buf) {
  while (src.Next()) {
    auto read = file.read_fixed_at(std::move(buf), src.NextOffset());
    fs::IoResult<shardio::FixedBuffer> r = co_await read;
    buf = std::move(r.buf);
    if (!r.res.has_value() || *r.res != kBlock) [[unlikely]] {
      src.Fail(ReadError(r.res, kBlock));
      break;
    }
  }
}

enum class Variant { kFile, kFixed, kDirect };

shardio::Task<void> RandomReadMain(IterationSource& src, unsigned qd,
                                   Variant variant) {
  const std::string& path = Files().big;
  auto opening = variant == Variant::kDirect
                     ? fs::File::options().read().direct().open(path)
                     : fs::File::open(path);
  fs::Result<fs::File> f = co_await opening;
  if (!f.has_value()) {
    src.Fail(f.error().message());
    co_return;
  }
  std::optional<shardio::BufferPool> pool;
  if (variant == Variant::kFixed) {
    if (fs::Result<void> reg = f->register_fixed(); !reg.has_value()) {
      src.Fail(reg.error().message());
      co_return;
    }
    shardio::Result<shardio::BufferPool> p =
        shardio::BufferPool::create(qd, kBlock);
    if (!p.has_value()) {
      src.Fail("BufferPool::create: " + p.error().message());
      co_return;
    }
    pool.emplace(std::move(*p));
  }
  std::vector<shardio::JoinHandle<void>> readers;
  readers.reserve(qd);
  for (unsigned i = 0; i < qd; ++i) {
    switch (variant) {
      case Variant::kFile:
        readers.push_back(shardio::spawn(
            FileReader(src, *f, std::vector<std::byte>(kBlock))));
        break;
      case Variant::kDirect:
        readers.push_back(shardio::spawn(
            FileReader(src, *f, shardio::AlignedBuffer(kBlock))));
        break;
      case Variant::kFixed: {
        shardio::Result<shardio::FixedBuffer> buf = pool->acquire();
        if (!buf.has_value()) {
          src.Fail("BufferPool::acquire: " + buf.error().message());
          break;
        }
        readers.push_back(
            shardio::spawn(FixedReader(src, *f, std::move(*buf))));
        break;
      }
    }
  }
  for (shardio::JoinHandle<void>& h : readers) co_await h;
  auto closing = f->close();
  fs::Result<void> closed = co_await closing;
  if (!closed.has_value()) src.Fail(closed.error().message());
}

void RunRandomShardio(benchmark::State& state, Variant variant) {
  const auto qd = static_cast<unsigned>(state.range(0));
  if (variant == Variant::kDirect && !Files().direct_refused.empty()) {
    state.SkipWithError(Files().direct_refused.c_str());
    return;
  }
  shardio::Runtime rt(OneShard());
  IterationSource src(state);
  const ProcessUsage usage;
  RunOnShard(state, rt, RandomReadMain(src, qd, variant));
  usage.Report(state, "read");
  SetReadCounters(state, kBlock, "ns_per_read");
}

void BM_RandomReadFile(benchmark::State& state) {
  RunRandomShardio(state, Variant::kFile);
}
void BM_RandomReadFixed(benchmark::State& state) {
  RunRandomShardio(state, Variant::kFixed);
}
void BM_DirectRandomReadFile(benchmark::State& state) {
  RunRandomShardio(state, Variant::kDirect);
}

// QD reads in flight on a raw ring: take the CQEs there are (or wait for
// one), refill each with the next read; SQEs go in at the next wait.
void RunRandomRaw(benchmark::State& state, bool direct) {
  const auto qd = static_cast<unsigned>(state.range(0));
  if (direct && !Files().direct_refused.empty()) {
    state.SkipWithError(Files().direct_refused.c_str());
    return;
  }
  RawRing ring;
  if (const std::string err = ring.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  ScopedFd fd(Files().big, direct ? O_DIRECT : 0);
  if (fd.get() < 0) {
    state.SkipWithError(("open: " + std::string(std::strerror(errno))).c_str());
    return;
  }
  io_uring* r = ring.get();
  std::vector<shardio::AlignedBuffer> bufs;
  for (unsigned i = 0; i < qd; ++i) bufs.emplace_back(kBlock);
  uint64_t cursor = 0;
  uint64_t started = 0;
  uint64_t completed = 0;
  auto start = [&](unsigned slot) {
    io_uring_sqe* sqe = io_uring_get_sqe(r);
    io_uring_prep_read(sqe, fd.get(), bufs[slot].data(), kBlock,
                       RandomOffset(cursor++));
    io_uring_sqe_set_data64(sqe, slot);
    ++started;
  };
  const ProcessUsage usage;
  for (unsigned i = 0; i < qd; ++i) start(i);
  std::vector<io_uring_cqe*> cqes(qd);
  unsigned have = 0;
  unsigned next = 0;
  uint64_t enters = 0;
  bool ok = true;
  for (auto _ : state) {
    if (next == have) {
      io_uring_cq_advance(r, have);
      next = 0;
      have = io_uring_peek_batch_cqe(r, cqes.data(), qd);
      while (have == 0 && ok) {
        ++enters;
        ok = io_uring_submit_and_wait(r, 1) >= 0;
        have = io_uring_peek_batch_cqe(r, cqes.data(), qd);
      }
      if (!ok) break;
    }
    const io_uring_cqe* cqe = cqes[next++];
    ++completed;
    if (cqe->res != static_cast<int>(kBlock)) [[unlikely]] {
      ok = false;
      break;
    }
    start(static_cast<unsigned>(cqe->user_data));
  }
  // Drain: every read started must complete before the buffers go.
  completed += have - next;
  io_uring_cq_advance(r, have);
  io_uring_submit(r);
  while (completed < started) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(r, &cqe) < 0) break;
    io_uring_cqe_seen(r, cqe);
    ++completed;
  }
  if (!ok) {
    state.SkipWithError("a raw read failed or was short");
    return;
  }
  usage.Report(state, "read");
  SetReadCounters(state, kBlock, "ns_per_read");
  SetEnters(state, static_cast<double>(enters),
            static_cast<double>(state.iterations()));
}

void BM_RandomReadRawLiburing(benchmark::State& state) {
  RunRandomRaw(state, false);
}
void BM_DirectRandomReadRawLiburing(benchmark::State& state) {
  RunRandomRaw(state, true);
}

void BM_RandomReadPool(benchmark::State& state) {
  const auto threads = static_cast<unsigned>(state.range(0));
  const auto qd = static_cast<unsigned>(state.range(1));
  ScopedFd fd(Files().big);
  if (fd.get() < 0) {
    state.SkipWithError(("open: " + std::string(std::strerror(errno))).c_str());
    return;
  }
  DoneQueue done;
  std::vector<shardio::AlignedBuffer> bufs;
  std::vector<PreadJob> jobs(qd);
  for (unsigned i = 0; i < qd; ++i) {
    bufs.emplace_back(kBlock);
    jobs[i] = PreadJob{fd.get(), bufs[i].data(), kBlock, 0, 0, i, &done};
  }
  ThreadPool pool(threads);  // declared last: joined first
  uint64_t cursor = 0;
  auto start = [&](unsigned slot) {
    PreadJob* job = &jobs[slot];
    job->offset = RandomOffset(cursor++);
    pool.Push([job] { job->Run(); });
  };
  const ProcessUsage usage;
  for (unsigned i = 0; i < qd; ++i) start(i);
  unsigned in_flight = qd;
  std::vector<unsigned> ready;
  ready.reserve(qd);
  std::size_t next = 0;
  bool ok = true;
  for (auto _ : state) {
    if (next == ready.size()) {
      done.Wait(ready);
      in_flight -= static_cast<unsigned>(ready.size());
      next = 0;
    }
    const unsigned slot = ready[next++];
    if (jobs[slot].res != static_cast<ssize_t>(kBlock)) [[unlikely]] {
      ok = false;
      break;
    }
    start(slot);
    ++in_flight;
  }
  while (in_flight > 0) {
    done.Wait(ready);
    in_flight -= static_cast<unsigned>(ready.size());
  }
  if (!ok) {
    state.SkipWithError("a pread failed or was short");
    return;
  }
  usage.Report(state, "read");
  SetReadCounters(state, kBlock, "ns_per_read");
}

// ---------------------------------------------------------------------------
// 2. Sequential reads of the whole file, kSeqInFlight chunks in flight.

struct SeqPass {
  uint64_t next = 0;
  std::size_t chunk = 0;
  std::string error;
};

shardio::Task<void> SeqReader(SeqPass& pass, fs::File& file,
                              std::vector<std::byte>& buf) {
  while (pass.error.empty() && pass.next < kBigSize) {
    const uint64_t offset = pass.next;
    pass.next += pass.chunk;
    auto read = file.read_at(std::move(buf), offset);
    fs::IoResult<std::vector<std::byte>> r = co_await read;
    buf = std::move(r.buf);
    if (!r.res.has_value() || *r.res != pass.chunk) [[unlikely]] {
      pass.error = ReadError(r.res, pass.chunk);
    }
  }
}

shardio::Task<void> SeqReadMain(benchmark::State& state, std::size_t chunk) {
  auto opening = fs::File::open(Files().big);
  fs::Result<fs::File> f = co_await opening;
  if (!f.has_value()) {
    state.SkipWithError(f.error().message().c_str());
    co_return;
  }
  std::vector<std::vector<std::byte>> bufs(kSeqInFlight,
                                           std::vector<std::byte>(chunk));
  std::vector<shardio::JoinHandle<void>> readers;
  readers.reserve(kSeqInFlight);
  for (auto _ : state) {
    SeqPass pass{.next = 0, .chunk = chunk, .error = {}};
    readers.clear();
    for (unsigned i = 0; i < kSeqInFlight; ++i) {
      readers.push_back(shardio::spawn(SeqReader(pass, *f, bufs[i])));
    }
    for (shardio::JoinHandle<void>& h : readers) co_await h;
    if (!pass.error.empty()) [[unlikely]] {
      state.SkipWithError(pass.error.c_str());
      break;
    }
  }
  auto closing = f->close();
  fs::Result<void> closed = co_await closing;
  (void)closed;
}

std::size_t ChunkArg(const benchmark::State& state, int index) {
  return static_cast<std::size_t>(state.range(index)) << 10;
}

void BM_SeqReadFile(benchmark::State& state) {
  const std::size_t chunk = ChunkArg(state, 0);
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, SeqReadMain(state, chunk),
             static_cast<double>(kBigSize / chunk));
  SetReadCounters(state, kBigSize, "ns_per_pass");
}

void BM_SeqReadRawLiburing(benchmark::State& state) {
  const std::size_t chunk = ChunkArg(state, 0);
  RawRing ring;
  if (const std::string err = ring.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  ScopedFd fd(Files().big);
  if (fd.get() < 0) {
    state.SkipWithError(("open: " + std::string(std::strerror(errno))).c_str());
    return;
  }
  io_uring* r = ring.get();
  std::vector<std::vector<std::byte>> bufs(kSeqInFlight,
                                           std::vector<std::byte>(chunk));
  io_uring_cqe* cqes[kSeqInFlight];
  uint64_t enters = 0;
  unsigned in_flight = 0;
  bool ok = true;
  for (auto _ : state) {
    uint64_t next = 0;
    auto start = [&](unsigned slot) {
      io_uring_sqe* sqe = io_uring_get_sqe(r);
      io_uring_prep_read(sqe, fd.get(), bufs[slot].data(),
                         static_cast<unsigned>(chunk), next);
      io_uring_sqe_set_data64(sqe, slot);
      next += chunk;
      ++in_flight;
    };
    for (unsigned i = 0; i < kSeqInFlight && next < kBigSize; ++i) start(i);
    while (in_flight > 0 && ok) {
      ++enters;
      if (io_uring_submit_and_wait(r, 1) < 0) {
        ok = false;
        break;
      }
      const unsigned n = io_uring_peek_batch_cqe(r, cqes, kSeqInFlight);
      for (unsigned i = 0; i < n; ++i) {
        --in_flight;
        if (cqes[i]->res != static_cast<int>(chunk)) ok = false;
        if (ok && next < kBigSize) {
          start(static_cast<unsigned>(cqes[i]->user_data));
        }
      }
      io_uring_cq_advance(r, n);
    }
    if (!ok) break;
  }
  if (!ok) {
    // Reap what is still in flight before the buffers go.
    io_uring_submit(r);
    for (; in_flight > 0; --in_flight) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(r, &cqe) < 0) break;
      io_uring_cqe_seen(r, cqe);
    }
    state.SkipWithError("a raw read failed or was short");
    return;
  }
  SetReadCounters(state, kBigSize, "ns_per_pass");
  SetEnters(state, static_cast<double>(enters),
            static_cast<double>(state.iterations()) *
                static_cast<double>(kBigSize / chunk));
}

void BM_SeqReadPool(benchmark::State& state) {
  const auto threads = static_cast<unsigned>(state.range(0));
  const std::size_t chunk = ChunkArg(state, 1);
  ScopedFd fd(Files().big);
  if (fd.get() < 0) {
    state.SkipWithError(("open: " + std::string(std::strerror(errno))).c_str());
    return;
  }
  DoneQueue done;
  std::vector<std::vector<std::byte>> bufs(kSeqInFlight,
                                           std::vector<std::byte>(chunk));
  std::vector<PreadJob> jobs(kSeqInFlight);
  for (unsigned i = 0; i < kSeqInFlight; ++i) {
    jobs[i] = PreadJob{fd.get(), bufs[i].data(), chunk, 0, 0, i, &done};
  }
  ThreadPool pool(threads);
  std::vector<unsigned> ready;
  bool ok = true;
  for (auto _ : state) {
    uint64_t next = 0;
    unsigned in_flight = 0;
    auto start = [&](unsigned slot) {
      PreadJob* job = &jobs[slot];
      job->offset = next;
      next += chunk;
      ++in_flight;
      pool.Push([job] { job->Run(); });
    };
    for (unsigned i = 0; i < kSeqInFlight && next < kBigSize; ++i) start(i);
    while (in_flight > 0) {
      done.Wait(ready);
      for (unsigned slot : ready) {
        --in_flight;
        if (jobs[slot].res != static_cast<ssize_t>(chunk)) ok = false;
        if (ok && next < kBigSize) start(slot);
      }
    }
    if (!ok) break;
  }
  if (!ok) {
    state.SkipWithError("a pread failed or was short");
    return;
  }
  SetReadCounters(state, kBigSize, "ns_per_pass");
}

void BM_SeqReadSyscall(benchmark::State& state) {
  const std::size_t chunk = ChunkArg(state, 0);
  ScopedFd fd(Files().big);
  if (fd.get() < 0) {
    state.SkipWithError(("open: " + std::string(std::strerror(errno))).c_str());
    return;
  }
  std::vector<std::byte> buf(chunk);
  for (auto _ : state) {
    if (lseek(fd.get(), 0, SEEK_SET) != 0) {
      state.SkipWithError("lseek failed");
      break;
    }
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(fd.get(), buf.data(), chunk)) > 0) {
      total += static_cast<uint64_t>(n);
    }
    if (n < 0 || total != kBigSize) [[unlikely]] {
      state.SkipWithError("read(2) failed or the file was short");
      break;
    }
  }
  SetReadCounters(state, kBigSize, "ns_per_pass");
}

// ---------------------------------------------------------------------------
// 3. Whole files into a fresh std::vector<std::byte>.

std::size_t WholeSize(const benchmark::State& state) {
  return kWholeSizes[state.range(0)];
}
const std::string& WholePath(const benchmark::State& state) {
  return Files().whole[state.range(0)];
}

// open + fstat + read(2) until EOF + close; empty on error. Reads into a
// vector of the fstat size; once it is full, one more read into a small
// stack buffer confirms the end (or finds that the file grew), so a file of
// the expected size costs no reallocation.
std::vector<std::byte> ReadWholeSyscall(const char* path, bool& ok) {
  ok = false;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    close(fd);
    return {};
  }
  std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  for (;;) {
    ssize_t n;
    if (done < out.size()) {
      n = read(fd, out.data() + done, out.size() - done);
      if (n > 0) done += static_cast<std::size_t>(n);
    } else {
      std::byte probe[4096];
      n = read(fd, probe, sizeof(probe));
      if (n > 0) out.insert(out.end(), probe, probe + n);  // it grew
      if (n > 0) done += static_cast<std::size_t>(n);
    }
    if (n < 0) {
      close(fd);
      return {};
    }
    if (n == 0) break;
  }
  out.resize(done);
  close(fd);
  ok = true;
  return out;
}

shardio::Task<void> FsReadLoop(benchmark::State& state, std::string path,
                               std::size_t size) {
  const ProcessUsage usage;
  for (auto _ : state) {
    auto reading = fs::read(path);
    fs::Result<std::vector<std::byte>> r = co_await reading;
    if (!r.has_value() || r->size() != size) [[unlikely]] {
      state.SkipWithError(r.has_value() ? "fs::read: wrong size"
                                        : r.error().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(r->data());
  }
  usage.Report(state, "file");
}

void BM_ReadWholeFsRead(benchmark::State& state) {
  const std::size_t size = WholeSize(state);
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, FsReadLoop(state, WholePath(state), size));
  state.counters.erase("enters_per_read");
  SetReadCounters(state, size, "ns_per_file");
}

// A diagnostic beside fs::read: the same open / read-with-probe / close on
// the shard with shardio's ops, but sized with fstat(2) on the open fd
// instead of IORING_OP_STATX (which the kernel always hands to an io-wq
// worker thread). The close is awaited here; fs::read closes in a detached
// task.
shardio::Task<void> OpsFstatLoop(benchmark::State& state, std::string path,
                                 std::size_t size) {
  const ProcessUsage usage;
  std::string error;
  for (auto _ : state) {
    shardio::OpenAt open_op(AT_FDCWD, path, O_RDONLY);
    shardio::Result<int> fd = co_await shardio::submit(std::move(open_op));
    if (!fd.has_value()) [[unlikely]] {
      error = "open: " + fd.error().message();
      break;
    }
    struct stat st {};
    if (fstat(*fd, &st) != 0) [[unlikely]] {
      error = "fstat failed";
      break;
    }
    const auto n = static_cast<std::size_t>(st.st_size);
    shardio::Read<std::vector<std::byte>> body(*fd, std::vector<std::byte>(n),
                                               0);
    shardio::Read<std::array<std::byte, 64>> probe(
        *fd, std::array<std::byte, 64>(), n);
    auto [got, end] =
        co_await shardio::batch(std::move(body), std::move(probe));
    shardio::Close close_op(*fd);
    shardio::Result<void> closed =
        co_await shardio::submit(std::move(close_op));
    if (!got.res.has_value() || *got.res != size || !end.res.has_value() ||
        *end.res != 0 || !closed.has_value()) [[unlikely]] {
      error = "read or close failed, or the size was wrong";
      break;
    }
    std::vector<std::byte> out = std::move(got.buf);
    benchmark::DoNotOptimize(out.data());
  }
  if (!error.empty()) state.SkipWithError(error.c_str());
  usage.Report(state, "file");
}

void BM_ReadWholeShardioFstat(benchmark::State& state) {
  const std::size_t size = WholeSize(state);
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, OpsFstatLoop(state, WholePath(state), size));
  state.counters.erase("enters_per_read");
  SetReadCounters(state, size, "ns_per_file");
}

void BM_ReadWholeIfstream(benchmark::State& state) {
  const std::size_t size = WholeSize(state);
  const std::string& path = WholePath(state);
  const ProcessUsage usage;
  for (auto _ : state) {
    std::ifstream in(path, std::ios::binary);
    in.seekg(0, std::ios::end);
    const std::streamoff n = in.tellg();
    in.seekg(0, std::ios::beg);
    std::vector<std::byte> out(n > 0 ? static_cast<std::size_t>(n) : 0);
    in.read(reinterpret_cast<char*>(out.data()),
            static_cast<std::streamsize>(out.size()));
    if (!in || out.size() != size) [[unlikely]] {
      state.SkipWithError("ifstream read failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  usage.Report(state, "file");
  SetReadCounters(state, size, "ns_per_file");
}

void BM_ReadWholeSyscall(benchmark::State& state) {
  const std::size_t size = WholeSize(state);
  const std::string& path = WholePath(state);
  const ProcessUsage usage;
  for (auto _ : state) {
    bool ok = false;
    std::vector<std::byte> out = ReadWholeSyscall(path.c_str(), ok);
    if (!ok || out.size() != size) [[unlikely]] {
      state.SkipWithError("read(2) of the whole file failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  usage.Report(state, "file");
  SetReadCounters(state, size, "ns_per_file");
}

void BM_ReadWholePool(benchmark::State& state) {
  const std::size_t size = WholeSize(state);
  const std::string& path = WholePath(state);
  struct WholeJob {
    const char* path;
    std::vector<std::byte> out;
    bool ok = false;
    DoneQueue* done;
    void Run() {
      out = ReadWholeSyscall(path, ok);
      done->Push(0);
    }
  };
  DoneQueue done;
  WholeJob job{path.c_str(), {}, false, &done};
  ThreadPool pool(2);
  std::vector<unsigned> ready;
  const ProcessUsage usage;
  for (auto _ : state) {
    WholeJob* j = &job;
    pool.Push([j] { j->Run(); });
    done.Wait(ready);
    std::vector<std::byte> out = std::move(job.out);
    if (!job.ok || out.size() != size) [[unlikely]] {
      state.SkipWithError("read(2) of the whole file failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  usage.Report(state, "file");
  SetReadCounters(state, size, "ns_per_file");
}

// Only what every case above pays for its result: a fresh zeroed
// std::vector<std::byte> of the file's size.
void BM_ReadWholeAllocOnly(benchmark::State& state) {
  const std::size_t size = WholeSize(state);
  const ProcessUsage usage;
  for (auto _ : state) {
    std::vector<std::byte> out(size);
    benchmark::DoNotOptimize(out.data());
  }
  usage.Report(state, "file");
  SetReadCounters(state, size, "ns_per_file");
}

// ---------------------------------------------------------------------------

// Wall time, and besides mean / median / stddev / cv a "min" over the
// repetitions (on a shared machine noise only ever adds time).
void Configure(benchmark::internal::Benchmark* b) {
  b->UseRealTime()->ComputeStatistics(
      "min", [](const std::vector<double>& v) -> double {
        return *std::min_element(v.begin(), v.end());
      });
}

void QueueDepths(benchmark::internal::Benchmark* b) {
  b->ArgName("qd");
  for (int qd : {1, 32, 128}) b->Arg(qd);
}

void PoolQueueDepths(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads", "qd"});
  for (int t : {2, 16}) {
    for (int qd : {1, 32, 128}) b->Args({t, qd});
  }
}

void Chunks(benchmark::internal::Benchmark* b) {
  b->ArgName("chunk_kib");
  for (int kib : {64, 1024}) b->Arg(kib);
}

void PoolChunks(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads", "chunk_kib"});
  for (int t : {2, 16}) {
    for (int kib : {64, 1024}) b->Args({t, kib});
  }
}

// Index into kWholeSizes.
void WholeSizes(benchmark::internal::Benchmark* b) {
  b->ArgName("size");
  for (int i = 0; i < 3; ++i) b->Arg(i);
}

BENCHMARK(BM_RandomReadFile)->Apply(QueueDepths)->Apply(Configure);
BENCHMARK(BM_RandomReadFixed)->Apply(QueueDepths)->Apply(Configure);
BENCHMARK(BM_RandomReadRawLiburing)->Apply(QueueDepths)->Apply(Configure);
BENCHMARK(BM_RandomReadPool)->Apply(PoolQueueDepths)->Apply(Configure);

BENCHMARK(BM_SeqReadFile)->Apply(Chunks)->Apply(Configure);
BENCHMARK(BM_SeqReadRawLiburing)->Apply(Chunks)->Apply(Configure);
BENCHMARK(BM_SeqReadPool)->Apply(PoolChunks)->Apply(Configure);
BENCHMARK(BM_SeqReadSyscall)->Apply(Chunks)->Apply(Configure);

BENCHMARK(BM_ReadWholeFsRead)->Apply(WholeSizes)->Apply(Configure);
BENCHMARK(BM_ReadWholeShardioFstat)->Apply(WholeSizes)->Apply(Configure);
BENCHMARK(BM_ReadWholeIfstream)->Apply(WholeSizes)->Apply(Configure);
BENCHMARK(BM_ReadWholeSyscall)->Apply(WholeSizes)->Apply(Configure);
BENCHMARK(BM_ReadWholePool)->Apply(WholeSizes)->Apply(Configure);
BENCHMARK(BM_ReadWholeAllocOnly)->Apply(WholeSizes)->Apply(Configure);

BENCHMARK(BM_DirectRandomReadFile)->ArgName("qd")->Arg(32)->Apply(Configure);
BENCHMARK(BM_DirectRandomReadRawLiburing)
    ->ArgName("qd")
    ->Arg(32)
    ->Apply(Configure);

bool ListingOnly(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0 &&
        std::strcmp(argv[i], "--benchmark_list_tests=false") != 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const bool listing = ListingOnly(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (listing) {
    benchmark::RunSpecifiedBenchmarks();
    return 0;
  }
  // One allocation policy for every case (glibc's default moves its mmap
  // threshold as blocks are freed, differently per thread arena): blocks up
  // to 32 MiB come from the heap and stay there when freed, larger ones are
  // fresh mmap()ed memory every time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  BenchFiles files;
  try {
    AddShardSetupContext();
    std::signal(SIGINT, OnFatalSignal);
    std::signal(SIGTERM, OnFatalSignal);
    std::fprintf(stderr, "file_benchmark: writing the test files...\n");
    files = MakeFiles();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "file_benchmark: %s\n", e.what());
    return 1;
  }
  g_files = &files;
  benchmark::AddCustomContext("file_dir", files.dir);
  benchmark::AddCustomContext("file_fs", files.fs_name);
  benchmark::AddCustomContext(
      "o_direct", files.direct_refused.empty() ? "ok" : files.direct_refused);
  benchmark::AddCustomContext("seq_in_flight", std::to_string(kSeqInFlight));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  RemoveFiles();
  return 0;
}
