// The dashboard (GET / on --admin) in a real browser: nshost with bots, the
// page in headless Chromium driven over the DevTools protocol by
// dashboard_cdp.py, which waits for the charts to draw and saves a screenshot.
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runtime/ops/dashboard_assets.hpp"
#include "tests/support/process.hpp"

using nlohmann::json;
using namespace nshost::test;
namespace fs = std::filesystem;

namespace {

// `name` on $PATH, or "".
std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
    if (!candidate.empty() && access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return "";
}

// Debian's python3 (it has python3-websockets); a python3 earlier on $PATH
// (pyenv, a venv) may not.
std::string python() { return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

// A server with --admin on a free port: its game and admin ports from the
// two "listening on" lines, in whichever order they come.
struct AdminServer {
  std::unique_ptr<ChildProcess> process;
  int game_port = 0;
  int admin_port = 0;
};

AdminServer start_admin_server(std::vector<std::string> extra) {
  std::vector<std::string> args{nshost_binary(), "--role=server", "--port=0", "--admin=127.0.0.1:0"};
  for (auto& a : extra) args.push_back(a);
  args.push_back(example_script("arena/server.lua"));
  AdminServer s;
  s.process = std::make_unique<ChildProcess>(args);
  for (int i = 0; i < 2; ++i) {
    auto line = s.process->wait_stderr("listening on ", 10000);
    if (!line) break;
    const std::string http = "listening on http://";
    if (auto at = line->find(http); at != std::string::npos) {
      auto colon = line->find(':', at + http.size());
      if (colon != std::string::npos) s.admin_port = std::atoi(line->c_str() + colon + 1);
    } else {
      auto colon = line->find(':', line->find("listening on "));
      if (colon != std::string::npos) s.game_port = std::atoi(line->c_str() + colon + 1);
    }
  }
  return s;
}

// `bots` arena bots on `port`. A bot prints a line per position message;
// nobody reads those here, so stdout goes to /dev/null (a full pipe would
// stall the bots).
std::unique_ptr<ChildProcess> start_bots(int port, int bots) {
  return std::make_unique<ChildProcess>(std::vector<std::string>{
      "/bin/sh", "-c", "exec \"$0\" \"$@\" >/dev/null", nshost_binary(), "--role=client", "--headless",
      "--bots=" + std::to_string(bots), "--connect=nshost://127.0.0.1:" + std::to_string(port),
      example_script("arena/server.lua")});
}

struct PageSeen {
  std::optional<int> exit_code;
  json seen;
  std::string output;
};

// Runs dashboard_cdp.py on `url` until the page is ready with `clients` rows
// (deadline `timeout_s`), saving the screenshot at `screenshot`.
PageSeen open_page(const std::string& chromium, const std::string& url, int clients, const std::string& screenshot,
                   int timeout_s) {
  ChildProcess browser({python(), source_dir() + "/tests/integration/dashboard_cdp.py", "--chromium=" + chromium,
                        "--url=" + url, "--clients=" + std::to_string(clients), "--screenshot=" + screenshot,
                        "--timeout=" + std::to_string(timeout_s), "--width=1200", "--height=800"});
  PageSeen out;
  out.exit_code = browser.wait_exit((timeout_s + 30) * 1000);
  out.output = browser.stdout_text() + browser.stderr_text();
  std::string first_line = browser.stdout_text().substr(0, browser.stdout_text().find('\n'));
  out.seen = json::parse(first_line, nullptr, false);
  return out;
}

bool is_png(const std::string& path, size_t& size) {
  std::ifstream in(path, std::ios::binary);
  std::string head(8, '\0');
  if (!in.read(head.data(), 8)) return false;
  size = fs::file_size(path);
  return head == "\x89PNG\r\n\x1a\n";
}

}  // namespace

TEST_CASE("dashboard: every embedded asset is found, non-empty and typed") {
  using nshost::ops::find_dashboard_asset;
  const std::pair<const char*, const char*> expected[] = {
      {"/", "text/html; charset=utf-8"},
      {"/app.js", "text/javascript; charset=utf-8"},
      {"/style.css", "text/css; charset=utf-8"},
      {"/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
      {"/uPlot.min.css", "text/css; charset=utf-8"},
  };
  for (auto [path, type] : expected) {
    const auto* asset = find_dashboard_asset(path);
    REQUIRE_MESSAGE(asset, path);
    CHECK(asset->content_type == type);
    CHECK(!asset->bytes.empty());
  }
  CHECK(nshost::ops::dashboard_files().size() == std::size(expected));
  for (const auto& file : nshost::ops::dashboard_files()) CHECK(!file.asset.bytes.empty());
  // The embedded bytes are the files in the tree, byte for byte.
  std::ifstream page(source_dir() + "/web/dashboard/index.html", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(page)), std::istreambuf_iterator<char>());
  CHECK(find_dashboard_asset("/")->bytes == text);
  CHECK(find_dashboard_asset("/index.html") == find_dashboard_asset("/"));
  CHECK(find_dashboard_asset("/?token=abc") == find_dashboard_asset("/"));
  CHECK(find_dashboard_asset("/app.js?v=1") == find_dashboard_asset("/app.js"));
  CHECK(find_dashboard_asset("/missing.js") == nullptr);
  CHECK(find_dashboard_asset("") == nullptr);
  CHECK(find_dashboard_asset("/metrics") == nullptr);
}

TEST_CASE("dashboard: headless Chromium draws live charts of a server with 6 bots and lists them") {
  const std::string chromium = find_program("chromium");
  if (chromium.empty()) {
    MESSAGE("skipped: chromium is not installed (Debian package chromium; CI installs it)");
    return;
  }
  constexpr int kBots = 6;
  AdminServer server = start_admin_server({});
  REQUIRE_MESSAGE(server.game_port > 0, server.process->stderr_text());
  REQUIRE_MESSAGE(server.admin_port > 0, server.process->stderr_text());
  auto bots = start_bots(server.game_port, kBots);

  const std::string screenshot = (fs::path(nshost_binary()).parent_path() / "dashboard.png").string();
  fs::remove(screenshot);
  PageSeen page = open_page(chromium, "http://127.0.0.1:" + std::to_string(server.admin_port) + "/", kBots,
                            screenshot, 45);
  INFO("dashboard_cdp.py said: " << page.output);
  REQUIRE(page.exit_code.has_value());
  REQUIRE(page.seen.is_object());
  CHECK(*page.exit_code == 0);
  CHECK(page.seen["ready"] == true);        // app.js: every chart has 2+ points, players seen
  CHECK(page.seen["points"].get<int>() >= 2);
  CHECK(page.seen["charts"] == 4);          // four uPlot canvases
  CHECK(page.seen["client_rows"] == kBots);  // one row per bot
  CHECK(page.seen["clients_reported"] == kBots);
  CHECK(page.seen["room_rows"].get<int>() >= 1);  // the bots' arena
  CHECK(page.seen["players_card"].get<std::string>().rfind(std::to_string(kBots) + " / ", 0) == 0);
  // Lines drawn in the colour of each chart's first series, not only axes:
  // tick p50, players connected, bytes in.
  CHECK(page.seen["series"]["chart-tick"].get<int>() > 50);
  CHECK(page.seen["series"]["chart-players"].get<int>() > 50);
  CHECK(page.seen["series"]["chart-bandwidth"].get<int>() > 20);
  size_t png_bytes = 0;
  CHECK(is_png(screenshot, png_bytes));
  CHECK(png_bytes > 10000);
  MESSAGE("screenshot: " << screenshot << " (" << png_bytes << " bytes)");

  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit() == 0);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}

TEST_CASE("dashboard: with --admin-token the page takes ?token= and sends it as a bearer token") {
  const std::string chromium = find_program("chromium");
  if (chromium.empty()) {
    MESSAGE("skipped: chromium is not installed (Debian package chromium; CI installs it)");
    return;
  }
  AdminServer server = start_admin_server({"--admin-token=s3cret-token"});
  REQUIRE_MESSAGE(server.admin_port > 0, server.process->stderr_text());
  auto bots = start_bots(server.game_port, 2);
  // The page's files load without the token; the data does not.
  const std::string base = "http://127.0.0.1:" + std::to_string(server.admin_port);
  ChildProcess status_codes({python(), "-c",
                             "import sys, urllib.request, urllib.error\n"
                             "for url in sys.argv[1:]:\n"
                             "    try: print(urllib.request.urlopen(url, timeout=5).status)\n"
                             "    except urllib.error.HTTPError as e: print(e.code)\n",
                             base + "/", base + "/app.js", base + "/api/status", base + "/metrics"});
  CHECK(status_codes.wait_exit(20000) == 0);
  CHECK(status_codes.stdout_text() == "200\n200\n401\n401\n");
  const std::string screenshot = (fs::path(nshost_binary()).parent_path() / "dashboard-token.png").string();
  PageSeen page = open_page(chromium, "http://127.0.0.1:" + std::to_string(server.admin_port) + "/?token=s3cret-token",
                            2, screenshot, 45);
  INFO("dashboard_cdp.py said: " << page.output);
  REQUIRE(page.seen.is_object());
  CHECK(page.exit_code == 0);
  CHECK(page.seen["ready"] == true);
  CHECK(page.seen["client_rows"] == 2);
  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit() == 0);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);
}
