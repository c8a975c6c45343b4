// Tests for spawn() and JoinHandle<T> (shardio/runtime.h): joining values
// and exceptions, detaching, ordering, yield and many tasks at once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/operation.h"
#include "shardio/ops/nop.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);

Task<int> value_after_nop(int v) {
  auto r = co_await submit(Nop{});
  if (!r.has_value()) co_return -1;
  co_return v;
}

TEST(SpawnTest, AwaitYieldsTheValue) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<int> {
    JoinHandle<int> h = spawn(value_after_nop(7));
    co_return co_await h;
  };
  EXPECT_EQ(rt.block_on(body()), 7);
}

TEST(SpawnTest, AwaitYieldsMoveOnlyValuesAndVoid) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<int> {
    auto make = []() -> Task<std::unique_ptr<int>> {
      co_return std::make_unique<int>(11);
    };
    std::unique_ptr<int> p = co_await spawn(make());
    int seen = 0;
    auto set = [](int* out) -> Task<void> {
      *out = 3;
      co_return;
    };
    co_await spawn(set(&seen));
    co_return (p ? *p : 0) + seen;
  };
  EXPECT_EQ(rt.block_on(body()), 14);
}

TEST(SpawnTest, AwaitRethrowsTheException) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<std::string> {
    auto thrower = []() -> Task<int> {
      (void)co_await submit(Nop{});
      throw std::runtime_error("spawned boom");
    };
    JoinHandle<int> h = spawn(thrower());
    try {
      co_await h;
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(rt.block_on(body()), "spawned boom");
}

TEST(SpawnTest, AwaitAfterTheTaskFinishedStillRethrows) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<bool> {
    auto thrower = []() -> Task<void> {
      throw std::logic_error("early");
      co_return;
    };
    JoinHandle<void> h = spawn(thrower());
    // Let it finish before awaiting: the join takes the ready path.
    for (int i = 0; i < 10 && !h.is_finished(); ++i) {
      co_await this_shard::yield();
    }
    if (!h.is_finished()) co_return false;
    try {
      co_await h;
    } catch (const std::logic_error&) {
      co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(rt.block_on(body()));
}

// A detached task that finishes a few loop turns after it was spawned,
// counts, then tells the test thread.
Task<void> count_later(std::atomic<int>* counter, absl::Notification* done) {
  for (int i = 0; i < 3; ++i) {
    co_await this_shard::yield();
    auto r = co_await submit(Nop{});
    if (!r.has_value()) co_return;
  }
  counter->fetch_add(1);
  done->Notify();
}

TEST(SpawnTest, DetachedTaskRunsToCompletion) {
  std::atomic<int> counter{0};
  absl::Notification done;
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = [&]() -> Task<int> {
    JoinHandle<void> h = spawn(count_later(&counter, &done));
    h.detach();
    EXPECT_FALSE(h.is_finished());  // a detached handle refers to nothing
    co_return counter.load();
  };
  // block_on returns before the detached task has even started.
  EXPECT_EQ(rt.block_on(body()), 0);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(counter.load(), 1);
}

TEST(SpawnTest, DroppedJoinHandleDetaches) {
  std::atomic<int> counter{0};
  absl::Notification first_done;
  absl::Notification second_done;
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = [&]() -> Task<int> {
    { (void)spawn(count_later(&counter, &first_done)); }  // a temporary
    {
      JoinHandle<void> h = spawn(count_later(&counter, &second_done));
    }  // destroyed without await
    co_return counter.load();
  };
  EXPECT_EQ(rt.block_on(body()), 0);
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(second_done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(counter.load(), 2);
}

TEST(SpawnTest, DetachedTaskOutlivesItsSpawner) {
  std::atomic<int> counter{0};
  absl::Notification done;
  Runtime rt(RuntimeOptions{.shards = 1});
  auto spawner = [&]() -> Task<void> {
    spawn(count_later(&counter, &done)).detach();
    co_return;
  };
  auto body = [&]() -> Task<int> {
    // The spawning task finishes (and is destroyed) before its child runs.
    co_await spawner();
    co_return counter.load();
  };
  EXPECT_EQ(rt.block_on(body()), 0);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(counter.load(), 1);
}

TEST(SpawnTest, MoveAssigningAJoinHandleDetachesTheOldTask) {
  std::atomic<int> counter{0};
  absl::Notification done;
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = [&]() -> Task<int> {
    JoinHandle<void> h = spawn(count_later(&counter, &done));
    auto quick = []() -> Task<void> { co_return; };
    h = spawn(quick());  // the first task goes on, detached
    co_await h;
    co_return counter.load();
  };
  EXPECT_EQ(rt.block_on(body()), 0);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(counter.load(), 1);
}

TEST(SpawnTest, IsFinishedTracksTheTask) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<std::vector<bool>> {
    std::vector<bool> seen;
    JoinHandle<int> empty;
    seen.push_back(empty.is_finished());
    auto quick = []() -> Task<int> { co_return 1; };
    JoinHandle<int> h = spawn(quick());
    seen.push_back(h.is_finished());  // not run yet
    co_await this_shard::yield();     // the spawned task runs first
    seen.push_back(h.is_finished());
    const int v = co_await h;
    seen.push_back(v == 1 && h.is_finished());
    co_return seen;
  };
  EXPECT_EQ(rt.block_on(body()), (std::vector<bool>{false, false, true, true}));
}

TEST(SpawnTest, SpawnedTaskFirstRunsAtTheNextLoopTurn) {
  Runtime rt(RuntimeOptions{.shards = 1});
  struct Seen {
    std::vector<std::string> order;
    uint64_t spawn_turn = 0;
    uint64_t child_turn = 0;
  };
  auto body = []() -> Task<Seen> {
    Seen s;
    auto child = [](Seen* s) -> Task<void> {
      s->order.push_back("child");
      s->child_turn = this_shard::counters().loop_turns;
      co_return;
    };
    s.spawn_turn = this_shard::counters().loop_turns;
    JoinHandle<void> h = spawn(child(&s));
    s.order.push_back("spawner");  // the spawner continues first
    co_await h;
    co_return s;
  };
  const Seen s = rt.block_on(body());
  EXPECT_EQ(s.order, (std::vector<std::string>{"spawner", "child"}));
  EXPECT_GT(s.child_turn, s.spawn_turn);
}

TEST(SpawnTest, SpawnFromOffShardThrows) {
  auto t = []() -> Task<void> { co_return; };
  EXPECT_THROW((void)spawn(t()), std::logic_error);
}

TEST(SpawnTest, TenThousandSpawnedTasksAllJoin) {
  Runtime rt(RuntimeOptions{.shards = 1});
  constexpr int kTasks = 10'000;
  auto body = []() -> Task<long> {
    std::vector<JoinHandle<int>> handles;
    handles.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i)
      handles.push_back(spawn(value_after_nop(i)));
    long sum = 0;
    for (auto& h : handles) sum += co_await h;
    co_return sum;
  };
  EXPECT_EQ(rt.block_on(body()), static_cast<long>(kTasks) * (kTasks - 1) / 2);
}

TEST(SpawnTest, TenThousandTasksJoinedInReverseOrder) {
  Runtime rt(RuntimeOptions{.shards = 1});
  constexpr int kTasks = 10'000;
  auto body = []() -> Task<long> {
    std::vector<JoinHandle<int>> handles;
    for (int i = 0; i < kTasks; ++i)
      handles.push_back(spawn(value_after_nop(i)));
    long sum = 0;
    for (auto it = handles.rbegin(); it != handles.rend(); ++it) {
      sum += co_await *it;
    }
    co_return sum;
  };
  EXPECT_EQ(rt.block_on(body()), static_cast<long>(kTasks) * (kTasks - 1) / 2);
}

TEST(SpawnTest, YieldInterleavesTwoTasks) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<std::string> {
    std::string trace;
    auto worker = [](std::string* trace, char name) -> Task<void> {
      for (int i = 0; i < 4; ++i) {
        trace->push_back(name);
        co_await this_shard::yield();
      }
    };
    JoinHandle<void> a = spawn(worker(&trace, 'a'));
    JoinHandle<void> b = spawn(worker(&trace, 'b'));
    co_await a;
    co_await b;
    co_return trace;
  };
  EXPECT_EQ(rt.block_on(body()), "abababab");
}

TEST(SpawnTest, TasksRunCounterIncreases) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto body = []() -> Task<std::pair<uint64_t, uint64_t>> {
    const uint64_t before = this_shard::counters().tasks_run;
    auto noop = []() -> Task<void> { co_return; };
    for (int i = 0; i < 10; ++i) co_await spawn(noop());
    const uint64_t after = this_shard::counters().tasks_run;
    co_return std::pair{before, after};
  };
  const auto [before, after] = rt.block_on(body());
  // Each spawned task is resumed from the ready queue at least once.
  EXPECT_GE(after - before, 10u);
  EXPECT_GE(rt.counters(0).tasks_run, after);
}

}  // namespace
}  // namespace shardio
