// Per-thread free lists for coroutine frames; see detail/frame_alloc.h.
#include "shardio/detail/frame_alloc.h"

#include <atomic>
#include <new>

namespace shardio::detail {
namespace {

constexpr std::size_t kGranule = 64;
constexpr std::size_t kClasses = 32;  // 64 B .. 2 KiB
constexpr std::size_t kMaxPooled = kGranule * kClasses;
constexpr std::size_t kMaxPerClass = 1024;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHARDIO_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHARDIO_SANITIZED 1
#endif
#endif

// Under sanitizers the lists are off, so that a use of a freed frame is
// reported instead of landing in a recycled block.
#ifdef SHARDIO_SANITIZED
std::atomic<bool> g_pool_enabled{false};
#else
std::atomic<bool> g_pool_enabled{true};
#endif

struct FreeBlock {
  FreeBlock* next;
};

class FrameCache {
 public:
  ~FrameCache() {
    for (auto& head : heads_) {
      while (head != nullptr) {
        FreeBlock* b = head;
        head = b->next;
        ::operator delete(b);
      }
    }
  }
  void* pop(std::size_t cls) noexcept {
    FreeBlock* b = heads_[cls];
    if (b == nullptr) return nullptr;
    heads_[cls] = b->next;
    --counts_[cls];
    return b;
  }
  bool push(std::size_t cls, void* p) noexcept {
    if (counts_[cls] >= kMaxPerClass) return false;
    auto* b = static_cast<FreeBlock*>(p);
    b->next = heads_[cls];
    heads_[cls] = b;
    ++counts_[cls];
    return true;
  }

 private:
  FreeBlock* heads_[kClasses] = {};
  std::size_t counts_[kClasses] = {};
};

FrameCache& cache() {
  thread_local FrameCache c;
  return c;
}

}  // namespace

void* frame_alloc(std::size_t size) {
  if (size > kMaxPooled) return ::operator new(size);
  // Always allocate the whole class, so that a block allocated while the pool
  // is off can join a free list later.
  const std::size_t cls = (size + kGranule - 1) / kGranule - 1;
  if (g_pool_enabled.load(std::memory_order_relaxed)) {
    if (void* p = cache().pop(cls)) return p;
  }
  return ::operator new((cls + 1) * kGranule);
}

void frame_free(void* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  // Blocks are always released with unsized delete: a pooled block is larger
  // than the size its last user asked for.
  if (size <= kMaxPooled && g_pool_enabled.load(std::memory_order_relaxed)) {
    const std::size_t cls = (size + kGranule - 1) / kGranule - 1;
    if (cache().push(cls, p)) return;
  }
  ::operator delete(p);
}

void set_frame_pool_enabled(bool enabled) noexcept {
  g_pool_enabled.store(enabled, std::memory_order_relaxed);
}
bool frame_pool_enabled() noexcept {
  return g_pool_enabled.load(std::memory_order_relaxed);
}

}  // namespace shardio::detail
