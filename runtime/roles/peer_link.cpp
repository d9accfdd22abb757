#include "runtime/roles/peer_link.hpp"

#include "runtime/roles/local_link.hpp"

namespace nshost {

namespace {

int peer_send(EnetEndpoint* endpoint, ENetPeer* peer, uint8_t channel_id, ENetPacket* packet) {
  if (LocalLink* local = LocalLink::of(peer)) return local->send(peer, channel_id, packet);
  size_t bytes = packet->dataLength;  // ENet may free a packet it was the last owner of
  int rc = enet_peer_send(peer, channel_id, packet);
  if (rc == 0 && endpoint) endpoint->count_out(peer, channel_id, bytes);
  return rc;
}

}  // namespace

bool PeerLink::send_control(std::string_view bytes) {
  ENetPacket* packet = enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE);
  if (!packet) return false;
  if (peer_send(endpoint_, peer_, wire::kChannelControl, packet) != 0) {
    enet_packet_destroy(packet);
    return false;
  }
  mark_dirty();
  return true;
}

bool PeerLink::send(std::string_view data, Channel channel) {
  ENetPacket* packet = make_packet(data, channel);
  if (!packet) return false;
  if (!queue(packet, channel)) {
    enet_packet_destroy(packet);
    return false;
  }
  mark_dirty();
  return true;
}

bool PeerLink::queue(ENetPacket* packet, Channel channel) {
  return peer_send(endpoint_, peer_, channel_id(channel), packet) == 0;
}

bool PeerLink::queue_on(ENetPacket* packet, uint8_t channel_id) { return peer_send(endpoint_, peer_, channel_id, packet) == 0; }

size_t PeerLink::replay(const ReliableReplay& replay, uint64_t after) {
  size_t replayed = 0;
  replay.for_each_after(after, [&](const ReliableReplay::Payload& bytes) {
    ENetPacket* packet = make_packet(*bytes, Channel::reliable);
    if (packet && queue(packet, Channel::reliable)) ++replayed;
    else if (packet) enet_packet_destroy(packet);
  });
  if (replayed) mark_dirty();
  return replayed;
}

void PeerLink::disconnect(uint32_t code) {
  if (LocalLink* local = LocalLink::of(peer_)) local->disconnect(peer_, code);
  else enet_peer_disconnect(peer_, code);
  mark_dirty();
}

void PeerLink::disconnect_later(uint32_t code) {
  if (LocalLink* local = LocalLink::of(peer_)) local->disconnect(peer_, code);
  else enet_peer_disconnect_later(peer_, code);
  mark_dirty();
}

void PeerLink::disconnect_now(uint32_t code) {
  if (LocalLink* local = LocalLink::of(peer_)) local->disconnect_now(peer_, code);
  else enet_peer_disconnect_now(peer_, code);
}

void PeerLink::reset() {
  if (LocalLink* local = LocalLink::of(peer_)) local->reset(peer_);
  else enet_peer_reset(peer_);
}

void PeerLink::keep_throttle_open() {
  if (!local())
    enet_peer_throttle_configure(peer_, ENET_PEER_PACKET_THROTTLE_INTERVAL, ENET_PEER_PACKET_THROTTLE_ACCELERATION, 0);
}

bool PeerLink::local() const { return LocalLink::of(peer_) != nullptr; }

std::string PeerLink::describe(const ENetPeer* peer) {
  return LocalLink::of(peer) ? LocalLink::kAddressText : format_address(peer->address);
}

}  // namespace nshost
