// The spawn_blocking() thread pool; see blocking_pool.h.
#include "runtime/blocking_pool.h"

#include <pthread.h>

#include <utility>

namespace shardio::detail {

bool BlockingPool::submit(absl::AnyInvocable<void()> job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  jobs_.push_back(std::move(job));
  // Grow up to the limit while no thread is idle to take the job.
  if (idle_ == 0 && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { worker(); });
  } else {
    cv_.notify_one();
  }
  return true;
}

void BlockingPool::worker() {
  pthread_setname_np(pthread_self(), "shardio-block");
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    --idle_;
    if (stopping_) return;
    absl::AnyInvocable<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    job = nullptr;  // its captures die outside the lock too
    lock.lock();
  }
}

void BlockingPool::stop() {
  std::vector<std::thread> threads;
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
    dropped.swap(jobs_);
    cv_.notify_all();
  }
  for (auto& t : threads) t.join();
}

}  // namespace shardio::detail
