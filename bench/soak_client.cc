// bench/soak_client.cc — the client of the connection soak
// (bench/run_soak.sh): many idle connections to an echo server, a few of
// them busy, and the server's memory and descriptors watched throughout.
//
//   soak_client --addr 127.0.0.1:9000 --server_pid PID [--connections 10000]
//               [--seconds 60] [--active_fraction 0.01] [--interval_ms 100]
//               [--size 64] [--sources 1] [--max_pending 256]
//               [--format text|kv]
//
// Phases:
//   1. The server's RSS (VmRSS in /proc/PID/status) and open descriptors
//      (/proc/PID/fd) before anything connects: the baseline.
//   2. --connections non-blocking connects, at most --max_pending of them in
//      flight and at most 512 connected but not yet accepted by the server
//      (its descriptor count says how many it took), so that its listen
//      backlog never overflows. With --sources N > 1 the connections come
//      from 127.0.0.1 .. 127.0.0.N (IP_BIND_ADDRESS_NO_PORT), each with its
//      own ephemeral port range.
//   3. Once the server holds every connection (its descriptor count is the
//      baseline plus --connections) and its RSS has settled: the idle RSS,
//      and RSS per idle connection = (idle - baseline) / connections.
//   4. For --seconds, every --interval_ms each of the active connections
//      (--active_fraction of them, spread evenly) sends one --size-byte
//      message and checks the echo byte for byte; the other connections
//      must stay silent (an event on one is an error: the server closed
//      it). The server's RSS is sampled every second.
//   5. Every connection is closed; the server's descriptor count must come
//      back to the baseline. RSS is sampled once more.
//
// Exit status 0 only if every connection was made and accepted, every echo
// came back intact, no idle connection was closed, and the descriptors
// came back. --format kv prints one line of key=value pairs for scripts.
//
// One thread and epoll: cheap, and independent of the server's mechanism.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"

ABSL_FLAG(std::string, addr, "", "server address, IPv4 HOST:PORT");
ABSL_FLAG(int, server_pid, 0, "the server's pid (required)");
ABSL_FLAG(int, connections, 10000, "connections to open and hold");
ABSL_FLAG(double, seconds, 60, "how long to hold them, seconds");
ABSL_FLAG(double, active_fraction, 0.01,
          "fraction of the connections that send messages");
ABSL_FLAG(int, interval_ms, 100, "each active connection sends this often");
ABSL_FLAG(int, size, 64, "message size in bytes");
ABSL_FLAG(int, sources, 1,
          "connect from 127.0.0.1 .. 127.0.0.N (more ephemeral ports)");
ABSL_FLAG(int, max_pending, 256, "connects in flight at once");
ABSL_FLAG(std::string, format, "text", "output: text or kv");

namespace {

[[noreturn]] void Fail(const std::string& msg) {
  std::fflush(stdout);
  std::fprintf(stderr, "soak_client: %s\n", msg.c_str());
  std::exit(1);
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

// VmRSS of `pid` in KiB, or -1.
long RssKib(int pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Open descriptors of `pid`, or -1.
int FdCount(int pid) {
  DIR* d = opendir(absl::StrFormat("/proc/%d/fd", pid).c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

bool Alive(int pid) { return kill(pid, 0) == 0; }

// Byte i of message `seq` on connection `conn`.
uint8_t MessageByte(uint32_t conn, uint64_t seq, size_t i) {
  uint64_t x = (uint64_t{conn} << 32) ^ (seq * 0x9e3779b97f4a7c15ULL) ^ i;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 32;
  return static_cast<uint8_t>(x);
}

struct Conn {
  int fd = -1;
  bool connected = false;
  bool active = false;
  uint64_t seq = 0;      // messages sent
  size_t got = 0;        // bytes of the current echo received
  bool waiting = false;  // a message is out
  int64_t sent_ms = 0;
};

struct Sample {
  double t;  // seconds into the active phase
  long rss_kib;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "holds many connections to an echo server and watches its memory; "
      "see bench/run_soak.sh");
  absl::ParseCommandLine(argc, argv);
  const std::string addr_text = absl::GetFlag(FLAGS_addr);
  const int pid = absl::GetFlag(FLAGS_server_pid);
  const int n = absl::GetFlag(FLAGS_connections);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double fraction = absl::GetFlag(FLAGS_active_fraction);
  const int interval_ms = absl::GetFlag(FLAGS_interval_ms);
  const size_t size = static_cast<size_t>(absl::GetFlag(FLAGS_size));
  const int sources = absl::GetFlag(FLAGS_sources);
  const int max_pending = absl::GetFlag(FLAGS_max_pending);
  const bool kv = absl::GetFlag(FLAGS_format) == "kv";
  if (pid <= 0 || !Alive(pid)) Fail("--server_pid must name a live process");
  if (n < 1 || size < 1 || size > 65536 || interval_ms < 1 || sources < 1 ||
      sources > 250 || max_pending < 1) {
    Fail("bad flag value");
  }

  sockaddr_in server{};
  {
    const size_t colon = addr_text.rfind(':');
    if (colon == std::string::npos) Fail("--addr must be IPv4 HOST:PORT");
    server.sin_family = AF_INET;
    server.sin_port =
        htons(static_cast<uint16_t>(std::atoi(addr_text.c_str() + colon + 1)));
    if (inet_pton(AF_INET, addr_text.substr(0, colon).c_str(),
                  &server.sin_addr) != 1) {
      Fail("--addr must be IPv4 HOST:PORT");
    }
  }

  // Room for every connection, plus some.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const rlim_t want = static_cast<rlim_t>(n) + 256;
  if (rl.rlim_cur < want) {
    rlimit nrl{want, std::max(rl.rlim_max, want)};
    if (setrlimit(RLIMIT_NOFILE, &nrl) != 0) {
      nrl.rlim_max = rl.rlim_max;
      nrl.rlim_cur = std::min(want, rl.rlim_max);
      setrlimit(RLIMIT_NOFILE, &nrl);
      getrlimit(RLIMIT_NOFILE, &rl);
      if (rl.rlim_cur < want) {
        Fail(absl::StrFormat(
            "RLIMIT_NOFILE is %d and cannot be raised to %d (run as root or "
            "raise the hard limit: ulimit -Hn)",
            rl.rlim_cur, want));
      }
    }
  }

  // --- 1. Baseline -----------------------------------------------------------
  const long rss_before = RssKib(pid);
  const int fds_before = FdCount(pid);
  if (rss_before < 0 || fds_before < 0) {
    Fail(absl::StrFormat("cannot read /proc/%d (status, fd)", pid));
  }

  // --- 2. Connect
  // -------------------------------------------------------------
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) Fail(std::string("epoll_create1: ") + std::strerror(errno));
  std::vector<Conn> conns(static_cast<size_t>(n));
  const int64_t connect_start = NowMs();
  int started = 0;
  int pending = 0;
  int connected = 0;
  int server_has = 0;  // connections the server holds, by its fd count
  int64_t last_progress = NowMs();
  std::vector<epoll_event> events(4096);
  while (connected < n) {
    // Pace on the server too: a connection it has not accepted sits in its
    // listen backlog (1024 by default).
    if (connected - server_has >= 512 || (started == n && pending == 0)) {
      server_has = FdCount(pid) - fds_before;
    }
    while (started < n && pending < max_pending &&
           connected - server_has < 512) {
      Conn& c = conns[static_cast<size_t>(started)];
      c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) {
        Fail(absl::StrFormat("socket #%d: %s", started, std::strerror(errno)));
      }
      if (sources > 1) {
        const int one = 1;
        setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                   sizeof(one));
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr =
            htonl(0x7f000001u + static_cast<uint32_t>(started % sources));
        if (bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
          Fail(absl::StrFormat("bind 127.0.0.%d: %s", 1 + started % sources,
                               std::strerror(errno)));
        }
      }
      const int one = 1;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (connect(c.fd, reinterpret_cast<sockaddr*>(&server), sizeof(server)) !=
              0 &&
          errno != EINPROGRESS) {
        Fail(absl::StrFormat(
            "connect #%d: %s%s", started, std::strerror(errno),
            errno == EADDRNOTAVAIL
                ? " (out of ephemeral ports: use --sources N to connect "
                  "from more loopback addresses, or widen "
                  "net.ipv4.ip_local_port_range)"
                : ""));
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u32 = static_cast<uint32_t>(started);
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        Fail(std::string("epoll_ctl: ") + std::strerror(errno));
      }
      ++started;
      ++pending;
    }
    const int k =
        epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (k < 0 && errno != EINTR)
      Fail(std::string("epoll_wait: ") + std::strerror(errno));
    for (int i = 0; i < k; ++i) {
      Conn& c = conns[events[static_cast<size_t>(i)].data.u32];
      if (c.connected) continue;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        Fail(absl::StrFormat("connection #%d failed: %s (after %d connected)",
                             events[static_cast<size_t>(i)].data.u32,
                             std::strerror(err), connected));
      }
      c.connected = true;
      --pending;
      ++connected;
      last_progress = NowMs();
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u32 = events[static_cast<size_t>(i)].data.u32;
      epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    }
    if (NowMs() - last_progress > 60'000) {
      Fail(
          absl::StrFormat("no connection completed for 60 s (%d of %d "
                          "connected, %d pending)",
                          connected, n, pending));
    }
    if (!Alive(pid)) Fail("the server died while connecting");
  }
  const double connect_seconds =
      static_cast<double>(NowMs() - connect_start) / 1000;

  // --- 3. Idle
  // ---------------------------------------------------------------- The server
  // holds them all once its fd count says so.
  int fds_connected = FdCount(pid);
  const int64_t accept_deadline = NowMs() + 60'000;
  while (fds_connected < fds_before + n && NowMs() < accept_deadline) {
    epoll_wait(ep, events.data(), static_cast<int>(events.size()), 50);
    fds_connected = FdCount(pid);
  }
  if (fds_connected < fds_before + n) {
    Fail(
        absl::StrFormat("the server holds %d descriptors, %d more than "
                        "before, for %d connections",
                        fds_connected, fds_connected - fds_before, n));
  }
  // Let its RSS settle: sample until two samples 500 ms apart agree within
  // 64 KiB (at most 10 s). Any event on a connection now is an error.
  uint64_t unexpected = 0;
  auto idle_wait = [&](int ms) {
    const int64_t until = NowMs() + ms;
    while (NowMs() < until) {
      const int k =
          epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                     static_cast<int>(std::max<int64_t>(1, until - NowMs())));
      for (int i = 0; i < k; ++i) {
        ++unexpected;
        Conn& c = conns[events[static_cast<size_t>(i)].data.u32];
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
      }
    }
  };
  long rss_idle = RssKib(pid);
  for (int i = 0; i < 20; ++i) {
    idle_wait(500);
    const long again = RssKib(pid);
    const bool settled = std::labs(again - rss_idle) <= 64;
    rss_idle = again;
    if (settled) break;
  }
  const double per_conn =
      static_cast<double>(rss_idle - rss_before) * 1024.0 / n;

  // --- 4. Active
  // ----------------------------------------------------------------
  const int every =
      fraction > 0 ? std::max(1, static_cast<int>(1.0 / fraction)) : n + 1;
  int active = 0;
  for (int i = 0; i < n; i += every) {
    conns[static_cast<size_t>(i)].active = true;
    ++active;
  }
  std::vector<uint8_t> out(size);
  std::vector<uint8_t> in(65536);
  uint64_t sent = 0, echoed = 0, bytes_ok = 0, corrupt = 0, late = 0;
  std::vector<Sample> samples;
  const int64_t t0 = NowMs();
  const int64_t t_end = t0 + static_cast<int64_t>(seconds * 1000);
  int64_t next_tick = t0;
  int64_t next_sample = t0;
  auto handle = [&](int k) {
    for (int i = 0; i < k; ++i) {
      const uint32_t id = events[static_cast<size_t>(i)].data.u32;
      Conn& c = conns[id];
      if (!c.active || (events[static_cast<size_t>(i)].events &
                        (EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
        ++unexpected;
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        c.active = false;
        continue;
      }
      for (;;) {
        const ssize_t r = read(c.fd, in.data(), in.size());
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (r <= 0) {
          ++unexpected;
          epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
          c.active = false;
          break;
        }
        for (ssize_t j = 0; j < r; ++j) {
          if (!c.waiting || c.got >= size ||
              in[static_cast<size_t>(j)] != MessageByte(id, c.seq - 1, c.got)) {
            ++corrupt;
          } else {
            ++bytes_ok;
          }
          ++c.got;
          if (c.got == size) {
            c.waiting = false;
            ++echoed;
          }
        }
      }
    }
  };
  while (NowMs() < t_end) {
    const int64_t now = NowMs();
    if (now >= next_tick) {
      for (int i = 0; i < n; i += every) {
        Conn& c = conns[static_cast<size_t>(i)];
        if (!c.active) continue;
        if (c.waiting) {
          ++late;  // the last echo is not back yet: skip this tick
          continue;
        }
        for (size_t j = 0; j < size; ++j)
          out[j] = MessageByte(static_cast<uint32_t>(i), c.seq, j);
        const ssize_t w = write(c.fd, out.data(), size);
        if (w != static_cast<ssize_t>(size)) {
          ++unexpected;
          c.active = false;
          continue;
        }
        ++c.seq;
        c.got = 0;
        c.waiting = true;
        c.sent_ms = now;
        ++sent;
      }
      next_tick += interval_ms;
      if (next_tick < now) next_tick = now + interval_ms;  // fell behind
    }
    if (now >= next_sample) {
      samples.push_back({static_cast<double>(now - t0) / 1000, RssKib(pid)});
      next_sample += 1000;
    }
    const int64_t wake = std::min({next_tick, next_sample, t_end});
    const int k =
        epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                   static_cast<int>(std::max<int64_t>(0, wake - NowMs())));
    if (k > 0) handle(k);
  }
  // The echoes still out.
  const int64_t drain_until = NowMs() + 10'000;
  auto outstanding = [&] {
    int m = 0;
    for (const Conn& c : conns) m += (c.active && c.waiting) ? 1 : 0;
    return m;
  };
  while (outstanding() > 0 && NowMs() < drain_until) {
    const int k =
        epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (k > 0) handle(k);
  }
  const int lost = outstanding();
  const long rss_end = RssKib(pid);
  long rss_max = rss_idle;
  for (const Sample& s : samples) rss_max = std::max(rss_max, s.rss_kib);
  // Growth over the second half of the active phase.
  long rss_mid = rss_idle;
  for (const Sample& s : samples) {
    if (s.t <= seconds / 2) rss_mid = s.rss_kib;
  }
  const int fds_end_active = FdCount(pid);

  // --- 5. Close
  // -----------------------------------------------------------------
  const int64_t close_start = NowMs();
  for (Conn& c : conns) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
  }
  close(ep);
  int fds_after = FdCount(pid);
  const int64_t close_deadline = NowMs() + 60'000;
  while (fds_after > fds_before && NowMs() < close_deadline) {
    timespec ts{0, 50'000'000};
    nanosleep(&ts, nullptr);
    fds_after = FdCount(pid);
  }
  const double close_seconds =
      static_cast<double>(NowMs() - close_start) / 1000;
  // RSS once the server has dropped everything (sampled after a second, so
  // that frees have happened).
  timespec ts{1, 0};
  nanosleep(&ts, nullptr);
  const long rss_after = RssKib(pid);

  const bool ok = lost == 0 && corrupt == 0 && unexpected == 0 &&
                  fds_after == fds_before && echoed == sent && sent > 0;
  if (kv) {
    std::printf(
        "connections=%d active=%d connect_seconds=%.1f server_fds_before=%d "
        "server_fds_connected=%d server_fds_end_active=%d server_fds_after=%d "
        "close_seconds=%.1f rss_before_kib=%ld rss_idle_kib=%ld "
        "rss_per_conn_bytes=%.0f rss_mid_kib=%ld rss_max_kib=%ld "
        "rss_end_kib=%ld rss_after_close_kib=%ld sent=%llu echoed=%llu "
        "bytes_verified=%llu corrupt=%llu lost=%d late=%llu unexpected=%llu "
        "seconds=%.0f interval_ms=%d size=%zu ok=%d\n",
        n, active, connect_seconds, fds_before, fds_connected, fds_end_active,
        fds_after, close_seconds, rss_before, rss_idle, per_conn, rss_mid,
        rss_max, rss_end, rss_after, static_cast<unsigned long long>(sent),
        static_cast<unsigned long long>(echoed),
        static_cast<unsigned long long>(bytes_ok),
        static_cast<unsigned long long>(corrupt), lost,
        static_cast<unsigned long long>(late),
        static_cast<unsigned long long>(unexpected), seconds, interval_ms, size,
        ok ? 1 : 0);
  } else {
    std::printf(
        "%d connections in %.1f s; the server's descriptors: %d "
        "before, %d connected, %d after closing (%.1f s)\n",
        n, connect_seconds, fds_before, fds_connected, fds_after,
        close_seconds);
    std::printf(
        "server RSS: %ld KiB before, %ld KiB idle (%.0f bytes per "
        "connection), %ld KiB at half time, %ld KiB max, %ld KiB at "
        "the end, %ld KiB after closing\n",
        rss_before, rss_idle, per_conn, rss_mid, rss_max, rss_end, rss_after);
    std::printf(
        "%d active connections: %llu messages sent, %llu echoed "
        "(%llu bytes verified), %llu corrupt bytes, %d lost, %llu "
        "ticks skipped while an echo was out, %llu unexpected "
        "events on connections\n",
        active, static_cast<unsigned long long>(sent),
        static_cast<unsigned long long>(echoed),
        static_cast<unsigned long long>(bytes_ok),
        static_cast<unsigned long long>(corrupt), lost,
        static_cast<unsigned long long>(late),
        static_cast<unsigned long long>(unexpected));
    std::printf("%s\n", ok ? "OK" : "FAILED");
  }
  return ok ? 0 : 1;
}
