// Tests for stats.h: the Histogram's buckets and percentiles, opcode names,
// and per-shard snapshots — ops in flight per opcode while reads and polls
// wait on pipes, SQ-full stalls behind a batch larger than a tiny SQ, a
// completion burst larger than a tiny CQ (nothing lost), ENOBUFS re-arms of
// a multishot recv on a dry buffer ring, queue and outbox depths towards a
// shard held busy, latency histograms on and off, Runtime::stats() from a
// shard (refused) and after stop(), and the text and Prometheus renderings.
//
// Nothing asserts on time. Every wait is bounded: a Watchdog aborts a test
// that hangs, and loops that wait for the shard to reach a state give up
// after kPatience (the test then fails on its expectations).
#include "shardio/stats.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/buffer_ring.h"
#include "shardio/cross_shard.h"
#include "shardio/multishot.h"
#include "shardio/net.h"
#include "shardio/ops/file.h"
#include "shardio/ops/net.h"
#include "shardio/ops/nop.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Watchdog;

using std::chrono::steady_clock;

constexpr auto kPatience = std::chrono::seconds(20);

// Yields until pred() holds or kPatience has passed; returns pred().
template <class Pred>
Task<bool> eventually(Pred pred) {
  const auto deadline = steady_clock::now() + kPatience;
  while (!pred()) {
    if (steady_clock::now() >= deadline) co_return pred();
    co_await this_shard::yield();
  }
  co_return true;
}

using OpcodeCounts = std::vector<std::pair<uint8_t, uint32_t>>;

// ---------------------------------------------------------------------------
// Histogram

TEST(HistogramTest, BucketsAreLogLinearAndCoverEveryValue) {
  // Bounds strictly increase; past the exact ones each bucket is at most a
  // quarter of its lower bound wide.
  for (unsigned i = 1; i < Histogram::kBuckets; ++i) {
    ASSERT_LT(Histogram::upper_bound(i - 1), Histogram::upper_bound(i)) << i;
    if (i >= 5 && i + 1 < Histogram::kBuckets) {
      const uint64_t lo = Histogram::upper_bound(i - 1);
      EXPECT_LE((Histogram::upper_bound(i) - lo) * 4, lo) << i;
    }
  }
  EXPECT_EQ(Histogram::upper_bound(0), 1u);
  EXPECT_EQ(Histogram::upper_bound(3), 4u);
  EXPECT_EQ(Histogram::upper_bound(Histogram::kBuckets - 2),
            uint64_t{1} << Histogram::kMaxExponent);
  EXPECT_EQ(Histogram::upper_bound(Histogram::kBuckets - 1), UINT64_MAX);
  // Every value lands in the bucket whose range holds it.
  std::vector<uint64_t> values;
  for (uint64_t v = 0; v < 5000; ++v) values.push_back(v);
  for (unsigned e = 3; e < 64; ++e) {
    const uint64_t p = uint64_t{1} << e;
    for (uint64_t d : {p - 1, p, p + 1, p + p / 4, p + p / 4 + 1}) {
      values.push_back(d);
    }
  }
  values.push_back(UINT64_MAX);
  for (uint64_t v : values) {
    const unsigned b = Histogram::bucket_of(v);
    ASSERT_LT(b, Histogram::kBuckets) << v;
    EXPECT_LE(v, Histogram::upper_bound(b)) << v;
    if (b > 0) {
      EXPECT_GT(v, Histogram::upper_bound(b - 1)) << v;
    }
  }
  EXPECT_LT(Histogram::bucket_of(60'000'000'000), Histogram::kBuckets - 1);
  EXPECT_EQ(Histogram::bucket_of(uint64_t{1} << 36), Histogram::kBuckets - 2);
  EXPECT_EQ(Histogram::bucket_of((uint64_t{1} << 36) + 1),
            Histogram::kBuckets - 1);
}

TEST(HistogramTest, CountSumMinMaxAndMonotonePercentiles) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  for (uint64_t v = 1; v <= 1000; ++v) h.record(v);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.sum(), 500500u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 1000u);
  EXPECT_DOUBLE_EQ(h.mean(), 500.5);
  EXPECT_EQ(h.percentile(0), 1u);
  EXPECT_EQ(h.percentile(100), 1000u);
  // Upper estimates within one bucket (25%).
  EXPECT_GE(h.percentile(50), 500u);
  EXPECT_LE(h.percentile(50), 625u);
  EXPECT_GE(h.percentile(99), 990u);
  EXPECT_LE(h.percentile(99), 1000u);
  uint64_t prev = 0;
  for (double p = 0; p <= 100; p += 0.25) {
    const uint64_t v = h.percentile(p);
    EXPECT_GE(v, prev) << p;
    EXPECT_GE(v, h.min());
    EXPECT_LE(v, h.max());
    prev = v;
  }
  uint64_t total = 0;
  for (unsigned i = 0; i < Histogram::kBuckets; ++i) total += h.bucket_count(i);
  EXPECT_EQ(total, 1000u);

  Histogram other;
  other.record(5'000'000);
  h.merge(other);
  EXPECT_EQ(h.count(), 1001u);
  EXPECT_EQ(h.max(), 5'000'000u);
  EXPECT_EQ(h.min(), 1u);
  h.clear();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0u);
}

TEST(StatsTest, OpcodeNames) {
  EXPECT_EQ(opcode_name(IORING_OP_NOP), "NOP");
  EXPECT_EQ(opcode_name(IORING_OP_READ), "READ");
  EXPECT_EQ(opcode_name(IORING_OP_POLL_ADD), "POLL_ADD");
  EXPECT_EQ(opcode_name(IORING_OP_RECV), "RECV");
  EXPECT_EQ(opcode_name(IORING_OP_ASYNC_CANCEL), "ASYNC_CANCEL");
  EXPECT_EQ(opcode_name(IORING_OP_SENDMSG_ZC), "SENDMSG_ZC");
  EXPECT_TRUE(opcode_name(200).empty());
}

// ---------------------------------------------------------------------------
// Ops in flight per opcode

Task<int> read_byte(int fd) {
  auto r = co_await submit(Read(fd, std::vector<char>(1)));
  co_return r.res ? static_cast<int>(*r.res) : -1;
}

Task<unsigned> poll_in(int fd) {
  auto r = co_await submit(PollAdd(fd, POLLIN));
  co_return r ? *r : 0u;
}

Task<void> in_flight_by_opcode() {
  test::Pipe reads, polls;
  CO_ASSERT_TRUE(reads.ok() && polls.ok());
  EXPECT_TRUE(this_shard::stats().in_flight_by_opcode.empty());
  std::vector<JoinHandle<int>> readers;
  std::vector<JoinHandle<unsigned>> pollers;
  for (int i = 0; i < 3; ++i)
    readers.push_back(spawn(read_byte(reads.read_fd())));
  for (int i = 0; i < 2; ++i)
    pollers.push_back(spawn(poll_in(polls.read_fd())));
  auto all_started = [] { return this_shard::counters().ops_in_flight == 5; };
  const bool started = co_await eventually(all_started);
  EXPECT_TRUE(started);
  ShardStats s = this_shard::stats();
  const OpcodeCounts expected = {{IORING_OP_POLL_ADD, 2}, {IORING_OP_READ, 3}};
  EXPECT_EQ(s.in_flight_by_opcode, expected);
  EXPECT_EQ(s.counters.ops_in_flight, 5u);
  const std::string text = to_text(RuntimeStats{{s}});
  EXPECT_NE(text.find("POLL_ADD 2"), std::string::npos) << text;
  EXPECT_NE(text.find("READ 3"), std::string::npos) << text;
  const std::string prom = to_prometheus(RuntimeStats{{s}});
  EXPECT_NE(prom.find("shardio_ops_in_flight_by_opcode{shard=\"0\",opcode="
                      "\"READ\"} 3\n"),
            std::string::npos)
      << prom;

  // Three bytes for three one-byte reads; one byte wakes both polls.
  EXPECT_EQ(::write(reads.write_fd(), "abc", 3), 3);
  EXPECT_EQ(::write(polls.write_fd(), "x", 1), 1);
  for (auto& r : readers) {
    const int got = co_await std::move(r);
    EXPECT_EQ(got, 1);
  }
  for (auto& p : pollers) {
    const unsigned events = co_await std::move(p);
    EXPECT_TRUE(events & POLLIN) << events;
  }
  s = this_shard::stats();
  EXPECT_TRUE(s.in_flight_by_opcode.empty());
  EXPECT_EQ(s.counters.ops_in_flight, 0u);
}

TEST(StatsTest, InFlightPerOpcodeWhileReadsAndPollsWait) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(in_flight_by_opcode());
  // Off-shard, the runtime's snapshot says the same.
  RuntimeStats all = rt.stats();
  ASSERT_EQ(all.shards.size(), 1u);
  EXPECT_TRUE(all.shards[0].in_flight_by_opcode.empty());
}

// ---------------------------------------------------------------------------
// SQ full, CQ overflow

Task<void> batch_of_nops(std::size_t n, uint64_t* stalls_before,
                         ShardStats* after) {
  *stalls_before = this_shard::stats().sq_full_stalls;
  std::vector<Nop> ops(n);
  std::span<Nop> span(ops);
  auto results = co_await batch(span);
  EXPECT_EQ(results.size(), n);
  *after = this_shard::stats();
}

TEST(StatsTest, SqFullStallsCountBatchesLargerThanTheSq) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 8});
  uint64_t before = 0;
  ShardStats after;
  rt.block_on(batch_of_nops(20, &before, &after));
  // 20 SQEs through an 8-entry SQ: at least two forced submissions.
  EXPECT_GE(after.sq_full_stalls - before, 2u);
  EXPECT_EQ(after.sq_full_stalls, after.counters.sq_full_flushes);
  EXPECT_EQ(rt.stats().shards[0].sq_full_stalls, after.sq_full_stalls);
}

Task<void> write_eventfd(int fd) {
  const uint64_t one = 1;
  EXPECT_EQ(::write(fd, &one, sizeof(one)), 8);
  co_return;
}

// 32 polls wait on one eventfd; a task that runs after they are all armed
// writes it, and all 32 complete in one go into an 8-entry CQ.
Task<void> completion_burst(int efd, ShardStats* after) {
  constexpr int kPolls = 32;
  std::vector<PollAdd> polls;
  for (int i = 0; i < kPolls; ++i) polls.emplace_back(efd, POLLIN);
  auto writer = spawn(write_eventfd(efd));
  std::span<PollAdd> span(polls);
  auto results = co_await batch(span);
  co_await std::move(writer);
  CO_ASSERT_TRUE(results.size() == static_cast<std::size_t>(kPolls));
  int ready = 0;
  for (auto& r : results) {
    EXPECT_TRUE(r) << r.error().message();
    if (r && (*r & POLLIN)) ++ready;
  }
  EXPECT_EQ(ready, kPolls);  // IORING_FEAT_NODROP: nothing was lost
  *after = this_shard::stats();
  EXPECT_EQ(after->counters.ops_in_flight, 0u);
}

TEST(StatsTest, CqOverflowBurstIsCountedAndLosesNothing) {
  Watchdog watchdog;
  const int efd = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  ShardStats after;
  {
    Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 4});  // CQ: 8
    rt.block_on(completion_burst(efd, &after));
  }
  ::close(efd);
  EXPECT_GT(after.cq_overflow_backlogs, 0u)
      << "32 completions at once into an 8-entry CQ should overflow it";
  // The kernel's own counter: kernels with IORING_FEAT_NODROP count only
  // CQEs they dropped, so it may well stay 0 here.
  if (after.cq_overflows == 0) {
    std::printf(
        "note: the kernel's CQ overflow counter stayed 0 (NODROP kernels "
        "count only dropped CQEs); cq_overflow_backlogs=%llu\n",
        static_cast<unsigned long long>(after.cq_overflow_backlogs));
  }
}

// ---------------------------------------------------------------------------
// ENOBUFS re-arms

bool send_bytes(int fd, std::size_t n) {
  std::string data(n, 'e');
  std::size_t done = 0;
  while (done < n) {
    const ssize_t k = ::send(fd, data.data() + done, n - done, MSG_NOSIGNAL);
    if (k <= 0) return false;
    done += static_cast<std::size_t>(k);
  }
  return true;
}

// A recv on a 2 x 64 ring with 1000 bytes waiting, both buffers held: the
// kernel ends the op with ENOBUFS and the stream parks until a buffer comes
// back.
Task<void> enobufs_rearm() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  const ShardStats before = this_shard::stats();
  EXPECT_EQ(before.enobufs_rearms, 0u);
  CO_ASSERT_TRUE(send_bytes(a.fd(), 1000));
  auto stream = b.recv_multishot(*ring);
  std::vector<ProvidedBuffer> held;
  for (int i = 0; i < 2; ++i) {
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    held.push_back(std::move(**item));
  }
  auto idle = [] { return this_shard::counters().ops_in_flight == 0; };
  const bool parked = co_await eventually(idle);
  EXPECT_TRUE(parked);
  const ShardStats s = this_shard::stats();
  EXPECT_EQ(s.enobufs_rearms - before.enobufs_rearms, 1u);
  EXPECT_FALSE(stream.ended());
  stream.cancel();  // parked: the stream just ends
  EXPECT_TRUE(stream.ended());
  held.clear();
  EXPECT_EQ(this_shard::stats().enobufs_rearms, s.enobufs_rearms);
}

TEST(StatsTest, EnobufsRearmsCountADryBufferRing) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(enobufs_rearm());
}

// ---------------------------------------------------------------------------
// Queue depths

// A gate a shard thread waits at (bounded, so a failing test cannot hang).
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

struct OpenOnExit {
  Gate& gate;
  ~OpenOnExit() { gate.open(); }
};

Task<void> depths_while_blocked(Runtime& rt, Gate& gate,
                                std::atomic<bool>& entered,
                                std::atomic<int>& ran) {
  OpenOnExit guard{gate};
  rt.post(1, [&gate, &entered] {
    entered.store(true);
    gate.wait();  // shard 1 is stuck here until the gate opens
  });
  auto stuck = [&entered] { return entered.load(); };
  const bool blocked = co_await eventually(stuck);
  CO_ASSERT_TRUE(blocked);
  // A queue of 2 slots: two messages wait in it, three in the outbox.
  for (int i = 0; i < 5; ++i) rt.post(1, [&ran] { ran.fetch_add(1); });
  ShardStats s = this_shard::stats();
  CO_ASSERT_TRUE(s.queues.size() == 1u);
  EXPECT_EQ(s.queues[0].peer, 1u);
  EXPECT_EQ(s.queues[0].queued, 2u);
  EXPECT_EQ(s.queues[0].outbox, 3u);
  EXPECT_EQ(s.queues[0].incoming, 0u);
  const std::string prom = to_prometheus(RuntimeStats{{s}});
  EXPECT_NE(prom.find("shardio_outbox_messages{shard=\"0\",peer=\"1\"} 3\n"),
            std::string::npos)
      << prom;
  const std::string text = to_text(RuntimeStats{{s}});
  EXPECT_NE(text.find("shard 0 -> 1: 2 queued, 3 in outbox"), std::string::npos)
      << text;

  gate.open();
  auto drained = [&ran] {
    const ShardStats now = this_shard::stats();
    return ran.load() == 5 && now.queues[0].queued == 0 &&
           now.queues[0].outbox == 0;
  };
  const bool done = co_await eventually(drained);
  EXPECT_TRUE(done);
}

TEST(StatsTest, QueueAndOutboxDepthsWhileTheReceiverIsBusy) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2, .message_queue_capacity = 2});
  Gate gate;
  std::atomic<bool> entered{false};
  std::atomic<int> ran{0};
  rt.block_on(depths_while_blocked(rt, gate, entered, ran));
  // Both shards again, from outside: nothing queued anywhere.
  const RuntimeStats all = rt.stats();
  ASSERT_EQ(all.shards.size(), 2u);
  for (const ShardStats& s : all.shards) {
    ASSERT_EQ(s.queues.size(), 1u);
    EXPECT_EQ(s.queues[0].peer, 1 - s.shard);
    EXPECT_EQ(s.queues[0].queued, 0u);
    EXPECT_EQ(s.queues[0].outbox, 0u);
    EXPECT_EQ(s.queues[0].incoming, 0u);
  }
  EXPECT_GE(all.shards[0].counters.outbox_waits, 3u);
}

// ---------------------------------------------------------------------------
// Latency histograms

Task<void> some_nops(int n) {
  std::vector<Nop> ops(static_cast<std::size_t>(n / 2));
  std::span<Nop> span(ops);
  auto results = co_await batch(span);
  EXPECT_EQ(results.size(), ops.size());
  for (int i = n / 2; i < n; ++i) {
    Nop op;
    const Result<void> r = co_await submit(std::move(op));
    EXPECT_TRUE(r);
  }
}

Task<void> histograms_count_ops() {
  const ShardStats before = this_shard::stats();
  EXPECT_TRUE(before.latency_histograms);
  co_await some_nops(60);
  co_await this_shard::yield();
  const ShardStats after = this_shard::stats();
  EXPECT_EQ(after.op_latency_ns.count() - before.op_latency_ns.count(), 60u);
  EXPECT_GT(after.loop_turn_ns.count(), before.loop_turn_ns.count());
  for (const Histogram* h : {&after.op_latency_ns, &after.loop_turn_ns}) {
    EXPECT_LE(h->min(), h->percentile(50));
    EXPECT_LE(h->percentile(50), h->percentile(90));
    EXPECT_LE(h->percentile(90), h->percentile(99));
    EXPECT_LE(h->percentile(99), h->percentile(99.9));
    EXPECT_LE(h->percentile(99.9), h->max());
    EXPECT_GE(h->sum(), h->min() * h->count());
  }
}

TEST(StatsTest, LatencyHistogramsCountEveryOpWhenOn) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1, .latency_histograms = true});
  rt.block_on(histograms_count_ops());
  const ShardStats s = rt.stats().shards[0];
  EXPECT_TRUE(s.latency_histograms);
  EXPECT_GE(s.op_latency_ns.count(), 60u);
  EXPECT_NE(to_text(rt.stats()).find("op latency: n="), std::string::npos);
}

Task<void> histograms_stay_empty() {
  co_await some_nops(60);
  co_await this_shard::yield();
  const ShardStats s = this_shard::stats();
  EXPECT_FALSE(s.latency_histograms);
  EXPECT_EQ(s.op_latency_ns.count(), 0u);
  EXPECT_EQ(s.loop_turn_ns.count(), 0u);
}

TEST(StatsTest, LatencyHistogramsStayEmptyWhenOff) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(histograms_stay_empty());
  const RuntimeStats all = rt.stats();
  EXPECT_EQ(to_prometheus(all).find("_bucket"), std::string::npos);
  EXPECT_NE(to_text(all).find("latency histograms: off"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Renderings

// Checks `text` against the Prometheus text format 0.0.4 as far as shardio
// uses it; returns the families' types by name.
std::map<std::string, std::string> check_exposition(const std::string& text,
                                                    const std::string& prefix) {
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::string current;  // the family whose samples may follow
  // Per histogram series (family + shard labels): the last le and count.
  struct Series {
    double last_le = -1;
    uint64_t last_count = 0;
    bool inf_seen = false;
    uint64_t inf = 0;
    std::optional<uint64_t> count;
  };
  std::map<std::string, Series> series;
  std::istringstream in(text);
  std::string line;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  while (std::getline(in, line)) {
    SCOPED_TRACE(line);
    EXPECT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      EXPECT_TRUE(helped.insert(name).second) << "HELP twice";
      EXPECT_GT(rest.size(), name.size() + 1) << "empty HELP";
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      EXPECT_TRUE(helped.count(name)) << "TYPE before HELP";
      EXPECT_TRUE(types.emplace(name, type).second) << "TYPE twice";
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram")
          << type;
      EXPECT_EQ(name.rfind(prefix + "_", 0), 0u) << name;
      current = name;
      continue;
    }
    EXPECT_NE(line[0], '#');
    // name{labels} value
    const auto brace = line.find('{');
    const auto close = line.find("} ");
    if (brace == std::string::npos || close == std::string::npos ||
        close < brace) {
      ADD_FAILURE() << "not a sample";
      continue;
    }
    const std::string name = line.substr(0, brace);
    const std::string labels = line.substr(brace + 1, close - brace - 1);
    const std::string value = line.substr(close + 2);
    EXPECT_NE(labels.find("shard=\""), std::string::npos);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    EXPECT_TRUE(end != value.c_str() && *end == '\0') << value;
    EXPECT_GE(v, 0);
    const std::string& type = types[current];
    if (type != "histogram") {
      EXPECT_EQ(name, current) << "a sample outside its family";
      continue;
    }
    const std::string shard = labels.substr(0, labels.find(','));
    Series& s = series[current + "|" + shard];
    if (name == current + "_bucket") {
      const auto le_at = labels.find("le=\"");
      if (le_at == std::string::npos) {
        ADD_FAILURE() << "a bucket without le";
        continue;
      }
      const std::string le =
          labels.substr(le_at + 4, labels.find('"', le_at + 4) - le_at - 4);
      const uint64_t count = static_cast<uint64_t>(v);
      EXPECT_GE(count, s.last_count) << "buckets must be cumulative";
      s.last_count = count;
      if (le == "+Inf") {
        EXPECT_FALSE(s.inf_seen);
        s.inf_seen = true;
        s.inf = count;
      } else {
        EXPECT_FALSE(s.inf_seen) << "+Inf must come last";
        const double bound = std::strtod(le.c_str(), nullptr);
        EXPECT_GT(bound, s.last_le) << "le must increase";
        s.last_le = bound;
      }
    } else if (name == current + "_count") {
      s.count = static_cast<uint64_t>(v);
    } else {
      EXPECT_EQ(name, current + "_sum") << "a sample outside its family";
    }
  }
  for (const auto& [key, s] : series) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(s.inf_seen);
    EXPECT_TRUE(s.count.has_value());
    EXPECT_EQ(s.inf, s.count.value_or(~uint64_t{0}));
  }
  return types;
}

Task<void> work_on_both_shards() {
  co_await some_nops(20);
  auto remote = [] { return some_nops(20); };
  co_await submit_to(1, std::move(remote));
}

TEST(StatsTest, PrometheusExpositionParsesAndTextNamesEveryShard) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2, .latency_histograms = true});
  rt.block_on(work_on_both_shards());
  const RuntimeStats all = rt.stats();
  ASSERT_EQ(all.shards.size(), 2u);
  for (const std::string prefix : {"shardio", "myapp"}) {
    SCOPED_TRACE(prefix);
    const std::string prom = to_prometheus(all, prefix);
    const auto types = check_exposition(prom, prefix);
    EXPECT_EQ(types.at(prefix + "_op_latency_seconds"), "histogram");
    EXPECT_EQ(types.at(prefix + "_loop_turn_seconds"), "histogram");
    EXPECT_EQ(types.at(prefix + "_sqes_submitted_total"), "counter");
    EXPECT_EQ(types.at(prefix + "_cq_overflows_total"), "counter");
    EXPECT_EQ(types.at(prefix + "_sq_full_stalls_total"), "counter");
    EXPECT_EQ(types.at(prefix + "_enobufs_rearms_total"), "counter");
    EXPECT_EQ(types.at(prefix + "_queue_messages"), "gauge");
    EXPECT_EQ(types.at(prefix + "_outbox_messages"), "gauge");
    EXPECT_EQ(types.at(prefix + "_ops_in_flight_by_opcode"), "gauge");
    for (unsigned shard : {0u, 1u}) {
      const std::string count = absl::StrFormat(
          "%s_op_latency_seconds_count{shard=\"%d\"} %d\n", prefix, shard,
          all.shards[shard].op_latency_ns.count());
      EXPECT_NE(prom.find(count), std::string::npos) << count;
      EXPECT_GE(all.shards[shard].op_latency_ns.count(), 20u);
    }
  }
  const std::string text = to_text(all);
  EXPECT_NE(text.find("shard 0:"), std::string::npos) << text;
  EXPECT_NE(text.find("shard 1:"), std::string::npos) << text;
}

// ---------------------------------------------------------------------------
// Where stats() may be called

Task<void> stats_on_a_shard(Runtime& rt) {
  EXPECT_THROW((void)rt.stats(), std::logic_error);
  EXPECT_EQ(this_shard::stats().shard, 0u);
  co_return;
}

TEST(StatsTest, RuntimeStatsFromAShardThrowsAndThisShardStatsOffShardThrows) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(stats_on_a_shard(rt));
  EXPECT_THROW((void)this_shard::stats(), std::logic_error);
}

TEST(StatsTest, AfterStopStatsAreTheFinalValues) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2, .latency_histograms = true});
  rt.block_on(work_on_both_shards());
  const RuntimeStats running = rt.stats();
  rt.stop();
  const RuntimeStats stopped = rt.stats();
  ASSERT_EQ(stopped.shards.size(), 2u);
  for (unsigned i = 0; i < 2; ++i) {
    const ShardStats& s = stopped.shards[i];
    EXPECT_EQ(s.shard, i);
    EXPECT_GE(s.counters.sqes_submitted,
              running.shards[i].counters.sqes_submitted);
    EXPECT_GE(s.counters.loop_turns, running.shards[i].counters.loop_turns);
    EXPECT_EQ(s.counters.ops_in_flight, 0u);
    EXPECT_TRUE(s.in_flight_by_opcode.empty());
    EXPECT_TRUE(s.latency_histograms);
    EXPECT_GE(s.op_latency_ns.count(), running.shards[i].op_latency_ns.count());
    ASSERT_EQ(s.queues.size(), 1u);
    EXPECT_EQ(s.queues[0].queued + s.queues[0].outbox, 0u);
  }
}

}  // namespace
}  // namespace shardio
