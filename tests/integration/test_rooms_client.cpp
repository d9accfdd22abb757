// The client side of rooms (docs/rooms.md "Client") against a server played
// by hand: a real ClientRole (in this process, its loop stepped by the test,
// so its Lua state can be read) or a real nshost process (--bots), and a
// RawServer (tests/support/raw_server.hpp) that answers the hello and speaks
// the catalog with the codec, over ENet on loopback.
#include "tests/integration/rooms_client_fixture.hpp"

using namespace nshost::test::rooms_client;


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
  client.call_script_function("poke2");
  Request join = next_request(server, Codec::msgpack, &client);
  server.send(0, wire::kChannelRoomReliable, join_ok(Codec::msgpack, join.message.id, 3, "arena"));
  Request hello = next_request(server, Codec::msgpack, &client);
  CHECK(hello.message.type == "room.message");
  CHECK(next_request(server, Codec::msgpack, &client).message.type == "room.list");
  CHECK(next_request(server, Codec::msgpack, &client).message.type == "room.leave");
  CHECK(client.events() == "connect|sent true|left true");
}
