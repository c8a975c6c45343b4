// runtime_fuzzer: libFuzzer decodes each input into a small program of at
// most 64 steps and runs it on a two-shard Runtime with a tiny ring (8 SQ
// entries, 16 CQ entries) and tiny message queues, so that full SQs, CQ
// overflow and cross-shard back-pressure are everyday events.
//
// The steps spawn tasks (on shard 0 and, with spawn_on, on shard 1), start
// eager coroutines that this program owns and destroys mid-op, join and
// detach tasks, request stops (on the shard, from the other shard, from a
// blocking-pool thread, or later by message), yield, sleep, and run ops:
// Nop, Timeout, Read/Write on a temporary file (raw ops, fs::File and, with
// a registered slot), Send/Recv on a Unix socket pair, RecvMultishot with a
// small BufferRing (held buffers make it run dry), Cancel, Shutdown,
// batch() and chain() (tuple and span forms; chains longer than the SQ must
// throw), submit_to/post_to/spawn_on/spawn_blocking. A step may stop the
// runtime while ops are in flight (Runtime::stop from this thread); the next
// input then gets a fresh Runtime.
//
// Invariants checked after every input (a failure traps, and libFuzzer saves
// the input):
//   - every op handed to submit()/batch()/chain() completes exactly once
//     (complete() is counted, orphaned ops included);
//   - no task frame and no buffer outlives the input; ops_in_flight is 0 on
//     both shards; every post_to message ran (unless the runtime stopped);
//   - Unix-socket bytes: sent == received (by any recv, orphaned ones
//     included) + what is left in the socket; received bytes carry the
//     sender's pattern;
//   - file bytes: the file only ever holds 0 or f(offset), and a linked
//     write->read of a range reads back exactly what was written;
//   - results have the documented shapes (a chain after a failed op is
//     ECANCELED, a stopped token yields ECANCELED without submitting, ...);
//   - no fd leaks (the process's fd count is back where it was).
// A watchdog aborts an input that runs for more than 10 s (a hang): set
// RUNTIME_FUZZER_HANG_SECONDS to change it.
//
// Build: CMake with Clang, -DSHARDIO_BUILD_FUZZERS=ON (see fuzz/README.md).
#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shardio/shardio.h"

namespace {

using namespace shardio;  // NOLINT(google-build-using-namespace)
using std::chrono::microseconds;

#define FUZZ_CHECK(cond, ...)                                           \
  do {                                                                  \
    if (!(cond)) [[unlikely]] {                                         \
      std::fprintf(stderr,                                              \
                   "runtime_fuzzer: check failed: %s (%s:%d): ", #cond, \
                   __FILE__, __LINE__);                                 \
      std::fprintf(stderr, __VA_ARGS__);                                \
      std::fputc('\n', stderr);                                         \
      std::fflush(stderr);                                              \
      __builtin_trap();                                                 \
    }                                                                   \
  } while (0)

constexpr unsigned kShards = 2;
constexpr unsigned kRingEntries = 8;
constexpr std::size_t kMaxSteps = 64;
constexpr unsigned kSlots = 8;
constexpr uint64_t kFileSize = 64 * 1024;

// ---------------------------------------------------------------------------
// What every input shares; reset at the start of each input.

struct Env {
  std::atomic<int64_t> live_tasks{0};
  std::atomic<int64_t> live_bufs{0};
  std::atomic<uint64_t> ops_submitted{0};
  std::atomic<uint64_t> ops_completed{0};
  std::atomic<uint64_t> sent_to[2] = {};   // bytes sent towards side i
  std::atomic<uint64_t> recvd_at[2] = {};  // bytes received on side i
  std::atomic<uint64_t> posts_sent{0};
  std::atomic<uint64_t> posts_run{0};
  int sock[2] = {-1, -1};
  int file_fd = -1;  // the process-wide temporary file
  uint8_t salt = 0;
  // Touched on shard 0 only: created at program start, closed at its end
  // (or, after a stop, destroyed off-shard by the fuzzer thread).
  std::optional<fs::File> file;
  // Stop sources of this input; a deque so that elements stay in place
  // while other threads call request_stop on them.
  std::deque<std::stop_source> sources;
};

Env g;

uint8_t file_byte(uint64_t pos) {
  return static_cast<uint8_t>((pos * 131u + g.salt) % 255u + 1u);
}
// The byte every send towards side `to` carries.
std::byte sock_byte(int to) {
  return std::byte{to == 0 ? uint8_t{0x5A} : uint8_t{0xB6}};
}

std::chrono::nanoseconds tiny(uint8_t v) {  // 0..200 µs
  return microseconds(v * 200 / 255);
}

// Counts the task frames that are alive (constructed when the body first
// runs, destroyed with the frame).
struct TaskGuard {
  TaskGuard() { g.live_tasks.fetch_add(1); }
  ~TaskGuard() { g.live_tasks.fetch_sub(1); }
  TaskGuard(const TaskGuard&) = delete;
  TaskGuard& operator=(const TaskGuard&) = delete;
};

// An owned buffer that counts its allocations.
class Buf {
 public:
  Buf() = default;
  explicit Buf(std::size_t n, std::byte fill = std::byte{0})
      : p_(new std::byte[n == 0 ? 1 : n]), n_(n) {
    std::memset(p_, static_cast<int>(fill), n == 0 ? 1 : n);
    g.live_bufs.fetch_add(1);
  }
  Buf(Buf&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buf& operator=(Buf&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { reset(); }

  std::byte* data() noexcept { return p_; }
  const std::byte* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  bool valid() const noexcept { return p_ != nullptr; }

 private:
  void reset() noexcept {
    if (p_ != nullptr) {
      delete[] p_;
      p_ = nullptr;
      n_ = 0;
      g.live_bufs.fetch_sub(1);
    }
  }
  std::byte* p_ = nullptr;
  std::size_t n_ = 0;
};

Buf file_pattern(uint64_t off, std::size_t n) {
  Buf b(n);
  for (std::size_t i = 0; i < n; ++i)
    b.data()[i] = std::byte{file_byte(off + i)};
  return b;
}

// ---------------------------------------------------------------------------
// Ops wrapped so that every completion is counted, with socket bytes.

enum class Acct : uint8_t { kNone, kSendTo0, kSendTo1, kRecvAt0, kRecvAt1 };

void note_completion(Acct a, int32_t res) {
  g.ops_completed.fetch_add(1);
  if (res <= 0) return;
  switch (a) {
    case Acct::kSendTo0:
      g.sent_to[0].fetch_add(static_cast<uint64_t>(res));
      break;
    case Acct::kSendTo1:
      g.sent_to[1].fetch_add(static_cast<uint64_t>(res));
      break;
    case Acct::kRecvAt0:
      g.recvd_at[0].fetch_add(static_cast<uint64_t>(res));
      break;
    case Acct::kRecvAt1:
      g.recvd_at[1].fetch_add(static_cast<uint64_t>(res));
      break;
    case Acct::kNone:
      break;
  }
}

template <class Op>
constexpr uint8_t opcode_of() {
  if constexpr (requires { Op::kOpcode; }) {
    return Op::kOpcode;
  } else {
    return IORING_OP_NOP;
  }
}

template <class Inner>
struct Counted {
  static constexpr uint8_t kOpcode = opcode_of<Inner>();
  Inner inner;
  Acct acct = Acct::kNone;
  void prepare(io_uring_sqe& sqe) { inner.prepare(sqe); }
  auto complete(const io_uring_cqe& cqe) {
    note_completion(acct, cqe.res);
    return inner.complete(cqe);
  }
};

template <class Inner>
Counted<Inner> counted(Inner in, Acct a = Acct::kNone) {
  g.ops_submitted.fetch_add(1);
  return Counted<Inner>{std::move(in), a};
}

Acct send_to(int side) { return side == 0 ? Acct::kSendTo0 : Acct::kSendTo1; }
Acct recv_at(int side) { return side == 0 ? Acct::kRecvAt0 : Acct::kRecvAt1; }

// RecvMultishot with its bytes counted (every CQE's complete() runs, items of
// an orphaned stream included).
struct CountedRecvMultishot {
  static constexpr uint8_t kOpcode = IORING_OP_RECV;
  static constexpr bool kMultishot = true;
  RecvMultishot inner;
  int side;
  void prepare(io_uring_sqe& sqe) noexcept { inner.prepare(sqe); }
  Result<ProvidedBuffer> complete(const io_uring_cqe& cqe) noexcept {
    if (cqe.res > 0) g.recvd_at[side].fetch_add(static_cast<uint64_t>(cqe.res));
    return inner.complete(cqe);
  }
  MultishotEnd on_end(const io_uring_cqe& cqe, Rearm rearm) {
    return inner.on_end(cqe, rearm);
  }
};

bool is_err(const std::error_code& e, int err) { return e == errno_code(err); }

void check_recv_bytes(const std::byte* p, std::size_t n, int side) {
  const std::byte want = sock_byte(side);
  for (std::size_t i = 0; i < n; ++i) {
    FUZZ_CHECK(p[i] == want, "socket byte %zu of %zu received on side %d is %d",
               i, n, side, static_cast<int>(p[i]));
  }
}

void check_file_bytes(const std::byte* p, std::size_t n, uint64_t off,
                      bool exact) {
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = static_cast<uint8_t>(p[i]);
    const uint8_t want = file_byte(off + i);
    FUZZ_CHECK(v == want || (!exact && v == 0),
               "file byte at %llu is %d, expected %d%s",
               static_cast<unsigned long long>(off + i), v, want,
               exact ? "" : " or 0");
  }
}

// Send and recv errors that the program can cause (a side shut down, a
// cancellation, Cancel::all).
bool expected_socket_error(const std::error_code& e) {
  return is_err(e, ECANCELED) || is_err(e, EPIPE) || is_err(e, ECONNRESET) ||
         is_err(e, EINTR);
}

// ---------------------------------------------------------------------------
// A coroutine that starts eagerly and stays suspended at its end: the
// program owns its frame and destroys it whenever it likes (mid-op
// included), as tests/test_util.h's test::Eager does.

class Eager {
 public:
  struct promise_type {
    Eager get_return_object() noexcept {
      return Eager(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  Eager() = default;
  explicit Eager(std::coroutine_handle<promise_type> h) : h_(h) {}
  Eager(Eager&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Eager& operator=(Eager&& o) noexcept {
    if (this != &o) {
      destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Eager() { destroy(); }
  // Empty, or suspended at its end.
  bool done() const { return !h_ || h_.done(); }
  void destroy() {
    if (h_) std::exchange(h_, {}).destroy();
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

// ---------------------------------------------------------------------------
// Bodies: what one task does.

enum BodyKind : uint8_t {
  kNops,
  kSleep,
  kFileWrite,
  kFileRead,
  kSend,
  kRecv,         // waits until data, EOF or a stop: unbounded
  kRecvTimeout,  // chain(Recv, LinkTimeout)
  kMultishot,    // waits until a stop or EOF: unbounded
  kFsFile,
  kSubmitValue,
  kSubmitTask,
  kSubmitThrow,
  kPostBurst,
  kBlocking,
  kBatchTuple,
  kBatchSpan,
  kChainWriteRead,
  kChainFailHead,
  kChainSpan,
  kStoppedToken,
  kYield,
  kCancelOp,
  kShutdownSide,
  kNested,
  kNumBodyKinds
};

struct Spec {
  uint8_t kind;
  uint8_t x;
  uint8_t y;
  uint8_t depth = 0;
};

bool unbounded(uint8_t kind) { return kind == kRecv || kind == kMultishot; }

// The kind as run where nothing will stop it (inline in the program, or
// nested): unbounded kinds become a recv with a timeout.
uint8_t bounded_kind(uint8_t kind) {
  kind %= kNumBodyKinds;
  return unbounded(kind) ? uint8_t{kRecvTimeout} : kind;
}

Task<void> body(Spec s, std::stop_token st);

Task<void> do_nops(Spec s, std::stop_token st) {
  const int n = s.x % 4 + 1;
  for (int i = 0; i < n; ++i) {
    auto op = counted(Nop{});
    if (s.y & 1) {
      Result<void> r = co_await submit(std::move(op), st);
      FUZZ_CHECK(r.has_value() || (is_err(r.error(), ECANCELED)),
                 "stoppable nop: %s", r.error().message().c_str());
    } else {
      Result<void> r = co_await submit(std::move(op));
      FUZZ_CHECK(r.has_value(), "nop: %s", r.error().message().c_str());
    }
  }
}

Task<void> do_sleep(Spec s, std::stop_token st) {
  auto op = counted(Timeout(tiny(s.x)));
  Result<void> r = co_await submit(std::move(op), st);
  FUZZ_CHECK(r.has_value() || is_err(r.error(), ECANCELED), "sleep: %s",
             r.error().message().c_str());
}

uint64_t file_offset(uint8_t x, uint8_t y) {
  return (uint64_t{x} * 257u + y * 13u) % (kFileSize + 1024);
}
std::size_t io_size(uint8_t y) { return std::size_t{y} * 2 + 1; }

Task<void> do_file_write(Spec s, std::stop_token st) {
  const uint64_t off = file_offset(s.x, s.y);
  const std::size_t n = io_size(s.y);
  auto op = counted(Write<Buf>(g.file_fd, file_pattern(off, n), off));
  IoResult<Buf> r = (s.x & 1) ? co_await submit(std::move(op), st)
                              : co_await submit(std::move(op));
  FUZZ_CHECK(r.buf.size() == n, "write buffer came back with %zu bytes",
             r.buf.size());
  check_file_bytes(r.buf.data(), n, off, true);  // a write leaves it as it was
  if (r.res.has_value()) {
    FUZZ_CHECK(*r.res <= n, "write of %zu reported %u", n, *r.res);
  } else {
    FUZZ_CHECK(is_err(r.res.error(), ECANCELED), "write: %s",
               r.res.error().message().c_str());
  }
}

Task<void> do_file_read(Spec s, std::stop_token st) {
  const uint64_t off = file_offset(s.y, s.x);
  const std::size_t n = io_size(s.x);
  auto op = counted(Read<Buf>(g.file_fd, Buf(n, std::byte{0xEE}), off));
  IoResult<Buf> r = (s.y & 1) ? co_await submit(std::move(op), st)
                              : co_await submit(std::move(op));
  FUZZ_CHECK(r.buf.size() == n, "read buffer came back with %zu bytes",
             r.buf.size());
  if (r.res.has_value()) {
    const std::size_t got = *r.res;
    FUZZ_CHECK(got <= n, "read of %zu reported %zu", n, got);
    check_file_bytes(r.buf.data(), got, off, false);
    for (std::size_t i = got; i < n; ++i) {
      FUZZ_CHECK(r.buf.data()[i] == std::byte{0xEE},
                 "read of %zu bytes touched byte %zu", got, i);
    }
  } else {
    FUZZ_CHECK(is_err(r.res.error(), ECANCELED), "read: %s",
               r.res.error().message().c_str());
  }
}

Task<void> do_send(Spec s, std::stop_token st) {
  const int side = s.x & 1;
  const std::size_t n = s.y + 1u;
  auto op = counted(Send<Buf>(g.sock[side], Buf(n, sock_byte(1 - side))),
                    send_to(1 - side));
  IoResult<Buf> r = (s.x & 2) ? co_await submit(std::move(op), st)
                              : co_await submit(std::move(op));
  FUZZ_CHECK(r.buf.size() == n, "send buffer came back with %zu bytes",
             r.buf.size());
  if (r.res.has_value()) {
    FUZZ_CHECK(*r.res <= n, "send of %zu reported %u", n, *r.res);
  } else {
    FUZZ_CHECK(expected_socket_error(r.res.error()), "send: %s",
               r.res.error().message().c_str());
  }
}

void check_recv(const IoResult<Buf>& r, std::size_t n, int side) {
  FUZZ_CHECK(r.buf.size() == n, "recv buffer came back with %zu bytes",
             r.buf.size());
  if (r.res.has_value()) {
    FUZZ_CHECK(*r.res <= n, "recv of %zu reported %u", n, *r.res);
    check_recv_bytes(r.buf.data(), *r.res, side);
  } else {
    FUZZ_CHECK(expected_socket_error(r.res.error()), "recv: %s",
               r.res.error().message().c_str());
  }
}

Task<void> do_recv(Spec s, std::stop_token st) {
  const int side = s.x & 1;
  const std::size_t n = s.y + 1u;
  auto op = counted(Recv<Buf>(g.sock[side], Buf(n)), recv_at(side));
  IoResult<Buf> r = co_await submit(std::move(op), st);
  check_recv(r, n, side);
}

Task<void> do_recv_timeout(Spec s) {
  const int side = s.x & 1;
  const std::size_t n = s.y + 1u;
  auto op = counted(Recv<Buf>(g.sock[side], Buf(n)), recv_at(side));
  auto lt = counted(LinkTimeout(tiny(s.y)));
  auto aw = chain(std::move(op), std::move(lt));
  auto [r, fired] = co_await aw;
  (void)fired;
  check_recv(r, n, side);
}

Task<void> do_multishot(Spec s, std::stop_token st) {
  const int side = s.x & 1;
  Result<BufferRing> ring = BufferRing::create(
      1u << ((s.x >> 1) % 4), std::size_t{16} << ((s.x >> 3) % 4));
  FUZZ_CHECK(ring.has_value(), "BufferRing::create: %s",
             ring.error().message().c_str());
  const std::size_t bufsize = ring->buffer_size();
  CountedRecvMultishot op{RecvMultishot(g.sock[side], *ring), side};
  MultishotOptions opts;
  opts.rearm = (s.y & 1) == 0;
  auto stream = submit_multishot(std::move(op), opts, st);
  std::vector<ProvidedBuffer> held;
  const std::size_t hold = (s.y >> 1) % 4;
  const int limit = (s.y >> 3) % 8 + 1;
  int items = 0;
  bool ended_by_error = false;
  bool cancelled = false;
  for (;;) {
    std::optional<Result<ProvidedBuffer>> item = co_await stream.next();
    if (!item.has_value()) break;
    FUZZ_CHECK(!ended_by_error, "a multishot item after the error item");
    if (!item->has_value()) {
      const std::error_code e = item->error();
      // ENOBUFS ends the stream when it may not re-arm, or when the ring ran
      // dry while a cancellation was on its way (that stream does not
      // re-arm either).
      FUZZ_CHECK(expected_socket_error(e) ||
                     (is_err(e, ENOBUFS) &&
                      (!opts.rearm || cancelled || st.stop_requested())),
                 "multishot recv: %s (rearm %d, cancelled %d, stop %d)",
                 e.message().c_str(), opts.rearm, cancelled,
                 st.stop_requested());
      ended_by_error = true;
      continue;
    }
    ProvidedBuffer b = std::move(**item);
    FUZZ_CHECK(b.size() <= bufsize,
               "a provided buffer of %zu bytes from a "
               "ring of %zu-byte buffers",
               b.size(), bufsize);
    check_recv_bytes(b.data(), b.size(), side);
    if (held.size() < hold) {
      held.push_back(std::move(b));
    } else if (s.y & 0x40) {
      held.clear();  // gives them back: a parked stream re-arms
    }
    if (++items == limit) {
      if (s.y & 0x80) co_return;  // destroys the stream with items pending
      stream.cancel();
      cancelled = true;
    }
  }
  FUZZ_CHECK(stream.ended(), "the stream yielded nullopt before it ended");
}

Task<void> do_fs_file(Spec s) {
  if (this_shard::id() != 0 || !g.file.has_value()) {
    co_await do_file_read(s, std::stop_token());
    co_return;
  }
  fs::File& f = *g.file;
  const uint64_t off = file_offset(s.x, s.y);
  const std::size_t n = io_size(s.y);
  // ECANCELED: a Cancel::all() of another task.
  switch (s.x % 4) {
    case 0: {
      auto aw = f.write_at(file_pattern(off, n), off);
      fs::IoResult<Buf> r = co_await aw;
      FUZZ_CHECK(r.res.has_value() ? *r.res == n
                                   : is_err(r.res.error().code, ECANCELED),
                 "fs write_at: %s",
                 r.res.has_value() ? "short" : r.res.error().message().c_str());
      check_file_bytes(r.buf.data(), n, off, true);
      break;
    }
    case 1: {
      auto aw = f.read_at(Buf(n), off);
      fs::IoResult<Buf> r = co_await aw;
      FUZZ_CHECK(r.res.has_value() || is_err(r.res.error().code, ECANCELED),
                 "fs read_at: %s", r.res.error().message().c_str());
      if (r.res.has_value()) check_file_bytes(r.buf.data(), *r.res, off, false);
      break;
    }
    case 2: {
      fs::IoResult<Buf> r = co_await f.write_all_at(file_pattern(off, n), off);
      FUZZ_CHECK(r.res.has_value() ? *r.res == n
                                   : is_err(r.res.error().code, ECANCELED),
                 "fs write_all_at: %s",
                 r.res.has_value() ? "short" : r.res.error().message().c_str());
      break;
    }
    default: {
      fs::IoResult<Buf> r = co_await f.read_exact_at(Buf(n), off);
      if (r.res.has_value()) {
        FUZZ_CHECK(*r.res == n, "read_exact_at: %zu of %zu", *r.res, n);
        check_file_bytes(r.buf.data(), n, off, false);
      } else {
        // Past the end of the file.
        FUZZ_CHECK(
            (is_err(r.res.error().code, ENODATA) && off + n > kFileSize) ||
                is_err(r.res.error().code, ECANCELED),
            "read_exact_at at %llu: %s", static_cast<unsigned long long>(off),
            r.res.error().message().c_str());
      }
      break;
    }
  }
}

unsigned other_shard() { return 1 - this_shard::id(); }

Task<void> do_submit_value(Spec s) {
  const unsigned target = (s.y & 1) ? this_shard::id() : other_shard();
  auto fn = [x = s.x, target] {
    FUZZ_CHECK(this_shard::id() == target, "submit_to ran on shard %u, not %u",
               this_shard::id(), target);
    return int{x} * 3;
  };
  const int v = co_await submit_to(target, std::move(fn));
  FUZZ_CHECK(v == s.x * 3, "submit_to yielded %d", v);
}

Task<void> do_submit_task(Spec s) {
  const unsigned target = other_shard();
  Spec inner{bounded_kind(s.y), s.x, static_cast<uint8_t>(s.y * 7 + 1),
             static_cast<uint8_t>(s.depth + 1)};
  auto fn = [inner, x = s.x]() -> Task<int> {
    TaskGuard guard;
    co_await body(inner, std::stop_token());
    co_return int{x} + 1;
  };
  const int v = co_await submit_to(target, std::move(fn));
  FUZZ_CHECK(v == s.x + 1, "submit_to (task) yielded %d", v);
}

Task<void> do_submit_throw(Spec s) {
  const unsigned target = (s.y & 1) ? this_shard::id() : other_shard();
  auto fn = []() -> int { throw std::runtime_error("fuzz"); };
  bool caught = false;
  try {
    (void)co_await submit_to(target, std::move(fn));
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "fuzz";
  }
  FUZZ_CHECK(caught, "the exception did not come back from submit_to");
}

Task<void> do_post_burst(Spec s) {
  const int n = s.x % 8 + 1;
  for (int i = 0; i < n; ++i) {
    const unsigned target =
        ((s.y >> (i % 8)) & 1) ? this_shard::id() : other_shard();
    g.posts_sent.fetch_add(1);
    auto fn = [] { g.posts_run.fetch_add(1); };
    co_await post_to(target, std::move(fn));
  }
}

Task<void> do_blocking(Spec s) {
  auto fn = [x = s.x] {
    FUZZ_CHECK(this_shard::identity() == 0, "spawn_blocking ran on a shard");
    return int{x} ^ 0x55;
  };
  const int v = co_await spawn_blocking(std::move(fn));
  FUZZ_CHECK(v == (s.x ^ 0x55), "spawn_blocking yielded %d", v);
}

Task<void> do_batch_tuple(Spec s) {
  const uint64_t off = file_offset(s.x, s.y);
  const std::size_t n = io_size(s.y);
  auto a = counted(Nop{});
  auto b = counted(Timeout(tiny(s.x)));
  auto c = counted(Write<Buf>(g.file_fd, file_pattern(off, n), off));
  auto d = counted(Read<Buf>(g.file_fd, Buf(n), file_offset(s.y, s.x)));
  auto aw = batch(std::move(a), std::move(b), std::move(c), std::move(d));
  auto [ra, rb, rc, rd] = co_await aw;
  FUZZ_CHECK(ra.has_value(), "batched nop: %s", ra.error().message().c_str());
  FUZZ_CHECK(rb.has_value() || is_err(rb.error(), ECANCELED),
             "batched timeout: %s", rb.error().message().c_str());
  FUZZ_CHECK(rc.buf.size() == n &&
                 (rc.res.has_value() || is_err(rc.res.error(), ECANCELED)),
             "batched write");
  if (rd.res.has_value()) {
    check_file_bytes(rd.buf.data(), *rd.res, file_offset(s.y, s.x), false);
  }
}

Task<void> do_batch_span(Spec s) {
  const std::size_t n = s.x % 20 + 1;
  if (s.y & 1) {
    std::vector<Counted<Read<Buf>>> ops;
    std::vector<uint64_t> offs;
    for (std::size_t i = 0; i < n; ++i) {
      offs.push_back(file_offset(static_cast<uint8_t>(s.x + i), s.y));
      ops.push_back(
          counted(Read<Buf>(g.file_fd, Buf(io_size(s.y)), offs.back())));
    }
    auto aw = batch(std::span<Counted<Read<Buf>>>(ops));
    std::vector<IoResult<Buf>> rs = co_await aw;
    FUZZ_CHECK(rs.size() == n, "span batch yielded %zu of %zu", rs.size(), n);
    for (std::size_t i = 0; i < n; ++i) {
      FUZZ_CHECK(rs[i].buf.size() == io_size(s.y), "span batch buffer size");
      if (rs[i].res.has_value()) {
        check_file_bytes(rs[i].buf.data(), *rs[i].res, offs[i], false);
      } else {
        FUZZ_CHECK(is_err(rs[i].res.error(), ECANCELED), "span batch read: %s",
                   rs[i].res.error().message().c_str());
      }
    }
  } else {
    std::vector<Counted<Nop>> ops;
    for (std::size_t i = 0; i < n; ++i) ops.push_back(counted(Nop{}));
    auto aw = batch(std::span<Counted<Nop>>(ops));
    std::vector<Result<void>> rs = co_await aw;
    FUZZ_CHECK(rs.size() == n, "span batch of nops yielded %zu", rs.size());
    for (const Result<void>& r : rs) {
      FUZZ_CHECK(r.has_value(), "a batched nop: %s",
                 r.error().message().c_str());
    }
  }
}

Task<void> do_chain_write_read(Spec s) {
  const uint64_t off = file_offset(s.x, s.y) % (kFileSize - 512);
  const std::size_t n = io_size(s.y);
  auto w = counted(Write<Buf>(g.file_fd, file_pattern(off, n), off));
  auto r = counted(Read<Buf>(g.file_fd, Buf(n), off));
  auto aw = chain(std::move(w), std::move(r));
  auto [rw, rr] = co_await aw;
  if (rw.res.has_value() && *rw.res == n) {
    if (rr.res.has_value()) {
      FUZZ_CHECK(*rr.res == n, "linked read after a %zu-byte write read %u", n,
                 *rr.res);
      check_file_bytes(rr.buf.data(), n, off, true);
    } else {
      FUZZ_CHECK(is_err(rr.res.error(), ECANCELED), "linked read: %s",
                 rr.res.error().message().c_str());
    }
  } else {
    FUZZ_CHECK(!rw.res.has_value() && is_err(rw.res.error(), ECANCELED),
               "linked write: %s",
               rw.res.has_value() ? "short" : rw.res.error().message().c_str());
    FUZZ_CHECK(!rr.res.has_value() && is_err(rr.res.error(), ECANCELED),
               "the read after a failed write was not cancelled");
  }
}

Task<void> do_chain_fail_head(Spec s) {
  auto bad = counted(Read<Buf>(-1, Buf(8), 0));
  auto n1 = counted(Nop{});
  auto t = counted(Timeout(tiny(s.x)));
  auto aw = chain(std::move(bad), std::move(n1), std::move(t));
  auto [rb, rn, rt] = co_await aw;
  FUZZ_CHECK(
      !rb.res.has_value() &&
          (is_err(rb.res.error(), EBADF) || is_err(rb.res.error(), ECANCELED)),
      "a read of fd -1: %s",
      rb.res.has_value() ? "succeeded" : rb.res.error().message().c_str());
  FUZZ_CHECK(!rn.has_value() && is_err(rn.error(), ECANCELED),
             "a nop linked after a failed op: %s",
             rn.has_value() ? "succeeded" : rn.error().message().c_str());
  FUZZ_CHECK(!rt.has_value() && is_err(rt.error(), ECANCELED),
             "a timeout linked after a failed op: %s",
             rt.has_value() ? "succeeded" : rt.error().message().c_str());
}

Task<void> do_chain_span(Spec s) {
  const std::size_t n = s.x % 12 + 1;
  std::vector<Counted<Nop>> ops;
  for (std::size_t i = 0; i < n; ++i) ops.push_back(counted(Nop{}));
  bool threw = false;
  try {
    auto aw = chain(std::span<Counted<Nop>>(ops));
    std::vector<Result<void>> rs = co_await aw;
    FUZZ_CHECK(rs.size() == n, "chain of nops yielded %zu", rs.size());
    for (const Result<void>& r : rs) {
      FUZZ_CHECK(r.has_value(), "a chained nop: %s",
                 r.error().message().c_str());
    }
  } catch (const std::length_error&) {
    threw = true;
  }
  FUZZ_CHECK(threw == (n > kRingEntries),
             "a chain of %zu ops with %u SQ entries %s", n, kRingEntries,
             threw ? "threw" : "did not throw");
  // Records of a chain that threw were never started: no completion is due.
  if (threw) g.ops_submitted.fetch_sub(n);
}

Task<void> do_stopped_token(Spec s) {
  std::stop_source src;
  src.request_stop();
  if (s.y & 1) {
    Result<BufferRing> ring = BufferRing::create(2, 64);
    FUZZ_CHECK(ring.has_value(), "BufferRing::create");
    const int side = s.x & 1;
    CountedRecvMultishot op{RecvMultishot(g.sock[side], *ring), side};
    auto stream = submit_multishot(std::move(op), {}, src.get_token());
    auto first = co_await stream.next();
    FUZZ_CHECK(first.has_value() && !first->has_value() &&
                   is_err(first->error(), ECANCELED),
               "a multishot stream with a stopped token did not yield one "
               "ECANCELED item");
    auto second = co_await stream.next();
    FUZZ_CHECK(!second.has_value(), "a second item after a stopped token");
    co_return;
  }
  auto op = counted(Nop{});
  Result<void> r = co_await submit(std::move(op), src.get_token());
  FUZZ_CHECK(!r.has_value() && is_err(r.error(), ECANCELED),
             "a nop with a stopped token: %s",
             r.has_value() ? "succeeded" : r.error().message().c_str());
}

Task<void> do_yield(Spec s) {
  const int n = s.x % 8 + 1;
  for (int i = 0; i < n; ++i) co_await this_shard::yield();
}

Task<void> do_cancel(Spec s) {
  if (s.y & 1) {
    auto op = counted(Cancel::all());
    Result<uint32_t> r = co_await submit(std::move(op));
    FUZZ_CHECK(r.has_value() || is_err(r.error(), ENOENT) ||
                   is_err(r.error(), EALREADY) || is_err(r.error(), EINVAL),
               "Cancel::all: %s", r.error().message().c_str());
  } else {
    auto op = counted(Cancel::fd(g.sock[s.x & 1]));
    Result<uint32_t> r = co_await submit(std::move(op));
    FUZZ_CHECK(r.has_value() || is_err(r.error(), ENOENT) ||
                   is_err(r.error(), EALREADY) || is_err(r.error(), EINVAL),
               "Cancel::fd: %s", r.error().message().c_str());
  }
}

Task<void> do_shutdown_side(Spec s) {
  auto op = counted(Shutdown(g.sock[s.x & 1], SHUT_WR));
  Result<void> r = co_await submit(std::move(op));
  FUZZ_CHECK(r.has_value() || is_err(r.error(), ECANCELED), "shutdown: %s",
             r.error().message().c_str());
}

Task<void> do_nested(Spec s, std::stop_token st) {
  Spec inner{bounded_kind(s.x), s.y, static_cast<uint8_t>(s.x ^ s.y),
             static_cast<uint8_t>(s.depth + 1)};
  JoinHandle<void> h = spawn(body(inner, st));
  if (s.y & 1) co_await this_shard::yield();
  co_await h;
}

Task<void> body(Spec s, std::stop_token st) {
  TaskGuard guard;
  uint8_t kind = s.kind % kNumBodyKinds;
  // Nesting stays shallow.
  if (s.depth >= 2 && (kind == kSubmitTask || kind == kNested)) kind = kNops;
  switch (kind) {
    case kNops:
      co_await do_nops(s, st);
      break;
    case kSleep:
      co_await do_sleep(s, st);
      break;
    case kFileWrite:
      co_await do_file_write(s, st);
      break;
    case kFileRead:
      co_await do_file_read(s, st);
      break;
    case kSend:
      co_await do_send(s, st);
      break;
    case kRecv:
      co_await do_recv(s, st);
      break;
    case kRecvTimeout:
      co_await do_recv_timeout(s);
      break;
    case kMultishot:
      co_await do_multishot(s, st);
      break;
    case kFsFile:
      co_await do_fs_file(s);
      break;
    case kSubmitValue:
      co_await do_submit_value(s);
      break;
    case kSubmitTask:
      co_await do_submit_task(s);
      break;
    case kSubmitThrow:
      co_await do_submit_throw(s);
      break;
    case kPostBurst:
      co_await do_post_burst(s);
      break;
    case kBlocking:
      co_await do_blocking(s);
      break;
    case kBatchTuple:
      co_await do_batch_tuple(s);
      break;
    case kBatchSpan:
      co_await do_batch_span(s);
      break;
    case kChainWriteRead:
      co_await do_chain_write_read(s);
      break;
    case kChainFailHead:
      co_await do_chain_fail_head(s);
      break;
    case kChainSpan:
      co_await do_chain_span(s);
      break;
    case kStoppedToken:
      co_await do_stopped_token(s);
      break;
    case kYield:
      co_await do_yield(s);
      break;
    case kCancelOp:
      co_await do_cancel(s);
      break;
    case kShutdownSide:
      co_await do_shutdown_side(s);
      break;
    case kNested:
      co_await do_nested(s, st);
      break;
    default:
      break;
  }
}

Eager eager_body(Spec s, std::stop_token st) { co_await body(s, st); }

// ---------------------------------------------------------------------------
// The program.

struct Step {
  uint8_t op, a, b, c;
};

struct Program {
  uint8_t config = 0;  // bit 0: register the fs::File in the fixed table
  std::vector<Step> steps;
};

Program decode(const uint8_t* data, std::size_t size) {
  Program p;
  if (size == 0) return p;
  p.config = data[0];
  ++data;
  --size;
  for (std::size_t i = 0; i + 4 <= size && p.steps.size() < kMaxSteps; i += 4) {
    p.steps.push_back(Step{data[i], data[i + 1], data[i + 2], data[i + 3]});
  }
  return p;
}

enum StepKind : uint8_t {
  kInline,      // run a (bounded) body in the program itself
  kSpawn,       // spawn a body on shard 0 into a slot
  kEagerStart,  // start an eager body owned by the program (drops the old)
  kSpawnOn,     // spawn_on(1, body) into a slot
  kJoin,        // (stop and) join a slot's task
  kDetach,      // detach a slot's task
  kDrop,        // destroy a slot's eager frame, wherever it is
  kStop,        // request_stop on a slot's source, from somewhere
  kYieldStep,
  kSleepStep,
  kSendStep,
  kRuntimeStop,  // Runtime::stop() from the fuzzer thread, ops in flight
  kSpawnTwice,   // two tasks into a slot and the next, same body
  kNumStepKinds
};

// How the program and the fuzzer thread meet.
struct Control {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  bool stop_runtime = false;
  void signal(bool Control::*flag) {
    {
      std::lock_guard<std::mutex> lock(mu);
      this->*flag = true;
    }
    cv.notify_all();
  }
};

struct Slot {
  std::optional<JoinHandle<void>> handle;
  bool handle_unbounded = false;
  std::stop_source* handle_src = nullptr;  // the handle's task's token
  Eager eager;
  std::stop_source* eager_src = nullptr;
};

std::stop_source* new_source() { return &g.sources.emplace_back(); }

// Destroys an eager frame now, mid-op or not.
void drop_eager(Slot& slot) { slot.eager.destroy(); }

Task<uint64_t> shard1_in_flight() {
  auto fn = [] { return this_shard::counters().ops_in_flight; };
  co_return co_await submit_to(1, std::move(fn));
}

Task<void> stop_from(std::stop_source* src, uint8_t how) {
  switch (how % 4) {
    case 0:
      src->request_stop();
      break;
    case 1: {  // from the other shard, awaited
      auto fn = [src] { src->request_stop(); };
      co_await submit_to(1, std::move(fn));
      break;
    }
    case 2: {  // from a blocking-pool thread (not a shard), awaited
      auto fn = [src] { src->request_stop(); };
      co_await spawn_blocking(std::move(fn));
      break;
    }
    default: {  // later, by a message to shard 1
      auto fn = [src] { src->request_stop(); };
      co_await post_to(1, std::move(fn));
      break;
    }
  }
}

Task<void> run_program(const Program* p, Control* ctl) {
  // Wakes the fuzzer thread however the program ends (done.get() then
  // rethrows what it threw; after a runtime stop nobody waits any more).
  struct Finish {
    Control* ctl;
    ~Finish() { ctl->signal(&Control::finished); }
  } finish{ctl};

  g.file.emplace(fs::File::from_raw_fd(::dup(g.file_fd), "runtime_fuzzer.tmp"));
  if (p->config & 1) {
    auto r = g.file->register_fixed();
    FUZZ_CHECK(r.has_value(), "register_fixed: %s",
               r.error().message().c_str());
  }

  Slot slots[kSlots];
  bool stopping_runtime = false;
  for (const Step& st : p->steps) {
    Slot& slot = slots[(st.op >> 4) % kSlots];
    const Spec spec{st.a, st.b, st.c};
    switch ((st.op & 0x0f) % kNumStepKinds) {
      case kInline: {
        Spec s = spec;
        s.kind = bounded_kind(s.kind);
        co_await body(s, std::stop_token());
        break;
      }
      case kSpawn:
      case kSpawnTwice: {
        const int n = (st.op & 0x0f) == kSpawnTwice ? 2 : 1;
        for (int i = 0; i < n; ++i) {
          Slot& s = slots[((st.op >> 4) + i) % kSlots];
          s.handle_src = new_source();
          s.handle = spawn(body(spec, s.handle_src->get_token()));
          s.handle_unbounded = unbounded(spec.kind % kNumBodyKinds);
        }
        break;
      }
      case kEagerStart:
        drop_eager(slot);  // the old one, mid-op or not
        slot.eager_src = new_source();
        slot.eager = eager_body(spec, slot.eager_src->get_token());
        break;
      case kSpawnOn: {
        slot.handle_src = new_source();
        // Counted as a live task from now on: the message may wait in a
        // queue while nothing else runs (the handle may be detached).
        auto fn = [spec, tok = slot.handle_src->get_token(),
                   pending = std::make_shared<TaskGuard>()] {
          return body(spec, tok);
        };
        slot.handle = spawn_on(1, std::move(fn));
        slot.handle_unbounded = unbounded(spec.kind % kNumBodyKinds);
        break;
      }
      case kJoin: {
        if (!slot.handle.has_value()) break;
        JoinHandle<void> h = std::move(*slot.handle);
        slot.handle.reset();
        if (!h.is_finished() && (slot.handle_unbounded || (st.a & 1)) &&
            slot.handle_src != nullptr) {
          co_await stop_from(slot.handle_src, st.b);
        }
        if (st.a & 2) co_await this_shard::yield();
        co_await h;
        break;
      }
      case kDetach:
        if (slot.handle.has_value()) slot.handle->detach();
        slot.handle.reset();
        break;
      case kDrop:
        drop_eager(slot);
        break;
      case kStop: {
        std::stop_source* src = (st.a & 4) ? slot.eager_src : slot.handle_src;
        if (src != nullptr) co_await stop_from(src, st.a);
        break;
      }
      case kYieldStep: {
        const int n = st.a % 4 + 1;
        for (int i = 0; i < n; ++i) co_await this_shard::yield();
        break;
      }
      case kSleepStep: {
        auto op = counted(Timeout(tiny(st.a)));
        Result<void> r = co_await submit(std::move(op));
        FUZZ_CHECK(r.has_value() || is_err(r.error(), ECANCELED), "sleep: %s",
                   r.error().message().c_str());
        break;
      }
      case kSendStep:
        co_await do_send(spec, std::stop_token());
        break;
      case kRuntimeStop:
        if (!stopping_runtime) {
          stopping_runtime = true;
          ctl->signal(&Control::stop_runtime);
        }
        break;
      default:
        break;
    }
  }

  if (stopping_runtime) {
    // Wait to be destroyed by the shutdown, with an op in flight. (A task's
    // Cancel::all() may cancel the timer first: wait again.)
    for (;;) {
      auto op = counted(Timeout(std::chrono::seconds(3600)));
      Result<void> r = co_await submit(std::move(op));
      FUZZ_CHECK(!r.has_value() && is_err(r.error(), ECANCELED),
                 "a one-hour timeout completed during shutdown: %s",
                 r.has_value() ? "expired" : r.error().message().c_str());
    }
  }

  // Clean up: stop everything, drop the eager frames, join every task.
  for (std::stop_source& s : g.sources) s.request_stop();
  for (Slot& s : slots) s.eager.destroy();
  for (Slot& s : slots) {
    if (!s.handle.has_value()) continue;
    JoinHandle<void> h = std::move(*s.handle);
    s.handle.reset();
    co_await h;
  }
  // Wait until detached tasks, orphaned ops and posted messages are done.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    const uint64_t here = this_shard::counters().ops_in_flight;
    const uint64_t there = co_await shard1_in_flight();
    const int64_t tasks = g.live_tasks.load();
    const uint64_t sent = g.posts_sent.load(), run = g.posts_run.load();
    if (here == 0 && there == 0 && tasks == 0 && sent == run) break;
    FUZZ_CHECK(std::chrono::steady_clock::now() < deadline,
               "not quiet 5 s after the program ended: ops in flight %llu + "
               "%llu, live tasks %lld, posts %llu sent %llu run",
               static_cast<unsigned long long>(here),
               static_cast<unsigned long long>(there),
               static_cast<long long>(tasks),
               static_cast<unsigned long long>(sent),
               static_cast<unsigned long long>(run));
    co_await this_shard::yield();
  }
  Result<void, fs::Error> closed = co_await g.file->close();
  FUZZ_CHECK(closed.has_value(), "fs::File::close: %s",
             closed.error().message().c_str());
  g.file.reset();
}

// ---------------------------------------------------------------------------
// The fuzzer thread's side.

std::unique_ptr<Runtime> g_rt;
std::atomic<int64_t> g_deadline_ns{0};
int g_hang_seconds = 10;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void watchdog() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t d = g_deadline_ns.load();
    if (d != 0 && now_ns() > d) {
      std::fprintf(stderr,
                   "runtime_fuzzer: HANG: an input ran for more than %d s "
                   "(live tasks %lld, ops submitted %llu, completed %llu)\n",
                   g_hang_seconds, static_cast<long long>(g.live_tasks.load()),
                   static_cast<unsigned long long>(g.ops_submitted.load()),
                   static_cast<unsigned long long>(g.ops_completed.load()));
      std::fflush(stderr);
      std::abort();
    }
  }
}

std::unique_ptr<Runtime> make_runtime() {
  RuntimeOptions o;
  o.shards = kShards;
  o.ring_entries = kRingEntries;
  o.message_queue_capacity = 2;
  o.blocking_threads = 1;
  return std::make_unique<Runtime>(o);
}

int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

// Reads what is left in a socket without blocking.
uint64_t drain(int fd, int side) {
  uint64_t total = 0;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) break;
    check_recv_bytes(reinterpret_cast<const std::byte*>(buf),
                     static_cast<std::size_t>(n), side);
    total += static_cast<uint64_t>(n);
  }
  return total;
}

// `c`: the shards' counters at the end of the input (after a stop, the
// runtime is gone by now).
void check_after(bool stopped, const ShardCounters* c) {
  FUZZ_CHECK(g.live_tasks.load() == 0, "%lld task frames outlived the input%s",
             static_cast<long long>(g.live_tasks.load()),
             stopped ? " (the runtime was stopped)" : "");
  FUZZ_CHECK(g.live_bufs.load() == 0, "%lld buffers outlived the input%s",
             static_cast<long long>(g.live_bufs.load()),
             stopped ? " (the runtime was stopped)" : "");
  FUZZ_CHECK(g.ops_submitted.load() == g.ops_completed.load(),
             "%llu ops submitted, %llu completed%s",
             static_cast<unsigned long long>(g.ops_submitted.load()),
             static_cast<unsigned long long>(g.ops_completed.load()),
             stopped ? " (the runtime was stopped)" : "");
  for (unsigned i = 0; i < kShards; ++i) {
    const uint64_t n = c[i].ops_in_flight;
    FUZZ_CHECK(n == 0, "shard %u has %llu ops in flight after the input", i,
               static_cast<unsigned long long>(n));
  }
  if (!stopped) {
    FUZZ_CHECK(g.posts_sent.load() == g.posts_run.load(),
               "%llu messages posted, %llu ran",
               static_cast<unsigned long long>(g.posts_sent.load()),
               static_cast<unsigned long long>(g.posts_run.load()));
  }
  for (int side = 0; side < 2; ++side) {
    const uint64_t left = drain(g.sock[side], side);
    const uint64_t sent = g.sent_to[side].load();
    const uint64_t got = g.recvd_at[side].load();
    FUZZ_CHECK(sent == got + left,
               "side %d: %llu bytes sent to it, %llu received, %llu left in "
               "the socket",
               side, static_cast<unsigned long long>(sent),
               static_cast<unsigned long long>(got),
               static_cast<unsigned long long>(left));
  }
}

// RUNTIME_FUZZER_STATS=1: totals of some shard counters over the run,
// printed at exit (to see what the inputs reach).
struct Totals {
  uint64_t inputs = 0, runtime_stops = 0, ops_orphaned = 0, sq_full_flushes = 0,
           outbox_waits = 0, doorbells_sent = 0, multishot_rearms = 0,
           messages_sent = 0, sqes_submitted = 0;
  ShardCounters last[kShards];
} g_totals;

void add_totals() {
  for (unsigned i = 0; i < kShards; ++i) {
    const ShardCounters c = g_rt->counters(i);
    ShardCounters& l = g_totals.last[i];
    g_totals.ops_orphaned += c.ops_orphaned - l.ops_orphaned;
    g_totals.sq_full_flushes += c.sq_full_flushes - l.sq_full_flushes;
    g_totals.outbox_waits += c.outbox_waits - l.outbox_waits;
    g_totals.doorbells_sent += c.doorbells_sent - l.doorbells_sent;
    g_totals.multishot_rearms += c.multishot_rearms - l.multishot_rearms;
    g_totals.messages_sent += c.messages_sent - l.messages_sent;
    g_totals.sqes_submitted += c.sqes_submitted - l.sqes_submitted;
    l = c;
  }
}

void print_totals() {
  std::fprintf(stderr,
               "runtime_fuzzer totals: %llu inputs, %llu runtime stops, "
               "%llu SQEs, %llu ops orphaned, %llu SQ-full flushes, %llu "
               "outbox waits, %llu doorbells, %llu multishot re-arms, %llu "
               "messages\n",
               static_cast<unsigned long long>(g_totals.inputs),
               static_cast<unsigned long long>(g_totals.runtime_stops),
               static_cast<unsigned long long>(g_totals.sqes_submitted),
               static_cast<unsigned long long>(g_totals.ops_orphaned),
               static_cast<unsigned long long>(g_totals.sq_full_flushes),
               static_cast<unsigned long long>(g_totals.outbox_waits),
               static_cast<unsigned long long>(g_totals.doorbells_sent),
               static_cast<unsigned long long>(g_totals.multishot_rearms),
               static_cast<unsigned long long>(g_totals.messages_sent));
}

void reset_env() {
  g.live_tasks = 0;
  g.live_bufs = 0;
  g.ops_submitted = 0;
  g.ops_completed = 0;
  for (int i = 0; i < 2; ++i) {
    g.sent_to[i] = 0;
    g.recvd_at[i] = 0;
  }
  g.posts_sent = 0;
  g.posts_run = 0;
  g.sources.clear();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* s = std::getenv("RUNTIME_FUZZER_HANG_SECONDS")) {
    g_hang_seconds = std::max(1, std::atoi(s));
  }
  char path[] = "/tmp/shardio-runtime-fuzzer-XXXXXX";
  g.file_fd = ::mkstemp(path);
  if (g.file_fd < 0) {
    std::perror("runtime_fuzzer: mkstemp");
    std::abort();
  }
  ::unlink(path);
  std::thread(watchdog).detach();
  if (const char* v = std::getenv("RUNTIME_FUZZER_STATS");
      v && *v && *v != '0') {
    std::atexit(print_totals);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const Program prog = decode(data, size);
  if (!g_rt) g_rt = make_runtime();
  const int fds_before = count_fds();

  reset_env();
  g.salt = prog.config;
  FUZZ_CHECK(::ftruncate(g.file_fd, 0) == 0 &&
                 ::ftruncate(g.file_fd, static_cast<off_t>(kFileSize)) == 0,
             "ftruncate: %s", std::strerror(errno));
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g.sock) == 0,
             "socketpair: %s", std::strerror(errno));

  g_deadline_ns = now_ns() + int64_t{g_hang_seconds} * 1000000000;
  Control ctl;
  auto fn = [p = &prog, c = &ctl] { return run_program(p, c); };
  std::future<void> done = g_rt->submit(0, std::move(fn));
  bool stop_runtime;
  {
    std::unique_lock<std::mutex> lock(ctl.mu);
    ctl.cv.wait(lock, [&] { return ctl.finished || ctl.stop_runtime; });
    stop_runtime = ctl.stop_runtime;
  }
  if (stop_runtime) {
    g_rt->stop();
    g.file.reset();  // off-shard now: close(2)
    // What stop() left: Runtime::stop() promises that suspended tasks and
    // undelivered messages are destroyed by the time it returns.
    FUZZ_CHECK(g.live_tasks.load() == 0,
               "%lld task frames or spawn_on closures are still alive after "
               "Runtime::stop() returned (a message stranded in a shard's "
               "queue, destroyed only by ~Runtime)",
               static_cast<long long>(g.live_tasks.load()));
    ShardCounters c[kShards];
    for (unsigned i = 0; i < kShards; ++i) c[i] = g_rt->counters(i);
    add_totals();
    ++g_totals.runtime_stops;
    g_totals.last[0] = g_totals.last[1] = ShardCounters{};
    g_rt.reset();
    check_after(true, c);
    g_rt = make_runtime();
  } else {
    done.get();  // rethrows what the program threw
    ShardCounters c[kShards];
    for (unsigned i = 0; i < kShards; ++i) c[i] = g_rt->counters(i);
    check_after(false, c);
    add_totals();
  }
  ++g_totals.inputs;
  ::close(g.sock[0]);
  ::close(g.sock[1]);
  g.sock[0] = g.sock[1] = -1;
  const int fds_after = count_fds();
  FUZZ_CHECK(fds_after == fds_before, "%d fds before the input, %d after",
             fds_before, fds_after);
  g_deadline_ns = 0;
  return 0;
}
