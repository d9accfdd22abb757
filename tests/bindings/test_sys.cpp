#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("sys: runtime_role and is_headless on each role") {
  RoleFixture f;
  Options headless;
  headless.headless = true;
  ServerRole& server = f.start_server("", headless);
  CHECK(RoleFixture::eval(server.script()->state(), "return sys.runtime_role(), sys.is_headless()") ==
        "ok: server, true");
  ClientRole& client = f.start_client("");
  CHECK(RoleFixture::eval(client.script()->state(), "return sys.runtime_role(), sys.is_headless()") ==
        "ok: client, false");
}

TEST_CASE("sys.time: monotonic seconds as a float") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  CHECK(RoleFixture::eval(L, "local a = sys.time(); return math.type(a), a >= 0") == "ok: float, true");
  CHECK(RoleFixture::eval(L, "local a = sys.time(); local b = sys.time(); return b >= a") == "ok: true");
}

TEST_CASE("sys.quit: stops the role after the handler with the given exit code") {
  RoleFixture f;
  ServerRole& server = f.start_server("function server.tick(n) if n == 2 then sys.quit(3) end end");
  CHECK(f.step_until([&] { return server.finished(); }));
  CHECK(server.exit_code() == 3);
  CHECK(RoleFixture::eval(server.script()->state(), "sys.quit(256)").find("exit code must be 0..255") !=
        std::string::npos);
}

TEST_CASE("sys.bot_index: nil outside --bots, on both roles") {
  RoleFixture f;
  ServerRole& server = f.start_server("");
  ClientRole& client = f.start_client("");
  CHECK(RoleFixture::eval(server.script()->state(), "return sys.bot_index()") == "ok: nil");
  CHECK(RoleFixture::eval(client.script()->state(), "return sys.bot_index()") == "ok: nil");
}
