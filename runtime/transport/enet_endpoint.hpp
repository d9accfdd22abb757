#pragma once
// An ENet host serviced from a libuv loop, with no extra thread and no busy
// polling: the UDP socket is watched with uv_poll and serviced when readable;
// one housekeeping timer per loop, shared by every endpoint on it, services
// each endpoint not serviced for kHousekeepingIntervalMs, for ENet's own timers
// (retransmits, pings, timeouts) — so a thousand bot endpoints cost one timer
// wakeup per interval, not a thousand; sends made during a loop iteration are
// flushed once, in the check phase at the end of that iteration. Each service
// and flush pass opens a SocketTap::Batch, so its datagrams reach the kernel
// together: sendmmsg(2), with each peer's fragments as one UDP GSO message.
#include <enet/enet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/transport/netsim.hpp"
#include "runtime/transport/socket_tap.hpp"
#include "runtime/core/uv_handle.hpp"

namespace nshost {

// create()'s error when libenet's socket calls bypass the SocketTap.
inline constexpr const char* kTapBypassedError =
    "transport: libenet bypasses the socket tap; netsim, filters and batching would be off";

// Process-wide enet_initialize / enet_deinitialize.
class EnetLibrary {
 public:
  EnetLibrary();
  ~EnetLibrary();
  bool ok() const { return ok_; }

 private:
  bool ok_;
};

class EnetEndpoint {
 public:
  // Receives every ENet event. The endpoint owns and destroys event.packet
  // after the call returns; the listener copies what it keeps. The listener
  // must not destroy the endpoint from inside the call.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void on_enet_event(ENetEvent& event) = 0;
    // After each service pass (its events dispatched): acknowledgements it
    // processed may have made room to send more.
    virtual void on_serviced() {}
  };

  static constexpr uint64_t kHousekeepingIntervalMs = 10;

  struct Config {
    const ENetAddress* bind = nullptr;  // nullptr: a client host on any port
    size_t peer_count = 1;
    size_t channel_count = 3;
    size_t max_message_bytes = 1u << 20;  // ENet's maximumPacketSize
    NetsimConfig netsim;                  // shapes every datagram when enabled
    std::string log_tag = "net";          // for the malformed-datagram report
    // Datagrams taken per recvmmsg(2) (SocketTap); 1 for one recvmsg each.
    // A server with many peers takes many per wakeup; a bot takes one or two.
    size_t receive_batch = 1;
    // At most one service per this many ms when the socket turns readable
    // (0: service on every wakeup). Datagrams that arrive within the gap wait
    // for it (adding up to this much latency) and are read in one pass.
    uint64_t min_service_gap_ms = 0;
  };
  // Malformed datagrams, and outgoing datagrams the kernel refused, are each
  // reported at most this often (one log line).
  static constexpr int64_t kMalformedReportIntervalNs = 10'000'000'000;

  // Creates the host, proves its SocketTap sees libenet's own sends and
  // receives (a CONNECT to its own socket over loopback, never shown to ENet
  // or the listener), and starts watching it. nullptr with `error` set on
  // failure: kTapBypassedError when libenet's calls do not reach the tap.
  static std::unique_ptr<EnetEndpoint> create(uv_loop_t* loop, const Config& config, Listener& listener,
                                              std::string& error);
  ~EnetEndpoint();
  EnetEndpoint(const EnetEndpoint&) = delete;
  EnetEndpoint& operator=(const EnetEndpoint&) = delete;

  ENetHost* host() const { return host_; }
  // The UDP port the socket is bound to.
  uint16_t local_port() const;

  // Dispatches every pending event to the listener. Reentrant calls are ignored.
  void service();
  // Asks for a flush at the end of this loop iteration.
  void mark_dirty() { dirty_ = true; }
  void flush();
  const SocketTap& tap() const { return *tap_; }
  void set_connect_filter(SocketTap::ConnectFilter filter) { tap_->set_connect_filter(std::move(filter)); }
  // A server's endpoint: CONNECTs need the tap's cookie (SocketTap).
  void enable_connect_challenge() { tap_->enable_connect_challenge(); }

  // Messages and their payload bytes (no ENet or UDP headers) by channel and
  // by peer, counted as they pass: received as the events are dispatched,
  // sent when ENet accepted the packet (count_out, by whoever queued it).
  // ENet's own per-peer totals are reset by its bandwidth throttle.
  static constexpr size_t kCountedChannels = 8;
  struct Traffic {
    std::array<uint64_t, kCountedChannels> messages_in{}, bytes_in{}, messages_out{}, bytes_out{};
  };
  struct PeerTraffic {
    uint64_t bytes_in = 0, bytes_out = 0;  // since the peer's connect
  };
  const Traffic& traffic() const { return traffic_; }
  // By ENet peer index (peer - host()->peers).
  const PeerTraffic& peer_traffic(size_t peer_index) const { return peer_traffic_[peer_index]; }
  void count_out(const ENetPeer* peer, uint8_t channel, size_t bytes) {
    if (channel < kCountedChannels) {
      ++traffic_.messages_out[channel];
      traffic_.bytes_out[channel] += bytes;
    }
    if (size_t i = peer_slot(peer); i < peer_traffic_.size()) peer_traffic_[i].bytes_out += bytes;
  }

 private:
  static void on_poll(uv_poll_t* poll, int status, int events);
  // The peer's index in host_->peers; peer_traffic_.size() for any other peer.
  size_t peer_slot(const ENetPeer* peer) const {
    auto at = reinterpret_cast<uintptr_t>(peer), first = reinterpret_cast<uintptr_t>(host_->peers);
    if (at < first || (at - first) % sizeof(ENetPeer) != 0) return peer_traffic_.size();
    return std::min<size_t>((at - first) / sizeof(ENetPeer), peer_traffic_.size());
  }
  void report_malformed();
  void report_send_failures();
  void count_in(const ENetEvent& event);

  friend class Housekeeper;
  EnetEndpoint(uv_loop_t* loop, ENetHost* host, Listener& listener)
      : loop_(loop), host_(host), listener_(listener) {}

  uv_loop_t* loop_;
  ENetHost* host_;
  Listener& listener_;
  std::unique_ptr<SocketTap> tap_;
  std::string log_tag_;
  // A count reported at most once per kMalformedReportIntervalNs.
  struct Reported {
    uint64_t count = 0;  // the total at the last report
    int64_t at_ns = 0;   // when it was made
    // How many are new since the last report if one is due now (and marks
    // them reported); 0 otherwise.
    uint64_t take_due(uint64_t total);
  };
  Reported malformed_, send_failures_;
  UvHandle<uv_poll_t> poll_;
  UvHandle<uv_timer_t> gap_timer_;  // only with min_service_gap_ms
  uint64_t min_service_gap_ms_ = 0;
  UvHandle<uv_check_t> flush_check_;
  uint64_t last_service_ms_ = 0;  // uv_now() of the last service()
  bool housekept_ = false;        // registered with the loop's Housekeeper
  Traffic traffic_;
  std::vector<PeerTraffic> peer_traffic_;  // one per ENet peer
  bool dirty_ = false;
  bool servicing_ = false;
};

// "a.b.c.d:port" for logs.
std::string format_address(const ENetAddress& address);

}  // namespace nshost
