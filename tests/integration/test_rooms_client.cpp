// The client side of rooms (docs/rooms.md "Client") against a server played
// by hand: a real ClientRole (in this process, its loop stepped by the test,
// so its Lua state can be read) or a real nshost process (--bots), and a
// RawServer (tests/support/raw_server.hpp) that answers the hello and speaks
// the catalog with the codec, over ENet on loopback.
#include <doctest/doctest.h>
#include <signal.h>

#include <functional>
#include <memory>
#include <set>

#include "runtime/rooms/client_rooms.hpp"
#include "runtime/rooms/codec.hpp"
#include "tests/support/cli.hpp"
#include "tests/support/clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_server.hpp"
#include "tests/support/roles.hpp"

using namespace nshost;
using namespace nshost::test;
using rooms::Codec;
using rooms::Writer;

namespace {

// What every test client script starts with: events noted in order,
// values rendered deterministically (sorted keys, floats marked).
const char* kPrelude = R"lua(
events = {}
function note(s) events[#events + 1] = s end
function render(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if math.type(v) == "float" then return ("%.17gf"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. render(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
function client.connect() note("connect") end
function client.disconnect(reason) note("disconnect " .. reason) end
function client.lost() note("lost") end
function client.resumed() note("resumed") end
function client.room_message(r, t, d)
  last_data = d
  note("message " .. tostring(r) .. " " .. t .. " " .. render(d))
end
function client.room_left(r, reason) note("left " .. tostring(r) .. " " .. reason) end
-- A callback that notes what it got, under a name.
function answer(name)
  return function(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
      local v = (select(i, ...))
      parts[i] = type(v) == "userdata" and tostring(v) or render(v)
    end
    note(name .. " " .. table.concat(parts, " "))
    if type((...)) == "userdata" then room = (...) end
  end
end
)lua";

// A ClientRole in this process joined to `server`, running kPrelude + `script`.
class Client {
 public:
  Client(RawServer& server, const std::string& script, Options options = {}) {
    options.role = Role::client;
    options.connect_url = server.url();
    options.script = fixture_.write_file("client.lua", std::string(kPrelude) + script);
    role_ = std::make_unique<ClientRole>(fixture_.loop(), options);
    std::string error;
    REQUIRE_MESSAGE(role_->start(error), error);
  }
  ~Client() {
    role_.reset();  // before the fixture runs the loop for the close callbacks
  }

  ClientRole& role() { return *role_; }
  rooms::ClientRooms& rooms() { return *role_->rooms(); }
  lua_State* L() { return role_->script()->state(); }
  std::string eval(const std::string& code) { return RoleFixture::eval(L(), code); }
  bool step_until(const std::function<bool()>& done, int timeout_ms = 5000) {
    return fixture_.step_until(done, timeout_ms);
  }
  // Steps the loop for `ms` (to let what should not happen show up).
  void step_for(int ms) {
    int64_t deadline = now_ms() + ms;
    fixture_.step_until([&] { return now_ms() >= deadline; }, ms + 1000);
  }
  void join() { REQUIRE(step_until([&] { return role_->joined(); })); }
  // Runs `code` inside a client handler (client.poke); pcall's results as eval gives them.
  std::string in_handler(const std::string& code) {
    REQUIRE(eval("function client.poke() result = table.pack(pcall(function() " + code + " end)) end") == "ok");
    role_->script()->invoke("poke");
    return eval("return table.unpack(result, 1, result.n)");
  }
  std::string events() {
    std::string all = eval("return table.concat(events, '|')");
    REQUIRE(all.rfind("ok: ", 0) == 0);
    return all.substr(4);
  }
  size_t event_count() {
    std::string n = eval("return #events");
    return static_cast<size_t>(std::stoul(n.substr(4)));
  }
  bool wait_events(size_t n, int timeout_ms = 5000) {
    return step_until([&] { return event_count() >= n; }, timeout_ms);
  }

 private:
  RoleFixture fixture_;
  std::unique_ptr<ClientRole> role_;
};

// The next catalog request from the client, decoded; REQUIREs one in time.
struct Request {
  int peer = -1;
  uint8_t channel = 0;
  rooms::Message message;
};
Request next_request(RawServer& server, Codec codec, Client* client = nullptr) {
  std::optional<RawServer::Packet> packet;
  if (client) {
    // The in-process client's loop must run for it to send.
    client->step_until([&] { return (packet = server.wait_packet(1)).has_value(); });
  } else {
    packet = server.wait_packet(5000);
  }
  REQUIRE(packet);
  Request request;
  request.peer = packet->peer;
  request.channel = packet->channel;
  std::string error;
  REQUIRE_MESSAGE(rooms::decode_message(codec, packet->bytes, request.message, error), error);
  return request;
}

std::string join_ok(Codec codec, uint32_t id, int64_t room, const std::string& type) {
  Writer w(codec);
  rooms::begin_message(w, "rpc.response", id);
  w.begin_map(3);
  w.key("ok");
  w.boolean(true);
  w.key("room");
  w.integer(room);
  w.key("room_type");
  w.string(type);
  return w.take();
}

std::string refused(Codec codec, uint32_t id, const std::string& reason) {
  Writer w(codec);
  rooms::begin_message(w, "rpc.response", id);
  w.begin_map(2);
  w.key("ok");
  w.boolean(false);
  w.key("reason");
  w.string(reason);
  return w.take();
}

std::string plain_ok(Codec codec, uint32_t id) {
  Writer w(codec);
  rooms::begin_message(w, "rpc.response", id);
  w.begin_map(1);
  w.key("ok");
  w.boolean(true);
  return w.take();
}

std::string room_left(Codec codec, int64_t room, const std::string& reason) {
  Writer w(codec);
  rooms::begin_message(w, "room.left");
  w.begin_map(2);
  w.key("room");
  w.integer(room);
  w.key("reason");
  w.string(reason);
  return w.take();
}

// A room.message whose data is {x = 1, y = 2.5, s = "hi", list = {1, 2, 3}}.
std::string room_message(Codec codec, int64_t room, const std::string& type) {
  Writer w(codec);
  rooms::begin_message(w, "room.message");
  w.begin_map(3);
  w.key("room");
  w.integer(room);
  w.key("type");
  w.string(type);
  w.key("data");
  w.begin_map(4);
  w.key("x");
  w.integer(1);
  w.key("y");
  w.number(2.5);
  w.key("s");
  w.string("hi");
  w.key("list");
  w.begin_array(3);
  for (int i = 1; i <= 3; ++i) w.integer(i);
  return w.take();
}

std::string room_bytes(Codec codec, int64_t room, const std::string& type, const std::string& bytes) {
  Writer w(codec);
  rooms::begin_message(w, "room.message.bytes");
  w.begin_map(3);
  w.key("room");
  w.integer(room);
  w.key("type");
  w.string(type);
  w.key(codec == Codec::json ? "data_b64" : "data");
  w.bytes(bytes);
  return w.take();
}

// Joins "arena" as room `room` from inside a handler; returns the request's id.
void join_arena(Client& client, RawServer& server, Codec codec, int64_t room) {
  size_t before = client.event_count();
  REQUIRE(client.in_handler("return rooms.join_or_create('arena', nil, answer('joined'))") == "ok: true, true");
  Request request = next_request(server, codec, &client);
  REQUIRE(request.message.type == "room.join_or_create");
  server.send(request.peer, wire::kChannelRoomReliable, join_ok(codec, request.message.id, room, "arena"));
  REQUIRE(client.wait_events(before + 1));
}

}  // namespace

TEST_CASE("rooms client: --codec, --project-id and --auth-token") {
  auto p = test::parse({"--role=client", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.codecs == "msgpack,json");
  CHECK(p.options.project_id.empty());
  CHECK(p.options.auth_token.empty());
  p = test::parse({"--role=client", "--codec=json", "--project-id=p1", "--auth-token=t0k", "g.lua"});
  REQUIRE(p.action == ParsedArgs::Action::run);
  CHECK(p.options.codecs == "json");
  CHECK(p.options.project_id == "p1");
  CHECK(p.options.auth_token == "t0k");
  CHECK(test::parse({"--role=client", "--codec=msgpack", "g.lua"}).options.codecs == "msgpack");
  for (std::vector<std::string> bad : {std::vector<std::string>{"--role=client", "--codec=xml", "g.lua"},
                                       {"--role=client", "--codec", "g.lua"},
                                       {"--role=client", "--project-id=", "g.lua"},
                                       {"--role=client", "--project-id=" + std::string(129, 'p'), "g.lua"},
                                       {"--role=client", "--auth-token=", "g.lua"},
                                       {"--role=client", "--auth-token=" + std::string(4097, 't'), "g.lua"}}) {
    auto q = test::parse(bad);
    CHECK(q.action == ParsedArgs::Action::error);
    CHECK(q.error.rfind("--", 0) == 0);
  }
}

TEST_CASE("rooms client: the hello carries codecs, project id and token, the welcome's codec and session id are kept") {
  RawServer server;
  Options options;
  options.project_id = "proj-1";
  options.auth_token = "secret-token";
  Client client(server, "", options);
  std::optional<wire::Hello> hello;
  REQUIRE(client.step_until([&] { return (hello = server.wait_hello(1)).has_value(); }));
  CHECK(hello->codecs == "msgpack,json");
  CHECK(hello->project_id == "proj-1");
  CHECK(hello->auth_token == "secret-token");
  client.join();
  CHECK(client.eval("return rooms.codec(), rooms.session_id()") == "ok: msgpack, 7");

  RawServer json_server(RawServer::Config{"json", 40});
  Options json_only;
  json_only.codecs = "json";
  Client json_client(json_server, "", json_only);
  std::optional<wire::Hello> json_hello;
  REQUIRE(json_client.step_until([&] { return (json_hello = json_server.wait_hello(1)).has_value(); }));
  CHECK(json_hello->codecs == "json");
  CHECK(json_hello->project_id.empty());
  CHECK(json_hello->auth_token.empty());
  json_client.join();
  CHECK(json_client.eval("return rooms.codec(), rooms.session_id()") == "ok: json, 40");
}

TEST_CASE("rooms client: answers out of order reach the right callbacks, each exactly once, never inside the call") {
  RawServer server;
  Client client(server, "");
  client.join();
  CHECK(client.in_handler("rooms.join_or_create('a', {level = 1}, answer('a')) rooms.create('b', nil, answer('b'))"
                          " rooms.join(42, nil, answer('c')) rooms.list(nil, answer('list'))"
                          " return #events") == "ok: true, 1");  // only "connect": nothing ran inside the calls
  Request a = next_request(server, Codec::msgpack, &client);
  Request b = next_request(server, Codec::msgpack, &client);
  Request c = next_request(server, Codec::msgpack, &client);
  Request list = next_request(server, Codec::msgpack, &client);
  CHECK(a.channel == wire::kChannelRoomReliable);
  CHECK(a.message.payload.string_at("room_type") == "a");
  CHECK(a.message.payload.find("options")->integer_at("level") == 1);
  CHECK_FALSE(a.message.payload.find("create"));
  CHECK(b.message.payload.string_at("room_type") == "b");
  CHECK(b.message.payload.boolean_at("create") == true);
  CHECK(c.message.payload.integer_at("room") == 42);
  CHECK(list.message.type == "room.list");
  CHECK(list.message.payload.entries.empty());
  std::set<uint32_t> ids{a.message.id, b.message.id, c.message.id, list.message.id};
  CHECK(ids.size() == 4);
  CHECK_FALSE(ids.count(0));

  // Answered in reverse order, c twice; and an answer nobody asked for.
  Writer w(Codec::msgpack);
  rooms::begin_message(w, "rpc.response", list.message.id);
  w.begin_map(3);
  w.key("ok");
  w.boolean(true);
  w.key("truncated");
  w.boolean(true);
  w.key("rooms");
  w.begin_array(1);
  w.begin_map(5);
  w.key("id");
  w.integer(3);
  w.key("type");
  w.string("a");
  w.key("clients");
  w.integer(2);
  w.key("max_clients");
  w.integer(8);
  w.key("metadata");
  w.begin_map(1);
  w.key("map");
  w.string("dust");
  server.send(0, wire::kChannelRoomReliable, w.take());
  server.send(0, wire::kChannelRoomReliable, refused(Codec::msgpack, c.message.id, "no such room"));
  server.send(0, wire::kChannelRoomReliable, refused(Codec::msgpack, c.message.id, "no such room"));
  server.send(0, wire::kChannelRoomReliable, join_ok(Codec::msgpack, b.message.id, 9, "b"));
  server.send(0, wire::kChannelRoomReliable, join_ok(Codec::msgpack, 4000, 10, "x"));
  server.send(0, wire::kChannelRoomReliable, join_ok(Codec::msgpack, a.message.id, 3, "a"));
  REQUIRE(client.wait_events(5));
  client.step_for(100);
  CHECK(client.events() ==
        "connect"
        "|list {1={clients=2,id=3,max_clients=8,metadata={map=\"dust\"},type=\"a\"},truncated=true}"
        "|c nil \"no such room\" \"EREFUSED\""
        "|b room(id=9, type=b)"
        "|a room(id=3, type=a)");
  CHECK(client.rooms().pending_count() == 0);
  CHECK(client.rooms().room_count() == 2);
}

TEST_CASE("rooms client: room messages arrive decoded and leave encoded, with both codecs") {
  for (Codec codec : {Codec::msgpack, Codec::json}) {
    CAPTURE(rooms::codec_name(codec));
    RawServer server(RawServer::Config{rooms::codec_name(codec)});
    Client client(server, "");
    client.join();
    join_arena(client, server, codec, 5);
    server.send(0, wire::kChannelRoomReliable, room_message(codec, 6, "other"));  // not in room 6: dropped
    server.send(0, wire::kChannelRoomReliable, room_message(codec, 5, "state"));
    server.send(0, wire::kChannelRoomUnreliable, room_bytes(codec, 5, "blob", std::string("\0\1\xff", 3)));
    REQUIRE(client.wait_events(4));
    client.step_for(50);
    CHECK(client.events() ==
          "connect|joined room(id=5, type=arena)"
          "|message room(id=5, type=arena) state {list={1=1,2=2,3=3},s=\"hi\",x=1,y=2.5f}"
          "|message room(id=5, type=arena) blob \"\\0\\1\xff\"");
    CHECK(client.eval("return #last_data, last_data:byte(1, -1)") == "ok: 3, 0, 1, 255");

    CHECK(client.in_handler("return room:send('move', {x = 1, y = -2.5, tag = 'a', list = {true, false}}),"
                            " room:send_bytes('raw', '\\0\\1\\255'), room:send('aim', 7, 'unreliable'), room:send('ping')") ==
          "ok: true, true, true, true, true");
    Request move = next_request(server, codec, &client);
    CHECK(move.channel == wire::kChannelRoomReliable);
    CHECK(move.message.type == "room.message");
    CHECK(move.message.id == 0);
    CHECK(move.message.payload.integer_at("room") == 5);
    CHECK(move.message.payload.string_at("type") == "move");
    const rooms::Value* data = move.message.payload.find("data");
    REQUIRE(data);
    CHECK(data->integer_at("x") == 1);
    REQUIRE(data->find("y"));
    CHECK(data->find("y")->kind == rooms::Value::Kind::number);
    CHECK(data->find("y")->number == -2.5);
    CHECK(data->string_at("tag") == "a");
    REQUIRE(data->find("list"));
    REQUIRE(data->find("list")->items.size() == 2);
    CHECK(data->find("list")->items[0].boolean);
    Request raw = next_request(server, codec, &client);
    CHECK(raw.message.type == "room.message.bytes");
    CHECK(raw.message.payload.string_at("type") == "raw");
    if (codec == Codec::json) CHECK(raw.message.payload.string_at("data_b64") == "AAH/");
    else CHECK(raw.message.payload.string_at("data") == std::string_view("\0\1\xff", 3));
    Request aim = next_request(server, codec, &client);
    CHECK(aim.channel == wire::kChannelRoomUnreliable);
    CHECK(aim.message.payload.find("data")->kind == rooms::Value::Kind::integer);
    CHECK(aim.message.payload.find("data")->integer == 7);
    Request ping = next_request(server, codec, &client);
    CHECK(ping.message.payload.string_at("type") == "ping");
    REQUIRE(ping.message.payload.find("data"));
    CHECK(ping.message.payload.find("data")->kind == rooms::Value::Kind::nil);
  }
}

TEST_CASE("rooms client: room.left makes the handle stale, stale handles answer ENOROOM, a rejoin gets a new handle") {
  RawServer server;
  Client client(server, "");
  client.join();
  join_arena(client, server, Codec::msgpack, 5);
  CHECK(client.in_handler("return room.id, room.type, tostring(room)") == "ok: true, 5, arena, room(id=5, type=arena)");
  server.send(0, wire::kChannelRoomReliable, room_left(Codec::msgpack, 5, "kicked"));
  REQUIRE(client.wait_events(3));
  CHECK(client.events() == "connect|joined room(id=5, type=arena)|left room(id=5, type=arena, gone) kicked");
  CHECK(client.in_handler("return room:send('x', 1)") == "ok: true, nil, room 5 is gone, ENOROOM");
  CHECK(client.in_handler("return room:send_bytes('x', 'y')") == "ok: true, nil, room 5 is gone, ENOROOM");
  CHECK(client.in_handler("return room:leave()") == "ok: true, nil, room 5 is gone, ENOROOM");
  CHECK(client.in_handler("return room:leave(print)") == "ok: true, nil, room 5 is gone, ENOROOM");
  CHECK(client.in_handler("return room.id, room.type, tostring(room)") ==
        "ok: true, 5, arena, room(id=5, type=arena, gone)");
  server.send(0, wire::kChannelRoomReliable, room_message(Codec::msgpack, 5, "late"));
  server.send(0, wire::kChannelRoomReliable, room_left(Codec::msgpack, 5, "kicked"));  // twice: nothing more
  client.step_for(100);
  CHECK(client.event_count() == 3);

  // Rejoining the same room id: a new handle; the old one stays stale.
  CHECK(client.in_handler("old = room return true") == "ok: true, true");
  join_arena(client, server, Codec::msgpack, 5);
  CHECK(client.in_handler("return old == room, old:send('x', 1)") == "ok: true, false, nil, room 5 is gone, ENOROOM");
  CHECK(client.in_handler("return room:send('x', 1)") == "ok: true, true");
  CHECK(next_request(server, Codec::msgpack, &client).message.payload.string_at("type") == "x");
  CHECK(client.in_handler("return getmetatable(room)") == "ok: true, room");
}

TEST_CASE("rooms client: r:leave makes the handle stale at once, its callback gets the answer, no room_left") {
  RawServer server;
  Client client(server, "");
  client.join();
  join_arena(client, server, Codec::msgpack, 5);
  CHECK(client.in_handler("return room:leave(answer('leave')), room:send('x', 1)") ==
        "ok: true, true, nil, room 5 is gone, ENOROOM");
  Request leave = next_request(server, Codec::msgpack, &client);
  CHECK(leave.message.type == "room.leave");
  CHECK(leave.message.id != 0);
  CHECK(leave.message.payload.integer_at("room") == 5);
  server.send(0, wire::kChannelRoomReliable, room_message(Codec::msgpack, 5, "in flight"));  // dropped
  server.send(0, wire::kChannelRoomReliable, plain_ok(Codec::msgpack, leave.message.id));
  REQUIRE(client.wait_events(3));
  client.step_for(50);
  CHECK(client.events() == "connect|joined room(id=5, type=arena)|leave true");

  // Without a callback: a room.leave with no id, nothing waits for an answer.
  join_arena(client, server, Codec::msgpack, 6);
  CHECK(client.in_handler("return room:leave()") == "ok: true, true");
  Request quiet = next_request(server, Codec::msgpack, &client);
  CHECK(quiet.message.type == "room.leave");
  CHECK(quiet.message.id == 0);
  CHECK(client.rooms().pending_count() == 0);
  CHECK(client.rooms().room_count() == 0);
}

TEST_CASE("rooms client: when the server goes, rooms get room_left 'disconnected' and pending requests 'not connected'") {
  RawServer server;
  Client client(server, "");
  client.join();
  join_arena(client, server, Codec::msgpack, 5);
  CHECK(client.in_handler("return rooms.list('arena', answer('list')), rooms.join_or_create('duel', nil, answer('duel'))") ==
        "ok: true, true, true");
  next_request(server, Codec::msgpack, &client);
  next_request(server, Codec::msgpack, &client);
  server.disconnect_all(static_cast<uint32_t>(wire::DisconnectCode::shutdown));
  REQUIRE(client.wait_events(6));
  client.step_for(100);
  CHECK(client.events() ==
        "connect|joined room(id=5, type=arena)"
        "|left room(id=5, type=arena, gone) disconnected"
        "|list nil \"not connected\" \"ENOTCONN\""
        "|duel nil \"not connected\" \"ENOTCONN\""
        "|disconnect server_left");
  CHECK(client.rooms().pending_count() == 0);
  CHECK(client.rooms().room_count() == 0);
}

TEST_CASE("rooms client: a hop ends the origin's rooms and requests, delivered after the hop call returns") {
  RawServer origin;
  RawServer destination;  // serves no script: the hop fails, the client keeps running
  Client client(origin, "");
  client.join();
  join_arena(client, origin, Codec::msgpack, 5);
  CHECK(client.in_handler("return rooms.list(nil, answer('list'))") == "ok: true, true");
  next_request(origin, Codec::msgpack, &client);
  CHECK(client.in_handler("local ok = hop('" + destination.url() + "') return ok, #events, room:send('x', 1)") ==
        "ok: true, true, 2, nil, room 5 is gone, ENOROOM");
  REQUIRE(client.wait_events(5));
  std::string events = client.events();
  CHECK(events.rfind("connect|joined room(id=5, type=arena)"
                     "|left room(id=5, type=arena, gone) disconnected"
                     "|list nil \"not connected\" \"ENOTCONN\""
                     "|disconnect hop_failed: ", 0) == 0);
}

TEST_CASE("rooms client: a request made before joining gets 'not connected' later, never inside the call") {
  RawServer server;
  Client client(server, "early = {rooms.list(nil, answer('early'))} during = #events\n");
  REQUIRE(client.wait_events(2));
  CHECK(client.eval("return early[1], during") == "ok: true, 0");
  CHECK(client.events() == "early nil \"not connected\" \"ENOTCONN\"|connect");
}

TEST_CASE("rooms client: values that cannot be encoded raise, bad arguments raise, nothing is sent") {
  for (Codec codec : {Codec::msgpack, Codec::json}) {
    CAPTURE(rooms::codec_name(codec));
    RawServer server(RawServer::Config{rooms::codec_name(codec)});
    Client client(server, "");
    client.join();
    join_arena(client, server, codec, 5);
    auto raises = [&](const std::string& code, const std::string& expected) {
      std::string result = client.in_handler(code);
      CHECK_MESSAGE(result.rfind("ok: false, ", 0) == 0, result);
      CHECK_MESSAGE(result.find(expected) != std::string::npos, result);
    };
    raises("local t = {} t.a = t return room:send('x', t)", "r:send: data: cycle at data.a");
    raises("return room:send('x', {f = print})", "r:send: data: function at data.f");
    raises("local t = {} t.a = t return rooms.join_or_create('arena', t, answer('x'))",
           "rooms.join_or_create: options: cycle at options.a");
    raises("return rooms.create('arena', {co = coroutine.create(print)}, answer('x'))",
           "rooms.create: options: thread at options.co");
    raises("return rooms.join_or_create('arena', nil, 'not a function')", "function expected");
    raises("return rooms.join_or_create('arena', 5, answer('x'))", "table or nil expected");
    raises("return rooms.join(0, nil, answer('x'))", "a room id is a positive integer");
    raises("return rooms.list(5, answer('x'))", "string or nil expected");
    raises("return room:send('x', 1, 'sideways')", "invalid option 'sideways'");
    raises("return room:send_bytes('x', {})", "string expected");
    raises("return room:leave('no')", "function expected");
    client.step_for(100);
    CHECK_FALSE(server.wait_packet(50));
    CHECK(client.rooms().pending_count() == 0);
  }
}

TEST_CASE("rooms client: at most 64 requests outstanding, then EBUSY at once until one is answered") {
  RawServer server;
  Client client(server, "");
  client.join();
  CHECK(client.in_handler("for i = 1, 64 do assert(rooms.list(nil, answer('l' .. i))) end"
                          " return rooms.list(nil, answer('x'))") ==
        "ok: true, nil, too many requests (64 outstanding), EBUSY");
  std::vector<Request> requests;
  for (int i = 0; i < 64; ++i) requests.push_back(next_request(server, Codec::msgpack, &client));
  CHECK(client.in_handler("return rooms.join_or_create('arena', nil, answer('y'))") ==
        "ok: true, nil, too many requests (64 outstanding), EBUSY");
  server.send(0, wire::kChannelRoomReliable, refused(Codec::msgpack, requests[10].message.id, "nope"));
  REQUIRE(client.wait_events(2));
  CHECK(client.events() == "connect|l11 nil \"nope\" \"EREFUSED\"");
  CHECK(client.in_handler("return rooms.list(nil, answer('z'))") == "ok: true, true");
  CHECK(client.rooms().pending_count() == 64);
}

TEST_CASE("rooms client: a server that picked no codec has no rooms: ENOTSUP at once") {
  RawServer server(RawServer::Config{""});
  Client client(server, "");
  client.join();
  CHECK(client.eval("return rooms.codec(), rooms.session_id()") == "ok: nil, 7");
  CHECK(client.in_handler("return rooms.join_or_create('arena', nil, answer('x'))") ==
        "ok: true, nil, server has no rooms, ENOTSUP");
  CHECK(client.in_handler("return rooms.list(nil, answer('x'))") == "ok: true, nil, server has no rooms, ENOTSUP");
  server.send(0, wire::kChannelRoomReliable, room_message(Codec::msgpack, 5, "x"));
  REQUIRE(client.step_until([&] { return client.rooms().bad_packets() == 1; }));
  client.step_for(50);
  CHECK(client.events() == "connect");
}

TEST_CASE("rooms client: over --max-message-size is EMSGSIZE, nothing sent, no callback") {
  RawServer server;
  Options options;
  options.max_message_bytes = 1024;
  Client client(server, "", options);
  client.join();
  join_arena(client, server, Codec::msgpack, 5);
  std::string result = client.in_handler("return room:send('x', string.rep('a', 2000))");
  CHECK_MESSAGE(result.find("over the limit of 1024 bytes (--max-message-size), EMSGSIZE") != std::string::npos, result);
  result = client.in_handler("return rooms.join_or_create('arena', {pad = string.rep('a', 2000)}, answer('big'))");
  CHECK_MESSAGE(result.find("EMSGSIZE") != std::string::npos, result);
  CHECK(client.in_handler("return room:send('x', string.rep('a', 900))") == "ok: true, true");
  CHECK(next_request(server, Codec::msgpack, &client).message.payload.string_at("type") == "x");
  client.step_for(50);
  CHECK(client.event_count() == 2);
  CHECK(client.rooms().pending_count() == 0);
}

TEST_CASE("rooms client: server errors and undecodable or unknown packets are logged and counted, the client goes on") {
  RawServer server;
  Client client(server, "");
  client.join();
  Writer w(Codec::msgpack);
  rooms::begin_message(w, "error");
  w.begin_map(2);
  w.key("reason");
  w.string("not in room");
  w.key("room");
  w.integer(5);
  server.send(0, wire::kChannelRoomReliable, w.take());
  server.send(0, wire::kChannelRoomReliable, std::string("\xc1", 1));  // a byte msgpack never uses
  Writer bogus(Codec::msgpack);
  rooms::begin_message(bogus, "room.bogus");
  bogus.begin_map(0);
  server.send(0, wire::kChannelRoomReliable, bogus.take());
  REQUIRE(client.step_until([&] { return client.rooms().errors_received() == 1 && client.rooms().bad_packets() == 2; }));
  join_arena(client, server, Codec::msgpack, 5);
  CHECK(client.events() == "connect|joined room(id=5, type=arena)");
}

TEST_CASE("rooms client: a callback that raises is logged as a script error, later callbacks still run") {
  RawServer server;
  Client client(server, "");
  client.join();
  CHECK(client.in_handler("return rooms.list(nil, function() error('boom') end), rooms.list(nil, answer('after'))") ==
        "ok: true, true, true");
  Request first = next_request(server, Codec::msgpack, &client);
  Request second = next_request(server, Codec::msgpack, &client);
  server.send(0, wire::kChannelRoomReliable, refused(Codec::msgpack, first.message.id, "x"));
  server.send(0, wire::kChannelRoomReliable, refused(Codec::msgpack, second.message.id, "y"));
  REQUIRE(client.wait_events(2));
  CHECK(client.events() == "connect|after nil \"y\" \"EREFUSED\"");
  CHECK(client.role().script()->error_count() == 1);
}

TEST_CASE("rooms client: a callback runs as a handler: it may send, leave and ask again") {
  RawServer server;
  Client client(server, R"lua(
function client.poke2()
  rooms.join_or_create("arena", nil, function(r, err)
    note("sent " .. tostring(r:send("hello", {n = 1})))
    rooms.list(nil, answer("list"))
    note("left " .. tostring(r:leave()))
  end)
end
)lua");
  client.join();
  client.role().script()->invoke("poke2");
  Request join = next_request(server, Codec::msgpack, &client);
  server.send(0, wire::kChannelRoomReliable, join_ok(Codec::msgpack, join.message.id, 3, "arena"));
  Request hello = next_request(server, Codec::msgpack, &client);
  CHECK(hello.message.type == "room.message");
  CHECK(next_request(server, Codec::msgpack, &client).message.type == "room.list");
  CHECK(next_request(server, Codec::msgpack, &client).message.type == "room.leave");
  CHECK(client.events() == "connect|sent true|left true");
}

TEST_CASE("rooms client: rooms stay across a resumed session, a resume refused ends them with 'disconnected'") {
  for (bool resume : {true, false}) {
    CAPTURE(resume);
    RawServer::Config config;
    config.tokens = true;
    config.resume = resume;
    RawServer server(config);
    Options options;
    options.limits.link_timeout_ms = 300;
    options.reconnect = ReconnectPolicy{50, 2.0, 200, 20, 20000};
    Client client(server, "", options);
    client.join();
    join_arena(client, server, Codec::msgpack, 5);
    CHECK(client.in_handler("return rooms.list(nil, answer('list'))") == "ok: true, true");
    next_request(server, Codec::msgpack, &client);
    server.drop_all();
    if (resume) {
      REQUIRE(client.wait_events(5, 10000));
      CHECK(client.events() == "connect|joined room(id=5, type=arena)|list nil \"not connected\" \"ENOTCONN\"|lost|resumed");
      CHECK(client.in_handler("return room:send('after', 1)") == "ok: true, true");
      Request after = next_request(server, Codec::msgpack, &client);
      CHECK(after.peer == 1);
      CHECK(after.message.payload.string_at("type") == "after");
    } else {
      REQUIRE(client.wait_events(6, 10000));
      CHECK(client.events() ==
            "connect|joined room(id=5, type=arena)|list nil \"not connected\" \"ENOTCONN\"|lost"
            "|left room(id=5, type=arena, gone) disconnected|connect");
      CHECK(client.in_handler("return room:send('after', 1)") == "ok: true, nil, room 5 is gone, ENOROOM");
    }
  }
}

TEST_CASE("rooms client: every bot (--bots) has its own rooms, codec and session") {
  RawServer server;
  auto bots = std::make_unique<ChildProcess>(std::vector<std::string>{
      nshost_binary(), "--role=client", "--bots=2", "--connect=" + server.url(), test_script("rooms_bots.lua")});
  std::set<int> peers;
  for (int i = 0; i < 2; ++i) {
    auto hello = server.wait_hello(10000);
    REQUIRE(hello);
    CHECK(hello->codecs == "msgpack,json");
  }
  // Each bot joins, then says hello in its room; the two bots interleave.
  std::set<int> hellos;
  for (int i = 0; i < 4; ++i) {
    Request request = next_request(server, Codec::msgpack);
    if (request.message.type == "room.join_or_create") {
      CHECK(request.message.payload.string_at("room_type") == "arena");
      CHECK(request.message.payload.find("options")->integer_at("level") == 1);
      CHECK(peers.insert(request.peer).second);
      server.send(request.peer, wire::kChannelRoomReliable, join_ok(Codec::msgpack, request.message.id, 1, "arena"));
    } else {
      REQUIRE(request.message.type == "room.message");
      CHECK(peers.count(request.peer));
      REQUIRE(request.message.payload.find("data"));
      CHECK(request.message.payload.find("data")->integer_at("session") == 7 + request.peer);
      CHECK(hellos.insert(request.peer).second);
    }
  }
  CHECK(peers == std::set<int>{0, 1});
  CHECK(hellos == std::set<int>{0, 1});
  CHECK(bots->wait_stdout("bot session=7 joined room(id=1, type=arena) codec=msgpack"));
  CHECK(bots->wait_stdout("bot session=8 joined room(id=1, type=arena) codec=msgpack"));
  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit() == 0);
}

// End to end: a real nshost server (tests/scripts/rooms/server.lua, its
// "arena" type seats 4) and real client processes (tests/scripts/rooms_e2e.lua).
TEST_CASE("rooms client end to end: a msgpack and a json client share a room, message both ways, list, leave") {
  Server server = start_server(test_script("rooms/server.lua"));
  REQUIRE(server.port > 0);
  auto a = start_client(test_script("rooms_e2e.lua"), server.port, {}, {"NAME=a", "WAIT_FOR_PEER=1"});
  REQUIRE(a->wait_stdout("a connected session=1 codec=msgpack"));
  auto joined_a = a->wait_stdout("a joined room(id=");
  REQUIRE_MESSAGE(joined_a, a->stderr_text());
  CHECK(*joined_a == "a joined room(id=1, type=arena)");
  auto b = start_client(test_script("rooms_e2e.lua"), server.port, {"--codec=json"}, {"NAME=b"});
  CHECK(b->wait_stdout("b connected session=2 codec=json"));
  CHECK(b->wait_stdout("b joined room(id=1, type=arena)"));
  CHECK(a->wait_stdout("a saw joined clients=2"));
  for (auto* c : {a.get(), b.get()}) {
    std::string n = c == a.get() ? "a" : "b";
    CAPTURE(n);
    CHECK(c->wait_stdout(n + " sent echo true"));
    // Integers stay integers, floats floats, through either codec both ways.
    CHECK(c->wait_stdout(n + " echo {f=2.5f,list={1=1,2=2,3=3},n=1,s=\"hi\"}"));
    CHECK(c->wait_stdout(n + " sent bytes true"));
    CHECK(c->wait_stdout(n + " bytes " + (n == "a" ? "610001ff" : "620001ff")));
    CHECK(c->wait_stdout(n + " list n=1 id=1 clients="));
    CHECK(c->wait_stdout(n + " leave true"));
    CHECK(c->wait_stdout(n + " left true nil nil"));
    CHECK(c->wait_exit() == 0);
  }
  CHECK(server.process->wait_stdout("create 1 arena"));
  CHECK(server.process->wait_stdout("leave 1 client"));
  CHECK(server.process->wait_stdout("leave 1 client"));
  CHECK(server.process->wait_stdout("dispose 1"));
  std::string out = server.process->stdout_text();
  CHECK(out.find("create 2") == std::string::npos);  // one room served both
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}

TEST_CASE("rooms client end to end: room.close reaches the client as room_left, the server going ends its rooms") {
  Server server = start_server(test_script("rooms/server.lua"));
  REQUIRE(server.port > 0);
  auto c = start_client(test_script("rooms_e2e.lua"), server.port, {}, {"NAME=c", "MODE=close"});
  CHECK(c->wait_stdout("c joined room(id=1, type=arena)"));
  CHECK(c->wait_stdout("c room_left room(id=1, type=arena, gone) closed: bye"));
  CHECK(c->wait_stdout("c after close room 1 is gone ENOROOM"));
  CHECK(c->wait_stdout("c joined again room(id=2, type=arena) nil"));
  CHECK(server.process->wait_stdout("dispose 1"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  CHECK(c->wait_stdout("c room_left room(id=2, type=arena, gone) disconnected"));
  CHECK(c->wait_stdout("c disconnect server_left"));
  CHECK(c->wait_exit() == 0);
}
