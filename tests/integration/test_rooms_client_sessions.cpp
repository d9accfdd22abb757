// The rooms client across sessions: a resume keeps its rooms, every bot of
// --bots has its own, and end to end against a real nshost server.
#include "tests/integration/rooms_client_fixture.hpp"

using namespace nshost::test::rooms_client;

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
