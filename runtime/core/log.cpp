#include "runtime/core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace nshost {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::atomic<int> g_format{static_cast<int>(LogFormat::text)};

void write_line(const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

std::string format_text(LogLevel level, std::string_view tag, std::string_view message) {
  std::string line;
  line.reserve(message.size() + tag.size() + 24);
  line += "nshost[";
  line += tag;
  line += "] ";
  line += log_level_name(level);
  line += ": ";
  line += message;
  line += '\n';
  return line;
}

int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string_view role_of_tag(std::string_view tag) {
  if (tag.substr(0, 6) == "client") return "client";
  if (tag == "host") return "host";
  return "server";
}

}  // namespace

bool parse_log_level(std::string_view text, LogLevel& out) {
  if (text == "debug") out = LogLevel::debug;
  else if (text == "info") out = LogLevel::info;
  else if (text == "warn") out = LogLevel::warn;
  else if (text == "error") out = LogLevel::error;
  else return false;
  return true;
}

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}

bool parse_log_format(std::string_view text, LogFormat& out) {
  if (text == "text") out = LogFormat::text;
  else if (text == "json") out = LogFormat::json;
  else return false;
  return true;
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void set_log_format(LogFormat format) { g_format.store(static_cast<int>(format)); }
LogFormat log_format() { return static_cast<LogFormat>(g_format.load()); }

std::string format_rfc3339_ms(int64_t unix_ms) {
  int64_t secs = unix_ms / 1000, ms = unix_ms % 1000;
  if (ms < 0) ms += 1000, secs -= 1;
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::string format_log_json(int64_t unix_ms, LogLevel level, std::string_view tag, std::string_view event,
                            std::string_view message, std::initializer_list<LogField> fields) {
  nlohmann::ordered_json line;
  line["time"] = format_rfc3339_ms(unix_ms);
  line["level"] = log_level_name(level);
  line["role"] = role_of_tag(tag);
  line["tag"] = tag;
  line["event"] = event;
  line["message"] = message;
  for (const LogField& f : fields) {
    std::string key(f.key);
    if (!f.is_number) line[key] = f.value;
    else if (!f.value.empty() && f.value[0] == '-') line[key] = std::strtoll(f.value.c_str(), nullptr, 10);
    else line[key] = std::strtoull(f.value.c_str(), nullptr, 10);
  }
  // Invalid UTF-8 (a script's or a peer's bytes) becomes U+FFFD rather than a throw.
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void log_write(LogLevel level, std::string_view tag, std::string_view message) {
  log_event(level, tag, "log", message, {});
}

void log_event(LogLevel level, std::string_view tag, std::string_view event, std::string_view message,
               std::initializer_list<LogField> fields) {
  if (!log_enabled(level)) return;
  if (log_format() == LogFormat::json)
    write_line(format_log_json(now_unix_ms(), level, tag, event, message, fields));
  else
    write_line(format_text(level, tag, message));
}

}  // namespace nshost
