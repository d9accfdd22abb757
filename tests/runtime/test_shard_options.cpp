// The command-line flags of shards: the URL-only client and the sandbox limits.
#include <doctest/doctest.h>

#include "runtime/config/options.hpp"
#include "tests/support/cli.hpp"

using namespace nshost;

using nshost::test::parse;

TEST_CASE("options: shard flags, their defaults and their ranges") {
  auto p = parse({"--role=server", "game.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK_FALSE(p.options.sandbox);
  CHECK(p.options.max_bundle_bytes == 4u << 20);
  CHECK(p.options.cache_dir.empty());
  CHECK(p.options.instruction_budget == 0);
  CHECK(p.options.handler_timeout_ms == 1000);
  CHECK(p.options.memory_limit_bytes == 256u << 20);
  p = parse({"--role=client", "--sandbox", "--max-bundle-size=1024", "--cache-dir=/tmp/c", "--instruction-budget=7",
             "--memory-limit=0", "--handler-timeout=250", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.sandbox);
  CHECK(p.options.max_bundle_bytes == 1024);
  CHECK(p.options.cache_dir == "/tmp/c");
  CHECK(p.options.instruction_budget == 7);
  CHECK(p.options.handler_timeout_ms == 250);
  CHECK(p.options.memory_limit_bytes == 0);
  for (const char* bad : {"--max-bundle-size=1023", "--max-bundle-size=67108865", "--cache-dir=", "--memory-limit=1000",
                          "--instruction-budget=x", "--sandbox=1", "--handler-timeout=3600001",
                          "--handler-timeout=-1", "--handler-timeout"})
    CHECK_MESSAGE(parse({"--role=client", bad, "g.lua"}).action == ParsedArgs::Action::error, bad);
}

TEST_CASE("options: a client may name a server URL instead of a script, a server may not") {
  auto p = parse({"--role=client", "nshost://10.0.0.1:9000"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.script.empty());
  CHECK(p.options.connect_url == "nshost://10.0.0.1:9000");
  p = parse({"--role=server", "nshost://10.0.0.1:9000"});
  CHECK(p.action == ParsedArgs::Action::error);
  CHECK(p.error == "a server runs a script, not a URL ('nshost://10.0.0.1:9000')");
  p = parse({"--role=client", "--connect=nshost://a:1", "nshost://b:2"});
  CHECK(p.action == ParsedArgs::Action::error);
  CHECK(p.error == "give the server either as --connect or as the URL argument, not both");
}
