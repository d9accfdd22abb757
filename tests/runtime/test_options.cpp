#include <doctest/doctest.h>

#include "runtime/config/options.hpp"
#include "tests/support/cli.hpp"
#include "runtime/core/url.hpp"

using namespace nshost;

using nshost::test::parse;

TEST_CASE("options: defaults and every flag") {
  auto p = parse({"--role=server", "game.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.port == 7777);
  CHECK(p.options.bind == "127.0.0.1");
  CHECK(p.options.max_clients == 64);
  CHECK(p.options.tick_rate_hz == 30);
  CHECK(p.options.connect_url == "nshost://127.0.0.1:7777");
  CHECK(p.options.coalesce_ms == 1);
  CHECK(parse({"--role=server", "--coalesce=0", "g.lua"}).options.coalesce_ms == 0);
  CHECK(parse({"--role=server", "--coalesce=100", "g.lua"}).options.coalesce_ms == 100);
  p = parse({"--role=client", "--port=9", "--bind=0.0.0.0", "--connect=nshost://h:1", "--max-clients=4095",
             "--tick-rate=1000", "--headless", "--log-level=debug", "--strict", "--max-message-size=4096", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.role == Role::client);
  CHECK(p.options.port == 9);
  CHECK(p.options.max_clients == 4095);
  CHECK(p.options.tick_rate_hz == 1000);
  CHECK(p.options.headless);
  CHECK(p.options.strict);
  CHECK(p.options.log_level == LogLevel::debug);
  CHECK(p.options.max_message_bytes == 4096);
  CHECK(p.options.script == "g.lua");
}

TEST_CASE("options: role from NSHOST_ROLE, the flag wins") {
  CHECK(parse({"g.lua"}, "client").options.role == Role::client);
  CHECK(parse({"--role=server", "g.lua"}, "client").options.role == Role::server);
  CHECK(parse({"g.lua"}, "banana").action == ParsedArgs::Action::error);
  CHECK(parse({"g.lua"}).error.find("no role given") != std::string::npos);
}

TEST_CASE("options: bad values give one readable line") {
  CHECK(parse({"--role=server", "--max-clients=4096", "g"}).error == "--max-clients: expected 1..4095");
  CHECK(parse({"--role=server", "--max-clients=0", "g"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--tick-rate=1001", "g"}).error == "--tick-rate: expected 1..1000 (Hz)");
  CHECK(parse({"--role=server", "--port=65536", "g"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--coalesce=101", "g"}).error == "--coalesce: expected 0..100 (ms)");
  CHECK(parse({"--role=server", "--port=12x", "g"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--log-level=loud", "g"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--frobnicate", "g"}).error == "unknown option '--frobnicate' (see --help)");
  CHECK(parse({"--role=server", "-x", "g"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server"}).error == "no script given (see --help)");
  CHECK(parse({"--role=server", "a.lua", "b.lua"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--help"}).action == ParsedArgs::Action::help);
  CHECK(parse({"--version"}).action == ParsedArgs::Action::version);
}

TEST_CASE("options: --watch is for the server and the listen server, a usage error on a client") {
  CHECK_FALSE(parse({"--role=server", "g.lua"}).options.watch);
  CHECK(parse({"--role=server", "--watch", "g.lua"}).options.watch);
  CHECK(parse({"--role=host", "--watch", "g.lua"}).options.watch);
  auto client = parse({"--role=client", "--watch", "g.lua"});
  CHECK(client.action == ParsedArgs::Action::error);
  CHECK(client.error == "--watch is a server option (pass --role=server or --role=host)");
}

TEST_CASE("shard URLs: nshost://host[:port]") {
  ShardUrl url;
  std::string error;
  REQUIRE(parse_shard_url("nshost://127.0.0.1:7000", url, error));
  CHECK(url.host == "127.0.0.1");
  CHECK(url.port == 7000);
  REQUIRE(parse_shard_url("nshost://arena.example/", url, error));
  CHECK(url.host == "arena.example");
  CHECK(url.port == 7777);
  CHECK_FALSE(parse_shard_url("http://x:1", url, error));
  CHECK_FALSE(parse_shard_url("nshost://:1", url, error));
  CHECK_FALSE(parse_shard_url("nshost://h:0", url, error));
  CHECK_FALSE(parse_shard_url("nshost://h:99999", url, error));
  CHECK_FALSE(parse_shard_url("nshost://h:1/path", url, error));
  CHECK(error.find("expected nshost://HOST:PORT") != std::string::npos);
}
