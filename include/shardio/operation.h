// shardio/operation.h — the Operation concept and submit(): how every
// io_uring operation in shardio is written and awaited, built-in or not.
//
// An operation is a plain struct that owns everything the kernel may touch
// (buffers, iovecs, sockaddrs, timespecs, fds) and has two handlers:
//
//   void prepare(io_uring_sqe& sqe);       // fill one zeroed SQE, nothing else
//   R    complete(const io_uring_cqe& cqe);  // turn the final CQE into a
//   result
//
// `co_await shardio::submit(std::move(op))` moves the op into a completion
// record owned by the current shard, where it stays at one address until its
// final CQE, and returns what complete() returned. Do not set sqe.user_data
// (the runtime owns it); flags you set in prepare() are kept, and chain() adds
// IOSQE_IO_LINK on top.
//
// An exception thrown by complete() is rethrown from the co_await.
//
// If the awaiting coroutine is destroyed before the CQE arrives, the record is
// orphaned: the shard submits IORING_OP_ASYNC_CANCEL and destroys the op (and
// its buffers) only when the final CQE comes back. submit(op, stop_token)
// cancels on a stop request; the op then completes through complete() with
// the kernel's -ECANCELED (or its real result, if it finished first).
//
// Thread-safety: submit() must be called from a task running on a shard; the
// awaiter must be awaited on that shard. request_stop() may be called from any
// thread.
#pragma once

#include <liburing.h>

#include <concepts>
#include <coroutine>
#include <optional>
#include <stop_token>
#include <utility>

#include "shardio/detail/reactor.h"

namespace shardio {

template <class Op>
concept Operation = std::move_constructible<Op> &&
    requires(Op& op, io_uring_sqe& sqe, const io_uring_cqe& cqe) {
  op.prepare(sqe);
  op.complete(cqe);
};

namespace detail {
// Multishot ops (kMultishot = true) go through submit_multishot().
template <class Op>
inline constexpr bool kIsMultishot = requires {
  requires Op::kMultishot;
};
}  // namespace detail

// What `co_await submit(op)` yields for an Op.
template <Operation Op>
using OperationResult = detail::CompleteResult<Op>;

namespace detail {

// Owns one record from submit() until the awaiter is resumed or destroyed.
template <class Op>
class RecordHandle {
 public:
  explicit RecordHandle(Op&& op)
      : reactor_(&Reactor::require_current()),
        rec_(reactor_->make_record(std::move(op))) {}
  RecordHandle(const RecordHandle&) = delete;
  RecordHandle& operator=(const RecordHandle&) = delete;
  ~RecordHandle() {
    if (rec_ != nullptr) reactor_->abandon(rec_);
  }

  Reactor* reactor() const noexcept { return reactor_; }
  OpRecord<Op>* get() const noexcept { return rec_; }

  // Takes the result and gives the record back to the pool.
  CompleteResult<Op> take() {
    struct Releaser {
      Reactor* r;
      OpRecord<Op>* rec;
      ~Releaser() { r->finish(rec); }
    } releaser{reactor_, std::exchange(rec_, nullptr)};
    return releaser.rec->result.take();
  }

 private:
  Reactor* reactor_;
  OpRecord<Op>* rec_;
};

template <class Op>
class [[nodiscard]] SubmitAwaiter {
 public:
  explicit SubmitAwaiter(Op&& op) : rec_(std::move(op)) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    waiter_.handle = h;
    waiter_.remaining = 1;
    rec_.get()->waiter = &waiter_;
    rec_.reactor()->start(rec_.get());
  }
  CompleteResult<Op> await_resume() {
    waiter_.resumed();
    return rec_.take();
  }

 private:
  RecordHandle<Op> rec_;
  Waiter waiter_;
};

// Requests cancellation of a record from whatever thread request_stop() runs
// on: directly on the owning shard, by a posted message elsewhere.
struct StopCancel {
  Reactor* reactor;
  OpRecordBase* rec;
  uint32_t generation;
  void operator()() const noexcept;
};

template <class Op>
class [[nodiscard]] StoppableSubmitAwaiter {
 public:
  StoppableSubmitAwaiter(Op&& op, std::stop_token st)
      : rec_(std::move(op)), st_(std::move(st)) {}

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    OpRecord<Op>* rec = rec_.get();
    if (st_.stop_requested()) {
      // Never reaches the kernel: complete with ECANCELED right here.
      io_uring_cqe cqe{};
      cqe.res = -ECANCELED;
      rec->on_cqe(rec, cqe);
      rec->state = RecordState::kDone;
      return false;
    }
    waiter_.handle = h;
    waiter_.remaining = 1;
    rec->waiter = &waiter_;
    rec_.reactor()->start(rec);
    if (st_.stop_possible()) {
      cb_.emplace(st_, StopCancel{rec_.reactor(), rec, rec->generation});
    }
    return true;
  }
  CompleteResult<Op> await_resume() {
    cb_.reset();  // waits for a callback running on another thread
    waiter_.resumed();
    return rec_.take();
  }
  ~StoppableSubmitAwaiter() { cb_.reset(); }

 private:
  RecordHandle<Op> rec_;
  std::stop_token st_;
  Waiter waiter_;
  std::optional<std::stop_callback<StopCancel>> cb_;
};

}  // namespace detail

// Submits `op` on the current shard; `co_await` yields op.complete(cqe).
template <Operation Op>
[[nodiscard]] detail::SubmitAwaiter<Op> submit(Op op) {
  static_assert(!detail::kIsMultishot<Op>,
                "a multishot op is submitted with submit_multishot()");
  return detail::SubmitAwaiter<Op>(std::move(op));
}

// As above; a stop request cancels the op (IORING_OP_ASYNC_CANCEL) and it
// completes through complete() with -ECANCELED unless it already finished.
// A token already stopped completes the op with -ECANCELED without
// submitting it.
template <Operation Op>
[[nodiscard]] detail::StoppableSubmitAwaiter<Op> submit(Op op,
                                                        std::stop_token st) {
  static_assert(!detail::kIsMultishot<Op>,
                "a multishot op is submitted with submit_multishot()");
  return detail::StoppableSubmitAwaiter<Op>(std::move(op), std::move(st));
}

}  // namespace shardio
