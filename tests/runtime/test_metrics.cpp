// The metrics registry and its two renderings: the Prometheus text format
// (escaping, histogram buckets, _sum and _count) and the /api/status JSON.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/config/options.hpp"
#include "runtime/ops/admin_server.hpp"
#include "runtime/ops/metrics.hpp"

using namespace nshost;
using namespace nshost::ops;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

StatusSnapshot sample_snapshot(const ServerMetrics& m) {
  StatusSnapshot s;
  s.version = "0.1.0";
  s.ticks = &m.ticks;
  s.counters = &m;
  s.tick_rate_hz = 30;
  s.budget_s = 1.0 / 30;
  s.clients_connected = 3;
  s.clients_handshaking = 1;
  s.max_clients = 64;
  s.rooms_by_type["arena"] = 2;
  s.rooms_by_type["quote\"back\\slash\nline"] = 1;
  s.rooms_total = 3;
  s.channels.resize(5);
  s.channels[1] = {10, 100, 20, 200};
  s.lua_memory_bytes = {{"main", 4096}, {"room:7", 1024}};
  ClientRow c;
  c.slot = 2;
  c.id = 9;
  c.address = "127.0.0.1:4000";
  c.rooms = {7};
  s.clients.push_back(c);
  s.rooms.push_back({7, "arena", 1, 8, false});
  return s;
}

}  // namespace

TEST_CASE("metrics: label values escape backslash, double quote and line feed") {
  CHECK(escape_label_value("plain") == "plain");
  CHECK(escape_label_value("a\"b") == "a\\\"b");
  CHECK(escape_label_value("a\\b") == "a\\\\b");
  CHECK(escape_label_value("a\nb") == "a\\nb");
  TextExposition e;
  e.family("x_total", "counter", "Help with \\ and\nnewline.");
  e.sample("x_total", {{"k", "v\"1\n"}}, 3);
  CHECK(e.text() == "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\nx_total{k=\"v\\\"1\\n\"} 3\n");
}

TEST_CASE("metrics: sample values are exact and special values are spelled as the format wants") {
  CHECK(format_sample_value(0) == "0");
  CHECK(format_sample_value(42) == "42");
  CHECK(format_sample_value(0.1) == "0.1");
  CHECK(format_sample_value(1.0 / 30) == "0.03333333333333333");
  CHECK(format_sample_value(INFINITY) == "+Inf");
  CHECK(format_sample_value(-INFINITY) == "-Inf");
  CHECK(format_sample_value(NAN) == "NaN");
  CHECK(format_sample_value(1e21) == "1e+21");
  CHECK(format_sample_value(5e-05) == "5e-05");
}

TEST_CASE("metrics: a histogram's buckets are cumulative, end in +Inf, and _sum/_count add up") {
  Histogram h({0.01, 0.001, 0.1});  // unsorted on purpose
  REQUIRE(h.upper_bounds() == std::vector<double>{0.001, 0.01, 0.1});
  h.observe(0.0005);
  h.observe(0.001);  // on a bound: counted in it (le is <=)
  h.observe(0.05);
  h.observe(7);
  CHECK(h.cumulative(0) == 2);
  CHECK(h.cumulative(1) == 2);
  CHECK(h.cumulative(2) == 3);
  CHECK(h.cumulative(3) == 4);
  CHECK(h.count() == 4);
  CHECK(h.sum() == doctest::Approx(7.0515));
  TextExposition e;
  e.histogram("t_seconds", h);
  const std::string& t = e.text();
  CHECK(has_line(t, "t_seconds_bucket{le=\"0.001\"} 2"));
  CHECK(has_line(t, "t_seconds_bucket{le=\"0.01\"} 2"));
  CHECK(has_line(t, "t_seconds_bucket{le=\"0.1\"} 3"));
  CHECK(has_line(t, "t_seconds_bucket{le=\"+Inf\"} 4"));
  CHECK(has_line(t, "t_seconds_sum 7.0515"));
  CHECK(has_line(t, "t_seconds_count 4"));
}

TEST_CASE("metrics: the tick recorder counts overruns, and its buckets reach past the budget") {
  TickRecorder r(1.0 / 30);
  const auto& bounds = r.histogram().upper_bounds();
  CHECK(std::find(bounds.begin(), bounds.end(), 1.0 / 30) != bounds.end());
  CHECK(std::find(bounds.begin(), bounds.end(), 2.0 / 30) != bounds.end());
  int64_t t = 1'000'000'000;
  for (int i = 1; i <= 100; ++i) r.record(t + i * 1'000'000, i * 0.0001, 1.0 / 30);  // 0.1 ms .. 10 ms
  r.record(t + 200'000'000, 0.05, 1.0 / 30);  // one overrun
  CHECK(r.count() == 101);
  CHECK(r.overruns() == 1);
  CHECK(r.last_s() == 0.05);
  auto w = r.window(t + 200'000'000, 1'000'000'000);
  CHECK(w.ticks == 101);
  CHECK(w.p50_s == doctest::Approx(0.0051));
  CHECK(w.p99_s == doctest::Approx(0.0100));
  CHECK(w.max_s == 0.05);
  // Only the ticks of the last second count.
  auto later = r.window(t + 1'150'000'000, 1'000'000'000);
  CHECK(later.ticks == 1);
  CHECK(later.max_s == 0.05);
  CHECK(r.window(t + 5'000'000'000, 1'000'000'000).ticks == 0);
}

TEST_CASE("metrics: kick reasons of the host are labels, anything else a script gave is 'script'") {
  CHECK(classify_kick("rate_limit") == KickReason::rate_limit);
  CHECK(classify_kick("bundle_requests") == KickReason::bundle_requests);
  CHECK(classify_kick("protocol") == KickReason::protocol);
  CHECK(classify_kick("cheating, says the script") == KickReason::script);
  CHECK(std::string(kick_reason_name(KickReason::script)) == "script");
}

TEST_CASE("metrics: the Prometheus rendering names every family once, with its samples") {
  ServerMetrics m(1.0 / 30);
  m.ticks.record(1, 0.002, 1.0 / 30);
  m.resumes = 2;
  m.kicks[static_cast<size_t>(KickReason::rate_limit)] = 1;
  m.handler_errors = 4;
  m.handler_timeouts = 1;
  std::string t = render_prometheus(sample_snapshot(m));
  CHECK(has_line(t, "# TYPE nshost_tick_duration_seconds histogram"));
  CHECK(has_line(t, "nshost_tick_duration_seconds_count 1"));
  CHECK(has_line(t, "nshost_tick_budget_seconds 0.03333333333333333"));
  CHECK(has_line(t, "nshost_clients{state=\"connected\"} 3"));
  CHECK(has_line(t, "nshost_clients{state=\"handshaking\"} 1"));
  CHECK(has_line(t, "nshost_rooms{type=\"arena\"} 2"));
  CHECK(has_line(t, "nshost_rooms{type=\"quote\\\"back\\\\slash\\nline\"} 1"));
  CHECK(has_line(t, "nshost_messages_total{direction=\"in\",channel=\"1\"} 10"));
  CHECK(has_line(t, "nshost_bytes_total{direction=\"out\",channel=\"1\"} 200"));
  CHECK(has_line(t, "nshost_resumes_total 2"));
  CHECK(has_line(t, "nshost_kicks_total{reason=\"rate_limit\"} 1"));
  CHECK(has_line(t, "nshost_kicks_total{reason=\"script\"} 0"));
  CHECK(has_line(t, "nshost_handler_errors_total 4"));
  CHECK(has_line(t, "nshost_handler_timeouts_total 1"));
  CHECK(has_line(t, "nshost_lua_memory_bytes{state=\"room:7\"} 1024"));
  // One TYPE line per family.
  size_t types = 0;
  for (size_t at = t.find("# TYPE nshost_clients "); at != std::string::npos;
       at = t.find("# TYPE nshost_clients ", at + 1))
    ++types;
  CHECK(types == 1);
}

TEST_CASE("metrics: the status JSON has the agreed fields") {
  ServerMetrics m(1.0 / 30);
  m.ticks.record(1, 0.002, 1.0 / 30);
  auto j = nlohmann::json::parse(render_status_json(sample_snapshot(m)));
  CHECK(j["role"] == "server");
  CHECK(j["tick"]["rate_hz"] == 30);
  CHECK(j["tick"]["count"] == 1);
  CHECK(j["tick"]["last_duration_s"] == 0.002);
  for (const char* key : {"budget_s", "p50_duration_s", "p99_duration_s", "max_duration_s", "overruns_total"})
    CHECK_MESSAGE(j["tick"].contains(key), key);
  CHECK(j["clients"]["connected"] == 3);
  CHECK(j["clients"]["max"] == 64);
  CHECK(j["rooms"]["total"] == 3);
  CHECK(j["rooms"]["by_type"]["arena"] == 2);
  CHECK(j["traffic"]["messages_in_total"] == 10);
  CHECK(j["traffic"]["bytes_out_total"] == 200);
  CHECK(j["traffic"]["by_channel"][1]["channel"] == 1);
  CHECK(j["traffic"]["by_channel"][1]["messages_out_total"] == 20);
  CHECK(j["drops"]["kicks_total"]["rate_limit"] == 0);
  for (const char* key : {"malformed_datagrams_total", "handler_errors_total", "handler_timeouts_total"})
    CHECK_MESSAGE(j["drops"].contains(key), key);
  CHECK(j["resumes_total"] == 0);
  CHECK(j["lua_memory_bytes"]["main"] == 4096);
  CHECK(j["process"].contains("cpu_seconds_total"));
  CHECK(j["process"].contains("resident_memory_bytes"));
  CHECK(j["client_list"][0]["slot"] == 2);
  CHECK(j["client_list"][0]["room"] == 7);
  for (const char* key : {"id", "address", "rtt_ms", "packet_loss", "bytes_in_total", "bytes_out_total"})
    CHECK_MESSAGE(j["client_list"][0].contains(key), key);
  CHECK(j["room_list"][0]["type"] == "arena");
  CHECK(j["room_list"][0]["max_clients"] == 8);
  CHECK(j["room_list"][0]["locked"] == false);
}

TEST_CASE("metrics: process usage reads a resident size") {
  double cpu = -1;
  uint64_t rss = 0;
  read_process_usage(cpu, rss);
  CHECK(cpu >= 0);
  CHECK(rss > 0);
}

TEST_CASE("admin: the bearer token must match exactly") {
  CHECK(bearer_matches("Bearer s3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("Bearer s3cre", "s3cret"));
  CHECK_FALSE(bearer_matches("Bearer s3cret ", "s3cret"));
  CHECK_FALSE(bearer_matches("bearer s3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("s3cret", "s3cret"));
  CHECK_FALSE(bearer_matches("", "s3cret"));
}

TEST_CASE("admin: --admin and --admin-token on the command line") {
  auto parse = [](std::vector<std::string> args) {
    args.insert(args.begin(), "nshost");
    return parse_args(args, nullptr);
  };
  auto ok = parse({"--role=server", "--admin=127.0.0.1:0", "s.lua"});
  REQUIRE(ok.action == ParsedArgs::Action::run);
  CHECK(ok.options.admin_host == "127.0.0.1");
  CHECK(ok.options.admin_port == 0);
  auto v6 = parse({"--role=server", "--admin=[::1]:9090", "s.lua"});
  REQUIRE(v6.action == ParsedArgs::Action::run);
  CHECK(v6.options.admin_host == "::1");
  CHECK(v6.options.admin_port == 9090);
  auto open = parse({"--role=server", "--admin=0.0.0.0:9090", "s.lua"});
  CHECK(open.action == ParsedArgs::Action::error);
  CHECK(open.error == "--admin on a non-loopback address needs --admin-token");
  auto with_token = parse({"--role=server", "--admin=0.0.0.0:9090", "--admin-token=t", "s.lua"});
  CHECK(with_token.action == ParsedArgs::Action::run);
  CHECK(parse({"--role=client", "--admin=127.0.0.1:0", "s.lua"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--admin-token=t", "s.lua"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--admin=localhost:9090", "s.lua"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--admin=127.0.0.1:70000", "s.lua"}).action == ParsedArgs::Action::error);
  CHECK(parse({"--role=server", "--admin=127.0.0.1", "s.lua"}).action == ParsedArgs::Action::error);
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.5.6.7"));
  CHECK(is_loopback_host("::1"));
  CHECK_FALSE(is_loopback_host("10.0.0.1"));
  CHECK_FALSE(is_loopback_host("::"));
}
