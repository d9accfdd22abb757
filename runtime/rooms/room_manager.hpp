#pragma once
// The rooms of one server (docs/rooms.md): the room types the script
// defined (rooms.define), the live rooms by id, each session's membership,
// and the catalog messages (seed 003) arriving on the room channels.
// Everything runs on the server's loop thread, one request at a time: a join
// is decided (room.join included) before the next packet is read, so a room
// never holds more than its max_clients however many joins arrive at once.
// Definitions: room_manager.cpp (types, members, joins, leaves, disposal),
// room_dispatch.cpp (decoding requests, answering them) and
// room_matchmaking.cpp (the matchmaking requests and starting matches).
#include <enet/enet.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/cluster/directory.hpp"
#include "runtime/cluster/seat_reservations.hpp"
#include "runtime/core/slot_table.hpp"
#include "runtime/core/uv_handle.hpp"
#include "runtime/rooms/codec.hpp"
#include "runtime/rooms/matchmaker.hpp"
#include "runtime/script/host_api.hpp"

namespace nshost::rooms {

class Room;

// What the rooms need from the server role (runtime/roles/server_rooms.cpp).
class RoomHost {
 public:
  virtual ~RoomHost() = default;
  // Queues `packet` (ENet reference-counts it, so one packet may go to many
  // peers) for the live connection `client` on the room channel for
  // `channel`. False, and nothing queued, when the client is not live (its
  // slot held for a resume, departing, stale): room messages are not
  // replayed across a resume. Marks the endpoint for a flush.
  virtual bool queue_room_packet(ClientId client, ENetPacket* packet, Channel channel) = 0;
  // Disconnects a live client with a kick notice carrying `reason`.
  virtual void kick_client(ClientId client, std::string_view reason) = 0;
  // A room's handler raised (already logged): --strict stops the server.
  virtual void on_room_script_error() = 0;
  // A room handler was stopped by --handler-timeout.
  virtual void on_room_handler_timeout() {}
  // Whether the client's link is up (a session held for a resume is not):
  // the matchmaker passes over a player who could not hear match.found.
  virtual bool client_live(ClientId) const { return true; }
};

// With --cluster (runtime/roles/server_cluster.cpp, docs/cluster.md): what
// the rooms ask of the other servers.
class RoomCluster {
 public:
  struct JoinAsk {
    enum class Kind : uint8_t { join_or_create, join, create } kind = Kind::join_or_create;
    uint64_t room_id = 0;         // join
    std::string room_type;        // join_or_create, create
    std::string options_msgpack;  // "" for none
  };
  virtual ~RoomCluster() = default;
  // A join this server does not seat itself. True when the cluster took it:
  // it answers request `rpc_id` of `session_id` later (a cluster.transfer or
  // a refusal, or RoomManager::run_local_join after all). False: decide here.
  virtual bool route_join(uint64_t session_id, uint32_t rpc_id, JoinAsk ask) = 0;
  // The open rooms of the other servers (the cached directory), by id.
  virtual std::vector<cluster::RoomEntry> remote_rooms() const = 0;
  // A room opened, was joined or left, locked or unlocked, got new metadata
  // or was disposed.
  virtual void rooms_changed() = 0;
};

struct RoomConfig {
  uv_loop_t* loop = nullptr;
  std::string script_dir;  // rooms.define paths are relative to it
  bool sandbox = false;    // --sandbox: room states get the allow-list too
  size_t memory_limit_bytes = 0;  // --room-memory-limit, per room state (0: none)
  uint64_t instruction_budget = 0;
  uint32_t handler_timeout_ms = 0;
  uint32_t tick_rate_hz = 30;  // for a type that names none
  uint32_t max_message_bytes = 1u << 20;
  bool headless = true;
  bool listen_server = false;  // --role=host: sys.is_listen_server() in room states
  uint32_t state_ack_timeout_ms = 10000;  // --state-ack-timeout (docs/state.md)
  size_t max_rooms = 10000;  // --max-rooms: rooms open at once on this server; past it a create is refused
};

struct RoomType {
  static constexpr uint32_t kMaxClients = 4096;
  std::string name;
  std::string path;  // the room script (resolved against the script's directory)
  uint32_t max_clients = 64;
  bool auto_dispose = true;
  uint32_t tick_rate_hz = 0;  // 0: RoomConfig::tick_rate_hz
  std::unordered_set<std::string> unreliable;  // message types sent unreliable by default
};

// One connection as the rooms see it.
struct Member {
  uint64_t session_id = 0;
  ClientId client;
  std::optional<Codec> codec;   // none: its hello offered none (no rooms for it)
  std::string claims;           // server.auth's claims, msgpack; "" for none
  std::vector<uint64_t> rooms;  // the rooms it is in, in join order
  uint32_t bad_messages = 0;    // catalog packets refused (kick at kMaxBadMessages)
};

// The answer to a join request.
struct JoinResult {
  bool ok = false;
  uint64_t room = 0;
  std::string room_type;
  std::string reason;  // when !ok: "full", "locked", "no such room", ...
};

class RoomManager {
 public:
  static constexpr size_t kMaxRoomsPerClient = 16;
  static constexpr uint32_t kMaxBadMessages = 16;
  static constexpr size_t kMaxClaimsBytes = 16 * 1024;
  static constexpr size_t kMaxMetadataBytes = 16 * 1024;
  static constexpr size_t kMaxTypeNameBytes = 128;
  static constexpr size_t kMaxRoomTypes = 1024;

  RoomManager(RoomHost& host, RoomConfig config);
  ~RoomManager();
  RoomManager(const RoomManager&) = delete;
  RoomManager& operator=(const RoomManager&) = delete;

  // rooms.define: false with `error` when the name is taken or too many
  // types are defined.
  bool define(RoomType type, std::string& error);
  const RoomType* find_type(std::string_view name) const;

  // Hot reload (runtime/roles/server_reload.cpp). Between begin_ and
  // commit_/abort_redefinitions (while the server's chunk runs again),
  // rooms.define and matchmaking.define are staged: a room type defined
  // again replaces the old one at the commit for rooms opened after it (open
  // rooms keep theirs, and reload their file themselves); matchmaking of a
  // type that has it already is kept as it is (its queues too). A type the
  // new chunk no longer defines stays. Abort drops what was staged.
  void begin_redefinitions();
  void commit_redefinitions();
  void abort_redefinitions();
  // Runs every open room's file again in its state (Room::reload), from the
  // loop, so between two of its ticks. Returns how many reloaded; each
  // distinct rejection goes into `rejected` with how many rooms had it.
  size_t reload_rooms(std::map<std::string, size_t>& rejected);

  // A seated session (its codec and claims fixed for its life).
  void add_member(uint64_t session_id, ClientId client, std::optional<Codec> codec, std::string claims);
  // The session ended: it leaves every room it is in with `reason`
  // ("left", "kicked", "timeout"; room.leave runs in each) and is forgotten.
  void remove_member(uint64_t session_id, const std::string& reason);
  Member* member(uint64_t session_id);

  // One packet from a live session on a room channel: decoded, answered,
  // dispatched to its room (a state frame, first byte 0x01..0x04, to its
  // room's state). Bad input is answered with `error`, logged and
  // counted; the kMaxBadMessages-th kicks the session ("protocol").
  void on_packet(uint64_t session_id, std::string_view bytes, Channel channel);

  // Seed 003 room.join_or_create in its three forms.
  JoinResult join_or_create(Member& member, std::string_view type, const Value* options);
  JoinResult join(Member& member, uint64_t room_id, const Value* options);
  // As join, for a seat reserved with a seat token: a lock set after the
  // reservation does not refuse it (the seat was promised; a lock closes the
  // room to new joiners only).
  JoinResult join_reserved(Member& member, uint64_t room_id, const Value* options);
  JoinResult create(Member& member, std::string_view type, const Value* options);
  // False when the member is not in that room.
  bool leave(Member& member, uint64_t room_id, const std::string& reason);

  // At shutdown: every room's room.dispose runs (no room.leave) and the
  // rooms stop ticking; the matchmaking queues are emptied.
  void shutdown();

  // matchmaking.define (room_matchmaking.cpp, docs/matchmaking.md): false
  // with `error` when the room type is not defined, already has
  // matchmaking, or seats fewer than `size`.
  bool define_matchmaking(MatchType type, std::string& error);
  Matchmaker& matchmaker() { return *matchmaker_; }
  // Replaces the in-process queue (--cluster: the queue in Redis) before
  // anyone is queued; the types already defined carry over.
  void use_matchmaker(std::unique_ptr<Matchmaker> matchmaker);
  // In a cluster: every match the queue forms goes to `router` (which picks
  // the room's server) instead of start_match here.
  void route_matches(std::function<void(Match&)> router);
  // Opens the match's room here, seats this server's participants
  // (Ticket::server empty) and tells each match.found. The others (another
  // server's players, Ticket::server set) are the caller's to bring with
  // seat tokens: they count in room.create's `size` and in match.found's
  // `size` and `participants` (the session ids as enqueued, each on its own
  // server). Returns the room id, 0 when no room opened (this server's
  // participants told match.failed).
  uint64_t start_match(Match& match);
  // Forms the matches due now and starts them: a room each (as rooms.create
  // would), every participant seated, match.found to each. Runs from the
  // matchmaking timer; public for tests.
  void run_matchmaking();

  // The cluster (room_cluster.cpp, docs/cluster.md). `cluster` must outlive
  // this; null without --cluster.
  void set_cluster(RoomCluster* cluster) { cluster_ = cluster; }
  // The transfer API (runtime/cluster/transfer.hpp) for the matchmaking
  // side; null without --cluster. Set and cleared with set_cluster.
  void set_transfers(cluster::Transfers* transfers) { transfers_ = transfers; }
  cluster::Transfers* transfers() const { return transfers_; }
  // Room ids from now on are base + 1, base + 2, ... (base = number * 2^32).
  void set_room_id_base(uint64_t base);
  void rooms_changed() {
    if (cluster_) cluster_->rooms_changed();
  }
  // A routed join answered here: with `result` ...
  void answer_routed_join(uint64_t session_id, uint32_t rpc_id, const JoinResult& result);
  // ... or decided here after all (no remote seat could be had).
  void run_local_join(uint64_t session_id, uint32_t rpc_id, const RoomCluster::JoinAsk& ask);
  // Tells the session to move to its seat on another server
  // (cluster.transfer {url, token, room, room_type}, answering `rpc_id`).
  bool send_transfer(uint64_t session_id, uint32_t rpc_id, const cluster::SeatGrant& grant);
  // Holds a seat for a client coming from another server: the room (opened
  // now for `create`, and for join_or_create when no room has a seat) or a
  // refusal. The seat counts against max_clients until released.
  JoinResult reserve_for(const cluster::RoomSeatRequest& request);
  // A reservation expired: its seat is free again.
  void release_reserved(uint64_t room_id);
  // A client presented the token of `reservation`: seated (room.join with
  // the stored options), its request answered or match.found sent.
  void redeem(uint64_t session_id, const cluster::Reservation& reservation);
  // This server's rooms with cluster ids, for the directory.
  std::vector<cluster::RoomEntry> published_rooms() const;
  uint32_t member_count() const { return static_cast<uint32_t>(members_.size()); }
  std::vector<std::string> type_names() const;

  // For the rooms:
  Room* find_room(uint64_t room_id);
  const std::map<uint64_t, std::unique_ptr<Room>>& rooms() const { return rooms_; }
  // Queues one encoded catalog message (in the member's codec) on `channel`.
  bool send_to(const Member& member, std::string_view encoded, Channel channel);
  // After the current handler: the room is settled (closed, or disposed for
  // memory) from the loop, outside any handler.
  void schedule_settle(uint64_t room_id);
  // The room is disposed: its state is closed from the loop.
  void bury(uint64_t room_id);
  RoomHost& host() { return host_; }
  const RoomConfig& config() const { return config_; }
  uint64_t not_member_messages() const { return not_member_messages_; }

 private:
  // Creates, starts and runs room.create in a new room of `type`; null
  // (logged) when its script fails to load or room.create raises.
  Room* open_room(const RoomType& type, const Value* options);
  // Seats `member` in `room` (room.join accepts) or returns the refusal.
  JoinResult seat(Member& member, Room& room, const Value* options);
  void settle_scheduled();
  // Runs settle_scheduled at the next loop iteration.
  void wake();

  // room_dispatch.cpp
  void on_join_request(Member& member, const Message& message);
  void on_leave_request(Member& member, const Message& message);
  void on_list_request(Member& member, const Message& message);
  void on_room_message(Member& member, const Message& message, bool bytes);
  // state.ack and state.resync (runtime/rooms/room_state.hpp).
  void on_state_frame(Member& member, std::string_view bytes);
  // room_matchmaking.cpp
  void on_enqueue_request(Member& member, const Message& message);
  void on_dequeue_request(Member& member, const Message& message);
  // The enqueue's rpc.response (`refusal` empty: queued), when the session is still here.
  void answer_enqueue(uint64_t session_id, uint32_t request_id, const std::string& refusal);
  // Gives the matchmaker its eligibility test, its match sink and its wakeup.
  void attach_matchmaker();
  void send_match_failed(Member& member, std::string_view room_type, std::string_view reason);
  // Arms the matchmaking timer for the matchmaker's next due time.
  void arm_matchmaking();
  void answer_join(Member& member, uint32_t id, const JoinResult& result);
  // With a cluster: true when the join went to it (room_cluster.cpp).
  bool route_join(Member& member, uint32_t id, RoomCluster::JoinAsk::Kind kind, uint64_t room_id,
                  std::string_view type, const Value* options);
  void answer_ok(Member& member, uint32_t id, bool ok, std::string_view reason);
  void send_error(Member& member, std::string_view reason, uint64_t room = 0);
  // A refused packet: an `error` answer (unless `answer` is false: a request
  // already answered with rpc.response), a log line, and the count towards
  // the kick.
  void refuse_packet(Member& member, const std::string& reason, bool answer = true);

  RoomHost& host_;
  RoomConfig config_;
  int64_t room_cap_logged_ms_ = -1;  // the last --max-rooms warning (one per 10 s)
  std::unordered_map<std::string, std::shared_ptr<const RoomType>> types_;
  bool redefining_ = false;
  std::unordered_map<std::string, std::shared_ptr<const RoomType>> staged_types_;
  std::vector<MatchType> staged_matches_;
  std::map<uint64_t, std::unique_ptr<Room>> rooms_;  // by id: oldest first
  std::unordered_map<uint64_t, Member> members_;
  uint64_t next_room_id_ = 1;
  std::vector<std::unique_ptr<Room>> graveyard_;  // disposed, closed from the loop
  std::set<uint64_t> to_settle_;
  UvHandle<uv_timer_t> settle_timer_;  // 0 ms: runs at the next loop iteration
  uint64_t not_member_messages_ = 0;
  std::unique_ptr<Matchmaker> matchmaker_;
  std::function<void(Match&)> match_router_;
  UvHandle<uv_timer_t> match_timer_;
  RoomCluster* cluster_ = nullptr;
  cluster::Transfers* transfers_ = nullptr;
};

}  // namespace nshost::rooms
