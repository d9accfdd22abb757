// CMake's NSHOST_WITH_TCP/HTTP/WS decide which net.* functions exist.
#include <doctest/doctest.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

TEST_CASE("net: the functions of each protocol are registered exactly when its feature flag is on") {
  ScriptRun run("");
  REQUIRE(run.started);
  for (const char* fn : {"status", "poll_event", "events", "close", "configure"})
    CHECK(run.eval(std::string("type(net.") + fn + ")") == "function");
  auto registered = [&](std::initializer_list<const char*> names, bool on) {
    for (const char* fn : names) {
      CAPTURE(fn);
      CHECK(run.eval(std::string("type(net.") + fn + ")") == (on ? "function" : "nil"));
    }
  };
  registered({"tcp_connect", "tcp_send", "tcp_recv", "tcp_close", "tcp_listen", "tcp_accept", "tcp_stop", "tcp_port"},
             NSHOST_WITH_TCP);
  registered({"http_request", "http_request_body", "http_set_header", "http_set_headers", "http_send", "http_get",
              "http_head", "http_delete", "http_options", "http_post", "http_put", "http_patch", "http_response",
              "http_response_header"},
             NSHOST_WITH_HTTP);
  registered({"ws_connect", "ws_send", "ws_send_binary", "ws_recv", "ws_close"}, NSHOST_WITH_WS);
  CHECK(run.eval("type(json.encode)") == "function");
}
