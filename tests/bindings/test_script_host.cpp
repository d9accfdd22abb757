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
