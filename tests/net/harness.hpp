#pragma once
// Test harness for net.*: loopback peers from tests/net/peers.py (Python's
// http.server, python3-websockets, plain sockets) and a real ServerRole
// running a Lua script in this process, its libuv loop stepped by the test.
#include <enet/enet.h>
#include <lua.hpp>
#include <uv.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "runtime/enet_endpoint.hpp"
#include "runtime/server_role.hpp"
#include "tests/support/process.hpp"

namespace nshost::test {

inline std::string net_dir() { return std::string(NSHOST_SOURCE_DIR) + "/tests/net"; }

struct Peer {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};

// Starts `python3 tests/net/peers.py args...` and reads its "PORT n" line.
inline Peer start_peer(std::vector<std::string> args) {
  std::vector<std::string> argv{"/usr/bin/python3", net_dir() + "/peers.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  Peer peer;
  peer.process = std::make_unique<ChildProcess>(argv);
  if (auto line = peer.process->wait_stdout("PORT ", 10000)) peer.port = std::atoi(line->c_str() + 5);
  return peer;
}

// A scratch directory removed with the object.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/nshost-net-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string file = path + "/" + name;
    std::ofstream(file) << text;
    return file;
  }
};

// A throwaway self-signed certificate for CN=localhost / 127.0.0.1, made by
// the openssl CLI. `ok` is false if openssl failed.
struct TestCert {
  TempDir dir;
  std::string cert = dir.path + "/cert.pem";
  std::string key = dir.path + "/key.pem";
  bool ok = false;
  TestCert() {
    ChildProcess openssl({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                          "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
    ok = openssl.wait_exit(20000) == 0;
  }
};

// Lua run before the script under test: records every log.* line in LOG so
// the test can assert on what a verbatim seed example logged.
inline const char* kLogCapture = R"lua(
LOG = {}
do
  local real = log
  local function capture(level)
    return function(...)
      local parts = table.pack(...)
      for i = 1, parts.n do parts[i] = tostring(parts[i]) end
      LOG[#LOG + 1] = level .. ": " .. table.concat(parts, " ", 1, parts.n)
      real[level](...)
    end
  end
  log = { debug = capture("debug"), info = capture("info"), warn = capture("warn"), error = capture("error") }
end
function logged(text)
  for _, line in ipairs(LOG) do
    if line:find(text, 1, true) then return true end
  end
  return false
end
)lua";

class ScriptRun {
 public:
  // `source` is Lua for the server role; kLogCapture runs first.
  explicit ScriptRun(const std::string& source, uint32_t tick_rate_hz = 30) {
    uv_loop_init(&loop_);
    Options options;
    options.role = Role::server;
    options.port = 0;
    options.tick_rate_hz = tick_rate_hz;
    options.script = dir_.write("game.lua", std::string(kLogCapture) + "\n" + source);
    role_ = std::make_unique<ServerRole>(&loop_, options);
    started = role_->start(error);
  }
  ~ScriptRun() {
    role_.reset();
    // Let every close callback run (sockets, polls, timers, DNS requests).
    uint64_t deadline = uv_hrtime() + 3'000'000'000ull;
    while (uv_loop_alive(&loop_) && uv_hrtime() < deadline) uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }

  bool started = false;
  std::string error;

  lua_State* L() const { return role_->script()->state(); }

  // Steps the loop until the Lua expression is true; false at the deadline.
  bool run_until(const std::string& lua_expr, int timeout_ms = 10000) {
    uint64_t deadline = uv_hrtime() + static_cast<uint64_t>(timeout_ms) * 1'000'000ull;
    for (;;) {
      if (eval(lua_expr) == "true") return true;
      if (uv_hrtime() > deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
  }
  // Steps the loop for `ms` of wall time (the script keeps ticking).
  void run_for(int ms) {
    uint64_t deadline = uv_hrtime() + static_cast<uint64_t>(ms) * 1'000'000ull;
    while (uv_hrtime() < deadline) uv_run(&loop_, UV_RUN_ONCE);
  }
  // tostring(<lua_expr>) evaluated in the script's globals; "error: ..." if it raised.
  std::string eval(const std::string& lua_expr) {
    lua_State* S = L();
    std::string chunk = "return tostring(" + lua_expr + ")";
    if (luaL_loadstring(S, chunk.c_str()) != LUA_OK || lua_pcall(S, 0, 1, 0) != LUA_OK) {
      std::string message = std::string("error: ") + lua_tostring(S, -1);
      lua_pop(S, 1);
      return message;
    }
    std::string out = lua_tostring(S, -1);
    lua_pop(S, 1);
    return out;
  }
  // Runs Lua statements; returns "" or the error.
  std::string exec(const std::string& lua_code) {
    lua_State* S = L();
    if (luaL_loadstring(S, lua_code.c_str()) != LUA_OK || lua_pcall(S, 0, 0, 0) != LUA_OK) {
      std::string message = lua_tostring(S, -1);
      lua_pop(S, 1);
      return message;
    }
    return "";
  }
  uint64_t script_errors() const { return role_->script()->error_count(); }

 private:
  EnetLibrary enet_;
  TempDir dir_;
  uv_loop_t loop_;
  std::unique_ptr<ServerRole> role_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a file from tests/net/ (a seed example in Lua) under the harness.
inline std::string net_script(const std::string& name) { return read_file(net_dir() + "/" + name); }

}  // namespace nshost::test
