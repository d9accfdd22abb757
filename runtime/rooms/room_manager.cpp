#include "runtime/rooms/room_manager.hpp"

#include <algorithm>

#include "runtime/core/log.hpp"
#include "runtime/rooms/room.hpp"

namespace nshost::rooms {
namespace {

JoinResult refused(std::string reason) {
  JoinResult r;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

RoomManager::RoomManager(RoomHost& host, RoomConfig config)
    : host_(host), config_(std::move(config)), matchmaker_(std::make_unique<InProcessMatchmaker>()) {
  if (settle_timer_.init([&](uv_timer_t* t) { return uv_timer_init(config_.loop, t); }) == 0)
    settle_timer_.get()->data = this;
  if (match_timer_.init([&](uv_timer_t* t) { return uv_timer_init(config_.loop, t); }) == 0)
    match_timer_.get()->data = this;
  attach_matchmaker();
}

RoomManager::~RoomManager() {
  settle_timer_.close();
  match_timer_.close();
  graveyard_.clear();
  rooms_.clear();
}

bool RoomManager::define(RoomType type, std::string& error) {
  if (redefining_) {
    if (staged_types_.count(type.name)) {
      error = "room type '" + type.name + "' is already defined";
      return false;
    }
    if (!types_.count(type.name) && types_.size() + staged_types_.size() >= kMaxRoomTypes) {
      error = "at most " + std::to_string(kMaxRoomTypes) + " room types";
      return false;
    }
    std::string name = type.name;
    staged_types_.emplace(std::move(name), std::make_shared<const RoomType>(std::move(type)));
    return true;
  }
  if (types_.count(type.name)) {
    error = "room type '" + type.name + "' is already defined";
    return false;
  }
  if (types_.size() >= kMaxRoomTypes) {
    error = "at most " + std::to_string(kMaxRoomTypes) + " room types";
    return false;
  }
  std::string name = type.name;
  types_.emplace(std::move(name), std::make_shared<const RoomType>(std::move(type)));
  return true;
}

const RoomType* RoomManager::find_type(std::string_view name) const {
  if (redefining_)
    if (auto staged = staged_types_.find(std::string(name)); staged != staged_types_.end()) return staged->second.get();
  auto it = types_.find(std::string(name));
  return it == types_.end() ? nullptr : it->second.get();
}

void RoomManager::add_member(uint64_t session_id, ClientId client, std::optional<Codec> codec, std::string claims) {
  Member& m = members_[session_id];
  m = Member{};
  m.session_id = session_id;
  m.client = client;
  m.codec = codec;
  m.claims = std::move(claims);
}

Member* RoomManager::member(uint64_t session_id) {
  auto it = members_.find(session_id);
  return it == members_.end() ? nullptr : &it->second;
}

void RoomManager::remove_member(uint64_t session_id, const std::string& reason) {
  Member* m = member(session_id);
  if (!m) return;
  matchmaker_->dequeue(session_id, std::nullopt);
  // A copy: each leave takes its room off the member's list.
  std::vector<uint64_t> rooms = m->rooms;
  for (uint64_t id : rooms)
    if (Room* room = find_room(id); room && room->has(session_id)) room->remove(*m, reason, nullptr);
  members_.erase(session_id);
}

void RoomManager::begin_redefinitions() {
  redefining_ = true;
  staged_types_.clear();
  staged_matches_.clear();
}

void RoomManager::commit_redefinitions() {
  redefining_ = false;
  for (auto& [name, type] : staged_types_) types_[name] = std::move(type);
  for (MatchType& match : staged_matches_) {
    std::string error;
    if (!matchmaker_->find_type(match.room_type) && !matchmaker_->define(std::move(match), error))
      log_write(LogLevel::warn, "rooms", "reload: matchmaking.define: " + error);
  }
  staged_types_.clear();
  staged_matches_.clear();
}

void RoomManager::abort_redefinitions() {
  redefining_ = false;
  staged_types_.clear();
  staged_matches_.clear();
}

size_t RoomManager::reload_rooms(std::map<std::string, size_t>& rejected) {
  size_t reloaded = 0;
  // By id: a room.reload handler may close its room.
  std::vector<uint64_t> ids;
  for (const auto& entry : rooms_) ids.push_back(entry.first);
  for (uint64_t id : ids) {
    Room* room = find_room(id);
    if (!room || room->phase() != Room::Phase::open) continue;
    std::string error;
    if (room->reload(error)) ++reloaded;
    else ++rejected[error];
  }
  return reloaded;
}

Room* RoomManager::find_room(uint64_t room_id) {
  auto it = rooms_.find(room_id);
  return it == rooms_.end() ? nullptr : it->second.get();
}

Room* RoomManager::open_room(const RoomType& type, const Value* options) {
  auto shared = types_.at(type.name);
  uint64_t id = next_room_id_++;
  auto owned = std::make_unique<Room>(*this, shared, id);
  std::string error;
  if (!owned->start(error)) {
    log_write(LogLevel::error, "rooms", "cannot open a room of type '" + type.name + "': " + error);
    graveyard_.push_back(std::move(owned));  // its handles close from the loop
    wake();
    return nullptr;
  }
  Room* room = owned.get();
  rooms_.emplace(id, std::move(owned));
  log_event(LogLevel::info, "rooms", "room_create", "opened room " + type.name + "#" + std::to_string(id),
            {{"room", id}, {"type", type.name}});
  rooms_changed();
  if (!room->run_create(options)) {
    // room.create raised (logged), or closed the room, or ran out of memory.
    if (room->phase() == Room::Phase::open) room->dispose(false);
    return nullptr;
  }
  return room;
}

JoinResult RoomManager::seat(Member& member, Room& room, const Value* options) {
  if (auto refusal = room.try_join(member, options)) return refused(std::move(*refusal));
  rooms_changed();
  JoinResult r;
  r.ok = true;
  r.room = room.id();
  r.room_type = room.type().name;
  return r;
}

JoinResult RoomManager::join_or_create(Member& member, std::string_view type_name, const Value* options) {
  if (member.rooms.size() >= kMaxRoomsPerClient) return refused("too many rooms");
  const RoomType* type = find_type(type_name);
  if (!type) return refused("unknown room type");
  // Ids first: a join handler may dispose its own room (not others), and
  // rooms_ must not change under the loop.
  std::vector<uint64_t> candidates;
  for (const auto& [id, room] : rooms_)
    if (room->type().name == type->name && room->accepting() && !room->locked() && !room->full() &&
        !room->has(member.session_id))
      candidates.push_back(id);
  for (uint64_t id : candidates) {
    Room* room = find_room(id);
    if (!room || !room->accepting() || room->locked() || room->full()) continue;
    JoinResult r = seat(member, *room, options);
    if (r.ok) return r;
  }
  return create(member, type_name, options);
}

JoinResult RoomManager::create(Member& member, std::string_view type_name, const Value* options) {
  if (member.rooms.size() >= kMaxRoomsPerClient) return refused("too many rooms");
  const RoomType* type = find_type(type_name);
  if (!type) return refused("unknown room type");
  if (rooms_.size() >= config_.max_rooms) {
    // Every room is a Lua state: the server's rooms, not a client's, are the budget.
    int64_t now_ms = static_cast<int64_t>(uv_now(config_.loop));
    if (room_cap_logged_ms_ < 0 || now_ms - room_cap_logged_ms_ >= 10'000) {
      room_cap_logged_ms_ = now_ms;
      log_write(LogLevel::warn, "rooms",
                "refused a new room: " + std::to_string(rooms_.size()) + " rooms are open (--max-rooms)");
    }
    return refused("too many rooms on this server");
  }
  Room* room = open_room(*type, options);
  if (!room) return refused("room failed");
  JoinResult r = seat(member, *room, options);
  // A fresh room that refused its first client has no one to wait for.
  if (!r.ok && room->phase() == Room::Phase::open && room->client_count() == 0 && type->auto_dispose)
    room->dispose(true);
  return r;
}

JoinResult RoomManager::join(Member& member, uint64_t room_id, const Value* options) {
  if (member.rooms.size() >= kMaxRoomsPerClient) return refused("too many rooms");
  Room* room = find_room(room_id);
  if (!room || !room->accepting()) return refused("no such room");
  if (room->has(member.session_id)) return refused("already in room");
  if (room->locked()) return refused("locked");
  if (room->full()) return refused("full");
  return seat(member, *room, options);
}

JoinResult RoomManager::join_reserved(Member& member, uint64_t room_id, const Value* options) {
  if (member.rooms.size() >= kMaxRoomsPerClient) return refused("too many rooms");
  Room* room = find_room(room_id);
  if (!room || !room->accepting()) return refused("no such room");
  if (room->has(member.session_id)) return refused("already in room");
  if (room->full()) return refused("full");
  return seat(member, *room, options);
}

bool RoomManager::leave(Member& member, uint64_t room_id, const std::string& reason) {
  Room* room = find_room(room_id);
  if (!room || !room->has(member.session_id)) return false;
  room->remove(member, reason, nullptr);
  return true;
}

void RoomManager::shutdown() {
  std::vector<uint64_t> ids;
  for (const auto& [id, room] : rooms_) ids.push_back(id);
  for (uint64_t id : ids)
    if (Room* room = find_room(id)) room->dispose(!room->memory_failed());
  for (auto& [session, m] : members_) m.rooms.clear();
  matchmaker_->clear();
  if (match_timer_) uv_timer_stop(match_timer_.get());
}

bool RoomManager::send_to(const Member& member, std::string_view encoded, Channel channel) {
  ENetPacket* packet = enet_packet_create(encoded.data(), encoded.size(),
                                          channel == Channel::reliable ? ENET_PACKET_FLAG_RELIABLE
                                                                       : ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT);
  if (!packet) return false;
  if (host_.queue_room_packet(member.client, packet, channel)) return true;
  enet_packet_destroy(packet);
  return false;
}

void RoomManager::schedule_settle(uint64_t room_id) {
  to_settle_.insert(room_id);
  wake();
}

void RoomManager::bury(uint64_t room_id) {
  auto it = rooms_.find(room_id);
  if (it == rooms_.end()) return;
  graveyard_.push_back(std::move(it->second));
  rooms_.erase(it);
  wake();
  rooms_changed();
}

void RoomManager::wake() {
  if (!settle_timer_) return;
  uv_timer_start(
      settle_timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<RoomManager*>(t->data)->settle_scheduled();
      },
      0, 0);
}

void RoomManager::settle_scheduled() {
  std::set<uint64_t> ids;
  ids.swap(to_settle_);
  for (uint64_t id : ids)
    if (Room* room = find_room(id)) room->settle();
  graveyard_.clear();
}

}  // namespace nshost::rooms
