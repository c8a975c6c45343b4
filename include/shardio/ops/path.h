// shardio/ops/path.h — ops on paths: Statx, UnlinkAt, RenameAt, MkdirAt,
// SymlinkAt, LinkAt.
//
// Each op owns its path strings (and Statx its statx buffer, which the
// kernel fills) until the final CQE. Paths are relative to a directory fd
// (AT_FDCWD for the working directory). A path with a NUL byte before its
// end fails with EINVAL without the kernel acting on it (the kernel would
// read the path only up to the NUL, and so name another file). Each op names
// its opcode (kOpcode), so a kernel without it yields EOPNOTSUPP.
//
// Thread-safety: plain op values; see operation.h.
#pragma once

#include <fcntl.h>
#include <liburing.h>
#include <linux/stat.h>
#include <sys/stat.h>

#include <string>
#include <utility>

#include "shardio/result.h"

namespace shardio {

// statx(2); yields the filled struct statx.
struct Statx {
  static constexpr uint8_t kOpcode = IORING_OP_STATX;
  Statx(int dirfd, std::string path, int flags = 0,
        unsigned mask = STATX_BASIC_STATS)
      : dirfd(dirfd), path(std::move(path)), flags(flags), mask(mask) {}

  void prepare(io_uring_sqe& sqe) noexcept;
  Result<struct statx> complete(const io_uring_cqe& cqe) noexcept;

  int dirfd;
  std::string path;
  int flags;
  unsigned mask;
  struct statx stx {};
};

// unlinkat(2); AT_REMOVEDIR in flags removes a directory.
struct UnlinkAt {
  static constexpr uint8_t kOpcode = IORING_OP_UNLINKAT;
  UnlinkAt(int dirfd, std::string path, int flags = 0)
      : dirfd(dirfd), path(std::move(path)), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  int dirfd;
  std::string path;
  int flags;
};

// renameat2(2).
struct RenameAt {
  static constexpr uint8_t kOpcode = IORING_OP_RENAMEAT;
  RenameAt(int old_dirfd, std::string old_path, int new_dirfd,
           std::string new_path, unsigned flags = 0)
      : old_dirfd(old_dirfd),
        old_path(std::move(old_path)),
        new_dirfd(new_dirfd),
        new_path(std::move(new_path)),
        flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  int old_dirfd;
  std::string old_path;
  int new_dirfd;
  std::string new_path;
  unsigned flags;
};

// mkdirat(2).
struct MkdirAt {
  static constexpr uint8_t kOpcode = IORING_OP_MKDIRAT;
  MkdirAt(int dirfd, std::string path, mode_t mode = 0755)
      : dirfd(dirfd), path(std::move(path)), mode(mode) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  int dirfd;
  std::string path;
  mode_t mode;
};

// symlinkat(2): a link at (new_dirfd, link_path) pointing to `target`.
struct SymlinkAt {
  static constexpr uint8_t kOpcode = IORING_OP_SYMLINKAT;
  SymlinkAt(std::string target, int new_dirfd, std::string link_path)
      : target(std::move(target)),
        new_dirfd(new_dirfd),
        link_path(std::move(link_path)) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  std::string target;
  int new_dirfd;
  std::string link_path;
};

// linkat(2): a hard link.
struct LinkAt {
  static constexpr uint8_t kOpcode = IORING_OP_LINKAT;
  LinkAt(int old_dirfd, std::string old_path, int new_dirfd,
         std::string new_path, int flags = 0)
      : old_dirfd(old_dirfd),
        old_path(std::move(old_path)),
        new_dirfd(new_dirfd),
        new_path(std::move(new_path)),
        flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  int old_dirfd;
  std::string old_path;
  int new_dirfd;
  std::string new_path;
  int flags;
};

}  // namespace shardio
