// The start-up check of the transport seam, through the real binary: with
// libenet's socket calls made to bypass the socket tap (the test-only
// NSHOST_TEST_BYPASS_SOCKET_TAP, docs/reliability.md), every role refuses to
// start with exactly one line saying so, and starts normally without it.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <vector>

#include "runtime/transport/enet_endpoint.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// Runs nshost with `args` and the bypass on; returns its exit code (-1 if it
// did not exit) and its stderr.
int run_bypassed(std::vector<std::string> args, std::string& err) {
  args.insert(args.begin(), nshost_binary());
  ChildProcess child(args, {"NSHOST_TEST_BYPASS_SOCKET_TAP=1"});
  auto code = child.wait_exit(10000);
  err = child.stderr_text();
  return code ? *code : -1;
}

}  // namespace

TEST_CASE("tap check: with the socket tap bypassed, server, client and bots refuse to start with one line") {
  const std::string script = test_script("lifecycle.lua");
  const std::vector<std::vector<std::string>> runs = {
      {"--role=server", "--port=0", script},
      {"--role=client", "--headless", "--connect=nshost://127.0.0.1:9", script},
      {"--role=client", "--headless", "--connect=nshost://127.0.0.1:9", "--bots=3", script},
  };
  for (const auto& args : runs) {
    CAPTURE(args[0]);
    CAPTURE(args.size());
    std::string err;
    int code = run_bypassed(args, err);
    CHECK_MESSAGE(code != 0, err);
    CHECK_MESSAGE(code != -1, err);
    std::vector<std::string> lines = lines_of(err);
    REQUIRE_MESSAGE(lines.size() == 1, err);
    CHECK(lines[0].find(kTapBypassedError) != std::string::npos);
  }
}

TEST_CASE("tap check: without the bypass the same server starts and listens") {
  Server server = start_server(test_script("lifecycle.lua"));
  CHECK(server.port > 0);
  CHECK(server.process->stderr_text().find("socket tap") == std::string::npos);
}
