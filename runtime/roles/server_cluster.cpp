#include "runtime/roles/server_cluster.hpp"

#include <openssl/rand.h>

#include "runtime/core/log.hpp"
#include "runtime/rooms/codec.hpp"

namespace nshost {
namespace {

constexpr const char* kTag = "cluster";
constexpr const char* kUnavailable = "cluster_unavailable";
constexpr uint64_t kClusterIdBase = uint64_t{1} << 32;

std::string random_server_id() {
  unsigned char raw[8] = {};
  if (RAND_bytes(raw, sizeof raw) != 1) {
    uint64_t t = uv_hrtime();
    memcpy(raw, &t, sizeof raw);
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

const char* kind_name(cluster::RoomSeatRequest::Kind kind) {
  switch (kind) {
    case cluster::RoomSeatRequest::Kind::join_room:
      return "join_room";
    case cluster::RoomSeatRequest::Kind::join_or_create:
      return "join_or_create";
    case cluster::RoomSeatRequest::Kind::create:
      return "create";
  }
  return "?";
}

nlohmann::json to_json(const cluster::RoomSeatRequest& r) {
  nlohmann::json j{{"kind", kind_name(r.kind)},
                   {"room", r.room_id},
                   {"room_type", r.room_type},
                   {"options", rooms::encode_base64(r.options_msgpack)},
                   {"rpc", r.rpc_id}};
  if (r.match) {
    j["match"] = true;
    j["size"] = r.match_size;
    j["participants"] = r.participants;
  }
  return j;
}

bool from_json(const nlohmann::json& j, cluster::RoomSeatRequest& out) {
  if (!j.is_object()) return false;
  std::string kind = j.value("kind", std::string());
  if (kind == "join_room") out.kind = cluster::RoomSeatRequest::Kind::join_room;
  else if (kind == "join_or_create") out.kind = cluster::RoomSeatRequest::Kind::join_or_create;
  else if (kind == "create") out.kind = cluster::RoomSeatRequest::Kind::create;
  else return false;
  try {
    out.room_id = j.value("room", uint64_t{0});
    out.room_type = j.value("room_type", std::string());
    auto options = rooms::decode_base64(j.value("options", std::string()));
    if (!options) return false;
    out.options_msgpack = std::move(*options);
    out.rpc_id = j.value("rpc", uint32_t{0});
    out.match = j.value("match", false);
    out.match_size = j.value("size", uint32_t{0});
    if (auto p = j.find("participants"); p != j.end() && p->is_array())
      out.participants = p->get<std::vector<uint64_t>>();
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace

ServerCluster::ServerCluster(uv_loop_t* loop, Config config, rooms::RoomManager& rooms)
    : loop_(loop), config_(std::move(config)), rooms_(rooms), id_(random_server_id()) {
  redis_ = std::make_unique<cluster::RedisClient>(loop_, config_.redis, *this, kTag);
  inbox_ = std::make_unique<cluster::Inbox>(loop_, *redis_, id_, kTag);
  if (expiry_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0) expiry_.get()->data = this;
  if (later_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0)
    later_timer_.get()->data = this;
}

ServerCluster::~ServerCluster() {
  *alive_ = false;
  stop();
}

void ServerCluster::start() {
  // The room types are known once the script loaded.
  cluster::Directory::Config dc;
  dc.server_id = id_;
  dc.url = config_.url;
  dc.heartbeat_ms = config_.heartbeat_ms;
  dc.types = rooms_.type_names();
  directory_ = std::make_unique<cluster::Directory>(
      loop_, *redis_, dc,
      [this] {
        cluster::LocalView view;
        view.clients = rooms_.member_count();
        view.max_clients = config_.max_clients;
        view.rooms = rooms_.published_rooms();
        return view;
      },
      kTag);
  directory_->on_number([this](uint32_t number) { rooms_.set_room_id_base(uint64_t{number} << 32); });
  inbox_->on("reserve", [this](const nlohmann::json& body, std::string_view, cluster::Inbox::Reply reply) {
    on_reserve(body, std::move(reply));
  });
  inbox_->start();
  directory_->start();
  redis_->start();
  log_write(LogLevel::info, kTag,
            "cluster: server " + id_ + " joining the cluster at redis://" + config_.redis.host + ":" +
                std::to_string(config_.redis.port) + "/" + std::to_string(config_.redis.db) + " as " + config_.url);
  if (expiry_)
    uv_timer_start(
        expiry_.get(),
        [](uv_timer_t* t) {
          if (t->data) static_cast<ServerCluster*>(t->data)->expire_seats();
        },
        250, 250);
}

void ServerCluster::stop() {
  expiry_.close();
  later_timer_.close();
  if (directory_) directory_->stop();
  // Its keys expire within three heartbeats, as a killed server's do.
  if (redis_) redis_->close();
}

void ServerCluster::on_redis_up() {
  if (directory_) directory_->on_redis_up();
}

void ServerCluster::on_redis_down(std::string_view) {
  if (directory_) directory_->on_redis_down();
  inbox_->fail_all();
}

void ServerCluster::later(std::function<void()> fn) {
  later_.push_back(std::move(fn));
  if (!later_timer_) return;
  uv_timer_start(
      later_timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<ServerCluster*>(t->data);
        if (!self) return;
        auto fns = std::move(self->later_);
        self->later_.clear();
        for (auto& fn : fns) fn();
      },
      0, 0);
}

bool ServerCluster::redeem(std::string_view token, cluster::Reservation& out, std::string& reason) {
  return seats_.redeem(token, static_cast<int64_t>(uv_now(loop_)), out, reason);
}

void ServerCluster::expire_seats() {
  for (const auto& r : seats_.expire(static_cast<int64_t>(uv_now(loop_)))) {
    log_write(LogLevel::info, kTag,
              "cluster: a seat reserved in room " + std::to_string(r.room_id) + " expired (its client never came)");
    rooms_.release_reserved(r.room_id);
  }
}

cluster::SeatGrant ServerCluster::reserve_here(const cluster::RoomSeatRequest& request, std::string& error) {
  cluster::SeatGrant grant;
  rooms::JoinResult held = rooms_.reserve_for(request);
  if (!held.ok) {
    error = held.reason;
    return grant;
  }
  auto token = seats_.reserve(held.room, request, static_cast<int64_t>(uv_now(loop_)), kSeatLifetimeMs, error);
  if (!token) {
    rooms_.release_reserved(held.room);
    return grant;
  }
  grant.server_id = id_;
  grant.url = config_.url;
  grant.token = *token;
  grant.room_id = held.room;
  grant.room_type = held.room_type;
  return grant;
}

void ServerCluster::on_reserve(const nlohmann::json& body, cluster::Inbox::Reply reply) {
  cluster::RoomSeatRequest request;
  if (!from_json(body, request)) {
    log_write(LogLevel::warn, kTag, "cluster: a malformed reserve request (refused)");
    reply({{"ok", false}, {"reason", "bad request"}});
    return;
  }
  std::string error;
  cluster::SeatGrant grant = reserve_here(request, error);
  if (grant.token.empty()) {
    reply({{"ok", false}, {"reason", error}});
    return;
  }
  reply({{"ok", true}, {"url", grant.url}, {"token", grant.token}, {"room", grant.room_id},
         {"room_type", grant.room_type}});
}

void ServerCluster::reserve_remote(std::string_view server_id, cluster::RoomSeatRequest request,
                                   cluster::ReserveCallback callback) {
  if (server_id == id_) {
    std::string error;
    cluster::SeatGrant grant = reserve_here(request, error);
    later([grant = std::move(grant), error, callback = std::move(callback)] {
      callback(grant.token.empty() ? nullptr : &grant, error);
    });
    return;
  }
  std::string target(server_id);
  inbox_->request(target, "reserve", to_json(request),
                  [target, callback = std::move(callback)](const nlohmann::json* answer, std::string_view error) {
                    if (!answer) {
                      callback(nullptr, error);
                      return;
                    }
                    if (!answer->is_object() || !answer->value("ok", false)) {
                      std::string reason =
                          answer->is_object() ? answer->value("reason", std::string("refused")) : "refused";
                      callback(nullptr, reason);
                      return;
                    }
                    cluster::SeatGrant grant;
                    grant.server_id = target;
                    grant.url = answer->value("url", std::string());
                    grant.token = answer->value("token", std::string());
                    grant.room_id = answer->value("room", uint64_t{0});
                    grant.room_type = answer->value("room_type", std::string());
                    if (grant.url.empty() || grant.token.empty()) {
                      callback(nullptr, kUnavailable);
                      return;
                    }
                    callback(&grant, {});
                  });
}

bool ServerCluster::send_transfer(uint64_t session_id, uint32_t rpc_id, const cluster::SeatGrant& grant) {
  bool sent = rooms_.send_transfer(session_id, rpc_id, grant);
  if (sent)
    log_write(LogLevel::info, kTag,
              "cluster: session " + std::to_string(session_id) + " goes to room " + std::to_string(grant.room_id) +
                  " on " + grant.url);
  return sent;
}

std::string ServerCluster::pick_server(std::string_view room_type) const {
  auto types = rooms_.type_names();
  bool defined_here = std::find(types.begin(), types.end(), room_type) != types.end();
  if (!directory_ || !redis_->connected()) return defined_here ? id_ : std::string();
  return directory_->pick_server(room_type, rooms_.member_count(), defined_here);
}

std::vector<cluster::RoomEntry> ServerCluster::remote_rooms() const {
  if (!directory_ || !redis_->connected()) return {};
  return directory_->remote_rooms();
}

void ServerCluster::rooms_changed() {
  if (directory_) directory_->mark_dirty();
}

void ServerCluster::finish_routed(uint64_t session_id, uint32_t rpc_id, const cluster::SeatGrant* grant,
                                  std::string_view error) {
  if (grant) {
    if (!send_transfer(session_id, rpc_id, *grant)) {
      // The client left meanwhile: its seat expires on the target.
      log_write(LogLevel::debug, kTag, "cluster: session " + std::to_string(session_id) + " left before its transfer");
    }
    return;
  }
  rooms::JoinResult refused;
  refused.reason = std::string(error);
  rooms_.answer_routed_join(session_id, rpc_id, refused);
}

bool ServerCluster::route_join(uint64_t session_id, uint32_t rpc_id, JoinAsk ask) {
  if (!directory_) return false;
  std::weak_ptr<bool> alive = alive_;
  if (ask.kind == JoinAsk::Kind::join) {
    // A room id of another server: number * 2^32 + n.
    uint64_t number = ask.room_id >> 32;
    if (ask.room_id < kClusterIdBase || number == directory_->server_number()) return false;  // "no such room"
    if (!redis_->connected()) {
      later([this, session_id, rpc_id] { finish_routed(session_id, rpc_id, nullptr, kUnavailable); });
      return true;
    }
    auto go = [this, alive, session_id, rpc_id, ask] {
      if (alive.expired()) return;
      const cluster::RoomEntry* entry = directory_->find_room(ask.room_id);
      if (!entry) {
        finish_routed(session_id, rpc_id, nullptr, redis_->connected() ? "no such room" : kUnavailable);
        return;
      }
      cluster::RoomSeatRequest request;
      request.kind = cluster::RoomSeatRequest::Kind::join_room;
      request.room_id = ask.room_id;
      request.options_msgpack = ask.options_msgpack;
      request.rpc_id = rpc_id;
      reserve_remote(entry->server, std::move(request),
                     [this, alive, session_id, rpc_id](const cluster::SeatGrant* grant, std::string_view error) {
                       if (alive.expired()) return;
                       finish_routed(session_id, rpc_id, grant, error);
                     });
    };
    if (directory_->find_room(ask.room_id)) go();
    else directory_->refresh(go);  // the cached view may predate the room
    return true;
  }
  if (!redis_->connected()) return false;  // alone: this server's rooms only
  if (ask.kind == JoinAsk::Kind::join_or_create) {
    // The oldest open room of the type with a free seat on another server.
    const cluster::RoomEntry* best = nullptr;
    for (const auto& room : directory_->remote_rooms())
      if (room.type == ask.room_type && !room.locked && room.clients < room.max_clients &&
          directory_->find_server(room.server) && (!best || room.id < best->id))
        best = &room;
    if (best) {
      cluster::RoomSeatRequest request;
      request.kind = cluster::RoomSeatRequest::Kind::join_room;
      request.room_id = best->id;
      request.options_msgpack = ask.options_msgpack;
      request.rpc_id = rpc_id;
      reserve_remote(best->server, std::move(request),
                     [this, alive, session_id, rpc_id, ask](const cluster::SeatGrant* grant, std::string_view error) {
                       if (alive.expired()) return;
                       if (grant) {
                         finish_routed(session_id, rpc_id, grant, error);
                         return;
                       }
                       // Taken meanwhile (full, locked, gone): a new room instead.
                       create_on_pick(session_id, rpc_id, ask);
                     });
      return true;
    }
  }
  std::string pick = pick_server(ask.room_type);
  if (pick.empty() || pick == id_) return false;
  create_on_pick(session_id, rpc_id, std::move(ask));
  return true;
}

void ServerCluster::create_on_pick(uint64_t session_id, uint32_t rpc_id, JoinAsk ask) {
  std::string pick = pick_server(ask.room_type);
  if (pick.empty() || pick == id_) {
    JoinAsk local = ask;
    local.kind = JoinAsk::Kind::create;
    rooms_.run_local_join(session_id, rpc_id, local);
    return;
  }
  cluster::RoomSeatRequest request;
  request.kind = cluster::RoomSeatRequest::Kind::create;
  request.room_type = ask.room_type;
  request.options_msgpack = ask.options_msgpack;
  request.rpc_id = rpc_id;
  std::weak_ptr<bool> alive = alive_;
  reserve_remote(pick, std::move(request),
                 [this, alive, session_id, rpc_id, ask](const cluster::SeatGrant* grant, std::string_view error) {
                   if (alive.expired()) return;
                   if (grant) {
                     finish_routed(session_id, rpc_id, grant, error);
                     return;
                   }
                   // The picked server could not: a room here rather than no room.
                   log_write(LogLevel::info, kTag,
                             "cluster: creating a room elsewhere failed (" + std::string(error) + "); creating it here");
                   JoinAsk local = ask;
                   local.kind = JoinAsk::Kind::create;
                   rooms_.run_local_join(session_id, rpc_id, local);
                 });
}

}  // namespace nshost
