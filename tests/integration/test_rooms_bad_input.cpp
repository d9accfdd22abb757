// Rooms, server side: the handshake's checks (server.auth, codecs, project
// id) and every bad input of the rooms issue, against a real nshost server
// and bare ENet peers (see test_rooms_server.cpp).
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/rooms/room_manager.hpp"
#include "tests/integration/rooms_util.hpp"

using namespace nshost;
using namespace nshost::test;
using namespace nshost::test::rooms_util;

TEST_CASE("rooms: server.auth refuses and admits with claims, and the codec and project id checks") {
  {
    Server server = rooms_server();
    const std::vector<std::string> tokens = {"bad", "boom", "huge", "alice", ""};
    RoomPeers peers(server.port, tokens.size());
    REQUIRE(peers.handshake([&](size_t i) { return hello_for("msgpack,json", tokens[i]); }));
    CHECK(peers.reject_reason(0) == "bad token");
    CHECK(peers.reject_reason(1) == "auth failed");
    CHECK(peers.reject_reason(2) == "auth claims too large");
    REQUIRE(peers.welcomed(3));
    REQUIRE(peers.welcomed(4));
    CHECK(server_logged(server, peers, "auth exploded"));
    uint64_t alice = peers.welcome(3).session_id, anon = peers.welcome(4).session_id;
    CHECK(server_printed(server, peers, "connect id=" + std::to_string(alice) + " auth=alice"));
    CHECK(server_printed(server, peers, "connect id=" + std::to_string(anon) + " auth=nil"));
    int64_t room = joined(join(peers, 3, "arena"));
    CHECK(joined(join(peers, 4, "arena")) == room);
    CHECK(server_printed(server, peers, "join " + std::to_string(room) + " client " + std::to_string(alice) + " auth alice"));
    CHECK(server_printed(server, peers, "join " + std::to_string(room) + " client " + std::to_string(anon) + " auth nil"));
  }
  {
    Server server = rooms_server({"--project-id=proj"});
    RoomPeers peers(server.port, 5);
    const std::vector<wire::Hello> hellos = {hello_for("msgpack,json", "", "other"), hello_for("msgpack,json"),
                                             hello_for("msgpack,json", "", "proj"), hello_for("cbor,bson", "", "proj"),
                                             hello_for("json", "", "proj")};
    REQUIRE(peers.handshake([&](size_t i) { return hellos[i]; }));
    CHECK(peers.reject_reason(0) == "project_id");
    CHECK(peers.reject_reason(1) == "project_id");
    REQUIRE(peers.welcomed(2));
    CHECK(peers.welcome(2).codec == "msgpack");
    CHECK(peers.reject_reason(3) == "codec");
    REQUIRE(peers.welcomed(4));
    CHECK(peers.welcome(4).codec == "json");
    CHECK(peers.welcome(4).session_id != peers.welcome(2).session_id);
  }
}

TEST_CASE("rooms: bad input gets its answer and nobody else notices") {
  // The default --max-message-size (1 MiB): ENet also holds at most 4x it
  // per peer between reads, and a flood past that stalls the flooder's link
  // before the rate limit can kick it.
  Server server = rooms_server({"--resume-grace=0", "--link-timeout=1000"});
  // 0: the observer, in a ticking lobby. 1: sends the bad input. 2..5: fill an
  // arena. 6: sends 16 undecodable packets. 7: floods joins. 8: oversize.
  RoomPeers peers(server.port, 9);
  welcome_all(peers);
  int64_t lobby = joined(join(peers, 0, "lobby", ticker_options()));
  int64_t arena = joined(join(peers, 2, "arena"));
  for (size_t i = 3; i <= 5; ++i) CHECK(joined(join(peers, i, "arena")) == arena);

  // A message for a room the client is not in.
  say(peers, 1, arena, "shout", [](Writer& w) { w.integer(1); });
  auto error = peers.next(1, "error");
  REQUIRE(error);
  CHECK(error->payload.string_at("reason") == "not in room");
  CHECK(error->payload.integer_at("room") == arena);
  // Unknown room id, unknown type, past max_clients, twice in one room.
  CHECK(refusal(request(peers, 1, "room.join_or_create", room_payload(987654))) == "no such room");
  CHECK(refusal(join(peers, 1, "nope")) == "unknown room type");
  CHECK(refusal(request(peers, 1, "room.join_or_create", room_payload(arena))) == "full");
  CHECK(refusal(request(peers, 2, "room.join_or_create", room_payload(arena))) == "already in room");
  CHECK(refusal(request(peers, 1, "room.join_or_create", [](Writer& w) { w.begin_map(0); })) ==
        "bad request: room_type must be a string");
  // A payload that does not decode, nesting past 64, an unknown type.
  peers.send_raw(1, std::string("\xc1\xc1\xc1", 3));
  error = peers.next(1, "error");
  REQUIRE(error);
  CHECK(error->payload.string_at("reason").value_or("").find("malformed message") == 0);
  peers.send(1, "room.message", [&](Writer& w) {
    w.begin_map(3);
    w.key("room");
    w.integer(lobby);
    w.key("type");
    w.string("deep");
    w.key("data");
    for (int d = 0; d < 70; ++d) w.begin_array(1);
    w.nil();
  }, false);
  error = peers.next(1, "error");
  REQUIRE(error);
  CHECK(error->payload.string_at("reason").value_or("").find("malformed message") == 0);
  peers.send(1, "room.teleport", [](Writer& w) { w.begin_map(0); }, false);
  error = peers.next(1, "error");
  REQUIRE(error);
  CHECK(error->payload.string_at("reason") == "unknown message type 'room.teleport'");
  CHECK_FALSE(peers.disconnected(1));  // 4 bad packets counted, under the 16 that kick

  // Over --max-message-size, unreliable: ENet drops it, the peer carries on.
  const std::string big(1100 * 1024, 'x');
  say(peers, 1, lobby, "shout", [&](Writer& w) { w.string(big); }, wire::kChannelRoomUnreliable);
  CHECK(refusal(request(peers, 1, "room.leave", room_payload(lobby))) == "not in room");
  // Reliable: ENet never acknowledges it; that peer's link ends.
  int64_t oversize_room = joined(join(peers, 8, "lobby"));
  CHECK(oversize_room == lobby);
  peers.set_timeout(8, 500, 2000);  // ENet gives up on the unacknowledged packet within 2 s
  say(peers, 8, lobby, "shout", [&](Writer& w) { w.string(big); });
  CHECK(peers.wait([&] { return peers.disconnected(8); }, 40000));
  CHECK(server_printed(server, peers, "client " + std::to_string(peers.welcome(8).session_id) + " timeout", 10000));

  // 16 undecodable packets: kicked "protocol".
  for (int k = 0; k < 16; ++k) peers.send_raw(6, std::string("\xc1", 1));
  peers.flush();
  CHECK(peers.wait([&] { return peers.disconnected(6); }, 5000));
  CHECK(peers.kick_reason(6) == "protocol");

  // 10,000 joins at once: kicked by --max-message-rate; it held at most 16 rooms.
  for (int k = 0; k < 10000; ++k) peers.send(7, "room.join_or_create", join_payload("arena"));
  peers.flush();
  CHECK(peers.wait([&] { return peers.disconnected(7); }, 10000));
  CHECK(peers.kick_reason(7) == "rate_limit");
  size_t answers = 0, too_many = 0;
  for (const Message& m : peers.inbox(7)) {
    answers += m.type == "rpc.response";
    too_many += m.payload.string_at("reason") == "too many rooms";
  }
  MESSAGE("flooding peer: " << answers << " answers before the kick, " << too_many << " of them 'too many rooms'");
  CHECK(answers - too_many <= rooms::RoomManager::kMaxRoomsPerClient);

  // Nobody else noticed: the observer still ticks, and saw no error or room.left.
  CHECK(ticks_heard(peers, 0, 500) >= 5);
  for (size_t i : {size_t{0}, size_t{2}, size_t{3}, size_t{4}, size_t{5}}) {
    CHECK_FALSE(peers.disconnected(i));
    for (const Message& m : peers.inbox(i)) {
      CHECK(m.type != "error");
      CHECK(m.type != "room.left");
    }
  }
  say(peers, 2, arena, "echo", [](Writer& w) { w.string("still here"); });
  auto echo = heard(peers, 2, "echo");
  REQUIRE(echo);
  CHECK(echo->string == "still here");
}

TEST_CASE("rooms: --max-rooms refuses a new room past the cap, and a disposed room frees its place") {
  Server server = rooms_server({"--max-rooms=2"});
  RoomPeers peers(server.port, 4);
  welcome_all(peers);
  // "idle" seats one client a room: each join opens one.
  int64_t first = joined(join(peers, 0, "idle"));
  joined(join(peers, 1, "idle"));
  CHECK(refusal(join(peers, 2, "idle")) == "too many rooms on this server");
  CHECK(refusal(join(peers, 3, "arena")) == "too many rooms on this server");
  CHECK(server_logged(server, peers, "refused a new room: 2 rooms are open (--max-rooms)"));
  // The first room empties and is disposed as its last client leaves: its place is free at once.
  request(peers, 0, "room.leave", room_payload(first));
  CHECK(joined(join(peers, 2, "idle")) > first);
}
