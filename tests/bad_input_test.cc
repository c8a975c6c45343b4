// Bad input to every public op and type: invalid descriptors (-1, a closed
// fd, a huge fd number, a pipe where a socket is expected, a directory where
// a file is expected), absurd lengths and offsets, empty buffers, and flags
// the kernel does not know. Each row of the table runs on a fresh one-shard
// runtime and asserts that the call yields a clear error: the specific errno
// where the kernel (or shardio) defines one — the comment on each row says
// why — otherwise an error with a non-empty message; a few rows pin down
// input that is absurd but legal (a zero-length read is 0 bytes, a length
// above kMaxIoChunk is a short transfer). After each row the shard must have
// no op in flight, the process the same open descriptors as before, and
// (under ASan) no leaked memory. Nothing here may crash or hang: a watchdog
// aborts a row that does not finish.
//
// Rows run serially; each makes its own descriptors (Env), so a row cannot
// disturb another. Cases that need more than a row (several calls, a child
// process, a setup of their own) live in the BadInputEdgeTest suite at the
// end.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <limits>
#include <optional>
#include <ostream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shardio/batch.h"
#include "shardio/buffer.h"
#include "shardio/buffer_pool.h"
#include "shardio/buffer_ring.h"
#include "shardio/fs.h"
#include "shardio/multishot.h"
#include "shardio/net.h"
#include "shardio/net/address.h"
#include "shardio/operation.h"
#include "shardio/ops/cancel.h"
#include "shardio/ops/file.h"
#include "shardio/ops/net.h"
#include "shardio/ops/nop.h"
#include "shardio/ops/path.h"
#include "shardio/ops/splice.h"
#include "shardio/ops/timeout.h"
#include "shardio/owned_fd.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHARDIO_TEST_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SHARDIO_TEST_LSAN 1
#endif
#ifdef SHARDIO_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace shardio {
namespace {

using test::Watchdog;

using namespace std::chrono_literals;
using std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Scaffolding.

uint64_t in_flight() { return this_shard::counters().ops_in_flight; }

// Yields until pred() holds or 20 s have passed; returns pred().
template <class Pred>
Task<bool> eventually(const Pred& pred) {
  const auto deadline = steady_clock::now() + 20s;
  while (!pred()) {
    if (steady_clock::now() >= deadline) co_return pred();
    co_await this_shard::yield();
  }
  co_return true;
}

std::string errno_name(int err) {
  return std::to_string(err) + " (" + std::strerror(err) + ")";
}

// The error of each kind of Result, and its text.
std::error_code code_of(const std::error_code& e) { return e; }
std::string text_of(const std::error_code& e) { return e.message(); }
std::error_code code_of(const fs::Error& e) { return e.code; }
std::string text_of(const fs::Error& e) { return e.message(); }
std::error_code code_of(const net::Error& e) { return e.code; }
std::string text_of(const net::Error& e) { return e.message(); }

// Expects `r` to be the error `err` with a message that says something.
template <class R>
void expect_errno(const R& r, int err, const char* what, int line) {
  SCOPED_TRACE(testing::Message() << "line " << line << ": " << what);
  EXPECT_FALSE(r.has_value())
      << "succeeded; expected error " << errno_name(err);
  if (r.has_value()) return;
  EXPECT_EQ(code_of(r.error()).value(), err)
      << "got " << errno_name(code_of(r.error()).value()) << " \""
      << text_of(r.error()) << "\"";
  EXPECT_EQ(code_of(r.error()).category(), std::system_category());
  EXPECT_FALSE(text_of(r.error()).empty());
}
// Expects `r` to be an error, whichever, with a message.
template <class R>
void expect_error(const R& r, const char* what, int line) {
  SCOPED_TRACE(testing::Message() << "line " << line << ": " << what);
  EXPECT_FALSE(r.has_value()) << "succeeded; expected an error";
  if (r.has_value()) return;
  EXPECT_NE(code_of(r.error()).value(), 0);
  EXPECT_FALSE(text_of(r.error()).empty());
}
#define EXPECT_ERRNO(r, err) expect_errno((r), (err), #r, __LINE__)
#define EXPECT_AN_ERROR(r) expect_error((r), #r, __LINE__)

// What every row gets: descriptors of each kind, made before the runtime
// (so that the row's own descriptors can be counted) and closed after it.
struct Env {
  // An fd number that was open and has been closed (high, so that nothing
  // the process opens meanwhile reuses it), and one far beyond any table.
  static constexpr int kClosedFd = 1000;
  static constexpr int kHugeFd = 1 << 30;
  static constexpr std::string_view kContent = "0123456789abcdef";

  std::string dir;      // a temporary directory of this row's own
  std::string file;     // dir/file: kContent
  std::string subdir;   // dir/sub: an empty directory
  std::string missing;  // dir/missing: does not exist
  int file_fd = -1;     // file, O_RDWR
  int ro_fd = -1;       // file, O_RDONLY
  int dir_fd = -1;      // dir, O_RDONLY | O_DIRECTORY
  int pipe_r = -1;      // an empty pipe with both ends open: reads block
  int pipe_w = -1;
  int hup_r = -1;   // the read end of a pipe whose write end is closed
  int sock_a = -1;  // a connected AF_UNIX stream pair
  int sock_b = -1;
  int tcp = -1;  // an AF_INET stream socket, not bound or connected
  int udp = -1;  // an AF_INET datagram socket bound to 127.0.0.1:0
  // Set by a row that cannot run here (the test then skips with it).
  std::string skip;

  bool ok = false;

  Env() {
    // Short: Unix socket paths are made under it (Bazel's TMPDIR is deep).
    std::string tmpl = test::socket_temp_dir() + "bad_input_test_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return;
    dir = tmpl;
    file = dir + "/file";
    subdir = dir + "/sub";
    missing = dir + "/missing";
    if (::mkdir(subdir.c_str(), 0755) != 0) return;
    file_fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (file_fd < 0 || ::write(file_fd, kContent.data(), kContent.size()) !=
                           static_cast<ssize_t>(kContent.size())) {
      return;
    }
    ro_fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    pipe_r = p[0];
    pipe_w = p[1];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    hup_r = p[0];
    ::close(p[1]);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    sock_a = sv[0];
    sock_b = sv[1];
    tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const auto lo = net::SocketAddress::ipv4_loopback(0);
    if (udp < 0 || ::bind(udp, lo.get(), lo.size()) != 0) return;
    // A closed fd: open, move to kClosedFd, close.
    const int tmp = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (tmp < 0 || ::dup2(tmp, kClosedFd) != kClosedFd) return;
    ::close(tmp);
    ::close(kClosedFd);
    ok = ro_fd >= 0 && dir_fd >= 0 && tcp >= 0 &&
         ::fcntl(kClosedFd, F_GETFD) == -1 && errno == EBADF;
  }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env() {
    for (int fd : {file_fd, ro_fd, dir_fd, pipe_r, pipe_w, hup_r, sock_a,
                   sock_b, tcp, udp}) {
      if (fd >= 0) ::close(fd);
    }
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

// A 3 GiB mapping that is never touched by the rows that use it (written to
// /dev/null, or read into from a 16-byte file): a buffer longer than
// kMaxIoChunk that costs no memory.
class HugeMapping {
 public:
  static constexpr std::size_t kSize = std::size_t{3} << 30;
  HugeMapping() {
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) data_ = static_cast<std::byte*>(p);
  }
  HugeMapping(HugeMapping&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)) {}
  HugeMapping& operator=(HugeMapping&&) = delete;
  ~HugeMapping() {
    if (data_ != nullptr) ::munmap(data_, kSize);
  }
  std::byte* data() noexcept { return data_; }
  std::size_t size() const noexcept { return data_ != nullptr ? kSize : 0; }

 private:
  std::byte* data_ = nullptr;
};
static_assert(OwnedBuffer<HugeMapping>);

// A registered-buffer handle with real memory at a slot that does not exist.
struct UnregisteredSlotBuffer {
  void* data() noexcept { return storage.data(); }
  std::size_t size() const noexcept { return storage.size(); }
  unsigned slot() const noexcept { return 999; }
  std::array<char, 16> storage{};
};
static_assert(RegisteredBuffer<UnregisteredSlotBuffer>);

std::vector<std::byte> bytes(std::size_t n) {
  return std::vector<std::byte>(n);
}

// Every item of a multishot stream, at most `max` of them.
template <class Op>
Task<std::vector<typename MultishotStream<Op>::Item>> drain(
    MultishotStream<Op>& s, std::size_t max = 16) {
  std::vector<typename MultishotStream<Op>::Item> out;
  while (out.size() < max) {
    auto item = co_await s.next();
    if (!item) break;
    out.push_back(std::move(*item));
  }
  co_return out;
}

// Expects a stream whose only item is the error `err`, then its end.
template <class Op>
Task<void> expect_stream_error(MultishotStream<Op> s, int err, int line) {
  auto items = co_await drain(s);
  SCOPED_TRACE(testing::Message() << "line " << line);
  EXPECT_EQ(items.size(), 1u);
  if (items.empty()) co_return;
  expect_errno(items.back(), err, "the stream's last item", line);
  EXPECT_TRUE(s.ended());
}

// A connected TCP pair over loopback, made with the net API.
struct TcpPair {
  net::TcpStream client;
  net::TcpStream server;
  bool ok = false;
};
Task<TcpPair> tcp_pair() {
  TcpPair p;
  auto l = net::TcpListener::bind(net::SocketAddress::ipv4_loopback(0));
  EXPECT_TRUE(l) << l.error().message();
  if (!l) co_return p;
  auto addr = l->local_address();
  if (!addr) co_return p;
  auto c = co_await net::TcpStream::connect(*addr);
  EXPECT_TRUE(c) << c.error().message();
  if (!c) co_return p;
  auto s = co_await l->accept_one();
  EXPECT_TRUE(s) << s.error().message();
  if (!s) co_return p;
  p.client = std::move(*c);
  p.server = std::move(*s);
  p.ok = true;
  co_return p;
}

// ---------------------------------------------------------------------------
// The table.

struct Row {
  std::string name;
  std::function<Task<void>(Env&)> body;
};

void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

std::vector<Row> make_rows();

const std::vector<Row>& rows() {
  static const std::vector<Row> kRows = make_rows();
  return kRows;
}

#ifdef SHARDIO_TEST_LSAN
// Set once a leak check has failed: the leaked blocks stay unreachable, so
// every later check would report them again.
bool g_leak_seen = false;
#endif

class BadInputTest : public testing::TestWithParam<Row> {};

Task<void> run_row(const Row& row, Env& env) {
  co_await row.body(env);
  // What the row left behind settles: cancelled ops, and the closes of
  // Files destroyed on the shard, which run as tasks spawned by the
  // destructor. Those tasks are already in the ready queue (FIFO): after a
  // yield they have run and their Close ops are in flight, and then
  // in_flight() falls to 0 only when they are done.
  for (int i = 0; i < 3; ++i) co_await this_shard::yield();
  auto idle = [] { return in_flight() == 0; };
  const bool settled = co_await eventually(idle);
  EXPECT_TRUE(settled) << in_flight() << " ops still in flight after the row";
}

TEST_P(BadInputTest, YieldsAClearErrorWithoutCrashLeakOrHang) {
  Watchdog watchdog;
  Env env;
  ASSERT_TRUE(env.ok) << "setting up the descriptors failed: "
                      << std::strerror(errno);
  const auto fds_before = test::steady_open_fd_table();
  {
    Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = 64});
    rt.block_on(run_row(GetParam(), env));
    EXPECT_EQ(rt.counters(0).ops_in_flight, 0u);
  }
  EXPECT_EQ(test::fds_changed_since(fds_before), "")
      << "the row leaked (or closed) a descriptor";
#ifdef SHARDIO_TEST_LSAN
  if (!g_leak_seen && __lsan_do_recoverable_leak_check() != 0) {
    g_leak_seen = true;
    ADD_FAILURE() << "LeakSanitizer found memory leaked by this row (see "
                     "its report above); later rows are not checked";
  }
#endif
  if (!env.skip.empty()) GTEST_SKIP() << env.skip;
}

INSTANTIATE_TEST_SUITE_P(Rows, BadInputTest, testing::ValuesIn(rows()),
                         [](const testing::TestParamInfo<Row>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------
// The rows. Each lambda is captureless (GCC 12 destroys a capturing lambda
// inside a co_await twice) and binds every op to a variable before
// submitting it.

void add_file_op_rows(std::vector<Row>& r) {
  // --- Read / Write: descriptors -------------------------------------------
  // io_uring looks the fd up in the process's table when it issues the SQE
  // (io_file_get_normal); -1, a closed number and one beyond the table all
  // miss: EBADF.
  r.push_back({"Read_FdMinus1", [](Env&) -> Task<void> {
                 Read op(-1, bytes(16), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
                 EXPECT_EQ(res.buf.size(), 16u);  // the buffer comes back
               }});
  r.push_back({"Read_ClosedFd", [](Env&) -> Task<void> {
                 Read op(Env::kClosedFd, bytes(16), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  r.push_back({"Read_HugeFd", [](Env&) -> Task<void> {
                 Read op(Env::kHugeFd, bytes(16), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  // The fd is looked up even when there is nothing to move.
  r.push_back({"Read_EmptyBufferFromFdMinus1", [](Env&) -> Task<void> {
                 Read op(-1, std::vector<std::byte>(), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  // A directory has no read: the VFS's generic_read_dir says EISDIR.
  r.push_back({"Read_DirectoryFd", [](Env& e) -> Task<void> {
                 Read op(e.dir_fd, bytes(16), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EISDIR);
               }});
  // The write end of a pipe is not open for reading (FMODE_READ): EBADF.
  r.push_back({"Read_WriteEndOfPipe", [](Env& e) -> Task<void> {
                 Read op(e.pipe_w, bytes(16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  // An offset that is negative as a loff_t (but not -1, kCurrentPosition):
  // rw_verify_area refuses it on a regular file: EINVAL.
  r.push_back({"Read_OffsetNearUint64Max", [](Env& e) -> Task<void> {
                 Read op(e.file_fd, bytes(16), ~uint64_t{0} - 1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
               }});
  r.push_back({"Read_NegativeOffsetAsUnsigned", [](Env& e) -> Task<void> {
                 Read op(e.file_fd, bytes(16),
                         static_cast<uint64_t>(int64_t{-4096}));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
               }});
  // An offset far past the end of the file (pos + count still fits in a
  // loff_t): 0 bytes, the end of the file, not an error...
  r.push_back({"Read_OffsetFarPastTheEndIsZeroBytes", [](Env& e) -> Task<void> {
                 Read op(e.file_fd, bytes(16),
                         static_cast<uint64_t>(
                             std::numeric_limits<int64_t>::max() - 16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
               }});
  // ...but at INT64_MAX, pos + count overflows a loff_t: rw_verify_area
  // says EINVAL.
  r.push_back(
      {"Read_OffsetPlusLengthOverflows", [](Env& e) -> Task<void> {
         Read op(e.file_fd, bytes(16),
                 static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
         auto res = co_await submit(std::move(op));
         EXPECT_ERRNO(res.res, EINVAL);
       }});
  // Zero bytes asked, zero bytes read; the empty buffer comes back.
  r.push_back({"Read_EmptyBufferIsZeroBytes", [](Env& e) -> Task<void> {
                 Read op(e.file_fd, std::string(), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
                 EXPECT_TRUE(res.buf.empty());
               }});
  // A buffer longer than kMaxIoChunk is asked for in one op of kMaxIoChunk
  // bytes; the 16-byte file gives 16 (a short read, not an error).
  r.push_back(
      {"Read_LengthAboveMaxIoChunkIsAShortRead", [](Env& e) -> Task<void> {
         HugeMapping m;
         CO_ASSERT_TRUE(m.size() == HugeMapping::kSize);
         Read op(e.ro_fd, std::move(m), 0);
         auto res = co_await submit(std::move(op));
         EXPECT_TRUE(res.res) << res.res.error().message();
         EXPECT_EQ(res.res.value_or(0), Env::kContent.size());
         EXPECT_EQ(std::memcmp(res.buf.data(), Env::kContent.data(),
                               Env::kContent.size()),
                   0);
       }});
  r.push_back({"Write_FdMinus1", [](Env&) -> Task<void> {
                 Write op(-1, std::string("x"), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
                 EXPECT_EQ(res.buf, "x");
               }});
  r.push_back({"Write_ClosedFd", [](Env&) -> Task<void> {
                 Write op(Env::kClosedFd, std::string("x"), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  r.push_back({"Write_HugeFd", [](Env&) -> Task<void> {
                 Write op(Env::kHugeFd, std::string("x"), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  // Not open for writing (FMODE_WRITE), checked before anything else: EBADF.
  r.push_back({"Write_ReadOnlyFd", [](Env& e) -> Task<void> {
                 Write op(e.ro_fd, std::string("x"), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  r.push_back({"Write_DirectoryFd", [](Env& e) -> Task<void> {
                 Write op(e.dir_fd, std::string("x"), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  r.push_back({"Write_ReadEndOfPipe", [](Env& e) -> Task<void> {
                 Write op(e.pipe_r, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  // pos + count overflows a loff_t: rw_verify_area says EINVAL.
  r.push_back({"Write_OffsetPlusLengthOverflows", [](Env& e) -> Task<void> {
                 Write op(e.file_fd, std::string(16, 'x'),
                          static_cast<uint64_t>(
                              std::numeric_limits<int64_t>::max() - 8));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
               }});
  r.push_back({"Write_OffsetNearUint64Max", [](Env& e) -> Task<void> {
                 Write op(e.file_fd, std::string("x"), ~uint64_t{0} - 1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
               }});
  r.push_back({"Write_EmptyBufferIsZeroBytes", [](Env& e) -> Task<void> {
                 Write op(e.file_fd, std::string(), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
               }});
  // /dev/null takes whatever it is given without touching it: the op asks
  // for exactly kMaxIoChunk of the 3 GiB buffer.
  r.push_back({"Write_LengthAboveMaxIoChunkIsClamped", [](Env&) -> Task<void> {
                 HugeMapping m;
                 CO_ASSERT_TRUE(m.size() == HugeMapping::kSize);
                 OwnedFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
                 CO_ASSERT_TRUE(null.valid());
                 Write op(null.get(), std::move(m), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(0), kMaxIoChunk);
               }});

  // --- Readv / Writev -------------------------------------------------------
  // No iovecs: a transfer of nothing.
  r.push_back({"Readv_NoBuffersIsZeroBytes", [](Env& e) -> Task<void> {
                 Readv op(e.file_fd, std::vector<std::string>(), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
               }});
  // More than UIO_MAXIOV (1024) iovecs: import_iovec says EINVAL.
  r.push_back({"Readv_MoreThanUioMaxIovBuffers", [](Env& e) -> Task<void> {
                 std::vector<std::string> bufs(1025, std::string(1, '\0'));
                 Readv op(e.file_fd, std::move(bufs), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
                 EXPECT_EQ(res.buf.size(), 1025u);
               }});
  // RWF_* flags the kernel does not know: kiocb_set_rw_flags says
  // EOPNOTSUPP.
  r.push_back({"Readv_UnknownRwFlags", [](Env& e) -> Task<void> {
                 std::vector<std::string> bufs(1, std::string(4, '\0'));
                 Readv op(e.file_fd, std::move(bufs), 0, 0x7fffffff);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EOPNOTSUPP);
               }});
  r.push_back({"Readv_DirectoryFd", [](Env& e) -> Task<void> {
                 std::vector<std::string> bufs(1, std::string(4, '\0'));
                 Readv op(e.dir_fd, std::move(bufs), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EISDIR);
               }});
  r.push_back({"Writev_FdMinus1", [](Env&) -> Task<void> {
                 std::vector<std::string> bufs(2, std::string("ab"));
                 Writev op(-1, std::move(bufs), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
                 EXPECT_EQ(res.buf.size(), 2u);
               }});
  r.push_back({"Writev_OffsetNearUint64Max", [](Env& e) -> Task<void> {
                 std::vector<std::string> bufs(1, std::string("ab"));
                 Writev op(e.file_fd, std::move(bufs), ~uint64_t{0} - 1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
               }});

  // --- ReadFixed / WriteFixed ----------------------------------------------
  // A slot with no registered buffer behind it: the kernel finds no buffer
  // node for buf_index and says EFAULT.
  r.push_back({"ReadFixed_UnregisteredSlot", [](Env& e) -> Task<void> {
                 ReadFixed op(e.file_fd, UnregisteredSlotBuffer{}, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EFAULT);
               }});
  r.push_back({"WriteFixed_FdMinus1", [](Env&) -> Task<void> {
                 auto pool = BufferPool::create(1, 4096);
                 CO_ASSERT_TRUE(pool);
                 auto buf = pool->acquire();
                 CO_ASSERT_TRUE(buf);
                 WriteFixed op(-1, std::move(*buf), 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
                 EXPECT_TRUE(static_cast<bool>(res.buf));
                 EXPECT_EQ(pool->available(), 0u);  // the handle came back
               }});
  r.push_back({"ReadFixed_OffsetNearUint64Max", [](Env& e) -> Task<void> {
                 auto pool = BufferPool::create(1, 4096);
                 CO_ASSERT_TRUE(pool);
                 auto buf = pool->acquire();
                 CO_ASSERT_TRUE(buf);
                 ReadFixed op(e.file_fd, std::move(*buf), ~uint64_t{0} - 1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EINVAL);
               }});
  // len 0 of a registered buffer: nothing to read.
  r.push_back({"ReadFixed_ZeroLength", [](Env& e) -> Task<void> {
                 auto pool = BufferPool::create(1, 4096);
                 CO_ASSERT_TRUE(pool);
                 auto buf = pool->acquire();
                 CO_ASSERT_TRUE(buf);
                 ReadFixed op(e.file_fd, std::move(*buf), 0, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
               }});

  // --- OpenAt / Close ----------------------------------------------------
  // O_DIRECTORY on a regular file: path lookup says ENOTDIR.
  r.push_back({"OpenAt_DirectoryFlagOnAFile", [](Env& e) -> Task<void> {
                 OpenAt op(AT_FDCWD, e.file, O_RDONLY | O_DIRECTORY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTDIR);
               }});
  r.push_back({"OpenAt_MissingPath", [](Env& e) -> Task<void> {
                 OpenAt op(AT_FDCWD, e.missing, O_RDONLY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // An empty path names nothing (without O_PATH|AT_EMPTY_PATH): ENOENT.
  r.push_back({"OpenAt_EmptyPath", [](Env&) -> Task<void> {
                 OpenAt op(AT_FDCWD, "", O_RDONLY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // A path longer than PATH_MAX (4096): getname says ENAMETOOLONG; so does
  // a component longer than NAME_MAX (255).
  r.push_back({"OpenAt_PathLongerThanPathMax", [](Env& e) -> Task<void> {
                 OpenAt op(AT_FDCWD, e.dir + "/" + std::string(5000, 'a'),
                           O_RDONLY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENAMETOOLONG);
               }});
  r.push_back({"OpenAt_ComponentLongerThanNameMax", [](Env& e) -> Task<void> {
                 OpenAt op(AT_FDCWD, e.dir + "/" + std::string(300, 'a'),
                           O_RDONLY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENAMETOOLONG);
               }});
  // A relative path against a dirfd that is not open: EBADF; against a
  // regular file: ENOTDIR.
  r.push_back({"OpenAt_ClosedDirFd", [](Env&) -> Task<void> {
                 OpenAt op(Env::kClosedFd, "file", O_RDONLY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"OpenAt_FileAsDirFd", [](Env& e) -> Task<void> {
                 OpenAt op(e.ro_fd, "file", O_RDONLY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTDIR);
               }});
  // Every flag bit set: O_PATH among them, which the kernel keeps only with
  // O_DIRECTORY and O_NOFOLLOW, so the regular file is refused (ENOTDIR
  // on current kernels; which error depends on how the bits combine, so
  // only an error is required).
  r.push_back({"OpenAt_AllFlagBits", [](Env& e) -> Task<void> {
                 OpenAt op(AT_FDCWD, e.file, ~0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_AN_ERROR(res);
                 if (res) ::close(*res);
               }});
  // O_CREAT | O_DIRECTORY: EINVAL since Linux 6.4 (before, it could create
  // a regular file); on an existing file ENOTDIR on older kernels.
  r.push_back({"OpenAt_CreateWithDirectoryFlag", [](Env& e) -> Task<void> {
                 OpenAt op(AT_FDCWD, e.dir + "/new",
                           O_RDWR | O_CREAT | O_DIRECTORY);
                 auto res = co_await submit(std::move(op));
                 EXPECT_AN_ERROR(res);
                 if (res) ::close(*res);
               }});
  r.push_back({"Close_FdMinus1", [](Env&) -> Task<void> {
                 Close op(-1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"Close_ClosedFd", [](Env&) -> Task<void> {
                 Close op(Env::kClosedFd);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"Close_HugeFd", [](Env&) -> Task<void> {
                 Close op(Env::kHugeFd);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});

  // --- Fsync, SyncFileRange, Fallocate, Fadvise, Madvise ---------------------
  r.push_back({"Fsync_FdMinus1", [](Env&) -> Task<void> {
                 Fsync op(-1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // A pipe has no fsync method: vfs_fsync_range says EINVAL.
  r.push_back({"Fsync_Pipe", [](Env& e) -> Task<void> {
                 Fsync op(e.pipe_w, /*datasync=*/true);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // Flags outside SYNC_FILE_RANGE_{WAIT_BEFORE,WRITE,WAIT_AFTER}: EINVAL.
  r.push_back({"SyncFileRange_UnknownFlags", [](Env& e) -> Task<void> {
                 SyncFileRange op(e.file_fd, 0, 16, 0xff);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // Only files, block devices, directories and links: a pipe is ESPIPE.
  r.push_back({"SyncFileRange_Pipe", [](Env& e) -> Task<void> {
                 SyncFileRange op(e.pipe_w, 0, 16, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ESPIPE);
               }});
  // A negative offset: EINVAL.
  r.push_back({"SyncFileRange_NegativeOffset", [](Env& e) -> Task<void> {
                 SyncFileRange op(e.file_fd, ~uint64_t{0} - 1, 16, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // vfs_fallocate: a length of 0 is EINVAL, an unknown mode EOPNOTSUPP, an
  // fd not open for writing EBADF, offset + len past the file system's
  // limits (or overflowing) EFBIG, a pipe ESPIPE.
  r.push_back({"Fallocate_ZeroLength", [](Env& e) -> Task<void> {
                 Fallocate op(e.file_fd, 0, 0, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Fallocate_UnknownMode", [](Env& e) -> Task<void> {
                 Fallocate op(e.file_fd, 0x7fffffff, 0, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EOPNOTSUPP);
               }});
  r.push_back({"Fallocate_DirectoryFd", [](Env& e) -> Task<void> {
                 Fallocate op(e.dir_fd, 0, 0, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"Fallocate_OffsetPlusLengthOverflows", [](Env& e) -> Task<void> {
                 Fallocate op(e.file_fd, 0,
                              static_cast<uint64_t>(
                                  std::numeric_limits<int64_t>::max() - 8),
                              16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EFBIG);
               }});
  r.push_back({"Fallocate_NegativeOffset", [](Env& e) -> Task<void> {
                 Fallocate op(e.file_fd, 0, ~uint64_t{0} - 1, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Fallocate_Pipe", [](Env& e) -> Task<void> {
                 Fallocate op(e.pipe_w, 0, 0, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ESPIPE);
               }});
  // An advice posix_fadvise does not know: EINVAL; a pipe: ESPIPE.
  r.push_back({"Fadvise_UnknownAdvice", [](Env& e) -> Task<void> {
                 Fadvise op(e.file_fd, 0, 16, 12345);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Fadvise_Pipe", [](Env& e) -> Task<void> {
                 Fadvise op(e.pipe_r, 0, 16, POSIX_FADV_SEQUENTIAL);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ESPIPE);
               }});
  r.push_back({"Fadvise_HugeFd", [](Env&) -> Task<void> {
                 Fadvise op(Env::kHugeFd, 0, 16, POSIX_FADV_NORMAL);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // madvise(2) needs a page-aligned start: EINVAL; and a known advice:
  // EINVAL. A length of 0 is a no-op that succeeds.
  r.push_back({"Madvise_UnalignedAddress", [](Env&) -> Task<void> {
                 static char page[2 * 4096];
                 Madvise op(page + 1, 4096, MADV_NORMAL);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Madvise_UnknownAdvice", [](Env&) -> Task<void> {
                 void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                 CO_ASSERT_TRUE(p != MAP_FAILED);
                 Madvise op(p, 4096, 12345);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
                 ::munmap(p, 4096);
               }});
  r.push_back({"Madvise_ZeroLengthIsANoOp", [](Env&) -> Task<void> {
                 void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                 CO_ASSERT_TRUE(p != MAP_FAILED);
                 Madvise op(p, 0, MADV_DONTNEED);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res) << res.error().message();
                 ::munmap(p, 4096);
               }});
}

void add_path_op_rows(std::vector<Row>& r) {
  r.push_back({"Statx_MissingPath", [](Env& e) -> Task<void> {
                 Statx op(AT_FDCWD, e.missing);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // AT_* flags statx does not take: EINVAL (vfs_statx checks the mask of
  // valid flags first).
  r.push_back({"Statx_UnknownFlags", [](Env& e) -> Task<void> {
                 Statx op(AT_FDCWD, e.file, 0x7fff0000);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // STATX__RESERVED in the mask is refused: EINVAL.
  r.push_back({"Statx_ReservedMaskBit", [](Env& e) -> Task<void> {
                 Statx op(AT_FDCWD, e.file, 0, STATX__RESERVED);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // An empty path without AT_EMPTY_PATH names nothing: ENOENT.
  r.push_back({"Statx_EmptyPathWithoutAtEmptyPath", [](Env& e) -> Task<void> {
                 Statx op(e.ro_fd, "");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // AT_EMPTY_PATH on an fd that is not open: EBADF.
  r.push_back({"Statx_EmptyPathOnClosedFd", [](Env&) -> Task<void> {
                 Statx op(Env::kClosedFd, "", AT_EMPTY_PATH);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // A relative path against a pipe as the directory: ENOTDIR.
  r.push_back({"Statx_PipeAsDirFd", [](Env& e) -> Task<void> {
                 Statx op(e.pipe_r, "file");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTDIR);
               }});
  r.push_back({"UnlinkAt_MissingPath", [](Env& e) -> Task<void> {
                 UnlinkAt op(AT_FDCWD, e.missing);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // Anything but AT_REMOVEDIR: io_unlinkat_prep says EINVAL.
  r.push_back({"UnlinkAt_UnknownFlags", [](Env& e) -> Task<void> {
                 UnlinkAt op(AT_FDCWD, e.file, 0x1234);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
                 struct stat st {};
                 EXPECT_EQ(::stat(e.file.c_str(), &st), 0);  // still there
               }});
  // unlink(2) of a directory is EISDIR on Linux; rmdir of a file ENOTDIR;
  // rmdir of a directory with something in it ENOTEMPTY.
  r.push_back({"UnlinkAt_DirectoryWithoutRemoveDir", [](Env& e) -> Task<void> {
                 UnlinkAt op(AT_FDCWD, e.subdir);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EISDIR);
               }});
  r.push_back({"UnlinkAt_FileWithRemoveDir", [](Env& e) -> Task<void> {
                 UnlinkAt op(AT_FDCWD, e.file, AT_REMOVEDIR);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTDIR);
               }});
  r.push_back({"UnlinkAt_NonEmptyDirectory", [](Env& e) -> Task<void> {
                 UnlinkAt op(AT_FDCWD, e.dir, AT_REMOVEDIR);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTEMPTY);
               }});
  // renameat2 flags beyond RENAME_NOREPLACE|EXCHANGE|WHITEOUT: EINVAL.
  r.push_back({"RenameAt_UnknownFlags", [](Env& e) -> Task<void> {
                 RenameAt op(AT_FDCWD, e.file, AT_FDCWD, e.dir + "/x", 0xfff0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"RenameAt_MissingSource", [](Env& e) -> Task<void> {
                 RenameAt op(AT_FDCWD, e.missing, AT_FDCWD, e.dir + "/x");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  r.push_back({"RenameAt_NoReplaceOntoExisting", [](Env& e) -> Task<void> {
                 RenameAt op(AT_FDCWD, e.subdir, AT_FDCWD, e.file,
                             RENAME_NOREPLACE);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EEXIST);
               }});
  // A directory moved into itself: EINVAL.
  r.push_back({"RenameAt_DirectoryIntoItself", [](Env& e) -> Task<void> {
                 RenameAt op(AT_FDCWD, e.subdir, AT_FDCWD, e.subdir + "/in");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"MkdirAt_Existing", [](Env& e) -> Task<void> {
                 MkdirAt op(AT_FDCWD, e.subdir);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EEXIST);
               }});
  r.push_back({"MkdirAt_UnderARegularFile", [](Env& e) -> Task<void> {
                 MkdirAt op(AT_FDCWD, e.file + "/sub");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTDIR);
               }});
  r.push_back({"MkdirAt_EmptyPath", [](Env&) -> Task<void> {
                 MkdirAt op(AT_FDCWD, "");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // An empty symlink target is refused: ENOENT.
  r.push_back({"SymlinkAt_EmptyTarget", [](Env& e) -> Task<void> {
                 SymlinkAt op("", AT_FDCWD, e.dir + "/link");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  r.push_back({"SymlinkAt_LinkPathExists", [](Env& e) -> Task<void> {
                 SymlinkAt op("target", AT_FDCWD, e.file);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EEXIST);
               }});
  // Hard links to directories are not allowed: EPERM.
  r.push_back({"LinkAt_Directory", [](Env& e) -> Task<void> {
                 LinkAt op(AT_FDCWD, e.subdir, AT_FDCWD, e.dir + "/hard");
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EPERM);
               }});
  // Flags beyond AT_SYMLINK_FOLLOW | AT_EMPTY_PATH: EINVAL.
  r.push_back({"LinkAt_UnknownFlags", [](Env& e) -> Task<void> {
                 LinkAt op(AT_FDCWD, e.file, AT_FDCWD, e.dir + "/hard", 0x7000);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
}

void add_splice_timeout_cancel_rows(std::vector<Row>& r) {
  // splice(2) needs a pipe on at least one side: two files are EINVAL.
  r.push_back({"Splice_NeitherSideAPipe", [](Env& e) -> Task<void> {
                 Splice op(e.ro_fd, 0, e.file_fd, 0, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Splice_FdInMinus1", [](Env& e) -> Task<void> {
                 Splice op(-1, -1, e.pipe_w, -1, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // An offset on the pipe side: ESPIPE.
  r.push_back({"Splice_OffsetOnThePipeSide", [](Env& e) -> Task<void> {
                 Splice op(e.ro_fd, 0, e.pipe_w, 0, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ESPIPE);
               }});
  // Flags beyond SPLICE_F_* (and SPLICE_F_FD_IN_FIXED): io_splice_prep
  // says EINVAL.
  r.push_back({"Splice_UnknownFlags", [](Env& e) -> Task<void> {
                 Splice op(e.ro_fd, 0, e.pipe_w, -1, 16, 0x7ffffff0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // A length of 0 moves nothing (the kernel does not even call splice).
  r.push_back({"Splice_ZeroLength", [](Env& e) -> Task<void> {
                 Splice op(e.ro_fd, 0, e.pipe_w, -1, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res) << res.error().message();
                 EXPECT_EQ(res.value_or(99), 0u);
               }});
  // tee(2) needs two different pipes: a file is EINVAL, and so is one pipe
  // on both sides.
  r.push_back({"Tee_FileInsteadOfPipe", [](Env& e) -> Task<void> {
                 Tee op(e.ro_fd, e.pipe_w, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Tee_SamePipeBothSides", [](Env& e) -> Task<void> {
                 Tee op(e.pipe_r, e.pipe_w, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Tee_HugeFd", [](Env& e) -> Task<void> {
                 Tee op(Env::kHugeFd, e.pipe_w, 16);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // IORING_TIMEOUT_* flags the kernel does not know: EINVAL.
  r.push_back({"Timeout_UnknownFlags", [](Env&) -> Task<void> {
                 Timeout op(1ms, 0, 0xfffffff0u);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // A negative tv_sec (only reachable by writing the field): EINVAL.
  r.push_back({"Timeout_NegativeTimespec", [](Env&) -> Task<void> {
                 Timeout op(1ms);
                 op.ts.tv_sec = -1;
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // A negative duration becomes zero: the timer expires at once.
  r.push_back({"Timeout_NegativeDurationExpiresAtOnce", [](Env&) -> Task<void> {
                 Timeout op(-5s);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res) << res.error().message();
               }});
  // The longest duration there is (292 years): accepted, and a stop
  // request cancels it (ECANCELED); nothing is left in flight.
  r.push_back({"Timeout_MaxDurationIsCancellable", [](Env&) -> Task<void> {
                 std::stop_source stop;
                 auto wait = [](std::stop_token st) -> Task<Result<void>> {
                   Timeout op(std::chrono::nanoseconds::max());
                   co_return co_await submit(std::move(op), std::move(st));
                 };
                 const uint64_t base = in_flight();
                 auto h = spawn(wait(stop.get_token()));
                 auto armed = [base] { return in_flight() > base; };
                 const bool ok = co_await eventually(armed);
                 EXPECT_TRUE(ok);
                 co_await this_shard::yield();  // the SQE reaches the kernel
                 stop.request_stop();
                 auto res = co_await h;
                 EXPECT_ERRNO(res, ECANCELED);
               }});
  // A LinkTimeout not behind a linked op: the kernel refuses it (EINVAL);
  // complete() reports that the timer did not fire.
  r.push_back({"LinkTimeout_Alone", [](Env&) -> Task<void> {
                 LinkTimeout op(1ms);
                 const bool fired = co_await submit(std::move(op));
                 EXPECT_FALSE(fired);
               }});
  // with_timeout with a negative deadline: zero, so a read that would block
  // for ever is cancelled at once (ECANCELED).
  r.push_back({"WithTimeout_NegativeDeadlineCancelsABlockingRead",
               [](Env& e) -> Task<void> {
                 Read op(e.pipe_r, bytes(16));
                 auto res = co_await with_timeout(std::move(op), -1s);
                 EXPECT_ERRNO(res.res, ECANCELED);
               }});
  // A user_data nothing carries: ENOENT.
  r.push_back({"Cancel_UnknownUserData", [](Env&) -> Task<void> {
                 auto op = Cancel::user_data(0x123456789abcdef0ull);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // Cancelling by an fd that is not open: the kernel looks the fd up and
  // says EBADF; by an open fd nothing uses: ENOENT (complete() maps the
  // kernel's count of 0).
  r.push_back({"Cancel_FdMinus1", [](Env&) -> Task<void> {
                 auto op = Cancel::fd(-1);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"Cancel_FdNothingUses", [](Env& e) -> Task<void> {
                 auto op = Cancel::fd(e.ro_fd);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOENT);
               }});
}

void add_net_op_rows(std::vector<Row>& r) {
  // --- Socket ---------------------------------------------------------------
  // __sock_create: a family beyond NPROTO is EAFNOSUPPORT; type bits that
  // are neither a type nor SOCK_NONBLOCK/SOCK_CLOEXEC are EINVAL; a
  // protocol the family has no entry for (UDP as a stream) is
  // EPROTONOSUPPORT.
  r.push_back({"Socket_UnknownDomain", [](Env&) -> Task<void> {
                 Socket op(12345, SOCK_STREAM);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EAFNOSUPPORT);
               }});
  r.push_back({"Socket_UnknownType", [](Env&) -> Task<void> {
                 Socket op(AF_INET, 12345);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Socket_ProtocolOfAnotherType", [](Env&) -> Task<void> {
                 Socket op(AF_INET, SOCK_STREAM, IPPROTO_UDP);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EPROTONOSUPPORT);
               }});

  // --- Connect --------------------------------------------------------------
  r.push_back({"Connect_FdMinus1", [](Env&) -> Task<void> {
                 Connect op(-1, net::SocketAddress::ipv4_loopback(9));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // The io_uring socket ops check sock_from_file(): ENOTSOCK for a pipe.
  r.push_back({"Connect_Pipe", [](Env& e) -> Task<void> {
                 Connect op(e.pipe_r, net::SocketAddress::ipv4_loopback(9));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTSOCK);
               }});
  // An address of length 0: shorter than sa_family, EINVAL.
  r.push_back({"Connect_EmptyAddress", [](Env& e) -> Task<void> {
                 Connect op(e.tcp, net::SocketAddress());
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // A Unix address for an IPv4 socket: tcp_v4_connect says EAFNOSUPPORT.
  r.push_back({"Connect_AddressOfAnotherFamily", [](Env& e) -> Task<void> {
                 auto addr = net::SocketAddress::unix_path(e.dir + "/s");
                 CO_ASSERT_TRUE(addr);
                 Connect op(e.tcp, *addr);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EAFNOSUPPORT);
               }});

  // --- Accept / AcceptMultishot ---------------------------------------------
  r.push_back({"Accept_ClosedFd", [](Env&) -> Task<void> {
                 Accept op(Env::kClosedFd);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"Accept_Pipe", [](Env& e) -> Task<void> {
                 Accept op(e.pipe_r);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTSOCK);
               }});
  // A stream socket that does not listen: inet_accept says EINVAL.
  r.push_back({"Accept_NotListening", [](Env& e) -> Task<void> {
                 Accept op(e.tcp);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  // A datagram socket cannot accept: sock_no_accept, EOPNOTSUPP.
  r.push_back({"Accept_DatagramSocket", [](Env& e) -> Task<void> {
                 Accept op(e.udp);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EOPNOTSUPP);
               }});
  // accept4 flags beyond SOCK_CLOEXEC | SOCK_NONBLOCK: io_accept_prep says
  // EINVAL.
  r.push_back({"Accept_UnknownFlags", [](Env& e) -> Task<void> {
                 Accept op(e.tcp, 0x7fff0000);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"AcceptMultishot_FdMinus1", [](Env&) -> Task<void> {
                 auto stream = submit_multishot(AcceptMultishot(-1));
                 co_await expect_stream_error(std::move(stream), EBADF,
                                              __LINE__);
               }});
  r.push_back({"AcceptMultishot_NotListening", [](Env& e) -> Task<void> {
                 auto stream = submit_multishot(AcceptMultishot(e.tcp));
                 co_await expect_stream_error(std::move(stream), EINVAL,
                                              __LINE__);
               }});
  r.push_back({"AcceptMultishot_Pipe", [](Env& e) -> Task<void> {
                 auto stream = submit_multishot(AcceptMultishot(e.pipe_r));
                 co_await expect_stream_error(std::move(stream), ENOTSOCK,
                                              __LINE__);
               }});

  // --- Send / Recv
  // ------------------------------------------------------------
  r.push_back({"Send_FdMinus1", [](Env&) -> Task<void> {
                 Send op(-1, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
                 EXPECT_EQ(res.buf, "x");
               }});
  r.push_back({"Send_HugeFd", [](Env&) -> Task<void> {
                 Send op(Env::kHugeFd, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  r.push_back({"Send_Pipe", [](Env& e) -> Task<void> {
                 Send op(e.pipe_w, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, ENOTSOCK);
               }});
  // A TCP socket that is not connected: tcp_sendmsg says EPIPE (and
  // MSG_NOSIGNAL, the default, keeps SIGPIPE away).
  r.push_back({"Send_UnconnectedTcp", [](Env& e) -> Task<void> {
                 Send op(e.tcp, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EPIPE);
               }});
  // Every MSG_* bit on a datagram socket: udp_sendmsg refuses MSG_OOB
  // (bit 0) before anything else: EOPNOTSUPP.
  r.push_back({"Send_AllFlagBitsOnUdp", [](Env& e) -> Task<void> {
                 SendMsg op(e.udp, std::string("x"),
                            net::SocketAddress::ipv4_loopback(9),
                            static_cast<int>(~0u));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EOPNOTSUPP);
               }});
  // On a Unix stream socket the kernel does not refuse every bit: with
  // CONFIG_AF_UNIX_OOB it takes MSG_OOB and sends the byte out of band
  // (io_uring passes msg_flags to the protocol as they are). Whatever it
  // does, the result must say it: an error and nothing sent, or the count
  // and that many bytes at the peer.
  r.push_back({"Send_AllFlagBitsOnUnixSaysWhatItDid", [](Env& e) -> Task<void> {
                 Send op(e.sock_a, std::string("x"), static_cast<int>(~0u));
                 auto res = co_await submit(std::move(op));
                 int queued = -1;
                 EXPECT_EQ(::ioctl(e.sock_b, FIONREAD, &queued), 0);
                 if (res.res) {
                   EXPECT_EQ(*res.res, 1u);
                   EXPECT_EQ(queued, 1);
                 } else {
                   EXPECT_FALSE(res.res.error().message().empty());
                   EXPECT_EQ(queued, 0);
                 }
               }});
  r.push_back({"Send_EmptyBufferIsZeroBytes", [](Env& e) -> Task<void> {
                 Send op(e.sock_a, std::string());
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
               }});
  r.push_back({"Recv_FdMinus1", [](Env&) -> Task<void> {
                 Recv op(-1, bytes(16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
               }});
  r.push_back({"Recv_Pipe", [](Env& e) -> Task<void> {
                 Recv op(e.pipe_r, bytes(16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, ENOTSOCK);
               }});
  r.push_back({"Recv_DirectoryFd", [](Env& e) -> Task<void> {
                 Recv op(e.dir_fd, bytes(16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, ENOTSOCK);
               }});
  // Every MSG_* bit, MSG_DONTWAIT among them (so it cannot block): an
  // error, whichever bit is refused first (MSG_OOB on a Unix socket, ...).
  // Bounded anyway, so that a kernel that waits fails here instead of
  // hanging.
  r.push_back({"Recv_AllFlagBits", [](Env& e) -> Task<void> {
                 Recv op(e.sock_b, bytes(16), static_cast<int>(~0u));
                 auto res = co_await with_timeout(std::move(op), 10s);
                 EXPECT_AN_ERROR(res.res);
                 EXPECT_NE(res.res.error().value(), ECANCELED)
                     << "the receive waited instead of failing";
               }});
  // A zero-length receive is not answered at once: the socket's low-water
  // mark is at least one byte (sock_rcvlowat), so like recv(2) on a
  // blocking socket it waits until data is there, then returns 0 without
  // taking any (which a caller cannot tell from the peer's EOF: do not ask
  // for nothing). With nothing queued the deadline cancels it.
  r.push_back({"Recv_EmptyBufferWaitsForData", [](Env& e) -> Task<void> {
                 Recv idle(e.sock_b, std::vector<std::byte>());
                 auto none = co_await with_timeout(std::move(idle), 20ms);
                 EXPECT_ERRNO(none.res, ECANCELED);
                 CO_ASSERT_TRUE(::send(e.sock_a, "y", 1, 0) == 1);
                 Recv op(e.sock_b, std::vector<std::byte>());
                 auto res = co_await with_timeout(std::move(op), 10s);
                 EXPECT_TRUE(res.res) << res.res.error().message();
                 EXPECT_EQ(res.res.value_or(99), 0u);
                 int queued = -1;
                 EXPECT_EQ(::ioctl(e.sock_b, FIONREAD, &queued), 0);
                 EXPECT_EQ(queued, 1);  // the byte is still there
               }});

  // --- RecvMultishot / RecvMsgMultishot -----------------------------------
  r.push_back(
      {"RecvMultishot_ClosedFd", [](Env&) -> Task<void> {
         auto ring = BufferRing::create(2, 64);
         CO_ASSERT_TRUE(ring);
         auto stream = submit_multishot(RecvMultishot(Env::kClosedFd, *ring));
         co_await expect_stream_error(std::move(stream), EBADF, __LINE__);
         EXPECT_EQ(ring->available(), 2u);
       }});
  r.push_back({"RecvMultishot_Pipe", [](Env& e) -> Task<void> {
                 auto ring = BufferRing::create(2, 64);
                 CO_ASSERT_TRUE(ring);
                 auto stream = submit_multishot(RecvMultishot(e.pipe_r, *ring));
                 co_await expect_stream_error(std::move(stream), ENOTSOCK,
                                              __LINE__);
                 EXPECT_EQ(ring->available(), 2u);
               }});
  r.push_back(
      {"RecvMsgMultishot_HugeFd", [](Env& e) -> Task<void> {
         if (!this_shard::supports(IORING_OP_RECVMSG)) {
           e.skip = "no IORING_OP_RECVMSG";
           co_return;
         }
         auto ring = BufferRing::create(2, 256);
         CO_ASSERT_TRUE(ring);
         auto stream = submit_multishot(RecvMsgMultishot(Env::kHugeFd, *ring));
         co_await expect_stream_error(std::move(stream), EBADF, __LINE__);
       }});

  // --- SendMsg / RecvMsg ----------------------------------------------------
  // udp_sendmsg: a destination of another family is EAFNOSUPPORT; none at
  // all on an unconnected socket EDESTADDRREQ; a payload above 65507 bytes
  // (the most an IPv4 datagram carries) EMSGSIZE.
  r.push_back({"SendMsg_AddressOfAnotherFamily", [](Env& e) -> Task<void> {
                 auto to = net::SocketAddress::unix_path(e.dir + "/s");
                 CO_ASSERT_TRUE(to);
                 SendMsg op(e.udp, std::string("x"), *to);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EAFNOSUPPORT);
               }});
  r.push_back({"SendMsg_NoDestination", [](Env& e) -> Task<void> {
                 SendMsg op(e.udp, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EDESTADDRREQ);
               }});
  r.push_back({"SendMsg_DatagramTooLarge", [](Env& e) -> Task<void> {
                 SendMsg op(e.udp, std::string(70000, 'x'),
                            net::SocketAddress::ipv4_loopback(9));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EMSGSIZE);
               }});
  r.push_back({"SendMsg_Pipe", [](Env& e) -> Task<void> {
                 SendMsg op(e.pipe_w, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, ENOTSOCK);
               }});
  r.push_back({"RecvMsg_ClosedFd", [](Env&) -> Task<void> {
                 RecvMsg op(Env::kClosedFd, bytes(16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, EBADF);
                 EXPECT_EQ(res.from.size(), 0u);
               }});
  r.push_back({"RecvMsg_Pipe", [](Env& e) -> Task<void> {
                 RecvMsg op(e.pipe_r, bytes(16));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res.res, ENOTSOCK);
               }});

  // --- SendZc ---------------------------------------------------------------
  // Zero-copy send fails like a send, and still sends its notification
  // CQE: the op (and its buffer) must be released after it, leaving
  // nothing in flight (checked after every row).
  r.push_back({"SendZc_FdMinus1", [](Env& e) -> Task<void> {
                 if (!this_shard::supports(IORING_OP_SEND_ZC)) {
                   e.skip = "no IORING_OP_SEND_ZC";
                   co_return;
                 }
                 SendZc op(-1, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  r.push_back({"SendZc_Pipe", [](Env& e) -> Task<void> {
                 if (!this_shard::supports(IORING_OP_SEND_ZC)) {
                   e.skip = "no IORING_OP_SEND_ZC";
                   co_return;
                 }
                 SendZc op(e.pipe_w, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTSOCK);
               }});
  // Only sockets that support zero copy (SOCK_SUPPORT_ZC: TCP, UDP) take
  // it; a Unix socket is EOPNOTSUPP.
  r.push_back({"SendZc_UnixSocket", [](Env& e) -> Task<void> {
                 if (!this_shard::supports(IORING_OP_SEND_ZC)) {
                   e.skip = "no IORING_OP_SEND_ZC";
                   co_return;
                 }
                 SendZc op(e.sock_a, std::string("x"));
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EOPNOTSUPP);
               }});

  // --- Shutdown / PollAdd / PollMultishot ------------------------------------
  // how outside SHUT_RD..SHUT_RDWR: EINVAL; a pipe: ENOTSOCK; a TCP socket
  // that is not connected: ENOTCONN.
  r.push_back({"Shutdown_HowOutOfRange", [](Env& e) -> Task<void> {
                 Shutdown op(e.sock_a, 42);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"Shutdown_Pipe", [](Env& e) -> Task<void> {
                 Shutdown op(e.pipe_w, SHUT_WR);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTSOCK);
               }});
  r.push_back({"Shutdown_UnconnectedTcp", [](Env& e) -> Task<void> {
                 Shutdown op(e.tcp, SHUT_RDWR);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, ENOTCONN);
               }});
  r.push_back({"PollAdd_FdMinus1", [](Env&) -> Task<void> {
                 PollAdd op(-1, POLLIN);
                 auto res = co_await submit(std::move(op));
                 EXPECT_ERRNO(res, EBADF);
               }});
  // Events 0 is not an error: the kernel always adds POLLERR and POLLHUP,
  // so a pipe whose writer has gone reports POLLHUP...
  r.push_back({"PollAdd_NoEventsStillReportsHangUp", [](Env& e) -> Task<void> {
                 PollAdd op(e.hup_r, 0);
                 auto res = co_await submit(std::move(op));
                 EXPECT_TRUE(res) << res.error().message();
                 EXPECT_NE(res.value_or(0) & POLLHUP, 0u);
               }});
  // ...and one with a live writer never becomes ready: the deadline cancels
  // the poll (ECANCELED).
  r.push_back({"PollAdd_NoEventsWaitsUntilCancelled", [](Env& e) -> Task<void> {
                 PollAdd op(e.pipe_r, 0);
                 auto res = co_await with_timeout(std::move(op), 20ms);
                 EXPECT_ERRNO(res, ECANCELED);
               }});
  r.push_back(
      {"PollMultishot_HugeFd", [](Env&) -> Task<void> {
         auto stream = submit_multishot(PollMultishot(Env::kHugeFd, POLLIN));
         co_await expect_stream_error(std::move(stream), EBADF, __LINE__);
       }});
}

void add_fs_rows(std::vector<Row>& r) {
  // --- Opening --------------------------------------------------------------
  r.push_back({"FsOpen_MissingFileNamesThePath", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.missing);
                 EXPECT_ERRNO(f, ENOENT);
                 if (!f) {
                   EXPECT_EQ(f.error().path, e.missing);
                   EXPECT_NE(f.error().message().find(e.missing),
                             std::string::npos);
                 }
               }});
  r.push_back({"FsOpen_EmptyPath", [](Env&) -> Task<void> {
                 auto f = co_await fs::File::open("");
                 EXPECT_ERRNO(f, ENOENT);
               }});
  r.push_back({"FsOpen_PathLongerThanPathMax", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.dir + "/" +
                                                  std::string(5000, 'b'));
                 EXPECT_ERRNO(f, ENAMETOOLONG);
               }});
  // open(2) of a directory read-only succeeds; reading it is EISDIR.
  r.push_back({"FsOpen_DirectoryThenReadIsEisdir", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.dir);
                 CO_ASSERT_TRUE(f);
                 auto res = co_await f->read_at(bytes(16), 0);
                 EXPECT_ERRNO(res.res, EISDIR);
               }});
  // Creating (O_WRONLY|O_CREAT|O_TRUNC) a directory: EISDIR.
  r.push_back({"FsCreate_Directory", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::create(e.subdir);
                 EXPECT_ERRNO(f, EISDIR);
               }});
  // OpenOptions refuses combinations that make no sense before any call:
  // EINVAL with its own message.
  r.push_back({"FsOptions_NoAccessMode", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::options().open(e.file);
                 EXPECT_ERRNO(f, EINVAL);
                 if (!f) {
                   EXPECT_NE(f.error().message().find("invalid combination"),
                             std::string::npos);
                 }
               }});
  r.push_back({"FsOptions_CreateWithoutWrite", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::options().read().create().open(
                     e.dir + "/new");
                 EXPECT_ERRNO(f, EINVAL);
               }});
  r.push_back({"FsOptions_DirectoryFlagOnAFile", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::options()
                              .read()
                              .custom_flags(O_DIRECTORY)
                              .open(e.file);
                 EXPECT_ERRNO(f, ENOTDIR);
               }});
  r.push_back({"FsOpenWithFlags_ExclusiveOnExisting", [](Env& e) -> Task<void> {
                 auto f = co_await fs::open_with_flags(
                     e.file, O_WRONLY | O_CREAT | O_EXCL);
                 EXPECT_ERRNO(f, EEXIST);
               }});

  // --- A File on a bad descriptor ------------------------------------------
  // A default (closed) File: every call is EBADF, with the op's name.
  r.push_back({"FsFile_DefaultFileEveryCallIsEbadf", [](Env&) -> Task<void> {
                 fs::File f;
                 auto rd = co_await f.read_at(bytes(4), 0);
                 EXPECT_ERRNO(rd.res, EBADF);
                 auto wr = co_await f.write_at(std::string("x"), 0);
                 EXPECT_ERRNO(wr.res, EBADF);
                 auto rx = co_await f.read_exact_at(bytes(4), 0);
                 EXPECT_ERRNO(rx.res, EBADF);
                 auto wa = co_await f.write_all_at(std::string("x"), 0);
                 EXPECT_ERRNO(wa.res, EBADF);
                 auto sz = co_await f.size();
                 EXPECT_ERRNO(sz, EBADF);
                 auto md = co_await f.metadata();
                 EXPECT_ERRNO(md, EBADF);
                 auto sa = co_await f.sync_all();
                 EXPECT_ERRNO(sa, EBADF);
                 auto sd = co_await f.sync_data();
                 EXPECT_ERRNO(sd, EBADF);
                 auto al = co_await f.allocate(0, 16);
                 EXPECT_ERRNO(al, EBADF);
                 auto rf = f.register_fixed();
                 EXPECT_ERRNO(rf, EBADF);
                 auto cl = co_await f.close();
                 EXPECT_ERRNO(cl, EBADF);
                 if (!rd.res) {
                   EXPECT_STREQ(rd.res.error().op, "read");
                 }
               }});
  // A File adopting a closed, a huge and a negative fd number.
  r.push_back({"FsFile_FromClosedFd", [](Env&) -> Task<void> {
                 fs::File f = fs::File::from_raw_fd(Env::kClosedFd, "closed");
                 auto rd = co_await f.read_at(bytes(4), 0);
                 EXPECT_ERRNO(rd.res, EBADF);
                 auto cl = co_await f.close();
                 EXPECT_ERRNO(cl, EBADF);
               }});
  r.push_back({"FsFile_FromHugeFd", [](Env&) -> Task<void> {
                 fs::File f = fs::File::from_raw_fd(Env::kHugeFd, "huge");
                 auto wr = co_await f.write_all_at(std::string("x"), 0);
                 EXPECT_ERRNO(wr.res, EBADF);
                 auto rf = f.register_fixed();
                 EXPECT_ERRNO(rf, EBADF);
                 auto cl = co_await f.close();
                 EXPECT_ERRNO(cl, EBADF);
               }});
  r.push_back({"FsFile_FromNegativeFd", [](Env&) -> Task<void> {
                 fs::File f = fs::File::from_raw_fd(-7, "negative");
                 EXPECT_FALSE(f.is_open());
                 auto rd = co_await f.read_at(bytes(4), 0);
                 EXPECT_ERRNO(rd.res, EBADF);
               }});
  // A directory where a file is expected: reads EISDIR; writes and
  // allocation EBADF (open read-only).
  r.push_back({"FsFile_OnADirectoryFd", [](Env& e) -> Task<void> {
                 fs::File f = fs::File::from_raw_fd(::dup(e.dir_fd), e.dir);
                 CO_ASSERT_TRUE(f.is_open());
                 auto rd = co_await f.read_exact_at(bytes(4), 0);
                 EXPECT_ERRNO(rd.res, EISDIR);
                 auto wr = co_await f.write_all_at(std::string("x"), 0);
                 EXPECT_ERRNO(wr.res, EBADF);
                 auto al = co_await f.allocate(0, 16);
                 EXPECT_ERRNO(al, EBADF);
                 auto md = co_await f.metadata();
                 EXPECT_TRUE(md) << md.error().message();
                 EXPECT_TRUE(md && md->is_dir());
               }});
  // A pipe as a File: fallocate is ESPIPE (vfs_fallocate refuses FIFOs) and
  // fdatasync EINVAL (a pipe has no fsync method).
  r.push_back({"FsFile_OnAPipe", [](Env& e) -> Task<void> {
                 fs::File f = fs::File::from_raw_fd(::dup(e.pipe_w), "pipe");
                 CO_ASSERT_TRUE(f.is_open());
                 auto al = co_await f.allocate(0, 16);
                 EXPECT_ERRNO(al, ESPIPE);
                 auto sd = co_await f.sync_data();
                 EXPECT_ERRNO(sd, EINVAL);
               }});
  // Closing twice: the second is EBADF (documented).
  r.push_back({"FsFile_CloseTwice", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto c1 = co_await f->close();
                 EXPECT_TRUE(c1) << c1.error().message();
                 auto c2 = co_await f->close();
                 EXPECT_ERRNO(c2, EBADF);
               }});
  r.push_back({"FsFile_RegisterTwice", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto r1 = f->register_fixed();
                 EXPECT_TRUE(r1) << r1.error().message();
                 auto r2 = f->register_fixed();
                 EXPECT_ERRNO(r2, EEXIST);
               }});

  // --- Lengths and offsets through File -------------------------------------
  r.push_back({"FsFile_ReadAtOffsetNearUint64Max", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto rd = co_await f->read_at(bytes(4), ~uint64_t{0} - 1);
                 EXPECT_ERRNO(rd.res, EINVAL);
               }});
  // read_exact_at past the end of the file: ENODATA, "unexpected end of
  // file".
  r.push_back({"FsFile_ReadExactPastTheEnd", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto rd = co_await f->read_exact_at(bytes(4), 1u << 20);
                 EXPECT_ERRNO(rd.res, ENODATA);
                 if (!rd.res) {
                   EXPECT_NE(rd.res.error().message().find("end of file"),
                             std::string::npos);
                 }
                 auto more = co_await f->read_exact_at(bytes(32), 0);
                 EXPECT_ERRNO(more.res, ENODATA);
                 EXPECT_EQ(std::memcmp(more.buf.data(), Env::kContent.data(),
                                       Env::kContent.size()),
                           0);  // what was there was read
               }});
  r.push_back({"FsFile_ExactAndAllOfNothing", [](Env& e) -> Task<void> {
                 auto f =
                     co_await fs::File::options().read().write().open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto rd = co_await f->read_exact_at(std::string(), 1u << 30);
                 EXPECT_TRUE(rd.res);
                 EXPECT_EQ(rd.res.value_or(99), 0u);
                 auto wr = co_await f->write_all_at(std::string(), 0);
                 EXPECT_TRUE(wr.res);
                 EXPECT_EQ(wr.res.value_or(99), 0u);
               }});
  r.push_back({"FsFile_WriteAllToReadOnly", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto wr = co_await f->write_all_at(std::string("xyz"), 0);
                 EXPECT_ERRNO(wr.res, EBADF);
                 EXPECT_EQ(wr.buf, "xyz");
               }});
  r.push_back(
      {"FsFile_WriteAllOffsetOverflows", [](Env& e) -> Task<void> {
         auto f = co_await fs::File::options().write().open(e.file);
         CO_ASSERT_TRUE(f);
         auto wr = co_await f->write_all_at(
             std::string(16, 'x'),
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - 8));
         EXPECT_ERRNO(wr.res, EINVAL);
       }});
  r.push_back(
      {"FsFile_AllocateZeroLength", [](Env& e) -> Task<void> {
         auto f = co_await fs::File::options().write().open(e.file);
         CO_ASSERT_TRUE(f);
         auto al = co_await f->allocate(0, 0);
         EXPECT_ERRNO(al, EINVAL);
         auto big = co_await f->allocate(
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - 8),
             16);
         EXPECT_ERRNO(big, EFBIG);
       }});
  // A registered buffer with a slot nothing is registered at.
  r.push_back({"FsFile_ReadFixedAtUnregisteredSlot", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 UnregisteredSlotBuffer buf;
                 auto rd = co_await f->read_fixed_at(std::move(buf), 0);
                 EXPECT_ERRNO(rd.res, EFAULT);
               }});

  // write_fixed_at on a File opened read-only: EBADF; the handle comes
  // back and returns to its pool.
  r.push_back({"FsFile_WriteFixedAtReadOnly", [](Env& e) -> Task<void> {
                 auto f = co_await fs::File::open(e.file);
                 CO_ASSERT_TRUE(f);
                 auto pool = BufferPool::create(1, 4096);
                 CO_ASSERT_TRUE(pool);
                 auto buf = pool->acquire();
                 CO_ASSERT_TRUE(buf);
                 auto wr = co_await f->write_fixed_at(std::move(*buf), 0);
                 EXPECT_ERRNO(wr.res, EBADF);
                 EXPECT_TRUE(static_cast<bool>(wr.buf));
                 wr.buf = FixedBuffer();
                 EXPECT_EQ(pool->available(), 1u);
               }});

  // --- Whole-file helpers and paths
  // -------------------------------------------
  r.push_back({"FsRead_Directory", [](Env& e) -> Task<void> {
                 auto res = co_await fs::read(e.dir);
                 EXPECT_ERRNO(res, EISDIR);
               }});
  r.push_back({"FsRead_EmptyPath", [](Env&) -> Task<void> {
                 auto res = co_await fs::read_to_string("");
                 EXPECT_ERRNO(res, ENOENT);
               }});
  r.push_back({"FsRead_MissingPath", [](Env& e) -> Task<void> {
                 auto res = co_await fs::read_to_string(e.missing);
                 EXPECT_ERRNO(res, ENOENT);
               }});
  // Writing a whole file over a directory: the open (O_WRONLY | O_CREAT |
  // O_TRUNC) is EISDIR.
  r.push_back({"FsWrite_ToADirectory", [](Env& e) -> Task<void> {
                 auto res = co_await fs::write(e.subdir, std::string("x"));
                 EXPECT_ERRNO(res, EISDIR);
               }});
  r.push_back({"FsRemoveFile_Directory", [](Env& e) -> Task<void> {
                 auto res = co_await fs::remove_file(e.subdir);
                 EXPECT_ERRNO(res, EISDIR);
               }});
  r.push_back({"FsRemoveDir_File", [](Env& e) -> Task<void> {
                 auto res = co_await fs::remove_dir(e.file);
                 EXPECT_ERRNO(res, ENOTDIR);
               }});
  r.push_back({"FsRemoveDir_NotEmpty", [](Env& e) -> Task<void> {
                 auto res = co_await fs::remove_dir(e.dir);
                 EXPECT_ERRNO(res, ENOTEMPTY);
               }});
  r.push_back({"FsRename_MissingSourceNamesIt", [](Env& e) -> Task<void> {
                 auto res = co_await fs::rename(e.missing, e.dir + "/x");
                 EXPECT_ERRNO(res, ENOENT);
                 if (!res) {
                   EXPECT_EQ(res.error().path, e.missing);
                 }
               }});
  r.push_back({"FsRename_DirectoryIntoItself", [](Env& e) -> Task<void> {
                 auto res = co_await fs::rename(e.subdir, e.subdir + "/in");
                 EXPECT_ERRNO(res, EINVAL);
               }});
  r.push_back({"FsCreateDir_Existing", [](Env& e) -> Task<void> {
                 auto res = co_await fs::create_dir(e.subdir);
                 EXPECT_ERRNO(res, EEXIST);
               }});
  r.push_back({"FsHardLink_Directory", [](Env& e) -> Task<void> {
                 auto res = co_await fs::hard_link(e.subdir, e.dir + "/h");
                 EXPECT_ERRNO(res, EPERM);
               }});
  r.push_back({"FsSymlink_EmptyTarget", [](Env& e) -> Task<void> {
                 auto res = co_await fs::symlink("", e.dir + "/l");
                 EXPECT_ERRNO(res, ENOENT);
               }});
  r.push_back({"FsMetadata_EmptyAndMissing", [](Env& e) -> Task<void> {
                 auto a = co_await fs::metadata("");
                 EXPECT_ERRNO(a, ENOENT);
                 auto b = co_await fs::symlink_metadata(e.missing);
                 EXPECT_ERRNO(b, ENOENT);
               }});
}

void add_net_type_rows(std::vector<Row>& r) {
  // --- Addresses ------------------------------------------------------------
  // parse() and friends validate before any call: EINVAL (ENAMETOOLONG
  // for a Unix path beyond sun_path), with the input in the message.
  r.push_back({"Address_ParseRefusesMalformedInput", [](Env&) -> Task<void> {
                 for (const char* text :
                      {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1",
                       "256.0.0.1:80", "[::1:80", "::1:80", "localhost:80",
                       "[::1]:x", "1.2.3.4:80x"}) {
                   auto a = net::SocketAddress::parse(text);
                   SCOPED_TRACE(text);
                   EXPECT_ERRNO(a, EINVAL);
                 }
                 co_return;
               }});
  r.push_back({"Address_UnixPathTooLong", [](Env&) -> Task<void> {
                 auto a =
                     net::SocketAddress::unix_path("/" + std::string(200, 'u'));
                 EXPECT_ERRNO(a, ENAMETOOLONG);
                 auto b = net::SocketAddress::unix_path("");
                 EXPECT_ERRNO(b, EINVAL);
                 co_return;
               }});
  r.push_back({"Address_FromHostPortOutOfRange", [](Env&) -> Task<void> {
                 auto a = net::SocketAddress::from_host_port("1.2.3.4", 70000);
                 EXPECT_ERRNO(a, EINVAL);
                 auto b = net::SocketAddress::from_host_port("1.2.3.4", -1);
                 EXPECT_ERRNO(b, EINVAL);
                 auto c = net::SocketAddress::from_host_port("not-a-host", 80);
                 EXPECT_ERRNO(c, EINVAL);
                 co_return;
               }});
  // getsockname/getpeername: EBADF for a bad fd, ENOTSOCK for a pipe,
  // ENOTCONN for a socket without a peer.
  r.push_back({"Address_LocalAndPeerOfBadFds", [](Env& e) -> Task<void> {
                 auto a = net::SocketAddress::local_of(-1);
                 EXPECT_ERRNO(a, EBADF);
                 auto b = net::SocketAddress::peer_of(e.pipe_r);
                 EXPECT_ERRNO(b, ENOTSOCK);
                 auto c = net::SocketAddress::peer_of(e.tcp);
                 EXPECT_ERRNO(c, ENOTCONN);
                 co_return;
               }});
  // resolve() checks its input before it runs getaddrinfo.
  r.push_back({"Address_ResolveRefusesBadInput", [](Env&) -> Task<void> {
                 auto a = co_await net::resolve("", 80);
                 EXPECT_ERRNO(a, EINVAL);
                 auto b = co_await net::resolve("localhost", 70000);
                 EXPECT_ERRNO(b, EINVAL);
               }});

  // --- TcpListener / TcpStream ---------------------------------------------
  r.push_back({"TcpListener_BindEmptyAddress", [](Env&) -> Task<void> {
                 auto l = net::TcpListener::bind(net::SocketAddress());
                 EXPECT_ERRNO(l, EAFNOSUPPORT);
                 co_return;
               }});
  r.push_back({"TcpListener_BindUnixAddress", [](Env& e) -> Task<void> {
                 auto a = net::SocketAddress::unix_path(e.dir + "/s");
                 CO_ASSERT_TRUE(a);
                 auto l = net::TcpListener::bind(*a);
                 EXPECT_ERRNO(l, EAFNOSUPPORT);
               }});
  // A port somebody listens on: EADDRINUSE, with advice.
  r.push_back({"TcpListener_BindAddressInUse", [](Env&) -> Task<void> {
                 auto first = net::TcpListener::bind(
                     net::SocketAddress::ipv4_loopback(0));
                 CO_ASSERT_TRUE(first);
                 auto addr = first->local_address();
                 CO_ASSERT_TRUE(addr);
                 auto second = net::TcpListener::bind(*addr);
                 EXPECT_ERRNO(second, EADDRINUSE);
                 if (!second) {
                   EXPECT_NE(second.error().message().find(addr->to_string()),
                             std::string::npos);
                 }
               }});
  // An address no interface has (TEST-NET-1): EADDRNOTAVAIL.
  r.push_back({"TcpListener_BindForeignAddress", [](Env&) -> Task<void> {
                 auto a = net::SocketAddress::parse("192.0.2.1:0");
                 CO_ASSERT_TRUE(a);
                 auto l = net::TcpListener::bind(*a);
                 EXPECT_ERRNO(l, EADDRNOTAVAIL);
               }});
  r.push_back({"TcpListener_DefaultAcceptIsEbadf", [](Env&) -> Task<void> {
                 net::TcpListener l;
                 auto one = co_await l.accept_one();
                 EXPECT_ERRNO(one, EBADF);
                 auto stream = l.accept();
                 co_await expect_stream_error(std::move(stream), EBADF,
                                              __LINE__);
               }});
  r.push_back({"TcpStream_ConnectEmptyAddress", [](Env&) -> Task<void> {
                 auto s =
                     co_await net::TcpStream::connect(net::SocketAddress());
                 EXPECT_ERRNO(s, EAFNOSUPPORT);
               }});
  // Nobody listens on a port that was just released: ECONNREFUSED, and the
  // message names the address.
  r.push_back({"TcpStream_ConnectRefused", [](Env&) -> Task<void> {
                 net::SocketAddress addr;
                 {
                   auto l = net::TcpListener::bind(
                       net::SocketAddress::ipv4_loopback(0));
                   CO_ASSERT_TRUE(l);
                   auto a = l->local_address();
                   CO_ASSERT_TRUE(a);
                   addr = *a;
                 }
                 auto s = co_await net::TcpStream::connect(addr);
                 EXPECT_ERRNO(s, ECONNREFUSED);
                 if (!s) {
                   EXPECT_NE(s.error().message().find(addr.to_string()),
                             std::string::npos);
                 }
               }});
  // A default (closed) stream: every call is EBADF and says which call.
  r.push_back({"TcpStream_DefaultEveryCallIsEbadf", [](Env&) -> Task<void> {
                 net::TcpStream s;
                 auto a = co_await s.send(std::string("x"));
                 EXPECT_ERRNO(a.res, EBADF);
                 auto b = co_await s.send_all(std::string("xy"));
                 EXPECT_ERRNO(b.res, EBADF);
                 auto c = co_await s.recv(bytes(4));
                 EXPECT_ERRNO(c.res, EBADF);
                 auto d = co_await s.recv_exact(bytes(4));
                 EXPECT_ERRNO(d.res, EBADF);
                 auto f = co_await s.shutdown();
                 EXPECT_ERRNO(f, EBADF);
                 auto g = s.set_nodelay(true);
                 EXPECT_ERRNO(g, EBADF);
                 auto h = s.local_address();
                 EXPECT_ERRNO(h, EBADF);
                 auto i = co_await s.close();
                 EXPECT_ERRNO(i, EBADF);
                 if (!a.res) {
                   EXPECT_EQ(a.res.error().op, "send");
                 }
                 auto ring = BufferRing::create(2, 64);
                 CO_ASSERT_TRUE(ring);
                 auto stream = s.recv_multishot(*ring);
                 co_await expect_stream_error(std::move(stream), EBADF,
                                              __LINE__);
               }});
  // A pipe where a socket is expected: ENOTSOCK, naming the fd.
  r.push_back({"TcpStream_OverAPipe", [](Env& e) -> Task<void> {
                 net::TcpStream s{OwnedFd(::dup(e.pipe_w))};
                 CO_ASSERT_TRUE(s.is_open());
                 auto a = co_await s.send_all(std::string("x"));
                 EXPECT_ERRNO(a.res, ENOTSOCK);
                 if (!a.res) {
                   EXPECT_NE(a.res.error().message().find("fd "),
                             std::string::npos);
                 }
                 auto b = co_await s.recv_exact(bytes(4));
                 EXPECT_ERRNO(b.res, ENOTSOCK);
                 auto c = co_await s.shutdown(SHUT_RDWR);
                 EXPECT_ERRNO(c, ENOTSOCK);
                 auto d = s.set_nodelay(true);
                 EXPECT_ERRNO(d, ENOTSOCK);
                 auto f = s.peer_address();
                 EXPECT_ERRNO(f, ENOTSOCK);
               }});
  // shutdown(how = 42) on a live connection: EINVAL; the connection still
  // works afterwards.
  r.push_back({"TcpStream_ShutdownHowOutOfRange", [](Env&) -> Task<void> {
                 TcpPair p = co_await tcp_pair();
                 CO_ASSERT_TRUE(p.ok);
                 auto sh = co_await p.client.shutdown(42);
                 EXPECT_ERRNO(sh, EINVAL);
                 auto w = co_await p.client.send_all(std::string("ok"));
                 EXPECT_TRUE(w.res);
                 auto rd = co_await p.server.recv_exact(std::string(2, '\0'));
                 EXPECT_TRUE(rd.res);
                 EXPECT_EQ(rd.buf, "ok");
               }});
  // Absurd option values: SO_RCVBUF of -1 is clamped by the kernel (not an
  // error); an unknown option name is ENOPROTOOPT.
  r.push_back({"TcpStream_UnknownSocketOption", [](Env&) -> Task<void> {
                 TcpPair p = co_await tcp_pair();
                 CO_ASSERT_TRUE(p.ok);
                 auto a = p.client.set_option(SOL_SOCKET, 12345, 1);
                 EXPECT_ERRNO(a, ENOPROTOOPT);
                 auto b = p.client.set_option(SOL_SOCKET, SO_RCVBUF, -1);
                 EXPECT_TRUE(b) << b.error().message();
               }});
  // recv_exact: the peer's EOF before the buffer is full is ENODATA,
  // "unexpected end of stream"; of nothing, 0 at once.
  r.push_back({"TcpStream_RecvExactEndOfStream", [](Env&) -> Task<void> {
                 TcpPair p = co_await tcp_pair();
                 CO_ASSERT_TRUE(p.ok);
                 auto none = co_await p.server.recv_exact(std::string());
                 EXPECT_TRUE(none.res);
                 EXPECT_EQ(none.res.value_or(99), 0u);
                 auto w = co_await p.client.send_all(std::string("abc"));
                 EXPECT_TRUE(w.res);
                 auto sh = co_await p.client.shutdown(SHUT_WR);
                 EXPECT_TRUE(sh);
                 auto rd = co_await p.server.recv_exact(std::string(8, '\0'));
                 EXPECT_ERRNO(rd.res, ENODATA);
                 EXPECT_EQ(rd.buf.substr(0, 3), "abc");
               }});
  // send_all to a peer that has gone: EPIPE or ECONNRESET (which one
  // depends on whether the reset has arrived yet), never SIGPIPE.
  r.push_back({"TcpStream_SendAllToAClosedPeer", [](Env&) -> Task<void> {
                 TcpPair p = co_await tcp_pair();
                 CO_ASSERT_TRUE(p.ok);
                 auto cl = co_await p.server.close();
                 EXPECT_TRUE(cl);
                 // Big enough that it cannot all be queued before the reset.
                 auto w = co_await p.client.send_all(
                     std::string(std::size_t{16} << 20, 'z'));
                 EXPECT_AN_ERROR(w.res);
                 if (!w.res) {
                   const int err = w.res.error().code.value();
                   EXPECT_TRUE(err == EPIPE || err == ECONNRESET)
                       << w.res.error().message();
                 }
               }});

  // --- UdpSocket ------------------------------------------------------------
  r.push_back({"UdpSocket_BindEmptyAddress", [](Env&) -> Task<void> {
                 auto u = net::UdpSocket::bind(net::SocketAddress());
                 EXPECT_ERRNO(u, EAFNOSUPPORT);
                 co_return;
               }});
  r.push_back({"UdpSocket_ConnectEmptyAddress", [](Env&) -> Task<void> {
                 auto u =
                     net::UdpSocket::bind(net::SocketAddress::ipv4_loopback(0));
                 CO_ASSERT_TRUE(u);
                 auto c = u->connect(net::SocketAddress());
                 EXPECT_ERRNO(c, EINVAL);
               }});
  r.push_back({"UdpSocket_SendUnconnected", [](Env&) -> Task<void> {
                 auto u =
                     net::UdpSocket::bind(net::SocketAddress::ipv4_loopback(0));
                 CO_ASSERT_TRUE(u);
                 auto s = co_await u->send(std::string("x"));
                 EXPECT_ERRNO(s.res, EDESTADDRREQ);
               }});
  r.push_back(
      {"UdpSocket_SendToTooLargeAndWrongFamily", [](Env& e) -> Task<void> {
         auto u = net::UdpSocket::bind(net::SocketAddress::ipv4_loopback(0));
         CO_ASSERT_TRUE(u);
         auto self = u->local_address();
         CO_ASSERT_TRUE(self);
         auto big = co_await u->send_to(std::string(70000, 'x'), *self);
         EXPECT_ERRNO(big.res, EMSGSIZE);
         auto unix_to = net::SocketAddress::unix_path(e.dir + "/s");
         CO_ASSERT_TRUE(unix_to);
         auto wrong = co_await u->send_to(std::string("x"), *unix_to);
         EXPECT_ERRNO(wrong.res, EAFNOSUPPORT);
       }});
  // A datagram into an empty buffer: 0 bytes, marked truncated (the
  // datagram is consumed).
  r.push_back(
      {"UdpSocket_RecvFromIntoEmptyBufferIsTruncated", [](Env&) -> Task<void> {
         auto u = net::UdpSocket::bind(net::SocketAddress::ipv4_loopback(0));
         CO_ASSERT_TRUE(u);
         auto self = u->local_address();
         CO_ASSERT_TRUE(self);
         auto s = co_await u->send_to(std::string("hello"), *self);
         EXPECT_TRUE(s.res);
         auto rcv = co_await u->recv_from(std::string());
         EXPECT_TRUE(rcv.res) << rcv.res.error().message();
         EXPECT_EQ(rcv.res.value_or(99), 0u);
         EXPECT_TRUE(rcv.truncated);
         EXPECT_EQ(rcv.from, *self);
       }});
  r.push_back({"UdpSocket_DefaultRecvFromIsEbadf", [](Env&) -> Task<void> {
                 net::UdpSocket u;
                 auto rcv = co_await u.recv_from(bytes(8));
                 EXPECT_ERRNO(rcv.res, EBADF);
                 auto rv = co_await u.recv(bytes(8));
                 EXPECT_ERRNO(rv.res, EBADF);
                 auto ring = BufferRing::create(2, 256);
                 CO_ASSERT_TRUE(ring);
                 auto stream = u.recv_multishot(*ring);
                 co_await expect_stream_error(std::move(stream), EBADF,
                                              __LINE__);
               }});

  // --- UnixStream / UnixListener ---------------------------------------------
  r.push_back({"UnixStream_ConnectBadPaths", [](Env& e) -> Task<void> {
                 auto a = co_await net::UnixStream::connect("");
                 EXPECT_ERRNO(a, EINVAL);
                 auto b = co_await net::UnixStream::connect(
                     "/" + std::string(200, 'p'));
                 EXPECT_ERRNO(b, ENAMETOOLONG);
                 auto c = co_await net::UnixStream::connect(e.missing);
                 EXPECT_ERRNO(c, ENOENT);
                 // A regular file is not a socket: ECONNREFUSED.
                 auto d = co_await net::UnixStream::connect(e.file);
                 EXPECT_ERRNO(d, ECONNREFUSED);
               }});
  r.push_back({"UnixListener_BindBadPaths", [](Env& e) -> Task<void> {
                 auto a = net::UnixListener::bind(e.file);
                 EXPECT_ERRNO(a, EADDRINUSE);
                 if (!a) {
                   EXPECT_NE(a.error().message().find("unlink it first"),
                             std::string::npos);
                 }
                 auto b = net::UnixListener::bind(e.missing + "/s");
                 EXPECT_ERRNO(b, ENOENT);
                 auto c = net::UnixListener::bind("");
                 EXPECT_ERRNO(c, EINVAL);
                 co_return;
               }});
  r.push_back({"UnixListener_DefaultAcceptIsEbadf", [](Env&) -> Task<void> {
                 net::UnixListener l;
                 auto one = co_await l.accept_one();
                 EXPECT_ERRNO(one, EBADF);
               }});
}

void add_buffer_rows(std::vector<Row>& r) {
  // create() checks count (a power of two in 1..32768) and size
  // (1..kMaxBufferSize) itself: EINVAL.
  r.push_back({"BufferRing_CreateRefusesBadSizes", [](Env&) -> Task<void> {
                 for (unsigned count : {0u, 3u, 100u, 65536u}) {
                   SCOPED_TRACE(count);
                   auto ring = BufferRing::create(count, 64);
                   EXPECT_ERRNO(ring, EINVAL);
                 }
                 for (std::size_t size :
                      {std::size_t{0}, BufferRing::kMaxBufferSize + 1,
                       ~std::size_t{0}}) {
                   SCOPED_TRACE(size);
                   auto ring = BufferRing::create(2, size);
                   EXPECT_ERRNO(ring, EINVAL);
                 }
                 co_return;
               }});
  // BufferPool: count or size 0 is EINVAL; more buffers than the shard's
  // registered-buffer table (max_fixed_buffers, 1024) is ENOBUFS, and what
  // was registered on the way is released again.
  r.push_back({"BufferPool_CreateRefusesZero", [](Env&) -> Task<void> {
                 auto a = BufferPool::create(0, 4096);
                 EXPECT_ERRNO(a, EINVAL);
                 auto b = BufferPool::create(4, 0);
                 EXPECT_ERRNO(b, EINVAL);
                 co_return;
               }});
  r.push_back({"BufferPool_MoreThanTheTableHolds", [](Env&) -> Task<void> {
                 auto a = BufferPool::create(2000, 4096);
                 EXPECT_ERRNO(a, ENOBUFS);
                 auto all = BufferPool::create(1024, 4096);
                 EXPECT_TRUE(all) << all.error().message();
                 co_return;
               }});
  // --- this_shard registrations ----------------------------------------------
  // Registering a descriptor that is not open: the kernel's fget fails,
  // EBADF.
  r.push_back({"RegisterFile_ClosedFd", [](Env&) -> Task<void> {
                 auto slot = this_shard::register_file(Env::kClosedFd);
                 EXPECT_ERRNO(slot, EBADF);
                 co_return;
               }});
  r.push_back({"RegisterFile_HugeFd", [](Env&) -> Task<void> {
                 auto slot = this_shard::register_file(Env::kHugeFd);
                 EXPECT_ERRNO(slot, EBADF);
                 co_return;
               }});
  // Slots that were never handed out, or were released already: shardio
  // refuses them itself (EBADF), so a slot is never released twice.
  r.push_back({"UnregisterFile_UnknownAndTwice", [](Env& e) -> Task<void> {
                 auto never = this_shard::unregister_file(12345);
                 EXPECT_ERRNO(never, EBADF);
                 auto slot = this_shard::register_file(e.ro_fd);
                 CO_ASSERT_TRUE(slot);
                 auto once = this_shard::unregister_file(*slot);
                 EXPECT_TRUE(once) << once.error().message();
                 auto twice = this_shard::unregister_file(*slot);
                 EXPECT_ERRNO(twice, EBADF);
               }});
  // A registered buffer is at most 1 GiB and not empty: the kernel's
  // io_validate_user_buf_range says EFAULT for either.
  r.push_back({"RegisterBuffer_LongerThan1GiB", [](Env&) -> Task<void> {
                 HugeMapping m;
                 CO_ASSERT_TRUE(m.size() == HugeMapping::kSize);
                 auto slot = this_shard::register_buffer(m.data(), m.size());
                 EXPECT_ERRNO(slot, EFAULT);
               }});
  r.push_back({"RegisterBuffer_ZeroLength", [](Env&) -> Task<void> {
                 static char page[64];
                 auto slot = this_shard::register_buffer(page, 0);
                 EXPECT_ERRNO(slot, EFAULT);
                 co_return;
               }});
  r.push_back({"UnregisterBuffer_Unknown", [](Env&) -> Task<void> {
                 auto r = this_shard::unregister_buffer(12345);
                 EXPECT_ERRNO(r, EBADF);
                 co_return;
               }});
  r.push_back({"UnregisterBufRing_Unknown", [](Env&) -> Task<void> {
                 auto r = this_shard::unregister_buf_ring(12345);
                 EXPECT_ERRNO(r, ENOENT);
                 co_return;
               }});
  r.push_back({"BufferPool_AcquireWhenEmpty", [](Env&) -> Task<void> {
                 auto pool = BufferPool::create(1, 4096);
                 CO_ASSERT_TRUE(pool);
                 auto a = pool->acquire();
                 CO_ASSERT_TRUE(a);
                 auto b = pool->acquire();
                 EXPECT_ERRNO(b, ENOBUFS);
                 co_return;
               }});
}

// ---------------------------------------------------------------------------
// Cancel::all with nothing of the caller's in flight: the shard's own
// eventfd read is in the ring and is cancelled too (the count may say 1);
// the shard must re-arm it, so that other threads can still wake it.

TEST(BadInputMiscTest, CancelAllLeavesTheShardWakeable) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  auto res = rt.block_on([]() -> Task<Result<uint32_t>> {
    auto op = Cancel::all();
    co_return co_await submit(std::move(op));
  }());
  // Either nothing matched (ENOENT) or the shard's internal read did.
  std::printf("Cancel::all with no op of the caller's in flight: %s\n",
              res ? ("cancelled " + std::to_string(*res)).c_str()
                  : res.error().message().c_str());
  if (res) {
    EXPECT_LE(*res, 1u);
  } else {
    EXPECT_EQ(res.error(), errno_code(ENOENT)) << res.error().message();
  }
  // The shard sleeps in io_uring_enter; a post from this thread must wake
  // it through the (re-armed) eventfd read.
  for (int i = 0; i < 3; ++i) {
    std::promise<int> p;
    auto f = p.get_future();
    rt.post(0, [&p, i] { p.set_value(i); });
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready)
        << "the shard no longer wakes for posted work after Cancel::all";
    EXPECT_EQ(f.get(), i);
  }
}

// Off a shard, the calls that need one throw std::logic_error (and leak
// nothing: LeakSanitizer checks at exit).
TEST(BadInputMiscTest, BufferRingOffAShardThrows) {
  EXPECT_THROW((void)BufferRing::create(2, 64), std::logic_error);
}

std::vector<Row> make_rows() {
  std::vector<Row> r;
  add_file_op_rows(r);
  add_path_op_rows(r);
  add_splice_timeout_cancel_rows(r);
  add_net_op_rows(r);
  add_fs_rows(r);
  add_net_type_rows(r);
  add_buffer_rows(r);
  return r;
}

// ---------------------------------------------------------------------------
// Edge cases that need more than a row: sizes and arguments that shardio
// refuses before it allocates or asks the kernel, empty handles, and paths
// with a NUL byte in them. The one that must look for leaks runs in a child
// process (a death test), so that a leak is not blamed on later tests.

// BufferPool::create checks count and size before it allocates anything: a
// size above kMaxBufferSize (1 GiB, the kernel's limit for one registered
// buffer) is EINVAL, so rounding it up to whole pages cannot wrap (SIZE_MAX
// would wrap to 0-byte buffers), and so is a count above kMaxCount (the
// kernel's 16384 registered buffers), however large.
TEST(BadInputEdgeTest, BufferPoolOfAnAbsurdSizeIsRefused) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto pool = BufferPool::create(1, ~std::size_t{0});
    EXPECT_FALSE(pool) << "created a pool of " << pool->buffer_size()
                       << "-byte buffers from a size of SIZE_MAX";
    if (!pool) {
      EXPECT_EQ(pool.error(), errno_code(EINVAL)) << pool.error().message();
    }
    auto too_big = BufferPool::create(1, BufferPool::kMaxBufferSize + 1);
    EXPECT_ERRNO(too_big, EINVAL);
    auto too_many = BufferPool::create(BufferPool::kMaxCount + 1, 4096);
    EXPECT_ERRNO(too_many, EINVAL);
    auto absurd_count = BufferPool::create(~std::size_t{0}, 4096);
    EXPECT_ERRNO(absurd_count, EINVAL);
    // Nothing was registered on the way: a pool as large as the shard's
    // table still fits.
    auto all = BufferPool::create(1024, 4096);
    EXPECT_TRUE(all) << all.error().message();
    co_return;
  }());
}

// BufferPool::create off a shard throws std::logic_error (from
// this_shard::register_buffer) and leaks nothing: the pool's state and its
// memory are owned by a std::unique_ptr until the BufferPool takes them.
// Under LeakSanitizer the check runs in a child process, so that a leak is
// not blamed on later tests; without it only the exception is checked.
int buffer_pool_off_a_shard() {
  try {
    (void)BufferPool::create(1, 4096);
    return 2;  // no exception: not what this test expects either
  } catch (const std::logic_error&) {
  }
#ifdef SHARDIO_TEST_LSAN
  return __lsan_do_recoverable_leak_check() == 0 ? 0 : 1;
#else
  return 0;
#endif
}

TEST(BadInputEdgeTest, BufferPoolOffAShardThrowsWithoutLeaking) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::_Exit(buffer_pool_off_a_shard()), testing::ExitedWithCode(0),
              "");
}

// Empty handles (default-constructed or moved from) hold no state, and say
// so: their accessors return 0, null, FixedBuffer::kNoSlot and
// BufferRing::kNoGroup, acquire() on a moved-from pool is EINVAL, and take()
// and notify_when_available() on an empty ring do nothing.
TEST(BadInputEdgeTest, EmptyHandlesReportNothing) {
  Watchdog watchdog;
  FixedBuffer fixed;
  EXPECT_FALSE(fixed);
  EXPECT_EQ(fixed.data(), nullptr);
  EXPECT_EQ(fixed.size(), 0u);
  EXPECT_EQ(fixed.capacity(), 0u);
  EXPECT_EQ(fixed.slot(), FixedBuffer::kNoSlot);
  fixed.set_size(100);
  EXPECT_EQ(fixed.size(), 0u);

  BufferRing ring;
  EXPECT_FALSE(ring);
  EXPECT_EQ(ring.group(), BufferRing::kNoGroup);
  EXPECT_EQ(ring.count(), 0u);
  EXPECT_EQ(ring.buffer_size(), 0u);
  EXPECT_EQ(ring.available(), 0u);
  io_uring_cqe cqe{};
  cqe.res = 16;
  cqe.flags = IORING_CQE_F_BUFFER | (3u << IORING_CQE_BUFFER_SHIFT);
  ProvidedBuffer taken = ring.take(cqe);
  EXPECT_EQ(taken.data(), nullptr);
  EXPECT_TRUE(taken.empty());
  bool called = false;
  ring.notify_when_available([&called] { called = true; });
  EXPECT_FALSE(called);

  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto pool = BufferPool::create(1, 4096);
    CO_ASSERT_TRUE(pool);
    auto held = pool->acquire();
    CO_ASSERT_TRUE(held);
    FixedBuffer moved = std::move(*held);
    EXPECT_EQ(held->data(), nullptr);
    EXPECT_EQ(held->size(), 0u);
    EXPECT_EQ(held->slot(), FixedBuffer::kNoSlot);
    EXPECT_NE(moved.data(), nullptr);
    EXPECT_EQ(moved.size(), 4096u);
    BufferPool other = std::move(*pool);
    EXPECT_FALSE(*pool);
    EXPECT_EQ(pool->available(), 0u);
    EXPECT_EQ(pool->buffer_size(), 0u);
    EXPECT_TRUE(other);
    EXPECT_EQ(other.buffer_size(), 4096u);
    co_return;
  }());
}

TEST(BadInputEdgeTest, AcquireFromAMovedFromBufferPoolIsAnError) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto pool = BufferPool::create(1, 4096);
    CO_ASSERT_TRUE(pool);
    BufferPool other = std::move(*pool);
    auto buf = pool->acquire();  // the moved-from pool
    EXPECT_ERRNO(buf, EINVAL);
    // The pool it moved to still hands out its buffer.
    auto good = other.acquire();
    EXPECT_TRUE(good) << good.error().message();
    co_return;
  }());
}

// ReadFixed and WriteFixed given an empty FixedBuffer complete with EINVAL:
// prepare() sees a handle without memory and hands the kernel an SQE it
// refuses (prep_invalid) instead of one that names no buffer. The handle
// comes back with the result.
TEST(BadInputEdgeTest, ReadFixedWithAnEmptyFixedBufferIsAnError) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    OwnedFd zero(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
    CO_ASSERT_TRUE(zero.valid());
    ReadFixed read(zero.get(), FixedBuffer(), 0);
    auto r = co_await submit(std::move(read));
    EXPECT_ERRNO(r.res, EINVAL);
    EXPECT_FALSE(r.buf);
    OwnedFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    CO_ASSERT_TRUE(null.valid());
    WriteFixed write(null.get(), FixedBuffer(), 0);
    auto w = co_await submit(std::move(write));
    EXPECT_ERRNO(w.res, EINVAL);
  }());
}

// RecvMultishot and RecvMsgMultishot given an empty BufferRing end at once
// with EINVAL as their only item: there is nothing to select from (and
// selecting group 0 could take another ring's buffers), so prepare() hands
// the kernel an SQE it refuses. With re-arming on (the default) the stream
// does not wait for a buffer that would never come.
TEST(BadInputEdgeTest, RecvMultishotWithAnEmptyBufferRingIsAnError) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    int sv[2];
    CO_ASSERT_TRUE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
                   0);
    OwnedFd a(sv[0]);
    OwnedFd b(sv[1]);
    CO_ASSERT_TRUE(::send(a.get(), "x", 1, 0) == 1);
    for (const bool rearm : {false, true}) {
      SCOPED_TRACE(rearm ? "rearm" : "no rearm");
      auto stream = submit_multishot(RecvMultishot(b.get(), BufferRing()),
                                     MultishotOptions{.rearm = rearm});
      auto item = co_await stream.next();
      CO_ASSERT_TRUE(item.has_value());
      EXPECT_ERRNO(*item, EINVAL);
      auto more = co_await stream.next();
      EXPECT_FALSE(more.has_value()) << "more than one item";
    }
    int dv[2];
    CO_ASSERT_TRUE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dv) ==
                   0);
    OwnedFd c(dv[0]);
    OwnedFd d(dv[1]);
    CO_ASSERT_TRUE(::send(c.get(), "x", 1, 0) == 1);
    auto dgrams = submit_multishot(RecvMsgMultishot(d.get(), BufferRing()));
    auto dgram = co_await dgrams.next();
    CO_ASSERT_TRUE(dgram.has_value());
    EXPECT_ERRNO(*dgram, EINVAL);
    auto more = co_await dgrams.next();
    EXPECT_FALSE(more.has_value()) << "more than one item";
  }());
}

// this_shard::register_file(-1) and register_buffer(nullptr, 0) are refused
// (EBADF, EINVAL) before the kernel is asked: its update calls take fd -1
// and a null iovec to mean "clear the slot" (IORING_REGISTER_FILES_UPDATE,
// io_buffer_validate), so passing them through would hand out a slot with
// nothing in it.
TEST(BadInputEdgeTest, RegisteringNothingIsRefused) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    auto file = this_shard::register_file(-1);
    EXPECT_FALSE(file) << "register_file(-1) gave slot " << *file;
    if (!file) {
      EXPECT_EQ(file.error(), errno_code(EBADF)) << file.error().message();
    }
    auto skip = this_shard::register_file(-2);  // IORING_REGISTER_FILES_SKIP
    EXPECT_ERRNO(skip, EBADF);
    auto buf = this_shard::register_buffer(nullptr, 0);
    EXPECT_FALSE(buf) << "register_buffer(nullptr, 0) gave slot " << *buf;
    if (!buf) {
      EXPECT_EQ(buf.error(), errno_code(EINVAL)) << buf.error().message();
    }
    co_return;
  }());
}

// this_shard::register_buf_ring checks the kernel's rules itself — a count
// that is a power of two below 65536, a non-null page-aligned address — and
// says EINVAL for a bad one. EOPNOTSUPP is kept for a kernel that does not
// know buffer rings at all (before 5.19), whose EINVAL would otherwise read
// as a bad argument.
TEST(BadInputEdgeTest, RegisterBufRingWithBadArgumentsIsEinval) {
  Watchdog watchdog;
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([]() -> Task<void> {
    void* mem = ::mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CO_ASSERT_TRUE(mem != MAP_FAILED);
    // The kernel has buffer rings: a valid registration works.
    auto good = this_shard::register_buf_ring(mem, 4);
    CO_ASSERT_TRUE(good);
    EXPECT_TRUE(this_shard::unregister_buf_ring(*good));
    auto three = this_shard::register_buf_ring(mem, 3);
    EXPECT_FALSE(three);
    if (!three) {
      EXPECT_EQ(three.error(), errno_code(EINVAL)) << three.error().message();
    }
    auto unaligned =
        this_shard::register_buf_ring(static_cast<char*>(mem) + 8, 4);
    EXPECT_FALSE(unaligned);
    if (!unaligned) {
      EXPECT_EQ(unaligned.error(), errno_code(EINVAL))
          << unaligned.error().message();
    }
    EXPECT_ERRNO(this_shard::register_buf_ring(mem, 0), EINVAL);
    EXPECT_ERRNO(this_shard::register_buf_ring(mem, 65536), EINVAL);
    EXPECT_ERRNO(this_shard::register_buf_ring(nullptr, 4), EINVAL);
    ::munmap(mem, 2 * 4096);
  }());
}

// A path with an embedded NUL is refused with EINVAL before the kernel sees
// it: the kernel reads a path only up to the NUL, so "victim\0.bak" would
// name "victim". The fs calls say why in the message; the ops themselves
// (OpenAt, UnlinkAt, ...) fail the same way, with nothing done.
TEST(BadInputEdgeTest, PathWithAnEmbeddedNulIsRefused) {
  Watchdog watchdog;
  Env env;
  ASSERT_TRUE(env.ok);
  Runtime rt(RuntimeOptions{.shards = 1});
  rt.block_on([](Env& e) -> Task<void> {
    const std::string with_nul = e.file + std::string("\0.bak", 5);
    auto f = co_await fs::File::open(with_nul);
    EXPECT_FALSE(f) << "opened " << e.file << " for a path that names "
                    << e.file << "\\0.bak";
    if (!f) {
      EXPECT_EQ(f.error().code, errno_code(EINVAL));
      EXPECT_EQ(f.error().path, with_nul);
      EXPECT_NE(f.error().message().find("NUL"), std::string::npos)
          << f.error().message();
      EXPECT_NE(f.error().message().find("\\0.bak"), std::string::npos)
          << f.error().message();
    }
    auto rm = co_await fs::remove_file(with_nul);
    EXPECT_FALSE(rm) << "removed " << e.file;
    EXPECT_ERRNO(rm, EINVAL);
    auto created = co_await fs::File::create(with_nul);
    EXPECT_ERRNO(created, EINVAL);
    auto bytes = co_await fs::read(with_nul);
    EXPECT_ERRNO(bytes, EINVAL);
    auto text = co_await fs::read_to_string(with_nul);
    EXPECT_ERRNO(text, EINVAL);
    auto written = co_await fs::write(with_nul, std::string("x"));
    EXPECT_ERRNO(written, EINVAL);
    auto meta = co_await fs::metadata(with_nul);
    EXPECT_ERRNO(meta, EINVAL);
    auto link_meta = co_await fs::symlink_metadata(with_nul);
    EXPECT_ERRNO(link_meta, EINVAL);
    const std::string x_nul_y = e.dir + std::string("/x\0y", 4);
    auto renamed_from = co_await fs::rename(with_nul, e.dir + "/renamed");
    EXPECT_ERRNO(renamed_from, EINVAL);
    auto renamed_to = co_await fs::rename(e.file, x_nul_y);
    EXPECT_ERRNO(renamed_to, EINVAL);
    if (!renamed_to) {
      EXPECT_NE(renamed_to.error().message().find("new path"),
                std::string::npos)
          << renamed_to.error().message();
    }
    auto linked = co_await fs::hard_link(e.file, x_nul_y);
    EXPECT_ERRNO(linked, EINVAL);
    auto symlinked = co_await fs::symlink(with_nul, e.dir + "/link");
    EXPECT_ERRNO(symlinked, EINVAL);
    const std::string sub_with_nul = e.subdir + std::string("\0x", 2);
    auto rmdir = co_await fs::remove_dir(sub_with_nul);
    EXPECT_ERRNO(rmdir, EINVAL);
    auto mkdir = co_await fs::create_dir(e.dir + std::string("/new\0", 5));
    EXPECT_ERRNO(mkdir, EINVAL);
    // The ops refuse it too: EINVAL from the kernel, which acts on nothing.
    auto unlink_op = co_await submit(UnlinkAt(AT_FDCWD, with_nul));
    EXPECT_ERRNO(unlink_op, EINVAL);
    auto open_op =
        co_await submit(OpenAt(AT_FDCWD, with_nul, O_RDWR | O_TRUNC));
    EXPECT_ERRNO(open_op, EINVAL);
    auto rmdir_op =
        co_await submit(UnlinkAt(AT_FDCWD, sub_with_nul, AT_REMOVEDIR));
    EXPECT_ERRNO(rmdir_op, EINVAL);
    // As the failed link of a chain, a refused op cancels the rest.
    auto [first, second] = co_await chain(OpenAt(AT_FDCWD, with_nul, O_RDONLY),
                                          UnlinkAt(AT_FDCWD, e.file));
    EXPECT_ERRNO(first, EINVAL);
    EXPECT_ERRNO(second, ECANCELED);
    struct stat st {};
    EXPECT_EQ(::stat(e.file.c_str(), &st), 0) << e.file << " is gone";
    EXPECT_EQ(st.st_size, static_cast<off_t>(Env::kContent.size()))
        << e.file << " was truncated";
    EXPECT_EQ(::stat(e.subdir.c_str(), &st), 0) << e.subdir << " is gone";
    EXPECT_NE(::stat((e.dir + "/renamed").c_str(), &st), 0);
    EXPECT_NE(::stat((e.dir + "/x").c_str(), &st), 0);
    EXPECT_NE(::stat((e.dir + "/link").c_str(), &st), 0);
    EXPECT_NE(::stat((e.dir + "/new").c_str(), &st), 0);
  }(env));
}

}  // namespace
}  // namespace shardio
