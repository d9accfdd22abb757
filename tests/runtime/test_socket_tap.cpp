// The transport tap's send batching: datagrams ENet sends while a
// SocketTap::Batch is open reach the kernel together, every one of them, in
// order, and a datagram the kernel refuses is counted without losing the rest.
// Real UDP sockets on loopback. The batching tests call the interposed
// enet_socket_send directly; the ENet host pair and the endpoint start-up
// tests go through libenet's own calls (enet_host_service/enet_host_flush),
// which is what the interposition has to catch.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/transport/socket_tap.hpp"
#include "runtime/core/uv_handle.hpp"

using namespace nshost;

namespace {

struct Socket {
  ENetSocket fd;
  explicit Socket(bool nonblocking) : fd(enet_socket_create(ENET_SOCKET_TYPE_DATAGRAM)) {
    REQUIRE(fd != ENET_SOCKET_NULL);
    ENetAddress any{};
    enet_address_set_host_ip(&any, "127.0.0.1");
    REQUIRE(enet_socket_bind(fd, &any) == 0);
    if (nonblocking) enet_socket_set_option(fd, ENET_SOCKOPT_NONBLOCK, 1);
    enet_socket_set_option(fd, ENET_SOCKOPT_RCVBUF, 1 << 20);
  }
  ~Socket() { enet_socket_destroy(fd); }
  ENetAddress address() const {
    ENetAddress a{};
    REQUIRE(enet_socket_get_address(fd, &a) == 0);
    return a;
  }
};

// Receives until `count` datagrams arrived or `timeout` passed; returns their bytes.
std::vector<std::string> receive(const Socket& socket, size_t count,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  std::vector<std::string> got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char data[2048];
  while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
    enet_uint32 condition = ENET_SOCKET_WAIT_RECEIVE;
    if (enet_socket_wait(socket.fd, &condition, 50) != 0 || !(condition & ENET_SOCKET_WAIT_RECEIVE)) continue;
    ENetBuffer buffer{};
    buffer.data = data;
    buffer.dataLength = sizeof data;
    int n = enet_socket_receive(socket.fd, nullptr, &buffer, 1);  // untapped: libenet's own
    if (n > 0) got.emplace_back(data, static_cast<size_t>(n));
  }
  return got;
}

// One datagram from two buffers, as ENet gathers a header and its commands.
int send_two_part(const Socket& from, const ENetAddress& to, const std::string& head, const std::string& body) {
  ENetBuffer buffers[2];
  buffers[0].data = const_cast<char*>(head.data());
  buffers[0].dataLength = head.size();
  buffers[1].data = const_cast<char*>(body.data());
  buffers[1].dataLength = body.size();
  return enet_socket_send(from.fd, &to, buffers, 2);
}

}  // namespace

TEST_CASE("socket tap: a batch holds every datagram until it closes, then delivers each, in order") {
  Socket sender(true);
  Socket receivers[3] = {Socket(true), Socket(true), Socket(true)};
  SocketTap tap(sender.fd, 1, NetsimConfig{});
  // Round-robin over the receivers, as ENet sends one datagram per peer per
  // pass: each receiver's datagrams are never adjacent as sent.
  const size_t rounds = SocketTap::kMaxGsoSegments + 16;
  auto payload = [](size_t r, size_t round) {
    return "r" + std::to_string(r) + "-" + std::to_string(1000 + round);
  };
  {
    SocketTap::Batch batch(tap);
    {
      SocketTap::Batch inner(tap);  // nested: only the outermost one sends
      for (size_t round = 0; round < rounds / 2; ++round)
        for (size_t r = 0; r < 3; ++r)
          CHECK(send_two_part(sender, receivers[r].address(), payload(r, round), std::string(40, 'x')) ==
                static_cast<int>(payload(r, round).size() + 40));
    }
    for (size_t round = rounds / 2; round < rounds; ++round)
      for (size_t r = 0; r < 3; ++r) send_two_part(sender, receivers[r].address(), payload(r, round), std::string(40, 'x'));
    CHECK(tap.stats().batch_syscalls == 0);  // nothing has left yet
  }
  for (size_t r = 0; r < 3; ++r) {
    std::vector<std::string> got = receive(receivers[r], rounds);
    REQUIRE(got.size() == rounds);
    for (size_t round = 0; round < rounds; ++round) CHECK(got[round] == payload(r, round) + std::string(40, 'x'));
  }
  CHECK(tap.stats().batched_out == 3 * rounds);
  CHECK(tap.stats().failed_out == 0);
  // Each receiver's run left as UDP GSO messages of at most kMaxGsoSegments
  // (6 here), all in one call, and still arrived as the datagrams they were.
  CHECK(tap.stats().gso_messages == 6);
  CHECK(tap.stats().batch_syscalls == 1);

  // Outside a batch a send goes straight out.
  send_two_part(sender, receivers[0].address(), "late", "");
  CHECK(receive(receivers[0], 1) == std::vector<std::string>{"late"});
  CHECK(tap.stats().batched_out == 3 * rounds);
}

TEST_CASE("socket tap: datagrams the kernel refuses mid-batch are counted and the rest still go") {
  Socket sender(true), receiver(true);
  SocketTap tap(sender.fd, 1, NetsimConfig{});
  ENetAddress to = receiver.address();
  ENetAddress port_zero = to;
  port_zero.port = 0;  // Linux refuses a UDP send to port 0 with EINVAL
  const size_t count = SocketTap::kMaxMessagesPerCall + 10;
  // 5, 6, 7 form one GSO run, refused whole, then resent one by one (and
  // refused one by one); 67 is refused on its own.
  auto refused = [](size_t i) { return (i >= 5 && i <= 7) || i == 67; };
  {
    SocketTap::Batch batch(tap);
    for (size_t i = 0; i < count; ++i)
      // ENet is told it went: the kernel sees it only when the batch leaves.
      CHECK(send_two_part(sender, refused(i) ? port_zero : to, std::to_string(i), "") ==
            static_cast<int>(std::to_string(i).size()));
  }
  std::vector<std::string> expected;
  for (size_t i = 0; i < count; ++i)
    if (!refused(i)) expected.push_back(std::to_string(i));
  std::vector<std::string> got = receive(receiver, expected.size());
  CHECK(got == expected);
  CHECK(tap.stats().failed_out == 4);
  CHECK(tap.stats().gso_fallbacks == 1);
  CHECK(tap.stats().last_send_errno == EINVAL);
  // Nothing else arrives: the refused ones did not go out late.
  CHECK(receive(receiver, 1, std::chrono::milliseconds(300)).empty());
}

TEST_CASE("socket tap: batched receives hand ENet every datagram in order and drop oversized ones") {
  Socket sender(true), receiver(true);
  const size_t batch = 8;
  SocketTap tap(receiver.fd, 4, NetsimConfig{}, batch);
  ENetAddress to = receiver.address();
  // A peer-0 header and an unreliable-send command header: what the tap's
  // filter lets through to ENet.
  auto datagram = [](size_t i) {
    std::string d(2 + sizeof(ENetProtocolCommandHeader), '\0');
    d[2] = static_cast<char>(ENET_PROTOCOL_COMMAND_SEND_UNRELIABLE);
    return d + "#" + std::to_string(i);
  };
  const size_t count = 20;
  std::vector<std::string> expected;
  for (size_t i = 0; i < count; ++i) {
    ENetBuffer buffer{};
    std::string d = i == 5 ? std::string(ENET_PROTOCOL_MAXIMUM_MTU + 100, 'x') : i == 9 ? std::string("x") : datagram(i);
    buffer.data = d.data();
    buffer.dataLength = d.size();
    REQUIRE(enet_socket_send(sender.fd, &to, &buffer, 1) == static_cast<int>(d.size()));  // untapped sender
    if (i != 5 && i != 9) expected.push_back(d);
  }
  std::vector<std::string> got;
  ENetAddress from{};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char data[ENET_PROTOCOL_MAXIMUM_MTU];
  while (got.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    ENetBuffer buffer{};
    buffer.data = data;
    buffer.dataLength = sizeof data;
    int n = enet_socket_receive(receiver.fd, &from, &buffer, 1);  // tapped: served from the batch
    REQUIRE(n >= 0);
    if (n > 0) {
      got.emplace_back(data, static_cast<size_t>(n));
      CHECK(from.port == sender.address().port);
      if (got.size() == 1) CHECK(tap.held_in() == batch - 1);  // all 20 were waiting: one call took 8
    }
  }
  CHECK(got == expected);
  CHECK(tap.held_in() == 0);
  CHECK(tap.stats().datagrams_in == count);
  CHECK(tap.stats().malformed_in == 2);
  CHECK(tap.stats().truncated_in == 1);
  CHECK(tap.stats().receive_syscalls == 3);  // 8 + 8 + 4
  ENetBuffer buffer{};
  buffer.data = data;
  buffer.dataLength = sizeof data;
  CHECK(enet_socket_receive(receiver.fd, &from, &buffer, 1) == 0);  // empty: would block
}

TEST_CASE("socket tap: a CONNECT without the cookie is challenged, the client tap resends it with the cookie") {
  EnetLibrary enet;
  ENetAddress bind{};
  enet_address_set_host_ip(&bind, "127.0.0.1");
  ENetHost* server = enet_host_create(&bind, 4, 3, 0, 0);
  REQUIRE(server);
  SocketTap server_tap(server->socket, server->peerCount, NetsimConfig{});
  server_tap.enable_connect_challenge();
  ENetAddress to{};
  enet_address_set_host_ip(&to, "127.0.0.1");
  REQUIRE(enet_socket_get_address(server->socket, &bind) == 0);
  to.port = bind.port;

  // An untapped client (plain libenet) never gets a peer.
  ENetHost* plain = enet_host_create(nullptr, 1, 3, 0, 0);
  REQUIRE(plain);
  REQUIRE(enet_host_connect(plain, &to, 3, 0));
  // A tapped one answers the challenge and connects.
  ENetHost* client = enet_host_create(nullptr, 1, 3, 0, 0);
  REQUIRE(client);
  SocketTap client_tap(client->socket, client->peerCount, NetsimConfig{});
  REQUIRE(enet_host_connect(client, &to, 3, 0));

  bool server_connected = false, client_connected = false, plain_connected = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!(server_connected && client_connected) && std::chrono::steady_clock::now() < deadline) {
    ENetEvent event;
    while (enet_host_service(server, &event, 1) > 0)
      if (event.type == ENET_EVENT_TYPE_CONNECT) server_connected = true;
    while (enet_host_service(client, &event, 1) > 0)
      if (event.type == ENET_EVENT_TYPE_CONNECT) client_connected = true;
    while (enet_host_service(plain, &event, 1) > 0)
      if (event.type == ENET_EVENT_TYPE_CONNECT) plain_connected = true;
  }
  CHECK(server_connected);
  CHECK(client_connected);
  CHECK_FALSE(plain_connected);
  CHECK(server_tap.stats().challenges_sent >= 2);  // one each, at least
  CHECK(client_tap.stats().challenges_answered >= 1);
  size_t peers_in_use = 0;
  for (size_t i = 0; i < server->peerCount; ++i) peers_in_use += server->peers[i].state != ENET_PEER_STATE_DISCONNECTED;
  CHECK(peers_in_use == 1);  // the plain client's CONNECTs hold none

  // A cookie is bound to its address and port, and to its time bucket.
  ENetAddress other = to;
  other.port = static_cast<uint16_t>(to.port + 1);
  int64_t now = monotonic_ns();
  CHECK(server_tap.cookie_for(to, now) != server_tap.cookie_for(other, now));
  CHECK(server_tap.cookie_for(to, now) != server_tap.cookie_for(to, now + 2 * SocketTap::kCookieBucketNs));
  CHECK(server_tap.cookie_for(to, now).size() == SocketTap::kCookieBytes);

  enet_host_destroy(plain);
  enet_host_destroy(client);
  enet_host_destroy(server);
}

namespace {

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

struct Quiet : EnetEndpoint::Listener {
  int events = 0;
  void on_enet_event(ENetEvent&) override { ++events; }
};

ENetAddress loopback(uint16_t port) {
  ENetAddress a{};
  enet_address_set_host_ip(&a, "127.0.0.1");
  a.port = port;
  return a;
}

}  // namespace

TEST_CASE("socket tap: an ENet host pair's own sends and receives go through the taps") {
  EnetLibrary enet;
  ENetAddress bind = loopback(0);
  ENetHost* server = enet_host_create(&bind, 4, 3, 0, 0);
  ENetHost* client = enet_host_create(nullptr, 1, 3, 0, 0);
  REQUIRE(server);
  REQUIRE(client);
  SocketTap server_tap(server->socket, server->peerCount, NetsimConfig{});
  SocketTap client_tap(client->socket, client->peerCount, NetsimConfig{});
  REQUIRE(enet_socket_get_address(server->socket, &bind) == 0);
  ENetAddress to = loopback(bind.port);
  ENetPeer* peer = enet_host_connect(client, &to, 3, 0);
  REQUIRE(peer);

  const std::string message = "through libenet";
  bool sent = false, delivered = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (int pass = 0; pass < 3000 && !delivered && std::chrono::steady_clock::now() < deadline; ++pass) {
    ENetEvent event;
    {
      // libenet's enet_host_service sends from inside libenet: held by the
      // batch only if its enet_socket_send call reaches the tap.
      SocketTap::Batch batch(client_tap);
      while (enet_host_service(client, &event, 0) > 0)
        if (event.type == ENET_EVENT_TYPE_CONNECT && !sent) {
          enet_peer_send(peer, 0, enet_packet_create(message.data(), message.size(), ENET_PACKET_FLAG_RELIABLE));
          sent = true;
        }
    }
    while (enet_host_service(server, &event, 1) > 0)
      if (event.type == ENET_EVENT_TYPE_RECEIVE) {
        delivered = std::string(reinterpret_cast<char*>(event.packet->data), event.packet->dataLength) == message;
        enet_packet_destroy(event.packet);
      }
  }
  CHECK(delivered);
  CHECK(client_tap.stats().batched_out >= 2);  // the CONNECT and the packet, at least
  CHECK(client_tap.stats().batch_syscalls >= 1);
  CHECK(client_tap.stats().datagrams_in >= 1);  // the VERIFY_CONNECT, at least
  CHECK(server_tap.stats().datagrams_in >= 2);
  CHECK(server_tap.stats().malformed_in == 0);
  enet_host_destroy(client);
  enet_host_destroy(server);
}

TEST_CASE("endpoint start-up: the tap check passes, leaves no trace, and the endpoints still connect") {
  EnetLibrary enet;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Quiet server_events, client_events;
    ENetAddress bind = loopback(0);
    EnetEndpoint::Config server_config;
    server_config.bind = &bind;
    server_config.peer_count = 8;
    server_config.receive_batch = 8;
    std::string error;
    auto server = EnetEndpoint::create(&loop, server_config, server_events, error);
    REQUIRE_MESSAGE(server, error);
    EnetEndpoint::Config client_config;
    client_config.netsim.enabled = true;  // the probe is not shaped: it goes and comes back at once
    client_config.netsim.loss = 1.0;
    auto lossy = EnetEndpoint::create(&loop, client_config, client_events, error);
    REQUIRE_MESSAGE(lossy, error);
    client_config.netsim = NetsimConfig{};
    auto client = EnetEndpoint::create(&loop, client_config, client_events, error);
    REQUIRE_MESSAGE(client, error);
    CHECK(client->local_port() != 0);  // bound for the probe, as its first send would have

    for (const EnetEndpoint* e : {server.get(), lossy.get(), client.get()}) {
      const SocketTap::Stats& st = e->tap().stats();
      CHECK(st.datagrams_in == 0);
      CHECK(st.malformed_in == 0);
      CHECK(st.batched_out == 0);
      CHECK(e->host()->totalSentPackets == 0);
      CHECK(e->host()->totalReceivedPackets == 0);
      for (size_t i = 0; i < e->host()->peerCount; ++i) CHECK(e->host()->peers[i].state == ENET_PEER_STATE_DISCONNECTED);
    }
    CHECK(server_events.events == 0);
    CHECK(client_events.events == 0);

    // The endpoints work as before: the client connects.
    ENetAddress to = loopback(server->local_port());
    REQUIRE(enet_host_connect(client->host(), &to, 3, 0));
    client->mark_dirty();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (int turn = 0; turn < 1000 && (server_events.events == 0 || client_events.events == 0) &&
                       std::chrono::steady_clock::now() < deadline;
         ++turn)
      uv_run(&loop, UV_RUN_ONCE);
    CHECK(server_events.events == 1);
    CHECK(client_events.events == 1);
  }
  for (int turn = 0; turn < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++turn) {
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("endpoint start-up: when libenet's calls bypass the tap, create() refuses with the transport line") {
  EnetLibrary enet;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    ScopedEnv bypass("NSHOST_TEST_BYPASS_SOCKET_TAP", "1");
    Quiet events;
    ENetAddress bind = loopback(0);
    EnetEndpoint::Config config;
    config.bind = &bind;
    std::string error;
    CHECK(EnetEndpoint::create(&loop, config, events, error) == nullptr);
    CHECK(error == kTapBypassedError);
    EnetEndpoint::Config client_config;
    error.clear();
    CHECK(EnetEndpoint::create(&loop, client_config, events, error) == nullptr);
    CHECK(error == kTapBypassedError);
    CHECK(events.events == 0);
  }
  {
    // "0" leaves the tap on.
    ScopedEnv off("NSHOST_TEST_BYPASS_SOCKET_TAP", "0");
    Quiet events;
    std::string error;
    CHECK_MESSAGE(EnetEndpoint::create(&loop, EnetEndpoint::Config{}, events, error) != nullptr, error);
  }
  for (int turn = 0; turn < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++turn) {
  }
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("socket tap: libenet's originals are found behind the tap") {
  CHECK(SocketTap::check_originals().empty());
}
