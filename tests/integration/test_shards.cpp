// Shards end to end: several real nshost servers on loopback, clients that
// hop and get redirected between them, fetched script bundles, the sandbox
// and the failure cases (docs/shards.md).
#include <doctest/doctest.h>
#include <enet/enet.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "runtime/script/bundle.hpp"
#include "runtime/transport/enet_endpoint.hpp"
#include "runtime/transport/wire.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

// A fresh bundle cache per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/nshost-shards-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string shard_script(const std::string& tree) { return test_script("shards/" + tree + "/game.lua"); }
std::string url_of(int port) { return "nshost://127.0.0.1:" + std::to_string(port); }

// A headless client of `tree` (from disk) joining `port`.
std::unique_ptr<ChildProcess> alpha_client(int port, const TempDir& cache, std::vector<std::string> env,
                                           std::vector<std::string> extra = {}) {
  extra.push_back("--cache-dir=" + cache.path);
  return start_client(shard_script("alpha"), port, extra, env);
}

// A client started from a URL alone.
std::unique_ptr<ChildProcess> url_client(int port, const TempDir& cache, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{nshost_binary(), "--role=client", "--headless", "--cache-dir=" + cache.path};
  for (auto& a : extra) args.push_back(a);
  args.push_back(url_of(port));
  return std::make_unique<ChildProcess>(args);
}

void stop(ChildProcess& p) {
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit() == 0);
}

}  // namespace

TEST_CASE("same-script hop: the client's Lua state survives, the handoff reaches both sides, the origin sees hop") {
  TempDir cache;
  Server origin = start_server(shard_script("alpha"));
  Server dest = start_server(shard_script("alpha"));
  REQUIRE(origin.port > 0);
  REQUIRE(dest.port > 0);
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(dest.port), "HOP_HANDOFF=ann"});
  CHECK(client->wait_stdout("alpha connect visits=1 handoff="));
  CHECK(client->wait_stdout("hop returned true"));
  auto line = client->wait_stdout("alpha connect visits=2");
  REQUIRE_MESSAGE(line, client->stderr_text());
  CHECK(*line == "alpha connect visits=2 handoff=ann");
  CHECK(origin.process->wait_stdout("server disconnect reason=hop"));
  CHECK(dest.process->wait_stdout("server connect slot=0 handoff=ann"));
  CHECK(client->stderr_text().find("fetching") == std::string::npos);
  stop(*client);
  stop(*origin.process);
  stop(*dest.process);
}

TEST_CASE("different-script hop: fetches, verifies and runs the destination's tree, the next time from the cache") {
  TempDir cache;
  Server origin = start_server(shard_script("alpha"));
  Server dest = start_server(shard_script("beta"));
  REQUIRE(origin.port > 0);
  REQUIRE(dest.port > 0);
  // Logged before "listening on", which start_server already waited for.
  std::string log = dest.process->stderr_text();
  auto at = log.find("serving script bundle ");
  REQUIRE(at != std::string::npos);
  std::string hash = log.substr(at + 22, 64);
  for (int round = 0; round < 2; ++round) {
    auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(dest.port)});
    auto line = client->wait_stdout("beta connect");
    REQUIRE_MESSAGE(line, (client->stdout_text() + client->stderr_text()));
    // The fetched tree runs sandboxed (no io), with its own module, and gets the handoff.
    CHECK(*line == "beta connect handoff=carry sandboxed=true beta greets you");
    // Sent by beta's server.connect while the client was still fetching: held, then delivered.
    CHECK(client->wait_stdout("beta receive hello from beta server on reliable"));
    CHECK(client->wait_stderr(round == 0 ? "fetching script bundle " + hash : "script bundle " + hash + " from the cache"));
    CHECK(client->wait_stderr("running fetched bundle " + hash));
    CHECK(dest.process->wait_stdout("beta server connect handoff=carry"));
    CHECK(origin.process->wait_stdout("server disconnect reason=hop"));
    stop(*client);
  }
  CHECK(std::filesystem::exists(cache.path + "/" + hash + ".nsb"));
  CHECK(dest.process->wait_stderr("sent script bundle"));
  CHECK_FALSE(dest.process->wait_stderr("sent script bundle", 300));  // fetched once only
  stop(*origin.process);
  stop(*dest.process);
}

TEST_CASE("timers die with the state a different-script hop replaces, survive a same-script hop, run in a fetched state") {
  TempDir cache;
  Server origin = start_server(shard_script("alpha"));
  Server same = start_server(shard_script("alpha"));
  Server other = start_server(shard_script("beta"));
  REQUIRE(origin.port > 0);
  REQUIRE(same.port > 0);
  REQUIRE(other.port > 0);
  auto count = [](const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  {
    auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(same.port), "ALPHA_TIMER=1"});
    REQUIRE_MESSAGE(client->wait_stdout("alpha connect visits=2"), client->stderr_text());
    // The same state goes on, its timer with it.
    CHECK(client->wait_stdout("alpha timer"));
    CHECK(client->wait_stdout("alpha timer"));
    stop(*client);
  }
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(other.port), "ALPHA_TIMER=1"});
  REQUIRE_MESSAGE(client->wait_stdout("beta connect"), client->stderr_text());
  size_t before = count(client->stdout_text(), "alpha timer");
  // The fetched, sandboxed state runs its own timer (5 beats, 100 ms); the
  // replaced state's timer fired no more meanwhile.
  REQUIRE_MESSAGE(client->wait_stdout("beta timer 5"), client->stderr_text());
  CHECK(count(client->stdout_text(), "alpha timer") == before);
  stop(*client);
  stop(*origin.process);
  stop(*same.process);
  stop(*other.process);
}

TEST_CASE("redirect: the server sends the client on with its own handoff, the origin sees redirect") {
  TempDir cache;
  Server dest = start_server(shard_script("beta"));
  REQUIRE(dest.port > 0);
  Server origin = start_server(shard_script("alpha"), {}, {"REDIRECT_TO=" + url_of(dest.port)});
  REQUIRE(origin.port > 0);
  auto client = alpha_client(origin.port, cache, {});
  CHECK(origin.process->wait_stdout("redirect returned true"));
  auto line = client->wait_stdout("beta connect");
  REQUIRE_MESSAGE(line, client->stderr_text());
  CHECK(line->find("handoff=from-alpha") != std::string::npos);
  CHECK(dest.process->wait_stdout("beta server connect handoff=from-alpha"));
  CHECK(origin.process->wait_stdout("server disconnect reason=redirect"));
  stop(*client);
  stop(*origin.process);
  stop(*dest.process);
}

TEST_CASE("a redirect that arrives while the client is still fetching the origin's bundle is followed") {
  TempDir cache;
  Server dest = start_server(shard_script("beta"));
  REQUIRE(dest.port > 0);
  Server origin = start_server(shard_script("alpha"), {}, {"REDIRECT_TO=" + url_of(dest.port)});
  REQUIRE(origin.port > 0);
  auto client = url_client(origin.port, cache);  // fetches alpha; redirected from server.connect
  auto line = client->wait_stdout("beta connect");
  REQUIRE_MESSAGE(line, client->stderr_text());
  CHECK(line->find("handoff=from-alpha") != std::string::npos);
  CHECK(client->stdout_text().find("alpha connect") == std::string::npos);
  std::string log = client->stderr_text();
  auto fetching = log.find("fetching script bundle");
  auto redirected = log.find("redirected to " + url_of(dest.port));
  CHECK(fetching != std::string::npos);
  CHECK(redirected != std::string::npos);
  CHECK(fetching < redirected);
  CHECK(origin.process->wait_stdout("server disconnect reason=redirect"));
  stop(*client);
  stop(*origin.process);
  stop(*dest.process);
}

TEST_CASE("a client started from a URL alone fetches and runs what the server serves") {
  TempDir cache;
  Server server = start_server(shard_script("beta"));
  REQUIRE(server.port > 0);
  auto client = url_client(server.port, cache);
  auto line = client->wait_stdout("beta connect");
  REQUIRE_MESSAGE(line, client->stderr_text());
  CHECK(*line == "beta connect handoff= sandboxed=true beta greets you");
  CHECK(client->wait_stdout("beta receive hello from beta server on reliable"));
  stop(*client);
  stop(*server.process);
}

TEST_CASE("hop to an unreachable shard: hop_failed, the client keeps running and may hop again") {
  TempDir cache;
  EnetLibrary enet;
  ENetAddress any{};
  any.host = ENET_HOST_ANY;
  ENetHost* silent = enet_host_create(&any, 1, 1, 0, 0);  // never answers
  REQUIRE(silent);
  ENetAddress bound{};
  enet_socket_get_address(silent->socket, &bound);
  Server origin = start_server(shard_script("alpha"));
  Server retry = start_server(shard_script("alpha"));
  REQUIRE(origin.port > 0);
  REQUIRE(retry.port > 0);
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(bound.port), "RETRY_TO=" + url_of(retry.port)});
  auto line = client->wait_stdout("alpha disconnect: hop_failed: unreachable", 15000);
  REQUIRE_MESSAGE(line, client->stderr_text());
  CHECK(client->wait_stdout("alive after hop_failed"));
  CHECK(client->wait_stdout("retry returned true"));
  CHECK(client->wait_stdout("alpha connect visits=2 handoff=retry"));
  stop(*client);
  enet_host_destroy(silent);
  stop(*origin.process);
  stop(*retry.process);
}

TEST_CASE("hop refused by the destination's handshake: hop_failed: rejected: full") {
  TempDir cache;
  Server origin = start_server(shard_script("alpha"));
  Server full = start_server(shard_script("alpha"), {"--max-clients=1"});
  REQUIRE(origin.port > 0);
  REQUIRE(full.port > 0);
  auto occupant = alpha_client(full.port, cache, {});
  REQUIRE(occupant->wait_stdout("alpha connect visits=1"));
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(full.port)});
  CHECK(client->wait_stdout("alpha disconnect: hop_failed: rejected: full"));
  CHECK(client->wait_stdout("alive after hop_failed"));
  stop(*client);
  stop(*occupant);
  stop(*origin.process);
  stop(*full.process);
}

TEST_CASE("a bundle over the client's --max-bundle-size: hop_failed: bundle_too_large, nothing fetched") {
  TempDir cache;
  Server origin = start_server(shard_script("alpha"));
  Server dest = start_server(shard_script("beta"));
  REQUIRE(origin.port > 0);
  REQUIRE(dest.port > 0);
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(dest.port)}, {"--max-bundle-size=1024"});
  CHECK(client->wait_stdout("alpha disconnect: hop_failed: bundle_too_large"));
  CHECK(client->wait_stdout("alive after hop_failed"));
  CHECK(dest.process->wait_stdout("beta server disconnect reason=left"));
  CHECK(dest.process->stderr_text().find("sent script bundle") == std::string::npos);
  stop(*client);
  stop(*origin.process);
  stop(*dest.process);
}

TEST_CASE("a handoff over 64 KiB: hop_failed: handoff_too_large") {
  TempDir cache;
  Server origin = start_server(shard_script("alpha"));
  Server dest = start_server(shard_script("alpha"));
  REQUIRE(origin.port > 0);
  REQUIRE(dest.port > 0);
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(dest.port), "HOP_HANDOFF_BYTES=70000"});
  CHECK(client->wait_stdout("alpha disconnect: hop_failed: handoff_too_large (70000 bytes, limit 65536)"));
  CHECK(client->wait_stdout("alive after hop_failed"));
  CHECK(origin.process->wait_stdout("server disconnect reason=hop"));
  CHECK_FALSE(dest.process->wait_stdout("server connect", 300));
  stop(*client);
  stop(*origin.process);
  stop(*dest.process);
}

namespace {

// A shard that lies: it announces one hash and serves a bundle with another.
class LyingShard {
 public:
  LyingShard() {
    ENetAddress address{};
    enet_address_set_host_ip(&address, "127.0.0.1");
    host_ = enet_host_create(&address, 4, wire::kChannelCount, 0, 0);
    REQUIRE(host_);
    ENetAddress bound{};
    enet_socket_get_address(host_->socket, &bound);
    port = bound.port;
    Bundle bundle;
    bundle.entry = "game.lua";
    bundle.files.push_back({"game.lua", "print('this must never run')\n"});
    served_ = encode_bundle(bundle);
    announced_ = sha256("some other tree");
    thread_ = std::thread([this] { run(); });
  }
  ~LyingShard() {
    stop_ = true;
    thread_.join();
    enet_host_destroy(host_);
  }
  int port = 0;

 private:
  void send(ENetPeer* peer, const std::string& bytes) {
    enet_peer_send(peer, wire::kChannelControl,
                   enet_packet_create(bytes.data(), bytes.size(), ENET_PACKET_FLAG_RELIABLE));
  }
  void run() {
    ENetEvent event;
    while (!stop_) {
      if (enet_host_service(host_, &event, 10) <= 0 || event.type != ENET_EVENT_TYPE_RECEIVE) continue;
      std::string_view bytes(reinterpret_cast<char*>(event.packet->data), event.packet->dataLength);
      auto type = wire::peek_type(bytes);
      if (type == wire::ControlType::hello) {
        wire::Welcome welcome;
        welcome.max_clients = 4;
        welcome.tick_rate_hz = 30;
        welcome.script_hash = announced_;
        welcome.bundle_bytes = static_cast<uint32_t>(served_.size());
        send(event.peer, wire::encode_welcome(welcome));
      } else if (type == wire::ControlType::bundle_request) {
        send(event.peer, wire::encode_bundle_part(0, served_));
      }
      enet_packet_destroy(event.packet);
    }
  }
  ENetHost* host_ = nullptr;
  std::string served_, announced_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("a bundle whose SHA-256 is not the announced one: hop_failed: bad_hash, nothing runs or is cached") {
  TempDir cache;
  EnetLibrary enet;
  LyingShard liar;
  Server origin = start_server(shard_script("alpha"));
  REQUIRE(origin.port > 0);
  auto client = alpha_client(origin.port, cache, {"HOP_TO=" + url_of(liar.port)});
  CHECK(client->wait_stdout("alpha disconnect: hop_failed: bad_hash"));
  CHECK(client->wait_stdout("alive after hop_failed"));
  CHECK(client->stdout_text().find("this must never run") == std::string::npos);
  CHECK(std::filesystem::is_empty(cache.path));
  stop(*client);
  stop(*origin.process);
}

TEST_CASE("sandbox: fetched code cannot read a file, run a command or load bytecode, --sandbox does the same locally") {
  auto check_probe = [](ChildProcess& p) {
    REQUIRE_MESSAGE(p.wait_stdout("probe done"), (p.stdout_text() + p.stderr_text()));
    std::string out = p.stdout_text();
    auto has = [&](const std::string& s) { return out.find(s) != std::string::npos; };
    // Each removed function raises a message that names it.
    auto refused = [&](const std::string& label, const std::string& name) {
      CHECK_MESSAGE(has("probe " + label + " ok=false result="), label);
      CHECK_MESSAGE(has(name + " is not available to fetched scripts (sandbox)"), name);
    };
    refused("io", "io.write");
    refused("io.open", "io.open");
    refused("os.execute", "os.execute");
    refused("os.getenv", "os.getenv");
    CHECK(has("probe os.time ok=true result=number"));
    CHECK(has("probe os.clock ok=true result=number"));
    refused("debug", "debug.getinfo");
    refused("dofile", "dofile");
    refused("loadfile", "loadfile");
    refused("string.dump", "string.dump");
    refused("package.loadlib", "package.loadlib");
    CHECK(has("probe binary load ok=true result=nil attempt to load a binary chunk"));
    CHECK(has("probe binary text-mode load ok=true result=nil attempt to load a binary chunk"));
    CHECK(has("probe text load ok=true result=42"));
    CHECK(has("probe require escape ok=false"));
    CHECK(has("probe require shipped ok=true result=table"));
    CHECK_FALSE(has("pwned"));
  };
  SUBCASE("fetched") {
    TempDir cache;
    Server server = start_server(shard_script("probe"));
    REQUIRE(server.port > 0);
    auto client = url_client(server.port, cache);
    check_probe(*client);
    stop(*client);
    stop(*server.process);
  }
  SUBCASE("local with --sandbox") {
    ChildProcess server({nshost_binary(), "--role=server", "--port=0", "--sandbox", shard_script("probe")});
    check_probe(server);
    CHECK(server.wait_exit() == 0);
  }
}

TEST_CASE("a runaway loop in a fetched client.tick is stopped by the instruction budget and a hoarding one by the memory cap, the client keeps running") {
  TempDir cache;
  Server server = start_server(shard_script("runaway"));
  REQUIRE(server.port > 0);
  auto client = url_client(server.port, cache, {"--instruction-budget=2000000", "--memory-limit=16777216"});
  CHECK(client->wait_stdout("runaway starts"));
  auto err = client->wait_stderr("error in client.tick: instruction budget exceeded");
  REQUIRE_MESSAGE(err, client->stderr_text());
  CHECK(client->wait_stdout("alive after runaway"));
  // The memory cap: the hoarding handler fails, the client goes on.
  CHECK(client->wait_stdout("hoarding starts"));
  CHECK(client->wait_stderr("error in client.tick: not enough memory"));
  CHECK(client->wait_stdout("alive after hoarding"));
  stop(*client);
  stop(*server.process);
}

TEST_CASE("command line: a client takes a URL instead of a script, a server does not") {
  {
    ChildProcess p({nshost_binary(), "--role=server", "nshost://127.0.0.1:1"});
    CHECK(p.wait_exit() == 2);
    CHECK(p.stderr_text().find("a server runs a script, not a URL") != std::string::npos);
  }
  {
    ChildProcess p({nshost_binary(), "--role=client", "--connect=nshost://127.0.0.1:1", "nshost://127.0.0.1:2"});
    CHECK(p.wait_exit() == 2);
  }
}

namespace {

// A UDP port that was free a moment ago (for a server whose URL others need first).
int free_udp_port() {
  EnetLibrary enet;
  ENetAddress address{};
  enet_address_set_host_ip(&address, "127.0.0.1");
  ENetHost* probe = enet_host_create(&address, 1, 1, 0, 0);
  REQUIRE(probe);
  ENetAddress bound{};
  enet_socket_get_address(probe->socket, &bound);
  enet_host_destroy(probe);
  return bound.port;
}

}  // namespace

TEST_CASE("shards example: lobby to lobby keeps state, lobby to arena fetches, the arena redirects back") {
  TempDir cache;
  int lobby1_port = free_udp_port();
  Server arena = start_server(example_script("shards/arena/game.lua"), {},
                              {"LOBBY_URL=" + url_of(lobby1_port), "ROUND_TICKS=30"});
  REQUIRE(arena.port > 0);
  Server lobby2 = start_server(example_script("shards/lobby/game.lua"), {},
                               {"LOBBY_NAME=lobby-2", "ARENA_URL=" + url_of(arena.port)});
  REQUIRE(lobby2.port > 0);
  Server lobby1 = start_server(example_script("shards/lobby/game.lua"), {"--port=" + std::to_string(lobby1_port)},
                               {"LOBBY_NAME=lobby-1", "ARENA_URL=" + url_of(arena.port),
                                "NEXT_LOBBY_URL=" + url_of(lobby2.port)});
  REQUIRE(lobby1.port == lobby1_port);
  auto player = url_client(lobby1.port, cache);
  CHECK(player->wait_stdout("lobby-1: hello guest-0, visit 1 of this state"));
  // Same tree on lobby-2: the variables (name, visit count) carried over.
  CHECK(player->wait_stdout("lobby-2: hello guest-0, visit 2 of this state"));
  CHECK(lobby2.process->wait_stdout("lobby-2: player in slot 0 arrived (handoff \"guest-0\")"));
  CHECK(player->wait_stdout("arena: playing as guest-0 (fresh state, sandboxed: true)"));
  auto back = player->wait_stdout("lobby-1: back from the arena, guest-0 scored ");
  REQUIRE_MESSAGE(back, (player->stdout_text() + player->stderr_text()));
  CHECK(back->find("(visit 1 of this state)") != std::string::npos);  // fresh state again
  CHECK(arena.process->wait_stdout("arena: guest-0 left (redirect)"));
  CHECK(player->wait_stderr("script bundle"));  // the lobby tree came from the cache the second time
  CHECK(player->stderr_text().find("from the cache") != std::string::npos);
  CHECK(player->wait_exit() == 0);
  stop(*lobby1.process);
  stop(*lobby2.process);
  stop(*arena.process);
}

TEST_CASE("a sandboxed server whose every tick hits the budget still admits clients and stops on SIGTERM") {
  TempDir cache;
  Server server = start_server(shard_script("spin"), {"--sandbox", "--instruction-budget=30000000"});
  REQUIRE(server.port > 0);
  CHECK(server.process->wait_stderr("error in server.tick: instruction budget exceeded"));
  auto client = url_client(server.port, cache);
  CHECK(client->wait_stdout("spin client connect"));
  CHECK(server.process->wait_stdout("spin server connect slot=0"));
  stop(*server.process);
  stop(*client);
}

TEST_CASE("a client from a URL alone with no server to fetch from exits 1 saying why") {
  TempDir cache;
  EnetLibrary enet;
  ENetAddress any{};
  any.host = ENET_HOST_ANY;
  ENetHost* silent = enet_host_create(&any, 1, 1, 0, 0);  // never answers
  REQUIRE(silent);
  ENetAddress bound{};
  enet_socket_get_address(silent->socket, &bound);
  auto client = url_client(bound.port, cache);
  CHECK(client->wait_exit(15000) == 1);
  CHECK(client->stderr_text().find("no script to run: connect_failed") != std::string::npos);
  enet_host_destroy(silent);
}
