#include "runtime/core/tick_driver.hpp"

namespace nshost {

TickDriver::TickDriver(uv_loop_t* loop, uint32_t rate_hz, OnTick on_tick)
    : loop_(loop), scheduler_(rate_hz, monotonic_ns()), on_tick_(std::move(on_tick)) {}

int TickDriver::start() {
  int rc = timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  if (rc != 0) return rc;
  timer_.get()->data = this;
  scheduler_ = TickScheduler(scheduler_.rate_hz(), monotonic_ns());
  running_ = true;
  arm();
  return 0;
}

void TickDriver::stop() {
  running_ = false;
  timer_.close();
}

void TickDriver::set_rate(uint32_t rate_hz) {
  scheduler_.set_rate(rate_hz, monotonic_ns());
  if (running_ && !in_fire_) arm();
}

void TickDriver::arm() {
  // The loop's cached time may be stale after a long handler; libuv measures
  // the timeout from it.
  uv_update_time(loop_);
  int64_t wait_ns = scheduler_.next_deadline_ns() - monotonic_ns();
  uint64_t wait_ms = wait_ns <= 0 ? 0 : static_cast<uint64_t>((wait_ns + 999'999) / 1'000'000);
  // libuv 1.44 runs a timer re-armed at 0 ms again in the same timer pass, so
  // ticks that always overrun (a script killed by its instruction budget every
  // tick) would starve I/O and signals; after a tick, wait at least 1 ms.
  if (in_fire_ && wait_ms == 0) wait_ms = 1;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<TickDriver*>(t->data)->fire();
      },
      wait_ms, 0);
}

void TickDriver::fire() {
  int64_t now = monotonic_ns();
  TickScheduler::Beat beat = scheduler_.poll(now);
  in_fire_ = true;
  if (beat.due) on_tick_(beat, now);
  if (running_) arm();
  in_fire_ = false;
}

}  // namespace nshost
