// A coroutine frame that the user owns may be destroyed while it is
// suspended in a shardio awaiter, even in the loop turn in which its
// wake-up was already queued (its op completed, its yield was scheduled,
// its multishot item arrived, its message left the outbox). It must then
// never be resumed. Each test builds that order of events for real: a
// "dropper" frame whose own wake-up is queued before the victim's destroys
// the victim. The victims' frames are scribbled over when freed, so a
// resumption of one crashes the test even without ASan.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/channel.h"
#include "shardio/cross_shard.h"
#include "shardio/multishot.h"
#include "shardio/ops/net.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/timeout.h"
#include "shardio/owned_fd.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio {
namespace {

std::atomic<int> g_live_frames{0};

// Out of line: GCC 12 warns (mismatched-new-delete) when it sees a
// coroutine's inlined allocation and deallocation functions side by side.
[[gnu::noinline]] void* frame_new(std::size_t n) {
  g_live_frames.fetch_add(1);
  void* p = std::malloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
[[gnu::noinline]] void frame_delete(void* p, std::size_t n) noexcept {
  std::memset(p, 0xdb, n);
  g_live_frames.fetch_sub(1);
  std::free(p);
}

// An eagerly started coroutine owned by the test. Its frame is filled with
// 0xdb before it is freed: resuming it after destroy() jumps through a
// scribbled resume pointer.
class Frame {
 public:
  struct promise_type {
    static void* operator new(std::size_t n) { return frame_new(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
      frame_delete(p, n);
    }
    Frame get_return_object() noexcept {
      return Frame(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };

  Frame() = default;
  explicit Frame(std::coroutine_handle<promise_type> h) : h_(h) {}
  Frame(Frame&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Frame& operator=(Frame&& o) noexcept {
    destroy();
    h_ = std::exchange(o.h_, {});
    return *this;
  }
  ~Frame() { destroy(); }

  bool done() const { return h_ && h_.done(); }
  void destroy() {
    if (h_) std::exchange(h_, {}).destroy();
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

// What the victims record: how far they got.
struct Log {
  int started = 0;
  int resumed = 0;
};

// Waits for a Nop, then destroys `victim`.
Frame dropper(Frame* victim, Log* log) {
  Result<void> r = co_await submit(Nop{});
  EXPECT_TRUE(r.has_value());
  log->started++;
  victim->destroy();
}

Frame submit_victim(Log* log) {
  log->started++;
  Result<void> r = co_await submit(Nop{});
  (void)r;
  log->resumed++;
}

Task<void> nop_task(Log* log) {
  Result<void> r = co_await submit(Nop{});
  (void)r;
  log->resumed++;
}

Frame task_victim(Log* log) {
  log->started++;
  co_await nop_task(log);
  log->resumed++;
}

Frame batch_victim(Log* log) {
  log->started++;
  auto results = co_await batch(Nop{}, Nop{});
  (void)results;
  log->resumed++;
}

// Resumed by its Nop (queued before the dropper's), then suspends in
// yield() with its resumption queued behind the dropper's.
Frame yield_victim(Log* log) {
  log->started++;
  Result<void> r = co_await submit(Nop{});
  (void)r;
  co_await this_shard::yield();
  log->resumed++;
}

// Drives one scenario: creates the victim and the dropper in the order
// given, then lets a few loop turns pass. Returns what the victim logged.
template <class MakeVictim>
Task<Log> scenario(MakeVictim make_victim, bool victim_first) {
  Log victim_log;
  Log dropper_log;
  Frame victim;
  Frame drop;
  if (victim_first) {
    victim = make_victim(&victim_log);
    drop = dropper(&victim, &dropper_log);
  } else {
    // The dropper's Nop goes first, so its wake-up is queued before the
    // victim's.
    drop = dropper(&victim, &dropper_log);
    victim = make_victim(&victim_log);
  }
  for (int i = 0; i < 8; ++i) co_await this_shard::yield();
  EXPECT_EQ(dropper_log.started, 1) << "the dropper never ran";
  EXPECT_TRUE(drop.done());
  co_return victim_log;
}

class FrameDropTest : public testing::Test {
 protected:
  void SetUp() override { base_frames_ = g_live_frames.load(); }
  void TearDown() override {
    EXPECT_EQ(g_live_frames.load(), base_frames_) << "a frame leaked";
  }
  int base_frames_ = 0;
};

TEST_F(FrameDropTest, SubmitAwaiterWithItsWakeUpQueued) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Log log = rt.block_on(scenario(submit_victim, false));
  EXPECT_EQ(log.started, 1);
  EXPECT_EQ(log.resumed, 0) << "a destroyed frame was resumed";
  EXPECT_EQ(rt.counters(0).ops_in_flight, 0u);
}

TEST_F(FrameDropTest, TaskInsideAFrameWithItsWakeUpQueued) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Log log = rt.block_on(scenario(task_victim, false));
  EXPECT_EQ(log.started, 1);
  EXPECT_EQ(log.resumed, 0);
}

TEST_F(FrameDropTest, BatchWithItsWakeUpQueued) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Log log = rt.block_on(scenario(batch_victim, false));
  EXPECT_EQ(log.started, 1);
  EXPECT_EQ(log.resumed, 0);
}

TEST_F(FrameDropTest, YieldWithItsResumptionQueued) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Log log = rt.block_on(scenario(yield_victim, true));
  EXPECT_EQ(log.started, 1);
  EXPECT_EQ(log.resumed, 0);
}

// A multishot poll on a readable socket posts its first item at once.
struct PollVictim {
  int fd;
  Frame operator()(Log* log) const {
    log->started++;
    auto stream = submit_multishot(PollMultishot(fd, POLLIN));
    auto item = co_await stream.next();
    (void)item;
    log->resumed++;
  }
};

TEST_F(FrameDropTest, MultishotNextWithItsItemQueued) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  OwnedFd a(sv[0]);
  OwnedFd b(sv[1]);
  ASSERT_EQ(::send(a.get(), "x", 1, 0), 1);
  Runtime rt(RuntimeOptions{.shards = 1});
  const Log log = rt.block_on(scenario(PollVictim{b.get()}, false));
  EXPECT_EQ(log.started, 1);
  EXPECT_EQ(log.resumed, 0);
  EXPECT_EQ(rt.counters(0).ops_in_flight, 0u) << "the poll was not cancelled";
}

// A channel receive whose value arrived: the sender's wake-up message ran
// and queued the receiver before the dropper destroyed it.
struct ChannelVictim {
  Receiver<int>* rx;
  Frame operator()(Log* log) const {
    log->started++;
    std::optional<int> v = co_await rx->recv();
    (void)v;
    log->resumed++;
  }
};

Frame channel_sender(Sender<int>* tx) {
  Result<void> r = co_await submit(Nop{});
  (void)r;
  bool sent = co_await tx->send(7);
  EXPECT_TRUE(sent);
}

TEST_F(FrameDropTest, ChannelRecvWithItsWakeUpQueued) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const Log log = rt.block_on([]() -> Task<Log> {
    auto [tx, rx] = make_channel<int>(4);
    Log victim_log;
    Log dropper_log;
    Frame victim = ChannelVictim{&rx}(&victim_log);
    // The sender's Nop completes first; its send() wakes the receiver by a
    // message to this shard, which runs at the next turn and queues it.
    // The dropper waits on two Nops in a row, so it runs after that.
    Frame sender = channel_sender(&tx);
    Frame drop;
    auto late_dropper = [](Frame* v, Log* l) -> Frame {
      Result<void> r1 = co_await submit(Nop{});
      (void)r1;
      co_await this_shard::yield();
      l->started++;
      v->destroy();
    };
    drop = late_dropper(&victim, &dropper_log);
    for (int i = 0; i < 8; ++i) co_await this_shard::yield();
    EXPECT_EQ(dropper_log.started, 1);
    co_return victim_log;
  }());
  EXPECT_EQ(log.started, 1);
  // Either the receiver ran before the dropper (resumed once, then done) or
  // it was destroyed with its wake-up queued (never resumed); never resumed
  // after being destroyed, which would crash on the scribbled frame.
  EXPECT_LE(log.resumed, 1);
}

// post_to() suspended with its message in the outbox (the queue towards a
// busy shard is full): the frame is destroyed, the message still goes.
TEST_F(FrameDropTest, PostToSuspendedInTheOutbox) {
  Runtime rt(RuntimeOptions{.shards = 2, .message_queue_capacity = 2});
  std::atomic<int> delivered{0};
  absl::Notification release;
  const Log log = rt.block_on([](std::atomic<int>& delivered,
                                 absl::Notification& release) -> Task<Log> {
    // Keep shard 1 busy so that its queue stays full.
    auto block = [&release] {
      release.WaitForNotificationWithTimeout(absl::Seconds(60));
    };
    co_await post_to(1, std::move(block));
    Log victim_log;
    // victim_log.started counts the messages handed to post_to().
    auto poster = [](std::atomic<int>* n, Log* l) -> Frame {
      for (int i = 0; i < 4; ++i) {
        l->started++;
        co_await post_to(1, [n] { n->fetch_add(1); });
      }
      l->resumed++;
    };
    Frame victim = poster(&delivered, &victim_log);
    // The queue holds 2 and shard 1 is busy: the victim is now suspended
    // with its last message waiting in this shard's outbox.
    EXPECT_FALSE(victim.done());
    EXPECT_GE(this_shard::counters().outbox_waits, 1u);
    victim.destroy();
    release.Notify();
    // Every message that was handed over runs on shard 1.
    for (int i = 0; i < 100000 && delivered.load() < victim_log.started; ++i) {
      co_await this_shard::yield();
    }
    co_return victim_log;
  }(delivered, release));
  EXPECT_GE(log.started, 2);
  EXPECT_LE(log.started, 3);
  EXPECT_EQ(delivered.load(), log.started)
      << "a message in the outbox was lost";
  EXPECT_EQ(log.resumed, 0);
}

// Runtime::stop() destroys messages that a shard still running pushed into
// the queue of a shard that had already shut down, before it returns. The
// order is made likely, not certain: a shard-0 task's destructor (run in
// shard 0's shutdown) waits for shard 1's own shutdown to have begun, then
// sends. Repeated so that the stranded case is reached.
std::atomic<int> g_live_payloads{0};
struct Payload {
  Payload() { g_live_payloads.fetch_add(1); }
  Payload(const Payload&) { g_live_payloads.fetch_add(1); }
  ~Payload() { g_live_payloads.fetch_sub(1); }
};

// Move-only: only the copy in the coroutine frame acts.
struct SendOnDestroy {
  explicit SendOnDestroy(std::atomic<bool>* f) : shard1_down(f) {}
  SendOnDestroy(SendOnDestroy&& o) noexcept
      : shard1_down(std::exchange(o.shard1_down, nullptr)) {}
  std::atomic<bool>* shard1_down;
  ~SendOnDestroy() {
    if (shard1_down == nullptr) return;
    for (int i = 0; i < 200000 && !shard1_down->load(); ++i) {
      std::this_thread::yield();
    }
    detail::Reactor::require_current().send(1, [p = Payload()] { (void)p; });
  }
};

struct FlagOnDestroy {
  explicit FlagOnDestroy(std::atomic<bool>* f) : flag(f) {}
  FlagOnDestroy(FlagOnDestroy&& o) noexcept
      : flag(std::exchange(o.flag, nullptr)) {}
  std::atomic<bool>* flag;
  ~FlagOnDestroy() {
    if (flag != nullptr) flag->store(true);
  }
};

Task<void> park_with(SendOnDestroy guard, std::atomic<int>* started) {
  (void)guard;  // lives in this frame until the frame is destroyed
  started->fetch_add(1);
  (void)co_await sleep(std::chrono::hours(1));
}

Task<void> park_with_flag(FlagOnDestroy guard, std::atomic<int>* started) {
  (void)guard;  // lives in this frame until the frame is destroyed
  started->fetch_add(1);
  (void)co_await sleep(std::chrono::hours(1));
}

TEST_F(FrameDropTest, StopLeavesNoStrandedMessage) {
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> shard1_down{false};
    std::atomic<int> started{0};
    Runtime rt(RuntimeOptions{.shards = 2});
    rt.spawn_on(
        0, [&] { return park_with(SendOnDestroy(&shard1_down), &started); });
    rt.spawn_on(1, [&] {
      return park_with_flag(FlagOnDestroy(&shard1_down), &started);
    });
    for (int i = 0; i < 6000 && started.load() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(started.load(), 2);
    rt.stop();
    EXPECT_TRUE(shard1_down.load());
    EXPECT_EQ(g_live_payloads.load(), 0)
        << "round " << round
        << ": a message sent to a shard that had shut down outlived stop()";
  }
}

}  // namespace
}  // namespace shardio
