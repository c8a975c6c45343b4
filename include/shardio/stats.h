// shardio/stats.h — what each shard is doing: counters, ops in flight per
// opcode, completion-queue overflows, SQ-full stalls, ENOBUFS re-arms,
// cross-shard queue depths and (opt-in) latency histograms, as a snapshot
// and as text or Prometheus exposition.
//
//   shardio::Runtime rt(shardio::RuntimeOptions{.latency_histograms = true});
//   ...
//   shardio::RuntimeStats s = rt.stats();        // from a non-shard thread
//   std::fputs(shardio::to_text(s).c_str(), stderr);
//   std::string scrape = shardio::to_prometheus(s);  // text format 0.0.4
//
//   shardio::ShardStats mine = shardio::this_shard::stats();  // in a task
//
// A snapshot is taken on the shard itself (Runtime::stats() posts to every
// shard and waits), so it is consistent per shard but not across shards.
//
// Latency histograms cost two clock reads per op and per loop turn and are
// off unless RuntimeOptions::latency_histograms is set; with them off the
// histograms stay empty and the runtime pays one predictable branch per op
// and per turn.
//
//   loop_turn_ns   the busy part of each loop turn: from the moment
//                  wait_for_events() (which submits and, when the shard has
//                  nothing to do, sleeps in io_uring_enter) returns until it
//                  is entered again — reaping and dispatching completions,
//                  running messages from other shards and the ready tasks.
//                  The time spent submitting and sleeping is not in it.
//   op_latency_ns  per single-shot op: from Reactor::start() (the SQE is
//                  queued) to the op's final CQE being delivered, so it
//                  includes the wait for the turn's submission. Multishot
//                  streams are not counted (their "latency" would be the
//                  stream's lifetime).
//
// Thread-safety: the snapshots are plain values. Histogram is not
// synchronized (each shard writes its own).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shardio/detail/reactor.h"

namespace shardio {

// A histogram of non-negative integer values (nanoseconds here) in
// log-linear buckets: exact for 1..4, then four buckets per power of two
// (each at most 25% wide), up to 2^36 ns (about 68.7 s); larger values go to
// an overflow bucket. Tracks count, sum, min and max exactly.
class Histogram {
 public:
  static constexpr unsigned kSubBuckets = 4;    // per power of two
  static constexpr unsigned kMaxExponent = 36;  // last finite bound 2^36
  // Buckets 0..3 hold 0-1, 2, 3, 4; then 4 per power of two up to 2^36;
  // the last one holds everything larger.
  static constexpr unsigned kBuckets = 4 + (kMaxExponent - 2) * 4 + 1;

  // The bucket that holds `v`: bucket i holds the values in
  // (upper_bound(i - 1), upper_bound(i)].
  static unsigned bucket_of(uint64_t v) noexcept;
  // The largest value bucket `i` holds (UINT64_MAX for the last bucket).
  static uint64_t upper_bound(unsigned i) noexcept;

  void record(uint64_t v) noexcept {
    ++counts_[bucket_of(v)];
    ++count_;
    sum_ += v;
    if (v < min_) min_ = v;
    if (v > max_) max_ = v;
  }
  // Adds `o`'s samples to this one.
  void merge(const Histogram& o) noexcept;
  void clear() noexcept { *this = Histogram(); }

  uint64_t count() const noexcept { return count_; }
  uint64_t sum() const noexcept { return sum_; }
  // 0 when empty.
  uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  uint64_t max() const noexcept { return max_; }
  double mean() const noexcept {
    return count_ == 0
               ? 0.0
               : static_cast<double>(sum_) / static_cast<double>(count_);
  }
  uint64_t bucket_count(unsigned i) const noexcept { return counts_[i]; }

  // An upper estimate of the p-th percentile (p in [0, 100]): the upper
  // bound of the bucket holding the sample of rank ceil(p/100 * count),
  // clamped to [min(), max()] — so percentile(0) == min(),
  // percentile(100) == max(), and it never decreases as p grows. 0 when
  // empty.
  uint64_t percentile(double p) const noexcept;

 private:
  uint64_t counts_[kBuckets] = {};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

// The message traffic between a shard and one other shard.
struct QueueDepth {
  unsigned peer = 0;
  // Messages in this shard's SPSC queue to `peer` that `peer` has not taken
  // yet.
  uint64_t queued = 0;
  // Messages waiting in this shard's outbox for room in that queue.
  uint64_t outbox = 0;
  // Messages in `peer`'s SPSC queue to this shard not taken here yet.
  uint64_t incoming = 0;
};

// A snapshot of one shard.
struct ShardStats {
  unsigned shard = 0;
  ShardCounters counters;
  // Ops in flight per io_uring opcode, ascending by opcode, nonzero only
  // (records waiting for their final CQE; the runtime's own eventfd read,
  // doorbells and cancels are not records and not counted).
  std::vector<std::pair<uint8_t, uint32_t>> in_flight_by_opcode;
  // The kernel's CQ overflow counter (io_uring's cq.koverflow). Kernels
  // with IORING_FEAT_NODROP keep overflowed CQEs in a list and count here
  // only the CQEs they had to drop (memory exhausted).
  uint64_t cq_overflows = 0;
  // Reaps that found completions waiting in the kernel's overflow list
  // (IORING_SQ_CQ_OVERFLOW): a burst did not fit in the CQ. Nothing is lost
  // with NODROP, but it costs extra work; raise RuntimeOptions::ring_entries.
  uint64_t cq_overflow_backlogs = 0;
  // Submissions forced by a full SQ (the same as
  // counters.sq_full_flushes).
  uint64_t sq_full_stalls = 0;
  // Multishot ops that the kernel ended with -ENOBUFS (a buffer ring ran
  // dry) and that were re-armed at once or parked until a buffer came back
  // (a subset of counters.multishot_rearms' causes).
  uint64_t enobufs_rearms = 0;
  // One entry per other shard, ascending by peer.
  std::vector<QueueDepth> queues;
  // Whether RuntimeOptions::latency_histograms was on (else both are empty).
  bool latency_histograms = false;
  Histogram loop_turn_ns;
  Histogram op_latency_ns;
};

// A snapshot of every shard, indexed by shard.
struct RuntimeStats {
  std::vector<ShardStats> shards;
};

// The name of an io_uring opcode without its IORING_OP_ prefix ("READ",
// "POLL_ADD"), or an empty view for one shardio does not know by name.
std::string_view opcode_name(uint8_t opcode) noexcept;

// A human-readable report, a few lines per shard.
std::string to_text(const RuntimeStats& stats);

// The Prometheus text exposition format 0.0.4: HELP and TYPE lines, metric
// names `<prefix>_...` with a `shard` label (and `opcode` or `peer` where
// they apply); the histograms (only for shards that have them on) in
// seconds, as cumulative `_bucket{le=...}` at powers of two of nanoseconds
// (1 ns .. 2^36 ns, then +Inf), `_sum` and `_count`.
std::string to_prometheus(const RuntimeStats& stats,
                          std::string_view prefix = "shardio");

namespace this_shard {
// A snapshot of the calling shard. Throws std::logic_error off-shard.
ShardStats stats();
}  // namespace this_shard

namespace detail {
// A shard's latency histograms (RuntimeOptions::latency_histograms).
struct LatencyStats {
  Histogram loop_turn_ns;
  Histogram op_latency_ns;
};
}  // namespace detail

}  // namespace shardio
