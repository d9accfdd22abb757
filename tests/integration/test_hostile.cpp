// Hostile and bad input against a real nshost server on loopback: garbage on
// the port, malformed control messages, floods, peers that never finish the
// handshake, runaway scripts, and a stop under load.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <enet/protocol.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <random>
#include <thread>
#include <utility>

#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/transport/wire.hpp"
#include "tests/support/process.hpp"
#include "tests/support/raw_peer.hpp"
#include "tests/support/udp_sender.hpp"

using namespace nshost;
using namespace nshost::test;

TEST_CASE("hostile: garbage datagrams and malformed control messages are counted while other clients carry on") {
  Server server = start_server(test_script("hostile.lua"));
  REQUIRE(server.port > 0);
  auto good = start_client(test_script("hostile.lua"), server.port);
  REQUIRE(good->wait_stdout("joined"));

  UdpSender garbage("127.0.0.1", server.port);
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> bytes(rng() % 64);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (bytes.size() >= 2) bytes[0] |= 0x0F, bytes[1] = 0xFE;  // a peer id no host has
    garbage.send(bytes.data(), bytes.size());
  }
  auto counted = server.process->wait_stderr("malformed datagram(s)");
  REQUIRE(counted);
  MESSAGE(*counted);

  EnetLibrary enet;
  for (const std::string& bad : {std::string("\x01NS", 3), std::string("\x01NSHT\x00\x02\x08\x00\x00\x00\x03" "abc", 15),
                                 std::string(1, '\x01'), std::string("\x09garbage", 8)}) {
    RawPeer peer(server.port);
    REQUIRE(peer.wait_connected());
    peer.send_control(bad);
    uint32_t code = 0;
    if (bad[0] == '\x01') {
      auto reply = peer.wait_control();
      REQUIRE(reply);
      wire::Notice notice;
      std::string error;
      REQUIRE(wire::decode_notice(*reply, notice, error));
      CHECK(notice.reason == "malformed_hello");
      CHECK(peer.wait_disconnect(3000, &code));
      CHECK(code == static_cast<uint32_t>(wire::DisconnectCode::rejected));
    } else {
      CHECK_FALSE(peer.wait_control(300));  // ignored; the hello may still come
    }
  }
  CHECK(server.process->wait_stderr("malformed_hello (not an nshost hello (bad magic))"));
  CHECK(server.process->wait_stderr("malformed_hello (session token of 3 bytes (expected 16))"));

  auto later = start_client(test_script("hostile.lua"), server.port, {}, {"SAY=ping"});
  CHECK(later->wait_stdout("got pong"));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  CHECK(good->wait_stdout("disconnected: server_left"));
  CHECK(good->stdout_text().find("disconnected:") == good->stdout_text().rfind("disconnected:"));
}

TEST_CASE("hostile: a handoff over --max-handoff-size is refused with handoff_too_large") {
  Server server = start_server(test_script("hostile.lua"), {"--max-handoff-size=1024"});
  REQUIRE(server.port > 0);
  EnetLibrary enet;
  RawPeer peer(server.port);
  wire::Hello hello;
  hello.handoff.assign(2000, 'h');
  auto answer = peer.join(hello);
  REQUIRE(answer);
  CHECK_FALSE(answer->welcomed);
  CHECK(answer->reason == "handoff_too_large");
  CHECK(server.process->wait_stderr("handoff_too_large (2000 bytes, limit 1024)"));
  CHECK(server.process->stdout_text().find("connect slot=") == std::string::npos);
}

TEST_CASE("hostile: peers that never say hello are capped and dropped after --handshake-timeout") {
  Server server = start_server(test_script("hostile.lua"),
                               {"--handshake-timeout=400", "--max-pending-handshakes=2", "--max-pending-per-address=8"});
  REQUIRE(server.port > 0);
  EnetLibrary enet;
  RawPeer a(server.port), b(server.port);
  REQUIRE(a.wait_connected());
  REQUIRE(b.wait_connected());
  // The third is over the cap, from the address holding the most pending
  // peers: its connect is refused (no peer), and the refusal is reported.
  RawPeer c(server.port);
  c.poll(100);  // answers the challenge; its CONNECT then meets the cap
  CHECK(server.process->wait_stderr("connect(s) from 1 address(es)"));
  c.poll(0);
  CHECK_FALSE(c.wait_connected(0));
  uint32_t code = 0;
  // The two silent ones go after the handshake timeout, and are told.
  CHECK(a.wait_disconnect(3000, &code));
  CHECK(code == static_cast<uint32_t>(wire::DisconnectCode::rejected));
  CHECK(b.wait_disconnect(3000));
  CHECK(server.process->wait_stderr("no hello within 400 ms"));
  auto good = start_client(test_script("hostile.lua"), server.port, {}, {"SAY=ping"});
  CHECK(good->wait_stdout("got pong"));
}

TEST_CASE("hostile: a client over --max-message-rate is kicked with rate_limit while the others stay") {
  Server server = start_server(test_script("hostile.lua"), {"--max-message-rate=200"});
  REQUIRE(server.port > 0);
  auto calm = start_client(test_script("hostile.lua"), server.port, {}, {"CHATTY=1"});
  REQUIRE(calm->wait_stdout("joined"));
  auto flooder = start_client(test_script("hostile.lua"), server.port, {}, {"CHATTY=40"});
  CHECK(flooder->wait_stdout("disconnected: kicked: rate_limit", 10000));
  CHECK(flooder->wait_exit() == 0);
  CHECK(server.process->wait_stdout("disconnect slot=1 reason=kicked"));
  auto later = start_client(test_script("hostile.lua"), server.port, {}, {"SAY=ping"});
  CHECK(later->wait_stdout("got pong"));
  CHECK(calm->stdout_text().find("disconnected") == std::string::npos);
}

TEST_CASE("scripts: the memory cap aborts only the handler (string.rep and table growth included)") {
  Server server = start_server(test_script("hostile.lua"), {"--memory-limit=16777216"});
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("hostile.lua"), server.port, {},
                             {"SAY=alloc:1000,alloc:100000000,hog,ping"});
  CHECK(client->wait_stdout("got allocated 1000"));
  auto rep = server.process->wait_stderr("error in server.receive: not enough memory");
  CHECK(rep);
  auto hog = server.process->wait_stderr("error in server.receive: not enough memory");
  CHECK(hog);
  CHECK(client->wait_stdout("got pong"));
  CHECK(client->stdout_text().find("allocated 100000000") == std::string::npos);
}

TEST_CASE("scripts: the handler timeout and the instruction budget stop a runaway loop in pcall and in a coroutine") {
  for (auto [flag, message] : std::initializer_list<std::pair<const char*, const char*>>{
           {"--handler-timeout=150", "handler timed out (ran over 150 ms; --handler-timeout)"},
           {"--instruction-budget=2000000", "instruction budget exceeded (over 2000000 instructions"}}) {
    CAPTURE(flag);
    Server server = start_server(test_script("hostile.lua"), {flag});
    REQUIRE(server.port > 0);
    auto client = start_client(test_script("hostile.lua"), server.port, {}, {"SAY=spin,cospin,ping"});
    for (int i = 0; i < 2; ++i) {
      auto err = server.process->wait_stderr("error in server.receive:");
      REQUIRE(err);
      CHECK_MESSAGE(err->find(message) != std::string::npos, *err);
    }
    CHECK(client->wait_stdout("got pong"));
    // Each limit is per handler call: ticks keep running afterwards.
    CHECK(server.process->wait_stdout("tick rate"));
  }
}

TEST_CASE("hostile: SIGTERM under load runs server.shutdown, tells every client and exits 0 promptly") {
  Server server = start_server(test_script("hostile.lua"), {"--max-message-rate=0"});
  REQUIRE(server.port > 0);
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (int i = 0; i < 8; ++i)
    clients.push_back(start_client(test_script("hostile.lua"), server.port, {}, {"CHATTY=20"}));
  for (auto& c : clients) REQUIRE(c->wait_stdout("joined"));
  auto start = std::chrono::steady_clock::now();
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_stdout("shutdown handler ran"));
  CHECK(server.process->wait_exit(5000) == 0);
  auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  CHECK(stop_ms < 3000);
  MESSAGE("stopped under load in " << stop_ms << " ms");
  for (auto& c : clients) {
    CHECK(c->wait_stdout("disconnected: server_left"));
    CHECK(c->wait_exit() == 0);
  }
}

TEST_CASE("flood: garbage and half-open handshakes at thousands per second while real clients join and play") {
  Server server = start_server(test_script("hostile.lua"), {"--log-level=debug"});
  REQUIRE(server.port > 0);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> garbage_sent{0}, connects_sent{0};
  std::thread flood([&] {
    UdpSender junk("127.0.0.3", server.port), opener("127.0.0.2", server.port);
    std::mt19937 rng(9);
    while (!stop) {
      for (int i = 0; i < 5; ++i) {
        std::vector<uint8_t> bytes(1 + rng() % 200);
        for (auto& b : bytes) b = static_cast<uint8_t>(rng());
        junk.send(bytes.data(), bytes.size());
        ++garbage_sent;
        auto connect = half_open_connect(rng());
        opener.send(connect.data(), connect.size());
        ++connects_sent;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto flood_start = std::chrono::steady_clock::now();
  const int kPlayers = 8;
  int joined = 0;
  std::vector<std::unique_ptr<ChildProcess>> players;
  for (int i = 0; i < kPlayers; ++i) {
    players.push_back(start_client(test_script("hostile.lua"), server.port, {}, {"SAY=ping"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& p : players) joined += p->wait_stdout("got pong", 10000).has_value();
  // Keep the flood on for three more tick-rate reports (about 3 s).
  std::vector<std::string> rates;
  for (int i = 0; i < 3; ++i)
    if (auto line = server.process->wait_stdout("tick rate", 3000)) rates.push_back(*line);
  stop = true;
  flood.join();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flood_start).count();
  auto counted = server.process->wait_stderr("malformed datagram(s)");
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  auto totals = server.process->wait_stderr("transport:");
  REQUIRE(totals);
  MESSAGE(*totals);
  MESSAGE("flood: " << garbage_sent / seconds << " garbage/s and " << connects_sent / seconds
                    << " half-open connects/s for " << seconds << " s; " << joined << "/" << kPlayers
                    << " players joined and played");
  for (auto& r : rates) MESSAGE(r);
  if (counted) MESSAGE(*counted);
  CHECK(joined == kPlayers);
  CHECK(counted);
  CHECK(garbage_sent / seconds > 1000);
  CHECK(connects_sent / seconds > 1000);
  CHECK(rates.size() == 3);
  for (auto& r : rates) CHECK(std::stod(r.substr(10)) > 25.0);
}
