// --log-format=json: each line one JSON object (parsed back with nlohmann
// json), RFC 3339 UTC time, strings escaped, one write per line.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "runtime/core/log.hpp"
#include "tests/support/cli.hpp"

using nlohmann::json;
using namespace nshost;

namespace {

json parse_line(const std::string& line) {
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // one line: every newline inside is escaped
  return json::parse(line);  // throws (fails the test) on anything but one JSON value
}

// Sets the process-wide level and format for one test and restores them.
struct LogSettings {
  LogSettings(LogLevel level, LogFormat format) : level_(log_level()), format_(log_format()) {
    set_log_level(level);
    set_log_format(format);
  }
  ~LogSettings() {
    set_log_level(level_);
    set_log_format(format_);
  }
  LogLevel level_;
  LogFormat format_;
};

// stderr as a SOCK_SEQPACKET socket: each write() arrives as one record, so
// the records read back are the writes made.
class StderrRecords {
 public:
  StderrRecords() {
    REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, fds_) == 0);
    saved_ = dup(STDERR_FILENO);
    dup2(fds_[1], STDERR_FILENO);
  }
  ~StderrRecords() { restore(); }
  std::vector<std::string> records() {
    restore();
    std::vector<std::string> out;
    char buffer[1 << 16];
    for (int i = 0; i < 1000; ++i) {
      ssize_t n = recv(fds_[0], buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) break;
      out.emplace_back(buffer, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
    close(fds_[1]);
  }
  int fds_[2] = {-1, -1};
  int saved_ = -1;
};

}  // namespace

TEST_CASE("log json: a line carries time, level, role, tag, event, message and the fields, in that order") {
  std::string line = format_log_json(1764557400123, LogLevel::warn, "server", "reject", "rejected 127.0.0.1:5000: full",
                                     {{"address", "127.0.0.1:5000"}, {"reason", "full"}, {"slot", uint32_t{7}}});
  json j = parse_line(line);
  CHECK(j["time"] == "2025-12-01T02:50:00.123Z");
  CHECK(j["level"] == "warn");
  CHECK(j["role"] == "server");
  CHECK(j["tag"] == "server");
  CHECK(j["event"] == "reject");
  CHECK(j["message"] == "rejected 127.0.0.1:5000: full");
  CHECK(j["address"] == "127.0.0.1:5000");
  CHECK(j["reason"] == "full");
  CHECK(j["slot"].is_number_integer());
  CHECK(j["slot"] == 7);
  CHECK(line.rfind("{\"time\":", 0) == 0);
  CHECK(line.find("\"level\"") < line.find("\"role\""));
  CHECK(line.find("\"event\"") < line.find("\"message\""));
  CHECK(line.find("\"message\"") < line.find("\"address\""));
}

TEST_CASE("log json: the role follows the tag") {
  CHECK(parse_line(format_log_json(0, LogLevel::info, "client#12", "log", "x", {}))["role"] == "client");
  CHECK(parse_line(format_log_json(0, LogLevel::info, "client", "log", "x", {}))["role"] == "client");
  CHECK(parse_line(format_log_json(0, LogLevel::info, "rooms", "log", "x", {}))["role"] == "server");
  CHECK(parse_line(format_log_json(0, LogLevel::info, "room arena#3", "log", "x", {}))["role"] == "server");
  CHECK(parse_line(format_log_json(0, LogLevel::info, "host", "log", "x", {}))["role"] == "host");
}

TEST_CASE("log json: time is RFC 3339 UTC with milliseconds") {
  CHECK(format_rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339_ms(951782400999) == "2000-02-29T00:00:00.999Z");  // a leap day
  CHECK(format_rfc3339_ms(4102444799001) == "2099-12-31T23:59:59.001Z");
  CHECK(format_rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
  const std::regex rfc3339(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
  LogSettings settings(LogLevel::info, LogFormat::json);
  StderrRecords capture;
  log_write(LogLevel::info, "server", "now");
  auto records = capture.records();
  REQUIRE(records.size() == 1);
  json j = parse_line(records[0]);
  CHECK(std::regex_match(j["time"].get<std::string>(), rfc3339));
  CHECK(j["event"] == "log");
}

TEST_CASE("log json: quotes, backslashes, newlines and control characters are escaped") {
  std::string message = "say \"hi\"\\ then\nline two\r\tend";
  message += '\0';
  message += "\x01\x1f\x7f after";
  std::string line = format_log_json(0, LogLevel::error, "server", "script_error", message,
                                     {{"where", "server.receive\n"}, {"key\"odd", "v"}});
  json j = parse_line(line);
  CHECK(j["message"] == message);  // round-trips byte for byte
  CHECK(j["where"] == "server.receive\n");
  CHECK(j["key\"odd"] == "v");
  CHECK(line.find("\\u0000") != std::string::npos);
  CHECK(line.find("\\u0001") != std::string::npos);
  for (char c : line.substr(0, line.size() - 1)) CHECK(static_cast<unsigned char>(c) >= 0x20);
}

TEST_CASE("log json: invalid UTF-8 is replaced by U+FFFD, valid UTF-8 kept") {
  const std::string fffd = "\xEF\xBF\xBD";
  auto message_of = [](std::string text) {
    return parse_line(format_log_json(0, LogLevel::info, "server", "log", text, {}))["message"].get<std::string>();
  };
  CHECK(message_of("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8E\xAE") == "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8E\xAE");
  CHECK(message_of("a\xFF" "b") == "a" + fffd + "b");
  CHECK(message_of("\xC0\xAF") == fffd + fffd);              // overlong '/'
  CHECK(message_of("\xED\xA0\x80") == fffd + fffd + fffd);   // a UTF-16 surrogate
  CHECK(message_of("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd);  // past U+10FFFF
  CHECK(message_of("cut \xE2\x82") == "cut " + fffd);  // a truncated sequence: one replacement
  CHECK(message_of("\x80x") == fffd + "x");
}

TEST_CASE("log json: one write per line, even for a long message with newlines") {
  LogSettings settings(LogLevel::info, LogFormat::json);
  StderrRecords capture;
  std::string long_message(20000, 'x');
  long_message[5000] = '\n';
  log_event(LogLevel::error, "room arena#1", "script_error", long_message, {{"where", "room.tick"}});
  log_write(LogLevel::info, "client#2", "second");
  log_write(LogLevel::debug, "server", "below the threshold");
  auto records = capture.records();
  REQUIRE(records.size() == 2);
  json first = parse_line(records[0]);
  CHECK(first["message"] == long_message);
  CHECK(first["where"] == "room.tick");
  CHECK(first["role"] == "server");
  CHECK(parse_line(records[1])["message"] == "second");
}

TEST_CASE("log text: the default format is unchanged, a structured call writes its message only") {
  LogSettings settings(LogLevel::info, LogFormat::text);
  StderrRecords capture;
  log_event(LogLevel::info, "server", "connect", "client 127.0.0.1:1 joined in slot 0", {{"slot", 0}});
  log_write(LogLevel::warn, "rooms", "plain");
  auto records = capture.records();
  REQUIRE(records.size() == 2);
  CHECK(records[0] == "nshost[server] info: client 127.0.0.1:1 joined in slot 0\n");
  CHECK(records[1] == "nshost[rooms] warn: plain\n");
}

TEST_CASE("parse_args: --log-format=text|json, anything else is a usage error") {
  using nshost::test::parse;
  CHECK(parse({"--role=server", "g.lua"}).options.log_format == LogFormat::text);
  CHECK(parse({"--role=server", "--log-format=json", "g.lua"}).options.log_format == LogFormat::json);
  CHECK(parse({"--role=client", "--log-format=text", "g.lua"}).options.log_format == LogFormat::text);
  for (const char* bad : {"--log-format=JSON", "--log-format=", "--log-format", "--log-format=logfmt"}) {
    ParsedArgs p = parse({"--role=server", bad, "g.lua"});
    CHECK(p.action == ParsedArgs::Action::error);
    CHECK(p.error == "--log-format: expected text or json");
  }
}
