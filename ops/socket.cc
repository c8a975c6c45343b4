// The socket types of shardio/net.h.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_format.h"
#include "shardio/net.h"
#include "shardio/ops/timeout.h"

namespace shardio::net {

namespace {

Error sys_error(int err, const char* op, std::string target,
                std::string detail = {}) {
  return Error{errno_code(err), op, std::move(target), std::move(detail)};
}

Result<OwnedFd> make_socket(int domain, int type, const char* what,
                            const SocketAddress& addr) {
  const int fd = ::socket(domain, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unexpected(sys_error(errno, what, addr.to_string()));
  return OwnedFd(fd);
}

Result<void> setopt(int fd, int level, int name, int value, const char* what,
                    const SocketAddress& addr) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return Unexpected(sys_error(errno, what, addr.to_string()));
  }
  return {};
}

Result<OwnedFd> bind_listen(const SocketAddress& addr, int type, int backlog,
                            const ListenOptions* opts) {
  if (addr.size() == 0) {
    return Unexpected(
        Error{errno_code(EINVAL), "bind", "<unspecified>", "no address given"});
  }
  Result<OwnedFd> fd = make_socket(addr.family(), type, "socket", addr);
  if (!fd) return fd;
  if (opts != nullptr) {
    if (opts->reuse_addr) {
      if (auto r = setopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, 1,
                          "setsockopt SO_REUSEADDR", addr);
          !r)
        return Unexpected(r.error());
    }
    if (opts->reuse_port) {
      if (auto r = setopt(fd->get(), SOL_SOCKET, SO_REUSEPORT, 1,
                          "setsockopt SO_REUSEPORT", addr);
          !r)
        return Unexpected(r.error());
    }
    if (addr.is_ipv6()) {
      if (auto r =
              setopt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY,
                     opts->ipv6_only ? 1 : 0, "setsockopt IPV6_V6ONLY", addr);
          !r)
        return Unexpected(r.error());
    }
  }
  if (::bind(fd->get(), addr.get(), addr.size()) != 0) {
    const int err = errno;
    std::string why;
    if (err == EADDRINUSE) {
      why = addr.is_unix()
                ? "Address already in use (a socket file exists there: a "
                  "listener, or one left behind; unlink it first)"
                : "Address already in use (another process listens there; "
                  "pick another port, or 0 for any free one)";
    }
    return Unexpected(sys_error(err, "bind", addr.to_string(), why));
  }
  if (type == SOCK_STREAM && ::listen(fd->get(), backlog) != 0) {
    return Unexpected(sys_error(errno, "listen", addr.to_string()));
  }
  return fd;
}

}  // namespace

Result<SocketAddress> SocketBase::local_address() const {
  return SocketAddress::local_of(fd());
}

Result<SocketAddress> SocketBase::peer_address() const {
  return SocketAddress::peer_of(fd());
}

Result<void> SocketBase::set_option(int level, int name, int value) {
  if (::setsockopt(fd(), level, name, &value, sizeof(value)) != 0) {
    return Unexpected(
        sys_error(errno, "setsockopt", absl::StrFormat("fd %d", fd())));
  }
  return {};
}

Task<Result<void>> SocketBase::close() {
  const int fd = fd_.release();
  if (fd < 0) {
    co_return Unexpected(
        Error{errno_code(EBADF), "close", "", "the socket is not open"});
  }
  Close op(fd);
  auto r = co_await submit(std::move(op));
  if (!r) co_return Unexpected(sys_error(r.error().value(), "close", ""));
  co_return Result<void>{};
}

StreamSocket::StreamSocket(OwnedFd fd) noexcept : SocketBase(std::move(fd)) {
  if (fd_.valid()) {
    *peer_.size_ptr() = SocketAddress::capacity();
    if (::getpeername(fd_.get(), peer_.get(), peer_.size_ptr()) != 0) {
      peer_ = SocketAddress();
    }
  }
}

std::string StreamSocket::peer_name() const {
  if (peer_.size() == 0) {
    auto a = SocketAddress::peer_of(fd());
    if (!a) return absl::StrFormat("fd %d", fd());
    peer_ = *a;
  }
  return peer_.to_string();
}

Task<Result<void>> StreamSocket::shutdown(int how) {
  Shutdown op(fd(), how);
  auto r = co_await submit(std::move(op));
  if (!r) co_return Unexpected(Error{r.error(), "shutdown", peer_name(), ""});
  co_return Result<void>{};
}

Task<Result<TcpStream>> TcpStream::connect(SocketAddress addr,
                                           std::chrono::nanoseconds timeout,
                                           bool nodelay) {
  if (!addr.is_ipv4() && !addr.is_ipv6()) {
    co_return Unexpected(Error{errno_code(EAFNOSUPPORT), "connect",
                               addr.to_string(),
                               "not an IPv4 or IPv6 address"});
  }
  Socket sock(addr.family(), SOCK_STREAM);
  auto fd = co_await submit(std::move(sock));
  if (!fd) co_return Unexpected(Error{fd.error(), "socket", addr.to_string()});
  if (nodelay) {
    if (auto r = setopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, 1,
                        "setsockopt TCP_NODELAY", addr);
        !r)
      co_return Unexpected(r.error());
  }
  shardio::Result<void> r;
  if (timeout.count() > 0) {
    Connect op(fd->get(), addr);
    LinkTimeout lt(timeout);
    auto [res, fired] = co_await chain(std::move(op), std::move(lt));
    if (!res && fired && res.error().value() == ECANCELED) {
      const auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(timeout)
              .count();
      co_return Unexpected(Error{
          errno_code(ETIMEDOUT), "connect", addr.to_string(),
          us % 1000 == 0 ? absl::StrFormat("timed out after %d ms", us / 1000)
                         : absl::StrFormat("timed out after %d us", us)});
    }
    r = std::move(res);
  } else {
    Connect op(fd->get(), addr);
    r = co_await submit(std::move(op));
  }
  if (!r) co_return Unexpected(Error{r.error(), "connect", addr.to_string()});
  co_return TcpStream(std::move(*fd), addr);
}

Result<TcpListener> TcpListener::bind(const SocketAddress& addr,
                                      ListenOptions opts) {
  if (!addr.is_ipv4() && !addr.is_ipv6()) {
    return Unexpected(Error{errno_code(EAFNOSUPPORT), "bind", addr.to_string(),
                            "not an IPv4 or IPv6 address"});
  }
  auto fd = bind_listen(addr, SOCK_STREAM, opts.backlog, &opts);
  if (!fd) return Unexpected(fd.error());
  return TcpListener(std::move(*fd));
}

Task<Result<TcpStream>> TcpListener::accept_one(std::stop_token st) {
  Accept op(fd());
  auto r = co_await submit(std::move(op), std::move(st));
  if (!r) {
    auto local = local_address();
    co_return Unexpected(
        Error{r.error(), "accept", local ? local->to_string() : ""});
  }
  co_return TcpStream(std::move(r->fd), r->peer);
}

Result<UdpSocket> UdpSocket::bind(const SocketAddress& addr) {
  if (!addr.is_ipv4() && !addr.is_ipv6()) {
    return Unexpected(Error{errno_code(EAFNOSUPPORT), "bind", addr.to_string(),
                            "not an IPv4 or IPv6 address"});
  }
  auto fd = bind_listen(addr, SOCK_DGRAM, 0, nullptr);
  if (!fd) return Unexpected(fd.error());
  return UdpSocket(std::move(*fd));
}

Result<void> UdpSocket::connect(const SocketAddress& peer) {
  if (::connect(fd(), peer.get(), peer.size()) != 0) {
    return Unexpected(sys_error(errno, "connect", peer.to_string()));
  }
  return {};
}

Task<Result<UnixStream>> UnixStream::connect(std::string path) {
  auto addr = SocketAddress::unix_path(path);
  if (!addr) co_return Unexpected(addr.error());
  Socket sock(AF_UNIX, SOCK_STREAM);
  auto fd = co_await submit(std::move(sock));
  if (!fd) co_return Unexpected(Error{fd.error(), "socket", path});
  Connect op(fd->get(), *addr);
  auto r = co_await submit(std::move(op));
  if (!r) co_return Unexpected(Error{r.error(), "connect", path});
  co_return UnixStream(std::move(*fd), *addr);
}

Result<std::pair<UnixStream, UnixStream>> UnixStream::pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Unexpected(sys_error(errno, "socketpair", ""));
  }
  return std::pair<UnixStream, UnixStream>(UnixStream(OwnedFd(sv[0])),
                                           UnixStream(OwnedFd(sv[1])));
}

Result<UnixListener> UnixListener::bind(std::string path, int backlog) {
  auto addr = SocketAddress::unix_path(path);
  if (!addr) return Unexpected(addr.error());
  auto fd = bind_listen(*addr, SOCK_STREAM, backlog, nullptr);
  if (!fd) return Unexpected(fd.error());
  return UnixListener(std::move(*fd));
}

Task<Result<UnixStream>> UnixListener::accept_one(std::stop_token st) {
  Accept op(fd());
  auto r = co_await submit(std::move(op), std::move(st));
  if (!r) co_return Unexpected(Error{r.error(), "accept", ""});
  co_return UnixStream(std::move(r->fd), r->peer);
}

}  // namespace shardio::net
