// shardio/buffer.h — owned buffers: what read and write ops hold while the
// kernel may touch them.
//
// An OwnedBuffer is any movable contiguous container of bytes
// (std::vector<std::byte>, std::vector<char>, std::string, std::array, ...).
// An op takes it by value, keeps it at a fixed address inside its completion
// record until the final CQE, and hands it back with the result:
//
//   auto [n, buf] = co_await shardio::submit(Read(fd, std::move(buf), 0));
//
// Thread-safety: plain values.
#pragma once

#include <concepts>
#include <cstddef>
#include <iterator>
#include <utility>

#include "shardio/result.h"

namespace shardio {

template <class B>
concept OwnedBuffer = std::move_constructible<B> && requires(B& b) {
  { std::data(b) } -> std::convertible_to<const void*>;
  { std::size(b) } -> std::convertible_to<std::size_t>;
  requires sizeof(*std::data(b)) == 1;
};

// Owned bytes at an alignment the caller chooses (4096 by default), for
// O_DIRECT I/O. Zero-filled; move-only.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t size, std::size_t alignment = 4096);
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        alignment_(o.alignment_) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();

  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t alignment() const noexcept { return alignment_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t alignment_ = 4096;
};

// The result of an I/O op that carried a buffer: the byte count (or error)
// and the buffer itself, returned whatever happened.
template <class B>
struct IoResult {
  Result<uint32_t> res;
  B buf;
};

}  // namespace shardio
