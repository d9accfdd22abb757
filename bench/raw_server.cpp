// The raw floor for bench workload 1 (relay): a plain C++ ENet server doing
// the relay's work with no Lua and no libuv, the way one would write it by
// hand: an enet_host_service loop that waits until the next tick deadline,
// and a tick that builds one snapshot and sends it with enet_host_broadcast.
// It speaks nshost's wire protocol (hello -> welcome on channel 0, data on
// channels 1 and 2; runtime/transport/wire.hpp), so the same nshost bots drive it.
//
//   nshost_raw_server [--port=N] [--max-clients=N] [--tick-rate=HZ] [--stats]
//
// Prints "listening on 127.0.0.1:PORT" on stderr; with --stats one line per
// tick in the same format as `nshost --role=server --stats`. SIGINT/SIGTERM
// stop it.
#include <enet/enet.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/transport/wire.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
int64_t now_ns() { return clock_ns(CLOCK_MONOTONIC); }

struct Player {
  bool live = false;
  int16_t x = 0, y = 0;
};

void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}

bool flag_value(const char* arg, const char* name, long& out) {
  size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  out = std::strtol(arg + n + 1, nullptr, 10);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0, max_clients = 512, tick_rate = 30;
  bool stats = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--stats") == 0) stats = true;
    else if (!flag_value(argv[i], "--port", port) && !flag_value(argv[i], "--max-clients", max_clients) &&
             !flag_value(argv[i], "--tick-rate", tick_rate)) {
      std::fprintf(stderr, "usage: nshost_raw_server [--port=N] [--max-clients=N] [--tick-rate=HZ] [--stats]\n");
      return 2;
    }
  }
  if (max_clients < 1 || max_clients > 4000 || tick_rate < 1 || tick_rate > 1000 || port < 0 || port > 65535) {
    std::fprintf(stderr, "nshost_raw_server: flag out of range\n");
    return 2;
  }
  if (enet_initialize() != 0) return 1;
  ENetAddress address{};
  enet_address_set_host_ip(&address, "127.0.0.1");
  address.port = static_cast<uint16_t>(port);
  ENetHost* host = enet_host_create(&address, static_cast<size_t>(max_clients), nshost::wire::kChannelCount, 0, 0);
  if (!host) {
    std::fprintf(stderr, "nshost_raw_server: cannot bind UDP port %ld\n", port);
    return 1;
  }
  ENetAddress bound{};
  enet_socket_get_address(host->socket, &bound);
  std::fprintf(stderr, "listening on 127.0.0.1:%u\n", bound.port);
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });

  std::vector<Player> players(host->peerCount);
  std::vector<uint8_t> snapshot;
  const int64_t period_ns = 1'000'000'000 / tick_rate;
  const int64_t anchor_ns = now_ns();
  uint64_t k = 0, tick_num = 0;

  while (!g_stop) {
    int64_t deadline = anchor_ns + static_cast<int64_t>(k) * period_ns;
    int64_t wait_ns = deadline - now_ns();
    ENetEvent event;
    int rc = enet_host_service(host, &event, wait_ns > 0 ? static_cast<enet_uint32>((wait_ns + 999'999) / 1'000'000) : 0);
    while (rc > 0) {
      size_t index = static_cast<size_t>(event.peer - host->peers);
      if (event.type == ENET_EVENT_TYPE_RECEIVE) {
        std::string_view bytes(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength);
        if (event.channelID == nshost::wire::kChannelControl) {
          nshost::wire::Hello hello;
          std::string error;
          if (!players[index].live && nshost::wire::decode_hello(bytes, hello, error) &&
              hello.protocol_version == nshost::wire::kProtocolVersion) {
            nshost::wire::Welcome welcome;
            welcome.slot = static_cast<uint16_t>(index);
            welcome.max_clients = static_cast<uint16_t>(max_clients);
            welcome.tick_rate_hz = static_cast<uint16_t>(tick_rate);
            std::string reply = nshost::wire::encode_welcome(welcome);
            enet_peer_send(event.peer, nshost::wire::kChannelControl,
                           enet_packet_create(reply.data(), reply.size(), ENET_PACKET_FLAG_RELIABLE));
            players[index] = Player{true, 0, 0};
            // As nshost's server does: no ENet throttle on unreliable snapshots.
            enet_peer_throttle_configure(event.peer, ENET_PEER_PACKET_THROTTLE_INTERVAL,
                                         ENET_PEER_PACKET_THROTTLE_ACCELERATION, 0);
          }
        } else if (event.channelID == nshost::wire::kChannelReliable) {
          enet_peer_send(event.peer, nshost::wire::kChannelReliable,
                         enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
        } else if (bytes.size() == 4 && players[index].live) {
          const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
          players[index].x = static_cast<int16_t>(p[0] | (p[1] << 8));
          players[index].y = static_cast<int16_t>(p[2] | (p[3] << 8));
        }
        enet_packet_destroy(event.packet);
      } else if (event.type == ENET_EVENT_TYPE_DISCONNECT) {
        players[index] = Player{};
      }
      rc = enet_host_check_events(host, &event);
    }
    int64_t start = now_ns();
    if (start < deadline) continue;
    int64_t cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    // Missed deadlines are skipped, not burst, as in nshost's TickScheduler.
    int64_t lateness = start - deadline;
    k += 1 + static_cast<uint64_t>(lateness / period_ns);
    snapshot.clear();
    uint32_t t32 = static_cast<uint32_t>(tick_num);
    for (int b = 0; b < 4; ++b) snapshot.push_back(static_cast<uint8_t>(t32 >> (8 * b)));
    put_u16(snapshot, 0);
    uint16_t count = 0;
    for (size_t i = 0; i < players.size(); ++i) {
      if (!players[i].live) continue;
      put_u16(snapshot, static_cast<uint16_t>(i));
      put_u16(snapshot, static_cast<uint16_t>(players[i].x));
      put_u16(snapshot, static_cast<uint16_t>(players[i].y));
      ++count;
    }
    snapshot[4] = static_cast<uint8_t>(count);
    snapshot[5] = static_cast<uint8_t>(count >> 8);
    if (count > 0)
      enet_host_broadcast(host, nshost::wire::kChannelUnreliable,
                          enet_packet_create(snapshot.data(), snapshot.size(), ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT));
    enet_host_flush(host);
    if (stats) {
      int64_t end = now_ns();
      std::fprintf(stderr,
                   "stats t=%.6f tick=%llu dur_us=%lld late_us=%lld cpu_us=%lld sent_bytes=%u sent_packets=%u\n",
                   static_cast<double>(end) / 1e9, static_cast<unsigned long long>(tick_num),
                   static_cast<long long>((end - start) / 1000), static_cast<long long>(lateness / 1000),
                   static_cast<long long>((clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start) / 1000),
                   host->totalSentData, host->totalSentPackets);
    }
    ++tick_num;
  }
  for (size_t i = 0; i < host->peerCount; ++i)
    if (host->peers[i].state != ENET_PEER_STATE_DISCONNECTED) enet_peer_disconnect_now(&host->peers[i], 2);
  enet_host_destroy(host);
  enet_deinitialize();
  return 0;
}
