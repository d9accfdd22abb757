#include "runtime/rooms/room.hpp"

#include <algorithm>
#include <exception>

#include "runtime/core/log.hpp"

namespace nshost::rooms {
namespace {

uint32_t tick_rate_of(const RoomType& type, const RoomConfig& config) {
  return type.tick_rate_hz != 0 ? type.tick_rate_hz : config.tick_rate_hz;
}

uint32_t packet_flags(Channel channel) {
  return channel == Channel::reliable ? ENET_PACKET_FLAG_RELIABLE : ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT;
}

// What room.join's refusal may say; the reject text travels in one catalog message.
constexpr size_t kMaxRefusalBytes = 200;
const std::string kDisposed = "disposed";

}  // namespace

Room::Room(RoomManager& manager, std::shared_ptr<const RoomType> type, uint64_t id)
    : manager_(manager),
      type_(std::move(type)),
      id_(id),
      log_tag_("room " + type_->name + "#" + std::to_string(id)),
      state_(std::make_unique<RoomState>(static_cast<StateLink&>(*this), id, log_tag_,
                                         manager.config().state_ack_timeout_ms)),
      tick_(manager.config().loop, tick_rate_of(*type_, manager.config()),
            [this](const TickScheduler::Beat& beat, int64_t) { on_tick(beat.tick_num); }) {}

Room::~Room() {
  tick_.stop();
  script_.reset();  // lua_close before the rest of the room goes
}

bool Room::start(std::string& error) {
  const RoomConfig& config = manager_.config();
  ScriptHost::Sandbox sandbox{config.sandbox, config.memory_limit_bytes, config.instruction_budget,
                              config.handler_timeout_ms, {}};
  try {
    script_ = std::make_unique<ScriptHost>(*this, &open_room_modules, log_tag_, sandbox);
  } catch (const std::exception& e) {
    error = std::string("cannot create the room's Lua state: ") + e.what();
    return false;
  }
  if (!script_->load(type_->path, error)) return false;
  check_memory();
  if (memory_failed_) {
    error = "out of memory while running " + type_->path + " (--room-memory-limit)";
    return false;
  }
  // No room.tick when the file has run: no timer until a client joins (an
  // idle room costs no wakeups).
  has_tick_handler_ = script_->has_handler("tick");
  if (!has_tick_handler_) return true;
  if (int rc = tick_.start(); rc != 0) {
    error = std::string("libuv: ") + uv_strerror(rc);
    return false;
  }
  return true;
}

bool Room::run_create(const Value* options) {
  bool ok = script_->invoke("create", [&](lua_State* L) {
    if (options) push_value(L, *options);
    else lua_newtable(L);
    return 1;
  });
  check_memory();
  return ok && accepting();
}

std::optional<std::string> Room::try_join(Member& member, const Value* options) {
  if (!accepting()) return "no such room";
  int ref = LUA_NOREF;
  bool made = script_->protect("creating a room client handle", [&](lua_State* L) {
    auto* h = static_cast<RoomClientHandle*>(lua_newuserdatauv(L, sizeof(RoomClientHandle), 1));
    h->session_id = member.session_id;
    if (!member.claims.empty()) {
      Value claims;
      std::string error;
      if (decode(Codec::msgpack, member.claims, claims, error)) {
        push_value(L, claims);
        lua_setiuservalue(L, -2, 1);
      }
    }
    luaL_setmetatable(L, kRoomClientType);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
  });
  check_memory();
  if (!made || !accepting()) {
    if (ref != LUA_NOREF) luaL_unref(script_->state(), LUA_REGISTRYINDEX, ref);
    return std::string("room failed");
  }
  std::optional<std::string> refusal;
  seats_.push_back(Seat{member.session_id, ref});
  member.rooms.push_back(id_);
  state_->add_client(member.session_id, now_ms());  // room.join may give it a view
  held_[member.session_id].clear();
  bool ok = script_->invoke(
      "join",
      [&](lua_State* L) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        if (options) push_value(L, *options);
        else lua_newtable(L);
        return 2;
      },
      [&](lua_State* L) {
        // Only `false` refuses; nil, true or anything else seats the client.
        if (lua_gettop(L) < 1 || lua_type(L, 1) != LUA_TBOOLEAN || lua_toboolean(L, 1)) return 0;
        std::string reason = "refused";
        if (lua_type(L, 2) == LUA_TSTRING) {
          size_t n = 0;
          const char* s = lua_tolstring(L, 2, &n);
          if (n > 0) reason.assign(s, std::min(n, kMaxRefusalBytes));
        }
        refusal = std::move(reason);
        return 0;
      });
  check_memory();
  if (!ok || !accepting() || refusal) {
    held_.erase(member.session_id);
    std::erase(member.rooms, id_);
    // The seat added above (room.join cannot seat anyone else meanwhile).
    forget_seat(member.session_id);
    if (!ok || !accepting()) return std::string("room failed");
    return refusal;
  }
  log_write(LogLevel::debug, log_tag_,
            "session " + std::to_string(member.session_id) + " joined (" + std::to_string(seats_.size()) + "/" +
                std::to_string(type_->max_clients) + ")");
  return std::nullopt;
}

void Room::release_joiner(Member& member) {
  std::vector<std::pair<std::string, Channel>> held;
  if (auto it = held_.find(member.session_id); it != held_.end()) {
    held.swap(it->second);
    held_.erase(it);
  }
  for (auto& [bytes, channel] : held) manager_.send_to(member, bytes, channel);
  if (!accepting() || !state_->has_client(member.session_id)) return;
  // With nobody else to patch, the snapshot can carry room.state as it is now.
  if (!state_->any_started()) {
    script_->protect("diffing room.state", [&](lua_State* L) {
      state_->diff(L, now_ms(), script_.get());
      return 0;
    });
    state_->send(now_ms());
    check_memory();
    if (!accepting()) return;
  }
  std::vector<uint64_t> sessions;
  state_->view_function_clients(sessions);
  if (std::find(sessions.begin(), sessions.end(), member.session_id) != sessions.end()) {
    script_->call_back("room view function", [&](lua_State* L) {
      state_->evaluate_view(L, member.session_id);
      return 0;
    });
    check_memory();
    if (!accepting()) return;
  }
  state_->start_client(member.session_id, now_ms());
  ensure_ticking();
}

void Room::ensure_ticking() {
  if (has_tick_handler_ || client_ticking_ || phase_ != Phase::open) return;
  if (int rc = tick_.start(); rc != 0) {
    log_write(LogLevel::error, log_tag_, std::string("cannot start the room's tick: libuv: ") + uv_strerror(rc));
    return;
  }
  client_ticking_ = true;
}

int64_t Room::now_ms() const { return static_cast<int64_t>(uv_now(manager_.config().loop)); }

bool Room::queue_state_packet(uint64_t session_id, ENetPacket* packet) {
  Member* m = manager_.member(session_id);
  if (!m) return false;
  return manager_.host().queue_room_packet(m->client, packet, Channel::reliable);
}

std::optional<std::string> Room::on_state_frame(uint64_t session_id, const state::FrameHeader& header) {
  if (header.kind == state::FrameKind::ack) return state_->on_ack(session_id, header.seq, header.checksum, now_ms());
  return state_->on_resync(session_id, header.reason, now_ms());
}

void Room::run_state_patch() {
  if (phase_ != Phase::open || seats_.empty() || memory_failed_) return;
  const int64_t now = now_ms();
  script_->protect("diffing room.state", [&](lua_State* L) {
    state_->diff(L, now, script_.get());
    return 0;
  });
  check_memory();
  if (!accepting()) return;
  state_->view_function_clients(view_sessions_);
  for (uint64_t session : view_sessions_) {
    script_->call_back("room view function", [&](lua_State* L) {
      state_->evaluate_view(L, session);
      return 0;
    });
    check_memory();
    if (!accepting()) return;
  }
  state_->send(now);
}

bool Room::has(uint64_t session_id) const {
  return std::any_of(seats_.begin(), seats_.end(), [&](const Seat& s) { return s.session_id == session_id; });
}

void Room::forget_seat(uint64_t session_id) {
  auto it = std::find_if(seats_.begin(), seats_.end(), [&](const Seat& s) { return s.session_id == session_id; });
  if (it == seats_.end()) return;
  held_.erase(session_id);
  if (script_) luaL_unref(script_->state(), LUA_REGISTRYINDEX, it->handle_ref);
  seats_.erase(it);
  state_->remove_client(session_id, script_ ? script_->state() : nullptr);
}

void Room::remove(Member& member, const std::string& reason, const std::string* told) {
  auto it = std::find_if(seats_.begin(), seats_.end(), [&](const Seat& s) { return s.session_id == member.session_id; });
  if (it == seats_.end()) return;
  int ref = it->handle_ref;
  seats_.erase(it);
  state_->remove_client(member.session_id, script_->state());
  if (seats_.empty() && client_ticking_) {
    tick_.stop();
    client_ticking_ = false;
  }
  std::erase(member.rooms, id_);
  if (told && member.codec) {
    // A close reason json cannot carry (not UTF-8) is told as "disposed".
    for (const std::string* reason : {told, &kDisposed}) {
      Writer w(*member.codec);
      begin_message(w, "room.left");
      w.begin_map(2);
      w.key("room");
      w.integer(static_cast<int64_t>(id_));
      w.key("reason");
      w.string(*reason);
      if (!w.ok()) continue;
      manager_.send_to(member, w.take(), Channel::reliable);
      break;
    }
  }
  if (phase_ != Phase::disposed && !memory_failed_) {
    script_->invoke("leave", [&](lua_State* L) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
      lua_pushlstring(L, reason.data(), reason.size());
      return 2;
    });
    check_memory();
  }
  luaL_unref(script_->state(), LUA_REGISTRYINDEX, ref);
  log_write(LogLevel::debug, log_tag_, "session " + std::to_string(member.session_id) + " left: " + reason);
  manager_.rooms_changed();
  if (phase_ == Phase::open && seats_.empty() && reserved_ == 0 && type_->auto_dispose) dispose(true);
}

void Room::deliver(Member& member, std::string_view type, const Value* data, std::string_view bytes) {
  if (!accepting()) return;
  int ref = LUA_NOREF;
  for (const Seat& s : seats_)
    if (s.session_id == member.session_id) ref = s.handle_ref;
  if (ref == LUA_NOREF) return;
  script_->invoke("message", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushlstring(L, type.data(), type.size());
    if (data) push_value(L, *data);
    else lua_pushlstring(L, bytes.data(), bytes.size());
    return 3;
  });
  check_memory();
}

void Room::on_tick(uint64_t tick_num) {
  if (phase_ != Phase::open) return;
  if (has_tick_handler_) {
    script_->invoke("tick", [&](lua_State* L) {
      lua_pushinteger(L, static_cast<lua_Integer>(tick_num));
      return 1;
    });
    check_memory();
    if (phase_ != Phase::open) return;
  }
  const uint32_t rate = state_->patch_rate_hz();
  const uint32_t every = rate == 0 ? 1 : std::max<uint32_t>(1, (tick_.rate_hz() + rate / 2) / rate);
  if (++ticks_since_patch_ < every) return;
  ticks_since_patch_ = 0;
  run_state_patch();
}

void Room::check_memory() {
  if (!script_ || script_->memory_error_count() == memory_errors_seen_) return;
  memory_errors_seen_ = script_->memory_error_count();
  if (memory_failed_) return;
  memory_failed_ = true;
  log_write(LogLevel::error, log_tag_,
            "out of memory (" + std::to_string(script_->memory_used()) + " bytes in use, --room-memory-limit=" +
                std::to_string(manager_.config().memory_limit_bytes) + "): disposing the room");
  if (phase_ == Phase::disposed) return;
  phase_ = Phase::doomed;
  tick_.stop();
  manager_.schedule_settle(id_);
}

void Room::request_close(std::string reason) {
  if (phase_ != Phase::open) return;
  phase_ = Phase::doomed;
  close_reason_ = reason.empty() ? "disposed" : "closed: " + reason;
  tick_.stop();
  manager_.schedule_settle(id_);
}

void Room::settle() {
  if (phase_ != Phase::doomed) return;
  const std::string told = memory_failed_ ? "memory" : close_reason_;
  // At most one pass per seated client: a leave handler cannot seat anyone.
  for (size_t guard = seats_.size(); !seats_.empty() && guard > 0; --guard) {
    uint64_t session = seats_.front().session_id;
    Member* member = manager_.member(session);
    if (!member) {
      forget_seat(session);
      continue;
    }
    remove(*member, told, &told);
  }
  dispose(!memory_failed_);
}

void Room::dispose(bool run_handler) {
  if (phase_ == Phase::disposed) return;
  phase_ = Phase::disposed;
  tick_.stop();
  if (run_handler && script_) {
    script_->invoke("dispose");
    check_memory();
  }
  for (const Seat& s : seats_) {
    if (Member* member = manager_.member(s.session_id)) std::erase(member->rooms, id_);
    if (script_) luaL_unref(script_->state(), LUA_REGISTRYINDEX, s.handle_ref);
    state_->remove_client(s.session_id, script_ ? script_->state() : nullptr);
  }
  seats_.clear();
  log_write(LogLevel::info, log_tag_,
            std::string("disposed") + (memory_failed_ ? " (memory)" : close_reason_.empty() ? "" : " (" + close_reason_ + ")"));
  manager_.bury(id_);
}

std::vector<uint64_t> Room::clients() const {
  std::vector<uint64_t> out;
  out.reserve(seats_.size());
  for (const Seat& s : seats_) out.push_back(s.session_id);
  return out;
}

void Room::push_client(lua_State* L, uint64_t session_id) {
  for (const Seat& s : seats_) {
    if (s.session_id == session_id) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, s.handle_ref);
      return;
    }
  }
  lua_pushnil(L);
}

Channel Room::channel_for(std::string_view type, std::optional<Channel> channel) const {
  if (channel) return *channel;
  return type_->unreliable.count(std::string(type)) ? Channel::unreliable : Channel::reliable;
}

bool Room::send(lua_State* L, std::span<const uint64_t> recipients, std::string_view type, int data_index, bool bytes,
                std::optional<Channel> channel, size_t& sent, std::string& error) {
  sent = 0;
  data_index = lua_absindex(L, data_index);
  Channel ch = channel_for(type, channel);
  constexpr size_t kCodecs = 2;
  bool needed[kCodecs] = {false, false};
  std::vector<Member*> members;
  members.reserve(recipients.size());
  for (uint64_t session : recipients) {
    Member* m = manager_.member(session);
    if (!m || !m->codec) continue;
    needed[static_cast<size_t>(*m->codec)] = true;
    members.push_back(m);
  }
  std::string encoded[kCodecs];
  for (size_t c = 0; c < kCodecs; ++c) {
    if (!needed[c]) continue;
    Codec codec = static_cast<Codec>(c);
    Writer w(codec);
    begin_message(w, bytes ? "room.message.bytes" : "room.message");
    w.begin_map(3);
    w.key("room");
    w.integer(static_cast<int64_t>(id_));
    w.key("type");
    w.string(type);
    if (bytes) {
      size_t n = 0;
      const char* s = lua_tolstring(L, data_index, &n);
      w.key(codec == Codec::msgpack ? "data" : "data_b64");
      w.bytes(std::string_view(s ? s : "", s ? n : 0));
    } else {
      w.key("data");
      if (!w.lua_value(L, data_index, error, "data")) {
        error = "data: " + error;
        return false;
      }
    }
    if (!w.ok()) {  // json: a type that is not UTF-8
      error = w.error();
      return false;
    }
    encoded[c] = w.take();
    if (encoded[c].size() > manager_.config().max_message_bytes) {
      error = "message of " + std::to_string(encoded[c].size()) + " bytes (" + codec_name(codec) +
              ") is over the limit of " + std::to_string(manager_.config().max_message_bytes) +
              " bytes (--max-message-size)";
      return false;
    }
  }
  ENetPacket* packets[kCodecs] = {nullptr, nullptr};
  for (size_t c = 0; c < kCodecs; ++c) {
    if (!needed[c]) continue;
    packets[c] = enet_packet_create(encoded[c].data(), encoded[c].size(), packet_flags(ch));
    if (!packets[c]) {
      error = "ENOMEM: cannot allocate a packet";
      for (ENetPacket* p : packets)
        if (p) enet_packet_destroy(p);
      return false;
    }
  }
  for (Member* m : members) {
    size_t c = static_cast<size_t>(*m->codec);
    if (auto it = held_.find(m->session_id); it != held_.end()) {
      it->second.emplace_back(encoded[c], ch);
      ++sent;
      continue;
    }
    sent += manager_.host().queue_room_packet(m->client, packets[c], ch);
  }
  for (ENetPacket* p : packets)
    if (p && p->referenceCount == 0) enet_packet_destroy(p);
  return true;
}

void Room::request_stop(int) {
  log_write(LogLevel::warn, log_tag_, "a room cannot stop the server; ignored");
}

void Room::set_locked(bool locked) {
  locked_ = locked;
  manager_.rooms_changed();
}

void Room::set_metadata(std::optional<Value> metadata) {
  metadata_ = std::move(metadata);
  manager_.rooms_changed();
}

void Room::release_seat(bool dispose_if_empty) {
  if (reserved_ > 0) --reserved_;
  manager_.rooms_changed();
  if (dispose_if_empty && phase_ == Phase::open && seats_.empty() && reserved_ == 0 && type_->auto_dispose)
    dispose(true);
}

}  // namespace nshost::rooms
