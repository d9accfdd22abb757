#include "tests/support/room_peers.hpp"

#include <stdexcept>

#include "tests/support/clock.hpp"

namespace nshost::test {

std::string catalog_message(rooms::Codec codec, std::string_view type, uint32_t id,
                            const std::function<void(rooms::Writer&)>& payload) {
  rooms::Writer w(codec);
  rooms::begin_message(w, type, id);
  payload(w);
  return w.take();
}

RoomPeers::RoomPeers(int port, size_t count, const char* source) : peers_(count) {
  ENetAddress local{};
  enet_address_set_host_ip(&local, source);
  host_ = enet_host_create(&local, count, wire::kChannelCount, 0, 0);
  if (!host_) throw std::runtime_error("enet_host_create failed");
  tap_ = std::make_unique<SocketTap>(host_->socket, host_->peerCount, NetsimConfig{});
  ENetAddress server{};
  enet_address_set_host_ip(&server, "127.0.0.1");
  server.port = static_cast<uint16_t>(port);
  for (Peer& p : peers_) {
    p.peer = enet_host_connect(host_, &server, wire::kChannelCount, 0);
    if (!p.peer) throw std::runtime_error("enet_host_connect failed");
  }
}

RoomPeers::~RoomPeers() {
  if (host_) enet_host_destroy(host_);
  tap_.reset();
}

size_t RoomPeers::index_of(ENetPeer* peer) const { return static_cast<size_t>(peer - host_->peers); }

void RoomPeers::on_event(ENetEvent& event) {
  size_t i = index_of(event.peer);
  if (i >= peers_.size()) return;
  Peer& p = peers_[i];
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT:
      p.connected = true;
      if (hello_for_ && !p.hello_sent) {
        std::string hello = wire::encode_hello((*hello_for_)(i));
        enet_peer_send(p.peer, wire::kChannelControl,
                       enet_packet_create(hello.data(), hello.size(), ENET_PACKET_FLAG_RELIABLE));
        p.hello_sent = true;
      }
      break;
    case ENET_EVENT_TYPE_RECEIVE: {
      std::string_view bytes(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength);
      std::string error;
      if (event.channelID == wire::kChannelControl) {
        auto type = wire::peek_type(bytes);
        if (type == wire::ControlType::welcome && wire::decode_welcome(bytes, p.welcome, error)) {
          p.answered = p.welcomed = true;
          if (auto codec = rooms::codec_from_name(p.welcome.codec)) p.codec = *codec;
        } else if (type == wire::ControlType::reject || type == wire::ControlType::kick) {
          wire::Notice notice;
          if (wire::decode_notice(bytes, notice, error)) {
            if (type == wire::ControlType::reject) {
              p.answered = true;
              p.reject_reason = notice.reason;
            } else {
              p.kick_reason = notice.reason;
            }
          }
        }
      } else if (event.channelID == wire::kChannelRoomReliable || event.channelID == wire::kChannelRoomUnreliable) {
        p.room_bytes.append(bytes);
        rooms::Message message;
        if (!bytes.empty() && bytes[0] >= 0x01 && bytes[0] <= 0x04) p.state_frames.emplace_back(bytes);
        else if (rooms::decode_message(p.codec, bytes, message, error)) p.inbox.push_back(std::move(message));
        else ++p.undecodable;
      }
      enet_packet_destroy(event.packet);
      break;
    }
    case ENET_EVENT_TYPE_DISCONNECT:
      p.disconnected = true;
      p.disconnect_code = event.data;
      break;
    default:
      break;
  }
}

void RoomPeers::pump(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  ENetEvent event;
  bool first = true;
  while (first || now_ms() < deadline) {
    first = false;
    int rc = enet_host_service(host_, &event, 1);
    while (rc > 0) {
      on_event(event);
      rc = enet_host_check_events(host_, &event);
    }
  }
}

bool RoomPeers::wait(const std::function<bool()>& done, int timeout_ms) {
  // done() once per pass: next() and response() pass predicates that take.
  int64_t deadline = now_ms() + timeout_ms;
  bool ok = done();
  while (!ok && now_ms() < deadline) {
    pump(1);
    ok = done();
  }
  return ok;
}

bool RoomPeers::handshake(const std::function<wire::Hello(size_t)>& hello_for, int timeout_ms) {
  hello_for_ = &hello_for;
  for (size_t i = 0; i < peers_.size(); ++i) {  // connected before this call
    Peer& p = peers_[i];
    if (p.connected && !p.hello_sent) {
      std::string hello = wire::encode_hello(hello_for(i));
      enet_peer_send(p.peer, wire::kChannelControl,
                     enet_packet_create(hello.data(), hello.size(), ENET_PACKET_FLAG_RELIABLE));
      p.hello_sent = true;
    }
  }
  bool ok = wait(
      [&] {
        for (const Peer& p : peers_)
          if (!p.answered && !p.disconnected) return false;
        return true;
      },
      timeout_ms);
  hello_for_ = nullptr;
  for (const Peer& p : peers_) ok = ok && p.answered;
  return ok;
}

void RoomPeers::send_raw(size_t i, std::string_view bytes, uint8_t channel) {
  uint32_t flags = channel == wire::kChannelRoomUnreliable ? ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT
                                                           : ENET_PACKET_FLAG_RELIABLE;
  enet_peer_send(peers_[i].peer, channel, enet_packet_create(bytes.data(), bytes.size(), flags));
}

uint32_t RoomPeers::send(size_t i, std::string_view type, const std::function<void(rooms::Writer&)>& payload,
                         bool with_id, uint8_t channel) {
  uint32_t id = with_id ? peers_[i].next_id++ : 0;
  send_raw(i, catalog_message(peers_[i].codec, type, id, payload), channel);
  return id;
}

void RoomPeers::flush() { enet_host_flush(host_); }

std::optional<rooms::Message> RoomPeers::next(size_t i, std::string_view type, int timeout_ms) {
  std::optional<rooms::Message> found;
  auto take = [&] {
    auto& inbox = peers_[i].inbox;
    for (auto it = inbox.begin(); it != inbox.end(); ++it) {
      if (it->type == type) {
        found = std::move(*it);
        inbox.erase(it);
        return true;
      }
    }
    return false;
  };
  flush();
  wait(take, timeout_ms);
  return found;
}

std::optional<rooms::Message> RoomPeers::response(size_t i, uint32_t id, int timeout_ms) {
  std::optional<rooms::Message> found;
  auto take = [&] {
    auto& inbox = peers_[i].inbox;
    for (auto it = inbox.begin(); it != inbox.end(); ++it) {
      if (it->type == "rpc.response" && it->id == id) {
        found = std::move(*it);
        inbox.erase(it);
        return true;
      }
    }
    return false;
  };
  flush();
  wait(take, timeout_ms);
  return found;
}

void RoomPeers::disconnect(size_t i, uint32_t code) {
  enet_peer_disconnect(peers_[i].peer, code);
  flush();
}

void RoomPeers::cut(size_t i) {
  enet_peer_reset(peers_[i].peer);
  peers_[i].disconnected = true;
}

void RoomPeers::set_timeout(size_t i, uint32_t minimum_ms, uint32_t maximum_ms) {
  enet_peer_timeout(peers_[i].peer, 0, minimum_ms, maximum_ms);
}

}  // namespace nshost::test
