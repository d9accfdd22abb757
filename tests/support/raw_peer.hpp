#pragma once
// A bare ENet peer speaking the nshost wire protocol by hand, for tests that
// need to say things a well-behaved nshost client never would (a forged
// token, no hello at all). Blocking, with deadlines; one ENet host each,
// with a SocketTap, so it answers the server's connect challenge as an nshost
// client does.
#include <enet/enet.h>

#include <memory>
#include <optional>
#include <string>

#include "runtime/transport/socket_tap.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost::test {

class RawPeer {
 public:
  // Starts connecting to 127.0.0.1:port from `source` (any 127/8 address).
  explicit RawPeer(int port, const char* source = "127.0.0.1");
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  bool wait_connected(int timeout_ms = 5000);
  void send_control(const std::string& bytes);
  // Sends reliable data (on `channel`) and waits until the server has
  // acknowledged it.
  bool send_data_acked(const std::string& bytes, int timeout_ms = 5000, uint8_t channel = wire::kChannelReliable);
  // The next control message, or nullopt at the deadline or on disconnect.
  std::optional<std::string> wait_control(int timeout_ms = 5000);
  // True once the server has disconnected us (code in `code`).
  bool wait_disconnect(int timeout_ms, uint32_t* code = nullptr);
  // Drops the link without telling the server, as a dead network would.
  void cut();
  // Disconnects with `code` and waits (bounded) for the server's acknowledgement.
  void disconnect(uint32_t code, int timeout_ms = 1000);
  // Services the host for `timeout_ms` (acknowledgements, incoming data).
  void poll(int timeout_ms);
  const SocketTap& tap() const { return *tap_; }

  // Connects, sends `hello` and returns the answer: a welcome, or the
  // reason of a reject.
  struct Answer {
    bool welcomed = false;
    wire::Welcome welcome;
    std::string reason;
  };
  std::optional<Answer> join(const wire::Hello& hello, int timeout_ms = 5000);
  // Dials the server again from the same socket (after cut()) and joins.
  std::optional<Answer> join_again(const wire::Hello& hello, int timeout_ms = 5000);

 private:
  bool pump(int timeout_ms);  // one event at most; false at the deadline

  ENetHost* host_ = nullptr;
  std::unique_ptr<SocketTap> tap_;
  ENetPeer* peer_ = nullptr;
  ENetAddress server_{};
  bool connected_ = false;
  bool disconnected_ = false;
  uint32_t disconnect_code_ = 0;
  std::optional<std::string> control_;
};

}  // namespace nshost::test
