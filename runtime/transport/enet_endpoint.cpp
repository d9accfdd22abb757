#include "runtime/transport/enet_endpoint.hpp"

#include <arpa/inet.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "runtime/core/log.hpp"

namespace nshost {

// The shared housekeeping timer of one loop: created with the loop's first
// endpoint, closed with its last.
class Housekeeper {
 public:
  static int add(EnetEndpoint* endpoint) {
    Housekeeper*& keeper = by_loop()[endpoint->loop_];
    if (!keeper) {
      auto fresh = std::make_unique<Housekeeper>();
      int rc = fresh->timer_.init([&](uv_timer_t* t) { return uv_timer_init(endpoint->loop_, t); });
      if (rc == 0) {
        fresh->timer_.get()->data = fresh.get();
        rc = uv_timer_start(
            fresh->timer_.get(),
            [](uv_timer_t* t) {
              if (t->data) static_cast<Housekeeper*>(t->data)->run(uv_now(t->loop));
            },
            EnetEndpoint::kHousekeepingIntervalMs, EnetEndpoint::kHousekeepingIntervalMs);
      }
      if (rc != 0) {
        by_loop().erase(endpoint->loop_);
        return rc;
      }
      keeper = fresh.release();
    }
    keeper->endpoints_.push_back(endpoint);
    return 0;
  }

  static void remove(EnetEndpoint* endpoint) {
    auto it = by_loop().find(endpoint->loop_);
    if (it == by_loop().end()) return;
    Housekeeper* keeper = it->second;
    auto& list = keeper->endpoints_;
    for (auto& e : list)
      if (e == endpoint) e = nullptr;  // compacted after the pass, if one is running
    if (!keeper->running_) keeper->compact();
    if (list.empty() && !keeper->running_) {
      by_loop().erase(it);
      delete keeper;
    }
  }

 private:
  static std::unordered_map<uv_loop_t*, Housekeeper*>& by_loop() {
    static std::unordered_map<uv_loop_t*, Housekeeper*> map;
    return map;
  }

  void compact() { std::erase(endpoints_, nullptr); }

  void run(uint64_t now_ms) {
    running_ = true;
    // Indexing, not iterators: a listener may add endpoints during the pass.
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      EnetEndpoint* e = endpoints_[i];
      if (e && now_ms - e->last_service_ms_ >= EnetEndpoint::kHousekeepingIntervalMs) e->service();
    }
    running_ = false;
    compact();
    if (endpoints_.empty()) {
      for (auto it = by_loop().begin(); it != by_loop().end(); ++it)
        if (it->second == this) {
          by_loop().erase(it);
          break;
        }
      delete this;
    }
  }

  UvHandle<uv_timer_t> timer_;
  std::vector<EnetEndpoint*> endpoints_;
  bool running_ = false;
};

namespace {

// Proves that libenet's own calls reach `tap`: ENet connects `host` to its
// own socket and flushes (libenet calls enet_socket_send), then services it
// (libenet calls enet_socket_receive) until the CONNECT comes back through
// the tap. The peer is reset afterwards and ENet never sees the datagram, so
// the host is as it was, bound (a client host to an ephemeral port, as its
// first send would have bound it). Loopback to itself only: the datagram is
// normally there by the time the send returns; waits at most kProbeWaitMs.
bool prove_tap(ENetHost* host, SocketTap& tap, std::string& error) {
  constexpr int kProbeWaitMs = 1000;
  constexpr int kMaxServicePasses = 64;
  ENetAddress self{};
  if (enet_socket_get_address(host->socket, &self) != 0 || self.port == 0) {
    ENetAddress any{};
    any.host = ENET_HOST_ANY;
    if (enet_socket_bind(host->socket, &any) != 0 || enet_socket_get_address(host->socket, &self) != 0) {
      error = std::string("transport: cannot bind the ENet socket: ") + std::strerror(errno);
      return false;
    }
  }
  if (self.host == ENET_HOST_ANY) self.host = htonl(INADDR_LOOPBACK);
  // The probe does not count in the host's traffic totals (--stats lines).
  struct Totals {
    ENetHost* host;
    enet_uint32 sent_data, sent_packets, received_data, received_packets;
    ~Totals() {
      host->totalSentData = sent_data;
      host->totalSentPackets = sent_packets;
      host->totalReceivedData = received_data;
      host->totalReceivedPackets = received_packets;
    }
  } totals{host, host->totalSentData, host->totalSentPackets, host->totalReceivedData, host->totalReceivedPackets};
  tap.begin_probe(self);
  ENetPeer* peer = enet_host_connect(host, &self, 1, 0);
  if (!peer) {
    tap.end_probe();
    error = "transport: cannot check the socket tap (ENet has no free peer)";
    return false;
  }
  enet_host_flush(host);
  int64_t deadline_ns = monotonic_ns() + int64_t{kProbeWaitMs} * 1'000'000;
  for (int pass = 0; pass < kMaxServicePasses && tap.probe_sent() && !tap.probe_received(); ++pass) {
    ENetEvent event;
    // The tap hands ENet nothing while the probe is armed: no event can come.
    if (enet_host_service(host, &event, 0) > 0 && event.type == ENET_EVENT_TYPE_RECEIVE)
      enet_packet_destroy(event.packet);
    if (tap.probe_received() || tap.receive_calls() == 0) break;
    int64_t left_ms = (deadline_ns - monotonic_ns()) / 1'000'000;
    if (left_ms <= 0) break;
    pollfd watch{host->socket, POLLIN, 0};
    poll(&watch, 1, static_cast<int>(left_ms));
  }
  SocketTap::ProbeResult result = tap.end_probe();
  enet_peer_reset(peer);
  if (!result.sent || !result.receive_called) {
    error = kTapBypassedError;
    return false;
  }
  if (!result.received) {
    error = "transport: the socket tap's start-up probe to " + format_address(self) + " did not come back within " +
            std::to_string(kProbeWaitMs) + " ms" +
            (result.send_errno ? std::string(" (send: ") + std::strerror(result.send_errno) + ")" : "");
    return false;
  }
  return true;
}

}  // namespace

EnetLibrary::EnetLibrary() : ok_(enet_initialize() == 0) {}
EnetLibrary::~EnetLibrary() {
  if (ok_) enet_deinitialize();
}

std::unique_ptr<EnetEndpoint> EnetEndpoint::create(uv_loop_t* loop, const Config& config, Listener& listener,
                                                   std::string& error) {
  if (std::string missing = SocketTap::check_originals(); !missing.empty()) {
    error = missing;
    return nullptr;
  }
  ENetHost* host = enet_host_create(config.bind, config.peer_count, config.channel_count, 0, 0);
  if (!host) {
    error = config.bind ? "cannot bind UDP " + format_address(*config.bind) + " (in use or not a local address?)"
                        : "cannot create an ENet client host";
    return nullptr;
  }
  host->maximumPacketSize = config.max_message_bytes;
  // Bounds what one peer can make us buffer for reassembly and delivery.
  host->maximumWaitingData = config.max_message_bytes * 4;
  std::unique_ptr<EnetEndpoint> self(new EnetEndpoint(loop, host, listener));
  self->peer_traffic_.assign(host->peerCount, PeerTraffic{});
  self->tap_ = std::make_unique<SocketTap>(host->socket, host->peerCount, config.netsim, config.receive_batch);
  self->log_tag_ = config.log_tag;
  if (!prove_tap(host, *self->tap_, error)) return nullptr;
  if (config.netsim.enabled)
    log_write(LogLevel::info, config.log_tag, "network simulator on: " + format_netsim(config.netsim));
  EnetEndpoint* raw = self.get();
  int rc = self->poll_.init([&](uv_poll_t* p) { return uv_poll_init_socket(loop, p, host->socket); });
  if (rc == 0) {
    self->poll_.get()->data = raw;
    rc = uv_poll_start(self->poll_.get(), UV_READABLE, &EnetEndpoint::on_poll);
  }
  self->min_service_gap_ms_ = config.min_service_gap_ms;
  if (rc == 0 && config.min_service_gap_ms > 0) {
    rc = self->gap_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); });
    if (rc == 0) self->gap_timer_.get()->data = raw;
  }
  if (rc == 0) {
    self->last_service_ms_ = uv_now(loop);
    rc = Housekeeper::add(raw);
    self->housekept_ = rc == 0;
  }
  if (rc == 0) rc = self->flush_check_.init([&](uv_check_t* c) { return uv_check_init(loop, c); });
  if (rc == 0) {
    self->flush_check_.get()->data = raw;
    rc = uv_check_start(self->flush_check_.get(), [](uv_check_t* c) {
      auto* ep = static_cast<EnetEndpoint*>(c->data);
      if (ep && ep->dirty_) ep->flush();
    });
  }
  if (rc != 0) {
    error = std::string("libuv: ") + uv_strerror(rc);
    return nullptr;
  }
  return self;
}

EnetEndpoint::~EnetEndpoint() {
  if (tap_ && log_enabled(LogLevel::debug)) {
    const SocketTap::Stats& st = tap_->stats();
    std::string line = "transport: " + std::to_string(st.datagrams_in) + " datagram(s) in, " +
                       std::to_string(st.malformed_in) + " malformed, " + std::to_string(st.refused_connects) +
                       " connect(s) refused, " + std::to_string(st.challenges_sent) + " challenge(s) sent, " +
                       std::to_string(st.challenges_answered) + " answered";
    auto link = [](const char* name, const NetsimLink* l) {
      const NetsimLink::Counters& c = l->counters();
      return std::string("; netsim ") + name + ": " + std::to_string(c.submitted) + " submitted, " +
             std::to_string(c.dropped) + " dropped, " + std::to_string(c.duplicated) + " duplicated, " +
             std::to_string(c.reordered) + " reordered";
    };
    if (tap_->outbound()) line += link("out", tap_->outbound()) + link("in", tap_->inbound());
    log_write(LogLevel::debug, log_tag_, line);
  }
  poll_.close();
  gap_timer_.close();
  if (housekept_) Housekeeper::remove(this);
  flush_check_.close();
  if (host_) enet_host_destroy(host_);
  tap_.reset();  // after the host: its last disconnects still go through the tap
}

uint16_t EnetEndpoint::local_port() const {
  ENetAddress address{};
  if (enet_socket_get_address(host_->socket, &address) != 0) return host_->address.port;
  return address.port;
}

void EnetEndpoint::on_poll(uv_poll_t* poll, int status, int) {
  auto* self = static_cast<EnetEndpoint*>(poll->data);
  if (status < 0 || !self) return;
  uint64_t since_ms = uv_now(self->loop_) - self->last_service_ms_;
  if (self->min_service_gap_ms_ == 0 || since_ms >= self->min_service_gap_ms_) {
    self->service();
    return;
  }
  // Serviced less than the gap ago: stop watching and come back when the gap
  // is over, to read everything that arrived meanwhile in one pass.
  uv_poll_stop(poll);
  uv_timer_start(
      self->gap_timer_.get(),
      [](uv_timer_t* t) {
        auto* ep = static_cast<EnetEndpoint*>(t->data);
        if (!ep) return;
        uv_poll_start(ep->poll_.get(), UV_READABLE, &EnetEndpoint::on_poll);
        ep->service();
      },
      self->min_service_gap_ms_ - since_ms, 0);
}

void EnetEndpoint::service() {
  if (servicing_) return;
  servicing_ = true;
  last_service_ms_ = uv_now(loop_);
  tap_->pump();
  ENetEvent event;
  {
    SocketTap::Batch batch(*tap_);  // every datagram of this pass, sent together at its end
    // One enet_host_service pass (send, receive, send: each send walks every
    // peer), then only the events it queued: another pass per event would
    // walk a thousand peers again for nothing. Datagrams it left in the socket
    // wake the poll again (level-triggered); those the tap holds are served here.
    // A connect or disconnect ends the pass before its last send (the replies
    // and acks it queued), so that send then happens in this iteration's flush.
    dirty_ = false;
    auto pass = [&] {
      int r = enet_host_service(host_, &event, 0);
      if (r > 0 && event.type != ENET_EVENT_TYPE_RECEIVE) dirty_ = true;
      return r;
    };
    int got = pass();
    while (got > 0) {
      {
        struct PacketOwner {
          ENetPacket* packet;
          ~PacketOwner() {
            if (packet) enet_packet_destroy(packet);
          }
        } owner{event.type == ENET_EVENT_TYPE_RECEIVE ? event.packet : nullptr};
        count_in(event);
        listener_.on_enet_event(event);
      }
      got = enet_host_check_events(host_, &event);
      if (got == 0 && tap_->held_in() > 0) got = pass();
    }
  }
  servicing_ = false;
  listener_.on_serviced();
  report_malformed();
  report_send_failures();
}

void EnetEndpoint::count_in(const ENetEvent& event) {
  size_t i = peer_slot(event.peer);
  if (event.type == ENET_EVENT_TYPE_CONNECT) {
    if (i < peer_traffic_.size()) peer_traffic_[i] = PeerTraffic{};
    return;
  }
  if (event.type != ENET_EVENT_TYPE_RECEIVE) return;
  size_t bytes = event.packet->dataLength;
  if (event.channelID < kCountedChannels) {
    ++traffic_.messages_in[event.channelID];
    traffic_.bytes_in[event.channelID] += bytes;
  }
  if (i < peer_traffic_.size()) peer_traffic_[i].bytes_in += bytes;
}

uint64_t EnetEndpoint::Reported::take_due(uint64_t total) {
  if (total == count) return 0;
  int64_t now = monotonic_ns();
  if (at_ns != 0 && now - at_ns < kMalformedReportIntervalNs) return 0;
  uint64_t fresh = total - count;
  count = total;
  at_ns = now;
  return fresh;
}

void EnetEndpoint::report_send_failures() {
  const SocketTap::Stats& stats = tap_->stats();
  if (uint64_t fresh = send_failures_.take_due(stats.failed_out))
    log_write(LogLevel::warn, log_tag_,
              "lost " + std::to_string(fresh) + " outgoing datagram(s) (total " + std::to_string(stats.failed_out) +
                  " of " + std::to_string(stats.batched_out) + "; latest: " + std::strerror(stats.last_send_errno) +
                  ")");
}

void EnetEndpoint::report_malformed() {
  const SocketTap::Stats& stats = tap_->stats();
  if (uint64_t fresh = malformed_.take_due(stats.malformed_in))
    log_write(LogLevel::warn, log_tag_,
              "dropped " + std::to_string(fresh) + " malformed datagram(s) (total " +
                  std::to_string(stats.malformed_in) + " of " + std::to_string(stats.datagrams_in) +
                  " received; latest from " + format_address(stats.last_malformed_from) + ")");
}

void EnetEndpoint::flush() {
  dirty_ = false;
  {
    SocketTap::Batch batch(*tap_);
    enet_host_flush(host_);
  }
  report_send_failures();
}

std::string format_address(const ENetAddress& address) {
  char text[INET_ADDRSTRLEN] = "?";
  in_addr in{};
  in.s_addr = address.host;
  inet_ntop(AF_INET, &in, text, sizeof text);
  return std::string(text) + ":" + std::to_string(address.port);
}

}  // namespace nshost
