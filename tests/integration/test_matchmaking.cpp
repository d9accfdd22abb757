// Matchmaking (docs/matchmaking.md): a real nshost server running
// tests/scripts/matchmaking/server.lua, bare ENet peers speaking seed 003's
// matchmaking.enqueue / matchmaking.dequeue and reading match.found
// (tests/support/room_peers.hpp), and real client processes (--bots) using
// the Lua API. Every wait has a deadline. "Never told" is checked by
// ordering: a room.list asked after the event is answered on the same
// reliable channel after anything the server sent before it.
#include <doctest/doctest.h>

#include <csignal>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/rooms_util.hpp"
#include "tests/support/raw_peer.hpp"

using namespace nshost;
using namespace nshost::test;
using namespace nshost::test::rooms_util;

namespace {

Server match_server(std::vector<std::string> extra = {}) {
  Server server = start_server(test_script("matchmaking/server.lua"), std::move(extra));
  REQUIRE(server.port > 0);
  return server;
}

// {room_type, size [, properties = {key = value}]}
Payload enqueue_payload(const std::string& type, int64_t size, const std::string& key = "",
                        const std::string& value = "") {
  return [=](Writer& w) {
    w.begin_map(key.empty() ? 2 : 3);
    w.key("room_type");
    w.string(type);
    w.key("size");
    w.integer(size);
    if (!key.empty()) {
      w.key("properties");
      w.begin_map(1);
      w.key(key);
      w.string(value);
    }
  };
}

Message enqueue(RoomPeers& peers, size_t i, const std::string& type, int64_t size, const std::string& key = "",
                const std::string& value = "") {
  return request(peers, i, "matchmaking.enqueue", enqueue_payload(type, size, key, value));
}

void queued(const Message& answer) {
  INFO("reason: " << std::string(answer.payload.string_at("reason").value_or("")));
  CHECK(answer.payload.boolean_at("ok") == true);
}

struct Found {
  int64_t room = 0;
  std::string room_type;
  int64_t size = 0;
  std::set<uint64_t> participants;
};

Found found_of(const Message& m) {
  Found f;
  f.room = m.payload.integer_at("room").value_or(0);
  f.room_type = std::string(m.payload.string_at("room_type").value_or(""));
  f.size = m.payload.integer_at("size").value_or(-1);
  if (const Value* p = m.payload.find("participants"))
    for (const Value& v : p->items) f.participants.insert(static_cast<uint64_t>(v.integer));
  return f;
}

std::optional<Found> match_found(RoomPeers& peers, size_t i, int timeout_ms = 5000) {
  auto m = peers.next(i, "match.found", timeout_ms);
  if (!m) return std::nullopt;
  return found_of(*m);
}

// After everything the server sent peer i so far: how many match.found it holds.
size_t match_found_count(RoomPeers& peers, size_t i) {
  request(peers, i, "room.list", [](Writer& w) { w.begin_map(0); });
  size_t n = 0;
  for (const Message& m : peers.inbox(i)) n += m.type == "match.found";
  return n;
}

uint64_t session(RoomPeers& peers, size_t i) { return peers.welcome(i).session_id; }

}  // namespace

TEST_CASE("matchmaking: 8 players queued for size 4 make exactly two rooms of 4, each player told once") {
  Server server = match_server();
  RoomPeers peers(server.port, 8);
  welcome_all(peers);
  int64_t started_ms = now_ms();
  for (size_t i = 0; i < 8; ++i) queued(enqueue(peers, i, "quad", 4));
  // Each peer hears match.found before any room.message of its room (what
  // room.join sent it, and what later players' room.join broadcast to it).
  REQUIRE(peers.wait(
      [&] {
        for (size_t i = 0; i < 8; ++i) {
          size_t welcomes = 0;
          for (const Message& m : peers.inbox(i)) welcomes += m.payload.string_at("type") == "welcome";
          if (welcomes == 0) return false;
        }
        return true;
      },
      5000));
  for (size_t i = 0; i < 8; ++i) {
    auto& inbox = peers.inbox(i);
    REQUIRE(!inbox.empty());
    CHECK(inbox.front().type == "match.found");
  }
  std::map<int64_t, std::set<uint64_t>> rooms;  // room -> who was told it
  std::vector<Found> told(8);
  for (size_t i = 0; i < 8; ++i) {
    auto f = match_found(peers, i);
    REQUIRE(f);
    CHECK(f->room_type == "quad");
    CHECK(f->size == 4);
    told[i] = *f;
    rooms[f->room].insert(session(peers, i));
  }
  MESSAGE("8 enqueued and told in " << now_ms() - started_ms << " ms");
  REQUIRE(rooms.size() == 2);
  for (size_t i = 0; i < 8; ++i) CHECK(told[i].participants == rooms[told[i].room]);
  for (const auto& [room, who] : rooms) CHECK(who.size() == 4);
  // Oldest first: the first four queued share the first room.
  for (size_t i = 1; i < 4; ++i) CHECK(told[i].room == told[0].room);
  for (size_t i = 5; i < 8; ++i) CHECK(told[i].room == told[4].room);
  // Seated: room.join greeted each.
  for (size_t i = 0; i < 8; ++i) {
    auto welcome = heard(peers, i, "welcome");
    REQUIRE(welcome);
    CHECK(welcome->integer_at("id") == static_cast<int64_t>(session(peers, i)));
  }
  for (size_t i = 0; i < 8; ++i) CHECK(match_found_count(peers, i) == 0);  // no second one
  Message list = request(peers, 0, "room.list", [](Writer& w) { w.begin_map(0); });
  const Value* listed = list.payload.find("rooms");
  REQUIRE(listed);
  REQUIRE(listed->items.size() == 2);
  for (const Value& r : listed->items) CHECK(r.integer_at("clients") == 4);
  // room.create learnt that a match opened it and who was coming.
  CHECK(server_printed(server, peers, "create " + std::to_string(told[0].room) + " quad matchmaking=true size=4"));
  // The queue is empty: a dequeue finds nothing.
  Message again = request(peers, 0, "matchmaking.dequeue", [](Writer& w) { w.begin_map(0); });
  CHECK(refusal(again) == "not queued");
  // matchmaking.define's misuse, as the script saw it.
  std::string out = server.process->stdout_text();
  CHECK(out.find("define undefined: false") != std::string::npos);
  CHECK(out.find("room type 'undefined' is not defined (rooms.define it first)") != std::string::npos);
  CHECK(out.find("size 5 is over room type 'plain''s max_clients 4") != std::string::npos);
  CHECK(out.find("options.min_size must be an integer in 1..2") != std::string::npos);
  CHECK(out.find("unknown option 'colour'") != std::string::npos);
  CHECK(out.find("options.match must be a function") != std::string::npos);
  CHECK(out.find("options.size is required") != std::string::npos);
  CHECK(out.find("room type 'quad' already has matchmaking") != std::string::npos);
  CHECK(server_printed(server, peers, "late define: false"));
  CHECK(server.process->stdout_text().find("only while the script loads") != std::string::npos);
}

TEST_CASE("matchmaking: a match function splits players by region") {
  Server server = match_server();
  RoomPeers peers(server.port, 6);
  welcome_all(peers);
  const char* regions[] = {"eu", "us", "eu", "us", "asia", "eu"};
  for (size_t i = 0; i < 6; ++i) queued(enqueue(peers, i, "regional", 2, "region", regions[i]));
  auto pair_of = [&](size_t a, size_t b) {
    auto fa = match_found(peers, a);
    auto fb = match_found(peers, b);
    REQUIRE(fa);
    REQUIRE(fb);
    CHECK(fa->room == fb->room);
    CHECK(fa->participants == std::set<uint64_t>{session(peers, a), session(peers, b)});
    CHECK(fb->participants == fa->participants);
    // room.join got the player's properties as its options.
    auto welcome = heard(peers, a, "welcome");
    REQUIRE(welcome);
    CHECK(welcome->string_at("region") == regions[a]);
    return fa->room;
  };
  int64_t eu = pair_of(0, 2);
  int64_t us = pair_of(1, 3);
  CHECK(eu != us);
  // Asia and the third eu player have nobody: still queued, never told.
  CHECK(match_found_count(peers, 4) == 0);
  CHECK(match_found_count(peers, 5) == 0);
  Message left = request(peers, 4, "matchmaking.dequeue", [](Writer& w) {
    w.begin_map(1);
    w.key("room_type");
    w.string("regional");
  });
  CHECK(left.payload.boolean_at("ok") == true);
}

TEST_CASE("matchmaking: after max_wait_s a group of min_size starts") {
  Server server = match_server();
  RoomPeers peers(server.port, 3);
  welcome_all(peers);
  int64_t first_ms = now_ms();
  for (size_t i = 0; i < 3; ++i) queued(enqueue(peers, i, "quick", 4));
  std::set<int64_t> rooms;
  for (size_t i = 0; i < 3; ++i) {
    auto f = match_found(peers, i, 5000);
    REQUIRE(f);
    CHECK(f->size == 3);
    CHECK(f->participants.size() == 3);
    rooms.insert(f->room);
  }
  int64_t waited_ms = now_ms() - first_ms;
  MESSAGE("a group of 3 (size 4, min_size 2, max_wait_s 0.3) started after " << waited_ms << " ms");
  CHECK(rooms.size() == 1);
  CHECK(waited_ms >= 300);
}

TEST_CASE("matchmaking: a player who disconnects or dequeues while queued is never matched") {
  Server server = match_server();
  RoomPeers peers(server.port, 7);
  welcome_all(peers);
  for (size_t i = 0; i < 3; ++i) queued(enqueue(peers, i, "quad", 4));
  // Peer 1 leaves: its session, and its place in the queue, are over.
  peers.disconnect(1, static_cast<uint32_t>(wire::DisconnectCode::leave));
  REQUIRE(server_logged(server, peers, " left: left"));
  // Peer 2 dequeues (a second dequeue finds nothing).
  Message left = request(peers, 2, "matchmaking.dequeue", [](Writer& w) {
    w.begin_map(1);
    w.key("room_type");
    w.string("quad");
  });
  CHECK(left.payload.boolean_at("ok") == true);
  CHECK(refusal(request(peers, 2, "matchmaking.dequeue", [](Writer& w) { w.begin_map(0); })) == "not queued");
  // Peer 6 queues, then its link drops without a leave: the server holds
  // its session for a resume, and the player is passed over meanwhile.
  queued(enqueue(peers, 6, "quad", 4));
  peers.disconnect(6, static_cast<uint32_t>(wire::DisconnectCode::none));
  REQUIRE(server_logged(server, peers, "lost its link"));
  // Three more make four with peer 0.
  for (size_t i = 3; i < 6; ++i) queued(enqueue(peers, i, "quad", 4));
  std::set<uint64_t> expected = {session(peers, 0), session(peers, 3), session(peers, 4), session(peers, 5)};
  for (size_t i : {0, 3, 4, 5}) {
    auto f = match_found(peers, i);
    REQUIRE(f);
    CHECK(f->participants == expected);
  }
  CHECK(match_found_count(peers, 2) == 0);
}

TEST_CASE("matchmaking: bad input gets one readable answer and changes nothing") {
  Server server = match_server();
  // Before the handshake: dropped like any data before the welcome.
  RawPeer early(server.port);
  REQUIRE(early.wait_connected());
  REQUIRE(early.send_data_acked(catalog_message(Codec::msgpack, "matchmaking.enqueue", 1, enqueue_payload("quad", 4)),
                                5000, wire::kChannelRoomReliable));
  auto answer = early.join(hello_for("msgpack"));
  REQUIRE(answer);
  REQUIRE(answer->welcomed);

  RoomPeers peers(server.port, 5);
  welcome_all(peers);
  auto refused_with = [&](const Payload& payload) {
    return refusal(request(peers, 0, "matchmaking.enqueue", payload));
  };
  CHECK(refused_with([](Writer& w) {
          w.begin_map(2);
          w.key("room_type");
          w.integer(42);
          w.key("size");
          w.integer(4);
        }) == "bad request: room_type must be a string");
  CHECK(refused_with([](Writer& w) {
          w.begin_map(2);
          w.key("room_type");
          w.string("quad");
          w.key("size");
          w.string("4");
        }) == "bad request: size must be an integer");
  CHECK(refused_with([](Writer& w) {
          w.begin_map(3);
          w.key("room_type");
          w.string("quad");
          w.key("size");
          w.integer(4);
          w.key("properties");
          w.string("eu");
        }) == "bad request: properties must be a table");
  std::string huge = refused_with(enqueue_payload("quad", 4, "blob", std::string(5000, 'x')));
  CHECK(huge.find("bad request: properties of ") == 0);
  CHECK(huge.find("over the limit of 4096") != std::string::npos);
  CHECK(refusal(enqueue(peers, 0, "nope", 4)) == "unknown room type");
  CHECK(refusal(enqueue(peers, 0, "plain", 4)) == "no matchmaking for room type");
  CHECK(refusal(enqueue(peers, 0, "quad", 3)) == "size must be 4 for this room type");
  queued(enqueue(peers, 0, "quad", 4));
  CHECK(refusal(enqueue(peers, 0, "quad", 4)) == "already queued");
  CHECK(refusal(request(peers, 0, "matchmaking.dequeue", [](Writer& w) {
          w.begin_map(1);
          w.key("room_type");
          w.integer(7);
        })) == "bad request: room_type must be a string");
  CHECK(server_logged(server, peers, "matchmaking.enqueue: room_type must be a string"));
  CHECK_FALSE(peers.disconnected(0));
  // Still queued once, and the queue serves on: peer 0 (the oldest; the
  // early peer was never queued) and three more make a match.
  for (size_t i = 1; i < 4; ++i) queued(enqueue(peers, i, "quad", 4));
  std::set<uint64_t> expected;
  for (size_t i = 0; i < 4; ++i) expected.insert(session(peers, i));
  for (size_t i = 0; i < 4; ++i) {
    auto f = match_found(peers, i);
    REQUIRE(f);
    CHECK(f->participants == expected);
  }
  CHECK(match_found_count(peers, 0) == 0);
}

TEST_CASE("matchmaking: a match function that raises or runs past --handler-timeout is not compatible, reported once") {
  Server server = match_server({"--handler-timeout=200"});
  RoomPeers peers(server.port, 4);
  welcome_all(peers);
  queued(enqueue(peers, 0, "broken", 2, "bad", "yes"));
  queued(enqueue(peers, 1, "broken", 2, "loop", "yes"));
  queued(enqueue(peers, 2, "broken", 2));
  queued(enqueue(peers, 3, "broken", 2));
  auto f2 = match_found(peers, 2, 10000);
  auto f3 = match_found(peers, 3, 10000);
  REQUIRE(f2);
  REQUIRE(f3);
  CHECK(f2->participants == std::set<uint64_t>{session(peers, 2), session(peers, 3)});
  CHECK(match_found_count(peers, 0) == 0);
  CHECK(match_found_count(peers, 1) == 0);
  REQUIRE(server_logged(server, peers, "match function of room type 'broken' failed"));
  std::string err = server.process->stderr_text();
  CHECK(count_of(err, "match function of room type 'broken' failed") == 1);
  CHECK(err.find("bad player") != std::string::npos);
}

TEST_CASE("matchmaking: a participant room.join refuses is told match.failed, the others play") {
  Server server = match_server();
  RoomPeers peers(server.port, 2);
  welcome_all(peers);
  queued(request(peers, 0, "matchmaking.enqueue", [](Writer& w) {
    w.begin_map(3);
    w.key("room_type");
    w.string("picky");
    w.key("size");
    w.integer(2);
    w.key("properties");
    w.begin_map(1);
    w.key("refuse");
    w.boolean(true);
  }));
  queued(enqueue(peers, 1, "picky", 2));
  auto failed = peers.next(0, "match.failed");
  REQUIRE(failed);
  CHECK(failed->payload.string_at("room_type") == "picky");
  CHECK(failed->payload.string_at("reason") == "not you");
  auto f = match_found(peers, 1);
  REQUIRE(f);
  CHECK(f->size == 1);
  CHECK(f->participants == std::set<uint64_t>{session(peers, 1)});
  CHECK(match_found_count(peers, 0) == 0);
}

TEST_CASE("matchmaking: the Lua client API, end to end with --bots") {
  Server server = match_server();
  auto bots = std::make_unique<ChildProcess>(std::vector<std::string>{
      nshost_binary(), "--role=client", "--bots=4", "--connect=nshost://127.0.0.1:" + std::to_string(server.port),
      test_script("matchmaking/client.lua")});
  std::set<std::string> rooms;
  for (int n = 0; n < 4; ++n) {
    auto line = bots->wait_stdout("match_found room=", 10000);
    REQUIRE(line);
  }
  std::string out = bots->stdout_text();
  CHECK(count_of(out, "match_found room=") == 4);
  CHECK(count_of(out, "type=quad size=4 participants=") == 4);
  CHECK(count_of(out, "enqueue returned true nil") == 4);
  CHECK(count_of(out, "regional queued=true") == 4);
  CHECK(count_of(out, "regional dequeued=true") == 4);
  CHECK(count_of(out, "dequeue again: nil not queued EREFUSED") == 4);
  CHECK(count_of(out, "enqueue twice: nil already queued EREFUSED") == 4);
  CHECK(count_of(out, "bad size: false") == 4);
  CHECK(count_of(out, "bad properties: false") == 4);
  // One room, the same participants for all four.
  size_t at = 0;
  std::set<std::string> tails;
  while ((at = out.find("match_found room=", at)) != std::string::npos) {
    size_t end = out.find('\n', at);
    tails.insert(out.substr(at, end - at));
    at = end;
  }
  CHECK(tails.size() == 1);
  REQUIRE(bots->wait_stdout("welcome in room(id=", 10000));
  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit() == 0);
}
