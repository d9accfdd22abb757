// Hostile scripts against real nshost processes: handler lookups that raise,
// loop or allocate (through an __index on _G or on the role table) and an
// xpcall message handler that loops, on a fetched client and on a server's
// local script; and what the count hook cannot stop - a looping finalizer,
// in a handler or at lua_close - which the watchdog's escalation ends
// (docs/reliability.md).
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/script/deadline_watch.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

// A process under a 16 MiB --memory-limit that allocates without end stays
// far below this; AddressSanitizer's shadow memory and quarantine add about
// 80 MiB of their own to the same process.
constexpr size_t kPeakRssCeiling = (kSanitizedBuild ? 192u : 96u) * 1024 * 1024;

constexpr const char* kStuckLine =
    "nshost: a Lua handler could not be stopped (finalizer, message handler or C call ran past --handler-timeout + "
    "1000 ms); exiting";

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/nshost-hostile-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// A server of the hostile bundle that sends `mode` to every client.
Server hostile_shard(const std::string& mode) {
  return start_server(test_script("shards/hostile/game.lua"), {}, {"MODE=" + mode});
}

// A client started from the server's URL alone: it runs the fetched bundle.
std::unique_ptr<ChildProcess> url_client(int port, const TempDir& cache, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{nshost_binary(), "--role=client", "--headless", "--cache-dir=" + cache.path};
  for (auto& a : extra) args.push_back(a);
  args.push_back("nshost://127.0.0.1:" + std::to_string(port));
  return std::make_unique<ChildProcess>(args);
}

// The peak resident set of a running process (VmHWM), in bytes; 0 if unknown.
size_t peak_rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

int64_t elapsed_ms(int64_t since_ns) { return (DeadlineWatch::monotonic_now_ns() - since_ns) / 1'000'000; }

}  // namespace

TEST_CASE("hostile scripts: a fetched client survives handler lookups that raise or loop and a looping xpcall message handler, and stops on SIGTERM") {
  for (auto [mode, message] : std::initializer_list<std::pair<const char*, const char*>>{
           {"g_index_error", "lookup boom"},
           {"g_index_loop", "handler timed out (ran over 200 ms; --handler-timeout)"},
           {"field_error", "field boom"},
           {"xpcall", "handler timed out (ran over 200 ms; --handler-timeout)"}}) {
    CAPTURE(mode);
    TempDir cache;
    Server server = hostile_shard(mode);
    REQUIRE(server.port > 0);
    auto client = url_client(server.port, cache, {"--handler-timeout=200"});
    REQUIRE_MESSAGE(client->wait_stdout(std::string("client arming ") + mode), client->stderr_text());
    auto alive = client->wait_stdout(std::string("alive after ") + mode, 5000);
    CHECK_MESSAGE(alive, client->stderr_text());
    auto error = client->wait_stderr(message);
    REQUIRE_MESSAGE(error, client->stderr_text());
    CHECK(error->find("error in client.") != std::string::npos);
    CHECK(client->stderr_text().find("unprotected Lua error") == std::string::npos);
    client->send_signal(SIGTERM);
    CHECK(client->wait_exit(3000) == 0);
    server.process->send_signal(SIGTERM);
    CHECK(server.process->wait_exit(3000) == 0);
  }
}

TEST_CASE("hostile scripts: a fetched client's __index that allocates stays under --memory-limit") {
  TempDir cache;
  Server server = hostile_shard("field_alloc");
  REQUIRE(server.port > 0);
  // A long timeout: the cap, not the clock, must end it (sanitizer builds are slow).
  auto client = url_client(server.port, cache, {"--memory-limit=16777216", "--handler-timeout=10000"});
  REQUIRE_MESSAGE(client->wait_stdout("client arming field_alloc"), client->stderr_text());
  CHECK_MESSAGE(client->wait_stderr("not enough memory", 10000), client->stderr_text());
  CHECK(client->wait_stdout("alive after field_alloc", 5000));
  // The whole process, Lua state (16 MiB) and runtime included: the 400 MB the
  // script asked for were never allocated.
  size_t peak = peak_rss_bytes(client->pid());
  MESSAGE("client peak RSS " << peak / 1024 << " KiB");
  CHECK(peak > 0);
  CHECK(peak < kPeakRssCeiling);
  client->send_signal(SIGTERM);
  CHECK(client->wait_exit(3000) == 0);
}

TEST_CASE("hostile scripts: a fetched script gets no __gc (sandbox) and goes on") {
  TempDir cache;
  Server server = hostile_shard("gc");
  REQUIRE(server.port > 0);
  auto client = url_client(server.port, cache);
  CHECK_MESSAGE(client->wait_stderr("__gc metamethods are not available to fetched scripts (sandbox)"),
                client->stderr_text());
  CHECK(client->wait_stdout("alive after gc", 5000));
  client->send_signal(SIGTERM);
  CHECK(client->wait_exit(3000) == 0);
}

TEST_CASE("hostile scripts: a server's local script survives handler lookups that raise or loop") {
  for (auto [mode, message] : std::initializer_list<std::pair<const char*, const char*>>{
           {"g_index_error", "lookup boom"},
           {"g_index_loop", "handler timed out (ran over 200 ms; --handler-timeout)"},
           {"field_error", "field boom"}}) {
    CAPTURE(mode);
    Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=200"}, {std::string("MODE=") + mode});
    REQUIRE(server.port > 0);
    CHECK(server.process->wait_stdout(std::string("alive after ") + mode, 5000));
    auto error = server.process->wait_stderr(message);
    REQUIRE_MESSAGE(error, server.process->stderr_text());
    CHECK(error->find("error in server.") != std::string::npos);
    server.process->send_signal(SIGTERM);
    CHECK(server.process->wait_exit(3000) == 0);
  }
}

TEST_CASE("hostile scripts: a server's __index that allocates stays under --memory-limit") {
  Server server = start_server(test_script("hostile_handlers.lua"), {"--memory-limit=16777216", "--handler-timeout=10000"},
                               {"MODE=field_alloc"});
  REQUIRE(server.port > 0);
  CHECK_MESSAGE(server.process->wait_stderr("not enough memory", 10000), server.process->stderr_text());
  CHECK(server.process->wait_stdout("alive after field_alloc", 5000));
  size_t peak = peak_rss_bytes(server.process->pid());
  MESSAGE("server peak RSS " << peak / 1024 << " KiB");
  CHECK(peak > 0);
  CHECK(peak < kPeakRssCeiling);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
}

TEST_CASE("hostile scripts: a finalizer that loops inside a handler ends the process with the escalation's line and code") {
  Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=200"}, {"MODE=gc_in_handler"});
  REQUIRE(server.port > 0);
  REQUIRE(server.process->wait_stdout("server arming gc_in_handler"));
  int64_t armed_ns = DeadlineWatch::monotonic_now_ns();
  CHECK(server.process->wait_exit(5000) == DeadlineWatch::kStuckExitCode);
  int64_t took_ms = elapsed_ms(armed_ns);
  MESSAGE("ended " << took_ms << " ms after the handler started");
  CHECK(took_ms < 2500);
  CHECK(server.process->stderr_text().find(kStuckLine) != std::string::npos);
}

TEST_CASE("hostile scripts: a finalizer that loops at lua_close ends the process, after sys.quit and after SIGTERM") {
  {
    Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=200"}, {"MODE=quit_gc_at_close"});
    REQUIRE(server.port > 0);
    REQUIRE(server.process->wait_stdout("server arming quit_gc_at_close"));
    int64_t quit_ns = DeadlineWatch::monotonic_now_ns();
    CHECK(server.process->wait_exit(5000) == DeadlineWatch::kStuckExitCode);
    CHECK(elapsed_ms(quit_ns) < 2500);
    CHECK(server.process->stderr_text().find("nshost[server] info: stopped") != std::string::npos);
    CHECK(server.process->stderr_text().find(kStuckLine) != std::string::npos);
  }
  {
    Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=200"}, {"MODE=gc_at_close"});
    REQUIRE(server.port > 0);
    REQUIRE(server.process->wait_stdout("alive after gc_at_close"));
    int64_t signal_ns = DeadlineWatch::monotonic_now_ns();
    server.process->send_signal(SIGTERM);
    auto code = server.process->wait_exit(5000);
    int64_t took_ms = elapsed_ms(signal_ns);
    MESSAGE("ended " << took_ms << " ms after SIGTERM");
    CHECK(took_ms < 2000);
    // The escalation (at 1.2 s) comes before SIGTERM's own bound (2 s).
    CHECK(code == DeadlineWatch::kStuckExitCode);
    CHECK(server.process->stderr_text().find(kStuckLine) != std::string::npos);
  }
}

TEST_CASE("hostile scripts: SIGTERM ends the process within 2 s while the loop thread is stuck in Lua") {
  SUBCASE("a finalizer that loops in a handler, long before the escalation") {
    Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=5000"}, {"MODE=gc_in_handler"});
    REQUIRE(server.port > 0);
    REQUIRE(server.process->wait_stdout("server arming gc_in_handler"));
    int64_t signal_ns = DeadlineWatch::monotonic_now_ns();
    server.process->send_signal(SIGTERM);
    auto code = server.process->wait_exit(5000);
    int64_t took_ms = elapsed_ms(signal_ns);
    MESSAGE("ended " << took_ms << " ms after SIGTERM");
    CHECK(took_ms < 2000);
    CHECK(code == 128 + SIGTERM);
    CHECK(server.process->stderr_text().find("nshost: still running 1800 ms after SIGTERM (stuck in Lua or C); exiting") !=
          std::string::npos);
  }
  SUBCASE("a plain loop with no handler timeout") {
    Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=0"}, {"MODE=stuck"});
    REQUIRE(server.port > 0);
    REQUIRE(server.process->wait_stdout("server arming stuck"));
    int64_t signal_ns = DeadlineWatch::monotonic_now_ns();
    server.process->send_signal(SIGTERM);
    CHECK(server.process->wait_exit(5000) == 128 + SIGTERM);
    CHECK(elapsed_ms(signal_ns) < 2000);
  }
  SUBCASE("a plain loop the handler timeout stops: then a clean shutdown, exit 0") {
    Server server = start_server(test_script("hostile_handlers.lua"), {"--handler-timeout=500"}, {"MODE=stuck"});
    REQUIRE(server.port > 0);
    REQUIRE(server.process->wait_stdout("server arming stuck"));
    int64_t signal_ns = DeadlineWatch::monotonic_now_ns();
    server.process->send_signal(SIGTERM);
    CHECK(server.process->wait_exit(5000) == 0);
    CHECK(elapsed_ms(signal_ns) < 2000);
    CHECK(server.process->stderr_text().find("handler timed out (ran over 500 ms") != std::string::npos);
  }
}
