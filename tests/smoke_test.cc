// A first end-to-end check that a runtime starts, runs a task and stops.
#include <gtest/gtest.h>

#include "shardio/shardio.h"

namespace shardio {
namespace {

Task<int> answer() {
  auto r = co_await submit(Nop{});
  co_return r.has_value() ? 42 : -1;
}

TEST(SmokeTest, BlockOnRunsATaskThatSubmitsAnOp) {
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.block_on(answer()), 42);
}

}  // namespace
}  // namespace shardio
