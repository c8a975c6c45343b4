// demo: random 4 KiB reads from a page-cached file, shardio batches against
// a plain pread(2) loop.
//
// The demo writes a scratch file (every 4 KiB block starts with its own
// index), then reads random blocks two ways and checks every block it reads:
//   baseline  one thread calling pread(2) once per block;
//   shardio   one shard submitting `--depth` Read ops per batch() — one
//             io_uring_enter per batch instead of one syscall per read.
// It prints both throughputs, their ratio and the shard's counters.
//
// Usage: demo [--file-mib N] [--reads N] [--depth N] [--dir PATH]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "shardio/shardio.h"

namespace {

constexpr std::size_t kBlock = 4096;

struct Config {
  uint64_t file_mib = 64;
  uint64_t reads = 200000;
  unsigned depth = 64;
  std::string dir = "/tmp";
};

uint64_t block_tag(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

std::vector<uint64_t> random_blocks(uint64_t count, uint64_t blocks) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> pick(0, blocks - 1);
  std::vector<uint64_t> out(count);
  for (auto& b : out) b = pick(rng);
  return out;
}

using Buf = std::vector<std::byte>;

// Writes the scratch file with shardio, 64 blocks per batch.
shardio::Task<shardio::Result<void>> write_file(int fd, uint64_t blocks) {
  constexpr uint64_t kPerBatch = 64;
  for (uint64_t first = 0; first < blocks; first += kPerBatch) {
    std::vector<shardio::Write<Buf>> ops;
    for (uint64_t b = first; b < std::min(blocks, first + kPerBatch); ++b) {
      Buf buf(kBlock, std::byte{0x5a});
      std::memcpy(buf.data(), &b, sizeof(b));
      ops.emplace_back(fd, std::move(buf), b * kBlock);
    }
    auto results = co_await shardio::batch(std::span(ops));
    for (auto& r : results) {
      if (!r.res) co_return r.res.error();
      if (*r.res != kBlock) co_return shardio::errno_code(EIO);
    }
  }
  co_return shardio::Result<void>{};
}

struct ShardioRun {
  double seconds = 0;
  uint64_t bad = 0;
  shardio::ShardCounters before, after;
};

shardio::Task<ShardioRun> read_random(int fd, std::vector<uint64_t> order,
                                      unsigned depth) {
  ShardioRun run;
  std::vector<Buf> free_bufs(depth, Buf(kBlock));
  std::vector<shardio::Read<Buf>> ops;
  ops.reserve(depth);
  run.before = shardio::this_shard::counters();
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < order.size(); i += depth) {
    const std::size_t n = std::min<std::size_t>(depth, order.size() - i);
    ops.clear();
    for (std::size_t k = 0; k < n; ++k) {
      // Buffers move into the ops and come back with the results.
      ops.emplace_back(fd, std::move(free_bufs[k]), order[i + k] * kBlock);
    }
    auto results = co_await shardio::batch(std::span(ops));
    for (std::size_t k = 0; k < n; ++k) {
      if (!results[k].res || *results[k].res != kBlock ||
          block_tag(results[k].buf.data()) != order[i + k]) {
        ++run.bad;
      }
      free_bufs[k] = std::move(results[k].buf);
    }
  }
  run.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  run.after = shardio::this_shard::counters();
  co_return run;
}

bool parse(int argc, char** argv, Config& c) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char* v = nullptr;
    if (a == "--file-mib" && (v = next())) {
      c.file_mib = std::strtoull(v, nullptr, 10);
    } else if (a == "--reads" && (v = next())) {
      c.reads = std::strtoull(v, nullptr, 10);
    } else if (a == "--depth" && (v = next())) {
      c.depth = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    } else if (a == "--dir" && (v = next())) {
      c.dir = v;
    } else {
      std::fprintf(stderr,
                   "usage: demo [--file-mib N] [--reads N] [--depth N] "
                   "[--dir PATH]\n");
      return false;
    }
  }
  if (c.file_mib == 0 || c.reads == 0 || c.depth == 0 || c.depth > 4096) {
    std::fprintf(stderr, "demo: sizes must be positive, depth <= 4096\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (!parse(argc, argv, cfg)) return 2;
  const uint64_t blocks = cfg.file_mib * 1024 * 1024 / kBlock;
  std::string path = cfg.dir + "/shardio-demo-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) {
    std::fprintf(stderr, "demo: cannot create a file in %s: %s\n",
                 cfg.dir.c_str(), std::strerror(errno));
    return 1;
  }
  ::unlink(path.c_str());

  shardio::Runtime rt(shardio::RuntimeOptions{.shards = 1});
  if (auto w = rt.block_on(write_file(fd, blocks)); !w) {
    std::fprintf(stderr, "demo: writing the scratch file failed: %s\n",
                 w.error().message().c_str());
    return 1;
  }
  const std::vector<uint64_t> order = random_blocks(cfg.reads, blocks);

  // Warm-up and baseline: pread(2), one syscall per block.
  std::vector<std::byte> buf(kBlock);
  uint64_t base_bad = 0;
  auto pread_pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t b : order) {
      if (::pread(fd, buf.data(), kBlock, static_cast<off_t>(b * kBlock)) !=
              static_cast<ssize_t>(kBlock) ||
          block_tag(buf.data()) != b) {
        ++base_bad;
      }
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
  };
  pread_pass();
  base_bad = 0;
  const double base_s = pread_pass();

  ShardioRun run = rt.block_on(read_random(fd, order, cfg.depth));
  ::close(fd);

  const double base_rate = static_cast<double>(cfg.reads) / base_s;
  const double sh_rate = static_cast<double>(cfg.reads) / run.seconds;
  const uint64_t enters = run.after.enters - run.before.enters;
  std::printf(
      "shardio demo: %llu random 4 KiB reads from a %llu MiB "
      "page-cached file\n",
      static_cast<unsigned long long>(cfg.reads),
      static_cast<unsigned long long>(cfg.file_mib));
  std::printf("  baseline pread(2) loop      : %10.0f reads/s\n", base_rate);
  std::printf(
      "  shardio batch(depth %4u)   : %10.0f reads/s  (%.2fx the "
      "baseline)\n",
      cfg.depth, sh_rate, sh_rate / base_rate);
  std::printf(
      "  shardio counters: %llu SQEs, %llu io_uring_enter calls "
      "(%.1f reads per syscall)\n",
      static_cast<unsigned long long>(run.after.sqes_submitted -
                                      run.before.sqes_submitted),
      static_cast<unsigned long long>(enters),
      enters ? static_cast<double>(cfg.reads) / static_cast<double>(enters)
             : 0.0);
  if (run.bad != 0 || base_bad != 0) {
    std::printf("  DATA MISMATCH: %llu shardio, %llu baseline\n",
                static_cast<unsigned long long>(run.bad),
                static_cast<unsigned long long>(base_bad));
    return 1;
  }
  std::printf("  every block read back verified\n");
  return 0;
}
