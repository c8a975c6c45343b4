// Tests for the file ops of ops/file.h beyond OpenAt/Read/Write/Close
// (file_test.cc): Readv/Writev, ReadFixed/WriteFixed with a BufferPool,
// registered files, Fsync, SyncFileRange, Fallocate, Fadvise, Madvise, O_DIRECT
// reads with AlignedBuffer, the kMaxIoChunk clamp, the EOPNOTSUPP mapping for
// ops that name their opcode, and the lifetime of buffers whose awaiting
// coroutine is destroyed while the op is in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "shardio/batch.h"
#include "shardio/buffer.h"
#include "shardio/buffer_pool.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Eager;
using test::Pipe;
using test::PipeWatchdog;

constexpr int kMaxYields = 100000;

// ---------------------------------------------------------------------------
// Buffers and ops made for these tests.

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

// Claims to be 3 GiB long; only its address is real. For prepare() only.
struct HugeBuffer {
  char* data() noexcept { return storage.data(); }
  std::size_t size() const noexcept { return std::size_t{3} << 30; }
  std::array<char, 16> storage{};
};
static_assert(OwnedBuffer<HugeBuffer>);

// A registered-buffer handle that claims to be 3 GiB long, at slot 7.
struct HugeRegisteredBuffer {
  void* data() noexcept { return storage.data(); }
  std::size_t size() const noexcept { return std::size_t{3} << 30; }
  unsigned slot() const noexcept { return 7; }
  std::array<char, 16> storage{};
};
static_assert(RegisteredBuffer<HugeRegisteredBuffer>);

// An opcode no kernel has. Naming it in kOpcode asks for EOPNOTSUPP.
inline constexpr uint8_t kFutureOpcode = 250;

struct FutureOp {
  static constexpr uint8_t kOpcode = kFutureOpcode;
  void prepare(io_uring_sqe& sqe) noexcept {
    sqe.opcode = kOpcode;
    sqe.fd = -1;
  }
  Result<void> complete(const io_uring_cqe& cqe) noexcept {
    return void_result_from_res(cqe.res);
  }
};
static_assert(Operation<FutureOp>);

// The same SQE from an op that does not name its opcode: the kernel's EINVAL
// comes through as it is.
struct AnonymousFutureOp {
  void prepare(io_uring_sqe& sqe) noexcept {
    sqe.opcode = kFutureOpcode;
    sqe.fd = -1;
  }
  Result<void> complete(const io_uring_cqe& cqe) noexcept {
    return void_result_from_res(cqe.res);
  }
};
static_assert(Operation<AnonymousFutureOp>);

struct PlainNop {
  static constexpr uint8_t kOpcode = IORING_OP_NOP;
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  Result<void> complete(const io_uring_cqe& cqe) noexcept {
    return void_result_from_res(cqe.res);
  }
};

static_assert(Operation<Readv<std::vector<char>>>);
static_assert(Operation<Writev<std::string>>);
static_assert(Operation<ReadFixed<FixedBuffer>>);
static_assert(Operation<WriteFixed<FixedBuffer>>);
static_assert(Operation<Read<AlignedBuffer>>);
static_assert(Operation<Fsync>);
static_assert(Operation<SyncFileRange>);
static_assert(Operation<Fallocate>);
static_assert(Operation<Fadvise>);
static_assert(Operation<Madvise>);

// ---------------------------------------------------------------------------
// Scaffolding.

std::string errno_text(int err) { return errno_code(err).message(); }

// Yields until this shard has at most `n` ops in flight (false if that never
// happens within kMaxYields turns).
Task<bool> wait_for_in_flight_at_most(uint64_t n) {
  for (int i = 0; i < kMaxYields; ++i) {
    if (this_shard::counters().ops_in_flight <= n) co_return true;
    co_await this_shard::yield();
  }
  co_return this_shard::counters().ops_in_flight <= n;
}

// What a test body running on the shard reports when the kernel or the file
// system cannot run it.
struct Outcome {
  std::string skip;  // non-empty: the reason to skip
};

// Each test gets its own directory under the test temp dir and a runtime.
class FileOpsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "file_ops_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const char* name) const { return dir_ + "/" + name; }

  // Creates `name` holding `content` with plain syscalls; returns an O_RDWR
  // fd (the caller closes it), or -1 after a failed assertion.
  int make_file(const char* name, const std::string& content) {
    const int fd = ::open(path(name).c_str(),
                          O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    if (fd < 0) return -1;
    EXPECT_EQ(::pwrite(fd, content.data(), content.size(), 0),
              static_cast<ssize_t>(content.size()));
    return fd;
  }

  static std::string read_all(int fd, std::size_t n, off_t offset = 0) {
    std::string out(n, '\0');
    const ssize_t got = ::pread(fd, out.data(), n, offset);
    out.resize(got < 0 ? 0 : static_cast<std::size_t>(got));
    return out;
  }

  static struct stat fstat_of(int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0) << std::strerror(errno);
    return st;
  }

  std::string dir_;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

// ---------------------------------------------------------------------------
// Readv / Writev

TEST_F(FileOpsTest, ReadvFillsBuffersInOrder) {
  const int fd = make_file("ten", "abcdefghij");
  ASSERT_GE(fd, 0);
  rt_.block_on([](int fd) -> Task<void> {
    std::vector<std::vector<char>> bufs;
    bufs.emplace_back(3, '?');
    bufs.emplace_back(4, '?');
    bufs.emplace_back(5, '?');
    std::vector<const char*> addrs;
    for (const auto& b : bufs) addrs.push_back(b.data());

    Readv<std::vector<char>> op(fd, std::move(bufs), 0);
    auto [n, back] = co_await submit(std::move(op));
    EXPECT_EQ(n.value_or(0), 10u) << n.error().message();
    EXPECT_EQ(back.size(), 3u);
    if (back.size() != 3) co_return;
    EXPECT_EQ(std::string(back[0].begin(), back[0].end()), "abc");
    EXPECT_EQ(std::string(back[1].begin(), back[1].end()), "defg");
    EXPECT_EQ(std::string(back[2].begin(), back[2].end()), "hij??")
        << "the last buffer is filled only as far as the file goes";
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(back[i].data(), addrs[i]) << "buffer " << i << " came back";
    }

    // At an offset, and at the file position (which it then advances).
    std::vector<std::string> more{std::string(2, '?'), std::string(2, '?')};
    Readv<std::string> at_six(fd, std::move(more), 6);
    auto [n6, six] = co_await submit(std::move(at_six));
    EXPECT_EQ(n6.value_or(0), 4u);
    EXPECT_EQ(six.at(0), "gh");
    EXPECT_EQ(six.at(1), "ij");

    std::vector<std::string> cur{std::string(1, '?'), std::string(3, '?')};
    Readv<std::string> at_pos(fd, std::move(cur));
    auto [np, pos] = co_await submit(std::move(at_pos));
    EXPECT_EQ(np.value_or(0), 4u);
    EXPECT_EQ(pos.at(0), "a");
    EXPECT_EQ(pos.at(1), "bcd");
  }(fd));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 4);
  ::close(fd);
}

TEST_F(FileOpsTest, WritevWritesBuffersInOrder) {
  const int fd = make_file("out", "..");
  ASSERT_GE(fd, 0);
  rt_.block_on([](int fd) -> Task<void> {
    std::vector<std::vector<char>> bufs;
    for (const char* s : {"12", "345", "6789"}) {
      bufs.emplace_back(s, s + std::strlen(s));
    }
    std::vector<const char*> addrs;
    for (const auto& b : bufs) addrs.push_back(b.data());

    Writev<std::vector<char>> op(fd, std::move(bufs), 2);
    auto [n, back] = co_await submit(std::move(op));
    EXPECT_EQ(n.value_or(0), 9u) << n.error().message();
    EXPECT_EQ(back.size(), 3u);
    for (std::size_t i = 0; i < back.size() && i < 3; ++i) {
      EXPECT_EQ(back[i].data(), addrs[i]) << "buffer " << i << " came back";
    }
    EXPECT_EQ(std::string(back.at(2).begin(), back.at(2).end()), "6789")
        << "a write leaves its buffers unchanged";
  }(fd));
  EXPECT_EQ(read_all(fd, 64), "..123456789");
  ::close(fd);
}

// ---------------------------------------------------------------------------
// ReadFixed / WriteFixed with a BufferPool

struct FixedOutcome {
  std::string skip;
  std::size_t buffer_size = 0;
  std::size_t available_at_start = 0;
};

TEST_F(FileOpsTest, FixedBuffersRoundTripThroughTheFile) {
  const int fd = make_file("fixed", "");
  ASSERT_GE(fd, 0);
  const FixedOutcome out = rt_.block_on([](int fd) -> Task<FixedOutcome> {
    FixedOutcome o;
    Result<BufferPool> pool = BufferPool::create(2, 4096);
    if (!pool) {
      o.skip = "BufferPool::create failed: " + pool.error().message();
      co_return o;
    }
    o.buffer_size = pool->buffer_size();
    o.available_at_start = pool->available();

    {
      Result<FixedBuffer> buf = pool->acquire();
      EXPECT_TRUE(buf.has_value()) << buf.error().message();
      if (!buf) co_return o;
      EXPECT_EQ(pool->available(), 1u);
      EXPECT_EQ(buf->size(), buf->capacity()) << "a new buffer is whole";
      EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % 4096, 0u);
      std::memcpy(buf->data(), "fixed-data and more", 19);
      buf->set_size(10);  // only "fixed-data" goes out
      EXPECT_EQ(buf->size(), 10u);
      std::byte* const addr = buf->data();

      WriteFixed<FixedBuffer> w(fd, std::move(*buf), 0);
      auto written = co_await submit(std::move(w));
      EXPECT_EQ(written.res.value_or(0), 10u) << written.res.error().message();
      EXPECT_TRUE(static_cast<bool>(written.buf));
      EXPECT_EQ(written.buf.data(), addr) << "the same buffer came back";
      EXPECT_EQ(pool->available(), 1u) << "held by the result";
    }
    EXPECT_EQ(pool->available(), 2u) << "dropping the result returns it";

    {
      Result<FixedBuffer> buf = pool->acquire();
      EXPECT_TRUE(buf.has_value());
      if (!buf) co_return o;
      std::memset(buf->data(), '?', buf->capacity());
      buf->set_size(4);
      ReadFixed<FixedBuffer> r(fd, std::move(*buf), 0);
      auto got = co_await submit(std::move(r));
      EXPECT_EQ(got.res.value_or(0), 4u) << got.res.error().message();
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.buf.data()), 5),
                "fixe?")
          << "set_size limits how much is read";

      // The len argument limits it too, and the whole buffer reads to EOF.
      got.buf.set_size(got.buf.capacity());
      ReadFixed<FixedBuffer> r6(fd, std::move(got.buf), 4, 3);
      auto six = co_await submit(std::move(r6));
      EXPECT_EQ(six.res.value_or(0), 3u);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(six.buf.data()), 3),
                "d-d");
      ReadFixed<FixedBuffer> whole(fd, std::move(six.buf), 0);
      auto all = co_await submit(std::move(whole));
      EXPECT_EQ(all.res.value_or(0), 10u) << "a short read at end of file";
      EXPECT_EQ(pool->available(), 1u);
    }
    EXPECT_EQ(pool->available(), 2u);
    co_return o;
  }(fd));
  if (!out.skip.empty()) {
    ::close(fd);
    GTEST_SKIP() << out.skip;
  }
  EXPECT_EQ(out.available_at_start, 2u);
  EXPECT_EQ(out.buffer_size, 4096u);
  EXPECT_EQ(fstat_of(fd).st_size, 10) << "set_size limited the write";
  EXPECT_EQ(read_all(fd, 64), "fixed-data");
  ::close(fd);
}

TEST_F(FileOpsTest, FixedBufferThroughARegisteredFile) {
  const int fd = make_file("both_fixed", "");
  ASSERT_GE(fd, 0);
  const std::string skip = rt_.block_on([](int fd) -> Task<std::string> {
    Result<BufferPool> pool = BufferPool::create(1, 4096);
    if (!pool) co_return "BufferPool::create failed: " + pool.error().message();
    Result<unsigned> slot = this_shard::register_file(fd);
    if (!slot) co_return "register_file failed: " + slot.error().message();
    Result<FixedBuffer> buf = pool->acquire();
    EXPECT_TRUE(buf.has_value());
    if (!buf) co_return "";
    std::memcpy(buf->data(), "both registered", 15);
    buf->set_size(15);
    WriteFixed<FixedBuffer> w(Fd::fixed(*slot), std::move(*buf), 0);
    auto written = co_await submit(std::move(w));
    EXPECT_EQ(written.res.value_or(0), 15u) << written.res.error().message();
    std::memset(written.buf.data(), '?', 15);
    ReadFixed<FixedBuffer> r(Fd::fixed(*slot), std::move(written.buf), 5, 10);
    auto got = co_await submit(std::move(r));
    EXPECT_EQ(got.res.value_or(0), 10u) << got.res.error().message();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.buf.data()), 10),
              "registered");
    EXPECT_TRUE(this_shard::unregister_file(*slot).has_value());
    co_return "";
  }(fd));
  if (!skip.empty()) {
    ::close(fd);
    GTEST_SKIP() << skip;
  }
  EXPECT_EQ(read_all(fd, 64), "both registered");
  ::close(fd);
}

TEST_F(FileOpsTest, FixedBufferSetSizeIsCappedAtCapacity) {
  const std::string skip = rt_.block_on([]() -> Task<std::string> {
    Result<BufferPool> pool = BufferPool::create(1, 100);
    if (!pool) co_return "BufferPool::create failed: " + pool.error().message();
    EXPECT_EQ(pool->buffer_size(), 4096u) << "sizes round up to a page";
    Result<FixedBuffer> buf = pool->acquire();
    EXPECT_TRUE(buf.has_value());
    if (!buf) co_return "";
    buf->set_size(std::size_t{1} << 20);
    EXPECT_EQ(buf->size(), buf->capacity());
    Result<FixedBuffer> none = pool->acquire();
    EXPECT_FALSE(none.has_value());
    EXPECT_EQ(none.error(), errno_code(ENOBUFS));
    co_return "";
  }());
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// ---------------------------------------------------------------------------
// Registered files

TEST_F(FileOpsTest, RegisteredFileSlotWorksForReadWriteAndFsync) {
  const int fd = make_file("registered", "");
  ASSERT_GE(fd, 0);
  const std::string skip = rt_.block_on([](int fd) -> Task<std::string> {
    Result<unsigned> slot = this_shard::register_file(fd);
    if (!slot) co_return "register_file failed: " + slot.error().message();
    const Fd fixed = Fd::fixed(*slot);

    auto w = co_await submit(Write(fixed, std::string("via a slot"), 0));
    EXPECT_EQ(w.res.value_or(0), 10u) << w.res.error().message();
    auto r = co_await submit(Read(fixed, std::string(4, '?'), 4));
    EXPECT_EQ(r.res.value_or(0), 4u) << r.res.error().message();
    EXPECT_EQ(r.buf, "a sl");
    Result<void> synced = co_await submit(Fsync(fixed));
    EXPECT_TRUE(synced.has_value()) << synced.error().message();
    Result<void> dsynced = co_await submit(Fsync(fixed, true));
    EXPECT_TRUE(dsynced.has_value()) << dsynced.error().message();

    Result<void> gone = this_shard::unregister_file(*slot);
    EXPECT_TRUE(gone.has_value()) << gone.error().message();
    auto after = co_await submit(Read(fixed, std::string(4, '?'), 0));
    EXPECT_FALSE(after.res.has_value()) << "read " << after.res.value_or(0);
    EXPECT_EQ(after.res.error(), errno_code(EBADF));
    EXPECT_EQ(after.buf, "????");
    co_return "";
  }(fd));
  if (!skip.empty()) {
    ::close(fd);
    GTEST_SKIP() << skip;
  }
  EXPECT_EQ(read_all(fd, 64), "via a slot") << "the write reached the file";
  ::close(fd);
}

TEST_F(FileOpsTest, ARegisteredFileOutlivesItsFd) {
  const int fd = make_file("outlives", "still here");
  ASSERT_GE(fd, 0);
  const std::string got = rt_.block_on([](int fd) -> Task<std::string> {
    Result<unsigned> slot = this_shard::register_file(fd);
    if (!slot) co_return "register_file: " + slot.error().message();
    ::close(fd);  // the table holds its own reference to the file
    auto r = co_await submit(Read(Fd::fixed(*slot), std::string(10, '?'), 0));
    (void)this_shard::unregister_file(*slot);
    co_return r.res ? r.buf : r.res.error().message();
  }(fd));
  EXPECT_EQ(got, "still here");
}

// Unregistering a slot that is already free must not put it on the free list
// a second time: two later registrations would then share one slot, and the
// second would silently replace the first's file.
TEST_F(FileOpsTest, UnregisteringAFileSlotTwiceDoesNotHandItOutTwice) {
  const int a = make_file("a", "file a");
  const int b = make_file("b", "file b");
  const int c = make_file("c", "file c");
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_GE(c, 0);
  struct Res {
    std::string skip;
    Result<void> second_unregister;
    unsigned slot_b = 0;
    unsigned slot_c = 0;
    std::string via_b;
    std::string via_c;
  };
  const Res res = rt_.block_on([](int a, int b, int c) -> Task<Res> {
    Res r;
    Result<unsigned> sa = this_shard::register_file(a);
    if (!sa) {
      r.skip = "register_file: " + sa.error().message();
      co_return r;
    }
    EXPECT_TRUE(this_shard::unregister_file(*sa).has_value());
    r.second_unregister = this_shard::unregister_file(*sa);
    Result<unsigned> sb = this_shard::register_file(b);
    Result<unsigned> sc = this_shard::register_file(c);
    EXPECT_TRUE(sb.has_value());
    EXPECT_TRUE(sc.has_value());
    if (!sb || !sc) co_return r;
    r.slot_b = *sb;
    r.slot_c = *sc;
    auto rb = co_await submit(Read(Fd::fixed(*sb), std::string(6, '?'), 0));
    auto rc = co_await submit(Read(Fd::fixed(*sc), std::string(6, '?'), 0));
    r.via_b = rb.buf;
    r.via_c = rc.buf;
    (void)this_shard::unregister_file(*sb);
    if (*sc != *sb) (void)this_shard::unregister_file(*sc);
    co_return r;
  }(a, b, c));
  for (int fd : {a, b, c}) ::close(fd);
  if (!res.skip.empty()) GTEST_SKIP() << res.skip;
  EXPECT_NE(res.slot_b, res.slot_c)
      << "two registered files share slot " << res.slot_b
      << " (the second unregister_file of a free slot returned "
      << (res.second_unregister ? "success"
                                : res.second_unregister.error().message())
      << ")";
  EXPECT_EQ(res.via_b, "file b");
  EXPECT_EQ(res.via_c, "file c");
}

// The same for registered buffers.
TEST_F(FileOpsTest, UnregisteringABufferSlotTwiceDoesNotHandItOutTwice) {
  struct Res {
    std::string skip;
    Result<void> second_unregister;
    unsigned slot_b = 0;
    unsigned slot_c = 0;
  };
  const Res res = rt_.block_on([]() -> Task<Res> {
    Res r;
    AlignedBuffer mem(3 * 4096);
    Result<unsigned> sa = this_shard::register_buffer(mem.data(), 4096);
    if (!sa) {
      r.skip = "register_buffer: " + sa.error().message();
      co_return r;
    }
    EXPECT_TRUE(this_shard::unregister_buffer(*sa).has_value());
    r.second_unregister = this_shard::unregister_buffer(*sa);
    Result<unsigned> sb = this_shard::register_buffer(mem.data() + 4096, 4096);
    Result<unsigned> sc =
        this_shard::register_buffer(mem.data() + 2 * 4096, 4096);
    EXPECT_TRUE(sb.has_value());
    EXPECT_TRUE(sc.has_value());
    if (!sb || !sc) co_return r;
    r.slot_b = *sb;
    r.slot_c = *sc;
    (void)this_shard::unregister_buffer(*sb);
    if (*sc != *sb) (void)this_shard::unregister_buffer(*sc);
    co_return r;
  }());
  if (!res.skip.empty()) GTEST_SKIP() << res.skip;
  EXPECT_NE(res.slot_b, res.slot_c)
      << "two registered buffers share slot " << res.slot_b
      << " (the second unregister_buffer of a free slot returned "
      << (res.second_unregister ? "success"
                                : res.second_unregister.error().message())
      << ")";
}

TEST_F(FileOpsTest, UnregisteringAnUnknownSlotFails) {
  rt_.block_on([]() -> Task<void> {
    Result<void> r = this_shard::unregister_file(1u << 30);
    EXPECT_FALSE(r.has_value());
    co_return;
  }());
}

// ---------------------------------------------------------------------------
// Fsync, SyncFileRange

TEST_F(FileOpsTest, FsyncFullAndDatasyncSucceed) {
  const int fd = make_file("sync", "some data to sync");
  ASSERT_GE(fd, 0);
  rt_.block_on([](int fd) -> Task<void> {
    Result<void> full = co_await submit(Fsync(fd));
    EXPECT_TRUE(full.has_value()) << full.error().message();
    Result<void> data = co_await submit(Fsync(fd, /*datasync=*/true));
    EXPECT_TRUE(data.has_value()) << data.error().message();
    Result<void> bad = co_await submit(Fsync(-1));
    EXPECT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), errno_code(EBADF));
  }(fd));
  ::close(fd);
}

TEST_F(FileOpsTest, SyncFileRangeSucceedsOnAFileAndFailsOnAPipe) {
  const int fd = make_file("range", std::string(8192, 'r'));
  ASSERT_GE(fd, 0);
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  rt_.block_on([](int fd, int pipe_fd) -> Task<void> {
    Result<void> r = co_await submit(
        SyncFileRange(fd, 0, 8192,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER));
    EXPECT_TRUE(r.has_value()) << r.error().message();
    Result<void> whole =
        co_await submit(SyncFileRange(fd, 0, 0, SYNC_FILE_RANGE_WRITE));
    EXPECT_TRUE(whole.has_value()) << whole.error().message();
    Result<void> on_pipe =
        co_await submit(SyncFileRange(pipe_fd, 0, 0, SYNC_FILE_RANGE_WRITE));
    EXPECT_FALSE(on_pipe.has_value());
    EXPECT_EQ(on_pipe.error(), errno_code(ESPIPE));
  }(fd, pipe.write_fd()));
  ::close(fd);
}

// ---------------------------------------------------------------------------
// Fallocate

TEST_F(FileOpsTest, FallocateGrowsTheFileUnlessKeepSize) {
  const int fd = make_file("falloc", "");
  ASSERT_GE(fd, 0);
  constexpr uint64_t kOffset = 4096;
  constexpr uint64_t kLen = 64 * 1024;
  struct Res {
    Result<void> grow;
    Result<void> keep;
    struct stat after_grow {};
    struct stat after_keep {};
  };
  const Res res = rt_.block_on([](int fd) -> Task<Res> {
    Res r;
    r.grow = co_await submit(Fallocate(fd, 0, kOffset, kLen));
    ::fstat(fd, &r.after_grow);
    if (!r.grow) co_return r;
    r.keep = co_await submit(Fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, kLen));
    ::fstat(fd, &r.after_keep);
    co_return r;
  }(fd));
  ::close(fd);
  if (!res.grow && res.grow.error() == errno_code(EOPNOTSUPP)) {
    GTEST_SKIP() << "the file system of " << dir_
                 << " does not support fallocate (EOPNOTSUPP)";
  }
  ASSERT_TRUE(res.grow.has_value()) << res.grow.error().message();
  EXPECT_EQ(res.after_grow.st_size, static_cast<off_t>(kOffset + kLen))
      << "the file ends where the allocated range ends";
  EXPECT_GE(res.after_grow.st_blocks * 512, static_cast<blkcnt_t>(kLen))
      << "the range is allocated";

  if (!res.keep && res.keep.error() == errno_code(EOPNOTSUPP)) {
    GTEST_SKIP() << "the file system of " << dir_
                 << " does not support FALLOC_FL_KEEP_SIZE (EOPNOTSUPP)";
  }
  ASSERT_TRUE(res.keep.has_value()) << res.keep.error().message();
  EXPECT_EQ(res.after_keep.st_size, static_cast<off_t>(kOffset + kLen))
      << "FALLOC_FL_KEEP_SIZE keeps the size";
  EXPECT_GT(res.after_keep.st_blocks, res.after_grow.st_blocks)
      << "but allocates past it";
}

// ---------------------------------------------------------------------------
// Fadvise, Madvise

TEST_F(FileOpsTest, FadviseWillneedAndDontneedSucceed) {
  const int fd = make_file("advice", std::string(16384, 'a'));
  ASSERT_GE(fd, 0);
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  rt_.block_on([](int fd, int pipe_fd) -> Task<void> {
    Result<void> will =
        co_await submit(Fadvise(fd, 0, 16384, POSIX_FADV_WILLNEED));
    EXPECT_TRUE(will.has_value()) << will.error().message();
    Result<void> dont = co_await submit(Fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    EXPECT_TRUE(dont.has_value()) << dont.error().message();
    Result<void> on_pipe =
        co_await submit(Fadvise(pipe_fd, 0, 0, POSIX_FADV_WILLNEED));
    EXPECT_FALSE(on_pipe.has_value());
    EXPECT_EQ(on_pipe.error(), errno_code(ESPIPE));
  }(fd, pipe.read_fd()));
  ::close(fd);
}

TEST_F(FileOpsTest, MadviseWillneedOnAMappedFileSucceeds) {
  const long page = ::sysconf(_SC_PAGESIZE);
  ASSERT_GT(page, 0);
  const std::size_t len = 4 * static_cast<std::size_t>(page);
  const int fd = make_file("mapped", std::string(len, 'm'));
  ASSERT_GE(fd, 0);
  void* map = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
  rt_.block_on([](void* map, std::size_t len) -> Task<void> {
    Result<void> r = co_await submit(
        Madvise(map, static_cast<uint32_t>(len), MADV_WILLNEED));
    EXPECT_TRUE(r.has_value()) << r.error().message();
    // madvise(2) wants a page-aligned start: the kernel's EINVAL comes
    // through (the opcode exists, so it is not turned into EOPNOTSUPP).
    Result<void> bad = co_await submit(
        Madvise(static_cast<char*>(map) + 1, 100, MADV_WILLNEED));
    EXPECT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), errno_code(EINVAL));
  }(map, len));
  EXPECT_EQ(static_cast<const char*>(map)[len - 1], 'm');
  ::munmap(map, len);
  ::close(fd);
}

TEST_F(FileOpsTest, MadviseDontneedDropsPrivateAnonymousPages) {
  const long page = ::sysconf(_SC_PAGESIZE);
  ASSERT_GT(page, 0);
  const std::size_t len = 2 * static_cast<std::size_t>(page);
  void* map = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
  auto* bytes = static_cast<volatile char*>(map);
  bytes[0] = 'x';
  bytes[len - 1] = 'y';
  const Result<void> r =
      rt_.block_on([](void* map, std::size_t len) -> Task<Result<void>> {
        co_return co_await submit(
            Madvise(map, static_cast<uint32_t>(len), MADV_DONTNEED));
      }(map, len));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(bytes[0], '\0') << "MADV_DONTNEED reached the kernel";
  EXPECT_EQ(bytes[len - 1], '\0');
  ::munmap(map, len);
}

// ---------------------------------------------------------------------------
// O_DIRECT with AlignedBuffer

TEST(AlignedBufferTest, IsAlignedZeroedAndMovable) {
  AlignedBuffer a(8192, 4096);
  ASSERT_NE(a.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 4096, 0u);
  EXPECT_EQ(a.size(), 8192u);
  EXPECT_EQ(a.alignment(), 4096u);
  EXPECT_TRUE(std::all_of(a.data(), a.data() + a.size(),
                          [](std::byte b) { return b == std::byte{0}; }));
  std::byte* const p = a.data();
  AlignedBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.size(), 0u);
  AlignedBuffer c(512, 512);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.data()) % 512, 0u);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.alignment(), 4096u);
  AlignedBuffer empty;
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.size(), 0u);
}

// A file created in `dir` and opened again with O_DIRECT.
struct DirectFile {
  std::string path;
  int fd = -1;
};

// Writes `content` into a new file under `dir`, then opens it O_DIRECT.
// Returns fd -1 (and why, in `why`) when the file system refuses O_DIRECT.
DirectFile open_direct(const std::string& dir, const std::string& content,
                       std::string* why) {
  DirectFile f;
  f.path = dir + (dir.empty() || dir.back() != '/' ? "/" : "") +
           "file_ops_direct_XXXXXX";
  const int wfd = ::mkstemp(f.path.data());
  if (wfd < 0) {
    *why += dir + ": mkstemp: " + errno_text(errno) + "; ";
    return {};
  }
  const bool wrote = ::write(wfd, content.data(), content.size()) ==
                         static_cast<ssize_t>(content.size()) &&
                     ::fsync(wfd) == 0;
  ::close(wfd);
  if (!wrote) {
    *why += dir + ": write: " + errno_text(errno) + "; ";
    ::unlink(f.path.c_str());
    return {};
  }
  f.fd = ::open(f.path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (f.fd < 0) {
    *why += dir + ": open(O_DIRECT): " + errno_text(errno) + "; ";
    ::unlink(f.path.c_str());
    return {};
  }
  return f;
}

TEST_F(FileOpsTest, ODirectReadIntoAnAlignedBuffer) {
  std::string content(3 * 4096, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) {
    content[i] = static_cast<char>('a' + (i / 4096) + (i % 7));
  }
  std::string why;
  DirectFile f;
  for (const std::string& dir : {testing::TempDir(), std::string("/var/tmp")}) {
    f = open_direct(dir, content, &why);
    if (f.fd >= 0) break;
  }
  if (f.fd < 0) {
    GTEST_SKIP() << "no temp directory accepts O_DIRECT: " << why;
  }

  struct Res {
    Result<uint32_t> n;
    std::string got;
    bool aligned = false;
  };
  const Res res = rt_.block_on([](int fd) -> Task<Res> {
    Read<AlignedBuffer> op(fd, AlignedBuffer(4096, 4096), 4096);
    auto [n, buf] = co_await submit(std::move(op));
    Res r{n, std::string(reinterpret_cast<const char*>(buf.data()), buf.size()),
          reinterpret_cast<uintptr_t>(buf.data()) % 4096 == 0};
    co_return r;
  }(f.fd));
  ::close(f.fd);
  ::unlink(f.path.c_str());

  if (!res.n && res.n.error() == errno_code(EINVAL)) {
    GTEST_SKIP() << "the file system refused an aligned 4 KiB O_DIRECT read "
                    "(EINVAL): its logical block size may be larger";
  }
  ASSERT_TRUE(res.n.has_value()) << res.n.error().message();
  EXPECT_EQ(*res.n, 4096u);
  EXPECT_TRUE(res.aligned);
  EXPECT_EQ(res.got, content.substr(4096, 4096));
}

// ---------------------------------------------------------------------------
// The kMaxIoChunk clamp (prepare() only: no I/O)

TEST(FileOpsPrepareTest, ReadsAndWritesLongerThanMaxIoChunkAreClamped) {
  static_assert(kMaxIoChunk == 0x7ffff000);
  {
    Read<HugeBuffer> op(5, HugeBuffer{}, 0);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_READ);
    EXPECT_EQ(sqe.fd, 5);
    EXPECT_EQ(sqe.len, kMaxIoChunk);
    EXPECT_EQ(sqe.addr, reinterpret_cast<uint64_t>(op.buf.data()));
  }
  {
    Write<HugeBuffer> op(5, HugeBuffer{}, 0);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_WRITE);
    EXPECT_EQ(sqe.len, kMaxIoChunk);
  }
  {
    ReadFixed<HugeRegisteredBuffer> op(5, HugeRegisteredBuffer{}, 0);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_READ_FIXED);
    EXPECT_EQ(sqe.len, kMaxIoChunk);
    EXPECT_EQ(sqe.buf_index, 7u);
  }
  {
    WriteFixed<HugeRegisteredBuffer> op(5, HugeRegisteredBuffer{}, 0);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_WRITE_FIXED);
    EXPECT_EQ(sqe.len, kMaxIoChunk);
  }
  {
    // A len argument beyond the chunk is clamped as well...
    ReadFixed<HugeRegisteredBuffer> op(5, HugeRegisteredBuffer{}, 0,
                                       std::size_t{1} << 32);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.len, kMaxIoChunk);
  }
  {
    // ...and a shorter one is kept.
    ReadFixed<HugeRegisteredBuffer> op(5, HugeRegisteredBuffer{}, 0, 100);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.len, 100u);
  }
}

TEST(FileOpsPrepareTest, ShortBuffersKeepTheirLengthAndFixedFdsTheirFlag) {
  Read<std::string> op(Fd::fixed(3), std::string(10, '?'), kCurrentPosition);
  io_uring_sqe sqe{};
  op.prepare(sqe);
  EXPECT_EQ(sqe.len, 10u);
  EXPECT_EQ(sqe.fd, 3);
  EXPECT_NE(sqe.flags & IOSQE_FIXED_FILE, 0);
  EXPECT_EQ(sqe.off, kCurrentPosition);

  Fsync sync(Fd::fixed(4), true);
  io_uring_sqe sync_sqe{};
  sync.prepare(sync_sqe);
  EXPECT_EQ(sync_sqe.opcode, IORING_OP_FSYNC);
  EXPECT_NE(sync_sqe.flags & IOSQE_FIXED_FILE, 0);
  EXPECT_EQ(sync_sqe.fsync_flags, IORING_FSYNC_DATASYNC);

  Fsync plain(6);
  io_uring_sqe plain_sqe{};
  plain.prepare(plain_sqe);
  EXPECT_EQ(plain_sqe.flags & IOSQE_FIXED_FILE, 0);
  EXPECT_EQ(plain_sqe.fsync_flags, 0u);
}

TEST(FileOpsPrepareTest, OffsetsLengthsAndAdviceLandInTheirSqeFields) {
  int page = 0;
  {
    SyncFileRange op(3, 1000, 200, SYNC_FILE_RANGE_WRITE);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_SYNC_FILE_RANGE);
    EXPECT_EQ(sqe.fd, 3);
    EXPECT_EQ(sqe.off, 1000u);
    EXPECT_EQ(sqe.len, 200u);
    EXPECT_EQ(sqe.sync_range_flags, unsigned{SYNC_FILE_RANGE_WRITE});
  }
  {
    Fadvise op(3, 1000, 200, POSIX_FADV_DONTNEED);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_FADVISE);
    EXPECT_EQ(sqe.off, 1000u);
    EXPECT_EQ(sqe.len, 200u);
    EXPECT_EQ(sqe.fadvise_advice, unsigned{POSIX_FADV_DONTNEED});
  }
  {
    Fallocate op(3, FALLOC_FL_KEEP_SIZE, 1000, 200);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_FALLOCATE);
    EXPECT_EQ(sqe.off, 1000u);                          // offset
    EXPECT_EQ(sqe.addr, 200u);                          // length
    EXPECT_EQ(sqe.len, unsigned{FALLOC_FL_KEEP_SIZE});  // mode
  }
  {
    Madvise op(&page, 200, MADV_WILLNEED);
    io_uring_sqe sqe{};
    op.prepare(sqe);
    EXPECT_EQ(sqe.opcode, IORING_OP_MADVISE);
    EXPECT_EQ(sqe.addr, reinterpret_cast<uint64_t>(&page));
    EXPECT_EQ(sqe.len, 200u);
    EXPECT_EQ(sqe.fadvise_advice, unsigned{MADV_WILLNEED});
  }
}

// ---------------------------------------------------------------------------
// Opcodes the kernel lacks

TEST(FileOpsSupportTest, SupportsReportsTheProbedOpcodes) {
  Runtime rt(RuntimeOptions{.shards = 1});
  struct Res {
    bool read = false;
    bool future = true;
  };
  const Res res = rt.block_on([]() -> Task<Res> {
    co_return Res{this_shard::supports(IORING_OP_READ),
                  this_shard::supports(kFutureOpcode)};
  }());
  EXPECT_TRUE(res.read);
  EXPECT_FALSE(res.future);
}

TEST(FileOpsSupportTest, AnOpNamingAnUnknownOpcodeFailsWithEopnotsupp) {
  Runtime rt(RuntimeOptions{.shards = 1});
  struct Res {
    Result<void> named;
    Result<void> anonymous;
  };
  const Res res = rt.block_on([]() -> Task<Res> {
    Res r;
    r.named = co_await submit(FutureOp{});
    r.anonymous = co_await submit(AnonymousFutureOp{});
    co_return r;
  }());
  EXPECT_FALSE(res.named.has_value());
  EXPECT_EQ(res.named.error(), errno_code(EOPNOTSUPP))
      << res.named.error().message();
  // Without kOpcode the runtime cannot tell, and passes the kernel's EINVAL.
  EXPECT_FALSE(res.anonymous.has_value());
  EXPECT_EQ(res.anonymous.error(), errno_code(EINVAL))
      << res.anonymous.error().message();
}

TEST(FileOpsSupportTest, AnUnknownOpcodeDoesNotHoldUpTheRestOfItsBatch) {
  Runtime rt(RuntimeOptions{.shards = 1});
  struct Res {
    Result<void> before;
    Result<void> future;
    Result<void> after;
    uint64_t in_flight = 1;
  };
  const Res res = rt.block_on([]() -> Task<Res> {
    Res r;
    auto [a, b, c] = co_await batch(PlainNop{}, FutureOp{}, PlainNop{});
    r.before = a;
    r.future = b;
    r.after = c;
    r.in_flight = this_shard::counters().ops_in_flight;
    co_return r;
  }());
  EXPECT_TRUE(res.before.has_value()) << res.before.error().message();
  EXPECT_EQ(res.future.error(), errno_code(EOPNOTSUPP));
  EXPECT_TRUE(res.after.has_value()) << res.after.error().message();
  EXPECT_EQ(res.in_flight, 0u);
}

// ---------------------------------------------------------------------------
// Cancel-safety: the awaiting coroutine is destroyed while the op waits on an
// empty pipe. The op (and its buffers) must live until the final CQE.

Eager await_read(int fd, bool* destroyed) {
  Read<TrackedBuffer> op(fd, TrackedBuffer(16, destroyed));
  auto r = co_await submit(std::move(op));
  ADD_FAILURE() << "a destroyed coroutine was resumed with "
                << r.res.value_or(0);
}

Eager await_readv(int fd, bool* destroyed_a, bool* destroyed_b) {
  std::vector<TrackedBuffer> bufs;
  bufs.reserve(2);
  bufs.emplace_back(8, destroyed_a);
  bufs.emplace_back(8, destroyed_b);
  Readv<TrackedBuffer> op(fd, std::move(bufs));
  auto r = co_await submit(std::move(op));
  ADD_FAILURE() << "a destroyed coroutine was resumed with "
                << r.res.value_or(0);
}

Eager await_read_fixed(int fd, FixedBuffer buf) {
  ReadFixed<FixedBuffer> op(fd, std::move(buf), kCurrentPosition);
  auto r = co_await submit(std::move(op));
  ADD_FAILURE() << "a destroyed coroutine was resumed with "
                << r.res.value_or(0);
}

TEST(FileOpsCancelTest, DestroyedReadKeepsItsBufferUntilTheFinalCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  bool destroyed = false;
  rt.block_on([](int fd, bool* destroyed) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    Eager waiter = await_read(fd, destroyed);
    co_await this_shard::yield();  // the read reaches the kernel
    EXPECT_FALSE(waiter.done());
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight + 1);

    waiter.destroy();
    EXPECT_FALSE(*destroyed) << "freed before the final CQE";
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    const bool drained = co_await wait_for_in_flight_at_most(0);
    EXPECT_TRUE(drained) << "the cancelled read never completed";
    EXPECT_TRUE(*destroyed) << "the record was not released";
  }(pipe.read_fd(), &destroyed));
  EXPECT_TRUE(destroyed);
}

// The coroutine goes away before the shard has even submitted the read: the
// read and its cancel reach the kernel in the same submission.
TEST(FileOpsCancelTest, ReadDestroyedBeforeSubmissionStillWaitsForItsCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  bool destroyed = false;
  rt.block_on([](int fd, bool* destroyed) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    Eager waiter = await_read(fd, destroyed);
    EXPECT_FALSE(waiter.done());
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight + 1);
    waiter.destroy();
    EXPECT_FALSE(*destroyed) << "freed before the final CQE";
    const bool drained = co_await wait_for_in_flight_at_most(0);
    EXPECT_TRUE(drained) << "the cancelled read never completed";
    EXPECT_TRUE(*destroyed) << "the record was not released";
  }(pipe.read_fd(), &destroyed));
  EXPECT_TRUE(destroyed);
  // The cancelled read consumed nothing: a byte written now is still there.
  const char c = 'z';
  ASSERT_EQ(::write(pipe.write_fd(), &c, 1), 1);
  char got = 0;
  EXPECT_EQ(::read(pipe.read_fd(), &got, 1), 1);
  EXPECT_EQ(got, 'z');
}

TEST(FileOpsCancelTest, DestroyedReadvKeepsItsBuffersUntilTheFinalCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  bool destroyed[2] = {false, false};
  rt.block_on([](int fd, bool* destroyed) -> Task<void> {
    const ShardCounters before = this_shard::counters();
    Eager waiter = await_readv(fd, &destroyed[0], &destroyed[1]);
    co_await this_shard::yield();
    EXPECT_FALSE(waiter.done());
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight + 1);

    waiter.destroy();
    EXPECT_FALSE(destroyed[0]) << "freed before the final CQE";
    EXPECT_FALSE(destroyed[1]) << "freed before the final CQE";
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    const bool drained = co_await wait_for_in_flight_at_most(0);
    EXPECT_TRUE(drained) << "the cancelled readv never completed";
    EXPECT_TRUE(destroyed[0]);
    EXPECT_TRUE(destroyed[1]);
  }(pipe.read_fd(), destroyed));
}

TEST(FileOpsCancelTest, DestroyedReadFixedReturnsItsBufferOnlyAfterTheCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  Runtime rt(RuntimeOptions{.shards = 1});
  const std::string skip = rt.block_on([](int fd) -> Task<std::string> {
    Result<BufferPool> pool = BufferPool::create(2, 4096);
    if (!pool) co_return "BufferPool::create failed: " + pool.error().message();
    Result<FixedBuffer> buf = pool->acquire();
    EXPECT_TRUE(buf.has_value());
    if (!buf) co_return "";
    EXPECT_EQ(pool->available(), 1u);

    const ShardCounters before = this_shard::counters();
    Eager waiter = await_read_fixed(fd, std::move(*buf));
    co_await this_shard::yield();
    EXPECT_FALSE(waiter.done());
    EXPECT_EQ(this_shard::counters().ops_in_flight, before.ops_in_flight + 1);

    waiter.destroy();
    EXPECT_EQ(pool->available(), 1u) << "returned before the final CQE";
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    const bool drained = co_await wait_for_in_flight_at_most(0);
    EXPECT_TRUE(drained) << "the cancelled read never completed";
    EXPECT_EQ(pool->available(), 2u) << "the record was not released";
    co_return "";
  }(pipe.read_fd()));
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// Shutting the runtime down with the op still in flight: the runtime cancels
// it and releases the record (and buffer) before closing the ring.
TEST(FileOpsCancelTest, RuntimeStopReleasesAnInFlightReadvBuffer) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  bool destroyed[2] = {false, false};
  {
    Runtime rt(RuntimeOptions{.shards = 1});
    rt.block_on([](int fd, bool* destroyed) -> Task<void> {
      JoinHandle<void> h = spawn([](int fd, bool* d) -> Task<void> {
        std::vector<TrackedBuffer> bufs;
        bufs.emplace_back(8, &d[0]);
        bufs.emplace_back(8, &d[1]);
        Readv<TrackedBuffer> op(fd, std::move(bufs));
        auto r = co_await submit(std::move(op));
        ADD_FAILURE() << "the read completed with " << r.res.value_or(0);
      }(fd, destroyed));
      h.detach();
      for (int i = 0; i < kMaxYields; ++i) {
        if (this_shard::counters().ops_in_flight >= 1) break;
        co_await this_shard::yield();
      }
      EXPECT_EQ(this_shard::counters().ops_in_flight, 1u);
      EXPECT_FALSE(destroyed[0]);
    }(pipe.read_fd(), destroyed));
    EXPECT_FALSE(destroyed[0]) << "the task is still suspended";
    rt.stop();
  }
  EXPECT_TRUE(destroyed[0]);
  EXPECT_TRUE(destroyed[1]);
}

}  // namespace
}  // namespace shardio
