// room.view(c): the client's view as a set of entity keys (docs/state.md
// "Server"). The handle is a full userdata holding the session id; the set
// itself lives in the room's state sync (runtime/rooms/room_state.hpp), so
// every handle of one client is the same set. Keys are strings or integers
// (an integral float is the integer); another key raises. A client that left
// the room, or whose view became a function (room.set_view), is a failure:
// nil, message, "ENOTCONN" / "EINVAL".
#include <cmath>
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

constexpr const char* kRoomViewType = "nshost.room_view";

struct RoomViewHandle {
  uint64_t session_id = 0;
};

rooms::Room& room_of(lua_State* L) {
  rooms::Room* room = ScriptHost::from(L).host().room();
  if (!room) luaL_error(L, "only a room's state has this function");
  return *room;
}

// A view's id set lives outside the room's Lua state, so it has budgets of
// its own: keys per view and bytes per key.
constexpr size_t kMaxViewKeys = 65536;
constexpr size_t kMaxViewKeyBytes = 1024;

state::Key check_key(lua_State* L, int arg) {
  if (lua_type(L, arg) == LUA_TSTRING) {
    size_t n = 0;
    const char* s = lua_tolstring(L, arg, &n);
    if (n > kMaxViewKeyBytes)
      luaL_argerror(L, arg, ("an entity key is at most " + std::to_string(kMaxViewKeyBytes) + " bytes").c_str());
    return state::Key::of(std::string_view(s, n));
  }
  if (lua_type(L, arg) == LUA_TNUMBER) {
    if (lua_isinteger(L, arg)) return state::Key::of(static_cast<int64_t>(lua_tointeger(L, arg)));
    double d = lua_tonumber(L, arg);
    if (d >= -9.2233720368547758e18 && d < 9.2233720368547758e18 && std::floor(d) == d)
      return state::Key::of(static_cast<int64_t>(d));
  }
  luaL_argerror(L, arg, "an entity key is a string or an integer");
  return {};
}

// The handle's id set, or pushes the failure and returns null.
std::unordered_set<state::Key, state::KeyHash>* ids_or_failure(lua_State* L, int& pushed) {
  auto* h = static_cast<RoomViewHandle*>(luaL_checkudata(L, 1, kRoomViewType));
  rooms::Room& room = room_of(L);
  rooms::RoomState& sync = room.state_sync();
  if (!sync.has_client(h->session_id)) {
    pushed = push_failure(L, "client " + std::to_string(h->session_id) + " is not in room " + std::to_string(room.id()),
                          "ENOTCONN");
    return nullptr;
  }
  auto* ids = sync.find_view_ids(h->session_id);
  if (!ids) pushed = push_failure(L, "the client's view is a function now (room.set_view)", "EINVAL");
  return ids;
}

// v:add(key), v:remove(key), v:clear() -> true
int view_add(lua_State* L) {
  StackGuard guard(L);
  state::Key key = check_key(L, 2);
  int pushed = 0;
  auto* ids = ids_or_failure(L, pushed);
  if (!ids) return guard.returns(pushed);
  if (ids->size() >= kMaxViewKeys && !ids->count(key))
    return guard.returns(
        push_failure(L, "the view holds " + std::to_string(kMaxViewKeys) + " keys, the most it may", "ENOBUFS"));
  ids->insert(std::move(key));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

int view_remove(lua_State* L) {
  StackGuard guard(L);
  state::Key key = check_key(L, 2);
  int pushed = 0;
  auto* ids = ids_or_failure(L, pushed);
  if (!ids) return guard.returns(pushed);
  ids->erase(key);
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

int view_clear(lua_State* L) {
  StackGuard guard(L);
  int pushed = 0;
  auto* ids = ids_or_failure(L, pushed);
  if (!ids) return guard.returns(pushed);
  ids->clear();
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

// v:has(key) -> boolean; v:size() -> integer (false / 0 once the client left).
int view_has(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<RoomViewHandle*>(luaL_checkudata(L, 1, kRoomViewType));
  state::Key key = check_key(L, 2);
  auto* ids = room_of(L).state_sync().find_view_ids(h->session_id);
  lua_pushboolean(L, ids && ids->count(key) != 0);
  return guard.returns(1);
}

int view_size(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<RoomViewHandle*>(luaL_checkudata(L, 1, kRoomViewType));
  auto* ids = room_of(L).state_sync().find_view_ids(h->session_id);
  lua_pushinteger(L, ids ? static_cast<lua_Integer>(ids->size()) : 0);
  return guard.returns(1);
}

int view_tostring(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<RoomViewHandle*>(luaL_checkudata(L, 1, kRoomViewType));
  lua_pushfstring(L, "room_view(client=%I)", static_cast<lua_Integer>(h->session_id));
  return guard.returns(1);
}

// room.view(c) -> handle | nil, message, "ENOTCONN". The first call makes
// the client's view an (empty) id set.
int room_view(lua_State* L) {
  StackGuard guard(L);
  rooms::Room& room = room_of(L);
  uint64_t session = check_room_client(L, 1);
  if (!room.state_sync().view_ids(L, session))
    return guard.returns(push_failure(L, "client " + std::to_string(session) + " is not in room " +
                                             std::to_string(room.id()), "ENOTCONN"));
  auto* h = static_cast<RoomViewHandle*>(lua_newuserdatauv(L, sizeof(RoomViewHandle), 0));
  h->session_id = session;
  luaL_setmetatable(L, kRoomViewType);
  return guard.returns(1);
}

const luaL_Reg view_methods[] = {
    {"add", guarded<view_add>},
    {"remove", guarded<view_remove>},
    {"has", guarded<view_has>},
    {"clear", guarded<view_clear>},
    {"size", guarded<view_size>},
    {nullptr, nullptr},
};

}  // namespace

void open_room_view(lua_State* L, int room_table) {
  room_table = lua_absindex(L, room_table);
  luaL_newmetatable(L, kRoomViewType);  // [mt]
  lua_newtable(L);
  luaL_setfuncs(L, view_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, guarded<view_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "room_view");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  lua_pushcfunction(L, guarded<room_view>);
  lua_setfield(L, room_table, "view");
}

}  // namespace nshost
