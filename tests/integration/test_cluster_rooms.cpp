// The cluster with real processes (docs/cluster.md): nshost servers started
// with --cluster on a redis-server of the test's own, clients running
// tests/scripts/cluster/game.lua. Waits are on log lines and answers, each
// with a deadline.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <regex>

#include "tests/support/process.hpp"
#include "tests/support/raw_peer.hpp"
#include "tests/support/redis_server.hpp"

using namespace nshost::test;

namespace {

constexpr int kHeartbeatMs = 200;

struct Cluster {
  RedisServer redis;
  std::vector<Server> servers;
  std::vector<std::string> ids;

  void start_redis() {
    REQUIRE_MESSAGE(RedisServer::available(), "redis-server is not installed (apt-get install redis-server)");
    std::string error;
    REQUIRE_MESSAGE(redis.start(error), error);
  }
  // A server of the cluster; returns its index. Waits until it has its number.
  size_t add_server() {
    servers.push_back(start_server(test_script("cluster/game.lua"),
                                   {"--headless", "--cluster=" + redis.url(),
                                    "--cluster-heartbeat-ms=" + std::to_string(kHeartbeatMs)}));
    Server& s = servers.back();
    REQUIRE(s.port > 0);
    auto line = s.process->wait_stderr("cluster: server ", 10000);
    REQUIRE(line);
    std::smatch m;
    REQUIRE(std::regex_search(*line, m, std::regex("cluster: server ([0-9a-f]{16}) is number ([0-9]+)")));
    ids.push_back(m[1].str());
    return servers.size() - 1;
  }
  std::unique_ptr<ChildProcess> client(size_t server, const std::string& name, const std::string& action,
                                       uint64_t room = 0, bool gone = false) {
    std::vector<std::string> env{"NAME=" + name, "ACTION=" + action, "ROOM=" + std::to_string(room)};
    if (gone) env.push_back("GONE=1");
    return start_client(test_script("cluster/game.lua"), servers[server].port, {}, env);
  }
};

// "NAME joined room=N ..." -> N.
uint64_t room_of(const std::string& line) {
  std::smatch m;
  if (!std::regex_search(line, m, std::regex("joined room=([0-9]+)"))) return 0;
  return std::stoull(m[1].str());
}

}  // namespace

TEST_CASE("cluster: two servers share a room list, and a join on A lands in B's room with a seat token") {
  Cluster c;
  c.start_redis();
  // B alone first, so its new room is its own (later, new rooms go to the
  // least-loaded server).
  size_t b = c.add_server();
  auto owner = c.client(b, "owner", "create");
  auto joined = owner->wait_stdout("owner joined room=", 10000);
  REQUIRE(joined);
  uint64_t room = room_of(*joined);
  CHECK(room >= (uint64_t{1} << 32));  // a cluster id: number * 2^32 + n
  size_t a = c.add_server();

  // A lists B's room (the directory, read with A's heartbeat).
  auto lister = c.client(a, "lister", "list_until", room);
  REQUIRE(lister->wait_stdout("lister listed", 5000));

  // A has no arena room: its join_or_create takes B's free seat.
  auto mover = c.client(a, "mover", "join_or_create");
  auto moved = mover->wait_stdout("mover joined room=", 10000);
  REQUIRE(moved);
  CHECK(room_of(*moved) == room);
  // The script heard one client.connect: the move kept its state and its request.
  CHECK(moved->find("connects=1") != std::string::npos);
  CHECK(c.servers[a].process->wait_stderr("cluster: session", 2000));
  CHECK(c.servers[b].process->wait_stderr("redeemed its seat in room " + std::to_string(room), 2000));
  // It talks with the player already on B, both ways.
  CHECK(owner->wait_stdout("owner message room=" + std::to_string(room) + " type=chat from=mover", 5000));
  CHECK(mover->wait_stdout("mover message room=" + std::to_string(room) + " type=chat from=mover", 5000));
  CHECK(mover->wait_stdout("mover tick", 5000));

  // rooms.join(id) of B's room from A lands there too.
  auto joiner = c.client(a, "joiner", "join", room);
  auto j = joiner->wait_stdout("joiner joined room=", 10000);
  REQUIRE(j);
  CHECK(room_of(*j) == room);
  CHECK(owner->wait_stdout("owner message room=" + std::to_string(room) + " type=chat from=joiner", 5000));
}

TEST_CASE("cluster: a hello with a forged or used seat token is refused") {
  Cluster c;
  c.start_redis();
  size_t b = c.add_server();
  // A seat reserved as another server would: a reserve request on B's inbox,
  // answered on a channel this test listens to.
  ChildProcess listener({"/usr/bin/redis-cli", "-p", std::to_string(c.redis.port()), "SUBSCRIBE",
                         "nshost:inbox:feedfacefeedface"});
  REQUIRE(listener.wait_stdout("feedfacefeedface", 5000));
  std::string request =
      R"({"k":"req","kind":"reserve","rid":1,"from":"feedfacefeedface","body":)"
      R"({"kind":"create","room":0,"room_type":"arena","options":"","rpc":0}})";
  CHECK(c.redis.cli({"PUBLISH", "nshost:inbox:" + c.ids[b], request}) == "1");
  auto answer = listener.wait_stdout("\"token\"", 5000);
  REQUIRE(answer);
  std::smatch m;
  REQUIRE(std::regex_search(*answer, m, std::regex("\"token\":\"([0-9a-f]{32})\"")));
  std::string token = m[1].str();

  auto hello_with = [](std::string seat_token) {
    nshost::wire::Hello hello;
    hello.codecs = "msgpack";
    hello.seat_token = std::move(seat_token);
    return hello;
  };
  std::string forged = token;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  {
    RawPeer peer(c.servers[b].port);
    auto r = peer.join(hello_with(forged));
    REQUIRE(r);
    CHECK_FALSE(r->welcomed);
    CHECK(r->reason == "seat token unknown");
  }
  {
    RawPeer peer(c.servers[b].port);
    auto r = peer.join(hello_with(token));
    REQUIRE(r);
    CHECK(r->welcomed);
  }
  {
    RawPeer peer(c.servers[b].port);
    auto r = peer.join(hello_with(token));
    REQUIRE(r);
    CHECK_FALSE(r->welcomed);
    CHECK(r->reason == "seat token used");
  }
  CHECK(c.servers[b].process->wait_stderr("seat token unknown", 2000));
  CHECK(c.servers[b].process->wait_stderr("seat token used", 2000));
}

TEST_CASE("cluster: a server killed with SIGKILL leaves the directory within 3 heartbeats") {
  Cluster c;
  c.start_redis();
  size_t b = c.add_server();
  auto owner = c.client(b, "owner", "create");
  auto joined = owner->wait_stdout("owner joined room=", 10000);
  REQUIRE(joined);
  uint64_t room = room_of(*joined);
  size_t a = c.add_server();
  auto lister = c.client(a, "lister", "list_until", room);
  REQUIRE(lister->wait_stdout("lister listed", 5000));
  CHECK(c.redis.cli({"EXISTS", "nshost:rooms:" + c.ids[b]}) == "1");

  auto killed_at = std::chrono::steady_clock::now();
  c.servers[b].process->send_signal(SIGKILL);
  REQUIRE(c.servers[b].process->wait_exit(5000));
  auto gone = c.client(a, "gone", "list_until", room, true);
  REQUIRE(gone->wait_stdout("gone unlisted", 5000));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at).count();
  MESSAGE("B's room left A's list " << ms << " ms after the SIGKILL (heartbeat " << kHeartbeatMs << " ms)");
  // 3 heartbeats for the keys to expire, one of A's for its view, plus the
  // client's start: bounded well under what a stale directory would show.
  CHECK(ms < 3 * kHeartbeatMs + 2000);
  for (int i = 0; i < 50 && c.redis.cli({"EXISTS", "nshost:rooms:" + c.ids[b]}) != "0"; ++i)
    lister->wait_stdout("never printed", 20);  // a bounded pause of 20 ms
  CHECK(c.redis.cli({"EXISTS", "nshost:rooms:" + c.ids[b]}) == "0");
  CHECK(c.redis.cli({"EXISTS", "nshost:server:" + c.ids[b]}) == "0");
}

TEST_CASE("cluster: Redis stopped mid-game leaves every room ticking, and back it restores the cluster") {
  Cluster c;
  c.start_redis();
  size_t a = c.add_server();
  auto on_a = c.client(a, "ona", "create");
  REQUIRE(on_a->wait_stdout("ona joined room=", 10000));
  size_t b = c.add_server();
  auto on_b = c.client(b, "onb", "create");
  auto jb = on_b->wait_stdout("onb joined room=", 10000);
  REQUIRE(jb);
  uint64_t room_b = room_of(*jb);

  c.redis.stop();
  REQUIRE(c.servers[a].process->wait_stderr("cluster: redis lost", 5000));
  REQUIRE(c.servers[b].process->wait_stderr("cluster: redis lost", 5000));
  // Rooms keep ticking on both servers: fresh tick messages after the loss.
  for (int i = 0; i < 3; ++i) {
    CHECK(on_a->wait_stdout("ona tick", 3000));
    CHECK(on_b->wait_stdout("onb tick", 3000));
  }
  // A cross-server join cannot be made now.
  auto refused = c.client(a, "refused", "join", room_b);
  CHECK(refused->wait_stdout("refused join failed cluster_unavailable EREFUSED", 10000));
  // One line per state change.
  CHECK(c.servers[a].process->stderr_text().find("cluster: redis lost", 0) ==
        c.servers[a].process->stderr_text().rfind("cluster: redis lost"));

  std::string error;
  REQUIRE_MESSAGE(c.redis.start(error), error);
  REQUIRE(c.servers[a].process->wait_stderr("cluster: redis back", 10000));
  REQUIRE(c.servers[b].process->wait_stderr("cluster: redis back", 10000));
  // Re-registered: a new cross-server join works.
  auto again = c.client(a, "again", "join", room_b);
  auto j = again->wait_stdout("again joined room=", 10000);
  REQUIRE(j);
  CHECK(room_of(*j) == room_b);
  CHECK(on_b->wait_stdout("onb message room=" + std::to_string(room_b) + " type=chat from=again", 5000));
  CHECK(on_a->wait_stdout("ona tick", 3000));
}
