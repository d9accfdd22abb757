#pragma once
// Many bare ENet peers on one test ENetHost (one UDP socket, one peer slot
// each), speaking the nshost handshake and seed 003's catalog on the room
// channels by hand with the codec of runtime/rooms/codec.hpp. Blocking, with
// deadlines; the host has a SocketTap, so each peer answers the server's
// connect challenge as an nshost client does. Every peer connects with
// wire::kChannelCount channels.
#include <enet/enet.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/rooms/codec.hpp"
#include "runtime/transport/socket_tap.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost::test {

// One encoded catalog message {t, p [, id]}; `payload` writes p (a value).
std::string catalog_message(rooms::Codec codec, std::string_view type, uint32_t id,
                            const std::function<void(rooms::Writer&)>& payload);

class RoomPeers {
 public:
  // `count` peers, connecting to 127.0.0.1:port from `source`.
  RoomPeers(int port, size_t count, const char* source = "127.0.0.1");
  ~RoomPeers();
  RoomPeers(const RoomPeers&) = delete;
  RoomPeers& operator=(const RoomPeers&) = delete;

  size_t size() const { return peers_.size(); }
  // Connects every peer and sends each the hello `hello_for(i)` as soon as
  // it is connected; true when every peer has an answer (welcome or reject)
  // within the deadline.
  bool handshake(const std::function<wire::Hello(size_t)>& hello_for, int timeout_ms = 10000);
  bool welcomed(size_t i) const { return peers_[i].welcomed; }
  const wire::Welcome& welcome(size_t i) const { return peers_[i].welcome; }
  const std::string& reject_reason(size_t i) const { return peers_[i].reject_reason; }
  // The codec the welcome named (msgpack when it named none).
  rooms::Codec codec(size_t i) const { return peers_[i].codec; }

  // Queues raw bytes on an ENet channel (3: reliable, 4: unreliable); sent
  // at the next flush() or pump.
  void send_raw(size_t i, std::string_view bytes, uint8_t channel = wire::kChannelRoomReliable);
  // Queues a catalog message in the peer's codec; returns the id it carries.
  uint32_t send(size_t i, std::string_view type, const std::function<void(rooms::Writer&)>& payload,
                bool with_id = true, uint8_t channel = wire::kChannelRoomReliable);
  void flush();
  // Services the host for up to `timeout_ms` (at least once).
  void pump(int timeout_ms);

  // The next catalog message of type `type` peer i received (others of
  // other types stay queued), or nullopt at the deadline.
  std::optional<rooms::Message> next(size_t i, std::string_view type, int timeout_ms = 5000);
  // The rpc.response with this id.
  std::optional<rooms::Message> response(size_t i, uint32_t id, int timeout_ms = 5000);
  // Pumps until `done()` or the deadline; returns done()'s last answer
  // (called once per pass, so it may take what it finds).
  bool wait(const std::function<bool()>& done, int timeout_ms);
  // Catalog messages peer i has received and not yet taken.
  std::deque<rooms::Message>& inbox(size_t i) { return peers_[i].inbox; }
  // Catalog packets peer i could not decode (should stay 0).
  size_t undecodable(size_t i) const { return peers_[i].undecodable; }
  // State frames (first byte 0x01..0x04: docs/protocol.md "State sync")
  // peer i received on the room channels, raw, not yet taken.
  std::deque<std::string>& state_frames(size_t i) { return peers_[i].state_frames; }
  // Every packet peer i received on the room channels, concatenated.
  const std::string& room_bytes(size_t i) const { return peers_[i].room_bytes; }

  bool disconnected(size_t i) const { return peers_[i].disconnected; }
  uint32_t disconnect_code(size_t i) const { return peers_[i].disconnect_code; }
  // The reason of the last kick notice peer i received ("" if none).
  const std::string& kick_reason(size_t i) const { return peers_[i].kick_reason; }
  void disconnect(size_t i, uint32_t code);
  // Drops peer i's link without telling the server, as a dead network would.
  void cut(size_t i);
  // ENet's timeouts for peer i (enet_peer_timeout: RTT-based minimum and
  // maximum ms before an unacknowledged reliable packet ends the link).
  void set_timeout(size_t i, uint32_t minimum_ms, uint32_t maximum_ms);

 private:
  struct Peer {
    ENetPeer* peer = nullptr;
    bool connected = false, hello_sent = false, answered = false, welcomed = false, disconnected = false;
    uint32_t disconnect_code = 0;
    wire::Welcome welcome;
    std::string reject_reason, kick_reason;
    rooms::Codec codec = rooms::Codec::msgpack;
    std::deque<rooms::Message> inbox;
    std::deque<std::string> state_frames;
    std::string room_bytes;
    size_t undecodable = 0;
    uint32_t next_id = 1;
  };
  void on_event(ENetEvent& event);
  size_t index_of(ENetPeer* peer) const;

  ENetHost* host_ = nullptr;
  std::unique_ptr<SocketTap> tap_;
  std::vector<Peer> peers_;
  const std::function<wire::Hello(size_t)>* hello_for_ = nullptr;
};

}  // namespace nshost::test
