// bench/peers/asio_echo.cc — a Boost.Asio echo server written with C++20
// coroutines, one of the peers the echo benchmark compares shardio's echo
// server with: the usual way to write such a server in C++ today.
//
// One io_context run by one thread (concurrency hint 1). An accept loop
// co_spawns one coroutine per connection, which reads up to 16 KiB and
// writes it all back before it reads again, until the client shuts down its
// sending side (everything it sent has then been echoed; the socket closes)
// or an error such as a reset ends that connection alone.
//
// CMake builds this file twice: asio_epoll_echo with Asio's default reactor
// (epoll) and asio_uring_echo with BOOST_ASIO_HAS_IO_URING and
// BOOST_ASIO_DISABLE_EPOLL, where Asio does its socket I/O through io_uring.
//
//   asio_epoll_echo [--port P]    asio_uring_echo [--port P]
//
// P = 0 (the default) picks a free port. Prints "listening on
// 127.0.0.1:PORT" once it accepts connections and runs until SIGINT or
// SIGTERM, then exits 0.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Errors come back as values, not exceptions: a reset is an ordinary end of
// a connection here.
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> Echo(tcp::socket socket) {
  char buf[16 * 1024];
  for (;;) {
    auto [rerr, n] =
        co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
    if (rerr) break;  // end of stream (half-close) or an error
    auto [werr, written] =
        co_await asio::async_write(socket, asio::buffer(buf, n), kNoThrow);
    if (werr) break;
  }
  boost::system::error_code ignored;
  socket.close(ignored);
}

asio::awaitable<void> Listen(tcp::acceptor& acceptor) {
  for (;;) {
    auto [err, socket] = co_await acceptor.async_accept(kNoThrow);
    if (err) {
      if (err == asio::error::operation_aborted) co_return;
      std::fprintf(stderr, "asio_echo: accept: %s\n", err.message().c_str());
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    asio::co_spawn(acceptor.get_executor(), Echo(std::move(socket)),
                   asio::detached);
  }
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
    std::fprintf(stderr, "asio_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  const int port = ParsePort(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    asio::io_context ctx(1);
    tcp::acceptor acceptor(ctx);
    const tcp::endpoint ep(asio::ip::address_v4::loopback(),
                           static_cast<unsigned short>(port));
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    signals.async_wait(
        [&](const boost::system::error_code&, int) { ctx.stop(); });
    asio::co_spawn(ctx, Listen(acceptor), asio::detached);
    std::printf("listening on 127.0.0.1:%d\n",
                acceptor.local_endpoint().port());
    std::fflush(stdout);
    ctx.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo: %s\n", e.what());
    return 1;
  }
  return 0;
}
