// The rooms' side of the cluster (docs/cluster.md): which joins go to the
// other servers, the seats reserved here for clients on their way, their
// redemption, the transfer message, and what the directory publishes.
#include <algorithm>

#include "runtime/core/log.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost::rooms {
namespace {

constexpr uint64_t kClusterIdBase = uint64_t{1} << 32;

JoinResult refusal(std::string reason) {
  JoinResult r;
  r.reason = std::move(reason);
  return r;
}

std::optional<Value> decode_options(const std::string& msgpack) {
  if (msgpack.empty()) return std::nullopt;
  Value v;
  std::string error;
  if (!decode(Codec::msgpack, msgpack, v, error)) return std::nullopt;
  return v;
}

}  // namespace

void RoomManager::set_room_id_base(uint64_t base) {
  if (next_room_id_ <= base) next_room_id_ = base + 1;
}

std::vector<std::string> RoomManager::type_names() const {
  std::vector<std::string> out;
  for (const auto& [name, type] : types_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

bool RoomManager::route_join(Member& member, uint32_t id, RoomCluster::JoinAsk::Kind kind, uint64_t room_id,
                             std::string_view type, const Value* options) {
  using Kind = RoomCluster::JoinAsk::Kind;
  if (member.rooms.size() >= kMaxRoomsPerClient) return false;  // refused here
  if (kind == Kind::join && find_room(room_id)) return false;
  if (kind != Kind::join && !find_type(type)) return false;  // "unknown room type", as alone
  if (kind == Kind::join_or_create) {
    // A seat here comes first.
    for (const auto& [rid, room] : rooms_)
      if (room->type().name == type && room->accepting() && !room->locked() && !room->full() &&
          !room->has(member.session_id))
        return false;
  }
  RoomCluster::JoinAsk ask;
  ask.kind = kind;
  ask.room_id = room_id;
  ask.room_type = std::string(type);
  if (options) {
    Writer w(Codec::msgpack);
    w.value(*options);
    if (w.ok()) ask.options_msgpack = w.take();
  }
  return cluster_->route_join(member.session_id, id, std::move(ask));
}

void RoomManager::answer_routed_join(uint64_t session_id, uint32_t rpc_id, const JoinResult& result) {
  Member* m = member(session_id);
  if (!m || !m->codec) return;
  answer_join(*m, rpc_id, result);
}

void RoomManager::run_local_join(uint64_t session_id, uint32_t rpc_id, const RoomCluster::JoinAsk& ask) {
  Member* m = member(session_id);
  if (!m || !m->codec) return;
  std::optional<Value> options = decode_options(ask.options_msgpack);
  const Value* opts = options ? &*options : nullptr;
  JoinResult result;
  switch (ask.kind) {
    case RoomCluster::JoinAsk::Kind::join:
      result = join(*m, ask.room_id, opts);
      break;
    case RoomCluster::JoinAsk::Kind::create:
      result = create(*m, ask.room_type, opts);
      break;
    case RoomCluster::JoinAsk::Kind::join_or_create:
      result = join_or_create(*m, ask.room_type, opts);
      break;
  }
  answer_join(*m, rpc_id, result);
  if (result.ok)
    if (Room* room = find_room(result.room)) room->release_joiner(*m);
}

bool RoomManager::send_transfer(uint64_t session_id, uint32_t rpc_id, const cluster::SeatGrant& grant) {
  Member* m = member(session_id);
  if (!m || !m->codec) return false;
  Writer w(*m->codec);
  begin_message(w, "cluster.transfer", rpc_id);
  w.begin_map(4);
  w.key("url");
  w.string(grant.url);
  w.key("token");
  w.string(grant.token);
  w.key("room");
  w.integer(static_cast<int64_t>(grant.room_id));
  w.key("room_type");
  w.string(grant.room_type);
  if (!w.ok()) return false;
  return send_to(*m, w.take(), Channel::reliable);
}

JoinResult RoomManager::reserve_for(const cluster::RoomSeatRequest& request) {
  using Kind = cluster::RoomSeatRequest::Kind;
  Room* room = nullptr;
  if (request.kind == Kind::join_room) {
    room = find_room(request.room_id);
    if (!room || !room->accepting()) return refusal("no such room");
    // A match's participants are the room's own players, not new joiners:
    // a room that locked itself for its match still takes them.
    if (room->locked() && !request.match) return refusal("locked");
    if (room->full()) return refusal("full");
  } else {
    const RoomType* type = find_type(request.room_type);
    if (!type) return refusal("unknown room type");
    if (request.kind == Kind::join_or_create) {
      for (const auto& [id, r] : rooms_)
        if (r->type().name == type->name && r->accepting() && !r->locked() && !r->full()) {
          room = r.get();
          break;
        }
    }
    if (!room) {
      if (rooms_.size() >= config_.max_rooms) return refusal("too many rooms on this server");
      std::optional<Value> options = decode_options(request.options_msgpack);
      room = open_room(*type, options ? &*options : nullptr);
      if (!room) return refusal("room failed");
    }
  }
  room->reserve_seat();
  rooms_changed();
  JoinResult r;
  r.ok = true;
  r.room = room->id();
  r.room_type = room->type().name;
  return r;
}

void RoomManager::release_reserved(uint64_t room_id) {
  if (Room* room = find_room(room_id)) room->release_seat(true);
}

void RoomManager::redeem(uint64_t session_id, const cluster::Reservation& reservation) {
  const auto& request = reservation.request;
  Room* room = find_room(reservation.room_id);
  if (room) room->release_seat(false);
  Member* m = member(session_id);
  auto dispose_if_unused = [&] {
    if (Room* r = find_room(reservation.room_id); r && r->phase() == Room::Phase::open && r->client_count() == 0 &&
                                                  r->reserved_seats() == 0 && r->type().auto_dispose)
      r->dispose(true);
  };
  if (!m || !m->codec) {
    dispose_if_unused();
    return;
  }
  std::optional<Value> options = decode_options(request.options_msgpack);
  JoinResult result =
      room ? join_reserved(*m, reservation.room_id, options ? &*options : nullptr) : refusal("no such room");
  if (!result.ok) dispose_if_unused();
  log_write(LogLevel::info, "rooms",
            "cluster: session " + std::to_string(session_id) + " redeemed its seat in room " +
                std::to_string(reservation.room_id) + (result.ok ? "" : " (refused: " + result.reason + ")"));
  if (request.rpc_id) answer_join(*m, request.rpc_id, result);
  if (request.match) {
    if (!result.ok) {
      send_match_failed(*m, request.room_type.empty() ? result.room_type : request.room_type, result.reason);
    } else {
      Writer w(*m->codec);
      begin_message(w, "match.found");
      w.begin_map(4);
      w.key("room");
      w.integer(static_cast<int64_t>(result.room));
      w.key("room_type");
      w.string(result.room_type);
      w.key("size");
      w.integer(static_cast<int64_t>(request.match_size));
      w.key("participants");
      w.begin_array(static_cast<uint32_t>(request.participants.size()));
      for (uint64_t s : request.participants) w.integer(static_cast<int64_t>(s));
      if (w.ok()) send_to(*m, w.take(), Channel::reliable);
    }
  }
  if (result.ok)
    if (Room* live = find_room(result.room)) live->release_joiner(*m);
}

std::vector<cluster::RoomEntry> RoomManager::published_rooms() const {
  std::vector<cluster::RoomEntry> out;
  for (const auto& [id, room] : rooms_) {
    if (id < kClusterIdBase || room->phase() != Room::Phase::open) continue;
    cluster::RoomEntry e;
    e.id = id;
    e.type = room->type().name;
    e.clients = static_cast<uint32_t>(room->client_count() + room->reserved_seats());
    e.max_clients = room->type().max_clients;
    e.locked = room->locked();
    e.metadata_json = "{}";
    if (room->metadata()) {
      Writer w(Codec::json);
      w.value(*room->metadata());
      if (w.ok()) e.metadata_json = w.take();
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace nshost::rooms
