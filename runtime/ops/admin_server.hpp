#pragma once
// The admin HTTP server (--admin=HOST:PORT): h2o in its libuv mode, on the
// role's own loop, so a scrape runs between two ticks and the tick never
// waits for one. GET /metrics (Prometheus text), GET /api/status (JSON) and
// the dashboard's files for any other GET path. HTTP/1.1 only (no upgrade to
// HTTP/2), no TLS: it is meant for loopback or a private network behind a
// bearer token (--admin-token).
//
// Budgets: at most kMaxConnections open connections (one more is accepted and
// closed at once, counted); a connection that has buffered more than
// kMaxRequestBytes of a request it has not finished is closed (counted);
// h2o closes a connection that has not completed a request within
// kIdleTimeoutMs (also idle keep-alive ones).
//
// Ownership: the AdminServer owns the listener, every connection and the h2o
// context. Destroying it stops accepting, ends every connection and frees
// everything once the loop has run the close callbacks (the roles' shutdown
// runs the loop after it); no callback reaches the Source after that.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <uv.h>

#include "runtime/ops/metrics.hpp"

namespace nshost::ops {

// What the endpoints render; called on the loop thread, once per request.
class AdminSource {
 public:
  virtual ~AdminSource() = default;
  virtual std::string metrics_text() = 0;
  virtual std::string status_json() = 0;
};

class AdminServer {
 public:
  static constexpr size_t kMaxConnections = 32;
  static constexpr size_t kMaxRequestBytes = 16 * 1024;
  static constexpr uint64_t kIdleTimeoutMs = 5000;

  struct Config {
    std::string host;  // numeric IPv4 or IPv6 (without brackets)
    uint16_t port = 0;  // 0: any free port
    std::string token;  // "": no token needed
  };

  // Binds and listens; null with `error` (one line, no "nshost: " prefix)
  // when the address cannot be bound.
  static std::unique_ptr<AdminServer> start(uv_loop_t* loop, Config config, AdminSource& source,
                                            std::string& error);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const;
  // "http://HOST:PORT" with the bound port ("http://[::1]:PORT" for IPv6).
  std::string url() const;
  const AdminCounters& counters() const;

  struct State;  // h2o's context and the connections; outlives this object until closed

 private:
  explicit AdminServer(State* state) : state_(state) {}
  State* state_;
};

// True when `given` is exactly "Bearer <token>"; the comparison of the
// token's bytes takes the same time wherever they differ.
bool bearer_matches(std::string_view given, std::string_view token);

}  // namespace nshost::ops
