#pragma once
// A real redis-server for cluster tests (Debian `redis-server`): on a free
// loopback port, no persistence, stopped (SIGTERM, then SIGKILL) when the
// object goes. stop() and start() again keep the port, so a test can take
// Redis away from running nshost servers and bring it back.
#include <memory>
#include <string>

#include "tests/support/process.hpp"

namespace nshost::test {

class RedisServer {
 public:
  // Whether a redis-server binary is on PATH (CI installs it).
  static bool available();

  RedisServer() = default;
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server and waits (up to `timeout_ms`) until it accepts
  // connections; the first call picks a free port, later calls reuse it.
  // False with `error` when it did not come up.
  bool start(std::string& error, int timeout_ms = 10000);
  // SIGTERM and reap (SIGKILL after `timeout_ms`); a no-op when not running.
  void stop(int timeout_ms = 5000);
  bool running() const { return process_ != nullptr; }

  int port() const { return port_; }
  // "redis://127.0.0.1:PORT" (the form --cluster takes).
  std::string url() const;
  // Runs `redis-cli -p PORT <args...>` and returns its stdout with the
  // trailing newline removed ("" when it failed to run).
  std::string cli(const std::vector<std::string>& args) const;

 private:
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

}  // namespace nshost::test
