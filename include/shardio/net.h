// shardio/net.h — TCP, UDP and Unix-domain sockets on the ring.
//
//   auto listener = net::TcpListener::bind(
//       *net::SocketAddress::parse("127.0.0.1:0"));
//   auto conns = listener->accept();               // a multishot stream
//   while (auto conn = co_await conns.next()) {
//     if (!*conn) break;                            // the error that ended it
//     spawn(serve(net::TcpStream(std::move(**conn)))).detach();
//   }
//
//   Task<void> serve(net::TcpStream s) {
//     auto ring = BufferRing::create(64, 4096);    // or one per shard
//     auto chunks = s.recv_multishot(*ring);
//     while (auto chunk = co_await chunks.next()) {
//       if (!*chunk || (*chunk)->empty()) break;     // error or peer's EOF
//       co_await s.send_all(std::move(**chunk));     // back to the ring after
//     }
//   }
//
// Every socket is non-blocking-agnostic: all I/O goes through the shard's
// ring. Sockets own their fd (closed by the destructor with close(2), or on
// the ring with close()). Errors are net::Error values that name the call
// and the address: "connect 127.0.0.1:1: Connection refused".
//
// Across shards: bind a TcpListener per shard with ListenOptions::reuse_port
// (the kernel spreads connections), or accept on one shard and hand the fd to
// another (release() the stream, send the int, adopt it there).
//
// Thread-safety: a socket object is used on one shard at a time; it may be
// moved to another shard as a value (its fd is process-wide).
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>

#include "shardio/buffer.h"
#include "shardio/buffer_ring.h"
#include "shardio/multishot.h"
#include "shardio/net/address.h"
#include "shardio/operation.h"
#include "shardio/ops/net.h"
#include "shardio/owned_fd.h"
#include "shardio/task.h"

namespace shardio::net {

// What a send or receive yields: the byte count (or error) and the buffer.
template <class B>
struct IoResult {
  Result<std::size_t> res;
  B buf;
};

// Options for binding a listening socket.
struct ListenOptions {
  int backlog = 1024;
  bool reuse_addr = true;   // SO_REUSEADDR
  bool reuse_port = false;  // SO_REUSEPORT: one listener per shard
  bool ipv6_only = false;   // IPV6_V6ONLY for [::] addresses
};

// The part every socket type shares: an owned fd and its addresses.
class SocketBase {
 public:
  SocketBase() = default;
  explicit SocketBase(OwnedFd fd) noexcept : fd_(std::move(fd)) {}

  int fd() const noexcept { return fd_.get(); }
  bool is_open() const noexcept { return fd_.valid(); }
  // Gives up the fd (to hand it to another shard or library).
  int release() noexcept { return fd_.release(); }
  Result<SocketAddress> local_address() const;
  Result<SocketAddress> peer_address() const;
  // setsockopt(2) with an int value.
  Result<void> set_option(int level, int name, int value);
  // Closes on the ring (IORING_OP_CLOSE); the destructor closes with
  // close(2) otherwise.
  Task<Result<void>> close();

 protected:
  OwnedFd fd_;
};

// A connected stream socket (TCP or Unix): what TcpStream and UnixStream
// share.
class StreamSocket : public SocketBase {
 public:
  StreamSocket() = default;
  // Adopts a connected socket and notes its peer's address now, while
  // getpeername(2) can still tell (error messages name the peer).
  explicit StreamSocket(OwnedFd fd) noexcept;
  // With the peer's address known (error messages name it even after the
  // connection was reset, when getpeername(2) no longer can).
  StreamSocket(OwnedFd fd, const SocketAddress& peer) noexcept
      : SocketBase(std::move(fd)), peer_(peer) {}

  // One send(2) of `buf`; the count says how much went.
  template <OwnedBuffer B>
  Task<IoResult<B>> send(B buf) {
    Send<B> op(fd(), std::move(buf));
    auto r = co_await submit(std::move(op));
    co_return IoResult<B>{wrap(r.res, "send"), std::move(r.buf)};
  }
  // Sends all of `buf`, continuing after short sends, and trying again
  // after EINTR and EAGAIN (once the socket is writable).
  template <OwnedBuffer B>
  Task<IoResult<B>> send_all(B buf) {
    std::size_t done = 0;
    const std::size_t total = std::size(buf);
    while (done < total) {
      SendAt<B> op{fd(), std::move(buf), done};
      auto r = co_await submit(std::move(op));
      buf = std::move(r.buf);
      if (!r.res) {
        if (co_await retry_after(r.res.error(), POLLOUT)) continue;
        co_return IoResult<B>{wrap(r.res, "send"), std::move(buf)};
      }
      done += *r.res;
    }
    co_return IoResult<B>{done, std::move(buf)};
  }
  // One recv(2) into `buf`; 0 bytes means the peer shut down its side.
  template <OwnedBuffer B>
  Task<IoResult<B>> recv(B buf, std::stop_token st = {}) {
    Recv<B> op(fd(), std::move(buf));
    auto r = co_await submit(std::move(op), std::move(st));
    co_return IoResult<B>{wrap(r.res, "recv"), std::move(r.buf)};
  }
  // Receives until `buf` is full (trying again after EINTR and EAGAIN); a
  // peer shutdown first is an error (ENODATA, "unexpected end of stream").
  template <OwnedBuffer B>
  Task<IoResult<B>> recv_exact(B buf) {
    std::size_t done = 0;
    const std::size_t total = std::size(buf);
    while (done < total) {
      RecvAt<B> op{fd(), std::move(buf), done};
      auto r = co_await submit(std::move(op));
      buf = std::move(r.buf);
      if (!r.res) {
        if (co_await retry_after(r.res.error(), POLLIN)) continue;
        co_return IoResult<B>{wrap(r.res, "recv"), std::move(buf)};
      }
      if (*r.res == 0) {
        co_return IoResult<B>{
            Unexpected(Error{errno_code(ENODATA), "recv", peer_name(),
                             "unexpected end of stream"}),
            std::move(buf)};
      }
      done += *r.res;
    }
    co_return IoResult<B>{done, std::move(buf)};
  }
  // A multishot receive into buffers from `ring`; see RecvMultishot.
  MultishotStream<RecvMultishot> recv_multishot(BufferRing ring,
                                                MultishotOptions opts = {},
                                                std::stop_token st = {}) {
    return submit_multishot(RecvMultishot(fd(), std::move(ring)), opts,
                            std::move(st));
  }
  // Zero-copy send; `buf` is destroyed once the kernel's notification
  // arrives (see SendZc).
  template <OwnedBuffer B>
  Task<Result<std::size_t>> send_zc(B buf) {
    SendZc<B> op(fd(), std::move(buf));
    auto r = co_await submit(std::move(op));
    co_return wrap(r, "send_zc");
  }
  // shutdown(2) on the ring: SHUT_WR sends FIN after what is queued.
  Task<Result<void>> shutdown(int how = SHUT_WR);

 private:
  // Whether send_all/recv_exact go on after `ec`: EINTR at once, EAGAIN
  // once the socket is ready for `events` (nothing moved in either case).
  Task<bool> retry_after(std::error_code ec, unsigned events) {
    if (ec == std::errc::interrupted) co_return true;
    if (ec != std::errc::resource_unavailable_try_again) co_return false;
    PollAdd poll(fd(), events);
    (void)co_await submit(std::move(poll));  // on error, the retry tells
    co_return true;
  }

  // Send/recv from an offset into an owned buffer (send_all, recv_exact).
  template <class B>
  struct SendAt {
    static constexpr uint8_t kOpcode = IORING_OP_SEND;
    Fd fd;
    B buf;
    std::size_t offset;
    void prepare(io_uring_sqe& sqe) noexcept {
      const auto* p = reinterpret_cast<const char*>(std::data(buf)) + offset;
      io_uring_prep_send(&sqe, fd.value, p, io_len(std::size(buf) - offset),
                         MSG_NOSIGNAL);
    }
    shardio::IoResult<B> complete(const io_uring_cqe& cqe) {
      return {result_from_res(cqe.res), std::move(buf)};
    }
  };
  template <class B>
  struct RecvAt {
    static constexpr uint8_t kOpcode = IORING_OP_RECV;
    Fd fd;
    B buf;
    std::size_t offset;
    void prepare(io_uring_sqe& sqe) noexcept {
      auto* p = reinterpret_cast<char*>(std::data(buf)) + offset;
      io_uring_prep_recv(&sqe, fd.value, p, io_len(std::size(buf) - offset), 0);
    }
    shardio::IoResult<B> complete(const io_uring_cqe& cqe) {
      return {result_from_res(cqe.res), std::move(buf)};
    }
  };

  std::string peer_name() const;
  mutable SocketAddress peer_;  // cached by peer_name()
  Result<std::size_t> wrap(const shardio::Result<uint32_t>& r,
                           const char* op) const {
    if (r) return static_cast<std::size_t>(*r);
    return Unexpected(Error{r.error(), op, peer_name(), ""});
  }
};

class TcpStream : public StreamSocket {
 public:
  TcpStream() = default;
  // Adopts a connected TCP socket (from an accept, or another shard).
  explicit TcpStream(OwnedFd fd) noexcept : StreamSocket(std::move(fd)) {}
  TcpStream(OwnedFd fd, const SocketAddress& peer) noexcept
      : StreamSocket(std::move(fd), peer) {}

  // Connects to `addr`; with a timeout, a connect that takes longer fails
  // with ETIMEDOUT ("connect 10.0.0.1:80: timed out after 100 ms").
  // TCP_NODELAY is set unless `nodelay` is false.
  static Task<Result<TcpStream>> connect(SocketAddress addr,
                                         std::chrono::nanoseconds timeout = {},
                                         bool nodelay = true);

  Result<void> set_nodelay(bool on) {
    return set_option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
  }
};

// What listeners share: closing one also shuts it down (shutdown(2)), which
// ends an accept stream armed on it; a plain close(2) would leave the
// kernel's multishot accept holding the socket open and listening.
class ListenerBase : public SocketBase {
 public:
  ListenerBase() = default;
  explicit ListenerBase(OwnedFd fd) noexcept : SocketBase(std::move(fd)) {}
  ListenerBase(ListenerBase&&) noexcept = default;
  ListenerBase& operator=(ListenerBase&& o) noexcept {
    if (this != &o) {
      stop_listening();
      fd_ = std::move(o.fd_);
    }
    return *this;
  }
  ~ListenerBase() { stop_listening(); }
  // Ends the accept streams armed on this socket, then closes it on the
  // ring.
  Task<Result<void>> close() {
    stop_listening();
    return SocketBase::close();
  }

 private:
  void stop_listening() noexcept {
    if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
  }
};

class TcpListener : public ListenerBase {
 public:
  TcpListener() = default;
  explicit TcpListener(OwnedFd fd) noexcept : ListenerBase(std::move(fd)) {}

  // socket + setsockopt + bind + listen (synchronous: these do not block).
  // Port 0 picks a free port: see local_address().
  static Result<TcpListener> bind(const SocketAddress& addr,
                                  ListenOptions opts = {});

  // Every connection, as a multishot stream of OwnedFd items (wrap them in
  // TcpStream). The stream's last item is the error that ended it.
  MultishotStream<AcceptMultishot> accept(std::stop_token st = {}) {
    return submit_multishot(AcceptMultishot(fd()), {}, std::move(st));
  }
  // One connection, with its peer's address.
  Task<Result<TcpStream>> accept_one(std::stop_token st = {});
};

class UdpSocket : public SocketBase {
 public:
  UdpSocket() = default;
  explicit UdpSocket(OwnedFd fd) noexcept : SocketBase(std::move(fd)) {}

  // A socket bound to `addr` (port 0 picks one).
  static Result<UdpSocket> bind(const SocketAddress& addr);
  // Sets the default peer (connect(2)); then send() and recv() work without
  // addresses.
  Result<void> connect(const SocketAddress& peer);

  // One datagram to the connected peer.
  template <OwnedBuffer B>
  Task<IoResult<B>> send(B buf) {
    Send<B> op(fd(), std::move(buf));
    auto r = co_await submit(std::move(op));
    if (!r.res) {
      co_return IoResult<B>{Unexpected(Error{r.res.error(), "send", "", ""}),
                            std::move(r.buf)};
    }
    co_return IoResult<B>{static_cast<std::size_t>(*r.res), std::move(r.buf)};
  }
  // One datagram from the connected peer (cut to the size of `buf`).
  template <OwnedBuffer B>
  Task<IoResult<B>> recv(B buf, std::stop_token st = {}) {
    Recv<B> op(fd(), std::move(buf));
    auto r = co_await submit(std::move(op), std::move(st));
    if (!r.res) {
      co_return IoResult<B>{Unexpected(Error{r.res.error(), "recv", "", ""}),
                            std::move(r.buf)};
    }
    co_return IoResult<B>{static_cast<std::size_t>(*r.res), std::move(r.buf)};
  }

  template <OwnedBuffer B>
  Task<IoResult<B>> send_to(B buf, SocketAddress to) {
    SendMsg<B> op(fd(), std::move(buf), to);
    auto r = co_await submit(std::move(op));
    if (!r.res) {
      co_return IoResult<B>{
          Unexpected(Error{r.res.error(), "send_to", to.to_string(), ""}),
          std::move(r.buf)};
    }
    co_return IoResult<B>{static_cast<std::size_t>(*r.res), std::move(r.buf)};
  }

  // One datagram into `buf`, with its sender. A datagram larger than `buf`
  // is cut (truncated set).
  template <class B>
  struct Received {
    Result<std::size_t> res;
    B buf;
    SocketAddress from;
    bool truncated = false;
  };
  template <OwnedBuffer B>
  Task<Received<B>> recv_from(B buf, std::stop_token st = {}) {
    RecvMsg<B> op(fd(), std::move(buf));
    auto r = co_await submit(std::move(op), std::move(st));
    Received<B> out{0, std::move(r.buf), r.from,
                    (r.msg_flags & MSG_TRUNC) != 0};
    if (!r.res) {
      out.res = Unexpected(Error{r.res.error(), "recv_from", "", ""});
    } else {
      out.res = static_cast<std::size_t>(*r.res);
    }
    co_return out;
  }
  // Every datagram, as a multishot stream (Linux 6.0+).
  MultishotStream<RecvMsgMultishot> recv_multishot(BufferRing ring,
                                                   MultishotOptions opts = {},
                                                   std::stop_token st = {}) {
    return submit_multishot(RecvMsgMultishot(fd(), std::move(ring)), opts,
                            std::move(st));
  }
};

// A connected Unix-domain stream socket.
class UnixStream : public StreamSocket {
 public:
  UnixStream() = default;
  explicit UnixStream(OwnedFd fd) noexcept : StreamSocket(std::move(fd)) {}
  UnixStream(OwnedFd fd, const SocketAddress& peer) noexcept
      : StreamSocket(std::move(fd), peer) {}
  // Connects to a Unix socket path (or "@abstract").
  static Task<Result<UnixStream>> connect(std::string path);
  // A connected pair (socketpair(2)).
  static Result<std::pair<UnixStream, UnixStream>> pair();
};

class UnixListener : public ListenerBase {
 public:
  UnixListener() = default;
  explicit UnixListener(OwnedFd fd) noexcept : ListenerBase(std::move(fd)) {}
  // Binds and listens on `path` ("@name" for the abstract namespace). A
  // stale socket file at `path` is not removed: unlink it first.
  static Result<UnixListener> bind(std::string path, int backlog = 1024);
  MultishotStream<AcceptMultishot> accept(std::stop_token st = {}) {
    return submit_multishot(AcceptMultishot(fd()), {}, std::move(st));
  }
  Task<Result<UnixStream>> accept_one(std::stop_token st = {});
};

}  // namespace shardio::net
