// libFuzzer target: the rooms codecs (msgpack and json) on the bytes of one
// catalog packet. Whatever decodes must re-encode and decode to the same
// Value, and must survive the trip through Lua (push_value, then
// Writer::lua_value) into bytes that decode again.
#include <cstdint>
#include <cstdlib>
#include <lua.hpp>
#include <string>

#include "runtime/rooms/codec.hpp"

using namespace nshost::rooms;

namespace {

int push_decoded(lua_State* L) {
  push_value(L, *static_cast<const Value*>(lua_touserdata(L, 1)));
  return 1;
}

lua_State* shared_state() {
  static lua_State* L = luaL_newstate();
  return L;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (Codec codec : {Codec::msgpack, Codec::json}) {
    Value value;
    std::string error;
    Message message;
    if (!decode_message(codec, bytes, message, error) && error.empty()) std::abort();
    if (!decode(codec, bytes, value, error)) {
      if (error.empty()) std::abort();  // every refusal names its reason
      continue;
    }
    Writer writer(codec);
    writer.value(value);
    if (!writer.ok()) std::abort();
    Value again;
    if (!decode(codec, writer.take(), again, error) || !(again == value)) std::abort();

    lua_State* L = shared_state();
    lua_settop(L, 0);
    lua_pushcfunction(L, push_decoded);
    lua_pushlightuserdata(L, &value);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) std::abort();
    if (!writer.lua_value(L, -1, error)) std::abort();
    if (!decode(codec, writer.take(), again, error)) std::abort();
    lua_settop(L, 0);
  }
  return 0;
}
