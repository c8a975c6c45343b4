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
  FixedBuffer() = default;
  FixedBuffer(FixedBuffer&& o) noexcept
      : state_(std::exchange(o.state_, nullptr)),
        index_(o.index_),
        len_(o.len_) {}
  FixedBuffer& operator=(FixedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      state_ = std::exchange(o.state_, nullptr);
      index_ = o.index_;
      len_ = o.len_;
    }
    return *this;
  }
  FixedBuffer(const FixedBuffer&) = delete;
  FixedBuffer& operator=(const FixedBuffer&) = delete;
  ~FixedBuffer() { release(); }

  std::byte* data() const noexcept;
  // The bytes in use (set_size), at most capacity().
  std::size_t size() const noexcept { return len_; }
  std::size_t capacity() const noexcept;
  void set_size(std::size_t n) noexcept;
  // The slot in the shard's registered-buffer table.
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
  // Registers `count` buffers of `size` bytes with the calling shard's ring.
  static Result<BufferPool> create(std::size_t count, std::size_t size);

  BufferPool(BufferPool&& o) noexcept
      : state_(std::exchange(o.state_, nullptr)) {}
  BufferPool& operator=(BufferPool&& o) noexcept;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // A free buffer (its size() is the whole buffer), or ENOBUFS when all are
  // in use.
  Result<FixedBuffer> acquire();
  std::size_t available() const noexcept;
  std::size_t buffer_size() const noexcept;

 private:
  explicit BufferPool(detail::BufferPoolState* s) noexcept : state_(s) {}
  detail::BufferPoolState* state_ = nullptr;
};

}  // namespace shardio
