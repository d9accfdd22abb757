#include "runtime/rooms/room_state.hpp"

#include <algorithm>
#include <cmath>
#include <exception>

#include "runtime/core/log.hpp"

namespace nshost::rooms {

using state::Key;
using state::Scalar;
using state::StateTree;

namespace {

constexpr uint32_t kNone = StateTree::Node::kNone;
// Entries walked between two looks at the handler's deadline.
constexpr uint32_t kDeadlineCheckEvery = 1024;
// Paths remembered for the error log's rate limit.
constexpr size_t kMaxErrorPaths = 1024;

// A Lua key as a state key: strings, integers, floats with an integral value.
bool read_key(lua_State* L, int index, Key& key) {
  switch (lua_type(L, index)) {
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      key.kind = Key::Kind::string;
      key.string.assign(s, n);
      return true;
    }
    case LUA_TNUMBER: {
      lua_Integer i = 0;
      if (lua_isinteger(L, index)) {
        i = lua_tointeger(L, index);
      } else {
        double d = lua_tonumber(L, index);
        // Lua already normalizes integral float keys; this catches the rest.
        if (!(d >= -9.2233720368547758e18 && d < 9.2233720368547758e18) || std::floor(d) != d) return false;
        i = static_cast<lua_Integer>(d);
      }
      key.kind = Key::Kind::integer;
      key.integer = i;
      key.string.clear();
      return true;
    }
    default:
      return false;
  }
}

bool is_identifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

void append_key(std::string& out, const Key& key) {
  if (key.kind == Key::Kind::integer) {
    out += "[" + std::to_string(key.integer) + "]";
  } else if (is_identifier(key.string)) {
    out += "." + key.string;
  } else {
    out += "[\"";
    for (char c : key.string.substr(0, 64)) out += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
    out += "\"]";
  }
}

uint16_t low16(uint64_t seq) { return static_cast<uint16_t>(seq & 0xffffu); }

}  // namespace

RoomState::RoomState(StateLink& link, uint64_t room_id, std::string log_tag, uint32_t ack_timeout_ms)
    : link_(link),
      room_id_(room_id),
      log_tag_(std::move(log_tag)),
      ack_timeout_ms_(ack_timeout_ms),
      schema_(std::make_unique<state::Schema>()),
      tree_(std::make_unique<StateTree>(*schema_, true)) {
  // Sized once: diff_node holds references into it while it recurses.
  path_.resize(state::kMaxDepth + 2);
}

RoomState::~RoomState() = default;

bool RoomState::define(std::unique_ptr<state::Type> root, std::string& error) {
  if (frozen_) {
    error = "the state's schema is fixed once a client joined or the state was sent";
    return false;
  }
  std::optional<state::Schema> checked = state::Schema::from_type(std::move(root), error);
  if (!checked) return false;
  auto schema = std::make_unique<state::Schema>(std::move(*checked));
  auto tree = std::make_unique<StateTree>(*schema, true);
  tree_ = std::move(tree);
  schema_ = std::move(schema);
  return true;
}

void RoomState::report(const std::string& path, const std::string& message) {
  ++stats_.errors;
  last_error_ = path + ": " + message;
  int64_t now = now_ms_;
  auto it = error_log_ms_.find(path);
  if (it != error_log_ms_.end() && now - it->second < kErrorIntervalMs) return;
  if (it == error_log_ms_.end()) {
    if (error_log_ms_.size() >= kMaxErrorPaths) error_log_ms_.clear();
    error_log_ms_.emplace(path, now);
  } else {
    it->second = now;
  }
  log_write(LogLevel::error, log_tag_, "error in room.state: " + path + ": " + message + " (not sent)");
  link_.on_state_error();
}

std::string RoomState::path_string(uint32_t depth, const Key* last) const {
  std::string out = "room.state";
  for (uint32_t i = 0; i < depth; ++i) append_key(out, path_[i]);
  if (last) append_key(out, *last);
  return out;
}

size_t RoomState::take_record(uint32_t ref, uint32_t depth, uint32_t entity) {
  if (change_count_ == changes_.size()) changes_.emplace_back();
  NodeChange& c = changes_[change_count_];
  c.ref = ref;
  c.depth = depth;
  c.entity = entity;
  c.set.clear();
  c.removed.clear();
  c.set_old.clear();
  c.removed_old.clear();
  return change_count_++;
}

void RoomState::diff(lua_State* L, int64_t now_ms, const ScriptHost* host) {
  now_ms_ = now_ms;
  host_ = host;
  frozen_ = true;
  ++generation_;
  change_count_ = 0;
  first_fresh_ref_ = kNone;
  walked_ = 0;
  push_state_table(L);
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    report("room.state", "is not a table");
    return;
  }
  std::string failure;
  try {
    diff_node(L, lua_gettop(L), StateTree::kRoot, 0, kNone, false);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  lua_pop(L, 1);
  if (!failure.empty()) luaL_error(L, "room.state: %s", failure.c_str());
}

void RoomState::push_state_table(lua_State* L) const {
  lua_rawgeti(L, LUA_REGISTRYINDEX, room_table_ref_);
  if (lua_type(L, -1) != LUA_TTABLE) return;
  lua_pushliteral(L, "state");
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

void RoomState::diff_node(lua_State* L, int table, uint32_t ref, uint32_t depth, uint32_t entity, bool fresh) {
  luaL_checkstack(L, 4, "room.state");
  size_t record = SIZE_MAX;
  auto rec = [&]() -> NodeChange& {
    if (record == SIZE_MAX) record = take_record(ref, depth, entity);
    return changes_[record];
  };
  Key& key = path_[depth];
  std::string error;
  size_t seen = 0;
  auto keep = [&](StateTree::Entry* e) {
    if (e && e->stamp != generation_) {
      e->stamp = generation_;
      ++seen;
    }
  };
  StateTree::Node* node_mut = tree_->node(ref);  // nodes stay put while others come and go
  const StateTree::Node* node = node_mut;
  const bool is_struct =
      node->type->kind == state::Type::Kind::structure && node->fields.size() == node->type->fields.size();
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    if (++walked_ % kDeadlineCheckEvery == 0 && host_ && host_->timed_out())
      luaL_error(L, "room.state: the diff ran past --handler-timeout");
    if (!read_key(L, -2, key)) {
      report(path_string(depth, nullptr), std::string("a key of type ") + luaL_typename(L, -2) +
                                              " (keys are strings or integers)");
      lua_pop(L, 1);
      continue;
    }
    const state::Type* type = nullptr;
    StateTree::Entry* e = nullptr;
    if (is_struct) {
      // Typed fields by index: no hashing of the key.
      int i = key.kind == Key::Kind::string ? node->type->field_index(key.string) : -1;
      if (i >= 0) {
        type = node->type->fields[static_cast<size_t>(i)].second.get();
        e = node_mut->fields[static_cast<size_t>(i)];
      }
    } else {
      type = state::Schema::child_type(*node->type, key);
      auto found = node_mut->entries.find(key);
      e = found == node_mut->entries.end() ? nullptr : &found->second;
    }
    if (!type) {
      report(path_string(depth, &key), "no such field in room.define_state's schema");
      lua_pop(L, 1);
      continue;
    }
    int vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      if (type->is_scalar()) {
        report(path_string(depth, &key), std::string("a table is not a ") + state::type_name(type->kind));
        keep(e);
        lua_pop(L, 1);
        continue;
      }
      if (depth + 1 > state::kMaxDepth) {
        report(path_string(depth, &key), "nested deeper than " + std::to_string(state::kMaxDepth) + " tables (a cycle?)");
        keep(e);
        lua_pop(L, 1);
        continue;
      }
      const uint32_t child_depth = depth + 1;
      if (e && e->is_node()) {
        keep(e);
        uint32_t child = e->child;
        diff_node(L, lua_gettop(L), child, child_depth, child_depth == 2 ? child : entity, fresh);
      } else {
        uint32_t child = tree_->allocate_ref();
        if (first_fresh_ref_ == kNone) first_fresh_ref_ = child;
        if (!tree_->set_node(ref, key, child, error)) {
          report(path_string(depth, &key), error);
          keep(e);
          lua_pop(L, 1);
          continue;
        }
        keep(tree_->find(ref, key));
        if (!fresh) {
          NodeChange& r = rec();
          r.set.push_back(key);
          r.set_old.push_back(kNone);
        }
        diff_node(L, lua_gettop(L), child, child_depth, child_depth == 2 ? child : entity, true);
      }
      lua_pop(L, 1);
      continue;
    }
    if (type->kind == state::Type::Kind::structure || type->kind == state::Type::Kind::map) {
      report(path_string(depth, &key), std::string("a ") + luaL_typename(L, -1) + " is not a " +
                                           state::type_name(type->kind));
      keep(e);
      lua_pop(L, 1);
      continue;
    }
    // An unchanged string: compared in place, no copy.
    if (vt == LUA_TSTRING && e && !e->is_node() && e->scalar.kind == Scalar::Kind::string) {
      size_t n = 0;
      const char* s = lua_tolstring(L, -1, &n);
      if (std::string_view(e->scalar.string) == std::string_view(s, n)) {
        keep(e);
        lua_pop(L, 1);
        continue;
      }
    }
    // scalar_ is scratch: what a string left in it must not ride along with
    // the next number into the tree.
    if (vt != LUA_TSTRING) scalar_.string.clear();
    switch (vt) {
      case LUA_TBOOLEAN:
        scalar_.kind = Scalar::Kind::boolean;
        scalar_.boolean = lua_toboolean(L, -1) != 0;
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
          scalar_.kind = Scalar::Kind::integer;
          scalar_.integer = lua_tointeger(L, -1);
        } else {
          scalar_.kind = Scalar::Kind::number;
          scalar_.number = lua_tonumber(L, -1);
        }
        break;
      case LUA_TSTRING: {
        size_t n = 0;
        const char* s = lua_tolstring(L, -1, &n);
        scalar_.kind = Scalar::Kind::string;
        scalar_.string.assign(s, n);
        break;
      }
      default:
        report(path_string(depth, &key), std::string("a ") + luaL_typename(L, -1) + " cannot be sent");
        keep(e);
        lua_pop(L, 1);
        continue;
    }
    lua_pop(L, 1);
    if (type->kind != state::Type::Kind::any && !state::Schema::canonicalize(*type, scalar_, error)) {
      report(path_string(depth, &key), error);
      keep(e);
      continue;
    }
    const Scalar& value = scalar_;
    if (e && !e->is_node() && e->scalar == value) {
      keep(e);
      continue;
    }
    uint32_t old = e ? e->child : kNone;
    if (e && !e->is_node()) {
      // A changed scalar, already checked and canonical: no second lookup.
      if (!tree_->replace_scalar(*node_mut, *e, value, error)) {
        report(path_string(depth, &key), error);
        keep(e);
        continue;
      }
      keep(e);
    } else {
      if (!tree_->set_scalar(ref, key, value, error)) {
        report(path_string(depth, &key), error);
        keep(e);
        continue;
      }
      keep(tree_->find(ref, key));
    }
    if (!fresh) {
      NodeChange& r = rec();
      r.set.push_back(key);
      r.set_old.push_back(old);
    }
  }
  if (node->entries.size() <= seen) return;
  stale_.clear();
  for (const auto& [k, entry] : node->entries)
    if (entry.stamp != generation_) stale_.push_back(k);
  for (const Key& k : stale_) {
    const StateTree::Entry* e = tree_->find(ref, k);
    uint32_t old = e ? e->child : kNone;
    if (!tree_->erase(ref, k, error)) {
      report(path_string(depth, &k), error);
      continue;
    }
    if (!fresh) {
      NodeChange& r = rec();
      r.removed.push_back(k);
      r.removed_old.push_back(old);
    }
  }
}

void RoomState::add_client(uint64_t session_id, int64_t now_ms) {
  frozen_ = true;
  auto c = std::make_unique<Client>();
  c->session_id = session_id;
  c->seq = c->base = c->acked = shared_seq_;
  c->last_ack_ms = now_ms;
  clients_[session_id] = std::move(c);
}

void RoomState::start_client(uint64_t session_id, int64_t now_ms) {
  auto it = clients_.find(session_id);
  if (it == clients_.end() || it->second->started) return;
  Client& c = *it->second;
  c.started = true;
  send_snapshot(c, now_ms, shared_seq_);
}

void RoomState::remove_client(uint64_t session_id, lua_State* L) {
  auto it = clients_.find(session_id);
  if (it == clients_.end()) return;
  if (L && it->second->fn_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, it->second->fn_ref);
  clients_.erase(it);
}

bool RoomState::any_started() const {
  for (const auto& [id, c] : clients_)
    if (c->started) return true;
  return false;
}

std::unordered_set<Key, state::KeyHash>* RoomState::view_ids(lua_State* L, uint64_t session_id) {
  auto it = clients_.find(session_id);
  if (it == clients_.end()) return nullptr;
  Client& c = *it->second;
  if (c.view != Client::View::ids) {
    if (c.fn_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c.fn_ref);
    c.fn_ref = LUA_NOREF;
    c.evaluated = false;
    // From everything (or a function's admission) to the id set: the
    // difference goes out as leaves and enters at the next interval.
    if (c.view == Client::View::none) shown_all(c);  // what it holds now
    c.view = Client::View::ids;
    c.ids.clear();
  }
  return &c.ids;
}

std::unordered_set<Key, state::KeyHash>* RoomState::find_view_ids(uint64_t session_id) {
  auto it = clients_.find(session_id);
  if (it == clients_.end() || it->second->view != Client::View::ids) return nullptr;
  return &it->second->ids;
}

bool RoomState::set_view_function(lua_State* L, uint64_t session_id, int fn_ref) {
  auto it = clients_.find(session_id);
  if (it == clients_.end()) {
    if (fn_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
    return false;
  }
  Client& c = *it->second;
  if (c.fn_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c.fn_ref);
  c.fn_ref = fn_ref;
  c.evaluated = false;
  if (fn_ref == LUA_NOREF) {
    // Everything again: a snapshot carries what it was not shown.
    bool had = c.view != Client::View::none;
    c.view = Client::View::none;
    c.ids.clear();
    c.shown.clear();
    if (had && c.started) c.want_snapshot = true;
  } else {
    if (c.view == Client::View::none) shown_all(c);  // what it holds now
    c.view = Client::View::function;
    any_view_function_ = true;
  }
  return true;
}

void RoomState::view_function_clients(std::vector<uint64_t>& out) const {
  out.clear();
  if (!any_view_function_) return;
  for (const auto& [id, c] : clients_)
    if (c->view == Client::View::function && c->started && !c->stalled) out.push_back(id);
}

std::optional<std::string> RoomState::on_ack(uint64_t session_id, uint16_t seq, uint32_t checksum, int64_t now_ms) {
  auto it = clients_.find(session_id);
  if (it == clients_.end() || !it->second->started) return std::string("state.ack before any state was sent");
  Client& c = *it->second;
  // Serial-number arithmetic on 16 bits: an ack ahead of the last frame sent
  // names a seq never sent.
  uint16_t behind = static_cast<uint16_t>(low16(c.seq) - seq);
  if (behind >= 0x8000u || behind > c.seq)
    return "state.ack of seq " + std::to_string(seq) + ", which was not sent (last sent " +
           std::to_string(low16(c.seq)) + ")";
  uint64_t full = c.seq - behind;
  c.last_ack_ms = now_ms;
  if (full > c.acked) c.acked = full;
  if (c.stalled) {
    c.stalled = false;
    c.want_snapshot = true;
    log_write(LogLevel::info, log_tag_, "session " + std::to_string(session_id) + " acked again: a snapshot follows");
    return std::nullopt;
  }
  if (behind == 0 && checksum != c.checksum && !c.want_snapshot) {
    ++stats_.divergences;
    c.want_snapshot = true;
    log_write(LogLevel::warn, log_tag_,
              "session " + std::to_string(session_id) + " acked seq " + std::to_string(seq) +
                  " with another checksum: a snapshot follows");
  }
  return std::nullopt;
}

std::optional<std::string> RoomState::on_resync(uint64_t session_id, state::ResyncReason reason, int64_t now_ms) {
  auto it = clients_.find(session_id);
  if (it == clients_.end() || !it->second->started) return std::string("state.resync before any state was sent");
  Client& c = *it->second;
  if (now_ms - c.last_resync_ms < kResyncIntervalMs) {
    ++stats_.resyncs_ignored;
    return std::nullopt;
  }
  c.last_resync_ms = now_ms;
  c.last_ack_ms = now_ms;
  c.stalled = false;
  c.want_snapshot = true;
  ++stats_.resyncs;
  log_write(LogLevel::debug, log_tag_,
            "session " + std::to_string(session_id) + " asked for a resync (" + state::resync_reason_name(reason) + ")");
  return std::nullopt;
}

}  // namespace nshost::rooms
