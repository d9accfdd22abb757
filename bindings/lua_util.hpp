#pragma once
// Helpers shared by the bindings.
#include <lua.hpp>

#include <string>
#include <string_view>

#include "runtime/script/host_api.hpp"
#include "runtime/script/lua_guard.hpp"

namespace nshost {

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

// The one failure shape of every builtin (luv's): a builtin that fails for a
// reason that is not a programming error returns nil, a message and an
// errno-style code ("not connected", "ENOTCONN"); misuse raises instead.
// Pushes those three values and returns 3, for `return push_failure(...)`.
int push_failure(lua_State* L, std::string_view message, std::string_view code);
// The same from the runtime's one-line form "ECODE: message" (the code is
// split off); a line without an E-code prefix keeps its text as the message
// and gets `fallback_code`.
int push_coded_failure(lua_State* L, std::string_view coded_error, std::string_view fallback_code);

// The role's ServerApi / ClientApi; raises if the state belongs to the other
// role (a server-only builtin reached a client state, or the reverse).
ServerApi& server_api(lua_State* L);
ClientApi& client_api(lua_State* L);

// Raises unless called from inside an event handler.
void require_handler(lua_State* L, const char* function_name);

// Raises if `data` is larger than the host's maximum message size.
void check_message_size(lua_State* L, std::string_view data);

// The integer field `key` of the options table at index `options`, in
// lo..hi; `fallback` when absent. Raises "<fn>: options.<key> must be an
// integer in lo..hi" otherwise.
lua_Integer integer_option(lua_State* L, int options, const char* fn, const char* key, lua_Integer lo,
                           lua_Integer hi, lua_Integer fallback);

}  // namespace nshost
