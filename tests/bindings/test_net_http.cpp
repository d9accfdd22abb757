// net.http_*: every method, headers, multi-MB bodies both ways, 100
// concurrent requests and HTTPS with a throwaway certificate, against
// Python's http.server on loopback.
#include <doctest/doctest.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

#if NSHOST_WITH_HTTP
namespace {

[[maybe_unused]] std::string base_url(const Peer& peer, const char* scheme = "http") {
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(peer.port);
}

}  // namespace

TEST_CASE("net http: every convenience method, headers map and case-insensitive lookup") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  ScriptRun run("BASE = '" + base_url(http) + "'\n" + R"lua(
R = {
  get = net.http_get(BASE .. "/echo"),
  head = net.http_head(BASE .. "/echo"),
  delete = net.http_delete(BASE .. "/echo"),
  options = net.http_options(BASE .. "/echo"),
  post = net.http_post(BASE .. "/echo", "p-body"),
  put = net.http_put(BASE .. "/echo", "u-body"),
  patch = net.http_patch(BASE .. "/echo", "a-body"),
  missing = net.http_get(BASE .. "/nope"),
}
CUSTOM = net.http_request_body("Put", BASE .. "/echo", "custom")
net.http_set_headers(CUSTOM, { ["X-One"] = "1", ["X-Two"] = 2 })
net.http_set_header(CUSTOM, "x-one", "replaced")
assert(net.status(CUSTOM) == "building")
assert(net.http_response(CUSTOM) == nil)
net.http_send(CUSTOM)
net.http_set_header(CUSTOM, "X-Late", "ignored once sent")
DONE = {}
function server.tick()
  for evt in net.events() do
    if evt.type == "http_done" then DONE[#DONE + 1] = evt.handle end
  end
end
function all_done()
  for _, h in pairs(R) do if net.status(h) ~= "done" then return false end end
  return net.status(CUSTOM) == "done"
end
function echo(h) return json.decode(net.http_response(h).body) end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("all_done()"));
  CHECK(run.run_until("#DONE == 9"));
  for (const char* m : {"get", "delete", "options", "post", "put", "patch"}) {
    CAPTURE(m);
    CHECK(run.eval("net.http_response(R." + std::string(m) + ").status") == "200");
    CHECK(run.eval("echo(R." + std::string(m) + ").method:lower()") == m);
  }
  CHECK(run.eval("echo(R.post).body") == "p-body");
  CHECK(run.eval("echo(R.put).body") == "u-body");
  CHECK(run.eval("echo(R.patch).body") == "a-body");
  CHECK(run.eval("net.http_response(R.head).body") == "");
  CHECK(run.eval("net.http_response(R.head).headers['content-length'] ~= nil") == "true");
  CHECK(run.eval("net.http_response(R.missing).status") == "404");
  CHECK(run.eval("net.http_response_header(R.get, 'X-PEER')") == "python-http.server");
  CHECK(run.eval("net.http_response_header(R.get, 'x-peer')") == "python-http.server");
  CHECK(run.eval("net.http_response(R.get).headers['x-peer']") == "python-http.server");
  CHECK(run.eval("net.http_response_header(R.get, 'x-absent')") == "nil");
  CHECK(run.eval("echo(CUSTOM).method") == "PUT");
  CHECK(run.eval("echo(CUSTOM).headers['x-one']") == "replaced");
  CHECK(run.eval("echo(CUSTOM).headers['x-two']") == "2");
  CHECK(run.eval("echo(CUSTOM).headers['x-late']") == "nil");
  // Misuse raises; it is not an I/O failure.
  CHECK(run.eval("select(2, pcall(net.http_request, 'BAD METHOD', BASE))").find("not a token") != std::string::npos);
  CHECK(run.eval("select(2, pcall(net.http_set_header, R.get, 'X', 'a\\r\\nb'))").find("CR, LF") !=
        std::string::npos);
}

TEST_CASE("net http: 8 MiB bodies arrive whole in both directions") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  ScriptRun run("BASE = '" + base_url(http) + "'\n" + R"lua(
N = 8 * 1024 * 1024
local pattern = {}
for i = 0, 255 do pattern[#pattern + 1] = string.char(i) end
pattern = table.concat(pattern)
EXPECTED = pattern:rep(N // 256)
DOWN = net.http_get(BASE .. "/big?bytes=" .. N)
UP = net.http_post(BASE .. "/echo", EXPECTED)
function done() return net.status(DOWN) == "done" and net.status(UP) == "done" end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("done()", 20000));
  CHECK(run.eval("#net.http_response(DOWN).body") == std::to_string(8 * 1024 * 1024));
  CHECK(run.eval("net.http_response(DOWN).body == EXPECTED") == "true");
  CHECK(run.eval("json.decode(net.http_response(UP).body).length") == std::to_string(8 * 1024 * 1024));
}

TEST_CASE("net http: 100 concurrent requests all complete") {
  Peer http = start_peer({"http"});
  REQUIRE(http.port > 0);
  ScriptRun run("BASE = '" + base_url(http) + "'\n" + R"lua(
REQS = {}
for i = 1, 100 do REQS[i] = net.http_post(BASE .. "/echo", "request " .. i) end
DONE = 0
function server.tick()
  for evt in net.events() do
    if evt.type == "http_done" then DONE = DONE + 1 end
  end
end
function all_ok()
  for i, h in ipairs(REQS) do
    local resp = net.http_response(h)
    if not resp or resp.status ~= 200 or json.decode(resp.body).body ~= "request " .. i then return false end
  end
  return true
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("DONE == 100", 20000));
  CHECK(run.eval("all_ok()") == "true");
}

TEST_CASE("net http: HTTPS verifies certificates by default, ca_file trusts ours, tls_verify=false opts out") {
  TestCert cert;
  REQUIRE(cert.ok);
  Peer https = start_peer({"http", "--tls", cert.cert, cert.key});
  REQUIRE(https.port > 0);
  ScriptRun run("URL = '" + base_url(https, "https") + "/data'\nCERT = '" + cert.cert + "'\n" + R"lua(
DEFAULT = net.http_get(URL)
ERRORS = {}
function server.tick()
  for evt in net.events() do
    if evt.type == "error" then ERRORS[evt.handle] = evt.data end
  end
end
)lua");
  REQUIRE_MESSAGE(run.started, run.error);
  REQUIRE(run.run_until("ERRORS[DEFAULT] ~= nil"));
  CHECK(run.eval("ERRORS[DEFAULT]").find("ETLS: ") == 0);
  CHECK(run.eval("net.http_response(DEFAULT).error == ERRORS[DEFAULT]") == "true");
  CHECK(run.eval("net.status(DEFAULT)") == "error");
  run.exec("net.configure{ca_file = CERT}; TRUSTED = net.http_get(URL)");
  REQUIRE(run.run_until("net.status(TRUSTED) ~= 'pending'"));
  CHECK(run.eval("net.http_response(TRUSTED).status") == "200");
  run.exec("net.configure{ca_file = '', tls_verify = false}; INSECURE = net.http_get(URL)");
  REQUIRE(run.run_until("net.status(INSECURE) ~= 'pending'"));
  CHECK(run.eval("json.decode(net.http_response(INSECURE).body).name") == "nshost");
  run.exec("net.configure{tls_verify = true}; AGAIN = net.http_get(URL)");
  REQUIRE(run.run_until("net.status(AGAIN) ~= 'pending'"));
  CHECK(run.eval("net.status(AGAIN)") == "error");
}
#endif  // NSHOST_WITH_HTTP
