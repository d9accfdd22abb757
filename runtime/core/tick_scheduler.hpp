#pragma once
// Fixed-rate tick schedule against absolute deadlines (seed 000, "Server
// tick"). Pure arithmetic on a caller-supplied monotonic clock in nanoseconds,
// so tests step time by hand. Deadline k is anchor + k * 1e9 / rate, computed
// from the anchor each time so rounding never accumulates into drift. A tick
// that runs so late that later deadlines have also passed does not burst:
// the missed beats are skipped and counted, and the next deadline is the
// first one still in the future.
#include <cstdint>

namespace nshost {

class TickScheduler {
 public:
  // Timers fire on millisecond boundaries; a beat is due this close to its
  // deadline so a timer that wakes a fraction of a millisecond early still
  // runs it.
  static constexpr int64_t kEarlyToleranceNs = 1'000'000;

  // The first tick is due at `start_ns`.
  TickScheduler(uint32_t rate_hz, int64_t start_ns);

  struct Beat {
    bool due = false;
    uint64_t tick_num = 0;     // 0, 1, 2, ... one per tick run, no gaps
    int64_t lateness_ns = 0;   // now - deadline of this beat (may be slightly negative)
    uint64_t skipped = 0;      // beats skipped after this one because it ran late
  };

  // Asks whether a tick is due at `now_ns`; if so consumes it.
  Beat poll(int64_t now_ns);

  // Changes the rate at once: the next tick is due one new period after `now_ns`.
  void set_rate(uint32_t rate_hz, int64_t now_ns);

  int64_t next_deadline_ns() const;
  uint32_t rate_hz() const { return rate_hz_; }
  int64_t period_ns() const { return 1'000'000'000 / rate_hz_; }
  uint64_t ticks_run() const { return ticks_run_; }
  uint64_t beats_skipped() const { return beats_skipped_; }

 private:
  int64_t deadline(uint64_t k) const;

  uint32_t rate_hz_;
  int64_t anchor_ns_;
  uint64_t k_ = 0;  // index of the next deadline since the anchor
  uint64_t ticks_run_ = 0;
  uint64_t beats_skipped_ = 0;
};

}  // namespace nshost
