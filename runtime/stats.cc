// Observability: the Histogram, per-shard snapshots (taken on the shard),
// Runtime::stats(), and the text and Prometheus renderings.
#include "shardio/stats.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <future>
#include <string>

#include "absl/strings/str_format.h"
#include "runtime/shard.h"
#include "shardio/runtime.h"

namespace shardio {

// ---------------------------------------------------------------------------
// Histogram

unsigned Histogram::bucket_of(uint64_t v) noexcept {
  if (v <= kSubBuckets) return v == 0 ? 0 : static_cast<unsigned>(v - 1);
  // Bucket i holds (upper_bound(i-1), upper_bound(i)]: index by v - 1, whose
  // top three bits (the leading one and two below it) pick the bucket.
  const uint64_t u = v - 1;
  const unsigned e = static_cast<unsigned>(std::bit_width(u)) - 1;  // >= 2
  if (e >= kMaxExponent) return kBuckets - 1;
  const unsigned sub = static_cast<unsigned>(u >> (e - 2)) & 3;
  return kSubBuckets + (e - 2) * kSubBuckets + sub;
}

uint64_t Histogram::upper_bound(unsigned i) noexcept {
  if (i < kSubBuckets) return i + 1;
  if (i >= kBuckets - 1) return UINT64_MAX;
  const unsigned k = i - kSubBuckets;
  const unsigned e = k / kSubBuckets + 2;
  const uint64_t sub = k % kSubBuckets;
  return (kSubBuckets + sub + 1) << (e - 2);
}

void Histogram::merge(const Histogram& o) noexcept {
  for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

uint64_t Histogram::percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  if (!(p > 0)) return min_;  // also NaN
  if (p >= 100) return max_;
  uint64_t rank =
      static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (unsigned i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(upper_bound(i), min_, max_);
  }
  return max_;
}

// ---------------------------------------------------------------------------
// Snapshots

namespace detail {

uint64_t monotonic_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<uint64_t>(ts.tv_nsec);
}

void Reactor::note_op_latency(const OpRecordBase* rec) noexcept {
  // A multishot stream's first-to-last CQE is its lifetime, not a latency.
  if (rec->multishot) return;
  latency_->op_latency_ns.record(monotonic_ns() - rec->submit_ns);
}

ShardStats Shard::stats() const {
  ShardStats s;
  s.shard = shard_id_;
  s.counters = counters();
  for (unsigned op = 0; op < 256; ++op) {
    if (in_flight_by_opcode_[op] != 0) {
      s.in_flight_by_opcode.emplace_back(static_cast<uint8_t>(op),
                                         in_flight_by_opcode_[op]);
    }
  }
  if (ring_ready_ && ring_.cq.koverflow != nullptr) {
    // Written by the kernel.
    s.cq_overflows = __atomic_load_n(ring_.cq.koverflow, __ATOMIC_RELAXED);
  }
  s.cq_overflow_backlogs = cq_overflow_backlogs_.get();
  s.sq_full_stalls = counters_.sq_full_flushes.get();
  s.enobufs_rearms = enobufs_rearms_.get();
  for (unsigned peer = 0; peer < peers_.size(); ++peer) {
    if (peer == shard_id_) continue;
    QueueDepth q;
    q.peer = peer;
    // The indices only grow; each side's own is stable here, so neither
    // difference can go negative, but clamp anyway.
    q.queued =
        std::min(outgoing_[peer]->size_approx(), outgoing_[peer]->capacity());
    q.outbox = outbox_[peer].size();
    q.incoming =
        std::min(incoming_[peer]->size_approx(), incoming_[peer]->capacity());
    s.queues.push_back(q);
  }
  if (latency_ != nullptr) {
    s.latency_histograms = true;
    s.loop_turn_ns = latency_->loop_turn_ns;
    s.op_latency_ns = latency_->op_latency_ns;
  }
  return s;
}

ShardStats Shard::final_stats() {
  exited_.wait();
  return final_stats_;
}

}  // namespace detail

namespace this_shard {
ShardStats stats() {
  return static_cast<detail::Shard&>(detail::Reactor::require_current())
      .stats();
}
}  // namespace this_shard

RuntimeStats Runtime::stats() const {
  check_not_on_shard("Runtime::stats");
  const std::size_t n = shards_.size();
  std::vector<std::future<ShardStats>> futures;
  futures.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::promise<ShardStats> p;
    futures.push_back(p.get_future());
    detail::Shard* shard = shards_[i].get();
    // A shard that has stopped destroys this without running it: the
    // promise breaks and the shard's final snapshot is used instead.
    shard->enqueue([p = std::move(p), shard]() mutable {
      try {
        p.set_value(shard->stats());
      } catch (...) {
        p.set_exception(std::current_exception());
      }
    });
  }
  RuntimeStats out;
  out.shards.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    try {
      out.shards.push_back(futures[i].get());
    } catch (const std::future_error& e) {
      if (e.code() != std::future_errc::broken_promise) throw;
      out.shards.push_back(shards_[i]->final_stats());
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Text

namespace {

std::string duration(uint64_t ns) {
  if (ns < 1000) return absl::StrFormat("%dns", ns);
  const double v = static_cast<double>(ns);
  if (ns < 1000000) return absl::StrFormat("%.3gus", v / 1e3);
  if (ns < 1000000000) return absl::StrFormat("%.3gms", v / 1e6);
  return absl::StrFormat("%.3gs", v / 1e9);
}

void append_histogram(std::string& out, std::string_view what,
                      const Histogram& h) {
  if (h.count() == 0) {
    absl::StrAppendFormat(&out, "  %s: no samples\n", what);
    return;
  }
  absl::StrAppendFormat(
      &out, "  %s: n=%d min=%s p50=%s p90=%s p99=%s p99.9=%s max=%s mean=%s\n",
      what, h.count(), duration(h.min()), duration(h.percentile(50)),
      duration(h.percentile(90)), duration(h.percentile(99)),
      duration(h.percentile(99.9)), duration(h.max()),
      duration(static_cast<uint64_t>(h.mean())));
}

std::string opcode_label(uint8_t op) {
  const std::string_view name = opcode_name(op);
  return name.empty() ? std::to_string(op) : std::string(name);
}

}  // namespace

std::string to_text(const RuntimeStats& stats) {
  std::string out;
  for (const ShardStats& s : stats.shards) {
    const ShardCounters& c = s.counters;
    absl::StrAppendFormat(&out,
                          "shard %d: %d loop turns, %d tasks run, %d SQEs "
                          "submitted in %d enters, %d CQEs reaped\n",
                          s.shard, c.loop_turns, c.tasks_run, c.sqes_submitted,
                          c.enters, c.cqes_reaped);
    absl::StrAppendFormat(&out, "  ops in flight: %d", c.ops_in_flight);
    const char* sep = " (";
    for (const auto& [op, n] : s.in_flight_by_opcode) {
      absl::StrAppendFormat(&out, "%s%s %d", sep, opcode_label(op), n);
      sep = ", ";
    }
    if (!s.in_flight_by_opcode.empty()) out += ")";
    absl::StrAppendFormat(&out, "; %d orphaned, %d multishot re-arms\n",
                          c.ops_orphaned, c.multishot_rearms);
    absl::StrAppendFormat(&out,
                          "  ring: %d SQ-full stalls, %d CQ overflow "
                          "backlogs, %d CQEs overflowed (kernel count), %d "
                          "ENOBUFS re-arms\n",
                          s.sq_full_stalls, s.cq_overflow_backlogs,
                          s.cq_overflows, s.enobufs_rearms);
    absl::StrAppendFormat(&out,
                          "  messages: %d sent, %d received, %d doorbells, "
                          "%d outbox waits\n",
                          c.messages_sent, c.messages_received,
                          c.doorbells_sent, c.outbox_waits);
    for (const QueueDepth& q : s.queues) {
      absl::StrAppendFormat(&out,
                            "  shard %d -> %d: %d queued, %d in outbox; "
                            "%d -> %d: %d queued\n",
                            s.shard, q.peer, q.queued, q.outbox, q.peer,
                            s.shard, q.incoming);
    }
    if (s.latency_histograms) {
      append_histogram(out, "loop turn (busy)", s.loop_turn_ns);
      append_histogram(out, "op latency", s.op_latency_ns);
    } else {
      out += "  latency histograms: off (RuntimeOptions::latency_histograms)\n";
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4

namespace {

class Exposition {
 public:
  explicit Exposition(std::string_view prefix) : prefix_(prefix) {}

  // Starts a metric family.
  void family(std::string_view name, std::string_view type,
              std::string_view help) {
    name_ = prefix_.empty() ? std::string(name)
                            : absl::StrFormat("%s_%s", prefix_, name);
    absl::StrAppendFormat(&out_, "# HELP %s %s\n# TYPE %s %s\n", name_, help,
                          name_, type);
  }
  // A sample of the current family; `labels` without braces.
  void sample(std::string_view suffix, std::string_view labels,
              std::string_view value) {
    absl::StrAppendFormat(&out_, "%s%s{%s} %s\n", name_, suffix, labels, value);
  }
  void sample(std::string_view labels, uint64_t value) {
    sample("", labels, std::to_string(value));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string prefix_;
  std::string name_;
  std::string out_;
};

std::string seconds(double ns) { return absl::StrFormat("%.12g", ns / 1e9); }

struct CounterField {
  const char* name;
  const char* help;
  uint64_t (*get)(const ShardStats&);
};

constexpr CounterField kCounters[] = {
    {"sqes_submitted_total", "SQEs handed to the kernel.",
     [](const ShardStats& s) { return s.counters.sqes_submitted; }},
    {"cqes_reaped_total", "CQEs consumed from the completion queue.",
     [](const ShardStats& s) { return s.counters.cqes_reaped; }},
    {"enters_total", "io_uring_enter system calls.",
     [](const ShardStats& s) { return s.counters.enters; }},
    {"loop_turns_total", "Iterations of the shard loop.",
     [](const ShardStats& s) { return s.counters.loop_turns; }},
    {"tasks_run_total", "Coroutine resumptions from the ready queue.",
     [](const ShardStats& s) { return s.counters.tasks_run; }},
    {"ops_orphaned_total", "Ops whose awaiter went away before the CQE.",
     [](const ShardStats& s) { return s.counters.ops_orphaned; }},
    {"messages_sent_total", "Shard-to-shard messages queued.",
     [](const ShardStats& s) { return s.counters.messages_sent; }},
    {"messages_received_total", "Shard-to-shard messages run.",
     [](const ShardStats& s) { return s.counters.messages_received; }},
    {"doorbells_sent_total", "IORING_OP_MSG_RING wake-ups sent.",
     [](const ShardStats& s) { return s.counters.doorbells_sent; }},
    {"outbox_waits_total", "Messages that found their queue full.",
     [](const ShardStats& s) { return s.counters.outbox_waits; }},
    {"multishot_rearms_total",
     "Multishot ops re-armed after the kernel ended them early.",
     [](const ShardStats& s) { return s.counters.multishot_rearms; }},
    {"enobufs_rearms_total",
     "Multishot ops ended by ENOBUFS (buffer ring dry) and re-armed or "
     "parked.",
     [](const ShardStats& s) { return s.enobufs_rearms; }},
    {"sq_full_stalls_total", "Submissions forced by a full SQ.",
     [](const ShardStats& s) { return s.sq_full_stalls; }},
    {"cq_overflows_total",
     "The kernel's CQ overflow count (with IORING_FEAT_NODROP: CQEs "
     "dropped).",
     [](const ShardStats& s) { return s.cq_overflows; }},
    {"cq_overflow_backlogs_total",
     "Reaps that found CQEs in the kernel's overflow list (CQ too small for "
     "a burst).",
     [](const ShardStats& s) { return s.cq_overflow_backlogs; }},
};

void histogram(Exposition& x, const RuntimeStats& stats, std::string_view name,
               std::string_view help, const Histogram ShardStats::*member) {
  x.family(name, "histogram", help);
  for (const ShardStats& s : stats.shards) {
    if (!s.latency_histograms) continue;
    const Histogram& h = s.*member;
    uint64_t cumulative = 0;
    for (unsigned i = 0; i + 1 < Histogram::kBuckets; ++i) {
      cumulative += h.bucket_count(i);
      const uint64_t le = Histogram::upper_bound(i);
      // Powers of two of nanoseconds only: a fixed, modest set of series.
      if (!std::has_single_bit(le)) continue;
      x.sample("_bucket",
               absl::StrFormat("shard=\"%d\",le=\"%s\"", s.shard,
                               seconds(static_cast<double>(le))),
               std::to_string(cumulative));
    }
    const std::string shard = absl::StrFormat("shard=\"%d\"", s.shard);
    x.sample("_bucket", shard + ",le=\"+Inf\"", std::to_string(h.count()));
    x.sample("_sum", shard, seconds(static_cast<double>(h.sum())));
    x.sample("_count", shard, std::to_string(h.count()));
  }
}

}  // namespace

std::string to_prometheus(const RuntimeStats& stats, std::string_view prefix) {
  Exposition x(prefix);
  for (const CounterField& f : kCounters) {
    x.family(f.name, "counter", f.help);
    for (const ShardStats& s : stats.shards) {
      x.sample(absl::StrFormat("shard=\"%d\"", s.shard), f.get(s));
    }
  }
  x.family("ops_in_flight", "gauge", "Ops waiting for their final CQE.");
  for (const ShardStats& s : stats.shards) {
    x.sample(absl::StrFormat("shard=\"%d\"", s.shard),
             s.counters.ops_in_flight);
  }
  x.family("ops_in_flight_by_opcode", "gauge",
           "Ops waiting for their final CQE, by io_uring opcode (nonzero "
           "only).");
  for (const ShardStats& s : stats.shards) {
    for (const auto& [op, n] : s.in_flight_by_opcode) {
      x.sample(absl::StrFormat("shard=\"%d\",opcode=\"%s\"", s.shard,
                               opcode_label(op)),
               n);
    }
  }
  x.family("queue_messages", "gauge",
           "Messages in the shard's queue to peer, not yet taken by peer.");
  for (const ShardStats& s : stats.shards) {
    for (const QueueDepth& q : s.queues) {
      x.sample(absl::StrFormat("shard=\"%d\",peer=\"%d\"", s.shard, q.peer),
               q.queued);
    }
  }
  x.family("outbox_messages", "gauge",
           "Messages waiting in the shard's outbox for room in its queue to "
           "peer.");
  for (const ShardStats& s : stats.shards) {
    for (const QueueDepth& q : s.queues) {
      x.sample(absl::StrFormat("shard=\"%d\",peer=\"%d\"", s.shard, q.peer),
               q.outbox);
    }
  }
  histogram(x, stats, "loop_turn_seconds",
            "Busy time of a shard loop turn (reaping, messages, tasks; not "
            "submitting or sleeping).",
            &ShardStats::loop_turn_ns);
  histogram(x, stats, "op_latency_seconds",
            "Single-shot op latency from queueing the SQE to the final CQE.",
            &ShardStats::op_latency_ns);
  return x.take();
}

}  // namespace shardio
