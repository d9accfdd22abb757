#include "bindings/lua_util.hpp"

#include "runtime/script_host.hpp"

namespace nshost {


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

}  // namespace nshost
