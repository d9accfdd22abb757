#include "tests/support/raw_server.hpp"

#include <chrono>
#include <stdexcept>

namespace nshost::test {
namespace {

constexpr const char* kToken = "raw-server-token";  // wire::kSessionTokenBytes long

void send_packet(ENetPeer* peer, uint8_t channel, const std::string& bytes) {
  uint32_t flags = channel == wire::kChannelUnreliable || channel == wire::kChannelRoomUnreliable
                       ? ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT
                       : ENET_PACKET_FLAG_RELIABLE;
  ENetPacket* packet = enet_packet_create(bytes.data(), bytes.size(), flags);
  if (packet && enet_peer_send(peer, channel, packet) != 0) enet_packet_destroy(packet);
}

}  // namespace

RawServer::RawServer() : RawServer(Config{}) {}

RawServer::RawServer(Config config) : config_(std::move(config)) {
  static_assert(std::char_traits<char>::length(kToken) == wire::kSessionTokenBytes);
  ENetAddress address{};
  enet_address_set_host_ip(&address, "127.0.0.1");
  address.port = 0;
  host_ = enet_host_create(&address, 16, wire::kChannelCount, 0, 0);
  if (!host_) throw std::runtime_error("enet_host_create failed");
  ENetAddress bound{};
  enet_socket_get_address(host_->socket, &bound);
  port_ = bound.port;
  thread_ = std::thread([this] { run(); });
}

RawServer::~RawServer() {
  stop_ = true;
  thread_.join();
  enet_host_destroy(host_);
}

void RawServer::post(std::function<void()> work) {
  std::lock_guard<std::mutex> lock(mutex_);
  work_.push_back(std::move(work));
}

void RawServer::run() {
  while (!stop_) {
    std::vector<std::function<void()>> work;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      work.swap(work_);
    }
    for (auto& w : work) w();
    if (!work.empty()) enet_host_flush(host_);
    ENetEvent event;
    if (enet_host_service(host_, &event, 2) <= 0) continue;
    switch (event.type) {
      case ENET_EVENT_TYPE_CONNECT:
        event.peer->data = reinterpret_cast<void*>(static_cast<intptr_t>(peers_.size()));
        peers_.push_back(event.peer);
        break;
      case ENET_EVENT_TYPE_RECEIVE: {
        std::string_view bytes(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength);
        if (event.channelID == wire::kChannelControl) {
          if (wire::peek_type(bytes) == wire::ControlType::hello) on_hello(event.peer, bytes);
        } else if (event.channelID == wire::kChannelRoomReliable || event.channelID == wire::kChannelRoomUnreliable) {
          std::lock_guard<std::mutex> lock(mutex_);
          packets_.push_back(Packet{static_cast<int>(reinterpret_cast<intptr_t>(event.peer->data)), event.channelID,
                                    std::string(bytes)});
          changed_.notify_all();
        }
        enet_packet_destroy(event.packet);
        break;
      }
      case ENET_EVENT_TYPE_DISCONNECT: {
        auto index = static_cast<size_t>(reinterpret_cast<intptr_t>(event.peer->data));
        if (index < peers_.size() && peers_[index] == event.peer) peers_[index] = nullptr;
        break;
      }
      default:
        break;
    }
  }
}

void RawServer::on_hello(ENetPeer* peer, std::string_view bytes) {
  wire::Hello hello;
  std::string error;
  if (!wire::decode_hello(bytes, hello, error)) return;
  wire::Welcome welcome;
  welcome.slot = static_cast<uint16_t>(reinterpret_cast<intptr_t>(peer->data));
  welcome.max_clients = 16;
  welcome.tick_rate_hz = 30;
  if (!hello.codecs.empty()) welcome.codec = config_.codec;
  welcome.session_id = config_.first_session_id + welcome.slot;
  if (config_.tokens) {
    welcome.session_token = kToken;
    welcome.resumed = config_.resume && hello.session_token == kToken;
  }
  send_packet(peer, wire::kChannelControl, wire::encode_welcome(welcome));
  ++welcomes_;
  std::lock_guard<std::mutex> lock(mutex_);
  hellos_.push_back(std::move(hello));
  changed_.notify_all();
}

std::optional<wire::Hello> RawServer::wait_hello(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !hellos_.empty(); }))
    return std::nullopt;
  wire::Hello hello = std::move(hellos_.front());
  hellos_.pop_front();
  return hello;
}

std::optional<RawServer::Packet> RawServer::wait_packet(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !packets_.empty(); }))
    return std::nullopt;
  Packet packet = std::move(packets_.front());
  packets_.pop_front();
  return packet;
}

bool RawServer::quiet_for(int ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !changed_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return !packets_.empty(); });
}

void RawServer::send(int peer, uint8_t channel, std::string bytes) {
  post([this, peer, channel, bytes = std::move(bytes)] {
    if (peer >= 0 && peer < static_cast<int>(peers_.size()) && peers_[peer]) send_packet(peers_[peer], channel, bytes);
  });
}

void RawServer::disconnect_all(uint32_t code) {
  post([this, code] {
    for (ENetPeer*& peer : peers_)
      if (peer) enet_peer_disconnect(peer, code);
  });
}

void RawServer::drop_all() {
  post([this] {
    for (ENetPeer*& peer : peers_) {
      if (peer) enet_peer_reset(peer);
      peer = nullptr;
    }
  });
}

}  // namespace nshost::test
