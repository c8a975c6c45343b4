// BufferRing: the ring of io_uring_buf entries and the buffers behind it,
// mapped here (liburing 2.3 has no io_uring_setup_buf_ring) and registered
// through this_shard::register_buf_ring.
#include "shardio/buffer_ring.h"

#include <sys/mman.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <utility>
#include <vector>

#include "shardio/runtime.h"

namespace shardio {
namespace detail {

struct BufferRingState {
  ShardRef shard;
  io_uring_buf_ring* ring = nullptr;
  std::size_t ring_bytes = 0;
  std::byte* buffers = nullptr;
  std::size_t buffers_bytes = 0;
  std::size_t buffer_size = 0;
  unsigned count = 0;
  unsigned mask = 0;
  unsigned held = 0;  // buffers handed to the program
  uint16_t group = 0;
  bool registered = false;
  // BufferRing copies and ProvidedBuffers. Atomic only so that a buffer
  // dropped on another thread after the shard stopped can let go (see
  // ProvidedBuffer::release); everything else happens on the shard.
  std::atomic<uint64_t> refs{1};
  std::vector<absl::AnyInvocable<void()>> waiting;

  ~BufferRingState() {
    if (registered && this_shard::identity() == shard.identity()) {
      (void)this_shard::unregister_buf_ring(group);
    }
    // Off its shard (or after the runtime stopped) the group stays
    // registered until the ring closes. The kernel keeps its own reference
    // to the ring's pages, and no op can select from the group any more (ops
    // hold a reference), so unmapping is safe.
    if (ring != nullptr) ::munmap(ring, ring_bytes);
    if (buffers != nullptr) ::munmap(buffers, buffers_bytes);
  }

  void ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void recycle(uint16_t id) noexcept {
    io_uring_buf_ring_add(ring, buffers + std::size_t{id} * buffer_size,
                          static_cast<unsigned>(buffer_size), id,
                          static_cast<int>(mask), 0);
    io_uring_buf_ring_advance(ring, 1);
    --held;
    if (!waiting.empty()) {
      std::vector<absl::AnyInvocable<void()>> now;
      now.swap(waiting);
      for (auto& fn : now) fn();
    }
  }
};

}  // namespace detail

void ProvidedBuffer::release() noexcept {
  detail::BufferRingState* st = std::exchange(state_, nullptr);
  if (st == nullptr) return;
  data_ = nullptr;
  size_ = 0;
  const uint16_t id = id_;
  if (this_shard::identity() == st->shard.identity()) {
    st->recycle(id);
    st->unref();
    return;
  }
  // Dropped on another thread: the ring belongs to its shard. If the shard
  // has stopped, the message is destroyed unrun and only lets go of the
  // ring.
  struct GiveBack {
    detail::BufferRingState* st;
    uint16_t id;
    GiveBack(detail::BufferRingState* s, uint16_t i) noexcept : st(s), id(i) {}
    GiveBack(GiveBack&& o) noexcept
        : st(std::exchange(o.st, nullptr)), id(o.id) {}
    GiveBack(const GiveBack&) = delete;
    GiveBack& operator=(const GiveBack&) = delete;
    GiveBack& operator=(GiveBack&&) = delete;
    ~GiveBack() {
      if (st != nullptr) st->unref();
    }
    void operator()() {
      st->recycle(id);
      std::exchange(st, nullptr)->unref();
    }
  };
  st->shard.post(GiveBack(st, id));
}

Result<BufferRing> BufferRing::create(unsigned count, std::size_t buffer_size) {
  if (count == 0 || count > kMaxCount || !std::has_single_bit(count) ||
      buffer_size == 0 || buffer_size > kMaxBufferSize) {
    return Unexpected(errno_code(EINVAL));
  }
  auto* st = new detail::BufferRingState;
  BufferRing out(st);  // frees everything on an early return
  st->shard = this_shard::ref();
  st->count = count;
  st->mask = static_cast<unsigned>(io_uring_buf_ring_mask(count));
  st->buffer_size = buffer_size;
  const std::size_t page = 4096;
  st->ring_bytes = (count * sizeof(io_uring_buf) + page - 1) / page * page;
  void* ring = ::mmap(nullptr, st->ring_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring == MAP_FAILED) return Unexpected(errno_code(errno));
  st->ring = static_cast<io_uring_buf_ring*>(ring);
  // Buffers are mapped, not touched: pages are committed as the kernel fills
  // them.
  st->buffers_bytes = count * buffer_size;
  void* bufs = ::mmap(nullptr, st->buffers_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (bufs == MAP_FAILED) return Unexpected(errno_code(errno));
  st->buffers = static_cast<std::byte*>(bufs);
  io_uring_buf_ring_init(st->ring);
  Result<uint16_t> group = this_shard::register_buf_ring(st->ring, count);
  if (!group) return Unexpected(group.error());
  st->group = *group;
  st->registered = true;
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(st->ring, st->buffers + i * buffer_size,
                          static_cast<unsigned>(buffer_size),
                          static_cast<unsigned short>(i),
                          static_cast<int>(st->mask), static_cast<int>(i));
  }
  io_uring_buf_ring_advance(st->ring, static_cast<int>(count));
  return out;
}

BufferRing::BufferRing(const BufferRing& o) noexcept : st_(o.st_) {
  if (st_ != nullptr) st_->ref();
}

BufferRing& BufferRing::operator=(const BufferRing& o) noexcept {
  if (o.st_ != nullptr) o.st_->ref();
  if (st_ != nullptr) st_->unref();
  st_ = o.st_;
  return *this;
}

BufferRing& BufferRing::operator=(BufferRing&& o) noexcept {
  if (this != &o) {
    if (st_ != nullptr) st_->unref();
    st_ = std::exchange(o.st_, nullptr);
  }
  return *this;
}

BufferRing::~BufferRing() {
  if (st_ != nullptr) st_->unref();
}

// An empty ring (default-constructed or moved from) has no state: its
// accessors say 0 (and kNoGroup), it hands out no buffers and it calls no
// one back.
uint16_t BufferRing::group() const noexcept {
  return st_ != nullptr ? st_->group : kNoGroup;
}
unsigned BufferRing::count() const noexcept {
  return st_ != nullptr ? st_->count : 0;
}
std::size_t BufferRing::buffer_size() const noexcept {
  return st_ != nullptr ? st_->buffer_size : 0;
}
unsigned BufferRing::available() const noexcept {
  return st_ != nullptr ? st_->count - st_->held : 0;
}

ProvidedBuffer BufferRing::take(const io_uring_cqe& cqe) noexcept {
  if ((cqe.flags & IORING_CQE_F_BUFFER) == 0 || st_ == nullptr) return {};
  const auto id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  ++st_->held;
  st_->ref();
  const std::size_t n = cqe.res > 0 ? static_cast<std::size_t>(cqe.res) : 0;
  return ProvidedBuffer(st_, st_->buffers + std::size_t{id} * st_->buffer_size,
                        n, id);
}

void BufferRing::notify_when_available(absl::AnyInvocable<void()> fn) {
  // No buffer ever comes back to an empty ring: `fn` is dropped unrun.
  if (st_ == nullptr) return;
  st_->waiting.push_back(std::move(fn));
}

}  // namespace shardio
