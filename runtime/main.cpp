// nshost: runs a Lua game script as an ENet game server or client.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <enet/enet.h>
#include <lua.hpp>

#include "runtime/bots.hpp"
#include "runtime/client_role.hpp"
#include "runtime/log.hpp"
#include "runtime/options.hpp"
#include "runtime/server_role.hpp"

using namespace nshost;

namespace {

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
    else if (options.bots > 0) role = std::make_unique<BotFleet>(&loop, options);
    else role = std::make_unique<ClientRole>(&loop, options);

    UvHandle<uv_signal_t> sigint, sigterm;
    auto on_signal = [](uv_signal_t* handle, int) {
      if (handle->data) static_cast<RoleRunner*>(handle->data)->begin_shutdown();
    };
    for (auto [handle, signum] : {std::pair{&sigint, SIGINT}, std::pair{&sigterm, SIGTERM}}) {
      handle->init([&](uv_signal_t* s) { return uv_signal_init(&loop, s); });
      handle->get()->data = role.get();
      uv_signal_start(handle->get(), on_signal, signum);
    }
    role->on_finished = [&] {
      sigint.close();
      sigterm.close();
      // The role has stopped and the process is on its way out with its exit
      // code; a late signal (say a SIGTERM racing a client's own exit after
      // server_left) must not turn that into death by signal.
      std::signal(SIGINT, SIG_IGN);
      std::signal(SIGTERM, SIG_IGN);
    };

    std::string error;
    if (!role->start(error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      exit_code = role->exit_code();
    } else {
      uv_run(&loop, UV_RUN_DEFAULT);
      exit_code = role->exit_code();
    }
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
    case ParsedArgs::Action::run:
      break;
  }
  set_log_level(parsed.options.log_level);
  return run(parsed.options);
}
