// The Redis client against a real redis-server: commands and their replies,
// binary-safe arguments, EVAL with the NOSCRIPT fallback, pub/sub, losing and
// regaining Redis, and close() with commands in flight.
#include <doctest/doctest.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <optional>

#include "runtime/cluster/redis_client.hpp"
#include "tests/support/capture.hpp"
#include "tests/support/redis_server.hpp"

using nshost::cluster::parse_redis_url;
using nshost::cluster::RedisAddress;
using nshost::cluster::RedisClient;
using nshost::cluster::RedisReply;
using nshost::cluster::RedisScript;
using nshost::test::RedisServer;

namespace {

struct CountingListener : RedisClient::Listener {
  int ups = 0;
  int downs = 0;
  std::string last_down;
  void on_redis_up() override { ++ups; }
  void on_redis_down(std::string_view why) override {
    ++downs;
    last_down = std::string(why);
  }
};

// A loop owned by the test; run_until turns it until `done` or the deadline.
struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    // Let closed handles (hiredis's poll, our timers) finish closing.
    for (int i = 0; i < 100 && uv_loop_close(&loop) == UV_EBUSY; ++i) uv_run(&loop, UV_RUN_NOWAIT);
  }
  bool run_until(const std::function<bool()>& done, int timeout_ms = 5000) {
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool ok = done();
    while (!ok && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop, UV_RUN_ONCE);
      ok = done();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
  }
};

RedisAddress address_of(const RedisServer& redis, uint32_t db = 0) {
  RedisAddress a;
  a.host = "127.0.0.1";
  a.port = static_cast<uint16_t>(redis.port());
  a.db = db;
  return a;
}

// Sends one command and waits for its reply.
std::optional<RedisReply> roundtrip(Loop& loop, RedisClient& client, std::vector<std::string> argv) {
  std::optional<RedisReply> got;
  bool done = false;
  std::string error;
  bool sent = client.command(
      std::move(argv),
      [&](const RedisReply* r, std::string_view) {
        if (r) got = *r;
        done = true;
      },
      &error);
  REQUIRE_MESSAGE(sent, error);
  REQUIRE(loop.run_until([&] { return done; }));
  return got;
}

void require_redis(RedisServer& redis) {
  REQUIRE_MESSAGE(RedisServer::available(), "redis-server is not installed (apt-get install redis-server)");
  std::string error;
  REQUIRE_MESSAGE(redis.start(error), error);
}

}  // namespace

TEST_CASE("redis client: parse_redis_url takes redis://HOST:PORT[/DB] and refuses the rest") {
  RedisAddress a;
  std::string error;
  REQUIRE(parse_redis_url("redis://127.0.0.1:6380", a, error));
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 6380);
  CHECK(a.db == 0);
  REQUIRE(parse_redis_url("redis://cache.local:7000/3", a, error));
  CHECK(a.host == "cache.local");
  CHECK(a.port == 7000);
  CHECK(a.db == 3);
  REQUIRE(parse_redis_url("redis://h", a, error));
  CHECK(a.port == 6379);
  for (const char* bad : {"http://h:1", "redis://", "redis://:1", "redis://h:0", "redis://h:65536", "redis://h:x",
                          "redis://h:1/16", "redis://h:1/", "redis://h:1/a", "redis://u@h:1", "redis://h:"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(parse_redis_url(bad, a, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("redis client: commands, binary-safe arguments, the database, EVAL and the NOSCRIPT fallback") {
  RedisServer redis;
  require_redis(redis);
  Loop loop;
  CountingListener listener;
  RedisClient client(&loop.loop, address_of(redis, 2), listener, "test");
  std::string error;
  CHECK_FALSE(client.command({"PING"}, [](const RedisReply*, std::string_view) { FAIL("called"); }, &error));
  CHECK(error.rfind("ENOTCONN", 0) == 0);
  client.start();
  CHECK(listener.ups == 0);  // never inside start()
  REQUIRE(loop.run_until([&] { return client.connected(); }));
  CHECK(listener.ups == 1);
  CHECK(listener.downs == 0);

  auto pong = roundtrip(loop, client, {"PING"});
  REQUIRE(pong);
  CHECK(pong->type == RedisReply::Type::status);
  CHECK(pong->str == "PONG");

  std::string binary("a\0b\r\n\xff", 6);
  auto set = roundtrip(loop, client, {"SET", std::string("k\0ey", 4), binary});
  REQUIRE(set);
  CHECK(set->str == "OK");
  auto get = roundtrip(loop, client, {"GET", std::string("k\0ey", 4)});
  REQUIRE(get);
  CHECK(get->type == RedisReply::Type::string);
  CHECK(get->str == binary);
  // SELECT 2 happened: db 0 does not have the key, db 2 does.
  CHECK(redis.cli({"-n", "2", "DBSIZE"}) == "1");
  CHECK(redis.cli({"-n", "0", "DBSIZE"}) == "0");

  auto err = roundtrip(loop, client, {"INCR", std::string("k\0ey", 4)});
  REQUIRE(err);
  CHECK(err->is_error());
  auto arr = roundtrip(loop, client, {"MGET", std::string("k\0ey", 4), "missing"});
  REQUIRE(arr);
  REQUIRE(arr->type == RedisReply::Type::array);
  REQUIRE(arr->elements.size() == 2);
  CHECK(arr->elements[0].str == binary);
  CHECK(arr->elements[1].type == RedisReply::Type::nil);

  // No callback inside the sending call: a reply is never synchronous.
  bool called = false;
  REQUIRE(client.command({"PING"}, [&](const RedisReply*, std::string_view) { called = true; }));
  CHECK_FALSE(called);
  REQUIRE(loop.run_until([&] { return called; }));

  RedisScript script{"sum", "return tonumber(ARGV[1]) + tonumber(ARGV[2]) + #KEYS"};
  auto eval_once = [&]() {
    std::optional<RedisReply> got;
    bool done = false;
    REQUIRE(client.eval(script, {"a", "b"}, {"40", "0"}, [&](const RedisReply* r, std::string_view) {
      if (r) got = *r;
      done = true;
    }));
    REQUIRE(loop.run_until([&] { return done; }));
    REQUIRE(got);
    CHECK(got->type == RedisReply::Type::integer);
    CHECK(got->integer == 42);
  };
  eval_once();
  uint64_t before = client.commands_sent();
  eval_once();  // the script is cached: EVALSHA alone
  CHECK(client.commands_sent() == before + 1);
  CHECK(redis.cli({"SCRIPT", "FLUSH"}) == "OK");
  before = client.commands_sent();
  eval_once();  // NOSCRIPT, then EVAL
  CHECK(client.commands_sent() == before + 2);

  // The pending budget.
  RedisClient::Limits limits;
  limits.max_pending_commands = 2;
  CountingListener small_listener;
  RedisClient small(&loop.loop, address_of(redis), small_listener, "small", limits);
  small.start();
  REQUIRE(loop.run_until([&] { return small.connected(); }));
  int answered = 0;
  auto count = [&](const RedisReply* r, std::string_view) { answered += r ? 1 : 0; };
  CHECK(small.command({"PING"}, count));
  CHECK(small.command({"PING"}, count));
  CHECK_FALSE(small.command({"PING"}, count, &error));
  CHECK(error.rfind("ENOBUFS", 0) == 0);
  REQUIRE(loop.run_until([&] { return answered == 2; }));
  CHECK(small.command({"PING"}, count));
  REQUIRE(loop.run_until([&] { return answered == 3; }));
}

TEST_CASE("redis client: pub/sub delivers binary messages to the channel's handler until unsubscribed") {
  RedisServer redis;
  require_redis(redis);
  Loop loop;
  CountingListener listener;
  RedisClient client(&loop.loop, address_of(redis), listener, "test");
  std::vector<std::pair<std::string, std::string>> got;
  client.subscribe("before", [&](std::string_view c, std::string_view m) { got.emplace_back(c, m); });
  client.start();
  REQUIRE(loop.run_until([&] { return client.connected(); }));
  client.subscribe("after", [&](std::string_view c, std::string_view m) { got.emplace_back(c, m); });
  // Published through the client's own command connection once the
  // subscription counts (PUBLISH answers how many subscribers heard it).
  auto publish = [&](std::string channel, std::string message) {
    auto r = roundtrip(loop, client, {"PUBLISH", channel, message});
    REQUIRE(r);
    return r->integer;
  };
  REQUIRE(loop.run_until([&] { return redis.cli({"PUBSUB", "NUMSUB", "after"}).find("\n1") != std::string::npos; }));
  std::string binary("x\0y\r\n", 5);
  CHECK(publish("before", binary) == 1);
  CHECK(publish("after", "two") == 1);
  CHECK(publish("nobody", "three") == 0);
  REQUIRE(loop.run_until([&] { return got.size() == 2; }));
  CHECK(got[0] == std::make_pair(std::string("before"), binary));
  CHECK(got[1] == std::make_pair(std::string("after"), std::string("two")));
  client.unsubscribe("before");
  REQUIRE(loop.run_until([&] { return redis.cli({"PUBSUB", "NUMSUB", "before"}).find("\n0") != std::string::npos; }));
  CHECK(publish("before", "gone") == 0);
  CHECK(publish("after", "still") == 1);
  REQUIRE(loop.run_until([&] { return got.size() == 3; }));
  CHECK(got[2].second == "still");
}

TEST_CASE("redis client: Redis stopped fails commands fast and reports down once, and back on the same port restores it") {
  RedisServer redis;
  require_redis(redis);
  Loop loop;
  CountingListener listener;
  nshost::test::StderrCapture capture;
  RedisClient::Limits limits;
  limits.reconnect_min_ms = 20;
  limits.reconnect_max_ms = 200;
  RedisClient client(&loop.loop, address_of(redis), listener, "test", limits);
  std::vector<std::string> got;
  client.subscribe("inbox", [&](std::string_view, std::string_view m) { got.emplace_back(m); });
  client.start();
  REQUIRE(loop.run_until([&] { return client.connected(); }));

  // A command in flight when Redis goes: its callback fails.
  bool failed_in_flight = false;
  std::string in_flight_error;
  REQUIRE(client.command({"BLPOP", "never", "0"}, [&](const RedisReply* r, std::string_view e) {
    failed_in_flight = r == nullptr;
    in_flight_error = std::string(e);
  }));
  redis.stop();
  REQUIRE(loop.run_until([&] { return listener.downs == 1 && failed_in_flight; }));
  CHECK(in_flight_error.rfind("ECONNRESET", 0) == 0);
  CHECK_FALSE(client.connected());
  std::string error;
  CHECK_FALSE(client.command({"PING"}, [](const RedisReply*, std::string_view) { FAIL("called"); }, &error));
  CHECK(error.rfind("ENOTCONN", 0) == 0);
  // Several reconnect attempts fail while it is down: still one report.
  auto t0 = std::chrono::steady_clock::now();
  loop.run_until([] { return false; }, 600);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(500));
  CHECK(listener.downs == 1);
  CHECK(listener.ups == 1);

  REQUIRE_MESSAGE(redis.start(error), error);
  REQUIRE(loop.run_until([&] { return listener.ups == 2; }));
  CHECK(client.connected());
  auto r = roundtrip(loop, client, {"PUBLISH", "inbox", "hello again"});
  REQUIRE(r);
  CHECK(r->integer == 1);  // the subscription was restored before on_redis_up
  REQUIRE(loop.run_until([&] { return got.size() == 1; }));
  CHECK(got[0] == "hello again");
  client.close();
  std::string log = capture.text();
  CHECK(log.find("cluster: redis connected") != std::string::npos);
  auto lost = log.find("cluster: redis lost (");
  REQUIRE(lost != std::string::npos);
  CHECK(log.find("cluster: redis lost (", lost + 1) == std::string::npos);
  CHECK(log.find("cluster: redis back") != std::string::npos);
}

TEST_CASE("redis client: the first connect failing reports down once and retries until Redis comes") {
  RedisServer redis;
  require_redis(redis);
  redis.stop();
  Loop loop;
  CountingListener listener;
  RedisClient::Limits limits;
  limits.reconnect_min_ms = 20;
  limits.reconnect_max_ms = 100;
  RedisClient client(&loop.loop, address_of(redis), listener, "test", limits);
  client.start();
  REQUIRE(loop.run_until([&] { return listener.downs == 1; }));
  CHECK(listener.last_down.find("connect") != std::string::npos);
  std::string error;
  REQUIRE_MESSAGE(redis.start(error), error);
  REQUIRE(loop.run_until([&] { return listener.ups == 1; }));
  CHECK(listener.downs == 1);
}

TEST_CASE("redis client: close() with commands pending cancels each once, before it returns") {
  RedisServer redis;
  require_redis(redis);
  Loop loop;
  CountingListener listener;
  auto client = std::make_unique<RedisClient>(&loop.loop, address_of(redis), listener, "test");
  client->subscribe("c", [](std::string_view, std::string_view) {});
  client->start();
  REQUIRE(loop.run_until([&] { return client->connected(); }));
  int cancelled = 0, other = 0;
  for (int i = 0; i < 3; ++i)
    REQUIRE(client->command({"BLPOP", "never", "0"}, [&](const RedisReply* r, std::string_view e) {
      if (!r && e.rfind("ECANCELED", 0) == 0)
        ++cancelled;
      else
        ++other;
    }));
  // A callback that sends more while being cancelled is refused, not called.
  bool nested_sent = true;
  REQUIRE(client->command({"BLPOP", "never", "0"}, [&](const RedisReply*, std::string_view) {
    nested_sent = client->command({"PING"}, [&](const RedisReply*, std::string_view) { ++other; });
  }));
  client->close();
  CHECK(cancelled == 3);
  CHECK_FALSE(nested_sent);
  CHECK_FALSE(client->connected());
  client->close();  // twice is harmless
  client.reset();
  loop.run_until([] { return false; }, 50);
  CHECK(other == 0);
  CHECK(listener.downs == 0);
}

TEST_CASE("redis client: close() from inside a reply callback") {
  RedisServer redis;
  require_redis(redis);
  Loop loop;
  CountingListener listener;
  RedisClient client(&loop.loop, address_of(redis), listener, "test");
  client.start();
  REQUIRE(loop.run_until([&] { return client.connected(); }));
  int first = 0, second = 0;
  std::string second_error;
  REQUIRE(client.command({"PING"}, [&](const RedisReply* r, std::string_view) {
    first += r ? 1 : 100;
    client.close();
  }));
  REQUIRE(client.command({"BLPOP", "never", "0"}, [&](const RedisReply*, std::string_view e) {
    ++second;
    second_error = std::string(e);
  }));
  REQUIRE(loop.run_until([&] { return first > 0; }));
  CHECK(first == 1);
  CHECK(second == 1);
  CHECK(second_error.rfind("ECANCELED", 0) == 0);
}
