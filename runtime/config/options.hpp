#pragma once
// Command-line options of the nshost executable.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/log.hpp"
#include "runtime/transport/netsim.hpp"

namespace nshost {

// host: a listen server, the server role and one local client in one process
// (runtime/roles/host_role.hpp); each of its two states still sees its own
// role (server or client) in HostApi::role().
enum class Role { server, client, host };

// The client's reconnect ladder after a dropped link (seed 002 defaults):
// attempt k waits min(base_ms * factor^k, cap_ms) before dialling; it gives up
// after `attempts` attempts or `total_ms` since the link dropped.
struct ReconnectPolicy {
  uint32_t base_ms = 200;
  double factor = 2.0;
  uint32_t cap_ms = 5000;
  uint32_t attempts = 8;  // 0: no reconnect, a dropped link ends the session
  uint32_t total_ms = 60000;
  // The wait before attempt `k` (0-based), ms.
  uint32_t delay_ms(uint32_t k) const;
};

// Limits on what peers and scripts may make the host do (docs/reliability.md).
struct Limits {
  uint32_t max_message_rate = 1000;        // server: messages/s one client may send; over it: kicked (0: off)
  uint32_t max_pending_handshakes = 32;    // server: peers connected but not yet through the hello
  uint32_t max_pending_per_address = 4;    // server: of those, from one IPv4 address
  uint32_t handshake_timeout_ms = 5000;    // server: a peer with no hello by then is dropped
  uint32_t max_handoff_bytes = 64 * 1024;  // server: largest handoff a hello may carry, bytes
  uint32_t link_timeout_ms = 5000;         // both: silence after which ENet declares the link dropped
};
const char* role_name(Role role);

struct Options {
  Role role = Role::server;
  std::string script;                       // path of the entry script; "" for a client started from a URL
  uint16_t port = 7777;                     // server: UDP port to bind (0: any free port)
  std::string bind = "127.0.0.1";           // server: IPv4 address to bind
  std::string connect_url = "nshost://127.0.0.1:7777";  // client: server to join
  uint32_t max_clients = 64;                // server: slots, 1..4095
  uint32_t tick_rate_hz = 30;               // both: tick rate, 1..1000 Hz
  bool headless = false;
  LogLevel log_level = LogLevel::info;
  bool strict = false;                      // exit 1 on the first script error
  uint32_t max_message_bytes = 1u << 20;    // largest send/receive, bytes
  // Shards (docs/shards.md).
  bool sandbox = false;                     // sandbox the local script too (fetched ones always are)
  // Sandboxed scripts' net.* may connect to these "host:port" entries only
  // (--allow-net; runtime/net/address_policy.hpp). Empty: no net at all.
  std::vector<std::string> allow_net;
  uint32_t max_bundle_bytes = 4u << 20;     // largest script bundle served or fetched, bytes
  std::string cache_dir;                    // client: bundle cache; "" = BundleCache::default_dir()
  uint32_t handler_timeout_ms = 1000;  // every Lua state: wall-clock ms per handler, 0 = unlimited
  uint64_t instruction_budget = 0;     // every Lua state: VM instructions per handler, 0 = unlimited
  uint64_t memory_limit_bytes = 256u << 20;  // every Lua state: bytes, 0 = unlimited
  uint32_t bots = 0;                        // client: 0 = one client; N = N bot clients in this process
  uint32_t bots_ramp_per_s = 0;             // client: bot joins started per second (0: two joining at a time)
  bool stats = false;                       // server: one "stats" log line per tick (bench/)
  uint32_t coalesce_ms = 1;                 // server: at most one read pass per this many ms on arrivals (0: every wakeup)
  NetsimConfig netsim;                      // both: --netsim, off by default
  uint32_t resume_grace_ms = 30000;         // server: how long a dropped client's slot is held (0: off)
  ReconnectPolicy reconnect;                // client: --reconnect
  uint32_t resume_buffer_bytes = 1u << 20;  // both: unacknowledged + queued reliable bytes held per session
  Limits limits;
  // Rooms (docs/rooms.md). Server: a hello must carry this project id (reject
  // "project_id"); client: sent in the hello. "": no check / not sent.
  std::string project_id;
  std::string codecs = "msgpack,json";      // client: the codecs its hello offers (--codec offers one)
  std::string auth_token;                   // client: --auth-token, for server.auth; "" = absent
  uint64_t room_memory_limit_bytes = 64u << 20;  // server: bytes per room's Lua state, 0 = unlimited
  uint32_t max_rooms = 10000;                     // server: rooms open at once
  uint32_t state_ack_timeout_ms = 10000;    // server: a client silent this long gets no state patches (docs/state.md)
  // The cluster (docs/cluster.md). Server only: "" runs alone.
  std::string cluster_url;                  // --cluster=redis://HOST:PORT[/DB]
  uint32_t cluster_heartbeat_ms = 1000;     // --cluster-heartbeat-ms: directory heartbeat; keys live 3 of them
};

constexpr uint32_t kMaxBots = 10000;

constexpr uint32_t kMaxClientsLimit = 4095;  // ENet's peer id is 12 bits
constexpr uint32_t kMinTickRateHz = 1;
constexpr uint32_t kMaxTickRateHz = 1000;

// What the command line asks for.
struct ParsedArgs {
  enum class Action { run, help, version, error, check } action = Action::run;
  Options options;
  std::string error;  // one readable line when action == error
  std::vector<std::string> check_files;  // `nshost check FILE...`: the files, in order
};

// Parses argv (argv[0] is skipped). `env_role` is $NSHOST_ROLE or nullptr; a
// --role flag wins over it. Never throws.
ParsedArgs parse_args(const std::vector<std::string>& args, const char* env_role);

// The --help text.
std::string usage_text();

}  // namespace nshost
