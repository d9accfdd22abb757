#include "runtime/net/net_state.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include <sys/socket.h>

#include "runtime/uv_handle.hpp"

#if NSHOST_WITH_HTTP || NSHOST_WITH_WS
#include <curl/curl.h>

#include "runtime/net/curl_multi.hpp"
#endif
#if NSHOST_WITH_WS
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>
#endif

namespace nshost {

const char* net_event_name(NetEvent::Type type) {
  switch (type) {
    case NetEvent::Type::connected: return "connected";
    case NetEvent::Type::data: return "data";
    case NetEvent::Type::message: return "message";
    case NetEvent::Type::accepted: return "accepted";
    case NetEvent::Type::http_done: return "http_done";
    case NetEvent::Type::error: return "error";
    case NetEvent::Type::closed: return "closed";
  }
  return "?";
}

namespace {

std::string uv_message(int code) { return std::string(uv_err_name(code)) + ": " + uv_strerror(code); }

[[maybe_unused]] std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string over_memory(const std::string& what, size_t bytes) {
  return "ENOMEM: " + what + " (" + std::to_string(bytes) +
         " bytes) would pass the script's memory limit (--memory-limit counts Lua and net buffers)";
}

}  // namespace

// An unread TCP chunk, WebSocket message or accepted client. Each is delivered
// once: by its event (poll_event) or by tcp_recv / ws_recv / tcp_accept,
// whichever comes first.
struct InboxItem {
  uint64_t seq;
  std::string data;
  int64_t accepted = 0;
};

struct NetState::Handle {
  enum class Kind { tcp, listener, http, ws };
  Handle(NetState& n, Kind k, const char* s) : net(n), kind(k), status(s), held(n.memory()) {}
  virtual ~Handle() = default;
  // Stops all I/O at once and releases the transport; the record stays.
  virtual void shutdown() {}
  // A bound was hit while delivering: end the handle (now, or right after
  // the library callback that is running returns).
  virtual void overflow(std::string message) { net.fail(*this, std::move(message)); }

  NetState& net;
  Kind kind;
  const char* status;
  int64_t id = 0;
  bool finished = false;
  std::deque<InboxItem> inbox;
  size_t inbox_bytes = 0;
  // Everything this handle holds for the script: its record, its transport
  // while open, unread data and HTTP request/response bytes.
  Charged held;
};

// ---------------------------------------------------------------- shared

NetState::NetState(uv_loop_t* loop, std::function<bool()> role_finished, NetPolicy policy,
                   std::shared_ptr<NetMemory> memory)
    : loop_(loop), role_finished_(std::move(role_finished)), policy_(std::move(policy)), memory_(std::move(memory)) {
  if (!role_finished_) return;
  watch_ = new uv_prepare_t{};
  uv_prepare_init(loop_, watch_);
  watch_->data = this;
  uv_prepare_start(watch_, [](uv_prepare_t* p) {
    auto* self = static_cast<NetState*>(p->data);
    if (self && self->role_finished_()) {
      self->close_all();
      uv_prepare_stop(p);
    }
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(watch_));  // never keeps the loop alive itself
}

NetState::~NetState() {
  close_all();
  // Writes still lingering release into nothing once the script is gone.
  if (memory_) memory_->detach();
  if (watch_) {
    watch_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(watch_), [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
  }
}

void NetState::close_all() {
  // Destroy one at a time, so a destructor that closes another handle finds
  // the table consistent.
  while (!handles_.empty()) handles_.extract(handles_.begin());
  close_lingering();
#if NSHOST_WITH_HTTP
  http_multi_.reset();
#endif
  events_.clear();
  finished_.clear();
}

int64_t NetState::adopt(std::unique_ptr<Handle> h) {
  int64_t id = next_handle_++;
  h->id = id;
  handles_.emplace(id, std::move(h));
  return id;
}

NetState::Handle* NetState::find(int64_t handle) const {
  auto it = handles_.find(handle);
  return it == handles_.end() ? nullptr : it->second.get();
}

const char* NetState::status(int64_t handle) const {
  Handle* h = find(handle);
  return h ? h->status : nullptr;
}

void NetState::close(int64_t handle) {
  auto node = handles_.extract(handle);
  // node's destructor tears the handle down here, after the table is consistent.
}

void NetState::post(NetEvent event) { events_.push_back(std::move(event)); }

void NetState::compact_events() {
  std::deque<NetEvent> kept;
  for (NetEvent& ev : events_) {
    Handle* h = find(ev.handle);
    if (!h) continue;
    if (ev.item_seq && (h->inbox.empty() || h->inbox.front().seq > ev.item_seq)) continue;
    kept.push_back(std::move(ev));
  }
  events_.swap(kept);
}

void NetState::post_item(Handle& h, NetEvent::Type type, std::string data, int64_t accepted) {
  if (h.inbox.size() >= kMaxInboxItems || h.inbox_bytes + data.size() > kMaxInboxBytes) {
    h.overflow("ENOBUFS: receive queue full (" + std::to_string(h.inbox.size()) + " unread items, " +
               std::to_string(h.inbox_bytes) + " bytes; limits " + std::to_string(kMaxInboxItems) + " items, " +
               mib(kMaxInboxBytes) + "): connection closed");
    return;
  }
  if (!h.held.grow(data.size())) {
    h.overflow(over_memory("received data not yet read", data.size()) + ": connection closed");
    return;
  }
  if (events_.size() >= kMaxEvents) compact_events();
  uint64_t seq = next_seq_++;
  h.inbox_bytes += data.size();
  h.inbox.push_back(InboxItem{seq, std::move(data), accepted});
  if (events_.size() >= kMaxEvents) {
    // The item stays readable with tcp_recv / ws_recv / tcp_accept.
    h.overflow("ENOBUFS: event queue full (" + std::to_string(kMaxEvents) +
               " events; poll net.poll_event() every tick): connection closed");
    return;
  }
  NetEvent ev{type, h.id, {}, 0, seq};
  post(std::move(ev));
}

void NetState::fail(Handle& h, std::string message) {
  if (h.finished) return;
  h.shutdown();
  h.status = "error";
  h.finished = true;
  post(NetEvent{NetEvent::Type::error, h.id, std::move(message)});
  finished_.push_back(h.id);
  evict_finished();
}

void NetState::finish(Handle& h, const char* status) {
  if (h.finished) return;
  h.shutdown();
  h.status = status;
  h.finished = true;
  bool done = std::strcmp(status, "done") == 0;
  post(NetEvent{done ? NetEvent::Type::http_done : NetEvent::Type::closed, h.id, {}});
  finished_.push_back(h.id);
  evict_finished();
}

void NetState::evict_finished() {
  while (finished_.size() > kMaxFinishedHandles) {
    int64_t id = finished_.front();
    finished_.pop_front();
    Handle* h = find(id);
    if (h && h->finished) close(id);
  }
}

std::optional<NetEvent> NetState::poll_event() {
  while (!events_.empty()) {
    NetEvent ev = std::move(events_.front());
    events_.pop_front();
    Handle* h = find(ev.handle);
    if (!h) continue;  // closed by the script
    if (ev.item_seq) {
      if (h->inbox.empty() || h->inbox.front().seq != ev.item_seq) continue;  // already read
      InboxItem& item = h->inbox.front();
      h->inbox_bytes -= item.data.size();
      h->held.shrink(item.data.size());
      ev.text = std::move(item.data);
      ev.accepted = item.accepted;
      h->inbox.pop_front();
    }
    return ev;
  }
  return std::nullopt;
}

namespace {

std::optional<InboxItem> pop_item(NetState::Handle* h) {
  if (!h || h->inbox.empty()) return std::nullopt;
  InboxItem item = std::move(h->inbox.front());
  h->inbox.pop_front();
  h->inbox_bytes -= item.data.size();
  h->held.shrink(item.data.size());
  return item;
}

}  // namespace

// ---------------------------------------------------------------- TCP

// The libuv socket lives apart from its handle record: it must stay allocated
// until its close callback, and a script-closed connection lingers until its
// queued writes are flushed.
struct TcpSocket {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  NetState* lingering_in = nullptr;
};

namespace {

void free_socket(uv_handle_t* h) { delete reinterpret_cast<TcpSocket*>(h); }

void close_socket_now(TcpSocket* s) {
  s->tcp.data = nullptr;
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&s->tcp))) uv_close(reinterpret_cast<uv_handle_t*>(&s->tcp), free_socket);
}

struct WriteReq {
  uv_write_t req;
  std::string data;
  Charged charge;  // data's bytes, until the write completes
};

}  // namespace

struct NetState::TcpConn : Handle {
  TcpConn(NetState& n, const char* s) : Handle(n, Kind::tcp, s) {}
  ~TcpConn() override { release(true); }
  void shutdown() override { release(false); }

  // graceful: flush queued writes and send FIN before closing.
  void release(bool graceful) {
    if (dns) {
      dns->data = nullptr;
      uv_cancel(reinterpret_cast<uv_req_t*>(dns));
      dns = nullptr;
    }
    if (addrs) {
      uv_freeaddrinfo(addrs);
      addrs = next_addr = nullptr;
    }
    timer.close();
    if (!sock) return;
    TcpSocket* s = sock;
    sock = nullptr;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&s->tcp));
    s->tcp.data = nullptr;
    if (graceful && connected &&
        uv_shutdown(&s->shutdown, reinterpret_cast<uv_stream_t*>(&s->tcp), [](uv_shutdown_t* req, int) {
          auto* so = reinterpret_cast<TcpSocket*>(req->handle);
          if (so->lingering_in) so->lingering_in->lingering_.erase(so);
          close_socket_now(so);
        }) == 0) {
      s->lingering_in = &net;
      net.lingering_.insert(s);
      return;
    }
    close_socket_now(s);
  }

  void start_reading() {
    uv_tcp_nodelay(&sock->tcp, 1);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&sock->tcp),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<TcpConn*>(h->data);
          if (!self) {
            *buf = uv_buf_init(nullptr, 0);
            return;
          }
          std::string& shared = self->net.read_buffer_;
          shared.resize(64 * 1024);
          *buf = uv_buf_init(shared.data(), static_cast<unsigned>(shared.size()));
        },
        [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
          auto* self = static_cast<TcpConn*>(stream->data);
          if (!self || nread == 0) return;
          if (nread > 0) {
            self->net.post_item(*self, NetEvent::Type::data, std::string(buf->base, static_cast<size_t>(nread)));
          } else if (nread == UV_EOF) {
            self->net.finish(*self, "closed");
          } else {
            self->net.fail(*self, uv_message(static_cast<int>(nread)) + " (" + self->peer + ")");
          }
        });
  }

  void try_next_address() {
    while (next_addr) {
      addrinfo* ai = next_addr;
      next_addr = next_addr->ai_next;
      if (auto refused = net.policy().check_address(ai->ai_addr, host)) {
        last_error = *refused;
        continue;
      }
      auto* s = new TcpSocket{};
      if (int rc = uv_tcp_init(net.loop(), &s->tcp); rc != 0) {
        delete s;
        last_error = uv_message(rc);
        continue;
      }
      s->tcp.data = this;
      int rc = uv_tcp_connect(&s->connect, &s->tcp, ai->ai_addr, [](uv_connect_t* req, int status) {
        auto* self = static_cast<TcpConn*>(req->handle->data);
        if (!self || status == UV_ECANCELED) return;
        if (status < 0) {
          self->last_error = uv_message(status) + " (" + self->peer + ")";
          TcpSocket* dead = self->sock;
          self->sock = nullptr;
          close_socket_now(dead);
          self->try_next_address();
          return;
        }
        self->connected = true;
        self->timer.close();
        self->status = "connected";
        self->net.post(NetEvent{NetEvent::Type::connected, self->id, {}});
        self->start_reading();
      });
      if (rc != 0) {
        last_error = uv_message(rc) + " (" + peer + ")";
        close_socket_now(s);
        continue;
      }
      sock = s;
      return;
    }
    net.fail(*this, last_error.empty() ? "EAI_NONAME: no address for " + peer : last_error);
  }

  TcpSocket* sock = nullptr;
  uv_getaddrinfo_t* dns = nullptr;
  addrinfo* addrs = nullptr;
  addrinfo* next_addr = nullptr;
  UvHandle<uv_timer_t> timer;
  bool connected = false;
  std::string peer;  // "host:port" for messages
  std::string host;  // as the script gave it, for the address policy
  std::string last_error;
};

struct NetState::TcpListener : Handle {
  explicit TcpListener(NetState& n) : Handle(n, Kind::listener, "connected") {}
  ~TcpListener() override {
    shutdown();
    // Clients accepted but never handed to the script go with it.
    for (InboxItem& item : inbox) net.close(item.accepted);
  }
  void shutdown() override {
    if (sock) close_socket_now(sock);
    sock = nullptr;
  }
  TcpSocket* sock = nullptr;
};

void NetState::close_lingering() {
  for (TcpSocket* s : lingering_) {
    s->lingering_in = nullptr;
    close_socket_now(s);
  }
  lingering_.clear();
}

int64_t NetState::tcp_connect(const std::string& host, int port, std::string& error) {
  if (auto refused = policy_.check_target(host, port)) {
    error = *refused;
    return 0;
  }
  auto owned = std::make_unique<TcpConn>(*this, "connecting");
  if (!owned->held.grow(kHandleBytes)) {
    error = over_memory("a new TCP connection", kHandleBytes);
    return 0;
  }
  TcpConn* conn = owned.get();
  conn->host = host;
  conn->peer = host + ":" + std::to_string(port);
  int64_t id = adopt(std::move(owned));
  if (port < 1 || port > 65535) {
    fail(*conn, "EINVAL: port " + std::to_string(port) + " is not in 1..65535");
    return id;
  }
  conn->timer.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  conn->timer.get()->data = conn;
  uv_timer_start(
      conn->timer.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<TcpConn*>(t->data);
        if (!self) return;
        self->net.fail(*self, "ETIMEDOUT: connecting to " + self->peer + " took over " +
                                  std::to_string(self->net.config().connect_timeout_ms) + " ms");
      },
      config_.connect_timeout_ms, 0);
  auto* req = new uv_getaddrinfo_t{};
  req->data = conn;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(
      loop_, req,
      [](uv_getaddrinfo_t* r, int status, addrinfo* res) {
        auto* self = static_cast<TcpConn*>(r->data);
        delete r;
        if (!self) {
          if (res) uv_freeaddrinfo(res);
          return;
        }
        self->dns = nullptr;
        if (status < 0) {
          self->net.fail(*self, uv_message(status) + " (DNS lookup of " + self->peer + ")");
          return;
        }
        self->addrs = self->next_addr = res;
        self->try_next_address();
      },
      host.c_str(), service.c_str(), &hints);
  if (rc != 0) {
    delete req;
    fail(*conn, uv_message(rc) + " (DNS lookup of " + conn->peer + ")");
  } else {
    conn->dns = req;
  }
  return id;
}

SendResult NetState::tcp_send(int64_t handle, std::string_view data) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::tcp || h->finished) return {SendResult::Kind::unknown, {}};
  auto* conn = static_cast<TcpConn*>(h);
  if (!conn->connected || !conn->sock) return {SendResult::Kind::error, "ENOTCONN: not connected yet"};
  auto* stream = reinterpret_cast<uv_stream_t*>(&conn->sock->tcp);
  if (uv_stream_get_write_queue_size(stream) + data.size() > kMaxSendQueueBytes)
    return {SendResult::Kind::error, "ENOBUFS: send queue full (" + mib(kMaxSendQueueBytes) + " unsent)"};
  if (data.empty()) return {SendResult::Kind::ok, {}};
  Charged charge(memory_);
  if (!charge.grow(data.size())) return {SendResult::Kind::error, over_memory("queueing this send", data.size())};
  auto* w = new WriteReq{};
  w->charge = std::move(charge);
  w->data.assign(data);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, stream, &buf, 1, [](uv_write_t* req, int status) {
    auto* wr = reinterpret_cast<WriteReq*>(req);
    auto* self = static_cast<TcpConn*>(req->handle->data);
    delete wr;
    if (self && status < 0 && status != UV_ECANCELED)
      self->net.fail(*self, uv_message(status) + " (" + self->peer + ")");
  });
  if (rc != 0) {
    delete w;
    return {SendResult::Kind::error, uv_message(rc)};
  }
  return {SendResult::Kind::ok, {}};
}

std::optional<std::string> NetState::tcp_recv(int64_t handle) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::tcp) return std::nullopt;
  auto item = pop_item(h);
  if (!item) return std::nullopt;
  return std::move(item->data);
}

int64_t NetState::tcp_listen(const std::string& bind, int port, std::string& error) {
  if (auto refused = policy_.check_listen()) {
    error = *refused;
    return 0;
  }
  if (port < 0 || port > 65535) {
    error = "EINVAL: port " + std::to_string(port) + " is not in 0..65535";
    return 0;
  }
  sockaddr_storage addr{};
  if (uv_ip4_addr(bind.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(bind.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    error = "EINVAL: bind address '" + bind + "' is not an IPv4 or IPv6 address";
    return 0;
  }
  auto listener = std::make_unique<TcpListener>(*this);
  if (!listener->held.grow(kHandleBytes)) {
    error = over_memory("a new listener", kHandleBytes);
    return 0;
  }
  auto* s = new TcpSocket{};
  if (int rc = uv_tcp_init(loop_, &s->tcp); rc != 0) {
    delete s;
    error = uv_message(rc);
    return 0;
  }
  listener->sock = s;
  s->tcp.data = listener.get();
  int rc = uv_tcp_bind(&s->tcp, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&s->tcp), 128, [](uv_stream_t* server, int status) {
      auto* self = static_cast<TcpListener*>(server->data);
      if (!self) return;
      NetState& net = self->net;
      if (status < 0) {
        net.post(NetEvent{NetEvent::Type::error, self->id, uv_message(status) + " (accept)"});
        return;
      }
      auto conn = std::make_unique<TcpConn>(net, "connected");
      auto* cs = new TcpSocket{};
      bool fits = conn->held.grow(kHandleBytes);
      if (int irc = uv_tcp_init(net.loop(), &cs->tcp); irc != 0) {
        delete cs;
        net.post(NetEvent{NetEvent::Type::error, self->id, uv_message(irc) + " (accept)"});
        return;
      }
      if (int arc = uv_accept(server, reinterpret_cast<uv_stream_t*>(&cs->tcp)); arc != 0) {
        close_socket_now(cs);
        net.post(NetEvent{NetEvent::Type::error, self->id, uv_message(arc) + " (accept)"});
        return;
      }
      if (!fits) {
        close_socket_now(cs);
        net.post(NetEvent{NetEvent::Type::error, self->id,
                          over_memory("accepting a client", kHandleBytes) + ": new client refused"});
        return;
      }
      if (self->inbox.size() >= kMaxInboxItems) {
        close_socket_now(cs);
        net.post(NetEvent{NetEvent::Type::error, self->id,
                          "ENOBUFS: accept queue full (" + std::to_string(kMaxInboxItems) +
                              " clients not yet accepted): new client refused"});
        return;
      }
      sockaddr_storage peer{};
      int len = sizeof peer;
      char name[INET6_ADDRSTRLEN] = "?";
      if (uv_tcp_getpeername(&cs->tcp, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
        if (peer.ss_family == AF_INET6) uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), name, sizeof name);
        else uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), name, sizeof name);
      }
      conn->peer = std::string("client ") + name;
      conn->connected = true;
      conn->sock = cs;
      cs->tcp.data = conn.get();
      TcpConn* c = conn.get();
      int64_t cid = net.adopt(std::move(conn));
      c->start_reading();
      net.post_item(*self, NetEvent::Type::accepted, {}, cid);
    });
  if (rc != 0) {
    error = uv_message(rc) + " (listening on " + bind + ":" + std::to_string(port) + ")";
    return 0;  // listener's destructor closes the socket
  }
  return adopt(std::move(listener));
}

std::optional<int64_t> NetState::tcp_accept(int64_t handle) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::listener) return std::nullopt;
  auto item = pop_item(h);
  if (!item) return std::nullopt;
  return item->accepted;
}

int NetState::tcp_port(int64_t handle) const {
  Handle* h = find(handle);
  TcpSocket* s = nullptr;
  if (h && h->kind == Handle::Kind::listener) s = static_cast<TcpListener*>(h)->sock;
  if (h && h->kind == Handle::Kind::tcp) s = static_cast<TcpConn*>(h)->sock;
  if (!s) return 0;
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getsockname(&s->tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

// ---------------------------------------------------------------- curl helpers

#if NSHOST_WITH_HTTP || NSHOST_WITH_WS
namespace {

const char* curl_code_name(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "EAI_NONAME";
    case CURLE_COULDNT_CONNECT: return "ECONNREFUSED";
    case CURLE_OPERATION_TIMEDOUT: return "ETIMEDOUT";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return "ECONNRESET";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER: return "ETLS";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return "EINVAL";
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR: return "EMSGSIZE";
    default: return "EIO";
  }
}

std::string curl_message(CURLcode rc, const char* errbuf) {
  std::string detail = (errbuf && *errbuf) ? errbuf : curl_easy_strerror(rc);
  return std::string(curl_code_name(rc)) + ": " + detail;
}

void apply_tls(CURL* easy, const NetState::Config& config) {
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, config.tls_verify ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, config.tls_verify ? 2L : 0L);
  if (!config.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, config.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  // Cleanup of a handle still resolving must not wait for the resolver thread.
  curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config.connect_timeout_ms));
}

// Host and port (the scheme's default if none) of an http(s) URL; false if
// it does not parse.
bool url_target(const std::string& url, std::string& host, int& port) {
  CURLU* parsed = curl_url();
  char *h = nullptr, *p = nullptr;
  bool ok = parsed && curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
            curl_url_get(parsed, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
            curl_url_get(parsed, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK;
  if (ok) {
    host = h;
    port = std::atoi(p);
  }
  curl_free(h);
  curl_free(p);
  curl_url_cleanup(parsed);
  return ok;
}

}  // namespace

// A sandboxed transfer's connects: every address curl is about to dial is
// checked against the policy (a listed name may resolve anywhere), and
// neither proxies nor redirects can take it elsewhere.
struct CurlGate {
  const NetPolicy* policy = nullptr;
  std::string host;
  std::string refused;  // the first refusal, reported instead of curl's error

  static curl_socket_t open_socket(void* clientp, curlsocktype, curl_sockaddr* address) {
    auto* gate = static_cast<CurlGate*>(clientp);
    if (auto refused = gate->policy->check_address(&address->addr, gate->host)) {
      if (gate->refused.empty()) gate->refused = *refused;
      return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  }

  // Nothing to do for an open policy.
  void apply(CURL* easy, const NetPolicy& net_policy, std::string target_host) {
    if (net_policy.open()) return;
    policy = &net_policy;
    host = std::move(target_host);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &CurlGate::open_socket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  }
};
#endif

// ---------------------------------------------------------------- HTTP

#if NSHOST_WITH_HTTP
struct NetState::HttpRequest : Handle {
  explicit HttpRequest(NetState& n) : Handle(n, Kind::http, "building") {}
  ~HttpRequest() override { shutdown(); }
  void shutdown() override {
    if (easy) {
      net.http_multi_->remove(easy);
      curl_easy_cleanup(easy);
      easy = nullptr;
      held.shrink(kCurlHandleBytes);
    }
    if (header_list) curl_slist_free_all(header_list);
    header_list = nullptr;
  }

  static size_t on_body(char* data, size_t, size_t n, void* userp) {
    auto* self = static_cast<HttpRequest*>(userp);
    if (self->response.body.size() + n > kMaxHttpBodyBytes) {
      self->body_over_limit = true;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    if (!self->held.grow(n)) {
      self->over_memory = true;
      return 0;
    }
    self->response.body.append(data, n);
    return n;
  }
  static size_t on_header(char* data, size_t, size_t n, void* userp) {
    auto* self = static_cast<HttpRequest*>(userp);
    if (!self->held.grow(n)) {
      self->over_memory = true;
      return 0;
    }
    std::string_view line(data, n);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.substr(0, 5) == "HTTP/") {
      self->response.headers.clear();  // a new response (redirect, 100 Continue)
      return n;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return n;
    std::string name = lower(std::string(line.substr(0, colon)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    auto [it, inserted] = self->response.headers.emplace(name, std::string(value));
    if (!inserted) it->second.append(", ").append(value);
    return n;
  }

  std::string method, url;
  std::optional<std::string> body;
  std::vector<std::pair<std::string, std::string>> headers;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  HttpResponse response;
  bool body_over_limit = false;
  bool over_memory = false;  // a response byte did not fit under the memory cap
  std::string target_host;   // for the address policy
  CurlGate gate;
  char errbuf[CURL_ERROR_SIZE] = {};
};

int64_t NetState::http_request(std::string method, std::string url, std::optional<std::string> body,
                               std::string& error) {
  std::string host;
  int port = 0;
  if (!policy_.open()) {
    if (!url_target(url, host, port)) {
      error = "EINVAL: '" + url + "' is not a valid http(s) URL";
      return 0;
    }
    if (auto refused = policy_.check_target(host, port)) {
      error = *refused;
      return 0;
    }
  }
  auto req = std::make_unique<HttpRequest>(*this);
  size_t bytes = kHandleBytes + url.size() + (body ? body->size() : 0);
  if (!req->held.grow(bytes)) {
    error = over_memory("a new HTTP request with its body", bytes);
    return 0;
  }
  req->target_host = std::move(host);
  req->method = std::move(method);
  req->url = std::move(url);
  req->body = std::move(body);
  return adopt(std::move(req));
}

void NetState::http_set_header(int64_t handle, std::string name, std::string value) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::http || std::strcmp(h->status, "building") != 0) return;
  auto* req = static_cast<HttpRequest*>(h);
  if (!req->held.grow(name.size() + value.size())) {
    fail(*req, over_memory("an HTTP request header", name.size() + value.size()));
    return;
  }
  std::string key = lower(name);
  for (auto& [n, v] : req->headers)
    if (lower(n) == key) {
      v = std::move(value);
      return;
    }
  req->headers.emplace_back(std::move(name), std::move(value));
}

void NetState::http_send(int64_t handle) {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::http || std::strcmp(h->status, "building") != 0) return;
  auto* req = static_cast<HttpRequest*>(h);
  if (!http_multi_)
    http_multi_ = std::make_unique<CurlMulti>(loop_, [this](CURL* easy, CURLcode rc) { on_http_done(easy, rc); });
  if (!req->held.grow(kCurlHandleBytes)) {
    fail(*req, over_memory("starting an HTTP transfer", kCurlHandleBytes));
    return;
  }
  CURL* easy = curl_easy_init();
  if (!easy) {
    req->held.shrink(kCurlHandleBytes);
    fail(*req, "ENOMEM: curl_easy_init failed");
    return;
  }
  req->easy = easy;
  req->status = "pending";
  curl_easy_setopt(easy, CURLOPT_URL, req->url.c_str());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout_ms));
  curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(kMaxHttpBodyBytes));
  apply_tls(easy, config_);
  req->gate.apply(easy, policy_, req->target_host);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpRequest::on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &HttpRequest::on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
  if (req->method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (req->method != "GET" || req->body) {
    if (req->body) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body->data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req->body->size()));
    }
    if (req->method != "POST" || !req->body) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method.c_str());
  }
  // No "Expect: 100-continue" round trip for large bodies.
  req->header_list = curl_slist_append(req->header_list, "Expect:");
  for (auto& [name, value] : req->headers)
    req->header_list = curl_slist_append(req->header_list, (name + ": " + value).c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->header_list);
  if (CURLMcode mc = http_multi_->add(easy); mc != CURLM_OK) {
    fail(*req, std::string("EIO: ") + curl_multi_strerror(mc));
  }
}

void NetState::on_http_done(void* easy_ptr, int result) {
  CURL* easy = static_cast<CURL*>(easy_ptr);
  HttpRequest* req = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &req);
  auto rc = static_cast<CURLcode>(result);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &req->response.status);
    finish(*req, "done");
    return;
  }
  std::string message;
  if (!req->gate.refused.empty()) message = req->gate.refused;
  else if (req->over_memory) message = over_memory("the response so far", req->held.bytes());
  else if (req->body_over_limit) message = "EMSGSIZE: response body over the " + mib(kMaxHttpBodyBytes) + " limit";
  else message = curl_message(rc, req->errbuf);
  message += " (" + req->url + ")";
  req->response.error = message;
  fail(*req, std::move(message));
}

const HttpResponse* NetState::http_response(int64_t handle) const {
  Handle* h = find(handle);
  if (!h || h->kind != Handle::Kind::http || !h->finished) return nullptr;
  return &static_cast<HttpRequest*>(h)->response;
}
#endif

// ---------------------------------------------------------------- WebSocket

#if NSHOST_WITH_WS
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
  explicit WsConn(NetState& n) : Handle(n, Kind::ws, "connecting") {}
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
    status = "connected";
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
      if (wslay_event_get_close_received(ctx)) return net.finish(*this, "closed");
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
#endif

}  // namespace nshost
