// shardio/buffer_ring.h — provided-buffer rings: receive buffers the kernel
// picks at completion time, so a connection that has nothing to read holds no
// buffer.
//
// A BufferRing is `count` buffers of `buffer_size` bytes registered with the
// calling shard's ring as one buffer group (IORING_REGISTER_PBUF_RING). An op
// that selects from the group (RecvMultishot, RecvMsgMultishot, or any op of
// your own that sets IOSQE_BUFFER_SELECT and sqe.buf_group = group()) gets a
// CQE naming the buffer the kernel filled; take(cqe) turns it into a
// ProvidedBuffer, which gives the buffer back to the ring when it is
// destroyed (or release()d). When every buffer is out, the kernel ends
// multishot receives with ENOBUFS; the receive ops then wait for a buffer to
// come back (notify_when_available) and re-arm.
//
//   auto ring = shardio::BufferRing::create(256, 4096);  // on a shard
//   auto stream = shardio::submit_multishot(shardio::RecvMultishot(fd, *ring));
//
// A shard may have several rings (groups). The ring's memory lives until the
// last BufferRing copy, ProvidedBuffer and op using it are gone; an op holds
// a copy, so the kernel never writes into freed memory.
//
// An empty BufferRing (default-constructed or moved from) is safe to use:
// count(), buffer_size() and available() are 0, group() is kNoGroup, take()
// yields empty buffers, and RecvMultishot or RecvMsgMultishot given one ends
// with EINVAL as its only item.
//
// Thread-safety: a BufferRing and its buffers belong to the shard that
// created them. Copy and destroy BufferRing values on that shard. A
// ProvidedBuffer may be destroyed on another thread: the buffer is then
// handed back to its shard by a posted message (after Runtime::stop() it just
// lets go of the ring's memory). Destroy buffers before the Runtime object
// itself is destroyed.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "shardio/result.h"

namespace shardio {

namespace detail {
struct BufferRingState;
}

// One buffer of a BufferRing, filled by the kernel; returns to the ring when
// destroyed. Move-only. An OwnedBuffer: it can be sent as it is
// (Send(fd, std::move(buf))) and goes back to the ring after the send.
class ProvidedBuffer {
 public:
  ProvidedBuffer() = default;
  ProvidedBuffer(ProvidedBuffer&& o) noexcept
      : state_(std::exchange(o.state_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        id_(o.id_) {}
  ProvidedBuffer& operator=(ProvidedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      state_ = std::exchange(o.state_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      id_ = o.id_;
    }
    return *this;
  }
  ProvidedBuffer(const ProvidedBuffer&) = delete;
  ProvidedBuffer& operator=(const ProvidedBuffer&) = delete;
  ~ProvidedBuffer() { release(); }

  // The bytes the kernel put there (size() of them).
  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  // Narrows the buffer to its first n bytes (n <= size()).
  void truncate(std::size_t n) noexcept {
    if (n < size_) size_ = n;
  }
  // Drops the front n bytes (n <= size()); used to skip headers.
  void consume_front(std::size_t n) noexcept {
    if (n > size_) n = size_;
    data_ += n;
    size_ -= n;
  }
  // The buffer id within its ring (meaningful while held).
  uint16_t id() const noexcept { return id_; }
  // Gives the buffer back to its ring now. Idempotent.
  void release() noexcept;

 private:
  friend class BufferRing;
  ProvidedBuffer(detail::BufferRingState* st, std::byte* data, std::size_t size,
                 uint16_t id) noexcept
      : state_(st), data_(data), size_(size), id_(id) {}

  detail::BufferRingState* state_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  uint16_t id_ = 0;
};

class BufferRing {
 public:
  // The kernel's limits: count a power of two up to 32768.
  static constexpr unsigned kMaxCount = 32768;
  static constexpr std::size_t kMaxBufferSize = std::size_t{1} << 30;
  // What group() says for an empty ring: an id shardio never registers
  // (ids stop at 65534), so an op that selects from it finds no buffers
  // (ENOBUFS) rather than another ring's.
  static constexpr uint16_t kNoGroup = 0xffff;

  // Creates `count` buffers of `buffer_size` bytes and registers them with
  // the calling shard's ring as a new buffer group. Errors: EINVAL for a
  // count that is not a power of two in 1..32768 or a size outside
  // 1..kMaxBufferSize; EOPNOTSUPP when the kernel has no buffer rings
  // (before 5.19); the kernel's error otherwise. Must run on a shard.
  static Result<BufferRing> create(unsigned count, std::size_t buffer_size);

  BufferRing() = default;
  BufferRing(const BufferRing& o) noexcept;
  BufferRing& operator=(const BufferRing& o) noexcept;
  BufferRing(BufferRing&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  BufferRing& operator=(BufferRing&& o) noexcept;
  ~BufferRing();

  // Whether this value holds a ring (false when default-constructed or
  // moved from).
  explicit operator bool() const noexcept { return st_ != nullptr; }

  // The buffer group id to put in sqe.buf_group (kNoGroup when empty).
  uint16_t group() const noexcept;
  unsigned count() const noexcept;
  std::size_t buffer_size() const noexcept;
  // Buffers in the ring for the kernel to pick (not held by the program).
  unsigned available() const noexcept;

  // The buffer a CQE names (IORING_CQE_F_BUFFER set), holding cqe.res bytes.
  // A CQE without a buffer, or any CQE given to an empty ring, yields an
  // empty ProvidedBuffer.
  ProvidedBuffer take(const io_uring_cqe& cqe) noexcept;

  // Runs `fn` once, on this shard, the next time a buffer comes back to the
  // ring. Multishot receives use it to re-arm after ENOBUFS. An empty ring
  // never gets a buffer back: it destroys `fn` without running it.
  void notify_when_available(absl::AnyInvocable<void()> fn);

 private:
  explicit BufferRing(detail::BufferRingState* st) noexcept : st_(st) {}
  detail::BufferRingState* st_ = nullptr;
};

}  // namespace shardio
