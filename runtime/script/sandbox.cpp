#include "runtime/script/sandbox.hpp"

#include <cstring>
#include <initializer_list>
#include <string>

namespace nshost {
namespace {

// What a removed function becomes: a stub that says why it is missing
// instead of letting the call fail as "attempt to call a nil value".
// upvalue 1: the function's name ("os.getenv").
// luaL_error puts the calling line of the script in front.
int unavailable(lua_State* L) {
  return luaL_error(L, "%s is not available to fetched scripts (sandbox)", lua_tostring(L, lua_upvalueindex(1)));
}

void push_stub(lua_State* L, const std::string& name) {
  lua_pushlstring(L, name.data(), name.size());
  lua_pushcclosure(L, unavailable, 1);
}

// Keeps in the table at the top of the stack only the keys in `allowed`: a
// removed function is replaced by a stub (see `unavailable`) named
// `prefix` + key, any other removed value is dropped.
void keep_only(lua_State* L, std::initializer_list<const char*> allowed, const std::string& prefix) {
  lua_newtable(L);  // [t, doomed]
  lua_pushnil(L);
  while (lua_next(L, -3) != 0) {  // [t, doomed, key, value]
    bool is_function = lua_type(L, -1) == LUA_TFUNCTION;
    lua_pop(L, 1);
    bool keep = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char* name : allowed)
        if (std::strcmp(lua_tostring(L, -1), name) == 0) keep = true;
    if (!keep) {
      lua_pushvalue(L, -1);
      lua_pushboolean(L, is_function);
      lua_rawset(L, -4);  // doomed[key] = is_function
    }
  }
  // [t, doomed]: change t outside the traversal
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {  // [t, doomed, key, is_function]
    bool is_function = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);  // [t, doomed, key, key]
    if (is_function && lua_type(L, -1) == LUA_TSTRING) push_stub(L, prefix + lua_tostring(L, -1));
    else lua_pushnil(L);
    lua_rawset(L, -5);  // [t, doomed, key]
  }
  lua_pop(L, 1);
}

// A whole library the sandbox leaves out (io, debug): an empty table whose
// every field raises "<name>.<field> is not available ...", read or called.
void stub_library(lua_State* L, const char* name) {
  lua_newtable(L);  // [lib]
  lua_newtable(L);  // [lib, mt]
  lua_pushstring(L, name);
  lua_pushcclosure(
      L,
      [](lua_State* S) -> int {
        const char* field = lua_type(S, 2) == LUA_TSTRING ? lua_tostring(S, 2) : luaL_typename(S, 2);
        return luaL_error(S, "%s.%s is not available to fetched scripts (sandbox)", lua_tostring(S, lua_upvalueindex(1)),
                          field);
      },
      1);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // the script cannot take the stub apart
  lua_setmetatable(L, -2);
  lua_setglobal(L, name);
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
  keep_only(L, allowed, std::string(name) + ".");
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
                "collectgarbage", "_G", "_VERSION", "load"},
            "");
  lua_pop(L, 1);
  luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);  // [package]; sets the global require
  keep_only(L, {"loaded", "preload", "searchers", "config", "path", "cpath"}, "package.");
  lua_pop(L, 1);
  open_lib(L, LUA_STRLIBNAME, luaopen_string,
           {"byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep", "reverse", "sub",
            "upper", "pack", "packsize", "unpack"});
  open_lib(L, LUA_TABLIBNAME, luaopen_table, {"concat", "insert", "move", "pack", "remove", "sort", "unpack"});
  // All of math, as the local Lua has it (pure functions; Debian's build
  // adds the 5.3 compatibility ones, pow, atan2, ...): a file that works
  // locally must not lose math when fetched.
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  lua_pop(L, 1);
  open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8, {"char", "charpattern", "codes", "codepoint", "len", "offset"});
  open_lib(L, LUA_COLIBNAME, luaopen_coroutine,
           {"create", "isyieldable", "resume", "running", "status", "wrap", "yield", "close"});
  open_lib(L, LUA_OSLIBNAME, luaopen_os, {"clock", "time"});
  stub_library(L, LUA_IOLIBNAME);
  stub_library(L, LUA_DBLIBNAME);
}

}  // namespace nshost
