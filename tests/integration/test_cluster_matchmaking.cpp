// Matchmaking across a cluster (docs/cluster.md "Matchmaking across
// servers"): real nshost servers with --cluster on a real redis-server, and
// --bots processes enqueuing on every server at once.
#include <doctest/doctest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"

using namespace nshost::test;

namespace {

std::string script() { return test_script("cluster/matchmaking.lua"); }

// Polls `done` every 20 ms until it holds or `timeout_ms` passes (Redis has
// no event to wait for here).
template <class F>
bool poll_until(F done, int64_t timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (!done() && now_ms() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return done();
}

struct Cluster {
  RedisServer redis;
  std::vector<Server> servers;
  explicit Cluster(int n) {
    REQUIRE_MESSAGE(RedisServer::available(), "redis-server is not installed (apt-get install redis-server)");
    std::string error;
    REQUIRE_MESSAGE(redis.start(error), error);
    for (int i = 0; i < n; ++i) {
      servers.push_back(start_server(script(), {"--cluster=" + redis.url(), "--cluster-heartbeat-ms=200"}));
      REQUIRE_MESSAGE(servers.back().port > 0, servers.back().process->stderr_text());
    }
    // Every server is in the directory before anyone enqueues (a room goes
    // to the least-loaded server it knows).
    REQUIRE(poll_until([&] { return redis.cli({"ZCARD", "nshost:servers"}) == std::to_string(n); }, 10000));
  }
  ~Cluster() {
    for (Server& s : servers) s.process->send_signal(SIGTERM);
    for (Server& s : servers) s.process->wait_exit(5000);
  }
};

}  // namespace

TEST_CASE("cluster matchmaking: 4 servers, bots on all of them at once, every bot matched exactly once") {
  constexpr int kServers = 4;
  constexpr int kBotsPerServer = 6;  // 24 players, 6 matches of 4
  Cluster cluster(kServers);
  std::vector<std::unique_ptr<ChildProcess>> bots;
  for (const Server& s : cluster.servers)
    bots.push_back(start_client(script(), s.port, {"--bots=" + std::to_string(kBotsPerServer)}));
  // Each bot prints one "matched" line (on the room's server, after a move).
  for (auto& b : bots)
    for (int i = 0; i < kBotsPerServer; ++i)
      REQUIRE_MESSAGE(b->wait_stdout("matched room=", 20000), "a bot was never matched\n"
                                                                  << b->stdout_text() << b->stderr_text());
  // No late second match.
  bots.front()->wait_stdout("never printed", 500);

  const std::regex matched(R"(nshost\[client#(\d+)\] matched room=(\d+) size=(\d+))");
  std::map<std::string, int> told;                 // "<process>/<bot>" -> match.found count
  std::map<std::string, std::set<size_t>> origins;  // room -> bot processes (servers dialled)
  for (size_t p = 0; p < bots.size(); ++p) {
    std::string out = bots[p]->stdout_text();
    for (std::sregex_iterator it(out.begin(), out.end(), matched), end; it != end; ++it) {
      ++told[std::to_string(p) + "/" + (*it)[1].str()];
      origins[(*it)[2].str()].insert(p);
      CHECK((*it)[3].str() == "4");
    }
    CHECK(out.find("match failed") == std::string::npos);
    CHECK(out.find("enqueue refused") == std::string::npos);
  }
  CHECK(told.size() == kServers * kBotsPerServer);
  for (const auto& [bot, n] : told) CHECK_MESSAGE(n == 1, bot << " told " << n << " times");
  CHECK(origins.size() == kServers * kBotsPerServer / 4);
  // A match across servers: a room whose players dialled different servers.
  size_t across = 0;
  for (const auto& [room, from] : origins) across += from.size() > 1;
  CHECK(across > 0);
  // No room over its size, on any server: every seat line read (24 of them,
  // on the rooms' servers).
  int seats = 0;
  for (int64_t deadline = now_ms() + 10000; seats < kServers * kBotsPerServer && now_ms() < deadline;)
    for (const Server& s : cluster.servers)
      if (s.process->wait_stdout("seat room=", 50)) ++seats;
  CHECK(seats == kServers * kBotsPerServer);
  const std::regex seat(R"(seat room=(\d+) clients=(\d+))");
  std::map<std::string, int> room_max;
  for (const Server& s : cluster.servers) {
    std::string out = s.process->stdout_text();
    for (std::sregex_iterator it(out.begin(), out.end(), seat), end; it != end; ++it)
      room_max[(*it)[1].str()] = std::max(room_max[(*it)[1].str()], std::stoi((*it)[2].str()));
  }
  CHECK(room_max.size() == origins.size());
  for (const auto& [room, n] : room_max) CHECK_MESSAGE(n <= 4, "room " << room << " held " << n);
  CHECK(cluster.redis.cli({"ZCARD", "nshost:mm:queue:quad"}) == "0");
  MESSAGE(origins.size() << " matches, " << across << " across servers");
}

TEST_CASE("cluster matchmaking: a dequeue and a disconnect take the ticket out of Redis") {
  Cluster cluster(2);
  auto queue_size = [&] { return cluster.redis.cli({"ZCARD", "nshost:mm:queue:solo"}); };
  // A player on server 0 that dequeues as soon as it is queued.
  auto leaver = start_client(script(), cluster.servers[0].port, {}, {"MM_TYPE=solo", "MM_DEQUEUE=1"});
  REQUIRE(leaver->wait_stdout("queued", 10000));
  REQUIRE(leaver->wait_stdout("dequeued true", 10000));
  CHECK(queue_size() == "0");
  // A player on server 1 that waits alone, then disconnects.
  auto waiter = start_client(script(), cluster.servers[1].port, {}, {"MM_TYPE=solo"});
  REQUIRE(waiter->wait_stdout("queued", 10000));
  CHECK(queue_size() == "1");
  waiter->send_signal(SIGTERM);
  CHECK(waiter->wait_exit(10000).has_value());
  CHECK(poll_until([&] { return queue_size() == "0"; }, 5000));
  CHECK(cluster.redis.cli({"KEYS", "nshost:mm:ticket:*"}) == "");
  // A later player on server 0 is not matched with either of them.
  auto late = start_client(script(), cluster.servers[0].port, {}, {"MM_TYPE=solo"});
  REQUIRE(late->wait_stdout("queued", 10000));
  CHECK_FALSE(late->wait_stdout("matched", 1000));
  leaver->send_signal(SIGTERM);
  late->send_signal(SIGTERM);
}
