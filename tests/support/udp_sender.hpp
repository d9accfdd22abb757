#pragma once
// Raw UDP for hostile tests: a socket bound to any 127/8 source address, and
// the ENet CONNECT datagram a client sends first, for connects that are never
// followed up.
#include <arpa/inet.h>
#include <enet/protocol.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/transport/wire.hpp"

namespace nshost::test {

class UdpSender {
 public:
  UdpSender(const char* source, int port) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, source, &local.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local);
    to_.sin_family = AF_INET;
    to_.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &to_.sin_addr);
  }
  ~UdpSender() { close(fd_); }
  UdpSender(const UdpSender&) = delete;
  UdpSender& operator=(const UdpSender&) = delete;
  void send(const void* data, size_t length) {
    sendto(fd_, data, length, 0, reinterpret_cast<const sockaddr*>(&to_), sizeof to_);
  }
  // One datagram waiting on the socket, if any (never blocks).
  std::optional<std::string> receive() {
    char data[4096];
    ssize_t n = recv(fd_, data, sizeof data, 0);
    if (n < 0) return std::nullopt;
    return std::string(data, static_cast<size_t>(n));
  }

 private:
  int fd_;
  sockaddr_in to_{};
};

// An ENet connect command as a client's first datagram, never followed up.
inline std::vector<uint8_t> half_open_connect(uint32_t connect_id) {
  struct ENET_PACKED {
    ENetProtocolHeader header;
    ENetProtocolConnect connect;
  } d{};
  d.header.peerID = htons(static_cast<uint16_t>(ENET_PROTOCOL_MAXIMUM_PEER_ID) |
                          static_cast<uint16_t>(ENET_PROTOCOL_HEADER_FLAG_SENT_TIME));
  d.header.sentTime = htons(1);
  d.connect.header.command = static_cast<uint8_t>(ENET_PROTOCOL_COMMAND_CONNECT) |
                             static_cast<uint8_t>(ENET_PROTOCOL_COMMAND_FLAG_ACKNOWLEDGE);
  d.connect.header.channelID = 0xFF;
  d.connect.header.reliableSequenceNumber = htons(1);
  d.connect.incomingSessionID = 0xFF;
  d.connect.outgoingSessionID = 0xFF;
  d.connect.mtu = htonl(1400);
  d.connect.windowSize = htonl(32768);
  d.connect.channelCount = htonl(wire::kChannelCount);
  d.connect.packetThrottleInterval = htonl(5000);
  d.connect.packetThrottleAcceleration = htonl(2);
  d.connect.packetThrottleDeceleration = htonl(2);
  d.connect.connectID = connect_id;
  const auto* p = reinterpret_cast<const uint8_t*>(&d);
  return {p, p + sizeof d};
}

}  // namespace nshost::test
