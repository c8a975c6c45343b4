// shardio/testing/fault_injector.h — make a Runtime's I/O fail, come up short
// or come late, reproducibly, to test code that uses it.
//
//   shardio::Runtime rt;
//   shardio::testing::FaultInjector faults(/*seed=*/42);
//   faults.add({.fault = Fault::kShortTransfer, .opcode = IORING_OP_RECV,
//               .probability = 0.3})
//       .add({.fault = Fault::kEintr, .opcode = IORING_OP_SEND,
//             .probability = 0.1})
//       .add({.fault = Fault::kEio, .opcode = IORING_OP_READ, .nth = 3});
//   faults.attach(rt);           // every shard, from now on
//   rt.block_on(code_under_test());
//   faults.detach();             // or let the destructor do it
//   EXPECT_GT(faults.injected(Fault::kEintr), 0u);
//
// docs/testing.md has the whole story; in short:
//
// The model: every injected fault is something the kernel could have done.
//   - Error faults (kEagain ... kEio) fail an op *instead of* running it: the
//     op's SQE is replaced by an IORING_OP_NOP before it reaches the kernel,
//     and that NOP's CQE is rewritten to -errno. Nothing was read, written,
//     sent, received, opened, accepted or created, so a caller that retries
//     (after EINTR, EAGAIN) neither loses nor duplicates data. Exception:
//     IORING_OP_CLOSE runs and its CQE gets the error (close(2) releases the
//     fd even when it reports an error).
//   - kShortTransfer halves the length in the SQE (sqe.len / 2, at least 1)
//     of a read, write, send, recv (and the _FIXED, vectored, SEND_ZC,
//     splice and tee forms) on a regular file, pipe, block device or stream
//     socket: the kernel really moves fewer bytes and says so, the rest stays
//     where it was. Not on datagram sockets (that would cut a datagram),
//     O_DIRECT files (alignment), registered (fixed) files, or SQEs that
//     select a provided buffer.
//   - kDelay holds a CQE back for `delay_turns` loop turns of its shard and
//     then delivers it. CQEs of one record stay in order; nothing is lost.
//   - kEndMultishot ends a multishot op that takes provided buffers (recv,
//     recvmsg: IOSQE_BUFFER_SELECT) early, as a dry buffer ring would: the
//     item CQE is delivered, the op is cancelled, and its final -ECANCELED
//     CQE is turned into -ENOBUFS (without IORING_CQE_F_MORE), so the stream
//     re-arms (MultishotEnd policy) without losing or repeating an item.
//     Multishot accepts and polls are not eligible (the kernel never ends
//     them with ENOBUFS), nor streams armed before attach().
//   - force_sq_full_every(n): every nth SQE request finds the SQ "full", so
//     the shard submits what is queued and goes on (ShardCounters::
//     sq_full_flushes). Never in the middle of a linked chain.
// SQE-time faults (errors, short transfers) are not applied to SQEs linked to
// a successor (IOSQE_IO_LINK / IOSQE_IO_HARDLINK: chain(), with_timeout()) nor
// to IORING_OP_LINK_TIMEOUT: that would change what the rest of the chain
// does.
//
// Choosing: each rule names a fault and, optionally, an opcode (IORING_OP_*;
// every op otherwise), and either a probability per eligible occurrence or
// the nth eligible occurrence (1-based, counted per shard and per rule). An
// occurrence is eligible when the fault applies to it: an SQE (errors, short
// transfers), a CQE (delays), an item CQE of a multishot op (kEndMultishot).
// Rules are looked at in the order added; the first that fires wins, but
// every rule counts the occurrence and draws its random number, so one rule's
// sequence does not depend on the others. Randomness comes from a splitmix64
// generator per shard seeded with seed + shard index: the same seed on the
// same stream of ops on a shard injects the same faults.
//
// Thread-safety: attach(), detach() and the destructor are called from a
// thread that is not one of the runtime's shards (they wait for the shards);
// add() and force_sq_full_every() before attach(). The counters may be read
// from any thread at any time (not concurrently with attach(), which resets
// them).
//
// Lifetime: the injector may outlive the runtime or be destroyed first.
// Destroying (or detach()ing) it while the runtime runs delivers every CQE it
// holds back and waits until every op it rewrote has completed. When the
// runtime stops first, its shards deliver what is held as they shut down and
// the injector is detached by then.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "shardio/runtime.h"

namespace shardio::testing {

enum class Fault : uint8_t {
  // Errors: the op fails with -errno and did nothing.
  kEagain,
  kEintr,
  kEconnreset,
  kEnobufs,
  kEcanceled,
  kEio,
  // The op moves at most half of what it was asked to (at least 1 byte).
  kShortTransfer,
  // The CQE arrives `delay_turns` loop turns late.
  kDelay,
  // A multishot op that takes provided buffers ends early with -ENOBUFS
  // after an item, as when its buffer ring runs dry; its stream re-arms.
  kEndMultishot,
};
inline constexpr std::size_t kFaultCount = 9;

// The errno an error fault injects (EAGAIN for kEagain, ...); 0 for the
// others.
int fault_errno(Fault f) noexcept;
// "EAGAIN", "short transfer", "delay", ...
const char* fault_name(Fault f) noexcept;

struct FaultRule {
  Fault fault = Fault::kEio;
  // Only ops with this IORING_OP_* opcode (what their prepare() put in the
  // SQE); every op when empty.
  std::optional<uint8_t> opcode = std::nullopt;
  // Fire at each eligible occurrence with this probability (0 < p <= 1)...
  double probability = 0;
  // ...or exactly at the nth eligible occurrence on each shard (1-based).
  // Give one of the two.
  uint64_t nth = 0;
  // kDelay: how many loop turns of its shard the CQE is held (>= 1).
  unsigned delay_turns = 3;
  // Stop after this many injections per shard; 0: no limit. (A probability
  // of 1 for an error that the code under test retries needs one.)
  uint64_t max_injections = 0;
};

namespace internal {
class ShardFaults;
}

class FaultInjector {
 public:
  explicit FaultInjector(uint64_t seed = 1);
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;
  // Detaches (see the top of the file).
  ~FaultInjector();

  // Adds a rule; before attach(). Throws std::invalid_argument for a rule
  // that cannot fire (neither or both of probability and nth, a probability
  // outside (0, 1], kDelay with delay_turns 0) and std::logic_error once
  // attached.
  FaultInjector& add(FaultRule rule);
  // Every nth SQE a shard asks for finds the SQ full (0: never); before
  // attach().
  FaultInjector& force_sq_full_every(unsigned n);

  // Installs the injector on every shard of `rt` and starts counting and
  // drawing afresh (counters reset, generators reseeded). Throws
  // std::logic_error when called on a shard, when already attached, or when
  // a shard already has an interceptor.
  void attach(Runtime& rt);
  // Removes it from every shard: CQEs held back are delivered, ops whose
  // SQE or CQE it rewrote are waited for. Nothing is injected afterwards; the
  // counters keep their values. Does nothing when not attached; a no-op for
  // shards whose runtime already stopped.
  void detach();
  bool attached() const noexcept { return runtime_ != nullptr; }

  uint64_t seed() const noexcept { return seed_; }
  const std::vector<FaultRule>& rules() const noexcept { return rules_; }

  // How many faults of a kind were injected, on one shard or on all.
  uint64_t injected(Fault f) const noexcept;
  uint64_t injected(Fault f, unsigned shard) const noexcept;
  // All kinds together (forced SQ-full flushes not included).
  uint64_t injected_total() const noexcept;
  // How many times get_sqe() was told the SQ was full.
  uint64_t sq_full_forced() const noexcept;
  uint64_t sq_full_forced(unsigned shard) const noexcept;

 private:
  friend class internal::ShardFaults;

  // Called by a shard when its part is detached (or flushed at shutdown):
  // sets `done` under mu_ and wakes detach().
  void shard_done(std::atomic<bool>& done);

  uint64_t seed_;
  unsigned sq_full_every_ = 0;
  std::vector<FaultRule> rules_;
  Runtime* runtime_ = nullptr;
  std::vector<std::unique_ptr<internal::ShardFaults>> shards_;
  std::mutex mu_;  // with cv_: detach() waits for the shards
  std::condition_variable cv_;
};

}  // namespace shardio::testing
