// bench/xshard_soak.cc — the cross-shard message soak (bench/run_soak.sh):
// two shards exchange messages of random sizes for a while through all
// three mechanisms, and every message is counted and checked.
//
//   xshard_soak [--seconds 60] [--max_size 65536] [--queue 1024]
//               [--max_rss_growth_mib 64] [--format text|kv]
//
// For --seconds, at the same time:
//   submit_to  eight tasks on shard 0 call shard 1 with payloads; shard 1
//              checks each and answers its size and whether it was intact,
//              which the caller compares;
//   post_to    shard 1 posts payloads to shard 0 (fire and forget, with a
//              round trip after every 64 so that posts do not crowd out
//              the calls' replies); shard 0 checks each and that they
//              arrive in order;
//   Channel    a task on shard 0 sends payloads through a bounded channel
//              (64) to a task on shard 1, which checks them and their order.
// A payload is a sequence number, a size (0 .. --max_size, mostly small,
// sometimes large) and bytes that are a function of both. Afterwards every
// sent count must equal its received count, no payload may be corrupt or
// out of order, and the process's RSS (VmRSS, sampled every 250 ms) must not
// have grown by more than --max_rss_growth_mib between the end of the first
// tenth of the run and the end. Exit status 0 only then.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "shardio/channel.h"
#include "shardio/cross_shard.h"
#include "shardio/runtime.h"
#include "shardio/task.h"

ABSL_FLAG(double, seconds, 60, "how long to exchange messages, seconds");
ABSL_FLAG(int, max_size, 65536, "largest payload, bytes");
ABSL_FLAG(int, queue, 1024, "RuntimeOptions::message_queue_capacity");
ABSL_FLAG(int, max_rss_growth_mib, 64,
          "fail if RSS grows by more than this after the warm-up");
ABSL_FLAG(std::string, format, "text", "output: text or kv");

namespace {

using Clock = std::chrono::steady_clock;

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Payload {
  uint64_t seq = 0;
  std::vector<uint8_t> bytes;
};

// Byte i of payload `seq` is byte i % 8 of mix(seq * 65537 + i / 8): one
// hash per 8 bytes, so making and checking a payload costs little next to
// moving it.
uint64_t word_of(uint64_t seq, std::size_t w) { return mix(seq * 65537 + w); }

// Sizes: three in four up to 256 bytes, the rest up to max_size.
std::size_t size_for(uint64_t seq, std::size_t max_size) {
  const uint64_t r = mix(seq ^ 0x5157);
  return (r & 3) != 0 ? r % 257 : (r >> 8) % (max_size + 1);
}

Payload make_payload(uint64_t seq, std::size_t max_size) {
  Payload p;
  p.seq = seq;
  p.bytes.resize(size_for(seq, max_size));
  for (std::size_t i = 0; i < p.bytes.size(); i += 8) {
    const uint64_t w = word_of(seq, i / 8);
    const std::size_t n = std::min<std::size_t>(8, p.bytes.size() - i);
    std::memcpy(p.bytes.data() + i, &w, n);
  }
  return p;
}

bool intact(const Payload& p, std::size_t max_size) {
  if (p.bytes.size() != size_for(p.seq, max_size)) return false;
  for (std::size_t i = 0; i < p.bytes.size(); i += 8) {
    const uint64_t w = word_of(p.seq, i / 8);
    const std::size_t n = std::min<std::size_t>(8, p.bytes.size() - i);
    if (std::memcmp(p.bytes.data() + i, &w, n) != 0) return false;
  }
  return true;
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// One mechanism's counts. `sent` is written on the sending shard, the rest
// on the receiving one; read at the end, after the shards have synchronized.
struct Counts {
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t bytes = 0;
  uint64_t corrupt = 0;
  uint64_t out_of_order = 0;
  uint64_t next_seq = 0;     // receiver: the seq expected next
  uint64_t bad_replies = 0;  // sender (submit_to): answers that disagree
};

struct Soak {
  Clock::time_point deadline;
  std::size_t max_size = 0;
  Counts call;     // submit_to 0 -> 1
  Counts post;     // post_to 1 -> 0
  Counts channel;  // Channel 0 -> 1
};

// What shard 1 answers to a call: the payload's size and whether it was
// intact.
struct Answer {
  std::size_t size = 0;
  bool ok = false;
};

// One of kCallers concurrent callers; caller `id` uses the sequence numbers
// id, id + kCallers, ... (calls from different callers interleave, so their
// order is not checked; each answer is).
constexpr int kCallers = 8;

shardio::Task<void> caller(Soak* s, int id) {
  uint64_t seq = static_cast<uint64_t>(id);
  while (Clock::now() < s->deadline) {
    Payload p = make_payload(seq, s->max_size);
    const std::size_t size = p.bytes.size();
    auto fn = [s, p = std::move(p)]() {
      Answer a{p.bytes.size(), intact(p, s->max_size)};
      ++s->call.received;
      s->call.bytes += p.bytes.size();
      if (!a.ok) ++s->call.corrupt;
      return a;
    };
    ++s->call.sent;
    const Answer a = co_await shardio::submit_to(1, std::move(fn));
    if (!a.ok || a.size != size) ++s->call.bad_replies;
    seq += kCallers;
  }
}

shardio::Task<void> poster(Soak* s) {
  uint64_t seq = 0;
  while (Clock::now() < s->deadline) {
    auto fn = [s, p = make_payload(seq, s->max_size)]() {
      ++s->post.received;
      s->post.bytes += p.bytes.size();
      if (!intact(p, s->max_size)) ++s->post.corrupt;
      if (p.seq != s->post.next_seq) ++s->post.out_of_order;
      s->post.next_seq = p.seq + 1;
    };
    ++s->post.sent;
    co_await shardio::post_to(0, std::move(fn));
    ++seq;
    // Every 64 posts, a round trip to shard 0: messages between two shards
    // run in order, so it returns once those posts have run there. That
    // keeps at most 64 in the queue, where they would otherwise crowd out
    // the replies to shard 0's calls (the queue is one FIFO per direction).
    if ((seq & 63) == 0) {
      auto window = [] { return 0; };
      (void)co_await shardio::submit_to(0, std::move(window));
    }
  }
  // Messages from one shard to another run in order: once this call has
  // come back, every post before it has run on shard 0.
  auto fence = [] { return 0; };
  (void)co_await shardio::submit_to(0, std::move(fence));
}

shardio::Task<void> channel_sender(Soak* s, shardio::Sender<Payload> tx) {
  uint64_t seq = 0;
  while (Clock::now() < s->deadline) {
    Payload p = make_payload(seq, s->max_size);
    ++s->channel.sent;
    const bool ok = co_await tx.send(std::move(p));
    if (!ok) break;
    ++seq;
  }
  tx.close();
}

shardio::Task<void> channel_receiver(Soak* s, shardio::Receiver<Payload> rx) {
  while (auto p = co_await rx.recv()) {
    ++s->channel.received;
    s->channel.bytes += p->bytes.size();
    if (!intact(*p, s->max_size)) ++s->channel.corrupt;
    if (p->seq != s->channel.next_seq) ++s->channel.out_of_order;
    s->channel.next_seq = p->seq + 1;
  }
}

shardio::Task<void> run(Soak* s) {
  auto [tx, rx] = shardio::make_channel<Payload>(64);
  auto recv_fn = [s, rx = std::move(rx)]() mutable {
    return channel_receiver(s, std::move(rx));
  };
  auto receiving = shardio::spawn_on(1, std::move(recv_fn));
  auto post_fn = [s] { return poster(s); };
  auto posting = shardio::spawn_on(1, std::move(post_fn));
  auto sending = shardio::spawn(channel_sender(s, std::move(tx)));
  std::vector<shardio::JoinHandle<void>> callers;
  for (int i = 0; i < kCallers; ++i)
    callers.push_back(shardio::spawn(caller(s, i)));
  for (auto& c : callers) co_await c;
  co_await sending;
  co_await posting;
  co_await receiving;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "exchanges random-size messages between two shards and checks them; "
      "see bench/run_soak.sh");
  absl::ParseCommandLine(argc, argv);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int max_size = absl::GetFlag(FLAGS_max_size);
  const int queue = absl::GetFlag(FLAGS_queue);
  const long max_growth_kib =
      static_cast<long>(absl::GetFlag(FLAGS_max_rss_growth_mib)) * 1024;
  const bool kv = absl::GetFlag(FLAGS_format) == "kv";
  if (seconds <= 0 || max_size < 0 || queue < 2) {
    std::fprintf(stderr, "xshard_soak: bad flag value\n");
    return 2;
  }

  Soak soak;
  soak.max_size = static_cast<std::size_t>(max_size);
  const long rss_start = rss_kib();
  // RSS sampled every 250 ms by a plain thread.
  std::atomic<bool> done{false};
  long rss_warm = -1;
  long rss_max = rss_start;
  const auto t0 = Clock::now();
  const auto warm_at = t0 + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(seconds / 10));
  std::thread sampler([&] {
    while (!done.load()) {
      const long r = rss_kib();
      rss_max = std::max(rss_max, r);
      if (rss_warm < 0 && Clock::now() >= warm_at) rss_warm = r;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  int rc = 0;
  uint64_t msgs_sent_0 = 0, msgs_recv_1 = 0, outbox_waits = 0;
  try {
    shardio::Runtime rt(shardio::RuntimeOptions{
        .shards = 2, .message_queue_capacity = static_cast<unsigned>(queue)});
    soak.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(seconds));
    rt.block_on(run(&soak));
    for (unsigned i = 0; i < 2; ++i) {
      const shardio::ShardCounters c = rt.counters(i);
      if (i == 0) msgs_sent_0 = c.messages_sent;
      if (i == 1) msgs_recv_1 = c.messages_received;
      outbox_waits += c.outbox_waits;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xshard_soak: %s\n", e.what());
    rc = 1;
  }
  done = true;
  sampler.join();
  const long rss_end = rss_kib();
  if (rss_warm < 0) rss_warm = rss_end;
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - t0).count();

  const Counts* all[] = {&soak.call, &soak.post, &soak.channel};
  bool ok = rc == 0;
  for (const Counts* c : all) {
    ok = ok && c->sent == c->received && c->sent > 0 && c->corrupt == 0 &&
         c->out_of_order == 0 && c->bad_replies == 0;
  }
  const long growth = rss_end - rss_warm;
  ok = ok && growth <= max_growth_kib;
  if (kv) {
    std::printf(
        "seconds=%.1f submit_to_sent=%llu submit_to_received=%llu "
        "post_to_sent=%llu post_to_received=%llu channel_sent=%llu "
        "channel_received=%llu bytes=%llu corrupt=%llu out_of_order=%llu "
        "messages_sent_shard0=%llu messages_received_shard1=%llu "
        "outbox_waits=%llu rss_start_kib=%ld rss_warm_kib=%ld "
        "rss_max_kib=%ld rss_end_kib=%ld rss_growth_kib=%ld ok=%d\n",
        elapsed, static_cast<unsigned long long>(soak.call.sent),
        static_cast<unsigned long long>(soak.call.received),
        static_cast<unsigned long long>(soak.post.sent),
        static_cast<unsigned long long>(soak.post.received),
        static_cast<unsigned long long>(soak.channel.sent),
        static_cast<unsigned long long>(soak.channel.received),
        static_cast<unsigned long long>(soak.call.bytes + soak.post.bytes +
                                        soak.channel.bytes),
        static_cast<unsigned long long>(soak.call.corrupt + soak.post.corrupt +
                                        soak.channel.corrupt +
                                        soak.call.bad_replies),
        static_cast<unsigned long long>(soak.call.out_of_order +
                                        soak.post.out_of_order +
                                        soak.channel.out_of_order),
        static_cast<unsigned long long>(msgs_sent_0),
        static_cast<unsigned long long>(msgs_recv_1),
        static_cast<unsigned long long>(outbox_waits), rss_start, rss_warm,
        rss_max, rss_end, growth, ok ? 1 : 0);
  } else {
    const char* names[] = {"submit_to (0 -> 1)", "post_to (1 -> 0)",
                           "Channel (0 -> 1)"};
    for (int i = 0; i < 3; ++i) {
      std::printf(
          "%-20s sent %llu, received %llu, %llu bytes, %llu corrupt, "
          "%llu out of order\n",
          names[i], static_cast<unsigned long long>(all[i]->sent),
          static_cast<unsigned long long>(all[i]->received),
          static_cast<unsigned long long>(all[i]->bytes),
          static_cast<unsigned long long>(all[i]->corrupt),
          static_cast<unsigned long long>(all[i]->out_of_order));
    }
    std::printf(
        "RSS: %ld KiB at start, %ld KiB after the first tenth, %ld "
        "KiB max, %ld KiB at the end (growth %ld KiB, limit %ld)\n",
        rss_start, rss_warm, rss_max, rss_end, growth, max_growth_kib);
    std::printf("%.1f s; %s\n", elapsed, ok ? "OK" : "FAILED");
  }
  return ok ? 0 : 1;
}
