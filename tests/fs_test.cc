// Tests for the file system API (shardio/fs.h): File and its I/O methods,
// OpenOptions, registered files and buffers, O_DIRECT, cancellation, the
// destructor's asynchronous close, and the whole-file and path helpers. Each
// test works in a fresh temporary directory with its own one-shard runtime.
#include "shardio/fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "shardio/buffer.h"
#include "shardio/buffer_pool.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/nop.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Eager;
using test::Pipe;
using test::PipeWatchdog;

constexpr int kMaxYields = 100000;

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string string_of(const std::vector<std::byte>& b, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(b.data()), n);
}

// A pattern that differs from byte to byte and from chunk to chunk.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  }
  return s;
}

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

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Yields until `fd` is closed (or gives up); true once it is.
Task<bool> wait_until_closed(int fd) {
  for (int i = 0; i < kMaxYields; ++i) {
    if (!fd_is_open(fd)) co_return true;
    co_await this_shard::yield();
  }
  co_return !fd_is_open(fd);
}

// An owned buffer that counts live instances, to see when an op lets go.
struct TrackedBuffer {
  TrackedBuffer(std::size_t n, std::atomic<int>* alive)
      : bytes(n, '\0'), alive(alive) {
    alive->fetch_add(1);
  }
  TrackedBuffer(TrackedBuffer&& o) noexcept
      : bytes(std::move(o.bytes)), alive(std::exchange(o.alive, nullptr)) {}
  TrackedBuffer& operator=(TrackedBuffer&&) = delete;
  ~TrackedBuffer() {
    if (alive != nullptr) alive->fetch_sub(1);
  }
  char* data() noexcept { return bytes.data(); }
  std::size_t size() const noexcept { return bytes.size(); }

  std::vector<char> bytes;
  std::atomic<int>* alive;
};
static_assert(OwnedBuffer<TrackedBuffer>);

// A view of memory the test maps itself, claiming any size (see
// ReadAtClampsALengthAboveTheKernelLimit).
struct ClaimedBuffer {
  std::byte* p;
  std::size_t n;
  std::byte* data() noexcept { return p; }
  std::size_t size() const noexcept { return n; }
};
static_assert(OwnedBuffer<ClaimedBuffer>);

void expect_error(const fs::Error& e, int err, const std::string& path) {
  EXPECT_EQ(e.code, errno_code(err)) << e.message();
  EXPECT_EQ(e.path, path);
  EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
}

class FsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "fs_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const char* name) const { return dir_ + "/" + name; }

  // Creates `name` holding `content`, with plain syscalls.
  void make_file(const char* name, const std::string& content) {
    const int fd =
        ::open(path(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    ::close(fd);
  }

  // The contents of `name`, read with plain syscalls.
  std::string slurp(const char* name) const {
    std::string out;
    const int fd = ::open(path(name).c_str(), O_RDONLY);
    if (fd < 0) return "<missing>";
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
  }

  std::string dir_;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

// --- Errors
// -------------------------------------------------------------------

TEST(FsErrorTest, MessageNamesTheOperationAndThePath) {
  const fs::Error e{errno_code(ENOENT), "/x", "open"};
  EXPECT_EQ(e.message(), "open /x: No such file or directory");
  const fs::Error eof{errno_code(ENODATA), "/y", "read",
                      "unexpected end of file"};
  EXPECT_EQ(eof.message(), "read /y: unexpected end of file");
  EXPECT_EQ(fs::Error{errno_code(EBADF)}.message(), "Bad file descriptor");
}

TEST(FsErrorTest, ValueThrowsSystemErrorWithCodeAndPath) {
  const fs::Result<int> r =
      fs::Error{errno_code(ENOENT), "/no/such/file", "open"};
  try {
    (void)r.value();
    ADD_FAILURE() << "value() did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errno_code(ENOENT));
    EXPECT_NE(std::string(e.what()).find("open /no/such/file"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"),
              std::string::npos)
        << e.what();
  }
  const fs::Result<void> v = fs::Error{errno_code(EBADF), "/f", "close"};
  EXPECT_THROW(v.value(), std::system_error);
}

TEST_F(FsTest, OpenMissingFileFailsWithEnoentAndThePath) {
  const std::string p = path("missing");
  auto r = rt_.block_on(fs::File::open(p));
  ASSERT_FALSE(r.has_value());
  expect_error(r.error(), ENOENT, p);
  EXPECT_EQ(r.error().message(), "open " + p + ": No such file or directory");
}

TEST_F(FsTest, OpeningADirectoryForWritingFailsWithEisdir) {
  auto r = rt_.block_on(fs::File::options().write().open(dir_));
  ASSERT_FALSE(r.has_value());
  expect_error(r.error(), EISDIR, dir_);
}

TEST_F(FsTest, CreateNewOnAnExistingFileFailsWithEexist) {
  make_file("exists", "x");
  auto r = rt_.block_on(
      fs::File::options().write().create_new().open(path("exists")));
  ASSERT_FALSE(r.has_value());
  expect_error(r.error(), EEXIST, path("exists"));
  // ...and succeeds where nothing is.
  auto fresh =
      rt_.block_on(fs::File::options().write().create_new().open(path("new")));
  ASSERT_TRUE(fresh.has_value()) << fresh.error().message();
  EXPECT_TRUE(fresh->is_open());
  EXPECT_EQ(slurp("new"), "");
}

// --- OpenOptions
// ----------------------------------------------------------------

TEST(FsOpenOptionsTest, FlagsFollowTheOptions) {
  using fs::OpenOptions;
  EXPECT_EQ(OpenOptions().read().flags(), O_RDONLY);
  EXPECT_EQ(OpenOptions().write().flags(), O_WRONLY);
  EXPECT_EQ(OpenOptions().read().write().flags(), O_RDWR);
  EXPECT_EQ(OpenOptions().append().flags(), O_WRONLY | O_APPEND);
  EXPECT_EQ(OpenOptions().read().append().flags(), O_RDWR | O_APPEND);
  EXPECT_EQ(OpenOptions().write().create().flags(), O_WRONLY | O_CREAT);
  EXPECT_EQ(OpenOptions().write().create().truncate().flags(),
            O_WRONLY | O_CREAT | O_TRUNC);
  EXPECT_EQ(OpenOptions().write().create().truncate().create_new().flags(),
            O_WRONLY | O_CREAT | O_EXCL);
  EXPECT_EQ(OpenOptions().append().create().flags(),
            O_WRONLY | O_APPEND | O_CREAT);
  EXPECT_EQ(OpenOptions().read().direct().flags(), O_RDONLY | O_DIRECT);
  // Custom flags are ORed in, without their access mode.
  EXPECT_EQ(OpenOptions().read().custom_flags(O_NOATIME | O_RDWR).flags(),
            O_RDONLY | O_NOATIME);
  // A later call undoes an earlier one.
  EXPECT_EQ(OpenOptions().read().write().write(false).flags(), O_RDONLY);
  EXPECT_EQ(OpenOptions().mode(0600).creation_mode(), 0600u);
}

TEST(FsOpenOptionsTest, InvalidCombinationsHaveNoFlags) {
  using fs::OpenOptions;
  EXPECT_EQ(OpenOptions().flags(), -1);  // neither read nor write
  EXPECT_EQ(OpenOptions().read().create().flags(), -1);
  EXPECT_EQ(OpenOptions().read().truncate().flags(), -1);
  EXPECT_EQ(OpenOptions().read().create_new().flags(), -1);
  EXPECT_EQ(OpenOptions().append().truncate().flags(), -1);
}

TEST_F(FsTest, InvalidOptionsFailWithEinvalAndThePath) {
  const std::string p = path("never");
  auto r = rt_.block_on(fs::File::options().open(p));
  ASSERT_FALSE(r.has_value());
  expect_error(r.error(), EINVAL, p);
  auto r2 = rt_.block_on(fs::File::options().read().create().open(p));
  ASSERT_FALSE(r2.has_value());
  expect_error(r2.error(), EINVAL, p);
  EXPECT_EQ(slurp("never"), "<missing>") << "nothing may be created";
}

TEST_F(FsTest, OptionsAreCopiedIntoTheTask) {
  // The options object is gone before the task runs.
  Task<fs::Result<fs::File>> t;
  {
    fs::OpenOptions o;
    o.write().create().mode(0640);
    t = o.open(path("moded"));
  }
  auto r = rt_.block_on(std::move(t));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  const mode_t mask = ::umask(0);
  ::umask(mask);
  struct stat st;
  ASSERT_EQ(::stat(path("moded").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~mask) << std::oct << st.st_mode;
}

// --- File I/O
// -----------------------------------------------------------------

TEST_F(FsTest, CreateWriteAtThenOpenReadAtRoundTrip) {
  const std::string p = path("round");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::create(p);
    EXPECT_TRUE(f.has_value()) << f.error().message();
    if (!f) co_return;
    EXPECT_TRUE(f->is_open());
    EXPECT_GE(f->fd(), 0);
    EXPECT_EQ(f->path(), p);
    EXPECT_FALSE(f->is_fixed());

    std::vector<std::byte> hello = bytes_of("hello");
    const std::byte* hello_data = hello.data();
    auto w = co_await f->write_at(std::move(hello), 0);
    EXPECT_EQ(w.res.value_or(0), 5u);
    EXPECT_EQ(w.buf.data(), hello_data) << "the buffer comes back";
    auto w2 = co_await f->write_at(std::string(" world"), 5);
    EXPECT_EQ(w2.res.value_or(0), 6u);
    // A file opened for writing only cannot be read.
    auto bad = co_await f->read_at(std::string(4, '?'), 0);
    EXPECT_FALSE(bad.res.has_value());
    EXPECT_EQ(bad.res.error().code, errno_code(EBADF));
    EXPECT_EQ(bad.res.error().path, p);
    EXPECT_EQ(bad.buf, "????");
    auto c = co_await f->close();
    EXPECT_TRUE(c.has_value()) << c.error().message();
    EXPECT_FALSE(f->is_open());

    auto g = co_await fs::File::open(p);
    EXPECT_TRUE(g.has_value());
    if (!g) co_return;
    auto r = co_await g->read_at(std::vector<char>(5), 6);
    EXPECT_EQ(r.res.value_or(0), 5u);
    EXPECT_EQ(std::string(r.buf.begin(), r.buf.end()), "world");
    auto r2 = co_await g->read_at(std::string(5, '?'), 0);
    EXPECT_EQ(r2.buf, "hello");
    // Opened read-only: writes fail with EBADF and the path.
    auto w3 = co_await g->write_at(std::string("x"), 0);
    EXPECT_FALSE(w3.res.has_value());
    EXPECT_EQ(w3.res.error().code, errno_code(EBADF));
    EXPECT_EQ(w3.res.error().path, p);
  }(p));
  EXPECT_EQ(slurp("round"), "hello world");
}

TEST_F(FsTest, CreateTruncatesAnExistingFile) {
  make_file("long", "a long old content");
  auto r = rt_.block_on([](std::string p) -> Task<fs::Result<void>> {
    auto f = co_await fs::File::create(p);
    if (!f) co_return f.error();
    auto w = co_await f->write_at(std::string("new"), 0);
    if (!w.res) co_return w.res.error();
    co_return co_await f->close();
  }(path("long")));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(slurp("long"), "new");
}

TEST_F(FsTest, ReadAtIsShortAtEndOfFileAndZeroPastIt) {
  make_file("short", "hello");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::open(p);
    if (!f) co_return;
    auto a = co_await f->read_at(std::string(16, '?'), 0);
    EXPECT_EQ(a.res.value_or(99), 5u);
    EXPECT_EQ(a.buf.substr(0, 6), "hello?");
    auto b = co_await f->read_at(std::string(16, '?'), 3);
    EXPECT_EQ(b.res.value_or(99), 2u);
    auto c = co_await f->read_at(std::string(16, '?'), 5);
    EXPECT_EQ(c.res.value_or(99), 0u);
    // A large buffer read far past the end: 0, and the buffer comes back.
    AlignedBuffer big(1 << 20);
    const std::byte* big_data = big.data();
    auto d = co_await f->read_at(std::move(big), uint64_t{1} << 40);
    EXPECT_EQ(d.res.value_or(99), 0u);
    EXPECT_EQ(d.buf.data(), big_data);
    EXPECT_EQ(d.buf.size(), std::size_t{1} << 20);
  }(path("short")));
}

TEST_F(FsTest, ZeroLengthReadAndWriteReturnZero) {
  make_file("zero", "abc");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::options().read().write().open(p);
    EXPECT_TRUE(f.has_value());
    if (!f) co_return;
    auto r = co_await f->read_at(std::string(), 0);
    EXPECT_TRUE(r.res.has_value());
    EXPECT_EQ(r.res.value_or(99), 0u);
    auto w = co_await f->write_at(std::vector<std::byte>(), 1);
    EXPECT_EQ(w.res.value_or(99), 0u);
    auto re = co_await f->read_exact_at(std::string(), 10);
    EXPECT_EQ(re.res.value_or(99), 0u) << "nothing to read, so no EOF error";
    auto wa = co_await f->write_all_at(std::string(), 0);
    EXPECT_EQ(wa.res.value_or(99), 0u);
  }(path("zero")));
  EXPECT_EQ(slurp("zero"), "abc");
}

constexpr std::size_t kClaimed = std::size_t{4} << 30;

TEST_F(FsTest, ReadAtClampsALengthAboveTheKernelLimit) {
  // A buffer claiming 4 GiB: its first page is real, the rest is reserved
  // PROT_NONE address space, so the kernel can never write past the page.
  // Truncated to 32 bits the length would be 0 and the read would return 0;
  // clamped to kMaxIoChunk, the read returns the file's 10 bytes.
  void* region = ::mmap(nullptr, kClaimed, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) {
    GTEST_SKIP() << "cannot reserve 4 GiB of address space: "
                 << std::strerror(errno);
  }
  ASSERT_EQ(::mprotect(region, 4096, PROT_READ | PROT_WRITE), 0);
  make_file("ten", "0123456789");
  const auto n =
      rt_.block_on([](std::string p, std::byte* mem) -> Task<int64_t> {
        auto f = co_await fs::File::open(p);
        if (!f) co_return -1;
        ClaimedBuffer claimed{mem, kClaimed};
        auto r = co_await f->read_at(claimed, 0);
        EXPECT_EQ(r.buf.size(), kClaimed);
        if (!r.res) co_return -r.res.error().code.value();
        co_return static_cast<int64_t>(*r.res);
      }(path("ten"), static_cast<std::byte*>(region)));
  EXPECT_EQ(n, 10);
  EXPECT_EQ(std::memcmp(region, "0123456789", 10), 0);
  ::munmap(region, kClaimed);
}

TEST_F(FsTest, ReadExactAtFillsTheBufferFromAnOffset) {
  const std::string content = pattern(3 * 65536 + 17);
  make_file("exact", content);
  rt_.block_on([](std::string p, std::string content) -> Task<void> {
    auto f = co_await fs::File::open(p);
    if (!f) co_return;
    auto r =
        co_await f->read_exact_at(std::string(content.size() - 100, '?'), 100);
    EXPECT_EQ(r.res.value_or(0), content.size() - 100);
    EXPECT_TRUE(r.buf == content.substr(100));
  }(path("exact"), content));
}

TEST_F(FsTest, ReadExactAtHittingEofFailsWithEnodataAndThePath) {
  make_file("eof", "hello");
  const std::string p = path("eof");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::open(p);
    if (!f) co_return;
    auto r = co_await f->read_exact_at(std::string(10, '?'), 0);
    EXPECT_FALSE(r.res.has_value());
    expect_error(r.res.error(), ENODATA, p);
    EXPECT_EQ(r.res.error().message(),
              "read " + p + ": unexpected end of file");
    EXPECT_EQ(r.buf, "hello?????") << "the bytes read so far are kept";
  }(p));
}

TEST_F(FsTest, ReadExactAtLoopsOverShortReads) {
  // A pipe hands out what it has: the first read returns 3 of 6 bytes and
  // read_exact_at must go on reading.
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  ASSERT_EQ(::write(pipe.write_fd(), "abc", 3), 3);
  const std::string proc = "/proc/self/fd/" + std::to_string(pipe.read_fd());
  const std::string got =
      rt_.block_on([](std::string proc, int write_fd) -> Task<std::string> {
        auto f = co_await fs::File::open(proc);
        EXPECT_TRUE(f.has_value()) << f.error().message();
        if (!f) co_return "";
        const uint64_t base = this_shard::counters().ops_in_flight;
        JoinHandle<fs::IoResult<std::string>> reader =
            spawn(f->read_exact_at(std::string(6, '?'), kCurrentPosition));
        // Wait for the second read (the first returned "abc" at once).
        const bool reached = co_await wait_for_ops_in_flight(base + 1);
        EXPECT_TRUE(reached);
        EXPECT_EQ(::write(write_fd, "def", 3), 3);
        fs::IoResult<std::string> r = co_await reader;
        EXPECT_EQ(r.res.value_or(0), 6u);
        co_return r.buf;
      }(proc, pipe.write_fd()));
  EXPECT_EQ(got, "abcdef");
}

TEST_F(FsTest, WriteAllAtWritesEverything) {
  const std::string content = pattern((3 << 20) + 5);
  rt_.block_on([](std::string p, std::string content) -> Task<void> {
    auto f = co_await fs::File::create(p);
    if (!f) co_return;
    auto w = co_await f->write_all_at(bytes_of(content), 7);
    EXPECT_EQ(w.res.value_or(0), content.size());
    EXPECT_EQ(w.buf.size(), content.size());
  }(path("all"), content));
  const std::string got = slurp("all");
  ASSERT_EQ(got.size(), content.size() + 7);
  EXPECT_EQ(got.substr(0, 7), std::string(7, '\0'));
  EXPECT_TRUE(got.substr(7) == content);
}

TEST_F(FsTest, AppendWritesLandAtTheEndWhateverTheOffset) {
  make_file("log", "first\n");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::options().append().open(p);
    EXPECT_TRUE(f.has_value()) << f.error().message();
    if (!f) co_return;
    auto a = co_await f->write_at(std::string("second\n"), 0);
    EXPECT_EQ(a.res.value_or(0), 7u);
    auto b = co_await f->write_all_at(std::string("third\n"), 2);
    EXPECT_EQ(b.res.value_or(0), 6u);
  }(path("log")));
  EXPECT_EQ(slurp("log"), "first\nsecond\nthird\n");
}

TEST_F(FsTest, SizeMetadataSyncAndAllocate) {
  make_file("meta", "12345");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::options().read().write().open(p);
    if (!f) co_return;
    auto size = co_await f->size();
    EXPECT_EQ(size.value_or(0), 5u);
    auto m = co_await f->metadata();
    EXPECT_TRUE(m.has_value());
    if (m) {
      EXPECT_EQ(m->size, 5u);
      EXPECT_TRUE(m->is_file());
      EXPECT_FALSE(m->is_dir());
      EXPECT_FALSE(m->is_symlink());
      EXPECT_EQ(m->mode & 0777, 0600u);
      EXPECT_GT(m->block_size, 0u);
      EXPECT_EQ(m->raw.stx_size, 5u);
      EXPECT_GT(m->modified.tv_sec, 0);
    }
    auto s1 = co_await f->sync_all();
    EXPECT_TRUE(s1.has_value()) << s1.error().message();
    auto s2 = co_await f->sync_data();
    EXPECT_TRUE(s2.has_value()) << s2.error().message();
    auto a = co_await f->allocate(0, 1 << 20);
    if (!a && a.error().code == errno_code(EOPNOTSUPP)) co_return;
    EXPECT_TRUE(a.has_value()) << a.error().message();
    auto grown = co_await f->size();
    EXPECT_EQ(grown.value_or(0), 1u << 20) << "fallocate mode 0 extends";
    auto m2 = co_await f->metadata();
    EXPECT_GE(m2.value_or(fs::Metadata{}).blocks * 512, 1u << 20);
  }(path("meta")));
}

TEST_F(FsTest, MethodsOfAClosedFileFailWithEbadfAndThePath) {
  make_file("closed", "abc");
  const std::string p = path("closed");
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::open(p);
    if (!f) co_return;
    auto c1 = co_await f->close();
    EXPECT_TRUE(c1.has_value());
    EXPECT_FALSE(f->is_open());
    EXPECT_EQ(f->fd(), -1);
    auto c2 = co_await f->close();
    EXPECT_FALSE(c2.has_value());
    expect_error(c2.error(), EBADF, p);
    auto r = co_await f->read_at(std::string(3, '?'), 0);
    EXPECT_FALSE(r.res.has_value());
    expect_error(r.res.error(), EBADF, p);
    EXPECT_EQ(r.buf, "???");
    auto w = co_await f->write_all_at(std::string("x"), 0);
    EXPECT_FALSE(w.res.has_value());
    expect_error(w.res.error(), EBADF, p);
    auto s = co_await f->size();
    EXPECT_FALSE(s.has_value());
    expect_error(s.error(), EBADF, p);
    auto sync = co_await f->sync_all();
    EXPECT_FALSE(sync.has_value());
    expect_error(sync.error(), EBADF, p);
    auto reg = f->register_fixed();
    EXPECT_FALSE(reg.has_value());
    expect_error(reg.error(), EBADF, p);
  }(p));
}

// --- Closing
// ------------------------------------------------------------------

TEST_F(FsTest, DestructorOnAShardClosesTheFdThroughTheRing) {
  make_file("dtor", "x");
  rt_.block_on([](std::string p) -> Task<void> {
    int fd = -1;
    uint64_t submitted_before = 0;
    {
      auto f = co_await fs::File::open(p);
      EXPECT_TRUE(f.has_value());
      if (!f) co_return;
      fd = f->fd();
      submitted_before = this_shard::counters().sqes_submitted;
    }  // ~File: hands the fd to a detached close task
    EXPECT_TRUE(fd_is_open(fd)) << "the destructor must not close inline";
    const bool closed = co_await wait_until_closed(fd);
    EXPECT_TRUE(closed);
    EXPECT_GT(this_shard::counters().sqes_submitted, submitted_before)
        << "the close went through the ring";
  }(path("dtor")));
}

TEST_F(FsTest, DestructorOffAShardClosesAtOnce) {
  make_file("off", "x");
  auto f = rt_.block_on(fs::File::open(path("off")));
  ASSERT_TRUE(f.has_value());
  const int fd = f->fd();
  ASSERT_TRUE(fd_is_open(fd));
  {
    fs::File moved = std::move(*f);
    EXPECT_FALSE(f->is_open());
    EXPECT_EQ(moved.fd(), fd);
  }
  EXPECT_FALSE(fd_is_open(fd));
}

TEST_F(FsTest, MoveAssignmentClosesTheFileItReplaces) {
  make_file("a", "a");
  make_file("b", "b");
  auto a = rt_.block_on(fs::File::open(path("a")));
  auto b = rt_.block_on(fs::File::open(path("b")));
  ASSERT_TRUE(a.has_value() && b.has_value());
  const int fa = a->fd();
  const int fb = b->fd();
  *a = std::move(*b);
  EXPECT_FALSE(fd_is_open(fa));
  EXPECT_EQ(a->fd(), fb);
  EXPECT_EQ(a->path(), path("b"));
  EXPECT_FALSE(b->is_open());
}

TEST_F(FsTest, FromRawFdAndRelease) {
  make_file("raw", "raw");
  const int fd = ::open(path("raw").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string got = rt_.block_on([](int fd) -> Task<std::string> {
    fs::File f = fs::File::from_raw_fd(fd, "raw");
    auto r = co_await f.read_at(std::string(3, '?'), 0);
    EXPECT_EQ(f.release(), fd);
    EXPECT_FALSE(f.is_open());
    co_return r.buf;
  }(fd));
  EXPECT_EQ(got, "raw");
  EXPECT_TRUE(fd_is_open(fd)) << "a released fd stays open";
  ::close(fd);
}

// --- Registered files and buffers
// ----------------------------------------------

TEST_F(FsTest, RegisteredFileReadsAndWritesThroughItsSlot) {
  rt_.block_on([](std::string p) -> Task<void> {
    auto f = co_await fs::File::options().read().write().create().open(p);
    if (!f) co_return;
    auto reg = f->register_fixed();
    EXPECT_TRUE(reg.has_value()) << reg.error().message();
    if (!reg) co_return;
    EXPECT_TRUE(f->is_fixed());
    auto again = f->register_fixed();
    EXPECT_FALSE(again.has_value()) << "registering twice is an error";
    auto w = co_await f->write_at(std::string("fixed "), 0);
    EXPECT_EQ(w.res.value_or(0), 6u);
    auto wa = co_await f->write_all_at(std::string("file"), 6);
    EXPECT_EQ(wa.res.value_or(0), 4u);
    auto s = co_await f->sync_data();
    EXPECT_TRUE(s.has_value());
    auto r = co_await f->read_at(std::string(10, '?'), 0);
    EXPECT_EQ(r.res.value_or(0), 10u);
    EXPECT_EQ(r.buf, "fixed file");
    auto re = co_await f->read_exact_at(std::string(4, '?'), 6);
    EXPECT_EQ(re.buf, "file");
    auto c = co_await f->close();
    EXPECT_TRUE(c.has_value());
    EXPECT_FALSE(f->is_fixed());
  }(path("fixed")));
  EXPECT_EQ(slurp("fixed"), "fixed file");
}

TEST_F(FsTest, RegisteredFileIoUsesTheSlotNotTheFd) {
  // The fixed-file table holds its own reference to the file: once the
  // plain fd is closed, only I/O through the slot can still work.
  make_file("slot_only", "through the slot");
  const int fd = ::open(path("slot_only").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string got = rt_.block_on([](int fd) -> Task<std::string> {
    fs::File f = fs::File::from_raw_fd(fd, "slot_only");
    auto reg = f.register_fixed();
    EXPECT_TRUE(reg.has_value());
    if (!reg) co_return "";
    ::close(fd);  // behind the File's back
    auto r = co_await f.read_at(std::string(16, '?'), 0);
    EXPECT_TRUE(r.res.has_value()) << r.res.error().message();
    auto w = co_await f.write_all_at(std::string("THROUGH"), 0);
    EXPECT_EQ(w.res.value_or(0), 7u);
    auto e = co_await f.read_exact_at(std::string(7, '?'), 0);
    EXPECT_EQ(e.buf, "THROUGH");
    (void)f.release();  // unregisters the slot; the fd is already closed
    EXPECT_FALSE(f.is_fixed());
    co_return r.buf;
  }(fd));
  EXPECT_EQ(got, "through the slot");
  EXPECT_EQ(slurp("slot_only"), "THROUGH the slot");
}

TEST_F(FsTest, CloseAndDestructorReleaseTheFixedSlot) {
  // A table of one slot: every registration after the first needs the slot
  // given back by close() or the destructor.
  Runtime rt(RuntimeOptions{.shards = 1, .max_fixed_files = 1});
  make_file("slot", "s");
  rt.block_on([](std::string p) -> Task<void> {
    auto a = co_await fs::File::open(p);
    auto b = co_await fs::File::open(p);
    if (!a || !b) co_return;
    EXPECT_TRUE(a->register_fixed().has_value());
    auto full = b->register_fixed();
    EXPECT_FALSE(full.has_value()) << "the one slot is taken";
    if (!full) {
      EXPECT_EQ(full.error().path, p);
    }
    (void)co_await a->close();
    EXPECT_TRUE(b->register_fixed().has_value()) << "close freed the slot";
    { fs::File gone = std::move(*b); }
    auto c = co_await fs::File::open(p);
    if (!c) co_return;
    EXPECT_TRUE(c->register_fixed().has_value())
        << "the destructor freed the slot";
    auto r = co_await c->read_at(std::string(1, '?'), 0);
    EXPECT_EQ(r.buf, "s");
  }(path("slot")));
}

TEST_F(FsTest, RegisteredBuffersRoundTrip) {
  rt_.block_on([](std::string p) -> Task<void> {
    auto pool = BufferPool::create(2, 4096);
    EXPECT_TRUE(pool.has_value()) << pool.error().message();
    if (!pool) co_return;
    auto f = co_await fs::File::options().read().write().create().open(p);
    if (!f) co_return;
    EXPECT_TRUE(f->register_fixed().has_value());

    auto out = pool->acquire();
    if (!out) co_return;
    const std::string text = pattern(4096);
    std::memcpy(out->data(), text.data(), text.size());
    const unsigned out_slot = out->slot();
    auto w = co_await f->write_fixed_at(std::move(*out), 8192);
    EXPECT_EQ(w.res.value_or(0), 4096u);
    EXPECT_EQ(w.buf.slot(), out_slot) << "the registered buffer comes back";

    auto in = pool->acquire();
    if (!in) co_return;
    in->set_size(100);  // read only the first 100 bytes
    auto r = co_await f->read_fixed_at(std::move(*in), 8192);
    EXPECT_EQ(r.res.value_or(0), 100u);
    EXPECT_EQ(std::memcmp(r.buf.data(), text.data(), 100), 0);
    EXPECT_EQ(pool->available(), 0u);
  }(path("registered")));
  EXPECT_EQ(slurp("registered").substr(8192), pattern(4096));
}

// --- O_DIRECT
// -------------------------------------------------------------------

TEST_F(FsTest, DirectIoWithAlignedBuffers) {
  // tmpfs refuses O_DIRECT (EINVAL), so try the test temp dir and /var/tmp.
  std::vector<std::string> tried;
  for (const std::string& dir :
       {testing::TempDir(), std::string("/var/tmp/")}) {
    const std::string p =
        dir + "/shardio_fs_direct_" + std::to_string(::getpid());
    std::string why;
    const bool done =
        rt_.block_on([](std::string p, std::string* why) -> Task<bool> {
          auto f = co_await fs::File::options()
                       .read()
                       .write()
                       .create()
                       .truncate()
                       .direct()
                       .open(p);
          if (!f) {
            *why = f.error().message();
            co_return false;
          }
          AlignedBuffer out(8192);
          for (std::size_t i = 0; i < out.size(); ++i) {
            out.data()[i] = std::byte(i * 31);
          }
          auto w = co_await f->write_all_at(std::move(out), 4096);
          if (!w.res) {
            *why = w.res.error().message();
            co_return false;
          }
          auto r = co_await f->read_exact_at(AlignedBuffer(8192), 4096);
          if (!r.res) {
            *why = r.res.error().message();
            co_return false;
          }
          EXPECT_EQ(std::memcmp(r.buf.data(), w.buf.data(), 8192), 0);
          auto m = co_await f->metadata();
          EXPECT_EQ(m.value_or(fs::Metadata{}).size, 4096u + 8192u);
          co_return true;
        }(p, &why));
    ::unlink(p.c_str());
    if (done) return;
    tried.push_back(why);
  }
  std::string reasons;
  for (const auto& t : tried) reasons += "\n  " + t;
  GTEST_SKIP() << "no directory here accepts O_DIRECT I/O:" << reasons;
}

// --- Cancellation
// ---------------------------------------------------------------

TEST_F(FsTest, DestroyingAReadingTaskKeepsTheBufferUntilTheFinalCqe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  std::atomic<int> alive{0};
  const std::string proc = "/proc/self/fd/" + std::to_string(pipe.read_fd());
  rt_.block_on([](std::string proc, int write_fd,
                  std::atomic<int>* alive) -> Task<void> {
    auto f = co_await fs::File::open(proc);
    EXPECT_TRUE(f.has_value()) << f.error().message();
    if (!f) co_return;
    const ShardCounters before = this_shard::counters();
    Eager reader = [](fs::File* f, std::atomic<int>* alive) -> Eager {
      auto r = co_await f->read_at(TrackedBuffer(64, alive), 0);
      ADD_FAILURE() << "the read completed: " << r.res.value_or(0);
    }(&*f, alive);
    const bool reached =
        co_await wait_for_ops_in_flight(before.ops_in_flight + 1);
    EXPECT_TRUE(reached);
    EXPECT_EQ(alive->load(), 1);
    reader.destroy();  // the awaiting frame goes; the op is orphaned
    EXPECT_EQ(this_shard::counters().ops_orphaned, before.ops_orphaned + 1);
    EXPECT_EQ(alive->load(), 1) << "the op still holds the buffer";
    // The cancel's CQE releases it.
    for (int i = 0; i < kMaxYields && alive->load() != 0; ++i) {
      co_await this_shard::yield();
    }
    EXPECT_EQ(alive->load(), 0);
    // The pipe and the file still work, and the cancelled read took nothing.
    EXPECT_EQ(::write(write_fd, "z", 1), 1);
    auto r = co_await f->read_at(std::string(4, '?'), 0);
    EXPECT_EQ(r.res.value_or(0), 1u);
    EXPECT_EQ(r.buf, "z???");
  }(proc, pipe.write_fd(), &alive));
  EXPECT_EQ(alive.load(), 0);
}

TEST_F(FsTest, StopTokenCancelsAReadOfTheFilesFd) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  const std::string proc = "/proc/self/fd/" + std::to_string(pipe.read_fd());
  rt_.block_on([](std::string proc) -> Task<void> {
    auto f = co_await fs::File::open(proc);
    if (!f) co_return;
    std::stop_source stop;
    std::vector<char> buf(32, '?');
    const char* data = buf.data();
    const uint64_t base = this_shard::counters().ops_in_flight;
    auto reader =
        spawn([](int fd, std::vector<char> buf,
                 std::stop_token st) -> Task<IoResult<std::vector<char>>> {
          Read<std::vector<char>> op(fd, std::move(buf), 0);
          co_return co_await submit(std::move(op), std::move(st));
        }(f->fd(), std::move(buf), stop.get_token()));
    const bool reached = co_await wait_for_ops_in_flight(base + 1);
    EXPECT_TRUE(reached);
    stop.request_stop();
    IoResult<std::vector<char>> r = co_await reader;
    EXPECT_FALSE(r.res.has_value());
    EXPECT_EQ(r.res.error(), errno_code(ECANCELED));
    EXPECT_EQ(r.buf.data(), data) << "the same buffer comes back";
  }(proc));
}

TEST(FsShutdownTest, RuntimeShutdownCancelsAReadAndClosesTheFile) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  PipeWatchdog watchdog(pipe.write_fd());
  std::atomic<int> alive{0};
  int fd = -1;
  {
    Runtime rt(RuntimeOptions{.shards = 1});
    const std::string proc = "/proc/self/fd/" + std::to_string(pipe.read_fd());
    fd =
        rt.block_on([](std::string proc, std::atomic<int>* alive) -> Task<int> {
          auto f = co_await fs::File::open(proc);
          if (!f) co_return -1;
          const int fd = f->fd();
          const uint64_t base = this_shard::counters().ops_in_flight;
          // A task that owns the File and waits in a read for ever.
          spawn([](fs::File f, std::atomic<int>* alive) -> Task<void> {
            auto r = co_await f.read_at(TrackedBuffer(64, alive), 0);
            ADD_FAILURE() << "the read completed: " << r.res.value_or(0);
          }(std::move(*f), alive))
              .detach();
          const bool reached = co_await wait_for_ops_in_flight(base + 1);
          EXPECT_TRUE(reached);
          co_return fd;
        }(proc, &alive));
    ASSERT_GE(fd, 0);
    EXPECT_EQ(alive.load(), 1);
    EXPECT_TRUE(fd_is_open(fd));
    rt.stop();  // destroys the task: cancels the read, drops the File
    EXPECT_EQ(alive.load(), 0) << "the buffer went with the final CQE";
  }
  EXPECT_FALSE(fd_is_open(fd)) << "the File's fd was closed at shutdown";
}

// --- Whole files
// ---------------------------------------------------------------

TEST_F(FsTest, ReadAndReadToStringReturnTheWholeFile) {
  make_file("empty", "");
  make_file("small", "small file\n");
  // Bigger than one batch of 1 MiB chunks, not a multiple of anything.
  const std::string big = pattern((17 << 20) + 12345);
  make_file("big", big);
  rt_.block_on([](std::string dir, std::string big) -> Task<void> {
    auto e = co_await fs::read(dir + "/empty");
    EXPECT_TRUE(e.has_value());
    EXPECT_EQ(e.value_or(std::vector<std::byte>(1)).size(), 0u);
    auto s = co_await fs::read_to_string(dir + "/small");
    EXPECT_EQ(s.value_or(""), "small file\n");
    auto b = co_await fs::read(dir + "/big");
    EXPECT_TRUE(b.has_value());
    if (b) {
      EXPECT_EQ(b->size(), big.size());
      EXPECT_TRUE(string_of(*b, b->size()) == big);
    }
    auto bs = co_await fs::read_to_string(dir + "/big");
    EXPECT_TRUE(bs.value_or("") == big);
  }(dir_, big));
}

TEST_F(FsTest, ReadOfAFileWhoseSizeIsUnknownKeepsReading) {
  // /proc files report size 0.
  const std::string status = rt_.block_on([]() -> Task<std::string> {
    auto s = co_await fs::read_to_string("/proc/self/status");
    EXPECT_TRUE(s.has_value()) << s.error().message();
    co_return s.value_or("");
  }());
  EXPECT_EQ(status.rfind("Name:", 0), 0u) << status.substr(0, 40);
  EXPECT_NE(status.find("VmRSS"), std::string::npos);
  EXPECT_GT(status.size(), 64u) << "more than the first probe";
}

TEST_F(FsTest, ReadOfAStreamGrowsUntilTheWriterCloses) {
  // A FIFO: no size, short reads, and data that keeps coming.
  const std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string content = pattern(3 << 20);
  std::jthread writer([&fifo, &content] {
    const int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    std::size_t done = 0;
    while (done < content.size()) {
      const std::size_t piece =
          std::min<std::size_t>(40000, content.size() - done);
      const ssize_t n = ::write(fd, content.data() + done, piece);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  });
  auto r = rt_.block_on(fs::read(fifo));
  writer.join();
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->size(), content.size());
  EXPECT_TRUE(string_of(*r, r->size()) == content);
}

TEST_F(FsTest, ReadOfAMissingFileNamesThePath) {
  const std::string p = path("nothing");
  auto r = rt_.block_on(fs::read(p));
  ASSERT_FALSE(r.has_value());
  expect_error(r.error(), ENOENT, p);
  auto s = rt_.block_on(fs::read_to_string(dir_));
  ASSERT_FALSE(s.has_value());
  expect_error(s.error(), EISDIR, dir_);
}

TEST_F(FsTest, WriteCreatesOrTruncatesAndWritesEverything) {
  make_file("w", "old content that is longer");
  const std::string big = pattern((2 << 20) + 3);
  auto r = rt_.block_on(
      [](std::string dir, std::string big) -> Task<fs::Result<void>> {
        auto a = co_await fs::write(dir + "/w", std::string("new"));
        if (!a) co_return a;
        co_return co_await fs::write(dir + "/fresh", bytes_of(big));
      }(dir_, big));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(slurp("w"), "new");
  EXPECT_TRUE(slurp("fresh") == big);
  auto bad = rt_.block_on(fs::write(dir_ + "/no/such/dir", std::string("x")));
  ASSERT_FALSE(bad.has_value());
  expect_error(bad.error(), ENOENT, dir_ + "/no/such/dir");
}

// --- Paths
// ------------------------------------------------------------------------

TEST_F(FsTest, DirectoriesLinksRenamesAndRemovals) {
  make_file("file", "data");
  rt_.block_on([](std::string dir) -> Task<void> {
    const std::string sub = dir + "/sub";
    auto mk = co_await fs::create_dir(sub, 0700);
    EXPECT_TRUE(mk.has_value()) << mk.error().message();
    auto mk2 = co_await fs::create_dir(sub);
    EXPECT_FALSE(mk2.has_value());
    expect_error(mk2.error(), EEXIST, sub);
    auto dm = co_await fs::metadata(sub);
    EXPECT_TRUE(dm.has_value());
    EXPECT_TRUE(dm.value_or(fs::Metadata{}).is_dir());
    EXPECT_EQ(dm.value_or(fs::Metadata{}).mode & 0777, 0700u);

    // rename
    const std::string moved = sub + "/moved";
    auto rn = co_await fs::rename(dir + "/file", moved);
    EXPECT_TRUE(rn.has_value()) << rn.error().message();
    auto rn2 = co_await fs::rename(dir + "/file", moved);
    EXPECT_FALSE(rn2.has_value());
    expect_error(rn2.error(), ENOENT, dir + "/file");

    // hard_link: two names, one inode
    const std::string hard = dir + "/hard";
    auto hl = co_await fs::hard_link(moved, hard);
    EXPECT_TRUE(hl.has_value()) << hl.error().message();
    auto hm = co_await fs::metadata(hard);
    EXPECT_EQ(hm.value_or(fs::Metadata{}).raw.stx_nlink, 2u);
    auto hl2 = co_await fs::hard_link(dir + "/none", hard);
    EXPECT_FALSE(hl2.has_value());
    expect_error(hl2.error(), ENOENT, dir + "/none");

    // symlink: metadata follows it, symlink_metadata does not
    const std::string link = dir + "/link";
    auto sl = co_await fs::symlink("sub/moved", link);
    EXPECT_TRUE(sl.has_value()) << sl.error().message();
    auto sl2 = co_await fs::symlink("sub/moved", link);
    EXPECT_FALSE(sl2.has_value());
    expect_error(sl2.error(), EEXIST, link);
    auto followed = co_await fs::metadata(link);
    EXPECT_TRUE(followed.value_or(fs::Metadata{}).is_file());
    EXPECT_EQ(followed.value_or(fs::Metadata{}).size, 4u);
    auto own = co_await fs::symlink_metadata(link);
    EXPECT_TRUE(own.value_or(fs::Metadata{}).is_symlink());
    auto via = co_await fs::read_to_string(link);
    EXPECT_EQ(via.value_or(""), "data");

    // removals
    auto rd = co_await fs::remove_dir(sub);
    EXPECT_FALSE(rd.has_value());
    expect_error(rd.error(), ENOTEMPTY, sub);
    auto rf = co_await fs::remove_file(moved);
    EXPECT_TRUE(rf.has_value());
    auto rf2 = co_await fs::remove_file(moved);
    EXPECT_FALSE(rf2.has_value());
    expect_error(rf2.error(), ENOENT, moved);
    auto rfd = co_await fs::remove_file(sub);
    EXPECT_FALSE(rfd.has_value());
    EXPECT_EQ(rfd.error().code, errno_code(EISDIR));
    auto rd2 = co_await fs::remove_dir(sub);
    EXPECT_TRUE(rd2.has_value()) << rd2.error().message();
    auto gone = co_await fs::metadata(sub);
    EXPECT_FALSE(gone.has_value());
    expect_error(gone.error(), ENOENT, sub);
    auto rl = co_await fs::remove_file(link);
    EXPECT_TRUE(rl.has_value());
    auto rh = co_await fs::remove_file(hard);
    EXPECT_TRUE(rh.has_value());
  }(dir_));
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

}  // namespace
}  // namespace shardio
