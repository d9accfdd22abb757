// net.http_*: one libcurl transfer per request, all on one curl multi
// handle driven by the loop. Compiled only with NSHOST_WITH_HTTP.
#include <curl/curl.h>

#include "runtime/net/curl_common.hpp"
#include "runtime/net/curl_multi.hpp"
#include "runtime/net/net_handles.hpp"
#include "runtime/net/net_state.hpp"

namespace nshost {

using net_detail::lower;
using net_detail::mib;
using net_detail::over_memory;

struct NetState::HttpRequest : Handle {
  explicit HttpRequest(NetState& n) : Handle(n, Kind::http, HandleStatus::building) {}
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
  if (!h || h->kind != Handle::Kind::http || h->status != HandleStatus::building) return;
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
  if (!h || h->kind != Handle::Kind::http || h->status != HandleStatus::building) return;
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
  req->status = HandleStatus::pending;
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
    finish(*req, HandleStatus::done);
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

}  // namespace nshost
