#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

namespace {

const char* kServer = R"(
  events = {}
  function server.connect(c, handoff)
    conn = c
    events[#events + 1] = "connect " .. slot(c)
  end
  function server.disconnect(c, reason)
    events[#events + 1] = ("disconnect %d %s connected=%s"):format(slot(c), reason, tostring(connected(c)))
  end
  function server.receive(c, data, channel)
    events[#events + 1] = ("receive %s %s same=%s"):format(data, channel, tostring(c == conn))
  end
)";

const char* kClient = R"(
  got = {}
  function client.connect() send("hi") send("fast", "unreliable") end
  function client.receive(data, channel) got[#got + 1] = data .. "/" .. channel end
  function client.disconnect(reason) gone = reason end
)";

std::string eval(ServerRole& s, const std::string& code) { return RoleFixture::eval(s.script()->state(), code); }


}  // namespace

TEST_CASE("server builtins: connect, receive on both channels, send and broadcast reach the client") {
  RoleFixture f;
  ServerRole& server = f.start_server(kServer);
  ClientRole& client = f.start_client(kClient);
  lua_State* C = client.script()->state();
  REQUIRE(f.step_until([&] { return eval(server, "return #events") == "ok: 3"; }));
  CHECK(eval(server, "return events[1], events[2], events[3]") ==
        "ok: connect 0, receive hi reliable same=true, receive fast unreliable same=true");
  CHECK(eval(server, "return slot(conn), connected(conn), tostring(conn)") == "ok: 0, true, client(slot=0)");
  CHECK(eval(server, "local t = {[conn] = 'x'} return t[conn], conn == conn") == "ok: x, true");
  CHECK(RoleFixture::in_handler(server, "return send(conn, 'one'), send(conn, 'two', 'unreliable'), broadcast('all')") ==
        "ok: true, true, true, 1");
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return #got") == "ok: 3"; }));
  CHECK(RoleFixture::eval(C, "return got[1], got[2], got[3]") == "ok: one/reliable, two/unreliable, all/reliable");
}

TEST_CASE("broadcast with a target list: one packet to each live target, stale and non-handles raise") {
  RoleFixture f;
  ServerRole& server = f.start_server(kServer);
  ClientRole& client = f.start_client(kClient);
  lua_State* C = client.script()->state();
  REQUIRE(f.step_until([&] { return eval(server, "return #events") == "ok: 3"; }));
  CHECK(RoleFixture::in_handler(server, "return broadcast('a', 'reliable', {conn}), broadcast('b', 'unreliable', {}),"
                                        " broadcast('c', 'reliable', {conn, conn})") == "ok: true, 1, 0, 2");
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return #got") == "ok: 3"; }));
  CHECK(RoleFixture::eval(C, "return got[1], got[2], got[3]") == "ok: a/reliable, c/reliable, c/reliable");
  CHECK(RoleFixture::in_handler(server, "broadcast('x', 'reliable', {conn, 42})")
            .find("broadcast: targets[2] is not a client handle") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "broadcast('x', 'reliable', 'conn')").find("table expected") != std::string::npos);
  // A kicked client is departing: skipped, not counted.
  CHECK(RoleFixture::in_handler(server, "kick(conn) return broadcast('x', 'reliable', {conn})") == "ok: true, 0");
  REQUIRE(f.step_until([&] { return eval(server, "return connected(conn) or #events < 4") == "ok: false"; }));
  REQUIRE(f.step_until([&] { return eval(server, "return tostring(conn)") == "ok: client(slot=0, stale)"; }));
  CHECK(RoleFixture::in_handler(server, "broadcast('x', 'reliable', {conn})")
            .find("broadcast: targets[1] is a stale client handle") != std::string::npos);
}

TEST_CASE("server builtins: misuse raises a clear error") {
  RoleFixture f;
  Options o;
  o.max_message_bytes = 1024;
  ServerRole& server = f.start_server(kServer, o);
  f.start_client(kClient);
  REQUIRE(f.step_until([&] { return eval(server, "return conn ~= nil") == "ok: true"; }));
  CHECK(eval(server, "send(conn, 'x')").find("send: only callable from an event handler") != std::string::npos);
  CHECK(eval(server, "broadcast('x')").find("broadcast: only callable from an event handler") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "send(conn, 'x', 'sideways')").find("invalid option 'sideways'") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "send(conn, string.rep('x', 1025))")
            .find("message of 1025 bytes is over the limit of 1024 bytes") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "slot({})").find("nshost.client expected") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "send(42, 'x')").find("nshost.client expected") != std::string::npos);
  CHECK(eval(server, "return connected(42), connected(nil), connected({})") == "ok: false, false, false");
}

TEST_CASE("kick: the client hears the reason, the server sees 'kicked', then the handle is stale") {
  RoleFixture f;
  ServerRole& server = f.start_server(kServer);
  ClientRole& client = f.start_client(kClient);
  REQUIRE(f.step_until([&] { return eval(server, "return conn ~= nil") == "ok: true"; }));
  CHECK(RoleFixture::in_handler(server, "return kick(conn, 'cheating'), kick(conn)") ==
        "ok: true, true, nil, the client is already departing, EALREADY");
  CHECK(eval(server, "return connected(conn), slot(conn)") == "ok: false, 0");  // departing
  CHECK(RoleFixture::in_handler(server, "return send(conn, 'x')") ==
        "ok: true, nil, the client is not connected (departing, or away with unreliable data), ENOTCONN");
  lua_State* C = client.script()->state();
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return gone") == "ok: kicked: cheating"; }));
  REQUIRE(f.step_until([&] { return eval(server, "return events[#events]") == "ok: disconnect 0 kicked connected=false"; }));
  CHECK(eval(server, "return pcall(slot, conn)") == "ok: false, stale client handle");
  CHECK(RoleFixture::in_handler(server, "return send(conn, 'x')").find("ok: false, ") == 0);
  CHECK(RoleFixture::in_handler(server, "return send(conn, 'x')").find(":1: stale client handle") != std::string::npos);
  CHECK(eval(server, "return connected(conn), tostring(conn)") == "ok: false, client(slot=0, stale)");
}

TEST_CASE("server.disconnect: 'left' when the client leaves - slot() still answers inside the handler") {
  RoleFixture f;
  ServerRole& server = f.start_server(kServer);
  ClientRole& client = f.start_client(kClient);
  REQUIRE(f.step_until([&] { return client.joined(); }));
  client.begin_shutdown();
  REQUIRE(f.step_until([&] { return eval(server, "return events[#events]") == "ok: disconnect 0 left connected=false"; }));
  CHECK(f.step_until([&] { return client.finished(); }));
}
