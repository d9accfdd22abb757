// The cost of the bounded pattern matcher: runs each workload of
// bench/patterns.lua in a plain Lua 5.4 state (the standard string library)
// and in a real nshost server state (runtime/script/string_patterns.cpp), five
// runs each, interleaved, and prints the medians and their ratio.
//   build/nshost_patterns_bench [bench/patterns.lua]
#include <enet/enet.h>
#include <lua.hpp>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/roles/server_role.hpp"

using namespace nshost;

namespace {

constexpr int kRuns = 5;
constexpr double kMinRunMs = 50;

// Calls workloads[index][2]() `repeat` times; returns the ms taken and the
// last result as text.
double time_workload(lua_State* L, int index, int repeat, std::string& result) {
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < repeat; ++i) {
    lua_getglobal(L, "workloads");
    lua_rawgeti(L, -1, index);
    lua_rawgeti(L, -1, 2);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
      std::fprintf(stderr, "workload %d failed: %s\n", index, lua_tostring(L, -1));
      std::exit(1);
    }
    if (i + 1 == repeat) result = luaL_tolstring(L, -1, nullptr);
    lua_settop(L, 0);
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string script = argc > 1 ? argv[1] : "bench/patterns.lua";
  lua_State* standard = luaL_newstate();
  luaL_openlibs(standard);
  if (luaL_dofile(standard, script.c_str()) != LUA_OK) {
    std::fprintf(stderr, "%s\n", lua_tostring(standard, -1));
    return 1;
  }
  EnetLibrary enet;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int exit_code = 0;
  {
    Options options;
    options.role = Role::server;
    options.port = 0;
    options.script = script;
    ServerRole server(&loop, options);
    std::string error;
    if (!server.start(error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    lua_State* ours = server.script()->state();
    lua_getglobal(standard, "workloads");
    int count = static_cast<int>(lua_rawlen(standard, -1));
    lua_settop(standard, 0);
    std::printf("| workload | standard (ms) | bounded (ms) | ratio |\n|---|---|---|---|\n");
    for (int w = 1; w <= count && exit_code == 0; ++w) {
      std::string expected, got;
      int repeat = 1;
      while (time_workload(standard, w, repeat, expected) < kMinRunMs && repeat < (1 << 20)) repeat *= 2;
      std::vector<double> standard_ms, ours_ms;
      for (int run = 0; run < kRuns; ++run) {
        standard_ms.push_back(time_workload(standard, w, repeat, expected) / repeat);
        ours_ms.push_back(time_workload(ours, w, repeat, got) / repeat);
        if (got != expected) {
          std::fprintf(stderr, "workload %d: standard gave %s, bounded gave %s\n", w, expected.c_str(), got.c_str());
          exit_code = 1;
          break;
        }
      }
      if (exit_code != 0) break;
      lua_getglobal(standard, "workloads");
      lua_rawgeti(standard, -1, w);
      lua_rawgeti(standard, -1, 1);
      std::printf("| `%s` | %.3f | %.3f | %.2f |\n", lua_tostring(standard, -1), median(standard_ms), median(ours_ms),
                  median(ours_ms) / median(standard_ms));
      lua_settop(standard, 0);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks
  uv_loop_close(&loop);
  lua_close(standard);
  return exit_code;
}
