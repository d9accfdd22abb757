// net.tcp_*: client connections, listeners and the clients they accept, on
// libuv TCP. Compiled only with NSHOST_WITH_TCP.
#include <sys/socket.h>

#include "runtime/net/net_handles.hpp"
#include "runtime/net/net_state.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost {

using net_detail::mib;
using net_detail::over_memory;
using net_detail::pop_item;
using net_detail::uv_message;

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
  TcpConn(NetState& n, HandleStatus s) : Handle(n, Kind::tcp, s) {}
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
            self->net.finish(*self, HandleStatus::closed);
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
        self->status = HandleStatus::connected;
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
  explicit TcpListener(NetState& n) : Handle(n, Kind::listener, HandleStatus::connected) {}
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
  auto owned = std::make_unique<TcpConn>(*this, HandleStatus::connecting);
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
      auto conn = std::make_unique<TcpConn>(net, HandleStatus::connected);
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

}  // namespace nshost
