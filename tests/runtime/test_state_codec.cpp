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

#include "tests/runtime/state_codec_test_util.hpp"

using namespace nshost::state;
using namespace nshost::state::codec_test;

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
