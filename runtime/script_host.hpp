#pragma once
// One Lua state and everything that calls into it. Lifecycle: construct
// (creates the state, opens the allowed libraries and the bindings for the
// role), load() the entry script, invoke() handlers, destroy (lua_close).
// Every call into Lua goes through one pcall with a traceback handler; an
// error aborts only that handler, is logged once, and is reported to the host.
#include <lua.hpp>

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/bundle.hpp"
#include "runtime/deadline_watch.hpp"
#include "runtime/host_api.hpp"

namespace nshost {

class ScriptHost final : private DeadlineWatch::Target {
 public:
  // Limits for a state. The limits hold whenever they are non-zero (the
  // roles set them from --memory-limit, --handler-timeout and
  // --instruction-budget for every state); `enabled` also restricts the
  // libraries to the allow-list of runtime/sandbox.hpp (untrusted, fetched
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
    // handler is aborted the same way (runtime/deadline_watch.hpp: no cost
    // per instruction). 0: unlimited.
    uint32_t handler_timeout_ms = 0;
    // With `enabled`: the "host:port" pairs net.* may connect to
    // (--allow-net; runtime/net/address_policy.hpp). Empty: no net.
    std::vector<std::string> allow_net;
  };
  static constexpr int kBudgetStep = 1000;

  // `host` must outlive this object. `log_tag` prefixes this state's log lines.
  ScriptHost(HostApi& host, std::string log_tag);
  ScriptHost(HostApi& host, std::string log_tag, const Sandbox& sandbox);
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
  // The bundle this state runs, or nullptr for a script from disk.
  const Bundle* bundle() const { return bundle_.get(); }
  bool sandboxed() const { return sandbox_.enabled; }

  // Calls <role table>.<name>(args...) if the script defined it. `push_args`
  // is called with the state and returns how many values it pushed. Returns
  // false if the handler raised (already logged with a traceback).
  template <class PushArgs>
  bool invoke(const char* name, PushArgs&& push_args) {
    if (!push_handler(name)) return true;
    int nargs = push_args(state_);
    return call_pushed(name, nargs);
  }
  bool invoke(const char* name) {
    return invoke(name, [](lua_State*) { return 0; });
  }
  bool has_handler(const char* name);

  lua_State* state() const { return state_; }
  HostApi& host() const { return host_; }
  const std::string& log_tag() const { return log_tag_; }
  // True while a handler (not the top-level chunk) is running.
  bool in_handler() const { return handler_depth_ > 0; }
  uint64_t error_count() const { return error_count_; }
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

  // coroutine.resume and coroutine.wrap of every state: the standard ones,
  // but the host knows which Lua threads run, so a handler timeout stops a
  // coroutine too. [co, args...] -> [true, results...] | [false, error]
  static int coroutine_resume(lua_State* L);
  static int coroutine_wrap(lua_State* L);  // [f] -> [function]

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

  bool push_handler(const char* name);  // [] -> [fn] when it returns true
  bool call_pushed(const char* name, int nargs);
  void install_require();
  bool run_chunk(std::string& error);  // [chunk] -> []
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

  HostApi& host_;
  std::string log_tag_;
  MemoryBudget memory_;
  lua_State* state_ = nullptr;
  int handler_depth_ = 0;
  uint64_t error_count_ = 0;
  std::vector<std::string> module_roots_;
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
