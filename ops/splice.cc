// Out-of-line parts of shardio/ops/splice.h.
#include "shardio/ops/splice.h"

namespace shardio {

void Splice::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_splice(&sqe, fd_in, off_in, fd_out, off_out, len, flags);
}

Result<uint32_t> Splice::complete(const io_uring_cqe& cqe) noexcept {
  return result_from_res(cqe.res);
}

void Tee::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_tee(&sqe, fd_in, fd_out, len, flags);
}

Result<uint32_t> Tee::complete(const io_uring_cqe& cqe) noexcept {
  return result_from_res(cqe.res);
}

}  // namespace shardio
