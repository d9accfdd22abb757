// End-to-end: real nshost processes talking ENet over loopback.
#include <doctest/doctest.h>
#include <enet/enet.h>
#include <signal.h>

#include <algorithm>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/transport/wire.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

TEST_CASE("relay example: a server with three clients - every client sees all three players") {
  Server server = start_server(example_script("relay/game.lua"));
  REQUIRE(server.port > 0);
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(start_client(example_script("relay/game.lua"), server.port));
  for (int i = 0; i < 3; ++i) CHECK(server.process->wait_stderr("joined in slot"));
  for (auto& c : clients) {
    auto line = c->wait_stdout("sees 3 players", 15000);
    CHECK_MESSAGE(line.has_value(), (c->stdout_text() + c->stderr_text()));
  }
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  for (auto& c : clients) {
    CHECK(c->wait_stdout("disconnected: server_left"));
    CHECK(c->wait_exit() == 0);
  }
}

TEST_CASE("chat example: reliable lines reach every client") {
  Server server = start_server(example_script("chat/game.lua"));
  REQUIRE(server.port > 0);
  auto ann = start_client(example_script("chat/game.lua"), server.port, {}, {"CHAT_NAME=ann", "CHAT_LINES=0"});
  REQUIRE(ann->wait_stdout("ann", 10000));
  auto bob = start_client(example_script("chat/game.lua"), server.port, {}, {"CHAT_NAME=bob", "CHAT_LINES=2"});
  CHECK(ann->wait_stdout("bob: hello #1 from bob"));
  CHECK(ann->wait_stdout("bob: hello #2 from bob"));
  CHECK(bob->wait_stdout("bob: hello #2 from bob"));
  CHECK(bob->wait_exit() == 0);
  CHECK(ann->wait_stdout("bob left (left)"));
}

TEST_CASE("tag example: bots walk, one tags another, the server keeps scores by session id") {
  Server server = start_server(example_script("tag/game.lua"));
  REQUIRE(server.port > 0);
  auto bots = start_client(example_script("tag/game.lua"), server.port, {"--bots=4"});
  for (int i = 0; i < 4; ++i) CHECK(server.process->wait_stderr("joined"));
  // Random walks on an 8 x 8 grid meet within seconds; the deadline is generous for a loaded machine.
  auto tag = server.process->wait_stderr("tagged player", 60000);
  REQUIRE(tag);
  CHECK(bots->wait_stdout("is it"));
  CHECK(server.process->wait_stderr("scores ", 10000));
  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit() == 0);
}

TEST_CASE("a client beyond --max-clients is refused with rejected: full") {
  Server server = start_server(test_script("lifecycle.lua"), {"--max-clients=1"});
  REQUIRE(server.port > 0);
  auto first = start_client(test_script("lifecycle.lua"), server.port);
  REQUIRE(first->wait_stdout("joined max_clients=1"));
  auto second = start_client(test_script("lifecycle.lua"), server.port);
  CHECK(second->wait_stdout("disconnected: rejected: full"));
  CHECK(second->wait_exit() == 0);
  CHECK(server.process->wait_stderr("rejected 127.0.0.1:"));
  CHECK(server.process->wait_stdout("connect slot=0") );
  CHECK_FALSE(server.process->wait_stdout("connect slot=", 300));
}

TEST_CASE("a stale handle raises 'stale client handle' even after its slot is reused") {
  Server server = start_server(test_script("lifecycle.lua"));
  REQUIRE(server.port > 0);
  auto first = start_client(test_script("lifecycle.lua"), server.port, {}, {"QUIT_AFTER_JOIN=1"});
  CHECK(first->wait_exit() == 0);
  CHECK(server.process->wait_stdout("disconnect slot=0 reason=left connected=false"));
  auto second = start_client(test_script("lifecycle.lua"), server.port);
  REQUIRE(second->wait_stdout("joined"));
  CHECK(server.process->wait_stdout("connect slot=0"));
  for (const char* fn : {"slot", "send", "kick"}) {
    auto line = server.process->wait_stdout(std::string(fn) + "(first)");
    REQUIRE(line);
    CHECK(line->find("ok=false err=stale client handle") != std::string::npos);
  }
  auto line = server.process->wait_stdout("connected(first)=");
  REQUIRE(line);
  CHECK(*line == "connected(first)=false same=false first=client(slot=0, stale) c=client(slot=0)");
}

TEST_CASE("a handler error on one message leaves the server serving the others") {
  Server server = start_server(test_script("faulty.lua"));
  REQUIRE(server.port > 0);
  auto bad = start_client(test_script("faulty.lua"), server.port, {}, {"SAY=boom"});
  auto err = server.process->wait_stderr("error in server.receive:");
  REQUIRE(err);
  CHECK(err->find("faulty.lua:6: attempt to index a nil value") != std::string::npos);
  CHECK(server.process->wait_stderr("stack traceback:"));
  auto good = start_client(test_script("faulty.lua"), server.port, {}, {"SAY=ping"});
  CHECK(good->wait_stdout("got pong on reliable"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  CHECK(bad->wait_stdout("disconnected: server_left"));
}

TEST_CASE("--strict: the first script error stops the server with exit 1") {
  Server server = start_server(test_script("faulty.lua"), {"--strict"});
  REQUIRE(server.port > 0);
  auto bad = start_client(test_script("faulty.lua"), server.port, {}, {"SAY=boom"});
  CHECK(server.process->wait_exit() == 1);
  CHECK(bad->wait_stdout("disconnected: server_left"));
}

TEST_CASE("SIGTERM runs server.shutdown, stops the server with exit 0 and clients get server_left") {
  Server server = start_server(test_script("lifecycle.lua"));
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("lifecycle.lua"), server.port);
  REQUIRE(client->wait_stdout("joined"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_stdout("shutdown handler ran"));
  CHECK(server.process->wait_exit() == 0);
  CHECK(client->wait_stdout("disconnected: server_left"));
  CHECK(client->wait_exit() == 0);
}

TEST_CASE("a client whose server never answers gets connect_failed") {
  // Bind a UDP port and never answer on it.
  EnetLibrary enet;
  ENetAddress address{};
  address.host = ENET_HOST_ANY;
  ENetHost* silent = enet_host_create(&address, 1, 1, 0, 0);
  REQUIRE(silent);
  ENetAddress bound{};
  enet_socket_get_address(silent->socket, &bound);
  auto client = start_client(test_script("lifecycle.lua"), bound.port);
  CHECK(client->wait_stdout("disconnected: connect_failed", 15000));
  CHECK(client->wait_exit() == 0);
  enet_host_destroy(silent);
}

TEST_CASE("a hello with another protocol version is refused with the reason, before the script sees it") {
  Server server = start_server(test_script("lifecycle.lua"));
  REQUIRE(server.port > 0);
  EnetLibrary enet;
  ENetHost* host = enet_host_create(nullptr, 1, wire::kChannelCount, 0, 0);
  REQUIRE(host);
  auto tap = std::make_unique<SocketTap>(host->socket, host->peerCount, NetsimConfig{});  // answers the connect challenge
  ENetAddress address{};
  enet_address_set_host_ip(&address, "127.0.0.1");
  address.port = static_cast<uint16_t>(server.port);
  ENetPeer* peer = enet_host_connect(host, &address, wire::kChannelCount, 0);
  REQUIRE(peer);
  std::string reason;
  bool disconnected = false;
  uint32_t disconnect_code = 0;
  ENetEvent event;
  for (int i = 0; i < 1000 && !disconnected; ++i) {
    if (enet_host_service(host, &event, 10) <= 0) continue;
    if (event.type == ENET_EVENT_TYPE_CONNECT) {
      wire::Hello hello;
      hello.protocol_version = 1;  // an older peer: no acks, no replay
      std::string bytes = wire::encode_hello(hello);
      enet_peer_send(peer, wire::kChannelControl,
                     enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
    } else if (event.type == ENET_EVENT_TYPE_RECEIVE) {
      wire::Notice notice;
      std::string error;
      std::string_view bytes(reinterpret_cast<char*>(event.packet->data), event.packet->dataLength);
      if (wire::decode_notice(bytes, notice, error)) reason = notice.reason;
      enet_packet_destroy(event.packet);
    } else if (event.type == ENET_EVENT_TYPE_DISCONNECT) {
      disconnected = true;
      disconnect_code = event.data;
    }
  }
  enet_host_destroy(host);
  CHECK(reason == "protocol_version");
  CHECK(disconnected);
  CHECK(disconnect_code == static_cast<uint32_t>(wire::DisconnectCode::rejected));
  auto line = server.process->wait_stderr("protocol_version");
  REQUIRE(line);
  CHECK(line->find("client speaks 1, server " + std::to_string(wire::kProtocolVersion)) != std::string::npos);
  CHECK_FALSE(server.process->wait_stdout("connect slot=", 200));
}

TEST_CASE("command line: bad flag, missing script and syntax error each give one line and the right exit code") {
  {
    ChildProcess p({nshost_binary(), "--role=server", "--tick-rate=0", "x.lua"});
    CHECK(p.wait_exit() == 2);
    CHECK(p.stderr_text() == "nshost: --tick-rate: expected 1..1000 (Hz)\n");
  }
  {
    ChildProcess p({nshost_binary(), "--role=server", "--port=0", "/nonexistent/game.lua"});
    CHECK(p.wait_exit() == 1);
    CHECK(p.stderr_text() == "cannot open /nonexistent/game.lua: No such file or directory\n");
  }
  {
    ChildProcess p({nshost_binary(), "--role=server", "--port=0", test_script("syntax_error.lua")});
    CHECK(p.wait_exit() == 1);
    std::string err = p.stderr_text();
    CHECK(err.find("syntax_error.lua:3:") != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }
  {
    ChildProcess p({nshost_binary(), "--role=client", "--connect=http://x", test_script("lifecycle.lua")});
    CHECK(p.wait_exit() == 2);
  }
}

TEST_CASE("sys.quit while the script loads stops either role cleanly with that exit code") {
  for (const char* role : {"--role=server", "--role=client"}) {
    for (const char* code : {"0", "4"}) {
      ChildProcess p({nshost_binary(), role, "--port=0", "--connect=nshost://127.0.0.1:9", test_script("quit_at_load.lua")},
                     {std::string("QUIT_CODE=") + code});
      CHECK_MESSAGE(p.wait_exit() == std::atoi(code), role, " ", code, ": ", p.stderr_text());
    }
  }
}
