// Tests for multishot streams (multishot.h) and buffer rings
// (buffer_ring.h): multishot accept and recv over loopback, re-arm after the
// buffer ring runs dry, cancellation, and zero-copy send's notification.
#include "shardio/multishot.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

#include "shardio/buffer_ring.h"
#include "shardio/net.h"
#include "shardio/ops/net.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio {
namespace {

static_assert(MultishotOperation<AcceptMultishot>);
static_assert(MultishotOperation<RecvMultishot>);
static_assert(MultishotOperation<PollMultishot>);
static_assert(!MultishotOperation<Accept>);

TEST(MultishotTest, AcceptsManyConnectionsFromOneSubmission) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(listener) << listener.error().message();
    auto addr = listener->local_address();
    auto conns = listener->accept();
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    std::vector<net::TcpStream> clients;
    constexpr int kConns = 50;
    for (int i = 0; i < kConns; ++i) {
      auto c = co_await net::TcpStream::connect(*addr);
      EXPECT_TRUE(c) << c.error().message();
      clients.push_back(std::move(*c));
    }
    int accepted = 0;
    while (accepted < kConns) {
      auto item = co_await conns.next();
      EXPECT_TRUE(item.has_value());
      EXPECT_TRUE(*item) << item->error().message();
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
    EXPECT_TRUE(last.has_value());
    EXPECT_FALSE(*last);
    EXPECT_EQ(last->error().value(), ECANCELED);
    EXPECT_FALSE((co_await conns.next()).has_value());
  }());
}

TEST(MultishotTest, RecvRearmsWhenTheBufferRingRunsDry) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto pair = net::UnixStream::pair();
    EXPECT_TRUE(pair);
    auto& [a, b] = *pair;
    auto ring = BufferRing::create(4, 64);
    EXPECT_TRUE(ring) << ring.error().message();
    auto stream = b.recv_multishot(*ring);
    // 64 KiB through 4 buffers of 64 bytes: the ring runs dry many times.
    constexpr std::size_t kTotal = 64 * 1024;
    std::string data(kTotal, '\0');
    for (std::size_t i = 0; i < kTotal; ++i) data[i] = static_cast<char>(i * 31 + i / 256);
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
      got.append(reinterpret_cast<const char*>((*item)->data()), (*item)->size());
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

TEST(MultishotTest, SendZcReleasesTheBufferAfterTheNotification) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    if (!this_shard::supports(IORING_OP_SEND_ZC)) co_return;
    auto pair = net::UnixStream::pair();
    auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    auto addr = listener->local_address();
    auto client = co_await net::TcpStream::connect(*addr);
    auto server = co_await listener->accept_one();
    EXPECT_TRUE(server);
    struct Tracked {
      std::vector<char> bytes = std::vector<char>(1000, 'z');
      bool* destroyed;
      Tracked(bool* d) : destroyed(d) {}
      Tracked(Tracked&& o) noexcept : bytes(std::move(o.bytes)), destroyed(std::exchange(o.destroyed, nullptr)) {}
      ~Tracked() { if (destroyed) *destroyed = true; }
      char* data() { return bytes.data(); }
      std::size_t size() const { return bytes.size(); }
    };
    bool destroyed = false;
    auto r = co_await client->send_zc(Tracked(&destroyed));
    EXPECT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, 1000u);
    std::vector<char> in(1000);
    auto got = co_await server->recv_exact(std::move(in));
    EXPECT_TRUE(got.res);
    // The notification may already have come; wait for it either way.
    for (int i = 0; i < 10000 && !destroyed; ++i) co_await this_shard::yield();
    EXPECT_TRUE(destroyed);
    EXPECT_EQ(this_shard::counters().ops_in_flight, 0u);
  }());
}

}  // namespace
}  // namespace shardio
