// shardio/net/address.h — socket addresses, their parsing and resolution, and
// the error type of the network API.
//
//   auto a = shardio::net::SocketAddress::parse("127.0.0.1:8080");
//   auto b = shardio::net::SocketAddress::parse("[::1]:80");
//   auto u = shardio::net::SocketAddress::unix_path("/run/app.sock");
//   auto r = co_await shardio::net::resolve("localhost", 80);  // getaddrinfo
//                                                              // on the
//                                                              // blocking pool
//
// parse() takes numeric addresses only (it never blocks); names go through
// resolve(), which runs getaddrinfo(3) on the runtime's blocking thread pool.
//
// Thread-safety: plain values; resolve() must be awaited on a shard.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "shardio/result.h"
#include "shardio/task.h"

namespace shardio::net {

// What went wrong in a network call, and where.
struct Error {
  std::error_code code{};
  // The call's name: "connect", "bind", "parse address", "resolve", ...
  std::string op{};
  // The address or input concerned (may be empty).
  std::string target{};
  // Replaces code.message() in message() when not empty.
  std::string detail{};

  // "OP TARGET: DETAIL", e.g. "connect 127.0.0.1:1: Connection refused".
  std::string message() const;
};

// Throws std::system_error(e.code, e.message()). Found by ADL from
// Result<T, net::Error>::value().
[[noreturn]] void throw_result_error(const Error& e);

template <class T>
using Result = shardio::Result<T, Error>;

// An IPv4, IPv6 or Unix-domain socket address.
class SocketAddress {
 public:
  SocketAddress() = default;
  // Copies `len` bytes of `sa` (at most sizeof(sockaddr_storage)).
  SocketAddress(const sockaddr* sa, socklen_t len) noexcept;

  // "A.B.C.D:PORT", "[IPV6]:PORT" (with an optional %scope) or, for a Unix
  // socket, a path that starts with '/' or '.', or "@name" for the abstract
  // namespace. Ports are 0..65535. Errors say what is wrong with the input
  // (EINVAL).
  static Result<SocketAddress> parse(std::string_view text);
  // A numeric host (IPv4 or IPv6, no brackets) and a port.
  static Result<SocketAddress> from_host_port(std::string_view host, int port);
  static SocketAddress ipv4(uint32_t host_order_addr, uint16_t port) noexcept;
  static SocketAddress ipv4_loopback(uint16_t port) noexcept;
  static SocketAddress ipv6_loopback(uint16_t port) noexcept;
  static SocketAddress ipv4_any(uint16_t port) noexcept;
  static SocketAddress ipv6_any(uint16_t port) noexcept;
  // A path in the file system, or "@name" for the abstract namespace. Paths
  // longer than sun_path (107 bytes) are refused (ENAMETOOLONG).
  static Result<SocketAddress> unix_path(std::string_view path);

  // The local or peer address of a socket (getsockname/getpeername).
  static Result<SocketAddress> local_of(int fd);
  static Result<SocketAddress> peer_of(int fd);

  int family() const noexcept { return storage_.ss_family; }
  bool is_ipv4() const noexcept { return family() == AF_INET; }
  bool is_ipv6() const noexcept { return family() == AF_INET6; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  // The port of an IP address (0 otherwise).
  uint16_t port() const noexcept;
  void set_port(uint16_t port) noexcept;

  const sockaddr* get() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  socklen_t* size_ptr() noexcept { return &len_; }
  static constexpr socklen_t capacity() noexcept {
    return sizeof(sockaddr_storage);
  }

  // "127.0.0.1:8080", "[::1]:80", "/path", "@name"; "<unspecified>" when
  // empty.
  std::string to_string() const;

  friend bool operator==(const SocketAddress& a,
                         const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

// Resolves `host` (a name or a numeric address) for `port` with
// getaddrinfo(3) on the runtime's blocking pool. `family` AF_UNSPEC returns
// IPv4 and IPv6 results in the resolver's order. An unknown name is an
// error whose message carries gai_strerror's text.
Task<Result<std::vector<SocketAddress>>> resolve(std::string host, int port,
                                                 int family = AF_UNSPEC);

}  // namespace shardio::net
