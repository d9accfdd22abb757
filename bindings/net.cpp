// net.*: TCP, HTTP(S) and WebSocket(S) for scripts, polled each tick (seed
// 001 "Networking", reference in docs/net.md).
// The NetState behind it is created on first use and owned by a userdata in
// the registry, so it is destroyed with the Lua state.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

#include "bindings/bindings.hpp"
#include "bindings/lua_util.hpp"
#include "runtime/net/net_state.hpp"
#include "runtime/script/script_host.hpp"

namespace nshost {
namespace {

constexpr const char* kStateKey = "nshost.net";

// The state if one exists (nullptr before the first call that needs one).
NetState* existing_state(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kStateKey);  // [ud or nil]
  auto* slot = static_cast<NetState**>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return slot ? *slot : nullptr;
}

NetState& state(lua_State* L) {
  if (NetState* net = existing_state(L)) return *net;
  ScriptHost& script = ScriptHost::from(L);
  HostApi& host = script.host();
  std::function<bool()> role_finished = [&host] { return host.finished(); };
  NetPolicy policy = script.sandboxed() ? NetPolicy(script.sandbox().allow_net) : NetPolicy();
  // The NetState dies in lua_close, before the ScriptHost it charges.
  auto memory = std::make_shared<NetMemory>([&script](size_t bytes) { return script.charge_external(bytes); },
                                            [&script](size_t bytes) { script.release_external(bytes); });
  auto owned = std::make_unique<NetState>(host.loop(), std::move(role_finished), std::move(policy), std::move(memory));
  auto** slot = static_cast<NetState**>(lua_newuserdatauv(L, sizeof(NetState*), 0));  // [ud]
  *slot = nullptr;
  lua_newtable(L);  // [ud, mt]
  lua_pushcfunction(L, [](lua_State* S) -> int {
    auto** p = static_cast<NetState**>(lua_touserdata(S, 1));
    delete *p;
    *p = nullptr;
    return 0;
  });
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);  // [ud]
  *slot = owned.release();
  lua_setfield(L, LUA_REGISTRYINDEX, kStateKey);  // []
  return **slot;
}

int64_t check_handle(lua_State* L, int arg) { return static_cast<int64_t>(luaL_checkinteger(L, arg)); }

// A new handle, or nil, why it was refused and the code ("EACCES", "ENOMEM").
int push_opened(lua_State* L, int64_t handle, const std::string& error) {
  if (handle != 0) {
    lua_pushinteger(L, handle);
    return 1;
  }
  return push_coded_failure(L, error, "EIO");
}

// true, or nil, message, code ("EBADF" for a handle that is not open).
[[maybe_unused]] int push_send_result(lua_State* L, const SendResult& result) {
  switch (result.kind) {
    case SendResult::Kind::unknown: return push_failure(L, "not an open connection", "EBADF");
    case SendResult::Kind::ok: lua_pushboolean(L, 1); return 1;
    case SendResult::Kind::error: return push_coded_failure(L, result.error, "EIO");
  }
  return push_failure(L, "not an open connection", "EBADF");
}

[[maybe_unused]] int push_optional_string(lua_State* L, const std::optional<std::string>& s) {
  if (s) lua_pushlstring(L, s->data(), s->size());
  else lua_pushnil(L);
  return 1;
}

// The strings docs/net.md "Statuses" documents.
const char* status_name(HandleStatus status) {
  switch (status) {
    case HandleStatus::building: return "building";
    case HandleStatus::pending: return "pending";
    case HandleStatus::connecting: return "connecting";
    case HandleStatus::connected: return "connected";
    case HandleStatus::done: return "done";
    case HandleStatus::error: return "error";
    case HandleStatus::closed: return "closed";
  }
  return "?";
}

int net_status(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  NetState* net = existing_state(L);
  std::optional<HandleStatus> status = net ? net->status(h) : std::nullopt;
  if (status) lua_pushstring(L, status_name(*status));
  else lua_pushnil(L);
  return guard.returns(1);
}

int net_poll_event(lua_State* L) {
  StackGuard guard(L);
  NetState* net = existing_state(L);
  std::optional<NetEvent> ev = net ? net->poll_event() : std::nullopt;
  if (!ev) {
    lua_pushnil(L);
    return guard.returns(1);
  }
  lua_createtable(L, 0, 3);  // [evt]
  lua_pushstring(L, net_event_name(ev->type));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, ev->handle);
  lua_setfield(L, -2, "handle");
  switch (ev->type) {
    case NetEvent::Type::accepted:
      lua_pushinteger(L, ev->accepted);
      lua_setfield(L, -2, "data");
      break;
    case NetEvent::Type::data:
    case NetEvent::Type::message:
    case NetEvent::Type::error:
      lua_pushlstring(L, ev->text.data(), ev->text.size());
      lua_setfield(L, -2, "data");
      break;
    default:
      break;
  }
  return guard.returns(1);
}

int net_events(lua_State* L) {
  StackGuard guard(L);
  lua_pushcfunction(L, guarded<net_poll_event>);
  return guard.returns(1);
}

int net_close(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  if (NetState* net = existing_state(L)) net->close(h);
  return guard.returns(0);
}

int net_configure(lua_State* L) {
  StackGuard guard(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  NetState::Config config = state(L).config();
  lua_pushnil(L);
  while (lua_next(L, 1)) {  // [key, value]
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "net.configure: option names must be strings");
    std::string key = lua_tostring(L, -2);
    if (key == "tls_verify") {
      luaL_argexpected(L, lua_isboolean(L, -1), 1, "tls_verify must be a boolean");
      config.tls_verify = lua_toboolean(L, -1);
    } else if (key == "ca_file") {
      if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 0)) config.ca_file.clear();
      else if (lua_type(L, -1) == LUA_TSTRING && ScriptHost::from(L).sandboxed())
        return luaL_error(L, "net.configure: ca_file reads a file, which the sandbox does not allow");
      else if (lua_type(L, -1) == LUA_TSTRING) config.ca_file = lua_tostring(L, -1);
      else return luaL_error(L, "net.configure: ca_file must be a path string");
    } else if (key == "connect_timeout_ms" || key == "request_timeout_ms") {
      int isnum = 0;
      lua_Integer ms = lua_tointegerx(L, -1, &isnum);
      if (!isnum || ms < 1 || ms > 3'600'000)
        return luaL_error(L, "net.configure: %s must be an integer in 1..3600000 (ms)", key.c_str());
      (key == "connect_timeout_ms" ? config.connect_timeout_ms : config.request_timeout_ms) = static_cast<uint32_t>(ms);
    } else {
      return luaL_error(L, "net.configure: unknown option '%s'", key.c_str());
    }
    lua_pop(L, 1);  // [key]
  }
  state(L).config() = config;
  return guard.returns(0);
}

#if NSHOST_WITH_TCP
int net_tcp_connect(lua_State* L) {
  StackGuard guard(L);
  std::string host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  std::string error;
  int64_t h = state(L).tcp_connect(host, static_cast<int>(std::clamp<lua_Integer>(port, -1, 65536)), error);
  return guard.returns(push_opened(L, h, error));
}

int net_tcp_send(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  std::string_view data = check_bytes(L, 2);
  NetState* net = existing_state(L);
  if (!net) return guard.returns(push_send_result(L, {SendResult::Kind::unknown, {}}));
  return guard.returns(push_send_result(L, net->tcp_send(h, data)));
}

int net_tcp_recv(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  NetState* net = existing_state(L);
  return guard.returns(push_optional_string(L, net ? net->tcp_recv(h) : std::nullopt));
}

int net_tcp_listen(lua_State* L) {
  StackGuard guard(L);
  lua_Integer port = luaL_checkinteger(L, 1);
  std::string bind = luaL_optstring(L, 2, "0.0.0.0");
  std::string error;
  int64_t h = state(L).tcp_listen(bind, static_cast<int>(std::clamp<lua_Integer>(port, -1, 65536)), error);
  return guard.returns(push_opened(L, h, error));
}

int net_tcp_accept(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  NetState* net = existing_state(L);
  std::optional<int64_t> client = net ? net->tcp_accept(h) : std::nullopt;
  if (client) lua_pushinteger(L, *client);
  else lua_pushnil(L);
  return guard.returns(1);
}

int net_tcp_port(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  NetState* net = existing_state(L);
  int port = net ? net->tcp_port(h) : 0;
  if (port) lua_pushinteger(L, port);
  else lua_pushnil(L);
  return guard.returns(1);
}
#endif

#if NSHOST_WITH_HTTP
bool is_token_char(unsigned char c) {
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

std::string check_method(lua_State* L, int arg) {
  std::string method = luaL_checkstring(L, arg);
  if (method.empty()) luaL_argerror(L, arg, "empty HTTP method");
  for (char& c : method) {
    if (!is_token_char(static_cast<unsigned char>(c))) luaL_argerror(L, arg, "HTTP method is not a token");
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return method;
}

void check_header(lua_State* L, const std::string& name, std::string_view value) {
  if (name.empty()) luaL_error(L, "empty HTTP header name");
  for (char c : name)
    if (!is_token_char(static_cast<unsigned char>(c))) luaL_error(L, "HTTP header name '%s' is not a token", name.c_str());
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') luaL_error(L, "HTTP header '%s' has a CR, LF or NUL in its value", name.c_str());
}

int net_http_request(lua_State* L) {
  StackGuard guard(L);
  std::string method = check_method(L, 1);
  std::string url = luaL_checkstring(L, 2);
  std::string error;
  int64_t h = state(L).http_request(std::move(method), std::move(url), std::nullopt, error);
  return guard.returns(push_opened(L, h, error));
}

int net_http_request_body(lua_State* L) {
  StackGuard guard(L);
  std::string method = check_method(L, 1);
  std::string url = luaL_checkstring(L, 2);
  std::string body(check_bytes(L, 3));
  std::string error;
  int64_t h = state(L).http_request(std::move(method), std::move(url), std::move(body), error);
  return guard.returns(push_opened(L, h, error));
}

int net_http_set_header(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  std::string name = luaL_checkstring(L, 2);
  std::string value(check_bytes(L, 3));
  check_header(L, name, value);
  if (NetState* net = existing_state(L)) net->http_set_header(h, std::move(name), std::move(value));
  return guard.returns(0);
}

int net_http_set_headers(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  std::vector<std::pair<std::string, std::string>> headers;
  lua_pushnil(L);
  while (lua_next(L, 2)) {  // [key, value]
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
      return luaL_error(L, "net.http_set_headers: the map must be {name = value} with string names and values");
    size_t n = 0;
    const char* v = lua_tolstring(L, -1, &n);  // a number value becomes its text in place; the key stays
    std::string name = lua_tostring(L, -2);
    check_header(L, name, std::string_view(v, n));
    headers.emplace_back(std::move(name), std::string(v, n));
    lua_pop(L, 1);  // [key]
  }
  if (NetState* net = existing_state(L))
    for (auto& [name, value] : headers) net->http_set_header(h, std::move(name), std::move(value));
  return guard.returns(0);
}

int net_http_send(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  if (NetState* net = existing_state(L)) net->http_send(h);
  return guard.returns(0);
}

template <const char* Method>
int http_no_body(lua_State* L) {
  StackGuard guard(L);
  std::string url = luaL_checkstring(L, 1);
  NetState& net = state(L);
  std::string error;
  int64_t h = net.http_request(Method, std::move(url), std::nullopt, error);
  if (h != 0) net.http_send(h);
  return guard.returns(push_opened(L, h, error));
}

template <const char* Method>
int http_with_body(lua_State* L) {
  StackGuard guard(L);
  std::string url = luaL_checkstring(L, 1);
  std::string body(check_bytes(L, 2));
  NetState& net = state(L);
  std::string error;
  int64_t h = net.http_request(Method, std::move(url), std::move(body), error);
  if (h != 0) net.http_send(h);
  return guard.returns(push_opened(L, h, error));
}

constexpr char kGet[] = "GET", kHead[] = "HEAD", kDelete[] = "DELETE", kOptions[] = "OPTIONS", kPost[] = "POST",
               kPut[] = "PUT", kPatch[] = "PATCH";

int net_http_response(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  NetState* net = existing_state(L);
  const HttpResponse* resp = net ? net->http_response(h) : nullptr;
  if (!resp) {
    lua_pushnil(L);
    return guard.returns(1);
  }
  if (!resp->error.empty()) {
    lua_createtable(L, 0, 1);
    lua_pushstring(L, resp->error.c_str());
    lua_setfield(L, -2, "error");
    return guard.returns(1);
  }
  lua_createtable(L, 0, 3);  // [resp]
  lua_pushinteger(L, resp->status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, resp->body.data(), resp->body.size());
  lua_setfield(L, -2, "body");
  lua_createtable(L, 0, static_cast<int>(resp->headers.size()));  // [resp, headers]
  for (const auto& [name, value] : resp->headers) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "headers");  // [resp]
  return guard.returns(1);
}

int net_http_response_header(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  std::string name = luaL_checkstring(L, 2);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  NetState* net = existing_state(L);
  const HttpResponse* resp = net ? net->http_response(h) : nullptr;
  if (!resp || !resp->error.empty()) {
    lua_pushnil(L);
    return guard.returns(1);
  }
  auto it = resp->headers.find(name);
  if (it == resp->headers.end()) lua_pushnil(L);
  else lua_pushlstring(L, it->second.data(), it->second.size());
  return guard.returns(1);
}
#endif

#if NSHOST_WITH_WS
int net_ws_connect(lua_State* L) {
  StackGuard guard(L);
  std::string url = luaL_checkstring(L, 1);
  std::string error;
  int64_t h = state(L).ws_connect(url, error);
  return guard.returns(push_opened(L, h, error));
}

template <bool Binary>
int ws_send(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  std::string_view data = check_bytes(L, 2);
  NetState* net = existing_state(L);
  if (!net) return guard.returns(push_send_result(L, {SendResult::Kind::unknown, {}}));
  return guard.returns(push_send_result(L, net->ws_send(h, data, Binary)));
}

int net_ws_recv(lua_State* L) {
  StackGuard guard(L);
  int64_t h = check_handle(L, 1);
  NetState* net = existing_state(L);
  return guard.returns(push_optional_string(L, net ? net->ws_recv(h) : std::nullopt));
}
#endif

const luaL_Reg shared_functions[] = {
    {"status", guarded<net_status>},
    {"poll_event", guarded<net_poll_event>},
    {"events", guarded<net_events>},
    {"close", guarded<net_close>},
    {"configure", guarded<net_configure>},
    {nullptr, nullptr},
};

#if NSHOST_WITH_TCP
const luaL_Reg tcp_functions[] = {
    {"tcp_connect", guarded<net_tcp_connect>},
    {"tcp_send", guarded<net_tcp_send>},
    {"tcp_recv", guarded<net_tcp_recv>},
    {"tcp_close", guarded<net_close>},
    {"tcp_listen", guarded<net_tcp_listen>},
    {"tcp_accept", guarded<net_tcp_accept>},
    {"tcp_stop", guarded<net_close>},
    {"tcp_port", guarded<net_tcp_port>},
    {nullptr, nullptr},
};
#endif

#if NSHOST_WITH_HTTP
const luaL_Reg http_functions[] = {
    {"http_request", guarded<net_http_request>},
    {"http_request_body", guarded<net_http_request_body>},
    {"http_set_header", guarded<net_http_set_header>},
    {"http_set_headers", guarded<net_http_set_headers>},
    {"http_send", guarded<net_http_send>},
    {"http_get", guarded<http_no_body<kGet>>},
    {"http_head", guarded<http_no_body<kHead>>},
    {"http_delete", guarded<http_no_body<kDelete>>},
    {"http_options", guarded<http_no_body<kOptions>>},
    {"http_post", guarded<http_with_body<kPost>>},
    {"http_put", guarded<http_with_body<kPut>>},
    {"http_patch", guarded<http_with_body<kPatch>>},
    {"http_response", guarded<net_http_response>},
    {"http_response_header", guarded<net_http_response_header>},
    {nullptr, nullptr},
};
#endif

#if NSHOST_WITH_WS
const luaL_Reg ws_functions[] = {
    {"ws_connect", guarded<net_ws_connect>},
    {"ws_send", guarded<ws_send<false>>},
    {"ws_send_binary", guarded<ws_send<true>>},
    {"ws_recv", guarded<net_ws_recv>},
    {"ws_close", guarded<net_close>},
    {nullptr, nullptr},
};
#endif

}  // namespace

void open_net(lua_State* L) {
  luaL_newlib(L, shared_functions);  // [net]
#if NSHOST_WITH_TCP
  luaL_setfuncs(L, tcp_functions, 0);
#endif
#if NSHOST_WITH_HTTP
  luaL_setfuncs(L, http_functions, 0);
#endif
#if NSHOST_WITH_WS
  luaL_setfuncs(L, ws_functions, 0);
#endif
  lua_setglobal(L, "net");
}

}  // namespace nshost
