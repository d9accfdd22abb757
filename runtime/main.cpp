// nshost: runs a Lua game script as an ENet game server, client, or both (a
// listen server, --role=host).
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <enet/enet.h>
#include <lua.hpp>

#include "runtime/check/checker.hpp"
#include "runtime/roles/bots.hpp"
#include "runtime/roles/client_role.hpp"
#include "runtime/roles/host_role.hpp"
#include "runtime/core/log.hpp"
#include "runtime/config/options.hpp"
#include "runtime/core/terminal.hpp"
#include "runtime/roles/server_role.hpp"

using namespace nshost;

namespace {

// SIGINT and SIGTERM: blocked in every thread (main blocks them before any
// thread starts) and taken by one thread with sigwait, so a stop request is
// seen even while the loop thread is stuck in Lua or in a C call. The thread
// wakes the loop (uv_async) for the clean shutdown; if the process is still
// alive kForcedExitMs after the first signal it writes one line and _exits.
// Leaked on purpose: the thread runs until the process ends.
struct StopSignals {
  std::mutex mutex;
  uv_async_t* wake = nullptr;  // set while a role runs and has not finished
  int finished_exit_code = -1;  // the role's exit code once it finished, else -1
  std::atomic<int> pending{0};  // signals the loop has not acted on yet
};
StopSignals* const g_stop = new StopSignals;
constexpr int64_t kForcedExitMs = 1800;  // under the 2 s promised, with room for the exit itself

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

int64_t steady_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void forced_exit(int signum, int exit_code, bool role_finished) {
  char line[160];
  // A role that finished is past its shutdown: only the teardown is slow.
  const char* where = role_finished ? "the role finished, its teardown did not" : "stuck in Lua or C";
  int n = std::snprintf(line, sizeof line, "nshost: still running %lld ms after %s (%s); exiting\n",
                        static_cast<long long>(kForcedExitMs), signum == SIGINT ? "SIGINT" : "SIGTERM", where);
  if (n > 0 && write(STDERR_FILENO, line, std::min<size_t>(n, sizeof line - 1)) < 0) {
    // Nothing more to do: the process ends either way.
  }
  // _exit skips atexit: a client playing in the terminal must not leave it raw.
  restore_terminal_mode();
  _exit(exit_code);
}

void wait_for_stop_signals() {
  sigset_t set = stop_signal_set();
  int64_t force_at_ns = 0;
  int first_signal = 0;
  for (;;) {
    int signum = 0;
    if (force_at_ns == 0) {
      if (sigwait(&set, &signum) != 0) continue;
    } else {
      int64_t left_ns = force_at_ns - steady_now_ns();
      if (left_ns <= 0) {
        int code;
        {
          std::lock_guard lock(g_stop->mutex);
          code = g_stop->finished_exit_code;
        }
        // A role that finished keeps its exit code; one still running ends
        // as the signal would have ended it.
        forced_exit(first_signal, code >= 0 ? code : 128 + first_signal, code >= 0);
      }
      timespec timeout{static_cast<time_t>(left_ns / 1'000'000'000), static_cast<long>(left_ns % 1'000'000'000)};
      signum = sigtimedwait(&set, nullptr, &timeout);
      if (signum < 0) continue;  // timed out or interrupted: check the time again
    }
    if (force_at_ns == 0) {
      force_at_ns = steady_now_ns() + kForcedExitMs * 1'000'000;
      first_signal = signum;
    }
    std::lock_guard lock(g_stop->mutex);
    // Once the role has finished a signal changes nothing: the process is on
    // its way out with the role's exit code.
    if (!g_stop->wake) continue;
    g_stop->pending.fetch_add(1);
    uv_async_send(g_stop->wake);
  }
}

int run(const Options& options) {
  EnetLibrary enet;
  if (!enet.ok()) {
    std::fprintf(stderr, "nshost: ENet failed to initialize\n");
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int exit_code = 0;
  {
    std::unique_ptr<RoleRunner> role;
    if (options.role == Role::server) role = std::make_unique<ServerRole>(&loop, options);
    else if (options.role == Role::host) role = std::make_unique<HostRole>(&loop, options);
    else if (options.bots > 0) role = std::make_unique<BotFleet>(&loop, options);
    else role = std::make_unique<ClientRole>(&loop, options);

    UvHandle<uv_async_t> wake;
    auto on_wake = [](uv_async_t* handle) {
      auto* runner = static_cast<RoleRunner*>(handle->data);
      // Two signals coalesced into one wake-up still mean "stop, then now".
      for (int n = g_stop->pending.exchange(0); runner && n > 0 && !runner->finished(); --n) runner->begin_shutdown();
    };
    wake.init([&](uv_async_t* a) { return uv_async_init(&loop, a, on_wake); });
    if (wake) wake.get()->data = role.get();
    auto stop_listening = [&](int finished_exit_code) {
      std::lock_guard lock(g_stop->mutex);
      g_stop->wake = nullptr;
      g_stop->finished_exit_code = finished_exit_code;
    };
    {
      std::lock_guard lock(g_stop->mutex);
      g_stop->wake = wake.get();
    }
    role->on_finished = [&] {
      // The role has stopped and the process is on its way out with its exit
      // code; a late signal (say a SIGTERM racing a client's own exit after
      // server_left) must not change it.
      stop_listening(role->exit_code());
      wake.close();
    };

    std::string error;
    if (!role->start(error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      exit_code = role->exit_code();
    } else {
      uv_run(&loop, UV_RUN_DEFAULT);
      exit_code = role->exit_code();
    }
    stop_listening(exit_code);
  }
  // Lets the close callbacks of every destroyed handle run.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // Headless clients print what they see; a reader on a pipe wants each line now.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv, argv + argc);
  ParsedArgs parsed = parse_args(args, std::getenv("NSHOST_ROLE"));
  switch (parsed.action) {
    case ParsedArgs::Action::help:
      std::fputs(usage_text().c_str(), stdout);
      return 0;
    case ParsedArgs::Action::version:
      std::printf("nshost %s (%s, libuv %s, ENet %d.%d.%d, wire protocol %d)\n", NSHOST_VERSION, LUA_RELEASE,
                  uv_version_string(), ENET_VERSION_MAJOR, ENET_VERSION_MINOR, ENET_VERSION_PATCH,
                  wire::kProtocolVersion);
      return 0;
    case ParsedArgs::Action::error:
      std::fprintf(stderr, "nshost: %s\n", parsed.error.c_str());
      return 2;
    case ParsedArgs::Action::check:
      set_log_level(LogLevel::error);  // a script's own log lines are not findings
      return run_check(parsed.check_files, stdout);
    case ParsedArgs::Action::run:
      break;
  }
  set_log_level(parsed.options.log_level);
  set_log_format(parsed.options.log_format);
  // Before any thread starts, so that every thread inherits the mask.
  sigset_t stop_set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  std::thread(wait_for_stop_signals).detach();
  return run(parsed.options);
}
