// term.*: the terminal of a client that a person plays in (docs/scripting.md
// "term"). Only in a client state that is not sandboxed and not a bot: one
// stdin per process, and a fetched script must not read keys. A headless
// client has it (so one file checks and runs both ways) but cannot open it. The
// Terminal behind it is owned by a userdata in the registry, so the mode is
// restored when the state closes, whatever closed it.
#include <cstdio>
#include <memory>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/core/terminal.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

constexpr const char* kTerminalKey = "nshost.term";
constexpr size_t kMaxWriteBytes = 1u << 20;

Terminal* existing_terminal(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kTerminalKey);  // [ud or nil]
  auto* slot = static_cast<Terminal**>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return slot ? *slot : nullptr;
}

Terminal& terminal(lua_State* L) {
  if (Terminal* t = existing_terminal(L)) return *t;
  if (ScriptHost::from(L).closing()) luaL_error(L, "term: the state is closing");
  auto owned = std::make_unique<Terminal>();
  auto** slot = static_cast<Terminal**>(lua_newuserdatauv(L, sizeof(Terminal*), 0));  // [ud]
  *slot = nullptr;
  lua_newtable(L);  // [ud, mt]
  lua_pushcfunction(L, [](lua_State* S) -> int {
    auto** p = static_cast<Terminal**>(lua_touserdata(S, 1));
    delete *p;
    *p = nullptr;
    return 0;
  });
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);  // [ud]
  *slot = owned.release();
  lua_setfield(L, LUA_REGISTRYINDEX, kTerminalKey);  // []
  return **slot;
}

int term_open(lua_State* L) {
  StackGuard guard(L);
  if (ScriptHost::from(L).host().headless())
    return guard.returns(push_failure(L, "headless client (no terminal input)", "ENOTTY"));
  std::string message, code;
  if (!terminal(L).open(ScriptHost::from(L).host().loop(), message, code))
    return guard.returns(push_failure(L, message, code));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

int term_keys(lua_State* L) {
  StackGuard guard(L);
  Terminal* t = existing_terminal(L);
  if (!t || !t->is_open()) return luaL_error(L, "term.keys: the terminal is not open (call term.open first)");
  std::vector<std::string> keys = t->take_keys();
  lua_createtable(L, static_cast<int>(keys.size()), 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    lua_pushlstring(L, keys[i].data(), keys[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return guard.returns(1);
}

int term_write(lua_State* L) {
  StackGuard guard(L);
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "term.write: text must be a string (got %s)", luaL_typename(L, 1));
  std::string_view text = check_bytes(L, 1);
  if (text.size() > kMaxWriteBytes)
    return luaL_error(L, "term.write: %d bytes is over the limit of %d bytes", static_cast<int>(text.size()),
                      static_cast<int>(kMaxWriteBytes));
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    std::clearerr(stdout);
    return guard.returns(push_failure(L, "cannot write to stdout", "EIO"));
  }
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

int term_size(lua_State* L) {
  StackGuard guard(L);
  int cols = 0, rows = 0;
  if (!Terminal::size(cols, rows)) return guard.returns(push_failure(L, "not a terminal", "ENOTTY"));
  lua_pushinteger(L, cols);
  lua_pushinteger(L, rows);
  return guard.returns(2);
}

int term_close(lua_State* L) {
  StackGuard guard(L);
  Terminal* t = existing_terminal(L);
  bool was_open = t && t->is_open();
  if (t) t->close();
  lua_pushboolean(L, was_open);
  return guard.returns(1);
}

const luaL_Reg term_functions[] = {
    {"open", guarded<term_open>},
    {"keys", guarded<term_keys>},
    {"write", guarded<term_write>},
    {"size", guarded<term_size>},
    {"close", guarded<term_close>},
    {nullptr, nullptr},
};

}  // namespace

void open_term(lua_State* L) {
  ScriptHost& script = ScriptHost::from(L);
  HostApi& host = script.host();
  if (!host.client() || script.sandboxed() || host.bot_index() > 0) return;
  luaL_newlib(L, term_functions);
  lua_setglobal(L, "term");
}

}  // namespace nshost
