// The in-process matchmaker's queue (runtime/rooms/matchmaker.hpp) on its
// own: who is matched with whom, in which order, and when; no loop, no
// sockets (time is passed in).
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <utility>

#include "runtime/rooms/matchmaker.hpp"

using namespace nshost::rooms;

namespace {

Value map_of(const std::string& key, const std::string& value) {
  Value m, k, v;
  m.kind = Value::Kind::map;
  k.kind = Value::Kind::string;
  k.string = key;
  v.kind = Value::Kind::string;
  v.string = value;
  m.entries.emplace_back(k, v);
  return m;
}

Ticket ticket(uint64_t session, const std::string& type, Value properties = {}) {
  Ticket t;
  t.session_id = session;
  t.room_type = type;
  t.properties = std::move(properties);
  return t;
}

std::vector<uint64_t> sessions_of(const Match& m) {
  std::vector<uint64_t> out;
  for (const Ticket& t : m.participants) out.push_back(t.session_id);
  return out;
}

bool anyone(uint64_t) { return true; }

// Compatible when both have the same "region"; counts the pairs it is asked about.
struct SameRegion final : MatchPredicate {
  std::map<std::pair<uint64_t, uint64_t>, int> asked;
  bool compatible(const Ticket& a, const Ticket& b) override {
    ++asked[{a.session_id, b.session_id}];
    return a.properties.string_at("region") == b.properties.string_at("region");
  }
};

MatchType type_of(const std::string& name, uint32_t size, uint32_t min_size = 0, uint64_t max_wait_ms = 30000) {
  MatchType t;
  t.room_type = name;
  t.size = size;
  t.min_size = min_size ? min_size : size;
  t.max_wait_ms = max_wait_ms;
  return t;
}

}  // namespace

TEST_CASE("matchmaker: without a match function, oldest first, in groups of size") {
  InProcessMatchmaker mm;
  std::string error;
  REQUIRE(mm.define(type_of("duo", 2), error));
  CHECK_FALSE(mm.define(type_of("duo", 3), error));
  CHECK(error == "room type 'duo' already has matchmaking");
  for (uint64_t s = 1; s <= 5; ++s) CHECK_FALSE(mm.enqueue(ticket(s, "duo"), 100 + s));
  CHECK(mm.next_due_ms(200) == 200u);  // changed: due now
  auto matches = mm.form(200, anyone);
  REQUIRE(matches.size() == 2);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 2});
  CHECK(sessions_of(matches[1]) == std::vector<uint64_t>{3, 4});
  CHECK(matches[0].room_type == "duo");
  CHECK(mm.queued("duo") == 1);
  CHECK(mm.is_queued(5, "duo"));
  CHECK_FALSE(mm.is_queued(1, "duo"));
  CHECK_FALSE(mm.next_due_ms(200));  // min_size == size: nothing to wait for
  CHECK(mm.form(100000, anyone).empty());
  // The one left over is the oldest of the next match.
  CHECK_FALSE(mm.enqueue(ticket(6, "duo"), 300));
  CHECK_FALSE(mm.enqueue(ticket(7, "duo"), 301));
  matches = mm.form(302, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{5, 6});
}

TEST_CASE("matchmaker: refusals: unknown type, twice queued, a full queue, then dequeue and forget") {
  InProcessMatchmaker mm(3);
  std::string error;
  REQUIRE(mm.define(type_of("four", 4), error));
  REQUIRE(mm.define(type_of("two", 2), error));
  CHECK(mm.enqueue(ticket(1, "nope"), 0) == "not a matchmaking room type");
  CHECK_FALSE(mm.enqueue(ticket(1, "four"), 0));
  CHECK(mm.enqueue(ticket(1, "four"), 1) == "already queued");
  CHECK_FALSE(mm.enqueue(ticket(1, "two"), 1));  // another type: fine
  CHECK_FALSE(mm.enqueue(ticket(2, "four"), 2));
  CHECK_FALSE(mm.enqueue(ticket(3, "four"), 3));
  CHECK(mm.enqueue(ticket(4, "four"), 4) == "queue full");
  CHECK(mm.queued("four") == 3);
  CHECK(mm.dequeue(2, std::string_view("four")) == 1);
  CHECK(mm.dequeue(2, std::string_view("four")) == 0);
  CHECK_FALSE(mm.enqueue(ticket(4, "four"), 5));  // room again
  CHECK(mm.dequeue(1, std::nullopt) == 2);        // every type
  CHECK_FALSE(mm.is_queued(1, "two"));
  CHECK(mm.queued("four") == 2);
  mm.clear();
  CHECK(mm.queued("four") == 0);
  CHECK_FALSE(mm.next_due_ms(10));
}

TEST_CASE("matchmaker: a match function groups compatible players, asks each pair once, oldest first") {
  InProcessMatchmaker mm;
  auto region = std::make_shared<SameRegion>();
  MatchType t = type_of("duo", 2);
  t.predicate = region;
  std::string error;
  REQUIRE(mm.define(t, error));
  const char* regions[] = {"eu", "us", "asia", "us", "eu", "eu"};
  for (uint64_t s = 1; s <= 6; ++s) REQUIRE_FALSE(mm.enqueue(ticket(s, "duo", map_of("region", regions[s - 1])), s));
  auto matches = mm.form(10, anyone);
  REQUIRE(matches.size() == 2);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 5});  // eu: the oldest two
  CHECK(sessions_of(matches[1]) == std::vector<uint64_t>{2, 4});  // us
  CHECK(mm.queued("duo") == 2);  // asia (3) and the third eu (6)
  for (const auto& [pair, n] : region->asked) CHECK(n == 1);
  // Nothing new: a second pass asks nothing.
  size_t asked = region->asked.size();
  CHECK(mm.form(20, anyone).empty());
  CHECK(region->asked.size() == asked);
  // A newcomer is asked about only against those waiting.
  REQUIRE_FALSE(mm.enqueue(ticket(7, "duo", map_of("region", "asia")), 30));
  matches = mm.form(31, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{3, 7});
  CHECK(mm.predicate_calls() == region->asked.size());
}

TEST_CASE("matchmaker: a match function answers for the whole group, not only the anchor") {
  // a~b, a~c, but b and c are not compatible: a group of 3 needs a third that fits both.
  struct Table final : MatchPredicate {
    bool compatible(const Ticket& a, const Ticket& b) override {
      auto key = std::minmax(a.session_id, b.session_id);
      return !(key.first == 2 && key.second == 3);
    }
  };
  InProcessMatchmaker mm;
  MatchType t = type_of("trio", 3);
  t.predicate = std::make_shared<Table>();
  std::string error;
  REQUIRE(mm.define(t, error));
  for (uint64_t s = 1; s <= 4; ++s) REQUIRE_FALSE(mm.enqueue(ticket(s, "trio"), s));
  auto matches = mm.form(10, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 2, 4});
}

TEST_CASE("matchmaker: after max_wait a group of min_size starts, not before, and not below min_size") {
  InProcessMatchmaker mm;
  std::string error;
  REQUIRE(mm.define(type_of("quick", 4, 2, 300), error));
  REQUIRE_FALSE(mm.enqueue(ticket(1, "quick"), 1000));
  CHECK(mm.form(1000, anyone).empty());
  CHECK(mm.next_due_ms(1000) == 1300u);  // the oldest one's deadline
  CHECK(mm.form(1300, anyone).empty());  // alone: below min_size even after the wait
  CHECK_FALSE(mm.next_due_ms(1300));     // no deadline left to wait for
  REQUIRE_FALSE(mm.enqueue(ticket(2, "quick"), 1400));
  REQUIRE_FALSE(mm.enqueue(ticket(3, "quick"), 1500));
  auto matches = mm.form(1500, anyone);  // the anchor (1) has waited: 3 >= 2 start
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 2, 3});
  // Two fresh ones wait until the older one's deadline.
  REQUIRE_FALSE(mm.enqueue(ticket(4, "quick"), 2000));
  REQUIRE_FALSE(mm.enqueue(ticket(5, "quick"), 2100));
  CHECK(mm.form(2100, anyone).empty());
  CHECK(mm.next_due_ms(2100) == 2300u);
  CHECK(mm.form(2299, anyone).empty());
  matches = mm.form(2300, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{4, 5});
}

TEST_CASE("matchmaker: a player who may not be matched now is passed over and keeps its place") {
  InProcessMatchmaker mm;
  std::string error;
  REQUIRE(mm.define(type_of("duo", 2), error));
  for (uint64_t s = 1; s <= 3; ++s) REQUIRE_FALSE(mm.enqueue(ticket(s, "duo"), s));
  std::set<uint64_t> down = {1};
  auto matches = mm.form(10, [&](uint64_t s) { return !down.count(s); });
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{2, 3});
  CHECK(mm.is_queued(1, "duo"));
  down.clear();
  REQUIRE_FALSE(mm.enqueue(ticket(4, "duo"), 20));
  matches = mm.form(21, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 4});
}

TEST_CASE("matchmaker: nobody is in two matches, however many form in one pass") {
  InProcessMatchmaker mm;
  std::string error;
  REQUIRE(mm.define(type_of("four", 4), error));
  for (uint64_t s = 1; s <= 1000; ++s) REQUIRE_FALSE(mm.enqueue(ticket(s, "four"), s));
  auto matches = mm.form(2000, anyone);
  CHECK(matches.size() == 250);
  std::set<uint64_t> seen;
  for (const Match& m : matches) {
    CHECK(m.participants.size() == 4);
    for (const Ticket& t : m.participants) CHECK(seen.insert(t.session_id).second);
  }
  CHECK(mm.queued("four") == 0);
}

TEST_CASE("matchmaker: a player waiting for two types plays in one match and leaves the other queue") {
  InProcessMatchmaker mm;
  std::string error;
  REQUIRE(mm.define(type_of("a", 2), error));
  REQUIRE(mm.define(type_of("b", 2), error));
  REQUIRE_FALSE(mm.enqueue(ticket(1, "a"), 1));
  REQUIRE_FALSE(mm.enqueue(ticket(1, "b"), 1));
  REQUIRE_FALSE(mm.enqueue(ticket(2, "a"), 2));
  REQUIRE_FALSE(mm.enqueue(ticket(3, "b"), 3));
  auto matches = mm.form(10, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(matches[0].room_type == "a");
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 2});
  CHECK_FALSE(mm.is_queued(1, "b"));
  CHECK(mm.is_queued(3, "b"));
}

TEST_CASE("matchmaker: a dequeue from inside a match call waits for the end of the pass") {
  struct Dequeuing final : MatchPredicate {
    InProcessMatchmaker* mm = nullptr;
    bool compatible(const Ticket&, const Ticket&) override {
      // As a script that ends a session from its match function would.
      CHECK(mm->dequeue(3, std::nullopt) == (mm->is_queued(3, "duo") ? 1u : 0u));
      return true;
    }
  };
  InProcessMatchmaker mm;
  auto predicate = std::make_shared<Dequeuing>();
  predicate->mm = &mm;
  MatchType t = type_of("duo", 2);
  t.predicate = predicate;
  std::string error;
  REQUIRE(mm.define(t, error));
  for (uint64_t s = 1; s <= 3; ++s) REQUIRE_FALSE(mm.enqueue(ticket(s, "duo"), s));
  auto matches = mm.form(10, anyone);
  REQUIRE(matches.size() == 1);
  CHECK(sessions_of(matches[0]) == std::vector<uint64_t>{1, 2});
  CHECK(mm.queued("duo") == 0);  // 3 left after the pass
}
