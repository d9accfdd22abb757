#pragma once
// One room: its own Lua state (ScriptHost, under --room-memory-limit,
// --handler-timeout and --instruction-budget), its own tick at the room's
// rate, its clients in join order. The room file runs once in the state and
// defines handlers on the global table `room` (create, join, leave, message,
// tick, dispose); the builtins on that table (bindings/room.cpp) reach the
// room through ScriptHost::from(L).host().room().
//
// Lifecycle: open -> (room.close, or a memory error) doomed -> settled from
// the loop: every client removed and told room.left, room.dispose once ->
// disposed, buried (its state closed from the loop by the manager). A room
// whose last client leaves (auto_dispose) is disposed at once after that
// room.leave returns. A memory error in any handler disposes the room with
// reason "memory" and runs none of its handlers again.
#include <lua.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/core/tick_driver.hpp"
#include "runtime/rooms/codec.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "runtime/rooms/room_state.hpp"
#include "runtime/script/host_api.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost::rooms {

// The client handle a room's state sees: a full userdata of this type holding
// the session id, with one user value (the claims table, or nil). The room
// pushes the same userdata for every event of one client; the bindings
// register its metatable (bindings/room_client.cpp).
inline constexpr const char* kRoomClientType = "nshost.room_client";
struct RoomClientHandle {
  uint64_t session_id = 0;
};

class Room final : public HostApi, private StateLink {
 public:
  enum class Phase { open, doomed, disposed };

  Room(RoomManager& manager, std::shared_ptr<const RoomType> type, uint64_t id);
  ~Room() override;
  Room(const Room&) = delete;
  Room& operator=(const Room&) = delete;

  // Creates the state, runs the room file and starts the tick (when the file
  // defined room.tick). False with
  // `error` (one line) when the state cannot be created or the file fails.
  bool start(std::string& error);
  // room.create(options); false when it raised (logged).
  bool run_create(const Value* options);
  // room.join(c, options): nullopt when `member` was seated, else the
  // refusal ("room failed" when the handler raised). The client is seated
  // while room.join runs (room.clients() lists it, room.send reaches it), but
  // what is sent to it is held until release_joiner(), so that it arrives
  // after the rpc.response; a refused client's held messages are dropped.
  std::optional<std::string> try_join(Member& member, const Value* options);
  // Sends what was held for `member` since try_join seated it, then its
  // first state.snapshot. Several seated clients may be held at once (a
  // match seats all its players before telling them).
  void release_joiner(Member& member);
  // Takes `member` out (it must be in), runs room.leave(c, reason), and, when
  // `told` is set, sends it room.left {room, reason = *told}. Disposes the
  // room after the last leave (auto_dispose).
  void remove(Member& member, const std::string& reason, const std::string* told);
  // room.message(c, type, data): `data` decoded, or raw bytes (.bytes).
  void deliver(Member& member, std::string_view type, const Value* data, std::string_view bytes);
  // From the loop, outside any handler: a doomed room removes its clients
  // and is disposed (memory: no handler runs).
  void settle();
  // room.dispose() (unless `run_handler` is false), stops the tick, leaves
  // the room to the manager to close. Once.
  void dispose(bool run_handler);

  uint64_t id() const { return id_; }
  const RoomType& type() const { return *type_; }
  Phase phase() const { return phase_; }
  bool accepting() const { return phase_ == Phase::open; }
  bool locked() const { return locked_; }
  bool memory_failed() const { return memory_failed_; }
  // Seats reserved for clients on their way from another server count as taken.
  bool full() const { return seats_.size() + reserved_ >= type_->max_clients; }
  size_t reserved_seats() const { return reserved_; }
  void reserve_seat() { ++reserved_; }
  // A reservation redeemed or expired; an auto_dispose room left empty with
  // none reserved is disposed when `dispose_if_empty`.
  void release_seat(bool dispose_if_empty);
  bool has(uint64_t session_id) const;
  size_t client_count() const { return seats_.size(); }
  const std::optional<Value>& metadata() const { return metadata_; }
  ScriptHost* script() const { return script_.get(); }
  // room.state's replication (runtime/rooms/room_state.hpp).
  RoomState& state_sync() { return *state_; }
  // A state.ack or state.resync of a seated client: an error (a bad packet)
  // or nullopt.
  std::optional<std::string> on_state_frame(uint64_t session_id, const state::FrameHeader& header);

  // For the bindings (bindings/room.cpp), inside the room's handlers:
  // The sessions seated, in join order.
  std::vector<uint64_t> clients() const;
  // Pushes the client's handle (nil if it is not seated).
  void push_client(lua_State* L, uint64_t session_id);
  // Encodes {t = room.message[.bytes], p = {room, type, data}} once per
  // codec the recipients use and queues one shared packet per codec. Data is
  // the Lua value at `data_index` (or, with `bytes`, the string there).
  // `channel`: nullopt for the type's policy. Returns false with `error` on
  // an encode error ("cycle at data.a") or a message over
  // --max-message-size; `sent` counts the recipients it was queued for.
  bool send(lua_State* L, std::span<const uint64_t> recipients, std::string_view type, int data_index, bool bytes,
            std::optional<Channel> channel, size_t& sent, std::string& error);
  void set_locked(bool locked);
  void set_metadata(std::optional<Value> metadata);
  // room.close([reason]): the room is settled after the handler returns.
  void request_close(std::string reason);

  // HostApi: the room's state runs as a server-side state with the room's
  // own tick; handlers live in the table "room".
  Role role() const override { return Role::server; }
  uv_loop_t* loop() const override { return manager_.config().loop; }
  bool headless() const override { return manager_.config().headless; }
  bool listen_server() const override { return manager_.config().listen_server; }
  uint32_t tick_rate_hz() const override { return tick_.rate_hz(); }
  void set_tick_rate_hz(uint32_t hz) override { tick_.set_rate(hz); }
  uint32_t max_clients() const override { return type_->max_clients; }
  uint32_t max_message_bytes() const override { return manager_.config().max_message_bytes; }
  // sys.quit is not opened in a room; a stop request from a room is ignored.
  void request_stop(int exit_code) override;
  void on_script_error() override { manager_.host().on_room_script_error(); }
  bool finished() const override { return phase_ == Phase::disposed; }
  Room* room() override { return this; }
  const char* handler_table() const override { return "room"; }

 private:
  struct Seat {
    uint64_t session_id = 0;
    int handle_ref = LUA_NOREF;  // the handle in the state's registry
  };
  void on_tick(uint64_t tick_num);
  // Diffs room.state, runs the view functions, sends the frames.
  void run_state_patch();
  // Rooms without room.tick tick while they have clients (for the patches).
  void ensure_ticking();
  int64_t now_ms() const;
  // StateLink
  bool queue_state_packet(uint64_t session_id, ENetPacket* packet) override;
  void on_state_error() override { manager_.host().on_room_script_error(); }
  // After each entry into the state: a new memory error dooms the room.
  void check_memory();
  void forget_seat(uint64_t session_id);
  Channel channel_for(std::string_view type, std::optional<Channel> channel) const;

  RoomManager& manager_;
  std::shared_ptr<const RoomType> type_;
  uint64_t id_;
  std::string log_tag_;
  std::unique_ptr<RoomState> state_;  // before script_: the state's bindings reach it while it opens
  std::unique_ptr<ScriptHost> script_;
  bool has_tick_handler_ = false;
  bool client_ticking_ = false;  // no room.tick: ticking for its clients' patches
  uint32_t ticks_since_patch_ = 0;
  std::vector<uint64_t> view_sessions_;  // scratch
  TickDriver tick_;
  std::vector<Seat> seats_;
  std::optional<Value> metadata_;
  Phase phase_ = Phase::open;
  bool locked_ = false;
  size_t reserved_ = 0;  // seats held for seat tokens (docs/cluster.md)
  bool memory_failed_ = false;
  std::string close_reason_;  // told to clients: "disposed" or "closed: <reason>"
  uint64_t memory_errors_seen_ = 0;
  // What is sent to a seated client before it was told it is in the room
  // (its join's rpc.response, a match's match.found): encoded for its codec,
  // sent by release_joiner.
  std::unordered_map<uint64_t, std::vector<std::pair<std::string, Channel>>> held_;
};

}  // namespace nshost::rooms
