// shardio/cross_shard.h — shards cooperating by message passing:
// submit_to(), spawn_on(), post_to() and spawn_blocking().
//
//   int n = co_await shardio::submit_to(2, [] { return local_count(); });
//   auto h = shardio::spawn_on(1, [] { return serve(); });  // JoinHandle
//   co_await shardio::post_to(3, [] { bump(); });          // fire and forget
//   auto r = co_await shardio::spawn_blocking([] { return getaddrinfo(...); });
//
// Messages travel through one bounded SPSC queue per (source, destination)
// pair, drained by the destination at the start of each loop turn. A
// destination that may be parked in io_uring_enter is woken with
// IORING_OP_MSG_RING (see docs/design.md for the protocol). When a queue is
// full, post_to() suspends its task until the message is in the queue
// (back-pressure); submit_to() waits for its reply anyway. Nothing is dropped
// while the runtime runs; at shutdown, undelivered messages are destroyed.
//
// `fn` may return a value, void, or a Task<T> (then it runs as a task on the
// target shard, and `fn` itself — a coroutine lambda's captures — is kept
// alive until that task ends). Exceptions travel back to the caller. If the
// caller is destroyed first, the reply is discarded when it arrives.
//
// Thread-safety: call these from tasks on a shard. Threads that are not
// shards use Runtime::post / Runtime::submit.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/functional/any_invocable.h"
#include "shardio/detail/reactor.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio {
namespace detail {

// The reply slot of one cross-shard call. Two owners: the awaiting caller
// (on the home shard) and the message carrying the call there and back.
template <class R>
struct CallState {
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept {
    frame_free(p, n);
  }
  void unref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::atomic<uint32_t> refs{2};
  std::optional<Stored<R>> value;
  std::exception_ptr exception;
  Reactor* home = nullptr;
  std::coroutine_handle<> caller;  // home shard only
  bool abandoned = false;          // home shard only
};

// A counted reference to a CallState, owned by a message.
template <class R>
class CallRef {
 public:
  explicit CallRef(CallState<R>* s) noexcept : s_(s) {}
  CallRef(CallRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  CallRef& operator=(CallRef&&) = delete;
  ~CallRef() {
    if (s_ != nullptr) s_->unref();
  }
  CallState<R>* operator->() const noexcept { return s_; }
  CallState<R>* get() const noexcept { return s_; }

 private:
  CallState<R>* s_;
};

// Runs on the home shard: wakes the caller unless it has gone away.
template <class R>
void deliver(CallRef<R>& ref) {
  if (!ref->abandoned) ref->home->schedule(ref->caller);
}

// Runs on the shard that did the work: sends the result home.
template <class R>
void reply(CallRef<R> ref) {
  Reactor& here = Reactor::require_current();
  const unsigned home = ref->home->shard_id();
  here.send(home, [ref = std::move(ref)]() mutable { deliver(ref); });
}

template <class R, class Fn>
void store_result(CallState<R>* s, Fn&& produce) {
  try {
    if constexpr (std::is_void_v<R>) {
      produce();
      s->value.emplace();
    } else {
      s->value.emplace(produce());
    }
  } catch (...) {
    s->exception = std::current_exception();
  }
}

template <class R>
Task<void> run_remote_task(CallRef<R> ref, Task<R> task) {
  try {
    if constexpr (std::is_void_v<R>) {
      co_await std::move(task);
      ref->value.emplace();
    } else {
      ref->value.emplace(co_await std::move(task));
    }
  } catch (...) {
    ref->exception = std::current_exception();
  }
  reply(std::move(ref));
}

// On the target shard: run fn (as a task if it returns one, keeping fn alive
// until that task ends), then reply.
template <class R, class F>
void run_call(CallRef<R> ref, F& fn) {
  if constexpr (TaskValue<std::invoke_result_t<F&>>::kIsTask) {
    spawn(run_remote_task<R>(std::move(ref), invoke_task(std::move(fn))))
        .detach();
  } else {
    store_result<R>(ref.get(), [&]() -> R { return fn(); });
    reply(std::move(ref));
  }
}

template <class R>
class CallAwaiterBase {
 public:
  CallAwaiterBase() = default;
  CallAwaiterBase(const CallAwaiterBase&) = delete;
  CallAwaiterBase& operator=(const CallAwaiterBase&) = delete;
  ~CallAwaiterBase() {
    if (state_ != nullptr) {
      // Destroyed while suspended: the reply may have been delivered (the
      // caller's resumption queued) in this loop turn.
      state_->abandoned = true;
      unschedule_frame(state_->caller);
      state_->unref();
    }
  }
  bool await_ready() const noexcept { return false; }
  R await_resume() {
    CallState<R>* s = state_;
    struct Drop {
      CallState<R>*& s;
      ~Drop() { std::exchange(s, nullptr)->unref(); }
    } drop{state_};
    if (s->exception) std::rethrow_exception(s->exception);
    if constexpr (!std::is_void_v<R>) return std::move(*s->value);
  }

 protected:
  CallState<R>* begin(std::coroutine_handle<> caller) {
    state_ = new CallState<R>();
    state_->home = &Reactor::require_current();
    state_->caller = caller;
    return state_;
  }
  CallState<R>* state_ = nullptr;
};

template <class F>
class [[nodiscard]] SubmitToAwaiter : public CallAwaiterBase<CallValue<F>> {
  using R = CallValue<F>;

 public:
  SubmitToAwaiter(unsigned shard, F fn) : shard_(shard), fn_(std::move(fn)) {}
  void await_suspend(std::coroutine_handle<> caller) {
    CallState<R>* s = this->begin(caller);
    absl::AnyInvocable<void()> msg = [ref = CallRef<R>(s),
                                      fn = std::move(fn_)]() mutable {
      run_call<R>(std::move(ref), fn);
    };
    s->home->send(shard_, std::move(msg));
  }

 private:
  unsigned shard_;
  F fn_;
};

template <class F>
class [[nodiscard]] BlockingAwaiter : public CallAwaiterBase<CallValue<F>> {
  using R = CallValue<F>;

 public:
  explicit BlockingAwaiter(F fn) : fn_(std::move(fn)) {}
  bool await_suspend(std::coroutine_handle<> caller) {
    CallState<R>* s = this->begin(caller);
    bool queued = s->home->run_blocking(
        [ref = CallRef<R>(s), fn = std::move(fn_)]() mutable {
          store_result<R>(ref.get(), [&]() -> R { return fn(); });
          Reactor* home = ref->home;
          home->post([ref = std::move(ref)]() mutable { deliver(ref); });
        });
    if (!queued) {
      s->exception = std::make_exception_ptr(std::runtime_error(
          "shardio::spawn_blocking: the runtime is stopping"));
      return false;
    }
    return true;
  }

 private:
  F fn_;
};

// Fire-and-forget message with back-pressure: suspends only while the queue
// towards `shard` is full (or older messages to it are still waiting).
class [[nodiscard]] PostAwaiter {
 public:
  PostAwaiter(unsigned shard, absl::AnyInvocable<void()> msg)
      : reactor_(&Reactor::require_current()),
        shard_(shard),
        msg_(std::move(msg)) {}
  PostAwaiter(const PostAwaiter&) = delete;
  PostAwaiter& operator=(const PostAwaiter&) = delete;
  ~PostAwaiter() {
    // Destroyed while suspended: the message still goes; the frame must
    // not be resumed (from the outbox or the ready queue).
    if (waiting_) unschedule_frame(waiting_);
  }
  bool await_ready() { return reactor_->try_send(shard_, msg_); }
  void await_suspend(std::coroutine_handle<> h) {
    waiting_ = h;
    reactor_->send_later(shard_, std::move(msg_), h);
  }
  void await_resume() noexcept { waiting_ = {}; }

 private:
  Reactor* reactor_;
  unsigned shard_;
  absl::AnyInvocable<void()> msg_;
  std::coroutine_handle<> waiting_;
};

}  // namespace detail

// Runs fn() on shard `shard` and yields its value (or rethrows its
// exception) on the calling shard. fn may return a Task, which then runs as a
// task on `shard`. Throws std::out_of_range for a shard that does not exist.
template <class F>
Task<detail::CallValue<F>> submit_to(unsigned shard, F fn) {
  detail::check_shard_index(shard, "submit_to");
  co_return co_await detail::SubmitToAwaiter<F>(shard, std::move(fn));
}

// Starts fn() on shard `shard` now; the handle (on the calling shard) yields
// its value. Detach it to let the work run on by itself.
template <class F>
JoinHandle<detail::CallValue<F>> spawn_on(unsigned shard, F fn) {
  detail::check_shard_index(shard, "spawn_on");
  return spawn(submit_to(shard, std::move(fn)));
}

// Runs fn() on shard `shard`; completes once the message is queued, waiting
// while the queue towards `shard` is full.
template <class F>
detail::PostAwaiter post_to(unsigned shard, F fn) {
  detail::check_shard_index(shard, "post_to");
  return detail::PostAwaiter(shard, absl::AnyInvocable<void()>(std::move(fn)));
}

// Runs the blocking function fn() on the runtime's thread pool and yields its
// value on the calling shard, which meanwhile runs other tasks.
template <class F>
Task<detail::CallValue<F>> spawn_blocking(F fn) {
  static_assert(!detail::TaskValue<std::invoke_result_t<F&>>::kIsTask,
                "spawn_blocking runs plain blocking functions, not tasks");
  co_return co_await detail::BlockingAwaiter<F>(std::move(fn));
}

}  // namespace shardio
