// types/nshost.lua (and types/nshost/*.lua) against the running host: a real
// server, a client joined to it and a room the client created, each walked for
// what it gives scripts: its globals, the fields of its global tables (Lua's
// standard library left out: whatever a plain luaL_openlibs state has), and
// the methods of every metatable in its registry named "nshost.*". Every name
// found must be annotated for that kind of state, and every annotation must
// name something found. What a userdata's __index function answers (c.id, r.type)
// cannot be listed, so each annotated field of such a type is read on a real
// instance instead (one way only: an unannotated one goes unseen). Handlers
// are held to the names the host invokes in runtime/.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "tests/support/annotations.hpp"
#include "tests/support/process.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

namespace fs = std::filesystem;

const fs::path kSource = nshost::test::source_dir();

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

AnnotationFile parse(const fs::path& path) {
  REQUIRE_MESSAGE(fs::exists(path), path.string() << " is missing");
  return parse_annotations(fs::relative(path, kSource).string(), read_text(path));
}

// name -> Lua type of the value ("function", "table", "number", ...).
using Found = std::map<std::string, std::string>;

void add_table_keys(lua_State* L, int table, const std::string& prefix, const std::string& sep, Found& out) {
  table = lua_absindex(L, table);
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {  // [key, value]
    if (lua_type(L, -2) == LUA_TSTRING) {
      std::string key = lua_tostring(L, -2);
      if (key.rfind("__", 0) != 0) out[prefix + sep + key] = luaL_typename(L, -1);
    }
    lua_pop(L, 1);
  }
}

// Globals and the fields of global tables (one level: "sys", "sys.time").
Found walk_globals(lua_State* L) {
  Found out;
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {  // [_G, key, value]
    if (lua_type(L, -2) == LUA_TSTRING) {
      std::string name = lua_tostring(L, -2);
      out[name] = luaL_typename(L, -1);
      if (lua_istable(L, -1) && name != "_G") add_table_keys(L, -1, name, ".", out);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

// The methods of the table at `index` and of the tables among its upvalues
// (an __index closure over a methods table, as the room handle's).
void add_methods(lua_State* L, int index, const std::string& cls, Found& out) {
  index = lua_absindex(L, index);
  if (lua_istable(L, index)) {
    add_table_keys(L, index, cls, ":", out);
    return;
  }
  if (!lua_iscfunction(L, index)) return;
  for (int i = 1; lua_getupvalue(L, index, i) != nullptr; ++i) {
    if (lua_istable(L, -1)) add_table_keys(L, -1, cls, ":", out);
    lua_pop(L, 1);
  }
}

// The userdata types (registry metatables named "nshost.*", made by
// luaL_newmetatable) as "nshost.room", and their methods as "nshost.room:send".
Found walk_metatables(lua_State* L) {
  Found out;
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX) != 0) {  // [key, value]
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
      std::string name = lua_tostring(L, -2);
      lua_getfield(L, -1, "__name");  // [key, mt, __name]
      bool is_type = name.rfind("nshost.", 0) == 0 && lua_type(L, -1) == LUA_TSTRING && name == lua_tostring(L, -1);
      lua_pop(L, 1);
      if (is_type) {
        out[name] = "metatable";
        lua_getfield(L, -1, "__index");
        add_methods(L, -1, name, out);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  return out;
}

// What a plain Lua 5.4 gives: these names are Lua's, not nshost's.
const Found& standard_names() {
  static const Found names = [] {
    lua_State* L = luaL_newstate();
    luaL_openlibs(L);
    Found found = walk_globals(L);
    lua_close(L);
    return found;
  }();
  return names;
}

Found builtins_of(lua_State* L) {
  Found out;
  for (auto& [name, type] : walk_globals(L))
    if (!standard_names().count(name)) out[name] = type;
  for (auto& [name, type] : walk_metatables(L)) out[name] = type;
  return out;
}

// How to add what is missing, by the shape of its name.
std::string how_to_add(const std::string& name, const std::string& type) {
  size_t colon = name.find(':');
  size_t dot = name.find('.');
  if (type == "metatable")
    return "a userdata type: add `---@class " + name + "` (its kinds on the line above) and `local X = {}`";
  if (colon != std::string::npos)
    return "a method: add `function X:" + name.substr(colon + 1) + "(...) end` where `local X = {}` follows `---@class " +
           name.substr(0, colon) + "`";
  if (dot == std::string::npos)
    return type == "table" ? "a global table: add `---@class nshost." + name + "lib` and `" + name + " = {}`"
                           : "a global: add `function " + name + "(...) end` with its [kinds]";
  std::string table = name.substr(0, dot);
  if (type == "function") return "add `function " + name + "(...) end`";
  return "a " + type + " field: add `---@field " + name.substr(dot + 1) + " <type>` to the class of `" + table + "`";
}

// Both ways, over the kinds of state walked: every name found must be
// annotated for exactly the kinds of state it was found in, and every
// annotation for a walked kind must name something found.
void compare(const std::map<unsigned, Found>& running, const std::map<std::string, Annotated>& annotated,
             const std::string& file, std::vector<std::string>& problems) {
  struct Seen {
    unsigned kinds = 0;
    std::string type;
  };
  std::map<std::string, Seen> seen;
  unsigned walked = 0;
  for (const auto& [kind, found] : running) {
    walked |= kind;
    for (const auto& [name, type] : found) {
      seen[name].kinds |= kind;
      seen[name].type = type;
    }
  }
  for (const auto& [name, s] : seen) {
    auto it = annotated.find(name);
    if (it == annotated.end())
      problems.push_back("'" + name + "' (" + s.type + ", in [" + kinds_text(s.kinds) + "] states) has no annotation in " +
                         file + "; " + how_to_add(name, s.type));
    else if ((it->second.kinds & walked) != s.kinds)
      problems.push_back(it->second.where + ": '" + name + "' is annotated for [" + kinds_text(it->second.kinds) +
                         "] but exists in [" + kinds_text(s.kinds) + "] states: make its first description line `---[" +
                         kinds_text(s.kinds) + "] ...` (or fix its class's)");
  }
  for (const auto& [name, note] : annotated)
    if ((note.kinds & walked) && !seen.count(name))
      problems.push_back(note.where + ": '" + name + "' is annotated for [" + kinds_text(note.kinds) +
                         "] but no such state has it: remove the annotation, or fix its name");
}

std::string report(const std::vector<std::string>& problems) {
  std::string text = std::to_string(problems.size()) + " mismatch(es) between the host and its annotations " +
                     "(types/nshost.lua's header says how the file is laid out):";
  for (const std::string& p : problems) text += "\n  - " + p;
  return text;
}

// The three kinds of state, live: a server with a room type, a client joined
// to it and a room the client created. Each is walked right after its script
// ran, before the test's own probes add globals.
struct LiveStates {
  RoleFixture fixture;
  ServerRole* server = nullptr;
  ClientRole* client = nullptr;
  lua_State* room = nullptr;
  std::map<unsigned, Found> found;

  LiveStates() {
    fixture.write_file("probe_room.lua", "");
    server = &fixture.start_server("rooms.define('probe', 'probe_room.lua')\n");
    found[kServerState] = builtins_of(server->script()->state());
    // Claims, so that c.auth is not nil; the handle, to read its fields.
    REQUIRE(RoleFixture::eval(server->script()->state(),
                              "function server.auth() return {probe = true} end "
                              "function server.connect(c) probe_client = c end") == "ok");
    client = &fixture.start_client("");
    found[kClientState] = builtins_of(client->script()->state());
    REQUIRE(fixture.step_until([&] { return client->joined(); }));
    REQUIRE(RoleFixture::eval(client->script()->state(),
                              "return rooms.create('probe', nil, function(r, m) probe_room = r or m end)") ==
            "ok: true");
    REQUIRE(fixture.step_until([&] {
      return !server->rooms()->rooms().empty() &&
             RoleFixture::eval(client->script()->state(), "return probe_room ~= nil") == "ok: true" &&
             RoleFixture::eval(server->script()->state(), "return probe_client ~= nil") == "ok: true";
    }));
    REQUIRE(RoleFixture::eval(client->script()->state(), "return type(probe_room)") == "ok: userdata");
    room = server->rooms()->rooms().begin()->second->script()->state();
    found[kRoomState] = builtins_of(room);
  }

  lua_State* state(unsigned kind) const {
    return kind == kServerState ? server->script()->state() : kind == kClientState ? client->script()->state() : room;
  }
};

// For each userdata type with fields: a state where scripts get one and the
// expression that gives it there.
const std::map<std::string, std::pair<unsigned, std::string>> kInstances = {
    {"nshost.client", {kServerState, "probe_client"}},
    {"nshost.room", {kClientState, "probe_room"}},
    {"nshost.room_client", {kRoomState, "room.clients()[1]"}},
    {"nshost.interest.Grid", {kServerState, "require('nshost.interest').grid({cell = 1, radius = 1, max = 4})"}},
    {"nshost.input.Sender", {kServerState, "require('nshost.input').sender({fields = {dx = 'i8'}})"}},
    {"nshost.input.Receiver", {kServerState, "require('nshost.input').receiver({fields = {dx = 'i8'}})"}},
    {"nshost.input.Dilation", {kServerState, "require('nshost.input').dilation({tick_rate = 30})"}},
    {"nshost.predict.Predictor",
     {kServerState, "require('nshost.predict').new({step = function() end, state = {}, dt = 1, fields = {'x'}})"}},
    {"nshost.interp.View", {kServerState, "require('nshost.interp').new({tick_rate = 30})"}},
};

// Pushes the instance of `cls` in `L` (see kInstances); false with a reason.
bool push_instance(lua_State* L, const std::string& expr, std::string& why) {
  if (luaL_loadstring(L, ("return " + expr).c_str()) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    why = lua_tostring(L, -1);
    lua_pop(L, 1);
    return false;
  }
  return true;
}

// Each annotated field of an object class reads non-nil on a real instance.
void check_fields(const LiveStates& live, const AnnotationFile& file, std::vector<std::string>& problems) {
  for (const auto& [field, note] : file.object_fields) {
    std::string cls = field.substr(0, field.rfind('.'));
    std::string key = field.substr(field.rfind('.') + 1);
    auto recipe = kInstances.find(cls);
    if (recipe == kInstances.end()) {
      problems.push_back(note.where + ": no instance of " + cls + " to read '" + key +
                         "' on: add one to kInstances in tests/bindings/test_annotations.cpp");
      continue;
    }
    lua_State* L = live.state(recipe->second.first);
    std::string why;
    if (!push_instance(L, recipe->second.second, why)) {
      problems.push_back("the instance of " + cls + " (" + recipe->second.second + ") raised: " + why);
      continue;
    }
    if (lua_type(L, -1) == LUA_TUSERDATA && !luaL_testudata(L, -1, cls.c_str()))
      problems.push_back("kInstances: " + recipe->second.second + " is not a " + cls);
    lua_pop(L, 1);
    // Read in Lua: __index is the host's, and an error must not escape unprotected.
    std::string read = RoleFixture::eval(L, "return (" + recipe->second.second + ")." + key + " ~= nil");
    if (read != "ok: true")
      problems.push_back(note.where + ": " + cls + " has no field '" + key + "' (it reads " +
                         (read == "ok: false" ? std::string("nil") : read) + " on a real one)");
  }
}

// The handler names the host calls per table: `invoke("name"` and
// `has_handler("name"` in runtime/, the table told by the file's name.
std::map<std::string, std::map<std::string, std::string>> invoked_handlers(std::vector<std::string>& problems) {
  static const std::regex call(R"(\b(?:invoke|has_handler)\(\s*"([A-Za-z_]\w*)\")");
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& entry : fs::recursive_directory_iterator(kSource / "runtime")) {
    const fs::path& path = entry.path();
    if (path.extension() != ".cpp" || path.parent_path().filename() == "script") continue;
    std::string text = read_text(path);
    std::string file = path.filename().string();
    std::string where = fs::relative(path, kSource).string();
    for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it) {
      std::string table = file.rfind("server", 0) == 0 ? "server"
                          : file.rfind("client", 0) == 0 ? "client"
                          : file.rfind("room", 0) == 0 && path.parent_path().filename() == "rooms" ? "room"
                                                                                                    : "";
      if (table.empty())
        problems.push_back(where + " calls handler '" + (*it)[1].str() +
                           "' on a table this test cannot tell from the file's name: teach invoked_handlers()");
      else
        out[table][(*it)[1]] = where;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("annotations: types/nshost.lua names every builtin of each kind of state, and nothing else") {
  AnnotationFile file = parse(kSource / "types/nshost.lua");
  CHECK_MESSAGE(file.errors.empty(), report(file.errors));
  LiveStates live;
  std::vector<std::string> problems;
  std::map<std::string, Annotated> annotated = file.names;
  annotated.insert(file.object_classes.begin(), file.object_classes.end());
  // A build without one of net's protocols registers none of its functions (docs/net.md).
  for (auto [prefix, built] : {std::pair{"net.tcp_", NSHOST_WITH_TCP}, {"net.http_", NSHOST_WITH_HTTP},
                               {"net.ws_", NSHOST_WITH_WS}})
    for (auto it = annotated.begin(); it != annotated.end();)
      it = !built && it->first.rfind(prefix, 0) == 0 ? annotated.erase(it) : std::next(it);
  for (unsigned kind : {kServerState, kClientState, kRoomState})
    CHECK(live.found[kind].size() > 5);  // the walk saw the surface
  compare(live.found, annotated, file.path, problems);
  check_fields(live, file, problems);
  CHECK_MESSAGE(problems.empty(), report(problems));
}

TEST_CASE("annotations: the handler classes name exactly the handlers the host calls") {
  AnnotationFile file = parse(kSource / "types/nshost.lua");
  std::vector<std::string> problems;
  auto invoked = invoked_handlers(problems);
  CHECK(invoked["server"].count("receive") == 1);  // the scan finds the host's calls
  for (std::string table : {"server", "client", "room"}) {
    for (const auto& [name, where] : invoked[table])
      if (!file.handlers[table].count(name))
        problems.push_back(where + " calls " + table + "." + name + ", which " + file.path +
                           " does not annotate: add `---@field " + name + "? fun(...)` to nshost." + table + "_handlers");
    for (const auto& [name, note] : file.handlers[table])
      if (!invoked[table].count(name))
        problems.push_back(note.where + ": handler " + table + "." + name +
                           " is annotated, but the host never calls it (no invoke(\"" + name + "\") in runtime/)");
  }
  CHECK_MESSAGE(problems.empty(), report(problems));
}

TEST_CASE("annotations: types/nshost/*.lua annotate each module in scripts/nshost/ exactly") {
  LiveStates live;
  std::vector<std::string> problems;
  std::set<std::string> modules, annotated_modules;
  for (const auto& entry : fs::directory_iterator(kSource / "scripts/nshost"))
    if (entry.path().extension() == ".lua") modules.insert(entry.path().stem().string());
  for (const auto& entry : fs::directory_iterator(kSource / "types/nshost")) {
    if (entry.path().extension() != ".lua") continue;
    std::string stem = entry.path().stem().string();
    annotated_modules.insert(stem);
    AnnotationFile file = parse(entry.path());
    problems.insert(problems.end(), file.errors.begin(), file.errors.end());
    std::string module = "nshost." + stem;
    if (file.meta_name != module) problems.push_back(file.path + ": its first line must be ---@meta " + module);
    if (!modules.count(stem)) continue;
    std::map<std::string, Annotated> annotated = file.names;
    annotated.insert(file.object_classes.begin(), file.object_classes.end());
    // An object class is walked only in the state kInstances makes one in.
    for (const auto& [cls, note] : file.object_classes) {
      auto recipe = kInstances.find(cls);
      unsigned made_in = recipe == kInstances.end() ? 0 : recipe->second.first;
      if (!made_in)
        problems.push_back(note.where + ": no instance of " + cls +
                           " to list its methods on: add one to kInstances in tests/bindings/test_annotations.cpp");
      for (auto& [name, a] : annotated)
        if (name == cls || name.rfind(cls + ":", 0) == 0) a.kinds &= made_in;
    }
    std::map<unsigned, Found> running;
    for (unsigned kind : {kServerState, kClientState, kRoomState}) {
      lua_State* L = live.state(kind);
      Found& found = running[kind];
      std::string why;
      if (!push_instance(L, "require('" + module + "')", why)) {
        problems.push_back(kinds_text(kind) + " state: require('" + module + "') raised: " + why);
        continue;
      }
      add_table_keys(L, -1, module, ".", found);
      lua_pop(L, 1);
      for (const auto& [cls, note] : file.object_classes) {
        auto recipe = kInstances.find(cls);
        if (recipe == kInstances.end() || recipe->second.first != kind) continue;
        if (!push_instance(L, recipe->second.second, why)) {
          problems.push_back("the instance of " + cls + " raised: " + why);
          continue;
        }
        found[cls] = "metatable";
        if (lua_getmetatable(L, -1)) {
          lua_getfield(L, -1, "__index");
          add_methods(L, -1, cls, found);
          lua_pop(L, 2);
        }
        lua_pop(L, 1);
      }
    }
    compare(running, annotated, file.path, problems);
    check_fields(live, file, problems);
  }
  for (const std::string& m : modules)
    if (!annotated_modules.count(m))
      problems.push_back("scripts/nshost/" + m + ".lua has no types/nshost/" + m +
                         ".lua: annotate it (---@meta nshost." + m + ", as the others)");
  for (const std::string& m : annotated_modules)
    if (!modules.count(m)) problems.push_back("types/nshost/" + m + ".lua annotates a module scripts/nshost/ lacks");
  CHECK_MESSAGE(problems.empty(), report(problems));
}

TEST_CASE("annotations: the annotation files are valid Lua 5.4") {
  std::vector<fs::path> files = {kSource / "types/nshost.lua"};
  for (const auto& entry : fs::directory_iterator(kSource / "types/nshost")) files.push_back(entry.path());
  for (const fs::path& path : files) {
    lua_State* L = luaL_newstate();
    int rc = luaL_loadfile(L, path.c_str());
    CHECK_MESSAGE(rc == LUA_OK, (rc == LUA_OK ? "" : lua_tostring(L, -1)));
    lua_close(L);
  }
}
