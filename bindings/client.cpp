#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

int client_send(lua_State* L) {
  StackGuard guard(L);
  require_handler(L, "send");
  std::string_view data = check_bytes(L, 1);
  Channel channel = check_channel(L, 2);
  check_message_size(L, data);
  std::string error;
  if (!client_api(L).send(data, channel, error)) return guard.returns(push_coded_failure(L, error, "EIO"));
  lua_pushboolean(L, 1);
  return guard.returns(1);
}

const luaL_Reg client_functions[] = {
    {"send", guarded<client_send>},
    {nullptr, nullptr},
};

}  // namespace

void open_client(lua_State* L) {
  lua_pushglobaltable(L);
  luaL_setfuncs(L, client_functions, 0);
  lua_pop(L, 1);
}

}  // namespace nshost
