// bench/echo_load.cc — the load generator of the echo benchmark.
//
// Opens --connections TCP connections to an echo server and keeps --depth
// messages of --size bytes in flight on each: a message is one round trip
// once all of its bytes have come back, and its latency runs from the moment
// it was queued for sending to the moment its last byte was read. Every byte
// the server sends back is checked: a message's content is a function of
// (connection, sequence number, byte offset), so a dropped, duplicated,
// reordered or corrupted byte, or a connection the server closes early, ends
// the run with a message and a non-zero exit status.
//
// With --server-pid, the server's CPU time (utime + stime of the whole
// process, from /proc/PID/stat) is read at the start and the end of the
// measured window, which gives the server's CPU time per round trip: the
// figure the benchmark compares servers by, since a server that is pinned
// to one core and kept busy spends its whole core either way.
//
// Why epoll and one thread: the generator must cost little so that it is not
// what limits the servers, and it must not share the mechanism under test.
// One level-triggered epoll_wait returns up to 1024 ready connections; each
// gets one big read (every complete message in it is verified and replaced
// by a new one) and one write carrying all of its replacement messages, so a
// pipelined connection sends its refills in one system call. The cost of a
// round trip is then dominated by the loopback TCP work inside read and
// write, which any client pays, not by the event loop; and an epoll client
// measures io_uring and epoll servers through the same, independent path.
//
//   echo_load --addr 127.0.0.1:9000 [--connections 16] [--depth 1]
//             [--size 64] [--seconds 5] [--warmup 1] [--server-pid PID]
//             [--cpu N] [--format text|kv]
//
// --format kv prints one line for scripts:
//   rtps=... p50_us=... p99_us=... server_cpu_ns_per_rt=... bytes=...
//   errors=0 connections=... depth=... size=... client_cpu_ns_per_rt=...
//   server_cpus=... seconds=...
// (server_cpu_ns_per_rt and server_cpus are "na" without --server-pid).
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"

ABSL_FLAG(std::string, addr, "",
          "server address, HOST:PORT (127.0.0.1:9000, [::1]:9000)");
ABSL_FLAG(int, connections, 16, "number of TCP connections");
ABSL_FLAG(int, depth, 1, "messages in flight per connection (1 = ping-pong)");
ABSL_FLAG(int, size, 64, "message size in bytes");
ABSL_FLAG(double, seconds, 5, "length of the measured window, seconds");
ABSL_FLAG(double, warmup, 1, "seconds of load before the measured window");
ABSL_FLAG(int, server_pid, 0,
          "server process whose CPU time to measure (0: none)");
ABSL_FLAG(int, cpu, -1, "CPU to pin the generator to (-1: no pinning)");
ABSL_FLAG(std::string, format, "text", "output: text or kv");

namespace {

[[noreturn]] void Fail(const std::string& msg) {
  std::fflush(stdout);
  std::fprintf(stderr, "echo_load: %s\n", msg.c_str());
  std::exit(1);
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Message content. Byte `off` of message `seq` on connection `conn` is
//   pattern[off] ^ byte (off % 8) of Key(conn, seq)  (little-endian)
// where `pattern` is a fixed pseudo-random block as long as a message. So
// every message differs from every other one in all of its 8-byte words,
// and both filling and checking run a word at a time.
class Content {
 public:
  explicit Content(size_t size) : size_(size), pattern_((size + 7) & ~7ULL) {
    for (size_t i = 0; i < pattern_.size(); i += 8) {
      uint64_t w = SplitMix64(0x5eed0000 + i);
      std::memcpy(&pattern_[i], &w, 8);
    }
  }

  static uint64_t Key(uint32_t conn, uint64_t seq) {
    return SplitMix64((uint64_t{conn} << 40) ^ seq ^ 0xec40ULL);
  }

  uint8_t Expected(uint64_t key, size_t off) const {
    if constexpr (std::endian::native == std::endian::little) {
      return pattern_[off] ^ static_cast<uint8_t>(key >> (8 * (off % 8)));
    } else {
      return pattern_[off] ^ static_cast<uint8_t>(key >> (56 - 8 * (off % 8)));
    }
  }

  // Appends message (conn, seq) to `out`.
  void Append(uint32_t conn, uint64_t seq, std::vector<uint8_t>& out) const {
    const uint64_t key = Key(conn, seq);
    const size_t at = out.size();
    out.resize(at + size_);
    uint8_t* dst = out.data() + at;
    size_t off = 0;
    for (; off + 8 <= size_; off += 8) {
      uint64_t w = Load64(&pattern_[off]) ^ key;
      std::memcpy(dst + off, &w, 8);
    }
    for (; off < size_; ++off) dst[off] = Expected(key, off);
  }

  // Checks that `data[0, len)` is bytes [off, off + len) of message
  // (conn, seq). Returns the index in `data` of the first wrong byte, or -1.
  long Check(uint32_t conn, uint64_t seq, size_t off, const uint8_t* data,
             size_t len) const {
    const uint64_t key = Key(conn, seq);
    size_t i = 0;
    for (; i < len && (off + i) % 8 != 0; ++i) {
      if (data[i] != Expected(key, off + i)) return static_cast<long>(i);
    }
    for (; i + 8 <= len; i += 8) {
      if ((Load64(data + i) ^ key) != Load64(&pattern_[off + i])) break;
    }
    for (; i < len; ++i) {
      if (data[i] != Expected(key, off + i)) return static_cast<long>(i);
    }
    return -1;
  }

 private:
  size_t size_;
  std::vector<uint8_t> pattern_;
};

// Latency histogram with log-linear buckets: 32 buckets per power of two
// (about 3% resolution), values in ns. Adding a value is a count-leading-
// zeros and an increment.
class Histogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;

  Histogram() : counts_(64 * kSub, 0) {}

  void Add(int64_t ns) {
    uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    ++counts_[Index(v)];
    ++total_;
  }

  uint64_t total() const { return total_; }

  // The value at quantile q (0..1): the middle of its bucket, in ns.
  double Quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank < 1) rank = 1;
    if (rank > total_) rank = total_;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return Middle(i);
    }
    return Middle(counts_.size() - 1);
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);  // e >= kSubBits
    return static_cast<size_t>((e - kSubBits + 1) * kSub +
                               ((v >> (e - kSubBits)) & (kSub - 1)));
  }
  static double Middle(size_t i) {
    if (i < kSub) return static_cast<double>(i);
    const int e = static_cast<int>(i / kSub) + kSubBits - 1;
    const uint64_t width = uint64_t{1} << (e - kSubBits);
    const uint64_t low = (kSub + i % kSub) * width;
    return static_cast<double>(low) + static_cast<double>(width) / 2;
  }

  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

struct Conn {
  int fd = -1;
  uint32_t id = 0;
  uint64_t send_seq = 0;  // next message to generate
  uint64_t recv_seq = 0;  // message whose bytes are coming back now
  size_t recv_off = 0;    // bytes of it already back
  std::vector<uint8_t> out;
  size_t out_off = 0;              // bytes of `out` already written
  bool want_out = false;           // EPOLLOUT registered
  std::vector<int64_t> queued_at;  // per seq % depth: when it was queued
};

struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

Address Resolve(const std::string& addr) {
  std::string host, port;
  if (!addr.empty() && addr[0] == '[') {
    const size_t close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() ||
        addr[close + 1] != ':') {
      Fail("--addr: expected [IPV6]:PORT, got '" + addr + "'");
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      Fail("--addr: expected HOST:PORT, got '" + addr + "'");
    }
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
  }
  if (port.empty()) Fail("--addr: missing port in '" + addr + "'");
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    Fail("cannot resolve '" + addr + "': " + gai_strerror(rc));
  }
  Address a;
  std::memcpy(&a.ss, res->ai_addr, res->ai_addrlen);
  a.len = res->ai_addrlen;
  freeaddrinfo(res);
  return a;
}

// utime + stime of a whole process (all its threads, the exited ones
// included), in ns; nullopt when it cannot be read (the process is gone).
std::optional<double> ProcessCpuNs(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  // The command name (field 2) may hold spaces; fields after it are plain.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream in(line.substr(paren + 1));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && (in >> field); ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  if (!in) return std::nullopt;
  return (utime + stime) * 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double OwnCpuNs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e9 +
           static_cast<double>(tv.tv_usec) * 1e3;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

class Load {
 public:
  Load(const Address& addr, const std::string& addr_text, int connections,
       int depth, int size)
      : depth_(depth), size_(static_cast<size_t>(size)), content_(size_) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) Fail(std::string("epoll_create1: ") + std::strerror(errno));
    conns_.resize(static_cast<size_t>(connections));
    for (int i = 0; i < connections; ++i) {
      Conn& c = conns_[static_cast<size_t>(i)];
      c.id = static_cast<uint32_t>(i);
      c.queued_at.assign(static_cast<size_t>(depth), 0);
      c.fd = socket(addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (c.fd < 0) Fail(std::string("socket: ") + std::strerror(errno));
      if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr.ss),
                  addr.len) != 0) {
        Fail(absl::StrFormat("connect to %s (connection %d of %d): %s",
                             addr_text, i + 1, connections,
                             std::strerror(errno)));
      }
      int one = 1;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int fl = fcntl(c.fd, F_GETFL);
      fcntl(c.fd, F_SETFL, fl | O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = c.id;
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        Fail(std::string("epoll_ctl: ") + std::strerror(errno));
      }
    }
  }

  struct Result {
    double seconds = 0;        // measured window, wall
    uint64_t round_trips = 0;  // completed inside the window
    double p50_ns = 0, p99_ns = 0;
    double server_cpu_ns = -1;    // over the window; -1 when not measured
    double client_cpu_ns = 0;     // over the window
    uint64_t verified_bytes = 0;  // whole run
  };

  Result Run(double warmup_s, double seconds, int server_pid) {
    server_pid_ = server_pid;
    const int64_t t0 = NowNs();
    start_at_ = t0 + static_cast<int64_t>(warmup_s * 1e9);
    end_at_ = start_at_ + static_cast<int64_t>(seconds * 1e9);
    for (Conn& c : conns_) {
      for (int d = 0; d < depth_; ++d) Queue(c, t0);
      Flush(c);
    }
    std::vector<epoll_event> events(1024);
    // Drain: after the window no new message is sent; the ones in flight
    // must come back (and are checked) within this long.
    constexpr int64_t kDrainNs = 10'000'000'000;
    for (;;) {
      int64_t now = NowNs();
      Advance(now);
      if (phase_ == Phase::kDrain) {
        if (in_flight_ == 0) break;
        if (now > end_at_ + kDrainNs) {
          Fail(absl::StrFormat(
              "%d messages still in flight %d s after the window ended: the "
              "server stopped echoing",
              in_flight_, kDrainNs / 1'000'000'000));
        }
      }
      const int64_t next = phase_ == Phase::kWarmup    ? start_at_
                           : phase_ == Phase::kMeasure ? end_at_
                                                       : end_at_ + kDrainNs;
      const int timeout_ms =
          static_cast<int>(std::max<int64_t>(0, next - now) / 1'000'000 + 1);
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                         timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        Fail(std::string("epoll_wait: ") + std::strerror(errno));
      }
      for (int i = 0; i < n; ++i) {
        Conn& c = conns_[events[static_cast<size_t>(i)].data.u32];
        const uint32_t e = events[static_cast<size_t>(i)].events;
        now = NowNs();
        Advance(now);
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) Read(c, now);
        if (e & EPOLLOUT) Flush(c);
      }
    }
    for (Conn& c : conns_) close(c.fd);
    Result r;
    r.seconds = static_cast<double>(window_end_ - window_start_) / 1e9;
    r.round_trips = hist_.total();
    r.p50_ns = hist_.Quantile(0.50);
    r.p99_ns = hist_.Quantile(0.99);
    if (server_pid_ > 0) r.server_cpu_ns = server_cpu_end_ - server_cpu_start_;
    r.client_cpu_ns = client_cpu_end_ - client_cpu_start_;
    r.verified_bytes = verified_bytes_;
    return r;
  }

 private:
  enum class Phase { kWarmup, kMeasure, kDrain };

  void Advance(int64_t now) {
    if (phase_ == Phase::kWarmup && now >= start_at_) {
      phase_ = Phase::kMeasure;
      window_start_ = now;
      server_cpu_start_ = ServerCpu();
      client_cpu_start_ = OwnCpuNs();
    }
    if (phase_ == Phase::kMeasure && now >= end_at_) {
      phase_ = Phase::kDrain;
      window_end_ = now;
      server_cpu_end_ = ServerCpu();
      client_cpu_end_ = OwnCpuNs();
    }
  }

  double ServerCpu() const {
    if (server_pid_ <= 0) return 0;
    std::optional<double> ns = ProcessCpuNs(server_pid_);
    if (!ns) {
      Fail(absl::StrFormat("cannot read /proc/%d/stat: is the server running?",
                           server_pid_));
    }
    return *ns;
  }

  void Queue(Conn& c, int64_t now) {
    c.queued_at[c.send_seq % static_cast<uint64_t>(depth_)] = now;
    content_.Append(c.id, c.send_seq, c.out);
    ++c.send_seq;
    ++in_flight_;
  }

  void Flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                       MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        Fail(absl::StrFormat("send on connection %d: %s", c.id,
                             std::strerror(errno)));
      }
      c.out_off += static_cast<size_t>(n);
    }
    const bool pending = c.out_off < c.out.size();
    if (!pending) {
      c.out.clear();
      c.out_off = 0;
    }
    if (pending != c.want_out) {
      c.want_out = pending;
      epoll_event ev{};
      ev.events = pending ? EPOLLIN | EPOLLOUT : EPOLLIN;
      ev.data.u32 = c.id;
      if (epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
        Fail(std::string("epoll_ctl: ") + std::strerror(errno));
      }
    }
  }

  void Read(Conn& c, int64_t now) {
    ssize_t n;
    do {
      n = read(c.fd, buf_.data(), buf_.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Fail(absl::StrFormat(
          "connection %d: %s after %d of its messages came back (%d in "
          "flight): the server reset the connection",
          c.id, std::strerror(errno), c.recv_seq, c.send_seq - c.recv_seq));
    }
    if (n == 0) {
      Fail(absl::StrFormat(
          "connection %d: the server closed it after %d of its messages came "
          "back, with %d in flight and %d bytes of message %d received",
          c.id, c.recv_seq, c.send_seq - c.recv_seq, c.recv_off, c.recv_seq));
    }
    const uint8_t* p = buf_.data();
    size_t left = static_cast<size_t>(n);
    size_t completed = 0;
    while (left > 0) {
      if (c.recv_seq == c.send_seq) {
        Fail(
            absl::StrFormat("connection %d: the server sent back %d byte(s) "
                            "more than it was sent",
                            c.id, left));
      }
      const size_t take = std::min(left, size_ - c.recv_off);
      if (long bad = content_.Check(c.id, c.recv_seq, c.recv_off, p, take);
          bad >= 0) {
        const size_t off = c.recv_off + static_cast<size_t>(bad);
        Fail(absl::StrFormat(
            "connection %d, message %d, byte %d: expected 0x%02x, got 0x%02x "
            "(the echoed stream differs from what was sent)",
            c.id, c.recv_seq, off,
            content_.Expected(Content::Key(c.id, c.recv_seq), off), p[bad]));
      }
      verified_bytes_ += take;
      p += take;
      left -= take;
      c.recv_off += take;
      if (c.recv_off == size_) {
        if (phase_ == Phase::kMeasure) {
          hist_.Add(now -
                    c.queued_at[c.recv_seq % static_cast<uint64_t>(depth_)]);
        }
        c.recv_off = 0;
        ++c.recv_seq;
        --in_flight_;
        ++completed;
      }
    }
    if (phase_ == Phase::kDrain || completed == 0) return;
    for (size_t i = 0; i < completed; ++i) Queue(c, now);
    if (!c.want_out) Flush(c);  // else EPOLLOUT will write it
  }

  const int depth_;
  const size_t size_;
  const Content content_;
  int ep_ = -1;
  std::vector<Conn> conns_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(256 * 1024);
  Histogram hist_;
  Phase phase_ = Phase::kWarmup;
  int64_t start_at_ = 0, end_at_ = 0;
  int64_t window_start_ = 0, window_end_ = 0;
  int64_t in_flight_ = 0;
  uint64_t verified_bytes_ = 0;
  int server_pid_ = 0;
  double server_cpu_start_ = 0, server_cpu_end_ = 0;
  double client_cpu_start_ = 0, client_cpu_end_ = 0;
};

std::string Thousands(double v) {
  std::string digits = absl::StrFormat("%.0f", v);
  std::string out;
  const size_t start = digits[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > start && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "load generator for echo servers: echo_load --addr HOST:PORT "
      "[--connections N] [--depth D] [--size BYTES] [--seconds S] "
      "[--warmup S] [--server-pid PID] [--cpu N] [--format text|kv]");
  // Flags are spelled with dashes (--server-pid) or underscores
  // (--server_pid); Abseil knows the underscore names.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> argp;
  for (std::string& a : args) {
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      const size_t end = std::min(a.find('='), a.size());
      std::replace(a.begin() + 2, a.begin() + static_cast<long>(end), '-', '_');
    }
    argp.push_back(a.data());
  }
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(argp.size()), argp.data());
  if (rest.size() > 1) Fail(std::string("unexpected argument: ") + rest[1]);

  const std::string addr_text = absl::GetFlag(FLAGS_addr);
  const int connections = absl::GetFlag(FLAGS_connections);
  const int depth = absl::GetFlag(FLAGS_depth);
  const int size = absl::GetFlag(FLAGS_size);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const int server_pid = absl::GetFlag(FLAGS_server_pid);
  const int cpu = absl::GetFlag(FLAGS_cpu);
  const std::string format = absl::GetFlag(FLAGS_format);

  if (addr_text.empty()) Fail("--addr HOST:PORT is required");
  if (connections < 1) Fail("--connections must be at least 1");
  if (depth < 1) Fail("--depth must be at least 1");
  if (size < 1 || size > (64 << 20)) Fail("--size must be 1..64 MiB");
  if (!(seconds > 0)) Fail("--seconds must be positive");
  if (!(warmup >= 0)) Fail("--warmup must not be negative");
  if (format != "text" && format != "kv") Fail("--format must be text or kv");
  if (server_pid > 0 && !ProcessCpuNs(server_pid)) {
    Fail(absl::StrFormat("--server-pid %d: cannot read /proc/%d/stat",
                         server_pid, server_pid));
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      Fail(absl::StrFormat("--cpu %d: sched_setaffinity: %s", cpu,
                           std::strerror(errno)));
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  RaiseFdLimit();

  const Address addr = Resolve(addr_text);
  Load load(addr, addr_text, connections, depth, size);
  const Load::Result r = load.Run(warmup, seconds, server_pid);

  const double rtps = static_cast<double>(r.round_trips) / r.seconds;
  const double rts = std::max<double>(1, static_cast<double>(r.round_trips));
  const bool have_server = r.server_cpu_ns >= 0;
  const double server_ns_per_rt = have_server ? r.server_cpu_ns / rts : 0;
  const double client_ns_per_rt = r.client_cpu_ns / rts;
  if (format == "kv") {
    std::printf(
        "rtps=%.0f p50_us=%.2f p99_us=%.2f server_cpu_ns_per_rt=%s bytes=%llu "
        "errors=0 connections=%d depth=%d size=%d client_cpu_ns_per_rt=%.0f "
        "server_cpus=%s seconds=%.3f\n",
        rtps, r.p50_ns / 1e3, r.p99_ns / 1e3,
        have_server ? absl::StrFormat("%.0f", server_ns_per_rt).c_str() : "na",
        static_cast<unsigned long long>(r.verified_bytes), connections, depth,
        size, client_ns_per_rt,
        have_server
            ? absl::StrFormat("%.3f", r.server_cpu_ns / (r.seconds * 1e9))
                  .c_str()
            : "na",
        r.seconds);
  } else {
    std::printf("echo_load: %s, %d connections, depth %d%s, %d B messages\n",
                addr_text.c_str(), connections, depth,
                depth == 1 ? " (ping-pong)" : " (pipelined)", size);
    std::printf("  window:            %.2f s after %.1f s of warm-up\n",
                r.seconds, warmup);
    std::printf("  round trips/s:     %s\n", Thousands(rtps).c_str());
    std::printf("  latency p50 / p99: %.1f / %.1f us\n", r.p50_ns / 1e3,
                r.p99_ns / 1e3);
    if (have_server) {
      std::printf("  server CPU / rt:   %s ns (server busy %.0f%% of a CPU)\n",
                  Thousands(server_ns_per_rt).c_str(),
                  100 * r.server_cpu_ns / (r.seconds * 1e9));
    }
    std::printf("  client CPU / rt:   %s ns (generator busy %.0f%% of a CPU)\n",
                Thousands(client_ns_per_rt).c_str(),
                100 * r.client_cpu_ns / (r.seconds * 1e9));
    std::printf(
        "  verified bytes:    %s (every echoed byte checked, 0 errors)\n",
        Thousands(static_cast<double>(r.verified_bytes)).c_str());
  }
  return 0;
}
