// JoinFetch: the bundle a client assembles from parts before it joins, and
// the data it holds meanwhile. Pure state, checked without a network.
#include <doctest/doctest.h>

#include "runtime/script/bundle.hpp"
#include "runtime/roles/join_fetch.hpp"
#include "runtime/transport/wire.hpp"

using namespace nshost;

TEST_CASE("join fetch: parts in order assemble the announced bundle") {
  const std::string bundle = "0123456789abcdef";
  JoinFetch fetch(64);
  fetch.expect(sha256(bundle), static_cast<uint32_t>(bundle.size()));
  std::string failure;
  CHECK(fetch.add_part(wire::encode_bundle_part(0, bundle.substr(0, 10)), failure) == JoinFetch::Part::incomplete);
  CHECK(fetch.add_part(wire::encode_bundle_part(10, bundle.substr(10)), failure) == JoinFetch::Part::complete);
  CHECK(fetch.take_bundle() == bundle);
}

TEST_CASE("join fetch: a gap, an excess or a wrong hash fails with the hop-failure reason") {
  const std::string bundle = "0123456789";
  std::string failure;
  JoinFetch gap(64);
  gap.expect(sha256(bundle), 10);
  CHECK(gap.add_part(wire::encode_bundle_part(4, "4567"), failure) == JoinFetch::Part::failed);
  CHECK(failure == "bad_bundle: part at offset 4, expected 0");

  JoinFetch excess(64);
  excess.expect(sha256(bundle), 10);
  CHECK(excess.add_part(wire::encode_bundle_part(0, bundle + "x"), failure) == JoinFetch::Part::failed);
  CHECK(failure.rfind("bundle_too_large", 0) == 0);

  JoinFetch wrong(64);
  wrong.expect(sha256("another"), 10);
  CHECK(wrong.add_part(wire::encode_bundle_part(0, bundle), failure) == JoinFetch::Part::failed);
  CHECK(failure.rfind("bad_hash: ", 0) == 0);

  JoinFetch garbage(64);
  garbage.expect(sha256(bundle), 10);
  CHECK(garbage.add_part("\x01", failure) == JoinFetch::Part::failed);
  CHECK(failure.rfind("bad_bundle: ", 0) == 0);
}

TEST_CASE("join fetch: held data comes back in order, within its byte budget") {
  JoinFetch fetch(8);
  CHECK(fetch.hold(wire::kChannelReliable, "abcd"));
  CHECK(fetch.hold(wire::kChannelUnreliable, "efg"));
  CHECK_FALSE(fetch.hold(wire::kChannelReliable, "hi"));  // 9 bytes: over the budget, dropped
  CHECK(fetch.hold(wire::kChannelReliable, "h"));
  auto held = fetch.take_held();
  REQUIRE(held.size() == 3);
  CHECK(held[0] == std::pair<uint8_t, std::string>{wire::kChannelReliable, "abcd"});
  CHECK(held[1] == std::pair<uint8_t, std::string>{wire::kChannelUnreliable, "efg"});
  CHECK(held[2] == std::pair<uint8_t, std::string>{wire::kChannelReliable, "h"});
  CHECK(fetch.take_held().empty());
  CHECK(fetch.hold(wire::kChannelReliable, "12345678"));  // the budget is free again
  fetch.clear();
  CHECK(fetch.take_held().empty());
}
