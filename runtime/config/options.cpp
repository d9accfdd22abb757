#include "runtime/config/options.hpp"

#include "runtime/cluster/redis_client.hpp"
#include "runtime/net/address_policy.hpp"
#include "runtime/transport/wire.hpp"

#include <charconv>
#include <cmath>
#include <optional>

namespace nshost {

const char* role_name(Role role) {
  switch (role) {
    case Role::server:
      return "server";
    case Role::client:
      return "client";
    case Role::host:
      return "host";
  }
  return "?";
}

namespace {

std::optional<uint64_t> parse_uint(std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

bool parse_role(std::string_view text, Role& out) {
  if (text == "server") out = Role::server;
  else if (text == "client") out = Role::client;
  else if (text == "host") out = Role::host;
  else return false;
  return true;
}

// "base_ms,factor,cap_ms,attempts,total_ms" or "off".
bool parse_reconnect(std::string_view text, ReconnectPolicy& out) {
  if (text == "off") {
    out.attempts = 0;
    return true;
  }
  std::string_view parts[5];
  for (int i = 0; i < 5; ++i) {
    size_t comma = text.find(',');
    if ((comma == std::string_view::npos) != (i == 4)) return false;
    parts[i] = text.substr(0, comma);
    if (comma != std::string_view::npos) text.remove_prefix(comma + 1);
  }
  ReconnectPolicy p;
  auto base = parse_uint(parts[0]), cap = parse_uint(parts[2]), attempts = parse_uint(parts[3]),
       total = parse_uint(parts[4]);
  double factor = 0;
  auto [ptr, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), factor);
  if (!base || !cap || !attempts || !total || ec != std::errc() || ptr != parts[1].data() + parts[1].size())
    return false;
  if (*base > 600000 || *cap > 600000 || *attempts > 1000 || *total > 3600000 || !(factor >= 1.0 && factor <= 16.0))
    return false;
  p.base_ms = static_cast<uint32_t>(*base);
  p.factor = factor;
  p.cap_ms = static_cast<uint32_t>(*cap);
  p.attempts = static_cast<uint32_t>(*attempts);
  p.total_ms = static_cast<uint32_t>(*total);
  out = p;
  return true;
}

uint64_t wire_max_handoff_bytes() { return wire::kMaxHandoffBytes; }

}  // namespace

uint32_t ReconnectPolicy::delay_ms(uint32_t k) const {
  double d = base_ms * std::pow(factor, static_cast<double>(std::min<uint32_t>(k, 64)));
  return static_cast<uint32_t>(std::min<double>(d, cap_ms));
}

std::string usage_text() {
  return
      "usage: nshost --role=server|client|host [options] SCRIPT\n"
      "       nshost --role=client [options] nshost://HOST:PORT   (runs the script the server serves)\n"
      "       nshost check SCRIPT...   (lint: load each script as the roles would, print file:line findings)\n"
      "\n"
      "Runs a Lua game script as an ENet game server or client.\n"
      "\n"
      "  check SCRIPT...          report syntax errors, errors of the top level, functions on\n"
      "                           server/client/room that are not handlers nshost calls, and\n"
      "                           globals a handler assigns but the top level never declares;\n"
      "                           exit 0 clean, 1 on any finding, 2 on bad usage\n"
      "  --role=server|client|host  role (or $NSHOST_ROLE); host: a listen server, the server\n"
      "                           and one local client of SCRIPT in one process (takes the\n"
      "                           server's options and --headless, --codec, --auth-token)\n"
      "  --port=N                 server UDP port (default 7777; 0 picks a free one)\n"
      "  --bind=ADDR              server IPv4 address (default 127.0.0.1)\n"
      "  --connect=URL            client: server to join (default nshost://127.0.0.1:7777)\n"
      "  --max-clients=N          server slots, 1..4095 (default 64)\n"
      "  --tick-rate=HZ           tick rate, 1..1000 Hz (default 30)\n"
      "  --max-message-size=BYTES largest message sent or received (default 1048576)\n"
      "  --netsim=L,J,LOSS,DUP,REORDER[,SEED]\n"
      "                           shape every datagram: latency and jitter in ms, loss,\n"
      "                           duplication and reordering as fractions or percentages\n"
      "  --resume-grace=MS        server: hold a dropped client's slot this long (default 30000; 0 off)\n"
      "  --resume-buffer-size=BYTES  both: reliable bytes kept per session for replay after a resume\n"
      "                           (unacknowledged plus sent while the link is down; default 1048576)\n"
      "  --reconnect=BASE_MS,FACTOR,CAP_MS,ATTEMPTS,TOTAL_MS|off\n"
      "                           client: reconnect ladder (default 200,2,5000,8,60000)\n"
      "  --link-timeout=MS        silence before a link counts as dropped (default 5000)\n"
      "  --max-message-rate=N     server: messages/s per client before a kick (default 1000; 0 off)\n"
      "  --coalesce=MS            server: read arriving datagrams at most once per MS ms,\n"
      "                           many per pass (default 1; 0: on every wakeup)\n"
      "  --max-pending-handshakes=N  server: peers not yet through the hello (default 32)\n"
      "  --max-pending-per-address=N  server: of those, from one IP address (default 4)\n"
      "  --handshake-timeout=MS   server: drop a peer with no hello by then (default 5000)\n"
      "  --max-handoff-size=BYTES server: largest handoff in a hello (default 65536)\n"
      "  --codec=msgpack|json     client: offer only this rooms codec (default: msgpack,json)\n"
      "  --auth-token=TOKEN       client: the token its hello carries for server.auth\n"
      "  --headless               no window or input (sys.is_headless() is true)\n"
      "  --bots=N                 client: run N independent bot clients (one Lua state\n"
      "                           each, one ENet peer each) in this process, 1..10000\n"
      "  --bots-ramp=PER_S        client: start PER_S bot joins per second (default 0:\n"
      "                           two joining at a time, the next as one joins)\n"
      "  --stats                  server: log one line per tick with its duration,\n"
      "                           lateness and bytes sent (used by bench/)\n"
      "  --log-level=LEVEL        debug|info|warn|error (default info)\n"
      "  --strict                 exit 1 on the first script error\n"
      "  --sandbox                run the local script in the sandbox (fetched scripts always are)\n"
      "  --allow-net=HOST:PORT[,HOST:PORT...]\n"
      "                           let sandboxed (fetched) scripts connect to these, and only\n"
      "                           these, with net.* (default: no net); a loopback or private\n"
      "                           address must be listed as itself, e.g. 127.0.0.1:8080\n"
      "  --max-bundle-size=BYTES  largest script bundle served or fetched (default 4194304)\n"
      "  --cache-dir=DIR          client: bundle cache (default $XDG_CACHE_HOME/nshost/bundles)\n"
      "  --handler-timeout=MS     wall-clock ms one Lua handler call may run, 0 = no limit\n"
      "                           (default 1000)\n"
      "  --instruction-budget=N   Lua instructions per handler call, 0 = no limit (default 0;\n"
      "                           deterministic, but slows every Lua instruction)\n"
      "  --memory-limit=BYTES     bytes per Lua state, 0 = no limit (default 268435456)\n"
      "  --project-id=ID          server: refuse a hello with another project id (rooms);\n"
      "                           client: the project id its hello carries (default: none)\n"
      "  --room-memory-limit=BYTES  server: bytes per room's Lua state, 0 = no limit\n"
      "  --max-rooms=N            server: rooms open at once (default 10000)\n"
      "  --cluster=redis://HOST:PORT[/DB]  server: share rooms and matchmaking with the other servers\n"
      "                           on this Redis (docs/cluster.md)\n"
      "  --cluster-heartbeat-ms=MS  server: directory heartbeat (default 1000; 50..60000)\n"
      "                           (default 67108864); a room past it is disposed (\"memory\")\n"
      "  --state-ack-timeout=MS   server: a room client that leaves a state frame unacked for MS ms\n"
      "                           gets no more patches, then a snapshot when it acks (default 10000)\n"
      "  --version                print the version and exit\n"
      "  --help                   print this text and exit\n"
      "\n"
      "Exit codes: 0 clean stop, 1 script error, 2 usage error, 3 a Lua handler the timeout could not stop,\n"
      "128+N a stop by signal N (SIGTERM: 143) that could not finish within 2 s.\n";
}

ParsedArgs parse_args(const std::vector<std::string>& args, const char* env_role) {
  ParsedArgs out;
  Options& o = out.options;
  bool have_role = false;
  bool have_connect = false;
  const char* client_only = nullptr;  // a --role=client flag given (for --role=host's check)
  bool have_heartbeat = false;
  auto fail = [&](std::string message) {
    out.action = ParsedArgs::Action::error;
    out.error = std::move(message);
    return out;
  };
  if (args.size() > 1 && args[1] == "check") {
    bool files_only = false;
    for (size_t i = 2; i < args.size(); ++i) {
      if (!files_only && args[i] == "--help") {
        out.action = ParsedArgs::Action::help;
        return out;
      }
      if (!files_only && args[i] == "--") {
        files_only = true;
        continue;
      }
      if (!files_only && args[i].size() > 1 && args[i][0] == '-')
        return fail("check: unknown option '" + args[i] + "' (usage: nshost check SCRIPT...)");
      out.check_files.push_back(args[i]);
    }
    if (out.check_files.empty()) return fail("check: no script given (usage: nshost check SCRIPT...)");
    out.action = ParsedArgs::Action::check;
    return out;
  }
  if (env_role && *env_role) {
    if (!parse_role(env_role, o.role))
      return fail(std::string("NSHOST_ROLE='") + env_role + "' is not server, client or host");
    have_role = true;
  }
  bool options_done = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (arg.size() > 1 && arg[0] == '-' && !options_done)
        return fail("unknown option '" + arg + "' (see --help)");
      if (!o.script.empty()) return fail("more than one script given: '" + o.script + "' and '" + arg + "'");
      o.script = arg;
      continue;
    }
    if (arg == "--") { options_done = true; continue; }
    std::string_view body(arg);
    body.remove_prefix(2);
    std::string_view name = body, value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    auto need_value = [&]() -> bool { return has_value; };
    auto flag_error = [&](const std::string& why) { return fail("--" + std::string(name) + ": " + why); };
    auto uint_in = [&](uint64_t lo, uint64_t hi, auto& field) -> bool {
      auto v = parse_uint(value);
      if (!v || *v < lo || *v > hi) return false;
      field = static_cast<std::remove_reference_t<decltype(field)>>(*v);
      return true;
    };
    if (name == "help" && !has_value) { out.action = ParsedArgs::Action::help; return out; }
    if (name == "version" && !has_value) { out.action = ParsedArgs::Action::version; return out; }
    if (name == "headless" && !has_value) { o.headless = true; continue; }
    if (name == "strict" && !has_value) { o.strict = true; continue; }
    if (name == "sandbox" && !has_value) { o.sandbox = true; continue; }
    if (name == "stats" && !has_value) { o.stats = true; continue; }
    if (name == "role") {
      if (!need_value() || !parse_role(value, o.role)) return flag_error("expected server, client or host");
      have_role = true;
    } else if (name == "port") {
      if (!need_value() || !uint_in(0, 65535, o.port)) return flag_error("expected a port number 0..65535");
    } else if (name == "bind") {
      if (!need_value() || value.empty()) return flag_error("expected an IPv4 address");
      o.bind = value;
    } else if (name == "connect") {
      if (!need_value() || value.empty()) return flag_error("expected a URL like nshost://127.0.0.1:7777");
      o.connect_url = value;
      have_connect = true;
      client_only = "--connect";
    } else if (name == "max-clients") {
      if (!need_value() || !uint_in(1, kMaxClientsLimit, o.max_clients)) return flag_error("expected 1.." + std::to_string(kMaxClientsLimit));
    } else if (name == "tick-rate") {
      if (!need_value() || !uint_in(kMinTickRateHz, kMaxTickRateHz, o.tick_rate_hz))
        return flag_error("expected " + std::to_string(kMinTickRateHz) + ".." + std::to_string(kMaxTickRateHz) + " (Hz)");
    } else if (name == "max-message-size") {
      if (!need_value() || !uint_in(64, 64u << 20, o.max_message_bytes))
        return flag_error("expected 64..67108864 (bytes)");
    } else if (name == "max-bundle-size") {
      if (!need_value() || !uint_in(1024, 64u << 20, o.max_bundle_bytes))
        return flag_error("expected 1024..67108864 (bytes)");
    } else if (name == "allow-net") {
      std::string why;
      if (!need_value() || !parse_allow_net(value, o.allow_net, why))
        return flag_error(why.empty() ? "expected host:port" : why);
    } else if (name == "cache-dir") {
      if (!need_value() || value.empty()) return flag_error("expected a directory");
      o.cache_dir = value;
      client_only = "--cache-dir";
    } else if (name == "handler-timeout") {
      if (!need_value() || !uint_in(0, 3'600'000, o.handler_timeout_ms))
        return flag_error("expected 0..3600000 (ms; 0: no limit)");
    } else if (name == "instruction-budget") {
      if (!need_value() || !uint_in(0, uint64_t{1} << 48, o.instruction_budget))
        return flag_error("expected a number of instructions (0: no limit)");
    } else if (name == "memory-limit") {
      if (!need_value() || !uint_in(0, uint64_t{1} << 40, o.memory_limit_bytes) ||
          (o.memory_limit_bytes != 0 && o.memory_limit_bytes < (1u << 20)))
        return flag_error("expected 0 (no limit) or at least 1048576 (bytes)");
    } else if (name == "project-id") {
      if (!need_value() || value.empty() || value.size() > wire::kMaxProjectIdBytes)
        return flag_error("expected 1.." + std::to_string(wire::kMaxProjectIdBytes) + " bytes");
      o.project_id = value;
    } else if (name == "room-memory-limit") {
      if (!need_value() || !uint_in(0, uint64_t{1} << 40, o.room_memory_limit_bytes) ||
          (o.room_memory_limit_bytes != 0 && o.room_memory_limit_bytes < (1u << 20)))
        return flag_error("expected 0 (no limit) or at least 1048576 (bytes)");
    } else if (name == "max-rooms") {
      if (!need_value() || !uint_in(1, 1'000'000, o.max_rooms)) return flag_error("expected 1..1000000");
    } else if (name == "state-ack-timeout") {
      if (!need_value() || !uint_in(100, 3'600'000, o.state_ack_timeout_ms))
        return flag_error("expected 100..3600000 (ms)");
    } else if (name == "cluster") {
      cluster::RedisAddress address;
      std::string why;
      if (!need_value() || !cluster::parse_redis_url(value, address, why))
        return flag_error(why.empty() ? "expected redis://HOST:PORT[/DB]" : why);
      o.cluster_url = value;
    } else if (name == "cluster-heartbeat-ms") {
      if (!need_value() || !uint_in(50, 60'000, o.cluster_heartbeat_ms)) return flag_error("expected 50..60000 (ms)");
      have_heartbeat = true;
    } else if (name == "bots") {
      if (!need_value() || !uint_in(1, kMaxBots, o.bots)) return flag_error("expected 1.." + std::to_string(kMaxBots) + " (bot clients)");
    } else if (name == "bots-ramp") {
      if (!need_value() || !uint_in(0, 100000, o.bots_ramp_per_s))
        return flag_error("expected 0..100000 (joins per second; 0: all at once)");
    } else if (name == "netsim") {
      std::string why;
      if (!need_value() || !parse_netsim(value, o.netsim, why)) return flag_error(why.empty() ? "expected a value" : why);
    } else if (name == "resume-grace") {
      if (!need_value() || !uint_in(0, 3'600'000, o.resume_grace_ms)) return flag_error("expected 0..3600000 (ms)");
    } else if (name == "resume-buffer-size") {
      if (!need_value() || !uint_in(0, 1u << 30, o.resume_buffer_bytes))
        return flag_error("expected 0..1073741824 (bytes)");
    } else if (name == "reconnect") {
      if (!need_value() || !parse_reconnect(value, o.reconnect))
        return flag_error("expected BASE_MS,FACTOR,CAP_MS,ATTEMPTS,TOTAL_MS (e.g. 200,2,5000,8,60000) or off");
      client_only = "--reconnect";
    } else if (name == "link-timeout") {
      if (!need_value() || !uint_in(100, 600'000, o.limits.link_timeout_ms)) return flag_error("expected 100..600000 (ms)");
    } else if (name == "coalesce") {
      if (!need_value() || !uint_in(0, 100, o.coalesce_ms)) return flag_error("expected 0..100 (ms)");
    } else if (name == "max-message-rate") {
      if (!need_value() || !uint_in(0, 10'000'000, o.limits.max_message_rate))
        return flag_error("expected 0..10000000 (messages/s)");
    } else if (name == "max-pending-handshakes") {
      if (!need_value() || !uint_in(1, 4000, o.limits.max_pending_handshakes)) return flag_error("expected 1..4000");
    } else if (name == "max-pending-per-address") {
      if (!need_value() || !uint_in(1, 4000, o.limits.max_pending_per_address)) return flag_error("expected 1..4000");
    } else if (name == "handshake-timeout") {
      if (!need_value() || !uint_in(100, 600'000, o.limits.handshake_timeout_ms))
        return flag_error("expected 100..600000 (ms)");
    } else if (name == "max-handoff-size") {
      if (!need_value() || !uint_in(0, wire_max_handoff_bytes(), o.limits.max_handoff_bytes))
        return flag_error("expected 0.." + std::to_string(wire_max_handoff_bytes()) + " (bytes)");
    } else if (name == "codec") {
      if (!need_value() || (value != "msgpack" && value != "json")) return flag_error("expected msgpack or json");
      o.codecs = value;
    } else if (name == "auth-token") {
      if (!need_value() || value.empty() || value.size() > wire::kMaxAuthTokenBytes)
        return flag_error("expected 1.." + std::to_string(wire::kMaxAuthTokenBytes) + " bytes");
      o.auth_token = value;
    } else if (name == "log-level") {
      if (!need_value() || !parse_log_level(value, o.log_level))
        return flag_error("expected debug, info, warn or error");
    } else {
      return fail("unknown option '" + arg + "' (see --help)");
    }
  }
  if (!have_role)
    return fail("no role given: pass --role=server, --role=client or --role=host (or set NSHOST_ROLE)");
  if (!o.cluster_url.empty() && o.role != Role::server)
    return fail("--cluster is a --role=server option (clients find the cluster through any of its servers)");
  if (have_heartbeat && o.cluster_url.empty()) return fail("--cluster-heartbeat-ms needs --cluster");
  if (o.role == Role::host) {
    // The local client joins in-process and runs the host's own script.
    if (o.bots > 0 || o.bots_ramp_per_s > 0)
      return fail("--bots and --bots-ramp are client options; a listen server runs one local client");
    if (client_only)
      return fail(std::string(client_only) +
                  " is a --role=client option; a listen server's local client joins in-process");
  }
  if (o.script.rfind("nshost://", 0) == 0) {
    if (o.role != Role::client)
      return fail(std::string("a ") + (o.role == Role::host ? "listen server" : "server") +
                  " runs a script, not a URL ('" + o.script + "')");
    if (have_connect) return fail("give the server either as --connect or as the URL argument, not both");
    o.connect_url = o.script;
    o.script.clear();
    return out;
  }
  if (o.script.empty()) return fail("no script given (see --help)");
  if (o.role == Role::server && (o.bots > 0 || o.bots_ramp_per_s > 0))
    return fail("--bots and --bots-ramp are client options (pass --role=client)");
  return out;
}

}  // namespace nshost
