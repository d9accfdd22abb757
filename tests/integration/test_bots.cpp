// --bots=N: N real ENet clients, one Lua state each, in one nshost process.
#include <doctest/doctest.h>
#include <signal.h>

#include <string>

#include "runtime/config/options.hpp"
#include "tests/support/process.hpp"

using namespace nshost::test;

namespace {

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("--bots=64: every bot joins as its own peer and sees all 64 players and SIGTERM makes them all leave") {
  constexpr int kBots = 64;
  Server server = start_server(test_script("bots.lua"), {"--max-clients=64"});
  REQUIRE(server.port > 0);
  auto bots = start_client(test_script("bots.lua"), server.port, {"--bots=64"},
                           {"BOTS_EXPECTED=64"});
  for (int i = 0; i < kBots; ++i) {
    auto line = bots->wait_stdout("sees all 64", 20000);
    REQUIRE_MESSAGE(line.has_value(), "only " << i << " bots saw everyone\n" << bots->stderr_text());
  }
  std::string out = bots->stdout_text();
  CHECK(count_of(out, "bot joined joins=1") == kBots);  // one Lua state per bot
  CHECK(count_of(out, "joins=2") == 0);
  std::string err = bots->stderr_text();
  CHECK(err.find("nshost[client#1] info: joined") != std::string::npos);
  CHECK(err.find("nshost[client#64] info: joined") != std::string::npos);
  CHECK(err.find("client#65") == std::string::npos);
  // Distinct ENet peers: the server gave out all 64 slots.
  CHECK(server.process->wait_stderr("joined in slot 63"));

  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit(10000) == 0);
  CHECK(count_of(bots->stdout_text(), "bot disconnected: left") == kBots);
  for (int i = 0; i < kBots; ++i) REQUIRE(server.process->wait_stderr("left: left"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}

TEST_CASE("--bots: the fleet ends by itself when the server goes away") {
  Server server = start_server(test_script("bots.lua"));
  REQUIRE(server.port > 0);
  auto bots = start_client(test_script("bots.lua"), server.port, {"--bots=8"}, {"BOTS_EXPECTED=8"});
  for (int i = 0; i < 8; ++i) REQUIRE(bots->wait_stdout("sees all 8"));
  // sys.bot_index() is 1..N, one per bot, and print is tagged like log.*:
  // client#i prints its own index i.
  std::string out = bots->stdout_text();
  for (int i = 1; i <= 8; ++i) {
    std::string tag = "nshost[client#" + std::to_string(i) + "] ";
    CHECK_MESSAGE(out.find(tag + "bot index\t" + std::to_string(i) + "\n") != std::string::npos, out);
    CHECK(count_of(out, tag + "bot index") == 1);
  }
  CHECK(count_of(out, "bot index") == 8);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  CHECK(bots->wait_exit(10000) == 0);
  CHECK(count_of(bots->stdout_text(), "bot disconnected: server_left") == 8);
}

TEST_CASE("--bots and --bots-ramp: bad values are usage errors") {
  {
    ChildProcess p({nshost_binary(), "--role=client", "--bots=0", test_script("bots.lua")});
    CHECK(p.wait_exit() == 2);
    CHECK(p.stderr_text() == "nshost: --bots: expected 1..10000 (bot clients)\n");
  }
  {
    ChildProcess p({nshost_binary(), "--role=client", "--bots=2", "--bots-ramp=x", test_script("bots.lua")});
    CHECK(p.wait_exit() == 2);
  }
  {
    ChildProcess p({nshost_binary(), "--role=server", "--bots=2", test_script("bots.lua")});
    CHECK(p.wait_exit() == 2);
    CHECK(p.stderr_text() == "nshost: --bots and --bots-ramp are client options (pass --role=client)\n");
  }
  {
    ChildProcess p({nshost_binary(), "--role=client", "--bots=3", "/nonexistent/game.lua"});
    CHECK(p.wait_exit() == 1);
    CHECK(p.stderr_text() == "cannot open /nonexistent/game.lua: No such file or directory\n");
  }
}

TEST_CASE("parse_args: --bots and --bots-ramp set the fleet size and join rate") {
  using nshost::ParsedArgs;
  using nshost::parse_args;
  ParsedArgs p = parse_args({"nshost", "--role=client", "--bots=1000", "--bots-ramp=250", "g.lua"}, nullptr);
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.bots == 1000);
  CHECK(p.options.bots_ramp_per_s == 250);
  ParsedArgs single = parse_args({"nshost", "--role=client", "g.lua"}, nullptr);
  CHECK(single.options.bots == 0);
  CHECK(single.options.bots_ramp_per_s == 0);
  CHECK(parse_args({"nshost", "--role=client", "--bots=10001", "g.lua"}, nullptr).action == ParsedArgs::Action::error);
  CHECK(parse_args({"nshost", "--role=client", "--bots", "g.lua"}, nullptr).action == ParsedArgs::Action::error);
  ParsedArgs stats = parse_args({"nshost", "--role=server", "--stats", "g.lua"}, nullptr);
  CHECK(stats.options.stats);
}
