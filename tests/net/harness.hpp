#pragma once
// Test harness for net.*: loopback peers from tests/net/peers.py (Python's
// http.server, python3-websockets, plain sockets) and a real ServerRole
// running a Lua script in this process, its libuv loop stepped by the test.
#include <lua.hpp>
#include <uv.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "runtime/roles/server_role.hpp"
#include "tests/support/process.hpp"
#include "tests/support/roles.hpp"

namespace nshost::test {

inline std::string net_dir() { return nshost::test::source_dir() + "/tests/net"; }

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

// A real ServerRole (tests/support/roles.hpp) running `source` after
// kLogCapture, its loop stepped by the test.
class ScriptRun {
 public:
  explicit ScriptRun(const std::string& source, uint32_t tick_rate_hz = 30) : ScriptRun(source, [&] {
    Options options;
    options.tick_rate_hz = tick_rate_hz;
    return options;
  }()) {}
  // With the role's options: --sandbox, --allow-net, --memory-limit, ...
  ScriptRun(const std::string& source, const Options& options) {
    role_ = &fixture_.start_server(std::string(kLogCapture) + "\n" + source, options);  // REQUIREs a start
    started = true;
  }

  bool started = false;
  std::string error;

  lua_State* L() const { return role_->script()->state(); }

  // Steps the loop until the Lua expression is true; false at the deadline.
  bool run_until(const std::string& lua_expr, int timeout_ms = 10000) {
    return fixture_.step_until([&] { return eval(lua_expr) == "true"; }, timeout_ms);
  }
  // Steps the loop for `ms` of wall time (the script keeps ticking).
  void run_for(int ms) {
    uint64_t deadline = uv_hrtime() + static_cast<uint64_t>(ms) * 1'000'000ull;
    fixture_.step_until([&] { return uv_hrtime() >= deadline; }, ms + 1000);
  }
  // tostring(<lua_expr>) evaluated in the script's globals; "error: ..." if it raised.
  std::string eval(const std::string& lua_expr) {
    std::string out = RoleFixture::eval(L(), "return tostring(" + lua_expr + ")");
    return out.rfind("ok: ", 0) == 0 ? out.substr(4) : out;
  }
  // Every value of a Lua expression, each through tostring, joined by ", ".
  std::string eval_all(const std::string& lua_expr) {
    std::string out = RoleFixture::eval(
        L(), "return (function(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end "
             "return table.concat(t, ', ') end)(" + lua_expr + ")");
    return out.rfind("ok: ", 0) == 0 ? out.substr(4) : out;
  }
  // Runs Lua statements; returns "" or the error.
  std::string exec(const std::string& lua_code) {
    std::string out = RoleFixture::eval(L(), lua_code);
    return out == "ok" ? "" : out;
  }
  uint64_t script_errors() const { return role_->script()->error_count(); }
  // The state's Lua bytes and the bytes net/json hold for it outside Lua.
  size_t memory_used() const { return role_->script()->memory_used(); }
  size_t memory_external() const { return role_->script()->memory_external(); }

 private:
  RoleFixture fixture_;
  ServerRole* role_ = nullptr;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a file from tests/net/ (a seed example in Lua) under the harness.
inline std::string net_script(const std::string& name) { return read_file(net_dir() + "/" + name); }

}  // namespace nshost::test
