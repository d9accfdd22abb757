#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("client send: nil, message, ENOTCONN before joining, true after - data arrives on its channel") {
  RoleFixture f;
  ServerRole& server = f.start_server(R"(
    got = {}
    function server.receive(c, data, channel) got[#got + 1] = data .. "/" .. channel end
  )");
  ClientRole& client = f.start_client(R"(
    results = {}
    function client.tick(n)
      if #results < 2 then results[#results + 1] = table.pack(send("t" .. n, "unreliable")) end
    end
    function client.connect() joined_send = send("hello") end
  )");
  lua_State* C = client.script()->state();
  // The first tick runs before the handshake can complete.
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return #results") != "ok: 0"; }));
  CHECK(RoleFixture::eval(C, "return table.unpack(results[1], 1, results[1].n)") == "ok: nil, not connected, ENOTCONN");
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return joined_send") == "ok: true"; }));
  lua_State* S = server.script()->state();
  CHECK(f.step_until([&] { return RoleFixture::eval(S, "return got[#got]") == "ok: hello/reliable"; }));
}

TEST_CASE("client send: outside a handler and with bad arguments it raises") {
  RoleFixture f;
  f.start_server("");
  ClientRole& client = f.start_client("");
  lua_State* C = client.script()->state();
  CHECK(RoleFixture::eval(C, "send('x')").find("send: only callable from an event handler") != std::string::npos);
  CHECK(RoleFixture::eval(C, "return slot").find("ok: nil") == 0);  // server-only builtins are absent
  CHECK(RoleFixture::eval(C, "return broadcast, kick") == "ok: nil, nil");
}

TEST_CASE("client.disconnect: 'server_left' when the server stops") {
  RoleFixture f;
  ServerRole& server = f.start_server("");
  ClientRole& client = f.start_client("function client.disconnect(r) reason = r end");
  REQUIRE(f.step_until([&] { return client.joined(); }));
  server.begin_shutdown();
  lua_State* C = client.script()->state();
  CHECK(f.step_until([&] { return RoleFixture::eval(C, "return reason") == "ok: server_left"; }));
  CHECK(f.step_until([&] { return server.finished() && client.finished(); }));
  CHECK(server.exit_code() == 0);
}
