#pragma once
// A fresh, real script context per test: a ServerRole (and optionally a
// ClientRole joined to it) on a private libuv loop that the test steps by
// hand. Scripts are written to a temporary folder.
#include <functional>
#include <memory>
#include <string>

#include "runtime/roles/client_role.hpp"
#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/roles/server_role.hpp"

namespace nshost::test {

class RoleFixture {
 public:
  RoleFixture();
  ~RoleFixture();

  // Writes `text` to <tmp>/<name> and returns the path.
  std::string write_file(const std::string& name, const std::string& text);
  // Starts a server on a free port running `script_text`; REQUIREs success.
  ServerRole& start_server(const std::string& script_text, Options options = {});
  // Starts a client of the fixture's server running `script_text`.
  ClientRole& start_client(const std::string& script_text, Options options = {});
  // Runs the loop until `done()` or `timeout_ms` passes; returns done().
  bool step_until(const std::function<bool()>& done, int timeout_ms = 5000);

  // Runs `code` as a chunk in L; returns "ok" plus the results joined with
  // ", " ("ok: 1, x"), or "error: <message>".
  static std::string eval(lua_State* L, const std::string& code);
  // Runs `code` inside a server handler (server.shutdown, replaced for the
  // call), where send/broadcast/kick/redirect are allowed; returns pcall's
  // results as eval does ("ok: true, 1" or "ok: false, <error>").
  static std::string in_handler(ServerRole& server, const std::string& code);
  // Runs `code` as a chunk in a fresh server's state (a fresh fixture each
  // call: the shipped modules' tests); returns what eval returns.
  static std::string in_fresh_server(const std::string& code, Options options = {});

  uv_loop_t* loop() { return &loop_; }
  const std::string& dir() const { return dir_; }

 private:
  EnetLibrary enet_;
  uv_loop_t loop_;
  std::string dir_;
  std::unique_ptr<ServerRole> server_;
  std::unique_ptr<ClientRole> client_;
};

}  // namespace nshost::test
