// file_server: sends one file to every TCP client, then closes.
//
// Every shard listens on the same port (SO_REUSEPORT) and opens the file
// once; each connection is a task that streams the file in 16 KiB chunks,
// every read and send on the ring. Two buffers per connection keep the disk
// and the socket busy together: the send of one chunk and the read of the
// next go to the kernel as one batch() in the same io_uring_enter.
//
//   read 0 | send 0 + read 1 | send 1 + read 2 | ... | send n-1 + read (EOF)
//
// The file is read until a read returns 0, so a file that grows while it is
// sent is sent as read. At the end the server shuts down its sending side
// (the client sees EOF after the last byte) and waits briefly for the client
// to close before closing: closing a socket with unread input would reset
// the connection and could destroy the tail still in flight to the client.
//
// Usage: file_server --file PATH [--host 127.0.0.1] [--port 0] [--shards 1]
// Prints "listening on HOST:PORT"; runs until SIGINT or SIGTERM, then exits
// 0. A file that cannot be opened is an error (exit 2) naming it and why.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "shardio/shardio.h"

ABSL_FLAG(std::string, file, "", "the file to send to every client (required)");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "numeric address to listen on (IPv4 or IPv6)");
ABSL_FLAG(int, port, 0, "port to listen on; 0 picks a free one");
ABSL_FLAG(int, shards, 1, "number of shards (threads, rings)");

namespace {

namespace fs = shardio::fs;
namespace net = shardio::net;
using namespace std::chrono_literals;

constexpr std::size_t kChunk = 16 * 1024;
// How long a finished connection waits for its client to close.
constexpr auto kLinger = 2s;

// One chunk buffer: 16 KiB of memory, allocated once per connection, of
// which [off, off + len) is in use: what a read may fill, or what a send
// has still to send.
struct Chunk {
  std::unique_ptr<std::byte[]> mem;
  std::size_t off = 0;
  std::size_t len = 0;
  std::byte* data() noexcept { return mem.get() + off; }
  const std::byte* data() const noexcept { return mem.get() + off; }
  std::size_t size() const noexcept { return len; }
};
static_assert(shardio::OwnedBuffer<Chunk>);

Chunk make_chunk() { return Chunk{std::make_unique<std::byte[]>(kChunk)}; }

// What each shard keeps: the file (shared by its connections, which read it
// at explicit offsets) and the accept loop's stop.
struct ShardState {
  std::shared_ptr<fs::File> file;
  std::stop_source stop;
};
thread_local std::unique_ptr<ShardState> t_state;

// Sends the rest of `c` after a short send of `done` bytes; yields the
// buffer back, or nothing when the client went away.
shardio::Task<std::optional<Chunk>> send_rest(int fd, Chunk c,
                                              std::size_t done) {
  while (done < c.len) {
    c.off += done;
    c.len -= done;
    shardio::Send<Chunk> op(fd, std::move(c));
    auto r = co_await shardio::submit(std::move(op));
    c = std::move(r.buf);
    if (!r.res) co_return std::nullopt;
    done = *r.res;
  }
  c.off = 0;
  co_return std::move(c);
}

// Streams the file to one client.
shardio::Task<void> serve(net::TcpStream stream,
                          std::shared_ptr<fs::File> file) {
  const int fd = stream.fd();
  const int file_fd = file->fd();
  Chunk cur = make_chunk();
  Chunk next = make_chunk();
  uint64_t offset = 0;
  bool ok = true;  // false once a read or a send failed

  cur.len = kChunk;
  shardio::Read<Chunk> first(file_fd, std::move(cur), offset);
  auto r0 = co_await shardio::submit(std::move(first));
  cur = std::move(r0.buf);
  if (!r0.res) {
    std::fprintf(stderr, "file_server: read %s: %s\n", file->path().c_str(),
                 r0.res.error().message().c_str());
    ok = false;
  }
  cur.len = ok ? *r0.res : 0;
  offset += cur.len;

  while (ok && cur.len > 0) {
    // Send this chunk and read the next one in the same submission.
    next.len = kChunk;
    shardio::Send<Chunk> send(fd, std::move(cur));
    shardio::Read<Chunk> read(file_fd, std::move(next), offset);
    auto [sent, got] =
        co_await shardio::batch(std::move(send), std::move(read));
    cur = std::move(sent.buf);
    next = std::move(got.buf);
    if (!sent.res) {
      ok = false;  // the client went away
      break;
    }
    if (*sent.res < cur.len) {
      auto rest = co_await send_rest(fd, std::move(cur), *sent.res);
      if (!rest) {
        ok = false;
        break;
      }
      cur = std::move(*rest);
    }
    if (!got.res) {
      std::fprintf(stderr, "file_server: read %s: %s\n", file->path().c_str(),
                   got.res.error().message().c_str());
      ok = false;
      break;
    }
    next.len = *got.res;
    offset += next.len;
    std::swap(cur, next);
  }

  if (ok) {
    // All sent: EOF for the client, then wait (a little) for it to close.
    (void)co_await stream.shutdown(SHUT_WR);
    for (;;) {
      next.len = kChunk;
      shardio::Recv<Chunk> recv(fd, std::move(next));
      auto r = co_await shardio::with_timeout(std::move(recv), kLinger);
      next = std::move(r.buf);
      if (!r.res || *r.res == 0) break;  // closed, reset or timed out
    }
  }
  (void)co_await stream.close();
}

// Accepts connections until stopped.
shardio::Task<void> accept_loop(net::TcpListener listener,
                                std::shared_ptr<fs::File> file,
                                std::stop_token st) {
  while (!st.stop_requested()) {
    auto conns = listener.accept(st);
    std::error_code ended;
    while (auto conn = co_await conns.next()) {
      if (!*conn) {
        ended = conn->error();
        break;
      }
      shardio::spawn(serve(net::TcpStream(std::move(**conn)), file)).detach();
    }
    if (st.stop_requested()) break;
    // The kernel ended the accept (EMFILE, ...): say so, pause, go on.
    std::fprintf(stderr, "file_server: shard %u: accept: %s\n",
                 shardio::this_shard::id(), ended.message().c_str());
    (void)co_await shardio::sleep(10ms);
  }
}

struct Started {
  std::string error;
  int exit_code = 0;  // for an error: 2 when the file cannot be opened
  uint16_t port = 0;
};

// On each shard: opens the file, binds a listener and starts accepting.
shardio::Task<Started> start_shard(std::string path, net::SocketAddress addr) {
  auto file = co_await fs::File::open(path);
  if (!file) co_return Started{file.error().message(), 2};
  auto meta = co_await file->metadata();
  if (!meta) co_return Started{meta.error().message(), 2};
  if (meta->is_dir()) {
    fs::Error e{shardio::errno_code(EISDIR), path, "open"};
    co_return Started{e.message(), 2};  // "open PATH: Is a directory"
  }
  auto state = std::make_unique<ShardState>();
  state->file = std::make_shared<fs::File>(std::move(*file));
  net::ListenOptions opts;
  opts.reuse_port = true;
  auto listener = net::TcpListener::bind(addr, opts);
  if (!listener) co_return Started{listener.error().message(), 1};
  auto local = listener->local_address();
  if (!local) co_return Started{local.error().message(), 1};
  shardio::spawn(
      accept_loop(std::move(*listener), state->file, state->stop.get_token()))
      .detach();
  t_state = std::move(state);
  co_return Started{"", 0, local->port()};
}

void stop_shard() {
  if (t_state) t_state->stop.request_stop();
  t_state.reset();
}

shardio::Task<void> wait_for_signal(int sigfd) {
  shardio::PollAdd poll(sigfd, POLLIN);
  auto r = co_await shardio::submit(std::move(poll));
  if (!r) {
    std::fprintf(stderr, "file_server: poll signalfd: %s\n",
                 r.error().message().c_str());
    co_return;
  }
  signalfd_siginfo info{};
  // Consumes the signal; which one it was does not matter.
  if (::read(sigfd, &info, sizeof(info)) != sizeof(info)) co_return;
}

shardio::Task<int> run(std::string path, net::SocketAddress addr, int sigfd) {
  const unsigned shards = shardio::shard_count();
  unsigned started = 0;
  Started failed;
  for (unsigned i = 0; i < shards; ++i) {
    auto start = [path, addr] { return start_shard(path, addr); };
    Started s = co_await shardio::submit_to(i, std::move(start));
    if (!s.error.empty()) {
      failed = std::move(s);
      break;
    }
    ++started;
    if (i == 0) addr.set_port(s.port);
  }
  if (failed.error.empty()) {
    std::printf("listening on %s\n", addr.to_string().c_str());
    std::fflush(stdout);
    co_await wait_for_signal(sigfd);
  } else {
    std::fprintf(stderr, "file_server: %s\n", failed.error.c_str());
  }
  for (unsigned i = 0; i < started; ++i) {
    auto stop = [] { stop_shard(); };
    co_await shardio::submit_to(i, std::move(stop));
  }
  co_return failed.exit_code;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "file_server: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sends a file to every TCP client; prints \"listening on HOST:PORT\" "
      "and runs until SIGINT or SIGTERM");
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return usage_error(std::string("unexpected argument ") + rest[1]);
  }
  const std::string path = absl::GetFlag(FLAGS_file);
  const int port = absl::GetFlag(FLAGS_port);
  const int shards = absl::GetFlag(FLAGS_shards);
  if (path.empty()) return usage_error("--file PATH is required");
  if (port < 0 || port > 65535) return usage_error("--port must be 0..65535");
  if (shards < 1 || shards > 1024) {
    return usage_error("--shards must be 1..1024");
  }
  auto addr =
      net::SocketAddress::from_host_port(absl::GetFlag(FLAGS_host), port);
  if (!addr) return usage_error(addr.error().message());

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int sigfd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd < 0) {
    std::fprintf(stderr, "file_server: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  try {
    shardio::Runtime rt(
        shardio::RuntimeOptions{.shards = static_cast<unsigned>(shards)});
    const int rc = rt.block_on(run(path, *addr, sigfd));
    rt.stop();
    ::close(sigfd);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "file_server: %s\n", e.what());
    return 1;
  }
}
