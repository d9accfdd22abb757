// string.find/match/gmatch/gsub on the bounded matcher against Lua 5.4's own:
// every case runs in a plain luaL_openlibs state (the reference) and in a
// real ScriptHost state (ours), and the results or errors must be identical.
// Then the hostile cases: a backtracking pattern in one call stops quickly
// with "pattern too complex", and under a handler timeout with the timeout.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "runtime/script/deadline_watch.hpp"
#include "tests/bindings/string_pattern_cases.hpp"
#include "tests/support/capture.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using nshost::test::RoleFixture;

namespace {

// A plain state with the standard libraries: the reference.
class ReferenceState {
 public:
  ReferenceState() : L_(luaL_newstate()) { luaL_openlibs(L_); }
  ~ReferenceState() { lua_close(L_); }
  ReferenceState(const ReferenceState&) = delete;
  ReferenceState& operator=(const ReferenceState&) = delete;
  lua_State* get() const { return L_; }

 private:
  lua_State* L_;
};

// Defined in both states: replacement functions and tables for gsub.
constexpr const char* kHelpers = R"(
  function rep_join(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    return '<' .. t.n .. ':' .. table.concat(t, '|') .. '>'
  end
  function rep_nil() return nil end
  function rep_false() return false end
  function rep_number(s) return #s end
  function rep_table() return {} end
  function rep_upper(s) return s:upper() end
  rep_map = { a = 'A', b = false, ab = 1.5, [1] = 'one', [3] = 'three' }
  rep_bad = { a = {} }
  all_bytes = {} for i = 0, 255 do all_bytes[#all_bytes + 1] = string.char(i) end
  all_bytes = table.concat(all_bytes)
  function gather(s, p, init)
    local out, n = {}, 0
    for a, b, c in string.gmatch(s, p, init) do
      n = n + 1
      out[n] = tostring(a) .. ',' .. tostring(b) .. ',' .. tostring(c)
      if n >= 200 then break end
    end
    return n, table.concat(out, ';')
  end
)";

std::string quoted(const char* s, size_t n) {
  std::string out = "\"";
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 32 && c < 127 && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\%03u", c);
      out += escaped;
    }
  }
  return out + "\"";
}

// The values from `base`+1 to the top, typed ("i:3", "f:1.5", "\"ab\"").
std::string render(lua_State* L, int base) {
  std::string out;
  for (int i = base + 1; i <= lua_gettop(L); ++i) {
    if (!out.empty()) out += ", ";
    switch (lua_type(L, i)) {
      case LUA_TNIL: out += "nil"; break;
      case LUA_TBOOLEAN: out += lua_toboolean(L, i) ? "true" : "false"; break;
      case LUA_TNUMBER:
        out += lua_isinteger(L, i) ? "i:" + std::to_string(lua_tointeger(L, i))
                                   : "f:" + std::to_string(lua_tonumber(L, i));
        break;
      case LUA_TSTRING: {
        size_t n = 0;
        const char* s = lua_tolstring(L, i, &n);
        out += quoted(s, n);
        break;
      }
      default: out += luaL_typename(L, i);
    }
  }
  return out;
}

// Runs `code` as a chunk: "ok: <results>" or "error: <message>".
std::string run(lua_State* L, const std::string& code) {
  int base = lua_gettop(L);
  std::string out;
  if (luaL_loadbuffer(L, code.data(), code.size(), "=case") != LUA_OK ||
      lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
    out = "error: " + render(L, lua_gettop(L) - 1);
  } else {
    out = "ok: " + render(L, base);
  }
  lua_settop(L, base);
  return out;
}

struct Args {
  std::string subject;
  std::string pattern;
  bool has_init = false;
  lua_Integer init = 1;
  bool plain = false;
};

// string.<function>(subject, pattern [, init [, plain]]) through the C API
// (byte-exact strings, no quoting): "ok: ..." or "error: ...".
std::string call(lua_State* L, const char* function, const Args& a, const char* extra_global = nullptr) {
  int base = lua_gettop(L);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, function);
  lua_remove(L, -2);
  lua_pushlstring(L, a.subject.data(), a.subject.size());
  lua_pushlstring(L, a.pattern.data(), a.pattern.size());
  int nargs = 2;
  if (extra_global) {
    lua_getglobal(L, extra_global);
    ++nargs;
  } else if (a.has_init || a.plain) {
    lua_pushinteger(L, a.init);
    ++nargs;
    if (a.plain) {
      lua_pushboolean(L, 1);
      ++nargs;
    }
  }
  std::string out = lua_pcall(L, nargs, LUA_MULTRET, 0) == LUA_OK ? "ok: " + render(L, base)
                                                                   : "error: " + render(L, lua_gettop(L) - 1);
  lua_settop(L, base);
  return out;
}

// gather(subject, pattern [, init]): every gmatch result, at most 200.
std::string gather(lua_State* L, const Args& a) {
  int base = lua_gettop(L);
  lua_getglobal(L, "gather");
  lua_pushlstring(L, a.subject.data(), a.subject.size());
  lua_pushlstring(L, a.pattern.data(), a.pattern.size());
  if (a.has_init) lua_pushinteger(L, a.init);
  else lua_pushnil(L);
  std::string out = lua_pcall(L, 3, LUA_MULTRET, 0) == LUA_OK ? "ok: " + render(L, base)
                                                               : "error: " + render(L, lua_gettop(L) - 1);
  lua_settop(L, base);
  return out;
}

// Both states, side by side.
struct Pair {
  RoleFixture fixture;
  ReferenceState reference;
  lua_State* ours = nullptr;
  Pair() {
    ServerRole& server = fixture.start_server("");
    ours = server.script()->state();
    REQUIRE(run(reference.get(), kHelpers) == "ok: ");
    REQUIRE(run(ours, kHelpers) == "ok: ");
  }
};


}  // namespace

TEST_CASE("string patterns: every case gives what Lua 5.4's string library gives") {
  Pair pair;
  int compared = 0;
  for (const std::string code : nshost::test::kStringPatternCases) {
    CAPTURE(code);
    std::string expected = run(pair.reference.get(), code);
    std::string got = run(pair.ours, code);
    CHECK(got == expected);
    ++compared;
  }
  CHECK(compared > 250);
}

TEST_CASE("string patterns: random patterns and subjects give what Lua 5.4's string library gives") {
  Pair pair;
  // Small alphabets, so that matches, captures and errors are all common.
  const char* const kItems[] = {"a",     "b",    ".",    "%a",  "%d",  "%s",   "[ab]", "[^a]", "[a-c]", "%b()",
                                "%f[a]", "%f[%w]", "(",  ")",   "()",  "%1",   "%2",  "$",    "^",    "%",
                                "[",     "]",    "-",    "x",   "(",   ")",    "%w",  "[%]a]", "%0", "%b"};
  const char* const kSuffixes[] = {"", "", "", "*", "+", "-", "?"};
  const char kSubjectBytes[] = {'a', 'b', 'a', 'b', 'c', '(', ')', ' ', '1', 'x', '%', '\0', '^', '$'};
  const char* const kReplacements[] = {"<%0>", "%1", "[%2]", "%%", "x", "", "%"};
  std::mt19937 random(20260611);
  auto pick = [&](size_t n) { return static_cast<size_t>(random() % n); };
  int mismatches = 0;
  const int kCasesToRun = 20000;
  auto started = std::chrono::steady_clock::now();
  for (int n = 0; n < kCasesToRun && mismatches < 10; ++n) {
    Args a;
    size_t subject_length = pick(11);
    for (size_t i = 0; i < subject_length; ++i) a.subject += kSubjectBytes[pick(sizeof kSubjectBytes)];
    size_t items = 1 + pick(6);
    for (size_t i = 0; i < items; ++i) {
      a.pattern += kItems[pick(std::size(kItems))];
      a.pattern += kSuffixes[pick(std::size(kSuffixes))];
    }
    if (pick(4) == 0) {
      a.has_init = true;
      a.init = static_cast<lua_Integer>(pick(27)) - 13;
    }
    a.plain = pick(8) == 0;
    CAPTURE(quoted(a.subject.data(), a.subject.size()));
    CAPTURE(quoted(a.pattern.data(), a.pattern.size()));
    CAPTURE(a.init);
    CAPTURE(a.plain);
    lua_State* R = pair.reference.get();
    lua_State* O = pair.ours;
    std::string expected = call(R, "find", a) + " | " + call(R, "match", a) + " | " + gather(R, a);
    std::string got = call(O, "find", a) + " | " + call(O, "match", a) + " | " + gather(O, a);
    const char* replacement = kReplacements[pick(std::size(kReplacements))];
    lua_pushstring(R, replacement);
    lua_setglobal(R, "rep_string");
    lua_pushstring(O, replacement);
    lua_setglobal(O, "rep_string");
    for (const char* kind : {"rep_string", "rep_join", "rep_map"}) {
      expected += " | " + call(R, "gsub", a, kind);
      got += " | " + call(O, "gsub", a, kind);
    }
    if (got != expected) ++mismatches;
    CHECK(got == expected);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  MESSAGE(kCasesToRun << " random cases in " << seconds << " s");
}

namespace {

// ".-.-.-.-b" over 5 KB of 'a': hours for the standard matcher.
constexpr const char* kHostile = "local s = ('a'):rep(5000) local p = ('.-'):rep(4) .. 'b' ";

int64_t elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

TEST_CASE("string patterns: a backtracking pattern stops with 'pattern too complex' within its step budget") {
  for (bool sandboxed : {false, true}) {
    CAPTURE(sandboxed);
    RoleFixture f;
    Options o;
    o.sandbox = sandboxed;
    lua_State* L = f.start_server("", o).script()->state();
    // 20,000,000 steps plus 32 per subject byte.
    const std::string expected = "pattern too complex (over 20160000 steps in one call)";
    for (const char* call : {"string.find(s, p)", "s:find(p)", "s:match(p)", "s:gmatch(p)()", "s:gsub(p, 'x')",
                             "s:gsub(p, string.upper)", "s:find(p, 4000)"}) {
      std::string what = call;
      CAPTURE(what);
      auto started = std::chrono::steady_clock::now();
      std::string got = RoleFixture::eval(L, std::string(kHostile) + "return pcall(function() return " + call + " end)");
      int64_t took_ms = elapsed_ms(started);
      CHECK_MESSAGE(got.rfind("ok: false, [string ", 0) == 0, got);  // the caller's position, as luaL_error adds
      CHECK_MESSAGE(got.find("]:1: " + expected) != std::string::npos, got);
      MESSAGE(what << ": " << took_ms << " ms");
      CHECK(took_ms < 5000);
    }
    // The state is fine afterwards.
    CHECK(RoleFixture::eval(L, "return ('a,b'):gsub(',', ';')") == "ok: a;b, 1");
  }
}

TEST_CASE("string patterns: a plain find stays linear where the standard search is quadratic") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  auto started = std::chrono::steady_clock::now();
  // The standard search compares about 2.5e11 bytes here.
  CHECK(RoleFixture::eval(L, "local s = ('a'):rep(1e6) return s:find(('a'):rep(5e5) .. 'b', 1, true)") == "ok: nil");
  CHECK(RoleFixture::eval(L, "local s = ('a'):rep(1e6) .. 'b' return s:find(('a'):rep(5e5) .. 'b', 1, true)") ==
        "ok: 500001, 1000001");
  int64_t took_ms = elapsed_ms(started);
  MESSAGE("took " << took_ms << " ms");
  CHECK(took_ms < 2000);
}

TEST_CASE("string patterns: the recursion limit is Lua's ('pattern too complex'), and the budget spans a whole gsub") {
  RoleFixture f;
  lua_State* L = f.start_server("").script()->state();
  CHECK(RoleFixture::eval(L, "return pcall(string.find, ('a'):rep(300), ('a?'):rep(300))") ==
        "ok: false, pattern too complex");
  // Many attempts add up: the budget is per call, not per match attempt
  // (here 20,000 attempts of up to 40,000 steps each).
  CHECK(RoleFixture::eval(L, "local s = ('a'):rep(20000) return pcall(string.gsub, s, 'a-b', '')") ==
        "ok: false, pattern too complex (over 20640000 steps in one call)");
  CHECK(RoleFixture::eval(L, "local s = ('ab'):rep(1000) return string.gsub(s, '.-.-.-.-b', '')") == "ok: , 1000");
  // A large subject gets a larger budget: a linear pass never runs out.
  CHECK(RoleFixture::eval(L, "local s = ('x '):rep(4e6) return select(2, s:gsub('%s+', ''))") == "ok: 4000000");
  CHECK(RoleFixture::eval(L, "local s = ('x'):rep(8e6) return s:find('%d+')") == "ok: nil");
}

TEST_CASE("string patterns: under a handler timeout, a long match ends with the timeout error near the deadline") {
  RoleFixture f;
  Options o;
  o.handler_timeout_ms = 100;
  ServerRole& server = f.start_server(
      "ticks, go = 0, false\n"
      "function server.tick()\n"
      "  ticks = ticks + 1\n"
      "  if go then go = false big:find('.-.-b') end\n"
      "end\n",
      o);
  lua_State* L = server.script()->state();
  // 8 MiB, made here rather than in the script (where making it would count
  // against the 100 ms): the step budget alone would let the match run for
  // about a second.
  std::string big(8u << 20, 'a');
  lua_pushlstring(L, big.data(), big.size());
  lua_setglobal(L, "big");
  REQUIRE(f.step_until([&] { return RoleFixture::eval(L, "return ticks > 0") == "ok: true"; }));
  std::string text;
  int64_t took_ms = 0;
  {
    test::StderrCapture capture;
    REQUIRE(RoleFixture::eval(L, "go, before = true, ticks") == "ok");
    auto started = std::chrono::steady_clock::now();
    REQUIRE(f.step_until([&] { return server.script()->error_count() > 0; }, 10000));
    took_ms = elapsed_ms(started);
    // The next tick runs normally.
    REQUIRE(f.step_until([&] { return RoleFixture::eval(L, "return ticks >= before + 2") == "ok: true"; }));
    text = capture.text();
  }
  MESSAGE("stopped after " << took_ms << " ms");
  CHECK_MESSAGE(text.find("error in server.tick: ") != std::string::npos, text);
  CHECK_MESSAGE(text.find("server.lua:4: handler timed out (ran over 100 ms; --handler-timeout)") != std::string::npos,
                text);
  // Raised by the match itself, not by the hook once Lua code ran again.
  CHECK_MESSAGE(text.find("[C]: in function 'string.find'") != std::string::npos, text);
  CHECK(text.find("pattern too complex") == std::string::npos);
  CHECK(took_ms >= 100);
  CHECK(took_ms < 600);  // tick interval + 10 % of the timeout + slack for a loaded machine
  CHECK(server.script()->error_count() == 1);
}
