// Tests for the path ops (ops/path.h): Statx, UnlinkAt, RenameAt, MkdirAt,
// SymlinkAt and LinkAt, each in a fresh temporary directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>  // RENAME_NOREPLACE
#include <cstring>
#include <filesystem>
#include <string>

#include "shardio/operation.h"
#include "shardio/ops/path.h"
#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio {
namespace {

static_assert(Operation<Statx>);
static_assert(Operation<UnlinkAt>);
static_assert(Operation<RenameAt>);
static_assert(Operation<MkdirAt>);
static_assert(Operation<SymlinkAt>);
static_assert(Operation<LinkAt>);

// Each test gets its own directory (and an fd on it) under the test temp dir,
// and a runtime.
class PathOpsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "path_ops_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    dirfd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dirfd_, 0) << std::strerror(errno);
  }
  void TearDown() override {
    if (dirfd_ >= 0) ::close(dirfd_);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  void make_file(const std::string& name, const std::string& content) {
    const int fd = ::open(path(name).c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(::write(fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    ::close(fd);
  }

  std::string content_of(const std::string& name) const {
    const int fd = ::open(path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<" + std::string(std::strerror(errno)) + ">";
    std::string out(256, '\0');
    const ssize_t n = ::read(fd, out.data(), out.size());
    ::close(fd);
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
  }

  // The errno lstat(2) gives for `name` (0 when it exists).
  int lstat_errno(const std::string& name) const {
    struct stat st {};
    return ::lstat(path(name).c_str(), &st) == 0 ? 0 : errno;
  }

  // Runs one op on the shard and returns its result.
  template <class Op>
  OperationResult<Op> run(Op op) {
    return rt_.block_on([](Op op) -> Task<OperationResult<Op>> {
      co_return co_await submit(std::move(op));
    }(std::move(op)));
  }

  std::string dir_;
  int dirfd_ = -1;
  Runtime rt_{RuntimeOptions{.shards = 1}};
};

// ---------------------------------------------------------------------------
// Statx

TEST_F(PathOpsTest, StatxReportsSizeAndModeOfAFile) {
  ASSERT_NO_FATAL_FAILURE(make_file("f", "twelve bytes"));
  ASSERT_EQ(::chmod(path("f").c_str(), 0640), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path("f").c_str(), &st), 0);

  const Result<struct statx> abs = run(Statx(AT_FDCWD, path("f")));
  ASSERT_TRUE(abs.has_value()) << abs.error().message();
  EXPECT_NE(abs->stx_mask & STATX_SIZE, 0u);
  EXPECT_EQ(abs->stx_size, 12u);
  EXPECT_TRUE(S_ISREG(abs->stx_mode));
  EXPECT_EQ(abs->stx_mode & 07777, 0640);
  EXPECT_EQ(abs->stx_ino, st.st_ino);

  // Relative to a directory fd.
  const Result<struct statx> rel = run(Statx(dirfd_, "f"));
  ASSERT_TRUE(rel.has_value()) << rel.error().message();
  EXPECT_EQ(rel->stx_size, 12u);
  EXPECT_EQ(rel->stx_ino, st.st_ino);

  // And a directory is a directory.
  const Result<struct statx> dir = run(Statx(AT_FDCWD, dir_));
  ASSERT_TRUE(dir.has_value()) << dir.error().message();
  EXPECT_TRUE(S_ISDIR(dir->stx_mode));
}

TEST_F(PathOpsTest, StatxOfAMissingPathFailsWithEnoent) {
  const Result<struct statx> r = run(Statx(dirfd_, "missing"));
  EXPECT_FALSE(r.has_value()) << "size " << r->stx_size;
  EXPECT_EQ(r.error(), errno_code(ENOENT));
}

TEST_F(PathOpsTest, StatxWithEmptyPathDescribesTheFd) {
  ASSERT_NO_FATAL_FAILURE(make_file("by_fd", "0123456789abcdef"));
  const int fd = ::open(path("by_fd").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  // Unlinked: only the fd can still reach it.
  ASSERT_EQ(::unlink(path("by_fd").c_str()), 0);

  const Result<struct statx> r = run(Statx(fd, "", AT_EMPTY_PATH));
  ::close(fd);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->stx_size, 16u);
  EXPECT_EQ(r->stx_ino, st.st_ino);
  EXPECT_EQ(r->stx_nlink, 0u);

  // Without AT_EMPTY_PATH an empty path is an error.
  const int fd2 = ::open(dir_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd2, 0);
  const Result<struct statx> no_flag = run(Statx(fd2, ""));
  ::close(fd2);
  EXPECT_FALSE(no_flag.has_value());
  EXPECT_EQ(no_flag.error(), errno_code(ENOENT));
}

// ---------------------------------------------------------------------------
// UnlinkAt

TEST_F(PathOpsTest, UnlinkAtRemovesAFile) {
  ASSERT_NO_FATAL_FAILURE(make_file("doomed", "x"));
  const Result<void> r = run(UnlinkAt(dirfd_, "doomed"));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(lstat_errno("doomed"), ENOENT);
}

TEST_F(PathOpsTest, UnlinkAtWithRemovedirRemovesADirectory) {
  ASSERT_EQ(::mkdir(path("sub").c_str(), 0700), 0);
  // Without AT_REMOVEDIR a directory is not unlinked.
  const Result<void> plain = run(UnlinkAt(dirfd_, "sub"));
  EXPECT_FALSE(plain.has_value());
  EXPECT_EQ(plain.error(), errno_code(EISDIR));
  EXPECT_EQ(lstat_errno("sub"), 0);

  const Result<void> r = run(UnlinkAt(dirfd_, "sub", AT_REMOVEDIR));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(lstat_errno("sub"), ENOENT);
}

TEST_F(PathOpsTest, UnlinkAtMissingPathFailsWithEnoent) {
  const Result<void> r = run(UnlinkAt(AT_FDCWD, path("missing")));
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), errno_code(ENOENT));
}

// ---------------------------------------------------------------------------
// RenameAt

TEST_F(PathOpsTest, RenameAtMovesAFile) {
  ASSERT_NO_FATAL_FAILURE(make_file("old", "payload"));
  ASSERT_EQ(::mkdir(path("dest").c_str(), 0700), 0);
  const Result<void> r =
      run(RenameAt(dirfd_, "old", AT_FDCWD, path("dest/new")));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(lstat_errno("old"), ENOENT);
  EXPECT_EQ(content_of("dest/new"), "payload");
}

TEST_F(PathOpsTest, RenameAtReplacesAnExistingTargetByDefault) {
  ASSERT_NO_FATAL_FAILURE(make_file("a", "from a"));
  ASSERT_NO_FATAL_FAILURE(make_file("b", "from b"));
  const Result<void> r = run(RenameAt(dirfd_, "a", dirfd_, "b"));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(lstat_errno("a"), ENOENT);
  EXPECT_EQ(content_of("b"), "from a");
}

TEST_F(PathOpsTest, RenameAtNoReplaceOnAnExistingTargetFailsWithEexist) {
  ASSERT_NO_FATAL_FAILURE(make_file("a", "from a"));
  ASSERT_NO_FATAL_FAILURE(make_file("b", "from b"));
  const Result<void> r =
      run(RenameAt(dirfd_, "a", dirfd_, "b", RENAME_NOREPLACE));
  if (!r.has_value() && r.error() == errno_code(EINVAL)) {
    GTEST_SKIP() << "the file system of " << dir_
                 << " does not support RENAME_NOREPLACE (EINVAL)";
  }
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), errno_code(EEXIST));
  EXPECT_EQ(content_of("a"), "from a");
  EXPECT_EQ(content_of("b"), "from b");

  // With a free target the same flags move the file.
  const Result<void> ok =
      run(RenameAt(dirfd_, "a", dirfd_, "c", RENAME_NOREPLACE));
  EXPECT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ(content_of("c"), "from a");
}

// ---------------------------------------------------------------------------
// MkdirAt

TEST_F(PathOpsTest, MkdirAtCreatesADirectory) {
  const Result<void> r = run(MkdirAt(dirfd_, "made", 0700));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path("made").c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const Result<void> nested = run(MkdirAt(AT_FDCWD, path("made/inner")));
  EXPECT_TRUE(nested.has_value()) << nested.error().message();
  EXPECT_EQ(lstat_errno("made/inner"), 0);
}

TEST_F(PathOpsTest, MkdirAtOnAnExistingPathFailsWithEexist) {
  ASSERT_EQ(::mkdir(path("there").c_str(), 0700), 0);
  const Result<void> r = run(MkdirAt(dirfd_, "there"));
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), errno_code(EEXIST));
  // A missing parent is ENOENT.
  const Result<void> orphan = run(MkdirAt(dirfd_, "no/such/parent"));
  EXPECT_FALSE(orphan.has_value());
  EXPECT_EQ(orphan.error(), errno_code(ENOENT));
}

// ---------------------------------------------------------------------------
// SymlinkAt

TEST_F(PathOpsTest, SymlinkAtCreatesALinkToTheTarget) {
  ASSERT_NO_FATAL_FAILURE(make_file("target", "through the link"));
  const Result<void> r = run(SymlinkAt("target", dirfd_, "link"));
  EXPECT_TRUE(r.has_value()) << r.error().message();
  char buf[256] = {};
  const ssize_t n = ::readlinkat(dirfd_, "link", buf, sizeof(buf) - 1);
  ASSERT_GE(n, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), "target");
  EXPECT_EQ(content_of("link"), "through the link");

  // A dangling target is stored as given.
  const Result<void> dangling =
      run(SymlinkAt("/no/such/file", AT_FDCWD, path("dangling")));
  EXPECT_TRUE(dangling.has_value()) << dangling.error().message();
  const ssize_t m = ::readlink(path("dangling").c_str(), buf, sizeof(buf) - 1);
  ASSERT_GE(m, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(m)), "/no/such/file");

  // An existing link path is EEXIST.
  const Result<void> again = run(SymlinkAt("elsewhere", dirfd_, "link"));
  EXPECT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), errno_code(EEXIST));
}

// ---------------------------------------------------------------------------
// LinkAt

TEST_F(PathOpsTest, LinkAtMakesASecondNameForTheFile) {
  ASSERT_NO_FATAL_FAILURE(make_file("first", "shared"));
  const Result<void> r = run(LinkAt(dirfd_, "first", dirfd_, "second"));
  EXPECT_TRUE(r.has_value()) << r.error().message();

  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat(path("first").c_str(), &a), 0);
  ASSERT_EQ(::stat(path("second").c_str(), &b), 0) << std::strerror(errno);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(content_of("second"), "shared");

  // Statx agrees, and an existing new path is EEXIST.
  const Result<struct statx> stx = run(Statx(dirfd_, "second"));
  ASSERT_TRUE(stx.has_value()) << stx.error().message();
  EXPECT_EQ(stx->stx_nlink, 2u);
  const Result<void> again = run(LinkAt(dirfd_, "first", dirfd_, "second"));
  EXPECT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), errno_code(EEXIST));
}

}  // namespace
}  // namespace shardio
