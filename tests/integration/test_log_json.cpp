// --log-format=json on a real server: every stderr line is one JSON object,
// and the connect, script error and disconnect lines carry their fields.
#include <doctest/doctest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

using nlohmann::json;
using namespace nshost::test;

namespace {

// Every line of `text`, each parsed; a line that is not one JSON object fails.
std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    CHECK_MESSAGE(j.is_object(), "not a JSON object: " << line);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

const json* find_event(const std::vector<json>& lines, std::string_view event) {
  for (const json& j : lines)
    if (j.value("event", "") == event) return &j;
  return nullptr;
}

}  // namespace

TEST_CASE("--log-format=json: a server's stderr is JSON lines with connect and disconnect fields") {
  Server server = start_server(test_script("faulty.lua"), {"--log-format=json"});
  REQUIRE(server.port > 0);
  auto client = start_client(test_script("faulty.lua"), server.port, {"--log-format=json"}, {"SAY=boom"});
  REQUIRE(client->wait_stdout("joined"));
  REQUIRE(server.process->wait_stderr("\"event\":\"script_error\""));
  client->send_signal(SIGTERM);
  CHECK(client->wait_exit() == 0);
  REQUIRE(server.process->wait_stderr("\"event\":\"disconnect\""));
  server.process->send_signal(SIGTERM);
  CHECK(server.process->wait_exit() == 0);

  std::vector<json> lines = parse_lines(server.process->stderr_text());
  REQUIRE(lines.size() >= 4);  // listening, connect, script error, disconnect, ...
  for (const json& j : lines) {
    for (const char* key : {"time", "level", "role", "tag", "event", "message"})
      CHECK_MESSAGE(j.contains(key), key << " missing in " << j.dump());
    CHECK(j["role"] == "server");
    CHECK(j["time"].get<std::string>().back() == 'Z');
  }
  // A line with no event of its own is "log".
  bool saw_listening = false;
  for (const json& j : lines) {
    if (j["message"].get<std::string>().rfind("listening on 127.0.0.1:", 0) != 0) continue;
    saw_listening = true;
    CHECK(j["event"] == "log");
  }
  CHECK(saw_listening);

  const json* connect = find_event(lines, "connect");
  REQUIRE(connect);
  CHECK((*connect)["level"] == "info");
  CHECK((*connect)["slot"] == 0);
  const std::string address = (*connect)["address"].get<std::string>();
  CHECK(address.rfind("127.0.0.1:", 0) == 0);
  CHECK((*connect)["session"].is_number_integer());

  const json* error = find_event(lines, "script_error");
  REQUIRE(error);
  CHECK((*error)["level"] == "error");
  CHECK((*error)["where"] == "server.receive");
  // The traceback's newlines stayed inside the one line.
  CHECK((*error)["message"].get<std::string>().find("faulty.lua:6: attempt to index a nil value") != std::string::npos);
  CHECK((*error)["message"].get<std::string>().find('\n') != std::string::npos);

  const json* disconnect = find_event(lines, "disconnect");
  REQUIRE(disconnect);
  CHECK((*disconnect)["slot"] == 0);
  CHECK((*disconnect)["address"] == address);
  CHECK((*disconnect)["reason"] == "left");

  // The client's lines are JSON too.
  for (const json& j : parse_lines(client->stderr_text())) CHECK(j["role"] == "client");
}

TEST_CASE("--log-format: a bad value is a usage error, exit 2") {
  ChildProcess p({nshost_binary(), "--role=server", "--log-format=yaml", test_script("faulty.lua")});
  CHECK(p.wait_exit() == 2);
  CHECK(p.stderr_text() == "nshost: --log-format: expected text or json\n");
}
