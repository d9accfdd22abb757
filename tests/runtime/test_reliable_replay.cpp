// The retain/replay buffer behind reliable delivery across a resume, with
// the clock stepped by hand.
#include <doctest/doctest.h>

#include <vector>

#include "runtime/roles/reliable_replay.hpp"

using namespace nshost;

namespace {

ReliableReplay::Payload bytes(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

std::vector<std::string> after(const ReliableReplay& r, uint64_t count) {
  std::vector<std::string> out;
  r.for_each_after(count, [&](const ReliableReplay::Payload& p) { out.push_back(*p); });
  return out;
}

}  // namespace

TEST_CASE("reliable replay: sent messages are retained until acknowledged, then replayed from the peer's count") {
  ReliableReplay r(1000);
  for (int i = 1; i <= 5; ++i) r.retain_sent(bytes("m" + std::to_string(i)));
  CHECK(r.numbered() == 5);
  CHECK(r.held_count() == 5);
  CHECK(r.held_bytes() == 10);
  REQUIRE(r.acknowledge(2));
  CHECK(r.held_count() == 3);
  CHECK(r.held_bytes() == 6);
  // An older ack changes nothing; a count above what was sent is refused.
  CHECK(r.acknowledge(1));
  CHECK(r.held_count() == 3);
  CHECK_FALSE(r.acknowledge(6));
  CHECK(r.held_count() == 3);
  // The peer got 3 before the link dropped: 4 and 5 are replayed, in order.
  REQUIRE(r.acknowledge(3));
  CHECK(r.can_replay_from(3));
  CHECK(after(r, 3) == std::vector<std::string>{"m4", "m5"});
  CHECK(r.can_replay_from(5));
  CHECK(after(r, 5).empty());
  CHECK_FALSE(r.can_replay_from(6));
}

TEST_CASE("reliable replay: sends while the link is down are queued within the budget and replayed after the rest") {
  ReliableReplay r(10);
  r.retain_sent(bytes("aaaa"));  // on the wire, not yet acknowledged
  CHECK(r.queue(bytes("bbbb")));
  CHECK_FALSE(r.queue(bytes("ccc")));  // 11 bytes: over the budget, not numbered
  CHECK(r.numbered() == 2);
  CHECK(r.queue(bytes("cc")));
  CHECK(r.held_bytes() == 10);
  CHECK(after(r, 0) == std::vector<std::string>{"aaaa", "bbbb", "cc"});
  // After the resume the replayed copies stay until acknowledged.
  REQUIRE(r.acknowledge(1));
  CHECK(r.held_bytes() == 6);
  CHECK(r.queue(bytes("dddd")));
}

TEST_CASE("reliable replay: a live sender past the budget drops the oldest copies and the floor says so") {
  ReliableReplay r(8);
  r.retain_sent(bytes("1111"));
  r.retain_sent(bytes("2222"));
  CHECK(r.replay_floor() == 0);
  r.retain_sent(bytes("3333"));  // 12 bytes: message 1 goes
  CHECK(r.replay_floor() == 1);
  CHECK(r.held_count() == 2);
  CHECK_FALSE(r.can_replay_from(0));  // the peer lacks message 1, which is gone
  CHECK(r.can_replay_from(1));
  // Once the peer acknowledges past the floor, any resume can be replayed.
  REQUIRE(r.acknowledge(2));
  CHECK(r.can_replay_from(2));
  // A message larger than the whole budget cannot be kept at all.
  r.retain_sent(bytes("123456789"));
  CHECK(r.replay_floor() == 4);
  CHECK(r.held_count() == 0);
  CHECK(r.held_bytes() == 0);
  CHECK_FALSE(r.can_replay_from(3));
  CHECK(r.can_replay_from(4));
}

TEST_CASE("reliable replay: an ack is due at most every 100 ms, and only when the count changed") {
  ReliableReplay r(0);
  const int64_t t0 = 5'000'000'000;
  CHECK_FALSE(r.take_ack_due(t0));  // nothing received
  CHECK(r.ack_wait_ns(t0) == -1);
  r.on_received();
  CHECK(r.ack_wait_ns(t0) == 0);
  CHECK(r.take_ack_due(t0));  // the first one goes at once
  CHECK(r.received() == 1);
  CHECK(r.ack_wait_ns(t0) == -1);
  r.on_received();
  CHECK(r.ack_wait_ns(t0 + 30'000'000) == 70'000'000);
  CHECK_FALSE(r.take_ack_due(t0 + 50'000'000));
  CHECK_FALSE(r.take_ack_due(t0 + 99'999'999));
  CHECK(r.take_ack_due(t0 + 100'000'000));
  CHECK_FALSE(r.take_ack_due(t0 + 500'000'000));  // unchanged: no ack
  r.on_received();
  CHECK(r.take_ack_due(t0 + 500'000'001));
  CHECK(r.received() == 3);
}
