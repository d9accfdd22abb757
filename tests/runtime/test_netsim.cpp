// The network-condition simulator: its parser, the fates it deals, and the
// malformed-datagram filter of the transport tap.
#include <doctest/doctest.h>
#include <enet/protocol.h>

#include <map>

#include "runtime/transport/netsim.hpp"
#include "runtime/transport/socket_tap.hpp"

using namespace nshost;

namespace {

NetsimConfig config(double latency, double jitter, double loss, double dup, double reorder, uint64_t seed = 7) {
  NetsimConfig c;
  c.latency_ms = latency;
  c.jitter_ms = jitter;
  c.loss = loss;
  c.dup = dup;
  c.reorder = reorder;
  c.seed = seed;
  c.enabled = true;
  return c;
}

// Submits n datagrams "0".."n-1" 1 ms apart and drains the link to the end.
std::vector<std::pair<int64_t, int>> run_link(const NetsimConfig& c, int n, NetsimLink::Counters* counters = nullptr) {
  NetsimLink link(c, 1);
  ENetAddress to{};
  std::vector<std::pair<int64_t, int>> out;
  NetsimLink::Datagram d;
  int64_t now = 0;
  for (int i = 0; i < n; ++i, now += 1'000'000) {
    link.submit(now, to, std::to_string(i));
    while (link.pop_due(now, d)) out.emplace_back(now, std::stoi(d.bytes));
  }
  for (; link.queued() > 0; now += 1'000'000)
    while (link.pop_due(now, d)) out.emplace_back(now, std::stoi(d.bytes));
  if (counters) *counters = link.counters();
  return out;
}

}  // namespace

TEST_CASE("netsim: --netsim values parse, and bad ones give one readable error") {
  NetsimConfig c;
  std::string error;
  REQUIRE(parse_netsim("100,50,0.25,25%,0,42", c, error));
  CHECK(c.enabled);
  CHECK(c.latency_ms == 100);
  CHECK(c.jitter_ms == 50);
  CHECK(c.loss == doctest::Approx(0.25));
  CHECK(c.dup == doctest::Approx(0.25));
  CHECK(c.reorder == 0);
  CHECK(c.seed == 42);
  REQUIRE(parse_netsim("0,0,0,0,0", c, error));
  CHECK(c.seed == 1);
  for (const char* bad : {"", "1,2,3", "100,50,1.5,0,0", "-1,0,0,0,0", "100,50,0,0,0,x", "a,0,0,0,0", "1,2,3,4,5,6,7"}) {
    NetsimConfig untouched;
    CHECK_MESSAGE(!parse_netsim(bad, untouched, error), bad);
    CHECK_FALSE(error.empty());
    CHECK_FALSE(untouched.enabled);
  }
}

TEST_CASE("netsim: the same seed deals the same fates, and loss and duplication come out near their rates") {
  NetsimConfig c = config(100, 50, 0.25, 0.25, 0.1);
  NetsimLink::Counters a{}, b{};
  auto first = run_link(c, 20000, &a);
  auto second = run_link(c, 20000, &b);
  CHECK(first == second);
  CHECK(a.dropped == b.dropped);
  CHECK(a.dropped == doctest::Approx(5000).epsilon(0.05));
  CHECK(a.duplicated == doctest::Approx(15000 * 0.25).epsilon(0.05));
  CHECK(first.size() == a.submitted - a.dropped + a.duplicated);
  c.seed = 8;
  CHECK(run_link(c, 20000) != first);
}

TEST_CASE("netsim: delays stay within latency +- jitter, and without reorder nothing is overtaken") {
  NetsimConfig c = config(100, 50, 0, 0, 0);
  auto out = run_link(c, 5000);
  REQUIRE(out.size() == 5000);
  for (size_t i = 0; i < out.size(); ++i) {
    CHECK(out[i].second == static_cast<int>(i));
    int64_t sent_ms = out[i].second;
    int64_t delay_ms = out[i].first / 1'000'000 - sent_ms;
    CHECK(delay_ms >= 50);
    // FIFO: held back at most behind an earlier datagram's (latency + jitter).
    CHECK(delay_ms <= 151);
  }
}

TEST_CASE("netsim: with reorder some datagrams are overtaken, and none is lost by it") {
  NetsimConfig c = config(20, 5, 0, 0, 0.2);
  NetsimLink::Counters counters{};
  auto out = run_link(c, 5000, &counters);
  REQUIRE(out.size() == 5000);
  int inversions = 0;
  for (size_t i = 1; i < out.size(); ++i) inversions += out[i].second < out[i - 1].second;
  CHECK(inversions > 100);
  CHECK(counters.reordered == doctest::Approx(1000).epsilon(0.1));
  std::map<int, int> seen;
  for (auto& [t, n] : out) ++seen[n];
  CHECK(seen.size() == 5000);
}

TEST_CASE("transport tap: datagrams that cannot be ENet protocol are classified, real ones pass") {
  auto bytes = [](std::initializer_list<int> v) {
    std::vector<uint8_t> out;
    for (int b : v) out.push_back(static_cast<uint8_t>(b));
    return out;
  };
  auto check = [](const std::vector<uint8_t>& b, size_t peers = 8) { return check_enet_datagram(b.data(), b.size(), peers); };
  CHECK(check(bytes({})) == DatagramVerdict::too_short);
  CHECK(check(bytes({0x0F, 0xFF, 0x82})) == DatagramVerdict::too_short);
  // A connect (command 2 with the acknowledge flag) from a peer-less sender.
  CHECK(check(bytes({0x0F, 0xFF, 0x82, 0xFF, 0x00, 0x01})) == DatagramVerdict::ok);
  // The same with the sent-time flag and its two bytes.
  CHECK(check(bytes({0x8F, 0xFF, 0x12, 0x34, 0x82, 0xFF, 0x00, 0x01})) == DatagramVerdict::ok);
  CHECK(check(bytes({0x0F, 0xFF, 0x86, 0xFF, 0x00, 0x01})) == DatagramVerdict::bad_command);  // not a connect
  CHECK(check(bytes({0x00, 0x09, 0x86, 0x01, 0x00, 0x01})) == DatagramVerdict::bad_peer_id);
  CHECK(check(bytes({0x00, 0x03, 0x86, 0x01, 0x00, 0x01})) == DatagramVerdict::ok);
  CHECK(check(bytes({0x00, 0x03, 0x8F, 0x01, 0x00, 0x01})) == DatagramVerdict::bad_command);
  CHECK(check(bytes({0x00, 0x03, 0x80, 0x01, 0x00, 0x01})) == DatagramVerdict::bad_command);
  CHECK(check(bytes({0x40, 0x03, 0x86, 0x01, 0x00, 0x01})) == DatagramVerdict::compressed);
}
