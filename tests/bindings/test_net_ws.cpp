// net.ws_*: text and binary messages, a 2 MiB message, exactly-once delivery
// between events and ws_recv, and WSS with a throwaway certificate, against
// a python3-websockets echo server on loopback.
#include <doctest/doctest.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

#if NSHOST_WITH_WS
TEST_CASE("net ws: text, binary and a 2 MiB message echo back and each message is delivered once") {
  Peer ws = start_peer({"ws"});
  REQUIRE(ws.port > 0);
  ScriptRun run("URL = 'ws://127.0.0.1:" + std::to_string(ws.port) + "/echo?x=1'\n" + R"lua(
WS = net.ws_connect(URL)
EVENTS = {}
BIG = string.rep("0123456789abcdef", 2 * 1024 * 1024 // 16)
function server.tick()
  for evt in net.events() do EVENTS[#EVENTS + 1] = evt end
end
function has(type, data)
  for _, e in ipairs(EVENTS) do
    if e.type == type and (data == nil or e.data == data) then return true end
  end
  return false
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  CHECK(run.eval("net.status(WS)") == "connecting");
  CHECK(run.eval_all("net.ws_send(WS, 'early')") == "nil, not connected yet, ENOTCONN");
  REQUIRE(run.run_until("has('connected')"));
  CHECK(run.eval("net.status(WS)") == "connected");
  CHECK(run.eval("net.ws_send(WS, 'hello')") == "true");
  CHECK(run.eval("net.ws_send_binary(WS, '\\0\\1\\2\\255')") == "true");
  CHECK(run.eval("net.ws_send(WS, BIG)") == "true");
  CHECK(run.run_until("has('message', 'hello') and has('message', '\\0\\1\\2\\255') and has('message', BIG)"));
  // Read with ws_recv before polling: the message's event is then skipped.
  run.exec("server.tick = nil; net.ws_send(WS, 'pulled')");
  REQUIRE(run.run_until("(function() PULLED = PULLED or net.ws_recv(WS); return PULLED ~= nil end)()"));
  CHECK(run.eval("PULLED") == "pulled");
  CHECK(run.eval("net.poll_event()") == "nil");
  CHECK(run.eval("net.ws_recv(WS)") == "nil");
  run.exec("net.ws_close(WS)");
  CHECK(run.eval("net.status(WS)") == "nil");
  CHECK(run.eval_all("net.ws_send(WS, 'x')") == "nil, not an open connection, EBADF");
}

TEST_CASE("net ws: WSS verifies by default, trusts ca_file, opts out with tls_verify=false") {
  TestCert cert;
  REQUIRE(cert.ok);
  Peer wss = start_peer({"ws", "--tls", cert.cert, cert.key});
  REQUIRE(wss.port > 0);
  ScriptRun run("URL = 'wss://localhost:" + std::to_string(wss.port) + "/'\nCERT = '" + cert.cert + "'\n" + R"lua(
EVENTS = {}
function server.tick()
  for evt in net.events() do EVENTS[#EVENTS + 1] = evt end
end
function find(handle, type)
  for _, e in ipairs(EVENTS) do
    if e.handle == handle and e.type == type then return e end
  end
end
DEFAULT = net.ws_connect(URL)
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("find(DEFAULT, 'error') ~= nil"));
  CHECK(run.eval("find(DEFAULT, 'error').data").find("ETLS: ") == 0);
  run.exec("net.configure{ca_file = CERT}; TRUSTED = net.ws_connect(URL)");
  REQUIRE(run.run_until("find(TRUSTED, 'connected') ~= nil"));
  run.exec("net.ws_send(TRUSTED, 'over tls')");
  CHECK(run.run_until("find(TRUSTED, 'message') ~= nil and find(TRUSTED, 'message').data == 'over tls'"));
  run.exec("net.configure{ca_file = '', tls_verify = false}; INSECURE = net.ws_connect(URL)");
  CHECK(run.run_until("find(INSECURE, 'connected') ~= nil"));
}
#endif  // NSHOST_WITH_WS

#if NSHOST_WITH_WS
TEST_CASE("net ws: a server's clean close ends in a closed event after its last message") {
  Peer ws = start_peer({"ws"});
  REQUIRE(ws.port > 0);
  ScriptRun run("URL = 'ws://127.0.0.1:" + std::to_string(ws.port) + "/bye'\n" + R"lua(
W = net.ws_connect(URL)
SEEN = {}
function server.tick()
  for evt in net.events() do SEEN[#SEEN + 1] = evt.type .. (evt.type == "message" and ":" .. evt.data or "") end
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.status(W) == 'closed' and #SEEN == 3"));
  CHECK(run.eval("table.concat(SEEN, ',')") == "connected,message:bye,closed");
  CHECK(run.eval_all("net.ws_send(W, 'late')") == "nil, not an open connection, EBADF");
}
#endif
