// shardio/batch.h — many operations in one loop turn: batch() and chain().
//
//   auto [a, b, c] = co_await shardio::batch(op1, op2, op3);  // tuple
//   std::vector<R> rs = co_await shardio::batch(std::span<Op>(ops));
//   auto [w, r] = co_await shardio::chain(write_op, read_op);  // IOSQE_IO_LINK
//
// All SQEs of a batch are prepared before the task suspends, so they reach
// the kernel in the same io_uring_enter as everything else queued this turn.
// A batch larger than the SQ still works: the shard submits what it has when
// the SQ fills and goes on. A chain must reach the kernel in one submission,
// so it may hold at most as many ops as the SQ has entries (longer chains
// throw std::length_error). The awaiter resumes once every op has delivered
// its final CQE. Ops whose complete() returns void yield std::monostate.
//
// Destroying a suspended batch orphans and cancels every op still in flight,
// exactly as for submit().
//
// Thread-safety: as for submit(): call and await on one shard.
#pragma once

#include <cstddef>
#include <span>
#include <stdexcept>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "shardio/operation.h"

namespace shardio {
namespace detail {

template <class R>
using BatchValue = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

template <class Op>
BatchValue<CompleteResult<Op>> take_batch_value(RecordHandle<Op>& h) {
  if constexpr (std::is_void_v<CompleteResult<Op>>) {
    h.take();
    return {};
  } else {
    return h.take();
  }
}

[[noreturn]] void throw_chain_too_long(std::size_t n, unsigned sq_entries);

template <class... Ops>
class [[nodiscard]] BatchAwaiter {
 public:
  using value_type = std::tuple<BatchValue<CompleteResult<Ops>>...>;

  BatchAwaiter(bool link, Ops&&... ops)
      : link_(link), recs_(std::move(ops)...) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    Reactor* r = std::get<0>(recs_).reactor();
    if (link_ && !r->reserve_sqes(sizeof...(Ops))) {
      throw_chain_too_long(sizeof...(Ops), r->sq_entries());
    }
    waiter_.handle = h;
    waiter_.remaining = sizeof...(Ops);
    start_all(r, std::index_sequence_for<Ops...>{});
  }
  value_type await_resume() {
    waiter_.resumed();
    return take_all(std::index_sequence_for<Ops...>{});
  }

 private:
  template <std::size_t... I>
  void start_all(Reactor* r, std::index_sequence<I...>) {
    constexpr std::size_t kLast = sizeof...(Ops) - 1;
    ((std::get<I>(recs_).get()->waiter = &waiter_,
      r->start(std::get<I>(recs_).get(),
               link_ && I != kLast ? IOSQE_IO_LINK : 0)),
     ...);
  }
  template <std::size_t... I>
  value_type take_all(std::index_sequence<I...>) {
    return value_type{take_batch_value(std::get<I>(recs_))...};
  }

  bool link_;
  std::tuple<RecordHandle<Ops>...> recs_;
  Waiter waiter_;
};

template <class Op>
class [[nodiscard]] SpanBatchAwaiter {
 public:
  using value_type = std::vector<BatchValue<CompleteResult<Op>>>;

  SpanBatchAwaiter(bool link, std::span<Op> ops)
      : reactor_(&Reactor::require_current()), link_(link) {
    recs_.reserve(ops.size());
    for (Op& op : ops) recs_.push_back(reactor_->make_record(std::move(op)));
  }
  SpanBatchAwaiter(const SpanBatchAwaiter&) = delete;
  SpanBatchAwaiter& operator=(const SpanBatchAwaiter&) = delete;
  ~SpanBatchAwaiter() {
    for (OpRecord<Op>* rec : recs_) {
      if (rec != nullptr) reactor_->abandon(rec);
    }
  }

  bool await_ready() const noexcept { return recs_.empty(); }
  void await_suspend(std::coroutine_handle<> h) {
    const std::size_t n = recs_.size();
    if (link_ && !reactor_->reserve_sqes(
                     static_cast<unsigned>(std::min<std::size_t>(n, ~0u)))) {
      throw_chain_too_long(n, reactor_->sq_entries());
    }
    waiter_.handle = h;
    waiter_.remaining = static_cast<uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) {
      recs_[i]->waiter = &waiter_;
      reactor_->start(recs_[i], link_ && i + 1 != n ? IOSQE_IO_LINK : 0);
    }
  }
  value_type await_resume() {
    waiter_.resumed();
    value_type out;
    out.reserve(recs_.size());
    for (OpRecord<Op>*& rec : recs_) {
      OpRecord<Op>* r = std::exchange(rec, nullptr);
      struct Releaser {
        Reactor* reactor;
        OpRecord<Op>* rec;
        ~Releaser() { reactor->finish(rec); }
      } releaser{reactor_, r};
      if constexpr (std::is_void_v<CompleteResult<Op>>) {
        r->result.take();
        out.emplace_back();
      } else {
        out.push_back(r->result.take());
      }
    }
    return out;
  }

 private:
  Reactor* reactor_;
  bool link_;
  absl::InlinedVector<OpRecord<Op>*, 16> recs_;
  Waiter waiter_;
};

}  // namespace detail

// Submits all ops in one loop turn; yields a tuple of their results.
template <Operation... Ops>
requires(sizeof...(Ops) > 0)
    [[nodiscard]] detail::BatchAwaiter<Ops...> batch(Ops... ops) {
  return detail::BatchAwaiter<Ops...>(false, std::move(ops)...);
}

// Submits every op of the span (moving each out of it) in one loop turn;
// yields their results in order.
template <Operation Op>
[[nodiscard]] detail::SpanBatchAwaiter<Op> batch(std::span<Op> ops) {
  return detail::SpanBatchAwaiter<Op>(false, ops);
}

// Like batch(), but linked with IOSQE_IO_LINK: each op starts only after the
// previous one succeeded; after a failure the rest complete with -ECANCELED.
template <Operation... Ops>
requires(sizeof...(Ops) > 0)
    [[nodiscard]] detail::BatchAwaiter<Ops...> chain(Ops... ops) {
  return detail::BatchAwaiter<Ops...>(true, std::move(ops)...);
}

template <Operation Op>
[[nodiscard]] detail::SpanBatchAwaiter<Op> chain(std::span<Op> ops) {
  return detail::SpanBatchAwaiter<Op>(true, ops);
}

}  // namespace shardio
