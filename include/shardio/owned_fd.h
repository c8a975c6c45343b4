// shardio/owned_fd.h — a file descriptor that closes itself.
//
// Ops that create descriptors for streams (multishot accept) yield OwnedFd,
// so a descriptor nobody takes — an item dropped with its stream, a result
// dropped with its task — is closed rather than leaked.
//
// Thread-safety: a plain value.
#pragma once

#include <unistd.h>

#include <utility>

namespace shardio {

class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives up ownership; the caller closes the fd.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the fd held (close(2), synchronously) and holds `fd` instead.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace shardio
