// shardio/buffer_pool.h — buffers registered with a shard's ring, for
// ReadFixed/WriteFixed (no page pinning per op).
//
//   auto pool = shardio::BufferPool::create(64, 64 * 1024);  // on a shard
//   auto buf = pool->acquire();                               // FixedBuffer
//   auto [n, b] = co_await shardio::submit(
//       shardio::ReadFixed(fd, std::move(*buf), offset));
//
// A BufferPool allocates `count` page-aligned buffers of `size` bytes and
// registers each in the shard's sparse buffer table. acquire() hands out a
// FixedBuffer, a move-only handle that returns its buffer to the pool when
// destroyed — after the op that held it has delivered its final CQE, since
// the op owns the handle until then. The pool's memory and registrations
// are released when the pool and every handle are gone.
//
// Empty handles (a default-constructed FixedBuffer, a moved-from one or a
// moved-from BufferPool) are safe to use: their accessors return 0 (data()
// null, slot() kNoSlot), acquire() fails with EINVAL, and ReadFixed or
// WriteFixed given an empty FixedBuffer completes with EINVAL.
//
// Thread-safety: a pool and its buffers belong to the shard that created
// them; create, use and drop them there. (Dropped elsewhere, the memory is
// freed but the slots stay registered until the ring closes.)
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "shardio/buffer.h"
#include "shardio/result.h"

namespace shardio {

namespace detail {
struct BufferPoolState;
}

class FixedBuffer {
 public:
  // What slot() says for an empty handle: an index past every
  // registered-buffer table (the kernel allows at most 16384 entries), so
  // that a fixed read or write naming it fails (EFAULT).
  static constexpr unsigned kNoSlot = 0xffff;

  FixedBuffer() = default;
  FixedBuffer(FixedBuffer&& o) noexcept
      : state_(std::exchange(o.state_, nullptr)),
        index_(o.index_),
        len_(std::exchange(o.len_, 0)) {}
  FixedBuffer& operator=(FixedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      state_ = std::exchange(o.state_, nullptr);
      index_ = o.index_;
      len_ = std::exchange(o.len_, 0);
    }
    return *this;
  }
  FixedBuffer(const FixedBuffer&) = delete;
  FixedBuffer& operator=(const FixedBuffer&) = delete;
  ~FixedBuffer() { release(); }

  // The buffer's memory; null for an empty handle.
  std::byte* data() const noexcept;
  // The bytes in use (set_size), at most capacity(); 0 for an empty handle.
  std::size_t size() const noexcept { return len_; }
  std::size_t capacity() const noexcept;
  // Sets size() to n, or to capacity() if n is larger.
  void set_size(std::size_t n) noexcept;
  // The slot in the shard's registered-buffer table (kNoSlot when empty).
  unsigned slot() const noexcept;
  explicit operator bool() const noexcept { return state_ != nullptr; }

 private:
  friend class BufferPool;
  FixedBuffer(detail::BufferPoolState* s, unsigned index, std::size_t len)
      : state_(s), index_(index), len_(len) {}
  void release() noexcept;

  detail::BufferPoolState* state_ = nullptr;
  unsigned index_ = 0;
  std::size_t len_ = 0;
};

class BufferPool {
 public:
  // The kernel's limits: at most 16384 registered buffers
  // (IORING_MAX_REG_BUFFERS) of at most 1 GiB each.
  static constexpr std::size_t kMaxCount = 16384;
  static constexpr std::size_t kMaxBufferSize = std::size_t{1} << 30;

  // Registers `count` buffers of `size` bytes (rounded up to whole pages)
  // with the calling shard's ring. Errors: EINVAL for a count outside
  // 1..kMaxCount or a size outside 1..kMaxBufferSize, checked before
  // anything is allocated; ENOMEM when the memory cannot be had; ENOBUFS
  // when the shard's registered-buffer table (RuntimeOptions::
  // max_fixed_buffers) has fewer free slots than `count` (what was
  // registered is released again); the kernel's error otherwise. Off a
  // shard it throws std::logic_error, having allocated nothing that
  // outlives the call.
  static Result<BufferPool> create(std::size_t count, std::size_t size);

  BufferPool(BufferPool&& o) noexcept
      : state_(std::exchange(o.state_, nullptr)) {}
  BufferPool& operator=(BufferPool&& o) noexcept;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // Whether this handle has a pool (false once moved from).
  explicit operator bool() const noexcept { return state_ != nullptr; }

  // A free buffer (its size() is the whole buffer), ENOBUFS when all are in
  // use, or EINVAL from a moved-from pool.
  Result<FixedBuffer> acquire();
  // Free buffers, and the size of each; 0 for a moved-from pool.
  std::size_t available() const noexcept;
  std::size_t buffer_size() const noexcept;

 private:
  explicit BufferPool(detail::BufferPoolState* s) noexcept : state_(s) {}
  detail::BufferPoolState* state_ = nullptr;
};

}  // namespace shardio
