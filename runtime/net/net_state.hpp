#pragma once
// The state behind net.* for one script state: every TCP connection and
// listener, HTTP request and WebSocket connection the script opened, keyed by
// integer handle, plus the shared event queue the script polls each tick.
// Everything runs on the role's libuv loop and nothing here blocks it.
// Destroying a NetState closes every socket and cancels every transfer (the
// loop must run once more to free the libuv handles). Source of the surface:
// seed 001 ("Networking"), mapped onto Lua in bindings/net.cpp; see docs/net.md.
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/net/address_policy.hpp"
#include "runtime/net/net_memory.hpp"

// The class's members depend on these; CMake defines them for nshost_core and
// everything that links it.
#if !defined(NSHOST_WITH_TCP) || !defined(NSHOST_WITH_HTTP) || !defined(NSHOST_WITH_WS)
#error "NSHOST_WITH_TCP, NSHOST_WITH_HTTP and NSHOST_WITH_WS must be defined (link nshost_core)"
#endif

namespace nshost {

class CurlMulti;
struct TcpSocket;

struct NetEvent {
  enum class Type { connected, data, message, accepted, http_done, error, closed };
  Type type;
  int64_t handle = 0;
  std::string text;          // data / message / error
  int64_t accepted = 0;      // accepted: the new client handle
  uint64_t item_seq = 0;     // data / message / accepted: the inbox item it delivers
};
const char* net_event_name(NetEvent::Type type);

// Where a handle is in its life. docs/net.md names each as a string; the
// binding maps them. A finished handle is error, closed or done.
enum class HandleStatus { building, pending, connecting, connected, done, error, closed };

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased; repeats joined with ", "
  std::string error;                           // set instead when the request failed
};

// Result of a send: unknown/closed handle (nullopt in Lua terms: nil), ok, or
// an error string returned to the script.
struct SendResult {
  enum class Kind { unknown, ok, error } kind;
  std::string error;
};

class NetState {
 public:
  // Bounds (bytes unless noted); see docs/net.md "Limits".
  static constexpr size_t kMaxEvents = 10'000;              // queued events
  static constexpr size_t kMaxInboxBytes = 16u << 20;       // unread TCP data / WS messages per handle
  static constexpr size_t kMaxInboxItems = 10'000;          // unread chunks / messages / accepts per handle
  static constexpr size_t kMaxSendQueueBytes = 16u << 20;   // unsent bytes per TCP / WS connection
  static constexpr size_t kMaxHttpBodyBytes = 64u << 20;    // one HTTP response body
  static constexpr size_t kMaxWsMessageBytes = 16u << 20;   // one incoming WebSocket message
  static constexpr size_t kMaxFinishedHandles = 4'096;      // finished handles kept for status/response
  // Charged to the script's memory cap besides the buffers: the handle
  // records, libuv/libcurl state and TLS sessions behind them.
  static constexpr size_t kHandleBytes = 2u << 10;       // every handle, for its lifetime
  static constexpr size_t kCurlHandleBytes = 64u << 10;  // an HTTP/WS transfer, while it runs

  struct Config {
    bool tls_verify = true;        // verify peer certificate and host name (https, wss)
    std::string ca_file;           // extra trust: PEM bundle used instead of the system store
    uint32_t connect_timeout_ms = 10'000;  // DNS + TCP connect + TLS + WS upgrade
    uint32_t request_timeout_ms = 30'000;  // a whole HTTP request
  };

  // `role_finished` is asked once per loop iteration; when it turns true the
  // role has stopped and will run no more handlers, so every handle is
  // closed then (open sockets would otherwise keep the loop, and the
  // process, alive after the role finished). May be empty.
  // `policy`: where the script may connect (open for a local script).
  // `memory`: what every buffer held for the script is charged to (nullptr:
  // not counted).
  NetState(uv_loop_t* loop, std::function<bool()> role_finished, NetPolicy policy = {},
           std::shared_ptr<NetMemory> memory = nullptr);
  ~NetState();
  NetState(const NetState&) = delete;
  NetState& operator=(const NetState&) = delete;

  Config& config() { return config_; }
  const NetPolicy& policy() const { return policy_; }
  const std::shared_ptr<NetMemory>& memory() const { return memory_; }

  // Shared. status: nullopt for an unknown handle.
  std::optional<HandleStatus> status(int64_t handle) const;
  std::optional<NetEvent> poll_event();
  void close(int64_t handle);
  size_t queued_events() const { return events_.size(); }

  // Opening a handle returns 0 and sets `error` ("EACCES: ...", "ENOMEM: ...")
  // when it is refused before anything starts; later failures are events.

  // Each protocol's calls exist only when its CMake option is on.
#if NSHOST_WITH_TCP
  // TCP (tcp.cpp).
  int64_t tcp_connect(const std::string& host, int port, std::string& error);
  SendResult tcp_send(int64_t handle, std::string_view data);
  std::optional<std::string> tcp_recv(int64_t handle);
  // Returns 0 and sets `error` ("EADDRINUSE: address already in use") on failure.
  int64_t tcp_listen(const std::string& bind, int port, std::string& error);
  std::optional<int64_t> tcp_accept(int64_t handle);
  // Bound port of a listener or local port of a connection; 0 if unknown.
  int tcp_port(int64_t handle) const;
#endif

#if NSHOST_WITH_HTTP
  // HTTP (http.cpp). `method` is already upper-cased and checked to be a token.
  int64_t http_request(std::string method, std::string url, std::optional<std::string> body, std::string& error);
  void http_set_header(int64_t handle, std::string name, std::string value);
  void http_send(int64_t handle);
  // nullptr while building / pending or for an unknown handle.
  const HttpResponse* http_response(int64_t handle) const;
#endif

#if NSHOST_WITH_WS
  // WebSocket (ws.cpp).
  int64_t ws_connect(const std::string& url, std::string& error);
  SendResult ws_send(int64_t handle, std::string_view data, bool binary);
  std::optional<std::string> ws_recv(int64_t handle);
#endif

  // Internal: the handle objects (net_handles.hpp) reach back through these.
  struct Handle;
  struct TcpConn;
  struct TcpListener;
  struct HttpRequest;
  struct WsConn;
  void post(NetEvent event);
  void post_item(Handle& h, NetEvent::Type type, std::string data, int64_t accepted = 0);
  // Ends a connection-like handle: status error (with an error event) or closed.
  void fail(Handle& h, std::string message);
  // status: closed (posts a closed event) or done (posts http_done).
  void finish(Handle& h, HandleStatus status);
  uv_loop_t* loop() const { return loop_; }
  int64_t adopt(std::unique_ptr<Handle> h);
  Handle* find(int64_t handle) const;

 private:
  void evict_finished();
  void compact_events();
  void close_all();
#if NSHOST_WITH_TCP
  void close_lingering();
#endif
#if NSHOST_WITH_HTTP
  void on_http_done(void* easy, int result);
#endif

  uv_loop_t* loop_;
  std::function<bool()> role_finished_;
  uv_prepare_t* watch_ = nullptr;  // runs role_finished_ each iteration (unreferenced)
  Config config_;
  NetPolicy policy_;
  std::shared_ptr<NetMemory> memory_;
  int64_t next_handle_ = 1;
  uint64_t next_seq_ = 1;
  std::unordered_map<int64_t, std::unique_ptr<Handle>> handles_;
  std::deque<NetEvent> events_;
  std::deque<int64_t> finished_;
#if NSHOST_WITH_TCP
  std::string read_buffer_;  // every TCP read lands here first (libuv reads one stream at a time)
  // Sockets the script closed that still flush their queued writes.
  std::unordered_set<TcpSocket*> lingering_;
#endif
#if NSHOST_WITH_HTTP
  std::unique_ptr<CurlMulti> http_multi_;
#endif
};

}  // namespace nshost
