#pragma once
// A reader of the LuaLS annotation files in types/ (types/nshost.lua and
// types/nshost/*.lua), for tests/bindings/test_annotations.cpp. It knows only
// the shape those files keep (their header states it): doc blocks of `---`
// lines, each followed by one code line (`function a.b(`, `function a:b(`,
// `function f(`, `X = {}`, `local X = {}`) or standing alone; a first
// description line that starts with the kinds of state, `[server, client, room]`.
#include <map>
#include <set>
#include <string>
#include <vector>

namespace nshost::test {

// Kinds of Lua state, as bits.
enum StateKind : unsigned { kServerState = 1, kClientState = 2, kRoomState = 4 };
inline constexpr unsigned kAllStates = kServerState | kClientState | kRoomState;
// "server, client" for the bits set.
std::string kinds_text(unsigned kinds);

struct Annotated {
  unsigned kinds = 0;
  std::string where;  // "types/nshost.lua:123"
};

struct AnnotationFile {
  std::string path;         // as given to parse_annotations
  std::string meta_name;    // ---@meta NAME ("_" for types/nshost.lua)
  // Globals ("send", "sys"), their tables' functions and fields ("sys.time",
  // "json.null"), a module's functions ("nshost.snapshot.encode"), and the
  // methods of userdata and module object classes ("nshost.room:send").
  std::map<std::string, Annotated> names;
  // Classes bound to a `local X = {}` other than a module's own table:
  // userdata types (named as their metatable) and module object classes.
  std::map<std::string, Annotated> object_classes;
  // The `---@field`s of those classes: "nshost.client.id".
  std::map<std::string, Annotated> object_fields;
  // Handler names per handler table: "server" -> {"connect", ...}, from the
  // classes nshost.<table>_handlers.
  std::map<std::string, std::map<std::string, Annotated>> handlers;
  // What does not keep the shape (a function on an unbound table, a class
  // with kinds and no binding, a line the reader does not know).
  std::vector<std::string> errors;
};

// Reads `text` (the contents of the file at `path`, which names it in
// `where` and in errors).
AnnotationFile parse_annotations(const std::string& path, const std::string& text);

}  // namespace nshost::test
