// bench/peers/epoll_echo.cc — a plain epoll echo server, one of the peers
// the echo benchmark compares shardio's echo server with.
//
// One thread, level-triggered epoll, nonblocking sockets. Each readable
// connection gets one read of up to 64 KiB and the bytes are written back at
// once; what the socket does not take stays in the connection's pending
// buffer, and the connection stops reading (EPOLLOUT instead of EPOLLIN)
// until that buffer is written, so a client that does not read cannot make
// the server buffer without bound. A client that shuts down its sending side
// gets everything it sent, then the connection is closed; a reset or any
// other error closes the connection and the server goes on.
//
//   epoll_echo [--port P]   (P = 0, the default, picks a free port)
//
// Prints "listening on 127.0.0.1:PORT" once it accepts connections and runs
// until SIGINT or SIGTERM, then exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "epoll_echo: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int ParsePort(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a.rfind("--port=", 0) == 0) {
      port = std::atoi(a.c_str() + 7);
    } else {
      std::fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
      std::exit(2);
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "epoll_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

struct Conn {
  int fd = -1;
  std::vector<char> pending;  // bytes read but not yet written back
  size_t pending_off = 0;
};

// The data word of an epoll event: the fd. Connections live in a table
// indexed by fd.
constexpr uint64_t kListen = ~uint64_t{0};
constexpr uint64_t kSignal = ~uint64_t{0} - 1;

class Server {
 public:
  Server(int listen_fd, int signal_fd) : listen_fd_(listen_fd) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) Die("epoll_create1");
    Add(listen_fd, EPOLLIN, kListen);
    Add(signal_fd, EPOLLIN, kSignal);
  }

  void Run() {
    std::vector<epoll_event> events(512);
    for (;;) {
      int n =
          epoll_wait(ep_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        const epoll_event& ev = events[static_cast<size_t>(i)];
        if (ev.data.u64 == kSignal) return;
        if (ev.data.u64 == kListen) {
          Accept();
          continue;
        }
        const int fd = static_cast<int>(ev.data.u64);
        Conn* c = fd < static_cast<int>(conns_.size())
                      ? conns_[static_cast<size_t>(fd)].get()
                      : nullptr;
        if (c == nullptr) continue;  // closed earlier in this batch
        if (c->pending_off < c->pending.size()) {
          // Waiting for EPOLLOUT; an error or hang-up makes the send fail
          // and closes the connection.
          Flush(*c);
        } else {
          Read(*c);
        }
      }
    }
  }

 private:
  void Add(int fd, uint32_t events, uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) Die("epoll_ctl");
  }

  void Watch(Conn& c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<uint64_t>(c.fd);
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) != 0) Die("epoll_ctl");
  }

  void Accept() {
    for (;;) {
      int fd =
          accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EMFILE || errno == ENFILE) {
          std::fprintf(stderr, "epoll_echo: accept: %s\n",
                       std::strerror(errno));
          return;
        }
        Die("accept4");
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (static_cast<size_t>(fd) >= conns_.size()) {
        conns_.resize(static_cast<size_t>(fd) + 1);
      }
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      conns_[static_cast<size_t>(fd)] = std::move(c);
      Add(fd, EPOLLIN, static_cast<uint64_t>(fd));
    }
  }

  void Close(Conn& c) {
    const int fd = c.fd;
    close(fd);  // also removes it from the epoll set
    conns_[static_cast<size_t>(fd)].reset();
  }

  void Read(Conn& c) {
    ssize_t n;
    do {
      n = read(c.fd, buf_.data(), buf_.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Close(c);  // reset or another error: drop this connection only
      return;
    }
    if (n == 0) {
      // The client shut down its sending side, and everything it sent has
      // been written back (a connection with pending bytes does not read).
      Close(c);
      return;
    }
    size_t done = 0;
    while (done < static_cast<size_t>(n)) {
      ssize_t w = send(c.fd, buf_.data() + done, static_cast<size_t>(n) - done,
                       MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        Close(c);
        return;
      }
      done += static_cast<size_t>(w);
    }
    if (done < static_cast<size_t>(n)) {
      c.pending.assign(buf_.data() + done, buf_.data() + n);
      c.pending_off = 0;
      Watch(c, EPOLLOUT);  // stop reading until the backlog is out
    }
  }

  // Writes pending bytes; reading resumes once they are all out.
  void Flush(Conn& c) {
    while (c.pending_off < c.pending.size()) {
      ssize_t w = send(c.fd, c.pending.data() + c.pending_off,
                       c.pending.size() - c.pending_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        Close(c);
        return;
      }
      c.pending_off += static_cast<size_t>(w);
    }
    c.pending.clear();
    c.pending_off = 0;
    Watch(c, EPOLLIN);
  }

  int ep_ = -1;
  int listen_fd_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
};

}  // namespace

int main(int argc, char** argv) {
  const int port = ParsePort(argc, argv);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  // SIGINT and SIGTERM arrive through a signalfd in the epoll set.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) Die("sigprocmask");
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) Die("signalfd");
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) Die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) Die("bind");
  if (listen(lfd, SOMAXCONN) != 0) Die("listen");
  socklen_t len = sizeof sa;
  if (getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    Die("getsockname");
  }
  Server server(lfd, sfd);
  std::printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
  std::fflush(stdout);
  server.Run();
  return 0;
}
