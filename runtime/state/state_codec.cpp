// Writing node updates (docs/protocol.md "State sync: ops"). The server
// encodes every changed node of every room each patch interval, so nothing
// here allocates beyond `out`'s growth, and a null `admit` costs no call.
#include "runtime/state/state_bytes.hpp"
#include "runtime/state/state_codec.hpp"

namespace nshost::state {

namespace {

using Entry = StateTree::Entry;
using Node = StateTree::Node;

enum : uint8_t { kSetString = 0, kSetInteger = 1, kRemoveString = 2, kRemoveInteger = 3 };
enum : uint8_t { kFalse = 0, kTrue = 1, kInteger = 2, kNumber = 3, kString = 4, kTable = 5 };

double as_double(const Scalar& v) {
  return v.kind == Scalar::Kind::integer ? static_cast<double>(v.integer) : v.number;
}
int64_t as_integer(const Scalar& v) {
  return v.kind == Scalar::Kind::number ? static_cast<int64_t>(v.number) : v.integer;
}

class Writer {
 public:
  Writer(const StateTree& tree, std::string& out, const Admit* admit) : tree_(tree), out_(out), admit_(admit) {}

  // A node's update header and body for the given keys.
  void update(const Node& node, std::span<const Key> set, std::span<const Key> removed) {
    bytes::put_varint(out_, node.ref);
    if (node.type->kind == Type::Kind::structure) struct_update(node, set, removed);
    else entries_update(node, set, removed);
  }

  // A node written whole: its ref, then every (admitted) entry.
  void whole(const Node& node) {
    bytes::put_varint(out_, node.ref);
    if (node.type->kind == Type::Kind::structure) {
      const Entry* slots[kMaxStructFields] = {};
      uint64_t mask = 0;
      for (const auto& [key, entry] : node.entries) {
        int i = field(*node.type, key);
        if (i < 0 || !admitted(node, key, entry)) continue;
        slots[i] = &entry;
        mask |= uint64_t{2} << i;
      }
      bytes::put_varint(out_, mask);
      struct_values(*node.type, slots, mask);
      return;
    }
    const Type& value_type = entry_type(node);
    bytes::CountSlot count(out_);
    uint64_t n = 0;
    for (const auto& [key, entry] : node.entries) {
      if (!admitted(node, key, entry)) continue;
      set_entry(value_type, key, entry);
      ++n;
    }
    count.finish(n);
  }

 private:
  // An entity (a node-valued entry of a root collection) is written only as
  // `admit` allows.
  bool admitted(const Node& node, const Key& key, const Entry& entry) const {
    return !admit_ || node.depth != 1 || !entry.is_node() || (*admit_)(node.ref, key);
  }

  // The field index of `key` in a struct, -1 if none (or past the mask's
  // width, which Schema::from_type never lets a struct reach).
  static int field(const Type& type, const Key& key) {
    if (key.kind != Key::Kind::string) return -1;
    int i = type.field_index(key.string);
    return i < static_cast<int>(kMaxStructFields) ? i : -1;
  }

  static const Type& entry_type(const Node& node) {
    static const Type any;
    return node.type->kind == Type::Kind::map ? *node.type->value : any;
  }

  void struct_update(const Node& node, std::span<const Key> set, std::span<const Key> removed) {
    const Type& type = *node.type;
    const Entry* slots[kMaxStructFields] = {};
    uint64_t mask = 0, removals = 0;
    for (const Key& key : set) {
      int i = field(type, key);
      if (i < 0) continue;
      auto it = node.entries.find(key);
      if (it == node.entries.end()) {
        removals |= uint64_t{1} << i;
      } else if (admitted(node, key, it->second)) {
        slots[i] = &it->second;
        mask |= uint64_t{2} << i;
      }
    }
    for (const Key& key : removed) {
      int i = field(type, key);
      if (i >= 0) removals |= uint64_t{1} << i;
    }
    if (removals) mask |= 1;
    bytes::put_varint(out_, mask);
    if (removals) bytes::put_varint(out_, removals);
    struct_values(type, slots, mask);
  }

  void struct_values(const Type& type, const Entry* const* slots, uint64_t mask) {
    for (size_t i = 0; mask >> 1; ++i, mask >>= 1)
      if (mask & 2) value(*type.fields[i].second, *slots[i]);
  }

  void entries_update(const Node& node, std::span<const Key> set, std::span<const Key> removed) {
    const Type& value_type = entry_type(node);
    bytes::CountSlot count(out_);
    uint64_t n = 0;
    for (const Key& key : set) {
      auto it = node.entries.find(key);
      if (it == node.entries.end()) {
        remove_entry(key);
      } else {
        if (!admitted(node, key, it->second)) continue;
        set_entry(value_type, key, it->second);
      }
      ++n;
    }
    for (const Key& key : removed) {
      remove_entry(key);
      ++n;
    }
    count.finish(n);
  }

  void set_entry(const Type& value_type, const Key& key, const Entry& entry) {
    if (key.kind == Key::Kind::string) {
      bytes::put_u8(out_, kSetString);
      bytes::put_string(out_, key.string);
    } else {
      bytes::put_u8(out_, kSetInteger);
      bytes::put_zigzag(out_, key.integer);
    }
    value(value_type, entry);
  }

  void remove_entry(const Key& key) {
    if (key.kind == Key::Kind::string) {
      bytes::put_u8(out_, kRemoveString);
      bytes::put_string(out_, key.string);
    } else {
      bytes::put_u8(out_, kRemoveInteger);
      bytes::put_zigzag(out_, key.integer);
    }
  }

  void value(const Type& type, const Entry& entry) {
    if (entry.is_node()) {
      // The tree admits a node only where the type is a struct, a map or any.
      if (type.kind == Type::Kind::any) bytes::put_u8(out_, kTable);
      whole(*tree_.node(entry.child));
      return;
    }
    const Scalar& v = entry.scalar;
    switch (type.kind) {
      case Type::Kind::any: any_scalar(v); return;
      case Type::Kind::boolean: bytes::put_u8(out_, v.boolean ? 1 : 0); return;
      case Type::Kind::f32: bytes::put_le(out_, bytes::float_bits(static_cast<float>(as_double(v))), 4); return;
      case Type::Kind::f64: bytes::put_le(out_, bytes::double_bits(as_double(v)), 8); return;
      case Type::Kind::i8:
      case Type::Kind::u8: bytes::put_le(out_, static_cast<uint64_t>(as_integer(v)), 1); return;
      case Type::Kind::i16:
      case Type::Kind::u16: bytes::put_le(out_, static_cast<uint64_t>(as_integer(v)), 2); return;
      case Type::Kind::i32:
      case Type::Kind::u32: bytes::put_le(out_, static_cast<uint64_t>(as_integer(v)), 4); return;
      case Type::Kind::i64: bytes::put_zigzag(out_, as_integer(v)); return;
      case Type::Kind::string: bytes::put_string(out_, v.string); return;
      case Type::Kind::structure:
      case Type::Kind::map: return;  // a scalar never sits where a table is typed
    }
  }

  void any_scalar(const Scalar& v) {
    switch (v.kind) {
      case Scalar::Kind::boolean: bytes::put_u8(out_, v.boolean ? kTrue : kFalse); return;
      case Scalar::Kind::integer:
        bytes::put_u8(out_, kInteger);
        bytes::put_zigzag(out_, v.integer);
        return;
      case Scalar::Kind::number:
        bytes::put_u8(out_, kNumber);
        bytes::put_le(out_, bytes::double_bits(v.number), 8);
        return;
      case Scalar::Kind::string:
        bytes::put_u8(out_, kString);
        bytes::put_string(out_, v.string);
        return;
    }
  }

  const StateTree& tree_;
  std::string& out_;
  const Admit* admit_;
};

}  // namespace

void write_update(const StateTree& tree, uint32_t ref, std::span<const Key> set, std::span<const Key> removed,
                  std::string& out, const Admit* admit) {
  const Node* node = tree.node(ref);
  if (!node) return;
  if (admit && !*admit) admit = nullptr;
  Writer(tree, out, admit).update(*node, set, removed);
}

void write_snapshot_ops(const StateTree& tree, std::string& out, const Admit* admit) {
  if (admit && !*admit) admit = nullptr;
  Writer(tree, out, admit).whole(tree.root());
}

}  // namespace nshost::state
