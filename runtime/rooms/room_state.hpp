#pragma once
// A room's replicated state, server side (docs/state.md "Server"): the
// shadow StateTree of the room's `room.state` table, the diff that brings
// the shadow up to date at each patch interval, and every client's place in
// the stream of state.snapshot / state.patch frames (seq, checksum, acks,
// view). The wire format is runtime/state/state_codec.hpp's.
//
// At each patch interval the room calls diff() (inside the room's protected
// call), evaluate_view() for each client whose view is a Lua function
// (inside a call of its own), then send(). send() encodes the updates of the
// changed nodes once, queues one shared ENet packet to every client without
// a view, and builds the patch of each client with a view from the shared
// bytes (updates of the root and collections filtered, each changed entity's
// bytes encoded once). Nothing here keeps a history of patches: a client
// holds only counters, so its memory on the server is bounded whatever it
// acks.
#include <enet/enet.h>
#include <lua.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/script/script_host.hpp"
#include "runtime/state/state_codec.hpp"
#include "runtime/state/state_tree.hpp"

namespace nshost::rooms {

// What the room state needs from its room.
class StateLink {
 public:
  virtual ~StateLink() = default;
  // Queues `packet` (ENet reference-counts it; one packet may go to many
  // sessions) on the room's reliable channel for `session_id`. False, and
  // nothing queued, when its link is down.
  virtual bool queue_state_packet(uint64_t session_id, ENetPacket* packet) = 0;
  // A script error in the state (already logged): --strict counts it.
  virtual void on_state_error() = 0;
};

class RoomState {
 public:
  // Patches a client may have unacknowledged before it gets no more.
  static constexpr uint64_t kMaxUnacked = 256;
  // At most one resync answered per client per this many ms.
  static constexpr int64_t kResyncIntervalMs = 500;
  // A script error at one path is logged at most once per this many ms.
  static constexpr int64_t kErrorIntervalMs = 1000;

  struct Stats {
    uint64_t patches = 0;          // patch frames queued (one per recipient)
    uint64_t snapshots = 0;        // snapshot frames queued
    uint64_t resyncs = 0;          // state.resync requests answered
    uint64_t resyncs_ignored = 0;  // state.resync requests within kResyncIntervalMs of the last
    uint64_t bytes = 0;            // bytes of frames queued (per recipient)
    uint64_t errors = 0;           // script errors of the diff (values refused, bad keys)
    uint64_t stalled = 0;          // times a client stopped getting patches (ack timeout or kMaxUnacked)
    uint64_t divergences = 0;      // acks whose checksum differed from the one sent
  };

  // One node's changes of the last diff (for tests and send()).
  struct NodeChange {
    uint32_t ref = 0;
    uint32_t depth = 0;     // root 0, collections 1, entities 2
    uint32_t entity = state::StateTree::Node::kNone;  // the entity it belongs to (depth >= 2)
    std::vector<state::Key> set, removed;
    // The child node each key held before the diff (kNone: a scalar or nothing).
    std::vector<uint32_t> set_old, removed_old;
  };

  // `log_tag` prefixes log lines; `room_id` goes in every frame.
  RoomState(StateLink& link, uint64_t room_id, std::string log_tag, uint32_t ack_timeout_ms);
  ~RoomState();
  RoomState(const RoomState&) = delete;
  RoomState& operator=(const RoomState&) = delete;

  // The registry ref of the room's `room` table (room.state is read from it
  // with rawget at each diff). Set by the bindings when they open the table.
  void set_room_table_ref(int ref) { room_table_ref_ = ref; }
  int room_table_ref() const { return room_table_ref_; }

  // room.define_state: the schema (checked by Schema::from_type); false
  // with `error` when it is refused, or once a client has been seated (the
  // schema travels in the snapshots) or a diff ran.
  bool define(std::unique_ptr<state::Type> root, std::string& error);
  const state::Schema& schema() const { return *schema_; }
  const state::StateTree& tree() const { return *tree_; }
  bool frozen() const { return frozen_; }

  // Brings the shadow up to date with room.state (rawget/lua_next only, no
  // metamethods) and records what changed. Runs in the room's state inside
  // a protected call; raises only a Lua error (memory, or `host`'s handler
  // timeout passing: null checks none). Refused values and keys are logged
  // (once per path per kErrorIntervalMs) and left out.
  void diff(lua_State* L, int64_t now_ms, const ScriptHost* host = nullptr);
  // The changes the last diff recorded, in the order they were found.
  size_t change_count() const { return change_count_; }
  const NodeChange& change(size_t i) const { return changes_[i]; }

  // Clients. add_client: seated, not yet sent anything; start_client: sends
  // its first snapshot (after room.join's rpc.response).
  void add_client(uint64_t session_id, int64_t now_ms);
  void start_client(uint64_t session_id, int64_t now_ms);
  void remove_client(uint64_t session_id, lua_State* L);
  bool has_client(uint64_t session_id) const { return clients_.count(session_id) != 0; }
  // Whether any client has been sent a frame (else a diff needs no patch).
  bool any_started() const;

  // Views. The id set of the client (created on first call: the client then
  // sees only the entities whose keys are in it); null if not a client.
  // A function view it had is dropped (its ref released in L).
  std::unordered_set<state::Key, state::KeyHash>* view_ids(lua_State* L, uint64_t session_id);
  // The client's id set if its view is one (no switch), else null.
  std::unordered_set<state::Key, state::KeyHash>* find_view_ids(uint64_t session_id);
  // A Lua view: `fn_ref` a registry ref (owned from now on) to fn(collection,
  // key, entity); LUA_NOREF removes any view (the client gets a snapshot).
  // False when not a client (the ref is then released).
  bool set_view_function(lua_State* L, uint64_t session_id, int fn_ref);
  // The sessions whose view is a Lua function (evaluate_view each).
  void view_function_clients(std::vector<uint64_t>& out) const;
  // Runs the client's view function over every entity (protected by the
  // caller); on a Lua error the client keeps its last admission.
  void evaluate_view(lua_State* L, uint64_t session_id);

  // Sends this interval's frames: patches of the last diff, snapshots owed.
  // Clears the diff's changes.
  void send(int64_t now_ms);

  // state.ack and state.resync from a client of this room. An error string
  // (the frame is a bad packet) or nullopt.
  std::optional<std::string> on_ack(uint64_t session_id, uint16_t seq, uint32_t checksum, int64_t now_ms);
  std::optional<std::string> on_resync(uint64_t session_id, state::ResyncReason reason, int64_t now_ms);

  const Stats& stats() const { return stats_; }
  // The last script error of the diff ("room.state.players[3].hp: 300 does
  // not fit u8"), logged or not.
  const std::string& last_error() const { return last_error_; }
  void set_patch_rate_hz(uint32_t hz) { patch_rate_hz_ = hz; }
  uint32_t patch_rate_hz() const { return patch_rate_hz_; }  // 0: every tick

 private:
  struct Client {
    enum class View { none, ids, function };
    uint64_t session_id = 0;
    bool started = false;        // its first snapshot is due or sent
    bool sent_any = false;       // a frame was queued for it
    bool want_snapshot = false;  // at the next interval
    bool stalled = false;        // no patches until it acks again
    uint64_t seq = 0;            // of the last frame sent
    uint64_t base = 0;           // of the last snapshot sent
    uint64_t acked = 0;          // the highest seq it acked
    uint32_t checksum = 0;       // of the last frame sent
    int64_t last_ack_ms = 0;
    int64_t caught_up_ms = 0;  // the last interval at which it had acked every frame sent
    int64_t last_resync_ms = INT64_MIN / 2;
    View view = View::none;
    std::unordered_set<state::Key, state::KeyHash> ids;
    int fn_ref = LUA_NOREF;
    bool evaluated = false;  // next_shown holds this interval's admission (function views)
    // Entity node refs it is shown (after the last frame), and being shown.
    std::unordered_set<uint32_t> shown, next_shown;
    uint64_t hidden_sum = 0;  // the sums of the entities next_shown leaves out
  };

  // Pushes room.state (rawget from the room table), or what is there instead.
  void push_state_table(lua_State* L) const;
  void diff_node(lua_State* L, int table, uint32_t ref, uint32_t depth, uint32_t entity, bool fresh);
  size_t take_record(uint32_t ref, uint32_t depth, uint32_t entity);
  void report(const std::string& path, const std::string& message);
  std::string path_string(uint32_t depth, const state::Key* last) const;
  // The client's admission of every entity now: its `next_shown` and
  // `hidden_sum`. Id sets and no view only (a function view is evaluated
  // by evaluate_view).
  void admit_all(Client& c);
  // A client that had no view was shown every entity the shadow holds (none
  // before its first frame).
  void shown_all(Client& c) const;
  // `shared_target`: the seq of the shared patches after this interval.
  void send_snapshot(Client& c, int64_t now_ms, uint64_t shared_target);
  void send_view_patch(Client& c, int64_t now_ms);
  bool queue(Client& c, std::string_view frame);
  void check_stall(Client& c, int64_t now_ms);

  StateLink& link_;
  uint64_t room_id_;
  std::string log_tag_;
  uint32_t ack_timeout_ms_;
  int room_table_ref_ = LUA_NOREF;
  std::unique_ptr<state::Schema> schema_;
  std::unique_ptr<state::StateTree> tree_;
  bool frozen_ = false;  // a client was seated or a diff ran: the schema is fixed
  uint32_t patch_rate_hz_ = 0;

  // The diff.
  uint32_t generation_ = 0;
  bool any_view_function_ = false;  // set once a client gets a view function: most rooms never do
  uint32_t first_fresh_ref_ = 0;  // refs at or above it were made by the last diff
  std::vector<NodeChange> changes_;  // a pool: the first change_count_ are live
  size_t change_count_ = 0;
  std::vector<state::Key> path_;     // the keys from the root to the node being walked
  std::vector<state::Key> stale_;    // scratch: keys to erase
  state::Scalar scalar_;             // scratch
  std::unordered_map<std::string, int64_t> error_log_ms_;
  int64_t now_ms_ = 0;
  uint64_t walked_ = 0;  // entries walked by this diff (the deadline check)
  const ScriptHost* host_ = nullptr;  // during a diff

  // Sending.
  std::unordered_map<uint64_t, std::unique_ptr<Client>> clients_;
  uint64_t shared_seq_ = 0;    // the seq of the last shared patch
  std::string frame_;          // scratch: the shared patch
  std::string snapshot_;       // scratch: a client's own frame
  std::vector<Client*> shared_, own_;  // scratch: the recipients of the shared ops
  std::vector<Client*> snapshots_;     // scratch: the clients owed a snapshot
  size_t viewed_changes_ = 0;  // the changes send_view_patch reads
  std::string entity_ops_;     // the changed entities' updates, encoded once per send
  struct Segment {
    uint32_t entity;
    size_t begin, end;
  };
  std::vector<Segment> segments_;
  std::vector<state::Key> keys_set_, keys_removed_;  // scratch
  Stats stats_;
  std::string last_error_;
};

}  // namespace nshost::rooms
