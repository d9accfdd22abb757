// libFuzzer target: the state-sync decoders on the bytes of one packet.
// The packet is read as a frame (read_header, then a snapshot's schema and
// ops into a fresh tree) and, whole, as ops applied to a typed and an untyped
// tree that already hold nodes. Whatever the bytes, a refusal names its
// reason, every sum in the tree stays exact, and a tree that applied cleanly
// re-encodes (write_snapshot_ops) into ops that rebuild it with the same sum.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/state/state_codec.hpp"

using namespace nshost::state;

namespace {

uint64_t recompute(const StateTree& tree, uint32_t ref, uint64_t path, size_t& nodes) {
  const StateTree::Node* node = tree.node(ref);
  if (!node) std::abort();
  ++nodes;
  uint64_t sum = node_mark(path);
  for (const auto& [key, entry] : node->entries) {
    uint64_t p = child_path(path, key);
    uint64_t c = entry.is_node() ? recompute(tree, entry.child, p, nodes) : leaf_contribution(p, entry.scalar);
    if (entry.contribution != c) std::abort();
    sum += c;
  }
  if (node->sum != sum) std::abort();
  return sum;
}

void check_exact(const StateTree& tree) {
  size_t nodes = 0;
  recompute(tree, StateTree::kRoot, kRootPath, nodes);
  if (nodes != tree.node_count()) std::abort();
}

void apply_and_check(StateTree& tree, std::string_view ops) {
  std::vector<Change> changes;
  std::string error;
  bool ok = apply_ops(tree, ops, changes, error);
  if (!ok && error.empty()) std::abort();
  check_exact(tree);
  if (!ok) return;
  std::string again;
  write_snapshot_ops(tree, again);
  StateTree copy(tree.schema());
  if (!apply_ops(copy, again, changes, error) || copy.sum() != tree.sum() || copy.node_count() != tree.node_count())
    std::abort();
}

std::unique_ptr<Type> kind(Type::Kind k) {
  auto t = std::make_unique<Type>();
  t->kind = k;
  return t;
}

// { a = "any", b = "bool", f = "f32", g = "f64", i = "i8", j = "i16", k = "i32", l = "i64",
//   m = { map = { u = "u8", v = "u16", w = "u32", s = "string", n = { map = "any" } } } }
const Schema& typed_schema() {
  static const Schema schema = [] {
    auto entity = std::make_unique<Type>();
    entity->kind = Type::Kind::structure;
    entity->fields.emplace_back("u", kind(Type::Kind::u8));
    entity->fields.emplace_back("v", kind(Type::Kind::u16));
    entity->fields.emplace_back("w", kind(Type::Kind::u32));
    entity->fields.emplace_back("s", kind(Type::Kind::string));
    auto inner = kind(Type::Kind::map);
    inner->value = kind(Type::Kind::any);
    entity->fields.emplace_back("n", std::move(inner));
    auto m = kind(Type::Kind::map);
    m->value = std::move(entity);
    auto root = kind(Type::Kind::structure);
    const char* names = "abfgijkl";
    const Type::Kind kinds[] = {Type::Kind::any, Type::Kind::boolean, Type::Kind::f32, Type::Kind::f64,
                                Type::Kind::i8,  Type::Kind::i16,     Type::Kind::i32, Type::Kind::i64};
    for (int i = 0; i < 8; ++i) root->fields.emplace_back(std::string(1, names[i]), kind(kinds[i]));
    root->fields.emplace_back("m", std::move(m));
    std::string error;
    auto s = Schema::from_type(std::move(root), error);
    if (!s) std::abort();
    return std::move(*s);
  }();
  return schema;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string error;

  FrameHeader header;
  std::string_view schema_bytes, rest;
  if (read_header(bytes, header, schema_bytes, rest, error)) {
    if (header.kind == FrameKind::snapshot) {
      auto schema = Schema::decode(schema_bytes, error);
      if (schema) {
        std::string again, twice;
        schema->encode(again);
        auto back = Schema::decode(again, error);
        if (!back) std::abort();
        back->encode(twice);
        if (twice != again) std::abort();
        StateTree tree(*schema);
        tree.set_budget(4096, size_t{1} << 20);
        apply_and_check(tree, rest);
      } else if (error.empty()) {
        std::abort();
      }
    }
  } else if (error.empty()) {
    std::abort();
  }

  // The whole packet as ops, against trees with refs 1 (and 2) to update.
  Schema untyped;
  StateTree plain(untyped);
  if (!plain.set_node(0, Key::of("t"), 1, error) || !plain.set_scalar(1, Key::of(int64_t{1}), Scalar::of_int(1), error))
    std::abort();
  apply_and_check(plain, bytes);

  StateTree typed(typed_schema());
  if (!typed.set_node(0, Key::of("m"), 1, error) || !typed.set_node(1, Key::of(int64_t{1}), 2, error)) std::abort();
  apply_and_check(typed, bytes);
  return 0;
}
