// shardio/ops/file.h — basic file ops: OpenAt, Read, Write, Close.
//
// Read and Write own their buffer (any OwnedBuffer, see buffer.h) until the
// final CQE and return it with the byte count:
//
//   auto fd = co_await shardio::submit(shardio::OpenAt(AT_FDCWD, "f",
//   O_RDONLY)); auto [n, buf] = co_await shardio::submit(
//       shardio::Read(*fd, std::vector<std::byte>(4096), 0));
//
// An offset of kCurrentPosition reads or writes at the file position and
// advances it, like read(2)/write(2).
//
// Thread-safety: plain op values; see operation.h.
#pragma once

#include <fcntl.h>
#include <liburing.h>

#include <cstdint>
#include <string>
#include <utility>

#include "shardio/buffer.h"
#include "shardio/result.h"

namespace shardio {

inline constexpr uint64_t kCurrentPosition = ~uint64_t{0};

// openat(2); yields the new fd.
struct OpenAt {
  OpenAt(int dirfd, std::string path, int flags, mode_t mode = 0644)
      : dirfd(dirfd), path(std::move(path)), flags(flags), mode(mode) {}

  void prepare(io_uring_sqe& sqe) noexcept;
  Result<int> complete(const io_uring_cqe& cqe) noexcept;

  int dirfd;
  std::string path;
  int flags;
  mode_t mode;
};

// read(2)/pread(2) into the whole of `buf`.
template <OwnedBuffer B>
struct Read {
  Read(int fd, B buf, uint64_t offset = kCurrentPosition)
      : fd(fd), buf(std::move(buf)), offset(offset) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_read(&sqe, fd, std::data(buf),
                       static_cast<unsigned>(std::size(buf)), offset);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }

  int fd;
  B buf;
  uint64_t offset;
};

// write(2)/pwrite(2) of the whole of `buf`; may write less (see the count).
template <OwnedBuffer B>
struct Write {
  Write(int fd, B buf, uint64_t offset = kCurrentPosition)
      : fd(fd), buf(std::move(buf)), offset(offset) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_write(&sqe, fd, std::data(buf),
                        static_cast<unsigned>(std::size(buf)), offset);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }

  int fd;
  B buf;
  uint64_t offset;
};

// close(2) on the ring.
struct Close {
  explicit Close(int fd) : fd(fd) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  int fd;
};

}  // namespace shardio
