#pragma once
// --role=host, a listen server: the server role and one local client of the
// same script in one process and one loop, two Lua states as if two
// processes. The local client joins over a LocalLink (no socket, no copy);
// remote clients join the server over ENet as usual. The local client gets
// a slot, server.connect, rooms and state sync like any client.
//
// Lifetime: the local client quitting (sys.quit, a disconnect) leaves the
// server serving; the host has finished once both have. begin_shutdown
// (SIGINT/SIGTERM) runs the server's shutdown, which tells every client, the
// local one included (it sees "server_left" and stops); once the server has
// finished the local client is stopped too, joined or not. A second call
// ends both at once. The exit code is the server's.
#include <string>

#include "runtime/config/options.hpp"
#include "runtime/roles/client_role.hpp"
#include "runtime/roles/local_link.hpp"
#include "runtime/roles/role_runner.hpp"
#include "runtime/roles/server_role.hpp"

namespace nshost {

class HostRole final : public RoleRunner {
 public:
  // options.role is Role::host; both roles get the same options.
  HostRole(uv_loop_t* loop, const Options& options);
  ~HostRole() override;

  bool start(std::string& error) override;
  void begin_shutdown() override;
  bool finished() const override { return server_done_ && client_done_; }
  int exit_code() const override { return start_failure_code_ ? start_failure_code_ : server_.exit_code(); }

  ServerRole& server() { return server_; }
  ClientRole& client() { return client_; }
  const LocalLink& link() const { return link_; }

 private:
  void on_part_finished();

  // Declared first: destroyed after both roles, which hold its stand-in peers.
  LocalLink link_;
  ServerRole server_;
  ClientRole client_;
  bool server_done_ = false;
  bool client_done_ = false;
  bool reported_ = false;
  int start_failure_code_ = 0;  // the local client's, when it could not start
};

}  // namespace nshost
