// runtime/shard.h — one shard: a thread running the loop around its Reactor
// (private to the runtime).
//
// Thread-safety: post() may be called from any thread; everything else runs
// on the shard's own thread, except construction, start() and join(), which
// the Runtime calls from its owner's thread.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "shardio/detail/event.h"
#include "shardio/detail/reactor.h"
#include "shardio/detail/spsc_queue.h"
#include "shardio/probe.h"
#include "shardio/runtime.h"

namespace shardio::detail {

class BlockingPool;
using Message = absl::AnyInvocable<void()>;
using MessageQueue = SpscQueue<Message>;

class Shard final : public Reactor {
 public:
  // `cpu` is the CPU to pin to, or -1.
  Shard(unsigned id, unsigned count, const RuntimeOptions& options, int cpu);
  ~Shard();

  // Starts the thread and waits until its ring exists. Returns nothing on
  // success, else why it could not (shardio.setup code and message).
  std::optional<SetupDiagnosis> start();
  // Asks the loop to shut down; callable from any thread.
  void request_stop();
  void join();

  void enqueue(absl::AnyInvocable<void()> fn);

  // Wires this shard to the others before any thread starts: peers[i] is
  // shard i, out[i] the queue this shard fills for shard i, in[i] the queue
  // shard i fills for this one (null for i == id).
  void connect(std::vector<Shard*> peers, std::vector<MessageQueue*> out,
               std::vector<MessageQueue*> in, BlockingPool* blocking);
  BlockingPool* blocking_pool() const noexcept { return blocking_; }

  // Runs on the shard thread.
  void on_wake(const io_uring_cqe& cqe);
  bool try_send_message(unsigned dst, Message& m);
  void queue_message(unsigned dst, Message m, std::coroutine_handle<> resume);
  // Clears `h` as the resumption of outbox entries (Reactor::unschedule).
  void forget_resume(std::coroutine_handle<> h) noexcept;
  // After every shard thread has been joined: destroys the messages other
  // shards pushed into this one's queues after it shut down.
  bool drop_stranded_messages();

  // A snapshot of this shard (stats.cc); on the shard thread, or after it
  // has ended.
  ShardStats stats() const;
  // The snapshot the thread took as it left its loop; waits for it. Any
  // thread.
  ShardStats final_stats();

 private:
  void thread_main();
  std::optional<SetupDiagnosis> setup_ring();
  void arm_wake();
  void drain_inbox();
  void drain_messages();
  void flush_outbox();
  bool incoming_empty() const;
  bool outbox_has_room() const;
  void notify(unsigned dst);
  void run_ready();
  void wait_for_events();
  void shutdown();

  RuntimeOptions options_;
  int cpu_;
  int event_fd_ = -1;
  int event_errno_ = 0;  // eventfd's errno when it failed
  uint64_t wake_buf_ = 0;
  bool wake_armed_ = false;
  bool stopping_ = false;
  bool ring_ready_ = false;
  static constexpr unsigned kMaxTurnsWithoutEnter = 16;
  unsigned turns_without_enter_ = 0;

  std::thread thread_;
  Event started_;
  std::optional<SetupDiagnosis> start_error_;

  // Set (seq_cst) just before the loop blocks in io_uring_enter; a sender
  // that sees it takes it back (exchange) and rings the doorbell.
  alignas(kCacheLine) std::atomic<bool> sleeping_{false};
  alignas(kCacheLine) int ring_fd_ = -1;

  // room_wanted_[src]: shard src has messages for us waiting in its outbox
  // and wants a doorbell when we make room (set by src, cleared by us).
  std::unique_ptr<std::atomic<bool>[]> room_wanted_;
  bool cqe_skip_ = false;  // IORING_FEAT_CQE_SKIP
  std::vector<Shard*> peers_;
  BlockingPool* blocking_ = nullptr;
  std::vector<MessageQueue*> outgoing_;
  std::vector<MessageQueue*> incoming_;
  struct Pending {
    Message msg;
    std::coroutine_handle<> resume;
  };
  std::vector<std::deque<Pending>> outbox_;  // per destination
  std::size_t outbox_size_ = 0;
  std::vector<Message> to_self_;

  std::mutex inbox_mu_;  // std::mutex: visible to ThreadSanitizer
  std::vector<absl::AnyInvocable<void()>> inbox_;
  bool inbox_closed_ = false;  // guarded by inbox_mu_

  // Reactor::latency_ points here when RuntimeOptions::latency_histograms.
  std::unique_ptr<LatencyStats> latency_stats_;
  // Written by the thread after shutdown(), then `exited_` is notified.
  ShardStats final_stats_;
  Event exited_;
};

}  // namespace shardio::detail
