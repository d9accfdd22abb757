#pragma once
// The client's mirror of each joined room's state (docs/state.md "Client"):
// per room a StateTree (the schema from the last snapshot) and r.state, a
// tree of plain Lua tables, one per node, kept in a registry table
// ref -> table. Frames (state.snapshot, state.patch) are applied to the tree
// first; only a whole frame that decoded and whose checksum matched is then
// mirrored into the Lua tables, so the script never sees half a patch. A gap
// in seq, a checksum mismatch or a decode error clears the tree, sends one
// state.resync (channel 3) and ignores patches until the next snapshot.
// Applied frames are acked (state.ack, channel 4) at most every
// kAckIntervalMs, at once after a snapshot and on the first patch after it,
// and again every kAckKeepaliveMs while nothing changes.
//
// Every call into Lua goes through the owner's ScriptHost (protect /
// invoke / call_function: protected, under the limits); the Lua tables
// count against --memory-limit. A call into the script (client.room_state,
// an on_change listener) may leave the room or end the session: the mirror
// is looked up again after each. The destructor never touches Lua.
#include <lua.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include "runtime/core/uv_handle.hpp"
#include "runtime/state/state_codec.hpp"
#include "runtime/state/state_tree.hpp"

namespace nshost {
class ScriptHost;
}

namespace nshost::rooms {

class ClientStates {
 public:
  static constexpr uint64_t kAckIntervalMs = 100;
  // An idle room's latest seq is acked again this often: the server stops
  // patching a client it has heard no ack from for --state-ack-timeout,
  // whether or not it sent anything meanwhile.
  static constexpr uint64_t kAckKeepaliveMs = 1000;
  // A resync not answered by a snapshot within this is sent again (the
  // server ignores resyncs closer than 500 ms apart).
  static constexpr uint64_t kResyncRetryMs = 2000;
  static constexpr size_t kMaxListeners = 1024;                    // per room
  static constexpr size_t kMaxPatternKeys = state::kMaxDepth + 2;  // root entry + 64 levels + the leaf key
  static constexpr uint64_t kMaxLogged = 16;                       // warn lines per session, then debug

  // r:state_stats().
  struct Stats {
    uint64_t patches = 0;    // applied
    uint64_t snapshots = 0;  // applied
    uint64_t resyncs = 0;    // state.resync sent
    uint64_t checksum_mismatches = 0;
    uint64_t gaps = 0;
    uint64_t decode_errors = 0;
    uint64_t ignored = 0;  // patches that arrived while waiting for a snapshot
    uint64_t acks = 0;     // state.ack sent
    // The last applied frame's seq, extended past 16 bits: the first
    // snapshot's seq, then one up per patch (a later snapshot moves it by
    // the 16-bit distance, forward). Counts the server's frames.
    uint64_t seq = 0;
    uint64_t bytes = 0;  // of the snapshot and patch frames received for this room
  };

  class Owner {
   public:
    virtual ~Owner() = default;
    // The script whose state holds the refs; null while there is none.
    virtual ScriptHost* state_script() = 0;
    // The registry ref of the room's handle while this client is in it, else LUA_NOREF.
    virtual int state_room_handle(int64_t room) = 0;
    // Sends a state frame: reliable on the rooms' reliable channel, else
    // the unreliable one; false when it could not be queued.
    virtual bool send_state(std::string_view bytes, bool reliable) = 0;
  };

  ClientStates(Owner& owner, std::string log_tag);
  ~ClientStates();
  ClientStates(const ClientStates&) = delete;
  ClientStates& operator=(const ClientStates&) = delete;

  // The ack timer on `loop`; false with `error` from libuv.
  bool start(uv_loop_t* loop, std::string& error);
  void stop();

  // One packet whose first byte is a state frame's (state::is_state_frame).
  void on_frame(std::string_view bytes);
  // The room was left: its mirror, tables and listeners are released.
  void forget(int64_t room);
  void forget_all();
  // The script's state is being replaced: drop everything, touch no Lua.
  void forget_script();
  // A new session: the log limit starts over.
  void on_session();
  // The link was resumed: frames may have been lost in between, so each of
  // `rooms` (the rooms this client is in) that the server has sent state for
  // and that is not already waiting for a requested snapshot asks for one
  // (state.resync "requested").
  void on_resumed(const std::vector<int64_t>& rooms);

  // For the bindings, inside a Lua call on a live handle.
  // Pushes r.state: the root table, or nil before the first snapshot.
  void push_state(lua_State* L, int64_t room);
  // r:on_change(pattern, fn): the pattern (an array of strings, integers
  // and "*") at `pattern_index`, the function at `fn_index`. Returns the
  // listener's id, or 0 when the room has kMaxListeners. Raises on a bad pattern.
  uint64_t add_listener(lua_State* L, int64_t room, int pattern_index, int fn_index);
  // r:off_change(id): false when there is no such listener.
  bool remove_listener(lua_State* L, int64_t room, uint64_t id);
  // Zeros for a room without a mirror.
  Stats stats(int64_t room) const;

  // The budgets of every mirror tree made from now on (tests; defaults: the
  // StateTree's).
  void set_tree_budget(size_t max_nodes, size_t max_bytes);
  size_t mirror_count() const { return mirrors_.size(); }

 private:
  struct Mirror;
  struct Listener;
  struct Apply;

  Mirror& mirror_for(int64_t room);
  Mirror* find(int64_t room, uint64_t serial);
  void on_snapshot(Mirror& m, const state::FrameHeader& header, std::string_view schema_bytes, std::string_view ops);
  void on_patch(Mirror& m, const state::FrameHeader& header, std::string_view ops);
  // Clears the tree, marks the mirror waiting and sends a state.resync.
  void fail(Mirror& m, state::ResyncReason reason, const std::string& why);
  void send_resync(Mirror& m, state::ResyncReason reason);
  void send_ack(Mirror& m);
  // After a frame was mirrored: client.room_state, then the listeners.
  void notify(int64_t room, uint64_t serial, int events_ref, size_t event_count,
              std::vector<std::vector<state::Key>>* paths);
  void release_mirror(Mirror& m);
  void arm_timer();
  void on_timer();
  uint64_t now_ms() const;
  void complain(const std::string& line);

  Owner& owner_;
  std::string log_tag_;
  uv_loop_t* loop_ = nullptr;
  UvHandle<uv_timer_t> timer_;
  std::map<int64_t, std::shared_ptr<Mirror>> mirrors_;  // shared: a call into Lua may forget it
  uint64_t next_serial_ = 0;
  size_t max_nodes_ = 0;  // 0: the StateTree's defaults
  size_t max_bytes_ = 0;
  uint64_t complaints_ = 0;
};

}  // namespace nshost::rooms
