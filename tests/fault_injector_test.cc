// Tests for testing::FaultInjector: reproducibility from the seed, the nth
// occurrence, opcode filters, every error fault on every kind of built-in op
// (the error comes back, nothing moved, buffers and fds are released), short
// transfers that move exactly what they report, the "all" helpers of fs and
// net surviving EINTR/EAGAIN/short transfers byte for byte, multishot
// streams re-arming after early ends, delays that lose and reorder nothing,
// forced SQ-full flushes (chains stay whole), and detaching: explicitly,
// from the destructor, with CQEs held back, and after the runtime stopped.
//
// Waits are on events (a counter, a CQE), each bounded by a deadline; no
// assertion depends on timing.
#include "shardio/testing/fault_injector.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/buffer_ring.h"
#include "shardio/fs.h"
#include "shardio/multishot.h"
#include "shardio/net.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/net.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/path.h"
#include "shardio/ops/splice.h"
#include "shardio/ops/timeout.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Watchdog;

using std::chrono::steady_clock;
using testing::Fault;
using testing::FaultInjector;
using testing::FaultRule;

constexpr auto kPatience = std::chrono::seconds(60);

// Submits `op` (a named op) and expects the errno `want` from it.
#define CO_EXPECT_ERR(op, want, what)                     \
  do {                                                    \
    const int co_err_ = co_await errno_of(std::move(op)); \
    EXPECT_EQ(co_err_, want) << what;                     \
  } while (0)

// An owned buffer that counts the live ones (moved-from ones do not count).
class Counted {
 public:
  static inline std::atomic<int> live{0};

  Counted() = default;
  explicit Counted(std::size_t n, char fill = '\0')
      : bytes_(n, fill), owns_(true) {
    live.fetch_add(1);
  }
  Counted(Counted&& o) noexcept
      : bytes_(std::move(o.bytes_)), owns_(std::exchange(o.owns_, false)) {}
  Counted& operator=(Counted&& o) noexcept {
    if (this != &o) {
      drop();
      bytes_ = std::move(o.bytes_);
      owns_ = std::exchange(o.owns_, false);
    }
    return *this;
  }
  ~Counted() { drop(); }

  char* data() noexcept { return bytes_.data(); }
  const char* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }
  std::string str(std::size_t n) const {
    return std::string(bytes_.data(), n < bytes_.size() ? n : bytes_.size());
  }

 private:
  void drop() noexcept {
    if (owns_) live.fetch_sub(1);
    owns_ = false;
  }
  std::vector<char> bytes_;
  bool owns_ = false;
};
static_assert(OwnedBuffer<Counted>);

// Bytes that differ from one offset to the next.
std::vector<char> pattern(std::size_t n, unsigned salt = 0) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = static_cast<char>((i * 131 + salt) ^ (i >> 9));
  }
  return v;
}

std::string bytes_of(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// A scratch directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/shardio_fault_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    path_ = d != nullptr ? d : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The errno of a result (0 for success).
template <class T>
int err_of(const Result<T>& r) {
  return r.has_value() ? 0 : r.error().value();
}
template <class B>
int err_of(const IoResult<B>& r) {
  return err_of(r.res);
}
template <class B>
int err_of(const RecvMsgResult<B>& r) {
  return err_of(r.res);
}

// Submits `op` and yields the errno of its result.
template <class Op>
Task<int> errno_of(Op op) {
  auto r = co_await submit(std::move(op));
  co_return err_of(r);
}

// Yields until this shard has no op in flight (bounded).
Task<bool> settle() {
  const auto deadline = steady_clock::now() + kPatience;
  while (this_shard::counters().ops_in_flight != 0) {
    if (steady_clock::now() >= deadline) co_return false;
    co_await this_shard::yield();
  }
  co_return true;
}

// Every shard of `rt` reaches ops_in_flight == 0.
void expect_settled(Runtime& rt) {
  for (unsigned i = 0; i < rt.shard_count(); ++i) {
    EXPECT_TRUE(rt.submit(i, [] { return settle(); }).get())
        << "shard " << i << " still has ops in flight";
    EXPECT_EQ(rt.counters(i).ops_in_flight, 0u) << "shard " << i;
  }
}

// Waits (off-shard) until pred() holds; bounded.
template <class Pred>
bool wait_until(Pred pred) {
  const auto deadline = steady_clock::now() + kPatience;
  while (!pred()) {
    if (steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// ---------------------------------------------------------------------------
// Rules, attaching, detaching.

TEST(FaultInjectorTest, RejectsRulesThatCannotFireAndLateChanges) {
  Watchdog watchdog;
  FaultInjector fi;
  EXPECT_THROW(fi.add({.fault = Fault::kEio}), std::invalid_argument);
  EXPECT_THROW(fi.add({.fault = Fault::kEio, .probability = 0.5, .nth = 2}),
               std::invalid_argument);
  EXPECT_THROW(fi.add({.fault = Fault::kEio, .probability = 1.5}),
               std::invalid_argument);
  EXPECT_THROW(fi.add({.fault = Fault::kEio, .probability = -0.1}),
               std::invalid_argument);
  EXPECT_THROW(
      fi.add({.fault = Fault::kDelay, .probability = 0.5, .delay_turns = 0}),
      std::invalid_argument);
  EXPECT_TRUE(fi.rules().empty());
  fi.add({.fault = Fault::kEio, .opcode = IORING_OP_NOP, .nth = 1});
  Runtime rt(RuntimeOptions{.shards = 1});
  fi.attach(rt);
  EXPECT_TRUE(fi.attached());
  EXPECT_THROW(fi.attach(rt), std::logic_error);
  EXPECT_THROW(fi.add({.fault = Fault::kEio, .nth = 1}), std::logic_error);
  EXPECT_THROW(fi.force_sq_full_every(2), std::logic_error);
  // A second injector on the same shards is refused and changes nothing.
  FaultInjector other;
  other.add({.fault = Fault::kEagain, .probability = 1});
  EXPECT_THROW(other.attach(rt), std::logic_error);
  EXPECT_FALSE(other.attached());
  const int e = rt.block_on([]() -> Task<int> {
    Nop op;
    co_return co_await errno_of(std::move(op));
  }());
  EXPECT_EQ(e, EIO);
  fi.detach();
  EXPECT_FALSE(fi.attached());
  fi.detach();  // twice: nothing
  EXPECT_EQ(fi.injected(Fault::kEio), 1u);
  EXPECT_EQ(other.injected_total(), 0u);
  expect_settled(rt);
}

TEST(FaultInjectorTest, AttachFromAShardThrows) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = Fault::kEio, .probability = 1});
  FaultInjector* p = &fi;
  Runtime* r = &rt;
  const bool threw = rt.submit(0, [p, r] {
                         try {
                           p->attach(*r);
                         } catch (const std::logic_error&) {
                           return true;
                         }
                         return false;
                       }).get();
  EXPECT_TRUE(threw);
  EXPECT_FALSE(fi.attached());
}

// The stream of results of 300 sequential NOPs and a batch of 64.
Task<std::vector<int>> nop_stream() {
  std::vector<int> out;
  for (int i = 0; i < 300; ++i) {
    Nop op;
    out.push_back(co_await errno_of(std::move(op)));
  }
  std::vector<Nop> ops(64);
  std::span<Nop> span(ops);
  auto rs = co_await batch(span);
  for (const auto& r : rs) out.push_back(err_of(r));
  co_return out;
}

struct Trace {
  std::vector<int> results;
  uint64_t eio = 0;
  uint64_t eagain = 0;
  uint64_t delays = 0;
};

Trace run_trace(uint64_t seed, unsigned shard) {
  Runtime rt(RuntimeOptions{.shards = 2});
  FaultInjector fi(seed);
  fi.add({.fault = Fault::kEio, .probability = 0.2})
      .add({.fault = Fault::kEagain, .probability = 0.1})
      .add({.fault = Fault::kDelay, .probability = 0.3, .delay_turns = 2});
  fi.attach(rt);
  Trace t;
  t.results = rt.submit(shard, [] { return nop_stream(); }).get();
  fi.detach();
  t.eio = fi.injected(Fault::kEio, shard);
  t.eagain = fi.injected(Fault::kEagain, shard);
  t.delays = fi.injected(Fault::kDelay, shard);
  EXPECT_EQ(fi.injected_total(), t.eio + t.eagain + t.delays);
  expect_settled(rt);
  rt.stop();
  return t;
}

TEST(FaultInjectorTest, SameSeedSameFaultsOnTheSameOpStream) {
  Watchdog watchdog;
  const Trace a = run_trace(7, 0);
  const Trace b = run_trace(7, 0);
  ASSERT_EQ(a.results.size(), 364u);
  EXPECT_EQ(a.results, b.results);
  EXPECT_EQ(a.delays, b.delays);
  // What the ops saw is what was counted.
  uint64_t eio = 0;
  uint64_t eagain = 0;
  for (int e : a.results) {
    EXPECT_TRUE(e == 0 || e == EIO || e == EAGAIN) << e;
    eio += e == EIO;
    eagain += e == EAGAIN;
  }
  EXPECT_EQ(eio, a.eio);
  EXPECT_EQ(eagain, a.eagain);
  EXPECT_GT(a.eio, 0u);
  EXPECT_GT(a.eagain, 0u);
  EXPECT_GT(a.delays, 0u);
  // Another seed, another sequence; another shard, its own generator
  // (seed + shard), reproducible too.
  const Trace c = run_trace(8, 0);
  EXPECT_NE(a.results, c.results);
  const Trace d = run_trace(7, 1);
  const Trace e = run_trace(7, 1);
  EXPECT_EQ(d.results, e.results);
  EXPECT_NE(a.results, d.results);
}

// `n` sequential NOPs: the indices of those that failed.
Task<std::vector<int>> failing_nops(int n) {
  std::vector<int> failed;
  for (int i = 0; i < n; ++i) {
    Nop op;
    if (co_await errno_of(std::move(op)) != 0) failed.push_back(i);
  }
  co_return failed;
}

TEST(FaultInjectorTest, NthOccurrenceHitsExactlyTheNthOnEachShard) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2});
  FaultInjector fi;
  fi.add({.fault = Fault::kEio, .opcode = IORING_OP_NOP, .nth = 5})
      .add({.fault = Fault::kDelay, .opcode = IORING_OP_NOP, .nth = 3});
  fi.attach(rt);
  const auto first = rt.submit(0, [] { return failing_nops(12); }).get();
  EXPECT_EQ(first, std::vector<int>{4});
  const auto other = rt.submit(1, [] { return failing_nops(12); }).get();
  EXPECT_EQ(other, std::vector<int>{4});  // counted per shard
  const auto again = rt.submit(0, [] { return failing_nops(12); }).get();
  EXPECT_TRUE(again.empty());  // the 5th happens once
  EXPECT_EQ(fi.injected(Fault::kEio, 0), 1u);
  EXPECT_EQ(fi.injected(Fault::kEio, 1), 1u);
  EXPECT_EQ(fi.injected(Fault::kDelay), 2u);
  EXPECT_EQ(fi.injected(Fault::kEio), 2u);
  fi.detach();
  expect_settled(rt);
}

TEST(FaultInjectorTest, OpcodeFilterPicksOnlyThatOpcode) {
  Watchdog watchdog;
  TempDir dir;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = Fault::kEio, .opcode = IORING_OP_READ, .probability = 1});
  fi.attach(rt);
  const std::string path = dir.file("f");
  rt.block_on([](std::string path) -> Task<void> {
    OpenAt open(AT_FDCWD, path, O_RDWR | O_CREAT, 0600);
    auto fd = co_await submit(std::move(open));
    CO_ASSERT_TRUE(fd.has_value());
    Nop nop;
    CO_EXPECT_ERR(nop, 0, "nop");
    Write<std::string> w(*fd, std::string("hello"), 0);
    auto wr = co_await submit(std::move(w));
    EXPECT_EQ(err_of(wr), 0);
    Read<std::string> r(*fd, std::string(5, '\0'), 0);
    CO_EXPECT_ERR(r, EIO, "r");
    Readv<std::string> rv(*fd, std::vector<std::string>(1, std::string(5, ' ')),
                          0);
    CO_EXPECT_ERR(rv, 0, "rv");  // READV, not READ
    Close close(*fd);
    CO_EXPECT_ERR(close, 0, "close");
  }(path));
  EXPECT_EQ(fi.injected(Fault::kEio), 1u);
  EXPECT_EQ(fi.injected_total(), 1u);
  fi.detach();
  expect_settled(rt);
}

// ---------------------------------------------------------------------------
// Error faults on every kind of op: the error comes back, nothing happened.

struct Sweep {
  std::string dir;
  int error = 0;
  bool multishot = true;  // RecvMultishot too (not with ENOBUFS: it re-arms)
};

Task<void> error_sweep(Sweep s) {
  const int want = s.error;
  const auto fds_before = test::steady_open_fd_table();
  const std::string file = s.dir + "/data";
  {
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CO_ASSERT_TRUE(fd >= 0);
    CO_ASSERT_TRUE(::pwrite(fd, "0123456789", 10, 0) == 10);
    ::close(fd);
  }
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  CO_ASSERT_TRUE(fd >= 0);
  {
    Nop op;
    CO_EXPECT_ERR(op, want, "nop");
  }
  {
    Read<Counted> op(fd, Counted(10), 0);
    auto r = co_await submit(std::move(op));
    EXPECT_EQ(err_of(r), want) << "read";
    EXPECT_EQ(r.buf.size(), 10u);  // the buffer comes back
  }
  {
    Write<Counted> op(fd, Counted(4, 'x'), 0);
    CO_EXPECT_ERR(op, want, "write");
    char b[10];
    EXPECT_EQ(::pread(fd, b, 10, 0), 10);
    EXPECT_EQ(std::string(b, 10), "0123456789");  // nothing written
  }
  {
    std::vector<Counted> bufs;
    bufs.emplace_back(3);
    bufs.emplace_back(3);
    Readv<Counted> op(fd, std::move(bufs), 0);
    CO_EXPECT_ERR(op, want, "readv");
    std::vector<Counted> out;
    out.emplace_back(2, 'y');
    Writev<Counted> w(fd, std::move(out), 0);
    CO_EXPECT_ERR(w, want, "writev");
  }
  {
    Fsync op(fd);
    CO_EXPECT_ERR(op, want, "fsync");
    Fallocate fa(fd, 0, 0, 1 << 20);
    CO_EXPECT_ERR(fa, want, "fallocate");
    struct stat st;
    EXPECT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 10);
  }
  {
    OpenAt op(AT_FDCWD, file, O_RDONLY);
    CO_EXPECT_ERR(op, want, "openat");
    Statx sx(AT_FDCWD, file);
    CO_EXPECT_ERR(sx, want, "statx");
    MkdirAt mk(AT_FDCWD, s.dir + "/sub");
    CO_EXPECT_ERR(mk, want, "mkdirat");
    EXPECT_FALSE(std::filesystem::exists(s.dir + "/sub"));
    RenameAt mv(AT_FDCWD, file, AT_FDCWD, s.dir + "/moved");
    CO_EXPECT_ERR(mv, want, "renameat");
    UnlinkAt rm(AT_FDCWD, file);
    CO_EXPECT_ERR(rm, want, "unlinkat");
    EXPECT_TRUE(std::filesystem::exists(file));
  }
  {
    int p[2];
    CO_ASSERT_TRUE(::pipe2(p, O_CLOEXEC) == 0);
    int q[2];
    CO_ASSERT_TRUE(::pipe2(q, O_CLOEXEC) == 0);
    Splice sp(fd, 0, p[1], -1, 10);
    CO_EXPECT_ERR(sp, want, "splice");
    CO_ASSERT_TRUE(::write(p[1], "abc", 3) == 3);
    Tee tee(p[0], q[1], 3);
    CO_EXPECT_ERR(tee, want, "tee");
    PollAdd poll(q[0], POLLIN);  // never ready: the error comes at once
    CO_EXPECT_ERR(poll, want, "poll");
    char b[8];
    EXPECT_EQ(::read(p[0], b, sizeof(b)), 3);  // only what write(2) put
    for (int f : {p[0], p[1], q[0], q[1]}) ::close(f);
  }
  {
    Timeout t(std::chrono::hours(1));  // fails at once instead
    CO_EXPECT_ERR(t, want, "timeout");
  }
  {
    Socket op(AF_INET, SOCK_STREAM);
    CO_EXPECT_ERR(op, want, "socket");
  }
  {
    auto listener =
        net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    CO_ASSERT_TRUE(listener.has_value());
    auto addr = listener->local_address();
    CO_ASSERT_TRUE(addr.has_value());
    // A connection waiting in the backlog, made with plain system calls.
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CO_ASSERT_TRUE(c >= 0);
    CO_ASSERT_TRUE(::connect(c, addr->get(), addr->size()) == 0);
    Accept acc(listener->fd());
    CO_EXPECT_ERR(acc, want, "accept");
    pollfd pf{listener->fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&pf, 1, 0), 1);  // still waiting to be accepted
    const int c2 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    Connect conn(c2, *addr);
    CO_EXPECT_ERR(conn, want, "connect");
    ::close(c2);
    ::close(c);
  }
  {
    int sv[2];
    CO_ASSERT_TRUE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
                   0);
    Send<Counted> send(sv[0], Counted(5, 's'));
    CO_EXPECT_ERR(send, want, "send");
    char b[16];
    EXPECT_EQ(::recv(sv[1], b, sizeof(b), MSG_DONTWAIT), -1);  // none sent
    CO_ASSERT_TRUE(::send(sv[0], "hello", 5, 0) == 5);
    Recv<Counted> recv(sv[1], Counted(16));
    CO_EXPECT_ERR(recv, want, "recv");
    SendMsg<Counted> sm(sv[0], Counted(3, 'm'));
    CO_EXPECT_ERR(sm, want, "sendmsg");
    RecvMsg<Counted> rm(sv[1], Counted(16));
    CO_EXPECT_ERR(rm, want, "recvmsg");
    if (this_shard::supports(IORING_OP_SEND_ZC)) {
      SendZc<Counted> zc(sv[0], Counted(4, 'z'));
      CO_EXPECT_ERR(zc, want, "send_zc");
    }
    if (s.multishot) {
      auto ring = BufferRing::create(4, 64);
      CO_ASSERT_TRUE(ring.has_value());
      auto stream = submit_multishot(RecvMultishot(sv[1], *ring));
      auto item = co_await stream.next();
      CO_ASSERT_TRUE(item.has_value());
      EXPECT_FALSE(item->has_value());
      if (!item->has_value()) {
        EXPECT_EQ(item->error().value(), want) << "recv multishot";
      }
      auto end = co_await stream.next();
      EXPECT_FALSE(end.has_value());
    }
    // Nothing was received by any of them.
    EXPECT_EQ(::recv(sv[1], b, sizeof(b), MSG_DONTWAIT), 5);
    Shutdown sh(sv[0], SHUT_WR);
    CO_EXPECT_ERR(sh, want, "shutdown");
    ::close(sv[0]);
    ::close(sv[1]);
  }
  {
    // A close fails *after* it ran: close(2) releases the fd whatever it
    // reports.
    const int victim = ::dup(fd);
    CO_ASSERT_TRUE(victim >= 0);
    Close op(victim);
    CO_EXPECT_ERR(op, want, "close");
    EXPECT_EQ(::fcntl(victim, F_GETFD), -1);
  }
  ::close(fd);
  EXPECT_EQ(test::fds_changed_since(fds_before), "");
  EXPECT_EQ(Counted::live.load(), 0);
}

class EveryErrorTest : public ::testing::TestWithParam<Fault> {};

TEST_P(EveryErrorTest, EveryOpFailsWithTheErrorAndDidNothing) {
  Watchdog watchdog;
  TempDir dir;
  const Fault f = GetParam();
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = f, .probability = 1});
  fi.attach(rt);
  Sweep s{dir.path(), testing::fault_errno(f), f != Fault::kEnobufs};
  rt.block_on(error_sweep(s));
  EXPECT_GE(fi.injected(f), 25u);
  EXPECT_EQ(fi.injected_total(), fi.injected(f));
  fi.detach();
  expect_settled(rt);
}

INSTANTIATE_TEST_SUITE_P(Errors, EveryErrorTest,
                         ::testing::Values(Fault::kEagain, Fault::kEintr,
                                           Fault::kEconnreset, Fault::kEnobufs,
                                           Fault::kEcanceled, Fault::kEio),
                         [](const ::testing::TestParamInfo<Fault>& info) {
                           return std::string(testing::fault_name(info.param));
                         });

// An error on the last op of a chain; the ops linked before it are not
// touched (they have successors).
TEST(FaultInjectorTest, ChainsKeepTheirLinks) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = Fault::kEio, .opcode = IORING_OP_NOP, .probability = 1});
  fi.attach(rt);
  rt.block_on([]() -> Task<void> {
    Nop n1;
    Nop n2;
    Nop n3;
    auto [a, b, c] =
        co_await chain(std::move(n1), std::move(n2), std::move(n3));
    EXPECT_EQ(err_of(a), 0);
    EXPECT_EQ(err_of(b), 0);
    EXPECT_EQ(err_of(c), EIO);
    // with_timeout links a LinkTimeout behind the op: neither is touched.
    Nop op;
    auto r = co_await with_timeout(std::move(op), std::chrono::seconds(10));
    EXPECT_EQ(err_of(r), 0);
  }());
  EXPECT_EQ(fi.injected(Fault::kEio), 1u);
  fi.detach();
  expect_settled(rt);
}

// ---------------------------------------------------------------------------
// Short transfers: the kernel moves what the result says, no more.

Task<void> short_transfers(std::string dir) {
  const std::string file = dir + "/short";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  CO_ASSERT_TRUE(fd >= 0);
  const std::vector<char> data = pattern(1000);
  {
    Write<std::string> w(fd, std::string(data.begin(), data.end()), 0);
    auto r = co_await submit(std::move(w));
    CO_ASSERT_TRUE(r.res.has_value());
    EXPECT_EQ(*r.res, 500u);
    struct stat st;
    EXPECT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 500);  // exactly what was reported
    CO_ASSERT_TRUE(::pwrite(fd, data.data(), 1000, 0) == 1000);
  }
  {
    Read<std::string> rd(fd, std::string(1000, '\0'), 0);
    auto r = co_await submit(std::move(rd));
    CO_ASSERT_TRUE(r.res.has_value());
    EXPECT_EQ(*r.res, 500u);
    EXPECT_EQ(r.buf.substr(0, 500), std::string(data.data(), 500));
    EXPECT_EQ(r.buf.substr(500), std::string(500, '\0'));
  }
  {
    std::vector<std::string> bufs(4, std::string(100, '\0'));
    Readv<std::string> rv(fd, std::move(bufs), 0);
    auto r = co_await submit(std::move(rv));
    CO_ASSERT_TRUE(r.res.has_value());
    EXPECT_EQ(*r.res, 200u);  // two of the four iovecs
    EXPECT_EQ(r.buf[1], std::string(data.data() + 100, 100));
    EXPECT_EQ(r.buf[2], std::string(100, '\0'));
  }
  {
    int p[2];
    CO_ASSERT_TRUE(::pipe2(p, O_CLOEXEC) == 0);
    Splice sp(fd, 0, p[1], -1, 1000);
    auto n = co_await submit(std::move(sp));
    CO_ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 500u);
    char b[1000];
    EXPECT_EQ(::read(p[0], b, sizeof(b)), 500);
    ::close(p[0]);
    ::close(p[1]);
  }
  {
    int sv[2];
    CO_ASSERT_TRUE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
                   0);
    Send<std::string> s(sv[0], std::string(data.begin(), data.end()));
    auto sent = co_await submit(std::move(s));
    CO_ASSERT_TRUE(sent.res.has_value());
    EXPECT_EQ(*sent.res, 500u);
    char b[2000];
    EXPECT_EQ(::recv(sv[1], b, sizeof(b), MSG_DONTWAIT), 500);
    CO_ASSERT_TRUE(::send(sv[0], data.data(), 1000, 0) == 1000);
    Recv<std::string> r(sv[1], std::string(1000, '\0'));
    auto got = co_await submit(std::move(r));
    CO_ASSERT_TRUE(got.res.has_value());
    EXPECT_EQ(*got.res, 500u);
    EXPECT_EQ(got.buf.substr(0, 500), std::string(data.data(), 500));
    // The rest is still in the socket.
    EXPECT_EQ(::recv(sv[1], b, sizeof(b), MSG_DONTWAIT), 500);
    EXPECT_EQ(std::string(b, 500), std::string(data.data() + 500, 500));
    ::close(sv[0]);
    ::close(sv[1]);
  }
  {
    // Datagrams and eventfds keep their records: not cut.
    int sv[2];
    CO_ASSERT_TRUE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) ==
                   0);
    Send<std::string> s(sv[0], std::string(1000, 'd'));
    auto sent = co_await submit(std::move(s));
    EXPECT_EQ(err_of(sent), 0);
    if (sent.res.has_value()) {
      EXPECT_EQ(*sent.res, 1000u);
    }
    ::close(sv[0]);
    ::close(sv[1]);
    const int efd = ::eventfd(3, EFD_CLOEXEC);
    CO_ASSERT_TRUE(efd >= 0);
    Read<std::string> r(efd, std::string(8, '\0'));
    auto got = co_await submit(std::move(r));
    EXPECT_EQ(err_of(got), 0);
    if (got.res.has_value()) {
      EXPECT_EQ(*got.res, 8u);
    }
    ::close(efd);
  }
  ::close(fd);
}

TEST(FaultInjectorTest, ShortTransfersMoveExactlyWhatTheyReport) {
  Watchdog watchdog;
  TempDir dir;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = Fault::kShortTransfer, .probability = 1});
  fi.attach(rt);
  rt.block_on(short_transfers(dir.path()));
  EXPECT_EQ(fi.injected(Fault::kShortTransfer), 6u);
  fi.detach();
  expect_settled(rt);
}

// ---------------------------------------------------------------------------
// The "all" helpers go on through EINTR, EAGAIN and short transfers.

// Faults on `opcode` that a careful caller survives.
void add_transient(FaultInjector& fi, uint8_t opcode) {
  fi.add({.fault = Fault::kShortTransfer, .opcode = opcode, .probability = 0.4})
      .add({.fault = Fault::kEintr, .opcode = opcode, .probability = 0.2})
      .add({.fault = Fault::kEagain, .opcode = opcode, .probability = 0.2});
}

Task<void> file_round_trip(std::string path, std::vector<char> data) {
  auto f = co_await fs::File::options().read().write().create().open(path);
  CO_ASSERT_TRUE(f.has_value());
  // In chunks, for many ops (and so many faults).
  constexpr std::size_t kChunk = 16 << 10;
  for (std::size_t off = 0; off < data.size(); off += kChunk) {
    std::vector<char> chunk(
        data.begin() + static_cast<std::ptrdiff_t>(off),
        data.begin() + static_cast<std::ptrdiff_t>(off + kChunk));
    auto w = co_await f->write_all_at(std::move(chunk), off);
    CO_ASSERT_TRUE(w.res.has_value());
    EXPECT_EQ(*w.res, kChunk);
  }
  std::vector<char> back;
  for (std::size_t off = 0; off < data.size(); off += kChunk) {
    auto r = co_await f->read_exact_at(std::vector<char>(kChunk), off);
    CO_ASSERT_TRUE(r.res.has_value());
    back.insert(back.end(), r.buf.begin(), r.buf.end());
  }
  EXPECT_TRUE(back == data) << "the data read back differs";
  // One byte past the end: ENODATA, not a retry for ever.
  auto past = co_await f->read_exact_at(std::vector<char>(2), data.size() - 1);
  EXPECT_FALSE(past.res.has_value());
  auto closed = co_await f->close();
  EXPECT_TRUE(closed.has_value());
}

TEST(FaultInjectorTest, FileReadExactAndWriteAllSurviveTransientFaults) {
  Watchdog watchdog;
  TempDir dir;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi(11);
  add_transient(fi, IORING_OP_WRITE);
  add_transient(fi, IORING_OP_READ);
  fi.attach(rt);
  rt.block_on(file_round_trip(dir.file("rt"), pattern(1 << 20)));
  EXPECT_GT(fi.injected(Fault::kShortTransfer), 50u);
  EXPECT_GT(fi.injected(Fault::kEintr), 0u);
  EXPECT_GT(fi.injected(Fault::kEagain), 0u);
  fi.detach();
  expect_settled(rt);
}

constexpr std::size_t kNetChunk = 8 << 10;

// send_all in chunks, for many ops (and so many faults); then closes.
Task<bool> send_everything(net::TcpStream s, std::vector<char> data) {
  for (std::size_t off = 0; off < data.size(); off += kNetChunk) {
    const std::size_t n = std::min(kNetChunk, data.size() - off);
    std::vector<char> chunk(
        data.begin() + static_cast<std::ptrdiff_t>(off),
        data.begin() + static_cast<std::ptrdiff_t>(off + n));
    auto r = co_await s.send_all(std::move(chunk));
    if (!r.res.has_value()) co_return false;
  }
  co_return true;
}

Task<void> tcp_round_trip(std::size_t n) {
  auto listener = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  CO_ASSERT_TRUE(listener.has_value());
  auto addr = listener->local_address();
  CO_ASSERT_TRUE(addr.has_value());
  auto client = co_await net::TcpStream::connect(*addr);
  CO_ASSERT_TRUE(client.has_value());
  auto server = co_await listener->accept_one();
  CO_ASSERT_TRUE(server.has_value());
  const std::vector<char> data = pattern(n, 3);
  auto sender = spawn(send_everything(std::move(*client), data));
  std::vector<char> got;
  for (std::size_t off = 0; off < n; off += kNetChunk) {
    const std::size_t len = std::min(kNetChunk, n - off);
    auto r = co_await server->recv_exact(std::vector<char>(len));
    CO_ASSERT_TRUE(r.res.has_value());
    got.insert(got.end(), r.buf.begin(), r.buf.end());
  }
  EXPECT_TRUE(got == data) << "the bytes received differ";
  const bool sent = co_await sender;
  EXPECT_TRUE(sent);
  // The sender closed its end: nothing more, nothing duplicated.
  auto rest = co_await server->recv_exact(std::vector<char>(1));
  CO_ASSERT_TRUE(!rest.res.has_value());
  EXPECT_EQ(rest.res.error().code.value(), ENODATA);
}

TEST(FaultInjectorTest, TcpSendAllAndRecvExactSurviveTransientFaults) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi(12);
  add_transient(fi, IORING_OP_SEND);
  add_transient(fi, IORING_OP_RECV);
  fi.attach(rt);
  rt.block_on(tcp_round_trip(2 << 20));
  EXPECT_GT(fi.injected(Fault::kShortTransfer), 0u);
  EXPECT_GT(fi.injected(Fault::kEintr), 0u);
  EXPECT_GT(fi.injected(Fault::kEagain), 0u);
  fi.detach();
  expect_settled(rt);
}

// Single ops report other errors as they are, with their buffer.
TEST(FaultInjectorTest, SingleSendAndRecvReturnTheErrorAndTheBuffer) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = Fault::kEconnreset, .opcode = IORING_OP_SEND, .nth = 1})
      .add({.fault = Fault::kEio, .opcode = IORING_OP_RECV, .nth = 1});
  fi.attach(rt);
  rt.block_on([]() -> Task<void> {
    auto pair = net::UnixStream::pair();
    CO_ASSERT_TRUE(pair.has_value());
    auto& [a, b] = *pair;
    Counted first(7, 'q');
    auto s = co_await a.send(std::move(first));
    CO_ASSERT_TRUE(!s.res.has_value());
    EXPECT_EQ(s.res.error().code.value(), ECONNRESET);
    EXPECT_EQ(s.buf.size(), 7u);
    Counted second(7, 'q');
    auto again = co_await a.send_all(std::move(second));  // the 2nd works
    EXPECT_TRUE(again.res.has_value());
    Counted in(7);
    auto r = co_await b.recv_exact(std::move(in));
    CO_ASSERT_TRUE(!r.res.has_value());
    EXPECT_EQ(r.res.error().code.value(), EIO);
    Counted in2(7);
    auto ok = co_await b.recv_exact(std::move(in2));
    CO_ASSERT_TRUE(ok.res.has_value());
    EXPECT_EQ(ok.buf.str(7), "qqqqqqq");
  }());
  EXPECT_EQ(Counted::live.load(), 0);
  fi.detach();
  expect_settled(rt);
}

// ---------------------------------------------------------------------------
// Multishot streams: early ends and ENOBUFS re-arm, byte for byte.

Task<bool> send_and_close(net::UnixStream s, std::vector<char> data) {
  auto r = co_await s.send_all(std::move(data));
  auto sh = co_await s.shutdown(SHUT_WR);
  co_return r.res.has_value() && sh.has_value();
}

struct MultishotOutcome {
  uint64_t rearms = 0;
  bool exact = false;
};

Task<MultishotOutcome> multishot_round_trip(std::size_t n) {
  MultishotOutcome out;
  auto pair = net::UnixStream::pair();
  if (!pair.has_value()) co_return out;
  auto ring = BufferRing::create(16, 4096);
  if (!ring.has_value()) co_return out;
  const uint64_t rearms_before = this_shard::counters().multishot_rearms;
  const std::vector<char> data = pattern(n, 5);
  auto stream = pair->second.recv_multishot(*ring);
  auto sender = spawn(send_and_close(std::move(pair->first), data));
  std::string got;
  bool eof = false;
  while (auto item = co_await stream.next()) {
    if (!item->has_value()) {
      ADD_FAILURE() << "stream item error: " << item->error().message();
      break;
    }
    if ((*item)->empty()) {
      eof = true;
      break;
    }
    got += bytes_of((*item)->bytes());
  }
  EXPECT_TRUE(eof);
  const bool sent = co_await sender;
  EXPECT_TRUE(sent);
  out.exact = got == std::string(data.begin(), data.end());
  out.rearms = this_shard::counters().multishot_rearms - rearms_before;
  co_return out;
}

TEST(FaultInjectorTest, MultishotRecvEndedEarlyReArmsAndLosesNothing) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi(13);
  fi.add({.fault = Fault::kEndMultishot,
          .opcode = IORING_OP_RECV,
          .probability = 0.2})
      .add({.fault = Fault::kEnobufs,
            .opcode = IORING_OP_RECV,
            .probability = 0.3});
  fi.attach(rt);
  const MultishotOutcome o = rt.block_on(multishot_round_trip(1 << 20));
  EXPECT_TRUE(o.exact) << "the bytes received differ";
  EXPECT_GT(fi.injected(Fault::kEndMultishot), 0u);
  EXPECT_GT(fi.injected(Fault::kEnobufs), 0u);
  // Every failed arm is armed again; so is every op ended early, except
  // when the peer's EOF ended it first (possible for the last item only).
  EXPECT_GE(o.rearms + 1,
            fi.injected(Fault::kEndMultishot) + fi.injected(Fault::kEnobufs));
  EXPECT_GE(o.rearms, fi.injected(Fault::kEnobufs));
  fi.detach();
  expect_settled(rt);
}

// An accept stream has no buffers: the kernel never ends it with ENOBUFS,
// so kEndMultishot leaves it alone.
TEST(FaultInjectorTest, EndMultishotSparesStreamsWithoutProvidedBuffers) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi;
  fi.add({.fault = Fault::kEndMultishot, .probability = 1});
  fi.attach(rt);
  rt.block_on([]() -> Task<void> {
    auto listener =
        net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
    CO_ASSERT_TRUE(listener.has_value());
    auto addr = listener->local_address();
    CO_ASSERT_TRUE(addr.has_value());
    const uint64_t rearms = this_shard::counters().multishot_rearms;
    auto conns = listener->accept();
    std::vector<int> clients;
    for (int i = 0; i < 3; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      CO_ASSERT_TRUE(c >= 0);
      EXPECT_EQ(::connect(c, addr->get(), addr->size()), 0);
      clients.push_back(c);
      auto conn = co_await conns.next();
      CO_ASSERT_TRUE(conn.has_value() && conn->has_value());
    }
    EXPECT_EQ(this_shard::counters().multishot_rearms, rearms);
    conns.cancel();
    while (co_await conns.next()) {
    }
    for (int c : clients) ::close(c);
  }());
  EXPECT_EQ(fi.injected_total(), 0u);
  fi.detach();
  expect_settled(rt);
}

// ---------------------------------------------------------------------------
// Delays reorder nothing that is ordered and lose nothing.

TEST(FaultInjectorTest, DelaysLoseAndReorderNothing) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  FaultInjector fi(14);
  fi.add({.fault = Fault::kDelay, .probability = 0.4, .delay_turns = 3});
  fi.attach(rt);
  // The items of one multishot op (all CQEs of one record) keep their
  // order.
  const MultishotOutcome o = rt.block_on(multishot_round_trip(1 << 20));
  EXPECT_TRUE(o.exact) << "the bytes received differ";
  rt.block_on(tcp_round_trip(1 << 20));
  rt.block_on([]() -> Task<void> {
    std::vector<Nop> ops(64);
    std::span<Nop> span(ops);
    auto rs = co_await batch(span);
    EXPECT_EQ(rs.size(), 64u);
    for (const auto& r : rs) EXPECT_EQ(err_of(r), 0);
    // A result CQE (F_MORE) and its notification stay in order.
    if (this_shard::supports(IORING_OP_SEND_ZC)) {
      auto pair = net::UnixStream::pair();
      CO_ASSERT_TRUE(pair.has_value());
      for (int i = 0; i < 20; ++i) {
        Counted zbuf(100, 'z');
        auto n = co_await pair->first.send_zc(std::move(zbuf));
        // Unix sockets may not do zero copy: then the kernel says so.
        if (!n.has_value()) break;
        EXPECT_EQ(*n, 100u);
        char b[128];
        EXPECT_EQ(::recv(pair->second.fd(), b, sizeof(b), 0), 100);
      }
    }
  }());
  EXPECT_GT(fi.injected(Fault::kDelay), 10u);
  fi.detach();
  expect_settled(rt);
  EXPECT_EQ(Counted::live.load(), 0);
}

// ---------------------------------------------------------------------------
// A forced full SQ: the shard submits and goes on; chains stay whole.

TEST(FaultInjectorTest, ForcedSqFullFlushesAndEveryOpCompletes) {
  Watchdog watchdog;
  for (unsigned every : {1u, 3u}) {
    Runtime rt(RuntimeOptions{.shards = 1});
    FaultInjector fi;
    fi.force_sq_full_every(every);
    fi.attach(rt);
    const uint64_t flushes = rt.block_on([]() -> Task<uint64_t> {
      const uint64_t before = this_shard::counters().sq_full_flushes;
      std::vector<Nop> ops(64);
      std::span<Nop> span(ops);
      auto rs = co_await batch(span);
      EXPECT_EQ(rs.size(), 64u);
      for (const auto& r : rs) EXPECT_EQ(err_of(r), 0);
      // A chain reaches the kernel in one submission: the op that fails
      // cancels the ones linked behind it.
      Read<std::string> bad(Fd(-1), std::string(4, '\0'), 0);
      Nop n1;
      Nop n2;
      auto [r0, r1, r2] =
          co_await chain(std::move(bad), std::move(n1), std::move(n2));
      EXPECT_EQ(err_of(r0), EBADF);
      EXPECT_EQ(err_of(r1), ECANCELED);
      EXPECT_EQ(err_of(r2), ECANCELED);
      co_return this_shard::counters().sq_full_flushes - before;
    }());
    EXPECT_GE(flushes, 64u / every) << "every " << every;
    EXPECT_GE(fi.sq_full_forced(), 64u / every);
    EXPECT_EQ(fi.sq_full_forced(0), fi.sq_full_forced());
    EXPECT_EQ(fi.injected_total(), 0u);
    fi.detach();
    expect_settled(rt);
  }
}

// ---------------------------------------------------------------------------
// Detaching.

// A NOP whose CQE the injector holds (for ever, unless detached).
Task<void> held_nop(std::atomic<int>* result) {
  Nop op;
  auto r = co_await submit(std::move(op));
  result->store(r.has_value() ? 1 : 2);
}

TEST(FaultInjectorTest, DetachDeliversHeldCqesAndStopsInjecting) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2});
  FaultInjector fi;
  fi.add({.fault = Fault::kDelay,
          .opcode = IORING_OP_NOP,
          .probability = 1,
          .delay_turns = 1u << 30});
  fi.attach(rt);
  std::atomic<int> r0{0};
  std::atomic<int> r1{0};
  std::atomic<int>* p0 = &r0;
  std::atomic<int>* p1 = &r1;
  rt.spawn_on(0, [p0] { return held_nop(p0); });
  rt.spawn_on(1, [p1] { return held_nop(p1); });
  EXPECT_TRUE(wait_until([&] { return fi.injected(Fault::kDelay) == 2; }));
  EXPECT_EQ(r0.load(), 0);
  EXPECT_EQ(r1.load(), 0);
  fi.detach();
  EXPECT_TRUE(wait_until([&] { return r0.load() != 0 && r1.load() != 0; }));
  EXPECT_EQ(r0.load(), 1);
  EXPECT_EQ(r1.load(), 1);
  // Nothing is held any more.
  EXPECT_EQ(rt.block_on(failing_nops(5)), std::vector<int>{});
  EXPECT_EQ(fi.injected(Fault::kDelay), 2u);
  expect_settled(rt);
  // Attached again: counting starts afresh.
  fi.attach(rt);
  EXPECT_EQ(fi.injected_total(), 0u);
  fi.detach();
  rt.stop();
}

TEST(FaultInjectorTest, DestructorDetachesFromARunningRuntime) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 2});
  {
    FaultInjector fi;
    fi.add({.fault = Fault::kEio, .opcode = IORING_OP_NOP, .probability = 1});
    fi.attach(rt);
    EXPECT_EQ(rt.block_on(failing_nops(3)), (std::vector<int>{0, 1, 2}));
  }
  EXPECT_TRUE(rt.block_on(failing_nops(3)).empty());
  expect_settled(rt);
}

TEST(FaultInjectorTest, RuntimeStoppingFirstFlushesAndDetaches) {
  Watchdog watchdog;
  std::atomic<int> result{0};
  std::atomic<int>* p = &result;
  {
    // Declared first: the injector outlives the runtime.
    FaultInjector fi;
    fi.add({.fault = Fault::kDelay,
            .opcode = IORING_OP_NOP,
            .probability = 1,
            .delay_turns = 1u << 30});
    Runtime rt(RuntimeOptions{.shards = 2});
    fi.attach(rt);
    rt.spawn_on(1, [p] { return held_nop(p); });
    EXPECT_TRUE(wait_until([&] { return fi.injected(Fault::kDelay) == 1; }));
    rt.stop();  // shard 1 delivers the held CQE as it shuts down
    EXPECT_TRUE(fi.attached());
    EXPECT_EQ(fi.injected(Fault::kDelay, 1), 1u);
    fi.detach();  // touches nothing of the stopped runtime
    EXPECT_FALSE(fi.attached());
  }
  {
    FaultInjector fi;
    fi.add({.fault = Fault::kDelay, .probability = 1, .delay_turns = 1u << 30});
    Runtime rt(RuntimeOptions{.shards = 1});
    fi.attach(rt);
    rt.spawn_on(0, [p] { return held_nop(p); });
    EXPECT_TRUE(wait_until([&] { return fi.injected(Fault::kDelay) == 1; }));
    // rt's destructor stops it; then fi's destructor must not touch it.
  }
}

}  // namespace
}  // namespace shardio
