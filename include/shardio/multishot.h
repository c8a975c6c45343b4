// shardio/multishot.h — multishot operations as async streams.
//
// A multishot op (accept, recv with a buffer ring, poll) is submitted once
// and completes many times: the kernel posts one CQE per item, each with
// IORING_CQE_F_MORE, until a final CQE without it. A multishot op is written
// like any Operation, marked with `static constexpr bool kMultishot = true`:
//
//   struct MyAccept {
//     static constexpr bool kMultishot = true;
//     void prepare(io_uring_sqe& sqe);           // once per arm
//     Item complete(const io_uring_cqe& cqe);    // the per-CQE hook: one item
//                                                // per CQE, the final included
//     // Optional: what to do when the kernel ends the op (a CQE without
//     // F_MORE) and the stream may re-arm it. Default: kRearmNow for
//     // -ENOBUFS (a buffer ring ran dry) and for a positive result (the
//     // kernel stopped after an item, e.g. on CQ overflow), kFinish
//     // otherwise.
//     MultishotEnd on_end(const io_uring_cqe& cqe, Rearm rearm);
//   };
//
//   auto stream = shardio::submit_multishot(MyAccept{...});
//   while (auto item = co_await stream.next()) { ... *item ... }
//
// next() yields each item in CQE order and std::nullopt once the kernel has
// ended the op and every item was taken. An early end that on_end() chooses to
// re-arm goes on transparently (counted in ShardCounters::multishot_rearms):
// an error CQE (-ENOBUFS) is then not an item; a CQE with a result still is.
// on_end() may also return kRearmLater and call `rearm()` when the resource it
// lacked is back (a buffer ring calls it when a buffer is returned), so a dry
// ring does not spin.
//
// cancel() (or a stop request on the token given to submit_multishot) stops
// the op: the kernel's final -ECANCELED CQE is the last item (a token already
// stopped never submits and yields that one item; a stream parked for a
// re-arm just ends). Destroying the
// stream cancels too; items that arrive after that are destroyed as they come
// (their destructors give back fds and buffers), and the op itself lives
// until its final CQE.
//
// Thread-safety: a stream belongs to the shard it was submitted on; next(),
// cancel() and the destructor run there. The stop token may be triggered from
// any thread.
#pragma once

#include <liburing.h>

#include <coroutine>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardio/detail/reactor.h"
#include "shardio/operation.h"

namespace shardio {

// What a multishot op wants when the kernel ends it without being asked.
enum class MultishotEnd {
  kFinish,      // deliver the final CQE as the last item
  kRearmNow,    // swallow the CQE and submit the op again now
  kRearmLater,  // swallow the CQE; the op has arranged to call Rearm
};

template <class Op>
concept MultishotOperation = Operation<Op> && requires {
  requires Op::kMultishot == true;
};

namespace detail {

struct MultishotRecordBase : OpRecordBase {
  void (*prepare_fn)(OpRecordBase*, io_uring_sqe&) = nullptr;
  void (*drop_items)(MultishotRecordBase*) noexcept = nullptr;
  Reactor* reactor = nullptr;
  std::coroutine_handle<> consumer;  // a next() waiting for an item
  bool ended = false;                // the final item is queued
  bool cancel_requested = false;     // no re-arm after this
  bool rearm = true;                 // re-arm on early ends at all

  void wake_consumer() noexcept {
    if (consumer) reactor->schedule(std::exchange(consumer, nullptr));
  }
  // Stops the op: cancels it in the kernel or, when parked, ends the stream
  // here.
  void cancel() noexcept;
};

// Cancels a stream from any thread (a stop_callback's callable).
struct MultishotStopCancel {
  Reactor* reactor;
  MultishotRecordBase* rec;
  uint32_t generation;
  void operator()() const noexcept;
};

template <class Op>
using MultishotItem = CompleteResult<Op>;

// A FIFO of items that reuses its slots: a stream whose consumer keeps up
// cycles through one or two slots without allocating (a std::deque would
// allocate and free a block every few items). Grows by doubling.
template <class T>
class ItemQueue {
 public:
  ItemQueue() = default;
  ItemQueue(const ItemQueue&) = delete;
  ItemQueue& operator=(const ItemQueue&) = delete;

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  void push_back(T&& v) {
    if (tail_ - head_ == slots_.size()) grow();
    slots_[tail_++ & (slots_.size() - 1)] = std::move(v);
  }
  T& front() noexcept { return slots_[head_ & (slots_.size() - 1)]; }
  void pop_front() noexcept {
    front() = T();  // releases what the item held now
    ++head_;
  }
  void clear() noexcept {
    while (!empty()) pop_front();
    head_ = tail_ = 0;
  }

 private:
  void grow() {
    std::vector<T> bigger(slots_.empty() ? 4 : slots_.size() * 2);
    for (std::size_t i = 0; i < size(); ++i) {
      bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    }
    tail_ = size();
    head_ = 0;
    slots_.swap(bigger);
  }
  std::vector<T> slots_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace detail

// Re-arms a parked multishot op (see MultishotEnd::kRearmLater). A plain
// value: calling it after the stream ended, or twice, does nothing. Call it
// on the op's shard.
class Rearm {
 public:
  Rearm() = default;
  Rearm(detail::MultishotRecordBase* rec, uint32_t generation) noexcept
      : rec_(rec), generation_(generation) {}
  void operator()() const noexcept {
    if (rec_ == nullptr || rec_->generation != generation_ ||
        rec_->state != detail::RecordState::kParked || rec_->cancel_requested) {
      return;
    }
    rec_->reactor->restart(rec_, rec_->prepare_fn);
  }

 private:
  detail::MultishotRecordBase* rec_ = nullptr;
  uint32_t generation_ = 0;
};

namespace detail {

template <class Op>
struct MultishotRecord final : MultishotRecordBase {
  using Item = MultishotItem<Op>;
  static_assert(!std::is_void_v<Item>,
                "a multishot op's complete() must return an item");

  explicit MultishotRecord(Op&& o) : op(std::move(o)) {
    on_cqe = [](OpRecordBase* b, const io_uring_cqe& cqe) -> bool {
      auto* self = static_cast<MultishotRecord*>(b);
      const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
      MultishotEnd end = MultishotEnd::kFinish;
      if (!more && self->rearm && !self->orphaned && !self->cancel_requested) {
        end = self->end_policy(cqe);
      }
      // An early end with an error is swallowed when re-armed; one that
      // carries a result (the kernel stopped after an item) delivers it.
      if (more || end == MultishotEnd::kFinish || cqe.res >= 0) {
        ResultSlot<Item> slot;
        const io_uring_cqe* c = &cqe;
        io_uring_cqe copy;
        if constexpr (requires { Op::kOpcode; }) {
          // As for single-shot ops: EOPNOTSUPP rather than the kernel's
          // EINVAL when the opcode itself is missing.
          if (cqe.res == -EINVAL && !opcode_supported_here(Op::kOpcode)) {
            copy = cqe;
            copy.res = -EOPNOTSUPP;
            c = &copy;
          }
        }
        slot.fill([self, c]() -> Item { return self->op.complete(*c); });
        if (!self->orphaned) {
          self->items.push_back(std::move(slot));
          self->wake_consumer();
        }
      }
      if (more) return false;
      if (end != MultishotEnd::kFinish && cqe.res == -ENOBUFS) {
        self->reactor->note_enobufs_rearm();
      }
      switch (end) {
        case MultishotEnd::kRearmNow:
          self->reactor->restart(self, self->prepare_fn);
          return false;
        case MultishotEnd::kRearmLater:
          self->reactor->park(self);
          return false;
        case MultishotEnd::kFinish:
          break;
      }
      self->ended = true;
      if (!self->orphaned) self->wake_consumer();
      return true;
    };
    destroy = [](OpRecordBase* b) noexcept {
      static_cast<MultishotRecord*>(b)->~MultishotRecord();
    };
    prepare_fn = [](OpRecordBase* b, io_uring_sqe& sqe) {
      static_cast<MultishotRecord*>(b)->op.prepare(sqe);
    };
    drop_items = [](MultishotRecordBase* b) noexcept {
      static_cast<MultishotRecord*>(b)->items.clear();
    };
  }

  MultishotEnd end_policy(const io_uring_cqe& cqe) {
    if constexpr (requires { op.on_end(cqe, Rearm{}); }) {
      return op.on_end(cqe, Rearm(this, generation));
    } else {
      return cqe.res == -ENOBUFS || cqe.res > 0 ? MultishotEnd::kRearmNow
                                                : MultishotEnd::kFinish;
    }
  }

  Op op;
  ItemQueue<ResultSlot<Item>> items;
};

}  // namespace detail

// Options for submit_multishot().
struct MultishotOptions {
  // Re-arm transparently when the kernel ends the op early (as the op's
  // on_end() decides). false: the early end is the stream's last item.
  bool rearm = true;
};

// The items of one multishot op; see the top of this file.
template <MultishotOperation Op>
class [[nodiscard]] MultishotStream {
 public:
  using Item = detail::MultishotItem<Op>;

  MultishotStream() = default;
  MultishotStream(Op op, MultishotOptions opts, std::stop_token st)
      : reactor_(&detail::Reactor::require_current()),
        rec_(make_record(std::move(op))) {
    rec_->reactor = reactor_;
    rec_->rearm = opts.rearm;
    rec_->multishot = true;
    if (st.stop_requested()) {
      // Never reaches the kernel: the stream holds one -ECANCELED item.
      io_uring_cqe cqe{};
      cqe.res = -ECANCELED;
      rec_->cancel_requested = true;
      rec_->on_cqe(rec_, cqe);
      rec_->state = detail::RecordState::kDone;
      return;
    }
    reactor_->start(rec_);
    if (st.stop_possible()) {
      stop_ = std::make_unique<StopCallback>(
          std::move(st),
          detail::MultishotStopCancel{reactor_, rec_, rec_->generation});
    }
  }
  MultishotStream(MultishotStream&& o) noexcept
      : reactor_(o.reactor_),
        rec_(std::exchange(o.rec_, nullptr)),
        stop_(std::move(o.stop_)) {}
  MultishotStream& operator=(MultishotStream&& o) noexcept {
    if (this != &o) {
      reset();
      reactor_ = o.reactor_;
      rec_ = std::exchange(o.rec_, nullptr);
      stop_ = std::move(o.stop_);
    }
    return *this;
  }
  MultishotStream(const MultishotStream&) = delete;
  MultishotStream& operator=(const MultishotStream&) = delete;
  ~MultishotStream() { reset(); }

  class [[nodiscard]] NextAwaiter {
   public:
    explicit NextAwaiter(detail::MultishotRecord<Op>* rec) : rec_(rec) {}
    NextAwaiter(const NextAwaiter&) = delete;
    NextAwaiter& operator=(const NextAwaiter&) = delete;
    ~NextAwaiter() {
      if (!suspended_) return;
      // Destroyed while suspended: still registered, or already woken
      // (its resumption queued) and not run.
      if (rec_->consumer == handle_) {
        rec_->consumer = nullptr;
      } else {
        detail::unschedule_frame(handle_);
      }
    }
    bool await_ready() const noexcept {
      return rec_ == nullptr || !rec_->items.empty() || rec_->ended;
    }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      handle_ = h;
      suspended_ = true;
      rec_->consumer = h;
    }
    std::optional<Item> await_resume() {
      suspended_ = false;
      if (rec_ == nullptr || rec_->items.empty()) return std::nullopt;
      detail::ResultSlot<Item> slot = std::move(rec_->items.front());
      rec_->items.pop_front();
      return std::optional<Item>(slot.take());
    }

   private:
    detail::MultishotRecord<Op>* rec_;
    std::coroutine_handle<> handle_;
    bool suspended_ = false;
  };

  // The next item, or std::nullopt once the stream has ended and every item
  // was taken. Only one next() may wait at a time.
  NextAwaiter next() noexcept { return NextAwaiter(rec_); }

  // Stops the op; the items already queued and the final CQE's item (usually
  // -ECANCELED) still come out of next().
  void cancel() noexcept {
    if (rec_ != nullptr) rec_->cancel();
  }

  // Whether the kernel has ended the op (items may still be queued).
  bool ended() const noexcept { return rec_ == nullptr || rec_->ended; }
  // Items received and not yet taken.
  std::size_t ready() const noexcept {
    return rec_ == nullptr ? 0 : rec_->items.size();
  }
  // The op inside the stream (e.g. to read state its hooks keep).
  Op& op() noexcept { return rec_->op; }

 private:
  detail::MultishotRecord<Op>* make_record(Op&& op) {
    // Records come from the shard's pool (make_record handles OpRecord<Op>
    // only), so placement-construct the multishot record in a block of the
    // right class.
    return reactor_->template make_record_as<detail::MultishotRecord<Op>>(
        std::move(op));
  }
  void reset() noexcept {
    stop_.reset();  // waits for a callback running on another thread
    if (rec_ == nullptr) return;
    detail::MultishotRecord<Op>* rec = std::exchange(rec_, nullptr);
    rec->consumer = nullptr;
    rec->items.clear();
    if (rec->state == detail::RecordState::kInFlight) {
      rec->cancel_requested = true;
      reactor_->abandon(rec);
    } else {
      reactor_->release(rec);
    }
  }

  detail::Reactor* reactor_ = nullptr;
  using StopCallback = std::stop_callback<detail::MultishotStopCancel>;
  detail::MultishotRecord<Op>* rec_ = nullptr;
  std::unique_ptr<StopCallback> stop_;
};

// Submits a multishot op on the current shard and returns its stream.
template <MultishotOperation Op>
[[nodiscard]] MultishotStream<Op> submit_multishot(Op op,
                                                   MultishotOptions opts = {},
                                                   std::stop_token st = {}) {
  return MultishotStream<Op>(std::move(op), opts, std::move(st));
}

}  // namespace shardio
