// Tests for net/address.h: SocketAddress::parse and its error messages,
// to_string round trips, ports, equality, unix_path, from_host_port, and
// net::resolve (getaddrinfo on the blocking pool).
#include "shardio/net/address.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "shardio/result.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

namespace shardio::net {
namespace {

using testing::HasSubstr;

// Whether `a` is 127.0.0.0/8 or ::1.
bool is_loopback(const SocketAddress& a) {
  if (a.is_ipv4()) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(a.get());
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (a.is_ipv6()) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a.get());
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

// ---------------------------------------------------------------------------
// Parsing what is valid.

TEST(AddressTest, ParsesIpv4WithPort) {
  auto a = SocketAddress::parse("127.0.0.1:8080");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_ipv4());
  EXPECT_FALSE(a->is_ipv6());
  EXPECT_FALSE(a->is_unix());
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->size(), sizeof(sockaddr_in));
  EXPECT_EQ(a->port(), 8080);
  const auto* in = reinterpret_cast<const sockaddr_in*>(a->get());
  EXPECT_EQ(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
  EXPECT_EQ(ntohs(in->sin_port), 8080);
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(*a, SocketAddress::ipv4_loopback(8080));
}

TEST(AddressTest, ParsesIpv6InBrackets) {
  auto a = SocketAddress::parse("[::1]:80");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_ipv6());
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(a->size(), sizeof(sockaddr_in6));
  EXPECT_EQ(a->port(), 80);
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->get());
  EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
  EXPECT_EQ(in6->sin6_scope_id, 0u);
  EXPECT_EQ(a->to_string(), "[::1]:80");
  EXPECT_EQ(*a, SocketAddress::ipv6_loopback(80));
}

TEST(AddressTest, ParsesIpv6WithAScopeName) {
  const unsigned lo = ::if_nametoindex("lo");
  if (lo == 0) GTEST_SKIP() << "no interface named lo here";
  auto a = SocketAddress::parse("[fe80::1%lo]:1");
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(a->is_ipv6());
  EXPECT_EQ(a->port(), 1);
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->get());
  EXPECT_EQ(in6->sin6_scope_id, lo);
  EXPECT_TRUE(IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr));
  // Printed with the numeric scope, which parses back to the same address.
  const std::string text = a->to_string();
  EXPECT_EQ(text, "[fe80::1%" + std::to_string(lo) + "]:1");
  auto back = SocketAddress::parse(text);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, *a);
}

TEST(AddressTest, UnknownIpv6ScopeIsAnError) {
  auto a = SocketAddress::parse("[fe80::1%no-such-if0]:1");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, errno_code(EINVAL));
  EXPECT_THAT(a.error().message(), HasSubstr("no-such-if0"));
  EXPECT_THAT(a.error().message(), HasSubstr("scope"));
}

TEST(AddressTest, ParsesAUnixPath) {
  auto a = SocketAddress::parse("/tmp/x.sock");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_unix());
  EXPECT_EQ(a->family(), AF_UNIX);
  const auto* un = reinterpret_cast<const sockaddr_un*>(a->get());
  EXPECT_STREQ(un->sun_path, "/tmp/x.sock");
  // The terminating NUL is counted.
  EXPECT_EQ(a->size(), offsetof(sockaddr_un, sun_path) + sizeof("/tmp/x.sock"));
  EXPECT_EQ(a->to_string(), "/tmp/x.sock");
  EXPECT_EQ(a->port(), 0);
  a->set_port(99);  // no port to set: a no-op
  EXPECT_EQ(a->port(), 0);
  EXPECT_EQ(a->to_string(), "/tmp/x.sock");
  EXPECT_EQ(*a, *SocketAddress::unix_path("/tmp/x.sock"));

  auto rel = SocketAddress::parse("./rel.sock");
  ASSERT_TRUE(rel) << rel.error().message();
  EXPECT_TRUE(rel->is_unix());
  EXPECT_EQ(rel->to_string(), "./rel.sock");
}

TEST(AddressTest, ParsesAnAbstractName) {
  auto a = SocketAddress::parse("@abstract");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_unix());
  const auto* un = reinterpret_cast<const sockaddr_un*>(a->get());
  EXPECT_EQ(un->sun_path[0], '\0');
  EXPECT_EQ(std::string(un->sun_path + 1, 8), "abstract");
  // No terminator counted: the name is exactly the bytes after the NUL.
  EXPECT_EQ(a->size(), offsetof(sockaddr_un, sun_path) + 1 + 8);
  EXPECT_EQ(a->to_string(), "@abstract");
  EXPECT_NE(*a, *SocketAddress::parse("/abstract"));
}

TEST(AddressTest, ParsesTheAnyAddressAndPortZero) {
  auto a = SocketAddress::parse("0.0.0.0:0");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_TRUE(a->is_ipv4());
  EXPECT_EQ(a->port(), 0);
  EXPECT_EQ(a->to_string(), "0.0.0.0:0");
  EXPECT_EQ(*a, SocketAddress::ipv4_any(0));

  auto b = SocketAddress::parse("[::]:65535");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->port(), 65535);
  EXPECT_EQ(b->to_string(), "[::]:65535");
  EXPECT_EQ(*b, SocketAddress::ipv6_any(65535));
}

TEST(AddressTest, ToStringRoundTrips) {
  const char* const texts[] = {
      "127.0.0.1:8080",
      "0.0.0.0:0",
      "255.255.255.255:65535",
      "[::1]:80",
      "[::]:0",
      "[2001:db8::42]:443",
      "[::ffff:10.1.2.3]:7",
      "/tmp/x.sock",
      "@abstract",
  };
  for (const char* text : texts) {
    SCOPED_TRACE(text);
    auto a = SocketAddress::parse(text);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->to_string(), text);
    auto b = SocketAddress::parse(a->to_string());
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_EQ(*a, *b);
  }
}

TEST(AddressTest, SetPortChangesOnlyThePort) {
  auto a = SocketAddress::parse("10.1.2.3:1");
  ASSERT_TRUE(a);
  a->set_port(65535);
  EXPECT_EQ(a->port(), 65535);
  EXPECT_EQ(a->to_string(), "10.1.2.3:65535");
  EXPECT_EQ(*a, *SocketAddress::parse("10.1.2.3:65535"));

  auto b = SocketAddress::parse("[::1]:1");
  ASSERT_TRUE(b);
  b->set_port(8443);
  EXPECT_EQ(b->port(), 8443);
  EXPECT_EQ(b->to_string(), "[::1]:8443");
  EXPECT_EQ(*b, SocketAddress::ipv6_loopback(8443));
}

TEST(AddressTest, Equality) {
  const auto a = SocketAddress::ipv4_loopback(8080);
  EXPECT_EQ(a, a);
  EXPECT_EQ(a, *SocketAddress::parse("127.0.0.1:8080"));
  EXPECT_NE(a, SocketAddress::ipv4_loopback(8081));
  EXPECT_NE(a, *SocketAddress::parse("127.0.0.2:8080"));
  EXPECT_NE(a, SocketAddress::ipv6_loopback(8080));
  EXPECT_NE(a, SocketAddress{});
  EXPECT_EQ(SocketAddress{}, SocketAddress{});
  EXPECT_EQ(SocketAddress::ipv4(0x0a000001, 5),
            *SocketAddress::parse("10.0.0.1:5"));
  // A copy made from the raw sockaddr is equal.
  const SocketAddress copy(a.get(), a.size());
  EXPECT_EQ(copy, a);
}

TEST(AddressTest, AnEmptyAddressIsUnspecified) {
  SocketAddress a;
  EXPECT_EQ(a.size(), 0u);
  EXPECT_FALSE(a.is_ipv4() || a.is_ipv6() || a.is_unix());
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.to_string(), "<unspecified>");
}

// ---------------------------------------------------------------------------
// Parsing what is not valid: EINVAL, and a message that quotes the input and
// says what is wrong with it.

struct BadInput {
  const char* text;
  const char* why;  // a part of the message
};

void PrintTo(const BadInput& in, std::ostream* os) {
  *os << '"' << in.text << '"';
}

class AddressParseErrorTest : public testing::TestWithParam<BadInput> {};

TEST_P(AddressParseErrorTest, SaysWhatIsWrong) {
  const BadInput& in = GetParam();
  auto a = SocketAddress::parse(in.text);
  ASSERT_FALSE(a) << in.text << " parsed as " << a->to_string();
  EXPECT_EQ(a.error().code, errno_code(EINVAL));
  EXPECT_EQ(a.error().op, "parse address");
  const std::string msg = a.error().message();
  EXPECT_THAT(msg, HasSubstr("\"" + std::string(in.text) + "\"")) << msg;
  EXPECT_THAT(msg, HasSubstr(in.why)) << msg;
  // The message replaces the bare errno text.
  EXPECT_THAT(msg, testing::Not(HasSubstr("Invalid argument"))) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    BadInputs, AddressParseErrorTest,
    testing::Values(
        BadInput{"", "empty"}, BadInput{"127.0.0.1", "missing :PORT"},
        BadInput{"127.0.0.1:", "missing port"}, BadInput{":80", "missing host"},
        BadInput{"127.0.0.1:65536", "port 65536 is out of range (0..65535)"},
        BadInput{"127.0.0.1:-1", "out of range"},
        BadInput{"127.0.0.1:99999999999999999999", "out of range"},
        BadInput{"::1:80", "needs brackets"},
        BadInput{"[::1]80", "missing :PORT"}, BadInput{"[::1", "missing ']'"},
        BadInput{"[::1]:", "missing port"},
        BadInput{"localhost:80", "net::resolve"},
        BadInput{"1.2.3.4:8x", "\"8x\" is not a number"},
        BadInput{"1.2.3.4:+8", "is not a number"},
        BadInput{"1.2.3:80", "not a numeric IPv4 or IPv6 address"},
        BadInput{"[]:80", "missing host"}),
    [](const testing::TestParamInfo<BadInput>& info) {
      return "Case" + std::to_string(info.index);
    });

TEST(AddressTest, ValueOfAnErrorThrowsWithTheMessage) {
  auto a = SocketAddress::parse("localhost:80");
  ASSERT_FALSE(a);
  try {
    (void)a.value();
    FAIL() << "value() did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errno_code(EINVAL));
    EXPECT_THAT(e.what(), HasSubstr("localhost:80"));
    EXPECT_THAT(e.what(), HasSubstr("net::resolve"));
  }
}

// ---------------------------------------------------------------------------
// unix_path and from_host_port.

TEST(AddressTest, UnixPathTooLongIsENAMETOOLONG) {
  constexpr std::size_t kMax = sizeof(sockaddr_un::sun_path) - 1;  // 107
  const std::string fits = "/" + std::string(kMax - 1, 'a');
  auto ok = SocketAddress::unix_path(fits);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->to_string(), fits);

  const std::string too_long = fits + "b";
  auto a = SocketAddress::unix_path(too_long);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, errno_code(ENAMETOOLONG));
  EXPECT_THAT(a.error().message(),
              HasSubstr("the path is " + std::to_string(kMax + 1) +
                        " bytes; a Unix socket path holds at most " +
                        std::to_string(kMax)));
  // parse() goes the same way for a path.
  auto p = SocketAddress::parse(too_long);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, errno_code(ENAMETOOLONG));
  // So does an abstract name.
  auto abs = SocketAddress::unix_path("@" + std::string(kMax, 'x'));
  ASSERT_FALSE(abs);
  EXPECT_EQ(abs.error().code, errno_code(ENAMETOOLONG));
}

TEST(AddressTest, UnixPathEmptyOrWithNulIsEINVAL) {
  auto e = SocketAddress::unix_path("");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, errno_code(EINVAL));
  EXPECT_THAT(e.error().message(), HasSubstr("empty"));
  auto n = SocketAddress::unix_path(std::string_view("/a\0b", 4));
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, errno_code(EINVAL));
  EXPECT_THAT(n.error().message(), HasSubstr("NUL"));
}

TEST(AddressTest, FromHostPort) {
  auto v4 = SocketAddress::from_host_port("192.168.1.2", 443);
  ASSERT_TRUE(v4) << v4.error().message();
  EXPECT_EQ(v4->to_string(), "192.168.1.2:443");
  auto v6 = SocketAddress::from_host_port("::1", 80);
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_EQ(*v6, SocketAddress::ipv6_loopback(80));
  auto edge = SocketAddress::from_host_port("::", 65535);
  ASSERT_TRUE(edge) << edge.error().message();
  EXPECT_EQ(edge->port(), 65535);
  // Brackets belong to parse(), not to a bare host.
  auto bracketed = SocketAddress::from_host_port("[::1]", 80);
  ASSERT_FALSE(bracketed);
  EXPECT_EQ(bracketed.error().code, errno_code(EINVAL));
}

TEST(AddressTest, FromHostPortRejectsAPortOutOfRange) {
  for (int port : {-1, 65536, 70000}) {
    SCOPED_TRACE(port);
    auto a = SocketAddress::from_host_port("127.0.0.1", port);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code, errno_code(EINVAL));
    EXPECT_THAT(a.error().message(), HasSubstr("port " + std::to_string(port) +
                                               " is out of range (0..65535)"));
    EXPECT_THAT(a.error().message(), HasSubstr("127.0.0.1"));
  }
}

TEST(AddressTest, FromHostPortRejectsANameWithAHint) {
  auto a = SocketAddress::from_host_port("example.com", 80);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, errno_code(EINVAL));
  EXPECT_THAT(a.error().message(), HasSubstr("example.com"));
  EXPECT_THAT(a.error().message(), HasSubstr("net::resolve"));
}

// ---------------------------------------------------------------------------
// resolve(): getaddrinfo on the runtime's blocking pool.

// Whether this machine's resolver knows "localhost" (getaddrinfo, directly).
bool localhost_resolves() {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo("localhost", "80", &hints, &res) != 0) return false;
  ::freeaddrinfo(res);
  return true;
}

TEST(AddressTest, ResolveLocalhostYieldsLoopback) {
  if (!localhost_resolves()) {
    GTEST_SKIP() << "getaddrinfo(\"localhost\") fails on this machine";
  }
  Runtime rt(RuntimeOptions{.shards = 1});
  auto r = rt.block_on(resolve("localhost", 80));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_FALSE(r->empty());
  for (const SocketAddress& a : *r) {
    SCOPED_TRACE(a.to_string());
    EXPECT_TRUE(is_loopback(a));
    EXPECT_EQ(a.port(), 80);
  }
  // The IPv4-only form gives 127.x addresses only.
  auto v4 = rt.block_on(resolve("localhost", 8080, AF_INET));
  ASSERT_TRUE(v4) << v4.error().message();
  ASSERT_FALSE(v4->empty());
  for (const SocketAddress& a : *v4) {
    SCOPED_TRACE(a.to_string());
    EXPECT_TRUE(a.is_ipv4());
    EXPECT_TRUE(is_loopback(a));
    EXPECT_EQ(a.port(), 8080);
  }
}

TEST(AddressTest, ResolveANumericHost) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto r = rt.block_on(resolve("127.0.0.1", 443));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->front(), SocketAddress::ipv4_loopback(443));
}

TEST(AddressTest, ResolveAnUnknownNameNamesIt) {
  Runtime rt(RuntimeOptions{.shards = 1});
  // .invalid is reserved (RFC 2606): no resolver may answer it.
  auto r = rt.block_on(resolve("no-such-host.invalid", 80));
  ASSERT_FALSE(r) << "resolved to " << r->size() << " addresses";
  EXPECT_EQ(r.error().op, "resolve");
  EXPECT_NE(r.error().code.value(), 0);
  EXPECT_THAT(r.error().message(), HasSubstr("resolve no-such-host.invalid"));
  // gai_strerror's text replaces the errno text ("Name or service not
  // known", or a temporary failure where no resolver answers).
  EXPECT_FALSE(r.error().detail.empty());
  EXPECT_THAT(r.error().message(), HasSubstr(r.error().detail));
}

TEST(AddressTest, ResolveRejectsAPortOutOfRange) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto r = rt.block_on(resolve("localhost", 70000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errno_code(EINVAL));
  EXPECT_THAT(r.error().message(),
              HasSubstr("port 70000 is out of range (0..65535)"));
  auto neg = rt.block_on(resolve("localhost", -1));
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().code, errno_code(EINVAL));
}

TEST(AddressTest, ResolveRejectsAnEmptyHost) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto r = rt.block_on(resolve("", 80));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errno_code(EINVAL));
  EXPECT_THAT(r.error().message(), HasSubstr("empty"));
}

}  // namespace
}  // namespace shardio::net

namespace shardio::net {
namespace {

// Found by fuzz/address_fuzzer: text after a NUL byte was ignored, and a
// Unix address shorter than its family field was printed out of bounds.
TEST(AddressFuzzFindingsTest, ANulByteInTheHostIsAnError) {
  using namespace std::string_view_literals;
  auto a = SocketAddress::parse("1.2.3.4\0junk:80"sv);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, std::errc::invalid_argument);
  EXPECT_NE(a.error().message().find("NUL"), std::string::npos);
  auto b = SocketAddress::parse("[fe80::1%lo\0junk]:80"sv);
  EXPECT_FALSE(b);
}

TEST(AddressFuzzFindingsTest, ATruncatedUnixAddressPrintsAsUnnamed) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  SocketAddress a(reinterpret_cast<const sockaddr*>(&un), 1);
  EXPECT_EQ(a.to_string(), "<unnamed unix socket>");
  SocketAddress b(reinterpret_cast<const sockaddr*>(&un), 2);
  EXPECT_EQ(b.to_string(), "<unnamed unix socket>");
}

}  // namespace
}  // namespace shardio::net
