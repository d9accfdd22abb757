// `nshost check FILE...`: the real binary on files written here, and on every
// script the repository ships.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

using namespace nshost::test;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/nshost-check-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  // Writes `text` to <dir>/<name> and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    std::string file = path + "/" + name;
    std::ofstream(file) << text;
    return file;
  }
};

struct CheckRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

CheckRun run_check(const std::vector<std::string>& files) {
  std::vector<std::string> args{nshost_binary(), "check"};
  args.insert(args.end(), files.begin(), files.end());
  ChildProcess check(args);
  CheckRun run;
  auto code = check.wait_exit(30000);
  REQUIRE(code.has_value());
  run.exit_code = *code;
  run.out = check.stdout_text();
  run.err = check.stderr_text();
  return run;
}

}  // namespace

TEST_CASE("check: a clean script exits 0 with a summary and no findings") {
  TempDir dir;
  std::string game = dir.write("game.lua", R"lua(
score = 0
local players = {}
print("top-level output is not a finding")
function server.connect(c) players[c] = true end
function server.receive(c, data, channel) score = score + #data end
function server.tick(n) if n % 30 == 0 then broadcast(tostring(score)) end end
function client.receive(data) log.info("got " .. data) end
)lua");
  CheckRun run = run_check({game});
  CHECK(run.exit_code == 0);
  CHECK(run.out == "nshost check: 1 file, 0 findings\n");
}

TEST_CASE("check: a misspelt handler is reported at its line with the nearest name") {
  TempDir dir;
  std::string game = dir.write("game.lua",
                               "function server.connect(c) end\n"
                               "\n"
                               "function server.recieve(c, data)\n"
                               "end\n"
                               "client.on_frame = function() end\n");
  CheckRun run = run_check({game});
  CHECK(run.exit_code == 1);
  CHECK(run.out == game + ":3: server.recieve is not a handler nshost calls (did you mean server.receive?)\n" +
                       game + ":5: client.on_frame is not a handler nshost calls (client handlers: connect, " +
                       "disconnect, lost, resumed, receive, tick, room_message, room_left, room_state, match_found, match_failed)\n" +
                       "nshost check: 1 file, 2 findings\n");
}

TEST_CASE("check: a handler assigning an undeclared global, and a read of an undefined one") {
  TempDir dir;
  std::string game = dir.write("game.lua",
                               "score = 0\n"
                               "function server.tick()\n"
                               "  scroe = scroe + 1\n"
                               "  log.info(tostring(scoer))\n"
                               "end\n");
  CheckRun run = run_check({game});
  CHECK(run.exit_code == 1);
  CHECK(run.out == game + ":3: assignment to undeclared global scroe (did you mean score?)\n" + game +
                       ":4: undefined global scoer (did you mean score?)\n" + "nshost check: 1 file, 2 findings\n");
}

TEST_CASE("check: a syntax error is Lua's own message at its line") {
  TempDir dir;
  std::string game = dir.write("game.lua",
                               "function server.tick()\n"
                               "  local x = \n"
                               "end\n");
  CheckRun run = run_check({game});
  CHECK(run.exit_code == 1);
  CHECK(run.out == game + ":3: syntax error: unexpected symbol near 'end'\n" + "nshost check: 1 file, 1 finding\n");
}

TEST_CASE("check: an error of the top level names the roles it happened in") {
  TempDir dir;
  std::string game = dir.write("game.lua",
                               "local config = nil\n"
                               "local rate = config.rate\n");
  CheckRun run = run_check({game});
  CHECK(run.exit_code == 1);
  CHECK(run.out == game +
                       ":2: attempt to index a nil value (local 'config') (running the top level as server and "
                       "client)\n" +
                       "nshost check: 1 file, 1 finding\n");
}

TEST_CASE("check: a top level that never ends is stopped by the handler timeout, its timers never fire") {
  TempDir dir;
  std::string game = dir.write("game.lua",
                               "timer.every(0.001, function() print(\"timer fired\") end)\n"
                               "while true do end\n");
  CheckRun run = run_check({game});
  CHECK(run.exit_code == 1);
  CHECK(run.out == game +
                       ": handler timed out (ran over 1000 ms; --handler-timeout) (running the top level as server "
                       "and client)\n" +
                       "nshost check: 1 file, 1 finding\n");
}

TEST_CASE("check: a missing file is a finding, no file at all is a usage error") {
  TempDir dir;
  std::string missing = dir.path + "/missing.lua";
  CheckRun run = run_check({missing});
  CHECK(run.exit_code == 1);
  CHECK(run.out == missing + ": cannot read the file: No such file or directory\nnshost check: 1 file, 1 finding\n");

  CheckRun usage = run_check({});
  CHECK(usage.exit_code == 2);
  CHECK(usage.err.find("check: no script given") != std::string::npos);
  CheckRun bad_flag = run_check({"--frobnicate"});
  CHECK(bad_flag.exit_code == 2);
}

TEST_CASE("check: a room file named by rooms.define is checked in a room's state") {
  TempDir dir;
  std::string server = dir.write("server.lua",
                                 "if sys.runtime_role() == \"server\" then\n"
                                 "  rooms.define(\"arena\", \"arena.lua\", {max_clients = 4})\n"
                                 "end\n");
  dir.write("arena.lua",
            "local seats = {}\n"
            "room.set_tick_rate(10)\n"
            "function room.join(c, options) seats[#seats + 1] = c end\n"
            "function room.message(c, type, data) room.broadcast(type, data) end\n"
            "function room.levae(c, reason) end\n"
            "function room.tick(n) wave = n end\n");
  CheckRun run = run_check({server});
  CHECK(run.exit_code == 1);
  std::string arena = dir.path + "/arena.lua";
  CHECK(run.out == arena + ":5: room.levae is not a handler nshost calls (did you mean room.leave?)\n" + arena +
                       ":6: assignment to undeclared global wave (assign it at the top level, or make it local)\n" +
                       "nshost check: 2 files, 2 findings\n");

  // Alone, the file is a room file because it defines room.* handlers.
  CheckRun alone = run_check({arena});
  CHECK(alone.exit_code == 1);
  CHECK(alone.out.find(arena + ":5: room.levae is not a handler") != std::string::npos);
  CHECK(alone.out.find("nshost check: 1 file, 2 findings") != std::string::npos);
}

TEST_CASE("check: locals of every kind are not globals") {
  TempDir dir;
  std::string game = dir.write("game.lua", R"lua(
local M = {}
local count <const> = 3
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
function M:grow(by) self.size = (self.size or 0) + by end
function M.each(t, fn) for k, v in pairs(t) do fn(k, v) end end
local a, b = 1, 2
a, b = b, a
local t = {x = 1, y = {z = 2}, [3] = "three", f = function(p) return p end}
function server.tick(n)
  local i = 0
  repeat local step = i + 1; i = step until step >= count
  for j = 1, 3 do i = i + j end
  while i > 0 do i = i - 1 if i == 2 then goto done end end
  ::done::
  do local inner = i; a = inner end
  local s = [[long
  string with x = 1 inside]] -- x = y in a comment
  t.x, t["y"] = fib(n % 10), #s
  local print = print
  print(a, b)
end
function server.receive(c, data, channel)
  local handler = M[data] or function(...) return ... end
  handler(c, channel)
end
return M
)lua");
  CheckRun run = run_check({game});
  CHECK(run.out == "nshost check: 1 file, 0 findings\n");
  CHECK(run.exit_code == 0);
}

TEST_CASE("check: every script the repository ships is clean") {
  std::vector<std::string> files;
  for (const char* dir : {"examples", "bench"})
    for (const auto& entry : std::filesystem::recursive_directory_iterator(nshost::test::source_dir() + "/" + dir))
      if (entry.is_regular_file() && entry.path().extension() == ".lua") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() > 5);
  CheckRun run = run_check(files);
  CHECK_MESSAGE(run.exit_code == 0, run.out);
}
