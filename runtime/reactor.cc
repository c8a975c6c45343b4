// The out-of-line parts of a shard's Reactor: slow paths of submission,
// reaping, cancellation and counters.
#include "shardio/detail/reactor.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "absl/strings/str_format.h"
#include "runtime/blocking_pool.h"
#include "runtime/shard.h"
#include "shardio/batch.h"
#include "shardio/multishot.h"
#include "shardio/operation.h"

namespace shardio::detail {

void ReadyQueue::grow() {
  const std::size_t new_cap = cap_ == 0 ? 64 : cap_ * 2;
  auto* nb = new std::coroutine_handle<>[new_cap];
  const std::size_t n = tail_ - head_;
  for (std::size_t i = 0; i < n; ++i) nb[i] = buf_[(head_ + i) & (cap_ - 1)];
  delete[] buf_;
  buf_ = nb;
  cap_ = new_cap;
  head_ = 0;
  tail_ = n;
}

RecordPool::~RecordPool() {
  for (FreeNode*& head : free_) {
    while (head != nullptr) {
      FreeNode* n = head;
      head = n->next;
      unpoison(n, static_cast<uint8_t>(&head - free_));
      ::operator delete (n, std::align_val_t{64});
    }
  }
}

Reactor::Reactor() = default;
Reactor::~Reactor() = default;

Reactor& Reactor::require_current() {
  Reactor* r = tls_current_;
  if (r == nullptr) {
    throw std::logic_error(
        "shardio: this call must run inside a task on a shard (start it with "
        "Runtime::block_on or spawn)");
  }
  return *r;
}

void Reactor::submit_and_get_events() {
  for (;;) {
    counters_.enters.add();
    const int ret = io_uring_submit_and_get_events(&ring_);
    if (ret >= 0) {
      counters_.sqes_submitted.add(static_cast<uint64_t>(ret));
      return;
    }
    if (ret == -EINTR) continue;
    if (ret == -EAGAIN || ret == -EBUSY) {
      // The kernel is short of memory for requests or holds overflowed
      // CQEs: consume completions, then let the caller go on; what is left
      // in the SQ goes with the next submission.
      reap();
      return;
    }
    std::fprintf(stderr, "shardio: io_uring_enter failed on shard %u: %s\n",
                 shard_id_, std::strerror(-ret));
    std::abort();
  }
}

io_uring_sqe* Reactor::get_sqe_slow() {
  for (;;) {
    counters_.sq_full_flushes.add();
    submit_and_get_events();
    reap();
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    // With SQPOLL the kernel thread may not have consumed the SQ yet.
    if (setup_flags_ & IORING_SETUP_SQPOLL) io_uring_sqring_wait(&ring_);
  }
}

bool Reactor::reserve_sqes(unsigned n) {
  if (n > ring_.sq.ring_entries) return false;
  while (io_uring_sq_space_left(&ring_) < n) {
    counters_.sq_full_flushes.add();
    submit_and_get_events();
    reap();
    if (io_uring_sq_space_left(&ring_) < n &&
        (setup_flags_ & IORING_SETUP_SQPOLL)) {
      io_uring_sqring_wait(&ring_);
    }
  }
  return true;
}

void Reactor::cancel(OpRecordBase* rec) noexcept {
  const uint32_t gen = rec->generation;
  io_uring_sqe* sqe = get_sqe();  // may submit and complete `rec`
  if (rec->generation != gen || rec->state != RecordState::kInFlight) {
    io_uring_prep_nop(sqe);
  } else {
    io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(rec), 0);
  }
  io_uring_sqe_set_data64(sqe, kUserDataIgnore);
}

unsigned Reactor::reap() {
  // CQEs waiting in the kernel's overflow list: a burst did not fit in the
  // CQ (liburing's peek flushes them; this only counts, for stats).
  if (io_uring_cq_has_overflow(&ring_)) [[unlikely]]
    cq_overflow_backlogs_.add();
  unsigned total = 0;
  io_uring_cqe* cqes[64];
  io_uring_cqe copy[64];
  for (;;) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
    if (n == 0) break;
    // Copy and advance before dispatching: a completion handler may queue
    // SQEs, which may submit and reap again.
    for (unsigned i = 0; i < n; ++i) copy[i] = *cqes[i];
    io_uring_cq_advance(&ring_, n);
    counters_.cqes_reaped.add(n);
    for (unsigned i = 0; i < n; ++i) dispatch(copy[i]);
    total += n;
  }
  return total;
}

void Reactor::handle_reserved(const io_uring_cqe& cqe) {
  switch (cqe.user_data) {
    case kUserDataWake:
      static_cast<Shard*>(this)->on_wake(cqe);
      break;
    case kUserDataDoorbell:
      break;  // the loop drains the message queues at every turn
    default:
      break;  // cancels and padding: nothing to do
  }
}

void Reactor::post(absl::AnyInvocable<void()> fn) {
  static_cast<Shard*>(this)->enqueue(std::move(fn));
}

bool Reactor::run_blocking(absl::AnyInvocable<void()> job) {
  return static_cast<Shard*>(this)->blocking_pool()->submit(std::move(job));
}

bool Reactor::try_send(unsigned dst, absl::AnyInvocable<void()>& m) {
  return static_cast<Shard*>(this)->try_send_message(dst, m);
}

void Reactor::send_later(unsigned dst, absl::AnyInvocable<void()> m,
                         std::coroutine_handle<> resume) {
  static_cast<Shard*>(this)->queue_message(dst, std::move(m), resume);
}

ShardCounters Reactor::counters() const noexcept {
  ShardCounters c;
  c.sqes_submitted = counters_.sqes_submitted.get();
  c.cqes_reaped = counters_.cqes_reaped.get();
  c.enters = counters_.enters.get();
  c.loop_turns = counters_.loop_turns.get();
  c.tasks_run = counters_.tasks_run.get();
  c.ops_orphaned = counters_.ops_orphaned.get();
  c.sq_full_flushes = counters_.sq_full_flushes.get();
  c.messages_sent = counters_.messages_sent.get();
  c.messages_received = counters_.messages_received.get();
  c.doorbells_sent = counters_.doorbells_sent.get();
  c.outbox_waits = counters_.outbox_waits.get();
  c.ops_in_flight = in_flight_.get();
  c.multishot_rearms = counters_.multishot_rearms.get();
  return c;
}

void Reactor::unschedule(std::coroutine_handle<> h) noexcept {
  ready_.unschedule(h);
  static_cast<Shard*>(this)->forget_resume(h);
}

void unschedule_frame(std::coroutine_handle<> h) noexcept {
  if (Reactor* r = Reactor::current()) r->unschedule(h);
}

void wake_early(OpRecordBase* rec) noexcept {
  Waiter* w = std::exchange(rec->waiter, nullptr);
  if (w != nullptr && --w->remaining == 0) {
    Reactor::current()->schedule(w->handle);
  }
}

void StopCancel::operator()() const noexcept {
  if (Reactor::current() == reactor) {
    reactor->cancel(rec);
    return;
  }
  // Another thread asked: the ring belongs to the shard, so hand it over.
  // The record may be gone by then; the generation tells.
  Reactor* r = reactor;
  OpRecordBase* target = rec;
  const uint32_t gen = generation;
  r->post([r, target, gen] {
    if (target->generation == gen && target->state == RecordState::kInFlight) {
      r->cancel(target);
    }
  });
}

void MultishotRecordBase::cancel() noexcept {
  if (ended || cancel_requested) return;
  cancel_requested = true;
  if (state == RecordState::kInFlight) {
    reactor->cancel(this);
  } else if (state == RecordState::kParked) {
    // Not in the kernel: the stream ends here.
    state = RecordState::kDone;
    ended = true;
    wake_consumer();
  }
}

void MultishotStopCancel::operator()() const noexcept {
  if (Reactor::current() == reactor) {
    rec->cancel();
    return;
  }
  Reactor* r = reactor;
  MultishotRecordBase* target = rec;
  const uint32_t gen = generation;
  r->post([target, gen] {
    if (target->generation == gen) target->cancel();
  });
}

void throw_chain_too_long(std::size_t n, unsigned sq_entries) {
  throw std::length_error(absl::StrFormat(
      "shardio::chain: %d linked ops do not fit in one submission of an SQ "
      "with %d entries; raise RuntimeOptions::ring_entries or split the chain",
      n, sq_entries));
}

}  // namespace shardio::detail
