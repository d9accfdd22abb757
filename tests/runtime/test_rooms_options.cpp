#include <doctest/doctest.h>

#include <string>

#include "runtime/options.hpp"
#include "tests/support/cli.hpp"

using namespace nshost;
using nshost::test::parse;

TEST_CASE("options: --project-id and --room-memory-limit") {
  auto p = parse({"--role=server", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.project_id.empty());
  CHECK(p.options.room_memory_limit_bytes == 64u << 20);
  p = parse({"--role=server", "--project-id=space-game", "--room-memory-limit=0", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.project_id == "space-game");
  CHECK(p.options.room_memory_limit_bytes == 0);
  p = parse({"--role=client", "--project-id=space-game", "--room-memory-limit=1048576", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.project_id == "space-game");
  CHECK(p.options.room_memory_limit_bytes == 1048576);
  const std::string bads[] = {"--project-id=",          "--project-id",          "--project-id=" + std::string(129, 'p'),
                              "--room-memory-limit=1000", "--room-memory-limit=x", "--room-memory-limit"};
  for (const std::string& bad : bads) {
    auto r = parse({"--role=server", bad, "g.lua"});
    CHECK_MESSAGE(r.action == ParsedArgs::Action::error, bad);
    CHECK(r.error.find("--" + bad.substr(2, bad.find('=') == std::string::npos ? std::string::npos : bad.find('=') - 2)) == 0);
  }
  CHECK(usage_text().find("--room-memory-limit=BYTES") != std::string::npos);
  CHECK(usage_text().find("--project-id=ID") != std::string::npos);
}
