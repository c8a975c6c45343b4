// Tests for the basic file ops (ops/file.h): OpenAt, Read, Write and Close on
// files in a fresh temporary directory.
#include "shardio/ops/file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "shardio/operation.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio {
namespace {

static_assert(OwnedBuffer<std::string>);
static_assert(OwnedBuffer<std::vector<char>>);
static_assert(OwnedBuffer<std::vector<std::byte>>);
static_assert(OwnedBuffer<std::array<char, 8>>);
static_assert(!OwnedBuffer<std::vector<int>>);
static_assert(Operation<OpenAt>);
static_assert(Operation<Read<std::string>>);
static_assert(Operation<Write<std::vector<std::byte>>>);
static_assert(Operation<Close>);

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) out[i] = std::byte(s[i]);
  return out;
}

// Each test gets its own directory under the test temp dir and a runtime.
class FileTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "file_test_XXXXXX";
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

  std::string dir_;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

TEST_F(FileTest, WriteThenReadBackAtOffsets) {
  const std::string p = path("data");
  rt_.block_on([](std::string p) -> Task<void> {
    Result<int> fd =
        co_await submit(OpenAt(AT_FDCWD, p, O_RDWR | O_CREAT | O_TRUNC, 0600));
    EXPECT_TRUE(fd.has_value()) << fd.error().message();
    if (!fd) co_return;

    auto w1 = co_await submit(Write(*fd, std::string("hello"), 0));
    auto w2 = co_await submit(Write(*fd, std::string("world"), 10));
    EXPECT_EQ(w1.res.value_or(0), 5u) << w1.res.error().message();
    EXPECT_EQ(w2.res.value_or(0), 5u) << w2.res.error().message();

    auto tail = co_await submit(Read(*fd, std::string(5, '?'), 10));
    EXPECT_EQ(tail.res.value_or(0), 5u);
    EXPECT_EQ(tail.buf, "world");
    auto head = co_await submit(Read(*fd, std::string(5, '?'), 0));
    EXPECT_EQ(head.res.value_or(0), 5u);
    EXPECT_EQ(head.buf, "hello");
    // The gap between the two writes reads back as zeros.
    auto gap = co_await submit(Read(*fd, std::string(5, '?'), 5));
    EXPECT_EQ(gap.res.value_or(0), 5u);
    EXPECT_EQ(gap.buf, std::string(5, '\0'));
    // Overwrite in the middle of the first write.
    auto w3 = co_await submit(Write(*fd, std::string("J"), 0));
    EXPECT_EQ(w3.res.value_or(0), 1u);

    Result<void> closed = co_await submit(Close(*fd));
    EXPECT_TRUE(closed.has_value()) << closed.error().message();
  }(p));

  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 15);
  char first[6] = {};
  const int fd = ::open(p.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::read(fd, first, 5), 5);
  ::close(fd);
  EXPECT_STREQ(first, "Jello");
}

TEST_F(FileTest, ShortReadAtEndOfFile) {
  ASSERT_NO_FATAL_FAILURE(make_file("ten", "0123456789"));
  rt_.block_on([](std::string p) -> Task<void> {
    Result<int> fd = co_await submit(OpenAt(AT_FDCWD, p, O_RDONLY));
    EXPECT_TRUE(fd.has_value()) << fd.error().message();
    if (!fd) co_return;

    auto r = co_await submit(Read(*fd, std::vector<char>(100), 4));
    EXPECT_EQ(r.res.value_or(0), 6u) << r.res.error().message();
    EXPECT_EQ(r.buf.size(), 100u) << "the buffer keeps its size";
    EXPECT_EQ(std::string(r.buf.data(), 6), "456789");

    auto at_end = co_await submit(Read(*fd, std::vector<char>(8), 10));
    EXPECT_EQ(at_end.res.value_or(99), 0u);
    auto past_end = co_await submit(Read(*fd, std::vector<char>(8), 1000));
    EXPECT_EQ(past_end.res.value_or(99), 0u);
    (void)co_await submit(Close(*fd));
  }(path("ten")));
}

TEST_F(FileTest, ReadAtCurrentPositionAdvancesTheFilePosition) {
  ASSERT_NO_FATAL_FAILURE(make_file("words", "hello world"));
  const int fd = ::open(path("words").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  rt_.block_on([](int fd) -> Task<void> {
    auto a = co_await submit(Read(fd, std::string(5, '?')));
    EXPECT_EQ(a.res.value_or(0), 5u);
    EXPECT_EQ(a.buf, "hello");
    auto b = co_await submit(Read(fd, std::string(5, '?'), kCurrentPosition));
    EXPECT_EQ(b.res.value_or(0), 5u);
    EXPECT_EQ(b.buf, " worl");
    // A positional read neither uses nor moves the file position.
    auto c = co_await submit(Read(fd, std::string(2, '?'), 0));
    EXPECT_EQ(c.buf, "he");
    auto d = co_await submit(Read(fd, std::string(5, '?')));
    EXPECT_EQ(d.res.value_or(0), 1u);
    EXPECT_EQ(d.buf[0], 'd');
  }(fd));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 11);

  // Writes at the current position advance it too.
  ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  rt_.block_on([](int fd) -> Task<void> {
    auto w = co_await submit(Write(fd, std::string("HE")));
    EXPECT_EQ(w.res.value_or(0), 2u);
    auto w2 = co_await submit(Write(fd, std::string("LL")));
    EXPECT_EQ(w2.res.value_or(0), 2u);
  }(fd));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 4);
  ::close(fd);

  char content[12] = {};
  const int rfd = ::open(path("words").c_str(), O_RDONLY);
  ASSERT_GE(rfd, 0);
  EXPECT_EQ(::read(rfd, content, 11), 11);
  ::close(rfd);
  EXPECT_STREQ(content, "HELLo world");
}

TEST_F(FileTest, EveryOwnedBufferTypeComesBackWithTheResult) {
  const int fd = ::open(path("buffers").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  rt_.block_on([](int fd) -> Task<void> {
    // std::string (long enough to live on the heap).
    const std::string text = "a string long enough to be on the heap";
    auto ws = co_await submit(Write(fd, text, 0));
    EXPECT_EQ(ws.res.value_or(0), text.size());
    EXPECT_EQ(ws.buf, text) << "a write hands its buffer back unchanged";
    auto rs = co_await submit(Read(fd, std::string(text.size(), '\0'), 0));
    EXPECT_EQ(rs.res.value_or(0), text.size());
    EXPECT_EQ(rs.buf, text);

    // std::vector<char>: the very same allocation comes back.
    std::vector<char> chars(6, '\0');
    const char* chars_data = chars.data();
    auto rc = co_await submit(Read(fd, std::move(chars), 2));
    EXPECT_EQ(rc.res.value_or(0), 6u);
    EXPECT_EQ(rc.buf.data(), chars_data);
    EXPECT_EQ(std::string(rc.buf.begin(), rc.buf.end()), "string");

    // std::vector<std::byte>, written and read back.
    std::vector<std::byte> out = bytes_of("BYTES");
    const std::byte* out_data = out.data();
    auto wb = co_await submit(Write(fd, std::move(out), 100));
    EXPECT_EQ(wb.res.value_or(0), 5u);
    EXPECT_EQ(wb.buf.data(), out_data);
    auto rb = co_await submit(Read(fd, std::vector<std::byte>(5), 100));
    EXPECT_EQ(rb.res.value_or(0), 5u);
    EXPECT_EQ(rb.buf, bytes_of("BYTES"));

    // std::array: held inline in the op.
    auto ra = co_await submit(Read(fd, std::array<char, 5>{}, 100));
    EXPECT_EQ(ra.res.value_or(0), 5u);
    EXPECT_EQ(std::string(ra.buf.begin(), ra.buf.end()), "BYTES");
  }(fd));
  ::close(fd);
}

TEST_F(FileTest, OpenAtRelativeToADirectoryFd) {
  ASSERT_NO_FATAL_FAILURE(make_file("inside", "xyz"));
  const int dirfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dirfd, 0);
  rt_.block_on([](int dirfd) -> Task<void> {
    Result<int> fd = co_await submit(OpenAt(dirfd, "inside", O_RDONLY));
    EXPECT_TRUE(fd.has_value()) << fd.error().message();
    if (!fd) co_return;
    auto r = co_await submit(Read(*fd, std::string(3, '?'), 0));
    EXPECT_EQ(r.buf, "xyz");
    // OpenAt adds O_CLOEXEC.
    EXPECT_NE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
    Result<void> closed = co_await submit(Close(*fd));
    EXPECT_TRUE(closed.has_value());
  }(dirfd));
  ::close(dirfd);
}

TEST_F(FileTest, OpenMissingFileFailsWithEnoent) {
  const Result<int> fd = rt_.block_on([](std::string p) -> Task<Result<int>> {
    co_return co_await submit(OpenAt(AT_FDCWD, p, O_RDONLY));
  }(path("missing")));
  EXPECT_FALSE(fd.has_value()) << "opened fd " << fd.value_or(-1);
  EXPECT_EQ(fd.error(), errno_code(ENOENT));
}

TEST_F(FileTest, OpenDirectoryForWritingFailsWithEisdir) {
  const Result<int> fd = rt_.block_on([](std::string p) -> Task<Result<int>> {
    co_return co_await submit(OpenAt(AT_FDCWD, p, O_WRONLY));
  }(dir_));
  EXPECT_FALSE(fd.has_value()) << "opened fd " << fd.value_or(-1);
  EXPECT_EQ(fd.error(), errno_code(EISDIR));
}

TEST_F(FileTest, ReadOnAClosedFdFailsWithEbadf) {
  ASSERT_NO_FATAL_FAILURE(make_file("closed", "data"));
  rt_.block_on([](std::string p) -> Task<void> {
    Result<int> fd = co_await submit(OpenAt(AT_FDCWD, p, O_RDONLY));
    EXPECT_TRUE(fd.has_value()) << fd.error().message();
    if (!fd) co_return;
    Result<void> closed = co_await submit(Close(*fd));
    EXPECT_TRUE(closed.has_value()) << closed.error().message();
    // Nothing else in this process opens files meanwhile, so the number
    // stays unused.
    EXPECT_EQ(::fcntl(*fd, F_GETFD), -1);
    auto r = co_await submit(Read(*fd, std::string(4, '?'), 0));
    EXPECT_FALSE(r.res.has_value());
    EXPECT_EQ(r.res.error(), errno_code(EBADF));
    EXPECT_EQ(r.buf, "????") << "the buffer comes back untouched";
  }(path("closed")));
}

TEST_F(FileTest, InvalidFdsFailWithEbadf) {
  rt_.block_on([]() -> Task<void> {
    auto r = co_await submit(Read(-1, std::vector<char>(4), 0));
    EXPECT_EQ(r.res.error(), errno_code(EBADF));
    auto w = co_await submit(Write(-1, std::string("x"), 0));
    EXPECT_EQ(w.res.error(), errno_code(EBADF));
    Result<void> c = co_await submit(Close(-1));
    EXPECT_EQ(c.error(), errno_code(EBADF));
  }());
}

TEST_F(FileTest, WriteToAReadOnlyFdFailsWithEbadf) {
  ASSERT_NO_FATAL_FAILURE(make_file("ro", "data"));
  const int fd = ::open(path("ro").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const Result<uint32_t> r = rt_.block_on([](int fd) -> Task<Result<uint32_t>> {
    auto w = co_await submit(Write(fd, std::string("x"), 0));
    co_return w.res;
  }(fd));
  ::close(fd);
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), errno_code(EBADF));
}

TEST_F(FileTest, ZeroLengthReadReturnsZero) {
  ASSERT_NO_FATAL_FAILURE(make_file("nonempty", "data"));
  const int fd = ::open(path("nonempty").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  rt_.block_on([](int fd) -> Task<void> {
    auto a = co_await submit(Read(fd, std::vector<char>(), 0));
    EXPECT_EQ(a.res.value_or(99), 0u) << a.res.error().message();
    auto b = co_await submit(Read(fd, std::string(), kCurrentPosition));
    EXPECT_EQ(b.res.value_or(99), 0u) << b.res.error().message();
  }(fd));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 0);
  ::close(fd);
}

}  // namespace
}  // namespace shardio
