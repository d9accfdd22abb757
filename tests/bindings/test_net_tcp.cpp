// net.tcp_*: pulling with tcp_accept / tcp_recv, multi-MB streams both ways,
// a close that still delivers what was sent, and listen errors; against
// Python socket peers on loopback.
#include <doctest/doctest.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

#if NSHOST_WITH_TCP
TEST_CASE("net tcp: tcp_accept and tcp_recv pull what the events would have delivered, once") {
  ScriptRun run(R"lua(
L = net.tcp_listen(0, "127.0.0.1")
PORT = net.tcp_port(L)
CLIENTS = {}
function pull()
  while true do
    local c = net.tcp_accept(L)
    if not c then break end
    CLIENTS[#CLIENTS + 1] = c
  end
  return #CLIENTS
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  std::string port = run.eval("PORT");
  ChildProcess a({"/usr/bin/python3", net_dir() + "/peers.py", "tcp-client", port});
  ChildProcess b({"/usr/bin/python3", net_dir() + "/peers.py", "tcp-client", port});
  REQUIRE(run.run_until("pull() == 2"));
  CHECK(run.eval("net.tcp_accept(L)") == "nil");
  run.exec("for _, c in ipairs(CLIENTS) do net.tcp_send(c, 'welcome\\n') end");
  CHECK(a.wait_stdout("GOT welcome"));
  CHECK(b.wait_stdout("GOT welcome"));
  REQUIRE(run.run_until("(function() GOT = (GOT or '') .. (net.tcp_recv(CLIENTS[1]) or ''); "
                        "return GOT == 'hi from python\\n' end)()"));
  // Both accepts and the chunk were pulled, so their events are skipped.
  run.exec("KINDS = {}; for evt in net.events() do KINDS[#KINDS + 1] = evt.type .. evt.handle end");
  CHECK(run.eval("table.concat(KINDS, ',')").find("accepted") == std::string::npos);
  CHECK(run.eval("table.concat(KINDS, ',')").find("data" + run.eval("CLIENTS[1]")) == std::string::npos);
}

TEST_CASE("net tcp: 4 MiB round-trips through an echo peer whole and in order") {
  Peer echo = start_peer({"tcp-echo"});
  REQUIRE(echo.port > 0);
  ScriptRun run("PORT = " + std::to_string(echo.port) + R"lua(
local parts = {}
for i = 1, 4 * 1024 do parts[i] = string.format("%08d", i) .. string.rep("x", 1015) .. "\n" end
PAYLOAD = table.concat(parts)
C = net.tcp_connect("127.0.0.1", PORT)
GOT = {}
function server.tick()
  for evt in net.events() do
    if evt.type == "connected" then assert(net.tcp_send(C, PAYLOAD) == true) end
    if evt.type == "data" then GOT[#GOT + 1] = evt.data end
  end
end
function received() return #table.concat(GOT) end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("received() >= #PAYLOAD", 15000));
  CHECK(run.eval("table.concat(GOT) == PAYLOAD") == "true");
}

TEST_CASE("net tcp: tcp_close right after a 2 MiB send still delivers every byte, then EOF") {
  ScriptRun run(R"lua(
L = net.tcp_listen(0, "127.0.0.1")
PAYLOAD = string.rep("abcdefgh", 2 * 1024 * 1024 // 8)
function server.tick()
  for evt in net.events() do
    if evt.type == "accepted" then
      assert(net.tcp_send(evt.data, PAYLOAD) == true)
      net.tcp_close(evt.data)
      CLOSED = evt.data
    end
  end
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  ChildProcess sink({"/usr/bin/python3", net_dir() + "/peers.py", "tcp-sink", run.eval("net.tcp_port(L)")});
  REQUIRE(run.run_until("CLOSED ~= nil"));
  CHECK(run.eval("net.status(CLOSED)") == "nil");
  std::optional<std::string> line;
  for (int i = 0; i < 100 && !line; ++i) {
    run.run_for(50);  // the loop flushes the lingering socket meanwhile
    line = sink.wait_stdout("BYTES ", 1);
  }
  REQUIRE(line);
  CHECK(line->find("BYTES 2097152 ") == 0);
}

TEST_CASE("net tcp: listen failures return nil, a message and a code, bad ports are refused") {
  ScriptRun run(R"lua(
A = net.tcp_listen(0, "127.0.0.1")
B, B_ERR, B_CODE = net.tcp_listen(net.tcp_port(A), "127.0.0.1")
C, C_ERR, C_CODE = net.tcp_listen(80, "not-an-address")
D, D_ERR, D_CODE = net.tcp_listen(70000)
BAD = net.tcp_connect("127.0.0.1", 0)
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  CHECK(run.eval("B") == "nil");
  CHECK(run.eval("B_ERR").find("address already in use") == 0);
  CHECK(run.eval("B_CODE") == "EADDRINUSE");
  CHECK(run.eval("C_ERR").find("bind address 'not-an-address'") == 0);
  CHECK(run.eval("C_CODE") == "EINVAL");
  CHECK(run.eval("D_ERR").find("port") == 0);
  CHECK(run.eval("D_CODE") == "EINVAL");
  CHECK(run.eval("net.status(BAD)") == "error");
  CHECK(run.eval("(function() for e in net.events() do if e.handle == BAD then return e.data end end end)()")
            .find("EINVAL: port 0") == 0);
  CHECK(run.eval("select(2, pcall(net.tcp_connect, '127.0.0.1', 'x'))").find("number expected") != std::string::npos);
}
#endif
