#include "runtime/roles/host_role.hpp"

#include <algorithm>

#include "runtime/core/log.hpp"

namespace nshost {

HostRole::HostRole(uv_loop_t* loop, const Options& options)
    : link_(loop, options.max_message_bytes), server_(loop, options), client_(loop, options, "client") {}

HostRole::~HostRole() {
  link_.detach(LocalLink::Side::server);
  link_.detach(LocalLink::Side::client);
}

bool HostRole::start(std::string& error) {
  if (int rc = link_.start(); rc != 0) {
    error = std::string("nshost: libuv: ") + uv_strerror(rc);
    return false;
  }
  server_.attach_local(link_);
  server_.on_finished = [this] {
    server_done_ = true;
    link_.detach(LocalLink::Side::server);  // its endpoint is gone
    // A joined local client was told by the shutdown and is on its way out;
    // one that is not joined (after a failed redirect, say) hears nothing.
    if (!client_done_) client_.begin_shutdown();
    on_part_finished();
  };
  if (!server_.start(error)) {
    server_done_ = client_done_ = true;
    return false;
  }
  client_.use_local_link(link_);
  client_.on_finished = [this] {
    client_done_ = true;
    link_.detach(LocalLink::Side::client);
    if (!server_done_) log_write(LogLevel::info, "host", "the local client stopped; still serving remote clients");
    on_part_finished();
  };
  if (!client_.start(error)) {
    start_failure_code_ = std::max(1, client_.exit_code());
    server_done_ = client_done_ = true;
    return false;
  }
  log_write(LogLevel::info, "host", "listen server: the local client joins in-process");
  return true;
}

void HostRole::begin_shutdown() {
  if (finished()) return;
  bool again = server_.stopping();
  // The server's shutdown tells every client, the local one included.
  if (!server_done_) server_.begin_shutdown();
  if (again) {
    // A second request: the local client does not wait for its goodbye either.
    if (!client_done_) client_.begin_shutdown();
    if (!client_done_) client_.begin_shutdown();
  }
}

void HostRole::on_part_finished() {
  if (!finished() || reported_) return;
  reported_ = true;
  if (on_finished) on_finished();
}

}  // namespace nshost
