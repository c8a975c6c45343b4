// Runtime: creating, addressing and stopping the shards.
#include "shardio/runtime.h"

#include <sched.h>

#include <stdexcept>
#include <system_error>

#include "absl/strings/str_format.h"
#include "runtime/shard.h"

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
  if (options_.ring_entries == 0) {
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        "shardio::Runtime: RuntimeOptions::ring_entries must be at least 1");
  }
  if (options_.pin_cpus && options_.shards > cpus.size()) {
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        absl::StrFormat("shardio::Runtime: pin_cpus asks for %d shards but "
                        "only %d CPUs are allowed by the affinity mask; use "
                        "fewer shards or turn pinning off",
                        options_.shards, cpus.size()));
  }
  shards_.reserve(options_.shards);
  for (unsigned i = 0; i < options_.shards; ++i) {
    const int cpu = options_.pin_cpus ? cpus[i] : -1;
    shards_.push_back(
        std::make_unique<detail::Shard>(i, options_.shards, options_, cpu));
  }
  for (unsigned i = 0; i < options_.shards; ++i) {
    std::string err = shards_[i]->start();
    if (!err.empty()) {
      stop();
      throw std::system_error(
          std::make_error_code(std::errc::not_supported),
          absl::StrFormat("shardio::Runtime: shard %d could not create its "
                          "io_uring: %s",
                          i, err));
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
  shards_[shard]->enqueue(std::move(fn));
}

void Runtime::stop() {
  if (stopped_) return;
  check_not_on_shard("Runtime::stop");
  stopped_ = true;
  for (auto& s : shards_) s->request_stop();
  for (auto& s : shards_) s->join();
}

ShardCounters Runtime::counters(unsigned shard) const {
  return shards_.at(shard)->counters();
}

unsigned Runtime::setup_flags(unsigned shard) const {
  return shards_.at(shard)->setup_flags();
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

}  // namespace this_shard
}  // namespace shardio
