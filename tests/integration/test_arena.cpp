// examples/arena/ end to end, in real processes on loopback: bots under a
// shaped link keep their prediction within the goals of docs/netcode.md, and
// a person's client in a terminal (tmux) draws the arena, moves on keys,
// quits on q and gives the terminal back in its old mode.
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.hpp"

using namespace nshost::test;

namespace {

std::string arena_script() { return example_script("arena/server.lua"); }

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/nshost-arena-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// The value of `key=` in a metric line, or nullopt.
std::optional<double> field(const std::string& line, const std::string& key) {
  size_t at = line.find(" " + key + "=");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(line.c_str() + at + key.size() + 2, nullptr);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Runs a shell command; its stdout, and its exit status in `status`.
std::string shell(const std::string& command, int* status = nullptr) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
  int rc = pclose(p);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

// A tmux server of our own (its own socket, no user config), killed at the end.
struct Tmux {
  std::string socket;
  explicit Tmux(const std::string& dir) : socket(dir + "/tmux.sock") {}
  ~Tmux() { shell(cmd("kill-server") + " 2>/dev/null"); }
  std::string cmd(const std::string& args) const { return "tmux -f /dev/null -S " + shell_quoted(socket) + " " + args; }
  std::string capture() const { return shell(cmd("capture-pane -p -t arena")); }
  void keys(const std::string& keys) const { shell(cmd("send-keys -t arena " + keys)); }
};

// Row and column of the first '@' on the screen, or nullopt.
std::optional<std::pair<int, int>> marker(const std::string& screen) {
  auto rows = lines_of(screen);
  for (size_t r = 0; r < rows.size(); ++r) {
    // The header line names '@' too; the arena's rows start with '|'.
    if (rows[r].empty() || rows[r][0] != '|') continue;
    size_t c = rows[r].find('@');
    if (c != std::string::npos) return std::make_pair(static_cast<int>(r), static_cast<int>(c));
  }
  return std::nullopt;
}

// Presses `key` until `moved(before, now)` holds or `tries` presses (100 ms
// apart) pass; the last position seen.
std::optional<std::pair<int, int>> press_until(const Tmux& tmux, const std::string& key, std::pair<int, int> before,
                                               bool (*moved)(std::pair<int, int>, std::pair<int, int>),
                                               int tries = 40) {
  std::optional<std::pair<int, int>> now;
  for (int i = 0; i < tries; ++i) {
    tmux.keys(key);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    now = marker(tmux.capture());
    if (now && moved(before, *now)) break;
  }
  return now;
}

// Clears the pane and waits until the last round's arena is gone from it, so
// that the next round's drawing is the new client's.
void clear_screen(const Tmux& tmux) {
  shell(tmux.cmd("send-keys -t arena clear Enter"));
  for (int i = 0; i < 50 && marker(tmux.capture()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

// Waits for play.sh's exit.txt and stty.txt: the client exited 0 and the
// terminal is in canonical mode with echo and signals again.
void check_left_cleanly(const Tmux& tmux, const std::string& dir) {
  std::string exit_line, stty;
  for (int i = 0; i < 100 && exit_line.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(dir + "/exit.txt");
    std::getline(in, exit_line);
  }
  CHECK_MESSAGE(exit_line == "exit=0", tmux.capture());
  for (int i = 0; i < 50 && stty.find("icanon") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stty = shell("cat " + shell_quoted(dir + "/stty.txt") + " 2>/dev/null");
  }
  CHECK_MESSAGE(std::regex_search(stty, std::regex("(^|\\s)icanon(\\s|$)")), stty);
  CHECK_MESSAGE(std::regex_search(stty, std::regex("(^|\\s)echo(\\s|$)")), stty);
  CHECK(std::regex_search(stty, std::regex("(^|\\s)isig(\\s|$)")));
}

}  // namespace

TEST_CASE("arena: 4 bots under --netsim=100,20,0.05,0,0 keep the p99 prediction error under one tick of movement and draw the others a few frames behind") {
  Server server = start_server(arena_script());
  REQUIRE(server.port > 0);
  auto bots = start_client(arena_script(), server.port, {"--headless", "--bots=4", "--netsim=100,20,0.05,0,0"},
                           {"ARENA_SECONDS=10"});
  auto code = bots->wait_exit(40000);
  REQUIRE_MESSAGE(code == 0, bots->stderr_text());
  double tick_move = 0;
  std::vector<double> errors;
  double corrections = 0;
  int malformed = 0;
  std::map<std::string, std::string> last_stats, last_delay;   // "nshost[client#N]" -> its last line of the kind
  for (const auto& line : lines_of(bots->stdout_text())) {
    std::string bot = line.substr(0, line.find(']') + 1);
    if (line.find("netcode stats") != std::string::npos) last_stats[bot] = line;
    if (line.find("netcode delay=") != std::string::npos) last_delay[bot] = line;
    if (line.find("netcode config") != std::string::npos) tick_move = field(line, "tick_move").value_or(0);
    if (line.find("netcode err=") != std::string::npos) {
      auto e = field(line, "err");
      if (!e) {
        ++malformed;
        continue;
      }
      errors.push_back(*e);
      if (*e > 1e-6) ++corrections;
    }
  }
  REQUIRE(tick_move > 0);
  CHECK(malformed == 0);
  // About 30 states a second reach each bot for ~9 s once joined.
  REQUIRE_MESSAGE(errors.size() > 4 * 150, bots->stdout_text().substr(0, 4000));
  std::sort(errors.begin(), errors.end());
  double p50 = errors[errors.size() / 2];
  double p99 = errors[std::min(errors.size() - 1, errors.size() * 99 / 100)];
  double max = errors.back();
  MESSAGE("samples " << errors.size() << ", p50 " << p50 << ", p99 " << p99 << ", max " << max << ", tick_move "
                     << tick_move << ", corrections " << corrections);
  CHECK(p99 < tick_move);
  CHECK(max <= 3 * tick_move);

  // The others' positions come unreliable, a tick at a time: a lost one is
  // not waited for, so the render delay stays a few frames (about 4-5 here;
  // 9-28 when they came by the reliable state sync, whose retransmits stall
  // every later patch) and extrapolation is rare. Bounds with room for a
  // loaded machine.
  REQUIRE(last_stats.size() == 4);
  REQUIRE(last_delay.size() == 4);
  double extrapolations = 0;
  for (const auto& [bot, line] : last_stats) {
    INFO(line);
    CHECK(field(line, "pos").value_or(0) > 150);
    CHECK(field(line, "malformed").value_or(-1) == 0);
    extrapolations += field(line, "extrapolations").value_or(1e9);
  }
  for (const auto& [bot, line] : last_delay) {
    INFO(line);
    CHECK(field(line, "delay").value_or(1e9) < 8);
  }
  MESSAGE("extrapolations over 4 bots: " << extrapolations << "; " << last_delay.begin()->second);
  CHECK(extrapolations <= 4);

  // The room applied the inputs (its inbox line counts them).
  auto inbox = server.process->wait_stdout("arena inbox", 5000);
  REQUIRE(inbox);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
  std::optional<double> applied;
  for (const auto& line : lines_of(server.process->stdout_text()))
    if (line.find("arena inbox") != std::string::npos) applied = field(line, "applied");
  REQUIRE(applied);
  CHECK(*applied > 4 * 200);
}

TEST_CASE("arena: played in a terminal (tmux): drawn, moved by keys and arrows, q, ctrl-c and SIGTERM stop it and the mode is restored") {
  int status = -1;
  shell("command -v tmux >/dev/null", &status);
  REQUIRE_MESSAGE(status == 0, "tmux is missing: apt-get install tmux (dev.sh installs it)");
  TempDir dir;
  Server server = start_server(arena_script());
  REQUIRE(server.port > 0);
  // Another player, so the screen shows one drawn through interpolation.
  auto bot = start_client(arena_script(), server.port, {"--headless", "--bots=1"});
  REQUIRE(bot->wait_stdout("netcode config"));

  Tmux tmux(dir.path);
  // The client runs in the foreground of the pane's shell (its pid in a
  // file, for the SIGTERM round); then the shell writes its exit status and
  // the terminal's mode.
  std::string client = "echo $$ > " + dir.path + "/pid; exec " + nshost_binary() +
                       " --role=client --connect=nshost://127.0.0.1:" + std::to_string(server.port) + " " +
                       arena_script();
  std::string play = "sh -c " + shell_quoted(client) + " 2>" + shell_quoted(dir.path + "/client.log") +
                     "; echo exit=$? > " + shell_quoted(dir.path + "/exit.txt") + "; stty -a > " +
                     shell_quoted(dir.path + "/stty.txt");
  {
    std::ofstream script(dir.path + "/play.sh");
    script << play << "\n";
  }
  shell(tmux.cmd("new-session -d -s arena -x 100 -y 40 sh"), &status);
  REQUIRE(status == 0);
  tmux.keys(shell_quoted("sh " + dir.path + "/play.sh") + " Enter");

  std::optional<std::pair<int, int>> start;
  std::string screen;
  for (int i = 0; i < 100 && !start; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    screen = tmux.capture();
    if (screen.find("arena  room") != std::string::npos) start = marker(screen);
  }
  REQUIRE_MESSAGE(start, screen << "\n" << shell("cat " + shell_quoted(dir.path + "/client.log")));
  // While it plays, the pane's terminal is raw: no line editing, no echo.
  std::string tty = shell(tmux.cmd("display -p -t arena '#{pane_tty}'"));
  while (!tty.empty() && (tty.back() == '\n' || tty.back() == ' ')) tty.pop_back();
  std::string during = shell("stty -a -F " + shell_quoted(tty));
  CHECK_MESSAGE(std::regex_search(during, std::regex("(^|\\s)-icanon(\\s|$)")), tty << ": " << during);
  CHECK_MESSAGE(std::regex_search(during, std::regex("(^|\\s)-echo(\\s|$)")), during);
  // The bot: a letter in the arena's rows (upper case when it is "it").
  bool other = false;
  for (int i = 0; i < 50 && !other; ++i) {
    for (const auto& row : lines_of(screen))
      if (!row.empty() && row[0] == '|' && std::regex_search(row, std::regex("[a-zA-Z]"))) other = true;
    if (!other) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      screen = tmux.capture();
    }
  }
  CHECK_MESSAGE(other, screen);

  // Letters: toward the far side horizontally (d or a), by at least two columns.
  bool go_right = start->second < 21;
  auto after_letters =
      press_until(tmux, go_right ? "d" : "a", *start,
                  go_right ? +[](std::pair<int, int> a, std::pair<int, int> b) { return b.second >= a.second + 2; }
                           : +[](std::pair<int, int> a, std::pair<int, int> b) { return b.second <= a.second - 2; });
  REQUIRE(after_letters);
  CHECK_MESSAGE(std::abs(after_letters->second - start->second) >= 2, tmux.capture());
  // Arrows: vertically, by at least two rows.
  bool go_down = start->first < 12;
  auto after_arrows =
      press_until(tmux, go_down ? "Down" : "Up", *after_letters,
                  go_down ? +[](std::pair<int, int> a, std::pair<int, int> b) { return b.first >= a.first + 2; }
                          : +[](std::pair<int, int> a, std::pair<int, int> b) { return b.first <= a.first - 2; });
  REQUIRE(after_arrows);
  CHECK_MESSAGE(std::abs(after_arrows->first - after_letters->first) >= 2, tmux.capture());

  tmux.keys("q");
  check_left_cleanly(tmux, dir.path);

  // ctrl-c: raw mode keeps it from the terminal's driver; nshost sends
  // itself SIGINT, stops cleanly (exit 0) and the mode is back as well.
  std::filesystem::remove(dir.path + "/exit.txt");
  std::filesystem::remove(dir.path + "/stty.txt");
  clear_screen(tmux);
  tmux.keys(shell_quoted("sh " + dir.path + "/play.sh") + " Enter");
  bool drawn = false;
  for (int i = 0; i < 100 && !drawn; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    drawn = marker(tmux.capture()).has_value();
  }
  REQUIRE_MESSAGE(drawn, tmux.capture());
  tmux.keys("C-c");
  check_left_cleanly(tmux, dir.path);

  // SIGTERM from outside: the same clean stop.
  std::filesystem::remove(dir.path + "/exit.txt");
  std::filesystem::remove(dir.path + "/stty.txt");
  std::filesystem::remove(dir.path + "/pid");
  // A clear screen first: the last round's arena stays drawn after it exits,
  // and a SIGTERM sent before the new client draws (so before it handles
  // signals) would end it as the default action does, with 143.
  clear_screen(tmux);
  tmux.keys(shell_quoted("sh " + dir.path + "/play.sh") + " Enter");
  drawn = false;
  for (int i = 0; i < 100 && !drawn; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    drawn = marker(tmux.capture()).has_value();
  }
  REQUIRE_MESSAGE(drawn, tmux.capture());
  pid_t pid = 0;
  {
    std::ifstream in(dir.path + "/pid");
    in >> pid;
  }
  REQUIRE(pid > 0);
  REQUIRE(kill(pid, SIGTERM) == 0);
  check_left_cleanly(tmux, dir.path);

  bot->send_signal(SIGTERM);
  CHECK(bot->wait_exit() == 0);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}
