#include "runtime/rooms/client_rooms.hpp"

#include <utility>

#include "runtime/core/log.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost::rooms {
namespace {

const char* callback_name(ClientRooms::Kind kind) {
  switch (kind) {
    case ClientRooms::Kind::join: return "rooms.join callback";
    case ClientRooms::Kind::list: return "rooms.list callback";
    case ClientRooms::Kind::leave: return "r:leave callback";
    case ClientRooms::Kind::match: return "matchmaking callback";
  }
  return "rooms callback";
}



// nil, message, code: the failure a callback gets.
int push_callback_failure(lua_State* L, std::string_view message, const char* code) {
  lua_pushnil(L);
  lua_pushlstring(L, message.data(), message.size());
  lua_pushstring(L, code);
  return 3;
}

}  // namespace

void push_room_handle(lua_State* L, int64_t room, uint64_t generation, std::string_view type) {
  auto* h = static_cast<RoomHandle*>(lua_newuserdatauv(L, sizeof(RoomHandle), 1));
  h->room = room;
  h->generation = generation;
  lua_pushlstring(L, type.data(), type.size());
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, kRoomHandleType);
}

ClientRooms::ClientRooms(Owner& owner, std::string log_tag)
    : owner_(owner), log_tag_(std::move(log_tag)), states_(*this, log_tag_) {}

ClientRooms::~ClientRooms() = default;

bool ClientRooms::start(uv_loop_t* loop, std::string& error) {
  if (int rc = timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); }); rc != 0) {
    error = std::string("libuv: ") + uv_strerror(rc);
    return false;
  }
  timer_.get()->data = this;
  return states_.start(loop, error);
}

void ClientRooms::stop() {
  timer_.close();
  states_.stop();
}

int ClientRooms::state_room_handle(int64_t room) {
  auto it = rooms_.find(room);
  return it == rooms_.end() ? LUA_NOREF : it->second.handle_ref;
}

bool ClientRooms::send_state(std::string_view bytes, bool reliable) {
  return owner_.rooms_link_up() && owner_.send_catalog(bytes, reliable);
}

void ClientRooms::on_welcome(const wire::Welcome& welcome) {
  codec_.reset();
  session_complaints_ = 0;
  states_.on_session();
  if (!welcome.codec.empty()) {
    codec_ = codec_from_name(welcome.codec);
    if (!codec_)
      log_write(LogLevel::warn, log_tag_, "the server picked codec '" + welcome.codec + "', which this client does not speak: no rooms");
  }
  session_id_ = welcome.session_id;
  if (held_) {
    if (held_->first != 0) pending_.emplace(held_->first, held_->second);
    held_.reset();
  }
  log_write(LogLevel::debug, log_tag_,
            "session " + std::to_string(session_id_) + ", rooms codec " + (codec_ ? codec_name(*codec_) : "none"));
}

void ClientRooms::on_resumed(const wire::Welcome& welcome) {
  if (!welcome.codec.empty()) codec_ = codec_from_name(welcome.codec);
  else codec_.reset();
  if (welcome.session_id != 0) session_id_ = welcome.session_id;
  if (!codec_ && !rooms_.empty()) {
    std::vector<Queued> items;
    leave_rooms(items, "disconnected");
    enqueue(std::move(items), true);
    return;
  }
  std::vector<int64_t> rooms;
  for (auto& [id, room] : rooms_) rooms.push_back(id);
  states_.on_resumed(rooms);
}

void ClientRooms::on_link_lost(bool now) {
  // Catalog answers are not replayed across a resume: whatever was asked
  // before the link dropped would never be answered.
  std::vector<Queued> items;
  fail_pending(items);
  enqueue(std::move(items), now);
}

void ClientRooms::end_session(bool now, const char* reason, bool keep_held) {
  std::vector<Queued> items;
  if (held_ && !keep_held) {
    if (held_->first != 0) pending_.emplace(held_->first, held_->second);
    held_.reset();
  }
  leave_rooms(items, reason);
  fail_pending(items);
  codec_.reset();
  session_id_ = 0;
  enqueue(std::move(items), now);
}

void ClientRooms::forget_script() {
  pending_.clear();
  held_.reset();
  rooms_.clear();
  queued_.clear();
  queued_callbacks_ = 0;
  states_.forget_script();
}

void ClientRooms::fail_pending(std::vector<Queued>& out) {
  for (auto& [id, p] : pending_)
    if (p.callback_ref != LUA_NOREF) out.push_back(Queued{false, p.callback_ref, "not connected", callback_name(p.kind)});
  pending_.clear();
}

void ClientRooms::leave_rooms(std::vector<Queued>& out, const char* reason) {
  for (auto& [id, room] : rooms_) out.push_back(Queued{true, room.handle_ref, reason});
  rooms_.clear();
  states_.forget_all();
}

void ClientRooms::enqueue(std::vector<Queued> items, bool now) {
  for (Queued& q : items) {
    if (!q.room_left) ++queued_callbacks_;
    queued_.push_back(std::move(q));
  }
  if (now) flush();
  else if (!queued_.empty()) arm_timer();
}

void ClientRooms::arm_timer() {
  if (!timer_ || uv_is_active(reinterpret_cast<uv_handle_t*>(timer_.get()))) return;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<ClientRooms*>(t->data)->flush();
      },
      0, 0);
}

void ClientRooms::flush() {
  if (timer_) uv_timer_stop(timer_.get());
  // A callback may queue more (a request made while not connected): those
  // wait for the next turn, so a callback never runs inside its own call.
  std::vector<Queued> items = std::move(queued_);
  queued_.clear();
  queued_callbacks_ = 0;
  deliver(items);
}

void ClientRooms::deliver(std::vector<Queued>& items) {
  ScriptHost* script = owner_.rooms_script();
  for (Queued& q : items) {
    if (q.room_left) {
      if (script)
        script->invoke("room_left", [&](lua_State* L) {
          lua_rawgeti(L, LUA_REGISTRYINDEX, q.ref);
          lua_pushlstring(L, q.text.data(), q.text.size());
          return 2;
        });
      release(q.ref);
    } else {
      run_callback(q.ref, q.what,
                   [&](lua_State* L) { return push_callback_failure(L, q.text, "ENOTCONN"); });
    }
  }
}

template <class Push>
void ClientRooms::run_callback(int ref, const char* what, Push&& push) {
  ScriptHost* script = owner_.rooms_script();
  if (!script || ref == LUA_NOREF) return;
  script->call_back(what, [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    int n = push(L);
    lua_call(L, n, 0);
    return 0;
  });
  release(ref);
}

void ClientRooms::release(int ref) {
  ScriptHost* script = owner_.rooms_script();
  // Clearing an existing registry entry allocates nothing: safe outside a
  // protected call.
  if (script && ref != LUA_NOREF && ref != LUA_REFNIL) luaL_unref(script->state(), LUA_REGISTRYINDEX, ref);
}

ClientRooms::Gate ClientRooms::gate() const {
  if (pending_count() >= kMaxPending) return Gate::busy;
  if (!owner_.rooms_link_up()) return Gate::not_connected;
  if (!codec_) return Gate::no_rooms;
  return Gate::ok;
}

uint32_t ClientRooms::next_request_id() {
  do {
    if (++last_id_ == 0) last_id_ = 1;
  } while (pending_.count(last_id_));
  return last_id_;
}

bool ClientRooms::send_request(uint32_t id, Kind kind, std::string_view bytes, int callback_ref, std::string& error) {
  if (!owner_.send_catalog(bytes, true)) {
    error = "ENOBUFS: ENet refused the packet";
    return false;
  }
  pending_[id] = Pending{kind, callback_ref};
  return true;
}

void ClientRooms::fail_later(Kind kind, int callback_ref) {
  std::vector<Queued> items;
  items.push_back(Queued{false, callback_ref, "not connected", callback_name(kind)});
  enqueue(std::move(items), false);
}

bool ClientRooms::live(const RoomHandle& handle) const {
  auto it = rooms_.find(handle.room);
  return it != rooms_.end() && it->second.generation == handle.generation;
}

bool ClientRooms::send_message(std::string_view bytes, bool reliable, std::string& error) {
  if (!owner_.rooms_link_up()) {
    error = "ENOTCONN: not connected";
    return false;
  }
  if (!owner_.send_catalog(bytes, reliable)) {
    error = "ENOBUFS: ENet refused the packet";
    return false;
  }
  return true;
}

void ClientRooms::forget_room(int64_t room) {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  states_.forget(room);
  release(it->second.handle_ref);
  rooms_.erase(it);
}

void ClientRooms::on_catalog(uint8_t channel_id, std::string_view bytes) {
  if (state::is_state_frame(bytes)) {
    states_.on_frame(bytes);
    return;
  }
  if (!codec_) {
    bad_packet("a catalog message on channel " + std::to_string(channel_id) + ", but this session has no codec");
    return;
  }
  Message message;
  std::string error;
  if (!decode_message(*codec_, bytes, message, error)) {
    bad_packet("a catalog message that does not decode: " + error);
    return;
  }
  if (message.type == "rpc.response") on_response(message);
  else if (message.type == "room.message") on_room_message(message, false);
  else if (message.type == "room.message.bytes") on_room_message(message, true);
  else if (message.type == "room.left") on_room_left(message);
  else if (message.type == "match.found") on_match_found(message);
  else if (message.type == "cluster.transfer") on_transfer(message);
  else if (message.type == "match.failed") on_match_failed(message);
  else if (message.type == "error") on_error(message);
  else bad_packet("a catalog message of unknown type '" + message.type.substr(0, 64) + "'");
}

void ClientRooms::bad_packet(const std::string& why) {
  ++bad_packets_;
  LogLevel level = ++session_complaints_ <= kMaxLoggedErrors ? LogLevel::warn : LogLevel::debug;
  log_write(level, log_tag_, "rooms: ignored " + why);
}

void ClientRooms::on_error(const Message& message) {
  ++errors_received_;
  std::string reason(message.payload.string_at("reason").value_or("(no reason)"));
  if (auto room = message.payload.integer_at("room")) reason += " (room " + std::to_string(*room) + ")";
  LogLevel level = ++session_complaints_ <= kMaxLoggedErrors ? LogLevel::warn : LogLevel::debug;
  log_write(level, log_tag_, "rooms: the server says error: " + reason.substr(0, 300));
}

void ClientRooms::on_response(const Message& message) {
  auto it = pending_.find(message.id);
  if (message.id == 0 || it == pending_.end()) {
    log_write(LogLevel::debug, log_tag_, "rooms: an answer to no pending request (id " + std::to_string(message.id) + ")");
    return;
  }
  Pending pending = it->second;
  pending_.erase(it);
  const char* what = callback_name(pending.kind);
  std::optional<bool> ok = message.payload.boolean_at("ok");
  std::optional<int64_t> room = message.payload.integer_at("room");
  if (!ok || (*ok && pending.kind == Kind::join && !room)) {
    bad_packet("an rpc.response without " + std::string(ok ? "room" : "ok"));
    run_callback(pending.callback_ref, what,
                 [](lua_State* L) { return push_callback_failure(L, "malformed answer from the server", "EPROTO"); });
    return;
  }
  if (!*ok) {
    std::string reason(message.payload.string_at("reason").value_or("refused"));
    // Nobody waits for this answer: the refusal would otherwise go unseen.
    if (pending.kind == Kind::match && pending.callback_ref == LUA_NOREF)
      log_write(LogLevel::warn, log_tag_, "matchmaking: the server refused: " + reason.substr(0, 300));
    run_callback(pending.callback_ref, what, [&](lua_State* L) { return push_callback_failure(L, reason, "EREFUSED"); });
    return;
  }
  switch (pending.kind) {
    case Kind::join: {
      std::string type(message.payload.string_at("room_type").value_or(""));
      auto existing = rooms_.find(*room);
      if (existing != rooms_.end()) {  // joined twice: the same handle
        int handle = existing->second.handle_ref;
        run_callback(pending.callback_ref, what, [&](lua_State* L) {
          lua_rawgeti(L, LUA_REGISTRYINDEX, handle);
          return 1;
        });
        return;
      }
      uint64_t generation = ++last_generation_;
      run_callback(pending.callback_ref, what, [&](lua_State* L) {
        push_room_handle(L, *room, generation, type);
        lua_pushvalue(L, -1);
        int handle = luaL_ref(L, LUA_REGISTRYINDEX);
        // Known before the callback runs: it may already send or leave.
        rooms_[*room] = Room{type, generation, handle};
        return 1;
      });
      return;
    }
    case Kind::list: {
      const Value* list = message.payload.find("rooms");
      bool truncated = message.payload.boolean_at("truncated").value_or(false);
      run_callback(pending.callback_ref, what, [&](lua_State* L) {
        if (list && (list->kind == Value::Kind::array || list->kind == Value::Kind::map)) push_value(L, *list);
        else lua_newtable(L);
        if (truncated) {  // the server left rooms out to stay within --max-message-size
          lua_pushboolean(L, 1);
          lua_setfield(L, -2, "truncated");
        }
        return 1;
      });
      return;
    }
    case Kind::leave:
    case Kind::match:
      run_callback(pending.callback_ref, what, [](lua_State* L) {
        lua_pushboolean(L, 1);
        return 1;
      });
      return;
  }
}

void ClientRooms::on_room_message(const Message& message, bool bytes) {
  std::optional<int64_t> room = message.payload.integer_at("room");
  std::optional<std::string_view> type = message.payload.string_at("type");
  if (!room || !type) {
    bad_packet("a " + message.type + " without room or type");
    return;
  }
  auto it = rooms_.find(*room);
  if (it == rooms_.end()) {
    // In flight when this client left, or for a room it never joined.
    log_write(LogLevel::debug, log_tag_, "rooms: a message for room " + std::to_string(*room) + ", which this client is not in");
    return;
  }
  int handle = it->second.handle_ref;
  std::string raw;
  const Value* data = message.payload.find("data");
  if (bytes) {
    if (data && data->kind == Value::Kind::string) {
      raw = data->string;
    } else if (auto b64 = message.payload.string_at("data_b64")) {
      std::optional<std::string> decoded = decode_base64(*b64);
      if (!decoded) {
        bad_packet("a room.message.bytes whose data_b64 is not base64");
        return;
      }
      raw = std::move(*decoded);
    } else {
      bad_packet("a room.message.bytes without data");
      return;
    }
  }
  ScriptHost* script = owner_.rooms_script();
  if (!script) return;
  script->invoke("room_message", [&](lua_State* L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, handle);
    lua_pushlstring(L, type->data(), type->size());
    if (bytes) lua_pushlstring(L, raw.data(), raw.size());
    else if (data) push_value(L, *data);
    else lua_pushnil(L);
    return 3;
  });
}

void ClientRooms::on_room_left(const Message& message) {
  std::optional<int64_t> room = message.payload.integer_at("room");
  if (!room) {
    bad_packet("a room.left without room");
    return;
  }
  auto it = rooms_.find(*room);
  if (it == rooms_.end()) return;  // already left by this client
  std::string reason(message.payload.string_at("reason").value_or("left"));
  int handle = it->second.handle_ref;
  rooms_.erase(it);  // stale from here on, inside the handler too
  states_.forget(*room);
  if (ScriptHost* script = owner_.rooms_script())
    script->invoke("room_left", [&](lua_State* L) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, handle);
      lua_pushlstring(L, reason.data(), reason.size());
      return 2;
    });
  release(handle);
}

void ClientRooms::on_transfer(const Message& message) {
  auto url = message.payload.string_at("url");
  auto token = message.payload.string_at("token");
  if (!url || !token || held_) {
    bad_packet("a cluster.transfer without url or token, or a second one");
    return;
  }
  Pending carried{Kind::join, LUA_NOREF};
  if (message.id != 0) {
    auto it = pending_.find(message.id);
    if (it == pending_.end()) {
      log_write(LogLevel::debug, log_tag_, "a cluster.transfer for no outstanding request (dropped)");
      return;
    }
    carried = it->second;
    pending_.erase(it);
  }
  held_.emplace(message.id, carried);
  log_write(LogLevel::info, log_tag_, "cluster: transferred to " + std::string(*url));
  owner_.rooms_transfer(std::string(*url), std::string(*token));
}

}  // namespace nshost::rooms
