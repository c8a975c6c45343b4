// shardio/ops/file.h — file ops: OpenAt, Close, Read/Write, Readv/Writev,
// ReadFixed/WriteFixed, Fsync, SyncFileRange, Fallocate, Fadvise, Madvise.
//
// Ops that move data own their buffer (any OwnedBuffer, see buffer.h) until
// the final CQE and return it with the byte count:
//
//   auto fd = co_await shardio::submit(
//       shardio::OpenAt(AT_FDCWD, "f", O_RDONLY));
//   auto [n, buf] = co_await shardio::submit(
//       shardio::Read(*fd, std::vector<std::byte>(4096), 0));
//
// An offset of kCurrentPosition reads or writes at the file position and
// advances it, like read(2)/write(2). One op moves at most kMaxIoChunk
// bytes (the kernel's limit for one read or write); longer buffers are
// transferred in part, like a short read. Each op names its opcode
// (kOpcode), so a kernel without it yields EOPNOTSUPP.
//
// Every fd parameter is an Fd: a plain fd converts implicitly; a slot of
// this shard's registered files is Fd::fixed(slot).
//
// Thread-safety: plain op values; see operation.h.
#pragma once

#include <fcntl.h>
#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shardio/buffer.h"
#include "shardio/result.h"

namespace shardio {

inline constexpr uint64_t kCurrentPosition = ~uint64_t{0};
// The most one read or write moves (Linux's MAX_RW_COUNT).
inline constexpr std::size_t kMaxIoChunk = 0x7ffff000;

// A file descriptor, or a slot in the shard's registered-file table.
struct Fd {
  Fd(int fd) noexcept : value(fd) {}  // NOLINT(google-explicit-constructor)
  static Fd fixed(unsigned slot) noexcept {
    Fd f(static_cast<int>(slot));
    f.is_fixed = true;
    return f;
  }
  // Marks the SQE when the fd is a registered slot.
  void apply(io_uring_sqe& sqe) const noexcept {
    if (is_fixed) sqe.flags |= IOSQE_FIXED_FILE;
  }

  int value;
  bool is_fixed = false;
};

inline unsigned io_len(std::size_t n) noexcept {
  return static_cast<unsigned>(n < kMaxIoChunk ? n : kMaxIoChunk);
}

// The credentials id prep_invalid() puts in an SQE. Ids are handed out only
// by IORING_REGISTER_PERSONALITY, counting up from 1, and shardio registers
// none.
inline constexpr uint16_t kUnregisteredPersonality = 0xffff;

// Turns `sqe` into one of opcode `opcode` that the kernel fails with EINVAL
// as it reads the SQE, before it looks at any fd, address or path in it:
// the credentials id (sqe.personality) is one that was never registered.
// An op whose own input is invalid (an empty buffer handle, a path with a
// NUL byte in it) calls it from prepare() instead of filling the SQE: the op
// still goes through the ring, so it completes through complete() in order
// with the others, and as the failed link of a chain it cancels the rest.
inline void prep_invalid(io_uring_sqe& sqe, uint8_t opcode) noexcept {
  io_uring_prep_rw(opcode, &sqe, -1, nullptr, 0, 0);
  sqe.personality = kUnregisteredPersonality;
}

// Whether `path` has a NUL byte before its end: the kernel would read it
// only up to there, and so act on another file than the one named.
inline bool has_nul(const std::string& path) noexcept {
  return path.find('\0') != std::string::npos;
}

// openat(2) (always O_CLOEXEC); yields the new fd. A path with a NUL byte
// before its end fails with EINVAL, unopened.
struct OpenAt {
  static constexpr uint8_t kOpcode = IORING_OP_OPENAT;
  OpenAt(int dirfd, std::string path, int flags, mode_t mode = 0644)
      : dirfd(dirfd), path(std::move(path)), flags(flags), mode(mode) {}

  void prepare(io_uring_sqe& sqe) noexcept;
  Result<int> complete(const io_uring_cqe& cqe) noexcept;

  int dirfd;
  std::string path;
  int flags;
  mode_t mode;
};

// close(2) on the ring. (A registered slot is released with
// this_shard::unregister_file, not closed.)
struct Close {
  static constexpr uint8_t kOpcode = IORING_OP_CLOSE;
  explicit Close(int fd) : fd(fd) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  int fd;
};

// read(2)/pread(2) into the whole of `buf`.
template <OwnedBuffer B>
struct Read {
  static constexpr uint8_t kOpcode = IORING_OP_READ;
  Read(Fd fd, B buf, uint64_t offset = kCurrentPosition)
      : fd(fd), buf(std::move(buf)), offset(offset) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_read(&sqe, fd.value, std::data(buf), io_len(std::size(buf)),
                       offset);
    fd.apply(sqe);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }

  Fd fd;
  B buf;
  uint64_t offset;
};

// write(2)/pwrite(2) of the whole of `buf`; may write less (see the count).
template <OwnedBuffer B>
struct Write {
  static constexpr uint8_t kOpcode = IORING_OP_WRITE;
  Write(Fd fd, B buf, uint64_t offset = kCurrentPosition)
      : fd(fd), buf(std::move(buf)), offset(offset) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_write(&sqe, fd.value, std::data(buf), io_len(std::size(buf)),
                        offset);
    fd.apply(sqe);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }

  Fd fd;
  B buf;
  uint64_t offset;
};

// preadv2(2) into several owned buffers, filled in order.
template <OwnedBuffer B>
struct Readv {
  static constexpr uint8_t kOpcode = IORING_OP_READV;
  Readv(Fd fd, std::vector<B> bufs, uint64_t offset = kCurrentPosition,
        int rw_flags = 0)
      : fd(fd), bufs(std::move(bufs)), offset(offset), rw_flags(rw_flags) {}

  void prepare(io_uring_sqe& sqe) {
    iovecs.clear();
    for (B& b : bufs) iovecs.push_back(iovec{std::data(b), std::size(b)});
    io_uring_prep_readv2(&sqe, fd.value, iovecs.data(),
                         static_cast<unsigned>(iovecs.size()), offset,
                         rw_flags);
    fd.apply(sqe);
  }
  IoResult<std::vector<B>> complete(const io_uring_cqe& cqe) {
    return {result_from_res(cqe.res), std::move(bufs)};
  }

  Fd fd;
  std::vector<B> bufs;
  uint64_t offset;
  int rw_flags;
  std::vector<iovec> iovecs;  // the kernel reads these: owned here too
};

// pwritev2(2) of several owned buffers, in order.
template <OwnedBuffer B>
struct Writev {
  static constexpr uint8_t kOpcode = IORING_OP_WRITEV;
  Writev(Fd fd, std::vector<B> bufs, uint64_t offset = kCurrentPosition,
         int rw_flags = 0)
      : fd(fd), bufs(std::move(bufs)), offset(offset), rw_flags(rw_flags) {}

  void prepare(io_uring_sqe& sqe) {
    iovecs.clear();
    for (B& b : bufs) {
      iovecs.push_back(
          iovec{const_cast<void*>(static_cast<const void*>(std::data(b))),
                std::size(b)});
    }
    io_uring_prep_writev2(&sqe, fd.value, iovecs.data(),
                          static_cast<unsigned>(iovecs.size()), offset,
                          rw_flags);
    fd.apply(sqe);
  }
  IoResult<std::vector<B>> complete(const io_uring_cqe& cqe) {
    return {result_from_res(cqe.res), std::move(bufs)};
  }

  Fd fd;
  std::vector<B> bufs;
  uint64_t offset;
  int rw_flags;
  std::vector<iovec> iovecs;
};

// A buffer registered with this shard's ring (see buffer_pool.h): its memory,
// its length and its slot. The op holds the handle (and so the buffer) until
// the final CQE.
template <class H>
concept RegisteredBuffer = std::move_constructible<H> && requires(H& h) {
  { h.data() } -> std::convertible_to<void*>;
  { h.size() } -> std::convertible_to<std::size_t>;
  { h.slot() } -> std::convertible_to<unsigned>;
};

// IORING_OP_READ_FIXED into a registered buffer (`len` bytes of it; all of
// it by default). A handle without memory (data() null: an empty
// FixedBuffer) fails with EINVAL.
template <RegisteredBuffer H>
struct ReadFixed {
  static constexpr uint8_t kOpcode = IORING_OP_READ_FIXED;
  ReadFixed(Fd fd, H buf, uint64_t offset, std::size_t len = ~std::size_t{0})
      : fd(fd), buf(std::move(buf)), offset(offset), len(len) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    if (buf.data() == nullptr) return prep_invalid(sqe, kOpcode);
    io_uring_prep_read_fixed(&sqe, fd.value, buf.data(),
                             io_len(len < buf.size() ? len : buf.size()),
                             offset, static_cast<int>(buf.slot()));
    fd.apply(sqe);
  }
  IoResult<H> complete(const io_uring_cqe& cqe) {
    return IoResult<H>{result_from_res(cqe.res), std::move(buf)};
  }

  Fd fd;
  H buf;
  uint64_t offset;
  std::size_t len;
};

// IORING_OP_WRITE_FIXED from a registered buffer (`len` bytes of it). A
// handle without memory fails with EINVAL, as for ReadFixed.
template <RegisteredBuffer H>
struct WriteFixed {
  static constexpr uint8_t kOpcode = IORING_OP_WRITE_FIXED;
  WriteFixed(Fd fd, H buf, uint64_t offset, std::size_t len = ~std::size_t{0})
      : fd(fd), buf(std::move(buf)), offset(offset), len(len) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    if (buf.data() == nullptr) return prep_invalid(sqe, kOpcode);
    io_uring_prep_write_fixed(&sqe, fd.value, buf.data(),
                              io_len(len < buf.size() ? len : buf.size()),
                              offset, static_cast<int>(buf.slot()));
    fd.apply(sqe);
  }
  IoResult<H> complete(const io_uring_cqe& cqe) {
    return IoResult<H>{result_from_res(cqe.res), std::move(buf)};
  }

  Fd fd;
  H buf;
  uint64_t offset;
  std::size_t len;
};

// fsync(2), or fdatasync(2) with datasync = true.
struct Fsync {
  static constexpr uint8_t kOpcode = IORING_OP_FSYNC;
  explicit Fsync(Fd fd, bool datasync = false) : fd(fd), datasync(datasync) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  bool datasync;
};

// sync_file_range(2).
struct SyncFileRange {
  static constexpr uint8_t kOpcode = IORING_OP_SYNC_FILE_RANGE;
  SyncFileRange(Fd fd, uint64_t offset, uint32_t len, unsigned flags)
      : fd(fd), offset(offset), len(len), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  uint64_t offset;
  uint32_t len;
  unsigned flags;
};

// fallocate(2).
struct Fallocate {
  static constexpr uint8_t kOpcode = IORING_OP_FALLOCATE;
  Fallocate(Fd fd, int mode, uint64_t offset, uint64_t len)
      : fd(fd), mode(mode), offset(offset), len(len) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  int mode;
  uint64_t offset;
  uint64_t len;
};

// posix_fadvise(2).
struct Fadvise {
  static constexpr uint8_t kOpcode = IORING_OP_FADVISE;
  Fadvise(Fd fd, uint64_t offset, uint32_t len, int advice)
      : fd(fd), offset(offset), len(len), advice(advice) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  uint64_t offset;
  uint32_t len;
  int advice;
};

// madvise(2) on memory the caller keeps mapped until the op completes.
struct Madvise {
  static constexpr uint8_t kOpcode = IORING_OP_MADVISE;
  Madvise(void* addr, uint32_t len, int advice)
      : addr(addr), len(len), advice(advice) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  void* addr;
  uint32_t len;
  int advice;
};

}  // namespace shardio
