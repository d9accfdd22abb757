// The malformed-datagram filter of the socket tap: what an ENet datagram must
// look like before libenet parses it, and the header readers the tap's files
// share (declared in runtime/transport/socket_tap.hpp).
#include <enet/protocol.h>

#include "runtime/transport/socket_tap.hpp"

namespace nshost {

const char* verdict_name(DatagramVerdict verdict) {
  switch (verdict) {
    case DatagramVerdict::ok: return "ok";
    case DatagramVerdict::too_short: return "too short";
    case DatagramVerdict::bad_peer_id: return "unknown peer id";
    case DatagramVerdict::compressed: return "compressed";
    case DatagramVerdict::bad_command: return "bad command";
  }
  return "?";
}

DatagramVerdict check_enet_datagram(const uint8_t* data, size_t length, size_t peer_count) {
  if (length < 2) return DatagramVerdict::too_short;
  uint16_t raw = static_cast<uint16_t>((data[0] << 8) | data[1]);
  size_t header = (raw & ENET_PROTOCOL_HEADER_FLAG_SENT_TIME) ? 4 : 2;
  if (length < header + sizeof(ENetProtocolCommandHeader)) return DatagramVerdict::too_short;
  if (raw & ENET_PROTOCOL_HEADER_FLAG_COMPRESSED) return DatagramVerdict::compressed;
  uint16_t peer_id = raw & ~(ENET_PROTOCOL_HEADER_FLAG_MASK | ENET_PROTOCOL_HEADER_SESSION_MASK);
  if (peer_id != ENET_PROTOCOL_MAXIMUM_PEER_ID && peer_id >= peer_count) return DatagramVerdict::bad_peer_id;
  uint8_t command = data[header] & ENET_PROTOCOL_COMMAND_MASK;
  if (command == ENET_PROTOCOL_COMMAND_NONE || command >= ENET_PROTOCOL_COMMAND_COUNT)
    return DatagramVerdict::bad_command;
  // Without a peer only a connect means anything.
  if (peer_id == ENET_PROTOCOL_MAXIMUM_PEER_ID && command != ENET_PROTOCOL_COMMAND_CONNECT)
    return DatagramVerdict::bad_command;
  return DatagramVerdict::ok;
}

size_t datagram_header_bytes(const uint8_t* data) {
  return ((data[0] << 8 | data[1]) & ENET_PROTOCOL_HEADER_FLAG_SENT_TIME) ? 4 : 2;
}

bool datagram_peerless(const uint8_t* data, size_t length) {
  return length >= 2 && ((data[0] << 8 | data[1]) & 0x0FFF) == ENET_PROTOCOL_MAXIMUM_PEER_ID;
}

size_t datagram_connect_offset(const uint8_t* data, size_t length) {
  if (!datagram_peerless(data, length)) return 0;
  size_t header = datagram_header_bytes(data);
  if (length < header + sizeof(ENetProtocolConnect)) return 0;
  if ((data[header] & ENET_PROTOCOL_COMMAND_MASK) != ENET_PROTOCOL_COMMAND_CONNECT) return 0;
  return header;
}

}  // namespace nshost
