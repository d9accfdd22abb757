#pragma once
// What bindings/rooms_client.cpp and bindings/room_handle.cpp share: the
// role's ClientRooms and the failures both return.
#include <lua.hpp>

#include <string>

#include "bindings/lua_util.hpp"
#include "runtime/rooms/client_rooms.hpp"

namespace nshost {

// The client role's rooms; raises in a state without them (the server role).
inline rooms::ClientRooms& client_rooms(lua_State* L) {
  rooms::ClientRooms* r = client_api(L).rooms();
  if (!r) luaL_error(L, "this client has no rooms");
  return *r;
}

// nil, "message of N bytes is over the limit of M bytes (--max-message-size)", "EMSGSIZE".
inline int push_too_large(lua_State* L, size_t bytes, uint32_t limit) {
  std::string message = "message of " + std::to_string(bytes) + " bytes is over the limit of " +
                        std::to_string(limit) + " bytes (--max-message-size)";
  return push_failure(L, message, "EMSGSIZE");
}

}  // namespace nshost
