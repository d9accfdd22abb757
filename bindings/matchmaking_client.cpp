// matchmaking.* in the client role (docs/matchmaking.md): enqueue and
// dequeue send seed 003's matchmaking.enqueue / matchmaking.dequeue; the
// server's answer goes to the optional callback (a refusal without one is
// logged), and the match itself arrives as client.match_found
// (runtime/rooms/client_matchmaking.cpp).
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "bindings/rooms_common.hpp"
#include "runtime/rooms/codec.hpp"

namespace nshost {
namespace {

using rooms::ClientRooms;

// Sends one request whose payload `write_payload` writes; the callback at
// `cb_arg` (a function or nil) gets the answer. true, or nil, message, code
// at once (the callback is then never called).
template <class Payload>
int request(lua_State* L, const char* type, int cb_arg, Payload&& write_payload) {
  luaL_argexpected(L, lua_isnoneornil(L, cb_arg) || lua_isfunction(L, cb_arg), cb_arg, "function or nil");
  ClientRooms& rooms = client_rooms(L);
  ClientRooms::Gate gate = rooms.gate();
  // Encoded first, so a bad value raises whatever the link's state.
  rooms::Writer w(rooms.codec());
  uint32_t id = gate == ClientRooms::Gate::ok ? rooms.next_request_id() : 1;
  rooms::begin_message(w, type, id);
  write_payload(w);
  if (gate == ClientRooms::Gate::busy)
    return push_failure(L, "too many requests (" + std::to_string(ClientRooms::kMaxPending) + " outstanding)", "EBUSY");
  if (gate == ClientRooms::Gate::not_connected) return push_failure(L, "not connected", "ENOTCONN");
  if (gate == ClientRooms::Gate::no_rooms) return push_failure(L, "server has no rooms", "ENOTSUP");
  std::string bytes = w.take();
  if (bytes.size() > rooms.max_message_bytes()) return push_too_large(L, bytes.size(), rooms.max_message_bytes());
  int ref = LUA_NOREF;
  if (lua_isfunction(L, cb_arg)) {
    lua_pushvalue(L, cb_arg);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  std::string error;
  if (!rooms.send_request(id, ClientRooms::Kind::match, bytes, ref, error)) {
    if (ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return push_coded_failure(L, error, "EIO");
  }
  lua_pushboolean(L, 1);
  return 1;
}

// matchmaking.enqueue(room_type, size [, properties [, cb]])
int matchmaking_enqueue(lua_State* L) {
  StackGuard guard(L);
  std::string_view type = check_bytes(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  luaL_argcheck(L, size >= 1, 2, "size is a positive integer");
  luaL_argexpected(L, lua_isnoneornil(L, 3) || lua_istable(L, 3), 3, "table or nil");
  bool has_properties = lua_istable(L, 3);
  return guard.returns(request(L, "matchmaking.enqueue", 4, [&](rooms::Writer& w) {
    w.begin_map(has_properties ? 3 : 2);
    w.key("room_type");
    w.string(type);
    w.key("size");
    w.integer(size);
    if (has_properties) {
      w.key("properties");
      std::string error;
      if (!w.lua_value(L, 3, error, "properties"))
        luaL_error(L, "matchmaking.enqueue: properties: %s", error.c_str());
    }
  }));
}

// matchmaking.dequeue([room_type [, cb]])
int matchmaking_dequeue(lua_State* L) {
  StackGuard guard(L);
  luaL_argexpected(L, lua_isnoneornil(L, 1) || lua_type(L, 1) == LUA_TSTRING, 1, "string or nil");
  bool has_type = !lua_isnoneornil(L, 1);
  std::string_view type = has_type ? check_bytes(L, 1) : std::string_view();
  return guard.returns(request(L, "matchmaking.dequeue", 2, [&](rooms::Writer& w) {
    w.begin_map(has_type ? 1 : 0);
    if (has_type) {
      w.key("room_type");
      w.string(type);
    }
  }));
}

const luaL_Reg matchmaking_functions[] = {
    {"enqueue", guarded<matchmaking_enqueue>},
    {"dequeue", guarded<matchmaking_dequeue>},
    {nullptr, nullptr},
};

}  // namespace

void open_matchmaking_client(lua_State* L) {
  luaL_newlib(L, matchmaking_functions);
  lua_setglobal(L, "matchmaking");
}

}  // namespace nshost
