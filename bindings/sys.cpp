#include <uv.h>

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

const luaL_Reg sys_functions[] = {
    {"runtime_role", guarded<sys_runtime_role>},
    {"is_headless", guarded<sys_is_headless>},
    {"time", guarded<sys_time>},
    {"quit", guarded<sys_quit>},
    {nullptr, nullptr},
};

}  // namespace

void open_sys(lua_State* L) {
  luaL_newlib(L, sys_functions);
  lua_setglobal(L, "sys");
}

}  // namespace nshost
