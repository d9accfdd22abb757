#include "runtime/roles/peer_link.hpp"

namespace nshost {

bool PeerLink::send_control(std::string_view bytes) {
  ENetPacket* packet = enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE);
  if (!packet) return false;
  if (enet_peer_send(peer_, wire::kChannelControl, packet) != 0) {
    enet_packet_destroy(packet);
    return false;
  }
  endpoint_.mark_dirty();
  return true;
}

bool PeerLink::send(std::string_view data, Channel channel) {
  ENetPacket* packet = make_packet(data, channel);
  if (!packet) return false;
  if (!queue(packet, channel)) {
    enet_packet_destroy(packet);
    return false;
  }
  endpoint_.mark_dirty();
  return true;
}

bool PeerLink::queue(ENetPacket* packet, Channel channel) {
  return enet_peer_send(peer_, channel_id(channel), packet) == 0;
}

size_t PeerLink::replay(const ReliableReplay& replay, uint64_t after) {
  size_t replayed = 0;
  replay.for_each_after(after, [&](const ReliableReplay::Payload& bytes) {
    ENetPacket* packet = make_packet(*bytes, Channel::reliable);
    if (packet && queue(packet, Channel::reliable)) ++replayed;
    else if (packet) enet_packet_destroy(packet);
  });
  if (replayed) endpoint_.mark_dirty();
  return replayed;
}

}  // namespace nshost
