// Hot reload (--watch) end to end: a real server on a copy of
// tests/scripts/reload/ with real clients connected, the copy edited on disk
// (docs/operations.md "Hot reload").
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

// The script tree the server runs: game.lua, arena.lua and lib/tag.lua
// copied into a fresh directory, removed afterwards.
struct ScriptTree {
  std::string path;
  ScriptTree() {
    char pattern[] = "/tmp/nshost-reload-XXXXXX";
    path = mkdtemp(pattern);
    std::filesystem::copy_file(test_script("reload/game.lua"), path + "/game.lua");
    std::filesystem::copy_file(test_script("reload/arena.lua"), path + "/arena.lua");
    std::filesystem::create_directory(path + "/lib");
    std::filesystem::copy_file(test_script("reload/lib/tag.lua"), path + "/lib/tag.lua");
  }
  ~ScriptTree() { std::filesystem::remove_all(path); }
  std::string game() const { return path + "/game.lua"; }

  // Saves tests/scripts/reload/<variant> as `target` the way editors do: a
  // temporary file renamed over it.
  void save(const std::string& variant, const std::string& target) const {
    std::ifstream in(test_script("reload/" + variant), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::string temporary = path + "/" + target + ".tmp";
    std::ofstream(temporary, std::ios::binary) << text.str();
    std::filesystem::rename(temporary, path + "/" + target);
  }
};

// The integer after `key` in `line`, or -1.
long number_after(const std::string& line, const std::string& key) {
  auto at = line.find(key);
  if (at == std::string::npos) return -1;
  return std::strtol(line.c_str() + at + key.size(), nullptr, 10);
}

// A server on `tree` with --watch, watching the tree and lib/ by the time it
// returns.
Server start_watching(const ScriptTree& tree, std::vector<std::string> extra = {}) {
  extra.push_back("--watch");
  Server server = start_server(tree.game(), extra);
  if (server.port > 0) CHECK(server.process->stderr_text().find("reload: watching 2 directories") != std::string::npos);
  return server;
}

std::unique_ptr<ChildProcess> pinging_client(int port, std::vector<std::string> env = {}) {
  return start_client(test_script("reload/game.lua"), port, {}, std::move(env));
}

void stop(ChildProcess& p) {
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit() == 0);
}

}  // namespace

TEST_CASE("hot reload: the next message is answered by the edited handler, nobody is dropped, globals survive") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  auto a = pinging_client(server.port);
  auto b = pinging_client(server.port);
  REQUIRE(a->wait_stdout("reply v1 count="));
  REQUIRE(b->wait_stdout("reply v1 count="));

  tree.save("game_v2.lua", "game.lua");
  auto live = server.process->wait_stderr("reload: ", 10000);
  REQUIRE(live);
  CHECK_MESSAGE(live->find("reload: v2 live (1 file changed, ") != std::string::npos, *live);
  // In the server's own log order: every message after the swap is answered
  // by the new handler, and its counter goes on from the old one's.
  auto next = server.process->wait_stderr("answered ", 10000);
  REQUIRE(next);
  CHECK_MESSAGE(next->find("answered v2 count=") != std::string::npos, *next);
  auto migrated = server.process->wait_stdout("server.reload old_version=1 count=", 10000);
  REQUIRE(migrated);
  long count_at_reload = number_after(*migrated, "count=");
  CHECK(count_at_reload >= 2);
  CHECK(number_after(*next, "count=") == count_at_reload + 1);

  long first_v2[2];
  ChildProcess* clients[] = {a.get(), b.get()};
  for (int i = 0; i < 2; ++i) {
    auto reply = clients[i]->wait_stdout("reply v2 count=", 10000);
    REQUIRE(reply);
    first_v2[i] = number_after(*reply, "count=");
    // After its first v2 reply, a client never sees v1 again.
    CHECK_FALSE(clients[i]->wait_stdout("reply v1", 300));
  }
  CHECK(std::min(first_v2[0], first_v2[1]) == count_at_reload + 1);
  // Nobody left or was told to.
  CHECK(server.process->stderr_text().find(" left: ") == std::string::npos);
  for (ChildProcess* c : clients) CHECK(c->stdout_text().find("disconnected") == std::string::npos);
  stop(*server.process);
}

TEST_CASE("hot reload: a syntax error is rejected with file:line and the old handler keeps answering") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  auto client = pinging_client(server.port);
  REQUIRE(client->wait_stdout("reply v1 count="));

  tree.save("game_syntax_error.lua", "game.lua");
  auto rejected = server.process->wait_stderr("reload: ", 10000);
  REQUIRE(rejected);
  CHECK_MESSAGE(rejected->find("error: reload: rejected: " + tree.game() + ":5: ')' expected") != std::string::npos,
                *rejected);
  auto after = server.process->wait_stderr("answered ", 10000);
  REQUIRE(after);
  CHECK_MESSAGE(after->find("answered v1 count=") != std::string::npos, *after);
  // Not served to shards either: the bundle stays the one that runs.
  CHECK(server.process->stderr_text().find("serving script bundle", server.process->stderr_text().find(*rejected)) ==
        std::string::npos);

  // The rejected edit did not count as a version.
  tree.save("game_v2.lua", "game.lua");
  CHECK(server.process->wait_stderr("reload: v2 live", 10000));
  CHECK(server.process->wait_stdout("server.reload old_version=1 ", 10000));
  CHECK(client->wait_stdout("reply v2 count=", 10000));
  CHECK(client->stdout_text().find("disconnected") == std::string::npos);
  stop(*server.process);
}

TEST_CASE("hot reload: a top level that raises after replacing a handler is rejected and the old handler stays") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  auto client = pinging_client(server.port);
  REQUIRE(client->wait_stdout("reply v1 count="));

  tree.save("game_raises.lua", "game.lua");
  auto rejected = server.process->wait_stderr("reload: ", 10000);
  REQUIRE(rejected);
  CHECK_MESSAGE(rejected->find("error: reload: rejected: " + tree.game() +
                               ":7: top level fails after replacing server.receive") != std::string::npos,
                *rejected);
  // game_raises.lua defined a "v4" server.receive before it raised: the
  // handler table it filled was dropped, not half-installed.
  for (int i = 0; i < 3; ++i) {
    auto after = server.process->wait_stderr("answered ", 10000);
    REQUIRE(after);
    CHECK_MESSAGE(after->find("answered v1 count=") != std::string::npos, *after);
  }
  CHECK(client->stdout_text().find("reply v4") == std::string::npos);
  CHECK_FALSE(client->wait_stdout("reply v4", 300));
  stop(*server.process);
}

TEST_CASE("hot reload: a top level that never ends is stopped by --handler-timeout and rejected") {
  ScriptTree tree;
  Server server = start_watching(tree, {"--handler-timeout=200"});
  REQUIRE(server.port > 0);
  auto client = pinging_client(server.port);
  REQUIRE(client->wait_stdout("reply v1 count="));

  tree.save("game_loops.lua", "game.lua");
  auto rejected = server.process->wait_stderr("reload: ", 10000);
  REQUIRE(rejected);
  CHECK_MESSAGE(rejected->find("error: reload: rejected: ") != std::string::npos, *rejected);
  CHECK_MESSAGE(rejected->find("handler timed out (ran over 200 ms; --handler-timeout)") != std::string::npos,
                *rejected);
  auto after = server.process->wait_stderr("answered ", 10000);
  REQUIRE(after);
  CHECK_MESSAGE(after->find("answered v1 count=") != std::string::npos, *after);
  CHECK(client->stdout_text().find("disconnected") == std::string::npos);
  stop(*server.process);
}

TEST_CASE("hot reload: a module required from a subdirectory of the tree loads again") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  auto client = pinging_client(server.port);
  REQUIRE(client->wait_stdout("reply v1 count="));

  tree.save("tag_v2.lua", "lib/tag.lua");
  auto live = server.process->wait_stderr("reload: ", 10000);
  REQUIRE(live);
  CHECK_MESSAGE(live->find("reload: v2 live (1 file changed, ") != std::string::npos, *live);
  auto next = server.process->wait_stderr("answered ", 10000);
  REQUIRE(next);
  CHECK_MESSAGE(next->find("answered v2 count=") != std::string::npos, *next);
  CHECK(client->wait_stdout("reply v2 count=", 10000));
  stop(*server.process);
}

TEST_CASE("hot reload: a room's file reloads between two of its ticks, its globals kept, room.reload called") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  auto client = pinging_client(server.port, {"ROOM=1"});
  REQUIRE(client->wait_stdout("joined arena"));
  auto before = client->wait_stdout("room pong arena v1 ticks=");
  REQUIRE(before);

  tree.save("arena_v2.lua", "arena.lua");
  auto live = server.process->wait_stderr("reload: ", 10000);
  REQUIRE(live);
  CHECK_MESSAGE(live->find("reload: v2 live (1 file changed, ") != std::string::npos, *live);
  CHECK_MESSAGE(live->find("; 1 room(s) reloaded)") != std::string::npos, *live);
  // The room ran its new file between ticks (not inside room.tick), with the
  // tick count it had.
  auto migrated = server.process->wait_stdout("room.reload old_version=1 ticks=", 10000);
  REQUIRE(migrated);
  CHECK_MESSAGE(migrated->find(" in_tick=false") != std::string::npos, *migrated);
  long ticks_at_reload = number_after(*migrated, "ticks=");
  CHECK(ticks_at_reload >= number_after(*before, "ticks="));
  auto after = client->wait_stdout("room pong arena v2 ticks=", 10000);
  REQUIRE(after);
  CHECK(number_after(*after, "ticks=") >= ticks_at_reload);
  CHECK(server.process->stderr_text().find("disposed") == std::string::npos);
  CHECK(client->stdout_text().find("disconnected") == std::string::npos);
  stop(*server.process);
}

TEST_CASE("hot reload: a broken room file is rejected with file:line and the room keeps answering") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  auto client = pinging_client(server.port, {"ROOM=1"});
  REQUIRE(client->wait_stdout("room pong arena v1 ticks="));

  tree.save("arena_broken.lua", "arena.lua");
  // The main script did not change and reloads; the room rejects its file.
  REQUIRE(server.process->wait_stderr("reload: v2 live (1 file changed, ", 10000));
  auto rejected = server.process->wait_stderr("reload: rejected in 1 room(s), which keep their code: ", 10000);
  REQUIRE(rejected);
  CHECK_MESSAGE(rejected->find(tree.path + "/arena.lua:6: ')' expected") != std::string::npos, *rejected);
  // Replies that arrive from now on are still v1's: 20 more, none of v3.
  for (int i = 0; i < 20; ++i) {
    auto pong = client->wait_stdout("room pong ", 10000);
    REQUIRE(pong);
    CHECK_MESSAGE(pong->find("room pong arena v1 ticks=") != std::string::npos, *pong);
  }
  CHECK(server.process->stderr_text().find("disposed") == std::string::npos);
  stop(*server.process);
}

TEST_CASE("hot reload: the served bundle changes with the reload, and a client fetching it runs the new code") {
  ScriptTree tree;
  Server server = start_watching(tree);
  REQUIRE(server.port > 0);
  std::string log = server.process->stderr_text();
  auto served_at = log.find("serving script bundle ");
  REQUIRE(served_at != std::string::npos);
  std::string first_hash = log.substr(served_at + 22, 64);

  tree.save("game_v2.lua", "game.lua");
  auto served = server.process->wait_stderr("serving script bundle ", 10000);
  REQUIRE(served);
  std::string second_hash = served->substr(served->find("serving script bundle ") + 22, 64);
  CHECK(second_hash != first_hash);
  REQUIRE(server.process->wait_stderr("reload: v2 live", 10000));

  ScriptTree cache;
  ChildProcess fetcher({nshost_binary(), "--role=client", "--headless", "--cache-dir=" + cache.path,
                        "nshost://127.0.0.1:" + std::to_string(server.port)});
  CHECK_MESSAGE(fetcher.wait_stdout("client joined (v2)", 15000), fetcher.stderr_text());
  CHECK(fetcher.wait_stdout("reply v2 count=", 10000));
  fetcher.send_signal(SIGTERM);
  CHECK(fetcher.wait_exit() == 0);
  stop(*server.process);
}
