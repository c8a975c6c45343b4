// Tests for the public Operation concept and submit(): user-defined ops,
// what one submission costs, cancellation through a stop_token and orphaned
// ops whose awaiting coroutine is destroyed while the kernel still holds them.
#include "shardio/operation.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/timeout.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Eager;
using test::Pipe;
using test::PipeWatchdog;

using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""s;

// Bounds on every wait below; generous so that a loaded machine never trips
// them, small enough that a broken runtime fails instead of hanging.
constexpr int kMaxYields = 100000;
constexpr int kMaxSleeps = 10000;  // of 1 ms each: at least 10 s
constexpr auto kLongOp = 60s;      // "never completes" within a test

// ---------------------------------------------------------------------------
// User-defined operations: nothing here comes from ops/.

// What TaggedNop::complete() returns: a plain struct, not a Result.
struct NopInfo {
  int32_t res;
  int tag;
};

// IORING_OP_NOP carrying a tag through to its result.
struct TaggedNop {
  int tag;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  NopInfo complete(const io_uring_cqe& cqe) noexcept {
    return NopInfo{cqe.res, tag};
  }
};

// An op whose complete() returns void: it reports through a pointer.
struct VoidNop {
  int32_t* seen_res;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  void complete(const io_uring_cqe& cqe) noexcept { *seen_res = cqe.res; }
};

// A move-only op: Operation asks for move construction only.
//
// It has a constructor on purpose: GCC 12 destroys an aggregate temporary
// that is brace-initialized inside a co_await expression twice (a compiler
// bug), so `co_await submit(Op{std::make_unique<int>(7)})` double-frees
// there. Ops that own resources should be built by a constructor or named.
struct MoveOnlyNop {
  explicit MoveOnlyNop(std::unique_ptr<int> p) : payload(std::move(p)) {}
  std::unique_ptr<int> payload;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  std::unique_ptr<int> complete(const io_uring_cqe&) noexcept {
    return std::move(payload);
  }
};

// Types that must not satisfy the concept.
struct NoPrepare {
  int complete(const io_uring_cqe&) { return 0; }
};
struct NoComplete {
  void prepare(io_uring_sqe&) {}
};
struct PrepareTakesTheWrongType {
  void prepare(int) {}
  int complete(const io_uring_cqe&) { return 0; }
};
struct NotMovable {
  NotMovable() = default;
  NotMovable(NotMovable&&) = delete;
  void prepare(io_uring_sqe&) {}
  int complete(const io_uring_cqe&) { return 0; }
};

static_assert(Operation<TaggedNop>);
static_assert(Operation<VoidNop>);
static_assert(Operation<MoveOnlyNop>);
static_assert(!Operation<NoPrepare>);
static_assert(!Operation<NoComplete>);
static_assert(!Operation<PrepareTakesTheWrongType>);
static_assert(!Operation<NotMovable>);
static_assert(!Operation<int>);
static_assert(std::is_same_v<OperationResult<TaggedNop>, NopInfo>);
static_assert(std::is_void_v<OperationResult<VoidNop>>);

// What happened to one tracked op, written by the op itself.
struct OpTrace {
  bool completed = false;  // complete() ran
  int32_t res = 0;         // the CQE's res complete() saw
  bool destroyed = false;  // the live op was destroyed
  bool completed_at_destroy = false;
  int32_t res_at_destroy = 0;
};

// Records into an OpTrace when the op that holds it is destroyed. Only the
// op that reached the completion record holds the pointer: moved-from copies
// record nothing.
class DestroyProbe {
 public:
  explicit DestroyProbe(OpTrace* trace) : trace_(trace) {}
  DestroyProbe(DestroyProbe&& o) noexcept
      : trace_(std::exchange(o.trace_, nullptr)) {}
  DestroyProbe& operator=(DestroyProbe&&) = delete;
  ~DestroyProbe() {
    if (trace_ == nullptr) return;
    trace_->destroyed = true;
    trace_->completed_at_destroy = trace_->completed;
    trace_->res_at_destroy = trace_->res;
  }
  OpTrace* trace() const noexcept { return trace_; }

 private:
  OpTrace* trace_;
};

// A read into a buffer the op owns, recording its completion and destruction.
struct TrackedRead {
  TrackedRead(int fd, OpTrace* trace) : fd(fd), buf(64), probe(trace) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_read(&sqe, fd, buf.data(), static_cast<unsigned>(buf.size()),
                       kCurrentPosition);
  }
  int32_t complete(const io_uring_cqe& cqe) noexcept {
    probe.trace()->completed = true;
    probe.trace()->res = cqe.res;
    return cqe.res;
  }

  int fd;
  std::vector<char> buf;
  DestroyProbe probe;
};

// ---------------------------------------------------------------------------
// Test scaffolding.

Eager await_tracked_read(int fd, OpTrace* trace) {
  const int32_t res = co_await submit(TrackedRead(fd, trace));
  ADD_FAILURE() << "a destroyed coroutine was resumed with res " << res;
}

// Yields until this shard has at least `n` ops in flight, then once more so
// that the loop turn's io_uring_enter has handed their SQEs to the kernel.
Task<bool> wait_for_ops_in_flight(uint64_t n) {
  for (int i = 0; i < kMaxYields; ++i) {
    const bool reached = this_shard::counters().ops_in_flight >= n;
    co_await this_shard::yield();
    if (reached) co_return true;
  }
  co_return false;
}

// True when `trace` says the op was destroyed and nothing is in flight on
// this shard any more.
bool drained(const OpTrace* trace) {
  return trace->destroyed && this_shard::counters().ops_in_flight == 0;
}

// Sleeps in 1 ms steps until drained(trace).
Task<bool> wait_for_destruction(const OpTrace* trace) {
  for (int i = 0; i < kMaxSleeps && !drained(trace); ++i) {
    (void)co_await sleep(1ms);
  }
  co_return drained(trace);
}

Task<IoResult<std::vector<char>>> read_with_token(int fd, std::stop_token st) {
  co_return co_await submit(Read(fd, std::vector<char>(16)), std::move(st));
}

Task<void> stop_when_in_flight(std::stop_source* src, uint64_t n) {
  const bool reached = co_await wait_for_ops_in_flight(n);
  EXPECT_TRUE(reached);
  EXPECT_EQ(this_shard::counters().ops_in_flight, n)
      << "the op should still be waiting for the kernel";
  src->request_stop();
}

// ---------------------------------------------------------------------------
// The concept and user-defined ops.

TEST(OperationTest, ConceptRejectsTypesWithoutPrepareOrComplete) {
  EXPECT_TRUE(Operation<TaggedNop>);
  EXPECT_FALSE(Operation<NoPrepare>);
  EXPECT_FALSE(Operation<NoComplete>);
  EXPECT_FALSE(Operation<PrepareTakesTheWrongType>);
  EXPECT_FALSE(Operation<NotMovable>);
}

TEST(OperationTest, UserOpReturnsItsOwnStruct) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const NopInfo info = rt.block_on([]() -> Task<NopInfo> {
    co_return co_await submit(TaggedNop{.tag = 42});
  }());
  EXPECT_EQ(info.res, 0);
  EXPECT_EQ(info.tag, 42);
}

TEST(OperationTest, UserOpWhoseCompleteReturnsVoid) {
  Runtime rt(RuntimeOptions{.shards = 1});
  int32_t seen = -1;
  rt.block_on([](int32_t* seen) -> Task<void> {
    co_await submit(VoidNop{.seen_res = seen});
  }(&seen));
  EXPECT_EQ(seen, 0);
}

TEST(OperationTest, MoveOnlyUserOpHandsItsPayloadBack) {
  Runtime rt(RuntimeOptions{.shards = 1});
  std::unique_ptr<int> back = rt.block_on([]() -> Task<std::unique_ptr<int>> {
    co_return co_await submit(MoveOnlyNop(std::make_unique<int>(7)));
  }());
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(*back, 7);
}

TEST(OperationTest, SubmitOffShardThrowsLogicError) {
  // submit() needs the calling shard's ring; a plain thread has none.
  EXPECT_THROW((void)submit(TaggedNop{.tag = 1}), std::logic_error);
}

// ---------------------------------------------------------------------------
// Counters.

TEST(OperationTest, OneSubmitCostsExactlyOneEnter) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    // The first submission also carries the shard's own eventfd re-arm;
    // measure a later one.
    co_await submit(TaggedNop{.tag = 0});
    const ShardCounters before = this_shard::counters();
    const NopInfo info = co_await submit(TaggedNop{.tag = 1});
    const ShardCounters after = this_shard::counters();
    EXPECT_EQ(info.res, 0);
    EXPECT_EQ(after.enters - before.enters, 1u);
    EXPECT_EQ(after.sqes_submitted - before.sqes_submitted, 1u);
    EXPECT_EQ(after.cqes_reaped - before.cqes_reaped, 1u);
    EXPECT_EQ(after.ops_in_flight, 0u);
    EXPECT_EQ(after.ops_orphaned, before.ops_orphaned);
  }());
  // The snapshot from outside the shard agrees.
  const ShardCounters c = rt.counters(0);
  EXPECT_GE(c.sqes_submitted, 2u);
  EXPECT_GE(c.cqes_reaped, 2u);
  EXPECT_GE(c.enters, 2u);
}

// ---------------------------------------------------------------------------
// Stop tokens.

TEST(OperationTest, StopFromAnotherTaskOnTheShardCancelsATimeout) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Result<void> res = rt.block_on([]() -> Task<Result<void>> {
    std::stop_source src;
    const uint64_t base = this_shard::counters().ops_in_flight;
    JoinHandle<void> stopper = spawn(stop_when_in_flight(&src, base + 1));
    Result<void> r = co_await submit(Timeout(kLongOp), src.get_token());
    co_await stopper;
    co_return r;
  }());
  ASSERT_FALSE(res.has_value()) << "the timeout expired instead";
  EXPECT_EQ(res.error(), errno_code(ECANCELED)) << res.error().message();
}

TEST(OperationTest, StopFromAnotherTaskOnTheShardCancelsAPipeRead) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  IoResult<std::vector<char>> res =
      rt.block_on([](int fd) -> Task<IoResult<std::vector<char>>> {
        std::stop_source src;
        const uint64_t base = this_shard::counters().ops_in_flight;
        JoinHandle<void> stopper = spawn(stop_when_in_flight(&src, base + 1));
        auto r =
            co_await submit(Read(fd, std::vector<char>(16)), src.get_token());
        co_await stopper;
        co_return r;
      }(pipe.read_fd()));
  ASSERT_FALSE(res.res.has_value()) << "read " << *res.res << " bytes";
  EXPECT_EQ(res.res.error(), errno_code(ECANCELED));
  EXPECT_EQ(res.buf.size(), 16u) << "the buffer comes back with the error";
}

TEST(OperationTest, StopFromAForeignThreadCancelsAPipeRead) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  std::stop_source src;
  absl::Notification in_flight;
  std::thread::id stopper_id;
  std::jthread stopper([&] {
    stopper_id = std::this_thread::get_id();
    if (in_flight.WaitForNotificationWithTimeout(absl::Seconds(60))) {
      src.request_stop();
    }
  });

  IoResult<std::vector<char>> res =
      rt.block_on([&]() -> Task<IoResult<std::vector<char>>> {
        const uint64_t base = this_shard::counters().ops_in_flight;
        auto reader = spawn(read_with_token(pipe.read_fd(), src.get_token()));
        const bool reached = co_await wait_for_ops_in_flight(base + 1);
        EXPECT_TRUE(reached);
        in_flight.Notify();
        co_return co_await reader;
      }());
  stopper.join();

  EXPECT_NE(stopper_id, std::this_thread::get_id());
  EXPECT_TRUE(src.stop_requested());
  ASSERT_FALSE(res.res.has_value()) << "read " << *res.res << " bytes";
  EXPECT_EQ(res.res.error(), errno_code(ECANCELED));
  EXPECT_EQ(res.buf.size(), 16u);
  EXPECT_EQ(rt.counters(0).ops_in_flight, 0u);
}

TEST(OperationTest, AlreadyStoppedTokenCancelsWithoutReachingTheKernel) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    co_await submit(TaggedNop{.tag = 0});  // settle the first turn's SQEs
    std::stop_source src;
    src.request_stop();

    const ShardCounters before = this_shard::counters();
    Result<void> t = co_await submit(Timeout(kLongOp), src.get_token());
    auto [n, buf] =
        co_await submit(Read(-1, std::vector<char>(8)), src.get_token());
    const NopInfo info = co_await submit(TaggedNop{.tag = 3}, src.get_token());
    const ShardCounters after = this_shard::counters();

    EXPECT_FALSE(t.has_value());
    EXPECT_EQ(t.error(), errno_code(ECANCELED));
    // The read's fd is invalid: had it reached the kernel it would be EBADF.
    EXPECT_FALSE(n.has_value());
    EXPECT_EQ(n.error(), errno_code(ECANCELED));
    EXPECT_EQ(buf.size(), 8u);
    EXPECT_EQ(info.res, -ECANCELED);
    EXPECT_EQ(info.tag, 3);
    // Nothing was submitted and nobody waited for the ring.
    EXPECT_EQ(after.enters, before.enters);
    EXPECT_EQ(after.sqes_submitted, before.sqes_submitted);
    EXPECT_EQ(after.ops_in_flight, 0u);
  }());
}

TEST(OperationTest, TokenNeverStoppedGivesTheNormalResult) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    std::stop_source src;
    const NopInfo info = co_await submit(TaggedNop{.tag = 9}, src.get_token());
    EXPECT_EQ(info.res, 0);
    EXPECT_EQ(info.tag, 9);

    Result<void> slept = co_await submit(Timeout(1ms), src.get_token());
    EXPECT_TRUE(slept.has_value()) << slept.error().message();

    // A token without a stop state cannot be stopped at all.
    const NopInfo plain =
        co_await submit(TaggedNop{.tag = 10}, std::stop_token());
    EXPECT_EQ(plain.res, 0);
    EXPECT_EQ(plain.tag, 10);

    // Stopping after completion is harmless: the callback is gone.
    src.request_stop();
    co_await submit(TaggedNop{.tag = 11});
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }());
}

// ---------------------------------------------------------------------------
// Orphans.

TEST(OperationTest, DestroyedAwaiterKeepsTheOpAliveUntilItsFinalCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace trace;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* trace) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    Eager reader = await_tracked_read(fd, trace);
    EXPECT_FALSE(reader.done());
    const bool reached =
        co_await wait_for_ops_in_flight(before.ops_in_flight + 1);
    EXPECT_TRUE(reached);

    reader.destroy();
    // The kernel still holds the read and may write into its buffer: the op
    // must outlive the coroutine that awaited it.
    EXPECT_FALSE(trace->destroyed);
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);

    const bool freed = co_await wait_for_destruction(trace);
    EXPECT_TRUE(freed);
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }(pipe.read_fd(), &trace));

  EXPECT_TRUE(trace.completed);
  EXPECT_TRUE(trace.destroyed);
  EXPECT_TRUE(trace.completed_at_destroy)
      << "the op was destroyed before its final CQE";
  EXPECT_EQ(trace.res_at_destroy, -ECANCELED);
}

TEST(OperationTest, AwaiterDestroyedBeforeSubmissionStillWaitsForTheCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace trace;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* trace) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    // Prepared, not yet submitted: the read and its cancel go to the kernel
    // in the same io_uring_enter.
    Eager reader = await_tracked_read(fd, trace);
    reader.destroy();
    EXPECT_FALSE(trace->destroyed);
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    const bool freed = co_await wait_for_destruction(trace);
    EXPECT_TRUE(freed);
  }(pipe.read_fd(), &trace));

  EXPECT_TRUE(trace.destroyed);
  EXPECT_TRUE(trace.completed_at_destroy);
  EXPECT_EQ(trace.res_at_destroy, -ECANCELED);
}

TEST(OperationTest, AnUnawaitedSubmitDestroysItsOpAtOnce) {
  OpTrace trace;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](OpTrace* trace) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    {
      // Never awaited: the op never reached the ring.
      auto awaiter = submit(TrackedRead(-1, trace));
      EXPECT_FALSE(trace->destroyed);
    }
    EXPECT_TRUE(trace->destroyed);
    EXPECT_FALSE(trace->completed);
    const ShardCounters after = this_shard::counters();
    EXPECT_EQ(after.ops_orphaned, before.ops_orphaned);
    EXPECT_EQ(after.ops_in_flight, before.ops_in_flight);
    co_return;
  }(&trace));
}

TEST(OperationTest, RuntimeShutdownCancelsAndFreesOrphans) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace trace;
  {
    Runtime rt(RuntimeOptions{.shards = 1});
    rt.block_on([](int fd, OpTrace* trace) -> Task<void> {
      // A spawned task left suspended on a read when the runtime stops.
      spawn([](int fd, OpTrace* trace) -> Task<void> {
        (void)co_await submit(TrackedRead(fd, trace));
        ADD_FAILURE() << "the read completed instead of being cancelled";
      }(fd, trace))
          .detach();
      const bool reached = co_await wait_for_ops_in_flight(1);
      EXPECT_TRUE(reached);
    }(pipe.read_fd(), &trace));
    EXPECT_FALSE(trace.destroyed);
  }
  EXPECT_TRUE(trace.destroyed);
  EXPECT_TRUE(trace.completed_at_destroy);
  EXPECT_EQ(trace.res_at_destroy, -ECANCELED);
}

}  // namespace
}  // namespace shardio
