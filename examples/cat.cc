// cat: prints a file to standard output with shardio.
//
// Reads the file in chunks with fs::File::read_at (each chunk's buffer goes
// into the read and comes back with the byte count) and writes each chunk to
// fd 1 with a shardio::Write op, going on after short writes. Errors name the
// operation and the path, e.g. "cat: open /x: No such file or directory",
// and exit with status 1.
//
// Usage: cat PATH [--chunk BYTES]   (default chunk: 64 KiB)
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shardio/shardio.h"

namespace {

// Writes all of `buf` to fd 1 at its current position and hands the buffer
// back (emptied) for the next chunk.
struct Written {
  shardio::Result<void> res;
  std::vector<std::byte> buf;
};
shardio::Task<Written> write_stdout(std::vector<std::byte> buf) {
  while (!buf.empty()) {
    shardio::Write<std::vector<std::byte>> op(STDOUT_FILENO, std::move(buf));
    auto [n, back] = co_await shardio::submit(std::move(op));
    buf = std::move(back);
    if (!n) co_return Written{n.error(), std::move(buf)};
    if (*n == 0) co_return Written{shardio::errno_code(EIO), std::move(buf)};
    buf.erase(buf.begin(), buf.begin() + *n);  // short write: the rest
  }
  co_return Written{shardio::Result<void>(), std::move(buf)};
}

shardio::Task<int> cat(std::string path, std::size_t chunk) {
  auto file = co_await shardio::fs::File::open(std::move(path));
  if (!file) {
    std::fprintf(stderr, "cat: %s\n", file.error().message().c_str());
    co_return 1;
  }
  std::vector<std::byte> buf(chunk);
  uint64_t offset = 0;
  for (;;) {
    auto [n, back] = co_await file->read_at(std::move(buf), offset);
    if (!n) {
      std::fprintf(stderr, "cat: %s\n", n.error().message().c_str());
      co_return 1;
    }
    if (*n == 0) break;  // end of file
    offset += *n;
    back.resize(*n);  // keeps the allocation
    Written w = co_await write_stdout(std::move(back));
    if (!w.res) {
      std::fprintf(stderr, "cat: write <stdout>: %s\n",
                   w.res.error().message().c_str());
      co_return 1;
    }
    buf = std::move(w.buf);
    buf.resize(chunk);  // the same allocation, for the next read
  }
  co_return 0;
}

int usage() {
  std::fprintf(stderr, "usage: cat PATH [--chunk BYTES]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  std::size_t chunk = 64 * 1024;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) {
      chunk = std::strtoull(argv[++i], nullptr, 10);
      if (chunk == 0) return usage();
    } else if (path.empty() && argv[i][0] != '-') {
      path = argv[i];
    } else {
      return usage();
    }
  }
  if (path.empty()) return usage();
  shardio::Runtime rt(shardio::RuntimeOptions{.shards = 1});
  return rt.block_on(cat(std::move(path), chunk));
}
