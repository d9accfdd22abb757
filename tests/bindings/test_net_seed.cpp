// The seed's net.* examples (seed 001), translated to Lua, against real
// loopback peers: Python's http.server, python3-websockets, plain sockets.
#include <doctest/doctest.h>

#include <cstdlib>

#include "tests/net/harness.hpp"

using namespace nshost::test;

#if NSHOST_WITH_TCP
TEST_CASE("net seed: event loop pattern sees connected, data and closed") {
  Peer echo = start_peer({"tcp-echo"});
  REQUIRE(echo.port > 0);
  setenv("PORT", std::to_string(echo.port).c_str(), 1);
  ScriptRun run(net_script("seed_event_loop.lua") +
                "\nassert(select('#', net.tcp_send(1, 'ping')) == 3 and select(3, net.tcp_send(1, 'ping')) == 'ENOTCONN')");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("logged('Connected: 1')"));
  CHECK(run.eval("net.tcp_send(1, 'ping')") == "true");
  CHECK(run.run_until("logged('Received: ping')"));
  run.exec("net.tcp_close(1)");
  CHECK(run.eval("net.status(1)") == "nil");
}
#endif

#if NSHOST_WITH_TCP
TEST_CASE("net seed: TCP client against a TCP echo peer") {
  Peer echo = start_peer({"tcp-echo"});
  REQUIRE(echo.port > 0);
  setenv("PORT", std::to_string(echo.port).c_str(), 1);
  ScriptRun run(net_script("seed_tcp_client.lua"));
  REQUIRE_MESSAGE(run.started, run.error);
  CHECK(run.eval("net.status(1)") == "connecting");
  REQUIRE(run.run_until("logged('Connected to server')"));
  CHECK(run.eval("net.status(1)") == "connected");
  CHECK(run.run_until("logged('Server says: hello\\n')"));
  CHECK(run.script_errors() == 0);
}
#endif

#if NSHOST_WITH_TCP
TEST_CASE("net seed: TCP server welcomes a Python client and hears it") {
  setenv("PORT", "0", 1);
  ScriptRun run(net_script("seed_tcp_server.lua"));
  REQUIRE_MESSAGE(run.started, run.error);
  std::string port = run.eval("net.tcp_port(1)");
  REQUIRE(std::atoi(port.c_str()) > 0);
  ChildProcess client({"/usr/bin/python3", net_dir() + "/peers.py", "tcp-client", port});
  REQUIRE(run.run_until("logged('Client connected: 2')"));
  CHECK(run.eval("net.status(1)") == "connected");
  // The Python client got the welcome and answered.
  REQUIRE(run.run_until("logged('Client 2 says: hi from python')"));
  CHECK(client.wait_stdout("GOT welcome"));
  client.send_signal(SIGTERM);
  CHECK(run.run_until("logged('Client disconnected: 2')"));
  CHECK(run.eval("net.status(2)") == "closed");
}
#endif

#if NSHOST_WITH_HTTP
TEST_CASE("net seed: simple GET decodes a JSON body") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  setenv("URL", ("http://127.0.0.1:" + std::to_string(http.port) + "/data").c_str(), 1);
  ScriptRun run(net_script("seed_http_get.lua"));
  REQUIRE_MESSAGE(run.started, run.error);
  CHECK(run.run_until("logged('Got data: nshost 42')"));
  CHECK(run.eval("net.status(1)") == "done");
}
#endif

#if NSHOST_WITH_HTTP
TEST_CASE("net seed: POST with headers reaches the server with both headers") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  setenv("URL", ("http://127.0.0.1:" + std::to_string(http.port) + "/echo").c_str(), 1);
  ScriptRun run(net_script("seed_http_post.lua"));
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.http_response(REQ) ~= nil"));
  CHECK(run.eval("net.http_response(REQ).status") == "200");
  run.exec("ECHO = json.decode(net.http_response(REQ).body)");
  CHECK(run.eval("ECHO.method") == "POST");
  CHECK(run.eval("ECHO.headers['content-type']") == "application/json");
  CHECK(run.eval("ECHO.headers['authorization']") == "Bearer my-token");
}
#endif

#if NSHOST_WITH_WS
TEST_CASE("net seed: WebSocket chat against a python3-websockets echo server") {
  Peer ws = start_peer({"ws"});
  REQUIRE(ws.port > 0);
  setenv("URL", ("ws://127.0.0.1:" + std::to_string(ws.port) + "/room").c_str(), 1);
  ScriptRun run(net_script("seed_ws_chat.lua"));
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("logged('WebSocket connected')"));
  CHECK(run.run_until("logged('Chat: Hello, room!')"));
  CHECK(run.script_errors() == 0);
}
#endif
