#pragma once
// A scope-aware scan of a Lua 5.4 chunk's tokens for the globals it reads and
// writes (`nshost check`, runtime/check/checker.hpp). Not a full parser: it
// tracks blocks, locals (`local`, `local function`, parameters, `self` of a
// method, for-variables, repeat-until's scope), table constructors and
// statement boundaries well enough to tell `x = 1` (a write of x) from
// `{x = 1}` (a key), `t.x` (a field) and `local x` (a declaration). It
// expects a chunk that compiles (check with luaL_loadbuffer first); on one
// that does not, the result is meaningless but the scan still ends.
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace nshost {

struct GlobalUse {
  std::string name;
  int line = 0;
  bool write = false;        // assigned (`x = ...`, `function x()`), else read
  bool in_function = false;  // inside a function body, not the chunk's own top level
};

// `name.field = ...` or `function name.field(...)` on a global `name`.
struct GlobalFieldWrite {
  std::string table;
  std::string field;
  int line = 0;
};

struct GlobalScan {
  std::vector<GlobalUse> uses;                // in source order
  std::vector<GlobalFieldWrite> field_writes;  // in source order
  std::set<std::string> top_level_writes;      // globals assigned outside any function
  std::set<std::string> writes;                // globals assigned anywhere
};

// Scans `source` (a whole chunk). Never throws on bad input.
GlobalScan scan_globals(std::string_view source);

// Edit distance between `a` and `b`: inserting, deleting or substituting a
// character, or swapping two adjacent ones, costs 1 ("recieve" is 1 from
// "receive").
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace nshost
