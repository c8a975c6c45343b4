// Tests for the socket ops of ops/net.h, submitted raw with submit(): Socket,
// Connect, Accept, Send/Recv, SendMsg/RecvMsg, Shutdown, PollAdd and Close
// over IPv4, IPv6 and Unix-domain loopback; and the errors each gives for a
// descriptor that is not open (EBADF) or not a socket (ENOTSOCK).
//
// The other end of each exchange is set up with plain syscalls where the op
// under test is not the point (a listening socket, a bound datagram socket).
// IPv6 tests skip where [::1] cannot be bound.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "shardio/net/address.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/net.h"
#include "shardio/owned_fd.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using net::SocketAddress;

static_assert(Operation<Socket>);
static_assert(Operation<Connect>);
static_assert(Operation<Accept>);
static_assert(Operation<Send<std::string>>);
static_assert(Operation<Recv<std::vector<char>>>);
static_assert(Operation<SendMsg<std::string>>);
static_assert(Operation<RecvMsg<std::vector<char>>>);
static_assert(Operation<Shutdown>);
static_assert(Operation<PollAdd>);
static_assert(Operation<Close>);

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

std::string str(const std::vector<char>& v, std::size_t n) {
  return std::string(v.data(), n < v.size() ? n : v.size());
}

bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const SocketAddress a = SocketAddress::ipv6_loopback(0);
  const bool ok = ::bind(fd, a.get(), a.size()) == 0;
  ::close(fd);
  return ok;
}

enum class Family { kIpv4, kIpv6, kUnix };

std::string family_name(const testing::TestParamInfo<Family>& info) {
  switch (info.param) {
    case Family::kIpv4:
      return "Ipv4";
    case Family::kIpv6:
      return "Ipv6";
    case Family::kUnix:
      return "Unix";
  }
  return "Unknown";
}

void PrintTo(Family f, std::ostream* os) {
  *os << (f == Family::kIpv4 ? "IPv4" : f == Family::kIpv6 ? "IPv6" : "Unix");
}

// Sockets of one address family, with their addresses and a runtime.
class NetOpsTest : public testing::TestWithParam<Family> {
 protected:
  void SetUp() override {
    if (GetParam() == Family::kIpv6 && !ipv6_loopback_available()) {
      GTEST_SKIP() << "IPv6 loopback [::1] cannot be bound here";
    }
    if (GetParam() == Family::kUnix) {
      std::string tmpl = test::socket_temp_dir() + "net_ops_test_XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
      dir_ = tmpl;
    }
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  int domain() const {
    switch (GetParam()) {
      case Family::kIpv4:
        return AF_INET;
      case Family::kIpv6:
        return AF_INET6;
      case Family::kUnix:
        return AF_UNIX;
    }
    return AF_UNSPEC;
  }

  // An address to bind: port 0 on loopback, or a fresh path in the dir.
  SocketAddress fresh_address() {
    switch (GetParam()) {
      case Family::kIpv4:
        return SocketAddress::ipv4_loopback(0);
      case Family::kIpv6:
        return SocketAddress::ipv6_loopback(0);
      case Family::kUnix:
        break;
    }
    auto a = SocketAddress::unix_path(dir_ + "/s" + std::to_string(next_++));
    EXPECT_TRUE(a) << a.error().message();
    return a ? *a : SocketAddress{};
  }

  // A socket of `type` bound to a fresh address (plain syscalls); its
  // address in `*bound`. Listens when `listen_backlog` >= 0.
  OwnedFd bound_socket(int type, SocketAddress* bound,
                       int listen_backlog = -1) {
    OwnedFd fd(::socket(domain(), type | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(fd.valid()) << std::strerror(errno);
    const SocketAddress addr = fresh_address();
    EXPECT_EQ(::bind(fd.get(), addr.get(), addr.size()), 0)
        << addr.to_string() << ": " << std::strerror(errno);
    if (listen_backlog >= 0) {
      EXPECT_EQ(::listen(fd.get(), listen_backlog), 0) << std::strerror(errno);
    }
    auto local = SocketAddress::local_of(fd.get());
    EXPECT_TRUE(local) << local.error().message();
    if (local) *bound = *local;
    return fd;
  }

  std::string dir_;
  int next_ = 0;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

INSTANTIATE_TEST_SUITE_P(Families, NetOpsTest,
                         testing::Values(Family::kIpv4, Family::kIpv6,
                                         Family::kUnix),
                         family_name);

struct Conn {
  OwnedFd client;
  OwnedFd server;
};

// A connected stream pair made with the ops: Socket, Connect, Accept.
Task<Conn> connect_with_ops(int domain, SocketAddress listen_addr,
                            int listen_fd) {
  Socket sock(domain, SOCK_STREAM);
  auto client = co_await submit(std::move(sock));
  EXPECT_TRUE(client) << client.error().message();
  if (!client) co_return Conn{};
  Connect conn(client->get(), listen_addr);
  auto c = co_await submit(std::move(conn));
  EXPECT_TRUE(c) << c.error().message();
  Accept acc(listen_fd);
  auto a = co_await submit(std::move(acc));
  EXPECT_TRUE(a) << a.error().message();
  if (!a) co_return Conn{};
  co_return Conn{std::move(*client), std::move(a->fd)};
}

int sockopt(int fd, int name) {
  int v = -1;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, SOL_SOCKET, name, &v, &len) != 0) return -1;
  return v;
}

// ---------------------------------------------------------------------------
// Socket

TEST_P(NetOpsTest, SocketCreatesACloseOnExecSocket) {
  const int dom = domain();
  rt_.block_on([](int dom) -> Task<void> {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      Socket op(dom, type);
      auto fd = co_await submit(std::move(op));
      EXPECT_TRUE(fd) << fd.error().message();
      if (!fd) co_return;
      EXPECT_TRUE(fd->valid());
      EXPECT_EQ(sockopt(fd->get(), SO_DOMAIN), dom);
      EXPECT_EQ(sockopt(fd->get(), SO_TYPE), type);
      EXPECT_NE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);
    }
  }(dom));
}

TEST(NetOpsErrorTest, SocketOfAnUnknownFamilyFails) {
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    Socket op(AF_MAX + 10, SOCK_STREAM);
    auto fd = co_await submit(std::move(op));
    EXPECT_FALSE(fd);
    if (!fd) {
      EXPECT_EQ(fd.error(), errno_code(EAFNOSUPPORT));
    }
  }());
}

// ---------------------------------------------------------------------------
// Connect and Accept

TEST_P(NetOpsTest, ConnectThenAcceptGivesThePeerAddress) {
  SocketAddress listen_addr;
  OwnedFd listener = bound_socket(SOCK_STREAM, &listen_addr, 16);
  ASSERT_TRUE(listener.valid());
  rt_.block_on([](int dom, SocketAddress addr, int lfd) -> Task<void> {
    Socket sock(dom, SOCK_STREAM);
    auto client = co_await submit(std::move(sock));
    EXPECT_TRUE(client) << client.error().message();
    if (!client) co_return;
    Connect conn(client->get(), addr);
    auto c = co_await submit(std::move(conn));
    EXPECT_TRUE(c) << c.error().message();
    Accept acc(lfd);
    auto a = co_await submit(std::move(acc));
    EXPECT_TRUE(a) << a.error().message();
    if (!a) co_return;
    EXPECT_TRUE(a->fd.valid());
    EXPECT_NE(::fcntl(a->fd.get(), F_GETFD) & FD_CLOEXEC, 0);
    // The peer the accept reports is the client's own address (for Unix, an
    // unnamed socket on both sides of the comparison).
    auto client_local = SocketAddress::local_of(client->get());
    EXPECT_TRUE(client_local) << client_local.error().message();
    EXPECT_EQ(a->peer, *client_local)
        << a->peer.to_string() << " vs " << client_local->to_string();
    EXPECT_EQ(a->peer.family(), dom);
    if (dom != AF_UNIX) {
      EXPECT_NE(a->peer.port(), 0);
    }
    // And the client is connected to the listener's address.
    auto client_peer = SocketAddress::peer_of(client->get());
    EXPECT_TRUE(client_peer) << client_peer.error().message();
    EXPECT_EQ(*client_peer, addr);
  }(domain(), listen_addr, listener.get()));
}

TEST_P(NetOpsTest, AcceptWaitsForAConnection) {
  SocketAddress listen_addr;
  OwnedFd listener = bound_socket(SOCK_STREAM, &listen_addr, 16);
  ASSERT_TRUE(listener.valid());
  rt_.block_on([](int dom, SocketAddress addr, int lfd) -> Task<void> {
    auto accept_one = [](int lfd) -> Task<Result<Accepted>> {
      Accept acc(lfd);
      co_return co_await submit(std::move(acc));
    };
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto pending = spawn(accept_one(lfd));
    const bool in_flight = co_await wait_for_ops_in_flight(base + 1);
    EXPECT_TRUE(in_flight);
    EXPECT_FALSE(pending.is_finished());
    Socket sock(dom, SOCK_STREAM);
    auto client = co_await submit(std::move(sock));
    EXPECT_TRUE(client) << client.error().message();
    if (!client) co_return;
    Connect conn(client->get(), addr);
    auto c = co_await submit(std::move(conn));
    EXPECT_TRUE(c) << c.error().message();
    auto a = co_await pending;
    EXPECT_TRUE(a) << a.error().message();
    if (!a) co_return;
    EXPECT_EQ(a->peer, *SocketAddress::local_of(client->get()));
  }(domain(), listen_addr, listener.get()));
}

TEST_P(NetOpsTest, ConnectToNobodyListeningIsRefused) {
  // Bound but not listening: the address exists and refuses connections.
  SocketAddress addr;
  OwnedFd bound = bound_socket(SOCK_STREAM, &addr);
  ASSERT_TRUE(bound.valid());
  auto r = rt_.block_on([](int dom, SocketAddress addr) -> Task<Result<void>> {
    Socket sock(dom, SOCK_STREAM);
    auto fd = co_await submit(std::move(sock));
    EXPECT_TRUE(fd) << fd.error().message();
    if (!fd) co_return Result<void>{};
    Connect conn(fd->get(), addr);
    co_return co_await submit(std::move(conn));
  }(domain(), addr));
  ASSERT_FALSE(r) << "connected to " << addr.to_string();
  EXPECT_EQ(r.error(), errno_code(ECONNREFUSED)) << r.error().message();
}

TEST(NetOpsErrorTest, ConnectToAMissingUnixPathIsENOENT) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const std::string path = test::socket_temp_dir() +
                           "net_ops_test_no_such_socket_" +
                           std::to_string(::getpid());
  auto addr = SocketAddress::unix_path(path);
  ASSERT_TRUE(addr) << addr.error().message();
  auto r = rt.block_on([](SocketAddress addr) -> Task<Result<void>> {
    Socket sock(AF_UNIX, SOCK_STREAM);
    auto fd = co_await submit(std::move(sock));
    EXPECT_TRUE(fd) << fd.error().message();
    if (!fd) co_return Result<void>{};
    Connect conn(fd->get(), addr);
    co_return co_await submit(std::move(conn));
  }(*addr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errno_code(ENOENT)) << r.error().message();
}

// ---------------------------------------------------------------------------
// Send and Recv, Shutdown, PollAdd, Close

TEST_P(NetOpsTest, SendAndRecvBothWays) {
  SocketAddress listen_addr;
  OwnedFd listener = bound_socket(SOCK_STREAM, &listen_addr, 16);
  ASSERT_TRUE(listener.valid());
  rt_.block_on([](int dom, SocketAddress addr, int lfd) -> Task<void> {
    Conn conn = co_await connect_with_ops(dom, addr, lfd);
    if (!conn.client.valid() || !conn.server.valid()) co_return;

    Send send(conn.client.get(), std::string("hello, server"));
    auto [sent, sbuf] = co_await submit(std::move(send));
    EXPECT_TRUE(sent) << sent.error().message();
    EXPECT_EQ(sent.value_or(0), 13u);
    EXPECT_EQ(sbuf, "hello, server");  // the buffer comes back

    Recv recv(conn.server.get(), std::vector<char>(64));
    auto [got, rbuf] = co_await submit(std::move(recv));
    EXPECT_TRUE(got) << got.error().message();
    EXPECT_EQ(str(rbuf, got.value_or(0)), "hello, server");

    // A recv posted first waits for the data.
    auto receive = [](int fd) -> Task<std::string> {
      Recv recv(fd, std::vector<char>(64));
      auto [n, buf] = co_await submit(std::move(recv));
      EXPECT_TRUE(n) << n.error().message();
      co_return str(buf, n.value_or(0));
    };
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto pending = spawn(receive(conn.client.get()));
    const bool in_flight = co_await wait_for_ops_in_flight(base + 1);
    EXPECT_TRUE(in_flight);
    EXPECT_FALSE(pending.is_finished());
    Send reply(conn.server.get(), std::string("hello, client"));
    auto [rn, rb] = co_await submit(std::move(reply));
    EXPECT_EQ(rn.value_or(0), 13u);
    const std::string got_back = co_await pending;
    EXPECT_EQ(got_back, "hello, client");
  }(domain(), listen_addr, listener.get()));
}

TEST_P(NetOpsTest, ShutdownWriteIsEndOfStreamForThePeer) {
  SocketAddress listen_addr;
  OwnedFd listener = bound_socket(SOCK_STREAM, &listen_addr, 16);
  ASSERT_TRUE(listener.valid());
  rt_.block_on([](int dom, SocketAddress addr, int lfd) -> Task<void> {
    Conn conn = co_await connect_with_ops(dom, addr, lfd);
    if (!conn.client.valid() || !conn.server.valid()) co_return;
    Send send(conn.client.get(), std::string("last words"));
    auto [sent, sbuf] = co_await submit(std::move(send));
    EXPECT_EQ(sent.value_or(0), 10u);
    Shutdown sh(conn.client.get(), SHUT_WR);
    auto r = co_await submit(std::move(sh));
    EXPECT_TRUE(r) << r.error().message();

    // The peer reads what was sent, then 0: end of stream.
    Recv first(conn.server.get(), std::vector<char>(64));
    auto [n1, b1] = co_await submit(std::move(first));
    EXPECT_EQ(str(b1, n1.value_or(0)), "last words");
    Recv second(conn.server.get(), std::vector<char>(64));
    auto [n2, b2] = co_await submit(std::move(second));
    EXPECT_TRUE(n2) << n2.error().message();
    EXPECT_EQ(n2.value_or(99), 0u);

    // The other direction still works (a half-close).
    Send back(conn.server.get(), std::string("ack"));
    auto [bn, bb] = co_await submit(std::move(back));
    EXPECT_EQ(bn.value_or(0), 3u);
    Recv in(conn.client.get(), std::vector<char>(64));
    auto [n3, b3] = co_await submit(std::move(in));
    EXPECT_EQ(str(b3, n3.value_or(0)), "ack");

    // Sending after SHUT_WR is EPIPE (MSG_NOSIGNAL: no SIGPIPE).
    Send late(conn.client.get(), std::string("more"));
    auto [ln, lb] = co_await submit(std::move(late));
    EXPECT_FALSE(ln);
    if (!ln) {
      EXPECT_EQ(ln.error(), errno_code(EPIPE));
    }
  }(domain(), listen_addr, listener.get()));
}

TEST_P(NetOpsTest, PollAddReportsReadinessOnce) {
  SocketAddress listen_addr;
  OwnedFd listener = bound_socket(SOCK_STREAM, &listen_addr, 16);
  ASSERT_TRUE(listener.valid());
  rt_.block_on([](int dom, SocketAddress addr, int lfd) -> Task<void> {
    Conn conn = co_await connect_with_ops(dom, addr, lfd);
    if (!conn.client.valid() || !conn.server.valid()) co_return;

    // A fresh connection is writable at once.
    PollAdd out(conn.client.get(), POLLOUT);
    auto w = co_await submit(std::move(out));
    EXPECT_TRUE(w) << w.error().message();
    EXPECT_NE(w.value_or(0) & POLLOUT, 0u);

    // Nothing to read yet: the poll waits until data comes.
    auto poll_in = [](int fd) -> Task<Result<unsigned>> {
      PollAdd op(fd, POLLIN);
      co_return co_await submit(std::move(op));
    };
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto pending = spawn(poll_in(conn.server.get()));
    const bool in_flight = co_await wait_for_ops_in_flight(base + 1);
    EXPECT_TRUE(in_flight);
    EXPECT_FALSE(pending.is_finished());
    Send send(conn.client.get(), std::string("x"));
    auto [n, b] = co_await submit(std::move(send));
    EXPECT_EQ(n.value_or(0), 1u);
    auto ready = co_await pending;
    EXPECT_TRUE(ready) << ready.error().message();
    EXPECT_NE(ready.value_or(0) & POLLIN, 0u);
    // One-shot: the op is done, nothing of it remains in flight.
    EXPECT_EQ(this_shard::counters().ops_in_flight, base);
    // The poll consumed nothing: the byte is still there.
    Recv recv(conn.server.get(), std::vector<char>(8));
    auto [rn, rb] = co_await submit(std::move(recv));
    EXPECT_EQ(str(rb, rn.value_or(0)), "x");
  }(domain(), listen_addr, listener.get()));
}

TEST_P(NetOpsTest, CloseClosesTheSocket) {
  SocketAddress listen_addr;
  OwnedFd listener = bound_socket(SOCK_STREAM, &listen_addr, 16);
  ASSERT_TRUE(listener.valid());
  rt_.block_on([](int dom, SocketAddress addr, int lfd) -> Task<void> {
    Conn conn = co_await connect_with_ops(dom, addr, lfd);
    if (!conn.client.valid() || !conn.server.valid()) co_return;
    const int fd = conn.client.release();
    Close close_op(fd);
    auto r = co_await submit(std::move(close_op));
    EXPECT_TRUE(r) << r.error().message();
    errno = 0;
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
    // The peer sees the end of the stream.
    Recv recv(conn.server.get(), std::vector<char>(8));
    auto [n, b] = co_await submit(std::move(recv));
    EXPECT_TRUE(n) << n.error().message();
    EXPECT_EQ(n.value_or(99), 0u);
  }(domain(), listen_addr, listener.get()));
}

// ---------------------------------------------------------------------------
// SendMsg and RecvMsg on datagram sockets

TEST_P(NetOpsTest, SendMsgAndRecvMsgCarryAddresses) {
  SocketAddress a_addr;
  SocketAddress b_addr;
  OwnedFd a = bound_socket(SOCK_DGRAM, &a_addr);
  OwnedFd b = bound_socket(SOCK_DGRAM, &b_addr);
  ASSERT_TRUE(a.valid());
  ASSERT_TRUE(b.valid());
  rt_.block_on([](int a, SocketAddress a_addr, int b,
                  SocketAddress b_addr) -> Task<void> {
    SendMsg send(a, std::string("datagram one"), b_addr);
    auto [sn, sb] = co_await submit(std::move(send));
    EXPECT_TRUE(sn) << sn.error().message();
    EXPECT_EQ(sn.value_or(0), 12u);
    EXPECT_EQ(sb, "datagram one");

    RecvMsg recv(b, std::vector<char>(64));
    auto r = co_await submit(std::move(recv));
    EXPECT_TRUE(r.res) << r.res.error().message();
    EXPECT_EQ(str(r.buf, r.res.value_or(0)), "datagram one");
    EXPECT_EQ(r.from, a_addr)
        << r.from.to_string() << " vs " << a_addr.to_string();
    EXPECT_EQ(r.msg_flags & MSG_TRUNC, 0);

    // Back to the sender, at the address the datagram came from.
    SendMsg reply(b, std::string("and back"), r.from);
    auto [rn, rb] = co_await submit(std::move(reply));
    EXPECT_EQ(rn.value_or(0), 8u);
    RecvMsg in(a, std::vector<char>(64));
    auto back = co_await submit(std::move(in));
    EXPECT_EQ(str(back.buf, back.res.value_or(0)), "and back");
    EXPECT_EQ(back.from, b_addr);

    // A datagram larger than the buffer is cut, and says so.
    SendMsg big(a, std::string(100, 'z'), b_addr);
    auto [bn, bb] = co_await submit(std::move(big));
    EXPECT_EQ(bn.value_or(0), 100u);
    RecvMsg small(b, std::vector<char>(10));
    auto cut = co_await submit(std::move(small));
    EXPECT_TRUE(cut.res) << cut.res.error().message();
    EXPECT_EQ(cut.res.value_or(0), 10u);
    EXPECT_NE(cut.msg_flags & MSG_TRUNC, 0);
    EXPECT_EQ(str(cut.buf, 10), std::string(10, 'z'));
    EXPECT_EQ(cut.from, a_addr);
  }(a.get(), a_addr, b.get(), b_addr));
}

TEST_P(NetOpsTest, SendMsgWithoutAnAddressUsesTheConnectedPeer) {
  SocketAddress a_addr;
  SocketAddress b_addr;
  OwnedFd a = bound_socket(SOCK_DGRAM, &a_addr);
  OwnedFd b = bound_socket(SOCK_DGRAM, &b_addr);
  ASSERT_TRUE(a.valid());
  ASSERT_TRUE(b.valid());
  ASSERT_EQ(::connect(a.get(), b_addr.get(), b_addr.size()), 0)
      << std::strerror(errno);
  rt_.block_on([](int a, SocketAddress a_addr, int b) -> Task<void> {
    SendMsg send(a, std::string("no address"));
    auto [sn, sb] = co_await submit(std::move(send));
    EXPECT_TRUE(sn) << sn.error().message();
    RecvMsg recv(b, std::vector<char>(64));
    auto r = co_await submit(std::move(recv));
    EXPECT_EQ(str(r.buf, r.res.value_or(0)), "no address");
    EXPECT_EQ(r.from, a_addr);
  }(a.get(), a_addr, b.get()));
}

// ---------------------------------------------------------------------------
// Descriptors that are not open, or not sockets: errors, never a crash.

struct BadFdOutcome {
  const char* op;
  Result<void> res;
};

// Runs every socket op against `fd`; the result of each, keyed by name.
Task<std::vector<BadFdOutcome>> run_every_op(int fd) {
  std::vector<BadFdOutcome> out;
  auto add = [&out](const char* op, Result<void> r) {
    out.push_back(BadFdOutcome{op, std::move(r)});
  };
  auto to_void = [](const auto& r) -> Result<void> {
    if (r) return Result<void>{};
    return Unexpected(r.error());
  };
  {
    Connect op(fd, SocketAddress::ipv4_loopback(9));
    auto r = co_await submit(std::move(op));
    add("Connect", std::move(r));
  }
  {
    Accept op(fd);
    auto r = co_await submit(std::move(op));
    add("Accept", to_void(r));
  }
  {
    Send op(fd, std::string("x"));
    auto r = co_await submit(std::move(op));
    add("Send", to_void(r.res));
  }
  {
    Recv op(fd, std::vector<char>(8));
    auto r = co_await submit(std::move(op));
    add("Recv", to_void(r.res));
  }
  {
    SendMsg op(fd, std::string("x"), SocketAddress::ipv4_loopback(9));
    auto r = co_await submit(std::move(op));
    add("SendMsg", to_void(r.res));
  }
  {
    RecvMsg op(fd, std::vector<char>(8));
    auto r = co_await submit(std::move(op));
    add("RecvMsg", to_void(r.res));
  }
  {
    Shutdown op(fd, SHUT_RDWR);
    auto r = co_await submit(std::move(op));
    add("Shutdown", std::move(r));
  }
  co_return out;
}

TEST(NetOpsErrorTest, NegativeFdIsEBADF) {
  Runtime rt(RuntimeOptions{.shards = 1});
  const auto outcomes = rt.block_on(run_every_op(-1));
  ASSERT_EQ(outcomes.size(), 7u);
  for (const auto& o : outcomes) {
    SCOPED_TRACE(o.op);
    ASSERT_FALSE(o.res);
    EXPECT_EQ(o.res.error(), errno_code(EBADF)) << o.res.error().message();
  }
  // PollAdd and Close too.
  const auto [poll_res, close_res] =
      rt.block_on([]() -> Task<std::pair<Result<unsigned>, Result<void>>> {
        PollAdd p(-1, POLLIN);
        auto pr = co_await submit(std::move(p));
        Close c(-1);
        auto cr = co_await submit(std::move(c));
        co_return std::pair{std::move(pr), std::move(cr)};
      }());
  ASSERT_FALSE(poll_res);
  EXPECT_EQ(poll_res.error(), errno_code(EBADF));
  ASSERT_FALSE(close_res);
  EXPECT_EQ(close_res.error(), errno_code(EBADF));
}

TEST(NetOpsErrorTest, ClosedFdIsEBADF) {
  Runtime rt(RuntimeOptions{.shards = 1});
  // A descriptor number nothing holds: the highest the process may have.
  // (A freshly closed number could be reused by a runtime thread.)
  const int fd = static_cast<int>(::sysconf(_SC_OPEN_MAX)) - 1;
  ASSERT_GT(fd, 2);
  errno = 0;
  ASSERT_EQ(::fcntl(fd, F_GETFD), -1);
  ASSERT_EQ(errno, EBADF);
  const auto outcomes = rt.block_on(run_every_op(fd));
  ASSERT_EQ(outcomes.size(), 7u);
  for (const auto& o : outcomes) {
    SCOPED_TRACE(o.op);
    ASSERT_FALSE(o.res);
    EXPECT_EQ(o.res.error(), errno_code(EBADF)) << o.res.error().message();
  }
  // And a socket closed by a Close op is not open any more.
  auto closed = rt.block_on([]() -> Task<Result<void>> {
    Socket s(AF_INET, SOCK_STREAM);
    auto fd = co_await submit(std::move(s));
    EXPECT_TRUE(fd) << fd.error().message();
    if (!fd) co_return Result<void>{};
    const int n = fd->release();
    Close c1(n);
    auto r1 = co_await submit(std::move(c1));
    EXPECT_TRUE(r1) << r1.error().message();
    Close c2(n);
    co_return co_await submit(std::move(c2));
  }());
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error(), errno_code(EBADF));
}

TEST(NetOpsErrorTest, PipeIsNotASocket) {
  test::Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  Runtime rt(RuntimeOptions{.shards = 1});
  for (int fd : {pipe.read_fd(), pipe.write_fd()}) {
    SCOPED_TRACE(fd == pipe.read_fd() ? "read end" : "write end");
    const auto outcomes = rt.block_on(run_every_op(fd));
    ASSERT_EQ(outcomes.size(), 7u);
    for (const auto& o : outcomes) {
      SCOPED_TRACE(o.op);
      ASSERT_FALSE(o.res);
      EXPECT_EQ(o.res.error(), errno_code(ENOTSOCK)) << o.res.error().message();
    }
  }
  // The pipe is untouched: it still carries data.
  ASSERT_EQ(::write(pipe.write_fd(), "ok", 2), 2);
  char buf[2];
  ASSERT_EQ(::read(pipe.read_fd(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "ok");
}

}  // namespace
}  // namespace shardio
