// matchmaking.define in the server script (docs/matchmaking.md): which room
// types players can queue for, how many make a match, and the script's
// `match(a, b)` that says whether two of them may play together.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/core/log.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

int traceback_handler(lua_State* L) {
  const char* message = lua_tostring(L, 1);
  luaL_traceback(L, L, message ? message : "(error object is not a string)", 1);
  return 1;
}

void push_properties(lua_State* L, const rooms::Ticket& t) {
  if (t.properties.kind == rooms::Value::Kind::nil) lua_newtable(L);
  else rooms::push_value(L, t.properties);
}

// The script's match(a, b), kept as a registry ref of the server script's
// state (which outlives the room manager, and so this). Each call runs as a
// handler: protected, under --handler-timeout and --instruction-budget. A
// call that raises or runs out of its limits answers "not compatible" and is
// a script error to the host (--strict); the first such failure of a type is
// logged with its traceback, later ones only counted (the matcher asks each
// pair once, but a broken function would otherwise log once per pair).
class LuaMatchPredicate final : public rooms::MatchPredicate {
 public:
  LuaMatchPredicate(ScriptHost& script, int ref, std::string room_type)
      : script_(script), ref_(ref), room_type_(std::move(room_type)) {}

  bool compatible(const rooms::Ticket& a, const rooms::Ticket& b) override {
    bool verdict = false;
    std::string error;
    bool ran = script_.call_back("matchmaking match function", [&](lua_State* L) {
      lua_pushcfunction(L, traceback_handler);
      int handler = lua_gettop(L);
      lua_rawgeti(L, LUA_REGISTRYINDEX, ref_);
      push_properties(L, a);
      push_properties(L, b);
      if (lua_pcall(L, 2, 1, handler) != LUA_OK) {
        const char* text = lua_tostring(L, -1);
        error = text ? text : "(error object is not a string)";
      } else {
        verdict = lua_toboolean(L, -1);
      }
      return 0;
    });
    if (!ran && error.empty()) error = "the call could not be made (logged above)";
    if (error.empty()) return verdict;
    script_.host().on_script_error();  // --strict stops the server, as for a handler's error
    if (failures_++ == 0)
      log_write(LogLevel::error, script_.log_tag(),
                "matchmaking: match function of room type '" + room_type_ + "' failed (treated as not compatible; "
                "later failures of it are not logged): " + error);
    return false;
  }

 private:
  ScriptHost& script_;
  int ref_;
  std::string room_type_;
  uint64_t failures_ = 0;
};

// matchmaking.define(room_type, options) -> nothing; raises on misuse.
int matchmaking_define(lua_State* L) {
  StackGuard guard(L);
  ScriptHost& host = ScriptHost::from(L);
  if (host.in_handler())
    return luaL_error(L, "matchmaking.define: only while the script loads, not from a handler");
  rooms::RoomManager* manager = server_api(L).rooms();
  if (!manager) return luaL_error(L, "matchmaking.define: this server has no rooms");
  std::string_view name = check_bytes(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {  // unknown keys are a typo
    lua_pop(L, 1);
    const char* key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : nullptr;
    if (!key || (std::strcmp(key, "size") != 0 && std::strcmp(key, "min_size") != 0 &&
                 std::strcmp(key, "max_wait_s") != 0 && std::strcmp(key, "match") != 0))
      return luaL_error(L, "matchmaking.define: unknown option '%s' (size, min_size, max_wait_s, match)",
                        luaL_tolstring(L, -1, nullptr));
  }
  rooms::MatchType type;
  type.room_type = std::string(name);
  if (lua_getfield(L, 2, "size") == LUA_TNIL) return luaL_error(L, "matchmaking.define: options.size is required");
  lua_pop(L, 1);
  const char* fn = "matchmaking.define";
  type.size = static_cast<uint32_t>(integer_option(L, 2, fn, "size", 1, rooms::MatchType::kMaxSize, 0));
  type.min_size = static_cast<uint32_t>(integer_option(L, 2, fn, "min_size", 1, type.size, type.size));
  int t = lua_getfield(L, 2, "max_wait_s");
  if (t != LUA_TNIL) {
    lua_Number s = lua_tonumber(L, -1);
    if (t != LUA_TNUMBER || !std::isfinite(s) || s < 0 || s * 1000 > static_cast<lua_Number>(rooms::MatchType::kMaxWaitMs))
      return luaL_error(L, "matchmaking.define: options.max_wait_s must be a number of seconds in 0..86400");
    type.max_wait_ms = static_cast<uint64_t>(std::llround(s * 1000));
  }
  lua_pop(L, 1);
  t = lua_getfield(L, 2, "match");
  if (t != LUA_TNIL && t != LUA_TFUNCTION) return luaL_error(L, "matchmaking.define: options.match must be a function");
  int ref = LUA_NOREF;
  if (t == LUA_TFUNCTION) {
    lua_pushvalue(L, -1);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 1);
  if (ref != LUA_NOREF) type.predicate = std::make_shared<LuaMatchPredicate>(host, ref, type.room_type);
  std::string error;
  if (!manager->define_matchmaking(std::move(type), error)) {
    if (ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "matchmaking.define: %s", error.c_str());
  }
  return guard.returns(0);
}

const luaL_Reg matchmaking_functions[] = {
    {"define", guarded<matchmaking_define>},
    {nullptr, nullptr},
};

}  // namespace

void open_matchmaking_server(lua_State* L) {
  luaL_newlib(L, matchmaking_functions);
  lua_setglobal(L, "matchmaking");
}

}  // namespace nshost
