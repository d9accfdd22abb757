// The client side of state sync (docs/state.md "Client") over ENet on
// loopback: a real ClientRole (in this process, its loop stepped by the test
// so its Lua state can be read) joined to a RawServer that plays the server
// by hand, sending state.snapshot / state.patch frames a ServerTree writes
// with the codec's writers, and recording the state.ack / state.resync
// frames the client sends, byte by byte.
#include <algorithm>

#include "runtime/state/state_codec.hpp"
#include "tests/integration/rooms_client_fixture.hpp"
#include "tests/support/state_frames.hpp"

using namespace nshost::test::rooms_client;
using nshost::state::Key;
using nshost::state::Scalar;
using nshost::test::ServerTree;

namespace {

constexpr int64_t kRoom = 5;

const std::string kScript = std::string(test::kStateRender) + R"lua(
state_calls = 0
function client.room_state(r, state, changes)
  state_calls = state_calls + 1
  last_changes = render_state(changes)
end
function watch(pattern, name)
  return room:on_change(pattern, function(k, v, old)
    note(name .. " " .. render(k) .. " " .. render(v) .. " " .. render(old))
  end)
end
)lua";

// The next room-channel packet the client sends.
std::optional<RawServer::Packet> next_packet(Client& client, RawServer& server, int timeout_ms = 5000) {
  std::optional<RawServer::Packet> packet;
  client.step_until([&] { return (packet = server.wait_packet(1)).has_value(); }, timeout_ms);
  return packet;
}

std::string ack_bytes(uint16_t seq, uint32_t checksum) {
  std::string b = {char(0x03), char(kRoom), char(seq & 0xff), char(seq >> 8)};
  for (int i = 0; i < 4; ++i) b += char((checksum >> (8 * i)) & 0xff);
  return b;
}

int state_calls(Client& client) { return std::stoi(client.eval("return state_calls").substr(4)); }

// The events noted from index `from` on, sorted (listeners over "*" see
// keys in table order).
std::string sorted_events(Client& client, size_t from) {
  std::string all = client.events();
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0;; ++i) {
    size_t bar = all.find('|', start);
    if (i >= from) parts.push_back(all.substr(start, bar == std::string::npos ? std::string::npos : bar - start));
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "|") + p;
  return out;
}

struct Joined {
  RawServer server;
  Client client{server, kScript};
  Joined() {
    client.join();
    join_arena(client, server, Codec::msgpack, kRoom);
  }
  // Sends a frame on channel 3 and waits until client.room_state ran `calls` times in all.
  void deliver(const std::string& frame, int calls) {
    server.send(0, wire::kChannelRoomReliable, frame);
    REQUIRE(client.step_until([&] { return state_calls(client) >= calls; }));
  }
  std::string mirror() { return client.eval("return render_state(room.state)"); }
};

}  // namespace

TEST_CASE("state client: the join's snapshot becomes r.state, patches keep it equal, acks go on channel 4 at most every 100 ms") {
  Joined j;
  CHECK(j.client.eval("return room.state") == "ok: nil");  // before the first snapshot
  ServerTree s(kRoom);
  uint32_t players = s.node(0, Key::of("players"));
  uint32_t p1 = s.node(players, Key::of(1));
  s.set(p1, Key::of("hp"), Scalar::of_int(100));
  s.set(p1, Key::of("x"), Scalar::of_number(0.5));
  s.set(0, Key::of("map"), Scalar::of_string("dust"));
  std::string snapshot = s.snapshot();
  size_t frame_bytes = snapshot.size();
  j.deliver(snapshot, 1);
  CHECK(j.mirror() == "ok: " + s.render());
  CHECK(j.client.eval("return last_changes") == "ok: {1={}}");
  std::optional<RawServer::Packet> ack = next_packet(j.client, j.server);
  REQUIRE(ack);
  CHECK(ack->channel == wire::kChannelRoomUnreliable);
  CHECK(ack->bytes == ack_bytes(0, s.tree().checksum()));

  // A burst of 30 patches: all applied in order, acked at once for the
  // first, then at most every 100 ms, the last seq acked in the end.
  for (int i = 1; i <= 30; ++i) {
    s.set(p1, Key::of("hp"), Scalar::of_int(100 - i));
    if (i % 5 == 0) s.set(s.node(players, Key::of(1 + i)), Key::of("hp"), Scalar::of_int(i));
    std::string patch = s.patch();
    frame_bytes += patch.size();
    j.server.send(0, wire::kChannelRoomReliable, patch);
  }
  int64_t start = now_ms();
  REQUIRE(j.client.step_until([&] { return state_calls(j.client) >= 31; }));
  CHECK(j.mirror() == "ok: " + s.render());
  std::vector<std::string> acks;
  while (now_ms() - start < 2000) {
    std::optional<RawServer::Packet> p = next_packet(j.client, j.server, 100);
    if (!p) continue;
    CHECK(p->channel == wire::kChannelRoomUnreliable);
    acks.push_back(p->bytes);
    if (p->bytes == ack_bytes(30, s.tree().checksum())) break;
  }
  int64_t elapsed = now_ms() - start;
  REQUIRE_FALSE(acks.empty());
  CHECK(acks.back() == ack_bytes(30, s.tree().checksum()));
  CHECK(acks.size() <= static_cast<size_t>(2 + elapsed / 100));
  CHECK(j.client.eval("local s = room:state_stats() return s.patches, s.snapshots, s.resyncs, s.gaps, s.seq") ==
        "ok: 30, 1, 0, 0, 30");
  CHECK(j.client.eval("return room:state_stats().bytes") == "ok: " + std::to_string(frame_bytes));
}

TEST_CASE("state client: r:on_change fires with (key, value, old) for matching paths, '*' and removals") {
  Joined j;
  REQUIRE(j.client.in_handler("hp_id = watch({'players', '*', 'hp'}, 'hp') watch({'players', '*'}, 'player')"
                              " watch({'round'}, 'round') watch({'*'}, 'top') return hp_id") == "ok: true, 1");
  CHECK(j.client.in_handler("return pcall(room.on_change, room, {'a', {}}, function() end)").find("pattern key 2 is a table") !=
        std::string::npos);
  CHECK(j.client.in_handler("return pcall(room.on_change, room, {}, function() end)").find("array of 1 to") !=
        std::string::npos);
  ServerTree s(kRoom);
  uint32_t players = s.node(0, Key::of("players"));
  uint32_t p1 = s.node(players, Key::of(1));
  s.set(p1, Key::of("hp"), Scalar::of_int(100));
  s.set(0, Key::of("round"), Scalar::of_int(1));
  size_t n = j.client.event_count();
  j.deliver(s.snapshot(), 1);
  REQUIRE(j.client.wait_events(n + 5));
  CHECK(sorted_events(j.client, n) ==
        "hp 1 100 nil|player 1 {hp=100} nil|round \"round\" 1 nil|top \"players\" {1={hp=100}} nil"
        "|top \"round\" 1 nil");

  n = j.client.event_count();
  s.set(p1, Key::of("hp"), Scalar::of_int(90));
  j.deliver(s.patch(), 2);
  CHECK(sorted_events(j.client, n) == "hp 1 90 100");

  n = j.client.event_count();
  uint32_t p2 = s.node(players, Key::of(2));
  s.set(p2, Key::of("hp"), Scalar::of_int(50));
  j.deliver(s.patch(), 3);
  CHECK(sorted_events(j.client, n) == "hp 2 50 nil|player 2 {hp=50} nil");

  n = j.client.event_count();
  s.erase(players, Key::of(1));
  s.erase(0, Key::of("round"));
  j.deliver(s.patch(), 4);
  CHECK(sorted_events(j.client, n) ==
        "hp 1 nil 90|player 1 nil {hp=90}|round \"round\" nil 1|top \"round\" nil 1");

  // Off: that listener no longer fires; the others do.
  CHECK(j.client.in_handler("return room:off_change(hp_id), room:off_change(hp_id)") == "ok: true, true, false");
  n = j.client.event_count();
  s.set(p2, Key::of("hp"), Scalar::of_int(40));
  s.set(0, Key::of("round"), Scalar::of_int(2));
  j.deliver(s.patch(), 5);
  CHECK(sorted_events(j.client, n) == "round \"round\" 2 nil|top \"round\" 2 nil");
}

TEST_CASE("state client: a corrupted checksum sends one state.resync on channel 3, r.state stays until the snapshot") {
  Joined j;
  ServerTree s(kRoom);
  uint32_t p = s.node(0, Key::of("p"));
  s.set(p, Key::of("hp"), Scalar::of_int(10));
  j.deliver(s.snapshot(), 1);
  REQUIRE(next_packet(j.client, j.server));  // the snapshot's ack
  std::string before = j.mirror();
  s.set(p, Key::of("hp"), Scalar::of_int(9));
  j.server.send(0, wire::kChannelRoomReliable, s.patch(0x80000000u));
  std::optional<RawServer::Packet> resync = next_packet(j.client, j.server);
  REQUIRE(resync);
  CHECK(resync->channel == wire::kChannelRoomReliable);
  CHECK(resync->bytes == std::string("\x04\x05\x02", 3));
  // Later patches are ignored: nothing more is sent, nothing changes.
  s.set(p, Key::of("hp"), Scalar::of_int(8));
  j.server.send(0, wire::kChannelRoomReliable, s.patch());
  j.client.step_for(300);
  CHECK(j.server.quiet_for(1));
  CHECK(j.mirror() == before);
  CHECK(state_calls(j.client) == 1);
  j.deliver(s.snapshot(), 2);
  CHECK(j.mirror() == "ok: " + s.render());
  CHECK(j.client.eval("local s = room:state_stats() return s.resyncs, s.checksum_mismatches, s.ignored") ==
        "ok: 1, 1, 1");
}

TEST_CASE("state client: leaving the room or the session forgets the mirror, frames for other rooms are ignored") {
  Joined j;
  ServerTree s(kRoom);
  s.set(0, Key::of("a"), Scalar::of_int(1));
  j.deliver(s.snapshot(), 1);
  REQUIRE(next_packet(j.client, j.server));  // the ack
  CHECK(j.client.rooms().states().mirror_count() == 1);
  REQUIRE(j.client.in_handler("kept = room.state return room:leave()") == "ok: true, true");
  CHECK(j.client.rooms().states().mirror_count() == 0);
  CHECK(j.client.eval("return room.state, kept.a") == "ok: nil, 1");
  CHECK(j.client.in_handler("return room:on_change({'a'}, function() end)") == "ok: true, nil, room 5 is gone, ENOROOM");
  std::optional<RawServer::Packet> leave = next_packet(j.client, j.server);
  REQUIRE(leave);  // the room.leave
  s.set(0, Key::of("a"), Scalar::of_int(2));
  j.server.send(0, wire::kChannelRoomReliable, s.patch());
  j.server.send(0, wire::kChannelRoomReliable, ServerTree(77).snapshot());
  j.client.step_for(200);
  CHECK(j.server.quiet_for(1));
  CHECK(j.client.rooms().states().mirror_count() == 0);
  CHECK(state_calls(j.client) == 1);

  join_arena(j.client, j.server, Codec::msgpack, kRoom);
  j.deliver(s.snapshot(), 2);
  CHECK(j.client.rooms().states().mirror_count() == 1);
  j.server.disconnect_all(0);
  REQUIRE(j.client.step_until([&] { return j.client.rooms().states().mirror_count() == 0; }));
}

TEST_CASE("state client: after a resumed session each mirror asks for a snapshot (patches may have been lost)") {
  RawServer::Config config;
  config.tokens = true;
  RawServer server(config);
  Options options;
  options.limits.link_timeout_ms = 300;
  options.reconnect = ReconnectPolicy{50, 2.0, 200, 20, 20000};
  Client client(server, kScript, options);
  client.join();
  join_arena(client, server, Codec::msgpack, kRoom);
  ServerTree s(kRoom);
  s.set(0, Key::of("a"), Scalar::of_int(1));
  server.send(0, wire::kChannelRoomReliable, s.snapshot());
  REQUIRE(client.step_until([&] { return state_calls(client) == 1; }));
  REQUIRE(next_packet(client, server));  // the ack
  size_t n = client.event_count();
  server.drop_all();
  s.set(0, Key::of("a"), Scalar::of_int(2));
  s.patch();  // lost with the link
  REQUIRE(client.wait_events(n + 2, 10000));
  CHECK(client.events().substr(client.events().size() - 13) == "|lost|resumed");
  std::optional<RawServer::Packet> resync = next_packet(client, server);
  REQUIRE(resync);
  CHECK(resync->peer == 1);
  CHECK(resync->channel == wire::kChannelRoomReliable);
  CHECK(resync->bytes == std::string("\x04\x05\x04", 3));
  CHECK(client.eval("return render_state(room.state)") == "ok: {a=1}");
  server.send(1, wire::kChannelRoomReliable, s.snapshot());
  REQUIRE(client.step_until([&] { return state_calls(client) == 2; }));
  CHECK(client.eval("return render_state(room.state)") == "ok: {a=2}");
}

TEST_CASE("state client end to end: a late joiner's snapshot and every patch after it equal the room's state") {
  // The room's state is a pure function of its tick (tests/scripts/state_client/expected.lua):
  // each client checks every r.state it is shown against it.
  Server server = start_server(test_script("state_client/server.lua"));
  REQUIRE(server.port > 0);
  auto a = start_client(test_script("state_client/client.lua"), server.port, {}, {"NAME=a", "CHECKS=90"});
  REQUIRE_MESSAGE(a->wait_stdout("a joined room(id=1, type=state_arena)"), a->stderr_text());
  CHECK(a->wait_stdout("a first state equal=true"));
  auto b = start_client(test_script("state_client/client.lua"), server.port, {"--codec=json"}, {"NAME=b", "CHECKS=30"});
  CHECK(b->wait_stdout("b joined room(id=1, type=state_arena)"));
  CHECK(b->wait_stdout("b first state equal=true late=true"));
  auto b_done = b->wait_stdout("b done ");
  REQUIRE_MESSAGE(b_done, b->stderr_text());
  CHECK(*b_done ==
        "b done checks=30 bad=0 snapshots=1 patches=29 checksum_mismatches=0 gaps=0 decode_errors=0 hp_events=true");
  auto a_done = a->wait_stdout("a done ", 15000);
  REQUIRE_MESSAGE(a_done, a->stderr_text());
  CHECK(*a_done ==
        "a done checks=90 bad=0 snapshots=1 patches=89 checksum_mismatches=0 gaps=0 decode_errors=0 hp_events=true");
  CHECK(a->wait_exit() == 0);
  CHECK(b->wait_exit() == 0);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}

TEST_CASE("state client end to end: a room idle for longer than --state-ack-timeout still patches the client") {
  // Without acks while nothing changes, the server would stop patching it.
  Server server = start_server(test_script("state_client/server.lua"), {"--state-ack-timeout=2500"});
  REQUIRE(server.port > 0);
  auto c = start_client(test_script("state_client/client.lua"), server.port, {}, {"NAME=c", "ROOM_TYPE=state_idle"});
  REQUIRE_MESSAGE(c->wait_stdout("c joined room(id=1, type=state_idle)"), c->stderr_text());
  CHECK(c->wait_stdout("c phase start"));
  CHECK(c->wait_stdout("c phase later", 15000));
  CHECK(c->wait_exit() == 0);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  CHECK(server.process->stderr_text().find("no state patches until it acks") == std::string::npos);
}
