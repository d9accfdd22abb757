// Rooms, server side (docs/rooms.md): a real nshost server running
// tests/scripts/rooms/server.lua, and bare ENet peers (tests/support/
// room_peers.hpp) speaking the handshake and seed 003's catalog with the
// codec by hand. Lines the room scripts print are read from the server's
// stdout; every wait has a deadline. Bad input and the handshake checks are
// in test_rooms_bad_input.cpp.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/rooms/room_manager.hpp"
#include "tests/integration/rooms_util.hpp"
#include "tests/support/raw_peer.hpp"

using namespace nshost;
using namespace nshost::test;
using namespace nshost::test::rooms_util;

TEST_CASE("rooms: join_or_create fills a room of max_clients and overflows into a second") {
  Server server = rooms_server();
  RoomPeers peers(server.port, 5);
  welcome_all(peers);
  std::vector<int64_t> room(5);
  for (size_t i = 0; i < 5; ++i) room[i] = joined(join(peers, i, "arena"));
  CHECK(room[1] == room[0]);
  CHECK(room[2] == room[0]);
  CHECK(room[3] == room[0]);
  CHECK(room[4] != room[0]);  // arena's max_clients is 4
  // The first joiner hears each later one, with the id its welcome carried.
  for (size_t i = 1; i < 4; ++i) {
    auto data = heard(peers, 0, "joined");
    REQUIRE(data);
    CHECK(data->integer_at("id") == static_cast<int64_t>(peers.welcome(i).session_id));
    CHECK(data->integer_at("clients") == static_cast<int64_t>(i + 1));
  }
  std::set<uint64_t> ids;
  for (size_t i = 0; i < 5; ++i) ids.insert(peers.welcome(i).session_id);
  CHECK(ids.size() == 5);
  CHECK(*ids.begin() >= 1);
  CHECK(server_printed(server, peers, "create " + std::to_string(room[4]) + " arena"));
  CHECK(count_of(server.process->stdout_text(), " arena\n") == 2);  // two rooms created, no more
  CHECK(server.process->stdout_text().find("redefine: false") != std::string::npos);
  CHECK(server_printed(server, peers, "late define: "));
}

TEST_CASE("rooms: 500 simultaneous joins never overfill a room") {
  Server server = rooms_server({"--max-clients=520", "--max-pending-handshakes=600", "--max-pending-per-address=600",
                                "--handshake-timeout=20000"});
  constexpr size_t kPeers = 500;
  RoomPeers peers(server.port, kPeers);
  REQUIRE(peers.handshake([](size_t) { return hello_for("msgpack,json"); }, 30000));
  for (size_t i = 0; i < kPeers; ++i) REQUIRE(peers.welcomed(i));
  // Every join leaves in one flush: they reach the server together.
  std::vector<uint32_t> ids(kPeers);
  for (size_t i = 0; i < kPeers; ++i) ids[i] = peers.send(i, "room.join_or_create", join_payload("eight"));
  peers.flush();
  int64_t sent_ms = now_ms();
  std::map<int64_t, size_t> per_room;
  size_t answered = 0;
  for (size_t i = 0; i < kPeers; ++i) {
    auto answer = peers.response(i, ids[i], 20000);
    REQUIRE(answer);
    ++answered;
    ++per_room[joined(*answer)];
  }
  CHECK(answered == kPeers);
  MESSAGE(kPeers << " joins answered " << now_ms() - sent_ms << " ms after they were sent");
  CHECK(per_room.size() == (kPeers + 7) / 8);
  for (const auto& [id, n] : per_room) CHECK(n <= 8);
  // The server's own count agrees (room.list).
  Message list = request(peers, 0, "room.list", [](Writer& w) {
    w.begin_map(1);
    w.key("room_type");
    w.string("eight");
  });
  const Value* rooms = list.payload.find("rooms");
  REQUIRE(rooms);
  CHECK(rooms->items.size() == per_room.size());
  size_t seated = 0;
  for (const Value& r : rooms->items) {
    CHECK(r.integer_at("clients").value_or(99) <= 8);
    CHECK(r.integer_at("max_clients") == 8);
    seated += static_cast<size_t>(r.integer_at("clients").value_or(0));
  }
  CHECK(seated == kPeers);
}

TEST_CASE("rooms: locked rooms refuse, and room.list shows metadata") {
  Server server = rooms_server();
  RoomPeers peers(server.port, 3);
  welcome_all(peers);
  int64_t first = joined(join(peers, 0, "arena", [](Writer& w) {
    w.begin_map(1);
    w.key("metadata");
    w.begin_map(2);
    w.key("map");
    w.string("dust");
    w.key("mode");
    w.integer(2);
  }));
  Message list = request(peers, 1, "room.list", [](Writer& w) { w.begin_map(0); });
  REQUIRE(list.payload.boolean_at("ok") == true);
  const Value* rooms = list.payload.find("rooms");
  REQUIRE(rooms);
  REQUIRE(rooms->items.size() == 1);
  const Value& entry = rooms->items[0];
  CHECK(entry.integer_at("id") == first);
  CHECK(entry.string_at("type") == "arena");
  CHECK(entry.integer_at("clients") == 1);
  CHECK(entry.integer_at("max_clients") == 4);
  CHECK(entry.boolean_at("locked") == false);
  REQUIRE(entry.find("metadata"));
  CHECK(entry.find("metadata")->string_at("map") == "dust");
  CHECK(entry.find("metadata")->integer_at("mode") == 2);

  say(peers, 0, first, "lock");
  REQUIRE(heard(peers, 0, "locked"));
  CHECK(refusal(request(peers, 1, "room.join_or_create", room_payload(first))) == "locked");
  int64_t second = joined(join(peers, 1, "arena"));  // join_or_create passes the locked room by
  CHECK(second != first);
  // Metadata set later by the room shows too.
  say(peers, 1, second, "meta", [](Writer& w) {
    w.begin_map(1);
    w.key("round");
    w.integer(3);
  });
  REQUIRE(heard(peers, 1, "meta"));
  list = request(peers, 2, "room.list", [](Writer& w) {
    w.begin_map(1);
    w.key("room_type");
    w.string("arena");
  });
  rooms = list.payload.find("rooms");
  REQUIRE(rooms);
  REQUIRE(rooms->items.size() == 2);
  CHECK(rooms->items[0].boolean_at("locked") == true);
  CHECK(rooms->items[1].find("metadata")->integer_at("round") == 3);
  list = request(peers, 2, "room.list", [](Writer& w) {
    w.begin_map(1);
    w.key("room_type");
    w.string("lobby");
  });
  CHECK(list.payload.find("rooms")->items.empty());
}

TEST_CASE("rooms: leave and dispose fire once, and room.close tells everyone") {
  Server server = rooms_server({"--resume-grace=0"});
  RoomPeers peers(server.port, 4);
  welcome_all(peers);
  int64_t room = joined(join(peers, 0, "arena"));
  CHECK(joined(join(peers, 1, "arena")) == room);
  uint64_t id0 = peers.welcome(0).session_id, id1 = peers.welcome(1).session_id;
  std::string r = std::to_string(room);

  Message left = request(peers, 0, "room.leave", room_payload(room));
  CHECK(left.payload.boolean_at("ok") == true);
  CHECK(refusal(request(peers, 0, "room.leave", room_payload(room))) == "not in room");
  CHECK(server_printed(server, peers, "leave " + r + " client " + std::to_string(id0) + " left"));
  // The last one goes by disconnecting: it leaves ("left"), the room is disposed.
  peers.disconnect(1, static_cast<uint32_t>(wire::DisconnectCode::leave));
  CHECK(server_printed(server, peers, "dispose " + r + "\n"));
  CHECK(server_printed(server, peers, "leave " + r + " client " + std::to_string(id1) + " left"));
  // Something later happens, and still each fired once.
  int64_t next = joined(join(peers, 2, "arena"));
  CHECK(next != room);
  CHECK(refusal(request(peers, 2, "room.join_or_create", room_payload(room))) == "no such room");
  CHECK(server_printed(server, peers, "create " + std::to_string(next) + " arena"));
  std::string out = server.process->stdout_text();
  CHECK(count_of(out, "dispose " + r + "\n") == 1);
  CHECK(count_of(out, "leave " + r + " client " + std::to_string(id1) + " ") == 1);
  CHECK(count_of(out, "leave " + r + " client " + std::to_string(id0) + " ") == 1);

  // room.close("done"): every client is told, room.leave and room.dispose run once.
  CHECK(joined(join(peers, 3, "arena")) == next);
  say(peers, 2, next, "close", [](Writer& w) { w.string("done"); });
  for (size_t i : {size_t{2}, size_t{3}}) {
    auto gone = peers.next(i, "room.left");
    REQUIRE(gone);
    CHECK(gone->payload.integer_at("room") == next);
    CHECK(gone->payload.string_at("reason") == "closed: done");
  }
  CHECK(server_printed(server, peers, "dispose " + std::to_string(next) + "\n"));
  out = server.process->stdout_text();
  CHECK(count_of(out, "leave " + std::to_string(next) + " client") == 2);
  CHECK(count_of(out, "closed: done") == 2);
  CHECK(refusal(request(peers, 3, "room.leave", room_payload(next))) == "not in room");
}

TEST_CASE("rooms: a failing room leaves its neighbours ticking") {
  Server server = rooms_server({"--handler-timeout=200", "--tick-rate=20"});
  RoomPeers peers(server.port, 2);
  welcome_all(peers);
  int64_t failing = joined(join(peers, 0, "failing"));
  int64_t lobby = joined(join(peers, 1, "lobby", ticker_options()));
  CHECK(server_logged(server, peers, "failed on purpose"));
  CHECK(server_logged(server, peers, "failing.lua:"));  // file:line and a traceback
  size_t before = ticks_heard(peers, 1, 1000);
  // A handler that never returns is stopped by --handler-timeout; meanwhile
  // the lobby keeps its 20 Hz.
  say(peers, 0, failing, "spin");
  size_t during = ticks_heard(peers, 1, 2000);
  CHECK(server_logged(server, peers, "handler timed out"));
  MESSAGE("lobby ticks heard: " << before << " in 1 s before, " << during << " in 2 s with the neighbour failing");
  CHECK(before >= 14);
  CHECK(during >= 28);
  // The failing room is still there with its client.
  Message list = request(peers, 1, "room.list", [](Writer& w) {
    w.begin_map(1);
    w.key("room_type");
    w.string("failing");
  });
  REQUIRE(list.payload.find("rooms")->items.size() == 1);
  CHECK(list.payload.find("rooms")->items[0].integer_at("clients") == 1);
  // An error inside a message handler is that room's only.
  say(peers, 1, lobby, "fail");
  CHECK(server_logged(server, peers, "failing on purpose"));
  say(peers, 1, lobby, "echo", [](Writer& w) { w.integer(5); });
  auto echo = heard(peers, 1, "echo");
  REQUIRE(echo);
  CHECK(echo->integer == 5);
}

TEST_CASE("rooms: a memory-bomb room is disposed with reason memory and its neighbours live") {
  Server server = rooms_server({"--room-memory-limit=8388608"});
  RoomPeers peers(server.port, 3);
  welcome_all(peers);
  int64_t bomb = joined(join(peers, 0, "arena"));
  CHECK(joined(join(peers, 1, "arena")) == bomb);
  int64_t neighbour = joined(join(peers, 2, "eight"));
  say(peers, 0, bomb, "bomb");
  for (size_t i : {size_t{0}, size_t{1}}) {
    auto gone = peers.next(i, "room.left", 10000);
    REQUIRE(gone);
    CHECK(gone->payload.integer_at("room") == bomb);
    CHECK(gone->payload.string_at("reason") == "memory");
  }
  CHECK(server_logged(server, peers, "out of memory"));
  say(peers, 2, neighbour, "echo", [](Writer& w) { w.string("alive"); });
  auto echo = heard(peers, 2, "echo");
  REQUIRE(echo);
  CHECK(echo->string == "alive");
  CHECK(refusal(request(peers, 1, "room.join_or_create", room_payload(bomb))) == "no such room");
  CHECK(joined(join(peers, 0, "arena")) != bomb);  // a fresh room of the same type opens
  // room.dispose does not run in a state at its cap.
  CHECK(count_of(server.process->stdout_text(), "dispose " + std::to_string(bomb) + "\n") == 0);
}

TEST_CASE("rooms: a json session and a msgpack session in one room get the same broadcast") {
  Server server = rooms_server();
  RoomPeers peers(server.port, 2);
  const std::vector<std::string> codecs = {"json", "msgpack,json"};
  REQUIRE(peers.handshake([&](size_t i) { return hello_for(codecs[i]); }));
  REQUIRE(peers.welcomed(0));
  REQUIRE(peers.welcomed(1));
  CHECK(peers.codec(0) == Codec::json);
  CHECK(peers.codec(1) == Codec::msgpack);
  int64_t room = joined(join(peers, 0, "arena"));
  CHECK(joined(join(peers, 1, "arena")) == room);
  say(peers, 1, room, "shout", [](Writer& w) {
    w.begin_map(5);
    w.key("n");
    w.integer(1);
    w.key("f");
    w.number(1.5);
    w.key("s");
    w.string("h\xc3\xa9llo");
    w.key("list");
    w.begin_array(3);
    w.integer(1);
    w.integer(2);
    w.integer(-3);
    w.key("nested");
    w.begin_map(1);
    w.key("a");
    w.boolean(true);
  });
  auto via_json = heard(peers, 0, "shout");
  auto via_msgpack = heard(peers, 1, "shout");
  REQUIRE(via_json);
  REQUIRE(via_msgpack);
  for (const Value* v : {&*via_json, &*via_msgpack}) {
    CHECK(v->integer_at("n") == 1);
    REQUIRE(v->find("f"));
    CHECK(v->find("f")->kind == Value::Kind::number);
    CHECK(v->find("f")->number == 1.5);
    CHECK(v->string_at("s") == "h\xc3\xa9llo");
    REQUIRE(v->find("list"));
    REQUIRE(v->find("list")->items.size() == 3);
    CHECK(v->find("list")->items[2].integer == -3);
    CHECK(v->find("nested")->boolean_at("a") == true);
  }
  // Bytes: the room relays them untouched (bin in msgpack, data_b64 in json).
  const std::string raw("\x00\xff\x01 bytes \x80", 11);
  peers.send(1, "room.message.bytes", [&](Writer& w) {
    w.begin_map(3);
    w.key("room");
    w.integer(room);
    w.key("type");
    w.string("bytes");
    w.key("data");
    w.bytes(raw);
  }, false);
  auto json_bytes = peers.next(0, "room.message.bytes");
  auto msgpack_bytes = peers.next(1, "room.message.bytes");
  REQUIRE(json_bytes);
  REQUIRE(msgpack_bytes);
  CHECK(msgpack_bytes->payload.string_at("data") == raw);
  REQUIRE(json_bytes->payload.string_at("data_b64"));
  CHECK(rooms::decode_base64(*json_bytes->payload.string_at("data_b64")) == raw);
  // And the other way: json's data_b64 reaches the room as the same bytes.
  peers.send(0, "room.message.bytes", [&](Writer& w) {
    w.begin_map(3);
    w.key("room");
    w.integer(room);
    w.key("type");
    w.string("bytes");
    w.key("data_b64");
    w.bytes(raw);
  }, false);
  msgpack_bytes = peers.next(1, "room.message.bytes");
  REQUIRE(msgpack_bytes);
  CHECK(msgpack_bytes->payload.string_at("data") == raw);
  CHECK(peers.undecodable(0) == 0);
  CHECK(peers.undecodable(1) == 0);
  // Misuse inside the room raises readable errors (and the room goes on).
  say(peers, 1, room, "cycle");
  auto cycle = heard(peers, 1, "cycle");
  REQUIRE(cycle);
  CHECK(cycle->string.find("room.send: data: cycle at data.a") != std::string::npos);
  say(peers, 1, room, "misuse");
  auto misuse = heard(peers, 1, "misuse");
  REQUIRE(misuse);
  REQUIRE(misuse->items.size() == 5);
  for (const Value& v : misuse->items) CHECK(v.string != "ok");
  CHECK(misuse->items[2].string.find("function at data") != std::string::npos);
}

TEST_CASE("rooms: a resumed session keeps its id, and one whose grace ends leaves its rooms as timeout") {
  {
    Server server = rooms_server({"--resume-grace=10000", "--link-timeout=3000"});
    RawPeer client(server.port);
    auto first = client.join(hello_for("msgpack,json"));
    REQUIRE(first);
    REQUIRE(first->welcomed);
    CHECK(first->welcome.codec == "msgpack");
    CHECK(first->welcome.session_id >= 1);
    client.cut();
    wire::Hello hello = hello_for("json");
    hello.session_token = first->welcome.session_token;
    auto again = client.join_again(hello);
    REQUIRE(again);
    REQUIRE(again->welcomed);
    CHECK(again->welcome.resumed);
    CHECK(again->welcome.session_id == first->welcome.session_id);
    CHECK(again->welcome.codec == "msgpack");  // the session's codec, picked once
  }
  Server server = rooms_server({"--resume-grace=300", "--link-timeout=500"});
  RoomPeers peers(server.port, 2);
  welcome_all(peers);
  int64_t room = joined(join(peers, 0, "arena"));
  CHECK(joined(join(peers, 1, "arena")) == room);
  uint64_t lost = peers.welcome(0).session_id;
  peers.cut(0);
  CHECK(server_printed(server, peers, "leave " + std::to_string(room) + " client " + std::to_string(lost) + " timeout",
                       10000));
  say(peers, 1, room, "echo", [](Writer& w) { w.string("still here"); });
  auto echo = heard(peers, 1, "echo");
  REQUIRE(echo);
  CHECK(echo->string == "still here");
}

TEST_CASE("rooms: 1008 idle rooms with one client each stay under 256 MiB RSS") {
  Server server = rooms_server({"--max-pending-per-address=100", "--max-pending-handshakes=100"});
  constexpr size_t kPeers = 63, kRoomsEach = rooms::RoomManager::kMaxRoomsPerClient;
  RoomPeers peers(server.port, kPeers);
  welcome_all(peers);
  int64_t before = rss_bytes(server.process->pid());
  std::vector<std::vector<uint32_t>> ids(kPeers);
  for (size_t i = 0; i < kPeers; ++i)
    for (size_t k = 0; k < kRoomsEach; ++k)
      ids[i].push_back(peers.send(i, "room.join_or_create", [](Writer& w) {
        w.begin_map(2);
        w.key("room_type");
        w.string("idle");
        w.key("create");
        w.boolean(true);
      }));
  peers.flush();
  std::set<int64_t> rooms;
  for (size_t i = 0; i < kPeers; ++i)
    for (uint32_t id : ids[i]) {
      auto answer = peers.response(i, id, 30000);
      REQUIRE(answer);
      rooms.insert(joined(*answer));
    }
  CHECK(rooms.size() == kPeers * kRoomsEach);
  int64_t after = rss_bytes(server.process->pid());
  MESSAGE(rooms.size() << " idle rooms: server RSS " << before / 1024 << " KiB before, " << after / 1024
                       << " KiB after (" << (after - before) / static_cast<int64_t>(rooms.size()) << " bytes a room)");
  if (!kSanitizedBuild) CHECK(after < 256 * 1024 * 1024);
}
