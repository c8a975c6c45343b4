// Out-of-line parts of shardio/ops/path.h.
#include "shardio/ops/path.h"

#include "shardio/ops/file.h"  // prep_invalid, has_nul

namespace shardio {

void Statx::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(path)) return prep_invalid(sqe, kOpcode);
  io_uring_prep_statx(&sqe, dirfd, path.c_str(), flags, mask, &stx);
}

Result<struct statx> Statx::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return error_from_res(cqe.res);
  return stx;
}

void UnlinkAt::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(path)) return prep_invalid(sqe, kOpcode);
  io_uring_prep_unlinkat(&sqe, dirfd, path.c_str(), flags);
}

Result<void> UnlinkAt::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void RenameAt::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(old_path) || has_nul(new_path)) return prep_invalid(sqe, kOpcode);
  io_uring_prep_renameat(&sqe, old_dirfd, old_path.c_str(), new_dirfd,
                         new_path.c_str(), flags);
}

Result<void> RenameAt::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void MkdirAt::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(path)) return prep_invalid(sqe, kOpcode);
  io_uring_prep_mkdirat(&sqe, dirfd, path.c_str(), mode);
}

Result<void> MkdirAt::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void SymlinkAt::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(target) || has_nul(link_path)) return prep_invalid(sqe, kOpcode);
  io_uring_prep_symlinkat(&sqe, target.c_str(), new_dirfd, link_path.c_str());
}

Result<void> SymlinkAt::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void LinkAt::prepare(io_uring_sqe& sqe) noexcept {
  if (has_nul(old_path) || has_nul(new_path)) return prep_invalid(sqe, kOpcode);
  io_uring_prep_linkat(&sqe, old_dirfd, old_path.c_str(), new_dirfd,
                       new_path.c_str(), flags);
}

Result<void> LinkAt::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

}  // namespace shardio
