#pragma once
// Private to runtime/net: what http.cpp and ws.cpp share about libcurl —
// error messages in the "ECODE: message" form, TLS and timeout options from
// NetState::Config, URL targets, and the address-policy gate on every connect.
// Compiled when NSHOST_WITH_HTTP or NSHOST_WITH_WS is on.
#include <curl/curl.h>

#include <string>

#include "runtime/net/address_policy.hpp"
#include "runtime/net/net_state.hpp"

namespace nshost {

// "ECODE: detail" for a curl result; detail is `errbuf` when it holds text
// (may be nullptr), else curl's own description.
std::string curl_message(CURLcode rc, const char* errbuf);

// Sets verification, the CA file, the connect timeout and signal-free
// operation on `easy` from `config`.
void apply_tls(CURL* easy, const NetState::Config& config);

// Host and port (the scheme's default if none) of an http(s) URL; false if
// it does not parse.
bool url_target(const std::string& url, std::string& host, int& port);

// A sandboxed transfer's connects: every address curl is about to dial is
// checked against the policy (a listed name may resolve anywhere), and
// neither proxies nor redirects can take it elsewhere. Lives as long as the
// transfer it is applied to.
struct CurlGate {
  const NetPolicy* policy = nullptr;
  std::string host;
  std::string refused;  // the first refusal, reported instead of curl's error

  // Nothing to do for an open policy; `net_policy` must outlive the transfer.
  void apply(CURL* easy, const NetPolicy& net_policy, std::string target_host);

 private:
  static curl_socket_t open_socket(void* clientp, curlsocktype, curl_sockaddr* address);
};

}  // namespace nshost
