#include "runtime/core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <unistd.h>

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

// Length of the well-formed UTF-8 sequence at s[0] (RFC 3629: no overlongs,
// no surrogates, nothing past U+10FFFF), or 0 when it is not one.
size_t utf8_sequence_length(const unsigned char* s, size_t avail) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) len = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) len = 3;
  else if (c == 0xED) len = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) len = 3;
  else if (c == 0xF0) len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) len = 4, hi = 0x8F;
  else return 0;
  if (avail < len) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
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

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = s[i];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    size_t len = utf8_sequence_length(s + i, text.size() - i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD for this one byte; resynchronise on the next
      ++i;
    } else {
      out.append(text.data() + i, len);
      i += len;
    }
  }
  out += '"';
}

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
  std::string line;
  line.reserve(128 + message.size());
  line += "{\"time\":\"";
  line += format_rfc3339_ms(unix_ms);
  line += "\",\"level\":\"";
  line += log_level_name(level);
  line += "\",\"role\":\"";
  line += role_of_tag(tag);
  line += "\",\"tag\":";
  append_json_string(line, tag);
  line += ",\"event\":";
  append_json_string(line, event);
  line += ",\"message\":";
  append_json_string(line, message);
  for (const LogField& f : fields) {
    line += ',';
    append_json_string(line, f.key);
    line += ':';
    if (f.is_number) line += f.value;
    else append_json_string(line, f.value);
  }
  line += "}\n";
  return line;
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
