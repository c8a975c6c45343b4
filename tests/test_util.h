// tests/test_util.h — scaffolding shared by the test files: a pipe whose
// reads stay in flight, a watchdog that unblocks such reads if a test goes
// wrong, and an eager coroutine type whose frame the test owns.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace shardio::test {

// A directory for temporary files whose paths stay short enough for Unix
// socket addresses (sun_path holds 107 bytes): the test framework's temp
// dir, unless it is deep (Bazel's sandbox), then /tmp/. Ends with '/'.
inline std::string socket_temp_dir() {
  std::string dir = ::testing::TempDir();
  if (dir.size() > 48) dir = "/tmp/";
  if (dir.empty() || dir.back() != '/') dir += '/';
  return dir;
}

// The process's open descriptors, each with what it refers to (readlink of
// /proc/self/fd/N); the directory stream's own descriptor is left out.
inline std::map<int, std::string> open_fd_table() {
  std::map<int, std::string> fds;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  const int own = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    char target[256];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    fds[fd] = n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?";
  }
  ::closedir(d);
  return fds;
}

// open_fd_table() once it is steady: two readings in a row agree (bounded).
// Sanitizer runtimes open a pipe for a moment on threads that start or
// unwind (to probe whether memory is readable), so one reading taken while
// another thread starts may hold a descriptor that is about to go.
inline std::map<int, std::string> steady_open_fd_table() {
  std::map<int, std::string> last = open_fd_table();
  for (int i = 0; i < 2000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::map<int, std::string> now = open_fd_table();
    if (now == last) return now;
    last = std::move(now);
  }
  return last;
}

// Compares the open descriptors with `before` until they match or `limit`
// has passed (a descriptor a runtime library opens for a moment on another
// thread goes away; a leaked one stays). Take `before` with
// steady_open_fd_table(). Returns "" when they match, else what differs.
inline std::string fds_changed_since(
    const std::map<int, std::string>& before,
    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const std::map<int, std::string> now = open_fd_table();
    if (now == before) return "";
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string diff;
      for (const auto& [fd, what] : now) {
        auto it = before.find(fd);
        if (it == before.end() || it->second != what) {
          diff += "opened fd " + std::to_string(fd) + " -> " + what + "; ";
        }
      }
      for (const auto& [fd, what] : before) {
        if (now.find(fd) == now.end()) {
          diff += "closed fd " + std::to_string(fd) + " -> " + what + "; ";
        }
      }
      return diff;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// A blocking pipe: a read on it stays in flight until something is written.
class Pipe {
 public:
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_fd_ = fds[0];
      write_fd_ = fds[1];
    }
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    if (read_fd_ >= 0) ::close(read_fd_);
    if (write_fd_ >= 0) ::close(write_fd_);
  }
  bool ok() const { return read_fd_ >= 0; }
  int read_fd() const { return read_fd_; }
  int write_fd() const { return write_fd_; }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
};

// Aborts the test binary, naming the test, if it is still running after
// `limit`: a wait that should have ended did not, and the run fails with a
// message instead of hanging. Declare it first in a test, before the
// Runtime.
class Watchdog {
 public:
  explicit Watchdog(absl::Duration limit = absl::Seconds(150))
      : name_(::testing::UnitTest::GetInstance()->current_test_info()->name()),
        thread_([this, limit] {
          if (!done_.WaitForNotificationWithTimeout(limit)) {
            std::fprintf(stderr,
                         "watchdog: %s still running after %s; a wait that "
                         "should have ended did not. Aborting.\n",
                         name_.c_str(), absl::FormatDuration(limit).c_str());
            std::abort();
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() { done_.Notify(); }

 private:
  std::string name_;
  absl::Notification done_;
  std::jthread thread_;
};

// Fails the test and leaves the coroutine (ASSERT_* cannot: they `return`).
#define CO_ASSERT_TRUE(cond)                       \
  do {                                             \
    if (!(cond)) {                                 \
      ADD_FAILURE() << "expected true: " << #cond; \
      co_return;                                   \
    }                                              \
  } while (0)

// If not disarmed (destroyed) within a minute, writes a byte into a pipe so
// that a read a broken cancellation left in flight completes: the test then
// fails on its assertions instead of hanging. Declare it after the Pipe and
// before the Runtime.
class PipeWatchdog {
 public:
  explicit PipeWatchdog(int write_fd)
      : thread_([this, write_fd] {
          if (!disarmed_.WaitForNotificationWithTimeout(absl::Seconds(60))) {
            const char c = 'w';
            if (::write(write_fd, &c, 1) < 0) {
            }
          }
        }) {}
  ~PipeWatchdog() { disarmed_.Notify(); }

 private:
  absl::Notification disarmed_;
  std::jthread thread_;
};

// A coroutine that starts eagerly and stays suspended at its end, so that the
// test owns its frame and can destroy it while it awaits an op.
class Eager {
 public:
  struct promise_type {
    Eager get_return_object() noexcept {
      return Eager(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };

  explicit Eager(std::coroutine_handle<promise_type> h) : h_(h) {}
  Eager(Eager&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Eager& operator=(Eager&&) = delete;
  ~Eager() { destroy(); }

  bool done() const { return h_ && h_.done(); }
  void destroy() {
    if (h_) std::exchange(h_, {}).destroy();
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

}  // namespace shardio::test
