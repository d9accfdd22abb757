// The client's room handle (nshost.room, docs/rooms.md "Client"): r.id,
// r.type, r:send, r:send_bytes, r:leave; and the room's mirrored state
// (docs/state.md "Client"): r.state, r:on_change, r:off_change, r:state_stats. The userdata itself (RoomHandle,
// push_room_handle) belongs to runtime/rooms/client_rooms.hpp; a handle
// whose membership ended answers nil, "room N is gone", "ENOROOM".
#include <cstring>
#include <iterator>
#include <utility>
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "bindings/rooms_common.hpp"
#include "runtime/rooms/codec.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

using rooms::ClientRooms;
using rooms::RoomHandle;

RoomHandle& check_room(lua_State* L, int arg) {
  return *static_cast<RoomHandle*>(luaL_checkudata(L, arg, rooms::kRoomHandleType));
}

int push_gone(lua_State* L, const RoomHandle& h) {
  return push_failure(L, "room " + std::to_string(h.room) + " is gone", "ENOROOM");
}

// r:send(type, data [, channel]) and r:send_bytes(type, bytes [, channel]):
// seed 003 room.message / room.message.bytes.
int send_message(lua_State* L, bool bytes) {
  if (lua_gettop(L) < 3) lua_settop(L, 3);  // data may be left out (nil)
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  std::string_view type = check_bytes(L, 2);
  std::string_view raw = bytes ? check_bytes(L, 3) : std::string_view();
  Channel channel = check_channel(L, 4);
  ClientRooms& rooms = client_rooms(L);
  rooms::Writer w(rooms.codec());
  rooms::begin_message(w, bytes ? "room.message.bytes" : "room.message");
  w.begin_map(3);
  w.key("room");
  w.integer(h.room);
  w.key("type");
  w.string(type);
  if (bytes) {
    w.key(w.codec() == rooms::Codec::json ? "data_b64" : "data");
    w.bytes(raw);
  } else {
    w.key("data");
    std::string error;
    if (!w.lua_value(L, 3, error, "data")) return luaL_error(L, "r:send: data: %s", error.c_str());
  }
  if (!rooms.live(h)) return guard.returns(push_gone(L, h));
  if (!rooms.link_up()) return guard.returns(push_failure(L, "not connected", "ENOTCONN"));
  std::string message = w.take();
  if (message.size() > rooms.max_message_bytes())
    return guard.returns(push_too_large(L, message.size(), rooms.max_message_bytes()));
  std::string error;
  if (!rooms.send_message(message, channel == Channel::reliable, error))
    return guard.returns(push_coded_failure(L, error, "EIO"));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

int room_send(lua_State* L) { return send_message(L, false); }
int room_send_bytes(lua_State* L) { return send_message(L, true); }

// r:leave([cb]): seed 003 room.leave. The handle is stale at once and no
// client.room_left follows; cb(true) or cb(nil, message, code) when the
// server answers.
int room_leave(lua_State* L) {
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  bool has_cb = !lua_isnoneornil(L, 2);
  if (has_cb) luaL_checktype(L, 2, LUA_TFUNCTION);
  ClientRooms& rooms = client_rooms(L);
  if (!rooms.live(h)) return guard.returns(push_gone(L, h));
  if (!rooms.link_up()) return guard.returns(push_failure(L, "not connected", "ENOTCONN"));
  if (has_cb && rooms.gate() == ClientRooms::Gate::busy)
    return guard.returns(
        push_failure(L, "too many requests (" + std::to_string(ClientRooms::kMaxPending) + " outstanding)", "EBUSY"));
  rooms::Writer w(rooms.codec());
  // Without a callback nothing waits for the answer: no id asks for none.
  uint32_t id = has_cb ? rooms.next_request_id() : 0;
  rooms::begin_message(w, "room.leave", id);
  w.begin_map(1);
  w.key("room");
  w.integer(h.room);
  std::string message = w.take();
  std::string error;
  if (has_cb) {
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!rooms.send_request(id, ClientRooms::Kind::leave, message, ref, error)) {
      luaL_unref(L, LUA_REGISTRYINDEX, ref);
      return guard.returns(push_coded_failure(L, error, "EIO"));
    }
  } else if (!rooms.send_message(message, true, error)) {
    return guard.returns(push_coded_failure(L, error, "EIO"));
  }
  rooms.forget_room(h.room);
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

// r:on_change(pattern, fn) -> id: fn(key, value, old) after each applied
// frame, for every changed path matching `pattern`.
int room_on_change(lua_State* L) {
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  ClientRooms& rooms = client_rooms(L);
  if (!rooms.live(h)) return guard.returns(push_gone(L, h));
  uint64_t id = rooms.states().add_listener(L, h.room, 2, 3);
  if (id == 0)
    return guard.returns(push_failure(
        L, "too many listeners (" + std::to_string(rooms::ClientStates::kMaxListeners) + " per room)", "EBUSY"));
  lua_pushinteger(L, static_cast<lua_Integer>(id));
  return guard.returns(1);
}

// r:off_change(id) -> true, or false when there is no such listener.
int room_off_change(lua_State* L) {
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  ClientRooms& rooms = client_rooms(L);
  bool removed = rooms.live(h) && id > 0 && rooms.states().remove_listener(L, h.room, static_cast<uint64_t>(id));
  lua_pushboolean(L, removed);
  return guard.returns(1);
}

// r:state_stats() -> {patches=, snapshots=, resyncs=, checksum_mismatches=,
// gaps=, decode_errors=, ignored=, acks=, seq=, bytes=}.
int room_state_stats(lua_State* L) {
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  ClientRooms& rooms = client_rooms(L);
  if (!rooms.live(h)) return guard.returns(push_gone(L, h));
  rooms::ClientStates::Stats s = rooms.states().stats(h.room);
  const std::pair<const char*, uint64_t> fields[] = {
      {"patches", s.patches}, {"snapshots", s.snapshots}, {"resyncs", s.resyncs},
      {"checksum_mismatches", s.checksum_mismatches}, {"gaps", s.gaps}, {"decode_errors", s.decode_errors},
      {"ignored", s.ignored}, {"acks", s.acks}, {"seq", s.seq}, {"bytes", s.bytes}};
  lua_createtable(L, 0, static_cast<int>(std::size(fields)));
  for (const auto& [name, value] : fields) {
    lua_pushinteger(L, static_cast<lua_Integer>(value));
    lua_setfield(L, -2, name);
  }
  return guard.returns(1);
}

// r.id, r.type (both still answer on a stale handle), r.state (nil on a
// stale handle and before the first snapshot), then the methods.
int room_index(lua_State* L) {
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  size_t n = 0;
  const char* key = lua_tolstring(L, 2, &n);
  if (key && n == 2 && std::memcmp(key, "id", 2) == 0) {
    lua_pushinteger(L, static_cast<lua_Integer>(h.room));
  } else if (key && n == 4 && std::memcmp(key, "type", 4) == 0) {
    lua_getiuservalue(L, 1, 1);
  } else if (key && n == 5 && std::memcmp(key, "state", 5) == 0) {
    rooms::ClientRooms* rooms = client_api(L).rooms();
    if (rooms && rooms->live(h)) rooms->states().push_state(L, h.room);
    else lua_pushnil(L);
  } else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return guard.returns(1);
}

int room_tostring(lua_State* L) {
  StackGuard guard(L);
  RoomHandle& h = check_room(L, 1);
  lua_getiuservalue(L, 1, 1);  // [type]
  const char* type = lua_tostring(L, -1);
  rooms::ClientRooms* rooms = client_api(L).rooms();
  bool gone = !rooms || !rooms->live(h);
  lua_pushfstring(L, "room(id=%I, type=%s%s)", static_cast<lua_Integer>(h.room), type ? type : "?",
                  gone ? ", gone" : "");
  lua_remove(L, -2);
  return guard.returns(1);
}

const luaL_Reg room_methods[] = {
    {"send", guarded<room_send>},
    {"send_bytes", guarded<room_send_bytes>},
    {"leave", guarded<room_leave>},
    {"on_change", guarded<room_on_change>},
    {"off_change", guarded<room_off_change>},
    {"state_stats", guarded<room_state_stats>},
    {nullptr, nullptr},
};

}  // namespace

void open_room_handle(lua_State* L) {
  luaL_newmetatable(L, rooms::kRoomHandleType);  // [mt]
  luaL_newlib(L, room_methods);                  // [mt, methods]
  lua_pushcclosure(L, guarded<room_index>, 1);   // [mt, __index]
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, guarded<room_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "room");
  lua_setfield(L, -2, "__metatable");  // getmetatable(r) hides the real one
  lua_pop(L, 1);
}

}  // namespace nshost
