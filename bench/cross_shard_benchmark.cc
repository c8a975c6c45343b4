// bench/cross_shard_benchmark.cc — what cross-shard messaging costs, beside
// the plain-thread ways of doing the same thing, and shardio's claim that one
// ring per shard beats one ring behind a mutex.
//
//   BM_SubmitToRoundTrip/busy:N   co_await submit_to(1, [] { return 1; }) from
//                                 shard 0 of a 2-shard Runtime. busy:0 both
//                                 shards park between calls (a MSG_RING
//                                 doorbell each way); busy:1 shard 1 runs a
//                                 task that keeps yielding, so only shard 0
//                                 parks; busy:2 both shards run such a task,
//                                 so neither parks (no doorbell at all)
//   BM_RawMsgRingPingPong/skip_cqe:N
//                                 two plain threads, one ring each (the
//                                 shard's setup flags), ping-ponging with
//                                 io_uring_prep_msg_ring and one
//                                 io_uring_submit_and_wait(1) per hop.
//                                 skip_cqe:0 lets the sender's own MSG_RING
//                                 CQE be posted (as shardio's doorbell does);
//                                 skip_cqe:1 sets IOSQE_CQE_SKIP_SUCCESS
//   BM_EventfdPingPong            two plain threads, two eventfds, blocking
//                                 read(2)/write(2)
//   BM_MessageThroughput/N        shard 0 sends N messages with
//                                 co_await post_to(1, fn) (fn bumps a counter
//                                 owned by shard 1), then one submit_to round
//                                 trip checks they all arrived. N = 1000
//                                 fits in one queue (default capacity, 1024);
//                                 N = 16384 fills it again and again
//   BM_MutexRing/{nop,read4k}/T:T    one io_uring shared by T threads behind
//                                    a std::mutex
//   BM_ShardioRings/{nop,read4k}/T:T T shards, each running a task that does
//                                    the same ops on its own ring
//
// The ping-pong cases report wall time per round trip (`ns_per_op`; the
// console prints it with a unit suffix meant for seconds, "9.1k" is 9.1 us).
// The mutex claim runs a fixed number of ops per thread (kOpsPerThread, one op
// in flight per thread or task) and reports the wall time from "go" to "all
// done" as manual time, so items_per_second is total ops/s. The mutex design
// is documented at MutexRing below.
//
// Each case builds its own Runtime (or threads and rings) and tears it down
// before the next. Run with bench/run_cross_shard_benchmarks.sh, which writes
// the cross-shard section of docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "shardio/cross_shard.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace {

// Shared scaffolding (bench/bench_util.h).
using shardio::bench::AddShardSetupContext;
using shardio::bench::DescribeSetupFlags;
using shardio::bench::RawRing;
using shardio::bench::SetPerOpCounters;
using shardio::bench::ShardSetup;

// ---------------------------------------------------------------------------
// Shared helpers.

// The flags of the ring the mutex baseline shares between threads: the
// shard's, less those that allow one submitting thread only.
unsigned SharedRingFlags() {
  return ShardSetup().flags &
         ~(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
}

double PerIteration(const benchmark::State& state, uint64_t n) {
  const auto iters = state.iterations() > 0 ? state.iterations() : 1;
  return static_cast<double>(n) / static_cast<double>(iters);
}

// The sum of every shard's counters, before minus after.
struct CounterDelta {
  uint64_t enters = 0;
  uint64_t doorbells = 0;
  uint64_t loop_turns = 0;
  uint64_t outbox_waits = 0;
  uint64_t messages_received = 0;
};

shardio::ShardCounters Snapshot(const shardio::Runtime& rt, unsigned shard) {
  return rt.counters(shard);
}

CounterDelta Diff(const shardio::ShardCounters& before,
                  const shardio::ShardCounters& after) {
  return CounterDelta{
      .enters = after.enters - before.enters,
      .doorbells = after.doorbells_sent - before.doorbells_sent,
      .loop_turns = after.loop_turns - before.loop_turns,
      .outbox_waits = after.outbox_waits - before.outbox_waits,
      .messages_received = after.messages_received - before.messages_received,
  };
}

// Voluntary and involuntary context switches of the whole process so far.
struct ContextSwitches {
  int64_t voluntary = 0;
  int64_t involuntary = 0;
};

ContextSwitches ProcessContextSwitches() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return ContextSwitches{u.ru_nvcsw, u.ru_nivcsw};
}

// ---------------------------------------------------------------------------
// submit_to round trips.

// Keeps its shard busy (never parked) until *stop becomes true.
shardio::Task<void> Spin(const std::atomic<bool>* stop,
                         std::atomic<int>* running) {
  running->fetch_add(1);
  while (!stop->load(std::memory_order_relaxed)) {
    co_await shardio::this_shard::yield();
  }
  running->fetch_sub(1);
}

shardio::Task<void> RoundTripLoop(benchmark::State& state) {
  constexpr auto kOne = [] { return 1; };
  int64_t sum = 0;
  for (auto _ : state) {
    sum += co_await shardio::submit_to(1, kOne);
  }
  if (sum != state.iterations()) state.SkipWithError("a reply went missing");
}

void WaitFor(const std::atomic<int>& v, int want) {
  while (v.load() != want) std::this_thread::yield();
}

void BM_SubmitToRoundTrip(benchmark::State& state) {
  const auto busy = static_cast<unsigned>(state.range(0));
  shardio::Runtime rt(shardio::RuntimeOptions{.shards = 2});
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  // busy:1 spins on shard 1; busy:2 on both shards.
  for (unsigned s = busy == 2 ? 0 : 1; busy > 0 && s < 2; ++s) {
    rt.spawn_on(s, [&stop, &running] { return Spin(&stop, &running); });
  }
  WaitFor(running, busy == 0 ? 0 : static_cast<int>(busy));

  const shardio::ShardCounters b0 = Snapshot(rt, 0), b1 = Snapshot(rt, 1);
  try {
    rt.block_on(RoundTripLoop(state));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  const CounterDelta d0 = Diff(b0, Snapshot(rt, 0));
  const CounterDelta d1 = Diff(b1, Snapshot(rt, 1));
  stop.store(true);
  WaitFor(running, 0);

  SetPerOpCounters(state, 1);
  state.counters["doorbells_sent"] =
      PerIteration(state, d0.doorbells + d1.doorbells);
  state.counters["doorbells_s0"] = PerIteration(state, d0.doorbells);
  state.counters["doorbells_s1"] = PerIteration(state, d1.doorbells);
  state.counters["enters_s0"] = PerIteration(state, d0.enters);
  state.counters["enters_s1"] = PerIteration(state, d1.enters);
  state.counters["turns_s0"] = PerIteration(state, d0.loop_turns);
  state.counters["turns_s1"] = PerIteration(state, d1.loop_turns);
}

// ---------------------------------------------------------------------------
// Raw IORING_OP_MSG_RING ping-pong between two plain threads.

constexpr uint64_t kUdIgnore = 1;  // the sender's own MSG_RING CQE
constexpr uint64_t kUdPing = 100;
constexpr uint64_t kUdPong = 101;
constexpr uint64_t kUdStop = 102;
constexpr uint64_t kUdFailed = 103;

// Queues a MSG_RING that posts a CQE with `ud` into the ring `target_fd`.
void QueueMessage(io_uring* r, int target_fd, uint64_t ud, bool skip_cqe) {
  io_uring_sqe* sqe = io_uring_get_sqe(r);
  io_uring_prep_msg_ring(sqe, target_fd, 0, ud, 0);
  io_uring_sqe_set_data64(sqe, kUdIgnore);
  if (skip_cqe) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

// Submits what is queued and waits until a message arrives; returns its
// user_data, or 0 on an error. Counts the io_uring_enter calls it made.
uint64_t SubmitAndReceive(io_uring* r, uint64_t& enters) {
  for (;;) {
    ++enters;
    const int ret = io_uring_submit_and_wait(r, 1);
    if (ret < 0 && ret != -EINTR) return 0;
    uint64_t got = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(r, &cqe) == 0) {
      const uint64_t ud = cqe->user_data;
      const int res = cqe->res;
      io_uring_cqe_seen(r, cqe);
      if (res < 0) return 0;
      if (ud != kUdIgnore) got = ud;
    }
    if (got != 0) return got;
    // Only our own MSG_RING CQE (skip_cqe:0): wait again.
  }
}

void BM_RawMsgRingPingPong(benchmark::State& state) {
  const bool skip_cqe = state.range(0) != 0;
  RawRing ring(ShardSetup().flags);
  if (const std::string err = ring.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  const int home_fd = ring.fd();
  std::promise<int> peer_fd_promise;
  std::future<int> peer_fd_future = peer_fd_promise.get_future();
  std::atomic<uint64_t> peer_enters{0};
  // The peer creates its own ring (SINGLE_ISSUER: the creator submits) and
  // answers every ping with a pong until told to stop.
  std::thread peer([&] {
    RawRing own(ShardSetup().flags);
    if (!own.error().empty()) {
      peer_fd_promise.set_value(-1);
      return;
    }
    peer_fd_promise.set_value(own.fd());
    uint64_t enters = 0;
    for (;;) {
      const uint64_t got = SubmitAndReceive(own.get(), enters);
      if (got == kUdStop) break;
      QueueMessage(own.get(), home_fd, got == kUdPing ? kUdPong : kUdFailed,
                   skip_cqe);
      if (got != kUdPing) {
        io_uring_submit(own.get());
        break;
      }
    }
    peer_enters.store(enters);
  });
  const int peer_fd = peer_fd_future.get();
  if (peer_fd < 0) {
    peer.join();
    state.SkipWithError("the peer thread could not create its ring");
    return;
  }

  io_uring* r = ring.get();
  uint64_t enters = 0;
  uint64_t got = kUdPong;
  for (auto _ : state) {
    QueueMessage(r, peer_fd, kUdPing, skip_cqe);
    got = SubmitAndReceive(r, enters);
    if (got != kUdPong) [[unlikely]] {
      break;
    }
  }
  const bool ok = got == kUdPong;
  if (got != kUdFailed) {  // else the peer has already left
    QueueMessage(r, peer_fd, kUdStop, /*skip_cqe=*/true);
    io_uring_submit(r);
  }
  peer.join();
  if (!ok) {
    state.SkipWithError("a raw MSG_RING ping-pong failed");
    return;
  }
  SetPerOpCounters(state, 1);
  state.counters["enters_home"] = PerIteration(state, enters);
  state.counters["enters_peer"] = PerIteration(state, peer_enters.load());
}

// ---------------------------------------------------------------------------
// eventfd ping-pong between two plain threads.

bool WriteOne(int fd) {
  const uint64_t one = 1;
  for (;;) {
    if (::write(fd, &one, sizeof(one)) == sizeof(one)) return true;
    if (errno != EINTR) return false;
  }
}

bool ReadOne(int fd) {
  uint64_t v = 0;
  for (;;) {
    if (::read(fd, &v, sizeof(v)) == sizeof(v)) return true;
    if (errno != EINTR) return false;
  }
}

class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

void BM_EventfdPingPong(benchmark::State& state) {
  Fd ping(::eventfd(0, EFD_CLOEXEC));
  Fd pong(::eventfd(0, EFD_CLOEXEC));
  if (ping.get() < 0 || pong.get() < 0) {
    state.SkipWithError("eventfd failed");
    return;
  }
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    while (ReadOne(ping.get()) && !stop.load(std::memory_order_relaxed)) {
      if (!WriteOne(pong.get())) break;
    }
  });
  bool ok = true;
  for (auto _ : state) {
    if (!WriteOne(ping.get()) || !ReadOne(pong.get())) [[unlikely]] {
      ok = false;
      break;
    }
  }
  stop.store(true);
  WriteOne(ping.get());
  peer.join();
  if (!ok) {
    state.SkipWithError("an eventfd ping-pong failed");
    return;
  }
  SetPerOpCounters(state, 1);
}

// ---------------------------------------------------------------------------
// post_to throughput.

// Written only by shard 1.
struct alignas(64) Tally {
  uint64_t n = 0;
};

shardio::Task<void> ThroughputLoop(benchmark::State& state, Tally* tally,
                                   int64_t n) {
  const auto bump = [tally] { ++tally->n; };
  const auto read = [tally] { return tally->n; };
  uint64_t expected = 0;
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) co_await shardio::post_to(1, bump);
    expected += static_cast<uint64_t>(n);
    const uint64_t seen = co_await shardio::submit_to(1, read);
    if (seen != expected) [[unlikely]] {
      state.SkipWithError("messages went missing");
      break;
    }
  }
}

void BM_MessageThroughput(benchmark::State& state) {
  const int64_t n = state.range(0);
  shardio::Runtime rt(shardio::RuntimeOptions{.shards = 2});
  Tally tally;
  const shardio::ShardCounters b0 = Snapshot(rt, 0), b1 = Snapshot(rt, 1);
  try {
    rt.block_on(ThroughputLoop(state, &tally, n));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  const CounterDelta d0 = Diff(b0, Snapshot(rt, 0));
  const CounterDelta d1 = Diff(b1, Snapshot(rt, 1));
  SetPerOpCounters(state, n);
  const double msgs = static_cast<double>(state.iterations() * n);
  const double total = msgs > 0 ? msgs : 1;
  state.counters["doorbells_per_msg"] =
      static_cast<double>(d0.doorbells + d1.doorbells) / total;
  state.counters["outbox_waits_per_msg"] =
      static_cast<double>(d0.outbox_waits) / total;
  // How many messages shard 1 ran per loop turn: the drain's batch size.
  state.counters["msgs_per_turn_s1"] =
      static_cast<double>(d1.messages_received) /
      static_cast<double>(d1.loop_turns > 0 ? d1.loop_turns : 1);
  state.counters["enters_per_msg"] =
      static_cast<double>(d0.enters + d1.enters) / total;
  state.counters["enters_s0"] = PerIteration(state, d0.enters);
  state.counters["enters_s1"] = PerIteration(state, d1.enters);
  state.counters["turns_s0"] = PerIteration(state, d0.loop_turns);
  state.counters["turns_s1"] = PerIteration(state, d1.loop_turns);
  state.counters["doorbells_s0"] = PerIteration(state, d0.doorbells);
  state.counters["doorbells_s1"] = PerIteration(state, d1.doorbells);
  state.counters["outbox_waits"] = PerIteration(state, d0.outbox_waits);
}

// ---------------------------------------------------------------------------
// The mutex claim: one shared ring behind a std::mutex vs one ring per shard.

enum class OpKind { kNop, kRead4K };

constexpr int kOpsPerThread = 2048;
constexpr std::size_t kBlock = 4096;
constexpr std::size_t kFileSize = std::size_t{64} << 20;
constexpr uint64_t kBlocks = kFileSize / kBlock;

// A 64 MiB file in /tmp, written, synced and read once so that it sits clean
// in the page cache. Unlinked at once; the fd lives as long as the process.
int DataFile() {
  static const int fd = [] {
    char path[] = "/tmp/shardio_cross_shard_XXXXXX";
    const int f = ::mkstemp(path);
    if (f < 0) return -1;
    ::unlink(path);
    std::vector<char> chunk(std::size_t{1} << 20);
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      chunk[i] = static_cast<char>(i * 131 + 7);
    }
    for (std::size_t off = 0; off < kFileSize; off += chunk.size()) {
      if (::pwrite(f, chunk.data(), chunk.size(), static_cast<off_t>(off)) !=
          static_cast<ssize_t>(chunk.size())) {
        ::close(f);
        return -1;
      }
    }
    ::fsync(f);
    for (std::size_t off = 0; off < kFileSize; off += chunk.size()) {
      if (::pread(f, chunk.data(), chunk.size(), static_cast<off_t>(off)) !=
          static_cast<ssize_t>(chunk.size())) {
        ::close(f);
        return -1;
      }
    }
    return f;
  }();
  return fd;
}

// The same offsets, thread by thread, on both sides.
class Offsets {
 public:
  explicit Offsets(unsigned thread)
      : x_(0x9e3779b97f4a7c15ull * (thread + 1)) {}
  uint64_t next() noexcept {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 7;
    x_ ^= x_ << 17;
    return (x_ % kBlocks) * kBlock;
  }

 private:
  uint64_t x_;
};

// One io_uring shared by every thread, guarded by one std::mutex. The ring
// cannot use SINGLE_ISSUER or DEFER_TASKRUN (several threads submit), so it
// gets the shard's other flags. A thread doing one op:
//
//   lock
//     get_sqe, prep, user_data = thread index, io_uring_submit
//     reap every CQE in the CQ, storing each result in its owner's slot
//   while the own slot is empty (the op went async; NOPs and page-cache reads
//   complete inline during the submit, so this is rare - counted):
//     wait up to 50 us for a CQE, reap; unlock and lock again between tries
//     so that other threads can submit and run their task work
//   unlock
//
// Submission and reaping both happen under the lock, so no CQE is lost and
// each thread gets exactly its own result. The lock is held across the
// io_uring_enter: the ring's SQ and CQ are single-producer/single-consumer
// structures, and liburing's submit touches both heads.
class MutexRing {
 public:
  explicit MutexRing(unsigned threads)
      : slots_(threads), ring_(SharedRingFlags()) {}

  std::string error() const { return ring_.error(); }

  // Runs one op for thread `t`; returns its CQE's res.
  int Run(unsigned t, OpKind kind, int fd, char* buf, uint64_t offset) {
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) {
      contended_.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
    }
    io_uring* r = ring_.get();
    io_uring_sqe* sqe = io_uring_get_sqe(r);
    while (sqe == nullptr) {  // not with <= 16 ops in flight and 256 entries
      io_uring_submit(r);
      sqe = io_uring_get_sqe(r);
    }
    if (kind == OpKind::kNop) {
      io_uring_prep_nop(sqe);
    } else {
      io_uring_prep_read(sqe, fd, buf, kBlock, offset);
    }
    io_uring_sqe_set_data64(sqe, t);
    if (io_uring_submit(r) < 0) return -EIO;
    Reap();
    while (!slots_[t].done) {
      waits_.fetch_add(1, std::memory_order_relaxed);
      __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 50 * 1000};
      io_uring_cqe* cqe = nullptr;
      io_uring_wait_cqe_timeout(r, &cqe, &ts);
      Reap();
      if (slots_[t].done) break;
      lock.unlock();
      lock.lock();
      Reap();
    }
    slots_[t].done = false;
    return slots_[t].res;
  }

  uint64_t contended() const { return contended_.load(); }
  uint64_t waits() const { return waits_.load(); }

 private:
  struct alignas(64) Slot {
    bool done = false;
    int res = 0;
  };

  // Under mu_.
  void Reap() {
    io_uring* r = ring_.get();
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(r, &cqe) == 0) {
      Slot& s = slots_[cqe->user_data];
      s.res = cqe->res;
      s.done = true;
      io_uring_cqe_seen(r, cqe);
    }
  }

  std::mutex mu_;
  std::vector<Slot> slots_;  // guarded by mu_
  RawRing ring_;             // guarded by mu_
  std::atomic<uint64_t> contended_{0};
  std::atomic<uint64_t> waits_{0};
};

// T plain threads that each run body(i) once per RunOnce(); the threads live
// as long as the group, so a measured run includes no thread creation.
class WorkerGroup {
 public:
  WorkerGroup(unsigned n, std::function<void(unsigned)> body)
      : body_(std::move(body)) {
    for (unsigned i = 0; i < n; ++i)
      threads_.emplace_back([this, i] { Work(i); });
  }
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;
  ~WorkerGroup() {
    quit_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // Runs body(i) on every worker once; returns when all are done.
  void RunOnce() {
    remaining_.store(static_cast<uint32_t>(threads_.size()));
    generation_.fetch_add(1);
    generation_.notify_all();
    for (uint32_t r = remaining_.load(); r != 0; r = remaining_.load()) {
      remaining_.wait(r);
    }
  }

 private:
  void Work(unsigned i) {
    uint32_t seen = 0;
    for (;;) {
      generation_.wait(seen);
      seen = generation_.load();
      if (quit_.load()) return;
      body_(i);
      if (remaining_.fetch_sub(1) == 1) remaining_.notify_one();
    }
  }

  std::function<void(unsigned)> body_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<uint32_t> remaining_{0};
  std::atomic<bool> quit_{false};
  std::vector<std::thread> threads_;
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void SetClaimCounters(benchmark::State& state, unsigned threads,
                      const ContextSwitches& before,
                      const ContextSwitches& after) {
  const auto ops =
      static_cast<double>(state.iterations()) * threads * kOpsPerThread;
  const double total = ops > 0 ? ops : 1;
  state.SetItemsProcessed(state.iterations() * threads * kOpsPerThread);
  state.counters["vol_cs_per_op"] =
      static_cast<double>(after.voluntary - before.voluntary) / total;
  state.counters["invol_cs_per_op"] =
      static_cast<double>(after.involuntary - before.involuntary) / total;
}

void BM_MutexRing(benchmark::State& state, OpKind kind) {
  const auto threads = static_cast<unsigned>(state.range(0));
  const int fd = kind == OpKind::kRead4K ? DataFile() : -1;
  if (kind == OpKind::kRead4K && fd < 0) {
    state.SkipWithError("cannot create the 64 MiB file in /tmp");
    return;
  }
  MutexRing ring(threads);
  if (const std::string err = ring.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  std::atomic<uint64_t> failures{0};
  std::vector<std::vector<char>> bufs(threads, std::vector<char>(kBlock));
  std::vector<Offsets> offsets;
  for (unsigned t = 0; t < threads; ++t) offsets.emplace_back(t);
  WorkerGroup group(threads, [&](unsigned t) {
    uint64_t bad = 0;
    for (int i = 0; i < kOpsPerThread; ++i) {
      const uint64_t off = kind == OpKind::kRead4K ? offsets[t].next() : 0;
      const int res = ring.Run(t, kind, fd, bufs[t].data(), off);
      const int want = kind == OpKind::kRead4K ? static_cast<int>(kBlock) : 0;
      bad += res != want;
    }
    if (bad != 0) failures.fetch_add(bad);
  });

  const ContextSwitches cs0 = ProcessContextSwitches();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    group.RunOnce();
    state.SetIterationTime(Seconds(std::chrono::steady_clock::now() - start));
  }
  const ContextSwitches cs1 = ProcessContextSwitches();
  if (failures.load() != 0) {
    state.SkipWithError("an op on the shared ring failed");
    return;
  }
  SetClaimCounters(state, threads, cs0, cs1);
  const double ops =
      static_cast<double>(state.iterations()) * threads * kOpsPerThread;
  state.counters["contended_per_op"] =
      static_cast<double>(ring.contended()) / (ops > 0 ? ops : 1);
  state.counters["async_waits_per_op"] =
      static_cast<double>(ring.waits()) / (ops > 0 ? ops : 1);
}

// One shard's share: kOpsPerThread ops, one in flight; returns the failures.
shardio::Task<uint64_t> ShardOps(OpKind kind, int fd, unsigned t) {
  uint64_t bad = 0;
  if (kind == OpKind::kNop) {
    for (int i = 0; i < kOpsPerThread; ++i) {
      const shardio::Result<void> r = co_await shardio::submit(shardio::Nop{});
      bad += !r.has_value();
    }
    co_return bad;
  }
  Offsets offsets(t);
  std::vector<char> buf(kBlock);
  for (int i = 0; i < kOpsPerThread; ++i) {
    shardio::IoResult<std::vector<char>> r = co_await shardio::submit(
        shardio::Read(fd, std::move(buf), offsets.next()));
    bad += !r.res.has_value() || *r.res != kBlock;
    buf = std::move(r.buf);
  }
  co_return bad;
}

void BM_ShardioRings(benchmark::State& state, OpKind kind) {
  const auto shards = static_cast<unsigned>(state.range(0));
  const int fd = kind == OpKind::kRead4K ? DataFile() : -1;
  if (kind == OpKind::kRead4K && fd < 0) {
    state.SkipWithError("cannot create the 64 MiB file in /tmp");
    return;
  }
  shardio::Runtime rt(shardio::RuntimeOptions{.shards = shards});
  std::vector<shardio::ShardCounters> before;
  for (unsigned s = 0; s < shards; ++s) before.push_back(Snapshot(rt, s));
  uint64_t failures = 0;
  std::vector<std::future<uint64_t>> done;
  done.reserve(shards);
  const ContextSwitches cs0 = ProcessContextSwitches();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned s = 0; s < shards; ++s) {
      done.push_back(
          rt.submit(s, [kind, fd, s] { return ShardOps(kind, fd, s); }));
    }
    for (std::future<uint64_t>& f : done) failures += f.get();
    state.SetIterationTime(Seconds(std::chrono::steady_clock::now() - start));
    done.clear();
  }
  const ContextSwitches cs1 = ProcessContextSwitches();
  if (failures != 0) {
    state.SkipWithError("an op on a shard failed");
    return;
  }
  SetClaimCounters(state, shards, cs0, cs1);
  uint64_t enters = 0;
  for (unsigned s = 0; s < shards; ++s) {
    enters += Diff(before[s], Snapshot(rt, s)).enters;
  }
  const double ops =
      static_cast<double>(state.iterations()) * shards * kOpsPerThread;
  state.counters["enters_per_op"] =
      static_cast<double>(enters) / (ops > 0 ? ops : 1);
}

// ---------------------------------------------------------------------------

// Besides Google Benchmark's mean / median / stddev / cv, a "min" over the
// repetitions (on a shared machine noise only ever adds time).
void AddMin(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("min", [](const std::vector<double>& v) -> double {
    return *std::min_element(v.begin(), v.end());
  });
}

void Configure(benchmark::internal::Benchmark* b) {
  b->UseRealTime();
  AddMin(b);
}

void ClaimArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("T");
  for (int t : {1, 2, 4, 8, 16}) b->Arg(t);
  b->UseManualTime()->MinTime(0.25);
  AddMin(b);
}

BENCHMARK(BM_SubmitToRoundTrip)
    ->ArgName("busy")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Apply(Configure);
BENCHMARK(BM_RawMsgRingPingPong)
    ->ArgName("skip_cqe")
    ->Arg(0)
    ->Arg(1)
    ->Apply(Configure);
BENCHMARK(BM_EventfdPingPong)->Apply(Configure);
BENCHMARK(BM_MessageThroughput)->Arg(1000)->Arg(16384)->Apply(Configure);
BENCHMARK_CAPTURE(BM_MutexRing, nop, OpKind::kNop)->Apply(ClaimArgs);
BENCHMARK_CAPTURE(BM_ShardioRings, nop, OpKind::kNop)->Apply(ClaimArgs);
BENCHMARK_CAPTURE(BM_MutexRing, read4k, OpKind::kRead4K)->Apply(ClaimArgs);
BENCHMARK_CAPTURE(BM_ShardioRings, read4k, OpKind::kRead4K)->Apply(ClaimArgs);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    AddShardSetupContext();
    benchmark::AddCustomContext("shared_ring_flags",
                                DescribeSetupFlags(SharedRingFlags()));
    benchmark::AddCustomContext("ops_per_thread",
                                std::to_string(kOpsPerThread));
    benchmark::AddCustomContext(
        "message_queue_capacity",
        std::to_string(shardio::RuntimeOptions{}.message_queue_capacity));
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "cross_shard_benchmark: cannot start a shardio runtime: %s\n",
                 e.what());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
