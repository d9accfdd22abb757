#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/core/log.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

template <LogLevel Level>
int log_at(lua_State* L) {
  StackGuard guard(L);
  if (!log_enabled(Level)) return 0;
  int n = lua_gettop(L);
  std::string line;
  for (int i = 1; i <= n; ++i) {
    size_t len = 0;
    const char* s = luaL_tolstring(L, i, &len);  // [args..., s]
    if (i > 1) line += ' ';
    line.append(s, len);
    lua_pop(L, 1);
  }
  log_write(Level, ScriptHost::from(L).log_tag(), line);
  return guard.returns(0);
}

const luaL_Reg log_functions[] = {
    {"debug", guarded<log_at<LogLevel::debug>>},
    {"info", guarded<log_at<LogLevel::info>>},
    {"warn", guarded<log_at<LogLevel::warn>>},
    {"error", guarded<log_at<LogLevel::error>>},
    {nullptr, nullptr},
};

}  // namespace

void open_log(lua_State* L) {
  luaL_newlib(L, log_functions);
  lua_setglobal(L, "log");
}

}  // namespace nshost
