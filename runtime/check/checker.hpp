#pragma once
// `nshost check FILE...` (docs/scripting.md "nshost check"): loads each
// script as the roles would and reports, as "file:line: message":
//   - syntax errors (Lua's own message) and errors its top-level chunk raises;
//   - a function on a handler table (`server`, `client`, or `room` in a room
//     file) whose name is not a handler nshost calls (runtime/script/
//     handler_names.hpp), with the nearest known name;
//   - a function assigning a global the file's top level never assigns and
//     that is not a builtin, and a read of a global assigned nowhere.
// A room file is one named by rooms.define in a checked file (checked too,
// even if not listed) or one that assigns fields of the global `room`; it is
// loaded in a room's state, every other file in a server's and a client's.
// Each load is real: the same ScriptHost and bindings, the default limits
// (--memory-limit, --handler-timeout), nothing connected and the loop not
// run; the top-level chunk's `print` is silenced. The globals scan is
// runtime/check/global_scan.hpp.
#include <cstdio>
#include <string>
#include <vector>

namespace nshost {

struct CheckFinding {
  std::string file;
  int line = 0;  // 0: about the whole file (it cannot be read)
  std::string message;
  std::string text() const;  // "file:line: message" (or "file: message")
};

struct CheckReport {
  std::vector<std::string> files;  // checked, in order (room files rooms.define named appended)
  std::vector<CheckFinding> findings;  // by file, then line
};

// Checks `paths`. Never throws for a bad script; may throw std::bad_alloc.
CheckReport check_scripts(const std::vector<std::string>& paths);

// The subcommand: prints each finding, then one summary line, to `out`;
// returns the exit code (0: no findings, 1: any).
int run_check(const std::vector<std::string>& paths, std::FILE* out);

}  // namespace nshost
