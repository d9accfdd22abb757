#include "runtime/cluster/redis_client.hpp"

#include <arpa/inet.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <unordered_set>

#include "runtime/core/log.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost::cluster {

namespace {

bool parse_uint(std::string_view text, uint64_t max, uint64_t& out) {
  if (text.empty() || text.size() > 10) return false;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > max) return false;
  out = value;
  return true;
}

RedisReply copy_reply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::nil;
  }
  return out;
}

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

bool send_argv(redisAsyncContext* ac, redisCallbackFn* fn, void* privdata, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lengths;
  ptrs.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lengths.push_back(a.size());
  }
  return redisAsyncCommandArgv(ac, fn, privdata, static_cast<int>(argv.size()), ptrs.data(), lengths.data()) ==
         REDIS_OK;
}

}  // namespace

bool parse_redis_url(std::string_view url, RedisAddress& out, std::string& error) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) {
    error = "expected redis://HOST:PORT[/DB], got '" + std::string(url) + "'";
    return false;
  }
  std::string_view rest = url.substr(scheme.size());
  std::string_view db_text;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    db_text = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (db_text.empty()) {
      error = "empty database number after '/' in '" + std::string(url) + "'";
      return false;
    }
  }
  std::string_view host = rest;
  std::string_view port_text;
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
  }
  if (host.empty() || host.find_first_of("@[]/ ") != std::string_view::npos) {
    error = "bad host in '" + std::string(url) + "' (expected redis://HOST:PORT[/DB])";
    return false;
  }
  RedisAddress parsed;
  parsed.host = std::string(host);
  uint64_t value = 0;
  if (!port_text.empty() || rest.find(':') != std::string_view::npos) {
    if (!parse_uint(port_text, 65535, value) || value == 0) {
      error = "bad port in '" + std::string(url) + "' (1..65535)";
      return false;
    }
    parsed.port = static_cast<uint16_t>(value);
  }
  if (!db_text.empty()) {
    if (!parse_uint(db_text, 15, value)) {
      error = "bad database number in '" + std::string(url) + "' (0..15)";
      return false;
    }
    parsed.db = static_cast<uint32_t>(value);
  }
  out = std::move(parsed);
  return true;
}

struct RedisClient::Impl {
  // One connection (commands or subscriber). `ac` is ours until hiredis
  // reports it gone; its `data` points here, and is cleared before we free it
  // so callbacks hiredis runs while freeing know to ignore it.
  struct Conn {
    Impl* impl = nullptr;
    bool subscriber = false;
    enum class State { idle, resolving, connecting, handshaking, up } state = State::idle;
    redisAsyncContext* ac = nullptr;
    UvHandle<uv_timer_t> retry_timer;
    UvHandle<uv_timer_t> timeout_timer;
    uv_getaddrinfo_t* resolve_req = nullptr;
    uint32_t backoff_ms = 0;
    size_t awaiting_subscribes = 0;
  };

  // A user command in flight. hiredis calls on_reply exactly once for every
  // queued command (with null while freeing), which deletes it.
  struct Pending {
    Impl* impl = nullptr;
    Callback callback;
    std::vector<std::string> eval_argv;  // set for EVALSHA: resent as EVAL on NOSCRIPT
    bool cancelled = false;
  };

  uv_loop_t* loop;
  RedisAddress address;
  Listener& listener;
  std::string tag;
  Limits limits;
  Conn cmd;
  Conn sub;
  bool started = false;
  bool closing = false;
  bool up = false;
  bool down_reported = false;
  bool ever_down = false;
  uint64_t sent = 0;
  std::unordered_set<Pending*> pending;
  std::map<std::string, MessageHandler, std::less<>> channels;
  std::map<std::string, std::string> scripts;  // source -> sha1

  Impl(uv_loop_t* l, RedisAddress a, Listener& li, std::string t, Limits lim)
      : loop(l), address(std::move(a)), listener(li), tag(std::move(t)), limits(lim) {
    cmd.impl = this;
    sub.impl = this;
    sub.subscriber = true;
  }

  std::string where() const {
    return address.host + ":" + std::to_string(address.port) + "/" + std::to_string(address.db);
  }

  void schedule_connect(Conn& c, uint32_t delay_ms) {
    if (closing) return;
    if (!c.retry_timer && c.retry_timer.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); }) != 0) return;
    c.retry_timer.get()->data = &c;
    uv_timer_start(
        c.retry_timer.get(),
        [](uv_timer_t* t) {
          auto* conn = static_cast<Conn*>(t->data);
          if (conn) conn->impl->connect(*conn);
        },
        delay_ms, 0);
  }

  void start_timeout(Conn& c) {
    if (!c.timeout_timer && c.timeout_timer.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); }) != 0) return;
    c.timeout_timer.get()->data = &c;
    uv_timer_start(
        c.timeout_timer.get(),
        [](uv_timer_t* t) {
          auto* conn = static_cast<Conn*>(t->data);
          if (conn) conn->impl->on_timeout(*conn);
        },
        limits.connect_timeout_ms, 0);
  }

  void stop_timeout(Conn& c) {
    if (c.timeout_timer) uv_timer_stop(c.timeout_timer.get());
  }

  void connect(Conn& c) {
    if (closing || c.state != Conn::State::idle) return;
    start_timeout(c);
    in_addr probe{};
    if (inet_pton(AF_INET, address.host.c_str(), &probe) == 1) {
      connect_to(c, address.host);
      return;
    }
    c.state = Conn::State::resolving;
    auto* req = new uv_getaddrinfo_t{};
    req->data = &c;
    c.resolve_req = req;
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(
        loop, req,
        [](uv_getaddrinfo_t* r, int status, addrinfo* res) {
          auto* conn = static_cast<Conn*>(r->data);
          std::string ip;
          if (status == 0 && res) {
            char text[INET_ADDRSTRLEN] = {};
            uv_ip4_name(reinterpret_cast<sockaddr_in*>(res->ai_addr), text, sizeof text);
            ip = text;
          }
          uv_freeaddrinfo(res);
          delete r;
          if (!conn) return;
          conn->resolve_req = nullptr;
          if (ip.empty()) {
            conn->impl->lost(*conn, "cannot resolve " + conn->impl->address.host + ": " +
                                        (status ? uv_strerror(status) : "no IPv4 address"));
            return;
          }
          conn->impl->connect_to(*conn, ip);
        },
        address.host.c_str(), nullptr, &hints);
    if (rc != 0) {
      delete req;
      c.resolve_req = nullptr;
      lost(c, "cannot resolve " + address.host + ": " + uv_strerror(rc));
    }
  }

  void connect_to(Conn& c, const std::string& ip) {
    redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), address.port);
    if (!ac) {
      lost(c, "connect: out of memory");
      return;
    }
    if (ac->err) {
      std::string why = std::string("connect: ") + ac->errstr;
      redisAsyncFree(ac);
      lost(c, why);
      return;
    }
    if (redisLibuvAttach(ac, loop) != REDIS_OK) {
      redisAsyncFree(ac);
      lost(c, "connect: cannot attach to the loop");
      return;
    }
    ac->data = &c;
    c.ac = ac;
    c.state = Conn::State::connecting;
    redisAsyncSetConnectCallback(ac, &Impl::on_connect);
    redisAsyncSetDisconnectCallback(ac, &Impl::on_disconnect);
  }

  static Conn* conn_of(const redisAsyncContext* ac) { return static_cast<Conn*>(ac->data); }

  static void on_connect(const redisAsyncContext* ac, int status) {
    Conn* c = conn_of(ac);
    if (!c || c->ac != ac) return;
    if (status != REDIS_OK) {
      // hiredis frees the context after this returns.
      std::string why = std::string("connect: ") + ac->errstr;
      c->ac = nullptr;
      c->impl->lost(*c, why);
      return;
    }
    c->impl->handshake(*c);
  }

  static void on_disconnect(const redisAsyncContext* ac, int) {
    Conn* c = conn_of(ac);
    if (!c || c->ac != ac) return;
    std::string why = ac->err ? std::string(ac->errstr) : std::string("connection closed");
    c->ac = nullptr;
    c->impl->lost(*c, why);
  }

  void handshake(Conn& c) {
    c.state = Conn::State::handshaking;
    if (c.subscriber) {
      if (channels.empty()) {
        became_up(c);
        return;
      }
      std::vector<std::string> argv{"SUBSCRIBE"};
      for (const auto& [name, handler] : channels) argv.push_back(name);
      c.awaiting_subscribes = channels.size();
      if (!send_argv(c.ac, &Impl::on_sub_reply, &c, argv)) drop(c, "cannot send SUBSCRIBE");
      return;
    }
    if (!send_argv(c.ac, &Impl::on_select_reply, &c, {"SELECT", std::to_string(address.db)})) {
      drop(c, "cannot send SELECT");
      return;
    }
    for (const auto& [source, sha] : scripts) send_argv(c.ac, nullptr, nullptr, {"SCRIPT", "LOAD", source});
  }

  static void on_select_reply(redisAsyncContext* ac, void* r, void*) {
    Conn* c = conn_of(ac);
    if (!c || c->ac != ac || !r) return;
    auto* reply = static_cast<redisReply*>(r);
    if (reply->type == REDIS_REPLY_ERROR) {
      c->impl->drop(*c, std::string("SELECT ") + std::to_string(c->impl->address.db) + ": " +
                            std::string(reply->str, reply->len));
      return;
    }
    c->impl->became_up(*c);
  }

  static void on_sub_reply(redisAsyncContext* ac, void* r, void*) {
    Conn* c = conn_of(ac);
    if (!c || c->ac != ac || !r) return;
    auto* reply = static_cast<redisReply*>(r);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING)
      return;
    std::string_view kind(reply->element[0]->str, reply->element[0]->len);
    if (kind == "subscribe") {
      if (c->state == Conn::State::handshaking && c->awaiting_subscribes > 0 && --c->awaiting_subscribes == 0)
        c->impl->became_up(*c);
      return;
    }
    if (kind != "message" || reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING)
      return;
    std::string channel(reply->element[1]->str, reply->element[1]->len);
    std::string message(reply->element[2]->str, reply->element[2]->len);
    auto it = c->impl->channels.find(channel);
    if (it == c->impl->channels.end()) return;
    // A copy: the handler may unsubscribe (erase itself) while it runs.
    MessageHandler handler = it->second;
    handler(channel, message);
  }

  // Gives up on a connection that is up at the TCP level but unusable.
  void drop(Conn& c, std::string why) {
    redisAsyncContext* ac = c.ac;
    c.ac = nullptr;
    if (ac) {
      ac->data = nullptr;
      redisAsyncFree(ac);
    }
    lost(c, std::move(why));
  }

  void on_timeout(Conn& c) {
    if (c.state == Conn::State::up || c.state == Conn::State::idle) return;
    if (c.resolve_req) {
      c.resolve_req->data = nullptr;
      uv_cancel(reinterpret_cast<uv_req_t*>(c.resolve_req));
      c.resolve_req = nullptr;
    }
    drop(c, "connect: no answer within " + std::to_string(limits.connect_timeout_ms) + " ms");
  }

  void became_up(Conn& c) {
    stop_timeout(c);
    c.state = Conn::State::up;
    c.backoff_ms = 0;
    if (up || cmd.state != Conn::State::up || sub.state != Conn::State::up) return;
    up = true;
    down_reported = false;
    if (ever_down)
      log_write(LogLevel::info, tag, "cluster: redis back");
    else
      log_write(LogLevel::info, tag, "cluster: redis connected (" + where() + ")");
    listener.on_redis_up();
  }

  void lost(Conn& c, std::string why) {
    stop_timeout(c);
    c.state = Conn::State::idle;
    c.awaiting_subscribes = 0;
    if (closing) return;
    c.backoff_ms = c.backoff_ms == 0 ? limits.reconnect_min_ms : std::min(c.backoff_ms * 2, limits.reconnect_max_ms);
    schedule_connect(c, c.backoff_ms);
    up = false;
    if (down_reported) return;
    down_reported = true;
    ever_down = true;
    std::string line = (c.subscriber ? "subscriber: " : "commands: ") + why;
    log_write(LogLevel::warn, tag, "cluster: redis lost (" + where() + ", " + line + ")");
    listener.on_redis_down(line);
  }

  static void on_reply(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
    if (p->cancelled) return;
    Impl* impl = p->impl;
    impl->pending.erase(p.get());
    auto* reply = static_cast<redisReply*>(r);
    if (!reply) {
      // The connection is going away: no more commands on it.
      if (Conn* c = conn_of(ac); c && c->state == Conn::State::up) {
        c->state = Conn::State::handshaking;
        impl->up = false;
      }
      p->callback(nullptr, impl->closing ? "ECANCELED: closed" : "ECONNRESET: redis lost");
      return;
    }
    if (reply->type == REDIS_REPLY_ERROR && !p->eval_argv.empty() &&
        std::string_view(reply->str, reply->len).substr(0, 8) == "NOSCRIPT") {
      std::string error;
      if (!impl->send(std::move(p->eval_argv), p->callback, {}, &error)) p->callback(nullptr, error);
      return;
    }
    RedisReply copy = copy_reply(reply);
    p->callback(&copy, {});
  }

  // Takes `callback` (moves from it) only when it returns true.
  bool send(std::vector<std::string> argv, Callback& callback, std::vector<std::string> eval_argv,
            std::string* error) {
    auto fail = [&](std::string why) {
      if (error) *error = std::move(why);
      return false;
    };
    if (closing) return fail("ECANCELED: closed");
    if (!up || cmd.state != Conn::State::up || !cmd.ac) return fail("ENOTCONN: redis lost");
    if (pending.size() >= limits.max_pending_commands)
      return fail("ENOBUFS: " + std::to_string(pending.size()) + " redis commands pending (limit " +
                  std::to_string(limits.max_pending_commands) + ")");
    auto* p = new Pending{this, {}, std::move(eval_argv), false};
    if (!send_argv(cmd.ac, &Impl::on_reply, p, argv)) {
      delete p;
      return fail("ENOTCONN: redis lost");
    }
    p->callback = std::move(callback);
    pending.insert(p);
    ++sent;
    return true;
  }

  void close() {
    if (closing) return;
    closing = true;
    up = false;
    std::vector<Pending*> cancelled(pending.begin(), pending.end());
    pending.clear();
    for (auto* p : cancelled) p->cancelled = true;
    for (auto* c : {&cmd, &sub}) {
      c->retry_timer.close();
      c->timeout_timer.close();
      if (c->resolve_req) {
        c->resolve_req->data = nullptr;
        uv_cancel(reinterpret_cast<uv_req_t*>(c->resolve_req));
        c->resolve_req = nullptr;
      }
    }
    // Callbacks first (they may look at the client), then the contexts: hiredis
    // then runs on_reply for each with null, which only deletes the cancelled.
    std::vector<Callback> callbacks;
    callbacks.reserve(cancelled.size());
    for (auto* p : cancelled) callbacks.push_back(std::move(p->callback));
    for (auto& cb : callbacks)
      if (cb) cb(nullptr, "ECANCELED: closed");
    for (auto* c : {&cmd, &sub}) {
      c->state = Conn::State::idle;
      if (redisAsyncContext* ac = c->ac) {
        c->ac = nullptr;
        ac->data = nullptr;
        redisAsyncFree(ac);
      }
    }
  }
};

RedisClient::RedisClient(uv_loop_t* loop, RedisAddress address, Listener& listener, std::string log_tag)
    : RedisClient(loop, std::move(address), listener, std::move(log_tag), Limits{}) {}

RedisClient::RedisClient(uv_loop_t* loop, RedisAddress address, Listener& listener, std::string log_tag,
                         Limits limits)
    : impl_(std::make_unique<Impl>(loop, std::move(address), listener, std::move(log_tag), limits)) {}

RedisClient::~RedisClient() { close(); }

void RedisClient::start() {
  if (impl_->started || impl_->closing) return;
  impl_->started = true;
  // From the loop, so nothing (not even a failure) is reported inside start().
  impl_->schedule_connect(impl_->cmd, 0);
  impl_->schedule_connect(impl_->sub, 0);
}

bool RedisClient::connected() const { return impl_->up; }

bool RedisClient::command(std::vector<std::string> argv, Callback callback, std::string* error) {
  if (argv.empty()) {
    if (error) *error = "EINVAL: empty command";
    return false;
  }
  return impl_->send(std::move(argv), callback, {}, error);
}

bool RedisClient::eval(const RedisScript& script, std::vector<std::string> keys, std::vector<std::string> args,
                       Callback callback, std::string* error) {
  auto& sha = impl_->scripts[script.source];
  if (sha.empty()) sha = sha1_hex(script.source);
  std::vector<std::string> argv{"EVALSHA", sha, std::to_string(keys.size())};
  std::vector<std::string> eval_argv{"EVAL", script.source, std::to_string(keys.size())};
  for (auto& k : keys) {
    argv.push_back(k);
    eval_argv.push_back(std::move(k));
  }
  for (auto& a : args) {
    argv.push_back(a);
    eval_argv.push_back(std::move(a));
  }
  return impl_->send(std::move(argv), callback, std::move(eval_argv), error);
}

void RedisClient::subscribe(std::string channel, MessageHandler handler) {
  if (impl_->closing) return;
  bool fresh = impl_->channels.find(channel) == impl_->channels.end();
  impl_->channels[channel] = std::move(handler);
  auto& sub = impl_->sub;
  if (fresh && sub.state == Impl::Conn::State::up && sub.ac)
    send_argv(sub.ac, &Impl::on_sub_reply, &sub, {"SUBSCRIBE", channel});
}

void RedisClient::unsubscribe(std::string_view channel) {
  auto it = impl_->channels.find(channel);
  if (it == impl_->channels.end()) return;
  impl_->channels.erase(it);
  auto& sub = impl_->sub;
  if (sub.state == Impl::Conn::State::up && sub.ac)
    send_argv(sub.ac, nullptr, nullptr, {"UNSUBSCRIBE", std::string(channel)});
}

void RedisClient::close() {
  if (impl_) impl_->close();
}

uint64_t RedisClient::commands_sent() const { return impl_->sent; }

}  // namespace nshost::cluster
