// Out-of-line parts of shardio/ops/file.h.
#include "shardio/ops/file.h"

namespace shardio {

void OpenAt::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(path)) return prep_invalid(sqe, kOpcode);
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

void Fsync::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_fsync(&sqe, fd.value, datasync ? IORING_FSYNC_DATASYNC : 0);
  fd.apply(sqe);
}

Result<void> Fsync::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void SyncFileRange::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_sync_file_range(&sqe, fd.value, len, offset,
                                static_cast<int>(flags));
  fd.apply(sqe);
}

Result<void> SyncFileRange::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void Fallocate::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_fallocate(&sqe, fd.value, mode, offset, len);
  fd.apply(sqe);
}

Result<void> Fallocate::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void Fadvise::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_fadvise(&sqe, fd.value, offset, len, advice);
  fd.apply(sqe);
}

Result<void> Fadvise::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void Madvise::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_madvise(&sqe, addr, len, advice);
}

Result<void> Madvise::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

}  // namespace shardio
