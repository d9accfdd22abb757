// The client handle of a room's state (rooms::RoomClientHandle, pushed by
// the room): c.id, the session id; c.auth, server.auth's claims or nil.
#include <cstring>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/rooms/room.hpp"

namespace nshost {
namespace {

int room_client_index(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<rooms::RoomClientHandle*>(luaL_checkudata(L, 1, rooms::kRoomClientType));
  const char* key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (std::strcmp(key, "id") == 0) lua_pushinteger(L, static_cast<lua_Integer>(h->session_id));
  else if (std::strcmp(key, "auth") == 0) lua_getiuservalue(L, 1, 1);
  else lua_pushnil(L);
  return guard.returns(1);
}

int room_client_tostring(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<rooms::RoomClientHandle*>(luaL_checkudata(L, 1, rooms::kRoomClientType));
  lua_pushfstring(L, "room_client(id=%I)", static_cast<lua_Integer>(h->session_id));
  return guard.returns(1);
}

const luaL_Reg room_client_meta[] = {
    {"__index", guarded<room_client_index>},
    {"__tostring", guarded<room_client_tostring>},
    {nullptr, nullptr},
};

}  // namespace

void open_room_client(lua_State* L) {
  luaL_newmetatable(L, rooms::kRoomClientType);  // [mt]
  luaL_setfuncs(L, room_client_meta, 0);
  lua_pushliteral(L, "room_client");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

uint64_t check_room_client(lua_State* L, int arg) {
  return static_cast<rooms::RoomClientHandle*>(luaL_checkudata(L, arg, rooms::kRoomClientType))->session_id;
}

}  // namespace nshost
