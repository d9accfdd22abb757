#include <doctest/doctest.h>

#include "tests/support/capture.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

TEST_CASE("require: modules come from the script's own tree and scripts/, nowhere else") {
  RoleFixture f;
  f.write_file("lib/util.lua", "return { answer = 42 }");
  f.write_file("pkg/init.lua", "return 'init'");
  ServerRole& server = f.start_server("");
  lua_State* L = server.script()->state();
  CHECK(RoleFixture::eval(L, "return require('lib.util').answer") == "ok: 42");
  CHECK(RoleFixture::eval(L, "return require('lib.util') == require('lib.util')") == "ok: true");
  CHECK(RoleFixture::eval(L, "return (require('pkg'))") == "ok: init");
  CHECK(RoleFixture::eval(L, "return type(require('nshost.snapshot').encode)") == "ok: function");
  std::string missing = RoleFixture::eval(L, "require('socket')");
  CHECK(missing.find("module 'socket' not found") != std::string::npos);
  CHECK(missing.find("/usr/") == std::string::npos);
  CHECK(RoleFixture::eval(L, "require('../etc/passwd')").find("may not contain a path separator") !=
        std::string::npos);
  CHECK(RoleFixture::eval(L, "return package.cpath, package.path") == "ok: , ");
}

TEST_CASE("require: a precompiled (bytecode) module is refused") {
  RoleFixture f;
  ServerRole& server = f.start_server("");
  lua_State* L = server.script()->state();
  std::string path = f.dir() + "/compiled.lua";
  REQUIRE(RoleFixture::eval(L, "local f = io.open('" + path +
                                   "', 'wb') f:write(string.dump(function() return 1 end)) f:close()") == "ok");
  CHECK(RoleFixture::eval(L, "require('compiled')").find("attempt to load a binary chunk") != std::string::npos);
}

TEST_CASE("handler errors: logged once with file:line and a traceback - the next event still runs") {
  RoleFixture f;
  ServerRole& server = f.start_server("calls = 0\nfunction server.tick(n)\n  calls = calls + 1\n  if n == 0 then error('first tick fails') end\nend\n");
  lua_State* L = server.script()->state();
  std::string text;
  {
    test::StderrCapture capture;
    REQUIRE(f.step_until([&] { return RoleFixture::eval(L, "return calls >= 2") == "ok: true"; }));
    text = capture.text();
  }
  CHECK(text.find("nshost[server] error: error in server.tick: ") != std::string::npos);
  CHECK(text.find("server.lua:4: first tick fails") != std::string::npos);
  CHECK(text.find("stack traceback:") != std::string::npos);
  CHECK(server.script()->error_count() == 1);
  CHECK(lua_gettop(L) == 0);
}

TEST_CASE("handlers: a non-function handler is reported, a callable table is called") {
  RoleFixture f;
  ServerRole& server = f.start_server(
      "server.shutdown = 5\n"
      "server.tick = setmetatable({}, {__call = function(self, n) ticked = n end})\n");
  lua_State* L = server.script()->state();
  {
    test::StderrCapture capture;
    CHECK(server.script()->invoke("shutdown"));
    CHECK(capture.text().find("server.shutdown is a number, not a function") != std::string::npos);
  }
  CHECK(f.step_until([&] { return RoleFixture::eval(L, "return ticked") == "ok: 0"; }));
}

TEST_CASE("load: a runtime error in the top-level chunk is one line with file:line") {
  RoleFixture f;
  Options o;
  o.role = Role::server;
  o.port = 0;
  o.script = f.write_file("bad.lua", "local x = 1\nerror('no good')\n");
  ServerRole server(f.loop(), o);
  std::string error;
  CHECK_FALSE(server.start(error));
  CHECK(error == o.script + ":2: no good");
  CHECK(server.exit_code() == 1);
}

TEST_CASE("script host: the memory in use is counted") {
  RoleFixture f;
  ServerRole& server = f.start_server("");
  size_t before = server.script()->memory_used();
  RoleFixture::eval(server.script()->state(), "big = string.rep('x', 1 << 20)");
  CHECK(server.script()->memory_used() >= before + 1'000'000);
}

namespace {

// A server whose next tick runs away in the way `mode` names, with a 100 ms
// handler timeout; ticks counts every tick that starts.
const char* kRunaway = R"(
ticks, mode = 0, nil
local function spin() while true do pcall(function() while true do end end) end end
function server.tick()
  ticks = ticks + 1
  local m = mode
  mode = nil
  if m == 'spin' then spin()
  elseif m == 'wrap' then
    local co = coroutine.wrap(spin)
    while true do pcall(co) end
  elseif m == 'resume' then
    local co = coroutine.create(spin)
    while true do coroutine.resume(co) end
  elseif m == 'nested' then
    coroutine.wrap(function() coroutine.wrap(function() coroutine.wrap(spin)() end)() end)()
  elseif m == 'yielded' then
    -- a coroutine suspended when the deadline passes, resumed in a later tick
    kept = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
    assert(select(2, coroutine.resume(kept, 1)) == 2)
    spin()
  end
end
)";

Options with_timeout_ms(uint32_t ms) {
  Options o;
  o.handler_timeout_ms = ms;
  return o;
}

}  // namespace

TEST_CASE("handler timeout: a runaway handler is stopped past its deadline, even in coroutines, and the host goes on") {
  RoleFixture f;
  ServerRole& server = f.start_server(kRunaway, with_timeout_ms(100));
  lua_State* L = server.script()->state();
  uint64_t errors = 0;
  for (const char* mode : {"spin", "wrap", "resume", "nested", "yielded"}) {
    CAPTURE(mode);
    REQUIRE(f.step_until([&] { return RoleFixture::eval(L, "return ticks > 0") == "ok: true"; }));
    std::string text;
    int64_t started_ns = 0, stopped_ns = 0;
    {
      test::StderrCapture capture;
      RoleFixture::eval(L, std::string("mode, before = '") + mode + "', ticks");
      started_ns = DeadlineWatch::monotonic_now_ns();
      REQUIRE(f.step_until([&] { return server.script()->error_count() > errors; }));
      stopped_ns = DeadlineWatch::monotonic_now_ns();
      // The next tick runs normally.
      REQUIRE(f.step_until([&] { return RoleFixture::eval(L, "return ticks >= before + 2") == "ok: true"; }));
      text = capture.text();
    }
    errors = server.script()->error_count();
    CHECK_MESSAGE(text.find("error in server.tick: ") != std::string::npos, text);
    CHECK_MESSAGE(text.find("handler timed out (ran over 100 ms; --handler-timeout)") != std::string::npos, text);
    CHECK(stopped_ns - started_ns >= 100'000'000);
    CHECK(lua_gettop(L) == 0);
  }
  // The coroutine that was suspended when its tick timed out still works.
  CHECK(RoleFixture::eval(L, "return coroutine.resume(kept, 21)") == "ok: true, 42");
  CHECK(server.script()->error_count() == 5);
}

TEST_CASE("handler timeout: no hook is set until a deadline passes, and coroutine.resume and wrap keep their standard behaviour") {
  RoleFixture f;
  ServerRole& server = f.start_server("", with_timeout_ms(1000));
  lua_State* L = server.script()->state();
  // No per-instruction cost: the hook appears only past a deadline.
  CHECK(RoleFixture::in_handler(server, "return debug.gethook()") == "ok: true, nil");
  CHECK(RoleFixture::eval(L, R"(
    local co = coroutine.create(function(a, b)
      local c = coroutine.yield(a + b, 'y')
      return c, 'done'
    end)
    local r = table.pack(coroutine.resume(co, 1, 2))
    local s = table.pack(coroutine.resume(co, 'c'))
    local t = table.pack(coroutine.resume(co))
    return r[1], r[2], r[3], s[1], s[2], s[3], t[1], t[2], coroutine.status(co))") ==
        "ok: true, 3, y, true, c, done, false, cannot resume dead coroutine, dead");
  CHECK(RoleFixture::eval(L, "return coroutine.resume(coroutine.running())") ==
        "ok: false, cannot resume non-suspended coroutine");
  std::string boom = RoleFixture::eval(L, "return coroutine.resume(coroutine.create(function() error('boom') end))");
  CHECK_MESSAGE((boom.rfind("ok: false, [string ", 0) == 0 && boom.find("]:1: boom") != std::string::npos), boom);
  CHECK(RoleFixture::eval(L, "return coroutine.resume(coroutine.create(function() error({}) end))").rfind("ok: false, table: ", 0) == 0);
  CHECK(RoleFixture::eval(L, "coroutine.resume(42)").find("bad argument #1 to 'resume' (coroutine expected") !=
        std::string::npos);
  // wrap: values pass both ways; an error carries the caller's position and
  // closes the coroutine's to-be-closed variables.
  CHECK(RoleFixture::eval(L, R"(
    local gen = coroutine.wrap(function(n) for i = 1, n do coroutine.yield(i) end return 'end' end)
    return gen(2), gen(), gen())") == "ok: 1, 2, end");
  CHECK(RoleFixture::eval(L, R"(
    closed = false
    local w = coroutine.wrap(function()
      local guard <close> = setmetatable({}, {__close = function() closed = true end})
      error('inner')
    end)
    local ok, err = pcall(w)
    return ok, err, closed)").find("inner, true") != std::string::npos);
  CHECK(RoleFixture::eval(L, "local w = coroutine.wrap(function() end) w() return pcall(w)") ==
        "ok: false, cannot resume dead coroutine");
  // Resuming itself is refused and must not reset the running coroutine.
  std::string self_resume = RoleFixture::eval(L, "local w; w = coroutine.wrap(function() return w() end) return pcall(w)");
  CHECK_MESSAGE((self_resume.rfind("ok: false, ", 0) == 0 &&
                 self_resume.find(":1: cannot resume non-suspended coroutine") != std::string::npos),
                self_resume);
  CHECK(RoleFixture::eval(L, "coroutine.wrap(42)").find("bad argument #1 to 'wrap' (function expected") !=
        std::string::npos);
  CHECK(lua_gettop(L) == 0);
}

TEST_CASE("handler lookup: a role table's __index is honoured, one that raises or allocates is one logged error under the limits") {
  RoleFixture f;
  Options o;
  o.memory_limit_bytes = 16u << 20;
  o.handler_timeout_ms = 10000;  // the cap, not the clock, must end the hoarding lookup
  ServerRole& server = f.start_server("server = setmetatable({}, {__index = {tick = function(n) ticked = n end}})\n", o);
  ScriptHost& host = *server.script();
  lua_State* L = host.state();
  REQUIRE(f.step_until([&] { return RoleFixture::eval(L, "return ticked ~= nil") == "ok: true"; }));
  CHECK(host.has_handler("tick"));
  CHECK_FALSE(host.has_handler("receive"));
  CHECK(host.error_count() == 0);

  REQUIRE(RoleFixture::eval(L, "server = setmetatable({}, {__index = function() error('lookup boom') end})") == "ok");
  {
    test::StderrCapture capture;
    CHECK_FALSE(host.has_handler("tick"));
    CHECK_FALSE(host.invoke("tick"));
    std::string text = capture.text();
    CHECK_MESSAGE(text.find("error in looking up server.tick: ") != std::string::npos, text);
    CHECK_MESSAGE(text.find("error in server.tick: ") != std::string::npos, text);
    CHECK(text.find("lookup boom") != std::string::npos);
  }
  CHECK(host.error_count() == 2);
  CHECK(lua_gettop(L) == 0);

  // The cap holds while the lookup runs: the 400 MB asked for never exist.
  REQUIRE(RoleFixture::eval(L, R"(
    server = setmetatable({}, {__index = function()
      local hoard = {}
      for i = 1, 4000000 do hoard[i] = ('x'):rep(64) .. i end
    end}))") == "ok");
  {
    test::StderrCapture capture;
    CHECK_FALSE(host.invoke("tick"));
    CHECK(capture.text().find("error in server.tick: not enough memory") != std::string::npos);
  }
  CHECK(host.memory_used() <= o.memory_limit_bytes);
  CHECK(lua_gettop(L) == 0);
}

TEST_CASE("handler arguments are pushed inside the protected call: an error there is the handler's error") {
  RoleFixture f;
  ServerRole& server = f.start_server("function server.shutdown(a) got = a end\n");
  ScriptHost& host = *server.script();
  lua_State* L = host.state();
  {
    test::StderrCapture capture;
    CHECK_FALSE(host.invoke("shutdown", [](lua_State* S) -> int { return luaL_error(S, "cannot build the arguments"); }));
    CHECK(capture.text().find("error in server.shutdown: cannot build the arguments") != std::string::npos);
  }
  CHECK(host.invoke("shutdown", [](lua_State* S) {
    lua_pushliteral(S, "fine");
    return 1;
  }));
  CHECK(RoleFixture::eval(L, "return got") == "ok: fine");
  // Not pushed at all when there is no handler.
  bool pushed = false;
  CHECK(host.invoke("receive", [&](lua_State*) {
    pushed = true;
    return 0;
  }));
  CHECK_FALSE(pushed);
  CHECK(lua_gettop(L) == 0);
}

TEST_CASE("sandbox: setmetatable refuses a metatable with __gc and keeps its standard behaviour otherwise") {
  RoleFixture f;
  Options o;
  o.sandbox = true;
  ServerRole& server = f.start_server("", o);
  lua_State* L = server.script()->state();
  CHECK(RoleFixture::eval(L, "setmetatable({}, {__gc = function() end})")
            .find("__gc metamethods are not available to fetched scripts (sandbox)") != std::string::npos);
  CHECK(RoleFixture::eval(L, "setmetatable({}, {__gc = false})").find("(sandbox)") != std::string::npos);
  CHECK(RoleFixture::eval(L, "local t = {} return setmetatable(t, {__index = {x = 1}}) == t, t.x") == "ok: true, 1");
  CHECK(RoleFixture::eval(L, "local t = setmetatable({}, {}) return getmetatable(setmetatable(t, nil))") == "ok: nil");
  CHECK(RoleFixture::eval(L, "setmetatable(setmetatable({}, {__metatable = 1}), {})").find("cannot change a protected metatable") !=
        std::string::npos);
  CHECK(RoleFixture::eval(L, "setmetatable(1, {})").find("bad argument #1 to 'setmetatable'") != std::string::npos);
  // The host's own userdata keep their C finalizers (net's state among them).
  CHECK(RoleFixture::eval(L, "return type(net)") == "ok: table");
}

TEST_CASE("xpcall: the script's message handler runs for the script's errors, not for the host's timeout") {
  RoleFixture f;
  ServerRole& server = f.start_server(R"(
    runaway, handled, ended = false, 0, false
    function server.tick()
      if not runaway then return end
      runaway = false
      -- Called for the timeout's own error this handler would loop with hooks off.
      xpcall(function() while true do end end, function() handled = handled + 1 while true do end end)
      ended = true
    end
  )", with_timeout_ms(100));
  lua_State* L = server.script()->state();
  CHECK(RoleFixture::eval(L, "return xpcall(function(a, b) return a + b, 'x' end, print, 1, 2)") == "ok: true, 3, x");
  CHECK(RoleFixture::eval(L, "return xpcall(error, function(m) return 'handled: ' .. m end, 'boom', 0)") ==
        "ok: false, handled: boom");
  CHECK(RoleFixture::eval(L, "return xpcall(print)").find("bad argument #2 to 'xpcall'") != std::string::npos);
  // A coroutine may yield across it.
  CHECK(RoleFixture::eval(L, R"(
    local co = coroutine.wrap(function() return xpcall(function() return coroutine.yield(1) + 1 end, print) end)
    return co(), co(41))") == "ok: 1, true, 42");
  std::string text;
  {
    test::StderrCapture capture;
    REQUIRE(RoleFixture::eval(L, "runaway = true") == "ok");
    REQUIRE(f.step_until([&] { return server.script()->error_count() > 0; }));
    text = capture.text();
  }
  CHECK_MESSAGE(text.find("error in server.tick: ") != std::string::npos, text);
  CHECK(text.find("handler timed out (ran over 100 ms; --handler-timeout)") != std::string::npos);
  CHECK(RoleFixture::eval(L, "return handled, ended") == "ok: 0, false");
  CHECK(lua_gettop(L) == 0);
}
