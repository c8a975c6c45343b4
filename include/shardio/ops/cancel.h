// shardio/ops/cancel.h — IORING_OP_ASYNC_CANCEL as a user-facing op.
//
// To cancel one op you awaited through submit(), prefer submit(op,
// stop_token). Cancel covers the rest: every op on an fd (Linux 5.19+), every
// op of the ring, or a raw user_data for SQEs you prepared yourself.
// complete() yields how many ops were cancelled, or ENOENT when none matched
// and EALREADY when the target was already running and could not be stopped.
//
// Thread-safety: a plain op value; see operation.h.
#pragma once

#include <liburing.h>

#include "shardio/result.h"

namespace shardio {

struct Cancel {
  // Cancels every in-flight op that uses `fd`.
  static Cancel fd(int fd) {
    return Cancel(Target::kFd, fd, 0, IORING_ASYNC_CANCEL_ALL);
  }
  // Cancels every in-flight op of this shard's ring.
  static Cancel all() { return Cancel(Target::kAny, -1, 0, 0); }
  // Cancels the op whose SQE carried `user_data`.
  static Cancel user_data(uint64_t ud) {
    return Cancel(Target::kUserData, -1, ud, 0);
  }

  void prepare(io_uring_sqe& sqe) noexcept;
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept;

  enum class Target : uint8_t { kFd, kAny, kUserData };
  Target target;
  int fd_;
  uint64_t ud;
  unsigned flags;

 private:
  Cancel(Target t, int fd, uint64_t ud, unsigned flags)
      : target(t), fd_(fd), ud(ud), flags(flags) {}
};

}  // namespace shardio
