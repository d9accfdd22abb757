// Batched sends through ENet: one flush of a server endpoint sends a
// fragmented unreliable snapshot to 150 real ENet peers (450 datagrams; each
// snapshot's 3 fragments one UDP GSO message, 64 messages per sendmmsg), and
// every peer reassembles its own — which needs every fragment, intact, since
// unreliable fragments are never resent.
#include <doctest/doctest.h>
#include <uv.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/transport/enet_endpoint.hpp"

using namespace nshost;

namespace {

struct Peers : EnetEndpoint::Listener {
  std::vector<ENetPeer*> connected;
  void on_enet_event(ENetEvent& event) override {
    if (event.type != ENET_EVENT_TYPE_CONNECT) return;
    // As ServerRole does: no throttle dropping unreliable packets.
    enet_peer_throttle_configure(event.peer, ENET_PEER_PACKET_THROTTLE_INTERVAL,
                                 ENET_PEER_PACKET_THROTTLE_ACCELERATION, 0);
    connected.push_back(event.peer);
  }
};

}  // namespace

TEST_CASE("send batching: one flush to 150 peers delivers every fragment of every snapshot") {
  EnetLibrary library;
  REQUIRE(library.ok());
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  constexpr size_t kClients = 150, kSnapshotBytes = 3000;  // 3 fragments at ENet's default MTU
  {
    ENetAddress bind{};
    enet_address_set_host_ip(&bind, "127.0.0.1");
    EnetEndpoint::Config config;
    config.bind = &bind;
    config.peer_count = kClients;
    Peers peers;
    std::string error;
    auto server = EnetEndpoint::create(&loop, config, peers, error);
    REQUIRE_MESSAGE(server, error);
    ENetAddress to = bind;
    to.port = server->local_port();

    struct Client {
      ENetHost* host = nullptr;
      std::string received;
      ~Client() {
        if (host) enet_host_destroy(host);
      }
    };
    std::vector<std::unique_ptr<Client>> clients;
    for (size_t i = 0; i < kClients; ++i) {
      ENetHost* host = enet_host_create(nullptr, 1, 3, 0, 0);  // untapped: plain libenet
      REQUIRE(host);
      clients.push_back(std::make_unique<Client>());
      clients.back()->host = host;
      REQUIRE(enet_host_connect(host, &to, 3, 0));
      enet_host_flush(host);
    }
    auto pump = [&](auto done) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!done() && std::chrono::steady_clock::now() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        for (auto& c : clients) {
          ENetEvent event;
          while (enet_host_service(c->host, &event, 0) > 0)
            if (event.type == ENET_EVENT_TYPE_RECEIVE) {
              c->received.assign(reinterpret_cast<char*>(event.packet->data), event.packet->dataLength);
              enet_packet_destroy(event.packet);
            }
        }
      }
    };
    pump([&] { return peers.connected.size() == kClients; });
    REQUIRE(peers.connected.size() == kClients);
    pump([&] {  // the connects' acknowledgements have left
      for (auto& c : clients)
        if (c->host->peers[0].state != ENET_PEER_STATE_CONNECTED) return false;
      return true;
    });

    SocketTap::Stats before = server->tap().stats();
    for (ENetPeer* peer : peers.connected) {
      std::string snapshot(kSnapshotBytes, static_cast<char>('A' + peer->incomingPeerID % 26));
      ENetPacket* packet =
          enet_packet_create(snapshot.data(), snapshot.size(), ENET_PACKET_FLAG_UNRELIABLE_FRAGMENT);
      REQUIRE(enet_peer_send(peer, 1, packet) == 0);
    }
    server->flush();
    const SocketTap::Stats& after = server->tap().stats();
    uint64_t datagrams = after.batched_out - before.batched_out;
    CHECK(datagrams >= kClients * 3);
    // Each snapshot's fragments leave as one UDP GSO message, 64 messages a call.
    CHECK(after.gso_messages - before.gso_messages >= kClients);
    CHECK(after.batch_syscalls - before.batch_syscalls <=
          (datagrams + SocketTap::kMaxMessagesPerCall - 1) / SocketTap::kMaxMessagesPerCall);
    CHECK(after.failed_out == 0);

    auto all_received = [&] {
      for (auto& c : clients)
        if (c->received.empty()) return false;
      return true;
    };
    pump(all_received);
    size_t complete = 0;
    for (auto& c : clients) {
      uint16_t id = c->host->peers[0].outgoingPeerID;  // the server's slot for this client
      if (c->received == std::string(kSnapshotBytes, static_cast<char>('A' + id % 26))) ++complete;
    }
    CHECK(complete == kClients);
    clients.clear();
    server.reset();
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // let the closed handles finish
  CHECK(uv_loop_close(&loop) == 0);
}
