// examples/http-fetch and examples/ws-bridge as real nshost processes against
// loopback peers, and net.* in the client role.
#include <doctest/doctest.h>
#include <signal.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

#if NSHOST_WITH_HTTP
TEST_CASE("http-fetch example: the server fetches JSON at startup and serves it to a client") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  std::string url = "FETCH_URL=http://127.0.0.1:" + std::to_string(http.port) + "/data";
  Server server = start_server(example_script("http-fetch/game.lua"), {}, {url});
  REQUIRE(server.port > 0);
  CHECK(server.process->wait_stderr("bytes of JSON"));
  auto client = start_client(example_script("http-fetch/game.lua"), server.port);
  auto line = client->wait_stdout("document: ");
  REQUIRE(line);
  CHECK(line->find("\"name\":\"nshost\"") != std::string::npos);
  CHECK(line->find("\"n\":42") != std::string::npos);
  CHECK(client->wait_exit() == 0);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}
#endif

#if NSHOST_WITH_HTTP
TEST_CASE("http-fetch example: a failed fetch is reported to clients and the server keeps serving") {
  Server server = start_server(example_script("http-fetch/game.lua"), {},
                               {"FETCH_URL=http://no-such-host.invalid/data.json"});
  REQUIRE(server.port > 0);
  auto client = start_client(example_script("http-fetch/game.lua"), server.port);
  CHECK(server.process->wait_stderr("fetch failed: ", 15000));
  auto line = client->wait_stdout("document: unavailable (", 15000);
  REQUIRE(line);
  CHECK(line->find("no-such-host.invalid") != std::string::npos);
  CHECK(client->wait_exit() == 0);
}
#endif

#if NSHOST_WITH_WS
TEST_CASE("ws-bridge example: client lines go through a WebSocket echo service and back to every client") {
  Peer ws = start_peer({"ws"});
  REQUIRE(ws.port > 0);
  Server server = start_server(example_script("ws-bridge/game.lua"), {},
                               {"BRIDGE_URL=ws://127.0.0.1:" + std::to_string(ws.port) + "/room"});
  REQUIRE(server.port > 0);
  REQUIRE(server.process->wait_stderr("bridge: connected"));
  auto ann = start_client(example_script("ws-bridge/game.lua"), server.port, {}, {"BRIDGE_NAME=ann", "BRIDGE_LINES=2"});
  auto bob = start_client(example_script("ws-bridge/game.lua"), server.port, {}, {"BRIDGE_NAME=bob", "BRIDGE_LINES=2"});
  CHECK(ann->wait_stdout("ann says line 2 of 2"));
  CHECK(bob->wait_stdout("bob says line 2 of 2"));
  CHECK(ann->wait_exit() == 0);
  CHECK(bob->wait_exit() == 0);
  // The service goes away: clients are told, the server retries.
  auto carl = start_client(example_script("ws-bridge/game.lua"), server.port, {}, {"BRIDGE_NAME=carl", "BRIDGE_LINES=0"});
  REQUIRE(server.process->wait_stderr("joined in slot"));
  ws.process->send_signal(SIGKILL);
  CHECK(carl->wait_stdout("* bridge down: "));
  CHECK(server.process->wait_stderr("retrying in"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}
#endif

#if NSHOST_WITH_HTTP && NSHOST_WITH_WS
TEST_CASE("net in the client role: a client script fetches over HTTP and talks WebSocket") {
  Peer http = start_peer({"http"});
  Peer ws = start_peer({"ws"});
  REQUIRE(http.port > 0);
  REQUIRE(ws.port > 0);
  Server server = start_server(test_script("lifecycle.lua"));
  REQUIRE(server.port > 0);
  std::string http_url = "URL=http://127.0.0.1:" + std::to_string(http.port) + "/data";
  auto fetcher = start_client(net_dir() + "/seed_http_get.lua", server.port, {"--log-level=info"}, {http_url});
  CHECK(fetcher->wait_stderr("Got data: nshost 42"));
  std::string ws_url = "URL=ws://127.0.0.1:" + std::to_string(ws.port) + "/room";
  auto chatter = start_client(net_dir() + "/seed_ws_chat.lua", server.port, {"--log-level=info"}, {ws_url});
  CHECK(chatter->wait_stderr("Chat: Hello, room!"));
}
#endif

#if NSHOST_WITH_TCP && NSHOST_WITH_WS
TEST_CASE("net: open sockets do not keep a stopped nshost alive and SIGTERM still exits 0") {
  Peer ws = start_peer({"ws"});
  REQUIRE(ws.port > 0);
  TempDir dir;
  std::string script = dir.write("open.lua", "L = net.tcp_listen(0, '127.0.0.1')\n"
                                             "W = net.ws_connect('ws://127.0.0.1:" + std::to_string(ws.port) + "/')\n"
                                             "C = net.tcp_connect('127.0.0.1', net.tcp_port(L))\n"
                                             "SEEN = {}\n"
                                             "function server.tick()\n"
                                             "  for evt in net.events() do SEEN[evt.type .. evt.handle] = true end\n"
                                             "  if SEEN.connected2 and SEEN.connected3 and SEEN.accepted1 then\n"
                                             "    print('all open'); SEEN = {}\n"
                                             "  end\n"
                                             "end\n");
  Server server = start_server(script);
  REQUIRE(server.port > 0);
  REQUIRE(server.process->wait_stdout("all open"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(5000) == 0);
}
#endif
