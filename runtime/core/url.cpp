#include "runtime/core/url.hpp"

#include <charconv>

namespace nshost {

bool parse_shard_url(std::string_view text, ShardUrl& out, std::string& error) {
  constexpr std::string_view scheme = "nshost://";
  if (text.substr(0, scheme.size()) != scheme) {
    error = "'" + std::string(text) + "' is not an nshost:// URL";
    return false;
  }
  std::string_view rest = text.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos || rest.find('@') != std::string_view::npos) {
    error = "'" + std::string(text) + "': expected nshost://HOST:PORT";
    return false;
  }
  std::string_view host = rest;
  uint16_t port = 7777;
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    std::string_view port_text = rest.substr(colon + 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      error = "'" + std::string(text) + "': bad port '" + std::string(port_text) + "'";
      return false;
    }
    port = static_cast<uint16_t>(value);
  }
  if (host.empty()) {
    error = "'" + std::string(text) + "': missing host";
    return false;
  }
  out.host = std::string(host);
  out.port = port;
  return true;
}

}  // namespace nshost
