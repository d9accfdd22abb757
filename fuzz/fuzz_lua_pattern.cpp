// libFuzzer target: the bounded pattern matcher (runtime/script/lua_pattern.hpp)
// against Lua 5.4's own string.find. Input: one byte, the pattern's length
// (mod 64), then the pattern, then the subject (at most 64 bytes). The
// matcher runs under a small step budget; when it finishes within it, the
// standard string.find (same algorithm, so no slower) runs too, and both
// must give the same span, captures or error text. The matcher must never
// crash, read outside its inputs or run past its budget.
#include <lua.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/script/lua_pattern.hpp"

namespace {

constexpr uint64_t kMaxSteps = 200'000;

// Lua's answer (or ours), rendered: "error: <text>" or the values of find.
using Answer = std::vector<std::string>;

Answer reference_find(std::string_view subject, std::string_view pattern) {
  static lua_State* L = [] {
    lua_State* state = luaL_newstate();
    luaL_openlibs(state);
    return state;
  }();
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "find");
  lua_remove(L, -2);
  lua_pushlstring(L, subject.data(), subject.size());
  lua_pushlstring(L, pattern.data(), pattern.size());
  Answer out;
  if (lua_pcall(L, 2, LUA_MULTRET, 0) != LUA_OK) {
    out.push_back(std::string("error: ") + lua_tostring(L, -1));
  } else {
    for (int i = 1; i <= lua_gettop(L); ++i) {
      if (lua_isnil(L, i)) out.push_back("nil");
      else if (lua_isinteger(L, i)) out.push_back("i:" + std::to_string(lua_tointeger(L, i)));
      else out.push_back("s:" + std::string(lua_tostring(L, i), lua_rawlen(L, i)));
    }
  }
  lua_settop(L, 0);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t pattern_bytes = std::min<size_t>(data[0] % 64, size - 1);
  std::string_view pattern(reinterpret_cast<const char*>(data + 1), pattern_bytes);
  std::string_view subject(reinterpret_cast<const char*>(data + 1 + pattern_bytes),
                           std::min<size_t>(size - 1 - pattern_bytes, 64));
  bool anchored = !pattern.empty() && pattern[0] == '^';
  nshost::PatternBudget budget;
  budget.max_steps = kMaxSteps;
  nshost::PatternMatcher matcher(subject, pattern.substr(anchored), budget);
  Answer ours;
  try {
    size_t begin = 0;
    size_t end = matcher.search(0, anchored, begin);
    if (end == nshost::PatternMatcher::npos) {
      ours.push_back("nil");
    } else {
      if (begin > end || end > subject.size()) std::abort();
      ours.push_back("i:" + std::to_string(begin + 1));
      ours.push_back("i:" + std::to_string(end));
      for (int i = 0; i < matcher.capture_count(); ++i) {
        nshost::PatternMatcher::Capture c = matcher.capture(i, 0, 0);
        if (c.kind == nshost::PatternMatcher::Capture::Kind::position) {
          if (c.begin > subject.size()) std::abort();
          ours.push_back("i:" + std::to_string(c.begin + 1));
        } else {
          if (c.begin + c.length > subject.size()) std::abort();
          ours.push_back("s:" + std::string(subject.substr(c.begin, c.length)));
        }
      }
    }
  } catch (const nshost::PatternError& e) {
    ours.clear();
    if (e.kind() == nshost::PatternError::Kind::over_budget) {
      // Stopped just past the budget: one addition is at most a greedy run
      // over the whole subject (64 bytes) of an item costing at most 4 (a
      // set as long as the pattern, 63 bytes), or a %b scan or back-reference.
      if (matcher.steps_used() <= kMaxSteps || matcher.steps_used() > kMaxSteps + 64 * 4) std::abort();
      return 0;
    }
    ours.push_back(std::string("error: ") + e.what());
  }
  if (matcher.steps_used() > kMaxSteps) std::abort();
  // Without any of these, string.find searches for the bytes as they are
  // (as runtime/script/string_patterns.cpp does too): nothing to compare.
  if (pattern.find_first_of(std::string_view("^$*+?.([%-", 10)) == std::string_view::npos) return 0;
  if (ours != reference_find(subject, pattern)) std::abort();
  return 0;
}
