#pragma once
// One server's part of the cluster (--cluster, docs/cluster.md): its Redis
// client, its directory entry and cached view, its inbox, the seats it
// reserved for clients coming from other servers, and the routing of joins
// it cannot seat itself. Owned by the ServerRole; everything runs on the
// server's loop and nothing here ever waits for Redis.
#include <uv.h>

#include <memory>
#include <string>

#include "runtime/cluster/directory.hpp"
#include "runtime/cluster/inbox.hpp"
#include "runtime/cluster/redis_client.hpp"
#include "runtime/cluster/seat_reservations.hpp"
#include "runtime/cluster/transfer.hpp"
#include "runtime/core/uv_handle.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost {

class ServerCluster final : public cluster::Transfers,
                            public rooms::RoomCluster,
                            public cluster::RedisClient::Listener {
 public:
  // How long a reserved seat waits for its client (docs/cluster.md).
  static constexpr uint32_t kSeatLifetimeMs = cluster::SeatReservations::kDefaultLifetimeMs;

  struct Config {
    cluster::RedisAddress redis;
    std::string url;  // nshost://HOST:PORT: where clients reach this server
    uint32_t heartbeat_ms = 1000;
    uint32_t max_clients = 64;
  };

  // `rooms` must outlive this (the role detaches the cluster first).
  ServerCluster(uv_loop_t* loop, Config config, rooms::RoomManager& rooms);
  ~ServerCluster() override;
  ServerCluster(const ServerCluster&) = delete;
  ServerCluster& operator=(const ServerCluster&) = delete;

  // After the script loaded (the room types are known): connect, register.
  void start();
  // Stops writing to the directory (its keys expire) and closes Redis.
  void stop();

  // A hello's seat token: true with the reservation, else false with the
  // reason the client is refused ("seat token used" / "expired" / "unknown").
  bool redeem(std::string_view token, cluster::Reservation& out, std::string& reason);

  // cluster::Transfers
  const std::string& server_id() const override { return id_; }
  void reserve_remote(std::string_view server_id, cluster::RoomSeatRequest request,
                      cluster::ReserveCallback callback) override;
  bool send_transfer(uint64_t session_id, uint32_t rpc_id, const cluster::SeatGrant& grant) override;
  std::string pick_server(std::string_view room_type) const override;

  // rooms::RoomCluster
  bool route_join(uint64_t session_id, uint32_t rpc_id, JoinAsk ask) override;
  std::vector<cluster::RoomEntry> remote_rooms() const override;
  void rooms_changed() override;

  cluster::RedisClient& redis() { return *redis_; }
  cluster::Directory& directory() { return *directory_; }
  bool redis_up() const { return redis_->connected(); }

 // cluster::RedisClient::Listener
  void on_redis_up() override;
  void on_redis_down(std::string_view why) override;

 private:
  // The inbox's "reserve" request: a seat here for another server's client.
  void on_reserve(const nlohmann::json& body, cluster::Inbox::Reply reply);
  cluster::SeatGrant reserve_here(const cluster::RoomSeatRequest& request, std::string& error);
  void expire_seats();
  // join_or_create / create after the remote rooms: on the picked server.
  void create_on_pick(uint64_t session_id, uint32_t rpc_id, JoinAsk ask);
  // Sends the grant as a transfer, or answers the refusal.
  void finish_routed(uint64_t session_id, uint32_t rpc_id, const cluster::SeatGrant* grant, std::string_view error);
  void later(std::function<void()> fn);

  uv_loop_t* loop_;
  Config config_;
  rooms::RoomManager& rooms_;
  std::string id_;
  std::unique_ptr<cluster::RedisClient> redis_;
  std::unique_ptr<cluster::Directory> directory_;
  std::unique_ptr<cluster::Inbox> inbox_;
  cluster::SeatReservations seats_;
  UvHandle<uv_timer_t> expiry_;
  UvHandle<uv_timer_t> later_timer_;
  std::vector<std::function<void()>> later_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace nshost
