// shardio/detail/reactor.h — the part of a shard that submit(), batch() and
// the task machinery touch inline (not part of the public API; use
// operation.h, batch.h and runtime.h).
//
// A Reactor is one shard's ring, its ready queue of coroutines, its pool of
// completion records and its counters. Everything here runs on the shard's own
// thread: nothing takes a lock or performs an atomic read-modify-write.
// Counters are atomics written with relaxed load+store by their single writer
// so that other threads may read them.
//
// Completion records: every submitted op lives in an OpRecord<Op> taken from a
// per-shard pool of power-of-two size classes. The record's address is the
// SQE's user_data. A record is released only when both its final CQE has
// arrived and its awaiter has let go; an awaiter destroyed early marks the
// record orphaned and submits IORING_OP_ASYNC_CANCEL, and the record (with the
// op's buffers and fds) is destroyed when the final CQE arrives.
#pragma once

#include <liburing.h>

#include <atomic>
#include <bit>
#include <bitset>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/functional/any_invocable.h"
#include "shardio/result.h"

#ifdef ABSL_HAVE_ADDRESS_SANITIZER
#include <sanitizer/asan_interface.h>
#endif

namespace shardio {

// A snapshot of one shard's counters (see Runtime::counters and
// this_shard::counters).
struct ShardCounters {
  uint64_t sqes_submitted = 0;     // SQEs handed to the kernel
  uint64_t cqes_reaped = 0;        // CQEs consumed from the CQ ring
  uint64_t enters = 0;             // io_uring_enter system calls
  uint64_t loop_turns = 0;         // iterations of the shard loop
  uint64_t tasks_run = 0;          // coroutine resumptions from the ready queue
  uint64_t ops_orphaned = 0;       // ops whose awaiter went away before the CQE
  uint64_t sq_full_flushes = 0;    // submissions forced by a full SQ
  uint64_t messages_sent = 0;      // shard-to-shard messages queued
  uint64_t messages_received = 0;  // shard-to-shard messages run
  uint64_t doorbells_sent = 0;     // IORING_OP_MSG_RING wake-ups sent
  uint64_t outbox_waits = 0;       // messages that found the queue full
  uint64_t ops_in_flight = 0;      // records waiting for a final CQE (gauge)
  uint64_t multishot_rearms = 0;   // multishot ops re-armed after an early end
};

namespace detail {

// user_data values below this are reserved for the runtime's own SQEs;
// records are 64-byte aligned, so their addresses are never this small.
inline constexpr uint64_t kUserDataIgnore = 1;    // cancels, padding NOPs
inline constexpr uint64_t kUserDataWake = 2;      // the shard's eventfd read
inline constexpr uint64_t kUserDataDoorbell = 3;  // IORING_OP_MSG_RING wake
inline constexpr uint64_t kReservedUserDataLimit = 64;

// A single-writer counter that other threads may read.
class Counter {
 public:
  void add(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A frame suspended in a shardio awaiter is being destroyed: withdraws any
// resumption of it that the calling shard has queued (its wake-up may be in
// the ready queue already when its owner drops it in the same loop turn).
// Off a shard it does nothing. Awaiters call it from their destructors.
void unschedule_frame(std::coroutine_handle<> h) noexcept;

// Who is waiting on one or more records: the coroutine to resume when
// `remaining` records have delivered their final CQE. The awaiter clears
// `handle` when it resumes; a Waiter destroyed with its wake-up queued and
// not run (remaining reached 0) takes it back.
struct Waiter {
  std::coroutine_handle<> handle;
  uint32_t remaining = 0;

  Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter() {
    if (handle && remaining == 0) [[unlikely]]
      unschedule_frame(handle);
  }
  void resumed() noexcept { handle = {}; }
};

// kParked: a multishot record between an early end and its re-arm; the
// kernel holds nothing of it.
enum class RecordState : uint8_t { kIdle, kInFlight, kDone, kParked };

struct alignas(64) OpRecordBase {
  // Consumes one CQE; returns true when it was the final one.
  bool (*on_cqe)(OpRecordBase*, const io_uring_cqe&) = nullptr;
  // Runs the concrete record's destructor (the op and its result).
  void (*destroy)(OpRecordBase*) noexcept = nullptr;
  Waiter* waiter = nullptr;
  uint32_t generation = 0;  // bumped on every release; guards stale cancels
  uint8_t size_class = 0;
  RecordState state = RecordState::kIdle;
  bool orphaned = false;
  uint8_t opcode = 0;      // of the SQE last prepared (stats, fault rules)
  bool multishot = false;  // a MultishotRecord
  uint8_t fault = 0;       // what an attached CqeInterceptor marked here
  uint64_t submit_ns = 0;  // start()'s time, with latency histograms on
};

class Reactor;

// Sees every CQE of a record before the record does, and may rewrite it or
// hold it back; sees every record's SQE before the kernel does, and may
// rewrite it (testing::FaultInjector implements it). Attached per shard;
// all calls come on that shard's thread. With none attached the runtime
// pays one pointer test per CQE, per SQE and per started record.
class CqeInterceptor {
 public:
  virtual ~CqeInterceptor() = default;
  // May change `cqe`; returns false to keep it (the interceptor hands it
  // back later with Reactor::deliver).
  virtual bool on_cqe(Reactor& r, OpRecordBase& rec, io_uring_cqe& cqe) = 0;
  // Sees a record's SQE after prepare() (and chain()'s link flags), before
  // the kernel does; may rewrite it (from Reactor::start and restart).
  virtual void on_sqe(Reactor& r, OpRecordBase& rec, io_uring_sqe& sqe) {
    (void)r;
    (void)rec;
    (void)sqe;
  }
  // Whether get_sqe() should behave as if the SQ were full this time.
  virtual bool force_sq_full() = 0;
  // Once per loop turn: deliver what was held back and is due.
  virtual void on_turn(Reactor& r) = 0;
  // The shard is shutting down: deliver everything held back now. The
  // interceptor is detached right after.
  virtual void flush(Reactor& r) = 0;
};

// Holds what complete() returned, including void, or what it threw (handed
// to the awaiter by take(); the shard loop never sees it).
template <class R>
struct ResultSlot {
  std::optional<R> value;
  std::exception_ptr exception;
  template <class F>
  void fill(F&& f) noexcept {
    try {
      value.emplace(f());
    } catch (...) {
      exception = std::current_exception();
    }
  }
  R take() {
    if (exception) std::rethrow_exception(exception);
    return std::move(*value);
  }
};
template <>
struct ResultSlot<void> {
  std::exception_ptr exception;
  template <class F>
  void fill(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      exception = std::current_exception();
    }
  }
  void take() {
    if (exception) std::rethrow_exception(exception);
  }
};

template <class Op>
using CompleteResult =
    decltype(std::declval<Op&>().complete(std::declval<const io_uring_cqe&>()));

// Whether the calling shard's kernel has `opcode` (see Reactor).
bool opcode_supported_here(uint8_t opcode) noexcept;

// A shard's latency histograms (shardio/stats.h) and the clock they use
// (CLOCK_MONOTONIC in nanoseconds).
struct LatencyStats;
uint64_t monotonic_ns() noexcept;

// Resumes `rec`'s waiter (when it is the last one it waits for) before the
// record's final CQE, and detaches the waiter from the record.
void wake_early(OpRecordBase* rec) noexcept;

template <class Op>
struct OpRecord final : OpRecordBase {
  using R = CompleteResult<Op>;

  explicit OpRecord(Op&& o) : op(std::move(o)) {
    on_cqe = [](OpRecordBase* b, const io_uring_cqe& cqe) -> bool {
      auto* self = static_cast<OpRecord*>(b);
      if constexpr (requires { Op::kOpcode; }) {
        // An op that names its opcode gets EOPNOTSUPP, not the kernel's
        // ambiguous EINVAL, when the running kernel lacks that opcode.
        if (cqe.res == -EINVAL && !opcode_supported_here(Op::kOpcode)) {
          io_uring_cqe copy = cqe;
          copy.res = -EOPNOTSUPP;
          // By pointer: Clang cannot capture a struct with a flexible array
          // member (io_uring_cqe::big_cqe).
          const io_uring_cqe* c = &copy;
          self->result.fill([self, c]() -> R { return self->op.complete(*c); });
          return true;
        }
      }
      if (self->delivered) [[unlikely]] {
        // A CQE after the result: the notification of an op whose result
        // CQE carried IORING_CQE_F_MORE (zero-copy send). The op keeps its
        // buffers until this final CQE.
        if constexpr (requires { self->op.notify(cqe); }) self->op.notify(cqe);
        return (cqe.flags & IORING_CQE_F_MORE) == 0;
      }
      const io_uring_cqe* c = &cqe;
      self->result.fill([self, c]() -> R { return self->op.complete(*c); });
      if (cqe.flags & IORING_CQE_F_MORE) [[unlikely]] {
        // The result is here but more CQEs follow: wake the awaiter now and
        // keep the record (and the op's buffers) until the final one.
        self->delivered = true;
        wake_early(self);
        return false;
      }
      return true;
    };
    destroy = [](OpRecordBase* b) noexcept {
      static_cast<OpRecord*>(b)->~OpRecord();
    };
  }

  Op op;
  ResultSlot<R> result;
  bool delivered = false;  // the result came in a CQE with F_MORE
};

// A FIFO of coroutines ready to run; grows by doubling and never shrinks.
class ReadyQueue {
 public:
  ReadyQueue() = default;
  ReadyQueue(const ReadyQueue&) = delete;
  ReadyQueue& operator=(const ReadyQueue&) = delete;
  ~ReadyQueue() { delete[] buf_; }

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  void push(std::coroutine_handle<> h) {
    if (tail_ - head_ == cap_) grow();
    buf_[tail_++ & (cap_ - 1)] = h;
  }
  std::coroutine_handle<> pop() noexcept { return buf_[head_++ & (cap_ - 1)]; }
  void clear() noexcept { head_ = tail_ = 0; }
  // Replaces every queued `h` with a no-op coroutine (a frame destroyed
  // after its wake-up was queued must not be resumed). Linear; rare.
  void unschedule(std::coroutine_handle<> h) noexcept {
    for (std::size_t i = head_; i != tail_; ++i) {
      std::coroutine_handle<>& slot = buf_[i & (cap_ - 1)];
      if (slot.address() == h.address()) slot = std::noop_coroutine();
    }
  }

 private:
  void grow();
  std::coroutine_handle<>* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

// Power-of-two size classes from 64 bytes; memory returns to the system only
// when the shard ends.
class RecordPool {
 public:
  static constexpr std::size_t kMinSize = 64;
  static constexpr std::size_t kClasses = 15;  // 64 B .. 1 MiB

  RecordPool() = default;
  RecordPool(const RecordPool&) = delete;
  RecordPool& operator=(const RecordPool&) = delete;
  ~RecordPool();

  static constexpr uint8_t class_of(std::size_t size) noexcept {
    return static_cast<uint8_t>(
        std::bit_width((size + kMinSize - 1) / kMinSize - 1));
  }
  void* get(uint8_t cls) {
    if (FreeNode* n = free_[cls]) {
      unpoison(n, cls);
      free_[cls] = n->next;
      return n;
    }
    void* p = ::operator new (kMinSize << cls, std::align_val_t{64});
    std::memset(p, 0, kMinSize);  // a fresh block starts at generation 0
    return p;
  }
  void put(uint8_t cls, void* p) noexcept {
    auto* n = static_cast<FreeNode*>(p);
    n->next = free_[cls];
    free_[cls] = n;
    poison(n, cls);
  }

 private:
  // Under ASan a pooled record is poisoned except for its free-list link and
  // its generation, so a use of a released record is reported.
  static void poison([[maybe_unused]] void* p,
                     [[maybe_unused]] uint8_t cls) noexcept;
  static void unpoison([[maybe_unused]] void* p,
                       [[maybe_unused]] uint8_t cls) noexcept;

  // Overlays a free record's memory past OpRecordBase::generation, which
  // must survive reuse; see put().
  struct FreeNode {
    FreeNode* next;
  };
  FreeNode* free_[kClasses] = {};
};

inline void RecordPool::poison([[maybe_unused]] void* p,
                               [[maybe_unused]] uint8_t cls) noexcept {
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
  constexpr std::size_t kGenEnd =
      offsetof(OpRecordBase, generation) + sizeof(uint32_t);
  char* c = static_cast<char*>(p);
  ASAN_POISON_MEMORY_REGION(
      c + sizeof(FreeNode),
      offsetof(OpRecordBase, generation) - sizeof(FreeNode));
  ASAN_POISON_MEMORY_REGION(c + kGenEnd, (kMinSize << cls) - kGenEnd);
#endif
}

inline void RecordPool::unpoison([[maybe_unused]] void* p,
                                 [[maybe_unused]] uint8_t cls) noexcept {
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
  ASAN_UNPOISON_MEMORY_REGION(p, kMinSize << cls);
#endif
}

// Links a spawned task's root coroutine into its shard, so that the shard can
// destroy tasks still suspended when it shuts down.
struct RootNode {
  RootNode* prev = this;
  RootNode* next = this;
  std::coroutine_handle<> handle;

  bool linked() const noexcept { return next != this; }
  void unlink() noexcept {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
};

class Reactor {
 public:
  Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;
  ~Reactor();

  // The reactor of the calling thread's shard, or null off-shard.
  static Reactor* current() noexcept { return tls_current_; }
  // Like current(), but throws std::logic_error when called off-shard.
  static Reactor& require_current();

  unsigned shard_id() const noexcept { return shard_id_; }
  unsigned shard_count() const noexcept { return shard_count_; }

  template <class Op>
  OpRecord<Op>* make_record(Op&& op) {
    return make_record_as<OpRecord<Op>>(std::move(op));
  }

  // A record of type Rec (an OpRecordBase with the op in `op`) from the pool.
  template <class Rec, class Op>
  Rec* make_record_as(Op&& op) {
    constexpr std::size_t kSize = sizeof(Rec);
    static_assert(kSize <= (RecordPool::kMinSize << (RecordPool::kClasses - 1)),
                  "operation is too large to keep in a completion record; "
                  "hold large buffers by pointer");
    constexpr uint8_t kClass = RecordPool::class_of(kSize);
    void* mem = pool_.get(kClass);
    const uint32_t gen = static_cast<OpRecordBase*>(mem)->generation;
    auto* rec = new (mem) Rec(std::move(op));
    rec->generation = gen;
    rec->size_class = kClass;
    return rec;
  }

  // A zeroed SQE; submits what is queued first when the SQ is full.
  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = interceptor_ != nullptr && interceptor_->force_sq_full()
                            ? nullptr
                            : io_uring_get_sqe(&ring_);
    if (sqe == nullptr) [[unlikely]]
      sqe = get_sqe_slow();
    std::memset(sqe, 0, sizeof(*sqe));
    return sqe;
  }

  // Makes sure `n` SQEs fit without a submission in between (for linked
  // chains, which must reach the kernel in one submission). Returns false
  // when n exceeds the SQ size.
  bool reserve_sqes(unsigned n);

  // Prepares `rec`'s SQE via `prepare` (which receives the zeroed SQE) and
  // marks the record in flight.
  template <class Rec>
  void start(Rec* rec, uint8_t extra_flags = 0) {
    io_uring_sqe* sqe = get_sqe();
    rec->op.prepare(*sqe);
    sqe->flags |= extra_flags;
    io_uring_sqe_set_data(sqe, static_cast<OpRecordBase*>(rec));
    rec->state = RecordState::kInFlight;
    rec->opcode = sqe->opcode;
    ++in_flight_by_opcode_[sqe->opcode];
    in_flight_.add();
    if (latency_ != nullptr) [[unlikely]]
      rec->submit_ns = monotonic_ns();
    if (interceptor_ != nullptr) [[unlikely]]
      interceptor_->on_sqe(*this, *rec, *sqe);
  }

  // Destroys a record whose final CQE has been consumed (or that was never
  // started) and returns it to the pool.
  void release(OpRecordBase* rec) noexcept {
    const uint8_t cls = rec->size_class;
    const uint32_t gen = rec->generation + 1;
    rec->destroy(rec);
    auto* base = static_cast<OpRecordBase*>(static_cast<void*>(rec));
    // Keep the generation readable in the free block (stale cancels compare
    // it); FreeNode::next overlays the first bytes only.
    base->generation = gen;
    pool_.put(cls, rec);
  }

  // The awaiter has taken the result: release the record, or, when the
  // kernel still owes it a CQE (a notification after the result), let that
  // final CQE release it.
  void finish(OpRecordBase* rec) noexcept {
    if (rec->state != RecordState::kInFlight) {
      release(rec);
      return;
    }
    rec->orphaned = true;
    rec->waiter = nullptr;
  }

  // The awaiter is going away: release a finished record, or orphan an
  // in-flight one and ask the kernel to cancel it.
  void abandon(OpRecordBase* rec) noexcept {
    if (rec->state != RecordState::kInFlight) {
      release(rec);
      return;
    }
    rec->orphaned = true;
    rec->waiter = nullptr;
    counters_.ops_orphaned.add();
    cancel(rec);
  }

  // Queues an IORING_OP_ASYNC_CANCEL for an in-flight record; a no-op when
  // the record has already finished.
  void cancel(OpRecordBase* rec) noexcept;

  // Delivers a CQE; runs on the shard thread only.
  void dispatch(const io_uring_cqe& cqe) {
    const uint64_t ud = cqe.user_data;
    if (ud < kReservedUserDataLimit) [[unlikely]] {
      handle_reserved(cqe);
      return;
    }
    auto* rec = reinterpret_cast<OpRecordBase*>(ud);
    if (interceptor_ != nullptr) [[unlikely]] {
      io_uring_cqe copy = cqe;
      if (interceptor_->on_cqe(*this, *rec, copy)) deliver(copy);
      return;
    }
    deliver(cqe);
  }

  // Hands a CQE to its record (dispatch() without the interceptor).
  void deliver(const io_uring_cqe& cqe) {
    auto* rec = reinterpret_cast<OpRecordBase*>(cqe.user_data);
    if (!rec->on_cqe(rec, cqe)) return;
    rec->state = RecordState::kDone;
    --in_flight_by_opcode_[rec->opcode];
    in_flight_.sub();
    if (latency_ != nullptr) [[unlikely]]
      note_op_latency(rec);
    if (rec->orphaned) {
      release(rec);
      return;
    }
    Waiter* w = rec->waiter;
    if (w != nullptr && --w->remaining == 0) ready_.push(w->handle);
  }

  // Queues the SQE of a record that is in flight or parked again (a
  // multishot op re-armed after the kernel ended it early).
  void restart(OpRecordBase* rec,
               void (*prepare)(OpRecordBase*, io_uring_sqe&)) {
    io_uring_sqe* sqe = get_sqe();
    prepare(rec, *sqe);
    io_uring_sqe_set_data(sqe, rec);
    if (rec->state != RecordState::kInFlight) {
      rec->state = RecordState::kInFlight;
      rec->opcode = sqe->opcode;
      ++in_flight_by_opcode_[sqe->opcode];
      in_flight_.add();
    }
    if (interceptor_ != nullptr) [[unlikely]]
      interceptor_->on_sqe(*this, *rec, *sqe);
    counters_.multishot_rearms.add();
  }
  // A multishot record leaves the kernel without ending (see kParked).
  void park(OpRecordBase* rec) noexcept {
    rec->state = RecordState::kParked;
    --in_flight_by_opcode_[rec->opcode];
    in_flight_.sub();
  }

  // A multishot op that the kernel ended with -ENOBUFS is re-armed or
  // parked until a buffer comes back (stats.h: enobufs_rearms).
  void note_enobufs_rearm() noexcept { enobufs_rearms_.add(); }

  // Attaches (or, with null, detaches) a CQE interceptor; on this shard.
  void set_interceptor(CqeInterceptor* i) noexcept { interceptor_ = i; }
  CqeInterceptor* interceptor() const noexcept { return interceptor_; }
  // Records in flight per opcode (read on this shard).
  uint32_t in_flight_for(uint8_t opcode) const noexcept {
    return in_flight_by_opcode_[opcode];
  }

  // Consumes every CQE in the CQ ring; returns how many.
  unsigned reap();

  // Schedules a coroutine to run on this shard.
  void schedule(std::coroutine_handle<> h) { ready_.push(h); }
  // Withdraws every pending resumption of `h` (from the ready queue and the
  // outbox) because its frame is being destroyed; its messages still go.
  void unschedule(std::coroutine_handle<> h) noexcept;

  // Adopts a spawned task's root coroutine until it finishes.
  void link_root(RootNode* n) noexcept {
    n->next = &roots_;
    n->prev = roots_.prev;
    roots_.prev->next = n;
    roots_.prev = n;
  }

  // Runs `fn` on this shard's thread at its next loop turn; callable from any
  // thread (the inbox for threads that are not shards: a mutex and an
  // eventfd).
  void post(absl::AnyInvocable<void()> fn);

  // Shard-to-shard messages (call on this shard's thread). try_send() puts
  // `m` into the SPSC queue towards `dst` and rings dst's doorbell if it may
  // be parked; it fails, leaving `m` as it was, when the queue is full or
  // earlier messages to `dst` are still waiting in this shard's outbox.
  // send_later() never fails: `m` waits in the outbox (FIFO per destination)
  // and `resume`, if set, is scheduled once `m` is in the queue. `dst` may be
  // this shard.
  bool try_send(unsigned dst, absl::AnyInvocable<void()>& m);
  void send_later(unsigned dst, absl::AnyInvocable<void()> m,
                  std::coroutine_handle<> resume);
  // Hands `job` to the runtime's blocking thread pool; false once the
  // runtime is stopping (the job is then dropped).
  bool run_blocking(absl::AnyInvocable<void()> job);

  // Sends now if possible, else through the outbox.
  void send(unsigned dst, absl::AnyInvocable<void()> m) {
    if (!try_send(dst, m)) send_later(dst, std::move(m), {});
  }

  // Whether this shard's kernel supports `opcode` (probed at ring setup).
  bool opcode_supported(uint8_t opcode) const noexcept {
    return supported_ops_.test(opcode);
  }

  // Ring-level registrations, made on this shard's thread. Slots live in
  // sparse tables created on first use (RuntimeOptions sizes them).
  Result<unsigned> register_file(int fd);
  Result<void> unregister_file(unsigned slot);
  Result<unsigned> register_buffer(void* base, std::size_t len);
  Result<void> unregister_buffer(unsigned slot);
  // Registers a provided-buffer ring (`entries` io_uring_buf slots at
  // ring_addr, page-aligned) under a new buffer group id.
  Result<uint16_t> register_buf_ring(void* ring_addr, unsigned entries);
  Result<void> unregister_buf_ring(uint16_t group);

  ShardCounters counters() const noexcept;
  uint64_t enters() const noexcept { return counters_.enters.get(); }
  // The IORING_SETUP_* flags this shard's ring was created with.
  unsigned setup_flags() const noexcept { return setup_flags_; }
  unsigned sq_entries() const noexcept { return ring_.sq.ring_entries; }

 protected:
  struct Counters {
    Counter sqes_submitted;
    Counter cqes_reaped;
    Counter enters;
    Counter loop_turns;
    Counter tasks_run;
    Counter ops_orphaned;
    Counter sq_full_flushes;
    Counter messages_sent;
    Counter messages_received;
    Counter doorbells_sent;
    Counter outbox_waits;
    Counter multishot_rearms;
  };

  io_uring_sqe* get_sqe_slow();
  // Submits queued SQEs and collects completions without waiting; counts one
  // enter.
  void submit_and_get_events();
  void handle_reserved(const io_uring_cqe& cqe);
  // Records a single-shot op's submit-to-final-CQE time (stats.cc).
  void note_op_latency(const OpRecordBase* rec) noexcept;

  static inline thread_local Reactor* tls_current_ = nullptr;

  io_uring ring_{};
  ReadyQueue ready_;
  RecordPool pool_;
  Counters counters_;
  Counter in_flight_;
  Counter enobufs_rearms_;           // see ShardStats (stats.h)
  Counter cq_overflow_backlogs_;     // reaps that saw IORING_SQ_CQ_OVERFLOW
  LatencyStats* latency_ = nullptr;  // null unless latency_histograms
  RootNode roots_;
  std::bitset<256> supported_ops_;
  CqeInterceptor* interceptor_ = nullptr;
  uint32_t in_flight_by_opcode_[256] = {};
  unsigned fixed_file_slots_ = 0;  // table size, 0 until first use
  unsigned fixed_buffer_slots_ = 0;
  std::vector<unsigned> free_file_slots_;
  std::vector<unsigned> free_buffer_slots_;
  std::vector<bool> file_slot_used_;
  std::vector<bool> buffer_slot_used_;
  std::vector<uint16_t> free_buf_groups_;
  std::vector<bool> buf_group_used_;
  unsigned max_fixed_files_ = 4096;
  unsigned max_fixed_buffers_ = 1024;
  unsigned shard_id_ = 0;
  unsigned shard_count_ = 1;
  unsigned setup_flags_ = 0;
};

}  // namespace detail
}  // namespace shardio
