// Tests for the socket types of net.h: TcpListener (bind, multishot accept,
// accept_one, reuse_port, address in use), TcpStream (connect, send,
// send_all, recv, recv_exact, shutdown and half-close, peer reset, EPIPE,
// connect timeout, cancellation), UdpSocket, UnixListener/UnixStream, the
// hand-off of a connection to another shard, and sockets used after close().
//
// Everything runs over loopback. Waits are on events (a CQE, a counter the
// shard updates), each bounded: a yield count, a link timeout, or a stop
// request from a watchdog thread.
#include "shardio/net.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/cross_shard.h"
#include "shardio/operation.h"
#include "shardio/ops/net.h"
#include "shardio/owned_fd.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using net::SocketAddress;
using net::TcpListener;
using net::TcpStream;
using test::Eager;
using testing::HasSubstr;

constexpr int kMaxYields = 100000;

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

// Yields until this shard has at most `n` ops in flight.
Task<bool> wait_for_in_flight_at_most(uint64_t n) {
  for (int i = 0; i < kMaxYields; ++i) {
    if (this_shard::counters().ops_in_flight <= n) co_return true;
    co_await this_shard::yield();
  }
  co_return this_shard::counters().ops_in_flight <= n;
}

// Requests a stop after `timeout` unless destroyed first: passed to a
// receive or accept that an error in the test might leave waiting forever.
class Deadline {
 public:
  explicit Deadline(absl::Duration timeout = absl::Seconds(30))
      : thread_([this, timeout] {
          if (!done_.WaitForNotificationWithTimeout(timeout)) {
            source_.request_stop();
          }
        }) {}
  ~Deadline() {
    done_.Notify();
    thread_.join();
  }
  std::stop_token token() const { return source_.get_token(); }

 private:
  std::stop_source source_;
  absl::Notification done_;
  std::thread thread_;
};

bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const SocketAddress a = SocketAddress::ipv6_loopback(0);
  const bool ok = ::bind(fd, a.get(), a.size()) == 0;
  ::close(fd);
  return ok;
}

std::string str(const std::vector<char>& v, std::size_t n) {
  return std::string(v.data(), n < v.size() ? n : v.size());
}

// Bytes that differ from one offset to the next.
std::vector<char> pattern(std::size_t n) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = static_cast<char>((i * 131) ^ (i >> 9));
  }
  return v;
}

// An owned buffer that reports its destruction (a moved-from one does not).
class TrackedBuffer {
 public:
  TrackedBuffer(std::size_t n, bool* destroyed)
      : bytes_(n, '\0'), destroyed_(destroyed) {}
  TrackedBuffer(TrackedBuffer&& o) noexcept
      : bytes_(std::move(o.bytes_)),
        destroyed_(std::exchange(o.destroyed_, nullptr)) {}
  TrackedBuffer& operator=(TrackedBuffer&&) = delete;
  ~TrackedBuffer() {
    if (destroyed_ != nullptr) *destroyed_ = true;
  }
  char* data() noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }

 private:
  std::vector<char> bytes_;
  bool* destroyed_;
};
static_assert(OwnedBuffer<TrackedBuffer>);

struct TcpPair {
  TcpStream client;
  TcpStream server;
  SocketAddress listen_addr;
};

// A connected TCP pair: a listener bound to `bind_addr`, one connect, one
// accept_one (the listener is closed afterwards).
Task<TcpPair> tcp_pair(SocketAddress bind_addr) {
  auto listener = TcpListener::bind(bind_addr);
  EXPECT_TRUE(listener) << listener.error().message();
  if (!listener) co_return TcpPair{};
  auto addr = listener->local_address();
  EXPECT_TRUE(addr) << addr.error().message();
  if (!addr) co_return TcpPair{};
  auto client = co_await TcpStream::connect(*addr);
  EXPECT_TRUE(client) << client.error().message();
  auto server = co_await listener->accept_one();
  EXPECT_TRUE(server) << server.error().message();
  if (!client || !server) co_return TcpPair{};
  co_return TcpPair{std::move(*client), std::move(*server), *addr};
}

Task<TcpPair> tcp_pair() {
  co_return co_await tcp_pair(SocketAddress::ipv4_loopback(0));
}

bool ok(const TcpPair& p) { return p.client.is_open() && p.server.is_open(); }

// Sets SO_SNDBUF/SO_RCVBUF small, so that large sends come back short.
void shrink_buffers(net::SocketBase& s) {
  auto a = s.set_option(SOL_SOCKET, SO_SNDBUF, 16 * 1024);
  EXPECT_TRUE(a) << a.error().message();
  auto b = s.set_option(SOL_SOCKET, SO_RCVBUF, 16 * 1024);
  EXPECT_TRUE(b) << b.error().message();
}

// ---------------------------------------------------------------------------
// TcpListener

TEST(NetTest, TcpListenerBindsPortZeroToAFreePort) {
  auto l = TcpListener::bind(SocketAddress::ipv4_loopback(0));
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_TRUE(l->is_open());
  auto addr = l->local_address();
  ASSERT_TRUE(addr) << addr.error().message();
  EXPECT_TRUE(addr->is_ipv4());
  EXPECT_NE(addr->port(), 0);
  SocketAddress expected = SocketAddress::ipv4_loopback(addr->port());
  EXPECT_EQ(*addr, expected);
  // It listens.
  int listening = 0;
  socklen_t len = sizeof(listening);
  ASSERT_EQ(::getsockopt(l->fd(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len),
            0);
  EXPECT_EQ(listening, 1);
  EXPECT_NE(::fcntl(l->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(NetTest, TcpListenerRefusesAUnixAddress) {
  auto a = SocketAddress::unix_path("/tmp/not-for-tcp.sock");
  ASSERT_TRUE(a);
  auto l = TcpListener::bind(*a);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code, errno_code(EAFNOSUPPORT));
  EXPECT_THAT(l.error().message(), HasSubstr("not an IPv4 or IPv6 address"));
}

TEST(NetTest, MultishotAcceptTakesManyClients) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto listener = TcpListener::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(listener) << listener.error().message();
    if (!listener) co_return;
    auto addr = listener->local_address();
    auto conns = listener->accept();
    constexpr int kClients = 32;
    std::vector<TcpStream> clients;
    for (int i = 0; i < kClients; ++i) {
      auto c = co_await TcpStream::connect(*addr);
      EXPECT_TRUE(c) << c.error().message();
      if (!c) co_return;
      // Each client names itself with one byte.
      std::string id(1, static_cast<char>(i));
      auto sent = co_await c->send(std::move(id));
      EXPECT_EQ(sent.res.value_or(0), 1u);
      clients.push_back(std::move(*c));
    }
    std::vector<bool> seen(kClients, false);
    for (int i = 0; i < kClients; ++i) {
      auto item = co_await conns.next();
      EXPECT_TRUE(item.has_value());
      if (!item) co_return;
      EXPECT_TRUE(*item) << item->error().message();
      if (!*item) co_return;
      TcpStream s(std::move(**item));
      auto got = co_await s.recv_exact(std::vector<char>(1));
      EXPECT_TRUE(got.res) << got.res.error().message();
      const int who = static_cast<unsigned char>(got.buf[0]);
      EXPECT_LT(who, kClients);
      if (who >= kClients) co_return;
      EXPECT_FALSE(seen[who]) << "client " << who << " accepted twice";
      seen[who] = true;
      // The accepted socket's peer is that client.
      auto peer = s.peer_address();
      auto client_local = clients[who].local_address();
      EXPECT_TRUE(peer && client_local);
      if (peer && client_local) {
        EXPECT_EQ(*peer, *client_local);
      }
      auto local = s.local_address();
      EXPECT_TRUE(local && *local == *addr);
    }
    for (int i = 0; i < kClients; ++i) EXPECT_TRUE(seen[i]) << i;
    conns.cancel();
    auto last = co_await conns.next();
    EXPECT_TRUE(last.has_value());
    if (last) {
      EXPECT_FALSE(*last);
      if (!*last) {
        EXPECT_EQ(last->error(), errno_code(ECANCELED));
      }
    }
    EXPECT_FALSE((co_await conns.next()).has_value());
  }());
}

TEST(NetTest, AcceptOneGivesTheConnectionAndItsPeer) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    EXPECT_TRUE(ok(p));
    if (!ok(p)) co_return;
    auto server_peer = p.server.peer_address();
    auto client_local = p.client.local_address();
    EXPECT_TRUE(server_peer) << server_peer.error().message();
    EXPECT_TRUE(client_local) << client_local.error().message();
    if (server_peer && client_local) {
      EXPECT_EQ(*server_peer, *client_local);
    }
    EXPECT_EQ(*p.client.peer_address(), p.listen_addr);
    EXPECT_EQ(*p.server.local_address(), p.listen_addr);
    // connect() sets TCP_NODELAY by default.
    int nodelay = 0;
    socklen_t len = sizeof(nodelay);
    EXPECT_EQ(
        ::getsockopt(p.client.fd(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len),
        0);
    EXPECT_EQ(nodelay, 1);
  }());
}

TEST(NetTest, ReusePortLetsTwoListenersShareAPort) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    net::ListenOptions opts{.reuse_port = true};
    auto a = TcpListener::bind(SocketAddress::ipv4_loopback(0), opts);
    EXPECT_TRUE(a) << a.error().message();
    if (!a) co_return;
    const uint16_t port = a->local_address()->port();
    auto b = TcpListener::bind(SocketAddress::ipv4_loopback(port), opts);
    EXPECT_TRUE(b) << b.error().message();
    if (!b) co_return;
    EXPECT_EQ(b->local_address()->port(), port);

    // One connection goes to exactly one of them; that one stops the
    // other's accept.
    std::stop_source stop_a;
    std::stop_source stop_b;
    auto accept_then_stop =
        [](TcpListener* l, std::stop_token st,
           std::stop_source* other) -> Task<net::Result<TcpStream>> {
      auto r = co_await l->accept_one(std::move(st));
      if (r) other->request_stop();
      co_return r;
    };
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto ha = spawn(accept_then_stop(&*a, stop_a.get_token(), &stop_b));
    auto hb = spawn(accept_then_stop(&*b, stop_b.get_token(), &stop_a));
    const bool in_flight = co_await wait_for_ops_in_flight(base + 2);
    EXPECT_TRUE(in_flight);
    auto client =
        co_await TcpStream::connect(SocketAddress::ipv4_loopback(port));
    EXPECT_TRUE(client) << client.error().message();
    auto ra = co_await ha;
    auto rb = co_await hb;
    EXPECT_NE(ra.has_value(), rb.has_value())
        << (ra ? "a accepted" : ra.error().message()) << "; "
        << (rb ? "b accepted" : rb.error().message());
    const auto& accepted = ra ? ra : rb;
    if (accepted && client) {
      EXPECT_EQ(*accepted->peer_address(), *client->local_address());
    }
    const auto& failed = ra ? rb : ra;
    if (!failed) {
      EXPECT_EQ(failed.error().code, errno_code(ECANCELED));
      EXPECT_THAT(failed.error().message(),
                  HasSubstr("accept 127.0.0.1:" + std::to_string(port)));
    }
  }());
}

TEST(NetTest, BindingAnAddressInUseSaysSo) {
  auto first = TcpListener::bind(SocketAddress::ipv4_loopback(0));
  ASSERT_TRUE(first) << first.error().message();
  const SocketAddress addr = *first->local_address();
  // SO_REUSEADDR (on by default) does not share a listening port.
  auto second = TcpListener::bind(addr);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errno_code(EADDRINUSE));
  EXPECT_EQ(second.error().op, "bind");
  const std::string msg = second.error().message();
  EXPECT_THAT(msg, HasSubstr("bind " + addr.to_string()));
  EXPECT_THAT(msg, HasSubstr("Address already in use"));
  EXPECT_THAT(msg, HasSubstr("0 for any free one"));
  // Nor does turning SO_REUSEADDR off.
  auto plain = TcpListener::bind(addr, net::ListenOptions{.reuse_addr = false});
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().code, errno_code(EADDRINUSE));
  EXPECT_THAT(plain.error().message(), HasSubstr("Address already in use"));
  // Nor SO_REUSEPORT on one side only.
  auto third = TcpListener::bind(addr, net::ListenOptions{.reuse_port = true});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, errno_code(EADDRINUSE));
  // A UDP socket has its own port space: and the same message for its own
  // conflicts.
  auto u1 = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
  ASSERT_TRUE(u1) << u1.error().message();
  auto u2 = net::UdpSocket::bind(*u1->local_address());
  ASSERT_FALSE(u2);
  EXPECT_EQ(u2.error().code, errno_code(EADDRINUSE));
  EXPECT_THAT(u2.error().message(), HasSubstr("Address already in use"));
}

// ---------------------------------------------------------------------------
// TcpStream

TEST(NetTest, ConnectToAClosedPortIsRefused) {
  // A bound socket that does not listen: its port refuses connections.
  OwnedFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(holder.valid());
  SocketAddress any = SocketAddress::ipv4_loopback(0);
  ASSERT_EQ(::bind(holder.get(), any.get(), any.size()), 0);
  const SocketAddress addr = *SocketAddress::local_of(holder.get());
  Runtime rt(RuntimeOptions{.shards = 1});
  auto r = rt.block_on(TcpStream::connect(addr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errno_code(ECONNREFUSED));
  EXPECT_EQ(r.error().message(),
            "connect " + addr.to_string() + ": Connection refused");
  // With a timeout too: the refusal comes before the time is up, and is not
  // reported as a timeout.
  auto t = rt.block_on(TcpStream::connect(addr, std::chrono::seconds(30)));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, errno_code(ECONNREFUSED)) << t.error().message();
}

TEST(NetTest, ConnectToAUnixAddressIsRefusedByTcp) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto r = rt.block_on(TcpStream::connect(*SocketAddress::parse("@x")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errno_code(EAFNOSUPPORT));
}

TEST(NetTest, SendRecvAndRecvExact) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    auto sent = co_await p.client.send(std::string("ping"));
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    EXPECT_EQ(sent.res.value_or(0), 4u);
    EXPECT_EQ(sent.buf, "ping");
    auto got = co_await p.server.recv(std::vector<char>(64));
    EXPECT_TRUE(got.res) << got.res.error().message();
    EXPECT_EQ(str(got.buf, got.res.value_or(0)), "ping");

    // recv_exact assembles a message sent in pieces.
    auto exact = [](TcpStream* s) -> Task<std::string> {
      auto r = co_await s->recv_exact(std::vector<char>(12));
      EXPECT_TRUE(r.res) << r.res.error().message();
      EXPECT_EQ(r.res.value_or(0), 12u);
      co_return std::string(r.buf.begin(), r.buf.end());
    };
    auto reader = spawn(exact(&p.client));
    for (const char* piece : {"hel", "lo, ", "worl", "d"}) {
      auto s = co_await p.server.send(std::string(piece));
      EXPECT_TRUE(s.res) << s.res.error().message();
      co_await this_shard::yield();
    }
    const std::string whole = co_await reader;
    EXPECT_EQ(whole, "hello, world");
  }());
}

TEST(NetTest, RecvExactAtEndOfStreamIsAnError) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    auto sent = co_await p.client.send_all(std::string("abc"));
    EXPECT_EQ(sent.res.value_or(0), 3u);
    auto sh = co_await p.client.shutdown();
    EXPECT_TRUE(sh) << sh.error().message();
    auto r = co_await p.server.recv_exact(std::vector<char>(8));
    EXPECT_FALSE(r.res);
    if (!r.res) {
      EXPECT_EQ(r.res.error().code, errno_code(ENODATA));
      EXPECT_THAT(r.res.error().message(),
                  HasSubstr("recv " + p.client.local_address()->to_string() +
                            ": unexpected end of stream"));
    }
    // What did come is in the buffer.
    EXPECT_EQ(str(r.buf, 3), "abc");
  }());
}

TEST(NetTest, SendComesBackShortWhenTheSocketIsFull) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    shrink_buffers(p.client);
    shrink_buffers(p.server);
    constexpr std::size_t kTotal = 8u << 20;
    const std::vector<char> data = pattern(kTotal);
    // Nobody reads: one send fits what the buffers hold, and says how much.
    auto r = co_await p.client.send(data);
    EXPECT_TRUE(r.res) << r.res.error().message();
    const std::size_t n = r.res.value_or(0);
    EXPECT_GT(n, 0u);
    EXPECT_LT(n, kTotal);
    auto got = co_await p.server.recv_exact(std::vector<char>(n));
    EXPECT_TRUE(got.res) << got.res.error().message();
    EXPECT_TRUE(std::equal(got.buf.begin(), got.buf.end(), data.begin()))
        << "the first " << n << " bytes differ";
  }());
}

TEST(NetTest, SendAllSendsALargeBufferThroughShortSends) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    shrink_buffers(p.client);
    shrink_buffers(p.server);
    constexpr std::size_t kTotal = 8u << 20;
    const std::vector<char> data = pattern(kTotal);
    auto receive = [](TcpStream* s) -> Task<std::vector<char>> {
      auto r = co_await s->recv_exact(std::vector<char>(kTotal));
      EXPECT_TRUE(r.res) << r.res.error().message();
      co_return std::move(r.buf);
    };
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    auto reader = spawn(receive(&p.server));
    auto sent = co_await p.client.send_all(data);
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    EXPECT_EQ(sent.res.value_or(0), kTotal);
    EXPECT_EQ(sent.buf.size(), kTotal);  // the buffer comes back whole
    const std::vector<char> got = co_await reader;
    EXPECT_EQ(got.size(), kTotal);
    EXPECT_TRUE(got == data) << "the stream was corrupted";
    // 8 MiB through 16 KiB buffers: many sends and receives, not one each.
    EXPECT_GT(this_shard::counters().sqes_submitted - sqes_before, 10u);
  }());
}

TEST(NetTest, HalfCloseLetsThePeerReplyAfterEndOfStream) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    // The server reads until end of stream, then answers and closes.
    auto serve = [](TcpStream s) -> Task<void> {
      std::string request;
      for (int i = 0; i < 1000; ++i) {
        auto r = co_await s.recv(std::vector<char>(4));
        EXPECT_TRUE(r.res) << r.res.error().message();
        if (!r.res || *r.res == 0) break;
        request += str(r.buf, *r.res);
      }
      auto sent = co_await s.send_all("got: " + request);
      EXPECT_TRUE(sent.res) << sent.res.error().message();
      auto closed = co_await s.close();
      EXPECT_TRUE(closed) << closed.error().message();
    };
    auto server = spawn(serve(std::move(p.server)));
    auto sent = co_await p.client.send_all(std::string("request body"));
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    auto sh = co_await p.client.shutdown(SHUT_WR);
    EXPECT_TRUE(sh) << sh.error().message();
    std::string reply;
    bool eof = false;
    for (int i = 0; i < 1000 && !eof; ++i) {
      auto r = co_await p.client.recv(std::vector<char>(64));
      EXPECT_TRUE(r.res) << r.res.error().message();
      if (!r.res) break;
      eof = *r.res == 0;
      reply += str(r.buf, *r.res);
    }
    EXPECT_TRUE(eof);
    EXPECT_EQ(reply, "got: request body");
    co_await server;
  }());
}

TEST(NetTest, PeerResetIsSeenAsResetOrEndOfStream) {
  Runtime rt(RuntimeOptions{.shards = 1});
  Deadline deadline;
  rt.block_on([](std::stop_token st) -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    auto wait_recv = [](TcpStream* s,
                        std::stop_token st) -> Task<net::Result<std::size_t>> {
      auto r = co_await s->recv(std::vector<char>(16), std::move(st));
      co_return std::move(r.res);
    };
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto pending = spawn(wait_recv(&p.client, st));
    const bool in_flight = co_await wait_for_ops_in_flight(base + 1);
    EXPECT_TRUE(in_flight);
    // SO_LINGER {on, 0}: close() sends RST instead of FIN.
    const linger lg{1, 0};
    EXPECT_EQ(
        ::setsockopt(p.server.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    auto closed = co_await p.server.close();
    EXPECT_TRUE(closed) << closed.error().message();
    auto r = co_await pending;
    if (r) {
      EXPECT_EQ(*r, 0u) << "data from a reset peer";
    } else {
      EXPECT_EQ(r.error().code, errno_code(ECONNRESET)) << r.error().message();
      EXPECT_THAT(r.error().message(), HasSubstr("recv"));
    }
    // Sending to it fails too (without SIGPIPE).
    auto s = co_await p.client.send(std::string("x"));
    EXPECT_FALSE(s.res);
    if (!s.res) {
      const int e = s.res.error().code.value();
      EXPECT_TRUE(e == EPIPE || e == ECONNRESET) << s.res.error().message();
    }
  }(deadline.token()));
}

// Closes `closing`, then sends from its peer `sender` until a send fails
// with EPIPE (the first send draws the RST; ECONNRESET may come once before
// EPIPE). The last error, or none if every send succeeded.
Task<std::optional<net::Error>> send_until_broken_pipe(TcpStream& closing,
                                                       TcpStream& sender) {
  auto closed = co_await closing.close();
  EXPECT_TRUE(closed) << closed.error().message();
  // The FIN arrives: end of stream.
  auto eof = co_await sender.recv(std::vector<char>(8));
  EXPECT_EQ(eof.res.value_or(99), 0u);
  // Data to a closed socket draws a RST (this send still succeeds: the
  // kernel cannot know yet).
  auto first = co_await sender.send(std::string("x"));
  EXPECT_TRUE(first.res) << first.res.error().message();
  // Wait for the RST: POLLHUP once the connection is gone. poll(2) with no
  // events asked reports only POLLHUP/POLLERR (a ring poll would also report
  // the POLLRDHUP that the FIN already raised). It blocks this shard, which
  // has nothing else to do; the kernel handles the RST.
  pollfd pfd{sender.fd(), 0, 0};
  EXPECT_EQ(::poll(&pfd, 1, 30000), 1) << "no RST within 30 s";
  EXPECT_NE(pfd.revents & (POLLHUP | POLLERR), 0);
  std::optional<net::Error> last;
  for (int i = 0; i < 3; ++i) {
    auto s = co_await sender.send(std::string("y"));
    EXPECT_FALSE(s.res);
    if (s.res) break;
    last = s.res.error();
    if (last->code == errno_code(EPIPE)) break;
    EXPECT_EQ(last->code, errno_code(ECONNRESET)) << last->message();
  }
  co_return last;
}

TEST(NetTest, SendToAClosedPeerIsEPIPENotSIGPIPE) {
  // SIGPIPE's default action would end this process: its survival, and the
  // EPIPE below, show that sends pass MSG_NOSIGNAL.
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    const std::optional<net::Error> last =
        co_await send_until_broken_pipe(p.server, p.client);
    EXPECT_TRUE(last.has_value());
    if (last) {
      EXPECT_EQ(last->code, errno_code(EPIPE)) << last->message();
      EXPECT_EQ(last->op, "send");
      EXPECT_THAT(last->message(), HasSubstr("Broken pipe"));
    }
    // send_all too.
    auto all = co_await p.client.send_all(std::string(100000, 'z'));
    EXPECT_FALSE(all.res);
    if (!all.res) {
      EXPECT_EQ(all.res.error().code, errno_code(EPIPE));
    }
  }());
}

// Errors name the peer ("connect 127.0.0.1:1: Connection refused", net.h),
// also once the connection is gone: "send 127.0.0.1:PORT: Broken pipe",
// not "send fd 6: Broken pipe".
TEST(NetTest, ErrorsOnABrokenConnectionNameThePeer) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    const std::string peer = p.listen_addr.to_string();
    const std::optional<net::Error> last =
        co_await send_until_broken_pipe(p.server, p.client);
    EXPECT_TRUE(last.has_value());
    if (last) {
      EXPECT_EQ(last->message(), "send " + peer + ": Broken pipe");
    }
  }());
}

// The same for a server's stream adopted from a multishot accept's fd (the
// server loop of net.h's example): its errors name the client.
TEST(NetTest, ErrorsOnABrokenAdoptedConnectionNameThePeer) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto listener = TcpListener::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(listener) << listener.error().message();
    if (!listener) co_return;
    auto conns = listener->accept();
    auto client = co_await TcpStream::connect(*listener->local_address());
    EXPECT_TRUE(client) << client.error().message();
    if (!client) co_return;
    const std::string peer = client->local_address()->to_string();
    auto item = co_await conns.next();
    EXPECT_TRUE(item && *item);
    if (!item || !*item) co_return;
    TcpStream server(std::move(**item));
    const std::optional<net::Error> last =
        co_await send_until_broken_pipe(*client, server);
    EXPECT_TRUE(last.has_value());
    if (last) {
      EXPECT_EQ(last->message(), "send " + peer + ": Broken pipe");
    }
  }());
}

TEST(NetTest, ConnectTimesOutWhenTheBacklogIsFull) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    // backlog 0 and no accept: once the queue holds what it can (one
    // connection on Linux), further SYNs are dropped and connects hang.
    auto l = TcpListener::bind(SocketAddress::ipv4_loopback(0),
                               net::ListenOptions{.backlog = 0});
    EXPECT_TRUE(l) << l.error().message();
    if (!l) co_return;
    const SocketAddress addr = *l->local_address();
    const uint64_t base = this_shard::counters().ops_in_flight;
    std::vector<TcpStream> held;
    std::optional<net::Error> err;
    for (int i = 0; i < 8 && !err; ++i) {
      auto c = co_await TcpStream::connect(addr, std::chrono::milliseconds(50));
      if (c) {
        held.push_back(std::move(*c));
      } else {
        err = c.error();
      }
    }
    EXPECT_TRUE(err.has_value())
        << held.size() << " connects succeeded against a full backlog";
    if (!err) co_return;
    EXPECT_EQ(err->code, errno_code(ETIMEDOUT)) << err->message();
    EXPECT_EQ(err->message(),
              "connect " + addr.to_string() + ": timed out after 50 ms");
    // The connect and its link timeout have both completed.
    const bool drained = co_await wait_for_in_flight_at_most(base);
    EXPECT_TRUE(drained);
  }());
}

TEST(NetTest, Ipv6Loopback) {
  if (!ipv6_loopback_available()) {
    GTEST_SKIP() << "IPv6 loopback [::1] cannot be bound here";
  }
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair(SocketAddress::ipv6_loopback(0));
    if (!ok(p)) co_return;
    EXPECT_TRUE(p.listen_addr.is_ipv6());
    EXPECT_THAT(p.listen_addr.to_string(), HasSubstr("[::1]:"));
    auto sent = co_await p.client.send_all(std::string("over v6"));
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    auto got = co_await p.server.recv_exact(std::vector<char>(7));
    EXPECT_EQ(str(got.buf, got.res.value_or(0)), "over v6");
  }());
}

// ---------------------------------------------------------------------------
// Cancellation

TEST(NetTest, StopRequestFromAnotherThreadCancelsABlockedRecv) {
  Runtime rt(RuntimeOptions{.shards = 1});
  std::stop_source stop;
  absl::Notification recv_in_flight;
  std::thread stopper([&] {
    // Bounded: if the test fails before notifying, stop anyway.
    recv_in_flight.WaitForNotificationWithTimeout(absl::Seconds(60));
    stop.request_stop();
  });
  rt.block_on([](std::stop_token st,
                 absl::Notification* in_flight) -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) {
      in_flight->Notify();
      co_return;
    }
    auto blocked =
        [](TcpStream* s,
           std::stop_token st) -> Task<net::IoResult<std::vector<char>>> {
      co_return co_await s->recv(std::vector<char>(16), std::move(st));
    };
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto h = spawn(blocked(&p.server, st));
    const bool reached = co_await wait_for_ops_in_flight(base + 1);
    EXPECT_TRUE(reached);
    EXPECT_FALSE(h.is_finished());
    in_flight->Notify();
    auto r = co_await h;
    EXPECT_FALSE(r.res) << "received " << r.res.value_or(0) << " bytes";
    if (!r.res) {
      EXPECT_EQ(r.res.error().code, errno_code(ECANCELED));
      EXPECT_THAT(r.res.error().message(),
                  HasSubstr("recv " + p.client.local_address()->to_string()));
    }
    EXPECT_EQ(r.buf.size(), 16u);  // the buffer comes back
    // The stream is intact: the cancelled recv took nothing.
    auto sent = co_await p.client.send(std::string("after"));
    EXPECT_EQ(sent.res.value_or(0), 5u);
    auto got = co_await p.server.recv_exact(std::vector<char>(5));
    EXPECT_EQ(str(got.buf, got.res.value_or(0)), "after");
  }(stop.get_token(), &recv_in_flight));
  stopper.join();
}

TEST(NetTest, StoppedTokenCancelsRecvAtOnce) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    std::stop_source stop;
    stop.request_stop();
    auto r = co_await p.server.recv(std::vector<char>(16), stop.get_token());
    EXPECT_FALSE(r.res);
    if (!r.res) {
      EXPECT_EQ(r.res.error().code, errno_code(ECANCELED));
    }
    // Likewise an accept.
    auto l = TcpListener::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(l);
    if (!l) co_return;
    auto a = co_await l->accept_one(stop.get_token());
    EXPECT_FALSE(a);
    if (!a) {
      EXPECT_EQ(a.error().code, errno_code(ECANCELED));
    }
  }());
}

Eager await_recv(TcpStream* s, bool* destroyed) {
  TrackedBuffer buf(64, destroyed);
  auto r = co_await s->recv(std::move(buf));
  ADD_FAILURE() << "a destroyed coroutine was resumed with "
                << r.res.value_or(0);
}

TEST(NetTest, DroppedTaskWithARecvInFlightFreesEverything) {
  Runtime rt(RuntimeOptions{.shards = 1});
  bool destroyed = false;
  rt.block_on([](bool* destroyed) -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    const ShardCounters before = this_shard::counters();
    Eager waiter = await_recv(&p.server, destroyed);
    const bool reached =
        co_await wait_for_ops_in_flight(before.ops_in_flight + 1);
    EXPECT_TRUE(reached);
    EXPECT_FALSE(waiter.done());
    waiter.destroy();
    EXPECT_FALSE(*destroyed) << "freed before the final CQE";
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    const bool drained =
        co_await wait_for_in_flight_at_most(before.ops_in_flight);
    EXPECT_TRUE(drained) << "the orphaned recv never completed";
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight);
    EXPECT_TRUE(*destroyed) << "the buffer was not released";
    // The stream is intact.
    auto sent = co_await p.client.send(std::string("still here"));
    EXPECT_EQ(sent.res.value_or(0), 10u);
    auto got = co_await p.server.recv_exact(std::vector<char>(10));
    EXPECT_EQ(str(got.buf, got.res.value_or(0)), "still here");
  }(&destroyed));
  EXPECT_TRUE(destroyed);
}

// ---------------------------------------------------------------------------
// UdpSocket

TEST(NetTest, UdpSendToAndRecvFrom) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto a = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
    auto b = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(a && b);
    if (!a || !b) co_return;
    const SocketAddress a_addr = *a->local_address();
    const SocketAddress b_addr = *b->local_address();
    EXPECT_NE(a_addr.port(), 0);

    auto sent = co_await a->send_to(std::string("hello udp"), b_addr);
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    EXPECT_EQ(sent.res.value_or(0), 9u);
    auto got = co_await b->recv_from(std::vector<char>(64));
    EXPECT_TRUE(got.res) << got.res.error().message();
    EXPECT_EQ(str(got.buf, got.res.value_or(0)), "hello udp");
    EXPECT_EQ(got.from, a_addr);
    EXPECT_FALSE(got.truncated);

    // A datagram larger than the buffer: cut, and flagged.
    auto big = co_await a->send_to(pattern(1000), b_addr);
    EXPECT_EQ(big.res.value_or(0), 1000u);
    auto cut = co_await b->recv_from(std::vector<char>(100));
    EXPECT_TRUE(cut.res) << cut.res.error().message();
    EXPECT_EQ(cut.res.value_or(0), 100u);
    EXPECT_TRUE(cut.truncated);
    const std::vector<char> expected = pattern(100);
    EXPECT_TRUE(cut.buf == expected);
    // The rest of that datagram is gone: the next one is the next datagram.
    auto next = co_await a->send_to(std::string("next"), b_addr);
    EXPECT_EQ(next.res.value_or(0), 4u);
    auto after = co_await b->recv_from(std::vector<char>(100));
    EXPECT_EQ(str(after.buf, after.res.value_or(0)), "next");
    EXPECT_FALSE(after.truncated);
  }());
}

TEST(NetTest, ConnectedUdpSocketTalksToItsPeerOnly) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto a = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
    auto b = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
    auto stranger = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(a && b && stranger);
    if (!a || !b || !stranger) co_return;
    const SocketAddress a_addr = *a->local_address();
    const SocketAddress b_addr = *b->local_address();
    auto c = a->connect(b_addr);
    EXPECT_TRUE(c) << c.error().message();
    EXPECT_EQ(*a->peer_address(), b_addr);

    // send() without an address goes to the connected peer.
    auto sent = co_await a->send(std::string("to my peer"));
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    EXPECT_EQ(sent.res.value_or(0), 10u);
    auto got = co_await b->recv_from(std::vector<char>(64));
    EXPECT_EQ(str(got.buf, got.res.value_or(0)), "to my peer");
    EXPECT_EQ(got.from, a_addr);
    // So does send_to() with an empty address.
    auto sent2 = co_await a->send_to(std::string("again"), SocketAddress{});
    EXPECT_TRUE(sent2.res) << sent2.res.error().message();
    auto got2 = co_await b->recv_from(std::vector<char>(64));
    EXPECT_EQ(str(got2.buf, got2.res.value_or(0)), "again");

    // A datagram from anyone else is dropped; the peer's arrives.
    auto noise = co_await stranger->send_to(std::string("noise"), a_addr);
    EXPECT_TRUE(noise.res) << noise.res.error().message();
    auto reply = co_await b->send_to(std::string("reply"), a_addr);
    EXPECT_TRUE(reply.res) << reply.res.error().message();
    auto in = co_await a->recv(std::vector<char>(64));
    EXPECT_TRUE(in.res) << in.res.error().message();
    EXPECT_EQ(str(in.buf, in.res.value_or(0)), "reply");
    // recv() cuts a datagram larger than its buffer.
    auto big = co_await b->send_to(std::string(50, 'q'), a_addr);
    EXPECT_EQ(big.res.value_or(0), 50u);
    auto cut = co_await a->recv(std::vector<char>(20));
    EXPECT_EQ(cut.res.value_or(0), 20u);
    EXPECT_EQ(str(cut.buf, 20), std::string(20, 'q'));
  }());
}

// ---------------------------------------------------------------------------
// Unix-domain sockets

class UnixNetTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = test::socket_temp_dir() + "net_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

// Listens on `name`, connects, accepts, and echoes both ways.
Task<void> unix_round_trip(std::string name) {
  auto l = net::UnixListener::bind(name);
  EXPECT_TRUE(l) << l.error().message();
  if (!l) co_return;
  auto local = l->local_address();
  EXPECT_TRUE(local) << local.error().message();
  if (local) {
    EXPECT_TRUE(local->is_unix());
    EXPECT_EQ(local->to_string(), name);
  }
  auto client = co_await net::UnixStream::connect(name);
  EXPECT_TRUE(client) << client.error().message();
  auto server = co_await l->accept_one();
  EXPECT_TRUE(server) << server.error().message();
  if (!client || !server) co_return;
  EXPECT_EQ(client->peer_address()->to_string(), name);
  auto s1 = co_await client->send_all(std::string("to server"));
  EXPECT_TRUE(s1.res) << s1.res.error().message();
  auto r1 = co_await server->recv_exact(std::vector<char>(9));
  EXPECT_EQ(str(r1.buf, r1.res.value_or(0)), "to server");
  auto s2 = co_await server->send_all(std::string("to client"));
  EXPECT_TRUE(s2.res) << s2.res.error().message();
  auto r2 = co_await client->recv_exact(std::vector<char>(9));
  EXPECT_EQ(str(r2.buf, r2.res.value_or(0)), "to client");
  // A second listener on the same name is refused.
  auto again = net::UnixListener::bind(name);
  EXPECT_FALSE(again);
  if (!again) {
    EXPECT_EQ(again.error().code, errno_code(EADDRINUSE));
  }
}

TEST_F(UnixNetTest, PathInATempDir) {
  const std::string path = dir_ + "/echo.sock";
  rt_.block_on(unix_round_trip(path));
  // The socket file exists (binding does not remove it later).
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST_F(UnixNetTest, AbstractName) {
  static std::atomic<int> counter{0};
  const std::string name = "@shardio-net-test-" + std::to_string(::getpid()) +
                           "-" + std::to_string(counter++);
  rt_.block_on(unix_round_trip(name));
}

// A Unix path in use (by a listener, or a stale socket file left by one) is
// EADDRINUSE; the message should fit a path (no advice about ports).
TEST_F(UnixNetTest, AddressInUseMessageFitsAUnixPath) {
  const std::string path = dir_ + "/taken.sock";
  auto first = net::UnixListener::bind(path);
  ASSERT_TRUE(first) << first.error().message();
  auto second = net::UnixListener::bind(path);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errno_code(EADDRINUSE));
  EXPECT_THAT(second.error().message(), HasSubstr("bind " + path));
  EXPECT_THAT(second.error().message(), testing::Not(HasSubstr("port")));
  // The listener goes; its socket file stays and still blocks the path.
  *first = net::UnixListener();
  ASSERT_TRUE(std::filesystem::exists(path));
  auto stale = net::UnixListener::bind(path);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, errno_code(EADDRINUSE));
  EXPECT_THAT(stale.error().message(), testing::Not(HasSubstr("port")));
  // Once unlinked, the path is free.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  auto fresh = net::UnixListener::bind(path);
  EXPECT_TRUE(fresh) << fresh.error().message();
}

TEST_F(UnixNetTest, ConnectToAMissingPathNamesIt) {
  const std::string path = dir_ + "/nobody.sock";
  auto r = rt_.block_on(net::UnixStream::connect(path));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errno_code(ENOENT));
  EXPECT_EQ(r.error().message(),
            "connect " + path + ": No such file or directory");
  auto too_long =
      rt_.block_on(net::UnixStream::connect("/" + std::string(200, 'x')));
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, errno_code(ENAMETOOLONG));
}

TEST_F(UnixNetTest, MultishotAcceptOfUnixClients) {
  const std::string path = dir_ + "/many.sock";
  rt_.block_on([](std::string path) -> Task<void> {
    auto l = net::UnixListener::bind(path);
    EXPECT_TRUE(l) << l.error().message();
    if (!l) co_return;
    auto conns = l->accept();
    constexpr int kClients = 8;
    std::vector<net::UnixStream> clients;
    for (int i = 0; i < kClients; ++i) {
      auto c = co_await net::UnixStream::connect(path);
      EXPECT_TRUE(c) << c.error().message();
      if (!c) co_return;
      clients.push_back(std::move(*c));
    }
    for (int i = 0; i < kClients; ++i) {
      auto item = co_await conns.next();
      EXPECT_TRUE(item && *item);
      if (!item || !*item) co_return;
      net::UnixStream s(std::move(**item));
      auto sent =
          co_await s.send_all(std::string(1, static_cast<char>('a' + i)));
      EXPECT_TRUE(sent.res);
    }
    // Every client got exactly one byte: accepted once each.
    std::string letters;
    for (auto& c : clients) {
      auto r = co_await c.recv_exact(std::vector<char>(1));
      EXPECT_TRUE(r.res) << r.res.error().message();
      letters += r.buf[0];
    }
    std::sort(letters.begin(), letters.end());
    EXPECT_EQ(letters, "abcdefgh");
    conns.cancel();
    while (co_await conns.next()) {
    }
  }(path));
}

TEST(NetTest, UnixStreamPair) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto pair = net::UnixStream::pair();
    EXPECT_TRUE(pair) << pair.error().message();
    if (!pair) co_return;
    auto& [a, b] = *pair;
    EXPECT_TRUE(a.is_open() && b.is_open());
    EXPECT_NE(::fcntl(a.fd(), F_GETFD) & FD_CLOEXEC, 0);
    auto s = co_await a.send_all(std::string("one way"));
    EXPECT_TRUE(s.res);
    auto r = co_await b.recv_exact(std::vector<char>(7));
    EXPECT_EQ(str(r.buf, r.res.value_or(0)), "one way");
    auto s2 = co_await b.send_all(std::string("other way"));
    EXPECT_TRUE(s2.res);
    auto r2 = co_await a.recv_exact(std::vector<char>(9));
    EXPECT_EQ(str(r2.buf, r2.res.value_or(0)), "other way");
    auto sh = co_await a.shutdown();
    EXPECT_TRUE(sh) << sh.error().message();
    auto eof = co_await b.recv(std::vector<char>(8));
    EXPECT_TRUE(eof.res);
    EXPECT_EQ(eof.res.value_or(99), 0u);
  }());
}

// ---------------------------------------------------------------------------
// Handing a connection to another shard

TEST(NetTest, AcceptOnOneShardServeOnAnother) {
  Runtime rt(RuntimeOptions{.shards = 2});
  rt.block_on([]() -> Task<void> {
    EXPECT_EQ(this_shard::id(), 0u);
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    const int fd = p.server.release();
    EXPECT_FALSE(p.server.is_open());
    // Shard 1 adopts the fd and echoes one message.
    auto serve = [fd]() -> Task<unsigned> {
      TcpStream s{OwnedFd(fd)};
      auto r = co_await s.recv_exact(std::vector<char>(5));
      EXPECT_TRUE(r.res) << r.res.error().message();
      auto w = co_await s.send_all(std::move(r.buf));
      EXPECT_TRUE(w.res) << w.res.error().message();
      co_return this_shard::id();
    };
    auto served = spawn_on(1, std::move(serve));
    auto sent = co_await p.client.send_all(std::string("hello"));
    EXPECT_TRUE(sent.res) << sent.res.error().message();
    auto echo = co_await p.client.recv_exact(std::vector<char>(5));
    EXPECT_TRUE(echo.res) << echo.res.error().message();
    EXPECT_EQ(str(echo.buf, echo.res.value_or(0)), "hello");
    const unsigned where = co_await served;
    EXPECT_EQ(where, 1u);
    // Shard 1's stream closed the fd when it went: end of stream here.
    auto eof = co_await p.client.recv(std::vector<char>(8));
    EXPECT_EQ(eof.res.value_or(99), 0u);
  }());
}

TEST(NetTest, SubmitToAnotherShardWithAMovedStream) {
  Runtime rt(RuntimeOptions{.shards = 2});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    auto sent = co_await p.client.send_all(std::string("ping"));
    EXPECT_TRUE(sent.res);
    // A socket object moves between shards as a value.
    auto on_one = [s = std::move(p.server)]() mutable -> Task<std::string> {
      auto r = co_await s.recv_exact(std::vector<char>(4));
      EXPECT_TRUE(r.res) << r.res.error().message();
      auto w = co_await s.send_all(std::string("pong"));
      EXPECT_TRUE(w.res) << w.res.error().message();
      co_return str(r.buf, r.res.value_or(0)) + "@" +
          std::to_string(this_shard::id());
    };
    const std::string got = co_await submit_to(1, std::move(on_one));
    EXPECT_EQ(got, "ping@1");
    auto echo = co_await p.client.recv_exact(std::vector<char>(4));
    EXPECT_EQ(str(echo.buf, echo.res.value_or(0)), "pong");
  }());
}

// ---------------------------------------------------------------------------
// Sockets used after close()

TEST(NetTest, ClosedSocketsGiveClearErrors) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    TcpPair p = co_await tcp_pair();
    if (!ok(p)) co_return;
    auto c1 = co_await p.client.close();
    EXPECT_TRUE(c1) << c1.error().message();
    EXPECT_FALSE(p.client.is_open());
    EXPECT_EQ(p.client.fd(), -1);

    auto c2 = co_await p.client.close();
    EXPECT_FALSE(c2);
    if (!c2) {
      EXPECT_EQ(c2.error().code, errno_code(EBADF));
      EXPECT_EQ(c2.error().message(), "close: the socket is not open");
    }
    auto s = co_await p.client.send(std::string("x"));
    EXPECT_FALSE(s.res);
    if (!s.res) {
      EXPECT_EQ(s.res.error().code, errno_code(EBADF));
      EXPECT_THAT(s.res.error().message(), HasSubstr("send"));
    }
    auto sa = co_await p.client.send_all(std::string("x"));
    EXPECT_FALSE(sa.res);
    if (!sa.res) {
      EXPECT_EQ(sa.res.error().code, errno_code(EBADF));
    }
    auto r = co_await p.client.recv(std::vector<char>(4));
    EXPECT_FALSE(r.res);
    if (!r.res) {
      EXPECT_EQ(r.res.error().code, errno_code(EBADF));
    }
    auto re = co_await p.client.recv_exact(std::vector<char>(4));
    EXPECT_FALSE(re.res);
    if (!re.res) {
      EXPECT_EQ(re.res.error().code, errno_code(EBADF));
    }
    auto sh = co_await p.client.shutdown();
    EXPECT_FALSE(sh);
    if (!sh) {
      EXPECT_EQ(sh.error().code, errno_code(EBADF));
    }
    auto la = p.client.local_address();
    EXPECT_FALSE(la);
    if (!la) {
      EXPECT_EQ(la.error().code, errno_code(EBADF));
    }
    auto nd = p.client.set_nodelay(true);
    EXPECT_FALSE(nd);
    if (!nd) {
      EXPECT_EQ(nd.error().code, errno_code(EBADF));
    }

    // A listener, closed.
    auto l = TcpListener::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(l);
    if (!l) co_return;
    auto lc = co_await l->close();
    EXPECT_TRUE(lc) << lc.error().message();
    auto a = co_await l->accept_one();
    EXPECT_FALSE(a);
    if (!a) {
      EXPECT_EQ(a.error().code, errno_code(EBADF));
    }
    auto conns = l->accept();
    auto item = co_await conns.next();
    EXPECT_TRUE(item.has_value());
    if (item) {
      EXPECT_FALSE(*item);
      if (!*item) {
        EXPECT_EQ(item->error(), errno_code(EBADF));
      }
    }
    auto lc2 = co_await l->close();
    EXPECT_FALSE(lc2);
    if (!lc2) {
      EXPECT_EQ(lc2.error().message(), "close: the socket is not open");
    }

    // A UDP socket, closed.
    auto u = net::UdpSocket::bind(SocketAddress::ipv4_loopback(0));
    EXPECT_TRUE(u);
    if (!u) co_return;
    auto uc = co_await u->close();
    EXPECT_TRUE(uc);
    auto us =
        co_await u->send_to(std::string("x"), SocketAddress::ipv4_loopback(9));
    EXPECT_FALSE(us.res);
    if (!us.res) {
      EXPECT_EQ(us.res.error().code, errno_code(EBADF));
    }
    auto ur = co_await u->recv_from(std::vector<char>(4));
    EXPECT_FALSE(ur.res);
    if (!ur.res) {
      EXPECT_EQ(ur.res.error().code, errno_code(EBADF));
    }

    // A stream that was never opened.
    TcpStream never;
    auto n = co_await never.recv(std::vector<char>(4));
    EXPECT_FALSE(n.res);
    if (!n.res) {
      EXPECT_EQ(n.res.error().code, errno_code(EBADF));
    }
    auto nc = co_await never.close();
    EXPECT_FALSE(nc);
  }());
}

TEST(NetTest, DestructorClosesTheSocket) {
  int fd = -1;
  {
    auto l = TcpListener::bind(SocketAddress::ipv4_loopback(0));
    ASSERT_TRUE(l) << l.error().message();
    fd = l->fd();
    ASSERT_GE(fd, 0);
    ASSERT_NE(::fcntl(fd, F_GETFD), -1);
  }
  errno = 0;
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace shardio
