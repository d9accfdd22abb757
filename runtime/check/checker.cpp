#include "runtime/check/checker.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <lua.hpp>
#include <uv.h>

#include "runtime/check/global_scan.hpp"
#include "runtime/config/options.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "runtime/script/handler_names.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

const Options kDefaults;

ScriptHost::Sandbox default_limits() {
  return ScriptHost::Sandbox{false, kDefaults.memory_limit_bytes, kDefaults.instruction_budget,
                             kDefaults.handler_timeout_ms, {}};
}

// A server with nothing connected: what its script's top level sees.
class CheckServer final : public ServerApi, public rooms::RoomHost {
 public:
  explicit CheckServer(uv_loop_t* loop) : loop_(loop) {}
  void set_rooms(rooms::RoomManager* manager) { rooms_ = manager; }

  Role role() const override { return Role::server; }
  uv_loop_t* loop() const override { return loop_; }
  bool headless() const override { return true; }
  uint32_t tick_rate_hz() const override { return tick_rate_hz_; }
  void set_tick_rate_hz(uint32_t hz) override { tick_rate_hz_ = hz; }
  uint32_t max_clients() const override { return kDefaults.max_clients; }
  uint32_t max_message_bytes() const override { return kDefaults.max_message_bytes; }
  void request_stop(int) override {}
  void on_script_error() override {}
  bool finished() const override { return false; }
  Liveness liveness(ClientId) const override { return Liveness::stale; }
  bool send(ClientId, std::string_view, Channel, std::string&) override { return false; }
  size_t broadcast(std::string_view, Channel) override { return 0; }
  size_t broadcast(std::string_view, Channel, std::span<const ClientId>) override { return 0; }
  bool kick(ClientId, std::string_view) override { return false; }
  bool redirect(ClientId, std::string_view, std::string_view) override { return false; }
  rooms::RoomManager* rooms() override { return rooms_; }

  bool queue_room_packet(ClientId, ENetPacket*, Channel) override { return false; }
  void kick_client(ClientId, std::string_view) override {}
  void on_room_script_error() override {}

 private:
  uv_loop_t* loop_;
  uint32_t tick_rate_hz_ = kDefaults.tick_rate_hz;
  rooms::RoomManager* rooms_ = nullptr;
};

// A client that has not joined: what its script's top level sees.
class CheckClient final : public ClientApi {
 public:
  explicit CheckClient(uv_loop_t* loop) : loop_(loop) {}
  Role role() const override { return Role::client; }
  uv_loop_t* loop() const override { return loop_; }
  bool headless() const override { return true; }
  uint32_t tick_rate_hz() const override { return tick_rate_hz_; }
  void set_tick_rate_hz(uint32_t hz) override { tick_rate_hz_ = hz; }
  uint32_t max_clients() const override { return 0; }
  uint32_t max_message_bytes() const override { return kDefaults.max_message_bytes; }
  void request_stop(int) override {}
  void on_script_error() override {}
  bool finished() const override { return false; }
  uint32_t server_tick_rate_hz() const override { return 0; }
  std::optional<uint64_t> server_tick() const override { return std::nullopt; }
  bool send(std::string_view, Channel, std::string& error) override {
    error = "ENOTCONN: not connected";
    return false;
  }
  bool hop(std::string_view, std::string_view, std::string& error) override {
    error = "ENOTCONN: not connected";
    return false;
  }

 private:
  uv_loop_t* loop_;
  uint32_t tick_rate_hz_ = kDefaults.tick_rate_hz;
};

// A room's state before any room exists: only for the builtins of a fresh
// room state (the room file itself runs in a real rooms::Room).
class CheckRoomSurface final : public HostApi {
 public:
  explicit CheckRoomSurface(uv_loop_t* loop) : loop_(loop) {}
  Role role() const override { return Role::server; }
  uv_loop_t* loop() const override { return loop_; }
  bool headless() const override { return true; }
  uint32_t tick_rate_hz() const override { return kDefaults.tick_rate_hz; }
  void set_tick_rate_hz(uint32_t) override {}
  uint32_t max_clients() const override { return 0; }
  uint32_t max_message_bytes() const override { return kDefaults.max_message_bytes; }
  void request_stop(int) override {}
  void on_script_error() override {}
  bool finished() const override { return false; }
  const char* handler_table() const override { return "room"; }

 private:
  uv_loop_t* loop_;
};

// stdout goes to /dev/null while a script's top level runs (its print), so
// that only findings reach it.
class StdoutSilenced {
 public:
  StdoutSilenced() {
    std::fflush(stdout);
    saved_ = dup(STDOUT_FILENO);
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved_ >= 0 && null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
    if (null_fd >= 0) close(null_fd);
  }
  ~StdoutSilenced() {
    std::fflush(stdout);
    if (saved_ < 0) return;
    dup2(saved_, STDOUT_FILENO);
    close(saved_);
  }
  StdoutSilenced(const StdoutSilenced&) = delete;
  StdoutSilenced& operator=(const StdoutSilenced&) = delete;

 private:
  int saved_ = -1;
};

// A uv loop that is never run for events, only to let closed handles go.
class CheckLoop {
 public:
  CheckLoop() { ok_ = uv_loop_init(&loop_) == 0; }
  ~CheckLoop() {
    if (!ok_) return;
    for (int i = 0; i < 8 && uv_loop_alive(&loop_); ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }
  CheckLoop(const CheckLoop&) = delete;
  CheckLoop& operator=(const CheckLoop&) = delete;
  bool ok() const { return ok_; }
  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_{};
  bool ok_ = false;
};

// A function found on a handler table.
struct HandlerFunction {
  std::string field;
  std::string file;  // where it was defined, "" if unknown (a C function)
  int line = 0;
};

// What one load of a file in one role's state showed.
struct RoleLoad {
  std::string role;  // "server", "client", "room"
  bool ok = false;
  std::string error;
  std::set<std::string> globals_after;
  std::vector<HandlerFunction> handlers;  // new functions on the role's handler table
  std::vector<std::string> defined_rooms;  // server: rooms.define's resolved paths
};

// Runs `f(L)` in a protected call of `host`; a C++ exception in it ends it
// there (never unwinding into Lua). False if it raised or threw.
template <class F>
bool inspect(ScriptHost& host, const char* what, F&& f) {
  bool threw = false;
  bool ok = host.protect(what, [&](lua_State* L) -> int {
    try {
      f(L);
    } catch (const std::exception&) {
      threw = true;
    }
    return 0;
  });
  return ok && !threw;
}

std::set<std::string> global_names(ScriptHost& host) {
  std::set<std::string> names;
  inspect(host, "check: globals", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TSTRING) names.insert(lua_tostring(L, -1));
    }
  });
  return names;
}

// The string keys of the global table `table` (rawly), with each callable
// value's definition.
std::map<std::string, HandlerFunction> table_functions(ScriptHost& host, const std::string& table,
                                                       std::set<std::string>* all_keys = nullptr) {
  std::map<std::string, HandlerFunction> out;
  inspect(host, "check: handler table", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushlstring(L, table.data(), table.size());
    if (lua_rawget(L, -2) != LUA_TTABLE) return;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {  // [globals, table, key, value]
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string key = lua_tostring(L, -2);
        if (all_keys) all_keys->insert(key);
        bool callable = lua_type(L, -1) == LUA_TFUNCTION;
        if (!callable && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
          lua_pop(L, 1);
          callable = true;
        }
        if (callable) {
          HandlerFunction fn{key, "", 0};
          if (lua_type(L, -1) == LUA_TFUNCTION) {
            lua_Debug ar;
            lua_pushvalue(L, -1);
            if (lua_getinfo(L, ">S", &ar) && ar.source && ar.source[0] == '@' && ar.linedefined > 0) {
              fn.file = ar.source + 1;
              fn.line = ar.linedefined;
            }
          }
          out.emplace(key, std::move(fn));
        }
      }
      lua_pop(L, 1);
    }
  });
  return out;
}

// Replaces rooms.define with a wrapper that also notes each defined type's
// name in a registry table; returns its reference (LUA_NOREF if none).
int record_room_defines(ScriptHost& host) {
  int ref = LUA_NOREF;
  inspect(host, "check: rooms.define", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_getfield(L, -1, "rooms");
    if (!lua_istable(L, -1)) return;
    luaL_loadstring(L,
                    "local define, names = ...\n"
                    "return function(name, ...) define(name, ...) names[#names + 1] = name end");
    lua_getfield(L, -2, "define");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_call(L, 2, 1);
    lua_setfield(L, -2, "define");
  });
  return ref;
}

std::vector<std::string> recorded_room_types(ScriptHost& host, int ref) {
  std::vector<std::string> names;
  if (ref == LUA_NOREF) return names;
  inspect(host, "check: room types", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
    for (lua_Integer i = 1; i <= n; ++i) {
      if (lua_rawgeti(L, -1, i) == LUA_TSTRING) names.push_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  });
  return names;
}

std::string directory_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string canonical(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

void finish_load(RoleLoad& load, ScriptHost& host, const std::string& table,
                 const std::map<std::string, HandlerFunction>& before) {
  load.globals_after = global_names(host);
  for (auto& [key, fn] : table_functions(host, table))
    if (!before.count(key)) load.handlers.push_back(fn);
}

RoleLoad load_as_server(uv_loop_t* loop, const std::string& path) {
  RoleLoad load{"server"};
  CheckServer api(loop);
  rooms::RoomConfig config;
  config.loop = loop;
  config.script_dir = directory_of(path);
  rooms::RoomManager manager(api, config);
  api.set_rooms(&manager);
  ScriptHost host(api, &open_server_modules, "check server", default_limits());
  int defines = record_room_defines(host);
  auto before = table_functions(host, "server");
  {
    StdoutSilenced quiet;
    load.ok = host.load(path, load.error);
  }
  finish_load(load, host, "server", before);
  for (const std::string& name : recorded_room_types(host, defines))
    if (const rooms::RoomType* type = manager.find_type(name)) load.defined_rooms.push_back(type->path);
  return load;
}

RoleLoad load_as_client(uv_loop_t* loop, const std::string& path) {
  RoleLoad load{"client"};
  CheckClient api(loop);
  ScriptHost host(api, &open_client_modules, "check client", default_limits());
  auto before = table_functions(host, "client");
  {
    StdoutSilenced quiet;
    load.ok = host.load(path, load.error);
  }
  finish_load(load, host, "client", before);
  return load;
}

// The builtins of a fresh room state: its globals and the fields of `room`.
void room_surface(uv_loop_t* loop, std::set<std::string>& globals, std::set<std::string>& room_fields) {
  CheckRoomSurface api(loop);
  ScriptHost host(api, &open_room_modules, "check room", default_limits());
  globals = global_names(host);
  table_functions(host, "room", &room_fields);
}

RoleLoad load_as_room(uv_loop_t* loop, const std::string& path, const std::set<std::string>& room_fields) {
  RoleLoad load{"room"};
  CheckServer api(loop);
  rooms::RoomConfig config;
  config.loop = loop;
  config.script_dir = directory_of(path);
  config.memory_limit_bytes = kDefaults.room_memory_limit_bytes;
  config.instruction_budget = kDefaults.instruction_budget;
  config.handler_timeout_ms = kDefaults.handler_timeout_ms;
  config.tick_rate_hz = kDefaults.tick_rate_hz;
  config.max_message_bytes = kDefaults.max_message_bytes;
  rooms::RoomManager manager(api, config);
  auto type = std::make_shared<rooms::RoomType>();
  type->name = "check";
  type->path = path;
  rooms::Room room(manager, type, 1);
  {
    StdoutSilenced quiet;
    load.ok = room.start(load.error);
  }
  if (ScriptHost* host = room.script()) {
    std::map<std::string, HandlerFunction> before;
    for (const std::string& field : room_fields) before.emplace(field, HandlerFunction{field});
    finish_load(load, *host, "room", before);
  }
  return load;
}

// "file:12: message" -> its parts; `path` when the message names it (Lua
// shortens a long name to "...tail").
CheckFinding parse_lua_error(const std::string& path, const std::string& message) {
  for (size_t colon = message.find(':'); colon != std::string::npos; colon = message.find(':', colon + 1)) {
    size_t digits = colon + 1;
    while (digits < message.size() && std::isdigit(static_cast<unsigned char>(message[digits]))) ++digits;
    if (digits == colon + 1 || digits >= message.size() || message[digits] != ':') continue;
    std::string file = message.substr(0, colon);
    if (file.rfind("...", 0) == 0 && path.size() >= file.size() - 3 &&
        path.compare(path.size() - (file.size() - 3), file.size() - 3, file, 3) == 0)
      file = path;
    size_t text = digits + 1;
    if (text < message.size() && message[text] == ' ') ++text;
    return CheckFinding{file, std::stoi(message.substr(colon + 1, digits - colon - 1)), message.substr(text)};
  }
  return CheckFinding{path, 0, message};
}

// The known name nearest `name`, if near enough to be a likely typo.
std::string nearest(const std::string& name, const std::set<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(1, name.size() / 3) + 1;  // at most a third of it wrong
  for (const std::string& k : known) {
    if (k == name) continue;
    size_t d = edit_distance(name, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  return best;
}

struct FileState {
  std::string path;
  std::string source;
  bool readable = false;
  bool compiles = false;
  bool room = false;
  GlobalScan scan;
};

// Reads and compiles the file; a finding for each failure.
void prepare(FileState& f, std::vector<CheckFinding>& findings) {
  std::ifstream in(f.path, std::ios::binary);
  if (!in) {
    findings.push_back(CheckFinding{f.path, 0, std::string("cannot read the file: ") + std::strerror(errno)});
    return;
  }
  std::ostringstream text;
  text << in.rdbuf();
  f.source = text.str();
  f.readable = true;
  std::unique_ptr<lua_State, decltype(&lua_close)> L(luaL_newstate(), &lua_close);
  if (!L) throw std::bad_alloc();
  std::string chunkname = "@" + f.path;
  if (luaL_loadbufferx(L.get(), f.source.data(), f.source.size(), chunkname.c_str(), "t") != LUA_OK) {
    const char* message = lua_tostring(L.get(), -1);
    CheckFinding finding = parse_lua_error(f.path, message ? message : "cannot compile");
    finding.message = "syntax error: " + finding.message;
    findings.push_back(std::move(finding));
    return;
  }
  f.compiles = true;
  f.scan = scan_globals(f.source);
  for (const GlobalFieldWrite& w : f.scan.field_writes)
    if (w.table == "room") f.room = true;
}

std::string handler_list(std::string_view table) {
  std::string list;
  for (std::string_view n : find_handler_table(table)->names) list += (list.empty() ? "" : ", ") + std::string(n);
  return list;
}

void check_handlers(const FileState& f, const RoleLoad& load, std::vector<CheckFinding>& findings) {
  const HandlerTable* table = find_handler_table(load.role);
  std::set<std::string> known(table->names.begin(), table->names.end());
  for (const HandlerFunction& fn : load.handlers) {
    if (known.count(fn.field)) continue;
    CheckFinding finding{fn.file.empty() ? f.path : fn.file, fn.line, ""};
    if (fn.file.empty() || canonical(fn.file) == canonical(f.path)) finding.file = f.path;
    if (finding.line == 0)
      for (const GlobalFieldWrite& w : f.scan.field_writes)
        if (w.table == load.role && w.field == fn.field) finding.line = w.line;
    std::string name = load.role + "." + fn.field;
    finding.message = name + " is not a handler nshost calls";
    if (std::string near = nearest(fn.field, known); !near.empty())
      finding.message += " (did you mean " + load.role + "." + near + "?)";
    else
      finding.message += " (" + load.role + " handlers: " + handler_list(load.role) + ")";
    findings.push_back(std::move(finding));
  }
}

void check_globals(const FileState& f, const std::vector<RoleLoad>& loads, const std::set<std::string>& builtins,
                   std::vector<CheckFinding>& findings) {
  std::set<std::string> declared = builtins;  // for writes in a function
  declared.insert(f.scan.top_level_writes.begin(), f.scan.top_level_writes.end());
  for (const RoleLoad& load : loads) declared.insert(load.globals_after.begin(), load.globals_after.end());
  std::set<std::string> defined = declared;  // for reads
  defined.insert(f.scan.writes.begin(), f.scan.writes.end());
  for (const GlobalUse& use : f.scan.uses) {
    std::string message;
    if (use.write && use.in_function && !declared.count(use.name)) {
      message = "assignment to undeclared global " + use.name;
      if (std::string near = nearest(use.name, declared); !near.empty()) message += " (did you mean " + near + "?)";
      else message += " (assign it at the top level, or make it local)";
    } else if (!use.write && !defined.count(use.name)) {
      message = "undefined global " + use.name;
      if (std::string near = nearest(use.name, defined); !near.empty()) message += " (did you mean " + near + "?)";
    } else {
      continue;
    }
    findings.push_back(CheckFinding{f.path, use.line, std::move(message)});
  }
}

// One finding per distinct load error, naming the roles that hit it.
void check_loads(const FileState& f, const std::vector<RoleLoad>& loads, std::vector<CheckFinding>& findings) {
  std::vector<std::pair<std::string, std::string>> errors;  // error, roles
  for (const RoleLoad& load : loads) {
    if (load.ok) continue;
    auto it = std::find_if(errors.begin(), errors.end(), [&](const auto& e) { return e.first == load.error; });
    if (it == errors.end()) errors.emplace_back(load.error, load.role);
    else it->second += " and " + load.role;
  }
  for (const auto& [error, roles] : errors) {
    CheckFinding finding = parse_lua_error(f.path, error);
    finding.message += " (running the top level as " + roles + ")";
    findings.push_back(std::move(finding));
  }
}

}  // namespace

std::string CheckFinding::text() const {
  return line > 0 ? file + ":" + std::to_string(line) + ": " + message : file + ": " + message;
}

CheckReport check_scripts(const std::vector<std::string>& paths) {
  CheckReport report;
  CheckLoop loop;
  if (!loop.ok()) {
    report.findings.push_back(CheckFinding{"nshost check", 0, "cannot create a libuv loop"});
    return report;
  }
  std::vector<FileState> files;
  std::set<std::string> seen;
  for (const std::string& p : paths)
    if (seen.insert(canonical(p)).second) files.push_back(FileState{p});
  std::vector<std::vector<CheckFinding>> per_file(files.size());
  std::vector<std::vector<RoleLoad>> loads(files.size());
  std::set<std::string> room_paths;  // canonical paths rooms.define named
  // Servers first: their rooms.define calls name the room files.
  for (size_t i = 0; i < files.size(); ++i) {
    prepare(files[i], per_file[i]);
    if (!files[i].compiles || files[i].room || room_paths.count(canonical(files[i].path))) continue;
    loads[i].push_back(load_as_server(loop.get(), files[i].path));
    const std::vector<std::string> defined = loads[i].back().defined_rooms;
    for (const std::string& room : defined) {
      std::string key = canonical(room);
      room_paths.insert(key);
      if (seen.insert(key).second) {
        files.push_back(FileState{room});
        per_file.emplace_back();
        loads.emplace_back();
      }
    }
  }
  std::set<std::string> room_globals, room_fields;
  room_surface(loop.get(), room_globals, room_fields);
  std::set<std::string> role_globals;
  {
    CheckServer server_api(loop.get());
    CheckClient client_api(loop.get());
    ScriptHost server(server_api, &open_server_modules, "check server", default_limits());
    ScriptHost client(client_api, &open_client_modules, "check client", default_limits());
    role_globals = global_names(server);
    for (const std::string& g : global_names(client)) role_globals.insert(g);
  }
  for (size_t i = 0; i < files.size(); ++i) {
    FileState& f = files[i];
    if (!f.compiles) continue;
    if (room_paths.count(canonical(f.path))) f.room = true;
    if (f.room) {
      loads[i].clear();
      loads[i].push_back(load_as_room(loop.get(), f.path, room_fields));
    } else {
      loads[i].push_back(load_as_client(loop.get(), f.path));
    }
    check_loads(f, loads[i], per_file[i]);
    for (const RoleLoad& load : loads[i]) check_handlers(f, load, per_file[i]);
    check_globals(f, loads[i], f.room ? room_globals : role_globals, per_file[i]);
  }
  for (size_t i = 0; i < files.size(); ++i) {
    auto& found = per_file[i];
    std::stable_sort(found.begin(), found.end(), [](const CheckFinding& a, const CheckFinding& b) {
      return a.file != b.file ? a.file < b.file : a.line < b.line;
    });
    found.erase(std::unique(found.begin(), found.end(),
                            [](const CheckFinding& a, const CheckFinding& b) { return a.text() == b.text(); }),
                found.end());
    report.files.push_back(files[i].path);
    report.findings.insert(report.findings.end(), found.begin(), found.end());
  }
  return report;
}

int run_check(const std::vector<std::string>& paths, std::FILE* out) {
  CheckReport report = check_scripts(paths);
  for (const CheckFinding& f : report.findings) std::fprintf(out, "%s\n", f.text().c_str());
  size_t n = report.files.size(), m = report.findings.size();
  std::fprintf(out, "nshost check: %zu file%s, %zu finding%s\n", n, n == 1 ? "" : "s", m, m == 1 ? "" : "s");
  return m == 0 ? 0 : 1;
}

}  // namespace nshost
