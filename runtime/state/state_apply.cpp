// Applying the node updates of a snapshot or patch to a client's tree
// (docs/protocol.md "State sync: ops"). The bytes are untrusted: every read
// is bounds-checked, nesting is bounded by the tree (kMaxDepth), and what is
// kept is bounded by the tree's budgets.
#include "runtime/state/state_bytes.hpp"
#include "runtime/state/state_codec.hpp"

namespace nshost::state {

namespace {

using Node = StateTree::Node;

enum : uint8_t { kSetString = 0, kSetInteger = 1, kRemoveString = 2, kRemoveInteger = 3 };
enum : uint8_t { kFalse = 0, kTrue = 1, kInteger = 2, kNumber = 3, kString = 4, kTable = 5 };

class Applier {
 public:
  Applier(StateTree& tree, std::string_view ops, std::vector<Change>& changes, std::string& error)
      : tree_(tree), in_(ops, error, "state ops"), changes_(changes) {}

  bool run() {
    while (!in_.done()) {
      uint64_t ref;
      if (!in_.varint(ref)) return false;
      Node* node = ref < Node::kNone ? tree_.node(static_cast<uint32_t>(ref)) : nullptr;
      if (!node) return in_.fail("unknown node ref " + std::to_string(ref));
      if (!body(*node)) return false;
    }
    return true;
  }

 private:
  bool body(Node& node) {
    return node.type->kind == Type::Kind::structure ? struct_body(node) : entries_body(node);
  }

  bool struct_body(Node& node) {
    const Type& type = *node.type;
    const size_t fields = type.fields.size();
    if (fields > kMaxStructFields) return in_.fail("a struct of more than 62 fields");
    uint64_t mask, removals = 0;
    if (!in_.varint(mask)) return false;
    if (mask >> (fields + 1)) return in_.fail("the mask names a field the struct lacks");
    if ((mask & 1) && !in_.varint(removals)) return false;
    if (removals >> fields) return in_.fail("the removal mask names a field the struct lacks");
    for (size_t i = 0; i < fields; ++i)
      if ((removals >> i) & 1 && !remove(node, Key::of(type.fields[i].first))) return false;
    for (size_t i = 0; i < fields; ++i)
      if ((mask >> (i + 1)) & 1 && !value(node, Key::of(type.fields[i].first), *type.fields[i].second)) return false;
    return true;
  }

  bool entries_body(Node& node) {
    static const Type any;
    const Type& value_type = node.type->kind == Type::Kind::map ? *node.type->value : any;
    uint64_t count;
    if (!in_.varint(count)) return false;
    // Every entry takes at least two bytes: a larger count cannot be honest.
    if (count > in_.remaining()) return in_.truncated();
    for (uint64_t n = 0; n < count; ++n) {
      uint8_t op = 0;
      if (!in_.u8(op)) return false;
      if (op > kRemoveInteger) return in_.fail("unknown entry op " + std::to_string(op));
      Key key;
      if (op == kSetString || op == kRemoveString) {
        std::string_view s;
        if (!in_.string(s)) return false;
        key = Key::of(s);
      } else {
        int64_t i;
        if (!in_.zigzag(i)) return false;
        key = Key::of(i);
      }
      if (!(op <= kSetInteger ? value(node, std::move(key), value_type) : remove(node, key))) return false;
    }
    return true;
  }

  bool remove(Node& node, const Key& key) {
    if (!tree_.find(node.ref, key)) return true;
    std::string error;
    if (!tree_.erase(node.ref, key, error)) return in_.fail(error);
    changes_.push_back(Change{Change::Kind::removed, node.ref, key, {}, 0});
    return true;
  }

  bool value(Node& node, Key key, const Type& type) {
    Scalar v;
    switch (type.kind) {
      case Type::Kind::any: {
        uint8_t tag = 0;
        if (!in_.u8(tag)) return false;
        switch (tag) {
          case kFalse:
          case kTrue: v = Scalar::of_bool(tag == kTrue); break;
          case kInteger: {
            int64_t i;
            if (!in_.zigzag(i)) return false;
            v = Scalar::of_int(i);
            break;
          }
          case kNumber: {
            uint64_t bits;
            if (!in_.le(bits, 8)) return false;
            v = Scalar::of_number(bytes::bits_double(bits));
            break;
          }
          case kString: {
            std::string_view s;
            if (!in_.string(s)) return false;
            v = Scalar::of_string(s);
            break;
          }
          case kTable: return new_node(node, std::move(key));
          default: return in_.fail("unknown value tag " + std::to_string(tag));
        }
        break;
      }
      case Type::Kind::structure:
      case Type::Kind::map: return new_node(node, std::move(key));
      case Type::Kind::boolean: {
        uint8_t b = 0;
        if (!in_.u8(b)) return false;
        if (b > 1) return in_.fail("a bool of " + std::to_string(b));
        v = Scalar::of_bool(b == 1);
        break;
      }
      case Type::Kind::f32: {
        uint64_t bits;
        if (!in_.le(bits, 4)) return false;
        v = Scalar::of_number(static_cast<double>(bytes::bits_float(static_cast<uint32_t>(bits))));
        break;
      }
      case Type::Kind::f64: {
        uint64_t bits;
        if (!in_.le(bits, 8)) return false;
        v = Scalar::of_number(bytes::bits_double(bits));
        break;
      }
      case Type::Kind::i8:
      case Type::Kind::u8:
      case Type::Kind::i16:
      case Type::Kind::u16:
      case Type::Kind::i32:
      case Type::Kind::u32: {
        const bool is_signed = type.kind == Type::Kind::i8 || type.kind == Type::Kind::i16 || type.kind == Type::Kind::i32;
        const int n = type.kind <= Type::Kind::u8 ? 1 : type.kind <= Type::Kind::u16 ? 2 : 4;
        uint64_t raw;
        if (!in_.le(raw, n)) return false;
        int64_t i = static_cast<int64_t>(raw);
        if (is_signed && (raw >> (8 * n - 1))) i -= int64_t{1} << (8 * n);  // sign-extend
        v = Scalar::of_int(i);
        break;
      }
      case Type::Kind::i64: {
        int64_t i;
        if (!in_.zigzag(i)) return false;
        v = Scalar::of_int(i);
        break;
      }
      case Type::Kind::string: {
        std::string_view s;
        if (!in_.string(s)) return false;
        v = Scalar::of_string(s);
        break;
      }
    }
    std::string error;
    if (!tree_.set_scalar(node.ref, key, v, error)) return in_.fail(error);
    changes_.push_back(Change{Change::Kind::scalar, node.ref, std::move(key), std::move(v), 0});
    return true;
  }

  // A new node at `key`: its ref (not in use), then its whole body.
  bool new_node(Node& node, Key key) {
    uint64_t ref;
    if (!in_.varint(ref)) return false;
    if (ref >= Node::kNone || tree_.node(static_cast<uint32_t>(ref)))
      return in_.fail("node ref " + std::to_string(ref) + " is already in use");
    std::string error;
    auto child_ref = static_cast<uint32_t>(ref);
    if (!tree_.set_node(node.ref, key, child_ref, error)) return in_.fail(error);
    changes_.push_back(Change{Change::Kind::node, node.ref, std::move(key), {}, child_ref});
    return body(*tree_.node(child_ref));
  }

  StateTree& tree_;
  bytes::StateReader in_;
  std::vector<Change>& changes_;
};

}  // namespace

bool apply_ops(StateTree& tree, std::string_view ops, std::vector<Change>& changes, std::string& error) {
  error.clear();
  return Applier(tree, ops, changes, error).run();
}

}  // namespace nshost::state
