// bench/peers/uring_echo.cc — an echo server on raw liburing: the floor of
// the echo benchmark, what an io_uring echo server costs with no runtime at
// all, for shardio's echo server to be measured against.
//
// One thread, one ring, one io_uring_submit_and_wait per loop turn:
// - a multishot accept on the listening socket;
// - per connection, a multishot recv that takes its buffers from a provided
//   buffer ring (mapped here with mmap and registered with
//   io_uring_register_buf_ring, as liburing 2.3 has no helper for it);
// - every received buffer is sent back as it is, one send in flight per
//   connection so that bytes keep their order; a short send is re-issued for
//   the rest, and the buffer goes back to the ring after its last send
//   completes;
// - a recv that ends for want of buffers (-ENOBUFS), or a CQE without
//   IORING_CQE_F_MORE, is re-armed: at once in the second case, after some
//   buffers came back in the first;
// - a client that shuts down its sending side (recv returns 0) gets all the
//   bytes it sent, then the connection is closed; a reset or a failed send
//   closes the connection once none of its requests is in flight.
// The ring is set up with IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN when the
// kernel takes them, else COOP_TASKRUN, else no flags.
//
//   uring_echo [--port P] [--buffers N] [--buffer-size BYTES]
//
// P = 0 (the default) picks a free port. Prints "listening on
// 127.0.0.1:PORT" once it accepts connections, and runs until SIGINT or
// SIGTERM (read from a signalfd on the ring), then exits 0.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what, int err) {
  std::fprintf(stderr, "uring_echo: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

struct Options {
  int port = 0;
  unsigned buffers = 2048;       // a power of two, at most 32768
  unsigned buffer_size = 16384;  // bytes
};

Options ParseOptions(int argc, char** argv) {
  Options o;
  auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s [--port P] [--buffers N (power of two)] "
                 "[--buffer-size BYTES]\n",
                 argv[0]);
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      usage();
    }
    const long v = std::strtol(value.c_str(), nullptr, 10);
    if (a == "--port" && v >= 0 && v <= 65535) {
      o.port = static_cast<int>(v);
    } else if (a == "--buffers" && v > 0 && v <= 32768 && (v & (v - 1)) == 0) {
      o.buffers = static_cast<unsigned>(v);
    } else if (a == "--buffer-size" && v > 0 && v <= (1 << 20)) {
      o.buffer_size = static_cast<unsigned>(v);
    } else {
      usage();
    }
  }
  return o;
}

// What a CQE is for: the low byte of its user_data; the rest is the
// connection's slot.
enum Kind : uint64_t { kAccept = 1, kSignal = 2, kRecv = 3, kSend = 4 };

uint64_t Tag(Kind k, uint32_t slot = 0) { return (uint64_t{slot} << 8) | k; }

constexpr uint16_t kGroup = 0;  // buffer group id of the one buffer ring

struct Chunk {
  uint16_t bid;
  uint32_t off;
  uint32_t len;
};

struct Conn {
  int fd = -1;
  bool recv_armed = false;  // a multishot recv is in flight
  bool send_in_flight = false;
  bool eof = false;          // the client shut down its sending side
  bool dead = false;         // reset or failed send: stop echoing
  bool starved = false;      // recv ended on -ENOBUFS; re-arm later
  std::vector<Chunk> queue;  // received buffers to send back, in order
  size_t head = 0;           // first unsent chunk in `queue`
};

class Server {
 public:
  Server(const Options& o, int listen_fd, int signal_fd)
      : opt_(o), listen_fd_(listen_fd), signal_fd_(signal_fd) {
    SetUpRing();
    SetUpBuffers();
  }

  void Run() {
    ArmAccept();
    ArmSignal();
    for (;;) {
      int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        Die("io_uring_submit_and_wait", -rc);
      }
      unsigned head;
      unsigned seen = 0;
      io_uring_cqe* cqe;
      bool stop = false;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        const uint32_t slot = static_cast<uint32_t>(cqe->user_data >> 8);
        switch (static_cast<Kind>(cqe->user_data & 0xff)) {
          case kAccept:
            OnAccept(cqe);
            break;
          case kSignal:
            stop = true;
            break;
          case kRecv:
            OnRecv(slot, cqe);
            break;
          case kSend:
            OnSend(slot, cqe);
            break;
        }
      }
      io_uring_cq_advance(&ring_, seen);
      if (returned_ > 0) {
        io_uring_buf_ring_advance(br_, static_cast<int>(returned_));
        returned_ = 0;
        RearmStarved();
      }
      if (stop) return;
    }
  }

 private:
  void SetUpRing() {
    const unsigned entries = 1024;
    const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN, 0};
    int rc = -EINVAL;
    for (unsigned flags : tries) {
      io_uring_params p{};
      p.flags = flags | IORING_SETUP_CQSIZE;
      p.cq_entries = entries * 8;
      rc = io_uring_queue_init_params(entries, &ring_, &p);
      if (rc == 0) return;
      if (rc != -EINVAL) break;
    }
    Die("io_uring_queue_init_params", -rc);
  }

  void SetUpBuffers() {
    const size_t ring_bytes = opt_.buffers * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) Die("mmap (buffer ring)", errno);
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(br_);
    reg.ring_entries = opt_.buffers;
    reg.bgid = kGroup;
    if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc != 0) {
      Die("io_uring_register_buf_ring", -rc);
    }
    const size_t data_bytes = size_t{opt_.buffers} * opt_.buffer_size;
    void* data = mmap(nullptr, data_bytes, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (data == MAP_FAILED) Die("mmap (buffers)", errno);
    data_ = static_cast<char*>(data);
    mask_ = io_uring_buf_ring_mask(opt_.buffers);
    for (unsigned bid = 0; bid < opt_.buffers; ++bid) {
      io_uring_buf_ring_add(br_, Buffer(static_cast<uint16_t>(bid)),
                            opt_.buffer_size, static_cast<uint16_t>(bid), mask_,
                            static_cast<int>(bid));
    }
    io_uring_buf_ring_advance(br_, static_cast<int>(opt_.buffers));
  }

  char* Buffer(uint16_t bid) const {
    return data_ + size_t{bid} * opt_.buffer_size;
  }

  // Gives a buffer back to the ring; the kernel sees it at the end of the
  // loop turn, when the tail moves once for all of them.
  void ReturnBuffer(uint16_t bid) {
    io_uring_buf_ring_add(br_, Buffer(bid), opt_.buffer_size, bid, mask_,
                          static_cast<int>(returned_));
    ++returned_;
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {  // SQ full within one turn: push it out
      int rc = io_uring_submit(&ring_);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        Die("io_uring_submit", -rc);
      }
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void ArmAccept() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr,
                                   SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, Tag(kAccept));
  }

  void ArmSignal() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, signal_fd_, &siginfo_, sizeof siginfo_, 0);
    io_uring_sqe_set_data64(sqe, Tag(kSignal));
  }

  void ArmRecv(uint32_t slot) {
    Conn& c = conns_[slot];
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    io_uring_sqe_set_data64(sqe, Tag(kRecv, slot));
    c.recv_armed = true;
  }

  void Send(uint32_t slot) {
    Conn& c = conns_[slot];
    const Chunk& ch = c.queue[c.head];
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_send(sqe, c.fd, Buffer(ch.bid) + ch.off, ch.len,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Tag(kSend, slot));
    c.send_in_flight = true;
  }

  void OnAccept(const io_uring_cqe* cqe) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) ArmAccept();
    if (cqe->res < 0) {
      if (cqe->res != -ECONNABORTED && cqe->res != -EINTR) {
        std::fprintf(stderr, "uring_echo: accept: %s\n",
                     std::strerror(-cqe->res));
      }
      return;
    }
    const int fd = cqe->res;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(conns_.size());
      conns_.emplace_back();
    }
    conns_[slot] = Conn{};
    conns_[slot].fd = fd;
    ArmRecv(slot);
  }

  void OnRecv(uint32_t slot, const io_uring_cqe* cqe) {
    Conn& c = conns_[slot];
    if (!(cqe->flags & IORING_CQE_F_MORE)) c.recv_armed = false;
    if (cqe->res > 0) {
      const uint16_t bid =
          static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      if (c.dead) {
        ReturnBuffer(bid);
      } else {
        c.queue.push_back(Chunk{bid, 0, static_cast<uint32_t>(cqe->res)});
        if (!c.send_in_flight) Send(slot);
      }
      if (!c.recv_armed && !c.dead) ArmRecv(slot);
      return;
    }
    if (cqe->res == -ENOBUFS && !c.dead) {
      // Every buffer is waiting for its send; re-arm once some come back.
      if (!c.recv_armed && !c.starved) {
        c.starved = true;
        starved_.push_back(slot);
      }
      return;
    }
    if (cqe->res == 0) {
      c.eof = true;  // half-close: finish sending, then close
    } else {
      Kill(c);  // reset, or cancelled by Kill's shutdown
    }
    MaybeClose(slot);
  }

  void OnSend(uint32_t slot, const io_uring_cqe* cqe) {
    Conn& c = conns_[slot];
    c.send_in_flight = false;
    if (cqe->res < 0) {
      Kill(c);
      MaybeClose(slot);
      return;
    }
    Chunk& ch = c.queue[c.head];
    ch.off += static_cast<uint32_t>(cqe->res);
    ch.len -= static_cast<uint32_t>(cqe->res);
    if (ch.len == 0) {  // else a short send: send the rest
      ReturnBuffer(ch.bid);
      if (++c.head == c.queue.size()) {
        c.queue.clear();
        c.head = 0;
      }
    }
    if (c.head < c.queue.size() && !c.dead) {
      Send(slot);
      return;
    }
    MaybeClose(slot);
  }

  // Stops echoing on a broken connection: its queued buffers go back and
  // shutdown() ends a recv still in flight.
  void Kill(Conn& c) {
    if (c.dead) return;
    c.dead = true;
    for (size_t i = c.head; i < c.queue.size(); ++i) {
      if (i == c.head && c.send_in_flight) continue;  // its CQE returns it
      ReturnBuffer(c.queue[i].bid);
    }
    if (c.send_in_flight) {
      c.queue.erase(c.queue.begin() + static_cast<long>(c.head) + 1,
                    c.queue.end());
    } else {
      c.queue.clear();
      c.head = 0;
    }
    if (c.recv_armed) shutdown(c.fd, SHUT_RDWR);
  }

  // Closes the connection once nothing of it is in flight and nothing is
  // left to send.
  void MaybeClose(uint32_t slot) {
    Conn& c = conns_[slot];
    if (c.fd < 0 || c.recv_armed || c.send_in_flight) return;
    if (!c.dead && !(c.eof && c.head == c.queue.size())) return;
    for (size_t i = c.head; i < c.queue.size(); ++i) {
      ReturnBuffer(c.queue[i].bid);
    }
    close(c.fd);
    c = Conn{};
    free_.push_back(slot);
  }

  void RearmStarved() {
    std::vector<uint32_t> list;
    list.swap(starved_);
    for (uint32_t slot : list) {
      Conn& c = conns_[slot];
      if (!c.starved) continue;  // closed, or already re-armed
      c.starved = false;
      if (c.fd >= 0 && !c.dead && !c.eof && !c.recv_armed) ArmRecv(slot);
    }
  }

  const Options opt_;
  const int listen_fd_;
  const int signal_fd_;
  io_uring ring_{};
  io_uring_buf_ring* br_ = nullptr;
  char* data_ = nullptr;
  int mask_ = 0;
  unsigned returned_ = 0;  // buffers added since the tail last moved
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> starved_;
  signalfd_siginfo siginfo_{};
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = ParseOptions(argc, argv);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) Die("sigprocmask", errno);
  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) Die("signalfd", errno);
  signal(SIGPIPE, SIG_IGN);

  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) Die("socket", errno);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(opt.port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    Die("bind", errno);
  }
  if (listen(lfd, SOMAXCONN) != 0) Die("listen", errno);
  socklen_t len = sizeof sa;
  if (getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    Die("getsockname", errno);
  }
  Server server(opt, lfd, sfd);
  std::printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
  std::fflush(stdout);
  server.Run();
  return 0;
}
