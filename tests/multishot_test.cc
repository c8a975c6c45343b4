// Tests for multishot streams (multishot.h) and the multishot network ops
// (ops/net.h): multishot accept, recv and recvmsg over loopback, poll,
// re-arm after the buffer ring runs dry (byte-exact over many megabytes),
// cancellation by cancel(), by a stop token from another thread and by
// dropping the stream or its task, ops of one's own with on_end() policies,
// and zero-copy send's notification.
//
// Every wait is bounded: a Watchdog aborts a test that hangs, and loops that
// wait for the shard to reach a state give up after kPatience (the test then
// fails on its expectations). Nothing sleeps and hopes.
#include "shardio/multishot.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/buffer_ring.h"
#include "shardio/cross_shard.h"
#include "shardio/net.h"
#include "shardio/ops/net.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Watchdog;

static_assert(MultishotOperation<AcceptMultishot>);
static_assert(MultishotOperation<RecvMultishot>);
static_assert(MultishotOperation<RecvMsgMultishot>);
static_assert(MultishotOperation<PollMultishot>);
static_assert(!MultishotOperation<Accept>);
static_assert(!MultishotOperation<PollAdd>);

using std::chrono::steady_clock;

// How long a loop waiting for the shard to reach some state keeps trying.
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

// Yields until the shard has no op in flight (see eventually()).
Task<bool> no_op_in_flight() {
  auto idle = [] { return in_flight() == 0; };
  co_return co_await eventually(idle);
}

// Open descriptors of the process (the directory's own fd included, the
// same way every time).
int count_open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

// The byte at stream offset i of the test pattern: not periodic, so a lost,
// repeated or reordered chunk shows up at its first byte.
inline std::byte pattern_at(uint64_t i) {
  uint64_t w = (i >> 3) * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  w ^= w >> 29;
  return static_cast<std::byte>(w >> ((i & 7) * 8));
}

void fill_pattern(uint64_t offset, std::span<std::byte> out) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern_at(offset + i);
}

std::vector<std::byte> pattern(uint64_t offset, std::size_t n) {
  std::vector<std::byte> v(n);
  fill_pattern(offset, v);
  return v;
}

bool matches_pattern(uint64_t offset, std::span<const std::byte> bytes) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != pattern_at(offset + i)) return false;
  }
  return true;
}

// Sends all of `bytes` with blocking send(2) (for set-up before a stream is
// armed; the data fits in the socket buffer).
bool send_now(int fd, std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Takes every item until the stream ends.
template <class Op>
Task<std::vector<typename MultishotStream<Op>::Item>> drain(
    MultishotStream<Op>& stream) {
  std::vector<typename MultishotStream<Op>::Item> items;
  while (auto item = co_await stream.next()) items.push_back(std::move(*item));
  co_return items;
}

template <class T>
int error_of(const Result<T>& r) {
  return r ? 0 : r.error().value();
}

// ---------------------------------------------------------------------------
// Multishot accept.

TEST(MultishotTest, AcceptsManyConnectionsFromOneSubmission) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto listener =
        net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    CO_ASSERT_TRUE(listener);
    auto addr = listener->local_address();
    CO_ASSERT_TRUE(addr);
    auto conns = listener->accept();
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    std::vector<net::TcpStream> clients;
    constexpr int kConns = 50;
    for (int i = 0; i < kConns; ++i) {
      auto c = co_await net::TcpStream::connect(*addr);
      CO_ASSERT_TRUE(c);
      clients.push_back(std::move(*c));
    }
    int accepted = 0;
    while (accepted < kConns) {
      auto item = co_await conns.next();
      CO_ASSERT_TRUE(item.has_value());
      EXPECT_TRUE(*item) << item->error().message();
      CO_ASSERT_TRUE(*item);
      EXPECT_TRUE((*item)->valid());
      ++accepted;
    }
    // 50 sockets + 50 connects, plus the accept itself (queued before) and
    // the runtime's own wake-up read: one accept SQE served 50 connections.
    EXPECT_LE(this_shard::counters().sqes_submitted - sqes_before,
              uint64_t{2 * kConns + 2});
    EXPECT_EQ(this_shard::counters().multishot_rearms, 0u);
    conns.cancel();
    auto last = co_await conns.next();
    CO_ASSERT_TRUE(last.has_value());
    EXPECT_FALSE(*last);
    EXPECT_EQ(error_of(*last), ECANCELED);
    EXPECT_FALSE((co_await conns.next()).has_value());
    EXPECT_TRUE(conns.ended());
  }());
}

Task<void> accept_200_then_shut_down_the_listener() {
  auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  CO_ASSERT_TRUE(listener);
  auto addr = listener->local_address();
  CO_ASSERT_TRUE(addr);
  auto conns = listener->accept();
  const uint64_t sqes_before = this_shard::counters().sqes_submitted;
  constexpr int kConns = 200;
  std::vector<net::TcpStream> clients;
  std::set<uint16_t> client_ports;
  for (int i = 0; i < kConns; ++i) {
    auto c = co_await net::TcpStream::connect(*addr);
    CO_ASSERT_TRUE(c);
    auto local = c->local_address();
    CO_ASSERT_TRUE(local);
    client_ports.insert(local->port());
    clients.push_back(std::move(*c));
  }
  CO_ASSERT_TRUE(client_ports.size() == kConns);
  std::vector<OwnedFd> accepted;
  while (accepted.size() < kConns) {
    auto item = co_await conns.next();
    CO_ASSERT_TRUE(item.has_value());
    EXPECT_TRUE(*item) << item->error().message();
    CO_ASSERT_TRUE(*item);
    accepted.push_back(std::move(**item));
  }
  // One accept SQE served all of them: 200 sockets + 200 connects, the
  // accept and the runtime's wake-up read at most.
  EXPECT_LE(this_shard::counters().sqes_submitted - sqes_before,
            uint64_t{2 * kConns + 2});
  // Each accepted fd is a distinct open socket (close-on-exec, as every fd
  // shardio creates) whose peer is one of the clients.
  for (const OwnedFd& fd : accepted) {
    const int fl = ::fcntl(fd.get(), F_GETFD);
    EXPECT_NE(fl, -1);
    EXPECT_TRUE(fl & FD_CLOEXEC);
    auto peer = net::SocketAddress::peer_of(fd.get());
    CO_ASSERT_TRUE(peer);
    EXPECT_EQ(client_ports.erase(peer->port()), 1u) << peer->to_string();
  }
  EXPECT_TRUE(client_ports.empty());
  EXPECT_EQ(conns.ready(), 0u);
  EXPECT_FALSE(conns.ended());
  // Closing the listener with close(2) would not reach the request (the
  // ring holds its own reference to the file); shutdown(2) stops the
  // listening socket and the kernel ends the accept with an error.
  CO_ASSERT_TRUE(::shutdown(listener->fd(), SHUT_RDWR) == 0);
  auto last = co_await conns.next();
  CO_ASSERT_TRUE(last.has_value());
  EXPECT_FALSE(*last) << "an fd after the listener was shut down";
  if (!*last) {
    EXPECT_NE(last->error().value(), ECANCELED) << "ended by the kernel";
  }
  EXPECT_FALSE((co_await conns.next()).has_value());
  EXPECT_TRUE(conns.ended());
  const bool idle = co_await no_op_in_flight();
  EXPECT_TRUE(idle);
}

TEST(MultishotTest, Accepts200ConnectionsAndEndsWhenTheListenerIsShutDown) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(accept_200_then_shut_down_the_listener());
}

// Closing the listener (SocketBase::close(), on the ring) should end the
// accept stream armed on it. It does not today: the armed request holds its
// own reference to the socket, so after close() the socket keeps listening,
// the stream keeps accepting, and a re-arm would use the stale fd number.
Task<void> close_the_listener() {
  auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  CO_ASSERT_TRUE(listener);
  auto addr = listener->local_address();
  CO_ASSERT_TRUE(addr);
  auto conns = listener->accept();
  auto first = co_await net::TcpStream::connect(*addr);
  CO_ASSERT_TRUE(first);
  auto item = co_await conns.next();
  CO_ASSERT_TRUE(item && *item);
  auto closed = co_await listener->close();
  EXPECT_TRUE(closed);
  // Bounded either way: a listener that still listens accepts this one.
  const std::chrono::nanoseconds limit = std::chrono::seconds(5);
  auto late = co_await net::TcpStream::connect(*addr, limit);
  EXPECT_FALSE(late) << "a connection to a closed listener succeeded";
  auto last = co_await conns.next();
  CO_ASSERT_TRUE(last.has_value());
  EXPECT_FALSE(*last) << "the accept stream of a closed listener yielded a "
                         "connection";
  conns.cancel();
  auto rest = co_await drain(conns);
  (void)rest;
}

TEST(MultishotTest, ClosingTheListenerEndsItsAcceptStream) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(close_the_listener());
}

Task<void> drop_accept_stream_with_queued_fds(int base_fds) {
  {
    auto listener =
        net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    CO_ASSERT_TRUE(listener);
    auto addr = listener->local_address();
    CO_ASSERT_TRUE(addr);
    auto conns = listener->accept();
    constexpr int kConns = 20;
    constexpr int kTaken = 5;
    std::vector<net::TcpStream> clients;
    for (int i = 0; i < kConns; ++i) {
      auto c = co_await net::TcpStream::connect(*addr);
      CO_ASSERT_TRUE(c);
      clients.push_back(std::move(*c));
    }
    auto all_queued = [&conns] { return conns.ready() == kConns; };
    const bool queued = co_await eventually(all_queued);
    CO_ASSERT_TRUE(queued);
    // listener + clients + accepted connections waiting in the stream.
    EXPECT_EQ(count_open_fds(), base_fds + 1 + 2 * kConns);
    std::vector<OwnedFd> taken;
    for (int i = 0; i < kTaken; ++i) {
      auto item = co_await conns.next();
      CO_ASSERT_TRUE(item && *item);
      taken.push_back(std::move(**item));
    }
    const uint64_t orphaned_before = this_shard::counters().ops_orphaned;
    {
      auto dropped = std::move(conns);  // 15 fds still queued, op in flight
    }
    EXPECT_EQ(this_shard::counters().ops_orphaned, orphaned_before + 1);
    // The queued fds were closed with the stream; the taken ones are ours.
    EXPECT_EQ(count_open_fds(), base_fds + 1 + kConns + kTaken);
    for (const OwnedFd& fd : taken) EXPECT_NE(::fcntl(fd.get(), F_GETFD), -1);
    const bool idle = co_await no_op_in_flight();
    EXPECT_TRUE(idle);
    // A connection made now is not swallowed by the cancelled accept: a
    // plain accept gets it.
    auto late = co_await net::TcpStream::connect(*addr);
    CO_ASSERT_TRUE(late);
    auto one = co_await listener->accept_one();
    EXPECT_TRUE(one) << (one ? "" : one.error().message());
  }
  EXPECT_EQ(count_open_fds(), base_fds);
}

TEST(MultishotTest, DroppingAnAcceptStreamClosesTheQueuedFds) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  const int base = count_open_fds();
  ASSERT_GT(base, 0);
  rt.block_on(drop_accept_stream_with_queued_fds(base));
}

// ---------------------------------------------------------------------------
// Multishot recv with a buffer ring.

TEST(MultishotTest, RecvRearmsWhenTheBufferRingRunsDry) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto pair = net::UnixStream::pair();
    CO_ASSERT_TRUE(pair);
    auto& [a, b] = *pair;
    auto ring = BufferRing::create(4, 64);
    EXPECT_TRUE(ring) << ring.error().message();
    CO_ASSERT_TRUE(ring);
    auto stream = b.recv_multishot(*ring);
    // 64 KiB through 4 buffers of 64 bytes: the ring runs dry many times.
    constexpr std::size_t kTotal = 64 * 1024;
    std::string data(kTotal, '\0');
    for (std::size_t i = 0; i < kTotal; ++i) {
      data[i] = static_cast<char>(i * 31 + i / 256);
    }
    std::string copy = data;
    auto writer = spawn([](net::UnixStream& s, std::string d) -> Task<void> {
      auto r = co_await s.send_all(std::move(d));
      EXPECT_TRUE(r.res);
      auto sh = co_await s.shutdown();
      EXPECT_TRUE(sh);
    }(a, std::move(copy)));
    std::string got;
    std::vector<ProvidedBuffer> held;
    for (;;) {
      auto item = co_await stream.next();
      EXPECT_TRUE(item.has_value());
      if (!item) break;
      EXPECT_TRUE(*item) << item->error().message();
      if (!*item) break;
      if ((*item)->empty()) break;  // EOF
      got.append(reinterpret_cast<const char*>((*item)->data()),
                 (*item)->size());
      // Hold up to 4 buffers (the whole ring) before giving them back.
      held.push_back(std::move(**item));
      if (held.size() == 4) {
        co_await this_shard::yield();
        held.clear();
      }
    }
    held.clear();
    co_await std::move(writer);
    EXPECT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data);
    EXPECT_GT(this_shard::counters().multishot_rearms, 0u);
    EXPECT_EQ(ring->available(), 4u);
  }());
}

// How many bytes the integrity tests push through an 8 x 4 KiB ring: 100 MiB
// in a plain build; the sanitizer builds (slower per byte checked and per
// CQE) get fewer, 64 MiB under ASan and 32 MiB under TSan, so that each test
// stays well under a few seconds there.
#if defined(ABSL_HAVE_THREAD_SANITIZER)
constexpr uint64_t kIntegrityBytes = uint64_t{32} << 20;
#elif defined(ABSL_HAVE_ADDRESS_SANITIZER)
constexpr uint64_t kIntegrityBytes = uint64_t{64} << 20;
#else
constexpr uint64_t kIntegrityBytes = uint64_t{100} << 20;
#endif
constexpr unsigned kRingCount = 8;
constexpr std::size_t kRingBufferSize = 4096;
constexpr std::size_t kWriteChunk = 256 * 1024;

struct ReadReport {
  uint64_t bytes = 0;
  uint64_t items = 0;
  bool eof = false;
  bool mismatch = false;
  uint64_t first_mismatch = 0;
  bool parked_when_dry = false;  // the stream left the kernel on ENOBUFS
  int error = 0;
};

// Reads `stream` to its end, checking every byte against the pattern. The
// reader holds 1, 2, ..., count buffers in turn before giving them back, so
// the ring runs dry once a cycle; the first time, it waits until the stream
// has parked (the kernel ended it with ENOBUFS and it waits for a buffer:
// the shard then has no op in flight; the writer is elsewhere and has more
// to send than the ring holds, so that end must come).
Task<ReadReport> read_and_verify(MultishotStream<RecvMultishot>& stream,
                                 const BufferRing& ring) {
  ReadReport rep;
  std::vector<ProvidedBuffer> held;
  unsigned hold_target = 1;
  bool waited_for_park = false;
  while (auto item = co_await stream.next()) {
    if (!*item) {
      rep.error = item->error().value();
      break;
    }
    ProvidedBuffer buf = std::move(**item);
    if (buf.empty()) {
      rep.eof = true;
      continue;  // the stream ends after this item
    }
    ++rep.items;
    if (!rep.mismatch && !matches_pattern(rep.bytes, buf.bytes())) {
      rep.mismatch = true;
      for (std::size_t i = 0; i < buf.size(); ++i) {
        if (buf.bytes()[i] != pattern_at(rep.bytes + i)) {
          rep.first_mismatch = rep.bytes + i;
          break;
        }
      }
    }
    rep.bytes += buf.size();
    held.push_back(std::move(buf));
    if (held.size() < hold_target) continue;
    if (hold_target == ring.count()) {
      EXPECT_EQ(ring.available(), 0u);
      if (!waited_for_park) {
        waited_for_park = true;
        rep.parked_when_dry = co_await no_op_in_flight();
      } else {
        co_await this_shard::yield();
      }
    }
    held.clear();
    hold_target = hold_target % ring.count() + 1;
  }
  co_return rep;
}

void expect_intact(const ReadReport& rep, uint64_t total) {
  EXPECT_EQ(rep.error, 0) << std::strerror(rep.error);
  EXPECT_TRUE(rep.eof);
  EXPECT_EQ(rep.bytes, total);
  EXPECT_FALSE(rep.mismatch)
      << "first wrong byte at offset " << rep.first_mismatch;
  EXPECT_TRUE(rep.parked_when_dry)
      << "the stream never left the kernel with the ring dry";
  EXPECT_GE(rep.items, total / kRingBufferSize);
}

// The writer on shard 1: the pattern in kWriteChunk pieces with send_all,
// then FIN. Returns the bytes sent.
Task<uint64_t> write_pattern(net::TcpStream s, uint64_t total) {
  std::vector<std::byte> chunk(kWriteChunk);
  uint64_t sent = 0;
  while (sent < total) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<uint64_t>(kWriteChunk, total - sent));
    chunk.resize(n);
    fill_pattern(sent, chunk);
    auto r = co_await s.send_all(std::move(chunk));
    chunk = std::move(r.buf);
    if (!r.res) {
      ADD_FAILURE() << r.res.error().message();
      co_return sent;
    }
    sent += *r.res;
  }
  auto sh = co_await s.shutdown(SHUT_WR);
  EXPECT_TRUE(sh);
  co_return sent;
}

Task<void> tcp_integrity() {
  auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  CO_ASSERT_TRUE(listener);
  auto addr = listener->local_address();
  CO_ASSERT_TRUE(addr);
  auto client = co_await net::TcpStream::connect(*addr);
  CO_ASSERT_TRUE(client);
  auto server = co_await listener->accept_one();
  CO_ASSERT_TRUE(server);
  auto ring = BufferRing::create(kRingCount, kRingBufferSize);
  EXPECT_TRUE(ring) << ring.error().message();
  CO_ASSERT_TRUE(ring);
  const uint64_t rearms_before = rearms();
  auto stream = server->recv_multishot(*ring);
  auto write = [s = std::move(*client)]() mutable {
    return write_pattern(std::move(s), kIntegrityBytes);
  };
  auto writer = spawn_on(1, std::move(write));
  ReadReport rep = co_await read_and_verify(stream, *ring);
  if (!rep.eof) (void)::shutdown(server->fd(), SHUT_RDWR);  // free the writer
  const uint64_t sent = co_await std::move(writer);
  EXPECT_EQ(sent, kIntegrityBytes);
  expect_intact(rep, kIntegrityBytes);
  EXPECT_TRUE(stream.ended());
  EXPECT_GT(rearms() - rearms_before, 0u);
  EXPECT_EQ(ring->available(), ring->count());
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, RecvOverTcpIsByteExactAcrossRingExhaustionAndRearm) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2});
  rt.block_on(tcp_integrity());
}

Task<void> socketpair_integrity() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(kRingCount, kRingBufferSize);
  CO_ASSERT_TRUE(ring);
  const uint64_t rearms_before = rearms();
  auto stream = b.recv_multishot(*ring);
  // The writer is a plain thread with blocking send(2).
  const int wfd = a.fd();
  uint64_t sent = 0;
  std::thread writer([wfd, &sent] {
    std::vector<std::byte> chunk(kWriteChunk);
    while (sent < kIntegrityBytes) {
      const std::size_t n = static_cast<std::size_t>(
          std::min<uint64_t>(kWriteChunk, kIntegrityBytes - sent));
      fill_pattern(sent, std::span(chunk.data(), n));
      std::size_t off = 0;
      while (off < n) {
        const ssize_t r =
            ::send(wfd, chunk.data() + off, n - off, MSG_NOSIGNAL);
        if (r <= 0) return;
        off += static_cast<std::size_t>(r);
      }
      sent += n;
    }
    ::shutdown(wfd, SHUT_WR);
  });
  ReadReport rep = co_await read_and_verify(stream, *ring);
  // Unblocks the writer should the reader have stopped early.
  (void)::shutdown(b.fd(), SHUT_RDWR);
  writer.join();
  EXPECT_EQ(sent, kIntegrityBytes);
  expect_intact(rep, kIntegrityBytes);
  EXPECT_TRUE(stream.ended());
  EXPECT_GT(rearms() - rearms_before, 0u);
  EXPECT_EQ(ring->available(), ring->count());
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, RecvOverSocketpairIsByteExactAcrossRingExhaustionAndRearm) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(socketpair_integrity());
}

Task<void> recv_without_rearm() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  // More than the ring holds is already there when the op is armed.
  CO_ASSERT_TRUE(send_now(a.fd(), pattern(0, 1000)));
  const uint64_t rearms_before = rearms();
  auto stream = b.recv_multishot(*ring, MultishotOptions{.rearm = false});
  // The items are kept, so the ring stays dry: two full buffers, then the
  // kernel's -ENOBUFS ends the stream.
  auto items = co_await drain(stream);
  CO_ASSERT_TRUE(items.size() == 3u);
  for (int i = 0; i < 2; ++i) {
    CO_ASSERT_TRUE(items[i]);
    EXPECT_EQ(items[i]->size(), 64u);
    EXPECT_TRUE(matches_pattern(64 * i, items[i]->bytes()));
  }
  EXPECT_FALSE(items[2]);
  EXPECT_EQ(error_of(items[2]), ENOBUFS);
  EXPECT_TRUE(stream.ended());
  EXPECT_EQ(rearms(), rearms_before);
  EXPECT_EQ(in_flight(), 0u);
  EXPECT_EQ(ring->available(), 0u);
  items.clear();
  EXPECT_EQ(ring->available(), 2u);
  // Nothing re-arms when the buffers come back.
  co_await this_shard::yield();
  EXPECT_EQ(rearms(), rearms_before);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, WithoutRearmTheStreamEndsWithEnobufsWhenTheRingIsDry) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(recv_without_rearm());
}

// ---------------------------------------------------------------------------
// Cancellation.

Task<std::vector<Result<ProvidedBuffer>>> consume(
    MultishotStream<RecvMultishot>* stream, bool* waiting) {
  *waiting = true;  // next() below suspends at once: nothing was sent
  auto items = co_await drain(*stream);
  co_return items;
}

Task<void> cancel_a_waiting_next() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(4, 256);
  CO_ASSERT_TRUE(ring);
  auto stream = b.recv_multishot(*ring);
  bool waiting = false;
  auto consumer = spawn(consume(&stream, &waiting));
  auto is_waiting = [&waiting] { return waiting; };
  const bool started = co_await eventually(is_waiting);
  CO_ASSERT_TRUE(started);
  EXPECT_EQ(in_flight(), 1u);
  stream.cancel();
  stream.cancel();  // twice: nothing more
  auto items = co_await std::move(consumer);
  CO_ASSERT_TRUE(items.size() == 1u);
  EXPECT_FALSE(items[0]);
  EXPECT_EQ(error_of(items[0]), ECANCELED);
  EXPECT_TRUE(stream.ended());
  EXPECT_FALSE((co_await stream.next()).has_value());
  EXPECT_EQ(in_flight(), 0u);
  EXPECT_EQ(ring->available(), 4u);
}

TEST(MultishotTest, CancelWhileNextWaitsEndsWithEcanceledThenNullopt) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(cancel_a_waiting_next());
}

Task<void> stop_from_another_thread() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(4, 256);
  CO_ASSERT_TRUE(ring);
  std::stop_source src;
  auto stream = b.recv_multishot(*ring, {}, src.get_token());
  // One item first, so the stream is known to be running.
  CO_ASSERT_TRUE(send_now(a.fd(), pattern(0, 100)));
  auto first = co_await stream.next();
  CO_ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->size(), 100u);
  absl::Notification go;
  std::jthread stopper([&go, &src] {
    go.WaitForNotification();
    src.request_stop();
  });
  go.Notify();
  auto rest = co_await drain(stream);  // waits in next() for the stop
  CO_ASSERT_TRUE(rest.size() == 1u);
  EXPECT_EQ(error_of(rest[0]), ECANCELED);
  EXPECT_TRUE(stream.ended());
  stopper.join();
  EXPECT_EQ(in_flight(), 0u);
  first.reset();
  EXPECT_EQ(ring->available(), 4u);
}

TEST(MultishotTest, StopRequestedFromAnotherThreadEndsTheStream) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(stop_from_another_thread());
}

Task<void> stop_already_requested() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(4, 256);
  CO_ASSERT_TRUE(ring);
  std::stop_source src;
  src.request_stop();
  auto stream = b.recv_multishot(*ring, {}, src.get_token());
  auto items = co_await drain(stream);
  CO_ASSERT_TRUE(items.size() == 1u);
  EXPECT_EQ(error_of(items[0]), ECANCELED);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, StopAlreadyRequestedEndsTheStreamAtOnce) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(stop_already_requested());
}

// Arms a recv on a 2 x 64 ring with 1000 bytes waiting and keeps both
// buffers: the kernel ends the op with ENOBUFS and the stream parks (no op
// in flight) until a buffer comes back.
struct Parked {
  std::optional<MultishotStream<RecvMultishot>> stream;
  std::vector<ProvidedBuffer> held;
};

Task<bool> park_a_stream(Parked& p, net::UnixStream& a, net::UnixStream& b,
                         const BufferRing& ring) {
  if (!send_now(a.fd(), pattern(0, 1000))) co_return false;
  p.stream.emplace(b.recv_multishot(ring));
  for (int i = 0; i < 2; ++i) {
    auto item = co_await p.stream->next();
    if (!item || !*item) co_return false;
    p.held.push_back(std::move(**item));
  }
  const bool parked = co_await no_op_in_flight();
  co_return parked && !p.stream->ended() && ring.available() == 0;
}

Task<void> cancel_while_parked() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  Parked p;
  const bool parked = co_await park_a_stream(p, a, b, *ring);
  CO_ASSERT_TRUE(parked);
  const uint64_t rearms_before = rearms();
  p.stream->cancel();
  // Not in the kernel: no -ECANCELED CQE, the stream just ends.
  EXPECT_TRUE(p.stream->ended());
  EXPECT_FALSE((co_await p.stream->next()).has_value());
  // The buffers coming back do not wake the cancelled op.
  p.held.clear();
  EXPECT_EQ(ring->available(), 2u);
  co_await this_shard::yield();
  EXPECT_EQ(rearms(), rearms_before);
  EXPECT_EQ(in_flight(), 0u);
  p.stream.reset();
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, CancelWhileParkedForABufferEndsWithNullopt) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(cancel_while_parked());
}

Task<void> destroy_while_parked() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(2, 64);
  CO_ASSERT_TRUE(ring);
  Parked p;
  const bool parked = co_await park_a_stream(p, a, b, *ring);
  CO_ASSERT_TRUE(parked);
  const uint64_t rearms_before = rearms();
  p.stream.reset();  // the record goes back to the pool now
  // The ring still remembers the waiting stream; its buffers coming back
  // must not re-arm a record that is gone (ASan: no use after free).
  p.held.clear();
  EXPECT_EQ(ring->available(), 2u);
  co_await this_shard::yield();
  EXPECT_EQ(rearms(), rearms_before);
  EXPECT_EQ(in_flight(), 0u);
  // The data the dead stream did not read is still in the socket.
  auto again = b.recv_multishot(*ring);
  auto item = co_await again.next();
  CO_ASSERT_TRUE(item && *item);
  EXPECT_EQ((*item)->size(), 64u);
  EXPECT_TRUE(matches_pattern(128, (*item)->bytes()));
}

TEST(MultishotTest, DestroyingAParkedStreamLeavesNothingToRearm) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(destroy_while_parked());
}

Task<void> drop_with_items_queued() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(8, 1024);
  CO_ASSERT_TRUE(ring);
  const uint64_t orphaned_before = this_shard::counters().ops_orphaned;
  {
    auto stream = b.recv_multishot(*ring);
    // Exactly three full buffers' worth: three items queued, five buffers
    // left, the op still armed.
    CO_ASSERT_TRUE(send_now(a.fd(), pattern(0, 3 * 1024)));
    auto three_taken = [&ring] { return ring->available() == 5; };
    const bool queued = co_await eventually(three_taken);
    CO_ASSERT_TRUE(queued);
    EXPECT_EQ(stream.ready(), 3u);
    EXPECT_FALSE(stream.ended());
    EXPECT_EQ(in_flight(), 1u);
  }
  // The queued items (and their buffers) went with the stream; the op is
  // cancelled and its record lives until the final CQE.
  EXPECT_EQ(ring->available(), 8u);
  EXPECT_EQ(this_shard::counters().ops_orphaned, orphaned_before + 1);
  auto settled = [&ring] { return in_flight() == 0 && ring->available() == 8; };
  const bool idle = co_await eventually(settled);
  EXPECT_TRUE(idle);
  // The cancelled op takes nothing any more: the next bytes go to a new
  // stream.
  CO_ASSERT_TRUE(send_now(a.fd(), pattern(7, 10)));
  auto again = b.recv_multishot(*ring);
  auto item = co_await again.next();
  CO_ASSERT_TRUE(item && *item);
  EXPECT_EQ((*item)->size(), 10u);
  EXPECT_TRUE(matches_pattern(7, (*item)->bytes()));
}

TEST(MultishotTest, DroppingAStreamWithItemsQueuedReleasesBuffersAndRecord) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(drop_with_items_queued());
}

// Takes one item, keeps it in its frame and waits for the next, which never
// comes: the test destroys the frame there.
test::Eager hold_one_and_wait(net::UnixStream* s, BufferRing ring, int* stage) {
  auto stream = s->recv_multishot(std::move(ring));
  auto first = co_await stream.next();
  *stage = (first && *first && (*first)->size() == 100) ? 1 : -1;
  [[maybe_unused]] auto second = co_await stream.next();
  *stage = 2;  // not reached
}

Task<void> destroy_task_with_stream_in_flight() {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  auto ring = BufferRing::create(4, 4096);
  CO_ASSERT_TRUE(ring);
  const uint64_t orphaned_before = this_shard::counters().ops_orphaned;
  int stage = 0;
  test::Eager task = hold_one_and_wait(&b, *ring, &stage);
  CO_ASSERT_TRUE(send_now(a.fd(), pattern(0, 100)));
  auto reached = [&stage] { return stage != 0; };
  const bool got_first = co_await eventually(reached);
  CO_ASSERT_TRUE(got_first);
  EXPECT_EQ(stage, 1);
  EXPECT_FALSE(task.done());
  EXPECT_EQ(ring->available(), 3u);  // the frame holds one buffer
  EXPECT_EQ(in_flight(), 1u);
  task.destroy();
  EXPECT_EQ(ring->available(), 4u);
  EXPECT_EQ(this_shard::counters().ops_orphaned, orphaned_before + 1);
  auto settled = [&ring] { return in_flight() == 0 && ring->available() == 4; };
  const bool idle = co_await eventually(settled);
  EXPECT_TRUE(idle);
  EXPECT_EQ(stage, 1);
}

TEST(MultishotTest, DestroyingTheTaskWithTheStreamInFlightReleasesEverything) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(destroy_task_with_stream_in_flight());
}

// A spawned task that owns both ends, a ring, a stream and one received
// buffer, and waits for ever; the runtime's shutdown destroys it.
Task<void> serve_forever(net::UnixStream a, net::UnixStream b, bool* holding) {
  auto ring = BufferRing::create(4, 4096);
  CO_ASSERT_TRUE(ring);
  auto stream = b.recv_multishot(*ring);
  CO_ASSERT_TRUE(send_now(a.fd(), pattern(0, 100)));
  auto first = co_await stream.next();
  CO_ASSERT_TRUE(first && *first);
  *holding = true;
  [[maybe_unused]] auto never = co_await stream.next();
  ADD_FAILURE() << "the stream yielded an item nobody sent";
}

Task<void> spawn_and_leave(bool* holding) {
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  spawn(serve_forever(std::move(pair->first), std::move(pair->second), holding))
      .detach();
  auto is_holding = [holding] { return *holding; };
  const bool ok = co_await eventually(is_holding);
  EXPECT_TRUE(ok);
  EXPECT_EQ(in_flight(), 1u);
}

TEST(MultishotTest, ShutdownDestroysATaskWaitingOnAStream) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  bool holding = false;
  rt.block_on(spawn_and_leave(&holding));
  ASSERT_TRUE(holding);
  rt.stop();
  // The shard cancelled the op and waited for its final CQE; under ASan the
  // record, ring and buffers leak nowhere.
  EXPECT_EQ(rt.counters(0).ops_in_flight, 0u);
  EXPECT_GE(rt.counters(0).ops_orphaned, 1u);
}

TEST(MultishotTest, DefaultConstructedStreamIsEnded) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    MultishotStream<PollMultishot> stream;
    EXPECT_TRUE(stream.ended());
    EXPECT_EQ(stream.ready(), 0u);
    stream.cancel();
    EXPECT_FALSE((co_await stream.next()).has_value());
  }());
}

// ---------------------------------------------------------------------------
// Multishot poll.

Task<void> poll_eventfd() {
  const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  CO_ASSERT_TRUE(efd >= 0);
  OwnedFd owned(efd);
  const uint64_t sqes_before = this_shard::counters().sqes_submitted;
  auto stream = submit_multishot(PollMultishot(efd, POLLIN));
  for (int i = 0; i < 4; ++i) {
    const uint64_t one = 1;
    CO_ASSERT_TRUE(::write(efd, &one, sizeof(one)) == sizeof(one));
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    EXPECT_TRUE(**item & POLLIN) << **item;
    uint64_t v = 0;
    EXPECT_EQ(::read(efd, &v, sizeof(v)), ssize_t{sizeof(v)});
    EXPECT_EQ(v, 1u);
  }
  EXPECT_EQ(stream.ready(), 0u);
  // One poll SQE (and perhaps the runtime's wake-up read) for four items.
  EXPECT_LE(this_shard::counters().sqes_submitted - sqes_before, 2u);
  EXPECT_EQ(rearms(), 0u);
  stream.cancel();
  auto rest = co_await drain(stream);
  CO_ASSERT_TRUE(rest.size() == 1u);
  EXPECT_EQ(error_of(rest[0]), ECANCELED);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, PollMultishotYieldsEachReadinessThenCancels) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(poll_eventfd());
}

Task<void> poll_pipe_stopped_from_a_thread() {
  test::Pipe pipe;
  CO_ASSERT_TRUE(pipe.ok());
  std::stop_source src;
  auto stream = submit_multishot(PollMultishot(pipe.read_fd(), POLLIN), {},
                                 src.get_token());
  for (int i = 0; i < 3; ++i) {
    const char c = 'p';
    CO_ASSERT_TRUE(::write(pipe.write_fd(), &c, 1) == 1);
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    EXPECT_TRUE(**item & POLLIN);
    char got = 0;
    EXPECT_EQ(::read(pipe.read_fd(), &got, 1), 1);
  }
  std::jthread stopper([&src] { src.request_stop(); });
  auto rest = co_await drain(stream);
  CO_ASSERT_TRUE(rest.size() == 1u);
  EXPECT_EQ(error_of(rest[0]), ECANCELED);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, PollMultishotEndsOnAStopFromAnotherThread) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(poll_pipe_stopped_from_a_thread());
}

// ---------------------------------------------------------------------------
// Multishot recvmsg (UDP).

enum class Outcome { kRan, kUnsupported };

Task<Outcome> udp_datagrams() {
  if (!this_shard::supports(IORING_OP_RECVMSG)) co_return Outcome::kUnsupported;
  auto rx = net::UdpSocket::bind(net::SocketAddress::ipv4_loopback(0));
  auto tx = net::UdpSocket::bind(net::SocketAddress::ipv4_loopback(0));
  EXPECT_TRUE(rx && tx);
  if (!rx || !tx) co_return Outcome::kRan;
  auto rx_addr = rx->local_address();
  auto tx_addr = tx->local_address();
  EXPECT_TRUE(rx_addr && tx_addr);
  if (!rx_addr || !tx_addr) co_return Outcome::kRan;
  constexpr std::size_t kBuf = 512;
  auto ring = BufferRing::create(16, kBuf);
  EXPECT_TRUE(ring);
  if (!ring) co_return Outcome::kRan;
  auto stream = rx->recv_multishot(*ring);
  constexpr int kDatagrams = 6;
  std::vector<std::string> sent;
  for (int i = 0; i < kDatagrams; ++i) {
    std::string d = "datagram #" + std::to_string(i) + ":";
    d.append(static_cast<std::size_t>(i) * 37, static_cast<char>('a' + i));
    sent.push_back(d);
    auto r = co_await tx->send_to(std::move(d), *rx_addr);
    EXPECT_TRUE(r.res) << r.res.error().message();
  }
  // One larger than the buffer's payload room: cut, and marked so.
  const std::string big(1000, 'B');
  {
    std::string copy = big;
    auto r = co_await tx->send_to(std::move(copy), *rx_addr);
    EXPECT_TRUE(r.res);
  }
  std::vector<Datagram> got;
  for (int i = 0; i <= kDatagrams; ++i) {
    auto item = co_await stream.next();
    EXPECT_TRUE(item.has_value());
    if (!item) co_return Outcome::kRan;
    if (!*item) {
      const int err = item->error().value();
      if (i == 0 && (err == EINVAL || err == EOPNOTSUPP)) {
        co_return Outcome::kUnsupported;  // no multishot recvmsg (< 6.0)
      }
      ADD_FAILURE() << item->error().message();
      co_return Outcome::kRan;
    }
    got.push_back(std::move(**item));
  }
  for (int i = 0; i < kDatagrams; ++i) {
    const Datagram& d = got[static_cast<std::size_t>(i)];
    EXPECT_EQ(d.from, *tx_addr) << d.from.to_string();
    EXPECT_FALSE(d.truncated);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(d.payload.data()),
                          d.payload.size()),
              sent[static_cast<std::size_t>(i)]);
  }
  const Datagram& cut = got.back();
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.from, *tx_addr);
  // The buffer also holds the io_uring_recvmsg_out header and the name.
  EXPECT_EQ(cut.payload.size(), kBuf - sizeof(io_uring_recvmsg_out) -
                                    net::SocketAddress::capacity());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(cut.payload.data()),
                        cut.payload.size()),
            big.substr(0, cut.payload.size()));
  EXPECT_EQ(ring->available(), 16u - got.size());
  got.clear();
  EXPECT_EQ(ring->available(), 16u);
  stream.cancel();
  auto rest = co_await drain(stream);
  EXPECT_EQ(rest.size(), 1u);
  if (!rest.empty()) {
    EXPECT_EQ(error_of(rest.back()), ECANCELED);
  }
  EXPECT_EQ(in_flight(), 0u);
  co_return Outcome::kRan;
}

TEST(MultishotTest, RecvMsgMultishotDeliversUdpDatagramsWithTheirSender) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  if (rt.block_on(udp_datagrams()) == Outcome::kUnsupported) {
    GTEST_SKIP() << "the kernel has no multishot IORING_OP_RECVMSG (6.0+)";
  }
}

// ---------------------------------------------------------------------------
// Zero-copy send.

TEST(MultishotTest, SendZcReleasesTheBufferAfterTheNotification) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  const bool ran = rt.block_on([]() -> Task<bool> {
    if (!this_shard::supports(IORING_OP_SEND_ZC)) co_return false;
    auto listener =
        net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(listener);
    if (!listener) co_return true;
    auto addr = listener->local_address();
    auto client = co_await net::TcpStream::connect(*addr);
    auto server = co_await listener->accept_one();
    EXPECT_TRUE(client && server);
    if (!client || !server) co_return true;
    struct Tracked {
      std::vector<char> bytes = std::vector<char>(1000, 'z');
      bool* destroyed;
      explicit Tracked(bool* d) : destroyed(d) {}
      Tracked(Tracked&& o) noexcept
          : bytes(std::move(o.bytes)),
            destroyed(std::exchange(o.destroyed, nullptr)) {}
      ~Tracked() {
        if (destroyed) *destroyed = true;
      }
      char* data() { return bytes.data(); }
      std::size_t size() const { return bytes.size(); }
    };
    bool destroyed = false;
    Tracked tracked(&destroyed);
    auto r = co_await client->send_zc(std::move(tracked));
    EXPECT_TRUE(r) << r.error().message();
    if (r) {
      EXPECT_EQ(*r, 1000u);
    }
    std::vector<char> in(1000);
    auto got = co_await server->recv_exact(std::move(in));
    EXPECT_TRUE(got.res);
    // The notification may already have come; wait for it either way.
    auto is_destroyed = [&destroyed] { return destroyed; };
    const bool freed = co_await eventually(is_destroyed);
    EXPECT_TRUE(freed);
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
    co_return true;
  }());
  if (!ran) GTEST_SKIP() << "the kernel has no IORING_OP_SEND_ZC (6.0+)";
}

// A buffer whose destructor writes into a log; moved-from copies are quiet.
struct ZcLog {
  std::vector<std::string> events;
  bool has(const std::string& e) const {
    for (const auto& x : events) {
      if (x == e) return true;
    }
    return false;
  }
};

struct LoggedBuffer {
  std::vector<char> bytes;
  ZcLog* log;
  LoggedBuffer(std::size_t n, ZcLog* l) : bytes(n, 'q'), log(l) {}
  LoggedBuffer(LoggedBuffer&& o) noexcept
      : bytes(std::move(o.bytes)), log(std::exchange(o.log, nullptr)) {}
  LoggedBuffer& operator=(LoggedBuffer&&) = delete;
  ~LoggedBuffer() {
    if (log != nullptr) log->events.push_back("buffer destroyed");
  }
  char* data() { return bytes.data(); }
  const char* data() const { return bytes.data(); }
  std::size_t size() const { return bytes.size(); }
};

// SendZc wrapped in an op of our own that logs each hook it forwards.
struct LoggedSendZc {
  static constexpr uint8_t kOpcode = IORING_OP_SEND_ZC;
  SendZc<LoggedBuffer> inner;
  ZcLog* log;
  void prepare(io_uring_sqe& sqe) noexcept { inner.prepare(sqe); }
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept {
    log->events.push_back((cqe.flags & IORING_CQE_F_MORE) != 0 ? "result+more"
                                                               : "result");
    return inner.complete(cqe);
  }
  void notify(const io_uring_cqe& cqe) noexcept {
    log->events.push_back((cqe.flags & IORING_CQE_F_NOTIF) != 0 ? "notification"
                                                                : "other cqe");
    inner.notify(cqe);
  }
};

Task<bool> send_zc_logged() {
  if (!this_shard::supports(IORING_OP_SEND_ZC)) co_return false;
  auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  EXPECT_TRUE(listener);
  if (!listener) co_return true;
  auto addr = listener->local_address();
  auto client = co_await net::TcpStream::connect(*addr);
  auto server = co_await listener->accept_one();
  EXPECT_TRUE(client && server);
  if (!client || !server) co_return true;
  constexpr std::size_t kLen = 64 * 1024;
  for (int round = 0; round < 3; ++round) {
    ZcLog log;
    LoggedSendZc op{
        SendZc<LoggedBuffer>(client->fd(), LoggedBuffer(kLen, &log)), &log};
    auto r = co_await submit(std::move(op));
    EXPECT_TRUE(r) << r.error().message();
    if (r) {
      EXPECT_EQ(*r, kLen);
    }
    // The result came with F_MORE: the awaiter resumed at the result while
    // the record (and the buffer) waits for the notification.
    EXPECT_FALSE(log.events.empty());
    if (!log.events.empty()) {
      EXPECT_EQ(log.events.front(), "result+more");
    }
    EXPECT_EQ(in_flight() == 1, !log.has("notification"));
    EXPECT_EQ(log.has("buffer destroyed"), log.has("notification"));
    std::vector<char> in(kLen);
    auto got = co_await server->recv_exact(std::move(in));
    EXPECT_TRUE(got.res);
    EXPECT_TRUE(got.buf == std::vector<char>(kLen, 'q'));
    auto is_freed = [&log] { return log.has("buffer destroyed"); };
    const bool freed = co_await eventually(is_freed);
    EXPECT_TRUE(freed);
    const std::vector<std::string> want = {"result+more", "notification",
                                           "buffer destroyed"};
    EXPECT_EQ(log.events, want);
    EXPECT_EQ(in_flight(), 0u);
  }
  co_return true;
}

TEST(MultishotTest, SendZcDestroysTheBufferOnlyAfterTheNotification) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  if (!rt.block_on(send_zc_logged())) {
    GTEST_SKIP() << "the kernel has no IORING_OP_SEND_ZC (6.0+)";
  }
}

// ---------------------------------------------------------------------------
// Multishot ops of one's own: on_end() policies.

struct EndLog {
  MultishotEnd policy = MultishotEnd::kRearmLater;
  int ends = 0;
  std::vector<Rearm> rearms;
};

// A one-shot poll presented as a multishot op: every CQE ends it, so
// on_end() decides after each.
struct ParkingPoll {
  static constexpr bool kMultishot = true;
  int fd;
  EndLog* log;
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_poll_add(&sqe, fd, POLLIN);
  }
  Result<unsigned> complete(const io_uring_cqe& cqe) noexcept {
    if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
    return static_cast<unsigned>(cqe.res);
  }
  MultishotEnd on_end(const io_uring_cqe& cqe, Rearm rearm) {
    ++log->ends;
    if (cqe.res < 0) return MultishotEnd::kFinish;
    log->rearms.push_back(rearm);
    return log->policy;
  }
};
static_assert(MultishotOperation<ParkingPoll>);

// The same without on_end(): the default policy re-arms at once after a
// CQE with a result.
struct OneShotPoll {
  static constexpr bool kMultishot = true;
  int fd;
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_poll_add(&sqe, fd, POLLIN);
  }
  Result<unsigned> complete(const io_uring_cqe& cqe) noexcept {
    if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
    return static_cast<unsigned>(cqe.res);
  }
};

bool poke(const test::Pipe& p) {
  const char c = 'x';
  return ::write(p.write_fd(), &c, 1) == 1;
}
bool drain_pipe(const test::Pipe& p) {
  char c = 0;
  return ::read(p.read_fd(), &c, 1) == 1;
}

Task<void> rearm_later_by_hand() {
  test::Pipe pipe;
  CO_ASSERT_TRUE(pipe.ok());
  EndLog log;
  log.policy = MultishotEnd::kRearmLater;
  ParkingPoll op{pipe.read_fd(), &log};
  auto stream = submit_multishot(std::move(op));
  const uint64_t base = rearms();
  for (int round = 0; round < 3; ++round) {
    CO_ASSERT_TRUE(poke(pipe));
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    EXPECT_TRUE(**item & POLLIN);
    EXPECT_EQ(log.ends, round + 1);
    CO_ASSERT_TRUE(log.rearms.size() == static_cast<std::size_t>(round + 1));
    // Parked: out of the kernel, not ended, not re-armed by itself.
    EXPECT_EQ(in_flight(), 0u);
    EXPECT_FALSE(stream.ended());
    EXPECT_EQ(rearms(), base + round);
    CO_ASSERT_TRUE(drain_pipe(pipe));
    log.rearms.back()();
    EXPECT_EQ(rearms(), base + round + 1);
    EXPECT_EQ(in_flight(), 1u);
    log.rearms.back()();  // already re-armed: nothing
    EXPECT_EQ(rearms(), base + round + 1);
    EXPECT_EQ(in_flight(), 1u);
  }
  EXPECT_EQ(stream.op().log, &log);
  stream.cancel();
  auto rest = co_await drain(stream);
  CO_ASSERT_TRUE(rest.size() == 1u);
  EXPECT_EQ(error_of(rest[0]), ECANCELED);
  EXPECT_EQ(in_flight(), 0u);
  // A Rearm kept past the end does nothing.
  const uint64_t after = rearms();
  for (const Rearm& r : log.rearms) r();
  EXPECT_EQ(rearms(), after);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, OnEndRearmLaterParksUntilTheOpIsRearmedByHand) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(rearm_later_by_hand());
}

Task<void> rearm_later_then_cancel_or_drop() {
  test::Pipe pipe;
  CO_ASSERT_TRUE(pipe.ok());
  // Cancelled while parked: ends with nullopt, and the Rearm is dead.
  {
    EndLog log;
    ParkingPoll op{pipe.read_fd(), &log};
    auto stream = submit_multishot(std::move(op));
    CO_ASSERT_TRUE(poke(pipe));
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    CO_ASSERT_TRUE(drain_pipe(pipe));
    CO_ASSERT_TRUE(in_flight() == 0u);
    stream.cancel();
    EXPECT_TRUE(stream.ended());
    EXPECT_FALSE((co_await stream.next()).has_value());
    const uint64_t before = rearms();
    CO_ASSERT_TRUE(log.rearms.size() == 1u);
    log.rearms[0]();
    EXPECT_EQ(rearms(), before);
    EXPECT_EQ(in_flight(), 0u);
  }
  // Dropped while parked: the record is gone; its Rearm does nothing (ASan
  // checks that it touches no freed object).
  {
    EndLog log;
    std::vector<Rearm> kept;
    {
      ParkingPoll op{pipe.read_fd(), &log};
      auto stream = submit_multishot(std::move(op));
      CO_ASSERT_TRUE(poke(pipe));
      auto item = co_await stream.next();
      CO_ASSERT_TRUE(item && *item);
      CO_ASSERT_TRUE(drain_pipe(pipe));
      CO_ASSERT_TRUE(in_flight() == 0u);
      kept = log.rearms;
    }
    const uint64_t before = rearms();
    CO_ASSERT_TRUE(kept.size() == 1u);
    kept[0]();
    EXPECT_EQ(rearms(), before);
    EXPECT_EQ(in_flight(), 0u);
  }
}

TEST(MultishotTest, ARearmOfACancelledOrDroppedParkedStreamDoesNothing) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(rearm_later_then_cancel_or_drop());
}

Task<void> finish_policy() {
  test::Pipe pipe;
  CO_ASSERT_TRUE(pipe.ok());
  EndLog log;
  log.policy = MultishotEnd::kFinish;
  ParkingPoll op{pipe.read_fd(), &log};
  const uint64_t base = rearms();
  auto stream = submit_multishot(std::move(op));
  CO_ASSERT_TRUE(poke(pipe));
  auto items = co_await drain(stream);
  // The CQE that ended the op is the last item.
  CO_ASSERT_TRUE(items.size() == 1u);
  CO_ASSERT_TRUE(items[0]);
  EXPECT_TRUE(*items[0] & POLLIN);
  EXPECT_EQ(log.ends, 1);
  EXPECT_TRUE(stream.ended());
  EXPECT_EQ(rearms(), base);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, OnEndFinishMakesTheEndingCqeTheLastItem) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(finish_policy());
}

Task<void> default_policy_rearms_now() {
  test::Pipe pipe;
  CO_ASSERT_TRUE(pipe.ok());
  const uint64_t base = rearms();
  OneShotPoll op{pipe.read_fd()};
  auto stream = submit_multishot(std::move(op));
  for (int i = 0; i < 3; ++i) {
    CO_ASSERT_TRUE(poke(pipe));
    auto item = co_await stream.next();
    CO_ASSERT_TRUE(item && *item);
    EXPECT_TRUE(**item & POLLIN);
    CO_ASSERT_TRUE(drain_pipe(pipe));
  }
  // Each one-shot CQE was re-armed without being asked.
  EXPECT_GE(rearms() - base, 3u);
  EXPECT_FALSE(stream.ended());
  stream.cancel();
  auto rest = co_await drain(stream);
  // A poll re-armed before the pipe was read may add a POLLIN item; the
  // last one is the cancel.
  CO_ASSERT_TRUE(!rest.empty());
  EXPECT_EQ(error_of(rest.back()), ECANCELED);
  for (std::size_t i = 0; i + 1 < rest.size(); ++i) EXPECT_TRUE(rest[i]);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(MultishotTest, DefaultEndPolicyRearmsAfterACqeWithAResult) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on(default_policy_rearms_now());
}

}  // namespace
}  // namespace shardio
