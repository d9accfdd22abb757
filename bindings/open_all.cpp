// The Lua surface of each role's state, handed to ScriptHost by the role.
// What keeps the host's limits is not here: ScriptHost itself installs the
// bounded string patterns and its coroutine.resume/wrap and xpcall in every
// state (runtime/script/script_host.hpp), so no surface can leave them out.
#include "bindings/bindings.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

void open_common_modules(lua_State* L) {
  open_log(L);
  open_sys(L);
  open_tick(L);
  open_client_handle(L);
  open_net(L);
  open_json(L);
  open_timer(L);
}

}  // namespace

void open_server_modules(lua_State* L) {
  open_common_modules(L);
  open_server(L);
  open_shard_server(L);
  open_rooms_server(L);
  open_matchmaking_server(L);
}

void open_client_modules(lua_State* L) {
  open_common_modules(L);
  open_client(L);
  open_tick_client(L);
  open_shard_client(L);
  open_room_handle(L);
  open_rooms_client(L);
  open_term(L);
  open_matchmaking_client(L);
}

void open_room_modules(lua_State* L) {
  open_log(L);
  open_sys(L);
  // A room cannot stop the server.
  lua_getglobal(L, "sys");
  lua_pushnil(L);
  lua_setfield(L, -2, "quit");
  lua_pop(L, 1);
  open_tick(L);
  open_json(L);
  open_room_client(L);
  open_room(L);
  // Handlers live on `room`; the role tables mean nothing here.
  lua_pushnil(L);
  lua_setglobal(L, "server");
  lua_pushnil(L);
  lua_setglobal(L, "client");
}

}  // namespace nshost
