#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("tick: server.tick gets 0, 1, 2, ... at the tick rate") {
  RoleFixture f;
  Options o;
  o.tick_rate_hz = 200;
  ServerRole& server = f.start_server("seen = {} function server.tick(n) seen[#seen + 1] = n end", o);
  lua_State* L = server.script()->state();
  CHECK(f.step_until([&] { return RoleFixture::eval(L, "return #seen >= 5") == "ok: true"; }));
  CHECK(RoleFixture::eval(L, "return seen[1], seen[2], seen[3], seen[4], seen[5]") == "ok: 0, 1, 2, 3, 4");
  CHECK(RoleFixture::eval(L, "return math.type(seen[1])") == "ok: integer");
}

TEST_CASE("tick_rate / set_tick_rate: the new rate applies at once - bad rates raise") {
  RoleFixture f;
  ServerRole& server = f.start_server("");
  lua_State* L = server.script()->state();
  CHECK(RoleFixture::eval(L, "return tick_rate()") == "ok: 30");
  CHECK(RoleFixture::eval(L, "set_tick_rate(60) return tick_rate()") == "ok: 60");
  CHECK(server.tick_rate_hz() == 60);
  for (const char* bad : {"0", "1001", "1.5", "'fast'", "nil"}) {
    std::string result = RoleFixture::eval(L, std::string("set_tick_rate(") + bad + ")");
    CHECK_MESSAGE(result.find("set_tick_rate: rate must be an integer in 1..1000 Hz") != std::string::npos, result);
  }
  CHECK(RoleFixture::eval(L, "return tick_rate()") == "ok: 60");
}

TEST_CASE("client.tick gets a tick number and dt in seconds") {
  RoleFixture f;
  f.start_server("");
  Options o;
  o.tick_rate_hz = 100;
  ClientRole& client = f.start_client("dts = {} function client.tick(n, dt) dts[#dts + 1] = dt end", o);
  lua_State* L = client.script()->state();
  CHECK(f.step_until([&] { return RoleFixture::eval(L, "return #dts >= 4") == "ok: true"; }));
  CHECK(RoleFixture::eval(L, "return dts[1]") == "ok: 0.01");
  CHECK(RoleFixture::eval(L, "for i = 2, 4 do if dts[i] <= 0 or dts[i] > 1 then return false end end return true") ==
        "ok: true");
}

TEST_CASE("max_clients: the server's capacity on both roles - 0 on a client before it joins") {
  RoleFixture f;
  Options o;
  o.max_clients = 12;
  ServerRole& server = f.start_server("", o);
  CHECK(RoleFixture::eval(server.script()->state(), "return max_clients()") == "ok: 12");
  ClientRole& client = f.start_client("");
  CHECK(RoleFixture::eval(client.script()->state(), "return max_clients()") == "ok: 0");
  CHECK(f.step_until([&] { return client.joined(); }));
  CHECK(RoleFixture::eval(client.script()->state(), "return max_clients()") == "ok: 12");
}

TEST_CASE("server_tick_rate: the joined server's rate on a client - nil before joining, absent on the server") {
  RoleFixture f;
  Options so;
  so.tick_rate_hz = 45;
  ServerRole& server = f.start_server("", so);
  CHECK(RoleFixture::eval(server.script()->state(), "return server_tick_rate") == "ok: nil");
  Options co;
  co.tick_rate_hz = 20;
  ClientRole& client = f.start_client("", co);
  lua_State* C = client.script()->state();
  CHECK(RoleFixture::eval(C, "return server_tick_rate(), tick_rate()") == "ok: nil, 20");
  REQUIRE(f.step_until([&] { return client.joined(); }));
  CHECK(RoleFixture::eval(C, "return server_tick_rate(), tick_rate()") == "ok: 45, 20");
  // The rate travels in the welcome only: a later change is not seen.
  CHECK(RoleFixture::eval(server.script()->state(), "set_tick_rate(60)") == "ok");
  CHECK(RoleFixture::eval(C, "return server_tick_rate()") == "ok: 45");
}

TEST_CASE("server_tick: the latest server tick the client heard of - in the welcome, then about once a second") {
  RoleFixture f;
  Options so;
  so.tick_rate_hz = 50;
  ServerRole& server = f.start_server("last = 0\nfunction server.tick(n) last = n end\n", so);
  lua_State* S = server.script()->state();
  CHECK(RoleFixture::eval(S, "return server_tick") == "ok: nil");
  // Let the server tick a while before the client joins: the welcome carries its tick number.
  REQUIRE(f.step_until([&] { return RoleFixture::eval(S, "return last >= 20") == "ok: true"; }, 10000));
  ClientRole& client = f.start_client("");
  lua_State* C = client.script()->state();
  CHECK(RoleFixture::eval(C, "return server_tick()") == "ok: nil");
  REQUIRE(f.step_until([&] { return client.joined(); }));
  std::string at_join = RoleFixture::eval(C, "return math.type(server_tick()), server_tick() >= 20");
  CHECK(at_join == "ok: integer, true");
  CHECK(RoleFixture::eval(C, "first = server_tick() return first") != "ok: nil");
  // A clock message follows within about a second (50 ticks at 50 Hz).
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return server_tick() > first") == "ok: true"; }, 5000));
  std::string server_last = RoleFixture::eval(S, "return last");
  std::string heard = RoleFixture::eval(C, "return server_tick()");
  CHECK(std::stoll(heard.substr(4)) <= std::stoll(server_last.substr(4)));
}
