#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("client handle: one userdata per connection, a hidden metatable, tostring with the slot") {
  RoleFixture f;
  ServerRole& server = f.start_server(R"(
    handles = {}
    function server.connect(c) handles[#handles + 1] = c end
    function server.receive(c) handles[#handles + 1] = c end
  )");
  f.start_client("function client.connect() send('x') end");
  lua_State* S = server.script()->state();
  REQUIRE(f.step_until([&] { return RoleFixture::eval(S, "return #handles") == "ok: 2"; }));
  CHECK(RoleFixture::eval(S, "return rawequal(handles[1], handles[2])") == "ok: true");
  CHECK(RoleFixture::eval(S, "return type(handles[1]), getmetatable(handles[1])") == "ok: userdata, client");
  CHECK(RoleFixture::eval(S, "return tostring(handles[1])") == "ok: client(slot=0)");
  CHECK(RoleFixture::eval(S, "return pcall(setmetatable, handles[1], {})").find("ok: false") == 0);
}
