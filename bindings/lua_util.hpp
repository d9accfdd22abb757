#pragma once
// Helpers shared by the bindings.
#include <lua.hpp>

#include <exception>
#include <string>
#include <string_view>

#include "runtime/host_api.hpp"

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

// Debug builds check that a binding leaves exactly the values it returns.
class StackGuard {
 public:
  explicit StackGuard(lua_State* L) : L_(L), base_(lua_gettop(L)) {}
  int returns(int n) const {
#ifdef NSHOST_STACK_GUARD
    if (lua_gettop(L_) != base_ + n)
      luaL_error(L_, "stack guard: expected %d results, stack grew by %d", n, lua_gettop(L_) - base_);
#endif
    return n;
  }

 private:
  lua_State* L_;
  int base_;
};

inline std::string_view check_bytes(lua_State* L, int arg) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, arg, &n);
  return {s, n};
}

// "reliable" (default when absent) or "unreliable"; raises otherwise.
Channel check_channel(lua_State* L, int arg);

// Raises unless called from inside an event handler.
void require_handler(lua_State* L, const char* function_name);

// Raises if `data` is larger than the host's maximum message size.
void check_message_size(lua_State* L, std::string_view data);

}  // namespace nshost
