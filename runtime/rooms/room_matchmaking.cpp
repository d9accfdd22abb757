// Matchmaking on the room channels (docs/matchmaking.md, seed 003
// matchmaking.enqueue / matchmaking.dequeue / match.found): requests
// checked and answered, the matchmaker driven from a timer armed for its
// next due time (at once after an enqueue, else the next max_wait
// deadline), and each match formed started: one room, every participant
// seated, match.found to each.
#include <algorithm>

#include "runtime/core/log.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost::rooms {
namespace {

// Properties ride in the queue and in every match call: bounded.
constexpr size_t kMaxPropertiesBytes = 4096;

bool is_table(const Value* v) { return v && (v->kind == Value::Kind::map || v->kind == Value::Kind::array); }

}  // namespace

bool RoomManager::define_matchmaking(MatchType type, std::string& error) {
  const RoomType* room_type = find_type(type.room_type);
  if (!room_type) {
    error = "room type '" + type.room_type + "' is not defined (rooms.define it first)";
    return false;
  }
  if (type.size > room_type->max_clients) {
    error = "size " + std::to_string(type.size) + " is over room type '" + type.room_type + "''s max_clients " +
            std::to_string(room_type->max_clients);
    return false;
  }
  if (redefining_) {
    for (const MatchType& staged : staged_matches_)
      if (staged.room_type == type.room_type) {
        error = "room type '" + type.room_type + "' already has matchmaking";
        return false;
      }
    staged_matches_.push_back(std::move(type));
    return true;
  }
  return matchmaker_->define(std::move(type), error);
}

void RoomManager::on_enqueue_request(Member& member, const Message& message) {
  const Value& p = message.payload;
  auto type = p.string_at("room_type");
  auto size = p.integer_at("size");
  const Value* properties = p.find("properties");
  if (properties && properties->kind == Value::Kind::nil) properties = nullptr;
  std::string bad;
  if (!type) bad = "room_type must be a string";
  else if (!size) bad = "size must be an integer";
  else if (properties && !is_table(properties)) bad = "properties must be a table";
  if (bad.empty() && properties) {
    Writer probe(Codec::msgpack);
    probe.value(*properties);
    if (probe.size() > kMaxPropertiesBytes)
      bad = "properties of " + std::to_string(probe.size()) + " bytes are over the limit of " +
            std::to_string(kMaxPropertiesBytes);
  }
  if (!bad.empty()) {
    answer_ok(member, message.id, false, "bad request: " + bad);
    refuse_packet(member, "matchmaking.enqueue: " + bad, false);
    return;
  }
  std::string refusal;
  const MatchType* match_type = matchmaker_->find_type(*type);
  if (!find_type(*type)) refusal = "unknown room type";
  else if (!match_type) refusal = "no matchmaking for room type";
  else if (*size != static_cast<int64_t>(match_type->size))
    refusal = "size must be " + std::to_string(match_type->size) + " for this room type";
  else if (member.rooms.size() >= kMaxRoomsPerClient) refusal = "too many rooms";
  if (!refusal.empty()) {
    answer_enqueue(member.session_id, message.id, refusal);
    return;
  }
  Ticket ticket;
  ticket.session_id = member.session_id;
  ticket.room_type = std::string(*type);
  if (properties) ticket.properties = *properties;
  // A queue in Redis answers later: the member is looked up again then.
  matchmaker_->enqueue(std::move(ticket), uv_now(config_.loop),
                       [this, session = member.session_id, id = message.id](std::optional<std::string> r) {
                         answer_enqueue(session, id, r ? *r : std::string());
                         if (!r) arm_matchmaking();
                       });
}

void RoomManager::answer_enqueue(uint64_t session_id, uint32_t request_id, const std::string& refusal) {
  Member* m = member(session_id);
  if (!m) return;
  if (!refusal.empty()) {
    log_write(LogLevel::debug, "rooms",
              "session " + std::to_string(session_id) + ": matchmaking.enqueue refused: " + refusal);
    answer_ok(*m, request_id, false, refusal);
    return;
  }
  answer_ok(*m, request_id, true, {});
}

void RoomManager::on_dequeue_request(Member& member, const Message& message) {
  const Value& p = message.payload;
  std::optional<std::string_view> type;
  if (const Value* t = p.find("room_type"); t && t->kind != Value::Kind::nil) {
    type = p.string_at("room_type");
    if (!type) {
      answer_ok(member, message.id, false, "bad request: room_type must be a string");
      refuse_packet(member, "matchmaking.dequeue: room_type must be a string", false);
      return;
    }
  }
  size_t removed = matchmaker_->dequeue(member.session_id, type);
  answer_ok(member, message.id, removed > 0, "not queued");
  if (removed) arm_matchmaking();
}

void RoomManager::arm_matchmaking() {
  if (!match_timer_) return;
  uint64_t now = uv_now(config_.loop);
  std::optional<uint64_t> due = matchmaker_->next_due_ms(now);
  if (!due) {
    uv_timer_stop(match_timer_.get());
    return;
  }
  uv_timer_start(
      match_timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<RoomManager*>(t->data)->run_matchmaking();
      },
      *due > now ? *due - now : 0, 0);
}

void RoomManager::run_matchmaking() {
  matchmaker_->form(uv_now(config_.loop));
  arm_matchmaking();
}

void RoomManager::attach_matchmaker() {
  matchmaker_->attach(
      [this](uint64_t session) {
        Member* m = member(session);
        return m && host_.client_live(m->client);
      },
      [this](std::vector<Match> matches) {
        for (Match& match : matches) {
          if (match_router_) match_router_(match);
          else start_match(match);
        }
      },
      [this] { arm_matchmaking(); });
}

void RoomManager::send_match_failed(Member& member, std::string_view room_type, std::string_view reason) {
  Writer w(*member.codec);
  begin_message(w, "match.failed");
  w.begin_map(2);
  w.key("room_type");
  w.string(room_type);
  w.key("reason");
  w.string(reason);
  if (w.ok()) send_to(member, w.take(), Channel::reliable);
}

uint64_t RoomManager::start_match(Match& match) {
  const RoomType* type = find_type(match.room_type);
  // Another server's players (a cluster's match) arrive later with seat tokens.
  const size_t arriving = static_cast<size_t>(
      std::count_if(match.participants.begin(), match.participants.end(), [](const Ticket& t) { return !t.server.empty(); }));
  std::vector<const Ticket*> tickets;
  for (const Ticket& t : match.participants) {
    if (!t.server.empty()) continue;
    Member* m = member(t.session_id);
    if (!m) continue;
    if (m->rooms.size() >= kMaxRoomsPerClient) send_match_failed(*m, match.room_type, "too many rooms");
    else tickets.push_back(&t);
  }
  if (tickets.empty() && arriving == 0) return 0;
  // room.create(options) learns that a match opened it, and who is coming.
  Value options;
  options.kind = Value::Kind::map;
  Value key, value;
  key.kind = Value::Kind::string;
  key.string = "matchmaking";
  value.kind = Value::Kind::boolean;
  value.boolean = true;
  options.entries.emplace_back(key, value);
  key.string = "size";
  value = Value{};
  value.kind = Value::Kind::integer;
  value.integer = static_cast<int64_t>(tickets.size() + arriving);
  options.entries.emplace_back(key, value);
  key.string = "participants";
  value = Value{};
  value.kind = Value::Kind::array;
  for (const Ticket& t : match.participants) {
    if (t.server.empty() && std::find(tickets.begin(), tickets.end(), &t) == tickets.end()) continue;
    Value id;
    id.kind = Value::Kind::integer;
    id.integer = static_cast<int64_t>(t.session_id);
    value.items.push_back(std::move(id));
  }
  const Value participants = value;
  options.entries.emplace_back(key, value);

  Room* room = type ? open_room(*type, &options) : nullptr;
  if (!room) {
    for (const Ticket* t : tickets)
      if (Member* m = member(t->session_id)) send_match_failed(*m, match.room_type, "room failed");
    return 0;
  }
  const uint64_t room_id = room->id();
  std::vector<uint64_t> seated;
  for (const Ticket* t : tickets) {
    Member* m = member(t->session_id);
    Room* r = find_room(room_id);
    if (!m) continue;
    std::string reason = "room failed";
    if (r && r->accepting()) {
      const Value* props = t->properties.kind == Value::Kind::nil ? nullptr : &t->properties;
      JoinResult joined = seat(*m, *r, props);
      if (joined.ok) {
        seated.push_back(m->session_id);
        continue;
      }
      reason = joined.reason;
    }
    send_match_failed(*m, match.room_type, reason);
  }
  Room* r = find_room(room_id);
  if (seated.empty() && arriving == 0) {
    if (r && r->phase() == Room::Phase::open && r->client_count() == 0 && type->auto_dispose) r->dispose(true);
    return 0;
  }
  log_write(LogLevel::info, "rooms",
            "matchmaking: " + match.room_type + "#" + std::to_string(room_id) + " starts with " +
                std::to_string(seated.size()) + " players" +
                (arriving ? " here and " + std::to_string(arriving) + " coming from other servers" : ""));
  // In process, match.found lists those seated; in a cluster, every player
  // of the match (ids as enqueued), since the others are still on their way.
  std::vector<int64_t> listed;
  if (arriving == 0) {
    for (uint64_t s : seated) listed.push_back(static_cast<int64_t>(s));
  } else {
    for (const Value& id : participants.items) listed.push_back(id.integer);
  }
  for (uint64_t session : seated) {
    Member* m = member(session);
    if (!m) continue;
    Writer w(*m->codec);
    begin_message(w, "match.found");
    w.begin_map(4);
    w.key("room");
    w.integer(static_cast<int64_t>(room_id));
    w.key("room_type");
    w.string(match.room_type);
    w.key("size");
    w.integer(static_cast<int64_t>(listed.size()));
    w.key("participants");
    w.begin_array(static_cast<uint32_t>(listed.size()));
    for (int64_t s : listed) w.integer(s);
    if (w.ok()) send_to(*m, w.take(), Channel::reliable);
    if (Room* live = find_room(room_id)) live->release_joiner(*m);
  }
  return room_id;
}

void RoomManager::use_matchmaker(std::unique_ptr<Matchmaker> matchmaker) {
  // Types the script defined already (the cluster may start after the
  // script loaded) carry over; nobody is queued yet.
  for (const auto& [name, type] : types_)
    if (const MatchType* defined = matchmaker_->find_type(name)) {
      std::string error;
      matchmaker->define(*defined, error);
    }
  matchmaker_ = std::move(matchmaker);
  attach_matchmaker();
}

void RoomManager::route_matches(std::function<void(Match&)> router) { match_router_ = std::move(router); }

}  // namespace nshost::rooms
