#pragma once
// The sandbox for untrusted Lua (scripts fetched from a shard, or local ones
// under --sandbox): an allow-list of the standard library. Everything not
// named below is absent from the state; docs/shards.md lists the same set.
//   base:      assert error getmetatable ipairs next pairs pcall print rawequal
//              rawget rawlen rawset select tonumber tostring type
//              xpcall collectgarbage _G _VERSION, load (text chunks only), and
//              setmetatable refusing a metatable with a __gc field (no
//              finalizers: they run with hooks off, beyond the timeout)
//   package:   require (confined by ScriptHost's searcher), package.loaded,
//              package.preload, package.searchers, package.config
//   string:    everything but string.dump
//   table, math, utf8, coroutine: everything
//   os:        os.clock, os.time
// No io, no debug, no dofile/loadfile, no package.loadlib/searchpath/cpath.
// The memory cap and the instruction budget are ScriptHost's (see there), as
// are coroutine.resume/wrap and xpcall, replaced in every state.
#include <lua.hpp>

namespace nshost {

// Opens the allowed libraries into a fresh state (instead of luaL_openlibs).
void open_sandboxed_libs(lua_State* L);

}  // namespace nshost
