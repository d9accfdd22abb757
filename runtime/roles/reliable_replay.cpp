#include "runtime/roles/reliable_replay.hpp"

#include <algorithm>

namespace nshost {

void ReliableReplay::drop_front() {
  held_bytes_ -= held_.front().bytes->size();
  held_.pop_front();
}

void ReliableReplay::retain_sent(Payload bytes) {
  held_bytes_ += bytes->size();
  held_.push_back(Entry{++numbered_, std::move(bytes)});
  while (held_bytes_ > budget_bytes_) {
    floor_ = held_.front().number;
    drop_front();
  }
}

bool ReliableReplay::queue(Payload bytes) {
  if (held_bytes_ + bytes->size() > budget_bytes_) return false;
  held_bytes_ += bytes->size();
  held_.push_back(Entry{++numbered_, std::move(bytes)});
  return true;
}

bool ReliableReplay::acknowledge(uint64_t count) {
  if (count > numbered_) return false;
  while (!held_.empty() && held_.front().number <= count) drop_front();
  return true;
}

bool ReliableReplay::take_ack_due(int64_t now_ns) {
  if (received_ == acked_received_) return false;
  if (last_ack_ns_ != INT64_MIN && now_ns - last_ack_ns_ < kAckIntervalNs) return false;
  acked_received_ = received_;
  last_ack_ns_ = now_ns;
  return true;
}

int64_t ReliableReplay::ack_wait_ns(int64_t now_ns) const {
  if (received_ == acked_received_) return -1;
  if (last_ack_ns_ == INT64_MIN) return 0;
  return std::max<int64_t>(0, last_ack_ns_ + kAckIntervalNs - now_ns);
}

}  // namespace nshost
