// ScriptHost::reload (hot reload, --watch): the entry chunk runs again in the
// same state against fresh handler and module tables that replace the old
// ones only when it ran clean (docs/operations.md "Hot reload").
#include <algorithm>
#include <cstdio>

#include "runtime/script/handler_names.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

bool file_exists(const std::string& path) {
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    std::fclose(f);
    return true;
  }
  return false;
}

bool is_handler_of(const HandlerTable* table, lua_State* L, int key_index) {
  if (!table || lua_type(L, key_index) != LUA_TSTRING) return false;
  std::string_view key = lua_tostring(L, key_index);
  return std::find(table->names.begin(), table->names.end(), key) != table->names.end();
}

// Whether require would find module `name` in `root` (the script's directory),
// the first place it looks on disk.
bool module_in_tree(const std::string& root, std::string name) {
  std::replace(name.begin(), name.end(), '.', '/');
  return file_exists(root + "/" + name + ".lua") || file_exists(root + "/" + name + "/init.lua");
}

}  // namespace

bool ScriptHost::reload(std::string& error) {
  if (entry_path_.empty() || bundle_) {
    error = "nothing to reload: this state was not loaded from a file";
    return false;
  }
  if (limits_depth_ > 0 || handler_depth_ > 0) {
    error = "cannot reload from inside a call into the state";
    return false;
  }
  Call call{Call::Kind::reload};
  call.chunk_name = entry_path_.c_str();
  if (!run_chunk(call, error)) return false;
  ++code_version_;
  return true;
}

// Inside the protected call and under the limits. Everything that allocates
// happens before the swap; the swap and its undo only overwrite fields that
// exist (lua_rawset without allocating, no metamethod), so a chunk that
// fails (a syntax error, a raise, the memory cap, a timeout) cannot leave a
// handler table half-replaced.
int ScriptHost::run_reload(lua_State* L, const Call& call) {
  ScriptHost& self = ScriptHost::from(L);
  const char* table_name = self.host_.handler_table();
  luaL_checkstack(L, 16, "reload");
  if (luaL_loadfilex(L, call.chunk_name, "t") != LUA_OK) return lua_error(L);
  const int chunk = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  const int globals = lua_gettop(L);
  lua_pushstring(L, table_name);
  const int table_key = lua_gettop(L);
  lua_pushvalue(L, table_key);
  lua_rawget(L, globals);
  const int old_table = lua_gettop(L);
  // The fresh handler table: what the old one held that is not a handler
  // (the room table's builtins, data the script keeps there), its metatable.
  lua_newtable(L);
  const int new_table = lua_gettop(L);
  if (lua_istable(L, old_table)) {
    const HandlerTable* handlers = find_handler_table(table_name);
    for (lua_pushnil(L); lua_next(L, old_table) != 0; lua_pop(L, 1)) {
      if (is_handler_of(handlers, L, -2)) continue;
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, new_table);
    }
    if (lua_getmetatable(L, old_table)) lua_setmetatable(L, new_table);
  }
  // The fresh module table: every module but those require found in the
  // script's directory, which load again when the chunk requires them.
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  const int old_loaded = lua_gettop(L);
  lua_newtable(L);
  const int new_loaded = lua_gettop(L);
  const std::string root = self.module_roots_.empty() ? std::string() : self.module_roots_.front();
  for (lua_pushnil(L); lua_next(L, old_loaded) != 0; lua_pop(L, 1)) {
    if (lua_type(L, -2) == LUA_TSTRING && !root.empty()) {
      std::string name = lua_tostring(L, -2);
      bool builtin = std::find(self.builtin_modules_.begin(), self.builtin_modules_.end(), name) !=
                     self.builtin_modules_.end();
      if (!builtin && module_in_tree(root, name)) continue;
    }
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_rawset(L, new_loaded);
  }
  lua_pushliteral(L, LUA_LOADED_TABLE);
  const int loaded_key = lua_gettop(L);
  lua_pushliteral(L, "package");
  lua_rawget(L, globals);
  const int package = lua_gettop(L);
  lua_pushliteral(L, "loaded");
  const int package_loaded_key = lua_gettop(L);
  // package.loaded is swapped with the registry's table only when it is that
  // table (a script may have replaced it; then it is left alone).
  bool swap_package = false;
  if (lua_istable(L, package)) {
    lua_pushvalue(L, package_loaded_key);
    lua_rawget(L, package);
    swap_package = lua_rawequal(L, -1, old_loaded);
    lua_pop(L, 1);
  }
  auto install = [&](int table, int loaded) {
    lua_pushvalue(L, table_key);
    lua_pushvalue(L, table);
    lua_rawset(L, globals);
    lua_pushvalue(L, loaded_key);
    lua_pushvalue(L, loaded);
    lua_rawset(L, LUA_REGISTRYINDEX);
    if (swap_package) {
      lua_pushvalue(L, package_loaded_key);
      lua_pushvalue(L, loaded);
      lua_rawset(L, package);
    }
  };
  // A missing handler table (the script set it to nil) is created by this
  // first install: allocating, but before the chunk runs; the undo then only
  // overwrites it.
  install(new_table, new_loaded);
  lua_pushvalue(L, chunk);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    install(old_table, old_loaded);  // [..., error]
    return lua_error(L);
  }
  return 0;
}

}  // namespace nshost
