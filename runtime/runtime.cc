// Runtime: creating, addressing and stopping the shards.
#include "shardio/runtime.h"

#include <sched.h>

#include <stdexcept>
#include <system_error>

#include "absl/strings/str_format.h"
#include "runtime/blocking_pool.h"
#include "runtime/shard.h"
#include "shardio/probe.h"

namespace shardio {
namespace {

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  return cpus;
}

}  // namespace

Runtime::Runtime(RuntimeOptions options) : options_(options) {
  const std::vector<int> cpus = allowed_cpus();
  if (options_.shards == 0) {
    options_.shards = cpus.empty() ? 1u : static_cast<unsigned>(cpus.size());
  }
  // The kernel's IORING_MAX_ENTRIES; it answers EINVAL above it.
  constexpr unsigned kMaxRingEntries = 32768;
  if (options_.ring_entries == 0 || options_.ring_entries > kMaxRingEntries) {
    throw std::system_error(
        SetupError::kInvalidOptions,
        absl::StrFormat("shardio::Runtime: RuntimeOptions::ring_entries is "
                        "%d; it must be between 1 and %d (the kernel's "
                        "IORING_MAX_ENTRIES)",
                        options_.ring_entries, kMaxRingEntries));
  }
  if (options_.pin_cpus && options_.shards > cpus.size()) {
    throw std::system_error(
        SetupError::kTooManyShards,
        absl::StrFormat("shardio::Runtime: pin_cpus asks for %d shards but "
                        "only %d CPUs are allowed by the affinity mask; use "
                        "fewer shards or turn pinning off",
                        options_.shards, cpus.size()));
  }
  const unsigned n = options_.shards;
  blocking_ = std::make_unique<detail::BlockingPool>(options_.blocking_threads);
  shards_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    const int cpu = options_.pin_cpus ? cpus[i] : -1;
    shards_.push_back(std::make_unique<detail::Shard>(i, n, options_, cpu));
  }
  queues_.resize(static_cast<std::size_t>(n) * n);
  for (unsigned src = 0; src < n; ++src) {
    for (unsigned dst = 0; dst < n; ++dst) {
      if (src != dst) {
        queues_[src * n + dst] = std::make_unique<detail::MessageQueue>(
            std::max(2u, options_.message_queue_capacity));
      }
    }
  }
  std::vector<detail::Shard*> peers;
  for (auto& s : shards_) peers.push_back(s.get());
  for (unsigned i = 0; i < n; ++i) {
    std::vector<detail::MessageQueue*> out(n, nullptr), in(n, nullptr);
    for (unsigned j = 0; j < n; ++j) {
      out[j] = queues_[i * n + j].get();
      in[j] = queues_[j * n + i].get();
    }
    shards_[i]->connect(peers, std::move(out), std::move(in), blocking_.get());
  }
  for (unsigned i = 0; i < options_.shards; ++i) {
    std::optional<detail::SetupDiagnosis> err = shards_[i]->start();
    if (err) {
      stop();
      throw std::system_error(
          err->error,
          absl::StrFormat("shardio::Runtime: shard %d could not create its "
                          "io_uring: %s",
                          i, err->message));
    }
  }
}

Runtime::~Runtime() { stop(); }

void Runtime::check_not_on_shard(const char* what) const {
  if (detail::Reactor::current() != nullptr) {
    throw std::logic_error(absl::StrFormat(
        "shardio: %s was called from a shard thread; it blocks, so call it "
        "from a thread that is not a shard (inside a task, co_await instead)",
        what));
  }
}

void Runtime::post(unsigned shard, absl::AnyInvocable<void()> fn) {
  if (shard >= shards_.size()) {
    throw std::out_of_range(
        absl::StrFormat("shardio::Runtime::post: shard %d does not exist "
                        "(the runtime has %d)",
                        shard, shards_.size()));
  }
  detail::Reactor* here = detail::Reactor::current();
  if (here != nullptr && here->shard_count() == shards_.size() &&
      static_cast<detail::Reactor*>(shards_[here->shard_id()].get()) == here) {
    here->send(shard, std::move(fn));  // one of our shards: its SPSC queue
    return;
  }
  shards_[shard]->enqueue(std::move(fn));
}

namespace detail {
void check_shard_index(unsigned shard, const char* what) {
  const unsigned n = Reactor::require_current().shard_count();
  if (shard >= n) {
    throw std::out_of_range(absl::StrFormat(
        "shardio::%s: shard %d does not exist (the runtime has %d)", what,
        shard, n));
  }
}
}  // namespace detail

void Runtime::stop() {
  check_not_on_shard("Runtime::stop");
  if (stopped_.exchange(true)) return;
  for (auto& s : shards_) s->request_stop();
  for (auto& s : shards_) s->join();
  // A shard that was still running may have pushed messages into the queue
  // of one that had already shut down; nobody will run them. Destroy them
  // now (on this thread), so that nothing they own outlives stop().
  // Destroying one cannot send another: no shard runs any more.
  for (auto& s : shards_) s->drop_stranded_messages();
  // Blocking jobs still running finish (they cannot be interrupted); their
  // replies find their shard stopped and are dropped with its inbox.
  if (blocking_) blocking_->stop();
}

ShardCounters Runtime::counters(unsigned shard) const {
  return shards_.at(shard)->counters();
}

unsigned Runtime::setup_flags(unsigned shard) const {
  return shards_.at(shard)->setup_flags();
}

void ShardRef::post(absl::AnyInvocable<void()> fn) const {
  reactor_->post(std::move(fn));
}

unsigned shard_count() {
  return detail::Reactor::require_current().shard_count();
}

namespace this_shard {

unsigned id() { return detail::Reactor::require_current().shard_id(); }
ShardCounters counters() {
  return detail::Reactor::require_current().counters();
}
unsigned setup_flags() {
  return detail::Reactor::require_current().setup_flags();
}
uintptr_t identity() noexcept {
  return reinterpret_cast<uintptr_t>(detail::Reactor::current());
}
bool supports(uint8_t opcode) {
  return detail::Reactor::require_current().opcode_supported(opcode);
}
Result<unsigned> register_file(int fd) {
  return detail::Reactor::require_current().register_file(fd);
}
Result<void> unregister_file(unsigned slot) {
  return detail::Reactor::require_current().unregister_file(slot);
}
Result<unsigned> register_buffer(void* base, std::size_t len) {
  return detail::Reactor::require_current().register_buffer(base, len);
}
Result<void> unregister_buffer(unsigned slot) {
  return detail::Reactor::require_current().unregister_buffer(slot);
}
Result<uint16_t> register_buf_ring(void* ring_addr, unsigned entries) {
  return detail::Reactor::require_current().register_buf_ring(ring_addr,
                                                              entries);
}
Result<void> unregister_buf_ring(uint16_t group) {
  return detail::Reactor::require_current().unregister_buf_ring(group);
}
ShardRef ref() { return ShardRef(&detail::Reactor::require_current()); }

}  // namespace this_shard
}  // namespace shardio
