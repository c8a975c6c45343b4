// shardio/detail/frame_alloc.h — the allocator behind coroutine frames and
// small runtime objects (not part of the public API).
//
// Blocks are rounded up to 64-byte size classes (up to 2 KiB) and kept on a
// per-thread free list when freed, so the steady state of spawning and
// awaiting tasks calls malloc only when a thread's list for that class is
// empty. Larger blocks go straight to operator new. A block may be freed on a
// different thread than the one that allocated it (it then joins that thread's
// list): every block comes from the global operator new either way.
//
// Thread-safety: each thread uses only its own lists; no synchronization.
#pragma once

#include <cstddef>

namespace shardio::detail {

void* frame_alloc(std::size_t size);
void frame_free(void* p, std::size_t size) noexcept;

// Turns the free lists on or off for the calling process (benchmarks compare
// both). Blocks allocated under either setting may be freed under the other.
void set_frame_pool_enabled(bool enabled) noexcept;
bool frame_pool_enabled() noexcept;

}  // namespace shardio::detail
