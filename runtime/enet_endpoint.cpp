#include "runtime/enet_endpoint.hpp"

#include <arpa/inet.h>

namespace nshost {

EnetLibrary::EnetLibrary() : ok_(enet_initialize() == 0) {}
EnetLibrary::~EnetLibrary() {
  if (ok_) enet_deinitialize();
}

std::unique_ptr<EnetEndpoint> EnetEndpoint::create(uv_loop_t* loop, const Config& config, Listener& listener,
                                                   std::string& error) {
  ENetHost* host = enet_host_create(config.bind, config.peer_count, config.channel_count, 0, 0);
  if (!host) {
    error = config.bind ? "cannot bind UDP " + format_address(*config.bind) + " (in use or not a local address?)"
                        : "cannot create an ENet client host";
    return nullptr;
  }
  host->maximumPacketSize = config.max_message_bytes;
  // Bounds what one peer can make us buffer for reassembly and delivery.
  host->maximumWaitingData = config.max_message_bytes * 4;
  std::unique_ptr<EnetEndpoint> self(new EnetEndpoint(host, listener));
  EnetEndpoint* raw = self.get();
  int rc = self->poll_.init([&](uv_poll_t* p) { return uv_poll_init_socket(loop, p, host->socket); });
  if (rc == 0) {
    self->poll_.get()->data = raw;
    rc = uv_poll_start(self->poll_.get(), UV_READABLE, [](uv_poll_t* p, int status, int) {
      if (status < 0 || !p->data) return;
      static_cast<EnetEndpoint*>(p->data)->service();
    });
  }
  if (rc == 0) rc = self->housekeeping_.init([&](uv_timer_t* t) { return uv_timer_init(loop, t); });
  if (rc == 0) {
    self->housekeeping_.get()->data = raw;
    rc = uv_timer_start(
        self->housekeeping_.get(),
        [](uv_timer_t* t) {
          if (t->data) static_cast<EnetEndpoint*>(t->data)->service();
        },
        kHousekeepingIntervalMs, kHousekeepingIntervalMs);
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
  poll_.close();
  housekeeping_.close();
  flush_check_.close();
  if (host_) enet_host_destroy(host_);
}

uint16_t EnetEndpoint::local_port() const {
  ENetAddress address{};
  if (enet_socket_get_address(host_->socket, &address) != 0) return host_->address.port;
  return address.port;
}

void EnetEndpoint::service() {
  if (servicing_) return;
  servicing_ = true;
  ENetEvent event;
  while (enet_host_service(host_, &event, 0) > 0) {
    struct PacketOwner {
      ENetPacket* packet;
      ~PacketOwner() {
        if (packet) enet_packet_destroy(packet);
      }
    } owner{event.type == ENET_EVENT_TYPE_RECEIVE ? event.packet : nullptr};
    listener_.on_enet_event(event);
  }
  servicing_ = false;
  dirty_ = false;  // enet_host_service sent everything queued so far
}

void EnetEndpoint::flush() {
  dirty_ = false;
  enet_host_flush(host_);
}

std::string format_address(const ENetAddress& address) {
  char text[INET_ADDRSTRLEN] = "?";
  in_addr in{};
  in.s_addr = address.host;
  inet_ntop(AF_INET, &in, text, sizeof text);
  return std::string(text) + ":" + std::to_string(address.port);
}

}  // namespace nshost
