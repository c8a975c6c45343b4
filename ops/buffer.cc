// AlignedBuffer, BufferPool and FixedBuffer.
#include "shardio/buffer.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

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

  BufferPoolState() = default;
  BufferPoolState(const BufferPoolState&) = delete;
  BufferPoolState& operator=(const BufferPoolState&) = delete;
  ~BufferPoolState() {
    // Off its shard (a misuse), the slots cannot be released from here: they
    // stay registered until the ring closes. The kernel holds its own
    // references to the pages, so freeing the memory is still safe.
    if (!slots.empty() && this_shard::identity() == shard) {
      for (unsigned slot : slots) (void)this_shard::unregister_buffer(slot);
    }
  }

  std::byte* at(unsigned i) noexcept { return memory.data() + i * buffer_size; }
  void unref() noexcept {
    if (--refs == 0) delete this;
  }
};

}  // namespace detail

// An empty handle (state_ null) has no memory and no slot: its accessors
// say so with 0, null and kNoSlot instead of following the null state, so
// that an op given one fails cleanly (see ReadFixed).
std::byte* FixedBuffer::data() const noexcept {
  return state_ != nullptr ? state_->at(index_) : nullptr;
}
std::size_t FixedBuffer::capacity() const noexcept {
  return state_ != nullptr ? state_->buffer_size : 0;
}
void FixedBuffer::set_size(std::size_t n) noexcept {
  const std::size_t cap = capacity();
  len_ = n < cap ? n : cap;
}
unsigned FixedBuffer::slot() const noexcept {
  return state_ != nullptr ? state_->slots[index_] : kNoSlot;
}

void FixedBuffer::release() noexcept {
  if (state_ == nullptr) return;
  state_->free.push_back(index_);
  len_ = 0;
  std::exchange(state_, nullptr)->unref();
}

Result<BufferPool> BufferPool::create(std::size_t count, std::size_t size) {
  // Checked before anything is allocated: a count or size past the kernel's
  // limits could never be registered. With size at most 1 GiB, rounding it
  // up to whole pages cannot wrap; the total (at most 2^44 bytes) can only
  // overflow a 32-bit size_t.
  if (count == 0 || count > kMaxCount || size == 0 || size > kMaxBufferSize) {
    return errno_code(EINVAL);
  }
  constexpr std::size_t kPage = 4096;
  const std::size_t buffer_size = (size + kPage - 1) / kPage * kPage;
  std::size_t total = 0;
  if (__builtin_mul_overflow(buffer_size, count, &total)) {
    return errno_code(EINVAL);
  }
  // Owned here until the BufferPool takes it: a throw on the way (off a
  // shard, register_buffer throws std::logic_error) frees it, and its
  // destructor unregisters what was registered.
  std::unique_ptr<detail::BufferPoolState> st;
  try {
    st = std::make_unique<detail::BufferPoolState>();
    st->buffer_size = buffer_size;
    st->memory = AlignedBuffer(total, kPage);
    st->slots.reserve(count);
    st->free.reserve(count);
  } catch (const std::bad_alloc&) {
    return errno_code(ENOMEM);
  }
  for (unsigned i = 0; i < count; ++i) {
    auto slot = this_shard::register_buffer(st->at(i), st->buffer_size);
    if (!slot) return slot.error();  // ~BufferPoolState unregisters the rest
    st->slots.push_back(*slot);      // reserved: does not throw
  }
  for (unsigned i = static_cast<unsigned>(count); i-- > 0;) {
    st->free.push_back(i);
  }
  return BufferPool(st.release());
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
  if (state_ == nullptr) return errno_code(EINVAL);  // moved from
  if (state_->free.empty()) return errno_code(ENOBUFS);
  const unsigned i = state_->free.back();
  state_->free.pop_back();
  ++state_->refs;
  return FixedBuffer(state_, i, state_->buffer_size);
}

std::size_t BufferPool::available() const noexcept {
  return state_ != nullptr ? state_->free.size() : 0;
}
std::size_t BufferPool::buffer_size() const noexcept {
  return state_ != nullptr ? state_->buffer_size : 0;
}

}  // namespace shardio
