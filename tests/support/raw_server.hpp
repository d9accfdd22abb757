#pragma once
// A bare ENet host on 127.0.0.1 playing the nshost server by hand, for tests
// of the client side that need to say exactly what a server would (or would
// not): it answers every hello with a welcome built from its Config and
// records what the clients send on the room channels. Its host runs on its
// own thread (so a client in this process or a child process is served while
// the test waits); the test talks to it through the calls below, each safe
// from the test thread and bounded by a deadline. A plain ENet host issues no
// connect challenge, so an nshost client needs nothing special to join it.
#include <enet/enet.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/transport/wire.hpp"

namespace nshost::test {

class RawServer {
 public:
  struct Config {
    std::string codec = "msgpack";  // the welcome's codec; "" sends none (a server without rooms)
    uint64_t first_session_id = 7;  // peer k (0-based, in connect order) gets first_session_id + k
    // Give each welcome a session token; a later hello with that token is
    // answered as a resume (welcome.resumed) if `resume` is set, else as a
    // fresh join.
    bool tokens = false;
    bool resume = true;
  };
  // One message a client sent: its peer's index (connect order) and bytes.
  struct Packet {
    int peer = -1;
    uint8_t channel = 0;
    std::string bytes;
  };

  RawServer();
  explicit RawServer(Config config);
  ~RawServer();
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "nshost://127.0.0.1:" + std::to_string(port_); }

  // The next hello not yet returned (decoded), or nullopt at the deadline.
  std::optional<wire::Hello> wait_hello(int timeout_ms = 5000);
  // The next room-channel (3 or 4) packet not yet returned, or nullopt.
  std::optional<Packet> wait_packet(int timeout_ms = 5000);
  // Nothing more on the room channels within `ms`.
  bool quiet_for(int ms);
  // Sends on `channel` to peer `peer` (reliable on 3, unreliable otherwise).
  void send(int peer, uint8_t channel, std::string bytes);
  // Disconnects every peer with `code` (the client sees the server leave).
  void disconnect_all(uint32_t code);
  // Forgets every peer without a word, as a dead network would: the client's
  // link times out.
  void drop_all();
  int welcomes() const { return welcomes_; }

 private:
  void run();
  void on_hello(ENetPeer* peer, std::string_view bytes);
  void post(std::function<void()> work);

  EnetLibrary enet_;
  Config config_;
  ENetHost* host_ = nullptr;
  int port_ = 0;
  std::vector<ENetPeer*> peers_;  // server thread only: index = Packet::peer
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<wire::Hello> hellos_;
  std::deque<Packet> packets_;
  std::vector<std::function<void()>> work_;
  std::atomic<int> welcomes_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace nshost::test
