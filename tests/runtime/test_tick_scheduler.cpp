#include <doctest/doctest.h>

#include "runtime/core/tick_scheduler.hpp"

using nshost::TickScheduler;

constexpr int64_t kMs = 1'000'000;

TEST_CASE("tick scheduler: ticks fall on absolute deadlines and do not drift") {
  TickScheduler s(30, 0);
  // Fire each beat 2 ms late: the next deadline still comes from the anchor.
  for (uint64_t k = 0; k < 3000; ++k) {
    int64_t deadline = s.next_deadline_ns();
    CHECK(deadline == static_cast<int64_t>(k * 1'000'000'000ull / 30));
    auto beat = s.poll(deadline + 2 * kMs);
    REQUIRE(beat.due);
    CHECK(beat.tick_num == k);
    CHECK(beat.lateness_ns == 2 * kMs);
    CHECK(beat.skipped == 0);
  }
  // After 100 s of ticks at 30 Hz the schedule is exactly at 100 s.
  CHECK(s.next_deadline_ns() == 100'000'000'000);
}

TEST_CASE("tick scheduler: nothing is due before the deadline, a little early is tolerated") {
  TickScheduler s(10, 0);
  REQUIRE(s.poll(0).due);
  CHECK_FALSE(s.poll(50 * kMs).due);
  CHECK_FALSE(s.poll(98 * kMs).due);
  auto beat = s.poll(99 * kMs + kMs / 2);  // a timer half a millisecond early
  CHECK(beat.due);
  CHECK(beat.tick_num == 1);
  CHECK(beat.lateness_ns == -kMs / 2);
}

TEST_CASE("tick scheduler: an overrun skips missed beats instead of bursting") {
  TickScheduler s(100, 0);  // 10 ms period
  REQUIRE(s.poll(0).due);
  // The loop was stuck for 55 ms: beats at 10..50 ms were missed.
  auto late = s.poll(55 * kMs);
  CHECK(late.due);
  CHECK(late.tick_num == 1);
  CHECK(late.lateness_ns == 45 * kMs);
  CHECK(late.skipped == 4);  // 20, 30, 40, 50 ms
  CHECK(s.next_deadline_ns() == 60 * kMs);
  CHECK_FALSE(s.poll(56 * kMs).due);  // no burst
  auto next = s.poll(60 * kMs);
  CHECK(next.due);
  CHECK(next.tick_num == 2);  // tick numbers stay contiguous
  CHECK(s.beats_skipped() == 4);
  CHECK(s.ticks_run() == 3);
}

TEST_CASE("tick scheduler: set_rate takes effect immediately from now") {
  TickScheduler s(1, 0);
  REQUIRE(s.poll(0).due);
  CHECK(s.next_deadline_ns() == 1000 * kMs);
  s.set_rate(100, 5 * kMs);
  CHECK(s.rate_hz() == 100);
  CHECK(s.next_deadline_ns() == 15 * kMs);
  auto beat = s.poll(15 * kMs);
  CHECK(beat.due);
  CHECK(beat.tick_num == 1);
  CHECK(s.next_deadline_ns() == 25 * kMs);
}

TEST_CASE("tick scheduler: 1000 Hz for a simulated year neither overflows nor drifts") {
  TickScheduler s(1000, 0);
  int64_t year = 365LL * 24 * 3600 * 1'000'000'000LL;
  auto beat = s.poll(year);
  CHECK(beat.due);
  CHECK(s.next_deadline_ns() == year + kMs);
}
