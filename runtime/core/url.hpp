#pragma once
// nshost:// URLs name a shard: nshost://HOST:PORT (port optional, default 7777).
#include <cstdint>
#include <string>
#include <string_view>

namespace nshost {

struct ShardUrl {
  std::string host;  // hostname or dotted IPv4
  uint16_t port = 7777;
};

// Parses "nshost://host[:port][/]". Returns false and sets `error` to one
// readable line on anything else (other schemes, empty host, bad port).
bool parse_shard_url(std::string_view text, ShardUrl& out, std::string& error);

}  // namespace nshost
