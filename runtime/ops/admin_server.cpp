#include "runtime/ops/admin_server.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <unordered_set>

#include <h2o.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>


#if __has_include("runtime/ops/dashboard_assets.hpp")
#include "runtime/ops/dashboard_assets.hpp"
#define NSHOST_HAVE_DASHBOARD 1
#else
#define NSHOST_HAVE_DASHBOARD 0
#endif

namespace nshost::ops {

bool bearer_matches(std::string_view given, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (given.size() < kScheme.size() || given.substr(0, kScheme.size()) != kScheme) return false;
  given.remove_prefix(kScheme.size());
  // Digests of both, compared in constant time: neither the position of the
  // first difference nor the token's length shows in the time taken.
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

namespace {

struct Handler;

// One accepted connection. The uv_tcp_t comes first: h2o's close callback
// hands back the stream, and the Conn is found from it.
struct Conn {
  uv_tcp_t tcp;
  AdminServer::State* state;
  h2o_socket_t* sock;
  bool ended;  // end_connection was called
};

}  // namespace

struct AdminServer::State {
  uv_loop_t* loop = nullptr;
  AdminSource* source = nullptr;  // null once the AdminServer is gone
  std::string token;
  std::string host;
  h2o_globalconf_t config{};
  h2o_context_t ctx{};
  h2o_accept_ctx_t accept_ctx{};
  bool context_ready = false;
  uv_tcp_t listener{};
  bool listener_open = false;
  uv_check_t sweep{};  // the request-bytes budget, after each loop iteration
  bool sweep_open = false;
  std::unordered_set<Conn*> conns;
  AdminCounters counters;
  uint16_t port = 0;
  bool closing = false;
  // Handles still closing before the State can be freed.
  int closing_handles = 0;
  uv_idle_t reaper{};  // closed last, in a later pass, to free the State
  int reaper_passes = 0;

  void close();
  void maybe_finish();
  void on_conn_closed(Conn* conn);
};

namespace {

void on_sweep(uv_check_t* check);

struct Handler {
  h2o_handler_t super;
  AdminServer::State* state;
};

void add_header(h2o_req_t* req, const h2o_token_t* token, std::string_view value) {
  h2o_iovec_t v = h2o_strdup(&req->pool, value.data(), value.size());
  h2o_add_header(&req->pool, &req->res.headers, token, nullptr, v.base, v.len);
}

void respond(h2o_req_t* req, int status, const char* reason, std::string_view content_type, std::string_view body) {
  req->res.status = status;
  req->res.reason = reason;
  req->res.content_length = body.size();
  add_header(req, H2O_TOKEN_CONTENT_TYPE, content_type);
  add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
  h2o_send_inline(req, body.data(), body.size());
}

int on_request(h2o_handler_t* self, h2o_req_t* req) {
  AdminServer::State* st = reinterpret_cast<Handler*>(self)->state;
  ++st->counters.requests;
  std::string_view method(req->method.base, req->method.len);
  std::string_view path(req->path_normalized.base, req->path_normalized.len);
  // The dashboard's files hold no server data, and a browser cannot put a
  // bearer token on a page load: they are served without one (the page sends
  // it on every /api/status).
  bool public_file = false;
#if NSHOST_HAVE_DASHBOARD
  public_file = path.substr(0, 5) != "/api/" && find_dashboard_asset(path) != nullptr;
#endif
  if (!st->token.empty() && !public_file) {
    ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    std::string_view given = at < 0 ? std::string_view{}
                                    : std::string_view(req->headers.entries[at].value.base,
                                                       req->headers.entries[at].value.len);
    if (!bearer_matches(given, st->token)) {
      ++st->counters.unauthorized;
      add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, "Bearer realm=\"nshost\"");
      respond(req, 401, "Unauthorized", "text/plain; charset=utf-8", "401 unauthorized: --admin-token is set\n");
      return 0;
    }
  }
  if (method != "GET" && method != "HEAD") {
    add_header(req, H2O_TOKEN_ALLOW, "GET, HEAD");
    respond(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", "405 method not allowed\n");
    return 0;
  }
  if (!st->source) {
    respond(req, 503, "Service Unavailable", "text/plain; charset=utf-8", "503 shutting down\n");
    return 0;
  }
  if (path == "/metrics") {
    std::string body = st->source->metrics_text();
    respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    return 0;
  }
  if (path == "/api/status") {
    std::string body = st->source->status_json();
    respond(req, 200, "OK", "application/json", body);
    return 0;
  }
#if NSHOST_HAVE_DASHBOARD
  if (path.substr(0, 5) != "/api/") {
    if (const DashboardAsset* asset = find_dashboard_asset(path)) {
      respond(req, 200, "OK", asset->content_type, asset->bytes);
      return 0;
    }
  }
#endif
  respond(req, 404, "Not Found", "text/plain; charset=utf-8", "404 not found\n");
  return 0;
}

void on_conn_close(uv_handle_t* handle) {
  auto* conn = reinterpret_cast<Conn*>(handle);
  conn->state->on_conn_closed(conn);
}

void on_accept(uv_stream_t* listener, int status) {
  auto* st = static_cast<AdminServer::State*>(listener->data);
  if (status != 0 || st->closing) return;
  auto* conn = new Conn{};
  conn->state = st;
  uv_tcp_init(st->loop, &conn->tcp);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&conn->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp), [](uv_handle_t* h) { delete reinterpret_cast<Conn*>(h); });
    return;
  }
  if (st->conns.size() >= AdminServer::kMaxConnections) {
    ++st->counters.connections_refused;
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->tcp), [](uv_handle_t* h) { delete reinterpret_cast<Conn*>(h); });
    return;
  }
  ++st->counters.connections;
  st->conns.insert(conn);
  uv_check_start(&st->sweep, on_sweep);
  conn->sock = h2o_uv_socket_create(reinterpret_cast<uv_stream_t*>(&conn->tcp), on_conn_close);
  h2o_accept(&st->accept_ctx, conn->sock);
}

// Ends a connection through h2o: with both directions shut down its next
// read sees the end (or a reset, if the peer keeps sending) and h2o closes
// the socket itself; closing it under h2o would leave h2o a dangling one.
void end_connection(Conn* conn) {
  conn->ended = true;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&conn->tcp), &fd) == 0) shutdown(fd, SHUT_RDWR);
}

void on_sweep(uv_check_t* check) {
  auto* st = static_cast<AdminServer::State*>(check->data);
  for (Conn* conn : st->conns) {
    if (conn->ended || uv_is_closing(reinterpret_cast<uv_handle_t*>(&conn->tcp))) continue;
    // What h2o holds of a request it has not finished parsing.
    if (conn->sock && conn->sock->input && conn->sock->input->size > AdminServer::kMaxRequestBytes) {
      ++st->counters.closed_oversized;
      end_connection(conn);
    }
  }
}

}  // namespace

void AdminServer::State::on_conn_closed(Conn* conn) {
  conns.erase(conn);
  delete conn;
  if (conns.empty() && sweep_open) uv_check_stop(&sweep);
  maybe_finish();
}

void AdminServer::State::close() {
  if (closing) return;
  closing = true;
  source = nullptr;
  if (listener_open) {
    listener_open = false;
    ++closing_handles;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
      auto* st = static_cast<State*>(h->data);
      --st->closing_handles;
      st->maybe_finish();
    });
  }
  for (Conn* conn : conns) end_connection(conn);
  maybe_finish();
}

void AdminServer::State::maybe_finish() {
  if (!closing || !conns.empty() || closing_handles > 0) return;
  if (sweep_open) {
    sweep_open = false;
    ++closing_handles;
    uv_close(reinterpret_cast<uv_handle_t*>(&sweep), [](uv_handle_t* h) {
      auto* st = static_cast<State*>(h->data);
      --st->closing_handles;
      st->maybe_finish();
    });
    return;
  }
  if (context_ready) {
    context_ready = false;
    // Closes h2o's own timers and queue; they live inside ctx, so the State
    // is freed only from the reaper's close, a loop pass after theirs.
    h2o_context_dispose(&ctx);
    h2o_config_dispose(&config);
    // libuv finishes the closes asked for in one iteration at the end of that
    // iteration or the next one, in a batch: the reaper's own close must come
    // after that batch, so it waits two idle passes before closing.
    uv_idle_init(loop, &reaper);
    reaper.data = this;
    uv_idle_start(&reaper, [](uv_idle_t* idle) {
      auto* st = static_cast<State*>(idle->data);
      if (++st->reaper_passes < 2) return;
      uv_idle_stop(idle);
      uv_close(reinterpret_cast<uv_handle_t*>(idle), [](uv_handle_t* h) { delete static_cast<State*>(h->data); });
    });
    return;
  }
}

std::unique_ptr<AdminServer> AdminServer::start(uv_loop_t* loop, Config config, AdminSource& source,
                                                std::string& error) {
  auto* st = new State;
  st->loop = loop;
  st->source = &source;
  st->token = std::move(config.token);
  st->host = config.host;
  // Frees a State whose context never started (nothing of it is closing).
  auto fail = [&](std::string why) {
    error = std::move(why);
    if (st->listener_open) {
      uv_close(reinterpret_cast<uv_handle_t*>(&st->listener), [](uv_handle_t* h) {
        auto* s = static_cast<State*>(h->data);
        h2o_config_dispose(&s->config);
        delete s;
      });
    } else {
      h2o_config_dispose(&st->config);
      delete st;
    }
    return nullptr;
  };

  h2o_config_init(&st->config);
  st->config.server_name = h2o_iovec_init(H2O_STRLIT("nshost"));
  st->config.max_request_entity_size = kMaxRequestBytes;  // a body is never needed: h2o answers 413
  st->config.http1.req_timeout = kIdleTimeoutMs;
  st->config.http1.upgrade_to_http2 = 0;
  st->config.http2.idle_timeout = kIdleTimeoutMs;
  h2o_hostconf_t* hostconf = h2o_config_register_host(&st->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t* pathconf = h2o_config_register_path(hostconf, "/", 0);
  auto* handler = reinterpret_cast<Handler*>(h2o_create_handler(pathconf, sizeof(Handler)));
  handler->super.on_req = on_request;
  handler->state = st;

  sockaddr_storage addr{};
  int rc = config.host.find(':') != std::string::npos
               ? uv_ip6_addr(config.host.c_str(), config.port, reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(config.host.c_str(), config.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) return fail("--admin: '" + config.host + "': " + uv_strerror(rc));
  uv_tcp_init(loop, &st->listener);
  st->listener.data = st;
  st->listener_open = true;
  rc = uv_tcp_bind(&st->listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&st->listener), 64, on_accept);
  if (rc != 0) return fail("--admin: cannot listen on " + config.host + ":" +
                           std::to_string(config.port) + ": " + uv_strerror(rc));
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&st->listener, reinterpret_cast<sockaddr*>(&bound), &len);
  st->port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  h2o_context_init(&st->ctx, loop, &st->config);
  st->context_ready = true;
  st->accept_ctx.ctx = &st->ctx;
  st->accept_ctx.hosts = st->config.hosts;
  uv_check_init(loop, &st->sweep);
  st->sweep.data = st;
  st->sweep_open = true;
  // Started while connections exist; never keeps the loop alive by itself.
  uv_unref(reinterpret_cast<uv_handle_t*>(&st->sweep));

  return std::unique_ptr<AdminServer>(new AdminServer(st));
}

AdminServer::~AdminServer() { state_->close(); }

uint16_t AdminServer::port() const { return state_->port; }

std::string AdminServer::url() const {
  const std::string& host = state_->host;
  return "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(state_->port);
}

const AdminCounters& AdminServer::counters() const { return state_->counters; }

}  // namespace nshost::ops
