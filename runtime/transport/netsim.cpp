#include "runtime/transport/netsim.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace nshost {
namespace {

bool parse_double(std::string_view text, double& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty() && std::isfinite(out);
}

bool parse_fraction(std::string_view text, double& out) {
  bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  if (!parse_double(text, out)) return false;
  if (percent) out /= 100.0;
  return out >= 0.0 && out <= 1.0;
}

}  // namespace

bool parse_netsim(std::string_view text, NetsimConfig& out, std::string& error) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (parts.size() < 5 || parts.size() > 6) {
    error = "expected latency_ms,jitter_ms,loss,dup,reorder[,seed]";
    return false;
  }
  NetsimConfig c;
  if (!parse_double(parts[0], c.latency_ms) || c.latency_ms < 0 || c.latency_ms > 60000) {
    error = "latency_ms must be 0..60000";
    return false;
  }
  if (!parse_double(parts[1], c.jitter_ms) || c.jitter_ms < 0 || c.jitter_ms > 60000) {
    error = "jitter_ms must be 0..60000";
    return false;
  }
  const char* names[] = {"loss", "dup", "reorder"};
  double* fields[] = {&c.loss, &c.dup, &c.reorder};
  for (int i = 0; i < 3; ++i) {
    if (!parse_fraction(parts[2 + i], *fields[i])) {
      error = std::string(names[i]) + " must be a fraction 0..1 or a percentage";
      return false;
    }
  }
  if (parts.size() == 6) {
    auto [ptr, ec] = std::from_chars(parts[5].data(), parts[5].data() + parts[5].size(), c.seed);
    if (ec != std::errc() || ptr != parts[5].data() + parts[5].size() || parts[5].empty()) {
      error = "seed must be an unsigned integer";
      return false;
    }
  }
  c.enabled = true;
  out = c;
  return true;
}

std::string format_netsim(const NetsimConfig& c) {
  char text[160];
  std::snprintf(text, sizeof text, "latency %.0f ms, jitter %.0f ms, loss %.3g, dup %.3g, reorder %.3g, seed %llu",
                c.latency_ms, c.jitter_ms, c.loss, c.dup, c.reorder, static_cast<unsigned long long>(c.seed));
  return text;
}

NetsimLink::NetsimLink(const NetsimConfig& config, uint64_t stream)
    : config_(config), rng_(config.seed * 0x9E3779B97F4A7C15ull + stream) {}

bool NetsimLink::chance(double p) { return p > 0 && unit_(rng_) < p; }

int64_t NetsimLink::delay_ns() {
  double ms = config_.latency_ms;
  if (config_.jitter_ms > 0) ms += (unit_(rng_) * 2.0 - 1.0) * config_.jitter_ms;
  return static_cast<int64_t>(std::max(0.0, ms) * 1e6);
}

void NetsimLink::enqueue(int64_t now_ns, const ENetAddress& address, std::string bytes) {
  Datagram d;
  d.release_ns = now_ns + delay_ns();
  if (chance(config_.reorder)) {
    ++counters_.reordered;
    d.release_ns += static_cast<int64_t>(unit_(rng_) * (config_.latency_ms + 2 * config_.jitter_ms) * 1e6);
  } else {
    d.release_ns = std::max(d.release_ns, fifo_tail_ns_);
    fifo_tail_ns_ = d.release_ns;
  }
  d.order = next_order_++;
  d.address = address;
  d.bytes = std::move(bytes);
  queue_.push(std::move(d));
}

void NetsimLink::submit(int64_t now_ns, const ENetAddress& address, std::string bytes) {
  ++counters_.submitted;
  if (chance(config_.loss)) {
    ++counters_.dropped;
    return;
  }
  if (chance(config_.dup)) {
    ++counters_.duplicated;
    enqueue(now_ns, address, bytes);
  }
  enqueue(now_ns, address, std::move(bytes));
}

bool NetsimLink::pop_due(int64_t now_ns, Datagram& out) {
  if (queue_.empty() || queue_.top().release_ns > now_ns) return false;
  // priority_queue::top is const; the copy is one datagram.
  out = queue_.top();
  queue_.pop();
  ++counters_.released;
  return true;
}

int64_t NetsimLink::next_due_ns() const { return queue_.empty() ? -1 : queue_.top().release_ns; }

}  // namespace nshost
