#pragma once
// A room's replicated state as a tree of nodes (docs/state.md, seed 003
// "State sync"): the server's shadow of room.state and each client's mirror
// of its view are both a StateTree. Every table is a node with a ref (u32,
// root = 0, assigned by the server, never reused within a room's life);
// its entries map a Key to a scalar or to a child node. Pure C++: no Lua,
// no I/O. The codec (state_codec.hpp) reads and writes node updates against
// a tree.
//
// Checksum (docs/protocol.md "State sync: checksum"): an order-independent
// sum, mod 2^64, of one 64-bit contribution per scalar entry and per node,
// each a function of the entry's path from the root and its value. Every
// node keeps the sum of its subtree up to date on each change (O(depth)),
// so the checksum of a view (the root's sum minus the subtrees a client is
// not shown) costs no walk. The low 32 bits travel in snapshots and patches.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nshost::state {

// A table key: a string or an integer (Lua's 1 and 1.0 are the integer 1;
// any other key type is refused before it reaches a tree).
struct Key {
  enum class Kind : uint8_t { integer, string };
  Kind kind = Kind::integer;
  int64_t integer = 0;
  std::string string;

  static Key of(int64_t i) { return Key{Kind::integer, i, {}}; }
  static Key of(std::string_view s) { return Key{Kind::string, 0, std::string(s)}; }
  bool operator==(const Key& o) const {
    return kind == o.kind && (kind == Kind::integer ? integer == o.integer : string == o.string);
  }
  bool operator<(const Key& o) const;  // integers before strings; strings bytewise
};
struct KeyHash {
  size_t operator()(const Key& k) const;
};

// A scalar value. Typed fields hold their canonical form: f32 as the double
// of the float, integer types as integers, so server and client hash alike.
struct Scalar {
  enum class Kind : uint8_t { boolean, integer, number, string };
  Kind kind = Kind::boolean;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string string;

  static Scalar of_bool(bool b) { Scalar s; s.kind = Kind::boolean; s.boolean = b; return s; }
  static Scalar of_int(int64_t i) { Scalar s; s.kind = Kind::integer; s.integer = i; return s; }
  static Scalar of_number(double d) { Scalar s; s.kind = Kind::number; s.number = d; return s; }
  static Scalar of_string(std::string_view v) { Scalar s; s.kind = Kind::string; s.string = std::string(v); return s; }
  // Same kind and value; numbers compare by bits (NaN equals itself, -0.0 != 0.0).
  bool operator==(const Scalar& o) const;
};

// The hash functions of the checksum (normative: docs/protocol.md).
uint64_t key_hash(const Key& key);
uint64_t scalar_hash(const Scalar& value);
uint64_t child_path(uint64_t parent_path, const Key& key);
inline constexpr uint64_t kRootPath = 0x6e73686f73742121ull;  // "nshost!!"
uint64_t leaf_contribution(uint64_t path, const Scalar& value);
uint64_t node_mark(uint64_t path);  // a node's own contribution (so an empty table counts)

class Schema;
struct Type;

class StateTree {
 public:
  static constexpr uint32_t kRoot = 0;

  struct Entry {
    Scalar scalar;       // when child == kNone
    uint32_t child = kNone;
    uint64_t contribution = 0;  // the scalar's leaf contribution, or the child's sum
    uint32_t stamp = 0;         // free for the tree's user (the server's diff marks entries seen)
    uint64_t path = 0;          // child_path(its node's path, its key), kept by the tree
    static constexpr uint32_t kNone = UINT32_MAX;
    bool is_node() const { return child != kNone; }
  };
  struct Node {
    uint32_t ref = 0;
    uint32_t parent = kNone;  // kNone for the root
    Key key;                  // this node's key in its parent
    const Type* type = nullptr;  // its schema type (never null: "any" when untyped)
    uint32_t depth = 0;          // root 0
    uint64_t path = kRootPath;
    uint64_t sum = 0;            // node_mark(path) + the contributions of its entries
    std::unordered_map<Key, Entry, KeyHash> entries;
    // A struct node's entries by field index (Type::field_index), null where
    // the field is absent: the server's diff reads fields without hashing.
    // Kept by a tree made with index_fields; empty for other nodes and trees
    // (a client's mirror does not pay 8 bytes a field per node). Points into
    // `entries` (unordered_map keeps its elements in place).
    std::vector<Entry*> fields;
    // Kept by the tree (null for the root): the parent and the entry that
    // holds this node, so a change reaches the root without a lookup.
    Node* parent_node = nullptr;
    Entry* in_parent = nullptr;
    static constexpr uint32_t kNone = UINT32_MAX;
  };

  // A tree holding the empty root of `schema`'s root type. The schema must
  // outlive the tree. `index_fields`: keep Node::fields (the server's shadow).
  explicit StateTree(const Schema& schema, bool index_fields = false);
  ~StateTree();
  StateTree(const StateTree&) = delete;
  StateTree& operator=(const StateTree&) = delete;

  const Schema& schema() const { return *schema_; }
  // The node with this ref, or null.
  Node* node(uint32_t ref);
  const Node* node(uint32_t ref) const;
  const Node& root() const { return *node(kRoot); }
  // The entry of `ref` at `key`, or null.
  const Entry* find(uint32_t ref, const Key& key) const;
  Entry* find(uint32_t ref, const Key& key);

  // The mutations, each keeping every sum on the path to the root exact.
  // They fail (false, `error` one line, the tree unchanged) on an unknown
  // `ref`, a `child_ref` already in use, a key or value the node's type does
  // not admit, or past the budgets below.
  // Sets `key` of `ref` to a scalar, kept in the canonical form of the
  // key's type (Schema::canonical: e.g. an f32 field holds the double of the
  // float); a subtree that was there is dropped. The entry's stamp is kept.
  bool set_scalar(uint32_t ref, const Key& key, Scalar value, std::string& error);
  // The same for an entry already holding a scalar: `entry` is an entry of
  // `node` with !entry.is_node(), and `value` is already in the canonical
  // form of its type (the server's diff checked both). No lookup; fails only
  // past the byte budget.
  bool replace_scalar(Node& node, Entry& entry, const Scalar& value, std::string& error);
  // Sets `key` of `ref` to a new empty node `child_ref` (of the type the
  // schema gives that key); a value or subtree that was there is dropped.
  // Also refused: a child deeper than kMaxDepth (state_codec.hpp).
  bool set_node(uint32_t ref, const Key& key, uint32_t child_ref, std::string& error);
  // Removes `key` of `ref` (and its subtree); removing an absent key is not
  // an error (returns true, nothing changes).
  bool erase(uint32_t ref, const Key& key, std::string& error);
  // Drops everything but an empty root.
  void clear();

  // The root's sum (the whole tree), and its low 32 bits as sent on the wire.
  uint64_t sum() const { return root().sum; }
  uint32_t checksum() const { return static_cast<uint32_t>(sum()); }

  // Budgets (a peer's snapshot cannot make a client hold more): nodes (the
  // root included), and bytes held: each entry's key and string bytes plus
  // 16 per entry. Defaults: 1 << 20 nodes, 64 MiB. A mutation is checked
  // against them before what it replaces is freed.
  void set_budget(size_t max_nodes, size_t max_bytes);
  size_t node_count() const;
  size_t bytes_held() const;
  // The next ref the server assigns (server side only): 1, 2, ... never reused.
  uint32_t allocate_ref();

 private:
  struct Impl;
  const Schema* schema_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nshost::state
