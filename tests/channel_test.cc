// Channel<T>: order, back-pressure, closing, across shards and on one shard.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "shardio/shardio.h"

namespace shardio {
namespace {

Task<std::vector<int>> Drain(Receiver<int> rx) {
  std::vector<int> out;
  while (auto v = co_await rx.recv()) out.push_back(*v);
  co_return out;
}

TEST(ChannelTest, StreamsValuesInOrderAcrossShards) {
  Runtime rt(RuntimeOptions{.shards = 2});
  constexpr int kValues = 50000;
  auto got = rt.block_on([]() -> Task<std::vector<int>> {
    auto [tx, rx] = make_channel<int>(8);
    auto consumer = spawn_on(
        1, [rx = std::move(rx)]() mutable { return Drain(std::move(rx)); });
    for (int i = 0; i < kValues; ++i) {
      if (!co_await tx.send(i)) break;
    }
    tx.close();
    co_return co_await consumer;
  }());
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kValues));
  for (int i = 0; i < kValues; ++i) ASSERT_EQ(got[i], i);
}

TEST(ChannelTest, WorksBetweenTasksOfOneShard) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto got = rt.block_on([]() -> Task<std::vector<int>> {
    auto [tx, rx] = make_channel<int>(2);
    auto consumer = spawn(Drain(std::move(rx)));
    for (int i = 0; i < 1000; ++i) co_await tx.send(i);
    tx.close();
    co_return co_await consumer;
  }());
  ASSERT_EQ(got.size(), 1000u);
  EXPECT_EQ(got.front(), 0);
  EXPECT_EQ(got.back(), 999);
}

// With nobody receiving, a sender fills the channel and then waits; it goes
// on only as the receiver takes values.
TEST(ChannelTest, SendWaitsWhileTheChannelIsFull) {
  Runtime rt(RuntimeOptions{.shards = 2});
  auto [tx, rx] = make_channel<int>(4);
  std::atomic<int> sent{0};
  auto producer =
      rt.submit(0, [&sent, tx = std::move(tx)]() mutable -> Task<void> {
        for (int i = 0; i < 20; ++i) {
          co_await tx.send(i);
          sent.store(i + 1);
        }
      });
  // The producer stops at the channel's capacity while nobody receives: it
  // reaches 4 (waited for, generously bounded) and cannot pass it.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (sent.load() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(sent.load(), 4);
  EXPECT_EQ(producer.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  auto got = rt.submit(1, [rx = std::move(rx)]() mutable {
                 return Drain(std::move(rx));
               }).get();
  producer.get();
  EXPECT_EQ(sent.load(), 20);
  ASSERT_EQ(got.size(), 20u);
  EXPECT_EQ(got[19], 19);
}

TEST(ChannelTest, RecvYieldsNulloptAfterCloseAndTheRest) {
  Runtime rt(RuntimeOptions{.shards = 1});
  auto got = rt.block_on([]() -> Task<std::vector<std::optional<std::string>>> {
    auto [tx, rx] = make_channel<std::string>(8);
    co_await tx.send("a");
    co_await tx.send("b");
    tx.close();
    std::vector<std::optional<std::string>> out;
    for (int i = 0; i < 4; ++i) out.push_back(co_await rx.recv());
    co_return out;
  }());
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], "a");
  EXPECT_EQ(got[1], "b");
  EXPECT_EQ(got[2], std::nullopt);
  EXPECT_EQ(got[3], std::nullopt);
}

TEST(ChannelTest, SendFailsOnceTheReceiverIsGone) {
  Runtime rt(RuntimeOptions{.shards = 2});
  bool ok = rt.block_on([]() -> Task<bool> {
    auto [tx, rx] = make_channel<int>(2);
    co_await tx.send(1);
    co_await tx.send(2);  // the channel is full now
    // The receiver is dropped on shard 1 while this task waits to send.
    auto dropper = spawn_on(1, [rx = std::move(rx)]() mutable -> Task<void> {
      co_await this_shard::yield();
      rx.close();
    });
    bool third = co_await tx.send(3);
    co_await dropper;
    co_return third;
  }());
  EXPECT_FALSE(ok);
}

TEST(ChannelTest, ReceiverWaitingAcrossShardsIsWokenByClose) {
  Runtime rt(RuntimeOptions{.shards = 2});
  bool ended = rt.block_on([]() -> Task<bool> {
    auto [tx, rx] = make_channel<int>(4);
    auto consumer = spawn_on(1, [rx = std::move(rx)]() mutable -> Task<bool> {
      auto v = co_await rx.recv();  // waits: nothing sent yet
      co_return !v.has_value();
    });
    co_await submit_to(1, [] {});  // the consumer is parked in recv()
    tx.close();
    co_return co_await consumer;
  }());
  EXPECT_TRUE(ended);
}

}  // namespace
}  // namespace shardio
