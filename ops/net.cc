// Out-of-line parts of shardio/ops/net.h.
#include "shardio/ops/net.h"

#include <cerrno>

namespace shardio {

void Socket::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_socket(&sqe, domain, type | SOCK_CLOEXEC, protocol, 0);
}

Result<OwnedFd> Socket::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  return OwnedFd(cqe.res);
}

void Connect::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_connect(&sqe, fd.value, addr.get(), addr.size());
  fd.apply(sqe);
}

Result<void> Connect::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void Accept::prepare(io_uring_sqe& sqe) noexcept {
  *peer.size_ptr() = net::SocketAddress::capacity();
  io_uring_prep_accept(&sqe, fd.value, peer.get(), peer.size_ptr(),
                       flags | SOCK_CLOEXEC);
  fd.apply(sqe);
}

Result<Accepted> Accept::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  return Accepted{OwnedFd(cqe.res), peer};
}

void AcceptMultishot::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_multishot_accept(&sqe, fd.value, nullptr, nullptr,
                                 flags | SOCK_CLOEXEC);
  fd.apply(sqe);
}

Result<OwnedFd> AcceptMultishot::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  return OwnedFd(cqe.res);
}

namespace {
// The shared end policy of receives from a buffer ring: a dry ring re-arms
// once a buffer is back; an item the kernel ended on re-arms at once.
MultishotEnd ring_end_policy(BufferRing& ring, const io_uring_cqe& cqe,
                             Rearm rearm) {
  if (!ring) return MultishotEnd::kFinish;  // EINVAL: see prepare()
  if (cqe.res == -ENOBUFS) {
    if (ring.available() > 0) return MultishotEnd::kRearmNow;
    ring.notify_when_available(rearm);
    return MultishotEnd::kRearmLater;
  }
  return cqe.res > 0 ? MultishotEnd::kRearmNow : MultishotEnd::kFinish;
}
}  // namespace

// Without a ring there is nothing to select from (and group 0 may be
// another ring's): the op fails with EINVAL, which ends the stream.
void RecvMultishot::prepare(io_uring_sqe& sqe) noexcept {
  if (!ring) return prep_invalid(sqe, kOpcode);
  io_uring_prep_recv_multishot(&sqe, fd.value, nullptr, 0, flags);
  sqe.flags |= IOSQE_BUFFER_SELECT;
  sqe.buf_group = ring.group();
  fd.apply(sqe);
}

Result<ProvidedBuffer> RecvMultishot::complete(
    const io_uring_cqe& cqe) noexcept {
  // A CQE may carry a buffer even with an error; take() gives it back then.
  ProvidedBuffer buf = ring.take(cqe);
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  return buf;
}

MultishotEnd RecvMultishot::on_end(const io_uring_cqe& cqe, Rearm rearm) {
  return ring_end_policy(ring, cqe, rearm);
}

void RecvMsgMultishot::prepare(io_uring_sqe& sqe) noexcept {
  if (!ring) return prep_invalid(sqe, kOpcode);  // as for RecvMultishot
  hdr = msghdr{};
  hdr.msg_namelen = net::SocketAddress::capacity();
  io_uring_prep_recvmsg_multishot(&sqe, fd.value, &hdr,
                                  static_cast<unsigned>(flags));
  sqe.flags |= IOSQE_BUFFER_SELECT;
  sqe.buf_group = ring.group();
  fd.apply(sqe);
}

Result<Datagram> RecvMsgMultishot::complete(const io_uring_cqe& cqe) noexcept {
  ProvidedBuffer buf = ring.take(cqe);
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  auto* out = io_uring_recvmsg_validate(buf.data(), cqe.res, &hdr);
  if (out == nullptr) return Unexpected(errno_code(EMSGSIZE));
  Datagram d;
  const socklen_t name_len =
      out->namelen < hdr.msg_namelen ? out->namelen : hdr.msg_namelen;
  d.from = net::SocketAddress(
      static_cast<const sockaddr*>(io_uring_recvmsg_name(out)), name_len);
  const auto* payload =
      static_cast<const std::byte*>(io_uring_recvmsg_payload(out, &hdr));
  const unsigned len = io_uring_recvmsg_payload_length(out, cqe.res, &hdr);
  d.payload = std::span<const std::byte>(payload, len);
  d.truncated = (out->flags & MSG_TRUNC) != 0;
  d.buf = std::move(buf);
  return d;
}

MultishotEnd RecvMsgMultishot::on_end(const io_uring_cqe& cqe, Rearm rearm) {
  return ring_end_policy(ring, cqe, rearm);
}

void Shutdown::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_shutdown(&sqe, fd.value, how);
  fd.apply(sqe);
}

Result<void> Shutdown::complete(const io_uring_cqe& cqe) noexcept {
  return void_result_from_res(cqe.res);
}

void PollAdd::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_poll_add(&sqe, fd.value, events);
  fd.apply(sqe);
}

Result<unsigned> PollAdd::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  return static_cast<unsigned>(cqe.res);
}

void PollMultishot::prepare(io_uring_sqe& sqe) noexcept {
  io_uring_prep_poll_multishot(&sqe, fd.value, events);
  fd.apply(sqe);
}

Result<unsigned> PollMultishot::complete(const io_uring_cqe& cqe) noexcept {
  if (cqe.res < 0) return Unexpected(error_from_res(cqe.res));
  return static_cast<unsigned>(cqe.res);
}

}  // namespace shardio
