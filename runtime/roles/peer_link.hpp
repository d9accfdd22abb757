#pragma once
// What both roles send to one ENet peer, in one place: control messages, data
// on the channel a script names, and the replay of retained reliable messages
// after a resume. The bots are ClientRoles and send through the same calls.
//
// Ownership: the ENetPeer belongs to its ENetHost (the EnetEndpoint's), never
// to a PeerLink, which is a pair of borrowed pointers valid for one call site.
// A packet handed to ENet successfully is ENet's (it frees it once every peer
// it was queued for is done with it); a packet ENet refuses stays the
// caller's, and the calls below that create their own packet destroy it then.
//
// A listen server's local client is a stand-in peer of a LocalLink
// (runtime/roles/local_link.hpp): every call below, sends and disconnects
// alike, goes to the link instead of ENet, with the same ownership, so the
// roles treat it as any other peer. The endpoint may then be null (the
// local client has none).
#include <cstdint>
#include <string>
#include <string_view>

#include <enet/enet.h>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/script/host_api.hpp"
#include "runtime/roles/reliable_replay.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost {

class PeerLink {
 public:
  PeerLink(EnetEndpoint& endpoint, ENetPeer* peer) : endpoint_(&endpoint), peer_(peer) {}
  PeerLink(EnetEndpoint* endpoint, ENetPeer* peer) : endpoint_(endpoint), peer_(peer) {}

  // The ENet channel id and packet flags a script's channel travels with.
  static uint8_t channel_id(Channel channel) {
    return channel == Channel::reliable ? wire::kChannelReliable : wire::kChannelUnreliable;
  }
  static uint32_t packet_flags(Channel channel) {
    return channel == Channel::reliable ? ENET_PACKET_FLAG_RELIABLE : ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT;
  }
  // The script's channel a data message arrived on (any id but the reliable
  // one is unreliable).
  static Channel channel_of(uint8_t channel_id) {
    return channel_id == wire::kChannelReliable ? Channel::reliable : Channel::unreliable;
  }
  // A copy of data, flagged for channel; null when ENet cannot allocate it.
  static ENetPacket* make_packet(std::string_view data, Channel channel) {
    return enet_packet_create(data.data(), data.size(), packet_flags(channel));
  }
  // A peer ENet has begun to connect but not yet reported connected.
  static bool half_open(const ENetPeer& peer) {
    return peer.state == ENET_PEER_STATE_ACKNOWLEDGING_CONNECT || peer.state == ENET_PEER_STATE_CONNECTION_PENDING ||
           peer.state == ENET_PEER_STATE_CONNECTION_SUCCEEDED;
  }

  // A reliable control message (wire::ControlType); false if ENet refused it.
  bool send_control(std::string_view bytes);
  // A copy of data on channel; false if ENet refused it.
  bool send(std::string_view data, Channel channel);
  // Queues a packet (possibly shared by several peers) on channel; false if
  // ENet refused it, and then the packet is not queued here. Does not mark
  // the endpoint dirty: the caller does once per batch.
  bool queue(ENetPacket* packet, Channel channel);
  // Like queue, on a channel id of wire.hpp (the catalog's, the control one).
  bool queue_on(ENetPacket* packet, uint8_t channel_id);
  // Sends again, reliably and in order, every retained message numbered after
  // `after`; the number ENet accepted.
  size_t replay(const ReliableReplay& replay, uint64_t after);

  // enet_peer_disconnect, _later, _now and enet_peer_reset (the peer's own
  // calls, or the LocalLink's). The first two mark the endpoint dirty.
  void disconnect(uint32_t code);
  void disconnect_later(uint32_t code);
  void disconnect_now(uint32_t code);
  void reset();
  // Keeps ENet's packet throttle open (deceleration 0); nothing for a local peer.
  void keep_throttle_open();
  // True for a listen server's in-process peer.
  bool local() const;
  // "a.b.c.d:port" for logs; "local" for the in-process peer.
  static std::string describe(const ENetPeer* peer);

  ENetPeer* peer() const { return peer_; }

 private:
  void mark_dirty() {
    if (endpoint_) endpoint_->mark_dirty();
  }

  EnetEndpoint* endpoint_;
  ENetPeer* peer_;
};

}  // namespace nshost
