// Real nshost processes on loopback, both shaping every datagram with
// --netsim: what ENet's channels promise must hold on the bad link.
#include <doctest/doctest.h>
#include <signal.h>

#include "tests/support/process.hpp"

using namespace nshost::test;

TEST_CASE("netsim: at 25% loss, 25% dup, 100 ms latency, 50 ms jitter, reliable is exactly once in order, "
          "unreliable never out of order") {
  // Only the client shapes: it delays, drops and duplicates what it sends
  // and what it receives, so each direction of the link sees the rates once.
  // At 25% loss each way ENet's backoff can hold one reliable command for
  // many seconds (docs/reliability.md), so the link and handshake timeouts
  // are those a link this bad needs.
  const std::vector<std::string> patient = {"--max-message-rate=0", "--link-timeout=30000", "--handshake-timeout=30000"};
  Server server = start_server(test_script("netsim_link.lua"), patient, {"COUNT=3000"});
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("netsim_link.lua"), server.port,
                             {"--netsim=100,50,0.25,0.25,0.05,12", "--log-level=debug", "--link-timeout=30000"},
                             {"COUNT=3000"});
  auto reliable = server.process->wait_stdout("server reliable", 60000);
  REQUIRE_MESSAGE(reliable, (server.process->stderr_text() + client->stderr_text()));
  CHECK(*reliable == "server reliable got=3000 expected=3000 next=3001 dups=0 gaps=0");
  auto unreliable = server.process->wait_stdout("server unreliable");
  REQUIRE(unreliable);
  CHECK(unreliable->find("out_of_order=0") != std::string::npos);
  MESSAGE(*unreliable);
  // The echoes cross the bad link once more, behind the client's own sends:
  // a command lost 6 times in a row (0.44^6, once in 140) waits out ENet's
  // doubling backoff for about 30 s, and everything after it waits with it.
  auto echo = client->wait_stdout("client echo", 120000);
  REQUIRE_MESSAGE(echo, (server.process->stderr_text() + client->stderr_text()));
  CHECK(*echo == "client echo got=3000 expected=3000 next=3001 dups=0 gaps=0");
  CHECK(client->wait_exit(15000) == 0);
  CHECK(client->wait_stderr("network simulator on: latency 100 ms, jitter 50 ms, loss 0.25, dup 0.25"));
  auto stats = client->wait_stderr("transport:");
  REQUIRE(stats);
  MESSAGE(*stats);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(15000) == 0);
}
