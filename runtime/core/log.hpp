#pragma once
// Host logging: one line per call on stderr, tagged with the role instance.
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace nshost {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// text: "nshost[<tag>] <level>: <message>"; json: one JSON object a line
// (docs/operations.md, "Structured logs").
enum class LogFormat { text, json };

// Parses "debug" | "info" | "warn" | "error"; returns false on anything else.
bool parse_log_level(std::string_view text, LogLevel& out);
const char* log_level_name(LogLevel level);
// Parses "text" | "json"; returns false on anything else.
bool parse_log_format(std::string_view text, LogFormat& out);

// Process-wide threshold; messages below it are dropped. Default: info.
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);

// Process-wide format. Default: text.
void set_log_format(LogFormat format);
LogFormat log_format();

// One field of a structured line: a key and a string or an integer (written
// as a JSON number). The key is written as given; callers use snake_case.
struct LogField {
  LogField(std::string_view key_, std::string_view text) : key(key_), value(text) {}
  LogField(std::string_view key_, const char* text) : key(key_), value(text) {}
  LogField(std::string_view key_, const std::string& text) : key(key_), value(text) {}
  template <std::integral T>
  LogField(std::string_view key_, T number) : key(key_), value(std::to_string(number)), is_number(true) {}
  std::string_view key;
  std::string value;
  bool is_number = false;
};

// Writes "nshost[<tag>] <level>: <message>\n" (text) or the JSON line (json)
// to stderr as one write, so lines from several role instances in one process
// never interleave mid-line. The JSON line's event is "log".
void log_write(LogLevel level, std::string_view tag, std::string_view message);

// As log_write, with an event name and fields for the JSON format; the text
// format writes the message only, exactly as log_write would.
void log_event(LogLevel level, std::string_view tag, std::string_view event, std::string_view message,
               std::initializer_list<LogField> fields);

// The JSON line (with its '\n') for a message logged at `unix_ms` (ms since
// the Unix epoch, UTC). The role is "client" for tags that start with
// "client", "host" for "host", "server" otherwise (the server, "rooms" and its
// rooms). Written by nlohmann::json: strings escaped, invalid UTF-8 replaced by
// U+FFFD.
std::string format_log_json(int64_t unix_ms, LogLevel level, std::string_view tag, std::string_view event,
                            std::string_view message, std::initializer_list<LogField> fields);

// `unix_ms` as RFC 3339 UTC with milliseconds: "2026-12-01T02:50:00.123Z".
std::string format_rfc3339_ms(int64_t unix_ms);


}  // namespace nshost
