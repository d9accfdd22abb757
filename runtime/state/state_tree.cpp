#include "runtime/state/state_tree.hpp"

#include <cstring>
#include <functional>

#include "runtime/state/state_codec.hpp"

namespace nshost::state {

namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

inline uint64_t fnv_byte(uint64_t h, uint8_t b) { return (h ^ b) * kFnvPrime; }
inline uint64_t fnv_bytes(uint64_t h, std::string_view s) {
  for (char c : s) h = fnv_byte(h, static_cast<uint8_t>(c));
  return h;
}
inline uint64_t fnv_le64(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; ++i) h = fnv_byte(h, static_cast<uint8_t>(v >> (8 * i)));
  return h;
}
inline uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// What an entry costs against the byte budget: its key's and string's bytes,
// plus a fixed share for the entry itself so that a flood of tiny entries is
// bounded too.
constexpr size_t kEntryBytes = 16;
size_t entry_bytes(const Key& key, const Scalar* scalar) {
  size_t n = kEntryBytes + (key.kind == Key::Kind::string ? key.string.size() : 0);
  if (scalar && scalar->kind == Scalar::Kind::string) n += scalar->string.size();
  return n;
}

std::string describe(const Key& key) {
  if (key.kind == Key::Kind::integer) return "[" + std::to_string(key.integer) + "]";
  return "'" + key.string + "'";
}

}  // namespace

bool Key::operator<(const Key& o) const {
  if (kind != o.kind) return kind == Kind::integer;
  return kind == Kind::integer ? integer < o.integer : string < o.string;
}

size_t KeyHash::operator()(const Key& k) const {
  if (k.kind == Key::Kind::integer) return static_cast<size_t>(mix(static_cast<uint64_t>(k.integer)));
  return std::hash<std::string_view>{}(k.string);
}

bool Scalar::operator==(const Scalar& o) const {
  if (kind != o.kind) return false;
  switch (kind) {
    case Kind::boolean: return boolean == o.boolean;
    case Kind::integer: return integer == o.integer;
    case Kind::number: return std::memcmp(&number, &o.number, sizeof number) == 0;
    case Kind::string: return string == o.string;
  }
  return false;
}

uint64_t key_hash(const Key& key) {
  if (key.kind == Key::Kind::string) return fnv_bytes(fnv_byte(kFnvOffset, 0x00), key.string);
  return fnv_le64(fnv_byte(kFnvOffset, 0x01), static_cast<uint64_t>(key.integer));
}

uint64_t scalar_hash(const Scalar& value) {
  switch (value.kind) {
    case Scalar::Kind::boolean: return fnv_byte(fnv_byte(kFnvOffset, 0x01), value.boolean ? 1 : 0);
    case Scalar::Kind::integer: return fnv_le64(fnv_byte(kFnvOffset, 0x02), static_cast<uint64_t>(value.integer));
    case Scalar::Kind::number: {
      uint64_t bits;
      std::memcpy(&bits, &value.number, 8);
      return fnv_le64(fnv_byte(kFnvOffset, 0x03), bits);
    }
    case Scalar::Kind::string: return fnv_bytes(fnv_byte(kFnvOffset, 0x04), value.string);
  }
  return 0;
}

uint64_t child_path(uint64_t parent_path, const Key& key) { return mix(parent_path ^ key_hash(key)); }
uint64_t leaf_contribution(uint64_t path, const Scalar& value) { return mix(path ^ scalar_hash(value) ^ 0x1); }
uint64_t node_mark(uint64_t path) { return mix(path ^ 0x2); }

struct StateTree::Impl {
  // Node-based: pointers to nodes and entries stay valid while others come and go.
  std::unordered_map<uint32_t, Node> nodes;
  Node* root = nullptr;
  size_t max_nodes = size_t{1} << 20;
  size_t max_bytes = size_t{64} << 20;
  size_t bytes = 0;
  uint32_t next_ref = 1;
  bool index_fields = false;

  // Adds `delta` to the sum of `node` and of every node above it, and to the
  // entries that hold those sums in their parents.
  void propagate(Node* node, uint64_t delta) {
    while (true) {
      node->sum += delta;
      if (!node->parent_node) return;
      node->in_parent->contribution += delta;
      node = node->parent_node;
    }
  }

  // Frees the subtree below `child` (the node itself included) and its bytes.
  void drop_subtree(uint32_t child) {
    std::vector<uint32_t> stack{child};
    while (!stack.empty()) {
      uint32_t ref = stack.back();
      stack.pop_back();
      auto it = nodes.find(ref);
      if (it == nodes.end()) continue;
      for (const auto& [key, entry] : it->second.entries) {
        bytes -= entry_bytes(key, entry.is_node() ? nullptr : &entry.scalar);
        if (entry.is_node()) stack.push_back(entry.child);
      }
      nodes.erase(it);
    }
  }

  // Drops what `entry` holds (its bytes beyond the key's, its subtree).
  void release_value(Entry& entry) {
    if (entry.is_node()) {
      drop_subtree(entry.child);
      entry.child = Entry::kNone;
    } else if (entry.scalar.kind == Scalar::Kind::string) {
      bytes -= entry.scalar.string.size();
    }
  }

  // Records `entry` (or null) as `node`'s entry at `key` when node is a struct.
  static void index_field(Node& node, const Key& key, Entry* entry) {
    if (node.fields.empty() || key.kind != Key::Kind::string) return;
    int i = node.type->field_index(key.string);
    if (i >= 0) node.fields[static_cast<size_t>(i)] = entry;
  }

  void size_fields(Node& node) const {
    node.fields.assign(index_fields && node.type->kind == Type::Kind::structure ? node.type->fields.size() : 0,
                       nullptr);
  }

  Node& make_root(const Type& type) {
    Node& r = nodes[kRoot];
    r.ref = kRoot;
    r.parent = Node::kNone;
    r.parent_node = nullptr;
    r.in_parent = nullptr;
    r.key = Key{};
    r.type = &type;
    r.depth = 0;
    r.path = kRootPath;
    r.sum = node_mark(kRootPath);
    r.entries.clear();
    size_fields(r);
    root = &r;
    return r;
  }
};

StateTree::StateTree(const Schema& schema, bool index_fields) : schema_(&schema), impl_(std::make_unique<Impl>()) {
  impl_->index_fields = index_fields;
  impl_->make_root(schema.root());
}

StateTree::~StateTree() = default;

StateTree::Node* StateTree::node(uint32_t ref) {
  if (ref == kRoot) return impl_->root;
  auto it = impl_->nodes.find(ref);
  return it == impl_->nodes.end() ? nullptr : &it->second;
}

const StateTree::Node* StateTree::node(uint32_t ref) const { return const_cast<StateTree*>(this)->node(ref); }

const StateTree::Entry* StateTree::find(uint32_t ref, const Key& key) const {
  return const_cast<StateTree*>(this)->find(ref, key);
}

StateTree::Entry* StateTree::find(uint32_t ref, const Key& key) {
  Node* n = node(ref);
  if (!n) return nullptr;
  auto it = n->entries.find(key);
  return it == n->entries.end() ? nullptr : &it->second;
}

bool StateTree::set_scalar(uint32_t ref, const Key& key, Scalar value, std::string& error) {
  Node* n = node(ref);
  if (!n) {
    error = "unknown node ref " + std::to_string(ref);
    return false;
  }
  const Type* type = Schema::child_type(*n->type, key);
  if (!type) {
    error = "key " + describe(key) + " is not a field of node " + std::to_string(ref);
    return false;
  }
  if (type->kind == Type::Kind::structure || type->kind == Type::Kind::map) {
    error = "key " + describe(key) + " of node " + std::to_string(ref) + " holds a " + type_name(type->kind) +
            ", not a scalar";
    return false;
  }
  if (type->kind != Type::Kind::any) {
    auto canonical = Schema::canonical(*type, value, error);
    if (!canonical) return false;
    value = std::move(*canonical);
  }
  auto found = n->entries.find(key);
  Entry* existing = found == n->entries.end() ? nullptr : &found->second;
  size_t added = existing ? 0 : entry_bytes(key, nullptr);
  if (value.kind == Scalar::Kind::string) added += value.string.size();
  size_t freed = existing && !existing->is_node() && existing->scalar.kind == Scalar::Kind::string
                     ? existing->scalar.string.size()
                     : 0;
  if (impl_->bytes - freed + added > impl_->max_bytes) {
    error = "state past its budget of " + std::to_string(impl_->max_bytes) + " bytes";
    return false;
  }
  uint64_t path = existing ? existing->path : child_path(n->path, key);
  uint64_t contribution = leaf_contribution(path, value);
  uint64_t old = 0;
  Entry* entry = existing;
  if (entry) {
    old = entry->contribution;
    impl_->release_value(*entry);
  } else {
    entry = &n->entries[key];
    entry->path = path;
    Impl::index_field(*n, key, entry);
    impl_->bytes += entry_bytes(key, nullptr);
  }
  if (value.kind == Scalar::Kind::string) impl_->bytes += value.string.size();
  entry->scalar = std::move(value);
  entry->contribution = contribution;
  impl_->propagate(n, contribution - old);
  return true;
}

bool StateTree::replace_scalar(Node& node, Entry& entry, const Scalar& value, std::string& error) {
  size_t added = value.kind == Scalar::Kind::string ? value.string.size() : 0;
  size_t freed = entry.scalar.kind == Scalar::Kind::string ? entry.scalar.string.size() : 0;
  if (impl_->bytes - freed + added > impl_->max_bytes) {
    error = "state past its budget of " + std::to_string(impl_->max_bytes) + " bytes";
    return false;
  }
  impl_->bytes = impl_->bytes - freed + added;
  uint64_t contribution = leaf_contribution(entry.path, value);
  uint64_t old = entry.contribution;
  entry.scalar = value;
  entry.contribution = contribution;
  impl_->propagate(&node, contribution - old);
  return true;
}

bool StateTree::set_node(uint32_t ref, const Key& key, uint32_t child_ref, std::string& error) {
  Node* n = node(ref);
  if (!n) {
    error = "unknown node ref " + std::to_string(ref);
    return false;
  }
  if (child_ref == Node::kNone || node(child_ref)) {
    error = "node ref " + std::to_string(child_ref) + " is already in use";
    return false;
  }
  const Type* type = Schema::child_type(*n->type, key);
  if (!type) {
    error = "key " + describe(key) + " is not a field of node " + std::to_string(ref);
    return false;
  }
  if (type->is_scalar()) {
    error = "key " + describe(key) + " of node " + std::to_string(ref) + " holds a " + type_name(type->kind) +
            ", not a table";
    return false;
  }
  if (n->depth + 1 > kMaxDepth) {
    error = "state nested deeper than " + std::to_string(kMaxDepth);
    return false;
  }
  if (impl_->nodes.size() + 1 > impl_->max_nodes) {
    error = "state past its budget of " + std::to_string(impl_->max_nodes) + " nodes";
    return false;
  }
  auto found = n->entries.find(key);
  Entry* entry = found == n->entries.end() ? nullptr : &found->second;
  if (!entry && impl_->bytes + entry_bytes(key, nullptr) > impl_->max_bytes) {
    error = "state past its budget of " + std::to_string(impl_->max_bytes) + " bytes";
    return false;
  }
  uint64_t old = 0;
  if (entry) {
    old = entry->contribution;
    impl_->release_value(*entry);
    entry->scalar = Scalar{};
  } else {
    entry = &n->entries[key];
    entry->path = child_path(n->path, key);
    Impl::index_field(*n, key, entry);
    impl_->bytes += entry_bytes(key, nullptr);
  }
  Node& child = impl_->nodes[child_ref];
  child.parent_node = n;
  child.in_parent = entry;
  child.ref = child_ref;
  child.parent = ref;
  child.key = key;
  child.type = type;
  child.depth = n->depth + 1;
  impl_->size_fields(child);
  child.path = entry->path;
  child.sum = node_mark(child.path);
  entry->child = child_ref;
  entry->contribution = child.sum;
  impl_->propagate(n, child.sum - old);
  return true;
}

bool StateTree::erase(uint32_t ref, const Key& key, std::string& error) {
  Node* n = node(ref);
  if (!n) {
    error = "unknown node ref " + std::to_string(ref);
    return false;
  }
  auto it = n->entries.find(key);
  if (it == n->entries.end()) return true;
  uint64_t old = it->second.contribution;
  impl_->release_value(it->second);
  impl_->bytes -= entry_bytes(key, nullptr);
  Impl::index_field(*n, key, nullptr);
  n->entries.erase(it);
  impl_->propagate(n, uint64_t{0} - old);
  return true;
}

void StateTree::clear() {
  const Type* type = impl_->root->type;
  impl_->nodes.clear();
  impl_->bytes = 0;
  impl_->make_root(*type);
}

void StateTree::set_budget(size_t max_nodes, size_t max_bytes) {
  impl_->max_nodes = max_nodes;
  impl_->max_bytes = max_bytes;
}

size_t StateTree::node_count() const { return impl_->nodes.size(); }
size_t StateTree::bytes_held() const { return impl_->bytes; }
uint32_t StateTree::allocate_ref() { return impl_->next_ref++; }

}  // namespace nshost::state
