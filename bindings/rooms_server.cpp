// rooms.define in the server script (docs/rooms.md): room types, declared
// while the script loads.
#include <cstdio>
#include <cstring>
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

bool readable(const std::string& path) {
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    std::fclose(f);
    return true;
  }
  return false;
}

// options.unreliable: a list of message type names.
void read_unreliable(lua_State* L, int options, rooms::RoomType& type) {
  if (lua_getfield(L, options, "unreliable") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "rooms.define: options.unreliable must be a list of message types");
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
  for (lua_Integer i = 1; i <= n; ++i) {
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
      luaL_error(L, "rooms.define: options.unreliable[%d] is not a string", static_cast<int>(i));
    type.unreliable.insert(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

// rooms.define(type, path [, options]) -> nothing; raises on misuse.
int rooms_define(lua_State* L) {
  StackGuard guard(L);
  ScriptHost& host = ScriptHost::from(L);
  if (host.in_handler()) return luaL_error(L, "rooms.define: only while the script loads, not from a handler");
  rooms::RoomManager* manager = server_api(L).rooms();
  if (!manager) return luaL_error(L, "rooms.define: this server has no rooms");
  size_t name_len = 0;
  const char* name = luaL_checklstring(L, 1, &name_len);
  if (name_len == 0 || name_len > rooms::RoomManager::kMaxTypeNameBytes)
    return luaL_error(L, "rooms.define: type must be 1..%d bytes", static_cast<int>(rooms::RoomManager::kMaxTypeNameBytes));
  std::string relative = luaL_checkstring(L, 2);
  if (relative.empty() || relative.front() == '/')
    return luaL_error(L, "rooms.define: path must be relative to the script's directory (got '%s')", relative.c_str());
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  rooms::RoomType type;
  type.name.assign(name, name_len);
  const std::string dir = host.module_roots().empty() ? "." : host.module_roots().front();
  type.path = dir + "/" + relative;
  if (!readable(type.path)) return luaL_error(L, "rooms.define: cannot read '%s'", type.path.c_str());
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {  // unknown keys are a typo
      lua_pop(L, 1);
      const char* key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : nullptr;
      if (!key || (std::strcmp(key, "max_clients") != 0 && std::strcmp(key, "auto_dispose") != 0 &&
                   std::strcmp(key, "unreliable") != 0 && std::strcmp(key, "tick_rate") != 0))
        return luaL_error(L, "rooms.define: unknown option '%s' (max_clients, auto_dispose, unreliable, tick_rate)",
                          luaL_tolstring(L, -1, nullptr));
    }
    type.max_clients =
        static_cast<uint32_t>(integer_option(L, 3, "rooms.define", "max_clients", 1, rooms::RoomType::kMaxClients,
                                             type.max_clients));
    type.tick_rate_hz = static_cast<uint32_t>(
        integer_option(L, 3, "rooms.define", "tick_rate", kMinTickRateHz, kMaxTickRateHz, 0));
    int t = lua_getfield(L, 3, "auto_dispose");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN) return luaL_error(L, "rooms.define: options.auto_dispose must be a boolean");
    if (t == LUA_TBOOLEAN) type.auto_dispose = lua_toboolean(L, -1);
    lua_pop(L, 1);
    read_unreliable(L, 3, type);
  }
  std::string error;
  if (!manager->define(std::move(type), error)) return luaL_error(L, "rooms.define: %s", error.c_str());
  return guard.returns(0);
}

const luaL_Reg rooms_functions[] = {
    {"define", guarded<rooms_define>},
    {nullptr, nullptr},
};

}  // namespace

void open_rooms_server(lua_State* L) {
  luaL_newlib(L, rooms_functions);
  lua_setglobal(L, "rooms");
}

}  // namespace nshost
