// SocketAddress parsing and printing, resolve(), and net::Error.
#include "shardio/net/address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "absl/strings/str_format.h"
#include "shardio/cross_shard.h"

namespace shardio::net {

std::string Error::message() const {
  std::string out = op;
  if (!target.empty()) {
    if (!out.empty()) out += ' ';
    out += target;
  }
  if (!out.empty()) out += ": ";
  out += detail.empty() ? code.message() : detail;
  return out;
}

void throw_result_error(const Error& e) {
  throw std::system_error(e.code, e.message());
}

namespace {

Unexpected<Error> parse_error(std::string_view text, std::string why) {
  return Unexpected(Error{errno_code(EINVAL), "parse address",
                          absl::StrFormat("\"%s\"", text), std::move(why)});
}

constexpr const char* kForms =
    " (expected IPv4:PORT, [IPv6]:PORT, /unix/path or @abstract, e.g. "
    "127.0.0.1:8080 or [::1]:80)";

}  // namespace

SocketAddress::SocketAddress(const sockaddr* sa, socklen_t len) noexcept {
  if (sa == nullptr) return;
  if (len > sizeof(storage_)) len = sizeof(storage_);
  std::memcpy(&storage_, sa, len);
  len_ = len;
}

SocketAddress SocketAddress::ipv4(uint32_t host_order_addr,
                                  uint16_t port) noexcept {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(host_order_addr);
  a.len_ = sizeof(sockaddr_in);
  return a;
}

SocketAddress SocketAddress::ipv4_loopback(uint16_t port) noexcept {
  return ipv4(INADDR_LOOPBACK, port);
}
SocketAddress SocketAddress::ipv4_any(uint16_t port) noexcept {
  return ipv4(INADDR_ANY, port);
}

SocketAddress SocketAddress::ipv6_loopback(uint16_t port) noexcept {
  SocketAddress a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  in6->sin6_addr = in6addr_loopback;
  a.len_ = sizeof(sockaddr_in6);
  return a;
}

SocketAddress SocketAddress::ipv6_any(uint16_t port) noexcept {
  SocketAddress a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  in6->sin6_addr = in6addr_any;
  a.len_ = sizeof(sockaddr_in6);
  return a;
}

Result<SocketAddress> SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty()) {
    return Unexpected(
        Error{errno_code(EINVAL), "unix address", "\"\"", "the path is empty"});
  }
  if (path.size() >= sizeof(un->sun_path)) {
    return Unexpected(Error{
        errno_code(ENAMETOOLONG), "unix address", std::string(path),
        absl::StrFormat("the path is %d bytes; a Unix socket path holds at "
                        "most %d",
                        path.size(), sizeof(un->sun_path) - 1)});
  }
  if (path.find('\0') != std::string_view::npos) {
    return Unexpected(Error{errno_code(EINVAL), "unix address",
                            std::string(path), "the path contains a NUL"});
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path[0] == '@') {
    un->sun_path[0] = '\0';  // the abstract namespace: no terminator counted
    a.len_ =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                    path.size() + 1);
  }
  return a;
}

Result<SocketAddress> SocketAddress::from_host_port(std::string_view host,
                                                    int port) {
  if (port < 0 || port > 65535) {
    return Unexpected(
        Error{errno_code(EINVAL), "parse address",
              absl::StrFormat("\"%s\" port %d", host, port),
              absl::StrFormat("port %d is out of range (0..65535)", port)});
  }
  if (host.find('\0') != std::string_view::npos) {
    return parse_error(host, "the host contains a NUL byte");
  }
  const std::string h(host);
  SocketAddress a;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    in->sin_addr = v4;
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  // IPv6, with an optional %scope (an interface name or index).
  std::string addr = h;
  uint32_t scope = 0;
  if (const auto pct = h.find('%'); pct != std::string::npos) {
    addr = h.substr(0, pct);
    const std::string zone = h.substr(pct + 1);
    scope = if_nametoindex(zone.c_str());
    if (scope == 0) {
      unsigned idx = 0;
      const auto [p, ec] =
          std::from_chars(zone.data(), zone.data() + zone.size(), idx);
      if (ec != std::errc() || p != zone.data() + zone.size() || zone.empty())
        return parse_error(host, "unknown IPv6 scope \"" + zone + "\"");
      scope = idx;
    }
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, addr.c_str(), &v6) == 1) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    in6->sin6_addr = v6;
    in6->sin6_scope_id = scope;
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return parse_error(host,
                     "not a numeric IPv4 or IPv6 address (names go through "
                     "net::resolve)");
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  if (text.empty()) return parse_error(text, std::string("empty") + kForms);
  if (text[0] == '/' || text[0] == '.' || text[0] == '@') {
    return unix_path(text);
  }
  std::string_view host;
  std::string_view port;
  if (text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return parse_error(text, "missing ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return parse_error(text, std::string("missing :PORT") + kForms);
    }
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return parse_error(text, std::string("missing :PORT") + kForms);
    }
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return parse_error(text, "an IPv6 address needs brackets: [ADDR]:PORT");
    }
    port = text.substr(colon + 1);
  }
  if (host.empty()) return parse_error(text, "missing host before the port");
  if (port.empty()) return parse_error(text, "missing port after ':'");
  long value = 0;
  const auto [p, ec] =
      std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && p == port.data() + port.size() &&
       (value < 0 || value > 65535))) {
    return parse_error(text, absl::StrFormat("port %s is out of range "
                                             "(0..65535)",
                                             port));
  }
  if (ec != std::errc() || p != port.data() + port.size()) {
    return parse_error(text,
                       absl::StrFormat("port \"%s\" is not a number", port));
  }
  Result<SocketAddress> a = from_host_port(host, static_cast<int>(value));
  if (!a) {
    Error e = a.error();
    e.target = absl::StrFormat("\"%s\"", text);
    return Unexpected(std::move(e));
  }
  return a;
}

Result<SocketAddress> SocketAddress::local_of(int fd) {
  SocketAddress a;
  a.len_ = sizeof(a.storage_);
  if (::getsockname(fd, a.get(), &a.len_) != 0) {
    return Unexpected(Error{errno_code(errno), "getsockname",
                            absl::StrFormat("fd %d", fd), ""});
  }
  return a;
}

Result<SocketAddress> SocketAddress::peer_of(int fd) {
  SocketAddress a;
  a.len_ = sizeof(a.storage_);
  if (::getpeername(fd, a.get(), &a.len_) != 0) {
    return Unexpected(Error{errno_code(errno), "getpeername",
                            absl::StrFormat("fd %d", fd), ""});
  }
  return a;
}

uint16_t SocketAddress::port() const noexcept {
  if (is_ipv4()) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  if (is_ipv6()) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

void SocketAddress::set_port(uint16_t port) noexcept {
  if (is_ipv4()) {
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  } else if (is_ipv6()) {
    reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
  }
}

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_ipv4()) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage_);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    return absl::StrFormat("%s:%d", buf, port());
  }
  if (is_ipv6()) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    if (in6->sin6_scope_id != 0) {
      return absl::StrFormat("[%s%%%d]:%d", buf, in6->sin6_scope_id, port());
    }
    return absl::StrFormat("[%s]:%d", buf, port());
  }
  if (is_unix()) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
    if (len_ <= offsetof(sockaddr_un, sun_path)) {
      return "<unnamed unix socket>";
    }
    const std::size_t n = len_ - offsetof(sockaddr_un, sun_path);
    if (un->sun_path[0] == '\0') {
      return absl::StrFormat("@%s", std::string_view(un->sun_path + 1, n - 1));
    }
    return std::string(un->sun_path, strnlen(un->sun_path, n));
  }
  return "<unspecified>";
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

Task<Result<std::vector<SocketAddress>>> resolve(std::string host, int port,
                                                 int family) {
  if (port < 0 || port > 65535) {
    co_return Unexpected(
        Error{errno_code(EINVAL), "resolve",
              absl::StrFormat("%s port %d", host, port),
              absl::StrFormat("port %d is out of range (0..65535)", port)});
  }
  if (host.empty()) {
    co_return Unexpected(
        Error{errno_code(EINVAL), "resolve", "\"\"", "the host name is empty"});
  }
  auto lookup = [host, port, family]() -> Result<std::vector<SocketAddress>> {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) {
      const int err = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
      return Unexpected(
          Error{errno_code(err), "resolve", host, ::gai_strerror(rc)});
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
    std::vector<SocketAddress> out;
    for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
      out.emplace_back(p->ai_addr, p->ai_addrlen);
    }
    return out;
  };
  co_return co_await spawn_blocking(std::move(lookup));
}

}  // namespace shardio::net
