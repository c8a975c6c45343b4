// Tests for shardio/runtime.h: RuntimeOptions, shards and their threads,
// post(), block_on(), ring setup flags, and shutdown with suspended tasks.
#include "shardio/runtime.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/cross_shard.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/timeout.h"
#include "shardio/result.h"
#include "shardio/task.h"

#ifdef ABSL_HAVE_THREAD_SANITIZER
#include <sanitizer/tsan_interface.h>
#endif

namespace shardio {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);

// An absl::Notification whose hand-off ThreadSanitizer can see: the system's
// Abseil is not instrumented, so without the annotations every value written
// by a shard before Notify() and read by the test after the wait would be
// reported as a race.
class Signal {
 public:
  void Notify() {
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_release(this);
#endif
    n_.Notify();
  }
  [[nodiscard]] bool WaitForNotificationWithTimeout(absl::Duration d) {
    const bool notified = n_.WaitForNotificationWithTimeout(d);
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_acquire(this);
#endif
    return notified;
  }

 private:
  absl::Notification n_;
};

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// Tries to create (and immediately destroys) a ring with `flags`; returns 0
// or the negative errno io_uring_queue_init_params returned.
int probe_ring(unsigned flags) {
  io_uring ring;
  io_uring_params p{};
  p.flags = flags;
  if (flags & IORING_SETUP_SQPOLL) p.sq_thread_idle = 50;
  const int ret = io_uring_queue_init_params(8, &ring, &p);
  if (ret == 0) io_uring_queue_exit(&ring);
  return ret;
}

Task<int> value_task(int v) { co_return v; }

Task<int> nop_then(int v) {
  auto r = co_await submit(Nop{});
  if (!r.has_value()) co_return -r.error().value();
  co_return v;
}

struct CustomError : std::runtime_error {
  explicit CustomError(int code)
      : std::runtime_error("custom error"), code(code) {}
  int code;
};

Task<int> throw_custom(int code) {
  (void)co_await submit(Nop{});
  throw CustomError(code);
}

// ---------------------------------------------------------------------------
// Shard count and ids.

TEST(RuntimeTest, DefaultShardCountIsTheAffinityMaskSize) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  Runtime rt;
  EXPECT_EQ(rt.shard_count(), cpus.size());
  EXPECT_EQ(rt.options().shards, cpus.size());
  auto body = []() -> Task<unsigned> { co_return shard_count(); };
  EXPECT_EQ(rt.block_on(body()), cpus.size());
}

TEST(RuntimeTest, ExplicitShardCountAndBlockOnRunsOnShardZero) {
  Runtime rt(RuntimeOptions{.shards = 3});
  EXPECT_EQ(rt.shard_count(), 3u);
  auto body = []() -> Task<std::pair<unsigned, unsigned>> {
    co_return std::pair{this_shard::id(), shard_count()};
  };
  const auto [id, count] = rt.block_on(body());
  EXPECT_EQ(id, 0u);
  EXPECT_EQ(count, 3u);
}

TEST(RuntimeTest, ThisShardFunctionsThrowOffShard) {
  EXPECT_THROW((void)this_shard::id(), std::logic_error);
  EXPECT_THROW((void)this_shard::counters(), std::logic_error);
  EXPECT_THROW((void)shard_count(), std::logic_error);
}

// ---------------------------------------------------------------------------
// post()

TEST(RuntimeTest, PostRunsOnThatShardsThread) {
  constexpr unsigned kShards = 3;
  struct Seen {
    unsigned id = ~0u;
    std::thread::id thread;
    Signal done;
  };
  std::array<Seen, kShards> seen;
  Runtime rt(RuntimeOptions{.shards = kShards});
  // Post in reverse order, so that no shard just happens to be the one
  // posted to first.
  for (unsigned i = kShards; i-- > 0;) {
    rt.post(i, [&s = seen[i]] {
      s.id = this_shard::id();
      s.thread = std::this_thread::get_id();
      s.done.Notify();
    });
  }
  std::set<std::thread::id> threads;
  for (unsigned i = 0; i < kShards; ++i) {
    ASSERT_TRUE(seen[i].done.WaitForNotificationWithTimeout(kWait));
    EXPECT_EQ(seen[i].id, i);
    EXPECT_NE(seen[i].thread, std::this_thread::get_id());
    threads.insert(seen[i].thread);
  }
  EXPECT_EQ(threads.size(), kShards) << "two shards share a thread";
}

TEST(RuntimeTest, PostFromOneShardToAnother) {
  Runtime rt(RuntimeOptions{.shards = 2});
  Signal done;
  unsigned ran_on = ~0u;
  auto body = [&]() -> Task<void> {
    rt.post(1, [&] {
      ran_on = this_shard::id();
      done.Notify();
    });
    co_return;
  };
  rt.block_on(body());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(ran_on, 1u);
}

TEST(RuntimeTest, PostFromAShardToItselfRunsAfterThePoster) {
  Signal done;
  std::vector<std::string> order;
  unsigned ran_on = ~0u;
  Runtime rt(RuntimeOptions{.shards = 2});
  auto body = [&]() -> Task<void> {
    rt.post(0, [&] {
      order.push_back("posted");
      ran_on = this_shard::id();
      done.Notify();
    });
    order.push_back("poster");  // post never runs fn inline
    co_return;
  };
  rt.block_on(body());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(ran_on, 0u);
  EXPECT_EQ(order, (std::vector<std::string>{"poster", "posted"}));
}

// Bounces between shard 0 and shard 1 until `left` reaches zero; every hop
// checks that it runs on the shard it was posted to.
struct PingPong {
  PingPong(Runtime* rt, int hops) : rt(rt), left(hops) {}

  Runtime* rt;
  int left;
  int wrong_shard = 0;
  Signal done;

  void hop(unsigned to) {
    rt->post(to, [this, to] {
      if (this_shard::id() != to) ++wrong_shard;
      if (--left == 0) {
        done.Notify();
        return;
      }
      hop(1 - to);
    });
  }
};

TEST(RuntimeTest, PostsPingPongBetweenShards) {
  Runtime rt(RuntimeOptions{.shards = 2});
  PingPong pp(&rt, 10'000);
  pp.hop(0);  // from the test thread; every later hop is shard to shard
  ASSERT_TRUE(pp.done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(pp.wrong_shard, 0);
}

constexpr int kPosts = 100'000;

TEST(RuntimeTest, ManyPostsFromAShardAllRunInOrder) {
  // More messages than a cross-shard queue holds, sent in one turn.
  Signal done;
  std::vector<int> seen;  // touched only by shard 1
  Runtime rt(RuntimeOptions{.shards = 2});
  auto body = [&]() -> Task<void> {
    for (int i = 0; i < kPosts; ++i) {
      rt.post(1, [&seen, &done, i] {
        seen.push_back(i);
        if (i == kPosts - 1) done.Notify();
      });
    }
    co_return;
  };
  rt.block_on(body());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kPosts));
  for (int i = 0; i < kPosts; ++i) {
    ASSERT_EQ(seen[i], i) << "out of order";
  }
}

TEST(RuntimeTest, PostedFunctionCanSpawnTasks) {
  Signal done;
  int value = 0;
  Runtime rt(RuntimeOptions{.shards = 2});
  rt.post(1, [&] {
    auto t = [](int* out, Signal* n) -> Task<void> {
      *out = co_await nop_then(5) + static_cast<int>(this_shard::id());
      n->Notify();
    };
    spawn(t(&value, &done)).detach();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(value, 6);
}

TEST(RuntimeTest, PostToABadShardThrowsOutOfRange) {
  Runtime rt(RuntimeOptions{.shards = 2});
  bool ran = false;
  EXPECT_THROW(rt.post(2, [&] { ran = true; }), std::out_of_range);
  EXPECT_THROW(rt.post(~0u, [&] { ran = true; }), std::out_of_range);
  EXPECT_THROW((void)rt.counters(2), std::out_of_range);
  EXPECT_THROW((void)rt.setup_flags(2), std::out_of_range);
  // The runtime still works and the rejected functions never ran.
  EXPECT_EQ(rt.block_on(value_task(1)), 1);
  EXPECT_FALSE(ran);
}

// ---------------------------------------------------------------------------
// block_on()

TEST(RuntimeTest, BlockOnReturnsValues) {
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.block_on(nop_then(3)), 3);
  auto str = []() -> Task<std::string> { co_return "text"; };
  EXPECT_EQ(rt.block_on(str()), "text");
  auto uptr = []() -> Task<std::unique_ptr<int>> {
    co_return std::make_unique<int>(8);
  };
  std::unique_ptr<int> p = rt.block_on(uptr());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 8);
  bool ran = false;
  auto void_task = [](bool* ran) -> Task<void> {
    (void)co_await submit(Nop{});
    *ran = true;
  };
  rt.block_on(void_task(&ran));
  EXPECT_TRUE(ran);
}

TEST(RuntimeTest, BlockOnRethrowsTheTasksException) {
  Runtime rt(RuntimeOptions{.shards = 1});
  try {
    (void)rt.block_on(throw_custom(17));
    FAIL() << "block_on did not throw";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 17);
  }
}

TEST(RuntimeTest, BlockOnCanBeCalledManyTimesInARow) {
  Runtime rt(RuntimeOptions{.shards = 2});
  for (int i = 0; i < 50; ++i) {
    if (i % 5 == 4) {
      EXPECT_THROW((void)rt.block_on(throw_custom(i)), CustomError);
    } else {
      EXPECT_EQ(rt.block_on(nop_then(i)), i);
    }
  }
}

TEST(RuntimeTest, BlockOnAndStopFromAShardThreadThrowLogicError) {
  Runtime rt(RuntimeOptions{.shards = 2});
  for (unsigned shard : {0u, 1u}) {
    Signal done;
    bool block_on_threw = false;
    bool stop_threw = false;
    rt.post(shard, [&] {
      try {
        (void)rt.block_on(value_task(1));
      } catch (const std::logic_error& e) {
        block_on_threw =
            std::string(e.what()).find("block_on") != std::string::npos;
      }
      try {
        rt.stop();
      } catch (const std::logic_error&) {
        stop_threw = true;
      }
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
    EXPECT_TRUE(block_on_threw) << "shard " << shard;
    EXPECT_TRUE(stop_threw) << "shard " << shard;
  }
  // Neither call stopped anything.
  EXPECT_EQ(rt.block_on(nop_then(9)), 9);
}

TEST(RuntimeTest, StopWhileBlockOnWaitsMakesBlockOnThrow) {
  Runtime rt(RuntimeOptions{.shards = 1});
  Signal started;
  Signal returned;
  std::exception_ptr error;
  auto forever = [](Signal* started) -> Task<int> {
    started->Notify();
    (void)co_await shardio::sleep(std::chrono::hours(1));
    co_return 1;
  };
  std::thread caller([&] {
    try {
      (void)rt.block_on(forever(&started));
    } catch (...) {
      error = std::current_exception();
    }
    returned.Notify();
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kWait));
  rt.stop();
  const bool ok = returned.WaitForNotificationWithTimeout(kWait);
  if (!ok) {
    caller.detach();
    FAIL() << "block_on did not return after stop()";
  }
  caller.join();
  ASSERT_TRUE(error != nullptr) << "block_on returned a value after stop()";
  EXPECT_THROW(std::rethrow_exception(error), std::runtime_error);
}

TEST(RuntimeTest, StopIsIdempotent) {
  Runtime rt(RuntimeOptions{.shards = 2});
  EXPECT_EQ(rt.block_on(nop_then(1)), 1);
  rt.stop();
  rt.stop();
  // Counters stay readable after the shards have stopped.
  EXPECT_GT(rt.counters(0).loop_turns, 0u);
}

// ---------------------------------------------------------------------------
// Ring setup.

TEST(RuntimeTest, UsesSingleIssuerAndDeferTaskrunWhenTheKernelHasThem) {
  const unsigned want = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  const int ret = probe_ring(want);
  if (ret != 0) {
    GTEST_SKIP() << "the kernel cannot create a ring with "
                    "IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: "
                 << std::strerror(-ret);
  }
  Runtime rt(RuntimeOptions{.shards = 2});
  for (unsigned i = 0; i < rt.shard_count(); ++i) {
    EXPECT_EQ(rt.setup_flags(i) & want, want) << "shard " << i;
    EXPECT_EQ(rt.setup_flags(i) & IORING_SETUP_SQPOLL, 0u) << "shard " << i;
  }
  auto body = []() -> Task<unsigned> { co_return this_shard::setup_flags(); };
  EXPECT_EQ(rt.block_on(body()), rt.setup_flags(0));
}

unsigned current_thread_cpu_count(int* only_cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0) return 0;
  *only_cpu = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) *only_cpu = c;
  }
  return static_cast<unsigned>(CPU_COUNT(&set));
}

TEST(RuntimeTest, PinCpusPinsEachShardToItsCpu) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  const unsigned n = static_cast<unsigned>(cpus.size());
  struct Seen {
    unsigned cpu_count = 0;
    int only_cpu = -1;
    int running_on = -1;
    Signal done;
  };
  std::vector<Seen> seen(n);
  Runtime rt(RuntimeOptions{.shards = n, .pin_cpus = true});
  ASSERT_EQ(rt.shard_count(), n);
  for (unsigned i = 0; i < n; ++i) {
    rt.post(i, [&s = seen[i]] {
      s.cpu_count = current_thread_cpu_count(&s.only_cpu);
      s.running_on = sched_getcpu();
      s.done.Notify();
    });
  }
  for (unsigned i = 0; i < n; ++i) {
    ASSERT_TRUE(seen[i].done.WaitForNotificationWithTimeout(kWait));
    EXPECT_EQ(seen[i].cpu_count, 1u) << "shard " << i;
    EXPECT_EQ(seen[i].only_cpu, cpus[i]) << "shard " << i;
    EXPECT_EQ(seen[i].running_on, cpus[i]) << "shard " << i;
  }
  EXPECT_EQ(rt.block_on(nop_then(4)), 4);
}

TEST(RuntimeTest, PinCpusWithMoreShardsThanCpusThrows) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  const unsigned n = static_cast<unsigned>(cpus.size()) + 1;
  try {
    Runtime rt(RuntimeOptions{.shards = n, .pin_cpus = true});
    FAIL() << "a runtime with " << n << " pinned shards was created";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("pin_cpus"));
  }
  // Without pinning the same count is fine.
  Runtime rt(RuntimeOptions{.shards = n});
  EXPECT_EQ(rt.shard_count(), n);
}

TEST(RuntimeTest, SqpollRuntimeRunsOps) {
  const int ret = probe_ring(IORING_SETUP_SQPOLL);
  if (ret != 0) {
    GTEST_SKIP() << "the kernel cannot create a ring with IORING_SETUP_SQPOLL "
                    "here: "
                 << std::strerror(-ret);
  }
  Runtime rt(RuntimeOptions{.shards = 1, .sqpoll = true});
  EXPECT_NE(rt.setup_flags(0) & IORING_SETUP_SQPOLL, 0u);
  EXPECT_EQ(rt.setup_flags(0) & IORING_SETUP_DEFER_TASKRUN, 0u);
  EXPECT_EQ(rt.block_on(nop_then(1)), 1);
  auto many = []() -> Task<int> {
    int ok = 0;
    for (int i = 0; i < 100; ++i) ok += co_await nop_then(1);
    auto s = co_await shardio::sleep(std::chrono::milliseconds(1));
    if (s.has_value()) ++ok;
    co_return ok;
  };
  EXPECT_EQ(rt.block_on(many()), 101);
}

TEST(RuntimeTest, ZeroRingEntriesThrows) {
  try {
    Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 0});
    FAIL() << "a runtime with ring_entries = 0 was created";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("ring_entries"));
  }
}

TEST(RuntimeTest, RingEntriesAboveTheKernelLimitThrowWithAHint) {
  // The kernel accepts at most 32768 SQ entries (IORING_MAX_ENTRIES).
  try {
    Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 1u << 20});
    FAIL() << "a runtime with 2^20 ring entries was created";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("ring_entries"));
  }
}

TEST(RuntimeTest, TinyRingRunsOneHundredNopsInSequence) {
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 4});
  auto body = []() -> Task<int> {
    int ok = 0;
    for (int i = 0; i < 100; ++i) {
      auto r = co_await submit(Nop{});
      if (r.has_value()) ++ok;
    }
    co_return ok;
  };
  EXPECT_EQ(rt.block_on(body()), 100);
}

TEST(RuntimeTest, TinyRingRunsManyConcurrentNops) {
  // 200 tasks queue a Nop each in the same turn: the SQ (4) fills many times
  // and the CQ (8) overflows.
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 4});
  auto body = []() -> Task<int> {
    std::vector<JoinHandle<int>> hs;
    for (int i = 0; i < 200; ++i) hs.push_back(spawn(nop_then(1)));
    int ok = 0;
    for (auto& h : hs) ok += co_await h;
    co_return ok;
  };
  EXPECT_EQ(rt.block_on(body()), 200);
  EXPECT_GT(rt.counters(0).sq_full_flushes, 0u);
}

// ---------------------------------------------------------------------------
// Counters.

TEST(RuntimeTest, CountersAreReadableFromTheTestThread) {
  Runtime rt(RuntimeOptions{.shards = 2});
  EXPECT_EQ(rt.block_on(nop_then(2)), 2);
  const ShardCounters c = rt.counters(0);
  EXPECT_GT(c.loop_turns, 0u);
  EXPECT_GT(c.enters, 0u);
  EXPECT_GT(c.tasks_run, 0u);
  EXPECT_GT(c.sqes_submitted, 0u);
  EXPECT_GT(c.cqes_reaped, 0u);
  // Shard 1 ran no task; once it has run a posted function, its loop has
  // turned and entered the kernel.
  Signal posted;
  rt.post(1, [&posted] { posted.Notify(); });
  ASSERT_TRUE(posted.WaitForNotificationWithTimeout(kWait));
  const ShardCounters c1 = rt.counters(1);
  EXPECT_GT(c1.loop_turns, 0u);
  EXPECT_GT(c1.enters, 0u);
}

// ---------------------------------------------------------------------------
// Shutdown with suspended tasks.

// What the tasks and ops of the shutdown test report; heap-allocated and
// shared, so that nothing dangles even if shutdown hangs.
struct ShutdownProbe {
  std::atomic<int> started{0};  // tasks that reached their co_await
  std::atomic<int> resumed{0};  // tasks resumed after it (expect 0)
  std::atomic<int> frames_destroyed{0};
  std::atomic<int> ops_destroyed{0};  // InlineRead ops (not moved-from)
  std::atomic<int> ops_completed{0};  // ...whose complete() had run
  std::atomic<int> ops_cancelled{0};  // ...with res == -ECANCELED
  int pipe_fds[2] = {-1, -1};
};

// Lives in a task frame; counts its destruction.
struct FrameCanary {
  explicit FrameCanary(ShutdownProbe* p) : p(p) {}
  FrameCanary(const FrameCanary&) = delete;
  FrameCanary& operator=(const FrameCanary&) = delete;
  ~FrameCanary() { p->frames_destroyed.fetch_add(1); }
  ShutdownProbe* p;
};

// A custom op that reads into a buffer inside itself and records, when it
// is destroyed, whether its complete() ran first.
struct InlineRead {
  InlineRead(int fd, ShutdownProbe* p) : fd(fd), p(p) {}
  InlineRead(InlineRead&& o) noexcept
      : fd(o.fd),
        p(std::exchange(o.p, nullptr)),
        completed(o.completed),
        res(o.res),
        buf(o.buf) {}
  InlineRead& operator=(InlineRead&&) = delete;
  ~InlineRead() {
    if (p == nullptr) return;  // moved from
    if (completed) p->ops_completed.fetch_add(1);
    if (completed && res == -ECANCELED) p->ops_cancelled.fetch_add(1);
    p->ops_destroyed.fetch_add(1);
  }

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_read(&sqe, fd, buf.data(), static_cast<unsigned>(buf.size()),
                       kCurrentPosition);
  }
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept {
    completed = true;
    res = cqe.res;
    return result_from_res(cqe.res);
  }

  int fd;
  ShutdownProbe* p;
  bool completed = false;
  int res = 0;
  std::array<char, 64> buf{};
};

Task<void> sleeps_an_hour(ShutdownProbe* p) {
  FrameCanary canary(p);
  p->started.fetch_add(1);
  auto r = co_await shardio::sleep(std::chrono::hours(1));
  (void)r;
  p->resumed.fetch_add(1);
}

Task<void> reads_empty_pipe(ShutdownProbe* p) {
  FrameCanary canary(p);
  p->started.fetch_add(1);
  auto r = co_await submit(Read(p->pipe_fds[0], std::vector<char>(16)));
  (void)r;
  p->resumed.fetch_add(1);
}

Task<void> custom_op_on_empty_pipe(ShutdownProbe* p) {
  FrameCanary canary(p);
  p->started.fetch_add(1);
  auto r = co_await submit(InlineRead(p->pipe_fds[0], p));
  (void)r;
  p->resumed.fetch_add(1);
}

constexpr int kTasksPerShard = 3;

// Spawns the three stuck tasks detached and returns once their SQEs have
// been through an io_uring_enter.
Task<void> start_stuck_tasks(ShutdownProbe* p) {
  spawn(sleeps_an_hour(p)).detach();
  spawn(reads_empty_pipe(p)).detach();
  spawn(custom_op_on_empty_pipe(p)).detach();
  co_await this_shard::yield();     // they run (and queue their SQEs) first
  auto r = co_await submit(Nop{});  // submitted in the same enter as theirs
  (void)r;
}

TEST(RuntimeTest, ShutdownDestroysSuspendedTasksAfterTheirOpsComplete) {
  auto probe = std::make_shared<ShutdownProbe>();
  ASSERT_EQ(::pipe2(probe->pipe_fds, O_CLOEXEC), 0) << std::strerror(errno);
  constexpr unsigned kShards = 2;
  auto rt = std::make_shared<Runtime>(RuntimeOptions{.shards = kShards});

  // Shard 0 through block_on, shard 1 through post.
  rt->block_on(start_stuck_tasks(probe.get()));
  Signal shard1_ready;
  rt->post(1, [p = probe.get(), n = &shard1_ready] {
    auto t = [](ShutdownProbe* p, Signal* n) -> Task<void> {
      co_await start_stuck_tasks(p);
      n->Notify();
    };
    spawn(t(p, n)).detach();
  });
  ASSERT_TRUE(shard1_ready.WaitForNotificationWithTimeout(kWait));
  ASSERT_EQ(probe->started.load(), kTasksPerShard * int{kShards});
  for (unsigned i = 0; i < kShards; ++i) {
    EXPECT_GE(rt->counters(i).ops_in_flight, 3u) << "shard " << i;
  }
  EXPECT_EQ(probe->frames_destroyed.load(), 0);

  // Destroy the runtime on another thread, so that a hang fails the test
  // instead of blocking it forever.
  auto destroyed = std::make_shared<Signal>();
  std::thread destroyer([rt = std::move(rt), destroyed, probe]() mutable {
    rt.reset();
    destroyed->Notify();
  });
  if (!destroyed->WaitForNotificationWithTimeout(kWait)) {
    destroyer.detach();  // everything it touches is kept alive by it
    FAIL() << "~Runtime did not return with tasks suspended on a timer and "
              "on pipe reads";
  }
  destroyer.join();

  EXPECT_EQ(probe->frames_destroyed.load(), kTasksPerShard * int{kShards})
      << "suspended task frames were not destroyed by the shutdown";
  EXPECT_EQ(probe->resumed.load(), 0) << "a stuck task was resumed";
  // One InlineRead per shard: destroyed, and only after its final CQE, which
  // carried the cancellation.
  EXPECT_EQ(probe->ops_destroyed.load(), int{kShards});
  EXPECT_EQ(probe->ops_completed.load(), int{kShards})
      << "an op was destroyed before its final CQE arrived";
  EXPECT_EQ(probe->ops_cancelled.load(), int{kShards});
  ::close(probe->pipe_fds[0]);
  ::close(probe->pipe_fds[1]);
}

// A detached task that never suspends on I/O: it yields forever.
Task<void> spins_forever(ShutdownProbe* p) {
  FrameCanary canary(p);
  p->started.fetch_add(1);
  for (;;) {
    co_await this_shard::yield();
    if (p->started.load() < 0) break;  // never; keeps the loop observable
  }
  p->resumed.fetch_add(1);
}

// Joins `child` and counts if it ever gets past the join.
Task<void> joins(ShutdownProbe* p, JoinHandle<void> child) {
  FrameCanary canary(p);
  p->started.fetch_add(1);
  co_await child;
  p->resumed.fetch_add(1);
}

Task<void> spawns_and_joins(ShutdownProbe* p) {
  FrameCanary canary(p);
  p->started.fetch_add(1);
  co_await spawn(sleeps_an_hour(p));  // the child is linked after its parent
  p->resumed.fetch_add(1);
}

TEST(RuntimeTest, ShutdownDestroysYieldingAndJoiningTasks) {
  auto probe = std::make_shared<ShutdownProbe>();
  auto rt = std::make_unique<Runtime>(RuntimeOptions{.shards = 1});
  auto setup = [](ShutdownProbe* p) -> Task<void> {
    spawn(spins_forever(p)).detach();
    spawn(spawns_and_joins(p)).detach();  // 2 frames: parent and child
    // A child spawned before the task that joins it.
    JoinHandle<void> child = spawn(sleeps_an_hour(p));
    spawn(joins(p, std::move(child))).detach();  // 2 frames
    for (int i = 0; i < 3; ++i) co_await this_shard::yield();
  };
  rt->block_on(setup(probe.get()));
  ASSERT_EQ(probe->started.load(), 5);

  auto destroyed = std::make_shared<Signal>();
  std::thread destroyer([rt = std::move(rt), destroyed, probe]() mutable {
    rt.reset();
    destroyed->Notify();
  });
  if (!destroyed->WaitForNotificationWithTimeout(kWait)) {
    destroyer.detach();
    FAIL() << "~Runtime did not return with a yielding task and joiners";
  }
  destroyer.join();
  EXPECT_EQ(probe->frames_destroyed.load(), 5);
  EXPECT_EQ(probe->resumed.load(), 0);
}

TEST(RuntimeTest, BlockOnFromSeveralThreadsAtOnce) {
  Runtime rt(RuntimeOptions{.shards = 2});
  constexpr int kThreads = 4;
  constexpr int kCalls = 100;
  std::array<int, kThreads> sums{};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&rt, &sums, t] {
      for (int i = 0; i < kCalls; ++i) sums[t] += rt.block_on(nop_then(i));
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(sums[t], kCalls * (kCalls - 1) / 2) << "thread " << t;
  }
}

TEST(RuntimeTest, BlockOnAfterStopThrows) {
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.block_on(value_task(1)), 1);
  rt.stop();
  struct State {
    Signal returned;
    bool threw = false;
  };
  auto st = std::make_shared<State>();
  std::thread caller([&rt, st] {
    try {
      (void)rt.block_on(value_task(2));
    } catch (const std::exception&) {
      st->threw = true;
    }
    st->returned.Notify();
  });
  if (!st->returned.WaitForNotificationWithTimeout(kWait)) {
    caller.detach();
    FAIL() << "block_on after stop() blocks forever: the task is posted to a "
              "shard whose thread has exited and is never run or destroyed";
  }
  caller.join();
  EXPECT_TRUE(st->threw);
}

std::size_t CountEntries(const char* dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator(dir)) {
    ++n;
  }
  return n;
}

Task<int> BusyWork() {
  // Ops, a cross-shard call, a blocking job and a task left suspended.
  (void)co_await submit(Nop{});
  int v = co_await submit_to(1, [] { return 1; });
  v += co_await spawn_blocking([] { return 1; });
  spawn([]() -> Task<void> { (void)co_await sleep(std::chrono::hours(1)); }())
      .detach();
  co_return v;
}

// A runtime leaves no fd (rings, eventfds) and no thread (shards, blocking
// pool) behind once destroyed.
TEST(RuntimeTest, DestroyingARuntimeLeavesNoFdOrThreadBehind) {
  // Sanitizer runtimes start a helper thread of their own with the first
  // thread the process creates: let that happen before counting.
  std::thread([] {}).join();
  const std::size_t fds_before = CountEntries("/proc/self/fd");
  const std::size_t threads_before = CountEntries("/proc/self/task");
  {
    Runtime rt(RuntimeOptions{.shards = 4});
    EXPECT_EQ(rt.block_on(BusyWork()), 2);
    EXPECT_GT(CountEntries("/proc/self/fd"), fds_before);
    EXPECT_GT(CountEntries("/proc/self/task"), threads_before);
  }
  EXPECT_EQ(CountEntries("/proc/self/fd"), fds_before);
  // Our threads are joined by then; io_uring's own workers (threads of this
  // process too) exit asynchronously after their ring closes, so wait for
  // the count to come back, generously bounded.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (CountEntries("/proc/self/task") > threads_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(CountEntries("/proc/self/task"), threads_before);
}

}  // namespace
}  // namespace shardio
