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

const luaL_Reg handle_meta[] = {
    {"__tostring", guarded<handle_tostring>},
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
