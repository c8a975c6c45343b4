// Tests for the timers in ops/timeout.h: sleep(), Timeout (by time and by
// completion count) and with_timeout().
//
// Timing assertions are lower bounds only: the kernel guarantees that a timer
// does not fire early, while a loaded machine may fire it arbitrarily late.
#include "shardio/ops/timeout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Eager;
using test::Pipe;
using test::PipeWatchdog;

using std::chrono::steady_clock;
using std::chrono_literals::operator""h;
using std::chrono_literals::operator""ms;
using std::chrono_literals::operator""ns;
using std::chrono_literals::operator""s;

// Long enough to never fire during a passing test, short enough that a
// broken count or cancellation fails the test rather than hanging it.
constexpr auto kLong = 60s;

// The raw CQE result of a Timeout: 0 when its completion count was reached,
// -ETIME when the time ran out, -ECANCELED when cancelled.
struct RawTimeout {
  explicit RawTimeout(std::chrono::nanoseconds d, unsigned count = 0)
      : timeout(d, count) {}
  void prepare(io_uring_sqe& sqe) noexcept { timeout.prepare(sqe); }
  int32_t complete(const io_uring_cqe& cqe) noexcept { return cqe.res; }
  Timeout timeout;
};
static_assert(Operation<RawTimeout>);

// A NOP carrying a tag, to check with_timeout() passes a custom result on.
struct TaggedNop {
  int tag;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  int complete(const io_uring_cqe& cqe) noexcept {
    return cqe.res < 0 ? -1 : tag;
  }
};

// What happened to one tracked op, written by the op itself.
struct OpTrace {
  bool completed = false;
  int32_t res = 0;
  bool destroyed = false;
  bool completed_at_destroy = false;
  int32_t res_at_destroy = 0;
};

// A pipe read that records its completion and the destruction of the op
// that reached the completion record (moved-from copies record nothing).
struct TrackedRead {
  TrackedRead(int fd, OpTrace* trace) : fd(fd), buf(16), trace(trace) {}
  TrackedRead(TrackedRead&& o) noexcept
      : fd(o.fd),
        buf(std::move(o.buf)),
        trace(std::exchange(o.trace, nullptr)) {}
  TrackedRead& operator=(TrackedRead&&) = delete;
  ~TrackedRead() {
    if (trace == nullptr) return;
    trace->destroyed = true;
    trace->completed_at_destroy = trace->completed;
    trace->res_at_destroy = trace->res;
  }
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_read(&sqe, fd, buf.data(), static_cast<unsigned>(buf.size()),
                       kCurrentPosition);
  }
  int32_t complete(const io_uring_cqe& cqe) noexcept {
    trace->completed = true;
    trace->res = cqe.res;
    return cqe.res;
  }
  int fd;
  std::vector<char> buf;
  OpTrace* trace;
};

Eager await_read_with_timeout(int fd, OpTrace* trace) {
  const int32_t res = co_await with_timeout(TrackedRead(fd, trace), kLong);
  ADD_FAILURE() << "a destroyed coroutine was resumed with res " << res;
}

bool drained(const OpTrace* trace) {
  return trace->destroyed && this_shard::counters().ops_in_flight == 0;
}

// ---------------------------------------------------------------------------
// sleep() and Timeout

TEST(TimeoutTest, SleepSucceedsAfterAtLeastItsDuration) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    for (const auto d : {1ms, 20ms}) {
      const auto start = steady_clock::now();
      Result<void> r = co_await sleep(d);
      const auto elapsed = steady_clock::now() - start;
      EXPECT_TRUE(r.has_value()) << r.error().message();
      EXPECT_GE(elapsed, d);
    }
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }());
}

TEST(TimeoutTest, ExpiredTimeoutReportsEtimeAndTimeoutMapsItToSuccess) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    const int32_t raw = co_await submit(RawTimeout(2ms));
    EXPECT_EQ(raw, -ETIME);
    Result<void> r = co_await submit(Timeout(2ms));
    EXPECT_TRUE(r.has_value()) << r.error().message();
  }());
}

TEST(TimeoutTest, TimeoutWithCountCompletesAfterThatManyCompletions) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    // Two NOPs queued behind the timeout complete at once; the timer itself
    // could not fire within the test.
    auto [raw, a, b] = co_await batch(RawTimeout(kLong, 2), Nop{}, Nop{});
    EXPECT_EQ(raw, 0) << "0: count reached; -ETIME: timer expired";
    EXPECT_TRUE(a.has_value());
    EXPECT_TRUE(b.has_value());

    auto [t, c, d, e] = co_await batch(Timeout(kLong, 3), Nop{}, Nop{}, Nop{});
    EXPECT_TRUE(t.has_value()) << t.error().message();
    EXPECT_TRUE(c.has_value());
    EXPECT_TRUE(d.has_value());
    EXPECT_TRUE(e.has_value());
  }());
}

TEST(TimeoutTest, TimeoutWithUnreachedCountExpiresByTime) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    const auto start = steady_clock::now();
    const int32_t raw = co_await submit(RawTimeout(5ms, 1000));
    EXPECT_GE(steady_clock::now() - start, 5ms);
    EXPECT_EQ(raw, -ETIME);
  }());
}

TEST(TimeoutTest, ZeroAndNegativeDurationsDoNotHang) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    Result<void> zero = co_await sleep(0ns);
    EXPECT_TRUE(zero.has_value()) << zero.error().message();
    Result<void> negative = co_await sleep(-5ms);
    EXPECT_TRUE(negative.has_value()) << negative.error().message();
    Result<void> very_negative = co_await sleep(-1h);
    EXPECT_TRUE(very_negative.has_value()) << very_negative.error().message();
    const int32_t raw = co_await submit(RawTimeout(-1s));
    EXPECT_EQ(raw, -ETIME);
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }());
}

TEST(TimeoutTest, KernelTimespecSplitsSecondsAndClampsNegatives) {
  const __kernel_timespec a = to_kernel_timespec(1500ms);
  EXPECT_EQ(a.tv_sec, 1);
  EXPECT_EQ(a.tv_nsec, 500'000'000);
  const __kernel_timespec b = to_kernel_timespec(-3s);
  EXPECT_EQ(b.tv_sec, 0);
  EXPECT_EQ(b.tv_nsec, 0);
  const __kernel_timespec c = to_kernel_timespec(999ns);
  EXPECT_EQ(c.tv_sec, 0);
  EXPECT_EQ(c.tv_nsec, 999);
}

TEST(TimeoutTest, ManySleepsInOneTurnAllComplete) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    std::vector<Timeout> timers;
    for (int i = 0; i < 20; ++i) timers.emplace_back((i % 5) * 1ms);
    const auto start = steady_clock::now();
    std::vector<Result<void>> rs = co_await batch(std::span<Timeout>(timers));
    EXPECT_GE(steady_clock::now() - start, 4ms);
    EXPECT_EQ(rs.size(), 20u);
    for (const Result<void>& r : rs) {
      EXPECT_TRUE(r.has_value()) << r.error().message();
    }
  }());
}

// ---------------------------------------------------------------------------
// with_timeout()

TEST(WithTimeoutTest, CancelsAnOpThatNeverCompletes) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd) -> Task<void> {
    const auto start = steady_clock::now();
    IoResult<std::vector<char>> r =
        co_await with_timeout(Read(fd, std::vector<char>(16)), 20ms);
    const auto elapsed = steady_clock::now() - start;

    // When the linked timer fires the kernel cancels the read, which
    // completes with -ECANCELED (the timer's own CQE carries -ETIME). Some
    // kernels have reported -ETIME for the target too; both mean "timed
    // out", and the test accepts either.
    EXPECT_FALSE(r.res.has_value()) << "read " << r.res.value_or(0) << " bytes";
    EXPECT_TRUE(r.res.error() == errno_code(ECANCELED) ||
                r.res.error() == errno_code(ETIME))
        << r.res.error().message();
    EXPECT_EQ(r.buf.size(), 16u) << "the buffer comes back";
    EXPECT_GE(elapsed, 20ms);
    // Both the read and the timer have delivered their final CQEs.
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }(pipe.read_fd()));
}

TEST(WithTimeoutTest, AFastOpSucceeds) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    Result<void> r = co_await with_timeout(Nop{}, 1s);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    const int tagged = co_await with_timeout(TaggedNop{.tag = 17}, 1s);
    EXPECT_EQ(tagged, 17);
    // The unfired timer was cancelled, not left behind.
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }());
}

TEST(WithTimeoutTest, AReadThatGetsDataInTimeSucceeds) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  ASSERT_EQ(::write(pipe.write_fd(), "hello", 5), 5);
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd) -> Task<void> {
    IoResult<std::string> r =
        co_await with_timeout(Read(fd, std::string(5, '\0')), 10s);
    EXPECT_EQ(r.res.value_or(0), 5u) << r.res.error().message();
    EXPECT_EQ(r.buf, "hello");
  }(pipe.read_fd()));
}

TEST(WithTimeoutTest, ATimerOutlivedByItsDeadlineSucceeds) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    Result<void> r = co_await with_timeout(Timeout(1ms), 10s);
    EXPECT_TRUE(r.has_value()) << r.error().message();
  }());
}

TEST(WithTimeoutTest, ATimerLongerThanItsDeadlineIsCancelled) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    const int32_t raw = co_await with_timeout(RawTimeout(kLong), 5ms);
    EXPECT_TRUE(raw == -ECANCELED || raw == -ETIME) << raw;
  }());
}

TEST(WithTimeoutTest, DestroyedWaiterOrphansTheOpAndItsTimer) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace trace;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* trace) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    Eager waiter = await_read_with_timeout(fd, trace);
    co_await this_shard::yield();  // the read and its timer reach the kernel
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight + 2);

    waiter.destroy();
    EXPECT_FALSE(trace->destroyed);
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 2);
    for (int i = 0; i < 10000 && !drained(trace); ++i) {
      (void)co_await sleep(1ms);
    }
    EXPECT_TRUE(drained(trace));
  }(pipe.read_fd(), &trace));

  EXPECT_TRUE(trace.destroyed);
  EXPECT_TRUE(trace.completed_at_destroy);
  EXPECT_EQ(trace.res_at_destroy, -ECANCELED);
}

}  // namespace
}  // namespace shardio
