// shardio/ops/nop.h — IORING_OP_NOP: an op that does nothing, handy for
// measuring the runtime and for tests.
//
// Thread-safety: a plain op value; see operation.h.
#pragma once

#include <liburing.h>

#include "shardio/result.h"

namespace shardio {

struct Nop {
  void prepare(io_uring_sqe& sqe) noexcept { io_uring_prep_nop(&sqe); }
  Result<void> complete(const io_uring_cqe& cqe) noexcept {
    return void_result_from_res(cqe.res);
  }
};

}  // namespace shardio
