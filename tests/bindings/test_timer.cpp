#include <doctest/doctest.h>

#include "tests/support/capture.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

namespace {

bool lua_true(lua_State* L, const char* expr) { return RoleFixture::eval(L, std::string("return ") + expr) == "ok: true"; }

}  // namespace

TEST_CASE("timer.after: fires once, as a handler, with its handle, timer.every repeats") {
  RoleFixture f;
  ServerRole& server = f.start_server(R"(
    once, reps = 0, 0
    h = timer.after(0.02, function(t) once = once + 1; same = rawequal(t, h); sent = pcall(broadcast, 'x') end)
    e = timer.every(0.01, function() reps = reps + 1 end)
    timer.after(0.15, function() done = true end)
  )");
  lua_State* L = server.script()->state();
  CHECK(RoleFixture::eval(L, "return tostring(h):match('^timer#%d+$') ~= nil, h.cancel == nil") == "ok: true, false");
  REQUIRE(f.step_until([&] { return lua_true(L, "done == true"); }));
  // broadcast raises outside a handler: the callback runs as one.
  CHECK(RoleFixture::eval(L, "return once, same, sent, h:cancel()") == "ok: 1, true, true, false");
  CHECK(lua_true(L, "reps >= 5"));
  CHECK(RoleFixture::eval(L, "return e:cancel(), e:cancel()") == "ok: true, false");
  CHECK(server.script()->error_count() == 0);
}

TEST_CASE("timer: equal deadlines fire in creation order, earlier deadlines first") {
  RoleFixture f;
  ServerRole& server = f.start_server(R"(
    order = {}
    for i = 1, 5 do timer.after(0.03, function() order[#order + 1] = i end) end
    timer.after(0.01, function() order[#order + 1] = 0 end)
  )");
  lua_State* L = server.script()->state();
  REQUIRE(f.step_until([&] { return lua_true(L, "#order == 6"); }));
  CHECK(RoleFixture::eval(L, "return table.concat(order, ',')") == "ok: 0,1,2,3,4,5");
}

TEST_CASE("timer: cancel inside its own callback stops an every, cancelling another pending timer works") {
  RoleFixture f;
  ServerRole& server = f.start_server(R"(
    n = 0
    victim = timer.after(0.05, function() victim_fired = true end)
    timer.every(0.01, function(t)
      n = n + 1
      if n == 3 then first, second = t:cancel(), t:cancel(); other = victim:cancel() end
    end)
    timer.after(0.2, function() done = true end)
  )");
  lua_State* L = server.script()->state();
  REQUIRE(f.step_until([&] { return lua_true(L, "done == true"); }));
  CHECK(RoleFixture::eval(L, "return n, first, second, other, victim_fired") == "ok: 3, true, false, true, nil");
}

TEST_CASE("timer: bad seconds and a non-function raise, the bounds themselves are accepted") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  for (const char* bad : {"0", "-1", "1e6 + 1", "0/0", "math.huge", "-math.huge"}) {
    std::string result = RoleFixture::eval(L, std::string("timer.after(") + bad + ", print)");
    CHECK_MESSAGE(result.find("timer.after: seconds must be a number in (0, 1e6]") != std::string::npos, result);
  }
  CHECK(RoleFixture::eval(L, "timer.every('soon', print)").find("number expected") != std::string::npos);
  CHECK(RoleFixture::eval(L, "timer.every(1, 'print')").find("function expected") != std::string::npos);
  CHECK(RoleFixture::eval(L, "timer.every(1)").find("function expected") != std::string::npos);
  CHECK(RoleFixture::eval(L, "return timer.after(1e6, print):cancel(), timer.every(0.0001, print):cancel()") ==
        "ok: true, true");
  CHECK(RoleFixture::eval(L, "local t = timer.after(1, print) local ok, e = pcall(t.cancel, {}) t:cancel() return e")
            .find("nshost.timer expected") != std::string::npos);
}

TEST_CASE("timer: at most 4096 pending per state - then nil, message, EMFILE, a freed place can be reused") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  CHECK(RoleFixture::eval(L, R"(
    live = {}
    for i = 1, 4096 do live[i] = assert(timer.after(100, print)) end
    return timer.every(1, print)
  )") == "ok: nil, too many timers, EMFILE");
  CHECK(RoleFixture::eval(L, "return live[7]:cancel(), timer.after(100, print) ~= nil, timer.after(100, print)") ==
        "ok: true, true, nil, too many timers, EMFILE");
  // The fixture now closes the state with 4096 live timers: their refs go
  // with it and the one uv handle is closed (ASan reports a leak otherwise).
}

TEST_CASE("timer: a callback's error is logged once with its origin, and an every keeps going") {
  RoleFixture f;
  std::string text;
  ServerRole* server = nullptr;
  {
    test::StderrCapture capture;
    server = &f.start_server("n = 0 timer.every(0.01, function() n = n + 1; error('boom ' .. n) end)");
    lua_State* L = server->script()->state();
    CHECK(f.step_until([&] { return lua_true(L, "n >= 3"); }));
    text = capture.text();
  }
  CHECK(server->script()->error_count() >= 3);
  CHECK_MESSAGE(text.find("error in timer.every at ") != std::string::npos, text);
  CHECK_MESSAGE(text.find(":1 callback: ") != std::string::npos, text);
  CHECK_MESSAGE(text.find("boom 1") != std::string::npos, text);
  CHECK_MESSAGE(text.find("stack traceback") != std::string::npos, text);
}

TEST_CASE("timer: --strict stops the server on a callback's error, no timer fires once it stops") {
  RoleFixture f;
  Options o;
  o.strict = true;
  test::StderrCapture capture;
  ServerRole& server = f.start_server(R"(
    n = 0
    timer.every(0.01, function() n = n + 1 end)
    timer.after(0.03, function() error('strict boom') end)
    function server.shutdown() at_shutdown = n end
  )", o);
  lua_State* L = server.script()->state();
  REQUIRE(f.step_until([&] { return server.finished(); }));
  CHECK(lua_true(L, "at_shutdown ~= nil and n == at_shutdown"));
  // Proving a non-event needs a window: 100 ms is ten periods of the every.
  f.step_until([] { return false; }, 100);
  CHECK(lua_true(L, "n == at_shutdown"));
  CHECK(capture.text().find("strict boom") != std::string::npos);
}

TEST_CASE("timer: --handler-timeout stops a runaway callback, later timers still run") {
  RoleFixture f;
  Options o;
  o.handler_timeout_ms = 100;
  test::StderrCapture capture;
  ServerRole& server = f.start_server(R"(
    timer.after(0.01, function() while true do end end)
    timer.after(0.02, function() alive = true end)
  )", o);
  lua_State* L = server.script()->state();
  REQUIRE(f.step_until([&] { return lua_true(L, "alive == true"); }));
  CHECK(server.script()->error_count() == 1);
  std::string text = capture.text();
  CHECK_MESSAGE(text.find("error in timer.after at ") != std::string::npos, text);
  CHECK_MESSAGE(text.find("handler timed out (ran over 100 ms; --handler-timeout)") != std::string::npos, text);
}

TEST_CASE("timer: --instruction-budget holds in a callback") {
  RoleFixture f;
  Options o;
  o.instruction_budget = 100'000;
  test::StderrCapture capture;
  ServerRole& server = f.start_server("timer.after(0.01, function() while true do end end)", o);
  REQUIRE(f.step_until([&] { return server.script()->error_count() == 1; }));
  CHECK(capture.text().find("instruction budget exceeded") != std::string::npos);
}

TEST_CASE("timer: a client's callback runs as a handler (send works) and reaches the server") {
  RoleFixture f;
  ServerRole& server = f.start_server("function server.receive(c, data) got = data end");
  f.start_client("function client.connect() timer.after(0.02, function() sent = send('from a timer') end) end");
  lua_State* S = server.script()->state();
  REQUIRE(f.step_until([&] { return lua_true(S, "got ~= nil"); }));
  CHECK(RoleFixture::eval(S, "return got") == "ok: from a timer");
}

TEST_CASE("timer: sys.quit on a client stops its timers") {
  RoleFixture f;
  f.start_server("");
  ClientRole& client = f.start_client(R"(
    n = 0
    timer.every(0.01, function() n = n + 1; if n == 2 then sys.quit() end end)
  )");
  lua_State* L = client.script()->state();
  REQUIRE(f.step_until([&] { return client.finished(); }));
  CHECK(lua_true(L, "n == 2"));
}

TEST_CASE("timer: a finalizer that runs while the state closes cannot create a timer") {
  std::string text;
  {
    test::StderrCapture capture;
    {
      RoleFixture f;
      // Reachable (a global), so finalized only by lua_close; no timer set
      // exists yet, and one made then would never be freed.
      f.start_server(R"(
        keep = setmetatable({}, {__gc = function() log.warn('in gc:', pcall(timer.after, 1, print)) end})
      )");
    }
    text = capture.text();
  }
  CHECK_MESSAGE(text.find("in gc: false") != std::string::npos, text);
  CHECK_MESSAGE(text.find("timer: the Lua state is closing") != std::string::npos, text);
}
