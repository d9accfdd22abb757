#include "tests/support/raw_peer.hpp"

#include <stdexcept>

#include "tests/support/clock.hpp"

namespace nshost::test {

RawPeer::RawPeer(int port, const char* source) {
  ENetAddress local{};
  enet_address_set_host_ip(&local, source);
  host_ = enet_host_create(&local, 1, wire::kChannelCount, 0, 0);
  if (!host_) throw std::runtime_error("enet_host_create failed");
  tap_ = std::make_unique<SocketTap>(host_->socket, host_->peerCount, NetsimConfig{});
  ENetAddress address{};
  enet_address_set_host_ip(&address, "127.0.0.1");
  address.port = static_cast<uint16_t>(port);
  server_ = address;
  peer_ = enet_host_connect(host_, &address, wire::kChannelCount, 0);
  if (!peer_) throw std::runtime_error("enet_host_connect failed");
}

RawPeer::~RawPeer() {
  if (host_) enet_host_destroy(host_);
  tap_.reset();  // after the host: its last datagrams go through the tap
}

void RawPeer::disconnect(uint32_t code, int timeout_ms) {
  enet_peer_disconnect(peer_, code);
  enet_host_flush(host_);
  int64_t deadline = now_ms() + timeout_ms;
  while (!disconnected_ && now_ms() < deadline) pump(10);
}

void RawPeer::poll(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  do pump(timeout_ms > 0 ? 1 : 0);
  while (now_ms() < deadline);
}

bool RawPeer::pump(int timeout_ms) {
  ENetEvent event;
  int rc = enet_host_service(host_, &event, static_cast<enet_uint32>(timeout_ms));
  if (rc <= 0) return false;
  switch (event.type) {
    case ENET_EVENT_TYPE_CONNECT:
      connected_ = true;
      break;
    case ENET_EVENT_TYPE_RECEIVE:
      if (event.channelID == wire::kChannelControl)
        control_ = std::string(reinterpret_cast<char*>(event.packet->data), event.packet->dataLength);
      enet_packet_destroy(event.packet);
      break;
    case ENET_EVENT_TYPE_DISCONNECT:
      disconnected_ = true;
      disconnect_code_ = event.data;
      break;
    default:
      break;
  }
  return true;
}

bool RawPeer::wait_connected(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (!connected_ && !disconnected_ && now_ms() < deadline) pump(10);
  enet_host_flush(host_);  // our acknowledgement completes the connect on the server
  return connected_ && !disconnected_;
}

void RawPeer::send_control(const std::string& bytes) {
  enet_peer_send(peer_, wire::kChannelControl,
                 enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
  enet_host_flush(host_);
}

bool RawPeer::send_data_acked(const std::string& bytes, int timeout_ms, uint8_t channel) {
  enet_peer_send(peer_, channel,
                 enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
  enet_host_flush(host_);
  int64_t deadline = now_ms() + timeout_ms;
  auto acked = [&] {
    return enet_list_empty(&peer_->outgoingCommands) && enet_list_empty(&peer_->sentReliableCommands);
  };
  while (!acked() && !disconnected_ && now_ms() < deadline) pump(10);
  return acked() && !disconnected_;
}

std::optional<std::string> RawPeer::wait_control(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (!control_ && !disconnected_ && now_ms() < deadline) pump(10);
  std::optional<std::string> out = std::move(control_);
  control_.reset();
  return out;
}

bool RawPeer::wait_disconnect(int timeout_ms, uint32_t* code) {
  int64_t deadline = now_ms() + timeout_ms;
  while (!disconnected_ && now_ms() < deadline) pump(10);
  if (code) *code = disconnect_code_;
  return disconnected_;
}

void RawPeer::cut() {
  enet_peer_reset(peer_);
  disconnected_ = true;
}

std::optional<RawPeer::Answer> RawPeer::join(const wire::Hello& hello, int timeout_ms) {
  if (!wait_connected(timeout_ms)) return std::nullopt;
  send_control(wire::encode_hello(hello));
  auto bytes = wait_control(timeout_ms);
  if (!bytes) return std::nullopt;
  Answer answer;
  std::string error;
  if (wire::decode_welcome(*bytes, answer.welcome, error)) {
    answer.welcomed = true;
    return answer;
  }
  wire::Notice notice;
  if (!wire::decode_notice(*bytes, notice, error)) return std::nullopt;
  answer.reason = notice.reason;
  return answer;
}

std::optional<RawPeer::Answer> RawPeer::join_again(const wire::Hello& hello, int timeout_ms) {
  connected_ = disconnected_ = false;
  control_.reset();
  peer_ = enet_host_connect(host_, &server_, wire::kChannelCount, 0);
  if (!peer_) return std::nullopt;
  return join(hello, timeout_ms);
}

}  // namespace nshost::test
