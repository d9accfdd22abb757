#pragma once
// One Lua state and everything that calls into it. Lifecycle: construct
// (creates the state, opens the allowed libraries, then the Lua surface the
// role hands in, then the host's own limit-keeping replacements), load() the
// entry script, invoke() handlers, destroy (lua_close).
// Every call into Lua - the handler's lookup (a role table or _G may have an
// __index), its arguments, the call, the chunk's load, the host's own pushes
// (protect()) - goes through one pcall with a traceback handler and under
// the limits; an error aborts only that call, is logged once, and is
// reported to the host. What the count hook cannot stop (a finalizer or a
// message handler, where Lua runs with hooks off, or a long C call) is ended
// by the watchdog's escalation (runtime/script/deadline_watch.hpp), lua_close
// included.
#include <lua.hpp>

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/script/bundle.hpp"
#include "runtime/script/deadline_watch.hpp"
#include "runtime/script/handler_names.hpp"
#include "runtime/script/host_api.hpp"

namespace nshost {

// Opens a role's Lua surface (globals and library additions) in a fresh
// state; called once, unprotected, from ScriptHost's constructor, so it may
// only allocate (a failure aborts construction).
using ModuleOpener = void (*)(lua_State* L);

// The surface of each role, defined by bindings/open_all.cpp. The roles name
// these when they construct a ScriptHost; runtime/ itself includes nothing
// from bindings/ (the bindings depend on this header, not the reverse).
void open_server_modules(lua_State* L);
void open_client_modules(lua_State* L);
// A room's state (runtime/rooms/room.hpp): log, sys (without quit), tick,
// json and the room table with its client handle; no net, no raw send.
void open_room_modules(lua_State* L);

// The client handle the server role gives the script for each connection: a
// full userdata of type kClientHandleType holding the connection's id and
// its session id (c.id), with one user value: server.auth's claims (c.auth)
// or nil.
// The role pushes one per connection (push_client_handle) and keeps it (a
// registry ref), pushing that same userdata for every event of the
// connection, so it is equal to itself and usable as a table key. The
// bindings register its metatable (bindings/client_handle.cpp); until they
// have, the handle has none.
inline constexpr const char* kClientHandleType = "nshost.client";
struct ClientHandle {
  ClientId id;
  uint64_t session_id = 0;
};
void push_client_handle(lua_State* L, ClientId id, uint64_t session_id = 0);

// Replaces string.find/match/gmatch/gsub (those the state has) with the
// bounded matcher of runtime/script/lua_pattern.hpp (runtime/script/string_patterns.cpp):
// the standard matcher can backtrack for hours inside one C call, where the
// limits cannot stop it. ScriptHost calls it for every state.
void open_string_patterns(lua_State* L);

class ScriptHost final : private DeadlineWatch::Target {
 public:
  // Limits for a state. The limits hold whenever they are non-zero (the
  // roles set them from --memory-limit, --handler-timeout and
  // --instruction-budget for every state); `enabled` also restricts the
  // libraries to the allow-list of runtime/script/sandbox.hpp (untrusted, fetched
  // code).
  struct Sandbox {
    bool enabled = false;
    // Bytes the whole state may allocate; past it the allocation fails and
    // the running handler raises "not enough memory". 0: unlimited.
    size_t memory_limit_bytes = 0;
    // Lua VM instructions one handler (or the top-level chunk) may run; past
    // it the handler is aborted with an error that pcall/xpcall inside the
    // script cannot stop. Counted in steps of kBudgetStep. 0: unlimited.
    uint64_t instruction_budget = 0;
    // Wall-clock ms one handler (or the top-level chunk) may run; past it the
    // handler is aborted the same way (runtime/script/deadline_watch.hpp: no cost
    // per instruction). 0: unlimited.
    uint32_t handler_timeout_ms = 0;
    // With `enabled`: the "host:port" pairs net.* may connect to
    // (--allow-net; runtime/net/address_policy.hpp). Empty: no net.
    std::vector<std::string> allow_net;
  };
  static constexpr int kBudgetStep = 1000;

  // `host` must outlive this object. `open_modules` opens the role's Lua
  // surface (open_server_modules or open_client_modules). `log_tag` prefixes
  // this state's log lines.
  ScriptHost(HostApi& host, ModuleOpener open_modules, std::string log_tag);
  ScriptHost(HostApi& host, ModuleOpener open_modules, std::string log_tag, const Sandbox& sandbox);
  ~ScriptHost();
  ScriptHost(const ScriptHost&) = delete;
  ScriptHost& operator=(const ScriptHost&) = delete;

  // Runs the entry script's chunk. Its directory and the shipped scripts/ tree
  // become the only places `require` looks. On failure returns false and sets
  // `error` to one line such as "game.lua:12: unexpected symbol near 'x'".
  bool load(const std::string& path, std::string& error);
  // Runs a fetched bundle's entry script. `require` then looks in the bundle
  // (in memory) and the shipped scripts/ tree only. Same errors as load().
  bool load_bundle(std::shared_ptr<const Bundle> bundle, std::string& error);
  // Hot reload (--watch; docs/operations.md "Hot reload"): runs the script
  // load() ran again in this state, from the loop and never inside a call
  // into the state. The chunk runs against a fresh handler table (the
  // old one's non-handler fields copied) and a fresh package.loaded without
  // the modules that came from the script's directory (they load again);
  // both are swapped in only if the chunk loads and runs clean, so a
  // rejected reload leaves every handler as it was. Globals survive: the
  // chunk runs in the same _G. On success code_version() goes up by one and
  // the caller invokes <role table>.reload(code_version() - 1). False with
  // `error` (one line, "game.lua:12: ...") when rejected.
  bool reload(std::string& error);
  // 1 once load() succeeded, +1 per successful reload(); 0 before.
  uint64_t code_version() const { return code_version_; }
  // The bundle this state runs, or nullptr for a script from disk.
  const Bundle* bundle() const { return bundle_.get(); }
  bool sandboxed() const { return sandbox_.enabled; }
  // True while lua_close runs (the destructor): finalizers still run then,
  // and a binding must not create anything that needs finalizing (Lua no
  // longer registers new finalizers).
  bool closing() const { return closing_; }

  // Calls <role table>.<name>(args...) if the script defined it; `name` is
  // one of runtime/script/handler_names.hpp (checked at compile time). The lookup
  // honours metamethods (a role table with an __index is legitimate) and runs
  // in the same protected call and under the same limits as the handler.
  // `push_args` is called inside that call, only when the handler exists,
  // with the state and returns how many values it pushed; it may raise a Lua
  // error (e.g. out of memory) and must not throw. Returns false if the
  // lookup or the handler raised (already logged with a traceback).
  template <class PushArgs>
  bool invoke(HandlerName name, PushArgs&& push_args) {
    using Fn = std::remove_reference_t<PushArgs>;
    ArgPusher pusher{&push_args, [](void* fn, lua_State* L) { return (*static_cast<Fn*>(fn))(L); }};
    return call_handler(name.c_str(), &pusher);
  }
  bool invoke(HandlerName name) { return call_handler(name.c_str(), nullptr); }
  // The same, keeping the handler's results: `take_results(L)` runs inside
  // the same protected call right after the handler returned, with exactly
  // its results on the stack (1..lua_gettop(L)); it may raise (the call then
  // counts as failed) and must not throw. It is not called when the handler
  // is absent or raised.
  template <class PushArgs, class TakeResults>
  bool invoke(HandlerName name, PushArgs&& push_args, TakeResults&& take_results) {
    using Fn = std::remove_reference_t<PushArgs>;
    using Take = std::remove_reference_t<TakeResults>;
    ArgPusher pusher{&push_args, [](void* fn, lua_State* L) { return (*static_cast<Fn*>(fn))(L); }};
    ArgPusher taker{&take_results, [](void* fn, lua_State* L) { return (*static_cast<Take*>(fn))(L); }};
    return call_handler(name.c_str(), &pusher, &taker);
  }
  // Whether <role table>.<name> is a function or callable, looked up as
  // invoke() does (protected, limited); a lookup that raises is logged and
  // answers false.
  bool has_handler(HandlerName name);
  // Runs `work(L)` (the host's own stack work that allocates, e.g. a handle
  // kept in the registry) in a protected call under the limits: an
  // allocation may run a GC step and with it a finalizer. `work` returns how
  // many values it left on the stack; they are dropped. `what` names the
  // work in the log line. Returns false if it raised (logged).
  template <class Work>
  bool protect(const char* what, Work&& work) {
    using Fn = std::remove_reference_t<Work>;
    ArgPusher pusher{&work, [](void* fn, lua_State* L) { return (*static_cast<Fn*>(fn))(L); }};
    return call_protected(what, &pusher);
  }

  // As protect(), but `work` runs as a handler does (in_handler() is true,
  // so builtins that need a handler work in it): for a script's callback the
  // host calls later from the loop (rooms.* answers).
  template <class Work>
  bool call_back(const char* what, Work&& work) {
    using Fn = std::remove_reference_t<Work>;
    ArgPusher pusher{&work, [](void* fn, lua_State* L) { return (*static_cast<Fn*>(fn))(L); }};
    return call_protected(what, &pusher, true);
  }

  // Calls a function of the script's own (a timer's callback) as a handler:
  // in_handler() is true, it runs in the same protected call and under the
  // same limits, and an error is logged once as "error in <what>: ..." with
  // a traceback and reported to the host (--strict). `push` is called inside
  // that call, pushes the function and then its arguments, and returns how
  // many values it pushed (the function included, so at least 1); it may
  // raise a Lua error and must not throw. Returns false if it raised.
  template <class Push>
  bool call_function(const char* what, Push&& push) {
    using Fn = std::remove_reference_t<Push>;
    ArgPusher pusher{&push, [](void* fn, lua_State* L) { return (*static_cast<Fn*>(fn))(L); }};
    return call_callback(what, &pusher);
  }

  lua_State* state() const { return state_; }
  HostApi& host() const { return host_; }
  const std::string& log_tag() const { return log_tag_; }
  // True while a handler (not the top-level chunk) is running.
  bool in_handler() const { return handler_depth_ > 0; }
  uint64_t error_count() const { return error_count_; }
  // How many calls into this state (handlers, protected work, the chunk)
  // ended in a memory error (LUA_ERRMEM: an allocation failed, or passed
  // memory_limit_bytes, and the script did not catch it). A room whose count
  // grows is disposed (docs/rooms.md).
  uint64_t memory_error_count() const { return memory_error_count_; }
  // True from the moment the running handler's deadline passes until it
  // ends: a long C call (the pattern matcher) polls it and stops itself.
  bool timed_out() const { return timed_out_ != 0; }
  uint32_t handler_timeout_ms() const { return sandbox_.handler_timeout_ms; }
  // Directories `require` searches, in order.
  const std::vector<std::string>& module_roots() const { return module_roots_; }

  // The ScriptHost that owns `L` (stored in the state's extra space).
  static ScriptHost& from(lua_State* L);

  // Bytes the state currently has allocated.
  size_t memory_used() const { return memory_.used; }
  const Sandbox& sandbox() const { return sandbox_; }

  // Bytes the host holds for the script outside Lua (net buffers): they count
  // against memory_limit_bytes with the state's own. charge_external fails
  // (charges nothing) when used + external + bytes would pass the limit, at
  // any time, in a handler or not; release_external gives back what a charge
  // took.
  bool charge_external(size_t bytes);
  void release_external(size_t bytes);
  size_t memory_external() const { return memory_.external; }

  // Installed by the host in every state after the role's surface, since
  // they enforce its limits (the surface cannot leave them out):
  // coroutine.resume and coroutine.wrap of every state: the standard ones,
  // but the host knows which Lua threads run, so a handler timeout stops a
  // coroutine too. [co, args...] -> [true, results...] | [false, error]
  static int coroutine_resume(lua_State* L);
  static int coroutine_wrap(lua_State* L);  // [f] -> [function]
  // xpcall of every state: the standard one, except that the script's
  // message handler is not called for an error the host raises to stop the
  // handler (timeout, instruction budget). Lua calls a message handler for
  // an error raised in a hook with hooks off, where nothing could stop a
  // handler that loops. [f, msgh, args...] -> [true, results...] | [false, error]
  static int xpcall(lua_State* L);

 private:
  struct MemoryBudget {
    size_t used = 0;
    size_t limit = 0;  // 0: unlimited
    size_t external = 0;  // charge_external's bytes, counted against `limit`
    // Only while Lua code runs: a failed allocation in the host's own stack
    // work outside a pcall would abort the process.
    bool enforcing = false;
  };
  static void* allocate(void* ud, void* ptr, size_t old_size, size_t new_size);

  // A type-erased callable: pushes onto L, returns how many values.
  struct ArgPusher {
    void* fn;
    int (*call)(void* fn, lua_State* L);
  };
  // What one protected call does; lives on the C++ stack of its caller.
  struct Call {
    enum class Kind { handler, lookup, work, handler_work, chunk, callback, reload } kind;
    const char* name = nullptr;          // the handler's name (handler, lookup)
    const ArgPusher* pusher = nullptr;   // handler args or the work (may be null)
    const ArgPusher* taker = nullptr;    // handler: reads its results (may be null)
    const std::string* chunk = nullptr;  // chunk: the text (null: load from `chunk_name` as a file)
    const char* chunk_name = nullptr;    // chunk: "@path" or the file's path
    bool found = false;                  // handler, lookup: a callable was there
    const char* not_callable = nullptr;  // the type name of a non-callable value
  };
  static int run_call(lua_State* L);  // [lightuserdata Call] -> []
  // Call::Kind::reload inside the protected call (script_reload.cpp).
  static int run_reload(lua_State* L, const Call& call);
  // Runs `call` in lua_pcall under the limits; LUA_OK or the error status
  // with the message on the stack top (a traceback with `traceback`).
  int protected_run(Call& call, bool traceback);
  bool call_handler(const char* name, const ArgPusher* pusher, const ArgPusher* taker = nullptr);
  bool call_protected(const char* what, const ArgPusher* pusher, bool as_handler = false);
  bool call_callback(const char* what, const ArgPusher* pusher);
  // Logs a failed protected call's error (on the stack top, popped) as
  // "error in <what>: ..." and tells the host.
  void report_error(const std::string& what);
  // Logs a non-callable handler the lookup found.
  void report_not_callable(const Call& call);
  void install_require();
  bool run_chunk(Call& call, std::string& error);
  // The instruction budget and the handler timeout: armed for each
  // outermost call; both abort through limits_hook.
  static void limits_hook(lua_State* L, lua_Debug* ar);
  void begin_limits();
  void end_limits();
  void on_deadline() noexcept override;
  // Resumes `co` with the top `nargs` values of L as a tracked thread;
  // returns how many results it moved onto L, or -1 with the error on L.
  // `close_on_error`: a coroutine that dies of an error is closed (its
  // to-be-closed variables run), as coroutine.wrap does.
  static int resume_tracked(lua_State* L, lua_State* co, int nargs, bool close_on_error);
  static int wrapped_call(lua_State* L);
  static int xpcall_message_handler(lua_State* L);  // upvalue 1: the script's handler
  static int xpcall_finish(lua_State* L, int status, lua_KContext extra);

  HostApi& host_;
  std::string log_tag_;
  MemoryBudget memory_;
  lua_State* state_ = nullptr;
  int handler_depth_ = 0;
  bool closing_ = false;
  int limits_depth_ = 0;  // nested protected calls: the limits belong to the outermost
  uint64_t error_count_ = 0;
  uint64_t memory_error_count_ = 0;
  std::vector<std::string> module_roots_;
  std::string entry_path_;  // what load() ran, for reload()
  uint64_t code_version_ = 0;
  // package.loaded's keys once the surface was open: never dropped by reload().
  std::vector<std::string> builtin_modules_;
  Sandbox sandbox_;
  std::shared_ptr<const Bundle> bundle_;
  uint64_t instructions_used_ = 0;
  bool budget_exhausted_ = false;
  std::shared_ptr<DeadlineWatch> deadline_watch_;  // set when handler_timeout_ms > 0
  DeadlineWatch::Armed outer_armed_;
  // Set by on_deadline (a signal handler) until the outermost call ends.
  volatile sig_atomic_t timed_out_ = 0;
  // The coroutines being resumed, outermost first: on_deadline hooks them
  // too. Lua refuses deeper nesting (LUAI_MAXCCALLS, 200) long before this.
  static constexpr int kMaxResumeDepth = 256;
  lua_State* volatile resumed_[kMaxResumeDepth] = {};
  volatile sig_atomic_t resume_depth_ = 0;
};

// The shipped scripts/ directory: $NSHOST_SCRIPTS_DIR if set, else the
// source tree's scripts/ recorded at build time.
std::string shipped_scripts_dir();

}  // namespace nshost
