// rooms.* in the client role (docs/rooms.md "Client"): join_or_create, join,
// create and list send one catalog request each (seed 003
// room.join_or_create / room.list) and call the script's callback exactly
// once, later, with the answer (runtime/rooms/client_rooms.hpp).
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "bindings/rooms_common.hpp"
#include "runtime/rooms/codec.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

using rooms::ClientRooms;

// Options at `arg`: nil (absent) or a table; raises otherwise.
bool check_options(lua_State* L, int arg) {
  luaL_argexpected(L, lua_isnoneornil(L, arg) || lua_istable(L, arg), arg, "table or nil");
  return lua_istable(L, arg);
}

// Writes the value at `index` into `w` under `path`, or raises
// "<fname>: <path>: <why>" (a cycle, a function, too deep).
void write_lua_value(lua_State* L, rooms::Writer& w, int index, const char* fname, const char* path) {
  std::string error;
  if (!w.lua_value(L, index, error, path)) luaL_error(L, "%s: %s: %s", fname, path, error.c_str());
}

// One request: checks the gate, encodes {t = type, id, p = payload} with the
// session's codec (write_payload writes the payload map and may raise),
// keeps the callback at `cb_arg` and sends it. true, or nil, message, code.
template <class Payload>
int request(lua_State* L, const char* type, ClientRooms::Kind kind, int cb_arg, Payload&& write_payload) {
  luaL_checktype(L, cb_arg, LUA_TFUNCTION);
  ClientRooms& rooms = client_rooms(L);
  ClientRooms::Gate gate = rooms.gate();
  if (gate == ClientRooms::Gate::busy)
    return push_failure(L, "too many requests (" + std::to_string(ClientRooms::kMaxPending) + " outstanding)", "EBUSY");
  if (gate == ClientRooms::Gate::no_rooms) return push_failure(L, "server has no rooms", "ENOTSUP");
  // Encoded even when not connected, so a bad value raises the same way.
  rooms::Writer w(rooms.codec());
  uint32_t id = gate == ClientRooms::Gate::ok ? rooms.next_request_id() : 1;
  rooms::begin_message(w, type, id);
  write_payload(w);
  std::string bytes = w.take();
  if (bytes.size() > rooms.max_message_bytes()) return push_too_large(L, bytes.size(), rooms.max_message_bytes());
  lua_pushvalue(L, cb_arg);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (gate == ClientRooms::Gate::not_connected) {
    rooms.fail_later(kind, ref);
    lua_pushboolean(L, 1);
    return 1;
  }
  std::string error;
  if (!rooms.send_request(id, kind, bytes, ref, error)) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return push_coded_failure(L, error, "EIO");
  }
  lua_pushboolean(L, 1);
  return 1;
}

// rooms.join_or_create(type, options, cb), rooms.create(type, options, cb).
int join_by_type(lua_State* L, const char* fname, bool create) {
  StackGuard guard(L);
  std::string_view type = check_bytes(L, 1);
  bool has_options = check_options(L, 2);
  return guard.returns(request(L, "room.join_or_create", ClientRooms::Kind::join, 3, [&](rooms::Writer& w) {
    w.begin_map(1 + (has_options ? 1 : 0) + (create ? 1 : 0));
    w.key("room_type");
    w.string(type);
    if (has_options) {
      w.key("options");
      write_lua_value(L, w, 2, fname, "options");
    }
    if (create) {
      w.key("create");
      w.boolean(true);
    }
  }));
}

int rooms_join_or_create(lua_State* L) { return join_by_type(L, "rooms.join_or_create", false); }
int rooms_create(lua_State* L) { return join_by_type(L, "rooms.create", true); }

// rooms.join(room_id, options, cb)
int rooms_join(lua_State* L) {
  StackGuard guard(L);
  lua_Integer room = luaL_checkinteger(L, 1);
  luaL_argcheck(L, room >= 1, 1, "a room id is a positive integer");
  bool has_options = check_options(L, 2);
  return guard.returns(request(L, "room.join_or_create", ClientRooms::Kind::join, 3, [&](rooms::Writer& w) {
    w.begin_map(1 + (has_options ? 1 : 0));
    w.key("room");
    w.integer(room);
    if (has_options) {
      w.key("options");
      write_lua_value(L, w, 2, "rooms.join", "options");
    }
  }));
}

// rooms.list(type_or_nil, cb)
int rooms_list(lua_State* L) {
  StackGuard guard(L);
  luaL_argexpected(L, lua_isnoneornil(L, 1) || lua_type(L, 1) == LUA_TSTRING, 1, "string or nil");
  bool has_type = !lua_isnoneornil(L, 1);
  std::string_view type = has_type ? check_bytes(L, 1) : std::string_view();
  return guard.returns(request(L, "room.list", ClientRooms::Kind::list, 2, [&](rooms::Writer& w) {
    w.begin_map(has_type ? 1 : 0);
    if (has_type) {
      w.key("room_type");
      w.string(type);
    }
  }));
}

// rooms.session_id(): the welcome's session id (the server's c.id for this
// client), or nil when not joined or the server sent none.
int rooms_session_id(lua_State* L) {
  StackGuard guard(L);
  ClientRooms& rooms = client_rooms(L);
  if (rooms.link_up() && rooms.session_id() != 0) lua_pushinteger(L, static_cast<lua_Integer>(rooms.session_id()));
  else lua_pushnil(L);
  return guard.returns(1);
}

// rooms.codec(): "msgpack" or "json" (the codec the server picked), or nil.
int rooms_codec(lua_State* L) {
  StackGuard guard(L);
  ClientRooms& rooms = client_rooms(L);
  if (rooms.link_up() && rooms.has_codec()) lua_pushstring(L, rooms::codec_name(rooms.codec()));
  else lua_pushnil(L);
  return guard.returns(1);
}

const luaL_Reg rooms_functions[] = {
    {"join_or_create", guarded<rooms_join_or_create>},
    {"join", guarded<rooms_join>},
    {"create", guarded<rooms_create>},
    {"list", guarded<rooms_list>},
    {"session_id", guarded<rooms_session_id>},
    {"codec", guarded<rooms_codec>},
    {nullptr, nullptr},
};

}  // namespace

void open_rooms_client(lua_State* L) {
  luaL_newlib(L, rooms_functions);
  lua_setglobal(L, "rooms");
}

}  // namespace nshost
