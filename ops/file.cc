// Out-of-line parts of shardio/ops/file.h.
#include "shardio/ops/file.h"

namespace shardio {

void OpenAt::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_openat(&sqe, dirfd, path.c_str(), flags | O_CLOEXEC, mode);
}

Result<int> OpenAt::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return error_from_res(cqe.res);
  return cqe.res;
}

void Close::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_close(&sqe, fd);
}

Result<void> Close::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

}  // namespace shardio
