#include "runtime/roles/local_link.hpp"

#include "runtime/transport/wire.hpp"

namespace nshost {

LocalLink::LocalLink(uv_loop_t* loop, size_t max_message_bytes)
    // The receive budget an EnetEndpoint gives its ENet host (maximumWaitingData).
    : loop_(loop), max_message_bytes_(max_message_bytes), max_queued_bytes_(max_message_bytes * 4) {
  for (ENetPeer& peer : peers_) {
    peer.host = nullptr;
    peer.data = this;
    peer.state = ENET_PEER_STATE_DISCONNECTED;
    peer.channelCount = wire::kChannelCount;
  }
  peers_[index(Side::server)].incomingPeerID = 0;
  peers_[index(Side::client)].incomingPeerID = 1;
}

LocalLink::~LocalLink() {
  for (Pending& pending : queue_) release(pending);
}

int LocalLink::start() {
  int rc = idle_.init([&](uv_idle_t* idle) { return uv_idle_init(loop_, idle); });
  if (rc == 0) idle_.get()->data = this;
  return rc;
}

ENetPeer* LocalLink::connect() {
  ENetPeer* client = peer(Side::client);
  client->state = ENET_PEER_STATE_CONNECTING;
  push(Pending{Side::server, ENET_EVENT_TYPE_CONNECT});
  push(Pending{Side::client, ENET_EVENT_TYPE_CONNECT});
  return client;
}

int LocalLink::send(ENetPeer* from, uint8_t channel_id, ENetPacket* packet) {
  if (from->state != ENET_PEER_STATE_CONNECTED || channel_id >= from->channelCount) return -1;
  Side to = other(side_of(from));
  if (packet->dataLength > max_message_bytes_ || queued_bytes_[index(to)] + packet->dataLength > max_queued_bytes_) {
    ++refused_;
    return -1;
  }
  ++packet->referenceCount;
  queued_bytes_[index(to)] += packet->dataLength;
  push(Pending{to, ENET_EVENT_TYPE_RECEIVE, channel_id, 0, packet});
  return 0;
}

void LocalLink::disconnect(ENetPeer* from, uint32_t code) {
  if (from->state == ENET_PEER_STATE_DISCONNECTED || from->state == ENET_PEER_STATE_DISCONNECT_LATER) return;
  Side side = side_of(from);
  if (from->state != ENET_PEER_STATE_CONNECTED) {  // never connected: nothing to say goodbye to
    reset(from);
    return;
  }
  from->state = ENET_PEER_STATE_DISCONNECT_LATER;
  push(Pending{other(side), ENET_EVENT_TYPE_DISCONNECT, 0, code});
  push(Pending{side, ENET_EVENT_TYPE_DISCONNECT, 0, 0});
}

void LocalLink::disconnect_now(ENetPeer* from, uint32_t code) {
  if (from->state == ENET_PEER_STATE_DISCONNECTED) return;
  from->state = ENET_PEER_STATE_DISCONNECTED;
  drop_in_flight();
  push(Pending{other(side_of(from)), ENET_EVENT_TYPE_DISCONNECT, 0, code});
}

void LocalLink::reset(ENetPeer* from) { disconnect_now(from, static_cast<uint32_t>(wire::DisconnectCode::none)); }

void LocalLink::push(Pending pending) {
  pending.generation = generation_;
  queue_.push_back(pending);
  if (idle_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(idle_.get())))
    uv_idle_start(idle_.get(), &LocalLink::on_idle);
}

void LocalLink::release(Pending& pending) {
  if (!pending.packet) return;
  queued_bytes_[index(pending.to)] -= pending.packet->dataLength;
  if (--pending.packet->referenceCount == 0) enet_packet_destroy(pending.packet);
  pending.packet = nullptr;
}

void LocalLink::drop_in_flight() {
  ++generation_;
  for (Pending& pending : queue_) release(pending);
  queue_.clear();
}

void LocalLink::on_idle(uv_idle_t* idle) {
  if (idle->data) static_cast<LocalLink*>(idle->data)->deliver_pending();
}

void LocalLink::deliver_pending() {
  // What the handlers below queue waits for the next pass: one side's send
  // never runs the other side's handler inside its own.
  for (size_t n = queue_.size(); n > 0 && !queue_.empty(); --n) {
    Pending pending = queue_.front();
    queue_.pop_front();
    ENetPeer* peer = &peers_[index(pending.to)];
    EnetEndpoint::Listener* listener = listeners_[index(pending.to)];
    bool deliver = pending.generation == generation_ && listener;
    if (deliver) {
      switch (pending.type) {
        case ENET_EVENT_TYPE_CONNECT:
          peer->state = ENET_PEER_STATE_CONNECTED;
          break;
        case ENET_EVENT_TYPE_RECEIVE:
          deliver = peer->state == ENET_PEER_STATE_CONNECTED || peer->state == ENET_PEER_STATE_DISCONNECT_LATER;
          break;
        case ENET_EVENT_TYPE_DISCONNECT:
          deliver = peer->state != ENET_PEER_STATE_DISCONNECTED;
          peer->state = ENET_PEER_STATE_DISCONNECTED;
          break;
        case ENET_EVENT_TYPE_NONE:
          deliver = false;
          break;
      }
    }
    if (deliver) {
      ENetEvent event{};
      event.type = pending.type;
      event.peer = peer;
      event.channelID = pending.channel_id;
      event.data = pending.data;
      event.packet = pending.packet;
      listener->on_enet_event(event);
    }
    release(pending);
  }
  if (queue_.empty() && idle_) uv_idle_stop(idle_.get());
}

}  // namespace nshost
