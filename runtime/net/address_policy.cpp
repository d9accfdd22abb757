#include "runtime/net/address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <charconv>
#include <cstring>

namespace nshost {
namespace {

constexpr size_t kMaxAllowEntries = 64;

using Ip = std::array<uint8_t, 16>;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// An IPv4 or IPv6 literal (no brackets) as 16 bytes, IPv4 mapped.
std::optional<Ip> parse_ip(std::string_view text) {
  std::string s(text);
  Ip ip{};
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    ip[10] = ip[11] = 0xff;
    std::memcpy(ip.data() + 12, &v4, 4);
    return ip;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(ip.data(), &v6, 16);
    return ip;
  }
  return std::nullopt;
}

std::optional<Ip> sockaddr_ip(const sockaddr* addr, int* port) {
  Ip ip{};
  if (addr->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    ip[10] = ip[11] = 0xff;
    std::memcpy(ip.data() + 12, &in->sin_addr, 4);
    if (port) *port = ntohs(in->sin_port);
    return ip;
  }
  if (addr->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    std::memcpy(ip.data(), &in6->sin6_addr, 16);
    if (port) *port = ntohs(in6->sin6_port);
    return ip;
  }
  return std::nullopt;
}

bool restricted_v4(const uint8_t* a) {
  return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
         (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
         a[0] >= 224;
}

bool restricted_ip(const Ip& ip) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  static constexpr uint8_t kZero[12] = {};
  if (std::memcmp(ip.data(), kMapped, 12) == 0 || std::memcmp(ip.data(), kNat64, 12) == 0 ||
      std::memcmp(ip.data(), kZero, 12) == 0)
    return restricted_v4(ip.data() + 12);  // ::/96 covers :: and ::1 (0.0.0.0, 0.0.0.1)
  if (ip[0] == 0x20 && ip[1] == 0x02) return restricted_v4(ip.data() + 2);  // 6to4
  if (ip[0] == 0xff) return true;                                            // multicast
  if ((ip[0] & 0xfe) == 0xfc) return true;                                   // unique local
  if (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) return true;                  // link-local
  if (ip[0] == 0xfe && (ip[1] & 0xc0) == 0xc0) return true;                  // site-local
  return false;
}

// "host:port" or "[v6]:port" -> host (no brackets) and port 1..65535.
bool split_host_port(std::string_view entry, std::string_view& host, int& port) {
  auto colon = entry.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view port_text = entry.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 1 || port > 65535) return false;
  host = entry.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
    return parse_ip(host) && host.find(':') != std::string_view::npos;
  }
  if (host.find(':') != std::string_view::npos) return false;  // IPv6 needs brackets
  if (host.size() > 253) return false;
  for (char c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
  return true;
}

std::string strip_brackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  while (!host.empty() && host.back() == '.') host.remove_suffix(1);  // "example.com." is "example.com"
  return lower(host);
}

std::string host_port(std::string_view host, int port) {
  bool v6 = host.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

}  // namespace

bool parse_allow_net(std::string_view text, std::vector<std::string>& out, std::string& error) {
  std::vector<std::string> entries;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    std::string_view host;
    int port = 0;
    if (!split_host_port(entry, host, port)) {
      error = "'" + std::string(entry) + "' is not host:port or [ipv6]:port with a port 1..65535";
      return false;
    }
    entries.push_back(host_port(strip_brackets(host), port));
    if (entries.size() > kMaxAllowEntries) {
      error = "more than " + std::to_string(kMaxAllowEntries) + " entries";
      return false;
    }
  }
  if (entries.empty()) {
    error = "expected host:port[,host:port...]";
    return false;
  }
  out.insert(out.end(), entries.begin(), entries.end());
  return true;
}

bool is_restricted_address(const sockaddr* addr) {
  auto ip = sockaddr_ip(addr, nullptr);
  return !ip || restricted_ip(*ip);
}

std::string address_text(const sockaddr* addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text, sizeof text);
  else if (addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, text, sizeof text);
  return text;
}

NetPolicy::NetPolicy(const std::vector<std::string>& allow) : open_(false) {
  for (const std::string& text : allow) {
    std::string_view host;
    int port = 0;
    if (!split_host_port(text, host, port)) continue;  // parse_allow_net made them
    Entry entry{strip_brackets(host), parse_ip(strip_brackets(host)), port};
    entries_.push_back(std::move(entry));
  }
}

std::optional<std::string> NetPolicy::check_listen() const {
  if (open_) return std::nullopt;
  return "EACCES: listening sockets are not available in the sandbox (fetched scripts, --sandbox)";
}

std::optional<std::string> NetPolicy::check_target(std::string_view host_text, int port) const {
  if (open_) return std::nullopt;
  if (entries_.empty())
    return "EACCES: net is not available to fetched scripts (sandbox; the player may allow host:port pairs with "
           "--allow-net)";
  std::string host = strip_brackets(host_text);
  std::optional<Ip> ip = parse_ip(host);
  for (const Entry& e : entries_) {
    if (e.port != port) continue;
    if (ip ? (e.ip && *e.ip == *ip) : (!e.ip && e.host == host)) return std::nullopt;
  }
  return "EACCES: " + host_port(host, port) + " is not in the player's --allow-net list (sandbox)";
}

std::optional<std::string> NetPolicy::check_address(const sockaddr* addr, std::string_view target_host) const {
  if (open_) return std::nullopt;
  int port = 0;
  std::optional<Ip> ip = sockaddr_ip(addr, &port);
  if (!ip) return "EACCES: not an IP address (sandbox)";
  if (!restricted_ip(*ip)) return std::nullopt;
  for (const Entry& e : entries_)
    if (e.port == port && e.ip && *e.ip == *ip) return std::nullopt;
  std::string text = address_text(addr);
  return "EACCES: " + host_port(strip_brackets(target_host), port) + " resolved to " + text +
         ", a loopback, private, link-local or multicast address; it is reachable only if " + host_port(text, port) +
         " itself is in --allow-net (sandbox)";
}

}  // namespace nshost
