// The client's side of matchmaking (docs/matchmaking.md): match.found seats
// this client in a room without a request of its own, so it makes the
// room's membership and handle here (as a join's answer does) and calls
// client.match_found({room, room_type, size, participants}); match.failed
// calls client.match_failed(room_type, reason).
#include "runtime/core/log.hpp"
#include "runtime/rooms/client_rooms.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost::rooms {

void ClientRooms::on_match_found(const Message& message) {
  const Value& p = message.payload;
  std::optional<int64_t> room = p.integer_at("room");
  std::optional<std::string_view> type = p.string_at("room_type");
  const Value* participants = p.find("participants");
  if (!room || *room <= 0 || !type || (participants && participants->kind != Value::Kind::array)) {
    bad_packet("a match.found without room or room_type");
    return;
  }
  int64_t size = p.integer_at("size").value_or(participants ? static_cast<int64_t>(participants->items.size()) : 0);
  std::string room_type(*type);
  ScriptHost* script = owner_.rooms_script();
  if (!script) return;
  int handle = LUA_NOREF;
  if (auto existing = rooms_.find(*room); existing != rooms_.end()) handle = existing->second.handle_ref;
  if (handle == LUA_NOREF) {
    uint64_t generation = ++last_generation_;
    // Known before the handler runs (it may send or leave at once); made in
    // a protected call, as allocating may run a finalizer.
    script->protect("creating a room handle", [&](lua_State* L) {
      push_room_handle(L, *room, generation, room_type);
      handle = luaL_ref(L, LUA_REGISTRYINDEX);
      rooms_[*room] = Room{room_type, generation, handle};
      return 0;
    });
    if (handle == LUA_NOREF) return;
  }
  script->invoke("match_found", [&](lua_State* L) {
    lua_createtable(L, 0, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, handle);
    lua_setfield(L, -2, "room");
    lua_pushlstring(L, room_type.data(), room_type.size());
    lua_setfield(L, -2, "room_type");
    lua_pushinteger(L, size);
    lua_setfield(L, -2, "size");
    if (participants) push_value(L, *participants);
    else lua_newtable(L);
    lua_setfield(L, -2, "participants");
    return 1;
  });
}

void ClientRooms::on_match_failed(const Message& message) {
  std::string room_type(message.payload.string_at("room_type").value_or(""));
  std::string reason(message.payload.string_at("reason").value_or("failed"));
  log_write(LogLevel::info, log_tag_, "matchmaking: match for '" + room_type.substr(0, 128) + "' failed: " + reason.substr(0, 200));
  if (ScriptHost* script = owner_.rooms_script())
    script->invoke("match_failed", [&](lua_State* L) {
      lua_pushlstring(L, room_type.data(), room_type.size());
      lua_pushlstring(L, reason.data(), reason.size());
      return 2;
    });
}

}  // namespace nshost::rooms
