// copy: copies a file with linked read -> write chains, several in flight.
//
// The file is cut into chunks. Each of `--inflight` workers (tasks on one
// shard) takes the next chunk and submits it as one chain:
//
//   shardio::chain(Read(src, chunk, off), Write(dst, chunk, off))
//
// IOSQE_IO_LINK starts the write only after the read succeeded, so a chunk
// costs one submission and one wake-up. Both ops share the chunk's buffer
// (a reference-counted Chunk), which stays alive until both have completed.
//
// A short read (the file shrank while we copied) breaks the link: the write
// completes with ECANCELED, and the worker writes the bytes it did read with
// a separate write. Short writes are finished the same way. The copy covers
// the size the source had when it was opened.
//
// Usage: copy SRC DST [--chunk BYTES] [--inflight N]
//        (defaults: 256 KiB chunks, 8 in flight)
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "shardio/shardio.h"

namespace {

namespace fs = shardio::fs;

// One buffer, shared by the read and the write of a chain: both ops own a
// reference, so the memory outlives whichever completes last.
struct Chunk {
  std::shared_ptr<std::vector<std::byte>> mem;
  std::size_t offset = 0;  // where in mem this view starts
  std::size_t len = 0;     // how many bytes the op moves
  std::byte* data() const noexcept { return mem->data() + offset; }
  std::size_t size() const noexcept { return len; }
};
static_assert(shardio::OwnedBuffer<Chunk>);

// What the workers share (they all run on one shard: no atomics needed).
struct Job {
  const fs::File& src;
  const fs::File& dst;
  uint64_t size;      // bytes to copy
  std::size_t chunk;  // bytes per chain
  uint64_t next = 0;  // the next offset to hand out
  fs::Error error{};  // the first error
  bool failed = false;
};

void fail(Job& job, std::error_code ec, const char* op, const fs::File& f) {
  if (job.failed) return;
  job.failed = true;
  job.error = fs::Error{ec, f.path(), op};
}

// Writes mem[0, len) to dst at `off`, going on after short writes.
shardio::Task<bool> write_rest(Job& job, Chunk c, uint64_t off,
                               std::size_t done) {
  while (done < c.len) {
    Chunk rest{c.mem, done, c.len - done};
    shardio::Write<Chunk> op(job.dst.fd(), rest, off + done);
    auto [n, buf] = co_await shardio::submit(std::move(op));
    if (!n || *n == 0) {
      fail(job, n ? shardio::errno_code(EIO) : n.error(), "write", job.dst);
      co_return false;
    }
    done += *n;
  }
  co_return true;
}

shardio::Task<void> worker(Job& job) {
  auto mem = std::make_shared<std::vector<std::byte>>(job.chunk);
  while (!job.failed && job.next < job.size) {
    const uint64_t off = job.next;
    const std::size_t len =
        static_cast<std::size_t>(std::min<uint64_t>(job.chunk, job.size - off));
    job.next += len;

    Chunk view{mem, 0, len};
    shardio::Read<Chunk> rd(job.src.fd(), view, off);
    shardio::Write<Chunk> wr(job.dst.fd(), view, off);
    auto [r, w] = co_await shardio::chain(std::move(rd), std::move(wr));
    if (!r.res) {
      fail(job, r.res.error(), "read", job.src);
      co_return;
    }
    if (w.res && *w.res == len) continue;  // the usual case
    // The chain was broken by a short read (ECANCELED), or the write was
    // short: write what was read and not yet written.
    const std::size_t read = *r.res;
    const std::size_t written = w.res ? *w.res : 0;
    if (!w.res && w.res.error() != shardio::errno_code(ECANCELED)) {
      fail(job, w.res.error(), "write", job.dst);
      co_return;
    }
    Chunk got{mem, 0, read};
    const bool ok = co_await write_rest(job, got, off, written);
    if (!ok) co_return;
    if (read < len) {
      // The source ended early: copy no further than it goes.
      if (job.size > off + read) job.size = off + read;
    }
  }
}

shardio::Task<int> copy(std::string from, std::string to, std::size_t chunk,
                        unsigned inflight) {
  auto src = co_await fs::File::open(from);
  if (!src) {
    std::fprintf(stderr, "copy: %s\n", src.error().message().c_str());
    co_return 1;
  }
  auto size = co_await src->size();
  if (!size) {
    std::fprintf(stderr, "copy: %s\n", size.error().message().c_str());
    co_return 1;
  }
  auto dst = co_await fs::File::create(to);
  if (!dst) {
    std::fprintf(stderr, "copy: %s\n", dst.error().message().c_str());
    co_return 1;
  }

  Job job{*src, *dst, *size, chunk};
  std::vector<shardio::JoinHandle<void>> workers;
  for (unsigned i = 0; i < inflight; ++i) {
    workers.push_back(shardio::spawn(worker(job)));
  }
  for (auto& w : workers) co_await w;
  if (job.failed) {
    std::fprintf(stderr, "copy: %s\n", job.error.message().c_str());
    co_return 1;
  }
  auto closed = co_await dst->close();  // reports a failed final flush
  if (!closed) {
    std::fprintf(stderr, "copy: %s\n", closed.error().message().c_str());
    co_return 1;
  }
  std::printf("copied %llu bytes in %llu chunks of %zu, %u in flight\n",
              static_cast<unsigned long long>(job.size),
              static_cast<unsigned long long>((job.size + chunk - 1) / chunk),
              chunk, inflight);
  co_return 0;
}

int usage() {
  std::fprintf(stderr, "usage: copy SRC DST [--chunk BYTES] [--inflight N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  std::size_t chunk = 256 * 1024;
  unsigned inflight = 8;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) {
      chunk = std::strtoull(argv[++i], nullptr, 10);
      if (chunk == 0 || chunk > shardio::kMaxIoChunk) return usage();
    } else if (std::strcmp(argv[i], "--inflight") == 0 && i + 1 < argc) {
      inflight = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
      if (inflight == 0 || inflight > 4096) return usage();
    } else if (argv[i][0] != '-') {
      paths.emplace_back(argv[i]);
    } else {
      return usage();
    }
  }
  if (paths.size() != 2) return usage();
  shardio::Runtime rt(shardio::RuntimeOptions{.shards = 1});
  return rt.block_on(
      copy(std::move(paths[0]), std::move(paths[1]), chunk, inflight));
}
