// Tests for Splice and Tee (ops/splice.h): file -> pipe -> file, tee between
// two pipes, and a linked chain of splices.
#include "shardio/ops/splice.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "shardio/batch.h"
#include "shardio/operation.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"
#include "tests/test_util.h"

namespace shardio {
namespace {

using test::Pipe;

static_assert(Operation<Splice>);
static_assert(Operation<Tee>);

// 10000 bytes: more than two pages, less than a pipe's default capacity.
std::string pattern() {
  std::string s(10000, '\0');
  for (std::size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<char>('A' + (i * 7 + i / 13) % 26);
  }
  return s;
}

// Reads exactly `n` bytes that are already in `fd` (a pipe or a file at its
// position); fewer if the data is not there.
std::string read_n(int fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

// Whether `fd` (a pipe) has nothing to read right now.
bool pipe_is_empty(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  char c;
  const ssize_t r = ::read(fd, &c, 1);
  const int err = errno;
  ::fcntl(fd, F_SETFL, flags);
  return r < 0 && err == EAGAIN;
}

class SpliceTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "splice_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    const bool ok = rt_.block_on([]() -> Task<bool> {
      co_return this_shard::supports(IORING_OP_SPLICE) &&
          this_shard::supports(IORING_OP_TEE);
    }());
    if (!ok) GTEST_SKIP() << "the kernel lacks IORING_OP_SPLICE/TEE (5.8+)";
  }
  void TearDown() override {
    for (int fd : {in_fd_, out_fd_}) {
      if (fd >= 0) ::close(fd);
    }
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // An input file holding `content` and an empty output file.
  void make_files(const std::string& content) {
    in_fd_ = ::open((dir_ + "/in").c_str(),
                    O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(in_fd_, 0) << std::strerror(errno);
    ASSERT_EQ(::pwrite(in_fd_, content.data(), content.size(), 0),
              static_cast<ssize_t>(content.size()));
    out_fd_ = ::open((dir_ + "/out").c_str(),
                     O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(out_fd_, 0) << std::strerror(errno);
  }

  std::string output(std::size_t n) const {
    std::string out(n + 16, '\0');
    const ssize_t got = ::pread(out_fd_, out.data(), out.size(), 0);
    out.resize(got < 0 ? 0 : static_cast<std::size_t>(got));
    return out;
  }

  std::string dir_;
  int in_fd_ = -1;
  int out_fd_ = -1;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

struct Moved {
  uint32_t in = 0;
  uint32_t out = 0;
  std::string error;
};

TEST_F(SpliceTest, SpliceMovesBytesFileToPipeToFile) {
  const std::string data = pattern();
  ASSERT_NO_FATAL_FAILURE(make_files(data));
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  const Moved m = rt_.block_on([](int in, int out, int pr, int pw, uint32_t n)
                                   -> Task<Moved> {
    Moved m;
    // The kernel may move less than asked; go on from where it stopped.
    while (m.in < n) {
      Result<uint32_t> r = co_await submit(Splice(in, m.in, pw, -1, n - m.in));
      if (!r || *r == 0) {
        m.error = "in: " + (r ? std::string("0 bytes") : r.error().message());
        co_return m;
      }
      m.in += *r;
    }
    while (m.out < n) {
      Result<uint32_t> r =
          co_await submit(Splice(pr, -1, out, m.out, n - m.out));
      if (!r || *r == 0) {
        m.error = "out: " + (r ? std::string("0 bytes") : r.error().message());
        co_return m;
      }
      m.out += *r;
    }
    co_return m;
  }(in_fd_, out_fd_, pipe.read_fd(), pipe.write_fd(),
                                   static_cast<uint32_t>(data.size())));
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.in, data.size());
  EXPECT_EQ(m.out, data.size());
  EXPECT_EQ(output(data.size()), data);
  EXPECT_TRUE(pipe_is_empty(pipe.read_fd()));
  // Explicit offsets leave the file positions alone.
  EXPECT_EQ(::lseek(in_fd_, 0, SEEK_CUR), 0);
  EXPECT_EQ(::lseek(out_fd_, 0, SEEK_CUR), 0);
}

TEST_F(SpliceTest, SpliceAtTheFilePositionAdvancesIt) {
  ASSERT_NO_FATAL_FAILURE(make_files("0123456789"));
  ASSERT_EQ(::lseek(in_fd_, 4, SEEK_SET), 4);
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  const Result<uint32_t> r =
      rt_.block_on([](int in, int pw) -> Task<Result<uint32_t>> {
        co_return co_await submit(Splice(in, -1, pw, -1, 3));
      }(in_fd_, pipe.write_fd()));
  EXPECT_EQ(r.value_or(0), 3u) << r.error().message();
  EXPECT_EQ(read_n(pipe.read_fd(), 3), "456");
  EXPECT_EQ(::lseek(in_fd_, 0, SEEK_CUR), 7);
}

TEST_F(SpliceTest, SpliceBetweenTwoFilesFailsWithEinval) {
  ASSERT_NO_FATAL_FAILURE(make_files("data"));
  const Result<uint32_t> r =
      rt_.block_on([](int in, int out) -> Task<Result<uint32_t>> {
        co_return co_await submit(Splice(in, 0, out, 0, 4));
      }(in_fd_, out_fd_));
  EXPECT_FALSE(r.has_value()) << "moved " << r.value_or(0);
  EXPECT_EQ(r.error(), errno_code(EINVAL)) << r.error().message();
}

TEST_F(SpliceTest, TeeDuplicatesPipeDataIntoASecondPipe) {
  Pipe a;
  Pipe b;
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  const std::string data = "tee-data";
  ASSERT_EQ(::write(a.write_fd(), data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  const Result<uint32_t> r =
      rt_.block_on([](int ar, int bw, uint32_t n) -> Task<Result<uint32_t>> {
        co_return co_await submit(Tee(ar, bw, n));
      }(a.read_fd(), b.write_fd(), static_cast<uint32_t>(data.size())));
  EXPECT_EQ(r.value_or(0), data.size()) << r.error().message();
  // Both pipes now hold the bytes: tee does not consume its input.
  EXPECT_EQ(read_n(a.read_fd(), data.size()), data);
  EXPECT_EQ(read_n(b.read_fd(), data.size()), data);
  EXPECT_TRUE(pipe_is_empty(a.read_fd()));
  EXPECT_TRUE(pipe_is_empty(b.read_fd()));
}

TEST_F(SpliceTest, NonblockingTeeFromAnEmptyPipeFailsWithEagain) {
  Pipe a;
  Pipe b;
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  const Result<uint32_t> r =
      rt_.block_on([](int ar, int bw) -> Task<Result<uint32_t>> {
        co_return co_await submit(Tee(ar, bw, 16, SPLICE_F_NONBLOCK));
      }(a.read_fd(), b.write_fd()));
  EXPECT_FALSE(r.has_value()) << "duplicated " << r.value_or(0);
  EXPECT_EQ(r.error(), errno_code(EAGAIN)) << r.error().message();
}

TEST_F(SpliceTest, ChainedSplicesCopyAFileThroughAPipe) {
  const std::string data = pattern();
  ASSERT_NO_FATAL_FAILURE(make_files(data));
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  struct Res {
    Result<uint32_t> in;
    Result<uint32_t> out;
  };
  const Res res =
      rt_.block_on([](int in, int out, int pr, int pw,
                      uint32_t n) -> Task<Res> {
        // From offset 100 of the input to offset 3 of the output.
        Splice fill(in, 100, pw, -1, n - 100);
        Splice drain(pr, -1, out, 3, n - 100);
        auto [a, b] = co_await chain(std::move(fill), std::move(drain));
        co_return Res{a, b};
      }(in_fd_, out_fd_, pipe.read_fd(), pipe.write_fd(),
                                  static_cast<uint32_t>(data.size())));
  EXPECT_EQ(res.in.value_or(0), data.size() - 100) << res.in.error().message();
  EXPECT_EQ(res.out.value_or(0), data.size() - 100)
      << res.out.error().message();
  EXPECT_EQ(output(data.size()), std::string(3, '\0') + data.substr(100));
  EXPECT_TRUE(pipe_is_empty(pipe.read_fd()));
}

TEST_F(SpliceTest, AFailedSpliceCancelsTheRestOfItsChain) {
  ASSERT_NO_FATAL_FAILURE(make_files("data"));
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  test::PipeWatchdog watchdog(pipe.write_fd());
  struct Res {
    Result<uint32_t> first;
    Result<uint32_t> second;
  };
  const Res res = rt_.block_on([](int in, int out, int pr) -> Task<Res> {
    Splice bad(in, 0, out, 0, 4);       // two files: EINVAL
    Splice blocked(pr, -1, out, 0, 4);  // would wait on the empty pipe
    auto [a, b] = co_await chain(std::move(bad), std::move(blocked));
    co_return Res{a, b};
  }(in_fd_, out_fd_, pipe.read_fd()));
  EXPECT_EQ(res.first.error(), errno_code(EINVAL));
  EXPECT_EQ(res.second.error(), errno_code(ECANCELED));
  EXPECT_EQ(output(4), "");
}

}  // namespace
}  // namespace shardio
