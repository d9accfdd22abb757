// The state tree: the normative checksum functions against values computed
// independently (a few lines of Python from docs/protocol.md), every node's
// sum against a recomputation from scratch after each mutation, the typed
// admission rules, the budgets and the ref rules.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/state/state_codec.hpp"
#include "runtime/state/state_tree.hpp"

using namespace nshost::state;

namespace {

// The sum of the node at `ref` recomputed from its entries alone (paths from
// the keys down from the root, never the stored ones); checks every stored
// sum, path and contribution on the way. Counts the nodes it visits.
uint64_t recompute(const StateTree& tree, uint32_t ref, uint64_t path, size_t& nodes) {
  const StateTree::Node* node = tree.node(ref);
  REQUIRE(node != nullptr);
  ++nodes;
  CHECK(node->path == path);
  uint64_t sum = node_mark(path);
  for (const auto& [key, entry] : node->entries) {
    uint64_t entry_path = child_path(path, key);
    uint64_t contribution;
    if (entry.is_node()) {
      const StateTree::Node* child = tree.node(entry.child);
      REQUIRE(child != nullptr);
      CHECK(child->parent == ref);
      CHECK(child->key == key);
      CHECK(child->depth == node->depth + 1);
      contribution = recompute(tree, entry.child, entry_path, nodes);
    } else {
      contribution = leaf_contribution(entry_path, entry.scalar);
    }
    CHECK(entry.contribution == contribution);
    sum += contribution;
  }
  CHECK(node->sum == sum);
  return sum;
}

// The tree's sums are exact and it holds no node outside the root's subtree.
void check_exact(const StateTree& tree) {
  size_t nodes = 0;
  uint64_t sum = recompute(tree, StateTree::kRoot, kRootPath, nodes);
  CHECK(tree.sum() == sum);
  CHECK(tree.node_count() == nodes);
}

std::unique_ptr<Type> scalar_type(Type::Kind kind) {
  auto t = std::make_unique<Type>();
  t->kind = kind;
  return t;
}

// { players = { map = { x = "f32", hp = "u8", name = "string", tags = "any" } }, round = "i32", extra = "any" }
Schema arena_schema() {
  auto player = std::make_unique<Type>();
  player->kind = Type::Kind::structure;
  player->fields.emplace_back("x", scalar_type(Type::Kind::f32));
  player->fields.emplace_back("hp", scalar_type(Type::Kind::u8));
  player->fields.emplace_back("name", scalar_type(Type::Kind::string));
  player->fields.emplace_back("tags", scalar_type(Type::Kind::any));
  auto players = std::make_unique<Type>();
  players->kind = Type::Kind::map;
  players->value = std::move(player);
  auto root = std::make_unique<Type>();
  root->kind = Type::Kind::structure;
  root->fields.emplace_back("round", scalar_type(Type::Kind::i32));
  root->fields.emplace_back("players", std::move(players));
  root->fields.emplace_back("extra", scalar_type(Type::Kind::any));
  std::string error;
  auto schema = Schema::from_type(std::move(root), error);
  REQUIRE_MESSAGE(schema, error);
  return std::move(*schema);
}

}  // namespace

TEST_CASE("state tree: the checksum functions match the normative definition") {
  // Values from an independent implementation of docs/protocol.md "State sync: checksum".
  CHECK(key_hash(Key::of("a")) == 0x08326707b4eb37daull);
  CHECK(key_hash(Key::of(int64_t{1})) == 0x7194f3e59ae47dcdull);
  CHECK(scalar_hash(Scalar::of_bool(true)) == 0x082f2307b4e88e77ull);
  CHECK(scalar_hash(Scalar::of_int(5)) == 0x71f349c81719a340ull);
  CHECK(scalar_hash(Scalar::of_number(1.5)) == 0x7953ca97b9144203ull);
  CHECK(scalar_hash(Scalar::of_string("hi")) == 0xb808fd18599c2cb8ull);
  CHECK(node_mark(kRootPath) == 0x49325ed0c7139682ull);

  // { hp = 100, players = { [7] = { x = 1.5 } } }
  Schema schema;
  StateTree tree(schema);
  CHECK(tree.sum() == node_mark(kRootPath));
  std::string error;
  REQUIRE(tree.set_scalar(0, Key::of("hp"), Scalar::of_int(100), error));
  REQUIRE(tree.set_node(0, Key::of("players"), 1, error));
  REQUIRE(tree.set_node(1, Key::of(int64_t{7}), 2, error));
  REQUIRE(tree.set_scalar(2, Key::of("x"), Scalar::of_number(1.5), error));
  CHECK(tree.node(2)->sum == 0x61e3cd4d9e65cc3full);
  CHECK(tree.node(1)->sum == 0xd19d768660bafd85ull);
  CHECK(tree.sum() == 0x30ca4b7a57115452ull);
  CHECK(tree.checksum() == 0x57115452u);
  check_exact(tree);
}

TEST_CASE("state tree: keys order integers first, strings bytewise, scalars compare by kind and bits") {
  CHECK(Key::of(int64_t{5}) < Key::of(""));
  CHECK(Key::of(int64_t{-1}) < Key::of(int64_t{0}));
  CHECK(Key::of("a") < Key::of("b"));
  CHECK(Key::of("Z") < Key::of("a"));
  CHECK(Key::of("a") < Key::of(std::string_view("\xff", 1)));
  CHECK_FALSE(Key::of("a") < Key::of("a"));
  CHECK_FALSE(Key::of(int64_t{1}) == Key::of("1"));
  CHECK(KeyHash{}(Key::of("k")) == KeyHash{}(Key::of("k")));

  CHECK(Scalar::of_int(1) == Scalar::of_int(1));
  CHECK_FALSE(Scalar::of_int(1) == Scalar::of_number(1.0));
  CHECK_FALSE(Scalar::of_bool(false) == Scalar::of_int(0));
  double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(Scalar::of_number(nan) == Scalar::of_number(nan));
  CHECK_FALSE(Scalar::of_number(0.0) == Scalar::of_number(-0.0));
  CHECK(Scalar::of_string(std::string_view("a\0b", 3)) == Scalar::of_string(std::string_view("a\0b", 3)));
  CHECK_FALSE(Scalar::of_string("a") == Scalar::of_string("b"));
}

TEST_CASE("state tree: every sum stays exact through random sets, replacements and erasures") {
  Schema schema;
  StateTree tree(schema);
  std::mt19937 rng(1234);
  std::vector<uint32_t> refs{StateTree::kRoot};
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto random_key = [&]() {
    return pick(2) ? Key::of(static_cast<int64_t>(pick(6)) - 2) : Key::of(std::string(1, static_cast<char>('a' + pick(5))));
  };
  auto random_scalar = [&]() {
    switch (pick(4)) {
      case 0: return Scalar::of_bool(pick(2));
      case 1: return Scalar::of_int(static_cast<int64_t>(pick(5)));
      case 2: return Scalar::of_number(pick(5) * 0.5);
      default: return Scalar::of_string(std::string(pick(20), 'x'));
    }
  };
  std::string error;
  for (int step = 0; step < 3000; ++step) {
    // A ref that may have been dropped since: mutations on it must fail cleanly.
    uint32_t ref = refs[pick(refs.size())];
    bool alive = tree.node(ref) != nullptr;
    Key key = random_key();
    uint64_t before = tree.sum();
    bool ok;
    switch (pick(4)) {
      case 0:
      case 1: ok = tree.set_scalar(ref, key, random_scalar(), error); break;
      case 2: {
        alive = alive && tree.node(ref)->depth < kMaxDepth;
        uint32_t child = tree.allocate_ref();
        ok = tree.set_node(ref, key, child, error);
        if (ok) refs.push_back(child);
        break;
      }
      default: ok = tree.erase(ref, key, error); break;
    }
    CHECK(ok == alive);
    if (!ok) CHECK(tree.sum() == before);
    check_exact(tree);
    if (step == 1499) {
      // Erase everything at the root: back to the empty tree's sum.
      std::vector<Key> keys;
      for (const auto& [k, e] : tree.root().entries) keys.push_back(k);
      for (const auto& k : keys) REQUIRE(tree.erase(StateTree::kRoot, k, error));
      CHECK(tree.sum() == node_mark(kRootPath));
      CHECK(tree.node_count() == 1);
      CHECK(tree.bytes_held() == 0);
    }
  }
  tree.clear();
  CHECK(tree.sum() == node_mark(kRootPath));
  CHECK(tree.node_count() == 1);
  CHECK(tree.bytes_held() == 0);
  check_exact(tree);
}

TEST_CASE("state tree: the checksum depends on content, not on the order it was built in") {
  Schema schema;
  std::string error;
  auto build = [&](StateTree& tree, bool reversed) {
    std::vector<int> order{0, 1, 2, 3, 4, 5};
    if (reversed) std::reverse(order.begin(), order.end());
    for (int i : order) {
      REQUIRE(tree.set_node(0, Key::of(int64_t{i}), static_cast<uint32_t>(10 + i), error));
      for (int f : order) REQUIRE(tree.set_scalar(static_cast<uint32_t>(10 + i), Key::of(std::string(1, 'a' + f)), Scalar::of_int(i * f), error));
    }
    REQUIRE(tree.set_scalar(0, Key::of("name"), Scalar::of_string("arena"), error));
  };
  StateTree a(schema), b(schema);
  build(a, false);
  build(b, true);
  CHECK(a.sum() == b.sum());
  check_exact(a);
  check_exact(b);
  // Via a detour: set, replace by a table, back to the scalar.
  REQUIRE(b.set_node(0, Key::of("name"), 99, error));
  REQUIRE(b.set_scalar(99, Key::of("deep"), Scalar::of_bool(true), error));
  CHECK(a.sum() != b.sum());
  REQUIRE(b.set_scalar(0, Key::of("name"), Scalar::of_string("arena"), error));
  CHECK(a.sum() == b.sum());
  CHECK(b.node(99) == nullptr);

  // Swapping two values between keys changes the sum (node 11 holds b = 1, c = 2).
  REQUIRE(a.set_scalar(11, Key::of("b"), Scalar::of_int(2), error));
  REQUIRE(a.set_scalar(11, Key::of("c"), Scalar::of_int(1), error));
  CHECK(a.sum() != b.sum());
  // So does moving a table's contents to another key (node 12 to a new node).
  StateTree e(schema);
  build(e, false);
  REQUIRE(e.set_node(0, Key::of(int64_t{6}), 50, error));
  for (int f = 0; f < 6; ++f) REQUIRE(e.set_scalar(50, Key::of(std::string(1, 'a' + f)), Scalar::of_int(2 * f), error));
  REQUIRE(e.erase(0, Key::of(int64_t{2}), error));
  CHECK(e.sum() != b.sum());
  check_exact(e);
  // An empty table counts: {t = {}} differs from {}.
  StateTree c(schema), d(schema);
  REQUIRE(c.set_node(0, Key::of("t"), 1, error));
  CHECK(c.sum() != d.sum());
  // Integer 1, float 1.0 and string "1" differ, as values and as keys.
  REQUIRE(c.set_scalar(0, Key::of("v"), Scalar::of_int(1), error));
  REQUIRE(d.set_node(0, Key::of("t"), 1, error));
  REQUIRE(d.set_scalar(0, Key::of("v"), Scalar::of_number(1.0), error));
  CHECK(c.sum() != d.sum());
  CHECK(child_path(kRootPath, Key::of(int64_t{1})) != child_path(kRootPath, Key::of("1")));
}

TEST_CASE("state tree: replacing a subtree frees its nodes and bytes, the stamp survives a new value") {
  Schema schema;
  StateTree tree(schema);
  std::string error;
  REQUIRE(tree.set_node(0, Key::of("a"), 1, error));
  REQUIRE(tree.set_node(1, Key::of("b"), 2, error));
  REQUIRE(tree.set_scalar(2, Key::of("s"), Scalar::of_string("0123456789"), error));
  CHECK(tree.node_count() == 3);
  CHECK(tree.bytes_held() == 3 * 16 + 3 + 10);
  tree.find(0, Key::of("a"))->stamp = 7;
  REQUIRE(tree.set_scalar(0, Key::of("a"), Scalar::of_int(3), error));
  CHECK(tree.node_count() == 1);
  CHECK(tree.node(1) == nullptr);
  CHECK(tree.node(2) == nullptr);
  CHECK(tree.bytes_held() == 16 + 1);
  CHECK(tree.find(0, Key::of("a"))->stamp == 7);
  // The freed refs are not in use any more (a client may see them again after a resync).
  REQUIRE(tree.set_node(0, Key::of("b"), 2, error));
  check_exact(tree);
  // Removing an absent key is no error and changes nothing.
  uint64_t sum = tree.sum();
  CHECK(tree.erase(0, Key::of("nothing"), error));
  CHECK(tree.sum() == sum);
  CHECK_FALSE(tree.erase(42, Key::of("a"), error));
  CHECK(error.find("42") != std::string::npos);
}

TEST_CASE("state tree: refs in use, unknown refs and depth past the limit are refused, the tree unchanged") {
  Schema schema;
  StateTree tree(schema);
  std::string error;
  REQUIRE(tree.set_node(0, Key::of("a"), 1, error));
  uint64_t sum = tree.sum();
  CHECK_FALSE(tree.set_node(0, Key::of("b"), 1, error));
  CHECK(error.find("in use") != std::string::npos);
  CHECK_FALSE(tree.set_node(0, Key::of("b"), StateTree::kRoot, error));
  CHECK_FALSE(tree.set_node(0, Key::of("b"), StateTree::Node::kNone, error));
  // Replacing "a" by a node whose ref is the one being dropped is refused too.
  CHECK_FALSE(tree.set_node(0, Key::of("a"), 1, error));
  CHECK_FALSE(tree.set_node(5, Key::of("b"), 6, error));
  CHECK_FALSE(tree.set_scalar(5, Key::of("b"), Scalar::of_int(1), error));
  CHECK(tree.sum() == sum);
  CHECK(tree.node_count() == 2);

  uint32_t ref = 1;
  for (uint32_t depth = 2; depth <= kMaxDepth; ++depth, ++ref) REQUIRE(tree.set_node(ref, Key::of("n"), ref + 1, error));
  CHECK(tree.node(ref)->depth == kMaxDepth);
  sum = tree.sum();
  CHECK_FALSE(tree.set_node(ref, Key::of("n"), 1000, error));
  CHECK(error.find("deeper") != std::string::npos);
  CHECK(tree.sum() == sum);
  CHECK(tree.set_scalar(ref, Key::of("leaf"), Scalar::of_int(1), error));
  check_exact(tree);
  tree.clear();
  check_exact(tree);
  CHECK(tree.node(1) == nullptr);
}

TEST_CASE("state tree: budgets of nodes and bytes refuse a mutation before it happens") {
  Schema schema;
  StateTree tree(schema);
  std::string error;
  tree.set_budget(3, 100);
  REQUIRE(tree.set_node(0, Key::of("a"), 1, error));
  REQUIRE(tree.set_node(0, Key::of("b"), 2, error));
  uint64_t sum = tree.sum();
  CHECK_FALSE(tree.set_node(0, Key::of("c"), 3, error));
  CHECK(error.find("3 nodes") != std::string::npos);
  CHECK(tree.sum() == sum);
  CHECK(tree.find(0, Key::of("c")) == nullptr);

  // 2 entries (2 * 17 bytes) held; 100 - 34 = 66 left: a 50-byte string fits
  // with its key (16 + 1 + 50), a 51-byte one does not.
  CHECK(tree.bytes_held() == 34);
  CHECK_FALSE(tree.set_scalar(1, Key::of("s"), Scalar::of_string(std::string(50, 'x')), error));
  CHECK(error.find("100 bytes") != std::string::npos);
  CHECK(tree.set_scalar(1, Key::of("s"), Scalar::of_string(std::string(49, 'x')), error));
  CHECK(tree.bytes_held() == 100);
  // Replacing a string frees its bytes first: one of the same size fits.
  CHECK(tree.set_scalar(1, Key::of("s"), Scalar::of_string(std::string(49, 'y')), error));
  CHECK_FALSE(tree.set_scalar(1, Key::of("s"), Scalar::of_string(std::string(50, 'y')), error));
  CHECK(tree.find(1, Key::of("s"))->scalar == Scalar::of_string(std::string(49, 'y')));
  CHECK_FALSE(tree.set_scalar(2, Key::of(int64_t{1}), Scalar::of_bool(true), error));
  check_exact(tree);
  CHECK(tree.erase(1, Key::of("s"), error));
  CHECK(tree.bytes_held() == 34);
}

TEST_CASE("state tree: a typed tree admits the schema's keys and stores canonical values") {
  Schema schema = arena_schema();
  StateTree tree(schema);
  std::string error;
  CHECK(tree.root().type->kind == Type::Kind::structure);
  CHECK_FALSE(tree.set_scalar(0, Key::of("nope"), Scalar::of_int(1), error));
  CHECK(error.find("not a field") != std::string::npos);
  CHECK_FALSE(tree.set_scalar(0, Key::of(int64_t{1}), Scalar::of_int(1), error));
  CHECK_FALSE(tree.set_scalar(0, Key::of("players"), Scalar::of_int(1), error));
  CHECK_FALSE(tree.set_node(0, Key::of("round"), 1, error));
  CHECK_FALSE(tree.set_scalar(0, Key::of("round"), Scalar::of_string("x"), error));
  CHECK(error == "a string is not a i32");
  CHECK(tree.set_scalar(0, Key::of("round"), Scalar::of_number(3.0), error));
  CHECK(tree.find(0, Key::of("round"))->scalar == Scalar::of_int(3));

  REQUIRE(tree.set_node(0, Key::of("players"), tree.allocate_ref(), error));
  uint32_t players = tree.find(0, Key::of("players"))->child;
  CHECK(tree.node(players)->type->kind == Type::Kind::map);
  // A map admits integer and string keys; its values are structs.
  CHECK_FALSE(tree.set_scalar(players, Key::of(int64_t{1}), Scalar::of_int(1), error));
  uint32_t p1 = tree.allocate_ref();
  REQUIRE(tree.set_node(players, Key::of(int64_t{1}), p1, error));
  REQUIRE(tree.set_node(players, Key::of("bot"), tree.allocate_ref(), error));
  CHECK(tree.set_scalar(p1, Key::of("x"), Scalar::of_number(0.1), error));
  CHECK(tree.find(p1, Key::of("x"))->scalar == Scalar::of_number(static_cast<double>(0.1f)));
  CHECK_FALSE(tree.set_scalar(p1, Key::of("hp"), Scalar::of_int(300), error));
  CHECK(error == "300 does not fit u8");
  CHECK_FALSE(tree.set_scalar(p1, Key::of("hp"), Scalar::of_number(2.5), error));
  CHECK(error == "2.5 does not fit u8");
  // An `any` field holds scalars of every kind and untyped tables.
  CHECK(tree.set_scalar(p1, Key::of("tags"), Scalar::of_string("red"), error));
  uint32_t tags = tree.allocate_ref();
  REQUIRE(tree.set_node(p1, Key::of("tags"), tags, error));
  CHECK(tree.node(tags)->type->kind == Type::Kind::any);
  CHECK(tree.set_scalar(tags, Key::of(int64_t{1}), Scalar::of_bool(true), error));
  CHECK(tree.set_node(tags, Key::of("sub"), tree.allocate_ref(), error));
  check_exact(tree);
  CHECK(tree.allocate_ref() == 6);
}

TEST_CASE("state tree: with index_fields a struct node's field index follows its entries, without it stays empty") {
  Schema schema = arena_schema();
  StateTree indexed(schema, true), mirror(schema);
  std::string error;
  CHECK(mirror.root().fields.empty());
  const Type& root = *indexed.root().type;
  REQUIRE(indexed.root().fields.size() == root.fields.size());
  auto at = [&](const StateTree::Node& node, const char* name) {
    return node.fields[static_cast<size_t>(node.type->field_index(name))];
  };
  CHECK(at(indexed.root(), "round") == nullptr);
  REQUIRE(indexed.set_scalar(0, Key::of("round"), Scalar::of_int(1), error));
  CHECK(at(indexed.root(), "round") == indexed.find(0, Key::of("round")));
  REQUIRE(indexed.set_node(0, Key::of("players"), indexed.allocate_ref(), error));
  uint32_t players = indexed.find(0, Key::of("players"))->child;
  CHECK(at(indexed.root(), "players") == indexed.find(0, Key::of("players")));
  CHECK(indexed.node(players)->fields.empty());  // a map
  uint32_t p1 = indexed.allocate_ref();
  REQUIRE(indexed.set_node(players, Key::of(int64_t{1}), p1, error));
  REQUIRE(indexed.set_scalar(p1, Key::of("x"), Scalar::of_number(1), error));
  CHECK(at(*indexed.node(p1), "x") == indexed.find(p1, Key::of("x")));
  CHECK(at(*indexed.node(p1), "hp") == nullptr);
  REQUIRE(indexed.erase(p1, Key::of("x"), error));
  CHECK(at(*indexed.node(p1), "x") == nullptr);
  REQUIRE(indexed.erase(0, Key::of("round"), error));
  CHECK(at(indexed.root(), "round") == nullptr);
  indexed.clear();
  CHECK(at(indexed.root(), "players") == nullptr);
}

TEST_CASE("state schema: canonical forms and refusals for every scalar type") {
  std::string error;
  auto canon = [&](Type::Kind kind, const Scalar& v) { return Schema::canonical(*scalar_type(kind), v, error); };
  CHECK(*canon(Type::Kind::any, Scalar::of_string("s")) == Scalar::of_string("s"));
  CHECK(*canon(Type::Kind::boolean, Scalar::of_bool(true)) == Scalar::of_bool(true));
  CHECK_FALSE(canon(Type::Kind::boolean, Scalar::of_int(1)));
  CHECK(error == "an integer is not a bool");
  CHECK(*canon(Type::Kind::string, Scalar::of_string("")) == Scalar::of_string(""));
  CHECK_FALSE(canon(Type::Kind::string, Scalar::of_number(1)));
  CHECK(*canon(Type::Kind::f64, Scalar::of_int(3)) == Scalar::of_number(3.0));
  CHECK(*canon(Type::Kind::f64, Scalar::of_number(0.1)) == Scalar::of_number(0.1));
  CHECK(*canon(Type::Kind::f32, Scalar::of_int(16777217)) == Scalar::of_number(16777216.0));
  CHECK(*canon(Type::Kind::f32, Scalar::of_number(-0.0)) == Scalar::of_number(-0.0));
  CHECK(std::isinf(canon(Type::Kind::f32, Scalar::of_number(INFINITY))->number));
  CHECK(std::isnan(canon(Type::Kind::f32, Scalar::of_number(NAN))->number));
  CHECK_FALSE(canon(Type::Kind::f32, Scalar::of_number(1e300)));
  CHECK(error == "1e+300 does not fit f32");
  CHECK_FALSE(canon(Type::Kind::f32, Scalar::of_bool(true)));
  CHECK(error == "a boolean is not a f32");

  struct Range { Type::Kind kind; int64_t lo, hi; };
  for (Range r : {Range{Type::Kind::i8, -128, 127}, Range{Type::Kind::u8, 0, 255}, Range{Type::Kind::i16, -32768, 32767},
                  Range{Type::Kind::u16, 0, 65535}, Range{Type::Kind::i32, INT32_MIN, INT32_MAX},
                  Range{Type::Kind::u32, 0, UINT32_MAX}, Range{Type::Kind::i64, INT64_MIN, INT64_MAX}}) {
    CAPTURE(type_name(r.kind));
    CHECK(*canon(r.kind, Scalar::of_int(r.lo)) == Scalar::of_int(r.lo));
    CHECK(*canon(r.kind, Scalar::of_int(r.hi)) == Scalar::of_int(r.hi));
    if (r.lo > INT64_MIN) CHECK_FALSE(canon(r.kind, Scalar::of_int(r.lo - 1)));
    if (r.hi < INT64_MAX) CHECK_FALSE(canon(r.kind, Scalar::of_int(r.hi + 1)));
    CHECK(*canon(r.kind, Scalar::of_number(7.0)) == Scalar::of_int(7));
    CHECK_FALSE(canon(r.kind, Scalar::of_number(7.5)));
    CHECK_FALSE(canon(r.kind, Scalar::of_number(NAN)));
    CHECK_FALSE(canon(r.kind, Scalar::of_string("7")));
  }
  CHECK_FALSE(canon(Type::Kind::i64, Scalar::of_number(9223372036854775808.0)));
  CHECK(*canon(Type::Kind::i64, Scalar::of_number(-9223372036854775808.0)) == Scalar::of_int(INT64_MIN));

  for (int k = 0; k <= static_cast<int>(Type::Kind::string); ++k) {
    auto kind = static_cast<Type::Kind>(k);
    CHECK(scalar_kind_from_name(type_name(kind)) == kind);
  }
  CHECK_FALSE(scalar_kind_from_name("float"));
  CHECK_FALSE(scalar_kind_from_name("map"));
}
