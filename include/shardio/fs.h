// shardio/fs.h — the file system API: File, OpenOptions, Metadata and whole-
// file helpers (read, write, rename, ...), built only on the public Operation
// API and the ops in ops/ (as any user could write it).
//
//   auto f = co_await shardio::fs::File::open("data.bin");
//   if (!f) { std::puts(f.error().message().c_str()); co_return; }
//   auto [n, buf] = co_await f->read_at(std::vector<std::byte>(4096), 0);
//   auto text = co_await shardio::fs::read_to_string("/etc/hostname");
//
// Errors are values: fs::Result<T> is shardio::Result<T, fs::Error>, and an
// Error carries the errno (as a std::error_code), the path it concerns and the
// name of the operation, so that message() reads like
// "open /x: No such file or directory". Result::value() throws
// std::system_error carrying the same code and text.
//
// Paths are std::strings, and the kernel reads a path only up to its first
// NUL byte: a path with a NUL before its end would name another file
// ("victim\0.bak" is "victim"). Every call here that takes a path refuses
// such a path with EINVAL before the kernel sees it, e.g.
// "remove victim\0.bak: the path contains a NUL byte".
//
// Buffers go in by ownership and always come back: `read_at(buf, off)` yields
// IoResult{res, buf}, whatever happened. The op holds the buffer from
// submission until its final CQE, so destroying (cancelling) the awaiting task
// never leaves the kernel writing into freed memory. Any OwnedBuffer
// (buffer.h) works; O_DIRECT wants an AlignedBuffer. Registered buffers (a
// BufferPool's FixedBuffer) go through read_fixed_at/write_fixed_at.
//
// A File closes its fd when destroyed without ever blocking a shard: on a
// shard the destructor hands the fd to a small detached task that closes it
// with IORING_OP_CLOSE; off a shard it calls close(2). close() does the same
// but reports the result.
//
// Lifetimes: the awaitables returned by File's methods (and the tasks of its
// coroutine methods) refer to the File, which must stay alive and in place
// until they have been awaited. Paths and buffers are taken by value.
//
// Thread-safety: a File is a plain value owned by one task at a time; its I/O
// must be awaited on a shard. A registered File (register_fixed) uses its
// fixed slot only on the shard that registered it (elsewhere it falls back to
// the plain fd), and should be closed or destroyed there so that the slot is
// released right away.
#pragma once

#include <fcntl.h>
#include <liburing.h>
#include <linux/stat.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardio/buffer.h"
#include "shardio/operation.h"
#include "shardio/ops/file.h"
#include "shardio/ops/path.h"
#include "shardio/result.h"
#include "shardio/task.h"

namespace shardio::fs {

// What went wrong, and where.
struct Error {
  std::error_code code{};
  // The path the operation concerned (empty when there is none).
  std::string path{};
  // The operation's name ("open", "read", ...); a string literal or null.
  const char* op = nullptr;
  // Replaces code.message() in message() when set (a string literal), e.g.
  // "unexpected end of file" for ENODATA from read_exact_at.
  const char* detail = nullptr;

  // "OP PATH: DETAIL", e.g. "open /x: No such file or directory". A NUL
  // byte in the path is written as \0.
  std::string message() const;
};

// Throws std::system_error(e.code, ...) whose what() contains message().
// Found by ADL from shardio::Result<T, fs::Error>::value().
[[noreturn]] void throw_result_error(const Error& e);

template <class T>
using Result = shardio::Result<T, Error>;

// The outcome of an I/O call that carried a buffer: the byte count (or the
// error) and the buffer itself, returned whatever happened.
template <class B>
struct IoResult {
  Result<std::size_t> res;
  B buf;
};

// What statx(2) says about a file.
struct Metadata {
  uint64_t size = 0;
  mode_t mode = 0;  // type and permission bits (st_mode)
  uint64_t blocks = 0;
  uint32_t block_size = 0;
  timespec modified{};
  bool is_file() const noexcept { return S_ISREG(mode); }
  bool is_dir() const noexcept { return S_ISDIR(mode); }
  bool is_symlink() const noexcept { return S_ISLNK(mode); }
  // Everything the kernel returned.
  struct statx raw {};

  static Metadata from_statx(const struct statx& stx) noexcept;
};

class File;

// A builder for opening files, like Rust's std::fs::OpenOptions:
//
//   auto f = co_await fs::File::options().append().create().open(path);
//
// Access: read, write (append implies write). Creation (needs write or
// append): create (O_CREAT), create_new (O_CREAT|O_EXCL, EEXIST if it
// exists; overrides create and truncate), truncate (O_TRUNC; not with
// append). An invalid combination fails with EINVAL (and the path).
class OpenOptions {
 public:
  OpenOptions& read(bool v = true) noexcept {
    read_ = v;
    return *this;
  }
  OpenOptions& write(bool v = true) noexcept {
    write_ = v;
    return *this;
  }
  OpenOptions& append(bool v = true) noexcept {
    append_ = v;
    return *this;
  }
  OpenOptions& truncate(bool v = true) noexcept {
    truncate_ = v;
    return *this;
  }
  OpenOptions& create(bool v = true) noexcept {
    create_ = v;
    return *this;
  }
  OpenOptions& create_new(bool v = true) noexcept {
    create_new_ = v;
    return *this;
  }
  // Permission bits of a created file (before the umask); 0666 by default.
  OpenOptions& mode(mode_t m) noexcept {
    mode_ = m;
    return *this;
  }
  // O_DIRECT: transfers bypass the page cache; buffers, offsets and lengths
  // must be aligned (AlignedBuffer). Some file systems (tmpfs) refuse it.
  OpenOptions& direct(bool v = true) noexcept {
    direct_ = v;
    return *this;
  }
  // Extra open(2) flags, ORed in (the access-mode bits are ignored).
  OpenOptions& custom_flags(int flags) noexcept {
    custom_ = flags;
    return *this;
  }

  // The open(2) flags these options produce (O_CLOEXEC is always added by
  // the open itself), or -1 for an invalid combination.
  int flags() const noexcept;
  mode_t creation_mode() const noexcept { return mode_; }

  // Opens `path`. The options are copied: the returned task does not refer
  // to this object.
  Task<Result<File>> open(std::string path) const;

 private:
  bool read_ = false;
  bool write_ = false;
  bool append_ = false;
  bool truncate_ = false;
  bool create_ = false;
  bool create_new_ = false;
  bool direct_ = false;
  mode_t mode_ = 0666;
  int custom_ = 0;
};

namespace internal {

// Awaits one op that carries a buffer and turns its shardio::IoResult into an
// fs::IoResult, copying the path into the error only on failure. Wraps
// submit()'s awaiter directly: no extra coroutine frame.
template <class Op, class B>
class [[nodiscard]] IoAwaiter {
 public:
  IoAwaiter(Op&& op, const std::string* path, const char* what)
      : inner_(shardio::submit(std::move(op))), path_(path), what_(what) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { inner_.await_suspend(h); }
  IoResult<B> await_resume() {
    shardio::IoResult<B> r = inner_.await_resume();
    if (r.res.has_value()) {
      return IoResult<B>{std::size_t{*r.res}, std::move(r.buf)};
    }
    return IoResult<B>{Error{r.res.error(), *path_, what_}, std::move(r.buf)};
  }

 private:
  decltype(shardio::submit(std::declval<Op>())) inner_;
  const std::string* path_;
  const char* what_;
};

// A read or write of bytes [pos, pos + len) of an owned buffer (the rest of a
// buffer after a short transfer). Same shape as shardio::Read/Write.
template <OwnedBuffer B, bool kWrite>
struct RangeIo {
  static constexpr uint8_t kOpcode = kWrite ? IORING_OP_WRITE : IORING_OP_READ;
  RangeIo(Fd fd, B buf, std::size_t pos, std::size_t len, uint64_t offset)
      : fd(fd), buf(std::move(buf)), pos(pos), len(len), offset(offset) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    if constexpr (kWrite) {
      io_uring_prep_write(&sqe, fd.value,
                          reinterpret_cast<const char*>(std::data(buf)) + pos,
                          io_len(len), offset);
    } else {
      io_uring_prep_read(&sqe, fd.value,
                         reinterpret_cast<char*>(std::data(buf)) + pos,
                         io_len(len), offset);
    }
    fd.apply(sqe);
  }
  shardio::IoResult<B> complete(const io_uring_cqe& cqe) {
    return shardio::IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }

  Fd fd;
  B buf;
  std::size_t pos;
  std::size_t len;
  uint64_t offset;
};

// A one-shot poll: read_exact_at/write_all_at wait with it before trying
// again after EAGAIN (a non-blocking pipe or socket).
struct PollFd {
  static constexpr uint8_t kOpcode = IORING_OP_POLL_ADD;
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_poll_add(&sqe, fd.value, events);
    fd.apply(sqe);
  }
  void complete(const io_uring_cqe&) noexcept {}
  Fd fd;
  unsigned events;
};

inline uint64_t advance(uint64_t offset, std::size_t n) noexcept {
  return offset == kCurrentPosition ? offset : offset + n;
}

}  // namespace internal

class File {
 public:
  // Opens `path` read-only.
  static Task<Result<File>> open(std::string path);
  // Opens `path` for writing, creating it (mode 0666 & ~umask) or
  // truncating it.
  static Task<Result<File>> create(std::string path);
  static OpenOptions options() noexcept { return OpenOptions(); }
  // Takes ownership of an open fd; `path` is used in error messages.
  static File from_raw_fd(int fd, std::string path = {}) noexcept;

  File() = default;
  File(File&& o) noexcept;
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  // Closes the fd without blocking a shard: on a shard by a detached
  // IORING_OP_CLOSE (and the fixed slot, if any, is unregistered); off a
  // shard by close(2).
  ~File();

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  // Gives up ownership of the fd (unregistering a fixed slot); the File is
  // then closed and the caller must close the fd.
  int release() noexcept;

  // Registers the fd in the calling shard's fixed-file table; later I/O of
  // this File on this shard uses the slot (IOSQE_FIXED_FILE). The slot is
  // released by close() or the destructor.
  Result<void> register_fixed();
  bool is_fixed() const noexcept { return slot_ >= 0; }

  // One read of up to size(buf) bytes at `offset` (kCurrentPosition: at the
  // file position). Yields IoResult<B>: the count (0 at end of file; may be
  // short) and the buffer. Awaitable; await it once.
  template <OwnedBuffer B>
  auto read_at(B buf, uint64_t offset) {
    return internal::IoAwaiter<Read<B>, B>(
        Read<B>(io_fd(), std::move(buf), offset), &path_, "read");
  }
  // One write of up to size(buf) bytes at `offset` (ignored under O_APPEND:
  // the data goes to the end). May be short.
  template <OwnedBuffer B>
  auto write_at(B buf, uint64_t offset) {
    return internal::IoAwaiter<Write<B>, B>(
        Write<B>(io_fd(), std::move(buf), offset), &path_, "write");
  }
  // As read_at/write_at with a registered buffer (IORING_OP_READ_FIXED /
  // WRITE_FIXED), size() bytes of it.
  template <RegisteredBuffer H>
  auto read_fixed_at(H buf, uint64_t offset) {
    return internal::IoAwaiter<ReadFixed<H>, H>(
        ReadFixed<H>(io_fd(), std::move(buf), offset), &path_, "read");
  }
  template <RegisteredBuffer H>
  auto write_fixed_at(H buf, uint64_t offset) {
    return internal::IoAwaiter<WriteFixed<H>, H>(
        WriteFixed<H>(io_fd(), std::move(buf), offset), &path_, "write");
  }

  // Reads until `buf` is full, looping over short reads (and trying again
  // after EINTR and EAGAIN). On success res is
  // size(buf). If the file ends first, res is the error ENODATA ("unexpected
  // end of file") and the bytes read so far are in the buffer; on any other
  // error res is that error. The count of bytes read before an error is not
  // reported.
  template <OwnedBuffer B>
  Task<IoResult<B>> read_exact_at(B buf, uint64_t offset);
  // Writes all of `buf`, looping over short writes (and trying again after
  // EINTR and EAGAIN). A write that makes no progress fails with EIO.
  template <OwnedBuffer B>
  Task<IoResult<B>> write_all_at(B buf, uint64_t offset);

  // statx(2) of the open file (AT_EMPTY_PATH on the fd).
  Task<Result<uint64_t>> size();
  Task<Result<Metadata>> metadata();
  // fsync(2) / fdatasync(2).
  Task<Result<void>> sync_all();
  Task<Result<void>> sync_data();
  // fallocate(2) with mode 0: reserves [offset, offset + len).
  Task<Result<void>> allocate(uint64_t offset, uint64_t len);

  // Closes the file (IORING_OP_CLOSE) and reports the result. Afterwards the
  // File is closed, even if the close failed; closing it again fails with
  // EBADF.
  Task<Result<void>> close();

 private:
  File(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}

  // The fd to put in an SQE: the fixed slot on the shard that registered it.
  Fd io_fd() const noexcept {
    if (slot_ < 0) return Fd(fd_);
    return fixed_fd();
  }
  Fd fixed_fd() const noexcept;
  // Closes what this File holds without blocking (see ~File).
  void drop() noexcept;
  Error error(std::error_code ec, const char* op) const {
    return Error{ec, path_, op};
  }

  int fd_ = -1;
  int slot_ = -1;            // fixed-file slot, or -1
  unsigned slot_shard_ = 0;  // the shard whose table holds slot_
  std::string path_;
};

// Opens `path` with open(2) flags and a creation mode (O_CLOEXEC is added).
Task<Result<File>> open_with_flags(std::string path, int flags,
                                   mode_t mode = 0666);

// The whole file. Sizes it with statx (in the same loop turn as the open),
// then reads it in 1 MiB chunks, many per batch, and keeps reading until a
// read returns 0, so files that grow or shrink meanwhile come out as read.
Task<Result<std::vector<std::byte>>> read(std::string path);
Task<Result<std::string>> read_to_string(std::string path);
// Creates or truncates `path` and writes all of `data` into it.
template <OwnedBuffer B>
Task<Result<void>> write(std::string path, B data);

// The path in an Error is the one operated on: `from` for rename and
// hard_link, `link` for symlink.
Task<Result<void>> remove_file(std::string path);
Task<Result<void>> remove_dir(std::string path);
Task<Result<void>> rename(std::string from, std::string to);
Task<Result<void>> create_dir(std::string path, mode_t mode = 0755);
// A hard link `to` for the existing file `from`.
Task<Result<void>> hard_link(std::string from, std::string to);
// A symbolic link at `link` whose contents are `target`.
Task<Result<void>> symlink(std::string target, std::string link);
// statx(2), following symlinks...
Task<Result<Metadata>> metadata(std::string path);
// ...or not (is_symlink() can then be true).
Task<Result<Metadata>> symlink_metadata(std::string path);

// ---------------------------------------------------------------------------
// Templates.

template <OwnedBuffer B>
Task<IoResult<B>> File::read_exact_at(B buf, uint64_t offset) {
  const std::size_t total = std::size(buf);
  std::optional<B> held(std::move(buf));
  std::size_t done = 0;
  while (done < total) {
    internal::RangeIo<B, false> op(io_fd(), std::move(*held), done,
                                   total - done,
                                   internal::advance(offset, done));
    shardio::IoResult<B> r = co_await shardio::submit(std::move(op));
    held.emplace(std::move(r.buf));
    if (!r.res.has_value()) {
      // EINTR, EAGAIN: nothing was read; try again (EAGAIN once readable).
      if (r.res.error() == std::errc::interrupted) continue;
      if (r.res.error() == std::errc::resource_unavailable_try_again) {
        internal::PollFd poll{io_fd(), POLLIN};
        co_await shardio::submit(std::move(poll));
        continue;
      }
      co_return IoResult<B>{error(r.res.error(), "read"), std::move(*held)};
    }
    if (*r.res == 0) {
      co_return IoResult<B>{
          Error{errno_code(ENODATA), path_, "read", "unexpected end of file"},
          std::move(*held)};
    }
    done += *r.res;
  }
  co_return IoResult<B>{total, std::move(*held)};
}

template <OwnedBuffer B>
Task<IoResult<B>> File::write_all_at(B buf, uint64_t offset) {
  const std::size_t total = std::size(buf);
  std::optional<B> held(std::move(buf));
  std::size_t done = 0;
  while (done < total) {
    internal::RangeIo<B, true> op(io_fd(), std::move(*held), done, total - done,
                                  internal::advance(offset, done));
    shardio::IoResult<B> r = co_await shardio::submit(std::move(op));
    held.emplace(std::move(r.buf));
    if (!r.res.has_value()) {
      // EINTR, EAGAIN: nothing was written; try again (EAGAIN once
      // writable).
      if (r.res.error() == std::errc::interrupted) continue;
      if (r.res.error() == std::errc::resource_unavailable_try_again) {
        internal::PollFd poll{io_fd(), POLLOUT};
        co_await shardio::submit(std::move(poll));
        continue;
      }
      co_return IoResult<B>{error(r.res.error(), "write"), std::move(*held)};
    }
    if (*r.res == 0) {
      co_return IoResult<B>{
          Error{errno_code(EIO), path_, "write", "write made no progress"},
          std::move(*held)};
    }
    done += *r.res;
  }
  co_return IoResult<B>{total, std::move(*held)};
}

template <OwnedBuffer B>
Task<Result<void>> write(std::string path, B data) {
  Result<File> f = co_await File::create(std::move(path));
  if (!f.has_value()) co_return f.error();
  IoResult<B> w = co_await f->write_all_at(std::move(data), 0);
  if (!w.res.has_value()) co_return w.res.error();
  co_return co_await f->close();
}

}  // namespace shardio::fs
