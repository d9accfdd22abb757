// --role=host, the listen server (docs/netcode.md "Listen server"): real
// nshost processes on loopback. One host serves its own local client (joined
// in-process, no socket: the server sees its address as "local") and a
// remote --role=client process over ENet; both exchange messages with the
// server on both channels, share a room and see each other through state
// sync. The local client quitting leaves the remote one served; SIGTERM
// ends the host with exit 0 and the remote client hears "server_left". The
// last case drives a LocalLink by hand: the sender's packet itself arrives,
// in order, within ENet's budgets, with ENet's disconnect events.
#include <doctest/doctest.h>
#include <signal.h>

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/roles/local_link.hpp"
#include "runtime/roles/peer_link.hpp"
#include "tests/support/process.hpp"

using namespace nshost::test;

namespace {

std::string game() { return test_script("listen/game.lua"); }

// Order-free: pumps the child's output until `needle` is anywhere in what it
// wrote to stdout (or stderr), or `timeout_ms` passes.
bool saw(ChildProcess& p, std::string_view needle, bool on_stderr = false, int timeout_ms = 10000) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    std::string text = on_stderr ? p.stderr_text() : p.stdout_text();
    if (text.find(needle) != std::string::npos) return true;
    if (on_stderr) p.wait_stderr("\x01 no such line", 20);
    else p.wait_stdout("\x01 no such line", 20);
  }
  return false;
}

// How many of process `pid`'s open descriptors are UDP sockets (their inodes
// listed in /proc/net/udp), or -1 if /proc cannot be read.
int udp_sockets_of(pid_t pid) {
  std::set<std::string> udp_inodes;
  std::ifstream table("/proc/net/udp");
  if (!table) return -1;
  std::string line;
  std::getline(table, line);  // the header
  while (std::getline(table, line)) {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    std::istringstream fields(line);
    std::string field;
    for (int i = 0; i < 10 && fields >> field; ++i) {
    }
    udp_inodes.insert(field);
  }
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = opendir(dir.c_str());
  if (!fds) return -1;
  int count = 0;
  while (dirent* entry = readdir(fds)) {
    char target[256];
    ssize_t n = readlink((dir + "/" + entry->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    std::string link(target, static_cast<size_t>(n));
    if (link.rfind("socket:[", 0) == 0 && udp_inodes.count(link.substr(8, link.size() - 9))) ++count;
  }
  closedir(fds);
  return count;
}

}  // namespace

TEST_CASE("listen server: serves its local client in-process and a remote one over ENet") {
  Server host = start_host(game());
  REQUIRE_MESSAGE(host.port > 0, host.process->stderr_text());
  ChildProcess& h = *host.process;
  auto dump = [&] { return "host stdout:\n" + h.stdout_text() + "\nhost stderr:\n" + h.stderr_text(); };

  // Two states in one process, each with its own role; both know they are a listen server.
  CHECK_MESSAGE(saw(h, "S role=server listen=true"), dump());
  CHECK_MESSAGE(saw(h, "local role=client listen=true"), dump());
  // The local client crossed no socket: the server saw it join from "local".
  CHECK_MESSAGE(saw(h, "S auth nil from local"), dump());
  CHECK_MESSAGE(saw(h, "client local joined in slot 0", true), dump());
  CHECK_MESSAGE(saw(h, "S connect 1 listen=true"), dump());
  CHECK_MESSAGE(saw(h, "local connected"), dump());
  // Messages both ways with the local client, reliable and unreliable.
  CHECK_MESSAGE(saw(h, "S receive 1 hello local reliable"), dump());
  CHECK_MESSAGE(saw(h, "S receive 1 ping local unreliable"), dump());
  CHECK_MESSAGE(saw(h, "local got echo hello local reliable"), dump());
  CHECK_MESSAGE(saw(h, "local got echo ping local unreliable"), dump());
  // One UDP socket in the whole process: the server's. The local client has none.
  CHECK(udp_sockets_of(h.pid()) == 1);

  auto remote = start_client(game(), host.port);
  auto rdump = [&] { return dump() + "\nremote stdout:\n" + remote->stdout_text() + "\nremote stderr:\n" + remote->stderr_text(); };
  CHECK_MESSAGE(saw(*remote, "remote role=client listen=false"), rdump());
  CHECK_MESSAGE(saw(h, "S auth nil from 127.0.0.1:"), rdump());
  CHECK_MESSAGE(saw(*remote, "remote connected"), rdump());
  CHECK_MESSAGE(saw(h, "S receive 2 hello remote reliable"), rdump());
  CHECK_MESSAGE(saw(*remote, "remote got echo hello remote reliable"), rdump());
  // One room, and each sees the other's move through state sync.
  CHECK_MESSAGE(saw(*remote, "remote sees remote x=2 and local x=1"), rdump());
  CHECK_MESSAGE(saw(h, "local sees local x=1 and remote x=2"), rdump());
  CHECK_MESSAGE(saw(h, "room listen=true"), rdump());  // the room's state is a server state of the host

  // The remote's "seen" makes the server tell the local client to quit.
  CHECK_MESSAGE(saw(h, "local quitting"), rdump());
  CHECK_MESSAGE(saw(h, "local disconnect left"), rdump());
  CHECK_MESSAGE(saw(h, "S disconnect 1 left"), rdump());
  CHECK_MESSAGE(saw(h, "the local client stopped; still serving", true), rdump());
  // The remote is still served: it saw the local player go, and its next message is answered.
  CHECK_MESSAGE(saw(*remote, "remote sees the other gone"), rdump());
  CHECK_MESSAGE(saw(h, "S receive 2 after reliable"), rdump());
  CHECK_MESSAGE(saw(*remote, "remote got echo after reliable"), rdump());

  h.send_signal(SIGTERM);
  CHECK_MESSAGE(h.wait_exit(3000) == 0, rdump());
  CHECK_MESSAGE(saw(h, "S shutdown"), rdump());
  CHECK_MESSAGE(saw(*remote, "remote disconnect server_left"), rdump());
  CHECK_MESSAGE(remote->wait_exit(3000) == 0, rdump());
}

TEST_CASE("listen server: SIGTERM with the local client joined runs the server's shutdown and stops both, exit 0") {
  Server host = start_host(game());
  REQUIRE_MESSAGE(host.port > 0, host.process->stderr_text());
  ChildProcess& h = *host.process;
  auto dump = [&] { return "host stdout:\n" + h.stdout_text() + "\nhost stderr:\n" + h.stderr_text(); };
  REQUIRE_MESSAGE(saw(h, "local got echo hello local reliable"), dump());
  h.send_signal(SIGTERM);
  CHECK_MESSAGE(h.wait_exit(3000) == 0, dump());
  std::string out = h.stdout_text();
  // The server's last word comes before its clients are told, the local one included.
  auto shutdown_at = out.find("S shutdown");
  auto told_at = out.find("local disconnect server_left");
  CHECK_MESSAGE(shutdown_at != std::string::npos, dump());
  CHECK_MESSAGE(told_at != std::string::npos, dump());
  CHECK(shutdown_at < told_at);
}

TEST_CASE("listen server: the in-process link refuses sends past its queued-bytes budget, then drains") {
  // --max-message-size=65536: the link holds at most 4 x 65536 bytes undelivered per direction.
  Server host = start_host(game(), {"--max-message-size=65536"}, {"FLOOD=1"});
  REQUIRE_MESSAGE(host.port > 0, host.process->stderr_text());
  ChildProcess& h = *host.process;
  auto dump = [&] { return "host stdout:\n" + h.stdout_text() + "\nhost stderr:\n" + h.stderr_text(); };
  // Ten 60000-byte sends in one handler: four fit (240000 <= 262144), the rest are refused.
  CHECK_MESSAGE(saw(h, "S flood accepted=4 refused=6 ENOBUFS"), dump());
  CHECK_MESSAGE(saw(h, "local got big 4"), dump());
  // Once delivered, the budget is free again: the link still carries both ways.
  CHECK_MESSAGE(saw(h, "S receive 1 again reliable"), dump());
  CHECK_MESSAGE(saw(h, "local got echo again reliable"), dump());
  h.send_signal(SIGTERM);
  CHECK_MESSAGE(h.wait_exit(3000) == 0, dump());
  CHECK(h.stdout_text().find("local got big 5") == std::string::npos);
}

TEST_CASE("listen server: a kicked or redirected local client ends, and the host keeps serving") {
  for (const char* how : {"kick", "redirect"}) {
    CAPTURE(how);
    Server host = start_host(game(), {}, {std::string("LOCAL_END=") + how});
    REQUIRE_MESSAGE(host.port > 0, host.process->stderr_text());
    ChildProcess& h = *host.process;
    auto dump = [&] { return "host stdout:\n" + h.stdout_text() + "\nhost stderr:\n" + h.stderr_text(); };
    if (std::string(how) == "kick") {
      CHECK_MESSAGE(saw(h, "S kick true"), dump());
      CHECK_MESSAGE(saw(h, "local disconnect kicked: bye"), dump());
      CHECK_MESSAGE(saw(h, "S disconnect 1 kicked"), dump());
      CHECK_MESSAGE(saw(h, "the local client stopped; still serving", true), dump());
    } else {
      // It cannot follow: it has no ENet host. It stays running, unjoined.
      CHECK_MESSAGE(saw(h, "S redirect true"), dump());
      CHECK_MESSAGE(saw(h, "S disconnect 1 redirect"), dump());
      CHECK_MESSAGE(saw(h, "local disconnect hop_failed: unsupported"), dump());
    }
    auto remote = start_client(game(), host.port);
    CHECK_MESSAGE(saw(*remote, "remote got echo hello remote reliable"), (dump() + remote->stderr_text()));
    h.send_signal(SIGTERM);
    CHECK_MESSAGE(h.wait_exit(3000) == 0, dump());
    CHECK_MESSAGE(saw(*remote, "remote disconnect server_left"), remote->stdout_text());
    CHECK(remote->wait_exit(3000) == 0);
  }
}

TEST_CASE("listen server: a local client that fails to load stops the host with exit 1 and the error") {
  ChildProcess p({nshost_binary(), "--role=host", "--port=0", "--headless", test_script("listen/client_fails.lua")});
  CHECK(p.wait_exit(5000) == 1);
  CHECK_MESSAGE(p.stderr_text().find("no local client here") != std::string::npos, p.stderr_text());
}

TEST_CASE("listen server: sys.is_listen_server() is false on a plain server") {
  Server server = start_server(game());
  REQUIRE_MESSAGE(server.port > 0, server.process->stderr_text());
  CHECK_MESSAGE(saw(*server.process, "S role=server listen=false"), server.process->stdout_text());
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
}

TEST_CASE("listen server: a client-only flag with --role=host is one readable line and exit 2") {
  struct Case {
    std::vector<std::string> flags;
    const char* expected;
  };
  const Case cases[] = {
      {{"--connect=nshost://127.0.0.1:9"}, "nshost: --connect is a --role=client option; a listen server's local client joins in-process"},
      {{"--reconnect=off"}, "nshost: --reconnect is a --role=client option"},
      {{"--bots=2"}, "nshost: --bots and --bots-ramp are client options; a listen server runs one local client"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args{nshost_binary(), "--role=host"};
    for (const auto& f : c.flags) args.push_back(f);
    args.push_back(game());
    ChildProcess p(args);
    CAPTURE(c.expected);
    CHECK(p.wait_exit(5000) == 2);
    CHECK_MESSAGE(p.stderr_text().find(c.expected) != std::string::npos, p.stderr_text());
  }
  ChildProcess url({nshost_binary(), "--role=host", "nshost://127.0.0.1:9"});
  CHECK(url.wait_exit(5000) == 2);
  CHECK_MESSAGE(url.stderr_text().find("a listen server runs a script, not a URL") != std::string::npos,
                url.stderr_text());
}

namespace {

// Records what a LocalLink hands one side, as an ENet listener would see it.
struct Recorder : nshost::EnetEndpoint::Listener {
  struct Seen {
    ENetEventType type;
    ENetPeer* peer;
    uint8_t channel;
    uint32_t data;
    const ENetPacket* packet;
    size_t references;  // the packet's reference count during the call
    std::string bytes;
  };
  std::vector<Seen> seen;
  void on_enet_event(ENetEvent& event) override {
    Seen s{event.type, event.peer, event.channelID, event.data, event.packet, 0, {}};
    if (event.packet) {
      s.references = event.packet->referenceCount;
      s.bytes.assign(reinterpret_cast<const char*>(event.packet->data), event.packet->dataLength);
    }
    seen.push_back(std::move(s));
  }
};

// Runs `loop` until `done` or 100 iterations (the link delivers on each).
template <class Done>
bool run_until(uv_loop_t* loop, Done done) {
  for (int i = 0; i < 100 && !done(); ++i) uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

}  // namespace

TEST_CASE("listen server: the in-process link hands over the sender's packet, in order, within ENet's budgets") {
  using nshost::LocalLink;
  using nshost::PeerLink;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    LocalLink link(&loop, 1024);
    REQUIRE(link.start() == 0);
    Recorder server, client;
    link.attach(LocalLink::Side::server, server);
    link.attach(LocalLink::Side::client, client);
    ENetPeer* to_server = link.connect();
    ENetPeer* to_client = link.peer(LocalLink::Side::server);
    CHECK(server.seen.empty());  // never inside the caller
    REQUIRE(run_until(&loop, [&] { return !server.seen.empty() && !client.seen.empty(); }));
    CHECK(server.seen[0].type == ENET_EVENT_TYPE_CONNECT);
    CHECK(server.seen[0].peer == to_client);
    CHECK(client.seen[0].type == ENET_EVENT_TYPE_CONNECT);
    CHECK(PeerLink::describe(to_client) == "local");

    // The very packet the sender made arrives, holding the one reference the link took.
    ENetPacket* packet = PeerLink::make_packet("abc", nshost::Channel::reliable);
    REQUIRE(PeerLink(nullptr, to_server).queue(packet, nshost::Channel::reliable));
    CHECK(packet->referenceCount == 1);
    CHECK(link.queued_bytes(LocalLink::Side::server) == 3);
    // Then one message on every channel, in one order across them.
    for (uint8_t channel : {4, 0, 2, 3, 1}) {
      ENetPacket* p = enet_packet_create(&channel, 1, 0);
      REQUIRE(PeerLink(nullptr, to_server).queue_on(p, channel));
    }
    server.seen.clear();
    REQUIRE(run_until(&loop, [&] { return server.seen.size() == 6; }));
    CHECK(server.seen[0].packet == packet);
    CHECK(server.seen[0].references == 1);
    CHECK(server.seen[0].bytes == "abc");
    CHECK(server.seen[0].channel == nshost::wire::kChannelReliable);
    std::string order;
    for (size_t i = 1; i < 6; ++i) order += std::to_string(server.seen[i].channel);
    CHECK(order == "40231");
    CHECK(link.queued_bytes(LocalLink::Side::server) == 0);

    // Budgets: 1024 bytes a message, 4 x 1024 undelivered one way.
    std::string kb(1024, 'k');
    ENetPacket* too_big = enet_packet_create(nullptr, 1025, 0);
    CHECK_FALSE(PeerLink(nullptr, to_client).queue(too_big, nshost::Channel::unreliable));
    enet_packet_destroy(too_big);  // refused: still the caller's
    size_t accepted = 0;
    for (int i = 0; i < 6; ++i) accepted += PeerLink(nullptr, to_client).send(kb, nshost::Channel::reliable);
    CHECK(accepted == 4);
    CHECK(link.refused() == 3);
    client.seen.clear();
    REQUIRE(run_until(&loop, [&] { return client.seen.size() == 4; }));
    CHECK(PeerLink(nullptr, to_client).send(kb, nshost::Channel::reliable));  // drained: room again

    // A graceful disconnect: what was sent first, then DISCONNECT(code) to the
    // other side and DISCONNECT(0) to the initiator; no sends after it.
    PeerLink(nullptr, to_client).disconnect_later(2);
    CHECK_FALSE(PeerLink(nullptr, to_client).send("late", nshost::Channel::reliable));
    client.seen.clear();
    server.seen.clear();
    REQUIRE(run_until(&loop, [&] { return client.seen.size() == 2 && server.seen.size() == 1; }));
    CHECK(client.seen[0].bytes == kb);
    CHECK(client.seen[1].type == ENET_EVENT_TYPE_DISCONNECT);
    CHECK(client.seen[1].data == 2);
    CHECK(server.seen[0].type == ENET_EVENT_TYPE_DISCONNECT);
    CHECK(server.seen[0].data == 0);
    CHECK(to_client->state == ENET_PEER_STATE_DISCONNECTED);
    CHECK(to_server->state == ENET_PEER_STATE_DISCONNECTED);

    // A reset drops what is in flight and tells the other side code 0.
    link.connect();
    REQUIRE(run_until(&loop, [&] { return to_server->state == ENET_PEER_STATE_CONNECTED; }));
    CHECK(PeerLink(nullptr, to_server).send("lost", nshost::Channel::reliable));
    PeerLink(nullptr, to_server).reset();
    server.seen.clear();
    REQUIRE(run_until(&loop, [&] { return !server.seen.empty(); }));
    uv_run(&loop, UV_RUN_NOWAIT);
    REQUIRE(server.seen.size() == 1);  // the reset only: "lost" is gone
    CHECK(server.seen[0].type == ENET_EVENT_TYPE_DISCONNECT);
    CHECK(server.seen[0].data == 0);
    CHECK(link.queued_bytes(LocalLink::Side::server) == 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the idle handle's close
  CHECK(uv_loop_close(&loop) == 0);
}
