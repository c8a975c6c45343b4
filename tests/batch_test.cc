// Tests for batch() and chain(): several ops in one loop turn, results in
// order, what a batch costs in io_uring_enter calls, batches larger than the
// SQ, linked chains, and batches destroyed while the kernel holds their ops.
#include "shardio/batch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
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

constexpr int kMaxSleeps = 10000;  // of 1 ms each: at least 10 s

// ---------------------------------------------------------------------------
// Ops written for these tests.

// A NOP that yields its index, or -1 if the kernel reported an error.
struct IndexedNop {
  int index = 0;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  int complete(const io_uring_cqe& cqe) noexcept {
    return cqe.res < 0 ? -1 : index;
  }
};

// A timer that yields its index once it expires: ops of one batch with
// decreasing delays complete in the reverse of their submission order.
struct IndexedTimer {
  IndexedTimer(int index, std::chrono::nanoseconds d)
      : index(index), timer(d) {}
  void prepare(io_uring_sqe& sqe) noexcept { timer.prepare(sqe); }
  int complete(const io_uring_cqe& cqe) noexcept {
    return timer.complete(cqe).has_value() ? index : -1;
  }
  int index;
  Timeout timer;
};

// An op whose complete() returns void; batch() yields std::monostate for it.
struct VoidNop {
  int32_t* seen_res;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  void complete(const io_uring_cqe& cqe) noexcept { *seen_res = cqe.res; }
};

// A positional write forced to the kernel's worker pool (IOSQE_ASYNC), so
// that it finishes after anything issued inline behind it unless a link
// orders the two. Also shows that flags set in prepare() are kept.
struct AsyncWrite {
  AsyncWrite(int fd, std::string data, uint64_t offset)
      : fd(fd), data(std::move(data)), offset(offset) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_write(&sqe, fd, data.data(),
                        static_cast<unsigned>(data.size()), offset);
    sqe.flags |= IOSQE_ASYNC;
  }
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept {
    return result_from_res(cqe.res);
  }
  int fd;
  std::string data;
  uint64_t offset;
};

// What happened to one tracked op, written by the op itself.
struct OpTrace {
  bool completed = false;
  int32_t res = 0;
  bool destroyed = false;
  bool completed_at_destroy = false;
  int32_t res_at_destroy = 0;
};

// Records into an OpTrace when the op holding it is destroyed; moved-from
// copies record nothing.
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
  void record(int32_t res) const {
    trace_->completed = true;
    trace_->res = res;
  }

 private:
  OpTrace* trace_;
};

// A pipe read into a buffer the op owns; fd < 0 makes it a NOP instead.
struct TrackedOp {
  TrackedOp(int fd, OpTrace* trace) : fd(fd), buf(64), probe(trace) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    if (fd < 0) {
      io_uring_prep_nop(&sqe);
    } else {
      io_uring_prep_read(&sqe, fd, buf.data(),
                         static_cast<unsigned>(buf.size()), kCurrentPosition);
    }
  }
  int32_t complete(const io_uring_cqe& cqe) noexcept {
    probe.record(cqe.res);
    return cqe.res;
  }
  int fd;
  std::vector<char> buf;
  DestroyProbe probe;
};

static_assert(Operation<IndexedNop>);
static_assert(Operation<IndexedTimer>);
static_assert(Operation<VoidNop>);
static_assert(Operation<AsyncWrite>);
static_assert(Operation<TrackedOp>);

// ---------------------------------------------------------------------------
// Scaffolding.

// A temporary file, removed on destruction.
class TempFile {
 public:
  TempFile() {
    path_ = testing::TempDir() + "batch_test_XXXXXX";
    fd_ = ::mkstemp(path_.data());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
  }
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Awaits a tuple batch of three tracked ops; ops[i] reads `fds[i]`.
Eager await_tuple_batch(const int* fds, OpTrace* traces) {
  auto results = co_await batch(TrackedOp(fds[0], &traces[0]),
                                TrackedOp(fds[1], &traces[1]),
                                TrackedOp(fds[2], &traces[2]));
  ADD_FAILURE() << "a destroyed batch was resumed with "
                << std::get<0>(results);
}

// Awaits chain(ops[0], ops[1], ops[2]) of tracked ops; ops[i] reads `fds[i]`.
Eager await_chain(const int* fds, OpTrace* traces) {
  auto results = co_await chain(TrackedOp(fds[0], &traces[0]),
                                TrackedOp(fds[1], &traces[1]),
                                TrackedOp(fds[2], &traces[2]));
  ADD_FAILURE() << "a destroyed chain was resumed with "
                << std::get<0>(results);
}

Eager await_span_batch(std::vector<TrackedOp>* ops) {
  auto results = co_await batch(std::span<TrackedOp>(*ops));
  ADD_FAILURE() << "a destroyed batch was resumed with " << results.size()
                << " results";
}

bool all_drained(const OpTrace* traces, int n) {
  for (int i = 0; i < n; ++i) {
    if (!traces[i].destroyed) return false;
  }
  return this_shard::counters().ops_in_flight == 0;
}

// Sleeps in 1 ms steps until every trace says its op was destroyed and no op
// is in flight on this shard.
Task<bool> wait_for_destruction(const OpTrace* traces, int n) {
  for (int i = 0; i < kMaxSleeps && !all_drained(traces, n); ++i) {
    (void)co_await sleep(1ms);
  }
  co_return all_drained(traces, n);
}

Task<int> await_one_nop(int index) {
  co_return co_await submit(IndexedNop{.index = index});
}

// ---------------------------------------------------------------------------
// batch(op, op, ...)

TEST(BatchTest, HeterogeneousOpsYieldATuple) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  Runtime rt(RuntimeOptions{.shards = 1});
  int32_t void_res = -1;
  rt.block_on([](int write_fd, int32_t* void_res) -> Task<void> {
    co_await submit(IndexedNop{});  // settle the first turn's SQEs
    const ShardCounters before = this_shard::counters();
    auto [nop, idx, written, nothing] = co_await batch(
        Nop{}, IndexedNop{.index = 5}, Write(write_fd, std::string("abc")),
        VoidNop{.seen_res = void_res});
    const ShardCounters after = this_shard::counters();

    static_assert(std::is_same_v<decltype(nop), Result<void>>);
    static_assert(std::is_same_v<decltype(idx), int>);
    static_assert(std::is_same_v<decltype(written), IoResult<std::string>>);
    static_assert(std::is_same_v<decltype(nothing), std::monostate>);
    EXPECT_TRUE(nop.has_value()) << nop.error().message();
    EXPECT_EQ(idx, 5);
    EXPECT_EQ(written.res.value_or(0), 3u) << written.res.error().message();
    EXPECT_EQ(written.buf, "abc") << "the buffer comes back";
    EXPECT_EQ(after.enters - before.enters, 1u);
    EXPECT_EQ(after.sqes_submitted - before.sqes_submitted, 4u);
    EXPECT_EQ(after.cqes_reaped - before.cqes_reaped, 4u);
  }(pipe.write_fd(), &void_res));
  EXPECT_EQ(void_res, 0);
  char got[4] = {};
  ASSERT_EQ(::read(pipe.read_fd(), got, 3), 3);
  EXPECT_STREQ(got, "abc");
}

// ---------------------------------------------------------------------------
// batch(std::span<Op>)

TEST(BatchTest, SpanYieldsResultsInOpOrder) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    std::vector<IndexedNop> ops;
    for (int i = 0; i < 100; ++i) ops.push_back(IndexedNop{.index = i});
    std::vector<int> results = co_await batch(std::span<IndexedNop>(ops));
    EXPECT_EQ(results.size(), 100u);
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i], static_cast<int>(i));
    }
  }());
}

TEST(BatchTest, SpanOrderHoldsWhenOpsCompleteInReverse) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    constexpr int kOps = 8;
    // The first op has the longest timer: completions arrive last-to-first
    // while the results must still come back in op order.
    std::vector<IndexedTimer> ops;
    for (int i = 0; i < kOps; ++i) ops.emplace_back(i, (kOps - i) * 3ms);
    std::vector<int> results = co_await batch(std::span<IndexedTimer>(ops));
    EXPECT_EQ(results.size(), static_cast<std::size_t>(kOps));
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i], static_cast<int>(i));
    }
  }());
}

TEST(BatchTest, SpanOfVoidOpsYieldsMonostates) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    std::vector<int32_t> seen(5, -1);
    std::vector<VoidNop> ops;
    for (int32_t& s : seen) ops.push_back(VoidNop{.seen_res = &s});
    std::vector<std::monostate> results =
        co_await batch(std::span<VoidNop>(ops));
    EXPECT_EQ(results.size(), 5u);
    for (int32_t s : seen) EXPECT_EQ(s, 0);
  }());
}

TEST(BatchTest, SixtyFourOpsTakeOneEnter) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    co_await submit(IndexedNop{});  // settle the first turn's SQEs
    std::vector<Nop> ops(64);
    const ShardCounters before = this_shard::counters();
    std::vector<Result<void>> results = co_await batch(std::span<Nop>(ops));
    const ShardCounters after = this_shard::counters();

    EXPECT_EQ(results.size(), 64u);
    for (const Result<void>& r : results) {
      EXPECT_TRUE(r.has_value()) << r.error().message();
    }
    EXPECT_EQ(after.enters - before.enters, 1u);
    EXPECT_EQ(after.sqes_submitted - before.sqes_submitted, 64u);
    EXPECT_EQ(after.cqes_reaped - before.cqes_reaped, 64u);
    EXPECT_EQ(after.sq_full_flushes, before.sq_full_flushes);
    EXPECT_EQ(after.ops_in_flight, 0u);
  }());
}

TEST(BatchTest, BatchOfThreeTimesTheRingSizeCompletes) {
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 32});
  rt.block_on([]() -> Task<void> {
    constexpr int kOps = 3 * 32 + 5;
    std::vector<IndexedNop> ops;
    for (int i = 0; i < kOps; ++i) ops.push_back(IndexedNop{.index = i});
    const ShardCounters before = this_shard::counters();
    std::vector<int> results = co_await batch(std::span<IndexedNop>(ops));
    const ShardCounters after = this_shard::counters();

    EXPECT_EQ(results.size(), static_cast<std::size_t>(kOps));
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i], static_cast<int>(i));
    }
    EXPECT_GT(after.sq_full_flushes, before.sq_full_flushes);
    EXPECT_GE(after.sqes_submitted - before.sqes_submitted,
              static_cast<uint64_t>(kOps));
    EXPECT_EQ(after.ops_in_flight, 0u);
  }());
}

TEST(BatchTest, EmptySpanCompletesAtOnceWithNoResults) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    std::vector<Nop> none;
    const ShardCounters before = this_shard::counters();
    std::vector<Result<void>> b = co_await batch(std::span<Nop>(none));
    std::vector<Result<void>> c = co_await chain(std::span<Nop>(none));
    const ShardCounters after = this_shard::counters();
    EXPECT_TRUE(b.empty());
    EXPECT_TRUE(c.empty());
    // Nothing to submit: the task did not even suspend.
    EXPECT_EQ(after.enters, before.enters);
    EXPECT_EQ(after.tasks_run, before.tasks_run);
  }());
}

// ---------------------------------------------------------------------------
// Batching across tasks.

TEST(BatchTest, ManyTasksSubmittingInOneTurnShareOneEnter) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    constexpr int kTasks = 32;
    co_await submit(IndexedNop{});  // settle the first turn's SQEs
    const ShardCounters before = this_shard::counters();
    std::vector<JoinHandle<int>> handles;
    for (int i = 0; i < kTasks; ++i) handles.push_back(spawn(await_one_nop(i)));
    for (int i = 0; i < kTasks; ++i) {
      const int got = co_await handles[i];
      EXPECT_EQ(got, i);
    }
    const ShardCounters after = this_shard::counters();
    // Expected enters: 2. The spawned tasks first run in the turn after this
    // one, so the turn that spawned them ends with one enter that submits
    // nothing (it does not wait, other tasks being ready); in the next turn
    // all 32 tasks queue their SQEs and the turn ends with a single enter
    // that submits the 32 NOPs and waits for their completions; the turn
    // after resumes them all and this task with them, with no enter. One
    // more is allowed for slack; 32 (one per op) is what batching avoids.
    EXPECT_LE(after.enters - before.enters, 3u);
    EXPECT_EQ(after.sqes_submitted - before.sqes_submitted,
              static_cast<uint64_t>(kTasks));
  }());
}

// ---------------------------------------------------------------------------
// chain()

TEST(BatchTest, ChainedReadSeesWhatTheWriteWrote) {
  TempFile file;
  ASSERT_TRUE(file.ok());
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd) -> Task<void> {
    // The write goes to a worker thread; without the link the read, issued
    // inline, would find an empty file.
    auto [w, r] = co_await chain(AsyncWrite(fd, "abc", 0),
                                 Read(fd, std::string(3, '\0'), 0));
    EXPECT_EQ(w.value_or(0), 3u) << w.error().message();
    EXPECT_EQ(r.res.value_or(0), 3u) << r.res.error().message();
    EXPECT_EQ(r.buf, "abc");
  }(file.fd()));
}

TEST(BatchTest, ChainOverAPipe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int read_fd, int write_fd) -> Task<void> {
    auto [w, r] = co_await chain(Write(write_fd, std::string("xyz")),
                                 Read(read_fd, std::string(3, '\0')));
    EXPECT_EQ(w.res.value_or(0), 3u) << w.res.error().message();
    EXPECT_EQ(r.res.value_or(0), 3u) << r.res.error().message();
    EXPECT_EQ(r.buf, "xyz");
  }(pipe.read_fd(), pipe.write_fd()));
}

TEST(BatchTest, ChainCancelsTheOpsAfterAFailure) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto [first, failing, after] = co_await chain(
        Nop{}, OpenAt(AT_FDCWD, "/nonexistent-shardio-dir/file", O_RDONLY),
        Nop{});
    EXPECT_TRUE(first.has_value()) << first.error().message();
    EXPECT_FALSE(failing.has_value()) << "opened fd " << failing.value_or(-1);
    EXPECT_EQ(failing.error(), errno_code(ENOENT));
    EXPECT_FALSE(after.has_value());
    EXPECT_EQ(after.error(), errno_code(ECANCELED));
  }());
}

TEST(BatchTest, SpanChainCancelsTheRestAfterAFailure) {
  TempFile file;
  ASSERT_TRUE(file.ok());
  // The first read must be a full one: the kernel also breaks a link after
  // a short read.
  ASSERT_EQ(::pwrite(file.fd(), "data", 4, 0), 4);
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd) -> Task<void> {
    // A read on an invalid fd fails (EBADF); everything linked behind it is
    // cancelled, everything before it runs.
    std::vector<Read<std::string>> ops;
    ops.emplace_back(fd, std::string(4, '\0'), 0);
    ops.emplace_back(-1, std::string(4, '\0'), 0);
    ops.emplace_back(fd, std::string(4, '\0'), 0);
    ops.emplace_back(fd, std::string(4, '\0'), 0);
    std::vector<IoResult<std::string>> rs =
        co_await chain(std::span<Read<std::string>>(ops));
    EXPECT_EQ(rs.size(), 4u);
    if (rs.size() != 4u) co_return;
    EXPECT_EQ(rs[0].res.value_or(0), 4u) << rs[0].res.error().message();
    EXPECT_EQ(rs[0].buf, "data");
    EXPECT_EQ(rs[1].res.error(), errno_code(EBADF));
    EXPECT_EQ(rs[2].res.error(), errno_code(ECANCELED));
    EXPECT_EQ(rs[3].res.error(), errno_code(ECANCELED));
    for (const auto& r : rs) EXPECT_EQ(r.buf.size(), 4u);
  }(file.fd()));
}

TEST(BatchTest, ChainAsLongAsTheSqWorks) {
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 32});
  rt.block_on([]() -> Task<void> {
    std::vector<IndexedNop> ops;
    for (int i = 0; i < 32; ++i) ops.push_back(IndexedNop{.index = i});
    std::vector<int> results = co_await chain(std::span<IndexedNop>(ops));
    EXPECT_EQ(results.size(), 32u);
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i], static_cast<int>(i));
    }
  }());
}

TEST(BatchTest, ChainLongerThanTheSqThrowsLengthError) {
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 32});
  rt.block_on([]() -> Task<void> {
    std::vector<Nop> ops(33);
    bool threw = false;
    try {
      (void)co_await chain(std::span<Nop>(ops));
    } catch (const std::length_error& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("ring_entries"), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(threw);
    // Nothing was started, nothing leaked, and the shard still works.
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
    Result<void> r = co_await submit(Nop{});
    EXPECT_TRUE(r.has_value());
  }());
}

TEST(BatchTest, TupleChainLongerThanTheSqThrowsLengthError) {
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 2});
  rt.block_on([]() -> Task<void> {
    bool threw = false;
    try {
      (void)co_await chain(Nop{}, Nop{}, Nop{});
    } catch (const std::length_error&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
    auto [a, b] = co_await chain(Nop{}, Nop{});
    EXPECT_TRUE(a.has_value());
    EXPECT_TRUE(b.has_value());
  }());
}

// ---------------------------------------------------------------------------
// Orphans.

TEST(BatchTest, AnUnawaitedBatchDestroysItsOpsAtOnce) {
  OpTrace traces[5];
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](OpTrace* traces) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    {
      auto tuple = batch(TrackedOp(-1, &traces[0]), TrackedOp(-1, &traces[1]));
      std::vector<TrackedOp> ops;
      for (int i = 2; i < 5; ++i) ops.emplace_back(-1, &traces[i]);
      auto span = batch(std::span<TrackedOp>(ops));
      // The span batch took the ops out of the vector already.
      for (int i = 0; i < 5; ++i) EXPECT_FALSE(traces[i].destroyed) << i;
    }
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(traces[i].destroyed) << i;
      EXPECT_FALSE(traces[i].completed) << i;
    }
    const ShardCounters after = this_shard::counters();
    EXPECT_EQ(after.ops_orphaned, before.ops_orphaned);
    EXPECT_EQ(after.ops_in_flight, before.ops_in_flight);
    co_return;
  }(traces));
}

TEST(BatchTest, DestroyingASuspendedTupleBatchOrphansAndFreesEveryOp) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace traces[3];
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* traces) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    const int fds[3] = {fd, fd, fd};
    Eager waiter = await_tuple_batch(fds, traces);
    EXPECT_FALSE(waiter.done());
    co_await this_shard::yield();  // the reads reach the kernel
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight + 3);

    waiter.destroy();
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(traces[i].destroyed) << i;
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 3);
    const bool freed = co_await wait_for_destruction(traces, 3);
    EXPECT_TRUE(freed);
  }(pipe.read_fd(), traces));

  for (const OpTrace& t : traces) {
    EXPECT_TRUE(t.destroyed);
    EXPECT_TRUE(t.completed_at_destroy) << "destroyed before its final CQE";
    EXPECT_EQ(t.res_at_destroy, -ECANCELED);
  }
}

TEST(BatchTest, DestroyingASuspendedSpanBatchOrphansAndFreesEveryOp) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  constexpr int kOps = 4;
  OpTrace traces[kOps];
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* traces) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    std::vector<TrackedOp> ops;
    for (int i = 0; i < kOps; ++i) ops.emplace_back(fd, &traces[i]);
    Eager waiter = await_span_batch(&ops);
    co_await this_shard::yield();  // the reads reach the kernel

    waiter.destroy();
    for (int i = 0; i < kOps; ++i) EXPECT_FALSE(traces[i].destroyed) << i;
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + kOps);
    const bool freed = co_await wait_for_destruction(traces, kOps);
    EXPECT_TRUE(freed);
  }(pipe.read_fd(), traces));

  for (const OpTrace& t : traces) {
    EXPECT_TRUE(t.destroyed);
    EXPECT_TRUE(t.completed_at_destroy) << "destroyed before its final CQE";
    EXPECT_EQ(t.res_at_destroy, -ECANCELED);
  }
}

TEST(BatchTest, DestroyingASuspendedChainOrphansAndFreesEveryOp) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace traces[3];
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* traces) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    // A NOP, then a read that waits on the pipe, then a NOP linked behind
    // it: the kernel has not even started the last one.
    const int fds[3] = {-1, fd, -1};
    Eager waiter = await_chain(fds, traces);
    for (int i = 0; i < 1000 && !traces[0].completed; ++i) {
      co_await this_shard::yield();
    }
    EXPECT_TRUE(traces[0].completed);
    EXPECT_FALSE(traces[1].completed);
    EXPECT_FALSE(traces[2].completed);

    waiter.destroy();
    EXPECT_TRUE(traces[0].destroyed);
    EXPECT_FALSE(traces[1].destroyed);
    EXPECT_FALSE(traces[2].destroyed);
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 2);
    const bool freed = co_await wait_for_destruction(traces, 3);
    EXPECT_TRUE(freed);
  }(pipe.read_fd(), traces));

  EXPECT_EQ(traces[0].res_at_destroy, 0);
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(traces[i].completed_at_destroy) << i;
    EXPECT_EQ(traces[i].res_at_destroy, -ECANCELED) << i;
  }
}

TEST(BatchTest, DestroyingAPartlyCompletedBatchOrphansOnlyThePendingOps) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  OpTrace traces[3];
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int fd, OpTrace* traces) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    // Two NOPs complete at once; the read stays in flight.
    const int fds[3] = {-1, fd, -1};
    Eager waiter = await_tuple_batch(fds, traces);
    for (int i = 0; i < 1000 && !(traces[0].completed && traces[2].completed);
         ++i) {
      co_await this_shard::yield();
    }
    EXPECT_TRUE(traces[0].completed);
    EXPECT_TRUE(traces[2].completed);
    EXPECT_FALSE(traces[1].completed);

    waiter.destroy();
    // The finished NOPs go at once; only the read is orphaned.
    EXPECT_TRUE(traces[0].destroyed);
    EXPECT_TRUE(traces[2].destroyed);
    EXPECT_FALSE(traces[1].destroyed);
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    const bool freed = co_await wait_for_destruction(traces, 3);
    EXPECT_TRUE(freed);
  }(pipe.read_fd(), traces));

  EXPECT_EQ(traces[0].res_at_destroy, 0);
  EXPECT_EQ(traces[2].res_at_destroy, 0);
  EXPECT_TRUE(traces[1].completed_at_destroy);
  EXPECT_EQ(traces[1].res_at_destroy, -ECANCELED);
}

}  // namespace
}  // namespace shardio
