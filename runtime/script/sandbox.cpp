#include "runtime/script/sandbox.hpp"

#include <cstring>
#include <initializer_list>

namespace nshost {
namespace {

// Removes from the table at the top of the stack every key not in `allowed`.
void keep_only(lua_State* L, std::initializer_list<const char*> allowed) {
  lua_newtable(L);  // [t, doomed]
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {  // [t, doomed, key, value]
    lua_pop(L, 1);
    bool keep = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char* name : allowed)
        if (std::strcmp(lua_tostring(L, -1), name) == 0) keep = true;
    if (!keep) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, static_cast<lua_Integer>(lua_rawlen(L, -3) + 1));  // doomed[#doomed+1] = key
    }
  }
  // [t, doomed]: clear outside the traversal
  for (lua_Integer i = 1, n = static_cast<lua_Integer>(lua_rawlen(L, -1)); i <= n; ++i) {
    lua_rawgeti(L, -1, i);
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  lua_pop(L, 1);
}

// load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t".
int text_only_load(lua_State* L) {
  const char* mode = luaL_optstring(L, 3, "t");
  if (std::strchr(mode, 'b')) {
    luaL_checkany(L, 1);
    lua_pushnil(L);
    lua_pushliteral(L, "attempt to load a binary chunk (the sandbox loads text chunks only)");
    return 2;
  }
  int nargs = lua_gettop(L) < 1 ? 1 : lua_gettop(L);
  lua_settop(L, nargs < 3 ? 3 : nargs);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));  // [args..., load]
  lua_insert(L, 1);                       // [load, args...]
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// setmetatable(t, mt) refusing a metatable with a __gc field: in Lua 5.4 an
// object is marked for finalization only if its metatable has __gc when
// setmetatable runs, so untrusted code gets no finalizers (they run with
// hooks off, out of the handler timeout's reach). The host's own userdata
// keep their C __gc (set from C, not through this function).
int no_gc_setmetatable(lua_State* L) {
  // The argument checks first, so that their errors name this function.
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, lua_type(L, 2) == LUA_TNIL || lua_type(L, 2) == LUA_TTABLE, 2, "nil or table");
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    bool has_gc = lua_rawget(L, 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (has_gc) return luaL_error(L, "__gc metamethods are not available to fetched scripts (sandbox)");
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));  // [t, mt, setmetatable]
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
}

void open_lib(lua_State* L, const char* name, lua_CFunction open, std::initializer_list<const char*> allowed) {
  luaL_requiref(L, name, open, 1);  // [lib]
  keep_only(L, allowed);
  lua_pop(L, 1);
}

}  // namespace

void open_sandboxed_libs(lua_State* L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);  // [_G]
  lua_getfield(L, -1, "load");
  lua_pushcclosure(L, text_only_load, 1);
  lua_setfield(L, -2, "load");
  lua_getfield(L, -1, "setmetatable");
  lua_pushcclosure(L, no_gc_setmetatable, 1);
  lua_setfield(L, -2, "setmetatable");
  keep_only(L, {"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal", "rawget",
                "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall",
                "collectgarbage", "_G", "_VERSION", "load"});
  lua_pop(L, 1);
  luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);  // [package]; sets the global require
  keep_only(L, {"loaded", "preload", "searchers", "config", "path", "cpath"});
  lua_pop(L, 1);
  open_lib(L, LUA_STRLIBNAME, luaopen_string,
           {"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep", "reverse", "sub",
            "upper", "pack", "packsize", "unpack"});
  open_lib(L, LUA_TABLIBNAME, luaopen_table, {"concat", "insert", "move", "pack", "remove", "sort", "unpack"});
  open_lib(L, LUA_MATHLIBNAME, luaopen_math,
           {"abs", "ceil", "floor", "fmod", "huge", "log", "max", "maxinteger", "min", "mininteger", "modf", "pi",
            "sqrt", "tointeger", "type", "ult", "sin", "cos", "tan", "asin", "acos", "atan", "exp", "random",
            "randomseed"});
  open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8, {"char", "charpattern", "codes", "codepoint", "len", "offset"});
  open_lib(L, LUA_COLIBNAME, luaopen_coroutine,
           {"create", "isyieldable", "resume", "running", "status", "wrap", "yield", "close"});
  open_lib(L, LUA_OSLIBNAME, luaopen_os, {"clock", "time"});
}

}  // namespace nshost
