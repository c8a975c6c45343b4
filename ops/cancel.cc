// Out-of-line parts of shardio/ops/cancel.h.
#include "shardio/ops/cancel.h"

namespace shardio {

void Cancel::prepare(io_uring_sqe& sqe) noexcept {
  switch (target) {
    case Target::kFd:
      io_uring_prep_cancel_fd(&sqe, fd_, flags);
      break;
    case Target::kAny:
      io_uring_prep_cancel64(&sqe, 0, IORING_ASYNC_CANCEL_ANY);
      break;
    case Target::kUserData:
      io_uring_prep_cancel64(&sqe, ud, flags);
      break;
  }
}

Result<uint32_t> Cancel::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res == 0) {
    // Without IORING_ASYNC_CANCEL_ALL/ANY the kernel reports 0 for "one
    // cancelled"; with them it reports a count, 0 meaning none matched.
    if (target == Target::kUserData) return 1u;
    return errno_code(ENOENT);
  }
  return result_from_res(cqe.res);
}

}  // namespace shardio
