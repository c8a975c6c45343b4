// runtime/shard.h — one shard: a thread running the loop around its Reactor
// (private to the runtime).
//
// Thread-safety: post() may be called from any thread; everything else runs
// on the shard's own thread, except construction, start() and join(), which
// the Runtime calls from its owner's thread.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "shardio/detail/reactor.h"
#include "shardio/runtime.h"

namespace shardio::detail {

class Shard final : public Reactor {
 public:
  // `cpu` is the CPU to pin to, or -1.
  Shard(unsigned id, unsigned count, const RuntimeOptions& options, int cpu);
  ~Shard();

  // Starts the thread and waits until its ring exists. Returns an empty
  // string on success, else what went wrong.
  std::string start();
  // Asks the loop to shut down; callable from any thread.
  void request_stop();
  void join();

  void enqueue(absl::AnyInvocable<void()> fn);

  // Runs on the shard thread.
  void on_wake(const io_uring_cqe& cqe);

 private:
  void thread_main();
  std::string setup_ring();
  void arm_wake();
  void drain_inbox();
  void run_ready();
  void wait_for_events();
  void shutdown();

  RuntimeOptions options_;
  int cpu_;
  int event_fd_ = -1;
  uint64_t wake_buf_ = 0;
  bool wake_armed_ = false;
  bool stopping_ = false;
  bool ring_ready_ = false;

  std::thread thread_;
  absl::Notification started_;
  std::string start_error_;

  absl::Mutex inbox_mu_;
  std::vector<absl::AnyInvocable<void()>> inbox_ ABSL_GUARDED_BY(inbox_mu_);
};

}  // namespace shardio::detail
