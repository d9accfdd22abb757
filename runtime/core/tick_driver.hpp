#pragma once
// Drives a TickScheduler from a one-shot libuv timer re-armed for each
// deadline against the high-resolution clock, so the tick does not drift.
#include <functional>

#include "runtime/core/tick_scheduler.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost {

class TickDriver {
 public:
  // Called once per beat run, with the beat and the clock reading (ns).
  using OnTick = std::function<void(const TickScheduler::Beat&, int64_t now_ns)>;

  TickDriver(uv_loop_t* loop, uint32_t rate_hz, OnTick on_tick);
  // Starts ticking; the first tick is due now. Returns a libuv error code.
  int start();
  void stop();
  // Takes effect at once: the next tick is one new period from now.
  void set_rate(uint32_t rate_hz);
  uint32_t rate_hz() const { return scheduler_.rate_hz(); }
  const TickScheduler& scheduler() const { return scheduler_; }

 private:
  void arm();
  void fire();

  uv_loop_t* loop_;
  TickScheduler scheduler_;
  OnTick on_tick_;
  UvHandle<uv_timer_t> timer_;
  bool running_ = false;
  bool in_fire_ = false;
};

}  // namespace nshost
