// --admin: a real server with real bot clients, scraped over HTTP on
// loopback. /metrics is read by the Prometheus project's own parser (Debian's
// python3-prometheus-client), /api/status by a JSON parser; the token, the
// refusal to listen off loopback without one, and hostile HTTP clients that
// must not stop the tick.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "runtime/script/deadline_watch.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

int64_t now_ms() { return DeadlineWatch::monotonic_now_ns() / 1'000'000; }

// The port of the server's "admin: listening on http://127.0.0.1:PORT" line; 0 if none.
int admin_port(ChildProcess& server) {
  auto line = server.wait_stderr("admin: listening on http://127.0.0.1:", 10000);
  if (!line) return 0;
  return std::atoi(line->c_str() + line->rfind(':') + 1);
}

struct Reply {
  long status = 0;
  std::string body;
  std::string error;
};

Reply http_get(int port, const std::string& path, const std::string& authorization = "") {
  Reply reply;
  CURL* curl = curl_easy_init();
  REQUIRE(curl);
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_slist* headers = nullptr;
  if (!authorization.empty()) headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  });
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) reply.error = curl_easy_strerror(rc);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return reply;
}

// Every sample of a text exposition as the Prometheus client library parses
// it: "name{k=v,...}" (labels sorted, as the parser returns them) -> value.
// Fails the test with the parser's message when it refuses the text.
std::map<std::string, double> parse_prometheus(const std::string& text) {
  char path[] = "/tmp/nshost_metrics_XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  std::string command =
      "/usr/bin/python3 -c '"
      "import json, sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "out = []\n"
      "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    for s in f.samples:\n"
      "        out.append([s.name, sorted(s.labels.items()), s.value])\n"
      "print(json.dumps(out))\n"
      "' " + std::string(path) + " 2>&1";
  std::string output;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
    int status = pclose(p);
    unlink(path);
    REQUIRE_MESSAGE(status == 0, "the Prometheus parser refused the text:\n" << output << "\n--- text:\n" << text);
  } else {
    unlink(path);
    FAIL("cannot run python3");
  }
  std::map<std::string, double> samples;
  for (const auto& s : nlohmann::json::parse(output)) {
    std::string key = s[0].get<std::string>();
    if (!s[1].empty()) {
      key += '{';
      bool first = true;
      for (const auto& kv : s[1]) {
        if (!first) key += ',';
        first = false;
        key += kv[0].get<std::string>() + "=" + kv[1].get<std::string>();
      }
      key += '}';
    }
    samples[key] = s[2].get<double>();
  }
  return samples;
}

std::map<std::string, double> scrape(int port) {
  Reply r = http_get(port, "/metrics");
  REQUIRE_MESSAGE(r.status == 200, r.error);
  return parse_prometheus(r.body);
}

int nonblocking_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  REQUIRE((rc == 0 || errno == EINPROGRESS));
  return fd;
}

// True once the server has closed `fd` (end of stream or reset); reads and
// drops anything it sent first.
bool closed_by_server(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

}  // namespace

TEST_CASE("admin: /metrics parses with the Prometheus parser, its counters move and its gauges match the bots") {
  constexpr int kBots = 4;
  Server server = start_server(test_script("bots.lua"), {"--admin=127.0.0.1:0"});
  REQUIRE(server.port > 0);
  int port = admin_port(*server.process);
  REQUIRE_MESSAGE(port > 0, server.process->stderr_text());
  auto bots = start_client(test_script("bots.lua"), server.port, {"--bots=4"}, {"BOTS_EXPECTED=4"});
  for (int i = 0; i < kBots; ++i) REQUIRE_MESSAGE(bots->wait_stdout("sees all 4", 20000), bots->stderr_text());

  auto first = scrape(port);
  CHECK(first["nshost_clients{state=connected}"] == kBots);
  CHECK(first["nshost_clients{state=handshaking}"] == 0);
  CHECK(first["nshost_clients_max"] == 64);
  CHECK(first["nshost_tick_budget_seconds"] == doctest::Approx(1.0 / 30));
  CHECK(first["nshost_lua_memory_bytes{state=main}"] > 0);
  CHECK(first["process_resident_memory_bytes"] > 0);
  CHECK(first["process_cpu_seconds_total"] > 0);
  // Each bot sent its hello on channel 0; the server broadcast on channel 2.
  CHECK(first["nshost_messages_total{channel=0,direction=in}"] >= kBots);
  CHECK(first["nshost_messages_total{channel=2,direction=out}"] > 0);
  // The histogram: +Inf holds every tick, and the parser saw _sum and _count.
  CHECK(first["nshost_tick_duration_seconds_bucket{le=+Inf}"] == first["nshost_tick_duration_seconds_count"]);
  CHECK(first["nshost_tick_duration_seconds_count"] > 0);
  CHECK(first.count("nshost_tick_duration_seconds_sum") == 1);
  CHECK(first.count("nshost_kicks_total{reason=script}") == 1);

  // Wait for at least 10 more ticks (bounded): counters only grow.
  std::map<std::string, double> second;
  int64_t deadline = now_ms() + 5000;
  do {
    second = scrape(port);
  } while (second["nshost_tick_duration_seconds_count"] < first["nshost_tick_duration_seconds_count"] + 10 &&
           now_ms() < deadline);
  CHECK(second["nshost_tick_duration_seconds_count"] >= first["nshost_tick_duration_seconds_count"] + 10);
  CHECK(second["nshost_messages_total{channel=2,direction=out}"] > first["nshost_messages_total{channel=2,direction=out}"]);
  CHECK(second["nshost_bytes_total{channel=2,direction=out}"] > first["nshost_bytes_total{channel=2,direction=out}"]);
  CHECK(second["nshost_admin_requests_total"] > first["nshost_admin_requests_total"]);
  CHECK(second["nshost_uptime_seconds"] > first["nshost_uptime_seconds"]);
  CHECK(second["nshost_clients{state=connected}"] == kBots);

  Reply status = http_get(port, "/api/status");
  REQUIRE(status.status == 200);
  auto j = nlohmann::json::parse(status.body);
  CHECK(j["role"] == "server");
  CHECK(j["clients"]["connected"] == kBots);
  CHECK(j["clients"]["max"] == 64);
  CHECK(j["tick"]["rate_hz"] == 30);
  CHECK(j["tick"]["count"].get<double>() >= second["nshost_tick_duration_seconds_count"]);
  CHECK(j["tick"]["p99_duration_s"].get<double>() > 0);
  CHECK(j["tick"]["p99_duration_s"].get<double>() <= j["tick"]["max_duration_s"].get<double>());
  CHECK(j["traffic"]["by_channel"].size() == 5);
  CHECK(j["traffic"]["messages_out_total"].get<double>() > 0);
  CHECK(j["lua_memory_bytes"]["main"].get<double>() > 0);
  CHECK(j["process"]["resident_memory_bytes"].get<double>() > 0);
  REQUIRE(j["client_list"].size() == kBots);
  for (const auto& c : j["client_list"]) {
    CHECK(c["address"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(c["bytes_out_total"].get<double>() > 0);
    CHECK(c["bytes_in_total"].get<double>() > 0);
  }
  for (const char* key : {"time_unix_s", "uptime_s", "rooms", "drops", "resumes_total", "room_list"})
    CHECK_MESSAGE(j.contains(key), key);
  CHECK(http_get(port, "/api/nothing").status == 404);

  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
  CHECK(bots->wait_exit(10000) == 0);
}

TEST_CASE("admin: handler errors, handler timeouts and kicks are counted") {
  Server server = start_server(test_script("admin_faults.lua"), {"--admin=127.0.0.1:0", "--handler-timeout=200"});
  REQUIRE(server.port > 0);
  int port = admin_port(*server.process);
  REQUIRE(port > 0);
  auto before = scrape(port);
  CHECK(before["nshost_handler_errors_total"] == 0);
  CHECK(before["nshost_handler_timeouts_total"] == 0);
  auto client = start_client(test_script("admin_faults.lua"), server.port, {"--headless"});
  REQUIRE_MESSAGE(server.process->wait_stdout("kicked", 10000), server.process->stderr_text());
  auto after = scrape(port);
  // The timeout is a handler error too.
  CHECK(after["nshost_handler_errors_total"] == 2);
  CHECK(after["nshost_handler_timeouts_total"] == 1);
  CHECK(after["nshost_kicks_total{reason=script}"] == 1);
  CHECK(after["nshost_kicks_total{reason=rate_limit}"] == 0);
  CHECK(after["nshost_messages_total{channel=1,direction=in}"] == 3);
  CHECK(after["nshost_bytes_total{channel=1,direction=in}"] == 4 + 4 + 4);
  CHECK(client->wait_exit(10000).has_value());
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
}

TEST_CASE("admin: rooms by type, each room's Lua memory and the clients' rooms") {
  Server server = start_server(test_script("rooms/server.lua"), {"--admin=127.0.0.1:0"});
  REQUIRE(server.port > 0);
  int port = admin_port(*server.process);
  REQUIRE(port > 0);
  auto bots = start_client(test_script("rooms_bots.lua"), server.port, {"--bots=3"});
  for (int i = 0; i < 3; ++i) REQUIRE_MESSAGE(bots->wait_stdout("joined room(id=1, type=arena)", 10000), bots->stderr_text());
  auto m = scrape(port);
  CHECK(m["nshost_rooms{type=arena}"] == 1);
  CHECK(m["nshost_lua_memory_bytes{state=room:1}"] > 0);
  CHECK(m["nshost_messages_total{channel=3,direction=in}"] >= 3);  // the join requests
  Reply status = http_get(port, "/api/status");
  REQUIRE(status.status == 200);
  auto j = nlohmann::json::parse(status.body);
  CHECK(j["rooms"]["total"] == 1);
  CHECK(j["rooms"]["by_type"]["arena"] == 1);
  REQUIRE(j["room_list"].size() == 1);
  CHECK(j["room_list"][0]["id"] == 1);
  CHECK(j["room_list"][0]["type"] == "arena");
  CHECK(j["room_list"][0]["clients"] == 3);
  CHECK(j["lua_memory_bytes"]["room:1"].get<double>() > 0);
  REQUIRE(j["client_list"].size() == 3);
  for (const auto& c : j["client_list"]) CHECK(c["room"] == 1);
  bots->send_signal(SIGTERM);
  CHECK(bots->wait_exit(10000).has_value());
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
}

TEST_CASE("admin: with --admin-token every request needs the bearer token (401 without it or with a wrong one)") {
  Server server = start_server(test_script("bots.lua"), {"--admin=127.0.0.1:0", "--admin-token=s3cret-token"});
  REQUIRE(server.port > 0);
  int port = admin_port(*server.process);
  REQUIRE(port > 0);
  // The dashboard's own files are public (a browser puts no token on a page
  // load); every other path, known or not, needs the token.
  for (const char* path : {"/", "/app.js"}) CHECK(http_get(port, path).status == 200);
  for (const char* path : {"/metrics", "/api/status", "/no-such-file"}) {
    CAPTURE(path);
    CHECK(http_get(port, path).status == 401);
    CHECK(http_get(port, path, "Bearer wrong").status == 401);
    CHECK(http_get(port, path, "Bearer s3cret-toke").status == 401);
    CHECK(http_get(port, path, "Basic s3cret-token").status == 401);
  }
  CHECK(http_get(port, "/metrics", "Bearer s3cret-token").status == 200);
  Reply status = http_get(port, "/api/status", "Bearer s3cret-token");
  CHECK(status.status == 200);
  CHECK(nlohmann::json::parse(status.body)["admin"]["unauthorized_total"] == 12);
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
}

TEST_CASE("admin: a non-loopback --admin without --admin-token refuses to start (exit 2)") {
  ChildProcess p({nshost_binary(), "--role=server", "--port=0", "--admin=0.0.0.0:0", test_script("bots.lua")});
  CHECK(p.wait_exit() == 2);
  CHECK(p.stderr_text() == "nshost: --admin on a non-loopback address needs --admin-token\n");
  ChildProcess client({nshost_binary(), "--role=client", "--admin=127.0.0.1:0", test_script("bots.lua")});
  CHECK(client.wait_exit() == 2);
  CHECK(client.stderr_text() == "nshost: --admin is a server option (pass --role=server or --role=host)\n");
}

TEST_CASE("admin: oversized headers, a slowloris and 100 connections do not stop the tick or the ENet clients") {
  constexpr int kBots = 4;
  Server server = start_server(test_script("bots.lua"), {"--admin=127.0.0.1:0", "--stats"});
  REQUIRE(server.port > 0);
  int port = admin_port(*server.process);
  REQUIRE(port > 0);
  auto bots = start_client(test_script("bots.lua"), server.port, {"--bots=4"}, {"BOTS_EXPECTED=4"});
  for (int i = 0; i < kBots; ++i) REQUIRE(bots->wait_stdout("sees all 4", 20000));

  int64_t attack_start_ms = now_ms();
  // A request header that never ends: 64 KiB of one header line.
  int big = nonblocking_connect(port);
  std::string big_request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a');
  size_t big_sent = 0;
  // A slowloris: one header line every 250 ms, never the blank line.
  int slow = nonblocking_connect(port);
  std::string slow_start = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  // And 98 more connections that say nothing: the server keeps 32 at most.
  std::vector<int> crowd;
  for (int i = 0; i < 98; ++i) crowd.push_back(nonblocking_connect(port));

  bool big_closed = false, slow_closed = false;
  int64_t slow_closed_ms = 0, next_slow_ms = 0;
  size_t crowd_closed = 0;
  std::vector<bool> crowd_done(crowd.size(), false);
  while (now_ms() - attack_start_ms < 12000 && !(big_closed && slow_closed && crowd_closed == crowd.size())) {
    if (!big_closed && big_sent < big_request.size()) {
      ssize_t n = send(big, big_request.data() + big_sent, big_request.size() - big_sent, MSG_NOSIGNAL);
      if (n > 0) big_sent += static_cast<size_t>(n);
    }
    if (!big_closed && closed_by_server(big)) big_closed = true;
    if (!slow_closed && now_ms() >= next_slow_ms) {
      const std::string line = next_slow_ms == 0 ? slow_start : "X-Slow: 1\r\n";
      send(slow, line.data(), line.size(), MSG_NOSIGNAL);
      next_slow_ms = now_ms() + 250;
    }
    if (!slow_closed && closed_by_server(slow)) {
      slow_closed = true;
      slow_closed_ms = now_ms() - attack_start_ms;
    }
    for (size_t i = 0; i < crowd.size(); ++i) {
      if (!crowd_done[i] && closed_by_server(crowd[i])) {
        crowd_done[i] = true;
        ++crowd_closed;
      }
    }
    poll(nullptr, 0, 20);
  }
  int64_t attack_end_ms = now_ms();
  CHECK_MESSAGE(big_closed, "sent " << big_sent << " bytes of an endless header");
  CHECK(slow_closed);
  // h2o's request timeout (AdminServer::kIdleTimeoutMs, 5 s) ends the slowloris.
  CHECK(slow_closed_ms >= 4000);
  CHECK(crowd_closed == crowd.size());
  close(big);
  close(slow);
  for (int fd : crowd) close(fd);

  // Read the server's log up to a tick past the attack (its lines are read
  // as they are waited for).
  for (int i = 0; i < 200; ++i) {
    auto line = server.process->wait_stderr("stats t=", 2000);
    if (!line || std::atof(line->c_str() + line->find("stats t=") + 8) * 1000 > attack_end_ms) break;
  }
  auto after = scrape(port);
  // Every connection was either accepted or refused (the scrape's own
  // included); at most 32 were open at once, though one closed early (the
  // oversized one) frees a place for one of the crowd.
  CHECK(after["nshost_admin_connections_total"] + after["nshost_admin_connections_refused_total"] == 100 + 1);
  CHECK(after["nshost_admin_connections_refused_total"] >= 100 - 32 - 2);
  CHECK(after["nshost_admin_connections_oversized_total"] == 1);
  CHECK(after["nshost_clients{state=connected}"] == kBots);
  CHECK(server.process->stderr_text().find("left:") == std::string::npos);

  // The tick ran all along: the --stats lines of the attack's span, by the
  // server's monotonic clock (the same clock as ours), have no long gap.
  std::string err = server.process->stderr_text();
  std::vector<double> tick_times;
  for (size_t at = err.find("stats t="); at != std::string::npos; at = err.find("stats t=", at + 1)) {
    double t = std::atof(err.c_str() + at + 8) * 1000;
    if (t >= attack_start_ms && t <= attack_end_ms) tick_times.push_back(t);
  }
  double span_ms = static_cast<double>(attack_end_ms - attack_start_ms);
  CHECK(tick_times.size() >= span_ms / 1000 * 30 * 0.8);
  double worst_gap_ms = 0;
  for (size_t i = 1; i < tick_times.size(); ++i) worst_gap_ms = std::max(worst_gap_ms, tick_times[i] - tick_times[i - 1]);
  MESSAGE(tick_times.size() << " ticks in " << span_ms << " ms of attack; longest gap " << worst_gap_ms << " ms");
  CHECK(worst_gap_ms < 250);

  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(3000) == 0);
  CHECK(bots->wait_exit(10000) == 0);
}

TEST_CASE("admin: SIGTERM with admin connections open still stops within the grace") {
  Server server = start_server(test_script("bots.lua"), {"--admin=127.0.0.1:0"});
  REQUIRE(server.port > 0);
  int port = admin_port(*server.process);
  REQUIRE(port > 0);
  int idle = nonblocking_connect(port);
  int partial = nonblocking_connect(port);
  const std::string half = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  // Let the server accept both, and start reading the half request.
  REQUIRE(http_get(port, "/api/status").status == 200);
  REQUIRE(send(partial, half.data(), half.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(half.size()));
  REQUIRE(http_get(port, "/metrics").status == 200);
  int64_t signal_ms = now_ms();
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit(2000) == 0);
  int64_t took_ms = now_ms() - signal_ms;
  MESSAGE("stopped in " << took_ms << " ms");
  CHECK(took_ms < 1000);
  // Both connections were ended by the server, not left to the kernel's reset.
  pollfd p[2] = {{idle, POLLIN, 0}, {partial, POLLIN, 0}};
  CHECK(poll(p, 2, 1000) >= 1);
  char buf[256];
  CHECK(recv(idle, buf, sizeof buf, 0) <= 0);
  CHECK(recv(partial, buf, sizeof buf, 0) <= 0);
  close(idle);
  close(partial);
  CHECK(server.process->stderr_text().find("still running") == std::string::npos);
}
