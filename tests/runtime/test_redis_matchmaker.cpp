// The matchmaking queue in Redis (runtime/rooms/redis_matchmaker.hpp)
// against a real redis-server: each "server" here is a RedisClient and a
// RedisMatchmaker on one libuv loop, as each nshost server of a cluster has
// its own. Matches are collected from every instance's sink.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/cluster/redis_client.hpp"
#include "runtime/rooms/redis_matchmaker.hpp"
#include "tests/support/clock.hpp"
#include "tests/support/redis_server.hpp"

using namespace nshost;
using namespace nshost::cluster;
using nshost::rooms::Match;
using nshost::rooms::RedisMatchmaker;
using nshost::rooms::RedisMatchmakerConfig;
using nshost::rooms::MatchType;
using nshost::rooms::Ticket;
using nshost::rooms::Value;
using nshost::test::now_ms;
using nshost::test::RedisServer;

namespace {

struct Quiet final : RedisClient::Listener {
  void on_redis_up() override {}
  void on_redis_down(std::string_view) override {}
};

// One server's queue: its own Redis connection and matchmaker, driven the
// way the room manager drives it (form at next_due_ms).
struct Node {
  Node(uv_loop_t* loop, const std::string& url, std::string id, std::vector<Match>& all)
      : loop(loop), server_id(std::move(id)) {
    RedisAddress address;
    std::string error;
    REQUIRE_MESSAGE(parse_redis_url(url, address, error), error);
    client = std::make_unique<RedisClient>(loop, address, listener, "redis-" + server_id);
    RedisMatchmakerConfig config;
    config.server_id = server_id;
    config.heartbeat_ms = 200;
    mm = std::make_unique<RedisMatchmaker>(loop, *client, config);
    mm->attach([this](uint64_t session) { return !away.count(session); },
               [this, &all](std::vector<Match> matches) {
                 for (Match& m : matches) {
                   // A participant of this server carries no server id.
                   for (Ticket& t : m.participants)
                     if (t.server.empty()) t.server = server_id;
                   all.push_back(m);
                   mine.push_back(std::move(m));
                 }
               },
               [this] { arm(); });
    timer.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); });
    timer.get()->data = this;
    client->start();
  }
  ~Node() {
    timer.close();
    mm.reset();
    client->close();
  }
  void arm() {
    auto due = mm->next_due_ms(uv_now(loop));
    if (!due) {
      uv_timer_stop(timer.get());
      return;
    }
    uint64_t now = uv_now(loop);
    uv_timer_start(
        timer.get(),
        [](uv_timer_t* t) {
          auto* n = static_cast<Node*>(t->data);
          n->mm->form(uv_now(n->loop));
          n->arm();
        },
        *due > now ? *due - now : 0, 0);
  }
  // Enqueues and counts the answers; `refusals` keeps the refused ones.
  void enqueue(uint64_t session, const std::string& type, Value properties = {}) {
    Ticket t;
    t.session_id = session;
    t.room_type = type;
    t.properties = std::move(properties);
    ++asked;
    mm->enqueue(std::move(t), uv_now(loop), [this, session](std::optional<std::string> refusal) {
      ++answered;
      if (refusal) refusals[session] = *refusal;
      arm();
    });
  }

  uv_loop_t* loop;
  std::string server_id;
  Quiet listener;
  std::unique_ptr<RedisClient> client;
  std::unique_ptr<RedisMatchmaker> mm;
  UvHandle<uv_timer_t> timer;
  std::set<uint64_t> away;  // sessions whose link is down
  std::vector<Match> mine;
  std::map<uint64_t, std::string> refusals;
  int asked = 0, answered = 0;
};

struct Loop {
  uv_loop_t loop{};
  UvHandle<uv_timer_t> tick;
  Loop() {
    uv_loop_init(&loop);
    // Wakes the loop so every wait below checks its deadline.
    tick.init([&](uv_timer_t* t) { return uv_timer_init(&loop, t); });
    uv_timer_start(tick.get(), [](uv_timer_t*) {}, 5, 5);
  }
  ~Loop() {
    tick.close();
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
    }
    uv_loop_close(&loop);
  }
  // Runs the loop until `done()` or `timeout_ms`; returns done().
  template <class F>
  bool until(F done, int64_t timeout_ms = 10000) {
    int64_t deadline = now_ms() + timeout_ms;
    while (!done() && now_ms() < deadline) uv_run(&loop, UV_RUN_ONCE);
    return done();
  }
};

std::string hex_id(int n) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016x", 0xa000 + n);
  return buf;
}

MatchType type_of(const std::string& name, uint32_t size, std::shared_ptr<rooms::MatchPredicate> predicate = {}) {
  MatchType t;
  t.room_type = name;
  t.size = size;
  t.min_size = size;
  t.predicate = std::move(predicate);
  return t;
}

Value region(const std::string& r) {
  Value m, k, v;
  m.kind = Value::Kind::map;
  k.kind = Value::Kind::string;
  k.string = "region";
  v.kind = Value::Kind::string;
  v.string = r;
  m.entries.emplace_back(k, v);
  return m;
}

std::vector<std::string> who(const Match& m) {
  std::vector<std::string> out;
  for (const Ticket& t : m.participants) out.push_back(t.server.substr(12) + "/" + std::to_string(t.session_id));
  return out;
}

struct Fixture {
  RedisServer redis;
  Loop loop;
  std::vector<Match> all;
  std::vector<std::unique_ptr<Node>> nodes;
  Fixture(int servers, const std::vector<MatchType>& types) {
    REQUIRE_MESSAGE(RedisServer::available(), "redis-server is not installed (apt-get install redis-server)");
    std::string error;
    REQUIRE_MESSAGE(redis.start(error), error);
    for (int i = 0; i < servers; ++i) {
      nodes.push_back(std::make_unique<Node>(&loop.loop, redis.url(), hex_id(i), all));
      for (const MatchType& t : types) REQUIRE(nodes.back()->mm->define(t, error));
    }
    REQUIRE(loop.until([&] {
      for (auto& n : nodes)
        if (!n->client->connected()) return false;
      return true;
    }));
  }
  // Waits until every enqueue so far was answered.
  bool answered() {
    return loop.until([&] {
      for (auto& n : nodes)
        if (n->answered != n->asked) return false;
      return true;
    });
  }
};

}  // namespace

TEST_CASE("redis matchmaker: oldest first across servers, in groups of size") {
  Fixture f(2, {type_of("duo", 2)});
  Node& a = *f.nodes[0];
  Node& b = *f.nodes[1];
  // Enqueue order a1 b1 a2 b2 a3 (each answered before the next).
  for (int i = 1; i <= 3; ++i) {
    a.enqueue(i, "duo");
    REQUIRE(f.answered());
    if (i < 3) {
      b.enqueue(i, "duo");
      REQUIRE(f.answered());
    }
  }
  REQUIRE(f.loop.until([&] { return f.all.size() >= 2; }));
  // Nothing else is due: no third match, and a3 waits.
  f.loop.until([] { return false; }, 300);
  REQUIRE(f.all.size() == 2);
  std::set<std::vector<std::string>> got{who(f.all[0]), who(f.all[1])};
  CHECK(got == std::set<std::vector<std::string>>{{"a000/1", "a001/1"}, {"a000/2", "a001/2"}});
  CHECK(f.redis.cli({"ZCARD", "nshost:mm:queue:duo"}) == "1");
  CHECK(f.redis.cli({"ZRANGE", "nshost:mm:queue:duo", "0", "-1"}) == hex_id(0) + ".3");
  CHECK(a.mm->is_queued(3, "duo"));
  CHECK_FALSE(a.mm->is_queued(1, "duo"));
  CHECK(a.mm->queued("duo") == 1);
  // A ticket's hash: its server, session and enqueue time.
  CHECK(f.redis.cli({"HGET", "nshost:mm:ticket:duo:" + hex_id(0) + ".3", "session"}) == "3");
  CHECK(f.redis.cli({"HGET", "nshost:mm:ticket:duo:" + hex_id(0) + ".3", "server"}) == hex_id(0));
  // Refusals: twice, an unknown type.
  a.enqueue(3, "duo");
  a.enqueue(9, "nope");
  REQUIRE(f.answered());
  CHECK(a.refusals[3] == "already queued");
  CHECK(a.refusals[9] == "not a matchmaking room type");
}

namespace {
struct SameRegion final : rooms::MatchPredicate {
  std::map<std::pair<uint64_t, uint64_t>, int> asked;
  bool compatible(const Ticket& a, const Ticket& b) override {
    ++asked[{a.serial, b.serial}];
    return a.properties.string_at("region") == b.properties.string_at("region");
  }
};
}  // namespace

TEST_CASE("redis matchmaker: the match function groups by its verdicts, each pair asked once") {
  auto same = std::make_shared<SameRegion>();
  Fixture f(2, {type_of("regional", 2, same)});
  Node& a = *f.nodes[0];
  Node& b = *f.nodes[1];
  a.enqueue(1, "regional", region("eu"));
  REQUIRE(f.answered());
  b.enqueue(1, "regional", region("us"));
  REQUIRE(f.answered());
  a.enqueue(2, "regional", region("us"));
  REQUIRE(f.answered());
  b.enqueue(2, "regional", region("eu"));
  REQUIRE(f.answered());
  REQUIRE(f.loop.until([&] { return f.all.size() == 2; }));
  std::set<std::vector<std::string>> got{who(f.all[0]), who(f.all[1])};
  CHECK(got == std::set<std::vector<std::string>>{{"a000/1", "a001/2"}, {"a001/1", "a000/2"}});
  for (const auto& [pair, n] : same->asked) CHECK_MESSAGE(n == 1, "pair asked " << n << " times");
  // Properties travel to the match intact.
  for (const Match& m : f.all)
    CHECK(m.participants[0].properties.string_at("region") == m.participants[1].properties.string_at("region"));
}

TEST_CASE("redis matchmaker: a dequeued player is never matched") {
  Fixture f(2, {type_of("quad", 4)});
  Node& a = *f.nodes[0];
  Node& b = *f.nodes[1];
  // One at a time, so the enqueue order is known.
  for (Node* n : {&a, &a, &b}) {
    n->enqueue(n == &a ? n->asked + 1 : 1, "quad");
    REQUIRE(f.answered());
  }
  b.enqueue(2, "quad");
  // Dequeued before the enqueue's answer came back: gone from Redis too.
  CHECK(b.mm->dequeue(2, std::string_view("quad")) == 1);
  REQUIRE(f.answered());
  f.loop.until([] { return false; }, 300);
  CHECK(f.all.empty());
  CHECK(f.redis.cli({"ZCARD", "nshost:mm:queue:quad"}) == "3");
  b.enqueue(3, "quad");
  REQUIRE(f.loop.until([&] { return f.all.size() == 1; }));
  CHECK(who(f.all[0]) == std::vector<std::string>{"a000/1", "a000/2", "a001/1", "a001/3"});
  CHECK(f.redis.cli({"ZCARD", "nshost:mm:queue:quad"}) == "0");
  CHECK(f.redis.cli({"EXISTS", "nshost:mm:ticket:quad:" + hex_id(1) + ".2"}) == "0");
}

TEST_CASE("redis matchmaker: a player whose link is down keeps its place, passed over by its server") {
  Fixture f(1, {type_of("quad", 4)});
  Node& a = *f.nodes[0];
  a.away.insert(1);
  for (uint64_t s = 1; s <= 4; ++s) a.enqueue(s, "quad");
  REQUIRE(f.answered());
  f.loop.until([] { return false; }, 300);
  CHECK(f.all.empty());
  a.enqueue(5, "quad");
  REQUIRE(f.loop.until([&] { return f.all.size() == 1; }));
  CHECK(who(f.all[0]) == std::vector<std::string>{"a000/2", "a000/3", "a000/4", "a000/5"});
  CHECK(a.mm->is_queued(1, "quad"));
  CHECK(f.redis.cli({"ZRANGE", "nshost:mm:queue:quad", "0", "-1"}) == hex_id(0) + ".1");
  // Dequeue without a type leaves every queue, in Redis too.
  CHECK(a.mm->dequeue(1, std::nullopt) == 1);
  REQUIRE(f.loop.until([&] { return f.redis.cli({"ZCARD", "nshost:mm:queue:quad"}) == "0"; }));
  CHECK(f.redis.cli({"EXISTS", "nshost:mm:ticket:quad:" + hex_id(0) + ".1"}) == "0");
}

namespace {
// Takes a ticket out of the queue behind the matchmaker's back while it
// groups (between its read and its claim), as another server's dequeue would.
struct Thief final : rooms::MatchPredicate {
  RedisServer* redis = nullptr;
  std::string steal;
  int calls = 0;
  bool compatible(const Ticket&, const Ticket&) override {
    if (calls++ == 0) redis->cli({"ZREM", "nshost:mm:queue:trio", steal});
    return true;
  }
};
}  // namespace

TEST_CASE("redis matchmaker: the claim refuses a group with a ticket gone") {
  auto thief = std::make_shared<Thief>();
  Fixture f(1, {type_of("trio", 3, thief)});
  thief->redis = &f.redis;
  thief->steal = RedisMatchmaker::ticket_id(hex_id(0), 2);
  Node& a = *f.nodes[0];
  for (uint64_t s = 1; s <= 3; ++s) a.enqueue(s, "trio");
  REQUIRE(f.answered());
  REQUIRE(f.loop.until([&] { return a.mm->claims_refused() == 1; }));
  f.loop.until([] { return false; }, 300);
  CHECK(f.all.empty());
  // The others are still queued and match with the next arrival.
  CHECK(f.redis.cli({"ZCARD", "nshost:mm:queue:trio"}) == "2");
  a.enqueue(4, "trio");
  REQUIRE(f.loop.until([&] { return f.all.size() == 1; }));
  CHECK(who(f.all[0]) == std::vector<std::string>{"a000/1", "a000/3", "a000/4"});
}

TEST_CASE("redis matchmaker: tickets of a server whose alive key expired are dropped") {
  Fixture f(2, {type_of("duo", 2)});
  Node& a = *f.nodes[0];
  Node& b = *f.nodes[1];
  a.enqueue(1, "duo");
  REQUIRE(f.answered());
  // b's process "dies": its heartbeat stops and its alive key is gone.
  std::string b_id = b.server_id;
  f.nodes[1].reset();
  f.redis.cli({"DEL", RedisMatchmaker::alive_key(b_id)});
  // A ticket of the dead server, left behind in Redis.
  f.redis.cli({"ZADD", "nshost:mm:queue:duo", "1", b_id + ".7"});
  f.redis.cli({"HSET", "nshost:mm:ticket:duo:" + b_id + ".7", "server", b_id, "session", "7", "properties", "",
               "enqueued_ms", "0"});
  a.enqueue(2, "duo");
  REQUIRE(f.loop.until([&] { return f.all.size() == 1; }));
  CHECK(who(f.all[0]) == std::vector<std::string>{"a000/1", "a000/2"});
  CHECK(f.redis.cli({"ZCARD", "nshost:mm:queue:duo"}) == "0");
  CHECK(f.redis.cli({"EXISTS", "nshost:mm:ticket:duo:" + b_id + ".7"}) == "0");
}

TEST_CASE("redis matchmaker: 4 servers forming at once make each match exactly once") {
  constexpr int kServers = 4;
  constexpr uint64_t kPerServer = 200;
  Fixture f(kServers, {type_of("quad", 4), type_of("pair", 2)});
  // Every server enqueues all its players at once (none waits for an answer);
  // the even sessions also wait for "pair": each plays in one match only.
  for (uint64_t s = 1; s <= kPerServer; ++s)
    for (auto& n : f.nodes) {
      n->enqueue(s, "quad");
      if (s % 2 == 0) n->enqueue(s, "pair");
    }
  REQUIRE(f.answered());
  for (auto& n : f.nodes) CHECK(n->refusals.empty());
  auto matched_players = [&] {
    size_t n = 0;
    for (const Match& m : f.all) n += m.participants.size();
    return n;
  };
  // Who may play in either type makes the last few depend on the timing:
  // the run is over when every player is matched or still queued in a queue
  // too short to match (fewer than 4 in quad, fewer than 2 in pair).
  auto members = [&](const std::string& type) {
    std::set<std::string> out;
    std::string text = f.redis.cli({"ZRANGE", "nshost:mm:queue:" + type, "0", "-1"});
    for (size_t at = 0; at < text.size();) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      if (nl > at) out.insert(text.substr(at, nl - at));
      at = nl + 1;
    }
    return out;
  };
  std::set<std::string> left;
  auto settled = [&] {
    std::set<std::string> quad = members("quad"), pair = members("pair");
    if (quad.size() >= 4 || pair.size() >= 2) return false;
    left = quad;
    left.insert(pair.begin(), pair.end());
    return matched_players() + left.size() == kServers * kPerServer;
  };
  REQUIRE(f.loop.until(settled, 20000));
  f.loop.until([] { return false; }, 300);
  REQUIRE(settled());
  std::map<std::string, int> seen;
  std::set<std::string> formers;
  size_t across = 0;
  for (const Match& m : f.all) {
    CHECK(m.participants.size() == (m.room_type == "quad" ? 4u : 2u));
    std::set<std::string> servers;
    for (const Ticket& t : m.participants) {
      ++seen[t.server + "." + std::to_string(t.session_id)];
      servers.insert(t.server);
    }
    across += servers.size() > 1;
  }
  CHECK(seen.size() + left.size() == kServers * kPerServer);
  for (const auto& [player, n] : seen) CHECK_MESSAGE(n == 1, player << " in " << n << " matches");
  for (const std::string& player : left) CHECK_MESSAGE(!seen.count(player), player << " matched and still queued");
  for (auto& n : f.nodes)
    if (!n->mine.empty()) formers.insert(n->server_id);
  CHECK(across > 0);
  // Each server learns by its next read that its players left (in a
  // cluster the match's server also tells it).
  CHECK(f.loop.until([&] {
    size_t queued = 0;
    for (auto& n : f.nodes) queued += n->mm->queued("quad") + n->mm->queued("pair");
    return queued == members("quad").size() + members("pair").size();
  }));
  uint64_t rounds = 0, refused = 0;
  for (auto& n : f.nodes) {
    rounds += n->mm->rounds();
    refused += n->mm->claims_refused();
  }
  MESSAGE(f.all.size() << " matches formed by " << formers.size() << " servers in " << rounds << " rounds, "
                       << refused << " groups refused at the claim, " << across << " across servers");
}
