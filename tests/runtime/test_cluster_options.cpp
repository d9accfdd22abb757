// --cluster and --cluster-heartbeat-ms: server only, checked like every flag.
#include <doctest/doctest.h>

#include "runtime/config/options.hpp"
#include "tests/support/cli.hpp"

using namespace nshost;
using nshost::test::parse;

TEST_CASE("cluster options: --cluster=redis://HOST:PORT[/DB] and the heartbeat, server only") {
  auto p = parse({"--role=server", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.cluster_url.empty());
  CHECK(p.options.cluster_heartbeat_ms == 1000);
  p = parse({"--role=server", "--cluster=redis://127.0.0.1:6379/2", "--cluster-heartbeat-ms=100", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.cluster_url == "redis://127.0.0.1:6379/2");
  CHECK(p.options.cluster_heartbeat_ms == 100);

  struct Bad {
    std::vector<std::string> args;
    const char* says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"--role=server", "--cluster", "g.lua"}, "--cluster: expected redis://HOST:PORT[/DB]"},
           {{"--role=server", "--cluster=http://h:1", "g.lua"}, "--cluster: expected redis://"},
           {{"--role=server", "--cluster=redis://h:99999", "g.lua"}, "--cluster: bad port"},
           {{"--role=server", "--cluster=redis://h:1/16", "g.lua"}, "--cluster: bad database number"},
           {{"--role=server", "--cluster=redis://h:1", "--cluster-heartbeat-ms=10", "g.lua"},
            "--cluster-heartbeat-ms: expected 50..60000 (ms)"},
           {{"--role=server", "--cluster-heartbeat-ms=100", "g.lua"}, "--cluster-heartbeat-ms needs --cluster"},
           {{"--role=client", "--cluster=redis://h:1", "g.lua"}, "--cluster is a --role=server option"},
           {{"--role=host", "--cluster=redis://h:1", "g.lua"}, "--cluster is a --role=server option"},
       }) {
    CAPTURE(bad.args);
    auto r = parse(bad.args);
    CHECK(r.action == ParsedArgs::Action::error);
    CHECK(r.error.rfind(bad.says, 0) == 0);
  }
}
