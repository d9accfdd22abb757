// net.* failure paths against real misbehaving peers: refused, DNS failure,
// reset mid-stream, never answering; each ends in an `error` event with a
// readable message while the game loop keeps ticking. Plus stale handles and
// the receive bound.
#include <doctest/doctest.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

namespace {

// A port nothing listens on: bind one, note it, close it.
[[maybe_unused]] int closed_port() {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t tcp;
  uv_tcp_init(&loop, &tcp);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&tcp, reinterpret_cast<sockaddr*>(&addr), 0);
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&tcp, reinterpret_cast<sockaddr*>(&bound), &len);
  int port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return port;
}

// Lua for the failure scenarios: ERR[name] = the error event's text, and the
// largest gap between ticks (s) while they played out.
[[maybe_unused]] const char* kFailureScript = R"lua(
net.configure{connect_timeout_ms = 1500, request_timeout_ms = 1500}
H = {
  tcp_refused = net.tcp_connect("127.0.0.1", REFUSED),
  http_refused = net.http_get("http://127.0.0.1:" .. REFUSED .. "/"),
  ws_refused = net.ws_connect("ws://127.0.0.1:" .. REFUSED .. "/"),
  tcp_dns = net.tcp_connect("no-such-host.invalid", 80),
  http_dns = net.http_get("http://no-such-host.invalid/"),
  ws_dns = net.ws_connect("ws://no-such-host.invalid/"),
  tcp_reset = net.tcp_connect("127.0.0.1", TCP_RESET),
  http_reset = net.http_get("http://127.0.0.1:" .. HTTP .. "/reset"),
  ws_reset = net.ws_connect("ws://127.0.0.1:" .. WS_RESET .. "/"),
  http_silent = net.http_get("http://127.0.0.1:" .. HTTP .. "/slow"),
  ws_silent = net.ws_connect("ws://127.0.0.1:" .. SILENT .. "/"),
  ws_bad_url = net.ws_connect("http://127.0.0.1/"),
}
NAME = {}
for name, h in pairs(H) do NAME[h] = name end
ERR, DATA = {}, {}
TICKS, MAX_GAP, LAST = 0, 0, nil
function server.tick(n, dt)
  local now = sys.time()
  if LAST then MAX_GAP = math.max(MAX_GAP, now - LAST) end
  LAST = now
  TICKS = TICKS + 1
  for evt in net.events() do
    local name = NAME[evt.handle]
    if evt.type == "error" then ERR[name] = evt.data end
    if evt.type == "data" then DATA[name] = (DATA[name] or "") .. evt.data end
  end
end
function all_failed()
  for name in pairs(H) do if not ERR[name] then return false end end
  return true
end
)lua";

}  // namespace

#if NSHOST_WITH_TCP && NSHOST_WITH_HTTP && NSHOST_WITH_WS
TEST_CASE("net failures: refused, DNS failure, reset mid-stream and silence each end in an error and ticks go on") {
  Peer http = start_peer({"http"});
  Peer tcp_reset = start_peer({"tcp-reset"});
  Peer ws_reset = start_peer({"ws-reset"});
  Peer silent = start_peer({"silent"});
  REQUIRE(http.port > 0);
  REQUIRE(tcp_reset.port > 0);
  REQUIRE(ws_reset.port > 0);
  REQUIRE(silent.port > 0);
  std::string globals = "REFUSED = " + std::to_string(closed_port()) + "\nHTTP = " + std::to_string(http.port) +
                        "\nTCP_RESET = " + std::to_string(tcp_reset.port) + "\nWS_RESET = " +
                        std::to_string(ws_reset.port) + "\nSILENT = " + std::to_string(silent.port) + "\n";
  ScriptRun run(globals + kFailureScript, 30);
  REQUIRE_MESSAGE(run.started, run.error);
  bool done = run.run_until("all_failed()", 15000);
  for (const char* name : {"tcp_refused", "http_refused", "ws_refused", "tcp_dns", "http_dns", "ws_dns", "tcp_reset",
                           "http_reset", "ws_reset", "http_silent", "ws_silent", "ws_bad_url"})
    MESSAGE((std::string(name) + ": " + run.eval(std::string("ERR.") + name)));
  REQUIRE(done);
  CHECK(run.eval("ERR.tcp_refused").find("ECONNREFUSED: ") == 0);
  CHECK(run.eval("ERR.http_refused").find("ECONNREFUSED: ") == 0);
  CHECK(run.eval("ERR.ws_refused").find("ECONNREFUSED: ") == 0);
  // A resolver that answers says EAI_*; one that never answers hits the
  // connect timeout, which covers DNS too.
  for (const char* name : {"tcp_dns", "http_dns", "ws_dns"}) {
    std::string err = run.eval(std::string("ERR.") + name);
    CHECK_MESSAGE((err.find("EAI_") == 0 || err.find("ETIMEDOUT: ") == 0), err);
    CHECK(err.find("no-such-host.invalid") != std::string::npos);
  }
  CHECK(run.eval("ERR.tcp_reset").find("ECONNRESET: ") == 0);
  CHECK(run.eval("DATA.tcp_reset") == "partial");  // what came before the reset is kept
  CHECK(run.eval("ERR.http_reset").find("ECONNRESET: ") == 0);
  CHECK(run.eval("ERR.ws_reset").find("ECONNRESET: ") == 0);
  CHECK(run.eval("ERR.http_silent").find("ETIMEDOUT: ") == 0);
  CHECK(run.eval("ERR.ws_silent").find("ETIMEDOUT: ") == 0);
  CHECK(run.eval("ERR.ws_bad_url").find("EINVAL: ") == 0);
  for (const char* name : {"tcp_refused", "http_dns", "ws_silent"})
    CHECK(run.eval(std::string("net.status(H.") + name + ")") == "error");
  CHECK(run.eval("net.http_response(H.http_silent).error").find("ETIMEDOUT") == 0);
  // The loop kept its 30 Hz tick: the longest gap stays far below the 1.5 s
  // timeouts the failures took (generous for a loaded machine).
  double max_gap = std::stod(run.eval("MAX_GAP"));
  MESSAGE("ticks=" << run.eval("TICKS") << " max gap=" << max_gap << " s");
  CHECK(max_gap < 0.5);
  CHECK(std::stoi(run.eval("TICKS")) >= 30);
  CHECK(run.script_errors() == 0);
}
#endif

#if NSHOST_WITH_TCP && NSHOST_WITH_HTTP && NSHOST_WITH_WS
TEST_CASE("net failures: stale and unknown handles are harmless in every function") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  ScriptRun run("URL = 'http://127.0.0.1:" + std::to_string(http.port) + "/data'\n" + R"lua(
LISTENER = net.tcp_listen(0, "127.0.0.1")
REQ = net.http_get(URL)
function probe(h)
  local out = {}
  local function add(...)
    local values = table.pack(...)
    if values.n == 0 then out[#out + 1] = "count 0" return end
    for i = 1, values.n do values[i] = tostring(values[i]) end
    out[#out + 1] = table.concat(values, "|")
  end
  add(net.status(h)); add(net.tcp_send(h, "x")); add(net.tcp_recv(h)); add(net.tcp_accept(h))
  add(net.tcp_port(h)); add(net.http_response(h)); add(net.http_response_header(h, "x"))
  add(net.ws_send(h, "x")); add(net.ws_send_binary(h, "x")); add(net.ws_recv(h))
  net.http_set_header(h, "X", "y"); net.http_set_headers(h, { X = "y" }); net.http_send(h)
  net.tcp_close(h); net.tcp_stop(h); net.ws_close(h); net.close(h)
  return table.concat(out, ",")
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  // The sends fail as luv's do; everything else answers a single nil.
  const std::string ebadf = "nil|not an open connection|EBADF";
  const std::string all_nil = "nil," + ebadf + ",nil,nil,nil,nil,nil," + ebadf + "," + ebadf + ",nil";
  CHECK(run.eval("probe(9999)") == all_nil);
  CHECK(run.eval("probe(0)") == all_nil);
  CHECK(run.eval("probe(-1)") == all_nil);
  REQUIRE(run.run_until("net.status(REQ) == 'done'"));
  run.exec("net.close(REQ); net.tcp_stop(LISTENER)");
  CHECK(run.eval("probe(REQ)") == all_nil);
  CHECK(run.eval("probe(LISTENER)") == all_nil);
  // A handle of one protocol used with another's functions is harmless too.
  run.exec("OTHER = net.http_get(URL)");
  CHECK(run.eval_all("net.tcp_send(OTHER, 'x')") == "nil, not an open connection, EBADF");
  CHECK(run.eval("net.ws_recv(OTHER)") == "nil");
  CHECK(run.eval("net.tcp_accept(OTHER)") == "nil");
  CHECK(run.script_errors() == 0);
}
#endif

#if NSHOST_WITH_TCP
TEST_CASE("net failures: a connection whose unread data passes the receive bound gets an error saying so") {
  Peer flood = start_peer({"tcp-flood", std::to_string(24 * 1024 * 1024)});
  REQUIRE(flood.port > 0);
  ScriptRun run("PORT = " + std::to_string(flood.port) + R"lua(
C = net.tcp_connect("127.0.0.1", PORT)
-- No tick handler: the script never reads, so the data stays queued.
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.status(C) == 'error'", 15000));
  // Everything received before the bound is still readable, then the error.
  run.exec(R"lua(
BYTES = 0
while true do local chunk = net.tcp_recv(C); if not chunk then break end; BYTES = BYTES + #chunk end
for evt in net.events() do if evt.type == "error" then ERROR = evt.data end end
)lua");
  CHECK(run.eval("ERROR").find("ENOBUFS: receive queue full") == 0);
  CHECK(std::stoll(run.eval("BYTES")) > 15 * 1024 * 1024);
  CHECK(std::stoll(run.eval("BYTES")) <= 16 * 1024 * 1024);
}
#endif

#if NSHOST_WITH_WS
TEST_CASE("net failures: a full event queue closes the connection that hit it, with an error saying so") {
  Peer ws = start_peer({"ws"});
  REQUIRE(ws.port > 0);
  ScriptRun run("URL = 'ws://127.0.0.1:" + std::to_string(ws.port) + "/'\n" + R"lua(
A, B = net.ws_connect(URL), net.ws_connect(URL)
SENT = false
-- Polls nothing: 2 x 6000 echoed messages pile up past the 10,000-event bound.
function send_all()
  for i = 1, 6000 do
    assert(net.ws_send(A, "a" .. i) == true)
    assert(net.ws_send(B, "b" .. i) == true)
  end
  SENT = true
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.status(A) == 'connected' and net.status(B) == 'connected'"));
  run.exec("while net.poll_event() do end; send_all()");
  REQUIRE(run.run_until("net.status(A) == 'error' or net.status(B) == 'error'", 15000));
  run.exec(R"lua(
COUNT, ERR = 0, nil
for evt in net.events() do
  if evt.type == "message" then COUNT = COUNT + 1 end
  if evt.type == "error" then ERR = evt.data end
end
)lua");
  CHECK(run.eval("ERR").find("ENOBUFS: event queue full (10000 events") == 0);
  CHECK(std::stoi(run.eval("COUNT")) == 10000);
}
#endif
