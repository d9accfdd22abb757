#include <cstring>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"

// The metatable and the readers of the client handle; the userdata itself
// (ClientHandle, push_client_handle) is the server role's, in
// runtime/script/script_host.hpp.
namespace nshost {
namespace {

int handle_tostring(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<ClientHandle*>(luaL_checkudata(L, 1, kClientHandleType));
  ServerApi* server = ScriptHost::from(L).host().server();
  if (server && server->liveness(h->id) == ServerApi::Liveness::stale)
    lua_pushfstring(L, "client(slot=%d, stale)", static_cast<int>(h->id.slot));
  else
    lua_pushfstring(L, "client(slot=%d)", static_cast<int>(h->id.slot));
  return guard.returns(1);
}

// c.id: the session id (never reused by this server); c.auth: server.auth's
// claims table, or nil. Any other key is nil.
int handle_index(lua_State* L) {
  StackGuard guard(L);
  auto* h = static_cast<ClientHandle*>(luaL_checkudata(L, 1, kClientHandleType));
  const char* key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (std::strcmp(key, "id") == 0) lua_pushinteger(L, static_cast<lua_Integer>(h->session_id));
  else if (std::strcmp(key, "auth") == 0) lua_getiuservalue(L, 1, 1);
  else lua_pushnil(L);
  return guard.returns(1);
}

const luaL_Reg handle_meta[] = {
    {"__tostring", guarded<handle_tostring>},
    {"__index", guarded<handle_index>},
    {nullptr, nullptr},
};

}  // namespace

void open_client_handle(lua_State* L) {
  luaL_newmetatable(L, kClientHandleType);  // [mt]
  luaL_setfuncs(L, handle_meta, 0);
  lua_pushliteral(L, "client");
  lua_setfield(L, -2, "__metatable");  // getmetatable(c) hides the real one
  lua_pop(L, 1);
}

ClientId check_client_handle(lua_State* L, int arg) {
  return static_cast<ClientHandle*>(luaL_checkudata(L, arg, kClientHandleType))->id;
}

bool to_client_handle(lua_State* L, int index, ClientId& id) {
  auto* h = static_cast<ClientHandle*>(luaL_testudata(L, index, kClientHandleType));
  if (!h) return false;
  id = h->id;
  return true;
}

}  // namespace nshost
