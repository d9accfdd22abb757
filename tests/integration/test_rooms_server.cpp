// Rooms, server side (docs/rooms.md): a real nshost server running
// tests/scripts/rooms/server.lua, and bare ENet peers (tests/support/
// room_peers.hpp) speaking the handshake and seed 003's catalog with the
// codec by hand. Lines the room scripts print are read from the server's
// stdout; every wait has a deadline.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/rooms/codec.hpp"
#include "runtime/rooms/room_manager.hpp"
#include "runtime/transport/wire.hpp"
#include "tests/support/clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/room_peers.hpp"

using namespace nshost;
using namespace nshost::test;
using rooms::Codec;
using rooms::Message;
using rooms::Value;
using rooms::Writer;

namespace {

using Payload = std::function<void(Writer&)>;

Server rooms_server(std::vector<std::string> extra = {}) {
  Server server = start_server(test_script("rooms/server.lua"), std::move(extra));
  REQUIRE(server.port > 0);
  return server;
}

wire::Hello hello_for(const std::string& codecs, const std::string& token = "", const std::string& project = "") {
  wire::Hello hello;
  hello.codecs = codecs;
  hello.auth_token = token;
  hello.project_id = project;
  return hello;
}

void welcome_all(RoomPeers& peers, const std::string& codecs = "msgpack,json") {
  REQUIRE(peers.handshake([&](size_t) { return hello_for(codecs); }));
  for (size_t i = 0; i < peers.size(); ++i) REQUIRE(peers.welcomed(i));
}

// {room_type = type [, options = <options>]}
Payload join_payload(const std::string& type, const Payload& options = {}) {
  return [type, options](Writer& w) {
    w.begin_map(options ? 2 : 1);
    w.key("room_type");
    w.string(type);
    if (options) {
      w.key("options");
      options(w);
    }
  };
}

Payload room_payload(int64_t room) {
  return [room](Writer& w) {
    w.begin_map(1);
    w.key("room");
    w.integer(room);
  };
}

// {room, type, data = <data>}
Payload message_payload(int64_t room, const std::string& type, const Payload& data) {
  return [room, type, data](Writer& w) {
    w.begin_map(3);
    w.key("room");
    w.integer(room);
    w.key("type");
    w.string(type);
    w.key("data");
    if (data) data(w);
    else w.nil();
  };
}

Message request(RoomPeers& peers, size_t i, const std::string& type, const Payload& payload) {
  uint32_t id = peers.send(i, type, payload);
  auto answer = peers.response(i, id, 10000);
  REQUIRE(answer);
  return *answer;
}

Message join(RoomPeers& peers, size_t i, const std::string& type, const Payload& options = {}) {
  return request(peers, i, "room.join_or_create", join_payload(type, options));
}

int64_t joined(const Message& answer) {
  INFO("reason: " << std::string(answer.payload.string_at("reason").value_or("")));
  REQUIRE(answer.payload.boolean_at("ok") == true);
  return answer.payload.integer_at("room").value_or(0);
}

std::string refusal(const Message& answer) {
  REQUIRE(answer.payload.boolean_at("ok") == false);
  return std::string(answer.payload.string_at("reason").value_or(""));
}

void say(RoomPeers& peers, size_t i, int64_t room, const std::string& type, const Payload& data = {},
         uint8_t channel = wire::kChannelRoomReliable) {
  peers.send(i, "room.message", message_payload(room, type, data), false, channel);
  peers.flush();
}

// The data of the next room.message of `type` peer i receives.
std::optional<Value> heard(RoomPeers& peers, size_t i, const std::string& type, int timeout_ms = 5000) {
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    auto m = peers.next(i, "room.message", static_cast<int>(std::max<int64_t>(1, deadline - now_ms())));
    if (!m) return std::nullopt;
    if (m->payload.string_at("type") == type) {
      const Value* data = m->payload.find("data");
      return data ? *data : Value{};
    }
  }
  return std::nullopt;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Pumps the peers while waiting for `needle` anywhere in the server's stdout.
bool server_printed(Server& server, RoomPeers& peers, const std::string& needle, int timeout_ms = 5000) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    if (server.process->stdout_text().find(needle) != std::string::npos) return true;
    if (now_ms() >= deadline) return false;
    peers.pump(2);
    server.process->wait_stdout("\x01", 3);  // reads what arrived
  }
}

bool server_logged(Server& server, RoomPeers& peers, const std::string& needle, int timeout_ms = 5000) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    if (server.process->stderr_text().find(needle) != std::string::npos) return true;
    if (now_ms() >= deadline) return false;
    peers.pump(2);
    server.process->wait_stderr("\x01", 3);
  }
}

// Counts the room.message "tick"s peer i receives in `window_ms`.
size_t ticks_heard(RoomPeers& peers, size_t i, int window_ms) {
  size_t ticks = 0;
  int64_t deadline = now_ms() + window_ms;
  while (now_ms() < deadline) {
    peers.pump(5);
    auto& inbox = peers.inbox(i);
    for (auto it = inbox.begin(); it != inbox.end();) {
      if (it->type == "room.message" && it->payload.string_at("type") == "tick") {
        ++ticks;
        it = inbox.erase(it);
      } else {
        ++it;
      }
    }
  }
  return ticks;
}

Payload ticker_options() {
  return [](Writer& w) {
    w.begin_map(1);
    w.key("ticker");
    w.boolean(true);
  };
}

}  // namespace

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
  std::map<int64_t, size_t> per_room;
  size_t answered = 0;
  for (size_t i = 0; i < kPeers; ++i) {
    auto answer = peers.response(i, ids[i], 20000);
    REQUIRE(answer);
    ++answered;
    ++per_room[joined(*answer)];
  }
  CHECK(answered == kPeers);
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

TEST_CASE("rooms: leave and dispose fire once; room.close tells everyone") {
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

TEST_CASE("rooms: server.auth refuses and admits with claims; codec and project id checks") {
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
  std::string decoded;
  REQUIRE(json_bytes->payload.string_at("data_b64"));
  REQUIRE(rooms::decode_base64(*json_bytes->payload.string_at("data_b64"), decoded));
  CHECK(decoded == raw);
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

TEST_CASE("rooms: bad input gets its answer and nobody else notices") {
  Server server = rooms_server({"--max-message-size=4096", "--resume-grace=0", "--link-timeout=1000"});
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
  const std::string big(6000, 'x');
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
