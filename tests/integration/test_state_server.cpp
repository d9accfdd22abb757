// State sync, server side (docs/state.md "Server"): a real nshost server
// running tests/scripts/rooms/state_server.lua, and bare ENet peers
// (tests/support/room_peers.hpp) that read the state frames by hand with the
// codec: each peer keeps a StateTree mirror, applies every snapshot and
// patch, and checks the frame's seq and checksum, as a client does. Every
// wait has a deadline.
#include <doctest/doctest.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/state/state_codec.hpp"
#include "tests/integration/rooms_util.hpp"

using namespace nshost;
using namespace nshost::test;
using namespace nshost::test::rooms_util;
using state::Key;

namespace {

// One client's mirror of its view, built from the frames as a client does.
struct Mirror {
  std::unique_ptr<state::Schema> schema;
  std::unique_ptr<state::StateTree> tree;
  uint64_t room = 0;
  uint16_t seq = 0;
  uint32_t checksum = 0;
  size_t snapshots = 0, patches = 0;
  std::string error;  // the first frame that did not apply ("" while all did)

  // Applies one frame; false (error set) when it does not decode, skips a
  // seq or ends with another checksum.
  bool apply(std::string_view frame) {
    state::FrameHeader h;
    std::string_view schema_bytes, ops;
    std::string why;
    if (!state::read_header(frame, h, schema_bytes, ops, why)) return fail("header: " + why);
    std::vector<state::Change> changes;
    if (h.kind == state::FrameKind::snapshot) {
      auto decoded = state::Schema::decode(schema_bytes, why);
      if (!decoded) return fail("schema: " + why);
      tree.reset();
      schema = std::make_unique<state::Schema>(std::move(*decoded));
      tree = std::make_unique<state::StateTree>(*schema);
      ++snapshots;
    } else if (h.kind == state::FrameKind::patch) {
      if (!tree) return fail("a patch before any snapshot");
      if (h.seq != static_cast<uint16_t>(seq + 1))
        return fail("gap: seq " + std::to_string(h.seq) + " after " + std::to_string(seq));
      ++patches;
    } else {
      return fail("a client-to-server frame from the server");
    }
    if (!state::apply_ops(*tree, ops, changes, why)) return fail("ops: " + why);
    if (tree->checksum() != h.checksum)
      return fail("checksum " + std::to_string(tree->checksum()) + " != " + std::to_string(h.checksum));
    room = h.room;
    seq = h.seq;
    checksum = h.checksum;
    return true;
  }
  bool fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  // The entry at a path of keys from the root, or null.
  const state::StateTree::Entry* at(const std::vector<Key>& path) const {
    if (!tree) return nullptr;
    uint32_t ref = state::StateTree::kRoot;
    const state::StateTree::Entry* e = nullptr;
    for (const Key& k : path) {
      if (e) {
        if (!e->is_node()) return nullptr;
        ref = e->child;
      }
      e = tree->find(ref, k);
      if (!e) return nullptr;
    }
    return e;
  }
  std::optional<int64_t> integer(const std::vector<Key>& path) const {
    auto* e = at(path);
    if (!e || e->is_node() || e->scalar.kind != state::Scalar::Kind::integer) return std::nullopt;
    return e->scalar.integer;
  }
};

Key k(const char* s) { return Key::of(std::string_view(s)); }
Key k(int64_t i) { return Key::of(i); }

std::string ack_frame(uint64_t room, uint16_t seq, uint32_t checksum) {
  state::FrameHeader h;
  h.kind = state::FrameKind::ack;
  h.room = room;
  h.seq = seq;
  h.checksum = checksum;
  std::string out;
  state::write_header(h, out);
  return out;
}

std::string resync_frame(uint64_t room) {
  state::FrameHeader h;
  h.kind = state::FrameKind::resync;
  h.room = room;
  h.reason = state::ResyncReason::requested;
  std::string out;
  state::write_header(h, out);
  return out;
}

// Applies every frame peer i has received; returns how many it applied.
size_t drain(RoomPeers& peers, size_t i, Mirror& m) {
  size_t n = 0;
  auto& frames = peers.state_frames(i);
  while (!frames.empty()) {
    std::string frame = std::move(frames.front());
    frames.pop_front();
    m.apply(frame);
    ++n;
  }
  return n;
}

// Pumps until `done(mirror)` holds after applying what arrived.
bool until(RoomPeers& peers, size_t i, Mirror& m, const std::function<bool()>& done, int timeout_ms = 5000) {
  return peers.wait(
      [&] {
        drain(peers, i, m);
        return done();
      },
      timeout_ms);
}

void ack(RoomPeers& peers, size_t i, const Mirror& m) {
  peers.send_raw(i, ack_frame(m.room, m.seq, m.checksum), wire::kChannelRoomUnreliable);
  peers.flush();
}

Payload view_options(const char* view) {
  return [view](Writer& w) {
    w.begin_map(1);
    w.key("view");
    w.string(view);
  };
}

Payload xy(int64_t x, int64_t y) {
  return [x, y](Writer& w) {
    w.begin_map(2);
    w.key("x");
    w.integer(x);
    w.key("y");
    w.integer(y);
  };
}

Payload integer(int64_t v) {
  return [v](Writer& w) { w.integer(v); };
}

Server state_server(std::vector<std::string> extra = {}) {
  Server server = start_server(test_script("rooms/state_server.lua"), std::move(extra));
  REQUIRE(server.port > 0);
  return server;
}

std::optional<Value> stats(RoomPeers& peers, size_t i, int64_t room) {
  say(peers, i, room, "stats");
  return heard(peers, i, "stats");
}

}  // namespace

TEST_CASE("state: a client joining late gets the whole state, then the same patches as the others") {
  Server server = state_server();
  RoomPeers peers(server.port, 2);
  welcome_all(peers);
  const int64_t id0 = static_cast<int64_t>(peers.welcome(0).session_id);
  const int64_t id1 = static_cast<int64_t>(peers.welcome(1).session_id);
  Mirror m0, m1;
  int64_t room = joined(join(peers, 0, "state"));
  REQUIRE(until(peers, 0, m0, [&] { return m0.snapshots == 1; }));
  CHECK(m0.error == "");
  CHECK(m0.room == static_cast<uint64_t>(room));
  CHECK(m0.integer({k("round")}) == 1);
  for (int64_t step = 1; step <= 5; ++step) {
    say(peers, 0, room, "move", xy(step * 10, -step));
    REQUIRE(until(peers, 0, m0, [&] { return m0.integer({k("players"), k(id0), k("x")}) == step * 10; }));
    ack(peers, 0, m0);
  }
  CHECK(m0.error == "");
  CHECK(m0.patches >= 5);

  REQUIRE(joined(join(peers, 1, "state")) == room);
  REQUIRE(until(peers, 1, m1, [&] { return m1.snapshots == 1; }));
  CHECK(m1.error == "");
  // The whole state: the first player where it moved, the second joined.
  CHECK(m1.integer({k("players"), k(id0), k("x")}) == 50);
  CHECK(m1.integer({k("players"), k(id0), k("y")}) == -5);
  CHECK(m1.at({k("players"), k(id0), k("inv"), k(1)}) != nullptr);
  CHECK(m1.at({k("title")}) != nullptr);
  REQUIRE(until(peers, 1, m1, [&] { return m1.at({k("players"), k(id1)}) != nullptr; }));
  REQUIRE(until(peers, 0, m0, [&] { return m0.at({k("players"), k(id1)}) != nullptr; }));

  // From now on both apply the same patches and hold the same tree.
  for (int64_t step = 1; step <= 5; ++step) {
    say(peers, 1, room, "move", xy(step, step));
    REQUIRE(until(peers, 0, m0, [&] { return m0.integer({k("players"), k(id1), k("x")}) == step; }));
    REQUIRE(until(peers, 1, m1, [&] { return m1.integer({k("players"), k(id1), k("x")}) == step; }));
    ack(peers, 0, m0);
    ack(peers, 1, m1);
  }
  CHECK(m0.error == "");
  CHECK(m1.error == "");
  CHECK(m0.tree->sum() == m1.tree->sum());
  // A player that leaves is removed from the other's mirror.
  peers.send(0, "room.leave", room_payload(room));
  REQUIRE(until(peers, 1, m1, [&] { return m1.at({k("players"), k(id0)}) == nullptr; }));
  CHECK(m1.error == "");
  auto s = stats(peers, 1, room);
  REQUIRE(s);
  CHECK(s->integer_at("snapshots") == 2);
  CHECK(s->integer_at("patches").value_or(0) >= 10);
  CHECK(s->integer_at("bytes").value_or(0) > 0);
  CHECK(peers.undecodable(0) == 0);
  CHECK(peers.undecodable(1) == 0);
}

TEST_CASE("state: a filtered entity's bytes never reach the other client, entering and leaving the view") {
  Server server = state_server();
  RoomPeers peers(server.port, 3);
  welcome_all(peers);
  const int64_t id0 = static_cast<int64_t>(peers.welcome(0).session_id);
  const int64_t id1 = static_cast<int64_t>(peers.welcome(1).session_id);
  const int64_t id2 = static_cast<int64_t>(peers.welcome(2).session_id);
  const std::string secret0 = "SECRET-" + std::to_string(id0) + "-";
  const std::string secret1 = "SECRET-" + std::to_string(id1) + "-";
  Mirror m0, m1, m2;
  // 0 sees only itself; 1 sees only itself; 2 sees the players left of x = 100.
  int64_t room = joined(join(peers, 0, "state", view_options("self")));
  REQUIRE(joined(join(peers, 1, "state", view_options("self"))) == room);
  REQUIRE(joined(join(peers, 2, "state", view_options("near"))) == room);
  REQUIRE(until(peers, 0, m0, [&] { return m0.at({k("players"), k(id0)}) != nullptr; }));
  REQUIRE(until(peers, 1, m1, [&] { return m1.at({k("players"), k(id1)}) != nullptr; }));
  REQUIRE(until(peers, 2, m2, [&] {
    return m2.at({k("players"), k(id0)}) && m2.at({k("players"), k(id1)}) && m2.at({k("players"), k(id2)});
  }));
  for (int64_t step = 1; step <= 5; ++step) {
    say(peers, 0, room, "move", xy(step, 0));
    say(peers, 1, room, "move", xy(0, step));
    REQUIRE(until(peers, 0, m0, [&] { return m0.integer({k("players"), k(id0), k("x")}) == step; }));
    REQUIRE(until(peers, 1, m1, [&] { return m1.integer({k("players"), k(id1), k("y")}) == step; }));
    REQUIRE(until(peers, 2, m2, [&] {
      return m2.integer({k("players"), k(id0), k("x")}) == step && m2.integer({k("players"), k(id1), k("y")}) == step;
    }));
  }
  // Nobody got another's entity, on the wire or in its mirror; scalars of
  // the root and the collections are everyone's.
  CHECK(m0.at({k("players"), k(id1)}) == nullptr);
  CHECK(m1.at({k("players"), k(id0)}) == nullptr);
  CHECK(m0.at({k("round")}) != nullptr);
  CHECK(peers.room_bytes(0).find(secret1) == std::string::npos);
  CHECK(peers.room_bytes(1).find(secret0) == std::string::npos);
  CHECK(peers.room_bytes(0).find(secret0) != std::string::npos);  // the test looks for the right thing
  CHECK(peers.room_bytes(2).find(secret0) != std::string::npos);

  // Entering the view sends the entity whole, leaving sends its removal.
  say(peers, 1, room, "show", integer(id0));
  REQUIRE(until(peers, 1, m1, [&] { return m1.integer({k("players"), k(id0), k("x")}) == 5; }));
  CHECK(m1.at({k("players"), k(id0), k("inv"), k(1)}) != nullptr);
  CHECK(peers.room_bytes(1).find(secret0) != std::string::npos);
  say(peers, 0, room, "move", xy(6, 0));
  REQUIRE(until(peers, 1, m1, [&] { return m1.integer({k("players"), k(id0), k("x")}) == 6; }));
  say(peers, 1, room, "hide", integer(id0));
  REQUIRE(until(peers, 1, m1, [&] { return m1.at({k("players"), k(id0)}) == nullptr; }));
  // A function view: 0 walks out of 2's view and back in.
  say(peers, 0, room, "move", xy(150, 0));
  REQUIRE(until(peers, 2, m2, [&] { return m2.at({k("players"), k(id0)}) == nullptr; }));
  REQUIRE(until(peers, 0, m0, [&] { return m0.integer({k("players"), k(id0), k("x")}) == 150; }));
  say(peers, 0, room, "move", xy(40, 1));
  REQUIRE(until(peers, 2, m2, [&] { return m2.integer({k("players"), k(id0), k("x")}) == 40; }));
  CHECK(m2.integer({k("players"), k(id0), k("y")}) == 1);
  CHECK(m0.error == "");
  CHECK(m1.error == "");
  CHECK(m2.error == "");
  // 1 hid 0 again and 0 kept moving: nothing of 0 reached 1 since.
  CHECK(m1.at({k("players"), k(id0)}) == nullptr);
}

TEST_CASE("state: an ack-less client stops getting patches after --state-ack-timeout, then gets a snapshot") {
  Server server = state_server({"--state-ack-timeout=600"});
  RoomPeers peers(server.port, 2);
  welcome_all(peers);
  Mirror m0, m1;
  int64_t room = joined(join(peers, 0, "big"));
  REQUIRE(joined(join(peers, 1, "big")) == room);
  REQUIRE(until(peers, 0, m0, [&] { return m0.snapshots == 1; }));
  REQUIRE(until(peers, 1, m1, [&] { return m1.snapshots == 1; }));
  // 0 acks every patch; 1 never does. 32 KiB of state change per message.
  int64_t n = 0;
  auto step = [&] {
    ++n;
    say(peers, 0, room, "blob", [&](Writer& w) {
      w.begin_map(2);
      w.key("n");
      w.integer(n);
      w.key("size");
      w.integer(32 * 1024);
    });
    peers.pump(40);
    drain(peers, 0, m0);
    drain(peers, 1, m1);
    ack(peers, 0, m0);
  };
  int64_t start = now_ms();
  while (now_ms() - start < 1200) step();
  CHECK(m0.error == "");
  CHECK(m1.error == "");
  size_t m1_patches = m1.patches;
  CHECK(m1_patches > 0);
  // Past the timeout: 0 still gets patches, 1 none.
  const int64_t rss_before = rss_bytes(server.process->pid());
  size_t m0_patches = m0.patches;
  start = now_ms();
  while (now_ms() - start < 2000) step();
  CHECK(m0.patches > m0_patches + 10);
  CHECK(m1.patches == m1_patches);
  CHECK(m1.error == "");
  // The server keeps nothing for it meanwhile: no queue, no history.
  const int64_t rss_after = rss_bytes(server.process->pid());
  if (!kSanitizedBuild) CHECK(rss_after - rss_before < 8 * 1024 * 1024);
  auto s = stats(peers, 0, room);
  REQUIRE(s);
  CHECK(s->integer_at("stalled") == 1);
  CHECK(server_logged(server, peers, "no state patches until it acks"));
  // It acks: a snapshot, then patches again.
  ack(peers, 1, m1);
  REQUIRE(until(peers, 1, m1, [&] { return m1.snapshots == 2; }));
  CHECK(m1.error == "");
  step();
  ack(peers, 1, m1);
  REQUIRE(until(peers, 1, m1, [&] { return m1.patches > m1_patches; }));
  CHECK(m1.error == "");
}

TEST_CASE("state: --state-ack-timeout counts only while a frame waits for its ack: an idle room stalls no one") {
  Server server = state_server({"--state-ack-timeout=300"});
  RoomPeers peers(server.port, 1);
  welcome_all(peers);
  Mirror m;
  int64_t room = joined(join(peers, 0, "big"));
  REQUIRE(until(peers, 0, m, [&] { return m.snapshots == 1; }));
  ack(peers, 0, m);
  // Nothing changes for four timeouts; the client has nothing to ack and sends nothing.
  int64_t start = now_ms();
  while (now_ms() - start < 1200) {
    peers.pump(50);
    drain(peers, 0, m);
  }
  say(peers, 0, room, "blob", [&](Writer& w) {
    w.begin_map(2);
    w.key("n");
    w.integer(1);
    w.key("size");
    w.integer(64);
  });
  REQUIRE(until(peers, 0, m, [&] { return m.patches >= 1; }));
  CHECK(m.error == "");
  auto st = stats(peers, 0, room);
  REQUIRE(st);
  CHECK(st->integer_at("stalled") == 0);
}

TEST_CASE("state: state.resync is answered with a snapshot, at most one per 500 ms") {
  Server server = state_server();
  RoomPeers peers(server.port, 1);
  welcome_all(peers);
  Mirror m;
  int64_t room = joined(join(peers, 0, "state"));
  REQUIRE(until(peers, 0, m, [&] { return m.snapshots == 1; }));
  peers.send_raw(0, resync_frame(room));
  peers.send_raw(0, resync_frame(room));
  peers.flush();
  REQUIRE(until(peers, 0, m, [&] { return m.snapshots == 2; }));
  peers.pump(200);
  drain(peers, 0, m);
  CHECK(m.snapshots == 2);
  CHECK(m.error == "");
  auto s = stats(peers, 0, room);
  REQUIRE(s);
  CHECK(s->integer_at("resyncs") == 1);
  CHECK(s->integer_at("resyncs_ignored") == 1);
  // Patches go on from the snapshot's seq.
  say(peers, 0, room, "round", integer(7));
  REQUIRE(until(peers, 0, m, [&] { return m.integer({k("round")}) == 7; }));
  CHECK(m.error == "");
}

TEST_CASE("state: bad state frames are refused and counted toward the bad-packet kick") {
  Server server = state_server();
  RoomPeers peers(server.port, 2);
  welcome_all(peers);
  Mirror m;
  int64_t room = joined(join(peers, 0, "state"));
  REQUIRE(until(peers, 0, m, [&] { return m.snapshots == 1; }));
  // An ack of a seq never sent.
  peers.send_raw(0, ack_frame(room, static_cast<uint16_t>(m.seq + 5), 0), wire::kChannelRoomUnreliable);
  auto e = peers.next(0, "error");
  REQUIRE(e);
  CHECK(std::string(e->payload.string_at("reason").value_or("")).find("was not sent") != std::string::npos);
  // A frame only the server sends.
  peers.send_raw(0, std::string("\x02\x01\x00\x00\x00\x00\x00\x00", 8));
  e = peers.next(0, "error");
  REQUIRE(e);
  // Garbage after a state frame's first byte.
  peers.send_raw(0, std::string("\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12));
  e = peers.next(0, "error");
  REQUIRE(e);
  CHECK(std::string(e->payload.string_at("reason").value_or("")).find("malformed state frame") != std::string::npos);
  // An ack for a room it is not in: not counted (it can cross a room.left).
  peers.send_raw(1, ack_frame(room, 0, 0), wire::kChannelRoomUnreliable);
  peers.flush();
  // The 16th bad packet kicks; the other peer is unaffected.
  for (int i = 0; i < 13; ++i) peers.send_raw(0, std::string("\x04", 1));
  peers.flush();
  CHECK(peers.wait([&] { return peers.disconnected(0); }, 5000));
  CHECK(peers.kick_reason(0) == "protocol");
  CHECK(!peers.disconnected(1));
  CHECK(peers.next(1, "error", 300) == std::nullopt);
  CHECK(joined(join(peers, 1, "state")) > 0);
}

TEST_CASE("state: a typed room sends its schema and canonical values, room.define_state after a join raises") {
  Server server = state_server();
  RoomPeers peers(server.port, 1);
  welcome_all(peers);
  const int64_t id0 = static_cast<int64_t>(peers.welcome(0).session_id);
  Mirror m;
  int64_t room = joined(join(peers, 0, "typed"));
  REQUIRE(until(peers, 0, m, [&] { return m.snapshots == 1; }));
  CHECK(m.error == "");
  REQUIRE(m.schema);
  CHECK(m.schema->typed());
  say(peers, 0, room, "move", xy(3, 4));
  REQUIRE(until(peers, 0, m, [&] {
    auto* e = m.at({k("players"), k(id0), k("x")});
    return e && e->scalar.kind == state::Scalar::Kind::number && e->scalar.number == 3.0;
  }));
  // A value that does not fit its field: a script error naming the path; the
  // client keeps the old value.
  say(peers, 0, room, "bad_value");
  CHECK(server_logged(server, peers, "room.state.players[" + std::to_string(id0) + "].x: a string is not a f32"));
  say(peers, 0, room, "late_define");
  auto answer = heard(peers, 0, "late_define");
  REQUIRE(answer);
  CHECK(answer->string.find("false") == 0);
  CHECK(answer->string.find("once a client joined") != std::string::npos);
  say(peers, 0, room, "round", integer(70000));  // past u16
  CHECK(server_logged(server, peers, "room.state.round: 70000 does not fit u16"));
  say(peers, 0, room, "round", integer(9));
  REQUIRE(until(peers, 0, m, [&] { return m.integer({k("round")}) == 9; }));
  CHECK(m.error == "");
  auto* x = m.at({k("players"), k(id0), k("x")});
  REQUIRE(x);
  CHECK(x->scalar.number == 3.0);
}
