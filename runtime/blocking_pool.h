// runtime/blocking_pool.h — the threads behind spawn_blocking() (private).
//
// A fixed number of threads, started on first use, take jobs from one FIFO
// guarded by a mutex (this is the path for work io_uring cannot do, not the
// I/O path). stop() lets running jobs finish, drops queued ones and joins.
//
// Thread-safety: submit() and stop() may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace shardio::detail {

class BlockingPool {
 public:
  explicit BlockingPool(unsigned threads)
      : max_threads_(threads ? threads : 1) {}
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;
  ~BlockingPool() { stop(); }

  // Returns false (dropping `job`) once the pool has been stopped.
  bool submit(absl::AnyInvocable<void()> job);
  void stop();

 private:
  void worker();

  const unsigned max_threads_;
  std::mutex mu_;  // std::mutex: visible to ThreadSanitizer
  std::condition_variable cv_;
  std::deque<absl::AnyInvocable<void()>> jobs_;
  unsigned idle_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace shardio::detail
