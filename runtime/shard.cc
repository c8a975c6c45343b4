// The shard thread: ring setup with feature probing, the loop, the inbox for
// other threads, and shutdown.
#include "runtime/shard.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_format.h"
#include "shardio/probe.h"

namespace shardio::detail {
namespace {

// Why this shard's ring could not be used, from the shard's own thread (a
// seccomp filter can be per thread). `err` is io_uring_setup's errno, or 0
// for a ring that lacks opcodes (`missing`).
SetupDiagnosis diagnose(int err, const RuntimeOptions& options,
                        std::vector<std::string> missing = {},
                        int probe_errno = 0) {
  SystemFacts facts = gather_system_facts();
  facts.ring_entries = options.ring_entries;
  facts.sqpoll = options.sqpoll;
  facts.missing_opcodes = std::move(missing);
  facts.opcode_probe_errno = probe_errno;
  return diagnose_setup_failure(err, facts);
}

}  // namespace

Shard::Shard(unsigned id, unsigned count, const RuntimeOptions& options,
             int cpu)
    : options_(options), cpu_(cpu) {
  shard_id_ = id;
  shard_count_ = count;
  max_fixed_files_ = options.max_fixed_files;
  max_fixed_buffers_ = options.max_fixed_buffers;
  event_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (event_fd_ < 0) event_errno_ = errno;
  if (options.latency_histograms) {
    latency_stats_ = std::make_unique<LatencyStats>();
    latency_ = latency_stats_.get();
  }
}

Shard::~Shard() {
  join();
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

std::optional<SetupDiagnosis> Shard::start() {
  if (event_fd_ < 0) {
    return SetupDiagnosis{
        SetupError::kOther,
        absl::StrFormat("eventfd failed: %s", std::strerror(event_errno_))};
  }
  thread_ = std::thread([this] { thread_main(); });
  started_.wait();
  return std::move(start_error_);
}

void Shard::request_stop() {
  enqueue([this] { stopping_ = true; });
}

void Shard::join() {
  if (thread_.joinable()) thread_.join();
}

void Shard::connect(std::vector<Shard*> peers, std::vector<MessageQueue*> out,
                    std::vector<MessageQueue*> in, BlockingPool* blocking) {
  blocking_ = blocking;
  peers_ = std::move(peers);
  room_wanted_ = std::make_unique<std::atomic<bool>[]>(peers_.size());
  outgoing_ = std::move(out);
  incoming_ = std::move(in);
  outbox_.resize(peers_.size());
}

bool Shard::try_send_message(unsigned dst, Message& m) {
  if (dst == shard_id_) {
    to_self_.push_back(std::move(m));
    counters_.messages_sent.add();
    return true;
  }
  if (!outbox_[dst].empty() || !outgoing_[dst]->try_push(std::move(m))) {
    return false;
  }
  counters_.messages_sent.add();
  notify(dst);
  return true;
}

void Shard::queue_message(unsigned dst, Message m,
                          std::coroutine_handle<> resume) {
  counters_.outbox_waits.add();
  outbox_[dst].push_back(Pending{std::move(m), resume});
  ++outbox_size_;
}

void Shard::forget_resume(std::coroutine_handle<> h) noexcept {
  if (outbox_size_ == 0) return;
  for (auto& box : outbox_) {
    for (Pending& p : box) {
      if (p.resume.address() == h.address()) p.resume = {};
    }
  }
}

bool Shard::drop_stranded_messages() {
  bool any = false;
  for (MessageQueue* q : incoming_) {
    if (q == nullptr) continue;
    while (q->pop()) any = true;
  }
  return any;
}

void Shard::notify(unsigned dst) {
  // Pairs with the loop's park protocol (wait_for_events): the queue's tail
  // store and this load are seq_cst, as are the receiver's store to
  // `sleeping_` and its look at the tails, so at least one side sees the
  // other. exchange() lets exactly one sender ring per sleep.
  Shard* d = peers_[dst];
  if (!d->sleeping_.load(std::memory_order_seq_cst)) return;
  if (!d->sleeping_.exchange(false, std::memory_order_seq_cst)) return;
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_msg_ring(sqe, d->ring_fd_, 0, kUserDataDoorbell, 0);
  io_uring_sqe_set_data64(sqe, kUserDataIgnore);
  // The sender needs no CQE of its own for a doorbell that worked; without
  // one, a parked sender is not woken by its own doorbell.
  if (cqe_skip_) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  counters_.doorbells_sent.add();
}

bool Shard::outbox_has_room() const {
  for (unsigned dst = 0; dst < outbox_.size(); ++dst) {
    if (!outbox_[dst].empty() &&
        (dst == shard_id_ || outgoing_[dst]->has_room_seq_cst())) {
      return true;
    }
  }
  return false;
}

void Shard::flush_outbox() {
  if (outbox_size_ == 0) return;
  for (unsigned dst = 0; dst < outbox_.size(); ++dst) {
    auto& box = outbox_[dst];
    bool moved = false;
    while (!box.empty()) {
      Pending& p = box.front();
      if (dst == shard_id_) {
        to_self_.push_back(std::move(p.msg));
      } else if (!outgoing_[dst]->try_push(std::move(p.msg))) {
        break;
      }
      counters_.messages_sent.add();
      if (p.resume) schedule(p.resume);
      box.pop_front();
      --outbox_size_;
      moved = true;
    }
    if (moved && dst != shard_id_) notify(dst);
  }
}

bool Shard::incoming_empty() const {
  for (MessageQueue* q : incoming_) {
    if (q != nullptr && !q->empty_seq_cst()) return false;
  }
  return to_self_.empty();
}

void Shard::drain_messages() {
  for (MessageQueue* q : incoming_) {
    if (q == nullptr) continue;
    // At most one queue's worth per turn, so one busy sender cannot starve
    // the others or this shard's tasks.
    for (std::size_t budget = q->capacity(); budget > 0 && !stopping_;
         --budget) {
      Message* m = q->front();
      if (m == nullptr) break;
      Message run = std::move(*m);
      q->pop_front();
      counters_.messages_received.add();
      run();
    }
  }
  // A sender whose queue to us was full may be parked waiting for room:
  // the mirror image of the doorbell protocol (its flag store and look at
  // our head, our head store and look at its flag, all seq_cst).
  for (unsigned src = 0; src < incoming_.size(); ++src) {
    if (incoming_[src] != nullptr &&
        room_wanted_[src].load(std::memory_order_seq_cst) &&
        incoming_[src]->has_room_seq_cst() &&
        room_wanted_[src].exchange(false, std::memory_order_seq_cst)) {
      notify(src);
    }
  }
  if (!to_self_.empty()) {
    std::vector<Message> batch;
    batch.swap(to_self_);
    for (auto& m : batch) {
      if (stopping_) break;
      counters_.messages_received.add();
      m();
    }
  }
}

void Shard::enqueue(absl::AnyInvocable<void()> fn) {
  bool was_empty = false;
  bool closed;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    closed = inbox_closed_;
    if (!closed) {
      was_empty = inbox_.empty();
      inbox_.push_back(std::move(fn));
    }
  }
  // The shard has shut down: nobody will run `fn`; it is destroyed here, by
  // its caller's thread, outside the lock.
  if (closed) return;
  // One eventfd write per empty->non-empty transition: the shard drains the
  // whole inbox after each wake CQE, so no message waits for a later write.
  if (was_empty) {
    const uint64_t one = 1;
    while (::write(event_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

std::optional<SetupDiagnosis> Shard::setup_ring() {
  const std::vector<unsigned> candidates =
      setup_flag_candidates(options_.sqpoll);
  int err = 0;
  for (unsigned flags : candidates) {
    io_uring_params p{};
    p.flags = flags;
    if (p.flags & IORING_SETUP_SQPOLL) {
      p.sq_thread_idle = options_.sqpoll_idle_ms;
    }
    const int ret =
        io_uring_queue_init_params(options_.ring_entries, &ring_, &p);
    if (ret == 0) {
      setup_flags_ = flags;
      ring_ready_ = true;
      cqe_skip_ = (p.features & IORING_FEAT_CQE_SKIP) != 0;
      break;
    }
    err = -ret;
    // Only EINVAL means "this kernel lacks a flag"; anything else will not
    // get better with fewer flags.
    if (err != EINVAL) break;
  }
  if (!ring_ready_) return diagnose(err, options_);

  // The ring works; does the kernel have the opcodes the loop submits?
  const int perr = probe_opcodes(ring_, supported_ops_);
  std::vector<std::string> missing;
  for (uint8_t op : required_opcodes(shard_count_)) {
    if (perr < 0 || !supported_ops_.test(op)) {
      missing.push_back(opcode_name(op));
    }
  }
  if (missing.empty()) return std::nullopt;
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  setup_flags_ = 0;
  supported_ops_.reset();
  return diagnose(0, options_, std::move(missing), perr < 0 ? -perr : 0);
}

void Shard::thread_main() {
  const std::string name = absl::StrFormat("shardio-%d", shard_id_);
  pthread_setname_np(pthread_self(), name.c_str());
  if (cpu_ >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  start_error_ = setup_ring();
  if (ring_ready_) ring_fd_ = ring_.ring_fd;
  started_.notify();
  if (!ring_ready_) return;

  tls_current_ = this;
  arm_wake();
  // With latency histograms: a turn's busy time runs from the return of
  // wait_for_events() to its next call (see stats.h).
  uint64_t turn_start = latency_ != nullptr ? monotonic_ns() : 0;
  while (!stopping_) {
    counters_.loop_turns.add();
    drain_messages();
    flush_outbox();
    run_ready();
    if (stopping_) break;
    if (latency_ != nullptr) [[unlikely]]
      latency_->loop_turn_ns.record(monotonic_ns() - turn_start);
    wait_for_events();
    if (latency_ != nullptr) [[unlikely]]
      turn_start = monotonic_ns();
    reap();
    if (interceptor_ != nullptr) [[unlikely]]
      interceptor_->on_turn(*this);
  }
  shutdown();
  final_stats_ = stats();
  exited_.notify();
  tls_current_ = nullptr;
}

void Shard::run_ready() {
  // Run what is ready now; tasks made ready meanwhile run next turn, after
  // this turn's SQEs have been submitted.
  std::size_t n = ready_.size();
  while (n-- > 0 && !stopping_) {
    std::coroutine_handle<> h = ready_.pop();
    counters_.tasks_run.add();
    h.resume();
  }
}

void Shard::wait_for_events() {
  if (!ready_.empty()) {
    // Tasks are waiting to run. Enter the kernel only when there is
    // something to submit, or every kMaxTurnsWithoutEnter turns: with
    // DEFER_TASKRUN completions are posted only inside io_uring_enter, so
    // they must not wait for ever behind tasks that keep yielding.
    if (io_uring_sq_ready(&ring_) == 0 &&
        ++turns_without_enter_ < kMaxTurnsWithoutEnter) {
      return;
    }
    turns_without_enter_ = 0;
    submit_and_get_events();
    return;
  }
  turns_without_enter_ = 0;
  // Park protocol: ask the receivers of full queues to ring us when they
  // make room, announce the sleep, then look at the queues once more.
  for (unsigned dst = 0; dst < outbox_.size(); ++dst) {
    if (dst != shard_id_ && !outbox_[dst].empty()) {
      peers_[dst]->room_wanted_[shard_id_].store(true,
                                                 std::memory_order_seq_cst);
    }
  }
  sleeping_.store(true, std::memory_order_seq_cst);
  if (!incoming_empty() || (outbox_size_ > 0 && outbox_has_room())) {
    sleeping_.store(false, std::memory_order_relaxed);
    submit_and_get_events();
    return;
  }
  for (;;) {
    counters_.enters.add();
    int ret;
    if (outbox_size_ > 0) {
      // The receiver rings us when it makes room; the timeout is only a
      // backstop.
      __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
      io_uring_cqe* cqe = nullptr;
      ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      if (ret == -ETIME) ret = 0;
    } else {
      ret = io_uring_submit_and_wait(&ring_, 1);
    }
    sleeping_.store(false, std::memory_order_relaxed);
    if (ret >= 0) {
      counters_.sqes_submitted.add(static_cast<uint64_t>(ret));
      return;
    }
    if (ret == -EINTR) return;  // reap what is there and go round again
    if (ret == -EAGAIN || ret == -EBUSY) {
      reap();
      return;
    }
    std::fprintf(stderr, "shardio: io_uring_enter failed on shard %u: %s\n",
                 shard_id_, std::strerror(-ret));
    std::abort();
  }
}

void Shard::arm_wake() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, event_fd_, &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data64(sqe, kUserDataWake);
  wake_armed_ = true;
}

void Shard::on_wake(const io_uring_cqe& cqe) {
  wake_armed_ = false;
  if (stopping_ && cqe.res == -ECANCELED) return;
  if (!stopping_) arm_wake();
  drain_inbox();
}

void Shard::drain_inbox() {
  // A local batch: a message may submit ops, and a submission that finds the
  // SQ full reaps completions, which may drain the inbox again.
  std::vector<absl::AnyInvocable<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    batch.swap(inbox_);
  }
  for (auto& fn : batch) {
    if (!stopping_) fn();
  }
}

void Shard::shutdown() {
  // CQEs an interceptor holds back are delivered now, and it sees no more.
  if (interceptor_ != nullptr) {
    interceptor_->flush(*this);
    interceptor_ = nullptr;
  }
  // Tasks that are ready are not resumed again: destroying their roots
  // below destroys their frames.
  ready_.clear();
  // Destroying a task or a message may spawn tasks or send messages (a
  // destructor that hands an fd to the ring, say): repeat until nothing is
  // left. Nothing runs any more; everything is only destroyed.
  for (;;) {
    while (roots_.linked()) {
      RootNode* n = roots_.next;
      n->handle.destroy();  // unlinks n; orphans and cancels its ops
    }
    std::vector<absl::AnyInvocable<void()>> unrun;
    {
      std::lock_guard<std::mutex> lock(inbox_mu_);
      unrun.swap(inbox_);
      inbox_closed_ = true;
    }
    bool any = !unrun.empty() || outbox_size_ > 0 || !to_self_.empty();
    unrun.clear();  // messages not run: their captures are destroyed here
    for (auto& box : outbox_) box.clear();
    outbox_size_ = 0;
    std::vector<Message> self;
    self.swap(to_self_);
    self.clear();
    for (MessageQueue* q : incoming_) {
      if (q == nullptr) continue;
      while (q->pop()) any = true;
    }
    ready_.clear();
    if (!any && !roots_.linked() && to_self_.empty() && outbox_size_ == 0) {
      break;
    }
  }

  if (wake_armed_) {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, kUserDataWake, 0);
    io_uring_sqe_set_data64(sqe, kUserDataIgnore);
  }
  // Wait for every final CQE: the kernel may still write into the records'
  // buffers until then. Ask again now and then in case a cancel raced with a
  // submission.
  unsigned rounds = 0;
  while (in_flight_.get() > 0 || wake_armed_) {
    __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    io_uring_cqe* cqe = nullptr;
    counters_.enters.add();
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    reap();
    if (++rounds % 10 == 0) {
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data64(sqe, kUserDataIgnore);
    }
    if (rounds == 600) {
      std::fprintf(stderr,
                   "shardio: shard %u still waits for %llu ops to complete "
                   "after 60 s of cancelling\n",
                   shard_id_,
                   static_cast<unsigned long long>(in_flight_.get()));
    }
  }
  // Records orphaned during teardown completed above; what remains are
  // cancel CQEs, which own nothing. The ring itself is closed by the
  // destructor, after every shard has stopped, so that no doorbell is ever
  // aimed at a closed (and perhaps reused) ring fd.
}

}  // namespace shardio::detail
