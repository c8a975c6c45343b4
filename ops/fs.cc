// shardio::fs — File, OpenOptions and the whole-file helpers (fs.h), written
// only against the public API: submit/batch, the ops in ops/, spawn and
// this_shard.
#include "shardio/fs.h"

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <span>

#include "shardio/batch.h"
#include "shardio/cross_shard.h"
#include "shardio/runtime.h"

namespace shardio::fs {
namespace {

// The calling shard's id, or nothing off a shard.
std::optional<unsigned> current_shard() noexcept {
  if (this_shard::identity() == 0) return std::nullopt;
  return this_shard::id();
}

// Owns an fd until a task takes it: a close task destroyed before it ran
// (e.g. by a runtime shutdown) still closes the fd, with close(2).
class FdCloser {
 public:
  explicit FdCloser(int fd) noexcept : fd_(fd) {}
  FdCloser(FdCloser&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FdCloser& operator=(FdCloser&&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  int take() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

struct UnregisterFile {
  unsigned slot;
  void operator()() const noexcept { (void)this_shard::unregister_file(slot); }
};

// The detached tail of ~File on a shard: releases a fixed slot owned by
// another shard (by message) and closes the fd on the ring.
Task<void> close_detached(FdCloser fd, int remote_slot, unsigned slot_shard) {
  if (remote_slot >= 0) {
    UnregisterFile unreg{static_cast<unsigned>(remote_slot)};
    co_await post_to(slot_shard, unreg);
  }
  Close op(fd.take());
  (void)co_await submit(std::move(op));
}

// A path with a NUL byte before its end is refused with EINVAL before the
// kernel sees it: the kernel would read it only up to the NUL, and so act
// on another file than the one named ("victim\0.bak" is "victim"). The
// ops refuse such a path too (prep_invalid), but without saying why.
constexpr const char* kNulInPath = "the path contains a NUL byte";
constexpr const char* kNulInNewPath = "the new path contains a NUL byte";
constexpr const char* kNulInTarget = "the target contains a NUL byte";

Error nul_in_path(std::string path, const char* op,
                  const char* detail = kNulInPath) {
  return Error{errno_code(EINVAL), std::move(path), op, detail};
}

Task<Result<Metadata>> statx_path(std::string path, int flags) {
  if (has_nul(path)) co_return nul_in_path(std::move(path), "statx");
  Statx op(AT_FDCWD, path, flags, STATX_BASIC_STATS);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return Error{r.error(), std::move(path), "statx"};
  co_return Metadata::from_statx(*r);
}

// `refused`: why the op is not submitted at all (a kNulIn* detail), or
// null.
template <class Op>
Task<Result<void>> path_op(Op op, const char* what, std::string path,
                           const char* refused) {
  if (refused != nullptr) co_return nul_in_path(std::move(path), what, refused);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return Error{r.error(), std::move(path), what};
  co_return Result<void>();
}

// --- Whole-file reads -------------------------------------------------------

constexpr std::size_t kReadChunk = std::size_t{1} << 20;  // one op
constexpr std::size_t kChunksPerBatch = 16;               // one loop turn
// Bytes read past the expected end, to see the end of the file in the same
// turn as the last data.
constexpr std::size_t kProbe = 64;
constexpr std::size_t kMinGrowth = 64 * 1024;
constexpr std::size_t kMaxGrowth = std::size_t{64} << 20;

// Reads bytes [pos, pos + len) of the file into the same bytes of a buffer
// shared by every op of the read (the task may be destroyed first: each op
// keeps the buffer alive until its CQE).
template <class C>
struct ReadSlice {
  static constexpr uint8_t kOpcode = IORING_OP_READ;
  ReadSlice(int fd, std::shared_ptr<C> buf, std::size_t pos, std::size_t len)
      : fd(fd), buf(std::move(buf)), pos(pos), len(len) {}

  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_read(&sqe, fd, buf->data() + pos, io_len(len), pos);
  }
  shardio::Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept {
    return result_from_res(cqe.res);
  }

  int fd;
  std::shared_ptr<C> buf;
  std::size_t pos;
  std::size_t len;
};

template <class C>
Task<Result<C>> read_whole(std::string path) {
  if (has_nul(path)) co_return nul_in_path(std::move(path), "open");
  OpenAt open_op(AT_FDCWD, path, O_RDONLY);
  auto opened = co_await submit(std::move(open_op));
  if (!opened.has_value()) {
    co_return Error{opened.error(), std::move(path), "open"};
  }
  File file = File::from_raw_fd(*opened, std::move(path));
  // Size the open fd with fstat(2): it only reads the in-memory inode, while
  // IORING_OP_STATX is always handed to a kernel worker thread (two context
  // switches, measured in bench/file_benchmark.cc). The size is a hint: if
  // the file changes meanwhile, the loop below copes.
  struct stat st {};
  const bool have_stat = ::fstat(file.fd(), &st) == 0;
  const std::size_t hint =
      have_stat && st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 0;
  // Parallel reads at different offsets only make sense for regular files;
  // a stream (FIFO, character device) is read one op at a time, in order.
  const bool regular = have_stat && S_ISREG(st.st_mode);
  const std::size_t chunks_per_batch = regular ? kChunksPerBatch : 1;

  auto buf = std::make_shared<C>();
  std::size_t cap = hint;  // where we expect the file to end
  buf->resize(cap + kProbe);
  std::size_t pos = 0;  // bytes read so far, all contiguous from 0
  std::vector<ReadSlice<C>> ops;
  for (;;) {
    // The window: up to chunks_per_batch chunks from pos; the last window
    // reaches kProbe bytes past cap, so a file of the expected size ends
    // (a read returning 0) in the same turn.
    const std::size_t end =
        std::min(pos + chunks_per_batch * kReadChunk, cap + kProbe);
    ops.clear();
    for (std::size_t at = pos; at < end; at += kReadChunk) {
      ops.emplace_back(file.fd(), buf, at, std::min(kReadChunk, end - at));
    }
    std::vector<shardio::Result<uint32_t>> results =
        co_await batch(std::span<ReadSlice<C>>(ops));
    bool eof = false;
    std::size_t at = pos;
    for (std::size_t i = 0; i < results.size(); ++i) {
      const std::size_t len = std::min(kReadChunk, end - at);
      if (!results[i].has_value()) {
        co_return Error{results[i].error(), file.path(), "read"};
      }
      const std::size_t n = *results[i];
      pos = at + n;
      if (n < len) {  // the end, or a short read: look again from pos
        eof = n == 0;
        break;
      }
      at += len;
    }
    if (eof) break;
    if (pos == cap + kProbe) {
      // The file is longer than it was: make room for more.
      cap = pos + std::clamp(pos, kMinGrowth, kMaxGrowth);
      buf->resize(cap + kProbe);
    }
  }
  buf->resize(pos);
  co_return std::move(*buf);
}

}  // namespace

// --- Error ------------------------------------------------------------------

namespace {
// "OP PATH", with a NUL byte in the path written as \0 (a message is text,
// and C code would stop reading it at the NUL).
std::string where(const Error& e) {
  std::string out;
  if (e.op != nullptr) {
    out += e.op;
    if (!e.path.empty()) out += ' ';
  }
  for (const char c : e.path) {
    if (c == '\0') {
      out += "\\0";
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

std::string Error::message() const {
  std::string out = where(*this);
  if (!out.empty()) out += ": ";
  out += detail != nullptr ? std::string(detail) : code.message();
  return out;
}

void throw_result_error(const Error& e) {
  // std::system_error's what() is "WHAT_ARG: code.message()": pass the
  // "OP PATH" part, or the whole message when it has its own detail.
  if (e.detail != nullptr) throw std::system_error(e.code, e.message());
  throw std::system_error(e.code, where(e));
}

Metadata Metadata::from_statx(const struct statx& stx) noexcept {
  Metadata m;
  m.size = stx.stx_size;
  m.mode = stx.stx_mode;
  m.blocks = stx.stx_blocks;
  m.block_size = stx.stx_blksize;
  m.modified.tv_sec = static_cast<time_t>(stx.stx_mtime.tv_sec);
  m.modified.tv_nsec = static_cast<long>(stx.stx_mtime.tv_nsec);
  m.raw = stx;
  return m;
}

// --- OpenOptions ------------------------------------------------------------

int OpenOptions::flags() const noexcept {
  int flags;
  if (append_) {
    flags = (read_ ? O_RDWR : O_WRONLY) | O_APPEND;
  } else if (read_ && write_) {
    flags = O_RDWR;
  } else if (write_) {
    flags = O_WRONLY;
  } else if (read_) {
    flags = O_RDONLY;
  } else {
    return -1;  // neither read nor write
  }
  const bool writable = write_ || append_;
  if (!writable && (truncate_ || create_ || create_new_)) return -1;
  if (append_ && truncate_ && !create_new_) return -1;
  if (create_new_) {
    flags |= O_CREAT | O_EXCL;
  } else {
    if (create_) flags |= O_CREAT;
    if (truncate_) flags |= O_TRUNC;
  }
  if (direct_) flags |= O_DIRECT;
  return flags | (custom_ & ~O_ACCMODE);
}

Task<Result<File>> OpenOptions::open(std::string path) const {
  const int f = flags();
  if (f < 0) {
    // Not a coroutine: the task must not refer to these options.
    return [](std::string path) -> Task<Result<File>> {
      co_return Error{errno_code(EINVAL), std::move(path), "open",
                      "invalid combination of open options"};
    }(std::move(path));
  }
  return open_with_flags(std::move(path), f, mode_);
}

Task<Result<File>> open_with_flags(std::string path, int flags, mode_t mode) {
  if (has_nul(path)) co_return nul_in_path(std::move(path), "open");
  OpenAt op(AT_FDCWD, path, flags, mode);
  auto fd = co_await submit(std::move(op));
  if (!fd.has_value()) co_return Error{fd.error(), std::move(path), "open"};
  co_return File::from_raw_fd(*fd, std::move(path));
}

// --- File -------------------------------------------------------------------

Task<Result<File>> File::open(std::string path) {
  return open_with_flags(std::move(path), O_RDONLY);
}

Task<Result<File>> File::create(std::string path) {
  return open_with_flags(std::move(path), O_WRONLY | O_CREAT | O_TRUNC);
}

File File::from_raw_fd(int fd, std::string path) noexcept {
  return File(fd, std::move(path));
}

File::File(File&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      slot_(std::exchange(o.slot_, -1)),
      slot_shard_(o.slot_shard_),
      path_(std::move(o.path_)) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    drop();
    fd_ = std::exchange(o.fd_, -1);
    slot_ = std::exchange(o.slot_, -1);
    slot_shard_ = o.slot_shard_;
    path_ = std::move(o.path_);
  }
  return *this;
}

File::~File() { drop(); }

void File::drop() noexcept {
  if (fd_ < 0) return;
  const int fd = std::exchange(fd_, -1);
  const int slot = std::exchange(slot_, -1);
  const std::optional<unsigned> here = current_shard();
  if (!here.has_value()) {
    // Off a shard: a plain close. A fixed slot (if any) keeps its file
    // reference until its shard's ring is closed.
    ::close(fd);
    return;
  }
  int remote_slot = -1;
  if (slot >= 0) {
    if (*here == slot_shard_) {
      (void)this_shard::unregister_file(static_cast<unsigned>(slot));
    } else {
      remote_slot = slot;
    }
  }
  try {
    spawn(close_detached(FdCloser(fd), remote_slot, slot_shard_)).detach();
  } catch (...) {
    // The FdCloser (an argument or in the destroyed frame) closed the fd.
  }
}

int File::release() noexcept {
  if (slot_ >= 0) {
    const std::optional<unsigned> here = current_shard();
    if (here.has_value() && *here == slot_shard_) {
      (void)this_shard::unregister_file(static_cast<unsigned>(slot_));
    }
    slot_ = -1;
  }
  return std::exchange(fd_, -1);
}

Result<void> File::register_fixed() {
  if (fd_ < 0) return error(errno_code(EBADF), "register");
  if (slot_ >= 0) return error(errno_code(EEXIST), "register");
  auto slot = this_shard::register_file(fd_);
  if (!slot.has_value()) return error(slot.error(), "register");
  slot_ = static_cast<int>(*slot);
  slot_shard_ = this_shard::id();
  return {};
}

Fd File::fixed_fd() const noexcept {
  const std::optional<unsigned> here = current_shard();
  if (here.has_value() && *here == slot_shard_) {
    return Fd::fixed(static_cast<unsigned>(slot_));
  }
  return Fd(fd_);
}

Task<Result<uint64_t>> File::size() {
  Statx op(fd_, "", AT_EMPTY_PATH, STATX_SIZE);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return error(r.error(), "statx");
  co_return uint64_t{r->stx_size};
}

Task<Result<Metadata>> File::metadata() {
  Statx op(fd_, "", AT_EMPTY_PATH, STATX_BASIC_STATS);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return error(r.error(), "statx");
  co_return Metadata::from_statx(*r);
}

Task<Result<void>> File::sync_all() {
  Fsync op(io_fd());
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return error(r.error(), "fsync");
  co_return Result<void>();
}

Task<Result<void>> File::sync_data() {
  Fsync op(io_fd(), /*datasync=*/true);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return error(r.error(), "fdatasync");
  co_return Result<void>();
}

Task<Result<void>> File::allocate(uint64_t offset, uint64_t len) {
  Fallocate op(io_fd(), 0, offset, len);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return error(r.error(), "fallocate");
  co_return Result<void>();
}

Task<Result<void>> File::close() {
  if (fd_ < 0) co_return error(errno_code(EBADF), "close");
  const int fd = std::exchange(fd_, -1);
  if (slot_ >= 0) {
    const unsigned slot = static_cast<unsigned>(std::exchange(slot_, -1));
    if (this_shard::id() == slot_shard_) {
      (void)this_shard::unregister_file(slot);
    } else {
      UnregisterFile unreg{slot};
      co_await post_to(slot_shard_, unreg);
    }
  }
  Close op(fd);
  auto r = co_await submit(std::move(op));
  if (!r.has_value()) co_return error(r.error(), "close");
  co_return Result<void>();
}

// --- Free functions
// -----------------------------------------------------------

Task<Result<std::vector<std::byte>>> read(std::string path) {
  return read_whole<std::vector<std::byte>>(std::move(path));
}

Task<Result<std::string>> read_to_string(std::string path) {
  return read_whole<std::string>(std::move(path));
}

Task<Result<void>> remove_file(std::string path) {
  const char* refused = has_nul(path) ? kNulInPath : nullptr;
  UnlinkAt op(AT_FDCWD, path, 0);
  return path_op(std::move(op), "remove", std::move(path), refused);
}

Task<Result<void>> remove_dir(std::string path) {
  const char* refused = has_nul(path) ? kNulInPath : nullptr;
  UnlinkAt op(AT_FDCWD, path, AT_REMOVEDIR);
  return path_op(std::move(op), "rmdir", std::move(path), refused);
}

Task<Result<void>> rename(std::string from, std::string to) {
  const char* refused = has_nul(from) ? kNulInPath
                        : has_nul(to) ? kNulInNewPath
                                      : nullptr;
  RenameAt op(AT_FDCWD, from, AT_FDCWD, std::move(to));
  return path_op(std::move(op), "rename", std::move(from), refused);
}

Task<Result<void>> create_dir(std::string path, mode_t mode) {
  const char* refused = has_nul(path) ? kNulInPath : nullptr;
  MkdirAt op(AT_FDCWD, path, mode);
  return path_op(std::move(op), "mkdir", std::move(path), refused);
}

Task<Result<void>> hard_link(std::string from, std::string to) {
  const char* refused = has_nul(from) ? kNulInPath
                        : has_nul(to) ? kNulInNewPath
                                      : nullptr;
  LinkAt op(AT_FDCWD, from, AT_FDCWD, std::move(to));
  return path_op(std::move(op), "link", std::move(from), refused);
}

Task<Result<void>> symlink(std::string target, std::string link) {
  const char* refused = has_nul(link)     ? kNulInPath
                        : has_nul(target) ? kNulInTarget
                                          : nullptr;
  SymlinkAt op(std::move(target), AT_FDCWD, link);
  return path_op(std::move(op), "symlink", std::move(link), refused);
}

Task<Result<Metadata>> metadata(std::string path) {
  return statx_path(std::move(path), 0);
}

Task<Result<Metadata>> symlink_metadata(std::string path) {
  return statx_path(std::move(path), AT_SYMLINK_NOFOLLOW);
}

}  // namespace shardio::fs
