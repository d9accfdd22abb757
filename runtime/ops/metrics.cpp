#include "runtime/ops/metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace nshost::ops {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  ++count_;
  sum_ += value;
}

uint64_t Histogram::cumulative(size_t i) const {
  uint64_t total = 0;
  for (size_t k = 0; k <= i && k < counts_.size(); ++k) total += counts_[k];
  return total;
}

namespace {

std::vector<double> tick_buckets(double budget_s) {
  std::vector<double> b{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
  if (budget_s > 0 && std::isfinite(budget_s)) {
    b.push_back(budget_s);
    b.push_back(2 * budget_s);
  }
  return b;
}

}  // namespace

TickRecorder::TickRecorder(double budget_s) : histogram_(tick_buckets(budget_s)) {}

void TickRecorder::record(int64_t end_ns, double duration_s, double budget_s) {
  histogram_.observe(duration_s);
  if (duration_s > budget_s) ++overruns_;
  last_s_ = duration_s;
  recent_[next_] = {end_ns, duration_s};
  next_ = (next_ + 1) % kRecent;
  filled_ = std::min(filled_ + 1, kRecent);
}

TickRecorder::Window TickRecorder::window(int64_t now_ns, int64_t window_ns) const {
  std::vector<double> d;
  d.reserve(filled_);
  for (size_t k = 0; k < filled_; ++k) {
    const auto& [end_ns, duration_s] = recent_[k];
    if (now_ns - end_ns <= window_ns) d.push_back(duration_s);
  }
  Window w;
  w.ticks = d.size();
  if (d.empty()) return w;
  std::sort(d.begin(), d.end());
  auto rank = [&](double q) {
    size_t r = static_cast<size_t>(std::ceil(q * static_cast<double>(d.size())));
    return d[std::clamp<size_t>(r, 1, d.size()) - 1];
  };
  w.p50_s = rank(0.50);
  w.p99_s = rank(0.99);
  w.max_s = d.back();
  return w;
}

const char* kick_reason_name(KickReason reason) {
  switch (reason) {
    case KickReason::script:
      return "script";
    case KickReason::rate_limit:
      return "rate_limit";
    case KickReason::bundle_requests:
      return "bundle_requests";
    case KickReason::protocol:
      return "protocol";
    case KickReason::count:
      break;
  }
  return "script";
}

KickReason classify_kick(std::string_view reason) {
  for (size_t i = 0; i < static_cast<size_t>(KickReason::count); ++i) {
    auto r = static_cast<KickReason>(i);
    if (r != KickReason::script && reason == kick_reason_name(r)) return r;
  }
  return KickReason::script;
}

void read_process_usage(double& cpu_seconds, uint64_t& resident_bytes) {
  cpu_seconds = 0;
  resident_bytes = 0;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2)
      resident_bytes = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_sample_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, ptr);
}

namespace {

// HELP text escapes backslash and line feed only.
std::string escape_help(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

void TextExposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void TextExposition::sample(std::string_view name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [label, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += label;
      out_ += "=\"";
      out_ += escape_label_value(v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_sample_value(value);
  out_ += '\n';
}

void TextExposition::histogram(std::string_view name, const Histogram& h, const Labels& labels) {
  std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i <= h.upper_bounds().size(); ++i) {
    Labels with_le = labels;
    double le = i < h.upper_bounds().size() ? h.upper_bounds()[i] : INFINITY;
    with_le.emplace_back("le", format_sample_value(le));
    sample(bucket, with_le, static_cast<double>(h.cumulative(i)));
  }
  sample(std::string(name) + "_sum", labels, h.sum());
  sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

std::string render_prometheus(const StatusSnapshot& s) {
  TextExposition e;
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  const TickRecorder& ticks = *s.ticks;
  const ServerMetrics& c = *s.counters;

  e.family("nshost_info", "gauge", "Always 1; the labels name the role and version.");
  e.sample("nshost_info", {{"role", s.role}, {"version", s.version}}, 1);
  e.family("nshost_uptime_seconds", "gauge", "Seconds since the server role started.");
  e.sample("nshost_uptime_seconds", s.uptime_s);

  e.family("nshost_tick_duration_seconds", "histogram", "Wall-clock time one server tick took, seconds.");
  e.histogram("nshost_tick_duration_seconds", ticks.histogram());
  e.family("nshost_tick_budget_seconds", "gauge", "One tick period at the current tick rate, seconds.");
  e.sample("nshost_tick_budget_seconds", s.budget_s);
  e.family("nshost_tick_rate_hertz", "gauge", "Current tick rate, Hz.");
  e.sample("nshost_tick_rate_hertz", s.tick_rate_hz);
  e.family("nshost_tick_overruns_total", "counter", "Ticks that took longer than the tick budget.");
  e.sample("nshost_tick_overruns_total", d(ticks.overruns()));

  e.family("nshost_clients", "gauge", "Clients by state: connected (through the hello) or handshaking.");
  e.sample("nshost_clients", {{"state", "connected"}}, d(s.clients_connected));
  e.sample("nshost_clients", {{"state", "handshaking"}}, d(s.clients_handshaking));
  e.family("nshost_clients_max", "gauge", "Client slots (--max-clients).");
  e.sample("nshost_clients_max", d(s.max_clients));

  e.family("nshost_rooms", "gauge", "Open rooms by room type.");
  for (const auto& [type, n] : s.rooms_by_type) e.sample("nshost_rooms", {{"type", type}}, d(n));

  e.family("nshost_messages_total", "counter", "ENet messages by direction and channel.");
  for (size_t ch = 0; ch < s.channels.size(); ++ch) {
    std::string id = std::to_string(ch);
    e.sample("nshost_messages_total", {{"direction", "in"}, {"channel", id}}, d(s.channels[ch].messages_in));
    e.sample("nshost_messages_total", {{"direction", "out"}, {"channel", id}}, d(s.channels[ch].messages_out));
  }
  e.family("nshost_bytes_total", "counter", "Message payload bytes by direction and channel (no ENet/UDP headers).");
  for (size_t ch = 0; ch < s.channels.size(); ++ch) {
    std::string id = std::to_string(ch);
    e.sample("nshost_bytes_total", {{"direction", "in"}, {"channel", id}}, d(s.channels[ch].bytes_in));
    e.sample("nshost_bytes_total", {{"direction", "out"}, {"channel", id}}, d(s.channels[ch].bytes_out));
  }
  e.family("nshost_malformed_datagrams_total", "counter", "UDP datagrams dropped before ENet as malformed.");
  e.sample("nshost_malformed_datagrams_total", d(s.malformed_datagrams));
  e.family("nshost_resumes_total", "counter", "Sessions resumed after a dropped link.");
  e.sample("nshost_resumes_total", d(c.resumes));
  e.family("nshost_kicks_total", "counter", "Clients kicked, by reason (script: server.kick).");
  for (size_t i = 0; i < c.kicks.size(); ++i)
    e.sample("nshost_kicks_total", {{"reason", kick_reason_name(static_cast<KickReason>(i))}}, d(c.kicks[i]));
  e.family("nshost_handler_errors_total", "counter", "Lua handler calls that raised (main state and rooms).");
  e.sample("nshost_handler_errors_total", d(c.handler_errors));
  e.family("nshost_handler_timeouts_total", "counter", "Lua handler calls stopped by --handler-timeout.");
  e.sample("nshost_handler_timeouts_total", d(c.handler_timeouts));
  e.family("nshost_lua_memory_bytes", "gauge", "Bytes allocated by each Lua state.");
  for (const auto& [state, bytes] : s.lua_memory_bytes) e.sample("nshost_lua_memory_bytes", {{"state", state}}, d(bytes));

  e.family("nshost_admin_connections_total", "counter", "HTTP connections accepted by the admin server.");
  e.sample("nshost_admin_connections_total", d(s.admin.connections));
  e.family("nshost_admin_connections_refused_total", "counter",
           "Admin connections closed at once: over the connection budget.");
  e.sample("nshost_admin_connections_refused_total", d(s.admin.connections_refused));
  e.family("nshost_admin_connections_oversized_total", "counter",
           "Admin connections closed for buffering more request bytes than the budget.");
  e.sample("nshost_admin_connections_oversized_total", d(s.admin.closed_oversized));
  e.family("nshost_admin_requests_total", "counter", "HTTP requests the admin server answered.");
  e.sample("nshost_admin_requests_total", d(s.admin.requests));
  e.family("nshost_admin_unauthorized_total", "counter", "Admin requests refused with 401 (token missing or wrong).");
  e.sample("nshost_admin_unauthorized_total", d(s.admin.unauthorized));

  e.family("process_cpu_seconds_total", "counter", "User and system CPU time of the process, seconds.");
  e.sample("process_cpu_seconds_total", s.cpu_seconds);
  e.family("process_resident_memory_bytes", "gauge", "Resident set size of the process, bytes.");
  e.sample("process_resident_memory_bytes", d(s.resident_memory_bytes));
  return e.take();
}

std::string render_status_json(const StatusSnapshot& s) {
  using nlohmann::json;
  const TickRecorder& ticks = *s.ticks;
  const ServerMetrics& c = *s.counters;
  json j;
  j["role"] = s.role;
  j["version"] = s.version;
  j["time_unix_s"] = s.time_unix_s;
  j["uptime_s"] = s.uptime_s;
  j["tick"] = {{"rate_hz", s.tick_rate_hz},
               {"budget_s", s.budget_s},
               {"count", ticks.count()},
               {"last_duration_s", ticks.last_s()},
               {"p50_duration_s", s.tick_window.p50_s},
               {"p99_duration_s", s.tick_window.p99_s},
               {"max_duration_s", s.tick_window.max_s},
               {"window_ticks", s.tick_window.ticks},
               {"overruns_total", ticks.overruns()}};
  j["clients"] = {
      {"connected", s.clients_connected}, {"handshaking", s.clients_handshaking}, {"max", s.max_clients}};
  json by_type = json::object();
  for (const auto& [type, n] : s.rooms_by_type) by_type[type] = n;
  j["rooms"] = {{"total", s.rooms_total}, {"by_type", by_type}};
  ChannelTraffic total;
  json by_channel = json::array();
  for (size_t ch = 0; ch < s.channels.size(); ++ch) {
    const ChannelTraffic& t = s.channels[ch];
    total.messages_in += t.messages_in;
    total.bytes_in += t.bytes_in;
    total.messages_out += t.messages_out;
    total.bytes_out += t.bytes_out;
    by_channel.push_back({{"channel", ch},
                          {"messages_in_total", t.messages_in},
                          {"bytes_in_total", t.bytes_in},
                          {"messages_out_total", t.messages_out},
                          {"bytes_out_total", t.bytes_out}});
  }
  j["traffic"] = {{"messages_in_total", total.messages_in},
                  {"messages_out_total", total.messages_out},
                  {"bytes_in_total", total.bytes_in},
                  {"bytes_out_total", total.bytes_out},
                  {"by_channel", by_channel}};
  json kicks = json::object();
  for (size_t i = 0; i < c.kicks.size(); ++i) kicks[kick_reason_name(static_cast<KickReason>(i))] = c.kicks[i];
  j["drops"] = {{"malformed_datagrams_total", s.malformed_datagrams},
                {"kicks_total", kicks},
                {"handler_errors_total", c.handler_errors},
                {"handler_timeouts_total", c.handler_timeouts}};
  j["resumes_total"] = c.resumes;
  json memory = json::object();
  for (const auto& [state, bytes] : s.lua_memory_bytes) memory[state] = bytes;
  j["lua_memory_bytes"] = memory;
  j["process"] = {{"cpu_seconds_total", s.cpu_seconds}, {"resident_memory_bytes", s.resident_memory_bytes}};
  json clients = json::array();
  for (const ClientRow& r : s.clients)
    clients.push_back({{"slot", r.slot},
                       {"id", r.id},
                       {"address", r.address},
                       {"rtt_ms", r.rtt_ms},
                       {"packet_loss", r.packet_loss},
                       {"bytes_in_total", r.bytes_in},
                       {"bytes_out_total", r.bytes_out},
                       {"room", r.rooms.empty() ? json(nullptr) : json(r.rooms.front())},
                       {"rooms", r.rooms}});
  j["client_list"] = clients;
  json rooms = json::array();
  for (const RoomRow& r : s.rooms)
    rooms.push_back({{"id", r.id},
                     {"type", r.type},
                     {"clients", r.clients},
                     {"max_clients", r.max_clients},
                     {"locked", r.locked}});
  j["room_list"] = rooms;
  j["admin"] = {{"connections_total", s.admin.connections},
                {"connections_refused_total", s.admin.connections_refused},
                {"connections_oversized_total", s.admin.closed_oversized},
                {"requests_total", s.admin.requests},
                {"unauthorized_total", s.admin.unauthorized}};
  // Invalid UTF-8 (a room type is script text) is replaced, never thrown.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace nshost::ops
