// Per-shard registered (fixed) files and buffers: sparse tables created on
// first use, slots handed out from free lists. Registration is a ring
// operation, so it runs on the shard's own thread.
#include <sys/uio.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdint>

#include "shardio/detail/reactor.h"

namespace shardio::detail {

bool opcode_supported_here(uint8_t opcode) noexcept {
  Reactor* r = Reactor::current();
  return r == nullptr || r->opcode_supported(opcode);
}

Result<unsigned> Reactor::register_file(int fd) {
  // The kernel's update call takes -1 to mean "clear the slot" (and -2
  // "skip it"): passed through, the slot would be handed out with no file
  // in it.
  if (fd < 0) return errno_code(EBADF);
  if (fixed_file_slots_ == 0) {
    const int ret = io_uring_register_files_sparse(&ring_, max_fixed_files_);
    if (ret < 0) return error_from_res(ret);
    fixed_file_slots_ = max_fixed_files_;
    file_slot_used_.assign(fixed_file_slots_, false);
    free_file_slots_.reserve(fixed_file_slots_);
    for (unsigned i = fixed_file_slots_; i-- > 0;)
      free_file_slots_.push_back(i);
  }
  if (free_file_slots_.empty()) return errno_code(ENFILE);
  const unsigned slot = free_file_slots_.back();
  const int ret = io_uring_register_files_update(&ring_, slot, &fd, 1);
  if (ret < 0) return error_from_res(ret);
  free_file_slots_.pop_back();
  file_slot_used_[slot] = true;
  return slot;
}

Result<void> Reactor::unregister_file(unsigned slot) {
  // A slot that is not registered (never, or already released) is refused:
  // releasing it twice would hand it out twice.
  if (slot >= fixed_file_slots_ || !file_slot_used_[slot]) {
    return errno_code(EBADF);
  }
  int none = -1;
  const int ret = io_uring_register_files_update(&ring_, slot, &none, 1);
  if (ret < 0) return error_from_res(ret);
  file_slot_used_[slot] = false;
  free_file_slots_.push_back(slot);
  return {};
}

Result<unsigned> Reactor::register_buffer(void* base, std::size_t len) {
  // A null base is the kernel's "clear the slot" (with a length of 0; with
  // any other, EFAULT): refused here, so that no slot is handed out empty.
  if (base == nullptr) return errno_code(EINVAL);
  if (fixed_buffer_slots_ == 0) {
    const int ret =
        io_uring_register_buffers_sparse(&ring_, max_fixed_buffers_);
    if (ret < 0) return error_from_res(ret);
    fixed_buffer_slots_ = max_fixed_buffers_;
    buffer_slot_used_.assign(fixed_buffer_slots_, false);
    free_buffer_slots_.reserve(fixed_buffer_slots_);
    for (unsigned i = fixed_buffer_slots_; i-- > 0;) {
      free_buffer_slots_.push_back(i);
    }
  }
  if (free_buffer_slots_.empty()) return errno_code(ENOBUFS);
  const unsigned slot = free_buffer_slots_.back();
  iovec iov{base, len};
  __u64 tag = 0;
  const int ret =
      io_uring_register_buffers_update_tag(&ring_, slot, &iov, &tag, 1);
  if (ret < 0) return error_from_res(ret);
  free_buffer_slots_.pop_back();
  buffer_slot_used_[slot] = true;
  return slot;
}

Result<void> Reactor::unregister_buffer(unsigned slot) {
  if (slot >= fixed_buffer_slots_ || !buffer_slot_used_[slot]) {
    return errno_code(EBADF);
  }
  iovec none{nullptr, 0};
  __u64 tag = 0;
  const int ret =
      io_uring_register_buffers_update_tag(&ring_, slot, &none, &tag, 1);
  if (ret < 0) return error_from_res(ret);
  buffer_slot_used_[slot] = false;
  free_buffer_slots_.push_back(slot);
  return {};
}

Result<uint16_t> Reactor::register_buf_ring(void* ring_addr, unsigned entries) {
  // The kernel's own rules (a power of two below 65536, a page-aligned
  // address), checked first: a kernel that breaks one says EINVAL, which
  // is also what a kernel without buffer rings says to any registration.
  const auto addr = reinterpret_cast<uintptr_t>(ring_addr);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const uintptr_t page =
      page_size > 0 ? static_cast<uintptr_t>(page_size) : 4096;
  if (entries == 0 || entries >= 65536 || !std::has_single_bit(entries) ||
      addr == 0 || addr % page != 0) {
    return errno_code(EINVAL);
  }
  uint16_t group;
  if (!free_buf_groups_.empty()) {
    group = free_buf_groups_.back();
  } else if (buf_group_used_.size() < 0xffff) {
    group = static_cast<uint16_t>(buf_group_used_.size());
  } else {
    return errno_code(ENOSPC);
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(ring_addr);
  reg.ring_entries = entries;
  reg.bgid = group;
  const int ret = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (ret < 0) {
    // With the arguments checked, EINVAL is a kernel before 5.19, which does
    // not know the registration: say so plainly. IORING_OP_SOCKET, which
    // came in the same release, tells such a kernel apart (as in probe.cc);
    // a kernel that has it meant EINVAL.
    const bool no_buf_rings =
        ret == -EINVAL && !opcode_supported(IORING_OP_SOCKET);
    return errno_code(no_buf_rings ? EOPNOTSUPP : -ret);
  }
  if (!free_buf_groups_.empty()) {
    free_buf_groups_.pop_back();
  } else {
    buf_group_used_.push_back(false);
  }
  buf_group_used_[group] = true;
  return group;
}

Result<void> Reactor::unregister_buf_ring(uint16_t group) {
  if (group >= buf_group_used_.size() || !buf_group_used_[group]) {
    return errno_code(ENOENT);
  }
  const int ret = io_uring_unregister_buf_ring(&ring_, group);
  if (ret < 0) return error_from_res(ret);
  buf_group_used_[group] = false;
  free_buf_groups_.push_back(group);
  return {};
}

}  // namespace shardio::detail
