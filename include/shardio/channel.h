// shardio/channel.h — a bounded channel for streaming values between tasks,
// on the same shard or across shards, with back-pressure.
//
//   auto [tx, rx] = shardio::make_channel<int>(64);
//   // producer task (any shard):          // consumer task (any shard):
//   bool ok = co_await tx.send(42);        while (auto v = co_await rx.recv())
//   tx.close();                              use(*v);
//
// send() suspends while the channel is full and yields false once the
// Receiver is gone; recv() suspends while it is empty and yields nullopt once
// the Sender is closed (or gone) and every value has been received. A
// waiting side is woken by a message to its shard (the usual SPSC queue and
// doorbell), never by spinning.
//
// Thread-safety: one Sender and one Receiver, each used by one task at a
// time; either may be moved to another shard between operations (it is bound
// to the shard it waits on, at each wait).
#pragma once

#include <atomic>
#include <coroutine>
#include <memory>
#include <optional>
#include <utility>

#include "shardio/detail/frame_alloc.h"
#include "shardio/detail/reactor.h"
#include "shardio/detail/spsc_queue.h"

namespace shardio {
namespace detail {

template <class T>
struct ChannelState {
  explicit ChannelState(std::size_t capacity) : q(capacity) {}

  void ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  SpscQueue<T> q;
  std::atomic<uint32_t> refs{2};
  std::atomic<bool> tx_closed{false};
  std::atomic<bool> rx_closed{false};
  // A side that waits stores its shard and handle, then sets its flag
  // (seq_cst); the other side takes the flag back (exchange) and sends the
  // waiter's shard a message that resumes it.
  std::atomic<bool> rx_waiting{false};
  std::atomic<bool> tx_waiting{false};
  Reactor* rx_reactor = nullptr;
  Reactor* tx_reactor = nullptr;
  std::coroutine_handle<> rx_handle;  // touched on rx_reactor's shard
  std::coroutine_handle<> tx_handle;  // touched on tx_reactor's shard
};

// Resumes the handle in `slot` on `target`'s shard, unless the waiter has
// gone away by the time the message runs there.
template <class T>
void wake(ChannelState<T>* st, Reactor* target,
          std::coroutine_handle<> ChannelState<T>::*slot) {
  st->ref();
  absl::AnyInvocable<void()> msg = [st, target, slot] {
    if (std::coroutine_handle<> h = std::exchange(st->*slot, {})) {
      target->schedule(h);
    }
    st->unref();
  };
  if (Reactor* here = Reactor::current();
      here != nullptr && here->shard_count() == target->shard_count()) {
    here->send(target->shard_id(), std::move(msg));
  } else {
    target->post(std::move(msg));
  }
}

template <class T>
void wake_rx(ChannelState<T>* st) {
  if (st->rx_waiting.load(std::memory_order_seq_cst) &&
      st->rx_waiting.exchange(false, std::memory_order_seq_cst)) {
    wake(st, st->rx_reactor, &ChannelState<T>::rx_handle);
  }
}

template <class T>
void wake_tx(ChannelState<T>* st) {
  if (st->tx_waiting.load(std::memory_order_seq_cst) &&
      st->tx_waiting.exchange(false, std::memory_order_seq_cst)) {
    wake(st, st->tx_reactor, &ChannelState<T>::tx_handle);
  }
}

}  // namespace detail

template <class T>
class Sender {
 public:
  Sender() = default;
  explicit Sender(detail::ChannelState<T>* st) noexcept : st_(st) {}
  Sender(Sender&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  Sender& operator=(Sender&& o) noexcept {
    if (this != &o) {
      close();
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  ~Sender() { close(); }

  // No more values: the receiver drains what was sent, then sees nullopt.
  void close() noexcept {
    if (st_ == nullptr) return;
    detail::ChannelState<T>* st = std::exchange(st_, nullptr);
    st->tx_closed.store(true, std::memory_order_seq_cst);
    detail::wake_rx(st);
    st->unref();
  }

  class [[nodiscard]] SendAwaiter {
   public:
    SendAwaiter(detail::ChannelState<T>* st, T v) : st_(st), v_(std::move(v)) {}
    SendAwaiter(const SendAwaiter&) = delete;
    SendAwaiter& operator=(const SendAwaiter&) = delete;
    ~SendAwaiter() {
      if (!waiting_) return;
      // Destroyed while suspended: still registered, or already woken (its
      // resumption queued on this shard) and not run.
      if (st_->tx_handle) {
        st_->tx_handle = {};
      } else {
        detail::unschedule_frame(handle_);
      }
    }

    bool await_ready() { return try_once(); }
    bool await_suspend(std::coroutine_handle<> h) {
      for (;;) {
        st_->tx_reactor = &detail::Reactor::require_current();
        st_->tx_handle = h;
        handle_ = h;
        waiting_ = true;
        st_->tx_waiting.store(true, std::memory_order_seq_cst);
        if (!st_->q.has_room_seq_cst() &&
            !st_->rx_closed.load(std::memory_order_seq_cst)) {
          return true;  // the receiver will wake us
        }
        if (!st_->tx_waiting.exchange(false, std::memory_order_seq_cst)) {
          return true;  // a wake-up is already on its way
        }
        st_->tx_handle = {};
        waiting_ = false;
        if (try_once()) return false;
      }
    }
    bool await_resume() {
      waiting_ = false;
      if (!done_) try_once();
      return sent_;
    }

   private:
    bool try_once() {
      if (st_->rx_closed.load(std::memory_order_acquire)) {
        done_ = true;
        sent_ = false;
        return true;
      }
      if (st_->q.try_push(std::move(v_))) {
        detail::wake_rx(st_);
        done_ = sent_ = true;
        return true;
      }
      return false;
    }

    detail::ChannelState<T>* st_;
    T v_;
    std::coroutine_handle<> handle_;
    bool waiting_ = false;
    bool done_ = false;
    bool sent_ = false;
  };

  // Sends `v`, waiting while the channel is full; false when the receiver is
  // gone (the value is dropped). Do not call on a closed Sender.
  SendAwaiter send(T v) { return SendAwaiter(st_, std::move(v)); }

 private:
  detail::ChannelState<T>* st_ = nullptr;
};

template <class T>
class Receiver {
 public:
  Receiver() = default;
  explicit Receiver(detail::ChannelState<T>* st) noexcept : st_(st) {}
  Receiver(Receiver&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  Receiver& operator=(Receiver&& o) noexcept {
    if (this != &o) {
      close();
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  ~Receiver() { close(); }

  // Stops receiving: pending and later sends yield false.
  void close() noexcept {
    if (st_ == nullptr) return;
    detail::ChannelState<T>* st = std::exchange(st_, nullptr);
    st->rx_closed.store(true, std::memory_order_seq_cst);
    detail::wake_tx(st);
    st->unref();
  }

  class [[nodiscard]] RecvAwaiter {
   public:
    explicit RecvAwaiter(detail::ChannelState<T>* st) : st_(st) {}
    RecvAwaiter(const RecvAwaiter&) = delete;
    RecvAwaiter& operator=(const RecvAwaiter&) = delete;
    ~RecvAwaiter() {
      if (!waiting_) return;
      // Destroyed while suspended: still registered, or already woken (its
      // resumption queued on this shard) and not run.
      if (st_->rx_handle) {
        st_->rx_handle = {};
      } else {
        detail::unschedule_frame(handle_);
      }
    }

    bool await_ready() { return try_once(); }
    bool await_suspend(std::coroutine_handle<> h) {
      for (;;) {
        st_->rx_reactor = &detail::Reactor::require_current();
        st_->rx_handle = h;
        handle_ = h;
        waiting_ = true;
        st_->rx_waiting.store(true, std::memory_order_seq_cst);
        if (st_->q.empty_seq_cst() &&
            !st_->tx_closed.load(std::memory_order_seq_cst)) {
          return true;  // the sender will wake us
        }
        if (!st_->rx_waiting.exchange(false, std::memory_order_seq_cst)) {
          return true;  // a wake-up is already on its way
        }
        st_->rx_handle = {};
        waiting_ = false;
        if (try_once()) return false;
      }
    }
    std::optional<T> await_resume() {
      waiting_ = false;
      if (!done_) try_once();
      return std::move(value_);
    }

   private:
    bool try_once() {
      if (T* f = st_->q.front()) {
        value_.emplace(std::move(*f));
        st_->q.pop_front();
        detail::wake_tx(st_);
        done_ = true;
        return true;
      }
      if (st_->tx_closed.load(std::memory_order_seq_cst)) {
        // Values sent before the close are in the queue already.
        if (T* f = st_->q.front()) {
          value_.emplace(std::move(*f));
          st_->q.pop_front();
        }
        done_ = true;
        return true;
      }
      return false;
    }

    detail::ChannelState<T>* st_;
    std::optional<T> value_;
    std::coroutine_handle<> handle_;
    bool waiting_ = false;
    bool done_ = false;
  };

  // The next value, waiting while the channel is empty; nullopt once the
  // sender is closed and everything sent has been received.
  RecvAwaiter recv() { return RecvAwaiter(st_); }

 private:
  detail::ChannelState<T>* st_ = nullptr;
};

// A channel holding up to `capacity` values (rounded up to a power of two,
// at least 2).
template <class T>
std::pair<Sender<T>, Receiver<T>> make_channel(std::size_t capacity) {
  auto* st = new detail::ChannelState<T>(capacity);
  return {Sender<T>(st), Receiver<T>(st)};
}

}  // namespace shardio
