// AlignedBuffer, BufferPool and FixedBuffer.
#include "shardio/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "shardio/buffer_pool.h"
#include "shardio/runtime.h"

namespace shardio {

AlignedBuffer::AlignedBuffer(std::size_t size, std::size_t alignment)
    : size_(size), alignment_(alignment) {
  if (size == 0) return;
  data_ = static_cast<std::byte*>(
      ::operator new (size, std::align_val_t{alignment}));
  std::memset(data_, 0, size);
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    this->~AlignedBuffer();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    alignment_ = o.alignment_;
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() {
  if (data_ != nullptr) {
    ::operator delete (data_, std::align_val_t{alignment_});
  }
}

namespace detail {

// One shard's pool: the memory, the slots it was registered at, a free list,
// and a count of owners (the BufferPool plus every FixedBuffer out).
struct BufferPoolState {
  AlignedBuffer memory;
  std::size_t buffer_size = 0;
  std::vector<unsigned> slots;  // slot of buffer i
  std::vector<unsigned> free;   // indices of free buffers
  uint32_t refs = 1;
  uintptr_t shard = this_shard::identity();  // where the slots live

  std::byte* at(unsigned i) noexcept { return memory.data() + i * buffer_size; }
  void unref() noexcept {
    if (--refs != 0) return;
    // Off its shard (a misuse), the slots cannot be released from here: they
    // stay registered until the ring closes. The kernel holds its own
    // references to the pages, so freeing the memory is still safe.
    if (this_shard::identity() == shard) {
      for (unsigned slot : slots) (void)this_shard::unregister_buffer(slot);
    }
    delete this;
  }
};

}  // namespace detail

std::byte* FixedBuffer::data() const noexcept { return state_->at(index_); }
std::size_t FixedBuffer::capacity() const noexcept {
  return state_->buffer_size;
}
void FixedBuffer::set_size(std::size_t n) noexcept {
  len_ = n < state_->buffer_size ? n : state_->buffer_size;
}
unsigned FixedBuffer::slot() const noexcept { return state_->slots[index_]; }

void FixedBuffer::release() noexcept {
  if (state_ == nullptr) return;
  state_->free.push_back(index_);
  std::exchange(state_, nullptr)->unref();
}

Result<BufferPool> BufferPool::create(std::size_t count, std::size_t size) {
  if (count == 0 || size == 0) return errno_code(EINVAL);
  auto* st = new detail::BufferPoolState();
  st->buffer_size = (size + 4095) / 4096 * 4096;
  st->memory = AlignedBuffer(st->buffer_size * count, 4096);
  for (unsigned i = 0; i < count; ++i) {
    auto slot = this_shard::register_buffer(st->at(i), st->buffer_size);
    if (!slot) {
      const std::error_code ec = slot.error();
      st->unref();  // unregisters what was registered
      return ec;
    }
    st->slots.push_back(*slot);
  }
  for (unsigned i = static_cast<unsigned>(count); i-- > 0;) {
    st->free.push_back(i);
  }
  return BufferPool(st);
}

BufferPool& BufferPool::operator=(BufferPool&& o) noexcept {
  if (this != &o) {
    if (state_ != nullptr) state_->unref();
    state_ = std::exchange(o.state_, nullptr);
  }
  return *this;
}

BufferPool::~BufferPool() {
  if (state_ != nullptr) state_->unref();
}

Result<FixedBuffer> BufferPool::acquire() {
  if (state_->free.empty()) return errno_code(ENOBUFS);
  const unsigned i = state_->free.back();
  state_->free.pop_back();
  ++state_->refs;
  return FixedBuffer(state_, i, state_->buffer_size);
}

std::size_t BufferPool::available() const noexcept {
  return state_->free.size();
}
std::size_t BufferPool::buffer_size() const noexcept {
  return state_->buffer_size;
}

}  // namespace shardio
