// Out-of-line parts of shardio/ops/timeout.h.
#include "shardio/ops/timeout.h"

namespace shardio {

__kernel_timespec to_kernel_timespec(std::chrono::nanoseconds d) noexcept {
  if (d < std::chrono::nanoseconds::zero())
    d = std::chrono::nanoseconds::zero();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
  return __kernel_timespec{
      .tv_sec = secs.count(),
      .tv_nsec = static_cast<long long>((d - secs).count())};
}

void Timeout::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_timeout(&sqe, &ts, count, flags);
}

Result<void> Timeout::complete(const io_uring_cqe& cqe) noexcept {
  // -ETIME: the time ran out; >= 0: `count` completions arrived first.
  if (cqe.res == -ETIME || cqe.res >= 0) return {};
  return error_from_res(cqe.res);
}

void LinkTimeout::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_link_timeout(&sqe, &ts, flags);
}

bool LinkTimeout::complete(const io_uring_cqe& cqe) noexcept {
  return cqe.res == -ETIME;
}

}  // namespace shardio
