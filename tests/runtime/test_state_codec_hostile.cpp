// The state-sync codec against malformed input: frames cut at every length
// or corrupted, bad refs, nesting past the limit, overflowing varints, bad
// tags, budgets, malformed schemas and frame headers are refused with a
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
