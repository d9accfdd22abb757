#include "runtime/net/curl_common.hpp"

#include <cstdlib>

#include <sys/socket.h>

namespace nshost {

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

}  // namespace

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

curl_socket_t CurlGate::open_socket(void* clientp, curlsocktype, curl_sockaddr* address) {
  auto* gate = static_cast<CurlGate*>(clientp);
  if (auto refused = gate->policy->check_address(&address->addr, gate->host)) {
    if (gate->refused.empty()) gate->refused = *refused;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

void CurlGate::apply(CURL* easy, const NetPolicy& net_policy, std::string target_host) {
  if (net_policy.open()) return;
  policy = &net_policy;
  host = std::move(target_host);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &CurlGate::open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
}

}  // namespace nshost
