// shardio/ops/net.h — socket ops: Socket, Connect, Accept, AcceptMultishot,
// Send, Recv, RecvMultishot, SendMsg, RecvMsg, RecvMsgMultishot, SendZc,
// Shutdown, PollAdd, PollMultishot. (Close is in ops/file.h.)
//
// Like every op, each is a plain struct written against the public Operation
// API (operation.h, multishot.h); the types in net.h are built from them.
//
//   auto fd = co_await submit(Socket(AF_INET, SOCK_STREAM));
//   auto r = co_await submit(Connect(fd->get(), addr));
//   auto [n, buf] = co_await submit(Send(fd->get(), std::string("hi")));
//   auto stream = submit_multishot(RecvMultishot(fd->get(), ring));
//
// Ops that move data own their buffer (any OwnedBuffer) until the final CQE
// and hand it back with the result. Sends pass MSG_NOSIGNAL by default: a
// peer that went away is EPIPE, not SIGPIPE. Ops that create descriptors
// yield OwnedFd. Each names its opcode (kOpcode): a kernel without it yields
// EOPNOTSUPP. The multishot variants use older opcodes with newer flags
// (docs/kernel-requirements.md): a kernel that has the opcode but not the
// multishot mode reports EINVAL.
//
// Multishot ops (kMultishot) go through submit_multishot(); their streams
// re-arm after the kernel ends them early (ENOBUFS when the buffer ring ran
// dry: they wait for a buffer to come back first).
//
// Thread-safety: plain op values; see operation.h.
#pragma once

#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <utility>

#include "shardio/buffer.h"
#include "shardio/buffer_ring.h"
#include "shardio/multishot.h"
#include "shardio/net/address.h"
#include "shardio/ops/file.h"
#include "shardio/owned_fd.h"
#include "shardio/result.h"

namespace shardio {

// socket(2) (always SOCK_CLOEXEC); yields the new socket.
struct Socket {
  static constexpr uint8_t kOpcode = IORING_OP_SOCKET;
  Socket(int domain, int type, int protocol = 0) noexcept
      : domain(domain), type(type), protocol(protocol) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<OwnedFd> complete(const io_uring_cqe& cqe) noexcept;
  int domain;
  int type;
  int protocol;
};

// connect(2) to `addr`.
struct Connect {
  static constexpr uint8_t kOpcode = IORING_OP_CONNECT;
  Connect(Fd fd, net::SocketAddress addr) noexcept : fd(fd), addr(addr) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  net::SocketAddress addr;  // the kernel reads it: owned here
};

// What Accept yields: the connection and the peer's address.
struct Accepted {
  OwnedFd fd;
  net::SocketAddress peer;
};

// accept4(2) of one connection (SOCK_CLOEXEC added to `flags`).
struct Accept {
  static constexpr uint8_t kOpcode = IORING_OP_ACCEPT;
  explicit Accept(Fd fd, int flags = 0) noexcept : fd(fd), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<Accepted> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  int flags;
  net::SocketAddress peer;  // filled by the kernel
};

// Multishot accept: one item per connection (peers via
// SocketAddress::peer_of; one shared address buffer cannot serve many CQEs).
// The final item is the error that ended it (e.g. -ECANCELED).
struct AcceptMultishot {
  static constexpr uint8_t kOpcode = IORING_OP_ACCEPT;
  static constexpr bool kMultishot = true;
  explicit AcceptMultishot(Fd fd, int flags = 0) noexcept
      : fd(fd), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<OwnedFd> complete(const io_uring_cqe& cqe) noexcept;
  // A connection the kernel ended on (fd 0 included) re-arms; an error ends
  // the stream.
  MultishotEnd on_end(const io_uring_cqe& cqe, Rearm) noexcept {
    return cqe.res >= 0 ? MultishotEnd::kRearmNow : MultishotEnd::kFinish;
  }
  Fd fd;
  int flags;
};

// send(2) of the whole of `buf` (the count says how much went).
template <OwnedBuffer B>
struct Send {
  static constexpr uint8_t kOpcode = IORING_OP_SEND;
  Send(Fd fd, B buf, int flags = MSG_NOSIGNAL)
      : fd(fd), buf(std::move(buf)), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_send(&sqe, fd.value, std::data(buf), io_len(std::size(buf)),
                       flags);
    fd.apply(sqe);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }
  Fd fd;
  B buf;
  int flags;
};

// recv(2) into the whole of `buf`; 0 bytes means the peer shut down.
template <OwnedBuffer B>
struct Recv {
  static constexpr uint8_t kOpcode = IORING_OP_RECV;
  Recv(Fd fd, B buf, int flags = 0)
      : fd(fd), buf(std::move(buf)), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_recv(&sqe, fd.value, std::data(buf), io_len(std::size(buf)),
                       flags);
    fd.apply(sqe);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }
  Fd fd;
  B buf;
  int flags;
};

// Multishot recv into buffers the kernel picks from `ring`: one item per
// chunk received. An empty buffer is the peer's shutdown (the last item);
// an error ends the stream. When the ring runs dry the stream waits for a
// buffer to come back and re-arms (unless MultishotOptions::rearm is false,
// in which case -ENOBUFS is the last item). An empty `ring` (no
// BufferRing) makes EINVAL the only item.
struct RecvMultishot {
  static constexpr uint8_t kOpcode = IORING_OP_RECV;
  static constexpr bool kMultishot = true;
  RecvMultishot(Fd fd, BufferRing ring, int flags = 0) noexcept
      : fd(fd), ring(std::move(ring)), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<ProvidedBuffer> complete(const io_uring_cqe& cqe) noexcept;
  MultishotEnd on_end(const io_uring_cqe& cqe, Rearm rearm);
  Fd fd;
  BufferRing ring;
  int flags;
};

// What RecvMsg yields.
template <class B>
struct RecvMsgResult {
  Result<uint32_t> res;
  B buf;
  net::SocketAddress from;  // the sender (datagram sockets)
  int msg_flags = 0;        // MSG_TRUNC, ...
};

// sendmsg(2) of `buf`, to `to` when given (datagram sockets).
template <OwnedBuffer B>
struct SendMsg {
  static constexpr uint8_t kOpcode = IORING_OP_SENDMSG;
  SendMsg(Fd fd, B buf, net::SocketAddress to = {}, int flags = MSG_NOSIGNAL)
      : fd(fd), buf(std::move(buf)), to(to), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    iov = iovec{const_cast<void*>(static_cast<const void*>(std::data(buf))),
                std::size(buf)};
    hdr = msghdr{};
    if (to.size() != 0) {
      hdr.msg_name = to.get();
      hdr.msg_namelen = to.size();
    }
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    io_uring_prep_sendmsg(&sqe, fd.value, &hdr, static_cast<unsigned>(flags));
    fd.apply(sqe);
  }
  IoResult<B> complete(const io_uring_cqe& cqe) {
    return IoResult<B>{result_from_res(cqe.res), std::move(buf)};
  }
  Fd fd;
  B buf;
  net::SocketAddress to;
  int flags;
  iovec iov{};
  msghdr hdr{};
};

// recvmsg(2) into `buf`, with the sender's address.
template <OwnedBuffer B>
struct RecvMsg {
  static constexpr uint8_t kOpcode = IORING_OP_RECVMSG;
  RecvMsg(Fd fd, B buf, int flags = 0)
      : fd(fd), buf(std::move(buf)), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    iov = iovec{static_cast<void*>(std::data(buf)), std::size(buf)};
    hdr = msghdr{};
    hdr.msg_name = from.get();
    hdr.msg_namelen = net::SocketAddress::capacity();
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    io_uring_prep_recvmsg(&sqe, fd.value, &hdr, static_cast<unsigned>(flags));
    fd.apply(sqe);
  }
  RecvMsgResult<B> complete(const io_uring_cqe& cqe) {
    *from.size_ptr() = cqe.res >= 0 ? hdr.msg_namelen : 0;
    return RecvMsgResult<B>{result_from_res(cqe.res), std::move(buf), from,
                            hdr.msg_flags};
  }
  Fd fd;
  B buf;
  int flags;
  net::SocketAddress from;
  iovec iov{};
  msghdr hdr{};
};

// One datagram from RecvMsgMultishot: the payload is a view into `buf`.
struct Datagram {
  ProvidedBuffer buf;       // holds header, address and payload
  net::SocketAddress from;  // the sender
  std::span<const std::byte> payload;
  bool truncated = false;  // the payload did not fit the ring's buffer
};

// Multishot recvmsg (Linux 6.0+) with buffers from `ring`: one item per
// datagram, with its sender. Each buffer also holds a small header and the
// address, so size the ring's buffers above the largest datagram. An empty
// `ring` makes EINVAL the only item.
struct RecvMsgMultishot {
  static constexpr uint8_t kOpcode = IORING_OP_RECVMSG;
  static constexpr bool kMultishot = true;
  RecvMsgMultishot(Fd fd, BufferRing ring, int flags = 0) noexcept
      : fd(fd), ring(std::move(ring)), flags(flags) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<Datagram> complete(const io_uring_cqe& cqe) noexcept;
  MultishotEnd on_end(const io_uring_cqe& cqe, Rearm rearm);
  Fd fd;
  BufferRing ring;
  int flags;
  msghdr hdr{};  // the kernel reads msg_namelen/msg_controllen: owned here
};

// IORING_SEND_ZC_REPORT_USAGE and IORING_NOTIF_USAGE_ZC_COPIED (Linux 6.2+;
// liburing 2.3's header lacks them): with the first in zc_flags, the
// notification's res has the second set when the kernel copied the data
// after all (as it does on loopback).
inline constexpr unsigned kSendZcReportUsage = 1U << 3;
inline constexpr uint32_t kZcCopied = 1U << 31;

// Zero-copy send (Linux 6.0+). Two CQEs: the result, then a notification
// once the kernel no longer needs the buffer. `co_await` returns at the
// result; the op, and so `buf`, lives until the notification and is then
// destroyed — a buffer type whose destructor recycles it (ProvidedBuffer,
// FixedBuffer, a pool handle) is the way to reuse memory.
template <OwnedBuffer B>
struct SendZc {
  static constexpr uint8_t kOpcode = IORING_OP_SEND_ZC;
  SendZc(Fd fd, B buf, int flags = MSG_NOSIGNAL, unsigned zc_flags = 0)
      : fd(fd), buf(std::move(buf)), flags(flags), zc_flags(zc_flags) {}
  void prepare(io_uring_sqe& sqe) noexcept {
    io_uring_prep_send_zc(&sqe, fd.value, std::data(buf),
                          io_len(std::size(buf)), flags, zc_flags);
    fd.apply(sqe);
  }
  Result<uint32_t> complete(const io_uring_cqe& cqe) noexcept {
    return result_from_res(cqe.res);
  }
  // The notification CQE (IORING_CQE_F_NOTIF).
  void notify(const io_uring_cqe& cqe) noexcept {
    notified = true;
    copied = (static_cast<uint32_t>(cqe.res) & kZcCopied) != 0;
  }
  Fd fd;
  B buf;
  int flags;
  unsigned zc_flags;
  bool notified = false;
  // The kernel copied after all (e.g. loopback); reported only with
  // kSendZcReportUsage. Read it in an op that wraps SendZc: the op is
  // destroyed right after the notification.
  bool copied = false;
};

// shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR.
struct Shutdown {
  static constexpr uint8_t kOpcode = IORING_OP_SHUTDOWN;
  Shutdown(Fd fd, int how) noexcept : fd(fd), how(how) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<void> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  int how;
};

// One-shot poll: yields the ready events (POLLIN, ...).
struct PollAdd {
  static constexpr uint8_t kOpcode = IORING_OP_POLL_ADD;
  PollAdd(Fd fd, unsigned events) noexcept : fd(fd), events(events) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<unsigned> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  unsigned events;
};

// Multishot poll: one item of ready events per readiness change, until
// cancelled.
struct PollMultishot {
  static constexpr uint8_t kOpcode = IORING_OP_POLL_ADD;
  static constexpr bool kMultishot = true;
  PollMultishot(Fd fd, unsigned events) noexcept : fd(fd), events(events) {}
  void prepare(io_uring_sqe& sqe) noexcept;
  Result<unsigned> complete(const io_uring_cqe& cqe) noexcept;
  Fd fd;
  unsigned events;
};

}  // namespace shardio
