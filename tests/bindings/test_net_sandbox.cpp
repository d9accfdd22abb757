// net.* in the sandbox (--sandbox, as for fetched code): no net without
// --allow-net, only the listed host:port pairs with it, no listening socket,
// no loopback address reached through a listed name; and the bytes net and
// json hold for a script count against its --memory-limit. Real sockets on
// loopback: a listener opened by the test that counts who connected.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "runtime/net/address_policy.hpp"
#include "tests/net/harness.hpp"

using namespace nshost;
using namespace nshost::test;

// Under AddressSanitizer (kSanitizedBuild) RSS says little about what the
// host holds; the counted bytes are checked instead.

namespace {

// A TCP listener on 127.0.0.1 that never reads: it counts the connections
// the kernel completed for it.
struct CountingListener {
  int fd = -1;
  int port = 0;
  CountingListener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);  // accept never waits
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd, 128) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port = ntohs(addr.sin_port);
  }
  ~CountingListener() {
    for (int c : accepted) close(c);
    if (fd >= 0) close(fd);
  }
  // Accepts what is pending (never blocks); returns how many so far.
  size_t accept_pending() {
    for (int i = 0; i < 1000; ++i) {
      int c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break;
      accepted.push_back(c);
    }
    return accepted.size();
  }
  std::vector<int> accepted;
};

Options sandboxed(std::vector<std::string> allow = {}, uint64_t memory_limit_bytes = 256u << 20) {
  Options options;
  options.sandbox = true;
  options.allow_net = std::move(allow);
  options.memory_limit_bytes = memory_limit_bytes;
  return options;
}

// Resident set of this process, bytes.
size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

constexpr size_t kMiB = 1u << 20;

}  // namespace

TEST_CASE("net sandbox: without --allow-net every opening call returns nil and says why, the rest is harmless") {
  CountingListener target;
  REQUIRE(target.port > 0);
  std::string port = std::to_string(target.port);
  ScriptRun run("PORT = " + port + R"lua(
T, T_ERR, T_CODE = net.tcp_connect("127.0.0.1", PORT)
H, H_ERR, H_CODE = net.http_get("http://127.0.0.1:" .. PORT .. "/")
R, R_ERR, R_CODE = net.http_request("GET", "http://127.0.0.1:" .. PORT .. "/")
W, W_ERR, W_CODE = net.ws_connect("ws://127.0.0.1:" .. PORT .. "/")
L, L_ERR, L_CODE = net.tcp_listen(0, "0.0.0.0")
CA_OK, CA_ERR = pcall(net.configure, { ca_file = "/etc/passwd" })
)lua",
                sandboxed());
  REQUIRE_MESSAGE(run.started, run.error);
  for (const char* name : {"T", "H", "R", "W"}) {
    CAPTURE(name);
    CHECK(run.eval(name) == "nil");
    CHECK(run.eval(std::string(name) + "_ERR").find("net is not available to fetched scripts (sandbox;") == 0);
    CHECK(run.eval(std::string(name) + "_CODE") == "EACCES");
    CHECK(run.eval(std::string(name) + "_ERR").find("--allow-net") != std::string::npos);
  }
  CHECK(run.eval("L") == "nil");
  CHECK(run.eval("L_ERR").find("listening sockets are not available in the sandbox") == 0);
  CHECK(run.eval("L_CODE") == "EACCES");
  CHECK(run.eval("CA_OK") == "false");
  CHECK(run.eval("CA_ERR").find("ca_file reads a file") != std::string::npos);
  CHECK(run.eval("net.poll_event()") == "nil");
  CHECK(run.eval("net.status(1)") == "nil");
  run.run_for(200);
  CHECK(target.accept_pending() == 0);
}

#if NSHOST_WITH_TCP
TEST_CASE("net sandbox: --allow-net=127.0.0.1:PORT reaches exactly that port, not another loopback port, never listens") {
  CountingListener allowed, other;
  REQUIRE(allowed.port > 0);
  REQUIRE(other.port > 0);
  ScriptRun run("A, B = " + std::to_string(allowed.port) + ", " + std::to_string(other.port) + R"lua(
OK = net.tcp_connect("127.0.0.1", A)
NO, NO_ERR, NO_CODE = net.tcp_connect("127.0.0.1", B)
NAME, NAME_ERR = net.tcp_connect("localhost", A)
L, L_ERR, L_CODE = net.tcp_listen(47999, "0.0.0.0")
)lua",
                sandboxed({"127.0.0.1:" + std::to_string(allowed.port)}));
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.status(OK) == 'connected'"));
  CHECK(run.eval("NO") == "nil");
  CHECK(run.eval("NO_ERR") == "127.0.0.1:" + std::to_string(other.port) +
                                  " is not in the player's --allow-net list (sandbox)");
  CHECK(run.eval("NO_CODE") == "EACCES");
  // The list names an address; the name "localhost" is another entry.
  CHECK(run.eval("NAME") == "nil");
  CHECK(run.eval("L_ERR").find("listening sockets") == 0);
  CHECK(run.eval("L_CODE") == "EACCES");
  CHECK(allowed.accept_pending() == 1);
  CHECK(other.accept_pending() == 0);
}

TEST_CASE("net sandbox: a listed name that resolves to loopback is refused after the lookup, for TCP, HTTP and WebSocket") {
  CountingListener target;
  REQUIRE(target.port > 0);
  std::string port = std::to_string(target.port);
  ScriptRun run("PORT = " + port + R"lua(
ERRS = {}
T = net.tcp_connect("localhost", PORT)
H = net.http_get and net.http_get("http://localhost:" .. PORT .. "/")
W = net.ws_connect and net.ws_connect("ws://LocalHost:" .. PORT .. "/")
function server.tick()
  for evt in net.events() do
    if evt.type == "error" then ERRS[evt.handle] = evt.data end
  end
end
function done(h) return h == nil or ERRS[h] ~= nil end
)lua",
                sandboxed({"localhost:" + port}));
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("done(T) and done(H) and done(W)"));
  std::string expected = "EACCES: localhost:" + port + " resolved to ";
  CHECK(run.eval("ERRS[T]").find(expected) == 0);
  CHECK(run.eval("ERRS[T]").find("only if 127.0.0.1:" + port + " itself is in --allow-net") != std::string::npos);
#if NSHOST_WITH_HTTP
  CHECK(run.eval("ERRS[H]").find(expected) == 0);
#endif
#if NSHOST_WITH_WS
  CHECK(run.eval("ERRS[W]").find(expected) == 0);
#endif
  run.run_for(100);
  CHECK(target.accept_pending() == 0);
}
#endif

#if NSHOST_WITH_HTTP
TEST_CASE("net sandbox: HTTP to a listed loopback address works, a redirect is not followed") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  std::string base = "http://127.0.0.1:" + std::to_string(http.port);
  ScriptRun run("BASE = '" + base + R"lua('
D = net.http_get(BASE .. "/data")
R = net.http_get(BASE .. "/redirect?to=http://localhost:" .. BASE:match(":(%d+)$") .. "/data")
)lua",
                sandboxed({"127.0.0.1:" + std::to_string(http.port)}));
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.status(D) == 'done' and net.status(R) == 'done'"));
  CHECK(run.eval("json.decode(net.http_response(D).body).n") == "42");
  CHECK(run.eval("net.http_response(R).status") == "302");
  CHECK(run.eval("net.http_response_header(R, 'location')").find("http://localhost:") == 0);
}
#endif

#if NSHOST_WITH_TCP
TEST_CASE("net memory: 40 connections each queueing 16 MiB stay under a 64 MiB cap, the script keeps running") {
  CountingListener sink;  // accepts nothing, reads nothing: every byte stays queued
  REQUIRE(sink.port > 0);
  size_t limit = 64 * kMiB;
  size_t rss_before = rss_bytes();
  ScriptRun run("PORT = " + std::to_string(sink.port) + R"lua(
BIG = string.rep("x", 16 * 1024 * 1024)
CONNS, RESULTS, TICKS = {}, {}, 0
for i = 1, 40 do CONNS[i] = assert(net.tcp_connect("127.0.0.1", PORT)) end
function server.tick()
  TICKS = TICKS + 1
  for evt in net.events() do
    if evt.type == "connected" then
      local ok, err, code = net.tcp_send(evt.handle, BIG)
      RESULTS[#RESULTS + 1] = ok and "true" or code .. ": " .. err
    end
  end
end
function count(prefix)
  local n = 0
  for _, r in ipairs(RESULTS) do if r:sub(1, #prefix) == prefix then n = n + 1 end end
  return n
end
)lua",
                [&] {
                  Options o;
                  o.memory_limit_bytes = limit;
                  o.handler_timeout_ms = 0;  // 16 MiB strings may take a loaded machine over a second
                  return o;
                }());
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("#RESULTS == 40", 20000));
  size_t rss_after = rss_bytes();
  MESSAGE("queued: ", run.eval("count('true')"), " of 40 sends; refused: ", run.eval("count('ENOMEM')"),
          "; lua ", run.memory_used() / kMiB, " MiB + net ", run.memory_external() / kMiB,
          " MiB; process RSS +", (rss_after > rss_before ? rss_after - rss_before : 0) / kMiB, " MiB");
  CHECK(run.eval("count('true')") == "2");  // 16 MiB of Lua string + 2 x 16 MiB queued < 64 MiB
  CHECK(run.eval("count('ENOMEM: queueing this send (16777216 bytes) would pass')") == "38");
  CHECK(run.memory_used() + run.memory_external() <= limit);
  if (!kSanitizedBuild) CHECK(rss_after < rss_before + limit + 32 * kMiB);
  // The host keeps serving the script: it ticks and can still send a little.
  std::string ticks = run.eval("TICKS");
  REQUIRE(run.run_until("TICKS > " + ticks + " + 3"));
  CHECK(run.eval("net.tcp_send(CONNS[40], 'still here')") == "true");
}

TEST_CASE("net memory: received data past the cap closes that connection with ENOMEM instead of growing") {
  // 32 MiB sent to a script capped at 8 MiB, below the 16 MiB unread-bytes
  // bound of a connection, so the cap is what stops it.
  Peer flood = start_peer({"tcp-flood", std::to_string(32 * kMiB)});
  REQUIRE(flood.port > 0);
  size_t rss_before = rss_bytes();
  Options options;
  options.memory_limit_bytes = 8 * kMiB;
  ScriptRun run("PORT = " + std::to_string(flood.port) + R"lua(
C = net.tcp_connect("127.0.0.1", PORT)  -- never read: the data piles up until the cap
)lua",
                options);
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("net.status(C) == 'error'", 20000));
  CHECK(run.memory_used() + run.memory_external() <= 8 * kMiB);
  CHECK(rss_bytes() < rss_before + 8 * kMiB + 32 * kMiB);
  std::string err = run.eval(
      "(function() for e in net.events() do if e.type == 'error' then return e.data end end end)()");
  CHECK(err.find("ENOMEM: received data not yet read") == 0);
  CHECK(err.find("connection closed") != std::string::npos);
  run.exec("net.close(C)");
  CHECK(run.memory_external() == 0);
}
#endif

TEST_CASE("json memory: encoding 2e6 strings into a text over the cap returns ENOMEM, RSS stays near the cap") {
  size_t limit = 64 * kMiB;
  size_t rss_before = rss_bytes();
  Options options;
  options.memory_limit_bytes = limit;
  options.handler_timeout_ms = 0;  // a loaded machine may take over a second for the 2e6 entries
  ScriptRun run(R"lua(
local s = string.rep("y", 100)
T = {}
for i = 1, 2000000 do T[i] = s end
function server.tick()
  if DONE then return end
  DONE = true
  OUT, ERR, CODE = json.encode(T)
  SMALL = json.encode({ok = true, n = 2})
  T = nil
  collectgarbage()
  -- decode needs room for the parser's token buffer (the text's size) too:
  -- 24 MiB of text + 16 MiB held + 24 MiB more do not fit in 64 MiB.
  STEP = "text"
  BIG_TEXT = "[" .. string.rep('"abcdefg",', 24 * 1024 * 1024 // 10) .. "1]"
  collectgarbage()
  STEP = "fill"
  FILL = {}
  for i = 1, 1024 * 1024 do FILL[i] = i end  -- 16 MiB of array
  STEP = "decode"
  DEC, DEC_ERR, DEC_CODE = json.decode(BIG_TEXT)
  FILL, BIG_TEXT = nil, nil
end
)lua",
                options);
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("DONE == true"));
  size_t rss_after = rss_bytes();
  MESSAGE("lua ", run.memory_used() / kMiB, " MiB; process RSS +",
          (rss_after > rss_before ? rss_after - rss_before : 0) / kMiB, " MiB");
  CHECK(run.eval("OUT") == "nil");
  CHECK(run.eval("ERR") == "json.encode would pass the script's memory limit (--memory-limit)");
  CHECK(run.eval("CODE") == "ENOMEM");
  CHECK(run.eval("SMALL") == "{\"n\":2,\"ok\":true}");
  CHECK(run.eval("DEC") == "nil");
  CHECK(run.eval("STEP") == "decode");
  CHECK(run.eval("DEC_ERR").find("json.decode") == 0);
  CHECK(run.eval("DEC_CODE") == "ENOMEM");
  if (!kSanitizedBuild) CHECK(rss_after < rss_before + limit + 32 * kMiB);
  CHECK(run.memory_external() == 0);
  CHECK(run.script_errors() == 0);
}

TEST_CASE("net sandbox: which addresses count as loopback, private, link-local, multicast or unspecified") {
  auto restricted = [](const char* text) {
    sockaddr_storage ss{};
    if (inet_pton(AF_INET, text, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) ss.ss_family = AF_INET6;
    REQUIRE(ss.ss_family != 0);
    return is_restricted_address(reinterpret_cast<sockaddr*>(&ss));
  };
  for (const char* a : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "169.254.169.254", "0.0.0.0", "0.1.2.3", "100.64.0.1", "224.0.0.1", "239.255.255.250",
                        "255.255.255.255", "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
                        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:c0a8:101::1", "::127.0.0.1"}) {
    CAPTURE(a);
    CHECK(restricted(a));
  }
  for (const char* a : {"1.1.1.1", "93.184.216.34", "172.32.0.1", "172.15.255.255", "100.128.0.1", "192.169.0.1",
                        "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"}) {
    CAPTURE(a);
    CHECK_FALSE(restricted(a));
  }
  std::vector<std::string> entries;
  std::string error;
  CHECK(parse_allow_net("Example.COM:443,[::1]:80,127.0.0.1:8080", entries, error));
  CHECK(entries == std::vector<std::string>{"example.com:443", "[::1]:80", "127.0.0.1:8080"});
  NetPolicy policy(entries);
  CHECK_FALSE(policy.check_target("example.com.", 443));
  CHECK_FALSE(policy.check_target("[0:0::1]", 80));
  CHECK(policy.check_target("example.com", 80));
  CHECK(policy.check_target("localhost", 8080));
  auto closed = NetPolicy(std::vector<std::string>{}).check_target("example.com", 443);
  CHECK(closed->find("EACCES: net is not available") == 0);
  CHECK_FALSE(NetPolicy().check_target("anything", 1));
  CHECK_FALSE(NetPolicy().check_listen());
}
