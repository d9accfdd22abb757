// room.state and the state-sync builtins of a room's state (docs/state.md
// "Server"): room.define_state, room.set_patch_rate, room.set_view,
// room.state_stats. room.view's id-set handle is in bindings/room_view.cpp.
// Misuse raises; a client that is not in the room is a failure
// (nil, message, "ENOTCONN").
#include <memory>
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/script/script_host.hpp"
#include "runtime/state/state_codec.hpp"

namespace nshost {
namespace {

rooms::Room& room_of(lua_State* L) {
  rooms::Room* room = ScriptHost::from(L).host().room();
  if (!room) luaL_error(L, "only a room's state has this function");
  return *room;
}

// The type at `index` of a schema table: a type name ("f32", "any", ...),
// { map = T }, or a table of fields (a struct). Raises naming `path`.
std::unique_ptr<state::Type> parse_type(lua_State* L, int index, const std::string& path, uint32_t depth) {
  index = lua_absindex(L, index);
  if (depth > state::kMaxDepth + 1) luaL_error(L, "room.define_state: %s: nested deeper than %d", path.c_str(),
                                                static_cast<int>(state::kMaxDepth));
  luaL_checkstack(L, 4, "room.define_state");
  auto type = std::make_unique<state::Type>();
  if (lua_type(L, index) == LUA_TSTRING) {
    size_t n = 0;
    const char* s = lua_tolstring(L, index, &n);
    auto kind = state::scalar_kind_from_name(std::string_view(s, n));
    if (!kind) luaL_error(L, "room.define_state: %s: unknown type '%s'", path.c_str(), s);
    type->kind = *kind;
    return type;
  }
  if (lua_type(L, index) != LUA_TTABLE)
    luaL_error(L, "room.define_state: %s: a type is a name or a table, not a %s", path.c_str(),
               luaL_typename(L, index));
  // { map = T } and nothing else is a map; a struct may have a field "map".
  size_t keys = 0;
  lua_pushnil(L);
  while (keys < 2 && lua_next(L, index) != 0) {
    lua_pop(L, 1);
    ++keys;
  }
  if (keys == 2) lua_pop(L, 1);
  lua_pushliteral(L, "map");
  lua_rawget(L, index);
  if (keys == 1 && !lua_isnil(L, -1)) {
    type->kind = state::Type::Kind::map;
    type->value = parse_type(L, -1, path + ".map", depth + 1);
    lua_pop(L, 1);
    return type;
  }
  lua_pop(L, 1);
  type->kind = state::Type::Kind::structure;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "room.define_state: %s: field names are strings (got a %s)", path.c_str(), luaL_typename(L, -2));
    size_t n = 0;
    const char* name = lua_tolstring(L, -2, &n);
    if (type->fields.size() >= state::kMaxStructFields)
      luaL_error(L, "room.define_state: %s: more than %d fields", path.c_str(), static_cast<int>(state::kMaxStructFields));
    std::string field(name, n);
    auto child = parse_type(L, -1, path + "." + field, depth + 1);
    type->fields.emplace_back(std::move(field), std::move(child));
    lua_pop(L, 1);
  }
  return type;
}

// room.define_state(schema)
int room_define_state(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (room.state_sync().frozen())
    return luaL_error(L, "room.define_state: the schema is fixed once a client joined (call it in room.create)");
  auto root = parse_type(L, 1, "schema", 0);
  std::string error;
  if (!room.state_sync().define(std::move(root), error)) return luaL_error(L, "room.define_state: %s", error.c_str());
  return guard.returns(0);
}

// room.set_patch_rate(hz): 1..the room's tick rate.
int room_set_patch_rate(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  int is_integer = 0;
  lua_Integer hz = lua_tointegerx(L, 1, &is_integer);
  const lua_Integer max = static_cast<lua_Integer>(room.tick_rate_hz());
  if (!is_integer || hz < 1 || hz > max)
    return luaL_error(L, "room.set_patch_rate: rate must be an integer in 1..%d Hz (the room's tick rate; got %s)",
                      static_cast<int>(max), luaL_tolstring(L, 1, nullptr));
  room.state_sync().set_patch_rate_hz(hz == max ? 0 : static_cast<uint32_t>(hz));
  return guard.returns(0);
}

// room.set_view(c, fn | nil) -> true | nil, message, "ENOTCONN"
int room_set_view(lua_State* L) {
  lua_settop(L, 2);
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  uint64_t session = check_room_client(L, 1);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!room.state_sync().has_client(session))
    return guard.returns(push_failure(L, "client " + std::to_string(session) + " is not in room " +
                                             std::to_string(room.id()), "ENOTCONN"));
  int ref = LUA_NOREF;
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  room.state_sync().set_view_function(L, session, ref);
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

// room.state_stats() -> {patches, snapshots, resyncs, bytes, ...}
int room_state_stats(lua_State* L) {
  StackGuard guard(L);
  const rooms::RoomState::Stats& s = room_of(L).state_sync().stats();
  lua_createtable(L, 0, 8);
  auto field = [&](const char* name, uint64_t value) {
    lua_pushinteger(L, static_cast<lua_Integer>(value));
    lua_setfield(L, -2, name);
  };
  field("patches", s.patches);
  field("snapshots", s.snapshots);
  field("resyncs", s.resyncs);
  field("resyncs_ignored", s.resyncs_ignored);
  field("bytes", s.bytes);
  field("errors", s.errors);
  field("stalled", s.stalled);
  field("divergences", s.divergences);
  return guard.returns(1);
}

const luaL_Reg state_functions[] = {
    {"define_state", guarded<room_define_state>},
    {"set_patch_rate", guarded<room_set_patch_rate>},
    {"set_view", guarded<room_set_view>},
    {"state_stats", guarded<room_state_stats>},
    {nullptr, nullptr},
};

}  // namespace

void open_room_state(lua_State* L, int room_table) {
  room_table = lua_absindex(L, room_table);
  lua_pushvalue(L, room_table);
  luaL_setfuncs(L, state_functions, 0);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_setfield(L, room_table, "state");
  open_room_view(L, room_table);
  if (rooms::Room* room = ScriptHost::from(L).host().room()) {
    lua_pushvalue(L, room_table);
    room->state_sync().set_room_table_ref(luaL_ref(L, LUA_REGISTRYINDEX));
  }
}

}  // namespace nshost
