// hop/redirect argument checking, and the sandbox and its limits on a real
// ScriptHost (the process-level behaviour is in tests/integration/test_shards.cpp).
#include <doctest/doctest.h>

#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("redirect: raises on a bad URL, an oversized handoff, a stale handle and outside a handler") {
  RoleFixture f;
  ServerRole& server = f.start_server("function server.connect(c) conn = c end");
  ClientRole& client = f.start_client("");
  REQUIRE(f.step_until([&] { return client.joined(); }));
  lua_State* S = server.script()->state();
  CHECK(RoleFixture::eval(S, "redirect(conn, 'nshost://127.0.0.1:1')").find("only callable from an event handler") !=
        std::string::npos);
  CHECK(RoleFixture::in_handler(server, "return redirect(conn, 'http://x')").find("is not an nshost:// URL") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "return redirect(conn, 'nshost://h:1', ('x'):rep(65537))")
            .find("handoff of 65537 bytes is over the limit of 65536 bytes") != std::string::npos);
  CHECK(RoleFixture::in_handler(server, "return redirect(conn, 'nshost://127.0.0.1:1', 'h')") == "ok: true, true");
  CHECK(RoleFixture::in_handler(server, "return redirect(conn, 'nshost://127.0.0.1:1', 'h')") ==
        "ok: true, nil, the client is already departing, EALREADY");  // departing
  CHECK(RoleFixture::eval(S, "return hop") == "ok: nil");  // client-only
}

TEST_CASE("hop: raises on a bad URL and outside a handler, EBUSY while a connection attempt is under way") {
  RoleFixture f;
  f.start_server("");
  ClientRole& client = f.start_client(R"(
    function client.tick()
      if not first then
        first = table.pack(pcall(hop, "nshost://127.0.0.1:1"))
        bad = table.pack(pcall(hop, "nshost://"))
      end
    end
  )");
  lua_State* C = client.script()->state();
  CHECK(RoleFixture::eval(C, "hop('nshost://127.0.0.1:1')").find("only callable from an event handler") !=
        std::string::npos);
  // The first tick runs while the client is still connecting.
  REQUIRE(f.step_until([&] { return RoleFixture::eval(C, "return first ~= nil") == "ok: true"; }));
  CHECK(RoleFixture::eval(C, "return table.unpack(first, 1, first.n)") ==
        "ok: true, nil, a connection attempt is already under way, EBUSY");
  CHECK(RoleFixture::eval(C, "return bad[2]").find("missing host") != std::string::npos);
  CHECK(RoleFixture::eval(C, "return redirect") == "ok: nil");  // server-only
}

TEST_CASE("sandbox: only the allow-listed libraries exist") {
  RoleFixture f;
  Options options;
  options.sandbox = true;
  ServerRole& server = f.start_server("", options);
  lua_State* S = server.script()->state();
  CHECK(server.script()->sandboxed());
  // What the allow-list leaves out is a stub that says so when called (a
  // whole library: when any field is read), never a bare nil to call.
  for (const char* name : {"dofile", "loadfile", "string.dump", "package.loadlib", "package.searchpath", "os.getenv",
                           "os.exit", "os.execute", "os.remove", "io.open", "io.write", "debug.getinfo",
                           "debug.sethook"}) {
    // Not a tail call, so the message has the calling line.
    std::string call = std::string(name) + "('x')";
    std::string result = RoleFixture::eval(S, call);
    CHECK_MESSAGE(result == "error: [string \"" + call + "\"]:1: " + name +
                               " is not available to fetched scripts (sandbox)",
                  result);
  }
  CHECK(RoleFixture::eval(S, "return pcall(function() local f = io.stdout end)") ==
        "ok: false, [string \"return pcall(function() local f = io.stdout e...\"]:1: io.stdout is not available to "
        "fetched scripts (sandbox)");
  CHECK(RoleFixture::eval(S, "return type(os.getenv), type(io), getmetatable(io), sys.sandboxed()") ==
        "ok: function, table, false, true");
  CHECK(RoleFixture::eval(S, "return math.deg(math.pi), math.rad(180) == math.pi, math.pow == nil or math.pow(2, 3)") ==
        "ok: 180.0, true, 8.0");
  CHECK(RoleFixture::eval(S, "return type(os.time()), type(os.clock()), math.max(1, 2), ('%d'):format(3)") ==
        "ok: number, number, 2, 3");
  // The stubs are all that was removed: os has its 11 names, 2 of them real.
  CHECK(RoleFixture::eval(S, "local n = 0 for k in pairs(os) do n = n + 1 end return n") == "ok: 11");
  CHECK(RoleFixture::eval(S, "local n = 0 for k in pairs(io) do n = n + 1 end return n, pcall(setmetatable, io, nil)")
            .find("ok: 0, false,") == 0);
  CHECK(RoleFixture::eval(S, "return load('return 1', 'x', 'b')") ==
        "ok: nil, attempt to load a binary chunk (the sandbox loads text chunks only)");
  CHECK(RoleFixture::eval(S, "return load('return 1', 'x', 'bt')") ==
        "ok: nil, attempt to load a binary chunk (the sandbox loads text chunks only)");
  CHECK(RoleFixture::eval(S, "return load('return 7', 'x', 't', {})()") == "ok: 7");
  CHECK(RoleFixture::eval(S, "return select(2, load('\\27Lua'))").find("attempt to load a binary chunk") !=
        std::string::npos);
  // Unsandboxed states keep the full library.
  RoleFixture g;
  ServerRole& open = g.start_server("");
  CHECK_FALSE(open.script()->sandboxed());
  CHECK(RoleFixture::eval(open.script()->state(), "return type(io.open), type(debug.getinfo), sys.sandboxed()") ==
        "ok: function, function, false");
}

TEST_CASE("sandbox: the instruction budget stops a handler that pcall tries to keep alive, the next call runs") {
  RoleFixture f;
  Options options;
  options.sandbox = true;
  options.instruction_budget = 100000;
  ServerRole& server = f.start_server(R"(
    calls = 0
    function server.shutdown()
      calls = calls + 1
      if calls == 1 then
        while true do pcall(function() while true do end end) end
      end
      done = true
    end
  )", options);
  ScriptHost& script = *server.script();
  uint64_t errors = script.error_count();
  CHECK_FALSE(script.invoke("shutdown"));
  CHECK(script.error_count() == errors + 1);
  CHECK(script.invoke("shutdown"));
  CHECK(RoleFixture::eval(script.state(), "return calls, done") == "ok: 2, true");
}

TEST_CASE("sandbox: the memory cap fails the hoarding handler, not the host, and the state stays usable") {
  RoleFixture f;
  Options options;
  options.sandbox = true;
  options.memory_limit_bytes = 4u << 20;
  ServerRole& server = f.start_server(R"(
    function server.shutdown()
      hoard = {}
      for i = 1, math.maxinteger do hoard[i] = ("x"):rep(100) .. i end
    end
  )", options);
  ScriptHost& script = *server.script();
  CHECK_FALSE(script.invoke("shutdown"));
  CHECK(script.memory_used() <= (4u << 20));
  CHECK(RoleFixture::eval(script.state(), "hoard = nil collectgarbage() return 1 + 1") == "ok: 2");
}
