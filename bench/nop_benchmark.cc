// bench/nop_benchmark.cc — what the core runtime costs, side by side with raw
// liburing doing the same work.
//
//   BM_SubmitNop               co_await submit(Nop{}), one op per loop turn
//   BM_RawLiburingNop          get_sqe + prep_nop + submit_and_wait(1) + reap
//   BM_NopBatch/N              co_await batch(span of N Nops), one turn
//   BM_RawLiburingNopBatch/N   N SQEs, one submit_and_wait(N), reap N
//   BM_SpawnJoin/pool:{1,0}    spawn(trivial task) + co_await its JoinHandle
//   BM_AwaitTask/pool:{1,0}    co_await a trivial Task<int>
//
// The shardio cases run on the shard thread of a one-shard Runtime: the
// benchmark thread sits in Runtime::block_on() while a task iterates
// benchmark::State itself. The raw cases run on the benchmark thread with a
// ring created with the same IORING_SETUP_* flags and size as the shard's.
// Every case uses real time, so both sides are measured the same way.
// "ns_per_op" is the wall time per Nop (per spawn or await for the task
// cases) in nanoseconds; the console prints it with a unit suffix meant for
// seconds ("64.5s" is 64.5 ns), the JSON output as a plain number.
// "enters_per_iter" counts io_uring_enter calls per iteration.
//
// Run with bench/run_benchmarks.sh, which writes docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <liburing.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "bench_util.h"
#include "shardio/batch.h"
#include "shardio/detail/frame_alloc.h"
#include "shardio/operation.h"
#include "shardio/ops/nop.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace {

// Shared scaffolding (bench/bench_util.h).
using shardio::bench::AddShardSetupContext;
using shardio::bench::OneShard;
using shardio::bench::RawRing;
using shardio::bench::SetPerOpCounters;

// Runs `task` to completion on the runtime's shard 0 and reports the
// io_uring_enter calls it made per iteration.
void RunOnShard(benchmark::State& state, shardio::Runtime& rt,
                shardio::Task<void> task) {
  const uint64_t enters_before = rt.counters(0).enters;
  try {
    rt.block_on(std::move(task));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const uint64_t enters = rt.counters(0).enters - enters_before;
  state.counters["enters_per_iter"] = benchmark::Counter(
      static_cast<double>(enters) /
      static_cast<double>(state.iterations() > 0 ? state.iterations() : 1));
}

// ---------------------------------------------------------------------------
// One Nop at a time.

shardio::Task<void> SubmitNopLoop(benchmark::State& state) {
  for (auto _ : state) {
    shardio::Result<void> r = co_await shardio::submit(shardio::Nop{});
    if (!r.has_value()) [[unlikely]] {
      state.SkipWithError("a Nop failed");
      break;
    }
  }
}

void BM_SubmitNop(benchmark::State& state) {
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, SubmitNopLoop(state));
  SetPerOpCounters(state, 1);
}

void BM_RawLiburingNop(benchmark::State& state) {
  RawRing ring;
  if (const std::string err = ring.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  io_uring* r = ring.get();
  for (auto _ : state) {
    io_uring_sqe* sqe = io_uring_get_sqe(r);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 64);
    const int ret = io_uring_submit_and_wait(r, 1);
    io_uring_cqe* cqe = nullptr;
    if (ret < 0 || io_uring_peek_cqe(r, &cqe) != 0 || cqe->res < 0)
        [[unlikely]] {
      state.SkipWithError("a raw Nop failed");
      break;
    }
    io_uring_cqe_seen(r, cqe);
  }
  SetPerOpCounters(state, 1);
  state.counters["enters_per_iter"] = 1;
}

// ---------------------------------------------------------------------------
// N Nops in one loop turn.

shardio::Task<void> NopBatchLoop(benchmark::State& state, std::size_t n) {
  // batch(span) moves each op out; a moved-from Nop is still a Nop, so the
  // same vector serves every iteration without allocating.
  std::vector<shardio::Nop> ops(n);
  for (auto _ : state) {
    std::vector<shardio::Result<void>> rs =
        co_await shardio::batch(std::span<shardio::Nop>(ops));
    bool ok = rs.size() == n;
    for (const shardio::Result<void>& r : rs) ok &= r.has_value();
    if (!ok) [[unlikely]] {
      state.SkipWithError("a batched Nop failed");
      break;
    }
  }
}

void BM_NopBatch(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, NopBatchLoop(state, n));
  SetPerOpCounters(state, state.range(0));
}

void BM_RawLiburingNopBatch(benchmark::State& state) {
  const auto n = static_cast<unsigned>(state.range(0));
  RawRing ring;
  if (const std::string err = ring.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  io_uring* r = ring.get();
  std::vector<io_uring_cqe*> cqes(n);
  uint64_t enters = 0;
  for (auto _ : state) {
    for (unsigned i = 0; i < n; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(r);
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, 64 + i);
    }
    int ret = io_uring_submit_and_wait(r, n);
    ++enters;
    bool ok = ret >= 0;
    unsigned seen = 0;
    while (ok && seen < n) {
      const unsigned got = io_uring_peek_batch_cqe(r, cqes.data(), n - seen);
      for (unsigned i = 0; i < got; ++i) ok &= cqes[i]->res >= 0;
      io_uring_cq_advance(r, got);
      seen += got;
      if (got == 0 && seen < n) {  // not expected for NOPs
        ok = io_uring_submit_and_wait(r, n - seen) >= 0;
        ++enters;
      }
    }
    if (!ok) [[unlikely]] {
      state.SkipWithError("a raw batched Nop failed");
      break;
    }
  }
  SetPerOpCounters(state, state.range(0));
  state.counters["enters_per_iter"] = benchmark::Counter(
      static_cast<double>(enters) /
      static_cast<double>(state.iterations() > 0 ? state.iterations() : 1));
}

// ---------------------------------------------------------------------------
// Tasks, with the frame pool on (pool:1) and off (pool:0).

// Sets the process-wide frame pool switch for one benchmark run.
class FramePoolSetting {
 public:
  explicit FramePoolSetting(bool enabled)
      : saved_(shardio::detail::frame_pool_enabled()) {
    shardio::detail::set_frame_pool_enabled(enabled);
  }
  FramePoolSetting(const FramePoolSetting&) = delete;
  FramePoolSetting& operator=(const FramePoolSetting&) = delete;
  ~FramePoolSetting() { shardio::detail::set_frame_pool_enabled(saved_); }

 private:
  bool saved_;
};

shardio::Task<int> Trivial() { co_return 1; }

shardio::Task<void> SpawnJoinLoop(benchmark::State& state) {
  for (auto _ : state) {
    shardio::JoinHandle<int> h = shardio::spawn(Trivial());
    int v = co_await h;
    benchmark::DoNotOptimize(v);
  }
}

void BM_SpawnJoin(benchmark::State& state) {
  FramePoolSetting pool(state.range(0) != 0);
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, SpawnJoinLoop(state));
  SetPerOpCounters(state, 1);
}

shardio::Task<void> AwaitTaskLoop(benchmark::State& state) {
  for (auto _ : state) {
    int v = co_await Trivial();
    benchmark::DoNotOptimize(v);
  }
}

void BM_AwaitTask(benchmark::State& state) {
  FramePoolSetting pool(state.range(0) != 0);
  shardio::Runtime rt(OneShard());
  RunOnShard(state, rt, AwaitTaskLoop(state));
  SetPerOpCounters(state, 1);
}

// Every case: wall time, and besides Google Benchmark's mean / median /
// stddev / cv a "min" over the repetitions (on a shared machine noise only
// ever adds time).
void Configure(benchmark::internal::Benchmark* b) {
  b->UseRealTime()->ComputeStatistics(
      "min", [](const std::vector<double>& v) -> double {
        return *std::min_element(v.begin(), v.end());
      });
}

void BatchSizes(benchmark::internal::Benchmark* b) {
  for (int n : {1, 8, 32, 128}) b->Arg(n);
}

void PoolOnOff(benchmark::internal::Benchmark* b) {
  b->ArgName("pool")->Arg(1)->Arg(0);
}

BENCHMARK(BM_SubmitNop)->Apply(Configure);
BENCHMARK(BM_RawLiburingNop)->Apply(Configure);
BENCHMARK(BM_NopBatch)->Apply(BatchSizes)->Apply(Configure);
BENCHMARK(BM_RawLiburingNopBatch)->Apply(BatchSizes)->Apply(Configure);
BENCHMARK(BM_SpawnJoin)->Apply(PoolOnOff)->Apply(Configure);
BENCHMARK(BM_AwaitTask)->Apply(PoolOnOff)->Apply(Configure);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    AddShardSetupContext();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nop_benchmark: cannot start a shardio runtime: %s\n",
                 e.what());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
