// The server role's side of rooms (docs/rooms.md): the handshake fields of
// seed 003 (codecs, project id), server.auth before a slot is given, catalog
// packets on channels 3 and 4 handed to the room manager, room messages
// queued on a client's room channels, and a session's rooms left when the
// session ends.
#include <algorithm>

#include "runtime/core/log.hpp"
#include "runtime/roles/peer_link.hpp"
#include "runtime/roles/server_cluster.hpp"
#include "runtime/rooms/cluster_matchmaking.hpp"
#include "runtime/roles/server_role.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost {

// The rooms reach the role only through this.
class ServerRoomHost final : public rooms::RoomHost {
 public:
  explicit ServerRoomHost(ServerRole& role) : role_(role) {}
  bool queue_room_packet(ClientId client, ENetPacket* packet, Channel channel) override {
    return role_.queue_room_packet(client, packet, channel);
  }
  void kick_client(ClientId client, std::string_view reason) override { role_.kick(client, reason); }
  void on_room_script_error() override { role_.on_script_error(); }
  void on_room_handler_timeout() override { role_.on_handler_timeout(); }
  bool client_live(ClientId client) const override { return role_.liveness(client) == ServerApi::Liveness::live; }

 private:
  ServerRole& role_;
};

namespace {

// server.auth's refusal reason travels in a reject notice.
constexpr size_t kMaxAuthReasonBytes = 200;

std::string directory_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

bool ServerRole::start_rooms(std::string& error) {
  rooms::RoomConfig config;
  config.loop = loop_;
  config.script_dir = directory_of(options_.script);
  config.sandbox = options_.sandbox;
  config.memory_limit_bytes = options_.room_memory_limit_bytes;
  config.instruction_budget = options_.instruction_budget;
  config.handler_timeout_ms = options_.handler_timeout_ms;
  config.tick_rate_hz = options_.tick_rate_hz;
  config.max_message_bytes = options_.max_message_bytes;
  config.headless = options_.headless;
  config.listen_server = listen_server();
  config.state_ack_timeout_ms = options_.state_ack_timeout_ms;
  config.max_rooms = options_.max_rooms;
  try {
    room_host_ = std::make_unique<ServerRoomHost>(*this);
    rooms_ = std::make_unique<rooms::RoomManager>(*room_host_, std::move(config));
  } catch (const std::exception& e) {
    error = std::string("nshost: rooms: ") + e.what();
    return false;
  }
  return true;
}

bool ServerRole::check_room_fields(ENetPeer* peer, const wire::Hello& hello, const std::string& who,
                                   Admission& admission) {
  if (!hello.codecs.empty()) {
    admission.codec = rooms::pick_codec(hello.codecs);
    if (!admission.codec) {
      log_event(LogLevel::warn, "server", "reject",
                "rejected " + who + ": codec (offered '" + hello.codecs + "'; this server speaks msgpack, json)",
                {{"address", who}, {"reason", "codec"}});
      refuse(peer, "codec");
      return false;
    }
  }
  if (!options_.project_id.empty() && hello.project_id != options_.project_id) {
    log_event(LogLevel::warn, "server", "reject",
              "rejected " + who + ": project_id ('" + hello.project_id.substr(0, 64) + "', this server serves '" +
                  options_.project_id + "')",
              {{"address", who}, {"reason", "project_id"}});
    refuse(peer, "project_id");
    return false;
  }
  return true;
}

bool ServerRole::authenticate(ENetPeer* peer, const wire::Hello& hello, const std::string& who, Admission& admission) {
  if (!script_->has_handler("auth")) return true;
  enum class Verdict { admit, refuse, too_large } verdict = Verdict::admit;
  std::string reason;
  bool ok = script_->invoke(
      "auth",
      [&](lua_State* L) {
        if (hello.auth_token.empty()) lua_pushnil(L);
        else lua_pushlstring(L, hello.auth_token.data(), hello.auth_token.size());
        if (hello.project_id.empty()) lua_pushnil(L);
        else lua_pushlstring(L, hello.project_id.data(), hello.project_id.size());
        lua_pushstring(L, who.c_str());
        return 3;
      },
      [&](lua_State* L) {
        int first = lua_gettop(L) >= 1 ? lua_type(L, 1) : LUA_TNIL;
        if (first == LUA_TNIL || (first == LUA_TBOOLEAN && lua_toboolean(L, 1))) return 0;
        if (first == LUA_TBOOLEAN) {
          verdict = Verdict::refuse;
          size_t n = 0;
          const char* s = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : nullptr;
          reason = s && n > 0 ? std::string(s, std::min(n, kMaxAuthReasonBytes)) : "auth refused";
          return 0;
        }
        if (first != LUA_TTABLE)
          return luaL_error(L, "server.auth must return true, false (and a reason), nil or a claims table (got a %s)",
                            luaL_typename(L, 1));
        rooms::Writer w(rooms::Codec::msgpack);
        std::string error;
        if (!w.lua_value(L, 1, error, "claims")) return luaL_error(L, "server.auth: %s", error.c_str());
        if (w.size() > rooms::RoomManager::kMaxClaimsBytes) {
          verdict = Verdict::too_large;
          return 0;
        }
        admission.claims = w.take();
        return 0;
      });
  if (!ok) {
    refuse(peer, "auth failed");
    return false;
  }
  if (verdict == Verdict::refuse) {
    log_event(LogLevel::info, "server", "reject", "rejected " + who + " by server.auth: " + reason,
              {{"address", who}, {"reason", reason}});
    refuse(peer, reason);
    return false;
  }
  if (verdict == Verdict::too_large) {
    log_event(LogLevel::warn, "server", "reject",
              "rejected " + who + ": server.auth's claims encode to more than " +
                  std::to_string(rooms::RoomManager::kMaxClaimsBytes) + " bytes",
              {{"address", who}, {"reason", "auth claims too large"}});
    refuse(peer, "auth claims too large");
    return false;
  }
  // The handler may have stopped the server meanwhile (sys.quit runs later,
  // but a shutdown already under way closed the peer).
  return state_of(peer).phase == Phase::handshake && peer->state == ENET_PEER_STATE_CONNECTED;
}

void ServerRole::on_room_packet(ENetPeer* peer, uint8_t channel, std::string_view bytes) {
  const PeerState& st = state_of(peer);
  rooms_->on_packet(slot_entries_[st.id.slot].session_id, bytes,
                    channel == wire::kChannelRoomReliable ? Channel::reliable : Channel::unreliable);
}

bool ServerRole::queue_room_packet(ClientId id, ENetPacket* packet, Channel channel) {
  if (liveness(id) != Liveness::live) {
    ++dropped_messages_;  // a held slot gets no room messages: state sync resyncs it
    return false;
  }
  ENetPeer* peer = slot_entries_[id.slot].peer;
  uint8_t channel_id = channel == Channel::reliable ? wire::kChannelRoomReliable : wire::kChannelRoomUnreliable;
  // A peer that connected with the channels of before rooms has none.
  if (channel_id >= peer->channelCount) return false;
  if (!link(peer).queue_on(packet, channel_id)) return false;
  endpoint_->mark_dirty();
  return true;
}

void ServerRole::leave_rooms(uint32_t slot, const std::string& reason) {
  uint64_t session = slot_entries_[slot].session_id;
  if (!rooms_ || session == 0) return;
  std::string why = reason == "kicked" || reason == "timeout" ? reason : "left";
  rooms_->remove_member(session, why);
}

cluster::Transfers* ServerRole::transfers() { return cluster_.get(); }

bool ServerRole::start_cluster(std::string& error) {
  if (options_.cluster_url.empty() || !rooms_) return true;
  ServerCluster::Config config;
  if (!cluster::parse_redis_url(options_.cluster_url, config.redis, error)) {
    error = "nshost: --cluster: " + error;
    return false;
  }
  // The address clients dial: the bound one, loopback for a wildcard bind.
  std::string host = options_.bind == "0.0.0.0" ? "127.0.0.1" : options_.bind;
  config.url = "nshost://" + host + ":" + std::to_string(port());
  config.heartbeat_ms = options_.cluster_heartbeat_ms;
  config.max_clients = options_.max_clients;
  try {
    cluster_ = std::make_unique<ServerCluster>(loop_, std::move(config), *rooms_);
  } catch (const std::exception& e) {
    error = std::string("nshost: cluster: ") + e.what();
    return false;
  }
  rooms_->set_cluster(cluster_.get());
  rooms_->set_transfers(cluster_.get());
  cluster_->start();
  rooms::RedisMatchmakerConfig queue;
  queue.server_id = cluster_->server_id();
  queue.heartbeat_ms = options_.cluster_heartbeat_ms;
  cluster_matchmaking_ = std::make_unique<rooms::ClusterMatchmaking>(
      cluster_->redis(), *cluster_, *rooms_, std::make_unique<rooms::RedisMatchmaker>(loop_, cluster_->redis(), queue));
  return true;
}

void ServerRole::stop_cluster() {
  if (!cluster_) return;
  cluster_matchmaking_.reset();
  if (rooms_) {
    rooms_->set_cluster(nullptr);
    rooms_->set_transfers(nullptr);
  }
  cluster_->stop();
  cluster_.reset();
}

bool ServerRole::take_seat_token(ENetPeer* peer, const wire::Hello& hello, const std::string& who,
                                 Admission& admission) {
  auto reservation = std::make_shared<cluster::Reservation>();
  std::string reason = "seat token unknown";
  if (cluster_ && cluster_->redeem(hello.seat_token, *reservation, reason)) {
    admission.reservation = std::move(reservation);
    return true;
  }
  log_write(LogLevel::warn, "server", "rejected " + who + ": " + reason);
  refuse(peer, reason);
  return false;
}

void ServerRole::redeem_seat(std::optional<ClientId> id, const Admission& admission) {
  if (!rooms_ || !admission.reservation) return;
  // Session 0 is nobody: the seat is handed back.
  uint64_t session = id ? slot_entries_[id->slot].session_id : 0;
  rooms_->redeem(session, *admission.reservation);
}

}  // namespace nshost
