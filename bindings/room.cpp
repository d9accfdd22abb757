// The `room` module of a room's state (docs/rooms.md): the builtins on the
// global table `room`, next to the handlers the room file defines there.
// Failures that are not programming errors return nil, message, code; misuse
// (a bad argument, data that cannot be encoded, a message over
// --max-message-size, sending outside a handler) raises.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

constexpr size_t kMaxCloseReasonBytes = 200;

rooms::Room& room_of(lua_State* L) {
  rooms::Room* room = ScriptHost::from(L).host().room();
  if (!room) luaL_error(L, "only a room's state has this function");
  return *room;
}

// nil or absent: the room type's policy for the message type.
std::optional<Channel> opt_channel(lua_State* L, int arg) {
  if (lua_isnoneornil(L, arg)) return std::nullopt;
  return check_channel(L, arg);
}

int room_clients(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  std::vector<uint64_t> ids = room.clients();
  lua_createtable(L, static_cast<int>(ids.size()), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    room.push_client(L, ids[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return guard.returns(1);
}

// room.send(c, type, data [, channel]) and room.send_bytes(c, type, bytes [, channel]).
int send_impl(lua_State* L, bool bytes, const char* name) {
  lua_settop(L, 4);
  StackGuard guard(L);
  require_handler(L, name);
  rooms::Room& room = room_of(L);
  uint64_t session = check_room_client(L, 1);
  std::string_view type = check_bytes(L, 2);
  if (bytes) luaL_checktype(L, 3, LUA_TSTRING);
  std::optional<Channel> channel = opt_channel(L, 4);
  if (!room.has(session))
    return guard.returns(push_failure(L,
                                      "client " + std::to_string(session) + " is not in room " +
                                          std::to_string(room.id()),
                                      "ENOTCONN"));
  const uint64_t one[1] = {session};
  size_t sent = 0;
  std::string error;
  if (!room.send(L, one, type, 3, bytes, channel, sent, error)) return luaL_error(L, "%s: %s", name, error.c_str());
  if (sent == 0)
    return guard.returns(push_failure(L, "client " + std::to_string(session) + " is not connected (its link is down)",
                                      "ENOTCONN"));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

// room.broadcast(type, data [, channel [, except]]) and the _bytes form.
int broadcast_impl(lua_State* L, bool bytes, const char* name) {
  lua_settop(L, 4);
  StackGuard guard(L);
  require_handler(L, name);
  rooms::Room& room = room_of(L);
  std::string_view type = check_bytes(L, 1);
  if (bytes) luaL_checktype(L, 2, LUA_TSTRING);
  std::optional<Channel> channel = opt_channel(L, 3);
  std::optional<uint64_t> except;
  if (!lua_isnil(L, 4)) except = check_room_client(L, 4);
  std::vector<uint64_t> recipients = room.clients();
  if (except) std::erase(recipients, *except);
  size_t sent = 0;
  std::string error;
  if (!room.send(L, recipients, type, 2, bytes, channel, sent, error)) return luaL_error(L, "%s: %s", name, error.c_str());
  lua_pushinteger(L, static_cast<lua_Integer>(sent));
  return guard.returns(1);
}

int room_send(lua_State* L) { return send_impl(L, false, "room.send"); }
int room_send_bytes(lua_State* L) { return send_impl(L, true, "room.send_bytes"); }
int room_broadcast(lua_State* L) { return broadcast_impl(L, false, "room.broadcast"); }
int room_broadcast_bytes(lua_State* L) { return broadcast_impl(L, true, "room.broadcast_bytes"); }

int room_lock(lua_State* L) {
  StackGuard guard(L);
  room_of(L).set_locked(true);
  return guard.returns(0);
}

int room_unlock(lua_State* L) {
  StackGuard guard(L);
  room_of(L).set_locked(false);
  return guard.returns(0);
}

int room_set_metadata(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  if (lua_isnoneornil(L, 1)) {
    room.set_metadata(std::nullopt);
    return guard.returns(0);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  rooms::Writer w(rooms::Codec::msgpack);
  std::string error;
  if (!w.lua_value(L, 1, error, "metadata")) return luaL_error(L, "room.set_metadata: %s", error.c_str());
  std::string encoded = w.take();
  if (encoded.size() > rooms::RoomManager::kMaxMetadataBytes)
    return luaL_error(L, "room.set_metadata: metadata of %d bytes is over the limit of %d bytes",
                      static_cast<int>(encoded.size()), static_cast<int>(rooms::RoomManager::kMaxMetadataBytes));
  rooms::Value value;
  if (!rooms::decode(rooms::Codec::msgpack, encoded, value, error))
    return luaL_error(L, "room.set_metadata: %s", error.c_str());
  room.set_metadata(std::move(value));
  return guard.returns(0);
}

int room_close(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  size_t n = 0;
  const char* reason = luaL_optlstring(L, 1, "", &n);
  room.request_close(std::string(reason, std::min(n, kMaxCloseReasonBytes)));
  return guard.returns(0);
}

int room_set_tick_rate(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  int is_integer = 0;
  lua_Integer hz = lua_tointegerx(L, 1, &is_integer);
  if (!is_integer || hz < lua_Integer{kMinTickRateHz} || hz > lua_Integer{kMaxTickRateHz})
    return luaL_error(L, "room.set_tick_rate: rate must be an integer in %d..%d Hz (got %s)",
                      static_cast<int>(kMinTickRateHz), static_cast<int>(kMaxTickRateHz), luaL_tolstring(L, 1, nullptr));
  room.set_tick_rate_hz(static_cast<uint32_t>(hz));
  return guard.returns(0);
}

const luaL_Reg room_functions[] = {
    {"clients", guarded<room_clients>},
    {"send", guarded<room_send>},
    {"broadcast", guarded<room_broadcast>},
    {"send_bytes", guarded<room_send_bytes>},
    {"broadcast_bytes", guarded<room_broadcast_bytes>},
    {"lock", guarded<room_lock>},
    {"unlock", guarded<room_unlock>},
    {"set_metadata", guarded<room_set_metadata>},
    {"close", guarded<room_close>},
    {"set_tick_rate", guarded<room_set_tick_rate>},
    {nullptr, nullptr},
};

}  // namespace

void open_room(lua_State* L) {
  rooms::Room* room = ScriptHost::from(L).host().room();
  lua_newtable(L);  // [room]
  luaL_setfuncs(L, room_functions, 0);
  if (room) {
    lua_pushinteger(L, static_cast<lua_Integer>(room->id()));
    lua_setfield(L, -2, "id");
    lua_pushlstring(L, room->type().name.data(), room->type().name.size());
    lua_setfield(L, -2, "type");
  }
  open_room_state(L, -1);
  lua_setglobal(L, "room");
}

}  // namespace nshost
