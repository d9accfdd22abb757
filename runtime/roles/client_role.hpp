#pragma once
// The client role: resolves and joins one server over ENet, runs the hello
// handshake, ticks at its own rate and calls the script's client.* handlers.
// Several ClientRoles may share one loop. Owns its endpoint, tick, script
// state and timers. Its definitions are split by concern: client_role.cpp
// (connect, events, the timer, sends, shutdown), client_join.cpp (welcome to
// client.connect, hops, the bundle fetch) and client_reconnect.cpp (the
// resume ladder). Every send to the server goes through a PeerLink, except
// the catalog messages of rooms (channels 3 and 4, send_catalog), which its
// rooms::ClientRooms makes and reads.
//
// The phase says what the one timer (timer_) means when it fires (a stop
// requested meanwhile comes first, except in leaving and closed):
//   idle, resolving, connecting, handshaking  no welcome in time
//   fetching                                  the bundle did not arrive in time
//   failing                                   deliver a hop failure outside Lua
//   reconnecting                              make the next resume attempt
//   joined                                    a deferred stop
//   leaving                                   the server did not acknowledge the leave
//   closed                                    finish
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/script/bundle.hpp"
#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/script/host_api.hpp"
#include "runtime/roles/join_fetch.hpp"
#include "runtime/roles/reliable_replay.hpp"
#include "runtime/roles/role_runner.hpp"
#include "runtime/rooms/client_rooms.hpp"
#include "runtime/script/script_host.hpp"
#include "runtime/core/tick_driver.hpp"
#include "runtime/core/url.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost {

class LocalLink;

class ClientRole final : public ClientApi,
                         public RoleRunner,
                         private EnetEndpoint::Listener,
                         private rooms::ClientRooms::Owner {
 public:
  // No welcome within this time (or --link-timeout if longer) after starting
  // to connect: "connect_failed".
  static constexpr uint64_t kConnectTimeoutMs = 5000;
  // A leave waits at most this long for the server's acknowledgement.
  static constexpr uint64_t kLeaveGraceMs = 1000;
  // A bundle fetch that has not completed in this time: "hop_failed: fetch_timeout".
  static constexpr uint64_t kFetchTimeoutMs = 15000;
  // Data that arrives while the bundle is fetched is held for the new state,
  // up to this many bytes; beyond it messages are dropped (and logged).
  static constexpr size_t kMaxHeldBytes = 8u << 20;

  ClientRole(uv_loop_t* loop, Options options, std::string log_tag = "client");
  ~ClientRole() override;

  bool start(std::string& error) override;
  void begin_shutdown() override;
  bool finished() const override { return finished_; }
  bool stopping() const override { return stop_requested_ || finished_; }
  int exit_code() const override { return exit_code_; }
  ScriptHost* script() const { return script_.get(); }
  bool joined() const { return phase_ == Phase::joined; }
  // --role=host: before start(), join the listen server over this in-process
  // link instead of ENet (no endpoint, no URL; hop() is refused). The link
  // must outlive this role's use of it.
  void use_local_link(LocalLink& link);

  // HostApi
  Role role() const override { return Role::client; }
  bool listen_server() const override { return options_.role == Role::host; }
  uv_loop_t* loop() const override { return loop_; }
  bool headless() const override { return options_.headless; }
  uint32_t tick_rate_hz() const override { return tick_.rate_hz(); }
  void set_tick_rate_hz(uint32_t hz) override { tick_.set_rate(hz); }
  uint32_t max_clients() const override { return server_max_clients_; }
  uint32_t server_tick_rate_hz() const override { return server_tick_rate_hz_; }
  std::optional<uint64_t> server_tick() const override {
    if (server_tick_rate_hz_ == 0) return std::nullopt;
    return server_tick_;
  }
  uint32_t bot_index() const override { return bot_index_; }
  // Before start(): this client is bot `index` (1..N) of a --bots fleet.
  void set_bot_index(uint32_t index) { bot_index_ = index; }
  uint32_t max_message_bytes() const override { return options_.max_message_bytes; }
  void request_stop(int exit_code) override;
  void on_script_error() override;

  // ClientApi
  bool send(std::string_view data, Channel channel, std::string& error) override;
  bool hop(std::string_view url, std::string_view handoff, std::string& error) override;
  rooms::ClientRooms* rooms() override { return &rooms_; }

  // Loop callbacks (not for scripts).
  void on_resolved(int status, const struct addrinfo* result);
  void on_timer();
  void send_ack();

 private:
  // fetching: welcomed, waiting for the destination's bundle. failing: a hop
  // failed inside a call from Lua; the timer delivers it outside.
  // reconnecting: the link dropped and the ladder waits before its next
  // attempt; an attempt itself goes through connecting and handshaking.
  enum class Phase { idle, resolving, connecting, handshaking, fetching, joined, leaving, failing, reconnecting, closed };

  void on_enet_event(ENetEvent& event) override;
  // The pieces of on_enet_event, for the server's peer only.
  void on_link_up();
  void on_receive(uint8_t channel_id, std::string_view bytes);
  void on_control(std::string_view bytes);
  void on_welcome_message(std::string_view bytes);
  void on_ack_message(std::string_view bytes);
  void on_link_down(uint32_t disconnect_code);
  // No welcome in time: the next reconnect attempt, a failed hop or "connect_failed".
  void on_connect_timeout();
  // Resets the server's peer (no goodbye) and forgets it.
  void drop_peer();
  void connect_to(const ENetAddress& address);
  void end_connection(std::string reason);
  void on_tick(const TickScheduler::Beat& beat, int64_t now_ns);
  void defer(uint64_t ms);
  // Resume (seed 002): the reconnect ladder, apart from the first join.
  void on_reconnect_welcome(const wire::Welcome& welcome);
  bool should_resume(uint32_t disconnect_code) const;
  // An attempt's link went down before a welcome: retried, or the end.
  void on_attempt_refused();
  void start_reconnect();
  void schedule_attempt();
  void attempt_reconnect();
  void finish();
  void connect_to_url();
  void mark_dirty() {
    if (endpoint_) endpoint_->mark_dirty();
  }

  // Shards (docs/shards.md).
  void start_hop(const std::string& url, std::string handoff);
  void fail_soon(std::string why);
  void fail_hop(std::string why);
  void on_welcome(const wire::Welcome& welcome);
  void on_bundle_part(std::string_view bytes);
  void adopt_bundle(const std::string& bytes);
  void complete_join();
  void deliver_data(uint8_t channel_id, std::string_view bytes);
  void deliver_held();
  void schedule_ack();
  ScriptHost::Sandbox sandbox_limits(bool enabled) const;

  // rooms::ClientRooms::Owner
  ScriptHost* rooms_script() override { return script_.get(); }
  bool rooms_link_up() const override { return phase_ == Phase::joined && peer_ != nullptr; }
  bool send_catalog(std::string_view bytes, bool reliable) override;
  uint32_t rooms_max_message_bytes() const override { return options_.max_message_bytes; }
  // cluster.transfer (client_join.cpp, docs/cluster.md): a hop to the seat,
  // keeping the state, without client.connect.
  void rooms_transfer(std::string url, std::string token) override;

  uv_loop_t* loop_;
  Options options_;
  std::string log_tag_;
  ShardUrl url_;
  std::unique_ptr<EnetEndpoint> endpoint_;
  std::unique_ptr<ScriptHost> script_;
  TickDriver tick_;
  UvHandle<uv_timer_t> timer_;  // connect timeout, leave grace, deferred stop
  UvHandle<uv_timer_t> ack_timer_;  // armed only while an ack is pending
  // Reliable messages of this session, numbered for the replay after a resume.
  ReliableReplay replay_{0};
  size_t undelivered_before_join_ = 0;  // from a session that was not resumed
  uv_getaddrinfo_t* resolving_ = nullptr;  // owned by libuv until its callback
  ENetPeer* peer_ = nullptr;
  Phase phase_ = Phase::idle;
  std::string pending_reason_;  // from a reject or kick notice
  std::string handoff_;         // what this join carries to server.connect
  ENetAddress server_address_{};
  std::string session_token_;   // from the last welcome; "" when none
  bool reconnecting_ = false;   // between a dropped link and the end of its ladder
  uint32_t reconnect_attempt_ = 0;
  int64_t reconnect_started_ns_ = 0;
  uint32_t server_max_clients_ = 0;
  uint32_t server_tick_rate_hz_ = 0;
  uint64_t server_tick_ = 0;
  uint32_t bot_index_ = 0;
  int64_t last_tick_ns_ = 0;
  bool stop_requested_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
  int requested_exit_code_ = 0;  // by sys.quit or --strict, even while loading

  BundleCache cache_;
  bool hopping_ = false;                          // failures of this attempt are hop_failed
  std::optional<wire::Redirect> pending_redirect_;  // from the server; followed on disconnect
  std::string pending_failure_;                   // Phase::failing
  std::string tree_hash_;                         // SHA-256 of the tree script_ runs; "" unknown
  ENetPeer* leaving_peer_ = nullptr;              // the origin of a hop, until it acknowledges
  bool transferring_ = false;                     // this hop follows a cluster.transfer
  std::string seat_token_;                        // the next hello presents it (a transfer)
  JoinFetch fetch_{kMaxHeldBytes};  // the bundle on its way and the data held meanwhile
  rooms::ClientRooms rooms_;        // the rooms of the current session (runtime/rooms/client_rooms.hpp)
  LocalLink* local_ = nullptr;      // --role=host: the in-process link to the server
};

}  // namespace nshost
