#pragma once
// The insides of ClientStates (runtime/rooms/client_state.hpp) shared by
// client_state.cpp (frames, acks, resyncs, listeners) and
// client_state_apply.cpp (the stack work of mirroring a frame into Lua).
#include <lua.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/rooms/client_state.hpp"

namespace nshost::rooms::client_state_detail {

// A node of the Lua mirror as the script's tables stand (which lags the
// tree while a frame is checked): where it hangs and its node children.
struct LuaNode {
  uint32_t parent = state::StateTree::Node::kNone;
  state::Key key;
  std::unordered_map<state::Key, uint32_t, state::KeyHash> children;
};
using LuaNodes = std::unordered_map<uint32_t, LuaNode>;

// A patch with more changes than this lists the whole state ({{}}) as its
// changes: the list must not cost more than the state itself.
constexpr size_t kMaxListedChanges = 4096;

void push_key(lua_State* L, const state::Key& key);
void push_scalar(lua_State* L, const state::Scalar& value);

}  // namespace nshost::rooms::client_state_detail

namespace nshost::rooms {

using client_state_detail::LuaNodes;

struct ClientStates::Listener {
  uint64_t id = 0;
  std::vector<std::optional<state::Key>> pattern;  // nullopt: "*"
  int last_wild = -1;                       // the last "*"'s position, -1: none
  int fn_ref = LUA_NOREF;
};

struct ClientStates::Mirror {
  int64_t room = 0;
  uint64_t serial = 0;  // tells a mirror from a later one of the same room
  std::unique_ptr<state::Schema> schema;
  std::unique_ptr<state::StateTree> tree;  // consistent only while !waiting
  bool waiting = true;              // for a snapshot: patches are ignored
  bool heard = false;               // a frame arrived for this room
  bool resync_outstanding = false;
  state::ResyncReason last_reason = state::ResyncReason::requested;
  uint64_t resync_sent_ms = 0;
  uint16_t seq = 0;
  bool first_patch = false;  // the next patch is the first after a snapshot: acked at once
  bool ack_due = false;
  uint64_t last_ack_ms = 0;
  int refs_ref = LUA_NOREF;  // registry: the table ref -> Lua table; [0] is r.state
  LuaNodes nodes;
  std::vector<Listener> listeners;
  uint64_t last_listener = 0;
  Stats stats;
};

// The stack work of mirroring one frame into Lua (inside ScriptHost::protect:
// anything here may raise a memory error). `refs` and `events` are absolute
// stack indices of the ref -> table registry and the events table (4 slots
// per event: listener id, key, value, old).
struct ClientStates::Apply {
  lua_State* L;
  LuaNodes& nodes;
  const std::vector<Listener>& listeners;
  int refs = 0;
  int events = 0;
  size_t event_count = 0;
  std::vector<std::vector<state::Key>>* paths = nullptr;  // null: not collected
  bool too_many_paths = false;
  std::unordered_set<uint32_t> created;  // nodes new in this patch (their contents are not listed)

  std::vector<state::Key> path_of(uint32_t ref) const;

  void event(const Listener& l, int key_i, int new_i, int old_i);

  // Raw, deep equality (the script may have written into its tables: a
  // cycle ends at the depth bound as "different").
  bool same(int a, int b, int depth);

  // Pushes t[key] (raw) for the value at `t`, nil when it is not a table.
  void child(int t, int key);

  // The events of listener `l` below a path that matched pattern[0, pos):
  // `old_i` and `new_i` hold the values there before and after.
  void diff(const Listener& l, size_t pos, int old_i, int new_i, int key_i);

  // Forgets node `ref` and its subtree (the tables stay as they are: the
  // script may hold them, and `old` values are read from them).
  void drop(uint32_t ref);

  void listeners_at(const std::vector<state::Key>& path, int old_i, int new_i);

  // Mirrors one change of a patch.
  void change(const state::Change& c);

  // Pushes a new table tree for node `ref` of `tree` (a snapshot), filling
  // `nodes` and the refs table.
  void build(const state::StateTree& tree, uint32_t ref);
};

}  // namespace nshost::rooms
