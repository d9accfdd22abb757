#include <optional>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

int tick_rate(lua_State* L) {
  StackGuard guard(L);
  lua_pushinteger(L, ScriptHost::from(L).host().tick_rate_hz());
  return guard.returns(1);
}

int set_tick_rate(lua_State* L) {
  StackGuard guard(L);
  int is_integer = 0;
  lua_Integer hz = lua_tointegerx(L, 1, &is_integer);
  if (!is_integer || hz < lua_Integer{kMinTickRateHz} || hz > lua_Integer{kMaxTickRateHz})
    return luaL_error(L, "set_tick_rate: rate must be an integer in %d..%d Hz (got %s)", static_cast<int>(kMinTickRateHz),
                      static_cast<int>(kMaxTickRateHz), luaL_tolstring(L, 1, nullptr));
  ScriptHost::from(L).host().set_tick_rate_hz(static_cast<uint32_t>(hz));
  return guard.returns(0);
}

int max_clients(lua_State* L) {
  StackGuard guard(L);
  lua_pushinteger(L, ScriptHost::from(L).host().max_clients());
  return guard.returns(1);
}

// Client only: the joined server's rate (from its welcome); nil when not joined.
int server_tick_rate(lua_State* L) {
  StackGuard guard(L);
  uint32_t hz = client_api(L).server_tick_rate_hz();
  if (hz == 0) lua_pushnil(L);
  else lua_pushinteger(L, hz);
  return guard.returns(1);
}

// Client only: the latest server tick number heard of; nil when not joined.
int server_tick(lua_State* L) {
  StackGuard guard(L);
  std::optional<uint64_t> tick = client_api(L).server_tick();
  if (!tick) lua_pushnil(L);
  else lua_pushinteger(L, static_cast<lua_Integer>(*tick));
  return guard.returns(1);
}

const luaL_Reg tick_functions[] = {
    {"tick_rate", guarded<tick_rate>},
    {"set_tick_rate", guarded<set_tick_rate>},
    {"max_clients", guarded<max_clients>},
    {nullptr, nullptr},
};

}  // namespace

void open_tick(lua_State* L) {
  lua_pushglobaltable(L);
  luaL_setfuncs(L, tick_functions, 0);
  lua_pop(L, 1);
}

void open_tick_client(lua_State* L) {
  lua_pushcfunction(L, guarded<server_tick_rate>);
  lua_setglobal(L, "server_tick_rate");
  lua_pushcfunction(L, guarded<server_tick>);
  lua_setglobal(L, "server_tick");
}

}  // namespace nshost
