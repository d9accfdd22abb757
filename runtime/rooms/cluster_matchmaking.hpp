#pragma once
// Matchmaking across the servers of a cluster (docs/cluster.md "Matchmaking
// across servers"): the rooms' queue is a RedisMatchmaker, and every match
// it forms on this server (the type's forming lease holder) is routed here.
// The room goes to the least-loaded server running the type
// (cluster::Transfers::pick_server): this one, or another told to start it. The
// room's server seats its own players at once (RoomManager::start_match),
// reserves a seat (a seat token) for each other player and tells that
// player's server, which moves it with a transfer; its client.match_found
// fires on the room's server when it is seated there.
//
// Servers talk on their own channel, `nshost:mm:notify:<server id>` (PUBLISH
// of one JSON object): {"t":"start", "match":{...}} asks the room's server to
// start a match; {"t":"seat", "session", "url", "token", "server", "room",
// "room_type"} tells a player's server where its player goes. A notice that
// reaches nobody (PUBLISH answers 0: the server is gone) falls back: a start
// runs here, a seat is dropped (its reservation expires).
#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/cluster/redis_client.hpp"
#include "runtime/rooms/redis_matchmaker.hpp"
#include "runtime/cluster/transfer.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost::rooms {

class ClusterMatchmaking {
 public:
  // Everything must outlive this. Installs `matchmaker` in `rooms` (the
  // types defined so far carry over) and routes its matches here;
  // subscribes to this server's notice channel. Destroying it puts an
  // in-process queue back (the Redis one is destroyed with it).
  ClusterMatchmaking(cluster::RedisClient& redis, cluster::Transfers& transfers, rooms::RoomManager& rooms,
                     std::unique_ptr<RedisMatchmaker> matchmaker);
  ~ClusterMatchmaking();
  ClusterMatchmaking(const ClusterMatchmaking&) = delete;
  ClusterMatchmaking& operator=(const ClusterMatchmaking&) = delete;

  RedisMatchmaker& matchmaker() { return *matchmaker_; }
  // Matches started here, players sent elsewhere, notices refused as malformed.
  uint64_t matches_started() const { return matches_started_; }
  uint64_t players_moved() const { return players_moved_; }

  static std::string channel(std::string_view server_id);

 private:
  void route(rooms::Match& match);
  void start_here(rooms::Match match);
  void on_notice(std::string_view message);
  void move_player(uint64_t session, const cluster::SeatGrant& grant);
  void publish(const std::string& server_id, std::string message, std::function<void(bool delivered)> done);

  cluster::RedisClient& redis_;
  cluster::Transfers& transfers_;
  rooms::RoomManager& rooms_;
  RedisMatchmaker* matchmaker_;  // owned by rooms_
  std::string server_id_;
  // Seats told before the player's own enqueue was answered: the transfer
  // waits for that answer (the client hears "queued" first).
  std::map<uint64_t, cluster::SeatGrant> early_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uint64_t matches_started_ = 0;
  uint64_t players_moved_ = 0;
};

}  // namespace nshost::rooms
