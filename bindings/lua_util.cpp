#include "bindings/lua_util.hpp"

#include "runtime/script/script_host.hpp"

namespace nshost {

int push_failure(lua_State* L, std::string_view message, std::string_view code) {
  lua_pushnil(L);
  lua_pushlstring(L, message.data(), message.size());
  lua_pushlstring(L, code.data(), code.size());
  return 3;
}

int push_coded_failure(lua_State* L, std::string_view coded_error, std::string_view fallback_code) {
  size_t colon = coded_error.find(": ");
  bool has_code = colon != std::string_view::npos && colon >= 2 && coded_error[0] == 'E';
  for (size_t i = 1; has_code && i < colon; ++i)
    has_code = (coded_error[i] >= 'A' && coded_error[i] <= 'Z') || (coded_error[i] >= '0' && coded_error[i] <= '9') ||
               coded_error[i] == '_';
  if (!has_code) return push_failure(L, coded_error, fallback_code);
  return push_failure(L, coded_error.substr(colon + 2), coded_error.substr(0, colon));
}

ServerApi& server_api(lua_State* L) {
  ServerApi* server = ScriptHost::from(L).host().server();
  if (!server) luaL_error(L, "only the server role has this function");
  return *server;
}

ClientApi& client_api(lua_State* L) {
  ClientApi* client = ScriptHost::from(L).host().client();
  if (!client) luaL_error(L, "only the client role has this function");
  return *client;
}

Channel check_channel(lua_State* L, int arg) {
  static const char* const names[] = {"reliable", "unreliable", nullptr};
  return luaL_checkoption(L, arg, "reliable", names) == 0 ? Channel::reliable : Channel::unreliable;
}

void require_handler(lua_State* L, const char* function_name) {
  if (!ScriptHost::from(L).in_handler())
    luaL_error(L, "%s: only callable from an event handler, not while the script loads", function_name);
}

void check_message_size(lua_State* L, std::string_view data) {
  uint32_t limit = ScriptHost::from(L).host().max_message_bytes();
  if (data.size() > limit)
    luaL_error(L, "message of %d bytes is over the limit of %d bytes (--max-message-size)",
               static_cast<int>(data.size()), static_cast<int>(limit));
}

lua_Integer integer_option(lua_State* L, int options, const char* fn, const char* key, lua_Integer lo,
                           lua_Integer hi, lua_Integer fallback) {
  if (lua_getfield(L, options, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return fallback;
  }
  int is_integer = 0;
  lua_Integer v = lua_tointegerx(L, -1, &is_integer);
  if (!is_integer || v < lo || v > hi)
    luaL_error(L, "%s: options.%s must be an integer in %d..%d", fn, key, static_cast<int>(lo), static_cast<int>(hi));
  lua_pop(L, 1);
  return v;
}

}  // namespace nshost
