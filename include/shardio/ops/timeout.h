// shardio/ops/timeout.h — timers: Timeout (IORING_OP_TIMEOUT), sleep(),
// LinkTimeout (IORING_OP_LINK_TIMEOUT) and with_timeout().
//
//   co_await shardio::sleep(10ms);                       // Result<void>
//   auto r = co_await shardio::with_timeout(op, 50ms);   // op's result
//
// with_timeout() links a LinkTimeout behind the op; if the time runs out
// first the kernel cancels the op, which then completes with whatever the
// kernel reports for it (normally -ECANCELED; the timer itself reports
// -ETIME). The op's buffers stay alive until both CQEs have arrived.
//
// Thread-safety: plain op values; see operation.h.
#pragma once

#include <liburing.h>

#include <chrono>
#include <utility>

#include "shardio/batch.h"
#include "shardio/operation.h"
#include "shardio/result.h"
#include "shardio/task.h"

namespace shardio {

// A duration as the kernel's timespec; negative durations become zero.
__kernel_timespec to_kernel_timespec(std::chrono::nanoseconds d) noexcept;

// Completes after `d` (or after `count` other completions, if non-zero).
// An expired timer is a success; a cancelled one yields ECANCELED.
struct Timeout {
  explicit Timeout(std::chrono::nanoseconds d, unsigned count = 0,
                   unsigned flags = 0)
      : ts(to_kernel_timespec(d)), count(count), flags(flags) {}

  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;

  __kernel_timespec ts;
  unsigned count;
  unsigned flags;
};

// Suspends the calling task for `d` without blocking its shard.
[[nodiscard]] inline auto sleep(std::chrono::nanoseconds d) {
  return submit(Timeout(d));
}

// Must follow an op linked with IOSQE_IO_LINK (chain() does that); cancels it
// if it has not completed after `d`. complete() says whether the timer fired.
struct LinkTimeout {
  explicit LinkTimeout(std::chrono::nanoseconds d, unsigned flags = 0)
      : ts(to_kernel_timespec(d)), flags(flags) {}

  void prepare(io_uring_sqe& sqe) noexcept;
  bool complete(const io_uring_cqe& cqe) noexcept;

  __kernel_timespec ts;
  unsigned flags;
};

// Runs `op` with a deadline; yields the op's result.
template <Operation Op>
Task<OperationResult<Op>> with_timeout(Op op, std::chrono::nanoseconds d) {
  auto [res, fired] = co_await chain(std::move(op), LinkTimeout(d));
  (void)fired;
  co_return std::move(res);
}

}  // namespace shardio
