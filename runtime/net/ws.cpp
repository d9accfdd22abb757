// net.ws_*: libcurl opens the connection (DNS, TCP, TLS, the address
// policy), then the HTTP/1.1 upgrade is written here and wslay frames the
// messages over curl_easy_send / curl_easy_recv. Compiled only with
// NSHOST_WITH_WS.
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include <algorithm>
#include <cstring>

#include <curl/curl.h>

#include "runtime/net/curl_common.hpp"
#include "runtime/net/curl_multi.hpp"
#include "runtime/net/net_handles.hpp"
#include "runtime/net/net_state.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost {

using net_detail::lower;
using net_detail::mib;
using net_detail::over_memory;
using net_detail::pop_item;
using net_detail::uv_message;

namespace {

constexpr size_t kMaxUpgradeResponseBytes = 16 * 1024;

std::string base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

// RFC 6455 section 4.2.2: base64(SHA-1(key + GUID)).
std::string accept_key(const std::string& key) {
  std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return base64(digest, sizeof digest);
}

struct WsPoll {
  uv_poll_t poll;
};

}  // namespace

struct NetState::WsConn : Handle {
  enum class Phase { connecting, upgrading, open };
  explicit WsConn(NetState& n) : Handle(n, Kind::ws, HandleStatus::connecting) {}
  ~WsConn() override {
    if (ctx && phase == Phase::open && !in_io) {
      // Best effort: tell the peer we are going (RFC 6455 1000 normal closure).
      wslay_event_queue_close(ctx, 1000, nullptr, 0);
      wslay_event_send(ctx);
    }
    shutdown();
  }
  void shutdown() override {
    timer.close();
    if (poll) {
      uv_poll_stop(&poll->poll);
      poll->poll.data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&poll->poll), [](uv_handle_t* h) { delete reinterpret_cast<WsPoll*>(h); });
      poll = nullptr;
    }
    if (ctx) wslay_event_context_free(ctx);
    ctx = nullptr;
    held.shrink(queued_charged);
    queued_charged = 0;
    if (easy) {
      multi->remove(easy);
      curl_easy_cleanup(easy);
      easy = nullptr;
      held.shrink(kCurlHandleBytes);
    }
  }
  // Gives back the charge of queued messages wslay has sent and freed.
  void settle_queue() {
    size_t queued = ctx ? wslay_event_get_queued_msg_length(ctx) : 0;
    if (queued < queued_charged) {
      held.shrink(queued_charged - queued);
      queued_charged = queued;
    }
  }
  void overflow(std::string message) override {
    if (in_io) {
      if (pending_error.empty()) pending_error = std::move(message);
    } else {
      net.fail(*this, std::move(message));
    }
  }

  void on_connected(CURLcode rc) {
    if (rc != CURLE_OK) {
      if (!gate.refused.empty()) return net.fail(*this, gate.refused + " (" + url + ")");
      net.fail(*this, curl_message(rc, errbuf) + " (" + url + ")");
      return;
    }
    curl_socket_t fd = CURL_SOCKET_BAD;
    curl_easy_getinfo(easy, CURLINFO_ACTIVESOCKET, &fd);
    poll = new WsPoll{};
    if (int prc = uv_poll_init_socket(net.loop(), &poll->poll, fd); prc != 0) {
      delete poll;
      poll = nullptr;
      net.fail(*this, uv_message(prc));
      return;
    }
    poll->poll.data = this;
    unsigned char nonce[16];
    RAND_bytes(nonce, sizeof nonce);
    std::string key = base64(nonce, sizeof nonce);
    expected_accept = accept_key(key);
    out = "GET " + path + " HTTP/1.1\r\nHost: " + host_header +
          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
          "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: nshost/" NSHOST_VERSION "\r\n\r\n";
    phase = Phase::upgrading;
    watch(UV_READABLE | UV_WRITABLE);
  }

  void watch(int events) {
    uv_poll_start(&poll->poll, events, [](uv_poll_t* h, int status, int ready) {
      auto* self = static_cast<WsConn*>(h->data);
      if (!self) return;
      // libuv reports a socket error (POLLERR, e.g. a reset) as UV_EBADF:
      // read anyway so the message names the real cause.
      if (status < 0) ready = UV_READABLE;
      if (self->phase == Phase::upgrading) self->upgrade_io(ready);
      else self->frame_io(ready);
      if (status < 0 && !self->finished)
        self->net.fail(*self, "ECONNRESET: socket error (" + self->url + ")");
    });
  }

  void upgrade_io(int ready) {
    while (!out.empty()) {
      size_t n = 0;
      CURLcode rc = curl_easy_send(easy, out.data(), out.size(), &n);
      if (rc == CURLE_AGAIN) break;
      if (rc != CURLE_OK) return net.fail(*this, curl_message(rc, nullptr) + " (" + url + ")");
      out.erase(0, n);
    }
    if (ready & UV_READABLE) {
      char buf[4096];
      for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(easy, buf, sizeof buf, &n);
        if (rc == CURLE_AGAIN) break;
        if (rc != CURLE_OK) return net.fail(*this, curl_message(rc, nullptr) + " (" + url + ")");
        if (n == 0)
          return net.fail(*this, "ECONNRESET: the server closed the connection during the WebSocket upgrade (" +
                                     url + ")");
        in.append(buf, n);
        if (in.size() > kMaxUpgradeResponseBytes)
          return net.fail(*this, "EPROTO: WebSocket upgrade response over 16 KiB (" + url + ")");
      }
    }
    auto end = in.find("\r\n\r\n");
    if (end == std::string::npos) {
      watch(out.empty() ? UV_READABLE : UV_READABLE | UV_WRITABLE);
      return;
    }
    std::string head = in.substr(0, end);
    in.erase(0, end + 4);
    std::string status_line = head.substr(0, head.find("\r\n"));
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0 || status_line.compare(9, 3, "101") != 0)
      return net.fail(*this, "EPROTO: the server answered '" + status_line +
                                 "' instead of 101 Switching Protocols (" + url + ")");
    std::string accept;
    size_t pos = 0;
    while ((pos = head.find("\r\n", pos)) != std::string::npos) {
      pos += 2;
      size_t eol = head.find("\r\n", pos);
      std::string line = head.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
      auto colon = line.find(':');
      if (colon != std::string::npos && lower(line.substr(0, colon)) == "sec-websocket-accept") {
        accept = line.substr(colon + 1);
        accept.erase(0, accept.find_first_not_of(" \t"));
        accept.erase(accept.find_last_not_of(" \t") + 1);
      }
    }
    if (accept != expected_accept)
      return net.fail(*this, "EPROTO: bad Sec-WebSocket-Accept in the upgrade response (" + url + ")");
    static const wslay_event_callbacks callbacks = {
        &WsConn::recv_cb, &WsConn::send_cb, &WsConn::genmask_cb, nullptr, nullptr, nullptr, &WsConn::on_msg_cb};
    if (wslay_event_context_client_init(&ctx, &callbacks, this) != 0)
      return net.fail(*this, "ENOMEM: wslay_event_context_client_init failed");
    wslay_event_config_set_max_recv_msg_length(ctx, kMaxWsMessageBytes);
    timer.close();
    phase = Phase::open;
    status = HandleStatus::connected;
    net.post(NetEvent{NetEvent::Type::connected, id, {}});
    // Frames that came with the upgrade response are already buffered.
    frame_io(UV_READABLE | UV_WRITABLE);
  }

  void frame_io(int ready) {
    int rv = 0;
    in_io = true;
    if (ready & UV_READABLE) rv = wslay_event_recv(ctx);
    if (rv == 0 && wslay_event_want_write(ctx)) rv = wslay_event_send(ctx);
    in_io = false;
    settle_queue();
    if (!pending_error.empty()) return net.fail(*this, std::move(pending_error));
    if (rv != 0) {
      if (!io_error.empty()) return net.fail(*this, io_error + " (" + url + ")");
      return net.fail(*this, "EPROTO: WebSocket protocol error (wslay " + std::to_string(rv) + ", " + url + ")");
    }
    bool want_read = wslay_event_want_read(ctx), want_write = wslay_event_want_write(ctx);
    if (!want_read && !want_write) {
      if (wslay_event_get_close_received(ctx)) return net.finish(*this, HandleStatus::closed);
      return net.fail(*this, "EPROTO: WebSocket closed by a protocol error (" + url + ")");
    }
    watch((want_read ? UV_READABLE : 0) | (want_write ? UV_WRITABLE : 0));
  }

  static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int, void* user) {
    auto* self = static_cast<WsConn*>(user);
    if (!self->in.empty()) {
      size_t n = std::min(len, self->in.size());
      std::memcpy(buf, self->in.data(), n);
      self->in.erase(0, n);
      return static_cast<ssize_t>(n);
    }
    size_t n = 0;
    CURLcode rc = curl_easy_recv(self->easy, buf, len, &n);
    if (rc == CURLE_AGAIN) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    if (rc != CURLE_OK || n == 0) {
      self->io_error = rc != CURLE_OK ? curl_message(rc, nullptr)
                                      : "ECONNRESET: the server closed the connection without a WebSocket close frame";
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    return static_cast<ssize_t>(n);
  }

  static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t* data, size_t len, int, void* user) {
    auto* self = static_cast<WsConn*>(user);
    size_t n = 0;
    CURLcode rc = curl_easy_send(self->easy, data, len, &n);
    if (rc == CURLE_AGAIN) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    if (rc != CURLE_OK) {
      self->io_error = curl_message(rc, nullptr);
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    return static_cast<ssize_t>(n);
  }

  static int genmask_cb(wslay_event_context_ptr, uint8_t* buf, size_t len, void*) {
    return RAND_bytes(buf, static_cast<int>(len)) == 1 ? 0 : -1;
  }

  static void on_msg_cb(wslay_event_context_ptr, const wslay_event_on_msg_recv_arg* arg, void* user) {
    auto* self = static_cast<WsConn*>(user);
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) return;
    self->net.post_item(*self, NetEvent::Type::message,
                        std::string(reinterpret_cast<const char*>(arg->msg), arg->msg_length));
  }

  std::unique_ptr<CurlMulti> multi;
  CURL* easy = nullptr;
  WsPoll* poll = nullptr;
  UvHandle<uv_timer_t> timer;
  wslay_event_context_ptr ctx = nullptr;
  Phase phase = Phase::connecting;
  bool in_io = false;
  std::string url, path, host_header, expected_accept;
  std::string out, in;
  std::string io_error, pending_error;
  size_t queued_charged = 0;  // bytes of ws_send messages charged and not yet settled
  CurlGate gate;
  char errbuf[CURL_ERROR_SIZE] = {};
};

int64_t NetState::ws_connect(const std::string& url, std::string& error) {
  std::string target_host;
  if (!policy_.open()) {
    auto sep = url.find("://");
    std::string scheme = lower(url.substr(0, sep));
    int port = 0;
    if (sep == std::string::npos || (scheme != "ws" && scheme != "wss") ||
        !url_target((scheme == "wss" ? "https" : "http") + url.substr(sep), target_host, port)) {
      error = "EINVAL: '" + url + "' is not a valid ws:// or wss:// URL";
      return 0;
    }
    if (auto refused = policy_.check_target(target_host, port)) {
      error = *refused;
      return 0;
    }
  }
  auto owned = std::make_unique<WsConn>(*this);
  if (!owned->held.grow(kHandleBytes + kCurlHandleBytes)) {
    error = over_memory("a new WebSocket", kHandleBytes + kCurlHandleBytes);
    return 0;
  }
  WsConn* ws = owned.get();
  ws->url = url;
  int64_t id = adopt(std::move(owned));
  std::string scheme = lower(url.substr(0, url.find("://")));
  if (url.find("://") == std::string::npos || (scheme != "ws" && scheme != "wss")) {
    fail(*ws, "EINVAL: '" + url + "' is not a ws:// or wss:// URL");
    return id;
  }
  std::string http_url = (scheme == "wss" ? "https" : "http") + url.substr(url.find("://"));
  CURLU* parsed = curl_url();
  char *host = nullptr, *port = nullptr, *path = nullptr, *query = nullptr;
  bool ok = curl_url_set(parsed, CURLUPART_URL, http_url.c_str(), 0) == CURLUE_OK &&
            curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK;
  if (ok) {
    curl_url_get(parsed, CURLUPART_PORT, &port, 0);
    curl_url_get(parsed, CURLUPART_PATH, &path, 0);
    curl_url_get(parsed, CURLUPART_QUERY, &query, 0);
    ws->host_header = std::string(host) + (port ? std::string(":") + port : "");
    ws->path = std::string(path && *path ? path : "/") + (query ? std::string("?") + query : "");
  }
  for (char* p : {host, port, path, query}) curl_free(p);
  curl_url_cleanup(parsed);
  if (!ok) {
    fail(*ws, "EINVAL: '" + url + "' is not a valid URL");
    return id;
  }
  ws->multi = std::make_unique<CurlMulti>(loop_, [ws](CURL*, CURLcode rc) { ws->on_connected(rc); });
  ws->easy = curl_easy_init();
  if (!ws->easy) {
    ws->held.shrink(kCurlHandleBytes);
    fail(*ws, "ENOMEM: curl_easy_init failed");
    return id;
  }
  curl_easy_setopt(ws->easy, CURLOPT_URL, http_url.c_str());
  curl_easy_setopt(ws->easy, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(ws->easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(ws->easy, CURLOPT_ERRORBUFFER, ws->errbuf);
  apply_tls(ws->easy, config_);
  ws->gate.apply(ws->easy, policy_, target_host);
  ws->timer.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  ws->timer.get()->data = ws;
  uv_timer_start(
      ws->timer.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<WsConn*>(t->data);
        if (!self) return;
        self->net.fail(*self, "ETIMEDOUT: WebSocket connect and upgrade took over " +
                                  std::to_string(self->net.config().connect_timeout_ms) + " ms (" + self->url + ")");
      },
      config_.connect_timeout_ms, 0);
  if (CURLMcode mc = ws->multi->add(ws->easy); mc != CURLM_OK)
    fail(*ws, std::string("EIO: ") + curl_multi_strerror(mc));
  return id;
}

SendResult NetState::ws_send(int64_t handle, std::string_view data, bool binary) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::ws || h->finished) return {SendResult::Kind::unknown, {}};
  auto* ws = static_cast<WsConn*>(h);
  if (ws->phase != WsConn::Phase::open || !ws->ctx) return {SendResult::Kind::error, "ENOTCONN: not connected yet"};
  if (wslay_event_get_queued_msg_length(ws->ctx) + data.size() > kMaxSendQueueBytes)
    return {SendResult::Kind::error, "ENOBUFS: send queue full (" + mib(kMaxSendQueueBytes) + " unsent)"};
  if (!ws->held.grow(data.size())) return {SendResult::Kind::error, over_memory("queueing this message", data.size())};
  ws->queued_charged += data.size();
  wslay_event_msg msg{static_cast<uint8_t>(binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME),
                      reinterpret_cast<const uint8_t*>(data.data()), data.size()};
  if (int rv = wslay_event_queue_msg(ws->ctx, &msg); rv != 0) {
    ws->held.shrink(data.size());
    ws->queued_charged -= data.size();
    return {SendResult::Kind::error, rv == WSLAY_ERR_NO_MORE_MSG ? "ENOTCONN: the WebSocket is closing"
                                                                  : "EIO: wslay error " + std::to_string(rv)};
  }
  if (!ws->in_io) ws->frame_io(0);
  return {SendResult::Kind::ok, {}};
}

std::optional<std::string> NetState::ws_recv(int64_t handle) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::ws) return std::nullopt;
  auto item = pop_item(h);
  if (!item) return std::nullopt;
  return std::move(item->data);
}

}  // namespace nshost
