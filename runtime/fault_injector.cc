// testing::FaultInjector: a CqeInterceptor per shard that rewrites SQEs
// (error faults, short transfers) and CQEs (delays, early multishot ends,
// errors of closes). See shardio/testing/fault_injector.h for the model.
//
// Marks on records (OpRecordBase::fault) tie an SQE-time decision to the
// record's next CQE:
//   bits 0-3  an error fault replaced this record's SQE by a NOP: the NOP's
//             CQE gets -errno (the value is the Fault + 1);
//   bits 4-5  kEndMultishot cancelled this multishot record: its final
//             -ECANCELED becomes -ENOBUFS (kEndArming while Reactor::cancel
//             runs, kEndRaced when a final CQE came meanwhile, kEndIssued
//             afterwards);
//   bit 6     this multishot record's SQE selects provided buffers (so a
//             -ENOBUFS end is something the kernel does to it); a property,
//             not a mark;
//   bit 7     CQEs of this record are held back: later ones queue behind.
// Every mark is cleared by the record's next final CQE (or, for bit 7, when
// its last held CQE is delivered), so detach() can wait for `outstanding_`
// marks to reach zero and leave no stale mark behind.
#include "shardio/testing/fault_injector.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <future>
#include <stdexcept>

#include "shardio/detail/reactor.h"
#include "shardio/multishot.h"

namespace shardio::testing {

int fault_errno(Fault f) noexcept {
  switch (f) {
    case Fault::kEagain:
      return EAGAIN;
    case Fault::kEintr:
      return EINTR;
    case Fault::kEconnreset:
      return ECONNRESET;
    case Fault::kEnobufs:
      return ENOBUFS;
    case Fault::kEcanceled:
      return ECANCELED;
    case Fault::kEio:
      return EIO;
    default:
      return 0;
  }
}

const char* fault_name(Fault f) noexcept {
  switch (f) {
    case Fault::kEagain:
      return "EAGAIN";
    case Fault::kEintr:
      return "EINTR";
    case Fault::kEconnreset:
      return "ECONNRESET";
    case Fault::kEnobufs:
      return "ENOBUFS";
    case Fault::kEcanceled:
      return "ECANCELED";
    case Fault::kEio:
      return "EIO";
    case Fault::kShortTransfer:
      return "short transfer";
    case Fault::kDelay:
      return "delay";
    case Fault::kEndMultishot:
      return "end multishot";
  }
  return "?";
}

namespace {

using detail::OpRecordBase;
using detail::Reactor;

constexpr uint8_t kErrMask = 0x0f;
constexpr uint8_t kEndMask = 0x30;
constexpr uint8_t kEndArming = 0x10;
constexpr uint8_t kEndRaced = 0x20;
constexpr uint8_t kEndIssued = 0x30;
constexpr uint8_t kBufferSelectBit = 0x40;
constexpr uint8_t kHeldBit = 0x80;

bool is_error(Fault f) noexcept { return fault_errno(f) != 0; }

// Whether a transfer on `fd` may be cut short without changing what it
// means: byte streams only.
bool stream_like(int fd) noexcept {
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
    const int fl = ::fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DIRECT) == 0;
  }
  if (S_ISFIFO(st.st_mode)) {
    const int fl = ::fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DIRECT) == 0;  // packet-mode pipes keep records
  }
  if (S_ISSOCK(st.st_mode)) {
    int type = 0;
    socklen_t len = sizeof(type);
    return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
           type == SOCK_STREAM;
  }
  return false;
}

// Whether the SQE's length may be halved (see kShortTransfer).
bool shrinkable(const io_uring_sqe& sqe) noexcept {
  if (sqe.len <= 1) return false;
  if (sqe.flags & (IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT)) return false;
  switch (sqe.opcode) {
    case IORING_OP_READ:
    case IORING_OP_WRITE:
    case IORING_OP_READ_FIXED:
    case IORING_OP_WRITE_FIXED:
    case IORING_OP_READV:  // len counts iovecs: fewer of them
    case IORING_OP_WRITEV:
    case IORING_OP_SEND:
    case IORING_OP_RECV:
    case IORING_OP_SEND_ZC:
      return stream_like(sqe.fd);
    case IORING_OP_SPLICE:
    case IORING_OP_TEE:
      if (sqe.splice_flags & SPLICE_F_FD_IN_FIXED) return false;
      return stream_like(sqe.fd) && stream_like(sqe.splice_fd_in);
    default:
      return false;
  }
}

}  // namespace

namespace internal {

// One shard's part of a FaultInjector. Everything but the atomics is used
// on the shard's thread only.
class ShardFaults final : public detail::CqeInterceptor {
 public:
  ShardFaults(FaultInjector* owner, unsigned shard)
      : owner_(owner),
        rules_(owner->rules_),
        sq_full_every_(owner->sq_full_every_),
        rng_(owner->seed_ + shard),
        seen_(rules_.size(), 0),
        applied_(rules_.size(), 0) {}

  // On the shard.
  void install(Reactor& r) {
    if (r.interceptor() != nullptr) {
      throw std::logic_error(
          "shardio::testing::FaultInjector::attach: the shard already has a "
          "CQE interceptor (another FaultInjector?)");
    }
    r.set_interceptor(this);
    installed_.store(true, std::memory_order_release);
  }

  // On the shard: stop injecting, deliver what is held; the next loop turn
  // with no mark outstanding detaches (on_turn: never from inside a nested
  // call into this object).
  void begin_detach(Reactor& r) {
    if (done_.load(std::memory_order_acquire) || r.interceptor() != this) {
      return;
    }
    draining_ = true;
    deliver_held(r, /*all=*/true);
  }

  bool installed() const noexcept {
    return installed_.load(std::memory_order_acquire);
  }
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  void mark_done_without_shard() noexcept {
    done_.store(true, std::memory_order_release);
  }

  uint64_t count(Fault f) const noexcept {
    return counts_[static_cast<std::size_t>(f)].load(std::memory_order_relaxed);
  }
  uint64_t sq_full_forced() const noexcept {
    return sq_full_.load(std::memory_order_relaxed);
  }

  // --- CqeInterceptor ---

  void on_sqe(Reactor&, OpRecordBase& rec, io_uring_sqe& sqe) override {
    const bool linked = (sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) != 0;
    last_sqe_linked_ = linked;
    if (rec.multishot) {
      if (sqe.flags & IOSQE_BUFFER_SELECT) {
        rec.fault = static_cast<uint8_t>(rec.fault | kBufferSelectBit);
      } else {
        rec.fault &= static_cast<uint8_t>(~kBufferSelectBit);
      }
    }
    if (draining_ || linked || rules_.empty()) return;
    const uint8_t op = rec.opcode;
    if (op == IORING_OP_LINK_TIMEOUT) return;
    int can_shrink = -1;  // computed on first need (it makes system calls)
    const int i = choose(op, [&](Fault f) {
      if (is_error(f)) return op != IORING_OP_CLOSE;
      if (f == Fault::kShortTransfer) {
        if (can_shrink < 0) can_shrink = shrinkable(sqe) ? 1 : 0;
        return can_shrink == 1;
      }
      return false;
    });
    if (i < 0) return;
    const Fault f = rules_[static_cast<std::size_t>(i)].fault;
    if (f == Fault::kShortTransfer) {
      sqe.len /= 2;  // len > 1: at least 1
      bump(f);
      return;
    }
    // An error: the kernel runs a NOP instead; its CQE gets the error.
    const uint64_t user_data = sqe.user_data;
    const uint8_t keep = sqe.flags & IOSQE_IO_DRAIN;
    std::memset(&sqe, 0, sizeof(sqe));
    io_uring_prep_nop(&sqe);
    sqe.flags = keep;
    sqe.user_data = user_data;
    rec.fault = static_cast<uint8_t>((rec.fault & ~kErrMask) |
                                     (static_cast<uint8_t>(f) + 1));
    ++outstanding_;
  }

  bool on_cqe(Reactor& r, OpRecordBase& rec, io_uring_cqe& cqe) override {
    const bool final = (cqe.flags & IORING_CQE_F_MORE) == 0;
    bool rewritten = false;
    // 1. The NOP that stands in for an op failed by an error fault.
    if (const uint8_t e = rec.fault & kErrMask) {
      rec.fault &= static_cast<uint8_t>(~kErrMask);
      --outstanding_;
      // Not 0: the NOP did not run (it ended a chain whose earlier op
      // failed, say): the kernel's word stands.
      if (cqe.res == 0) {
        const auto f = static_cast<Fault>(e - 1);
        cqe.res = -fault_errno(f);
        bump(f);
        rewritten = true;
      }
    }
    // 2. The final CQE of a multishot op that kEndMultishot cancelled.
    if (final && (rec.fault & kEndMask) != 0) {
      const uint8_t st = rec.fault & kEndMask;
      if (st == kEndArming || st == kEndRaced) {
        // It ended by itself while our cancel was being queued: see
        // end_multishot().
        rec.fault = static_cast<uint8_t>((rec.fault & ~kEndMask) | kEndRaced);
      } else {
        rec.fault &= static_cast<uint8_t>(~kEndMask);
        --outstanding_;
        if (!rewritten && cqe.res == -ECANCELED && !cancelled_by_owner(rec)) {
          cqe.res = -ENOBUFS;
        }
      }
    }
    // 3. Later CQEs of a record wait behind its held ones.
    if (rec.fault & kHeldBit) {
      hold(rec, cqe, turn_ + 1);
      return false;
    }
    if (draining_ || rules_.empty()) return true;
    // 4. Faults decided at CQE time.
    const uint8_t end_state = rec.fault & kEndMask;
    const int i = choose(rec.opcode, [&](Fault f) {
      switch (f) {
        case Fault::kDelay:
          // Not while our own cancel is being queued (end_multishot reads
          // the record's state afterwards).
          return end_state != kEndArming && end_state != kEndRaced;
        case Fault::kEndMultishot:
          return can_end(rec, cqe);
        case Fault::kShortTransfer:
          return false;
        default:  // errors: only a close runs before it fails
          return rec.opcode == IORING_OP_CLOSE && final && !rewritten;
      }
    });
    if (i < 0) return true;
    const FaultRule& rule = rules_[static_cast<std::size_t>(i)];
    switch (rule.fault) {
      case Fault::kDelay:
        bump(Fault::kDelay);
        hold(rec, cqe, turn_ + 1 + rule.delay_turns);
        return false;
      case Fault::kEndMultishot:
        end_multishot(r, rec, cqe);
        return false;
      default:
        cqe.res = -fault_errno(rule.fault);
        bump(rule.fault);
        return true;
    }
  }

  bool force_sq_full() override {
    // Never between the SQEs of a chain: they must reach the kernel in one
    // submission (reserve_sqes made room for them).
    if (sq_full_every_ == 0 || draining_ || last_sqe_linked_) return false;
    if (++sqe_requests_ % sq_full_every_ != 0) return false;
    sq_full_.store(sq_full_.load(std::memory_order_relaxed) + 1,
                   std::memory_order_relaxed);
    return true;
  }

  void on_turn(Reactor& r) override {
    ++turn_;
    deliver_held(r, /*all=*/false);
    if (draining_) {
      if (held_.empty() && outstanding_ == 0) {
        r.set_interceptor(nullptr);
        finish();  // the injector may be gone after this
        return;
      }
    }
    if (!held_.empty()) {
      // Keep the loop turning while CQEs wait for their turn: a NOP
      // completes at once, so the shard does not sleep in the kernel.
      io_uring_sqe* sqe = r.get_sqe();
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, detail::kUserDataIgnore);
    }
  }

  void flush(Reactor& r) override {
    // The shard is shutting down: it detaches this right after. Marks left
    // on records no longer matter: their awaiters are being destroyed.
    draining_ = true;
    deliver_held(r, /*all=*/true);
    finish();  // the injector may be gone after this
  }

 private:
  struct Held {
    OpRecordBase* rec;
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
    uint64_t due;  // the turn from which it may be delivered
  };

  static bool cancelled_by_owner(const OpRecordBase& rec) noexcept {
    if (rec.orphaned) return true;
    return rec.multishot && static_cast<const detail::MultishotRecordBase&>(rec)
                                .cancel_requested;
  }

  // Only ops that take provided buffers: for them the kernel's early end
  // is -ENOBUFS (a dry ring), which their streams re-arm after. (An accept
  // or a poll is never ended that way.)
  static bool can_end(const OpRecordBase& rec, const io_uring_cqe& cqe) {
    return rec.multishot && (rec.fault & kBufferSelectBit) != 0 &&
           (cqe.flags & IORING_CQE_F_MORE) != 0 &&
           rec.state == detail::RecordState::kInFlight &&
           (rec.fault & kEndMask) == 0 && !cancelled_by_owner(rec);
  }

  // Delivers the item CQE, then cancels the op so that it ends; on_cqe turns
  // the final -ECANCELED into -ENOBUFS.
  void end_multishot(Reactor& r, OpRecordBase& rec, const io_uring_cqe& cqe) {
    bump(Fault::kEndMultishot);
    r.deliver(cqe);  // an item (F_MORE): the record stays alive
    rec.fault = static_cast<uint8_t>(rec.fault | kEndArming);
    ++outstanding_;
    // get_sqe() inside may submit and reap (a full SQ): the op may end by
    // itself meanwhile (on_cqe then marks kEndRaced) and even be re-armed,
    // in which case the cancel aims at the new arm. Reactor::cancel queues
    // a NOP instead when the record is no longer in flight.
    r.cancel(&rec);
    const uint8_t st = rec.fault & kEndMask;
    if (st == kEndRaced && rec.state != detail::RecordState::kInFlight) {
      rec.fault &= static_cast<uint8_t>(~kEndMask);  // nothing to cancel
      --outstanding_;
    } else {
      rec.fault = static_cast<uint8_t>((rec.fault & ~kEndMask) | kEndIssued);
    }
  }

  void hold(OpRecordBase& rec, const io_uring_cqe& cqe, uint64_t due) {
    rec.fault = static_cast<uint8_t>(rec.fault | kHeldBit);
    held_.push_back(Held{&rec, cqe.user_data, cqe.res, cqe.flags, due});
  }

  // Delivers held CQEs that are due (all of them with `all`), each record's
  // in order. Reentrant: delivering may queue SQEs, which may reap, which
  // may hold more CQEs (appended) or, from a message, drain everything.
  void deliver_held(Reactor& r, bool all) {
    std::size_t i = 0;
    while (i < held_.size()) {
      const Held h = held_[i];
      bool blocked = !all && h.due > turn_;
      for (std::size_t j = 0; j < i && !blocked; ++j) {
        if (held_[j].rec == h.rec) blocked = true;
      }
      if (blocked) {
        ++i;
        continue;
      }
      held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
      bool more = false;
      for (const Held& o : held_) {
        if (o.rec == h.rec) {
          more = true;
          break;
        }
      }
      // Before delivering: a final CQE may release the record.
      if (!more) h.rec->fault &= static_cast<uint8_t>(~kHeldBit);
      io_uring_cqe cqe{};
      cqe.user_data = h.user_data;
      cqe.res = h.res;
      cqe.flags = h.flags;
      r.deliver(cqe);
      if (all) i = 0;  // a nested call may have reordered what is left
    }
  }

  // Looks at every rule for one occurrence: each matching, eligible rule
  // counts it and draws; the first that fires (and has injections left)
  // wins. Returns its index, or -1.
  template <class Eligible>
  int choose(uint8_t opcode, Eligible eligible) {
    int chosen = -1;
    for (std::size_t i = 0; i < rules_.size(); ++i) {
      const FaultRule& rule = rules_[i];
      if (rule.opcode.has_value() && *rule.opcode != opcode) continue;
      if (!eligible(rule.fault)) continue;
      const uint64_t n = ++seen_[i];
      const bool fire =
          rule.nth != 0 ? n == rule.nth : next_unit() < rule.probability;
      if (!fire || chosen >= 0) continue;
      if (rule.max_injections != 0 && applied_[i] >= rule.max_injections) {
        continue;
      }
      ++applied_[i];
      chosen = static_cast<int>(i);
    }
    return chosen;
  }

  // splitmix64: small, fast, and the same everywhere.
  uint64_t next_u64() noexcept {
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double next_unit() noexcept {
    return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  }

  void bump(Fault f) noexcept {
    auto& c = counts_[static_cast<std::size_t>(f)];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  void finish() { owner_->shard_done(done_); }

  FaultInjector* owner_;
  const std::vector<FaultRule> rules_;
  const unsigned sq_full_every_;
  uint64_t rng_;
  std::vector<uint64_t> seen_;     // eligible occurrences, per rule
  std::vector<uint64_t> applied_;  // injections, per rule
  std::deque<Held> held_;
  uint64_t turn_ = 0;
  uint64_t sqe_requests_ = 0;
  uint64_t outstanding_ = 0;  // marks on records (see the top of the file)
  bool draining_ = false;
  bool last_sqe_linked_ = false;
  std::atomic<bool> installed_{false};
  std::atomic<bool> done_{false};
  std::atomic<uint64_t> counts_[kFaultCount] = {};
  std::atomic<uint64_t> sq_full_{0};
};

}  // namespace internal

FaultInjector::FaultInjector(uint64_t seed) : seed_(seed) {}

FaultInjector::~FaultInjector() {
  try {
    detach();
  } catch (...) {
    // detach() throws only when called on a shard: nothing sane is left.
    std::terminate();
  }
}

FaultInjector& FaultInjector::add(FaultRule rule) {
  if (runtime_ != nullptr) {
    throw std::logic_error(
        "shardio::testing::FaultInjector::add: add rules before attach()");
  }
  if (static_cast<std::size_t>(rule.fault) >= kFaultCount) {
    throw std::invalid_argument("FaultInjector::add: unknown fault");
  }
  const bool by_probability = rule.probability != 0;
  if (by_probability == (rule.nth != 0)) {
    throw std::invalid_argument(
        "FaultInjector::add: a rule needs either a probability or an nth "
        "occurrence (not both)");
  }
  if (by_probability &&
      !(rule.probability > 0 && rule.probability <= 1)) {  // NaN too
    throw std::invalid_argument(
        "FaultInjector::add: probability must be in (0, 1]");
  }
  if (rule.fault == Fault::kDelay && rule.delay_turns == 0) {
    throw std::invalid_argument(
        "FaultInjector::add: a delay needs delay_turns >= 1");
  }
  rules_.push_back(rule);
  return *this;
}

FaultInjector& FaultInjector::force_sq_full_every(unsigned n) {
  if (runtime_ != nullptr) {
    throw std::logic_error(
        "shardio::testing::FaultInjector::force_sq_full_every: call it "
        "before attach()");
  }
  sq_full_every_ = n;
  return *this;
}

void FaultInjector::attach(Runtime& rt) {
  if (detail::Reactor::current() != nullptr) {
    throw std::logic_error(
        "shardio::testing::FaultInjector::attach must not be called on a "
        "shard");
  }
  if (runtime_ != nullptr) {
    throw std::logic_error(
        "shardio::testing::FaultInjector::attach: already attached");
  }
  shards_.clear();
  for (unsigned i = 0; i < rt.shard_count(); ++i) {
    shards_.push_back(std::make_unique<internal::ShardFaults>(this, i));
  }
  runtime_ = &rt;
  try {
    for (unsigned i = 0; i < rt.shard_count(); ++i) {
      internal::ShardFaults* s = shards_[i].get();
      rt.submit(i, [s] {
          s->install(detail::Reactor::require_current());
        }).get();
    }
  } catch (...) {
    detach();
    throw;
  }
}

void FaultInjector::detach() {
  if (runtime_ == nullptr) return;
  if (detail::Reactor::current() != nullptr) {
    throw std::logic_error(
        "shardio::testing::FaultInjector::detach must not be called on a "
        "shard");
  }
  Runtime& rt = *runtime_;
  for (unsigned i = 0; i < shards_.size(); ++i) {
    internal::ShardFaults* s = shards_[i].get();
    if (!s->installed()) {
      s->mark_done_without_shard();
      continue;
    }
    // A shard that stopped flushed and detached this already: then the
    // runtime may be gone too, so do not touch it.
    if (s->done()) continue;
    try {
      rt.submit(i, [s] {
          s->begin_detach(detail::Reactor::require_current());
        }).get();
    } catch (const std::future_error&) {
      // Dropped: the shard is stopping; its shutdown flushes this.
    }
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] {
      for (const auto& s : shards_) {
        if (!s->done()) return false;
      }
      return true;
    });
  }
  runtime_ = nullptr;
}

void FaultInjector::shard_done(std::atomic<bool>& done) {
  // Set and notify under the lock: detach() cannot see `done` (and the
  // injector cannot be destroyed) before this thread has let go of the
  // mutex, after which it touches nothing of the injector.
  std::lock_guard<std::mutex> lock(mu_);
  done.store(true, std::memory_order_release);
  cv_.notify_all();
}

uint64_t FaultInjector::injected(Fault f) const noexcept {
  uint64_t n = 0;
  for (const auto& s : shards_) n += s->count(f);
  return n;
}

uint64_t FaultInjector::injected(Fault f, unsigned shard) const noexcept {
  return shard < shards_.size() ? shards_[shard]->count(f) : 0;
}

uint64_t FaultInjector::injected_total() const noexcept {
  uint64_t n = 0;
  for (std::size_t k = 0; k < kFaultCount; ++k) {
    n += injected(static_cast<Fault>(k));
  }
  return n;
}

uint64_t FaultInjector::sq_full_forced() const noexcept {
  uint64_t n = 0;
  for (const auto& s : shards_) n += s->sq_full_forced();
  return n;
}

uint64_t FaultInjector::sq_full_forced(unsigned shard) const noexcept {
  return shard < shards_.size() ? shards_[shard]->sq_full_forced() : 0;
}

}  // namespace shardio::testing
