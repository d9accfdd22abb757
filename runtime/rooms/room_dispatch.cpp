// The catalog messages a client sends on the room channels (docs/protocol.md
// "Rooms: catalog messages"): decoded with the session's codec, checked,
// handed to the room manager, answered. A request carrying an id gets exactly
// one rpc.response with that id (one without an id gets it without). Bad
// input is answered with `error {reason}`, logged once and counted; nobody
// else sees any of it.
#include <algorithm>

#include "runtime/core/log.hpp"
#include "runtime/rooms/room.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "runtime/state/state_codec.hpp"

namespace nshost::rooms {
namespace {

// An answer to a peer that offered no codec: json, the one a person can read.
constexpr Codec kFallbackCodec = Codec::json;

// A room id as the catalog carries it: a positive integer.
std::optional<uint64_t> room_id_at(const Value& payload) {
  auto id = payload.integer_at("room");
  if (!id || *id <= 0) return std::nullopt;
  return static_cast<uint64_t>(*id);
}

}  // namespace


void RoomManager::on_packet(uint64_t session_id, std::string_view bytes, Channel) {
  Member* m = member(session_id);
  if (!m) return;
  if (!m->codec) {
    refuse_packet(*m, "no codec: the hello offered none this server speaks");
    return;
  }
  if (state::is_state_frame(bytes)) {
    on_state_frame(*m, bytes);
    return;
  }
  Message message;
  std::string error;
  if (!decode_message(*m->codec, bytes, message, error)) {
    refuse_packet(*m, "malformed message: " + error);
    return;
  }
  if (message.type == "room.join_or_create") on_join_request(*m, message);
  else if (message.type == "room.leave") on_leave_request(*m, message);
  else if (message.type == "room.list") on_list_request(*m, message);
  else if (message.type == "room.message") on_room_message(*m, message, false);
  else if (message.type == "room.message.bytes") on_room_message(*m, message, true);
  else if (message.type == "matchmaking.enqueue") on_enqueue_request(*m, message);
  else if (message.type == "matchmaking.dequeue") on_dequeue_request(*m, message);
  else refuse_packet(*m, "unknown message type '" + message.type.substr(0, 64) + "'");
}

void RoomManager::on_state_frame(Member& member, std::string_view bytes) {
  state::FrameHeader header;
  std::string_view schema, rest;
  std::string error;
  if (!state::read_header(bytes, header, schema, rest, error)) {
    refuse_packet(member, "malformed state frame: " + error);
    return;
  }
  if (header.kind != state::FrameKind::ack && header.kind != state::FrameKind::resync) {
    refuse_packet(member, "a state frame only the server sends (snapshot or patch)");
    return;
  }
  if (!rest.empty()) {
    refuse_packet(member, "state frame with " + std::to_string(rest.size()) + " trailing bytes");
    return;
  }
  Room* room = find_room(header.room);
  if (!room || !room->has(member.session_id)) {
    // Not counted towards the kick: an ack can cross the server's room.left.
    ++not_member_messages_;
    log_write(LogLevel::debug, "rooms",
              "session " + std::to_string(member.session_id) + ": state frame for room " +
                  std::to_string(header.room) + ", which it is not in");
    return;
  }
  if (auto refusal = room->on_state_frame(member.session_id, header)) refuse_packet(member, *refusal);
}

void RoomManager::refuse_packet(Member& member, const std::string& reason, bool answer) {
  if (answer) {
    // A reason quoting the client's bytes may not be UTF-8: json then gets
    // a reason without the quote.
    for (std::string_view text : {std::string_view(reason), std::string_view("bad message")}) {
      Writer w(member.codec.value_or(kFallbackCodec));
      begin_message(w, "error");
      w.begin_map(1);
      w.key("reason");
      w.string(text);
      if (!w.ok()) continue;
      send_to(member, w.take(), Channel::reliable);
      break;
    }
  }
  ++member.bad_messages;
  log_write(LogLevel::warn, "rooms",
            "session " + std::to_string(member.session_id) + " (slot " + std::to_string(member.client.slot) +
                "): " + reason + " (" + std::to_string(member.bad_messages) + " of " +
                std::to_string(kMaxBadMessages) + ")");
  if (member.bad_messages >= kMaxBadMessages) host_.kick_client(member.client, "protocol");
}

void RoomManager::send_error(Member& member, std::string_view reason, uint64_t room) {
  Writer w(*member.codec);
  begin_message(w, "error");
  w.begin_map(room ? 2 : 1);
  w.key("reason");
  w.string(reason);
  if (room) {
    w.key("room");
    w.integer(static_cast<int64_t>(room));
  }
  send_to(member, w.take(), Channel::reliable);
}

void RoomManager::answer_join(Member& member, uint32_t id, const JoinResult& result) {
  // Strings from the script (a refusal, a type name) may not be UTF-8: json
  // then gets the answer without them ("refused", no room_type).
  for (bool full : {true, false}) {
    Writer w(*member.codec);
    begin_message(w, "rpc.response", id);
    if (result.ok) {
      w.begin_map(full ? 3 : 2);
      w.key("ok");
      w.boolean(true);
      w.key("room");
      w.integer(static_cast<int64_t>(result.room));
      if (full) {
        w.key("room_type");
        w.string(result.room_type);
      }
    } else {
      w.begin_map(2);
      w.key("ok");
      w.boolean(false);
      w.key("reason");
      w.string(full ? std::string_view(result.reason) : std::string_view("refused"));
    }
    if (!w.ok()) continue;
    send_to(member, w.take(), Channel::reliable);
    return;
  }
}

void RoomManager::answer_ok(Member& member, uint32_t id, bool ok, std::string_view reason) {
  Writer w(*member.codec);
  begin_message(w, "rpc.response", id);
  w.begin_map(ok ? 1 : 2);
  w.key("ok");
  w.boolean(ok);
  if (!ok) {
    w.key("reason");
    w.string(reason);
  }
  send_to(member, w.take(), Channel::reliable);
}

void RoomManager::on_join_request(Member& member, const Message& message) {
  const Value& p = message.payload;
  const Value* options = p.find("options");
  if (options && options->kind == Value::Kind::nil) options = nullptr;
  if (options && options->kind != Value::Kind::map && options->kind != Value::Kind::array) {
    answer_ok(member, message.id, false, "bad request: options must be a table");
    refuse_packet(member, "room.join_or_create: options must be a table", false);
    return;
  }
  JoinResult result;
  if (p.find("room")) {
    auto room = room_id_at(p);
    if (!room) {
      answer_ok(member, message.id, false, "bad request: room must be a positive integer");
      refuse_packet(member, "room.join_or_create: room must be a positive integer", false);
      return;
    }
    if (cluster_ && route_join(member, message.id, RoomCluster::JoinAsk::Kind::join, *room, {}, options)) return;
    result = join(member, *room, options);
  } else {
    auto type = p.string_at("room_type");
    if (!type) {
      answer_ok(member, message.id, false, "bad request: room_type must be a string");
      refuse_packet(member, "room.join_or_create: room_type must be a string", false);
      return;
    }
    bool fresh = p.boolean_at("create").value_or(false);
    if (cluster_ && route_join(member, message.id,
                               fresh ? RoomCluster::JoinAsk::Kind::create : RoomCluster::JoinAsk::Kind::join_or_create,
                               0, *type, options))
      return;
    result = fresh ? create(member, *type, options) : join_or_create(member, *type, options);
  }
  if (!result.ok)
    log_write(LogLevel::debug, "rooms",
              "session " + std::to_string(member.session_id) + ": join refused: " + result.reason);
  answer_join(member, message.id, result);
  if (result.ok)
    if (Room* room = find_room(result.room)) room->release_joiner(member);
}

void RoomManager::on_leave_request(Member& member, const Message& message) {
  auto room = room_id_at(message.payload);
  if (!room) {
    answer_ok(member, message.id, false, "bad request: room must be a positive integer");
    refuse_packet(member, "room.leave: room must be a positive integer", false);
    return;
  }
  // The answer goes first: the leave may dispose the room.
  bool in_room = false;
  if (Room* r = find_room(*room)) in_room = r->has(member.session_id);
  answer_ok(member, message.id, in_room, "not in room");
  if (in_room) leave(member, *room, "left");
}

void RoomManager::on_list_request(Member& member, const Message& message) {
  const Value& p = message.payload;
  std::optional<std::string_view> type;
  if (const Value* t = p.find("room_type"); t && t->kind != Value::Kind::nil) {
    type = p.string_at("room_type");
    if (!type) {
      answer_ok(member, message.id, false, "bad request: room_type must be a string");
      refuse_packet(member, "room.list: room_type must be a string", false);
      return;
    }
  }
  Codec codec = *member.codec;
  auto write_entry = [&](Writer& w, const Room& room) {
    w.begin_map(6);
    w.key("id");
    w.integer(static_cast<int64_t>(room.id()));
    w.key("type");
    w.string(room.type().name);
    w.key("clients");
    w.integer(static_cast<int64_t>(room.client_count()));
    w.key("max_clients");
    w.integer(room.type().max_clients);
    w.key("locked");
    w.boolean(room.locked());
    w.key("metadata");
    if (room.metadata()) w.value(*room.metadata());
    else w.begin_map(0);
  };
  // The rooms that fit in one message (--max-message-size), oldest first;
  // `truncated` says some were left out.
  const size_t budget = config_.max_message_bytes > 256 ? config_.max_message_bytes - 256 : config_.max_message_bytes;
  std::vector<const Room*> listed;
  size_t total = 0;
  bool truncated = false;
  for (const auto& [id, room] : rooms_) {
    if (room->phase() != Room::Phase::open || (type && room->type().name != *type)) continue;
    Writer probe(codec);
    write_entry(probe, *room);
    if (!probe.ok()) continue;  // json cannot carry its name or metadata
    if (total + probe.size() > budget) {
      truncated = true;
      break;
    }
    total += probe.size();
    listed.push_back(room.get());
  }
  // With a cluster, the other servers' open rooms follow (the cached directory).
  std::vector<std::pair<const cluster::RoomEntry*, Value>> remote;
  std::vector<cluster::RoomEntry> remote_rooms;
  if (cluster_ && !truncated) remote_rooms = cluster_->remote_rooms();
  auto write_remote = [&](Writer& w, const cluster::RoomEntry& room, const Value& metadata) {
    w.begin_map(6);
    w.key("id");
    w.integer(static_cast<int64_t>(room.id));
    w.key("type");
    w.string(room.type);
    w.key("clients");
    w.integer(room.clients);
    w.key("max_clients");
    w.integer(room.max_clients);
    w.key("locked");
    w.boolean(room.locked);
    w.key("metadata");
    if (metadata.kind == Value::Kind::map) w.value(metadata);
    else w.begin_map(0);
  };
  for (const auto& room : remote_rooms) {
    if (type && room.type != *type) continue;
    Value metadata;
    std::string error;
    if (!decode(Codec::json, room.metadata_json, metadata, error)) metadata = Value{};
    Writer probe(codec);
    write_remote(probe, room, metadata);
    if (!probe.ok()) continue;
    if (total + probe.size() > budget) {
      truncated = true;
      break;
    }
    total += probe.size();
    remote.emplace_back(&room, std::move(metadata));
  }
  Writer w(codec);
  begin_message(w, "rpc.response", message.id);
  w.begin_map(truncated ? 3 : 2);
  w.key("ok");
  w.boolean(true);
  w.key("rooms");
  w.begin_array(static_cast<uint32_t>(listed.size() + remote.size()));
  for (const Room* room : listed) write_entry(w, *room);
  for (const auto& [room, metadata] : remote) write_remote(w, *room, metadata);
  if (truncated) {
    w.key("truncated");
    w.boolean(true);
  }
  send_to(member, w.take(), Channel::reliable);
}

void RoomManager::on_room_message(Member& member, const Message& message, bool bytes) {
  const Value& p = message.payload;
  auto room_id = room_id_at(p);
  auto type = p.string_at("type");
  const char* what = bytes ? "room.message.bytes" : "room.message";
  if (!room_id || !type) {
    refuse_packet(member, std::string(what) + ": room must be a positive integer and type a string");
    return;
  }
  Room* room = find_room(*room_id);
  if (!room || !room->has(member.session_id)) {
    // Not counted towards the kick: a message can cross the server's
    // room.left on the wire.
    ++not_member_messages_;
    log_write(LogLevel::debug, "rooms",
              "session " + std::to_string(member.session_id) + ": " + what + " for room " +
                  std::to_string(*room_id) + ", which it is not in");
    send_error(member, "not in room", *room_id);
    return;
  }
  if (!bytes) {
    const Value* data = p.find("data");
    static const Value nil;
    room->deliver(member, *type, data ? data : &nil, {});
    return;
  }
  if (*member.codec == Codec::msgpack) {
    const Value* data = p.find("data");
    if (!data || data->kind != Value::Kind::string) {
      refuse_packet(member, "room.message.bytes: data must be bytes");
      return;
    }
    room->deliver(member, *type, nullptr, data->string);
    return;
  }
  auto b64 = p.string_at("data_b64");
  std::optional<std::string> decoded = b64 ? decode_base64(*b64) : std::nullopt;
  if (!decoded) {
    refuse_packet(member, "room.message.bytes: data_b64 must be base64 text");
    return;
  }
  room->deliver(member, *type, nullptr, *decoded);
}

}  // namespace nshost::rooms
