#pragma once
// The server role: binds an ENet host, admits peers through the hello
// handshake into slots, calls the script's server.* handlers and fans its
// sends out. Owns its endpoint, tick, script state and timers; destroying it
// closes them (the loop must run once more to free the libuv handles).
// Its definitions are split by concern: server_role.cpp (events, sends,
// ticks, shutdown), server_admission.cpp (connects, hellos, rate, half-open
// peers), server_resume.cpp (tokens, acks, grace, replay) and
// server_bundle.cpp (streaming the script tree) and server_rooms.cpp (the
// rooms' side of the handshake, server.auth, catalog packets, room
// membership ending with the session). Every send to a peer goes through a
// PeerLink.
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/script/host_api.hpp"
#include "runtime/roles/peer_link.hpp"
#include "runtime/roles/reliable_replay.hpp"
#include "runtime/roles/role_runner.hpp"
#include "runtime/script/script_host.hpp"
#include "runtime/roles/session.hpp"
#include "runtime/core/slot_table.hpp"
#include "runtime/core/tick_driver.hpp"
#include "runtime/transport/wire.hpp"
#include "runtime/rooms/codec.hpp"
#include "runtime/ops/metrics.hpp"
#include "runtime/ops/admin_server.hpp"

namespace nshost {
class LocalLink;
class ServerCluster;
namespace rooms {
class ClusterMatchmaking;
class RoomHost;
}  // namespace rooms
namespace ops {
class ScriptWatcher;
}  // namespace ops
namespace cluster {
struct Reservation;
class Transfers;
}  // namespace cluster

// A served script bundle: every bundle_part message encoded once, back to
// back; each transfer's packets point into `wire`.
struct ServedBundle {
  std::string wire;
  std::vector<std::pair<size_t, size_t>> parts;  // offset, length in `wire`
  size_t bytes = 0;                               // the encoded bundle
};

class ServerRole final : public ServerApi, public RoleRunner, private EnetEndpoint::Listener, private ops::AdminSource {
 public:
  // A kicked or rejected peer that does not acknowledge the disconnect in
  // this time is reset.
  static constexpr int64_t kDepartTimeoutNs = 2'000'000'000;
  // SIGTERM waits at most this long for clients to acknowledge the shutdown.
  static constexpr uint64_t kShutdownGraceMs = 1500;
  // Datagrams read per recvmmsg(2): 64 slots of 4 KiB (256 KiB, once).
  static constexpr size_t kServerReceiveBatch = 64;
  // ENet peers beyond max_clients are --max-pending-handshakes, so a joiner
  // past capacity can be told "rejected: full" rather than silently ignored.
  // Bundle serving: parts (kBundlePartBytes each) ENet may hold per client
  // at once; transfers one connection may ask for before it is kicked.
  static constexpr uint32_t kBundlePartsInFlight = 16;
  static constexpr uint32_t kMaxBundleTransfers = 3;
  static constexpr int64_t kRefusedReportIntervalNs = 10'000'000'000;
  static constexpr size_t kMaxRefusedAddresses = 4096;

  ServerRole(uv_loop_t* loop, Options options);
  ~ServerRole() override;

  bool start(std::string& error) override;
  void begin_shutdown() override;
  bool finished() const override { return finished_; }
  bool stopping() const override { return stopping_ || finished_; }
  int exit_code() const override { return exit_code_; }
  // The bound UDP port (useful with --port=0).
  uint16_t port() const { return endpoint_ ? endpoint_->local_port() : 0; }
  ScriptHost* script() const { return script_.get(); }
  // The transport; null before start() and after shutdown.
  const EnetEndpoint* endpoint() const { return endpoint_.get(); }
  // Closes everything at once; only from a loop callback, never from an event.
  void finish_now();
  // --role=host: before start(), the in-process link its local client joins
  // over (runtime/roles/local_link.hpp); it must outlive this role's use of it.
  void attach_local(LocalLink& link);
  // The admin server's bound TCP port (--admin with port 0); 0 without one.
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }
  const ops::ServerMetrics& metrics() const { return metrics_; }

  // HostApi
  Role role() const override { return Role::server; }
  bool listen_server() const override { return options_.role == Role::host; }
  uv_loop_t* loop() const override { return loop_; }
  bool headless() const override { return options_.headless; }
  uint32_t tick_rate_hz() const override { return tick_.rate_hz(); }
  void set_tick_rate_hz(uint32_t hz) override { tick_.set_rate(hz); }
  uint32_t max_clients() const override { return options_.max_clients; }
  uint32_t max_message_bytes() const override { return options_.max_message_bytes; }
  void request_stop(int exit_code) override;
  void on_script_error() override;
  void on_handler_timeout() override { ++metrics_.handler_timeouts; }

  // ServerApi
  Liveness liveness(ClientId id) const override;
  bool send(ClientId id, std::string_view data, Channel channel, std::string& error) override;
  size_t broadcast(std::string_view data, Channel channel) override;
  size_t broadcast(std::string_view data, Channel channel, std::span<const ClientId> targets) override;
  bool kick(ClientId id, std::string_view reason) override;
  bool redirect(ClientId id, std::string_view url, std::string_view handoff) override;
  rooms::RoomManager* rooms() override { return rooms_.get(); }
  // With --cluster (docs/cluster.md): the transfer API; null without it.
  cluster::Transfers* transfers();
  ServerCluster* cluster() const { return cluster_.get(); }
  // SHA-256 (raw) of the script bundle this shard serves; "" if none.
  const std::string& bundle_hash() const { return bundle_hash_; }

 private:
  enum class Phase { idle, handshake, rejected, live, departing };
  static constexpr size_t kNoTransfer = static_cast<size_t>(-1);
  // Indexed by ENet peer index; ENet reuses peers, so nothing here outlives
  // the connection it was reset for.
  struct PeerState {
    Phase phase = Phase::idle;
    ClientId id;
    int64_t since_ns = 0;      // when the current phase began
    std::string depart_reason;  // set when we kicked it
    // --max-message-rate: a token bucket refilled at the rate, one burst second deep.
    double rate_tokens = 0;
    int64_t rate_refill_ns = 0;
    // A half-open ENet peer (connect not yet completed) and since when.
    uint32_t half_open_connect_id = 0;
    // Its bundle transfer: the next part to queue (kNoTransfer: none), parts
    // ENet still holds (queued or unacknowledged), transfers begun on this
    // connection, repeats ignored, and which transfer (for late releases).
    size_t bundle_next_part = kNoTransfer;
    uint32_t bundle_parts_out = 0;
    uint32_t bundle_transfers = 0;
    uint64_t bundle_requests_ignored = 0;
    uint64_t bundle_transfer_id = 0;
    // The bundle this transfer streams: a reload serves a new one to later
    // requests while this one finishes (its packets point into it).
    std::shared_ptr<const ServedBundle> bundle;
  };
  struct SlotEntry {
    ENetPeer* peer = nullptr;
    int handle_ref = LUA_NOREF;  // the client handle userdata in the registry
    // Reliable replay across a resume (docs/reliability.md).
    ReliableReplay replay{0};
    bool held = false;         // in its grace window: reliable sends are queued
    int64_t lost_since_ns = 0;  // when the link dropped
    uint64_t session_id = 0;   // c.id; kept across a resume
    std::optional<rooms::Codec> codec;  // picked at the hello; none: no rooms
  };
  // What the hello and server.auth decided for a fresh join.
  struct Admission {
    std::optional<rooms::Codec> codec;
    std::string claims;  // server.auth's table, msgpack; "" for none
    std::shared_ptr<cluster::Reservation> reservation;  // the hello's seat token, redeemed
  };
  // Acks are checked this often (each slot's goes out at most every
  // ReliableReplay::kAckIntervalNs).
  static constexpr uint64_t kAckPollMs = 25;

  void on_enet_event(ENetEvent& event) override;
  void on_serviced() override {
    if (!bundle_senders_.empty()) pump_bundles();
  }
  // A peer's connect completed: owes a hello within the handshake timeout.
  void on_peer_connect(ENetPeer* peer);
  void on_control(ENetPeer* peer, std::string_view bytes);
  void on_hello(ENetPeer* peer, std::string_view bytes);
  // A hello with a session token: true when it was handled (resumed, or
  // refused because the session still has its link); false to join fresh.
  bool take_session(ENetPeer* peer, const wire::Hello& hello, const std::string& who);
  // A free slot, or one taken from a session held for resume; none (and the
  // peer refused, or already closed) when the server is full.
  std::optional<ClientId> acquire_slot(ENetPeer* peer, const std::string& who);
  // Seats a welcomed peer in id's slot and calls server.connect.
  void seat(ENetPeer* peer, ClientId id, const std::string& handoff, const std::string& who, Admission admission);
  // Rooms (server_rooms.cpp). The codec and --project-id checks of a hello:
  // false when the peer was refused.
  bool check_room_fields(ENetPeer* peer, const wire::Hello& hello, const std::string& who, Admission& admission);
  // server.auth, when the script defines it: false when the peer was refused.
  bool authenticate(ENetPeer* peer, const wire::Hello& hello, const std::string& who, Admission& admission);
  bool start_rooms(std::string& error);
  // The cluster (server_rooms.cpp): started after the script loaded, stopped
  // (leaving the directory) at shutdown.
  bool start_cluster(std::string& error);
  void stop_cluster();
  // A hello's seat token: false when the peer was refused (used, expired,
  // unknown); else the reservation is in `admission`.
  bool take_seat_token(ENetPeer* peer, const wire::Hello& hello, const std::string& who, Admission& admission);
  // After seat(): the reserved seat is taken (or handed back if the client
  // could not be seated).
  void redeem_seat(std::optional<ClientId> id, const Admission& admission);
  // A catalog packet on channel 3 or 4 from a live peer.
  void on_room_packet(ENetPeer* peer, uint8_t channel, std::string_view bytes);
  // The session in `slot` ended with `reason` (the server.disconnect reason):
  // it leaves its rooms ("kicked", "timeout" or "left").
  void leave_rooms(uint32_t slot, const std::string& reason);
  bool queue_room_packet(ClientId id, ENetPacket* packet, Channel channel);
  // Resume (seed 002): the pieces are kept apart from the join path.
  void send_welcome(ENetPeer* peer, ClientId id, bool resumed);
  // False when the session cannot be replayed faithfully: it is ended and
  // the hello is admitted as a fresh join.
  bool resume(ENetPeer* peer, uint32_t slot, const wire::Hello& hello);
  // Reliable data to a slot: sent and retained when live, queued when held.
  bool send_reliable(uint32_t slot, const ReliableReplay::Payload& payload, ENetPacket* packet, std::string& error);
  void on_ack(ENetPeer* peer, std::string_view bytes);
  void send_acks();
  // About once a second: every live client is told the latest tick number
  // (its server_tick()); the welcome carries it too.
  void send_clocks(int64_t now_ns);
  uint64_t rate_depth() const;
  void enter_grace(ENetPeer* peer);
  void expire_lost_sessions(int64_t now_ns);
  void drop_lost(uint32_t slot, const std::string& reason);
  // Limits: false when the peer was kicked for flooding.
  bool within_message_rate(ENetPeer* peer);
  bool admit_handshake(ENetPeer* peer);
  // The tap's connect filter: the per-address and global pending budgets,
  // with fair eviction when the global one is full (docs/reliability.md).
  bool admit_connect(const ENetAddress& from);
  void note_refused(const ENetAddress& from);
  // One info line per kRefusedReportIntervalNs while connects are refused.
  void report_refused(int64_t now_ns);
  void expire_half_open(size_t index, int64_t now_ns);
  void refuse(ENetPeer* peer, std::string_view reason);
  void on_data(ENetPeer* peer, uint8_t channel, std::string_view bytes);
  void on_peer_gone(ENetPeer* peer, uint32_t code);
  // Shards: pack the script tree at start (and after each reload); stream it
  // to a client that asks.
  void prepare_bundle();
  // --watch (server_reload.cpp): reloads the main state, then every room's,
  // then the served bundle; logs one line for the outcome.
  bool start_watch(std::string& error);
  void reload_scripts(size_t files_changed);
  // Starts the peer's transfer (or ignores / kicks a repeat).
  void serve_bundle(ENetPeer* peer);
  // Queues parts while fewer than kBundlePartsInFlight are out; false once
  // the transfer is over (or there is none).
  bool pump_bundle(size_t index);
  void pump_bundles();
  static void on_part_released(ENetPacket* packet);
  PeerLink link(ENetPeer* peer) { return PeerLink(*endpoint_, peer); }
  void finish_departure(ENetPeer* peer, const std::string& reason);
  void on_tick(const TickScheduler::Beat& beat, int64_t now_ns);
  void expire_stale_peers(int64_t now_ns);
  void push_handle(ClientId id);
  // " (N reliable message(s) not acknowledged ...)" for a leave line; "" for none.
  static std::string undelivered_note(size_t undelivered);
  PeerState& state_of(ENetPeer* peer);
  // Into peers_: ENet's peer index, or the last entry for the local client.
  size_t peer_index(const ENetPeer* peer) const;
  void defer_stop(int exit_code);
  void finish();
  bool all_peers_closed() const;
  // Metrics (server_metrics.cpp): --admin's server, and the snapshot both
  // endpoints render, gathered in O(peers + rooms).
  bool start_admin(std::string& error);
  ops::StatusSnapshot snapshot();
  std::string metrics_text() override;
  std::string status_json() override;

  uv_loop_t* loop_;
  Options options_;
  std::unique_ptr<EnetEndpoint> endpoint_;
  std::unique_ptr<ScriptHost> script_;
  SlotTable slots_;
  SessionTable sessions_;
  std::vector<SlotEntry> slot_entries_;
  std::vector<PeerState> peers_;
  TickDriver tick_;
  UvHandle<uv_timer_t> stop_timer_;  // runs the shutdown outside any handler
  UvHandle<uv_timer_t> grace_timer_;
  UvHandle<uv_timer_t> ack_timer_;
  bool stopping_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
  int requested_exit_code_ = 0;  // by sys.quit or --strict, even while loading
  uint64_t dropped_messages_ = 0;
  uint64_t refused_connects_ = 0, evicted_pending_ = 0;  // since the last report
  std::unordered_set<uint32_t> refused_addresses_;        // bounded: kMaxRefusedAddresses
  int64_t refused_report_ns_ = 0;
  std::shared_ptr<const ServedBundle> served_;          // what a new transfer streams; null: none
  size_t bundle_size_ = 0;                              // the encoded bundle, bytes
  std::vector<size_t> bundle_senders_;                  // peer indices with a transfer under way
  uint64_t bundle_transfer_count_ = 0;
  std::string bundle_hash_;
  uint64_t next_session_id_ = 1;  // c.id: never reused in this process
  uint64_t last_tick_num_ = 0;    // of the latest tick that ran
  int64_t last_clock_ns_ = 0;
  friend class ServerRoomHost;
  std::unique_ptr<rooms::RoomHost> room_host_;
  std::unique_ptr<rooms::RoomManager> rooms_;
  std::unique_ptr<ServerCluster> cluster_;  // --cluster only
  std::unique_ptr<rooms::ClusterMatchmaking> cluster_matchmaking_;  // --cluster: the queue in Redis
  LocalLink* local_ = nullptr;  // --role=host only
  std::unique_ptr<ops::ScriptWatcher> watcher_;  // --watch
  ops::ServerMetrics metrics_;
  int64_t started_ns_ = 0;
  std::unique_ptr<ops::AdminServer> admin_;  // --admin only
};

}  // namespace nshost
