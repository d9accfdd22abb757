// The redis-server fixture the cluster tests stand on: it comes up on a free
// port, answers, and comes back on the same port after a stop.
#include <doctest/doctest.h>

#include "tests/support/redis_server.hpp"

using nshost::test::RedisServer;

TEST_CASE("redis fixture: starts, answers PING, restarts on the same port") {
  REQUIRE_MESSAGE(RedisServer::available(), "redis-server is not installed (apt-get install redis-server)");
  RedisServer redis;
  std::string error;
  REQUIRE_MESSAGE(redis.start(error), error);
  CHECK(redis.port() > 0);
  CHECK(redis.cli({"PING"}) == "PONG");
  CHECK(redis.cli({"SET", "k", "v"}) == "OK");
  int port = redis.port();
  redis.stop();
  CHECK_FALSE(redis.running());
  CHECK(redis.cli({"PING"}) != "PONG");
  REQUIRE_MESSAGE(redis.start(error), error);
  CHECK(redis.port() == port);
  CHECK(redis.cli({"PING"}) == "PONG");
  CHECK(redis.cli({"GET", "k"}) == "");  // --save "": nothing survived the restart
}
