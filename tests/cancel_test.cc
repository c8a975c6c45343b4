// Tests for the Cancel op (ops/cancel.h): cancelling by fd, everything on
// the ring, and by user_data.
//
// Cancelling by fd and "any" needs IORING_ASYNC_CANCEL_FD / _ANY (Linux
// 5.19); where the kernel rejects them with EINVAL the tests skip.
#include "shardio/ops/cancel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/timeout.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Pipe;
using test::PipeWatchdog;

constexpr int kMaxYields = 100000;

void write_byte(int fd) {
  const char c = 'x';
  if (::write(fd, &c, 1) < 0) {
  }
}

Task<Result<uint32_t>> read_pipe(int fd) {
  auto [n, buf] = co_await submit(Read(fd, std::vector<char>(16)));
  EXPECT_EQ(buf.size(), 16u);
  co_return n;
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

bool unsupported(const Result<uint32_t>& r) {
  return !r.has_value() && r.error() == errno_code(EINVAL);
}

// ---------------------------------------------------------------------------

struct FdOutcome {
  Result<uint32_t> cancel;
  Result<uint32_t> read;
};

TEST(CancelTest, FdCancelsAPendingPipeRead) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  const FdOutcome out =
      rt.block_on([](int read_fd, int write_fd) -> Task<FdOutcome> {
        const uint64_t base = this_shard::counters().ops_in_flight;
        JoinHandle<Result<uint32_t>> reader = spawn(read_pipe(read_fd));
        const bool reached = co_await wait_for_ops_in_flight(base + 1);
        EXPECT_TRUE(reached);
        Result<uint32_t> c = co_await submit(Cancel::fd(read_fd));
        if (unsupported(c)) write_byte(write_fd);  // let the reader finish
        Result<uint32_t> r = co_await reader;
        co_return FdOutcome{c, r};
      }(pipe.read_fd(), pipe.write_fd()));
  if (unsupported(out.cancel)) {
    GTEST_SKIP() << "the kernel lacks IORING_ASYNC_CANCEL_FD (EINVAL); it "
                    "needs Linux 5.19";
  }
  EXPECT_GE(out.cancel.value_or(0), 1u) << out.cancel.error().message();
  EXPECT_FALSE(out.read.has_value()) << "read " << out.read.value_or(0);
  EXPECT_EQ(out.read.error(), errno_code(ECANCELED));
}

TEST(CancelTest, FdCancelsEveryReadOnThatFdOnly) {
  Pipe target;
  Pipe other;
  ASSERT_TRUE(target.ok());
  ASSERT_TRUE(other.ok());
  PipeWatchdog target_watchdog(target.write_fd());
  PipeWatchdog other_watchdog(other.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  struct Outcome {
    Result<uint32_t> cancel;
    Result<uint32_t> a, b, untouched;
  };
  const Outcome out = rt.block_on([](int target_fd, int target_w, int other_fd,
                                     int other_w) -> Task<Outcome> {
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto a = spawn(read_pipe(target_fd));
    auto b = spawn(read_pipe(target_fd));
    auto untouched = spawn(read_pipe(other_fd));
    const bool reached = co_await wait_for_ops_in_flight(base + 3);
    EXPECT_TRUE(reached);
    Result<uint32_t> c = co_await submit(Cancel::fd(target_fd));
    if (unsupported(c)) {
      write_byte(target_w);
      write_byte(target_w);
    }
    // The read on the other pipe is still waiting; feed it.
    (void)co_await submit(Nop{});
    EXPECT_FALSE(untouched.is_finished());
    write_byte(other_w);
    Result<uint32_t> ra = co_await a;
    Result<uint32_t> rb = co_await b;
    Result<uint32_t> ru = co_await untouched;
    co_return Outcome{c, ra, rb, ru};
  }(target.read_fd(), target.write_fd(), other.read_fd(), other.write_fd()));
  if (unsupported(out.cancel)) {
    GTEST_SKIP() << "the kernel lacks IORING_ASYNC_CANCEL_FD (EINVAL); it "
                    "needs Linux 5.19";
  }
  EXPECT_EQ(out.cancel.value_or(0), 2u) << out.cancel.error().message();
  EXPECT_EQ(out.a.error(), errno_code(ECANCELED));
  EXPECT_EQ(out.b.error(), errno_code(ECANCELED));
  EXPECT_EQ(out.untouched.value_or(0), 1u) << out.untouched.error().message();
}

TEST(CancelTest, FdWithNothingPendingYieldsEnoent) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  Runtime rt(RuntimeOptions{.shards = 1});
  const Result<uint32_t> c = rt.block_on([](int fd) -> Task<Result<uint32_t>> {
    co_return co_await submit(Cancel::fd(fd));
  }(pipe.read_fd()));
  if (unsupported(c)) {
    GTEST_SKIP() << "the kernel lacks IORING_ASYNC_CANCEL_FD (EINVAL); it "
                    "needs Linux 5.19";
  }
  EXPECT_FALSE(c.has_value()) << "cancelled " << c.value_or(0);
  EXPECT_EQ(c.error(), errno_code(ENOENT));
}

TEST(CancelTest, AllCancelsEveryPendingOp) {
  Pipe p1;
  Pipe p2;
  ASSERT_TRUE(p1.ok());
  ASSERT_TRUE(p2.ok());
  PipeWatchdog w1(p1.write_fd());
  PipeWatchdog w2(p2.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  struct Outcome {
    Result<uint32_t> cancel;
    Result<uint32_t> r1, r2;
    Result<void> timer;
  };
  const Outcome out =
      rt.block_on([](int fd1, int wfd1, int fd2, int wfd2) -> Task<Outcome> {
        const uint64_t base = this_shard::counters().ops_in_flight;
        auto r1 = spawn(read_pipe(fd1));
        auto r2 = spawn(read_pipe(fd2));
        auto timer = spawn([]() -> Task<Result<void>> {
          co_return co_await sleep(std::chrono::seconds(60));
        }());
        const bool reached = co_await wait_for_ops_in_flight(base + 3);
        EXPECT_TRUE(reached);
        Result<uint32_t> c = co_await submit(Cancel::all());
        if (unsupported(c)) {
          write_byte(wfd1);
          write_byte(wfd2);
        }
        Result<uint32_t> res1 = co_await r1;
        Result<uint32_t> res2 = co_await r2;
        // Unsupported: the timer is left to the runtime's shutdown.
        Result<void> t;
        if (!unsupported(c)) t = co_await timer;
        co_return Outcome{c, res1, res2, t};
      }(p1.read_fd(), p1.write_fd(), p2.read_fd(), p2.write_fd()));
  if (unsupported(out.cancel)) {
    GTEST_SKIP() << "the kernel lacks IORING_ASYNC_CANCEL_ANY (EINVAL); it "
                    "needs Linux 5.19";
  }
  // The runtime's own eventfd read counts too.
  EXPECT_GE(out.cancel.value_or(0), 3u) << out.cancel.error().message();
  EXPECT_EQ(out.r1.error(), errno_code(ECANCELED));
  EXPECT_EQ(out.r2.error(), errno_code(ECANCELED));
  EXPECT_EQ(out.timer.error(), errno_code(ECANCELED));

  // Cancelling everything also hit the shard's wake-up read; the shard must
  // have re-armed it, or messages from other threads would go unseen.
  absl::Notification ran;
  rt.post(0, [&ran] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(rt.block_on([]() -> Task<int> { co_return 5; }()), 5);
}

TEST(CancelTest, UnknownUserDataYieldsEnoent) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Result<uint32_t> c = rt.block_on([]() -> Task<Result<uint32_t>> {
    // Aligned like a record but no record lives there.
    co_return co_await submit(Cancel::user_data(0x7ead'beef'0000ull));
  }());
  EXPECT_FALSE(c.has_value()) << "cancelled " << c.value_or(0);
  EXPECT_EQ(c.error(), errno_code(ENOENT));
}

TEST(CancelTest, CancelIsAnOrdinaryOpInABatch) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto [c, n] = co_await batch(Cancel::user_data(0x7ead'beef'0040ull), Nop{});
    EXPECT_EQ(c.error(), errno_code(ENOENT));
    EXPECT_TRUE(n.has_value());
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }());
}

}  // namespace
}  // namespace shardio
