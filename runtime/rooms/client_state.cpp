#include "runtime/rooms/client_state.hpp"

#include "runtime/rooms/client_state_mirror.hpp"

#include <cmath>
#include <utility>

#include "runtime/core/log.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost::rooms {

using state::Change;
using state::FrameHeader;
using state::FrameKind;
using state::Key;
using state::ResyncReason;
using state::Scalar;
using state::StateTree;

using client_state_detail::push_key;

ClientStates::ClientStates(Owner& owner, std::string log_tag) : owner_(owner), log_tag_(std::move(log_tag)) {}

ClientStates::~ClientStates() = default;

bool ClientStates::start(uv_loop_t* loop, std::string& error) {
  loop_ = loop;
  if (int rc = timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); }); rc != 0) {
    error = std::string("libuv: ") + uv_strerror(rc);
    return false;
  }
  timer_.get()->data = this;
  return true;
}

void ClientStates::stop() { timer_.close(); }

uint64_t ClientStates::now_ms() const { return loop_ ? uv_now(loop_) : 0; }

void ClientStates::complain(const std::string& line) {
  LogLevel level = ++complaints_ <= kMaxLogged ? LogLevel::warn : LogLevel::debug;
  log_write(level, log_tag_, "state: " + line);
}

void ClientStates::set_tree_budget(size_t max_nodes, size_t max_bytes) {
  max_nodes_ = max_nodes;
  max_bytes_ = max_bytes;
}

ClientStates::Mirror& ClientStates::mirror_for(int64_t room) {
  auto& slot = mirrors_[room];
  if (!slot) {
    slot = std::make_shared<Mirror>();
    slot->room = room;
    slot->serial = ++next_serial_;
  }
  return *slot;
}

ClientStates::Mirror* ClientStates::find(int64_t room, uint64_t serial) {
  auto it = mirrors_.find(room);
  return it != mirrors_.end() && it->second->serial == serial ? it->second.get() : nullptr;
}

void ClientStates::on_frame(std::string_view bytes) {
  FrameHeader header;
  std::string_view schema_bytes, ops;
  std::string error;
  if (!state::read_header(bytes, header, schema_bytes, ops, error)) {
    complain("ignored a state frame that does not decode: " + error);
    return;
  }
  if (header.kind != FrameKind::snapshot && header.kind != FrameKind::patch) {
    complain("ignored a state frame of kind " + std::to_string(static_cast<int>(header.kind)) + " from the server");
    return;
  }
  auto room = static_cast<int64_t>(header.room);
  if (owner_.state_room_handle(room) == LUA_NOREF) {
    // In flight when this client left, or for a room it never joined.
    log_write(LogLevel::debug, log_tag_, "state: a frame for room " + std::to_string(header.room) + ", which this client is not in");
    return;
  }
  Mirror& m = mirror_for(room);
  m.heard = true;
  m.stats.bytes += bytes.size();
  if (header.kind == FrameKind::snapshot) on_snapshot(m, header, schema_bytes, ops);
  else on_patch(m, header, ops);
}

void ClientStates::on_snapshot(Mirror& m, const FrameHeader& header, std::string_view schema_bytes,
                               std::string_view ops) {
  std::string error;
  std::optional<state::Schema> schema = state::Schema::decode(schema_bytes, error);
  if (!schema) {
    ++m.stats.decode_errors;
    fail(m, ResyncReason::decode, "a snapshot whose schema does not decode: " + error);
    return;
  }
  auto owned_schema = std::make_unique<state::Schema>(std::move(*schema));
  auto tree = std::make_unique<StateTree>(*owned_schema);
  if (max_nodes_) tree->set_budget(max_nodes_, max_bytes_);
  std::vector<Change> changes;
  if (!state::apply_ops(*tree, ops, changes, error)) {
    ++m.stats.decode_errors;
    fail(m, ResyncReason::decode, "a snapshot that does not apply: " + error);
    return;
  }
  changes = {};
  if (tree->checksum() != header.checksum) {
    ++m.stats.checksum_mismatches;
    fail(m, ResyncReason::checksum, "a snapshot whose checksum does not match");
    return;
  }
  int64_t room = m.room;
  uint64_t serial = m.serial;
  std::shared_ptr<Mirror> keep = mirrors_[room];
  LuaNodes nodes;
  int refs_ref = LUA_NOREF;
  int events_ref = LUA_NOREF;
  size_t event_count = 0;
  ScriptHost* script = owner_.state_script();
  bool ok = !script || script->protect("room state snapshot", [&](lua_State* L) {
    std::vector<Listener> listeners = m.listeners;  // a finalizer may change them
    lua_newtable(L);
    Apply a{L, nodes, listeners};
    a.refs = lua_gettop(L);
    lua_newtable(L);
    a.events = lua_gettop(L);
    a.build(*tree, StateTree::kRoot);  // [refs events root]
    if (!listeners.empty()) {
      if (m.refs_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, m.refs_ref);
        lua_rawgeti(L, -1, 0);
        lua_remove(L, -2);
      } else {
        lua_pushnil(L);
      }  // [refs events root old]
      for (const Listener& l : listeners) a.diff(l, 0, a.events + 2, a.events + 1, 0);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    event_count = a.event_count;
    lua_pushvalue(L, a.refs);
    refs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, a.events);
    events_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 2;
  });
  if (!ok) {
    if (script) {
      luaL_unref(script->state(), LUA_REGISTRYINDEX, refs_ref);
      luaL_unref(script->state(), LUA_REGISTRYINDEX, events_ref);
    }
    if (find(room, serial)) {
      complain("room " + std::to_string(room) + ": the snapshot could not be mirrored into Lua; asking again later");
      m.waiting = true;
      m.resync_outstanding = true;  // the retry timer asks again: not at once, memory may still be short
      m.resync_sent_ms = now_ms();
      m.last_reason = ResyncReason::requested;
      arm_timer();
    }
    return;
  }
  if (!find(room, serial)) {  // forgotten meanwhile (a finalizer left the room)
    if (script) {
      luaL_unref(script->state(), LUA_REGISTRYINDEX, refs_ref);
      luaL_unref(script->state(), LUA_REGISTRYINDEX, events_ref);
    }
    return;
  }
  if (script && m.refs_ref != LUA_NOREF) luaL_unref(script->state(), LUA_REGISTRYINDEX, m.refs_ref);
  m.refs_ref = refs_ref;
  m.nodes = std::move(nodes);
  m.tree = std::move(tree);  // before its schema: the old tree refers to the old schema
  m.schema = std::move(owned_schema);
  m.waiting = false;
  m.resync_outstanding = false;
  m.stats.seq = m.stats.snapshots == 0 ? header.seq
                                        : m.stats.seq + static_cast<uint16_t>(header.seq - static_cast<uint16_t>(m.stats.seq));
  m.seq = header.seq;
  m.first_patch = true;
  ++m.stats.snapshots;
  send_ack(m);
  arm_timer();  // the keepalive acks
  notify(room, serial, events_ref, event_count, nullptr);
}

void ClientStates::on_patch(Mirror& m, const FrameHeader& header, std::string_view ops) {
  if (m.waiting) {
    if (!m.tree && !m.resync_outstanding) {
      // A patch before any snapshot: the snapshot was lost with a link.
      ++m.stats.gaps;
      fail(m, ResyncReason::gap, "a patch before any snapshot");
      return;
    }
    ++m.stats.ignored;
    return;
  }
  uint16_t expected = static_cast<uint16_t>(m.seq + 1);
  if (header.seq != expected) {
    ++m.stats.gaps;
    fail(m, ResyncReason::gap,
         "patch seq " + std::to_string(header.seq) + " where " + std::to_string(expected) + " was due");
    return;
  }
  std::vector<Change> changes;
  std::string error;
  if (!state::apply_ops(*m.tree, ops, changes, error)) {
    ++m.stats.decode_errors;
    fail(m, ResyncReason::decode, "a patch that does not apply: " + error);
    return;
  }
  if (m.tree->checksum() != header.checksum) {
    ++m.stats.checksum_mismatches;
    fail(m, ResyncReason::checksum, "patch " + std::to_string(header.seq) + ": the checksum does not match");
    return;
  }
  m.seq = header.seq;
  ++m.stats.seq;
  ++m.stats.patches;
  int64_t room = m.room;
  uint64_t serial = m.serial;
  std::shared_ptr<Mirror> keep = mirrors_[room];
  std::vector<std::vector<Key>> paths;
  bool all_changed = false;
  int events_ref = LUA_NOREF;
  size_t event_count = 0;
  ScriptHost* script = owner_.state_script();
  bool ok = !script || m.refs_ref == LUA_NOREF || script->protect("room state patch", [&](lua_State* L) {
    std::vector<Listener> listeners = m.listeners;
    Apply a{L, m.nodes, listeners};
    lua_rawgeti(L, LUA_REGISTRYINDEX, m.refs_ref);
    a.refs = lua_gettop(L);
    lua_newtable(L);
    a.events = lua_gettop(L);
    a.paths = &paths;
    for (const Change& c : changes) a.change(c);
    all_changed = a.too_many_paths;
    event_count = a.event_count;
    events_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
  });
  if (!find(room, serial)) {
    if (script) luaL_unref(script->state(), LUA_REGISTRYINDEX, events_ref);
    return;
  }
  if (!ok) {
    // The tables may be partly updated (the script's memory ran out): a
    // snapshot replaces them.
    fail(m, ResyncReason::requested, "patch " + std::to_string(header.seq) + " could not be mirrored into Lua");
    return;
  }
  uint64_t now = now_ms();
  if (m.first_patch || now - m.last_ack_ms >= kAckIntervalMs) {
    send_ack(m);
  } else {
    m.ack_due = true;
    arm_timer();
  }
  m.first_patch = false;
  notify(room, serial, events_ref, event_count, all_changed ? nullptr : &paths);
}

void ClientStates::notify(int64_t room, uint64_t serial, int events_ref, size_t event_count,
                          std::vector<std::vector<Key>>* paths) {
  ScriptHost* script = owner_.state_script();
  if (!script) return;
  int handle = owner_.state_room_handle(room);
  if (handle != LUA_NOREF) {
    script->invoke("room_state", [&](lua_State* L) {
      int fn = lua_gettop(L);
      lua_rawgeti(L, LUA_REGISTRYINDEX, handle);
      Mirror* m = find(room, serial);
      if (m && m->refs_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->refs_ref);
        lua_rawgeti(L, -1, 0);
        lua_remove(L, -2);
      } else {
        lua_pushnil(L);
      }
      bool want = true;  // a callable object or a C function: cannot tell
      if (lua_type(L, fn) == LUA_TFUNCTION) {
        lua_Debug ar;
        lua_pushvalue(L, fn);
        lua_getinfo(L, ">u", &ar);
        want = ar.nparams >= 3 || ar.isvararg;
      }
      if (!want) return 2;
      if (!paths) {  // everything: the empty path
        lua_createtable(L, 1, 0);
        lua_newtable(L);
        lua_rawseti(L, -2, 1);
        return 3;
      }
      lua_createtable(L, static_cast<int>(paths->size()), 0);
      lua_Integer i = 0;
      for (const std::vector<Key>& path : *paths) {
        lua_createtable(L, static_cast<int>(path.size()), 0);
        lua_Integer j = 0;
        for (const Key& k : path) {
          push_key(L, k);
          lua_rawseti(L, -2, ++j);
        }
        lua_rawseti(L, -2, ++i);
      }
      return 3;
    });
  }
  for (size_t i = 0; i < event_count; ++i) {
    Mirror* m = find(room, serial);
    if (!m) break;
    // Reading existing slots allocates nothing: no protected call needed.
    lua_State* S = script->state();
    lua_rawgeti(S, LUA_REGISTRYINDEX, events_ref);
    lua_rawgeti(S, -1, static_cast<lua_Integer>(i) * 4 + 1);
    auto id = static_cast<uint64_t>(lua_tointeger(S, -1));
    lua_pop(S, 2);
    int fn_ref = LUA_NOREF;
    for (const Listener& l : m->listeners)
      if (l.id == id) fn_ref = l.fn_ref;
    if (fn_ref == LUA_NOREF) continue;  // removed by an earlier listener
    script->call_function("r:on_change listener", [&](lua_State* L) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
      lua_rawgeti(L, LUA_REGISTRYINDEX, events_ref);
      for (lua_Integer slot = 2; slot <= 4; ++slot) lua_rawgeti(L, -1 - static_cast<int>(slot - 2), static_cast<lua_Integer>(i) * 4 + slot);
      lua_remove(L, -4);
      return 4;
    });
  }
  luaL_unref(script->state(), LUA_REGISTRYINDEX, events_ref);
}

void ClientStates::fail(Mirror& m, ResyncReason reason, const std::string& why) {
  complain("room " + std::to_string(m.room) + ": " + why + "; asking for a snapshot (" +
           state::resync_reason_name(reason) + ")");
  if (m.tree) m.tree->clear();
  m.waiting = true;
  m.ack_due = false;
  send_resync(m, reason);
}

void ClientStates::send_resync(Mirror& m, ResyncReason reason) {
  FrameHeader header;
  header.kind = FrameKind::resync;
  header.room = static_cast<uint64_t>(m.room);
  header.reason = reason;
  std::string bytes;
  state::write_header(header, bytes);
  if (owner_.send_state(bytes, true)) ++m.stats.resyncs;
  m.resync_outstanding = true;
  m.resync_sent_ms = now_ms();
  m.last_reason = reason;
  arm_timer();
}

void ClientStates::send_ack(Mirror& m) {
  m.ack_due = false;
  if (m.waiting || !m.tree) return;
  FrameHeader header;
  header.kind = FrameKind::ack;
  header.room = static_cast<uint64_t>(m.room);
  header.seq = m.seq;
  header.checksum = m.tree->checksum();
  std::string bytes;
  state::write_header(header, bytes);
  if (owner_.send_state(bytes, false)) ++m.stats.acks;
  m.last_ack_ms = now_ms();
}

void ClientStates::arm_timer() {
  if (!timer_ || uv_is_active(reinterpret_cast<uv_handle_t*>(timer_.get()))) return;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<ClientStates*>(t->data)->on_timer();
      },
      kAckIntervalMs, kAckIntervalMs);
}

void ClientStates::on_timer() {
  uint64_t now = now_ms();
  bool needed = false;
  for (auto& [room, m] : mirrors_) {
    bool in_step = !m->waiting && m->tree;
    if ((m->ack_due && now - m->last_ack_ms >= kAckIntervalMs) || (in_step && now - m->last_ack_ms >= kAckKeepaliveMs))
      send_ack(*m);
    if (m->waiting && m->resync_outstanding && now - m->resync_sent_ms >= kResyncRetryMs)
      send_resync(*m, m->last_reason);
    needed = needed || in_step || m->ack_due || (m->waiting && m->resync_outstanding);
  }
  if (!needed && timer_) uv_timer_stop(timer_.get());
}

void ClientStates::release_mirror(Mirror& m) {
  ScriptHost* script = owner_.state_script();
  // Clearing registry entries allocates nothing: safe outside a protected call.
  if (script) {
    lua_State* L = script->state();
    if (m.refs_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, m.refs_ref);
    for (Listener& l : m.listeners) luaL_unref(L, LUA_REGISTRYINDEX, l.fn_ref);
  }
  m.refs_ref = LUA_NOREF;
  m.listeners.clear();
}

void ClientStates::forget(int64_t room) {
  auto it = mirrors_.find(room);
  if (it == mirrors_.end()) return;
  std::shared_ptr<Mirror> m = std::move(it->second);
  mirrors_.erase(it);
  release_mirror(*m);
}

void ClientStates::forget_all() {
  auto all = std::move(mirrors_);
  mirrors_.clear();
  for (auto& [room, m] : all) release_mirror(*m);
}

void ClientStates::forget_script() { mirrors_.clear(); }

void ClientStates::on_session() { complaints_ = 0; }

void ClientStates::on_resumed(const std::vector<int64_t>& rooms) {
  // Only rooms the server has sent state for: it refuses (and counts
  // against the session) a resync before any state was sent.
  for (int64_t room : rooms) {
    auto it = mirrors_.find(room);
    if (it == mirrors_.end() || !it->second->heard) continue;
    Mirror& m = *it->second;
    if (m.waiting && m.resync_outstanding) continue;
    if (m.tree) m.tree->clear();
    m.waiting = true;
    m.ack_due = false;
    send_resync(m, ResyncReason::requested);
  }
}

void ClientStates::push_state(lua_State* L, int64_t room) {
  auto it = mirrors_.find(room);
  if (it == mirrors_.end() || it->second->refs_ref == LUA_NOREF) {
    lua_pushnil(L);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, it->second->refs_ref);
  lua_rawgeti(L, -1, 0);
  lua_remove(L, -2);
}

uint64_t ClientStates::add_listener(lua_State* L, int64_t room, int pattern_index, int fn_index) {
  luaL_checktype(L, pattern_index, LUA_TTABLE);
  luaL_checktype(L, fn_index, LUA_TFUNCTION);
  lua_Unsigned n = lua_rawlen(L, pattern_index);
  if (n == 0 || n > kMaxPatternKeys)
    luaL_error(L, "r:on_change: the pattern must be an array of 1 to %d keys", static_cast<int>(kMaxPatternKeys));
  Listener l;
  for (lua_Unsigned i = 1; i <= n; ++i) {
    lua_rawgeti(L, pattern_index, static_cast<lua_Integer>(i));
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len = 0;
      const char* s = lua_tolstring(L, -1, &len);
      std::string_view key(s, len);
      if (key == "*") {
        l.pattern.emplace_back();
        l.last_wild = static_cast<int>(i - 1);
      } else {
        l.pattern.emplace_back(Key::of(key));
      }
    } else if (lua_isinteger(L, -1)) {
      l.pattern.emplace_back(Key::of(static_cast<int64_t>(lua_tointeger(L, -1))));
    } else if (lua_type(L, -1) == LUA_TNUMBER && std::floor(lua_tonumber(L, -1)) == lua_tonumber(L, -1) &&
               std::fabs(lua_tonumber(L, -1)) < 9.2e18) {
      l.pattern.emplace_back(Key::of(static_cast<int64_t>(lua_tonumber(L, -1))));
    } else {
      luaL_error(L, "r:on_change: pattern key %d is a %s (strings, integers and \"*\" only)", static_cast<int>(i),
                 luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
  Mirror& m = mirror_for(room);
  if (m.listeners.size() >= kMaxListeners) return 0;
  l.id = ++m.last_listener;
  m.listeners.reserve(m.listeners.size() + 1);
  lua_pushvalue(L, fn_index);
  l.fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  m.listeners.push_back(std::move(l));
  return m.listeners.back().id;
}

bool ClientStates::remove_listener(lua_State* L, int64_t room, uint64_t id) {
  auto it = mirrors_.find(room);
  if (it == mirrors_.end()) return false;
  auto& listeners = it->second->listeners;
  for (auto l = listeners.begin(); l != listeners.end(); ++l) {
    if (l->id != id) continue;
    luaL_unref(L, LUA_REGISTRYINDEX, l->fn_ref);
    listeners.erase(l);
    return true;
  }
  return false;
}

ClientStates::Stats ClientStates::stats(int64_t room) const {
  auto it = mirrors_.find(room);
  return it == mirrors_.end() ? Stats{} : it->second->stats;
}

}  // namespace nshost::rooms
