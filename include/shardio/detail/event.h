// shardio/detail/event.h — a one-shot event for threads that are not
// shards (not part of the public API).
//
// Built on std::mutex and std::condition_variable rather than
// absl::Notification so that ThreadSanitizer, which cannot see inside the
// system's uninstrumented Abseil, understands the synchronization.
//
// Thread-safety: notify() and wait() may be called from any thread; the
// event may be destroyed as soon as wait() returns.
#pragma once

#include <condition_variable>
#include <mutex>

namespace shardio::detail {

class Event {
 public:
  void notify() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

}  // namespace shardio::detail
