// echo_client: drives echo_server (or file_server) and checks every byte.
//
// Echo mode: --connections connections, each sending --messages messages of
// --size bytes, --depth of them per round (one send carrying `depth`
// messages, then the echo of all of them is read back and compared). Every
// byte depends on its connection and its position in the stream, so a
// dropped, duplicated, reordered or foreign byte is caught. At the end each
// connection shuts down its sending side and expects the server to close
// (EOF) without sending anything more.
//
// File mode (--expect-file PATH): each connection reads until the server
// closes and compares what came with the file's contents.
//
// All connections run at once, as tasks on one shard. Any mismatch, error or
// a run longer than --timeout seconds ends the client with a message and
// exit status 1 (2 for bad flags).
//
// Usage: echo_client --addr HOST:PORT [--connections 1] [--messages 100]
//                    [--size 64] [--depth 1] [--timeout 60]
//        echo_client --addr HOST:PORT --expect-file PATH [--connections 1]
// HOST is numeric, or a name resolved with getaddrinfo (the first address
// it yields is used).
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "shardio/shardio.h"

ABSL_FLAG(std::string, addr, "", "server address, HOST:PORT (required)");
ABSL_FLAG(int, connections, 1, "connections, all open at once");
ABSL_FLAG(int, messages, 100, "messages per connection");
ABSL_FLAG(int, size, 64, "bytes per message");
ABSL_FLAG(int, depth, 1,
          "messages sent together before their echo is read (1: ping-pong)");
ABSL_FLAG(std::string, expect_file, "",
          "download mode: read until the server closes and compare with "
          "this file");
ABSL_FLAG(double, timeout, 60, "give up after this many seconds");

namespace {

namespace fs = shardio::fs;
namespace net = shardio::net;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::byte>;

struct Config {
  net::SocketAddress addr;
  int connections = 1;
  int messages = 100;
  int size = 64;
  int depth = 1;
};

// The byte at position `pos` of connection `conn`'s stream.
std::byte pattern(uint64_t conn, uint64_t pos) {
  const uint64_t x =
      (pos + 1) * 0x9E3779B97F4A7C15ULL ^ (conn + 1) * 0xBF58476D1CE4E5B9ULL;
  return static_cast<std::byte>(x >> 56);
}

// What the connections share (one shard: no atomics).
struct Run {
  int failures = 0;
  uint64_t bytes = 0;
  int done = 0;
};

void fail(Run& run, int conn, const std::string& what) {
  if (run.failures++ < 10) {
    std::fprintf(stderr, "echo_client: connection %d: %s\n", conn,
                 what.c_str());
  }
}

// Describes the first difference between what came and what was expected.
std::string mismatch(const Bytes& got, const std::byte* want, std::size_t n,
                     uint64_t base, int size) {
  std::size_t i = 0;
  while (i < n && got[i] == want[i]) ++i;
  const uint64_t pos = base + i;
  char text[160];
  std::snprintf(text, sizeof(text),
                "echo differs at byte %llu (message %llu, offset %llu): sent "
                "0x%02x, got 0x%02x",
                static_cast<unsigned long long>(pos),
                static_cast<unsigned long long>(pos / size),
                static_cast<unsigned long long>(pos % size),
                static_cast<unsigned>(want[i]), static_cast<unsigned>(got[i]));
  return text;
}

// After the last message: half-close and expect the server's EOF.
shardio::Task<bool> expect_close(net::TcpStream& s, Run& run, int conn) {
  auto shut = co_await s.shutdown(SHUT_WR);
  if (!shut) {
    fail(run, conn, shut.error().message());
    co_return false;
  }
  Bytes buf(4096);
  auto r = co_await s.recv(std::move(buf));
  const auto& n = r.res;
  if (!n) {
    fail(run, conn, n.error().message());
    co_return false;
  }
  if (*n != 0) {
    fail(run, conn,
         "the server sent " + std::to_string(*n) +
             " bytes more than it was sent, after the half-close");
    co_return false;
  }
  co_return true;
}

shardio::Task<void> echo_connection(const Config& cfg, Run& run, int conn) {
  auto s = co_await net::TcpStream::connect(cfg.addr, std::chrono::seconds(10));
  if (!s) {
    fail(run, conn, s.error().message());
    co_return;
  }
  const std::size_t size = static_cast<std::size_t>(cfg.size);
  Bytes out(size * cfg.depth);
  Bytes in(size * cfg.depth);
  uint64_t pos = 0;  // bytes sent (and checked) so far
  for (int sent = 0; sent < cfg.messages;) {
    const int k = std::min(cfg.depth, cfg.messages - sent);
    const std::size_t n = size * k;
    out.resize(n);
    in.resize(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = pattern(conn, pos + i);
    auto w = co_await s->send_all(std::move(out));
    out = std::move(w.buf);
    if (!w.res) {
      fail(run, conn, w.res.error().message());
      co_return;
    }
    auto r = co_await s->recv_exact(std::move(in));
    in = std::move(r.buf);
    if (!r.res) {
      fail(run, conn,
           r.res.error().message() + " after " + std::to_string(pos) +
               " bytes echoed");
      co_return;
    }
    if (std::memcmp(in.data(), out.data(), n) != 0) {
      fail(run, conn, mismatch(in, out.data(), n, pos, cfg.size));
      co_return;
    }
    pos += n;
    sent += k;
  }
  if (!co_await expect_close(*s, run, conn)) co_return;
  run.bytes += pos;
  ++run.done;
}

shardio::Task<void> file_connection(const Config& cfg, const Bytes& want,
                                    Run& run, int conn) {
  auto s = co_await net::TcpStream::connect(cfg.addr, std::chrono::seconds(10));
  if (!s) {
    fail(run, conn, s.error().message());
    co_return;
  }
  Bytes buf(64 * 1024);
  std::size_t pos = 0;
  for (;;) {
    buf.resize(64 * 1024);
    auto r = co_await s->recv(std::move(buf));
    buf = std::move(r.buf);
    if (!r.res) {
      fail(
          run, conn,
          r.res.error().message() + " after " + std::to_string(pos) + " bytes");
      co_return;
    }
    const std::size_t n = *r.res;
    if (n == 0) break;
    if (pos + n > want.size()) {
      fail(run, conn,
           "the server sent more than the file's " +
               std::to_string(want.size()) + " bytes");
      co_return;
    }
    if (std::memcmp(buf.data(), want.data() + pos, n) != 0) {
      std::size_t i = 0;
      while (buf[i] == want[pos + i]) ++i;
      fail(run, conn,
           "the download differs from the file at byte " +
               std::to_string(pos + i));
      co_return;
    }
    pos += n;
  }
  if (pos != want.size()) {
    fail(run, conn,
         "the server closed after " + std::to_string(pos) + " of the file's " +
             std::to_string(want.size()) + " bytes");
    co_return;
  }
  run.bytes += pos;
  ++run.done;
}

// Ends the process if the run takes too long (a server that stops
// answering must not hang the client).
shardio::Task<void> watchdog(double seconds, const Run& run, int total) {
  const auto limit = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
  (void)co_await shardio::sleep(limit);
  std::fprintf(stderr,
               "echo_client: timed out after %g s (%d of %d connections "
               "finished)\n",
               seconds, run.done, total);
  std::fflush(stderr);
  std::_Exit(1);
}

shardio::Task<int> client(Config cfg, std::string host, int port,
                          std::string expect_file, double timeout) {
  if (!host.empty()) {
    auto found = co_await net::resolve(host, port);
    if (!found) {
      std::fprintf(stderr, "echo_client: %s\n",
                   found.error().message().c_str());
      co_return 1;
    }
    cfg.addr = found->front();
  }
  Bytes want;
  if (!expect_file.empty()) {
    auto data = co_await fs::read(expect_file);
    if (!data) {
      std::fprintf(stderr, "echo_client: %s\n", data.error().message().c_str());
      co_return 1;
    }
    want = std::move(*data);
  }
  Run run;
  auto dog = shardio::spawn(watchdog(timeout, run, cfg.connections));
  const auto start = Clock::now();
  std::vector<shardio::JoinHandle<void>> conns;
  conns.reserve(cfg.connections);
  for (int i = 0; i < cfg.connections; ++i) {
    if (expect_file.empty()) {
      conns.push_back(shardio::spawn(echo_connection(cfg, run, i)));
    } else {
      conns.push_back(shardio::spawn(file_connection(cfg, want, run, i)));
    }
  }
  for (auto& c : conns) co_await c;
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  if (run.failures > 0) {
    std::fprintf(stderr, "echo_client: FAILED: %d of %d connections failed\n",
                 run.failures, cfg.connections);
    co_return 1;
  }
  if (expect_file.empty()) {
    const double msgs = static_cast<double>(cfg.messages) * cfg.connections;
    std::printf(
        "echo_client: %d connections x %d messages x %d bytes (depth %d): "
        "%llu bytes echoed and verified in %.3f s (%.0f messages/s)\n",
        cfg.connections, cfg.messages, cfg.size, cfg.depth,
        static_cast<unsigned long long>(run.bytes), secs, msgs / secs);
  } else {
    std::printf(
        "echo_client: %d connections each downloaded %zu bytes, identical to "
        "%s, in %.3f s (%.1f MB/s in all)\n",
        cfg.connections, want.size(), expect_file.c_str(), secs,
        static_cast<double>(run.bytes) / secs / 1e6);
  }
  co_return 0;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "echo_client: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sends messages to an echo server and checks the echo byte for byte, "
      "or (--expect-file) checks a file_server download");
  // Flags may be spelled with dashes (--expect-file) or, as Abseil names
  // them, underscores (--expect_file).
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> argp;
  bool flags_end = false;
  for (std::string& a : args) {
    if (a == "--") flags_end = true;
    if (!flags_end && a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::replace(a.begin() + 2, a.begin() + std::min(a.find('='), a.size()),
                   '-', '_');
    }
    argp.push_back(a.data());
  }
  const std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(argp.size()), argp.data());
  if (rest.size() > 1) {
    return usage_error(std::string("unexpected argument ") + rest[1]);
  }
  Config cfg;
  const std::string addr_text = absl::GetFlag(FLAGS_addr);
  if (addr_text.empty()) return usage_error("--addr HOST:PORT is required");
  // A numeric address is used as it is; a name ("localhost:9000") is
  // resolved on the runtime (getaddrinfo on its blocking pool).
  std::string host;
  int port = -1;
  if (auto addr = net::SocketAddress::parse(addr_text)) {
    cfg.addr = *addr;
  } else {
    const std::size_t colon = addr_text.rfind(':');
    if (colon != std::string::npos && colon > 0) {
      host = addr_text.substr(0, colon);
      port = std::atoi(addr_text.c_str() + colon + 1);
    }
    if (port <= 0 || port > 65535) return usage_error(addr.error().message());
  }
  cfg.connections = absl::GetFlag(FLAGS_connections);
  cfg.messages = absl::GetFlag(FLAGS_messages);
  cfg.size = absl::GetFlag(FLAGS_size);
  cfg.depth = absl::GetFlag(FLAGS_depth);
  const double timeout = absl::GetFlag(FLAGS_timeout);
  if (cfg.connections < 1 || cfg.connections > 100000) {
    return usage_error("--connections must be 1..100000");
  }
  if (cfg.messages < 0) return usage_error("--messages must be >= 0");
  if (cfg.size < 1 || cfg.size > (1 << 24)) {
    return usage_error("--size must be 1..16777216");
  }
  if (cfg.depth < 1 || static_cast<int64_t>(cfg.depth) * cfg.size > (1 << 26)) {
    return usage_error("--depth must be >= 1, with depth x size <= 64 MiB");
  }
  if (!(timeout > 0)) return usage_error("--timeout must be > 0");

  try {
    shardio::Runtime rt(shardio::RuntimeOptions{.shards = 1});
    return rt.block_on(
        client(cfg, host, port, absl::GetFlag(FLAGS_expect_file), timeout));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return 1;
  }
}
