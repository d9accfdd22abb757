// SIGTERM soak: a server stopped while a crowd of bots is joining exits 0,
// every time, within 2 s.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>

#include "runtime/script/deadline_watch.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

TEST_CASE("SIGTERM soak: 30 servers stopped while 20 bots join each exit 0 within 2 s") {
  constexpr int kRuns = 30;
  int64_t worst_ms = 0;
  for (int run = 0; run < kRuns; ++run) {
    CAPTURE(run);
    Server server = start_server(test_script("bots.lua"));
    REQUIRE(server.port > 0);
    auto bots = start_client(test_script("bots.lua"), server.port, {"--bots=20", "--bots-ramp=200"});
    // Some bots are in, the rest still joining (ramped over 200 ms).
    REQUIRE_MESSAGE(server.process->wait_stderr("joined in slot", 5000), server.process->stderr_text());
    int64_t signal_ns = DeadlineWatch::monotonic_now_ns();
    server.process->send_signal(SIGTERM);
    auto code = server.process->wait_exit(2000);
    int64_t took_ms = (DeadlineWatch::monotonic_now_ns() - signal_ns) / 1'000'000;
    worst_ms = std::max(worst_ms, took_ms);
    REQUIRE_MESSAGE(code == 0, "took " << took_ms << " ms\n" << server.process->stderr_text());
    CHECK(took_ms < 2000);
    MESSAGE("run " << run << ": " << took_ms << " ms");
  }
  MESSAGE("slowest stop " << worst_ms << " ms over " << kRuns << " runs");
}
