#pragma once
// One side's reliable-delivery bookkeeping for one session, so reliable
// messages survive a resume exactly once and in order (docs/reliability.md,
// "Reliable replay"). ENet's reliable channel is ordered, so messages are
// numbered implicitly: the n-th reliable data message of the session is n,
// on both sides, across every link the session uses.
//
// Outbound: every reliable message the script sends is retained until the
// peer acknowledges it (acknowledge), or queued while the link is down; on a
// resume the peer says how many it has received and the role replays the
// rest (unacknowledged) before anything new. Inbound: counts what arrived and
// says when an ack is due (at most every kAckIntervalNs, only when the count
// changed). No clock of its own: callers pass monotonic nanoseconds.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace nshost {

class ReliableReplay {
 public:
  // Shared, so a broadcast retains one copy for all its recipients.
  using Payload = std::shared_ptr<const std::string>;

  // Acks go out at most this often (and only when the count changed).
  static constexpr int64_t kAckIntervalNs = 100'000'000;

  // `budget_bytes`: what this session may hold (retained plus queued).
  explicit ReliableReplay(size_t budget_bytes) : budget_bytes_(budget_bytes) {}

  // A message sent on the live link: numbered and retained. Past the budget
  // the oldest copies are dropped; a resume from before them is then
  // impossible (replay_floor() rises) until the peer acknowledges past them.
  void retain_sent(Payload bytes);
  // A message sent while the link is down: numbered and queued for the
  // replay, or false (nothing numbered) when it would exceed the budget.
  bool queue(Payload bytes);

  // The peer has received `count` messages: copies up to it are dropped.
  // False for a count above what was numbered (ignored); a lower count than
  // an earlier one is a no-op.
  bool acknowledge(uint64_t count);
  // Whether every message after `peer_count` is still held.
  bool can_replay_from(uint64_t peer_count) const {
    return peer_count >= floor_ && peer_count <= numbered_;
  }
  // Calls f(payload) for each message after `peer_count`, in order. Call
  // acknowledge(peer_count) and check can_replay_from first.
  template <class F>
  void for_each_after(uint64_t peer_count, F&& f) const {
    for (const Entry& e : held_)
      if (e.number > peer_count) f(e.bytes);
  }

  uint64_t numbered() const { return numbered_; }  // messages numbered so far
  // The peer must have received at least this many for a faithful replay.
  uint64_t replay_floor() const { return floor_; }
  size_t held_count() const { return held_.size(); }
  size_t held_bytes() const { return held_bytes_; }
  size_t budget_bytes() const { return budget_bytes_; }

  // Inbound: one reliable data message delivered.
  void on_received() { ++received_; }
  uint64_t received() const { return received_; }
  // True when an ack should be sent now (the count changed and the last ack
  // is at least kAckIntervalNs old); records it as sent.
  bool take_ack_due(int64_t now_ns);
  // Nanoseconds until an ack is due (0: now), or -1 when none is pending.
  int64_t ack_wait_ns(int64_t now_ns) const;

 private:
  struct Entry {
    uint64_t number;
    Payload bytes;
  };
  void drop_front();

  size_t budget_bytes_;
  std::deque<Entry> held_;
  size_t held_bytes_ = 0;
  uint64_t numbered_ = 0;
  uint64_t floor_ = 0;
  uint64_t received_ = 0;
  uint64_t acked_received_ = 0;
  int64_t last_ack_ns_ = INT64_MIN;
};

}  // namespace nshost
