// Tests for shardio/task.h: Task<T> values, exceptions, laziness, symmetric
// transfer and the frame pool.
#include "shardio/task.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "shardio/detail/frame_alloc.h"
#include "shardio/operation.h"
#include "shardio/ops/nop.h"
#include "shardio/runtime.h"

namespace shardio {
namespace {

Task<int> value_task(int v) { co_return v; }

Task<std::string> string_task(std::string s) { co_return s + "!"; }

Task<int> throwing_task() {
  throw std::runtime_error("boom");
  co_return 0;  // makes this a coroutine
}

TEST(TaskTest, ValuePropagatesToTheAwaiter) {
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.block_on(value_task(42)), 42);
  EXPECT_EQ(rt.block_on(string_task("hi")), "hi!");
}

TEST(TaskTest, ExceptionPropagatesToTheAwaiter) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<std::string> {
    try {
      co_await throwing_task();
    } catch (const std::runtime_error& e) {
      co_return std::string("caught ") + e.what();
    }
    co_return "not thrown";
  };
  EXPECT_EQ(rt.block_on(body()), "caught boom");
  // And out of block_on, when nobody catches it.
  EXPECT_THROW(rt.block_on(throwing_task()), std::runtime_error);
}

Task<int> add_nested(int a, int b) {
  const int x = co_await value_task(a);
  const int y = co_await value_task(b);
  co_return x + y;
}

Task<int> nested_three_levels() {
  const int s = co_await add_nested(1, 2);
  const int t = co_await add_nested(s, 10);
  co_return t * 2;
}

TEST(TaskTest, NestedTasksComposeValues) {
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.block_on(nested_three_levels()), 26);
}

Task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

TEST(TaskTest, VoidTaskRunsAndPropagatesExceptions) {
  Runtime rt(RuntimeOptions{.shards = 1});
  bool flag = false;
  rt.block_on(set_flag(&flag));
  EXPECT_TRUE(flag);

  auto thrower = []() -> Task<void> {
    throw std::logic_error("void boom");
    co_return;
  };
  auto catcher = [&]() -> Task<bool> {
    try {
      co_await thrower();
    } catch (const std::logic_error&) {
      co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(rt.block_on(catcher()));
}

Task<std::unique_ptr<int>> make_unique_task(int v) {
  co_return std::make_unique<int>(v);
}

TEST(TaskTest, MoveOnlyValuesPropagate) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<std::unique_ptr<int>> {
    std::unique_ptr<int> p = co_await make_unique_task(5);
    *p += 1;
    co_return p;
  };
  std::unique_ptr<int> p = rt.block_on(body());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 6);
}

// No default constructor: a Task must not need one to hold the value.
struct NoDefault {
  explicit NoDefault(int v) : v(v) {}
  int v;
};

TEST(TaskTest, ValuesNeedNoDefaultConstructor) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto make = [](int v) -> Task<NoDefault> { co_return NoDefault(v); };
  auto body = [&]() -> Task<int> {
    NoDefault a = co_await make(2);
    NoDefault b = co_await make(3);
    co_return a.v* b.v;
  };
  EXPECT_EQ(rt.block_on(body()), 6);
}

TEST(TaskTest, IsLazyAndRunsOnlyWhenAwaited) {
  Runtime rt(RuntimeOptions{.shards = 1});
  bool ran = false;
  Task<void> t = set_flag(&ran);
  EXPECT_TRUE(t.valid());
  EXPECT_FALSE(ran) << "creating a Task ran its body";

  // Awaited later from inside another task: still not run until then.
  auto body = [&](Task<void> inner) -> Task<bool> {
    const bool before = ran;
    co_await std::move(inner);
    co_return before;
  };
  const bool ran_before_await = rt.block_on(body(std::move(t)));
  EXPECT_FALSE(ran_before_await);
  EXPECT_TRUE(ran);
  EXPECT_FALSE(t.valid());  // moved from
}

// Counts its destructions; lives in a coroutine frame.
struct DestroyCounter {
  explicit DestroyCounter(int* n) : n(n) {}
  DestroyCounter(DestroyCounter&& o) noexcept
      : n(std::exchange(o.n, nullptr)) {}
  ~DestroyCounter() {
    if (n != nullptr) ++*n;
  }
  int* n;
};

Task<void> body_with_param(DestroyCounter c, bool* ran) {
  *ran = true;
  (void)c;
  co_return;
}

TEST(TaskTest, DestroyingAnUnstartedTaskFreesItsFrameWithoutRunning) {
  int destroyed = 0;
  bool ran = false;
  {
    Task<void> t = body_with_param(DestroyCounter(&destroyed), &ran);
    EXPECT_EQ(destroyed, 0);  // the frame holds its copy of the parameter
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(destroyed, 1);
}

TEST(TaskTest, MoveAssignmentDestroysTheOldFrame) {
  int destroyed = 0;
  bool ran = false;
  Task<void> t = body_with_param(DestroyCounter(&destroyed), &ran);
  t = Task<void>();
  EXPECT_EQ(destroyed, 1);
  EXPECT_FALSE(t.valid());
  EXPECT_FALSE(ran);
}

Task<int> nested_chain(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await nested_chain(n - 1);
}

Task<int> ready_now() { co_return 1; }

// GCC only turns symmetric transfer into a tail call when optimizing and
// without ASan/TSan; Clang always does.
bool gcc_without_guaranteed_tail_calls(std::string* why) {
#if defined(__GNUC__) && !defined(__clang__)
#if !defined(__OPTIMIZE__)
  *why =
      "GCC does not turn symmetric transfer into a tail call without "
      "optimization";
  return true;
#elif defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  *why =
      "GCC does not turn symmetric transfer into a tail call under "
      "ASan/TSan";
  return true;
#endif
#endif
  (void)why;
  return false;
}

constexpr int kDeep = 1'000'000;

TEST(TaskTest, DeepAwaitChainRunsInConstantStack) {
  std::string why;
  if (gcc_without_guaranteed_tail_calls(&why)) GTEST_SKIP() << why;
  // A million nested frames suspended at once: both the descent (await_suspend
  // returns the callee) and the way back (final_suspend returns the caller)
  // would overflow the shard's 8 MiB stack without symmetric transfer.
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.block_on(nested_chain(kDeep)), kDeep);
}

TEST(TaskTest, LoopOfSynchronouslyCompletingAwaitsRunsInConstantStack) {
  std::string why;
  if (gcc_without_guaranteed_tail_calls(&why)) GTEST_SKIP() << why;
  // Each awaited task completes without suspending; resuming the caller from
  // its final_suspend would nest one stack frame per iteration.
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<int> {
    int sum = 0;
    for (int i = 0; i < kDeep; ++i) sum += co_await ready_now();
    co_return sum;
  };
  EXPECT_EQ(rt.block_on(body()), kDeep);
}

// Restores the frame pool's setting when a test ends.
class FramePoolRestorer {
 public:
  FramePoolRestorer() : saved_(detail::frame_pool_enabled()) {}
  ~FramePoolRestorer() { detail::set_frame_pool_enabled(saved_); }

 private:
  bool saved_;
};

Task<int> fan_out(int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    sum += co_await add_nested(i, 1);
    auto nop = co_await submit(Nop{});
    if (!nop.has_value()) co_return -1;
  }
  co_return sum;
}

TEST(TaskTest, FramePoolCanBeToggledWhileTasksRun) {
  FramePoolRestorer restore;
  Runtime rt(RuntimeOptions{.shards = 1});
  const int n = 1000;
  const int expected = n * (n - 1) / 2 + n;
  for (bool enabled : {false, true, false, true}) {
    detail::set_frame_pool_enabled(enabled);
    EXPECT_EQ(detail::frame_pool_enabled(), enabled);
    EXPECT_EQ(rt.block_on(fan_out(n)), expected) << "pool " << enabled;
  }
}

TEST(TaskTest, FramePoolCanBeToggledInsideARunningTask) {
  FramePoolRestorer restore;
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<int> {
    int sum = 0;
    for (int i = 0; i < 1000; ++i) {
      // The child's frame is allocated under one setting and freed under
      // the other.
      Task<int> child = add_nested(i, 1);
      detail::set_frame_pool_enabled(i % 2 == 0);
      sum += co_await std::move(child);
      if (detail::frame_pool_enabled() != (i % 2 == 0)) co_return -1;
    }
    co_return sum;
  };
  EXPECT_EQ(rt.block_on(body()), 1000 * 999 / 2 + 1000);
}

TEST(TaskTest, FramesAllocatedUnderOneSettingAreFreedUnderTheOther) {
  FramePoolRestorer restore;
  for (bool first : {true, false}) {
    detail::set_frame_pool_enabled(first);
    std::vector<Task<int>> tasks;
    for (int i = 0; i < 100; ++i) tasks.push_back(value_task(i));
    detail::set_frame_pool_enabled(!first);
    tasks.clear();  // frees frames allocated under the other setting
    // And the pool hands out working frames afterwards.
    Runtime rt(RuntimeOptions{.shards = 1});
    EXPECT_EQ(rt.block_on(add_nested(3, 4)), 7);
  }
}

}  // namespace
}  // namespace shardio
