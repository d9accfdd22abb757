#include "runtime/script/script_host.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "runtime/core/log.hpp"
#include "runtime/script/lua_guard.hpp"
#include "runtime/script/sandbox.hpp"

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

// The target armed around lua_close: the state is going away, so there is
// no hook to set; the watchdog's escalation is what ends a stuck close.
struct ClosingTarget final : DeadlineWatch::Target {
  void on_deadline() noexcept override {}
} closing_target;

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

void push_client_handle(lua_State* L, ClientId id, uint64_t session_id) {
  auto* h = static_cast<ClientHandle*>(lua_newuserdatauv(L, sizeof(ClientHandle), 1));
  h->id = id;
  h->session_id = session_id;
  luaL_setmetatable(L, kClientHandleType);
}

ScriptHost::ScriptHost(HostApi& host, ModuleOpener open_modules, std::string log_tag)
    : ScriptHost(host, open_modules, std::move(log_tag), Sandbox{}) {}

ScriptHost::ScriptHost(HostApi& host, ModuleOpener open_modules, std::string log_tag, const Sandbox& sandbox)
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
  open_string_patterns(L);
  install_require();
  lua_newtable(L);
  lua_setglobal(L, "server");
  lua_newtable(L);
  lua_setglobal(L, "client");
  open_modules(L);
  // coroutine.resume/wrap must go through the host (see the header); after
  // the surface, so nothing it opens can replace them.
  if (lua_getglobal(L, LUA_COLIBNAME) == LUA_TTABLE) {
    lua_pushcfunction(L, &ScriptHost::coroutine_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, &ScriptHost::coroutine_wrap);
    lua_setfield(L, -2, "wrap");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, &ScriptHost::xpcall);
  lua_setglobal(L, "xpcall");
  // The limits hold for every state; `enabled` adds the allow-list.
  memory_.limit = sandbox_.memory_limit_bytes;
  if (sandbox_.instruction_budget > 0) lua_sethook(L, &ScriptHost::limits_hook, LUA_MASKCOUNT, kBudgetStep);
  if (sandbox_.handler_timeout_ms > 0) deadline_watch_ = DeadlineWatch::for_this_thread(sandbox_.handler_timeout_ms);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
    if (lua_type(L, -2) == LUA_TSTRING) builtin_modules_.emplace_back(lua_tostring(L, -2));
  lua_pop(L, 1);
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
  if (limits_depth_++ > 0) return;
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
  if (--limits_depth_ > 0) return;
  memory_.enforcing = false;
  if (deadline_watch_) deadline_watch_->disarm(outer_armed_);
  if (!timed_out_ && !budget_exhausted_) return;
  if (timed_out_) host_.on_handler_timeout();
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

int ScriptHost::xpcall_message_handler(lua_State* L) {
  ScriptHost& self = ScriptHost::from(L);
  if (self.timed_out_ || self.budget_exhausted_) return 1;  // the host's error, as it is
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

int ScriptHost::xpcall_finish(lua_State* L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;  // [false, error]
  }
  return lua_gettop(L) - static_cast<int>(extra);  // [true, results...]
}

int ScriptHost::xpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, &ScriptHost::xpcall_message_handler, 1);
  lua_replace(L, 2);  // [f, guarded msgh, args...]
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);  // [f, msgh, true, f, args...]
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, &ScriptHost::xpcall_finish);
  return xpcall_finish(L, status, 2);
}

ScriptHost::~ScriptHost() {
  if (!state_) return;
  // lua_close runs the finalizers still pending, with hooks off: only the
  // watchdog's escalation can end one that loops. Their allocations stay
  // under the cap (a failure there is caught by Lua's own protected call).
  DeadlineWatch::Armed previous;
  if (deadline_watch_)
    previous = deadline_watch_->arm(&closing_target,
                                    DeadlineWatch::monotonic_now_ns() + int64_t{sandbox_.handler_timeout_ms} * 1'000'000);
  memory_.enforcing = true;
  closing_ = true;
  lua_close(state_);
  state_ = nullptr;
  if (deadline_watch_) deadline_watch_->disarm(previous);
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
  entry_path_ = path;
  Call call{Call::Kind::chunk};
  call.chunk_name = path.c_str();
  if (!run_chunk(call, error)) return false;
  code_version_ = 1;
  return true;
}

bool ScriptHost::load_bundle(std::shared_ptr<const Bundle> bundle, std::string& error) {
  bundle_ = std::move(bundle);
  module_roots_ = {shipped_scripts_dir()};
  const BundleFile* entry = bundle_->find(bundle_->entry);
  if (!entry) {
    error = "bundle has no entry script";
    return false;
  }
  std::string chunkname = "@" + entry->path;
  Call call{Call::Kind::chunk};
  call.chunk = &entry->text;
  call.chunk_name = chunkname.c_str();
  if (!run_chunk(call, error)) return false;
  code_version_ = 1;
  return true;
}

bool ScriptHost::run_chunk(Call& call, std::string& error) {
  // No traceback: a load error is one line ("game.lua:12: ...").
  if (protected_run(call, false) == LUA_OK) return true;
  lua_State* L = state_;
  error = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
  lua_pop(L, 1);
  return false;
}

int ScriptHost::run_call(lua_State* L) {
  Call& call = *static_cast<Call*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  switch (call.kind) {
    case Call::Kind::chunk: {
      int status = call.chunk ? luaL_loadbufferx(L, call.chunk->data(), call.chunk->size(), call.chunk_name, "t")
                              : luaL_loadfilex(L, call.chunk_name, "t");
      if (status != LUA_OK) return lua_error(L);
      lua_call(L, 0, 0);
      return 0;
    }
    case Call::Kind::reload:
      return run_reload(L, call);
    case Call::Kind::work:
    case Call::Kind::handler_work:
      call.pusher->call(call.pusher->fn, L);
      return 0;
    case Call::Kind::callback: {
      int pushed = call.pusher->call(call.pusher->fn, L);
      lua_call(L, pushed - 1, 0);
      return 0;
    }
    case Call::Kind::handler:
    case Call::Kind::lookup:
      break;
  }
  // Either lookup may run the script's metamethods (an __index on _G or on
  // the role table): that is why it is in here.
  if (lua_getglobal(L, ScriptHost::from(L).host_.handler_table()) != LUA_TTABLE) return 0;
  int type = lua_getfield(L, 1, call.name);  // [role_table, handler]
  if (type == LUA_TNIL) return 0;
  if (type != LUA_TFUNCTION) {
    // A callable object is a handler too (the metafield is read raw).
    if (luaL_getmetafield(L, 2, "__call") == LUA_TNIL) {
      call.not_callable = luaL_typename(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  call.found = true;
  if (call.kind == Call::Kind::lookup) return 0;
  lua_remove(L, 1);  // [handler]
  int nargs = call.pusher ? call.pusher->call(call.pusher->fn, L) : 0;
  if (!call.taker) {
    lua_call(L, nargs, 0);
    return 0;
  }
  lua_call(L, nargs, LUA_MULTRET);  // [results...]
  call.taker->call(call.taker->fn, L);
  return 0;
}

int ScriptHost::protected_run(Call& call, bool traceback) {
  lua_State* L = state_;
  int base = lua_gettop(L);
  // Neither push allocates: nothing runs outside the pcall.
  if (traceback) lua_pushcfunction(L, traceback_handler);
  lua_pushcfunction(L, guarded<&ScriptHost::run_call>);
  lua_pushlightuserdata(L, &call);
  bool as_handler =
      call.kind == Call::Kind::handler || call.kind == Call::Kind::lookup || call.kind == Call::Kind::handler_work ||
      call.kind == Call::Kind::callback;
  begin_limits();
  if (as_handler) ++handler_depth_;
  int status = lua_pcall(L, 1, 0, traceback ? base + 1 : 0);
  if (as_handler) --handler_depth_;
  end_limits();
  if (status == LUA_ERRMEM) ++memory_error_count_;
  if (traceback) lua_remove(L, base + 1);
  return status;  // LUA_OK: the stack is as it was; else [..., message]
}

void ScriptHost::report_not_callable(const Call& call) {
  if (!call.not_callable) return;
  log_event(LogLevel::error, log_tag_, "script_error",
            std::string(host_.handler_table()) + "." + call.name + " is a " + call.not_callable +
                ", not a function; ignored",
            {{"where", std::string(host_.handler_table()) + "." + call.name}});
  ++error_count_;
}

bool ScriptHost::has_handler(HandlerName handler) {
  const char* name = handler.c_str();
  Call call{Call::Kind::lookup};
  call.name = name;
  int status = protected_run(call, true);
  report_not_callable(call);
  if (status == LUA_OK) return call.found;
  lua_State* L = state_;
  std::string message = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
  lua_pop(L, 1);
  ++error_count_;
  log_event(LogLevel::error, log_tag_, "script_error",
            std::string("error in looking up ") + host_.handler_table() + "." + name + ": " + message,
            {{"where", std::string(host_.handler_table()) + "." + name}});
  host_.on_script_error();
  return false;
}

bool ScriptHost::call_handler(const char* name, const ArgPusher* pusher, const ArgPusher* taker) {
  Call call{Call::Kind::handler};
  call.name = name;
  call.pusher = pusher;
  call.taker = taker;
  int status = protected_run(call, true);
  report_not_callable(call);
  if (status == LUA_OK) return true;
  lua_State* L = state_;
  std::string message = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
  lua_pop(L, 1);
  ++error_count_;
  log_event(LogLevel::error, log_tag_, "script_error",
            std::string("error in ") + host_.handler_table() + "." + name + ": " + message,
            {{"where", std::string(host_.handler_table()) + "." + name}});
  host_.on_script_error();
  return false;
}

bool ScriptHost::call_protected(const char* what, const ArgPusher* pusher, bool as_handler) {
  Call call{as_handler ? Call::Kind::handler_work : Call::Kind::work};
  call.pusher = pusher;
  if (protected_run(call, true) == LUA_OK) return true;
  report_error(what);
  return false;
}

bool ScriptHost::call_callback(const char* what, const ArgPusher* pusher) {
  Call call{Call::Kind::callback};
  call.pusher = pusher;
  if (protected_run(call, true) == LUA_OK) return true;
  report_error(what);
  return false;
}

void ScriptHost::report_error(const std::string& what) {
  lua_State* L = state_;
  std::string message = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)";
  lua_pop(L, 1);
  ++error_count_;
  log_event(LogLevel::error, log_tag_, "script_error", "error in " + what + ": " + message, {{"where", what}});
  host_.on_script_error();
}

}  // namespace nshost
