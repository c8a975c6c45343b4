// Tests for provided-buffer rings (buffer_ring.h): argument checks, several
// groups per shard, take(), ProvidedBuffer ownership (moves, release(),
// destruction on another thread), shared copies, reuse of group ids, and
// that idle receivers hold no buffer.
//
// Every wait is bounded: a Watchdog aborts a test that hangs, and loops that
// wait for the shard to reach a state give up after kPatience (the test then
// fails on its expectations).
#include "shardio/buffer_ring.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/multishot.h"
#include "shardio/net.h"
#include "shardio/ops/net.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

#if defined(ABSL_HAVE_LEAK_SANITIZER)
#include <sanitizer/lsan_interface.h>
#endif

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

uint64_t in_flight() { return this_shard::counters().ops_in_flight; }
uint64_t rearms() { return this_shard::counters().multishot_rearms; }

std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string letters(std::size_t n, std::size_t from = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (from + i) % 26);
  }
  return s;
}

bool send_now(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n =
        ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// A one-shot recv that picks its buffer from a ring: an op of one's own
// that selects from a group.
struct RecvSelect {
  static constexpr uint8_t kOpcode = IORING_OP_RECV;
  int fd;
  BufferRing ring;
  struct Out {
    int res;
    bool buffer_flag;
    ProvidedBuffer buf;
  };
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_recv(&sqe, fd, nullptr,
                       static_cast<unsigned>(ring.buffer_size()), 0);
    sqe.flags |= IOSQE_BUFFER_SELECT;
    sqe.buf_group = ring.group();
  }
  Out complete(const io_uring_cqe& cqe) noexcept {
    return Out{cqe.res, (cqe.flags & IORING_CQE_F_BUFFER) != 0, ring.take(cqe)};
  }
};

// Receives one buffer from `ring` on `fd` (data must be there or coming).
Task<RecvSelect::Out> recv_one(int fd, const BufferRing& ring) {
  RecvSelect op{fd, ring};
  auto out = co_await submit(std::move(op));
  co_return out;
}

// ---------------------------------------------------------------------------
// create()

TEST(BufferRingTest, CreateRejectsInvalidArgumentsWithEinval) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    struct Case {
      unsigned count;
      std::size_t size;
      const char* what;
    };
    const Case bad[] = {
        {0, 64, "count 0"},
        {3, 64, "count not a power of two"},
        {12, 64, "count not a power of two"},
        {32769, 64, "count above 32768"},
        {65536, 64, "count a power of two above 32768"},
        {8, 0, "size 0"},
        {8, BufferRing::kMaxBufferSize + 1, "size above kMaxBufferSize"},
    };
    for (const Case& c : bad) {
      auto r = BufferRing::create(c.count, c.size);
      EXPECT_FALSE(r) << c.what;
      if (r) continue;
      EXPECT_EQ(r.error(), std::errc::invalid_argument) << c.what;
      EXPECT_EQ(r.error().value(), EINVAL) << c.what;
      EXPECT_EQ(r.error().message(), std::strerror(EINVAL)) << c.what;
    }
    // Nothing was registered by the failures: the first good ring gets
    // group 0.
    auto one = BufferRing::create(1, 1);
    EXPECT_TRUE(one) << one.error().message();
    CO_ASSERT_TRUE(one);
    EXPECT_EQ(one->group(), 0u);
    EXPECT_EQ(one->count(), 1u);
    EXPECT_EQ(one->buffer_size(), 1u);
    EXPECT_EQ(one->available(), 1u);
    auto most = BufferRing::create(BufferRing::kMaxCount, 16);
    EXPECT_TRUE(most) << most.error().message();
    CO_ASSERT_TRUE(most);
    EXPECT_EQ(most->count(), 32768u);
    EXPECT_EQ(most->available(), 32768u);
  }());
}

TEST(BufferRingTest, CreateOffAShardThrows) {
  Watchdog watchdog;
  // No runtime at all on this thread.
  EXPECT_THROW((void)BufferRing::create(8, 64), std::logic_error);
}

// ---------------------------------------------------------------------------
// Groups.

Task<void> several_groups() {
  auto r64 = BufferRing::create(4, 64);
  auto r128 = BufferRing::create(8, 128);
  auto r256 = BufferRing::create(2, 256);
  CO_ASSERT_TRUE(r64 && r128 && r256);
  std::vector<BufferRing*> rings = {&*r64, &*r128, &*r256};
  EXPECT_NE(r64->group(), r128->group());
  EXPECT_NE(r64->group(), r256->group());
  EXPECT_NE(r128->group(), r256->group());
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  const std::string data = letters(2000);
  CO_ASSERT_TRUE(send_now(a.fd(), data));
  // A one-shot recv from each group in turn: each fills a buffer of its
  // group's size, and only that group's count goes down.
  std::size_t offset = 0;
  std::vector<ProvidedBuffer> held;
  for (std::size_t i = 0; i < rings.size(); ++i) {
    auto out = co_await recv_one(b.fd(), *rings[i]);
    EXPECT_TRUE(out.buffer_flag);
    EXPECT_EQ(out.res, static_cast<int>(rings[i]->buffer_size()));
    EXPECT_EQ(out.buf.size(), rings[i]->buffer_size());
    EXPECT_EQ(text(out.buf.bytes()), data.substr(offset, out.buf.size()));
    offset += out.buf.size();
    held.push_back(std::move(out.buf));
    for (std::size_t j = 0; j < rings.size(); ++j) {
      EXPECT_EQ(rings[j]->available(), rings[j]->count() - (j <= i ? 1 : 0))
          << "ring " << j << " after a recv from ring " << i;
    }
  }
  held.clear();
  for (BufferRing* r : rings) EXPECT_EQ(r->available(), r->count());
  // A multishot recv on each group, each on its own connection.
  std::vector<std::pair<net::UnixStream, net::UnixStream>> pairs;
  std::vector<MultishotStream<RecvMultishot>> streams;
  for (std::size_t i = 0; i < rings.size(); ++i) {
    auto p = net::UnixStream::pair();
    CO_ASSERT_TRUE(p);
    pairs.push_back(std::move(*p));
    streams.push_back(pairs.back().second.recv_multishot(*rings[i]));
    CO_ASSERT_TRUE(send_now(pairs.back().first.fd(), letters(1000, i)));
  }
  for (std::size_t i = 0; i < rings.size(); ++i) {
    auto item = co_await streams[i].next();
    CO_ASSERT_TRUE(item && *item);
    EXPECT_EQ((*item)->size(), rings[i]->buffer_size());
    EXPECT_EQ(text((*item)->bytes()),
              letters(1000, i).substr(0, rings[i]->buffer_size()));
  }
  streams.clear();
  auto settled = [&rings] {
    if (in_flight() != 0) return false;
    for (BufferRing* r : rings) {
      if (r->available() != r->count()) return false;
    }
    return true;
  };
  const bool idle = co_await eventually(settled);
  EXPECT_TRUE(idle);
}

TEST(BufferRingTest, SeveralGroupsPerShardAreDistinctAndEachWorks) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(several_groups());
}

Task<void> group_reuse() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto made = BufferRing::create(4, 64);
  CO_ASSERT_TRUE(made);
  std::optional<BufferRing> first(std::move(*made));
  const uint16_t g = first->group();
  CO_ASSERT_TRUE(send_now(a.fd(), letters(100)));
  auto out = co_await recv_one(b.fd(), *first);
  CO_ASSERT_TRUE(out.buffer_flag && out.buf.size() == 64u);
  // The ring's last BufferRing goes; its buffer still holds the group.
  first.reset();
  auto second = BufferRing::create(4, 64);
  CO_ASSERT_TRUE(second);
  EXPECT_NE(second->group(), g);
  EXPECT_EQ(text(out.buf.bytes()), letters(64));  // the memory is still there
  // The buffer was the last reference: the group is free again and the
  // next ring gets it, and works.
  out.buf.release();
  auto third = BufferRing::create(2, 32);
  CO_ASSERT_TRUE(third);
  EXPECT_EQ(third->group(), g);
  auto next = co_await recv_one(b.fd(), *third);
  EXPECT_TRUE(next.buffer_flag);
  EXPECT_EQ(text(next.buf.bytes()), letters(100).substr(64, 32));
  // So does a group freed by its last copy.
  const uint16_t g2 = second->group();
  *second = BufferRing();
  auto fourth = BufferRing::create(2, 16);
  CO_ASSERT_TRUE(fourth);
  EXPECT_EQ(fourth->group(), g2);
  auto last = co_await recv_one(b.fd(), *fourth);
  EXPECT_TRUE(last.buffer_flag);
  EXPECT_EQ(text(last.buf.bytes()), letters(100).substr(96, 4));
}

TEST(BufferRingTest, GroupIdsAreReusedOnlyAfterTheLastReferenceIsGone) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(group_reuse());
}

// ---------------------------------------------------------------------------
// take() and ProvidedBuffer.

// take() of a made-up CQE (not in a coroutine: a frame cannot hold an
// io_uring_cqe, whose flexible array member must come last).
ProvidedBuffer take_made_up(BufferRing& ring, int res, unsigned flags) {
  io_uring_cqe cqe{};
  cqe.res = res;
  cqe.flags = flags;
  return ring.take(cqe);
}

TEST(BufferRingTest, TakeOfACqeWithoutABufferGivesAnEmptyBuffer) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto ring = BufferRing::create(4, 64);
    CO_ASSERT_TRUE(ring);
    // Anything but IORING_CQE_F_BUFFER.
    ProvidedBuffer buf = take_made_up(*ring, 42, IORING_CQE_F_MORE);
    EXPECT_TRUE(buf.empty());
    EXPECT_EQ(buf.size(), 0u);
    EXPECT_EQ(buf.data(), nullptr);
    EXPECT_TRUE(buf.bytes().empty());
    EXPECT_EQ(ring->available(), 4u);
    buf.release();
    EXPECT_EQ(ring->available(), 4u);
    // A real CQE without a buffer: a recv that fails before picking one.
    RecvSelect op{-1, *ring};
    auto out = co_await submit(std::move(op));
    EXPECT_EQ(out.res, -EBADF);
    EXPECT_FALSE(out.buffer_flag);
    EXPECT_TRUE(out.buf.empty());
    EXPECT_EQ(out.buf.data(), nullptr);
    EXPECT_EQ(ring->available(), 4u);
  }());
}

Task<void> move_semantics() {
  auto ring = BufferRing::create(4, 64);
  CO_ASSERT_TRUE(ring);
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  CO_ASSERT_TRUE(send_now(a.fd(), letters(200)));
  auto o1 = co_await recv_one(b.fd(), *ring);
  auto o2 = co_await recv_one(b.fd(), *ring);
  CO_ASSERT_TRUE(o1.buffer_flag && o2.buffer_flag);
  EXPECT_NE(o1.buf.id(), o2.buf.id());
  EXPECT_EQ(ring->available(), 2u);

  // Move construction: the source is left empty, nothing goes back.
  std::byte* const p1 = o1.buf.data();
  const uint16_t id1 = o1.buf.id();
  ProvidedBuffer moved(std::move(o1.buf));
  EXPECT_EQ(moved.data(), p1);
  EXPECT_EQ(moved.id(), id1);
  EXPECT_EQ(moved.size(), 64u);
  EXPECT_TRUE(o1.buf.empty());
  EXPECT_EQ(o1.buf.data(), nullptr);
  EXPECT_EQ(ring->available(), 2u);
  o1.buf.release();  // moved-from: nothing to give back
  EXPECT_EQ(ring->available(), 2u);

  // Move assignment onto a held buffer gives the held one back.
  std::byte* const p2 = o2.buf.data();
  moved = std::move(o2.buf);
  EXPECT_EQ(ring->available(), 3u);
  EXPECT_EQ(moved.data(), p2);
  EXPECT_EQ(text(moved.bytes()), letters(200).substr(64, 64));
  EXPECT_TRUE(o2.buf.empty());

  // Self-move keeps the buffer.
  ProvidedBuffer& alias = moved;
  moved = std::move(alias);
  EXPECT_EQ(moved.data(), p2);
  EXPECT_EQ(moved.size(), 64u);
  EXPECT_EQ(ring->available(), 3u);

  // Into a default-constructed one: nothing released.
  ProvidedBuffer target;
  EXPECT_TRUE(target.empty());
  target = std::move(moved);
  EXPECT_EQ(ring->available(), 3u);
  EXPECT_EQ(target.data(), p2);

  // release() is idempotent.
  target.release();
  EXPECT_EQ(ring->available(), 4u);
  EXPECT_TRUE(target.empty());
  EXPECT_EQ(target.data(), nullptr);
  target.release();
  EXPECT_EQ(ring->available(), 4u);
}

TEST(BufferRingTest, ProvidedBufferMovesAndReleaseIsIdempotent) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(move_semantics());
}

Task<void> narrowed_buffers() {
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  CO_ASSERT_TRUE(send_now(a.fd(), letters(64)));
  auto o = co_await recv_one(b.fd(), *ring);
  CO_ASSERT_TRUE(o.buf.size() == 64u);
  std::byte* const start = o.buf.data();
  o.buf.truncate(100);  // longer than it is: no change
  EXPECT_EQ(o.buf.size(), 64u);
  o.buf.truncate(10);
  EXPECT_EQ(text(o.buf.bytes()), letters(10));
  o.buf.consume_front(4);
  EXPECT_EQ(o.buf.data(), start + 4);
  EXPECT_EQ(text(o.buf.bytes()), letters(10).substr(4));
  o.buf.consume_front(100);  // more than is left: empties it
  EXPECT_TRUE(o.buf.empty());
  // An emptied buffer still holds its slot of the ring until released.
  EXPECT_EQ(ring->available(), 1u);
  o.buf.release();
  EXPECT_EQ(ring->available(), 2u);
  // The slot went back whole: the ring can be drained twice more at full
  // size.
  CO_ASSERT_TRUE(send_now(a.fd(), letters(128)));
  auto x = co_await recv_one(b.fd(), *ring);
  auto y = co_await recv_one(b.fd(), *ring);
  EXPECT_EQ(x.buf.size(), 64u);
  EXPECT_EQ(y.buf.size(), 64u);
  EXPECT_EQ(text(x.buf.bytes()) + text(y.buf.bytes()), letters(128));
}

TEST(BufferRingTest, NarrowedBuffersGoBackWhole) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(narrowed_buffers());
}

Task<void> send_a_provided_buffer() {
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  auto in = net::UnixStream::pair();
  auto out = net::UnixStream::pair();
  CO_ASSERT_TRUE(in && out);
  CO_ASSERT_TRUE(send_now(in->first.fd(), letters(50)));
  auto o = co_await recv_one(in->second.fd(), *ring);
  CO_ASSERT_TRUE(o.buf.size() == 50u);
  EXPECT_EQ(ring->available(), 1u);
  // Echo it: the buffer goes into the send and back to the ring after.
  auto r = co_await out->first.send_all(std::move(o.buf));
  EXPECT_TRUE(r.res);
  r.buf.release();
  EXPECT_EQ(ring->available(), 2u);
  std::string got(50, '\0');
  auto rr = co_await out->second.recv_exact(std::move(got));
  EXPECT_TRUE(rr.res);
  EXPECT_EQ(rr.buf, letters(50));
}

TEST(BufferRingTest, AProvidedBufferCanBeSentAsItIs) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(send_a_provided_buffer());
}

// ---------------------------------------------------------------------------
// Other threads.

Task<void> destroyed_on_another_thread() {
  auto ring = BufferRing::create(4, 64);
  CO_ASSERT_TRUE(ring);
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  CO_ASSERT_TRUE(send_now(a.fd(), letters(128)));
  auto o1 = co_await recv_one(b.fd(), *ring);
  auto o2 = co_await recv_one(b.fd(), *ring);
  CO_ASSERT_TRUE(o1.buffer_flag && o2.buffer_flag);
  EXPECT_EQ(ring->available(), 2u);
  // One by its destructor, one by release() (twice) on other threads; each
  // goes back to the ring by a message to this shard.
  std::thread t1([buf = std::move(o1.buf)] {});
  t1.join();
  std::thread t2([buf = std::move(o2.buf)]() mutable {
    buf.release();
    buf.release();
  });
  t2.join();
  auto all_back = [&ring] { return ring->available() == 4; };
  const bool back = co_await eventually(all_back);
  EXPECT_TRUE(back);
  // Both slots work again.
  CO_ASSERT_TRUE(send_now(a.fd(), letters(256)));
  std::string got;
  std::vector<ProvidedBuffer> held;
  for (int i = 0; i < 4; ++i) {
    auto o = co_await recv_one(b.fd(), *ring);
    CO_ASSERT_TRUE(o.buf.size() == 64u);
    got += text(o.buf.bytes());
    held.push_back(std::move(o.buf));
  }
  EXPECT_EQ(got, letters(256));
  EXPECT_EQ(ring->available(), 0u);
}

TEST(BufferRingTest, ABufferDestroyedOnAnotherThreadReturnsToItsRing) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(destroyed_on_another_thread());
}

Task<void> foreign_release_rearms() {
  auto ring = BufferRing::create(1, 64);
  CO_ASSERT_TRUE(ring);
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  const std::string data = letters(200);
  CO_ASSERT_TRUE(send_now(a.fd(), data));
  auto stream = b.recv_multishot(*ring);
  auto first = co_await stream.next();
  CO_ASSERT_TRUE(first && *first);
  EXPECT_EQ(text((*first)->bytes()), data.substr(0, 64));
  // The only buffer is held: the kernel ends the op with ENOBUFS and the
  // stream parks, waiting for the buffer.
  auto parked = [] { return in_flight() == 0; };
  const bool is_parked = co_await eventually(parked);
  CO_ASSERT_TRUE(is_parked);
  const uint64_t rearms_before = rearms();
  std::thread t([buf = std::move(**first)] {});
  t.join();
  // The message brings the buffer back, which re-arms the stream.
  std::string got = data.substr(0, 64);
  while (got.size() < data.size()) {
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    got += text((*item)->bytes());
  }
  EXPECT_EQ(got, data);
  EXPECT_GT(rearms(), rearms_before);
  stream.cancel();
  while (auto item = co_await stream.next()) {
  }
  EXPECT_EQ(ring->available(), 1u);
}

TEST(BufferRingTest, ABufferReleasedOnAnotherThreadRearmsAParkedStream) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(foreign_release_rearms());
}

// ---------------------------------------------------------------------------
// Copies.

Task<void> copies_share_state() {
  BufferRing none;
  EXPECT_FALSE(none);
  auto made = BufferRing::create(4, 64);
  CO_ASSERT_TRUE(made);
  BufferRing ring = *made;
  BufferRing copy = ring;
  EXPECT_TRUE(copy);
  EXPECT_EQ(copy.group(), ring.group());
  EXPECT_EQ(copy.count(), 4u);
  EXPECT_EQ(copy.buffer_size(), 64u);
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  CO_ASSERT_TRUE(send_now(a.fd(), letters(128)));
  // A buffer taken through one copy shows in every copy.
  auto o = co_await recv_one(b.fd(), copy);
  CO_ASSERT_TRUE(o.buffer_flag);
  EXPECT_EQ(ring.available(), 3u);
  EXPECT_EQ(copy.available(), 3u);
  EXPECT_EQ(made->available(), 3u);
  // Copy assignment, self-assignment, moves.
  BufferRing assigned;
  assigned = copy;
  EXPECT_EQ(assigned.group(), ring.group());
  BufferRing& self = assigned;
  assigned = self;
  EXPECT_TRUE(assigned);
  EXPECT_EQ(assigned.available(), 3u);
  BufferRing moved = std::move(copy);
  EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(moved.group(), ring.group());
  BufferRing move_assigned;
  move_assigned = std::move(moved);
  EXPECT_FALSE(moved);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(move_assigned.available(), 3u);
  // Dropping copies frees nothing while one is left.
  const uint16_t g = ring.group();
  ring = BufferRing();
  assigned = BufferRing();
  *made = BufferRing();
  EXPECT_EQ(move_assigned.group(), g);
  auto other = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(other);
  EXPECT_NE(other->group(), g);
  o.buf.release();
  EXPECT_EQ(move_assigned.available(), 4u);
  auto o2 = co_await recv_one(b.fd(), move_assigned);
  EXPECT_EQ(text(o2.buf.bytes()), letters(128).substr(64));
}

TEST(BufferRingTest, CopiesShareOneRing) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(copies_share_state());
}

// ---------------------------------------------------------------------------
// Idle receivers.

Task<void> idle_connections() {
  constexpr unsigned kCount = 16;
  constexpr int kConns = 100;
  auto ring = BufferRing::create(kCount, 256);
  CO_ASSERT_TRUE(ring);
  std::vector<std::pair<net::UnixStream, net::UnixStream>> pairs;
  std::vector<MultishotStream<RecvMultishot>> streams;
  const uint64_t sqes_before = this_shard::counters().sqes_submitted;
  for (int i = 0; i < kConns; ++i) {
    auto p = net::UnixStream::pair();
    CO_ASSERT_TRUE(p);
    pairs.push_back(std::move(*p));
    streams.push_back(pairs.back().second.recv_multishot(*ring));
  }
  // Wait until all 100 receives are in the kernel.
  auto armed = [sqes_before] {
    return this_shard::counters().sqes_submitted - sqes_before >= kConns;
  };
  const bool submitted = co_await eventually(armed);
  CO_ASSERT_TRUE(submitted);
  co_await this_shard::yield();
  EXPECT_EQ(in_flight(), uint64_t{kConns});
  EXPECT_EQ(ring->available(), kCount);
  for (const auto& s : streams) EXPECT_EQ(s.ready(), 0u);
  // The kernel keeps no buffer for them either: 16 connections that get a
  // byte each get all 16 buffers, without a single ENOBUFS.
  const uint64_t rearms_before = rearms();
  std::vector<ProvidedBuffer> held;
  for (unsigned i = 0; i < kCount; ++i) {
    const int c = static_cast<int>(i) * 6;  // spread over the 100
    CO_ASSERT_TRUE(send_now(pairs[c].first.fd(), letters(1, i)));
    auto item = co_await streams[c].next();
    CO_ASSERT_TRUE(item && *item);
    EXPECT_EQ(text((*item)->bytes()), letters(1, i));
    held.push_back(std::move(**item));
  }
  EXPECT_EQ(ring->available(), 0u);
  EXPECT_EQ(rearms(), rearms_before);
  EXPECT_EQ(in_flight(), uint64_t{kConns});
  // Two more connections with data find the ring dry and wait; each buffer
  // that comes back serves one of them.
  CO_ASSERT_TRUE(send_now(pairs[1].first.fd(), "x"));
  CO_ASSERT_TRUE(send_now(pairs[2].first.fd(), "y"));
  auto both_parked = [] { return in_flight() == uint64_t{kConns} - 2; };
  const bool parked = co_await eventually(both_parked);
  EXPECT_TRUE(parked);
  EXPECT_EQ(streams[1].ready() + streams[2].ready(), 0u);
  held.pop_back();
  auto one_served = [&streams] {
    return streams[1].ready() + streams[2].ready() == 1;
  };
  const bool served1 = co_await eventually(one_served);
  EXPECT_TRUE(served1);
  held.pop_back();
  auto two_served = [&streams] {
    return streams[1].ready() + streams[2].ready() == 2;
  };
  const bool served2 = co_await eventually(two_served);
  EXPECT_TRUE(served2);
  auto x = co_await streams[1].next();
  auto y = co_await streams[2].next();
  CO_ASSERT_TRUE(x && *x && y && *y);
  EXPECT_EQ(text((*x)->bytes()), "x");
  EXPECT_EQ(text((*y)->bytes()), "y");
  EXPECT_GT(rearms(), rearms_before);
  x.reset();
  y.reset();
  held.clear();
  EXPECT_EQ(ring->available(), kCount);
  streams.clear();
  auto settled = [&ring] {
    return in_flight() == 0 && ring->available() == kCount;
  };
  const bool idle = co_await eventually(settled);
  EXPECT_TRUE(idle);
}

TEST(BufferRingTest, IdleConnectionsHoldNoBuffer) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(idle_connections());
}

// ---------------------------------------------------------------------------
// A buffer that outlives its shard's loop.

#if defined(ABSL_HAVE_LEAK_SANITIZER)

Task<void> take_one(ProvidedBuffer* out) {
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  CO_ASSERT_TRUE(send_now(pair->first.fd(), letters(10)));
  auto o = co_await recv_one(pair->second.fd(), *ring);
  CO_ASSERT_TRUE(o.buffer_flag);
  *out = std::move(o.buf);  // the last reference to the ring from here on
}
#endif  // ABSL_HAVE_LEAK_SANITIZER

// buffer_ring.h: "The ring's memory lives until the last BufferRing copy,
// ProvidedBuffer and op using it are gone", and a ProvidedBuffer may be
// destroyed on another thread. When that happens after the runtime has
// stopped, the message that would give the buffer back is dropped by the
// closed inbox, and with it the ring's last reference: the ring state and
// its two mappings leak. Only LeakSanitizer can see it from here.
TEST(BufferRingTest, ABufferDroppedAfterTheRuntimeStoppedFreesItsRing) {
#if !defined(ABSL_HAVE_LEAK_SANITIZER)
  GTEST_SKIP() << "needs LeakSanitizer to observe the ring's memory";
#else
  Watchdog watchdog;
  ProvidedBuffer kept;
  {
    Runtime rt(RuntimeOptions{.shards = 1});
    rt.block_on(take_one(&kept));
    ASSERT_EQ(kept.size(), 10u);
    rt.stop();
    kept = ProvidedBuffer();  // off-shard, after the shard's loop ended
  }
  EXPECT_EQ(__lsan_do_recoverable_leak_check(), 0)
      << "the ring of a ProvidedBuffer dropped after Runtime::stop() leaked";
#endif
}

}  // namespace
}  // namespace shardio
