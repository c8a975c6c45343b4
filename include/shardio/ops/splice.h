// shardio/ops/splice.h — Splice and Tee: moving data between fds (one of
// them a pipe) without copying it through user space.
//
// An offset of -1 means "the fd's position" (and must be -1 for a pipe).
// Each names its opcode (kOpcode), so a kernel without it yields EOPNOTSUPP.
//
// Thread-safety: plain op values; see operation.h.
#pragma once

#include <fcntl.h>
#include <liburing.h>

#include <cstdint>

#include "shardio/result.h"

namespace shardio {

// splice(2); yields the number of bytes moved.
struct Splice {
  static constexpr uint8_t kOpcode = IORING_OP_SPLICE;
  Splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, uint32_t len,
         unsigned flags = 0)
      : fd_in(fd_in),
        off_in(off_in),
        fd_out(fd_out),
        off_out(off_out),
        len(len),
        flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept;
  int fd_in;
  int64_t off_in;
  int fd_out;
  int64_t off_out;
  uint32_t len;
  unsigned flags;
};

// tee(2) between two pipes; yields the number of bytes duplicated.
struct Tee {
  static constexpr uint8_t kOpcode = IORING_OP_TEE;
  Tee(int fd_in, int fd_out, uint32_t len, unsigned flags = 0)
      : fd_in(fd_in), fd_out(fd_out), len(len), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept;
  int fd_in;
  int fd_out;
  uint32_t len;
  unsigned flags;
};

}  // namespace shardio
