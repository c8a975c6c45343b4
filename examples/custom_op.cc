// custom_op: a user-written io_uring operation.
//
// FileSize wraps IORING_OP_STATX. It owns everything the kernel touches (the
// path string and the statx buffer the kernel writes into), fills one SQE in
// prepare() and turns the CQE into a Result in complete(). Nothing else is
// needed: shardio::submit, batch and chain accept it like any built-in op.
//
// Usage: custom_op [PATH...]   (defaults to a few files every Linux has)
#include <fcntl.h>
#include <linux/stat.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "shardio/shardio.h"

struct FileSize {
  explicit FileSize(std::string path) : path(std::move(path)) {}

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

shardio::Task<int> run(std::vector<std::string> paths) {
  // One op on its own...
  auto first = co_await shardio::submit(FileSize(paths.front()));
  std::printf(
      "%s: %s\n", paths.front().c_str(),
      first ? std::to_string(*first).c_str() : first.error().message().c_str());

  // ...and all of them in one submission.
  std::vector<FileSize> ops;
  for (const auto& p : paths) ops.emplace_back(p);
  auto sizes = co_await shardio::batch(std::span<FileSize>(ops));
  int failures = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i]) {
      std::printf("%-24s %12llu bytes\n", paths[i].c_str(),
                  static_cast<unsigned long long>(*sizes[i]));
    } else {
      std::printf("%-24s error: %s\n", paths[i].c_str(),
                  sizes[i].error().message().c_str());
      ++failures;
    }
  }
  co_return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  std::vector<std::string> paths(argv + 1, argv + argc);
  if (paths.empty()) paths = {"/etc/hostname", "/etc/os-release", "/bin/sh"};
  shardio::Runtime rt(shardio::RuntimeOptions{.shards = 1});
  return rt.block_on(run(std::move(paths)));
}
