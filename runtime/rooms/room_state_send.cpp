// RoomState's sending half (runtime/rooms/room_state.hpp): views, snapshots
// and patches. The diff and the acks are in room_state.cpp.
#include <algorithm>

#include "runtime/core/log.hpp"
#include "runtime/rooms/room_state.hpp"

namespace nshost::rooms {

using state::Key;
using state::StateTree;

namespace {

constexpr uint32_t kNone = StateTree::Node::kNone;

uint16_t low16(uint64_t seq) { return static_cast<uint16_t>(seq & 0xffffu); }

}  // namespace

void RoomState::evaluate_view(lua_State* L, uint64_t session_id) {
  auto it = clients_.find(session_id);
  if (it == clients_.end() || it->second->view != Client::View::function) return;
  Client& c = *it->second;
  c.evaluated = false;
  luaL_checkstack(L, 8, "room view");
  push_state_table(L);
  const int state_index = lua_gettop(L);
  std::string failure;
  try {
    c.next_shown.clear();
    c.hidden_sum = 0;
    auto push_key = [&](const Key& k) {
      if (k.kind == Key::Kind::integer) lua_pushinteger(L, static_cast<lua_Integer>(k.integer));
      else lua_pushlstring(L, k.string.data(), k.string.size());
    };
    for (const auto& [ckey, centry] : tree_->root().entries) {
      if (!centry.is_node()) continue;
      const StateTree::Node* collection = tree_->node(centry.child);
      if (!collection) continue;
      // The collection's Lua table (nil if room.state is not a table).
      if (lua_type(L, state_index) == LUA_TTABLE) {
        push_key(ckey);
        lua_rawget(L, state_index);
      } else {
        lua_pushnil(L);
      }
      const int collection_index = lua_gettop(L);
      for (const auto& [ekey, eentry] : collection->entries) {
        if (!eentry.is_node()) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, c.fn_ref);
        push_key(ckey);
        push_key(ekey);
        if (lua_type(L, collection_index) == LUA_TTABLE) {
          push_key(ekey);
          lua_rawget(L, collection_index);
        } else {
          lua_pushnil(L);
        }
        lua_call(L, 3, 1);
        if (lua_toboolean(L, -1)) c.next_shown.insert(eentry.child);
        else c.hidden_sum += eentry.contribution;
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    c.evaluated = true;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  lua_settop(L, state_index - 1);
  if (!failure.empty()) luaL_error(L, "room view: %s", failure.c_str());
}

void RoomState::admit_all(Client& c) {
  c.next_shown.clear();
  c.hidden_sum = 0;
  const bool fallback = c.view == Client::View::function && !c.evaluated;
  for (const auto& [ckey, centry] : tree_->root().entries) {
    if (!centry.is_node()) continue;
    const StateTree::Node* collection = tree_->node(centry.child);
    if (!collection) continue;
    for (const auto& [ekey, eentry] : collection->entries) {
      if (!eentry.is_node()) continue;
      bool admitted = c.view == Client::View::none ? true
                      : fallback                   ? c.shown.count(eentry.child) != 0
                                                   : c.ids.count(ekey) != 0;
      if (admitted) c.next_shown.insert(eentry.child);
      else c.hidden_sum += eentry.contribution;
    }
  }
}

void RoomState::shown_all(Client& c) const {
  c.shown.clear();
  if (!c.sent_any) return;
  for (const auto& [ckey, centry] : tree_->root().entries) {
    if (!centry.is_node()) continue;
    if (const StateTree::Node* collection = tree_->node(centry.child))
      for (const auto& [ekey, eentry] : collection->entries)
        if (eentry.is_node()) c.shown.insert(eentry.child);
  }
}

bool RoomState::queue(Client& c, std::string_view frame) {
  ENetPacket* packet = enet_packet_create(frame.data(), frame.size(), ENET_PACKET_FLAG_RELIABLE);
  if (!packet) {
    c.want_snapshot = true;
    return false;
  }
  bool ok = link_.queue_state_packet(c.session_id, packet);
  if (packet->referenceCount == 0) enet_packet_destroy(packet);
  if (!ok) {
    c.want_snapshot = true;
    return false;
  }
  stats_.bytes += frame.size();
  c.sent_any = true;
  return true;
}

void RoomState::send_snapshot(Client& c, int64_t now_ms, uint64_t shared_target) {
  const bool viewed = c.view != Client::View::none;
  if (viewed && !(c.view == Client::View::function && c.evaluated)) admit_all(c);
  // Each seq names one frame for a client (its acks stay unambiguous) and
  // never goes back. A client without a view lands in step with the shared
  // patches when it can: at the seq the shared patches are at after this
  // interval.
  uint64_t seq = c.seq + 1;
  if (!viewed && (shared_target > c.seq || !c.sent_any)) seq = shared_target;
  uint32_t checksum = static_cast<uint32_t>(viewed ? tree_->sum() - c.hidden_sum : tree_->sum());
  snapshot_.clear();
  state::FrameHeader header;
  header.kind = state::FrameKind::snapshot;
  header.room = room_id_;
  header.seq = low16(seq);
  header.checksum = checksum;
  state::write_header(header, snapshot_, schema_.get());
  if (viewed) {
    const StateTree& tree = *tree_;
    state::Admit admit = [&tree, &c](uint32_t collection, const Key& key) {
      const StateTree::Entry* e = tree.find(collection, key);
      return !e || !e->is_node() || c.next_shown.count(e->child) != 0;
    };
    state::write_snapshot_ops(*tree_, snapshot_, &admit);
  } else {
    state::write_snapshot_ops(*tree_, snapshot_);
  }
  c.want_snapshot = false;
  if (!queue(c, snapshot_)) return;
  ++stats_.snapshots;
  c.seq = c.base = seq;
  c.checksum = checksum;
  c.last_ack_ms = now_ms;
  c.evaluated = false;
  if (viewed) c.shown.swap(c.next_shown);
}

void RoomState::check_stall(Client& c, int64_t now_ms) {
  if (c.stalled) return;
  uint64_t acked = std::max(c.acked, c.base);
  // Silence counts only while a frame waits for its ack: a client of an idle
  // room has nothing to ack.
  if (acked >= c.seq) {
    c.caught_up_ms = now_ms;
    return;
  }
  const int64_t waiting_since_ms = std::max(c.last_ack_ms, c.caught_up_ms);
  bool silent = now_ms - waiting_since_ms > static_cast<int64_t>(ack_timeout_ms_);
  if (!silent && c.seq - acked <= kMaxUnacked) return;
  c.stalled = true;
  ++stats_.stalled;
  log_write(LogLevel::info, log_tag_,
            "session " + std::to_string(c.session_id) + ": no state patches until it acks (" +
                (silent ? "no ack for " + std::to_string(now_ms - waiting_since_ms) + " ms, --state-ack-timeout"
                        : std::to_string(c.seq - acked) + " patches unacknowledged") +
                ")");
}

void RoomState::send(int64_t now_ms) {
  now_ms_ = now_ms;
  const size_t changes = change_count_;
  change_count_ = 0;
  const uint32_t checksum = tree_->checksum();

  // Which clients take which path this interval.
  bool any_viewed = false;
  shared_.clear();
  own_.clear();
  snapshots_.clear();
  for (auto& [id, cp] : clients_) {
    Client& c = *cp;
    if (!c.started) continue;
    check_stall(c, now_ms);
    if (c.stalled) continue;
    if (c.want_snapshot) snapshots_.push_back(&c);
    else if (c.view != Client::View::none) any_viewed = true;
    else if (changes > 0) (c.seq == shared_seq_ ? shared_ : own_).push_back(&c);
  }
  // A snapshot stands for this interval's patch.
  const uint64_t shared_target = shared_.empty() ? shared_seq_ : shared_seq_ + 1;
  for (Client* c : snapshots_) send_snapshot(*c, now_ms, shared_target);

  // One encoding of every changed node and one packet, shared by the
  // clients without a view.
  if (!shared_.empty() || !own_.empty()) {
    state::FrameHeader header;
    header.kind = state::FrameKind::patch;
    header.room = room_id_;
    header.seq = low16(shared_seq_ + 1);
    header.checksum = checksum;
    frame_.clear();
    state::write_header(header, frame_);
    const size_t ops_begin = frame_.size();
    for (size_t i = 0; i < changes; ++i) {
      const NodeChange& n = changes_[i];
      state::write_update(*tree_, n.ref, n.set, n.removed, frame_);
    }
    if (!shared_.empty()) {
      ENetPacket* packet = enet_packet_create(frame_.data(), frame_.size(), ENET_PACKET_FLAG_RELIABLE);
      bool advanced = false;
      for (Client* c : shared_) {
        if (!packet || !link_.queue_state_packet(c->session_id, packet)) {
          c->want_snapshot = true;
          continue;
        }
        advanced = true;
        c->sent_any = true;
        c->seq = shared_seq_ + 1;
        c->checksum = checksum;
        ++stats_.patches;
        stats_.bytes += frame_.size();
      }
      if (packet && packet->referenceCount == 0) enet_packet_destroy(packet);
      if (advanced) ++shared_seq_;
    }
    // Out of step (a seq of their own): the same ops under their own header.
    for (Client* c : own_) {
      snapshot_.clear();
      header.seq = low16(c->seq + 1);
      state::write_header(header, snapshot_);
      snapshot_.append(frame_, ops_begin, std::string::npos);
      if (!queue(*c, snapshot_)) continue;
      ++c->seq;
      c->checksum = checksum;
      ++stats_.patches;
    }
  }

  if (any_viewed) {
    // Each changed entity's updates, encoded once for every client shown it.
    entity_ops_.clear();
    segments_.clear();
    for (size_t i = 0; i < changes; ++i) {
      const NodeChange& n = changes_[i];
      if (n.entity == kNone) continue;
      size_t begin = entity_ops_.size();
      state::write_update(*tree_, n.ref, n.set, n.removed, entity_ops_);
      segments_.push_back(Segment{n.entity, begin, entity_ops_.size()});
    }
    viewed_changes_ = changes;
    for (auto& [id, cp] : clients_) {
      Client& c = *cp;
      if (c.started && !c.stalled && !c.want_snapshot && c.view != Client::View::none) send_view_patch(c, now_ms);
    }
  }
}

void RoomState::send_view_patch(Client& c, int64_t) {
  if (!(c.view == Client::View::function && c.evaluated)) admit_all(c);
  c.evaluated = false;
  const StateTree& tree = *tree_;
  state::Admit admit = [&tree, &c](uint32_t collection, const Key& key) {
    const StateTree::Entry* e = tree.find(collection, key);
    return !e || !e->is_node() || c.next_shown.count(e->child) != 0;
  };
  const uint32_t checksum = static_cast<uint32_t>(tree_->sum() - c.hidden_sum);
  snapshot_.clear();
  state::FrameHeader header;
  header.kind = state::FrameKind::patch;
  header.room = room_id_;
  header.seq = low16(c.seq + 1);
  header.checksum = checksum;
  state::write_header(header, snapshot_);
  const size_t header_end = snapshot_.size();
  const size_t changes = viewed_changes_;

  // The root's own changes (a new collection is written with its admitted
  // entities only).
  for (size_t i = 0; i < changes; ++i) {
    const NodeChange& n = changes_[i];
    if (n.depth == 0) state::write_update(tree, n.ref, n.set, n.removed, snapshot_, &admit);
  }
  // Each collection: its scalars, the entities that appeared or left the
  // view, and the removals of what the client was shown.
  for (const auto& [ckey, centry] : tree.root().entries) {
    if (!centry.is_node()) continue;
    if (first_fresh_ref_ != kNone && centry.child >= first_fresh_ref_ && changes > 0) continue;  // written whole above
    const StateTree::Node* collection = tree.node(centry.child);
    if (!collection) continue;
    keys_set_.clear();
    keys_removed_.clear();
    for (size_t i = 0; i < changes; ++i) {
      const NodeChange& n = changes_[i];
      if (n.depth != 1 || n.ref != centry.child) continue;
      for (size_t k = 0; k < n.set.size(); ++k) {
        const StateTree::Entry* e = tree.find(n.ref, n.set[k]);
        if (!e) continue;
        if (!e->is_node()) keys_set_.push_back(n.set[k]);
        else if (n.set_old[k] != kNone && c.shown.count(n.set_old[k]) && !c.next_shown.count(e->child))
          keys_removed_.push_back(n.set[k]);
      }
      for (size_t k = 0; k < n.removed.size(); ++k)
        if (n.removed_old[k] == kNone || c.shown.count(n.removed_old[k])) keys_removed_.push_back(n.removed[k]);
    }
    for (const auto& [ekey, eentry] : collection->entries) {
      if (!eentry.is_node()) continue;
      bool now = c.next_shown.count(eentry.child) != 0;
      bool before = c.shown.count(eentry.child) != 0;
      if (now && !before) keys_set_.push_back(ekey);
      else if (!now && before) keys_removed_.push_back(ekey);
    }
    if (!keys_set_.empty() || !keys_removed_.empty())
      state::write_update(tree, centry.child, keys_set_, keys_removed_, snapshot_, &admit);
  }
  // The entities it was and is shown that changed.
  for (const Segment& s : segments_)
    if (c.shown.count(s.entity) && c.next_shown.count(s.entity))
      snapshot_.append(entity_ops_, s.begin, s.end - s.begin);

  c.shown.swap(c.next_shown);
  if (snapshot_.size() == header_end) return;  // its view did not change
  if (!queue(c, snapshot_)) return;
  ++c.seq;
  c.checksum = checksum;
  ++stats_.patches;
}

}  // namespace nshost::rooms
