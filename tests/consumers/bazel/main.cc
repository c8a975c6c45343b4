// A program built with shardio as a Bazel dependency (@shardio): two custom
// operations, one batch, results checked. Exits 0 only when every result is
// right.
#include <fcntl.h>
#include <linux/stat.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "shardio/shardio.h"

// IORING_OP_STATX: the size of a file. The op owns the path and the statx
// buffer the kernel writes into until its completion arrives.
struct FileSize {
  explicit FileSize(std::string p) : path(std::move(p)) {}

  void prepare(io_uring_sqe& sqe) {
    io_uring_prep_statx(&sqe, AT_FDCWD, path.c_str(), 0, STATX_SIZE, &stx);
  }
  shardio::Result<uint64_t> complete(const io_uring_cqe& cqe) {
    if (cqe.res < 0) return shardio::error_from_res(cqe.res);
    return uint64_t{stx.stx_size};
  }

  std::string path;
  struct statx stx {};
};
static_assert(shardio::Operation<FileSize>);

// IORING_OP_NOP that hands back a value of ours.
struct Echo {
  void prepare(io_uring_sqe& sqe) { io_uring_prep_nop(&sqe); }
  shardio::Result<int> complete(const io_uring_cqe& cqe) {
    if (cqe.res < 0) return shardio::error_from_res(cqe.res);
    return value;
  }
  int value = 0;
};
static_assert(shardio::Operation<Echo>);

static int failures = 0;
static void check(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

shardio::Task<int> run(std::string dir) {
  // Files of known sizes, written with plain POSIX calls.
  const std::vector<std::size_t> sizes = {0, 1, 4096, 12345};
  std::vector<FileSize> ops;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    std::string path = dir + "/f" + std::to_string(i);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::string data(sizes[i], 'x');
    bool written = fd >= 0 && ::write(fd, data.data(), data.size()) ==
                                  static_cast<ssize_t>(data.size());
    if (fd >= 0) ::close(fd);
    if (!written) co_return 2;
    ops.emplace_back(path);
  }

  // A batch of custom ops of different types: one submission, a tuple back.
  // (Bind ops to variables first: GCC 12 mishandles temporaries inside
  // co_await.)
  FileSize missing(dir + "/missing");
  Echo seven{.value = 7};
  Echo answer{.value = 42};
  auto [m, a, b] = co_await shardio::batch(std::move(missing), seven, answer);
  check(!m && m.error() == std::errc::no_such_file_or_directory,
        "statx of a missing file fails with ENOENT");
  check(a && *a == 7 && b && *b == 42, "nops hand back their values");

  // A batch over a span of one op type: a vector back, in order.
  auto got = co_await shardio::batch(std::span<FileSize>(ops));
  bool all = got.size() == sizes.size();
  for (std::size_t i = 0; all && i < sizes.size(); ++i) {
    all = got[i] && *got[i] == sizes[i];
  }
  check(all, "batched statx sizes match the files written");
  co_return failures == 0 ? 0 : 1;
}

int main() {
  char tmpl[] = "/tmp/shardio-consumer-XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  if (dir == nullptr) return 2;
  int rc = 0;
  {
    shardio::Runtime rt(shardio::RuntimeOptions{.shards = 1});
    rc = rt.block_on(run(dir));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::printf("%s\n", rc == 0 ? "all results right" : "wrong results");
  return rc;
}
