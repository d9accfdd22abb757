// string.find, string.match, string.gmatch and string.gsub on the bounded
// matcher of runtime/script/lua_pattern.hpp, with Lua 5.4's arguments, results and
// errors. Each call gets a step budget, and a call still matching when the
// running handler's deadline passes ends with the handler-timeout error.
#include <cctype>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

#include "runtime/script/lua_guard.hpp"
#include "runtime/script/lua_pattern.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

// Steps one call may take: a fixed part, plus an allowance per subject byte
// so that a linear pass over a large string (a gsub over a whole HTTP body)
// never runs out. See docs/reliability.md for what a step costs.
constexpr uint64_t kBaseSteps = 20'000'000;
constexpr uint64_t kStepsPerSubjectByte = 32;

bool handler_timed_out(void* host) { return static_cast<const ScriptHost*>(host)->timed_out(); }

PatternBudget budget_for(lua_State* L, size_t subject_bytes) {
  PatternBudget budget;
  budget.max_steps = kBaseSteps + kStepsPerSubjectByte * subject_bytes;
  budget.should_stop = &handler_timed_out;
  budget.context = &ScriptHost::from(L);
  return budget;
}

// Runs `work` (a matcher call); a PatternError becomes a Lua error raised
// outside the catch block, so no C++ exception of ours unwinds through Lua.
template <class Work>
auto run_matcher(lua_State* L, Work&& work) -> decltype(work()) {
  PatternError::Kind kind = PatternError::Kind::malformed;
  std::string message;
  try {
    return work();
  } catch (const PatternError& e) {
    kind = e.kind();
    message = e.what();
  }
  if (kind == PatternError::Kind::stopped)
    luaL_error(L, "handler timed out (ran over %d ms; --handler-timeout)",
               static_cast<int>(ScriptHost::from(L).handler_timeout_ms()));
  luaL_error(L, "%s", message.c_str());
  return {};  // not reached: luaL_error does not return
}

// Lua's string positions: 1-based, negative from the end, clamped to 1.
// Returns the 0-based offset, which may be past the end.
size_t start_offset(lua_Integer position, size_t length) {
  if (position > 0) return static_cast<size_t>(position) - 1;
  if (position == 0 || position < -static_cast<lua_Integer>(length)) return 0;
  return length - static_cast<size_t>(-position);
}

// True if the pattern has none of the characters that make it a pattern:
// find then searches for it as plain bytes.
bool is_plain(std::string_view pattern) {
  for (char c : pattern)
    if (std::strchr("^$*+?.([%-", c) && c != '\0') return false;
  return true;
}

// The first occurrence of `needle` in `haystack`, or nullptr. Lua's own
// search (memchr for the first byte, then memcmp) is the fastest on text but
// quadratic on inputs like a run of 'a' searched for "aaa...ab"; once its
// comparisons pass a few times the haystack's size, glibc's memmem (linear)
// finishes the search.
const char* find_bytes(std::string_view haystack, std::string_view needle) {
  if (needle.empty()) return haystack.data();
  if (needle.size() > haystack.size()) return nullptr;
  const char* at = haystack.data();
  const char* last = haystack.data() + (haystack.size() - needle.size());
  uint64_t compared = 0;
  const uint64_t compare_limit = 4 * static_cast<uint64_t>(haystack.size()) + 4096;
  while (at <= last) {
    at = static_cast<const char*>(std::memchr(at, needle[0], static_cast<size_t>(last - at) + 1));
    if (!at) return nullptr;
    if (std::memcmp(at + 1, needle.data() + 1, needle.size() - 1) == 0) return at;
    compared += needle.size();
    if (compared > compare_limit) {
      size_t rest = haystack.size() - static_cast<size_t>(at + 1 - haystack.data());
      return static_cast<const char*>(memmem(at + 1, rest, needle.data(), needle.size()));
    }
    ++at;
  }
  return nullptr;
}

void push_capture(lua_State* L, const PatternMatcher& matcher, std::string_view subject, int index,
                  size_t match_begin, size_t match_end) {
  PatternMatcher::Capture capture =
      run_matcher(L, [&] { return matcher.capture(index, match_begin, match_end); });
  if (capture.kind == PatternMatcher::Capture::Kind::position)
    lua_pushinteger(L, static_cast<lua_Integer>(capture.begin) + 1);
  else
    lua_pushlstring(L, subject.data() + capture.begin, capture.length);
}

// Pushes the captures of the last match; with none and `whole`, the whole
// match. Returns how many values it pushed.
int push_captures(lua_State* L, const PatternMatcher& matcher, std::string_view subject, size_t match_begin,
                  size_t match_end, bool whole) {
  int count = matcher.capture_count() == 0 && whole ? 1 : matcher.capture_count();
  luaL_checkstack(L, count, "too many captures");
  for (int i = 0; i < count; ++i) push_capture(L, matcher, subject, i, match_begin, match_end);
  return count;
}

// [s, pattern, init, plain] -> [start, end, captures...] | [fail] (find)
// [s, pattern, init] -> [captures... | whole match] | [fail] (match)
int find_or_match(lua_State* L, bool find) {
  size_t subject_bytes = 0, pattern_bytes = 0;
  const char* s = luaL_checklstring(L, 1, &subject_bytes);
  const char* p = luaL_checklstring(L, 2, &pattern_bytes);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), subject_bytes);
  std::string_view subject(s, subject_bytes);
  if (init > subject_bytes) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || is_plain({p, pattern_bytes}))) {
    const char* at = find_bytes(subject.substr(init), {p, pattern_bytes});
    if (!at) {
      luaL_pushfail(L);
      return 1;
    }
    size_t begin = static_cast<size_t>(at - s);
    lua_pushinteger(L, static_cast<lua_Integer>(begin) + 1);
    lua_pushinteger(L, static_cast<lua_Integer>(begin + pattern_bytes));
    return 2;
  }
  bool anchored = pattern_bytes > 0 && p[0] == '^';
  std::string_view pattern(p + anchored, pattern_bytes - anchored);
  PatternMatcher matcher(subject, pattern, budget_for(L, subject_bytes));
  size_t begin = 0;
  size_t end = run_matcher(L, [&] { return matcher.search(init, anchored, begin); });
  if (end == PatternMatcher::npos) {
    luaL_pushfail(L);
    return 1;
  }
  if (!find) return push_captures(L, matcher, subject, begin, end, true);
  lua_pushinteger(L, static_cast<lua_Integer>(begin) + 1);
  lua_pushinteger(L, static_cast<lua_Integer>(end));
  return 2 + push_captures(L, matcher, subject, 0, 0, false);
}

int str_find(lua_State* L) { return find_or_match(L, true); }
int str_match(lua_State* L) { return find_or_match(L, false); }

// What a gmatch iterator keeps between calls (in a userdata; its subject and
// pattern are upvalues 1 and 2 of the iterator, so they stay alive).
struct GmatchState {
  PatternMatcher matcher;
  size_t next;      // where the next search starts; past the end: done
  size_t last_end;  // end of the previous match, or npos
};
static_assert(std::is_trivially_destructible_v<GmatchState>, "lives in a userdata without __gc");

// [] -> [captures... | whole match] | [] when done
int gmatch_next(lua_State* L) {
  auto* state = static_cast<GmatchState*>(lua_touserdata(L, lua_upvalueindex(3)));
  size_t subject_bytes = 0;
  const char* s = lua_tolstring(L, lua_upvalueindex(1), &subject_bytes);
  std::string_view subject(s, subject_bytes);
  state->matcher.reset_budget(budget_for(L, subject_bytes));
  for (size_t at = state->next; at <= subject_bytes; ++at) {
    size_t end = run_matcher(L, [&] { return state->matcher.match_at(at); });
    // An empty match right where the previous one ended does not count.
    if (end != PatternMatcher::npos && end != state->last_end) {
      state->next = state->last_end = end;
      return push_captures(L, state->matcher, subject, at, end, true);
    }
  }
  return 0;
}

// [s, pattern, init] -> [iterator]. '^' is a literal here, as in Lua.
int str_gmatch(lua_State* L) {
  size_t subject_bytes = 0, pattern_bytes = 0;
  const char* s = luaL_checklstring(L, 1, &subject_bytes);
  const char* p = luaL_checklstring(L, 2, &pattern_bytes);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), subject_bytes);
  lua_settop(L, 2);
  void* memory = lua_newuserdatauv(L, sizeof(GmatchState), 0);
  new (memory) GmatchState{PatternMatcher({s, subject_bytes}, {p, pattern_bytes}, PatternBudget{}),
                           init > subject_bytes ? subject_bytes + 1 : init, PatternMatcher::npos};
  lua_pushcclosure(L, guarded<gmatch_next>, 3);
  return 1;
}

// Appends the replacement string (argument 3) for one match, expanding
// %0..%9 and %%.
void add_expanded(lua_State* L, luaL_Buffer* out, const PatternMatcher& matcher, std::string_view subject,
                  size_t match_begin, size_t match_end) {
  size_t length = 0;
  const char* text = lua_tolstring(L, 3, &length);
  const char* end = text + length;
  while (const char* escape = static_cast<const char*>(std::memchr(text, '%', static_cast<size_t>(end - text)))) {
    luaL_addlstring(out, text, static_cast<size_t>(escape - text));
    const char* what = escape + 1;
    char c = what < end ? *what : '\0';
    if (c == '%') {
      luaL_addchar(out, '%');
    } else if (c == '0') {
      luaL_addlstring(out, subject.data() + match_begin, match_end - match_begin);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      PatternMatcher::Capture capture =
          run_matcher(L, [&] { return matcher.capture(c - '1', match_begin, match_end); });
      if (capture.kind == PatternMatcher::Capture::Kind::position) {
        lua_pushinteger(L, static_cast<lua_Integer>(capture.begin) + 1);
        luaL_addvalue(out);
      } else {
        luaL_addlstring(out, subject.data() + capture.begin, capture.length);
      }
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", '%');
    }
    text = what + 1;
  }
  luaL_addlstring(out, text, static_cast<size_t>(end - text));
}

// Appends the replacement for one match; false if the match was kept as is
// (a function or table gave nil or false).
bool add_replacement(lua_State* L, luaL_Buffer* out, int kind, const PatternMatcher& matcher,
                     std::string_view subject, size_t match_begin, size_t match_end) {
  if (kind == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int count = push_captures(L, matcher, subject, match_begin, match_end, true);
    lua_call(L, count, 1);
  } else if (kind == LUA_TTABLE) {
    push_capture(L, matcher, subject, 0, match_begin, match_end);
    lua_gettable(L, 3);
  } else {
    add_expanded(L, out, matcher, subject, match_begin, match_end);
    return true;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(out, subject.data() + match_begin, match_end - match_begin);
    return false;
  }
  if (!lua_isstring(L, -1)) luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  luaL_addvalue(out);
  return true;
}

// [s, pattern, repl, n] -> [result, count]
int str_gsub(lua_State* L) {
  size_t subject_bytes = 0, pattern_bytes = 0;
  const char* s = luaL_checklstring(L, 1, &subject_bytes);
  const char* p = luaL_checklstring(L, 2, &pattern_bytes);
  int kind = lua_type(L, 3);
  lua_Integer max_replacements = luaL_optinteger(L, 4, static_cast<lua_Integer>(subject_bytes) + 1);
  luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION || kind == LUA_TTABLE, 3,
                   "string/function/table");
  std::string_view subject(s, subject_bytes);
  bool anchored = pattern_bytes > 0 && p[0] == '^';
  PatternMatcher matcher(subject, {p + anchored, pattern_bytes - anchored}, budget_for(L, subject_bytes));
  luaL_Buffer out;
  luaL_buffinit(L, &out);
  size_t at = 0;
  size_t last_end = PatternMatcher::npos;
  lua_Integer count = 0;
  bool changed = false;
  while (count < max_replacements) {
    size_t end = run_matcher(L, [&] { return matcher.match_at(at); });
    if (end != PatternMatcher::npos && end != last_end) {
      ++count;
      changed = add_replacement(L, &out, kind, matcher, subject, at, end) || changed;
      at = last_end = end;
    } else if (at < subject_bytes) {
      luaL_addchar(&out, s[at++]);
    } else {
      break;
    }
    if (anchored) break;
  }
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&out, s + at, subject_bytes - at);
    luaL_pushresult(&out);
  }
  lua_pushinteger(L, count);
  return 2;
}

}  // namespace

void open_string_patterns(lua_State* L) {
  static constexpr struct {
    const char* name;
    lua_CFunction function;
  } kFunctions[] = {
      {"find", guarded<str_find>},
      {"match", guarded<str_match>},
      {"gmatch", guarded<str_gmatch>},
      {"gsub", guarded<str_gsub>},
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_STRLIBNAME) == LUA_TTABLE) {  // [loaded, string]
    // Only what the state has: a sandbox's allow-list stays as it is.
    for (const auto& entry : kFunctions) {
      if (lua_getfield(L, -1, entry.name) != LUA_TNIL) {
        lua_pushcfunction(L, entry.function);
        lua_setfield(L, -3, entry.name);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
}

}  // namespace nshost
