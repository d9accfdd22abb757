#pragma once
// guarded<F>: how every C function of ours enters Lua (the bindings and the
// host's own replacements alike). Reached through bindings/lua_util.hpp by
// the bindings.
#include <lua.hpp>

#include <exception>
#include <string>

namespace nshost {

// Wraps a lua_CFunction so a C++ exception of ours (std::bad_alloc, ...)
// becomes a Lua error instead of unwinding through the interpreter. Lua's own
// errors are not std::exceptions and pass through untouched.
template <lua_CFunction F>
int guarded(lua_State* L) {
  std::string message;
  try {
    return F(L);
  } catch (const std::exception& e) {
    message = e.what();
  }
  return luaL_error(L, "internal error: %s", message.c_str());
}

}  // namespace nshost
