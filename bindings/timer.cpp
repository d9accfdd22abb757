// timer.after / timer.every (reference in docs/scripting.md, "Timers").
// One libuv timer per Lua state drives a queue ordered by (deadline in ms,
// creation number): millisecond resolution whatever the tick rate, equal
// deadlines fire in creation order, and a single uv handle to close when the
// state goes. The queue is owned by a userdata in the registry, so it dies
// in lua_close; its uv handle is unreferenced (it never keeps the process
// alive by itself) and closed then (UvHandle frees it on the loop's next
// turn, which the roles' shutdown runs).
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/core/uv_handle.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

constexpr const char* kSetKey = "nshost.timers";
constexpr const char* kTimerType = "nshost.timer";
// Bounds, documented in docs/scripting.md "Timers".
constexpr lua_Number kMaxSeconds = 1e6;
constexpr size_t kMaxLiveTimers = 4096;  // pending timers per Lua state

struct TimerHandle {
  uint64_t id;
};

class TimerSet {
 public:
  explicit TimerSet(ScriptHost& script) : script_(script) {}

  // 0 or a libuv error; called once, before the first timer.
  int init() {
    int rc = uv_.init([&](uv_timer_t* t) { return uv_timer_init(script_.host().loop(), t); });
    if (rc != 0) return rc;
    uv_.get()->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(uv_.get()));
    return 0;
  }

  size_t size() const { return keys_.size(); }

  // Takes the two registry refs. `interval_ms` 0: fires once.
  void add(uint64_t id, uint64_t delay_ms, uint64_t interval_ms, int fn_ref, int handle_ref, std::string where) {
    uv_update_time(script_.host().loop());  // the chunk or handler may have run long
    // uv_now is truncated to the ms, so the creation may be up to 1 ms past
    // it: one more ms means a timer never fires before `delay_ms` has passed.
    Key key{uv_now(script_.host().loop()) + delay_ms + 1, id};
    queue_.emplace(key, Entry{interval_ms, fn_ref, handle_ref, std::move(where)});
    keys_.emplace(id, key);
    rearm();
  }

  // True if `id` was pending (its refs are released).
  bool cancel(uint64_t id) {
    auto found = keys_.find(id);
    if (found == keys_.end()) return false;
    auto it = queue_.find(found->second);
    release(it->second);
    queue_.erase(it);
    keys_.erase(found);
    rearm();
    return true;
  }

  uint64_t next_id() { return ++last_id_; }

 private:
  struct Key {
    uint64_t deadline_ms;  // on the loop's clock (uv_now)
    uint64_t id;           // creation order breaks ties
    bool operator<(const Key& o) const {
      return deadline_ms != o.deadline_ms ? deadline_ms < o.deadline_ms : id < o.id;
    }
  };
  struct Entry {
    uint64_t interval_ms;
    int fn_ref;
    int handle_ref;
    std::string where;  // "timer.every at game.lua:12", for the error line
  };

  void release(const Entry& e) {
    lua_State* L = script_.state();
    luaL_unref(L, LUA_REGISTRYINDEX, e.fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, e.handle_ref);
  }

  void rearm() {
    if (queue_.empty()) {
      uv_timer_stop(uv_.get());
      return;
    }
    uint64_t now = uv_now(script_.host().loop());
    uint64_t first = queue_.begin()->first.deadline_ms;
    uv_timer_start(
        uv_.get(), [](uv_timer_t* t) { static_cast<TimerSet*>(t->data)->fire_due(); },
        first > now ? first - now : 0, 0);
  }

  void fire_due() {
    uv_update_time(script_.host().loop());
    uint64_t now = uv_now(script_.host().loop());
    // Each fire reschedules past `now` (delays are >= 1 ms), so this ends;
    // the count bounds it regardless.
    for (size_t left = queue_.size(); left > 0 && !queue_.empty(); --left) {
      if (script_.host().stopping()) {
        uv_timer_stop(uv_.get());
        return;
      }
      auto it = queue_.begin();
      if (it->first.deadline_ms > now) break;
      Key key = it->first;
      Entry entry = std::move(it->second);
      queue_.erase(it);
      int fn_ref = entry.fn_ref;
      int handle_ref = entry.handle_ref;
      bool once = entry.interval_ms == 0;
      std::string what = entry.where + " callback";
      if (once) {
        keys_.erase(key.id);
      } else {
        // The next beat keeps the cadence; beats missed while the loop was
        // busy are skipped, not run in a burst.
        Key next{key.deadline_ms + entry.interval_ms, key.id};
        if (next.deadline_ms <= now) next.deadline_ms = now + entry.interval_ms;
        queue_.emplace(next, std::move(entry));
        keys_[key.id] = next;
      }
      // Pushed before the call, so a cancel() inside it may release the
      // refs of a repeating timer.
      script_.call_function(what.c_str(), [&](lua_State* L) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, handle_ref);
        return 2;
      });
      if (once) {
        lua_State* L = script_.state();
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, handle_ref);
      }
    }
    rearm();
  }

  ScriptHost& script_;
  UvHandle<uv_timer_t> uv_;
  std::map<Key, Entry> queue_;
  std::unordered_map<uint64_t, Key> keys_;
  uint64_t last_id_ = 0;
};

// The set of this state, created on first use; raises if libuv refuses or
// the state is closing (a finalizer of a local script).
TimerSet& timer_set(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, kSetKey) == LUA_TUSERDATA) {  // [ud]
    auto* set = *static_cast<TimerSet**>(lua_touserdata(L, -1));
    lua_pop(L, 1);
    if (!set) luaL_error(L, "timer: the Lua state is closing");
    return *set;
  }
  lua_pop(L, 1);
  // A new set now would never be finalized, and its uv handle never closed.
  if (ScriptHost::from(L).closing()) luaL_error(L, "timer: the Lua state is closing");
  auto owned = std::make_unique<TimerSet>(ScriptHost::from(L));
  if (int rc = owned->init(); rc != 0) luaL_error(L, "timer: %s", uv_strerror(rc));
  auto** slot = static_cast<TimerSet**>(lua_newuserdatauv(L, sizeof(TimerSet*), 0));  // [ud]
  *slot = nullptr;
  lua_newtable(L);  // [ud, mt]
  lua_pushcfunction(L, [](lua_State* S) -> int {
    auto** p = static_cast<TimerSet**>(lua_touserdata(S, 1));
    delete *p;
    *p = nullptr;
    return 0;
  });
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);  // [ud]
  *slot = owned.release();
  lua_setfield(L, LUA_REGISTRYINDEX, kSetKey);  // []
  return **slot;
}

template <bool Repeat>
int timer_start(lua_State* L) {
  StackGuard guard(L);
  const char* name = Repeat ? "timer.every" : "timer.after";
  lua_Number seconds = luaL_checknumber(L, 1);
  if (!(seconds > 0 && seconds <= kMaxSeconds))
    return luaL_error(L, "%s: seconds must be a number in (0, 1e6] (got %s)", name, luaL_tolstring(L, 1, nullptr));
  luaL_checktype(L, 2, LUA_TFUNCTION);
  TimerSet& set = timer_set(L);
  if (set.size() >= kMaxLiveTimers) return guard.returns(push_failure(L, "too many timers", "EMFILE"));
  auto delay_ms = static_cast<uint64_t>(std::ceil(seconds * 1000.0));
  if (delay_ms == 0) delay_ms = 1;
  luaL_where(L, 1);  // "game.lua:12: " or ""
  std::string at = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (at.size() >= 2 && at.compare(at.size() - 2, 2, ": ") == 0) at.resize(at.size() - 2);
  std::string where = at.empty() ? std::string(name) : std::string(name) + " at " + at;
  uint64_t id = set.next_id();
  auto* handle = static_cast<TimerHandle*>(lua_newuserdatauv(L, sizeof(TimerHandle), 0));  // [handle]
  handle->id = id;
  luaL_setmetatable(L, kTimerType);
  lua_pushvalue(L, 2);
  int fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  int handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);  // [handle]
  set.add(id, delay_ms, Repeat ? delay_ms : 0, fn_ref, handle_ref, std::move(where));
  return guard.returns(1);
}

int timer_cancel(lua_State* L) {
  StackGuard guard(L);
  auto* handle = static_cast<TimerHandle*>(luaL_checkudata(L, 1, kTimerType));
  lua_pushboolean(L, timer_set(L).cancel(handle->id));
  return guard.returns(1);
}

int timer_tostring(lua_State* L) {
  StackGuard guard(L);
  auto* handle = static_cast<TimerHandle*>(luaL_checkudata(L, 1, kTimerType));
  lua_pushfstring(L, "timer#%I", static_cast<lua_Integer>(handle->id));
  return guard.returns(1);
}

const luaL_Reg timer_functions[] = {
    {"after", guarded<timer_start<false>>},
    {"every", guarded<timer_start<true>>},
    {nullptr, nullptr},
};

const luaL_Reg handle_methods[] = {
    {"cancel", guarded<timer_cancel>},
    {nullptr, nullptr},
};

}  // namespace

void open_timer(lua_State* L) {
  luaL_newmetatable(L, kTimerType);  // [mt]
  luaL_newlib(L, handle_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, guarded<timer_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newlib(L, timer_functions);
  lua_setglobal(L, "timer");
}

}  // namespace nshost
