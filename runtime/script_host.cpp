#include "runtime/script_host.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "bindings/bindings.hpp"
#include "runtime/log.hpp"
#include "runtime/sandbox.hpp"

namespace nshost {
namespace {

// Message handler for every handler call: the error plus a Lua traceback.
int traceback_handler(lua_State* L) {
  const char* message = lua_tostring(L, 1);
  if (!message) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, message, 1);
  return 1;
}

bool readable(const std::string& path) {
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    std::fclose(f);
    return true;
  }
  return false;
}

// package.searchers entry: modules come from the script's tree and scripts/
// only, as Lua text (mode "t": precompiled chunks are refused).
int search_module_roots(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  std::string relative(name);
  if (relative.find_first_of("/\\") != std::string::npos)
    return luaL_error(L, "module name '%s' may not contain a path separator", name);
  if (relative.empty() || relative.front() == '.' || relative.back() == '.' || relative.find("..") != std::string::npos)
    return luaL_error(L, "module name '%s' is not a dotted name", name);
  for (char& c : relative)
    if (c == '.') c = '/';
  std::string tried;
  if (const Bundle* bundle = ScriptHost::from(L).bundle()) {
    for (const char* suffix : {".lua", "/init.lua"}) {
      std::string path = relative + suffix;
      const BundleFile* file = bundle->find(path);
      if (!file) {
        tried += "\n\tno file '" + path + "' in the bundle";
        continue;
      }
      std::string chunkname = "@" + path;
      if (luaL_loadbufferx(L, file->text.data(), file->text.size(), chunkname.c_str(), "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from the bundle:\n\t%s", name, lua_tostring(L, -1));
      lua_pushstring(L, path.c_str());
      return 2;  // [loader, path]
    }
  }
  for (const std::string& root : ScriptHost::from(L).module_roots()) {
    for (const char* suffix : {".lua", "/init.lua"}) {
      std::string path = root + "/" + relative + suffix;
      if (!readable(path)) {
        tried += "\n\tno file '" + path + "'";
        continue;
      }
      if (luaL_loadfilex(L, path.c_str(), "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path.c_str(),
                          lua_tostring(L, -1));
      lua_pushstring(L, path.c_str());
      return 2;  // [loader, path]
    }
  }
  lua_pushstring(L, tried.c_str());
  return 1;
}

std::string directory_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string shipped_scripts_dir() {
  if (const char* env = std::getenv("NSHOST_SCRIPTS_DIR"); env && *env) return env;
  return NSHOST_SCRIPTS_DIR;
}

void* ScriptHost::allocate(void* ud, void* ptr, size_t old_size, size_t new_size) {
  auto* budget = static_cast<MemoryBudget*>(ud);
  if (!ptr) old_size = 0;  // then old_size encodes the object type, not a size
  if (new_size == 0) {
    std::free(ptr);
    budget->used -= old_size;
    return nullptr;
  }
  if (budget->limit != 0 && budget->enforcing && new_size > old_size &&
      budget->used - old_size + new_size + budget->external > budget->limit)
    return nullptr;  // Lua raises LUA_ERRMEM in the running handler
  void* grown = std::realloc(ptr, new_size);
  if (grown) budget->used = budget->used - old_size + new_size;
  return grown;
}

bool ScriptHost::charge_external(size_t bytes) {
  if (memory_.limit != 0 && (bytes > memory_.limit || memory_.used + memory_.external > memory_.limit - bytes))
    return false;
  memory_.external += bytes;
  return true;
}

void ScriptHost::release_external(size_t bytes) { memory_.external -= std::min(bytes, memory_.external); }

ScriptHost::ScriptHost(HostApi& host, std::string log_tag) : ScriptHost(host, std::move(log_tag), Sandbox{}) {}

ScriptHost::ScriptHost(HostApi& host, std::string log_tag, const Sandbox& sandbox)
    : host_(host), log_tag_(std::move(log_tag)), sandbox_(sandbox) {
  state_ = lua_newstate(&ScriptHost::allocate, &memory_);
  if (!state_) throw std::bad_alloc();
  *static_cast<ScriptHost**>(lua_getextraspace(state_)) = this;
  lua_atpanic(state_, [](lua_State* L) -> int {
    log_write(LogLevel::error, ScriptHost::from(L).log_tag(),
              std::string("unprotected Lua error: ") + (lua_tostring(L, -1) ? lua_tostring(L, -1) : "?"));
    std::abort();
  });
  lua_State* L = state_;
  if (sandbox_.enabled) open_sandboxed_libs(L);
  else luaL_openlibs(L);
  install_require();
  lua_newtable(L);
  lua_setglobal(L, "server");
  lua_newtable(L);
  lua_setglobal(L, "client");
  open_log(L);
  open_sys(L);
  open_tick(L);
  open_client_handle(L);
  open_net(L);
  open_json(L);
  if (host_.role() == Role::server) open_server(L);
  else open_client(L);
  open_shard(L);
  // coroutine.resume/wrap must go through the host (see the header).
  if (lua_getglobal(L, LUA_COLIBNAME) == LUA_TTABLE) {
    lua_pushcfunction(L, &ScriptHost::coroutine_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, &ScriptHost::coroutine_wrap);
    lua_setfield(L, -2, "wrap");
  }
  lua_pop(L, 1);
  // The limits hold for every state (issue 5); `enabled` adds the allow-list.
  memory_.limit = sandbox_.memory_limit_bytes;
  if (sandbox_.instruction_budget > 0) lua_sethook(L, &ScriptHost::limits_hook, LUA_MASKCOUNT, kBudgetStep);
  if (sandbox_.handler_timeout_ms > 0) deadline_watch_ = DeadlineWatch::for_this_thread(sandbox_.handler_timeout_ms);
}

void ScriptHost::limits_hook(lua_State* L, lua_Debug*) {
  ScriptHost& self = ScriptHost::from(L);
  if (self.timed_out_) {
    // As for an exhausted budget: every instruction raises, so a pcall in
    // the script cannot swallow it.
    lua_sethook(L, &ScriptHost::limits_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "handler timed out (ran over %d ms; --handler-timeout)",
               static_cast<int>(self.sandbox_.handler_timeout_ms));
  }
  if (self.sandbox_.instruction_budget == 0) {
    // A coroutine hooked by an earlier timeout, resumed outside the host's
    // coroutine.resume (e.g. by the debug library).
    lua_sethook(L, nullptr, 0, 0);
    return;
  }
  if (!self.budget_exhausted_) {
    // A coroutine may still run at the step of an earlier exhaustion.
    if (lua_gethookcount(L) != kBudgetStep) lua_sethook(L, &ScriptHost::limits_hook, LUA_MASKCOUNT, kBudgetStep);
    self.instructions_used_ += kBudgetStep;
    if (self.instructions_used_ <= self.sandbox_.instruction_budget) return;
    self.budget_exhausted_ = true;
  }
  lua_sethook(L, &ScriptHost::limits_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "instruction budget exceeded (over %I instructions in one handler; --instruction-budget)",
             static_cast<lua_Integer>(self.sandbox_.instruction_budget));
}

void ScriptHost::on_deadline() noexcept {
  timed_out_ = 1;
  lua_sethook(state_, &ScriptHost::limits_hook, LUA_MASKCOUNT, 1);
  for (int i = 0; i < resume_depth_; ++i) lua_sethook(resumed_[i], &ScriptHost::limits_hook, LUA_MASKCOUNT, 1);
}

void ScriptHost::begin_limits() {
  if (handler_depth_ > 0) return;
  instructions_used_ = 0;
  budget_exhausted_ = false;
  memory_.enforcing = true;
  if (deadline_watch_) {
    timed_out_ = 0;
    outer_armed_ = deadline_watch_->arm(
        this, DeadlineWatch::monotonic_now_ns() + int64_t{sandbox_.handler_timeout_ms} * 1'000'000);
  }
}

void ScriptHost::end_limits() {
  if (handler_depth_ > 0) return;
  memory_.enforcing = false;
  if (deadline_watch_) deadline_watch_->disarm(outer_armed_);
  if (!timed_out_ && !budget_exhausted_) return;
  timed_out_ = 0;
  budget_exhausted_ = false;
  if (sandbox_.instruction_budget > 0) lua_sethook(state_, &ScriptHost::limits_hook, LUA_MASKCOUNT, kBudgetStep);
  else lua_sethook(state_, nullptr, 0, 0);
}

int ScriptHost::resume_tracked(lua_State* L, lua_State* co, int nargs, bool close_on_error) {
  ScriptHost& self = ScriptHost::from(L);
  if (!lua_checkstack(co, nargs)) {
    lua_pop(L, nargs);
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  if (self.resume_depth_ >= kMaxResumeDepth) {
    lua_pop(L, nargs);
    lua_pushliteral(L, "coroutines nested too deeply");
    return -1;
  }
  lua_xmove(L, co, nargs);
  // The coroutine runs under the resumer's limits: no hook, the budget's, or
  // an expired deadline's. Other hooks (the debug library's) are left alone.
  lua_Hook ours = &ScriptHost::limits_hook;
  if (lua_gethook(L) == ours || lua_gethook(co) == ours)
    lua_sethook(co, lua_gethook(L), lua_gethookmask(L), lua_gethookcount(L));
  struct Tracked {
    ScriptHost& self;
    Tracked(ScriptHost& s, lua_State* co) : self(s) {
      self.resumed_[self.resume_depth_] = co;
      std::atomic_signal_fence(std::memory_order_seq_cst);
      self.resume_depth_ = self.resume_depth_ + 1;
    }
    ~Tracked() { self.resume_depth_ = self.resume_depth_ - 1; }
  } tracked(self, co);
  // A deadline that passed while the hook above was being copied.
  if (self.timed_out_) lua_sethook(co, ours, LUA_MASKCOUNT, 1);
  int nresults = 0;
  int status = lua_resume(co, L, nargs, &nresults);
  if (status != LUA_OK && status != LUA_YIELD) {
    // If it died of the error (not a refused resume of a running or dead
    // one), closing its to-be-closed variables leaves the error (or a
    // closing method's own) on top.
    int co_status = lua_status(co);
    if (close_on_error && co_status != LUA_OK && co_status != LUA_YIELD) lua_resetthread(co);
    lua_xmove(co, L, 1);  // [..., error]
    return -1;
  }
  if (!lua_checkstack(L, nresults + 1)) {
    lua_pop(co, nresults);
    lua_pushliteral(L, "too many results to resume");
    return -1;
  }
  lua_xmove(co, L, nresults);
  return nresults;
}

int ScriptHost::coroutine_resume(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  int nresults = resume_tracked(L, co, lua_gettop(L) - 1, false);
  if (nresults < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);  // [false, error]
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(nresults + 1));  // [true, results...]
  return nresults + 1;
}

int ScriptHost::coroutine_wrap(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State* co = lua_newthread(L);  // [f, co]
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, &ScriptHost::wrapped_call, 1);
  return 1;
}

int ScriptHost::wrapped_call(lua_State* L) {
  lua_State* co = lua_tothread(L, lua_upvalueindex(1));
  int nresults = resume_tracked(L, co, lua_gettop(L), true);
  if (nresults >= 0) return nresults;
  if (lua_type(L, -1) == LUA_TSTRING) {  // position of the call, as the standard wrap adds
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

ScriptHost::~ScriptHost() {
  if (state_) lua_close(state_);
}

ScriptHost& ScriptHost::from(lua_State* L) { return **static_cast<ScriptHost**>(lua_getextraspace(L)); }

void ScriptHost::install_require() {
  lua_State* L = state_;
  lua_getglobal(L, "package");  // [package]
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "searchers");  // [package, searchers]
  lua_createtable(L, 2, 0);          // [package, searchers, new]
  lua_rawgeti(L, -2, 1);             // the preload searcher stays first
  lua_rawseti(L, -2, 1);
  lua_pushcfunction(L, search_module_roots);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, -3, "searchers");  // [package, searchers]
  lua_pop(L, 2);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "_CLIBS");  // no C modules
}

bool ScriptHost::load(const std::string& path, std::string& error) {
  module_roots_ = {directory_of(path), shipped_scripts_dir()};
  lua_State* L = state_;
  if (luaL_loadfilex(L, path.c_str(), "t") != LUA_OK) {
    error = lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot load script";
    lua_pop(L, 1);
    return false;
  }
  return run_chunk(error);
}

bool ScriptHost::load_bundle(std::shared_ptr<const Bundle> bundle, std::string& error) {
  bundle_ = std::move(bundle);
  module_roots_ = {shipped_scripts_dir()};
  const BundleFile* entry = bundle_->find(bundle_->entry);
  if (!entry) {
    error = "bundle has no entry script";
    return false;
  }
  lua_State* L = state_;
  std::string chunkname = "@" + entry->path;
  if (luaL_loadbufferx(L, entry->text.data(), entry->text.size(), chunkname.c_str(), "t") != LUA_OK) {
    error = lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot load script";
    lua_pop(L, 1);
    return false;
  }
  return run_chunk(error);
}

bool ScriptHost::run_chunk(std::string& error) {
  lua_State* L = state_;
  begin_limits();
  int status = lua_pcall(L, 0, 0, 0);
  end_limits();
  if (status != LUA_OK) {
    error = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
    lua_pop(L, 1);
    return false;
  }
  return true;
}

bool ScriptHost::push_handler(const char* name) {
  lua_State* L = state_;
  if (lua_getglobal(L, role_name(host_.role())) != LUA_TTABLE) {
    lua_pop(L, 1);
    return false;
  }
  int type = lua_getfield(L, -1, name);  // [role_table, handler]
  lua_remove(L, -2);                     // [handler]
  if (type == LUA_TFUNCTION) return true;
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return false;
  }
  if (luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
    lua_pop(L, 1);  // a callable object is a handler too
    return true;
  }
  log_write(LogLevel::error, log_tag_,
            std::string(role_name(host_.role())) + "." + name + " is a " + luaL_typename(L, -1) +
                ", not a function; ignored");
  ++error_count_;
  lua_pop(L, 1);
  return false;
}

bool ScriptHost::has_handler(const char* name) {
  if (!push_handler(name)) return false;
  lua_pop(state_, 1);
  return true;
}

bool ScriptHost::call_pushed(const char* name, int nargs) {
  lua_State* L = state_;
  int handler_index = lua_gettop(L) - nargs;  // [..., handler, args...]
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, handler_index);  // [..., traceback, handler, args...]
  begin_limits();
  ++handler_depth_;
  int status = lua_pcall(L, nargs, 0, handler_index);
  --handler_depth_;
  end_limits();
  if (status == LUA_OK) {
    lua_pop(L, 1);
    return true;
  }
  std::string message = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
  lua_pop(L, 2);
  ++error_count_;
  log_write(LogLevel::error, log_tag_,
            std::string("error in ") + role_name(host_.role()) + "." + name + ": " + message);
  host_.on_script_error();
  return false;
}

}  // namespace nshost
