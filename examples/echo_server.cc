// echo_server: a TCP echo server, one shard per core.
//
// Every connection is served by one task on one shard:
//
//   auto chunks = stream.recv_multishot(ring);   // one arm, many receives
//   while (auto chunk = co_await chunks.next())  // a ProvidedBuffer each
//     co_await submit(Send(fd, std::move(buf)));  // back to the ring after
//
// A receive costs no SQE (the multishot recv stays armed) and no copy: the
// kernel picks a buffer of the shard's BufferRing when data arrives, the
// same buffer is sent back as it is, and it returns to the ring when the
// send completes. Several pipelined messages that arrive together are one
// buffer and one send. While a send is in flight the next receives queue up
// in the stream; a connection that lets more than kMaxQueued buffers pile up
// (its peer sends faster than it reads) has its receive cancelled until it
// has caught up, so that one slow reader cannot drain the ring that every
// connection of its shard shares. TCP flow control then holds the sender.
//
// Shards get connections in one of two ways:
//   --mode reuseport  every shard listens on the same port (SO_REUSEPORT)
//                     and the kernel spreads the connections;
//   --mode handoff    shard 0 accepts them all (multishot accept) and hands
//                     them round-robin to the shards, fd by message.
//
// A peer that shuts down its sending side has been echoed everything by
// then; its connection is closed. A reset or any other error closes the
// connection quietly. SIGINT or SIGTERM (read through a signalfd polled on
// shard 0's ring) stops the listeners, then the runtime, and exits 0.
//
// Usage: echo_server [--host 127.0.0.1] [--port 0] [--shards 1]
//                    [--mode reuseport|handoff] [--stats] [--prometheus]
//                    [--latency_histograms]
// --stats prints shardio::to_text(rt.stats()) on exit, --prometheus the same
// snapshot in the Prometheus text format; --latency_histograms turns on the
// runtime's loop-turn and op-latency histograms (see shardio/stats.h).
// Prints "listening on HOST:PORT" once every shard accepts connections
// (--port 0 picks a free port).
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
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "shardio/shardio.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "numeric address to listen on (IPv4 or IPv6)");
ABSL_FLAG(int, port, 0, "port to listen on; 0 picks a free one");
ABSL_FLAG(int, shards, 1, "number of shards (threads, rings)");
ABSL_FLAG(std::string, mode, "reuseport",
          "how shards get connections: reuseport (a listener per shard) or "
          "handoff (shard 0 accepts and hands them out)");
ABSL_FLAG(bool, stats, false, "print each shard's stats on exit");
ABSL_FLAG(bool, prometheus, false,
          "print each shard's stats on exit in the Prometheus text format");
ABSL_FLAG(bool, latency_histograms, false,
          "keep loop-turn and op-latency histograms (for --stats and "
          "--prometheus; costs two clock reads per op and per loop turn)");

namespace {

namespace net = shardio::net;
using namespace std::chrono_literals;

// Each shard's receive buffers: 1024 of 16 KiB (16 MiB of address space,
// mapped with MAP_NORESERVE: a page costs memory only once the kernel has
// written into it, so small messages touch one page per buffer). A buffer is
// out of the ring only from its receive until its echo has been sent, so 1024
// carry hundreds of busy connections; 16 KiB takes a bulk sender's data in
// few receives (and few sends) without wasting much on small messages.
constexpr unsigned kRingBuffers = 1024;
constexpr std::size_t kBufferSize = 16 * 1024;
// Received buffers a connection may hold before its receive is paused.
constexpr std::size_t kMaxQueued = 8;
// SQ entries per ring (the CQ has twice as many): every connection may post
// a receive and a send completion in the same turn.
constexpr unsigned kRingEntries = 1024;

enum class Mode { kReusePort, kHandoff };

// What each shard keeps for its connections. Created on the shard by
// start_shard(), dropped there by stop_shard(); connections hold their own
// reference to the ring.
struct ShardState {
  shardio::BufferRing ring;
  std::stop_source stop;  // ends this shard's accept loop
};
thread_local std::unique_ptr<ShardState> t_state;

// Serves one connection until its peer shuts down, resets or fails.
shardio::Task<void> serve(net::TcpStream stream, shardio::BufferRing ring) {
  (void)stream.set_nodelay(true);
  bool done = false;
  while (!done) {
    auto chunks = stream.recv_multishot(ring);
    bool paused = false;
    done = true;
    while (auto chunk = co_await chunks.next()) {
      if (!*chunk) {
        // The receive we cancelled ends with ECANCELED: arm a new one.
        done = !(paused && chunk->error().value() == ECANCELED);
        break;
      }
      shardio::ProvidedBuffer buf = std::move(**chunk);
      if (buf.empty()) break;  // the peer's EOF: everything is echoed
      // Send it all, then it goes back to the ring. Written out here rather
      // than with send_all(), which is a coroutine of its own: no frame is
      // created per message.
      bool sent = false;
      for (;;) {
        shardio::Send<shardio::ProvidedBuffer> op(stream.fd(), std::move(buf));
        auto r = co_await shardio::submit(std::move(op));
        if (!r.res) break;  // EPIPE, ECONNRESET: the peer is gone
        if (*r.res >= r.buf.size()) {
          sent = true;
          break;
        }
        buf = std::move(r.buf);
        buf.consume_front(*r.res);  // a short send: the rest
      }
      if (!sent) break;
      if (!paused && chunks.ready() >= kMaxQueued) {
        chunks.cancel();  // what is queued still comes out, then ECANCELED
        paused = true;
      }
    }
  }
  (void)co_await stream.close();
}

void start_connection(shardio::OwnedFd fd) {
  if (!t_state) return;  // the shard is stopping: the fd closes here
  shardio::spawn(serve(net::TcpStream(std::move(fd)), t_state->ring)).detach();
}

// Accepts connections until stopped; in handoff mode deals them out to the
// shards round-robin (this one included).
shardio::Task<void> accept_loop(net::TcpListener listener, Mode mode,
                                std::stop_token st) {
  const unsigned shards = shardio::shard_count();
  const unsigned self = shardio::this_shard::id();
  unsigned next = self;
  while (!st.stop_requested()) {
    auto conns = listener.accept(st);
    std::error_code ended;
    while (auto conn = co_await conns.next()) {
      if (!*conn) {
        ended = conn->error();
        break;
      }
      shardio::OwnedFd fd = std::move(**conn);
      if (mode == Mode::kHandoff) {
        const unsigned target = next;
        next = (next + 1) % shards;
        if (target != self) {
          // The fd travels inside the message, still owned: if the runtime
          // stops before the message runs, it is closed, not leaked.
          auto adopt = [fd = std::move(fd)]() mutable {
            start_connection(std::move(fd));
          };
          co_await shardio::post_to(target, std::move(adopt));
          continue;
        }
      }
      start_connection(std::move(fd));
    }
    if (st.stop_requested()) break;
    // The kernel ended the accept (EMFILE, ENFILE, ENOMEM, ...): say so,
    // give the process a moment to free descriptors, and accept again.
    std::fprintf(stderr, "echo_server: shard %u: accept: %s\n", self,
                 ended.message().c_str());
    (void)co_await shardio::sleep(10ms);
  }
}

// What start_shard() reports: an error message, or the port it listens on.
struct Started {
  std::string error;
  uint16_t port = 0;
};

// On each shard: the buffer ring, and a listener unless this is a handoff
// shard other than 0.
Started start_shard(net::SocketAddress addr, Mode mode) {
  const unsigned self = shardio::this_shard::id();
  auto ring = shardio::BufferRing::create(kRingBuffers, kBufferSize);
  if (!ring) {
    return {"shard " + std::to_string(self) +
            ": buffer ring: " + ring.error().message()};
  }
  auto state = std::make_unique<ShardState>();
  state->ring = std::move(*ring);
  Started out;
  if (mode == Mode::kReusePort || self == 0) {
    net::ListenOptions opts;
    opts.reuse_port = mode == Mode::kReusePort;
    auto listener = net::TcpListener::bind(addr, opts);
    if (!listener) return {listener.error().message()};
    auto local = listener->local_address();
    if (!local) return {local.error().message()};
    out.port = local->port();
    shardio::spawn(
        accept_loop(std::move(*listener), mode, state->stop.get_token()))
        .detach();
  }
  t_state = std::move(state);
  return out;
}

// On each shard: stops accepting and drops the shard's state. Connections
// still open end when the runtime stops.
void stop_shard() {
  if (t_state) t_state->stop.request_stop();
  t_state.reset();
}

// Waits on shard 0's ring for SIGINT or SIGTERM.
shardio::Task<int> wait_for_signal(int sigfd) {
  shardio::PollAdd poll(sigfd, POLLIN);
  auto r = co_await shardio::submit(std::move(poll));
  if (!r) {
    std::fprintf(stderr, "echo_server: poll signalfd: %s\n",
                 r.error().message().c_str());
    co_return 0;
  }
  signalfd_siginfo info{};
  if (::read(sigfd, &info, sizeof(info)) != sizeof(info)) co_return 0;
  co_return static_cast<int>(info.ssi_signo);
}

shardio::Task<int> run(net::SocketAddress addr, Mode mode, int sigfd) {
  const unsigned shards = shardio::shard_count();
  unsigned started = 0;
  std::string error;
  for (unsigned i = 0; i < shards && error.empty(); ++i) {
    auto start = [addr, mode] { return start_shard(addr, mode); };
    Started s = co_await shardio::submit_to(i, std::move(start));
    error = std::move(s.error);
    if (!error.empty()) break;
    ++started;
    if (i == 0) addr.set_port(s.port);  // the others bind the same port
  }
  if (error.empty()) {
    std::printf("listening on %s\n", addr.to_string().c_str());
    std::fflush(stdout);
    (void)co_await wait_for_signal(sigfd);
  } else {
    std::fprintf(stderr, "echo_server: %s\n", error.c_str());
  }
  for (unsigned i = 0; i < started; ++i) {
    auto stop = [] { stop_shard(); };
    co_await shardio::submit_to(i, std::move(stop));
  }
  co_return error.empty() ? 0 : 1;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "echo_server: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "a TCP echo server on shardio; prints \"listening on HOST:PORT\" and "
      "runs until SIGINT or SIGTERM");
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1)
    return usage_error(std::string("unexpected argument ") + rest[1]);
  const int port = absl::GetFlag(FLAGS_port);
  const int shards = absl::GetFlag(FLAGS_shards);
  const std::string mode_name = absl::GetFlag(FLAGS_mode);
  if (port < 0 || port > 65535) {
    return usage_error("--port must be 0..65535");
  }
  if (shards < 1 || shards > 1024) {
    return usage_error("--shards must be 1..1024");
  }
  Mode mode;
  if (mode_name == "reuseport") {
    mode = Mode::kReusePort;
  } else if (mode_name == "handoff") {
    mode = Mode::kHandoff;
  } else {
    return usage_error("--mode must be reuseport or handoff, not \"" +
                       mode_name + "\"");
  }
  auto addr =
      net::SocketAddress::from_host_port(absl::GetFlag(FLAGS_host), port);
  if (!addr) return usage_error(addr.error().message());

  // SIGINT and SIGTERM are blocked in every thread (the shards inherit the
  // mask) and read from a signalfd on shard 0's ring.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int sigfd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd < 0) {
    std::fprintf(stderr, "echo_server: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  try {
    shardio::Runtime rt(shardio::RuntimeOptions{
        .shards = static_cast<unsigned>(shards),
        .ring_entries = kRingEntries,
        .latency_histograms = absl::GetFlag(FLAGS_latency_histograms)});
    const int rc = rt.block_on(run(*addr, mode, sigfd));
    if (absl::GetFlag(FLAGS_stats) || absl::GetFlag(FLAGS_prometheus)) {
      const shardio::RuntimeStats stats = rt.stats();
      if (absl::GetFlag(FLAGS_stats)) {
        std::fputs(shardio::to_text(stats).c_str(), stdout);
      }
      if (absl::GetFlag(FLAGS_prometheus)) {
        std::fputs(shardio::to_prometheus(stats).c_str(), stdout);
      }
      std::fflush(stdout);
    }
    rt.stop();
    ::close(sigfd);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
