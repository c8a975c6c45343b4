// address_fuzzer: arbitrary bytes into net::SocketAddress — parse(),
// unix_path(), from_host_port() and the raw (sockaddr, len) constructor —
// checking, besides the sanitizers' verdict:
//   - a parsed address has a known family and a length that fits it;
//   - to_string() of a parsed address parses back to an EQUAL address (by
//     value: "[1.2.3.4]:80" prints as "1.2.3.4:80", a scope name prints as
//     its index), and printing is then stable;
//   - an input with a NUL byte never parses (C-string calls must not see a
//     shortened input);
//   - unix_path() keeps the text (to_string() == input) or fails with
//     EINVAL (empty, NUL) or ENAMETOOLONG (>= 108 bytes), exactly then;
//   - every error has the code EINVAL or ENAMETOOLONG and a non-empty
//     message().
//
// Input: byte 0 picks the entry point, the rest is the text (or, for the
// raw constructor, a length byte and the sockaddr's bytes).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "shardio/net/address.h"

namespace {

using shardio::errno_code;
using shardio::net::Error;
using shardio::net::SocketAddress;

#define FUZZ_CHECK(cond, ...)                                           \
  do {                                                                  \
    if (!(cond)) [[unlikely]] {                                         \
      std::fprintf(stderr,                                              \
                   "address_fuzzer: check failed: %s (%s:%d): ", #cond, \
                   __FILE__, __LINE__);                                 \
      std::fprintf(stderr, __VA_ARGS__);                                \
      std::fputc('\n', stderr);                                         \
      std::fflush(stderr);                                              \
      __builtin_trap();                                                 \
    }                                                                   \
  } while (0)

// The input, printable, for messages.
std::string show(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

void check_error(const Error& e, std::string_view input, bool may_be_too_long) {
  const bool einval = e.code == errno_code(EINVAL);
  const bool toolong = e.code == errno_code(ENAMETOOLONG);
  FUZZ_CHECK(einval || (may_be_too_long && toolong),
             "error code %d (%s) for \"%s\"", e.code.value(),
             e.code.message().c_str(), show(input).c_str());
  FUZZ_CHECK(!e.message().empty(), "an empty error message for \"%s\"",
             show(input).c_str());
}

void check_shape(const SocketAddress& a, std::string_view input) {
  switch (a.family()) {
    case AF_INET:
      FUZZ_CHECK(a.size() == sizeof(sockaddr_in), "IPv4 size %u for \"%s\"",
                 a.size(), show(input).c_str());
      break;
    case AF_INET6:
      FUZZ_CHECK(a.size() == sizeof(sockaddr_in6), "IPv6 size %u for \"%s\"",
                 a.size(), show(input).c_str());
      break;
    case AF_UNIX:
      FUZZ_CHECK(a.size() > offsetof(sockaddr_un, sun_path) &&
                     a.size() <= sizeof(sockaddr_un),
                 "unix size %u for \"%s\"", a.size(), show(input).c_str());
      FUZZ_CHECK(a.port() == 0, "a unix address with a port");
      break;
    default:
      FUZZ_CHECK(false, "family %d for \"%s\"", a.family(),
                 show(input).c_str());
  }
}

// Prints `a`, parses the text back (parse() for IP and /, ., @ paths,
// unix_path() otherwise) and wants the same address and the same text.
void check_round_trip(const SocketAddress& a, std::string_view input) {
  const std::string text = a.to_string();
  FUZZ_CHECK(!text.empty(), "empty to_string() for \"%s\"",
             show(input).c_str());
  const bool via_parse =
      !a.is_unix() || text[0] == '/' || text[0] == '.' || text[0] == '@';
  auto back =
      via_parse ? SocketAddress::parse(text) : SocketAddress::unix_path(text);
  FUZZ_CHECK(back.has_value(),
             "\"%s\" printed as \"%s\", which does not "
             "parse: %s",
             show(input).c_str(), show(text).c_str(),
             back.error().message().c_str());
  FUZZ_CHECK(*back == a,
             "\"%s\" printed as \"%s\", which parses to a "
             "different address (\"%s\")",
             show(input).c_str(), show(text).c_str(),
             show(back->to_string()).c_str());
  FUZZ_CHECK(back->to_string() == text,
             "printing is not stable: \"%s\" then "
             "\"%s\"",
             show(text).c_str(), show(back->to_string()).c_str());
  FUZZ_CHECK(back->port() == a.port(), "port %u became %u", a.port(),
             back->port());
}

void fuzz_parse(std::string_view text) {
  auto a = SocketAddress::parse(text);
  if (!a.has_value()) {
    check_error(a.error(), text, /*may_be_too_long=*/true);
    return;
  }
  FUZZ_CHECK(text.find('\0') == std::string_view::npos,
             "\"%s\" contains a NUL but parses (as \"%s\")", show(text).c_str(),
             show(a->to_string()).c_str());
  check_shape(*a, text);
  if (!text.empty() && (text[0] == '/' || text[0] == '.' || text[0] == '@')) {
    FUZZ_CHECK(a->is_unix(), "\"%s\" is not a unix address",
               show(text).c_str());
    FUZZ_CHECK(a->to_string() == text, "unix \"%s\" prints as \"%s\"",
               show(text).c_str(), show(a->to_string()).c_str());
  } else {
    FUZZ_CHECK(a->is_ipv4() || a->is_ipv6(), "\"%s\" is not an IP address",
               show(text).c_str());
  }
  check_round_trip(*a, text);
}

void fuzz_unix_path(std::string_view text) {
  auto a = SocketAddress::unix_path(text);
  const bool has_nul = text.find('\0') != std::string_view::npos;
  const bool too_long = text.size() >= sizeof(sockaddr_un::sun_path);
  if (!a.has_value()) {
    check_error(a.error(), text, /*may_be_too_long=*/true);
    if (too_long) {
      FUZZ_CHECK(a.error().code == errno_code(ENAMETOOLONG),
                 "a %zu-byte path fails with %s", text.size(),
                 a.error().message().c_str());
    } else {
      FUZZ_CHECK(text.empty() || has_nul, "unix_path(\"%s\") fails: %s",
                 show(text).c_str(), a.error().message().c_str());
    }
    return;
  }
  FUZZ_CHECK(!text.empty() && !has_nul && !too_long,
             "unix_path(\"%s\") succeeds", show(text).c_str());
  check_shape(*a, text);
  FUZZ_CHECK(a->to_string() == text, "unix_path(\"%s\") prints as \"%s\"",
             show(text).c_str(), show(a->to_string()).c_str());
  check_round_trip(*a, text);
}

void fuzz_host_port(std::string_view rest) {
  if (rest.size() < 2) return;
  const int port = static_cast<int8_t>(rest[0]) * 1024 +
                   static_cast<uint8_t>(rest[1]) * 4;  // -131072 .. 130044
  const std::string_view host = rest.substr(2);
  auto a = SocketAddress::from_host_port(host, port);
  if (!a.has_value()) {
    check_error(a.error(), host, /*may_be_too_long=*/false);
    return;
  }
  FUZZ_CHECK(port >= 0 && port <= 65535, "port %d accepted", port);
  FUZZ_CHECK(host.find('\0') == std::string_view::npos,
             "host \"%s\" contains a NUL but is accepted (as \"%s\")",
             show(host).c_str(), show(a->to_string()).c_str());
  FUZZ_CHECK(a->is_ipv4() || a->is_ipv6(), "from_host_port made family %d",
             a->family());
  FUZZ_CHECK(a->port() == port, "port %d came back as %u", port, a->port());
  check_shape(*a, host);
  check_round_trip(*a, host);
}

// Whatever bytes and length: printing and comparing must stay in bounds.
void fuzz_raw(std::string_view rest) {
  if (rest.empty()) return;
  const auto len = static_cast<socklen_t>(static_cast<uint8_t>(rest[0]) % 140);
  sockaddr_storage ss{};
  const std::size_t n = std::min(rest.size() - 1, sizeof(ss));
  std::memcpy(&ss, rest.data() + 1, n);
  const SocketAddress a(reinterpret_cast<const sockaddr*>(&ss), len);
  FUZZ_CHECK(a.size() <= SocketAddress::capacity(), "size %u", a.size());
  const std::string text = a.to_string();
  FUZZ_CHECK(!text.empty(), "empty to_string() of a raw address");
  FUZZ_CHECK(a == a, "a raw address is not equal to itself");
  (void)a.port();
  SocketAddress b = a;
  b.set_port(1);
  (void)b.to_string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1),
                              size - 1);
  switch (data[0] % 4) {
    case 0:
      fuzz_parse(rest);
      break;
    case 1:
      fuzz_unix_path(rest);
      break;
    case 2:
      fuzz_host_port(rest);
      break;
    default:
      fuzz_raw(rest);
      break;
  }
  return 0;
}
