// bindings/room_view.cpp: a room's view id set (room.view(c)) lives outside
// the room's Lua state, so it has budgets of its own: 65,536 keys per view,
// 1,024 bytes per key. A real server, a client joined to a room it created,
// and the room's own state, stepped by hand.
#include <doctest/doctest.h>

#include <string>

#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using namespace nshost::test;

TEST_CASE("room view: at most 65536 keys (ENOBUFS past it) of at most 1024 bytes (a longer key raises)") {
  RoleFixture f;
  f.write_file("viewed.lua", "");
  ServerRole& server = f.start_server("rooms.define('viewed', 'viewed.lua')\n");
  ClientRole& client = f.start_client("");
  REQUIRE(f.step_until([&] { return client.joined(); }));
  REQUIRE(RoleFixture::eval(client.script()->state(),
                            "return rooms.create('viewed', nil, function(r, m) joined = r or m end)") == "ok: true");
  REQUIRE(f.step_until([&] {
    return !server.rooms()->rooms().empty() &&
           RoleFixture::eval(client.script()->state(), "return joined ~= nil") == "ok: true";
  }));
  lua_State* room = server.rooms()->rooms().begin()->second->script()->state();
  CHECK(RoleFixture::eval(room, "v = room.view(room.clients()[1]) for i = 1, 65536 do assert(v:add(i)) end "
                                "return v:size()") == "ok: 65536");
  CHECK(RoleFixture::eval(room, "return v:add(65537)") ==
        "ok: nil, the view holds 65536 keys, the most it may, ENOBUFS");
  CHECK(RoleFixture::eval(room, "return v:add(1), v:size()") == "ok: true, 65536");  // a key it holds
  CHECK(RoleFixture::eval(room, "v:remove(1) return v:add('a'), v:size()") == "ok: true, 65536");
  std::string long_key = RoleFixture::eval(room, "return v:has(1), pcall(v.add, v, string.rep('k', 1025))");
  CHECK(long_key.find("an entity key is at most 1024 bytes") != std::string::npos);
  CHECK(RoleFixture::eval(room, "v:clear() return v:add(string.rep('k', 1024)), v:size()") == "ok: true, 1");
}
