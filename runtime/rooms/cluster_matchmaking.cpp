#include "runtime/rooms/cluster_matchmaking.hpp"

#include <nlohmann/json.hpp>

#include "runtime/core/log.hpp"
#include "runtime/rooms/codec.hpp"

namespace nshost::rooms {
namespace {

using cluster::RedisReply;
using cluster::RedisScript;

using nlohmann::json;

// A notice is small: a match of at most MatchType::kMaxSize players, each
// with at most 4096 bytes of properties (base64).
constexpr size_t kMaxNoticeBytes = 24u << 20;

std::string properties_msgpack(const rooms::Value& v) {
  if (v.kind == rooms::Value::Kind::nil) return {};
  rooms::Writer w(rooms::Codec::msgpack);
  w.value(v);
  return w.ok() ? w.take() : std::string();
}

json match_to_json(const rooms::Match& match, const std::string& self) {
  json players = json::array();
  for (const rooms::Ticket& t : match.participants)
    players.push_back({{"server", t.server.empty() ? self : t.server},
                       {"session", t.session_id},
                       {"enqueued_ms", t.enqueued_ms},
                       {"properties", rooms::encode_base64(properties_msgpack(t.properties))}});
  return {{"room_type", match.room_type}, {"players", std::move(players)}};
}

// Throws (nlohmann) on a wrong shape; the caller logs.
rooms::Match match_from_json(const json& j, const std::string& self) {
  rooms::Match m;
  m.room_type = j.at("room_type").get<std::string>();
  for (const json& p : j.at("players")) {
    rooms::Ticket t;
    t.room_type = m.room_type;
    t.server = p.at("server").get<std::string>();
    if (t.server == self) t.server.clear();
    t.session_id = p.at("session").get<uint64_t>();
    t.enqueued_ms = p.value("enqueued_ms", uint64_t{0});
    auto bytes = rooms::decode_base64(p.value("properties", std::string()));
    std::string error;
    if (bytes && !bytes->empty() && !rooms::decode(rooms::Codec::msgpack, *bytes, t.properties, error))
      t.properties = {};
    m.participants.push_back(std::move(t));
  }
  return m;
}

}  // namespace

std::string ClusterMatchmaking::channel(std::string_view server_id) {
  return "nshost:mm:notify:" + std::string(server_id);
}

ClusterMatchmaking::ClusterMatchmaking(cluster::RedisClient& redis, cluster::Transfers& transfers, rooms::RoomManager& rooms,
                                       std::unique_ptr<RedisMatchmaker> matchmaker)
    : redis_(redis), transfers_(transfers), rooms_(rooms), matchmaker_(matchmaker.get()),
      server_id_(transfers.server_id()) {
  rooms_.use_matchmaker(std::move(matchmaker));
  rooms_.route_matches([this](rooms::Match& match) { route(match); });
  matchmaker_->on_answered([this](uint64_t session) {
    auto it = early_.find(session);
    if (it == early_.end()) return;
    cluster::SeatGrant grant = std::move(it->second);
    early_.erase(it);
    move_player(session, grant);
  });
  redis_.subscribe(channel(server_id_), [this, alive = alive_](std::string_view, std::string_view message) {
    if (*alive) on_notice(message);
  });
}

ClusterMatchmaking::~ClusterMatchmaking() {
  *alive_ = false;
  redis_.unsubscribe(channel(server_id_));
  rooms_.route_matches({});
  matchmaker_->on_answered({});
  // The queue in Redis goes with the cluster; the types stay defined.
  rooms_.use_matchmaker(std::make_unique<InProcessMatchmaker>());
}

void ClusterMatchmaking::publish(const std::string& server_id, std::string message,
                                 std::function<void(bool delivered)> done) {
  bool sent = redis_.command({"PUBLISH", channel(server_id), std::move(message)},
                             [done, alive = alive_](const RedisReply* reply, std::string_view) {
                               if (!*alive) return;
                               done(reply && reply->type == RedisReply::Type::integer && reply->integer > 0);
                             });
  if (!sent) done(false);
}

void ClusterMatchmaking::route(rooms::Match& match) {
  std::string target = transfers_.pick_server(match.room_type);
  if (target.empty() || target == server_id_) return start_here(std::move(match));
  json notice = {{"t", "start"}, {"match", match_to_json(match, server_id_)}};
  auto copy = std::make_shared<rooms::Match>(match);
  publish(target, notice.dump(), [this, copy, target](bool delivered) {
    if (delivered) return;
    // The pick is gone (or Redis is): the room opens here instead.
    log_write(LogLevel::info, "cluster",
              "matchmaking: server " + target + " did not take a " + copy->room_type + " match; starting it here");
    start_here(std::move(*copy));
  });
}

void ClusterMatchmaking::start_here(rooms::Match match) {
  // This server's players of a match another server formed are still in
  // the local mirror of the queue.
  for (const rooms::Ticket& t : match.participants)
    if (t.server.empty()) matchmaker_->forget(t.session_id);
  const uint64_t room_id = rooms_.start_match(match);
  if (!room_id) {
    log_write(LogLevel::warn, "cluster", "matchmaking: a " + match.room_type + " match did not open its room here");
    return;
  }
  ++matches_started_;
  std::vector<uint64_t> sessions;
  for (const rooms::Ticket& t : match.participants) sessions.push_back(t.session_id);
  for (const rooms::Ticket& t : match.participants) {
    if (t.server.empty()) continue;
    cluster::RoomSeatRequest request;
    request.kind = cluster::RoomSeatRequest::Kind::join_room;
    request.room_id = room_id;
    request.room_type = match.room_type;
    request.options_msgpack = properties_msgpack(t.properties);
    request.match = true;
    request.match_size = static_cast<uint32_t>(match.participants.size());
    request.participants = sessions;
    transfers_.reserve_remote(
        server_id_, std::move(request),
        [this, alive = alive_, server = t.server, session = t.session_id](const cluster::SeatGrant* grant,
                                                                           std::string_view error) {
          if (!*alive) return;
          if (!grant) {
            log_write(LogLevel::warn, "cluster",
                      "matchmaking: no seat for session " + std::to_string(session) + " of server " + server + ": " +
                          std::string(error));
            return;
          }
          json notice = {{"t", "seat"},          {"session", session},      {"url", grant->url},
                         {"token", grant->token}, {"server", grant->server_id}, {"room", grant->room_id},
                         {"room_type", grant->room_type}};
          publish(server, notice.dump(), [server, session](bool delivered) {
            if (!delivered)
              log_write(LogLevel::info, "cluster",
                        "matchmaking: server " + server + " is gone; the seat of its session " +
                            std::to_string(session) + " expires");
          });
        });
  }
}

void ClusterMatchmaking::move_player(uint64_t session, const cluster::SeatGrant& grant) {
  rooms::Member* m = rooms_.member(session);
  if (!m || !rooms_.host().client_live(m->client) || !transfers_.send_transfer(session, 0, grant)) {
    log_write(LogLevel::info, "cluster",
              "matchmaking: session " + std::to_string(session) + " left before its match; its seat expires");
    return;
  }
  ++players_moved_;
}

void ClusterMatchmaking::on_notice(std::string_view message) {
  if (message.size() > kMaxNoticeBytes) {
    log_write(LogLevel::warn, "cluster", "matchmaking: dropped a notice of " + std::to_string(message.size()) + " bytes");
    return;
  }
  try {
    json j = json::parse(message);
    std::string t = j.at("t").get<std::string>();
    if (t == "start") {
      start_here(match_from_json(j.at("match"), server_id_));
    } else if (t == "seat") {
      uint64_t session = j.at("session").get<uint64_t>();
      cluster::SeatGrant grant;
      grant.server_id = j.at("server").get<std::string>();
      grant.url = j.at("url").get<std::string>();
      grant.token = j.at("token").get<std::string>();
      grant.room_id = j.at("room").get<uint64_t>();
      grant.room_type = j.at("room_type").get<std::string>();
      const bool early = matchmaker_->awaiting_answer(session);
      // Matched: its tickets are gone from Redis, whatever happens next.
      matchmaker_->forget(session);
      if (early && early_.size() < 65536) {
        early_[session] = std::move(grant);
        return;
      }
      move_player(session, grant);
    } else {
      log_write(LogLevel::warn, "cluster", "matchmaking: dropped a notice of unknown kind '" + t.substr(0, 40) + "'");
    }
  } catch (const std::exception& e) {
    log_write(LogLevel::warn, "cluster", std::string("matchmaking: dropped a malformed notice: ") + e.what());
  }
}

}  // namespace nshost::rooms
