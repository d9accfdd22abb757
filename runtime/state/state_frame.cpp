// The headers of the state-sync frames (docs/protocol.md "State sync: frames").
#include "runtime/state/state_bytes.hpp"
#include "runtime/state/state_codec.hpp"

namespace nshost::state {

bool is_state_frame(std::string_view packet) {
  if (packet.empty()) return false;
  auto b = static_cast<uint8_t>(packet[0]);
  return b >= static_cast<uint8_t>(FrameKind::snapshot) && b <= static_cast<uint8_t>(FrameKind::resync);
}

const char* resync_reason_name(ResyncReason reason) {
  switch (reason) {
    case ResyncReason::gap: return "gap";
    case ResyncReason::checksum: return "checksum";
    case ResyncReason::decode: return "decode";
    case ResyncReason::requested: return "requested";
  }
  return "unknown";
}

void write_header(const FrameHeader& header, std::string& out, const Schema* schema) {
  bytes::put_u8(out, static_cast<uint8_t>(header.kind));
  bytes::put_varint(out, header.room);
  if (header.kind == FrameKind::resync) {
    bytes::put_u8(out, static_cast<uint8_t>(header.reason));
    return;
  }
  bytes::put_le(out, header.seq, 2);
  bytes::put_le(out, header.checksum, 4);
  if (header.kind != FrameKind::snapshot) return;
  bytes::CountSlot length(out);
  size_t start = out.size();
  if (schema) schema->encode(out);
  else bytes::put_u8(out, static_cast<uint8_t>(Type::Kind::any));
  length.finish(out.size() - start);
}

bool read_header(std::string_view packet, FrameHeader& header, std::string_view& schema_bytes,
                 std::string_view& rest, std::string& error) {
  error.clear();
  bytes::StateReader in(packet, error, "state frame");
  uint8_t kind = 0;
  if (!in.u8(kind)) return false;
  if (!is_state_frame(packet)) return in.fail("not a state frame (first byte " + std::to_string(kind) + ")");
  header = FrameHeader{};
  header.kind = static_cast<FrameKind>(kind);
  if (!in.varint(header.room)) return false;
  schema_bytes = {};
  rest = {};
  if (header.kind == FrameKind::resync) {
    uint8_t reason = 0;
    if (!in.u8(reason)) return false;
    if (reason < static_cast<uint8_t>(ResyncReason::gap) || reason > static_cast<uint8_t>(ResyncReason::requested))
      return in.fail("unknown resync reason " + std::to_string(reason));
    header.reason = static_cast<ResyncReason>(reason);
  } else {
    uint64_t seq, checksum;
    if (!in.le(seq, 2) || !in.le(checksum, 4)) return false;
    header.seq = static_cast<uint16_t>(seq);
    header.checksum = static_cast<uint32_t>(checksum);
    if (header.kind == FrameKind::snapshot && !in.string(schema_bytes)) return false;
  }
  if (header.kind == FrameKind::ack || header.kind == FrameKind::resync) {
    if (!in.done()) return in.fail(std::to_string(in.remaining()) + " trailing bytes");
    return true;
  }
  std::string_view tail;
  in.bytes(in.remaining(), tail);
  rest = tail;
  return true;
}

}  // namespace nshost::state
