#pragma once
// The Lua surface of nshost: one open_<module> per file in bindings/. Each
// expects the state to belong to a ScriptHost (see runtime/script/script_host.hpp).
// bindings/open_all.cpp puts them together per role (open_server_modules,
// open_client_modules, declared in runtime/script/script_host.hpp).
#include <lua.hpp>

#include "runtime/core/slot_table.hpp"

namespace nshost {

void open_sys(lua_State* L);            // sys.*             (bindings/sys.cpp)
void open_log(lua_State* L);            // log.*             (bindings/log.cpp)
void open_tick(lua_State* L);           // tick_rate, set_tick_rate, max_clients (bindings/tick.cpp)
void open_tick_client(lua_State* L);    // server_tick_rate, server_tick: client only (bindings/tick.cpp)
void open_client_handle(lua_State* L);  // the client handle's metatable (bindings/client_handle.cpp)
void open_server(lua_State* L);         // slot, connected, send, broadcast, kick (bindings/server.cpp)
void open_client(lua_State* L);         // send on the client side (bindings/client.cpp)
void open_shard_server(lua_State* L);   // redirect (bindings/shard.cpp)
void open_shard_client(lua_State* L);   // hop (bindings/shard.cpp)
void open_net(lua_State* L);            // net.* TCP/HTTP/WebSocket, both roles (bindings/net.cpp)
void open_json(lua_State* L);           // json.encode/decode (bindings/json.cpp)
void open_timer(lua_State* L);          // timer.after/every (bindings/timer.cpp)
// term.* (bindings/term.cpp): opens nothing unless the state is a client's,
// not sandboxed and not a bot.
void open_term(lua_State* L);
// Rooms (docs/rooms.md).
void open_rooms_server(lua_State* L);   // rooms.define in the server script (bindings/rooms_server.cpp)
void open_room(lua_State* L);           // the room table of a room's state (bindings/room.cpp)
// room.state and its builtins on the room table at `room_table`
// (bindings/room_state.cpp), with room.view (bindings/room_view.cpp).
void open_room_state(lua_State* L, int room_table);
void open_room_view(lua_State* L, int room_table);
void open_room_client(lua_State* L);    // the room client handle's metatable (bindings/room_client.cpp)
void open_rooms_client(lua_State* L);   // rooms.* on the client (bindings/rooms_client.cpp)
void open_room_handle(lua_State* L);    // the client's room handle metatable (bindings/room_handle.cpp)
// Matchmaking (docs/matchmaking.md).
void open_matchmaking_server(lua_State* L);  // matchmaking.define (bindings/matchmaking_server.cpp)
void open_matchmaking_client(lua_State* L);  // matchmaking.enqueue/dequeue (bindings/matchmaking_client.cpp)

// The id inside the handle at `arg`; raises a Lua argument error if it is not
// a client handle. Validity is the caller's to check.
ClientId check_client_handle(lua_State* L, int arg);
// The id inside the value at `index` if it is a client handle; false otherwise.
bool to_client_handle(lua_State* L, int index, ClientId& id);
// The session id inside the room client handle at `arg`; raises a Lua
// argument error if it is not one.
uint64_t check_room_client(lua_State* L, int arg);

}  // namespace nshost
