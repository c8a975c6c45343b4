// shardio/runtime.h — the Runtime (a set of shards) and task spawning.
//
//   shardio::Runtime rt(shardio::RuntimeOptions{.shards = 4});
//   int rc = rt.block_on(main_task());   // runs main_task on shard 0
//
// Each shard is one thread that owns one io_uring, one ready queue and one
// pool of completion records. A loop turn runs every ready task (which queue
// SQEs), then submits all queued SQEs and reaps completions with one
// io_uring_enter. spawn() starts a task on the calling shard and returns a
// JoinHandle.
//
// Shutdown (Runtime::stop() or the destructor) destroys tasks that are still
// suspended; their in-flight ops are cancelled and kept alive until their
// final CQE before the ring is closed, so nothing leaks and the kernel never
// writes into freed memory.
//
// Thread-safety: Runtime's methods may be called from any thread that is not
// one of its shards (block_on from a shard would deadlock and throws).
// spawn(), JoinHandle and this_shard:: functions are for code running on a
// shard; a JoinHandle stays on the shard that created it.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "shardio/detail/event.h"
#include "shardio/detail/frame_alloc.h"
#include "shardio/detail/reactor.h"
#include "shardio/stats.h"
#include "shardio/task.h"

namespace shardio {

struct RuntimeOptions {
  // Number of shards (threads, rings); 0 means one per CPU in the process's
  // affinity mask.
  unsigned shards = 0;
  // SQ entries per ring (the CQ gets twice as many). Rounded up to a power of
  // two by the kernel.
  unsigned ring_entries = 256;
  // Pin shard i to the i-th CPU of the affinity mask.
  bool pin_cpus = false;
  // Let a kernel thread poll each SQ (IORING_SETUP_SQPOLL); incompatible with
  // DEFER_TASKRUN, which is then not used.
  bool sqpoll = false;
  unsigned sqpoll_idle_ms = 50;
  // Slots in each shard-to-shard SPSC queue (rounded up to a power of two).
  // A sender that finds the queue full waits (see cross_shard.h).
  unsigned message_queue_capacity = 1024;
  // Threads of the pool behind spawn_blocking(), started on first use.
  unsigned blocking_threads = 4;
  // Sizes of each shard's sparse tables of registered files and buffers
  // (created on first registration).
  unsigned max_fixed_files = 4096;
  unsigned max_fixed_buffers = 1024;
  // Keep per-shard latency histograms (loop-turn busy time and op latency;
  // see stats.h). Costs two clock reads per op and per loop turn; off, the
  // histograms stay empty.
  bool latency_histograms = false;
};

namespace detail {

class Shard;
template <class T>
class SpscQueue;
class BlockingPool;

// Shared by a spawned task's root coroutine and its JoinHandle (one shard,
// so plain counts).
struct JoinStateBase {
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept {
    frame_free(p, n);
  }
  virtual ~JoinStateBase() = default;
  void unref() noexcept {
    if (--refs == 0) delete this;
  }

  uint32_t refs = 2;
  bool finished = false;  // a value or exception is stored
  bool dropped = false;   // the task was destroyed before it finished
  std::coroutine_handle<> joiner;
  std::exception_ptr exception;
};

template <class T>
struct JoinState final : JoinStateBase {
  std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
};

template <class X>
struct TaskValue {
  using type = X;
  static constexpr bool kIsTask = false;
};
template <class Y>
struct TaskValue<Task<Y>> {
  using type = Y;
  static constexpr bool kIsTask = true;
};

// What fn() yields once awaited: X for X or Task<X>.
template <class F>
using CallValue = typename TaskValue<std::invoke_result_t<F&>>::type;

template <class R>
using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// Calls fn() and awaits the Task it returns, keeping `fn` alive in this
// frame meanwhile: a coroutine lambda's captures live in the lambda object,
// which must outlive the task it started.
template <class F>
Task<CallValue<F>> invoke_task(F fn) {
  co_return co_await fn();
}

// Throws std::out_of_range unless `shard` exists in the calling shard's
// runtime.
void check_shard_index(unsigned shard, const char* what);

// The coroutine that owns a spawned Task on its shard.
class RootTask {
 public:
  struct promise_type {
    static void* operator new(std::size_t n) { return frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
      frame_free(p, n);
    }
    RootTask get_return_object() noexcept {
      return RootTask{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct FinalAwaiter {
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(
          std::coroutine_handle<promise_type> h) const noexcept {
        JoinStateBase* st = h.promise().state;
        std::coroutine_handle<> next = st->joiner;
        st->joiner = {};
        h.destroy();
        return next ? next : std::noop_coroutine();
      }
      void await_resume() const noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
    ~promise_type() {
      node.unlink();
      if (state != nullptr) {
        if (!state->finished) state->dropped = true;
        state->unref();
      }
    }

    RootNode node;
    JoinStateBase* state = nullptr;
  };
  std::coroutine_handle<promise_type> handle;
};

template <class T>
RootTask run_root(Task<T> task, JoinState<T>* st) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      st->value.emplace();
    } else {
      st->value.emplace(co_await std::move(task));
    }
  } catch (...) {
    st->exception = std::current_exception();
  }
  st->finished = true;
}

}  // namespace detail

// The handle to a task started with spawn(). co_await it for the task's value
// (or exception). Destroying or detach()ing it lets the task run on by itself.
template <class T>
class [[nodiscard]] JoinHandle {
 public:
  JoinHandle() noexcept = default;
  explicit JoinHandle(detail::JoinState<T>* st) noexcept : st_(st) {}
  JoinHandle(JoinHandle&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& o) noexcept {
    if (this != &o) {
      detach();
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  ~JoinHandle() { detach(); }

  // True once the task has returned or thrown.
  bool is_finished() const noexcept { return st_ != nullptr && st_->finished; }

  // Lets the task run to completion on its own; its result is discarded.
  void detach() noexcept {
    if (st_ != nullptr) std::exchange(st_, nullptr)->unref();
  }

  class Awaiter {
   public:
    explicit Awaiter(detail::JoinState<T>* st) noexcept : st_(st) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (st_->joiner == waiting_) st_->joiner = {};
    }
    bool await_ready() const noexcept { return st_->finished; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      waiting_ = h;
      st_->joiner = h;
    }
    T await_resume() {
      waiting_ = {};
      if (st_->exception) std::rethrow_exception(st_->exception);
      if constexpr (!std::is_void_v<T>) return std::move(*st_->value);
    }

   private:
    detail::JoinState<T>* st_;
    std::coroutine_handle<> waiting_;
  };

  // Waits for the task; await a JoinHandle at most once.
  Awaiter operator co_await() noexcept { return Awaiter(st_); }

 private:
  detail::JoinState<T>* st_ = nullptr;
};

// Starts `task` on the calling shard; it first runs at this shard's next
// loop turn.
template <class T>
JoinHandle<T> spawn(Task<T> task) {
  detail::Reactor& r = detail::Reactor::require_current();
  auto* st = new detail::JoinState<T>();
  detail::RootTask root = detail::run_root(std::move(task), st);
  auto& p = root.handle.promise();
  p.state = st;
  p.node.handle = root.handle;
  r.link_root(&p.node);
  r.schedule(root.handle);
  return JoinHandle<T>(st);
}

class Runtime {
 public:
  // Starts the shards. Throws std::system_error with a message that says
  // what failed and what to do (for example when io_uring is disabled).
  explicit Runtime(RuntimeOptions options = {});
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  ~Runtime();

  // Runs `task` on shard 0 and blocks the calling thread until it finishes;
  // returns its value or rethrows its exception. Must not be called from a
  // shard thread. Other tasks keep running afterwards.
  template <class T>
  T block_on(Task<T> task);

  // Runs `fn` on `shard` at its next loop turn. Callable from any thread
  // (threads that are not shards go through the shard's inbox and eventfd;
  // a shard uses its SPSC queue). Once the shard has stopped, `fn` is
  // destroyed without running.
  void post(unsigned shard, absl::AnyInvocable<void()> fn);

  // Runs fn() on `shard` (as a task if it returns a Task) and returns a
  // future for its value or exception. For threads that are not shards; a
  // future whose work was dropped by stop() reports broken_promise.
  template <class F>
  std::future<detail::CallValue<F>> submit(unsigned shard, F fn);

  // Starts fn() (a task or a plain function) on `shard`, detached.
  template <class F>
  void spawn_on(unsigned shard, F fn) {
    post(shard, [fn = std::move(fn)]() mutable {
      if constexpr (detail::TaskValue<std::invoke_result_t<F&>>::kIsTask) {
        spawn(detail::invoke_task(std::move(fn))).detach();
      } else {
        fn();
      }
    });
  }

  // Stops every shard: suspended tasks are destroyed, in-flight ops cancelled
  // and awaited, threads joined. Idempotent; the destructor calls it. Must
  // not be called from a shard thread.
  void stop();

  unsigned shard_count() const noexcept {
    return static_cast<unsigned>(shards_.size());
  }
  // A snapshot of a shard's counters; callable from any thread.
  ShardCounters counters(unsigned shard) const;
  // The IORING_SETUP_* flags shard `shard`'s ring was created with.
  unsigned setup_flags(unsigned shard) const;
  // A snapshot of every shard (see stats.h), each taken on its shard: blocks
  // until every shard has run a turn. Not from a shard thread (throws
  // std::logic_error; use this_shard::stats() there). After stop(), or for
  // a shard that stopped meanwhile, the shard's values as it left its loop
  // (nothing in flight, queues empty, its final histograms).
  RuntimeStats stats() const;
  const RuntimeOptions& options() const noexcept { return options_; }

 private:
  void check_not_on_shard(const char* what) const;

  RuntimeOptions options_;
  // queues_[src * n + dst]; declared before shards_ so it outlives them.
  std::vector<std::unique_ptr<detail::SpscQueue<absl::AnyInvocable<void()>>>>
      queues_;
  std::unique_ptr<detail::BlockingPool> blocking_;
  std::vector<std::unique_ptr<detail::Shard>> shards_;
  std::atomic<bool> stopped_{false};
};

namespace detail {

template <class T>
struct BlockOnState {
  std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
  std::exception_ptr exception;
  bool finished = false;
  Event done;
};

// Notifies block_on() even when the task is destroyed by a shutdown.
template <class T>
struct BlockOnGuard {
  BlockOnState<T>* s;
  ~BlockOnGuard() { s->done.notify(); }
};

// Owned by the message that carries a block_on task to shard 0: if the
// message is destroyed without running (the runtime stopped), the caller
// still wakes.
template <class T>
class BlockOnTicket {
 public:
  explicit BlockOnTicket(BlockOnState<T>* s) noexcept : s_(s) {}
  BlockOnTicket(BlockOnTicket&& o) noexcept
      : s_(std::exchange(o.s_, nullptr)) {}
  BlockOnTicket& operator=(BlockOnTicket&&) = delete;
  ~BlockOnTicket() {
    if (s_ != nullptr) s_->done.notify();
  }
  BlockOnState<T>* take() noexcept { return std::exchange(s_, nullptr); }

 private:
  BlockOnState<T>* s_;
};

template <class T>
Task<void> block_on_body(Task<T> task, BlockOnState<T>* s) {
  BlockOnGuard<T> guard{s};
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      s->value.emplace();
    } else {
      s->value.emplace(co_await std::move(task));
    }
  } catch (...) {
    s->exception = std::current_exception();
  }
  s->finished = true;
}

}  // namespace detail

template <class T>
T Runtime::block_on(Task<T> task) {
  check_not_on_shard("Runtime::block_on");
  if (stopped_.load()) {
    throw std::runtime_error(
        "shardio: Runtime::block_on was called after the runtime stopped");
  }
  detail::BlockOnState<T> s;
  post(0,
       [ticket = detail::BlockOnTicket<T>(&s), t = std::move(task)]() mutable {
         spawn(detail::block_on_body(std::move(t), ticket.take())).detach();
       });
  s.done.wait();
  if (s.exception) std::rethrow_exception(s.exception);
  if (!s.finished) {
    throw std::runtime_error(
        "shardio: the runtime stopped before the block_on task finished");
  }
  if constexpr (!std::is_void_v<T>) return std::move(*s.value);
}

namespace detail {
template <class R>
Task<void> fulfil(std::promise<R> p, Task<R> task) {
  try {
    if constexpr (std::is_void_v<R>) {
      co_await std::move(task);
      p.set_value();
    } else {
      p.set_value(co_await std::move(task));
    }
  } catch (...) {
    p.set_exception(std::current_exception());
  }
}
}  // namespace detail

template <class F>
std::future<detail::CallValue<F>> Runtime::submit(unsigned shard, F fn) {
  using R = detail::CallValue<F>;
  std::promise<R> p;
  std::future<R> f = p.get_future();
  post(shard, [p = std::move(p), fn = std::move(fn)]() mutable {
    if constexpr (detail::TaskValue<std::invoke_result_t<F&>>::kIsTask) {
      spawn(detail::fulfil<R>(std::move(p), detail::invoke_task(std::move(fn))))
          .detach();
    } else {
      try {
        if constexpr (std::is_void_v<R>) {
          fn();
          p.set_value();
        } else {
          p.set_value(fn());
        }
      } catch (...) {
        p.set_exception(std::current_exception());
      }
    }
  });
  return f;
}

// The number of shards of the runtime the calling shard belongs to.
unsigned shard_count();

// Names one shard so that any thread can hand it work. Valid while the
// runtime runs; a closure posted after the shard stopped is destroyed
// without running.
class ShardRef {
 public:
  ShardRef() = default;
  explicit ShardRef(detail::Reactor* r) noexcept : reactor_(r) {}
  // Runs `fn` on the shard at its next loop turn; callable from any thread.
  void post(absl::AnyInvocable<void()> fn) const;
  // The shard's this_shard::identity().
  uintptr_t identity() const noexcept {
    return reinterpret_cast<uintptr_t>(reactor_);
  }
  explicit operator bool() const noexcept { return reactor_ != nullptr; }

 private:
  detail::Reactor* reactor_ = nullptr;
};

namespace this_shard {

// The calling shard's index, 0 .. shard_count()-1. Throws std::logic_error
// off-shard.
unsigned id();
// A snapshot of the calling shard's counters.
ShardCounters counters();
// The IORING_SETUP_* flags the calling shard's ring was created with.
unsigned setup_flags();

// A value that identifies the calling shard among all shards of all
// runtimes in the process, or 0 when the caller is not on a shard. Objects
// bound to a shard keep it to check where they are used.
uintptr_t identity() noexcept;

// Whether the calling shard's kernel supports an io_uring opcode.
bool supports(uint8_t opcode);

// Registered (fixed) files and buffers of the calling shard. A registered
// file is used with IOSQE_FIXED_FILE and its slot instead of the fd; a
// registered buffer with READ_FIXED/WRITE_FIXED and its slot. Slots are
// per shard; unregister them on the same shard. A negative fd is refused
// with EBADF and a null base with EINVAL before the kernel is asked (its
// update calls would take them to mean "clear the slot").
Result<unsigned> register_file(int fd);
Result<void> unregister_file(unsigned slot);
Result<unsigned> register_buffer(void* base, std::size_t len);
Result<void> unregister_buffer(unsigned slot);
// Provided-buffer rings (see buffer_ring.h, which builds on these): registers
// `entries` io_uring_buf slots at page-aligned `ring_addr` as a new buffer
// group of the calling shard and returns its id. A null or unaligned
// address, or `entries` that is not a power of two below 65536, is EINVAL;
// EOPNOTSUPP means the kernel has no buffer rings (before Linux 5.19).
Result<uint16_t> register_buf_ring(void* ring_addr, unsigned entries);
Result<void> unregister_buf_ring(uint16_t group);

// The calling shard, for posting work to it from other threads.
ShardRef ref();

// Lets the other ready tasks of this shard run, then continues.
class [[nodiscard]] YieldAwaiter {
 public:
  YieldAwaiter() = default;
  YieldAwaiter(const YieldAwaiter&) = delete;
  YieldAwaiter& operator=(const YieldAwaiter&) = delete;
  ~YieldAwaiter() {
    // Destroyed while suspended: its resumption is still queued.
    if (waiting_) detail::unschedule_frame(waiting_);
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    detail::Reactor::require_current().schedule(h);
    waiting_ = h;
  }
  void await_resume() noexcept { waiting_ = {}; }

 private:
  std::coroutine_handle<> waiting_;
};
inline YieldAwaiter yield() noexcept { return {}; }

}  // namespace this_shard
}  // namespace shardio
