#include <uv.h>

#include <cstdio>
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

const uint64_t g_start_ns = uv_hrtime();

int sys_runtime_role(lua_State* L) {
  StackGuard guard(L);
  lua_pushstring(L, role_name(ScriptHost::from(L).host().role()));
  return guard.returns(1);
}

int sys_is_listen_server(lua_State* L) {
  StackGuard guard(L);
  lua_pushboolean(L, ScriptHost::from(L).host().listen_server());
  return guard.returns(1);
}

int sys_is_headless(lua_State* L) {
  StackGuard guard(L);
  lua_pushboolean(L, ScriptHost::from(L).host().headless());
  return guard.returns(1);
}

int sys_time(lua_State* L) {
  StackGuard guard(L);
  lua_pushnumber(L, static_cast<lua_Number>(uv_hrtime() - g_start_ns) / 1e9);
  return guard.returns(1);
}

int sys_quit(lua_State* L) {
  StackGuard guard(L);
  auto code = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit code must be 0..255");
  ScriptHost::from(L).host().request_stop(static_cast<int>(code));
  return guard.returns(0);
}

int sys_sandboxed(lua_State* L) {
  StackGuard guard(L);
  lua_pushboolean(L, ScriptHost::from(L).sandboxed());
  return guard.returns(1);
}

int sys_bot_index(lua_State* L) {
  StackGuard guard(L);
  uint32_t index = ScriptHost::from(L).host().bot_index();
  if (index == 0) lua_pushnil(L);
  else lua_pushinteger(L, index);
  return guard.returns(1);
}

// print for a bot's state: Lua's print (arguments through tostring, joined
// by tabs, to stdout) with the bot's log tag in front, so the lines of N bots
// in one process can be told apart. Whole lines, one write each.
int bot_print(lua_State* L) {
  StackGuard guard(L);
  int n = lua_gettop(L);
  std::string line = "nshost[" + ScriptHost::from(L).log_tag() + "] ";
  for (int i = 1; i <= n; ++i) {
    size_t len = 0;
    const char* s = luaL_tolstring(L, i, &len);  // [args..., s]
    if (i > 1) line += '\t';
    line.append(s, len);
    lua_pop(L, 1);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  return guard.returns(0);
}

const luaL_Reg sys_functions[] = {
    {"runtime_role", guarded<sys_runtime_role>},
    {"is_headless", guarded<sys_is_headless>},
    {"is_listen_server", guarded<sys_is_listen_server>},
    {"time", guarded<sys_time>},
    {"quit", guarded<sys_quit>},
    {"bot_index", guarded<sys_bot_index>},
    {"sandboxed", guarded<sys_sandboxed>},
    {nullptr, nullptr},
};

}  // namespace

void open_sys(lua_State* L) {
  luaL_newlib(L, sys_functions);
  lua_setglobal(L, "sys");
  if (ScriptHost::from(L).host().bot_index() > 0) {
    lua_pushcfunction(L, guarded<bot_print>);
    lua_setglobal(L, "print");
  }
}

}  // namespace nshost
