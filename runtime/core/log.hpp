#pragma once
// Host logging: one line per call on stderr, tagged with the role instance.
#include <string>
#include <string_view>

namespace nshost {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

// Parses "debug" | "info" | "warn" | "error"; returns false on anything else.
bool parse_log_level(std::string_view text, LogLevel& out);
const char* log_level_name(LogLevel level);

// Process-wide threshold; messages below it are dropped. Default: info.
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);

// Writes "nshost[<tag>] <level>: <message>\n" to stderr as one write, so lines
// from several role instances in one process never interleave mid-line.
void log_write(LogLevel level, std::string_view tag, std::string_view message);

}  // namespace nshost
