// The stack work of mirroring a state frame into the script's Lua tables
// (ClientStates::Apply, runtime/rooms/client_state_mirror.hpp).
#include <algorithm>

#include "runtime/rooms/client_state_mirror.hpp"

namespace nshost::rooms {

using state::Change;
using state::Key;
using state::Scalar;
using state::StateTree;

namespace client_state_detail {

void push_key(lua_State* L, const Key& key) {
  if (key.kind == Key::Kind::integer) lua_pushinteger(L, static_cast<lua_Integer>(key.integer));
  else lua_pushlstring(L, key.string.data(), key.string.size());
}

void push_scalar(lua_State* L, const Scalar& v) {
  switch (v.kind) {
    case Scalar::Kind::boolean: lua_pushboolean(L, v.boolean); return;
    case Scalar::Kind::integer: lua_pushinteger(L, static_cast<lua_Integer>(v.integer)); return;
    case Scalar::Kind::number: lua_pushnumber(L, v.number); return;
    case Scalar::Kind::string: lua_pushlstring(L, v.string.data(), v.string.size()); return;
  }
}

}  // namespace client_state_detail

using client_state_detail::LuaNode;
using client_state_detail::kMaxListedChanges;
using client_state_detail::push_key;
using client_state_detail::push_scalar;

std::vector<Key> ClientStates::Apply::path_of(uint32_t ref) const {
  std::vector<Key> path;
  for (size_t guard = 0; ref != StateTree::kRoot && guard <= state::kMaxDepth + 1; ++guard) {
    auto it = nodes.find(ref);
    if (it == nodes.end()) break;
    path.push_back(it->second.key);
    ref = it->second.parent;
  }
  return {path.rbegin(), path.rend()};
}

void ClientStates::Apply::event(const Listener& l, int key_i, int new_i, int old_i) {
  lua_Integer base = static_cast<lua_Integer>(event_count) * 4;
  lua_pushinteger(L, static_cast<lua_Integer>(l.id));
  lua_rawseti(L, events, base + 1);
  if (key_i) lua_pushvalue(L, key_i);
  else push_key(L, *l.pattern.back());
  lua_rawseti(L, events, base + 2);
  lua_pushvalue(L, new_i);
  lua_rawseti(L, events, base + 3);
  lua_pushvalue(L, old_i);
  lua_rawseti(L, events, base + 4);
  ++event_count;
}

// Raw, deep equality (the script may have written into its tables: a
// cycle ends at the depth bound as "different").
bool ClientStates::Apply::same(int a, int b, int depth) {
  if (lua_rawequal(L, a, b)) return true;
  if (!lua_istable(L, a) || !lua_istable(L, b) || depth > static_cast<int>(kMaxPatternKeys)) return false;
  luaL_checkstack(L, 6, "state mirror");
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, a)) {  // [k v]
    ++count;
    lua_pushvalue(L, -2);
    lua_rawget(L, b);  // [k v bv]
    bool s = same(lua_absindex(L, -2), lua_absindex(L, -1), depth + 1);
    lua_pop(L, 2);
    if (!s) {
      lua_pop(L, 1);
      return false;
    }
  }
  lua_pushnil(L);
  while (lua_next(L, b)) {
    lua_pop(L, 1);
    if (count-- == 0) {
      lua_pop(L, 1);
      return false;
    }
  }
  return count == 0;
}

// Pushes t[key] (raw) for the value at `t`, nil when it is not a table.
void ClientStates::Apply::child(int t, int key) {
  if (lua_istable(L, t)) {
    lua_pushvalue(L, key);
    lua_rawget(L, t);
  } else {
    lua_pushnil(L);
  }
}

// The events of listener `l` below a path that matched pattern[0, pos):
// `old_i` and `new_i` hold the values there before and after.
void ClientStates::Apply::diff(const Listener& l, size_t pos, int old_i, int new_i, int key_i) {
  if (pos == l.pattern.size()) {
    if (!same(old_i, new_i, 0)) event(l, key_i, new_i, old_i);
    return;
  }
  luaL_checkstack(L, 8, "state mirror");
  bool wild = !l.pattern[pos];
  if (!wild) {
    push_key(L, *l.pattern[pos]);
    int k = lua_gettop(L);
    child(old_i, k);
    child(new_i, k);
    diff(l, pos + 1, k + 1, k + 2, key_i);
    lua_pop(L, 3);
    return;
  }
  bool last = static_cast<int>(pos) == l.last_wild;
  if (lua_istable(L, old_i)) {
    lua_pushnil(L);
    while (lua_next(L, old_i)) {  // [k v]
      int k = lua_gettop(L) - 1;
      child(new_i, k);
      diff(l, pos + 1, k + 1, k + 2, last ? k : key_i);
      lua_pop(L, 2);
    }
  }
  if (lua_istable(L, new_i)) {
    lua_pushnil(L);
    while (lua_next(L, new_i)) {  // [k v]
      int k = lua_gettop(L) - 1;
      child(old_i, k);  // [k v old]
      if (lua_isnil(L, -1)) diff(l, pos + 1, k + 2, k + 1, last ? k : key_i);
      lua_pop(L, 2);
    }
  }
}

// Forgets node `ref` and its subtree (the tables stay as they are: the
// script may hold them, and `old` values are read from them).
void ClientStates::Apply::drop(uint32_t ref) {
  std::vector<uint32_t> todo{ref};
  while (!todo.empty()) {
    uint32_t r = todo.back();
    todo.pop_back();
    auto it = nodes.find(r);
    if (it == nodes.end()) continue;
    for (auto& [k, c] : it->second.children) todo.push_back(c);
    nodes.erase(it);
    lua_pushnil(L);
    lua_rawseti(L, refs, r);
  }
}

void ClientStates::Apply::listeners_at(const std::vector<Key>& path, int old_i, int new_i) {
  for (const Listener& l : listeners) {
    if (l.pattern.size() < path.size()) continue;
    bool match = true;
    for (size_t i = 0; i < path.size() && match; ++i) match = !l.pattern[i] || *l.pattern[i] == path[i];
    if (!match) continue;
    int key_i = 0;
    if (l.last_wild >= 0 && static_cast<size_t>(l.last_wild) < path.size()) {
      push_key(L, path[l.last_wild]);
      key_i = lua_gettop(L);
    }
    diff(l, path.size(), old_i, new_i, key_i);
    if (key_i) lua_pop(L, 1);
  }
}

// Mirrors one change of a patch.
void ClientStates::Apply::change(const Change& c) {
  auto parent = nodes.find(c.ref);
  if (parent == nodes.end()) luaL_error(L, "state mirror out of step: no node %d", static_cast<int>(c.ref));
  luaL_checkstack(L, 8, "state mirror");
  bool need_path = !listeners.empty() || (paths && !too_many_paths && !created.count(c.ref));
  std::vector<Key> path;
  if (need_path) {
    path = path_of(c.ref);
    path.push_back(c.key);
  }
  lua_rawgeti(L, refs, c.ref);  // [t]
  int t = lua_gettop(L);
  if (!lua_istable(L, t)) luaL_error(L, "state mirror out of step: node %d has no table", static_cast<int>(c.ref));
  push_key(L, c.key);  // [t k]
  lua_pushvalue(L, -1);
  lua_rawget(L, t);  // [t k old]
  auto old_child = parent->second.children.find(c.key);
  uint32_t old_ref = old_child == parent->second.children.end() ? StateTree::Node::kNone : old_child->second;
  if (old_ref != StateTree::Node::kNone) {
    parent->second.children.erase(old_child);
    drop(old_ref);
  }
  switch (c.kind) {
    case Change::Kind::scalar: push_scalar(L, c.value); break;
    case Change::Kind::removed: lua_pushnil(L); break;
    case Change::Kind::node: {
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, refs, c.child);
      // The parent may have been rehashed by drop(): look it up again.
      nodes[c.ref].children[c.key] = c.child;
      nodes[c.child] = LuaNode{c.ref, c.key, {}};
      created.insert(c.child);
      break;
    }
  }  // [t k old new]
  lua_pushvalue(L, t + 1);
  lua_pushvalue(L, t + 3);
  lua_rawset(L, t);
  if (paths && !too_many_paths && !created.count(c.ref)) {
    if (paths->size() >= kMaxListedChanges) too_many_paths = true;
    else paths->push_back(path);
  }
  if (!listeners.empty()) listeners_at(path, t + 2, t + 3);
  lua_settop(L, t - 1);
}

// Pushes a new table tree for node `ref` of `tree` (a snapshot), filling
// `nodes` and the refs table.
void ClientStates::Apply::build(const StateTree& tree, uint32_t ref) {
  const StateTree::Node* n = tree.node(ref);
  if (!n) luaL_error(L, "state mirror: the tree has no node %d", static_cast<int>(ref));
  luaL_checkstack(L, 6, "state mirror");
  lua_createtable(L, 0, static_cast<int>(std::min<size_t>(n->entries.size(), 1024)));
  lua_pushvalue(L, -1);
  lua_rawseti(L, refs, ref);
  LuaNode& mine = nodes[ref];
  if (ref != StateTree::kRoot) {
    mine.parent = n->parent;
    mine.key = n->key;
  }
  for (const auto& [key, entry] : n->entries) {
    push_key(L, key);
    if (entry.is_node()) {
      nodes[ref].children[key] = entry.child;
      build(tree, entry.child);
    } else {
      push_scalar(L, entry.scalar);
    }
    lua_rawset(L, -3);
  }
}

}  // namespace nshost::rooms
