// shardio/buffer.h — owned buffers: what read and write ops hold while the
// kernel may touch them.
//
// An OwnedBuffer is any movable contiguous container of bytes
// (std::vector<std::byte>, std::vector<char>, std::string, std::array, ...).
// An op takes it by value, keeps it at a fixed address inside its completion
// record until the final CQE, and hands it back with the result:
//
//   auto [n, buf] = co_await shardio::submit(Read(fd, std::move(buf), 0));
//
// Thread-safety: plain values.
#pragma once

#include <concepts>
#include <cstddef>
#include <iterator>
#include <utility>

#include "shardio/result.h"

namespace shardio {

template <class B>
concept OwnedBuffer = std::move_constructible<B> && requires(B& b) {
  { std::data(b) } -> std::convertible_to<const void*>;
  { std::size(b) } -> std::convertible_to<std::size_t>;
  requires sizeof(*std::data(b)) == 1;
};

// The result of an I/O op that carried a buffer: the byte count (or error)
// and the buffer itself, returned whatever happened.
template <class B>
struct IoResult {
  Result<uint32_t> res;
  B buf;
};

}  // namespace shardio
