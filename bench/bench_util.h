// bench/bench_util.h — scaffolding shared by the benchmark files: the
// options of a one-shard Runtime, the IORING_SETUP_* flags and size of a
// shard's ring (read from a real Runtime), how to print those flags and put
// them in the benchmark's JSON context, the ns_per_op counter, and a raw
// liburing ring set up like a shard's, for the raw-liburing baselines.
// Header-only; each benchmark is one translation unit.
#pragma once

#include <benchmark/benchmark.h>
#include <liburing.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "shardio/runtime.h"

namespace shardio::bench {

inline shardio::RuntimeOptions OneShard() {
  return shardio::RuntimeOptions{.shards = 1};
}

// The flags and size of a shard's ring, read from a real Runtime once so that
// the raw rings are set up exactly the same way.
struct ShardRingSetup {
  unsigned flags = 0;
  unsigned entries = 0;
};

inline const ShardRingSetup& ShardSetup() {
  static const ShardRingSetup setup = [] {
    shardio::Runtime rt(OneShard());
    return ShardRingSetup{rt.setup_flags(0), rt.options().ring_entries};
  }();
  return setup;
}

// "SINGLE_ISSUER|DEFER_TASKRUN" and the like; unnamed bits as "0x...", no
// flags as "0".
inline std::string DescribeSetupFlags(unsigned flags) {
  struct Named {
    unsigned bit;
    const char* name;
  };
  static constexpr Named kNames[] = {
      {IORING_SETUP_SQPOLL, "SQPOLL"},
      {IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"},
      {IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"},
      {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
      {IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL"},
  };
  std::string out;
  unsigned rest = flags;
  for (const Named& n : kNames) {
    if ((flags & n.bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += n.name;
    rest &= ~n.bit;
  }
  if (rest != 0) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "0x%x", rest);
    if (!out.empty()) out += '|';
    out += buf;
  }
  return out.empty() ? "0" : out;
}

// Adds the shard ring's setup to the benchmark's context (JSON "context"):
// shardio_setup_flags and shardio_ring_entries. Throws what Runtime's
// constructor throws when no runtime can start.
inline void AddShardSetupContext() {
  const ShardRingSetup& setup = ShardSetup();
  benchmark::AddCustomContext("shardio_setup_flags",
                              DescribeSetupFlags(setup.flags));
  benchmark::AddCustomContext("shardio_ring_entries",
                              std::to_string(setup.entries));
}

// Wall time per op as a counter: rate-invert of ops_per_iter * 1e-9 per
// iteration gives seconds * 1e9 / ops, i.e. nanoseconds per op.
inline void SetPerOpCounters(benchmark::State& state, int64_t ops_per_iter) {
  state.SetItemsProcessed(state.iterations() * ops_per_iter);
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(ops_per_iter) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate |
                             benchmark::Counter::kInvert);
}

// A ring owned by the thread that creates it, with the size of a shard's
// ring and its setup flags (or `flags`).
class RawRing {
 public:
  RawRing() : RawRing(ShardSetup().flags) {}
  explicit RawRing(unsigned flags) {
    io_uring_params p{};
    p.flags = flags;
    err_ = -io_uring_queue_init_params(ShardSetup().entries, &ring_, &p);
  }
  RawRing(const RawRing&) = delete;
  RawRing& operator=(const RawRing&) = delete;
  ~RawRing() {
    if (err_ == 0) io_uring_queue_exit(&ring_);
  }

  // Empty when the ring exists, else why not.
  std::string error() const {
    return err_ == 0 ? std::string()
                     : std::string("io_uring_queue_init_params: ") +
                           std::strerror(err_);
  }
  io_uring* get() noexcept { return &ring_; }
  int fd() const noexcept { return ring_.ring_fd; }

 private:
  io_uring ring_{};
  int err_ = 0;
};

}  // namespace shardio::bench
