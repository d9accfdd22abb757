#pragma once
// Network-condition simulator (seed 004): shapes datagrams with latency,
// jitter, loss, duplication and reordering, seeded so a run can be replayed.
// This part is pure (time is passed in); runtime/transport/socket_tap.* applies it to
// the datagrams an ENet host sends and receives.
#include <cstdint>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <enet/enet.h>

namespace nshost {

// What --netsim=latency_ms,jitter_ms,loss,dup,reorder,seed asks for.
struct NetsimConfig {
  double latency_ms = 0;  // added one-way delay, ms, >= 0
  double jitter_ms = 0;   // each datagram's delay varies uniformly by +-jitter_ms (never below 0)
  double loss = 0;        // probability in [0, 1] that a datagram is dropped
  double dup = 0;         // probability in [0, 1] that a datagram is delivered twice
  double reorder = 0;     // probability in [0, 1] that a datagram may be overtaken by later ones
  uint64_t seed = 1;      // PRNG seed; the same seed replays the same fates
  bool enabled = false;
};

// Parses "latency_ms,jitter_ms,loss,dup,reorder,seed" (seed optional, default
// 1; loss/dup/reorder as fractions 0..1 or percentages like "25%"). Returns
// false with one readable `error` on anything else.
bool parse_netsim(std::string_view text, NetsimConfig& out, std::string& error);
std::string format_netsim(const NetsimConfig& config);

// One direction of a simulated link. Datagrams not reordered leave in the
// order they entered (a delayed one holds back those behind it, as on a real
// queue); a reordered one gets an extra delay of up to latency + 2 * jitter
// and does not hold anything back.
class NetsimLink {
 public:
  struct Datagram {
    int64_t release_ns = 0;
    uint64_t order = 0;  // ties broken by entry order
    ENetAddress address{};
    std::string bytes;
  };
  struct Counters {
    uint64_t submitted = 0, dropped = 0, duplicated = 0, reordered = 0, released = 0;
  };

  NetsimLink(const NetsimConfig& config, uint64_t stream);

  // Decides the fate of one datagram entering the link at `now_ns`.
  void submit(int64_t now_ns, const ENetAddress& address, std::string bytes);
  // The next datagram due at or before `now_ns`, in release order; false when none.
  bool pop_due(int64_t now_ns, Datagram& out);
  // Release time of the next queued datagram, or -1 when empty.
  int64_t next_due_ns() const;
  size_t queued() const { return queue_.size(); }
  const Counters& counters() const { return counters_; }

 private:
  struct Later {
    bool operator()(const Datagram& a, const Datagram& b) const {
      return a.release_ns != b.release_ns ? a.release_ns > b.release_ns : a.order > b.order;
    }
  };
  bool chance(double p);
  int64_t delay_ns();
  void enqueue(int64_t now_ns, const ENetAddress& address, std::string bytes);

  NetsimConfig config_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::priority_queue<Datagram, std::vector<Datagram>, Later> queue_;
  int64_t fifo_tail_ns_ = 0;  // latest release of an in-order datagram
  uint64_t next_order_ = 0;
  Counters counters_;
};

}  // namespace nshost
