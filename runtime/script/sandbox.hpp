#pragma once
// The sandbox for untrusted Lua (scripts fetched from a shard, or local ones
// under --sandbox): an allow-list of the standard library. A function not
// named below is a stub that raises "<lib>.<name> is not available to
// fetched scripts (sandbox)" when called; io and debug are empty tables whose
// every field read raises the same way. docs/shards.md lists the same set.
//   base:      assert error getmetatable ipairs next pairs pcall print rawequal
//              rawget rawlen rawset select tonumber tostring type
//              xpcall collectgarbage _G _VERSION, load (text chunks only), and
//              setmetatable refusing a metatable with a __gc field (no
//              finalizers: they run with hooks off, beyond the timeout)
//   package:   require (confined by ScriptHost's searcher), package.loaded,
//              package.preload, package.searchers, package.config
//   string:    everything but string.dump
//   table, utf8, coroutine: everything; math: all the local Lua has
//              (with Debian's 5.3 compatibility functions)
//   os:        os.clock, os.time
// Stubs: io.*, debug.*, dofile, loadfile, warn, package.loadlib/searchpath,
// string.dump and the rest of os. No C modules.
// The memory cap and the instruction budget are ScriptHost's (see there), as
// are coroutine.resume/wrap and xpcall, replaced in every state.
#include <lua.hpp>

namespace nshost {

// Opens the allowed libraries into a fresh state (instead of luaL_openlibs).
void open_sandboxed_libs(lua_State* L);

}  // namespace nshost
