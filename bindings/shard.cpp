// hop (client) and redirect (server): moving a client between shards.
// Source: "Moving clients between shards" in the nshost seed; docs/shards.md.
#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"
#include "runtime/core/url.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost {
namespace {

// The URL at `arg`, raising unless it is nshost://HOST:PORT.
std::string_view check_url(lua_State* L, int arg) {
  std::string_view url = check_bytes(L, arg);
  ShardUrl parsed;
  std::string error;
  if (url.size() > wire::kMaxUrlBytes || !parse_shard_url(url, parsed, error))
    luaL_argerror(L, arg, error.empty() ? "URL too long" : error.c_str());
  return url;
}

// hop(url, handoff?) -> true | nil, message, code ("EBUSY", "ESHUTDOWN")
int shard_hop(lua_State* L) {
  StackGuard guard(L);
  require_handler(L, "hop");
  std::string_view url = check_url(L, 1);
  std::string_view handoff = lua_isnoneornil(L, 2) ? std::string_view() : check_bytes(L, 2);
  std::string error;
  if (!client_api(L).hop(url, handoff, error)) return guard.returns(push_coded_failure(L, error, "EIO"));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

// redirect(c, url, handoff?) -> true | nil, "the client is already departing", "EALREADY"
int shard_redirect(lua_State* L) {
  StackGuard guard(L);
  require_handler(L, "redirect");
  ServerApi& server = server_api(L);
  ClientId id = check_client_handle(L, 1);
  if (server.liveness(id) == ServerApi::Liveness::stale) return luaL_error(L, "stale client handle");
  std::string_view url = check_url(L, 2);
  std::string_view handoff = lua_isnoneornil(L, 3) ? std::string_view() : check_bytes(L, 3);
  if (handoff.size() > wire::kMaxHandoffBytes)
    return luaL_error(L, "handoff of %d bytes is over the limit of %d bytes", static_cast<int>(handoff.size()),
                      static_cast<int>(wire::kMaxHandoffBytes));
  if (!server.redirect(id, url, handoff))
    return guard.returns(push_failure(L, "the client is already departing", "EALREADY"));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

const luaL_Reg client_functions[] = {
    {"hop", guarded<shard_hop>},
    {nullptr, nullptr},
};

const luaL_Reg server_functions[] = {
    {"redirect", guarded<shard_redirect>},
    {nullptr, nullptr},
};

}  // namespace

void open_shard_server(lua_State* L) {
  lua_pushglobaltable(L);
  luaL_setfuncs(L, server_functions, 0);
  lua_pop(L, 1);
}

void open_shard_client(lua_State* L) {
  lua_pushglobaltable(L);
  luaL_setfuncs(L, client_functions, 0);
  lua_pop(L, 1);
}

}  // namespace nshost
