// shardio/detail/spsc_queue.h — a bounded single-producer/single-consumer
// ring of T (not part of the public API).
//
// Head and tail sit on their own cache lines; each side keeps a private copy
// of the other side's index and reloads it only when the queue looks full
// (producer) or empty (consumer), so a busy pair touches the shared lines
// about once per batch instead of once per element.
//
// Thread-safety: exactly one thread may push and exactly one may pop at any
// time; size_approx() may be called from either.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <utility>

namespace shardio::detail {

inline constexpr std::size_t kCacheLine = 64;

template <class T>
class SpscQueue {
 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit SpscQueue(std::size_t capacity) {
    std::size_t cap = 2;
    while (cap < capacity) cap *= 2;
    mask_ = cap - 1;
    slots_ = static_cast<Slot*>(
        ::operator new (sizeof(Slot) * cap, std::align_val_t{alignof(Slot)}));
  }
  SpscQueue(const SpscQueue&) = delete;
  SpscQueue& operator=(const SpscQueue&) = delete;
  ~SpscQueue() {
    while (pop()) {
    }
    ::operator delete (slots_, std::align_val_t{alignof(Slot)});
  }

  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Producer side. Returns false (and leaves `v` untouched) when full.
  template <class U>
  bool try_push(U&& v) {
    const std::size_t t = tail_.value.load(std::memory_order_relaxed);
    if (t - producer_.cached_head > mask_) {
      producer_.cached_head = head_.value.load(std::memory_order_acquire);
      if (t - producer_.cached_head > mask_) return false;
    }
    new (&slots_[t & mask_].storage) T(std::forward<U>(v));
    // seq_cst, so that a producer that then reads the consumer's "sleeping"
    // flag (seq_cst) and a consumer that set it and then looks at the tail
    // (empty_seq_cst) cannot both miss each other.
    tail_.value.store(t + 1, std::memory_order_seq_cst);
    return true;
  }

  // Consumer side: a pointer to the oldest element, or null when empty.
  T* front() noexcept {
    const std::size_t h = head_.value.load(std::memory_order_relaxed);
    if (h == consumer_.cached_tail) {
      consumer_.cached_tail = tail_.value.load(std::memory_order_acquire);
      if (h == consumer_.cached_tail) return nullptr;
    }
    return std::launder(reinterpret_cast<T*>(&slots_[h & mask_].storage));
  }
  // Consumer side: destroys the element front() returned.
  void pop_front() noexcept {
    const std::size_t h = head_.value.load(std::memory_order_relaxed);
    std::launder(reinterpret_cast<T*>(&slots_[h & mask_].storage))->~T();
    // seq_cst for the same reason as the tail in try_push, towards a
    // producer waiting for room (Channel).
    head_.value.store(h + 1, std::memory_order_seq_cst);
  }
  std::optional<T> pop() {
    T* f = front();
    if (f == nullptr) return std::nullopt;
    std::optional<T> out(std::move(*f));
    pop_front();
    return out;
  }

  // Either side: whether the queue looked empty (a fresh, ordered look).
  bool empty_seq_cst() const noexcept {
    return head_.value.load(std::memory_order_seq_cst) ==
           tail_.value.load(std::memory_order_seq_cst);
  }
  // Producer side: whether there is room (a fresh, ordered look).
  bool has_room_seq_cst() const noexcept {
    return tail_.value.load(std::memory_order_relaxed) -
               head_.value.load(std::memory_order_seq_cst) <=
           mask_;
  }
  std::size_t size_approx() const noexcept {
    return tail_.value.load(std::memory_order_relaxed) -
           head_.value.load(std::memory_order_relaxed);
  }

 private:
  struct Slot {
    alignas(T) unsigned char storage[sizeof(T)];
  };
  struct alignas(kCacheLine) Index {
    std::atomic<std::size_t> value{0};
  };
  struct alignas(kCacheLine) ProducerCache {
    std::size_t cached_head = 0;
  };
  struct alignas(kCacheLine) ConsumerCache {
    std::size_t cached_tail = 0;
  };

  Index head_;  // written by the consumer
  Index tail_;  // written by the producer
  ProducerCache producer_;
  ConsumerCache consumer_;
  Slot* slots_ = nullptr;
  std::size_t mask_ = 0;
};

}  // namespace shardio::detail
