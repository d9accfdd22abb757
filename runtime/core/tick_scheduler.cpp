#include "runtime/core/tick_scheduler.hpp"

namespace nshost {

__extension__ typedef unsigned __int128 u128;

TickScheduler::TickScheduler(uint32_t rate_hz, int64_t start_ns) : rate_hz_(rate_hz), anchor_ns_(start_ns) {}

int64_t TickScheduler::deadline(uint64_t k) const {
  // 128-bit so k * 1e9 cannot overflow however long the host runs.
  return anchor_ns_ + static_cast<int64_t>(static_cast<u128>(k) * 1'000'000'000u / rate_hz_);
}

int64_t TickScheduler::next_deadline_ns() const { return deadline(k_); }

TickScheduler::Beat TickScheduler::poll(int64_t now_ns) {
  Beat beat;
  int64_t due_at = deadline(k_);
  if (now_ns + kEarlyToleranceNs < due_at) return beat;
  beat.due = true;
  beat.tick_num = ticks_run_++;
  beat.lateness_ns = now_ns - due_at;
  ++k_;
  if (deadline(k_) <= now_ns) {
    // First k with deadline(k) > now.
    uint64_t elapsed = static_cast<uint64_t>(now_ns - anchor_ns_);
    auto next = static_cast<uint64_t>(static_cast<u128>(elapsed) * rate_hz_ / 1'000'000'000u) + 1;
    while (deadline(next) <= now_ns) ++next;
    beat.skipped = next - k_;
    beats_skipped_ += beat.skipped;
    k_ = next;
  }
  return beat;
}

void TickScheduler::set_rate(uint32_t rate_hz, int64_t now_ns) {
  rate_hz_ = rate_hz;
  anchor_ns_ = now_ns;
  k_ = 1;
}

}  // namespace nshost
