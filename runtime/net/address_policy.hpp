#pragma once
// Where sandboxed net.* may connect (docs/net.md "The sandbox"). A local
// script's policy is open: anything goes. A sandboxed script's (fetched code,
// or --sandbox) allows only the host:port pairs of --allow-net, never a
// listening socket, and never a loopback, link-local, private, multicast or
// unspecified address unless that very address and port is listed. Names are
// checked when given and the addresses they resolve to again before each
// connect, so a DNS answer cannot steer a listed name onto the player's
// network.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nshost {

// Splits and checks "host:port,[v6addr]:port,..." (the --allow-net value).
// Each entry becomes "host:port" (host lower-cased, IPv6 in brackets). Returns
// false with `error` naming the bad entry.
bool parse_allow_net(std::string_view text, std::vector<std::string>& out, std::string& error);

// True for an address fetched code may not reach unless listed: 0/8, 10/8,
// 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16, 224/4, 240/4 (with
// broadcast); ::, ::1, fe80::/10, fec0::/10, fc00::/7, ff00::/8; and an IPv4
// address of those embedded in IPv6 (::ffff:0:0/96, ::/96, 64:ff9b::/96,
// 2002::/16).
bool is_restricted_address(const sockaddr* addr);

class NetPolicy {
 public:
  // Open: a local script's.
  NetPolicy() = default;
  // Sandboxed, allowing `allow` (entries from parse_allow_net; may be empty).
  explicit NetPolicy(const std::vector<std::string>& allow);

  bool open() const { return open_; }
  // Listening sockets: open policy only.
  std::optional<std::string> check_listen() const;
  // Before a connect by name or literal: nullopt when allowed, else the
  // "EACCES: ..." message for the script. `port` is the port to be dialled.
  std::optional<std::string> check_target(std::string_view host, int port) const;
  // Before connecting to one resolved address of `target_host` (already
  // passed check_target): nullopt when allowed, else "EACCES: ...".
  std::optional<std::string> check_address(const sockaddr* addr, std::string_view target_host) const;

 private:
  struct Entry {
    std::string host;  // lower-case name, or the literal as written
    std::optional<std::array<uint8_t, 16>> ip;  // an IP literal, IPv4 as ::ffff:a.b.c.d
    int port = 0;
  };
  bool open_ = true;
  std::vector<Entry> entries_;
};

// The numeric text of `addr` ("127.0.0.1", "::1"); "?" if not IP.
std::string address_text(const sockaddr* addr);

}  // namespace nshost
