// The state-sync codec: a server tree encoded (write_update /
// write_snapshot_ops) and applied to a client tree (apply_ops) ends equal,
// content and sums; the bytes are those of docs/protocol.md; views filter
// entities out of the bytes; and malformed input (truncated, corrupted,
// bad refs, too deep, overflowing varints, past budgets) is refused with a
// reason, never a crash.
#include <doctest/doctest.h>

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

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[static_cast<uint8_t>(c) >> 4];
    out += digits[static_cast<uint8_t>(c) & 15];
  }
  return out;
}

std::unique_ptr<Type> type_of(Type::Kind kind) {
  auto t = std::make_unique<Type>();
  t->kind = kind;
  return t;
}
std::unique_ptr<Type> map_of(std::unique_ptr<Type> value) {
  auto t = type_of(Type::Kind::map);
  t->value = std::move(value);
  return t;
}
std::unique_ptr<Type> struct_of(std::vector<std::pair<std::string, std::unique_ptr<Type>>> fields) {
  auto t = type_of(Type::Kind::structure);
  t->fields = std::move(fields);
  return t;
}
template <class... Fields>
std::unique_ptr<Type> fields(Fields&&... f) {
  std::vector<std::pair<std::string, std::unique_ptr<Type>>> v;
  (v.emplace_back(std::move(f.first), std::move(f.second)), ...);
  return struct_of(std::move(v));
}
std::pair<std::string, std::unique_ptr<Type>> field(std::string name, std::unique_ptr<Type> type) {
  return {std::move(name), std::move(type)};
}
Schema make_schema(std::unique_ptr<Type> root) {
  std::string error;
  auto schema = Schema::from_type(std::move(root), error);
  REQUIRE_MESSAGE(schema, error);
  return std::move(*schema);
}

// Recomputes every sum from scratch (as the tree test does) and checks it.
uint64_t recompute(const StateTree& tree, uint32_t ref, uint64_t path) {
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
void check_same(const StateTree& server, const StateTree& client, uint32_t ref,
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
Schema every_type_schema() {
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

}  // namespace

TEST_CASE("state codec: the bytes of a small untyped and typed snapshot and patch") {
  Schema untyped;
  Sync u(untyped);
  u.set(0, Key::of("hp"), Scalar::of_int(100));
  CHECK(hex(u.snapshot()) == "00 01 00 02 68 70 02 c8 01");

  // { players = { map = { hp = "u8", x = "f32" } } } with players[7] = { hp = 100, x = 1.5 }
  Schema typed = make_schema(fields(field("players", map_of(fields(field("hp", type_of(Type::Kind::u8)),
                                                                     field("x", type_of(Type::Kind::f32)))))));
  Sync t(typed);
  uint32_t players = t.table(0, Key::of("players"));
  uint32_t p7 = t.table(players, Key::of(int64_t{7}));
  t.set(p7, Key::of("hp"), Scalar::of_int(100));
  t.set(p7, Key::of("x"), Scalar::of_number(1.5));
  CHECK(hex(t.snapshot()) == "00 02 01 01 01 0e 02 06 64 00 00 c0 3f");
  // One changed f32: ref, mask, 4 bytes.
  t.set(p7, Key::of("x"), Scalar::of_number(2.0));
  CHECK(hex(t.update(p7, {Key::of("x")})) == "02 04 00 00 00 40");
  REQUIRE(t.changes.size() == 1);
  CHECK(t.changes[0].kind == Change::Kind::scalar);
  CHECK(t.changes[0].ref == p7);
  CHECK(t.changes[0].key == Key::of("x"));
  CHECK(t.changes[0].value == Scalar::of_number(2.0));
  // A removal: mask bit 0, removal mask bit 0 (hp).
  t.erase(p7, Key::of("hp"));
  CHECK(hex(t.update(p7, {}, {Key::of("hp")})) == "02 01 01");
  REQUIRE(t.changes.size() == 1);
  CHECK(t.changes[0].kind == Change::Kind::removed);
  CHECK(t.changes[0].key == Key::of("hp"));
  // A removed entity: op 3 (remove integer key), zigzag 7.
  t.erase(players, Key::of(int64_t{7}));
  CHECK(hex(t.update(players, {Key::of(int64_t{7})})) == "01 01 03 0e");
  CHECK(t.client.node(p7) == nullptr);
  // The schema as the snapshot carries it.
  std::string schema_bytes;
  typed.encode(schema_bytes);
  CHECK(hex(schema_bytes) == hex("\x0c\x01\x07" "players" "\x0d\x0c\x02\x02" "hp" "\x05\x01" "x" "\x02"));
}

TEST_CASE("state codec: every type round-trips through a snapshot, extremes included") {
  Schema schema = every_type_schema();
  Sync s(schema);
  double nan = std::numeric_limits<double>::quiet_NaN();
  s.set(0, Key::of("b"), Scalar::of_bool(true));
  s.set(0, Key::of("f32"), Scalar::of_number(-0.0));
  s.set(0, Key::of("f64"), Scalar::of_number(nan));
  s.set(0, Key::of("i8"), Scalar::of_int(-128));
  s.set(0, Key::of("u8"), Scalar::of_int(255));
  s.set(0, Key::of("i16"), Scalar::of_int(-32768));
  s.set(0, Key::of("u16"), Scalar::of_int(65535));
  s.set(0, Key::of("i32"), Scalar::of_int(INT32_MIN));
  s.set(0, Key::of("u32"), Scalar::of_int(UINT32_MAX));
  s.set(0, Key::of("i64"), Scalar::of_int(INT64_MIN));
  s.set(0, Key::of("s"), Scalar::of_string(std::string("a\0b", 3) + std::string(300, 'z')));
  uint32_t any = s.table(0, Key::of("any"));
  s.set(any, Key::of(int64_t{1}), Scalar::of_bool(false));
  s.set(any, Key::of(int64_t{-5}), Scalar::of_int(INT64_MAX));
  s.set(any, Key::of(INT64_MIN), Scalar::of_number(std::numeric_limits<double>::infinity()));
  s.set(any, Key::of(""), Scalar::of_string(""));
  uint32_t nested = s.table(any, Key::of("t"));
  s.table(nested, Key::of("empty"));
  uint32_t players = s.table(0, Key::of("players"));
  for (int64_t id : {1, 2, 300}) {
    uint32_t p = s.table(players, Key::of(id));
    s.set(p, Key::of("x"), Scalar::of_number(id * 0.1));
    s.set(p, Key::of("hp"), Scalar::of_int(id % 256));
    uint32_t pos = s.table(p, Key::of("pos"));
    s.set(pos, Key::of("x"), Scalar::of_int(-id));
    s.set(pos, Key::of("y"), Scalar::of_int(id));
    uint32_t inv = s.table(p, Key::of("inv"));
    s.set(inv, Key::of("sword"), Scalar::of_int(4000000000));
  }
  s.table(players, Key::of("empty"));
  uint32_t grid = s.table(0, Key::of("grid"));
  uint32_t row = s.table(grid, Key::of(int64_t{3}));
  s.set(row, Key::of(int64_t{4}), Scalar::of_string("wall"));
  s.snapshot();
  // The client's changes rebuild the tree: one per entry.
  size_t entries = 0;
  for (uint32_t ref = 0; ref < 40; ++ref)
    if (const auto* n = s.server.node(ref)) entries += n->entries.size();
  CHECK(s.changes.size() == entries);
  CHECK(s.client.node_count() == s.server.node_count());

  // And each scalar again as a one-field patch.
  s.set(0, Key::of("i64"), Scalar::of_int(INT64_MAX));
  s.set(0, Key::of("f32"), Scalar::of_number(std::numeric_limits<float>::denorm_min()));
  s.set(0, Key::of("b"), Scalar::of_bool(false));
  s.update(0, {Key::of("i64"), Key::of("f32"), Key::of("b")});
  CHECK(s.changes.size() == 3);
}

TEST_CASE("state codec: every op of a patch applies as on the server, with its changes") {
  Schema untyped;
  Sync s(untyped);
  uint32_t players = s.table(0, Key::of("players"));
  s.update(0, {Key::of("players")});
  REQUIRE(s.changes.size() == 1);
  CHECK(s.changes[0].kind == Change::Kind::node);
  CHECK(s.changes[0].child == players);

  // Set string and integer keys, a new table with contents.
  uint32_t a = s.table(players, Key::of("a"));
  s.set(a, Key::of("x"), Scalar::of_number(1.25));
  s.set(players, Key::of(int64_t{-3}), Scalar::of_string("neg"));
  s.update(players, {Key::of("a"), Key::of(int64_t{-3})});
  CHECK(s.changes.size() == 3);

  // A scalar replaced by a table, a table replaced by a scalar (its subtree
  // gone on the client), a table replaced by a new table.
  uint32_t t = s.table(players, Key::of(int64_t{-3}));
  s.set(t, Key::of("k"), Scalar::of_int(1));
  s.set(players, Key::of("a"), Scalar::of_int(9));
  s.update(players, {Key::of(int64_t{-3}), Key::of("a")});
  CHECK(s.client.node(a) == nullptr);
  uint32_t t2 = s.table(players, Key::of(int64_t{-3}));
  s.update(players, {Key::of(int64_t{-3})});
  CHECK(s.client.node(t) == nullptr);
  CHECK(s.client.node(t2) != nullptr);

  // Removals, explicit and as set keys no longer present; absent keys are harmless.
  s.erase(players, Key::of("a"));
  s.erase(players, Key::of(int64_t{-3}));
  s.update(players, {Key::of("a")}, {Key::of(int64_t{-3}), Key::of("never")});
  CHECK(s.changes.size() == 2);
  CHECK(s.client.node(players)->entries.empty());

  // Several updates in one patch, as the server concatenates them.
  uint32_t b = s.table(players, Key::of("b"));
  s.set(0, Key::of("round"), Scalar::of_int(2));
  std::string ops;
  std::vector<Key> keys{Key::of("b")};
  write_update(s.server, players, keys, {}, ops);
  keys = {Key::of("round")};
  write_update(s.server, 0, keys, {}, ops);
  s.set(b, Key::of("hp"), Scalar::of_int(5));
  keys = {Key::of("hp")};
  write_update(s.server, b, keys, {}, ops);
  s.apply(ops);
  // An update of an unknown ref writes nothing.
  std::string none;
  write_update(s.server, 777, keys, {}, none);
  CHECK(none.empty());
}

TEST_CASE("state codec: struct masks set and remove fields, together and apart") {
  using K = Type::Kind;
  Schema schema = make_schema(fields(field("a", type_of(K::u8)), field("b", type_of(K::string)),
                                     field("c", fields(field("z", type_of(K::boolean)))), field("d", type_of(K::any))));
  Sync s(schema);
  s.set(0, Key::of("a"), Scalar::of_int(1));
  s.set(0, Key::of("b"), Scalar::of_string("x"));
  uint32_t c = s.table(0, Key::of("c"));
  s.set(c, Key::of("z"), Scalar::of_bool(true));
  s.set(0, Key::of("d"), Scalar::of_int(-1));
  s.snapshot();
  s.erase(0, Key::of("a"));
  s.erase(0, Key::of("c"));
  s.set(0, Key::of("b"), Scalar::of_string("y"));
  uint32_t d = s.table(0, Key::of("d"));
  s.set(d, Key::of(int64_t{1}), Scalar::of_int(1));
  std::string ops = s.update(0, {Key::of("b"), Key::of("d"), Key::of("a")}, {Key::of("c")});
  // mask: bit 0 (removals), field b (bit 2), field d (bit 4); removals: a (bit 0), c (bit 2).
  CHECK(hex(ops.substr(0, 3)) == "00 15 05");
  CHECK(s.client.node(c) == nullptr);
  // Keys the struct lacks are not written.
  std::string none;
  std::vector<Key> bad{Key::of("nope"), Key::of(int64_t{1})};
  write_update(s.server, 0, bad, bad, none);
  CHECK(hex(none) == "00 00");
}

TEST_CASE("state codec: a view's admit keeps a filtered entity's bytes out of the output") {
  Schema untyped;
  Sync s(untyped);
  uint32_t players = s.table(0, Key::of("players"));
  uint32_t a = s.table(players, Key::of("a"));
  s.set(a, Key::of("secret"), Scalar::of_string("SECRET-OF-A"));
  uint32_t b = s.table(players, Key::of("b"));
  s.set(b, Key::of("name"), Scalar::of_string("visible-b"));
  uint32_t inner = s.table(b, Key::of("inner"));
  s.set(inner, Key::of("deep"), Scalar::of_string("deep-b"));
  s.set(players, Key::of("count"), Scalar::of_int(2));
  s.set(0, Key::of("title"), Scalar::of_string("arena"));
  uint32_t other = s.table(0, Key::of("other"));
  uint32_t c = s.table(other, Key::of("a"));
  s.set(c, Key::of("v"), Scalar::of_string("other-a"));

  int calls = 0;
  Admit admit = [&](uint32_t collection, const Key& key) {
    ++calls;
    return !(collection == players && key == Key::of("a"));
  };
  auto expect_filtered = [&](const std::string& ops) {
    CHECK(ops.find("SECRET-OF-A") == std::string::npos);
    CHECK(ops.find("visible-b") != std::string::npos);
    CHECK(ops.find("deep-b") != std::string::npos);
  };
  std::string ops;
  write_snapshot_ops(s.server, ops, &admit);
  // One call per entity: a, b in players, a in other; never for scalars or deeper nodes.
  CHECK(calls == 3);
  expect_filtered(ops);
  CHECK(ops.find("other-a") != std::string::npos);
  std::vector<Change> changes;
  REQUIRE_MESSAGE(apply_ops(s.client, ops, changes, s.error), s.error);
  std::vector<std::pair<uint32_t, Key>> hidden{{players, Key::of("a")}};
  check_same(s.server, s.client, 0, hidden);
  // The view's checksum: the root's sum less the hidden entity's.
  CHECK(s.client.sum() == s.server.sum() - s.server.node(a)->sum);

  // A new collection written from the root, and entities written by key.
  ops.clear();
  std::vector<Key> keys{Key::of("players")};
  write_update(s.server, 0, keys, {}, ops, &admit);
  expect_filtered(ops);
  ops.clear();
  keys = {Key::of("a"), Key::of("b")};
  write_update(s.server, players, keys, {}, ops, &admit);
  expect_filtered(ops);
  // An empty update of the root is valid and changes nothing.
  uint64_t before = s.client.sum();
  changes.clear();
  REQUIRE_MESSAGE(apply_ops(s.client, std::string("\x00\x00", 2), changes, s.error), s.error);
  CHECK(changes.empty());
  CHECK(s.client.sum() == before);
  // A null or empty admit admits everything.
  Admit empty;
  ops.clear();
  write_snapshot_ops(s.server, ops, &empty);
  CHECK(ops.find("SECRET-OF-A") != std::string::npos);

  // Typed: a struct collection whose fields are entities.
  using K = Type::Kind;
  Schema typed = make_schema(fields(field("teams", fields(field("blue", fields(field("s", type_of(K::string)))),
                                                          field("red", fields(field("s", type_of(K::string))))))));
  Sync t(typed);
  uint32_t teams = t.table(0, Key::of("teams"));
  t.set(t.table(teams, Key::of("red")), Key::of("s"), Scalar::of_string("RED-PLAN"));
  t.set(t.table(teams, Key::of("blue")), Key::of("s"), Scalar::of_string("BLUE-PLAN"));
  Admit blue_only = [&](uint32_t, const Key& key) { return key == Key::of("blue"); };
  ops.clear();
  write_snapshot_ops(t.server, ops, &blue_only);
  CHECK(ops.find("RED-PLAN") == std::string::npos);
  CHECK(ops.find("BLUE-PLAN") != std::string::npos);
  REQUIRE_MESSAGE(apply_ops(t.client, ops, changes, t.error), t.error);
  CHECK(t.client.find(teams, Key::of("red")) == nullptr);
  CHECK(t.client.find(teams, Key::of("blue")) != nullptr);
}

namespace {

// A rich snapshot frame (header, schema, ops) of every_type_schema().
std::string rich_frame(const Schema& schema) {
  Sync s(schema);
  s.set(0, Key::of("s"), Scalar::of_string("hello"));
  s.set(0, Key::of("i64"), Scalar::of_int(-77));
  s.set(0, Key::of("f32"), Scalar::of_number(0.5));
  uint32_t any = s.table(0, Key::of("any"));
  s.set(any, Key::of(int64_t{2}), Scalar::of_number(2.5));
  s.set(s.table(any, Key::of("t")), Key::of("z"), Scalar::of_bool(true));
  uint32_t players = s.table(0, Key::of("players"));
  for (int64_t id : {1, 2}) {
    uint32_t p = s.table(players, Key::of(id));
    s.set(p, Key::of("hp"), Scalar::of_int(id));
    uint32_t pos = s.table(p, Key::of("pos"));
    s.set(pos, Key::of("y"), Scalar::of_int(-id));
    s.set(s.table(p, Key::of("inv")), Key::of("gem"), Scalar::of_int(3));
  }
  FrameHeader header;
  header.kind = FrameKind::snapshot;
  header.room = 300;
  header.seq = 0;
  header.checksum = s.server.checksum();
  std::string frame;
  write_header(header, frame, &schema);
  write_snapshot_ops(s.server, frame);
  return frame;
}

// Decodes a whole snapshot frame into a fresh tree; on success the tree's
// sums are exact. Returns whether it decoded, with a reason when not.
bool decode_frame(std::string_view frame, std::string& error) {
  FrameHeader header;
  std::string_view schema_bytes, ops;
  if (!read_header(frame, header, schema_bytes, ops, error)) return false;
  auto schema = Schema::decode(schema_bytes, error);
  if (!schema) return false;
  StateTree tree(*schema);
  std::vector<Change> changes;
  bool ok = apply_ops(tree, ops, changes, error);
  recompute(tree, 0, kRootPath);
  return ok;
}

std::string apply_error(StateTree& tree, std::string_view ops) {
  std::vector<Change> changes;
  std::string error;
  CHECK_FALSE(apply_ops(tree, ops, changes, error));
  return error;
}

}  // namespace

TEST_CASE("state codec: a snapshot frame cut at every length, or with any byte changed, is refused, never a crash") {
  Schema schema = every_type_schema();
  std::string frame = rich_frame(schema);
  std::string error;
  REQUIRE_MESSAGE(decode_frame(frame, error), error);
  FrameHeader header;
  std::string_view schema_bytes, ops;
  REQUIRE(read_header(frame, header, schema_bytes, ops, error));
  const size_t ops_at = frame.size() - ops.size();
  // Every strict prefix fails (the header, the schema and the single update
  // all say how much follows), but the one that ends before the ops: no
  // update at all is a valid, empty snapshot.
  for (size_t n = 0; n < frame.size(); ++n) {
    CAPTURE(n);
    error.clear();
    bool ok = decode_frame(std::string_view(frame).substr(0, n), error);
    CHECK(ok == (n == ops_at));
    if (!ok) CHECK_FALSE(error.empty());
  }
  // Every byte replaced by a few values: decodes or is refused with a reason.
  size_t refused = 0, tried = 0;
  for (size_t i = 0; i < frame.size(); ++i) {
    for (uint8_t v : {0x00, 0x01, 0x05, 0x7f, 0x80, 0xff}) {
      std::string bad = frame;
      bad[i] = static_cast<char>(v);
      error.clear();
      ++tried;
      if (!decode_frame(bad, error)) {
        ++refused;
        CHECK_FALSE(error.empty());
      }
    }
  }
  CHECK(refused > 0);
  MESSAGE(refused << " of " << tried << " corrupted frames refused");
  // Random bytes as ops on an untyped and a typed tree.
  std::mt19937 rng(99);
  Schema untyped;
  for (int round = 0; round < 2000; ++round) {
    std::string ops(rng() % 40, '\0');
    for (char& c : ops) c = static_cast<char>(rng() % 8 == 0 ? rng() : rng() % 6);
    StateTree a(untyped), b(schema);
    std::vector<Change> changes;
    error.clear();
    if (!apply_ops(a, ops, changes, error)) CHECK_FALSE(error.empty());
    recompute(a, 0, kRootPath);
    error.clear();
    if (!apply_ops(b, ops, changes, error)) CHECK_FALSE(error.empty());
    recompute(b, 0, kRootPath);
  }
}

TEST_CASE("state codec: unknown refs, refs in use and huge refs are refused") {
  Schema untyped;
  StateTree tree(untyped);
  CHECK(apply_error(tree, "\x05\x00").find("unknown node ref 5") != std::string::npos);
  // root: set "a" to a new table with ref 1, then another key to ref 1 again.
  std::string ops("\x00\x02\x00\x01" "a\x05\x01\x00" "\x00\x01" "b\x05\x01\x00", 14);
  CHECK(apply_error(tree, ops).find("ref 1 is already in use") != std::string::npos);
  tree.clear();
  CHECK(apply_error(tree, std::string("\x00\x01\x00\x01" "a\x05\x00\x00", 8)).find("ref 0 is already in use") != std::string::npos);
  tree.clear();
  // 2^32 - 1 (the tree's "none") and 2^32 are not refs.
  CHECK(apply_error(tree, std::string("\x00\x01\x00\x01" "a\x05\xff\xff\xff\xff\x0f\x00", 12)).find("in use") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x80\x80\x80\x80\x10\x00", 6)).find("unknown node ref 4294967296") != std::string::npos);
}

TEST_CASE("state codec: nesting past kMaxDepth, overflowing varints and bad tags are refused") {
  Schema untyped;
  auto nested = [](uint32_t depth) {
    // Each level: count 1, set "a", tag table, a fresh ref; the last table empty.
    std::string ops(1, '\0');
    for (uint32_t ref = 1; ref <= depth; ++ref) {
      ops += std::string("\x01\x00\x01" "a\x05", 5);
      ops += static_cast<char>(ref);  // refs below 128: one byte
    }
    ops += '\0';
    return ops;
  };
  {
    StateTree tree(untyped);
    std::vector<Change> changes;
    std::string error;
    CHECK_MESSAGE(apply_ops(tree, nested(kMaxDepth), changes, error), error);
    CHECK(tree.node(kMaxDepth)->depth == kMaxDepth);
  }
  {
    StateTree tree(untyped);
    CHECK(apply_error(tree, nested(kMaxDepth + 1)).find("deeper than 64") != std::string::npos);
  }
  StateTree tree(untyped);
  CHECK(apply_error(tree, std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10)).find("overflows") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11)).find("overflows") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11)).find("truncated") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x00\x01\x04\x01" "a", 5)).find("unknown entry op 4") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x00\x01\x00\x01" "a\x06", 6)).find("unknown value tag 6") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x00\x01\x00\x05" "a", 5)).find("truncated") != std::string::npos);
  CHECK(apply_error(tree, std::string("\x00\x01\x00\x01" "a\x03\x00\x00", 8)).find("truncated") != std::string::npos);

  using K = Type::Kind;
  Schema typed = make_schema(fields(field("a", type_of(K::boolean)), field("b", type_of(K::u8))));
  StateTree t(typed);
  CHECK(apply_error(t, std::string("\x00\x08", 2)).find("names a field the struct lacks") != std::string::npos);
  CHECK(apply_error(t, std::string("\x00\x01\x04", 3)).find("removal mask names a field") != std::string::npos);
  CHECK(apply_error(t, std::string("\x00\x02\x02", 3)).find("a bool of 2") != std::string::npos);
  CHECK(apply_error(t, std::string("\x00\x04", 2)).find("truncated") != std::string::npos);
}

TEST_CASE("state codec: the client tree's budgets bound what a snapshot can make it hold") {
  Schema untyped;
  Sync s(untyped);
  for (int64_t i = 0; i < 100; ++i) s.set(s.table(0, Key::of(i)), Key::of("s"), Scalar::of_string(std::string(100, 'x')));
  std::string ops;
  write_snapshot_ops(s.server, ops);
  StateTree nodes_capped(untyped);
  nodes_capped.set_budget(50, size_t{1} << 20);
  CHECK(apply_error(nodes_capped, ops).find("budget of 50 nodes") != std::string::npos);
  CHECK(nodes_capped.node_count() <= 50);
  StateTree bytes_capped(untyped);
  bytes_capped.set_budget(1000, 5000);
  CHECK(apply_error(bytes_capped, ops).find("budget of 5000 bytes") != std::string::npos);
  CHECK(bytes_capped.bytes_held() <= 5000);
}

TEST_CASE("state codec: the schema round-trips and its decoder refuses malformed encodings") {
  Schema schema = every_type_schema();
  std::string bytes;
  schema.encode(bytes);
  std::string error;
  auto back = Schema::decode(bytes, error);
  REQUIRE_MESSAGE(back, error);
  std::string again;
  back->encode(again);
  CHECK(again == bytes);
  CHECK(back->typed());
  for (size_t n = 0; n < bytes.size(); ++n) CHECK_FALSE(Schema::decode(std::string_view(bytes).substr(0, n), error));

  Schema untyped;
  bytes.clear();
  untyped.encode(bytes);
  CHECK(hex(bytes) == "00");
  CHECK_FALSE(untyped.typed());
  // { b = { map = "u8" }, a = "f32" } -> fields sorted: a, b.
  Schema small = make_schema(fields(field("b", map_of(type_of(Type::Kind::u8))), field("a", type_of(Type::Kind::f32))));
  bytes.clear();
  small.encode(bytes);
  CHECK(hex(bytes) == "0c 02 01 61 02 01 62 0d 05");
  CHECK(small.root().field_index("a") == 0);
  CHECK(small.root().field_index("b") == 1);
  CHECK(small.root().field_index("c") == -1);

  auto refused = [&](std::string_view b, std::string_view why) {
    error.clear();
    CHECK_FALSE(Schema::decode(b, error));
    CHECK_MESSAGE(error.find(why) != std::string::npos, error);
  };
  refused(std::string("\x0e", 1), "unknown type tag 14");
  refused(std::string("\x0c\x02\x01" "b\x01\x01" "a\x01", 9), "strictly increasing");
  refused(std::string("\x0c\x02\x01" "a\x01\x01" "a\x01", 9), "strictly increasing");
  refused(std::string("\x0c\x3f", 2), "63 fields");
  refused(std::string("\x00\x00", 2), "1 trailing bytes");
  refused(std::string("\x02", 1), "the root is a f32");
  refused(std::string("\x0c\x01\x05", 3), "truncated");
  refused(std::string(70, '\x0d') + '\x00', "nested deeper than 65");
  CHECK(Schema::decode(std::string(65, '\x0d') + '\x00', error));

  // from_type checks what the constructor takes on trust.
  std::vector<std::pair<std::string, std::unique_ptr<Type>>> many;
  for (int i = 0; i < 63; ++i) many.emplace_back("f" + std::to_string(100 + i), type_of(Type::Kind::u8));
  CHECK_FALSE(Schema::from_type(struct_of(std::move(many)), error));
  CHECK(error.find("63 fields") != std::string::npos);
  CHECK_FALSE(Schema::from_type(fields(field("x", type_of(Type::Kind::u8)), field("x", type_of(Type::Kind::u8))), error));
  CHECK(error.find("'x' twice") != std::string::npos);
  CHECK_FALSE(Schema::from_type(type_of(Type::Kind::map), error));
  CHECK_FALSE(Schema::from_type(type_of(Type::Kind::string), error));
}

TEST_CASE("state codec: frame headers of every kind, byte by byte, and their refusals") {
  std::string out;
  FrameHeader ack;
  ack.kind = FrameKind::ack;
  ack.room = 7;
  ack.seq = 5;
  ack.checksum = 0x12345678;
  write_header(ack, out);
  CHECK(hex(out) == "03 07 05 00 78 56 34 12");
  FrameHeader h;
  std::string_view schema_bytes, rest;
  std::string error;
  REQUIRE(read_header(out, h, schema_bytes, rest, error));
  CHECK(h.kind == FrameKind::ack);
  CHECK(h.room == 7);
  CHECK(h.seq == 5);
  CHECK(h.checksum == 0x12345678u);
  CHECK_FALSE(read_header(out + "x", h, schema_bytes, rest, error));
  CHECK(error.find("1 trailing bytes") != std::string::npos);

  out.clear();
  FrameHeader resync;
  resync.kind = FrameKind::resync;
  resync.room = 200;
  resync.reason = ResyncReason::checksum;
  write_header(resync, out);
  CHECK(hex(out) == "04 c8 01 02");
  REQUIRE(read_header(out, h, schema_bytes, rest, error));
  CHECK(h.reason == ResyncReason::checksum);
  CHECK(std::string(resync_reason_name(h.reason)) == "checksum");
  out.back() = 5;
  CHECK_FALSE(read_header(out, h, schema_bytes, rest, error));
  CHECK(error.find("unknown resync reason 5") != std::string::npos);

  out.clear();
  FrameHeader patch;
  patch.kind = FrameKind::patch;
  patch.room = 1;
  patch.seq = 65535;
  patch.checksum = 1;
  write_header(patch, out);
  out += "OPS";
  CHECK(hex(out) == "02 01 ff ff 01 00 00 00 4f 50 53");
  REQUIRE(read_header(out, h, schema_bytes, rest, error));
  CHECK(h.seq == 65535);
  CHECK(rest == "OPS");
  CHECK(schema_bytes.empty());

  out.clear();
  FrameHeader snap;
  snap.kind = FrameKind::snapshot;
  snap.room = 2;
  write_header(snap, out);  // no schema: untyped
  out += "OPS";
  CHECK(hex(out) == "01 02 00 00 00 00 00 00 01 00 4f 50 53");
  REQUIRE(read_header(out, h, schema_bytes, rest, error));
  CHECK(hex(schema_bytes) == "00");
  CHECK(rest == "OPS");
  // A schema longer than 127 bytes: a two-byte length.
  Schema schema = make_schema(fields(field(std::string(200, 'n'), type_of(Type::Kind::u8))));
  std::string encoded;
  schema.encode(encoded);
  REQUIRE(encoded.size() > 127);
  out.clear();
  write_header(snap, out, &schema);
  REQUIRE(read_header(out, h, schema_bytes, rest, error));
  CHECK(schema_bytes == encoded);
  CHECK(rest.empty());

  CHECK_FALSE(read_header("", h, schema_bytes, rest, error));
  CHECK_FALSE(read_header("\x05", h, schema_bytes, rest, error));
  CHECK(error.find("not a state frame") != std::string::npos);
  CHECK(is_state_frame("\x01"));
  CHECK(is_state_frame("\x04"));
  CHECK_FALSE(is_state_frame(""));
  CHECK_FALSE(is_state_frame(std::string(1, '\0')));
  CHECK_FALSE(is_state_frame("\x05"));
  CHECK_FALSE(is_state_frame("\x83"));  // a msgpack map
  CHECK_FALSE(is_state_frame("{"));     // json
}
