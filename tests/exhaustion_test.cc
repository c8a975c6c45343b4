// Resource exhaustion, forced: a submission queue that fills (1000 Nops on
// an 8-entry SQ), a completion queue that overflows (256 timers expiring at
// the same instant on a 4-entry ring, whose CQ has 8 slots), a buffer ring
// that runs dry (a 2-buffer ring carrying 1 MiB), short transfers where the
// API promises "all" (send_all into a tiny socket buffer, write_all_at into a
// one-page pipe and past kMaxIoChunk, read_exact_at and recv_exact fed in
// small and 1-byte pieces by another thread, and all four at once while a
// thread interrupts the shard with signals, so that its io_uring_enter
// keeps returning EINTR), and a flood of 10,000 tasks per shard each doing
// a Nop and a cross-shard call. Every case checks that nothing is lost or
// duplicated and that the shard ends with no op in flight.
//
// Deterministic on a loaded machine: waits are for events (a counter, a
// socket's queue draining), each bounded by a deadline, and a watchdog
// aborts a test that hangs. Nothing sleeps and hopes, and nothing asserts
// on timing. Kernel features a case needs are probed first; without them
// the case skips and says why.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/buffer_ring.h"
#include "shardio/cross_shard.h"
#include "shardio/fs.h"
#include "shardio/multishot.h"
#include "shardio/net.h"
#include "shardio/operation.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/timeout.h"
#include "shardio/owned_fd.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#if __has_include("shardio/stats.h")
#include "shardio/stats.h"
#include "tests/test_util.h"
#define SHARDIO_TEST_HAVE_STATS 1
#endif

namespace shardio {
namespace {

using test::Watchdog;

using namespace std::chrono_literals;
using std::chrono::steady_clock;

// How long a wait for the shard or another thread keeps trying.
constexpr auto kPatience = std::chrono::seconds(30);

uint64_t in_flight() { return this_shard::counters().ops_in_flight; }

// Yields until pred() holds or kPatience has passed; returns pred().
template <class Pred>
Task<bool> eventually(const Pred& pred) {
  const auto deadline = steady_clock::now() + kPatience;
  while (!pred()) {
    if (steady_clock::now() >= deadline) co_return pred();
    co_await this_shard::yield();
  }
  co_return true;
}

Task<bool> no_op_in_flight() {
  auto idle = [] { return in_flight() == 0; };
  co_return co_await eventually(idle);
}

// On a plain thread: polls cond() until it holds or kPatience has passed.
template <class Cond>
bool wait_on_thread(const Cond& cond) {
  const auto deadline = steady_clock::now() + kPatience;
  while (!cond()) {
    if (steady_clock::now() >= deadline) return cond();
    std::this_thread::yield();
  }
  return true;
}

// The test data: byte k of every stream is a function of k alone, so any
// lost, repeated or reordered byte shows.
std::byte pattern_at(uint64_t k) {
  return static_cast<std::byte>((k * 131 + (k >> 9) + 7) & 0xff);
}
void fill_pattern(uint64_t offset, std::span<std::byte> out) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern_at(offset + i);
}
std::vector<std::byte> pattern(uint64_t offset, std::size_t n) {
  std::vector<std::byte> v(n);
  fill_pattern(offset, v);
  return v;
}
// The offset of the first byte of `got` that is not the pattern, or -1.
int64_t first_mismatch(uint64_t offset, std::span<const std::byte> got) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != pattern_at(offset + i))
      return static_cast<int64_t>(offset + i);
  }
  return -1;
}

// Bytes queued for reading on a pipe or a Unix stream socket. Both queue
// what a writer wrote before its write(2)/send(2) returns and count only
// what has not been read yet, so 0 means "all of it was taken".
int readable_bytes(int fd) {
  int n = -1;
  if (::ioctl(fd, FIONREAD, &n) != 0) return -1;
  return n;
}

// ---------------------------------------------------------------------------
// SQ full.

TEST(ExhaustionTest, SqFullABatchOf1000NopsOnAnEightEntryRingCompletesAll) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 8});
  rt.block_on([]() -> Task<void> {
    const ShardCounters before = this_shard::counters();
    std::vector<Nop> ops(1000);
    std::vector<Result<void>> results = co_await batch(std::span<Nop>(ops));
    const ShardCounters after = this_shard::counters();
    EXPECT_EQ(results.size(), 1000u);
    std::size_t ok = 0;
    for (const auto& r : results) ok += r.has_value() ? 1 : 0;
    EXPECT_EQ(ok, 1000u);
    // 1000 SQEs cannot sit in an 8-entry SQ: the shard flushed it on the way.
    EXPECT_GT(after.sq_full_flushes - before.sq_full_flushes, 0u);
    EXPECT_GE(after.sq_full_flushes - before.sq_full_flushes, 1000u / 8 - 1);
    EXPECT_GE(after.sqes_submitted - before.sqes_submitted, 1000u);
    EXPECT_GE(after.cqes_reaped - before.cqes_reaped, 1000u);
    EXPECT_EQ(in_flight(), 0u);
  }());
}

// ---------------------------------------------------------------------------
// CQ overflow.

constexpr unsigned kTinyRing = 4;  // SQ 4, CQ 8
constexpr int kBurst = 256;

// A deadline on CLOCK_MONOTONIC (steady_clock's clock on Linux) far enough
// ahead that every timer is queued before it passes.
__kernel_timespec abs_deadline(std::chrono::nanoseconds ahead) {
  return to_kernel_timespec((steady_clock::now() + ahead).time_since_epoch());
}

// Whether kBurst timers with one absolute expiry overflow an 8-slot CQ on a
// raw ring set up like the shard's (same flags, same size): the kernel
// posts them in one go, more than the CQ holds. Counts what comes back.
struct OverflowProbe {
  bool nodrop = false;
  bool overflowed = false;
  int reaped = 0;
  std::string error;
};

OverflowProbe probe_overflow(unsigned setup_flags) {
  OverflowProbe out;
  io_uring ring{};
  io_uring_params p{};
  p.flags = setup_flags;
  const int ret = io_uring_queue_init_params(kTinyRing, &ring, &p);
  if (ret < 0) {
    out.error =
        std::string("io_uring_queue_init_params: ") + std::strerror(-ret);
    return out;
  }
  out.nodrop = (p.features & IORING_FEAT_NODROP) != 0;
  if (p.cq_entries != 2 * kTinyRing) {
    out.error = "the CQ has " + std::to_string(p.cq_entries) + " entries";
  }
  const __kernel_timespec when = abs_deadline(200ms);
  int queued = 0;
  while (queued < kBurst && out.error.empty()) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {
      const int s = io_uring_submit(&ring);
      if (s < 0) out.error = std::string("submit: ") + std::strerror(-s);
      continue;
    }
    io_uring_prep_timeout(sqe, const_cast<__kernel_timespec*>(&when), 0,
                          IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(queued));
    ++queued;
  }
  if (out.error.empty()) {
    const int s = io_uring_submit(&ring);
    if (s < 0) out.error = std::string("submit: ") + std::strerror(-s);
  }
  // Wait for the first completion: the timers fire together and the kernel
  // posts their CQEs, more than fit. Then count everything.
  const auto deadline = steady_clock::now() + kPatience;
  while (out.error.empty() && out.reaped < queued &&
         steady_clock::now() < deadline) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{.tv_sec = 1, .tv_nsec = 0};
    const int w = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
    if (w == -ETIME || w == -EINTR) continue;
    if (w < 0) {
      out.error = std::string("wait: ") + std::strerror(-w);
      break;
    }
    if (io_uring_cq_has_overflow(&ring)) out.overflowed = true;
    unsigned head;
    unsigned n = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->res == -ETIME) ++out.reaped;
      ++n;
    }
    io_uring_cq_advance(&ring, n);
  }
  io_uring_queue_exit(&ring);
  return out;
}

class CqOverflowTest : public testing::Test {
 protected:
  void SetUp() override {
    // The flags the shard's ring gets on this kernel.
    unsigned flags;
    {
      Runtime probe_rt(RuntimeOptions{.shards = 1, .ring_entries = kTinyRing});
      flags = probe_rt.setup_flags(0);
    }
    const OverflowProbe p = probe_overflow(flags);
    if (!p.error.empty()) GTEST_SKIP() << "probe ring: " << p.error;
    if (!p.nodrop) {
      GTEST_SKIP() << "the kernel lacks IORING_FEAT_NODROP (5.5+): an "
                      "overflowing CQ drops completions there";
    }
    ASSERT_EQ(p.reaped, kBurst) << "the probe ring itself lost completions";
    if (!p.overflowed) {
      GTEST_SKIP() << kBurst << " timers with one expiry did not overflow an "
                   << 2 * kTinyRing << "-entry CQ on this kernel (ring flags "
                   << flags << "): the case would not test an overflow";
    }
  }
};

// What the shard saw of the overflow: reaps that found CQEs waiting in the
// kernel's overflow list, and CQEs the kernel dropped (must stay 0).
struct OverflowSeen {
  uint64_t backlogs = 0;
  uint64_t dropped = 0;
};
OverflowSeen overflow_seen() {
#ifdef SHARDIO_TEST_HAVE_STATS
  const ShardStats s = this_shard::stats();
  return {s.cq_overflow_backlogs, s.cq_overflows};
#else
  return {};
#endif
}

// Checks that the burst went through the overflow list and nothing was
// dropped (where the runtime reports it).
void expect_overflowed(const OverflowSeen& before, const OverflowSeen& after) {
#ifdef SHARDIO_TEST_HAVE_STATS
  EXPECT_GT(after.backlogs - before.backlogs, 0u)
      << "the shard's CQ never overflowed: the test did not test that";
  EXPECT_EQ(after.dropped - before.dropped, 0u) << "the kernel dropped CQEs";
#else
  (void)before;
  (void)after;
#endif
}

// One task per timer: each task's awaiter must resume exactly once.
TEST_F(CqOverflowTest, EveryOverflowedCompletionResumesItsTaskExactlyOnce) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = kTinyRing});
  rt.block_on([]() -> Task<void> {
    const ShardCounters before = this_shard::counters();
    const OverflowSeen seen_before = overflow_seen();
    std::vector<int> resumed(kBurst, 0);
    std::vector<int> failed(kBurst, 0);
    const __kernel_timespec when = abs_deadline(300ms);
    auto wait = [](__kernel_timespec when, int* resumed,
                   int* failed) -> Task<void> {
      Timeout op(0ns, 0, IORING_TIMEOUT_ABS);
      op.ts = when;
      auto r = co_await submit(std::move(op));
      ++*resumed;
      if (!r) ++*failed;
    };
    std::vector<JoinHandle<void>> tasks;
    tasks.reserve(kBurst);
    for (int i = 0; i < kBurst; ++i) {
      tasks.push_back(spawn(wait(when, &resumed[i], &failed[i])));
    }
    for (auto& t : tasks) co_await t;
    const ShardCounters after = this_shard::counters();
    expect_overflowed(seen_before, overflow_seen());
    int once = 0;
    int bad = 0;
    for (int i = 0; i < kBurst; ++i) {
      once += resumed[i] == 1 ? 1 : 0;
      bad += failed[i];
    }
    EXPECT_EQ(once, kBurst);
    EXPECT_EQ(bad, 0);
    EXPECT_GE(after.cqes_reaped - before.cqes_reaped,
              static_cast<uint64_t>(kBurst));
    // The SQ (4 entries) was full again and again while the tasks queued.
    EXPECT_GT(after.sq_full_flushes - before.sq_full_flushes, 0u);
    EXPECT_EQ(in_flight(), 0u);
  }());
  EXPECT_EQ(rt.counters(0).ops_in_flight, 0u);
}

// One batch of all the timers: its single awaiter resumes once, after the
// last of 256 completions, most of which went through the overflow list.
TEST_F(CqOverflowTest, ABatchWhoseCompletionsOverflowCompletesOnce) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = kTinyRing});
  rt.block_on([]() -> Task<void> {
    const __kernel_timespec when = abs_deadline(300ms);
    std::vector<Timeout> ops;
    ops.reserve(kBurst);
    for (int i = 0; i < kBurst; ++i) {
      Timeout op(0ns, 0, IORING_TIMEOUT_ABS);
      op.ts = when;
      ops.push_back(op);
    }
    int resumed = 0;
    const OverflowSeen seen_before = overflow_seen();
    std::vector<Result<void>> results = co_await batch(std::span<Timeout>(ops));
    ++resumed;
    expect_overflowed(seen_before, overflow_seen());
    EXPECT_EQ(resumed, 1);
    EXPECT_EQ(results.size(), static_cast<std::size_t>(kBurst));
    int ok = 0;
    for (const auto& r : results) ok += r.has_value() ? 1 : 0;
    EXPECT_EQ(ok, kBurst);
    EXPECT_EQ(in_flight(), 0u);
    // The ring still works: a round trip after the storm.
    Nop nop;
    auto n = co_await submit(std::move(nop));
    EXPECT_TRUE(n);
  }());
}

// ---------------------------------------------------------------------------
// A buffer ring that runs dry.

TEST(ExhaustionTest, ATwoBufferRingCarries1MiBByteExactAcrossDryRearms) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    constexpr std::size_t kTotal = std::size_t{1} << 20;
    auto pair = net::UnixStream::pair();
    CO_ASSERT_TRUE(pair);
    auto& [a, b] = *pair;
    auto ring = BufferRing::create(2, 4096);
    EXPECT_TRUE(ring) << ring.error().message();
    CO_ASSERT_TRUE(ring);
    const uint64_t rearms_before = this_shard::counters().multishot_rearms;
    auto stream = b.recv_multishot(*ring);
    // The writer: a thread with blocking sends, then FIN.
    const int wfd = a.fd();
    std::atomic<uint64_t> sent{0};
    std::thread writer([wfd, &sent] {
      std::vector<std::byte> chunk(64 * 1024);
      uint64_t off = 0;
      while (off < kTotal) {
        const std::size_t n = std::min<std::size_t>(chunk.size(), kTotal - off);
        fill_pattern(off, std::span(chunk.data(), n));
        std::size_t done = 0;
        while (done < n) {
          const ssize_t r =
              ::send(wfd, chunk.data() + done, n - done, MSG_NOSIGNAL);
          if (r <= 0) return;
          done += static_cast<std::size_t>(r);
        }
        off += n;
        sent.store(off);
      }
      ::shutdown(wfd, SHUT_WR);
    });
    uint64_t got = 0;
    int64_t bad_at = -1;
    bool eof = false;
    bool parked = false;
    int error = 0;
    std::vector<ProvidedBuffer> held;
    while (auto item = co_await stream.next()) {
      if (!*item) {
        error = item->error().value();
        break;
      }
      ProvidedBuffer buf = std::move(**item);
      if (buf.empty()) {
        eof = true;
        continue;
      }
      if (bad_at < 0) bad_at = first_mismatch(got, buf.bytes());
      got += buf.size();
      held.push_back(std::move(buf));
      if (held.size() < 2) continue;
      // Both buffers are out: the ring is dry. The first time, wait until
      // the kernel has ended the receive with ENOBUFS and the stream parked
      // (no op in flight; the writer has more to send, so that end comes).
      EXPECT_EQ(ring->available(), 0u);
      if (!parked && got < kTotal) {
        parked = co_await no_op_in_flight();
        EXPECT_TRUE(parked) << "the receive never left the kernel";
      } else {
        co_await this_shard::yield();
      }
      held.clear();  // back to the ring: the stream re-arms
    }
    held.clear();
    (void)::shutdown(b.fd(), SHUT_RDWR);  // frees the writer on a failure
    writer.join();
    EXPECT_EQ(error, 0) << std::strerror(error);
    EXPECT_TRUE(eof);
    EXPECT_EQ(sent.load(), kTotal);
    EXPECT_EQ(got, kTotal);
    EXPECT_EQ(bad_at, -1) << "first wrong byte at offset " << bad_at;
    EXPECT_TRUE(parked);
    EXPECT_GT(this_shard::counters().multishot_rearms - rearms_before, 0u);
    EXPECT_EQ(ring->available(), 2u);
    EXPECT_TRUE(stream.ended());
    EXPECT_EQ(in_flight(), 0u);
  }());
}

// ---------------------------------------------------------------------------
// Short transfers where the API promises all of it.

// A connected loopback TCP pair.
struct TcpPair {
  net::TcpStream client;
  net::TcpStream server;
};
Task<std::optional<TcpPair>> tcp_pair() {
  auto l = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  EXPECT_TRUE(l) << l.error().message();
  if (!l) co_return std::nullopt;
  auto addr = l->local_address();
  if (!addr) co_return std::nullopt;
  auto c = co_await net::TcpStream::connect(*addr);
  EXPECT_TRUE(c) << c.error().message();
  if (!c) co_return std::nullopt;
  auto s = co_await l->accept_one();
  EXPECT_TRUE(s) << s.error().message();
  if (!s) co_return std::nullopt;
  co_return TcpPair{std::move(*c), std::move(*s)};
}

// Reads `fd` (blocking, with SO_RCVTIMEO or a pipe's EOF as the bound) in
// pieces of at most `piece` bytes until EOF or `total` bytes, checking the
// pattern. Returns the bytes read; *bad_at the first wrong byte, or -1.
uint64_t read_slowly(int fd, uint64_t total, std::size_t piece,
                     int64_t* bad_at) {
  std::vector<std::byte> buf(piece);
  uint64_t got = 0;
  *bad_at = -1;
  const auto deadline = steady_clock::now() + kPatience;
  while (got < total + 1 && steady_clock::now() < deadline) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n == 0) break;  // EOF
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      break;
    }
    if (*bad_at < 0) {
      *bad_at = first_mismatch(got, std::span(buf.data(), std::size_t(n)));
    }
    got += static_cast<uint64_t>(n);
  }
  return got;
}

// send_all into a socket whose send buffer holds a few KiB, drained by a
// thread that reads 1000 bytes at a time: many short sends, all of it
// arrives.
TEST(ExhaustionTest, SendAllWithATinySendBufferAndASlowReaderIsByteExact) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    constexpr std::size_t kTotal = std::size_t{4} << 20;
    auto pair = co_await tcp_pair();
    CO_ASSERT_TRUE(pair);
    auto r1 = pair->client.set_option(SOL_SOCKET, SO_SNDBUF, 4096);
    EXPECT_TRUE(r1) << r1.error().message();
    // (The receiver's buffer stays as it is: shrinking it on a live
    // connection makes TCP drop segments and back off for seconds.)
    const int rfd = pair->server.fd();
    timeval tv{.tv_sec = 30, .tv_usec = 0};
    ::setsockopt(rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint64_t got = 0;
    int64_t bad_at = -1;
    std::thread reader([rfd, &got, &bad_at] {
      got = read_slowly(rfd, kTotal, 1000, &bad_at);
    });
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    auto w = co_await pair->client.send_all(pattern(0, kTotal));
    const uint64_t sends = this_shard::counters().sqes_submitted - sqes_before;
    auto sh = co_await pair->client.shutdown(SHUT_WR);
    EXPECT_TRUE(sh);
    reader.join();
    EXPECT_TRUE(w.res) << w.res.error().message();
    EXPECT_EQ(w.res.value_or(0), kTotal);
    EXPECT_EQ(w.buf.size(), kTotal);  // the buffer comes back whole
    EXPECT_EQ(got, kTotal);
    EXPECT_EQ(bad_at, -1) << "first wrong byte at offset " << bad_at;
    // 4 MiB did not fit in one send: send_all went on after short ones.
    EXPECT_GE(sends, 2u);
    EXPECT_EQ(in_flight(), 0u);
  }());
}

constexpr std::size_t kPipeTotal = std::size_t{1} << 20;

// write_all_at into a pipe of one page, drained 777 bytes at a time.
TEST(ExhaustionTest, WriteAllAtIntoAOnePagePipeIsByteExact) {
  Watchdog watchdog;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  // The smallest pipe there is; the kernel may round up to a page.
  (void)::fcntl(p[1], F_SETPIPE_SZ, 4096);
  const int rfd = p[0];
  uint64_t got = 0;
  int64_t bad_at = -1;
  std::thread reader([rfd, &got, &bad_at] {
    got = read_slowly(rfd, kPipeTotal, 777, &bad_at);
  });
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int wfd) -> Task<void> {
    fs::File f = fs::File::from_raw_fd(wfd, "pipe");
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    auto w = co_await f.write_all_at(pattern(0, kPipeTotal), kCurrentPosition);
    const uint64_t writes = this_shard::counters().sqes_submitted - sqes_before;
    EXPECT_TRUE(w.res) << w.res.error().message();
    EXPECT_EQ(w.res.value_or(0), kPipeTotal);
    EXPECT_GE(writes, 2u);        // short writes, continued
    auto c = co_await f.close();  // EOF for the reader
    EXPECT_TRUE(c) << c.error().message();
    EXPECT_EQ(in_flight(), 0u);
  }(p[1]));
  reader.join();
  ::close(rfd);
  EXPECT_EQ(got, kPipeTotal);
  EXPECT_EQ(bad_at, -1) << "first wrong byte at offset " << bad_at;
}

constexpr std::size_t kPiecesTotal = 64 * 1024;

// read_exact_at from a pipe fed by a thread in pieces of 1..97 bytes, each
// written only once the last one has been read (the pipe is empty): every
// read gets one piece, so "exact" takes many short reads.
TEST(ExhaustionTest, ReadExactAtFromAPipeFedInSmallPiecesIsByteExact) {
  Watchdog watchdog;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](int rfd, int wfd) -> Task<void> {
    fs::File f = fs::File::from_raw_fd(rfd, "pipe");
    std::atomic<bool> writer_ok{true};
    uint64_t pieces = 0;
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    std::thread writer([wfd, rfd, &writer_ok, &pieces] {
      uint64_t off = 0;
      std::size_t piece = 1;
      while (off < kPiecesTotal) {
        const std::size_t n = std::min<std::size_t>(piece, kPiecesTotal - off);
        std::vector<std::byte> chunk = pattern(off, n);
        if (::write(wfd, chunk.data(), n) != static_cast<ssize_t>(n)) {
          writer_ok = false;
          break;
        }
        off += n;
        ++pieces;
        piece = piece % 97 + 1;
        // The next piece goes once this one has been read. (Not after the
        // last: the reader then closes its end.)
        if (off < kPiecesTotal &&
            !wait_on_thread([rfd] { return readable_bytes(rfd) == 0; })) {
          writer_ok = false;
          break;
        }
      }
      ::close(wfd);  // then the end of the file
    });
    auto r = co_await f.read_exact_at(std::vector<std::byte>(kPiecesTotal),
                                      kCurrentPosition);
    const uint64_t sqes = this_shard::counters().sqes_submitted - sqes_before;
    writer.join();
    EXPECT_TRUE(writer_ok.load());
    EXPECT_TRUE(r.res) << r.res.error().message();
    EXPECT_EQ(r.res.value_or(0), kPiecesTotal);
    EXPECT_EQ(first_mismatch(0, r.buf), -1);
    // At least one read per piece (the count may include a runtime SQE).
    EXPECT_GE(sqes, pieces);
    EXPECT_GT(pieces, kPiecesTotal / 97);
    // The writer has closed its end: one byte more is the end of the file.
    auto more =
        co_await f.read_exact_at(std::vector<std::byte>(1), kCurrentPosition);
    EXPECT_FALSE(more.res);
    if (!more.res) {
      EXPECT_EQ(more.res.error().code, errno_code(ENODATA));
    }
    EXPECT_EQ(in_flight(), 0u);
  }(p[0], p[1]));
}

// write_all_at of 3 GiB (an untouched mapping) to /dev/null: one op moves at
// most kMaxIoChunk, so "all" takes two writes.
TEST(ExhaustionTest, WriteAllAtBeyondMaxIoChunkWritesEverything) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    struct Mapping {
      std::byte* p = nullptr;
      std::size_t n = 0;
      Mapping(std::size_t size) : n(size) {
        void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m != MAP_FAILED) p = static_cast<std::byte*>(m);
      }
      Mapping(Mapping&& o) noexcept : p(std::exchange(o.p, nullptr)), n(o.n) {}
      ~Mapping() {
        if (p != nullptr) ::munmap(p, n);
      }
      std::byte* data() { return p; }
      std::size_t size() const { return n; }
    };
    constexpr std::size_t kTotal = std::size_t{3} << 30;
    Mapping m(kTotal);
    CO_ASSERT_TRUE(m.p != nullptr);
    auto f = co_await fs::File::options().write().open("/dev/null");
    CO_ASSERT_TRUE(f);
    const uint64_t sqes_before = this_shard::counters().sqes_submitted;
    auto w = co_await f->write_all_at(std::move(m), 0);
    const uint64_t writes = this_shard::counters().sqes_submitted - sqes_before;
    EXPECT_TRUE(w.res) << w.res.error().message();
    EXPECT_EQ(w.res.value_or(0), kTotal);
    EXPECT_GE(writes, 2u);
    EXPECT_EQ(in_flight(), 0u) << "after write_all_at";
  }());
}

// recv_exact of 1000 bytes that arrive one at a time over a Unix socket
// pair of `type`: the writer thread sends byte k only once byte k-1 has
// been taken (nothing is queued), so the receives keep finding nothing and
// waiting. Returns the number of SQEs the shard submitted meanwhile.
Task<uint64_t> recv_exact_from_single_bytes(int type, std::size_t total) {
  int sv[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) {
    ADD_FAILURE() << "socketpair: " << std::strerror(errno);
    co_return 0;
  }
  net::UnixStream a{OwnedFd(sv[0])};
  net::UnixStream b{OwnedFd(sv[1])};
  const int wfd = a.fd();
  const int rfd = b.fd();
  std::atomic<bool> writer_ok{true};
  const uint64_t sqes_before = this_shard::counters().sqes_submitted;
  std::thread writer([wfd, rfd, total, &writer_ok] {
    for (std::size_t i = 0; i < total; ++i) {
      const std::byte x = pattern_at(i);
      if (::send(wfd, &x, 1, MSG_NOSIGNAL) != 1) {
        writer_ok = false;
        return;
      }
      if (i + 1 < total &&
          !wait_on_thread([rfd] { return readable_bytes(rfd) == 0; })) {
        writer_ok = false;
        return;
      }
    }
  });
  auto r = co_await b.recv_exact(std::vector<std::byte>(total));
  const uint64_t sqes = this_shard::counters().sqes_submitted - sqes_before;
  writer.join();
  EXPECT_TRUE(writer_ok.load());
  EXPECT_TRUE(r.res) << r.res.error().message();
  EXPECT_EQ(r.res.value_or(0), total);
  EXPECT_EQ(first_mismatch(0, r.buf), -1);
  EXPECT_EQ(in_flight(), 0u);
  co_return sqes;
}

// A stream socket: byte-exact. (How many receives it takes is not fixed:
// a receive that is still copying when the next byte arrives may take it
// too.)
TEST(ExhaustionTest, RecvExactFromOneBytePiecesIsByteExact) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  (void)rt.block_on(recv_exact_from_single_bytes(SOCK_STREAM, 1000));
}

// A SOCK_SEQPACKET socket keeps its one-byte records apart: every receive
// of recv_exact gets exactly one byte, so "exact" takes a receive per byte.
TEST(ExhaustionTest, RecvExactFromOneByteRecordsTakesAReceiveEach) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  const uint64_t sqes =
      rt.block_on(recv_exact_from_single_bytes(SOCK_SEQPACKET, 1000));
  // At least one receive per byte (the count may include a runtime SQE).
  EXPECT_GE(sqes, 1000u);
}

// EINTR: a thread keeps interrupting the shard with signals (a handler
// without SA_RESTART) while it runs send_all/recv_exact over a socket pair
// and write_all_at/read_exact_at over a pipe, all four at once on one
// shard. Every io_uring_enter the shard sleeps in returns -EINTR; the loop
// must go on, and every transfer must still be whole and exact.

// The kernel thread id of the thread named `name`, or -1.
pid_t thread_named(const std::string& name) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string comm;
    if (FILE* f = std::fopen(
            ("/proc/self/task/" + std::string(e->d_name) + "/comm").c_str(),
            "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof(buf), f) != nullptr) comm = buf;
      std::fclose(f);
    }
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == name) {
      found = static_cast<pid_t>(std::atoi(e->d_name));
      break;
    }
  }
  ::closedir(d);
  return found;
}

Task<void> transfers_under_signals() {
  constexpr std::size_t kTotal = std::size_t{2} << 20;
  auto pair = net::UnixStream::pair();
  CO_ASSERT_TRUE(pair);
  auto& [a, b] = *pair;
  int p[2];
  CO_ASSERT_TRUE(::pipe2(p, O_CLOEXEC) == 0);
  fs::File pipe_out = fs::File::from_raw_fd(p[1], "pipe write end");
  fs::File pipe_in = fs::File::from_raw_fd(p[0], "pipe read end");
  auto send =
      [](net::UnixStream& s) -> Task<net::IoResult<std::vector<std::byte>>> {
    co_return co_await s.send_all(pattern(0, kTotal));
  };
  auto write = [](fs::File& f) -> Task<fs::IoResult<std::vector<std::byte>>> {
    co_return co_await f.write_all_at(pattern(0, kTotal), kCurrentPosition);
  };
  auto sending = spawn(send(a));
  auto writing = spawn(write(pipe_out));
  auto received = co_await b.recv_exact(std::vector<std::byte>(kTotal));
  auto read = co_await pipe_in.read_exact_at(std::vector<std::byte>(kTotal),
                                             kCurrentPosition);
  auto sent = co_await sending;
  auto written = co_await writing;
  EXPECT_TRUE(sent.res) << sent.res.error().message();
  EXPECT_EQ(sent.res.value_or(0), kTotal);
  EXPECT_TRUE(written.res) << written.res.error().message();
  EXPECT_EQ(written.res.value_or(0), kTotal);
  EXPECT_TRUE(received.res) << received.res.error().message();
  EXPECT_EQ(first_mismatch(0, received.buf), -1);
  EXPECT_TRUE(read.res) << read.res.error().message();
  EXPECT_EQ(first_mismatch(0, read.buf), -1);
  EXPECT_EQ(in_flight(), 0u);
}

TEST(ExhaustionTest, SignalsAtTheShardDoNotBreakAllOrExact) {
  Watchdog watchdog;
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  std::atomic<uint64_t> signals{0};
  {
    Runtime rt(RuntimeOptions{.shards = 1});
    const pid_t shard = thread_named("shardio-0");
    ASSERT_GT(shard, 0) << "no thread named shardio-0";
    std::atomic<bool> stop{false};
    std::thread storm([shard, &stop, &signals] {
      const pid_t pid = ::getpid();
      while (!stop.load()) {
        if (::syscall(SYS_tgkill, pid, shard, SIGUSR1) != 0) break;
        signals.fetch_add(1);
        std::this_thread::yield();
      }
    });
    // The storm is on before the work starts.
    EXPECT_TRUE(wait_on_thread([&signals] { return signals.load() >= 100; }));
    rt.block_on(transfers_under_signals());
    stop = true;
    storm.join();
    // The runtime goes (its thread is joined) before the handler does, so
    // no signal is left to meet the default action.
  }
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_GE(signals.load(), 100u);
}

// ---------------------------------------------------------------------------
// A flood of tasks and cross-shard calls.

constexpr int kFlood = 10000;

// What one shard's side of the flood saw; touched only on that shard.
struct Tally {
  uint64_t calls_served = 0;  // calls from the other shard run here
  uint64_t sum_served = 0;    // of their arguments
  int replies_ok = 0;         // calls from here answered correctly
  int nops_ok = 0;
};

// Runs on shard `self`: kFlood tasks, each a Nop and a call to `peer`,
// which records the argument in the peer's tally and answers 2*i+1.
Task<void> flood_from(unsigned self, unsigned peer, Tally* mine,
                      Tally* theirs) {
  EXPECT_EQ(this_shard::id(), self);
  auto one = [](unsigned peer, int i, Tally* mine,
                Tally* theirs) -> Task<void> {
    Nop nop;
    auto n = co_await submit(std::move(nop));
    if (n) ++mine->nops_ok;
    auto call = [i, peer, theirs] {
      EXPECT_EQ(this_shard::id(), peer);
      ++theirs->calls_served;
      theirs->sum_served += static_cast<uint64_t>(i);
      return 2 * i + 1;
    };
    const int v = co_await submit_to(peer, std::move(call));
    if (v == 2 * i + 1) ++mine->replies_ok;
  };
  std::vector<JoinHandle<void>> tasks;
  tasks.reserve(kFlood);
  for (int i = 0; i < kFlood; ++i) {
    tasks.push_back(spawn(one(peer, i, mine, theirs)));
  }
  for (auto& t : tasks) co_await t;
}

TEST(ExhaustionTest, AFloodOfTasksWithNopsAndCrossShardCallsLosesNothing) {
  Watchdog watchdog(absl::Seconds(300));
  // Small message queues, so that senders also wait for room.
  Runtime rt(RuntimeOptions{.shards = 2, .message_queue_capacity = 64});
  auto tallies = std::make_unique<Tally[]>(2);
  Tally* t0 = &tallies[0];
  Tally* t1 = &tallies[1];
  const ShardCounters c0 = rt.counters(0);
  const ShardCounters c1 = rt.counters(1);
  rt.block_on([](Tally* t0, Tally* t1) -> Task<void> {
    // Both directions at once: shard 1 floods shard 0 while shard 0 floods
    // shard 1.
    auto other = [t0, t1] { return flood_from(1, 0, t1, t0); };
    auto remote = spawn_on(1, std::move(other));
    co_await flood_from(0, 1, t0, t1);
    co_await remote;
    // Settle: no op in flight on either shard.
    const bool idle0 = co_await no_op_in_flight();
    EXPECT_TRUE(idle0);
    auto idle1_fn = [] { return no_op_in_flight(); };
    const bool idle1 = co_await submit_to(1, std::move(idle1_fn));
    EXPECT_TRUE(idle1);
  }(t0, t1));
  const uint64_t n = kFlood;
  const uint64_t sum = n * (n - 1) / 2;
  for (int s = 0; s < 2; ++s) {
    SCOPED_TRACE(testing::Message() << "shard " << s);
    EXPECT_EQ(tallies[s].nops_ok, kFlood);
    EXPECT_EQ(tallies[s].replies_ok, kFlood);
    EXPECT_EQ(tallies[s].calls_served, n);
    EXPECT_EQ(tallies[s].sum_served, sum);
  }
  const ShardCounters d0 = rt.counters(0);
  const ShardCounters d1 = rt.counters(1);
  // Each call is a message there and a reply back.
  EXPECT_GE(d0.messages_sent - c0.messages_sent, 2 * n);
  EXPECT_GE(d1.messages_sent - c1.messages_sent, 2 * n);
  EXPECT_GE(d0.messages_received - c0.messages_received, 2 * n);
  EXPECT_GE(d1.messages_received - c1.messages_received, 2 * n);
  EXPECT_EQ(d0.ops_in_flight, 0u);
  EXPECT_EQ(d1.ops_in_flight, 0u);
}

}  // namespace
}  // namespace shardio
