#pragma once
// The server role's metrics: counters the hot path bumps with plain integer
// increments (ServerMetrics), and a snapshot gathered at scrape time
// (StatusSnapshot, O(clients + rooms)) rendered two ways: the Prometheus text
// exposition format 0.0.4 (GET /metrics) and the JSON of GET /api/status.
// Nothing here is keyed by strings on the hot path; the only per-tick work is
// TickRecorder::record (a bucket scan and a ring-buffer store).
// Everything runs on the role's loop thread: no atomics.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nshost::ops {

// A Prometheus histogram with fixed upper bounds (seconds for the tick).
class Histogram {
 public:
  // `upper_bounds` ascending, finite; +Inf is implicit.
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Cumulative count of observations <= upper_bounds()[i]; i == size(): all.
  uint64_t cumulative(size_t i) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last: above every bound
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Tick durations: the histogram, the overrun count, and the last second's
// durations for the percentiles of /api/status.
class TickRecorder {
 public:
  // Ring capacity: a second of ticks at the highest tick rate (1000 Hz).
  static constexpr size_t kRecent = 1024;
  // Buckets: a fixed ladder from 50 us to 1 s plus the budget and twice it.
  explicit TickRecorder(double budget_s);
  // One tick that ended at end_ns (monotonic) and took duration_s; an overrun
  // when it took longer than budget_s (the budget of the rate it ran at).
  void record(int64_t end_ns, double duration_s, double budget_s);
  const Histogram& histogram() const { return histogram_; }
  uint64_t count() const { return histogram_.count(); }
  uint64_t overruns() const { return overruns_; }
  double last_s() const { return last_s_; }
  // Percentiles (nearest rank) and maximum of the ticks that ended in the
  // window_ns before now_ns; zeros when none did.
  struct Window {
    double p50_s = 0, p99_s = 0, max_s = 0;
    size_t ticks = 0;
  };
  Window window(int64_t now_ns, int64_t window_ns) const;

 private:
  Histogram histogram_;
  uint64_t overruns_ = 0;
  double last_s_ = 0;
  std::array<std::pair<int64_t, double>, kRecent> recent_{};  // (end_ns, duration_s)
  size_t next_ = 0;
  size_t filled_ = 0;
};

// Why a server kicked a client: the host's own reasons by name, anything the
// script passed to server.kick as `script` (its text is free, a label is not).
enum class KickReason : uint8_t { script, rate_limit, bundle_requests, protocol, count };
const char* kick_reason_name(KickReason reason);
KickReason classify_kick(std::string_view reason);

// The counters the server bumps as things happen.
struct ServerMetrics {
  explicit ServerMetrics(double budget_s) : ticks(budget_s) {}
  TickRecorder ticks;
  uint64_t resumes = 0;
  std::array<uint64_t, static_cast<size_t>(KickReason::count)> kicks{};
  uint64_t handler_errors = 0;
  uint64_t handler_timeouts = 0;
};

struct ChannelTraffic {
  uint64_t messages_in = 0, bytes_in = 0, messages_out = 0, bytes_out = 0;
};

struct ClientRow {
  uint32_t slot = 0;
  uint64_t id = 0;
  std::string address;
  uint32_t rtt_ms = 0;
  double packet_loss = 0;  // 0..1
  uint64_t bytes_in = 0, bytes_out = 0;
  std::vector<uint64_t> rooms;  // in join order
};

struct RoomRow {
  uint64_t id = 0;
  std::string type;
  size_t clients = 0;
  uint32_t max_clients = 0;
  bool locked = false;
};

// The admin server's own counters (runtime/ops/admin_server.hpp).
struct AdminCounters {
  uint64_t connections = 0;          // accepted
  uint64_t connections_refused = 0;  // over the connection budget
  uint64_t closed_oversized = 0;     // buffered more request bytes than the budget
  uint64_t requests = 0;
  uint64_t unauthorized = 0;  // 401
};

// Everything one scrape shows. Filled by the server role.
struct StatusSnapshot {
  std::string role = "server";
  std::string version;
  double time_unix_s = 0, uptime_s = 0;
  uint32_t tick_rate_hz = 0;
  double budget_s = 0;
  const TickRecorder* ticks = nullptr;  // required
  TickRecorder::Window tick_window;
  size_t clients_connected = 0, clients_handshaking = 0, max_clients = 0;
  std::map<std::string, size_t> rooms_by_type;
  size_t rooms_total = 0;
  std::vector<ChannelTraffic> channels;  // index: ENet channel id
  uint64_t malformed_datagrams = 0;
  const ServerMetrics* counters = nullptr;  // required
  std::vector<std::pair<std::string, size_t>> lua_memory_bytes;  // ("main" | "room:<id>", bytes)
  double cpu_seconds = 0;
  uint64_t resident_memory_bytes = 0;
  std::vector<ClientRow> clients;
  std::vector<RoomRow> rooms;
  AdminCounters admin;
};

// The process's CPU time (user + system, s) and resident set size (bytes):
// getrusage(2) and /proc/self/statm. Zeros when unavailable.
void read_process_usage(double& cpu_seconds, uint64_t& resident_bytes);

// Prometheus text exposition (0.0.4) of one snapshot.
std::string render_prometheus(const StatusSnapshot& status);
// The JSON of GET /api/status (field names in docs/operations.md).
std::string render_status_json(const StatusSnapshot& status);

// A label value escaped for the text format: backslash, double quote and
// line feed become \\, \" and \n.
std::string escape_label_value(std::string_view value);
// A sample value in the text format: "+Inf", "-Inf", "NaN" or the shortest
// decimal that reads back as the same double.
std::string format_sample_value(double value);

// Builds text exposition output: one HELP and TYPE per family, then samples.
class TextExposition {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string>>;
  // `type`: counter, gauge, histogram. `help` is escaped here.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  // _bucket (with le), _sum and _count of `name`; `labels` go on each.
  void histogram(std::string_view name, const Histogram& histogram, const Labels& labels = {});
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace nshost::ops
