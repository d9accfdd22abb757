#include <vector>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

// The handle's id, raising "stale client handle" unless it is live or departing.
ClientId check_current(lua_State* L, int arg) {
  ClientId id = check_client_handle(L, arg);
  if (server_api(L).liveness(id) == ServerApi::Liveness::stale) luaL_error(L, "stale client handle");
  return id;
}

int server_slot(lua_State* L) {
  StackGuard guard(L);
  lua_pushinteger(L, check_current(L, 1).slot);
  return guard.returns(1);
}

int server_connected(lua_State* L) {
  StackGuard guard(L);
  bool live = false;
  if (luaL_testudata(L, 1, kClientHandleType))
    live = server_api(L).liveness(check_client_handle(L, 1)) == ServerApi::Liveness::live;
  lua_pushboolean(L, live);
  return guard.returns(1);
}

int server_send(lua_State* L) {
  StackGuard guard(L);
  require_handler(L, "send");
  ClientId id = check_current(L, 1);
  std::string_view data = check_bytes(L, 2);
  Channel channel = check_channel(L, 3);
  check_message_size(L, data);
  std::string error;
  ServerApi& server = server_api(L);
  if (server.send(id, data, channel, error)) {
    lua_pushboolean(L, 1);
    return guard.returns(1);
  }
  if (!error.empty()) return guard.returns(push_coded_failure(L, error, "EIO"));
  if (server.liveness(id) != ServerApi::Liveness::live)
    return guard.returns(push_failure(L, "the client is not connected (departing, or away with unreliable data)", "ENOTCONN"));
  return guard.returns(push_failure(L, "ENet refused the packet", "ENOBUFS"));
}

int server_broadcast(lua_State* L) {
  StackGuard guard(L);
  require_handler(L, "broadcast");
  std::string_view data = check_bytes(L, 1);
  Channel channel = check_channel(L, 2);
  check_message_size(L, data);
  if (lua_isnoneornil(L, 3)) {
    lua_pushinteger(L, static_cast<lua_Integer>(server_api(L).broadcast(data, channel)));
    return guard.returns(1);
  }
  luaL_checktype(L, 3, LUA_TTABLE);
  // Reused across calls: a crowd's tick makes hundreds of these.
  static thread_local std::vector<ClientId> targets;
  targets.clear();
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, 3));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, 3, i);  // [..., targets[i]]
    ClientId id;
    bool is_handle = to_client_handle(L, -1, id);
    lua_pop(L, 1);
    if (!is_handle) return luaL_error(L, "broadcast: targets[%d] is not a client handle", static_cast<int>(i));
    if (server_api(L).liveness(id) == ServerApi::Liveness::stale)
      return luaL_error(L, "broadcast: targets[%d] is a stale client handle", static_cast<int>(i));
    targets.push_back(id);
  }
  lua_pushinteger(L, static_cast<lua_Integer>(server_api(L).broadcast(data, channel, targets)));
  return guard.returns(1);
}

int server_kick(lua_State* L) {
  StackGuard guard(L);
  require_handler(L, "kick");
  ClientId id = check_current(L, 1);
  std::string_view reason = luaL_optstring(L, 2, "kicked by server");
  if (!server_api(L).kick(id, reason)) return guard.returns(push_failure(L, "the client is already departing", "EALREADY"));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

const luaL_Reg server_functions[] = {
    {"slot", guarded<server_slot>},
    {"connected", guarded<server_connected>},
    {"send", guarded<server_send>},
    {"broadcast", guarded<server_broadcast>},
    {"kick", guarded<server_kick>},
    {nullptr, nullptr},
};

}  // namespace

void open_server(lua_State* L) {
  lua_pushglobaltable(L);
  luaL_setfuncs(L, server_functions, 0);
  lua_pop(L, 1);
}

}  // namespace nshost
