#pragma once
// Helpers of the state-codec tests (test_state_codec*.cpp): schemas built by
// hand, a from-scratch recomputation of a tree's sums, and a check that a
// client tree holds what the server tree does.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/state/state_codec.hpp"
#include "runtime/state/state_tree.hpp"

namespace nshost::state::codec_test {


inline std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[static_cast<uint8_t>(c) >> 4];
    out += digits[static_cast<uint8_t>(c) & 15];
  }
  return out;
}

inline std::unique_ptr<Type> type_of(Type::Kind kind) {
  auto t = std::make_unique<Type>();
  t->kind = kind;
  return t;
}
inline std::unique_ptr<Type> map_of(std::unique_ptr<Type> value) {
  auto t = type_of(Type::Kind::map);
  t->value = std::move(value);
  return t;
}
inline std::unique_ptr<Type> struct_of(std::vector<std::pair<std::string, std::unique_ptr<Type>>> fields) {
  auto t = type_of(Type::Kind::structure);
  t->fields = std::move(fields);
  return t;
}
template <class... Fields>
inline std::unique_ptr<Type> fields(Fields&&... f) {
  std::vector<std::pair<std::string, std::unique_ptr<Type>>> v;
  (v.emplace_back(std::move(f.first), std::move(f.second)), ...);
  return struct_of(std::move(v));
}
inline std::pair<std::string, std::unique_ptr<Type>> field(std::string name, std::unique_ptr<Type> type) {
  return {std::move(name), std::move(type)};
}
inline Schema make_schema(std::unique_ptr<Type> root) {
  std::string error;
  auto schema = Schema::from_type(std::move(root), error);
  REQUIRE_MESSAGE(schema, error);
  return std::move(*schema);
}

// Recomputes every sum from scratch (as the tree test does) and checks it.
inline uint64_t recompute(const StateTree& tree, uint32_t ref, uint64_t path) {
  const StateTree::Node* node = tree.node(ref);
  REQUIRE(node != nullptr);
  uint64_t sum = node_mark(path);
  for (const auto& [key, entry] : node->entries) {
    uint64_t p = child_path(path, key);
    sum += entry.is_node() ? recompute(tree, entry.child, p) : leaf_contribution(p, entry.scalar);
  }
  CHECK(node->sum == sum);
  return sum;
}

// Same keys, scalars, refs and types below `ref` in both trees; `skip` a
// (collection ref, key) the client is not shown.
inline void check_same(const StateTree& server, const StateTree& client, uint32_t ref,
                const std::vector<std::pair<uint32_t, Key>>& hidden = {}) {
  const StateTree::Node* a = server.node(ref);
  const StateTree::Node* b = client.node(ref);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a->type->kind == b->type->kind);
  size_t shown = 0;
  for (const auto& [key, entry] : a->entries) {
    bool skip = false;
    for (const auto& [c, k] : hidden) skip = skip || (c == ref && k == key);
    if (skip) {
      CHECK(b->entries.count(key) == 0);
      continue;
    }
    ++shown;
    auto it = b->entries.find(key);
    REQUIRE_MESSAGE(it != b->entries.end(), "missing key in node " << ref);
    REQUIRE(entry.is_node() == it->second.is_node());
    if (entry.is_node()) {
      CHECK(entry.child == it->second.child);
      check_same(server, client, entry.child, hidden);
    } else {
      CHECK(entry.scalar == it->second.scalar);
    }
  }
  CHECK(b->entries.size() == shown);
}

// A client tree that applies what the server tree writes.
struct Sync {
  const Schema& schema;
  StateTree server{schema};
  StateTree client{schema};
  std::vector<Change> changes;
  std::string error;

  explicit Sync(const Schema& s) : schema(s) {}

  void set(uint32_t ref, const Key& key, Scalar v) { REQUIRE_MESSAGE(server.set_scalar(ref, key, std::move(v), error), error); }
  uint32_t table(uint32_t ref, const Key& key) {
    uint32_t child = server.allocate_ref();
    REQUIRE_MESSAGE(server.set_node(ref, key, child, error), error);
    return child;
  }
  void erase(uint32_t ref, const Key& key) { REQUIRE(server.erase(ref, key, error)); }

  std::string update(uint32_t ref, std::vector<Key> set, std::vector<Key> removed = {}) {
    std::string ops;
    write_update(server, ref, set, removed, ops);
    apply(ops);
    return ops;
  }
  void apply(std::string_view ops) {
    changes.clear();
    REQUIRE_MESSAGE(apply_ops(client, ops, changes, error), error);
    check_same(server, client, StateTree::kRoot);
    CHECK(client.sum() == server.sum());
    CHECK(recompute(client, 0, kRootPath) == client.sum());
  }
  std::string snapshot() {
    std::string ops;
    write_snapshot_ops(server, ops);
    client.clear();
    apply(ops);
    return ops;
  }
};

// A schema with a field of every type, and a tree using all of them.
inline Schema every_type_schema() {
  using K = Type::Kind;
  return make_schema(fields(
      field("b", type_of(K::boolean)), field("f32", type_of(K::f32)), field("f64", type_of(K::f64)),
      field("i8", type_of(K::i8)), field("u8", type_of(K::u8)), field("i16", type_of(K::i16)),
      field("u16", type_of(K::u16)), field("i32", type_of(K::i32)), field("u32", type_of(K::u32)),
      field("i64", type_of(K::i64)), field("s", type_of(K::string)), field("any", type_of(K::any)),
      field("players", map_of(fields(field("x", type_of(K::f32)), field("hp", type_of(K::u8)),
                                     field("pos", fields(field("x", type_of(K::i16)), field("y", type_of(K::i16)))),
                                     field("inv", map_of(type_of(K::u32)))))),
      field("grid", map_of(map_of(type_of(K::string))))));
}


}  // namespace nshost::state::codec_test
